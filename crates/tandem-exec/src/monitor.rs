//! Noticing that a core slowed down (or recovered) while a plan runs.
//!
//! A plan is tuned for the device as profiled. When another app loads a core, every stage on that
//! core takes longer than predicted, and the plan may no longer be the best. The [`Monitor`] turns
//! per-request readings into a belief about each core's slowdown factor (1 = as profiled, 2 = half
//! available) and says when that belief changed enough, for long enough, to re-plan.
//!
//! Two kinds of reading, because a core the plan does not use has no stages to time:
//!
//! - [`Reading::Stage`]: the time a processor's stages took in one request against their prediction.
//!   Predictions are wrong by a plan-dependent amount even on an idle device (multi-stage plans run
//!   slower than the sum of their ops; see issue 6), so the ratio is never compared with 1: the first
//!   `warmup` requests of each plan set its baseline, and only a *change* of the ratio against that
//!   baseline moves the belief. The plan's predictions already include the belief it was made under,
//!   so the baseline is relative to that belief.
//! - [`Reading::Probe`]: an absolute reading of a core's availability against the idle device (the
//!   runner reads how busy other processes keep the core; any fixed reference would do).
//!
//! Readings are smoothed (an exponential moving average of the log ratio) and a change counts only when
//! the smoothed value is beyond `threshold` for `sustain` requests in a row: one slow request (a page
//! fault, a timer interrupt) moves nothing. The new factor is the median of the last `sustain` raw
//! readings, which a step change reaches at once while the moving average still lags.
//!
//! Everything here is arithmetic on the readings given; it never looks at a clock, so tests drive it
//! with made-up readings and expect exact answers.

use std::collections::{BTreeMap, VecDeque};

use serde::{Deserialize, Serialize};

/// How eagerly the monitor re-plans.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MonitorOptions {
    /// Weight of the newest reading in the moving average (0..1].
    pub alpha: f64,
    /// A core's factor must change by more than this ratio (either way) to count.
    pub threshold: f64,
    /// Requests in a row the change must last.
    pub sustain: usize,
    /// Requests of a new plan that set its baseline before its stage readings count.
    pub warmup: usize,
    /// Factors below this are taken as 1 (idle): a recovered core returns exactly to the idle plan
    /// instead of to a plan for a 5% slowdown.
    pub snap: f64,
    /// Factors are capped here: a core 16x slower is already one the planner avoids, and a wake-up
    /// delay of milliseconds on a stage predicted at microseconds would otherwise read as 1000x.
    pub max_factor: f64,
}

impl Default for MonitorOptions {
    fn default() -> Self {
        MonitorOptions { alpha: 0.4, threshold: 1.3, sustain: 3, warmup: 3, snap: 1.15, max_factor: 16.0 }
    }
}

/// One reading of how fast some cores run now.
#[derive(Debug, Clone, PartialEq)]
pub enum Reading {
    /// The stages a processor ran in one request: their summed measured and predicted times.
    Stage {
        /// The processor's cores.
        cores: Vec<usize>,
        /// Measured µs.
        measured_us: f64,
        /// Predicted µs (from the plan being run).
        predicted_us: f64,
    },
    /// A probe on one core the plan leaves unused.
    Probe {
        /// The core.
        core: usize,
        /// Measured µs.
        measured_us: f64,
        /// The same probe's µs on the idle device.
        idle_us: f64,
    },
}

/// A change of belief worth re-planning for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Detection {
    /// Each core whose factor changed: (core, old factor, new factor).
    pub changes: Vec<(usize, f64, f64)>,
    /// Which readings showed it, for the log: `stages on cores 1`, `probe on core 1`.
    pub evidence: String,
}

