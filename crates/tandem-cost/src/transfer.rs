//! Transfer models: the time to hand a tensor of `bytes` from one processor to another, a fixed cost
//! (synchronisation, a wake-up) plus a cost per byte (the copy).

use serde::{Deserialize, Serialize};

use crate::eval::Accuracy;
use crate::sample::TransferSample;
use crate::solve::Problem;

/// `µs = fixed_us + per_byte_us · bytes`, both non-negative, fitted on relative error.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct TransferModel {
    /// Fixed cost of one hand-over.
    pub fixed_us: f64,
    /// Cost of each byte.
    pub per_byte_us: f64,
}

impl TransferModel {
    /// What a device with no transfer measurements gets: no cost at all. Processors of one device share
    /// memory, so a hand-over is a pointer passed between threads; `tandem profile` measures the real
    /// cost (a fit without those measurements says so).
    pub const UNMEASURED: TransferModel = TransferModel { fixed_us: 0.0, per_byte_us: 0.0 };

    /// The predicted time, microseconds.
    #[inline]
    pub fn predict(&self, bytes: f64) -> f64 {
        self.fixed_us + self.per_byte_us * bytes
    }

    /// Fits the model on samples (all of one processor pair, or pooled); `None` without samples.
    pub fn fit(samples: &[&TransferSample]) -> Option<TransferModel> {
        if samples.is_empty() {
            return None;
        }
        let mut p = Problem::new(2);
        for s in samples {
            // Weight 1/y²: the fit minimises squared relative error, so small hand-overs count as much
            // as large ones.
            p.add(&[1.0, s.bytes], s.median_us, 1.0 / (s.median_us * s.median_us));
        }
        let c = p.nnls();
        Some(TransferModel { fixed_us: c[0], per_byte_us: c[1] })
    }

    /// Leave-one-out accuracy over the samples: each one predicted by a model fitted on the others.
    pub fn held_out_accuracy(samples: &[&TransferSample]) -> Accuracy {
        let mut pairs = vec![];
        for i in 0..samples.len() {
            let rest: Vec<&TransferSample> = samples.iter().enumerate().filter(|(j, _)| *j != i).map(|(_, s)| *s).collect();
            if let Some(m) = TransferModel::fit(&rest) {
                pairs.push((m.predict(samples[i].bytes), samples[i].median_us));
            }
        }
        Accuracy::of(pairs.iter().copied())
    }
}

/// The transfer models of one device: one per measured processor pair, plus one pooled over all pairs
/// for pairs never measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferModels {
    /// Per (source, destination) pair.
    pub pairs: Vec<PairModel>,
    /// Fitted on every pair's samples; [`TransferModel::UNMEASURED`] when there are none.
    pub pooled: TransferModel,
    /// Samples behind `pooled`.
    pub pooled_samples: usize,
    /// Held-out accuracy of `pooled` (leave-one-out).
    pub pooled_accuracy: Option<Accuracy>,
}

/// The transfer model of one processor pair.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PairModel {
    /// From.
    pub src: String,
    /// To.
    pub dst: String,
    /// The model.
    pub model: TransferModel,
    /// Samples it was fitted on.
    pub samples: usize,
    /// Leave-one-out accuracy.
    pub accuracy: Option<Accuracy>,
}

impl TransferModels {
    /// Fits every pair, and the pooled model.
    pub fn fit(samples: &[TransferSample]) -> TransferModels {
        let mut keys: Vec<(String, String)> = samples.iter().map(|s| (s.src.clone(), s.dst.clone())).collect();
        keys.sort();
        keys.dedup();
        let mut pairs = vec![];
        for (src, dst) in keys {
            let mine: Vec<&TransferSample> = samples.iter().filter(|s| s.src == src && s.dst == dst).collect();
            if let Some(model) = TransferModel::fit(&mine) {
                let accuracy = (mine.len() >= 3).then(|| TransferModel::held_out_accuracy(&mine));
                pairs.push(PairModel { src, dst, model, samples: mine.len(), accuracy });
            }
        }
        // A processor to itself is a join's copy, no hand-over: the pooled model leaves it out.
        let all: Vec<&TransferSample> = samples.iter().filter(|s| s.src != s.dst).collect();
        TransferModels {
            pairs,
            pooled: TransferModel::fit(&all).unwrap_or(TransferModel::UNMEASURED),
            pooled_samples: all.len(),
            pooled_accuracy: (all.len() >= 3).then(|| TransferModel::held_out_accuracy(&all)),
        }
    }

