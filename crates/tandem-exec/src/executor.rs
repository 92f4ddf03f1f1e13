//! The executor: a plan's stages compiled once, on persistent pinned lanes, run request after request.
//!
//! A request flows without a coordinator thread. The caller fills the model inputs and hands every stage
//! that reads only them to its processor's lane. A lane runs a stage, stores its outputs (an `Arc`'d
//! tensor handed over, never copied: the processors share memory), and hands each stage this made ready
//! to that stage's lane itself. The parts of a split store their outputs beside each other; the last part
//! to finish concatenates them once into the chain's output before any consumer is released. The lane
//! finishing the last stage tells the caller.
//!
//! In [`Executor::run`] the caller is itself the lane of one processor, the *home* lane (the last
//! stage's, when that processor is a single core): it pins itself to that core and runs that lane's
//! stages, waiting for them and for the end of the request on one channel. Handing work to a
//! sleeping thread and being woken by it cost about 100 µs a request in this VM (two cores waking
//! from idle), 6-8% of a 1.6 ms model; a one-stage plan on one core now runs on the thread that asked
//! for it, like tract's plain run. On a multi-core processor tract's pool threads do the work and
//! wake for every parallel op anyway, and there the caller running it measured about 2% slower
//! than its lane (mobilenet_v2 on `cpu:0-1`, `bench_baseline`), so such a plan's last processor
//! keeps its lane. Each processor runs its stages in the plan's order, and
//! processors sharing a core (`cpu:0` and `cpu:0-1`) never run at once within a request, as the plan's
//! predicted timeline assumes. A failing or panicking stage records the error, stages already running
//! finish, nothing new starts, and the caller is told once no stage of the request is left in flight:
//! an error, never a hang.

use std::collections::{BTreeSet, HashMap};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{mpsc, Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tandem_device::{Pinned, Processor, ProcessorKind};
use tandem_graph::{Graph, GraphError, TValue, TVec, Tensor, TypedModel, ValueId};
use tandem_plan::{Plan, PlanError, Span, Timeline};
use tract_onnx::prelude::{IntoTValue, TractResult, TypedFact, TypedOp};
use tract_onnx::tract_core::plan::{SimplePlan, SimpleState};
use tract_onnx::tract_core::runtime::RunOptions;

use crate::error::{chain, panic_message, ExecError, Result};
use crate::lanes::{poll, Job, Lanes};

type Compiled = Arc<SimplePlan<TypedFact, Box<dyn TypedOp>>>;
type State = SimpleState<TypedFact, Box<dyn TypedOp>>;

/// How an [`Executor`] behaves.
#[derive(Debug, Clone)]
pub struct ExecOptions {
    /// A request (or a stream) waiting longer than this for its next result ends with
    /// [`ExecError::Timeout`].
    pub timeout: Duration,
    /// How long a lane keeps polling for its next stage after finishing one before it sleeps, while
    /// a request is in flight (a sleeping lane takes tens of microseconds to wake, which a plan pays
    /// at every hand-over between processors). Zero never polls.
    pub spin: Duration,
    /// Whether [`Executor::run`]'s caller runs the home lane's stages itself when the plan's last
    /// processor is a single core (see the module's docs); `false` hands every stage to a lane and
    /// waits (`bench_baseline` compares the two).
    pub caller_runs_home: bool,
}

impl Default for ExecOptions {
    fn default() -> Self {
        ExecOptions { timeout: Duration::from_secs(300), spin: Duration::from_micros(200), caller_runs_home: true }
    }
}

/// When one stage of one request ran, in microseconds from the request's start.
#[derive(Debug, Clone, Copy, Default, PartialEq, Serialize, Deserialize)]
pub struct StageTime {
    /// Its last dependency finished (and it was handed to its lane); 0 for stages reading only inputs.
    pub ready_us: f64,
    /// Its lane started running it.
    pub start_us: f64,
    /// Its model returned.
    pub end_us: f64,
    /// Its outputs were stored (for the last part of a split: after the join) and its successors handed
    /// over.
    pub done_us: f64,
    /// The stage whose completion made it ready (`None` for the first stages).
    pub trigger: Option<usize>,
}

/// What one request returned.
#[derive(Debug, Clone)]
pub struct Outcome {
    /// The model's outputs, in the model's order.
    pub outputs: TVec<TValue>,
    /// The measured timeline: `stage N` spans, `transfer A->B` spans from the producer's completion to
    /// the consumer's start (hand-over, wake-up and any wait for the consumer's processor), and
    /// `join split K` spans; `latency_us` from the call to the outputs being back with the caller.
    pub timeline: Timeline,
    /// Per stage, in plan order.
    pub stages: Vec<StageTime>,
}

/// What a pipelined stream of requests did.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StreamOutcome {
    /// Requests run.
    pub requests: usize,
    /// Requests in flight at once at most.
    pub window: usize,
    /// From the first request's start to the last one's end, µs.
    pub elapsed_us: f64,
    /// Requests per second.
    pub rps: f64,
    /// Each request's latency (admission to outputs), µs, in completion order.
    pub latencies_us: Vec<f64>,
}

