//! How fast the planner can ask the cost models: predictions per second of each kind of question.
//!
//! `cargo run --release -p tandem-cost --example bench_predict [TRAINING_SET.json]`
//!
//! Without an argument the models are fitted on a synthetic training set shaped like a real profile
//! (10 models, 3 processors, convolutions, matrix products and element-wise ops, in and out of
//! context, split parts), with the neighbour correction holding hundreds of ops per kind. With an
//! argument, on a [`TrainingSet`] serialised as JSON. The queries are the training ops themselves
//! (the worst case for the neighbour search: every query has neighbours) and new ops.

use std::hint::black_box;
use std::time::Instant;

use tandem_cost::synthetic::Rng;
use tandem_cost::{fit, Context, CostModels, FitOptions, ModelSample, OpFeatures, OpSample, PartSpec, TrainingSet, TransferSample};

fn op(rng: &mut Rng) -> OpFeatures {
    let kind = rng.pick(&["Conv", "Conv", "EinSum", "EinSum", "EinSum", "DepthwiseConv", "Add", "Max", "Mul", "Reshape", "Softmax"]);
    let c = rng.pick(&[16u32, 32, 64, 128, 256, 512]);
    let hw = rng.pick(&[7u32, 14, 28, 56, 112]);
    let k = rng.pick(&[1u32, 3, 5]);
    let out = (c * hw * hw) as u64;
    let (macs, weights) = match kind {
        "Conv" => (out * (c * k * k) as u64, (c * c * k * k * 4) as u64),
        "EinSum" => (out * c as u64, (c * c * 4) as u64),
        "DepthwiseConv" => (out * (k * k) as u64, (c * k * k * 4) as u64),
        _ => (0, 0),
    };
    let mut f = OpFeatures::new(kind, macs, 2 * macs + out, 4 * out, 4 * out, weights);
    if kind.contains("Conv") {
        f.kernel.kernel_h = k;
        f.kernel.kernel_w = k;
        f.kernel.stride_h = 1;
        f.kernel.stride_w = 1;
        f.kernel.group = if kind == "DepthwiseConv" { c } else { 1 };
        f.kernel.in_channels = c;
        f.kernel.out_channels = c;
        f.kernel.out_h = hw;
        f.kernel.out_w = hw;
    }
    f
}

fn synthetic() -> TrainingSet {
    let mut rng = Rng(1);
    let mut set = TrainingSet::default();
    for m in 0..10 {
        let ops: Vec<OpFeatures> = (0..80).map(|_| op(&mut rng)).collect();
        for p in ["cpu:0", "cpu:1", "cpu:0-1"] {
            let mut sum = 0.0;
            for (i, f) in ops.iter().enumerate() {
                let t = 2.0 + f.macs / 4e4 + (f.bytes_in + f.bytes_out) / 8e3 + f.weight_bytes / 2e4;
                for context in Context::ALL {
                    let y = t * (0.9 + 0.2 * rng.uniform()) * if context == Context::Isolated { 1.1 } else { 1.0 };
                    sum += if context == Context::InModel { y } else { 0.0 };
                    set.ops.push(OpSample { model: format!("m{m}"), op_id: i as i64, processor: p.into(), context, op: f.clone(), part: None, median_us: y });
                }
                if f.macs > 1e7 {
                    for (a, b) in [(0.0, 0.25), (0.25, 1.0), (0.0, 0.5), (0.5, 1.0)] {
                        let part = f.part(1, a, b);
                        let y = 2.0 + part.macs / 4e4 + (part.bytes_in + part.bytes_out) / 8e3 + part.weight_bytes / 2e4;
                        set.ops.push(OpSample {
                            model: format!("m{m}"),
                            op_id: i as i64,
                            processor: p.into(),
                            context: Context::Isolated,
                            op: f.clone(),
                            part: Some(PartSpec { axis: 1, start: a, end: b }),
                            median_us: y * (0.9 + 0.2 * rng.uniform()),
                        });
                    }
                }
            }
            set.models.push(ModelSample { model: format!("m{m}"), processor: p.into(), median_us: 30.0 + sum });
        }
    }
    for bytes in [4096.0, 32768.0, 262144.0, 1048576.0, 4194304.0] {
        set.transfers.push(TransferSample { src: "cpu:0".into(), dst: "cpu:1".into(), bytes, median_us: 15.0 + bytes / 5000.0 });
    }
    set
}

fn rate(label: &str, n: usize, f: impl Fn(usize) -> f64) {
    // Warm up, then time enough rounds for about half a second.
    let mut sink = 0.0;
    for i in 0..n.min(10_000) {
        sink += f(i);
    }
    let started = Instant::now();
    let mut done = 0usize;
    while started.elapsed().as_secs_f64() < 0.5 {
        for i in 0..n {
            sink += f(i);
        }
        done += n;
    }
    let per_s = done as f64 / started.elapsed().as_secs_f64();
    black_box(sink);
    println!("{label:<44} {:>8.2} M/s  ({:.0} ns each)", per_s / 1e6, 1e9 / per_s);
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let set: TrainingSet = match std::env::args().nth(1) {
        Some(path) => serde_json::from_str(&std::fs::read_to_string(path)?)?,
        None => synthetic(),
    };
    let started = Instant::now();
    let models: CostModels = fit("bench", &set, &FitOptions::default())?;
    let points: usize = models.processors.iter().flat_map(|p| p.in_model.kinds.values().chain(p.isolated.kinds.values())).map(|m| m.neighbours.points.len()).sum();
    println!(
        "fitted on {} op samples ({} processors, {} neighbour points kept) in {:.2} s",
        set.ops.len(),
        models.processors.len(),
        points,
        started.elapsed().as_secs_f64()
    );
    let processors: Vec<String> = models.processor_ids().into_iter().map(String::from).collect();
    let seen: Vec<(String, OpFeatures)> = set.ops.iter().filter(|s| s.part.is_none()).map(|s| (s.processor.clone(), s.op.clone())).collect();
    let mut rng = Rng(42);
    let new: Vec<(String, OpFeatures)> = (0..4096).map(|i| (processors[i % processors.len()].clone(), op(&mut rng))).collect();
    rate("predict_op, ops seen in training", seen.len(), |i| models.predict_op(&seen[i].0, &seen[i].1));
    rate("predict_op, new ops", new.len(), |i| models.predict_op(&new[i].0, &new[i].1));
    let part = PartSpec { axis: 1, start: 0.0, end: 0.375 };
    rate("predict_split_part", new.len(), |i| models.predict_split_part(&new[i].0, &new[i].1, part));
    rate("predict_transfer", new.len(), |i| models.predict_transfer("cpu:0", "cpu:1", (i * 4096) as f64));
    let stage: Vec<OpFeatures> = new.iter().take(20).map(|(_, f)| f.clone()).collect();
    rate("predict_stage of 20 ops (stages/s)", processors.len(), |i| models.predict_stage(&processors[i], &stage));
    rate("stage_us from a running sum", new.len(), |i| models.stage_us(&processors[i % processors.len()], i as f64, 12));
    Ok(())
}
