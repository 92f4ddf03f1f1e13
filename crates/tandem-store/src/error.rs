//! The one error type of tandem-store.

use std::path::PathBuf;

/// Everything that can go wrong with the results database.
///
/// Messages are written for the person at the terminal: each names the database and says what to do
/// next. They carry SQLite's own words as text rather than as a source error, so that the binary's
/// `error: ...` line reads once, without repetition.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A read-only open found no file.
    #[error("no database at {path}: run `tandem profile MODEL` first, or pass --db PATH to an existing one")]
    Missing {
        /// The path given.
        path: PathBuf,
    },
    /// The file exists but is not SQLite, is damaged or truncated, or belongs to another program.
    /// The file was not modified.
    #[error("{path} is not a tandem database ({reason}); move it away or pass --db PATH")]
    NotADatabase {
        /// The path given.
        path: PathBuf,
        /// What is wrong with it.
        reason: String,
    },
    /// The database has schema migrations this binary does not know: a newer tandem wrote it.
    #[error(
        "{path} was written by a newer tandem (schema version {found}, this tandem knows up to {known}); \
         upgrade tandem, or pass --db PATH to use another database"
    )]
    TooNew {
        /// The path given.
        path: PathBuf,
        /// The newest migration applied to the database.
        found: i64,
        /// The newest migration this binary embeds.
        known: i64,
    },
    /// Applying the schema migrations failed.
    #[error("cannot update the schema of {path}: {message}")]
    Migrate {
        /// The path given.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// The file or its folder cannot be created or opened (permissions, a folder in the way, ...).
    #[error("cannot open the database {path}: {message}")]
    Open {
        /// The path given.
        path: PathBuf,
        /// What the OS or SQLite said.
        message: String,
    },
    /// Another process kept the database locked for longer than the busy timeout.
    #[error("the database {path} is busy: another process kept it locked for more than 10 s; try again when it has finished")]
    Busy {
        /// The path given.
        path: PathBuf,
    },
    /// A query tried to change a database opened read-only. Nothing was changed.
    #[error("query is read-only: {message} (`tandem query` never changes the database; use sqlite3 for that)")]
    ReadOnly {
        /// What was refused.
        message: String,
    },
    /// A query failed (syntax error, unknown table or column, ...).
    #[error("query failed: {message}")]
    Query {
        /// SQLite's message.
        message: String,
    },
    /// A typed read or write failed.
    #[error("database error in {path} while {action}: {message}")]
    Sql {
        /// The path given.
        path: PathBuf,
        /// What tandem was doing, e.g. "storing measurements".
        action: String,
        /// SQLite's message.
        message: String,
    },
    /// The query result cannot be turned into a polars DataFrame.
    #[error("cannot build a table from the query result: {message}")]
    Frame {
        /// What polars said.
        message: String,
    },
    /// `tandem import` refused a file (not a tandem database, missing, the database itself).
    /// Nothing was imported.
    #[error("cannot import {path}: {message}")]
    Import {
        /// The file given.
        path: PathBuf,
        /// Why not.
        message: String,
    },
    /// The small async runtime that drives sqlx could not start.
    #[error("cannot start the database runtime: {0}")]
    Runtime(String),
}

/// `Result` with [`StoreError`].
pub type Result<T, E = StoreError> = std::result::Result<T, E>;

/// SQLite's primary result codes that tandem tells apart.
pub(crate) mod code {
    pub const BUSY: i64 = 5;
    pub const LOCKED: i64 = 6;
    pub const READONLY: i64 = 8;
    pub const CORRUPT: i64 = 11;
    pub const NOTADB: i64 = 26;
}

/// The primary SQLite result code of a sqlx error, when it came from SQLite.
pub(crate) fn sqlite_code(e: &sqlx::Error) -> Option<i64> {
    match e {
        sqlx::Error::Database(d) => d.code().and_then(|c| c.parse::<i64>().ok()).map(|c| c & 0xff),
        _ => None,
    }
}

/// SQLite's own words for an error, without sqlx's "error returned from database: (code: N)" wrapping.
pub(crate) fn message(e: &sqlx::Error) -> String {
    match e {
        sqlx::Error::Database(d) => d.message().to_string(),
        sqlx::Error::ColumnDecode { index, source } => format!("column {index}: {source}"),
        other => other.to_string(),
    }
}

/// Whether the error means "someone else holds the lock": worth waiting and trying again.
pub(crate) fn is_busy(e: &sqlx::Error) -> bool {
    matches!(sqlite_code(e), Some(code::BUSY) | Some(code::LOCKED))
}