/// A plan made runnable: every stage and split part compiled once for its processor, one persistent
/// pinned lane per processor the plan uses.
///
/// ```no_run
/// # use std::sync::Arc;
/// # fn demo(graph: Arc<tandem_graph::Graph>, plan: &tandem_plan::Plan) -> tandem_exec::Result<()> {
/// let device = tandem_device::Device::discover()?;
/// let exec = tandem_exec::Executor::new(graph.clone(), plan, &device.processors)?;
/// let outcome = exec.run(graph.random_inputs(0))?;
/// println!("{} µs", outcome.timeline.latency_us);
/// # Ok(()) }
/// ```
pub struct Executor {
    // Dropped before the lanes: its senders must be gone for the lanes' loops to end.
    inner: Arc<Inner>,
    /// Held for its `Drop`, which joins the lanes' workers once `inner` is gone.
    _lanes: Lanes,
    graph: Arc<Graph>,
    plan: Plan,
    options: ExecOptions,
    /// Per stage, [`Executor::part_shares`].
    part_shares: Vec<Vec<(usize, f64)>>,
}

impl std::fmt::Debug for Executor {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Executor").field("model", &self.graph.name).field("stages", &self.plan.stages.len()).field("processors", &self.inner.lane_names).finish()
    }
}

/// Where a stage's outputs go.
enum StageOut {
    /// Slots of the values it produces, in the stage model's output order.
    Values(Vec<usize>),
    /// Part `index` of split `split`.
    Part { split: usize, index: usize },
}

struct StageTask {
    lane: usize,
    processor: String,
    compiled: Compiled,
    state: Mutex<State>,
    inputs: Vec<usize>,
    output: StageOut,
    /// Stages whose pending count this one's completion decrements.
    succ: Vec<usize>,
    /// Stages (data producers and the plan's deps) it waits for.
    waits_for: u32,
}

struct SplitTask {
    axis: usize,
    parts: usize,
    output: usize,
    /// The shape the optimised graph holds the joined value in, when it differs from the parts' own
    /// layout (see [`build_models`]).
    reshape: Option<Vec<usize>>,
}

struct Inner {
    stages: Vec<StageTask>,
    splits: Vec<SplitTask>,
    slots: usize,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    /// Per slot, how many stages read it (a value is dropped after its last reader took it).
    readers: Vec<u32>,
    /// Per slot, whether it is a model output (never dropped).
    keep: Vec<bool>,
    lanes: Vec<mpsc::Sender<Job>>,
    lane_names: Vec<String>,
    /// The lane whose stages [`Executor::run`]'s caller runs itself, with its processor's cores: the
    /// last stage's, when its processor is a single core.
    home: Option<(usize, Vec<usize>)>,
    /// Transfers of the plan, for the measured timeline: (from, to, destination processor).
    transfers: Vec<(usize, usize, String)>,
    /// Stage forced to panic (tests of failure handling); `usize::MAX` for none.
    sabotage: AtomicUsize,
    /// Requests in flight: lanes poll for work only while there are some.
    busy: Arc<AtomicUsize>,
}

impl Executor {
    /// Prepares `plan` for `graph` on a device with `processors`: checks the plan (structure, model,
    /// processors), builds each stage and split part as a tract model, starts one pinned lane per
    /// processor the plan uses and compiles every model on its lane (a multi-core processor's models
    /// share one thread pool sized to its cores).
    pub fn new(graph: Arc<Graph>, plan: &Plan, processors: &[Processor]) -> Result<Executor> {
        Executor::with_options(graph, plan, processors, ExecOptions::default())
    }

