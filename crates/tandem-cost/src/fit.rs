//! Fitting every model of a device from its training set.

use std::collections::BTreeMap;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::models::{predict_standalone, profiled_stage, reference_of, CostModels, ProcessorModels, MIN_OWN_PARTS, MIN_OWN_STAGES};
use crate::opmodel::{fit_context, OpFitOptions, Row};
use crate::sample::{Context, TrainingSet};
use crate::stage::{StageForm, StageModel, StagePoint, Weighting};
use crate::transfer::TransferModels;
use crate::CostError;

/// Settings of a fit and its evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitOptions {
    /// Op model settings.
    pub ops: OpFitOptions,
    /// Folds of the k-fold evaluation over ops.
    pub folds: usize,
    /// Seed of the fold assignment.
    pub seed: u64,
    /// Whether processors owning several cores may build on their first core's predictions
    /// ([`crate::Term::Reference`]).
    pub references: bool,
}

impl Default for FitOptions {
    fn default() -> Self {
        FitOptions { ops: OpFitOptions::default(), folds: 5, seed: 0x7a5d_e3c0, references: true }
    }
}

/// The training set with everything computed once: rows with their terms and coordinates, model and
/// processor indexes, and the whole-model timings beside their ops' summed in-context times.
pub(crate) struct Prepared<'a> {
    pub set: &'a TrainingSet,
    pub rows: Vec<Row>,
    /// Model names; `Row::model` indexes this.
    pub models: Vec<String>,
    /// Per model, whether it is training data only ([`TrainingSet::training_only`]).
    pub training_only: Vec<bool>,
    /// Processor ids, sorted.
    pub processors: Vec<String>,
    /// Per row, the index of its op (model, op id): k-fold keeps an op's rows together.
    pub op_of_row: Vec<usize>,
    /// Number of distinct ops.
    pub ops: usize,
    /// Whole-model timings: (model index, processor) -> point.
    pub stage_points: BTreeMap<(usize, String), StagePoint>,
    /// Per split part timed in a plan (`set.plan_parts`), the index of its model.
    pub plan_part_model: Vec<usize>,
    /// Per whole stage or baseline timed in a run (`set.plan_stages`), the index of its model.
    pub plan_stage_model: Vec<usize>,
}

/// The two calibrations learnt from plan runs: of split parts (`in_plan`) and of whole-op stages and
/// baselines (`whole_in_plan`). One fit and one evaluation serve both.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Calibration {
    Parts,
    Stages,
}

impl Calibration {
    /// Both, in the order they are fitted and stored.
    pub(crate) const ALL: [Calibration; 2] = [Calibration::Parts, Calibration::Stages];

    /// The processor's pooled calibration of this kind.
    pub(crate) fn of(self, p: &ProcessorModels) -> &StageModel {
        match self {
            Calibration::Parts => &p.in_plan,
            Calibration::Stages => &p.whole_in_plan,
        }
    }

    /// The processor's calibrations of this kind, pooled and per model, to be written.
    pub(crate) fn slots(self, p: &mut ProcessorModels) -> (&mut StageModel, &mut BTreeMap<String, StageModel>) {
        match self {
            Calibration::Parts => (&mut p.in_plan, &mut p.in_plan_of_model),
            Calibration::Stages => (&mut p.whole_in_plan, &mut p.whole_in_plan_of_model),
        }
    }

    /// Fewest samples of one model for a calibration of its own.
    pub(crate) fn min_own(self) -> usize {
        match self {
            Calibration::Parts => MIN_OWN_PARTS,
            Calibration::Stages => MIN_OWN_STAGES,
        }
    }

    /// The calibration fitted on `points`: for parts, the form leave-one-out chooses; for whole
    /// stages, a ratio only (a stage finds the caches colder in proportion to its size; with a few
    /// baselines per model, the largest stages by far, a fixed or per-op cost chosen on them
    /// extrapolated badly to the small stages of split plans).
    pub(crate) fn fit(self, points: &[StagePoint]) -> StageModel {
        match self {
            _ if points.is_empty() => StageModel::default(),
            Calibration::Parts => StageModel::fit_weighted(points, Weighting::Time),
            Calibration::Stages => StageModel::fit_form(StageForm::Factor, points, Weighting::Time),
        }
    }

