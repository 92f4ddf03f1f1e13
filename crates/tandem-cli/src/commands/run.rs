//! `tandem run`: execute a stored plan on this device's processors, verify it, measure it against every
//! processor alone, compare with its prediction, and store the run.

use std::path::Path;
use std::sync::Arc;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tandem_device::{Device, EnvSnapshot};
use tandem_exec::{Executor, MeasureOptions, RunReport};
use tandem_graph::Graph;
use tandem_plan::Plan;
use tandem_store::{RunRow, Store};

use crate::cli::RunArgs;
use crate::table::Table;

/// The JSON printed by `tandem run --json` (and, with `model` and `plan`, by `tandem auto --json`): the
/// [`RunReport`]'s fields at the top level, plus the plan, the stored run and the latency in ms:
///
/// ```text
/// { "plan_id", "run_id", "model", "verified", "max_abs_diff", "max_rel_diff", "tolerance",
///   "outputs": [{name, max_abs_diff, max_rel_diff, ok}],
///   "measured_ms": {median, p90, p10, samples, cv} | null,        // null when verification failed
///   "measured": {median_us, p10_us, p90_us, ...} | null,
///   "predicted_ms" | null, "prediction_error" | null,             // (predicted - measured) / measured
///   "baselines": [{name: "single:<processor>", processor, measured_ms, p90_ms, samples, cv}],
///   "best_baseline", "speedup_vs_best_baseline",                  // best baseline median / plan median
///   "speedup_ci95": [lo, hi] | null,                              // paired bootstrap over the rounds
///   "versus_best_baseline": "faster" | "slower" | "indistinguishable" | null,
///   "stages": [{stage, processor, ops, part, measured_us, p90_us, start_us, end_us, wait_us, predicted_us, predicted_start_us}],
///   "transfers": [{from_stage, to_stage, src, dst, bytes, measured_us, predicted_us}],
///   "host_speed": {kernels: [{processor, measured_us, typical_us}], slowdown, predicted_ms, prediction_error} | null,
///                                                               // the reference kernel timed beside the plan
///   "handover_us", "timeline": {latency_us, period_us, spans},
///   "stream": {requests, window, rps, predicted_rps, sequential_rps, latency_median_ms, elapsed_ms} | null,
///   "trace": path | null, "elapsed_s" }
/// ```
///
/// The plan's time is taken from the caller's side (its dispatch overhead included), a baseline's
/// inside its pinned worker around tract's run; runs of the plan and of the baselines alternate.
#[derive(Debug, Serialize)]
pub struct RunJson {
    /// The plan run.
    pub plan_id: i64,
    /// The row written to `runs`.
    pub run_id: i64,
    /// The model's name.
    pub model: String,
    /// The plan's measured latency in milliseconds.
    pub measured_ms: Option<MeasuredMs>,
    /// Where the Chrome trace was written, with `--trace`.
    pub trace: Option<String>,
    /// Everything measured.
    #[serde(flatten)]
    pub report: RunReport,
}

/// The plan's latency distribution.
#[derive(Debug, Serialize)]
pub struct MeasuredMs {
    /// Median.
    pub median: f64,
    /// 90th percentile.
    pub p90: f64,
    /// 10th percentile.
    pub p10: f64,
    /// Samples kept.
    pub samples: usize,
    /// Coefficient of variation.
    pub cv: f64,
}

/// A plan executed and stored.
#[derive(Debug)]
pub struct Executed {
    /// The plan as stored.
    pub plan: Plan,
    /// The JSON object of `run --json`, with everything measured.
    pub json: RunJson,
}

/// Runs `tandem run`.
pub fn run(args: &RunArgs, db: &Path, json: bool) -> Result<()> {
    let graph = Arc::new(super::load_model(&args.model)?);
    let device = Device::discover()?;
    let store = Store::open(db)?;
    if args.adaptive {
        return adaptive(graph, args, &store, &device, json);
    }
    let options = measure_options(args.budget_ms, args.stream);
    let done = execute(graph, args.plan, &store, &device, &options, args.trace.as_deref())?;
    if json {
        super::print_json(&done.json)?;
    } else {
        print_summary(&done)?;
    }
    fail_unverified(&done.json.report)
}

