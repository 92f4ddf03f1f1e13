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
    /// The results database (created when missing).
    #[arg(long, global = true, env = "TANDEM_DB", value_name = "PATH", default_value = "profiles-db/tandem.db")]
    pub db: PathBuf,
    /// The command.
    #[command(subcommand)]
    pub command: Command,
}

/// The subcommands.
#[derive(Debug, Subcommand)]
pub enum Command {
    /// Everything in one go: profile a model, fit cost models, tune a plan and run it against every
    /// processor alone, reusing what the database already holds; print a summary.
    #[command(after_help = "Examples:\n  tandem auto                      # the built-in default model (resnet)\n  tandem auto model.onnx --input-shape 0=1,3,224,224\n  tandem auto mobilenet --json     # the `run` object of the tuned plan, plus model, plan and steps (steps.rounds: every plan run)\n  tandem auto model.onnx --calibrate 0   # tune and run once: no refit from the run, no fallback to one processor")]
    Auto(AutoArgs),
    /// Show a model's operators as tandem sees them: kinds, shapes, cost, split axes.
    #[command(after_help = "Examples:\n  tandem inspect model.onnx\n  tandem inspect resnet            # a built-in zoo model\n  tandem inspect model.onnx --input-shape input=1,3,224,224 --json")]
    Inspect(InspectArgs),
    /// List the built-in zoo, or write one of its models as an ONNX file.
    #[command(after_help = "Examples:\n  tandem zoo                       # list the models\n  tandem zoo resnet -o resnet.onnx\n  tandem zoo transformer -o t.onnx --seed 3\n  tandem zoo --probes              # the probe networks, training data for fit\n  tandem zoo probe-cnn-03 -o p.onnx")]
    Zoo(ZooArgs),
    /// Ask the results database anything, in SQL; it is opened read-only.
    #[command(after_help = "Examples:\n  tandem query \"select name from sqlite_master where type = 'table'\"\n  tandem query \"select processor_id, count(*), avg(median_us) from measurements group by 1\" --format csv\n  tandem query \"select * from plans order by id desc limit 1\" --json\n  tandem query \"select * from devices\" --db phone.db")]
    Query(QueryArgs),
    /// Write every table of the results database to CSV or Parquet files.
    #[command(after_help = "Examples:\n  tandem export --out results              # one CSV file per table\n  tandem export --format parquet --out results\n  tandem export --db phone.db --out phone --json")]
    Export(ExportArgs),
    /// Show this device's processors (cores, clusters, all cores) and its current load, clocks and heat.
    #[command(after_help = "Examples:\n  tandem devices\n  tandem devices --json            # for programs: device, processors, environment\n  tandem devices --window-ms 1000  # a finer figure for other processes' CPU use")]
    Devices(DevicesArgs),
    /// Measure every op of a model on every processor (in context and alone), split parts of heavy ops,
    /// and hand-overs between processors, into the results database. Resumes an interrupted session.
    /// With --contention, measure instead how much each CPU processor slows down next to background load.
    #[command(after_help = "Examples:\n  tandem profile model.onnx\n  tandem profile resnet --processors cpu:0,cpu:0-1\n  tandem profile model.onnx --force --json   # measure again, print JSON\n  tandem profile transformer --contention --budget-ms 1000   # slowdown under interference, per processor and scenario\n  tandem profile probes      # every probe network (tandem zoo --probes): training data for fit over many shapes")]
    Profile(ProfileArgs),
    /// Fit latency cost models on this device's profiles (per processor and op kind, stages, transfers),
    /// store them as a new version, and print their accuracy on data held out from the fit.
    #[command(after_help = "Examples:\n  tandem fit\n  tandem fit --json                  # for programs: models, overall, leave_one_model_out\n  tandem fit --db phone.db --device 3f9a0c1d2e4b5a69   # a profile copied from another device\n  tandem fit --unpaired              # every timing as measured, not brought to one speed")]
    Fit(FitArgs),
    /// Run a stored plan on this device's processors: verify its outputs against the single-processor
    /// run, measure it against every processor running the whole model alone, compare with its
    /// prediction, and store the run.
    #[command(after_help = "Examples:\n  tandem run model.onnx --plan 7\n  tandem run resnet --plan 7 --trace run.json   # open run.json in https://ui.perfetto.dev\n  tandem run model.onnx --plan 7 --stream 100 --json\n  tandem run resnet --plan 7 --adaptive --requests 500   # re-plan while other apps load the cores")]
    Run(RunArgs),
    /// Search the best partition plan of a model across the device's processors (parallel branches,
    /// split operators, processor sets), predict its timeline with the fitted cost models, and store it.
    #[command(after_help = "Examples:\n  tandem tune model.onnx\n  tandem tune resnet --objective throughput\n  tandem tune model.onnx --json               # for programs: plan_id, predicted_ms, baselines, stages, search_ms\n  tandem tune model.onnx --device 3f9a0c1d2e4b5a69   # a phone's profile, imported with `tandem import`\n  tandem tune resnet --robust                 # lowest p90 latency when cores are busy with other work too\n  tandem tune resnet --min-gain 0             # the lowest prediction, however small its gain over one processor")]
    Tune(TuneArgs),
    /// Merge another tandem database (say, a profile taken on a phone) into this one: devices,
    /// processors, models, measurements, cost models, plans and runs. Importing twice adds nothing.
    #[command(after_help = "Examples:\n  tandem import phone.db\n  tandem import phone.db --db workstation.db --json\n  tandem tune model.onnx --device $(tandem query \"select id from devices where hostname = 'phone'\" --format csv | tail -1)")]
    Import(ImportArgs),
    /// Experiments that put tandem's plans to the test on this device.
    #[command(after_help = "Examples:\n  tandem experiment dynamics resnet\n  tandem experiment dynamics model.onnx --load-core 1 --csv requests.csv --trace dynamics.json --json")]
    Experiment(ExperimentArgs),
}

