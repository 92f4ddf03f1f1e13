//! What the models compute from an op: the terms of the additive base models, the op families that
//! share one, and the coordinates the neighbour correction measures distance in.

use serde::{Deserialize, Serialize};

use crate::sample::OpFeatures;

/// One term of an additive model: a quantity of work an op does, in its own unit; the model's
/// coefficient is the time per unit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Term {
    /// 1: a fixed cost per run of the op (dispatch, loop setup).
    One,
    /// Multiply-accumulates.
    Macs,
    /// The multiply-accumulates whose taps fall on the input, not on its padding: what a depthwise
    /// kernel, which skips padding, computes. ppocr_mobile_v2_cls's 5x5 depthwise convolutions over 2
    /// output rows compute 40% of the taps counted; predicted on all of them they came to 92 µs
    /// against 52 measured. The multiply-accumulates where the share is unknown.
    ValidMacs,
    /// Floating-point operations.
    Flops,
    /// Activation bytes read.
    BytesIn,
    /// Activation bytes written.
    BytesOut,
    /// Weight bytes read.
    WeightBytes,
    /// Bytes of the matrix product's data operand as the kernel packs it: for a convolution the
    /// im2col matrix (`4 · macs · group / out_channels`), otherwise the activations read.
    PackedBytes,
    /// Output channels: per-channel setup (depthwise convolutions loop over channels).
    Channels,
    /// Output rows (`out_channels · out_h`): per-row setup of a convolution's inner loop.
    Rows,
    /// The packed operand of a channel-poor convolution (at most [`THIN_CHANNELS`] input channels per
    /// group, as in a network's first layer over an RGB image): its im2col gathers rows of a few
    /// values, far slower per byte than the wide rows of later layers. 0 for every other op.
    ThinPacked,
    /// The multiply-adds of a depthwise convolution that strides along its rows' width (`stride_w > 1`,
    /// as in a MobileNet's downsampling layers): tract vectorises a depthwise kernel along the width, so
    /// a horizontal stride takes a slow path, about 1 ns per multiply-add on the 2-core VM tandem is
    /// developed on against a tenth of that at stride 1. 0 for every other op.
    StridedMacs,
    /// The multiply-accumulates of a matrix product whose weights overflow the core's private cache,
    /// weighted by how far: `macs · clamp(log2(weight_bytes / SPILL_FROM_BYTES), 0, SPILL_OCTAVES)`.
    /// The kernel streams the packed weights once per panel of output columns, so once they no longer
    /// stay in the 2 MiB L2 each multiply-add waits on the shared cache: resnet18's 3x3 convolutions of
    /// 115 M multiply-adds took 16 ps per multiply-add with 0.6 MB of weights, 28 with 2.4 MB and 39
    /// with 9.4 MB on one core of the 2-core VM tandem is developed on; every other term grows with
    /// the work or is fixed, and layer3's, measured 3.3 ms, were predicted 1.5 without it. A
    /// log scale because the slowdown grows by steps as more of the weights spill, and saturates once
    /// none of them stays.
    SpilledMacs,
    /// The rows a reduction, softmax or normalisation along its innermost axis runs over (its input's
    /// values over [`KernelParams::reduce_len`](crate::KernelParams)): each row is a pass of its own,
    /// with its setup. 0 for every other op, and where the row is unknown or strided.
    ReducedRows,
    /// The pieces of those rows that tract's vector kernels take through a scratch buffer: a row's
    /// start when it is not on a [`KERNEL_ALIGN`]-value boundary and its tail beyond the last whole
    /// [`KERNEL_BLOCK`] values. Each piece costs a whole block's pass plus the copies, whatever its
    /// length: on one core of the 2-core VM tandem is developed on, a softmax row of 96 values (one
    /// piece) took about 380 ns and one of 128 (none) 195, and rows of 40 (1.5 pieces on average,
    /// their starts aligned every other row) 550 ns. 0 where [`Term::ReducedRows`] is.
    ScratchPieces,
    /// The in-context time another processor's model predicts for the same op (the processor's
    /// reference: the single core of a multi-core processor, see [`crate::CostModels`]): a
    /// multi-threaded run costs the single-threaded time split, plus its synchronisation. Its value
    /// is not a feature of the op, so [`Term::value`] gives 0 and the models supply it.
    Reference,
    /// The square root of [`Term::Reference`], in µs^½: beside it, a time that grows more slowly than
    /// the reference's for small ops. tract's pool leaves a small product on one thread or pays more
    /// to share it than it gains (2 threads took 1.1-1.9x one core's time on EinSums under 50 µs), and
    /// splits a large one nearly in half (0.5-0.65x above 300 µs); `fixed + factor · reference` alone
    /// fitted on all of them took a factor of 1.10, and predicted transformer_enc4_d256's 400 µs
    /// products, measured 250 µs on 2 threads, at 458. Supplied by the models, as the reference is.
    SqrtReference,
}

