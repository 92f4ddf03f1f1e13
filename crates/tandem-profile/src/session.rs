//! A profiling session: every item to measure on every processor, stored as it is measured.
//!
//! Items, per processor: the whole model, every op in context (timed by a hook while the whole model
//! runs), every op in isolation (its stage model alone), and the parts of heavy ops' splits. Then the
//! hand-over cost between every pair of processors that share no core. A GPU processor (features `cuda`,
//! `metal`) gets the whole model and the ops in context through tract's GPU transform, the ops that
//! transform leaves on the CPU recorded as unsupported there, and host-to-device and device-to-host
//! copies with every CPU processor as its hand-overs; its ops alone and split parts are not measured yet.
//! Each item is written in its own short transaction as soon as it is measured, so an interrupted
//! session leaves a valid database and the next one skips what is stored (unless `force`).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tandem_device::{Device, EnvSnapshot, Processor, ProcessorKind, Worker};
use tandem_graph::{boundaries, Graph, OpId};
use tandem_store::{Context, EnvSnapshotRow, MeasurementRow, ModelRow, OpRow, ProcessorRow, DeviceRow, SessionRow, SessionStatus, Store, Target, TransferRow, UnsupportedRow};

use crate::measure::{compile, time_model_paired, time_model_until, time_runs, Completion, ModelTimes};
use crate::reference;
use crate::stats::{summarize, StopRule, Summary};
use crate::transfer::{measure_join, measure_transfer, DEFAULT_SIZES};
use crate::{ProfileError, Reporter, Result};

/// What to measure and how hard.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileOptions {
    /// Processor ids to profile; empty for every discovered processor.
    pub processors: Vec<String>,
    /// Measure again what is already stored.
    pub force: bool,
    /// Stopping rule for ops and split parts alone.
    pub item_rule: StopRule,
    /// Stopping rule for the whole model and the in-context runs.
    pub model_rule: StopRule,
    /// Split ratios profiled for heavy ops.
    pub split_ratios: Vec<f64>,
    /// Split points are rounded to multiples of this on the channel axis (tract packs 16 or 32 channels).
    pub split_align: usize,
    /// Ops whose share of the model's FLOPs, or of the bytes its ops read and write, is at least this
    /// get their split parts profiled. Bytes count too because a memory-bound op can be slow at few
    /// FLOPs: mobilenet_v2's stride-2 depthwise convolution over 112x112x96 is 1% of the FLOPs and
    /// 3 ms of its 25.
    pub split_min_share: f64,
    /// Tensor sizes (bytes) of the transfer measurements; empty to skip transfers.
    pub transfer_sizes: Vec<usize>,
}

impl Default for ProfileOptions {
    fn default() -> Self {
        ProfileOptions {
            processors: vec![],
            force: false,
            item_rule: StopRule::default(),
            // Per-op medians in context come from these runs too: take enough of them.
            model_rule: StopRule { warmup: 3, min_samples: 40, max_samples: 300, target_ci: 0.01, budget_s: 3.0 },
            split_ratios: vec![0.25, 0.5, 0.75],
            split_align: 16,
            split_min_share: 0.02,
            transfer_sizes: DEFAULT_SIZES.to_vec(),
        }
    }
}

/// One processor's results, for the summary.
#[derive(Debug, Clone, Serialize)]
pub struct ProcessorSummary {
    /// The processor.
    pub processor: String,
    /// Median of a whole-model run, milliseconds (`None` when it was already stored and not re-measured).
    pub model_median_ms: Option<f64>,
    /// Sum of the in-context op medians, milliseconds.
    pub ops_in_context_sum_ms: Option<f64>,
    /// Whole-model median with the per-node hook against without it, percent.
    pub hook_overhead_pct: Option<f64>,
    /// The slowest ops in context: (name, kind, median µs).
    pub slowest_ops: Vec<(String, String, f64)>,
    /// Ops this processor could not run.
    pub unsupported: usize,
}

