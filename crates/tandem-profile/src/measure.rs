//! Timing a compiled model on the calling thread: whole runs, and every node in context.
//!
//! These functions run inside a processor's pinned worker. A processor that owns several cores runs tract
//! with its own multithreaded executor sized to those cores (its rayon threads inherit the worker's
//! affinity); a single-core processor runs tract single-threaded. A GPU processor's plan comes from
//! [`crate::gpu::compile`] (features `cuda`, `metal`) and is timed with [`Completion::Device`], so that
//! every timing includes the kernels' completion, not just their launch.

use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};
use tract_onnx::tract_core::runtime::RunOptions;
use tract_linalg::multithread::Executor;

use crate::reference::Kernel;
use crate::stats::StopRule;

/// A model compiled for one processor.
pub type Plan = Arc<SimplePlan<TypedFact, Box<dyn TypedOp>>>;

/// Compiles `model` to run with `threads` threads (tract's multithreaded executor over [`pool`] when
/// more than one). Called inside a processor's worker, the pool's threads are pinned to its cores.
pub fn compile(model: &TypedModel, threads: usize) -> TractResult<Plan> {
    let options = RunOptions { executor: pool(threads)?, ..Default::default() };
    Ok(Arc::new(SimplePlan::build(model.clone(), &options)?))
}

/// The executor for `threads` threads: `None` (tract's single-threaded default) for one, else a rayon
/// pool whose thread `i` is pinned to the `i`-th core the calling thread may run on (in a processor's
/// worker: the processor's cores, round-robin when there are more threads than cores).
///
/// Why pinned one to a core: pool threads free to move over the processor's cores are placed by the OS
/// scheduler, which, right after another thread kept one of those cores busy, may stack two of them on
/// the other core. That made the multi-threaded baseline of `tandem run` (run right after the
/// single-core ones) time 15-25% slower than the same model inside a plan.
pub fn pool(threads: usize) -> TractResult<Option<Executor>> {
    if threads <= 1 {
        return Ok(None);
    }
    let cores = tandem_device::current_affinity();
    let pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .thread_name(|i| format!("tandem-pool-{i}"))
        .start_handler(move |i| {
            if let Some(&core) = cores.get(i % cores.len().max(1)) {
                if let Err(e) = tandem_device::pin_current_thread(&[core]) {
                    tracing::warn!(core, error = %e, "a pool thread could not be pinned; it runs on any of the processor's cores");
                }
            }
        })
        .build()
        .map_err(|e| tract_onnx::tract_core::internal::format_err!("cannot start a {threads}-thread pool: {e}"))?;
    Ok(Some(Executor::MultiThread(Arc::new(pool))))
}

/// When a timed run counts as over.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub enum Completion {
    /// When tract's run returns: CPU kernels are done by then.
    #[default]
    Returned,
    /// When the device has finished: GPU kernels are launched asynchronously, so the clock stops only
    /// after waiting for the device's queue (after every node, for per-node times) and after bringing the
    /// outputs back to host memory, as a CPU consumer of them would. Needs a build with a GPU feature.
    Device,
}

impl Completion {
    /// Waits for the device's queue (nothing to wait for on a CPU).
    fn wait(self) -> TractResult<()> {
        match self {
            Completion::Returned => Ok(()),
            Completion::Device => crate::gpu::synchronize(),
        }
    }

    /// Waits until the run's outputs are in host memory.
    fn outputs(self, outputs: &TVec<TValue>) -> TractResult<()> {
        match self {
            Completion::Returned => Ok(()),
            Completion::Device => crate::gpu::to_host(outputs),
        }
    }
}

/// Times whole runs of `plan` until `rule` is satisfied; returns the samples in microseconds.
pub fn time_runs(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule) -> TractResult<Vec<f64>> {
    time_runs_until(plan, inputs, rule, Completion::Returned)
}

/// [`time_runs`], with the clock stopped at `completion`.
pub fn time_runs_until(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule, completion: Completion) -> TractResult<Vec<f64>> {
    time_batches_until(plan, inputs, rule, completion, 1)
}

