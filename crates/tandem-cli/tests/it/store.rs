//! `tandem query` and `tandem export` as a user meets them: output formats, the read-only promise, and
//! every kind of bad database.

use crate::common::*;

use std::path::{Path, PathBuf};
use std::process::Command;

use tandem_store::{Context, DeviceRow, MeasurementRow, ModelRow, OpRow, ProcessorRow, SessionRow, Store, Target};

/// Asserts a file still holds `before`, without printing the bytes.
fn assert_unchanged(path: &Path, before: &[u8]) {
    let after = std::fs::read(path).unwrap();
    assert!(after == before, "{} changed ({} -> {} bytes)", path.display(), before.len(), after.len());
}

/// A database with one device, its processors, a model with two ops, and three measurements.
fn seeded_db(dir: &Path) -> PathBuf {
    let path = dir.join("tandem.db");
    let store = Store::open(&path).unwrap();
    let device = "host/cpu/2c".to_string();
    store
        .upsert_device(&DeviceRow { id: device.clone(), hostname: "host".into(), cpu_model: "Test CPU".into(), cores: 2, memory_bytes: 1 << 33, first_seen: String::new() })
        .unwrap();
    store
        .upsert_processors(&[
            ProcessorRow { device_id: device.clone(), id: "cpu:0".into(), kind: "cpu".into(), cores: "0".into(), threads: 1, max_freq_khz: Some(2_500_000) },
            ProcessorRow { device_id: device.clone(), id: "cpu:1".into(), kind: "cpu".into(), cores: "1".into(), threads: 1, max_freq_khz: None },
        ])
        .unwrap();
    let model_id = store
        .upsert_model(&ModelRow { content_hash: "h".into(), name: "resnet".into(), total_flops: 10, op_count: 2, ..Default::default() })
        .unwrap();
    store
        .upsert_ops(&[
            OpRow { model_id, op_id: 0, name: "conv, \"first\"".into(), kind: "Conv".into(), flops: 8, ..Default::default() },
            OpRow { model_id, op_id: 1, name: "relu".into(), kind: "Relu".into(), flops: 2, ..Default::default() },
        ])
        .unwrap();
    let session_id = store.insert_session(&SessionRow { device_id: device.clone(), model_id: Some(model_id), ..Default::default() }).unwrap();
    let m = |op: Option<i64>, processor: &str, median_us: f64| MeasurementRow {
        session_id,
        model_id,
        op_id: op,
        processor_id: processor.into(),
        device_id: device.clone(),
        target: if op.is_some() { Target::Op } else { Target::Model },
        context: Context::InModel,
        samples: 10,
        median_us,
        p10_us: median_us,
        p90_us: median_us,
        mean_us: median_us,
        cv: 0.01,
        ..Default::default()
    };
    store.insert_measurements(&[m(Some(0), "cpu:0", 120.5), m(Some(1), "cpu:0", 10.0), m(None, "cpu:1", 140.25)]).unwrap();
    path
}

