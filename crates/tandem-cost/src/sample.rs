//! The training data, as plain structs: the caller (the CLI, reading the results database) fills them,
//! so this crate never depends on the database.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// How an op's time was taken, and which time a prediction is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Context {
    /// Timed by a hook around the op while the whole model ran: the time an op adds to a stage.
    InModel,
    /// Timed alone, as a one-op model (split parts are timed this way): includes a run's fixed cost.
    Isolated,
}

impl Context {
    /// Both contexts, in index order.
    pub const ALL: [Context; 2] = [Context::InModel, Context::Isolated];

    /// The text the database stores.
    pub fn as_str(self) -> &'static str {
        match self {
            Context::InModel => "in_model",
            Context::Isolated => "isolated",
        }
    }

    pub(crate) fn index(self) -> usize {
        self as usize
    }
}

impl std::str::FromStr for Context {
    type Err = String;
    fn from_str(s: &str) -> Result<Context, String> {
        match s {
            "in_model" => Ok(Context::InModel),
            "isolated" => Ok(Context::Isolated),
            other => Err(format!("unknown context '{other}' (expected in_model or isolated)")),
        }
    }
}

/// What a cost model sees of an op: its kind, arithmetic, bytes and kernel parameters.
///
/// Counts are `f64` so that a split part's share can be expressed exactly (see [`OpFeatures::part`]).
/// Kernel parameters are 0 where they do not apply (ops other than convolutions and pooling).
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct OpFeatures {
    /// `Conv`, `DepthwiseConv`, `EinSum`, `Add`, ... as tandem-graph names it.
    pub kind: String,
    /// Multiply-accumulates.
    pub macs: f64,
    /// Floating-point operations (2 per multiply-accumulate plus everything else).
    pub flops: f64,
    /// Activation bytes read.
    pub bytes_in: f64,
    /// Activation bytes written.
    pub bytes_out: f64,
    /// Constant (weight) bytes read.
    pub weight_bytes: f64,
    /// Kernel and shape parameters of convolutions and pooling.
    pub kernel: KernelParams,
}

/// Kernel and shape parameters of a convolution or pooling op (all 0 for other ops).
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct KernelParams {
    /// Kernel height.
    pub kernel_h: u32,
    /// Kernel width.
    pub kernel_w: u32,
    /// Vertical stride.
    pub stride_h: u32,
    /// Horizontal stride.
    pub stride_w: u32,
    /// Convolution groups (1 for a plain convolution).
    pub group: u32,
    /// Input channels.
    pub in_channels: u32,
    /// Output channels.
    pub out_channels: u32,
    /// Output height.
    pub out_h: u32,
    /// Output width.
    pub out_w: u32,
    /// The output axis of channels (0 where tract dropped a batch of 1: CHW; 1 for NCHW).
    #[serde(default)]
    pub channel_axis: u32,
    /// The output axis of rows (the next one holds columns). With `channel_axis`, 0 means unknown
    /// (profiles stored before tandem recorded them), read as NCHW: see [`KernelParams::axes`].
    #[serde(default)]
    pub row_axis: u32,
    /// For a matrix product, bit `a` set when its weights carry output axis `a` (a cut along it
    /// slices the weights); 0 with `input_axes` when unknown.
    #[serde(default)]
    pub weight_axes: u32,
    /// For a matrix product, bit `a` set when its activations carry output axis `a`.
    #[serde(default)]
    pub input_axes: u32,
    /// The share of the kernel's taps over the input rather than its padding, parts per million (0
    /// when unknown: profiles stored before tandem recorded it, or not a convolution).
    #[serde(default)]
    pub valid_taps_ppm: u32,
    /// For a reduction, softmax or normalisation, the values each output row is computed over (0 when
    /// unknown: profiles stored before tandem recorded it, or not such an op).
    #[serde(default)]
    pub reduce_len: u32,
    /// For a reduction, softmax or normalisation, the stride between the values of a row (1 along the
    /// innermost axis; 0 when unknown).
    #[serde(default)]
    pub reduce_inner: u32,
}

