//! The results database as the pipeline uses it: schema, typed writes and reads, concurrency, and every
//! kind of bad file.

use std::path::{Path, PathBuf};

use tandem_store::*;

const DEVICE: &str = "test-host/x86/2c";

fn db(dir: &tempfile::TempDir) -> PathBuf {
    dir.path().join("nested").join("tandem.db")
}

/// A device with two processors, a model with three ops and a running session.
fn seed(store: &Store) -> (i64, i64) {
    store
        .upsert_device(&DeviceRow {
            id: DEVICE.into(),
            hostname: "test-host".into(),
            cpu_model: "Test CPU".into(),
            cores: 2,
            memory_bytes: 8 << 30,
            first_seen: String::new(),
        })
        .unwrap();
    store
        .upsert_processors(&[
            ProcessorRow { device_id: DEVICE.into(), id: "cpu:0".into(), kind: "cpu".into(), cores: "0".into(), threads: 1, max_freq_khz: Some(3_000_000) },
            ProcessorRow { device_id: DEVICE.into(), id: "cpu:1".into(), kind: "cpu".into(), cores: "1".into(), threads: 1, max_freq_khz: None },
            ProcessorRow { device_id: DEVICE.into(), id: "cpu:0-1".into(), kind: "cpu".into(), cores: "0,1".into(), threads: 2, max_freq_khz: None },
        ])
        .unwrap();
    let model_id = store
        .upsert_model(&ModelRow {
            content_hash: "abc123".into(),
            name: "resnet".into(),
            input_shapes: r#"{"input":[1,3,64,64]}"#.into(),
            total_flops: 3_000,
            op_count: 3,
            ..Default::default()
        })
        .unwrap();
    let ops: Vec<OpRow> = (0..3)
        .map(|i| OpRow {
            model_id,
            op_id: i,
            name: format!("op{i}"),
            kind: if i == 1 { "Relu".into() } else { "Conv".into() },
            flops: 1000,
            macs: 500,
            bytes_in: 4096,
            bytes_out: 4096,
            weight_bytes: 1024,
            output_shape: "[1,16,32,32]".into(),
            split_axes: "[1]".into(),
            features: String::new(),
        })
        .collect();
    store.upsert_ops(&ops).unwrap();
    let session = store
        .insert_session(&SessionRow { device_id: DEVICE.into(), model_id: Some(model_id), settings: r#"{"budget_s":1}"#.into(), ..Default::default() })
        .unwrap();
    (model_id, session)
}

fn measurement(session_id: i64, model_id: i64, op_id: Option<i64>, processor: &str, variant: &str, median_us: f64) -> MeasurementRow {
    MeasurementRow {
        session_id,
        model_id,
        op_id,
        processor_id: processor.into(),
        device_id: DEVICE.into(),
        target: if op_id.is_some() { Target::Op } else { Target::Model },
        variant: variant.into(),
        context: Context::InModel,
        samples: 30,
        median_us,
        p10_us: median_us * 0.9,
        p90_us: median_us * 1.1,
        mean_us: median_us,
        cv: 0.05,
        ..Default::default()
    }
}

fn all_tables() -> Vec<&'static str> {
    let mut t = vec![
        "contention", "cost_models", "devices", "env_snapshots", "measurements", "models", "ops", "plans", "processors",
        "profile_sessions", "runs", "transfers", "unsupported",
    ];
    t.sort();
    t
}

#[test]
fn migrates_an_empty_database_and_reopens_idempotently() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.tables().unwrap(), all_tables());
        assert_eq!(store.schema_version().unwrap(), Store::latest_schema_version());
        seed(&store);
    }
    assert!(path.exists(), "the folder and file are created");
    for _ in 0..3 {
        let store = Store::open(&path).unwrap();
        assert_eq!(store.tables().unwrap(), all_tables());
        assert_eq!(store.devices().unwrap().len(), 1);
        let (_, rows) = store.query_rows("SELECT count(*) FROM _sqlx_migrations").unwrap();
        assert_eq!(rows[0][0], Value::Int(Store::latest_schema_version()), "migrations applied once");
    }
    let store = Store::open(&path).unwrap();
    let (_, rows) = store.query_rows("PRAGMA journal_mode").unwrap();
    assert_eq!(rows[0][0], Value::Text("wal".into()));
    let (_, rows) = store.query_rows("PRAGMA foreign_keys").unwrap();
    assert_eq!(rows[0][0], Value::Int(1));
    let (_, rows) = store.query_rows("PRAGMA busy_timeout").unwrap();
    assert_eq!(rows[0][0], Value::Int(10_000));
    let (_, rows) = store.query_rows("PRAGMA synchronous").unwrap();
    assert_eq!(rows[0][0], Value::Int(1), "NORMAL");
}

