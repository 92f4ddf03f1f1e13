//! The protocol of `tandem run`: verify, then time the plan against the single-processor baselines.
//!
//! 1. The plan runs once on seeded inputs and its outputs are compared with the plain single-processor
//!    run of the whole model (tract, one thread) on the same inputs. A plan that fails is not timed.
//! 2. Every CPU processor that can run the whole model gets a baseline, `single:<processor>`: tract
//!    compiled for the processor's threads, on a worker pinned to its cores.
//! 3. After `rule.warmup` rounds, rounds alternate one plan run and one run of each baseline (in an
//!    order shuffled anew every round, seeded by [`MeasureOptions::seed`]), so that all of them meet the same device conditions, until every
//!    series satisfies the [`StopRule`] (stable median, or the time budget spent).
//!
//! Why shuffled: a run finds the caches as the run before it left them. An order rotating from round to
//! round keeps who runs before whom, so `single:cpu:0` always ran right after the plan (its weights still
//! in that core's cache), and the plan right after `single:cpu:0-1` (both cores' caches refilled with
//! the baseline's buffers). In `bench_baseline`, a one-stage plan of ppocr_mobile_v2_cls timed
//! 1.011-1.066x its core's baseline with every baseline interleaved in a rotating order, and
//! 0.989-1.031x shuffled (four series each, `cpu:0` and `cpu:1`).
//!
//! The plan is timed from the caller's side (dispatch to outputs back: the executor's own overhead is
//! in the figure); a baseline is timed inside its worker around tract's run (what calling tract
//! directly costs). The comparison is therefore conservative for the plan.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tandem_cost::synthetic::Rng;
use tandem_device::{Processor, ProcessorKind, Worker};
use tandem_plan::Timeline;
use tandem_profile::reference::Kernel;
use tandem_profile::{summarize, StopRule, Summary};
use tract_onnx::tract_core::plan::SimpleState;

use crate::error::{chain, ExecError, Result};
use crate::executor::{Executor, Outcome};
use crate::verify::{verify, OutputCheck};

/// How hard to measure.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MeasureOptions {
    /// Warm-up rounds, samples, stability target and time budget (for all series together).
    pub rule: StopRule,
    /// Seed of the random inputs.
    pub seed: u64,
    /// Largest accepted difference relative to an output's magnitude.
    pub tolerance: f64,
    /// Measure the `single:<processor>` baselines.
    pub baselines: bool,
    /// Also run this many requests pipelined.
    pub stream: Option<usize>,
    /// Per processor, the reference kernel's typical time the plan's cost models predict at, µs
    /// (`tandem_cost::CostModels::speed`). With it, the kernel is timed in every round on each of the
    /// plan's processors that has one, and the report gives the host's speed and the prediction at it
    /// ([`HostSpeed`]).
    #[serde(default)]
    pub typical_reference_us: BTreeMap<String, f64>,
}

impl Default for MeasureOptions {
    fn default() -> Self {
        MeasureOptions {
            rule: StopRule { warmup: 3, min_samples: 15, max_samples: 300, target_ci: 0.01, budget_s: 3.0 },
            seed: 0,
            tolerance: 1e-4,
            baselines: true,
            stream: None,
            typical_reference_us: BTreeMap::new(),
        }
    }
}

/// The whole model alone on one processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Baseline {
    /// `single:<processor>`.
    pub name: String,
    /// The processor.
    pub processor: String,
    /// Median, milliseconds.
    pub measured_ms: f64,
    /// 90th percentile, milliseconds.
    pub p90_ms: f64,
    /// Samples kept.
    pub samples: usize,
    /// Coefficient of variation.
    pub cv: f64,
}

/// How fast the host ran during the measurement, against the speed the cost models predict at.
///
/// The host's speed moves by 10-20% within seconds on a shared machine (tandem-profile's reference
/// module), and the cost models predict at the speed the profiles were brought to. The same reference
/// kernel, timed in this run's rounds, says how much slower or faster the host runs now; the
/// prediction scaled by that is what the models predict for the host as it is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HostSpeed {
    /// Per processor of the plan that has a typical time: the kernel's median in this run.
    pub kernels: Vec<KernelSpeed>,
    /// The geometric mean of their measured / typical: above 1, the host runs slower than it was
    /// profiled at.
    pub slowdown: f64,
    /// The plan's prediction times `slowdown`, ms.
    pub predicted_ms: Option<f64>,
    /// `(predicted_ms - measured) / measured`.
    pub prediction_error: Option<f64>,
}

