//! `tandem fit` as a user runs it: profiles of zoo models in, cost models with held-out accuracy out,
//! stored as a version with nothing NaN; an empty database is refused with one clear line.

use std::path::Path;

use crate::common::{assert_error, count, query, stderr, stdout, tandem};

fn fit_json(db: &Path) -> serde_json::Value {
    let o = tandem(&["fit", "--db", db.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "fit failed: {}", stderr(&o));
    serde_json::from_slice(&o.stdout).expect("one JSON object")
}

#[test]
fn fit_on_profiled_zoo_models_reports_held_out_accuracy_and_stores_a_version() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    for model in ["resnet", "mobilenet", "transformer"] {
        let o = tandem(&["profile", model, "--db", dbs, "--budget-ms", "15", "--no-transfers", "--json"]);
        assert!(o.status.success(), "profile {model}: {}", stderr(&o));
    }
    let v = fit_json(&db);
    // The contract: models [{processor, op_kind, samples, mape, within_10pct}], overall {mape,
    // within_10pct}, leave_one_model_out [{model, processor, predicted_ms, measured_ms, error}], version.
    assert_eq!(v["version"], 1);
    let models = v["models"].as_array().unwrap();
    assert!(!models.is_empty());
    for m in models {
        for field in ["processor", "op_kind", "samples", "mape", "within_10pct"] {
            assert!(m.get(field).is_some(), "no {field} in {m}");
        }
        let w = m["within_10pct"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&w) && m["mape"].as_f64().unwrap().is_finite(), "{m}");
    }
    let kinds: Vec<&str> = models.iter().map(|m| m["op_kind"].as_str().unwrap()).collect();
    assert!(kinds.contains(&"Conv") && kinds.contains(&"EinSum"), "{kinds:?}");
    for field in ["mape", "within_10pct"] {
        assert!(v["overall"][field].as_f64().unwrap().is_finite(), "overall.{field}");
    }
    // The ceiling the measurements leave: the zoo resnet repeats its blocks' convolutions.
    let twins = &v["repeatability"];
    assert!(twins["n"].as_u64().unwrap() > 0 && (0.0..=1.0).contains(&twins["within_10pct"].as_f64().unwrap()), "{twins}");
    let lomo = v["leave_one_model_out"].as_array().unwrap();
    let processors = v["stages"].as_array().unwrap().len();
    assert_eq!(lomo.len(), 3 * processors, "every model on every processor: {lomo:?}");
    // A processor owning several cores builds on its first core's predictions where that is profiled
    // (cpu:0-1 on cpu:0), and says which of its kinds use them.
    let stage_ids: Vec<&str> = v["stages"].as_array().unwrap().iter().map(|s| s["processor"].as_str().unwrap()).collect();
    for st in v["stages"].as_array().unwrap() {
        let expected = match st["processor"].as_str().unwrap() {
            "cpu:0-1" if stage_ids.contains(&"cpu:0") => serde_json::json!("cpu:0"),
            _ => serde_json::Value::Null,
        };
        assert_eq!(st["reference"], expected, "{st}");
    }
    assert!(models.iter().all(|m| m["uses_reference"].is_boolean()), "{models:?}");
    assert!(models.iter().filter(|m| m["uses_reference"] == true).all(|m| m["processor"] == "cpu:0-1"), "{models:?}");
    for l in lomo {
        for field in ["model", "processor", "predicted_ms", "measured_ms", "error"] {
            assert!(l.get(field).is_some(), "no {field} in {l}");
        }
        assert!(l["predicted_ms"].as_f64().unwrap() > 0.0 && l["error"].as_f64().unwrap().is_finite(), "{l}");
    }

    // Stored: one version, op kinds, stage and the (unmeasured) transfer row, nothing NaN or null.
    let rows = count(&db, "select count(*) from cost_models where version = 1");
    assert_eq!(rows, v["rows_stored"].as_i64().unwrap());
    assert!(count(&db, "select count(*) from cost_models where op_kind = 'stage'") >= 2);
    assert!(count(&db, "select count(*) from cost_models where op_kind = 'Conv'") >= 2);
    assert_eq!(count(&db, "select count(*) from cost_models where op_kind = 'transfer' and fallback_of = 'unmeasured'"), 1);
    for row in query(&db, "select params from cost_models") {
        let params: serde_json::Value = serde_json::from_str(row["params"].as_str().unwrap()).unwrap();
        assert_numbers_finite(&params);
    }
    assert_eq!(count(&db, "select count(*) from cost_models where mape != mape or within_10pct != within_10pct or within_10pct < 0 or within_10pct > 1"), 0);
    assert_eq!(count(&db, "select count(*) from cost_models where json_valid(params) = 0"), 0);
    // Fallbacks say what they fall back to.
    assert_eq!(count(&db, "select count(*) from cost_models where fallback_of is not null and fallback_of not like 'family:%' and fallback_of not in ('all', 'unmeasured')"), 0);

    // Fitting again makes a new version and leaves the first alone.
    let v2 = fit_json(&db);
    assert_eq!(v2["version"], 2);
    assert_eq!(count(&db, "select count(*) from cost_models where version = 1"), rows);

    // People get tables.
    let o = tandem(&["fit", "--db", dbs]);
    assert!(o.status.success(), "{}", stderr(&o));
    let text = String::from_utf8_lossy(&o.stdout);
    assert!(text.contains("held-out") && text.contains("leave-one-model-out") && text.contains("version 3"), "{text}");
}

