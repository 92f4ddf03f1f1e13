//! Can two cores beat tract's own threads by cutting a whole region of a CNN by rows?
//!
//! `cargo run --release -p tandem-exec --example bench_region -- MODEL.onnx NAME=DIMS`
//! (default: the zoo's mobilenet)
//!
//! A *region* is a run of ops between two cut points of the graph (places where one tensor is all
//! that crosses). Cut by output rows into two halves, each half computes its rows through every op
//! of the region (with the halo its windows need), so the cores join once per region instead of once
//! per op. For each region it times (medians, µs): the region whole on core 0, the region whole on
//! tract's two threads (cores 0-1), the first half alone on core 0, and both halves at once, one per
//! core, started together.
//! `1 core / halves` is the speedup a region split could give before its join.

use std::sync::{Arc, Barrier};
use std::time::Instant;

use tandem_graph::{Graph, InputShape};
use tandem_profile::measure::{compile, Plan};
use tandem_profile::percentile;
use tract_onnx::prelude::*;

const ROUNDS: usize = 60;

fn timed(cores: &[usize], plan: Plan, inputs: TVec<TValue>, barrier: Option<Arc<Barrier>>) -> Vec<f64> {
    tandem_device::pin_current_thread(cores).expect("pin");
    let mut times = Vec::with_capacity(ROUNDS);
    for round in 0..ROUNDS + 5 {
        if let Some(b) = &barrier {
            b.wait();
        }
        let t = Instant::now();
        let out = plan.run(inputs.clone()).expect("run");
        let us = t.elapsed().as_secs_f64() * 1e6;
        drop(out);
        if round >= 5 {
            times.push(us);
        }
    }
    times
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let g = match args.first() {
        Some(path) => {
            let shapes: Vec<InputShape> = args[1..].iter().filter(|s| s.contains('=')).map(|s| s.parse().expect("NAME=DIMS")).collect();
            Graph::load(std::path::Path::new(path), &shapes).expect("the model loads")
        }
        None => Graph::load_bytes("mobilenet", &tandem_graph::zoo::build("mobilenet", 0).unwrap(), &[]).unwrap(),
    };
    // POINTS=1,17,29 cuts there instead of at the cut points (any range whose inner ops feed only
    // itself is a chain `Graph::split` takes).
    let given: Option<Vec<usize>> = std::env::var("POINTS").ok().map(|list| list.split(',').map(|x| x.parse().expect("POINTS=A,B,C")).collect());
    let cuts = given.clone().unwrap_or_else(|| g.cut_points());
    // AXIS=cols cuts images by columns instead of rows.
    let by_columns = std::env::var("AXIS").is_ok_and(|a| a == "cols");
    let min_us: f64 = std::env::var("MIN_US").ok().and_then(|s| s.parse().ok()).unwrap_or(800.0);
    println!("{}: {} ops, {} cut points; regions by rows, medians of {ROUNDS} runs in µs", g.name, g.ops.len(), cuts.len());
    println!("{:>5} {:>5} {:>10} {:>9} {:>9} {:>9} {:>9} {:>8} {:>8}", "from", "to", "out rows", "1 core", "2 thr", "1st alone", "halves", "1c/2thr", "1c/halv");
    // Grow regions from each cut point until the region takes MIN_US on one core.
    // With POINTS, regions start at the first of them.
    let mut start = given.and_then(|p| p.first().copied()).unwrap_or(0);
    let mut points = cuts.clone();
    points.push(g.ops.len());
    let (mut sum1, mut sum2, mut sumh) = (0.0, 0.0, 0.0);
    while start < g.ops.len() {
        let mut done = false;
        for &end in points.iter().filter(|&&e| e > start) {
            let ops: Vec<usize> = (start..end).collect();
            let Some((axis, rows)) = g.region_axes(end - 1).get(usize::from(by_columns)).copied().filter(|&(_, rows)| rows >= 2) else {
                if end == *points.last().unwrap() { break; }
                continue;
            };
            let stage = match g.stage(&ops) { Ok(s) => s, Err(e) => { eprintln!("{start}..{end}: stage: {e}"); break } };
            let whole_in = g.random_values(&stage.inputs, 7);
            let one = percentile(&timed(&[0], compile(&stage.model, 1).unwrap(), whole_in.clone(), None), 0.5);
            if one < min_us && end != *points.last().unwrap() {
                continue;
            }
            let split = match g.split(&ops, axis, &[0, rows / 2, rows]) { Ok(s) => s, Err(e) => { eprintln!("{start}..{end}: split: {e}"); break } };
            let model = stage.model.clone();
            let two = std::thread::spawn(move || {
                tandem_device::pin_current_thread(&[0, 1]).expect("pin");
                percentile(&timed(&[0, 1], compile(&model, 2).unwrap(), whole_in, None), 0.5)
            })
            .join()
            .unwrap();
            let inputs = g.random_values(&split.inputs, 7);
            // The first half alone on core 0: what a half costs without the other beside it (the
            // difference to `halves` is what the two cores take from each other: the shared cache
            // and memory bandwidth).
            let alone = percentile(&timed(&[0], compile(&split.parts[0].model, 1).unwrap(), inputs.clone(), None), 0.5);
            let p0 = compile(&split.parts[0].model, 1).unwrap();
            let p1 = compile(&split.parts[1].model, 1).unwrap();
            let barrier = Arc::new(Barrier::new(2));
            let (b0, b1) = (barrier.clone(), barrier);
            let (i0, i1) = (inputs.clone(), inputs);
            let h0 = std::thread::spawn(move || timed(&[0], p0, i0, Some(b0)));
            let h1 = std::thread::spawn(move || timed(&[1], p1, i1, Some(b1)));
            let (t0, t1) = (h0.join().unwrap(), h1.join().unwrap());
            let halves = percentile(&t0.iter().zip(&t1).map(|(a, b)| a.max(*b)).collect::<Vec<f64>>(), 0.5);
            println!("{start:>5} {end:>5} {rows:>10} {one:>9.0} {two:>9.0} {alone:>9.0} {halves:>9.0} {:>8.2} {:>8.2}", one / two, one / halves);
            sum1 += one;
            sum2 += two;
            sumh += halves;
            start = end;
            done = true;
            break;
        }
        if !done {
            break;
        }
    }
    println!("regions in all: 1 core {sum1:.0}, 2 threads {sum2:.0} ({:.2}x), halves {sumh:.0} ({:.2}x)", sum1 / sum2, sum1 / sumh);
}
