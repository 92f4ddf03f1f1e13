//! `tandem query`: any SQL over the results database, which is opened read-only.

use std::path::Path;

use anyhow::Result;
use polars::prelude::{CsvWriter, SerWriter};
use serde::ser::{SerializeMap, Serializer};
use serde::Serialize;
use tandem_store::{Store, Value};

use crate::cli::{QueryArgs, QueryFormat};

/// The JSON printed by `tandem query --format json` (or `--json`): the column names in order, and one
/// object per row mapping each column to its value (`null`, a number, a string; blobs as hex digits).
///
/// ```json
/// {"columns": ["id", "kind"], "rows": [{"id": "cpu:0", "kind": "cpu"}]}
/// ```
#[derive(Serialize)]
pub struct QueryReport<'a> {
    /// Column names, in the query's order (a repeated name gets a suffix: `a`, `a_2`).
    pub columns: &'a [String],
    /// The rows.
    pub rows: Vec<RowObject<'a>>,
}

/// One row as a JSON object whose keys keep the columns' order.
pub struct RowObject<'a> {
    columns: &'a [String],
    values: &'a [Value],
}

impl Serialize for RowObject<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> std::result::Result<S::Ok, S::Error> {
        let mut map = s.serialize_map(Some(self.columns.len()))?;
        for (c, v) in self.columns.iter().zip(self.values) {
            map.serialize_entry(c, v)?;
        }
        map.end()
    }
}

/// Shows every row and column, and longer strings than polars' default, unless the user set these.
fn configure_table_format() {
    for (key, value) in [("POLARS_FMT_MAX_ROWS", "-1"), ("POLARS_FMT_MAX_COLS", "-1"), ("POLARS_FMT_STR_LEN", "80")] {
        if std::env::var_os(key).is_none() {
            std::env::set_var(key, value);
        }
    }
}

/// Runs `tandem query`.
pub fn run(args: &QueryArgs, db: &Path, json: bool) -> Result<()> {
    let format = if json { QueryFormat::Json } else { args.format };
    if format == QueryFormat::Table {
        // Before the store starts its threads: the environment is process-wide.
        configure_table_format();
    }
    let store = Store::open_read_only(db)?;
    let (columns, rows) = store.query_rows(&args.sql)?;
    drop(store);
    let columns = tandem_store::unique_names(&columns);
    match format {
        QueryFormat::Json => {
            let rows = rows.iter().map(|r| RowObject { columns: &columns, values: r }).collect();
            super::print_json(&QueryReport { columns: &columns, rows })
        }
        QueryFormat::Csv => {
            let mut df = tandem_store::to_frame(&columns, &rows)?;
            let mut buf = Vec::new();
            CsvWriter::new(&mut buf).include_header(true).finish(&mut df)?;
            crate::out(&String::from_utf8_lossy(&buf))?;
            Ok(())
        }
        QueryFormat::Table => {
            let df = tandem_store::to_frame(&columns, &rows)?;
            crate::out(&format!("{df}\n"))?;
            Ok(())
        }
    }
}
