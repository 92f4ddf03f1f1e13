//! The search for the best plan.
//!
//! 1. **Configurations.** The processors a plan may use at once share no core: on a two-core machine,
//!    `{cpu:0-1}` or `{cpu:0, cpu:1}`. [`configurations`] lists the maximal sets.
//! 2. **Baselines.** Every processor that can run the whole model alone is scored doing so; the best
//!    of them is a candidate, so the chosen plan is never predicted slower than the best single
//!    processor.
//! 3. **Starts.** In each configuration of two or more processors, three candidates are scored: every
//!    op on one processor (each processor in turn, ops it cannot run going to the fastest one that
//!    can), a greedy list schedule (each op, in topological order, where it would finish first, split
//!    or not: this spreads parallel branches over processors), and a dynamic program over the
//!    topological order taken as a chain (exact on chains of ops: where to split, where to hand over).
//! 4. **Local search** from the best start: move one op to another choice (processor, or split with
//!    another ratio), move a whole chain or branch to one processor, or (on small models) swap the
//!    processors of two ops; keep a move when the scored plan gets better; repeat until no move helps. Then kick: perturb the best candidate a little and
//!    descend again, as long as the evaluation budget lasts. Everything is seeded, so a search is
//!    reproducible.
//!
//! Every candidate is scored by [`Evaluator::score`]: the same stage rule, schedule and costs that
//! [`crate::exhaustive()`] enumerates, so the two can be compared on small problems.

use std::collections::HashSet;
use std::time::Instant;

use crate::evaluate::{alternatives, Choice, Evaluator, Score};
use crate::plan::{ModelRef, Objective, Plan, PlanError};
use crate::problem::Problem;
use crate::synthetic::{Draw, Rng};

/// How to search.
#[derive(Debug, Clone, PartialEq)]
pub struct SearchOptions {
    /// What to minimise.
    pub objective: Objective,
    /// Candidates scored at most (over all configurations); `None` for a budget that grows with the
    /// model and keeps a 500-op search under a second.
    pub max_evaluations: Option<usize>,
    /// Seed of the perturbations.
    pub seed: u64,
    /// The share by which a plan on several processors must be predicted faster than the best
    /// processor alone to be chosen over it (0.05: 5% faster); 0 takes the lowest prediction, as the
    /// exhaustive search does. A gain smaller than the prediction's own error is a coin toss that
    /// costs the plan's transfers and synchronisation when it falls the wrong way: see
    /// [`SearchResult::set_aside`].
    pub min_gain: f64,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions { objective: Objective::Latency, max_evaluations: None, seed: 0, min_gain: 0.0 }
    }
}

impl SearchOptions {
    /// The budget for a problem of `ops` ops.
    pub fn budget(&self, ops: usize) -> usize {
        self.max_evaluations.unwrap_or_else(|| (3_750_000 / (ops + 20)).clamp(2_000, 40_000))
    }
}

/// One processor running the whole model alone.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Baseline {
    /// The processor.
    pub processor: String,
    /// Predicted latency, µs.
    pub latency_us: f64,
    /// Predicted pipelined period, µs (equal to the latency: one stage).
    pub period_us: f64,
}

/// A scored candidate.
#[derive(Debug, Clone, PartialEq)]
pub struct Solution {
    /// One choice per op.
    pub choices: Vec<Choice>,
    /// Its figures.
    pub score: Score,
}

/// What [`search`] found.
#[derive(Debug, Clone)]
pub struct SearchResult {
    /// The best candidate (possibly a baseline).
    pub best: Solution,
    /// Each processor that can run the model alone, by processor order.
    pub baselines: Vec<Baseline>,
    /// The configurations searched (processor ids).
    pub configurations: Vec<Vec<String>>,
    /// Candidates scored.
    pub evaluations: usize,
    /// Wall-clock time of the search, ms.
    pub search_ms: f64,
    /// The [`SearchOptions::min_gain`] searched with.
    pub min_gain: f64,
    /// The best plan on several processors when it was predicted faster than the best processor
    /// alone, but by less than [`SearchOptions::min_gain`], so that the processor alone is `best`.
    pub set_aside: Option<SetAside>,
}

