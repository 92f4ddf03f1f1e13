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
    /// Wall time of the whole `auto`, seconds.
    pub elapsed_s: f64,
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
    let graph = Arc::new(super::load_model(&model)?);
    let device = Device::discover()?;

    step(json, &format!("1/4 profiling {} on {}", graph.name, processor_list(&device, &args.processors)));
    let (profile, fit) = prepare(graph.clone(), &model, &args.processors, args.budget_ms, db, json)?;
    let store = Store::open(db)?;

    step(json, "3/4 searching the plan");
    let tuned = super::tune::tune(&graph, &store, None, args.objective.into())?;

    step(json, &format!("4/4 running plan {} against every processor alone", tuned.json.plan_id));
    let options = super::run::measure_options(args.run_budget_ms, None);
    let done = super::run::execute(graph.clone(), tuned.json.plan_id, &store, &device, &options, args.trace.as_deref())?;

    let steps = Steps {
        profile,
        fit,
        tune_search_ms: tuned.json.search_ms,
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
        r.speedup_vs_best_baseline.map(|s| format!("{s:.2}x")).unwrap_or_else(|| "-".into()),
    ));
    // Measuring is the point: when the plan loses to a processor running the model alone, say which
    // one to use instead rather than leave a ratio below 1 to be noticed.
    if let (Some(speedup), Some(best)) = (r.speedup_vs_best_baseline, r.best_baseline.as_ref()) {
        if speedup < 1.0 {
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
