//! Splitting one op, or a short chain of ops, into parts that run on different processors.
//!
//! A split cuts the output of the chain along one axis into contiguous ranges. Each part is a tract model
//! that takes the chain's full input tensors and computes one range of the output; concatenating the parts'
//! outputs along the axis gives the unsplit result. Parts are built from the decluttered operators by
//! walking backwards from the wanted output range and asking each operator which range of each input it
//! needs:
//!
//! - output channels of a convolution slice its weights (and, for grouped and depthwise convolutions,
//!   the input channels of the groups concerned);
//! - spatial rows of a convolution or pooling read the input rows under their windows (the halo), with
//!   padding kept only at the true borders;
//! - matrix products (EinSum), element-wise and broadcasting binary ops, softmax and reductions along other
//!   axes slice the inputs that carry the axis.
//!
//! Constant inputs are sliced at build time, so a part holds only its share of the weights. Each part is
//! then optimised by tract on its own.

use std::collections::{HashMap, HashSet};
use std::ops::Range;

use serde::{Deserialize, Serialize};
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::array::{Gather, Slice, TypedConcat};
use tract_onnx::tract_core::ops::binary::TypedBinOp;
use tract_onnx::tract_core::ops::cast::Cast;
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool, PaddingSpec, PoolSpec, SumPool};
use tract_onnx::tract_core::ops::Downsample;
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::element_wise::ElementWiseOp;
use tract_onnx::tract_core::ops::nn::{Reduce, RmsNorm, Softmax};

use crate::cost::{self, OpCost};
use crate::error::{chain, GraphError, Result};
use crate::graph::{Graph, OpId, ValueId};

/// One part of a split: a range of the output along the split axis and the model that computes it.
#[derive(Debug, Clone)]
pub struct Part {
    /// Output range along the split axis.
    pub range: Range<usize>,
    /// The optimised part model: inputs are [`Split::inputs`] (full tensors), output the range.
    pub model: TypedModel,
    /// What it computes of each op of the chain, halos included ([`Graph::part_shares`]).
    pub shares: Vec<(usize, f64)>,
}

/// A split of an op chain into parts.
#[derive(Debug, Clone)]
pub struct Split {
    /// The ops of the chain, in order; the last one's output is split.
    pub ops: Vec<OpId>,
    /// Output axis.
    pub axis: usize,
    /// The chain's input tensors in the optimised graph, in the order the part models take them.
    pub inputs: Vec<ValueId>,
    /// The chain's output tensor in the optimised graph.
    pub output: ValueId,
    /// The parts, in axis order.
    pub parts: Vec<Part>,
}

/// How a split is asked for: the output axis and the fractions at which to cut.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitSpec {
    /// Output axis.
    pub axis: usize,
    /// Cut points as fractions of the axis, increasing, each in (0, 1).
    pub ratios: Vec<f64>,
    /// Round cut points to multiples of this (a kernel's block size); 1 for none.
    pub align: usize,
}

/// Cut points for an axis of length `dim`: fractions rounded to `align`, with empty parts dropped.
pub fn boundaries(dim: usize, ratios: &[f64], align: usize) -> Vec<usize> {
    let align = align.max(1);
    let mut cuts = vec![0];
    for r in ratios {
        let raw = (r.clamp(0.0, 1.0) * dim as f64).round() as usize;
        let aligned = ((raw + align / 2) / align * align).min(dim);
        if aligned > *cuts.last().unwrap() && aligned < dim {
            cuts.push(aligned);
        }
    }
    cuts.push(dim);
    cuts
}

/// The decluttered sub-graph an op chain computes: its nodes, its input values and its output.
struct Chain {
    /// Decluttered node ids covered, in topological order.
    nodes: Vec<usize>,
    /// Decluttered input outlets (non-constant), with the optimised value that holds the same tensor.
    inputs: Vec<(OutletId, ValueId)>,
    /// Inputs whose optimised value holds the tensor in another shape (the same elements in the same
    /// order: a convolution's `[N, C, H*W]` for the decluttered `[N, C, H, W]`): that shape, which a
    /// part's source takes before reshaping it.
    reshaped: HashMap<OutletId, Vec<usize>>,
    /// Decluttered output outlet.
    output: OutletId,
}

fn decl_output(graph: &Graph, op: OpId) -> Option<OutletId> {
    Some(OutletId::new(graph.ops[op].origin?, 0))
}

