//! The fixed reference workload timed before and after a session, to tell whether the device's speed
//! drifted (heat, background load) while it was measured.

use std::sync::Arc;

use tandem_device::Worker;

use crate::measure::{compile, time_runs};
use crate::stats::{summarize, StopRule};
use crate::{ProfileError, Result};

/// The workload: the zoo's default model (a small ResNet, about 120 MFLOPs) with fixed weights and input,
/// run single-threaded on the worker's processor. Returns its median, milliseconds.
pub fn time(worker: &Worker) -> Result<f64> {
    let model = tandem_graph::zoo::default_model().name;
    let bytes = tandem_graph::zoo::build(model, 0).map_err(|e| ProfileError::Reference(e.to_string()))?;
    let graph = Arc::new(tandem_graph::Graph::load_bytes(model, &bytes, &[])?);
    let rule = StopRule { warmup: 3, min_samples: 15, max_samples: 15, target_ci: 0.0, budget_s: 5.0 };
    let samples = worker
        .run(move || -> tract_onnx::prelude::TractResult<Vec<f64>> {
            let plan = compile(graph.optimized(), 1)?;
            time_runs(&plan, &graph.random_inputs(0), &rule)
        })?
        .map_err(|e| ProfileError::Reference(format!("{e:#}")))?;
    Ok(summarize(&samples).median_us / 1e3)
}
