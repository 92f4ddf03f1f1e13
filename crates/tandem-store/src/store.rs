//! [`Store`]: opening the database, migrations, and generic (read-only) queries.

use std::future::Future;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::{Duration, Instant};

use polars::prelude::DataFrame;
use sqlx::migrate::{MigrateError, Migrator};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteSynchronous};
use sqlx::{Column, ConnectOptions, Connection, Executor, Row, Statement, TypeInfo};

use crate::check::{self, FileState};
use crate::error::{code, is_busy, message, sqlite_code, Result, StoreError};
use crate::value::Value;

/// The migrations in `migrations/` at the workspace root, embedded at compile time.
pub(crate) static MIGRATOR: Migrator = sqlx::migrate!("../../migrations");

/// How long a statement waits for another connection's lock before giving up.
pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(10);

/// The results database.
///
/// A `Store` owns one SQLite connection and the single-threaded tokio runtime that drives it, so that
/// its API is synchronous: each method runs one short piece of async sqlx work to completion. Every
/// write is one short `BEGIN IMMEDIATE` transaction, so several processes (or several `Store`s) can
/// write the same database at once: WAL lets readers go on while one writes, and a writer waits up to
/// 10 s for another's transaction to end.
///
/// One connection rather than a pool: tandem's steps are sequential, and a pool returns connections
/// from background tasks, so it cannot promise that dropping the store has closed the file (and
/// checkpointed the WAL into it). Dropping a `Store` closes its connection before returning.
///
/// A `Store` is `Send` and `Sync` (threads sharing one take turns). Do not use it from inside another
/// async runtime: its methods block.
pub struct Store {
    pub(crate) path: PathBuf,
    read_only: bool,
    conn: Mutex<Option<SqliteConnection>>,
    rt: tokio::runtime::Runtime,
}

/// The store's connection, held for one operation.
pub(crate) struct Conn<'a>(MutexGuard<'a, Option<SqliteConnection>>);

impl Deref for Conn<'_> {
    type Target = SqliteConnection;
    fn deref(&self) -> &SqliteConnection {
        self.0.as_ref().expect("the connection is open until the store is dropped")
    }
}

impl DerefMut for Conn<'_> {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        self.0.as_mut().expect("the connection is open until the store is dropped")
    }
}

impl std::fmt::Debug for Store {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Store").field("path", &self.path).field("read_only", &self.read_only).finish()
    }
}

fn runtime() -> Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_current_thread().enable_all().build().map_err(|e| StoreError::Runtime(e.to_string()))
}

fn known_versions() -> Vec<i64> {
    MIGRATOR.iter().map(|m| m.version).collect()
}

pub(crate) fn too_new(path: &Path, applied: &[i64]) -> Option<StoreError> {
    let known = known_versions();
    let newest_known = known.iter().copied().max().unwrap_or(0);
    applied.iter().find(|v| !known.contains(v)).map(|_| StoreError::TooNew {
        path: path.to_path_buf(),
        found: applied.iter().copied().max().unwrap_or(0),
        known: newest_known,
    })
}

/// Options shared by every connection: the busy timeout, foreign keys, and no statement logging (a
/// statement that waits for a lock would otherwise be logged as slow on stderr).
fn base_options(path: &Path) -> SqliteConnectOptions {
    SqliteConnectOptions::new()
        .filename(path)
        .busy_timeout(BUSY_TIMEOUT)
        .foreign_keys(true)
        .disable_statement_logging()
}