fn chain_of(graph: &Graph, ops: &[OpId]) -> Result<Chain> {
    let Some(&last) = ops.last() else { return Err(GraphError::InvalidSplit { op: "(none)".into(), reason: "empty chain".into() }) };
    let fail = |reason: String| GraphError::InvalidSplit { op: graph.ops.get(last).map(|o| o.name.clone()).unwrap_or_else(|| format!("#{last}")), reason };
    if let Some(o) = ops.iter().find(|&&o| o >= graph.ops.len()) {
        return Err(fail(format!("no op {o} in a graph of {}", graph.ops.len())));
    }
    let mut nodes: Vec<usize> = ops.iter().flat_map(|&o| graph.ops[o].decluttered.iter().copied()).collect();
    nodes.sort();
    nodes.dedup();
    if graph.ops[last].outputs.len() != 1 {
        return Err(fail("only single-output ops are split".into()));
    }
    let output = decl_output(graph, last).ok_or_else(|| fail("no decluttered operator behind this op".into()))?;
    // Intermediate ops of a chain must feed only the chain.
    for &o in &ops[..ops.len() - 1] {
        if graph.successors(o).iter().any(|s| !ops.contains(s)) || graph.outputs.iter().any(|e| graph.op_of_node(e.value.node) == Some(o)) {
            return Err(fail(format!("op {} of the chain is also used outside it", graph.ops[o].name)));
        }
    }
    // Inputs: decluttered outlets read by the chain and produced outside it (constants excluded), matched
    // to the optimised values entering the chain.
    let typed = &graph.typed;
    let mut inputs = vec![];
    let mut reshaped = HashMap::new();
    let entering: Vec<_> = ops.iter().flat_map(|&o| graph.ops[o].inputs.iter()).filter(|e| e.from.map(|f| !ops.contains(&f)).unwrap_or(true)).collect();
    for &n in &nodes {
        for i in &typed.nodes[n].inputs {
            if nodes.contains(&i.node) || typed.nodes[i.node].op.name() == "Const" || inputs.iter().any(|(d, _)| d == i) {
                continue;
            }
            let producer = &typed.nodes[i.node];
            // Find the optimised value for it: a model input by name, or the output of the op whose
            // origin is the producer; for an op of several outputs (a Q/K/V projection), the one held
            // by a node of the producer's name.
            let value = entering.iter().find(|e| match e.from {
                None => graph.optimized.nodes[e.value.node].name == producer.name,
                Some(f) if graph.ops[f].outputs.len() > 1 => graph.optimized.nodes[e.value.node].name == producer.name,
                Some(f) => graph.ops[f].origin == Some(i.node),
            });
            let dfact = typed.outlet_fact(*i).map_err(|e| fail(chain(&e)))?;
            // tract sometimes names the node holding a value after another operator (a shared 1x1
            // convolution head ends in a reshape named after the matrix product, not the Relu fused
            // into it). Then the one entering tensor of the same shape is that value; the executor's
            // end-to-end verification is what guards this match.
            let value = value.or_else(|| {
                let same: Vec<_> = entering.iter().filter(|e| dfact.shape.as_concrete() == Some(&e.shape[..])).collect();
                (same.len() == 1).then(|| same[0])
            });
            let value = value.ok_or_else(|| fail(format!("input {} has no matching tensor in the optimised graph", producer.name)))?;
            let dshape = dfact.shape.as_concrete().ok_or_else(|| fail(format!("input {} has a symbolic shape", producer.name)))?;
            if dshape != &value.shape[..] {
                if !merges_axes(dshape, &value.shape) {
                    return Err(fail(format!("input {} changes layout between decluttered and optimised graphs", producer.name)));
                }
                reshaped.insert(*i, value.shape.clone());
            }
            inputs.push((*i, value.value));
        }
    }
    Ok(Chain { nodes, inputs, reshaped, output })
}

/// Whether `held` is `shape` with runs of neighbouring axes merged (or axes of 1 dropped): the same
/// elements in the same order, so a reshape gives one from the other.
fn merges_axes(shape: &[usize], held: &[usize]) -> bool {
    let mut dims = shape.iter().copied().filter(|&d| d != 1);
    for h in held.iter().copied().filter(|&h| h != 1) {
        let mut run = 1;
        while run < h {
            match dims.next() {
                Some(d) => run *= d,
                None => return false,
            }
        }
        if run != h {
            return false;
        }
    }
    dims.next().is_none()
}

/// What a node needs of its inputs to produce one range of its output.
enum Rewrite {
    /// Same op, inputs sliced as listed.
    Same(Vec<Need>),
    /// A replacement op, inputs sliced as listed.
    With(Box<dyn TypedOp>, Vec<Need>),
}

/// The range of one input a node needs.
#[derive(Clone, Debug)]
enum Need {
    Full,
    Range(usize, Range<usize>),
}

