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
        self.bytes_us(bytes as f64)
    }

    /// Predicted µs for a share of a tensor (`bytes` need not be whole).
    #[inline]
    pub fn bytes_us(&self, bytes: f64) -> f64 {
        self.fixed_us + self.per_byte_us * bytes
    }
}

/// How a stage's time relates to its ops' times on one processor:
/// `fixed_us + factor * sum + per_op_us * ops`.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StageCost {
    /// Paid once per stage (dispatch, waking the worker).
    pub fixed_us: f64,
    /// Scales the sum of the ops' in-context times.
    pub factor: f64,
    /// Paid per op of the stage, beyond the op's own time.
    #[serde(default)]
    pub per_op_us: f64,
}

impl StageCost {
    /// Predicted µs of a stage of `ops` ops whose in-context times sum to `ops_us`.
    pub fn us(&self, ops_us: f64, ops: usize) -> f64 {
        self.fixed_us + self.factor * ops_us + self.per_op_us * ops as f64
    }
}

impl Default for StageCost {
    fn default() -> Self {
        StageCost { fixed_us: 0.0, factor: 1.0, per_op_us: 0.0 }
    }
}

/// One way to split an op (or a chain ending at it) into parts that run on several processors at
/// once, then are joined by concatenation along `axis`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitOption {
    /// The ops of the chain, in order, ending with the op that carries this option. Each but the last
    /// feeds only later ops of the chain: the next (a convolution and its activation), or several
    /// (a region of a network with residual branches inside).
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
    /// Per processor, joining a split's parts into one tensor there (a copy of the whole output,
    /// on the processor of the part that finished last) by the output's bytes; empty: free.
    #[serde(default)]
    pub join: Vec<TransferCost>,
}

impl SplitOption {
    /// µs for processor `p` to compute a part covering `share` of the axis (`None` where it cannot):
    /// the tabulated figure when `share` is one of [`SplitOption::fractions`], otherwise interpolated
    /// linearly between the two nearest ones.
    pub fn part_cost(&self, p: usize, share: f64) -> Option<f64> {
        let row = self.part_us.get(p)?;
        let f = &self.fractions;
        if let Some(k) = f.iter().position(|x| (x - share).abs() < 1e-9) {
            return row.get(k).copied().flatten();
        }
        // The two tabulated fractions around `share` (or the two nearest at either end).
        let hi = f.iter().position(|&x| x > share).unwrap_or(f.len().saturating_sub(1)).max(1).min(f.len().saturating_sub(1));
        let lo = hi.checked_sub(1)?;
        let (a, b) = (row.get(lo).copied().flatten()?, row.get(hi).copied().flatten()?);
        let t = (share - f[lo]) / (f[hi] - f[lo]);
        Some((a + t * (b - a)).max(0.0))
    }

    /// Where a part of `share` of the axis starting at 0 ends, in axis units.
    pub fn cut(&self, share: f64) -> usize {
        ((share * self.extent as f64).round() as usize).min(self.extent)
    }
}

/// Processor `p`'s factor in `factors` as [`Problem::slowed`] reads it: missing, non-finite or
/// non-positive factors count as 1.
pub(crate) fn slowdown(factors: &[f64], p: usize) -> f64 {
    factors.get(p).copied().filter(|x| x.is_finite() && *x > 0.0).unwrap_or(1.0)
}

impl Problem {
    /// For each op, the ops reading its output (each once, in order).
    pub fn successors(&self) -> Vec<Vec<usize>> {
        let mut succ: Vec<Vec<usize>> = vec![vec![]; self.ops.len()];
        for (v, op) in self.ops.iter().enumerate() {
            for i in &op.inputs {
                if let Some(u) = i.from {
                    if u < succ.len() && !succ[u].contains(&v) {
                        succ[u].push(v);
                    }
                }
            }
        }
        succ
    }

    /// µs to hand `bytes` from processor `q` to processor `p`; 0 on the same processor.
    #[inline]
    pub fn hand_over_us(&self, q: usize, p: usize, bytes: f64) -> f64 {
        if q == p { 0.0 } else { self.transfer[q][p].bytes_us(bytes) }
    }

    /// µs from a producer on `q` finishing to a consumer on `p` having its input: the producer's
    /// `share` of a `bytes`-byte tensor handed over, after the join of the whole tensor on `q` when
    /// the producer is a part of a split. The evaluator, the list-scheduling seed and the simulator
    /// all charge an edge this way.
    #[inline]
    pub fn edge_us(&self, q: usize, p: usize, bytes: f64, share: f64, split_part: bool) -> f64 {
        self.hand_over_us(q, p, bytes * share) + if split_part { self.join_us(q, bytes) } else { 0.0 }
    }

