//! Does `tandem run` time its baselines fairly? A one-stage plan does the same work as its processor's
//! `single:` baseline, so the two must measure alike, whatever else is interleaved with them.
//!
//! `cargo run --release -p tandem-exec --example bench_baseline -- MODEL.onnx NAME=DIMS`
//! (default: the zoo's mobilenet; `BENCH_PROCESSORS=cpu:0-1` limits the processors, `BENCH_REPEAT=3`
//! repeats each)
//!
//! For every processor: the whole model as one stage on it, measured (1) against its own baseline
//! alone and (2) against every processor's baseline, interleaved as `tandem run` does. Printed: the
//! medians and p90s, and the plan / baseline ratio, which should be a few percent above 1 (the
//! executor's dispatch) in both columns; and, for (1), how much of the plan's latency its stage's
//! model ran. Each twice: with the caller running the stage itself (the executor's default), and
//! handing it to the processor's lane and waiting to be woken, which cost about 100 µs a request
//! here (an optimised debug build, ppocr_mobile_v2_cls on cpu:0: the stage's model ran 2.64 of the
//! plan's 2.74 ms, against a baseline of 2.59). The ratio was 0.80-0.88 on `cpu:0-1` in (2) while
//! tract's pool threads were left to the scheduler (see `tandem_profile::measure::pool`).

use std::sync::Arc;

use tandem_device::Device;
use tandem_exec::{sketch, ExecOptions, Executor, MeasureOptions, RunReport};
use tandem_graph::{Graph, InputShape};

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let g = match args.first() {
        Some(path) => {
            let shapes: Vec<InputShape> = args[1..].iter().map(|s| s.parse().expect("NAME=DIMS")).collect();
            Graph::load(std::path::Path::new(path), &shapes).expect("the model loads")
        }
        None => Graph::load_bytes("mobilenet", &tandem_graph::zoo::build("mobilenet", 0).unwrap(), &[]).unwrap(),
    };
    let g = Arc::new(g);
    let device = Device::discover().expect("device");
    let cpus: Vec<_> = device.processors.iter().filter(|p| p.kind == tandem_device::ProcessorKind::Cpu).cloned().collect();
    println!("{} on device {}: one-stage plan against single:<processor>, medians (p90) in ms", g.name, device.id);
    println!("caller: `runs` = the caller runs the stage itself (the default), `hands` = hands it to the lane and waits\n");
    println!("{:<10} {:<6} {:>18} {:>18} {:>7} | {:>18} {:>18} {:>7}", "processor", "caller", "plan, own only", "baseline", "ratio", "plan, all", "baseline", "ratio");
    // BENCH_PROCESSORS=cpu:0-1 (comma-separated) measures those plans only; BENCH_REPEAT=N repeats each.
    let only: Option<Vec<String>> = std::env::var("BENCH_PROCESSORS").ok().map(|v| v.split(',').map(String::from).collect());
    let repeat: usize = std::env::var("BENCH_REPEAT").ok().and_then(|v| v.parse().ok()).unwrap_or(1);
    for p in cpus.iter().filter(|p| only.as_ref().is_none_or(|o| o.contains(&p.id))).flat_map(|p| std::iter::repeat_n(p, repeat)) {
        let plan = sketch::single(&g, &device.id, &p.id);
        for caller_runs_home in [true, false] {
            let options = ExecOptions { caller_runs_home, ..ExecOptions::default() };
            let exec = Executor::with_options(g.clone(), &plan, &device.processors, options).expect("executor");
            let run = |baselines: &[tandem_device::Processor]| -> RunReport {
                let mut o = MeasureOptions::default();
                o.rule.budget_s = 3.0;
                o.rule.min_samples = 20;
                let r = tandem_exec::measure(&exec, baselines, &o).expect("measure");
                assert!(r.verified, "not verified");
                r
            };
            let cell = |r: &RunReport| {
                let m = r.measured.as_ref().unwrap();
                let b = r.baselines.iter().find(|b| b.processor == p.id).expect("own baseline");
                (format!("{:.3} ({:.3})", m.median_us / 1e3, m.p90_us / 1e3), format!("{:.3} ({:.3})", b.measured_ms, b.p90_ms), m.median_us / 1e3 / b.measured_ms)
            };
            let own = run(std::slice::from_ref(p));
            let stage_ms = own.stages.first().map(|s| s.measured_us / 1e3).unwrap_or(f64::NAN);
            let (a, b) = (cell(&own), cell(&run(&cpus)));
            let mode = if caller_runs_home { "runs" } else { "hands" };
            println!("{:<10} {mode:<6} {:>18} {:>18} {:>7.3} | {:>18} {:>18} {:>7.3}   (own only: its model ran {stage_ms:.3} ms)", p.id, a.0, a.1, a.2, b.0, b.1, b.2);
        }
    }
}