fn shape_of(model: &TypedModel, o: OutletId) -> TractResult<Vec<usize>> {
    Ok(model.outlet_fact(o)?.shape.as_concrete().context("symbolic shape")?.to_vec())
}

/// Input rows `[lo, hi)` (possibly beyond the tensor) under the windows of output rows `range`.
fn window(range: &Range<usize>, stride: usize, dilation: usize, kernel: usize, pad_before: usize) -> (isize, isize) {
    let lo = (range.start * stride) as isize - pad_before as isize;
    let hi = ((range.end - 1) * stride + (kernel - 1) * dilation + 1) as isize - pad_before as isize;
    (lo, hi)
}

/// Rewrites a pooling spec for output range `range` on spatial axis `axis`; returns the spec and the input
/// rows needed.
fn spatial_pool(spec: &PoolSpec, input: &[usize], axis: usize, range: &Range<usize>) -> TractResult<(PoolSpec, Need)> {
    let shape = spec.data_format.shape(input.to_vec())?;
    let h_axis = shape.h_axis();
    let hw = shape.hw_dims().to_vec();
    let geo = axis - h_axis;
    let padding = spec.computed_padding(&hw);
    let (lo, hi) = window(range, spec.stride(geo), spec.dilation(geo), spec.kernel_shape[geo], padding[geo].pad_before);
    let dim = hw[geo] as isize;
    let (start, end) = (lo.max(0) as usize, hi.min(dim) as usize);
    let mut before: TVec<usize> = padding.iter().map(|p| p.pad_before).collect();
    let mut after: TVec<usize> = padding.iter().map(|p| p.pad_after).collect();
    before[geo] = (-lo).max(0) as usize;
    after[geo] = (hi - dim).max(0) as usize;
    let mut spec = spec.clone();
    spec.padding = PaddingSpec::Explicit(before, after);
    Ok((spec, Need::Range(axis, start..end)))
}

