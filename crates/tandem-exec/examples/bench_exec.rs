//! What the executor costs, and what splitting ops across cores gains, on real models.
//!
//! `cargo run --release -p tandem-exec --example bench_exec [-- MODEL_NAME_FILTER] [--budget-ms N] [--spin-us N]`
//! (`BENCH_CALLER=thread`: the measuring caller is a spawned thread rather than the main one)
//!
//! For every model of `../shared/models` (input shapes from MANIFEST.json) and of the zoo:
//!
//! 1. overhead: the whole model as one stage on `cpu:0`, run through the executor (timed from the
//!    caller: dispatch, the run, the result back), interleaved with tract's plain run of the same model
//!    on a worker pinned to `cpu:0` (timed around the run), with the overhead's paired 95% interval
//!    (`count_exec` counts the instructions each executes instead, whatever the machine is doing);
//! 2. splits: a hand-made two-core plan, every op with at least 3% of the model's FLOPs split in half
//!    between `cpu:0` and `cpu:1` (with the activation after it), the other ops as stages on `cpu:0`,
//!    interleaved with the whole model alone on every processor (`single:cpu:0`, `single:cpu:1`,
//!    `single:cpu:0-1`, the last being tract's own multithreading).
//!
//! Every plan is verified against the single-processor run first. Printed per model: medians, the
//! overhead, speedups over one core and over tract's multithreading, and the median cost of a hand-over
//! (a stage released on another processor: ready to started). The geometric means close the table.

use std::path::PathBuf;
use std::sync::Arc;

use tandem_device::Device;
use tandem_exec::sketch::{self, Piece};
use tandem_exec::{ExecOptions, Executor, MeasureOptions, RunReport};
use tandem_graph::{boundaries, Graph, InputShape, Op, OpId};

fn models(filter: Option<&str>) -> Vec<(String, Graph)> {
    let mut out = vec![];
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    if let Ok(text) = std::fs::read_to_string(dir.join("MANIFEST.json")) {
        let manifest: serde_json::Value = serde_json::from_str(&text).expect("MANIFEST.json parses");
        let mut entries: Vec<_> = manifest.as_object().unwrap().iter().collect();
        entries.sort_by_key(|(k, _)| k.to_string());
        for (name, entry) in entries {
            if filter.is_some_and(|f| !name.contains(f)) {
                continue;
            }
            let shapes: Vec<InputShape> = entry["inputs"]
                .as_array()
                .unwrap()
                .iter()
                .enumerate()
                .map(|(ix, s)| format!("{ix}={}", s.as_str().unwrap().split_once(':').unwrap().1).parse().unwrap())
                .collect();
            match Graph::load(&dir.join(entry["file"].as_str().unwrap()), &shapes) {
                Ok(g) => out.push((name.clone(), g)),
                Err(e) => eprintln!("{name}: skipped: {e}"),
            }
        }
    } else {
        eprintln!("no ../shared/models: zoo models only");
    }
    for m in tandem_graph::zoo::models() {
        let label = format!("zoo:{}", m.name);
        if filter.is_some_and(|f| !label.contains(f)) {
            continue;
        }
        let g = Graph::load_bytes(m.name, &tandem_graph::zoo::build(m.name, 0).unwrap(), &[]).unwrap();
        out.push((label, g));
    }
    out
}

/// The axis and block alignment to split `op` along, if any: output channels of a convolution, output
/// features of a matrix product, else its longest splittable axis.
fn split_axis(op: &Op) -> Option<(usize, usize)> {
    let shape = &op.outputs.first()?.shape;
    let fits = |a: usize| op.split_axes.contains(&a);
    if op.kind.ends_with("Conv") && fits(1) && shape[1] >= 32 {
        return Some((1, 16));
    }
    if op.kind == "EinSum" {
        if let Some(&a) = op.split_axes.iter().filter(|&&a| shape[a] >= 32).max() {
            return Some((a, 16));
        }
    }
    op.split_axes.iter().copied().filter(|&a| shape[a] >= 8).max_by_key(|&a| shape[a]).map(|a| (a, 1))
}

