//! Probe networks: synthetic models whose layers are drawn over the range of configurations real
//! networks use, profiled as training data for the cost models.
//!
//! Why they exist: a cost model fitted on a handful of real models has seen a handful of shapes per
//! op kind, and a kernel's speed moves several-fold with shape (tract's depthwise convolution runs at
//! a third of the MAC rate on a 112×112 map than on a 14×14 one). A model never profiled then falls
//! between the shapes the fit knows. nn-Meter's answer is to profile kernels sampled over the
//! configuration space; a probe is that, written as an ordinary ONNX model, so `tandem profile`
//! measures its ops in context and in isolation, with their split parts, as it does a real model.
//!
//! Every probe is a chain of layers drawn by a ChaCha8 generator seeded from its index, so a name
//! always gives the same bytes. Sizes come from ranges, not from any real model's layers: channels
//! 8 to 768, maps 7 to 224 on a side, kernels 1 to 7, 16 to 256 tokens of 64 to 512 features. Each
//! probe stays under [`MAC_BUDGET`] multiply-accumulates so that profiling all of them takes
//! minutes, not hours.
//!
//! The leave-one-model-out evaluation never leaves a probe out ([`is_probe`]): probes are training
//! data, and the models it judges are the real ones.

use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
use tract_onnx::pb::ModelProto;

use super::{attr_float, attr_int, encoder_layer, GraphBuilder, ZooError, INPUT_NAME, LINEAR_GAIN, RELU_GAIN};

/// Every probe's name starts with this.
pub const PREFIX: &str = "probe-";

/// How many convolutional probes there are (`probe-cnn-01` ...).
pub const CNN_PROBES: usize = 24;

/// How many token (attention and feed-forward) probes there are (`probe-tok-01` ...).
pub const TOKEN_PROBES: usize = 6;

/// How many wide probes there are (`probe-wide-01` ...).
pub const WIDE_PROBES: usize = 6;

/// Every probe.
pub const PROBES: usize = CNN_PROBES + TOKEN_PROBES + WIDE_PROBES;

/// The most multiply-accumulates one probe does: about 10 ms on one core of this project's machines.
pub const MAC_BUDGET: u64 = 400_000_000;

/// The most `f32` values one activation of a probe holds (8 MiB).
const ACTIVATION_VALUES: usize = 2 << 20;

/// What a probe samples.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ProbeKind {
    /// Convolutions (pointwise, k×k, depthwise), pooling, activations, squeeze-excitation gates
    /// and residual additions on an image-like `[1, C, H, W]` tensor.
    Cnn,
    /// Pre-norm encoder layers (attention, a feed-forward of sampled width) on `[1, T, D]` tokens.
    Tokens,
    /// Convolutions of 256 to 960 channels on maps of 4 to 28 rows: weights of 0.25 to 33 MB, more
    /// than a core's cache holds, as in the last stages of a ResNet or a VGG. The convolutional
    /// probes draw whole networks and reach such layers rarely within their budget (4 of 24 have a
    /// layer of more than 2 MB), so without these a model whose time is in them (resnet18's layer4:
    /// 9.4 MB of weights per convolution, 2.4x the time per multiply-add of 0.6 MB ones) falls
    /// outside what the fit saw.
    Wide,
}

/// One probe network.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Probe {
    /// `probe-cnn-01`, `probe-tok-03`, ...
    pub name: String,
    /// What it samples.
    pub kind: ProbeKind,
    /// Its index among probes of its kind, the seed of its layers.
    pub index: usize,
}

/// A built probe: the ONNX model and what it takes and gives.
#[derive(Debug, Clone)]
pub struct BuiltProbe {
    /// The model.
    pub proto: ModelProto,
    /// The shape of its one input, named [`INPUT_NAME`].
    pub input_shape: Vec<usize>,
    /// The shape of its one output.
    pub output_shape: Vec<usize>,
    /// The layers drawn, in one line.
    pub description: String,
    /// Multiply-accumulates of its convolutions and matrix products.
    pub macs: u64,
}

impl BuiltProbe {
    /// The model's ONNX bytes.
    pub fn bytes(&self) -> Vec<u8> {
        self.proto.encode_to_vec()
    }
}

/// What a generator drew: shapes, the last tensor, a description and the work.
struct Drawn {
    input_shape: Vec<usize>,
    output_shape: Vec<usize>,
    last: String,
    description: String,
    macs: u64,
}

