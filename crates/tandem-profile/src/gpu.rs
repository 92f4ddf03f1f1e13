//! Measuring on GPU processors through tract's GPU runtimes (features `cuda` and `metal`).
//!
//! A GPU processor runs a model the way tract's own runtime does: the GPU transform moves every op it has
//! a kernel for onto the device, wiring copies to and from the device around the ops it has none for,
//! which stay on the CPU ([`compile`]). Those fallbacks are what the profile records as unsupported on
//! the GPU ([`fallbacks`]): a plan should not count on the GPU for them. Timings wait for the device
//! ([`crate::measure::Completion::Device`]), and [`measure_copies`] times the host to device and device to
//! host copies a plan pays at a stage boundary.
//!
//! The transform starts from the decluttered model (tract's semantic operators; the optimised model's
//! CPU kernels have no GPU translation), and keeps its node names, so a GPU node's time is charged to the
//! op whose decluttered node it was made from ([`attribute`]).
//!
//! Without a feature this module only answers that the build has no GPU support.

use std::collections::HashMap;

use tandem_device::ProcessorKind;
use tandem_graph::{Graph, OpId};
use tract_onnx::tract_core::internal::*;

use crate::measure::Plan;
use crate::stats::{StopRule, Summary};

/// Compiles a decluttered `model` for a GPU of `kind`, as tract's runtime for it would. Fails cleanly when
/// the runtime cannot run here (no driver, a build without the feature), and turns a panic inside the
/// runtime (a driver failing half-way through creating its context) into an error.
pub fn compile(kind: ProcessorKind, model: &TypedModel) -> TractResult<Plan> {
    std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| imp::compile(kind, model)))
        .unwrap_or_else(|panic| bail!("tract's {kind} runtime panicked while compiling: {}", panic_message(&panic)))
}

/// Waits until the device has finished the work this thread queued.
pub fn synchronize() -> TractResult<()> {
    imp::synchronize()
}

/// Brings `outputs` of a GPU run into host memory (tract hands them back lazily, still on the device).
pub fn to_host(outputs: &TVec<TValue>) -> TractResult<()> {
    for o in outputs {
        // Reading the bytes makes tract copy them back, once; a host tensor is already there.
        std::hint::black_box(o.try_as_plain_ram()?.as_bytes().len());
    }
    Ok(())
}

/// For each node of a compiled GPU model (by node id), the op it computes, found by name: a node is named
/// after the decluttered node it came from, or `<that name>.<suffix>` for nodes the transform or the
/// optimiser added (copies to and from the device, casts, codegen). Sources and constants map to `None`.
pub fn attribute(graph: &Graph, compiled: &TypedModel) -> Vec<Option<OpId>> {
    let decluttered = graph.decluttered();
    let by_name: HashMap<&str, OpId> = decluttered
        .nodes
        .iter()
        .filter_map(|n| graph.op_of_decluttered_node(n.id).map(|op| (n.name.as_str(), op)))
        .collect();
    compiled
        .nodes
        .iter()
        .map(|n| {
            if matches!(&*n.op.name(), "Source" | "Const") {
                return None;
            }
            let mut name = n.name.as_str();
            loop {
                if let Some(&op) = by_name.get(name) {
                    return Some(op);
                }
                name = &name[..name.rfind('.')?];
            }
        })
        .collect()
}

/// The ops of `graph` that the compiled GPU model runs on the CPU, each with the reason: the GPU runtime
/// has no kernel for (some of) its operators, so tract copies its inputs back to the host, runs it there
/// and copies the result to the device again. `attribution` is [`attribute`]'s answer for `compiled`.
pub fn fallbacks(kind: ProcessorKind, compiled: &TypedModel, attribution: &[Option<OpId>]) -> Vec<(OpId, String)> {
    let mut on_cpu: Vec<(OpId, Vec<String>)> = vec![];
    for node in &compiled.nodes {
        let Some(op) = attribution.get(node.id).copied().flatten() else { continue };
        let name = node.op.name();
        if name == "Source" || name == "Const" || name.starts_with("DeviceSync") || node.outputs.is_empty() {
            continue;
        }
        if node.outputs.iter().any(|o| imp::is_on_device(&o.fact)) {
            continue;
        }
        let label = format!("{} ({})", name, node.name);
        match on_cpu.iter_mut().find(|(o, _)| *o == op) {
            Some((_, labels)) => labels.push(label),
            None => on_cpu.push((op, vec![label])),
        }
    }
    on_cpu
        .into_iter()
        .map(|(op, labels)| (op, format!("tract's {kind} runtime has no GPU kernel for {}: it falls back to the CPU", labels.join(", "))))
        .collect()
}

/// Times copying `bytes` of f32 between host memory and the GPU of `kind`, on the calling thread, until
/// `rule` is satisfied for both directions; returns (host to device, device to host), microseconds. Host
/// to device is what tract's copy onto the device costs at a stage boundary (an allocation on the device
/// and the copy, waited for); device to host is bringing a result back for a CPU consumer.
pub fn measure_copies(kind: ProcessorKind, bytes: usize, rule: &StopRule) -> TractResult<(Summary, Summary)> {
    imp::transfers(kind, bytes, rule)
}

