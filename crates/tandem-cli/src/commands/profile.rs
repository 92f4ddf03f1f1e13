//! `tandem profile`: measure a model on every processor into the results database; with `--contention`,
//! measure how much each CPU processor slows down under controlled background load instead.

use std::sync::Arc;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tandem_device::Device;
use tandem_profile::{ContentionOptions, ContentionReport, ProfileOptions, ProfileReport, Reporter};

use crate::cli::ProfileArgs;
use crate::table::Table;

/// An indicatif bar with an ETA, drawn on stderr (hidden under `--json` or when stderr is no terminal).
struct Bar(ProgressBar);

impl Reporter for Bar {
    fn begin(&self, total: u64) {
        self.0.set_length(total);
    }
    fn advance(&self, label: &str) {
        self.0.inc(1);
        self.0.set_message(label.to_string());
    }
    fn end(&self) {
        self.0.finish_and_clear();
    }
}

/// What `tandem profile probes` profiles: every probe network (`tandem zoo --probes`).
pub const ALL_PROBES: &str = "probes";

/// Runs `tandem profile`.
pub fn run(args: &ProfileArgs, db: &std::path::Path, json: bool) -> Result<()> {
    if args.model.model == ALL_PROBES && !std::path::Path::new(ALL_PROBES).exists() {
        return probes(args, db, json);
    }
    let graph = Arc::new(super::load_model(&args.model)?);
    if args.contention {
        return contention(graph, args, db, json);
    }
    let report = measure(graph.clone(), args, db, !json)?;
    if json {
        return super::print_json(&serde_json::json!({
            "profile_id": report.profile_id,
            "model_id": report.model_id,
            "device_id": report.device_id,
            "processors": report.processors,
            "measurements": report.measurements,
            "elapsed_s": report.elapsed_s,
            "report": report,
        }));
    }
    print_summary(&graph.name, &report)
}

/// `tandem profile probes`: every probe network in turn, each resumable as any profile is (what is
/// stored is kept), one line each.
fn probes(args: &ProfileArgs, db: &std::path::Path, json: bool) -> Result<()> {
    anyhow::ensure!(!args.contention, "--contention profiles one model; name it instead of `probes`");
    anyhow::ensure!(args.model.input_shape.is_empty(), "probe networks have fixed input shapes; drop --input-shape");
    let all = tandem_graph::zoo::probe::probes();
    let started = std::time::Instant::now();
    let mut rows = vec![];
    for (i, probe) in all.iter().enumerate() {
        let one = crate::cli::ModelArgs { model: probe.name.clone(), input_shape: vec![] };
        let graph = Arc::new(super::load_model(&one)?);
        let report = measure(graph.clone(), args, db, !json)?;
        if !json {
            eprintln!(
                "{}/{} {}: {} ops, {} measurements written, {} already stored, {:.1} s{}",
                i + 1,
                all.len(),
                probe.name,
                graph.ops.len(),
                report.measurements,
                report.skipped,
                report.elapsed_s,
                if report.drifted { format!(" (speed drifted {:+.1}%)", report.drift_pct) } else { String::new() }
            );
        }
        rows.push(serde_json::json!({
            "model": probe.name,
            "profile_id": report.profile_id,
            "model_id": report.model_id,
            "measurements": report.measurements,
            "already_stored": report.skipped,
            "elapsed_s": report.elapsed_s,
            "drift_pct": report.drift_pct,
        }));
    }
    let elapsed_s = started.elapsed().as_secs_f64();
    if json {
        return super::print_json(&serde_json::json!({ "probes": rows, "elapsed_s": elapsed_s }));
    }
    crate::out(&format!("profiled {} probe networks in {elapsed_s:.1} s; `tandem fit` now trains on them too\n", all.len()))?;
    Ok(())
}

/// Profiles `graph` as `args` ask (processors, budget, transfers, force), with a progress bar on stderr
/// when `progress`. What the database already holds is kept, not measured again (unless `--force`).
pub fn measure(graph: Arc<tandem_graph::Graph>, args: &ProfileArgs, db: &std::path::Path, progress: bool) -> Result<ProfileReport> {
    let device = Device::discover()?;
    // Check the processor names before touching the database.
    device.processors_from_list(&args.processors)?;
    let store = tandem_store::Store::open(db)?;
    let mut options = ProfileOptions { processors: args.processors.clone(), force: args.force, ..Default::default() };
    if let Some(b) = args.budget_ms {
        options.item_rule.budget_s = b as f64 / 1e3;
    }
    if args.no_transfers {
        options.transfer_sizes.clear();
    }
    Ok(tandem_profile::profile(graph, &device, &store, &options, &bar(progress))?)
}

/// The progress bar, drawn when `progress`.
fn bar(progress: bool) -> Bar {
    let bar = if progress { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta}) {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Bar(bar)
}

