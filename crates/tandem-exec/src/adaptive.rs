//! Running a plan that re-plans itself when the device changes under it.
//!
//! [`Adaptive`] serves requests one at a time with the current plan's [`Executor`]. After each, it
//! gives the [`Monitor`] the time each processor's stages took against the plan's prediction and, every
//! few tens of milliseconds, how busy other processes kept each core ([`CoreUse`]) that the plan leaves
//! unused, that is believed slowed, or that is under suspicion (those cores have no stages to time, or
//! stage times that cannot say which core changed or that it recovered). When the monitor reports a
//! sustained change of a core's speed, the planning problem is slowed by the believed factors
//! ([`tandem_plan::Problem::slowed`]), searched again (milliseconds), and the new plan compiled;
//! the switch happens between requests, so no request is dropped or runs half on one plan and half on
//! another. Plans are kept with their compiled executors and keyed by the beliefs they were made for:
//! when the load goes away, the idle plan comes back without compiling anything.
//!
//! Re-planning and compiling happen on the caller's thread between two requests: the request after a
//! switch starts a little later (the [`Event`] says how long it took), but no request is slower for it.
//! A server with an arrival process would build the new executor on a spare thread instead.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::time::Instant;

use serde::{Deserialize, Serialize};
use tandem_device::{CoreUse, Processor};
use tandem_graph::Graph;
use tandem_plan::{ModelRef, Plan, Problem, SearchOptions};
use tract_onnx::prelude::{TVec, TValue};

use crate::monitor::{Detection, Monitor, MonitorOptions, Reading};
use crate::{ExecOptions, Executor, Result};

/// How an [`Adaptive`] run watches and re-plans.
#[derive(Debug, Clone)]
pub struct AdaptiveOptions {
    /// When a change counts.
    pub monitor: MonitorOptions,
    /// How to search a new plan.
    pub search: SearchOptions,
    /// Read how busy each core is with other processes' work at most this often, ms (0 never reads).
    /// The OS counts in 10 ms ticks: shorter intervals say little.
    pub sample_ms: f64,
    /// Requests that must pass after a switch before the next one: a device whose load comes and
    /// goes faster than plans can pay for themselves (each switch costs a search and a compile) keeps
    /// its plan a while; beliefs still move, and the plan for them is made when the wait is over.
    pub cooldown: usize,
    /// The executors' options.
    pub exec: ExecOptions,
}

impl Default for AdaptiveOptions {
    fn default() -> Self {
        AdaptiveOptions { monitor: MonitorOptions::default(), search: SearchOptions::default(), sample_ms: 30.0, cooldown: 10, exec: ExecOptions::default() }
    }
}

/// What a new plan is searched from: the planning problem of the idle device and what the plan records.
#[derive(Debug, Clone)]
pub struct Replanner {
    /// The problem as profiled (idle device).
    pub problem: Problem,
    /// The model the plans are for.
    pub model: ModelRef,
    /// The device.
    pub device_id: String,
    /// The cost models the problem was built with.
    pub cost_model_version: Option<i64>,
}

impl Replanner {
    /// The best plan when each core runs `factor(cores)` times slower, and the search time in ms.
    pub fn plan(&self, factor: impl Fn(&[usize]) -> f64, options: &SearchOptions) -> Result<(Plan, f64)> {
        let factors: Vec<f64> = self.problem.processors.iter().map(|p| factor(&p.cores)).collect();
        let slowed = self.problem.slowed(&factors);
        let found = tandem_plan::search(&slowed, options)?;
        let plan = found.plan(&slowed, options.objective, self.model.clone(), &self.device_id, self.cost_model_version)?;
        Ok((plan, found.search_ms))
    }
}