    /// [`Executor::new`] with options.
    pub fn with_options(graph: Arc<Graph>, plan: &Plan, processors: &[Processor], options: ExecOptions) -> Result<Executor> {
        plan.validate()?;
        plan.check_model(&tandem_plan::build::model_ref(&graph))?;
        let ids: Vec<&str> = processors.iter().map(|p| p.id.as_str()).collect();
        plan.check_processors(&ids)?;

        // Lanes: the plan's processors in first-use order.
        let mut lane_names: Vec<String> = vec![];
        for s in &plan.stages {
            if !lane_names.contains(&s.processor) {
                lane_names.push(s.processor.clone());
            }
        }
        let lane_procs: Vec<&Processor> = lane_names.iter().map(|id| processors.iter().find(|p| &p.id == id).expect("checked above")).collect();
        let lane_of: HashMap<&str, usize> = lane_names.iter().enumerate().map(|(i, n)| (n.as_str(), i)).collect();

        // The models, and where their values live.
        let built = build_models(&graph, plan)?;
        let stage_lanes: Vec<usize> = plan.stages.iter().map(|s| lane_of[s.processor.as_str()]).collect();
        let wiring = wire(&graph, plan, &built, &lane_procs, &stage_lanes)?;

        let busy = Arc::new(AtomicUsize::new(0));
        let lanes = Lanes::spawn(&lane_procs, options.spin, busy.clone())?;
        let mut pools = vec![];
        for (lane, p) in lane_procs.iter().enumerate() {
            let first = stage_lanes.iter().position(|&l| l == lane).unwrap_or(0);
            if p.kind != ProcessorKind::Cpu {
                let reason = "the executor runs stages on CPU processors only so far".to_string();
                return Err(ExecError::Compile { stage: first, processor: p.id.clone(), reason });
            }
            let threads = p.threads;
            // Made on the lane, so the pool's threads inherit its cores.
            let pool = lanes.run(lane, move || tandem_profile::measure::pool(threads).map_err(|e| chain(&e)));
            let fail = |reason| ExecError::Compile { stage: first, processor: p.id.clone(), reason };
            pools.push(pool.map_err(fail)?.map_err(fail)?);
        }
        let mut stages = vec![];
        for (i, (stage, model)) in plan.stages.iter().zip(built.models).enumerate() {
            let lane = stage_lanes[i];
            let executor = pools[lane].clone();
            let compile = move || -> TractResult<(Compiled, State)> {
                let compiled = Arc::new(SimplePlan::build(model, &RunOptions { executor, ..Default::default() })?);
                let state = SimpleState::new(&compiled)?;
                Ok((compiled, state))
            };
            let fail = |reason: String| ExecError::Compile { stage: i, processor: stage.processor.clone(), reason };
            let compiled = lanes.run(lane, compile).map_err(fail)?.map_err(|e| fail(chain(&e)))?;
            let w = &wiring.stages[i];
            stages.push(StageTask {
                lane,
                processor: stage.processor.clone(),
                compiled: compiled.0,
                state: Mutex::new(compiled.1),
                inputs: w.inputs.clone(),
                output: match stage.part.as_ref() {
                    None => StageOut::Values(w.outputs.clone()),
                    Some(p) => StageOut::Part { split: p.split, index: plan.splits[p.split].stages.iter().position(|&s| s == i).expect("validated") },
                },
                succ: w.succ.clone(),
                waits_for: w.waits_for,
            });
        }
        let inner = Inner {
            stages,
            splits: plan
                .splits
                .iter()
                .zip(&wiring.split_outputs)
                .zip(built.reshapes)
                .map(|((s, &output), reshape)| SplitTask { axis: s.axis, parts: s.stages.len(), output, reshape })
                .collect(),
            slots: wiring.slots,
            input_slots: wiring.input_slots,
            output_slots: wiring.output_slots,
            readers: wiring.readers,
            keep: wiring.keep,
            lanes: (0..lane_names.len()).map(|l| lanes.sender(l)).collect(),
            lane_names,
            home: stage_lanes.last().copied().filter(|&l| lane_procs[l].threads == 1 && options.caller_runs_home).map(|l| (l, lane_procs[l].cores.clone())),
            transfers: plan.transfers.iter().map(|t| (t.from_stage, t.to_stage, t.dst.clone())).collect(),
            sabotage: AtomicUsize::new(usize::MAX),
            busy,
        };
        Ok(Executor { inner: Arc::new(inner), _lanes: lanes, graph, plan: plan.clone(), options, part_shares: built.shares })
    }

    /// The plan being run.
    pub fn plan(&self) -> &Plan {
        &self.plan
    }

    /// What part stage `stage` computes of each op of its split's chain: per op, the axis cut and
    /// the share computed ([`Graph::part_shares`], kept from building the part); empty for a whole
    /// stage.
    pub fn part_shares(&self, stage: usize) -> &[(usize, f64)] {
        self.part_shares.get(stage).map(Vec::as_slice).unwrap_or_default()
    }

    /// The model.
    pub fn graph(&self) -> &Arc<Graph> {
        &self.graph
    }

    /// The processors the plan uses, one lane each.
    pub fn processors(&self) -> &[String] {
        &self.inner.lane_names
    }