/// A plan on several processors the search did not take ([`SearchResult::set_aside`]).
#[derive(Debug, Clone, PartialEq)]
pub struct SetAside {
    /// The plan.
    pub solution: Solution,
    /// The processors it runs on, by processor order.
    pub processors: Vec<String>,
}

/// The processors a candidate runs on, by processor order.
fn processors_of(problem: &Problem, choices: &[Choice]) -> Vec<String> {
    let mut used = vec![false; problem.processors.len()];
    for c in choices {
        match *c {
            Choice::On(p) => used[p] = true,
            Choice::Split { first, second, .. } => {
                used[first] = true;
                used[second] = true;
            }
        }
    }
    problem.processors.iter().zip(used).filter(|(_, u)| *u).map(|(p, _)| p.id.clone()).collect()
}

impl SearchResult {
    /// The fastest baseline (by the objective).
    pub fn best_baseline(&self, objective: Objective) -> Option<&Baseline> {
        let key = |b: &Baseline| crate::evaluate::objective_value(objective, b.latency_us, b.period_us);
        self.baselines.iter().min_by(|a, b| key(a).total_cmp(&key(b)))
    }

    /// The best candidate as a plan for the executor.
    pub fn plan(&self, problem: &Problem, objective: Objective, model: ModelRef, device_id: &str, cost_model_version: Option<i64>) -> Result<Plan, PlanError> {
        Evaluator::new(problem, objective).plan(&self.best.choices, model, device_id, cost_model_version)
    }
}

/// The maximal sets of processors that share no core, each sorted, in a stable order. Processors
/// that can run no op are left out.
pub fn configurations(problem: &Problem) -> Vec<Vec<usize>> {
    let ps = &problem.processors;
    let usable: Vec<usize> = (0..ps.len()).filter(|&p| problem.ops.iter().any(|o| o.cost_us[p].is_some())).collect();
    let mut out = vec![];
    // Bron–Kerbosch over the "share no core" graph.
    fn grow(ps: &[crate::ProcessorSpec], r: Vec<usize>, p: Vec<usize>, x: Vec<usize>, out: &mut Vec<Vec<usize>>) {
        if p.is_empty() && x.is_empty() {
            out.push(r);
            return;
        }
        let (mut p, mut x) = (p, x);
        while let Some(&v) = p.first() {
            let ok = |u: &usize| *u != v && !ps[*u].overlaps(&ps[v]);
            let mut r2 = r.clone();
            r2.push(v);
            grow(ps, r2, p.iter().copied().filter(ok).collect(), x.iter().copied().filter(ok).collect(), out);
            p.remove(0);
            x.push(v);
        }
    }
    grow(ps, vec![], usable, vec![], &mut out);
    for c in &mut out {
        c.sort();
    }
    out.sort();
    out
}

/// Every op on processor `q`, ops it cannot run on the fastest processor of `config` that can.
pub(crate) fn single(problem: &Problem, q: usize, config: &[usize], alts: &[Vec<Choice>]) -> Vec<Choice> {
    (0..problem.ops.len())
        .map(|v| {
            let op = &problem.ops[v];
            if op.cost_us[q].is_some() {
                return Choice::On(q);
            }
            config
                .iter()
                .filter_map(|&p| op.cost_us[p].map(|c| (c, p)))
                .min_by(|a, b| a.0.total_cmp(&b.0))
                .map(|(_, p)| Choice::On(p))
                .unwrap_or_else(|| alts[v].first().copied().unwrap_or(Choice::On(q)))
        })
        .collect()
}

