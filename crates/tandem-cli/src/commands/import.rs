//! `tandem import`: merge another tandem database (a profile taken on another device) into this one.

use std::path::Path;

use anyhow::Result;
use serde::Serialize;
use tandem_store::Store;

use crate::cli::ImportArgs;
use crate::table::Table;

/// The JSON printed by `tandem import --json`:
///
/// ```text
/// { "source", "devices", "added": {table: rows}, "total",
///   "renumbered": [{device, from, to}] }     // cost-model versions given new numbers here
/// ```
#[derive(Debug, Serialize)]
pub struct ImportJson {
    /// The database imported.
    pub source: String,
    /// Devices it holds.
    pub devices: Vec<String>,
    /// Rows added per table.
    pub added: serde_json::Map<String, serde_json::Value>,
    /// Rows added in all.
    pub total: u64,
    /// Cost-model versions renumbered.
    pub renumbered: Vec<Renumbered>,
}

/// A cost-model version given another number.
#[derive(Debug, Serialize)]
pub struct Renumbered {
    /// The device.
    pub device: String,
    /// Its number in the imported database.
    pub from: i64,
    /// Its number here.
    pub to: i64,
}

/// Runs `tandem import`.
pub fn run(args: &ImportArgs, db: &Path, json: bool) -> Result<()> {
    let store = Store::open(db)?;
    let report = store.import(&args.other)?;
    let out = ImportJson {
        source: report.source.display().to_string(),
        devices: report.devices.clone(),
        added: report.added.iter().map(|(t, n)| (t.clone(), serde_json::Value::from(*n))).collect(),
        total: report.total(),
        renumbered: report.renumbered.iter().map(|(device, from, to)| Renumbered { device: device.clone(), from: *from, to: *to }).collect(),
    };
    if json {
        return super::print_json(&out);
    }
    let mut s = format!("imported {} into {}: {} rows added", out.source, db.display(), out.total);
    s.push_str(if out.total == 0 { " (everything was already here)\n" } else { "\n" });
    let mut t = Table::new(&["table", "rows added"]);
    for (table, n) in &report.added {
        t.row(vec![table.clone(), n.to_string()]);
    }
    s.push_str(&t.render());
    for r in &out.renumbered {
        s.push_str(&format!("cost models of device {} version {} are version {} here (this database had another fit under that number)\n", r.device, r.from, r.to));
    }
    if let Some(d) = out.devices.first() {
        s.push_str(&format!("plan for it: tandem tune MODEL --device {d}\n"));
    }
    crate::out(&s)?;
    Ok(())
}
