//! Profiling benchmark: for each model, two full sessions with default settings on every processor of
//! this device, into two fresh databases, then:
//! - profiling time of each session;
//! - repeatability: share of ops above 50 µs whose in-context median agrees within ±5% between sessions;
//! - per processor, the sum of in-context op medians against the whole-model median;
//! - per processor, the whole-model median with the per-node hook against without it.
//!
//! `cargo run --release -p tandem-profile --example bench_profile -- [MODEL.onnx:SHAPE ...]`
//! (default: mobilenet_v2 and resnet18 from ../shared/models at 1,3,224,224).

use std::collections::HashMap;
use std::sync::Arc;

use tandem_device::Device;
use tandem_graph::Graph;
use tandem_profile::{profile, ProfileOptions, Silent};
use tandem_store::{Context, Store, Target};

fn medians(store: &Store, device: &str, model: i64, context: Context) -> HashMap<(i64, String), f64> {
    store
        .measurements(device, model)
        .unwrap()
        .into_iter()
        .filter(|m| m.target == Target::Op && m.context == context)
        .map(|m| ((m.op_id.unwrap(), m.processor_id), m.median_us))
        .collect()
}

fn main() {
    let shared = std::path::PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/models");
    let mut models: Vec<String> = std::env::args().skip(1).collect();
    if models.is_empty() {
        models = ["mobilenet_v2.onnx:1,3,224,224", "resnet18.onnx:1,3,224,224"].iter().map(|m| format!("{}/{m}", shared.display())).collect();
    }
    let device = Device::discover().unwrap();
    let dir = std::env::temp_dir().join(format!("tandem-bench-profile-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    println!("device {} ({}, {} cores); processors: {}", device.id, device.cpu_model, device.cores, device.processors.iter().map(|p| p.id.as_str()).collect::<Vec<_>>().join(", "));
    for spec in models {
        let (path, shape) = spec.rsplit_once(':').unwrap();
        let graph = Arc::new(Graph::load(path.as_ref(), &[format!("0={shape}").parse().unwrap()]).unwrap());
        let mut sessions = vec![];
        for run in 0..2 {
            let db = dir.join(format!("{}-{run}.db", graph.name));
            let _ = std::fs::remove_file(&db);
            let store = Store::open(&db).unwrap();
            let report = profile(graph.clone(), &device, &store, &ProfileOptions::default(), &Silent).unwrap();
            sessions.push((store, report));
        }
        println!("\n== {} ({} ops, {:.2} GFLOPs)", graph.name, graph.ops.len(), graph.total_flops() as f64 / 1e9);
        for (i, (_, r)) in sessions.iter().enumerate() {
            println!("session {}: {:.1} s, {} measurements, {} transfers, reference drift {:+.1}%", i + 1, r.elapsed_s, r.measurements, r.transfers, r.drift_pct);
        }
        let (a, ra) = &sessions[0];
        let (b, rb) = &sessions[1];
        for (context, label) in [(Context::InModel, "in context"), (Context::Isolated, "alone")] {
            let ma = medians(a, &device.id, ra.model_id, context);
            let mb = medians(b, &device.id, rb.model_id, context);
            let mut total = 0;
            let mut agree = 0;
            for (k, va) in &ma {
                let Some(vb) = mb.get(k) else { continue };
                if va.max(*vb) < 50.0 {
                    continue;
                }
                total += 1;
                if (vb - va).abs() / va <= 0.05 {
                    agree += 1;
                }
            }
            println!("repeatability ({label}): {agree} of {total} (op, processor) medians above 50 µs agree within ±5% ({:.1}%)", 100.0 * agree as f64 / total.max(1) as f64);
        }
        println!("{:<10} {:>10} {:>14} {:>9} {:>16}", "processor", "model ms", "sum of ops ms", "sum/model", "hook overhead %");
        for p in &ra.per_processor {
            let (m, s) = (p.model_median_ms.unwrap_or(f64::NAN), p.ops_in_context_sum_ms.unwrap_or(f64::NAN));
            println!("{:<10} {:>10.2} {:>14.2} {:>+8.1}% {:>16.1}", p.processor, m, s, (s - m) / m * 100.0, p.hook_overhead_pct.unwrap_or(f64::NAN));
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
}
