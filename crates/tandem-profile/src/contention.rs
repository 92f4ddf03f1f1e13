//! Contention profiles: how much each processor slows down under controlled interference.
//!
//! A plan tuned on an idle device meets a busy one in use: a UI thread on a neighbouring core, a camera
//! pipeline streaming through memory, another app on the very cores the plan counted on.
//! [`profile_contention`] measures what that costs: for each CPU processor and each [`Scenario`], the whole
//! model runs on the processor's pinned worker idle and with a [`BackgroundLoad`] running, and the ratio of
//! the medians (the *slowdown*) is stored in the `contention` table, one row per (device, processor,
//! model, scenario); profiling again replaces the row. The cost models condense these rows into factors
//! (tandem-cost's `ContentionFactors`).
//!
//! # Scenarios
//!
//! For a processor `P` owning cores `C`, with `O` the device's other cores:
//!
//! | scenario | background load | what it stands for |
//! |---|---|---|
//! | `compute-other` | one compute spinner per core of `O` | busy neighbours: shared power and thermal budget, shared clock domain |
//! | `memory-other` | one memory hog per core of `O` | a neighbour streaming through memory: shared bandwidth and last-level cache |
//! | `compute-same` | one compute spinner per core of `C` | `P`'s cores half available: the fair scheduler gives `P` about half of each |
//! | `compute-same-x3` | three compute spinners per core of `C` | `P`'s cores heavily loaded: about a quarter of each is left |
//! | `memory-same` | one memory hog per core of `C` | a memory-bound task sharing `P`'s cores: time and bandwidth both taken |
//!
//! The `-other` scenarios are skipped (and reported so) when `O` is empty, for the processor owning every
//! core. GPU processors are not profiled: a CPU load does not share their execution units.
//!
//! # Method
//!
//! A sample is the mean of enough back-to-back runs to last [`SAMPLE_SPAN_US`] (25 ms; the number is
//! calibrated once per scenario on idle runs, stored as `runs_per_sample`, and the same for both sides).
//! The scheduler shares a core between equal threads in slices of a few milliseconds: a run shorter than
//! a slice mostly fits between the load's slices and comes out as fast as idle, with a few runs delayed
//! by a whole slice, so the median of single runs would hide a core that is half taken. A sample spanning
//! several slices measures the share of the core the model gets, which is what it costs.
//!
//! Drift (heat, other processes, frequency changes) would masquerade as contention if all idle runs came
//! before all loaded ones, so the two alternate in blocks: idle, loaded, idle, loaded... Each block starts
//! the load (or not), discards one warm-up run, then takes samples for about an eighth of the scenario's
//! budget (at least two). Blocks go on until both sides satisfy the scenario's [`StopRule`]: enough
//! samples and a median stable within ±2 %, or the budget spent; at least two blocks of each. The medians
//! come from [`summarize`], slow outliers dropped and counted. An [`EnvSnapshot`] is taken before each
//! scenario and stored with its row; the snapshots' [`Throttling`] verdicts are merged into the report.

use std::sync::Arc;
use std::time::Instant;

use serde::Serialize;
use tandem_device::{BackgroundLoad, Device, EnvSnapshot, LoadKind, LoadSpec, Processor, Throttling, Worker};
use tandem_graph::Graph;
use tandem_store::{ContentionRow, Store};

use crate::measure::{compile, time_batches_until, Completion, Plan};
use crate::stats::{summarize, StopRule, Summary};
use crate::{ProfileError, Reporter, Result};

/// The least time one sample spans: several of the scheduler's slices (0.75 to 3 ms each, in periods of 6
/// to 24 ms under CFS and EEVDF), so that it sees the share of the core the model gets.
pub const SAMPLE_SPAN_US: f64 = 25_000.0;

