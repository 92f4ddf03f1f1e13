//! `tandem run` as a user runs it: a stored plan (made by hand here, through the libraries) runs verified,
//! measured against the baselines, traced and stored; plans that do not fit are refused with one line.

use std::path::Path;

use tandem_device::Device;
use tandem_exec::sketch::{self, Piece};
use tandem_graph::{boundaries, Graph};
use tandem_plan::{Plan, Span, Timeline};
use tandem_store::{CostModelRow, PlanRow, Store};

use crate::common::{assert_error, count, query, stderr, stdout, tandem};

/// The zoo model as `tandem run resnet` loads it (seed 0).
fn zoo(name: &str) -> Graph {
    Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).unwrap(), &[]).unwrap()
}

/// A plan splitting the heaviest convolution of `g` in half across two processors, with a made-up
/// prediction so that the prediction error has something to compare.
fn split_plan(g: &Graph, device: &Device) -> Plan {
    let singles: Vec<&str> = device.processors.iter().filter(|p| p.threads == 1).map(|p| p.id.as_str()).collect();
    let (a, b) = (singles[0], *singles.get(1).unwrap_or(&singles[0]));
    let conv = g.ops.iter().filter(|o| o.split_axes.contains(&1)).max_by_key(|o| o.cost.flops).unwrap();
    let pieces = vec![
        Piece::Stage { ops: (0..conv.id).collect(), processor: a.into() },
        Piece::Split { ops: vec![conv.id], axis: 1, bounds: boundaries(conv.outputs[0].shape[1], &[0.5], 16), processors: vec![a.into(), b.into()] },
        Piece::Stage { ops: (conv.id + 1..g.ops.len()).collect(), processor: a.into() },
    ];
    let mut plan = sketch::sketch(g, &device.id, &pieces).unwrap();
    let spans = plan.stages.iter().map(|s| Span { name: format!("stage {}", s.id), processor: s.processor.clone(), stage: s.id, start_us: 100.0 * s.id as f64, end_us: 100.0 * (s.id + 1) as f64 }).collect();
    plan.predicted = Timeline { latency_us: 1000.0, period_us: 800.0, spans };
    plan
}

/// A fresh database (in a folder kept alive by the returned guard), this device and the zoo resnet.
fn setup() -> (tempfile::TempDir, std::path::PathBuf, Device, Graph) {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    (dir, db, Device::discover().unwrap(), zoo("resnet"))
}

/// Stores `plan` for `g` in the database at `db` (registering device and model as `profile` does).
fn store_plan(db: &Path, g: &Graph, device: &Device, plan: &Plan) -> i64 {
    let store = Store::open(db).unwrap();
    let model_id = tandem_profile::register(&store, device, g).unwrap();
    store
        .insert_plan(&PlanRow {
            model_id,
            device_id: plan.device_id.clone(),
            cost_model_version: plan.cost_model_version,
            objective: plan.objective.as_str().into(),
            plan: serde_json::to_string(plan).unwrap(),
            predicted_ms: plan.predicted.latency_us / 1e3,
            ..Default::default()
        })
        .unwrap()
}

