//! Typed reads and writes, one group per table.
//!
//! Every write is one short `BEGIN IMMEDIATE` transaction: it takes the write lock at once (waiting up
//! to the busy timeout for another writer), so it never fails half-way on a lock, and a batch (say,
//! [`Store::insert_measurements`]) is stored whole or not at all.

use sqlx::sqlite::{Sqlite, SqliteArguments};
use sqlx::query::Query;
use sqlx::Connection;

use crate::error::Result;
use crate::rows::*;
use crate::store::Store;
use crate::time::now;

/// An empty timestamp means "now".
fn ts(s: &str) -> String {
    if s.is_empty() {
        now()
    } else {
        s.to_string()
    }
}

/// An empty JSON column gets its empty value.
fn json<'a>(s: &'a str, empty: &'a str) -> &'a str {
    if s.trim().is_empty() {
        empty
    } else {
        s
    }
}

type Q<'q> = Query<'q, Sqlite, SqliteArguments<'q>>;

/// Runs `make(item)` for each item in one write transaction.
macro_rules! write_all {
    ($store:expr, $action:expr, $items:expr, $make:expr) => {{
        let store: &Store = $store;
        let items = $items;
        let mut conn = store.conn();
        store
            .block_on(async {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let mut n = 0usize;
                for item in items {
                    let q: Q<'_> = $make(item);
                    q.execute(&mut *tx).await?;
                    n += 1;
                }
                tx.commit().await?;
                Ok::<usize, sqlx::Error>(n)
            })
            .map_err(|e| store.sql_error($action, e))
    }};
}

/// Runs one insert returning the new row's id, in its own write transaction.
macro_rules! insert_returning_id {
    ($store:expr, $action:expr, $query:expr) => {{
        let store: &Store = $store;
        let mut conn = store.conn();
        store
            .block_on(async {
                let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
                let id: i64 = $query.fetch_one(&mut *tx).await?;
                tx.commit().await?;
                Ok::<i64, sqlx::Error>(id)
            })
            .map_err(|e| store.sql_error($action, e))
    }};
}

impl Store {
    fn fetch_all<'q, T>(&self, action: &str, query: sqlx::query::QueryAs<'q, Sqlite, T, SqliteArguments<'q>>) -> Result<Vec<T>>
    where
        T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    {
        let mut conn = self.conn();
        self.block_on(query.fetch_all(&mut *conn)).map_err(|e| self.sql_error(action, e))
    }

