//! Robust statistics of timing samples, and the rule that decides when to stop sampling.

use serde::{Deserialize, Serialize};

/// Summary of a set of timing samples, in microseconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Summary {
    /// Samples kept (after outlier rejection).
    pub samples: usize,
    /// Median.
    pub median_us: f64,
    /// 10th percentile.
    pub p10_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// Mean of the kept samples.
    pub mean_us: f64,
    /// Coefficient of variation (standard deviation / mean) of the kept samples.
    pub cv: f64,
    /// Samples rejected as outliers.
    pub outliers_dropped: usize,
}

/// The geometric mean of positive `values` (NaN when empty): the mean of ratios that compose by
/// multiplying, such as slowdowns or speedups.
pub fn geometric_mean(values: impl IntoIterator<Item = f64>) -> f64 {
    let (sum, n) = values.into_iter().fold((0.0, 0usize), |(s, n), v| (s + v.ln(), n + 1));
    (sum / n as f64).exp()
}

/// The `q` quantile of `values` in any order (a sorted copy is taken); see [`quantile`].
pub fn percentile(values: &[f64], q: f64) -> f64 {
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    quantile(&sorted, q)
}

/// The `q` quantile of ascending `sorted`, interpolating linearly between closest ranks; NaN when empty.
pub fn quantile(sorted: &[f64], q: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64)
}

/// Median absolute deviation scaled to a standard deviation for normal data.
fn mad(sorted: &[f64], median: f64) -> f64 {
    let mut dev: Vec<f64> = sorted.iter().map(|x| (x - median).abs()).collect();
    dev.sort_by(f64::total_cmp);
    1.4826 * quantile(&dev, 0.5)
}

/// Summarises samples. Outliers are samples further than 5 scaled MADs above the median (a preemption or
/// a page fault, never a fast run): they are dropped and counted. Low samples are kept, since a timing
/// cannot be too fast by accident.
pub fn summarize(samples: &[f64]) -> Summary {
    let mut sorted: Vec<f64> = samples.iter().copied().filter(|x| x.is_finite()).collect();
    sorted.sort_by(f64::total_cmp);
    let median = quantile(&sorted, 0.5);
    let spread = mad(&sorted, median).max(median * 0.01);
    let kept: Vec<f64> = sorted.iter().copied().filter(|&x| x <= median + 5.0 * spread).collect();
    let dropped = sorted.len() - kept.len();
    let n = kept.len() as f64;
    let mean = kept.iter().sum::<f64>() / n;
    let var = if kept.len() > 1 { kept.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / (n - 1.0) } else { 0.0 };
    Summary {
        samples: kept.len(),
        median_us: quantile(&kept, 0.5),
        p10_us: quantile(&kept, 0.1),
        p90_us: quantile(&kept, 0.9),
        mean_us: mean,
        cv: if mean > 0.0 { var.sqrt() / mean } else { 0.0 },
        outliers_dropped: dropped,
    }
}

/// Relative half-width of a distribution-free 95% confidence interval of the median: the order
/// statistics at ranks n/2 ± 0.98·sqrt(n) bracket the median with about 95% probability.
pub fn median_ci_halfwidth(samples: &[f64]) -> f64 {
    let n = samples.len();
    if n < 5 {
        return f64::INFINITY;
    }
    let mut s = samples.to_vec();
    s.sort_by(f64::total_cmp);
    let half = 0.98 * (n as f64).sqrt();
    let lo = ((n as f64 / 2.0) - half).floor().max(0.0) as usize;
    let hi = (((n as f64 / 2.0) + half).ceil() as usize).min(n - 1);
    let median = quantile(&s, 0.5);
    if median <= 0.0 {
        return 0.0;
    }
    (s[hi] - s[lo]) / 2.0 / median
}

/// When to stop repeating a measurement.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StopRule {
    /// Runs before the first sample is kept (caches, allocations, lazy packing).
    pub warmup: usize,
    /// Samples always taken.
    pub min_samples: usize,
    /// Samples never exceeded.
    pub max_samples: usize,
    /// Stop once the 95% interval of the median is within ± this fraction of it.
    pub target_ci: f64,
    /// Stop once this much time (seconds) has been spent on the item, warm-up included.
    pub budget_s: f64,
}

impl Default for StopRule {
    fn default() -> Self {
        StopRule { warmup: 3, min_samples: 20, max_samples: 400, target_ci: 0.02, budget_s: 0.4 }
    }
}

impl StopRule {
    /// Whether `samples` (taken in `elapsed_s` seconds) are enough.
    pub fn done(&self, samples: &[f64], elapsed_s: f64) -> bool {
        let n = samples.len();
        if n >= self.max_samples {
            return true;
        }
        if n < self.min_samples {
            // Even the minimum gives way to a time budget 4 times over: a 2-second op is sampled less.
            return elapsed_s > 4.0 * self.budget_s && n >= 3;
        }
        elapsed_s >= self.budget_s || median_ci_halfwidth(samples) <= self.target_ci
    }
}