/// What `profile` did.
#[derive(Debug, Clone, Serialize)]
pub struct ProfileReport {
    /// The session (a resumed one keeps its id).
    pub profile_id: i64,
    /// Whether an interrupted session was resumed.
    pub resumed: bool,
    /// The model's row id.
    pub model_id: i64,
    /// The device fingerprint.
    pub device_id: String,
    /// Processors profiled.
    pub processors: Vec<String>,
    /// Measurement rows written by this run (ops, models, split parts).
    pub measurements: usize,
    /// Items skipped because they were already stored.
    pub skipped: usize,
    /// Transfer rows written.
    pub transfers: usize,
    /// Ops recorded as unsupported somewhere.
    pub unsupported: usize,
    /// Reference workload before and after, milliseconds.
    pub reference_before_ms: f64,
    /// See `reference_before_ms`.
    pub reference_after_ms: f64,
    /// `(after - before) / before * 100`.
    pub drift_pct: f64,
    /// Whether the drift exceeds 5%.
    pub drifted: bool,
    /// Per-processor summaries.
    pub per_processor: Vec<ProcessorSummary>,
    /// Wall-clock time of the session, seconds.
    pub elapsed_s: f64,
}

/// Key of a measurement within one (device, model): (op, processor, target, variant, context).
type Key = (Option<i64>, String, Target, String, Context);

fn key(op: Option<OpId>, processor: &str, target: Target, variant: &str, context: Context) -> Key {
    (op.map(|o| o as i64), processor.to_string(), target, variant.to_string(), context)
}

fn row(base: &MeasurementRow, op: Option<OpId>, target: Target, variant: &str, context: Context, s: &Summary) -> MeasurementRow {
    MeasurementRow {
        op_id: op.map(|o| o as i64),
        target,
        variant: variant.to_string(),
        context,
        samples: s.samples as i64,
        median_us: s.median_us,
        p10_us: s.p10_us,
        p90_us: s.p90_us,
        mean_us: s.mean_us,
        cv: s.cv,
        outliers_dropped: s.outliers_dropped as i64,
        ..base.clone()
    }
}

fn env_row(device: &str, session: i64, e: &EnvSnapshot) -> EnvSnapshotRow {
    let freqs: BTreeMap<String, Option<u64>> = e.core_freq_khz.iter().map(|c| (c.core.to_string(), c.khz)).collect();
    let temps: BTreeMap<String, f64> = e.temperatures.iter().map(|t| (t.zone.clone(), t.celsius)).collect();
    EnvSnapshotRow {
        device_id: device.to_string(),
        session_id: Some(session),
        load1: e.load_average.as_ref().map(|l| l.one),
        load5: e.load_average.as_ref().map(|l| l.five),
        load15: e.load_average.as_ref().map(|l| l.fifteen),
        other_cpu_pct: e.other_cpu_percent,
        freqs_khz: serde_json::to_string(&freqs).unwrap_or_default(),
        temps_c: serde_json::to_string(&temps).unwrap_or_default(),
        ..Default::default()
    }
}

/// Registers the device, its processors, the model and its ops; returns the model's row id.
pub fn register(store: &Store, device: &Device, graph: &Graph) -> Result<i64> {
    store.upsert_device(&DeviceRow {
        id: device.id.clone(),
        hostname: device.hostname.clone(),
        cpu_model: device.cpu_model.clone(),
        cores: device.cores as i64,
        memory_bytes: device.memory_bytes as i64,
        ..Default::default()
    })?;
    let processors: Vec<ProcessorRow> = device.processors.iter().map(|p| processor_row(&device.id, p)).collect();
    store.upsert_processors(&processors)?;
    let shapes: BTreeMap<&str, &[usize]> = graph.inputs.iter().map(|e| (e.name.as_str(), e.shape.as_slice())).collect();
    let model_id = store.upsert_model(&ModelRow {
        content_hash: graph.content_hash.clone(),
        name: graph.name.clone(),
        input_shapes: serde_json::to_string(&shapes).unwrap_or_default(),
        total_flops: graph.total_flops() as i64,
        op_count: graph.ops.len() as i64,
        ..Default::default()
    })?;
    let ops: Vec<OpRow> = graph
        .ops
        .iter()
        .map(|o| OpRow {
            model_id,
            op_id: o.id as i64,
            name: o.name.clone(),
            kind: o.kind.clone(),
            flops: o.cost.flops as i64,
            macs: o.cost.macs as i64,
            bytes_in: o.cost.bytes_in as i64,
            bytes_out: o.cost.bytes_out as i64,
            weight_bytes: o.cost.weight_bytes as i64,
            output_shape: serde_json::to_string(&o.outputs.first().map(|e| e.shape.clone()).unwrap_or_default()).unwrap_or_default(),
            split_axes: serde_json::to_string(&o.split_axes).unwrap_or_default(),
            features: serde_json::to_string(&o.features).unwrap_or_default(),
        })
        .collect();
    store.upsert_ops(&ops)?;
    Ok(model_id)
}

