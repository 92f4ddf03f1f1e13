//! The `tandem` binary as a user meets it: output, JSON, and every kind of bad input.

use crate::common::*;

use std::path::{Path, PathBuf};


use prost::Message;
use tract_onnx::pb;

fn write_zoo(dir: &Path, name: &str) -> PathBuf {
    let path = dir.join(format!("{name}.onnx"));
    std::fs::write(&path, tandem_graph::zoo::build(name, 0).unwrap()).unwrap();
    path
}

fn write_proto(dir: &Path, file: &str, proto: &pb::ModelProto) -> PathBuf {
    let path = dir.join(file);
    std::fs::write(&path, proto.encode_to_vec()).unwrap();
    path
}

#[test]
fn inspect_zoo_model_table() {
    let o = tandem(&["inspect", "resnet"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("model resnet ("), "{out}");
    assert!(out.contains("MFLOPs") && out.contains("split axes"), "{out}");
    assert!(out.contains("ops per kind: ") && out.contains("Conv"), "{out}");
}

#[test]
fn inspect_json_has_the_contract_fields() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_zoo(dir.path(), "inception");
    let o = tandem(&["inspect", path.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    let ops = v["ops"].as_array().unwrap();
    assert!(ops.len() > 10);
    for op in ops {
        for field in ["id", "name", "op", "inputs", "outputs", "flops", "bytes_in", "bytes_out", "weight_bytes", "splittable"] {
            assert!(op.get(field).is_some(), "op lacks {field}: {op}");
        }
    }
    let sum: u64 = ops.iter().map(|o| o["flops"].as_u64().unwrap()).sum();
    assert_eq!(v["total_flops"].as_u64().unwrap(), sum);
    // An inception block joins four parallel branches, each ending in its own op. (tract packs the input
    // shared by the three 1x1 convolutions once, so those three heads form one op: packed tensors are
    // never cut.)
    let concat = ops.iter().find(|o| o["op"] == "Concat").expect("a Concat op");
    let mut producers: Vec<u64> = concat["inputs"].as_array().unwrap().iter().map(|i| i["from"].as_u64().unwrap()).collect();
    producers.dedup();
    assert_eq!(producers.len(), 4, "{concat}");
}

#[test]
fn zoo_lists_and_writes() {
    let o = tandem(&["zoo", "--json"]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let names: Vec<&str> = v["models"].as_array().unwrap().iter().map(|m| m["name"].as_str().unwrap()).collect();
    assert_eq!(names, ["resnet", "mobilenet", "inception", "transformer"]);
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("m.onnx");
    let o = tandem(&["zoo", "mobilenet", "-o", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tandem(&["inspect", path.to_str().unwrap()]);
    assert!(o.status.success() && stdout(&o).contains("DepthwiseConv"), "{}", stdout(&o));
}

#[test]
fn zoo_lists_and_writes_probe_networks() {
    let o = tandem(&["zoo", "--probes", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let probes = v["probes"].as_array().unwrap();
    assert_eq!(probes.len(), tandem_graph::zoo::probe::probes().len());
    assert!(probes.iter().all(|p| p["name"].as_str().unwrap().starts_with("probe-") && p["input_shape"].as_array().unwrap().len() >= 3), "{probes:?}");
    // The list tells where the probes are.
    assert!(stdout(&tandem(&["zoo"])).contains("tandem zoo --probes"));
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("p.onnx");
    let o = tandem(&["zoo", "probe-cnn-01", "-o", path.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(std::fs::read(&path).unwrap(), tandem_graph::zoo::probe::build("probe-cnn-01").unwrap());
    // By name, as any model.
    let o = tandem(&["inspect", "probe-tok-01", "--json"]);
    assert!(o.status.success() && stdout(&o).contains("EinSum"), "{}", stderr(&o));
    // A probe's weights are fixed by its name.
    assert_error(&tandem(&["zoo", "probe-cnn-01", "-o", path.to_str().unwrap(), "--seed", "3"]), "--seed");
    // Profiling every probe takes fixed shapes.
    assert_error(&tandem(&["profile", "probes", "--input-shape", "input=1,3,8,8", "--db", dir.path().join("t.db").to_str().unwrap()]), "--input-shape");
}

#[test]
fn zoo_unknown_name_lists_the_valid_ones() {
    assert_error(&tandem(&["zoo", "vgg", "-o", "x.onnx"]), "resnet, mobilenet, inception, transformer");
}

#[test]
fn every_command_has_help_with_an_example() {
    for cmd in ["inspect", "zoo", "devices", "profile", "query", "export"] {
        let o = tandem(&[cmd, "--help"]);
        assert!(o.status.success());
        assert!(stdout(&o).contains(&format!("tandem {cmd} ")), "{cmd} --help lacks an example");
    }
}

#[test]
fn missing_file() {
    let o = tandem(&["inspect", "/nonexistent/model.onnx"]);
    assert_error(&o, "cannot read model /nonexistent/model.onnx");
    // The OS's reason, said once.
    assert_eq!(stderr(&o).matches("os error 2").count(), 1, "{}", stderr(&o));
}

#[test]
fn not_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("notes.onnx");
    std::fs::write(&path, "this is a text file, not a model\n").unwrap();
    assert_error(&tandem(&["inspect", path.to_str().unwrap()]), "is not a valid ONNX model");
}

#[test]
fn truncated_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let bytes = tandem_graph::zoo::build("resnet", 0).unwrap();
    let path = dir.path().join("cut.onnx");
    std::fs::write(&path, &bytes[..bytes.len() / 2]).unwrap();
    assert_error(&tandem(&["inspect", path.to_str().unwrap()]), "is not a valid ONNX model");
}

#[test]
fn unsupported_operator_is_named() {
    let dir = tempfile::tempdir().unwrap();
    let mut proto = tandem_graph::zoo::build_proto("resnet", 0).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    graph.node[1].op_type = "Det".into();
    let name = graph.node[1].name.clone();
    let path = write_proto(dir.path(), "det.onnx", &proto);
    assert_error(&tandem(&["inspect", path.to_str().unwrap()]), &format!("Det (node '{name}')"));
}

fn symbolic_batch_model(dir: &Path) -> PathBuf {
    let mut proto = tandem_graph::zoo::build_proto("resnet", 0).unwrap();
    let input = &mut proto.graph.as_mut().unwrap().input[0];
    let Some(pb::type_proto::Value::TensorType(t)) = &mut input.r#type.as_mut().unwrap().value else { unreachable!() };
    t.shape.as_mut().unwrap().dim[0].value = Some(pb::tensor_shape_proto::dimension::Value::DimParam("batch".into()));
    write_proto(dir, "symbolic.onnx", &proto)
}

#[test]
fn symbolic_dimension_needs_input_shape() {
    let dir = tempfile::tempdir().unwrap();
    let path = symbolic_batch_model(dir.path());
    let p = path.to_str().unwrap();
    assert_error(&tandem(&["inspect", p]), "--input-shape input=1,3,96,96");
    let o = tandem(&["inspect", p, "--input-shape", "input=2,3,96,96", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["inputs"][0]["shape"], serde_json::json!([2, 3, 96, 96]));
    let o = tandem(&["inspect", p, "--input-shape", "0=1,3,64,64"]);
    assert!(o.status.success(), "{}", stderr(&o));
}

#[test]
fn input_shape_of_wrong_rank() {
    let dir = tempfile::tempdir().unwrap();
    let path = symbolic_batch_model(dir.path());
    assert_error(&tandem(&["inspect", path.to_str().unwrap(), "--input-shape", "input=1,3,96"]), "has rank 4");
}

#[test]
fn input_shape_for_unknown_input() {
    let dir = tempfile::tempdir().unwrap();
    let path = write_zoo(dir.path(), "resnet");
    assert_error(&tandem(&["inspect", path.to_str().unwrap(), "--input-shape", "images=1,3,96,96"]), "the model's inputs are: input (position 0)");
    assert_error(&tandem(&["inspect", path.to_str().unwrap(), "--input-shape", "3=1,3,96,96"]), "names input '3'");
    assert_error(&tandem(&["inspect", path.to_str().unwrap(), "--input-shape", "input=1,x"]), "bad --input-shape");
}

#[test]
fn value_info_clashing_with_fixed_shapes_still_loads() {
    // Exporters write value_info for the shapes they traced; fixing another batch size makes it wrong.
    let dir = tempfile::tempdir().unwrap();
    let mut proto = tandem_graph::zoo::build_proto("resnet", 0).unwrap();
    let graph = proto.graph.as_mut().unwrap();
    let first_out = graph.node[0].output[0].clone();
    let dim = |v: i64| pb::tensor_shape_proto::Dimension { value: Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)), ..Default::default() };
    graph.value_info.push(pb::ValueInfoProto {
        name: first_out,
        r#type: Some(pb::TypeProto {
            value: Some(pb::type_proto::Value::TensorType(pb::type_proto::Tensor {
                elem_type: 1,
                shape: Some(pb::TensorShapeProto { dim: vec![dim(1), dim(32), dim(48), dim(48)] }),
            })),
            ..Default::default()
        }),
        ..Default::default()
    });
    let path = write_proto(dir.path(), "vi.onnx", &proto);
    let o = tandem(&["inspect", path.to_str().unwrap(), "--input-shape", "input=4,3,96,96", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
}
