//! A plan's predicted timeline: its stages timed with the problem's costs and scheduled as the executor
//! runs them.
//!
//! Each processor runs its stages in the order the plan lists them, one at a time; processors that
//! share a core exclude each other. A stage starts when its processor is free and every tensor it reads
//! has arrived: a tensor produced on another processor arrives a transfer later (the transfer model's
//! fixed cost plus its cost per byte), and a split's output is read from all of its parts, each handing
//! over its share. The latency is the last stage's end; the pipelined period, with requests streaming
//! through the stages, is the busiest processor's total work.

use std::collections::BTreeMap;

use crate::evaluate::overlaps;
use crate::plan::{Plan, PlanError, Span, Timeline, Transfer};
use crate::problem::Problem;
use crate::schedule::{Order, Scheduler, Stages, Times};

/// One tensor read across stages: `bytes` from stage `from` (on processor `src`) into stage `to`.
struct Edge {
    from: usize,
    to: usize,
    src: usize,
    dst: usize,
    bytes: f64,
    /// When `from` is a split part: the whole joined tensor's bytes (the join's copy), else 0.
    joined: f64,
}

/// A plan's stages resolved against a problem: processors, durations and the tensors they exchange.
struct Resolved {
    proc: Vec<usize>,
    dur: Vec<f64>,
    edges: Vec<Edge>,
}

fn invalid(m: String) -> PlanError {
    PlanError::Invalid(m)
}

fn resolve(plan: &Plan, problem: &Problem) -> Result<Resolved, PlanError> {
    plan.validate()?;
    if plan.model.op_count != problem.ops.len() {
        return Err(invalid(format!("the plan covers {} ops, the problem has {}", plan.model.op_count, problem.ops.len())));
    }
    let proc: Vec<usize> = plan
        .stages
        .iter()
        .map(|s| problem.processor_index(&s.processor).ok_or_else(|| PlanError::UnknownProcessor(s.processor.clone())))
        .collect::<Result<_, _>>()?;
    // Who produces each op's output: one stage, or the parts of a split with their shares.
    let mut producers: Vec<Vec<(usize, f64)>> = vec![vec![]; problem.ops.len()];
    let mut dur = vec![0.0; plan.stages.len()];
    for (i, s) in plan.stages.iter().enumerate() {
        let p = proc[i];
        match &s.part {
            None => {
                let mut sum = 0.0;
                for &v in &s.ops {
                    sum += problem.ops[v].cost_us[p].ok_or_else(|| invalid(format!("stage {i} runs op {v} ({}) on {}, which cannot run it", problem.ops[v].name, s.processor)))?;
                    producers[v].push((i, 1.0));
                }
                dur[i] = problem.stage[p].us(sum, s.ops.len());
            }
            Some(part) => {
                let split = &plan.splits[part.split];
                let last = *split.ops.last().ok_or_else(|| invalid(format!("split {} has no ops", part.split)))?;
                let option = problem.ops[last]
                    .splits
                    .iter()
                    .find(|o| o.chain == split.ops && o.axis == split.axis && o.extent == *split.bounds.last().unwrap_or(&0))
                    .ok_or_else(|| invalid(format!("split {} (ops {:?}, axis {}) is not one the problem offers", part.split, split.ops, split.axis)))?;
                let share = (part.end - part.start) as f64 / option.extent as f64;
                dur[i] = option.part_cost(p, share).ok_or_else(|| invalid(format!("stage {i} runs a part of split {} on {}, which cannot run it", part.split, s.processor)))?;
                for &v in &split.ops {
                    producers[v].push((i, share));
                }
            }
        }
    }
    let mut edges = vec![];
    for (i, s) in plan.stages.iter().enumerate() {
        // A tensor is handed over once per consuming stage, however many of its ops read it.
        let mut read: BTreeMap<usize, u64> = BTreeMap::new();
        for &v in &s.ops {
            for input in &problem.ops[v].inputs {
                if let Some(x) = input.from.filter(|x| !s.ops.contains(x)) {
                    let b = read.entry(x).or_insert(0);
                    *b = (*b).max(input.bytes);
                }
            }
        }
        for (x, bytes) in read {
            for &(t, share) in &producers[x] {
                if !s.deps.contains(&t) {
                    return Err(invalid(format!("stage {i} reads op {x} ({}) from stage {t} without depending on it", problem.ops[x].name)));
                }
                let joined = if share < 1.0 { bytes as f64 } else { 0.0 };
                edges.push(Edge { from: t, to: i, src: proc[t], dst: proc[i], bytes: bytes as f64 * share, joined });
            }
        }
    }
    Ok(Resolved { proc, dur, edges })
}