/// Every probe, convolutional ones first.
pub fn probes() -> Vec<Probe> {
    let cnn = (0..CNN_PROBES).map(|i| Probe { name: format!("{PREFIX}cnn-{:02}", i + 1), kind: ProbeKind::Cnn, index: i });
    let tok = (0..TOKEN_PROBES).map(|i| Probe { name: format!("{PREFIX}tok-{:02}", i + 1), kind: ProbeKind::Tokens, index: i });
    let wide = (0..WIDE_PROBES).map(|i| Probe { name: format!("{PREFIX}wide-{:02}", i + 1), kind: ProbeKind::Wide, index: i });
    cnn.chain(tok).chain(wide).collect()
}

/// Whether a model name is a probe's (they are training data, never a model to judge). Only the
/// probes' own names count, not every name that starts with [`PREFIX`].
pub fn is_probe(name: &str) -> bool {
    name.starts_with(PREFIX) && find(name).is_some()
}

/// Look one up by name.
pub fn find(name: &str) -> Option<Probe> {
    probes().into_iter().find(|p| p.name == name)
}

/// Builds the probe's model.
pub fn build_probe(probe: &Probe) -> BuiltProbe {
    // The layers and the weights come from two generators, so that changing how weights are drawn
    // never changes the layers.
    let mut layers = ChaCha8Rng::seed_from_u64(0x7072_6f62_6500 + ((probe.kind as u64) << 8) + probe.index as u64);
    let mut b = GraphBuilder::new(probe.index as u64);
    let d = match probe.kind {
        ProbeKind::Cnn => cnn(&mut b, &mut layers),
        ProbeKind::Tokens => tokens(&mut b, &mut layers),
        ProbeKind::Wide => wide(&mut b, &mut layers),
    };
    let description = format!("probe network: {} ({:.0} MMAC)", d.description, d.macs as f64 / 1e6);
    let proto = b.finish_as(&format!("tandem_{}", probe.name.replace('-', "_")), &description, &d.input_shape, &d.output_shape, &d.last);
    BuiltProbe { proto, input_shape: d.input_shape, output_shape: d.output_shape, description, macs: d.macs }
}

/// The probes' names as ranges, for error messages.
pub fn valid_names() -> String {
    format!("{PREFIX}cnn-01 to {PREFIX}cnn-{CNN_PROBES:02}, {PREFIX}tok-01 to {PREFIX}tok-{TOKEN_PROBES:02}, {PREFIX}wide-01 to {PREFIX}wide-{WIDE_PROBES:02}")
}

/// The ONNX bytes of the probe named `name`.
pub fn build(name: &str) -> Result<Vec<u8>, ZooError> {
    let probe = find(name).ok_or_else(|| ZooError::UnknownModel { name: name.to_string(), valid: valid_names() })?;
    Ok(build_probe(&probe).bytes())
}

/// `[1, c, h, w]` as the chain goes.
#[derive(Debug, Clone, Copy)]
struct Map {
    c: usize,
    h: usize,
    w: usize,
}

impl Map {
    fn values(self) -> usize {
        self.c * self.h * self.w
    }

    /// The map after a `k×k` window with padding `k/2` (odd `k`) and stride `s`.
    fn strided(self, c: usize, s: usize) -> Map {
        Map { c, h: (self.h - 1) / s + 1, w: (self.w - 1) / s + 1 }
    }
}

fn pick<T: Copy>(rng: &mut ChaCha8Rng, from: &[T]) -> T {
    from[rng.gen_range(0..from.len())]
}

/// The channel counts networks use; probes draw from these, so that the kernels meet the counts
/// (and the tile remainders) they meet in real models.
const CHANNELS: [usize; 17] = [8, 16, 24, 32, 40, 48, 64, 96, 128, 160, 192, 256, 320, 384, 512, 768, 960];

/// A channel count of [`CHANNELS`] near `c · f`.
fn near(c: f64) -> usize {
    CHANNELS.iter().copied().min_by(|a, b| (*a as f64 / c).ln().abs().total_cmp(&(*b as f64 / c).ln().abs())).unwrap_or(32)
}

