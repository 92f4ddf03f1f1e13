//! Building a [`Problem`] from a loaded graph and a device's fitted cost models.
//!
//! Each op's cost on each processor is the cost model's in-context prediction (`None` where the
//! processor cannot run it: recorded as unsupported, or unknown to the models). Heavy ops that
//! tandem-graph can split get a split option along the axis the profiler measures (output channels of
//! a convolution, else the last splittable axis), with cut points on the kernels' block size (16
//! channels) and the cost of a part of every share from the split-part model. A split op followed by
//! cheap element-wise ops (a convolution and its activation, or the residual add after it) also gets a
//! chain option, so the activation runs on the parts before they are joined. Transfer and stage costs
//! are read off the fitted models. A split part's cost is the one *inside a running plan*: the fitted
//! in-plan calibration (learned from the parts of stored plan runs; the identity before any) is
//! applied on top.

use std::collections::BTreeMap;

use tandem_cost::{CostModels, OpFeatures, PartSpec, PlanPartSample};
use tandem_graph::{Graph, Op};

use crate::plan::ModelRef;
use crate::problem::{OpInput, OpNode, ProcessorSpec, Problem, SplitOption, StageCost, TransferCost};

/// Which splits to offer.
#[derive(Debug, Clone, PartialEq)]
pub struct BuildOptions {
    /// Ops predicted faster than this on every processor are not offered splits (a part runs as a
    /// model of its own, whose fixed cost small ops do not repay).
    pub min_split_us: f64,
    /// At most this many cut points per split.
    pub max_cuts: usize,
    /// Cut points on output channels (and on the output features of ops with weights) are multiples
    /// of this: tract packs weights in blocks of 16 or 32 output channels.
    pub align: usize,
    /// Longest chain split as one (a split op and the cheap element-wise ops after it); 1 for none.
    pub max_chain: usize,
    /// Regions (runs of ops ending at a cut point of the graph, cut by rows or columns) reach at
    /// most this many cut points past their start; 0 for no regions.
    pub max_region: usize,
}

impl Default for BuildOptions {
    fn default() -> Self {
        BuildOptions { min_split_us: 40.0, max_cuts: 7, align: 16, max_chain: 3, max_region: 8 }
    }
}

/// What a plan made for this graph refers to: name, content hash, the fixed input shapes (as the
/// `models` table stores them) and the op count.
pub fn model_ref(graph: &Graph) -> ModelRef {
    let shapes: BTreeMap<&str, &[usize]> = graph.inputs.iter().map(|e| (e.name.as_str(), e.shape.as_slice())).collect();
    ModelRef {
        name: graph.name.clone(),
        content_hash: graph.content_hash.clone(),
        input_shapes: serde_json::to_string(&shapes).unwrap_or_default(),
        op_count: graph.ops.len(),
    }
}

/// The cost models' view of an op.
pub fn features(op: &Op) -> OpFeatures {
    let c = &op.cost;
    OpFeatures::new(op.kind.clone(), c.macs, c.flops, c.bytes_in, c.bytes_out, c.weight_bytes).with_params(&op.features)
}

fn finite(x: f64) -> Option<f64> {
    (x.is_finite() && x >= 0.0).then_some(x)
}