/// Decides how `node` produces `range` of output axis `axis`.
fn rewrite(model: &TypedModel, node: &TypedNode, axis: usize, range: &Range<usize>) -> TractResult<Rewrite> {
    let input0 = shape_of(model, node.inputs[0])?;
    if let Some(conv) = node.op_as::<Conv>() {
        ensure!(conv.q_params.is_none(), "quantized convolutions are not split");
        let shape = conv.pool_spec.data_format.shape(input0.clone())?;
        let kernel_shape = shape_of(model, node.inputs[1])?;
        let mut needs = vec![Need::Full; node.inputs.len()];
        if axis == shape.c_axis() {
            let o_axis = conv.kernel_fmt.o_axis(&kernel_shape);
            let cout = conv.pool_spec.output_channels;
            let mut conv = conv.clone();
            if conv.group > 1 {
                let per_group = cout / conv.group;
                ensure!(range.start % per_group == 0 && range.end % per_group == 0, "grouped convolution split off group boundaries (groups of {per_group} channels)");
                let (ga, gb) = (range.start / per_group, range.end / per_group);
                let cin_per_group = conv.pool_spec.input_channels / conv.group;
                needs[0] = Need::Range(shape.c_axis(), ga * cin_per_group..gb * cin_per_group);
                conv.group = gb - ga;
                conv.pool_spec.input_channels = (gb - ga) * cin_per_group;
            }
            conv.pool_spec.output_channels = range.len();
            needs[1] = Need::Range(o_axis, range.clone());
            if node.inputs.len() > 2 && shape_of(model, node.inputs[2])?.iter().product::<usize>() == cout {
                let bias_rank = shape_of(model, node.inputs[2])?.len();
                needs[2] = Need::Range(bias_rank.saturating_sub(1), range.clone());
            }
            return Ok(Rewrite::With(Box::new(conv), needs));
        }
        if shape.hw_axes().contains(&axis) {
            let (spec, need) = spatial_pool(&conv.pool_spec, &input0, axis, range)?;
            needs[0] = need;
            return Ok(Rewrite::With(Box::new(Conv { pool_spec: spec, ..conv.clone() }), needs));
        }
        if Some(axis) == shape.n_axis() {
            needs[0] = Need::Range(axis, range.clone());
            return Ok(Rewrite::Same(needs));
        }
        bail!("axis {axis} of a convolution");
    }
    let pool_spec = node.op_as::<MaxPool>().map(|p| &p.pool_spec).or_else(|| node.op_as::<SumPool>().map(|p| &p.pool_spec));
    if let Some(spec) = pool_spec {
        let shape = spec.data_format.shape(input0.clone())?;
        let new_spec = if shape.hw_axes().contains(&axis) {
            spatial_pool(spec, &input0, axis, range)?
        } else if axis == shape.c_axis() || Some(axis) == shape.n_axis() {
            let mut spec = spec.clone();
            if axis == shape.c_axis() {
                spec.input_channels = range.len();
                spec.output_channels = range.len();
            }
            (spec, Need::Range(axis, range.clone()))
        } else {
            bail!("axis {axis} of a pooling");
        };
        let op: Box<dyn TypedOp> = if let Some(p) = node.op_as::<MaxPool>() {
            ensure!(p.with_index_outputs.is_none(), "max pooling with indices is not split");
            Box::new(MaxPool { pool_spec: new_spec.0, ..p.clone() })
        } else {
            let p = node.op_as::<SumPool>().unwrap();
            Box::new(SumPool { pool_spec: new_spec.0, ..p.clone() })
        };
        return Ok(Rewrite::With(op, vec![new_spec.1]));
    }
    // A strided 1x1 convolution (a residual block's downsampling shortcut) declutters into a
    // Downsample and a matrix product: output rows [a, b) read every stride-th input row from a's.
    if let Some(down) = node.op_as::<Downsample>() {
        if down.axis != axis {
            return Ok(Rewrite::Same(vec![Need::Range(axis, range.clone())]));
        }
        ensure!(down.stride > 0, "a reversing Downsample is not split along its axis");
        let stride = down.stride as usize;
        let start = range.start * stride + down.modulo;
        let end = (range.end - 1) * stride + down.modulo + 1;
        return Ok(Rewrite::With(Box::new(Downsample { axis, stride: down.stride, modulo: 0 }), vec![Need::Range(axis, start..end)]));
    }
    // Ops that only carry the axis through: slice whichever inputs carry it.
    let carries = node.op_is::<EinSum>() && node.op_as::<EinSum>().unwrap().q_params.is_none()
        || node.op_as::<TypedConcat>().map(|c| c.axis != axis).unwrap_or(false)
        || node.op_is::<TypedBinOp>()
        || node.op_is::<ElementWiseOp>()
        || node.op_is::<Cast>()
        // Moving, adding, removing or reshaping other axes (an attention's heads), and picking the
        // query, key or value out of a packed projection (the axes mapping tells which input axis
        // an output axis comes from: the data's, or the indices').
        || node.op_is::<AxisOp>()
        || node.op_is::<Gather>()
        || node.op_as::<Softmax>().map(|s| !s.axes.contains(&axis)).unwrap_or(false)
        || node.op_as::<Reduce>().map(|r| !r.axes.contains(&axis)).unwrap_or(false)
        || node.op_as::<RmsNorm>().map(|r| r.axis != axis).unwrap_or(false);
    ensure!(carries, "{} is not split along axis {axis}", node.op.name());
    let mapping = model.node_axes_mapping(node.id)?;
    let out_dim = node.outputs[0].fact.shape[axis].to_usize()?;
    let repr = mapping.axis((InOut::Out(0), axis))?;
    let mut needs = vec![];
    for (slot, input) in node.inputs.iter().enumerate() {
        let positions = &repr.inputs[slot];
        let need = match positions.as_slice() {
            [] => Need::Full,
            [p] => {
                let dim = shape_of(model, *input)?[*p];
                if dim == out_dim {
                    Need::Range(*p, range.clone())
                } else {
                    ensure!(dim == 1, "input {slot} has {dim} along the split axis, output {out_dim}");
                    Need::Full
                }
            }
            _ => bail!("axis appears twice in input {slot}"),
        };
        needs.push(need);
    }
    Ok(Rewrite::Same(needs))
}

/// What one part computes of each decluttered outlet it wires: `None` for the whole tensor, else the
/// axis and range.
type Wired = HashMap<(OutletId, Option<(usize, usize, usize)>), OutletId>;

/// Builds the decluttered model of one part: the chain's inputs, full, in; `range` of `axis` out.
fn build_part(graph: &Graph, chain: &Chain, axis: usize, range: Range<usize>) -> TractResult<TypedModel> {
    Ok(build_part_wired(graph, chain, axis, range)?.0)
}

