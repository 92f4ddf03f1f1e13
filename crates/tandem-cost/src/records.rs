//! The models as rows of the `cost_models` table, and back.
//!
//! One record per (processor, op kind): its `params` hold the kind's in-context and isolated models
//! (`{"in_model": {...}, "isolated": {...}}`), self-contained so that a planner can rebuild
//! [`CostModels`] from the rows alone. Besides the kinds there are `family:<name>` rows (the family
//! models that rare and unseen kinds fall back to), an `all` row per processor (the last resort; it
//! also names the processor's reference, `"reference": "cpu:0"`, when its models build on another
//! processor's predictions), a `stage` row per processor, `in_plan` and `whole_in_plan` rows (the
//! calibrations learnt from plan runs, and `in_plan:<model>` and `whole_in_plan:<model>` rows for
//! models' own), `transfer` rows whose processor is `src->dst` (or `*` for the model pooled over
//! all pairs), and a `speed` row per processor whose timings were brought to one speed
//! (`{"typical_reference_us": 196.1}`, see [`CostModels::speed`]).

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::eval::FitReport;
use crate::fit::Calibration;
use crate::models::{CostModels, ProcessorModels};
use crate::opmodel::{ContextModels, FamilyModel, OpModel};
use crate::stage::StageModel;
use crate::term::{Family, ALL_KINDS};
use crate::transfer::{PairModel, TransferModel, TransferModels};
use crate::CostError;

/// `op_kind` of stage rows.
pub const STAGE: &str = "stage";
/// `op_kind` of the rows holding the speed a processor's models predict at.
pub const SPEED: &str = "speed";
/// `op_kind` of in-plan calibration rows.
pub const IN_PLAN: &str = "in_plan";
/// `op_kind` prefix of the rows of a model's own in-plan calibration: `in_plan:<model>`.
pub const IN_PLAN_OF_MODEL: &str = "in_plan:";
/// `op_kind` of whole-stage calibration rows.
pub const WHOLE_IN_PLAN: &str = "whole_in_plan";
/// `op_kind` prefix of the rows of a model's own whole-stage calibration: `whole_in_plan:<model>`.
pub const WHOLE_IN_PLAN_OF_MODEL: &str = "whole_in_plan:";
/// The `op_kind` of a calibration's pooled rows, and the prefix of its per-model rows.
fn row_kinds(which: Calibration) -> (&'static str, &'static str) {
    match which {
        Calibration::Parts => (IN_PLAN, IN_PLAN_OF_MODEL),
        Calibration::Stages => (WHOLE_IN_PLAN, WHOLE_IN_PLAN_OF_MODEL),
    }
}

/// `op_kind` of transfer rows.
pub const TRANSFER: &str = "transfer";
/// `processor` of the pooled transfer row.
pub const ANY_PAIR: &str = "*";

/// One row of `cost_models`, without the database's own columns (id, device, version, time).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    /// The processor, or `src->dst` for a transfer model.
    pub processor: String,
    /// The op kind, `family:<name>`, `all`, `stage` or `transfer`.
    pub op_kind: String,
    /// The model's form and coefficients.
    pub params: Value,
    /// Samples it was fitted on.
    pub samples: i64,
    /// Held-out mean absolute percentage error, percent.
    pub mape: Option<f64>,
    /// Held-out share within ±10 %.
    pub within_10pct: Option<f64>,
    /// The coarser model a rare kind falls back to.
    pub fallback_of: Option<String>,
}

fn to_value<T: Serialize>(v: &T) -> Value {
    serde_json::to_value(v).unwrap_or(Value::Null)
}

/// Whether a JSON value holds only finite numbers (serde_json writes NaN and infinities as null,
/// silently: this is checked on the models before they are written).
fn all_finite(v: &Value) -> bool {
    match v {
        Value::Number(n) => n.as_f64().map(f64::is_finite).unwrap_or(true),
        Value::Array(a) => a.iter().all(all_finite),
        Value::Object(o) => o.values().all(all_finite),
        _ => true,
    }
}

