//! Plain row types, one per table, as the typed reads return them and the typed writes take them.
//!
//! Conventions shared by all of them:
//! - `id` fields the database assigns (`INTEGER PRIMARY KEY`) are ignored on insert; the insert returns
//!   the new id.
//! - Timestamps are UTC ISO-8601 text (see [`crate::now`]); an empty timestamp on insert means "now".
//! - JSON columns are `String`s holding JSON text; the caller serialises (an empty string is stored as
//!   `{}` or `[]`, whichever the column holds).
//! - Counts and sizes are `i64`, because that is what SQLite stores.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

macro_rules! text_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize, sqlx::Type)]
        #[serde(rename_all = "snake_case")]
        #[sqlx(rename_all = "snake_case")]
        pub enum $name {
            $($(#[$vmeta])* $variant),+
        }

        impl $name {
            /// The text stored in the database.
            pub fn as_str(self) -> &'static str {
                match self {
                    $($name::$variant => $text),+
                }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl FromStr for $name {
            type Err = String;
            fn from_str(s: &str) -> Result<Self, String> {
                match s {
                    $($text => Ok($name::$variant),)+
                    other => Err(format!(
                        "unknown {} '{}' (expected one of: {})",
                        stringify!($name),
                        other,
                        [$($text),+].join(", ")
                    )),
                }
            }
        }
    };
}

text_enum! {
    /// Where a profiling session stands.
    SessionStatus {
        /// Started and not finished: still running, or killed (the next profile resumes it).
        #[default]
        Running = "running",
        /// Finished normally.
        Done = "done",
        /// Stopped early (Ctrl-C, a time budget) and closed cleanly.
        Interrupted = "interrupted",
    }
}

text_enum! {
    /// What a measurement timed.
    Target {
        /// One op.
        #[default]
        Op = "op",
        /// The whole model.
        Model = "model",
        /// A stage: a connected set of ops run as one model.
        Stage = "stage",
        /// One part of an op split across processors.
        SplitPart = "split_part",
    }
}

text_enum! {
    /// How a measurement was taken: caches and fusion make the two differ, and the cost model must know
    /// which one it predicts.
    Context {
        /// Timed by a hook around the op while the whole model ran.
        #[default]
        InModel = "in_model",
        /// Timed alone, as a one-op model.
        Isolated = "isolated",
    }
}

/// `devices`: one machine.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct DeviceRow {
    /// Stable fingerprint (hostname + CPU model + core layout).
    pub id: String,
    /// Host name.
    pub hostname: String,
    /// CPU model name.
    pub cpu_model: String,
    /// Logical cores.
    pub cores: i64,
    /// Total memory.
    pub memory_bytes: i64,
    /// When tandem first saw the device (kept by later upserts).
    pub first_seen: String,
}

/// `processors`: a unit of a device that runs work.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct ProcessorRow {
    /// The device.
    pub device_id: String,
    /// `cpu:0`, `cpu:0-1`, `cuda:0`, ...
    pub id: String,
    /// `cpu`, `cuda`, ...
    pub kind: String,
    /// The CPU cores it owns, `0,1` (empty for an accelerator).
    pub cores: String,
    /// Worker threads it runs.
    pub threads: i64,
    /// Highest clock of its cores, where the OS says.
    pub max_freq_khz: Option<i64>,
}

/// `models`: a model as profiled (ONNX bytes plus fixed input shapes).
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct ModelRow {
    /// Assigned by the database.
    pub id: i64,
    /// SHA-256 of the ONNX bytes.
    pub content_hash: String,
    /// File stem or zoo name.
    pub name: String,
    /// JSON: input name -> fixed dims. Part of the model's identity, with `content_hash`.
    pub input_shapes: String,
    /// Sum of the ops' FLOPs.
    pub total_flops: i64,
    /// Number of ops.
    pub op_count: i64,
    /// When it was first stored.
    pub created_at: String,
}