/// The reference kernel on one processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct KernelSpeed {
    /// The processor.
    pub processor: String,
    /// Its median in this run, µs.
    pub measured_us: f64,
    /// Its typical time in the profiles, µs.
    pub typical_us: f64,
}

/// One stage, measured beside its prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StageReport {
    /// Stage id.
    pub stage: usize,
    /// Its processor.
    pub processor: String,
    /// Its ops (for a part: the split chain).
    pub ops: Vec<usize>,
    /// For a split part: `[split, start, end]`.
    pub part: Option<[usize; 3]>,
    /// For a split part: per op of its chain, the output axis cut and the share of it the part
    /// computed, halos included ([`tandem_graph::Graph::part_shares`]). Empty in runs stored before
    /// it was recorded.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub op_shares: Vec<(usize, f64)>,
    /// Median time running its model, µs.
    pub measured_us: f64,
    /// 90th percentile of it, µs.
    pub p90_us: f64,
    /// Median start from the request's start, µs.
    pub start_us: f64,
    /// Median end, µs.
    pub end_us: f64,
    /// Median time from being ready to starting (the hand-over and wake-up of its lane), µs.
    pub wait_us: f64,
    /// Predicted duration, µs (where the plan's timeline has the stage).
    pub predicted_us: Option<f64>,
    /// Predicted start, µs.
    pub predicted_start_us: Option<f64>,
}

/// One hand-over between processors, measured beside its prediction.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TransferReport {
    /// Producing stage.
    pub from_stage: usize,
    /// Consuming stage.
    pub to_stage: usize,
    /// Source processor.
    pub src: String,
    /// Destination processor.
    pub dst: String,
    /// Bytes handed over.
    pub bytes: u64,
    /// Median time from the producer's completion to the consumer's start, µs.
    pub measured_us: f64,
    /// Predicted, µs (where the plan's timeline has the transfer).
    pub predicted_us: Option<f64>,
}

/// A pipelined stream's throughput.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamReport {
    /// Requests run.
    pub requests: usize,
    /// Requests in flight at once at most.
    pub window: usize,
    /// Requests per second.
    pub rps: f64,
    /// What the plan's predicted period gives, where it has one.
    pub predicted_rps: Option<f64>,
    /// One request after the other: 1 / the measured median.
    pub sequential_rps: f64,
    /// Median latency of a request in the stream, milliseconds.
    pub latency_median_ms: f64,
    /// Whole stream, milliseconds.
    pub elapsed_ms: f64,
}

/// A plan against the best baseline, as the confidence interval of the speedup says.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Verdict {
    /// The whole interval is above 1.
    Faster,
    /// The whole interval is below 1.
    Slower,
    /// The interval holds 1: this run cannot tell the two apart.
    Indistinguishable,
}

impl Verdict {
    /// The verdict of an interval of the speedup.
    pub fn of([lo, hi]: [f64; 2]) -> Verdict {
        if lo > 1.0 {
            Verdict::Faster
        } else if hi < 1.0 {
            Verdict::Slower
        } else {
            Verdict::Indistinguishable
        }
    }

    /// `faster`, `slower`, `indistinguishable`.
    pub fn label(self) -> &'static str {
        match self {
            Verdict::Faster => "faster",
            Verdict::Slower => "slower",
            Verdict::Indistinguishable => "indistinguishable",
        }
    }
}

/// Bootstrap draws of the speedup's confidence interval.
const CI_RESAMPLES: usize = 1000;

