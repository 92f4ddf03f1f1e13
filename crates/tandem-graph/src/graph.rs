//! The operator DAG: tract's optimised graph, grouped into ops.
//!
//! tract optimises one ONNX operator into several nodes (a Conv becomes Pad, LazyIm2col, OptMatMul and a
//! reshape; a residual Add is fused into the following Relu). tandem's op is the group of optimised nodes
//! that came from one decluttered operator, found through tract's naming (codegen names its nodes
//! `<origin>.<suffix>`). Groups that would pass a packed, non-plain tensor between them are merged, so an op
//! boundary is always a place where the graph can be cut.

use std::collections::{BTreeSet, HashMap};
use std::path::Path;

use serde::{Deserialize, Serialize};
use tract_onnx::prelude::*;

use crate::cost::{self, OpCost};
use crate::error::Result;
use crate::load::{self, InputShape};

/// Most sources a region takes its inputs from (see [`Graph::region_bounds`]): the op whose output
/// it works on and, where a residual connection passes over its start, the shortcut's.
pub const REGION_INPUTS: usize = 2;

/// Index of an op in [`Graph::ops`].
pub type OpId = usize;

/// A tensor of the optimised graph: output `slot` of tract node `node`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ValueId {
    /// tract node id in the optimised model.
    pub node: usize,
    /// Output slot of that node.
    pub slot: usize,
}

impl From<OutletId> for ValueId {
    fn from(o: OutletId) -> Self {
        ValueId { node: o.node, slot: o.slot }
    }
}

impl From<ValueId> for OutletId {
    fn from(v: ValueId) -> Self {
        OutletId::new(v.node, v.slot)
    }
}

/// A tensor crossing an op boundary.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Edge {
    /// The tensor.
    pub value: ValueId,
    /// Its name (the producing node's name, with `:slot` past slot 0).
    pub name: String,
    /// The op that produces it, `None` for a model input.
    pub from: Option<OpId>,
    /// Concrete shape.
    pub shape: Vec<usize>,
    /// Element type, as tract spells it (`F32`).
    pub dtype: String,
    /// Size in bytes.
    pub bytes: u64,
}

/// One op of the DAG.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Op {
    /// Position in [`Graph::ops`] (a topological order).
    pub id: OpId,
    /// The ONNX-level name it came from.
    pub name: String,
    /// Its kind: the decluttered tract operator (`Conv`, `EinSum`, `MaxPool`, `Add`...), refined for
    /// convolutions (`DepthwiseConv`, `GroupConv`).
    pub kind: String,
    /// The tract node ids of the optimised model it runs as, in evaluation order.
    pub nodes: Vec<usize>,
    /// The optimised operators, for display (`Pad+LazyIm2col+OptMatMul+IntoShape`).
    pub tract_ops: String,
    /// Tensors entering the op (weights excluded).
    pub inputs: Vec<Edge>,
    /// Tensors leaving the op.
    pub outputs: Vec<Edge>,
    /// Arithmetic and memory cost.
    pub cost: OpCost,
    /// Output axes it can be split along (see [`crate::split`]).
    pub split_axes: Vec<usize>,
    /// Shape parameters of its heaviest operator, for cost models: `kernel_h`, `kernel_w`, `stride_h`,
    /// `stride_w`, `group`, `in_channels`, `out_channels`, `out_h`, `out_w` for convolutions and pooling.
    pub features: std::collections::BTreeMap<String, i64>,
    /// Decluttered node ids this op computes (its origin and operators tract fused into it).
    #[serde(skip)]
    pub(crate) decluttered: Vec<usize>,
    /// The decluttered node whose output is this op's output.
    #[serde(skip)]
    pub(crate) origin: Option<usize>,
}

impl Op {
    /// The axis a split of this op cuts, one rule for the profiler (which measures parts along it)
    /// and the planner (which plans with those measurements): a convolution's or pooling's rows
    /// where it offers them, else the output channels of a 4-d output, else its last splittable
    /// axis; `None` when it cannot be split.
    ///
    /// Why rows before channels: every part of a convolution cut by output channels packs the whole
    /// input (im2col), which is most of the work. Measured with `bench_split` on resnet18, the
    /// halves of its 3x3 convolutions cut by channels cost 1.49-1.79x the whole op together, cut by
    /// rows 1.03-1.07x (layer1.0.conv1: 4298 against 2491 µs a half, the whole op 4991 µs).
    /// Depthwise convolutions cut either way alike (mobilenet_v2: 633 against 648 µs).
    pub fn split_axis(&self) -> Option<usize> {
        if let Some(rows) = self.row_axis().filter(|r| self.split_axes.contains(r)) {
            return Some(rows);
        }
        let rank = self.outputs.first()?.shape.len();
        if self.split_axes.contains(&1) && rank == 4 {
            return Some(1);
        }
        self.split_axes.last().copied()
    }

