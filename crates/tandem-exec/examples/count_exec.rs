//! What a one-stage plan executes beyond tract's plain run, in instructions: a count that does not
//! depend on how busy the machine is.
//!
//! `valgrind --tool=callgrind --callgrind-out-file=F target/release/examples/count_exec MODE N [MODEL [NAME=DIMS]]`
//!
//! MODE is `plain` (tract's plain run of the whole model, on the calling thread, as `tandem run`'s
//! baselines run it in their worker) or `exec` (the whole model as one stage on `cpu:0` through the
//! executor). Run each with two values of N: the difference divided by the difference of N is what one
//! request costs, loading and compiling cancelled out. MODEL is a zoo model's name, or the name of a
//! model in `../shared/models` with its input shape (default `0=1,3,224,224`); default: the zoo's
//! transformer.

use std::sync::Arc;

use tandem_device::Device;
use tandem_exec::{sketch, Executor};
use tandem_graph::Graph;
use tract_onnx::tract_core::plan::SimpleState;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let mode = args.first().map(String::as_str).unwrap_or("exec");
    let n: usize = args.get(1).and_then(|v| v.parse().ok()).unwrap_or(10);
    let name = args.get(2).map(String::as_str).unwrap_or("transformer");
    let g = match tandem_graph::zoo::models().iter().find(|m| m.name == name) {
        Some(m) => Graph::load_bytes(m.name, &tandem_graph::zoo::build(m.name, 0).unwrap(), &[]).unwrap(),
        None => {
            let dir = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
            let shape: tandem_graph::InputShape = args.get(3).map(String::as_str).unwrap_or("0=1,3,224,224").parse().expect("NAME=DIMS");
            Graph::load(&dir.join(format!("{name}.onnx")), &[shape]).expect("the model loads")
        }
    };
    let g = Arc::new(g);
    let inputs = g.random_inputs(0);
    match mode {
        "plain" => {
            let plan = tandem_profile::measure::compile(g.optimized(), 1).unwrap();
            let mut state = SimpleState::new(&plan).unwrap();
            for _ in 0..n {
                drop(state.run(inputs.clone()).unwrap());
            }
        }
        _ => {
            let device = Device::discover().unwrap();
            let plan = sketch::single(&g, &device.id, "cpu:0");
            let exec = Executor::new(g.clone(), &plan, &device.processors).unwrap();
            let _pin = exec.pin_caller();
            for _ in 0..n {
                drop(exec.run(inputs.clone()).unwrap());
            }
        }
    }
}
