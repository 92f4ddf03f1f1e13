//! Merging another tandem database into this one (`tandem import OTHER.db`): a profile taken on a
//! phone, tuned on a workstation.
//!
//! The other file is checked like any database tandem opens (a file that is not SQLite, is damaged,
//! is another program's or was written by a newer tandem is refused before anything is read), then
//! attached read-only and copied table by table in one write transaction, so an import is stored
//! whole or not at all. Row ids are remapped: models by (content hash, input shapes), sessions,
//! snapshots, plans and runs by their natural keys (device, model and start time; ...), so importing
//! the same file twice adds nothing the second time. Rows already here win over imported ones with the
//! same key. A device's cost-model versions keep their numbers unless this database has other fits
//! under them; those are renumbered after its newest (and plans made with them follow), while a fit
//! identical to one already here maps onto it.

use std::path::{Path, PathBuf};

use serde::Serialize;
use sqlx::sqlite::SqliteConnection;
use sqlx::{Connection, Row};

use crate::check::{self, FileState};
use crate::error::{Result, StoreError};
use crate::store::Store;

/// What an import added.
#[derive(Debug, Clone, Default, PartialEq, Serialize)]
pub struct ImportReport {
    /// The database imported.
    pub source: PathBuf,
    /// Rows added, per table, in the order they were copied.
    pub added: Vec<(String, u64)>,
    /// Cost-model versions given new numbers: (device, version there, version here).
    pub renumbered: Vec<(String, i64, i64)>,
    /// Devices the imported database holds.
    pub devices: Vec<String>,
}

impl ImportReport {
    /// Rows added over all tables.
    pub fn total(&self) -> u64 {
        self.added.iter().map(|(_, n)| n).sum()
    }
}

/// How one table's rows are copied from `src` (aliased `s`) into `main`.
enum Copy {
    /// A statement as it stands; the table has a unique key and conflicts are skipped.
    Sql(&'static str, &'static str),
    /// Rows told apart by a natural key (`key`, comparing a row `x` here with `s`): copied where no
    /// row here has it. With `map`, a temp table of that name then maps `src` ids to ours.
    Keyed { table: &'static str, columns: &'static str, select: &'static str, from: &'static str, key: &'static str, map: Option<&'static str> },
}

