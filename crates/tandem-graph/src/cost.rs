//! Per-op cost features: arithmetic (multiply-adds and floating-point operations) and bytes moved.
//!
//! Counts are made on the decluttered operators an op computes, so a Conv is counted as a convolution
//! whatever kernels tract picks for it. Every op gets an honest non-zero count where it computes anything:
//! pooling counts one operation per window element, normalisation and softmax a handful per element.

use serde::{Deserialize, Serialize};
use tract_onnx::tract_core::internal::*;
use tract_onnx::tract_core::ops::cnn::{Conv, MaxPool, SumPool};
use tract_onnx::tract_core::ops::einsum::EinSum;
use tract_onnx::tract_core::ops::nn::{Reduce, RmsNorm, Softmax};

/// Cost features of one op.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpCost {
    /// Multiply-accumulates (convolutions, matrix products); 0 for other ops.
    pub macs: u64,
    /// Floating-point operations: 2 per multiply-accumulate, plus the honest count of everything else.
    pub flops: u64,
    /// Bytes of the activations it reads (weights excluded).
    pub bytes_in: u64,
    /// Bytes of the activations it writes.
    pub bytes_out: u64,
    /// Bytes of the constant weights it reads.
    pub weight_bytes: u64,
}

fn volume(fact: &TypedFact) -> u64 {
    fact.shape.as_concrete().map(|s| s.iter().product::<usize>() as u64).unwrap_or(0)
}

/// The kind of decluttered node `id`: tract's operator name, refined for grouped and depthwise convolutions.
pub(crate) fn kind_of(model: &TypedModel, id: usize) -> String {
    let node = &model.nodes[id];
    if let Some(conv) = node.op_as::<Conv>() {
        if conv.group > 1 {
            let cin = conv.input_channels();
            return if conv.group == cin { "DepthwiseConv".into() } else { "GroupConv".into() };
        }
        return "Conv".into();
    }
    node.op.name().to_string()
}

/// (multiply-accumulates, floating-point operations) of decluttered node `id`.
pub(crate) fn arithmetic(model: &TypedModel, id: usize) -> (u64, u64) {
    let node = &model.nodes[id];
    let input = |i: usize| model.outlet_fact(node.inputs[i]).map(volume).unwrap_or(0);
    let out = node.outputs.first().map(|o| volume(&o.fact)).unwrap_or(0);
    if let Some(conv) = node.op_as::<Conv>() {
        let kernel: u64 = conv.pool_spec.kernel_shape.iter().product::<usize>() as u64;
        let per_output = (conv.input_channels() / conv.group.max(1)) as u64 * kernel;
        let macs = out * per_output;
        return (macs, 2 * macs + out);
    }
    if let Some(einsum) = node.op_as::<EinSum>() {
        // Every distinct axis is iterated once: the product of all axis sizes is the MAC count.
        let mut macs: u64 = 1;
        for axis in einsum.axes.iter_all_axes() {
            let dim = axis
                .inputs
                .iter()
                .enumerate()
                .find_map(|(slot, pos)| pos.first().map(|&p| (slot, p)))
                .and_then(|(slot, p)| model.outlet_fact(node.inputs[slot]).ok()?.shape[p].to_usize().ok())
                .or_else(|| axis.outputs[0].first().and_then(|&p| node.outputs[0].fact.shape[p].to_usize().ok()))
                .unwrap_or(1);
            macs *= dim as u64;
        }
        return (macs, 2 * macs);
    }
    if let Some(pool) = node.op_as::<MaxPool>() {
        let kernel: u64 = pool.pool_spec.kernel_shape.iter().product::<usize>() as u64;
        return (0, out * kernel);
    }
    if let Some(pool) = node.op_as::<SumPool>() {
        let kernel: u64 = pool.pool_spec.kernel_shape.iter().product::<usize>() as u64;
        return (0, out * kernel + out);
    }
    if node.op_is::<Reduce>() {
        return (0, input(0));
    }
    if node.op_is::<Softmax>() {
        // max, subtract, exp, sum, divide
        return (0, 5 * input(0));
    }
    let name = node.op.name();
    if name.contains("Norm") {
        // mean, variance, normalise, scale and shift
        return (0, 8 * input(0));
    }
    if is_data_movement(&name) {
        return (0, 0);
    }
    // Element-wise and everything else: one operation per output element.
    (0, out)
}

