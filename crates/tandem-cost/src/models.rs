//! [`CostModels`]: every fitted model of one device, and the prediction interface the planner uses.

use serde::{Deserialize, Serialize};

use crate::opmodel::ContextModels;
use crate::sample::{Context, OpFeatures, PartSpec};
use crate::stage::StageModel;
use crate::transfer::TransferModels;

/// The models of one processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessorModels {
    /// `cpu:0`, `cpu:0-1`, ...
    pub processor: String,
    /// Op models predicting in-context times (what an op adds to a stage).
    pub in_model: ContextModels,
    /// Op models predicting times alone, and split parts (each part runs alone).
    pub isolated: ContextModels,
    /// Stage time from the sum of in-context op times.
    pub stage: StageModel,
}

impl ProcessorModels {
    /// The op models of a context.
    #[inline]
    pub fn context(&self, context: Context) -> &ContextModels {
        match context {
            Context::InModel => &self.in_model,
            Context::Isolated => &self.isolated,
        }
    }
}

/// Every fitted model of one device, one version: op models per (processor, context, kind), stage
/// models per processor, transfer models per processor pair.
///
/// Predictions are microseconds. A processor the models do not know predicts `f64::INFINITY` (it has
/// never run anything, so a planner must not choose it); everything else is finite and positive.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CostModels {
    /// The device the models were fitted for.
    pub device: String,
    /// The fit's version (one `tandem fit` = one version; 0 until stored).
    pub version: i64,
    /// Per processor.
    pub processors: Vec<ProcessorModels>,
    /// Hand-overs between processors.
    pub transfers: TransferModels,
}

impl CostModels {
    /// The models of a processor.
    #[inline]
    pub fn processor(&self, id: &str) -> Option<&ProcessorModels> {
        self.processors.iter().find(|p| p.processor == id)
    }

    /// The processors the models know.
    pub fn processor_ids(&self) -> Vec<&str> {
        self.processors.iter().map(|p| p.processor.as_str()).collect()
    }

    /// An op's predicted time inside a stage on `processor` (in context), µs.
    #[inline]
    pub fn predict_op(&self, processor: &str, op: &OpFeatures) -> f64 {
        self.predict_op_in(processor, op, Context::InModel)
    }

    /// An op's predicted time in the given context, µs.
    #[inline]
    pub fn predict_op_in(&self, processor: &str, op: &OpFeatures, context: Context) -> f64 {
        match self.processor(processor) {
            Some(p) => p.context(context).predict(op),
            None => f64::INFINITY,
        }
    }

    /// The predicted time of one part of `op` split along output `axis`, the part covering
    /// `[part.start, part.end)` of it, run on its own on `processor` (as split parts run), µs.
    #[inline]
    pub fn predict_split_part(&self, processor: &str, op: &OpFeatures, part: PartSpec) -> f64 {
        self.predict_op_in(processor, &op.part(part.axis, part.start, part.end), Context::Isolated)
    }

    /// The predicted time to hand `bytes` from `src` to `dst`, µs (0 on the same processor).
    #[inline]
    pub fn predict_transfer(&self, src: &str, dst: &str, bytes: f64) -> f64 {
        self.transfers.predict(src, dst, bytes)
    }

    /// The predicted time of a stage running `ops` on `processor`, µs: the stage model applied to the
    /// sum of the ops' predicted in-context times.
    pub fn predict_stage(&self, processor: &str, ops: &[OpFeatures]) -> f64 {
        let Some(p) = self.processor(processor) else { return f64::INFINITY };
        let sum: f64 = ops.iter().map(|o| p.in_model.predict(o)).sum();
        p.stage.predict(sum, ops.len())
    }

    /// The stage model alone, for a planner that keeps running sums: a stage of `ops` ops whose
    /// predicted in-context times sum to `ops_sum_us`.
    #[inline]
    pub fn stage_us(&self, processor: &str, ops_sum_us: f64, ops: usize) -> f64 {
        match self.processor(processor) {
            Some(p) => p.stage.predict(ops_sum_us, ops),
            None => f64::INFINITY,
        }
    }

    /// Whether every stored number is finite (nothing NaN or infinite may reach the database).
    pub fn is_valid(&self) -> bool {
        self.processors.iter().all(|p| p.in_model.is_valid() && p.isolated.is_valid() && p.stage.is_valid())
            && self.transfers.is_valid()
    }

    /// Rebuilds lookup indexes after deserialising.
    pub fn reindex(&mut self) {
        for p in &mut self.processors {
            for c in [&mut p.in_model, &mut p.isolated] {
                for m in c.kinds.values_mut() {
                    m.neighbours.index();
                }
            }
        }
    }
}
