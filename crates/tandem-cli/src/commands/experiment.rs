//! `tandem experiment dynamics`: what a background load does to a tuned plan, and what adapting buys.
//!
//! One stream of requests is served three times, each under the same schedule: idle, then a load
//! pinned to one core (a compute spinner by default: at equal priority it takes about half of the
//! core from whatever else runs there), then idle again. The load runs in a child process, as another
//! app would: this process sees it only through the OS.
//!
//! - static: the plan tuned for the idle device, kept throughout;
//! - adaptive: the same plan under [`tandem_exec::Adaptive`], which notices the slowdown from stage
//!   times and probes, re-plans and switches between requests;
//! - re-tuned: a plan tuned for the loaded device, the reference the adaptive plan is measured
//!   against. Its slowdown factor is measured, not assumed: the loaded core's processor runs the whole
//!   model alone with and without the load, interleaved, and the median ratio slows that core in the
//!   planning problem.
//!
//! Every request's outputs are verified against the plain single-processor run. Each pass is stored as
//! a run (`runs.details` holds every request's latency and every switch), the retuned plan as a plan.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tandem_device::{BackgroundLoad, Device, EnvSnapshot, LoadKind, LoadSpec};
use tandem_exec::{Adaptive, AdaptiveOptions, Event, Executor, Replanner};
use tandem_graph::{Graph, TValue};
use tandem_plan::{Objective, Plan};
use tandem_profile::percentile;
use tandem_store::{PlanRow, RunRow, Store};

use crate::cli::{DynamicsArgs, ExperimentArgs, ExperimentCommand, LoadArgs, LoadKindArg};
use crate::table::Table;

/// Runs `tandem experiment`.
pub fn run(args: &ExperimentArgs, db: &Path, json: bool) -> Result<()> {
    match &args.command {
        ExperimentCommand::Dynamics(a) => dynamics(a, db, json),
        ExperimentCommand::Load(a) => load(a),
    }
}

/// The hidden `experiment load`: starts the load, says `ready` on stdout, and stops when stdin closes
/// (the parent stopped it, or died).
fn load(args: &LoadArgs) -> Result<()> {
    let spec = LoadSpec { kind: args.kind.into(), cores: args.cores.clone(), threads_per_core: args.threads, duty: args.duty };
    let load = BackgroundLoad::start(&spec)?;
    println!("ready");
    let mut sink = String::new();
    while std::io::stdin().read_line(&mut sink)? > 0 {}
    load.stop();
    Ok(())
}

impl From<LoadKindArg> for LoadKind {
    fn from(k: LoadKindArg) -> LoadKind {
        match k {
            LoadKindArg::Compute => LoadKind::Compute,
            LoadKindArg::Memory => LoadKind::Memory,
        }
    }
}

/// A background load running in a child process of this binary: another app, as far as this process
/// and its accounting of core use can tell. Stopped (and waited for) on drop.
struct LoadProcess(std::process::Child);

impl LoadProcess {
    fn start(spec: &LoadSpec) -> Result<LoadProcess> {
        use std::io::BufRead as _;
        let exe = std::env::current_exe().context("cannot find this program to start the background load")?;
        let cores: Vec<String> = spec.cores.iter().map(|c| c.to_string()).collect();
        let mut child = std::process::Command::new(exe)
            .args(["experiment", "load", "--kind", spec.kind.as_str(), "--cores", &cores.join(","), "--threads", &spec.threads_per_core.to_string(), "--duty", &spec.duty.to_string()])
            .stdin(std::process::Stdio::piped())
            .stdout(std::process::Stdio::piped())
            .spawn()
            .context("cannot start the background load")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("no stdout from the background load")?;
        std::io::BufReader::new(stdout).read_line(&mut line)?;
        if line.trim() != "ready" {
            let _ = child.kill();
            bail!("the background load did not start: {}", line.trim());
        }
        Ok(LoadProcess(child))
    }
}

impl Drop for LoadProcess {
    fn drop(&mut self) {
        // Closing its stdin stops it; wait so the core is free when this returns.
        drop(self.0.stdin.take());
        let _ = self.0.wait();
    }
}

