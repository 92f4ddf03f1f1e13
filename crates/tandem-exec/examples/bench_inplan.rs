//! Do a plan's stages run slower when the baselines are interleaved with it?
//!
//! `cargo run --release -p tandem-exec --example bench_inplan -- PLAN.json MODEL.onnx NAME=DIMS`
//! (PLAN.json: a stored plan, `tandem query --json "select plan from plans where id = 7"` unwrapped)
//!
//! Measures the plan with the `single:` baselines interleaved (as `tandem run`) and without, twice
//! each, printing the plan's median and the sum of the stages' medians; then the plan alone with an
//! idle pause before each request (0, 5, 25, 60 ms), and with a 25 ms pause followed by both cores
//! kept busy for 1, 3 or 10 ms just before the request; last, the stages whose times differ most with
//! and without the baselines.
//!
//! What it showed on this 2-core VM (mobilenet_v2, a 71-stage plan): 25.4 ms interleaved, 23.2 ms
//! without; 23.2, 23.5, 25.6 and 26.1 ms after pauses of 0, 5, 25 and 60 ms; and 26.2, 26.0, 25.6 ms
//! with the cores kept busy first. So a request that follows idle cores runs slower however warm the
//! cores' clocks are: what it lost is its data in the caches, which the baselines' runs (or other
//! tenants of the host) displaced.

use std::sync::Arc;

use tandem_device::Device;
use tandem_exec::{ExecOptions, Executor, MeasureOptions};
use tandem_graph::{Graph, InputShape};
use tandem_plan::Plan;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let plan: Plan = serde_json::from_str(&std::fs::read_to_string(&args[0]).expect("plan file")).expect("plan JSON");
    let shapes: Vec<InputShape> = args[2..].iter().map(|s| s.parse().expect("NAME=DIMS")).collect();
    let g = Arc::new(Graph::load(std::path::Path::new(&args[1]), &shapes).expect("model"));
    let device = Device::discover().expect("device");
    let exec = Executor::with_options(g.clone(), &plan, &device.processors, ExecOptions::default()).expect("executor");
    let mut reports = vec![];
    for baselines in [true, false, true, false] {
        let mut o = MeasureOptions { baselines, ..Default::default() };
        o.rule.budget_s = 4.0;
        o.rule.min_samples = 30;
        let r = tandem_exec::measure(&exec, &device.processors, &o).expect("measure");
        let sum: f64 = r.stages.iter().map(|s| s.measured_us).sum();
        println!("baselines {baselines:<5}: plan median {:.2} ms, stages' medians summed {:.2} ms", r.measured.as_ref().unwrap().median_us / 1e3, sum / 1e3);
        reports.push(r);
    }
    // The plan alone, with an idle pause between requests as long as the baselines would take.
    let inputs = g.random_inputs(0);
    for pause_ms in [0u64, 5, 25, 60] {
        let mut lat = vec![];
        for i in 0..60 {
            if pause_ms > 0 {
                std::thread::sleep(std::time::Duration::from_millis(pause_ms));
            }
            let o = exec.run(inputs.clone()).expect("run");
            if i >= 5 {
                lat.push(o.timeline.latency_us);
            }
        }
        println!("idle {pause_ms:>2} ms before each request: plan median {:.2} ms", tandem_profile::percentile(&lat, 0.5) / 1e3);
    }
    // The same pause, then both cores kept busy for a while just before the request.
    for spin_ms in [1u64, 3, 10] {
        let mut lat = vec![];
        for i in 0..60 {
            std::thread::sleep(std::time::Duration::from_millis(25));
            let spinners: Vec<_> = (0..2)
                .map(|core| {
                    std::thread::spawn(move || {
                        tandem_device::pin_current_thread(&[core]).unwrap();
                        let t = std::time::Instant::now();
                        while t.elapsed().as_secs_f64() * 1e3 < spin_ms as f64 {
                            std::hint::spin_loop();
                        }
                    })
                })
                .collect();
            for s in spinners {
                s.join().unwrap();
            }
            let o = exec.run(inputs.clone()).expect("run");
            if i >= 5 {
                lat.push(o.timeline.latency_us);
            }
        }
        println!("idle 25 ms, then both cores busy {spin_ms:>2} ms before each request: plan median {:.2} ms", tandem_profile::percentile(&lat, 0.5) / 1e3);
    }
    let (with, without) = (&reports[0], &reports[1]);
    let mut diffs: Vec<(f64, usize, f64, f64)> = with.stages.iter().zip(&without.stages).map(|(a, b)| (a.measured_us - b.measured_us, a.stage, a.measured_us, b.measured_us)).collect();
    diffs.sort_by(|a, b| b.0.abs().total_cmp(&a.0.abs()));
    for (d, s, a, b) in diffs.iter().take(8) {
        println!("  stage {s}: {a:.0} µs with baselines, {b:.0} without ({d:+.0})");
    }
}