fn panic_message(payload: &Box<dyn std::any::Any + Send>) -> String {
    payload
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| payload.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "a panic without a message".to_string())
}

#[cfg(any(feature = "cuda", feature = "metal"))]
mod imp {
    use std::time::Instant;

    use tract_gpu::fact::DeviceTypedFactExt;
    use tract_gpu::tensor::IntoDevice;

    use super::*;
    use crate::stats::summarize;

    pub(super) fn compile(kind: ProcessorKind, model: &TypedModel) -> TractResult<Plan> {
        match kind {
            #[cfg(feature = "cuda")]
            ProcessorKind::Cuda => compile_cuda(model),
            ProcessorKind::Metal => compile_with_runtime("metal", model),
            other => bail!("{other} is not a GPU runtime this build supports (build with `--features cuda` or `--features metal`)"),
        }
    }

    /// tract-cuda's runtime, step by step through its public API (the same steps as its `prepare`), so
    /// that nothing depends on the runtime registry finding the crate.
    #[cfg(feature = "cuda")]
    fn compile_cuda(model: &TypedModel) -> TractResult<Plan> {
        use tract_onnx::tract_core::plan::SimplePlan;
        use tract_onnx::tract_core::transform::ModelTransform;
        // Checks the driver and libraries without panicking; the transform below would panic instead.
        tract_cuda::utils::ensure_cuda_runtime_dependencies("the CUDA runtime cannot run here")?;
        let mut model = model.clone();
        tract_cuda::CudaTransform.transform(&mut model)?;
        model.optimize()?;
        let options = tract_onnx::tract_core::runtime::RunOptions { skip_order_opt_ram: true, ..Default::default() };
        let mut plan = SimplePlan::build(model, &options)?;
        if let Some(handler) = tract_gpu::turn_handler::DeviceTurnHandler::for_plan(&plan, None)? {
            plan = plan.with_turn_handler(handler);
        }
        // The constants went up asynchronously on this thread's stream: wait for them.
        synchronize()?;
        Ok(std::sync::Arc::new(plan))
    }

    /// A runtime found in tract's registry (tract-metal registers `metal` where it is built).
    fn compile_with_runtime(name: &str, model: &TypedModel) -> TractResult<Plan> {
        let runtime = tract_onnx::tract_core::runtime::runtime_for_name(name)?
            .with_context(|| format!("tract's {name} runtime is not part of this build (it exists only on its platform)"))?;
        let runnable = runtime.prepare(model.clone())?;
        let plan = runnable.typed_plan().cloned().with_context(|| format!("tract's {name} runtime gave no plan to time"))?;
        synchronize()?;
        Ok(plan)
    }

    thread_local! {
        /// tract's device context, fetched once per thread: `get_context` locks and clones it, which
        /// would otherwise be charged to every node timed.
        static CONTEXT: std::cell::OnceCell<Box<dyn tract_gpu::device::DeviceContext>> = const { std::cell::OnceCell::new() };
    }

    pub(super) fn synchronize() -> TractResult<()> {
        CONTEXT.with(|cell| {
            if cell.get().is_none() {
                let _ = cell.set(tract_gpu::device::get_context()?);
            }
            cell.get().expect("set above").synchronize()
        })
    }

    pub(super) fn is_on_device(fact: &TypedFact) -> bool {
        fact.as_device_fact().is_some()
    }

    /// Makes sure this thread can reach the device: the context exists (tract creates it on first use)
    /// and this thread has its stream.
    fn ready(kind: ProcessorKind) -> TractResult<()> {
        match kind {
            #[cfg(feature = "cuda")]
            ProcessorKind::Cuda => {
                tract_cuda::utils::ensure_cuda_runtime_dependencies("the CUDA runtime cannot run here")?;
                tract_cuda::with_cuda_stream(|_| Ok(()))
            }
            // tract-metal creates its context when it first compiles a model, which the session has done
            // on this GPU before it measures transfers.
            ProcessorKind::Metal => tract_gpu::device::get_context().map(|_| ()),
            other => bail!("{other} is not a GPU runtime this build supports"),
        }
    }