    /// Runs one request and returns the model's outputs with the measured timeline.
    ///
    /// The calling thread runs the home lane's stages itself (see the module's docs), pinned to that
    /// processor's cores for the call unless it is already ([`Executor::pin_caller`] keeps it there
    /// across calls). A stage the caller runs cannot be timed out; the others are, by
    /// [`ExecOptions::timeout`].
    pub fn run(&self, inputs: TVec<TValue>) -> Result<Outcome> {
        let Some((home, _)) = self.inner.home else {
            let (tx, rx) = mpsc::channel();
            let req = self.start(0, inputs, Caller::Stream(tx))?;
            self.wait(&rx)?;
            let latency = req.t0.elapsed().as_secs_f64() * 1e6;
            return self.collect(&req, latency);
        };
        let _pin = self.pin_caller();
        let (tx, rx) = mpsc::channel();
        let req = self.start(0, inputs, Caller::Home { lane: home, tx })?;
        loop {
            match poll(&rx, self.options.spin, &self.inner.busy, Some(self.options.timeout)) {
                Some(Home::Stage(job)) => job(),
                Some(Home::Over) => break,
                None => return Err(ExecError::Timeout { seconds: self.options.timeout.as_secs_f64() }),
            }
        }
        let latency = req.t0.elapsed().as_secs_f64() * 1e6;
        self.collect(&req, latency)
    }

    /// Pins the calling thread to the cores of the processor whose stages [`Executor::run`] runs on
    /// it, until the guard is dropped. `run` does this itself for each call; a thread holding the
    /// guard across calls saves moving to those cores and back every time (a move onto an idle core
    /// waits for it to wake). Where the OS refuses, the thread stays where it is.
    pub fn pin_caller(&self) -> Option<Pinned> {
        let (_, cores) = self.inner.home.as_ref()?;
        Pinned::to(cores).map_err(|e| tracing::debug!(error = %e, ?cores, "the caller runs unpinned")).ok()
    }

    /// Runs `n` requests on the same inputs through the plan, pipelined: up to one more request than
    /// the plan has processors is in flight, so a request's first stages run while the one before
    /// finishes its last; each lane runs one stage at a time, in the order they became ready. (Across
    /// requests, a plan using processors that share a core, `cpu:0` and `cpu:0-1`, can run them at
    /// once: such plans gain nothing from streaming.)
    pub fn stream(&self, inputs: &TVec<TValue>, n: usize) -> Result<StreamOutcome> {
        let window = (self.inner.lanes.len() + 1).clamp(1, n.max(1));
        let (tx, rx) = mpsc::channel();
        let t0 = Instant::now();
        let mut in_flight: Vec<Option<Arc<Req>>> = vec![None; n];
        let mut latencies = Vec::with_capacity(n);
        let mut admitted = 0;
        let mut first_error = None;
        while admitted < window.min(n) {
            in_flight[admitted] = Some(self.start(admitted, inputs.clone(), Caller::Stream(tx.clone()))?);
            admitted += 1;
        }
        let mut running = admitted;
        while running > 0 {
            let id = self.wait(&rx)?;
            running -= 1;
            let req = in_flight[id].take().expect("each request finishes once");
            latencies.push(req.t0.elapsed().as_secs_f64() * 1e6);
            if let Some(e) = req.lock().error.take() {
                first_error.get_or_insert(e);
            }
            if first_error.is_none() && admitted < n {
                in_flight[admitted] = Some(self.start(admitted, inputs.clone(), Caller::Stream(tx.clone()))?);
                admitted += 1;
                running += 1;
            }
        }
        if let Some(e) = first_error {
            return Err(e);
        }
        let elapsed_us = t0.elapsed().as_secs_f64() * 1e6;
        Ok(StreamOutcome { requests: n, window, elapsed_us, rps: n as f64 / (elapsed_us / 1e6), latencies_us: latencies })
    }

    /// Makes every later request panic in `stage` (tests of failure handling).
    #[doc(hidden)]
    pub fn inject_panic(&self, stage: Option<usize>) {
        self.inner.sabotage.store(stage.unwrap_or(usize::MAX), Ordering::Relaxed);
    }

    fn wait(&self, rx: &mpsc::Receiver<usize>) -> Result<usize> {
        rx.recv_timeout(self.options.timeout).map_err(|_| ExecError::Timeout { seconds: self.options.timeout.as_secs_f64() })
    }