/// An activation after a convolution, or none.
fn activation(b: &mut GraphBuilder, rng: &mut ChaCha8Rng, name: &str, x: &str) -> (String, &'static str) {
    match rng.gen_range(0..10) {
        0..=3 => (b.relu(&format!("{name}.relu"), x), "relu"),
        4..=5 => (b.relu6(&format!("{name}.relu6"), x), "relu6"),
        6 => (b.node("HardSwish", &format!("{name}.hardswish"), &[x], vec![]), "hardswish"),
        7 => {
            let s = b.node("Sigmoid", &format!("{name}.sigmoid"), &[x], vec![]);
            (b.binary("Mul", &format!("{name}.silu"), x, &s), "silu")
        }
        _ => (x.to_string(), ""),
    }
}

/// The blocks convolutional networks are made of.
#[derive(Debug, Clone, Copy)]
enum Block {
    /// One k×k convolution (a stem, a transition, a head).
    Conv { k: usize, cout: usize, stride: usize },
    /// ResNet's basic block: two 3×3 convolutions and a shortcut (1×1 where the shape changes).
    Basic { cout: usize, stride: usize },
    /// MobileNet's inverted residual: 1×1 expansion by `t`, k×k depthwise, an optional
    /// squeeze-excitation gate, 1×1 projection; a residual when the shape is kept.
    Inverted { t: usize, k: usize, cout: usize, stride: usize, se: bool },
    /// SqueezeNet's fire module: 1×1 squeeze, then 1×1 and 3×3 expansions concatenated.
    Fire { squeeze: usize, expand: usize },
    /// Max or average pooling, 3×3 or 2×2, stride 2.
    Pool { avg: bool, k: usize },
}

impl Block {
    /// Multiply-accumulates of the block on `m`, and the map it leaves.
    fn cost(self, m: Map) -> (u64, Map) {
        let px = |n: Map| (n.h * n.w) as u64;
        match self {
            Block::Conv { k, cout, stride } => {
                let n = m.strided(cout, stride);
                (px(n) * (cout * m.c * k * k) as u64, n)
            }
            Block::Basic { cout, stride } => {
                let n = m.strided(cout, stride);
                let shortcut = if stride != 1 || cout != m.c { m.c * cout } else { 0 };
                (px(n) * (9 * m.c * cout + 9 * cout * cout + shortcut) as u64, n)
            }
            Block::Inverted { t, k, cout, stride, se } => {
                let hidden = m.c * t;
                let n = m.strided(cout, stride);
                let expand = if t > 1 { px(m) * (m.c * hidden) as u64 } else { 0 };
                let gate = if se { 2 * (hidden * (hidden / 4).max(8)) as u64 } else { 0 };
                (expand + px(n) * (hidden * k * k + hidden * cout) as u64 + gate, n)
            }
            Block::Fire { squeeze, expand } => {
                let n = Map { c: 2 * expand, ..m };
                (px(m) * (m.c * squeeze + squeeze * expand + 9 * squeeze * expand) as u64, n)
            }
            Block::Pool { k, .. } => {
                let p = if k == 3 { 1 } else { 0 };
                (0, Map { c: m.c, h: (m.h + 2 * p - k) / 2 + 1, w: (m.w + 2 * p - k) / 2 + 1 })
            }
        }
    }

    /// Draws a block for map `m`: mostly keeping the channels, widening where it halves the map.
    fn draw(rng: &mut ChaCha8Rng, m: Map) -> Block {
        let can_halve = m.h >= 8 && m.w >= 8;
        let stride = if can_halve && rng.gen_bool(0.3) { 2 } else { 1 };
        let widen = |rng: &mut ChaCha8Rng| near(m.c as f64 * if stride == 2 { pick(rng, &[1.0, 2.0, 2.0]) } else { pick(rng, &[0.5, 1.0, 1.0, 1.0, 1.5, 2.0]) });
        if m.c < 8 {
            return Block::Conv { k: pick(rng, &[3, 3, 5, 7]), cout: pick(rng, &[16, 24, 32, 48, 64]), stride: if can_halve { 2 } else { 1 } };
        }
        match rng.gen_range(0..20) {
            0..=5 => Block::Basic { cout: widen(rng), stride },
            6..=11 => Block::Inverted { t: pick(rng, &[1, 3, 4, 6, 6]), k: pick(rng, &[3, 3, 5]), cout: widen(rng), stride, se: rng.gen_bool(0.3) },
            12..=14 => {
                let squeeze = near(m.c as f64 / pick(rng, &[4.0, 6.0, 8.0])).min(m.c);
                Block::Fire { squeeze, expand: near(squeeze as f64 * pick(rng, &[2.0, 4.0])) }
            }
            15..=17 => Block::Conv { k: pick(rng, &[1, 1, 3, 3, 5, 7]), cout: widen(rng), stride },
            _ if can_halve => Block::Pool { avg: rng.gen_bool(0.3), k: pick(rng, &[2, 3]) },
            _ => Block::Conv { k: 1, cout: widen(rng), stride: 1 },
        }
    }

