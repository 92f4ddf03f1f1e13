//! The reference the search is checked against: every candidate of every configuration, scored.
//!
//! In each maximal configuration ([`crate::configurations`]), every op takes each of its
//! [`alternatives`] (a processor of the configuration that can run it, or a two-way split with each
//! ratio over each pair), and every combination is scored by the same [`Evaluator`] the search uses.
//! Single-processor plans are among the combinations. Only small problems can be enumerated: the count
//! is the product of the ops' alternatives.

use crate::evaluate::{alternatives, Choice, Evaluator};
use crate::plan::{Objective, PlanError};
use crate::problem::Problem;
use crate::search::{configurations, Solution};

/// The optimum and how many candidates it took.
#[derive(Debug, Clone)]
pub struct Exhaustive {
    /// The best candidate.
    pub best: Solution,
    /// Candidates scored.
    pub candidates: u64,
}

/// How many candidates [`exhaustive`] would score.
pub fn candidate_count(problem: &Problem) -> u64 {
    configurations(problem)
        .iter()
        .map(|c| (0..problem.ops.len()).map(|v| alternatives(problem, v, c).len() as u64).fold(1u64, |a, b| a.saturating_mul(b)))
        .fold(0u64, |a, b| a.saturating_add(b))
}

/// Scores every candidate; refuses when there are more than `limit`.
pub fn exhaustive(problem: &Problem, objective: Objective, limit: u64) -> Result<Exhaustive, PlanError> {
    let mut ev = Evaluator::new(problem, objective);
    let mut best: Option<Solution> = None;
    enumerate(problem, limit, |choices| {
        let score = ev.score(choices);
        if score.is_feasible() && best.as_ref().map(|b| score.value < b.score.value).unwrap_or(true) {
            best = Some(Solution { choices: choices.to_vec(), score });
        }
    })?;
    let best = best.ok_or_else(|| PlanError::NoPlan("no candidate can run every op within memory".into()))?;
    Ok(Exhaustive { best, candidates: ev.evaluations as u64 })
}

/// Calls `visit` with every candidate of every configuration (the enumeration [`exhaustive`] scores,
/// for references that score candidates another way); refuses when there are more than `limit`.
pub fn enumerate(problem: &Problem, limit: u64, mut visit: impl FnMut(&[Choice])) -> Result<(), PlanError> {
    problem.check()?;
    let count = candidate_count(problem);
    if count > limit {
        return Err(PlanError::NoPlan(format!("{count} candidates are too many to enumerate (limit {limit})")));
    }
    let n = problem.ops.len();
    for config in configurations(problem) {
        let alts: Vec<Vec<Choice>> = (0..n).map(|v| alternatives(problem, v, &config)).collect();
        if alts.iter().any(|a| a.is_empty()) {
            continue;
        }
        let mut digit = vec![0usize; n];
        let mut choices: Vec<Choice> = alts.iter().map(|a| a[0]).collect();
        loop {
            visit(&choices);
            // Next combination (odometer).
            let mut v = 0;
            while v < n {
                digit[v] += 1;
                if digit[v] < alts[v].len() {
                    choices[v] = alts[v][digit[v]];
                    break;
                }
                digit[v] = 0;
                choices[v] = alts[v][0];
                v += 1;
            }
            if v == n {
                break;
            }
        }
    }
    Ok(())
}