    /// The output axis of a convolution's or pooling's rows (the next one holds its columns); `None`
    /// for other ops.
    pub fn row_axis(&self) -> Option<usize> {
        self.features.get("row_axis").map(|&r| r as usize)
    }

    /// The output axis of channels: a convolution's or pooling's as recorded, else 1 (NCHW). Cuts
    /// there follow the kernels' channel blocks.
    pub fn channel_axis(&self) -> usize {
        self.features.get("channel_axis").map(|&c| c as usize).unwrap_or(1)
    }
}

/// A loaded model: the decluttered and optimised tract models and the op DAG over the latter.
#[derive(Debug, Clone)]
pub struct Graph {
    /// File stem, or the zoo name.
    pub name: String,
    /// SHA-256 of the ONNX bytes: the model's identity in the database.
    pub content_hash: String,
    /// Model inputs with their fixed shapes.
    pub inputs: Vec<Edge>,
    /// Model outputs.
    pub outputs: Vec<Edge>,
    /// The ops, in a topological order.
    pub ops: Vec<Op>,
    pub(crate) typed: TypedModel,
    pub(crate) optimized: TypedModel,
    /// Optimised node id -> op id (`None` for sources and constants).
    pub(crate) node_op: Vec<Option<OpId>>,
}

impl Graph {
    /// Loads an ONNX file, fixing input shapes from the model or from `shapes`.
    pub fn load(path: &Path, shapes: &[InputShape]) -> Result<Graph> {
        let loaded = load::read(path, shapes)?;
        Self::from_loaded(path, loaded)
    }

    /// Loads ONNX bytes already in memory (`label` names them in messages).
    pub fn load_bytes(label: &str, bytes: &[u8], shapes: &[InputShape]) -> Result<Graph> {
        let path = Path::new(label);
        let loaded = load::decode(path, bytes, shapes)?;
        Self::from_loaded(path, loaded)
    }

    fn from_loaded(path: &Path, loaded: load::Loaded) -> Result<Graph> {
        let (typed, optimized) = load::prepare(path, &loaded)?;
        let name = path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_default();
        build(name, loaded.content_hash, typed, optimized)
    }

    /// The optimised tract model (what the executor runs).
    pub fn optimized(&self) -> &TypedModel {
        &self.optimized
    }

    /// The decluttered tract model (the semantic operators, before codegen).
    pub fn decluttered(&self) -> &TypedModel {
        &self.typed
    }

    /// The op that tract node `node` belongs to.
    pub fn op_of_node(&self, node: usize) -> Option<OpId> {
        self.node_op.get(node).copied().flatten()
    }

    /// The op that computes node `node` of the decluttered model (its main operator, or one tract fuses
    /// into it); `None` for sources and constants. Runtimes that start from the decluttered model (tract's
    /// GPU transforms) name their nodes after these, so their timings map back to ops through it.
    pub fn op_of_decluttered_node(&self, node: usize) -> Option<OpId> {
        self.ops.iter().find(|o| o.decluttered.contains(&node)).map(|o| o.id)
    }

    /// Ops that consume an output of `op`.
    pub fn successors(&self, op: OpId) -> BTreeSet<OpId> {
        let mut out = BTreeSet::new();
        for &n in &self.ops[op].nodes {
            for o in &self.optimized.nodes[n].outputs {
                for succ in &o.successors {
                    if let Some(s) = self.op_of_node(succ.node) {
                        if s != op {
                            out.insert(s);
                        }
                    }
                }
            }
        }
        out
    }

    /// Cut points: op indices `c` where the only tensor produced before `c` and read at or after it
    /// is op `c - 1`'s output, and no model output comes before it. The ops from one cut point to a
    /// later one form a region with one way in and one way out (see [`Graph::part_shares`]).
    pub fn cut_points(&self) -> Vec<OpId> {
        let outputs: Vec<_> = self.outputs.iter().map(|e| e.value).collect();
        (1..self.ops.len())
            .filter(|&c| {
                self.ops[c..].iter().all(|o| o.inputs.iter().all(|e| e.from.map(|f| f + 1 >= c).unwrap_or(false)))
                    && !self.ops[..c - 1].iter().any(|o| o.outputs.iter().any(|e| outputs.contains(&e.value)))
            })
            .collect()
    }