/// Everything `tandem run` learns about a plan. Serialised as the `run --json` object's detail (the
/// command adds `plan_id` and flattens `measured` into `measured_ms`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunReport {
    /// Every output within the tolerance.
    pub verified: bool,
    /// Largest absolute difference over the outputs.
    pub max_abs_diff: f64,
    /// Largest relative difference over the outputs.
    pub max_rel_diff: f64,
    /// The tolerance on the relative difference.
    pub tolerance: f64,
    /// Per output.
    pub outputs: Vec<OutputCheck>,
    /// The plan's latency distribution, µs (`None` when verification failed and nothing was timed).
    pub measured: Option<Summary>,
    /// The plan's predicted latency, ms (`None` for a plan without prediction).
    pub predicted_ms: Option<f64>,
    /// `(predicted - measured) / measured`.
    pub prediction_error: Option<f64>,
    /// `single:<processor>` for every processor that ran the whole model.
    pub baselines: Vec<Baseline>,
    /// The fastest baseline's name.
    pub best_baseline: Option<String>,
    /// Best baseline's median / the plan's median.
    pub speedup_vs_best_baseline: Option<f64>,
    /// 95% confidence interval of that speedup: a bootstrap over the rounds, each round's plan run
    /// and baseline run kept together ([`tandem_profile::paired_ratio_ci`]).
    #[serde(default)]
    pub speedup_ci95: Option<[f64; 2]>,
    /// What the interval says: faster, slower, or not told apart from the best baseline.
    #[serde(default)]
    pub versus_best_baseline: Option<Verdict>,
    /// Per stage.
    pub stages: Vec<StageReport>,
    /// Per transfer of the plan.
    pub transfers: Vec<TransferReport>,
    /// The host's speed during the run, and the prediction at it (with
    /// [`MeasureOptions::typical_reference_us`]).
    #[serde(default)]
    pub host_speed: Option<HostSpeed>,
    /// Median cost of waking a stage on another processor (ready to started), µs, over all stages
    /// released by a stage of another processor; `None` when no stage is.
    pub handover_us: Option<f64>,
    /// The measured timeline of the run closest to the median.
    pub timeline: Timeline,
    /// The pipelined stream, when asked for.
    pub stream: Option<StreamReport>,
    /// Wall-clock time of the whole measurement, seconds.
    pub elapsed_s: f64,
}