/// One change of belief, and what was done about it: logged and stored with the run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Requests served before it (it takes effect from request `after_requests`, counting from 0).
    pub after_requests: usize,
    /// What the monitor saw.
    pub detection: Detection,
    /// Every core's believed factor after it.
    pub beliefs: BTreeMap<usize, f64>,
    /// Index of the plan before and after (into [`Adaptive::plans`]); equal when the search found
    /// the running plan still best.
    pub from_plan: usize,
    /// See `from_plan`.
    pub to_plan: usize,
    /// Whether the plan changed.
    pub switched: bool,
    /// Whether the plan came from the cache (made before for the same beliefs).
    pub reused: bool,
    /// The new plan's predicted latency under the new beliefs, ms.
    pub predicted_ms: f64,
    /// Search time, ms (0 when reused).
    pub search_ms: f64,
    /// Time to build and compile the new plan's executor, ms (0 when reused or unchanged).
    pub compile_ms: f64,
}

/// One request served.
#[derive(Debug)]
pub struct Served {
    /// Its index, from 0.
    pub index: usize,
    /// The plan it ran on (index into [`Adaptive::plans`]).
    pub plan: usize,
    /// Its latency, µs, as the executor measured it (call to outputs back).
    pub latency_us: f64,
    /// The model's outputs.
    pub outputs: TVec<TValue>,
    /// A change of belief it caused (taking effect from the next request).
    pub event: Option<Event>,
}

/// A plan made for some beliefs, ready to run.
struct Version {
    beliefs: BTreeMap<usize, f64>,
    exec: Executor,
}

/// Serves requests with the best plan for the device as it is now; see the module docs.
pub struct Adaptive {
    graph: Arc<Graph>,
    processors: Vec<Processor>,
    replanner: Replanner,
    options: AdaptiveOptions,
    monitor: Monitor,
    versions: Vec<Version>,
    current: usize,
    /// All cores of the device's CPU processors.
    cores: Vec<usize>,
    /// The last reading of the cores' use, and when it was taken.
    last_use: Option<(CoreUse, Instant)>,
    served: usize,
    events: Vec<Event>,
    /// Changes seen during a cooldown, acted on when it ends.
    pending: Option<Detection>,
    /// Core → factor the readings are multiplied by (tests inject slowdowns with it).
    injected: BTreeMap<usize, f64>,
    /// Readings come from the plan's predictions and the injected slowdowns only (tests).
    ideal: bool,
}

impl Adaptive {
    /// Starts with `plan` (the plan tuned for the idle device) on a device with `processors`.
    pub fn new(graph: Arc<Graph>, plan: &Plan, processors: &[Processor], replanner: Replanner, options: AdaptiveOptions) -> Result<Adaptive> {
        let exec = Executor::with_options(graph.clone(), plan, processors, options.exec.clone())?;
        let mut cores: Vec<usize> = processors.iter().flat_map(|p| p.cores.iter().copied()).collect();
        cores.sort_unstable();
        cores.dedup();
        let monitor = Monitor::new(cores.iter().copied(), options.monitor);
        let beliefs = monitor.beliefs().clone();
        let last_use = CoreUse::read().map(|u| (u, Instant::now()));
        Ok(Adaptive {
            graph,
            processors: processors.to_vec(),
            replanner,
            options,
            monitor,
            versions: vec![Version { beliefs, exec }],
            current: 0,
            cores,
            last_use,
            served: 0,
            events: vec![],
            pending: None,
            injected: BTreeMap::new(),
            ideal: false,
        })
    }

    /// The plan running now.
    pub fn plan(&self) -> &Plan {
        self.versions[self.current].exec.plan()
    }

    /// Index of the plan running now.
    pub fn current(&self) -> usize {
        self.current
    }

    /// Every plan made so far, in the order they were made (index 0: the plan it started with).
    pub fn plans(&self) -> Vec<&Plan> {
        self.versions.iter().map(|v| v.exec.plan()).collect()
    }

    /// Every change of belief so far.
    pub fn events(&self) -> &[Event] {
        &self.events
    }

    /// Each core's believed slowdown factor.
    pub fn beliefs(&self) -> &BTreeMap<usize, f64> {
        self.monitor.beliefs()
    }

