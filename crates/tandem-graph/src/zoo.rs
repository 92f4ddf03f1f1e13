//! The built-in model zoo: standard architectures written as real ONNX files.
//!
//! Every model is assembled node by node from the protobuf types that `tract-onnx` exposes
//! (`tract_onnx::pb`), with weights drawn from a ChaCha8 random generator, so a
//! `(name, seed)` pair always produces the very same bytes. The graphs use opset 17 and
//! IR version 8, take one `f32` input named `input` with a fixed shape and produce one
//! output named `output`. Weights are scaled He-style (variance `gain² / fan_in`) so that
//! activations stay in a sane range through the whole network.
//!
//! The models are deliberately small (tens of MFLOPs) so that tests can run all of them
//! many times on a modest machine, yet they have the structure of their full-size
//! counterparts: residual chains, depthwise-separable inverted residuals, parallel
//! branches joined by `Concat`, and multi-head self-attention.

use std::path::{Path, PathBuf};

use prost::Message;
use rand::{Rng, SeedableRng};
use rand_chacha::ChaCha8Rng;
pub mod probe;

use tract_onnx::pb::{
    attribute_proto, tensor_proto, tensor_shape_proto, type_proto, AttributeProto, GraphProto,
    ModelProto, NodeProto, OperatorSetIdProto, TensorProto, TensorShapeProto, TypeProto,
    ValueInfoProto,
};

/// The ONNX operator set version every zoo model declares.
pub const OPSET_VERSION: i64 = 17;
/// The ONNX IR version every zoo model declares.
pub const IR_VERSION: i64 = 8;
/// The name of the single graph input of every zoo model.
pub const INPUT_NAME: &str = "input";
/// The name of the single graph output of every zoo model.
pub const OUTPUT_NAME: &str = "output";

/// One zoo entry.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ZooModel {
    /// The name used to select the model (`resnet`, `mobilenet`, ...).
    pub name: &'static str,
    /// A one-line description of the architecture.
    pub description: &'static str,
    /// The fixed shape of the `f32` input tensor named `input`.
    pub input_shape: &'static [usize],
    /// The shape of the `f32` output tensor named `output`.
    pub output_shape: &'static [usize],
}

impl ZooModel {
    /// The number of elements of the input tensor.
    pub fn input_len(&self) -> usize {
        self.input_shape.iter().product()
    }

    /// The number of elements of the output tensor.
    pub fn output_len(&self) -> usize {
        self.output_shape.iter().product()
    }
}

static MODELS: [ZooModel; 4] = [
    ZooModel {
        name: "resnet",
        description: "ResNet-style residual CNN: 3 stages x 2 basic blocks (32/64/128 channels), 10 classes",
        input_shape: &[1, 3, 96, 96],
        output_shape: &[1, 10],
    },
    ZooModel {
        name: "mobilenet",
        description: "MobileNetV2-style CNN: 6 inverted residual blocks with depthwise convolutions and Relu6, 10 classes",
        input_shape: &[1, 3, 96, 96],
        output_shape: &[1, 10],
    },
    ZooModel {
        name: "inception",
        description: "Inception-style CNN: 2 blocks of 4 parallel branches joined by Concat, 10 classes",
        input_shape: &[1, 3, 64, 64],
        output_shape: &[1, 10],
    },
    ZooModel {
        name: "transformer",
        description: "Transformer encoder: 2 pre-norm layers, d_model 128, 4 heads, feed-forward 256, 64 tokens",
        input_shape: &[1, 64, 128],
        output_shape: &[1, 64, 128],
    },
];

/// All entries, the default first.
pub fn models() -> &'static [ZooModel] {
    &MODELS
}

/// The default zoo entry (the first of [`models`]).
pub fn default_model() -> &'static ZooModel {
    &MODELS[0]
}

/// The names of all entries, comma-separated, in [`models`] order.
pub fn valid_names() -> String {
    MODELS.iter().map(|m| m.name).collect::<Vec<_>>().join(", ")
}

/// Look one up by name.
pub fn find(name: &str) -> Option<&'static ZooModel> {
    MODELS.iter().find(|m| m.name == name)
}

/// Look one up by name, or fail with [`ZooError::UnknownModel`], which names the probe networks too
/// (`probe-wide-09` is more likely a probe mistyped than a model).
pub fn get(name: &str) -> Result<&'static ZooModel, ZooError> {
    find(name).ok_or_else(|| ZooError::UnknownModel {
        name: name.to_string(),
        valid: format!("{}; probe networks {}", valid_names(), probe::valid_names()),
    })
}

