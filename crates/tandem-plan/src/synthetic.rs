//! Seeded random planning problems, for tests and benchmarks: DAGs of convolutions, matrix products,
//! activations, additions and pooling, with chains and parallel branches, on three kinds of device;
//! and cost models fitted on planted timings, to plan real graphs without a profile.

use tandem_cost::{Context, CostModels, FitOptions, ModelSample, OpSample, PartSpec, TrainingSet, TransferSample};
use tandem_graph::Graph;

use crate::problem::{OpInput, OpNode, ProcessorSpec, Problem, SplitOption, StageCost, TransferCost};

pub use tandem_cost::synthetic::Rng;

/// Draws beyond what [`Rng`] offers, for the problems here and the search's kicks.
pub trait Draw {
    /// Uniform in `0..n` (0 when `n` is 0).
    fn below(&mut self, n: usize) -> usize;
    /// Uniform in `[lo, hi)`.
    fn between(&mut self, lo: f64, hi: f64) -> f64;
    /// True with probability `p`.
    fn chance(&mut self, p: f64) -> bool;
}

impl Draw for Rng {
    fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n.max(1) as u64) as usize
    }

    fn between(&mut self, lo: f64, hi: f64) -> f64 {
        lo + (hi - lo) * self.uniform()
    }

    fn chance(&mut self, p: f64) -> bool {
        self.uniform() < p
    }
}

/// The processors of a synthetic device.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Device {
    /// Two similar cores, `cpu:0` and `cpu:1`, and both as one processor `cpu:0-1` (faster on
    /// convolutions and matrix products, not twice as fast).
    TwoCores,
    /// A CPU (`cpu:0-1`) and an accelerator `acc:0` five times faster on convolutions, slower on
    /// other ops and unable to run pooling and some others, sometimes with a memory limit.
    Accelerator,
    /// The accelerator beside two single cores: three processors at once.
    AcceleratorAndCores,
}

/// How to make a problem.
#[derive(Debug, Clone, PartialEq)]
pub struct Recipe {
    /// Ops.
    pub ops: usize,
    /// The device.
    pub device: Device,
    /// Most ops offered a split (convolutions and matrix products only).
    pub max_splits: usize,
    /// Chance that a new op starts a branch from an earlier op rather than follow the last one.
    pub branching: f64,
}

impl Recipe {
    /// `ops` ops on `device`, at most 3 splits.
    pub fn new(ops: usize, device: Device) -> Recipe {
        Recipe { ops, device, max_splits: 3, branching: 0.25 }
    }
}

#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Conv,
    MatMul,
    Relu,
    Add,
    Pool,
}

impl Kind {
    fn name(self) -> &'static str {
        match self {
            Kind::Conv => "Conv",
            Kind::MatMul => "EinSum",
            Kind::Relu => "Relu",
            Kind::Add => "Add",
            Kind::Pool => "MaxPool",
        }
    }

    fn heavy(self) -> bool {
        matches!(self, Kind::Conv | Kind::MatMul)
    }
}