/// One kind of controlled interference; see the module docs for the vocabulary.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
pub enum Scenario {
    /// One compute spinner on each core the processor does not own.
    #[serde(rename = "compute-other")]
    ComputeOther,
    /// One memory hog on each core the processor does not own.
    #[serde(rename = "memory-other")]
    MemoryOther,
    /// One compute spinner on each of the processor's cores: about half of each is left.
    #[serde(rename = "compute-same")]
    ComputeSame,
    /// Three compute spinners on each of the processor's cores: about a quarter of each is left.
    #[serde(rename = "compute-same-x3")]
    ComputeSameX3,
    /// One memory hog on each of the processor's cores.
    #[serde(rename = "memory-same")]
    MemorySame,
}

impl Scenario {
    /// Every scenario, in the order profiled.
    pub const ALL: [Scenario; 5] =
        [Scenario::ComputeOther, Scenario::MemoryOther, Scenario::ComputeSame, Scenario::ComputeSameX3, Scenario::MemorySame];

    /// Its name, as stored in the `contention` table.
    pub fn as_str(self) -> &'static str {
        match self {
            Scenario::ComputeOther => "compute-other",
            Scenario::MemoryOther => "memory-other",
            Scenario::ComputeSame => "compute-same",
            Scenario::ComputeSameX3 => "compute-same-x3",
            Scenario::MemorySame => "memory-same",
        }
    }

    /// The scenario named `name`.
    pub fn parse(name: &str) -> Option<Scenario> {
        Scenario::ALL.into_iter().find(|s| s.as_str() == name)
    }

    /// The background load of this scenario against `processor` on `device`, or `None` when it does not
    /// apply (an `-other` scenario for the processor that owns every core).
    pub fn load(self, processor: &Processor, device: &Device) -> Option<LoadSpec> {
        let others: Vec<usize> = device.all_cores().cores.iter().copied().filter(|c| !processor.cores.contains(c)).collect();
        let (kind, cores, threads_per_core) = match self {
            Scenario::ComputeOther => (LoadKind::Compute, others, 1),
            Scenario::MemoryOther => (LoadKind::Memory, others, 1),
            Scenario::ComputeSame => (LoadKind::Compute, processor.cores.clone(), 1),
            Scenario::ComputeSameX3 => (LoadKind::Compute, processor.cores.clone(), 3),
            Scenario::MemorySame => (LoadKind::Memory, processor.cores.clone(), 1),
        };
        (!cores.is_empty()).then_some(LoadSpec { kind, cores, threads_per_core, duty: 1.0 })
    }
}

