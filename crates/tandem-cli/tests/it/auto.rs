//! `tandem auto`: profile, fit, tune and run from an empty database, then again reusing what it holds.

use crate::common::{assert_error, count, stderr, tandem};

#[test]
fn auto_runs_the_whole_pipeline_from_an_empty_database_then_reuses_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auto.db");
    let dbs = db.to_str().unwrap();
    // No calibration round: whether one runs depends on how far off the timing is.
    let args = ["auto", "transformer", "--budget-ms", "10", "--run-budget-ms", "300", "--calibrate", "0", "--db", dbs, "--json"];

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
    // The host's speed, read by the profiles' reference kernel on the plan's processors, and the
    // prediction at it: the plan's times that.
    let h = &v["host_speed"];
    let slowdown = h["slowdown"].as_f64().unwrap_or_else(|| panic!("host_speed: {h}"));
    assert!(!h["kernels"].as_array().unwrap().is_empty(), "{h}");
    assert!((h["predicted_ms"].as_f64().unwrap() - v["predicted_ms"].as_f64().unwrap() * slowdown).abs() < 1e-9, "{h}");
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
fn the_next_fit_learns_from_the_plan_run_and_auto_keeps_the_best_measured_plan() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("cal.db");
    let dbs = db.to_str().unwrap();
    let o = tandem(&["auto", "resnet", "--budget-ms", "10", "--run-budget-ms", "300", "--calibrate", "0", "--db", dbs, "--json"]);
    assert!(o.status.success(), "auto failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["steps"]["rounds"].as_array().unwrap().len(), 1, "{}", v["steps"]);

    // Every split part the run timed is a sample of the next fit's in-plan calibration.
    let parts = count(&db, "select count(*) from runs, json_each(runs.details, '$.stages') where json_extract(value, '$.part') is not null");
    // Parts are timed exactly when the plan has splits.
    let split_plan = count(&db, "select count(*) from plans where json_array_length(plan, '$.splits') > 0") > 0;
    assert_eq!(parts > 0, split_plan, "{parts} parts timed");
    let o = tandem(&["fit", "--db", dbs, "--json"]);
    assert!(o.status.success(), "fit failed: {}", stderr(&o));
    let fit: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(fit["training"]["plan_part_samples"].as_i64(), Some(parts), "{}", fit["training"]);
    // The run read the host's speed, and the fit brings its timings to the profiles' speed with it.
    let read_speed = count(&db, "select count(*) from runs where json_extract(details, '$.host_speed.slowdown') > 0");
    assert!(read_speed > 0);
    assert_eq!(fit["training"]["paired_plan_runs"].as_i64(), Some(read_speed), "{}", fit["training"]);
    let in_plan = fit["in_plan"].as_array().unwrap();
    let total: i64 = in_plan.iter().map(|c| c["parts"].as_i64().unwrap()).sum();
    assert_eq!(total, parts);
    for c in in_plan {
        assert!(c["processor"].as_str().is_some_and(|p| p.starts_with("cpu:")), "{c}");
        assert!(c["factor"].as_f64().is_some_and(|f| f.is_finite() && f >= 0.0), "{c}");
        assert!(c["standalone"]["mape"].as_f64().is_some_and(f64::is_finite), "{c}");
        // One model's plans only: nothing to hold out by model, so no such figure is claimed.
        assert!(c["calibrated"].is_null(), "{c}");
    }
    // Every processor the models know has a calibration row, the identity where no part ran.
    let processors = count(&db, "select count(distinct processor_id) from cost_models where version = 2 and op_kind = 'stage'");
    assert_eq!(count(&db, "select count(*) from cost_models where version = 2 and op_kind = 'in_plan'"), processors);
    assert_eq!(count(&db, "select count(*) from cost_models where version = 2 and op_kind = 'in_plan' and samples = 0 and fallback_of = 'unmeasured'"), processors - in_plan.len() as i64);

    // Every whole stage the run timed, and every baseline beside it, is a sample of the whole-stage
    // calibration; each processor with one gets a calibration of resnet's own too.
    let whole = count(&db, "select count(*) from runs, json_each(runs.details, '$.stages') where json_extract(value, '$.part') is null");
    let baselines = count(&db, "select count(*) from runs, json_each(runs.baselines)");
    assert!(baselines > 0);
    assert_eq!(fit["training"]["plan_stage_samples"].as_i64(), Some(whole + baselines), "{}", fit["training"]);
    let stages = fit["whole_in_plan"].as_array().unwrap();
    assert_eq!(stages.iter().map(|c| c["parts"].as_i64().unwrap()).sum::<i64>(), whole + baselines);
    for c in stages {
        assert_eq!(c["form"], "factor", "a ratio only: {c}");
        assert!(c["factor"].as_f64().is_some_and(|f| f.is_finite() && f > 0.0), "{c}");
    }
    assert_eq!(count(&db, "select count(*) from cost_models where version = 2 and op_kind = 'whole_in_plan:resnet'"), stages.len() as i64);

    // With calibration rounds (and the fallback to the best processor alone), every plan auto ran is
    // listed and the one it reports measured fastest.
    let o = tandem(&["auto", "resnet", "--budget-ms", "10", "--run-budget-ms", "300", "--calibrate", "2", "--db", dbs, "--json"]);
    assert!(o.status.success(), "auto --calibrate failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let rounds = v["steps"]["rounds"].as_array().unwrap();
    assert!((1..=4).contains(&rounds.len()), "{rounds:?}");
    let fastest = rounds.iter().map(|r| r["measured_ms"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert_eq!(v["measured_ms"]["median"].as_f64(), Some(fastest), "{rounds:?}");
    assert!(rounds.iter().any(|r| r["plan_id"] == v["plan_id"]), "{rounds:?}");
    assert_eq!(v["steps"]["rounds"][0]["cost_model_version"], 2, "the first plan uses the calibrated fit");
}

#[test]
fn auto_with_a_missing_model_fails_cleanly_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("auto.db");
    let o = tandem(&["auto", "no-such-model.onnx", "--db", db.to_str().unwrap()]);
    assert_error(&o, "no-such-model.onnx");
    assert!(!db.exists(), "the database was created for a model that does not load");
}
