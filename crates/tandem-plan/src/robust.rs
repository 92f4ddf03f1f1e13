//! Plans for a device that is not always idle (`tandem tune --robust`): the plan whose predicted
//! latency stays low when other work slows processors down, not only on an idle device.
//!
//! # Scenarios
//!
//! Availability is a property of cores: another process competes for a core, not for a processor id.
//! A [`Scenario`] gives every core a slowdown factor, 1 when idle, `half` when half available
//! (default 2) or `heavy` when heavily loaded (default 4), and each processor the largest factor over
//! its cores, since a multithreaded op waits for its slowest thread; a processor without cores (an
//! accelerator) keeps 1. [`scenarios`] lists every combination of the three levels over the cores
//! when there are at most 27 (three cores or fewer), otherwise idle plus each core alone half and
//! heavy. The levels are an input, per core, so that measured contention can replace the defaults.
//!
//! # Objective
//!
//! A candidate's figure in a scenario is its predicted latency (its period, for the throughput
//! objective) with every stage of processor `p` taking `factors[p]` times as long and the stages run
//! in the order of the idle schedule, since the executor keeps a plan's order whatever the load
//! ([`Evaluator::score_scenarios`]); it is what [`crate::simulate`] predicts for the written plan on
//! [`Problem::slowed`]. The robust plan minimises the [`p90`] of these figures, every scenario
//! weighing the same; between plans whose p90 agree to 1e-9, the lower idle figure wins.
//!
//! # Search
//!
//! Candidates, each scored in every scenario at once:
//!
//! 1. the plain [`search`] on the idle problem, the idle-optimal plan: since it is a candidate, the
//!    robust plan's p90 is never worse than its;
//! 2. every processor running the whole model alone;
//! 3. the plain search on each other scenario's slowed problem (distinct factors only), the scenarios
//!    sharing one search's budget: the best plan were that scenario always the case;
//! 4. local search scored by the p90 itself, with the search's moves and kicks, in each configuration
//!    of two or more processors from the best candidate so far that fits it, within one search's
//!    budget of candidates.
//!
//! [`exhaustive_p90`] scores every candidate of small problems the same way: the reference the robust
//! search is checked against.

use std::collections::{BTreeMap, HashSet};
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::evaluate::{Choice, Evaluator, Score};
use crate::exhaustive::enumerate;
use crate::plan::{ModelRef, Objective, Plan, PlanError};
use crate::problem::Problem;
use crate::search::{configurations, search, Baseline, Climber, Scorer, SearchOptions, Solution};

/// Slowdown of a core (half available, heavily loaded) when nothing measured says otherwise.
pub const DEFAULT_LEVELS: (f64, f64) = (2.0, 4.0);

/// Up to this many cores, [`scenarios`] lists every combination of levels (3^3 = 27 scenarios).
const FULL_PRODUCT_CORES: usize = 3;

/// Relative difference below which two p90s tie (and the idle figure decides).
const TIE: f64 = 1e-9;

/// One availability scenario: how much slower each core, and so each processor, runs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Scenario {
    /// `idle`, `cpu1 half`, `cpu0 heavy + cpu1 half`.
    pub name: String,
    /// Factor of every core of the problem (1 = idle).
    pub core_factors: BTreeMap<usize, f64>,
    /// Factor of every processor of the problem, by index: the largest of its cores' (1 for a
    /// processor without cores).
    pub factors: Vec<f64>,
}

impl Scenario {
    /// The scenario where the cores run `core_factors` times slower (missing cores, and factors below
    /// 1, count as 1).
    pub fn new(problem: &Problem, name: impl Into<String>, core_factors: BTreeMap<usize, f64>) -> Scenario {
        let factors = problem
            .processors
            .iter()
            .map(|p| p.cores.iter().filter_map(|c| core_factors.get(c)).copied().filter(|f| f.is_finite()).fold(1.0, f64::max))
            .collect();
        Scenario { name: name.into(), core_factors, factors }
    }

    /// Whether every processor runs at full speed.
    pub fn is_idle(&self) -> bool {
        self.factors.iter().all(|&f| f == 1.0)
    }
}

/// The cores the problem's processors own, in order.
pub fn cores(problem: &Problem) -> Vec<usize> {
    let mut cores: Vec<usize> = problem.processors.iter().flat_map(|p| p.cores.iter().copied()).collect();
    cores.sort();
    cores.dedup();
    cores
}

