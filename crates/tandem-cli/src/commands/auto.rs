//! `tandem auto`: profile, fit, tune and run one model in one go, reusing what the database holds.
//!
//! Each step is the command of the same name ([`super::profile::measure`], [`super::fit::fit`],
//! [`super::tune::tune`], [`super::run::execute`]), so `auto` can never disagree with them. What is
//! reused: measurements already stored (profiling skips them), and the newest cost models when
//! profiling added nothing new. The plan is searched again every time (it takes milliseconds) and run.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use serde::Serialize;
use tandem_device::Device;
use tandem_graph::Graph;
use tandem_store::Store;

use super::run::Executed;
use super::tune::Tuned;
use crate::cli::{AutoArgs, ModelArgs, ProfileArgs};
use crate::table::Table;

/// What each step did, for the summary and `--json`.
#[derive(Debug, Serialize)]
pub struct Steps {
    /// Measurements written by this profile, and those found already stored.
    pub profile: ProfileStep,
    /// The cost-model version used, and whether this run fitted it.
    pub fit: FitStep,
    /// Search time of the plan, milliseconds.
    pub tune_search_ms: f64,
    /// Every plan run, in order: the first tuned plan, one per calibration round, and the fallback to
    /// a processor alone when it ran.
    pub rounds: Vec<Round>,
    /// Wall time of the whole `auto`, seconds.
    pub elapsed_s: f64,
}

/// One plan tuned and run.
#[derive(Debug, Serialize)]
pub struct Round {
    /// The plan.
    pub plan_id: i64,
    /// The cost-model version it was tuned with.
    pub cost_model_version: i64,
    /// Stages of the plan.
    pub stages: usize,
    /// Measured median, ms.
    pub measured_ms: Option<f64>,
    /// Predicted, ms.
    pub predicted_ms: Option<f64>,
    /// (predicted - measured) / measured.
    pub prediction_error: Option<f64>,
}

impl Round {
    fn of(tuned: &Tuned, done: &Executed) -> Round {
        Round {
            plan_id: tuned.json.plan_id,
            cost_model_version: tuned.plan.cost_model_version.unwrap_or_default(),
            stages: tuned.plan.stages.len(),
            measured_ms: done.json.measured_ms.as_ref().map(|m| m.median),
            predicted_ms: done.json.report.predicted_ms,
            prediction_error: done.json.report.prediction_error,
        }
    }
}

/// The profiling step.
#[derive(Debug, Serialize)]
pub struct ProfileStep {
    /// New measurements.
    pub measurements: usize,
    /// Measurements already in the database, not taken again.
    pub reused: usize,
    /// Seconds spent.
    pub elapsed_s: f64,
}

/// The fitting step.
#[derive(Debug, Serialize)]
pub struct FitStep {
    /// The cost-model version the plan was made with.
    pub version: i64,
    /// Whether this run fitted it (false: reused, nothing new was measured).
    pub fitted: bool,
    /// Held-out share of op predictions within ±10%, when fitted now.
    pub within_10pct: Option<f64>,
}

