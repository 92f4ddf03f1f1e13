//! Scoring one candidate plan: a [`Choice`] per op, turned into stages by one fixed rule, scheduled and
//! timed. The search and the exhaustive reference both score candidates here, so they optimise the
//! same thing, and [`Evaluator::plan`] writes the winner as a [`Plan`].
//!
//! # From choices to stages
//!
//! Ops are taken in topological order. An op that is split becomes one part stage per processor of the
//! split (a chain split also computes the chain's earlier ops, which then have no stage of their own).
//! An op placed on processor `p` joins an open stage of `p` when every tensor it reads comes from that
//! stage or from a stage that one already waits for (so joining never delays the stage, and the stage
//! stays convex); it prefers the stage holding its producer, else the earliest such stage. Otherwise it
//! starts a new stage. A stage closes as soon as one of its ops feeds another processor or a split, so
//! that the consumer does not wait for unrelated work: parallel branches on different processors run
//! side by side. A stage's time is its processor's stage model over its ops' in-context times; a part's
//! time is the split option's figure for its share. A tensor crossing processors delays its consumer by
//! the transfer model's time for its bytes (a part hands over its share of the joined output).

use crate::plan::{ModelRef, Objective, Part, Plan, PlanError, Split, Stage};
use crate::problem::Problem;
use crate::schedule::{Order, Scheduler, Stages, Times};

/// What one op does in a candidate plan.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Choice {
    /// Runs on the processor with this index in [`Problem::processors`].
    On(usize),
    /// Runs as split option `option` of the op: the part covering `fractions[k]` of the axis (from its
    /// start) on processor `first`, the rest on processor `second`.
    Split {
        /// Index into the op's [`crate::OpNode::splits`].
        option: usize,
        /// Index into the option's fractions: the first part's share.
        k: usize,
        /// Processor of the first part.
        first: usize,
        /// Processor of the second part.
        second: usize,
    },
}

/// Every choice an op has within a processor configuration: each processor of it that can run the op,
/// and each two-way split of each of its split options over a pair of the configuration's processors
/// (both orders are covered, since the first part's share runs over every fraction).
pub fn alternatives(problem: &Problem, v: usize, config: &[usize]) -> Vec<Choice> {
    let op = &problem.ops[v];
    let mut out: Vec<Choice> = config.iter().filter(|&&p| op.cost_us[p].is_some()).map(|&p| Choice::On(p)).collect();
    for (option, s) in op.splits.iter().enumerate() {
        for (i, &first) in config.iter().enumerate() {
            for &second in &config[i + 1..] {
                for (k, &f) in s.fractions.iter().enumerate() {
                    let cut = s.cut(f);
                    if cut == 0 || cut >= s.extent {
                        continue;
                    }
                    if s.part_cost(first, f).is_some() && s.part_cost(second, 1.0 - f).is_some() {
                        out.push(Choice::Split { option, k, first, second });
                    }
                }
            }
        }
    }
    out
}

/// Who produced an op's output.
#[derive(Debug, Clone, Copy)]
enum Out {
    /// Inside a split chain: nobody outside reads it.
    Inner,
    /// One stage.
    One(usize),
    /// Two part stages, the first with this share of the output.
    Two(usize, usize, f64),
}

impl Out {
    fn each(self, mut f: impl FnMut(usize, f64)) {
        match self {
            Out::Inner => {}
            Out::One(s) => f(s, 1.0),
            Out::Two(a, b, share) => {
                f(a, share);
                f(b, 1.0 - share);
            }
        }
    }
}

/// How many open stages of a processor an op looks at before starting a new one.
const OPEN_SCAN: usize = 8;