/// The availability scenarios of `problem`'s cores, idle first. `levels[core]` is the core's
/// (half available, heavily loaded) slowdown; cores missing from it take [`DEFAULT_LEVELS`]. Every
/// combination of idle, half and heavy over the cores when there are at most three (27 scenarios),
/// otherwise idle plus each core alone half and then heavy (1 + 2 × cores).
pub fn scenarios(problem: &Problem, levels: &BTreeMap<usize, (f64, f64)>) -> Vec<Scenario> {
    let cores = cores(problem);
    // Per scenario, each core's level: 0 idle, 1 half, 2 heavy.
    let states: Vec<Vec<u8>> = if cores.len() <= FULL_PRODUCT_CORES {
        let count = 3usize.pow(cores.len() as u32);
        (0..count).map(|i| (0..cores.len()).map(|k| (i / 3usize.pow(k as u32) % 3) as u8).collect()).collect()
    } else {
        let mut out = vec![vec![0u8; cores.len()]];
        for k in 0..cores.len() {
            for level in [1, 2] {
                let mut s = vec![0u8; cores.len()];
                s[k] = level;
                out.push(s);
            }
        }
        out
    };
    states
        .iter()
        .map(|state| {
            let mut names = vec![];
            let mut core_factors = BTreeMap::new();
            for (&core, &level) in cores.iter().zip(state) {
                let (half, heavy) = levels.get(&core).copied().unwrap_or(DEFAULT_LEVELS);
                let (factor, word) = match level {
                    0 => (1.0, ""),
                    1 => (half, "half"),
                    _ => (heavy, "heavy"),
                };
                if level > 0 {
                    names.push(format!("cpu{core} {word}"));
                }
                core_factors.insert(core, factor);
            }
            let name = if names.is_empty() { "idle".to_string() } else { names.join(" + ") };
            Scenario::new(problem, name, core_factors)
        })
        .collect()
}

/// The 90th percentile of `values`, linearly interpolated: with the values sorted as `x[0..n]`, the
/// point `h = 0.9 (n - 1)` between `x[⌊h⌋]` and `x[⌊h⌋ + 1]` (NumPy's default, type 7 of Hyndman and
/// Fan). NaN for no values.
pub fn p90(values: &[f64]) -> f64 {
    let mut sorted = values.to_vec();
    p90_of(&mut sorted)
}

/// [`p90`], sorting `values` in place.
fn p90_of(values: &mut [f64]) -> f64 {
    if values.is_empty() {
        return f64::NAN;
    }
    values.sort_by(f64::total_cmp);
    let h = 0.9 * (values.len() - 1) as f64;
    let lo = h.floor() as usize;
    let hi = (lo + 1).min(values.len() - 1);
    let t = h - lo as f64;
    if t == 0.0 || values[lo] == values[hi] {
        values[lo]
    } else {
        values[lo] + t * (values[hi] - values[lo])
    }
}

/// The figure a scenario's score contributes: what the objective minimises.
fn figure(objective: Objective, s: &Score) -> f64 {
    match objective {
        Objective::Latency => s.latency_us,
        Objective::Throughput => s.period_us,
    }
}

/// A candidate scored in every scenario.
#[derive(Debug, Clone)]
struct Scored {
    choices: Vec<Choice>,
    /// At full speed.
    idle: Score,
    per_scenario: Vec<f64>,
    p90: f64,
}

impl Scored {
    fn is_feasible(&self) -> bool {
        self.idle.is_feasible() && self.p90.is_finite()
    }

    /// Lower p90, or the same p90 (to [`TIE`]) and a lower idle figure.
    fn beats(&self, other: &Scored) -> bool {
        if !self.is_feasible() {
            return false;
        }
        if !other.is_feasible() || self.p90 < other.p90 * (1.0 - TIE) {
            return true;
        }
        self.p90 <= other.p90 * (1.0 + TIE) && self.idle.value < other.idle.value
    }

    fn solution(&self) -> Solution {
        Solution { choices: self.choices.clone(), score: self.idle }
    }
}

/// Scores candidates by their p90 over scenarios.
struct P90<'a> {
    ev: Evaluator<'a>,
    factors: Vec<Vec<f64>>,
    objective: Objective,
    scores: Vec<Score>,
    figures: Vec<f64>,
}

impl<'a> P90<'a> {
    fn new(problem: &'a Problem, scenarios: &[Scenario], objective: Objective) -> P90<'a> {
        let factors = scenarios.iter().map(|s| s.factors.clone()).collect();
        P90 { ev: Evaluator::new(problem, objective), factors, objective, scores: vec![], figures: vec![] }
    }

    /// The idle score and the p90; the per-scenario figures stay in `self.figures`.
    fn measure(&mut self, choices: &[Choice]) -> (Score, f64) {
        let idle = self.ev.score_scenarios(choices, &self.factors, &mut self.scores);
        self.figures.clear();
        self.figures.extend(self.scores.iter().map(|s| figure(self.objective, s)));
        let mut sorted = self.figures.clone();
        (idle, p90_of(&mut sorted))
    }

    fn scored(&mut self, choices: Vec<Choice>) -> Scored {
        let (idle, p90) = self.measure(&choices);
        Scored { choices, idle, per_scenario: self.figures.clone(), p90 }
    }
}

impl Scorer for P90<'_> {
    /// The p90, plus a millionth of the idle figure so that the local search also prefers, between
    /// plans of one p90, the faster one when idle.
    fn score(&mut self, choices: &[Choice]) -> Score {
        let (idle, p90) = self.measure(choices);
        Score { value: p90 + 1e-6 * idle.value, ..idle }
    }

