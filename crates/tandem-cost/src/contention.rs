//! Contention factors: how much slower a processor runs while other work shares the device.
//!
//! `tandem profile --contention` times whole models on each processor idle and next to controlled
//! background load, in fixed scenarios (`compute-other`, `memory-other`, `compute-same`,
//! `compute-same-x3`, `memory-same`; see tandem-profile's `contention` module), and stores the ratio
//! loaded / idle. [`ContentionFactors`] condenses those samples into one factor per (processor,
//! scenario), the median over the models measured, so that a prediction for an idle device can be
//! scaled to a busy one. [`ContentionFactors::availability`] gives the two factors the robust planner
//! uses: the processor's cores half available, and heavily loaded.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// The scenario where one compute spinner shares each of the processor's cores: the processor gets about
/// half of each core.
pub const HALF_AVAILABLE: &str = "compute-same";

/// The scenario where three compute spinners share each of the processor's cores: heavily loaded.
pub const HEAVILY_LOADED: &str = "compute-same-x3";

/// The half-available slowdown when none is measured. Under Linux's fair scheduler (CFS) a thread that
/// never sleeps, at the same priority, gets an equal share of the core: the processor's thread gets half,
/// so its work takes twice as long.
pub const DEFAULT_HALF_AVAILABLE: f64 = 2.0;

/// The heavily-loaded slowdown when none is measured: three spinners at equal priority take three quarters
/// of the core, leaving a quarter, so work takes four times as long.
pub const DEFAULT_HEAVILY_LOADED: f64 = 4.0;

/// One measured slowdown: `model` on `processor` under `scenario` took `slowdown` times its idle time.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ContentionSample {
    /// The processor id (`cpu:0`).
    pub processor: String,
    /// The scenario (`compute-same`, ...).
    pub scenario: String,
    /// The model's name or id: samples of several models are combined by their median.
    pub model: String,
    /// Loaded median / idle median.
    pub slowdown: f64,
}

/// One factor per (processor, scenario): the median slowdown over the models measured.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ContentionFactors {
    factors: BTreeMap<(String, String), f64>,
}

impl ContentionFactors {
    /// Condenses samples into factors. A model measured twice under the same (processor, scenario)
    /// counts once, with its last sample; slowdowns that are not positive finite numbers are left out.
    /// The median over models (the mean of the two middle ones for an even count) keeps one odd model
    /// (a tiny one dominated by scheduling noise) from moving the factor.
    pub fn from_samples(samples: &[ContentionSample]) -> ContentionFactors {
        let mut per_model: BTreeMap<(String, String), BTreeMap<&str, f64>> = BTreeMap::new();
        for s in samples.iter().filter(|s| s.slowdown.is_finite() && s.slowdown > 0.0) {
            per_model.entry((s.processor.clone(), s.scenario.clone())).or_default().insert(&s.model, s.slowdown);
        }
        let factors = per_model
            .into_iter()
            .map(|(key, models)| {
                let mut v: Vec<f64> = models.into_values().collect();
                v.sort_by(f64::total_cmp);
                let mid = v.len() / 2;
                let median = if v.len() % 2 == 1 { v[mid] } else { (v[mid - 1] + v[mid]) / 2.0 };
                (key, median)
            })
            .collect();
        ContentionFactors { factors }
    }

    /// The measured factor of `processor` under `scenario`, if any.
    pub fn factor(&self, processor: &str, scenario: &str) -> Option<f64> {
        self.factors.get(&(processor.to_string(), scenario.to_string())).copied()
    }