#[test]
fn query_prints_a_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    let o = tandem(&["query", "select name from sqlite_master where type = 'table' order by name", "--db", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    for table in ["devices", "processors", "models", "ops", "profile_sessions", "measurements", "unsupported", "transfers", "env_snapshots", "cost_models", "plans", "runs"] {
        assert!(out.contains(table), "{table} missing from:\n{out}");
    }
    assert!(out.contains("name"), "{out}");
}

#[test]
fn query_csv_has_a_header_and_typed_cells() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    let o = tandem(&["query", "select op_id, processor_id, median_us from measurements order by median_us", "--format", "csv", "--db", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "op_id,processor_id,median_us\n1,cpu:0,10.0\n0,cpu:0,120.5\n,cpu:1,140.25\n");
    // Quotes and commas in text are escaped as CSV expects.
    let o = tandem(&["query", "select name from ops where op_id = 0", "--format", "csv", "--db", db.to_str().unwrap()]);
    assert_eq!(stdout(&o), "name\n\"conv, \"\"first\"\"\"\n");
}

#[test]
fn query_json_is_one_object_with_columns_and_rows() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    for flag in [&["--json"][..], &["--format", "json"][..]] {
        let mut args = vec!["query", "select id, cores, memory_bytes, first_seen is not null as seen, null as empty from devices", "--db", db.to_str().unwrap()];
        args.extend_from_slice(flag);
        let o = tandem(&args);
        assert!(o.status.success(), "{}", stderr(&o));
        let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
        assert_eq!(v["columns"], serde_json::json!(["id", "cores", "memory_bytes", "seen", "empty"]));
        assert_eq!(v["rows"], serde_json::json!([{"id": "host/cpu/2c", "cores": 2, "memory_bytes": 8589934592u64, "seen": 1, "empty": null}]));
        // The keys keep the query's column order.
        let text = stdout(&o);
        let row = &text[text.find("\"rows\"").unwrap()..];
        assert!(row.find("\"id\"").unwrap() < row.find("\"cores\"").unwrap(), "{text}");
        assert!(row.find("\"cores\"").unwrap() < row.find("\"memory_bytes\"").unwrap(), "{text}");
    }
    let o = tandem(&["query", "select * from runs", "--json", "--db", db.to_str().unwrap()]);
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    assert_eq!(v["rows"], serde_json::json!([]));
    assert!(v["columns"].as_array().unwrap().len() > 5, "an empty result still names its columns");
}

#[test]
fn query_refuses_writes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    let before = std::fs::read(&db).unwrap();
    for sql in [
        "delete from measurements",
        "UPDATE devices SET cores = 64",
        "drop table ops",
        "create table notes (x)",
        "insert into processors (device_id, id, kind, threads) values ('host/cpu/2c', 'cpu:9', 'cpu', 1)",
        "pragma user_version = 3",
        "attach database 'elsewhere.db' as e",
        "with x as (select 1) delete from devices",
        "select 1; delete from devices",
    ] {
        assert_error(&tandem(&["query", sql, "--db", db.to_str().unwrap()]), "query is read-only: ");
    }
    assert_unchanged(&db, &before);
    let o = tandem(&["query", "select count(*) as n from measurements", "--format", "csv", "--db", db.to_str().unwrap()]);
    assert_eq!(stdout(&o), "n\n3\n");
    assert!(!dir.path().join("elsewhere.db").exists());
}

#[test]
fn query_errors_are_one_clear_line() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    assert_error(&tandem(&["query", "selec * from devices", "--db", db.to_str().unwrap()]), "query failed: near \"selec\": syntax error");
    assert_error(&tandem(&["query", "select * from nowhere", "--db", db.to_str().unwrap()]), "query failed: no such table: nowhere");
}

#[test]
fn query_on_a_missing_database_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("none").join("tandem.db");
    assert_error(&tandem(&["query", "select 1", "--db", db.to_str().unwrap()]), "no database at");
    let o = tandem(&["query", "select 1", "--db", db.to_str().unwrap()]);
    assert!(stderr(&o).contains("tandem profile"), "{}", stderr(&o));
    assert!(!db.exists() && !db.parent().unwrap().exists(), "query created nothing");
    // Without --db, the default is profiles-db/tandem.db under the current folder.
    let o = Command::new(env!("CARGO_BIN_EXE_tandem")).args(["query", "select 1"]).env_remove("TANDEM_DB").current_dir(dir.path()).output().unwrap();
    assert_error(&o, "no database at profiles-db/tandem.db");
}

#[test]
fn the_database_can_come_from_tandem_db() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    let o = Command::new(env!("CARGO_BIN_EXE_tandem"))
        .args(["query", "select count(*) as n from processors", "--format", "csv"])
        .env("TANDEM_DB", &db)
        .output()
        .unwrap();
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(stdout(&o), "n\n2\n");
}

