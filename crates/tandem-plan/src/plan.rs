//! The plan: which ops run where, in what order, and what that is predicted to cost.

use std::collections::BTreeSet;

use serde::{Deserialize, Serialize};

/// What the search minimises.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Objective {
    /// Time of one request from input to output.
    #[default]
    Latency,
    /// Requests per second with stages pipelined across requests.
    Throughput,
}

impl Objective {
    /// `latency` or `throughput`.
    pub fn as_str(self) -> &'static str {
        match self {
            Objective::Latency => "latency",
            Objective::Throughput => "throughput",
        }
    }
}

/// The model a plan was made for. A plan is refused for any other model (content hash) or other
/// fixed input shapes (which change the ops).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRef {
    /// Display name.
    pub name: String,
    /// SHA-256 of the ONNX bytes.
    pub content_hash: String,
    /// The fixed input shapes, as stored in the `models` table (JSON text).
    pub input_shapes: String,
    /// Number of ops the graph had when planned.
    pub op_count: usize,
}

/// Which part of a split a stage computes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Part {
    /// Index into [`Plan::splits`].
    pub split: usize,
    /// Output range along the split's axis: `start..end`.
    pub start: usize,
    /// End of the range (exclusive).
    pub end: usize,
}

/// Work for one processor: a set of ops run as one model, or one part of a split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Stage {
    /// Its index in [`Plan::stages`].
    pub id: usize,
    /// The processor it runs on.
    pub processor: String,
    /// Graph op ids, in topological order (for a part: the split's chain).
    pub ops: Vec<usize>,
    /// Set when the stage computes one part of a split of `ops`.
    pub part: Option<Part>,
    /// Stages whose outputs it reads (for a part: the stages feeding the chain).
    pub deps: Vec<usize>,
}

/// A chain of ops cut along an output axis into parts run at once, joined by concatenation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Split {
    /// The chain's op ids, in order; the last one's output is cut.
    pub ops: Vec<usize>,
    /// Output axis.
    pub axis: usize,
    /// Cut points from 0 to the axis length, increasing; part `i` covers `bounds[i]..bounds[i + 1]`.
    pub bounds: Vec<usize>,
    /// The stages computing the parts, in axis order.
    pub stages: Vec<usize>,
}

/// A tensor handed from one processor to another.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Transfer {
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
}

/// One interval of a timeline, in µs from the request's start.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Span {
    /// What ran: `stage 3`, `transfer 1->3`.
    pub name: String,
    /// The processor (for a transfer, the destination).
    pub processor: String,
    /// The stage id, or the consuming stage of a transfer.
    pub stage: usize,
    /// Start.
    pub start_us: f64,
    /// End.
    pub end_us: f64,
}

/// A plan's predicted (or measured) timeline for one request, and its pipelined throughput.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Timeline {
    /// From the first stage's start to the last output.
    pub latency_us: f64,
    /// Steady-state time between requests when stages are pipelined (the busiest processor's work).
    pub period_us: f64,
    /// Stages and transfers.
    pub spans: Vec<Span>,
}

impl Timeline {
    /// Requests per second of the pipelined stream.
    pub fn throughput_rps(&self) -> f64 {
        if self.period_us > 0.0 {
            1e6 / self.period_us
        } else {
            0.0
        }
    }
}

/// Everything the executor needs to run a model across processors, and what it was predicted to cost.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The model it was made for.
    pub model: ModelRef,
    /// The device fingerprint it was made for.
    pub device_id: String,
    /// The cost-model version its predictions come from.
    pub cost_model_version: Option<i64>,
    /// What was optimised.
    pub objective: Objective,
    /// The processor configuration (disjoint cores).
    pub processors: Vec<String>,
    /// In an order where every stage comes after its deps.
    pub stages: Vec<Stage>,
    /// Splits referenced by the stages' parts.
    pub splits: Vec<Split>,
    /// Hand-overs between processors.
    pub transfers: Vec<Transfer>,
    /// The predicted timeline.
    pub predicted: Timeline,
}