/// When the load runs, and what it is.
#[derive(Debug, Clone, Serialize)]
pub struct Schedule {
    /// Requests per pass.
    pub requests: usize,
    /// The load starts before this request...
    pub load_start: usize,
    /// ...and stops before this one.
    pub load_stop: usize,
    /// The load.
    pub load: LoadSpec,
    /// `compute spinner x1 on core 1 (100%)`.
    pub load_description: String,
}

impl Schedule {
    fn phase(&self, i: usize) -> Phase {
        if i < self.load_start {
            Phase::Before
        } else if i < self.load_stop {
            Phase::During
        } else {
            Phase::After
        }
    }
}

/// Before, during or after the load.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Phase {
    /// Before the load starts.
    Before,
    /// While it runs.
    During,
    /// After it stopped.
    After,
}

impl Phase {
    fn as_str(self) -> &'static str {
        match self {
            Phase::Before => "before",
            Phase::During => "during",
            Phase::After => "after",
        }
    }
}

/// One request of one pass.
#[derive(Debug, Clone, Serialize)]
pub struct RequestRow {
    /// Its index in the pass.
    pub request: usize,
    /// Its phase.
    pub phase: Phase,
    /// Latency, ms.
    pub latency_ms: f64,
    /// When it started, ms from the start of the pass.
    pub start_ms: f64,
    /// The plan it ran on (the pass's plan index: 0 for the plan it started with).
    pub plan: usize,
    /// Whether its outputs matched the reference.
    pub verified: bool,
}

/// Latency figures of one pass.
#[derive(Debug, Clone, Serialize)]
pub struct PassJson {
    /// The plan it started with.
    pub plan_id: i64,
    /// The run stored for it.
    pub run_id: i64,
    /// Median latency before the load, ms.
    pub p50_before_ms: f64,
    /// Median latency while the load runs, ms.
    pub p50_during_ms: f64,
    /// Median latency after the load, ms.
    pub p50_after_ms: f64,
    /// 90th percentiles.
    pub p90_before_ms: f64,
    /// See `p90_before_ms`.
    pub p90_during_ms: f64,
    /// See `p90_before_ms`.
    pub p90_after_ms: f64,
    /// `p50_during_ms / p50_before_ms`.
    pub slowdown_during: f64,
    /// Every request's output verified.
    pub verified: bool,
    /// Adaptive only: requests from the load's start to the first switch (the request it takes effect
    /// from); `None` when it never switched during the load.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub switch_after_requests: Option<usize>,
    /// Adaptive only: every change of belief.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<Event>,
    /// Adaptive only: the plans it ran, as processors and stage counts (`cpu:0 + cpu:1, 31 stages`).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub plans: Vec<String>,
}

/// The JSON of `tandem experiment dynamics --json`.
#[derive(Debug, Serialize)]
pub struct DynamicsJson {
    /// The model.
    pub model: String,
    /// The device.
    pub device_id: String,
    /// The load and when it runs.
    pub schedule: Schedule,
    /// The plan tuned for the idle device, kept throughout.
    #[serde(rename = "static")]
    pub static_: PassJson,
    /// The same plan, adapting.
    pub adaptive: PassJson,
    /// A plan tuned for the loaded device.
    pub retuned: PassJson,
    /// `retuned.p50_during_ms`, as the issue names it.
    pub retuned_p50_during_ms: f64,
    /// Measured slowdown of the loaded core's processor running the model alone under the load.
    pub loaded_factor: f64,
    /// `adaptive.p50_during_ms / retuned.p50_during_ms`.
    pub adaptive_vs_retuned_during: f64,
    /// Every request of every pass verified.
    pub verified: bool,
    /// Where the per-request CSV and the Chrome trace went.
    pub csv: Option<String>,
    /// See `csv`.
    pub trace: Option<String>,
    /// Throttling seen in environment snapshots taken around each pass.
    pub throttling: Vec<String>,
    /// Wall time, s.
    pub elapsed_s: f64,
}

