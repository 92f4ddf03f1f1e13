//! Held-out evaluation: k-fold over ops and leave-one-model-out, and the accuracy tables.
//!
//! Every accuracy figure here comes from predictions of data the predicting models were not fitted on:
//! - k-fold over ops: the ops are dealt into `folds` folds (an op's rows, on every processor, in both
//!   contexts and its split parts, stay in one fold); each fold is predicted by models fitted on the
//!   others. This is the per-(processor, kind) table and the overall figure.
//! - leave-one-model-out: each model's ops and whole-model timings are predicted by models fitted on
//!   every other model, and its whole-model latency on each processor is predicted by the stage model
//!   over its ops' predictions, as a planner would for a model it has never profiled.
//!
//! The tables are group-bys over a polars frame of the held-out predictions.

use std::time::Instant;

use polars::prelude::*;
use serde::{Deserialize, Serialize};

use crate::fit::{Calibration, FitOptions, Prepared};
use crate::models::{CostModels, ProcessorModels};
use crate::stage::StagePoint;
use crate::sample::{Context, TrainingSet};
use crate::transfer::TransferModels;
use crate::CostError;

/// Accuracy of a set of held-out predictions.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Accuracy {
    /// Predictions counted.
    pub n: usize,
    /// Mean absolute percentage error, percent.
    pub mape: f64,
    /// Share of predictions within ±10 % of the measurement, 0..1.
    pub within_10pct: f64,
}

impl Accuracy {
    /// The accuracy of `(predicted, measured)` pairs.
    pub fn of(pairs: impl Iterator<Item = (f64, f64)>) -> Accuracy {
        let (mut n, mut ape, mut within) = (0usize, 0.0, 0usize);
        for (p, m) in pairs {
            let e = ((p - m) / m).abs();
            n += 1;
            ape += e;
            within += (e <= 0.1) as usize;
        }
        if n == 0 {
            return Accuracy::default();
        }
        Accuracy { n, mape: 100.0 * ape / n as f64, within_10pct: within as f64 / n as f64 }
    }
}

/// One held-out prediction of an op (or split part).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HeldOut {
    /// The model the op belongs to.
    pub model: String,
    /// The op.
    pub op_id: i64,
    /// The processor.
    pub processor: String,
    /// The op kind.
    pub kind: String,
    /// `in_model`, `isolated` or `split_part`.
    pub target: String,
    /// Measured median, µs.
    pub measured_us: f64,
    /// Predicted, µs.
    pub predicted_us: f64,
}

/// Held-out accuracy of one (processor, op kind) in context (the `fit --json` `models` array).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindAccuracy {
    /// The processor.
    pub processor: String,
    /// The op kind.
    pub op_kind: String,
    /// In-context samples the stored model was fitted on.
    pub samples: usize,
    /// Held-out predictions the figures below come from (k-fold over ops).
    pub held_out: usize,
    /// Mean absolute percentage error, percent.
    pub mape: f64,
    /// Share within ±10 %.
    pub within_10pct: f64,
    /// Where the stored model's base comes from: `own`, `family:<name>` or `all`.
    pub base_from: String,
    /// Set when the kind had too few samples and falls back to a coarser model.
    pub fallback_of: Option<String>,
    /// Whether the stored model predicts from the reference processor's prediction
    /// ([`crate::Term::Reference`]), through its own base or its family's.
    pub uses_reference: bool,
}

/// Held-out accuracy of one slice of the predictions (a context, a size class).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SliceAccuracy {
    /// What the slice holds.
    pub slice: String,
    /// The accuracy.
    #[serde(flatten)]
    pub accuracy: Accuracy,
}

/// A whole model's latency on one processor, predicted by models fitted without it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LeftOutModel {
    /// The model left out.
    pub model: String,
    /// The processor.
    pub processor: String,
    /// The stage model over the ops' predicted in-context times, ms.
    pub predicted_ms: f64,
    /// The measured whole-model median, ms.
    pub measured_ms: f64,
    /// Signed relative error, (predicted - measured) / measured.
    pub error: f64,
    /// Where the error comes from: per op kind, the in-context predictions against the in-context
    /// timings of the model's ops of that kind, largest error first.
    #[serde(default)]
    pub kinds: Vec<KindShare>,
    /// The ops mispredicted by the most time, in context, worst first (at most [`WORST_OPS`]).
    #[serde(default)]
    pub worst_ops: Vec<HeldOut>,
}

