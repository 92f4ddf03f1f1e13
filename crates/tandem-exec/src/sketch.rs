//! Plans made by hand: the whole model on one processor, or pieces placed explicitly (tests,
//! benchmarks). Dependencies and transfers are derived from the graph's data flow; the prediction is
//! left empty.

use std::collections::{BTreeMap, BTreeSet};

use tandem_graph::{Graph, OpId, ValueId};
use tandem_plan::{Objective, Part, Plan, PlanError, Split, Stage, Timeline, Transfer};

/// One piece of a hand-made plan. Pieces are listed so that every piece comes after those it reads.
#[derive(Debug, Clone, PartialEq)]
pub enum Piece {
    /// A set of ops run as one model on one processor.
    Stage {
        /// The ops (a convex set).
        ops: Vec<OpId>,
        /// The processor.
        processor: String,
    },
    /// An op chain split along an output axis into parts run on several processors at once.
    Split {
        /// The chain.
        ops: Vec<OpId>,
        /// Output axis.
        axis: usize,
        /// Cut points from 0 to the axis length.
        bounds: Vec<usize>,
        /// One processor per part.
        processors: Vec<String>,
    },
}

impl Piece {
    fn ops(&self) -> &[OpId] {
        match self {
            Piece::Stage { ops, .. } | Piece::Split { ops, .. } => ops,
        }
    }
}

/// The plan running the whole model as one stage on `processor`.
pub fn single(graph: &Graph, device_id: &str, processor: &str) -> Plan {
    let pieces = [Piece::Stage { ops: (0..graph.ops.len()).collect(), processor: processor.to_string() }];
    sketch(graph, device_id, &pieces).expect("one stage of every op is a valid plan")
}

/// Assembles a plan from pieces: stages (one per part of a split), dependencies and transfers from the
/// data flow, and the structure checked by [`Plan::validate`].
pub fn sketch(graph: &Graph, device_id: &str, pieces: &[Piece]) -> Result<Plan, PlanError> {
    let invalid = PlanError::Invalid;
    let mut piece_of: Vec<Option<usize>> = vec![None; graph.ops.len()];
    for (p, piece) in pieces.iter().enumerate() {
        for &o in piece.ops() {
            let slot = piece_of.get_mut(o).ok_or_else(|| invalid(format!("piece {p} names op {o}; the model has {}", graph.ops.len())))?;
            if slot.replace(p).is_some() {
                return Err(invalid(format!("op {o} is in two pieces")));
            }
        }
    }
    if let Some(o) = piece_of.iter().position(Option::is_none) {
        return Err(invalid(format!("op {o} ({}) is in no piece", graph.ops[o].name)));
    }
    let mut stages: Vec<Stage> = vec![];
    let mut splits: Vec<Split> = vec![];
    let mut piece_stages: Vec<Vec<usize>> = vec![];
    for (p, piece) in pieces.iter().enumerate() {
        // Pieces this one reads, and the values it reads from each.
        let mut reads: BTreeMap<usize, BTreeSet<ValueId>> = BTreeMap::new();
        for &o in piece.ops() {
            for e in &graph.ops[o].inputs {
                let Some(from) = e.from else { continue };
                let q = piece_of[from].expect("checked");
                if q == p {
                    continue;
                }
                if q > p {
                    return Err(invalid(format!("piece {p} reads op {from} of piece {q}, which comes after it")));
                }
                reads.entry(q).or_default().insert(e.value);
            }
        }
        let deps: Vec<usize> = reads.keys().flat_map(|&q| piece_stages[q].iter().copied()).collect();
        let mut ids = vec![];
        match piece {
            Piece::Stage { ops, processor } => {
                let mut ops = ops.clone();
                ops.sort();
                ids.push(stages.len());
                stages.push(Stage { id: stages.len(), processor: processor.clone(), ops, part: None, deps: deps.clone() });
            }
            Piece::Split { ops, axis, bounds, processors } => {
                if processors.len() + 1 != bounds.len() {
                    return Err(invalid(format!("piece {p}: {} processors for {} parts", processors.len(), bounds.len().saturating_sub(1))));
                }
                let split = splits.len();
                for (j, processor) in processors.iter().enumerate() {
                    ids.push(stages.len());
                    let part = Part { split, start: bounds[j], end: bounds[j + 1] };
                    stages.push(Stage { id: stages.len(), processor: processor.clone(), ops: ops.clone(), part: Some(part), deps: deps.clone() });
                }
                splits.push(Split { ops: ops.clone(), axis: *axis, bounds: bounds.clone(), stages: ids.clone() });
            }
        }
        piece_stages.push(ids);
    }
    let transfers = transfers(graph, pieces, &piece_of, &piece_stages, &stages);
    let mut processors: Vec<String> = vec![];
    for s in &stages {
        if !processors.contains(&s.processor) {
            processors.push(s.processor.clone());
        }
    }
    let plan = Plan {
        model: tandem_plan::build::model_ref(graph),
        device_id: device_id.to_string(),
        cost_model_version: None,
        objective: Objective::Latency,
        processors,
        stages,
        splits,
        transfers,
        predicted: Timeline::default(),
    };
    plan.validate()?;
    Ok(plan)
}

/// A transfer for every (producing stage, consuming stage) pair on different processors; a split part
/// hands over its share of the chain's output, and every part reads its inputs whole.
fn transfers(graph: &Graph, pieces: &[Piece], piece_of: &[Option<usize>], piece_stages: &[Vec<usize>], stages: &[Stage]) -> Vec<Transfer> {
    let mut out = vec![];
    for (p, piece) in pieces.iter().enumerate() {
        let mut bytes_from: BTreeMap<usize, BTreeMap<ValueId, u64>> = BTreeMap::new();
        for &o in piece.ops() {
            for e in &graph.ops[o].inputs {
                if let Some(q) = e.from.and_then(|f| piece_of[f]).filter(|&q| q != p) {
                    bytes_from.entry(q).or_default().insert(e.value, e.bytes);
                }
            }
        }
        for (q, values) in bytes_from {
            let total: u64 = values.values().sum();
            for &from in &piece_stages[q] {
                let share = match (&stages[from].part, &pieces[q]) {
                    (Some(part), Piece::Split { bounds, .. }) => (part.end - part.start) as f64 / *bounds.last().unwrap() as f64,
                    _ => 1.0,
                };
                for &to in &piece_stages[p] {
                    if stages[from].processor != stages[to].processor {
                        out.push(Transfer {
                            from_stage: from,
                            to_stage: to,
                            src: stages[from].processor.clone(),
                            dst: stages[to].processor.clone(),
                            bytes: (total as f64 * share).round() as u64,
                        });
                    }
                }
            }
        }
    }
    out.sort_by_key(|t| (t.to_stage, t.from_stage));
    out
}
