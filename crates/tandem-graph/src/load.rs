//! Reading an ONNX file into tract, with shapes fixed and errors a person can act on.

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use prost::Message;
use tract_onnx::pb;
use tract_onnx::prelude::*;

use crate::error::{chain, GraphError, Result};

/// `--input-shape NAME=1,3,224,224`, where NAME is an input's name or its position (0, 1, ...).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InputShape {
    /// Input name or position, as the user wrote it.
    pub input: String,
    /// The concrete dimensions.
    pub dims: Vec<usize>,
}

impl std::str::FromStr for InputShape {
    type Err = GraphError;
    fn from_str(s: &str) -> Result<Self> {
        let bad = |reason: &str| GraphError::InputShapeSyntax { given: s.to_string(), reason: reason.into() };
        let (input, dims) = s.split_once('=').ok_or_else(|| bad("missing '='"))?;
        if input.trim().is_empty() {
            return Err(bad("empty input name"));
        }
        let dims = dims
            .split(',')
            .map(|d| d.trim().parse::<usize>().map_err(|_| bad(&format!("'{d}' is not a dimension"))))
            .collect::<Result<Vec<_>>>()?;
        if dims.contains(&0) {
            return Err(bad("dimensions must be at least 1"));
        }
        Ok(InputShape { input: input.trim().to_string(), dims })
    }
}

/// One declared model input, as the ONNX file states it.
#[derive(Debug, Clone)]
pub(crate) struct DeclaredInput {
    pub name: String,
    pub datum_type: DatumType,
    /// `None` for a symbolic or missing dimension.
    pub dims: Option<Vec<Option<usize>>>,
}

/// A decoded ONNX file, checked for tract support, with its input shapes resolved.
pub(crate) struct Loaded {
    pub proto: pb::ModelProto,
    pub content_hash: String,
    pub inputs: Vec<(DeclaredInput, Vec<usize>)>,
}

/// Reads and decodes the file, checks that tract knows every operator and resolves input shapes.
pub(crate) fn read(path: &Path, overrides: &[InputShape]) -> Result<Loaded> {
    let bytes = std::fs::read(path).map_err(|error| GraphError::Io { path: path.into(), error })?;
    decode(path, &bytes, overrides)
}

pub(crate) fn decode(path: &Path, bytes: &[u8], overrides: &[InputShape]) -> Result<Loaded> {
    let not_onnx = |reason: String| GraphError::NotOnnx { path: path.into(), reason };
    if bytes.is_empty() {
        return Err(not_onnx("the file is empty".into()));
    }
    let proto = pb::ModelProto::decode(bytes).map_err(|e| not_onnx(format!("protobuf decoding failed: {e}")))?;
    let graph = proto.graph.as_ref().ok_or_else(|| not_onnx("no graph in the file".into()))?;
    if graph.node.is_empty() || graph.output.is_empty() {
        return Err(not_onnx("the graph has no nodes or no outputs".into()));
    }
    check_operators(path, graph)?;
    let declared = declared_inputs(graph);
    let inputs = resolve_shapes(&declared, overrides)?;
    use sha2::Digest;
    let content_hash = hex::encode(sha2::Sha256::digest(bytes));
    Ok(Loaded { proto, content_hash, inputs })
}

fn check_operators(path: &Path, graph: &pb::GraphProto) -> Result<()> {
    let known = tract_onnx::onnx().op_register;
    let mut seen = HashSet::new();
    let mut missing = vec![];
    for node in &graph.node {
        if !known.0.contains_key(&node.op_type) && seen.insert(node.op_type.clone()) {
            let domain = if node.domain.is_empty() { String::new() } else { format!("{}.", node.domain) };
            missing.push(format!("{domain}{} (node '{}')", node.op_type, node.name));
        }
    }
    if missing.is_empty() {
        Ok(())
    } else {
        Err(GraphError::UnsupportedOperator { path: path.into(), ops: missing })
    }
}

fn datum_type(elem_type: i32) -> DatumType {
    use pb::tensor_proto::DataType as D;
    match D::try_from(elem_type) {
        Ok(D::Float16) => DatumType::F16,
        Ok(D::Double) => DatumType::F64,
        Ok(D::Int64) => DatumType::I64,
        Ok(D::Int32) => DatumType::I32,
        Ok(D::Int8) => DatumType::I8,
        Ok(D::Uint8) => DatumType::U8,
        Ok(D::Bool) => DatumType::Bool,
        _ => DatumType::F32,
    }
}