/// Every coefficient in stored params is a number (serde_json would write a NaN as null).
fn assert_numbers_finite(v: &serde_json::Value) {
    const NUMERIC: [&str; 9] = ["us", "fixed_us", "factor", "per_op_us", "per_byte_us", "residual", "count", "bandwidth", "shrink"];
    match v {
        serde_json::Value::Object(o) => {
            for (k, x) in o {
                if NUMERIC.contains(&k.as_str()) {
                    assert!(x.as_f64().is_some_and(f64::is_finite), "{k} = {x} in {v}");
                }
                assert_numbers_finite(x);
            }
        }
        serde_json::Value::Array(a) => a.iter().for_each(assert_numbers_finite),
        serde_json::Value::Number(n) => assert!(n.as_f64().is_some_and(f64::is_finite)),
        _ => {}
    }
}

#[test]
fn probe_networks_train_the_fit_and_are_never_held_out() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    // The smallest probe network, beside two zoo models.
    let smallest = tandem_graph::zoo::probe::probes().into_iter().min_by_key(|p| tandem_graph::zoo::probe::build_probe(p).macs).unwrap();
    for model in ["mobilenet", "transformer", smallest.name.as_str()] {
        let o = tandem(&["profile", model, "--db", dbs, "--budget-ms", "5", "--no-transfers", "--processors", "cpu:0", "--json"]);
        assert!(o.status.success(), "profile {model}: {}", stderr(&o));
    }
    let v = fit_json(&db);
    assert_eq!(v["training"]["models"], 3);
    assert_eq!(v["training"]["probe_models"], 1);
    let lomo = v["leave_one_model_out"].as_array().unwrap();
    let held_out: Vec<&str> = lomo.iter().map(|l| l["model"].as_str().unwrap()).collect();
    assert_eq!(held_out, ["mobilenet", "transformer"], "the probe trains every fold and is never judged");
    for l in lomo {
        let worst = l["worst_ops"].as_array().unwrap();
        assert!(!worst.is_empty() && worst.len() <= 5, "{l}");
        let miss = |o: &serde_json::Value| (o["predicted_us"].as_f64().unwrap() - o["measured_us"].as_f64().unwrap()).abs();
        assert!(worst.windows(2).all(|w| miss(&w[0]) >= miss(&w[1])), "worst first: {worst:?}");
    }
    let o = tandem(&["fit", "--db", dbs]);
    assert!(stdout(&o).contains("1 of them probe networks"), "{}", stdout(&o));
}

