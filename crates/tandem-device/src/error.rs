//! The crate's one error type.

/// What can go wrong while discovering the device, looking up a processor or running a pinned worker.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DeviceError {
    /// The operating system told us nothing usable about the CPUs.
    #[error("cannot discover this device's processors: {reason}")]
    Discovery {
        /// What was missing.
        reason: String,
    },

    /// A processor id that this device does not have (mistyped, or a profile taken on another device).
    #[error("no processor '{id}' on this device; valid: {}", .valid.join(", "))]
    UnknownProcessor {
        /// The id asked for.
        id: String,
        /// Every processor id the device has, in listing order.
        valid: Vec<String>,
    },

    /// A GPU processor id (`cuda:0`) whose runtime gave no processor here: the note says why (built
    /// without the feature, no driver...).
    #[error("no processor '{id}' on this device: {note}; valid: {}", .valid.join(", "))]
    GpuUnavailable {
        /// The id asked for.
        id: String,
        /// Why the runtime gave no processor, as in [`crate::Device::gpu_notes`].
        note: String,
        /// Every processor id the device has, in listing order.
        valid: Vec<String>,
    },

    /// The worker thread could not be started.
    #[error("cannot start a worker thread for {processor}: {source}")]
    Spawn {
        /// The processor id.
        processor: String,
        /// Why the OS refused.
        source: std::io::Error,
    },

    /// A background load whose spec cannot run (no cores, no threads, a duty outside (0, 1]).
    #[error("cannot start the background load '{load}': {reason}")]
    BadLoad {
        /// The load's description.
        load: String,
        /// What is wrong with it.
        reason: String,
    },

    /// The worker thread could not be pinned to the processor's cores.
    #[error("cannot pin a worker to core{} {} of {processor}: {source}; is this process restricted to fewer cores (taskset, a cgroup cpuset, a container)?", if .cores.len() > 1 { "s" } else { "" }, .cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","))]
    Pin {
        /// The processor id.
        processor: String,
        /// The cores it names.
        cores: Vec<usize>,
        /// Why the OS refused.
        source: std::io::Error,
    },

    /// A job panicked on a worker; the worker itself is still usable.
    #[error("a job panicked on worker {processor}: {message}")]
    WorkerPanicked {
        /// The processor id of the worker.
        processor: String,
        /// The panic message.
        message: String,
    },

    /// The worker's thread is gone, so the job never ran or its result was lost.
    #[error("worker {processor} has stopped; start a new one")]
    WorkerGone {
        /// The processor id of the worker.
        processor: String,
    },
}

/// `Result` with [`DeviceError`].
pub type Result<T, E = DeviceError> = std::result::Result<T, E>;