/// Searches the best plan.
pub fn search(problem: &Problem, options: &SearchOptions) -> Result<SearchResult, PlanError> {
    let started = Instant::now();
    problem.check()?;
    let n = problem.ops.len();
    let mut ev = Evaluator::new(problem, options.objective);
    let budget = options.budget(n);
    let mut best: Option<Solution> = None;
    let consider = |s: Solution, best: &mut Option<Solution>| {
        if s.score.is_feasible() && best.as_ref().map(|b| s.score.value < b.score.value).unwrap_or(true) {
            *best = Some(s);
        }
    };
    let mut baselines = vec![];
    for (p, spec) in problem.processors.iter().enumerate() {
        if problem.runs_everything(p) {
            let choices = vec![Choice::On(p); n];
            let score = ev.score(&choices);
            if score.is_feasible() {
                baselines.push(Baseline { processor: spec.id.clone(), latency_us: score.latency_us, period_us: score.period_us });
            }
            consider(Solution { choices, score }, &mut best);
        }
    }
    // The fastest processor alone, before any plan on several competes with it.
    let best_alone = best.clone();
    let configs = configurations(problem);
    let multi: Vec<&Vec<usize>> = configs.iter().filter(|c| c.len() > 1).collect();
    for (i, config) in multi.iter().enumerate() {
        // Share what is left of the budget among the configurations still to search.
        let left = budget.saturating_sub(ev.evaluations);
        let share = left / (multi.len() - i);
        if let Some(s) = Climber::new(problem, &mut ev, config, options.seed ^ (i as u64).wrapping_mul(0x9e37_79b9_7f4a_7c15)).run(share) {
            consider(s, &mut best);
        }
    }
    let mut best = best.ok_or_else(|| PlanError::NoPlan("no processor configuration can run every op within its memory".into()))?;
    let mut set_aside = None;
    if let Some(alone) = best_alone.filter(|a| options.min_gain > 0.0 && best.score.value > a.score.value * (1.0 - options.min_gain)) {
        if alone.choices != best.choices {
            let solution = std::mem::replace(&mut best, alone);
            set_aside = Some(SetAside { processors: processors_of(problem, &solution.choices), solution });
        }
    }
    Ok(SearchResult {
        best,
        baselines,
        configurations: configs.iter().map(|c| c.iter().map(|&p| problem.processors[p].id.clone()).collect()).collect(),
        evaluations: ev.evaluations,
        search_ms: started.elapsed().as_secs_f64() * 1e3,
        min_gain: options.min_gain,
        set_aside,
    })
}

/// Where an op's output lands: up to two processors with their shares (unused slots hold `usize::MAX`).
type Placement = [(usize, f64); 2];

/// Models of at most this many ops also try swapping the processors of every two ops.
const SWAP_OPS: usize = 32;

/// What the local search scores candidates with, lower `value` better: an [`Evaluator`] (one problem's
/// figures), or the robust search's p90 over availability scenarios ([`crate::robust`]).
pub(crate) trait Scorer {
    /// Scores a candidate (one choice per op).
    fn score(&mut self, choices: &[Choice]) -> Score;
    /// Candidates scored so far: the budget counts these.
    fn evaluations(&self) -> usize;
}

impl Scorer for Evaluator<'_> {
    fn score(&mut self, choices: &[Choice]) -> Score {
        Evaluator::score(self, choices)
    }

    fn evaluations(&self) -> usize {
        self.evaluations
    }
}

/// Local search within one configuration.
pub(crate) struct Climber<'e, 'p> {
    problem: &'p Problem,
    ev: &'e mut dyn Scorer,
    config: Vec<usize>,
    alts: Vec<Vec<Choice>>,
    /// Ops, heaviest first.
    heavy: Vec<usize>,
    /// Chains and branches moved as one.
    groups: Vec<Vec<usize>>,
    rng: Rng,
    stop_at: usize,
}

impl<'e, 'p> Climber<'e, 'p> {
    /// A climber over `config` scoring with `ev` (which scores candidates of `problem`).
    pub(crate) fn new(problem: &'p Problem, ev: &'e mut dyn Scorer, config: &[usize], seed: u64) -> Climber<'e, 'p> {
        let n = problem.ops.len();
        let alts: Vec<Vec<Choice>> = (0..n).map(|v| alternatives(problem, v, config)).collect();
        let weight = |v: usize| problem.ops[v].cost_us.iter().flatten().copied().fold(0.0, f64::max);
        let mut heavy: Vec<usize> = (0..n).collect();
        heavy.sort_by(|&a, &b| weight(b).total_cmp(&weight(a)).then(a.cmp(&b)));
        let groups = groups(problem, &problem.successors());
        Climber { problem, ev, config: config.to_vec(), alts, heavy, groups, rng: Rng(seed), stop_at: 0 }
    }

    fn out_of_budget(&self) -> bool {
        self.ev.evaluations() >= self.stop_at
    }

    /// Whether every op has a choice in the configuration.
    fn can_run(&self) -> bool {
        !self.alts.is_empty() && self.alts.iter().all(|a| !a.is_empty())
    }

