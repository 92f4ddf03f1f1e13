//! `tandem experiment dynamics` and `tandem run --adaptive` as a user runs them, on a zoo model from an
//! empty database: every request verified, the passes stored with their requests and switches, the
//! CSV and trace written, bad schedules refused with one line. Whether and when the adaptive plan
//! switches depends on how the machine running the test behaves, so nothing here asserts it: the
//! monitor's detection and the switching are tested with injected slowdowns in tandem-exec.

use crate::common::{assert_error, count, query, stderr, tandem};

#[test]
fn the_dynamics_experiment_serves_three_passes_verified_and_stores_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let (csv, trace) = (dir.path().join("r.csv"), dir.path().join("t.json"));
    let d = db.to_str().unwrap();
    let o = tandem(&[
        "experiment", "dynamics", "transformer", "--requests", "24", "--load-start", "8", "--load-stop", "16", "--budget-ms", "5",
        "--csv", csv.to_str().unwrap(), "--trace", trace.to_str().unwrap(), "--db", d, "--json",
    ]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["verified"], true);
    for pass in ["static", "adaptive", "retuned"] {
        for f in ["p50_before_ms", "p50_during_ms", "p50_after_ms", "p90_during_ms"] {
            let v = j[pass][f].as_f64().unwrap_or_else(|| panic!("{pass}.{f} in {j}"));
            assert!(v.is_finite() && v > 0.0, "{pass}.{f} = {v}");
        }
    }
    assert!(j["retuned_p50_during_ms"].as_f64().unwrap() > 0.0);
    assert!(j["loaded_factor"].as_f64().unwrap() > 0.0);
    for e in j["adaptive"]["events"].as_array().into_iter().flatten() {
        assert!(e["after_requests"].as_u64().unwrap() <= 24 && e["beliefs"].is_object(), "{e}");
    }
    // Three runs stored, each with every request.
    let runs = query(&db, "select json_extract(details, '$.mode') as mode, json_array_length(details, '$.requests') as n, verified from runs order by id");
    let modes: Vec<&str> = runs.iter().map(|r| r["mode"].as_str().unwrap()).collect();
    assert_eq!(modes, ["static", "adaptive", "retuned"]);
    assert!(runs.iter().all(|r| r["n"] == 24 && r["verified"] == 1), "{runs:?}");
    assert_eq!(count(&db, "select count(*) from plans"), 2, "the tuned plan and the re-tuned one");
    // 3 passes x 24 requests, and a header.
    let rows = std::fs::read_to_string(&csv).unwrap();
    assert_eq!(rows.lines().count(), 1 + 72);
    assert!(rows.lines().skip(1).all(|l| l.ends_with(",true")), "every request verified");
    let t: serde_json::Value = serde_json::from_str(&std::fs::read_to_string(&trace).unwrap()).unwrap();
    assert!(t["traceEvents"].as_array().unwrap().len() >= 72);
}

#[test]
fn run_adaptive_serves_every_request_verified_and_stores_the_run() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let d = db.to_str().unwrap();
    let o = tandem(&["auto", "transformer", "--budget-ms", "5", "--run-budget-ms", "200", "--db", d, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let plan = serde_json::from_slice::<serde_json::Value>(&o.stdout).unwrap()["plan_id"].as_i64().unwrap().to_string();
    let o = tandem(&["run", "transformer", "--plan", &plan, "--adaptive", "--requests", "30", "--db", d, "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let j: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(j["verified"], true);
    assert_eq!(j["requests"], 30);
    assert_eq!(j["latencies_ms"].as_array().unwrap().len(), 30);
    let served: u64 = j["plans"].as_array().unwrap().iter().map(|p| p["requests"].as_u64().unwrap()).sum();
    assert_eq!(served, 30, "every request ran on one of the plans");
    let run = j["run_id"].as_i64().unwrap();
    assert_eq!(count(&db, &format!("select json_array_length(details, '$.latencies_ms') from runs where id = {run}")), 30);
}

#[test]
fn bad_schedules_and_cores_are_refused_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().join("t.db");
    let d = d.to_str().unwrap();
    assert_error(&tandem(&["experiment", "dynamics", "transformer", "--load-start", "50", "--load-stop", "20", "--db", d]), "must start before it stops");
    assert_error(&tandem(&["experiment", "dynamics", "transformer", "--load-core", "999", "--db", d]), "--load-core 999");
    assert_error(&tandem(&["experiment", "dynamics", "transformer", "--load-duty", "0", "--db", d]), "--load-duty");
    assert_error(&tandem(&["experiment", "dynamics", "no-such-model.onnx", "--db", d]), "no-such-model");
    assert!(!dir.path().join("t.db").exists(), "nothing written for bad input");
    // A clap usage error: its own multi-line message, exit code 2.
    let o = tandem(&["run", "transformer", "--plan", "1", "--requests", "5", "--db", d]);
    assert_eq!(o.status.code(), Some(2));
    assert!(stderr(&o).starts_with("error: ") && stderr(&o).contains("--adaptive"), "{}", stderr(&o));
}