/// The planning problem for `graph` on `processors`, with costs from `models`. `unsupported` lists
/// (op, processor id) pairs that cannot run.
pub fn problem(graph: &Graph, models: &CostModels, processors: &[ProcessorSpec], unsupported: &[(usize, String)], options: &BuildOptions) -> Problem {
    let np = processors.len();
    let ids: Vec<&str> = processors.iter().map(|p| p.id.as_str()).collect();
    // A processor the models cannot time is unusable.
    let known: Vec<bool> = ids.iter().map(|p| models.stage_us(p, 0.0, 0).is_finite()).collect();
    let stage: Vec<StageCost> = ids
        .iter()
        .zip(&known)
        .map(|(p, &k)| {
            if !k {
                return StageCost::default();
            }
            let fixed = models.stage_us(p, 0.0, 0);
            StageCost {
                fixed_us: fixed,
                factor: ((models.stage_us(p, 1000.0, 0) - fixed) / 1000.0).max(0.0),
                per_op_us: (models.stage_us(p, 0.0, 1) - fixed).max(0.0),
            }
        })
        .collect();
    let transfer: Vec<Vec<TransferCost>> = ids
        .iter()
        .map(|src| {
            ids.iter()
                .map(|dst| {
                    if src == dst {
                        return TransferCost { fixed_us: 0.0, per_byte_us: 0.0 };
                    }
                    let fixed = models.predict_transfer(src, dst, 0.0);
                    let per_byte = (models.predict_transfer(src, dst, 1e6) - fixed) / 1e6;
                    TransferCost { fixed_us: finite(fixed).unwrap_or(0.0), per_byte_us: finite(per_byte).unwrap_or(0.0) }
                })
                .collect()
        })
        .collect();
    let runs = |op: usize, p: usize| known[p] && !unsupported.iter().any(|(o, q)| *o == op && q == ids[p]);
    let outputs: Vec<_> = graph.outputs.iter().map(|e| e.value).collect();
    let is_output = |op: &Op| op.outputs.iter().any(|e| outputs.contains(&e.value));
    let mut ops: Vec<OpNode> = graph
        .ops
        .iter()
        .map(|op| {
            let f = features(op);
            OpNode {
                name: op.name.clone(),
                kind: op.kind.clone(),
                inputs: op.inputs.iter().map(|e| OpInput { from: e.from, bytes: e.bytes }).collect(),
                output_bytes: op.outputs.iter().map(|e| e.bytes).sum(),
                is_output: is_output(op),
                cost_us: (0..np).map(|p| if runs(op.id, p) { finite(models.predict_op(ids[p], &f)) } else { None }).collect(),
                weight_bytes: op.cost.weight_bytes,
                splits: vec![],
            }
        })
        .collect();
    for op in &graph.ops {
        let Some((axis, extent, align)) = split_axis(op, options) else { continue };
        let fastest = fastest_us(&ops[op.id]);
        if !fastest.is_finite() || fastest < options.min_split_us {
            continue;
        }
        let fractions = fractions(extent, align, options.max_cuts);
        if fractions.is_empty() {
            continue;
        }
        let mut chain = vec![op.id];
        while chain.len() < options.max_chain {
            match next_in_chain(graph, *chain.last().unwrap(), axis, &is_output) {
                Some(w) => chain.push(w),
                None => break,
            }
        }
        let lengths = if chain.len() > 1 { vec![1, chain.len()] } else { vec![1] };
        for len in lengths {
            let chain = &chain[..len];
            let last = *chain.last().unwrap();
            let part_us = (0..np)
                .map(|p| {
                    fractions
                        .iter()
                        .map(|&share| {
                            if !chain.iter().all(|&o| runs(o, p)) {
                                return None;
                            }
                            let tail: Vec<OpFeatures> = chain[1..].iter().map(|&o| features(&graph.ops[o]).part(axis, 0.0, share)).collect();
                            let alone = models.predict_chain_part(ids[p], &features(&graph.ops[chain[0]]), PartSpec { axis, start: 0.0, end: share }, &tail);
                            finite(models.plan_part_us(ids[p], alone, chain.len()))
                        })
                        .collect()
                })
                .collect();
            ops[last].splits.push(SplitOption {
                chain: chain.to_vec(),
                axis,
                extent,
                align,
                fractions: fractions.clone(),
                part_us,
                output_bytes: graph.ops[last].outputs.iter().map(|e| e.bytes).sum(),
            });
        }
    }
    if options.max_region > 0 {
        offer_regions(graph, models, &ids, &runs, &mut ops, options);
    }
    let join = ids
        .iter()
        .map(|p| {
            let fixed = models.predict_join(p, 0.0);
            let per_byte = (models.predict_join(p, 1e6) - fixed) / 1e6;
            TransferCost { fixed_us: finite(fixed).unwrap_or(0.0), per_byte_us: finite(per_byte).unwrap_or(0.0) }
        })
        .collect();
    Problem { processors: processors.to_vec(), ops, transfer, stage, join }
}

/// Cut points per region: its parts cover a quarter, a half or three quarters of the rows.
const REGION_CUTS: usize = 3;