impl KernelParams {
    /// Reads the parameters from tandem-graph's feature map (`kernel_h`, `stride_w`, `group`, ...);
    /// missing keys stay 0.
    pub fn from_map(map: &BTreeMap<String, i64>) -> KernelParams {
        let get = |k: &str| map.get(k).map(|&v| v.clamp(0, u32::MAX as i64) as u32).unwrap_or(0);
        KernelParams {
            kernel_h: get("kernel_h"),
            kernel_w: get("kernel_w"),
            stride_h: get("stride_h"),
            stride_w: get("stride_w"),
            group: get("group"),
            in_channels: get("in_channels"),
            out_channels: get("out_channels"),
            out_h: get("out_h"),
            out_w: get("out_w"),
            channel_axis: get("channel_axis"),
            row_axis: get("row_axis"),
            weight_axes: get("weight_axes"),
            input_axes: get("input_axes"),
            valid_taps_ppm: get("valid_taps_ppm"),
            reduce_len: get("reduce_len"),
            reduce_inner: get("reduce_inner"),
        }
    }

    /// Whether output axis `axis` is carried by the weights and by the activations, when recorded.
    pub fn carried(&self, axis: usize) -> Option<(bool, bool)> {
        if self.weight_axes == 0 && self.input_axes == 0 || axis >= 32 {
            return None;
        }
        Some((self.weight_axes >> axis & 1 == 1, self.input_axes >> axis & 1 == 1))
    }

    /// The output axes of channels, rows and columns: as recorded, else NCHW's (1, 2, 3).
    pub fn axes(&self) -> (usize, usize, usize) {
        if self.channel_axis == 0 && self.row_axis == 0 {
            (1, 2, 3)
        } else {
            (self.channel_axis as usize, self.row_axis as usize, self.row_axis as usize + 1)
        }
    }

    /// The share of the taps over the input (1 when unknown).
    pub fn valid_taps(&self) -> f64 {
        if self.valid_taps_ppm == 0 {
            1.0
        } else {
            self.valid_taps_ppm as f64 / 1e6
        }
    }

    /// Whether any parameter is set (the op is a convolution or pooling).
    pub fn is_set(&self) -> bool {
        self.kernel_h > 0 || self.out_channels > 0
    }

    /// Whether these are a depthwise convolution's: one group per input channel.
    pub fn is_depthwise(&self) -> bool {
        self.out_channels > 0 && self.group > 1 && self.group == self.in_channels
    }
}

impl OpFeatures {
    /// An op's features from its cost counts; kernel parameters start unset (see [`OpFeatures::with_params`]).
    pub fn new(kind: impl Into<String>, macs: u64, flops: u64, bytes_in: u64, bytes_out: u64, weight_bytes: u64) -> OpFeatures {
        OpFeatures {
            kind: kind.into(),
            macs: macs as f64,
            flops: flops as f64,
            bytes_in: bytes_in as f64,
            bytes_out: bytes_out as f64,
            weight_bytes: weight_bytes as f64,
            kernel: KernelParams::default(),
        }
    }

    /// The same op with kernel parameters read from tandem-graph's feature map.
    pub fn with_params(mut self, map: &BTreeMap<String, i64>) -> OpFeatures {
        self.kernel = KernelParams::from_map(map);
        self
    }

    /// The features of one part of this op split along output `axis`, the part covering
    /// `[start, end)` as shares of that axis (`0.25..0.5`).
    ///
    /// Arithmetic and output bytes scale with the share. Weights scale when the cut is along a
    /// convolution's output channels (its weights are sliced) or an axis a matrix product's weights
    /// carry; inputs scale when each part reads only its own slice of the input (spatial rows,
    /// depthwise channels, an axis the activations carry, ops without weights); a plain convolution
    /// cut by output channels still reads its whole input. Which output axis holds what is the op's
    /// own ([`KernelParams::axes`], [`KernelParams::carried`]).
    pub fn part(&self, axis: usize, start: f64, end: f64) -> OpFeatures {
        let r = (end - start).clamp(0.0, 1.0);
        let mut p = self.clone();
        p.macs *= r;
        p.flops *= r;
        p.bytes_out *= r;
        let conv = self.kernel.out_channels > 0 && self.kernel.group > 0;
        let depthwise = self.kernel.is_depthwise();
        let (channels, rows, columns) = self.kernel.axes();
        let channel_cut = axis == channels && self.kernel.is_set();
        if channel_cut {
            if conv {
                p.weight_bytes *= r;
            }
            p.kernel.out_channels = scale_u32(self.kernel.out_channels, r);
            if depthwise || !conv {
                // A depthwise convolution or a pooling reads only its own channels.
                p.bytes_in *= r;
            }
            if depthwise {
                p.kernel.in_channels = scale_u32(self.kernel.in_channels, r);
                p.kernel.group = scale_u32(self.kernel.group, r);
            }
        } else if self.kernel.is_set() && axis == rows {
            p.bytes_in *= r;
            p.kernel.out_h = scale_u32(self.kernel.out_h, r);
        } else if self.kernel.is_set() && axis == columns {
            p.bytes_in *= r;
            p.kernel.out_w = scale_u32(self.kernel.out_w, r);
        } else if let Some((weights, activations)) = self.kernel.carried(axis) {
            if weights {
                p.weight_bytes *= r;
            }
            if activations {
                p.bytes_in *= r;
            }
        } else if self.weight_bytes > 0.0 {
            // Unrecorded (a profile stored before the axes were): a matrix product of activations
            // [batch, tokens, features] cut along features (axis 2 and beyond) reads slices of its
            // weights; cut along tokens, slices of its input.
            if axis >= 2 {
                p.weight_bytes *= r;
            } else {
                p.bytes_in *= r;
            }
        } else {
            p.bytes_in *= r;
        }
        p
    }