#[test]
fn typed_rows_round_trip() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(&dir)).unwrap();
    let (model_id, session) = seed(&store);

    let device = store.device(DEVICE).unwrap().unwrap();
    assert_eq!(device.cores, 2);
    assert!(device.first_seen.ends_with('Z') && device.first_seen.len() == 24, "{}", device.first_seen);
    // An upsert updates the device but keeps the first sighting.
    store.upsert_device(&DeviceRow { memory_bytes: 16 << 30, first_seen: "2000-01-01T00:00:00.000Z".into(), ..device.clone() }).unwrap();
    let again = store.device(DEVICE).unwrap().unwrap();
    assert_eq!(again.memory_bytes, 16 << 30);
    assert_eq!(again.first_seen, device.first_seen);

    let procs = store.processors(DEVICE).unwrap();
    assert_eq!(procs.iter().map(|p| p.id.as_str()).collect::<Vec<_>>(), ["cpu:0", "cpu:0-1", "cpu:1"]);
    assert_eq!(procs[0].max_freq_khz, Some(3_000_000));

    // The same model (hash + shapes) keeps its id; other input shapes make another model.
    let m = store.model(model_id).unwrap().unwrap();
    assert_eq!(store.upsert_model(&m).unwrap(), model_id);
    assert_eq!(store.find_model("abc123", &m.input_shapes).unwrap().unwrap().id, model_id);
    let other = store.upsert_model(&ModelRow { input_shapes: r#"{"input":[4,3,64,64]}"#.into(), ..m.clone() }).unwrap();
    assert_ne!(other, model_id);
    assert_eq!(store.models().unwrap().len(), 2);

    let ops = store.ops(model_id).unwrap();
    assert_eq!(ops.len(), 3);
    assert_eq!(ops[1].kind, "Relu");
    assert_eq!(ops[0].features, "{}", "an empty JSON column is stored as {{}}");

    let s = store.session(session).unwrap().unwrap();
    assert_eq!((s.status, s.finished_at.is_none()), (SessionStatus::Running, true));
    store
        .update_session(&SessionRow { status: SessionStatus::Done, reference_before_ms: Some(10.0), reference_after_ms: Some(10.5), drift_pct: Some(5.0), ..s })
        .unwrap();
    let s = store.session(session).unwrap().unwrap();
    assert_eq!(s.status, SessionStatus::Done);
    assert!(s.finished_at.is_some());
    assert_eq!(s.drift_pct, Some(5.0));
    assert_eq!(store.sessions(DEVICE, Some(model_id)).unwrap().len(), 1);
    assert_eq!(store.sessions(DEVICE, None).unwrap().len(), 1);

    let env_id = store
        .insert_env_snapshot(&EnvSnapshotRow { device_id: DEVICE.into(), session_id: Some(session), load1: Some(0.5), freqs_khz: r#"{"0":2900000}"#.into(), ..Default::default() })
        .unwrap();
    assert_eq!(store.env_snapshots(session).unwrap()[0].id, env_id);

    let mut m0 = measurement(session, model_id, Some(0), "cpu:0", "whole", 100.0);
    m0.env_id = Some(env_id);
    let split = MeasurementRow {
        target: Target::SplitPart,
        variant: "axis1:0-0.5".into(),
        split_axis: Some(1),
        ratio_start: Some(0.0),
        ratio_end: Some(0.5),
        ..measurement(session, model_id, Some(0), "cpu:1", "", 60.0)
    };
    let whole = measurement(session, model_id, None, "cpu:0-1", "", 500.0);
    assert_eq!(store.insert_measurements(&[m0.clone(), split, whole]).unwrap(), 3);
    let got = store.measurements(DEVICE, model_id).unwrap();
    assert_eq!(got.len(), 3);
    assert_eq!(got[0].target, Target::Model, "the whole-model row sorts first");
    assert_eq!(got[0].variant, "whole", "an empty variant is 'whole'");
    assert_eq!(got[2].ratio_end, Some(0.5));
    assert_eq!(got[1].env_id, Some(env_id));

    store
        .upsert_unsupported(&[UnsupportedRow { device_id: DEVICE.into(), model_id, op_id: 1, processor_id: "cpu:1".into(), reason: "no kernel".into() }])
        .unwrap();
    store
        .upsert_unsupported(&[UnsupportedRow { device_id: DEVICE.into(), model_id, op_id: 1, processor_id: "cpu:1".into(), reason: "still no kernel".into() }])
        .unwrap();
    let u = store.unsupported(DEVICE, model_id).unwrap();
    assert_eq!((u.len(), u[0].reason.as_str()), (1, "still no kernel"));

    let t = TransferRow { device_id: DEVICE.into(), src_processor: "cpu:0".into(), dst_processor: "cpu:1".into(), bytes: 4096, samples: 20, median_us: 3.0, p10_us: 2.5, p90_us: 4.0, cv: 0.1, ..Default::default() };
    store.upsert_transfers(&[t.clone(), TransferRow { bytes: 65536, median_us: 9.0, ..t.clone() }]).unwrap();
    store.upsert_transfers(&[TransferRow { median_us: 3.5, ..t }]).unwrap();
    let ts = store.transfers(DEVICE).unwrap();
    assert_eq!(ts.len(), 2);
    assert_eq!(ts[0].median_us, 3.5);

    assert_eq!(store.next_cost_model_version(DEVICE).unwrap(), 1);
    store
        .insert_cost_models(&[CostModelRow { device_id: DEVICE.into(), processor_id: "cpu:0".into(), op_kind: "Conv".into(), version: 1, params: r#"{"a":1}"#.into(), samples: 10, mape: Some(8.0), within_10pct: Some(0.7), ..Default::default() }])
        .unwrap();
    assert_eq!(store.latest_cost_model_version(DEVICE).unwrap(), Some(1));
    assert_eq!(store.cost_models(DEVICE, 1).unwrap()[0].mape, Some(8.0));

    let plan_id = store.insert_plan(&PlanRow { model_id, device_id: DEVICE.into(), cost_model_version: Some(1), plan: r#"{"stages":[]}"#.into(), predicted_ms: 1.5, ..Default::default() }).unwrap();
    let plan = store.plan(plan_id).unwrap().unwrap();
    assert_eq!((plan.objective.as_str(), plan.predicted_ms), ("latency", 1.5));
    assert_eq!(store.plans(model_id, DEVICE).unwrap().len(), 1);
    let run_id = store.insert_run(&RunRow { plan_id, device_id: DEVICE.into(), verified: true, median_ms: Some(1.6), ..Default::default() }).unwrap();
    let runs = store.runs(plan_id).unwrap();
    assert_eq!((runs[0].id, runs[0].verified, runs[0].baselines.as_str()), (run_id, true, "[]"));

    store.insert_contention(&[ContentionRow { env: String::new(), runs_per_sample: 0, ..contention(model_id, "cpu:1", "memory-other", 10.0, 12.5) }]).unwrap();
    let c = store.contention(DEVICE).unwrap();
    // An empty JSON column and an unset batch size get their defaults.
    assert_eq!((c[0].slowdown, c[0].env.as_str(), c[0].runs_per_sample), (1.25, "{}", 1));

    for table in all_tables() {
        assert!(store.row_count(table).unwrap() >= 1, "{table} has a row");
    }
}

#[test]
fn upserting_a_measurement_twice_leaves_one_row() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(&dir)).unwrap();
    let (model_id, session) = seed(&store);
    let op = measurement(session, model_id, Some(2), "cpu:0", "whole", 100.0);
    let model = measurement(session, model_id, None, "cpu:0", "whole", 900.0);
    store.insert_measurements(&[op.clone(), model.clone()]).unwrap();
    // Resuming, or `--force`, stores the same keys again: they are replaced, not duplicated, even the
    // whole-model row whose op is NULL.
    let session2 = store.insert_session(&SessionRow { device_id: DEVICE.into(), model_id: Some(model_id), ..Default::default() }).unwrap();
    store
        .insert_measurements(&[MeasurementRow { session_id: session2, median_us: 120.0, ..op }, MeasurementRow { session_id: session2, median_us: 950.0, ..model }])
        .unwrap();
    let rows = store.measurements(DEVICE, model_id).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!((rows[0].median_us, rows[0].session_id), (950.0, session2));
    assert_eq!((rows[1].median_us, rows[1].session_id), (120.0, session2));
    // Another context is another measurement.
    store.insert_measurements(&[MeasurementRow { context: Context::Isolated, ..rows[1].clone() }]).unwrap();
    assert_eq!(store.measurements(DEVICE, model_id).unwrap().len(), 3);
}

fn contention(model_id: i64, processor: &str, scenario: &str, idle_us: f64, loaded_us: f64) -> ContentionRow {
    ContentionRow {
        device_id: DEVICE.into(),
        processor_id: processor.into(),
        model_id,
        scenario: scenario.into(),
        load: format!("compute spinner x1 on core 1 ({scenario})"),
        idle_us,
        loaded_us,
        slowdown: loaded_us / idle_us,
        idle_samples: 9,
        loaded_samples: 8,
        runs_per_sample: 3,
        idle_cv: Some(0.02),
        loaded_cv: None,
        env: r#"{"device_id":"x"}"#.into(),
        ..Default::default()
    }
}

#[test]
fn contention_profiles_are_replaced_not_duplicated() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(&dir)).unwrap();
    let (model_id, _) = seed(&store);
    let first = [contention(model_id, "cpu:0", "compute-other", 100.0, 110.0), contention(model_id, "cpu:0", "compute-same", 100.0, 205.0)];
    assert_eq!(store.insert_contention(&first).unwrap(), 2);
    let rows = store.contention(DEVICE).unwrap();
    assert_eq!(rows.iter().map(|r| r.scenario.as_str()).collect::<Vec<_>>(), ["compute-other", "compute-same"]);
    assert_eq!((rows[1].slowdown, rows[1].idle_samples, rows[1].runs_per_sample, rows[1].idle_cv, rows[1].loaded_cv), (2.05, 9, 3, Some(0.02), None));
    assert!(!rows[0].created_at.is_empty() && rows[0].env.contains("device_id"));
    // Profiling cpu:0's compute-same again replaces it; cpu:1 is another row; another device sees none.
    store.insert_contention(&[contention(model_id, "cpu:0", "compute-same", 90.0, 270.0), contention(model_id, "cpu:1", "compute-same", 95.0, 190.0)]).unwrap();
    let rows = store.contention(DEVICE).unwrap();
    assert_eq!(rows.len(), 3);
    let same: Vec<(&str, f64)> = rows.iter().filter(|r| r.scenario == "compute-same").map(|r| (r.processor_id.as_str(), r.slowdown)).collect();
    assert_eq!(same, [("cpu:0", 3.0), ("cpu:1", 2.0)]);
    assert!(store.contention("another-device").unwrap().is_empty());
    // A batch naming a processor the device lacks is refused whole.
    let err = store.insert_contention(&[contention(model_id, "cpu:1", "memory-same", 1.0, 2.0), contention(model_id, "npu:7", "memory-same", 1.0, 2.0)]).unwrap_err();
    assert!(err.to_string().contains("storing contention profiles"), "{err}");
    assert_eq!(store.row_count("contention").unwrap(), 3);
}

#[test]
fn a_batch_is_stored_whole_or_not_at_all() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(&dir)).unwrap();
    let (model_id, session) = seed(&store);
    let good = measurement(session, model_id, Some(0), "cpu:0", "whole", 100.0);
    let bad = measurement(session, model_id, Some(0), "npu:7", "whole", 100.0); // no such processor
    let err = store.insert_measurements(&[good, bad]).unwrap_err();
    assert!(err.to_string().contains("storing measurements") && err.to_string().contains("FOREIGN KEY"), "{err}");
    assert_eq!(store.row_count("measurements").unwrap(), 0);
}

#[test]
fn two_writers_at_once_both_succeed() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    // Both open a database that does not exist yet: both create it and migrate it at the same moment.
    let writers: Vec<_> = ["cpu:0", "cpu:1"]
        .into_iter()
        .map(|processor| {
            let path = path.clone();
            std::thread::spawn(move || {
                let store = Store::open(&path).unwrap();
                let (model_id, session) = seed(&store);
                for batch in 0..20 {
                    let rows: Vec<MeasurementRow> = (0..10)
                        .map(|i| measurement(session, model_id, Some(i % 3), processor, &format!("v{batch}-{i}"), 50.0 + i as f64))
                        .collect();
                    store.insert_measurements(&rows).unwrap();
                }
                model_id
            })
        })
        .collect();
    let ids: Vec<i64> = writers.into_iter().map(|w| w.join().expect("writer succeeded")).collect();
    assert_eq!(ids[0], ids[1], "the same model, stored once");
    let store = Store::open(&path).unwrap();
    assert_eq!(store.row_count("measurements").unwrap(), 400);
    assert_eq!(store.row_count("models").unwrap(), 1);
    assert_eq!(store.row_count("profile_sessions").unwrap(), 2);
    let (_, rows) = store.query_rows("SELECT count(*) FROM _sqlx_migrations").unwrap();
    assert_eq!(rows[0][0], Value::Int(Store::latest_schema_version()));
}

/// Asserts two versions of a file are the same bytes, reporting where they differ (not the bytes).
fn assert_same_bytes(before: &[u8], after: &[u8], what: &str) {
    if before != after {
        let at = before.iter().zip(after).position(|(a, b)| a != b);
        panic!("{what}: the file changed ({} -> {} bytes, first difference at {at:?})", before.len(), after.len());
    }
}

/// Not a test on its own: the body of each writer process in `two_processes_write_at_once`.
#[test]
#[ignore = "run by two_processes_write_at_once in child processes"]
fn writer_process() {
    let (Some(path), Some(processor)) = (std::env::var_os("TANDEM_STORE_TEST_DB"), std::env::var("TANDEM_STORE_TEST_PROCESSOR").ok()) else {
        return;
    };
    let store = Store::open(PathBuf::from(path)).unwrap();
    let (model_id, session) = seed(&store);
    for batch in 0..30 {
        let rows: Vec<MeasurementRow> = (0..10)
            .map(|i| measurement(session, model_id, Some(i % 3), &processor, &format!("p{batch}-{i}"), 10.0))
            .collect();
        store.insert_measurements(&rows).unwrap();
    }
}

#[test]
fn two_processes_write_at_once() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    let exe = std::env::current_exe().unwrap();
    // Two processes (this test binary, running `writer_process`) create, migrate and write one
    // database at the same time.
    let children: Vec<_> = ["cpu:0", "cpu:1"]
        .into_iter()
        .map(|processor| {
            std::process::Command::new(&exe)
                .args(["writer_process", "--exact", "--ignored", "--test-threads=1"])
                .env("TANDEM_STORE_TEST_DB", &path)
                .env("TANDEM_STORE_TEST_PROCESSOR", processor)
                .stdout(std::process::Stdio::piped())
                .stderr(std::process::Stdio::piped())
                .spawn()
                .unwrap()
        })
        .collect();
    for child in children {
        let out = child.wait_with_output().unwrap();
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(out.status.success() && text.contains("1 passed"), "writer failed: {text} {}", String::from_utf8_lossy(&out.stderr));
    }
    let store = Store::open(&path).unwrap();
    assert_eq!(store.row_count("measurements").unwrap(), 600, "300 rows from each process, none lost");
    assert_eq!(store.row_count("models").unwrap(), 1);
    assert_eq!(store.row_count("profile_sessions").unwrap(), 2);
}