impl FitReport {
    /// The rows to store: every model with its sample count and held-out accuracy.
    pub fn records(&self) -> Result<Vec<ModelRecord>, CostError> {
        let mut out = vec![];
        for p in &self.models.processors {
            let mut kinds: Vec<&String> = p.in_model.kinds.keys().chain(p.isolated.kinds.keys()).collect();
            kinds.sort();
            kinds.dedup();
            for kind in kinds {
                let (im, iso) = (p.in_model.kinds.get(kind.as_str()), p.isolated.kinds.get(kind.as_str()));
                let acc = self.kinds.iter().find(|k| k.processor == p.processor && &k.op_kind == kind);
                out.push(ModelRecord {
                    processor: p.processor.clone(),
                    op_kind: kind.clone(),
                    params: json!({ "in_model": im.map(to_value), "isolated": iso.map(to_value) }),
                    samples: im.or(iso).map(|m| m.samples as i64).unwrap_or(0),
                    mape: acc.map(|a| a.mape),
                    within_10pct: acc.map(|a| a.within_10pct),
                    fallback_of: im.and_then(|m| m.fallback_of.clone()).or_else(|| iso.and_then(|m| m.fallback_of.clone())),
                });
            }
            for family in Family::ALL {
                let (im, iso) = (p.in_model.families.get(&family), p.isolated.families.get(&family));
                if im.is_none() && iso.is_none() {
                    continue;
                }
                out.push(self.coarse_record(p, family.label(), im, iso, |k| Family::of(k) == family));
            }
            let mut all = self.coarse_record(p, ALL_KINDS, Some(&p.in_model.all), Some(&p.isolated.all), |_| true);
            if let (Some(r), Value::Object(o)) = (&p.reference, &mut all.params) {
                o.insert("reference".into(), Value::String(r.clone()));
            }
            out.push(all);
            let lomo: Vec<f64> = self.leave_one_model_out.iter().filter(|l| l.processor == p.processor).map(|l| l.error.abs()).collect();
            out.push(ModelRecord {
                processor: p.processor.clone(),
                op_kind: STAGE.into(),
                params: to_value(&p.stage),
                samples: p.stage.samples as i64,
                mape: (!lomo.is_empty()).then(|| 100.0 * lomo.iter().sum::<f64>() / lomo.len() as f64),
                within_10pct: (!lomo.is_empty()).then(|| lomo.iter().filter(|e| **e <= 0.1).count() as f64 / lomo.len() as f64),
                fallback_of: None,
            });
            for which in Calibration::ALL {
                let (kind, own_prefix) = row_kinds(which);
                let (pooled, of_model, accuracy) = match which {
                    Calibration::Parts => (&p.in_plan, &p.in_plan_of_model, &self.in_plan),
                    Calibration::Stages => (&p.whole_in_plan, &p.whole_in_plan_of_model, &self.whole_in_plan),
                };
                let held_out = accuracy.iter().find(|a| a.processor == p.processor);
                out.push(ModelRecord {
                    processor: p.processor.clone(),
                    op_kind: kind.into(),
                    params: to_value(pooled),
                    samples: pooled.samples as i64,
                    mape: held_out.and_then(|a| a.calibrated).map(|a| a.mape),
                    within_10pct: held_out.and_then(|a| a.calibrated).map(|a| a.within_10pct),
                    fallback_of: (pooled.samples == 0).then(|| "unmeasured".to_string()),
                });
                for (model, own) in of_model {
                    let held_out = held_out.and_then(|a| a.own_models.iter().find(|o| &o.model == model));
                    out.push(ModelRecord {
                        processor: p.processor.clone(),
                        op_kind: format!("{own_prefix}{model}"),
                        params: to_value(own),
                        samples: own.samples as i64,
                        mape: held_out.map(|o| o.accuracy.mape),
                        within_10pct: held_out.map(|o| o.accuracy.within_10pct),
                        fallback_of: None,
                    });
                }
            }
        }
        let t = &self.models.transfers;
        for pair in &t.pairs {
            out.push(ModelRecord {
                processor: format!("{}->{}", pair.src, pair.dst),
                op_kind: TRANSFER.into(),
                params: to_value(&pair.model),
                samples: pair.samples as i64,
                mape: pair.accuracy.map(|a| a.mape),
                within_10pct: pair.accuracy.map(|a| a.within_10pct),
                fallback_of: None,
            });
        }
        out.push(ModelRecord {
            processor: ANY_PAIR.into(),
            op_kind: TRANSFER.into(),
            params: json!({ "fixed_us": t.pooled.fixed_us, "per_byte_us": t.pooled.per_byte_us, "pooled": true, "measured": t.pooled_samples > 0 }),
            samples: t.pooled_samples as i64,
            mape: t.pooled_accuracy.map(|a| a.mape),
            within_10pct: t.pooled_accuracy.map(|a| a.within_10pct),
            fallback_of: (t.pooled_samples == 0).then(|| "unmeasured".to_string()),
        });
        for (processor, us) in &self.models.speed {
            out.push(ModelRecord { processor: processor.clone(), op_kind: SPEED.into(), params: json!({ "typical_reference_us": us }), samples: 0, mape: None, within_10pct: None, fallback_of: None });
        }
        for r in &out {
            let finite = all_finite(&r.params)
                && r.mape.map(f64::is_finite).unwrap_or(true)
                && r.within_10pct.map(f64::is_finite).unwrap_or(true)
                && !r.params.is_null();
            if !finite {
                return Err(CostError::NotFinite(format!("the {} model of {}", r.op_kind, r.processor)));
            }
        }
        Ok(out)
    }

