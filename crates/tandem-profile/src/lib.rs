//! tandem-profile: measurements a researcher can trust.
//!
//! [`profile`] measures a model on a device's processors into the results database: the whole model, every
//! op in context (a timer around each node while the whole model runs) and alone, the parts of heavy ops'
//! splits, and hand-overs between processors ([`transfer`]). Every timing is a distribution:
//! warm-up, then repetition until the median's 95% interval is within ±3% or the item's time budget is
//! spent ([`StopRule`]), summarised by median, p10, p90 and coefficient of variation with slow outliers
//! dropped and counted ([`Summary`]). Work runs on pinned workers (tandem-device); a fixed reference
//! workload timed before and after tells whether the device drifted, and a reference kernel timed in
//! every round of a whole-model measurement records the speed it was taken at ([`reference`]).
//!
//! Built with the `cuda` (or `metal`) feature, a GPU processor is profiled too ([`gpu`]): the whole model
//! and every op in context through tract's GPU transform, timed until the device has finished; the ops
//! the GPU runtime leaves on the CPU recorded as unsupported there; and host-to-device and
//! device-to-host copies by size as transfers between each CPU processor and the GPU.
//!
//! [`profile_contention`] ([`contention`]) measures how much each CPU processor slows down next to
//! controlled background load (compute spinners and memory hogs on the other cores or on its own), into
//! the `contention` table the cost models read.
#![deny(missing_docs)]

pub mod contention;
pub mod gpu;
pub mod measure;
pub mod reference;
mod session;
pub mod stats;
pub mod transfer;

pub use contention::{profile_contention, ContentionOptions, ContentionReport, Scenario, SkippedScenario};
pub use session::{heavy_ops, profile, register, ProcessorSummary, ProfileOptions, ProfileReport};
pub use stats::{geometric_mean, paired_ratio_ci, percentile, quantile, summarize, StopRule, Summary};

/// Errors of a profiling session.
#[derive(Debug, thiserror::Error)]
pub enum ProfileError {
    /// The database refused a read or write.
    #[error(transparent)]
    Store(tandem_store::StoreError),
    /// A processor or worker problem.
    #[error(transparent)]
    Device(#[from] tandem_device::DeviceError),
    /// The model could not be cut or split as planned.
    #[error(transparent)]
    Graph(#[from] tandem_graph::GraphError),
    /// A contention profile cannot run as asked (a GPU named, a model that does not run, a bad budget).
    #[error("contention profile: {0}")]
    Contention(String),
    /// The reference workload failed.
    #[error("the reference workload failed: {0}")]
    Reference(String),
}

/// Result alias of this crate.
pub type Result<T, E = ProfileError> = std::result::Result<T, E>;

/// Progress of a long session, reported to whoever draws it (the CLI's progress bar; nothing in tests).
pub trait Reporter {
    /// The session has `total` items.
    fn begin(&self, total: u64);
    /// One item is starting.
    fn advance(&self, label: &str);
    /// The session is over.
    fn end(&self);
}

/// A reporter that shows nothing.
pub struct Silent;

impl Reporter for Silent {
    fn begin(&self, _: u64) {}
    fn advance(&self, _: &str) {}
    fn end(&self) {}
}
