//! Cutting the op DAG into stages: any convex set of ops becomes a runnable tract model.
//!
//! A stage copies its optimised nodes verbatim (with the constants they read), so chaining the stages of a
//! cut runs exactly the kernels of the whole model, in the same order per node, and reproduces its outputs
//! bit for bit. Its inputs are the tensors entering the set, its outputs the tensors leaving it (or that
//! the model outputs).

use std::collections::{BTreeSet, HashMap};

use rand::seq::SliceRandom;
use rand::SeedableRng;
use tract_onnx::tract_core::internal::*;

use crate::error::{chain, GraphError, Result};
use crate::graph::{Graph, OpId, ValueId};

/// One stage: a set of ops as a runnable model.
#[derive(Debug, Clone)]
pub struct Stage {
    /// Its ops, in topological order.
    pub ops: Vec<OpId>,
    /// Tensors it reads, in the order the model takes them.
    pub inputs: Vec<ValueId>,
    /// Tensors it produces for later stages or as model outputs, in the model's output order.
    pub outputs: Vec<ValueId>,
    /// The stage as a tract model, made of the whole model's optimised nodes.
    pub model: TypedModel,
}

impl Graph {
    /// Builds the stage for a set of ops. The set must be convex (no path leaves it and comes back).
    pub fn stage(&self, ops: &[OpId]) -> Result<Stage> {
        let set: BTreeSet<OpId> = ops.iter().copied().collect();
        if set.is_empty() {
            return Err(GraphError::InvalidCut("a stage needs at least one op".into()));
        }
        if let Some(bad) = set.iter().find(|&&o| o >= self.ops.len()) {
            return Err(GraphError::InvalidCut(format!("no op {bad} (the model has {})", self.ops.len())));
        }
        self.check_convex(&set)?;
        self.build_stage(&set).map_err(|e| GraphError::InvalidCut(chain(&e)))
    }

    fn check_convex(&self, set: &BTreeSet<OpId>) -> Result<()> {
        // Ops are topologically ordered: anything reachable from the set lies after its first op, and a
        // path that comes back must end before its last op.
        let last = *set.iter().next_back().unwrap();
        let mut outside_reached = vec![false; self.ops.len()];
        for o in *set.iter().next().unwrap()..=last {
            let from_set = set.contains(&o);
            if !from_set && !self.predecessors(o).iter().any(|p| set.contains(p) || outside_reached[*p]) {
                continue;
            }
            if !from_set {
                outside_reached[o] = true;
            } else if self.predecessors(o).iter().any(|p| outside_reached[*p]) {
                return Err(GraphError::InvalidCut(format!(
                    "op {} ({}) depends on the stage through ops outside it: the set is not convex",
                    o, self.ops[o].name
                )));
            }
        }
        Ok(())
    }

    fn build_stage(&self, set: &BTreeSet<OpId>) -> TractResult<Stage> {
        let model = &self.optimized;
        let nodes: BTreeSet<usize> = set.iter().flat_map(|&o| self.ops[o].nodes.iter().copied()).collect();
        let order: Vec<usize> = model.eval_order()?.into_iter().filter(|n| nodes.contains(n)).collect();
        let mut stage = TypedModel::default();
        let mut map: HashMap<OutletId, OutletId> = HashMap::new();
        let mut inputs = vec![];
        for &n in &order {
            for &input in &model.nodes[n].inputs {
                if map.contains_key(&input) || nodes.contains(&input.node) {
                    continue;
                }
                let producer = &model.nodes[input.node];
                let wired = if producer.op.name() == "Const" {
                    stage.wire_node(&producer.name, producer.op.clone(), &[])?[0]
                } else {
                    let fact = model.outlet_fact(input)?;
                    ensure!(fact.is_plain(), "the stage would read the packed tensor {} ({:?})", producer.name, fact);
                    inputs.push(ValueId::from(input));
                    stage.add_source(self.edge(input.into())?.name, fact.without_value())?
                };
                map.insert(input, wired);
            }
            let node = &model.nodes[n];
            let ins: TVec<OutletId> = node.inputs.iter().map(|i| map[i]).collect();
            let outs = stage.wire_node(&node.name, node.op.clone(), &ins)?;
            for (slot, o) in outs.into_iter().enumerate() {
                map.insert(OutletId::new(n, slot), o);
            }
        }
        let mut outputs = vec![];
        for &n in &order {
            for (slot, o) in model.nodes[n].outputs.iter().enumerate() {
                let outlet = OutletId::new(n, slot);
                let leaves = o.successors.iter().any(|s| !nodes.contains(&s.node)) || model.outputs.contains(&outlet);
                if leaves {
                    ensure!(model.outlet_fact(outlet)?.is_plain(), "the stage would hand over the packed tensor {}", model.nodes[n].name);
                    outputs.push(ValueId::from(outlet));
                }
            }
        }
        stage.select_output_outlets(&outputs.iter().map(|v| map[&OutletId::from(*v)]).collect::<Vec<_>>())?;
        Ok(Stage { ops: set.iter().copied().collect(), inputs, outputs, model: stage })
    }

    /// A random cut into `n` stages (fewer when the model has fewer ops), seeded: a random topological
    /// order of the ops, cut at random points. Parallel branches can land in different stages and a stage
    /// can hold ops of several branches.
    pub fn random_cut(&self, n: usize, seed: u64) -> Vec<Vec<OpId>> {
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(seed);
        let count = self.ops.len();
        let mut indeg: Vec<usize> = (0..count).map(|o| self.predecessors(o).len()).collect();
        let mut ready: Vec<OpId> = (0..count).filter(|&o| indeg[o] == 0).collect();
        let mut order = vec![];
        while !ready.is_empty() {
            ready.shuffle(&mut rng);
            let o = ready.pop().unwrap();
            order.push(o);
            for s in self.successors(o) {
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    ready.push(s);
                }
            }
        }
        let n = n.clamp(1, count.max(1));
        let mut cuts: Vec<usize> = (1..count).collect();
        cuts.shuffle(&mut rng);
        let mut cuts: Vec<usize> = cuts.into_iter().take(n - 1).collect();
        cuts.sort();
        let mut stages = vec![];
        let mut start = 0;
        for c in cuts.into_iter().chain(std::iter::once(count)) {
            let mut s = order[start..c].to_vec();
            s.sort();
            stages.push(s);
            start = c;
        }
        stages
    }
}