    /// A model's own calibration, from its own samples (`mine`). For split parts: a fixed cost per
    /// part and a factor of at least 1 on the prediction alone (a part inside a plan shares the
    /// memory system with the other core's; it does not run faster than alone). Unconstrained, a
    /// model's few parts, which come in clusters (single split ops, long regions), could not tell a
    /// per-op cost from the factor: fitted so on 8 parts of transformer_enc4_d256, `cpu:1`'s took a
    /// factor of 0.28 and 35 µs per op, predicted a part over 3/4 of a layer's tokens 1.14x the part
    /// over 1/4 (measured: 1.61x), and the planner took that uneven cut. For whole stages: a ratio,
    /// as [`Calibration::fit`] fits it.
    pub(crate) fn fit_own(self, mine: &[StagePoint]) -> StageModel {
        match self {
            Calibration::Parts if !mine.is_empty() => {
                // Fitted as the excess over the prediction alone, then shifted back.
                let excess: Vec<StagePoint> = mine.iter().map(|q| StagePoint { measured_us: q.measured_us - q.ops_sum_us, ..*q }).collect();
                let mut m = StageModel::fit_form(StageForm::FixedFactor, &excess, Weighting::Time);
                m.factor += 1.0;
                m
            }
            _ => self.fit(mine),
        }
    }
}