/// A 95% confidence interval of `median(num) / median(den)` (medians as [`summarize`] takes them)
/// for paired samples: `num[i]` and `den[i]` were timed in the same round, so resampling keeps the
/// pairs together and a slow spell that slowed both cancels out. A percentile bootstrap with
/// `resamples` draws from a fixed seed, so the same samples give the same interval. `None` with
/// fewer than 5 pairs.
///
/// Why: a plan that does the baseline's own work (a one-stage plan) measures 0.99x or 1.01x of it by
/// chance; the interval says whether a ratio is a difference at all.
pub fn paired_ratio_ci(num: &[f64], den: &[f64], resamples: usize) -> Option<(f64, f64)> {
    let n = num.len().min(den.len());
    if n < 5 || resamples == 0 {
        return None;
    }
    // SplitMix64: a few lines, and independent of any crate's generator.
    let mut state: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        state = state.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    };
    let mut ratios = Vec::with_capacity(resamples);
    let (mut a, mut b) = (vec![0.0; n], vec![0.0; n]);
    for _ in 0..resamples {
        for k in 0..n {
            let i = (next() % n as u64) as usize;
            a[k] = num[i];
            b[k] = den[i];
        }
        let r = summarize(&a).median_us / summarize(&b).median_us;
        if r.is_finite() {
            ratios.push(r);
        }
    }
    if ratios.is_empty() {
        return None;
    }
    ratios.sort_by(f64::total_cmp);
    Some((quantile(&ratios, 0.025), quantile(&ratios, 0.975)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn summary_of_known_samples() {
        let s = summarize(&[10.0, 11.0, 12.0, 13.0, 14.0, 15.0, 16.0, 17.0, 18.0, 19.0, 20.0]);
        assert_eq!(s.samples, 11);
        assert_eq!(s.median_us, 15.0);
        assert!((s.p10_us - 11.0).abs() < 1e-9 && (s.p90_us - 19.0).abs() < 1e-9);
        assert_eq!(s.outliers_dropped, 0);
        assert!((s.mean_us - 15.0).abs() < 1e-9);
    }

    #[test]
    fn slow_outliers_are_dropped_and_counted() {
        let mut v: Vec<f64> = (0..50).map(|i| 100.0 + (i % 5) as f64).collect();
        v.push(5000.0);
        v.push(900.0);
        let s = summarize(&v);
        assert_eq!(s.outliers_dropped, 2);
        assert!(s.p90_us < 110.0);
        // Fast samples are never outliers.
        v.push(1.0);
        assert_eq!(summarize(&v).outliers_dropped, 2);
    }

    #[test]
    fn stop_rule_waits_for_a_stable_median() {
        let rule = StopRule { min_samples: 10, max_samples: 1000, target_ci: 0.03, budget_s: 100.0, warmup: 0 };
        let stable: Vec<f64> = (0..20).map(|i| 100.0 + (i % 3) as f64).collect();
        assert!(rule.done(&stable, 0.1));
        let noisy: Vec<f64> = (0..20).map(|i| if i % 2 == 0 { 50.0 } else { 150.0 }).collect();
        assert!(!rule.done(&noisy, 0.1));
        assert!(rule.done(&noisy, 100.0), "the budget ends it");
        assert!(!rule.done(&stable[..5], 0.1), "minimum samples first");
    }

    #[test]
    fn paired_ratio_ci_brackets_the_ratio_and_separates_real_differences_from_noise() {
        // A slow spell hits both series in the same rounds: pairing cancels it.
        let drift = |i: usize| 1.0 + 0.3 * ((i / 10) % 2) as f64;
        let noise = |i: usize| 1.0 + 0.02 * (((i * 7919) % 13) as f64 / 13.0 - 0.5);
        let den: Vec<f64> = (0..60).map(|i| 100.0 * drift(i) * noise(i)).collect();
        let faster: Vec<f64> = (0..60).map(|i| 120.0 * drift(i) * noise(i + 3)).collect();
        let (lo, hi) = paired_ratio_ci(&faster, &den, 500).unwrap();
        assert!(lo > 1.1 && hi < 1.3 && lo < hi, "{lo} {hi}");
        let same: Vec<f64> = (0..60).map(|i| 100.0 * drift(i) * noise(i + 5)).collect();
        let (lo, hi) = paired_ratio_ci(&same, &den, 500).unwrap();
        assert!(lo < 1.0 && hi > 1.0, "the same work: {lo} {hi}");
        assert_eq!(paired_ratio_ci(&same, &den, 500), paired_ratio_ci(&same, &den, 500), "seeded");
        assert_eq!(paired_ratio_ci(&same[..4], &den[..4], 500), None);
    }
}