    /// Creates request `id` and hands its first stages to their lanes.
    fn start(&self, id: usize, inputs: TVec<TValue>, caller: Caller) -> Result<Arc<Req>> {
        let inner = &self.inner;
        if inputs.len() != inner.input_slots.len() {
            return Err(ExecError::Inputs { expected: inner.input_slots.len(), given: inputs.len() });
        }
        let mut slots: Vec<Option<TValue>> = vec![None; inner.slots];
        for (&s, v) in inner.input_slots.iter().zip(inputs) {
            slots[s] = Some(v);
        }
        let first: Vec<usize> = (0..inner.stages.len()).filter(|&s| inner.stages[s].waits_for == 0).collect();
        let state = ReqState {
            slots,
            readers: inner.readers.clone(),
            pending: inner.stages.iter().map(|s| s.waits_for).collect(),
            parts: inner.splits.iter().map(|s| vec![None; s.parts]).collect(),
            parts_left: inner.splits.iter().map(|s| s.parts).collect(),
            left: inner.stages.len(),
            outstanding: first.len(),
            error: None,
            finished: false,
            times: vec![StageTime::default(); inner.stages.len()],
            joins: vec![None; inner.splits.len()],
        };
        inner.busy.fetch_add(1, Ordering::Relaxed);
        let req = Arc::new(Req { inner: inner.clone(), id, t0: Instant::now(), st: Mutex::new(state), caller });
        for s in first {
            dispatch(&req, s);
        }
        Ok(req)
    }

    fn collect(&self, req: &Req, latency_us: f64) -> Result<Outcome> {
        let inner = &self.inner;
        let mut st = req.lock();
        if let Some(e) = st.error.take() {
            return Err(e);
        }
        let outputs = inner
            .output_slots
            .iter()
            .map(|&s| st.slots[s].clone().ok_or_else(|| ExecError::Plan(PlanError::Invalid("a model output was not computed".into()))))
            .collect::<Result<TVec<_>>>()?;
        let mut spans = vec![];
        let mut busy: HashMap<&str, f64> = HashMap::new();
        for (i, (t, task)) in st.times.iter().zip(&inner.stages).enumerate() {
            spans.push(Span { name: format!("stage {i}"), processor: task.processor.clone(), stage: i, start_us: t.start_us, end_us: t.end_us });
            *busy.entry(task.processor.as_str()).or_default() += t.end_us - t.start_us;
        }
        for (from, to, dst) in &inner.transfers {
            if let (Some(a), Some(b)) = (st.times.get(*from), st.times.get(*to)) {
                let start = a.done_us.min(b.start_us);
                spans.push(Span { name: format!("transfer {from}->{to}"), processor: dst.clone(), stage: *to, start_us: start, end_us: b.start_us });
            }
        }
        for (k, j) in st.joins.iter().enumerate() {
            if let Some((start, end, stage)) = *j {
                let processor = inner.stages[stage].processor.clone();
                *busy.entry(inner.stages[stage].processor.as_str()).or_default() += end - start;
                spans.push(Span { name: format!("join split {k}"), processor, stage, start_us: start, end_us: end });
            }
        }
        let period_us = busy.values().copied().fold(0.0, f64::max);
        let stages = std::mem::take(&mut st.times);
        Ok(Outcome { outputs, timeline: Timeline { latency_us, period_us, spans }, stages })
    }
}

/// One request in flight.
struct Req {
    inner: Arc<Inner>,
    id: usize,
    t0: Instant,
    st: Mutex<ReqState>,
    caller: Caller,
}

/// Who started a request, and how it is told the request is over.
enum Caller {
    /// [`Executor::stream`]: the request's id, when it is over.
    Stream(mpsc::Sender<usize>),
    /// [`Executor::run`]: the caller runs lane `lane`'s stages itself; they come on `tx`, and so does
    /// the end of the request.
    Home { lane: usize, tx: mpsc::Sender<Home> },
}

/// What the caller of [`Executor::run`] waits for.
enum Home {
    Stage(Job),
    Over,
}

struct ReqState {
    slots: Vec<Option<TValue>>,
    readers: Vec<u32>,
    pending: Vec<u32>,
    parts: Vec<Vec<Option<TValue>>>,
    parts_left: Vec<usize>,
    /// Stages not yet completed.
    left: usize,
    /// Stages handed to a lane and not yet finished (completed, failed or skipped).
    outstanding: usize,
    error: Option<ExecError>,
    finished: bool,
    times: Vec<StageTime>,
    /// Per split: (start, end, stage that joined).
    joins: Vec<Option<(f64, f64, usize)>>,
}

impl Req {
    fn lock(&self) -> MutexGuard<'_, ReqState> {
        // A panic while holding the lock is a bug in this file, not in a stage; the state is still
        // consistent enough to report an error.
        self.st.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn now_us(&self) -> f64 {
        self.t0.elapsed().as_secs_f64() * 1e6
    }
}

impl ReqState {
    /// Marks one handed-out stage finished; whether the request is now over (the caller must be told).
    fn finish_one(&mut self) -> bool {
        self.outstanding -= 1;
        let over = self.left == 0 || (self.error.is_some() && self.outstanding == 0);
        if over && !self.finished {
            self.finished = true;
            return true;
        }
        false
    }