/// Weights above this size start to spill out of a core's private cache ([`Term::SpilledMacs`]): 1 MiB,
/// half the L2 of the machines tandem is developed on, where the slowdown first shows (2.4 MB of
/// weights ran 1.7x slower per multiply-add than 1.2 MB). A device with another cache shifts where the
/// spill starts by an octave or so; the coefficient, fitted per processor, takes its size.
pub const SPILL_FROM_BYTES: f64 = 1024.0 * 1024.0;

/// Octaves above [`SPILL_FROM_BYTES`] after which [`Term::SpilledMacs`] grows no more: beyond 8 MiB
/// no weight stays in the private cache.
pub const SPILL_OCTAVES: f64 = 3.0;

/// Values of one pass of the reduction kernels ([`Term::ScratchPieces`]): tract's AVX-512 softmax and max
/// kernels take 64 `f32` at a time. Another instruction set has other blocks (32 with AVX2); the count
/// is then approximate and the coefficient, fitted per processor, absorbs its scale.
pub const KERNEL_BLOCK: u64 = 64;

/// The alignment, in values, those kernels need a block to start at (64 bytes of `f32`).
pub const KERNEL_ALIGN: u64 = 16;

/// The rows of a reduction along its innermost axis, and the pieces of them that go through a scratch
/// buffer ([`Term::ReducedRows`], [`Term::ScratchPieces`]); `None` when the op is not one or its row is
/// unknown. Rows are taken to lie back to back from an aligned start: row `i` starts at `i · len`
/// values, aligned for `gcd(len, KERNEL_ALIGN) / KERNEL_ALIGN` of the rows.
fn reduced_rows(f: &OpFeatures) -> Option<(f64, f64)> {
    let (len, inner) = (f.kernel.reduce_len as u64, f.kernel.reduce_inner);
    if len == 0 || inner != 1 {
        return None;
    }
    let rows = f.bytes_in / 4.0 / len as f64;
    let gcd = |mut a: u64, mut b: u64| {
        while b != 0 {
            (a, b) = (b, a % b);
        }
        a
    };
    let misaligned = 1.0 - gcd(len, KERNEL_ALIGN) as f64 / KERNEL_ALIGN as f64;
    // A misaligned row's prefix runs up to the next boundary; what follows it is a tail whenever it
    // is not a whole number of blocks (taken, on average, as the aligned rows' tail).
    let tail = if len % KERNEL_BLOCK != 0 || misaligned > 0.0 { 1.0 } else { 0.0 };
    Some((rows, rows * (misaligned + tail)))
}

/// A convolution with at most this many input channels per group packs its input through the slow,
/// thin im2col path ([`Term::ThinPacked`]).
pub const THIN_CHANNELS: u32 = 4;

