//! `tandem tune`: search the best partition plan of a model for a device's processors with the
//! device's newest cost models, store it, and print it against every processor running the model alone.
//! With `--robust`, the plan of lowest p90 over availability scenarios (tandem-plan's `robust`), with
//! each scenario's prediction against the idle-optimal plan's and the best processor alone.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tandem_cost::{ContentionFactors, ContentionSample, CostModels, ModelRecord};
use tandem_graph::Graph;
use tandem_plan::build::{self, BuildOptions};
use tandem_plan::{Choice, Evaluator, Objective, Plan, ProcessorSpec, RobustResult, Scenario, SearchOptions, SearchResult, Solution};
use tandem_store::{ModelRow, PlanRow, Store};

use crate::cli::{MinGainArgs, TuneArgs, TuneObjective};
use crate::table::Table;

/// The JSON printed by `tandem tune --json`:
///
/// ```text
/// { "plan_id", "model_id", "model", "device_id", "cost_model_version", "objective",
///   "predicted_ms",                                   // one request, from input to the last output
///   "period_ms", "throughput_rps",                    // requests streamed through the stages
///   "baselines": [{processor, predicted_ms}],         // each processor running the whole model alone
///   "best_baseline", "speedup_vs_best_baseline",      // best baseline's latency (period) / the plan's
///   "stages": [{id, processor, ops, kinds, part: {split, start, end, share} | null, deps, start_ms, end_ms}],
///   "splits": [{ops, axis, bounds}], "transfers": [{from_stage, to_stage, src, dst, bytes}],
///   "configurations": [[processor]], "candidates", "search_ms", "elapsed_s",
///   "min_gain",                                       // the share a plan must gain over the best processor alone
///   "set_aside": {processors, predicted_ms, gain} | null,  // the plan that gained less, not taken
///   "robust": {...} }                                 // with --robust only: see RobustJson
/// ```
///
/// The plan itself (what `tandem run` executes) is the `plan` column of the `plans` row `plan_id`.
#[derive(Debug, Serialize)]
pub struct TuneJson {
    /// The stored plan's id.
    pub plan_id: i64,
    /// The model's row id.
    pub model_id: i64,
    /// The model's name.
    pub model: String,
    /// The device planned for.
    pub device_id: String,
    /// The cost models used.
    pub cost_model_version: i64,
    /// `latency` or `throughput`.
    pub objective: Objective,
    /// Predicted latency of one request.
    pub predicted_ms: f64,
    /// Predicted time between requests, pipelined.
    pub period_ms: f64,
    /// Predicted requests per second, pipelined.
    pub throughput_rps: f64,
    /// Each processor running the whole model alone.
    pub baselines: Vec<BaselineJson>,
    /// The fastest of them.
    pub best_baseline: Option<String>,
    /// Its predicted latency over the plan's (periods, for the throughput objective).
    pub speedup_vs_best_baseline: Option<f64>,
    /// The plan's stages with their predicted times.
    pub stages: Vec<StageJson>,
    /// Ops split across processors.
    pub splits: Vec<tandem_plan::Split>,
    /// Hand-overs between processors.
    pub transfers: Vec<tandem_plan::Transfer>,
    /// The processor sets searched (processors sharing no core).
    pub configurations: Vec<Vec<String>>,
    /// Candidate plans scored.
    pub candidates: usize,
    /// Time the search took.
    pub search_ms: f64,
    /// Time the whole command took.
    pub elapsed_s: f64,
    /// The share by which a plan on several processors had to be predicted faster than the best
    /// processor alone to be taken (`--min-gain`, as a fraction).
    pub min_gain: f64,
    /// The best plan on several processors, when it was predicted to gain less than `min_gain`
    /// over the best processor alone and that processor was taken instead.
    pub set_aside: Option<SetAsideJson>,
    /// With `--robust`: the plan's figures over availability scenarios.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub robust: Option<RobustJson>,
}

/// A plan the search found but did not take: its predicted gain was below `--min-gain`.
#[derive(Debug, Serialize)]
pub struct SetAsideJson {
    /// The processors it used.
    pub processors: Vec<String>,
    /// Its predicted latency (period, for the throughput objective), ms.
    pub predicted_ms: f64,
    /// The best processor alone's prediction over its own.
    pub gain: f64,
}