fn is_data_movement(name: &str) -> bool {
    matches!(
        name,
        "AddAxis" | "RmAxis" | "Reshape" | "IntoShape" | "MoveAxis" | "Move" | "Slice" | "Concat" | "TypedConcat"
            | "Gather" | "Pad" | "Identity" | "Cast" | "Downsample" | "MultiBroadcastTo" | "Tile"
    ) || name.starts_with("AxisOp")
}

/// Bytes of the constant inputs of decluttered node `id`.
pub(crate) fn weight_bytes(model: &TypedModel, id: usize) -> u64 {
    model.nodes[id]
        .inputs
        .iter()
        .filter_map(|i| {
            let producer = &model.nodes[i.node];
            (producer.op.name() == "Const").then(|| model.outlet_fact(*i).ok()).flatten()
        })
        .map(|f| volume(f) * f.datum_type.size_of() as u64)
        .sum()
}

/// Kernel and shape parameters of decluttered node `id` (convolutions and pooling), for cost models.
pub(crate) fn features(model: &TypedModel, id: usize) -> std::collections::BTreeMap<String, i64> {
    let node = &model.nodes[id];
    let mut f = std::collections::BTreeMap::new();
    let (spec, group) = if let Some(c) = node.op_as::<Conv>() {
        (&c.pool_spec, c.group)
    } else if let Some(p) = node.op_as::<MaxPool>() {
        (&p.pool_spec, 1)
    } else if let Some(p) = node.op_as::<SumPool>() {
        (&p.pool_spec, 1)
    } else if node.op_is::<EinSum>() {
        carried_axes(model, id, &mut f);
        return f;
    } else if let Some(axes) = reduced_axes_of(node) {
        reduced_axes(model, id, &axes, &mut f);
        return f;
    } else {
        return f;
    };
    for (i, k) in spec.kernel_shape.iter().enumerate().take(2) {
        f.insert(["kernel_h", "kernel_w"][i].to_string(), *k as i64);
        f.insert(["stride_h", "stride_w"][i].to_string(), spec.stride(i) as i64);
    }
    f.insert("group".into(), group as i64);
    f.insert("in_channels".into(), spec.input_channels as i64);
    f.insert("out_channels".into(), spec.output_channels as i64);
    if let Some(shape) = node.outputs[0].fact.shape.as_concrete() {
        if let Ok(s) = spec.data_format.shape(shape.to_vec()) {
            for (i, d) in s.hw_dims().iter().enumerate().take(2) {
                f.insert(["out_h", "out_w"][i].to_string(), *d as i64);
            }
            // Which output axes hold channels and rows: tract drops a batch of 1 from some ops (CHW,
            // channels on axis 0) and not others (NCHW, axis 1), and a split names the axis it cuts.
            f.insert("channel_axis".into(), s.c_axis() as i64);
            f.insert("row_axis".into(), s.h_axis() as i64);
        }
    }
    if let Some(ppm) = valid_taps_ppm(model, id, spec) {
        f.insert("valid_taps_ppm".into(), ppm);
    }
    f
}