    /// The (half-available, heavily-loaded) slowdown factors of `processor`: measured under
    /// [`HALF_AVAILABLE`] and [`HEAVILY_LOADED`] where profiled, else [`DEFAULT_HALF_AVAILABLE`] (2.0) and
    /// [`DEFAULT_HEAVILY_LOADED`] (4.0), each on its own. A measured factor below 1 (sharing a core never
    /// makes work faster; such a figure is noise) reads as 1.
    pub fn availability(&self, processor: &str) -> (f64, f64) {
        let measured = |scenario, default: f64| self.factor(processor, scenario).map(|f| f.max(1.0)).unwrap_or(default);
        (measured(HALF_AVAILABLE, DEFAULT_HALF_AVAILABLE), measured(HEAVILY_LOADED, DEFAULT_HEAVILY_LOADED))
    }

    /// Every factor, as ((processor, scenario), factor), by processor then scenario.
    pub fn iter(&self) -> impl Iterator<Item = ((&str, &str), f64)> {
        self.factors.iter().map(|((p, s), f)| ((p.as_str(), s.as_str()), *f))
    }

    /// Whether no factor was measured.
    pub fn is_empty(&self) -> bool {
        self.factors.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(processor: &str, scenario: &str, model: &str, slowdown: f64) -> ContentionSample {
        ContentionSample { processor: processor.into(), scenario: scenario.into(), model: model.into(), slowdown }
    }

    #[test]
    fn the_factor_is_the_median_over_models() {
        let f = ContentionFactors::from_samples(&[
            sample("cpu:0", "compute-same", "a", 1.9),
            sample("cpu:0", "compute-same", "b", 2.3),
            sample("cpu:0", "compute-same", "c", 9.0),
            sample("cpu:0", "memory-other", "a", 1.1),
            sample("cpu:0", "memory-other", "b", 1.3),
            sample("cpu:1", "compute-same", "a", 2.0),
        ]);
        assert_eq!(f.factor("cpu:0", "compute-same"), Some(2.3));
        assert!((f.factor("cpu:0", "memory-other").unwrap() - 1.2).abs() < 1e-12);
        assert_eq!(f.factor("cpu:1", "compute-same"), Some(2.0));
        assert_eq!(f.factor("cpu:1", "memory-other"), None);
        assert_eq!(f.factor("cpu:9", "compute-same"), None);
        assert_eq!(f.iter().count(), 3);
    }

    #[test]
    fn a_model_counts_once_and_bad_slowdowns_are_left_out() {
        let f = ContentionFactors::from_samples(&[
            sample("cpu:0", "compute-same", "a", 5.0),
            sample("cpu:0", "compute-same", "a", 3.0),
            sample("cpu:0", "compute-same", "b", 2.0),
            sample("cpu:0", "compute-same", "c", f64::NAN),
            sample("cpu:0", "compute-same", "d", -1.0),
            sample("cpu:0", "compute-same", "e", f64::INFINITY),
            sample("cpu:0", "memory-same", "a", 0.0),
        ]);
        // a's last sample (3.0) and b (2.0): the median of two is their mean.
        assert_eq!(f.factor("cpu:0", "compute-same"), Some(2.5));
        assert_eq!(f.factor("cpu:0", "memory-same"), None);
        assert!(ContentionFactors::from_samples(&[]).is_empty());
    }

    #[test]
    fn availability_uses_what_was_measured_and_the_scheduler_defaults_otherwise() {
        let f = ContentionFactors::from_samples(&[
            sample("cpu:0", HALF_AVAILABLE, "a", 2.2),
            sample("cpu:0", HEAVILY_LOADED, "a", 4.4),
            sample("cpu:1", HALF_AVAILABLE, "a", 1.8),
            sample("cpu:0-1", HEAVILY_LOADED, "a", 0.9),
        ]);
        assert_eq!(f.availability("cpu:0"), (2.2, 4.4));
        assert_eq!(f.availability("cpu:1"), (1.8, DEFAULT_HEAVILY_LOADED));
        assert_eq!(f.availability("cpu:0-1"), (DEFAULT_HALF_AVAILABLE, 1.0));
        assert_eq!(f.availability("cpu:7"), (2.0, 4.0));
        assert_eq!(ContentionFactors::default().availability("cpu:0"), (2.0, 4.0));
    }
}