    fn fetch_optional<'q, T>(
        &self,
        action: &str,
        query: sqlx::query::QueryAs<'q, Sqlite, T, SqliteArguments<'q>>,
    ) -> Result<Option<T>>
    where
        T: Send + Unpin + for<'r> sqlx::FromRow<'r, sqlx::sqlite::SqliteRow>,
    {
        let mut conn = self.conn();
        self.block_on(query.fetch_optional(&mut *conn)).map_err(|e| self.sql_error(action, e))
    }

    // ---- devices and processors ----

    /// Stores a device, or updates it; `first_seen` keeps its first value.
    pub fn upsert_device(&self, d: &DeviceRow) -> Result<()> {
        write_all!(self, "storing the device", [d], |d: &DeviceRow| sqlx::query(
            "INSERT INTO devices (id, hostname, cpu_model, cores, memory_bytes, first_seen) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (id) DO UPDATE SET hostname = excluded.hostname, cpu_model = excluded.cpu_model, \
             cores = excluded.cores, memory_bytes = excluded.memory_bytes"
        )
        .bind(d.id.clone())
        .bind(d.hostname.clone())
        .bind(d.cpu_model.clone())
        .bind(d.cores)
        .bind(d.memory_bytes)
        .bind(ts(&d.first_seen)))?;
        Ok(())
    }

    /// The device with this id.
    pub fn device(&self, id: &str) -> Result<Option<DeviceRow>> {
        self.fetch_optional("reading a device", sqlx::query_as("SELECT * FROM devices WHERE id = ?").bind(id))
    }

    /// All devices, oldest first.
    pub fn devices(&self) -> Result<Vec<DeviceRow>> {
        self.fetch_all("reading the devices", sqlx::query_as("SELECT * FROM devices ORDER BY first_seen, id"))
    }

    /// Stores processors (the device must be stored), or updates them.
    pub fn upsert_processors(&self, processors: &[ProcessorRow]) -> Result<()> {
        write_all!(self, "storing the processors", processors, |p: &ProcessorRow| sqlx::query(
            "INSERT INTO processors (device_id, id, kind, cores, threads, max_freq_khz) VALUES (?, ?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, id) DO UPDATE SET kind = excluded.kind, cores = excluded.cores, \
             threads = excluded.threads, max_freq_khz = excluded.max_freq_khz"
        )
        .bind(p.device_id.clone())
        .bind(p.id.clone())
        .bind(p.kind.clone())
        .bind(p.cores.clone())
        .bind(p.threads)
        .bind(p.max_freq_khz))?;
        Ok(())
    }

    /// A device's processors, by id.
    pub fn processors(&self, device_id: &str) -> Result<Vec<ProcessorRow>> {
        self.fetch_all(
            "reading the processors",
            sqlx::query_as("SELECT * FROM processors WHERE device_id = ? ORDER BY id").bind(device_id),
        )
    }

    // ---- models and ops ----

    /// Stores a model, or updates the one with the same content hash and input shapes; returns its id
    /// (`m.id` is ignored).
    pub fn upsert_model(&self, m: &ModelRow) -> Result<i64> {
        insert_returning_id!(
            self,
            "storing the model",
            sqlx::query_scalar(
                "INSERT INTO models (content_hash, name, input_shapes, total_flops, op_count, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?) \
                 ON CONFLICT (content_hash, input_shapes) DO UPDATE SET name = excluded.name, \
                 total_flops = excluded.total_flops, op_count = excluded.op_count RETURNING id"
            )
            .bind(&m.content_hash)
            .bind(&m.name)
            .bind(json(&m.input_shapes, "{}"))
            .bind(m.total_flops)
            .bind(m.op_count)
            .bind(ts(&m.created_at))
        )
    }

    /// The model with this id.
    pub fn model(&self, id: i64) -> Result<Option<ModelRow>> {
        self.fetch_optional("reading a model", sqlx::query_as("SELECT * FROM models WHERE id = ?").bind(id))
    }

    /// The model with this content hash and these input shapes (JSON text, as stored).
    pub fn find_model(&self, content_hash: &str, input_shapes: &str) -> Result<Option<ModelRow>> {
        self.fetch_optional(
            "reading a model",
            sqlx::query_as("SELECT * FROM models WHERE content_hash = ? AND input_shapes = ?")
                .bind(content_hash)
                .bind(json(input_shapes, "{}")),
        )
    }

    /// All models, by id.
    pub fn models(&self) -> Result<Vec<ModelRow>> {
        self.fetch_all("reading the models", sqlx::query_as("SELECT * FROM models ORDER BY id"))
    }

    /// Stores ops (their model must be stored), or updates them, in one transaction.
    pub fn upsert_ops(&self, ops: &[OpRow]) -> Result<()> {
        write_all!(self, "storing the ops", ops, |o: &OpRow| sqlx::query(
            "INSERT INTO ops (model_id, op_id, name, kind, flops, macs, bytes_in, bytes_out, weight_bytes, \
             output_shape, split_axes, features) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (model_id, op_id) DO UPDATE SET name = excluded.name, kind = excluded.kind, \
             flops = excluded.flops, macs = excluded.macs, bytes_in = excluded.bytes_in, \
             bytes_out = excluded.bytes_out, weight_bytes = excluded.weight_bytes, \
             output_shape = excluded.output_shape, split_axes = excluded.split_axes, features = excluded.features"
        )
        .bind(o.model_id)
        .bind(o.op_id)
        .bind(o.name.clone())
        .bind(o.kind.clone())
        .bind(o.flops)
        .bind(o.macs)
        .bind(o.bytes_in)
        .bind(o.bytes_out)
        .bind(o.weight_bytes)
        .bind(json(&o.output_shape, "[]").to_string())
        .bind(json(&o.split_axes, "[]").to_string())
        .bind(json(&o.features, "{}").to_string()))?;
        Ok(())
    }

    /// A model's ops, in order.
    pub fn ops(&self, model_id: i64) -> Result<Vec<OpRow>> {
        self.fetch_all("reading the ops", sqlx::query_as("SELECT * FROM ops WHERE model_id = ? ORDER BY op_id").bind(model_id))
    }

    // ---- profiling sessions ----

    /// Starts a session; returns its id (`s.id` and `s.finished_at` are ignored).
    pub fn insert_session(&self, s: &SessionRow) -> Result<i64> {
        insert_returning_id!(
            self,
            "starting the profiling session",
            sqlx::query_scalar(
                "INSERT INTO profile_sessions (device_id, model_id, started_at, settings, status, \
                 reference_before_ms, reference_after_ms, drift_pct) VALUES (?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            )
            .bind(&s.device_id)
            .bind(s.model_id)
            .bind(ts(&s.started_at))
            .bind(json(&s.settings, "{}"))
            .bind(s.status.as_str())
            .bind(s.reference_before_ms)
            .bind(s.reference_after_ms)
            .bind(s.drift_pct)
        )
    }

    /// Updates a session's settings, status, end time and reference timings (by `s.id`). A session
    /// leaving `running` without an end time gets "now".
    pub fn update_session(&self, s: &SessionRow) -> Result<()> {
        let finished_at = match (&s.finished_at, s.status) {
            (Some(t), _) => Some(ts(t)),
            (None, SessionStatus::Running) => None,
            (None, _) => Some(now()),
        };
        write_all!(self, "updating the profiling session", [s], |s: &SessionRow| sqlx::query(
            "UPDATE profile_sessions SET finished_at = ?, settings = ?, status = ?, reference_before_ms = ?, \
             reference_after_ms = ?, drift_pct = ? WHERE id = ?"
        )
        .bind(finished_at.clone())
        .bind(json(&s.settings, "{}").to_string())
        .bind(s.status.as_str())
        .bind(s.reference_before_ms)
        .bind(s.reference_after_ms)
        .bind(s.drift_pct)
        .bind(s.id))?;
        Ok(())
    }

    /// The session with this id.
    pub fn session(&self, id: i64) -> Result<Option<SessionRow>> {
        self.fetch_optional("reading a profiling session", sqlx::query_as("SELECT * FROM profile_sessions WHERE id = ?").bind(id))
    }

    /// A device's sessions for a model (or, with `None`, all of the device's sessions), oldest first.
    pub fn sessions(&self, device_id: &str, model_id: Option<i64>) -> Result<Vec<SessionRow>> {
        self.fetch_all(
            "reading the profiling sessions",
            sqlx::query_as(
                "SELECT * FROM profile_sessions WHERE device_id = ? AND (? IS NULL OR model_id = ?) ORDER BY id",
            )
            .bind(device_id)
            .bind(model_id)
            .bind(model_id),
        )
    }

    // ---- measurements ----

    /// Stores measurements in one transaction; a row whose key (device, model, op, processor, target,
    /// variant, context) is already stored replaces it. Returns the number of rows written.
    pub fn insert_measurements(&self, rows: &[MeasurementRow]) -> Result<usize> {
        write_all!(self, "storing measurements", rows, |m: &MeasurementRow| sqlx::query(
            "INSERT INTO measurements (session_id, device_id, model_id, op_id, processor_id, target, variant, \
             split_axis, ratio_start, ratio_end, context, samples, median_us, p10_us, p90_us, mean_us, cv, \
             outliers_dropped, env_id, measured_at, reference_us) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, model_id, ifnull(op_id, -1), processor_id, target, variant, context) \
             DO UPDATE SET session_id = excluded.session_id, split_axis = excluded.split_axis, \
             ratio_start = excluded.ratio_start, ratio_end = excluded.ratio_end, samples = excluded.samples, \
             median_us = excluded.median_us, p10_us = excluded.p10_us, p90_us = excluded.p90_us, \
             mean_us = excluded.mean_us, cv = excluded.cv, outliers_dropped = excluded.outliers_dropped, \
             env_id = excluded.env_id, measured_at = excluded.measured_at, reference_us = excluded.reference_us"
        )
        .bind(m.session_id)
        .bind(m.device_id.clone())
        .bind(m.model_id)
        .bind(m.op_id)
        .bind(m.processor_id.clone())
        .bind(m.target.as_str())
        .bind(if m.variant.is_empty() { "whole".to_string() } else { m.variant.clone() })
        .bind(m.split_axis)
        .bind(m.ratio_start)
        .bind(m.ratio_end)
        .bind(m.context.as_str())
        .bind(m.samples)
        .bind(m.median_us)
        .bind(m.p10_us)
        .bind(m.p90_us)
        .bind(m.mean_us)
        .bind(m.cv)
        .bind(m.outliers_dropped)
        .bind(m.env_id)
        .bind(ts(&m.measured_at))
        .bind(m.reference_us))
    }

    /// A device's measurements of a model, in key order (op, processor, target, variant, context).
    pub fn measurements(&self, device_id: &str, model_id: i64) -> Result<Vec<MeasurementRow>> {
        self.fetch_all(
            "reading measurements",
            sqlx::query_as(
                "SELECT * FROM measurements WHERE device_id = ? AND model_id = ? \
                 ORDER BY ifnull(op_id, -1), processor_id, target, variant, context",
            )
            .bind(device_id)
            .bind(model_id),
        )
    }

    // ---- unsupported ops, transfers, environment ----

    /// Records ops that processors cannot run (replacing the reason of one already recorded).
    pub fn upsert_unsupported(&self, rows: &[UnsupportedRow]) -> Result<()> {
        write_all!(self, "storing unsupported ops", rows, |u: &UnsupportedRow| sqlx::query(
            "INSERT INTO unsupported (device_id, model_id, op_id, processor_id, reason) VALUES (?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, model_id, op_id, processor_id) DO UPDATE SET reason = excluded.reason"
        )
        .bind(u.device_id.clone())
        .bind(u.model_id)
        .bind(u.op_id)
        .bind(u.processor_id.clone())
        .bind(u.reason.clone()))?;
        Ok(())
    }

    /// The ops of a model that the device's processors cannot run.
    pub fn unsupported(&self, device_id: &str, model_id: i64) -> Result<Vec<UnsupportedRow>> {
        self.fetch_all(
            "reading unsupported ops",
            sqlx::query_as(
                "SELECT * FROM unsupported WHERE device_id = ? AND model_id = ? ORDER BY op_id, processor_id",
            )
            .bind(device_id)
            .bind(model_id),
        )
    }

    /// Stores transfer timings in one transaction, replacing those with the same (device, source,
    /// destination, bytes).
    pub fn upsert_transfers(&self, rows: &[TransferRow]) -> Result<()> {
        write_all!(self, "storing transfer timings", rows, |t: &TransferRow| sqlx::query(
            "INSERT INTO transfers (device_id, session_id, src_processor, dst_processor, bytes, samples, \
             median_us, p10_us, p90_us, cv, measured_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, src_processor, dst_processor, bytes) DO UPDATE SET \
             session_id = excluded.session_id, samples = excluded.samples, median_us = excluded.median_us, \
             p10_us = excluded.p10_us, p90_us = excluded.p90_us, cv = excluded.cv, measured_at = excluded.measured_at"
        )
        .bind(t.device_id.clone())
        .bind(t.session_id)
        .bind(t.src_processor.clone())
        .bind(t.dst_processor.clone())
        .bind(t.bytes)
        .bind(t.samples)
        .bind(t.median_us)
        .bind(t.p10_us)
        .bind(t.p90_us)
        .bind(t.cv)
        .bind(ts(&t.measured_at)))?;
        Ok(())
    }

    /// A device's transfer timings, by (source, destination, bytes).
    pub fn transfers(&self, device_id: &str) -> Result<Vec<TransferRow>> {
        self.fetch_all(
            "reading transfer timings",
            sqlx::query_as("SELECT * FROM transfers WHERE device_id = ? ORDER BY src_processor, dst_processor, bytes")
                .bind(device_id),
        )
    }

    /// Stores an environment snapshot; returns its id (`e.id` is ignored).
    pub fn insert_env_snapshot(&self, e: &EnvSnapshotRow) -> Result<i64> {
        insert_returning_id!(
            self,
            "storing an environment snapshot",
            sqlx::query_scalar(
                "INSERT INTO env_snapshots (device_id, session_id, taken_at, load1, load5, load15, other_cpu_pct, \
                 freqs_khz, temps_c) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            )
            .bind(&e.device_id)
            .bind(e.session_id)
            .bind(ts(&e.taken_at))
            .bind(e.load1)
            .bind(e.load5)
            .bind(e.load15)
            .bind(e.other_cpu_pct)
            .bind(json(&e.freqs_khz, "{}"))
            .bind(json(&e.temps_c, "{}"))
        )
    }

    /// A session's environment snapshots, in time order.
    pub fn env_snapshots(&self, session_id: i64) -> Result<Vec<EnvSnapshotRow>> {
        self.fetch_all(
            "reading environment snapshots",
            sqlx::query_as("SELECT * FROM env_snapshots WHERE session_id = ? ORDER BY taken_at, id").bind(session_id),
        )
    }

    // ---- contention profiles ----

    /// Stores contention measurements in one transaction; a row with the same (device, processor, model,
    /// scenario) is replaced, so re-profiling a scenario never duplicates it. Returns the rows written.
    pub fn insert_contention(&self, rows: &[ContentionRow]) -> Result<usize> {
        write_all!(self, "storing contention profiles", rows, |c: &ContentionRow| sqlx::query(
            "INSERT INTO contention (device_id, processor_id, model_id, scenario, load, idle_us, loaded_us, slowdown, \
             idle_samples, loaded_samples, runs_per_sample, idle_cv, loaded_cv, env, created_at) \
             VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, processor_id, model_id, scenario) DO UPDATE SET load = excluded.load, \
             idle_us = excluded.idle_us, loaded_us = excluded.loaded_us, slowdown = excluded.slowdown, \
             idle_samples = excluded.idle_samples, loaded_samples = excluded.loaded_samples, \
             runs_per_sample = excluded.runs_per_sample, idle_cv = excluded.idle_cv, loaded_cv = excluded.loaded_cv, env = excluded.env, created_at = excluded.created_at"
        )
        .bind(c.device_id.clone())
        .bind(c.processor_id.clone())
        .bind(c.model_id)
        .bind(c.scenario.clone())
        .bind(c.load.clone())
        .bind(c.idle_us)
        .bind(c.loaded_us)
        .bind(c.slowdown)
        .bind(c.idle_samples)
        .bind(c.loaded_samples)
        .bind(c.runs_per_sample.max(1))
        .bind(c.idle_cv)
        .bind(c.loaded_cv)
        .bind(json(&c.env, "{}").to_string())
        .bind(ts(&c.created_at)))
    }

    /// A device's contention profiles, over all models, by (processor, model, scenario).
    pub fn contention(&self, device_id: &str) -> Result<Vec<ContentionRow>> {
        self.fetch_all(
            "reading contention profiles",
            sqlx::query_as("SELECT * FROM contention WHERE device_id = ? ORDER BY processor_id, model_id, scenario").bind(device_id),
        )
    }

    // ---- cost models, plans, runs ----

    /// The version a new fit on this device should use: one more than the newest stored.
    pub fn next_cost_model_version(&self, device_id: &str) -> Result<i64> {
        Ok(self.latest_cost_model_version(device_id)?.unwrap_or(0) + 1)
    }

    /// The newest fit's version on this device, if any.
    pub fn latest_cost_model_version(&self, device_id: &str) -> Result<Option<i64>> {
        let mut conn = self.conn();
        self.block_on(
            sqlx::query_scalar::<_, Option<i64>>("SELECT max(version) FROM cost_models WHERE device_id = ?")
                .bind(device_id)
                .fetch_one(&mut *conn),
        )
        .map_err(|e| self.sql_error("reading the cost model versions", e))
    }

    /// Stores fitted cost models in one transaction, replacing those with the same (device, processor,
    /// op kind, version).
    pub fn insert_cost_models(&self, rows: &[CostModelRow]) -> Result<()> {
        write_all!(self, "storing cost models", rows, |c: &CostModelRow| sqlx::query(
            "INSERT INTO cost_models (device_id, processor_id, op_kind, version, params, samples, mape, \
             within_10pct, fitted_at, fallback_of) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) \
             ON CONFLICT (device_id, processor_id, op_kind, version) DO UPDATE SET params = excluded.params, \
             samples = excluded.samples, mape = excluded.mape, within_10pct = excluded.within_10pct, \
             fitted_at = excluded.fitted_at, fallback_of = excluded.fallback_of"
        )
        .bind(c.device_id.clone())
        .bind(c.processor_id.clone())
        .bind(c.op_kind.clone())
        .bind(c.version)
        .bind(json(&c.params, "{}").to_string())
        .bind(c.samples)
        .bind(c.mape)
        .bind(c.within_10pct)
        .bind(ts(&c.fitted_at))
        .bind(c.fallback_of.clone()))?;
        Ok(())
    }

    /// The cost models of one fit on this device, by (processor, op kind).
    pub fn cost_models(&self, device_id: &str, version: i64) -> Result<Vec<CostModelRow>> {
        self.fetch_all(
            "reading cost models",
            sqlx::query_as("SELECT * FROM cost_models WHERE device_id = ? AND version = ? ORDER BY processor_id, op_kind")
                .bind(device_id)
                .bind(version),
        )
    }

    /// Stores a plan; returns its id (`p.id` is ignored).
    pub fn insert_plan(&self, p: &PlanRow) -> Result<i64> {
        insert_returning_id!(
            self,
            "storing the plan",
            sqlx::query_scalar(
                "INSERT INTO plans (model_id, device_id, cost_model_version, objective, plan, predicted_ms, created_at) \
                 VALUES (?, ?, ?, ?, ?, ?, ?) RETURNING id"
            )
            .bind(p.model_id)
            .bind(&p.device_id)
            .bind(p.cost_model_version)
            .bind(if p.objective.is_empty() { "latency" } else { p.objective.as_str() })
            .bind(json(&p.plan, "{}"))
            .bind(p.predicted_ms)
            .bind(ts(&p.created_at))
        )
    }

    /// The plan with this id.
    pub fn plan(&self, id: i64) -> Result<Option<PlanRow>> {
        self.fetch_optional("reading a plan", sqlx::query_as("SELECT * FROM plans WHERE id = ?").bind(id))
    }

    /// A model's plans on a device, newest first.
    pub fn plans(&self, model_id: i64, device_id: &str) -> Result<Vec<PlanRow>> {
        self.fetch_all(
            "reading plans",
            sqlx::query_as("SELECT * FROM plans WHERE model_id = ? AND device_id = ? ORDER BY id DESC")
                .bind(model_id)
                .bind(device_id),
        )
    }

    /// Stores a run of a plan; returns its id (`r.id` is ignored).
    pub fn insert_run(&self, r: &RunRow) -> Result<i64> {
        insert_returning_id!(
            self,
            "storing the run",
            sqlx::query_scalar(
                "INSERT INTO runs (plan_id, device_id, started_at, verified, max_abs_diff, max_rel_diff, median_ms, \
                 p90_ms, predicted_ms, prediction_error, baselines, details) \
                 VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id"
            )
            .bind(r.plan_id)
            .bind(&r.device_id)
            .bind(ts(&r.started_at))
            .bind(r.verified)
            .bind(r.max_abs_diff)
            .bind(r.max_rel_diff)
            .bind(r.median_ms)
            .bind(r.p90_ms)
            .bind(r.predicted_ms)
            .bind(r.prediction_error)
            .bind(json(&r.baselines, "[]"))
            .bind(json(&r.details, "{}"))
        )
    }

    /// A plan's runs, oldest first.
    pub fn runs(&self, plan_id: i64) -> Result<Vec<RunRow>> {
        self.fetch_all("reading runs", sqlx::query_as("SELECT * FROM runs WHERE plan_id = ? ORDER BY id").bind(plan_id))
    }
}