fn assert_refused(path: &Path, needle: &str) {
    let before = std::fs::read(path).unwrap();
    for read_only in [false, true] {
        let err = if read_only { Store::open_read_only(path) } else { Store::open(path) }.unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, StoreError::NotADatabase { .. }), "{msg}");
        assert!(msg.contains("is not a tandem database") && msg.contains(needle) && msg.contains("--db"), "{msg}");
        assert_same_bytes(&before, &std::fs::read(path).unwrap(), msg.as_str());
    }
    let siblings: Vec<_> = std::fs::read_dir(path.parent().unwrap()).unwrap().map(|e| e.unwrap().file_name()).collect();
    assert_eq!(siblings.len(), 1, "nothing was created beside it: {siblings:?}");
}

#[test]
fn garbage_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("garbage.db");
    let bytes: Vec<u8> = (0..10_000u32).map(|i| (i.wrapping_mul(2_654_435_761) >> 13) as u8).collect();
    std::fs::write(&path, &bytes).unwrap();
    assert_refused(&path, "file is not a database");
    std::fs::write(&path, "just some notes\n").unwrap();
    assert_refused(&path, "file is not a database");
}

/// A closed database holding 300 measurements, large enough to cut or damage in its middle.
fn filled_database(dir: &Path) -> PathBuf {
    let full = dir.join("full.db");
    let store = Store::open(&full).unwrap();
    let (model_id, session) = seed(&store);
    let rows: Vec<MeasurementRow> =
        (0..300).map(|i| measurement(session, model_id, Some(i % 3), "cpu:0", &format!("v{i}"), 10.0)).collect();
    store.insert_measurements(&rows).unwrap();
    full
}