/// `tandem profile MODEL --contention`: the contention profile alone. The per-op profile is a separate,
/// longer step that this does not need; the JSON keeps the profile object's fields (`profile_id` is null:
/// no per-op session ran, `measurements` is 0) and adds `contention` and `throttling`.
fn contention(graph: Arc<tandem_graph::Graph>, args: &ProfileArgs, db: &std::path::Path, json: bool) -> Result<()> {
    let device = Device::discover()?;
    let mut options = ContentionOptions { processors: args.processors.clone(), ..Default::default() };
    if let Some(b) = args.budget_ms {
        anyhow::ensure!(b > 0, "--budget-ms must be positive");
        options.budget_s = b as f64 / 1e3;
    }
    // Check the processor names before touching the database.
    tandem_profile::contention::contention_processors(&device, &options)?;
    let store = tandem_store::Store::open(db)?;
    let report = tandem_profile::profile_contention(graph.clone(), &device, &store, &options, &bar(!json))?;
    let rows: Vec<serde_json::Value> = report
        .rows
        .iter()
        .map(|r| {
            serde_json::json!({
                "processor": r.processor_id,
                "scenario": r.scenario,
                "load": r.load,
                "idle_ms": r.idle_us / 1e3,
                "loaded_ms": r.loaded_us / 1e3,
                "slowdown": r.slowdown,
                "idle_samples": r.idle_samples,
                "loaded_samples": r.loaded_samples,
                "runs_per_sample": r.runs_per_sample,
            })
        })
        .collect();
    if json {
        return super::print_json(&serde_json::json!({
            "profile_id": null,
            "model_id": report.model_id,
            "device_id": report.device_id,
            "processors": report.processors,
            "measurements": 0,
            "elapsed_s": report.elapsed_s,
            "contention": rows,
            "skipped": report.skipped,
            "throttling": report.throttling,
            "environment": {"before": report.env_before, "after": report.env_after},
        }));
    }
    print_contention(&graph.name, &report, options.budget_s)
}

fn print_contention(model: &str, r: &ContentionReport, budget_s: f64) -> Result<()> {
    let mut out = format!(
        "contention profile of {model} on {} in {:.1} s ({:.0} ms per processor and scenario)\n",
        r.processors.join(", "),
        r.elapsed_s,
        budget_s * 1e3
    );
    let mut t = Table::new(&["processor", "scenario", "idle ms", "loaded ms", "slowdown", "load"]);
    for c in &r.rows {
        t.row(vec![c.processor_id.clone(), c.scenario.clone(), format!("{:.2}", c.idle_us / 1e3), format!("{:.2}", c.loaded_us / 1e3), format!("{:.2}", c.slowdown), c.load.clone()]);
    }
    out.push_str(&t.render());
    for s in &r.skipped {
        out.push_str(&format!("skipped {} on {}: {}\n", s.scenario, s.processor, s.reason));
    }
    out.push_str(&format!("throttling: {}\n", r.throttling.summary()));
    out.push_str("dig further: tandem query \"select processor_id, scenario, slowdown, load from contention order by slowdown desc\"\n");
    crate::out(&out)?;
    Ok(())
}

fn print_summary(model: &str, r: &ProfileReport) -> Result<()> {
    let mut out = format!(
        "profiled {model} on {} in {:.1} s: session {}{}, {} measurements written, {} already stored, {} transfers, {} ops unsupported somewhere\n",
        r.processors.join(", "),
        r.elapsed_s,
        r.profile_id,
        if r.resumed { " (resumed)" } else { "" },
        r.measurements,
        r.skipped,
        r.transfers,
        r.unsupported
    );
    let mut t = Table::new(&["processor", "model ms", "sum of ops ms", "hook overhead %", "unsupported", "slowest ops (µs)"]);
    for p in &r.per_processor {
        let f = |v: Option<f64>, d: usize| v.map(|v| format!("{v:.d$}")).unwrap_or_else(|| "-".into());
        let slow = p.slowest_ops.iter().take(3).map(|(n, k, us)| format!("{k} {} {us:.0}", short(n))).collect::<Vec<_>>().join(", ");
        t.row(vec![p.processor.clone(), f(p.model_median_ms, 2), f(p.ops_in_context_sum_ms, 2), f(p.hook_overhead_pct, 1), p.unsupported.to_string(), slow]);
    }
    out.push_str(&t.render());
    out.push_str(&format!(
        "reference workload: {:.2} ms before, {:.2} ms after ({:+.1}%){}\n",
        r.reference_before_ms,
        r.reference_after_ms,
        r.drift_pct,
        if r.drifted { ": the device's speed DRIFTED by more than 5% during the session; consider profiling again" } else { "" }
    ));
    out.push_str("dig further: tandem query \"select processor_id, context, count(*), sum(median_us)/1000 as ms from measurements where target='op' group by 1, 2\"\n");
    crate::out(&out)?;
    Ok(())
}

fn short(name: &str) -> String {
    let n = name.chars().count();
    if n <= 24 { name.to_string() } else { format!("…{}", name.chars().skip(n - 23).collect::<String>()) }
}