impl Term {
    /// The term's value for an op.
    #[inline]
    pub fn value(self, f: &OpFeatures) -> f64 {
        match self {
            Term::One => 1.0,
            Term::Macs => f.macs,
            Term::ValidMacs => f.macs * f.kernel.valid_taps(),
            Term::Flops => f.flops,
            Term::BytesIn => f.bytes_in,
            Term::BytesOut => f.bytes_out,
            Term::WeightBytes => f.weight_bytes,
            Term::PackedBytes => {
                let oc = f.kernel.out_channels as f64;
                if oc > 0.0 {
                    4.0 * f.macs * (f.kernel.group.max(1) as f64) / oc
                } else {
                    f.bytes_in
                }
            }
            Term::Channels => f.kernel.out_channels as f64,
            Term::Rows => f.kernel.out_channels as f64 * f.kernel.out_h as f64,
            Term::ThinPacked => {
                let k = &f.kernel;
                let group = k.group.max(1);
                if k.out_channels > 0 && k.in_channels > 0 && k.in_channels / group <= THIN_CHANNELS && k.kernel_h > 0 {
                    Term::PackedBytes.value(f)
                } else {
                    0.0
                }
            }
            Term::StridedMacs => {
                if f.kernel.stride_w > 1 && f.kernel.is_depthwise() {
                    f.macs
                } else {
                    0.0
                }
            }
            Term::SpilledMacs => {
                if f.macs > 0.0 && f.weight_bytes > SPILL_FROM_BYTES {
                    f.macs * (f.weight_bytes / SPILL_FROM_BYTES).log2().min(SPILL_OCTAVES)
                } else {
                    0.0
                }
            }
            Term::ReducedRows => reduced_rows(f).map_or(0.0, |(rows, _)| rows),
            Term::ScratchPieces => reduced_rows(f).map_or(0.0, |(_, pieces)| pieces),
            Term::Reference | Term::SqrtReference => 0.0,
        }
    }

    /// Whether the models supply the term's value from the reference processor's prediction.
    #[inline]
    pub fn is_reference(self) -> bool {
        matches!(self, Term::Reference | Term::SqrtReference)
    }

    /// The term's value given the reference processor's prediction for the op, µs.
    #[inline]
    pub fn value_with(self, f: &OpFeatures, reference_us: f64) -> f64 {
        match self {
            Term::Reference => reference_us,
            Term::SqrtReference => reference_us.max(0.0).sqrt(),
            t => t.value(f),
        }
    }
}

/// Op kinds that share a base model (a rare kind falls back to its family's).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Family {
    /// Matrix products: convolutions (im2col then a product), `EinSum`, `MatMul`.
    Matmul,
    /// Depthwise convolutions (a loop per channel, no matrix product).
    Depthwise,
    /// Max and average pooling.
    Pool,
    /// Reductions, softmax, normalisations.
    Reduce,
    /// Data movement: reshapes, slices, concatenations, gathers, strided copies.
    Layout,
    /// Element-wise arithmetic and everything else.
    Elementwise,
}

impl Family {
    /// Every family.
    pub const ALL: [Family; 6] = [Family::Matmul, Family::Depthwise, Family::Pool, Family::Reduce, Family::Layout, Family::Elementwise];

    /// The family of an op kind as tandem-graph names it.
    pub fn of(kind: &str) -> Family {
        match kind {
            "DepthwiseConv" => Family::Depthwise,
            "Conv" | "GroupConv" | "EinSum" | "MatMul" | "Gemm" | "OptMatMul" | "ConvTranspose" | "Deconv" => Family::Matmul,
            "AddAxis" | "RmAxis" | "Reshape" | "IntoShape" | "MoveAxis" | "Move" | "Slice" | "Concat" | "TypedConcat" | "Gather"
            | "Pad" | "Identity" | "Cast" | "Downsample" | "MultiBroadcastTo" | "Tile" => Family::Layout,
            k if k.contains("Pool") => Family::Pool,
            k if k.starts_with("Reduce") || k.contains("Softmax") || k.contains("Norm") => Family::Reduce,
            k if k.starts_with("AxisOp") => Family::Layout,
            _ => Family::Elementwise,
        }
    }