/// The share of a convolution's or pool's kernel taps that land inside the input rather than on its
/// padding, in parts per million (1,000,000 when there is no padding). tract's depthwise kernel skips
/// the taps over padding, so where the output is a few rows tall the work done is well below the
/// multiply-accumulates counted: ppocr_mobile_v2_cls's 5x5 depthwise convolutions over 2 rows read 2 of
/// their 5 kernel rows on every output row. The share is separable: along each spatial axis, the valid
/// taps summed over output positions, over kernel size times output size.
fn valid_taps_ppm(model: &TypedModel, id: usize, spec: &tract_onnx::tract_core::ops::cnn::PoolSpec) -> Option<i64> {
    let node = &model.nodes[id];
    let input = model.outlet_fact(*node.inputs.first()?).ok()?.shape.as_concrete()?.to_vec();
    let output = node.outputs[0].fact.shape.as_concrete()?.to_vec();
    let (ishape, oshape) = (spec.data_format.shape(input).ok()?, spec.data_format.shape(output).ok()?);
    let (ihw, ohw) = (ishape.hw_dims().to_vec(), oshape.hw_dims().to_vec());
    let padding = spec.computed_padding(&ihw);
    let mut share = 1.0f64;
    for (axis, (&out, &dim)) in ohw.iter().zip(&ihw).enumerate() {
        let (kernel, stride, dilation) = (*spec.kernel_shape.get(axis)?, spec.stride(axis), spec.dilation(axis));
        if out == 0 || kernel == 0 {
            return None;
        }
        let before = padding.get(axis)?.pad_before as isize;
        let valid: usize = (0..out)
            .map(|o| (0..kernel).filter(|&k| (0..dim as isize).contains(&((o * stride + k * dilation) as isize - before))).count())
            .sum();
        share *= valid as f64 / (out * kernel) as f64;
    }
    Some((share * 1e6).round() as i64)
}

/// The axes a reduction, softmax or normalisation computes over, for [`reduced_axes`].
fn reduced_axes_of(node: &TypedNode) -> Option<TVec<usize>> {
    if let Some(r) = node.op_as::<Reduce>() {
        Some(r.axes.clone())
    } else if let Some(s) = node.op_as::<Softmax>() {
        Some(s.axes.clone())
    } else {
        node.op_as::<RmsNorm>().map(|n| tvec![n.axis])
    }
}

/// For a reduction, softmax or normalisation: `reduce_len`, the values each output row is computed
/// over (the product of the axes it reduces), and `reduce_inner`, the stride between them (the product
/// of the axes after the last reduced one; 1 when it runs along the innermost axis). tract runs such
/// an op row by row through vector kernels that take whole blocks at aligned addresses, and sends a
/// row's misaligned start and its short tail through a scratch buffer, so the cost follows the rows
/// and their lengths, not only the values: ppocrv4_rec's softmax over `[8, 40, 40]` took 176 µs on one
/// core where one over `[4, 128, 128]`, with 5 times the values, took 100.
fn reduced_axes(model: &TypedModel, id: usize, axes: &[usize], f: &mut std::collections::BTreeMap<String, i64>) {
    let node = &model.nodes[id];
    let Some(shape) = node.inputs.first().and_then(|i| model.outlet_fact(*i).ok()).and_then(|fact| fact.shape.as_concrete().map(|s| s.to_vec())) else { return };
    let Some(&last) = axes.iter().max() else { return };
    if last >= shape.len() {
        return;
    }
    let len: usize = axes.iter().map(|&a| shape[a]).product();
    let inner: usize = shape[last + 1..].iter().product();
    f.insert("reduce_len".into(), len as i64);
    f.insert("reduce_inner".into(), inner as i64);
}

/// For a matrix product: which output axes its constant operand (the weights) carries, and which
/// its activations carry, as bit masks `weight_axes` and `input_axes`. A split along a weights axis
/// reads a slice of the weights and all of the activations, and the reverse along an activations
/// axis; the output's rank alone does not say which is which (`[tokens, features]`, `[channels,
/// pixels]`, `[batch, tokens, features]`).
fn carried_axes(model: &TypedModel, id: usize, f: &mut std::collections::BTreeMap<String, i64>) {
    let node = &model.nodes[id];
    let Ok(mapping) = model.node_axes_mapping(id) else { return };
    let rank = node.outputs[0].fact.rank();
    let (mut weights, mut inputs) = (0i64, 0i64);
    for axis in 0..rank.min(31) {
        let Ok(repr) = mapping.axis((InOut::Out(0), axis)) else { return };
        for (slot, input) in node.inputs.iter().enumerate() {
            if repr.inputs.get(slot).is_none_or(|p| p.is_empty()) {
                continue;
            }
            if model.nodes[input.node].op.name() == "Const" {
                weights |= 1 << axis;
            } else {
                inputs |= 1 << axis;
            }
        }
    }
    f.insert("weight_axes".into(), weights);
    f.insert("input_axes".into(), inputs);
}