/// How many ops [`LeftOutModel::worst_ops`] names.
pub const WORST_OPS: usize = 5;

/// One op kind's share of a left-out model's predicted and measured in-context time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KindShare {
    /// The op kind.
    pub kind: String,
    /// The model's ops of this kind.
    pub ops: usize,
    /// Their predicted in-context times, summed, ms.
    pub predicted_ms: f64,
    /// Their measured in-context times, summed, ms.
    pub measured_ms: f64,
}

/// Leave-one-model-out in summary.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct LeaveOneModelOut {
    /// (model, processor) pairs predicted.
    pub pairs: usize,
    /// Share of pairs within ±10 %.
    pub within_10pct: f64,
    /// Mean absolute percentage error over pairs.
    pub mape: f64,
    /// Op-level accuracy of the same predictions (in context).
    pub ops: Accuracy,
    /// Op-level accuracy for ops measured above 50 µs.
    pub ops_above_50us: Accuracy,
}

/// Everything a fit produces: the models, and how well they predict data they were not fitted on.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FitReport {
    /// The models, fitted on all the data.
    pub models: CostModels,
    /// Per (processor, kind), in context, k-fold held out.
    pub kinds: Vec<KindAccuracy>,
    /// All in-context op predictions, k-fold held out.
    pub overall: Accuracy,
    /// Slices of the k-fold predictions: per context and split parts, and in-context ops above 50 µs
    /// (all, and per processor).
    pub slices: Vec<SliceAccuracy>,
    /// Per left-out model and processor.
    pub leave_one_model_out: Vec<LeftOutModel>,
    /// Its summary.
    pub leave_one_model_out_summary: LeaveOneModelOut,
    /// Per processor, how well split parts timed inside plan runs are predicted, before and after
    /// the in-plan calibration (empty until a plan with splits has run).
    #[serde(default)]
    pub in_plan: Vec<PlanPartAccuracy>,
    /// The same for whole-op stages and `single:` baselines timed in plan runs, before and after the
    /// whole-stage calibration (`parts` counts them; `standalone` is the stage model's prediction).
    #[serde(default)]
    pub whole_in_plan: Vec<PlanPartAccuracy>,
    /// The ceiling the measurements leave for any op model: in-context ops above 50 µs that have
    /// identical twins (same model, processor, kind and counts), each predicted by its twins'
    /// median. Their timings differ only by where in the model they ran and by noise.
    #[serde(default)]
    pub repeatability: Accuracy,
    /// Every held-out prediction of the k-fold evaluation.
    #[serde(skip)]
    pub held_out: Vec<HeldOut>,
    /// Seconds spent fitting the final models.
    pub fit_s: f64,
    /// Seconds spent on the held-out evaluation.
    pub evaluate_s: f64,
}