/// Times batches of `runs_per_sample` back-to-back whole runs until `rule` is satisfied (warm-up counts
/// single runs); each sample is a batch's time divided by its runs, in microseconds. A batch that spans
/// several of the OS scheduler's time slices measures the share of the cores the run gets, where single
/// short runs would mostly fit between another thread's slices (the contention profile needs that).
pub fn time_batches_until(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule, completion: Completion, runs_per_sample: usize) -> TractResult<Vec<f64>> {
    let runs_per_sample = runs_per_sample.max(1);
    let mut state = SimpleState::new(plan)?;
    let start = Instant::now();
    for _ in 0..rule.warmup {
        completion.outputs(&state.run(inputs.clone())?)?;
    }
    let mut samples = vec![];
    loop {
        let t = Instant::now();
        for _ in 0..runs_per_sample {
            let outputs = state.run(inputs.clone())?;
            completion.outputs(&outputs)?;
        }
        samples.push(t.elapsed().as_secs_f64() * 1e6 / runs_per_sample as f64);
        if rule.done(&samples, start.elapsed().as_secs_f64()) {
            return Ok(samples);
        }
    }
}

/// Whole-model samples: plain runs and runs with a timer around every node, alternated.
pub struct ModelTimes {
    /// Plain whole runs, microseconds.
    pub plain: Vec<f64>,
    /// Whole runs with the per-node hook, microseconds.
    pub hooked: Vec<f64>,
    /// Per hooked run, the time charged to every node of the plan's model (indexed by node id), µs.
    pub nodes: Vec<Vec<f64>>,
    /// The paired reference kernel, once per round, µs (empty when none was timed).
    pub reference: Vec<f64>,
}

/// Times the whole model, alternating a plain run and a run with a timer around each node (as tract's
/// own profiler does), until `rule` is satisfied on the plain runs. Alternating puts both under the same
/// conditions, so the ops' in-context times, the whole-model time and the hook's overhead compare.
/// Every clock stops at `completion`: on a GPU each node's time then includes its kernels' completion
/// (which also keeps the next node from overlapping it, as it may in a plain run).
pub fn time_model_until(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule, completion: Completion) -> TractResult<ModelTimes> {
    time_model_paired(plan, inputs, rule, completion, None)
}

/// [`time_model_until`], with the reference `kernel` (when given) timed once in every round, after the
/// model's two runs: the speed the host ran at while this model was measured (see [`crate::reference`]).
pub fn time_model_paired(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule, completion: Completion, mut kernel: Option<&mut Kernel>) -> TractResult<ModelTimes> {
    let n_nodes = plan.model().nodes.len();
    let mut state = SimpleState::new(plan)?;
    let start = Instant::now();
    let mut times = ModelTimes { plain: vec![], hooked: vec![], nodes: vec![], reference: vec![] };
    for round in 0.. {
        let t = Instant::now();
        let outputs = state.run(inputs.clone())?;
        completion.outputs(&outputs)?;
        drop(outputs);
        let plain = t.elapsed().as_secs_f64() * 1e6;
        let mut per_node = vec![0f64; n_nodes];
        let t = Instant::now();
        // Each node is charged from the end of the previous node to its own end: the executor's work
        // between nodes (gathering inputs, freeing dead tensors) is part of running it in this model, and
        // the ops' times then add up to the run.
        let mut last = t;
        let outputs = state.run_plan_with_eval(inputs.clone(), |ctx, op_state, node, node_inputs| {
            let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, node_inputs);
            completion.wait()?;
            let now = Instant::now();
            per_node[node.id] += (now - last).as_secs_f64() * 1e6;
            last = now;
            r
        })?;
        completion.outputs(&outputs)?;
        drop(outputs);
        let hooked = t.elapsed().as_secs_f64() * 1e6;
        let reference = kernel.as_deref_mut().map(Kernel::time).transpose()?;
        if round < rule.warmup {
            continue;
        }
        times.reference.extend(reference);
        times.plain.push(plain);
        times.hooked.push(hooked);
        times.nodes.push(per_node);
        if rule.done(&times.plain, start.elapsed().as_secs_f64()) {
            break;
        }
    }
    Ok(times)
}