    fn run(mut self, budget: usize) -> Option<Solution> {
        if !self.can_run() {
            return None;
        }
        self.stop_at = self.ev.evaluations() + budget.max(1);
        let problem = self.problem;
        let mut starts: Vec<Vec<Choice>> = self.config.iter().map(|&q| single(problem, q, &self.config, &self.alts)).collect();
        starts.push(self.greedy());
        starts.push(self.chain_dp());
        let mut best: Option<Solution> = None;
        for choices in starts {
            let score = self.ev.score(&choices);
            if best.as_ref().map(|b| score.value < b.score.value).unwrap_or(true) {
                best = Some(Solution { choices, score });
            }
        }
        self.polish(best?)
    }

    /// Local search from `start` (a scored candidate, its ops on processors of the configuration)
    /// within `budget` more evaluations: what [`Climber::run`] does after its starts.
    pub(crate) fn improve(mut self, start: Solution, budget: usize) -> Option<Solution> {
        if !self.can_run() {
            return None;
        }
        self.stop_at = self.ev.evaluations() + budget.max(1);
        self.polish(start)
    }

    /// Descends from `best`, then kicks and descends again while the budget and patience last.
    fn polish(&mut self, mut best: Solution) -> Option<Solution> {
        self.descend(&mut best);
        // Kicks: perturb the best a little and descend again.
        // Small models are cheap to kick: try longer before giving up.
        let patience = (2400 / self.heavy.len().max(1)).max(60);
        let mut failures = 0;
        while !self.out_of_budget() && failures < patience {
            let mut cand = best.clone();
            for _ in 0..1 + self.rng.below(3) {
                self.perturb(&mut cand.choices);
            }
            cand.score = self.ev.score(&cand.choices);
            self.descend(&mut cand);
            if cand.score.value < best.score.value * (1.0 - 1e-9) {
                best = cand;
                failures = 0;
            } else {
                failures += 1;
            }
        }
        best.score.is_feasible().then_some(best)
    }

    fn perturb(&mut self, choices: &mut [Choice]) {
        if !self.groups.is_empty() && self.rng.below(3) == 0 {
            let g = self.rng.below(self.groups.len());
            let p = self.config[self.rng.below(self.config.len())];
            for &v in &self.groups[g] {
                if self.alts[v].contains(&Choice::On(p)) {
                    choices[v] = Choice::On(p);
                }
            }
        } else {
            let v = self.rng.below(choices.len());
            choices[v] = self.alts[v][self.rng.below(self.alts[v].len())];
        }
    }

    /// Applies `changes` to `sol` and keeps them if the score improves.
    fn attempt(&mut self, sol: &mut Solution, changes: &[(usize, Choice)]) -> bool {
        if changes.iter().all(|&(v, c)| sol.choices[v] == c) {
            return false;
        }
        let old: Vec<Choice> = changes.iter().map(|&(v, _)| sol.choices[v]).collect();
        for &(v, c) in changes {
            sol.choices[v] = c;
        }
        let score = self.ev.score(&sol.choices);
        if score.value < sol.score.value * (1.0 - 1e-9) {
            sol.score = score;
            return true;
        }
        for (&(v, _), c) in changes.iter().zip(old) {
            sol.choices[v] = c;
        }
        false
    }

    /// First-improvement descent until no move helps (or the budget is spent).
    fn descend(&mut self, sol: &mut Solution) {
        loop {
            let mut improved = false;
            for i in 0..self.heavy.len() {
                let v = self.heavy[i];
                for j in 0..self.alts[v].len() {
                    if self.out_of_budget() {
                        return;
                    }
                    let c = self.alts[v][j];
                    improved |= self.attempt(sol, &[(v, c)]);
                }
            }
            for g in 0..self.groups.len() {
                for i in 0..self.config.len() {
                    if self.out_of_budget() {
                        return;
                    }
                    let p = self.config[i];
                    let changes: Vec<(usize, Choice)> = self.groups[g].iter().filter(|&&v| self.alts[v].contains(&Choice::On(p))).map(|&v| (v, Choice::On(p))).collect();
                    improved |= self.attempt(sol, &changes);
                }
            }
            // On small models, swap the processors of two ops (balancing the pipelined stages).
            if self.heavy.len() <= SWAP_OPS {
                for a in 0..self.heavy.len() {
                    for b in a + 1..self.heavy.len() {
                        if self.out_of_budget() {
                            return;
                        }
                        let (u, v) = (self.heavy[a], self.heavy[b]);
                        if let (Choice::On(p), Choice::On(q)) = (sol.choices[u], sol.choices[v]) {
                            if p != q && self.alts[u].contains(&Choice::On(q)) && self.alts[v].contains(&Choice::On(p)) {
                                improved |= self.attempt(sol, &[(u, Choice::On(q)), (v, Choice::On(p))]);
                            }
                        }
                    }
                }
            }
            if !improved {
                return;
            }
        }
    }