/// [`build_part`], with what the part computes of each outlet.
///
/// Where a part needs one op's output over several ranges (a residual block's input: with the halo
/// its convolutions read, and without it for the add; an attention's projection: every token for
/// the keys and values, the part's own for the queries), it computes the smallest range holding
/// them all once and slices the others from it, instead of computing each again with everything
/// before it. A first build finds such outputs; the next computes their hulls (repeated while the
/// hulls ask more of the ops before them).
fn build_part_wired(graph: &Graph, chain: &Chain, axis: usize, range: Range<usize>) -> TractResult<(TypedModel, Wired)> {
    let inputs: HashSet<OutletId> = chain.inputs.iter().map(|(d, _)| *d).collect();
    let mut hulls: Hulls = HashMap::new();
    for _ in 0..16 {
        let (part, wired) = build_part_once(graph, chain, axis, range.clone(), &hulls)?;
        let mut needs: HashMap<OutletId, Vec<Option<(usize, usize, usize)>>> = HashMap::new();
        for (outlet, need) in wired.keys() {
            if !inputs.contains(outlet) && chain.nodes.contains(&outlet.node) {
                needs.entry(*outlet).or_default().push(*need);
            }
        }
        let mut changed = false;
        for (outlet, mut list) in needs {
            if let Some(h) = hulls.get(&outlet) {
                list.push(*h);
            }
            list.sort();
            list.dedup();
            if list.len() < 2 {
                continue;
            }
            let hull = list.iter().try_fold(None::<(usize, usize, usize)>, |acc, n| match (acc, n) {
                (_, None) => Err(()),
                (None, Some(x)) => Ok(Some(*x)),
                (Some((a, s, e)), Some((b, t, f))) if a == *b => Ok(Some((a, s.min(*t), e.max(*f)))),
                _ => Err(()),
            });
            let hull = hull.ok().flatten();
            if hulls.get(&outlet) != Some(&hull) {
                hulls.insert(outlet, hull);
                changed = true;
            }
        }
        if !changed {
            return Ok((part, wired));
        }
    }
    bail!("the ranges a part needs of its ops do not settle")
}

/// Per outlet needed over several ranges: the one range computed (`None`: all of it).
type Hulls = HashMap<OutletId, Option<(usize, usize, usize)>>;

fn build_part_once(graph: &Graph, chain: &Chain, axis: usize, range: Range<usize>, hulls: &Hulls) -> TractResult<(TypedModel, Wired)> {
    let typed = &graph.typed;
    let mut part = TypedModel::default();
    let mut sources = HashMap::new();
    for (decl, _) in &chain.inputs {
        let fact = typed.outlet_fact(*decl)?.without_value();
        let name = typed.nodes[decl.node].name.clone();
        let source = match chain.reshaped.get(decl) {
            None => part.add_source(name, fact)?,
            Some(held) => {
                let dims = |s: &[usize]| s.iter().map(|&d| TDim::from(d)).collect::<TVec<_>>();
                let held_fact = TypedFact::dt_shape(fact.datum_type, held.as_slice());
                let source = part.add_source(name.clone(), held_fact)?;
                let to = fact.shape.as_concrete().context("symbolic")?.to_vec();
                part.wire_node(format!("{name}.as_decluttered"), AxisOp::Reshape(0, dims(held), dims(&to)), &[source])?[0]
            }
        };
        sources.insert(*decl, source);
    }
    let mut memo: Wired = HashMap::new();
    let out = wire(typed, chain, &mut part, &sources, hulls, &mut memo, chain.output, Some((axis, range.clone())))?;
    let got = part.outlet_fact(out)?.shape.as_concrete().context("symbolic")?.to_vec();
    let mut want = shape_of(typed, chain.output)?;
    want[axis] = range.len();
    ensure!(got == want, "part computes shape {got:?}, expected {want:?}");
    part.select_output_outlets(&[out])?;
    Ok((part, memo))
}