#[test]
fn a_file_that_is_not_a_database_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..50_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 11) as u8).collect();
    std::fs::write(&garbage, &bytes).unwrap();
    for cmd in [&["query", "select 1"][..], &["export", "--out", dir.path().join("out").to_str().unwrap()][..]] {
        let mut args = cmd.to_vec();
        args.extend(["--db", garbage.to_str().unwrap()]);
        assert_error(&tandem(&args), "is not a tandem database (file is not a database); move it away or pass --db");
        assert_unchanged(&garbage, &bytes);
    }
    // A real database cut short.
    let db = seeded_db(dir.path());
    let full = std::fs::read(&db).unwrap();
    let cut = dir.path().join("cut.db");
    std::fs::write(&cut, &full[..full.len() / 2]).unwrap();
    assert_error(&tandem(&["query", "select * from devices", "--db", cut.to_str().unwrap()]), "is truncated");
    assert_unchanged(&cut, &full[..full.len() / 2]);
}

#[test]
fn export_writes_one_csv_per_table() {
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    let before = std::fs::read(&db).unwrap();
    let out = dir.path().join("csv");
    let o = tandem(&["export", "--out", out.to_str().unwrap(), "--db", db.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).expect("one JSON object");
    assert_eq!(v["format"], "csv");
    let files = v["files"].as_array().unwrap();
    assert_eq!(files.len(), 13, "{v}");
    for f in files {
        let path = PathBuf::from(f["path"].as_str().unwrap());
        assert!(path.exists() && path.extension().unwrap() == "csv", "{f}");
        let lines = std::fs::read_to_string(&path).unwrap().lines().count();
        assert_eq!(lines as u64, f["rows"].as_u64().unwrap() + 1, "{f}: a header and one line per row");
    }
    let measurements = files.iter().find(|f| f["table"] == "measurements").unwrap();
    assert_eq!(measurements["rows"], 3);
    let devices = std::fs::read_to_string(out.join("devices.csv")).unwrap();
    assert!(devices.starts_with("id,hostname,cpu_model,cores,memory_bytes,first_seen\nhost/cpu/2c,host,Test CPU,2,8589934592,"), "{devices}");
    // An empty table still has its header.
    assert!(std::fs::read_to_string(out.join("runs.csv")).unwrap().starts_with("id,plan_id,device_id,"));
    assert_unchanged(&db, &before);
    // The table form for people.
    let o = tandem(&["export", "--out", out.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("wrote 13 tables"), "{}", stdout(&o));
}

#[test]
fn export_parquet_reads_back_with_polars() {
    use polars::prelude::{DataType, ParquetReader, SerReader};
    let dir = tempfile::tempdir().unwrap();
    let db = seeded_db(dir.path());
    let out = dir.path().join("pq");
    let o = tandem(&["export", "--format", "parquet", "--out", out.to_str().unwrap(), "--db", db.to_str().unwrap()]);
    assert!(o.status.success(), "{}", stderr(&o));
    let read = |table: &str| ParquetReader::new(std::fs::File::open(out.join(format!("{table}.parquet"))).unwrap()).finish().unwrap();
    let m = read("measurements");
    assert_eq!(m.height(), 3);
    assert_eq!(m.column("median_us").unwrap().dtype(), &DataType::Float64);
    assert_eq!(m.column("op_id").unwrap().dtype(), &DataType::Int64);
    assert_eq!(m.column("op_id").unwrap().null_count(), 1, "the whole-model row has no op");
    let total: f64 = m.column("median_us").unwrap().f64().unwrap().into_iter().flatten().sum();
    assert!((total - 270.75).abs() < 1e-9, "{total}");
    let d = read("devices");
    assert_eq!(d.column("cpu_model").unwrap().str().unwrap().get(0), Some("Test CPU"));
    // Empty tables keep their declared column types.
    let runs = read("runs");
    assert_eq!((runs.height(), runs.column("median_ms").unwrap().dtype()), (0, &DataType::Float64));
    assert!(!out.read_dir().unwrap().any(|e| e.unwrap().path().extension().is_some_and(|x| x == "partial")));
}

#[test]
fn help_shows_examples() {
    for cmd in ["query", "export"] {
        let o = tandem(&[cmd, "--help"]);
        assert!(o.status.success());
        assert!(stdout(&o).contains(&format!("  tandem {cmd} ")), "{cmd} --help lacks an example:\n{}", stdout(&o));
        assert!(stdout(&o).contains("--db <PATH>"), "{cmd} --help lacks --db");
    }
}