/// Where one source of readings stands.
#[derive(Debug, Clone, Default)]
struct Track {
    /// Readings taken (stage tracks: the first `warmup` set the baseline).
    n: usize,
    /// Mean log ratio over the warm-up (stage tracks; probes are absolute, 0).
    base: f64,
    /// The core factor believed when the baseline was taken, as a log.
    base_belief: f64,
    /// Moving average of the log ratio.
    smooth: f64,
    /// The last `sustain` raw log ratios.
    recent: VecDeque<f64>,
    /// Requests in a row the smoothed factor was beyond the threshold.
    streak: usize,
}

/// Beliefs about each core's slowdown, updated from readings; see the module docs.
#[derive(Debug, Clone)]
pub struct Monitor {
    options: MonitorOptions,
    /// Core → believed slowdown factor.
    belief: BTreeMap<usize, f64>,
    /// Stage tracks by the processor's cores, probe tracks by core.
    stages: BTreeMap<Vec<usize>, Track>,
    probes: BTreeMap<usize, Track>,
}

impl Monitor {
    /// A monitor for these cores, all believed idle.
    pub fn new(cores: impl IntoIterator<Item = usize>, options: MonitorOptions) -> Monitor {
        Monitor { options, belief: cores.into_iter().map(|c| (c, 1.0)).collect(), stages: BTreeMap::new(), probes: BTreeMap::new() }
    }

    /// The options.
    pub fn options(&self) -> &MonitorOptions {
        &self.options
    }

    /// Each core's believed slowdown factor.
    pub fn beliefs(&self) -> &BTreeMap<usize, f64> {
        &self.belief
    }

    /// The believed factor of a processor owning `cores`: its slowest core's (a multithreaded op waits
    /// for its slowest thread); 1 for a processor owning none.
    pub fn factor(&self, cores: &[usize]) -> f64 {
        cores.iter().map(|c| self.belief.get(c).copied().unwrap_or(1.0)).fold(1.0, f64::max)
    }

    /// A new plan starts: stage readings will be against its predictions, so their baselines are taken
    /// again. Probe tracks stay (they are absolute).
    pub fn new_plan(&mut self) {
        self.stages.clear();
    }

    /// Cores worth probing now: those of a multi-core processor whose stages have started to look
    /// slower (or faster) than believed. Its stages alone cannot say which of its cores changed; a
    /// probe on each, taken between requests, can.
    pub fn suspects(&self) -> Vec<usize> {
        let mut cores: Vec<usize> = self.stages.iter().filter(|(c, t)| c.len() > 1 && t.streak > 0).flat_map(|(c, _)| c.iter().copied()).collect();
        cores.sort_unstable();
        cores.dedup();
        cores
    }

    /// Spreads a multi-core processor's new factor over its cores: with probes on them,
    /// the core that reads slowest takes the factor (the processor is as slow as its slowest core)
    /// and the others take what they read; without, every core takes it.
    fn attribute(&self, cores: &[usize], factor: f64) -> Vec<(usize, f64)> {
        let probed: Vec<(usize, f64)> = cores.iter().filter_map(|c| self.probes.get(c).map(|t| (*c, t.smooth.exp()))).collect();
        if cores.len() < 2 || probed.len() < cores.len() {
            return cores.iter().map(|&c| (c, factor)).collect();
        }
        let slowest = probed.iter().max_by(|a, b| a.1.total_cmp(&b.1)).map(|p| p.0);
        probed.into_iter().map(|(c, p)| (c, if Some(c) == slowest { factor } else { snapped(p, self.options.snap).min(self.options.max_factor) })).collect()
    }