    /// Whether every number is finite.
    pub fn is_valid(&self) -> bool {
        let ok = |m: &TransferModel| m.fixed_us.is_finite() && m.per_byte_us.is_finite() && m.fixed_us >= 0.0 && m.per_byte_us >= 0.0;
        let acc = |a: &Option<Accuracy>| a.as_ref().map(|a| a.mape.is_finite() && a.within_10pct.is_finite()).unwrap_or(true);
        ok(&self.pooled) && acc(&self.pooled_accuracy) && self.pairs.iter().all(|p| ok(&p.model) && acc(&p.accuracy))
    }

    /// The model for a pair: its own, else the pooled one.
    pub fn get(&self, src: &str, dst: &str) -> &TransferModel {
        self.pairs.iter().find(|p| p.src == src && p.dst == dst).map(|p| &p.model).unwrap_or(&self.pooled)
    }

    /// The predicted hand-over time from `src` to `dst`; 0 when they are the same processor.
    #[inline]
    pub fn predict(&self, src: &str, dst: &str, bytes: f64) -> f64 {
        if src == dst {
            return 0.0;
        }
        self.get(src, dst).predict(bytes)
    }

    /// The predicted time to join a split's parts into one tensor of `bytes` on `processor` (the
    /// profile's transfer from the processor to itself); 0 where it was not measured.
    #[inline]
    pub fn predict_join(&self, processor: &str, bytes: f64) -> f64 {
        self.pairs.iter().find(|p| p.src == processor && p.dst == processor).map(|p| p.model.predict(bytes)).unwrap_or(0.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recovers_fixed_and_per_byte_cost() {
        let samples: Vec<TransferSample> = [4096.0, 65536.0, 1048576.0, 16777216.0]
            .iter()
            .map(|&b| TransferSample { src: "cpu:0".into(), dst: "cpu:1".into(), bytes: b, median_us: 20.0 + b / 5000.0 })
            .collect();
        let m = TransferModels::fit(&samples);
        let p = m.get("cpu:0", "cpu:1");
        assert!((p.fixed_us - 20.0).abs() < 1e-6 && (p.per_byte_us - 2e-4).abs() < 1e-12, "{p:?}");
        // An unmeasured pair uses the pooled model; the same processor costs nothing.
        assert_eq!(m.predict("cpu:1", "cpu:0", 4096.0), m.pooled.predict(4096.0));
        assert_eq!(m.predict("cpu:1", "cpu:1", 4096.0), 0.0);
        assert!(m.pairs[0].accuracy.unwrap().within_10pct > 0.99);
    }

    #[test]
    fn a_processor_to_itself_is_a_join_and_stays_out_of_the_pooled_hand_over() {
        let mut samples: Vec<TransferSample> = [4096.0, 1048576.0, 16777216.0]
            .iter()
            .map(|&b| TransferSample { src: "cpu:0".into(), dst: "cpu:1".into(), bytes: b, median_us: 20.0 + b / 5000.0 })
            .collect();
        samples.extend([4096.0, 1048576.0, 16777216.0].iter().map(|&b| TransferSample { src: "cpu:0".into(), dst: "cpu:0".into(), bytes: b, median_us: 1.0 + b / 15000.0 }));
        let m = TransferModels::fit(&samples);
        assert_eq!(m.pooled_samples, 3);
        assert!((m.pooled.per_byte_us - 2e-4).abs() < 1e-12, "{:?}", m.pooled);
        assert!((m.predict_join("cpu:0", 1e6) - (1.0 + 1e6 / 15000.0)).abs() < 1e-6);
        // Joins are no hand-over, and an unmeasured processor joins for free.
        assert_eq!(m.predict("cpu:0", "cpu:0", 1e6), 0.0);
        assert_eq!(m.predict_join("cpu:1", 1e6), 0.0);
    }
}