/// How well one processor's split parts inside plan runs are predicted.
///
/// `standalone` is what the planner predicted before calibration (the op models fitted on
/// everything, since a model is always profiled before it is planned). `calibrated` adds the in-plan
/// calibration fitted on the *other* models' plan runs (leave-one-model-out over the parts), so it
/// says how well the calibration carries over to a model whose plans have never run; `None` until
/// plans of two models have run on the processor. `own` is each model's own calibration, as
/// re-planning a model that has run uses it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanPartAccuracy {
    /// The processor.
    pub processor: String,
    /// Split parts timed inside plan runs.
    pub parts: usize,
    /// Models whose plans ran.
    pub models: usize,
    /// Predictions without the in-plan calibration.
    pub standalone: Accuracy,
    /// Predictions with a calibration fitted without the part's model.
    pub calibrated: Option<Accuracy>,
    /// Median of measured / standalone prediction (how much slower parts run inside plans).
    pub median_ratio: f64,
    /// Time mispredicted, as a share of the time measured (Σ |predicted - measured| / Σ measured,
    /// percent): what a plan's latency, a sum of stage and part times, feels. Stand-alone predictions.
    #[serde(default)]
    pub standalone_time_error_pct: f64,
    /// The same with the calibration held out by model.
    #[serde(default)]
    pub calibrated_time_error_pct: Option<f64>,
    /// The same with each model's own calibration, held out 2-fold over its parts.
    #[serde(default)]
    pub own_time_error_pct: Option<f64>,
    /// Predictions with a calibration fitted on the same model's other parts (2-fold over its
    /// distinct parts, dealt alternately), as re-planning a model that has run uses: `None` where no
    /// model has enough parts (twice [`crate::MIN_OWN_PARTS`] in all, and that many in each half).
    #[serde(default)]
    pub own: Option<Accuracy>,
    /// The same, per model.
    #[serde(default)]
    pub own_models: Vec<OwnCalibration>,
}

/// How well a model's own in-plan calibration predicts its split parts on one processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OwnCalibration {
    /// The model.
    pub model: String,
    /// Its parts timed on the processor.
    pub parts: usize,
    /// Median of measured / standalone prediction over them.
    pub median_ratio: f64,
    /// 2-fold held out over its parts.
    pub accuracy: Accuracy,
    /// Σ |predicted - measured| and Σ measured of those predictions, µs.
    #[serde(skip)]
    time: (f64, f64),
}

/// Σ |predicted - measured| and Σ measured over `(predicted, measured)` pairs.
fn time_miss(pairs: impl Iterator<Item = (f64, f64)>) -> (f64, f64) {
    pairs.fold((0.0, 0.0), |(miss, total), (p, m)| (miss + (p - m).abs(), total + m))
}

fn pct_of((miss, total): (f64, f64)) -> f64 {
    if total > 0.0 { 100.0 * miss / total } else { 0.0 }
}

/// Accuracy of the predictions of calibration `which` (split parts, or whole stages and baselines,
/// timed inside plan runs), per processor (see [`PlanPartAccuracy`]); `all` are the models fitted on
/// everything.
fn plan_part_accuracy(p: &Prepared, all: &[ProcessorModels], which: Calibration) -> Vec<PlanPartAccuracy> {
    let model_of = match which {
        Calibration::Parts => &p.plan_part_model,
        Calibration::Stages => &p.plan_stage_model,
    };
    if model_of.is_empty() {
        return vec![];
    }
    let mut with_samples: Vec<usize> = model_of.clone();
    with_samples.sort();
    with_samples.dedup();
    // Per left-out model, the calibrations refitted without its runs.
    let held: Vec<Vec<ProcessorModels>> = if with_samples.len() >= 2 {
        with_samples
            .iter()
            .map(|&m| {
                let mut fitted = all.to_vec();
                p.fit_calibration(which, &mut fitted, &|mm| mm != m);
                fitted
            })
            .collect()
    } else {
        vec![]
    };
    let mut out = vec![];
    for (i, pm) in all.iter().enumerate() {
        let mine = p.run_points(which, all, i, &|_| true);
        if mine.is_empty() {
            continue;
        }
        let standalone: Vec<(f64, f64)> = mine.iter().map(|(_, _, q)| (q.ops_sum_us, q.measured_us)).collect();
        let calibrated_pairs: Option<Vec<(f64, f64)>> = (!held.is_empty()).then(|| {
            let mut pairs = vec![];
            for (h, &m) in held.iter().zip(&with_samples) {
                let cal = which.of(&h[i]);
                pairs.extend(p.run_points(which, h, i, &|mm| mm == m).iter().map(|(_, _, q)| (cal.predict(q.ops_sum_us, q.ops as usize), q.measured_us)));
            }
            pairs
        });
        let calibrated = calibrated_pairs.as_ref().map(|c| Accuracy::of(c.iter().copied()));
        let ratios: Vec<f64> = standalone.iter().map(|(pred, measured)| measured / pred).collect();
        let mut models: Vec<usize> = mine.iter().map(|(m, _, _)| *m).collect();
        models.sort();
        models.dedup();
        let own_models: Vec<OwnCalibration> = models.iter().filter_map(|&m| own_calibration(p, all, i, m, which)).collect();
        let own = (!own_models.is_empty()).then(|| {
            let n: usize = own_models.iter().map(|o| o.accuracy.n).sum();
            let weighted = |f: &dyn Fn(&Accuracy) -> f64| own_models.iter().map(|o| f(&o.accuracy) * o.accuracy.n as f64).sum::<f64>() / n as f64;
            Accuracy { n, mape: weighted(&|a| a.mape), within_10pct: weighted(&|a| a.within_10pct) }
        });
        out.push(PlanPartAccuracy {
            processor: pm.processor.clone(),
            parts: mine.len(),
            models: models.len(),
            standalone: Accuracy::of(standalone.iter().copied()),
            calibrated,
            median_ratio: median(ratios),
            standalone_time_error_pct: pct_of(time_miss(standalone.iter().copied())),
            calibrated_time_error_pct: calibrated_pairs.map(|c| pct_of(time_miss(c.into_iter()))),
            own_time_error_pct: (!own_models.is_empty())
                .then(|| pct_of(own_models.iter().fold((0.0, 0.0), |(a, b), o| (a + o.time.0, b + o.time.1)))),
            own,
            own_models,
        });
    }
    out
}