    fn evaluations(&self) -> usize {
        self.ev.evaluations
    }
}

/// Candidates met so far, each once.
#[derive(Default)]
struct Pool {
    seen: HashSet<Vec<Choice>>,
    list: Vec<Scored>,
}

impl Pool {
    fn add(&mut self, c: Scored) {
        if c.is_feasible() && self.seen.insert(c.choices.clone()) {
            self.list.push(c);
        }
    }

    fn best_of<'s>(list: impl Iterator<Item = &'s Scored>) -> Option<&'s Scored> {
        list.fold(None, |best: Option<&Scored>, c| if best.map(|b| c.beats(b)).unwrap_or(true) { Some(c) } else { best })
    }

    fn best(&self) -> Option<&Scored> {
        Pool::best_of(self.list.iter())
    }

    /// The best candidate whose ops all run on processors of `config`.
    fn best_within(&self, config: &[usize]) -> Option<&Scored> {
        let inside = |c: &Choice| match *c {
            Choice::On(p) => config.contains(&p),
            Choice::Split { first, second, .. } => config.contains(&first) && config.contains(&second),
        };
        Pool::best_of(self.list.iter().filter(|s| s.choices.iter().all(inside)))
    }
}

/// A processor running the whole model alone, in every scenario.
#[derive(Debug, Clone, PartialEq)]
pub struct RobustBaseline {
    /// The processor and its idle figures.
    pub baseline: Baseline,
    /// Its figure in each scenario, µs.
    pub per_scenario: Vec<f64>,
    /// Their p90, µs.
    pub p90_us: f64,
}

/// What [`robust_search`] found. Figures are latencies (periods for the throughput objective), µs,
/// one per scenario in the order given.
#[derive(Debug, Clone)]
pub struct RobustResult {
    /// What the figures are.
    pub objective: Objective,
    /// The plan of lowest p90, with its idle score.
    pub best: Solution,
    /// Its figure in each scenario.
    pub per_scenario: Vec<f64>,
    /// Their p90.
    pub p90_us: f64,
    /// The plain search's plan for the idle device, with its idle score.
    pub idle_optimal: Solution,
    /// Its figure in each scenario.
    pub idle_optimal_per_scenario: Vec<f64>,
    /// Their p90.
    pub idle_optimal_p90_us: f64,
    /// Each processor that can run the model alone, by processor order.
    pub baselines: Vec<RobustBaseline>,
    /// The configurations searched (processor ids).
    pub configurations: Vec<Vec<String>>,
    /// Candidates scored: by the plain searches (one problem each) and by the p90 (all scenarios at
    /// once, counted once).
    pub evaluations: usize,
    /// Wall-clock time of the whole search, ms.
    pub search_ms: f64,
}

impl RobustResult {
    /// The fastest processor alone in scenario `i`, with its figure.
    pub fn best_single(&self, i: usize) -> Option<(&str, f64)> {
        self.baselines
            .iter()
            .filter_map(|b| Some((b.baseline.processor.as_str(), *b.per_scenario.get(i)?)))
            .min_by(|a, b| a.1.total_cmp(&b.1))
    }

    /// The robust plan for the executor, written as [`crate::SearchResult::plan`] writes the plain
    /// search's: its predicted timeline is the idle one (the scenarios' are [`crate::simulate`] of it
    /// on [`Problem::slowed`]).
    pub fn plan(&self, problem: &Problem, model: ModelRef, device_id: &str, cost_model_version: Option<i64>) -> Result<Plan, PlanError> {
        Evaluator::new(problem, self.objective).plan(&self.best.choices, model, device_id, cost_model_version)
    }
}

/// Checks that `scenarios` fit `problem`: at least one, each with a factor per processor.
fn check(problem: &Problem, scenarios: &[Scenario]) -> Result<(), PlanError> {
    problem.check()?;
    if scenarios.is_empty() {
        return Err(PlanError::Invalid("a robust plan needs at least one availability scenario".into()));
    }
    let np = problem.processors.len();
    match scenarios.iter().find(|s| s.factors.len() != np) {
        Some(s) => Err(PlanError::Invalid(format!("scenario '{}' has {} processor factors, the problem {np} processors", s.name, s.factors.len()))),
        None => Ok(()),
    }
}