/// The copies, in an order where every table comes after those it refers to.
const COPIES: &[Copy] = &[
    Copy::Sql("devices", "INSERT INTO main.devices (id, hostname, cpu_model, cores, memory_bytes, first_seen) \
        SELECT id, hostname, cpu_model, cores, memory_bytes, first_seen FROM src.devices WHERE true ON CONFLICT DO NOTHING"),
    Copy::Sql("processors", "INSERT INTO main.processors (device_id, id, kind, cores, threads, max_freq_khz) \
        SELECT device_id, id, kind, cores, threads, max_freq_khz FROM src.processors WHERE true ON CONFLICT DO NOTHING"),
    Copy::Sql("models", "INSERT INTO main.models (content_hash, name, input_shapes, total_flops, op_count, created_at) \
        SELECT content_hash, name, input_shapes, total_flops, op_count, created_at FROM src.models WHERE true ORDER BY id ON CONFLICT DO NOTHING"),
    Copy::Sql("", "CREATE TEMP TABLE import_models AS SELECT s.id AS old, m.id AS new FROM src.models s \
        JOIN main.models m ON m.content_hash = s.content_hash AND m.input_shapes = s.input_shapes"),
    Copy::Sql("ops", "INSERT INTO main.ops (model_id, op_id, name, kind, flops, macs, bytes_in, bytes_out, weight_bytes, output_shape, split_axes, features) \
        SELECT mm.new, o.op_id, o.name, o.kind, o.flops, o.macs, o.bytes_in, o.bytes_out, o.weight_bytes, o.output_shape, o.split_axes, o.features \
        FROM src.ops o JOIN temp.import_models mm ON mm.old = o.model_id WHERE true ON CONFLICT DO NOTHING"),
    Copy::Keyed {
        table: "profile_sessions",
        columns: "device_id, model_id, started_at, finished_at, settings, status, reference_before_ms, reference_after_ms, drift_pct",
        select: "s.device_id, mm.new, s.started_at, s.finished_at, s.settings, s.status, s.reference_before_ms, s.reference_after_ms, s.drift_pct",
        from: "src.profile_sessions s LEFT JOIN temp.import_models mm ON mm.old = s.model_id",
        key: "x.device_id = s.device_id AND x.model_id IS mm.new AND x.started_at = s.started_at",
        map: Some("import_sessions"),
    },
    Copy::Keyed {
        table: "env_snapshots",
        columns: "device_id, session_id, taken_at, load1, load5, load15, other_cpu_pct, freqs_khz, temps_c",
        select: "s.device_id, ms.new, s.taken_at, s.load1, s.load5, s.load15, s.other_cpu_pct, s.freqs_khz, s.temps_c",
        from: "src.env_snapshots s LEFT JOIN temp.import_sessions ms ON ms.old = s.session_id",
        key: "x.device_id = s.device_id AND x.session_id IS ms.new AND x.taken_at = s.taken_at",
        map: Some("import_env"),
    },
    Copy::Sql("measurements", "INSERT INTO main.measurements (session_id, device_id, model_id, op_id, processor_id, target, variant, split_axis, ratio_start, ratio_end, \
        context, samples, median_us, p10_us, p90_us, mean_us, cv, outliers_dropped, env_id, measured_at, reference_us) \
        SELECT ms.new, m.device_id, mm.new, m.op_id, m.processor_id, m.target, m.variant, m.split_axis, m.ratio_start, m.ratio_end, \
        m.context, m.samples, m.median_us, m.p10_us, m.p90_us, m.mean_us, m.cv, m.outliers_dropped, me.new, m.measured_at, m.reference_us \
        FROM src.measurements m JOIN temp.import_models mm ON mm.old = m.model_id JOIN temp.import_sessions ms ON ms.old = m.session_id \
        LEFT JOIN temp.import_env me ON me.old = m.env_id WHERE true ORDER BY m.id ON CONFLICT DO NOTHING"),
    Copy::Sql("unsupported", "INSERT INTO main.unsupported (device_id, model_id, op_id, processor_id, reason, recorded_at) \
        SELECT u.device_id, mm.new, u.op_id, u.processor_id, u.reason, u.recorded_at \
        FROM src.unsupported u JOIN temp.import_models mm ON mm.old = u.model_id WHERE true ON CONFLICT DO NOTHING"),
    Copy::Sql("transfers", "INSERT INTO main.transfers (device_id, session_id, src_processor, dst_processor, bytes, samples, median_us, p10_us, p90_us, cv, measured_at) \
        SELECT t.device_id, ms.new, t.src_processor, t.dst_processor, t.bytes, t.samples, t.median_us, t.p10_us, t.p90_us, t.cv, t.measured_at \
        FROM src.transfers t LEFT JOIN temp.import_sessions ms ON ms.old = t.session_id WHERE true ORDER BY t.id ON CONFLICT DO NOTHING"),
    // Since schema 2. Keyed by (device, processor, model, scenario): a profile already here wins.
    Copy::Sql("contention", "INSERT INTO main.contention (device_id, processor_id, model_id, scenario, load, idle_us, loaded_us, slowdown, \
        idle_samples, loaded_samples, runs_per_sample, idle_cv, loaded_cv, env, created_at) \
        SELECT c.device_id, c.processor_id, mm.new, c.scenario, c.load, c.idle_us, c.loaded_us, c.slowdown, \
        c.idle_samples, c.loaded_samples, c.runs_per_sample, c.idle_cv, c.loaded_cv, c.env, c.created_at \
        FROM src.contention c JOIN temp.import_models mm ON mm.old = c.model_id WHERE true ORDER BY c.id ON CONFLICT DO NOTHING"),
    Copy::Sql("cost_models", "INSERT INTO main.cost_models (device_id, processor_id, op_kind, version, params, samples, mape, within_10pct, fitted_at, fallback_of) \
        SELECT c.device_id, c.processor_id, c.op_kind, iv.new, c.params, c.samples, c.mape, c.within_10pct, c.fitted_at, c.fallback_of \
        FROM src.cost_models c JOIN temp.import_versions iv ON iv.device_id = c.device_id AND iv.old = c.version \
        WHERE iv.copy ORDER BY c.id ON CONFLICT DO NOTHING"),
    // A plan made with a renumbered fit names the new number, in its row and in its JSON.
    Copy::Keyed {
        table: "plans",
        columns: "model_id, device_id, cost_model_version, objective, plan, predicted_ms, created_at",
        select: "mm.new, s.device_id, coalesce(iv.new, s.cost_model_version), s.objective, \
            CASE WHEN iv.new IS NOT NULL AND iv.new <> s.cost_model_version AND json_valid(s.plan) \
            THEN json_set(s.plan, '$.cost_model_version', iv.new) ELSE s.plan END, s.predicted_ms, s.created_at",
        from: "src.plans s JOIN temp.import_models mm ON mm.old = s.model_id \
            LEFT JOIN temp.import_versions iv ON iv.device_id = s.device_id AND iv.old = s.cost_model_version",
        key: "x.model_id = mm.new AND x.device_id = s.device_id AND x.created_at = s.created_at AND x.predicted_ms = s.predicted_ms",
        map: Some("import_plans"),
    },
    Copy::Keyed {
        table: "runs",
        columns: "plan_id, device_id, started_at, verified, max_abs_diff, max_rel_diff, median_ms, p90_ms, predicted_ms, prediction_error, baselines, details",
        select: "ip.new, s.device_id, s.started_at, s.verified, s.max_abs_diff, s.max_rel_diff, s.median_ms, s.p90_ms, s.predicted_ms, \
            s.prediction_error, s.baselines, s.details",
        from: "src.runs s JOIN temp.import_plans ip ON ip.old = s.plan_id",
        key: "x.plan_id = ip.new AND x.started_at = s.started_at",
        map: None,
    },
];