fn declared_inputs(graph: &pb::GraphProto) -> Vec<DeclaredInput> {
    let initializers: HashSet<&str> = graph.initializer.iter().map(|t| t.name.as_str()).collect();
    graph
        .input
        .iter()
        .filter(|i| !initializers.contains(i.name.as_str()))
        .map(|i| {
            let tensor = i.r#type.as_ref().and_then(|t| match &t.value {
                Some(pb::type_proto::Value::TensorType(t)) => Some(t),
                _ => None,
            });
            let dims = tensor.and_then(|t| t.shape.as_ref()).map(|s| {
                s.dim
                    .iter()
                    .map(|d| match d.value {
                        Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if v > 0 => Some(v as usize),
                        _ => None,
                    })
                    .collect()
            });
            DeclaredInput {
                name: i.name.clone(),
                datum_type: tensor.map(|t| datum_type(t.elem_type)).unwrap_or(DatumType::F32),
                dims,
            }
        })
        .collect()
}

fn show_dims(dims: &Option<Vec<Option<usize>>>) -> String {
    match dims {
        None => "unknown".into(),
        Some(d) => d.iter().map(|d| d.map(|v| v.to_string()).unwrap_or_else(|| "?".into())).collect::<Vec<_>>().join(","),
    }
}

fn resolve_shapes(declared: &[DeclaredInput], overrides: &[InputShape]) -> Result<Vec<(DeclaredInput, Vec<usize>)>> {
    let valid = || {
        declared.iter().enumerate().map(|(i, d)| format!("{} (position {i})", d.name)).collect::<Vec<_>>().join(", ")
    };
    let mut given: Vec<Option<&InputShape>> = vec![None; declared.len()];
    for o in overrides {
        let ix = declared
            .iter()
            .position(|d| d.name == o.input)
            .or_else(|| o.input.parse::<usize>().ok().filter(|&p| p < declared.len()))
            .ok_or_else(|| GraphError::UnknownInput { given: o.input.clone(), valid: valid() })?;
        given[ix] = Some(o);
    }
    declared
        .iter()
        .zip(given)
        .map(|(d, o)| {
            let shape = match (o, &d.dims) {
                (Some(o), Some(dims)) if dims.len() != o.dims.len() => {
                    return Err(GraphError::InputRank {
                        input: d.name.clone(),
                        expected: dims.len(),
                        declared: show_dims(&d.dims),
                        got: o.dims.len(),
                    })
                }
                (Some(o), _) => o.dims.clone(),
                (None, Some(dims)) if dims.iter().all(Option::is_some) => dims.iter().map(|d| d.unwrap()).collect(),
                (None, dims) => {
                    let example = match dims {
                        // Batch 1; other unknown sizes get a typical image or sequence size.
                        Some(d) => d
                            .iter()
                            .enumerate()
                            .map(|(i, v)| v.unwrap_or(if i == 0 { 1 } else if d.len() == 4 { 224 } else { 64 }).to_string())
                            .collect::<Vec<_>>()
                            .join(","),
                        None => "1,3,224,224".into(),
                    };
                    return Err(GraphError::SymbolicInput { input: d.name.clone(), shape: show_dims(dims), example });
                }
            };
            Ok((d.clone(), shape))
        })
        .collect()
}

/// The decluttered and the optimised tract models for a decoded file.
///
/// ONNX `value_info` sometimes disagrees with the shapes the user fixed (exporters write shapes for one
/// batch size); tract can ignore it, so a failure with it is retried without it.
pub(crate) fn prepare(path: &Path, loaded: &Loaded) -> Result<(TypedModel, TypedModel)> {
    let dir: Option<PathBuf> = path.parent().map(|p| p.to_path_buf());
    let attempt = |ignore_value_info: bool| -> TractResult<(TypedModel, TypedModel)> {
        let onnx = tract_onnx::onnx().with_ignore_value_info(ignore_value_info);
        let dir = dir.as_ref().and_then(|d| d.to_str());
        let mut model = onnx.parse(&loaded.proto, dir)?.model;
        for (ix, (declared, shape)) in loaded.inputs.iter().enumerate() {
            model.set_input_fact(ix, InferenceFact::dt_shape(declared.datum_type, shape.clone()))?;
        }
        let typed = model.into_typed()?.into_decluttered()?;
        let optimized = typed.clone().into_optimized()?;
        Ok((typed, optimized))
    };
    match attempt(false) {
        Ok(models) => Ok(models),
        Err(first) => {
            tracing::debug!("loading with value_info failed ({}), retrying without", chain(&first));
            attempt(true).map_err(|_| GraphError::Tract { path: path.into(), reason: chain(&first) })
        }
    }
}
