//! Helpers shared by the integration tests: run the binary, read its output, check errors.
#![allow(dead_code)]

use std::path::Path;
use std::process::{Command, Output};

/// Runs `tandem` with `args`.
pub fn tandem(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_tandem")).args(args).output().expect("tandem runs")
}

/// Stdout as text.
pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).into_owned()
}

/// Stderr as text.
pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).into_owned()
}

/// Asserts a clean failure: non-zero exit, exactly one `error:` line naming `needle`, no panic.
pub fn assert_error(o: &Output, needle: &str) {
    let err = stderr(o);
    assert!(!o.status.success(), "expected failure, got success; stderr: {err}");
    assert_ne!(o.status.code(), Some(101), "panicked: {err}");
    assert!(!err.contains("panicked") && !err.contains("RUST_BACKTRACE"), "panic output: {err}");
    let lines: Vec<&str> = err.lines().collect();
    assert_eq!(lines.len(), 1, "expected one line, got: {err}");
    assert!(lines[0].starts_with("error: "), "not an error line: {err}");
    assert!(lines[0].contains(needle), "'{needle}' not in: {err}");
}

/// Runs a read-only query and returns its rows.
pub fn query(db: &Path, sql: &str) -> Vec<serde_json::Value> {
    let o = tandem(&["query", sql, "--db", db.to_str().unwrap(), "--json"]);
    assert!(o.status.success(), "query failed: {}", stderr(&o));
    let v: serde_json::Value = serde_json::from_slice(&o.stdout).unwrap();
    v["rows"].as_array().unwrap().clone()
}

/// The single value of a one-row, one-column query.
pub fn count(db: &Path, sql: &str) -> i64 {
    query(db, sql)[0].as_object().unwrap().values().next().unwrap().as_i64().unwrap()
}