/// `ops`: one op of a model with its cost features.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct OpRow {
    /// The model.
    pub model_id: i64,
    /// Position in topological order.
    pub op_id: i64,
    /// Name.
    pub name: String,
    /// Kind (`Conv`, `DepthwiseConv`, `EinSum`, ...).
    pub kind: String,
    /// Floating-point operations.
    pub flops: i64,
    /// Multiply-accumulates.
    pub macs: i64,
    /// Activation bytes read.
    pub bytes_in: i64,
    /// Activation bytes written.
    pub bytes_out: i64,
    /// Weight bytes read.
    pub weight_bytes: i64,
    /// JSON array: the output shape.
    pub output_shape: String,
    /// JSON array: the output axes it can be split along.
    pub split_axes: String,
    /// JSON object: further cost features.
    pub features: String,
}

/// `profile_sessions`: one run of `tandem profile`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct SessionRow {
    /// Assigned by the database.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The model (`None` for a session measuring transfers only).
    pub model_id: Option<i64>,
    /// Start time.
    pub started_at: String,
    /// End time, `None` until the session ends.
    pub finished_at: Option<String>,
    /// JSON: the options the session ran with.
    pub settings: String,
    /// Where it stands.
    pub status: SessionStatus,
    /// The reference workload's time before the session.
    pub reference_before_ms: Option<f64>,
    /// The reference workload's time after the session.
    pub reference_after_ms: Option<f64>,
    /// `(after - before) / before * 100`.
    pub drift_pct: Option<f64>,
}

/// `measurements`: one timing distribution.
///
/// Its key is (device_id, model_id, op_id, processor_id, target, variant, context): storing a row with
/// the key of an existing one replaces that row.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct MeasurementRow {
    /// Assigned by the database.
    pub id: i64,
    /// The session that took it.
    pub session_id: i64,
    /// The model.
    pub model_id: i64,
    /// The op (`None` for whole-model and stage rows).
    pub op_id: Option<i64>,
    /// The processor.
    pub processor_id: String,
    /// The device.
    pub device_id: String,
    /// What was timed.
    pub target: Target,
    /// `whole`, a split part such as `axis1:0.25-0.5`, or a stage such as `ops:3-17`.
    pub variant: String,
    /// For split parts: the axis cut.
    pub split_axis: Option<i64>,
    /// For split parts: where the part starts, as a share of the axis.
    pub ratio_start: Option<f64>,
    /// For split parts: where the part ends, as a share of the axis.
    pub ratio_end: Option<f64>,
    /// In the model or alone.
    pub context: Context,
    /// Samples kept.
    pub samples: i64,
    /// Median.
    pub median_us: f64,
    /// 10th percentile.
    pub p10_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// Mean.
    pub mean_us: f64,
    /// Coefficient of variation (stddev / mean).
    pub cv: f64,
    /// Samples rejected as outliers.
    pub outliers_dropped: i64,
    /// The environment snapshot taken with it.
    pub env_id: Option<i64>,
    /// When it was taken.
    pub measured_at: String,
    /// The reference kernel's median over the same rounds, on the same processor (schema 3): the
    /// host's speed while this was measured. `None` where no reference was timed with it.
    #[sqlx(default)]
    #[serde(default)]
    pub reference_us: Option<f64>,
}

/// `unsupported`: an op a processor cannot run.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct UnsupportedRow {
    /// The device.
    pub device_id: String,
    /// The model.
    pub model_id: i64,
    /// The op.
    pub op_id: i64,
    /// The processor.
    pub processor_id: String,
    /// Why (the runtime's message).
    pub reason: String,
}

/// `transfers`: moving `bytes` from one processor to another.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct TransferRow {
    /// Assigned by the database.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The session that measured it.
    pub session_id: Option<i64>,
    /// From.
    pub src_processor: String,
    /// To.
    pub dst_processor: String,
    /// Tensor size.
    pub bytes: i64,
    /// Samples kept.
    pub samples: i64,
    /// Median.
    pub median_us: f64,
    /// 10th percentile.
    pub p10_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// Coefficient of variation.
    pub cv: f64,
    /// When it was taken.
    pub measured_at: String,
}

