//! The planning problem as plain numbers: what the search optimises over.

use serde::{Deserialize, Serialize};

/// A processor the plan may use, with the CPU cores it owns. Two processors that share a core are
/// never used at the same time (`cpu:0` and `cpu:0-1`); a configuration is a set of processors whose
/// cores are disjoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorSpec {
    /// `cpu:0`, `cpu:0-1`, `cuda:0`.
    pub id: String,
    /// CPU cores it owns; empty for an accelerator.
    pub cores: Vec<usize>,
    /// Memory the processor can hold for one plan (weights and live activations), if limited.
    pub memory_bytes: Option<u64>,
}

impl ProcessorSpec {
    /// Whether the two processors share a core (and so cannot run at the same time).
    pub fn overlaps(&self, other: &ProcessorSpec) -> bool {
        self.cores.iter().any(|c| other.cores.contains(c))
    }
}

/// Cost of handing a tensor from one processor to another: `fixed_us + per_byte_us * bytes`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferCost {
    /// Synchronisation and dispatch, paid once per hand-over.
    pub fixed_us: f64,
    /// Copy (or cache-miss) cost per byte.
    pub per_byte_us: f64,
}

impl TransferCost {
    /// Predicted µs for `bytes`.
    pub fn us(&self, bytes: u64) -> f64 {
        self.fixed_us + self.per_byte_us * bytes as f64
    }
}

/// How a stage's time relates to its ops' times on one processor: `fixed_us + factor * sum`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageCost {
    /// Paid once per stage (dispatch, waking the worker).
    pub fixed_us: f64,
    /// Scales the sum of the ops' in-context times.
    pub factor: f64,
}

impl StageCost {
    /// Predicted µs of a stage whose ops sum to `ops_us`.
    pub fn us(&self, ops_us: f64) -> f64 {
        self.fixed_us + self.factor * ops_us
    }
}

impl Default for StageCost {
    fn default() -> Self {
        StageCost { fixed_us: 0.0, factor: 1.0 }
    }
}

/// One way to split an op (or a chain ending at it) into parts that run on several processors at
/// once, then are joined by concatenation along `axis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitOption {
    /// The ops of the chain, in order, ending with the op that carries this option. Each feeds only
    /// the next.
    pub chain: Vec<usize>,
    /// Output axis of the chain's last op that is cut.
    pub axis: usize,
    /// Length of that axis.
    pub extent: usize,
    /// Cut points are multiples of this (the kernel's block size).
    pub align: usize,
    /// Fractions of the axis a part may cover, increasing, in (0, 1].
    pub fractions: Vec<f64>,
    /// `part_us[p][k]`: µs for processor `p` to compute a part covering `fractions[k]` of the axis
    /// (the whole chain's work for that part); `None` where `p` cannot run the chain.
    pub part_us: Vec<Vec<Option<f64>>>,
    /// Bytes of the joined output (each part hands over its share).
    pub output_bytes: u64,
}

/// An input of an op: the producing op, or a model input.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct OpInput {
    /// The op producing it; `None` for a model input.
    pub from: Option<usize>,
    /// Size of the tensor.
    pub bytes: u64,
}

/// One op of the problem's DAG.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpNode {
    /// Name, for display.
    pub name: String,
    /// Kind (`Conv`, `EinSum`...), for display and tests.
    pub kind: String,
    /// Its inputs (weights excluded). Producers come earlier in [`Problem::ops`].
    pub inputs: Vec<OpInput>,
    /// Bytes of its output.
    pub output_bytes: u64,
    /// Whether its output is a model output.
    pub is_output: bool,
    /// `cost_us[p]`: µs of the op inside a stage on processor `p` (index into
    /// [`Problem::processors`]); `None` where `p` cannot run it.
    pub cost_us: Vec<Option<f64>>,
    /// Weight bytes it keeps resident on the processor that runs it.
    pub weight_bytes: u64,
    /// Ways to split it across processors; empty when it cannot be split.
    pub splits: Vec<SplitOption>,
}

/// Everything the search needs, as numbers.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Problem {
    /// Every processor of the device (overlapping ones included: the search picks configurations).
    pub processors: Vec<ProcessorSpec>,
    /// Ops in a topological order; an op's id is its index (the graph's op id).
    pub ops: Vec<OpNode>,
    /// `transfer[src][dst]`; the diagonal is unused (no hand-over within a processor).
    pub transfer: Vec<Vec<TransferCost>>,
    /// Per processor.
    pub stage: Vec<StageCost>,
}