/// Model `m`'s own calibration `which` on processor `index`, held out: each fold of its samples
/// predicted by a calibration fitted on the other folds (for parts two halves, for whole stages one
/// fold per run, see below); `None` with fewer than two folds, or fewer than
/// [`Calibration::min_own`] samples in or out of any fold. The same part timed in several runs stays
/// in one half, so nothing is predicted from its own timing.
fn own_calibration(p: &Prepared, all: &[ProcessorModels], index: usize, m: usize, which: Calibration) -> Option<OwnCalibration> {
    let min = which.min_own();
    let points = p.run_points(which, all, index, &|mm| mm == m);
    // The folds. Parts: distinct parts dealt to two halves alternately, in the order they first
    // appear. Whole stages: one fold per run, each predicted from the model's other runs (its few
    // stages are of unlike sizes, the baselines much the largest, so halves of one run would
    // predict one size from another), as re-planning after a run does.
    let fold_of: Vec<u64> = match which {
        Calibration::Parts => {
            let mut seen: Vec<Vec<u64>> = vec![];
            points
                .iter()
                .map(|&(_, k, _)| {
                    let id = p.part_identity(k);
                    let rank = seen.iter().position(|x| *x == id).unwrap_or_else(|| {
                        seen.push(id);
                        seen.len() - 1
                    });
                    (rank % 2) as u64
                })
                .collect()
        }
        Calibration::Stages => points.iter().map(|&(_, k, _)| p.set.plan_stages[k].run as u64).collect(),
    };
    let mut folds = fold_of.clone();
    folds.sort();
    folds.dedup();
    let of_fold = |f: u64, inside: bool| -> Vec<StagePoint> { points.iter().zip(&fold_of).filter(|(_, &g)| (g == f) == inside).map(|((_, _, q), _)| *q).collect() };
    if folds.len() < 2 || folds.iter().any(|&f| of_fold(f, false).len() < min || of_fold(f, true).len() < min) {
        return None;
    }
    let mut pairs = vec![];
    for &f in &folds {
        let model = which.fit_own(&of_fold(f, false));
        pairs.extend(of_fold(f, true).iter().map(|q| (model.predict(q.ops_sum_us, q.ops as usize), q.measured_us)));
    }
    Some(OwnCalibration {
        model: p.models[m].clone(),
        parts: points.len(),
        median_ratio: median(points.iter().map(|(_, _, q)| q.measured_us / q.ops_sum_us).collect()),
        accuracy: Accuracy::of(pairs.iter().copied()),
        time: time_miss(pairs.into_iter()),
    })
}