    /// A family or catch-all row; its accuracy is that of the kinds it covers.
    fn coarse_record(&self, p: &ProcessorModels, label: &str, im: Option<&FamilyModel>, iso: Option<&FamilyModel>, covers: impl Fn(&str) -> bool) -> ModelRecord {
        let covered: Vec<_> = self.kinds.iter().filter(|k| k.processor == p.processor && covers(&k.op_kind)).collect();
        let n: usize = covered.iter().map(|k| k.held_out).sum();
        let weighted = |f: &dyn Fn(&crate::eval::KindAccuracy) -> f64| covered.iter().map(|k| f(k) * k.held_out as f64).sum::<f64>() / n as f64;
        ModelRecord {
            processor: p.processor.clone(),
            op_kind: label.into(),
            params: json!({ "in_model": im.map(to_value), "isolated": iso.map(to_value) }),
            samples: im.or(iso).map(|m| m.samples as i64).unwrap_or(0),
            mape: (n > 0).then(|| weighted(&|k| k.mape)),
            within_10pct: (n > 0).then(|| weighted(&|k| k.within_10pct)),
            fallback_of: None,
        }
    }
}

impl CostModels {
    /// The speed the models predict at ([`CostModels::speed`]), from a fit's `speed` rows; the other
    /// rows are ignored, so the rows of that kind alone will do.
    pub fn speed_of(records: &[ModelRecord]) -> BTreeMap<String, f64> {
        records
            .iter()
            .filter(|r| r.op_kind == SPEED)
            .filter_map(|r| Some((r.processor.clone(), r.params.get("typical_reference_us")?.as_f64()?)))
            .collect()
    }

    /// Rebuilds the models of one fit from its stored rows (see the module docs for their layout).
    pub fn from_records(device: &str, version: i64, records: &[ModelRecord]) -> Result<CostModels, CostError> {
        let bad = |r: &ModelRecord, e: serde_json::Error| CostError::Params { processor: r.processor.clone(), op_kind: r.op_kind.clone(), message: e.to_string() };
        let mut processors: BTreeMap<String, ProcessorModels> = BTreeMap::new();
        let mut transfers = TransferModels { pairs: vec![], pooled: TransferModel::UNMEASURED, pooled_samples: 0, pooled_accuracy: None };
        let speed = CostModels::speed_of(records);
        for r in records {
            if r.op_kind == SPEED {
                continue;
            }
            if r.op_kind == TRANSFER {
                let model: TransferModel = serde_json::from_value(r.params.clone()).map_err(|e| bad(r, e))?;
                if r.processor == ANY_PAIR {
                    transfers.pooled = model;
                    transfers.pooled_samples = r.samples.max(0) as usize;
                } else if let Some((src, dst)) = r.processor.split_once("->") {
                    transfers.pairs.push(PairModel { src: src.into(), dst: dst.into(), model, samples: r.samples.max(0) as usize, accuracy: None });
                }
                continue;
            }
            let p = processors.entry(r.processor.clone()).or_insert_with(|| ProcessorModels {
                processor: r.processor.clone(),
                in_model: ContextModels::default(),
                isolated: ContextModels::default(),
                stage: StageModel::default(),
                in_plan: StageModel::default(),
                in_plan_of_model: BTreeMap::new(),
                whole_in_plan: StageModel::default(),
                whole_in_plan_of_model: BTreeMap::new(),
                reference: None,
            });
            if r.op_kind == STAGE {
                p.stage = serde_json::from_value(r.params.clone()).map_err(|e| bad(r, e))?;
                continue;
            }
            let mut calibration = false;
            for which in Calibration::ALL {
                let (kind, own_prefix) = row_kinds(which);
                let (pooled, own) = which.slots(p);
                if r.op_kind == kind {
                    *pooled = serde_json::from_value(r.params.clone()).map_err(|e| bad(r, e))?;
                } else if let Some(model) = r.op_kind.strip_prefix(own_prefix) {
                    own.insert(model.to_string(), serde_json::from_value(r.params.clone()).map_err(|e| bad(r, e))?);
                } else {
                    continue;
                }
                calibration = true;
            }
            if calibration {
                continue;
            }
            let field = |name: &str| r.params.get(name).cloned().filter(|v| !v.is_null());
            if r.op_kind == ALL_KINDS {
                p.reference = r.params.get("reference").and_then(Value::as_str).map(String::from);
            }
            let family = Family::ALL.into_iter().find(|f| f.label() == r.op_kind);
            for (name, ctx) in [("in_model", &mut p.in_model), ("isolated", &mut p.isolated)] {
                let Some(v) = field(name) else { continue };
                if r.op_kind == ALL_KINDS {
                    ctx.all = serde_json::from_value(v).map_err(|e| bad(r, e))?;
                } else if let Some(f) = family {
                    ctx.families.insert(f, serde_json::from_value(v).map_err(|e| bad(r, e))?);
                } else {
                    let m: OpModel = serde_json::from_value(v).map_err(|e| bad(r, e))?;
                    ctx.kinds.insert(r.op_kind.clone(), m);
                }
            }
        }
        let mut models = CostModels { device: device.to_string(), version, processors: processors.into_values().collect(), transfers, speed };
        models.reindex();
        Ok(models)
    }
}