#[test]
fn a_truncated_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let full = filled_database(dir.path());
    assert!(!dir.path().join("full.db-wal").exists(), "closing checkpoints the WAL");
    let bytes = std::fs::read(&full).unwrap();
    assert!(bytes.len() > 8192, "{}", bytes.len());
    let cut_dir = dir.path().join("cut");
    std::fs::create_dir(&cut_dir).unwrap();
    let cut = cut_dir.join("tandem.db");
    std::fs::write(&cut, &bytes[..bytes.len() / 2]).unwrap();
    assert_refused(&cut, "truncated");
}

#[test]
fn a_damaged_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let full = filled_database(dir.path());
    let mut bytes = std::fs::read(&full).unwrap();
    // Keep the header, scribble over every page after the first.
    for (i, b) in bytes.iter_mut().enumerate().skip(4096) {
        *b = (i % 251) as u8;
    }
    let bad_dir = dir.path().join("bad");
    std::fs::create_dir(&bad_dir).unwrap();
    let bad = bad_dir.join("tandem.db");
    std::fs::write(&bad, &bytes).unwrap();
    assert_refused(&bad, "damaged");
}

#[test]
fn another_programs_database_is_refused_and_left_unchanged() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("other.db");
    // A healthy SQLite file with tables but without tandem's bookkeeping: someone else's database.
    {
        let store = Store::open(&path).unwrap();
        store.query_rows("DROP TABLE _sqlx_migrations").unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::NotADatabase { .. }), "{err}");
    assert!(err.to_string().contains("tables of another program"), "{err}");
    assert_same_bytes(&before, &std::fs::read(&path).unwrap(), "foreign database");
    // Reading it is fine: `tandem query` can look at any SQLite file.
    let ro = Store::open_read_only(&path).unwrap();
    assert!(ro.tables().unwrap().contains(&"devices".to_string()));
}

