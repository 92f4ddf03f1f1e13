//! [`CostModels`]: every fitted model of one device, and the prediction interface the planner uses.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use crate::opmodel::ContextModels;
use crate::sample::{Context, OpFeatures, PartSpec, PlanPartSample};
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
    /// In-plan calibration: a split part's time inside a running plan from what the models above
    /// predict for it alone, `fixed + factor · predicted (+ per_op · ops)`, fitted on the parts of
    /// stored plan runs ([`crate::PlanPartSample`]). Inside a plan the parts of a split run at once
    /// and share the memory system, which no profile sees; the identity (`StageForm::Sum`) until a
    /// plan with splits has run.
    #[serde(default)]
    pub in_plan: StageModel,
    /// The in-plan calibration fitted on one model's own plan runs alone (models with at least
    /// [`MIN_OWN_PARTS`] parts timed on this processor), by model name: how much slower *that*
    /// model's parts run inside its plans. Re-planning a model that has run uses its own
    /// ([`CostModels::for_model`]); the pooled one is for models whose plans never ran.
    #[serde(default)]
    pub in_plan_of_model: BTreeMap<String, StageModel>,
    /// Whole-stage calibration: a whole-op stage's time inside a running plan (and a `single:`
    /// baseline's beside it) from the stage model's prediction, fitted on stored plan runs
    /// ([`crate::PlanStageSample`]); the identity until a plan has run.
    #[serde(default)]
    pub whole_in_plan: StageModel,
    /// The whole-stage calibration fitted on one model's own runs alone, by model name (models with
    /// at least [`MIN_OWN_STAGES`] stages timed on this processor): how much slower *that* model
    /// runs interleaved than profiled varies (mobilenet_v2 1.3-1.5x on one core, resnet18 1.0-1.2x).
    #[serde(default)]
    pub whole_in_plan_of_model: BTreeMap<String, StageModel>,
    /// The processor whose predictions this one's models may build on ([`crate::Term::Reference`]):
    /// for a processor owning several cores, the one owning its first core alone (a multi-threaded
    /// run costs the single-threaded time split across threads, plus their synchronisation).
    #[serde(default)]
    pub reference: Option<String>,
}

/// An op's predicted time on processor `index` of `processors` in `context`, with the reference
/// processor's prediction supplied where a model uses it. A reference has no reference of its own
/// (see [`reference_of`]), so its models are asked directly: stored rows naming a chain or a cycle of
/// references cannot make this recurse.
pub(crate) fn predict_in(processors: &[ProcessorModels], index: usize, op: &OpFeatures, context: Context) -> f64 {
    processors[index].context(context).predict_with(op, &|f| reference_us(processors, index, f, context))
}

/// The predicted time of the part `spec` of `whole` in `context`, µs, anchored to the whole op
/// ([`crate::ContextModels::predict_part_with`]).
pub(crate) fn predict_part_in(processors: &[ProcessorModels], index: usize, whole: &OpFeatures, spec: PartSpec, context: Context) -> f64 {
    let part = whole.part(spec.axis, spec.start, spec.end);
    processors[index].context(context).predict_part_with(whole, &part, &|f| reference_us(processors, index, f, context))
}

/// What processor `index`'s reference predicts for `op` in `context` ([`ProcessorModels::reference`]):
/// 0 without a reference, infinite when the reference is not among `processors`.
fn reference_us(processors: &[ProcessorModels], index: usize, op: &OpFeatures, context: Context) -> f64 {
    match &processors[index].reference {
        Some(r) => match processors.iter().find(|q| &q.processor == r) {
            Some(q) => q.context(context).predict(op),
            None => f64::INFINITY,
        },
        None => 0.0,
    }
}

/// Fewest split parts of one model timed on a processor before it gets an in-plan calibration of its own.
pub const MIN_OWN_PARTS: usize = 8;

/// Fewest whole stages (baselines included) of one model timed on a processor before it gets a
/// whole-stage calibration of its own: one run times each baseline once.
pub const MIN_OWN_STAGES: usize = 1;