/// Verifies and measures the executor's plan; baselines run on every processor of `processors` (the
/// device's) that can run the whole model.
pub fn measure(exec: &Executor, processors: &[Processor], options: &MeasureOptions) -> Result<RunReport> {
    let started = Instant::now();
    let graph = exec.graph().clone();
    let plan = exec.plan();
    let inputs = graph.random_inputs(options.seed);
    let reference = graph.run_whole(inputs.clone())?;
    let first = exec.run(inputs.clone())?;
    let names: Vec<String> = graph.outputs.iter().map(|e| e.name.clone()).collect();
    let checks = verify(&names, &reference, &first.outputs, options.tolerance);
    let verified = checks.iter().all(|c| c.ok);
    let mut report = RunReport {
        verified,
        max_abs_diff: checks.iter().map(|c| c.max_abs_diff).fold(0.0, f64::max),
        max_rel_diff: checks.iter().map(|c| c.max_rel_diff).fold(0.0, f64::max),
        tolerance: options.tolerance,
        outputs: checks,
        measured: None,
        predicted_ms: (plan.predicted.latency_us > 0.0).then(|| plan.predicted.latency_us / 1e3),
        prediction_error: None,
        baselines: vec![],
        best_baseline: None,
        speedup_vs_best_baseline: None,
        speedup_ci95: None,
        versus_best_baseline: None,
        stages: vec![],
        transfers: vec![],
        host_speed: None,
        handover_us: None,
        timeline: first.timeline.clone(),
        stream: None,
        elapsed_s: 0.0,
    };
    if !verified {
        report.elapsed_s = started.elapsed().as_secs_f64();
        return Ok(report);
    }

    let baselines = if options.baselines { BaselineRunner::start_all(&graph, processors)? } else { vec![] };
    let kernels = KernelRunner::start_all(exec.processors(), processors, &options.typical_reference_us)?;
    let rule = &options.rule;
    let series = 1 + baselines.len() + kernels.len();
    let mut plan_runs: Vec<Outcome> = vec![];
    let mut base_samples: Vec<Vec<f64>> = vec![vec![]; baselines.len()];
    let mut kernel_samples: Vec<Vec<f64>> = vec![vec![]; kernels.len()];
    // The plan's runs start on its home processor's cores, where the caller runs its stages: pinned
    // once for the series instead of moving there and back every run.
    let _pin = exec.pin_caller();
    let t0 = Instant::now();
    let mut rng = Rng(options.seed);
    for round in 0usize.. {
        let keep = round >= rule.warmup;
        for k in rng.shuffled(series) {
            match k {
                0 => {
                    let mut outcome = exec.run(inputs.clone())?;
                    outcome.outputs.clear();
                    if keep {
                        plan_runs.push(outcome);
                    }
                }
                b if b <= baselines.len() => {
                    let us = baselines[b - 1].time(&inputs)?;
                    if keep {
                        base_samples[b - 1].push(us);
                    }
                }
                k => {
                    let k = k - 1 - baselines.len();
                    let us = kernels[k].time()?;
                    if keep {
                        kernel_samples[k].push(us);
                    }
                }
            }
        }
        if !keep {
            continue;
        }
        let elapsed = t0.elapsed().as_secs_f64();
        let latencies: Vec<f64> = plan_runs.iter().map(|o| o.timeline.latency_us).collect();
        if rule.done(&latencies, elapsed) && base_samples.iter().all(|s| rule.done(s, elapsed)) {
            break;
        }
    }

    let latencies: Vec<f64> = plan_runs.iter().map(|o| o.timeline.latency_us).collect();
    let summary = summarize(&latencies);
    let median_ms = summary.median_us / 1e3;
    report.prediction_error = report.predicted_ms.map(|p| (p - median_ms) / median_ms);
    if !kernels.is_empty() {
        let speeds: Vec<KernelSpeed> =
            kernels.iter().zip(&kernel_samples).map(|(k, s)| KernelSpeed { processor: k.processor.clone(), measured_us: summarize(s).median_us, typical_us: k.typical_us }).collect();
        let slowdown = tandem_profile::geometric_mean(speeds.iter().map(|k| k.measured_us / k.typical_us));
        let predicted_ms = report.predicted_ms.map(|p| p * slowdown);
        report.host_speed = Some(HostSpeed { kernels: speeds, slowdown, predicted_ms, prediction_error: predicted_ms.map(|p| (p - median_ms) / median_ms) });
    }
    report.baselines = baselines
        .iter()
        .zip(&base_samples)
        .map(|(b, s)| {
            let sum = summarize(s);
            Baseline { name: format!("single:{}", b.processor), processor: b.processor.clone(), measured_ms: sum.median_us / 1e3, p90_ms: sum.p90_us / 1e3, samples: sum.samples, cv: sum.cv }
        })
        .collect();
    if let Some((k, best)) = report.baselines.iter().enumerate().min_by(|a, b| a.1.measured_ms.total_cmp(&b.1.measured_ms)) {
        report.best_baseline = Some(best.name.clone());
        report.speedup_vs_best_baseline = Some(best.measured_ms / median_ms);
        // Every kept round timed the plan once and each baseline once: index i pairs them.
        if let Some((lo, hi)) = tandem_profile::paired_ratio_ci(&base_samples[k], &latencies, CI_RESAMPLES) {
            report.speedup_ci95 = Some([lo, hi]);
            report.versus_best_baseline = Some(Verdict::of([lo, hi]));
        }
    }
    report.stages = stage_reports(exec, &plan_runs);
    report.transfers = transfer_reports(exec, &plan_runs);
    report.handover_us = handover(exec, &plan_runs);
    if let Some(rep) = plan_runs.iter().min_by(|a, b| (a.timeline.latency_us - summary.median_us).abs().total_cmp(&(b.timeline.latency_us - summary.median_us).abs())) {
        report.timeline = rep.timeline.clone();
    }
    report.measured = Some(summary);
    drop(baselines);

    if let Some(n) = options.stream.filter(|&n| n > 0) {
        let s = exec.stream(&inputs, n)?;
        let lat = summarize(&s.latencies_us);
        report.stream = Some(StreamReport {
            requests: s.requests,
            window: s.window,
            rps: s.rps,
            predicted_rps: (plan.predicted.period_us > 0.0).then(|| plan.predicted.throughput_rps()),
            sequential_rps: 1e3 / median_ms,
            latency_median_ms: lat.median_us / 1e3,
            elapsed_ms: s.elapsed_us / 1e3,
        });
    }
    report.elapsed_s = started.elapsed().as_secs_f64();
    Ok(report)
}

