//! The base model of an op kind: time as a non-negative sum of work terms, fitted on relative error.
//!
//! `µs = Σ coef_t · term_t(op)`, every coefficient ≥ 0, so each term is a cost (a fixed cost, a cost
//! per multiply-add, per byte read, ...) and the model never predicts a negative time or a time that
//! falls when work grows. The fit minimises `Σ ln²(predicted / measured)`: every op counts by its
//! relative error whatever its size, and over- and under-prediction by the same factor cost the same
//! (a plain relative least-squares fit punishes over-predicting a 1 µs op far more than under-predicting
//! a 1 ms one, and lets the smallest ops decide the fit). It is solved by Gauss–Newton steps, each a
//! non-negative least-squares problem, from a start weighted by 1/measured.

use serde::{Deserialize, Serialize};

use crate::sample::OpFeatures;
use crate::solve::Problem;
use crate::term::Term;

/// The smallest time a model predicts, µs: no op runs in less.
pub const FLOOR_US: f64 = 0.01;

/// One term and its cost.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Coef {
    /// The term.
    pub term: Term,
    /// Microseconds per unit of the term.
    pub us: f64,
}

/// `µs = Σ coef · term`, coefficients non-negative.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct AdditiveModel {
    /// The terms with a non-zero cost.
    pub terms: Vec<Coef>,
}

impl AdditiveModel {
    /// The predicted time, µs (at least [`FLOOR_US`]), of a model without a [`Term::Reference`].
    #[inline]
    pub fn predict(&self, f: &OpFeatures) -> f64 {
        self.predict_with(f, 0.0)
    }

    /// The predicted time, µs, given the reference processor's prediction for the op (the value of
    /// [`Term::Reference`]).
    #[inline]
    pub fn predict_with(&self, f: &OpFeatures, reference_us: f64) -> f64 {
        let mut t = 0.0;
        for c in &self.terms {
            t += c.us * c.term.value_with(f, reference_us);
        }
        t.max(FLOOR_US)
    }

    /// Whether the model uses the reference processor's prediction.
    #[inline]
    pub fn uses_reference(&self) -> bool {
        self.terms.iter().any(|c| c.term.is_reference())
    }

    /// Fits the model on `(term values, measured µs)` rows; `values[i]` holds the values of `terms`
    /// for row i. With no rows, the model is empty (it predicts the floor).
    pub(crate) fn fit(terms: &[Term], values: &[&[f64]], measured: &[f64]) -> AdditiveModel {
        let c = fit_log(values, measured, terms.len());
        AdditiveModel { terms: terms.iter().zip(c).filter(|(_, c)| *c > 0.0).map(|(&term, us)| Coef { term, us }).collect() }
    }

    /// Whether every coefficient is finite and non-negative.
    pub fn is_valid(&self) -> bool {
        self.terms.iter().all(|c| c.us.is_finite() && c.us >= 0.0)
    }
}

#[inline]
fn dot(x: &[f64], c: &[f64]) -> f64 {
    x.iter().zip(c).map(|(a, b)| a * b).sum()
}

/// Mean squared log error of coefficients `c`.
fn objective(values: &[&[f64]], measured: &[f64], c: &[f64]) -> f64 {
    values.iter().zip(measured).map(|(x, &y)| (dot(x, c).max(FLOOR_US) / y).ln().powi(2)).sum()
}

/// Non-negative coefficients minimising `Σ ln²(x·c / y)`.
pub(crate) fn fit_log(values: &[&[f64]], measured: &[f64], dim: usize) -> Vec<f64> {
    if values.is_empty() {
        return vec![0.0; dim];
    }
    // Start: squared error weighted by 1/y, between absolute and relative.
    let mut p = Problem::new(dim);
    for (x, &y) in values.iter().zip(measured) {
        p.add(x, y, 1.0 / y);
    }
    let mut c = p.nnls();
    let mut cur = objective(values, measured, &c);
    for _ in 0..30 {
        // Linearise ln(x·c) around the current prediction p0: ln p0 + x·(c' - c)/p0, so the step solves
        // min Σ (x·c'/p0 - (1 + ln(y/p0)))² with c' ≥ 0.
        let mut p = Problem::new(dim);
        let mut scaled = vec![0.0; dim];
        for (x, &y) in values.iter().zip(measured) {
            let p0 = dot(x, &c).max(FLOOR_US);
            for (s, v) in scaled.iter_mut().zip(x.iter()) {
                *s = v / p0;
            }
            p.add(&scaled, 1.0 + (y / p0).ln(), 1.0);
        }
        let next = p.nnls();
        // Damped: halve the step until the objective does not grow.
        let mut t = 1.0;
        let (mut best, mut best_obj) = (c.clone(), cur);
        while t > 1e-3 {
            let trial: Vec<f64> = c.iter().zip(&next).map(|(a, b)| a + t * (b - a)).collect();
            let o = objective(values, measured, &trial);
            if o <= cur {
                best = trial;
                best_obj = o;
                break;
            }
            t *= 0.5;
        }
        let gain = cur - best_obj;
        c = best;
        cur = best_obj;
        if gain <= 1e-7 * cur.max(1e-12) {
            break;
        }
    }
    c
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn log_fit_recovers_an_exact_additive_relationship() {
        // µs = 3 + 0.002 · macs + 0.0001 · bytes.
        let rows: Vec<[f64; 3]> = (1..60).map(|i| [1.0, (i * i * 997 % 100_000) as f64 + 10.0, (i * 7919 % 50_000) as f64]).collect();
        let y: Vec<f64> = rows.iter().map(|r| 3.0 + 0.002 * r[1] + 0.0001 * r[2]).collect();
        let values: Vec<&[f64]> = rows.iter().map(|r| &r[..]).collect();
        let c = fit_log(&values, &y, 3);
        assert!((c[0] - 3.0).abs() < 1e-3 && (c[1] - 0.002).abs() < 1e-7 && (c[2] - 0.0001).abs() < 1e-8, "{c:?}");
    }
}
