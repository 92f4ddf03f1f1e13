//! tandem-device: what a device offers to run inference on, and how to run work there.
//!
//! Three types carry the crate:
//!
//! - [`Device`] is one machine, found by [`Device::discover`]: a stable fingerprint ([`Device::id`]),
//!   its CPU model, cores and memory, and its [`Processor`]s. A processor is a set of cores that runs
//!   work as one unit: every core alone (`cpu:0`), each cluster of cores with the same maximum
//!   frequency (the big or LITTLE half of a phone, `cpu:4-7`), and all cores together (`cpu:0-7`).
//!   Profiles, cost models and plans name processors by these ids, so a plan made from a phone's profile
//!   refers to the phone's cores, and [`Device::processor`] turns a mistyped id into an error that lists
//!   the valid ones. Built with the `cuda` (or `metal`) feature, discovery also asks tract's GPU runtime
//!   whether it can run here and lists `cuda:0` (`metal:0`) when it can; when it cannot, the processor is
//!   simply absent and a [`GpuNote`] in [`Device::gpu_notes`] says why (no driver, a driver too old, a
//!   build without the feature). Missing drivers never make discovery fail.
//! - [`Worker`] is a persistent OS thread pinned to one processor's cores. The profiler measures and the
//!   executor runs stages by sending jobs to workers ([`Worker::run`], or [`Worker::submit`] to keep
//!   several processors busy at once), so a measurement happens where the plan will run it, on a warm
//!   thread, and a panicking job comes back as an error instead of taking the process down.
//! - [`EnvSnapshot`] records the conditions around a batch of measurements: load average, each core's
//!   current frequency, temperatures, and how much CPU other processes used. Measurements on phones and
//!   shared machines are noisy; the snapshot stored beside them says why a number is off. Taking one
//!   never fails: what the OS does not tell is left out. [`EnvSnapshot::throttling`] says whether the
//!   clock or the temperature shows throttling, or that nothing readable tells.
//! - [`BackgroundLoad`] (module [`load`]) starts controlled interference, compute spinners or
//!   memory-bandwidth hogs pinned to chosen cores, so that the profiler can measure how much a processor
//!   slows down next to a busy neighbour.
//!
//! Data flows one way: discovery gives processors, processors give workers, and the snapshot reads the
//! device's cores. A GPU processor owns no cores: its worker is the unpinned host thread that drives it.
//!
//! ```no_run
//! use tandem_device::{Device, EnvSnapshot, Worker};
//!
//! let device = Device::discover()?;
//! let worker = Worker::spawn(device.processor("cpu:0")?)?;
//! let cores = worker.run(tandem_device::current_affinity)?;
//! assert_eq!(cores, vec![0]);
//! println!("{:?}", EnvSnapshot::take(&device).load_average);
//! # Ok::<(), tandem_device::DeviceError>(())
//! ```
#![deny(missing_docs)]

mod core_use;
mod device;
mod env;
mod error;
mod gpu;
pub mod load;
mod processor;
mod worker;

pub use core_use::CoreUse;
pub use device::{fingerprint, CoreInfo, Device};
pub use env::{CoreFreq, EnvSnapshot, LoadAverage, Temperature, Throttling, DEFAULT_WINDOW, HOT_CELSIUS, THROTTLE_FREQ_RATIO};
pub use error::{DeviceError, Result};
pub use gpu::GpuNote;
pub use load::{BackgroundLoad, LoadKind, LoadSpec};
pub use processor::{cpu_set_id, parse_cpu_set, Processor, ProcessorKind};
pub use worker::{current_affinity, pin_current_thread, JobHandle, Pinned, Worker};