    /// The name stored in `cost_models.op_kind` for the family's own model: `family:matmul`.
    pub fn label(self) -> &'static str {
        match self {
            Family::Matmul => "family:matmul",
            Family::Depthwise => "family:depthwise",
            Family::Pool => "family:pool",
            Family::Reduce => "family:reduce",
            Family::Layout => "family:layout",
            Family::Elementwise => "family:elementwise",
        }
    }

    /// The terms of the family's additive model.
    pub fn terms(self) -> &'static [Term] {
        use Term::*;
        match self {
            Family::Matmul => &[One, Macs, PackedBytes, BytesOut, WeightBytes, ThinPacked, SpilledMacs],
            Family::Depthwise => &[One, ValidMacs, BytesIn, BytesOut, Channels, Rows, StridedMacs],
            // A pool's time follows the bytes it reads, whatever its window or stride: a 3x3 window at
            // stride 1 does four times the comparisons per byte of one at stride 2 and writes four times
            // the bytes, and costs about the same per byte read. Comparisons (flops) and bytes written
            // would only mislead: where every pool trained on strides by 2, they are proportional to
            // the bytes read, and the fit may put a pool's whole cost on either.
            Family::Pool => &[One, BytesIn],
            Family::Reduce => &[One, Flops, BytesIn, BytesOut, ReducedRows, ScratchPieces],
            Family::Layout => &[One, BytesIn, BytesOut],
            Family::Elementwise => &[One, Flops, BytesIn, BytesOut, WeightBytes],
        }
    }
}

/// The terms of a processor's catch-all model (every kind together).
pub const ALL_KINDS_TERMS: &[Term] = &[Term::One, Term::Macs, Term::Flops, Term::BytesIn, Term::BytesOut, Term::WeightBytes];

/// The terms of a model over the reference processor's prediction ([`Term::Reference`]): a fixed
/// cost, a share of the reference's time and a cost growing as its square root, so that small ops
/// may run slower than on the reference and large ones faster ([`Term::SqrtReference`]).
pub const REFERENCE_TERMS: &[Term] = &[Term::One, Term::Reference, Term::SqrtReference];

/// The label of a processor's catch-all model in `cost_models.op_kind`.
pub const ALL_KINDS: &str = "all";

/// Number of coordinates the neighbour correction measures distance in.
pub const COORDS: usize = 12;