#[test]
fn a_newer_schema_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("tandem.db");
    {
        let store = Store::open(&path).unwrap();
        store
            .query_rows(
                "INSERT INTO _sqlx_migrations (version, description, success, checksum, execution_time) \
                 VALUES (9999, 'from the future', 1, x'00', 0)",
            )
            .unwrap();
    }
    let before = std::fs::read(&path).unwrap();
    let err = Store::open(&path).unwrap_err();
    assert!(matches!(err, StoreError::TooNew { found: 9999, .. }), "{err}");
    assert!(err.to_string().contains("newer tandem") && err.to_string().contains("upgrade tandem"), "{err}");
    assert_same_bytes(&before, &std::fs::read(&path).unwrap(), "newer database");
    // Reading it still works.
    let ro = Store::open_read_only(&path).unwrap();
    assert_eq!(ro.schema_version().unwrap(), 9999);
}

#[test]
fn read_only_refuses_writes_and_changes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let path = db(&dir);
    {
        let store = Store::open(&path).unwrap();
        seed(&store);
    }
    let before = std::fs::read(&path).unwrap();
    let store = Store::open_read_only(&path).unwrap();
    assert!(store.is_read_only());
    for sql in [
        "DELETE FROM devices",
        "insert into devices (id, hostname, cpu_model, cores, memory_bytes) values ('x', 'x', 'x', 1, 1)",
        "UPDATE devices SET cores = 4",
        "DROP TABLE measurements",
        "CREATE TABLE x (a)",
        "ATTACH DATABASE 'other.db' AS other",
        "PRAGMA user_version = 7",
        "VACUUM INTO 'copy.db'",
        "WITH d AS (SELECT 1) DELETE FROM devices",
        "SELECT 1; DELETE FROM devices",
        "/* sneaky */ REPLACE INTO processors (device_id, id, kind, threads) VALUES ('x', 'y', 'z', 1)",
    ] {
        let err = store.query_rows(sql).unwrap_err();
        assert!(matches!(err, StoreError::ReadOnly { .. }), "{sql}: {err}");
        assert!(err.to_string().starts_with("query is read-only: "), "{err}");
    }
    assert_eq!(store.row_count("devices").unwrap(), 1);
    assert_eq!(store.query_rows("SELECT count(*) FROM processors").unwrap().1[0][0], Value::Int(3));
    drop(store);
    assert_same_bytes(&before, &std::fs::read(&path).unwrap(), "read-only queries");
    assert!(!dir.path().join("nested").join("other.db").exists() && !dir.path().join("copy.db").exists());
}

