//! `tandem export`: every table of the results database as CSV or Parquet files.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use polars::prelude::{CsvWriter, DataFrame, ParquetWriter, SerWriter};
use serde::Serialize;
use tandem_store::Store;

use crate::cli::{ExportArgs, ExportFormat};
use crate::table::Table;

/// The JSON printed by `tandem export --json`.
///
/// ```json
/// {"db": "profiles-db/tandem.db", "out": "results", "format": "csv",
///  "files": [{"table": "devices", "path": "results/devices.csv", "rows": 1}, ...]}
/// ```
#[derive(Serialize)]
pub struct ExportReport {
    /// The database read.
    pub db: PathBuf,
    /// The folder written.
    pub out: PathBuf,
    /// `csv` or `parquet`.
    pub format: &'static str,
    /// One file per table, in table-name order.
    pub files: Vec<ExportedFile>,
}

/// One written file.
#[derive(Serialize)]
pub struct ExportedFile {
    /// The table.
    pub table: String,
    /// The file.
    pub path: PathBuf,
    /// Rows written.
    pub rows: usize,
}

/// A file name for a table: its name, with anything unusual in a file name replaced by `_`.
fn file_stem(table: &str) -> String {
    table.chars().map(|c| if c.is_ascii_alphanumeric() || c == '_' || c == '-' { c } else { '_' }).collect()
}

/// Writes one frame next to its final path, then renames it into place: a reader never sees half a file.
fn write(df: &mut DataFrame, path: &Path, format: ExportFormat) -> Result<()> {
    let partial = path.with_extension("partial");
    let file = std::fs::File::create(&partial).with_context(|| format!("cannot write {}", partial.display()))?;
    let written = match format {
        ExportFormat::Csv => CsvWriter::new(file).include_header(true).finish(df),
        ExportFormat::Parquet => ParquetWriter::new(file).finish(df).map(|_| ()),
    };
    if let Err(e) = written {
        let _ = std::fs::remove_file(&partial);
        return Err(e).with_context(|| format!("cannot write {}", path.display()));
    }
    std::fs::rename(&partial, path).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(())
}

/// Runs `tandem export`.
pub fn run(args: &ExportArgs, db: &Path, json: bool) -> Result<()> {
    let store = Store::open_read_only(db)?;
    std::fs::create_dir_all(&args.out).with_context(|| format!("cannot create the folder {}", args.out.display()))?;
    let (ext, format_name) = match args.format {
        ExportFormat::Csv => ("csv", "csv"),
        ExportFormat::Parquet => ("parquet", "parquet"),
    };
    let mut files = Vec::new();
    for table in store.tables()? {
        let mut df = store.frame(&format!("SELECT * FROM \"{}\"", table.replace('"', "\"\"")))?;
        let path = args.out.join(format!("{}.{ext}", file_stem(&table)));
        write(&mut df, &path, args.format)?;
        tracing::debug!(table, rows = df.height(), path = %path.display(), "exported");
        files.push(ExportedFile { table, path, rows: df.height() });
    }
    let report = ExportReport { db: db.to_path_buf(), out: args.out.clone(), format: format_name, files };
    if json {
        return super::print_json(&report);
    }
    let mut t = Table::new(&["table", "rows", "file"]);
    for f in &report.files {
        t.row(vec![f.table.clone(), f.rows.to_string(), f.path.display().to_string()]);
    }
    crate::out(&t.render())?;
    let total: usize = report.files.iter().map(|f| f.rows).sum();
    crate::out(&format!("wrote {} tables ({total} rows) as {format_name} to {}\n", report.files.len(), args.out.display()))?;
    Ok(())
}