/// One processor running the whole model.
#[derive(Debug, Serialize)]
pub struct BaselineJson {
    /// The processor.
    pub processor: String,
    /// Predicted latency.
    pub predicted_ms: f64,
}

/// One stage of the plan.
#[derive(Debug, Serialize)]
pub struct StageJson {
    /// Its index in the plan.
    pub id: usize,
    /// Where it runs.
    pub processor: String,
    /// Its op ids.
    pub ops: Vec<usize>,
    /// Its op kinds with their counts, `Conv×3 Max×2`.
    pub kinds: String,
    /// For one part of a split: which split, its range of the axis, its share.
    pub part: Option<PartJson>,
    /// Stages it waits for.
    pub deps: Vec<usize>,
    /// Predicted start.
    pub start_ms: f64,
    /// Predicted end.
    pub end_ms: f64,
}

/// A part of a split.
#[derive(Debug, Serialize)]
pub struct PartJson {
    /// Index into `splits`.
    pub split: usize,
    /// Range start along the axis.
    pub start: usize,
    /// Range end.
    pub end: usize,
    /// Share of the axis.
    pub share: f64,
}

/// A plan searched and stored.
#[derive(Debug)]
pub struct Tuned {
    /// The plan as stored.
    pub plan: Plan,
    /// What the search found.
    pub search: SearchResult,
    /// The JSON of `tune --json`.
    pub json: TuneJson,
}

impl From<TuneObjective> for Objective {
    fn from(o: TuneObjective) -> Objective {
        match o {
            TuneObjective::Latency => Objective::Latency,
            TuneObjective::Throughput => Objective::Throughput,
        }
    }
}

/// Runs `tandem tune`.
pub fn run(args: &TuneArgs, db: &Path, json: bool) -> Result<()> {
    let started = Instant::now();
    let min_gain = min_gain_share(&args.min_gain)?;
    let graph = super::load_model(&args.model)?;
    let store = Store::open(db)?;
    let mut tuned = if args.robust {
        tune_robust(&graph, &store, args.device.as_deref(), args.objective.into())?
    } else {
        tune(&graph, &store, args.device.as_deref(), args.objective.into(), min_gain)?
    };
    tuned.json.elapsed_s = started.elapsed().as_secs_f64();
    if json {
        return super::print_json(&tuned.json);
    }
    print_plan(&tuned, &args.model.model)
}

/// The device's newest cost models and their version, or an error saying how to get them.
pub fn cost_models(store: &Store, device: &str, model: &str) -> Result<CostModels> {
    let Some(version) = store.latest_cost_model_version(device)? else {
        bail!("no cost models for device {device} in {}: run `tandem profile {model}` and then `tandem fit` first", store.path().display());
    };
    let records = store
        .cost_models(device, version)?
        .into_iter()
        .map(|r| {
            let params = serde_json::from_str(&r.params).with_context(|| format!("the {} model of {} (version {version}) is not JSON; run `tandem fit` again", r.op_kind, r.processor_id))?;
            Ok(ModelRecord { processor: r.processor_id, op_kind: r.op_kind, params, samples: r.samples, mape: r.mape, within_10pct: r.within_10pct, fallback_of: r.fallback_of })
        })
        .collect::<Result<Vec<_>>>()?;
    Ok(CostModels::from_records(device, version, &records)?)
}

/// `--min-gain PCT` as a share, checked.
pub fn min_gain_share(args: &MinGainArgs) -> Result<f64> {
    let pct = args.pct;
    if !(0.0..100.0).contains(&pct) {
        bail!("--min-gain {pct} is not a percentage from 0 to below 100 (5 keeps a plan only when predicted at least 5% faster than the best processor alone)");
    }
    Ok(pct / 100.0)
}