/// Offers a split option for each region: the ops from one cut point to a later one (at most
/// [`BuildOptions::max_region`] cut points away), cut by the rows of the last op's output or by an
/// image's columns ([`Graph::region_axes`]); and the same region from after an op its parts would
/// each compute whole, where that is a [`Graph::region_bounds`] place.
///
/// Why regions: a split op is joined before the next op can start, and every join copies the output
/// and hands it to both cores. A region's parts carry their rows through every op of it (each
/// reading the halo of rows its windows need), so the cores join once per region. Measured with
/// `bench_region` (tandem-exec's examples): both halves of squeezenet1_1's regions at once took 1.68x
/// less time than the regions on one core, where tract's two threads took 1.13x less.
///
/// A part's cost is its ops' predictions for what it really computes of each (the shares
/// [`Graph::part_shares`] gives, halos included), through the in-plan calibration. Only the region's
/// first op is predicted as a profiled part; the others in context, as a chain's tail is.
fn offer_regions(graph: &Graph, models: &CostModels, ids: &[&str], runs: &dyn Fn(usize, usize) -> bool, ops: &mut [OpNode], options: &BuildOptions) {
    // A region ends where one tensor is all that leaves (a cut point) and starts at a cut point.
    let cuts = graph.cut_points();
    let ends: Vec<usize> = cuts.iter().copied().chain([graph.ops.len()]).collect();
    let bounds = graph.region_bounds();
    let fastest: Vec<f64> = ops.iter().map(fastest_us).collect();
    for start in std::iter::once(0).chain(cuts) {
        // Per kind of axis (rows, columns): whether a region from this start failed to be cut along it.
        let mut failed = [false; 2];
        for &end in ends.iter().filter(|&&e| e > start).take(options.max_region) {
            if !graph.is_region(start, end) {
                continue;
            }
            for (kind, (axis, extent)) in graph.region_axes(end - 1).into_iter().enumerate() {
                if failed[kind] {
                    continue;
                }
                let Ok(offered) = region_option(graph, models, ids, runs, ops, options, start..end, axis, extent) else {
                    // The region holds an op that cannot be cut along this axis; one reaching
                    // further holds it too, so longer ones from this start are not tried.
                    failed[kind] = true;
                    continue;
                };
                let Some((option, shares)) = offered else { continue };
                // Where every part computes an op worth splitting on its own whole (a transformer
                // layer's Q/K/V projection: each part's queries need every token's keys and
                // values), the region is also offered from the op after it, where that op's
                // output and the residual beside it cross: the op split on its own is joined
                // once, not computed by every part.
                let whole = shares.iter().flat_map(|s| s.iter().zip(start..end).filter(|((_, share), _)| *share >= 1.0).map(|(_, o)| o));
                let later = whole.filter(|&o| fastest[o] >= options.min_split_us).max().map(|o| o + 1);
                ops[end - 1].splits.push(option);
                if let Some(later) = later.filter(|&l| bounds.contains(&l) && graph.is_region(l, end)) {
                    if let Ok(Some((option, _))) = region_option(graph, models, ids, runs, ops, options, later..end, axis, extent) {
                        ops[end - 1].splits.push(option);
                    }
                }
            }
        }
    }
}