/// The reference of processor `id` among `ids` (see [`ProcessorModels::reference`]): for an id naming
/// several cores (`cpu:0-1`, `cpu:4-7`, `cpu:0,2`), the processor of the same kind named by its first
/// core alone (`cpu:0`), if there is one; `None` otherwise. A reference owns a single core, so it has
/// no reference of its own.
pub fn reference_of(id: &str, ids: &[&str]) -> Option<String> {
    let (kind, cores) = id.split_once(':')?;
    let first = cores.split(['-', ',']).next()?;
    if first == cores || first.is_empty() || !first.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let candidate = format!("{kind}:{first}");
    ids.contains(&candidate.as_str()).then_some(candidate)
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

/// A split part's time alone, µs: its head's part as the profile times it (alone: a part is a model
/// of its own), brought into context by the whole head's in-context / isolated ratio, plus what the
/// tail's parts add in context. One composition for the planner ([`CostModels::predict_chain_part`])
/// and for the calibration's fit, so that what is calibrated is what is planned with.
///
/// Why the ratio: the profile times parts back to back, so an op's weights and input stay in cache
/// from one run to the next, while inside a plan the part runs between other stages, as the whole
/// op runs inside its model. The ratio is about 1.1 for most ops, and far more where the weights
/// are large: mobilenet_v2's classifier (5 MB of weights) took 49 µs alone and 204 µs in its model.
fn chain_part_alone(processors: &[ProcessorModels], index: usize, head: &OpFeatures, spec: PartSpec, tail: &[OpFeatures]) -> f64 {
    let tail: f64 = tail.iter().map(|o| predict_in(processors, index, o, Context::InModel)).sum();
    predict_part_in(processors, index, head, spec, Context::Isolated) * context_ratio(processors, index, head) + tail
}

/// How much slower `op` runs in its model than alone, as processor `index`'s models predict it,
/// within [`CONTEXT_RATIO`].
fn context_ratio(processors: &[ProcessorModels], index: usize, op: &OpFeatures) -> f64 {
    let ratio = predict_in(processors, index, op, Context::InModel) / predict_in(processors, index, op, Context::Isolated);
    if ratio.is_finite() {
        ratio.clamp(CONTEXT_RATIO.0, CONTEXT_RATIO.1)
    } else {
        1.0
    }
}

/// The least and most [`context_ratio`] counts: a model fitted on few ops of a kind may predict its
/// two contexts wildly apart.
const CONTEXT_RATIO: (f64, f64) = (0.5, 8.0);

/// A stage of `ops` on processor `index` as profiled: the stage model over its ops' in-context
/// predictions, µs. What the whole-stage calibration is fitted on and applied to.
pub(crate) fn profiled_stage(processors: &[ProcessorModels], index: usize, ops: &[OpFeatures]) -> f64 {
    let sum: f64 = ops.iter().map(|o| predict_in(processors, index, o, Context::InModel)).sum();
    processors[index].stage.predict(sum, ops.len())
}

/// The whole-stage calibration of `p` applied to a profiled stage prediction.
#[inline]
fn predict_whole_stage(p: &ProcessorModels, profiled_us: f64, ops: usize) -> f64 {
    p.whole_in_plan.predict(profiled_us, ops)
}

/// What the planner predicts for a split part timed in a plan, before in-plan calibration, µs.
pub(crate) fn predict_standalone(processors: &[ProcessorModels], index: usize, part: &PlanPartSample) -> f64 {
    chain_part_alone(processors, index, &part.head.0, part.head.1, &part.tail)
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
    /// Per processor, the reference kernel's typical time the models predict at, µs (see
    /// [`crate::TrainingSet::typical_reference_us`]); empty for models fitted on timings as measured.
    #[serde(default)]
    pub speed: BTreeMap<String, f64>,
}

impl CostModels {
    /// The models of a processor.
    #[inline]
    pub fn processor(&self, id: &str) -> Option<&ProcessorModels> {
        self.processors.iter().find(|p| p.processor == id)
    }

    /// These models as a planner of `model` uses them: on every processor where the model's own plan
    /// runs gave it an in-plan calibration ([`ProcessorModels::in_plan_of_model`]), that one stands
    /// in for the pooled one.
    pub fn for_model(&self, model: &str) -> CostModels {
        let mut out = self.clone();
        for p in &mut out.processors {
            if let Some(own) = p.in_plan_of_model.get(model) {
                p.in_plan = own.clone();
            }
            if let Some(own) = p.whole_in_plan_of_model.get(model) {
                p.whole_in_plan = own.clone();
            }
        }
        out
    }

    /// `f` of the index of `processor`'s models, or infinite for a processor the models do not know.
    #[inline]
    fn at(&self, processor: &str, f: impl FnOnce(usize) -> f64) -> f64 {
        match self.processors.iter().position(|p| p.processor == processor) {
            Some(i) => f(i),
            None => f64::INFINITY,
        }
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
        self.at(processor, |i| predict_in(&self.processors, i, op, context))
    }

    /// The predicted time of one part of `op` split along output `axis`, the part covering
    /// `[part.start, part.end)` of it, run on its own on `processor` (as split parts run), µs.
    #[inline]
    pub fn predict_split_part(&self, processor: &str, op: &OpFeatures, part: PartSpec) -> f64 {
        self.at(processor, |i| predict_part_in(&self.processors, i, op, part, Context::Isolated))
    }

    /// The predicted time to hand `bytes` from `src` to `dst`, µs (0 on the same processor).
    #[inline]
    pub fn predict_transfer(&self, src: &str, dst: &str, bytes: f64) -> f64 {
        self.transfers.predict(src, dst, bytes)
    }

    /// The predicted time to join a split's parts into one `bytes`-byte tensor on `processor`, µs
    /// (0 where the profile did not measure it).
    #[inline]
    pub fn predict_join(&self, processor: &str, bytes: f64) -> f64 {
        self.transfers.predict_join(processor, bytes)
    }

    /// The predicted time of a stage running `ops` on `processor` inside a plan run, µs: the stage
    /// model applied to the sum of the ops' predicted in-context times, then the whole-stage
    /// calibration ([`ProcessorModels::whole_in_plan`]).
    pub fn predict_stage(&self, processor: &str, ops: &[OpFeatures]) -> f64 {
        self.at(processor, |i| predict_whole_stage(&self.processors[i], profiled_stage(&self.processors, i, ops), ops.len()))
    }

    /// A split part's predicted time alone, µs: the part `spec` of `head` as the profile times it
    /// alone, brought into context by the whole head's in-context / isolated ratio, plus `tail` (the
    /// rest of the chain, already cut to the part) in context; before in-plan calibration
    /// ([`CostModels::plan_part_us`]).
    pub fn predict_chain_part(&self, processor: &str, head: &OpFeatures, spec: PartSpec, tail: &[OpFeatures]) -> f64 {
        self.at(processor, |i| chain_part_alone(&self.processors, i, head, spec, tail))
    }

    /// A split part's predicted time inside a running plan, µs: the in-plan calibration
    /// ([`ProcessorModels::in_plan`]) applied to what the models predict for it alone.
    pub fn predict_plan_part(&self, part: &PlanPartSample) -> f64 {
        self.at(&part.processor, |i| self.processors[i].in_plan.predict(predict_standalone(&self.processors, i, part), part.op_count()))
    }

    /// A stage's predicted time inside a plan run, for a planner that keeps running sums: a stage of
    /// `ops` ops whose predicted in-context times sum to `ops_sum_us`, through the stage model and the
    /// whole-stage calibration (both affine, so their composition is too).
    #[inline]
    pub fn stage_us(&self, processor: &str, ops_sum_us: f64, ops: usize) -> f64 {
        match self.processor(processor) {
            Some(p) => predict_whole_stage(p, p.stage.predict(ops_sum_us, ops), ops),
            None => f64::INFINITY,
        }
    }

    /// [`CostModels::stage_us`] without the whole-stage calibration: the stage as the profile times
    /// it, back to back.
    #[inline]
    pub fn profiled_stage_us(&self, processor: &str, ops_sum_us: f64, ops: usize) -> f64 {
        match self.processor(processor) {
            Some(p) => p.stage.predict(ops_sum_us, ops),
            None => f64::INFINITY,
        }
    }

    /// A split part's predicted time inside a running plan from its predicted time alone
    /// (`part_us`, its head's isolated part plus its tail in context), `ops` ops in its chain.
    #[inline]
    pub fn plan_part_us(&self, processor: &str, part_us: f64, ops: usize) -> f64 {
        match self.processor(processor) {
            Some(p) => p.in_plan.predict(part_us, ops),
            None => f64::INFINITY,
        }
    }

    /// Whether every stored number is finite (nothing NaN or infinite may reach the database).
    pub fn is_valid(&self) -> bool {
        self.processors
            .iter()
            .all(|p| {
                [&p.stage, &p.in_plan, &p.whole_in_plan].iter().all(|m| m.is_valid())
                    && p.in_model.is_valid()
                    && p.isolated.is_valid()
                    && p.in_plan_of_model.values().chain(p.whole_in_plan_of_model.values()).all(StageModel::is_valid)
            })
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_multi_core_processor_refers_to_its_first_core() {
        let ids = ["cpu:0", "cpu:1", "cpu:0-1", "cpu:4-7", "cpu:2,3", "cpu:2", "cuda:0"];
        assert_eq!(reference_of("cpu:0-1", &ids).as_deref(), Some("cpu:0"));
        assert_eq!(reference_of("cpu:2,3", &ids).as_deref(), Some("cpu:2"));
        assert_eq!(reference_of("cpu:4-7", &ids), None, "cpu:4 was not profiled");
        assert_eq!(reference_of("cpu:0", &ids), None, "a single core has no reference");
        assert_eq!(reference_of("cuda:0", &ids), None);
        assert_eq!(reference_of("gpu", &ids), None);
    }
}