/// The median of the finite values (1 when there are none).
fn median(mut v: Vec<f64>) -> f64 {
    v.retain(|x| x.is_finite());
    v.sort_by(f64::total_cmp);
    v.get(v.len() / 2).copied().unwrap_or(1.0)
}

fn target_of(s: &crate::sample::OpSample) -> &'static str {
    match (s.context, s.part.is_some()) {
        (_, true) => "split_part",
        (Context::InModel, false) => "in_model",
        (Context::Isolated, false) => "isolated",
    }
}

fn predict_row(p: &Prepared, fitted: &[ProcessorModels], row: usize) -> HeldOut {
    let r = &p.rows[row];
    let s = &p.set.ops[r.sample];
    let index = fitted.iter().position(|m| m.processor == s.processor).expect("every processor with rows is fitted");
    HeldOut {
        model: s.model.clone(),
        op_id: s.op_id,
        processor: s.processor.clone(),
        kind: s.op.kind.clone(),
        target: target_of(s).to_string(),
        measured_us: s.median_us,
        predicted_us: match s.part {
            Some(part) => crate::models::predict_part_in(fitted, index, &s.op, part, s.context),
            None => crate::models::predict_in(fitted, index, &r.features, s.context),
        },
    }
}

/// Held-out predictions of every row, k-fold over ops.
fn k_fold(p: &Prepared, opts: &FitOptions) -> Vec<HeldOut> {
    let folds = opts.folds.clamp(2, p.ops.max(2));
    // Seeded, so that folds are the same on every run.
    let order = crate::synthetic::Rng(opts.seed).shuffled(p.ops);
    let mut fold_of_op = vec![0; p.ops];
    for (pos, &op) in order.iter().enumerate() {
        fold_of_op[op] = pos % folds;
    }
    let fold_of_row = |i: usize| fold_of_op[p.op_of_row[i]];
    let run = |f: usize| -> Vec<HeldOut> {
        let fitted = p.fit(&|i| fold_of_row(i) != f, &|_| true, opts);
        (0..p.rows.len()).filter(|&i| fold_of_row(i) == f).map(|i| predict_row(p, &fitted, i)).collect()
    };
    in_parallel(folds, &run)
}

/// Leave-one-model-out: op predictions and whole-model predictions.
fn leave_one_model_out(p: &Prepared, opts: &FitOptions) -> (Vec<HeldOut>, Vec<LeftOutModel>) {
    let with_rows: Vec<usize> =
        (0..p.models.len()).filter(|&m| !p.training_only[m] && p.rows.iter().any(|r| r.model == m)).collect();
    if with_rows.len() < 2 {
        return (vec![], vec![]);
    }
    let run = |k: usize| -> (Vec<HeldOut>, Vec<LeftOutModel>) {
        let m = with_rows[k];
        let fitted = p.fit(&|i| p.rows[i].model != m, &|mm| mm != m, opts);
        let ops: Vec<HeldOut> = (0..p.rows.len()).filter(|&i| p.rows[i].model == m).map(|i| predict_row(p, &fitted, i)).collect();
        let mut whole = vec![];
        for ms in p.set.models.iter().filter(|x| x.model == p.models[m]) {
            let Some(pm) = fitted.iter().find(|f| f.processor == ms.processor) else { continue };
            let mine: Vec<&HeldOut> = ops.iter().filter(|h| h.processor == ms.processor && h.target == "in_model").collect();
            if mine.is_empty() {
                continue;
            }
            let sum: f64 = mine.iter().map(|h| h.predicted_us).sum();
            let predicted = pm.stage.predict(sum, mine.len());
            whole.push(LeftOutModel {
                model: ms.model.clone(),
                processor: ms.processor.clone(),
                predicted_ms: predicted / 1e3,
                measured_ms: ms.median_us / 1e3,
                error: (predicted - ms.median_us) / ms.median_us,
                kinds: kind_shares(&mine),
                worst_ops: worst_ops(&mine),
            });
        }
        (ops, whole)
    };
    let parts = in_parallel_pairs(with_rows.len(), &run);
    let mut ops = vec![];
    let mut whole = vec![];
    for (o, w) in parts {
        ops.extend(o);
        whole.extend(w);
    }
    (ops, whole)
}

