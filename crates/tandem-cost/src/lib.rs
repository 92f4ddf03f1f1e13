//! tandem-cost: latency cost models fitted from profiles, for the planner.
//!
//! Data flows one way through three types:
//!
//! - [`TrainingSet`] is one device's measurements as plain structs ([`OpSample`] for ops and split
//!   parts in or out of context, [`ModelSample`] for whole models, [`TransferSample`] for hand-overs
//!   between processors). The caller fills it (the CLI reads the results database), so this crate
//!   depends on no database, profiler or executor, and the planner can depend on it alone.
//! - [`fit_and_evaluate`] fits every model and measures it on data the fit did not see (k-fold over
//!   ops, and leave-one-model-out), returning a [`FitReport`]; [`FitReport::records`] turns it into
//!   rows for the `cost_models` table, and [`CostModels::from_records`] turns rows back into models.
//! - [`CostModels`] answers the planner: [`CostModels::predict_op`] (an op's time inside a stage),
//!   [`CostModels::predict_split_part`], [`CostModels::predict_transfer`] and
//!   [`CostModels::predict_stage`], in microseconds, millions of times a second
//!   (`cargo run --release -p tandem-cost --example bench_predict`).
//!
//! # The models
//!
//! **Ops**, per (processor, context, kind): an [additive base](additive) `µs = Σ cost_t · term_t` over
//! work terms (multiply-adds, bytes in and out, weight bytes, the packed operand of a matrix product
//! and, apart, that of a channel-poor first-layer convolution, channels and rows of a depthwise
//! convolution and, apart, the multiply-adds of one striding along the width; [`Term`]), non-negative
//! and fitted on `ln(predicted / measured)`, times a [neighbour correction](neighbours) learned from the kind's training ops that look nearly the same. Whether a
//! kind gets a base of its own or shares its [`Family`]'s (all matrix products, say) is decided by
//! leave-one-model-out error on the training data; a kind with fewer than 8 samples falls back to its
//! family's model (or the processor's catch-all) and says so (`fallback_of`). In-context models predict
//! what an op adds to a stage; isolated models predict an op, or a split part, run alone. A split part
//! inside a plan runs between other stages, as its whole op runs inside its model, so the planner's
//! part is the isolated prediction times the whole op's in-context / isolated ratio.
//!
//! A processor owning several cores (`cpu:0-1`) has a *reference*, the processor owning its first core
//! alone (`cpu:0`, [`reference_of`]): how much a multi-threaded run gains or loses depends on the op
//! (large convolutions split well, small ops pay the threads' wake-up and lose), and the single-core
//! prediction carries what the terms miss about the op. So its candidates also include
//! `fixed + factor · reference's prediction + c · √(reference's prediction)` ([`Term::Reference`],
//! [`Term::SqrtReference`]: small ops lose, large ones gain), and leave-one-model-out error
//! decides per kind (and per family) which to use.
//!
//! **Stages**, per processor: a stage's time from the sum of its ops' in-context times, `fixed +
//! factor · sum (+ per_op · ops)`, the form chosen by leave-one-out error over whole-model timings
//! ([`StageModel`]).
//!
//! **In-plan calibration**, per processor: inside a running plan a split part takes longer than
//! its ops predict alone, since the other parts of its split run at the same time and share the
//! memory system; no profile, which times one thing at a time, sees that. `tandem run` stores every
//! part's time inside the plan ([`PlanPartSample`]); the calibration maps the stand-alone prediction
//! to it, `fixed + factor · predicted (+ per_op · ops)`, fitted with every microsecond weighted alike
//! ([`Weighting::Time`]), and the planner applies it to every split part it considers
//! ([`CostModels::plan_part_us`]). A model whose plans have run also gets one of its own
//! ([`CostModels::for_model`]). Its accuracy is reported held out ([`PlanPartAccuracy`]).
//!
//! **Whole-stage calibration**, per processor: a whole-op stage inside a running plan, and the
//! `single:` baselines `tandem run` interleaves with it, take longer than the back-to-back profile
//! the stage model was fitted on, since each run finds the caches as the run before it left them
//! ([`PlanStageSample`]). The same form maps the stage model's prediction to those times
//! ([`ProcessorModels::whole_in_plan`]); [`CostModels::stage_us`] and [`CostModels::predict_stage`]
//! apply it, [`CostModels::profiled_stage_us`] does not (the leave-one-model-out evaluation compares
//! with profiles).
//!
//! **Transfers**, per processor pair: `fixed + per_byte · bytes` ([`TransferModel`]).
//!
//! **Contention**, per (processor, scenario): how much slower a processor runs next to background load,
//! the median over models of measured loaded / idle ratios ([`ContentionFactors`]); its
//! [`availability`](ContentionFactors::availability) gives the half-available and heavily-loaded factors
//! the robust planner scales predictions by.
//!
//! Polars frames do the relational work: joining whole-model timings with their ops' summed
//! in-context times, and the group-bys of the accuracy tables.
#![deny(missing_docs)]

pub mod additive;
pub mod contention;
mod eval;
mod fit;
mod models;
pub mod neighbours;
mod opmodel;
mod records;
mod sample;
mod solve;
pub mod stage;
#[doc(hidden)]
pub mod synthetic;
pub mod term;
pub mod transfer;

pub use contention::{ContentionFactors, ContentionSample};
pub use eval::{fit_and_evaluate, Accuracy, FitReport, HeldOut, KindAccuracy, KindShare, LeaveOneModelOut, LeftOutModel, OwnCalibration, PlanPartAccuracy, SliceAccuracy};
pub use fit::{fit, FitOptions};
pub use models::{reference_of, CostModels, ProcessorModels, MIN_OWN_PARTS};
pub use opmodel::{ContextModels, FamilyModel, OpFitOptions, OpModel, Tried};
pub use records::{ModelRecord, ANY_PAIR, IN_PLAN, IN_PLAN_OF_MODEL, SPEED, STAGE, TRANSFER};
pub use sample::{Context, KernelParams, ModelSample, OpFeatures, OpSample, PartSpec, PlanPartSample, PlanStageSample, TrainingSet, TransferSample};
pub use stage::{StageForm, StageModel, StagePoint, Weighting};
pub use term::{Family, Term};
pub use transfer::{TransferModel, TransferModels};

/// Everything that can go wrong fitting or loading cost models.
#[derive(Debug, thiserror::Error)]
pub enum CostError {
    /// There is nothing to fit.
    #[error("no op measurements to fit cost models on: run `tandem profile MODEL` first")]
    NoSamples,
    /// A training sample is unusable (a time that is not a positive finite number, a negative count).
    #[error("invalid training sample: {0}")]
    InvalidSample(String),
    /// A fit produced a number that is not finite; nothing is returned (or stored).
    #[error("{0} came out not finite (NaN or infinite); nothing was stored")]
    NotFinite(String),
    /// A stored model's parameters cannot be read.
    #[error("cannot read the stored {op_kind} model of {processor}: {message}")]
    Params {
        /// The row's processor.
        processor: String,
        /// The row's op kind.
        op_kind: String,
        /// What serde said.
        message: String,
    },
    /// Polars failed assembling a frame.
    #[error("building a table: {0}")]
    Frame(String),
}

impl From<polars::error::PolarsError> for CostError {
    fn from(e: polars::error::PolarsError) -> Self {
        CostError::Frame(e.to_string())
    }
}