    /// Region bounds: op indices `c` where the tensors produced before `c` and read at or after it
    /// come from at most [`REGION_INPUTS`] sources (ops, or model inputs). Every cut point is one; so
    /// is the place after a transformer layer's Q/K/V projection, where the projection (one op, with
    /// one output or three) and the residual cross. The ops from a bound to a cut point form a
    /// region when [`Graph::is_region`] says so.
    pub fn region_bounds(&self) -> Vec<OpId> {
        (1..self.ops.len())
            .filter(|&c| {
                // An op by its id, a model input by its value.
                let mut sources: Vec<Result<OpId, ValueId>> = vec![];
                for e in self.ops[c..].iter().flat_map(|o| &o.inputs) {
                    let source = e.from.ok_or(e.value);
                    if e.from.map(|f| f < c).unwrap_or(true) && !sources.contains(&source) {
                        sources.push(source);
                    }
                }
                sources.len() <= REGION_INPUTS
            })
            .collect()
    }

    /// Whether the ops `start..end` form a region: at least two of them, and every one but the last
    /// read only inside the range and not a model output, so that the last op's output is all that
    /// leaves it (its inputs may be several).
    pub fn is_region(&self, start: OpId, end: OpId) -> bool {
        let outputs: Vec<_> = self.outputs.iter().map(|e| e.value).collect();
        end <= self.ops.len()
            && start + 2 <= end
            && (start..end - 1).all(|o| {
                self.successors(o).iter().all(|&s| s < end) && !self.ops[o].outputs.iter().any(|e| outputs.contains(&e.value))
            })
    }

    /// Ops whose output `op` consumes.
    pub fn predecessors(&self, op: OpId) -> BTreeSet<OpId> {
        self.ops[op].inputs.iter().filter_map(|e| e.from).collect()
    }

    /// Total arithmetic cost.
    pub fn total_flops(&self) -> u64 {
        self.ops.iter().map(|o| o.cost.flops).sum()
    }

    /// Describes a value of the optimised graph as an [`Edge`].
    pub(crate) fn edge(&self, v: ValueId) -> TractResult<Edge> {
        edge_of(&self.optimized, &self.node_op, v)
    }
}

fn edge_of(model: &TypedModel, node_op: &[Option<OpId>], v: ValueId) -> TractResult<Edge> {
    let fact = model.outlet_fact(v.into())?;
    let shape: Vec<usize> = fact.shape.as_concrete().map(|s| s.to_vec()).unwrap_or_default();
    let node = &model.nodes[v.node];
    let name = if v.slot == 0 { node.name.clone() } else { format!("{}:{}", node.name, v.slot) };
    let bytes = (shape.iter().product::<usize>() * fact.datum_type.size_of()) as u64;
    Ok(Edge { value: v, name, from: node_op[v.node], shape, dtype: format!("{:?}", fact.datum_type), bytes })
}

fn is_leaf(op: &dyn TypedOp) -> bool {
    let name = op.name();
    name == "Source" || name == "Const"
}

/// Small union-find over group indices.
struct Groups(Vec<usize>);
impl Groups {
    fn find(&mut self, x: usize) -> usize {
        let mut r = x;
        while self.0[r] != r {
            r = self.0[r];
        }
        let mut y = x;
        while self.0[y] != r {
            let next = self.0[y];
            self.0[y] = r;
            y = next;
        }
        r
    }
    fn union(&mut self, a: usize, b: usize) -> bool {
        let (ra, rb) = (self.find(a), self.find(b));
        if ra != rb {
            self.0[ra.max(rb)] = ra.min(rb);
        }
        ra != rb
    }
}