/// A random problem after `recipe`, the same for the same seed.
pub fn problem(seed: u64, recipe: &Recipe) -> Problem {
    let mut rng = Rng(seed ^ 0x5eed_0f7a_1de1_1e00);
    let n = recipe.ops.max(1);
    let processors: Vec<ProcessorSpec> = match recipe.device {
        Device::TwoCores => vec![cpu("cpu:0", &[0]), cpu("cpu:1", &[1]), cpu("cpu:0-1", &[0, 1])],
        Device::Accelerator => vec![cpu("cpu:0-1", &[0, 1]), ProcessorSpec { id: "acc:0".into(), cores: vec![], memory_bytes: None }],
        Device::AcceleratorAndCores => vec![cpu("cpu:0", &[0]), cpu("cpu:1", &[1]), ProcessorSpec { id: "acc:0".into(), cores: vec![], memory_bytes: None }],
    };
    // Per processor: speed-up on heavy ops, on light ops; whether it is the accelerator.
    let speed: Vec<(f64, f64, bool)> = processors
        .iter()
        .map(|p| match (recipe.device, p.id.as_str()) {
            (_, "acc:0") => (5.0, rng.between(0.5, 0.9), true),
            (Device::TwoCores, "cpu:0-1") => (rng.between(1.3, 1.8), rng.between(0.9, 1.1), false),
            (_, "cpu:0-1") => (rng.between(1.3, 1.8), 1.0, false),
            _ => (rng.between(0.85, 1.15), rng.between(0.9, 1.1), false),
        })
        .collect();
    let mut ops: Vec<OpNode> = vec![];
    let mut kinds: Vec<Kind> = vec![];
    let mut splits = 0;
    for v in 0..n {
        let kind = match rng.below(20) {
            0..=7 => Kind::Conv,
            8..=9 => Kind::MatMul,
            10..=14 => Kind::Relu,
            15..=17 if v > 1 => Kind::Add,
            _ => Kind::Pool,
        };
        let bytes = (rng.log_uniform(16e3, 2e6)) as u64;
        let mut inputs = vec![];
        if v == 0 {
            inputs.push(OpInput { from: None, bytes });
        } else {
            let from = if rng.chance(recipe.branching) { rng.below(v) } else { v - 1 };
            inputs.push(OpInput { from: Some(from), bytes: ops[from].output_bytes });
            if kind == Kind::Add {
                let other = rng.below(v);
                if other != from {
                    inputs.push(OpInput { from: Some(other), bytes: ops[other].output_bytes });
                }
            }
        }
        let work = match kind {
            Kind::Conv => rng.log_uniform(50.0, 2000.0),
            Kind::MatMul => rng.log_uniform(50.0, 1500.0),
            Kind::Pool => rng.log_uniform(10.0, 100.0),
            Kind::Relu | Kind::Add => rng.log_uniform(5.0, 50.0),
        };
        let cost_us: Vec<Option<f64>> = speed
            .iter()
            .map(|&(heavy, light, acc)| {
                let cannot = acc && (kind == Kind::Pool || (!kind.heavy() && rng.chance(0.3)));
                let s = match (kind, acc) {
                    (Kind::Conv, _) => heavy,
                    (Kind::MatMul, true) => 2.0,
                    (Kind::MatMul, false) => heavy,
                    _ => light,
                };
                (!cannot).then(|| work / s * rng.between(0.95, 1.05))
            })
            .collect();
        let weight_bytes = if kind.heavy() { rng.log_uniform(1e4, 4e6) as u64 } else { 0 };
        let mut node = OpNode {
            name: format!("{}_{v}", kind.name().to_lowercase()),
            kind: kind.name().into(),
            inputs,
            output_bytes: bytes,
            is_output: false,
            cost_us,
            weight_bytes,
            splits: vec![],
        };
        if kind.heavy() && splits < recipe.max_splits && rng.chance(0.6) {
            splits += 1;
            node.splits.push(split_option(&mut rng, &[v], &[&node], bytes));
        }
        // A convolution's activation, its only consumer, split with it.
        if kind == Kind::Relu && v > 0 && node.inputs.len() == 1 && node.inputs[0].from == Some(v - 1) && kinds[v - 1] == Kind::Conv && !ops[v - 1].splits.is_empty() && rng.chance(0.7) {
            let head = ops[v - 1].clone();
            node.splits.push(split_option(&mut rng, &[v - 1, v], &[&head, &node], bytes));
        }
        ops.push(node);
        kinds.push(kind);
    }
    // Chain splits need the head to feed only the chain: drop those whose head gained other consumers.
    let succ = Problem { processors: processors.clone(), ops: ops.clone(), transfer: vec![], stage: vec![], join: vec![] }.successors();
    for v in 0..n {
        ops[v].splits.retain(|s| s.chain[..s.chain.len() - 1].iter().all(|&u| succ[u] == [s.chain[s.chain.len() - 1]]));
        ops[v].is_output = succ[v].is_empty();
    }
    let mut processors = processors;
    if recipe.device == Device::Accelerator && rng.chance(0.3) {
        // The accelerator holds part of the weights only.
        let total: u64 = ops.iter().map(|o| o.weight_bytes).sum();
        processors[1].memory_bytes = Some((total as f64 * rng.between(0.4, 0.7)) as u64 + 4_000_000);
    }
    finish(rng, processors, ops)
}

fn finish(mut rng: Rng, processors: Vec<ProcessorSpec>, ops: Vec<OpNode>) -> Problem {
    let np = processors.len();
    let transfer = (0..np)
        .map(|a| {
            (0..np)
                .map(|b| if a == b { TransferCost { fixed_us: 0.0, per_byte_us: 0.0 } } else { TransferCost { fixed_us: rng.between(2.0, 40.0), per_byte_us: rng.between(1e-6, 5e-5) } })
                .collect()
        })
        .collect();
    let stage = (0..np).map(|_| StageCost { fixed_us: rng.between(0.0, 30.0), factor: rng.between(0.95, 1.1), per_op_us: rng.between(0.0, 3.0) }).collect();
    // Joining a split's parts: a copy at 12-50 GB/s (this VM's measured joins: about 14).
    let join = (0..np).map(|_| TransferCost { fixed_us: rng.between(0.5, 5.0), per_byte_us: rng.between(2e-5, 8e-5) }).collect();
    Problem { processors, ops, transfer, stage, join }
}