    fn fail(&mut self, e: ExecError) -> bool {
        self.error.get_or_insert(e);
        self.finish_one()
    }
}

/// A stage of a request on its way to, or running on, its lane. Dropped without having run (its lane
/// is gone), it records the loss so that the request still ends.
struct Ticket {
    req: Arc<Req>,
    stage: usize,
    armed: bool,
}

fn dispatch(req: &Arc<Req>, stage: usize) {
    let ticket = Ticket { req: req.clone(), stage, armed: true };
    let lane = req.inner.stages[stage].lane;
    let job: Job = Box::new(move || ticket.execute());
    // If the lane's loop (or the caller) is gone the job comes back in the error and is dropped here:
    // its ticket reports the loss.
    match &req.caller {
        Caller::Home { lane: home, tx } if *home == lane => drop(tx.send(Home::Stage(job))),
        _ => drop(req.inner.lanes[lane].send(job)),
    }
}

impl Ticket {
    fn execute(mut self) {
        self.armed = false;
        let req = self.req.clone();
        let inner = &req.inner;
        let i = self.stage;
        let task = &inner.stages[i];
        // Take the inputs: the last reader of a value takes it out of the request.
        let inputs = {
            let mut st = req.lock();
            if st.error.is_some() {
                let over = st.finish_one();
                drop(st);
                return notify(&req, over);
            }
            let mut inputs = TVec::with_capacity(task.inputs.len());
            for &s in &task.inputs {
                st.readers[s] -= 1;
                let v = if st.readers[s] == 0 && !inner.keep[s] { st.slots[s].take() } else { st.slots[s].clone() };
                match v {
                    Some(v) => inputs.push(v),
                    None => {
                        let over = st.fail(ExecError::Stage { stage: i, processor: task.processor.clone(), reason: "an input was not computed".into() });
                        drop(st);
                        return notify(&req, over);
                    }
                }
            }
            inputs
        };
        let start = req.now_us();
        let result = catch_unwind(AssertUnwindSafe(|| {
            if inner.sabotage.load(Ordering::Relaxed) == i {
                panic!("injected failure in stage {i}");
            }
            let mut state = task.state.lock().unwrap_or_else(|e| e.into_inner());
            state.run(inputs)
        }));
        let end = req.now_us();
        let outputs = match result {
            Ok(Ok(outputs)) => outputs,
            Ok(Err(e)) => {
                let over = req.lock().fail(ExecError::Stage { stage: i, processor: task.processor.clone(), reason: chain(&e) });
                return notify(&req, over);
            }
            Err(payload) => {
                // The state may be half-way through a run: start the stage afresh next time.
                if let Ok(fresh) = SimpleState::new(&task.compiled) {
                    *task.state.lock().unwrap_or_else(|e| e.into_inner()) = fresh;
                }
                let over = req.lock().fail(ExecError::Panicked { stage: i, processor: task.processor.clone(), message: panic_message(payload) });
                return notify(&req, over);
            }
        };
        complete(&req, i, start, end, outputs);
    }
}

impl Drop for Ticket {
    fn drop(&mut self) {
        if self.armed {
            let task = &self.req.inner.stages[self.stage];
            let over = self.req.lock().fail(ExecError::WorkerGone { stage: self.stage, processor: task.processor.clone() });
            notify(&self.req, over);
        }
    }
}

/// Tells the caller when the request is over (and stops the lanes polling for it).
fn notify(req: &Req, over: bool) {
    if over {
        req.inner.busy.fetch_sub(1, Ordering::Relaxed);
        match &req.caller {
            Caller::Stream(tx) => drop(tx.send(req.id)),
            Caller::Home { tx, .. } => drop(tx.send(Home::Over)),
        }
    }
}