/// The split option of the ops `range` along `axis`, with the shares of each op its parts compute
/// (one list per fraction): `None` where it is not worth offering (too short, too cheap, already
/// offered), an error where the region cannot be cut along the axis.
#[allow(clippy::too_many_arguments)]
fn region_option(
    graph: &Graph,
    models: &CostModels,
    ids: &[&str],
    runs: &dyn Fn(usize, usize) -> bool,
    ops: &[OpNode],
    options: &BuildOptions,
    range: std::ops::Range<usize>,
    axis: usize,
    extent: usize,
) -> Result<Option<(SplitOption, Vec<Vec<(usize, f64)>>)>, tandem_graph::GraphError> {
    let region: Vec<usize> = range.collect();
    let region = region.as_slice();
    let last = region[region.len() - 1];
    if extent < 4 || ops[last].splits.iter().any(|o| o.chain == region && o.axis == axis) {
        return Ok(None);
    }
    let fastest = (0..ids.len())
        .filter_map(|p| region.iter().map(|&o| ops[o].cost_us[p]).sum::<Option<f64>>())
        .fold(f64::INFINITY, f64::min);
    if !fastest.is_finite() || fastest < 2.0 * options.min_split_us {
        return Ok(None);
    }
    let fractions = fractions(extent, 1, REGION_CUTS);
    let cut = |f: f64| ((f * extent as f64).round() as usize).clamp(1, extent);
    let shares = fractions.iter().map(|&f| graph.part_shares(region, axis, 0..cut(f))).collect::<Result<Vec<_>, _>>()?;
    let region_features: Vec<OpFeatures> = region.iter().map(|&o| features(&graph.ops[o])).collect();
    let part_us = (0..ids.len())
        .map(|p| {
            shares
                .iter()
                .map(|share| {
                    if !region.iter().all(|&o| runs(o, p)) {
                        return None;
                    }
                    let (head, tail) = PlanPartSample::chain_view(&region_features, share)?;
                    let alone = models.predict_chain_part(ids[p], &head.0, head.1, &tail);
                    finite(models.plan_part_us(ids[p], alone, region.len()))
                })
                .collect()
        })
        .collect();
    let option = SplitOption {
        chain: region.to_vec(),
        axis,
        extent,
        align: 1,
        fractions,
        part_us,
        output_bytes: graph.ops[last].outputs.iter().map(|e| e.bytes).sum(),
    };
    Ok(Some((option, shares)))
}

/// The op's predicted time on the processor fastest at it (infinite where none can run it).
fn fastest_us(op: &OpNode) -> f64 {
    op.cost_us.iter().flatten().copied().fold(f64::INFINITY, f64::min)
}

/// The axis a split of `op` cuts (as the profiler measures it: [`Op::split_axis`]), its length and the
/// block size cut points follow.
fn split_axis(op: &Op, options: &BuildOptions) -> Option<(usize, usize, usize)> {
    let [out] = op.outputs.as_slice() else { return None };
    let rank = out.shape.len();
    let axis = op.split_axis()?;
    let extent = *out.shape.get(axis)?;
    let blocked = axis == op.channel_axis() || (op.cost.weight_bytes > 0 && axis + 1 == rank);
    let align = if blocked && extent >= 2 * options.align { options.align } else { 1 };
    (extent >= 2).then_some((axis, extent, align))
}

/// The shares a part may cover: every cut point (a multiple of `align`, at most `max_cuts` of them,
/// spread evenly) seen from either side, increasing.
pub fn fractions(extent: usize, align: usize, max_cuts: usize) -> Vec<f64> {
    let align = align.max(1);
    let slots = (extent - 1) / align;
    let mut cuts: Vec<usize> = if slots <= max_cuts {
        (1..=slots).map(|m| m * align).collect()
    } else {
        (1..=max_cuts).map(|j| ((extent * j) as f64 / (max_cuts + 1) as f64 / align as f64).round() as usize * align).collect()
    };
    cuts.retain(|&c| c > 0 && c < extent);
    let mut shares: Vec<usize> = cuts.iter().flat_map(|&c| [c, extent - c]).collect();
    shares.sort();
    shares.dedup();
    shares.into_iter().map(|c| c as f64 / extent as f64).collect()
}

/// The op after `u` in a chain split along `axis`: `u`'s only consumer, when `u` is not a model output,
/// and the consumer is cheap (no multiply-adds, next to no weights), keeps the output's shape and can
/// be split along the same axis.
fn next_in_chain(graph: &Graph, u: usize, axis: usize, is_output: &dyn Fn(&Op) -> bool) -> Option<usize> {
    let op = &graph.ops[u];
    if is_output(op) || op.outputs.len() != 1 {
        return None;
    }
    let succ = graph.successors(u);
    let &w = succ.iter().next().filter(|_| succ.len() == 1)?;
    let next = &graph.ops[w];
    // An activation's constant (the 0 of a ReLU) counts as weights: a few bytes against its output.
    let cheap = next.cost.macs == 0 && next.cost.weight_bytes * 64 <= next.cost.bytes_out;
    let same = next.outputs.len() == 1 && next.outputs[0].shape == op.outputs[0].shape;
    (cheap && same && next.split_axes.contains(&axis)).then_some(w)
}
