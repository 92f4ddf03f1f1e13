//! `tandem profile`: measure a model on every processor into the results database.

use std::sync::Arc;

use anyhow::Result;
use indicatif::{ProgressBar, ProgressStyle};
use tandem_device::Device;
use tandem_profile::{ProfileOptions, ProfileReport, Reporter};

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

/// Runs `tandem profile`.
pub fn run(args: &ProfileArgs, db: &std::path::Path, json: bool) -> Result<()> {
    let graph = Arc::new(super::load_model(&args.model)?);
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
    let bar = if progress { ProgressBar::new(0) } else { ProgressBar::hidden() };
    bar.set_style(
        ProgressStyle::with_template("{spinner} [{elapsed_precise}] {bar:30} {pos}/{len} (eta {eta}) {wide_msg}")
            .unwrap_or_else(|_| ProgressStyle::default_bar()),
    );
    Ok(tandem_profile::profile(graph, &device, &store, &options, &Bar(bar))?)
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