/// Scores candidates for one problem; keeps its buffers between calls.
pub struct Evaluator<'a> {
    problem: &'a Problem,
    succ: Vec<Vec<usize>>,
    overlap: Vec<Vec<usize>>,
    objective: Objective,
    stages: Stages,
    /// Per stage: its ops in order.
    ops: Vec<Vec<usize>>,
    /// Per stage: `(op carrying the split, second part?)` for a part.
    part: Vec<Option<(usize, bool)>>,
    sum: Vec<f64>,
    closed: Vec<bool>,
    anc: Vec<u64>,
    words: usize,
    out: Vec<Out>,
    cover: Vec<bool>,
    open: Vec<Vec<usize>>,
    weights: Vec<f64>,
    act: Vec<u64>,
    sched: Scheduler,
    times: Times,
    /// [`Evaluator::score_scenarios`]'s scratch: the stages in the order of their start at full
    /// speed, each stage's place in it, and the times in one scenario.
    listed: Stages,
    order: Vec<usize>,
    place: Vec<usize>,
    slowed: Times,
    /// Candidates scored so far.
    pub evaluations: usize,
}

/// A candidate's predicted figures.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Score {
    /// What the objective minimises (infinite for a candidate that breaks a rule).
    pub value: f64,
    /// One request, µs.
    pub latency_us: f64,
    /// Pipelined period, µs.
    pub period_us: f64,
}

impl Score {
    /// The score of a candidate that cannot run.
    pub const INFEASIBLE: Score = Score { value: f64::INFINITY, latency_us: f64::INFINITY, period_us: f64::INFINITY };

    /// Whether it can run.
    pub fn is_feasible(&self) -> bool {
        self.value.is_finite()
    }
}

/// The objective's value for a latency and a period: the one optimised, with the other breaking ties.
pub fn objective_value(objective: Objective, latency_us: f64, period_us: f64) -> f64 {
    match objective {
        Objective::Latency => latency_us + 1e-6 * period_us,
        Objective::Throughput => period_us + 1e-3 * latency_us,
    }
}

/// For each processor, those it cannot run beside (itself included).
pub(crate) fn overlaps(problem: &Problem) -> Vec<Vec<usize>> {
    let ps = &problem.processors;
    (0..ps.len()).map(|p| (0..ps.len()).filter(|&q| q == p || ps[p].overlaps(&ps[q])).collect()).collect()
}

impl<'a> Evaluator<'a> {
    /// An evaluator for `problem` optimising `objective`.
    pub fn new(problem: &'a Problem, objective: Objective) -> Evaluator<'a> {
        let n = problem.ops.len();
        let max_stages = n + problem.ops.iter().filter(|o| !o.splits.is_empty()).count() + 1;
        let words = max_stages.div_ceil(64);
        let np = problem.processors.len();
        Evaluator {
            problem,
            succ: problem.successors(),
            overlap: overlaps(problem),
            objective,
            stages: Stages::default(),
            ops: vec![],
            part: vec![],
            sum: vec![],
            closed: vec![],
            anc: vec![0; words * max_stages],
            words,
            out: vec![Out::Inner; n],
            cover: vec![false; n],
            open: vec![vec![]; np],
            weights: vec![0.0; np],
            act: vec![0; np],
            sched: Scheduler::default(),
            times: Times::default(),
            listed: Stages::default(),
            order: vec![],
            place: vec![],
            slowed: Times::default(),
            evaluations: 0,
        }
    }

    /// The problem scored.
    pub fn problem(&self) -> &'a Problem {
        self.problem
    }

    /// The ops reading each op's output.
    pub fn successors(&self) -> &[Vec<usize>] {
        &self.succ
    }

    /// Scores a candidate (one choice per op).
    pub fn score(&mut self, choices: &[Choice]) -> Score {
        self.evaluations += 1;
        if !self.build(choices) {
            return Score::INFEASIBLE;
        }
        self.sched.run(&self.stages, self.problem.processors.len(), &self.overlap, Order::EarliestStart, &mut self.times);
        let (latency_us, period_us) = (self.times.latency, self.times.period);
        Score { value: objective_value(self.objective, latency_us, period_us), latency_us, period_us }
    }