impl Store {
    /// Opens the database at `path` for reading and writing, creating it (and its folder) when missing
    /// and bringing its schema up to date.
    ///
    /// A file that is not a SQLite database, is damaged or truncated, or is another program's database
    /// is refused with [`StoreError::NotADatabase`] and left byte for byte as it was. A database written
    /// by a newer tandem is refused with [`StoreError::TooNew`]: migrations only move forward.
    pub fn open(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let rt = runtime()?;
        match rt.block_on(check::inspect(&path))? {
            FileState::Missing => {
                if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
                    std::fs::create_dir_all(parent).map_err(|e| StoreError::Open {
                        path: path.clone(),
                        message: format!("cannot create the folder {}: {e}", parent.display()),
                    })?;
                }
            }
            FileState::Empty => {}
            FileState::Foreign => {
                return Err(StoreError::NotADatabase {
                    path,
                    reason: "it is a SQLite database with tables of another program".into(),
                })
            }
            FileState::Tandem { applied } => {
                if let Some(e) = too_new(&path, &applied) {
                    return Err(e);
                }
            }
        }
        let opts = base_options(&path).synchronous(SqliteSynchronous::Normal).create_if_missing(true);
        let conn = rt.block_on(setup(&path, opts))?;
        tracing::debug!(path = %path.display(), "opened the results database");
        Ok(Store { path, read_only: false, conn: Mutex::new(Some(conn)), rt })
    }

    /// Opens an existing database for reading only (`tandem query`, `tandem export`).
    ///
    /// SQLite itself refuses every write on these connections (`mode=ro` and `PRAGMA query_only`), and
    /// [`Store::query_rows`] refuses statements that would write with [`StoreError::ReadOnly`]. A missing
    /// file is [`StoreError::Missing`]; migrations are not applied. Any SQLite database can be read this
    /// way, not only tandem's.
    pub fn open_read_only(path: impl AsRef<Path>) -> Result<Store> {
        let path = path.as_ref().to_path_buf();
        let rt = runtime()?;
        match rt.block_on(check::inspect(&path))? {
            FileState::Missing => return Err(StoreError::Missing { path }),
            FileState::Tandem { applied } => {
                if let Some(e) = too_new(&path, &applied) {
                    tracing::warn!("{e}; reading it anyway");
                }
            }
            FileState::Empty | FileState::Foreign => {}
        }
        let opts = base_options(&path).read_only(true).pragma("query_only", "ON");
        let conn = rt.block_on(SqliteConnection::connect_with(&opts)).map_err(|e| check::open_error(&path, &e))?;
        Ok(Store { path, read_only: true, conn: Mutex::new(Some(conn)), rt })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Whether this store was opened with [`Store::open_read_only`].
    pub fn is_read_only(&self) -> bool {
        self.read_only
    }

    /// Runs a future on the store's runtime to completion.
    pub(crate) fn block_on<F: Future>(&self, f: F) -> F::Output {
        self.rt.block_on(f)
    }

    /// The connection, for one operation (a panic in another thread's operation does not lock it up:
    /// SQLite rolls an unfinished transaction back).
    pub(crate) fn conn(&self) -> Conn<'_> {
        Conn(self.conn.lock().unwrap_or_else(|poisoned| poisoned.into_inner()))
    }

    /// Turns a sqlx error from a typed read or write into a [`StoreError`] naming what was being done.
    pub(crate) fn sql_error(&self, action: &str, e: sqlx::Error) -> StoreError {
        match sqlite_code(&e) {
            Some(code::BUSY) | Some(code::LOCKED) => StoreError::Busy { path: self.path.clone() },
            Some(code::NOTADB) | Some(code::CORRUPT) => check::open_error(&self.path, &e),
            Some(code::READONLY) => StoreError::ReadOnly { message: format!("{action}: {}", message(&e)) },
            _ => StoreError::Sql { path: self.path.clone(), action: action.to_string(), message: message(&e) },
        }
    }

    /// The newest schema migration applied to the database (0 for an empty one).
    pub fn schema_version(&self) -> Result<i64> {
        let mut conn = self.conn();
        let v: Option<i64> = self
            .block_on(sqlx::query_scalar("SELECT max(version) FROM _sqlx_migrations WHERE success").fetch_one(&mut *conn))
            .or_else(|e| if message(&e).contains("no such table") { Ok(None) } else { Err(e) })
            .map_err(|e| self.sql_error("reading the schema version", e))?;
        Ok(v.unwrap_or(0))
    }

    /// The newest schema migration this binary knows.
    pub fn latest_schema_version() -> i64 {
        known_versions().into_iter().max().unwrap_or(0)
    }

    /// The database's tables, by name, without SQLite's and sqlx's own.
    pub fn tables(&self) -> Result<Vec<String>> {
        let mut conn = self.conn();
        self.block_on(
            sqlx::query_scalar(
                "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' \
                 AND name <> '_sqlx_migrations' ORDER BY name",
            )
            .fetch_all(&mut *conn),
        )
        .map_err(|e| self.sql_error("listing the tables", e))
    }

    /// The number of rows of `table`.
    pub fn row_count(&self, table: &str) -> Result<i64> {
        let sql = format!("SELECT count(*) FROM {}", quote_ident(table));
        let mut conn = self.conn();
        self.block_on(sqlx::query_scalar(&sql).persistent(false).fetch_one(&mut *conn))
            .map_err(|e| self.sql_error(&format!("counting the rows of {table}"), e))
    }

    /// Runs any SQL and returns the column names and the rows, each cell typed as SQLite stored it.
    ///
    /// On a store opened read-only, statements that write are refused with [`StoreError::ReadOnly`]
    /// (before they run where the statement's first word says so, and by SQLite otherwise); the
    /// database is never changed.
    pub fn query_rows(&self, sql: &str) -> Result<(Vec<String>, Vec<Vec<Value>>)> {
        let (columns, rows) = self.query_typed(sql)?;
        Ok((columns.into_iter().map(|c| c.name).collect(), rows))
    }

    /// Runs a query and returns its result as a polars DataFrame (see [`crate::to_frame`] for how SQLite
    /// values become columns; a column without values takes its type from the table's declaration).
    pub fn frame(&self, sql: &str) -> Result<DataFrame> {
        let (columns, rows) = self.query_typed(sql)?;
        let names: Vec<String> = columns.iter().map(|c| c.name.clone()).collect();
        let declared: Vec<String> = columns.into_iter().map(|c| c.declared).collect();
        crate::frame::build(&names, Some(&declared), &rows)
    }

    pub(crate) fn query_typed(&self, sql: &str) -> Result<(Vec<ColumnInfo>, Vec<Vec<Value>>)> {
        if sql.trim().trim_end_matches(';').trim().is_empty() {
            return Err(StoreError::Query { message: "the query is empty".into() });
        }
        if self.read_only {
            refuse_writes(sql)?;
        }
        let started = Instant::now();
        let mut conn = self.conn();
        let result = self.block_on(async {
            let stmt = (&mut *conn).prepare(sql).await?;
            let columns: Vec<ColumnInfo> = stmt
                .columns()
                .iter()
                .map(|c| ColumnInfo { name: c.name().to_string(), declared: c.type_info().name().to_string() })
                .collect();
            let rows = sqlx::query(sql).persistent(false).fetch_all(&mut *conn).await?;
            let mut out = Vec::with_capacity(rows.len());
            for row in &rows {
                let cells = (0..row.len()).map(|i| Value::read(row, i)).collect::<Result<Vec<Value>, sqlx::Error>>()?;
                out.push(cells);
            }
            Ok::<_, sqlx::Error>((columns, out))
        });
        drop(conn);
        let (mut columns, rows) = result.map_err(|e| match sqlite_code(&e) {
            Some(code::READONLY) => StoreError::ReadOnly { message: message(&e) },
            Some(code::BUSY) | Some(code::LOCKED) => StoreError::Busy { path: self.path.clone() },
            Some(code::NOTADB) | Some(code::CORRUPT) => check::open_error(&self.path, &e),
            _ => StoreError::Query { message: message(&e) },
        })?;
        // Several statements, or one whose shape the prepared statement did not tell: trust the rows.
        if let Some(first) = rows.first() {
            if first.len() != columns.len() {
                columns = (0..first.len()).map(|i| ColumnInfo { name: format!("column{i}"), declared: String::new() }).collect();
            }
        }
        tracing::debug!(rows = rows.len(), elapsed_ms = started.elapsed().as_millis() as u64, "query");
        Ok((columns, rows))
    }
}