    /// µs to join a split's parts into one `bytes`-byte tensor on processor `p` ([`Problem::join`]).
    #[inline]
    pub fn join_us(&self, p: usize, bytes: f64) -> f64 {
        self.join.get(p).map(|c| c.bytes_us(bytes)).unwrap_or(0.0)
    }

    /// The index of processor `id`.
    pub fn processor_index(&self, id: &str) -> Option<usize> {
        self.processors.iter().position(|p| p.id == id)
    }

    /// Whether processor `p` can run every op (alone, it is a whole-model baseline).
    pub fn runs_everything(&self, p: usize) -> bool {
        self.ops.iter().all(|o| o.cost_us.get(p).copied().flatten().is_some())
    }

    /// The same problem on a device whose processors run slower: every op, split part and stage of
    /// processor `p` takes `factors[p]` times as long (1 = as profiled, 2 = half available). Transfers
    /// keep their cost: a hand-over is mostly waiting for memory, not compute. Used to plan for
    /// availability scenarios (`tune --robust`) and to re-plan while running when a processor slows down.
    /// Missing factors count as 1.
    pub fn slowed(&self, factors: &[f64]) -> Problem {
        let f = |p: usize| slowdown(factors, p);
        let mut out = self.clone();
        for op in &mut out.ops {
            for (p, c) in op.cost_us.iter_mut().enumerate() {
                *c = c.map(|v| v * f(p));
            }
            for s in &mut op.splits {
                for (p, row) in s.part_us.iter_mut().enumerate() {
                    for c in row.iter_mut() {
                        *c = c.map(|v| v * f(p));
                    }
                }
            }
        }
        for (p, st) in out.stage.iter_mut().enumerate() {
            st.fixed_us *= f(p);
            st.per_op_us *= f(p);
        }
        out
    }

    /// Checks that the numbers fit together: one cost per processor, producers before consumers,
    /// chains ending at the op that carries them, fractions increasing in (0, 1), finite costs.
    pub fn check(&self) -> Result<(), crate::PlanError> {
        let bad = |m: String| Err(crate::PlanError::Invalid(format!("planning problem: {m}")));
        let np = self.processors.len();
        if np == 0 {
            return bad("no processors".into());
        }
        if self.transfer.len() != np || self.transfer.iter().any(|r| r.len() != np) || self.stage.len() != np {
            return bad(format!("transfer and stage costs must cover the {np} processors"));
        }
        if !(self.join.is_empty() || self.join.len() == np) {
            return bad(format!("join costs must cover the {np} processors, or none"));
        }
        let finite = |x: &Option<f64>| x.map(|v| v.is_finite() && v >= 0.0).unwrap_or(true);
        let succ = self.successors();
        for (v, op) in self.ops.iter().enumerate() {
            if op.cost_us.len() != np || !op.cost_us.iter().all(finite) {
                return bad(format!("op {v} ({}) needs one finite, non-negative cost per processor", op.name));
            }
            if let Some(i) = op.inputs.iter().find(|i| i.from.map(|u| u >= v).unwrap_or(false)) {
                return bad(format!("op {v} reads op {:?}, which does not come before it", i.from));
            }
            for s in &op.splits {
                // Each op of a chain but the last feeds only later ops of the chain (a region of a
                // network may branch and join inside).
                let chain_ok = s.chain.last() == Some(&v)
                    && s.chain.windows(2).all(|w| w[0] < w[1])
                    && s.chain[..s.chain.len() - 1].iter().all(|&u| !self.ops[u].is_output && !succ[u].is_empty() && succ[u].iter().all(|w| s.chain.contains(w) && *w > u));
                let fr_ok = !s.fractions.is_empty() && s.fractions.windows(2).all(|w| w[0] < w[1]) && s.fractions.iter().all(|&f| f > 0.0 && f <= 1.0);
                let parts_ok = s.part_us.len() == np && s.part_us.iter().all(|r| r.len() == s.fractions.len() && r.iter().all(finite));
                if !(chain_ok && fr_ok && parts_ok && s.extent > 1) {
                    return bad(format!("split option of op {v} ({}) is inconsistent", op.name));
                }
            }
        }
        Ok(())
    }
}