    /// Scores a candidate in availability scenarios: in scenario `i`, every stage of processor `p` takes
    /// `factors[i][p]` times as long (what [`Problem::slowed`] does to the ops, split parts and stage
    /// costs; hand-overs keep their time). The stages are formed once and scheduled at the problem's own
    /// speed; in each scenario they then run in the order of that schedule, which is the order a plan
    /// written by [`Evaluator::plan`] lists them and the executor keeps whatever the load. So each
    /// scenario's figure is what [`crate::simulate`] predicts for that plan on the slowed problem (a
    /// fresh schedule of the slowed problem could reorder stages the executor will not reorder).
    ///
    /// Writes one score per scenario into `out`; returns the score at the problem's own speed. Counts
    /// as one evaluation.
    pub fn score_scenarios(&mut self, choices: &[Choice], factors: &[Vec<f64>], out: &mut Vec<Score>) -> Score {
        let own = self.score(choices);
        out.clear();
        if !own.is_feasible() {
            out.resize(factors.len(), Score::INFEASIBLE);
            return own;
        }
        let n = self.stages.len;
        self.order.clear();
        self.order.extend(0..n);
        self.order.sort_by(|&a, &b| self.times.start[a].total_cmp(&self.times.start[b]).then(a.cmp(&b)));
        self.place.resize(n, 0);
        for (k, &s) in self.order.iter().enumerate() {
            self.place[s] = k;
        }
        self.listed.clear();
        for &s in &self.order {
            let k = self.listed.push(self.stages.proc[s], self.stages.dur[s]);
            self.listed.deps[k].extend(self.stages.deps[s].iter().map(|&(d, delay)| (self.place[d], delay)));
        }
        let procs = self.problem.processors.len();
        for f in factors {
            for (k, &s) in self.order.iter().enumerate() {
                let p = self.stages.proc[s];
                self.listed.dur[k] = self.stages.dur[s] * crate::problem::slowdown(f, p);
            }
            self.sched.run(&self.listed, procs, &self.overlap, Order::Listed, &mut self.slowed);
            let (latency_us, period_us) = (self.slowed.latency, self.slowed.period);
            out.push(Score { value: objective_value(self.objective, latency_us, period_us), latency_us, period_us });
        }
        own
    }

    fn has_anc(&self, s: usize, t: usize) -> bool {
        (self.anc[s * self.words + t / 64] >> (t % 64)) & 1 == 1
    }

    /// Makes `t` and its ancestors ancestors of `s` (`t < s`).
    fn inherit(&mut self, s: usize, t: usize) {
        let w = self.words;
        let (lo, hi) = self.anc.split_at_mut(s * w);
        for (dst, src) in hi[..w].iter_mut().zip(&lo[t * w..t * w + w]) {
            *dst |= *src;
        }
        hi[t / 64] |= 1 << (t % 64);
    }

    fn new_stage(&mut self, p: usize, dur: f64, part: Option<(usize, bool)>) -> usize {
        let s = self.stages.push(p, dur);
        if s == self.ops.len() {
            self.ops.push(vec![]);
            self.part.push(part);
            self.sum.push(0.0);
            self.closed.push(part.is_some());
        } else {
            self.ops[s].clear();
            self.part[s] = part;
            self.sum[s] = 0.0;
            self.closed[s] = part.is_some();
        }
        let w = self.words;
        self.anc[s * w..s * w + w].fill(0);
        s
    }

    /// Whether op `v` may join stage `s`: everything it reads comes from `s` or from its ancestors.
    fn may_join(&self, s: usize, v: usize) -> bool {
        self.problem.ops[v].inputs.iter().all(|i| match i.from.map(|x| self.out[x]) {
            None | Some(Out::Inner) => true,
            Some(Out::One(t)) => t == s || self.has_anc(s, t),
            Some(Out::Two(a, b, _)) => self.has_anc(s, a) && self.has_anc(s, b),
        })
    }