/// The median of timings, slow outliers dropped as [`summarize`] does.
fn median(v: impl Iterator<Item = f64>) -> f64 {
    summarize(&v.collect::<Vec<_>>()).median_us
}

fn stage_reports(exec: &Executor, runs: &[Outcome]) -> Vec<StageReport> {
    let plan = exec.plan();
    plan.stages
        .iter()
        .enumerate()
        .map(|(i, stage)| {
            let durations: Vec<f64> = runs.iter().map(|r| r.stages[i].end_us - r.stages[i].start_us).collect();
            let s = summarize(&durations);
            let predicted = plan.predicted.spans.iter().find(|p| p.stage == i && !p.name.starts_with("transfer") && !p.name.starts_with("join"));
            StageReport {
                stage: i,
                processor: stage.processor.clone(),
                ops: stage.ops.clone(),
                part: stage.part.as_ref().map(|p| [p.split, p.start, p.end]),
                op_shares: exec.part_shares(i).to_vec(),
                measured_us: s.median_us,
                p90_us: s.p90_us,
                start_us: median(runs.iter().map(|r| r.stages[i].start_us)),
                end_us: median(runs.iter().map(|r| r.stages[i].end_us)),
                wait_us: median(runs.iter().map(|r| r.stages[i].start_us - r.stages[i].ready_us)),
                predicted_us: predicted.map(|p| p.end_us - p.start_us),
                predicted_start_us: predicted.map(|p| p.start_us),
            }
        })
        .collect()
}

fn transfer_reports(exec: &Executor, runs: &[Outcome]) -> Vec<TransferReport> {
    let plan = exec.plan();
    plan.transfers
        .iter()
        .map(|t| {
            let name = format!("transfer {}->{}", t.from_stage, t.to_stage);
            let gaps = runs.iter().filter_map(|r| Some(r.stages.get(t.to_stage)?.start_us - r.stages.get(t.from_stage)?.done_us)).map(|g| g.max(0.0));
            let predicted = plan.predicted.spans.iter().find(|p| p.name == name);
            TransferReport {
                from_stage: t.from_stage,
                to_stage: t.to_stage,
                src: t.src.clone(),
                dst: t.dst.clone(),
                bytes: t.bytes,
                measured_us: median(gaps),
                predicted_us: predicted.map(|p| p.end_us - p.start_us),
            }
        })
        .collect()
}

fn handover(exec: &Executor, runs: &[Outcome]) -> Option<f64> {
    let stages = &exec.plan().stages;
    let waits: Vec<f64> = runs
        .iter()
        .flat_map(|r| {
            r.stages.iter().enumerate().filter_map(|(i, t)| {
                let trigger = t.trigger?;
                (stages[trigger].processor != stages[i].processor).then_some(t.start_us - t.ready_us)
            })
        })
        .collect();
    (!waits.is_empty()).then(|| median(waits.into_iter()))
}

type State = SimpleState<tract_onnx::prelude::TypedFact, Box<dyn tract_onnx::prelude::TypedOp>>;

/// The profiler's reference kernel on one of the plan's processors, on a worker pinned to it.
struct KernelRunner {
    processor: String,
    typical_us: f64,
    worker: Worker,
    kernel: Arc<Mutex<Kernel>>,
}

impl KernelRunner {
    /// One runner per processor of `used` that is a CPU processor of `processors` with a typical time.
    fn start_all(used: &[String], processors: &[Processor], typical: &BTreeMap<String, f64>) -> Result<Vec<KernelRunner>> {
        let mut runners = vec![];
        for p in processors.iter().filter(|p| p.kind == ProcessorKind::Cpu && used.contains(&p.id)) {
            let Some(&typical_us) = typical.get(&p.id).filter(|t| t.is_finite() && **t > 0.0) else { continue };
            let worker = Worker::spawn(p)?;
            match worker.run(Kernel::new)? {
                Ok(kernel) => runners.push(KernelRunner { processor: p.id.clone(), typical_us, worker, kernel: Arc::new(Mutex::new(kernel)) }),
                Err(e) => tracing::warn!(processor = %p.id, error = %chain(&e), "the reference kernel does not build here: the host's speed is not measured on it"),
            }
        }
        Ok(runners)
    }

