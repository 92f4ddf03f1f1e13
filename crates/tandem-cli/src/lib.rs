//! tandem-cli: the `tandem` command line, thin over the library crates.
//!
//! [`cli`] holds the clap definitions (no logic), [`commands`] one file per subcommand. Every command
//! prints a table for people or, with `--json`, one JSON object for programs. Errors end the process with
//! a single `error: ...` line on stderr and exit code 1 (2 for a command line clap rejects).
#![deny(missing_docs)]

pub mod cli;
pub mod commands;
mod table;

/// Writes text to stdout, returning (rather than panicking on) a closed pipe.
pub(crate) fn out(text: &str) -> std::io::Result<()> {
    let mut stdout = std::io::stdout().lock();
    stdout.write_all(text.as_bytes())?;
    stdout.flush()
}

use std::io::Write;
use std::process::ExitCode;

use clap::Parser;

/// Runs the command line and returns the process exit code.
pub fn main() -> ExitCode {
    // A panic is a bug, but the user still gets one readable line rather than a backtrace.
    std::panic::set_hook(Box::new(|info| {
        let msg = info.payload().downcast_ref::<&str>().map(|s| s.to_string()).or_else(|| info.payload().downcast_ref::<String>().cloned()).unwrap_or_default();
        eprintln!("error: internal error (please report): {msg} at {}", info.location().map(|l| l.to_string()).unwrap_or_default());
    }));
    let args = cli::Cli::parse();
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::try_from_env("TANDEM_LOG").unwrap_or_else(|_| "warn".into()))
        .with_writer(std::io::stderr)
        .init();
    match commands::dispatch(&args) {
        Ok(()) => ExitCode::SUCCESS,
        // `tandem inspect big.onnx | head`: the reader left, which is not an error.
        Err(e) if e.downcast_ref::<std::io::Error>().map(|io| io.kind() == std::io::ErrorKind::BrokenPipe).unwrap_or(false) => ExitCode::SUCCESS,
        Err(e) => {
            let msg: Vec<String> = e.chain().map(|c| c.to_string()).collect();
            let mut line = msg.join(": ");
            line = line.replace('\n', " ");
            let _ = writeln!(std::io::stderr(), "error: {line}");
            ExitCode::FAILURE
        }
    }
}
