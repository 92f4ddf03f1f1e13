//! tandem-exec: a plan run for real, checked and timed.
//!
//! Three steps, three types:
//!
//! - [`Executor`] makes a [`tandem_plan::Plan`] runnable: it refuses a plan made for another model or
//!   naming a processor the device lacks, builds every stage and split part as a tract model
//!   (tandem-graph), starts one persistent pinned lane per processor (tandem-device) and compiles each
//!   model there once. [`Executor::run`] runs one request: stages start as soon as their inputs exist,
//!   tensors pass between processors as shared `Arc`s (no copies), split parts are joined with one
//!   concatenation, and the result comes back with a measured [`tandem_plan::Timeline`]. A failing or
//!   panicking stage ends the request with an error, never a hang. [`Executor::stream`] pipelines many
//!   requests.
//! - [`verify`] compares a plan's outputs with the plain single-processor run of the same model on the
//!   same input, absolutely and relative to each output's magnitude ([`OutputCheck`]).
//! - [`measure()`] runs the whole protocol of `tandem run`: verification, warm-up, then plan runs
//!   interleaved with the `single:<processor>` baselines (the whole model alone on each processor) until
//!   the medians are stable or the budget is spent, per-stage and per-transfer medians beside the
//!   plan's predictions, and optionally a pipelined stream ([`RunReport`]). [`chrome_trace`] writes the
//!   measured and predicted timelines as a Chrome trace that Perfetto opens.
//!
//! - [`Adaptive`] serves requests one by one and re-plans between them when a core slows down or
//!   recovers: the [`Monitor`] compares each processor's measured stage times with the plan's
//!   predictions (and probes the cores the plan leaves unused), and a sustained change re-runs the
//!   search on the problem slowed by the believed factors (`tandem run --adaptive`,
//!   `tandem experiment dynamics`).
//!
//! [`sketch`] builds plans by hand (tests, benchmarks, single-processor plans).
#![deny(missing_docs)]

pub mod adaptive;
mod error;
mod executor;
mod lanes;
pub mod measure;
pub mod monitor;
pub mod sketch;
mod trace;
mod verify;

pub use adaptive::{Adaptive, AdaptiveOptions, Event, Replanner, Served};
pub use error::{ExecError, Result};
pub use executor::{ExecOptions, Executor, Outcome, StageTime, StreamOutcome};
pub use measure::{measure, Baseline, HostSpeed, KernelSpeed, MeasureOptions, RunReport, StageReport, StreamReport, TransferReport, Verdict};
pub use trace::chrome_trace;
pub use monitor::{Detection, Monitor, MonitorOptions, Reading};
pub use verify::{failure, verify, OutputCheck};