    /// Adds the hand-overs of op `v`'s inputs (those not from `skip_chain`) to stage `s` on `p`;
    /// with `inherit`, also makes their producers ancestors of `s`.
    fn wire_inputs(&mut self, s: usize, p: usize, v: usize, chain: &[usize], inherit: bool) {
        let problem = self.problem;
        for i in &problem.ops[v].inputs {
            let Some(x) = i.from else { continue };
            if chain.contains(&x) {
                continue;
            }
            let mut producers: [(usize, f64); 2] = [(usize::MAX, 0.0); 2];
            let mut n = 0;
            self.out[x].each(|t, share| {
                producers[n] = (t, share);
                n += 1;
            });
            for &(t, share) in &producers[..n] {
                if t == s {
                    continue;
                }
                let q = self.stages.proc[t];
                // Two producers: the parts of a split, whose consumers start after the join.
                self.stages.deps[s].push((t, problem.edge_us(q, p, i.bytes as f64, share, n == 2)));
                if inherit {
                    self.inherit(s, t);
                }
            }
        }
    }

    /// Forms the stages of a candidate; false when it breaks a rule (an op where it cannot run, a
    /// memory limit).
    fn build(&mut self, choices: &[Choice]) -> bool {
        let problem = self.problem;
        let n = problem.ops.len();
        self.stages.clear();
        for o in &mut self.open {
            o.clear();
        }
        self.weights.iter_mut().for_each(|w| *w = 0.0);
        self.act.iter_mut().for_each(|a| *a = 0);
        self.cover.iter_mut().for_each(|c| *c = false);
        for v in (0..n).rev() {
            if let (false, Choice::Split { option, .. }) = (self.cover[v], choices[v]) {
                let chain = &problem.ops[v].splits[option].chain;
                for &u in &chain[..chain.len() - 1] {
                    self.cover[u] = true;
                }
            }
        }
        for v in 0..n {
            if self.cover[v] {
                self.out[v] = Out::Inner;
                continue;
            }
            let op = &problem.ops[v];
            let in_bytes: u64 = op.inputs.iter().map(|i| i.bytes).sum();
            match choices[v] {
                Choice::On(p) => {
                    let Some(c) = op.cost_us[p] else { return false };
                    // The producer's own stage, else the earliest open stage it may join.
                    let direct = op.inputs.iter().find_map(|i| match i.from.map(|x| self.out[x]) {
                        Some(Out::One(t)) if self.stages.proc[t] == p && !self.closed[t] && self.may_join(t, v) => Some(t),
                        _ => None,
                    });
                    let open = &self.open[p];
                    let from = open.len().saturating_sub(OPEN_SCAN);
                    let s = direct.or_else(|| open[from..].iter().copied().find(|&t| !self.closed[t] && self.may_join(t, v)));
                    let s = match s {
                        Some(s) => {
                            self.wire_inputs(s, p, v, &[], false);
                            s
                        }
                        None => {
                            let s = self.new_stage(p, 0.0, None);
                            self.wire_inputs(s, p, v, &[], true);
                            self.open[p].push(s);
                            s
                        }
                    };
                    self.ops[s].push(v);
                    self.sum[s] += c;
                    self.weights[p] += op.weight_bytes as f64;
                    self.act[p] = self.act[p].max(in_bytes + op.output_bytes);
                    if self.succ[v].iter().any(|&w| self.cover[w] || choices[w] != Choice::On(p)) {
                        self.closed[s] = true;
                        self.open[p].retain(|&t| t != s);
                    }
                    self.out[v] = Out::One(s);
                }
                Choice::Split { option, k, first, second } => {
                    let opt = &op.splits[option];
                    let f = opt.fractions[k];
                    let (Some(ca), Some(cb)) = (opt.part_cost(first, f), opt.part_cost(second, 1.0 - f)) else { return false };
                    let a = self.new_stage(first, ca, Some((v, false)));
                    let b = self.new_stage(second, cb, Some((v, true)));
                    for &w in &opt.chain {
                        self.wire_inputs(a, first, w, &opt.chain, true);
                        self.wire_inputs(b, second, w, &opt.chain, true);
                        let wop = &problem.ops[w];
                        self.weights[first] += wop.weight_bytes as f64 * f;
                        self.weights[second] += wop.weight_bytes as f64 * (1.0 - f);
                    }
                    self.ops[a].extend_from_slice(&opt.chain);
                    self.ops[b].extend_from_slice(&opt.chain);
                    for p in [first, second] {
                        self.act[p] = self.act[p].max(in_bytes + opt.output_bytes);
                    }
                    self.out[v] = Out::Two(a, b, f);
                }
            }
        }
        for (p, spec) in problem.processors.iter().enumerate() {
            if let Some(limit) = spec.memory_bytes {
                if self.weights[p] + self.act[p] as f64 > limit as f64 {
                    return false;
                }
            }
        }
        for s in 0..self.stages.len {
            if self.part[s].is_none() {
                let p = self.stages.proc[s];
                self.stages.dur[s] = problem.stage[p].us(self.sum[s], self.ops[s].len());
            }
        }
        true
    }