    /// Checks that every count is finite and non-negative.
    pub fn validate(&self) -> Result<(), String> {
        for (name, v) in [("macs", self.macs), ("flops", self.flops), ("bytes_in", self.bytes_in), ("bytes_out", self.bytes_out), ("weight_bytes", self.weight_bytes)] {
            if !v.is_finite() || v < 0.0 {
                return Err(format!("{} op has {name} = {v}", self.kind));
            }
        }
        Ok(())
    }
}

fn scale_u32(v: u32, r: f64) -> u32 {
    ((v as f64 * r).round() as u32).max(1)
}

/// A split part: which output axis was cut, and the part's share of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct PartSpec {
    /// The output axis cut.
    pub axis: usize,
    /// Where the part starts, as a share of the axis.
    pub start: f64,
    /// Where it ends.
    pub end: f64,
}

impl PartSpec {
    /// The part's share of the axis.
    pub fn ratio(&self) -> f64 {
        self.end - self.start
    }
}

/// One timed op (or split part) on one processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpSample {
    /// The model it belongs to (any stable name; leave-one-model-out groups by it).
    pub model: String,
    /// The op's id within its model.
    pub op_id: i64,
    /// The processor that ran it.
    pub processor: String,
    /// In the model, or alone.
    pub context: Context,
    /// The whole op's features (not the part's: see `part`).
    pub op: OpFeatures,
    /// For a split part, which part; `None` for the whole op.
    pub part: Option<PartSpec>,
    /// The median time, microseconds.
    pub median_us: f64,
}

impl OpSample {
    /// The features of what was timed: the op, or the part of it.
    pub fn timed_features(&self) -> OpFeatures {
        match self.part {
            Some(p) => self.op.part(p.axis, p.start, p.end),
            None => self.op.clone(),
        }
    }

    /// The share of the op that was timed: 1 for a whole op.
    pub fn ratio(&self) -> f64 {
        self.part.map(|p| p.ratio()).unwrap_or(1.0)
    }
}

/// A whole model timed on one processor (one stage holding every op).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelSample {
    /// The model (as in [`OpSample::model`]).
    pub model: String,
    /// The processor.
    pub processor: String,
    /// The median time, microseconds.
    pub median_us: f64,
}

/// A tensor handed from one processor to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferSample {
    /// From.
    pub src: String,
    /// To.
    pub dst: String,
    /// Tensor size.
    pub bytes: f64,
    /// The median time, microseconds.
    pub median_us: f64,
}

/// One part of a split, timed while its whole plan ran (`tandem run` stores these).
///
/// What the planner would predict for it is recomputed from the features with the models being
/// fitted, exactly as the planner composes it: the head's isolated part plus the tail's in-context
/// parts. The in-plan calibration ([`crate::ProcessorModels::in_plan`]) maps that to what the part
/// measured inside the plan. Split parts run at the same time as the other parts of their split,
/// which no profile sees, so they have a calibration of their own; whole-op stages have another
/// ([`PlanStageSample`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPartSample {
    /// The model (as in [`OpSample::model`]): leave-one-model-out holds a model's parts out too.
    pub model: String,
    /// The processor the part ran on.
    pub processor: String,
    /// The chain's first op, whole, and the part of it computed.
    pub head: (OpFeatures, PartSpec),
    /// The rest of the chain, already cut to the part (predicted in context).
    pub tail: Vec<OpFeatures>,
    /// The part's median time inside the plan, microseconds.
    pub measured_us: f64,
}

