//! `tandem inspect`: the op DAG of a model, with cost and split axes.

use std::collections::BTreeMap;

use anyhow::Result;
use serde::Serialize;
use tandem_graph::{Edge, Graph};

use crate::cli::InspectArgs;
use crate::table::Table;

/// The JSON printed by `tandem inspect --json`.
#[derive(Serialize)]
pub struct InspectReport {
    /// Model name (file stem or zoo name).
    pub model: String,
    /// SHA-256 of the ONNX bytes.
    pub content_hash: String,
    /// Model inputs.
    pub inputs: Vec<Tensor>,
    /// Model outputs.
    pub outputs: Vec<Tensor>,
    /// The ops in topological order.
    pub ops: Vec<OpReport>,
    /// Sum of the ops' floating-point operations.
    pub total_flops: u64,
    /// Sum of the ops' multiply-accumulates.
    pub total_macs: u64,
    /// Sum of the ops' weight bytes.
    pub total_weight_bytes: u64,
    /// Number of ops of each kind.
    pub op_counts: BTreeMap<String, usize>,
}

/// One tensor at an op boundary.
#[derive(Serialize)]
pub struct Tensor {
    /// Its name.
    pub name: String,
    /// Producing op id (`null` for a model input).
    pub from: Option<usize>,
    /// Shape.
    pub shape: Vec<usize>,
    /// Element type.
    pub dtype: String,
}

/// One op.
#[derive(Serialize)]
pub struct OpReport {
    /// Op id.
    pub id: usize,
    /// Name.
    pub name: String,
    /// Kind (`Conv`, `DepthwiseConv`, `EinSum`, ...).
    pub op: String,
    /// The optimised tract operators it runs as.
    pub tract_ops: String,
    /// Tensors in.
    pub inputs: Vec<Tensor>,
    /// Tensors out.
    pub outputs: Vec<Tensor>,
    /// Floating-point operations.
    pub flops: u64,
    /// Multiply-accumulates.
    pub macs: u64,
    /// Activation bytes read.
    pub bytes_in: u64,
    /// Activation bytes written.
    pub bytes_out: u64,
    /// Weight bytes read.
    pub weight_bytes: u64,
    /// Whether it can be split across processors.
    pub splittable: bool,
    /// The output axes it can be split along.
    pub split_axes: Vec<usize>,
}

fn tensor(e: &Edge) -> Tensor {
    Tensor { name: e.name.clone(), from: e.from, shape: e.shape.clone(), dtype: e.dtype.clone() }
}

/// Builds the report.
pub fn report(g: &Graph) -> InspectReport {
    let ops: Vec<OpReport> = g
        .ops
        .iter()
        .map(|o| OpReport {
            id: o.id,
            name: o.name.clone(),
            op: o.kind.clone(),
            tract_ops: o.tract_ops.clone(),
            inputs: o.inputs.iter().map(tensor).collect(),
            outputs: o.outputs.iter().map(tensor).collect(),
            flops: o.cost.flops,
            macs: o.cost.macs,
            bytes_in: o.cost.bytes_in,
            bytes_out: o.cost.bytes_out,
            weight_bytes: o.cost.weight_bytes,
            splittable: !o.split_axes.is_empty(),
            split_axes: o.split_axes.clone(),
        })
        .collect();
    let mut op_counts = BTreeMap::new();
    for o in &ops {
        *op_counts.entry(o.op.clone()).or_insert(0) += 1;
    }
    InspectReport {
        model: g.name.clone(),
        content_hash: g.content_hash.clone(),
        inputs: g.inputs.iter().map(tensor).collect(),
        outputs: g.outputs.iter().map(tensor).collect(),
        total_flops: ops.iter().map(|o| o.flops).sum(),
        total_macs: ops.iter().map(|o| o.macs).sum(),
        total_weight_bytes: ops.iter().map(|o| o.weight_bytes).sum(),
        ops,
        op_counts,
    }
}

fn shape(s: &[usize]) -> String {
    s.iter().map(|d| d.to_string()).collect::<Vec<_>>().join("x")
}

fn short(name: &str, max: usize) -> String {
    let n = name.chars().count();
    if n <= max {
        name.to_string()
    } else {
        format!("…{}", name.chars().skip(n - max + 1).collect::<String>())
    }
}

/// Runs `tandem inspect`.
pub fn run(args: &InspectArgs, json: bool) -> Result<()> {
    let g = super::load_model(&args.model)?;
    let r = report(&g);
    if json {
        return super::print_json(&r);
    }
    let ins = r.inputs.iter().map(|t| format!("{} {}", t.name, shape(&t.shape))).collect::<Vec<_>>().join(", ");
    crate::out(&format!("model {} ({} ops), inputs: {ins}\n", r.model, r.ops.len()))?;
    let mut t = Table::new(&["id", "name", "kind", "output", "MFLOPs", "KB in", "KB out", "KB weights", "split axes"]);
    for o in &r.ops {
        t.row(vec![
            o.id.to_string(),
            short(&o.name, 40),
            o.op.clone(),
            o.outputs.iter().map(|t| shape(&t.shape)).collect::<Vec<_>>().join(" "),
            format!("{:.2}", o.flops as f64 / 1e6),
            format!("{:.1}", o.bytes_in as f64 / 1024.0),
            format!("{:.1}", o.bytes_out as f64 / 1024.0),
            format!("{:.1}", o.weight_bytes as f64 / 1024.0),
            if o.split_axes.is_empty() { "-".into() } else { o.split_axes.iter().map(|a| a.to_string()).collect::<Vec<_>>().join(",") },
        ]);
    }
    crate::out(&t.render())?;
    crate::out(&format!(
        "total: {:.1} MFLOPs ({:.1} M multiply-adds), {:.1} MB of weights, {} of {} ops splittable\n",
        r.total_flops as f64 / 1e6,
        r.total_macs as f64 / 1e6,
        r.total_weight_bytes as f64 / 1e6,
        r.ops.iter().filter(|o| o.splittable).count(),
        r.ops.len()
    ))?;
    let counts = r.op_counts.iter().map(|(k, v)| format!("{k} {v}")).collect::<Vec<_>>().join(", ");
    crate::out(&format!("ops per kind: {counts}\n"))?;
    Ok(())
}