/// Searches the best plan for `graph` on `device` (this device when `None`) and stores it; the model
/// is registered when it was never profiled. A plan on several processors predicted to gain less than
/// `min_gain` (a share) over the best processor alone gives way to that processor.
pub fn tune(graph: &Graph, store: &Store, device: Option<&str>, objective: Objective, min_gain: f64) -> Result<Tuned> {
    let device = resolve_device(store, device)?;
    let Planning { problem, model_ref, model_id, cost_model_version } = planning(graph, store, &device)?;
    let search = tandem_plan::search(&problem, &SearchOptions { objective, min_gain, ..Default::default() })?;
    let plan = search.plan(&problem, objective, model_ref, &device, Some(cost_model_version))?;
    let plan_id = store_plan(store, &plan, model_id, objective.as_str())?;
    let json = describe(graph, &plan, &search, plan_id, model_id);
    Ok(Tuned { plan, search, json })
}

/// The plan that runs the whole model on `processor` alone, stored like a tuned plan (with the
/// newest cost models, so `tandem run` takes it): what `auto` falls back to when every plan it
/// searched measured slower than that processor alone.
pub fn tune_single(graph: &Graph, store: &Store, device: Option<&str>, processor: &str, objective: Objective) -> Result<Tuned> {
    let device = resolve_device(store, device)?;
    let Planning { problem, model_ref, model_id, cost_model_version } = planning(graph, store, &device)?;
    let Some(p) = problem.processor_index(processor).filter(|&p| problem.runs_everything(p)) else {
        bail!("{processor} cannot run the whole of {} on device {device}", graph.name);
    };
    // The search gives the baselines and configurations the plan's description compares with.
    let mut search = tandem_plan::search(&problem, &SearchOptions { objective, ..Default::default() })?;
    let choices = vec![Choice::On(p); problem.ops.len()];
    let score = Evaluator::new(&problem, objective).score(&choices);
    search.best = Solution { choices, score };
    let plan = search.plan(&problem, objective, model_ref, &device, Some(cost_model_version))?;
    let plan_id = store_plan(store, &plan, model_id, objective.as_str())?;
    let json = describe(graph, &plan, &search, plan_id, model_id);
    Ok(Tuned { plan, search, json })
}

/// What a plan for a model on a device is searched from.
#[derive(Debug, Clone)]
pub struct Planning {
    /// The model's DAG with its predicted costs on each processor.
    pub problem: tandem_plan::Problem,
    /// The model as plans record it.
    pub model_ref: tandem_plan::ModelRef,
    /// The model's row id (registered when it was never profiled).
    pub model_id: i64,
    /// The cost models the costs come from.
    pub cost_model_version: i64,
}

/// The planning problem of `graph` on `device` from the device's newest cost models, its stored
/// processors and the ops it found unsupported.
pub fn planning(graph: &Graph, store: &Store, device: &str) -> Result<Planning> {
    let models = cost_models(store, device, &graph.name)?;
    let processors: Vec<ProcessorSpec> = store
        .processors(device)?
        .into_iter()
        .map(|p| ProcessorSpec { id: p.id, cores: p.cores.split(',').filter_map(|c| c.trim().parse().ok()).collect(), memory_bytes: None })
        .collect();
    if processors.is_empty() {
        bail!("device {device} has no processors in {}: run `tandem profile {}` on it", store.path().display(), graph.name);
    }
    let model_ref = build::model_ref(graph);
    let model_id = match store.find_model(&model_ref.content_hash, &model_ref.input_shapes)? {
        Some(m) => m.id,
        None => store.upsert_model(&ModelRow {
            content_hash: model_ref.content_hash.clone(),
            name: graph.name.clone(),
            input_shapes: model_ref.input_shapes.clone(),
            total_flops: graph.total_flops() as i64,
            op_count: graph.ops.len() as i64,
            ..Default::default()
        })?,
    };
    let unsupported: Vec<(usize, String)> = store.unsupported(device, model_id)?.into_iter().map(|u| (u.op_id as usize, u.processor_id)).collect();
    // A model whose plans have run is planned with its own in-plan calibration where it has one.
    let all = store.models()?;
    let models = match all.iter().find(|m| m.id == model_id) {
        Some(m) => models.for_model(&super::fit::training_name(&all, m)),
        None => models,
    };
    let problem = build::problem(graph, &models, &processors, &unsupported, &BuildOptions::default());
    Ok(Planning { problem, model_ref, model_id, cost_model_version: models.version })
}