/// Heavy ops split in half between `a` and `b`, the rest as stages on `a`. Returns the plan and the
/// number of splits.
fn split_plan(g: &Graph, device: &str, a: &str, b: &str, min_share: f64) -> (tandem_plan::Plan, usize) {
    let total = g.total_flops() as f64;
    let mut pieces = vec![];
    let mut pending: Vec<OpId> = vec![];
    let mut splits = 0;
    let mut o = 0;
    while o < g.ops.len() {
        let op = &g.ops[o];
        let heavy = op.cost.flops as f64 >= min_share * total;
        let chosen = if heavy { split_axis(op) } else { None };
        let Some((axis, align)) = chosen else {
            pending.push(o);
            o += 1;
            continue;
        };
        let dim = op.outputs[0].shape[axis];
        let bounds = boundaries(dim, &[0.5], align);
        // Take the activation along when it reads only this op.
        let mut chain = vec![o];
        let succ: Vec<OpId> = g.successors(o).into_iter().collect();
        if let [next] = succ[..] {
            let cheap = matches!(g.ops[next].kind.as_str(), "Max" | "Min" | "Clip");
            if next == o + 1 && cheap && g.predecessors(next).len() == 1 && g.ops[next].split_axes.contains(&axis) {
                chain.push(next);
            }
        }
        if g.split(&chain, axis, &bounds).is_err() {
            chain.truncate(1);
        }
        if bounds.len() != 3 || g.split(&chain, axis, &bounds).is_err() {
            pending.push(o);
            o += 1;
            continue;
        }
        if !pending.is_empty() {
            pieces.push(Piece::Stage { ops: std::mem::take(&mut pending), processor: a.into() });
        }
        o = chain.last().unwrap() + 1;
        pieces.push(Piece::Split { ops: chain, axis, bounds, processors: vec![a.into(), b.into()] });
        splits += 1;
    }
    if !pending.is_empty() {
        pieces.push(Piece::Stage { ops: pending, processor: a.into() });
    }
    (sketch::sketch(g, device, &pieces).expect("contiguous ranges and splits make a valid plan"), splits)
}

fn measure(g: &Arc<Graph>, plan: &tandem_plan::Plan, device: &Device, baselines_on: &[&str], budget_s: f64, spin_us: u64) -> RunReport {
    let options = ExecOptions { spin: std::time::Duration::from_micros(spin_us), ..Default::default() };
    let exec = Executor::with_options(g.clone(), plan, &device.processors, options).expect("executor");
    let processors: Vec<_> = device.processors.iter().filter(|p| baselines_on.contains(&p.id.as_str())).cloned().collect();
    let mut options = MeasureOptions::default();
    options.rule.budget_s = budget_s;
    options.rule.min_samples = 15;
    let r = tandem_exec::measure(&exec, &processors, &options).expect("measure");
    assert!(r.verified, "{}: not verified: {:?}", g.name, r.outputs);
    r
}

fn geomean(v: &[f64]) -> f64 {
    (v.iter().map(|x| x.ln()).sum::<f64>() / v.len().max(1) as f64).exp()
}

fn main() {
    // BENCH_CALLER=thread runs everything from a spawned thread instead of the main one (glibc gives
    // the main thread its own heap arena, grown with brk; other threads share mmap'd arenas).
    if std::env::var("BENCH_CALLER").is_ok_and(|v| v == "thread") {
        std::thread::Builder::new().stack_size(64 << 20).spawn(bench).expect("a thread").join().expect("the bench");
    } else {
        bench();
    }
}