    /// Takes one request's readings; returns a detection when a core's factor changed beyond the
    /// threshold for `sustain` requests. The beliefs are updated before returning.
    pub fn observe(&mut self, readings: &[Reading]) -> Option<Detection> {
        let o = self.options;
        let limit = o.threshold.ln();
        let mut changes: BTreeMap<usize, (f64, f64)> = BTreeMap::new();
        let mut evidence = vec![];
        for r in readings {
            match r {
                Reading::Stage { cores, measured_us, predicted_us } => {
                    let Some(x) = log_ratio(*measured_us, *predicted_us) else { continue };
                    let now = self.factor(cores).ln();
                    let t = self.stages.entry(cores.clone()).or_default();
                    if t.n <= o.warmup {
                        // The first request of a plan runs on cold caches and says nothing; the next
                        // `warmup` set the baseline (their median): what this plan's ratio is under
                        // the current belief.
                        if t.n > 0 {
                            t.recent.push_back(x);
                        }
                        t.n += 1;
                        if t.n > o.warmup {
                            let mut w: Vec<f64> = t.recent.drain(..).collect();
                            w.sort_by(f64::total_cmp);
                            t.base = w.get(w.len() / 2).copied().unwrap_or(x);
                            t.base_belief = now;
                            t.smooth = t.base;
                        }
                        continue;
                    }
                    if let Some(new) = step(t, x, true, now, limit, o) {
                        for (c, f) in self.attribute(cores, new) {
                            changes.insert(c, (self.belief[&c], f));
                        }
                        evidence.push(format!("stages on {}", core_list(cores)));
                    }
                }
                Reading::Probe { core, measured_us, idle_us } => {
                    let Some(x) = log_ratio(*measured_us, *idle_us) else { continue };
                    let now = self.factor(&[*core]).ln();
                    let t = self.probes.entry(*core).or_insert_with(|| Track { smooth: x, ..Default::default() });
                    if let Some(new) = step(t, x, false, now, limit, o) {
                        changes.insert(*core, (self.belief.get(core).copied().unwrap_or(1.0), new));
                        evidence.push(format!("probe on core {core}"));
                    }
                }
            }
        }
        changes.retain(|_, (old, new)| old != new);
        if changes.is_empty() {
            return None;
        }
        for (&c, &(_, new)) in &changes {
            self.belief.insert(c, new);
        }
        // Every track now compares against the new belief: its streak starts again.
        for t in self.stages.values_mut().chain(self.probes.values_mut()) {
            t.streak = 0;
        }
        Some(Detection { changes: changes.into_iter().map(|(c, (a, b))| (c, a, b)).collect(), evidence: evidence.join(", ") })
    }
}

/// `ln(measured / reference)`, or `None` for readings that say nothing (zero, negative, NaN).
fn log_ratio(measured: f64, reference: f64) -> Option<f64> {
    (measured > 0.0 && reference > 0.0 && measured.is_finite() && reference.is_finite()).then(|| (measured / reference).ln())
}

/// Adds raw log ratio `x` to a track; returns the new factor when the smoothed factor has been beyond
/// `limit` (log) of the believed `now` (log) for `sustain` readings in a row. A `relative` (stage)
/// track maps its readings to a factor through its baseline; a probe's reading is the factor.
fn step(t: &mut Track, x: f64, relative: bool, now: f64, limit: f64, o: MonitorOptions) -> Option<f64> {
    let shift = if relative { t.base_belief - t.base } else { 0.0 };
    t.smooth = o.alpha * x + (1.0 - o.alpha) * t.smooth;
    t.recent.push_back(x);
    while t.recent.len() > o.sustain.max(1) {
        t.recent.pop_front();
    }
    t.n += 1;
    if (t.smooth + shift - now).abs() > limit {
        t.streak += 1;
    } else {
        t.streak = 0;
    }
    if t.streak < o.sustain.max(1) {
        return None;
    }
    t.streak = 0;
    let mut recent: Vec<f64> = t.recent.iter().copied().collect();
    recent.sort_by(f64::total_cmp);
    let raw = recent[recent.len() / 2];
    let factor = snapped((raw + shift).exp(), o.snap).min(o.max_factor);
    if (factor.ln() - now).abs() < 1e-9 {
        // Readings moved but the belief stays (a core is never believed faster than profiled): a
        // stage track takes them as its new baseline rather than firing again on the same evidence.
        if relative {
            t.base = raw;
            t.base_belief = now;
        }
        t.smooth = raw;
        return None;
    }
    // Re-centre the smoothed value on what was just decided, so the track does not fire again on
    // the lag of its own average.
    t.smooth = factor.ln() - shift;
    Some(factor)
}