impl PlanPartSample {
    /// Ops the part runs (its head included).
    pub fn op_count(&self) -> usize {
        self.tail.len() + 1
    }

    /// The head and tail of a part of the chain `ops` that computes, of op `i`'s output, the share
    /// `cuts[i].1` of axis `cuts[i].0` (tandem-graph's `Graph::part_shares`: a region's part computes
    /// more than its share of the early ops, the halos of its windows). The planner predicts a
    /// region's parts from this, and `tandem fit` learns the in-plan calibration from the same view
    /// of the parts that ran.
    pub fn chain_view(ops: &[OpFeatures], cuts: &[(usize, f64)]) -> Option<((OpFeatures, PartSpec), Vec<OpFeatures>)> {
        if ops.is_empty() || ops.len() != cuts.len() || cuts.iter().any(|(_, s)| !(s.is_finite() && *s >= 0.0 && *s <= 1.0)) {
            return None;
        }
        let head = (ops[0].clone(), PartSpec { axis: cuts[0].0, start: 0.0, end: cuts[0].1 });
        let tail = ops[1..].iter().zip(&cuts[1..]).map(|(f, &(axis, share))| f.part(axis, 0.0, share)).collect();
        Some((head, tail))
    }
}

/// A whole-op stage timed while its plan ran, or a processor's `single:` baseline timed beside it (the
/// whole model as one stage, tract's plain run).
///
/// The profile times ops and whole models back to back, each right after itself; `tandem run`
/// interleaves the plan with the baselines, so every stage finds the caches as another model or
/// another core left them, and it runs 1-30% slower (mobilenet_v2 on `cpu:0`: 13.6 ms profiled,
/// 17.6 ms as a baseline in its runs). The whole-stage calibration
/// ([`crate::ProcessorModels::whole_in_plan`]) maps the stage model's prediction to these times.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStageSample {
    /// The model (as in [`OpSample::model`]): leave-one-model-out holds a model's stages out too.
    pub model: String,
    /// The processor the stage ran on.
    pub processor: String,
    /// The stage's ops, whole.
    pub ops: Vec<OpFeatures>,
    /// The stage's median time inside the run, microseconds.
    pub measured_us: f64,
    /// The run it was timed in (a model's own calibration is evaluated predicting each run from
    /// its other runs).
    #[serde(default)]
    pub run: i64,
}

/// Everything a fit learns from: one device's measurements.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct TrainingSet {
    /// Ops and split parts.
    pub ops: Vec<OpSample>,
    /// Whole models.
    pub models: Vec<ModelSample>,
    /// Hand-overs between processors.
    pub transfers: Vec<TransferSample>,
    /// Split parts timed inside plan runs.
    #[serde(default)]
    pub plan_parts: Vec<PlanPartSample>,
    /// Whole-op stages and baselines timed in plan runs.
    #[serde(default)]
    pub plan_stages: Vec<PlanStageSample>,
    /// Models that are training data only (the probe networks): every fit uses them, and the
    /// leave-one-model-out evaluation never leaves one out, since they are not models anyone runs.
    #[serde(default)]
    pub training_only: Vec<String>,
    /// Per processor, the speed the timings were brought to: the reference kernel's typical time
    /// there, µs (tandem-profile's reference module). Empty when they are as measured. The fitted
    /// models predict at this speed and keep it ([`crate::CostModels::speed`]), so that a run can tell how
    /// fast the host is running against it.
    #[serde(default)]
    pub typical_reference_us: BTreeMap<String, f64>,
}

