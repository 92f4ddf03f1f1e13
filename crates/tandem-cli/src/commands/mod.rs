//! One module per subcommand.

pub mod auto;
pub mod devices;
pub mod experiment;
pub mod export;
pub mod fit;
pub mod import;
pub mod inspect;
pub mod profile;
pub mod query;
pub mod run;
pub mod tune;
pub mod zoo;

use anyhow::Result;
use tandem_graph::{Graph, InputShape};

use crate::cli::{Cli, Command, ModelArgs};

/// Runs the parsed command.
pub fn dispatch(cli: &Cli) -> Result<()> {
    match &cli.command {
        Command::Auto(args) => auto::run(args, &cli.db, cli.json),
        Command::Inspect(args) => inspect::run(args, cli.json),
        Command::Zoo(args) => zoo::run(args, cli.json),
        Command::Query(args) => query::run(args, &cli.db, cli.json),
        Command::Export(args) => export::run(args, &cli.db, cli.json),
        Command::Devices(args) => devices::run(args, cli.json),
        Command::Profile(args) => profile::run(args, &cli.db, cli.json),
        Command::Fit(args) => fit::run(args, &cli.db, cli.json),
        Command::Run(args) => run::run(args, &cli.db, cli.json),
        Command::Tune(args) => tune::run(args, &cli.db, cli.json),
        Command::Import(args) => import::run(args, &cli.db, cli.json),
        Command::Experiment(args) => experiment::run(args, &cli.db, cli.json),
    }
}

/// Loads the model named on the command line: a file, or a zoo model or probe network when no such
/// file exists.
pub fn load_model(args: &ModelArgs) -> Result<Graph> {
    let shapes: Vec<InputShape> = args.shapes()?;
    let path = std::path::Path::new(&args.model);
    if !path.exists() {
        if let Some(m) = tandem_graph::zoo::find(&args.model) {
            let bytes = tandem_graph::zoo::build(m.name, 0)?;
            return Ok(Graph::load_bytes(m.name, &bytes, &shapes)?);
        }
        if let Some(p) = tandem_graph::zoo::probe::find(&args.model) {
            return Ok(Graph::load_bytes(&p.name, &tandem_graph::zoo::probe::build_probe(&p).bytes(), &shapes)?);
        }
    }
    Ok(Graph::load(path, &shapes)?)
}

/// Prints a serialisable value as one JSON object on stdout.
pub fn print_json(value: &impl serde::Serialize) -> Result<()> {
    crate::out(&format!("{}\n", serde_json::to_string_pretty(value)?))?;
    Ok(())
}
