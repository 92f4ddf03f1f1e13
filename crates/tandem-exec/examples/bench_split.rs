//! Why does a split part run slower inside a plan than the profile timed it alone?
//!
//! `cargo run --release -p tandem-exec --example bench_split -- MODEL.onnx NAME=DIMS [OPS]`
//! (default: the zoo's mobilenet; OPS: how many of the heaviest splittable ops, default 8)
//!
//! For each of the heaviest splittable ops, cut in two halves along each axis it offers (and a
//! convolution's columns), each half compiled single-threaded, and timed four ways (medians, µs):
//! - `alone`: the half on core 0, run after run on the same input, the other core idle (as `tandem
//!   profile` times a part);
//! - `fresh in`: the same, with the input rewritten by the other core before each run (as a plan hands
//!   a part the tensor another stage just wrote);
//! - `together`: both halves at once, one per core, started together each round (as a split runs);
//! - `whole`: the unsplit op on core 0.
//!
//! `together / alone` above 1 is a slowdown that neither the profile nor the cores' independence
//! (see `tandem profile --contention`) accounts for; `2·tog/whole` is what a two-way split costs
//! against the op unsplit (1 would be a perfect halving). `SHOW_PARTS=1` prints each first half's
//! tract nodes.
//!
//! What it showed (mobilenet_v2): halves run together within 1-18% of alone; depthwise halves cut by
//! channels or rows cost 1.02-1.20 of the whole op, by columns 1.3-5.4 (which is why convolutions no
//! longer offer their columns); 1x1 convolutions as matrix products cut by output channels cost
//! 1.4-2.0, every half packing the whole input.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use tandem_graph::{Graph, InputShape};
use tandem_profile::measure::compile;
use tandem_profile::percentile;
use tract_onnx::prelude::*;

const ROUNDS: usize = 200;

/// Runs `plan` `ROUNDS` times on `inputs` pinned to `core` (after 10 unrecorded), waiting at
/// `barrier` (if any) before each, and with `fresh` on a deep copy of the inputs made on the other
/// core; the run times in µs.
fn timed(core: usize, plan: tandem_profile::measure::Plan, inputs: TVec<TValue>, barrier: Option<Arc<Barrier>>, fresh: bool) -> Vec<f64> {
    tandem_device::pin_current_thread(&[core]).expect("pin");
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 10 {
        let ins: TVec<TValue> = if fresh {
            // A deep copy made on the other core, so the data arrives from its cache, as a plan's would.
            let copies = std::thread::scope(|s| {
                s.spawn(|| {
                    tandem_device::pin_current_thread(&[1 - core]).expect("pin");
                    inputs.iter().map(|t| t.clone().into_tensor().deep_clone().into_tvalue()).collect::<TVec<TValue>>()
                })
                .join()
                .unwrap()
            });
            copies
        } else {
            inputs.clone()
        };
        if let Some(b) = &barrier {
            b.wait();
        }
        let t = Instant::now();
        let out = plan.run(ins).expect("run");
        let us = t.elapsed().as_secs_f64() * 1e6;
        drop(out);
        if round >= 10 {
            times.push(us);
        }
    }
    times
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (g, count) = match args.first() {
        Some(path) => {
            let shapes: Vec<InputShape> = args[1..].iter().filter(|s| s.contains('=')).map(|s| s.parse().expect("NAME=DIMS")).collect();
            let count = args[1..].iter().find(|s| !s.contains('=')).map(|s| s.parse().expect("OPS")).unwrap_or(8);
            (Graph::load(std::path::Path::new(path), &shapes).expect("the model loads"), count)
        }
        None => (Graph::load_bytes("mobilenet", &tandem_graph::zoo::build("mobilenet", 0).unwrap(), &[]).unwrap(), 8),
    };
    let mut heavy: Vec<&tandem_graph::Op> = g.ops.iter().filter(|o| !o.split_axes.is_empty()).collect();
    heavy.sort_by(|a, b| b.cost.flops.cmp(&a.cost.flops));
    println!("{}: the {count} heaviest splittable ops, halves on cores 0 and 1, medians of {ROUNDS} runs in µs\n", g.name);
    println!("{:<40} {:<14} {:>4} {:>8} {:>9} {:>9} {:>8} {:>9} {:>9}", "op", "kind", "axis", "whole", "alone", "fresh in", "together", "tog/alone", "2·tog/whole");
    // The axes each op offers, and a convolution's columns, which it no longer offers.
    let axes = |op: &tandem_graph::Op| -> Vec<usize> {
        let mut a = op.split_axes.clone();
        if let Some(rows) = op.row_axis() {
            let columns = rows + 1;
            if !a.contains(&columns) {
                a.push(columns);
            }
        }
        a
    };
    for (op, axis) in heavy.into_iter().take(count).flat_map(|op| axes(op).into_iter().map(move |a| (op, a))) {
        let dim = op.outputs[0].shape[axis];
        if dim < 2 {
            continue;
        }
        let Ok(split) = g.split(&[op.id], axis, &[0, dim / 2, dim]) else { continue };
        if std::env::var_os("SHOW_PARTS").is_some() {
            for n in &split.parts[0].model.nodes {
                eprintln!("  part 0 of {} axis {axis}: {} {:?}", op.name, n.op.name(), n.op);
            }
        }
        let inputs = g.random_values(&split.inputs, 7);
        let p0 = compile(&split.parts[0].model, 1).expect("compile");
        let p1 = compile(&split.parts[1].model, 1).expect("compile");
        let stage = g.stage(&[op.id]).expect("stage");
        let whole_plan = compile(&stage.model, 1).expect("compile");
        let whole_in = g.random_values(&stage.inputs, 7);
        let whole = percentile(&timed(0, whole_plan, whole_in, None, false), 0.5);
        let alone = percentile(&timed(0, p0.clone(), inputs.clone(), None, false), 0.5);
        let fresh = percentile(&timed(0, p0.clone(), inputs.clone(), None, true), 0.5);
        let barrier = Arc::new(Barrier::new(2));
        let (b0, b1) = (barrier.clone(), barrier);
        let (i0, i1) = (inputs.clone(), inputs.clone());
        let h0 = std::thread::spawn(move || timed(0, p0, i0, Some(b0), false));
        let h1 = std::thread::spawn(move || timed(1, p1, i1, Some(b1), false));
        let (t0, t1) = (h0.join().unwrap(), h1.join().unwrap());
        let together = percentile(&t0.iter().zip(&t1).map(|(a, b)| a.max(*b)).collect::<Vec<f64>>(), 0.5);
        let name: String = op.name.chars().take(40).collect();
        println!(
            "{name:<40} {:<14} {axis:>4} {whole:>8.1} {alone:>9.1} {fresh:>9.1} {together:>8.1} {:>9.2} {:>9.2}",
            op.kind,
            together / alone,
            2.0 * together / whole
        );
    }
}