/// The measurement protocol of `run`: the default, with `--budget-ms` and `--stream` when given.
pub fn measure_options(budget_ms: Option<u64>, stream: Option<usize>) -> MeasureOptions {
    let mut options = MeasureOptions { stream, ..Default::default() };
    if let Some(ms) = budget_ms {
        options.rule.budget_s = ms as f64 / 1e3;
    }
    options
}

/// Reads plan `plan_id`, refuses it when it was made for another model, another device, with cost
/// models older than the newest, or names a processor this device lacks; then runs, verifies and
/// measures it, writes `trace` when given, and stores the run (per-stage and per-transfer timings,
/// baselines and both timelines in `runs.details`). A plan that fails verification is stored too,
/// with `verified = 0`: see [`fail_unverified`].
pub fn execute(graph: Arc<Graph>, plan_id: i64, store: &Store, device: &Device, options: &MeasureOptions, trace: Option<&Path>) -> Result<Executed> {
    let plan = stored_plan(&graph, plan_id, store, device)?;
    let env_before = EnvSnapshot::take(device);
    let exec = Executor::new(graph.clone(), &plan, &device.processors)?;
    // The speed the plan's cost models predict at: the host's speed is read against it.
    let mut options = options.clone();
    if let Some(version) = plan.cost_model_version {
        let speed_rows: Vec<tandem_cost::ModelRecord> = store
            .cost_models(&device.id, version)?
            .into_iter()
            .filter(|r| r.op_kind == tandem_cost::SPEED)
            .filter_map(|r| Some(tandem_cost::ModelRecord { params: serde_json::from_str(&r.params).ok()?, processor: r.processor_id, op_kind: r.op_kind, samples: r.samples, mape: r.mape, within_10pct: r.within_10pct, fallback_of: r.fallback_of }))
            .collect();
        options.typical_reference_us = tandem_cost::CostModels::speed_of(&speed_rows);
    }
    let options = &options;
    let report = tandem_exec::measure(&exec, &device.processors, options)?;
    let env_after = EnvSnapshot::take(device);
    if let Some(path) = trace {
        let t = tandem_exec::chrome_trace(&report.timeline, &plan.predicted, exec.processors());
        std::fs::write(path, serde_json::to_string(&t)?).with_context(|| format!("cannot write the trace to {}", path.display()))?;
    }
    drop(exec);

    let measured = report.measured.as_ref();
    let details = serde_json::json!({
        "model": graph.name,
        "stages": report.stages,
        "transfers": report.transfers,
        "handover_us": report.handover_us,
        "host_speed": report.host_speed,
        "outputs": report.outputs,
        "tolerance": report.tolerance,
        "measured": report.measured,
        "timeline": report.timeline,
        "predicted_timeline": plan.predicted,
        "stream": report.stream,
        "options": options,
        "env_before": env_before,
        "env_after": env_after,
        "elapsed_s": report.elapsed_s,
    });
    let baselines: Vec<serde_json::Value> = report.baselines.iter().map(|b| serde_json::json!({"name": b.name, "measured_ms": b.measured_ms, "p90_ms": b.p90_ms, "samples": b.samples})).collect();
    let run_id = store.insert_run(&RunRow {
        plan_id,
        device_id: device.id.clone(),
        verified: report.verified,
        max_abs_diff: Some(report.max_abs_diff).filter(|d| d.is_finite()),
        max_rel_diff: Some(report.max_rel_diff).filter(|d| d.is_finite()),
        median_ms: measured.map(|m| m.median_us / 1e3),
        p90_ms: measured.map(|m| m.p90_us / 1e3),
        predicted_ms: report.predicted_ms,
        prediction_error: report.prediction_error,
        baselines: serde_json::to_string(&baselines)?,
        details: details.to_string(),
        ..Default::default()
    })?;
    let json = RunJson {
        plan_id,
        run_id,
        model: graph.name.clone(),
        measured_ms: measured.map(|m| MeasuredMs { median: m.median_us / 1e3, p90: m.p90_us / 1e3, p10: m.p10_us / 1e3, samples: m.samples, cv: m.cv }),
        trace: trace.map(|p| p.display().to_string()),
        report,
    };
    Ok(Executed { plan, json })
}