/// A factor kept to three decimals (equal beliefs compare equal: they name the plan made for them),
/// and 1 when below `snap`: a core is never believed faster than profiled (the profile is of the idle
/// device; a reading below it is the error of an earlier estimate, which must not compound).
fn snapped(factor: f64, snap: f64) -> f64 {
    let f = (factor * 1e3).round() / 1e3;
    if f < snap {
        1.0
    } else {
        f
    }
}

fn core_list(cores: &[usize]) -> String {
    let list: Vec<String> = cores.iter().map(|c| c.to_string()).collect();
    format!("core{} {}", if cores.len() > 1 { "s" } else { "" }, list.join(","))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn stage(cores: &[usize], measured: f64, predicted: f64) -> Reading {
        Reading::Stage { cores: cores.to_vec(), measured_us: measured, predicted_us: predicted }
    }

    /// Feeds `n` requests of readings made by `f(request)`; returns (request, detection) pairs.
    fn feed(m: &mut Monitor, range: std::ops::Range<usize>, f: impl Fn(usize) -> Vec<Reading>) -> Vec<(usize, Detection)> {
        range.filter_map(|i| m.observe(&f(i)).map(|d| (i, d))).collect()
    }

    #[test]
    fn a_steady_plan_moves_nothing_even_when_its_predictions_are_off() {
        let mut m = Monitor::new([0, 1], MonitorOptions::default());
        // cpu:1's stages always take 1.6x their prediction: a plan-dependent error, not a slowdown.
        let got = feed(&mut m, 0..50, |i| vec![stage(&[0], 1000.0 + (i % 3) as f64 * 30.0, 1000.0), stage(&[1], 1600.0 - (i % 2) as f64 * 40.0, 1000.0)]);
        assert!(got.is_empty(), "{got:?}");
        assert_eq!(m.factor(&[1]), 1.0);
    }

    #[test]
    fn a_step_slowdown_is_detected_after_sustain_requests_with_its_size() {
        let mut m = Monitor::new([0, 1], MonitorOptions::default());
        let got = feed(&mut m, 0..30, |i| {
            let slow = if i >= 10 { 2.0 } else { 1.0 };
            vec![stage(&[0], 1000.0, 1000.0), stage(&[1], 1500.0 * slow, 1000.0)]
        });
        assert_eq!(got.len(), 1, "{got:?}");
        let (at, d) = &got[0];
        // Smoothed: 1.32x after one slow request, 1.56x after two, 1.72x after three: three in a row.
        assert_eq!(*at, 12);
        assert_eq!(d.changes, vec![(1, 1.0, 2.0)]);
        assert!((m.factor(&[1]) - 2.0).abs() < 1e-9);
        assert!((m.factor(&[0, 1]) - 2.0).abs() < 1e-9 && m.factor(&[0]) == 1.0);
    }

    #[test]
    fn isolated_slow_requests_move_nothing() {
        let mut m = Monitor::new([0], MonitorOptions::default());
        let got = feed(&mut m, 0..40, |i| vec![stage(&[0], if i % 5 == 4 { 3000.0 } else { 1000.0 }, 1000.0)]);
        assert!(got.is_empty(), "{got:?}");
    }

    #[test]
    fn a_new_plan_is_baselined_under_the_current_belief_and_recovery_is_seen() {
        let mut m = Monitor::new([0, 1], MonitorOptions::default());
        // Slowdown of core 1 detected on the first plan.
        feed(&mut m, 0..20, |i| vec![stage(&[1], if i >= 5 { 2000.0 } else { 1000.0 }, 1000.0)]);
        assert_eq!(m.factor(&[1]), 2.0);
        // A new plan made for factor 2: its predictions include the slowdown, and it has its own
        // error (0.8x). Nothing changes while the load lasts...
        m.new_plan();
        assert!(feed(&mut m, 20..40, |_| vec![stage(&[1], 1600.0, 2000.0)]).is_empty());
        // ...then the load stops: the stages take half as long, and the belief returns to exactly 1.
        let got = feed(&mut m, 40..60, |_| vec![stage(&[1], 800.0, 2000.0)]);
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].1.changes, vec![(1, 2.0, 1.0)]);
    }

    #[test]
    fn probes_watch_cores_the_plan_leaves_unused() {
        let mut m = Monitor::new([0, 1], MonitorOptions::default());
        let probe = |core, f: f64| Reading::Probe { core, measured_us: 3000.0 * f, idle_us: 3000.0 };
        let got = feed(&mut m, 0..10, |_| vec![probe(1, 2.5)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.changes, vec![(1, 1.0, 2.5)]);
        assert_eq!(got[0].1.evidence, "probe on core 1");
        let got = feed(&mut m, 10..20, |_| vec![probe(1, 1.05)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.changes, vec![(1, 2.5, 1.0)], "within the snap of 1: back to idle");
    }

    #[test]
    fn a_multi_core_processor_moves_all_its_cores() {
        let mut m = Monitor::new([0, 1], MonitorOptions::default());
        let got = feed(&mut m, 0..20, |i| vec![stage(&[0, 1], if i >= 3 { 1800.0 } else { 1000.0 }, 1000.0)]);
        assert_eq!(got.len(), 1);
        assert_eq!(got[0].1.changes, vec![(0, 1.0, 1.8), (1, 1.0, 1.8)]);
    }

    #[test]
    fn probes_tell_which_core_of_a_multi_core_processor_slowed_down() {
        let mut m = Monitor::new([0, 1], MonitorOptions::default());
        let probe = |core, f: f64| Reading::Probe { core, measured_us: 3000.0 * f, idle_us: 3000.0 };
        let mut got = vec![];
        for i in 0..20 {
            let f = if i >= 3 { 1.8 } else { 1.0 };
            if let Some(d) = m.observe(&[stage(&[0, 1], 1000.0 * f, 1000.0)]) {
                got.push(d);
            }
            // What the runner does: probe the suspects between requests.
            if !m.suspects().is_empty() {
                assert_eq!(m.suspects(), vec![0, 1]);
                let probes: Vec<Reading> = m.suspects().into_iter().map(|c| probe(c, if c == 1 { 1.9 } else { 1.02 })).collect();
                if let Some(d) = m.observe(&probes) {
                    got.push(d);
                }
            }
        }
        assert_eq!(got.len(), 1, "{got:?}");
        assert_eq!(got[0].changes, vec![(1, 1.0, 1.8)], "core 0 probes idle: unchanged");
        assert_eq!((m.factor(&[0]), m.factor(&[1]), m.factor(&[0, 1])), (1.0, 1.8, 1.8));
    }

    #[test]
    fn absurd_readings_are_capped() {
        let mut m = Monitor::new([0], MonitorOptions::default());
        let got = feed(&mut m, 0..20, |i| vec![stage(&[0], if i >= 5 { 5e6 } else { 1000.0 }, 1000.0)]);
        assert_eq!(got.len(), 1);
        assert_eq!(m.factor(&[0]), 16.0);
    }

    #[test]
    fn readings_that_say_nothing_are_ignored() {
        let mut m = Monitor::new([0], MonitorOptions::default());
        let got = feed(&mut m, 0..20, |_| vec![stage(&[0], f64::NAN, 1000.0), stage(&[0], 0.0, 1000.0), stage(&[0], 1000.0, 0.0)]);
        assert!(got.is_empty());
        assert_eq!(m.factor(&[0]), 1.0);
    }
}