/// `tandem experiment`.
#[derive(Debug, Args)]
pub struct ExperimentArgs {
    /// The experiment.
    #[command(subcommand)]
    pub command: ExperimentCommand,
}

/// The experiments.
#[derive(Debug, Subcommand)]
pub enum ExperimentCommand {
    /// A stream of requests; partway through, a background load pinned to one core starts, later it
    /// stops. The static plan, the adaptive plan and a plan re-tuned for the load are each served the
    /// same stream: latency per request, p50 and p90 before, during and after the load, and when the
    /// adaptive plan switched. Profiles and fits the model first if the database lacks it.
    #[command(after_help = "Examples:\n  tandem experiment dynamics resnet\n  tandem experiment dynamics model.onnx --requests 200 --load-start 50 --load-stop 150\n  tandem experiment dynamics resnet --load-kind memory --load-threads 2 --csv requests.csv --trace dynamics.json\n  tandem experiment dynamics resnet --json   # static, adaptive, retuned_p50_during_ms, ...")]
    Dynamics(DynamicsArgs),
    /// Runs a background load until standard input closes (the experiments start it as a separate
    /// process, as another app would be).
    #[command(hide = true)]
    Load(LoadArgs),
}

/// `tandem experiment load` (hidden).
#[derive(Debug, Args)]
pub struct LoadArgs {
    /// What the load does.
    #[arg(long, value_enum)]
    pub kind: LoadKindArg,
    /// Cores, comma-separated.
    #[arg(long, value_delimiter = ',', required = true)]
    pub cores: Vec<usize>,
    /// Threads per core.
    #[arg(long, default_value_t = 1)]
    pub threads: usize,
    /// Share of each period it works.
    #[arg(long, default_value_t = 1.0)]
    pub duty: f64,
}

/// What the background load does.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum LoadKindArg {
    /// A spinner that keeps the core busy (takes about half the core from another busy thread).
    Compute,
    /// A memory-bandwidth hog streaming over a buffer larger than the caches.
    Memory,
}

/// `tandem experiment dynamics`.
#[derive(Debug, Args)]
pub struct DynamicsArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Requests per pass.
    #[arg(long, default_value_t = 150)]
    pub requests: usize,
    /// The load starts before this request.
    #[arg(long, default_value_t = 40)]
    pub load_start: usize,
    /// The load stops before this request.
    #[arg(long, default_value_t = 110)]
    pub load_stop: usize,
    /// The core the load is pinned to (default: the last core).
    #[arg(long, value_name = "CORE")]
    pub load_core: Option<usize>,
    /// What the load does.
    #[arg(long, value_enum, default_value_t = LoadKindArg::Compute)]
    pub load_kind: LoadKindArg,
    /// Load threads on the core.
    #[arg(long, default_value_t = 1)]
    pub load_threads: usize,
    /// Share of each 10 ms period the load works, in (0, 1].
    #[arg(long, default_value_t = 1.0)]
    pub load_duty: f64,
    /// Time budget per profiled item, milliseconds, when the model must be profiled first.
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<u64>,
    /// Write every request's latency as CSV (mode, request, phase, start_ms, latency_ms, plan, verified).
    #[arg(long, value_name = "FILE")]
    pub csv: Option<PathBuf>,
    /// Write the passes as a Chrome trace: one track per pass, a span per request, the load and the
    /// switches.
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
}