/// The JSON of `tandem run --adaptive --json`.
#[derive(Debug, Serialize)]
pub struct AdaptiveJson {
    /// The plan it started with.
    pub plan_id: i64,
    /// The row written to `runs`.
    pub run_id: i64,
    /// The model's name.
    pub model: String,
    /// Requests served.
    pub requests: usize,
    /// Every request's outputs matched the single-processor run.
    pub verified: bool,
    /// Latency over all requests.
    pub measured_ms: MeasuredMs,
    /// Each plan it ran: `{plan, processors, stages, splits, requests, median_ms}`.
    pub plans: Vec<serde_json::Value>,
    /// Every change of belief about the cores, and the switch it caused.
    pub events: Vec<tandem_exec::Event>,
    /// Each request's latency, ms, in order.
    pub latencies_ms: Vec<f64>,
}

/// `tandem run --adaptive`: serves `--requests` requests one after another, re-planning between them
/// when a core's speed changes (another app starts or stops), verifies every output, and stores the
/// run with every switch.
fn adaptive(graph: Arc<Graph>, args: &RunArgs, store: &Store, device: &Device, json: bool) -> Result<()> {
    let plan = stored_plan(&graph, args.plan, store, device)?;
    let planning = super::tune::planning(&graph, store, &device.id)?;
    let replanner = tandem_exec::Replanner { problem: planning.problem, model: planning.model_ref, device_id: device.id.clone(), cost_model_version: Some(planning.cost_model_version) };
    let inputs = graph.random_inputs(0);
    let reference = graph.run_whole(inputs.clone())?;
    let names: Vec<String> = graph.outputs.iter().map(|e| e.name.clone()).collect();
    let env_before = EnvSnapshot::take(device);
    let mut runner = tandem_exec::Adaptive::new(graph.clone(), &plan, &device.processors, replanner, Default::default())?;
    let (mut latencies, mut on_plan, mut verified) = (vec![], vec![], true);
    for _ in 0..args.requests {
        let served = runner.request(inputs.clone())?;
        verified &= tandem_exec::verify(&names, &reference, &served.outputs, 1e-4).iter().all(|c| c.ok);
        latencies.push(served.latency_us / 1e3);
        on_plan.push(served.plan);
        if let (Some(e), false) = (&served.event, json) {
            eprintln!("after request {}: {} -> beliefs {:?}{}", e.after_requests, e.detection.evidence, e.beliefs, if e.switched { format!(", plan {} -> {}", e.from_plan, e.to_plan) } else { ", plan kept".into() });
        }
    }
    let env_after = EnvSnapshot::take(device);
    // Every request counts, slow ones included: a switch is judged by what the requests got.
    let q = |x: f64| tandem_profile::percentile(&latencies, x);
    let mean = latencies.iter().sum::<f64>() / latencies.len().max(1) as f64;
    let sd = (latencies.iter().map(|l| (l - mean).powi(2)).sum::<f64>() / (latencies.len().max(2) - 1) as f64).sqrt();
    let plans: Vec<serde_json::Value> = runner
        .plans()
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mine: Vec<f64> = latencies.iter().zip(&on_plan).filter(|(_, &q)| q == i).map(|(l, _)| *l).collect();
            let median = (!mine.is_empty()).then(|| tandem_profile::percentile(&mine, 0.5));
            serde_json::json!({"plan": i, "processors": p.processors, "stages": p.stages.len(), "splits": p.splits.len(), "predicted_ms": p.predicted.latency_us / 1e3, "requests": mine.len(), "median_ms": median})
        })
        .collect();
    let events = runner.events().to_vec();
    drop(runner);
    let details = serde_json::json!({"model": graph.name, "mode": "adaptive", "latencies_ms": latencies, "plan_of_request": on_plan, "plans": plans, "events": events, "env_before": env_before, "env_after": env_after});
    let run_id = store.insert_run(&RunRow {
        plan_id: args.plan,
        device_id: device.id.clone(),
        verified,
        median_ms: Some(q(0.5)),
        p90_ms: Some(q(0.9)),
        predicted_ms: Some(plan.predicted.latency_us / 1e3),
        baselines: "[]".into(),
        details: details.to_string(),
        ..Default::default()
    })?;
    let out = AdaptiveJson {
        plan_id: args.plan,
        run_id,
        model: graph.name.clone(),
        requests: latencies.len(),
        verified,
        measured_ms: MeasuredMs { median: q(0.5), p90: q(0.9), p10: q(0.1), samples: latencies.len(), cv: sd / mean },
        plans,
        events,
        latencies_ms: latencies,
    };
    if json {
        super::print_json(&out)?;
    } else {
        let mut text = format!(
            "plan {} for {}, adaptive: {} requests, median {:.3} ms, p90 {:.3} ms, verified: {}; run {} stored\n",
            out.plan_id, out.model, out.requests, out.measured_ms.median, out.measured_ms.p90, if verified { "yes" } else { "NO" }, run_id
        );
        let mut t = Table::new(&["plan", "processors", "stages", "splits", "predicted ms", "requests", "median ms"]);
        for p in &out.plans {
            let f = |k: &str| p[k].as_f64().map(|v| format!("{v:.3}")).unwrap_or_else(|| "-".into());
            t.row(vec![p["plan"].to_string(), p["processors"].as_array().map(|a| a.iter().filter_map(|x| x.as_str()).collect::<Vec<_>>().join(" + ")).unwrap_or_default(), p["stages"].to_string(), p["splits"].to_string(), f("predicted_ms"), p["requests"].to_string(), f("median_ms")]);
        }
        text.push_str(&t.render());
        text.push_str(&format!("{} changes of belief, {} switches; dig further: tandem query \"select json_extract(details, '$.events') from runs where id = {run_id}\"\n", out.events.len(), out.events.iter().filter(|e| e.switched).count()));
        crate::out(&text)?;
    }
    if !verified {
        bail!("some requests' outputs differed from the single-processor run; the run is stored with verified = 0");
    }
    Ok(())
}