fn dynamics(args: &DynamicsArgs, db: &Path, json: bool) -> Result<()> {
    let started = Instant::now();
    let device = Device::discover()?;
    let cores = device.all_cores().cores.clone();
    let load_core = args.load_core.unwrap_or_else(|| *cores.last().unwrap_or(&0));
    if !cores.contains(&load_core) {
        bail!("--load-core {load_core}: this device's cores are {cores:?}");
    }
    if cores.len() < 2 {
        bail!("this device has one core: a load on it leaves no other processor to move work to");
    }
    if !(args.load_start < args.load_stop && args.load_stop <= args.requests) {
        bail!("the load must start before it stops, within the stream: --load-start {} --load-stop {} --requests {}", args.load_start, args.load_stop, args.requests);
    }
    if !(args.load_duty > 0.0 && args.load_duty <= 1.0) {
        bail!("--load-duty {}: give a share of each period in (0, 1]", args.load_duty);
    }
    let Some(loaded_processor) = device.processors.iter().find(|p| p.cores == [load_core]).cloned() else {
        bail!("no single-core processor owns core {load_core}");
    };
    let spec = LoadSpec {
        kind: args.load_kind.into(),
        cores: vec![load_core],
        threads_per_core: args.load_threads,
        duty: args.load_duty,
    };
    let schedule = Schedule { requests: args.requests, load_start: args.load_start, load_stop: args.load_stop, load_description: spec.describe(), load: spec };

    let graph = Arc::new(super::load_model(&args.model)?);
    let say = |s: &str| {
        if !json {
            eprintln!("{s}");
        }
    };
    say(&format!("profiling and fitting {} (what the database holds is reused)", graph.name));
    super::auto::prepare(graph.clone(), &args.model, &[], args.budget_ms, db, json)?;
    let store = Store::open(db)?;
    let tuned = super::tune::tune(&graph, &store, None, Objective::Latency, crate::cli::DEFAULT_MIN_GAIN_PCT / 100.0)?;
    let planning = super::tune::planning(&graph, &store, &device.id)?;
    let replanner = Replanner { problem: planning.problem.clone(), model: planning.model_ref.clone(), device_id: device.id.clone(), cost_model_version: Some(planning.cost_model_version) };

    let inputs = graph.random_inputs(0);
    let reference = graph.run_whole(inputs.clone())?;
    let names: Vec<String> = graph.outputs.iter().map(|e| e.name.clone()).collect();
    let check = |outputs: &[TValue]| tandem_exec::verify(&names, &reference, outputs, 1e-4).iter().all(|c| c.ok);
    let mut throttling = vec![];
    let mut note_env = |when: &str| {
        let t = EnvSnapshot::take(&device).throttling(&device);
        if t.throttled {
            throttling.push(format!("{when}: {}", t.reason.unwrap_or_default()));
        }
    };

    // 1. The static plan.
    say(&format!("static: plan {} ({}) for {} requests, {} from request {} to {}", tuned.json.plan_id, describe(&tuned.plan), schedule.requests, schedule.load_description, schedule.load_start, schedule.load_stop));
    note_env("before the static pass");
    let exec = Executor::new(graph.clone(), &tuned.plan, &device.processors)?;
    let static_rows = serve(&schedule, || {
        let o = exec.run(inputs.clone())?;
        Ok((o.timeline.latency_us / 1e3, 0, check(&o.outputs)))
    })?;
    drop(exec);

    // 2. Adaptive, from the same plan.
    say("adaptive: the same plan, re-planning when a core's speed changes");
    note_env("before the adaptive pass");
    let mut adaptive = Adaptive::new(graph.clone(), &tuned.plan, &device.processors, replanner.clone(), AdaptiveOptions::default())?;
    let adaptive_rows = serve(&schedule, || {
        let s = adaptive.request(inputs.clone())?;
        Ok((s.latency_us / 1e3, s.plan, check(&s.outputs)))
    })?;
    let events = adaptive.events().to_vec();
    let adaptive_plans: Vec<String> = adaptive.plans().into_iter().map(describe).collect();
    drop(adaptive);

    // 3. Re-tuned for the load, with its slowdown measured on this model.
    note_env("before the re-tuned pass");
    let loaded_factor = measure_factor(&graph, &device, &loaded_processor, &schedule.load, &inputs)?;
    let (retuned_plan, _) = replanner.plan(|c| if c.contains(&load_core) { loaded_factor } else { 1.0 }, &Default::default())?;
    say(&format!("re-tuned: {} measured {loaded_factor:.2}x slower under the load; plan for that: {}", loaded_processor.id, describe(&retuned_plan)));
    let retuned_id = store.insert_plan(&PlanRow {
        model_id: planning.model_id,
        device_id: device.id.clone(),
        cost_model_version: Some(planning.cost_model_version),
        objective: format!("latency, {} {loaded_factor:.2}x slower", loaded_processor.id),
        plan: serde_json::to_string(&retuned_plan)?,
        predicted_ms: retuned_plan.predicted.latency_us / 1e3,
        ..Default::default()
    })?;
    let exec = Executor::new(graph.clone(), &retuned_plan, &device.processors)?;
    let retuned_rows = serve(&schedule, || {
        let o = exec.run(inputs.clone())?;
        Ok((o.timeline.latency_us / 1e3, 0, check(&o.outputs)))
    })?;
    drop(exec);
    note_env("after the passes");

    let store_pass = |mode: &str, plan_id: i64, plan: &Plan, rows: &[RequestRow], events: &[Event]| -> Result<PassJson> {
        let mut pass = summarize(&schedule, rows, events);
        let during: Vec<f64> = rows.iter().filter(|r| r.phase == Phase::During).map(|r| r.latency_ms).collect();
        pass.plan_id = plan_id;
        pass.run_id = store.insert_run(&RunRow {
            plan_id,
            device_id: device.id.clone(),
            verified: pass.verified,
            median_ms: Some(median(&during)),
            p90_ms: Some(percentile(&during, 0.9)),
            predicted_ms: Some(plan.predicted.latency_us / 1e3),
            baselines: "[]".into(),
            details: serde_json::json!({"experiment": "dynamics", "mode": mode, "model": graph.name, "schedule": schedule, "requests": rows, "events": events, "summary": &pass}).to_string(),
            ..Default::default()
        })?;
        Ok(pass)
    };
    let static_ = store_pass("static", tuned.json.plan_id, &tuned.plan, &static_rows, &[])?;
    let mut adaptive = store_pass("adaptive", tuned.json.plan_id, &tuned.plan, &adaptive_rows, &events)?;
    adaptive.plans = adaptive_plans;
    let retuned = store_pass("retuned", retuned_id, &retuned_plan, &retuned_rows, &[])?;

    let passes = [("static", &static_rows), ("adaptive", &adaptive_rows), ("retuned", &retuned_rows)];
    if let Some(path) = &args.csv {
        write_csv(path, &passes)?;
    }
    if let Some(path) = &args.trace {
        write_trace(path, &schedule, &passes, &events)?;
    }
    let out = DynamicsJson {
        model: graph.name.clone(),
        device_id: device.id.clone(),
        verified: static_.verified && adaptive.verified && retuned.verified,
        retuned_p50_during_ms: retuned.p50_during_ms,
        adaptive_vs_retuned_during: adaptive.p50_during_ms / retuned.p50_during_ms,
        loaded_factor,
        schedule,
        static_,
        adaptive,
        retuned,
        csv: args.csv.as_ref().map(|p| p.display().to_string()),
        trace: args.trace.as_ref().map(|p| p.display().to_string()),
        throttling,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    if json {
        super::print_json(&out)?;
    } else {
        print_summary(&out)?;
    }
    if !out.verified {
        bail!("some requests' outputs differed from the single-processor run; the runs are stored with verified = 0");
    }
    Ok(())
}

/// Serves `schedule.requests` requests with `one` (latency ms, plan index, verified), starting and
/// stopping the load on schedule.
fn serve(schedule: &Schedule, mut one: impl FnMut() -> Result<(f64, usize, bool)>) -> Result<Vec<RequestRow>> {
    let t0 = Instant::now();
    let mut load = None;
    let mut rows = Vec::with_capacity(schedule.requests);
    for i in 0..schedule.requests {
        if i == schedule.load_start {
            load = Some(LoadProcess::start(&schedule.load)?);
        }
        if i == schedule.load_stop {
            drop(load.take());
        }
        let start_ms = t0.elapsed().as_secs_f64() * 1e3;
        let (latency_ms, plan, verified) = one()?;
        rows.push(RequestRow { request: i, phase: schedule.phase(i), latency_ms, start_ms, plan, verified });
    }
    Ok(rows)
}

/// How much slower `processor` runs the whole model under `load`: medians of runs with and without
/// it, interleaved in blocks so that drift cancels.
fn measure_factor(graph: &Arc<Graph>, device: &Device, processor: &tandem_device::Processor, load: &LoadSpec, inputs: &tandem_graph::TVec<TValue>) -> Result<f64> {
    let plan = tandem_exec::sketch::single(graph, &device.id, &processor.id);
    let exec = Executor::new(graph.clone(), &plan, &device.processors)?;
    exec.run(inputs.clone())?;
    let (mut idle, mut loaded) = (vec![], vec![]);
    for _ in 0..3 {
        for _ in 0..3 {
            idle.push(exec.run(inputs.clone())?.timeline.latency_us);
        }
        let l = LoadProcess::start(load)?;
        for _ in 0..3 {
            loaded.push(exec.run(inputs.clone())?.timeline.latency_us);
        }
        drop(l);
    }
    Ok(median(&loaded) / median(&idle))
}

fn summarize(schedule: &Schedule, rows: &[RequestRow], events: &[Event]) -> PassJson {
    let of = |p: Phase| -> Vec<f64> { rows.iter().filter(|r| r.phase == p).map(|r| r.latency_ms).collect() };
    let (b, d, a) = (of(Phase::Before), of(Phase::During), of(Phase::After));
    PassJson {
        plan_id: 0,
        run_id: 0,
        p50_before_ms: median(&b),
        p50_during_ms: median(&d),
        p50_after_ms: median(&a),
        p90_before_ms: percentile(&b, 0.9),
        p90_during_ms: percentile(&d, 0.9),
        p90_after_ms: percentile(&a, 0.9),
        slowdown_during: median(&d) / median(&b),
        verified: rows.iter().all(|r| r.verified),
        switch_after_requests: events
            .iter()
            .find(|e| e.switched && e.after_requests > schedule.load_start && e.after_requests <= schedule.load_stop)
            .map(|e| e.after_requests - schedule.load_start),
        events: events.to_vec(),
        plans: vec![],
    }
}

fn median(v: &[f64]) -> f64 {
    percentile(v, 0.5)
}

/// `cpu:0 + cpu:1, 31 stages, 12 splits`.
fn describe(plan: &Plan) -> String {
    let splits = if plan.splits.is_empty() { String::new() } else { format!(", {} splits", plan.splits.len()) };
    format!("{}, {} stage{}{splits}", plan.processors.join(" + "), plan.stages.len(), if plan.stages.len() == 1 { "" } else { "s" })
}

fn write_csv(path: &PathBuf, passes: &[(&str, &Vec<RequestRow>)]) -> Result<()> {
    let mut out = String::from("mode,request,phase,start_ms,latency_ms,plan,verified\n");
    for (mode, rows) in passes {
        for r in rows.iter() {
            out.push_str(&format!("{mode},{},{},{:.3},{:.4},{},{}\n", r.request, r.phase.as_str(), r.start_ms, r.latency_ms, r.plan, r.verified));
        }
    }
    std::fs::write(path, out).with_context(|| format!("cannot write {}", path.display()))
}

/// One track per pass, one span per request (named by its plan), the load as a span of its own
/// track, and each switch as an instant event.
fn write_trace(path: &PathBuf, schedule: &Schedule, passes: &[(&str, &Vec<RequestRow>)], events: &[Event]) -> Result<()> {
    let mut trace = vec![];
    for (pid, (mode, rows)) in passes.iter().enumerate() {
        trace.push(serde_json::json!({"name": "process_name", "ph": "M", "pid": pid, "args": {"name": mode}}));
        for r in rows.iter() {
            trace.push(serde_json::json!({"name": format!("request {} (plan {})", r.request, r.plan), "ph": "X", "pid": pid, "tid": 0, "ts": r.start_ms * 1e3, "dur": r.latency_ms * 1e3, "args": {"phase": r.phase, "verified": r.verified}}));
        }
        let (Some(a), Some(b)) = (rows.get(schedule.load_start), rows.get(schedule.load_stop.saturating_sub(1))) else { continue };
        trace.push(serde_json::json!({"name": schedule.load_description, "ph": "X", "pid": pid, "tid": 1, "ts": a.start_ms * 1e3, "dur": (b.start_ms + b.latency_ms - a.start_ms) * 1e3}));
        if *mode == "adaptive" {
            for e in events {
                let Some(r) = rows.get(e.after_requests) else { continue };
                trace.push(serde_json::json!({"name": format!("plan {} -> {}: {}", e.from_plan, e.to_plan, e.detection.evidence), "ph": "i", "s": "p", "pid": pid, "tid": 0, "ts": r.start_ms * 1e3, "args": {"beliefs": e.beliefs}}));
            }
        }
    }
    std::fs::write(path, serde_json::to_string(&serde_json::json!({"traceEvents": trace, "displayTimeUnit": "ms"}))?).with_context(|| format!("cannot write {}", path.display()))
}

fn print_summary(j: &DynamicsJson) -> Result<()> {
    let s = &j.schedule;
    let mut out = format!(
        "\n{} on device {}: {} requests per pass, {} from request {} to {}\n\n",
        j.model, j.device_id, s.requests, s.load_description, s.load_start, s.load_stop
    );
    let mut t = Table::new(&["pass", "plan", "p50 before", "p50 during", "p50 after", "p90 during", "during / before", "verified"]);
    for (name, p) in [("static", &j.static_), ("adaptive", &j.adaptive), ("re-tuned", &j.retuned)] {
        t.row(vec![
            name.into(),
            p.plan_id.to_string(),
            format!("{:.3}", p.p50_before_ms),
            format!("{:.3}", p.p50_during_ms),
            format!("{:.3}", p.p50_after_ms),
            format!("{:.3}", p.p90_during_ms),
            format!("{:.2}x", p.slowdown_during),
            if p.verified { "yes".into() } else { "NO".into() },
        ]);
    }
    out.push_str("latency in ms:\n");
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nthe static plan ran {:.0}% slower during the load; the adaptive plan's median during the load is {:.2}x the re-tuned plan's (re-tuned for {:.2}x measured on the loaded core)\n",
        100.0 * (j.static_.slowdown_during - 1.0),
        j.adaptive_vs_retuned_during,
        j.loaded_factor
    ));
    match j.adaptive.switch_after_requests {
        Some(n) => out.push_str(&format!("the adaptive plan switched {n} requests after the load started\n")),
        None => out.push_str("the adaptive plan did not switch during the load\n"),
    }
    if !j.adaptive.events.is_empty() {
        let mut t = Table::new(&["after request", "seen in", "beliefs (core: factor)", "plan", "search ms", "compile ms"]);
        for e in &j.adaptive.events {
            let beliefs: Vec<String> = e.beliefs.iter().map(|(c, f)| format!("{c}: {f:.2}")).collect();
            let plan = if e.switched { format!("{} -> {}{}", e.from_plan, e.to_plan, if e.reused { " (kept from before)" } else { "" }) } else { format!("{} kept", e.from_plan) };
            t.row(vec![e.after_requests.to_string(), e.detection.evidence.clone(), beliefs.join(", "), plan, format!("{:.1}", e.search_ms), format!("{:.1}", e.compile_ms)]);
        }
        out.push_str(&t.render());
        for (i, p) in j.adaptive.plans.iter().enumerate() {
            out.push_str(&format!("  plan {i}: {p}\n"));
        }
    }
    for t in &j.throttling {
        out.push_str(&format!("throttling: {t}\n"));
    }
    if let Some(c) = &j.csv {
        out.push_str(&format!("every request: {c}\n"));
    }
    if let Some(t) = &j.trace {
        out.push_str(&format!("trace: {t} (open in https://ui.perfetto.dev)\n"));
    }
    out.push_str(&format!("dig further: tandem query \"select id, plan_id, median_ms, json_extract(details, '$.mode') from runs order by id desc limit 3\"\n"));
    crate::out(&out)?;
    Ok(())
}