impl Copy {
    /// The statements, with the table they add rows to (`""` for a mapping).
    fn statements(&self) -> Vec<(&'static str, String)> {
        match *self {
            Copy::Sql(table, sql) => vec![(table, sql.to_string())],
            Copy::Keyed { table, columns, select, from, key, map } => {
                let mut out = vec![(
                    table,
                    format!("INSERT INTO main.{table} ({columns}) SELECT {select} FROM {from} WHERE NOT EXISTS (SELECT 1 FROM main.{table} x WHERE {key}) ORDER BY s.id"),
                )];
                if let Some(map) = map {
                    out.push(("", format!("CREATE TEMP TABLE {map} AS SELECT s.id AS old, (SELECT min(x.id) FROM main.{table} x WHERE {key}) AS new FROM {from}")));
                }
                out
            }
        }
    }
}

/// Columns later migrations added to existing tables, as (table, column, the expression the copies read
/// it by): from a database that lacks one, the copy reads NULL instead.
const ADDED_COLUMNS: &[(&str, &str, &str)] = &[("measurements", "reference_us", "m.reference_us")];

const TEMP_TABLES: [&str; 5] = ["import_models", "import_sessions", "import_env", "import_versions", "import_plans"];

/// One fit's rows, as text to compare fits by.
const FIT_SIGNATURES: &str = "SELECT device_id, version, group_concat(processor_id || char(31) || op_kind || char(31) || params, char(30)) \
    FROM (SELECT * FROM {db}.cost_models ORDER BY device_id, version, processor_id, op_kind) GROUP BY device_id, version";

/// `file:` URI of a path, opened read-only; immutable when no other connection has it open (no
/// `-wal` or `-shm` beside it), so that reading it creates nothing next to it.
fn read_only_uri(path: &Path) -> String {
    let sibling = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name).exists()
    };
    let mut uri = String::from("file:");
    for c in path.to_string_lossy().chars() {
        match c {
            '%' | '?' | '#' => uri.push_str(&format!("%{:02X}", c as u32)),
            c => uri.push(c),
        }
    }
    uri.push_str("?mode=ro");
    if !sibling("-wal") && !sibling("-shm") {
        uri.push_str("&immutable=1");
    }
    uri
}

impl Store {
    /// Merges the tandem database at `other` into this one (see the module docs); returns what was
    /// added. Nothing is added when anything fails.
    pub fn import(&self, other: impl AsRef<Path>) -> Result<ImportReport> {
        let other = other.as_ref();
        let refuse = |message: String| StoreError::Import { path: other.to_path_buf(), message };
        if self.is_read_only() {
            return Err(StoreError::ReadOnly { message: "importing writes the database".into() });
        }
        if let (Ok(a), Ok(b)) = (std::fs::canonicalize(&self.path), std::fs::canonicalize(other)) {
            if a == b {
                return Err(refuse("it is the database being imported into".into()));
            }
        }
        match self.block_on(check::inspect(other)) {
            Ok(FileState::Tandem { applied }) => {
                if let Some(e) = crate::store::too_new(other, &applied) {
                    return Err(e);
                }
            }
            Ok(FileState::Missing) => return Err(refuse("no such file".into())),
            Ok(FileState::Empty) => return Err(refuse("it holds no tandem tables".into())),
            Ok(FileState::Foreign) => return Err(refuse("it is not a tandem database: a SQLite database with tables of another program".into())),
            Err(StoreError::NotADatabase { reason, .. }) => return Err(refuse(format!("it is not a tandem database ({reason})"))),
            Err(e) => return Err(e),
        }
        let mut conn = self.conn();
        let result = self.block_on(async {
            sqlx::query("ATTACH DATABASE ? AS src").bind(read_only_uri(other)).execute(&mut *conn).await?;
            let copied = copy(&mut conn).await;
            let detached = sqlx::query("DETACH DATABASE src").execute(&mut *conn).await;
            let report = copied?;
            detached?;
            Ok::<_, sqlx::Error>(report)
        });
        drop(conn);
        let mut report = result.map_err(|e| self.sql_error(&format!("importing {}", other.display()), e))?;
        report.source = other.to_path_buf();
        Ok(report)
    }
}