    /// Makes every later reading of `core` (its processors' stages and its use) `factor` times
    /// longer than measured, as if the core had slowed down; 1 removes it. For tests of detection and
    /// switching that must not depend on how busy the machine running them is.
    #[doc(hidden)]
    pub fn inject_slowdown(&mut self, core: usize, factor: f64) {
        self.injected.insert(core, factor);
    }

    /// From now on the monitor reads each stage as taking exactly its predicted time, and each core
    /// as free, both times the injected slowdown: detection and switching no longer depend on how busy
    /// the machine is, while requests still run (and are verified) for real. For tests.
    #[doc(hidden)]
    pub fn ideal_readings(&mut self) {
        self.ideal = true;
    }

    /// Serves one request with the current plan, then takes its readings and re-plans if the monitor
    /// says so (the new plan serves the next request).
    pub fn request(&mut self, inputs: TVec<TValue>) -> Result<Served> {
        let index = self.served;
        let plan = self.current;
        let outcome = self.versions[plan].exec.run(inputs)?;
        // Core use first: a multi-core processor's stage change is spread over its cores by what they
        // read, freshest reading included.
        let mut readings = self.core_readings();
        readings.extend(self.stage_readings(self.versions[plan].exec.plan(), &outcome.stages));
        tracing::debug!(request = index, plan, ?readings, "adaptive: readings");
        self.served += 1;
        if let Some(d) = self.monitor.observe(&readings) {
            let pending = self.pending.get_or_insert_with(|| Detection { changes: vec![], evidence: String::new() });
            pending.changes.extend(d.changes);
            pending.evidence = if pending.evidence.is_empty() { d.evidence } else { format!("{}; {}", pending.evidence, d.evidence) };
        }
        let cooled = self.events.iter().rev().find(|e| e.switched).map_or(true, |e| self.served >= e.after_requests + self.options.cooldown);
        let event = match self.pending.take() {
            Some(detection) if cooled => Some(self.replan(detection)?),
            other => {
                self.pending = other;
                None
            }
        };
        Ok(Served { index, plan, latency_us: outcome.timeline.latency_us, outputs: outcome.outputs, event })
    }

    /// Every `sample_ms`: how busy other processes kept each core. Stage times alone are not enough:
    /// a core the plan leaves unused has none, a multi-core processor's cannot say which of its cores
    /// changed, and a plan switched to while a load was already running takes its baseline under that
    /// load and cannot see it. A core another busy thread wants all the time gives this process about
    /// half of it: the reading is `1 + share`.
    fn core_readings(&mut self) -> Vec<Reading> {
        if self.ideal {
            return self.cores.iter().map(|&core| Reading::Probe { core, measured_us: self.injected_factor(&[core]), idle_us: 1.0 }).collect();
        }
        if self.options.sample_ms <= 0.0 {
            return vec![];
        }
        let due = self.last_use.as_ref().map(|(_, t)| t.elapsed().as_secs_f64() * 1e3 >= self.options.sample_ms).unwrap_or(true);
        if !due {
            return vec![];
        }
        let Some(now) = CoreUse::read() else { return vec![] };
        let Some((before, _)) = self.last_use.replace((now.clone(), Instant::now())) else { return vec![] };
        let share = before.others_share(&now);
        self.cores
            .iter()
            .filter_map(|&core| {
                let s = share.get(&core)?;
                Some(Reading::Probe { core, measured_us: (1.0 + s) * self.injected_factor(&[core]), idle_us: 1.0 })
            })
            .collect()
    }

    fn injected_factor(&self, cores: &[usize]) -> f64 {
        cores.iter().map(|c| self.injected.get(c).copied().unwrap_or(1.0)).fold(1.0, f64::max)
    }

