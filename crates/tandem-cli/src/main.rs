//! The `tandem` binary: parses arguments, dispatches to a command, turns errors into one `error:` line.
use std::process::ExitCode;

fn main() -> ExitCode {
    tandem_cli::main()
}
