//! The host's speed while it is measured, read off fixed reference workloads.
//!
//! Two of them. [`time`] runs a whole small model before and after a session, to tell whether the
//! device drifted (heat, background load) while it was measured. That is too coarse where the speed
//! moves within seconds: on a shared 2-core machine the same model, timed in one process after
//! another, varied by 11-16% (coefficient of variation), and two readings per session cannot follow
//! that. [`Kernel`] is timed in every round of a whole-model measurement instead, alternating with it
//! on the same processor, so that each measurement carries the speed it was taken at
//! (`measurements.reference_us`). Timed that way (tandem-exec's `pair_probe` example, 40 processes
//! each), the zoo mobilenet's median varied by 11.7% (coefficient of variation) and its ratio to the
//! kernel by 4.7%; the zoo transformer's by 8.2% and 1.2%.

use std::sync::Arc;

use tandem_device::Worker;

use tract_onnx::prelude::{TValue, TVec, TractResult};
use tract_onnx::tract_core::plan::SimpleState;

use crate::measure::{compile, time_runs};
use crate::stats::{summarize, StopRule};
use crate::{ProfileError, Result};

/// The zoo's default model (a small ResNet, about 120 MFLOPs) with fixed weights: both references are
/// cut from it.
fn default_graph() -> Result<tandem_graph::Graph> {
    let model = tandem_graph::zoo::default_model().name;
    let bytes = tandem_graph::zoo::build(model, 0).map_err(|e| ProfileError::Reference(e.to_string()))?;
    Ok(tandem_graph::Graph::load_bytes(model, &bytes, &[])?)
}

/// The workload: the zoo's default model with fixed input, run single-threaded on the worker's
/// processor. Returns its median, milliseconds.
pub fn time(worker: &Worker) -> Result<f64> {
    let graph = Arc::new(default_graph()?);
    let rule = StopRule { warmup: 3, min_samples: 15, max_samples: 15, target_ci: 0.0, budget_s: 5.0 };
    let samples = worker
        .run(move || -> tract_onnx::prelude::TractResult<Vec<f64>> {
            let plan = compile(graph.optimized(), 1)?;
            time_runs(&plan, &graph.random_inputs(0), &rule)
        })?
        .map_err(|e| ProfileError::Reference(format!("{e:#}")))?;
    Ok(summarize(&samples).median_us / 1e3)
}

/// The paired reference: the zoo resnet's heaviest op (a 3x3 convolution, about 200 µs on one core of
/// the 2-core development machine), single-threaded on whichever of the processor's cores the worker
/// runs it. Single-threaded on a multi-core processor too: on both cores with two threads it read
/// 129-199 µs within one profile, the most for the small models timed in many rounds (the zoo
/// transformer on `cpu:0-1`: 199 µs beside 140-157 for the CNNs), which tracked the pool's wake-ups
/// rather than the cores' speed and put that model 47% off. Fixed weights and input, so
/// its time depends only on the processor's speed at the moment; long enough to be timed to a few
/// percent in one run, short enough that a round of a whole-model measurement costs little more (two
/// kernel runs, see [`Kernel::time`]).
pub struct Kernel {
    state: SimpleState<tract_onnx::prelude::TypedFact, Box<dyn tract_onnx::prelude::TypedOp>>,
    inputs: TVec<TValue>,
}

impl Kernel {
    /// Builds the kernel; call it inside the processor's worker.
    pub fn new() -> TractResult<Kernel> {
        let graph = default_graph().map_err(|e| tract_onnx::tract_core::internal::format_err!("{e}"))?;
        let heaviest = graph.ops.iter().max_by_key(|o| o.cost.flops).map(|o| o.id).unwrap_or(0);
        let stage = graph.stage(&[heaviest])?;
        let inputs = graph.random_values(&stage.inputs, 1);
        Ok(Kernel { state: SimpleState::new(&compile(&stage.model, 1)?)?, inputs })
    }

    /// One warm run, microseconds: the kernel runs once untimed, then once timed.
    ///
    /// Why warm: run right after a model, the kernel finds the caches as the model left them, and a
    /// large model leaves none of the kernel's data. Timed cold, the kernel read 226-234 µs after
    /// resnet18 (50 ms) and 199-212 µs after the zoo's 1-2 ms models, in the same minute; timed warm,
    /// 197-200 µs after both (`pair_probe`, alternating each model with the kernel). Cold, it measured
    /// which model ran before it, and brought large models 15% too fast. Cold pairs one model's
    /// processes a little better (the zoo mobilenet's ratio varied by 2.2% against 4.7% warm), but
    /// fitting many models asks for one speed scale across them.
    pub fn time(&mut self) -> TractResult<f64> {
        self.time_as_found()?;
        self.time_as_found()
    }

    /// One run as the caches are found, microseconds (cold after a large model).
    pub fn time_as_found(&mut self) -> TractResult<f64> {
        let t = std::time::Instant::now();
        drop(self.state.run(self.inputs.clone())?);
        Ok(t.elapsed().as_secs_f64() * 1e6)
    }
}