fn describe(graph: &Graph, plan: &Plan, search: &SearchResult, plan_id: i64, model_id: i64) -> TuneJson {
    let spans: BTreeMap<usize, (f64, f64)> = plan.predicted.spans.iter().filter(|s| s.name.starts_with("stage")).map(|s| (s.stage, (s.start_us, s.end_us))).collect();
    let best = search.best_baseline(plan.objective);
    let latency_ms = plan.predicted.latency_us / 1e3;
    TuneJson {
        plan_id,
        model_id,
        model: graph.name.clone(),
        device_id: plan.device_id.clone(),
        cost_model_version: plan.cost_model_version.unwrap_or(0),
        objective: plan.objective,
        predicted_ms: latency_ms,
        period_ms: plan.predicted.period_us / 1e3,
        throughput_rps: plan.predicted.throughput_rps(),
        baselines: search.baselines.iter().map(|b| BaselineJson { processor: b.processor.clone(), predicted_ms: b.latency_us / 1e3 }).collect(),
        best_baseline: best.map(|b| b.processor.clone()),
        speedup_vs_best_baseline: best.map(|b| match plan.objective {
            Objective::Latency => b.latency_us / plan.predicted.latency_us,
            Objective::Throughput => b.period_us / plan.predicted.period_us,
        }),
        stages: plan
            .stages
            .iter()
            .map(|s| {
                let (start, end) = spans.get(&s.id).copied().unwrap_or_default();
                StageJson {
                    id: s.id,
                    processor: s.processor.clone(),
                    ops: s.ops.clone(),
                    kinds: kinds(graph, &s.ops),
                    part: s.part.as_ref().map(|p| PartJson {
                        split: p.split,
                        start: p.start,
                        end: p.end,
                        share: (p.end - p.start) as f64 / *plan.splits[p.split].bounds.last().unwrap_or(&1) as f64,
                    }),
                    deps: s.deps.clone(),
                    start_ms: start / 1e3,
                    end_ms: end / 1e3,
                }
            })
            .collect(),
        splits: plan.splits.clone(),
        transfers: plan.transfers.clone(),
        configurations: search.configurations.clone(),
        candidates: search.evaluations,
        search_ms: search.search_ms,
        elapsed_s: 0.0,
        min_gain: search.min_gain,
        set_aside: search.set_aside.as_ref().map(|s| SetAsideJson {
            processors: s.processors.clone(),
            predicted_ms: s.solution.score.value / 1e3,
            gain: search.best.score.value / s.solution.score.value,
        }),
        robust: None,
    }
}

/// `Conv×3 Max×2`, most frequent first.
fn kinds(graph: &Graph, ops: &[usize]) -> String {
    let mut count: BTreeMap<&str, usize> = BTreeMap::new();
    for &o in ops {
        *count.entry(graph.ops[o].kind.as_str()).or_default() += 1;
    }
    let mut list: Vec<(&str, usize)> = count.into_iter().collect();
    list.sort_by(|a, b| b.1.cmp(&a.1).then(a.0.cmp(b.0)));
    list.iter().map(|(k, n)| if *n == 1 { k.to_string() } else { format!("{k}×{n}") }).collect::<Vec<_>>().join(" ")
}

/// `3-17, 20`: op ids as runs.
fn ranges(ops: &[usize]) -> String {
    let mut out: Vec<String> = vec![];
    let mut i = 0;
    while i < ops.len() {
        let mut j = i;
        while j + 1 < ops.len() && ops[j + 1] == ops[j] + 1 {
            j += 1;
        }
        out.push(if i == j { ops[i].to_string() } else { format!("{}-{}", ops[i], ops[j]) });
        i = j + 1;
    }
    out.join(",")
}