/// A model on the command line.
#[derive(Debug, Clone, Args)]
pub struct ModelArgs {
    /// An ONNX file, or the name of a built-in zoo model or probe network (see `tandem zoo`).
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

/// `tandem auto`.
#[derive(Debug, Args)]
pub struct AutoArgs {
    /// An ONNX file, or the name of a built-in zoo model; default: the zoo's default model.
    pub model: Option<String>,
    /// Fix an input's shape: NAME=1,3,224,224 (NAME is the input's name or position). Repeatable.
    #[arg(long = "input-shape", value_name = "NAME=DIMS")]
    pub input_shape: Vec<String>,
    /// Processors to profile (comma-separated ids from `tandem devices`); default: all.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub processors: Vec<String>,
    /// Profiling time budget per op or split part, milliseconds (default 400).
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<u64>,
    /// Time budget of the final run, plan and baselines together, milliseconds (default 3000).
    #[arg(long, value_name = "MS")]
    pub run_budget_ms: Option<u64>,
    /// What the plan minimises.
    #[arg(long, value_enum, default_value_t = TuneObjective::Latency)]
    pub objective: TuneObjective,
    /// When a plan on several processors is worth taking.
    #[command(flatten)]
    pub min_gain: MinGainArgs,
    /// Write the run's measured and predicted timelines as a Chrome trace (opens in Perfetto).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Rounds of re-planning from measurements: while the plan's measured time is more than 10% off
    /// its prediction, refit with its per-stage timings (in-plan calibration), tune again and run the
    /// new plan; then, if the fastest plan lost to a processor running the model alone, run that as
    /// a plan too. The best measured plan is the result. 0: tune and run once.
    #[arg(long, value_name = "N", default_value_t = 1)]
    pub calibrate: usize,
}

/// `tandem inspect`.
#[derive(Debug, Args)]
pub struct InspectArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
}

/// `tandem profile`.
#[derive(Debug, Args)]
pub struct ProfileArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// Processors to profile (comma-separated ids from `tandem devices`); default: all.
    #[arg(long, value_delimiter = ',', value_name = "IDS")]
    pub processors: Vec<String>,
    /// Measure again what the database already holds.
    #[arg(long)]
    pub force: bool,
    /// Time budget per op or split part, milliseconds (default 400).
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<u64>,
    /// Skip the hand-over measurements between processors.
    #[arg(long)]
    pub no_transfers: bool,
    /// Instead of the per-op profile, measure how much each CPU processor slows down running the whole
    /// model while background load runs: compute spinners and memory-bandwidth hogs on the other cores
    /// (compute-other, memory-other) and on its own (compute-same, compute-same-x3, memory-same). Idle and
    /// loaded runs alternate in blocks; --budget-ms is then the budget per processor and scenario
    /// (default 2000). Stored in the `contention` table (profiling again replaces the rows), with
    /// environment snapshots and a throttling verdict.
    #[arg(long)]
    pub contention: bool,
}

/// `tandem fit`.
#[derive(Debug, Args)]
pub struct FitArgs {
    /// The device whose profiles to fit (an id from the `devices` table); default: this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// Fit on every timing as measured. By default, the timings taken with the paired reference kernel
    /// (a whole model and its ops in context) are first brought to their processor's typical speed.
    #[arg(long)]
    pub unpaired: bool,
}

/// `tandem run`.
#[derive(Debug, Args)]
pub struct RunArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The plan to run: its id in the `plans` table (printed by `tandem tune`).
    #[arg(long, value_name = "ID")]
    pub plan: i64,
    /// Write the measured and the predicted timeline as a Chrome trace (opens in Perfetto).
    #[arg(long, value_name = "FILE")]
    pub trace: Option<PathBuf>,
    /// Also run N requests through the plan pipelined and report requests per second.
    #[arg(long, value_name = "N")]
    pub stream: Option<usize>,
    /// Time budget of the measurement, plan and baselines together, milliseconds (default 3000).
    #[arg(long, value_name = "MS")]
    pub budget_ms: Option<u64>,
    /// Serve requests one after another and re-plan between them when a core slows down or recovers
    /// (another app starts or stops): stage times are compared with the plan's predictions, unused
    /// cores are probed, and every switch is printed and stored with the run.
    #[arg(long, conflicts_with_all = ["stream", "trace"])]
    pub adaptive: bool,
    /// With --adaptive: how many requests to serve.
    #[arg(long, value_name = "N", default_value_t = 200, requires = "adaptive")]
    pub requests: usize,
}

