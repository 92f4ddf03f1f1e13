//! Does the profiler's reference kernel (`tandem_profile::reference::Kernel`) follow the host's speed?
//! One process times a model on `cpu:0` in rounds, each round followed by the kernel as the model left
//! the caches ("cold") and then again ("warm", what the profiler stores). Printed, one line:
//! the model's median, the cold and warm kernels' medians (µs), and the medians of the model's time
//! over each kernel's in the same round.
//!
//! `cargo run --release -p tandem-exec --example pair_probe -- [zoo:NAME | MODEL.onnx NAME=DIMS] [--rounds N]`
//! (default: the zoo's mobilenet, 30 rounds)
//!
//! Run it in many processes one after the other: the host's speed moves between them, and the
//! coefficient of variation of the model's median against that of its ratio to the kernel says how much
//! pairing cancels, e.g. `for i in $(seq 40); do target/release/examples/pair_probe; done`.

use std::sync::Arc;
use std::time::Instant;

use tandem_graph::{Graph, InputShape};
use tandem_profile::reference::Kernel;
use tract_onnx::tract_core::plan::SimpleState;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let rounds: usize = args.iter().position(|a| a == "--rounds").and_then(|i| args.get(i + 1)).and_then(|v| v.parse().ok()).unwrap_or(30);
    let g = match args.first().filter(|a| !a.starts_with("--")) {
        Some(path) if !path.starts_with("zoo:") => {
            let shapes: Vec<InputShape> = args[1..].iter().take_while(|a| !a.starts_with("--")).map(|s| s.parse().expect("NAME=DIMS")).collect();
            Graph::load(std::path::Path::new(path), &shapes).expect("the model loads")
        }
        zoo => {
            let name = zoo.map(|z| &z[4..]).unwrap_or("mobilenet");
            Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).expect("a zoo model"), &[]).expect("the zoo model loads")
        }
    };
    let g = Arc::new(g);
    let device = tandem_device::Device::discover().expect("device");
    let core = device.processors.iter().find(|p| p.id == "cpu:0").expect("cpu:0");
    tandem_device::pin_current_thread(&core.cores).expect("pinned to cpu:0");
    let mut kernel = Kernel::new().expect("the reference kernel");
    let mut state = SimpleState::new(&tandem_profile::measure::compile(g.optimized(), 1).expect("the model compiles")).expect("a state");
    let inputs = g.random_inputs(0);
    let warmup = 5;
    let (mut model, mut cold, mut warm) = (vec![], vec![], vec![]);
    for round in 0..rounds + warmup {
        let t = Instant::now();
        drop(state.run(inputs.clone()).expect("the model runs"));
        let us = t.elapsed().as_secs_f64() * 1e6;
        let c = kernel.time_as_found().expect("the kernel runs");
        let w = kernel.time_as_found().expect("the kernel runs");
        if round >= warmup {
            model.push(us);
            cold.push(c);
            warm.push(w);
        }
    }
    let median = |v: &[f64]| tandem_profile::percentile(v, 0.5);
    let ratio = |k: &[f64]| median(&model.iter().zip(k).map(|(m, k)| m / k).collect::<Vec<_>>());
    println!("{:.1} {:.1} {:.1} {:.4} {:.4}", median(&model), median(&cold), median(&warm), ratio(&cold), ratio(&warm));
}