impl TrainingSet {
    /// Checks every sample: finite, positive times; finite, non-negative features; known parts.
    pub fn validate(&self) -> Result<(), crate::CostError> {
        let bad = |what: String| Err(crate::CostError::InvalidSample(what));
        for s in &self.ops {
            if !(s.median_us.is_finite() && s.median_us > 0.0) {
                return bad(format!("op {} of model {} on {} has median {} µs", s.op_id, s.model, s.processor, s.median_us));
            }
            if let Err(e) = s.op.validate() {
                return bad(format!("op {} of model {}: {e}", s.op_id, s.model));
            }
            if let Some(p) = s.part {
                if !(p.start.is_finite() && p.end.is_finite() && 0.0 <= p.start && p.start < p.end && p.end <= 1.0 + 1e-9) {
                    return bad(format!("op {} of model {} has a split part [{}, {})", s.op_id, s.model, p.start, p.end));
                }
            }
        }
        for m in &self.models {
            if !(m.median_us.is_finite() && m.median_us > 0.0) {
                return bad(format!("model {} on {} has median {} µs", m.model, m.processor, m.median_us));
            }
        }
        for t in &self.transfers {
            if !(t.median_us.is_finite() && t.median_us > 0.0 && t.bytes.is_finite() && t.bytes >= 0.0) {
                return bad(format!("transfer {} -> {} of {} bytes has median {} µs", t.src, t.dst, t.bytes, t.median_us));
            }
        }
        for s in &self.plan_parts {
            let (head, part) = &s.head;
            if !(s.measured_us.is_finite() && s.measured_us > 0.0) || !(0.0 <= part.start && part.start < part.end && part.end <= 1.0 + 1e-9) {
                return bad(format!("a split part of model {} on {} has median {} µs over [{}, {})", s.model, s.processor, s.measured_us, part.start, part.end));
            }
            for op in s.tail.iter().chain([head]) {
                if let Err(e) = op.validate() {
                    return bad(format!("a split part of model {}: {e}", s.model));
                }
            }
        }
        for s in &self.plan_stages {
            if !(s.measured_us.is_finite() && s.measured_us > 0.0) || s.ops.is_empty() {
                return bad(format!("a stage of model {} on {} has median {} µs over {} ops", s.model, s.processor, s.measured_us, s.ops.len()));
            }
            for op in &s.ops {
                if let Err(e) = op.validate() {
                    return bad(format!("a stage of model {}: {e}", s.model));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn depthwise(channel_axis: u32, row_axis: u32) -> OpFeatures {
        let mut f = OpFeatures::new("DepthwiseConv", 1000, 2000, 400, 400, 36);
        f.kernel = KernelParams { kernel_h: 3, kernel_w: 3, stride_h: 1, stride_w: 1, group: 4, in_channels: 4, out_channels: 4, out_h: 10, out_w: 10, channel_axis, row_axis, ..Default::default() };
        f
    }

    #[test]
    fn a_part_cuts_the_axis_the_op_holds_there_nchw_or_chw() {
        // CHW (tract dropped the batch): axis 0 is channels, 1 rows, 2 columns.
        let chw = depthwise(0, 1);
        let by_channels = chw.part(0, 0.0, 0.5);
        assert_eq!((by_channels.kernel.out_channels, by_channels.kernel.out_h, by_channels.weight_bytes), (2, 10, 18.0));
        let by_rows = chw.part(1, 0.0, 0.5);
        assert_eq!((by_rows.kernel.out_channels, by_rows.kernel.out_h, by_rows.kernel.out_w, by_rows.weight_bytes), (4, 5, 10, 36.0));
        let by_columns = chw.part(2, 0.0, 0.5);
        assert_eq!((by_columns.kernel.out_h, by_columns.kernel.out_w), (10, 5));
        // NCHW, and profiles stored before the axes were recorded (read as NCHW): one further on.
        for nchw in [depthwise(1, 2), depthwise(0, 0)] {
            assert_eq!(nchw.part(1, 0.0, 0.5).kernel.out_channels, 2);
            assert_eq!(nchw.part(2, 0.0, 0.5).kernel.out_h, 5);
            assert_eq!(nchw.part(3, 0.0, 0.5).kernel.out_w, 5);
        }
    }

    #[test]
    fn a_matrix_product_part_slices_what_carries_the_axis() {
        // [channels, pixels] = weights [channels, k] x activations [k, pixels].
        let mut f = OpFeatures::new("EinSum", 1000, 2000, 800, 400, 600);
        f.kernel.weight_axes = 0b01;
        f.kernel.input_axes = 0b10;
        let by_channels = f.part(0, 0.0, 0.25);
        assert_eq!((by_channels.weight_bytes, by_channels.bytes_in, by_channels.bytes_out), (150.0, 800.0, 100.0));
        let by_pixels = f.part(1, 0.0, 0.25);
        assert_eq!((by_pixels.weight_bytes, by_pixels.bytes_in), (600.0, 200.0));
        // Unrecorded: the old rule by rank (axis 2 and beyond slice the weights).
        let mut old = f.clone();
        old.kernel = KernelParams::default();
        assert_eq!(old.part(0, 0.0, 0.25).bytes_in, 200.0);
        assert_eq!(old.part(2, 0.0, 0.25).weight_bytes, 150.0);
    }
}