fn processor_row(device: &str, p: &Processor) -> ProcessorRow {
    ProcessorRow {
        device_id: device.to_string(),
        id: p.id.clone(),
        kind: p.kind.as_str().into(),
        cores: p.cores.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(","),
        threads: p.threads as i64,
        max_freq_khz: p.max_freq_khz.map(|f| f as i64),
    }
}

/// Profiles `graph` on the device's processors into `store`.
pub fn profile(graph: Arc<Graph>, device: &Device, store: &Store, options: &ProfileOptions, reporter: &dyn Reporter) -> Result<ProfileReport> {
    let started = Instant::now();
    let processors: Vec<Processor> = if options.processors.is_empty() {
        device.processors.clone()
    } else {
        device.processors_from_list(&options.processors)?.into_iter().cloned().collect()
    };
    let model_id = register(store, device, &graph)?;
    // Resume the latest unfinished session of this model on this device, or start one.
    let unfinished = store.sessions(&device.id, Some(model_id))?.into_iter().rev().find(|s| s.status != SessionStatus::Done);
    let resumed = unfinished.is_some();
    let mut session = match unfinished {
        Some(s) => s,
        None => {
            let mut s = SessionRow { device_id: device.id.clone(), model_id: Some(model_id), settings: serde_json::to_string(options).unwrap_or_default(), ..Default::default() };
            s.id = store.insert_session(&s)?;
            s
        }
    };
    let stored: HashSet<Key> = if options.force {
        HashSet::new()
    } else {
        store
            .measurements(&device.id, model_id)?
            .into_iter()
            .map(|m| (m.op_id, m.processor_id, m.target, m.variant, m.context))
            .collect()
    };
    let stored_transfers: HashSet<(String, String, i64)> = if options.force {
        HashSet::new()
    } else {
        store.transfers(&device.id)?.into_iter().map(|t| (t.src_processor, t.dst_processor, t.bytes)).collect()
    };

    // Plan the items up front so progress has a total.
    let mut split_items: Vec<(OpId, usize, Vec<usize>)> = vec![];
    for op in heavy_ops(&graph, options.split_min_share).into_iter().map(|id| &graph.ops[id]) {
        let Some(axis) = op.split_axis() else { continue };
        let dim = op.outputs[0].shape[axis];
        let align = if axis == op.channel_axis() { options.split_align } else { 1 };
        for &r in &options.split_ratios {
            let b = boundaries(dim, &[r], align);
            if b.len() == 3 && !split_items.iter().any(|(o, a, bb)| *o == op.id && *a == axis && *bb == b) {
                split_items.push((op.id, axis, b));
            }
        }
    }
    let pairs: Vec<(&Processor, &Processor)> = processors
        .iter()
        .flat_map(|a| processors.iter().map(move |b| (a, b)))
        .filter(|(a, b)| a.id != b.id && !a.shares_cores_with(b) && !a.kind.is_gpu() && !b.kind.is_gpu())
        .collect();
    // Copies between each CPU processor and each GPU, measured from the CPU processor's pinned worker.
    let gpu_pairs: Vec<(&Processor, &Processor)> =
        processors.iter().filter(|g| g.kind.is_gpu()).flat_map(|g| processors.iter().filter(|c| !c.kind.is_gpu()).map(move |c| (c, g))).collect();
    let items = |p: &Processor| if p.kind.is_gpu() { 1 + graph.ops.len() } else { 1 + graph.ops.len() + split_items.len() * 2 };
    let processor_items: usize = processors.iter().map(items).sum();
    // Joins of split parts, on every processor a split part can run on (the first of a pair above),
    // the other half written by the pair's other processor.
    let mut joiners: Vec<(&Processor, &Processor)> = vec![];
    for &(a, b) in &pairs {
        if !joiners.iter().any(|(j, _)| j.id == a.id) {
            joiners.push((a, b));
        }
    }
    reporter.begin((processor_items + (pairs.len() + gpu_pairs.len() + joiners.len()) * options.transfer_sizes.len() + 2) as u64);

    // Reference workload before, on a CPU processor (the first one profiled).
    let reference_processor = processors.iter().find(|p| !p.kind.is_gpu()).unwrap_or_else(|| device.all_cores());
    let reference_worker = Worker::spawn(reference_processor)?;
    reporter.advance("reference workload (before)");
    let before_ms = reference::time(&reference_worker)?;
    session.reference_before_ms = Some(before_ms);
    store.update_session(&session)?;

    let base = MeasurementRow { session_id: session.id, device_id: device.id.clone(), model_id, ..Default::default() };
    let mut written = 0usize;
    let mut skipped = 0usize;
    let mut unsupported_total = HashSet::new();
    let mut summaries = vec![];
    for p in &processors {
        let env = EnvSnapshot::take(device);
        let env_id = store.insert_env_snapshot(&env_row(&device.id, session.id, &env))?;
        let base = MeasurementRow { processor_id: p.id.clone(), env_id: Some(env_id), ..base.clone() };
        let worker = Worker::spawn(p)?;
        let threads = p.threads;
        let mut summary = ProcessorSummary { processor: p.id.clone(), model_median_ms: None, ops_in_context_sum_ms: None, hook_overhead_pct: None, slowest_ops: vec![], unsupported: 0 };

        // Whole model, and every op in context.
        reporter.advance(&format!("{}: whole model and ops in context", p.id));
        let model_key = key(None, &p.id, Target::Model, "whole", Context::InModel);
        let all_ctx = graph.ops.iter().all(|o| stored.contains(&key(Some(o.id), &p.id, Target::Op, "whole", Context::InModel)));
        if stored.contains(&model_key) && all_ctx {
            skipped += 1 + graph.ops.len();
        } else {
            let g = graph.clone();
            let rule = options.model_rule.clone();
            let kind = p.kind;
            let result = worker.run(move || -> tract_onnx::prelude::TractResult<WholeModel> {
                if kind.is_gpu() {
                    whole_model_on_gpu(&g, kind, &rule)
                } else {
                    let plan = compile(g.optimized(), threads)?;
                    let mut kernel = reference::Kernel::new()?;
                    let times = time_model_paired(&plan, &g.random_inputs(0), &rule, Completion::Returned, Some(&mut kernel))?;
                    Ok(WholeModel { times, op_nodes: g.ops.iter().map(|o| o.nodes.clone()).collect(), fallbacks: vec![] })
                }
            })?;
            match result {
                Ok(WholeModel { times, op_nodes, fallbacks }) => {
                    let whole = summarize(&times.plain);
                    let hooked = summarize(&times.hooked);
                    // The whole model and its ops in context were timed in the same rounds as the kernel.
                    let paired = MeasurementRow { reference_us: (!times.reference.is_empty()).then(|| summarize(&times.reference).median_us), ..base.clone() };
                    let base = &paired;
                    let mut rows = vec![row(base, None, Target::Model, "whole", Context::InModel, &whole)];
                    let mut op_medians = vec![];
                    for op in &graph.ops {
                        let samples: Vec<f64> = times.nodes.iter().map(|run| op_nodes[op.id].iter().map(|&n| run[n]).sum()).collect();
                        let s = summarize(&samples);
                        op_medians.push((op.name.clone(), op.kind.clone(), s.median_us));
                        rows.push(row(base, Some(op.id), Target::Op, "whole", Context::InModel, &s));
                    }
                    written += store.insert_measurements(&rows)?;
                    summary.model_median_ms = Some(whole.median_us / 1e3);
                    summary.ops_in_context_sum_ms = Some(op_medians.iter().map(|o| o.2).sum::<f64>() / 1e3);
                    summary.hook_overhead_pct = Some((hooked.median_us - whole.median_us) / whole.median_us * 100.0);
                    op_medians.sort_by(|a, b| b.2.total_cmp(&a.2));
                    summary.slowest_ops = op_medians.into_iter().take(5).collect();
                    // Ops a GPU runtime leaves on the CPU: measured in context above (that is what they
                    // cost in this configuration), but a plan must not count on the GPU for them.
                    if !fallbacks.is_empty() {
                        let rows: Vec<UnsupportedRow> = fallbacks
                            .iter()
                            .map(|(op, reason)| UnsupportedRow { device_id: device.id.clone(), model_id, op_id: *op as i64, processor_id: p.id.clone(), reason: reason.clone() })
                            .collect();
                        store.upsert_unsupported(&rows)?;
                        summary.unsupported = rows.len();
                        unsupported_total.extend(fallbacks.iter().map(|(op, _)| *op));
                    }
                }
                Err(e) => {
                    // The whole model does not run here: every op is unsupported on this processor.
                    let reason = tandem_graph::GraphError::Run { what: graph.name.clone(), reason: format!("{e:#}") }.to_string();
                    let rows: Vec<UnsupportedRow> = graph.ops.iter().map(|o| UnsupportedRow { device_id: device.id.clone(), model_id, op_id: o.id as i64, processor_id: p.id.clone(), reason: reason.clone() }).collect();
                    store.upsert_unsupported(&rows)?;
                    summary.unsupported = rows.len();
                    unsupported_total.extend(graph.ops.iter().map(|o| o.id));
                    summaries.push(summary);
                    continue;
                }
            }
        }

        if p.kind.is_gpu() {
            // Ops alone and split parts on a GPU need stage models cut from the decluttered graph (tract's
            // GPU transform has nothing to translate in the optimised one): not measured yet.
            tracing::info!(processor = %p.id, "ops alone and split parts are not measured on GPUs yet");
            summaries.push(summary);
            continue;
        }

        // Every op alone.
        for op in &graph.ops {
            reporter.advance(&format!("{}: {} alone", p.id, op.name));
            if stored.contains(&key(Some(op.id), &p.id, Target::Op, "whole", Context::Isolated)) {
                skipped += 1;
                continue;
            }
            let stage = graph.stage(&[op.id])?;
            let inputs = graph.random_values(&stage.inputs, op.id as u64);
            let rule = options.item_rule.clone();
            let result = worker.run(move || -> tract_onnx::prelude::TractResult<Vec<f64>> {
                let plan = compile(&stage.model, threads)?;
                time_runs(&plan, &inputs, &rule)
            })?;
            match result {
                Ok(samples) => written += store.insert_measurements(&[row(&base, Some(op.id), Target::Op, "whole", Context::Isolated, &summarize(&samples))])?,
                Err(e) => {
                    store.upsert_unsupported(&[UnsupportedRow { device_id: device.id.clone(), model_id, op_id: op.id as i64, processor_id: p.id.clone(), reason: format!("{e:#}") }])?;
                    summary.unsupported += 1;
                    unsupported_total.insert(op.id);
                }
            }
        }

        // Parts of heavy ops' splits.
        let mut done_parts: HashSet<(OpId, String)> = HashSet::new();
        for (op, axis, bounds) in &split_items {
            let dim = *bounds.last().unwrap() as f64;
            let split = graph.split(&[*op], *axis, bounds)?;
            for part in split.parts {
                let (rs, re) = (part.range.start as f64 / dim, part.range.end as f64 / dim);
                let variant = format!("axis{axis}:{rs:.4}-{re:.4}");
                reporter.advance(&format!("{}: {} part {variant}", p.id, graph.ops[*op].name));
                if !done_parts.insert((*op, variant.clone())) {
                    continue;
                }
                if stored.contains(&key(Some(*op), &p.id, Target::SplitPart, &variant, Context::Isolated)) {
                    skipped += 1;
                    continue;
                }
                let inputs = graph.random_values(&split.inputs, *op as u64);
                let rule = options.item_rule.clone();
                let model = part.model;
                let result = worker.run(move || -> tract_onnx::prelude::TractResult<Vec<f64>> {
                    let plan = compile(&model, threads)?;
                    time_runs(&plan, &inputs, &rule)
                })?;
                if let Ok(samples) = result {
                    let mut r = row(&base, Some(*op), Target::SplitPart, &variant, Context::Isolated, &summarize(&samples));
                    r.split_axis = Some(*axis as i64);
                    r.ratio_start = Some(rs);
                    r.ratio_end = Some(re);
                    written += store.insert_measurements(&[r])?;
                }
            }
        }
        summaries.push(summary);
    }

    // Hand-overs between processors that share no core.
    let mut transfers = 0;
    if !pairs.is_empty() && !options.transfer_sizes.is_empty() {
        for (a, b) in &pairs {
            let (wa, wb) = (Worker::spawn(a)?, Worker::spawn(b)?);
            for &bytes in &options.transfer_sizes {
                reporter.advance(&format!("transfer {} -> {}: {} KiB", a.id, b.id, bytes >> 10));
                if stored_transfers.contains(&(a.id.clone(), b.id.clone(), bytes as i64)) {
                    skipped += 1;
                    continue;
                }
                let s = measure_transfer(&wa, &wb, bytes, &options.item_rule)?;
                store.upsert_transfers(&[transfer_row(&device.id, session.id, (a.id.clone(), b.id.clone(), bytes as i64), &s)])?;
                transfers += 1;
            }
        }
    }
    if !options.transfer_sizes.is_empty() {
        for (p, partner) in &joiners {
            let (worker, other) = (Worker::spawn(p)?, Worker::spawn(partner)?);
            for &bytes in &options.transfer_sizes {
                reporter.advance(&format!("join on {}: {} KiB", p.id, bytes >> 10));
                let key = (p.id.clone(), p.id.clone(), bytes as i64);
                if stored_transfers.contains(&key) {
                    skipped += 1;
                    continue;
                }
                let s = measure_join(&worker, &other, bytes, &options.item_rule)?;
                store.upsert_transfers(&[transfer_row(&device.id, session.id, key, &s)])?;
                transfers += 1;
            }
        }
    }
    for (cpu, gpu) in &gpu_pairs {
        let worker = Worker::spawn(cpu)?;
        for &bytes in &options.transfer_sizes {
            reporter.advance(&format!("transfer {} <-> {}: {} KiB", cpu.id, gpu.id, bytes >> 10));
            let up = (cpu.id.clone(), gpu.id.clone(), bytes as i64);
            let down = (gpu.id.clone(), cpu.id.clone(), bytes as i64);
            if stored_transfers.contains(&up) && stored_transfers.contains(&down) {
                skipped += 1;
                continue;
            }
            let (kind, rule) = (gpu.kind, options.item_rule.clone());
            let measured = worker.run(move || -> tract_onnx::prelude::TractResult<(Summary, Summary)> {
                crate::gpu::measure_copies(kind, bytes, &rule)
            })?;
            let (s_up, s_down) = match measured {
                Ok(both) => both,
                Err(e) => {
                    tracing::warn!(src = %cpu.id, dst = %gpu.id, bytes, error = %format!("{e:#}"), "cannot measure copies to and from the GPU");
                    break;
                }
            };
            let rows: Vec<TransferRow> = [(up, s_up), (down, s_down)]
                .into_iter()
                .map(|(key, s)| transfer_row(&device.id, session.id, key, &s))
                .collect();
            store.upsert_transfers(&rows)?;
            transfers += rows.len();
        }
    }

    reporter.advance("reference workload (after)");
    let after_ms = reference::time(&reference_worker)?;
    let drift_pct = (after_ms - before_ms) / before_ms * 100.0;
    let env = EnvSnapshot::take(device);
    store.insert_env_snapshot(&env_row(&device.id, session.id, &env))?;
    session.reference_after_ms = Some(after_ms);
    session.drift_pct = Some(drift_pct);
    session.status = SessionStatus::Done;
    store.update_session(&session)?;
    reporter.end();
    if drift_pct.abs() > 5.0 {
        tracing::warn!("the device's speed drifted by {drift_pct:+.1}% during the session");
    }
    Ok(ProfileReport {
        profile_id: session.id,
        resumed,
        model_id,
        device_id: device.id.clone(),
        processors: processors.iter().map(|p| p.id.clone()).collect(),
        measurements: written,
        skipped,
        transfers,
        unsupported: unsupported_total.len(),
        reference_before_ms: before_ms,
        reference_after_ms: after_ms,
        drift_pct,
        drifted: drift_pct.abs() > 5.0,
        per_processor: summaries,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// The whole model timed on one processor: the timings, each op's nodes in the timed model (by op id),
/// and the ops a GPU runtime left on the CPU, with the reason.
struct WholeModel {
    times: ModelTimes,
    op_nodes: Vec<Vec<usize>>,
    fallbacks: Vec<(OpId, String)>,
}

/// The whole model on a GPU: compiled from the decluttered model through tract's GPU transform, timed
/// until the device has finished, its nodes charged to ops by name.
fn whole_model_on_gpu(graph: &Graph, kind: ProcessorKind, rule: &StopRule) -> tract_onnx::prelude::TractResult<WholeModel> {
    let plan = crate::gpu::compile(kind, graph.decluttered())?;
    let attribution = crate::gpu::attribute(graph, plan.model());
    let fallbacks = crate::gpu::fallbacks(kind, plan.model(), &attribution);
    let mut op_nodes = vec![vec![]; graph.ops.len()];
    for (node, op) in attribution.iter().enumerate() {
        if let Some(op) = op {
            op_nodes[*op].push(node);
        }
    }
    let times = time_model_until(&plan, &graph.random_inputs(0), rule, Completion::Device)?;
    Ok(WholeModel { times, op_nodes, fallbacks })
}

impl From<tandem_store::StoreError> for ProfileError {
    fn from(e: tandem_store::StoreError) -> Self {
        ProfileError::Store(e)
    }
}

/// The `transfers` row of one measured hand-over `(src, dst, bytes)`.
fn transfer_row(device_id: &str, session_id: i64, (src, dst, bytes): (String, String, i64), s: &Summary) -> TransferRow {
    TransferRow {
        device_id: device_id.to_string(),
        session_id: Some(session_id),
        src_processor: src,
        dst_processor: dst,
        bytes,
        samples: s.samples as i64,
        median_us: s.median_us,
        p10_us: s.p10_us,
        p90_us: s.p90_us,
        cv: s.cv,
        ..Default::default()
    }
}

/// The splittable ops whose split parts a profile measures: those with at least `min_share` of the
/// model's FLOPs or of the bytes its ops read and write (see [`ProfileOptions::split_min_share`]).
pub fn heavy_ops(graph: &Graph, min_share: f64) -> Vec<OpId> {
    let total_flops = graph.total_flops().max(1) as f64;
    let moved = |op: &tandem_graph::Op| (op.cost.bytes_in + op.cost.bytes_out + op.cost.weight_bytes) as f64;
    let total_bytes = graph.ops.iter().map(moved).sum::<f64>().max(1.0);
    graph
        .ops
        .iter()
        .filter(|op| !op.split_axes.is_empty())
        .filter(|op| op.cost.flops as f64 >= min_share * total_flops || moved(op) >= min_share * total_bytes)
        .map(|op| op.id)
        .collect()
}