/// The held-out predictions summed per op kind, the kind mispredicted by the most time first.
fn kind_shares(held: &[&HeldOut]) -> Vec<KindShare> {
    let mut by_kind: std::collections::BTreeMap<&str, KindShare> = std::collections::BTreeMap::new();
    for h in held {
        let e = by_kind.entry(h.kind.as_str()).or_insert_with(|| KindShare { kind: h.kind.clone(), ops: 0, predicted_ms: 0.0, measured_ms: 0.0 });
        e.ops += 1;
        e.predicted_ms += h.predicted_us / 1e3;
        e.measured_ms += h.measured_us / 1e3;
    }
    let mut shares: Vec<KindShare> = by_kind.into_values().collect();
    shares.sort_by(|a, b| (b.predicted_ms - b.measured_ms).abs().total_cmp(&(a.predicted_ms - a.measured_ms).abs()));
    shares
}

/// [`FitReport::repeatability`]: each in-context whole op above 50 µs with identical twins in its
/// model, predicted by the median of the twins' timings.
fn repeatability(p: &Prepared) -> Accuracy {
    let mut twins: std::collections::HashMap<(usize, &str, &str, Vec<u64>), Vec<f64>> = std::collections::HashMap::new();
    for r in &p.rows {
        let s = &p.set.ops[r.sample];
        if s.context != Context::InModel || s.part.is_some() {
            continue;
        }
        let key = (r.model, s.processor.as_str(), s.op.kind.as_str(), r.coords.iter().map(|c| c.to_bits()).collect());
        twins.entry(key).or_default().push(r.y);
    }
    let pairs = twins.values().filter(|t| t.len() > 1).flat_map(|t| {
        t.iter().enumerate().filter(|(_, &y)| y > 50.0).map(move |(i, &y)| {
            let mut others: Vec<f64> = t.iter().enumerate().filter(|&(j, _)| j != i).map(|(_, &v)| v).collect();
            others.sort_by(f64::total_cmp);
            let mid = others.len() / 2;
            let m = if others.len() % 2 == 0 { 0.5 * (others[mid - 1] + others[mid]) } else { others[mid] };
            (m, y)
        })
    });
    Accuracy::of(pairs)
}

/// The held-out predictions off by the most time, worst first.
fn worst_ops(held: &[&HeldOut]) -> Vec<HeldOut> {
    let mut all: Vec<&HeldOut> = held.to_vec();
    all.sort_by(|a, b| (b.predicted_us - b.measured_us).abs().total_cmp(&(a.predicted_us - a.measured_us).abs()));
    all.into_iter().take(WORST_OPS).cloned().collect()
}

/// Runs `f(0..n)` on up to as many threads as the machine has cores, concatenating the results in order.
fn in_parallel(n: usize, f: &(dyn Fn(usize) -> Vec<HeldOut> + Sync)) -> Vec<HeldOut> {
    in_parallel_pairs(n, &|i| f(i)).into_iter().flatten().collect()
}

fn in_parallel_pairs<T: Send>(n: usize, f: &(dyn Fn(usize) -> T + Sync)) -> Vec<T> {
    let threads = std::thread::available_parallelism().map(|t| t.get()).unwrap_or(1).min(n).max(1);
    let next = std::sync::atomic::AtomicUsize::new(0);
    let mut results: Vec<(usize, T)> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    let mut out = vec![];
                    loop {
                        let i = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        if i >= n {
                            break;
                        }
                        out.push((i, f(i)));
                    }
                    out
                })
            })
            .collect();
        handles.into_iter().flat_map(|h| h.join().expect("an evaluation thread panicked")).collect()
    });
    results.sort_by_key(|(i, _)| *i);
    results.into_iter().map(|(_, t)| t).collect()
}