/// Builds the op DAG over an optimised model.
pub(crate) fn build(name: String, content_hash: String, typed: TypedModel, optimized: TypedModel) -> Result<Graph> {
    let wrap = |e: TractError| crate::GraphError::Tract { path: name.clone().into(), reason: crate::error::chain(&e) };
    // Origins: the decluttered operator each optimised node came from, by name.
    let mut decl_by_name: HashMap<&str, usize> = HashMap::new();
    for n in &typed.nodes {
        if !is_leaf(n.op.as_ref()) {
            decl_by_name.insert(n.name.as_str(), n.id);
        }
    }
    let origin_of = |name: &str| -> Option<usize> {
        let mut candidate = name;
        loop {
            if let Some(&id) = decl_by_name.get(candidate) {
                return Some(id);
            }
            candidate = &candidate[..candidate.rfind('.')?];
        }
    };
    let order = optimized.eval_order().map_err(wrap)?;
    let n_nodes = optimized.nodes.len();
    // Initial groups: one per origin (or per node when none is found).
    let mut key_group: HashMap<String, usize> = HashMap::new();
    let mut node_group: Vec<Option<usize>> = vec![None; n_nodes];
    let mut group_origin: Vec<Option<usize>> = vec![];
    for &n in &order {
        let node = &optimized.nodes[n];
        if is_leaf(node.op.as_ref()) {
            continue;
        }
        let origin = origin_of(&node.name);
        let key = match origin {
            Some(o) => format!("d{o}"),
            None => format!("n{n}"),
        };
        let g = *key_group.entry(key).or_insert_with(|| {
            group_origin.push(origin);
            group_origin.len() - 1
        });
        node_group[n] = Some(g);
    }
    let mut uf = Groups((0..group_origin.len()).collect());
    // Never cut through a packed tensor, and keep every group convex: merge until both hold.
    loop {
        let mut changed = false;
        for &n in &order {
            let Some(g) = node_group[n] else { continue };
            for (slot, input) in optimized.nodes[n].inputs.iter().enumerate() {
                let _ = slot;
                if let Some(pg) = node_group[input.node] {
                    if !optimized.outlet_fact(*input).map_err(wrap)?.is_plain() {
                        changed |= uf.union(g, pg);
                    }
                }
            }
        }
        changed |= merge_cycles(&optimized, &order, &node_group, &mut uf);
        if !changed {
            break;
        }
    }
    // Number the merged groups in evaluation order: that is a topological order of the group DAG since
    // groups are convex.
    let mut op_of_root: HashMap<usize, OpId> = HashMap::new();
    let mut node_op: Vec<Option<OpId>> = vec![None; n_nodes];
    let mut op_nodes: Vec<Vec<usize>> = vec![];
    let mut op_origins: Vec<Vec<usize>> = vec![];
    for &n in &order {
        let Some(g) = node_group[n] else { continue };
        let root = uf.find(g);
        let id = *op_of_root.entry(root).or_insert_with(|| {
            op_nodes.push(vec![]);
            op_origins.push(vec![]);
            op_nodes.len() - 1
        });
        node_op[n] = Some(id);
        op_nodes[id].push(n);
        if let Some(o) = group_origin[g] {
            if !op_origins[id].contains(&o) {
                op_origins[id].push(o);
            }
        }
    }
    // Evaluation order of groups can still interleave; sort ops topologically by their edges.
    let (op_nodes, op_origins, node_op) = topo_sort_ops(&optimized, op_nodes, op_origins, node_op);

    let mut ops = vec![];
    for (id, nodes) in op_nodes.iter().enumerate() {
        let mut inputs: Vec<Edge> = vec![];
        let mut outputs: Vec<Edge> = vec![];
        for &n in nodes {
            let node = &optimized.nodes[n];
            for input in &node.inputs {
                let producer = &optimized.nodes[input.node];
                if node_op[input.node] == Some(id) || producer.op.name() == "Const" {
                    continue;
                }
                if !inputs.iter().any(|e| e.value == ValueId::from(*input)) {
                    inputs.push(edge_of(&optimized, &node_op, (*input).into()).map_err(wrap)?);
                }
            }
            for (slot, o) in node.outputs.iter().enumerate() {
                let v = ValueId { node: n, slot };
                let leaves = o.successors.iter().any(|s| node_op[s.node] != Some(id))
                    || optimized.outputs.contains(&v.into());
                if leaves {
                    outputs.push(edge_of(&optimized, &node_op, v).map_err(wrap)?);
                }
            }
        }
        let origins = &op_origins[id];
        let main = origins.last().copied();
        let (op_name, kind) = match main {
            Some(d) => (typed.nodes[d].name.clone(), cost::kind_of(&typed, d)),
            None => (optimized.nodes[nodes[0]].name.clone(), optimized.nodes[nodes[0]].op.name().to_string()),
        };
        let tract_ops = nodes.iter().map(|&n| optimized.nodes[n].op.name().to_string()).collect::<Vec<_>>().join("+");
        ops.push(Op {
            id,
            name: op_name,
            kind,
            nodes: nodes.clone(),
            tract_ops,
            inputs,
            outputs,
            cost: OpCost::default(),
            split_axes: vec![],
            features: Default::default(),
            decluttered: vec![],
            origin: main,
        });
    }
    let inputs = optimized.inputs.iter().map(|&o| edge_of(&optimized, &node_op, o.into())).collect::<TractResult<Vec<_>>>().map_err(wrap)?;
    let outputs = optimized.outputs.iter().map(|&o| edge_of(&optimized, &node_op, o.into())).collect::<TractResult<Vec<_>>>().map_err(wrap)?;
    let mut graph = Graph { name, content_hash, inputs, outputs, ops, typed, optimized, node_op };
    crate::split::annotate(&mut graph, &op_origins);
    Ok(graph)
}