    /// Adds the block's nodes after `x`; returns the last tensor and a short label.
    fn write(self, b: &mut GraphBuilder, rng: &mut ChaCha8Rng, name: &str, x: &str, m: Map) -> (String, String) {
        let s2 = |s: usize| if s == 2 { "/2" } else { "" };
        match self {
            Block::Conv { k, cout, stride } => {
                let y = b.conv(name, x, m.c, cout, k, stride, 1, RELU_GAIN);
                let (y, act) = activation(b, rng, name, &y);
                (y, format!("conv{k}{} {}->{cout} {act}", s2(stride), m.c))
            }
            Block::Basic { cout, stride } => {
                let c1 = b.conv(&format!("{name}.conv1"), x, m.c, cout, 3, stride, 1, RELU_GAIN);
                let r1 = b.relu(&format!("{name}.relu1"), &c1);
                let c2 = b.conv(&format!("{name}.conv2"), &r1, cout, cout, 3, 1, 1, 0.5);
                let shortcut = if stride != 1 || cout != m.c { b.conv(&format!("{name}.shortcut"), x, m.c, cout, 1, stride, 1, LINEAR_GAIN) } else { x.to_string() };
                let sum = b.binary("Add", &format!("{name}.add"), &c2, &shortcut);
                (b.relu(&format!("{name}.relu2"), &sum), format!("basic{} {}->{cout}", s2(stride), m.c))
            }
            Block::Inverted { t, k, cout, stride, se } => {
                let hidden = m.c * t;
                let mut h = x.to_string();
                if t > 1 {
                    let e = b.conv(&format!("{name}.expand"), &h, m.c, hidden, 1, 1, 1, RELU_GAIN);
                    h = activation(b, rng, &format!("{name}.expand"), &e).0;
                }
                let d = b.conv(&format!("{name}.dw"), &h, hidden, hidden, k, stride, hidden, RELU_GAIN);
                let mut d = activation(b, rng, &format!("{name}.dw"), &d).0;
                if se {
                    let squeeze = (hidden / 4).max(8);
                    let gap = b.node("GlobalAveragePool", &format!("{name}.se.gap"), &[&d], vec![]);
                    let s1 = b.conv(&format!("{name}.se.reduce"), &gap, hidden, squeeze, 1, 1, 1, RELU_GAIN);
                    let s1 = b.relu(&format!("{name}.se.relu"), &s1);
                    let s2 = b.conv(&format!("{name}.se.expand"), &s1, squeeze, hidden, 1, 1, 1, LINEAR_GAIN);
                    let gate = if rng.gen_bool(0.5) {
                        b.node("HardSigmoid", &format!("{name}.se.gate"), &[&s2], vec![attr_float("alpha", 0.2), attr_float("beta", 0.5)])
                    } else {
                        b.node("Sigmoid", &format!("{name}.se.gate"), &[&s2], vec![])
                    };
                    d = b.binary("Mul", &format!("{name}.se.scale"), &d, &gate);
                }
                let residual = stride == 1 && cout == m.c;
                let proj = b.conv(&format!("{name}.project"), &d, hidden, cout, 1, 1, 1, if residual { 0.5 } else { LINEAR_GAIN });
                let y = if residual { b.binary("Add", &format!("{name}.add"), &proj, x) } else { proj };
                (y, format!("inverted{}{} t{t} dw{k} {}->{cout}", s2(stride), if se { " se" } else { "" }, m.c))
            }
            Block::Fire { squeeze, expand } => {
                let sq = b.conv(&format!("{name}.squeeze"), x, m.c, squeeze, 1, 1, 1, RELU_GAIN);
                let sq = b.relu(&format!("{name}.squeeze.relu"), &sq);
                let e1 = b.conv(&format!("{name}.expand1"), &sq, squeeze, expand, 1, 1, 1, RELU_GAIN);
                let e1 = b.relu(&format!("{name}.expand1.relu"), &e1);
                let e3 = b.conv(&format!("{name}.expand3"), &sq, squeeze, expand, 3, 1, 1, RELU_GAIN);
                let e3 = b.relu(&format!("{name}.expand3.relu"), &e3);
                (b.node("Concat", &format!("{name}.concat"), &[&e1, &e3], vec![attr_int("axis", 1)]), format!("fire {}->{squeeze}->2x{expand}", m.c))
            }
            Block::Pool { avg, k } => {
                let p = if k == 3 { 1 } else { 0 };
                (b.pool(if avg { "AveragePool" } else { "MaxPool" }, name, x, k, 2, p), format!("{}pool{k}", if avg { "avg" } else { "max" }))
            }
        }
    }
}