/// The held-out predictions as a frame: one row per prediction, with its absolute relative error and
/// whether it is within ±10 %.
fn frame(held: &[HeldOut]) -> Result<DataFrame, CostError> {
    let ape: Vec<f64> = held.iter().map(|h| ((h.predicted_us - h.measured_us) / h.measured_us).abs()).collect();
    Ok(df!(
        "processor" => held.iter().map(|h| h.processor.as_str()).collect::<Vec<_>>(),
        "kind" => held.iter().map(|h| h.kind.as_str()).collect::<Vec<_>>(),
        "target" => held.iter().map(|h| h.target.as_str()).collect::<Vec<_>>(),
        "measured_us" => held.iter().map(|h| h.measured_us).collect::<Vec<_>>(),
        "ape" => &ape,
        "within" => ape.iter().map(|&e| if e <= 0.1 { 1.0 } else { 0.0 }).collect::<Vec<f64>>(),
    )?)
}

/// Accuracy aggregations of a frame of predictions.
fn accuracy_exprs() -> [Expr; 3] {
    [len().cast(DataType::Float64).alias("n"), (col("ape").mean() * lit(100.0)).alias("mape"), col("within").mean().alias("within_10pct")]
}

/// Group-by `keys` over the predictions: one row per group with n, mape, within_10pct.
fn grouped(df: &DataFrame, filter: Option<Expr>, keys: &[&str]) -> Result<Vec<(Vec<String>, Accuracy)>, CostError> {
    let mut lf = df.clone().lazy();
    if let Some(f) = filter {
        lf = lf.filter(f);
    }
    let out = if keys.is_empty() {
        lf.select(accuracy_exprs()).collect()?
    } else {
        lf.group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
            .agg(accuracy_exprs())
            .sort(keys.iter().map(|k| k.to_string()).collect::<Vec<_>>(), SortMultipleOptions::default())
            .collect()?
    };
    let n = out.column("n")?.f64()?;
    let mape = out.column("mape")?.f64()?;
    let within = out.column("within_10pct")?.f64()?;
    let key_cols: Vec<&StringChunked> = keys.iter().map(|k| out.column(k).and_then(|c| c.str())).collect::<PolarsResult<_>>()?;
    let mut rows = vec![];
    for i in 0..out.height() {
        let count = n.get(i).unwrap_or(0.0) as usize;
        if count == 0 {
            continue;
        }
        let key = key_cols.iter().map(|c| c.get(i).unwrap_or_default().to_string()).collect();
        rows.push((key, Accuracy { n: count, mape: mape.get(i).unwrap_or(0.0), within_10pct: within.get(i).unwrap_or(0.0) }));
    }
    Ok(rows)
}

fn one(df: &DataFrame, filter: Expr) -> Result<Accuracy, CostError> {
    Ok(grouped(df, Some(filter), &[])?.into_iter().next().map(|(_, a)| a).unwrap_or_default())
}