/// Merges groups that form a cycle in the group graph: a group that a path leaves and re-enters is not
/// convex, so it could not run as one stage. Merging each strongly connected component fixes that.
fn merge_cycles(model: &TypedModel, order: &[usize], node_group: &[Option<usize>], uf: &mut Groups) -> bool {
    let n = uf.0.len();
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    let mut pred: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for &node in order {
        let Some(g) = node_group[node] else { continue };
        let g = uf.find(g);
        for i in &model.nodes[node].inputs {
            if let Some(p) = node_group[i.node] {
                let p = uf.find(p);
                if p != g {
                    succ[p].insert(g);
                    pred[g].insert(p);
                }
            }
        }
    }
    // Kosaraju: finishing order on the forward graph, then components on the reverse one.
    let mut seen = vec![false; n];
    let mut finish = vec![];
    for start in 0..n {
        if seen[start] {
            continue;
        }
        let mut stack = vec![(start, false)];
        while let Some((v, done)) = stack.pop() {
            if done {
                finish.push(v);
                continue;
            }
            if seen[v] {
                continue;
            }
            seen[v] = true;
            stack.push((v, true));
            stack.extend(succ[v].iter().filter(|&&s| !seen[s]).map(|&s| (s, false)));
        }
    }
    let mut comp = vec![usize::MAX; n];
    let mut changed = false;
    for &root in finish.iter().rev() {
        if comp[root] != usize::MAX {
            continue;
        }
        let mut stack = vec![root];
        comp[root] = root;
        while let Some(v) = stack.pop() {
            for &p in &pred[v] {
                if comp[p] == usize::MAX {
                    comp[p] = root;
                    stack.push(p);
                }
            }
        }
    }
    for v in 0..n {
        if comp[v] != usize::MAX && comp[v] != v {
            changed |= uf.union(v, comp[v]);
        }
    }
    changed
}

type Sorted = (Vec<Vec<usize>>, Vec<Vec<usize>>, Vec<Option<OpId>>);

fn topo_sort_ops(model: &TypedModel, nodes: Vec<Vec<usize>>, origins: Vec<Vec<usize>>, node_op: Vec<Option<OpId>>) -> Sorted {
    let n = nodes.len();
    let mut indeg = vec![0usize; n];
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); n];
    for (op, ns) in nodes.iter().enumerate() {
        for &node in ns {
            for i in &model.nodes[node].inputs {
                if let Some(p) = node_op[i.node] {
                    if p != op && succ[p].insert(op) {
                        indeg[op] += 1;
                    }
                }
            }
        }
    }
    let mut ready: BTreeSet<usize> = (0..n).filter(|&o| indeg[o] == 0).collect();
    let mut order = vec![];
    while let Some(&o) = ready.iter().next() {
        ready.remove(&o);
        order.push(o);
        for &s in &succ[o] {
            indeg[s] -= 1;
            if indeg[s] == 0 {
                ready.insert(s);
            }
        }
    }
    debug_assert_eq!(order.len(), n, "op graph must be acyclic once groups are convex");
    let mut new_id = vec![0; n];
    for (new, &old) in order.iter().enumerate() {
        new_id[old] = new;
    }
    let nodes2 = order.iter().map(|&o| nodes[o].clone()).collect();
    let origins2 = order.iter().map(|&o| origins[o].clone()).collect();
    let node_op2 = node_op.into_iter().map(|o| o.map(|o| new_id[o])).collect();
    (nodes2, origins2, node_op2)
}