    /// One warm run, timed inside the worker, µs.
    fn time(&self) -> Result<f64> {
        let kernel = self.kernel.clone();
        let processor = self.processor.clone();
        match self.worker.run(move || kernel.lock().unwrap_or_else(|e| e.into_inner()).time().map_err(|e| chain(&e))) {
            Ok(Ok(us)) => Ok(us),
            Ok(Err(reason)) => Err(ExecError::Reference { processor, reason }),
            Err(e) => Err(ExecError::Reference { processor, reason: e.to_string() }),
        }
    }
}

/// The whole model compiled for one processor, on a worker pinned to it.
struct BaselineRunner {
    processor: String,
    worker: Worker,
    state: Arc<Mutex<State>>,
}

impl BaselineRunner {
    /// One runner per CPU processor that compiles the whole model; a processor that cannot is skipped.
    fn start_all(graph: &Arc<tandem_graph::Graph>, processors: &[Processor]) -> Result<Vec<BaselineRunner>> {
        let mut runners = vec![];
        for p in processors.iter().filter(|p| p.kind == ProcessorKind::Cpu) {
            let worker = Worker::spawn(p)?;
            let (g, threads) = (graph.clone(), p.threads);
            let compiled = worker.run(move || -> tract_onnx::prelude::TractResult<State> {
                let plan = tandem_profile::measure::compile(g.optimized(), threads)?;
                SimpleState::new(&plan)
            })?;
            match compiled {
                Ok(state) => runners.push(BaselineRunner { processor: p.id.clone(), worker, state: Arc::new(Mutex::new(state)) }),
                Err(e) => tracing::warn!(processor = %p.id, error = %chain(&e), "the whole model does not compile here: no baseline"),
            }
        }
        Ok(runners)
    }

    /// One run, timed inside the worker, µs.
    fn time(&self, inputs: &tract_onnx::prelude::TVec<tandem_graph::TValue>) -> Result<f64> {
        let (state, inputs) = (self.state.clone(), inputs.clone());
        let name = format!("single:{}", self.processor);
        let timed = self.worker.run(move || {
            let mut state = state.lock().unwrap_or_else(|e| e.into_inner());
            let t = Instant::now();
            let r = state.run(inputs);
            (t.elapsed().as_secs_f64() * 1e6, r.map(|_| ()).map_err(|e| chain(&e)))
        });
        match timed {
            Ok((us, Ok(()))) => Ok(us),
            Ok((_, Err(reason))) => Err(ExecError::Baseline { name, reason }),
            Err(e) => Err(ExecError::Baseline { name, reason: e.to_string() }),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rng;

    #[test]
    fn every_series_runs_once_a_round_after_each_of_the_others_alike() {
        // The plan and three baselines: each runs once a round, and across rounds each runs right
        // after each other one about equally often (a rotating order always put the same one first).
        let series = 4;
        let mut rng = Rng(0);
        let mut after = vec![vec![0usize; series]; series];
        let rounds = 600;
        for _ in 0..rounds {
            let order = rng.shuffled(series);
            let mut seen = order.clone();
            seen.sort();
            assert_eq!(seen, (0..series).collect::<Vec<_>>());
            for w in order.windows(2) {
                after[w[1]][w[0]] += 1;
            }
        }
        // Each of the 12 ordered pairs is expected 600 · 3 / 12 = 150 times.
        for (b, row) in after.iter().enumerate() {
            for (a, &n) in row.iter().enumerate().filter(|&(a, _)| a != b) {
                assert!((110..=190).contains(&n), "{b} ran right after {a} {n} times in {rounds} rounds: {after:?}");
            }
        }
        assert_eq!(Rng(0).shuffled(series), Rng(0).shuffled(series), "seeded");
    }
}