/// `env_snapshots`: the device's state at one moment.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct EnvSnapshotRow {
    /// Assigned by the database.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The session it belongs to.
    pub session_id: Option<i64>,
    /// When it was taken.
    pub taken_at: String,
    /// 1-minute load average.
    pub load1: Option<f64>,
    /// 5-minute load average.
    pub load5: Option<f64>,
    /// 15-minute load average.
    pub load15: Option<f64>,
    /// CPU used by other processes, percent of the device.
    pub other_cpu_pct: Option<f64>,
    /// JSON: core -> current frequency in kHz.
    pub freqs_khz: String,
    /// JSON: sensor -> degrees Celsius.
    pub temps_c: String,
}

/// `contention`: how much a processor slows down running a model while a background load runs.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct ContentionRow {
    /// Assigned by the database.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The processor measured.
    pub processor_id: String,
    /// The model it ran.
    pub model_id: i64,
    /// The interference scenario (`compute-other`, `memory-same`, ...).
    pub scenario: String,
    /// The background load as run (`compute spinner x1 on core 1 (100%)`).
    pub load: String,
    /// Median latency without the load.
    pub idle_us: f64,
    /// Median latency with it.
    pub loaded_us: f64,
    /// `loaded_us / idle_us`.
    pub slowdown: f64,
    /// Samples behind `idle_us`.
    pub idle_samples: i64,
    /// Samples behind `loaded_us`.
    pub loaded_samples: i64,
    /// Back-to-back runs averaged into each sample (enough to span several scheduler time slices).
    pub runs_per_sample: i64,
    /// Coefficient of variation of the idle samples.
    pub idle_cv: Option<f64>,
    /// Coefficient of variation of the loaded samples.
    pub loaded_cv: Option<f64>,
    /// JSON: the environment snapshot taken with the measurement.
    pub env: String,
    /// When it was measured.
    pub created_at: String,
}

/// `cost_models`: one fitted latency model.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct CostModelRow {
    /// Assigned by the database.
    pub id: i64,
    /// The device.
    pub device_id: String,
    /// The processor.
    pub processor_id: String,
    /// The op kind it predicts (`transfer` for transfers).
    pub op_kind: String,
    /// The fit it belongs to (one `tandem fit` = one version).
    pub version: i64,
    /// JSON: the model's form and coefficients.
    pub params: String,
    /// Samples it was fitted on.
    pub samples: i64,
    /// Mean absolute percentage error on held-out data.
    pub mape: Option<f64>,
    /// Share of held-out predictions within 10 %, 0..1.
    pub within_10pct: Option<f64>,
    /// When it was fitted.
    pub fitted_at: String,
    /// Set when this model stands in for another kind's (too few samples of that kind).
    pub fallback_of: Option<String>,
}

/// `plans`: a partition plan with its predicted latency.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct PlanRow {
    /// Assigned by the database.
    pub id: i64,
    /// The model.
    pub model_id: i64,
    /// The device.
    pub device_id: String,
    /// The cost models it was planned with.
    pub cost_model_version: Option<i64>,
    /// `latency`, `throughput`, ...
    pub objective: String,
    /// JSON: stages, processors, splits, dependencies, transfers.
    pub plan: String,
    /// Predicted latency.
    pub predicted_ms: f64,
    /// When it was made.
    pub created_at: String,
}

/// `runs`: a plan executed for real.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize, sqlx::FromRow)]
pub struct RunRow {
    /// Assigned by the database.
    pub id: i64,
    /// The plan.
    pub plan_id: i64,
    /// The device.
    pub device_id: String,
    /// When it started.
    pub started_at: String,
    /// Whether the outputs matched the single-processor reference.
    pub verified: bool,
    /// Largest absolute output difference.
    pub max_abs_diff: Option<f64>,
    /// Largest difference relative to the output's magnitude.
    pub max_rel_diff: Option<f64>,
    /// Measured median.
    pub median_ms: Option<f64>,
    /// Measured 90th percentile.
    pub p90_ms: Option<f64>,
    /// The plan's prediction.
    pub predicted_ms: Option<f64>,
    /// `(predicted - measured) / measured`.
    pub prediction_error: Option<f64>,
    /// JSON: `[{name, measured_ms}, ...]`.
    pub baselines: String,
    /// JSON: per-stage timings and the like.
    pub details: String,
}
