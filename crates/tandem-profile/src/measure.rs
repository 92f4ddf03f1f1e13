//! Timing a compiled model on the calling thread: whole runs, and every node in context.
//!
//! These functions run inside a processor's pinned worker. A processor that owns several cores runs tract
//! with its own multithreaded executor sized to those cores (its rayon threads inherit the worker's
//! affinity); a single-core processor runs tract single-threaded.

use std::sync::Arc;
use std::time::Instant;

use tract_onnx::prelude::*;
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};
use tract_onnx::tract_core::runtime::RunOptions;
use tract_linalg::multithread::Executor;

use crate::stats::StopRule;

/// A model compiled for one processor.
pub type Plan = Arc<SimplePlan<TypedFact, Box<dyn TypedOp>>>;

/// Compiles `model` to run with `threads` threads (tract's multithreaded executor when more than one).
pub fn compile(model: &TypedModel, threads: usize) -> TractResult<Plan> {
    let options = RunOptions { executor: (threads > 1).then(|| Executor::multithread(threads)), ..Default::default() };
    Ok(Arc::new(SimplePlan::build(model.clone(), &options)?))
}

/// Times whole runs of `plan` until `rule` is satisfied; returns the samples in microseconds.
pub fn time_runs(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule) -> TractResult<Vec<f64>> {
    let mut state = SimpleState::new(plan)?;
    let start = Instant::now();
    for _ in 0..rule.warmup {
        state.run(inputs.clone())?;
    }
    let mut samples = vec![];
    loop {
        let t = Instant::now();
        state.run(inputs.clone())?;
        samples.push(t.elapsed().as_secs_f64() * 1e6);
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
}

/// Times the whole model, alternating a plain run and a run with a timer around each node (as tract's
/// own profiler does), until `rule` is satisfied on the plain runs. Alternating puts both under the same
/// conditions, so the ops' in-context times, the whole-model time and the hook's overhead compare.
pub fn time_model(plan: &Plan, inputs: &TVec<TValue>, rule: &StopRule) -> TractResult<ModelTimes> {
    let n_nodes = plan.model().nodes.len();
    let mut state = SimpleState::new(plan)?;
    let start = Instant::now();
    let mut times = ModelTimes { plain: vec![], hooked: vec![], nodes: vec![] };
    for round in 0.. {
        let t = Instant::now();
        state.run(inputs.clone())?;
        let plain = t.elapsed().as_secs_f64() * 1e6;
        let mut per_node = vec![0f64; n_nodes];
        let t = Instant::now();
        // Each node is charged from the end of the previous node to its own end: the executor's work
        // between nodes (gathering inputs, freeing dead tensors) is part of running it in this model, and
        // the ops' times then add up to the run.
        let mut last = t;
        state.run_plan_with_eval(inputs.clone(), |ctx, op_state, node, node_inputs| {
            let r = tract_onnx::tract_core::plan::eval(ctx, op_state, node, node_inputs);
            let now = Instant::now();
            per_node[node.id] += (now - last).as_secs_f64() * 1e6;
            last = now;
            r
        })?;
        let hooked = t.elapsed().as_secs_f64() * 1e6;
        if round < rule.warmup {
            continue;
        }
        times.plain.push(plain);
        times.hooked.push(hooked);
        times.nodes.push(per_node);
        if rule.done(&times.plain, start.elapsed().as_secs_f64()) {
            break;
        }
    }
    Ok(times)
}
