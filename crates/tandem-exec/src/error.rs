//! The crate's one error type.

use tandem_device::DeviceError;
use tandem_graph::GraphError;
use tandem_plan::PlanError;

/// What can go wrong while preparing, running, verifying or measuring a plan.
///
/// Messages are written for the person at the terminal: each names the stage, processor or output
/// concerned and, where there is one, what to do next.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ExecError {
    /// The plan does not fit this model or device (another model, a missing processor, a stale cost
    /// model, an inconsistent structure).
    #[error(transparent)]
    Plan(#[from] PlanError),
    /// A stage or a split could not be built from the model.
    #[error(transparent)]
    Graph(#[from] GraphError),
    /// A worker could not be started or pinned.
    #[error(transparent)]
    Device(#[from] DeviceError),
    /// tract refused to compile a stage for its processor.
    #[error("cannot prepare stage {stage} for {processor}: {reason}")]
    Compile {
        /// The stage id.
        stage: usize,
        /// Its processor.
        processor: String,
        /// tract's error chain.
        reason: String,
    },
    /// A stage failed while running a request.
    #[error("stage {stage} failed on {processor}: {reason}")]
    Stage {
        /// The stage id.
        stage: usize,
        /// Its processor.
        processor: String,
        /// What went wrong.
        reason: String,
    },
    /// A stage panicked while running a request (the worker goes on serving).
    #[error("stage {stage} panicked on {processor}: {message}")]
    Panicked {
        /// The stage id.
        stage: usize,
        /// Its processor.
        processor: String,
        /// The panic message.
        message: String,
    },
    /// A processor's worker stopped, so a stage never ran.
    #[error("the worker for {processor} stopped before running stage {stage}")]
    WorkerGone {
        /// The stage that was lost.
        stage: usize,
        /// The processor.
        processor: String,
    },
    /// A request took longer than the executor's timeout.
    #[error("a request did not finish within {seconds:.0} s; is a worker stuck or the device overloaded?")]
    Timeout {
        /// The timeout.
        seconds: f64,
    },
    /// A request was given the wrong number of input tensors.
    #[error("the model takes {expected} input tensor(s), {given} were given")]
    Inputs {
        /// Inputs the model takes.
        expected: usize,
        /// Inputs given.
        given: usize,
    },
    /// A baseline (the whole model on one processor) could not run.
    #[error("baseline {name} failed: {reason}")]
    Baseline {
        /// `single:<processor>`.
        name: String,
        /// What went wrong.
        reason: String,
    },
    /// The reference kernel timed beside the plan to read the host's speed could not run.
    #[error("the reference kernel on {processor} failed: {reason}")]
    Reference {
        /// The processor.
        processor: String,
        /// What went wrong.
        reason: String,
    },
}

/// `Result` with [`ExecError`].
pub type Result<T, E = ExecError> = std::result::Result<T, E>;

/// A panic payload as text.
pub(crate) fn panic_message(payload: Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

/// tract's error chain on one line.
pub(crate) fn chain(e: &tract_onnx::prelude::TractError) -> String {
    let mut parts: Vec<String> = e.chain().map(|c| c.to_string()).collect();
    parts.dedup();
    parts.join(": ")
}