/// Fits every model of the device on all of `set`, and measures their accuracy on held-out data
/// (k-fold over ops, and leave-one-model-out). The models' version is 0 until the caller stores them.
pub fn fit_and_evaluate(device: &str, set: &TrainingSet, opts: &FitOptions) -> Result<FitReport, CostError> {
    let prepared = Prepared::new(set)?;
    let started = Instant::now();
    let processors = prepared.fit(&|_| true, &|_| true, opts);
    let models = CostModels { device: device.to_string(), version: 0, processors, transfers: TransferModels::fit(&set.transfers), speed: set.typical_reference_us.clone() };
    if !models.is_valid() {
        return Err(CostError::NotFinite("the fitted models".into()));
    }
    let fit_s = started.elapsed().as_secs_f64();

    let started = Instant::now();
    let held = k_fold(&prepared, opts);
    let (lomo_ops, lomo_whole) = leave_one_model_out(&prepared, opts);
    let in_plan = plan_part_accuracy(&prepared, &models.processors, Calibration::Parts);
    let whole_in_plan = plan_part_accuracy(&prepared, &models.processors, Calibration::Stages);
    let df = frame(&held)?;
    let in_model = col("target").eq(lit("in_model"));
    let big = col("measured_us").gt(lit(50.0));

    let mut kinds = vec![];
    for (key, acc) in grouped(&df, Some(in_model.clone()), &["processor", "kind"])? {
        let (processor, kind) = (&key[0], &key[1]);
        let stored = models.processor(processor).and_then(|p| p.in_model.kinds.get(kind.as_str()));
        kinds.push(KindAccuracy {
            processor: processor.clone(),
            op_kind: kind.clone(),
            samples: stored.map(|m| m.samples).unwrap_or(0),
            held_out: acc.n,
            mape: acc.mape,
            within_10pct: acc.within_10pct,
            base_from: stored.map(|m| m.base_from.clone()).unwrap_or_default(),
            fallback_of: stored.and_then(|m| m.fallback_of.clone()),
            uses_reference: stored.is_some_and(|m| m.uses_reference()),
        });
    }
    let overall = one(&df, in_model.clone())?;
    let mut slices: Vec<SliceAccuracy> =
        grouped(&df, None, &["target"])?.into_iter().map(|(k, accuracy)| SliceAccuracy { slice: k[0].clone(), accuracy }).collect();
    slices.push(SliceAccuracy { slice: "in_model above 50 µs".into(), accuracy: one(&df, in_model.clone().and(big.clone()))? });
    for (key, accuracy) in grouped(&df, Some(in_model.clone().and(big.clone())), &["processor"])? {
        slices.push(SliceAccuracy { slice: format!("in_model above 50 µs on {}", key[0]), accuracy });
    }

    let lomo_df = frame(&lomo_ops)?;
    let summary = LeaveOneModelOut {
        pairs: lomo_whole.len(),
        within_10pct: if lomo_whole.is_empty() { 0.0 } else { lomo_whole.iter().filter(|w| w.error.abs() <= 0.1).count() as f64 / lomo_whole.len() as f64 },
        mape: if lomo_whole.is_empty() { 0.0 } else { 100.0 * lomo_whole.iter().map(|w| w.error.abs()).sum::<f64>() / lomo_whole.len() as f64 },
        ops: if lomo_ops.is_empty() { Accuracy::default() } else { one(&lomo_df, in_model.clone())? },
        ops_above_50us: if lomo_ops.is_empty() { Accuracy::default() } else { one(&lomo_df, in_model.and(big))? },
    };
    let repeatability = repeatability(&prepared);
    let evaluate_s = started.elapsed().as_secs_f64();
    let report = FitReport {
        models,
        kinds,
        overall,
        slices,
        leave_one_model_out: lomo_whole,
        leave_one_model_out_summary: summary,
        in_plan,
        whole_in_plan,
        repeatability,
        held_out: held,
        fit_s,
        evaluate_s,
    };
    if !report.is_valid() {
        return Err(CostError::NotFinite("the accuracy figures".into()));
    }
    Ok(report)
}

impl FitReport {
    /// Whether every number is finite.
    pub fn is_valid(&self) -> bool {
        let acc = |a: &Accuracy| a.mape.is_finite() && a.within_10pct.is_finite();
        self.models.is_valid()
            && self.kinds.iter().all(|k| k.mape.is_finite() && k.within_10pct.is_finite())
            && acc(&self.overall)
            && self.slices.iter().all(|s| acc(&s.accuracy))
            && self.leave_one_model_out.iter().all(|l| l.predicted_ms.is_finite() && l.measured_ms.is_finite() && l.error.is_finite() && l.kinds.iter().all(|k| k.predicted_ms.is_finite() && k.measured_ms.is_finite()))
            && acc(&self.leave_one_model_out_summary.ops)
            && acc(&self.repeatability)
            && self.in_plan.iter().chain(&self.whole_in_plan).all(|a| {
                acc(&a.standalone) && a.calibrated.as_ref().is_none_or(acc) && a.own.as_ref().is_none_or(acc) && a.median_ratio.is_finite() && a.own_models.iter().all(|o| acc(&o.accuracy) && o.median_ratio.is_finite())
            })
    }
}