/// Copies every table of `src` into `main` in one transaction.
async fn copy(conn: &mut SqliteConnection) -> std::result::Result<ImportReport, sqlx::Error> {
    let devices = sqlx::query_scalar("SELECT id FROM src.devices ORDER BY id").fetch_all(&mut *conn).await?;
    let mut report = ImportReport { devices, ..Default::default() };
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    for t in TEMP_TABLES {
        sqlx::query(&format!("DROP TABLE IF EXISTS temp.{t}")).execute(&mut *tx).await?;
    }
    // Cost-model versions: keep a fit's number unless another fit here holds it.
    let signatures = |db: &str| FIT_SIGNATURES.replace("{db}", db);
    let ours: Vec<(String, i64, String)> =
        sqlx::query(&signatures("main")).fetch_all(&mut *tx).await?.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    let theirs: Vec<(String, i64, String)> =
        sqlx::query(&signatures("src")).fetch_all(&mut *tx).await?.iter().map(|r| (r.get(0), r.get(1), r.get(2))).collect();
    sqlx::query("CREATE TEMP TABLE import_versions (device_id TEXT, old INTEGER, new INTEGER, copy INTEGER)").execute(&mut *tx).await?;
    let mut taken: Vec<(String, i64)> = ours.iter().map(|(d, v, _)| (d.clone(), *v)).collect();
    for (d, v, sig) in &theirs {
        let (new, copy) = match ours.iter().find(|(od, _, osig)| od == d && osig == sig) {
            Some((_, same, _)) => (*same, false),
            None if !taken.contains(&(d.clone(), *v)) => (*v, true),
            None => {
                let n = taken.iter().filter(|(td, _)| td == d).map(|(_, tv)| *tv).max().unwrap_or(0) + 1;
                report.renumbered.push((d.clone(), *v, n));
                (n, true)
            }
        };
        taken.push((d.clone(), new));
        sqlx::query("INSERT INTO temp.import_versions VALUES (?, ?, ?, ?)").bind(d).bind(v).bind(new).bind(copy).execute(&mut *tx).await?;
    }
    // A database from an older tandem lacks the tables later migrations added: nothing to copy from them.
    let theirs_tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM src.sqlite_master WHERE type = 'table'").fetch_all(&mut *tx).await?;
    let mut missing_columns = vec![];
    for &(table, column, expr) in ADDED_COLUMNS {
        let has: i64 = sqlx::query_scalar("SELECT count(*) FROM pragma_table_info(?, 'src') WHERE name = ?").bind(table).bind(column).fetch_one(&mut *tx).await?;
        if has == 0 {
            missing_columns.push((table, expr));
        }
    }
    for (table, mut sql) in COPIES.iter().flat_map(Copy::statements) {
        if !table.is_empty() && !theirs_tables.iter().any(|t| t == table) {
            report.added.push((table.to_string(), 0));
            continue;
        }
        for (_, expr) in missing_columns.iter().filter(|(t, _)| *t == table) {
            sql = sql.replace(expr, "NULL");
        }
        let done = sqlx::query(&sql).execute(&mut *tx).await?;
        if !table.is_empty() {
            report.added.push((table.to_string(), done.rows_affected()));
        }
    }
    for t in TEMP_TABLES {
        sqlx::query(&format!("DROP TABLE temp.{t}")).execute(&mut *tx).await?;
    }
    tx.commit().await?;
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{CostModelRow, DeviceRow, ModelRow, PlanRow};

    fn fit(store: &Store, version: i64, params: &str) {
        let row = CostModelRow { device_id: "phone".into(), processor_id: "cpu:0".into(), op_kind: "Conv".into(), version, params: params.into(), samples: 10, ..Default::default() };
        store.insert_cost_models(&[row]).unwrap();
    }

    #[test]
    fn another_fit_under_a_taken_version_is_renumbered_and_its_plans_follow() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Store::open(dir.path().join("a.db")).unwrap(), Store::open(dir.path().join("b.db")).unwrap());
        for s in [&a, &b] {
            s.upsert_device(&DeviceRow { id: "phone".into(), hostname: "p".into(), ..Default::default() }).unwrap();
        }
        fit(&a, 1, r#"{"x":1}"#);
        fit(&a, 2, r#"{"x":2}"#);
        // b holds a's first fit, and another one under a's second number.
        fit(&b, 1, r#"{"x":1}"#);
        fit(&b, 2, r#"{"x":3}"#);
        let model = a.upsert_model(&ModelRow { content_hash: "h".into(), name: "m".into(), ..Default::default() }).unwrap();
        let plan = PlanRow { model_id: model, device_id: "phone".into(), cost_model_version: Some(2), plan: r#"{"cost_model_version":2}"#.into(), predicted_ms: 1.5, ..Default::default() };
        a.insert_plan(&plan).unwrap();

        let r = b.import(a.path()).unwrap();
        assert_eq!(r.renumbered, vec![("phone".to_string(), 2, 3)]);
        assert_eq!(r.added.iter().find(|(t, _)| t == "cost_models").unwrap().1, 1);
        assert_eq!(b.latest_cost_model_version("phone").unwrap(), Some(3));
        assert_eq!(b.cost_models("phone", 3).unwrap()[0].params, r#"{"x":2}"#);
        let m = b.find_model("h", "{}").unwrap().unwrap();
        let plans = b.plans(m.id, "phone").unwrap();
        assert_eq!(plans.len(), 1);
        assert_eq!(plans[0].cost_model_version, Some(3));
        assert_eq!(plans[0].plan, r#"{"cost_model_version":3}"#);

        // Again: everything is already here.
        let r = b.import(a.path()).unwrap();
        assert_eq!(r.total(), 0, "{r:?}");
        assert!(r.renumbered.is_empty());
    }

    /// A device with processor `cpu:0` and one model (after `models_before` other models, so that the
    /// model's id differs between databases), with one contention row; returns the model's id.
    fn contention_db(store: &Store, models_before: usize, slowdown: f64) -> i64 {
        store.upsert_device(&DeviceRow { id: "phone".into(), hostname: "p".into(), ..Default::default() }).unwrap();
        let cpu = crate::ProcessorRow { device_id: "phone".into(), id: "cpu:0".into(), kind: "cpu".into(), cores: "0".into(), threads: 1, max_freq_khz: None };
        store.upsert_processors(&[cpu]).unwrap();
        for i in 0..models_before {
            store.upsert_model(&ModelRow { content_hash: format!("other{i}"), name: "o".into(), ..Default::default() }).unwrap();
        }
        let model = store.upsert_model(&ModelRow { content_hash: "h".into(), name: "m".into(), ..Default::default() }).unwrap();
        let row = crate::ContentionRow {
            device_id: "phone".into(),
            processor_id: "cpu:0".into(),
            model_id: model,
            scenario: "compute-same".into(),
            load: "compute spinner x1 on core 0 (100%)".into(),
            idle_us: 100.0,
            loaded_us: 100.0 * slowdown,
            slowdown,
            idle_samples: 5,
            loaded_samples: 5,
            ..Default::default()
        };
        store.insert_contention(&[row]).unwrap();
        model
    }

    #[test]
    fn contention_profiles_follow_their_model_and_import_once() {
        let dir = tempfile::tempdir().unwrap();
        let (a, b) = (Store::open(dir.path().join("a.db")).unwrap(), Store::open(dir.path().join("b.db")).unwrap());
        let in_a = contention_db(&a, 2, 2.5);
        a.insert_contention(&[crate::ContentionRow { scenario: "memory-same".into(), ..a.contention("phone").unwrap()[0].clone() }]).unwrap();
        let c = Store::open(dir.path().join("c.db")).unwrap();
        let in_c = contention_db(&c, 0, 9.0);
        assert_ne!(in_a, in_c);

        let r = c.import(a.path()).unwrap();
        assert_eq!(r.added.iter().find(|(t, _)| t == "contention").unwrap().1, 1, "{r:?}");
        let rows = c.contention("phone").unwrap();
        assert_eq!(rows.len(), 2);
        assert!(rows.iter().all(|row| row.model_id == in_c), "remapped to this database's model id: {rows:?}");
        // The row already here wins over the imported one with the same key.
        assert_eq!(rows.iter().find(|row| row.scenario == "compute-same").unwrap().slowdown, 9.0);
        assert_eq!(c.import(a.path()).unwrap().total(), 0);

        // An empty database takes everything, the model's id following it.
        let r = b.import(a.path()).unwrap();
        assert_eq!(r.added.iter().find(|(t, _)| t == "contention").unwrap().1, 2);
        let m = b.find_model("h", "{}").unwrap().unwrap();
        assert!(b.contention("phone").unwrap().iter().all(|row| row.model_id == m.id));
    }

    #[test]
    fn a_database_from_before_contention_profiles_imports() {
        let dir = tempfile::tempdir().unwrap();
        let old = Store::open(dir.path().join("old.db")).unwrap();
        contention_db(&old, 0, 2.0);
        // What schema 1 looked like: no contention table, one migration applied.
        old.query_rows("DROP TABLE contention").unwrap();
        old.query_rows("DELETE FROM _sqlx_migrations WHERE version > 1").unwrap();
        drop(old);
        let b = Store::open(dir.path().join("b.db")).unwrap();
        let r = b.import(dir.path().join("old.db")).unwrap();
        assert_eq!(r.added.iter().find(|(t, _)| t == "contention").unwrap().1, 0);
        assert_eq!(r.added.iter().find(|(t, _)| t == "models").unwrap().1, 1);
    }

    /// One whole-model measurement of the contention database's model, taken with a reference.
    fn measured(store: &Store, model: i64) {
        let session = store.insert_session(&crate::SessionRow { device_id: "phone".into(), model_id: Some(model), started_at: "2026-12-03T10:00:00.000Z".into(), ..Default::default() }).unwrap();
        let row = crate::MeasurementRow { session_id: session, device_id: "phone".into(), model_id: model, processor_id: "cpu:0".into(), samples: 5, median_us: 100.0, reference_us: Some(250.0), ..Default::default() };
        store.insert_measurements(&[row]).unwrap();
    }

    #[test]
    fn measurements_keep_their_reference_and_a_database_from_before_references_imports() {
        let dir = tempfile::tempdir().unwrap();
        let a = Store::open(dir.path().join("a.db")).unwrap();
        let model = contention_db(&a, 1, 2.0);
        measured(&a, model);
        let b = Store::open(dir.path().join("b.db")).unwrap();
        b.import(a.path()).unwrap();
        let m = b.find_model("h", "{}").unwrap().unwrap();
        assert_eq!(b.measurements("phone", m.id).unwrap()[0].reference_us, Some(250.0));

        // What schema 2 looked like: no reference column, two migrations applied.
        let old = Store::open(dir.path().join("old.db")).unwrap();
        let model = contention_db(&old, 0, 2.0);
        measured(&old, model);
        old.query_rows("ALTER TABLE measurements DROP COLUMN reference_us").unwrap();
        old.query_rows("DELETE FROM _sqlx_migrations WHERE version > 2").unwrap();
        drop(old);
        let c = Store::open(dir.path().join("c.db")).unwrap();
        let r = c.import(dir.path().join("old.db")).unwrap();
        assert_eq!(r.added.iter().find(|(t, _)| t == "measurements").unwrap().1, 1, "{r:?}");
        let m = c.find_model("h", "{}").unwrap().unwrap();
        let rows = c.measurements("phone", m.id).unwrap();
        assert_eq!((rows[0].median_us, rows[0].reference_us), (100.0, None));
    }

    #[test]
    fn files_that_are_not_tandem_databases_are_refused_and_nothing_is_added() {
        let dir = tempfile::tempdir().unwrap();
        let b = Store::open(dir.path().join("b.db")).unwrap();
        let text = dir.path().join("notes.txt");
        std::fs::write(&text, "x".repeat(4096)).unwrap();
        let e = b.import(&text).unwrap_err().to_string();
        assert!(e.contains("is not a tandem database"), "{e}");
        assert!(b.import(dir.path().join("none.db")).unwrap_err().to_string().contains("no such file"));
        assert!(b.import(b.path()).unwrap_err().to_string().contains("imported into"));
        assert_eq!(b.row_count("devices").unwrap(), 0);
    }
}