/// Plan `plan_id`, refused when it was made for another model, another device, or names a processor
/// this device lacks; or when it was made with cost models older than the newest and has never run
/// verified on this device.
///
/// Why a plan that has run may be older than the cost models: `tandem auto` refits after each plan
/// it runs and keeps the fastest plan as measured, which may be one made before the last refit. Its
/// measured run is the evidence for it; only its stored prediction is the older models'.
fn stored_plan(graph: &Graph, plan_id: i64, store: &Store, device: &Device) -> Result<Plan> {
    let row = store.plan(plan_id)?.with_context(|| {
        format!("no plan {plan_id} in {}: run `tandem tune {}` first, or list the plans with `tandem query \"select id, model_id, predicted_ms from plans\"`", store.path().display(), graph.name)
    })?;
    let plan: Plan = serde_json::from_str(&row.plan).with_context(|| format!("plan {plan_id} in {} cannot be read; run `tandem tune` again", store.path().display()))?;
    plan.check_model(&tandem_plan::build::model_ref(&graph))?;
    if plan.device_id != device.id {
        bail!("plan {plan_id} was made for device {}, but this device is {}: run `tandem tune` on this device", plan.device_id, device.id);
    }
    let ids: Vec<&str> = device.processors.iter().map(|p| p.id.as_str()).collect();
    plan.check_processors(&ids)?;
    if let Err(stale) = plan.check_cost_model(store.latest_cost_model_version(&device.id)?) {
        let ran = store.runs(plan_id)?.iter().any(|r| r.verified && r.device_id == device.id);
        if !ran {
            return Err(stale.into());
        }
        eprintln!("note: plan {plan_id} was made with cost models version {}, older than the newest; it runs because it has run verified here before (its prediction is the older models')", plan.cost_model_version.unwrap_or(0));
    }
    Ok(plan)
}

/// The error ending a run whose outputs differ from the single-processor run: it names the output and
/// the differences.
pub fn fail_unverified(report: &RunReport) -> Result<()> {
    match tandem_exec::failure(&report.outputs, report.tolerance) {
        Some(message) => bail!("{message}; the run is stored with verified = 0"),
        None => Ok(()),
    }
}