/// What can go wrong in the zoo.
#[derive(Debug, thiserror::Error)]
pub enum ZooError {
    /// No zoo entry has that name.
    #[error("unknown zoo model `{name}` (valid: {valid})")]
    UnknownModel {
        /// The name asked for.
        name: String,
        /// The valid names, comma-separated.
        valid: String,
    },
    /// Writing a file failed.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file being written.
        path: PathBuf,
        /// The underlying error.
        source: std::io::Error,
    },
    /// tract failed to load or run a zoo model (only from [`reference_io`]).
    #[error("tract failed on zoo model `{name}`: {message}")]
    Tract {
        /// The zoo model.
        name: String,
        /// tract's error, with its context chain.
        message: String,
    },
}

/// The ONNX model of a zoo entry as protobuf structures, weights from a ChaCha8 RNG seeded
/// with `seed`.
pub fn build_proto(name: &str, seed: u64) -> Result<ModelProto, ZooError> {
    let model = get(name)?;
    let mut b = GraphBuilder::new(seed);
    let out = match model.name {
        "resnet" => resnet(&mut b),
        "mobilenet" => mobilenet(&mut b),
        "inception" => inception(&mut b),
        "transformer" => transformer(&mut b),
        other => unreachable!("zoo model {other} has no builder"),
    };
    Ok(b.finish(model, &out))
}

/// The ONNX bytes of the model, weights from a ChaCha8 RNG seeded with `seed` (deterministic:
/// same seed, same bytes).
pub fn build(name: &str, seed: u64) -> Result<Vec<u8>, ZooError> {
    Ok(build_proto(name, seed)?.encode_to_vec())
}

/// Write it to a file.
pub fn write(name: &str, seed: u64, path: &Path) -> Result<(), ZooError> {
    let bytes = build(name, seed)?;
    std::fs::write(path, bytes).map_err(|source| ZooError::Io {
        path: path.to_path_buf(),
        source,
    })
}

/// A deterministic input for a zoo entry: uniform values in `[-1, 1)` from a ChaCha8 RNG
/// seeded with `seed` (a stream independent of the weights' one).
pub fn random_input(model: &ZooModel, seed: u64) -> Vec<f32> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    rng.set_stream(1);
    (0..model.input_len())
        .map(|_| rng.gen_range(-1.0f32..1.0f32))
        .collect()
}

/// `(input, output, output shape)` of a reference run, as returned by [`reference_io`].
pub type ReferenceIo = (Vec<f32>, Vec<f32>, Vec<usize>);

/// Run the model (weights seeded with `seed`) in tract on [`random_input`] with the same
/// seed; returns `(input, output, output shape)`.
pub fn reference_io(name: &str, seed: u64) -> Result<ReferenceIo, ZooError> {
    use tract_onnx::prelude::*;
    let model = get(name)?;
    let bytes = build(name, seed)?;
    let input = random_input(model, seed);
    let run = || -> TractResult<(Vec<f32>, Vec<usize>)> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])?
            .with_input_fact(0, f32::fact(model.input_shape).into())?
            .into_optimized()?
            .into_runnable()?;
        let t = Tensor::from_shape(model.input_shape, &input)?;
        let out = plan.run(tvec!(t.into_tvalue()))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        Ok((view.iter().copied().collect(), view.shape().to_vec()))
    };
    let (output, shape) = run().map_err(|e| ZooError::Tract {
        name: name.to_string(),
        message: format!("{e:#}"),
    })?;
    Ok((input, output, shape))
}

/// Write `data` (of `shape`, C order) as a NPY v1.0 file of little-endian `f32` (`<f4`).
pub fn write_npy(path: &Path, shape: &[usize], data: &[f32]) -> Result<(), ZooError> {
    let bytes = npy_bytes(shape, data);
    std::fs::write(path, bytes).map_err(|source| ZooError::Io {
        path: path.to_path_buf(),
        source,
    })
}

fn npy_bytes(shape: &[usize], data: &[f32]) -> Vec<u8> {
    assert_eq!(
        shape.iter().product::<usize>(),
        data.len(),
        "npy shape does not match data"
    );
    let dims = match shape {
        [d] => format!("({d},)"),
        _ => format!(
            "({})",
            shape
                .iter()
                .map(|d| d.to_string())
                .collect::<Vec<_>>()
                .join(", ")
        ),
    };
    let mut header = format!("{{'descr': '<f4', 'fortran_order': False, 'shape': {dims}, }}");
    // magic (6) + version (2) + header length (2) + header, padded with spaces and ended by a
    // newline so that the data starts on a 64-byte boundary.
    let unpadded = 10 + header.len() + 1;
    header.push_str(&" ".repeat((64 - unpadded % 64) % 64));
    header.push('\n');
    let mut out = Vec::with_capacity(10 + header.len() + 4 * data.len());
    out.extend_from_slice(b"\x93NUMPY\x01\x00");
    out.extend_from_slice(&(header.len() as u16).to_le_bytes());
    out.extend_from_slice(header.as_bytes());
    for v in data {
        out.extend_from_slice(&v.to_le_bytes());
    }
    out
}

// ---------------------------------------------------------------------------------------------
// Graph building.
// ---------------------------------------------------------------------------------------------