    /// Each op, in topological order, where it finishes first given the ops before it (splits of
    /// single ops included): a list schedule that spreads parallel branches over the processors.
    fn greedy(&self) -> Vec<Choice> {
        let problem = self.problem;
        let n = problem.ops.len();
        let np = problem.processors.len();
        let mut avail = vec![0.0f64; np];
        let mut fin = vec![0.0f64; n];
        let mut place: Vec<Placement> = vec![[(usize::MAX, 0.0); 2]; n];
        let mut out = Vec::with_capacity(n);
        for v in 0..n {
            let op = &problem.ops[v];
            let ready = |p: usize| -> (f64, bool) {
                let mut r = 0.0f64;
                let mut local = false;
                for i in &op.inputs {
                    let Some(x) = i.from else { continue };
                    for &(q, share) in place[x].iter().filter(|(q, _)| *q != usize::MAX) {
                        r = r.max(fin[x] + problem.edge_us(q, p, i.bytes as f64, share, share < 1.0));
                        local |= q == p;
                    }
                }
                (r, local)
            };
            let mut best: Option<(f64, Choice, Placement, [f64; 2])> = None;
            for &c in &self.alts[v] {
                let (finish, pl, ends) = match c {
                    Choice::On(p) => {
                        let (r, local) = ready(p);
                        let st = &problem.stage[p];
                        let fixed = if local { 0.0 } else { st.fixed_us };
                        let end = r.max(avail[p]) + fixed + st.factor * op.cost_us[p].unwrap_or(f64::INFINITY) + st.per_op_us;
                        (end, [(p, 1.0), (usize::MAX, 0.0)], [end, 0.0])
                    }
                    Choice::Split { option, k, first, second } => {
                        let s = &op.splits[option];
                        if s.chain.len() > 1 {
                            continue;
                        }
                        let f = s.fractions[k];
                        let ea = ready(first).0.max(avail[first]) + s.part_cost(first, f).unwrap_or(f64::INFINITY);
                        let eb = ready(second).0.max(avail[second]) + s.part_cost(second, 1.0 - f).unwrap_or(f64::INFINITY);
                        (ea.max(eb), [(first, f), (second, 1.0 - f)], [ea, eb])
                    }
                };
                if best.as_ref().map(|b| finish < b.0 - 1e-9).unwrap_or(true) {
                    best = Some((finish, c, pl, ends));
                }
            }
            let (finish, c, pl, ends) = best.unwrap_or((0.0, self.alts[v][0], [(usize::MAX, 0.0); 2], [0.0; 2]));
            for (j, &(p, _)) in pl.iter().enumerate() {
                if p != usize::MAX {
                    avail[p] = ends[j];
                }
            }
            fin[v] = finish;
            place[v] = pl;
            out.push(c);
        }
        out
    }