impl std::fmt::Display for Scenario {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// What to measure and for how long.
#[derive(Debug, Clone, Serialize)]
pub struct ContentionOptions {
    /// CPU processor ids to profile; empty for every CPU processor of the device. A GPU named here is an
    /// error: contention profiles are for processors that share cores with the load.
    pub processors: Vec<String>,
    /// The scenarios, in order.
    pub scenarios: Vec<Scenario>,
    /// Time budget per (processor, scenario), seconds, idle and loaded blocks together. A model slower
    /// than the budget allows still gets two blocks of each side, each with at least two timed runs.
    pub budget_s: f64,
}

impl Default for ContentionOptions {
    fn default() -> Self {
        ContentionOptions { processors: vec![], scenarios: Scenario::ALL.to_vec(), budget_s: 2.0 }
    }
}

/// A scenario that was not measured, and why.
#[derive(Debug, Clone, Serialize)]
pub struct SkippedScenario {
    /// The processor.
    pub processor: String,
    /// The scenario.
    pub scenario: Scenario,
    /// Why.
    pub reason: String,
}

/// What [`profile_contention`] measured.
#[derive(Debug, Clone, Serialize)]
pub struct ContentionReport {
    /// The device fingerprint.
    pub device_id: String,
    /// The model's row id.
    pub model_id: i64,
    /// Processors profiled.
    pub processors: Vec<String>,
    /// The rows stored, by processor then scenario.
    pub rows: Vec<ContentionRow>,
    /// Scenarios that do not apply to a processor.
    pub skipped: Vec<SkippedScenario>,
    /// The environment before the first scenario ...
    pub env_before: EnvSnapshot,
    /// ... and after the last.
    pub env_after: EnvSnapshot,
    /// Throttling over every snapshot taken (before, at each scenario, after).
    pub throttling: Throttling,
    /// Wall-clock time, seconds.
    pub elapsed_s: f64,
}

/// The processors `options` names (every CPU processor by default), checked: an unknown id or a GPU is
/// an error.
pub fn contention_processors(device: &Device, options: &ContentionOptions) -> Result<Vec<Processor>> {
    if options.processors.is_empty() {
        return Ok(device.cpus().cloned().collect());
    }
    let named = device.processors_from_list(&options.processors)?;
    if let Some(gpu) = named.iter().find(|p| p.kind.is_gpu()) {
        return Err(ProfileError::Contention(format!(
            "{} is a GPU: contention profiles measure CPU processors, which share cores with the background load",
            gpu.id
        )));
    }
    Ok(named.into_iter().cloned().collect())
}

/// Measures `graph`'s slowdown on each processor under each scenario (see the module docs) and stores one
/// `contention` row per (processor, scenario), replacing earlier ones; each processor's rows are written
/// in one transaction once its scenarios are measured. The device, its processors and the model are
/// registered as a profile does, so a model never profiled before is fine.
pub fn profile_contention(graph: Arc<Graph>, device: &Device, store: &Store, options: &ContentionOptions, reporter: &dyn Reporter) -> Result<ContentionReport> {
    let started = Instant::now();
    if !(options.budget_s.is_finite() && options.budget_s > 0.0) {
        return Err(ProfileError::Contention(format!("the time budget per scenario must be positive, not {} s", options.budget_s)));
    }
    let processors = contention_processors(device, options)?;
    let model_id = crate::register(store, device, &graph)?;
    reporter.begin((processors.len() * options.scenarios.len()) as u64);
    let env_before = EnvSnapshot::take(device);
    let mut throttling = env_before.throttling(device);
    let mut rows = vec![];
    let mut skipped = vec![];
    for p in &processors {
        let worker = Worker::spawn(p)?;
        let (g, threads) = (graph.clone(), p.threads);
        let plan = worker
            .run(move || compile(g.optimized(), threads))?
            .map_err(|e| ProfileError::Contention(format!("{} does not run on {}: {e:#}", graph.name, p.id)))?;
        let mut batch = vec![];
        for &scenario in &options.scenarios {
            reporter.advance(&format!("{}: {scenario}", p.id));
            let Some(load) = scenario.load(p, device) else {
                skipped.push(SkippedScenario { processor: p.id.clone(), scenario, reason: "the processor owns every core: there is no other core to load".into() });
                continue;
            };
            let env = EnvSnapshot::take(device);
            throttling = throttling.merge(env.throttling(device));
            let (idle, loaded, runs_per_sample) = measure_scenario(&worker, &plan, &graph, &load, options.budget_s)
                .map_err(|e| ProfileError::Contention(format!("{} on {} under {scenario}: {e}", graph.name, p.id)))?;
            tracing::debug!(processor = %p.id, %scenario, idle_us = idle.median_us, loaded_us = loaded.median_us, "contention measured");
            batch.push(ContentionRow {
                device_id: device.id.clone(),
                processor_id: p.id.clone(),
                model_id,
                scenario: scenario.as_str().into(),
                load: load.describe(),
                idle_us: idle.median_us,
                loaded_us: loaded.median_us,
                slowdown: loaded.median_us / idle.median_us,
                idle_samples: idle.samples as i64,
                loaded_samples: loaded.samples as i64,
                runs_per_sample: runs_per_sample as i64,
                idle_cv: Some(idle.cv),
                loaded_cv: Some(loaded.cv),
                env: serde_json::to_string(&env).unwrap_or_default(),
                ..Default::default()
            });
        }
        store.insert_contention(&batch)?;
        rows.extend(batch);
    }
    let env_after = EnvSnapshot::take(device);
    throttling = throttling.merge(env_after.throttling(device));
    reporter.end();
    Ok(ContentionReport {
        device_id: device.id.clone(),
        model_id,
        processors: processors.iter().map(|p| p.id.clone()).collect(),
        rows,
        skipped,
        env_before,
        env_after,
        throttling,
        elapsed_s: started.elapsed().as_secs_f64(),
    })
}

/// Times the model idle and under `load` in alternating blocks until both sides satisfy the scenario's
/// rule; returns the (idle, loaded) summaries and the runs averaged into each sample.
fn measure_scenario(worker: &Worker, plan: &Plan, graph: &Arc<Graph>, load: &LoadSpec, budget_s: f64) -> std::result::Result<(Summary, Summary, usize), String> {
    // Calibration: a few idle runs tell how many make a sample span SAMPLE_SPAN_US.
    let calibration = StopRule { warmup: 1, min_samples: 3, max_samples: 3, target_ci: 0.0, budget_s };
    let runs = time_block(worker, plan, graph, &calibration, 1)?;
    let run_us = summarize(&runs).median_us.max(1.0);
    let runs_per_sample = (SAMPLE_SPAN_US / run_us).ceil().clamp(1.0, 10_000.0) as usize;
    let scenario_rule = StopRule { warmup: 0, min_samples: 6, max_samples: 400, target_ci: 0.02, budget_s };
    // One warm-up run per block: the first run after the load starts or stops meets cold caches and a
    // scheduler still settling. target_ci 0 makes the block end on time, not on stability.
    let block_rule = StopRule { warmup: 1, min_samples: 2, max_samples: 200, target_ci: 0.0, budget_s: budget_s / 8.0 };
    let (mut idle, mut loaded) = (vec![], vec![]);
    let started = Instant::now();
    for block in 0.. {
        let elapsed = started.elapsed().as_secs_f64();
        if block >= 2 && scenario_rule.done(&idle, elapsed) && scenario_rule.done(&loaded, elapsed) {
            break;
        }
        idle.extend(time_block(worker, plan, graph, &block_rule, runs_per_sample)?);
        let running = BackgroundLoad::start(load).map_err(|e| e.to_string())?;
        let samples = time_block(worker, plan, graph, &block_rule, runs_per_sample);
        let work = running.work_done();
        running.stop();
        loaded.extend(samples?);
        if work == 0 {
            // Not one chunk of load ran beside the block: the scheduler gave it no time at all, and the
            // "loaded" samples would be idle ones.
            tracing::warn!(load = %load.describe(), "the background load did no work during a block");
        }
    }
    Ok((summarize(&idle), summarize(&loaded), runs_per_sample))
}

/// One block of samples on the worker, each the mean of `runs_per_sample` whole runs.
fn time_block(worker: &Worker, plan: &Plan, graph: &Arc<Graph>, rule: &StopRule, runs_per_sample: usize) -> std::result::Result<Vec<f64>, String> {
    let (plan, graph, rule) = (plan.clone(), graph.clone(), rule.clone());
    worker
        .run(move || time_batches_until(&plan, &graph.random_inputs(0), &rule, Completion::Returned, runs_per_sample))
        .map_err(|e| e.to_string())?
        .map_err(|e| format!("{e:#}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use tandem_device::CoreInfo;

    fn device(cores: usize) -> Device {
        let layout: Vec<CoreInfo> = (0..cores).map(|core| CoreInfo { core, max_freq_khz: None }).collect();
        Device::from_layout("h".into(), "m".into(), 0, &layout)
    }

    #[test]
    fn scenarios_load_the_other_cores_or_the_same_ones() {
        let d = device(4);
        let p = d.processor("cpu:1").unwrap();
        let describe = |s: Scenario| s.load(p, &d).map(|l| l.describe());
        assert_eq!(describe(Scenario::ComputeOther).as_deref(), Some("compute spinner x1 on cores 0,2,3 (100%)"));
        assert_eq!(describe(Scenario::MemoryOther).as_deref(), Some("memory hog x1 on cores 0,2,3 (100%)"));
        assert_eq!(describe(Scenario::ComputeSame).as_deref(), Some("compute spinner x1 on core 1 (100%)"));
        assert_eq!(describe(Scenario::ComputeSameX3).as_deref(), Some("compute spinner x3 on core 1 (100%)"));
        assert_eq!(describe(Scenario::MemorySame).as_deref(), Some("memory hog x1 on core 1 (100%)"));
        // The processor owning every core has no other core to load.
        let all = d.all_cores();
        assert_eq!(Scenario::ComputeOther.load(all, &d), None);
        assert_eq!(Scenario::MemoryOther.load(all, &d), None);
        assert_eq!(Scenario::ComputeSame.load(all, &d).unwrap().cores, [0, 1, 2, 3]);
    }

    #[test]
    fn scenario_names_round_trip() {
        for s in Scenario::ALL {
            assert_eq!(Scenario::parse(s.as_str()), Some(s));
            assert_eq!(serde_json::to_value(s).unwrap(), s.as_str());
        }
        assert_eq!(Scenario::parse("compute"), None);
    }

    #[test]
    fn processors_default_to_the_cpus_and_a_gpu_is_refused() {
        let mut d = device(2);
        d.processors.push(Processor::gpu(tandem_device::ProcessorKind::Cuda, 0, None));
        let ids = |o: &ContentionOptions| contention_processors(&d, o).map(|ps| ps.into_iter().map(|p| p.id).collect::<Vec<_>>());
        assert_eq!(ids(&ContentionOptions::default()).unwrap(), ["cpu:0", "cpu:1", "cpu:0-1"]);
        let some = ContentionOptions { processors: vec!["cpu:1".into()], ..Default::default() };
        assert_eq!(ids(&some).unwrap(), ["cpu:1"]);
        let gpu = ContentionOptions { processors: vec!["cpu:1".into(), "cuda:0".into()], ..Default::default() };
        assert!(ids(&gpu).unwrap_err().to_string().contains("cuda:0 is a GPU"));
        let missing = ContentionOptions { processors: vec!["cpu:9".into()], ..Default::default() };
        assert!(matches!(ids(&missing).unwrap_err(), ProfileError::Device(_)));
    }

    #[test]
    fn a_small_model_is_profiled_and_stored_once_per_scenario() {
        let dir = tempfile::tempdir().unwrap();
        let store = Store::open(dir.path().join("t.db")).unwrap();
        let device = Device::discover().unwrap();
        let name = tandem_graph::zoo::default_model().name;
        let graph = Arc::new(Graph::load_bytes(name, &tandem_graph::zoo::build(name, 0).unwrap(), &[]).unwrap());
        let first = device.cpus().next().unwrap().id.clone();
        let options = ContentionOptions { processors: vec![first.clone()], scenarios: vec![Scenario::ComputeSame, Scenario::ComputeOther], budget_s: 0.05 };
        let report = profile_contention(graph.clone(), &device, &store, &options, &crate::Silent).unwrap();
        let applicable = options.scenarios.iter().filter(|s| s.load(device.processor(&first).unwrap(), &device).is_some()).count();
        assert_eq!(report.rows.len(), applicable);
        assert_eq!(report.rows.len() + report.skipped.len(), 2);
        for r in &report.rows {
            assert!(r.slowdown.is_finite() && r.slowdown > 0.0, "{r:?}");
            // Two blocks of at least two runs each, less any slow outliers dropped.
            assert!(r.idle_samples >= 2 && r.loaded_samples >= 2, "{r:?}");
            assert!(serde_json::from_str::<EnvSnapshot>(&r.env).is_ok());
        }
        // Again: replaced, not added.
        profile_contention(graph, &device, &store, &options, &crate::Silent).unwrap();
        assert_eq!(store.contention(&device.id).unwrap().len(), applicable);
    }
}