fn bench() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let budget_s = args.iter().position(|a| a == "--budget-ms").and_then(|i| args.get(i + 1)).and_then(|v| v.parse::<f64>().ok()).unwrap_or(2000.0) / 1e3;
    let spin_us = args
        .iter()
        .position(|a| a == "--spin-us")
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(ExecOptions::default().spin.as_micros() as u64);
    let filter = args.iter().enumerate().find(|(i, a)| !a.starts_with("--") && (*i == 0 || !args[i - 1].starts_with("--"))).map(|(_, a)| a.as_str());
    let device = Device::discover().expect("device");
    let singles: Vec<&str> = device.processors.iter().filter(|p| p.threads == 1).map(|p| p.id.as_str()).collect();
    let (a, b) = (singles[0], *singles.get(1).expect("two cores"));
    let all = device.all_cores().id.clone();
    println!("device {} ({}), processors {}", device.id, device.cpu_model, device.processors.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", "));
    let busy = |when: &str| {
        let env = tandem_device::EnvSnapshot::take_with_window(&device, std::time::Duration::from_secs(1));
        println!("{when}: other processes use {} of the device's CPU", env.other_cpu_percent.map(|p| format!("{p:.0}%")).unwrap_or_else(|| "an unknown share".into()));
    };
    busy("before");
    println!("budget {budget_s:.1} s per measurement, lanes poll {spin_us} µs before sleeping; plan timed from the caller, baselines inside their pinned worker\n");
    println!(
        "{:<24} {:>9} {:>9} {:>7} {:>12} {:>5} {:>5} | {:>6} {:>9} {:>9} {:>9} {:>9} {:>7} {:>7} {:>7} {:>8}",
        "model", "tract ms", "1-stage", "ovh %", "ovh 95% CI", "in µs", "out µs", "splits", "split ms", "cpu:0 ms", "cpu:1 ms", "0-1 ms", "spl/c0", "mt/c0", "spl/mt", "handov µs"
    );
    let (mut overheads, mut split_speedups, mut mt_speedups, mut best_speedups) = (vec![], vec![], vec![], vec![]);
    for (name, g) in models(filter) {
        let g = Arc::new(g);
        let one = sketch::single(&g, &device.id, a);
        let r1 = measure(&g, &one, &device, &[a], budget_s, spin_us);
        let plain = r1.baselines[0].measured_ms;
        let staged = r1.measured.as_ref().unwrap().median_us / 1e3;
        let overhead = (staged / plain - 1.0) * 100.0;
        overheads.push(staged / plain);
        // The paired interval of baseline / plan, turned into the plan's overhead: whether the few
        // percent are a difference at all.
        let ci = r1.speedup_ci95.map(|[lo, hi]| format!("{:+.1}..{:+.1}", (1.0 / hi - 1.0) * 100.0, (1.0 / lo - 1.0) * 100.0)).unwrap_or_else(|| "-".into());

        let (plan, n_splits) = split_plan(&g, &device.id, a, b, 0.03);
        let r2 = measure(&g, &plan, &device, &[a, b, all.as_str()], budget_s, spin_us);
        let base = |p: &str| r2.baselines.iter().find(|x| x.processor == p).map(|x| x.measured_ms).unwrap_or(f64::NAN);
        let (c0, c1, mt) = (base(a), base(b), base(&all));
        let split = r2.measured.as_ref().unwrap().median_us / 1e3;
        split_speedups.push(c0 / split);
        mt_speedups.push(c0 / mt);
        best_speedups.push(c0 / split.min(mt));
        println!(
            "{:<24} {:>9.3} {:>9.3} {:>+7.2} {:>12} {:>5.0} {:>5.0} | {:>6} {:>9.3} {:>9.3} {:>9.3} {:>9.3} {:>7.2} {:>7.2} {:>7.2} {:>8.0}",
            name,
            plain,
            staged,
            overhead,
            ci,
            r1.stages[0].start_us,
            staged * 1e3 - r1.stages[0].end_us,
            format!("{n_splits}/{}", plan.stages.len()),
            split,
            c0,
            c1,
            mt,
            c0 / split,
            c0 / mt,
            mt / split,
            r2.handover_us.unwrap_or(f64::NAN)
        );
    }
    println!(
        "\ngeomean: one-stage / tract {:+.2}%, split plan / cpu:0 {:.2}x, tract multithread / cpu:0 {:.2}x, best two-core / cpu:0 {:.2}x",
        (geomean(&overheads) - 1.0) * 100.0,
        geomean(&split_speedups),
        geomean(&mt_speedups),
        geomean(&best_speedups)
    );
    busy("after");
    println!("columns: ovh 95% CI = the overhead's paired bootstrap interval (rounds timing both); in = one-stage plan, call to the stage starting on its lane (median); out = its end to the result back with the caller (medians' difference); splits = split ops / stages; spl/c0 = split plan speedup over single:cpu:0; mt/c0 = tract's own multithreading over single:cpu:0; spl/mt = split plan over tract multithreading; handov = ready-to-started of stages released from the other core");
}
