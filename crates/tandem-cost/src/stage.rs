//! Stage models: how the time of a stage (ops run together as one model on one processor) relates to
//! the sum of its ops' in-context times.
//!
//! A stage costs more than its ops' timed sum: every run has a fixed cost (dispatch, input and output
//! handling), and the time between ops is not inside any op's timer. Summed in-context times can also
//! over-count (the hook's own overhead). Which of these matter is a property of the processor and its
//! runtime, so the form is chosen by the data: per processor, several forms are fitted to the whole-model
//! timings and the one with the smallest leave-one-model-out error is kept.

use serde::{Deserialize, Serialize};

use crate::solve::Problem;

/// One stage timing with what the op models see of it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StagePoint {
    /// Sum of the stage's ops' in-context medians, microseconds.
    pub ops_sum_us: f64,
    /// Number of ops.
    pub ops: f64,
    /// The stage's own median, microseconds.
    pub measured_us: f64,
}

/// How the errors of a stage model's fit are weighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Weighting {
    /// Every timing counts alike, by its relative error: whole models, of similar standing however
    /// long they run.
    Relative,
    /// Every microsecond counts alike: stages inside a plan, from a few µs to many ms, where a plan's
    /// latency is their sum along its critical path. A relative fit there is ruled by the shortest
    /// stages, and a factor fitted so lands well below the ratio of the time measured to the time
    /// predicted (0.95 against a median of 1.66 on mobilenet_v2's parts on one run).
    Time,
}

/// The forms a stage model can take.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StageForm {
    /// `stage = ops_sum`: no data to say otherwise.
    Sum,
    /// `stage = factor · ops_sum`.
    Factor,
    /// `stage = fixed + factor · ops_sum`.
    FixedFactor,
    /// `stage = fixed + factor · ops_sum + per_op · ops`.
    FixedFactorPerOp,
}

impl StageForm {
    const FITTED: [StageForm; 3] = [StageForm::Factor, StageForm::FixedFactor, StageForm::FixedFactorPerOp];

    /// Fewest stage timings the form needs before it is considered.
    fn min_points(self) -> usize {
        match self {
            StageForm::Sum => 0,
            StageForm::Factor => 1,
            StageForm::FixedFactor => 3,
            StageForm::FixedFactorPerOp => 5,
        }
    }
}

/// `stage_us = fixed_us + factor · Σ ops' in-context µs + per_op_us · ops`, all non-negative.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageModel {
    /// The chosen form.
    pub form: StageForm,
    /// Fixed cost of one stage run.
    pub fixed_us: f64,
    /// Multiplies the sum of the ops' in-context times.
    pub factor: f64,
    /// Cost per op beyond its own time.
    pub per_op_us: f64,
    /// Stage timings it was fitted on (whole models).
    pub samples: usize,
    /// Leave-one-model-out mean absolute percentage error of each form tried (the chosen one is the
    /// smallest); empty when there were too few timings to compare.
    pub tried: Vec<(StageForm, f64)>,
}

impl Default for StageModel {
    fn default() -> Self {
        StageModel { form: StageForm::Sum, fixed_us: 0.0, factor: 1.0, per_op_us: 0.0, samples: 0, tried: vec![] }
    }
}

impl StageModel {
    /// The predicted stage time from the sum of its ops' predicted in-context times.
    #[inline]
    pub fn predict(&self, ops_sum_us: f64, ops: usize) -> f64 {
        self.fixed_us + self.factor * ops_sum_us + self.per_op_us * ops as f64
    }

    /// Whether every number is finite.
    pub fn is_valid(&self) -> bool {
        [self.fixed_us, self.factor, self.per_op_us].iter().all(|v| v.is_finite() && *v >= 0.0) && self.tried.iter().all(|t| t.1.is_finite())
    }

    /// Fits `form` itself, with the errors weighted as `weighting` says (the identity without points).
    pub fn fit_form(form: StageForm, points: &[StagePoint], weighting: Weighting) -> StageModel {
        let mut m = StageModel { form, samples: points.len(), ..Default::default() };
        if form == StageForm::Sum || points.is_empty() {
            m.form = StageForm::Sum;
            return m;
        }
        let row = |p: &StagePoint| -> [f64; 3] {
            match form {
                StageForm::Factor => [0.0, p.ops_sum_us, 0.0],
                StageForm::FixedFactor => [1.0, p.ops_sum_us, 0.0],
                _ => [1.0, p.ops_sum_us, p.ops],
            }
        };
        let mut prob = Problem::new(3);
        for p in points {
            let w = match weighting {
                Weighting::Relative => 1.0 / (p.measured_us * p.measured_us),
                Weighting::Time => 1.0 / p.ops_sum_us.max(p.measured_us * 1e-3),
            };
            prob.add(&row(p), p.measured_us, w);
        }
        let c = prob.nnls();
        m.fixed_us = c[0];
        m.factor = c[1];
        m.per_op_us = c[2];
        m
    }

    /// Fits every form the data supports and keeps the one with the smallest leave-one-out error;
    /// with fewer than three timings there is nothing to compare, and the simplest fitting form is used.
    pub fn fit(points: &[StagePoint]) -> StageModel {
        StageModel::fit_weighted(points, Weighting::Relative)
    }

    /// [`StageModel::fit`] with the errors weighted as `weighting` says, in the fit and in the
    /// leave-one-out choice of the form.
    pub fn fit_weighted(points: &[StagePoint], weighting: Weighting) -> StageModel {
        let forms: Vec<StageForm> = StageForm::FITTED.iter().copied().filter(|f| points.len() >= f.min_points()).collect();
        if points.len() < 3 {
            return StageModel::fit_form(forms.first().copied().unwrap_or(StageForm::Sum), points, weighting);
        }
        let mut tried = vec![];
        for &form in &forms {
            let (mut err, mut total) = (0.0, 0.0);
            for i in 0..points.len() {
                let rest: Vec<StagePoint> = points.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, p)| *p).collect();
                let m = StageModel::fit_form(form, &rest, weighting);
                let p = &points[i];
                let miss = (m.predict(p.ops_sum_us, p.ops as usize) - p.measured_us).abs();
                match weighting {
                    Weighting::Relative => (err, total) = (err + miss / p.measured_us, total + 1.0),
                    Weighting::Time => (err, total) = (err + miss, total + p.measured_us),
                }
            }
            tried.push((form, 100.0 * err / total));
        }
        // Prefer the simpler form unless the richer one is clearly (by a tenth) better held out.
        let mut best = tried[0];
        for &t in &tried[1..] {
            if t.1 < 0.9 * best.1 {
                best = t;
            }
        }
        let mut m = StageModel::fit_form(best.0, points, weighting);
        m.tried = tried;
        m
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_a_fixed_cost_and_a_factor() {
        let points: Vec<StagePoint> = (1..12)
            .map(|i| {
                let sum = 300.0 * i as f64;
                StagePoint { ops_sum_us: sum, ops: 20.0 + i as f64, measured_us: 80.0 + 1.05 * sum }
            })
            .collect();
        let m = StageModel::fit(&points);
        assert!(matches!(m.form, StageForm::FixedFactor | StageForm::FixedFactorPerOp), "{m:?}");
        assert!((m.predict(1000.0, 25) - 1130.0).abs() < 5.0, "{m:?}");
        // Too little data: the plain sum, or a factor.
        assert_eq!(StageModel::fit(&[]).form, StageForm::Sum);
        assert_eq!(StageModel::fit(&points[..1]).form, StageForm::Factor);
    }
}
