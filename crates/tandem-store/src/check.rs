//! Looking at an existing file before SQLite is allowed to write to it.
//!
//! SQLite happily opens any file and only fails at the first read, and a read-write open may write
//! (journal mode, migrations) before anything notices that the file is someone else's or damaged. So
//! [`inspect`] reads the header itself, then opens the file strictly read-only to run a quick integrity
//! check and look at the tables. Only a file that passes is ever opened for writing.

use std::io::Read;
use std::path::Path;

use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection};
use sqlx::{ConnectOptions, Connection};

use crate::error::{code, message, sqlite_code, Result, StoreError};

/// What [`inspect`] found at a path.
#[derive(Debug)]
pub(crate) enum FileState {
    /// Nothing there.
    Missing,
    /// A zero-byte file, or a SQLite database without tables: safe to set up.
    Empty,
    /// A tandem database; the migration versions applied to it.
    Tandem {
        /// Versions, ascending.
        applied: Vec<i64>,
    },
    /// A healthy SQLite database with tables, but not tandem's.
    Foreign,
}

const MAGIC: &[u8; 16] = b"SQLite format 3\0";

fn not_a_db(path: &Path, reason: impl Into<String>) -> StoreError {
    StoreError::NotADatabase { path: path.to_path_buf(), reason: reason.into() }
}

/// Maps an error from the read-only look at a file.
pub(crate) fn open_error(path: &Path, e: &sqlx::Error) -> StoreError {
    match sqlite_code(e) {
        Some(code::NOTADB) => not_a_db(path, "file is not a database"),
        Some(code::CORRUPT) => not_a_db(path, format!("the file is damaged: {}", message(e))),
        Some(code::BUSY) | Some(code::LOCKED) => StoreError::Busy { path: path.to_path_buf() },
        _ => StoreError::Open { path: path.to_path_buf(), message: message(e) },
    }
}

/// Checks the 100-byte header: the magic string, a sane page size, and a file at least as long as the
/// header says (a truncated copy fails here, before SQLite reads a missing page). Returns whether the
/// file is in WAL mode.
fn check_header(path: &Path, len: u64) -> Result<bool> {
    let mut header = [0u8; 100];
    let mut file = std::fs::File::open(path).map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
    let n = read_up_to(&mut file, &mut header).map_err(|e| StoreError::Open { path: path.to_path_buf(), message: e.to_string() })?;
    if n < header.len() || &header[..16] != MAGIC {
        return Err(not_a_db(path, "file is not a database"));
    }
    let raw_page = u16::from_be_bytes([header[16], header[17]]) as u64;
    let page_size = if raw_page == 1 { 65536 } else { raw_page };
    if !(512..=65536).contains(&page_size) || !page_size.is_power_of_two() {
        return Err(not_a_db(path, format!("the file is damaged: page size {raw_page} in its header")));
    }
    let be32 = |at: usize| u32::from_be_bytes([header[at], header[at + 1], header[at + 2], header[at + 3]]) as u64;
    let (change_counter, pages, valid_for) = (be32(24), be32(28), be32(92));
    // The page count is trustworthy only when written by SQLite 3.7.0+ in the same transaction as the
    // change counter; in WAL mode it describes the last checkpoint, which the main file always holds.
    if pages > 0 && change_counter == valid_for && pages * page_size > len {
        return Err(not_a_db(
            path,
            format!("the file is truncated: its header says {} bytes, it has {len}", pages * page_size),
        ));
    }
    Ok(header[18] == 2 && header[19] == 2)
}

fn read_up_to(file: &mut std::fs::File, buf: &mut [u8]) -> std::io::Result<usize> {
    let mut n = 0;
    while n < buf.len() {
        match file.read(&mut buf[n..])? {
            0 => break,
            k => n += k,
        }
    }
    Ok(n)
}

/// Looks at `path` without changing it.
pub(crate) async fn inspect(path: &Path) -> Result<FileState> {
    let meta = match std::fs::metadata(path) {
        Ok(m) => m,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(FileState::Missing),
        Err(e) => return Err(StoreError::Open { path: path.to_path_buf(), message: e.to_string() }),
    };
    if meta.is_dir() {
        return Err(not_a_db(path, "it is a folder"));
    }
    if meta.len() == 0 {
        return Ok(FileState::Empty);
    }
    let wal = check_header(path, meta.len())?;

    // Reading a WAL-mode file creates its `-wal` and `-shm` companions, which a read-only connection
    // cannot remove again. When neither exists, no connection has the file open and its bytes are all
    // in the main file, so it is read as immutable: nothing is created beside a file that may turn out
    // not to be ours.
    let sibling = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        std::path::PathBuf::from(name).exists()
    };
    let immutable = wal && !sibling("-wal") && !sibling("-shm");
    let opts = SqliteConnectOptions::new()
        .filename(path)
        .read_only(true)
        .immutable(immutable)
        .busy_timeout(crate::store::BUSY_TIMEOUT)
        .disable_statement_logging();
    let mut conn = SqliteConnection::connect_with(&opts).await.map_err(|e| open_error(path, &e))?;
    let result = look(&mut conn, path).await;
    let _ = conn.close().await;
    result
}

async fn look(conn: &mut SqliteConnection, path: &Path) -> Result<FileState> {
    let started = std::time::Instant::now();
    let problems: Vec<String> =
        sqlx::query_scalar("PRAGMA quick_check(3)").fetch_all(&mut *conn).await.map_err(|e| open_error(path, &e))?;
    tracing::debug!(path = %path.display(), elapsed_ms = started.elapsed().as_millis() as u64, "quick_check");
    if problems.first().map(|p| p.as_str()) != Some("ok") {
        return Err(not_a_db(path, format!("the file is damaged: {}", problems.join("; "))));
    }
    let tables: Vec<String> =
        sqlx::query_scalar("SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'")
            .fetch_all(&mut *conn)
            .await
            .map_err(|e| open_error(path, &e))?;
    if tables.is_empty() {
        return Ok(FileState::Empty);
    }
    if !tables.iter().any(|t| t == "_sqlx_migrations") {
        return Ok(FileState::Foreign);
    }
    let applied: Vec<i64> = sqlx::query_scalar("SELECT version FROM _sqlx_migrations WHERE success ORDER BY version")
        .fetch_all(&mut *conn)
        .await
        .map_err(|e| open_error(path, &e))?;
    Ok(FileState::Tandem { applied })
}
