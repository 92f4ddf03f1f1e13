//! How long tandem takes to load and inspect a model and to cut it into stages.
//!
//! `cargo run --release -p tandem-graph --example bench_graph -- [MODEL.onnx [INPUT_SHAPE]]`
//! (default: ../shared/models/resnet18.onnx at 1,3,224,224, else the zoo resnet). Each step is repeated
//! and the median, min and max are printed, with the whole model's run time beside them for scale.

use std::time::{Duration, Instant};

use tandem_graph::{compile, run, Graph, InputShape};

fn stats(mut d: Vec<Duration>) -> String {
    d.sort();
    let ms = |d: Duration| d.as_secs_f64() * 1e3;
    format!("median {:8.1} ms   min {:8.1} ms   max {:8.1} ms   (n={})", ms(d[d.len() / 2]), ms(d[0]), ms(d[d.len() - 1]), d.len())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let shared = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models/resnet18.onnx");
    let (label, load): (String, Box<dyn Fn() -> Graph>) = match args.first() {
        Some(p) => {
            let shapes: Vec<InputShape> = args.get(1).map(|s| vec![format!("0={s}").parse().unwrap()]).unwrap_or_default();
            let p = std::path::PathBuf::from(p);
            (p.display().to_string(), Box::new(move || Graph::load(&p, &shapes).unwrap()))
        }
        None if shared.exists() => {
            let shapes = vec!["0=1,3,224,224".parse().unwrap()];
            ("resnet18 (../shared/models)".into(), Box::new(move || Graph::load(&shared, &shapes).unwrap()))
        }
        None => {
            let bytes = tandem_graph::zoo::build("resnet", 0).unwrap();
            ("zoo resnet".into(), Box::new(move || Graph::load_bytes("resnet", &bytes, &[]).unwrap()))
        }
    };
    let reps = 5;
    let mut loads = vec![];
    let mut graph = None;
    for _ in 0..reps {
        let t = Instant::now();
        let g = load();
        // "inspect" is the load plus walking the ops for the report.
        let flops: u64 = g.ops.iter().map(|o| o.cost.flops).sum();
        std::hint::black_box(flops);
        loads.push(t.elapsed());
        graph = Some(g);
    }
    let g = graph.unwrap();
    let mut cuts = vec![];
    let mut stages = vec![];
    for seed in 0..reps as u64 {
        let t = Instant::now();
        let cut = g.random_cut(5, seed);
        stages = cut.iter().map(|ops| g.stage(ops).unwrap()).collect::<Vec<_>>();
        cuts.push(t.elapsed());
    }
    let inputs = g.random_inputs(0);
    let whole = compile(g.optimized(), "whole").unwrap();
    let mut runs = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        run(&whole, inputs.clone(), "whole").unwrap();
        runs.push(t.elapsed());
    }
    let mut chained = vec![];
    for _ in 0..reps {
        let t = Instant::now();
        g.run_stages(&stages, inputs.clone()).unwrap();
        chained.push(t.elapsed());
    }
    println!("model: {label}, {} ops, {:.2} GFLOPs", g.ops.len(), g.total_flops() as f64 / 1e9);
    println!("load + inspect            {}", stats(loads));
    println!("cut into 5 stages         {}", stats(cuts));
    println!("run whole model (1 thr)   {}", stats(runs));
    println!("compile + run 5 stages    {}", stats(chained));
}