    /// Writes a candidate as a plan: stages listed by predicted start, splits, transfers and the
    /// timeline [`crate::simulate`] predicts for it (the same figures [`Evaluator::score`] gave).
    pub fn plan(&mut self, choices: &[Choice], model: ModelRef, device_id: &str, cost_model_version: Option<i64>) -> Result<Plan, PlanError> {
        let score = self.score(choices);
        if !score.is_feasible() {
            return Err(PlanError::Invalid("the candidate breaks a rule (an op where it cannot run, or a memory limit)".into()));
        }
        let problem = self.problem;
        let n = self.stages.len;
        let mut order: Vec<usize> = (0..n).collect();
        order.sort_by(|&a, &b| self.times.start[a].total_cmp(&self.times.start[b]).then(a.cmp(&b)));
        let mut id = vec![0; n];
        for (new, &old) in order.iter().enumerate() {
            id[old] = new;
        }
        let mut stages = vec![];
        let mut splits: Vec<Split> = vec![];
        let mut split_of_op: Vec<Option<usize>> = vec![None; problem.ops.len()];
        for &s in &order {
            let mut deps: Vec<usize> = self.stages.deps[s].iter().map(|&(d, _)| id[d]).collect();
            deps.sort();
            deps.dedup();
            let part = self.part[s].map(|(v, second)| {
                let Choice::Split { option, k, .. } = choices[v] else { unreachable!("a part stage comes from a split choice") };
                let opt = &problem.ops[v].splits[option];
                let share = opt.cut(opt.fractions[k]);
                // The first processor's share comes first along the axis, unless only the other order
                // puts the cut on a block boundary (a share seen from the other side).
                let align = opt.align.max(1);
                let flip = share % align != 0 && (opt.extent - share) % align == 0;
                let cut = if flip { opt.extent - share } else { share };
                let index = *split_of_op[v].get_or_insert_with(|| {
                    splits.push(Split { ops: opt.chain.clone(), axis: opt.axis, bounds: vec![0, cut, opt.extent], stages: vec![0, 0] });
                    splits.len() - 1
                });
                let position = (second != flip) as usize;
                splits[index].stages[position] = id[s];
                let bounds = &splits[index].bounds;
                Part { split: index, start: bounds[position], end: bounds[position + 1] }
            });
            stages.push(Stage { id: id[s], processor: problem.processors[self.stages.proc[s]].id.clone(), ops: self.ops[s].clone(), part, deps });
        }
        let mut used: Vec<usize> = (0..n).map(|s| self.stages.proc[s]).collect();
        used.sort();
        used.dedup();
        let mut plan = Plan {
            model,
            device_id: device_id.to_string(),
            cost_model_version,
            objective: self.objective,
            processors: used.iter().map(|&p| problem.processors[p].id.clone()).collect(),
            stages,
            splits,
            transfers: vec![],
            predicted: Default::default(),
        };
        plan.transfers = crate::timeline::transfers(&plan, problem)?;
        plan.predicted = crate::timeline::simulate(&plan, problem)?;
        let drift = (plan.predicted.latency_us - score.latency_us).abs();
        debug_assert!(drift <= 1e-6 * score.latency_us.max(1.0), "plan simulates to {} µs, scored {} µs", plan.predicted.latency_us, score.latency_us);
        Ok(plan)
    }
}