/// Predicts a plan's timeline with a problem's costs.
///
/// Fails when the plan does not fit the problem: a processor it does not have, an op on a processor
/// that cannot run it, a split it does not offer, a stage reading a tensor from a stage it does not
/// depend on, or anything [`Plan::validate`] refuses.
pub fn simulate(plan: &Plan, problem: &Problem) -> Result<Timeline, PlanError> {
    let r = resolve(plan, problem)?;
    let mut stages = Stages::default();
    for (i, s) in plan.stages.iter().enumerate() {
        let k = stages.push(r.proc[i], r.dur[i]);
        // Every dependency is waited for, even one that hands nothing over.
        stages.deps[k].extend(s.deps.iter().map(|&d| (d, 0.0)));
    }
    let delay = |e: &Edge| problem.hand_over_us(e.src, e.dst, e.bytes);
    // A split's consumers start once its parts are joined, on the part's processor that finishes last.
    let join = |e: &Edge| if e.joined > 0.0 { problem.join_us(e.src, e.joined) } else { 0.0 };
    for e in &r.edges {
        stages.deps[e.to].push((e.from, delay(e) + join(e)));
    }
    let mut t = Times::default();
    Scheduler::default().run(&stages, problem.processors.len(), &overlaps(problem), Order::Listed, &mut t);
    let mut spans: Vec<Span> = plan
        .stages
        .iter()
        .enumerate()
        .map(|(i, s)| Span { name: format!("stage {i}"), processor: s.processor.clone(), stage: i, start_us: t.start[i], end_us: t.end[i] })
        .collect();
    // Each split's join, on the processor of its part that finishes last (as the executor records it).
    for (k, split) in plan.splits.iter().enumerate() {
        let (Some(&last), Some(&op)) = (split.stages.iter().max_by(|&&a, &&b| t.end[a].total_cmp(&t.end[b])), split.ops.last()) else { continue };
        let us = problem.join_us(r.proc[last], problem.ops[op].output_bytes as f64);
        if us > 0.0 {
            spans.push(Span { name: format!("join split {k}"), processor: plan.stages[last].processor.clone(), stage: last, start_us: t.end[last], end_us: t.end[last] + us });
        }
    }
    for e in r.edges.iter().filter(|e| e.src != e.dst) {
        spans.push(Span {
            name: format!("transfer {}->{}", e.from, e.to),
            processor: plan.stages[e.to].processor.clone(),
            stage: e.to,
            start_us: t.end[e.from] + join(e),
            end_us: t.end[e.from] + join(e) + delay(e),
        });
    }
    Ok(Timeline { latency_us: t.latency, period_us: t.period, spans })
}

/// The hand-overs between processors a plan implies: one per (producing stage, consuming stage) on
/// different processors, with the bytes of every tensor crossing.
pub fn transfers(plan: &Plan, problem: &Problem) -> Result<Vec<Transfer>, PlanError> {
    let r = resolve(plan, problem)?;
    let mut sum: BTreeMap<(usize, usize), f64> = BTreeMap::new();
    for e in r.edges.iter().filter(|e| e.src != e.dst) {
        *sum.entry((e.from, e.to)).or_insert(0.0) += e.bytes;
    }
    Ok(sum
        .into_iter()
        .map(|((from, to), bytes)| Transfer {
            from_stage: from,
            to_stage: to,
            src: problem.processors[r.proc[from]].id.clone(),
            dst: problem.processors[r.proc[to]].id.clone(),
            bytes: bytes.round() as u64,
        })
        .collect())
}