impl Drop for Store {
    fn drop(&mut self) {
        // Close the connection while the runtime still exists, and wait for it: the last connection to
        // a database checkpoints the WAL into the file and removes it.
        let conn = self.conn.get_mut().unwrap_or_else(|poisoned| poisoned.into_inner()).take();
        if let Some(conn) = conn {
            if let Err(e) = self.rt.block_on(conn.close()) {
                tracing::warn!(path = %self.path.display(), "closing the database: {e}");
            }
        }
    }
}

/// A result column: its name and the type its table declares ("NULL" for an expression).
#[derive(Debug, Clone)]
pub(crate) struct ColumnInfo {
    pub(crate) name: String,
    pub(crate) declared: String,
}

/// `"name"`, with inner quotes doubled.
pub(crate) fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

/// Statements whose first keyword says they write. SQLite's read-only mode stops all writes anyway;
/// this list gives the clearer message, and stops `VACUUM INTO` and `ATTACH`, which could create files
/// elsewhere.
const WRITING: &[&str] =
    &["INSERT", "UPDATE", "DELETE", "REPLACE", "CREATE", "DROP", "ALTER", "ATTACH", "DETACH", "VACUUM", "REINDEX", "ANALYZE"];

fn refuse_writes(sql: &str) -> Result<()> {
    let keyword = first_keyword(sql).to_ascii_uppercase();
    if WRITING.contains(&keyword.as_str()) {
        return Err(StoreError::ReadOnly { message: format!("{keyword} statements change the database") });
    }
    if keyword == "PRAGMA" && sql.contains('=') {
        return Err(StoreError::ReadOnly { message: "PRAGMA assignments change the database".into() });
    }
    Ok(())
}

/// The first word of a statement, after blanks, comments and opening parentheses.
fn first_keyword(sql: &str) -> &str {
    let mut s = sql;
    loop {
        let t = s.trim_start_matches(|c: char| c.is_whitespace() || c == '(');
        if let Some(rest) = t.strip_prefix("--") {
            s = rest.split_once('\n').map(|(_, r)| r).unwrap_or("");
        } else if let Some(rest) = t.strip_prefix("/*") {
            s = rest.split_once("*/").map(|(_, r)| r).unwrap_or("");
        } else {
            s = t;
            break;
        }
    }
    let end = s.find(|c: char| !c.is_ascii_alphabetic()).unwrap_or(s.len());
    &s[..end]
}