fn print_plan(t: &Tuned, model_arg: &str) -> Result<()> {
    let j = &t.json;
    let goal = match &j.robust {
        Some(r) => format!("the p90 of {} over {} availability scenarios", j.objective.as_str(), r.scenarios.len()),
        None => j.objective.as_str().to_string(),
    };
    let mut out = format!("plan {} for {} on device {} (cost models version {}), minimising {goal}\n", j.plan_id, j.model, j.device_id, j.cost_model_version);
    let against = match (&j.best_baseline, j.speedup_vs_best_baseline) {
        (Some(b), Some(s)) => format!(", {s:.2}x the best single processor ({b})"),
        _ => ", no processor can run the whole model alone".into(),
    };
    out.push_str(&format!(
        "predicted {:.3} ms per request on {}{against}; pipelined: one request every {:.3} ms ({:.1}/s)\n\n",
        j.predicted_ms,
        t.plan.processors.join(" + "),
        j.period_ms,
        j.throughput_rps
    ));
    let mut table = Table::new(&["stage", "processor", "ops", "kinds", "split", "after", "start ms", "end ms"]);
    for s in &j.stages {
        let split = match &s.part {
            Some(p) => {
                let sp = &t.plan.splits[p.split];
                format!("{}% of axis {} [{}..{})", (100.0 * p.share).round(), sp.axis, p.start, p.end)
            }
            None => "-".into(),
        };
        let deps = if s.deps.is_empty() { "-".into() } else { ranges(&s.deps) };
        table.row(vec![s.id.to_string(), s.processor.clone(), ranges(&s.ops), s.kinds.clone(), split, deps, format!("{:.3}", s.start_ms), format!("{:.3}", s.end_ms)]);
    }
    out.push_str(&table.render());
    if !j.transfers.is_empty() {
        let bytes: u64 = j.transfers.iter().map(|x| x.bytes).sum();
        out.push_str(&format!("{} hand-overs between processors, {:.1} KB in all\n", j.transfers.len(), bytes as f64 / 1024.0));
    }
    out.push_str("\nagainst each processor running the whole model alone (predicted):\n");
    let mut table = Table::new(&["processor", "predicted ms", "plan speedup"]);
    for b in &j.baselines {
        table.row(vec![b.processor.clone(), format!("{:.3}", b.predicted_ms), format!("{:.2}", b.predicted_ms / j.predicted_ms)]);
    }
    out.push_str(&table.render());
    if let Some(r) = &j.robust {
        out.push_str(&robust_table(r, j.objective));
    }
    if let Some(a) = &j.set_aside {
        out.push_str(&format!(
            "a plan on {} was predicted {:.3} ms, {:.1}% faster than {best} alone: less than --min-gain {:.0}%, so {best} alone is the plan (--min-gain 0 takes the other)\n",
            a.processors.join(" + "),
            a.predicted_ms,
            100.0 * (a.gain - 1.0),
            100.0 * j.min_gain,
            best = j.best_baseline.as_deref().unwrap_or("the best processor"),
        ));
    }
    let configs: Vec<String> = j.configurations.iter().map(|c| format!("{{{}}}", c.join(", "))).collect();
    out.push_str(&format!("searched {} in {:.1} ms ({} candidate plans scored)\n", configs.join(" and "), j.search_ms, j.candidates));
    out.push_str(&format!("run it: tandem run {model_arg} --plan {}\n", j.plan_id));
    crate::out(&out)?;
    Ok(())
}

/// `device`, checked to be in the database, or this device's id when `None`.
fn resolve_device(store: &Store, device: Option<&str>) -> Result<String> {
    match device {
        Some(d) => {
            if store.device(d)?.is_none() {
                let known: Vec<String> = store.devices()?.into_iter().map(|d| d.id).collect();
                let hint = if known.is_empty() { "it holds no device yet".to_string() } else { format!("it holds {}", known.join(", ")) };
                bail!("no device {d} in {} ({hint}): profile on that device and `tandem import` its database", store.path().display());
            }
            Ok(d.to_string())
        }
        None => Ok(tandem_device::Device::discover()?.id),
    }
}

/// Stores `plan` (of model `model_id`) with `objective` in the `objective` column (`latency`,
/// `latency-p90`, ...) and its predicted latency; returns its id.
fn store_plan(store: &Store, plan: &Plan, model_id: i64, objective: &str) -> Result<i64> {
    store
        .insert_plan(&PlanRow {
            model_id,
            device_id: plan.device_id.clone(),
            cost_model_version: plan.cost_model_version,
            objective: objective.into(),
            plan: serde_json::to_string(plan)?,
            predicted_ms: plan.predicted.latency_us / 1e3,
            ..Default::default()
        })
        .context("storing the plan")
}