/// A plan that cannot be used as it is.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum PlanError {
    /// Made for another model or other input shapes.
    #[error("the plan was made for model '{planned}' ({planned_hash}), not '{given}' ({given_hash}): run `tandem tune` for this model")]
    OtherModel {
        /// Name in the plan.
        planned: String,
        /// Hash in the plan (shortened).
        planned_hash: String,
        /// Name given.
        given: String,
        /// Hash given (shortened).
        given_hash: String,
    },
    /// Names a processor the device does not have.
    #[error("the plan uses processor {0}, which this device does not have: run `tandem tune` again on this device")]
    UnknownProcessor(String),
    /// Made with cost models older than the newest.
    #[error("the plan was made with cost models version {planned}, but version {current} is the newest: run `tandem tune` again")]
    StaleCostModel {
        /// Version in the plan.
        planned: i64,
        /// Newest version.
        current: i64,
    },
    /// Inconsistent structure (an op missing or run twice, a dependency on a later stage...).
    #[error("invalid plan: {0}")]
    Invalid(String),
    /// No plan can be made: an op no processor can run, a memory limit nothing fits in, a problem too
    /// large to enumerate.
    #[error("no plan: {0}")]
    NoPlan(String),
}

impl Plan {
    /// Refuses a plan made for another model (content hash or input shapes).
    pub fn check_model(&self, model: &ModelRef) -> Result<(), PlanError> {
        if self.model.content_hash != model.content_hash || self.model.input_shapes != model.input_shapes || self.model.op_count != model.op_count {
            return Err(PlanError::OtherModel {
                planned: self.model.name.clone(),
                planned_hash: short(&self.model.content_hash),
                given: model.name.clone(),
                given_hash: short(&model.content_hash),
            });
        }
        Ok(())
    }

    /// Refuses a plan naming a processor not in `available`.
    pub fn check_processors<S: AsRef<str>>(&self, available: &[S]) -> Result<(), PlanError> {
        let have: BTreeSet<&str> = available.iter().map(|s| s.as_ref()).collect();
        match self.stages.iter().map(|s| s.processor.as_str()).chain(self.processors.iter().map(String::as_str)).find(|p| !have.contains(p)) {
            Some(p) => Err(PlanError::UnknownProcessor(p.to_string())),
            None => Ok(()),
        }
    }

    /// Refuses a plan made with cost models older than `current`.
    pub fn check_cost_model(&self, current: Option<i64>) -> Result<(), PlanError> {
        match (self.cost_model_version, current) {
            (Some(planned), Some(current)) if planned < current => Err(PlanError::StaleCostModel { planned, current }),
            _ => Ok(()),
        }
    }

    /// Checks the structure: every op of the model computed exactly once (by one stage, or by all the
    /// parts of one split), stages in dependency order, splits covering their axis.
    pub fn validate(&self) -> Result<(), PlanError> {
        let n = self.model.op_count;
        let mut seen = vec![0usize; n];
        for (i, s) in self.stages.iter().enumerate() {
            if s.id != i {
                return Err(PlanError::Invalid(format!("stage at position {i} has id {}", s.id)));
            }
            if s.ops.is_empty() {
                return Err(PlanError::Invalid(format!("stage {i} has no ops")));
            }
            if let Some(d) = s.deps.iter().find(|&&d| d >= i) {
                return Err(PlanError::Invalid(format!("stage {i} depends on stage {d}, which does not come before it")));
            }
            if let Some(op) = s.ops.iter().find(|&&o| o >= n) {
                return Err(PlanError::Invalid(format!("stage {i} names op {op}; the model has {n}")));
            }
            match &s.part {
                None => s.ops.iter().for_each(|&o| seen[o] += 1),
                Some(p) => {
                    let split = self.splits.get(p.split).ok_or_else(|| PlanError::Invalid(format!("stage {i} is a part of split {}, which does not exist", p.split)))?;
                    if split.ops != s.ops || !split.stages.contains(&i) {
                        return Err(PlanError::Invalid(format!("stage {i} does not match split {}", p.split)));
                    }
                }
            }
        }
        for (k, split) in self.splits.iter().enumerate() {
            if split.bounds.len() != split.stages.len() + 1 || split.bounds.windows(2).any(|w| w[0] >= w[1]) || split.bounds.first() != Some(&0) {
                return Err(PlanError::Invalid(format!("split {k} has bounds {:?} for {} parts", split.bounds, split.stages.len())));
            }
            for (j, &st) in split.stages.iter().enumerate() {
                let part = self.stages.get(st).and_then(|s| s.part.as_ref());
                if part.map(|p| (p.split, p.start, p.end)) != Some((k, split.bounds[j], split.bounds[j + 1])) {
                    return Err(PlanError::Invalid(format!("split {k}'s part {j} is not stage {st}")));
                }
            }
            split.ops.iter().filter(|&&o| o < n).for_each(|&o| seen[o] += 1);
        }
        if let Some(op) = seen.iter().position(|&c| c != 1) {
            return Err(PlanError::Invalid(format!("op {op} is computed {} times; every op must be computed once", seen[op])));
        }
        Ok(())
    }
}

fn short(hash: &str) -> String {
    hash.chars().take(12).collect()
}