fn print_summary(done: &Executed) -> Result<()> {
    let (j, r, plan) = (&done.json, &done.json.report, &done.plan);
    let mut out = format!(
        "plan {} for {} ({} stages on {}): run {} stored\n",
        j.plan_id,
        j.model,
        plan.stages.len(),
        plan.processors.join(", "),
        j.run_id
    );
    out.push_str(&format!(
        "verified: {} (max abs diff {:.3e}, max rel diff {:.3e} against the single-processor run)\n",
        if r.verified { "yes" } else { "NO" },
        r.max_abs_diff,
        r.max_rel_diff
    ));
    if let Some(m) = &j.measured_ms {
        let predicted = match (r.predicted_ms, r.prediction_error) {
            (Some(p), Some(e)) => format!(", predicted {p:.3} ms ({:+.1}%)", e * 100.0),
            _ => String::new(),
        };
        out.push_str(&format!("measured: median {:.3} ms, p90 {:.3} ms over {} runs{predicted}\n", m.median, m.p90, m.samples));
        if let Some(h) = &r.host_speed {
            let kernels: Vec<String> = h.kernels.iter().map(|k| format!("{} {:.0} µs against {:.0}", k.processor, k.measured_us, k.typical_us)).collect();
            let at_speed = match (h.predicted_ms, h.prediction_error) {
                (Some(p), Some(e)) => format!("; predicted at this speed {p:.3} ms ({:+.1}%)", e * 100.0),
                _ => String::new(),
            };
            out.push_str(&format!("host speed: {:.2}x the profiles' time (reference kernel {}){at_speed}\n", h.slowdown, kernels.join(", ")));
        }
        let mut t = Table::new(&["baseline", "median ms", "p90 ms", "plan speedup"]);
        for b in &r.baselines {
            t.row(vec![b.name.clone(), format!("{:.3}", b.measured_ms), format!("{:.3}", b.p90_ms), format!("{:.2}", b.measured_ms / m.median)]);
        }
        out.push_str(&t.render());
        if let Some(best) = &r.best_baseline {
            out.push_str(&format!("speedup against the best baseline ({best}): {}\n", speedup_text(r)));
        }
        let f = |v: Option<f64>| v.map(|v| format!("{v:.0}")).unwrap_or_else(|| "-".into());
        let mut t = Table::new(&["stage", "processor", "ops", "start µs", "measured µs", "predicted µs", "wait µs"]);
        for s in &r.stages {
            let ops = match s.part {
                Some([split, a, b]) => format!("split {split} [{a}..{b})"),
                None => ops_label(&s.ops),
            };
            t.row(vec![s.stage.to_string(), s.processor.clone(), ops, format!("{:.0}", s.start_us), format!("{:.0}", s.measured_us), f(s.predicted_us), format!("{:.0}", s.wait_us)]);
        }
        out.push_str(&t.render());
        if let Some(h) = r.handover_us {
            out.push_str(&format!("hand-over between processors: {h:.0} µs median (ready to started)\n"));
        }
        if let Some(s) = &r.stream {
            let predicted = s.predicted_rps.map(|p| format!(", predicted {p:.1}")).unwrap_or_default();
            out.push_str(&format!("stream of {} requests: {:.1} requests/s{predicted} (one at a time: {:.1})\n", s.requests, s.rps, s.sequential_rps));
        }
    }
    if let Some(t) = &j.trace {
        out.push_str(&format!("trace written to {t}: open it in https://ui.perfetto.dev\n"));
    }
    out.push_str(&format!("dig further: tandem query \"select * from runs where id = {}\"\n", j.run_id));
    crate::out(&out)?;
    Ok(())
}

/// `0-17` for a contiguous run of op ids, else the count.
fn ops_label(ops: &[usize]) -> String {
    match ops {
        [] => String::new(),
        [one] => one.to_string(),
        [first, .., last] if last - first + 1 == ops.len() => format!("{first}-{last}"),
        _ => format!("{} ops", ops.len()),
    }
}

/// The speedup against the best baseline with its interval and what it says:
/// `1.24x (95% CI 1.20-1.28: faster)`; `-` without baselines.
pub fn speedup_text(r: &tandem_exec::RunReport) -> String {
    match (r.speedup_vs_best_baseline, r.speedup_ci95, r.versus_best_baseline) {
        (Some(s), Some([lo, hi]), Some(v)) => format!("{s:.2}x (95% CI {lo:.2}-{hi:.2}: {})", v.label()),
        (Some(s), _, _) => format!("{s:.2}x"),
        _ => "-".into(),
    }
}