/// The `robust` object of `tune --robust --json`:
///
/// ```text
/// { "scenarios": [{name, factors: {processor: factor}, predicted_ms, idle_optimal_ms, best_single, best_single_ms}],
///   "p90_ms", "idle_optimal_p90_ms",                  // over the scenarios, linearly interpolated
///   "best_single", "best_single_p90_ms",              // the processor alone of lowest p90
///   "levels": {core: [half, heavy]}, "levels_measured" }
/// ```
///
/// Figures are predicted latencies in ms (periods, the time between requests, with `--objective
/// throughput`). The tune JSON's own `predicted_ms` and stages stay the robust plan's idle figures:
/// the stored plan's timeline is the idle one.
#[derive(Debug, Serialize)]
pub struct RobustJson {
    /// Every scenario, idle first.
    pub scenarios: Vec<ScenarioJson>,
    /// The robust plan's p90 over the scenarios.
    pub p90_ms: f64,
    /// The p90 of the plan the plain search finds for the idle device.
    pub idle_optimal_p90_ms: f64,
    /// The processor whose whole-model run has the lowest p90.
    pub best_single: Option<String>,
    /// Its p90.
    pub best_single_p90_ms: Option<f64>,
    /// Each core's (half available, heavily loaded) slowdown.
    pub levels: BTreeMap<usize, (f64, f64)>,
    /// Whether the device has contention profiles (`tandem profile --contention`); the defaults 2 and 4
    /// where it has none.
    pub levels_measured: bool,
}

/// One availability scenario.
#[derive(Debug, Serialize)]
pub struct ScenarioJson {
    /// `idle`, `cpu1 half`, `cpu0 heavy + cpu1 half`.
    pub name: String,
    /// Each processor's slowdown in it.
    pub factors: BTreeMap<String, f64>,
    /// The robust plan's prediction.
    pub predicted_ms: f64,
    /// The idle-optimal plan's prediction.
    pub idle_optimal_ms: f64,
    /// The fastest processor alone in this scenario.
    pub best_single: Option<String>,
    /// Its prediction.
    pub best_single_ms: Option<f64>,
}

/// Per-core availability levels for the robust search, and where they come from.
#[derive(Debug, Clone)]
pub struct AvailabilityLevels {
    /// Each core's (half available, heavily loaded) slowdown.
    pub per_core: BTreeMap<usize, (f64, f64)>,
    /// Whether the device has contention profiles to take them from.
    pub measured: bool,
}

/// Each core's (half available, heavily loaded) slowdown on `device`: a core that is a processor of its
/// own takes that processor's factors from the device's contention profiles (`tandem profile
/// --contention`, condensed by tandem-cost's `ContentionFactors`, which reads a scenario never measured
/// as 2 or 4); any other core takes tandem-plan's defaults, 2 and 4. A multi-core processor's profile
/// loads all of its cores at once, so it says nothing about one core.
pub fn availability_levels(store: &Store, device: &str, processors: &[ProcessorSpec]) -> Result<AvailabilityLevels> {
    let samples: Vec<ContentionSample> = store
        .contention(device)?
        .into_iter()
        .map(|r| ContentionSample { processor: r.processor_id, scenario: r.scenario, model: r.model_id.to_string(), slowdown: r.slowdown })
        .collect();
    let factors = ContentionFactors::from_samples(&samples);
    let mut per_core = BTreeMap::new();
    for p in processors.iter().filter(|p| p.cores.len() == 1) {
        per_core.insert(p.cores[0], factors.availability(&p.id));
    }
    for &core in processors.iter().flat_map(|p| &p.cores) {
        per_core.entry(core).or_insert(tandem_plan::robust::DEFAULT_LEVELS);
    }
    Ok(AvailabilityLevels { per_core, measured: !factors.is_empty() })
}