#[test]
fn read_only_on_a_missing_file_says_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("nope").join("tandem.db");
    let err = Store::open_read_only(&path).unwrap_err();
    assert!(matches!(err, StoreError::Missing { .. }));
    assert!(err.to_string().contains("no database at") && err.to_string().contains("tandem profile"), "{err}");
    assert!(!path.exists() && !path.parent().unwrap().exists(), "nothing created");
}

#[test]
fn generic_queries_type_each_cell() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(&dir)).unwrap();
    seed(&store);
    let (cols, rows) = store.query_rows("SELECT 1 AS i, 2.5 AS r, 'x' AS t, NULL AS n, x'0aff' AS b").unwrap();
    assert_eq!(cols, ["i", "r", "t", "n", "b"]);
    assert_eq!(rows, [vec![Value::Int(1), Value::Real(2.5), Value::Text("x".into()), Value::Null, Value::Blob(vec![10, 255])]]);
    // An empty result still has its columns.
    let (cols, rows) = store.query_rows("SELECT id, cores FROM devices WHERE 0").unwrap();
    assert_eq!((cols.len(), rows.len()), (2, 0));
    let df = store.frame("SELECT id, threads, max_freq_khz FROM processors WHERE 0").unwrap();
    assert_eq!(df.dtypes(), [polars::prelude::DataType::String, polars::prelude::DataType::Int64, polars::prelude::DataType::Int64], "typed from the declaration");
    let err = store.query_rows("SELEC nothing").unwrap_err();
    assert!(err.to_string().starts_with("query failed: ") && err.to_string().contains("syntax error"), "{err}");
    let err = store.query_rows("SELECT * FROM nowhere").unwrap_err();
    assert!(err.to_string().contains("no such table: nowhere"), "{err}");
    assert!(store.query_rows("  ").is_err());
}

#[test]
fn now_matches_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(db(&dir)).unwrap();
    let sqlite_now = || store.query_rows("SELECT strftime('%Y-%m-%dT%H:%M:%fZ', 'now')").unwrap().1[0][0].as_str().unwrap().to_string();
    let before = sqlite_now();
    let ours = now();
    let after = sqlite_now();
    // Same format, so timestamps written by either sort together as text.
    assert!(before <= ours && ours <= after, "{before} <= {ours} <= {after}");
}