/// Stores a finished stage's outputs (joining a split when it was the last part), releases the stages
/// it made ready and tells the caller when the request is over.
fn complete(req: &Arc<Req>, i: usize, start: f64, end: f64, mut outputs: TVec<TValue>) {
    let inner = &req.inner;
    let task = &inner.stages[i];
    let mut st = req.lock();
    st.times[i].start_us = start;
    st.times[i].end_us = end;
    match &task.output {
        StageOut::Values(slots) => {
            if outputs.len() != slots.len() {
                let over = st.fail(ExecError::Stage { stage: i, processor: task.processor.clone(), reason: format!("{} outputs, {} expected", outputs.len(), slots.len()) });
                drop(st);
                return notify(req, over);
            }
            for (&s, v) in slots.iter().zip(outputs.drain(..)) {
                st.slots[s] = Some(v);
            }
        }
        &StageOut::Part { split, index } => {
            st.parts[split][index] = outputs.drain(..).next();
            st.parts_left[split] -= 1;
            if st.parts_left[split] == 0 {
                let parts: Vec<TValue> = st.parts[split].iter_mut().filter_map(Option::take).collect();
                drop(st);
                let join_start = req.now_us();
                let joined = join(&parts, &inner.splits[split]);
                drop(parts);
                let join_end = req.now_us();
                st = req.lock();
                match joined {
                    Ok(t) => {
                        st.slots[inner.splits[split].output] = Some(t);
                        st.joins[split] = Some((join_start, join_end, i));
                    }
                    Err(reason) => {
                        let over = st.fail(ExecError::Stage { stage: i, processor: task.processor.clone(), reason });
                        drop(st);
                        return notify(req, over);
                    }
                }
            }
        }
    }
    let mut ready: TVec<usize> = TVec::new();
    if st.error.is_none() {
        let now = req.now_us();
        for &s in &task.succ {
            st.pending[s] -= 1;
            if st.pending[s] == 0 {
                ready.push(s);
                st.times[s].ready_us = now;
                st.times[s].trigger = Some(i);
            }
        }
    }
    st.left -= 1;
    st.outstanding += ready.len();
    st.times[i].done_us = req.now_us();
    let over = st.finish_one();
    drop(st);
    for s in ready {
        dispatch(req, s);
    }
    notify(req, over);
}

/// Concatenates split parts along the split's axis: the one copy a split costs (the reshape, when
/// there is one, only relabels the dimensions).
fn join(parts: &[TValue], split: &SplitTask) -> std::result::Result<TValue, String> {
    let fail = |e: tract_onnx::prelude::TractError| format!("joining split parts: {}", chain(&e));
    if parts.len() == 1 && split.reshape.is_none() {
        return Ok(parts[0].clone());
    }
    let joined = Tensor::stack_tensors(split.axis, parts).map_err(fail)?;
    match &split.reshape {
        None => Ok(joined.into_tvalue()),
        Some(shape) => Ok(joined.into_shape(shape).map_err(fail)?.into_tvalue()),
    }
}

/// The tract models of a plan's stages, in plan order.
struct Built {
    models: Vec<TypedModel>,
    /// Full stages: their input and output values. Parts: the split's inputs and output.
    io: Vec<(Vec<ValueId>, Vec<ValueId>)>,
    /// Per split, the optimised graph's shape of its output where it differs from the joined parts'.
    reshapes: Vec<Option<Vec<usize>>>,
    /// Per stage, what a part computes of each op of its chain (empty for a whole stage).
    shares: Vec<Vec<(usize, f64)>>,
}

fn build_models(graph: &Graph, plan: &Plan) -> Result<Built> {
    let mut splits = vec![];
    let mut reshapes = vec![];
    for s in &plan.splits {
        let split = graph.split(&s.ops, s.axis, &s.bounds)?;
        reshapes.push(join_reshape(graph, &split).map_err(|reason| GraphError::InvalidSplit { op: graph.ops[*s.ops.last().unwrap()].name.clone(), reason })?);
        splits.push(Some(split));
    }
    let mut models = vec![];
    let mut io = vec![];
    let mut shares = vec![];
    for stage in &plan.stages {
        match &stage.part {
            None => {
                let built = graph.stage(&stage.ops)?;
                io.push((built.inputs, built.outputs));
                models.push(built.model);
                shares.push(vec![]);
            }
            Some(p) => {
                let split = splits[p.split].as_ref().expect("validated");
                let index = plan.splits[p.split].stages.iter().position(|&s| s == stage.id).expect("validated");
                io.push((split.inputs.clone(), vec![split.output]));
                models.push(split.parts[index].model.clone());
                shares.push(split.parts[index].shares.clone());
            }
        }
    }
    Ok(Built { models, io, reshapes, shares })
}

/// The parts compute the chain's output in the decluttered graph's layout; tract's optimiser may hold
/// the same tensor flattened (a 1x1 convolution as a matrix product keeps `[C, H*W]` for `[1, C, H,
/// W]`). The joined value is then relabelled to the optimised shape: the same elements in the same
/// order, which the end-to-end verification of every plan checks.
fn join_reshape(graph: &Graph, split: &tandem_graph::Split) -> std::result::Result<Option<Vec<usize>>, String> {
    let want: Vec<usize> = graph.optimized().outlet_fact(split.output.into()).ok().and_then(|f| f.shape.as_concrete().map(|s| s.to_vec())).ok_or("the split's output has no concrete shape")?;
    let mut joined: Vec<usize> = vec![];
    for part in &split.parts {
        let shape = part.model.output_fact(0).ok().and_then(|f| f.shape.as_concrete().map(|s| s.to_vec())).ok_or("a part's output has no concrete shape")?;
        match joined.is_empty() {
            true => joined = shape,
            false => joined[split.axis] += shape[split.axis],
        }
    }
    if joined == want {
        return Ok(None);
    }
    if joined.iter().product::<usize>() != want.iter().product::<usize>() {
        return Err(format!("the joined parts have shape {joined:?}, the model holds {want:?}"));
    }
    Ok(Some(want))
}

