//! Command-line definitions (clap derive). No logic lives here.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand};
use tandem_graph::InputShape;

/// tandem: measure, plan and run DL inference across the processors of one device.
#[derive(Debug, Parser)]
#[command(name = "tandem", version, about, long_about = None)]
pub struct Cli {
    /// Print one JSON object on stdout instead of tables.
    #[arg(long, global = true)]
    pub json: bool,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Show a model's operators as tandem sees them: kinds, shapes, cost, split axes.
    #[command(after_help = "Examples:\n  tandem inspect model.onnx\n  tandem inspect resnet            # a built-in zoo model\n  tandem inspect model.onnx --input-shape input=1,3,224,224 --json")]
    Inspect(InspectArgs),
    /// List the built-in zoo, or write one of its models as an ONNX file.
    #[command(after_help = "Examples:\n  tandem zoo                       # list the models\n  tandem zoo resnet -o resnet.onnx\n  tandem zoo transformer -o t.onnx --seed 3")]
    Zoo(ZooArgs),
}

/// A model on the command line.
#[derive(Debug, Args)]
pub struct ModelArgs {
    /// An ONNX file, or the name of a built-in zoo model (see `tandem zoo`).
    pub model: String,
    /// Fix an input's shape: NAME=1,3,224,224 (NAME is the input's name or position). Repeatable.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<String>,
}

impl ModelArgs {
    /// The parsed `--input-shape` values.
    pub fn shapes(&self) -> Result<Vec<InputShape>, tandem_graph::GraphError> {
        self.input_shape.iter().map(|s| s.parse()).collect()
    }
}

/// `tandem inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// `tandem zoo`.
#[derive(Debug, Args)]
pub struct ZooArgs {
    /// The model to write; without it, list the zoo.
    pub name: Option<String>,
    /// Where to write the ONNX file.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}
