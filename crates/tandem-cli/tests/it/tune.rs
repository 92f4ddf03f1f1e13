//! `tandem tune` and `tandem import` as a user runs them: a profiled and fitted zoo model is tuned into
//! a stored plan never predicted slower than one processor; the database moves to another with
//! `import` (twice: nothing new the second time) and is tuned there for the imported device; bad input
//! ends with one line.

use std::path::Path;

use crate::common::{assert_error, count, query, stderr, stdout, tandem};

fn json(args: &[&str]) -> serde_json::Value {
    let o = tandem(args);
    assert!(o.status.success(), "{args:?} failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).unwrap_or_else(|e| panic!("{args:?}: not one JSON object ({e}): {}", stdout(&o)))
}

/// Profiles and fits the zoo's Inception-style model (parallel branches) into `db`, quickly.
fn profiled(db: &Path) {
    let dbs = db.to_str().unwrap();
    json(&["profile", "inception", "--db", dbs, "--budget-ms", "15", "--no-transfers", "--json"]);
    json(&["fit", "--db", dbs, "--json"]);
}

fn check_tuned(v: &serde_json::Value) -> f64 {
    for field in ["plan_id", "predicted_ms", "baselines", "stages", "search_ms"] {
        assert!(v.get(field).is_some(), "no {field} in {v}");
    }
    let predicted = v["predicted_ms"].as_f64().unwrap();
    let baselines = v["baselines"].as_array().unwrap();
    assert!(!baselines.is_empty());
    let best = baselines.iter().map(|b| b["predicted_ms"].as_f64().unwrap()).fold(f64::INFINITY, f64::min);
    assert!(baselines.iter().all(|b| b["processor"].as_str().unwrap().starts_with("cpu:")), "{baselines:?}");
    assert!(predicted > 0.0 && predicted <= best * (1.0 + 1e-9), "plan {predicted} ms, best single processor {best} ms");
    let stages = v["stages"].as_array().unwrap();
    assert!(!stages.is_empty());
    for s in stages {
        let (start, end) = (s["start_ms"].as_f64().unwrap(), s["end_ms"].as_f64().unwrap());
        assert!(0.0 <= start && start <= end && end <= predicted + 1e-9, "{s}");
        assert!(!s["ops"].as_array().unwrap().is_empty() && s["processor"].is_string());
    }
    assert!(v["search_ms"].as_f64().unwrap() >= 0.0);
    predicted
}

#[test]
fn tune_stores_a_plan_no_slower_than_one_processor_and_import_moves_it() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("phone.db");
    let dbs = db.to_str().unwrap();
    profiled(&db);

    let v = json(&["tune", "inception", "--db", dbs, "--json"]);
    let predicted = check_tuned(&v);
    let plan_id = v["plan_id"].as_i64().unwrap();
    // Stored with the model, device and cost-model version it was made for, and its prediction.
    let rows = query(&db, &format!("select p.*, m.name from plans p join models m on m.id = p.model_id where p.id = {plan_id}"));
    assert_eq!(rows.len(), 1);
    let row = &rows[0];
    assert_eq!(row["name"], "inception");
    assert_eq!(row["cost_model_version"], 1);
    assert_eq!(row["objective"], "latency");
    assert!((row["predicted_ms"].as_f64().unwrap() - predicted).abs() < 1e-9);
    let plan: serde_json::Value = serde_json::from_str(row["plan"].as_str().unwrap()).unwrap();
    assert_eq!(plan["model"]["name"], "inception");

    // A plan on several processors is taken only with the default 5% predicted gain over the best
    // processor alone; without the margin the lowest prediction wins, and with a margin no plan can
    // meet, the best processor alone is the plan and the other is reported.
    assert_eq!(v["min_gain"], 0.05);
    let several = |t: &serde_json::Value| t["stages"].as_array().unwrap().iter().any(|s| s["processor"] != t["stages"][0]["processor"]) || !t["splits"].as_array().unwrap().is_empty();
    if several(&v) {
        assert!(v["speedup_vs_best_baseline"].as_f64().unwrap() >= 1.0 / 0.95 - 1e-9, "{v}");
    }
    let lowest = json(&["tune", "inception", "--db", dbs, "--min-gain", "0", "--json"]);
    assert!(lowest["predicted_ms"].as_f64().unwrap() <= predicted * (1.0 + 1e-9));
    assert!(lowest["set_aside"].is_null());
    let strict = json(&["tune", "inception", "--db", dbs, "--min-gain", "99", "--json"]);
    assert!(!several(&strict), "{strict}");
    if several(&lowest) {
        let aside = &strict["set_aside"];
        // The search's score and the written plan's timeline agree to rounding.
        let (aside_ms, lowest_ms) = (aside["predicted_ms"].as_f64().unwrap(), lowest["predicted_ms"].as_f64().unwrap());
        assert!((aside_ms - lowest_ms).abs() < 1e-3 * lowest_ms, "{aside} against {lowest_ms} ms");
        assert!(aside["gain"].as_f64().unwrap() > 1.0 && aside["processors"].as_array().unwrap().len() >= 2, "{aside}");
    }
    assert_eq!(plan["device_id"], v["device_id"]);
    assert_eq!(plan["stages"].as_array().unwrap().len(), v["stages"].as_array().unwrap().len());

    // People get the plan as a table, baselines and search time; the throughput objective too.
    let o = tandem(&["tune", "inception", "--db", dbs, "--objective", "throughput"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in ["plan ", "minimising throughput", "stage", "processor", "start ms", "alone", "searched", "tandem run inception --plan"] {
        assert!(text.contains(needle), "no '{needle}' in:\n{text}");
    }
    assert_eq!(count(&db, "select count(*) from plans"), 4);

    // Another database takes this one in, and plans for the device it came from.
    let ws = dir.path().join("workstation.db");
    let wss = ws.to_str().unwrap();
    let device = v["device_id"].as_str().unwrap();
    let imported = json(&["import", dbs, "--db", wss, "--json"]);
    assert!(imported["total"].as_u64().unwrap() > 0);
    for table in ["devices", "processors", "models", "ops", "measurements", "cost_models", "plans"] {
        assert_eq!(count(&ws, &format!("select count(*) from {table}")), count(&db, &format!("select count(*) from {table}")), "{table}");
        assert_eq!(imported["added"][table].as_i64().unwrap(), count(&db, &format!("select count(*) from {table}")), "{table}");
    }
    assert_eq!(imported["devices"][0], device);
    let again = json(&["import", dbs, "--db", wss, "--json"]);
    assert_eq!(again["total"], 0, "a second import adds nothing: {again}");
    let there = json(&["tune", "inception", "--db", wss, "--device", device, "--json"]);
    assert!((check_tuned(&there) - predicted).abs() < 1e-6 * predicted, "same profile, same plan");
    assert_eq!(count(&ws, "select count(*) from plans"), 5);

    // Refusals, one line each.
    assert_error(&tandem(&["tune", "inception", "--db", wss, "--device", "0123456789abcdef"]), "no device 0123456789abcdef");
    let junk = dir.path().join("notes.db");
    std::fs::write(&junk, "not a database at all, just some notes that are long enough to have a header\n".repeat(4)).unwrap();
    assert_error(&tandem(&["import", junk.to_str().unwrap(), "--db", wss]), "is not a tandem database");
    assert_error(&tandem(&["import", wss, "--db", wss]), "the database being imported into");
    assert_error(&tandem(&["import", dir.path().join("missing.db").to_str().unwrap(), "--db", wss]), "no such file");
    assert_error(&tandem(&["tune", "inception", "--db", wss, "--min-gain", "150"]), "--min-gain 150 is not a percentage");
    assert_eq!(count(&ws, "select count(*) from plans"), 5);
}

#[test]
fn tune_refuses_a_model_it_cannot_read_and_a_device_without_cost_models() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    assert_error(&tandem(&["tune", "no_such_model.onnx", "--db", dbs]), "no_such_model.onnx");
    let o = tandem(&["tune", "resnet", "--db", dbs]);
    assert_error(&o, "no cost models for device");
    assert!(stderr(&o).contains("tandem profile resnet") && stderr(&o).contains("tandem fit"), "{}", stderr(&o));
    let o = tandem(&["tune", "resnet", "--db", dbs, "--objective", "speed"]);
    assert_eq!(o.status.code(), Some(2), "clap refuses the value");
    assert!(stderr(&o).contains("invalid value 'speed'"), "{}", stderr(&o));
}

#[test]
fn tune_robust_stores_the_plan_of_lowest_p90_over_availability_scenarios_and_it_runs() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("busy.db");
    let dbs = db.to_str().unwrap();
    profiled(&db);

    let v = json(&["tune", "inception", "--robust", "--db", dbs, "--json"]);
    for field in ["plan_id", "predicted_ms", "baselines", "stages", "search_ms", "robust"] {
        assert!(v.get(field).is_some(), "no {field} in {v}");
    }
    let r = &v["robust"];
    let (p90, idle_optimal_p90) = (r["p90_ms"].as_f64().unwrap(), r["idle_optimal_p90_ms"].as_f64().unwrap());
    assert!(p90 > 0.0 && p90 <= idle_optimal_p90 * (1.0 + 1e-9), "robust p90 {p90} ms, idle-optimal plan's {idle_optimal_p90} ms");
    assert!(p90 <= r["best_single_p90_ms"].as_f64().unwrap() * (1.0 + 1e-9), "{r}");
    // One scenario per combination of idle, half and heavy over the cores (each core alone beyond three).
    let levels = r["levels"].as_object().unwrap();
    assert!(!levels.is_empty());
    for (core, l) in levels {
        let (half, heavy) = (l[0].as_f64().unwrap(), l[1].as_f64().unwrap());
        assert!(1.0 <= half && half <= heavy, "core {core}: {l}");
    }
    let cores = levels.len() as u32;
    let scenarios = r["scenarios"].as_array().unwrap();
    assert_eq!(scenarios.len(), if cores <= 3 { 3usize.pow(cores) } else { 1 + 2 * cores as usize });
    let idle = &scenarios[0];
    assert_eq!(idle["name"], "idle");
    assert!(idle["factors"].as_object().unwrap().values().all(|f| f.as_f64() == Some(1.0)), "{idle}");
    let predicted = v["predicted_ms"].as_f64().unwrap();
    assert!((idle["predicted_ms"].as_f64().unwrap() - predicted).abs() <= 1e-9 * predicted, "the stored timeline is the idle one");
    for s in scenarios {
        let factors = s["factors"].as_object().unwrap();
        assert!(factors.contains_key("cpu:0") && factors.values().all(|f| f.as_f64().unwrap() >= 1.0), "{s}");
        // Slower processors never make the plan faster: the executor keeps its order.
        for key in ["predicted_ms", "idle_optimal_ms"] {
            assert!(s[key].as_f64().unwrap() >= idle[key].as_f64().unwrap() * (1.0 - 1e-9), "{key}: {s}");
        }
        assert!(s["best_single_ms"].as_f64().unwrap() > 0.0 && s["best_single"].as_str().unwrap().starts_with("cpu:"), "{s}");
    }
    let mut figures: Vec<f64> = scenarios.iter().map(|s| s["predicted_ms"].as_f64().unwrap()).collect();
    figures.sort_by(f64::total_cmp);
    assert!(p90 >= figures[0] && p90 <= figures[figures.len() - 1], "{p90} outside {figures:?}");

    // Stored like any plan, with the objective it minimised; the plan itself minimises latency.
    let plan_id = v["plan_id"].as_i64().unwrap();
    let rows = query(&db, &format!("select objective, predicted_ms, plan from plans where id = {plan_id}"));
    assert_eq!(rows[0]["objective"], "latency-p90");
    assert!((rows[0]["predicted_ms"].as_f64().unwrap() - predicted).abs() < 1e-9);
    let plan: serde_json::Value = serde_json::from_str(rows[0]["plan"].as_str().unwrap()).unwrap();
    assert_eq!(plan["objective"], "latency");

    // And it runs, verified against the single-processor reference.
    let run = json(&["run", "inception", "--plan", &plan_id.to_string(), "--db", dbs, "--budget-ms", "300", "--json"]);
    assert_eq!(run["verified"], true, "{run}");
    assert_eq!(run["plan_id"], plan_id);

    // People get the scenario table and the p90s; the throughput objective takes the p90 of the period.
    let o = tandem(&["tune", "inception", "--robust", "--objective", "throughput", "--db", dbs]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = stdout(&o);
    for needle in ["the p90 of throughput over", "availability scenarios", "robust plan", "idle-optimal plan", "best alone", "cpu0 heavy", "p90 over", "slowdowns half available / heavily loaded"] {
        assert!(text.contains(needle), "no '{needle}' in:\n{text}");
    }
    assert_eq!(count(&db, "select count(*) from plans where objective = 'throughput-p90'"), 1);
}