#[allow(clippy::too_many_arguments)]
fn wire(
    typed: &TypedModel,
    chain: &Chain,
    part: &mut TypedModel,
    sources: &HashMap<OutletId, OutletId>,
    hulls: &Hulls,
    memo: &mut Wired,
    outlet: OutletId,
    need: Option<(usize, Range<usize>)>,
) -> TractResult<OutletId> {
    let shape = shape_of(typed, outlet)?;
    if let Some((a, _)) = &need {
        ensure!(*a < shape.len(), "{} has no axis {a}", typed.nodes[outlet.node].name);
    }
    // A range covering the whole axis is no slice at all.
    let need = need.filter(|(a, r)| !(r.start == 0 && r.end == shape[*a]));
    let key = (outlet, need.as_ref().map(|(a, r)| (*a, r.start, r.end)));
    if let Some(o) = memo.get(&key) {
        return Ok(*o);
    }
    let node = &typed.nodes[outlet.node];
    let suffix = need.as_ref().map(|(a, r)| format!(".slice{a}_{}_{}", r.start, r.end)).unwrap_or_default();
    let wired = if let Some(&source) = sources.get(&outlet) {
        match &need {
            None => source,
            Some((a, r)) => part.wire_node(format!("{}{suffix}", node.name), Slice::new(*a, r.start, r.end), &[source])?[0],
        }
    } else if let Some(konst) = typed.outlet_fact(outlet)?.konst.clone().filter(|_| node.op.name() == "Const") {
        // Whole weights are shared with the graph, not copied: a region cut by rows takes all of
        // every convolution's (resnet18's last ones hold 9 MB each).
        let t = match &need {
            None => konst,
            Some((a, r)) => konst.slice(*a, r.start, r.end)?.into_arc_tensor(),
        };
        part.add_const(format!("{}{suffix}", node.name), t)?
    } else if let Some(hull) = hulls.get(&outlet).filter(|h| **h != key.1) {
        // Sliced from the one range of this output the part computes.
        let (a, r) = need.as_ref().context("a whole output with a hull")?;
        let computed = wire(typed, chain, part, sources, hulls, memo, outlet, hull.map(|(a, s, e)| (a, s..e)))?;
        let offset = hull.map(|(_, s, _)| s).unwrap_or(0);
        part.wire_node(format!("{}{suffix}", node.name), Slice::new(*a, r.start - offset, r.end - offset), &[computed])?[0]
    } else {
        ensure!(chain.nodes.contains(&node.id), "node {} is outside the chain", node.name);
        ensure!(outlet.slot == 0 && node.outputs.len() == 1, "multi-output node {}", node.name);
        let (op, needs): (Box<dyn TypedOp>, Vec<Need>) = match &need {
            None => (node.op.clone(), vec![Need::Full; node.inputs.len()]),
            Some((a, r)) => match rewrite(typed, node, *a, r).with_context(|| format!("splitting {}", node.name))? {
                Rewrite::Same(needs) => (node.op.clone(), needs),
                Rewrite::With(op, needs) => (op, needs),
            },
        };
        let mut inputs = tvec![];
        for (input, n) in node.inputs.iter().zip(needs) {
            let n = match n {
                Need::Full => None,
                Need::Range(a, r) => Some((a, r)),
            };
            inputs.push(wire(typed, chain, part, sources, hulls, memo, *input, n)?);
        }
        part.wire_node(format!("{}{suffix}", node.name), op, &inputs)?[0]
    };
    memo.insert(key, wired);
    Ok(wired)
}

impl Graph {
    /// Splits the op chain `ops` (an op, or a short chain such as a convolution and its activation, each
    /// feeding only the next) along output `axis` at `bounds` (increasing, from 0 to the axis length).
    pub fn split(&self, ops: &[OpId], axis: usize, bounds: &[usize]) -> Result<Split> {
        let chain = chain_of(self, ops)?;
        let name = self.ops[*ops.last().unwrap()].name.clone();
        let fail = |reason: String| GraphError::InvalidSplit { op: name.clone(), reason };
        let dim = *shape_of(&self.typed, chain.output).map_err(|e| fail(chain_str(&e)))?.get(axis).ok_or_else(|| fail(format!("no axis {axis}")))?;
        if bounds.len() < 2 || bounds[0] != 0 || *bounds.last().unwrap() != dim || bounds.windows(2).any(|w| w[0] >= w[1]) {
            return Err(fail(format!("bounds {bounds:?} must increase from 0 to {dim}")));
        }
        let mut parts = vec![];
        for w in bounds.windows(2) {
            let (model, wired) = build_part_wired(self, &chain, axis, w[0]..w[1]).map_err(|e| fail(chain_str(&e)))?;
            let shares = shares_of(self, ops, axis, &wired).map_err(|e| fail(chain_str(&e)))?;
            let model = model.into_optimized().map_err(|e| fail(chain_str(&e)))?;
            parts.push(Part { range: w[0]..w[1], model, shares });
        }
        let output = self.ops[*ops.last().unwrap()].outputs[0].value;
        Ok(Split { ops: ops.to_vec(), axis, inputs: chain.inputs.iter().map(|(_, v)| *v).collect(), output, parts })
    }

    /// The axis a region ending at `op` is cut along, and its length: the rows of the op's output as
    /// the parts compute it (the decluttered graph's layout: `[C, H, W]` where tract's optimiser may
    /// hold `[C, H*W]`), which is the second axis from the end (a CNN's rows, a transformer's tokens).
    /// `None` for an output of rank below 2.
    pub fn region_axis(&self, op: OpId) -> Option<(usize, usize)> {
        self.region_axes(op).into_iter().next()
    }