/// A convolutional chain of blocks.
fn cnn(b: &mut GraphBuilder, rng: &mut ChaCha8Rng) -> Drawn {
    // Either a stem over an RGB-like input, or a chain that starts deeper in a network, where maps
    // are smaller and channels more (near 3584 / side: 512 at 7, 64 at 56).
    let (c, h) = if rng.gen_bool(0.25) {
        (3, pick(rng, &[48, 64, 96, 112, 160, 224]))
    } else {
        let h = pick(rng, &[7, 8, 12, 14, 14, 16, 24, 28, 28, 32, 48, 56, 56, 112]);
        (near(3584.0 / h as f64 * pick(rng, &[0.25, 0.5, 1.0, 1.0, 2.0])), h)
    };
    let w = (h * pick(rng, &[1, 1, 1, 1, 2, 4])).min(320);
    let input = Map { c, h, w };
    let mut map = input;
    let mut x = INPUT_NAME.to_string();
    let mut drawn = vec![format!("{c}x{h}x{w}")];
    let mut macs: u64 = 0;
    let blocks = rng.gen_range(4..=9);
    let mut tries = 0;
    let mut n = 0;
    let mut last = None;
    while n < blocks && tries < 40 {
        tries += 1;
        let block = Block::draw(rng, map);
        let (block_macs, next) = block.cost(map);
        let pools_again = matches!((block, last), (Block::Pool { .. }, Some(Block::Pool { .. })));
        if pools_again || macs + block_macs > MAC_BUDGET || next.values() > ACTIVATION_VALUES || next.h == 0 || next.w == 0 {
            continue;
        }
        last = Some(block);
        let (y, label) = block.write(b, rng, &format!("b{n:02}"), &x, map);
        x = y;
        macs += block_macs;
        map = next;
        drawn.push(label.trim_end().to_string());
        n += 1;
    }
    Drawn { input_shape: vec![1, input.c, input.h, input.w], output_shape: vec![1, map.c, map.h, map.w], last: x, description: drawn.join(", "), macs }
}

/// A chain of wide convolutions on a small map ([`ProbeKind::Wide`]).
fn wide(b: &mut GraphBuilder, rng: &mut ChaCha8Rng) -> Drawn {
    const WIDE: [usize; 7] = [256, 320, 384, 512, 640, 768, 960];
    let h = pick(rng, &[4, 7, 7, 8, 12, 14, 14, 16, 28]);
    let w = h * pick(rng, &[1, 1, 2]);
    let input = Map { c: pick(rng, &WIDE), h, w };
    let mut map = input;
    let mut x = INPUT_NAME.to_string();
    let mut drawn = vec![format!("{}x{h}x{w}", input.c)];
    let mut macs: u64 = 0;
    let layers = rng.gen_range(3..=5);
    let mut tries = 0;
    while drawn.len() <= layers && tries < 40 {
        tries += 1;
        let block = Block::Conv { k: pick(rng, &[1, 3, 3]), cout: pick(rng, &WIDE), stride: 1 };
        let (block_macs, next) = block.cost(map);
        if macs + block_macs > MAC_BUDGET {
            continue;
        }
        let (y, label) = block.write(b, rng, &format!("w{:02}", drawn.len()), &x, map);
        x = y;
        macs += block_macs;
        map = next;
        drawn.push(label.trim_end().to_string());
    }
    Drawn { input_shape: vec![1, input.c, input.h, input.w], output_shape: vec![1, map.c, map.h, map.w], last: x, description: drawn.join(", "), macs }
}