/// Searches the plan of lowest p90 over `scenarios` (see the [module docs](self)); `options` as for
/// [`search`], whose budget each of the three searching phases spends at most (the idle search, the
/// scenarios' searches together, the p90 local search), so a robust search costs about three plain
/// ones plus the scenarios' schedules: on a 500-op model, about 1 s against 0.3 s (`bench_search`).
pub fn robust_search(problem: &Problem, scenarios: &[Scenario], options: &SearchOptions) -> Result<RobustResult, PlanError> {
    let started = Instant::now();
    check(problem, scenarios)?;
    let n = problem.ops.len();
    let budget = options.budget(n);
    let mut p90 = P90::new(problem, scenarios, options.objective);
    let mut pool = Pool::default();
    let mut evaluations = 0;

    let idle = search(problem, options)?;
    evaluations += idle.evaluations;
    let idle_optimal = p90.scored(idle.best.choices.clone());
    pool.add(idle_optimal.clone());

    let mut baselines = vec![];
    for b in &idle.baselines {
        let Some(p) = problem.processor_index(&b.processor) else { continue };
        let alone = p90.scored(vec![Choice::On(p); n]);
        baselines.push(RobustBaseline { baseline: b.clone(), per_scenario: alone.per_scenario.clone(), p90_us: alone.p90 });
        pool.add(alone);
    }

    let mut distinct: Vec<&Vec<f64>> = vec![];
    for s in scenarios.iter().filter(|s| !s.is_idle()) {
        if !distinct.contains(&&s.factors) {
            distinct.push(&s.factors);
        }
    }
    for (i, factors) in distinct.iter().enumerate() {
        let share = budget / distinct.len();
        let seed = options.seed ^ (i as u64 + 1).wrapping_mul(0xd1b5_4a32_d192_ed03);
        let found = search(&problem.slowed(factors), &SearchOptions { max_evaluations: Some(share.max(1)), seed, ..options.clone() })?;
        evaluations += found.evaluations;
        pool.add(p90.scored(found.best.choices));
    }

    let configs = configurations(problem);
    let multi: Vec<&Vec<usize>> = configs.iter().filter(|c| c.len() > 1).collect();
    let before = p90.evaluations();
    for (i, config) in multi.iter().enumerate() {
        let left = budget.saturating_sub(p90.evaluations() - before);
        let share = left / (multi.len() - i);
        let Some(start) = pool.best_within(config) else { continue };
        let start = Solution { choices: start.choices.clone(), score: Score { value: start.p90 + 1e-6 * start.idle.value, ..start.idle } };
        let seed = options.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15);
        if let Some(found) = Climber::new(problem, &mut p90, config, seed).improve(start, share) {
            let scored = p90.scored(found.choices);
            pool.add(scored);
        }
    }
    evaluations += p90.evaluations();

    let best = pool.best().cloned().ok_or_else(|| PlanError::NoPlan("no candidate can run every op within memory".into()))?;
    Ok(RobustResult {
        objective: options.objective,
        best: best.solution(),
        per_scenario: best.per_scenario,
        p90_us: best.p90,
        idle_optimal: idle_optimal.solution(),
        idle_optimal_per_scenario: idle_optimal.per_scenario,
        idle_optimal_p90_us: idle_optimal.p90,
        baselines,
        configurations: idle.configurations,
        evaluations,
        search_ms: started.elapsed().as_secs_f64() * 1e3,
    })
}

/// The optimum by p90 over scenarios and how many candidates it took.
#[derive(Debug, Clone)]
pub struct RobustExhaustive {
    /// The candidate of lowest p90 (ties to the lower idle figure), with its idle score.
    pub best: Solution,
    /// Its figure in each scenario, µs.
    pub per_scenario: Vec<f64>,
    /// Their p90, µs.
    pub p90_us: f64,
    /// Candidates scored.
    pub candidates: u64,
}

/// Scores every candidate of every configuration by its p90 over `scenarios`, as [`robust_search`]
/// does; refuses when there are more than `limit`.
pub fn exhaustive_p90(problem: &Problem, scenarios: &[Scenario], objective: Objective, limit: u64) -> Result<RobustExhaustive, PlanError> {
    check(problem, scenarios)?;
    let mut p90 = P90::new(problem, scenarios, objective);
    let mut best: Option<Scored> = None;
    enumerate(problem, limit, |choices| {
        let (idle, value) = p90.measure(choices);
        let c = Scored { choices: vec![], idle, per_scenario: vec![], p90: value };
        if best.as_ref().map(|b| c.beats(b)).unwrap_or(c.is_feasible()) {
            best = Some(Scored { choices: choices.to_vec(), per_scenario: p90.figures.clone(), ..c });
        }
    })?;
    let best = best.ok_or_else(|| PlanError::NoPlan("no candidate can run every op within memory".into()))?;
    Ok(RobustExhaustive { best: best.solution(), per_scenario: best.per_scenario, p90_us: best.p90, candidates: p90.evaluations() as u64 })
}