    /// The axes a region ending at `op` may be cut along, with their lengths: the rows
    /// ([`Graph::region_axis`]) and, for an output of rank 3 or more, the last axis too: an image's
    /// columns (a transformer's features, which its layer norms keep from being cut). A text line
    /// (an OCR model's 48x320 input) ends with few rows and many columns: cut by rows, the halos of
    /// its windows cover most of each part. Measured with `bench_region`: ppocrv4_rec's regions at 3
    /// rows ran 1.29-1.31x faster in two halves than on one core cut by rows, 1.76-1.87x by columns.
    pub fn region_axes(&self, op: OpId) -> Vec<(usize, usize)> {
        let Some(shape) = decl_output(self, op).and_then(|o| shape_of(&self.typed, o).ok()) else { return vec![] };
        let rank = shape.len();
        let mut axes = vec![];
        if rank >= 2 {
            axes.push((rank - 2, shape[rank - 2]));
        }
        if rank >= 3 {
            axes.push((rank - 1, shape[rank - 1]));
        }
        axes
    }

    /// What the part computing `range` of output `axis` computes of each op of the chain `ops`: per
    /// op, in chain order, the axis of its output that the part cuts and the share of that axis it
    /// computes (1 where it needs the whole output; the axis is then `axis`).
    ///
    /// A long chain cut by rows (a region of a network) computes more than its share of the early
    /// ops: every window reads a halo of rows beyond the part's own, and the halos add up layer after
    /// layer. The planner predicts a region's parts from these shares, and the executor reports them
    /// with each part's time, so the in-plan calibration learns from what the part really computed.
    /// Axes are those of the decluttered graph, as the ops' kernel parameters are.
    pub fn part_shares(&self, ops: &[OpId], axis: usize, range: Range<usize>) -> Result<Vec<(usize, f64)>> {
        let chain = chain_of(self, ops)?;
        let name = &self.ops[*ops.last().unwrap()].name;
        let fail = |e: TractError| GraphError::InvalidSplit { op: name.clone(), reason: chain_str(&e) };
        let (_, wired) = build_part_wired(self, &chain, axis, range).map_err(fail)?;
        shares_of(self, ops, axis, &wired).map_err(fail)
    }

    /// The chain `ops` as one unsplit model with the same inputs as [`Graph::split`]'s parts: the
    /// reference a split is compared with.
    pub fn chain_model(&self, ops: &[OpId]) -> Result<TypedModel> {
        let chain = chain_of(self, ops)?;
        let name = &self.ops[*ops.last().unwrap()].name;
        let dim = shape_of(&self.typed, chain.output).map(|s| s[0]).unwrap_or(1);
        build_part(self, &chain, 0, 0..dim)
            .and_then(|m| m.into_optimized())
            .map_err(|e| GraphError::InvalidSplit { op: name.clone(), reason: chain_str(&e) })
    }
}

/// Per op of the chain `ops`, the axis a part cut and the share of it the part computed, from what
/// the part's build wired ([`Graph::part_shares`]).
fn shares_of(graph: &Graph, ops: &[OpId], axis: usize, wired: &Wired) -> TractResult<Vec<(usize, f64)>> {
    ops.iter()
        .map(|&o| {
            let Some(out) = decl_output(graph, o) else { return Ok((axis, 1.0)) };
            let shape = shape_of(&graph.typed, out)?;
            // Ranges needed of one output are slices of the one computed, which holds them all.
            let (mut cut, mut share) = (axis, 0.0f64);
            for (_, need) in wired.keys().filter(|(o, _)| *o == out) {
                let this = match need {
                    None => 1.0,
                    Some((a, start, end)) => (end - start) as f64 / shape[*a].max(1) as f64,
                };
                if this > share {
                    share = this;
                    cut = need.map(|(a, _, _)| a).unwrap_or(axis);
                }
            }
            // An op no path of the part reaches computes nothing of it.
            Ok((cut, share.min(1.0)))
        })
        .collect()
}

fn chain_str(e: &TractError) -> String {
    chain(e)
}