/// Where every value of a request lives, and who waits for whom.
struct Wiring {
    slots: usize,
    input_slots: Vec<usize>,
    output_slots: Vec<usize>,
    split_outputs: Vec<usize>,
    readers: Vec<u32>,
    keep: Vec<bool>,
    stages: Vec<StageWiring>,
}

struct StageWiring {
    inputs: Vec<usize>,
    outputs: Vec<usize>,
    succ: Vec<usize>,
    waits_for: u32,
}

/// `processors` are the plan's processors; `lane_of[i]` indexes stage `i`'s among them.
fn wire(graph: &Graph, plan: &Plan, built: &Built, processors: &[&Processor], lane_of: &[usize]) -> Result<Wiring> {
    let invalid = |m: String| ExecError::Plan(PlanError::Invalid(m));
    let mut slot_of: HashMap<ValueId, usize> = HashMap::new();
    // Producers of each slot: the stage computing it, or every part of the split computing it.
    let mut producers: Vec<Vec<usize>> = vec![];
    let mut new_slot = |v: ValueId, by: Vec<usize>, slot_of: &mut HashMap<ValueId, usize>| -> Result<usize> {
        if slot_of.contains_key(&v) {
            return Err(invalid(format!("value {}:{} is computed twice", v.node, v.slot)));
        }
        producers.push(by);
        slot_of.insert(v, producers.len() - 1);
        Ok(producers.len() - 1)
    };
    let mut input_slots = vec![];
    for o in &graph.optimized().inputs {
        input_slots.push(new_slot((*o).into(), vec![], &mut slot_of)?);
    }
    let mut split_outputs = vec![usize::MAX; plan.splits.len()];
    let mut outputs_of = vec![vec![]; plan.stages.len()];
    for (i, stage) in plan.stages.iter().enumerate() {
        match &stage.part {
            None => {
                for v in &built.io[i].1 {
                    let s = new_slot(*v, vec![i], &mut slot_of)?;
                    outputs_of[i].push(s);
                }
            }
            Some(p) if split_outputs[p.split] == usize::MAX => {
                split_outputs[p.split] = new_slot(built.io[i].1[0], plan.splits[p.split].stages.clone(), &mut slot_of)?;
            }
            Some(_) => {}
        }
    }
    let mut readers = vec![0u32; producers.len()];
    let mut stages = vec![];
    let mut succ: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); plan.stages.len()];
    for (i, stage) in plan.stages.iter().enumerate() {
        let mut inputs = vec![];
        let mut waits: BTreeSet<usize> = stage.deps.iter().copied().collect();
        // Each processor runs its stages in plan order, and processors sharing a core exclude each
        // other: wait for the latest earlier stage of every processor that shares a core with ours.
        for q in processors.iter().filter(|q| q.shares_cores_with(processors[lane_of[i]])) {
            if let Some(j) = (0..i).rev().find(|&j| plan.stages[j].processor == q.id) {
                waits.insert(j);
            }
        }
        for v in &built.io[i].0 {
            let s = *slot_of.get(v).ok_or_else(|| invalid(format!("stage {i} reads a value no stage computes (tract node {})", v.node)))?;
            if let Some(&late) = producers[s].iter().find(|&&p| p >= i) {
                return Err(invalid(format!("stage {i} reads the output of stage {late}, which does not come before it")));
            }
            readers[s] += 1;
            inputs.push(s);
            waits.extend(producers[s].iter().copied());
        }
        for &w in &waits {
            succ[w].insert(i);
        }
        stages.push(StageWiring { inputs, outputs: outputs_of[i].clone(), succ: vec![], waits_for: waits.len() as u32 });
    }
    for (w, s) in stages.iter_mut().zip(succ) {
        w.succ = s.into_iter().collect();
    }
    let mut keep = vec![false; producers.len()];
    let mut output_slots = vec![];
    for o in &graph.optimized().outputs {
        let s = *slot_of.get(&ValueId::from(*o)).ok_or_else(|| invalid(format!("no stage computes the model output {}", graph.optimized().nodes[o.node].name)))?;
        keep[s] = true;
        output_slots.push(s);
    }
    Ok(Wiring { slots: producers.len(), input_slots, output_slots, split_outputs, readers, keep, stages })
}