#[test]
fn a_stored_plan_runs_verified_against_the_baselines_and_is_stored() {
    let (dir, db, device, g) = setup();
    let dbs = db.to_str().unwrap();
    let plan = split_plan(&g, &device);
    let id = store_plan(&db, &g, &device, &plan);
    let trace = dir.path().join("trace.json");

    let o = tandem(&["run", "resnet", "--plan", &id.to_string(), "--db", dbs, "--budget-ms", "40", "--stream", "4", "--trace", trace.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "run failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    // The contract.
    assert_eq!(v["plan_id"], id);
    assert_eq!(v["verified"], true);
    assert!(v["max_abs_diff"].as_f64().unwrap() >= 0.0 && v["max_rel_diff"].as_f64().unwrap() <= 1e-4, "{v}");
    let (median, p90) = (v["measured_ms"]["median"].as_f64().unwrap(), v["measured_ms"]["p90"].as_f64().unwrap());
    assert!(median > 0.0 && p90 >= median, "{v}");
    assert_eq!(v["predicted_ms"], 1.0);
    let error = v["prediction_error"].as_f64().unwrap();
    assert!((error - (1.0 - median) / median).abs() < 1e-9, "signed (predicted - measured) / measured: {v}");
    let baselines = v["baselines"].as_array().unwrap();
    for p in &device.processors {
        let name = format!("single:{}", p.id);
        let b = baselines.iter().find(|b| b["name"] == name.as_str()).unwrap_or_else(|| panic!("no {name} in {baselines:?}"));
        assert!(b["measured_ms"].as_f64().unwrap() > 0.0);
    }
    let best = baselines.iter().map(|b| b["measured_ms"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    let speedup = v["speedup_vs_best_baseline"].as_f64().unwrap();
    assert!((speedup - best / median).abs() < 1e-9);
    // The interval of the speedup, and what it says.
    if let Some(ci) = v["speedup_ci95"].as_array() {
        let (lo, hi) = (ci[0].as_f64().unwrap(), ci[1].as_f64().unwrap());
        assert!(lo <= hi && lo > 0.0, "{ci:?}");
        let verdict = if lo > 1.0 { "faster" } else if hi < 1.0 { "slower" } else { "indistinguishable" };
        assert_eq!(v["versus_best_baseline"], verdict, "{v}");
    } else {
        assert!(v["versus_best_baseline"].is_null());
    }
    assert_eq!(v["stages"].as_array().unwrap().len(), plan.stages.len());
    assert_eq!(v["stages"][1]["predicted_us"], 100.0);
    assert_eq!(v["stream"]["requests"], 4);
    assert!(v["stream"]["rps"].as_f64().unwrap() > 0.0);

    // The trace: complete events for both timelines, one track per processor.
    let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    let events = t["traceEvents"].as_array().unwrap();
    for pid in [1, 2] {
        assert_eq!(events.iter().filter(|e| e["ph"] == "X" && e["pid"] == pid && e["cat"] == "stage").count(), plan.stages.len());
    }

    // Stored: the run with its baselines and per-stage timings.
    assert_eq!(count(&db, &format!("select count(*) from runs where plan_id = {id} and verified = 1")), 1);
    let row = &query(&db, "select median_ms, prediction_error, json_array_length(baselines) as b, json_array_length(details, '$.stages') as s, json_type(details, '$.predicted_timeline') as p from runs")[0];
    assert_eq!(row["b"].as_i64().unwrap() as usize, device.processors.len());
    assert_eq!(row["s"].as_i64().unwrap() as usize, plan.stages.len());
    assert_eq!(row["p"], "object");
    assert!((row["median_ms"].as_f64().unwrap() - median).abs() < 1e-9);

    // People get a summary.
    let o = tandem(&["run", "resnet", "--plan", &id.to_string(), "--db", dbs, "--budget-ms", "20"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    assert!(text.contains("verified: yes") && text.contains("single:") && text.contains("speedup against the best baseline"), "{text}");
    assert_eq!(count(&db, "select count(*) from runs"), 2);
}

#[test]
fn plans_that_do_not_fit_are_refused_with_one_line() {
    let (_dir, db, device, g) = setup();
    let dbs = db.to_str().unwrap();
    let good = sketch::single(&g, &device.id, &device.processors[0].id);
    let id = store_plan(&db, &g, &device, &good).to_string();
    let run = |model: &str, plan: &str| tandem(&["run", model, "--plan", plan, "--db", dbs, "--budget-ms", "10"]);

    // Another model (other ops, other content hash).
    assert_error(&run("mobilenet", &id), "the plan was made for model 'resnet'");
    // No such plan.
    assert_error(&run("resnet", "999"), "no plan 999");
    // A processor this device lacks.
    let mut missing = good.clone();
    missing.stages[0].processor = "cpu:77".into();
    missing.processors = vec!["cpu:77".into()];
    let missing = store_plan(&db, &g, &device, &missing).to_string();
    assert_error(&run("resnet", &missing), "uses processor cpu:77, which this device does not have: run `tandem tune` again");
    // Another device.
    let mut elsewhere = good.clone();
    elsewhere.device_id = "0123456789abcdef".into();
    let elsewhere = {
        let store = Store::open(&db).unwrap();
        store.upsert_device(&tandem_store::DeviceRow { id: elsewhere.device_id.clone(), hostname: "phone".into(), ..Default::default() }).unwrap();
        drop(store);
        store_plan(&db, &g, &device, &elsewhere).to_string()
    };
    assert_error(&run("resnet", &elsewhere), "was made for device 0123456789abcdef");
    // Cost models newer than the plan's.
    let mut stale = good.clone();
    stale.cost_model_version = Some(1);
    let stale = store_plan(&db, &g, &device, &stale).to_string();
    let store = Store::open(&db).unwrap();
    store
        .insert_cost_models(&[CostModelRow { device_id: device.id.clone(), processor_id: device.processors[0].id.clone(), op_kind: "Conv".into(), version: 2, params: "{}".into(), samples: 1, ..Default::default() }])
        .unwrap();
    drop(store);
    assert_error(&run("resnet", &stale), "version 1, but version 2 is the newest: run `tandem tune` again");
    // A plan whose JSON is damaged.
    let store = Store::open(&db).unwrap();
    let broken = store.insert_plan(&PlanRow { model_id: 1, device_id: device.id.clone(), plan: "{\"stages\": 3}".into(), predicted_ms: 1.0, ..Default::default() }).unwrap();
    drop(store);
    assert_error(&run("resnet", &broken.to_string()), "cannot be read");
    // Nothing ran, nothing was stored.
    assert_eq!(count(&db, "select count(*) from runs"), 0);
    // And the good plan still runs.
    let o = run("resnet", &id);
    assert!(o.status.success(), "{}", stderr(&o));
    // A plan older than the cost models runs once it has run verified here (`auto` keeps the fastest
    // plan as measured, which may predate its last refit); an unverified run is no such evidence.
    let store = Store::open(&db).unwrap();
    let stale_id: i64 = stale.parse().unwrap();
    store.insert_run(&tandem_store::RunRow { plan_id: stale_id, device_id: device.id.clone(), verified: false, ..Default::default() }).unwrap();
    drop(store);
    assert_error(&run("resnet", &stale), "version 1, but version 2 is the newest");
    let store = Store::open(&db).unwrap();
    store.insert_run(&tandem_store::RunRow { plan_id: stale_id, device_id: device.id.clone(), verified: true, ..Default::default() }).unwrap();
    drop(store);
    let o = run("resnet", &stale);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stderr(&o).contains("made with cost models version 1, older than the newest; it runs because it has run verified here before"), "{}", stderr(&o));
}