    /// The best choice per op with the topological order taken as a chain: each op's time plus the
    /// hand-over from the op before it, minimised by dynamic programming (exact on a chain).
    fn chain_dp(&self) -> Vec<Choice> {
        let problem = self.problem;
        let n = problem.ops.len();
        // Per op: its single-op choices, their own times and where their output lands.
        let mut states: Vec<Vec<(Choice, f64, Placement)>> = Vec::with_capacity(n);
        for v in 0..n {
            let op = &problem.ops[v];
            let mut s = vec![];
            for &c in &self.alts[v] {
                match c {
                    Choice::On(p) => {
                        let st = &problem.stage[p];
                        s.push((c, st.factor * op.cost_us[p].unwrap_or(f64::INFINITY) + st.per_op_us, [(p, 1.0), (usize::MAX, 0.0)]));
                    }
                    Choice::Split { option, k, first, second } => {
                        let o = &op.splits[option];
                        if o.chain.len() > 1 {
                            continue;
                        }
                        let f = o.fractions[k];
                        let t = o.part_cost(first, f).unwrap_or(f64::INFINITY).max(o.part_cost(second, 1.0 - f).unwrap_or(f64::INFINITY));
                        s.push((c, t, [(first, f), (second, 1.0 - f)]));
                    }
                }
            }
            if s.is_empty() {
                s.push((self.alts[v][0], 0.0, [(usize::MAX, 0.0); 2]));
            }
            states.push(s);
        }
        let mut cost: Vec<Vec<f64>> = vec![];
        let mut from: Vec<Vec<usize>> = vec![];
        for v in 0..n {
            let bytes: u64 = if v > 0 { problem.ops[v].inputs.iter().filter(|i| i.from == Some(v - 1)).map(|i| i.bytes).sum() } else { 0 };
            let mut cv = vec![];
            let mut fv = vec![];
            for &(c, t, to) in &states[v] {
                if v == 0 {
                    cv.push(t);
                    fv.push(0);
                    continue;
                }
                let mut best = (f64::INFINITY, 0);
                for (i, &(pc, _, at)) in states[v - 1].iter().enumerate() {
                    let same = matches!((pc, c), (Choice::On(a), Choice::On(b)) if a == b);
                    let mut hand = 0.0f64;
                    if !same {
                        for &(p, _) in to.iter().filter(|(p, _)| *p != usize::MAX) {
                            for &(q, share) in at.iter().filter(|(q, _)| *q != usize::MAX) {
                                hand = hand.max(problem.hand_over_us(q, p, bytes as f64 * share));
                            }
                            if let Choice::On(_) = c {
                                hand += problem.stage[p].fixed_us;
                            }
                        }
                    }
                    let total = cost[v - 1][i] + hand;
                    if total < best.0 {
                        best = (total, i);
                    }
                }
                cv.push(best.0 + t);
                fv.push(best.1);
            }
            cost.push(cv);
            from.push(fv);
        }
        let mut out = vec![Choice::On(0); n];
        let mut j = (0..states[n - 1].len()).min_by(|&a, &b| cost[n - 1][a].total_cmp(&cost[n - 1][b])).unwrap_or(0);
        for v in (0..n).rev() {
            out[v] = states[v][j].0;
            j = from[v][j];
        }
        out
    }
}

/// Sets of ops worth moving as one: maximal chains (each op feeding only the next, which reads only
/// it) and the branches leaving a fork (the ops reached from one successor of the fork before any
/// other path joins in), of two to 64 ops.
fn groups(problem: &Problem, succ: &[Vec<usize>]) -> Vec<Vec<usize>> {
    let n = problem.ops.len();
    let preds: Vec<Vec<usize>> = problem.ops.iter().map(|o| {
        let mut p: Vec<usize> = o.inputs.iter().filter_map(|i| i.from).collect();
        p.sort();
        p.dedup();
        p
    }).collect();
    let mut seen: HashSet<Vec<usize>> = HashSet::new();
    let mut out = vec![];
    let mut add = |g: Vec<usize>, out: &mut Vec<Vec<usize>>| {
        if g.len() >= 2 && seen.insert(g.clone()) {
            out.push(g);
        }
    };
    let links = |v: usize| succ[v].len() == 1 && preds[succ[v][0]] == [v];
    for (v, before) in preds.iter().enumerate() {
        // A chain starts where the op before does not link into it.
        let starts = !(before.len() == 1 && links(before[0]));
        if starts {
            let mut g = vec![v];
            let mut u = v;
            while links(u) && g.len() < 64 {
                u = succ[u][0];
                g.push(u);
            }
            add(g, &mut out);
        }
    }
    for (f, after) in succ.iter().enumerate() {
        if after.len() < 2 {
            continue;
        }
        for &s in after {
            let mut inside = vec![false; n];
            inside[s] = true;
            let mut g = vec![s];
            for w in s + 1..n {
                if g.len() >= 64 {
                    break;
                }
                let fed = preds[w].iter().any(|&p| inside[p]);
                if fed && preds[w].iter().all(|&p| inside[p] || p == f) {
                    inside[w] = true;
                    g.push(w);
                }
            }
            add(g, &mut out);
        }
    }
    out
}