/// `tandem tune`.
#[derive(Debug, Args)]
pub struct TuneArgs {
    /// The model.
    #[command(flatten)]
    pub model: ModelArgs,
    /// The device to plan for (an id from the `devices` table, e.g. one imported with `tandem import`);
    /// default: this device.
    #[arg(long, value_name = "ID")]
    pub device: Option<String>,
    /// What to minimise: the latency of one request, or the time between requests streamed through
    /// the plan's stages.
    #[arg(long, value_enum, default_value_t = TuneObjective::Latency)]
    pub objective: TuneObjective,
    /// Plan for a device that is not always idle: choose the plan whose predicted latency (time
    /// between requests, with --objective throughput) has the lowest 90th percentile over availability
    /// scenarios, each core idle, half available or heavily loaded (every combination on up to three
    /// cores, else each core alone), and print each scenario against the idle-optimal plan and the
    /// best processor alone. The slowdowns come from `tandem profile --contention` where measured,
    /// else 2x and 4x. Stored with objective `latency-p90`; `tandem run` runs it like any plan.
    #[arg(long)]
    pub robust: bool,
    /// When a plan on several processors is worth taking.
    #[command(flatten)]
    pub min_gain: MinGainArgs,
}

/// The default of `--min-gain`, percent.
pub const DEFAULT_MIN_GAIN_PCT: f64 = 5.0;

/// `--min-gain`, for the commands that tune a plan (`tune`, `auto`).
#[derive(Debug, Clone, Args)]
pub struct MinGainArgs {
    /// Take a plan on several processors only when it is predicted at least this many percent faster
    /// than the best processor alone; otherwise that processor runs the whole model. A smaller
    /// predicted gain is within the predictions' own error (plans measure 8-10% off their predictions
    /// on average on the 2-core VM tandem is developed on), and the plan's transfers and
    /// synchronisation are certain. 0 takes the lowest prediction. `tune --robust` does not use it.
    #[arg(long = "min-gain", value_name = "PCT", default_value_t = DEFAULT_MIN_GAIN_PCT)]
    pub pct: f64,
}

/// What `tandem tune` minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum TuneObjective {
    /// Time of one request, from input to output.
    Latency,
    /// Requests per second with stages pipelined across requests.
    Throughput,
}

/// `tandem import`.
#[derive(Debug, Args)]
pub struct ImportArgs {
    /// The tandem database to merge into this one (`--db`).
    pub other: PathBuf,
}

/// `tandem devices`.
#[derive(Debug, Args)]
pub struct DevicesArgs {
    /// How long to watch other processes' CPU use, in milliseconds.
    #[arg(long, value_name = "MS", default_value_t = 100)]
    pub window_ms: u64,
}

/// `tandem query`.
#[derive(Debug, Args)]
pub struct QueryArgs {
    /// The SQL to run (read-only: statements that write are refused).
    pub sql: String,
    /// Output format (`--json` means json).
    #[arg(long, value_enum, default_value_t = QueryFormat::Table)]
    pub format: QueryFormat,
}

/// How `tandem query` prints its rows.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum QueryFormat {
    /// An aligned table for people.
    Table,
    /// CSV with a header line.
    Csv,
    /// One JSON object: `{"columns": [...], "rows": [{...}, ...]}`.
    Json,
}

/// `tandem export`.
#[derive(Debug, Args)]
pub struct ExportArgs {
    /// File format: one `<table>.csv` or `<table>.parquet` per table.
    #[arg(long, value_enum, default_value_t = ExportFormat::Csv)]
    pub format: ExportFormat,
    /// The folder to write (created when missing; files of the same name are replaced).
    #[arg(long, value_name = "DIR")]
    pub out: PathBuf,
}

/// The file formats of `tandem export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// Comma-separated values with a header line.
    Csv,
    /// Apache Parquet.
    Parquet,
}

/// `tandem zoo`.
#[derive(Debug, Args)]
pub struct ZooArgs {
    /// The model (or probe network) to write; without it, list the zoo.
    pub name: Option<String>,
    /// List the probe networks instead: synthetic models whose layers are drawn over the range of
    /// shapes real networks use, profiled (`tandem profile probes`) as extra training data for `fit`.
    #[arg(long)]
    pub probes: bool,
    /// Where to write the ONNX file.
    #[arg(short, long, value_name = "FILE")]
    pub output: Option<PathBuf>,
    /// Seed of the random weights.
    #[arg(long, default_value_t = 0)]
    pub seed: u64,
}