/// Each model's leave-one-model-out error on `cpu:0`, fitted at `speed` (`[]` or `["--unpaired"]`).
fn lomo_errors(db: &Path, speed: &[&str]) -> Vec<(String, f64)> {
    let mut args = vec!["fit", "--db", db.to_str().unwrap(), "--json"];
    args.extend(speed);
    let o = tandem(&args);
    assert!(o.status.success(), "fit failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    let lomo = v["leave_one_model_out"].as_array().unwrap();
    lomo.iter().filter(|l| l["processor"] == "cpu:0").map(|l| (l["model"].as_str().unwrap().to_string(), l["error"].as_f64().unwrap())).collect()
}

#[test]
fn a_model_profiled_while_the_host_ran_slower_fits_as_if_it_had_not() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    for model in ["resnet", "mobilenet", "transformer"] {
        let o = tandem(&["profile", model, "--db", dbs, "--budget-ms", "5", "--no-transfers", "--processors", "cpu:0", "--json"]);
        assert!(o.status.success(), "profile {model}: {}", stderr(&o));
    }
    // The whole model and its ops in context carry the reference kernel's time from their rounds;
    // ops alone and split parts do not.
    assert_eq!(count(&db, "select count(*) from measurements where context = 'in_model' and not reference_us > 0"), 0);
    assert_eq!(count(&db, "select count(*) from measurements where context = 'isolated' and reference_us is not null"), 0);
    let v = fit_json(&db);
    assert_eq!(v["training"]["paired_samples"].as_i64().unwrap(), count(&db, "select count(*) from measurements where reference_us > 0"));
    assert!(v["training"]["typical_reference_us"]["cpu:0"].as_f64().unwrap() > 0.0, "{}", v["training"]);
    let (paired, unpaired) = (lomo_errors(&db, &[]), lomo_errors(&db, &["--unpaired"]));

    // The host runs mobilenet's whole profile 1.5x slower: every timing of it, and the reference
    // kernel timed with them, take 1.5x as long.
    let store = tandem_store::Store::open(&db).unwrap();
    store
        .query_rows(
            "UPDATE measurements SET median_us = median_us * 1.5, reference_us = reference_us * 1.5 \
             WHERE context = 'in_model' AND model_id = (SELECT id FROM models WHERE name = 'mobilenet')",
        )
        .unwrap();
    drop(store);
    let error = |errors: &[(String, f64)]| errors.iter().find(|(m, _)| m == "mobilenet").unwrap().1;
    let (slow_paired, slow_unpaired) = (lomo_errors(&db, &[]), lomo_errors(&db, &["--unpaired"]));
    // Fitted as measured, its prediction from the other models is now a third too fast...
    assert!(((1.0 + error(&slow_unpaired)) * 1.5 / (1.0 + error(&unpaired)) - 1.0).abs() < 0.02, "{unpaired:?} then {slow_unpaired:?}");
    // ...brought to one speed, it is predicted as before, and so are the models it trains for.
    for ((model, before), (_, after)) in paired.iter().zip(&slow_paired) {
        assert!((after - before).abs() < 0.01, "{model}: error {before} at the host's speed, {after} slowed down");
    }
    let o = tandem(&["fit", "--db", dbs]);
    assert!(stdout(&o).contains("brought to their processor's typical speed"), "{}", stdout(&o));
}

#[test]
fn fit_on_an_empty_database_says_to_profile_first() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("empty.db");
    let o = tandem(&["fit", "--db", db.to_str().unwrap()]);
    assert_error(&o, "tandem profile MODEL");
    // Nothing was stored.
    assert_eq!(count(&db, "select count(*) from cost_models"), 0);
}

#[test]
fn fit_for_an_unknown_device_names_the_profiled_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("t.db");
    let dbs = db.to_str().unwrap();
    let o = tandem(&["profile", "transformer", "--db", dbs, "--budget-ms", "5", "--no-transfers", "--processors", "cpu:0"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let o = tandem(&["fit", "--db", dbs, "--device", "not-a-device", "--json"]);
    assert_error(&o, "not-a-device");
    let err = stderr(&o);
    assert!(err.contains("--device") && err.contains("tandem profile MODEL"), "{err}");
    assert!(o.stdout.is_empty(), "no JSON on failure");
}
