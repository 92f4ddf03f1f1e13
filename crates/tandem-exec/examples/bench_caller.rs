//! Is a one-stage plan's overhead the executor's, or the thread's? Five series timed in one run,
//! interleaved in shuffled rounds: the executor's one-stage plan on `cpu:0` and tract's plain run of
//! the whole model, each from the main thread (pinned to `cpu:0`) and from a worker thread pinned to
//! `cpu:0`, and a twin of the plain run (the model compiled again) in the worker. `tandem run` times
//! its baselines in such a worker and the plan from its caller.
//!
//! `cargo run --release -p tandem-exec --example bench_caller -- [MODEL.onnx NAME=DIMS | zoo:NAME] [--rounds N] [--series 0,3]`
//! (default: the zoo's transformer, 200 rounds, all five series)
//!
//! Printed per series: the median and p90, and the paired ratio to tract's plain run in a worker
//! with its 95% bootstrap interval (`count_exec` counts the instructions instead).

use std::sync::{Arc, Mutex};
use std::time::Instant;

use tandem_device::{Device, Worker};
use tandem_exec::{sketch, Executor};
use tandem_graph::{Graph, InputShape, TValue, TVec};
use tract_onnx::tract_core::plan::SimpleState;

type State = SimpleState<tract_onnx::prelude::TypedFact, Box<dyn tract_onnx::prelude::TypedOp>>;

/// tract's plain run of the whole model on one thread, µs.
fn plain(state: &Mutex<State>, inputs: &TVec<TValue>) -> f64 {
    let mut state = state.lock().unwrap();
    let t = Instant::now();
    let out = state.run(inputs.clone()).expect("the plain run");
    let us = t.elapsed().as_secs_f64() * 1e6;
    drop(out);
    us
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // --series 0,3 times only those (numbered as printed, from 0), as `tandem run` times a one-stage
    // plan against its baseline.
    let series: Vec<usize> = args.iter().position(|a| a == "--series").and_then(|i| args.get(i + 1)).map(|v| v.split(',').filter_map(|x| x.parse().ok()).filter(|&x| x < 5).collect()).unwrap_or(vec![0, 1, 2, 3, 4]);
    assert!(series.contains(&3), "--series must include 3, the reference");
    let rounds: usize = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(200);
    let g = match args.first().filter(|a| !a.starts_with("--")) {
        Some(zoo) if zoo.starts_with("zoo:") => {
            let name = &zoo[4..];
            Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).expect("a zoo model"), &[]).expect("the zoo model loads")
        }
        Some(path) => {
            let shapes: Vec<InputShape> = args[1..].iter().take_while(|a| !a.starts_with("--")).map(|s| s.parse().expect("NAME=DIMS")).collect();
            Graph::load(std::path::Path::new(path), &shapes).expect("the model loads")
        }
        None => Graph::load_bytes("transformer", &tandem_graph::zoo::build("transformer", 0).unwrap(), &[]).unwrap(),
    };
    let g = Arc::new(g);
    let device = Device::discover().expect("device");
    let core = device.processors.iter().find(|p| p.id == "cpu:0").expect("cpu:0").clone();
    let inputs = g.random_inputs(0);

    // In a mutex because an executor is not Sync: the worker and the main thread take turns with it.
    let exec = Arc::new(Mutex::new(Executor::new(g.clone(), &sketch::single(&g, &device.id, &core.id), &device.processors).expect("executor")));
    let worker = Worker::spawn(&core).expect("a worker on cpu:0");
    let compile = || {
        let g = g.clone();
        let made = worker.run(move || SimpleState::new(&tandem_profile::measure::compile(g.optimized(), 1)?));
        Arc::new(Mutex::new(made.expect("the worker").expect("the model compiles")))
    };
    // The twin: the same model compiled a second time, run the same way. What it measures against
    // the first is the spread between two identical runs of tract's own (where their weights and
    // buffers landed in memory), the floor under any overhead measured here.
    let (state, twin) = (compile(), compile());
    let _pin = exec.lock().unwrap().pin_caller();

    let names = ["plan, main thread", "plan, worker", "plain, main thread", "plain, worker", "plain twin, worker"];
    let mut samples: Vec<Vec<f64>> = vec![vec![]; names.len()];
    // The seeded generator `tandem run` shuffles its own rounds with.
    let mut rng = tandem_cost::synthetic::Rng(0);
    let warmup = 10;
    for round in 0..rounds + warmup {
        for k in rng.shuffled(series.len()).into_iter().map(|i| series[i]) {
            let us = match k {
                0 => exec.lock().unwrap().run(inputs.clone()).expect("the plan").timeline.latency_us,
                1 => {
                    let (exec, inputs) = (exec.clone(), inputs.clone());
                    worker.run(move || exec.lock().unwrap().run(inputs).expect("the plan").timeline.latency_us).expect("the worker")
                }
                2 => plain(&state, &inputs),
                3 | 4 => {
                    let (state, inputs) = (if k == 3 { state.clone() } else { twin.clone() }, inputs.clone());
                    worker.run(move || plain(&state, &inputs)).expect("the worker")
                }
                _ => unreachable!("series are 0-4"),
            };
            if round >= warmup {
                samples[k].push(us);
            }
        }
    }
    println!("{} on cpu:0, {rounds} rounds (after {warmup} warm-up), the series shuffled in each round", g.name);
    println!("{:<20} {:>10} {:>10} {:>22}", "series", "median ms", "p90 ms", "/ plain, worker (95%)");
    let reference = &samples[3];
    let reference_us = tandem_profile::summarize(reference).median_us;
    for (name, s) in names.iter().zip(&samples).filter(|(_, s)| !s.is_empty()) {
        let sum = tandem_profile::summarize(s);
        let ratio = sum.median_us / reference_us;
        let ci = tandem_profile::paired_ratio_ci(s, reference, 2000).map(|(lo, hi)| format!("{lo:.3}-{hi:.3}")).unwrap_or_default();
        println!("{name:<20} {:>10.3} {:>10.3} {:>10.3} ({ci})", sum.median_us / 1e3, sum.p90_us / 1e3, ratio);
    }
}