impl<'a> Prepared<'a> {
    pub(crate) fn new(set: &'a TrainingSet) -> Result<Prepared<'a>, CostError> {
        set.validate()?;
        if set.ops.is_empty() {
            return Err(CostError::NoSamples);
        }
        let mut models: Vec<String> = set
            .ops
            .iter()
            .map(|s| s.model.clone())
            .chain(set.models.iter().map(|m| m.model.clone()))
            .chain(set.plan_parts.iter().map(|s| s.model.clone()))
            .chain(set.plan_stages.iter().map(|s| s.model.clone()))
            .collect();
        models.sort();
        models.dedup();
        let model_index = |m: &str| models.binary_search_by(|x| x.as_str().cmp(m)).unwrap_or(0);
        let mut processors: Vec<String> = set.ops.iter().map(|s| s.processor.clone()).collect();
        processors.sort();
        processors.dedup();
        let training_only: Vec<bool> = models.iter().map(|m| set.training_only.contains(m)).collect();
        // Every training-only model shares one group, numbered after the models.
        let probes = models.len();
        let rows: Vec<Row> = set
            .ops
            .iter()
            .enumerate()
            .map(|(i, s)| {
                let mut r = Row::new(i, s, model_index(&s.model));
                if training_only[r.model] {
                    r.group = probes;
                }
                r
            })
            .collect();
        let mut op_ids: BTreeMap<(usize, i64), usize> = BTreeMap::new();
        let op_of_row: Vec<usize> = rows
            .iter()
            .map(|r| {
                let n = op_ids.len();
                *op_ids.entry((r.model, set.ops[r.sample].op_id)).or_insert(n)
            })
            .collect();
        let stage_points = stage_points(set)?
            .into_iter()
            .map(|(m, p, point)| ((model_index(&m), p), point))
            .collect();
        let plan_part_model = set.plan_parts.iter().map(|s| model_index(&s.model)).collect();
        let plan_stage_model = set.plan_stages.iter().map(|s| model_index(&s.model)).collect();
        Ok(Prepared { set, rows, models, training_only, processors, op_of_row, ops: op_ids.len(), stage_points, plan_part_model, plan_stage_model })
    }

    /// Fits every model on the rows and whole-model timings `keep` accepts (by row and by model).
    ///
    /// A processor with a reference ([`reference_of`]) is fitted after it, and its rows carry the
    /// reference's predictions for the same ops (from the reference's models fitted on the same
    /// rows: predictions for held-out data come from the same models, so the evaluation stays held
    /// out; predictions made without each row's model were tried, and made every held-out figure
    /// worse, since they turn the reference's error on the training rows into noise in the input of
    /// the relationship being fitted).
    pub(crate) fn fit(&self, keep_row: &dyn Fn(usize) -> bool, keep_model: &dyn Fn(usize) -> bool, opts: &FitOptions) -> Vec<ProcessorModels> {
        let kind_of = |r: &Row| r.features.kind.clone();
        let ids: Vec<&str> = self.processors.iter().map(String::as_str).collect();
        let reference: Vec<Option<String>> = ids.iter().map(|p| if opts.references { reference_of(p, &ids) } else { None }).collect();
        // References first (a reference owns a single core, so it has no reference of its own).
        let mut order: Vec<usize> = (0..ids.len()).collect();
        order.sort_by_key(|&i| reference[i].is_some());
        let mut fitted: Vec<ProcessorModels> = vec![];
        for i in order {
            let p = &self.processors[i];
            let reference_index = reference[i].as_ref().and_then(|r| fitted.iter().position(|q| &q.processor == r));
            let mut contexts: [Vec<Row>; 2] = [vec![], vec![]];
            for (j, r) in self.rows.iter().enumerate() {
                let s = &self.set.ops[r.sample];
                if &s.processor == p && keep_row(j) {
                    let row = match reference_index {
                        Some(ri) => r.with_reference(fitted[ri].context(s.context).predict(&r.features)),
                        None => r.clone(),
                    };
                    contexts[s.context.index()].push(row);
                }
            }
            let points: Vec<StagePoint> =
                self.stage_points.iter().filter(|((m, q), _)| q == p && keep_model(*m)).map(|(_, point)| *point).collect();
            let has_reference = reference_index.is_some();
            let fitted_context = |rows: &[Row]| {
                let refs: Vec<&Row> = rows.iter().collect();
                fit_context(&refs, &kind_of, &opts.ops, has_reference)
            };
            // A context without measurements borrows the other's models rather than predicting
            // nothing (a split part predicted free would mislead a planner).
            let [in_model, isolated] = &contexts;
            let (in_model, isolated) = match (in_model.is_empty(), isolated.is_empty()) {
                (true, false) => (fitted_context(isolated), fitted_context(isolated)),
                (false, true) => (fitted_context(in_model), fitted_context(in_model)),
                _ => (fitted_context(in_model), fitted_context(isolated)),
            };
            let reference = if has_reference { reference[i].clone() } else { None };
            fitted.push(ProcessorModels { processor: p.clone(), in_model, isolated, stage: StageModel::fit(&points), in_plan: StageModel::default(), in_plan_of_model: BTreeMap::new(), whole_in_plan: StageModel::default(), whole_in_plan_of_model: BTreeMap::new(), reference });
        }
        fitted.sort_by(|a, b| a.processor.cmp(&b.processor));
        self.fit_in_plan(&mut fitted, keep_model);
        fitted
    }

    /// Fits every processor's calibrations from plan runs of the models `keep_model` accepts, against
    /// what `fitted` predicts: of split parts ([`crate::PlanPartSample`], from their stand-alone
    /// prediction) and of whole-op stages and baselines ([`crate::PlanStageSample`], from the stage
    /// model's). The form is chosen as the stage model's is; a processor without samples keeps the
    /// identity. Each model with at least [`MIN_OWN_PARTS`] parts on a processor also gets a part
    /// calibration of its own there.
    pub(crate) fn fit_in_plan(&self, fitted: &mut [ProcessorModels], keep_model: &dyn Fn(usize) -> bool) {
        for which in Calibration::ALL {
            self.fit_calibration(which, fitted, keep_model);
        }
    }

    /// [`Prepared::fit_in_plan`] for one of the calibrations.
    pub(crate) fn fit_calibration(&self, which: Calibration, fitted: &mut [ProcessorModels], keep_model: &dyn Fn(usize) -> bool) {
        for i in 0..fitted.len() {
            let points = self.run_points(which, fitted, i, keep_model);
            let all: Vec<StagePoint> = points.iter().map(|(_, _, p)| *p).collect();
            let pooled = which.fit(&all);
            let mut own = BTreeMap::new();
            for (m, name) in self.models.iter().enumerate() {
                let mine: Vec<StagePoint> = points.iter().filter(|(pm, _, _)| *pm == m).map(|(_, _, p)| *p).collect();
                if mine.len() >= which.min_own() {
                    own.insert(name.clone(), which.fit_own(&mine));
                }
            }
            let (pooled_slot, own_slot) = which.slots(&mut fitted[i]);
            (*pooled_slot, *own_slot) = (pooled, own);
        }
    }

    /// The samples of calibration `which` timed on processor `index` in runs of the models
    /// `keep_model` accepts, as (model index, index into `set.plan_parts` or `set.plan_stages`,
    /// uncalibrated prediction beside the measured time).
    pub(crate) fn run_points(&self, which: Calibration, fitted: &[ProcessorModels], index: usize, keep_model: &dyn Fn(usize) -> bool) -> Vec<(usize, usize, StagePoint)> {
        let processor = &fitted[index].processor;
        let points: Vec<(usize, usize, StagePoint)> = match which {
            Calibration::Parts => self
                .set
                .plan_parts
                .iter()
                .zip(&self.plan_part_model)
                .enumerate()
                .filter(|(_, (s, m))| &s.processor == processor && keep_model(**m))
                .map(|(k, (s, &m))| (m, k, StagePoint { ops_sum_us: predict_standalone(fitted, index, s), ops: s.op_count() as f64, measured_us: s.measured_us }))
                .collect(),
            Calibration::Stages => self
                .set
                .plan_stages
                .iter()
                .zip(&self.plan_stage_model)
                .enumerate()
                .filter(|(_, (s, m))| &s.processor == processor && keep_model(**m))
                .map(|(k, (s, &m))| (m, k, StagePoint { ops_sum_us: profiled_stage(fitted, index, &s.ops), ops: s.ops.len() as f64, measured_us: s.measured_us }))
                .collect(),
        };
        points.into_iter().filter(|(_, _, p)| p.ops_sum_us.is_finite() && p.ops_sum_us > 0.0).collect()
    }

    /// What makes split part `k` the same part in every run: its ops' work and its share.
    pub(crate) fn part_identity(&self, k: usize) -> Vec<u64> {
        let s = &self.set.plan_parts[k];
        let mut id: Vec<u64> = s.tail.iter().chain([&s.head.0]).flat_map(|op| [op.macs.to_bits(), op.bytes_in.to_bits(), op.bytes_out.to_bits()]).collect();
        id.push(s.head.1.end.to_bits());
        id
    }
}

/// Joins each whole-model timing with the sum and count of its ops' in-context medians on the same
/// processor: the stage model's training data. Returns (model, processor, point).
fn stage_points(set: &TrainingSet) -> Result<Vec<(String, String, StagePoint)>, CostError> {
    let whole: Vec<_> = set.ops.iter().filter(|s| s.context == Context::InModel && s.part.is_none()).collect();
    if whole.is_empty() || set.models.is_empty() {
        return Ok(vec![]);
    }
    let ops = df!(
        "model" => whole.iter().map(|s| s.model.as_str()).collect::<Vec<_>>(),
        "processor" => whole.iter().map(|s| s.processor.as_str()).collect::<Vec<_>>(),
        "median_us" => whole.iter().map(|s| s.median_us).collect::<Vec<_>>(),
    )?;
    let timed = df!(
        "model" => set.models.iter().map(|m| m.model.as_str()).collect::<Vec<_>>(),
        "processor" => set.models.iter().map(|m| m.processor.as_str()).collect::<Vec<_>>(),
        "measured_us" => set.models.iter().map(|m| m.median_us).collect::<Vec<_>>(),
    )?;
    let keys = [col("model"), col("processor")];
    let joined = ops
        .lazy()
        .group_by(keys.clone())
        .agg([col("median_us").sum().alias("ops_sum_us"), len().cast(DataType::Float64).alias("ops")])
        .join(timed.lazy(), keys.clone(), keys, JoinArgs::new(JoinType::Inner))
        .sort(["model", "processor"], SortMultipleOptions::default())
        .collect()?;
    let model = joined.column("model")?.str()?;
    let processor = joined.column("processor")?.str()?;
    let sum = joined.column("ops_sum_us")?.f64()?;
    let count = joined.column("ops")?.f64()?;
    let measured = joined.column("measured_us")?.f64()?;
    let mut out = vec![];
    for i in 0..joined.height() {
        if let (Some(m), Some(p), Some(s), Some(n), Some(y)) = (model.get(i), processor.get(i), sum.get(i), count.get(i), measured.get(i)) {
            out.push((m.to_string(), p.to_string(), StagePoint { ops_sum_us: s, ops: n, measured_us: y }));
        }
    }
    Ok(out)
}

/// Fits every model of the device on all of `set` (without evaluating them: see
/// [`crate::fit_and_evaluate`]). The result's version is 0 until the caller stores it.
pub fn fit(device: &str, set: &TrainingSet, opts: &FitOptions) -> Result<CostModels, CostError> {
    let prepared = Prepared::new(set)?;
    let processors = prepared.fit(&|_| true, &|_| true, opts);
    let models = CostModels { device: device.to_string(), version: 0, processors, transfers: TransferModels::fit(&set.transfers), speed: set.typical_reference_us.clone() };
    if !models.is_valid() {
        return Err(CostError::NotFinite("the fitted models".into()));
    }
    Ok(models)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A model's parts in two clusters, as a transformer's plan gives them: single split ops
    /// (one op, ~250 µs alone) and halves of long regions (27 ops, ~1300 µs alone), each run 1.2x
    /// its prediction plus 60 µs. Its own calibration keeps a part's time rising with its size: a
    /// region's part over 3/4 of the tokens is predicted well above the part over 1/4.
    #[test]
    fn a_models_own_part_calibration_keeps_a_factor_of_at_least_one() {
        let mut mine = vec![];
        for i in 0..4 {
            let single = 250.0 + 5.0 * i as f64;
            let region = 1300.0 + 10.0 * i as f64;
            mine.push(StagePoint { ops_sum_us: single, ops: 1.0, measured_us: 60.0 + 1.2 * single });
            mine.push(StagePoint { ops_sum_us: region, ops: 27.0, measured_us: 60.0 + 1.2 * region });
        }
        let own = Calibration::Parts.fit_own(&mine);
        assert!(own.factor >= 1.0 && own.per_op_us == 0.0, "{own:?}");
        assert!((own.factor - 1.2).abs() < 0.02 && (own.fixed_us - 60.0).abs() < 5.0, "{own:?}");
        let (quarter, three_quarters) = (own.predict(900.0, 27), own.predict(2000.0, 27));
        assert!(three_quarters / quarter > 1.8, "{quarter} {three_quarters}");
        // Parts that ran faster than predicted alone still get a factor of 1, not less.
        let fast: Vec<StagePoint> = mine.iter().map(|q| StagePoint { measured_us: 0.7 * q.ops_sum_us, ..*q }).collect();
        let own = Calibration::Parts.fit_own(&fast);
        assert!(own.factor >= 1.0 && own.fixed_us >= 0.0, "{own:?}");
        // Whole stages: the model's own ratio.
        let stages = Calibration::Stages.fit_own(&[StagePoint { ops_sum_us: 1000.0, ops: 10.0, measured_us: 1540.0 }]);
        assert!((stages.factor - 1.54).abs() < 1e-9 && stages.fixed_us == 0.0, "{stages:?}");
    }
}