const FLOAT: i32 = tensor_proto::DataType::Float as i32;
const INT64: i32 = tensor_proto::DataType::Int64 as i32;

/// He gain for layers followed by a rectifier.
const RELU_GAIN: f32 = std::f32::consts::SQRT_2;
/// Gain for linear layers.
const LINEAR_GAIN: f32 = 1.0;

fn attr_int(name: &str, i: i64) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_proto::AttributeType::Int as i32,
        i,
        ..Default::default()
    }
}

fn attr_ints(name: &str, ints: &[i64]) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_proto::AttributeType::Ints as i32,
        ints: ints.to_vec(),
        ..Default::default()
    }
}

fn attr_float(name: &str, f: f32) -> AttributeProto {
    AttributeProto {
        name: name.to_string(),
        r#type: attribute_proto::AttributeType::Float as i32,
        f,
        ..Default::default()
    }
}

fn value_info(name: &str, shape: &[usize]) -> ValueInfoProto {
    let dim = shape
        .iter()
        .map(|&d| tensor_shape_proto::Dimension {
            value: Some(tensor_shape_proto::dimension::Value::DimValue(d as i64)),
            ..Default::default()
        })
        .collect();
    ValueInfoProto {
        name: name.to_string(),
        r#type: Some(TypeProto {
            value: Some(type_proto::Value::TensorType(type_proto::Tensor {
                elem_type: FLOAT,
                shape: Some(TensorShapeProto { dim }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    }
}

/// Accumulates nodes and initializers; every node output is named after its node.
struct GraphBuilder {
    rng: ChaCha8Rng,
    nodes: Vec<NodeProto>,
    initializers: Vec<TensorProto>,
}

impl GraphBuilder {
    fn new(seed: u64) -> GraphBuilder {
        GraphBuilder {
            rng: ChaCha8Rng::seed_from_u64(seed),
            nodes: vec![],
            initializers: vec![],
        }
    }

    fn has_initializer(&self, name: &str) -> bool {
        self.initializers.iter().any(|t| t.name == name)
    }

    fn init_f32(&mut self, name: &str, dims: &[usize], data: &[f32]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.init_raw(name, dims, FLOAT, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    fn init_i64(&mut self, name: &str, dims: &[usize], data: &[i64]) -> String {
        debug_assert_eq!(dims.iter().product::<usize>(), data.len());
        self.init_raw(name, dims, INT64, data.iter().flat_map(|v| v.to_le_bytes()).collect())
    }

    /// An initializer from little-endian raw bytes of ONNX type `data_type`.
    fn init_raw(&mut self, name: &str, dims: &[usize], data_type: i32, raw_data: Vec<u8>) -> String {
        debug_assert!(!self.has_initializer(name), "duplicate initializer {name}");
        self.initializers.push(TensorProto {
            name: name.to_string(),
            dims: dims.iter().map(|&d| d as i64).collect(),
            data_type,
            raw_data,
            ..Default::default()
        });
        name.to_string()
    }

    /// A shared scalar `f32` constant (created once per graph).
    fn scalar(&mut self, name: &str, value: f32) -> String {
        if !self.has_initializer(name) {
            self.init_f32(name, &[], &[value]);
        }
        name.to_string()
    }

    /// A shared `int64` vector constant (created once per graph).
    fn ints(&mut self, name: &str, values: &[i64]) -> String {
        if !self.has_initializer(name) {
            self.init_i64(name, &[values.len()], values);
        }
        name.to_string()
    }

    /// `n` values uniform in `[-a, a)` with standard deviation `std` (`a = std·√3`).
    fn uniform(&mut self, n: usize, std: f32) -> Vec<f32> {
        let a = std * 3f32.sqrt();
        (0..n).map(|_| self.rng.gen_range(-a..a)).collect()
    }

    /// A weight of `dims` with He-style variance `gain² / fan_in`.
    fn weight(&mut self, name: &str, dims: &[usize], fan_in: usize, gain: f32) -> String {
        let data = self.uniform(dims.iter().product(), gain / (fan_in as f32).sqrt());
        self.init_f32(name, dims, &data)
    }

    /// A small random bias.
    fn bias(&mut self, name: &str, n: usize) -> String {
        let data = self.uniform(n, 0.02);
        self.init_f32(name, &[n], &data)
    }

    fn node(
        &mut self,
        op: &str,
        name: &str,
        inputs: &[&str],
        attribute: Vec<AttributeProto>,
    ) -> String {
        debug_assert!(
            self.nodes.iter().all(|n| n.name != name),
            "duplicate node {name}"
        );
        self.nodes.push(NodeProto {
            input: inputs.iter().map(|s| s.to_string()).collect(),
            output: vec![name.to_string()],
            name: name.to_string(),
            op_type: op.to_string(),
            attribute,
            ..Default::default()
        });
        name.to_string()
    }

    /// Conv with bias, `k×k` kernel, "same" padding `k/2`.
    #[allow(clippy::too_many_arguments)]
    fn conv(
        &mut self,
        name: &str,
        x: &str,
        cin: usize,
        cout: usize,
        k: usize,
        stride: usize,
        group: usize,
        gain: f32,
    ) -> String {
        let fan_in = cin / group * k * k;
        let w = self.weight(
            &format!("{name}.weight"),
            &[cout, cin / group, k, k],
            fan_in,
            gain,
        );
        let b = self.bias(&format!("{name}.bias"), cout);
        let p = (k / 2) as i64;
        let (k, s) = (k as i64, stride as i64);
        let mut attrs = vec![
            attr_ints("kernel_shape", &[k, k]),
            attr_ints("strides", &[s, s]),
            attr_ints("pads", &[p, p, p, p]),
            attr_ints("dilations", &[1, 1]),
        ];
        if group != 1 {
            attrs.push(attr_int("group", group as i64));
        }
        self.node("Conv", name, &[x, &w, &b], attrs)
    }

    fn relu(&mut self, name: &str, x: &str) -> String {
        self.node("Relu", name, &[x], vec![])
    }

    /// Relu6 as opset-11+ `Clip` with min/max given as scalar initializers.
    fn relu6(&mut self, name: &str, x: &str) -> String {
        let lo = self.scalar("const.zero", 0.0);
        let hi = self.scalar("const.six", 6.0);
        self.node("Clip", name, &[x, &lo, &hi], vec![])
    }

    fn binary(&mut self, op: &str, name: &str, a: &str, b: &str) -> String {
        self.node(op, name, &[a, b], vec![])
    }

    fn pool(
        &mut self,
        op: &str,
        name: &str,
        x: &str,
        k: usize,
        stride: usize,
        pad: usize,
    ) -> String {
        let (k, s, p) = (k as i64, stride as i64, pad as i64);
        self.node(
            op,
            name,
            &[x],
            vec![
                attr_ints("kernel_shape", &[k, k]),
                attr_ints("strides", &[s, s]),
                attr_ints("pads", &[p, p, p, p]),
            ],
        )
    }

    /// GlobalAveragePool, Flatten and a Gemm classifier (`transB = 1`).
    fn classifier_head(&mut self, x: &str, channels: usize, classes: usize) -> String {
        let gap = self.node("GlobalAveragePool", "head.gap", &[x], vec![]);
        let flat = self.node(
            "Flatten",
            "head.flatten",
            &[&gap],
            vec![attr_int("axis", 1)],
        );
        let w = self.weight(
            "head.fc.weight",
            &[classes, channels],
            channels,
            LINEAR_GAIN,
        );
        let b = self.bias("head.fc.bias", classes);
        self.node(
            "Gemm",
            "head.fc",
            &[&flat, &w, &b],
            vec![
                attr_float("alpha", 1.0),
                attr_float("beta", 1.0),
                attr_int("transB", 1),
            ],
        )
    }

    /// `x @ W + b` with `W: [din, dout]`.
    fn linear(&mut self, name: &str, x: &str, din: usize, dout: usize, gain: f32) -> String {
        let w = self.weight(&format!("{name}.weight"), &[din, dout], din, gain);
        let b = self.bias(&format!("{name}.bias"), dout);
        let mm = self.binary("MatMul", &format!("{name}.matmul"), x, &w);
        self.binary("Add", &format!("{name}.add"), &mm, &b)
    }

    /// LayerNormalization over the last axis, scale near 1 and bias near 0.
    fn layer_norm(&mut self, name: &str, x: &str, d: usize) -> String {
        let scale: Vec<f32> = self.uniform(d, 0.05).into_iter().map(|v| 1.0 + v).collect();
        let scale = self.init_f32(&format!("{name}.scale"), &[d], &scale);
        let bias = self.bias(&format!("{name}.bias"), d);
        self.node(
            "LayerNormalization",
            name,
            &[x, &scale, &bias],
            vec![attr_int("axis", -1), attr_float("epsilon", 1e-5)],
        )
    }

    /// Names the final tensor `output` and wraps everything into a model.
    fn finish(self, model: &ZooModel, last: &str) -> ModelProto {
        self.finish_as(&format!("tandem_zoo_{}", model.name), model.description, model.input_shape, model.output_shape, last)
    }

    /// [`GraphBuilder::finish`] for a graph that is no [`ZooModel`] (the probe networks).
    fn finish_as(mut self, graph_name: &str, description: &str, input_shape: &[usize], output_shape: &[usize], last: &str) -> ModelProto {
        for node in &mut self.nodes {
            for o in &mut node.output {
                if o == last {
                    *o = OUTPUT_NAME.to_string();
                }
            }
            for i in &mut node.input {
                if i == last {
                    *i = OUTPUT_NAME.to_string();
                }
            }
        }
        let graph = GraphProto {
            node: self.nodes,
            name: graph_name.to_string(),
            initializer: self.initializers,
            doc_string: description.to_string(),
            input: vec![value_info(INPUT_NAME, input_shape)],
            output: vec![value_info(OUTPUT_NAME, output_shape)],
            ..Default::default()
        };
        ModelProto {
            ir_version: IR_VERSION,
            opset_import: vec![OperatorSetIdProto {
                domain: String::new(),
                version: OPSET_VERSION,
            }],
            producer_name: "tandem-zoo".to_string(),
            producer_version: env!("CARGO_PKG_VERSION").to_string(),
            model_version: 1,
            doc_string: description.to_string(),
            graph: Some(graph),
            ..Default::default()
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Architectures.
// ---------------------------------------------------------------------------------------------

/// ResNet-style: stem, max pool, 3 stages of 2 basic blocks, classifier.
fn resnet(b: &mut GraphBuilder) -> String {
    let stem = b.conv("stem.conv", INPUT_NAME, 3, 32, 3, 2, 1, RELU_GAIN);
    let stem = b.relu("stem.relu", &stem);
    let mut x = b.pool("MaxPool", "stem.maxpool", &stem, 3, 2, 1);
    let mut cin = 32;
    for (stage, &cout) in [32usize, 64, 128].iter().enumerate() {
        for block in 0..2 {
            let stride = if stage > 0 && block == 0 { 2 } else { 1 };
            let p = format!("stage{}.block{}", stage + 1, block + 1);
            let c1 = b.conv(
                &format!("{p}.conv1"),
                &x,
                cin,
                cout,
                3,
                stride,
                1,
                RELU_GAIN,
            );
            let r1 = b.relu(&format!("{p}.relu1"), &c1);
            // The residual branch is scaled down so that the sum keeps a steady variance.
            let c2 = b.conv(&format!("{p}.conv2"), &r1, cout, cout, 3, 1, 1, 0.5);
            let shortcut = if stride != 1 || cin != cout {
                b.conv(
                    &format!("{p}.shortcut"),
                    &x,
                    cin,
                    cout,
                    1,
                    stride,
                    1,
                    LINEAR_GAIN,
                )
            } else {
                x.clone()
            };
            let sum = b.binary("Add", &format!("{p}.add"), &c2, &shortcut);
            x = b.relu(&format!("{p}.relu2"), &sum);
            cin = cout;
        }
    }
    b.classifier_head(&x, cin, 10)
}

/// MobileNetV2-style: stem, inverted residual blocks, 1x1 conv to 256, classifier.
fn mobilenet(b: &mut GraphBuilder) -> String {
    let stem = b.conv("stem.conv", INPUT_NAME, 3, 32, 3, 2, 1, RELU_GAIN);
    let mut x = b.relu6("stem.relu6", &stem);
    let mut cin = 32;
    // (expansion, output channels, stride)
    let blocks: [(usize, usize, usize); 6] = [
        (1, 16, 1),
        (4, 24, 2),
        (4, 24, 1),
        (4, 32, 2),
        (4, 32, 1),
        (4, 64, 2),
    ];
    for (i, &(t, cout, stride)) in blocks.iter().enumerate() {
        let p = format!("block{}", i + 1);
        let hidden = cin * t;
        let mut h = x.clone();
        if t != 1 {
            let e = b.conv(&format!("{p}.expand"), &h, cin, hidden, 1, 1, 1, RELU_GAIN);
            h = b.relu6(&format!("{p}.expand.relu6"), &e);
        }
        let d = b.conv(
            &format!("{p}.depthwise"),
            &h,
            hidden,
            hidden,
            3,
            stride,
            hidden,
            RELU_GAIN,
        );
        let d = b.relu6(&format!("{p}.depthwise.relu6"), &d);
        let residual = stride == 1 && cin == cout;
        let gain = if residual { 0.5 } else { LINEAR_GAIN };
        let proj = b.conv(&format!("{p}.project"), &d, hidden, cout, 1, 1, 1, gain);
        x = if residual {
            b.binary("Add", &format!("{p}.add"), &proj, &x)
        } else {
            proj
        };
        cin = cout;
    }
    let last = b.conv("last.conv", &x, cin, 256, 1, 1, 1, RELU_GAIN);
    let last = b.relu6("last.relu6", &last);
    b.classifier_head(&last, 256, 10)
}

/// Channel counts of one inception block: 1x1, (3x3 reduce, 3x3), (5x5 reduce, 5x5), pool proj.
struct InceptionSpec {
    c1: usize,
    c3r: usize,
    c3: usize,
    c5r: usize,
    c5: usize,
    cp: usize,
}

impl InceptionSpec {
    fn out_channels(&self) -> usize {
        self.c1 + self.c3 + self.c5 + self.cp
    }
}

fn inception_block(
    b: &mut GraphBuilder,
    p: &str,
    x: &str,
    cin: usize,
    s: &InceptionSpec,
) -> String {
    let g = RELU_GAIN;
    let b1 = b.conv(&format!("{p}.b1.conv1x1"), x, cin, s.c1, 1, 1, 1, g);
    let b1 = b.relu(&format!("{p}.b1.relu"), &b1);

    let b2 = b.conv(&format!("{p}.b2.reduce"), x, cin, s.c3r, 1, 1, 1, g);
    let b2 = b.relu(&format!("{p}.b2.reduce.relu"), &b2);
    let b2 = b.conv(&format!("{p}.b2.conv3x3"), &b2, s.c3r, s.c3, 3, 1, 1, g);
    let b2 = b.relu(&format!("{p}.b2.relu"), &b2);

    let b3 = b.conv(&format!("{p}.b3.reduce"), x, cin, s.c5r, 1, 1, 1, g);
    let b3 = b.relu(&format!("{p}.b3.reduce.relu"), &b3);
    let b3 = b.conv(&format!("{p}.b3.conv5x5"), &b3, s.c5r, s.c5, 5, 1, 1, g);
    let b3 = b.relu(&format!("{p}.b3.relu"), &b3);

    let b4 = b.pool("MaxPool", &format!("{p}.b4.maxpool"), x, 3, 1, 1);
    let b4 = b.conv(&format!("{p}.b4.conv1x1"), &b4, cin, s.cp, 1, 1, 1, g);
    let b4 = b.relu(&format!("{p}.b4.relu"), &b4);

    b.node(
        "Concat",
        &format!("{p}.concat"),
        &[&b1, &b2, &b3, &b4],
        vec![attr_int("axis", 1)],
    )
}

/// Inception-style: stem, two 4-branch blocks with an average pool between, classifier.
fn inception(b: &mut GraphBuilder) -> String {
    let stem = b.conv("stem.conv", INPUT_NAME, 3, 32, 3, 2, 1, RELU_GAIN);
    let x = b.relu("stem.relu", &stem);
    let s1 = InceptionSpec {
        c1: 16,
        c3r: 16,
        c3: 24,
        c5r: 8,
        c5: 8,
        cp: 16,
    };
    let x = inception_block(b, "inception1", &x, 32, &s1);
    let x = b.pool("AveragePool", "inception1.avgpool", &x, 2, 2, 0);
    let s2 = InceptionSpec {
        c1: 32,
        c3r: 32,
        c3: 48,
        c5r: 16,
        c5: 24,
        cp: 24,
    };
    let x = inception_block(b, "inception2", &x, s1.out_channels(), &s2);
    b.classifier_head(&x, s2.out_channels(), 10)
}

const TOKENS: usize = 64;
const D_MODEL: usize = 128;
const HEADS: usize = 4;
const D_FF: usize = 256;
const LAYERS: usize = 2;

/// Multi-head self-attention of one encoder layer, on the normalised input `x` of `[1, tokens, d]`.
/// Every layer of one graph has the same `tokens`, `d` and `heads` (the reshape targets are shared
/// constants).
fn attention(b: &mut GraphBuilder, p: &str, x: &str, tokens: usize, d: usize, heads: usize) -> String {
    let head_dim = d / heads;
    let split = b.ints(
        "const.shape.split_heads",
        &[1, tokens as i64, heads as i64, head_dim as i64],
    );
    let merge = b.ints(
        "const.shape.merge_heads",
        &[1, tokens as i64, d as i64],
    );
    let mut heads = vec![];
    for (which, perm) in [
        ("q", [0, 2, 1, 3]),
        ("k", [0, 2, 3, 1]),
        ("v", [0, 2, 1, 3]),
    ] {
        let proj = b.linear(&format!("{p}.{which}"), x, d, d, LINEAR_GAIN);
        let r = b.node(
            "Reshape",
            &format!("{p}.{which}.reshape"),
            &[&proj, &split],
            vec![],
        );
        let t = b.node(
            "Transpose",
            &format!("{p}.{which}.transpose"),
            &[&r],
            vec![attr_ints("perm", &perm)],
        );
        heads.push(t);
    }
    let scores = b.binary("MatMul", &format!("{p}.scores"), &heads[0], &heads[1]);
    let scale = b.scalar("const.attention_scale", 1.0 / (head_dim as f32).sqrt());
    let scaled = b.binary("Mul", &format!("{p}.scale"), &scores, &scale);
    let probs = b.node(
        "Softmax",
        &format!("{p}.softmax"),
        &[&scaled],
        vec![attr_int("axis", -1)],
    );
    let ctx = b.binary("MatMul", &format!("{p}.context"), &probs, &heads[2]);
    let ctx = b.node(
        "Transpose",
        &format!("{p}.context.transpose"),
        &[&ctx],
        vec![attr_ints("perm", &[0, 2, 1, 3])],
    );
    let ctx = b.node(
        "Reshape",
        &format!("{p}.context.reshape"),
        &[&ctx, &merge],
        vec![],
    );
    b.linear(&format!("{p}.out"), &ctx, d, d, LINEAR_GAIN)
}

/// Gelu written with Erf: `x * 0.5 * (1 + erf(x / √2))`.
fn gelu(b: &mut GraphBuilder, p: &str, x: &str) -> String {
    let sqrt2 = b.scalar("const.sqrt2", std::f32::consts::SQRT_2);
    let one = b.scalar("const.one", 1.0);
    let half = b.scalar("const.half", 0.5);
    let div = b.binary("Div", &format!("{p}.div"), x, &sqrt2);
    let erf = b.node("Erf", &format!("{p}.erf"), &[&div], vec![]);
    let add = b.binary("Add", &format!("{p}.add"), &erf, &one);
    let mul = b.binary("Mul", &format!("{p}.mul"), x, &add);
    b.binary("Mul", &format!("{p}.mul_half"), &mul, &half)
}

/// One pre-norm encoder layer on `x` of `[1, tokens, d]`: self-attention, then a feed-forward of
/// width `ff` with a Gelu (or, without `gelu`, a Relu), each added back to its input.
#[allow(clippy::too_many_arguments)]
fn encoder_layer(b: &mut GraphBuilder, p: &str, x: &str, tokens: usize, d: usize, heads: usize, ff: usize, with_gelu: bool) -> String {
    let ln1 = b.layer_norm(&format!("{p}.ln1"), x, d);
    let attn = attention(b, &format!("{p}.attn"), &ln1, tokens, d, heads);
    let x = b.binary("Add", &format!("{p}.attn.residual"), x, &attn);
    let ln2 = b.layer_norm(&format!("{p}.ln2"), &x, d);
    let h = b.linear(&format!("{p}.ff1"), &ln2, d, ff, RELU_GAIN);
    let h = if with_gelu { gelu(b, &format!("{p}.gelu"), &h) } else { b.relu(&format!("{p}.relu"), &h) };
    let h = b.linear(&format!("{p}.ff2"), &h, ff, d, LINEAR_GAIN);
    b.binary("Add", &format!("{p}.ff.residual"), &x, &h)
}

/// Transformer encoder: pre-norm layers of self-attention and a Gelu feed-forward.
fn transformer(b: &mut GraphBuilder) -> String {
    let mut x = INPUT_NAME.to_string();
    for layer in 0..LAYERS {
        x = encoder_layer(b, &format!("layer{}", layer + 1), &x, TOKENS, D_MODEL, HEADS, D_FF, true);
    }
    b.layer_norm("final.ln", &x, D_MODEL)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tract_onnx::prelude::*;

    fn run_tract(
        model: &ZooModel,
        bytes: &[u8],
        input: &[f32],
    ) -> TractResult<(Vec<f32>, Vec<usize>)> {
        let plan = tract_onnx::onnx()
            .model_for_read(&mut &bytes[..])?
            .with_input_fact(0, f32::fact(model.input_shape).into())?
            .into_optimized()?
            .into_runnable()?;
        let t = Tensor::from_shape(model.input_shape, input)?;
        let out = plan.run(tvec!(t.into_tvalue()))?;
        let view = out[0].to_plain_array_view::<f32>()?;
        Ok((view.iter().copied().collect(), view.shape().to_vec()))
    }

    #[test]
    fn default_is_resnet_and_names_are_unique() {
        assert_eq!(models()[0].name, "resnet");
        assert_eq!(default_model().name, "resnet");
        let mut names: Vec<_> = models().iter().map(|m| m.name).collect();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), models().len());
        for m in models() {
            assert_eq!(find(m.name), Some(m));
        }
    }

    #[test]
    fn unknown_model_lists_valid_names() {
        assert!(find("alexnet").is_none());
        match build("alexnet", 0) {
            Err(ZooError::UnknownModel { name, valid }) => {
                assert_eq!(name, "alexnet");
                assert!(valid.starts_with("resnet, mobilenet, inception, transformer; probe networks probe-cnn-01 to "), "{valid}");
                assert!(valid.contains("probe-wide-01 to probe-wide-06"), "{valid}");
            }
            other => panic!("expected UnknownModel, got {other:?}"),
        }
        let msg = get("alexnet").unwrap_err().to_string();
        assert!(
            msg.contains("alexnet") && msg.contains("transformer"),
            "{msg}"
        );
    }

    #[test]
    fn builds_are_deterministic() {
        for m in models() {
            let a = build(m.name, 7).unwrap();
            let b = build(m.name, 7).unwrap();
            let c = build(m.name, 8).unwrap();
            assert_eq!(a, b, "{}: same seed, different bytes", m.name);
            assert_ne!(a, c, "{}: different seeds, same bytes", m.name);
        }
    }

    #[test]
    fn protos_are_well_formed() {
        for m in models() {
            let proto = ModelProto::decode(&*build(m.name, 1).unwrap()).unwrap();
            assert_eq!(proto.ir_version, 8);
            assert_eq!(proto.opset_import[0].version, 17);
            let g = proto.graph.unwrap();
            assert_eq!(g.input.len(), 1);
            assert_eq!(g.input[0].name, "input");
            assert_eq!(g.output.len(), 1);
            assert_eq!(g.output[0].name, "output");
            let mut names: Vec<_> = g.node.iter().map(|n| n.name.clone()).collect();
            assert!(names.iter().all(|n| !n.is_empty()));
            names.sort();
            let before = names.len();
            names.dedup();
            assert_eq!(before, names.len(), "{}: node names are not unique", m.name);
            let producers: Vec<_> = g
                .node
                .iter()
                .filter(|n| n.output.contains(&"output".to_string()))
                .collect();
            assert_eq!(producers.len(), 1);
        }
    }

    #[test]
    fn every_model_runs_in_tract() {
        for m in models() {
            let bytes = build(m.name, 42).unwrap();
            let input = random_input(m, 3);
            let (out, shape) =
                run_tract(m, &bytes, &input).unwrap_or_else(|e| panic!("{}: {e:?}", m.name));
            assert_eq!(shape, m.output_shape, "{}", m.name);
            assert_eq!(out.len(), m.output_len());
            assert!(
                out.iter().all(|v| v.is_finite()),
                "{}: non-finite output",
                m.name
            );
            assert!(out.iter().any(|&v| v != 0.0), "{}: all-zero output", m.name);
            let max = out.iter().fold(0f32, |a, v| a.max(v.abs()));
            assert!(
                max > 1e-3 && max < 1e3,
                "{}: output magnitude {max}",
                m.name
            );
        }
    }

    #[test]
    fn reference_io_is_deterministic() {
        let m = find("inception").unwrap();
        let (i1, o1, s1) = reference_io(m.name, 5).unwrap();
        let (i2, o2, s2) = reference_io(m.name, 5).unwrap();
        assert_eq!(i1.len(), m.input_len());
        assert_eq!(s1, m.output_shape);
        assert_eq!((i1, o1, s1), (i2, o2, s2));
    }

    #[test]
    fn write_creates_a_loadable_file() {
        let path =
            std::env::temp_dir().join(format!("tandem-zoo-test-{}.onnx", std::process::id()));
        write("mobilenet", 9, &path).unwrap();
        let on_disk = std::fs::read(&path).unwrap();
        std::fs::remove_file(&path).unwrap();
        assert_eq!(on_disk, build("mobilenet", 9).unwrap());
        let err = write("mobilenet", 9, Path::new("/nonexistent-dir/x.onnx")).unwrap_err();
        assert!(matches!(err, ZooError::Io { .. }), "{err:?}");
    }

    #[test]
    fn npy_header_is_valid() {
        let bytes = npy_bytes(&[2, 3], &[0.0, 1.0, 2.0, 3.0, 4.0, 5.0]);
        assert_eq!(&bytes[..8], b"\x93NUMPY\x01\x00");
        let hlen = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
        assert_eq!((10 + hlen) % 64, 0);
        let header = std::str::from_utf8(&bytes[10..10 + hlen]).unwrap();
        assert!(header.starts_with("{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }"));
        assert!(header.ends_with('\n'));
        assert_eq!(bytes.len(), 10 + hlen + 24);
        assert_eq!(&bytes[10 + hlen + 4..10 + hlen + 8], &1f32.to_le_bytes());
        let one_d = npy_bytes(&[3], &[1.0, 2.0, 3.0]);
        let hlen = u16::from_le_bytes([one_d[8], one_d[9]]) as usize;
        let header = std::str::from_utf8(&one_d[10..10 + hlen]).unwrap();
        assert!(header.contains("'shape': (3,)"), "{header}");
    }

    /// Writes `NAME.onnx`, `NAME.input.npy` and `NAME.output.npy` (tract's output) for every
    /// zoo model into `$TANDEM_ZOO_DIR`, for `tools/check-zoo.py` to compare with onnxruntime.
    #[test]
    #[ignore]
    fn export_for_onnxruntime() {
        let dir = std::env::var_os("TANDEM_ZOO_DIR").expect("set TANDEM_ZOO_DIR");
        let dir = Path::new(&dir);
        std::fs::create_dir_all(dir).unwrap();
        let seed = std::env::var("TANDEM_ZOO_SEED")
            .ok()
            .map(|s| s.parse().unwrap())
            .unwrap_or(0);
        for m in models() {
            write(m.name, seed, &dir.join(format!("{}.onnx", m.name))).unwrap();
            let (input, output, shape) = reference_io(m.name, seed).unwrap();
            write_npy(
                &dir.join(format!("{}.input.npy", m.name)),
                m.input_shape,
                &input,
            )
            .unwrap();
            write_npy(&dir.join(format!("{}.output.npy", m.name)), &shape, &output).unwrap();
        }
    }
}