/// An op's coordinates for the neighbour correction: `ln(1 + x)` of its counts and kernel parameters,
/// so that a distance of 0.1 means roughly "10 % apart".
#[inline]
pub fn coords(f: &OpFeatures) -> [f64; COORDS] {
    let l = |v: f64| (v.max(0.0)).ln_1p();
    let k = &f.kernel;
    [
        l(f.macs),
        l(f.flops),
        l(f.bytes_in),
        l(f.bytes_out),
        l(f.weight_bytes),
        l(k.kernel_h as f64),
        l(k.stride_h as f64),
        l(k.group as f64),
        l(k.in_channels as f64),
        l(k.out_channels as f64),
        l(k.out_h as f64),
        l(k.out_w as f64),
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn kinds_map_to_families() {
        assert_eq!(Family::of("Conv"), Family::Matmul);
        assert_eq!(Family::of("EinSum"), Family::Matmul);
        assert_eq!(Family::of("DepthwiseConv"), Family::Depthwise);
        assert_eq!(Family::of("MaxPool"), Family::Pool);
        assert_eq!(Family::of("Reduce<Sum>"), Family::Reduce);
        assert_eq!(Family::of("RmsNorm"), Family::Reduce);
        assert_eq!(Family::of("Downsample"), Family::Layout);
        assert_eq!(Family::of("Add"), Family::Elementwise);
        assert_eq!(Family::of("SomethingNew"), Family::Elementwise);
    }

    #[test]
    fn packed_bytes_is_the_im2col_matrix_of_a_convolution() {
        let mut f = OpFeatures::new("Conv", 1000, 2000, 10, 10, 10);
        f.kernel.out_channels = 10;
        f.kernel.group = 1;
        assert_eq!(Term::PackedBytes.value(&f), 400.0);
        let g = OpFeatures::new("EinSum", 1000, 2000, 64, 10, 10);
        assert_eq!(Term::PackedBytes.value(&g), 64.0);
    }

    #[test]
    fn thin_packed_is_the_packed_operand_of_channel_poor_convolutions_only() {
        let mut stem = OpFeatures::new("Conv", 27_000, 54_000, 10, 10, 10);
        stem.kernel = crate::KernelParams { kernel_h: 3, kernel_w: 3, stride_h: 2, stride_w: 2, group: 1, in_channels: 3, out_channels: 10, out_h: 10, out_w: 10, ..Default::default() };
        assert_eq!(Term::ThinPacked.value(&stem), Term::PackedBytes.value(&stem));
        let mut wide = stem.clone();
        wide.kernel.in_channels = 64;
        assert_eq!(Term::ThinPacked.value(&wide), 0.0);
        assert_eq!(Term::ThinPacked.value(&OpFeatures::new("EinSum", 1000, 2000, 64, 10, 10)), 0.0);
        assert_eq!(Term::Reference.value(&stem), 0.0, "supplied by the models, not the op");
    }

    #[test]
    fn spilled_macs_grow_by_octaves_of_weights_beyond_the_cache_and_saturate() {
        let conv = |weights: f64| OpFeatures::new("Conv", 1_000_000, 2_000_000, 10, 10, weights as u64);
        assert_eq!(Term::SpilledMacs.value(&conv(0.5 * SPILL_FROM_BYTES)), 0.0);
        assert_eq!(Term::SpilledMacs.value(&conv(SPILL_FROM_BYTES)), 0.0);
        assert!((Term::SpilledMacs.value(&conv(2.0 * SPILL_FROM_BYTES)) - 1_000_000.0).abs() < 1e-6);
        assert!((Term::SpilledMacs.value(&conv(4.0 * SPILL_FROM_BYTES)) - 2_000_000.0).abs() < 1e-6);
        assert_eq!(Term::SpilledMacs.value(&conv(64.0 * SPILL_FROM_BYTES)), SPILL_OCTAVES * 1_000_000.0);
        // No multiply-adds, nothing to wait for.
        assert_eq!(Term::SpilledMacs.value(&OpFeatures::new("Add", 0, 1000, 10, 10, 8 << 20)), 0.0);
    }

    #[test]
    fn reduced_rows_and_their_scratch_pieces_follow_the_row_length() {
        let rows_of = |len: i64, inner: i64, values: u64| {
            let params: std::collections::BTreeMap<String, i64> = [("reduce_len".to_string(), len), ("reduce_inner".to_string(), inner)].into_iter().collect();
            OpFeatures::new("Softmax", 0, values, 4 * values, 4 * values, 0).with_params(&params)
        };
        // [4, 128, 128]: 512 rows of two whole blocks at aligned starts.
        let whole = rows_of(128, 1, 4 * 128 * 128);
        assert_eq!(Term::ReducedRows.value(&whole), 512.0);
        assert_eq!(Term::ScratchPieces.value(&whole), 0.0);
        // [6, 96, 96]: aligned starts (96 = 6 x 16), a tail of 32 on every row.
        let tailed = rows_of(96, 1, 6 * 96 * 96);
        assert_eq!(Term::ReducedRows.value(&tailed), 576.0);
        assert_eq!(Term::ScratchPieces.value(&tailed), 576.0);
        // [8, 40, 40]: every other row starts off a boundary (40 = 2.5 x 16): 1.5 pieces a row.
        let short = rows_of(40, 1, 8 * 40 * 40);
        assert_eq!(Term::ScratchPieces.value(&short), 1.5 * 320.0);
        // A reduction across rows (strided), an unknown row, and an op that is not a reduction: none.
        assert_eq!(Term::ReducedRows.value(&rows_of(64, 49, 64 * 49)), 0.0);
        assert_eq!(Term::ScratchPieces.value(&OpFeatures::new("Softmax", 0, 10, 8, 8, 0)), 0.0);
        assert_eq!(Term::ReducedRows.value(&OpFeatures::new("Conv", 1000, 2000, 10, 10, 10)), 0.0);
    }

    #[test]
    fn valid_macs_are_the_macs_over_the_input_and_all_of_them_when_unknown() {
        let params: std::collections::BTreeMap<String, i64> = [("valid_taps_ppm".to_string(), 400_000)].into_iter().collect();
        let dw = OpFeatures::new("DepthwiseConv", 960_000, 1_920_000, 10, 10, 10).with_params(&params);
        assert!((Term::ValidMacs.value(&dw) - 384_000.0).abs() < 1e-6);
        assert_eq!(Term::Macs.value(&dw), 960_000.0);
        let unknown = OpFeatures::new("DepthwiseConv", 960_000, 1_920_000, 10, 10, 10);
        assert_eq!(Term::ValidMacs.value(&unknown), 960_000.0);
    }
}