/// Searches the plan of lowest p90 over availability scenarios for `graph` on `device` (this device
/// when `None`) and stores it like any plan, with `latency-p90` (`throughput-p90`) in the objective
/// column; the plan itself keeps its objective, so `tandem run` runs it like any other.
pub fn tune_robust(graph: &Graph, store: &Store, device: Option<&str>, objective: Objective) -> Result<Tuned> {
    let device = resolve_device(store, device)?;
    let Planning { problem, model_ref, model_id, cost_model_version } = planning(graph, store, &device)?;
    let levels = availability_levels(store, &device, &problem.processors)?;
    let scenarios = tandem_plan::scenarios(&problem, &levels.per_core);
    let robust = tandem_plan::robust_search(&problem, &scenarios, &SearchOptions { objective, ..Default::default() })?;
    let plan = robust.plan(&problem, model_ref, &device, Some(cost_model_version))?;
    let plan_id = store_plan(store, &plan, model_id, &format!("{}-p90", objective.as_str()))?;
    let search = SearchResult {
        best: robust.best.clone(),
        baselines: robust.baselines.iter().map(|b| b.baseline.clone()).collect(),
        configurations: robust.configurations.clone(),
        evaluations: robust.evaluations,
        search_ms: robust.search_ms,
        min_gain: 0.0,
        set_aside: None,
    };
    let mut json = describe(graph, &plan, &search, plan_id, model_id);
    json.robust = Some(robust_json(&problem, &scenarios, &robust, levels));
    Ok(Tuned { plan, search, json })
}

fn robust_json(problem: &tandem_plan::Problem, scenarios: &[Scenario], r: &RobustResult, levels: AvailabilityLevels) -> RobustJson {
    let best_single = r.baselines.iter().min_by(|a, b| a.p90_us.total_cmp(&b.p90_us));
    RobustJson {
        scenarios: scenarios
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let single = r.best_single(i);
                ScenarioJson {
                    name: s.name.clone(),
                    factors: problem.processors.iter().zip(&s.factors).map(|(p, &f)| (p.id.clone(), f)).collect(),
                    predicted_ms: r.per_scenario[i] / 1e3,
                    idle_optimal_ms: r.idle_optimal_per_scenario[i] / 1e3,
                    best_single: single.map(|(p, _)| p.to_string()),
                    best_single_ms: single.map(|(_, us)| us / 1e3),
                }
            })
            .collect(),
        p90_ms: r.p90_us / 1e3,
        idle_optimal_p90_ms: r.idle_optimal_p90_us / 1e3,
        best_single: best_single.map(|b| b.baseline.processor.clone()),
        best_single_p90_ms: best_single.map(|b| b.p90_us / 1e3),
        levels: levels.per_core,
        levels_measured: levels.measured,
    }
}

/// The scenario table of `tune --robust`, with the p90s and the levels used.
fn robust_table(r: &RobustJson, objective: Objective) -> String {
    let what = match objective {
        Objective::Latency => "latency",
        Objective::Throughput => "time between requests",
    };
    let mut out = format!("\nunder availability scenarios (predicted {what}, ms; each core idle, half available or heavily loaded):\n");
    let mut table = Table::new(&["scenario", "robust plan", "idle-optimal plan", "best alone"]);
    let alone = |name: &Option<String>, ms: Option<f64>| match (name, ms) {
        (Some(p), Some(ms)) => format!("{ms:.3} ({p})"),
        _ => "-".into(),
    };
    for s in &r.scenarios {
        table.row(vec![s.name.clone(), format!("{:.3}", s.predicted_ms), format!("{:.3}", s.idle_optimal_ms), alone(&s.best_single, s.best_single_ms)]);
    }
    table.row(vec!["p90".into(), format!("{:.3}", r.p90_ms), format!("{:.3}", r.idle_optimal_p90_ms), alone(&r.best_single, r.best_single_p90_ms)]);
    out.push_str(&table.render());
    out.push_str(&format!(
        "p90 over {} scenarios: robust plan {:.3} ms, {:.2}x better than the idle-optimal plan ({:.3} ms)\n",
        r.scenarios.len(),
        r.p90_ms,
        r.idle_optimal_p90_ms / r.p90_ms,
        r.idle_optimal_p90_ms
    ));
    let levels: Vec<String> = r.levels.iter().map(|(c, (half, heavy))| format!("cpu{c} {half:.2}x/{heavy:.2}x")).collect();
    let source = if r.levels_measured { "from the device's contention profiles" } else { "defaults; `tandem profile MODEL --contention` measures them" };
    out.push_str(&format!("slowdowns half available / heavily loaded: {} ({source})\n", levels.join(", ")));
    out
}