fn cpu(id: &str, cores: &[usize]) -> ProcessorSpec {
    ProcessorSpec { id: id.into(), cores: cores.to_vec(), memory_bytes: None }
}

/// A split of `chain` (its nodes in `nodes`) along 64 channels cut at multiples of 16: a part costs its
/// share of the work, a little more, plus a fixed cost of its own.
fn split_option(rng: &mut Rng, chain: &[usize], nodes: &[&OpNode], output_bytes: u64) -> SplitOption {
    let fractions = vec![0.25, 0.5, 0.75];
    let np = nodes[0].cost_us.len();
    let overhead = rng.between(1.0, 1.15);
    let fixed = rng.between(5.0, 20.0);
    let part_us = (0..np)
        .map(|p| {
            let whole: Option<f64> = nodes.iter().map(|n| n.cost_us[p]).sum();
            fractions.iter().map(|&f| whole.map(|w| w * f * overhead + fixed)).collect()
        })
        .collect();
    SplitOption { chain: chain.to_vec(), axis: 1, extent: 64, align: 16, fractions, part_us, output_bytes }
}

/// The processors of a two-core machine: `cpu:0`, `cpu:1` and both as `cpu:0-1`.
pub fn two_cores() -> Vec<ProcessorSpec> {
    vec![cpu("cpu:0", &[0]), cpu("cpu:1", &[1]), cpu("cpu:0-1", &[0, 1])]
}

/// The planted truth of [`planted_cost_models`], µs: a core does 2 GFLOP/s (`cpu:1` 5% slower), both
/// cores 3.4; 2 µs per op in a model, 20 µs more for a model run alone.
pub fn planted_us(processor: &str, flops: f64, alone: bool) -> f64 {
    let rate = match processor {
        "cpu:0" => 2000.0,
        "cpu:1" => 1900.0,
        _ => 3400.0,
    };
    2.0 + flops / rate + if alone { 20.0 } else { 0.0 }
}

/// Cost models of the [`two_cores`] device fitted (by tandem-cost, as `tandem fit` does) on timings
/// planted by [`planted_us`] for every op of `graphs`, in context and alone, split parts of a quarter,
/// half and three quarters, whole models, and hand-overs of 5 µs + 10 µs per MB.
pub fn planted_cost_models(graphs: &[Graph]) -> Result<CostModels, tandem_cost::CostError> {
    let mut set = TrainingSet::default();
    for g in graphs {
        for p in two_cores() {
            let p = p.id.as_str();
            let mut sum = 0.0;
            for op in &g.ops {
                let f = crate::build::features(op);
                for context in Context::ALL {
                    let t = planted_us(p, f.flops, context == Context::Isolated);
                    if context == Context::InModel {
                        sum += t;
                    }
                    set.ops.push(OpSample { model: g.name.clone(), op_id: op.id as i64, processor: p.into(), context, op: f.clone(), part: None, median_us: t });
                }
                if let Some(&axis) = op.split_axes.last() {
                    for end in [0.25, 0.5, 0.75] {
                        let t = planted_us(p, f.part(axis, 0.0, end).flops, true);
                        let part = Some(PartSpec { axis, start: 0.0, end });
                        set.ops.push(OpSample { model: g.name.clone(), op_id: op.id as i64, processor: p.into(), context: Context::Isolated, op: f.clone(), part, median_us: t });
                    }
                }
            }
            set.models.push(ModelSample { model: g.name.clone(), processor: p.into(), median_us: sum });
        }
    }
    for (src, dst) in [("cpu:0", "cpu:1"), ("cpu:1", "cpu:0")] {
        for bytes in [4096.0, 65536.0, 1048576.0] {
            set.transfers.push(TransferSample { src: src.into(), dst: dst.into(), bytes, median_us: 5.0 + bytes * 1e-5 });
        }
    }
    let mut models = tandem_cost::fit("planted", &set, &FitOptions::default())?;
    models.version = 1;
    Ok(models)
}