    pub(super) fn transfers(kind: ProcessorKind, bytes: usize, rule: &StopRule) -> TractResult<(Summary, Summary)> {
        std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| ready(kind)))
            .unwrap_or_else(|panic| bail!("tract's {kind} runtime panicked while starting: {}", panic_message(&panic)))?;
        let len = (bytes / 4).max(1);
        let host: Arc<Tensor> = Arc::new(Tensor::from_shape(&[len], &(0..len).map(|i| i as f32).collect::<Vec<f32>>())?);
        let (mut up, mut down) = (vec![], vec![]);
        let start = Instant::now();
        let mut round = 0usize;
        loop {
            // Host to device: what tract's copy onto the device does at a stage boundary (allocate, copy),
            // waited for.
            let t = Instant::now();
            let on_device = host.clone().into_device()?;
            synchronize()?;
            let t_up = t.elapsed().as_secs_f64() * 1e6;
            // Device to host: bringing a result back for a CPU consumer.
            let t = Instant::now();
            let back = on_device.to_host()?;
            std::hint::black_box(back.try_as_plain_ram()?.as_bytes().len());
            let t_down = t.elapsed().as_secs_f64() * 1e6;
            round += 1;
            if round <= rule.warmup {
                continue;
            }
            up.push(t_up);
            down.push(t_down);
            if rule.done(&up, start.elapsed().as_secs_f64()) && rule.done(&down, start.elapsed().as_secs_f64()) {
                return Ok((summarize(&up), summarize(&down)));
            }
        }
    }
}

#[cfg(not(any(feature = "cuda", feature = "metal")))]
mod imp {
    use super::*;

    const NO_GPU: &str = "this build has no GPU support: rebuild with `--features cuda` (or `--features metal` on Apple)";

    pub(super) fn compile(_: ProcessorKind, _: &TypedModel) -> TractResult<Plan> {
        bail!(NO_GPU)
    }

    pub(super) fn synchronize() -> TractResult<()> {
        bail!(NO_GPU)
    }

    pub(super) fn is_on_device(_: &TypedFact) -> bool {
        false
    }

    pub(super) fn transfers(_: ProcessorKind, _: usize, _: &StopRule) -> TractResult<(Summary, Summary)> {
        bail!(NO_GPU)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    fn graph() -> Arc<Graph> {
        let name = tandem_graph::zoo::default_model().name;
        Arc::new(Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).unwrap(), &[]).unwrap())
    }

    /// Without a GPU (CI), compiling for one fails with the runtime's reason, and never panics.
    #[test]
    fn compiling_for_a_gpu_without_one_fails_cleanly() {
        let g = graph();
        for kind in [ProcessorKind::Cuda, ProcessorKind::Metal] {
            match compile(kind, g.decluttered()) {
                Ok(plan) => assert!(!plan.model().nodes.is_empty()),
                Err(e) => {
                    let msg = format!("{e:#}");
                    assert!(!msg.contains("panicked"), "{msg}");
                    if cfg!(not(any(feature = "cuda", feature = "metal"))) {
                        assert!(msg.contains("--features cuda"), "{msg}");
                    }
                    if cfg!(feature = "cuda") && kind == ProcessorKind::Cuda {
                        assert!(msg.contains("CUDA"), "{msg}");
                    }
                }
            }
        }
        assert!(compile(ProcessorKind::Cpu, g.decluttered()).is_err());
        assert!(measure_copies(ProcessorKind::Cpu, 4096, &StopRule::default()).is_err());
    }

    #[test]
    fn transfers_without_a_gpu_fail_cleanly() {
        let rule = StopRule { warmup: 0, min_samples: 2, max_samples: 2, target_ci: 0.0, budget_s: 1.0 };
        match measure_copies(ProcessorKind::Cuda, 4096, &rule) {
            Ok((up, down)) => assert!(up.samples == 2 && down.samples == 2),
            Err(e) => assert!(!format!("{e:#}").contains("panicked"), "{e:#}"),
        }
    }

    /// The decluttered model stands in for a compiled GPU model: every node is charged to the op built
    /// from it, and since nothing is on a device, every op with a node counts as a CPU fallback.
    #[test]
    fn nodes_are_charged_to_the_ops_they_were_made_from() {
        let g = graph();
        let attribution = attribute(&g, g.decluttered());
        assert_eq!(attribution.len(), g.decluttered().nodes.len());
        let mut charged: Vec<OpId> = attribution.iter().flatten().copied().collect();
        charged.sort();
        charged.dedup();
        assert_eq!(charged, (0..g.ops.len()).collect::<Vec<_>>(), "every op has a node");
        for (n, op) in attribution.iter().enumerate() {
            let node = &g.decluttered().nodes[n];
            if node.op.name() == "Source" || node.op.name() == "Const" {
                assert_eq!(*op, None, "{}", node.name);
            }
        }
        // Suffixed names (a copy to the device, codegen) find their origin.
        let mut renamed = g.decluttered().clone();
        let conv = renamed.nodes.iter().position(|n| n.op.name() == "Conv").unwrap();
        let origin = attribution[conv];
        renamed.nodes[conv].name = format!("{}.to-device-0", renamed.nodes[conv].name);
        assert_eq!(attribute(&g, &renamed)[conv], origin);

        let fallbacks = fallbacks(ProcessorKind::Cuda, g.decluttered(), &attribution);
        assert_eq!(fallbacks.len(), g.ops.len());
        assert!(fallbacks[0].1.contains("no GPU kernel for") && fallbacks[0].1.contains("falls back to the CPU"), "{}", fallbacks[0].1);
    }
}