    /// Per processor of the plan: the time its stages took in this request, against their predicted
    /// time. A split part counts like any stage. The measured time includes each stage's wake-up
    /// delay (from the moment its lane could have started it, its input ready and the lane's previous
    /// stage done, to its start): on a core shared with a busy thread, a lane that slept is often
    /// let run at full speed but only after the other thread's time slice ends, so the slowdown shows
    /// in the wait, not in the run.
    fn stage_readings(&self, plan: &Plan, stages: &[crate::StageTime]) -> Vec<Reading> {
        let predicted: BTreeMap<usize, f64> =
            plan.predicted.spans.iter().filter(|s| s.name.starts_with("stage")).map(|s| (s.stage, s.end_us - s.start_us)).collect();
        let mut lanes: BTreeMap<&str, Vec<(crate::StageTime, f64)>> = BTreeMap::new();
        for (i, s) in plan.stages.iter().enumerate() {
            let (Some(t), Some(p)) = (stages.get(i), predicted.get(&s.id)) else { continue };
            lanes.entry(s.processor.as_str()).or_default().push((*t, *p));
        }
        lanes
            .into_iter()
            .filter_map(|(id, mut runs)| {
                runs.sort_by(|a, b| a.0.start_us.total_cmp(&b.0.start_us));
                let (mut measured, mut predicted, mut free_at) = (0.0, 0.0, 0.0f64);
                for (t, p) in runs {
                    let could_start = t.ready_us.max(free_at);
                    measured += if self.ideal { p } else { (t.start_us - could_start).max(0.0) + (t.end_us - t.start_us) };
                    predicted += p;
                    free_at = t.end_us;
                }
                let cores = self.processors.iter().find(|p| p.id == id)?.cores.clone();
                let measured_us = measured * self.injected_factor(&cores);
                Some(Reading::Stage { cores, measured_us, predicted_us: predicted })
            })
            .collect()
    }

    /// Finds (or makes) the plan for the monitor's new beliefs and makes it current.
    fn replan(&mut self, detection: Detection) -> Result<Event> {
        let beliefs = self.monitor.beliefs().clone();
        let from = self.current;
        let (to, reused, predicted_ms, search_ms, compile_ms) = match self.versions.iter().position(|v| v.beliefs == beliefs) {
            Some(i) => (i, true, self.versions[i].exec.plan().predicted.latency_us / 1e3, 0.0, 0.0),
            None => {
                let monitor = &self.monitor;
                let (plan, search_ms) = self.replanner.plan(|cores| monitor.factor(cores), &self.options.search)?;
                let predicted_ms = plan.predicted.latency_us / 1e3;
                if same_work(&plan, self.versions[from].exec.plan()) {
                    // The running plan is still the best: keep its executor (and its baselines).
                    (from, false, predicted_ms, search_ms, 0.0)
                } else {
                    let t = Instant::now();
                    let exec = Executor::with_options(self.graph.clone(), &plan, &self.processors, self.options.exec.clone())?;
                    let compile_ms = t.elapsed().as_secs_f64() * 1e3;
                    self.versions.push(Version { beliefs: beliefs.clone(), exec });
                    (self.versions.len() - 1, false, predicted_ms, search_ms, compile_ms)
                }
            }
        };
        if to != from {
            self.current = to;
            self.monitor.new_plan();
        }
        let event = Event { after_requests: self.served, detection, beliefs, from_plan: from, to_plan: to, switched: to != from, reused, predicted_ms, search_ms, compile_ms };
        tracing::info!(after = event.after_requests, from, to, evidence = %event.detection.evidence, "adaptive: beliefs changed");
        self.events.push(event.clone());
        Ok(event)
    }
}

/// Whether two plans run the same stages on the same processors (their predictions may differ).
fn same_work(a: &Plan, b: &Plan) -> bool {
    a.stages.len() == b.stages.len()
        && a.stages.iter().zip(&b.stages).all(|(x, y)| x.processor == y.processor && x.ops == y.ops && x.part == y.part)
        && a.splits == b.splits
}