/// Connects and sets the database up: WAL journal mode, then the migrations, applied under one
/// `BEGIN IMMEDIATE` so that two processes creating the same database at once do not both apply them.
async fn setup(path: &Path, opts: SqliteConnectOptions) -> Result<SqliteConnection> {
    let mut conn = SqliteConnection::connect_with(&opts).await.map_err(|e| check::open_error(path, &e))?;
    match setup_on(path, &mut conn).await {
        Ok(()) => Ok(conn),
        Err(e) => {
            let _ = conn.close().await;
            Err(e)
        }
    }
}

async fn setup_on(path: &Path, conn: &mut SqliteConnection) -> Result<()> {
    let deadline = Instant::now() + BUSY_TIMEOUT;
    let pause = || tokio::time::sleep(Duration::from_millis(20));
    // Switching into WAL takes an exclusive lock that the busy timeout does not wait for: retry.
    loop {
        match sqlx::query_scalar::<_, String>("PRAGMA journal_mode = WAL").fetch_one(&mut *conn).await {
            Ok(mode) => {
                if !mode.eq_ignore_ascii_case("wal") {
                    tracing::warn!(path = %path.display(), mode, "the database is not in WAL mode");
                }
                break;
            }
            Err(e) if is_busy(&e) && Instant::now() < deadline => pause().await,
            Err(e) => return Err(check::open_error(path, &e)),
        }
    }
    loop {
        let applied = applied_versions(conn).await.map_err(|e| check::open_error(path, &e))?;
        if let Some(e) = too_new(path, &applied) {
            return Err(e);
        }
        let known = known_versions();
        if known.iter().all(|v| applied.contains(v)) {
            return Ok(());
        }
        match migrate_locked(conn).await {
            Ok(()) => {
                tracing::info!(path = %path.display(), version = Store::latest_schema_version(), "database schema migrated");
                return Ok(());
            }
            Err(MigrateError::Execute(e)) if is_busy(&e) && Instant::now() < deadline => pause().await,
            Err(MigrateError::VersionMissing(_)) => {
                let applied = applied_versions(conn).await.unwrap_or_default();
                return Err(too_new(path, &applied).unwrap_or_else(|| StoreError::Migrate {
                    path: path.to_path_buf(),
                    message: "the database has migrations this tandem does not know".into(),
                }));
            }
            Err(MigrateError::VersionMismatch(v)) => {
                return Err(StoreError::Migrate {
                    path: path.to_path_buf(),
                    message: format!(
                        "migration {v} applied to this database differs from the one this tandem carries \
                         (migrations must never be edited once released); use a database made by this tandem"
                    ),
                })
            }
            Err(MigrateError::Execute(e)) if matches!(sqlite_code(&e), Some(code::BUSY) | Some(code::LOCKED)) => {
                return Err(StoreError::Busy { path: path.to_path_buf() })
            }
            Err(e) => return Err(StoreError::Migrate { path: path.to_path_buf(), message: e.to_string() }),
        }
    }
}

async fn applied_versions(conn: &mut SqliteConnection) -> Result<Vec<i64>, sqlx::Error> {
    let exists: Option<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name = '_sqlx_migrations'")
            .fetch_optional(&mut *conn)
            .await?;
    if exists.is_none() {
        return Ok(vec![]);
    }
    sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version").fetch_all(&mut *conn).await
}

async fn migrate_locked(conn: &mut SqliteConnection) -> Result<(), MigrateError> {
    // The write lock is taken first; sqlx's migrator then runs inside it (its own transactions become
    // savepoints), and a second process waits here, then finds nothing left to do.
    let mut tx = conn.begin_with("BEGIN IMMEDIATE").await?;
    MIGRATOR.run(&mut *tx).await?;
    tx.commit().await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn first_keyword_skips_comments_and_parentheses() {
        assert_eq!(first_keyword("  select 1"), "select");
        assert_eq!(first_keyword("-- note\n  /* more */ (SELECT 1)"), "SELECT");
        assert_eq!(first_keyword("/* a */ delete from x"), "delete");
        assert_eq!(first_keyword(""), "");
    }

    #[test]
    fn writes_are_refused_by_keyword() {
        for sql in ["insert into t values (1)", " DROP TABLE t", "pragma user_version = 3", "vacuum into '/tmp/x.db'", "attach 'x.db' as x"] {
            assert!(matches!(refuse_writes(sql), Err(StoreError::ReadOnly { .. })), "{sql}");
        }
        for sql in ["select 1", "with x as (select 1) select * from x", "pragma table_info(devices)", "explain select 1"] {
            assert!(refuse_writes(sql).is_ok(), "{sql}");
        }
    }
}