/// Pre-norm encoder layers on tokens.
fn tokens(b: &mut GraphBuilder, rng: &mut ChaCha8Rng) -> Drawn {
    let mut t = pick(rng, &[16, 32, 48, 64, 96, 128, 192, 256]);
    let d = pick(rng, &[64, 96, 128, 192, 256, 384, 512]);
    let heads = d / pick(rng, &[32, 64]).min(d);
    let layer_macs = |t: usize, ff: usize| (4 * t * d * d + 2 * t * t * d + 2 * t * d * ff) as u64;
    // One layer, at its narrowest, must fit the budget: fewer tokens where it does not.
    while t > 16 && layer_macs(t, d) > MAC_BUDGET {
        t /= 2;
    }
    let mut x = INPUT_NAME.to_string();
    let mut drawn = vec![format!("{t} tokens x {d}, {heads} heads")];
    let mut macs: u64 = 0;
    let layers = rng.gen_range(2..=4);
    for l in 0..layers {
        let mut ff = d * pick(rng, &[1, 2, 3, 4]);
        // The first layer narrows its feed-forward to fit; a later one that does not fit ends the chain.
        while l == 0 && ff > d && layer_macs(t, ff) > MAC_BUDGET {
            ff -= d;
        }
        if macs + layer_macs(t, ff) > MAC_BUDGET {
            break;
        }
        let with_gelu = rng.gen_bool(0.5);
        x = encoder_layer(b, &format!("layer{}", l + 1), &x, t, d, heads, ff, with_gelu);
        macs += layer_macs(t, ff);
        drawn.push(format!("attention + ff {ff} {}", if with_gelu { "gelu" } else { "relu" }));
    }
    Drawn { input_shape: vec![1, t, d], output_shape: vec![1, t, d], last: x, description: drawn.join(", "), macs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    #[test]
    fn names_are_unique_and_found() {
        let all = probes();
        assert_eq!(all.len(), PROBES);
        for p in &all {
            assert!(is_probe(&p.name));
            assert_eq!(find(&p.name).as_ref(), Some(p));
        }
        let mut names: Vec<&str> = all.iter().map(|p| p.name.as_str()).collect();
        names.dedup();
        assert_eq!(names.len(), all.len());
        assert!(!is_probe("resnet"));
        assert!(!is_probe("probe-mine"), "a user's model that only looks like one");
        assert!(matches!(build("probe-cnn-99"), Err(ZooError::UnknownModel { .. })));
    }

    #[test]
    fn builds_are_deterministic() {
        for p in probes().iter().take(3) {
            assert_eq!(build(&p.name).unwrap(), build(&p.name).unwrap());
        }
    }

    #[test]
    fn every_probe_runs_in_tract_with_the_shapes_it_declares() {
        let mut descriptions = vec![];
        // The budget bounds the work as tandem counts it on the optimised graph, which can be less
        // than the ONNX graph's (tract computes a strided 1×1 convolution's inputs only where it
        // reads them), and most probes keep all of it.
        let mut kept = 0;
        for p in probes() {
            let built = build_probe(&p);
            let bytes = built.bytes();
            let plan = tract_onnx::onnx()
                .model_for_read(&mut &bytes[..])
                .and_then(|m| m.with_input_fact(0, f32::fact(&built.input_shape).into()))
                .and_then(|m| m.into_optimized())
                .and_then(|m| m.into_runnable())
                .unwrap_or_else(|e| panic!("{}: {e:?}", p.name));
            let input = Tensor::zero::<f32>(&built.input_shape).unwrap();
            let out = plan.run(tvec!(input.into_tvalue())).unwrap_or_else(|e| panic!("{}: {e:?}", p.name));
            assert_eq!(out[0].shape(), &built.output_shape[..], "{}: {}", p.name, built.description);
            let graph = crate::Graph::load_bytes(&p.name, &bytes, &[]).unwrap();
            let counted: u64 = graph.ops.iter().map(|o| o.cost.macs).sum();
            assert!(counted > 0 && counted <= built.macs && built.macs <= MAC_BUDGET, "{}: {counted} MACs: {}", p.name, built.description);
            kept += usize::from(counted == built.macs);
            descriptions.push(built.description);
        }
        assert!(kept * 2 > PROBES, "{kept}");
        // The generator draws different networks, not one network many times.
        descriptions.sort();
        descriptions.dedup();
        assert_eq!(descriptions.len(), PROBES);
    }
}