/// Runs `tandem auto`.
pub fn run(args: &AutoArgs, db: &std::path::Path, json: bool) -> Result<()> {
    let started = Instant::now();
    let model = ModelArgs {
        model: args.model.clone().unwrap_or_else(|| tandem_graph::zoo::default_model().name.to_string()),
        input_shape: args.input_shape.clone(),
    };
    let min_gain = super::tune::min_gain_share(&args.min_gain)?;
    let graph = Arc::new(super::load_model(&model)?);
    let device = Device::discover()?;

    step(json, &format!("1/4 profiling {} on {}", graph.name, processor_list(&device, &args.processors)));
    let (profile, fit) = prepare(graph.clone(), &model, &args.processors, args.budget_ms, db, json)?;
    let store = Store::open(db)?;

    step(json, "3/4 searching the plan");
    let tuned = super::tune::tune(&graph, &store, None, args.objective.into(), min_gain)?;

    step(json, &format!("4/4 running plan {} against every processor alone", tuned.json.plan_id));
    let options = super::run::measure_options(args.run_budget_ms, None);
    let done = super::run::execute(graph.clone(), tuned.json.plan_id, &store, &device, &options, args.trace.as_deref())?;
    let mut fit = fit;
    let mut rounds = vec![Round::of(&tuned, &done)];
    let (mut last_plan, mut last_error) = (tuned.plan.clone(), done.json.report.prediction_error);
    let mut kept = (tuned, done);

    // Measure, don't assume: a plan's stages run slower inside the plan than alone (the other core
    // runs its part at the same time), which no profile sees. Its run stored those per-stage
    // timings; a refit learns the in-plan calibration from them and the search may then prefer
    // other cuts. The best measured plan is kept.
    for round in 1..=args.calibrate {
        let Some(error) = last_error.filter(|e| e.abs() > 0.10) else { break };
        if last_plan.stages.len() < 2 {
            break;
        }
        let label = format!("calibration {round}/{}", args.calibrate);
        // error = (predicted - measured) / measured, so measured / predicted = 1 / (1 + error).
        let off = 1.0 / (1.0 + error) - 1.0;
        let how = if off > 0.0 { "slower" } else { "faster" };
        step(json, &format!("{label}: the plan ran {:.0}% {how} than predicted; refitting with its per-part timings", 100.0 * off.abs()));
        let f = super::fit::fit(&store, &device.id, db)?;
        fit = FitStep { version: f.version, fitted: true, within_10pct: Some(f.overall.within_10pct) };
        let next = super::tune::tune(&graph, &store, None, args.objective.into(), min_gain)?;
        if same_partition(&next.plan, &last_plan) {
            step(json, &format!("{label}: the calibrated search keeps the same partition (plan {})", next.json.plan_id));
            break;
        }
        step(json, &format!("{label}: running plan {} against every processor alone", next.json.plan_id));
        let ran = super::run::execute(graph.clone(), next.json.plan_id, &store, &device, &options, args.trace.as_deref())?;
        (last_plan, last_error) = (next.plan.clone(), ran.json.report.prediction_error);
        keep_faster(&mut rounds, &mut kept, next, ran);
    }

    // The result is never a plan that lost to a processor running the model alone, as measured: the
    // whole model on that processor becomes the plan (one stage), run like the others.
    let report = &kept.1.json.report;
    if let (Some(speedup), Some(best)) = (report.speedup_vs_best_baseline, report.best_baseline.clone()) {
        let processor = best.trim_start_matches("single:").to_string();
        let plan = &kept.0.plan;
        let already_alone = plan.stages.len() == 1 && plan.stages[0].processor == processor;
        if args.calibrate > 0 && speedup < 1.0 && !already_alone {
            step(json, &format!("plan {} measured {:.0}% slower than {best}: running the whole model on {processor} as a plan", kept.0.json.plan_id, 100.0 * (1.0 / speedup - 1.0)));
            // A processor that was never profiled (`--processors`) has no costs to plan with.
            match super::tune::tune_single(&graph, &store, None, &processor, args.objective.into()) {
                Ok(alone) => {
                    let ran = super::run::execute(graph.clone(), alone.json.plan_id, &store, &device, &options, args.trace.as_deref())?;
                    keep_faster(&mut rounds, &mut kept, alone, ran);
                }
                Err(e) => step(json, &format!("cannot plan {processor} alone: {e:#}")),
            }
        }
    }
    let (tuned, done) = kept;

    let steps = Steps {
        profile,
        fit,
        tune_search_ms: tuned.json.search_ms,
        rounds,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    if json {
        let mut v = serde_json::to_value(&done.json)?;
        if let Some(o) = v.as_object_mut() {
            o.insert("model".into(), serde_json::json!(graph.name));
            o.insert("plan".into(), serde_json::to_value(&tuned.json)?);
            o.insert("steps".into(), serde_json::to_value(&steps)?);
        }
        super::print_json(&v)?;
    } else {
        print_summary(&device, &tuned, &done, &steps)?;
    }
    super::run::fail_unverified(&done.json.report)
}

/// Profiles `graph` on `processors` (all when empty), keeping what the database holds, and fits cost
/// models unless nothing new was measured and some exist: steps 1 and 2 of `auto`, shared with
/// `experiment`. Progress lines and bars on stderr unless `quiet`.
pub fn prepare(graph: Arc<Graph>, model: &ModelArgs, processors: &[String], budget_ms: Option<u64>, db: &std::path::Path, quiet: bool) -> Result<(ProfileStep, FitStep)> {
    let device = Device::discover()?;
    let profile_args = ProfileArgs { model: model.clone(), processors: processors.to_vec(), force: false, budget_ms, no_transfers: false, contention: false };
    let profiled = super::profile::measure(graph, &profile_args, db, !quiet)?;
    let store = Store::open(db)?;
    let fit = match store.latest_cost_model_version(&device.id)? {
        Some(version) if profiled.measurements == 0 => {
            step(quiet, &format!("2/4 nothing new was measured: reusing cost models version {version}"));
            FitStep { version, fitted: false, within_10pct: None }
        }
        _ => {
            step(quiet, "2/4 fitting cost models on every profile of this device");
            let f = super::fit::fit(&store, &device.id, db)?;
            FitStep { version: f.version, fitted: true, within_10pct: Some(f.overall.within_10pct) }
        }
    };
    Ok((ProfileStep { measurements: profiled.measurements, reused: profiled.skipped, elapsed_s: profiled.elapsed_s }, fit))
}

/// Records a plan run, and keeps it when it verified and measured faster than the one kept.
fn keep_faster(rounds: &mut Vec<Round>, kept: &mut (Tuned, Executed), tuned: Tuned, ran: Executed) {
    rounds.push(Round::of(&tuned, &ran));
    let median = |d: &Executed| d.json.measured_ms.as_ref().map(|m| m.median).unwrap_or(f64::INFINITY);
    if ran.json.report.verified && median(&ran) < median(&kept.1) {
        *kept = (tuned, ran);
    }
}

/// Whether two plans cut the model the same way: the same stages on the same processors and the same
/// splits (their predictions may differ).
fn same_partition(a: &tandem_plan::Plan, b: &tandem_plan::Plan) -> bool {
    let key = |p: &tandem_plan::Plan| serde_json::to_value((&p.stages, &p.splits)).ok();
    key(a) == key(b)
}

/// A progress line on stderr (not under `--json`, whose stdout is one object and stderr stays quiet).
fn step(json: bool, what: &str) {
    if !json {
        eprintln!("{what}");
    }
}

fn processor_list(device: &Device, only: &[String]) -> String {
    let ids: Vec<&str> = device.processors.iter().map(|p| p.id.as_str()).filter(|id| only.is_empty() || only.iter().any(|o| o == id)).collect();
    ids.join(", ")
}

fn print_summary(device: &Device, tuned: &Tuned, done: &Executed, steps: &Steps) -> Result<()> {
    let (j, r) = (&done.json, &done.json.report);
    let mut out = format!(
        "\n{} on device {} ({}), in {:.1} s\n",
        j.model,
        device.id,
        device.processors.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", "),
        steps.elapsed_s
    );
    out.push_str(&format!(
        "profile: {} measurements taken, {} reused ({:.1} s); cost models version {} ({}{})\n",
        steps.profile.measurements,
        steps.profile.reused,
        steps.profile.elapsed_s,
        steps.fit.version,
        if steps.fit.fitted { "fitted now" } else { "reused" },
        steps.fit.within_10pct.map(|w| format!(", {:.0}% of held-out op predictions within ±10%", 100.0 * w)).unwrap_or_default()
    ));
    let plan = &tuned.plan;
    let splits = plan.splits.len();
    out.push_str(&format!(
        "plan {}: {} stages on {}{}, found in {:.1} ms\n\n",
        j.plan_id,
        plan.stages.len(),
        plan.processors.join(" + "),
        if splits > 0 { format!(", {splits} split ops") } else { String::new() },
        steps.tune_search_ms
    ));

    if steps.rounds.len() > 1 {
        out.push_str("plans run (each tuned with the per-stage timings of the runs before it; the kept one measured fastest):\n");
        let mut t = Table::new(&["plan", "cost models", "stages", "measured ms", "predicted ms", "prediction error"]);
        for r in &steps.rounds {
            let ms = |v: Option<f64>| v.map(|v| format!("{v:.2}")).unwrap_or_else(|| "-".into());
            t.row(vec![
                format!("{}{}", r.plan_id, if r.plan_id == j.plan_id { " (kept)" } else { "" }),
                format!("v{}", r.cost_model_version),
                r.stages.to_string(),
                ms(r.measured_ms),
                ms(r.predicted_ms),
                r.prediction_error.map(|e| format!("{:+.1}%", 100.0 * e)).unwrap_or_else(|| "-".into()),
            ]);
        }
        out.push_str(&t.render());
        out.push('\n');
    }
    let mut t = Table::new(&["", "measured ms", "p90 ms", "predicted ms"]);
    let predicted: std::collections::BTreeMap<String, f64> = tuned.json.baselines.iter().map(|b| (format!("single:{}", b.processor), b.predicted_ms)).collect();
    for b in &r.baselines {
        t.row(vec![b.name.clone(), format!("{:.2}", b.measured_ms), format!("{:.2}", b.p90_ms), predicted.get(&b.name).map(|p| format!("{p:.2}")).unwrap_or_else(|| "-".into())]);
    }
    if let Some(m) = &j.measured_ms {
        t.row(vec![format!("plan {}", j.plan_id), format!("{:.2}", m.median), format!("{:.2}", m.p90), r.predicted_ms.map(|p| format!("{p:.2}")).unwrap_or_else(|| "-".into())]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "\nverified: {} (max abs diff {:.2e}, max rel diff {:.2e}); prediction error {}; speedup vs best baseline {}\n",
        if r.verified { "yes" } else { "NO" },
        r.max_abs_diff,
        r.max_rel_diff,
        r.prediction_error.map(|e| format!("{:+.1}%", 100.0 * e)).unwrap_or_else(|| "-".into()),
        super::run::speedup_text(r),
    ));
    // A one-stage plan does the same work as its processor's baseline: any gap between the two is
    // between two ways of running and timing it (the executor's lane, the baseline's worker), not a
    // gain from partitioning, and is said so rather than left to read as a speedup.
    if let ([only], Some(m)) = (plan.stages.as_slice(), &j.measured_ms) {
        let name = format!("single:{}", only.processor);
        if let Some(b) = r.baselines.iter().find(|b| b.name == name) {
            out.push_str(&format!(
                "plan {} is the whole model on {} alone: {:.2} ms against {:.2} ms for {name}, the same work run as a baseline in the same run ({:+.0}%); partitioning gains nothing here\n",
                j.plan_id,
                only.processor,
                m.median,
                b.measured_ms,
                100.0 * (m.median / b.measured_ms - 1.0)
            ));
        }
    }
    // Measuring is the point: when the plan loses to a processor running the model alone, say which
    // one to use instead rather than leave a ratio below 1 to be noticed.
    let alone_on = |p: &str| matches!(plan.stages.as_slice(), [only] if only.processor == p);
    if let (Some(speedup), Some(best)) = (r.speedup_vs_best_baseline, r.best_baseline.as_ref()) {
        if speedup < 1.0 && r.versus_best_baseline != Some(tandem_exec::Verdict::Indistinguishable) && !alone_on(best.trim_start_matches("single:")) {
            out.push_str(&format!(
                "the plan is {:.0}% slower than {best} as measured: run the model on {} alone (the cost models predicted otherwise; profiling again on a quieter machine may change that)\n",
                100.0 * (1.0 / speedup - 1.0),
                best.trim_start_matches("single:")
            ));
        }
    }
    out.push_str(&format!(
        "\ndig further:\n  tandem tune {m}                      # the plan, stage by stage\n  tandem run {m} --plan {p} --trace run.json   # measured and predicted timelines for Perfetto\n  tandem query \"select processor_id, op_kind, samples, mape, within_10pct from cost_models where version = {v}\"\n  tandem query \"select id, verified, median_ms, predicted_ms, prediction_error from runs where plan_id = {p}\"\n",
        m = j.model,
        p = j.plan_id,
        v = steps.fit.version
    ));
    crate::out(&out)?;
    Ok(())
}
