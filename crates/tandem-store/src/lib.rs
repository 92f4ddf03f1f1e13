//! tandem-store: the results database.
//!
//! Every step of tandem talks to the next through one SQLite file (by default
//! `profiles-db/tandem.db`): `profile` writes devices, processors, models, ops and measurements; `fit`
//! reads measurements and writes cost models; `tune` writes plans; `run` writes runs. It is plain
//! SQLite, so sqlite3, pandas, polars and DuckDB read it as well, and a profile taken on a phone can be
//! copied to a workstation and tuned there.
//!
//! The main types:
//!
//! - [`Store`] is an open database. [`Store::open`] creates the file when missing and applies the
//!   schema migrations (the numbered `.sql` files of the workspace's `migrations/` folder, embedded at
//!   compile time); [`Store::open_read_only`] is for `tandem query` and `tandem export`, where SQLite
//!   itself refuses every write. The API is synchronous: the store owns a small single-threaded tokio
//!   runtime and blocks on sqlx's async work, so the rest of tandem stays plain sync code.
//! - The row types ([`DeviceRow`], [`ProcessorRow`], [`ModelRow`], [`OpRow`], [`SessionRow`],
//!   [`MeasurementRow`], [`UnsupportedRow`], [`TransferRow`], [`EnvSnapshotRow`], [`ContentionRow`], [`CostModelRow`],
//!   [`PlanRow`], [`RunRow`]) are plain serde structs, one per table, taken by the typed writes
//!   (`upsert_*`, `insert_*`) and returned by the typed reads. This crate depends on no other tandem
//!   crate: the stages convert their own types to rows.
//! - [`Value`] is one cell of a generic query ([`Store::query_rows`]), and [`Store::frame`] /
//!   [`to_frame`] turn results into polars DataFrames for analysis and export.
//! - [`Store::import`] merges another tandem database into this one (a profile taken on a phone,
//!   tuned on a workstation), remapping ids, in one transaction; importing twice adds nothing new.
//! - [`StoreError`] is the one error type; each message says what to do next.
//!
//! Reliability, as the design asks: writes are short `BEGIN IMMEDIATE` transactions in WAL mode with a
//! 10 s busy timeout, so two processes writing one database at once both succeed and a kill at any
//! moment leaves a valid database; measurements have a unique key, so a resumed profile never stores a
//! row twice (and `--force` replaces rows in place); a file that is not a tandem database, or is damaged
//! or truncated, is refused before SQLite may write to it; a database from a newer tandem is refused
//! rather than migrated backwards.
//!
//! ```no_run
//! use tandem_store::{Store, DeviceRow};
//! let store = Store::open("profiles-db/tandem.db")?;
//! store.upsert_device(&DeviceRow { id: "host-x86-2c".into(), hostname: "host".into(), ..Default::default() })?;
//! let (columns, rows) = store.query_rows("SELECT id, hostname FROM devices")?;
//! # Ok::<(), tandem_store::StoreError>(())
//! ```
#![deny(missing_docs)]

mod check;
mod error;
mod frame;
mod import;
mod rows;
mod store;
mod tables;
mod time;
mod value;

pub use error::{Result, StoreError};
pub use frame::{to_frame, unique_names};
pub use import::ImportReport;
pub use rows::{
    ContentionRow, Context, CostModelRow, DeviceRow, EnvSnapshotRow, MeasurementRow, ModelRow, OpRow, PlanRow, ProcessorRow, RunRow,
    SessionRow, SessionStatus, Target, TransferRow, UnsupportedRow,
};
pub use store::Store;
pub use time::now;
pub use value::Value;
