//! `tandem profile` as a user runs it: complete coverage, resumption after a kill, concurrent writers,
//! and bad input.

use crate::common::*;


use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Fast settings: a small time budget per item, no transfers unless asked.
const FAST: [&str; 3] = ["--budget-ms", "15", "--no-transfers"];

#[test]
fn every_op_on_every_processor_is_measured_or_unsupported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let o = tandem(&["profile", "mobilenet", "--db", db.to_str().unwrap(), "--budget-ms", "15", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    for field in ["profile_id", "model_id", "device_id", "processors", "measurements", "elapsed_s"] {
        assert!(report.get(field).is_some(), "no {field}");
    }
    let processors: Vec<String> = report["processors"].as_array().unwrap().iter().map(|p| p.as_str().unwrap().to_string()).collect();
    assert!(processors.len() >= 2);
    let ops = count(&db, "select count(*) from ops");
    assert!(ops > 10);
    for p in &processors {
        for context in ["in_model", "isolated"] {
            let covered = count(
                &db,
                &format!(
                    "select count(*) from ops o where exists (select 1 from measurements m where m.model_id = o.model_id and m.op_id = o.op_id \
                     and m.processor_id = '{p}' and m.context = '{context}' and m.target = 'op') \
                     or exists (select 1 from unsupported u where u.model_id = o.model_id and u.op_id = o.op_id and u.processor_id = '{p}')"
                ),
            );
            assert_eq!(covered, ops, "{p} {context}: {covered} of {ops} ops covered");
        }
        assert_eq!(count(&db, &format!("select count(*) from measurements where target = 'model' and processor_id = '{p}'")), 1);
    }
    // Split parts of heavy ops, transfers between the single cores, environment and drift recorded.
    assert!(count(&db, "select count(*) from measurements where target = 'split_part'") > 0);
    assert!(count(&db, "select count(*) from transfers where src_processor != dst_processor") > 0);
    // Joins of split parts, a copy on each processor that runs parts: from the processor to itself.
    assert!(count(&db, "select count(*) from transfers where src_processor = dst_processor and src_processor = 'cpu:0'") > 0);
    assert!(count(&db, "select count(*) from env_snapshots") >= processors.len() as i64);
    assert_eq!(count(&db, "select count(*) from profile_sessions where status = 'done' and drift_pct is not null"), 1);
    // Every timing is a distribution.
    assert_eq!(count(&db, "select count(*) from measurements where not (p10_us <= median_us and median_us <= p90_us and samples >= 3 and cv >= 0)"), 0);
}

#[test]
fn resuming_after_a_kill_stores_no_duplicates() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    let mut child = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["profile", "resnet", "--db", dbs, "--budget-ms", "30", "--no-transfers"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    // Kill it once some, but not all, measurements are in.
    let start = Instant::now();
    loop {
        std::thread::sleep(Duration::from_millis(100));
        let n = if db.exists() { tandem(&["query", "select count(*) as n from measurements", "--db", dbs, "--json"]) } else { continue };
        let rows: serde_json::Value = serde_json::from_slice(&n.stdout).unwrap_or_default();
        if rows["rows"][0]["n"].as_i64().unwrap_or(0) > 20 || start.elapsed() > Duration::from_secs(60) {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL: no chance to clean up
    child.wait().unwrap();
    let before = count(&db, "select count(*) from measurements");
    assert_eq!(count(&db, "select count(*) from profile_sessions where status = 'done'"), 0, "killed too late to test resumption");
    let o = tandem(&["profile", "resnet", "--db", dbs, "--budget-ms", "30", "--no-transfers", "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(report["report"]["resumed"], true);
    assert!(report["report"]["skipped"].as_i64().unwrap() >= before - 1, "stored items were measured again");
    assert_eq!(count(&db, "select count(*) from profile_sessions"), 1, "the session was resumed, not restarted");
    let distinct = count(&db, "select count(*) from (select distinct device_id, model_id, op_id, processor_id, target, variant, context from measurements)");
    assert_eq!(count(&db, "select count(*) from measurements"), distinct);
    // --force measures everything again, in place.
    let total = count(&db, "select count(*) from measurements");
    let o = tandem(&["profile", "resnet", "--db", dbs, "--force", "--json", "--budget-ms", "5", "--no-transfers"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(count(&db, "select count(*) from measurements"), total);
}

#[test]
fn two_profiles_on_one_database_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    let spawn = |model: &str| {
        Command::new(env!("CARGO_BIN_EXE_tandem"))
            .args(["profile", model, "--db", dbs, "--budget-ms", "10", "--no-transfers", "--json"])
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap()
    };
    let (a, b) = (spawn("transformer"), spawn("inception"));
    for child in [a, b] {
        let o = child.wait_with_output().unwrap();
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(count(&db, "select count(distinct model_id) from measurements"), 2);
    assert_eq!(count(&db, "select count(*) from profile_sessions where status = 'done'"), 2);
}

#[test]
fn unknown_processor_lists_the_valid_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let o = tandem(&["profile", "resnet", "--db", db.to_str().unwrap(), "--processors", "cpu:99"]);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("cpu:99") && err.contains("cpu:0"), "{err}");
    assert!(!db.exists(), "a refused run must not create the database");
}

#[test]
fn corrupt_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let garbage: Vec<u8> = (0..4096u32).map(|i| (i * 7 + 3) as u8).collect();
    std::fs::write(&db, &garbage).unwrap();
    let mut args = vec!["profile", "resnet", "--db", db.to_str().unwrap()];
    args.extend(FAST);
    let o = tandem(&args);
    assert!(!o.status.success());
    let err = stderr(&o);
    assert_eq!(err.lines().count(), 1, "{err}");
    assert!(err.starts_with("error: ") && err.contains("not a tandem database"), "{err}");
    assert_eq!(std::fs::read(&db).unwrap(), garbage);
}

#[test]
fn contention_profiles_are_stored_once_per_processor_and_scenario() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    // A model never profiled before: the contention profile registers it itself.
    let args = ["profile", "mobilenet", "--contention", "--processors", "cpu:0,cpu:0-1", "--budget-ms", "30", "--db", dbs, "--json"];
    let o = tandem(&args);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    for field in ["profile_id", "model_id", "device_id", "processors", "measurements", "elapsed_s", "contention", "throttling"] {
        assert!(report.get(field).is_some(), "no {field}: {report}");
    }
    let rows = report["contention"].as_array().unwrap();
    // cpu:0 has all five scenarios; on a two-core machine cpu:0-1 owns every core, so only the three
    // scenarios loading its own cores apply (on a bigger machine it has other cores too).
    let devices: serde_json::Value = serde_json::from_slice(&tandem(&["devices", "--json"]).stdout).unwrap();
    let expected = if devices["device"]["cores"] == 2 { 8 } else { 10 };
    assert_eq!(rows.len(), expected, "{report}");
    for r in rows {
        let (idle, loaded, slowdown) = (r["idle_ms"].as_f64().unwrap(), r["loaded_ms"].as_f64().unwrap(), r["slowdown"].as_f64().unwrap());
        assert!(idle > 0.0 && loaded > 0.0 && slowdown.is_finite() && slowdown > 0.0, "{r}");
        assert!((slowdown - loaded / idle).abs() < 1e-9 * slowdown, "{r}");
        assert!(r["load"].as_str().unwrap().contains(" on core"), "{r}");
    }
    let throttling = &report["throttling"];
    assert!(throttling["readable"].is_boolean() && throttling["throttled"].is_boolean(), "{throttling}");
    assert_eq!(count(&db, "select count(*) from contention"), expected as i64);
    assert_eq!(count(&db, "select count(*) from contention where not (slowdown > 0 and idle_us > 0 and loaded_us > 0 and abs(slowdown - loaded_us / idle_us) < 1e-9 * slowdown)"), 0);
    assert_eq!(count(&db, "select count(*) from contention where json_valid(env) and json_extract(env, '$.device_id') = device_id"), expected as i64);
    let first: Vec<serde_json::Value> = query(&db, "select id, created_at from contention order by id");

    // Again, with the human table: the rows are replaced, not duplicated.
    let o = tandem(&args[..args.len() - 1]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for needle in ["slowdown", "compute-same-x3", "memory-same", "throttling: "] {
        assert!(out.contains(needle), "{needle} missing from:\n{out}");
    }
    assert_eq!(count(&db, "select count(*) from contention"), expected as i64);
    let again: Vec<serde_json::Value> = query(&db, "select id, created_at from contention order by id");
    assert_eq!(first.iter().map(|r| &r["id"]).collect::<Vec<_>>(), again.iter().map(|r| &r["id"]).collect::<Vec<_>>());
    assert_ne!(first, again, "the second run's measurements replace the first's");
}

#[test]
fn contention_with_a_missing_processor_is_one_error_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let o = tandem(&["profile", "mobilenet", "--contention", "--processors", "cpu:0,cpu:99", "--db", db.to_str().unwrap()]);
    assert_error(&o, "cpu:99");
    assert!(!db.exists(), "a refused run must not create the database");
    let o = tandem(&["profile", "mobilenet", "--contention", "--budget-ms", "0", "--db", db.to_str().unwrap()]);
    assert_error(&o, "--budget-ms");
    assert!(!db.exists());
}