/// Fills in each op's covered decluttered nodes, its cost and its split axes.
pub(crate) fn annotate(graph: &mut Graph, op_origins: &[Vec<usize>]) {
    let typed = &graph.typed;
    let origin_op: HashMap<usize, OpId> =
        op_origins.iter().enumerate().flat_map(|(op, os)| os.iter().map(move |&o| (o, op))).collect();
    for (op, origins) in op_origins.iter().enumerate() {
        // Walk back from the origins through operators that no other op claims (tract fused them here).
        let mut covered: Vec<usize> = vec![];
        let mut stack: Vec<usize> = origins.clone();
        while let Some(n) = stack.pop() {
            if covered.contains(&n) {
                continue;
            }
            covered.push(n);
            for i in &typed.nodes[n].inputs {
                let p = &typed.nodes[i.node];
                let leaf = matches!(&*p.op.name(), "Source" | "Const");
                let claimed = origin_op.get(&i.node).map(|&o| o != op).unwrap_or(false);
                if !leaf && !claimed {
                    stack.push(i.node);
                }
            }
        }
        covered.sort();
        let mut c = OpCost::default();
        for &n in &covered {
            let (macs, flops) = cost::arithmetic(typed, n);
            c.macs += macs;
            c.flops += flops;
            c.weight_bytes += cost::weight_bytes(typed, n);
        }
        c.bytes_in = graph.ops[op].inputs.iter().map(|e| e.bytes).sum();
        c.bytes_out = graph.ops[op].outputs.iter().map(|e| e.bytes).sum();
        // The kind is that of the heaviest operator the op computes: a matrix product tract fused into
        // the following Add is still a matrix product.
        if let Some(&heaviest) = covered.iter().max_by_key(|&&n| (cost::arithmetic(typed, n).1, n)) {
            graph.ops[op].kind = cost::kind_of(typed, heaviest);
            graph.ops[op].features = cost::features(typed, heaviest);
        }
        graph.ops[op].cost = c;
        graph.ops[op].decluttered = covered;
    }
    // Split axes: try a two-way split of each candidate axis through the rewrite rules, without
    // optimising anything.
    for op in 0..graph.ops.len() {
        let axes = match graph.ops[op].outputs.as_slice() {
            [out] if graph.ops[op].decluttered.len() > 0 => {
                let rank = out.shape.len();
                (0..rank).filter(|&a| out.shape[a] > 1).filter(|&a| !column_of_rows(&graph.ops[op], a)).filter(|&a| splittable(graph, op, a)).collect()
            }
            _ => vec![],
        };
        graph.ops[op].split_axes = axes;
    }
}

/// Whether `axis` is the column axis of a convolution or pooling whose rows could be cut instead.
///
/// Rows are the better cut: a part of whole rows reads and writes contiguous blocks, while a part of
/// columns runs tract's kernels on short, strided rows. Measured with `bench_split` (tandem-exec's
/// examples) on mobilenet_v2: halves of its depthwise convolutions cut by columns ran 1.1-4.9x slower
/// than halves cut by rows or channels (2281 against 648 µs, the whole op 1234 µs), so a plan could
/// only lose by them. Columns stay a split axis where there is one row (a text recogniser's last
/// layers).
fn column_of_rows(op: &crate::graph::Op, axis: usize) -> bool {
    let (Some(rows), Some(&out_h)) = (op.row_axis(), op.features.get("out_h")) else { return false };
    axis == rows + 1 && out_h > 1
}

fn splittable(graph: &Graph, op: OpId, axis: usize) -> bool {
    let Ok(chain) = chain_of(graph, &[op]) else { return false };
    let dim = graph.ops[op].outputs[0].shape[axis];
    // The axis must mean the same in the parts' layout (the decluttered graph's) as in the optimised
    // graph's, where the op's split axes are numbered: the same dimensions up to it (an attention's
    // heads may be one axis in one and two in the other).
    let Ok(parts_layout) = shape_of(&graph.typed, chain.output) else { return false };
    let optimised = &graph.ops[op].outputs[0].shape;
    if parts_layout.len() <= axis || parts_layout[..=axis] != optimised[..=axis] {
        return false;
    }
    build_part(graph, &chain, axis, 0..dim / 2).is_ok() && build_part(graph, &chain, axis, dim / 2..dim).is_ok()
}

#[cfg(test)]
mod tests {
    use super::merges_axes;

    #[test]
    fn a_held_shape_merges_neighbouring_axes_in_order() {
        assert!(merges_axes(&[1, 32, 12, 12], &[1, 32, 144]));
        assert!(merges_axes(&[1, 32, 12, 12], &[32, 144]));
        assert!(merges_axes(&[1, 64, 128], &[64, 128]));
        assert!(merges_axes(&[2, 3, 4], &[24]));
        // Same elements, another order or grouping: not a plain reshape.
        assert!(!merges_axes(&[1, 32, 12, 12], &[144, 32]));
        assert!(!merges_axes(&[6, 4], &[4, 6]));
        assert!(!merges_axes(&[2, 3, 4], &[3, 8]));
        assert!(!merges_axes(&[2, 3], &[2, 3, 5]));
    }
}
