//! `tandem auto`: profile, fit, tune and run from an empty database, then again reusing what it holds.

use crate::common::{assert_error, count, stderr, tandem};

#[test]
fn auto_runs_the_whole_pipeline_from_an_empty_database_then_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auto.db");
    let dbs = db.to_str().unwrap();
    let args = ["auto", "transformer", "--budget-ms", "10", "--run-budget-ms", "300", "--db", dbs, "--json"];

    let o = tandem(&args);
    assert!(o.status.success(), "auto failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    // The `run` object of the tuned plan (DESIGN.md), plus model and plan.
    assert_eq!(v["model"], "transformer");
    assert_eq!(v["verified"], true, "{v}");
    let plan_id = v["plan_id"].as_i64().unwrap();
    assert_eq!(v["plan"]["plan_id"].as_i64(), Some(plan_id));
    assert!(!v["plan"]["stages"].as_array().unwrap().is_empty());
    for field in ["max_abs_diff", "max_rel_diff", "predicted_ms", "prediction_error", "speedup_vs_best_baseline"] {
        assert!(v[field].as_f64().is_some_and(f64::is_finite), "{field}: {}", v[field]);
    }
    assert!(v["measured_ms"]["median"].as_f64().unwrap() > 0.0);
    let baselines: Vec<&str> = v["baselines"].as_array().unwrap().iter().map(|b| b["name"].as_str().unwrap()).collect();
    assert!(baselines.contains(&"single:cpu:0"), "{baselines:?}");
    assert_eq!(v["steps"]["fit"]["fitted"], true);
    assert!(v["steps"]["profile"]["measurements"].as_u64().unwrap() > 0);
    // Every step left its trace in the database.
    assert_eq!(count(&db, "select count(*) from plans"), 1);
    assert_eq!(count(&db, &format!("select count(*) from runs where plan_id = {plan_id} and verified = 1")), 1);
    assert!(count(&db, "select count(*) from cost_models where version = 1") > 0);

    // A second run measures nothing again and reuses the cost models.
    let o = tandem(&args);
    assert!(o.status.success(), "second auto failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"]["profile"]["measurements"], 0, "{}", v["steps"]);
    assert_eq!(v["steps"]["fit"]["fitted"], false);
    assert_eq!(v["steps"]["fit"]["version"], 1);
    assert_eq!(count(&db, "select max(version) from cost_models"), 1);
}

#[test]
fn auto_with_a_missing_model_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auto.db");
    let o = tandem(&["auto", "no-such-model.onnx", "--db", db.to_str().unwrap()]);
    assert_error(&o, "no-such-model.onnx");
    assert!(!db.exists(), "the database was created for a model that does not load");
}
