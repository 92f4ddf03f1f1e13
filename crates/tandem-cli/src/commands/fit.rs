//! `tandem fit`: fit cost models on the device's profiles, store them as a new version, and print how
//! well they predict data they were not fitted on.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use anyhow::{bail, Context as _, Result};
use serde::Serialize;
use tandem_cost::{
    Accuracy, FitOptions, KindAccuracy, LeaveOneModelOut, LeftOutModel, ModelSample, OpFeatures, OpSample, PartSpec,
    PlanPartSample, PlanStageSample, PlanPartAccuracy, SliceAccuracy, StageForm, TrainingSet, TransferSample,
};
use tandem_store::{CostModelRow, MeasurementRow, ModelRow, Store, Target};

use crate::cli::FitArgs;
use crate::table::Table;

/// The JSON printed by `tandem fit --json`:
///
/// ```text
/// { "version", "device_id",
///   "models": [{processor, op_kind, samples, held_out, mape, within_10pct, base_from, fallback_of, uses_reference}],
///   "overall": {n, mape, within_10pct},
///   "slices": [{slice, n, mape, within_10pct}],   // in_model, isolated, split_part, in_model above 50 µs (all, per processor)
///   "leave_one_model_out": [{model, processor, predicted_ms, measured_ms, error}],
///   "leave_one_model_out_summary": {pairs, within_10pct, mape, ops {..}, ops_above_50us {..}},
///   "stages": [{processor, form, fixed_us, factor, per_op_us, samples, reference}],
///   "in_plan": [{processor, form, fixed_us, factor, per_op_us, parts, models, standalone {..}, calibrated {..} | null, median_ratio,
///                standalone_time_error_pct, calibrated_time_error_pct, own_time_error_pct, own {..} | null, own_models [..]}],
///   "whole_in_plan": [ .. the same for whole-op stages and `single:` baselines timed in plan runs .. ],
///   "transfers": [{src, dst, fixed_us, per_byte_us, samples, mape}],   // src == dst: joining a split's parts there
///   "repeatability": {n, mape, within_10pct},   // ops above 50 µs predicted by identical twins
///   "training": {models, probe_models, op_samples, model_samples, transfer_samples, skipped, paired_samples, paired_plan_runs, typical_reference_us {processor: µs}},
///   "rows_stored", "fit_s", "evaluate_s", "elapsed_s" }
/// ```
///
/// `mape` is a percentage, `within_10pct` a share (0..1) of held-out predictions within ±10 %. `models`
/// and `overall` come from 5-fold cross-validation over ops (an op's rows stay in one fold), in context;
/// `leave_one_model_out` predicts each model's whole latency with models fitted on every other model.
/// `error` is signed: (predicted - measured) / measured.
#[derive(Serialize)]
pub struct FitJson {
    /// The version the models were stored as.
    pub version: i64,
    /// The device they were fitted for.
    pub device_id: String,
    /// Per (processor, op kind).
    pub models: Vec<KindAccuracy>,
    /// Every in-context op prediction.
    pub overall: Accuracy,
    /// The ceiling the measurements leave: ops above 50 µs predicted by their identical twins.
    pub repeatability: Accuracy,
    /// Per context, split parts, ops above 50 µs.
    pub slices: Vec<SliceAccuracy>,
    /// Whole models predicted by models fitted without them.
    pub leave_one_model_out: Vec<LeftOutModel>,
    /// Its summary.
    pub leave_one_model_out_summary: LeaveOneModelOut,
    /// The stage models.
    pub stages: Vec<StageJson>,
    /// The in-plan calibrations, with how well stages timed inside plan runs are predicted.
    pub in_plan: Vec<InPlanJson>,
    /// The whole-stage calibrations (whole-op stages and baselines inside plan runs from the stage
    /// model's prediction), with their accuracy; `parts` counts stages there.
    pub whole_in_plan: Vec<InPlanJson>,
    /// The transfer models.
    pub transfers: Vec<TransferJson>,
    /// What the fit learned from.
    pub training: TrainingJson,
    /// Rows written to `cost_models`.
    pub rows_stored: usize,
    /// Seconds fitting the stored models.
    pub fit_s: f64,
    /// Seconds evaluating on held-out data.
    pub evaluate_s: f64,
    /// Seconds for the whole command.
    pub elapsed_s: f64,
}

/// One processor's stage model.
#[derive(Serialize)]
pub struct StageJson {
    /// The processor.
    pub processor: String,
    /// The form the data chose.
    pub form: StageForm,
    /// Fixed cost per stage.
    pub fixed_us: f64,
    /// Factor on the ops' summed in-context times.
    pub factor: f64,
    /// Cost per op.
    pub per_op_us: f64,
    /// Whole-model timings it was fitted on.
    pub samples: usize,
    /// The processor whose predictions this one's op models may build on (the first core of a
    /// multi-core processor), if any; the kinds that do say so in `models[].uses_reference`.
    pub reference: Option<String>,
}

/// The JSON rows of one calibration: each processor's accuracy beside its pooled model.
fn calibration_json<'a>(accuracy: &'a [PlanPartAccuracy], model: &dyn Fn(&PlanPartAccuracy) -> Option<&'a tandem_cost::StageModel>) -> Vec<InPlanJson> {
    accuracy
        .iter()
        .filter_map(|a| {
            let m = model(a)?;
            Some(InPlanJson { form: m.form, fixed_us: m.fixed_us, factor: m.factor, per_op_us: m.per_op_us, accuracy: a.clone() })
        })
        .collect()
}

/// The text table of one calibration, with the models that have one of their own.
fn calibration_table(rows: &[InPlanJson], what: &str) -> String {
    let mut table = Table::new(&["processor", "model", what, "models", "measured / predicted", "mape % before", "after", "own", "time off % before", "after", "own"]);
    for c in rows {
        let a = &c.accuracy;
        table.row(vec![
            a.processor.clone(),
            format!("{:.1} + {:.3} × predicted + {:.2} × ops", c.fixed_us, c.factor, c.per_op_us),
            a.parts.to_string(),
            a.models.to_string(),
            format!("{:.2}", a.median_ratio),
            format!("{:.1}", a.standalone.mape),
            a.calibrated.map(|x| format!("{:.1}", x.mape)).unwrap_or_else(|| "-".into()),
            a.own.map(|x| format!("{:.1}", x.mape)).unwrap_or_else(|| "-".into()),
            format!("{:.1}", a.standalone_time_error_pct),
            a.calibrated_time_error_pct.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
            a.own_time_error_pct.map(|x| format!("{x:.1}")).unwrap_or_else(|| "-".into()),
        ]);
    }
    let mut s = table.render();
    let own: Vec<String> = rows.iter().flat_map(|c| c.accuracy.own_models.iter().map(move |o| format!("{} on {} {:.2}x", o.model, c.accuracy.processor, o.median_ratio))).collect();
    if !own.is_empty() {
        s.push_str(&format!("  models with a calibration of their own (median measured / predicted): {}\n", own.join(", ")));
    }
    s
}

/// One processor's in-plan calibration: a split part's time inside a running plan from its prediction
/// alone, `fixed + factor × predicted + per_op × ops`, fitted on the parts of stored plan runs.
#[derive(Serialize)]
pub struct InPlanJson {
    /// The form the data chose (`sum`, the identity, before any plan has run).
    pub form: StageForm,
    /// Fixed cost per stage.
    pub fixed_us: f64,
    /// Factor on the stage's prediction alone.
    pub factor: f64,
    /// Cost per op.
    pub per_op_us: f64,
    /// The processor, and how its split parts are predicted before and after calibration.
    #[serde(flatten)]
    pub accuracy: PlanPartAccuracy,
}

/// One transfer model.
#[derive(Serialize)]
pub struct TransferJson {
    /// From.
    pub src: String,
    /// To.
    pub dst: String,
    /// Fixed cost.
    pub fixed_us: f64,
    /// Cost per byte.
    pub per_byte_us: f64,
    /// Sizes measured.
    pub samples: usize,
    /// Leave-one-size-out error, percent.
    pub mape: Option<f64>,
}

/// The training data's size.
#[derive(Serialize)]
pub struct TrainingJson {
    /// Models with measurements.
    pub models: usize,
    /// How many of them are probe networks (`tandem profile probes`): trained on, never held out.
    pub probe_models: usize,
    /// Op and split-part timings.
    pub op_samples: usize,
    /// Whole-model timings.
    pub model_samples: usize,
    /// Transfer timings.
    pub transfer_samples: usize,
    /// Split parts timed inside plan runs.
    pub plan_part_samples: usize,
    /// Whole-op stages and baselines timed in plan runs (the whole-stage calibration's data).
    pub plan_stage_samples: usize,
    /// Measurements left out because their time was not a positive finite number.
    pub skipped: usize,
    /// Timings brought to their processor's typical speed by the reference kernel timed with them
    /// (0 with `--unpaired`, or for profiles taken before tandem timed one).
    pub paired_samples: usize,
    /// Plan runs whose stage and baseline timings were brought to that speed by the kernel timed in
    /// them (`tandem run`'s `host_speed`).
    pub paired_plan_runs: usize,
    /// Per processor, the typical speed they were brought to: the median of the reference kernel's
    /// time over the processor's whole-model measurements, µs.
    pub typical_reference_us: BTreeMap<String, f64>,
}

/// How [`training_set`] brought paired timings to one speed.
#[derive(Debug, Default)]
struct Pairing {
    rows: usize,
    /// Plan runs whose stage timings were brought to the profiles' speed by the kernel timed in them.
    plan_runs: usize,
    typical_us: BTreeMap<String, f64>,
}

impl Pairing {
    /// Per processor, the median reference over its whole-model rows: one reading per model measured,
    /// whatever its op count.
    fn typical(all: &[(usize, Vec<MeasurementRow>)]) -> BTreeMap<String, f64> {
        let mut by_processor: BTreeMap<String, Vec<f64>> = BTreeMap::new();
        for r in all.iter().flat_map(|(_, rows)| rows).filter(|r| r.target == Target::Model) {
            if let Some(reference) = r.reference_us.filter(|v| v.is_finite() && *v > 0.0) {
                by_processor.entry(r.processor_id.clone()).or_default().push(reference);
            }
        }
        by_processor.into_iter().map(|(p, v)| (p, tandem_profile::percentile(&v, 0.5))).collect()
    }

    /// `r`'s time at its processor's typical speed: its median scaled by typical / paired reference,
    /// when it has a reference and the processor a typical one.
    fn bring(&mut self, r: &mut MeasurementRow) {
        let (Some(reference), Some(&typical)) = (r.reference_us.filter(|v| v.is_finite() && *v > 0.0), self.typical_us.get(&r.processor_id)) else {
            return;
        };
        r.median_us *= typical / reference;
        self.rows += 1;
    }

    /// For a plan run that timed the reference kernel: per processor the kernel ran on, the factor
    /// that brings its timings to this fit's typical speed (typical / the run's kernel), and for the
    /// others (a baseline on a processor the plan does not use) the geometric mean of those factors.
    /// `None` when no kernel of the run has a typical time here.
    fn run_factors(&self, h: &tandem_exec::HostSpeed) -> Option<(BTreeMap<String, f64>, f64)> {
        let per: BTreeMap<String, f64> = h
            .kernels
            .iter()
            .filter_map(|k| Some((k.processor.clone(), self.typical_us.get(&k.processor)? / k.measured_us)))
            .filter(|(_, f)| f.is_finite() && *f > 0.0)
            .collect();
        if per.is_empty() {
            return None;
        }
        let overall = tandem_profile::geometric_mean(per.values().copied());
        Some((per, overall))
    }
}

/// Runs `tandem fit`.
pub fn run(args: &FitArgs, db: &Path, json: bool) -> Result<()> {
    let store = Store::open(db)?;
    let device = match &args.device {
        Some(d) => d.clone(),
        None => tandem_device::Device::discover()?.id,
    };
    let out = fit_with(&store, &device, db, if args.unpaired { Speed::AsMeasured } else { Speed::Paired })?;
    if json {
        return super::print_json(&out);
    }
    print_tables(&out)
}

/// Which speed the timings are fitted at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Speed {
    /// Timings taken with the paired reference kernel are brought to their processor's typical speed
    /// (see [`training_set`]); the others are used as measured.
    Paired,
    /// Every timing as measured.
    AsMeasured,
}

/// Fits cost models on every measurement of `device` in the store, evaluates them on held-out data and
/// stores them as a new version (`db` names the database in messages).
pub fn fit(store: &Store, device: &str, db: &Path) -> Result<FitJson> {
    fit_with(store, device, db, Speed::Paired)
}

/// [`fit`], at the given [`Speed`].
pub fn fit_with(store: &Store, device: &str, db: &Path, speed: Speed) -> Result<FitJson> {
    let started = Instant::now();
    let device = device.to_string();
    let (set, models, skipped, pairing) = training_set(store, &device, speed)?;
    if set.ops.is_empty() {
        let others: Vec<String> = store.devices()?.into_iter().map(|d| d.id).filter(|d| *d != device).collect();
        let hint = if others.is_empty() {
            String::new()
        } else {
            format!(" (it holds profiles of other devices: pass --device with one of {})", others.join(", "))
        };
        bail!("no measurements of device {device} in {}: run `tandem profile MODEL` first{hint}", db.display());
    }
    let report = tandem_cost::fit_and_evaluate(&device, &set, &FitOptions::default())?;
    let records = report.records()?;
    let version = store.next_cost_model_version(&device)?;
    let rows: Vec<CostModelRow> = records
        .into_iter()
        .map(|r| CostModelRow {
            device_id: device.clone(),
            processor_id: r.processor,
            op_kind: r.op_kind,
            version,
            params: r.params.to_string(),
            samples: r.samples,
            mape: r.mape,
            within_10pct: r.within_10pct,
            fallback_of: r.fallback_of,
            ..Default::default()
        })
        .collect();
    store.insert_cost_models(&rows).context("storing the cost models")?;
    let out = FitJson {
        version,
        device_id: device,
        models: report.kinds.clone(),
        overall: report.overall,
        repeatability: report.repeatability,
        slices: report.slices.clone(),
        leave_one_model_out: report.leave_one_model_out.clone(),
        leave_one_model_out_summary: report.leave_one_model_out_summary.clone(),
        stages: report
            .models
            .processors
            .iter()
            .map(|p| StageJson {
                processor: p.processor.clone(),
                form: p.stage.form,
                fixed_us: p.stage.fixed_us,
                factor: p.stage.factor,
                per_op_us: p.stage.per_op_us,
                samples: p.stage.samples,
                reference: p.reference.clone(),
            })
            .collect(),
        in_plan: calibration_json(&report.in_plan, &|a| report.models.processor(&a.processor).map(|p| &p.in_plan)),
        whole_in_plan: calibration_json(&report.whole_in_plan, &|a| report.models.processor(&a.processor).map(|p| &p.whole_in_plan)),
        transfers: report
            .models
            .transfers
            .pairs
            .iter()
            .map(|p| TransferJson {
                src: p.src.clone(),
                dst: p.dst.clone(),
                fixed_us: p.model.fixed_us,
                per_byte_us: p.model.per_byte_us,
                samples: p.samples,
                mape: p.accuracy.map(|a| a.mape),
            })
            .collect(),
        training: TrainingJson {
            models,
            probe_models: set.training_only.len(),
            op_samples: set.ops.len(),
            model_samples: set.models.len(),
            transfer_samples: set.transfers.len(),
            plan_part_samples: set.plan_parts.len(),
            plan_stage_samples: set.plan_stages.len(),
            skipped,
            paired_samples: pairing.rows,
            paired_plan_runs: pairing.plan_runs,
            typical_reference_us: pairing.typical_us,
        },
        rows_stored: rows.len(),
        fit_s: report.fit_s,
        evaluate_s: report.evaluate_s,
        elapsed_s: started.elapsed().as_secs_f64(),
    };
    Ok(out)
}

/// Fills in the channel and row axes of a convolution or pooling profiled before tandem recorded them:
/// a 3-d output is CHW (tract dropped the batch), anything else NCHW.
fn recorded_axes(params: &mut BTreeMap<String, i64>, output_shape: &str) {
    if params.contains_key("row_axis") || !params.contains_key("out_h") {
        return;
    }
    let rank = serde_json::from_str::<Vec<i64>>(output_shape).map(|s| s.len()).unwrap_or(4);
    let (channels, rows) = if rank == 3 { (0, 1) } else { (1, 2) };
    params.insert("channel_axis".into(), channels);
    params.insert("row_axis".into(), rows);
}

/// Reads the device's measurements into the cost crate's training structs. Returns the set, the number
/// of models with measurements, the number of measurements skipped as unusable, and how timings were
/// brought to one speed.
///
/// Why bring them to one speed: the host's speed moves within seconds, so models profiled minutes apart
/// were timed at speeds 10-20% apart, and a model fitted on some of them cannot predict another better
/// than that. A whole model and its ops in context carry the reference kernel's time from the same
/// rounds (`reference_us`, see tandem-profile's reference module); scaling them by typical / paired
/// reference gives their time at the processor's typical speed, so every model is fitted and held out
/// at one speed. Isolated ops and split parts are timed without the kernel and stay as measured.
fn training_set(store: &Store, device: &str, speed: Speed) -> Result<(TrainingSet, usize, usize, Pairing)> {
    let mut set = TrainingSet::default();
    let mut skipped = 0;
    let all = store.models()?;
    let mut measured = vec![];
    for (i, m) in all.iter().enumerate() {
        let measurements = store.measurements(device, m.id)?;
        if !measurements.is_empty() {
            measured.push((i, measurements));
        }
    }
    let mut pairing = Pairing { typical_us: if speed == Speed::Paired { Pairing::typical(&measured) } else { BTreeMap::new() }, ..Default::default() };
    let with_data = measured.len();
    for (i, measurements) in measured {
        let m = &all[i];
        let name = training_name(&all, m);
        if tandem_graph::zoo::probe::is_probe(&m.name) {
            set.training_only.push(name.clone());
        }
        let ops: BTreeMap<i64, OpFeatures> = store
            .ops(m.id)?
            .into_iter()
            .map(|o| {
                let mut params: BTreeMap<String, i64> = serde_json::from_str(&o.features).unwrap_or_default();
                recorded_axes(&mut params, &o.output_shape);
                let f = OpFeatures::new(o.kind, o.macs.max(0) as u64, o.flops.max(0) as u64, o.bytes_in.max(0) as u64, o.bytes_out.max(0) as u64, o.weight_bytes.max(0) as u64)
                    .with_params(&params);
                (o.op_id, f)
            })
            .collect();
        for mut r in measurements {
            if !(r.median_us.is_finite() && r.median_us > 0.0) {
                skipped += 1;
                continue;
            }
            pairing.bring(&mut r);
            match r.target {
                Target::Model => set.models.push(ModelSample { model: name.clone(), processor: r.processor_id, median_us: r.median_us }),
                Target::Op | Target::SplitPart => match op_sample(&name, &ops, r) {
                    Some(s) => set.ops.push(s),
                    None => skipped += 1,
                },
                Target::Stage => {}
            }
        }
        plan_runs(store, device, m.id, &name, &ops, &mut set, &mut pairing)?;
    }
    for t in store.transfers(device)? {
        if t.median_us.is_finite() && t.median_us > 0.0 && t.bytes >= 0 {
            set.transfers.push(TransferSample { src: t.src_processor, dst: t.dst_processor, bytes: t.bytes as f64, median_us: t.median_us });
        } else {
            skipped += 1;
        }
    }
    set.typical_reference_us = pairing.typical_us.clone();
    Ok((set, with_data, skipped, pairing))
}

/// The name model `m` has in the training set and in the cost models (`in_plan_of_model`): its file
/// stem or zoo name, or, where another model has the same name (other input shapes), `name#id`.
pub fn training_name(all: &[ModelRow], m: &ModelRow) -> String {
    if all.iter().filter(|o| o.name == m.name).count() > 1 {
        format!("{}#{}", m.name, m.id)
    } else {
        m.name.clone()
    }
}

/// The split parts, whole stages and baselines of every verified run of the model's plans on
/// `device`, as the cost crate's samples (`plan_parts` and `plan_stages`). Runs without per-stage
/// timings (adaptive runs, the dynamics experiment), and parts and stages naming ops the model
/// lacks, are passed over.
fn plan_runs(store: &Store, device: &str, model_id: i64, name: &str, ops: &BTreeMap<i64, OpFeatures>, set: &mut TrainingSet, pairing: &mut Pairing) -> Result<()> {
    #[derive(serde::Deserialize)]
    struct Details {
        #[serde(default)]
        stages: Vec<tandem_exec::StageReport>,
        #[serde(default)]
        host_speed: Option<tandem_exec::HostSpeed>,
    }
    #[derive(serde::Deserialize)]
    struct Baseline {
        name: String,
        measured_ms: f64,
    }
    let features = |id: usize| ops.get(&(id as i64)).cloned();
    let whole_model: Vec<OpFeatures> = ops.values().cloned().collect();
    for plan_row in store.plans(model_id, device)? {
        let Ok(plan) = serde_json::from_str::<tandem_plan::Plan>(&plan_row.plan) else { continue };
        for run in store.runs(plan_row.id)? {
            if !run.verified {
                continue;
            }
            let Ok(details) = serde_json::from_str::<Details>(&run.details) else { continue };
            // Brought to the profiles' speed, as the measurements are, where the run read the host's.
            let speed = details.host_speed.as_ref().and_then(|h| pairing.run_factors(h));
            let at_speed = |processor: &str, us: f64| match &speed {
                Some((per, overall)) => us * per.get(processor).copied().unwrap_or(*overall),
                None => us,
            };
            if speed.is_some() {
                pairing.plan_runs += 1;
            }
            let stage = |processor: &str, ops: Vec<OpFeatures>, measured_us: f64| PlanStageSample { model: name.to_string(), processor: processor.to_string(), ops, measured_us: at_speed(processor, measured_us), run: run.id };
            // The baselines ran interleaved with the plan: the whole model as one stage, each.
            if !details.stages.is_empty() && !whole_model.is_empty() {
                for b in serde_json::from_str::<Vec<Baseline>>(&run.baselines).unwrap_or_default() {
                    if let (Some(p), true) = (b.name.strip_prefix("single:"), b.measured_ms.is_finite() && b.measured_ms > 0.0) {
                        set.plan_stages.push(stage(p, whole_model.clone(), b.measured_ms * 1e3));
                    }
                }
            }
            for st in details.stages.iter().filter(|st| st.measured_us.is_finite() && st.measured_us > 0.0) {
                let Some([split, start, end]) = st.part else {
                    if let Some(f) = st.ops.iter().map(|&o| features(o)).collect::<Option<Vec<_>>>().filter(|f| !f.is_empty()) {
                        set.plan_stages.push(stage(&st.processor, f, st.measured_us));
                    }
                    continue;
                };
                let part = plan.splits.get(split).and_then(|sp| {
                    // What the part computed of each op, halos included, where the run recorded it.
                    if st.op_shares.len() == sp.ops.len() {
                        let chain = sp.ops.iter().map(|&o| features(o)).collect::<Option<Vec<_>>>()?;
                        return PlanPartSample::chain_view(&chain, &st.op_shares);
                    }
                    let extent = *sp.bounds.last()? as f64;
                    let share = end.saturating_sub(start) as f64 / extent;
                    let head = (features(*sp.ops.first()?)?, PartSpec { axis: sp.axis, start: 0.0, end: share });
                    let tail = sp.ops[1..].iter().map(|&o| features(o).map(|f| f.part(sp.axis, 0.0, share))).collect::<Option<Vec<_>>>()?;
                    (share > 0.0 && share <= 1.0).then_some((head, tail))
                });
                if let Some((head, tail)) = part {
                    set.plan_parts.push(PlanPartSample { model: name.to_string(), processor: st.processor.clone(), head, tail, measured_us: at_speed(&st.processor, st.measured_us) });
                }
            }
        }
    }
    Ok(())
}

fn op_sample(model: &str, ops: &BTreeMap<i64, OpFeatures>, r: MeasurementRow) -> Option<OpSample> {
    let op = ops.get(&r.op_id?)?.clone();
    let part = match r.target {
        Target::SplitPart => {
            let (axis, start, end) = (r.split_axis?, r.ratio_start?, r.ratio_end?);
            if !(axis >= 0 && start.is_finite() && end.is_finite() && 0.0 <= start && start < end && end <= 1.0 + 1e-9) {
                return None;
            }
            Some(PartSpec { axis: axis as usize, start, end })
        }
        _ => None,
    };
    let context = r.context.as_str().parse().ok()?;
    Some(OpSample { model: model.to_string(), op_id: r.op_id?, processor: r.processor_id, context, op, part, median_us: r.median_us })
}

fn pct(v: f64) -> String {
    format!("{:.0}", 100.0 * v)
}

fn print_tables(out: &FitJson) -> Result<()> {
    let t = &out.training;
    let mut s = format!(
        "fitted cost models for device {} on {} models{} ({} op timings, {} whole-model timings, {} transfer timings{}) in {:.2} s, evaluated on held-out data in {:.2} s\n\n",
        out.device_id,
        t.models,
        if t.probe_models > 0 { format!(" ({} of them probe networks, trained on and never held out)", t.probe_models) } else { String::new() },
        t.op_samples,
        t.model_samples,
        t.transfer_samples,
        if t.skipped > 0 { format!(", {} unusable skipped", t.skipped) } else { String::new() },
        out.fit_s,
        out.evaluate_s
    );
    if t.paired_samples > 0 {
        let typical: Vec<String> = t.typical_reference_us.iter().map(|(p, us)| format!("{p} {us:.0} µs")).collect();
        s.push_str(&format!(
            "{} timings brought to their processor's typical speed by the reference kernel timed with them (typical kernel: {}; --unpaired fits them as measured)\n\n",
            t.paired_samples,
            typical.join(", ")
        ));
    }
    s.push_str("held-out accuracy per processor and op kind (5-fold over ops, in context):\n");
    let mut table = Table::new(&["processor", "op kind", "samples", "held out", "mape %", "within ±10% %", "model"]);
    for k in &out.models {
        let model = match &k.fallback_of {
            Some(f) => format!("{f} (too few samples)"),
            None => k.base_from.clone(),
        };
        table.row(vec![k.processor.clone(), k.op_kind.clone(), k.samples.to_string(), k.held_out.to_string(), format!("{:.1}", k.mape), pct(k.within_10pct), model]);
    }
    s.push_str(&table.render());
    let slice = |name: &str| out.slices.iter().find(|x| x.slice == name).map(|x| x.accuracy);
    s.push_str(&format!("overall (in context): mape {:.1}%, {}% within ±10% of {} held-out predictions", out.overall.mape, pct(out.overall.within_10pct), out.overall.n));
    if let Some(a) = slice("in_model above 50 µs") {
        s.push_str(&format!("; ops above 50 µs: {}% within ±10% (mape {:.1}%)", pct(a.within_10pct), a.mape));
    }
    s.push('\n');
    let per_processor: Vec<String> = out
        .slices
        .iter()
        .filter_map(|x| x.slice.strip_prefix("in_model above 50 µs on ").map(|p| format!("{p} {}%", pct(x.accuracy.within_10pct))))
        .collect();
    if !per_processor.is_empty() {
        s.push_str(&format!("  ops above 50 µs within ±10% per processor: {}\n", per_processor.join(", ")));
    }
    let r = &out.repeatability;
    if r.n > 0 {
        s.push_str(&format!(
            "  twins: {} ops above 50 µs have identical twins in their model, and the twins' median is within ±10% of them for {}% (mape {:.1}%): the ceiling for a model that knows an op by its counts alone\n",
            r.n,
            pct(r.within_10pct),
            r.mape
        ));
    }
    for name in ["isolated", "split_part"] {
        if let Some(a) = slice(name) {
            s.push_str(&format!("  {name}: mape {:.1}%, {}% within ±10% of {}\n", a.mape, pct(a.within_10pct), a.n));
        }
    }
    let l = &out.leave_one_model_out_summary;
    if out.leave_one_model_out.is_empty() {
        s.push_str("\nleave-one-model-out: needs measurements of at least two models\n");
    } else {
        s.push_str("\nleave-one-model-out (each model predicted by models fitted on the others; whole model = stage model over its ops):\n");
        let mut table = Table::new(&["model", "processor", "predicted ms", "measured ms", "error %", "most mispredicted kinds (predicted - measured in context)"]);
        for w in &out.leave_one_model_out {
            let worst: Vec<String> = w.kinds.iter().take(2).map(|k| format!("{} {:+.2} ms", k.kind, k.predicted_ms - k.measured_ms)).collect();
            table.row(vec![
                w.model.clone(),
                w.processor.clone(),
                format!("{:.2}", w.predicted_ms),
                format!("{:.2}", w.measured_ms),
                format!("{:+.1}", 100.0 * w.error),
                worst.join(", "),
            ]);
        }
        s.push_str(&table.render());
        s.push_str(&format!(
            "whole models within ±10%: {} of {} ({}%), mean |error| {:.1}%; their ops: {}% within ±10% ({}% above 50 µs)\n",
            (l.within_10pct * l.pairs as f64).round() as usize,
            l.pairs,
            pct(l.within_10pct),
            l.mape,
            pct(l.ops.within_10pct),
            pct(l.ops_above_50us.within_10pct)
        ));
    }
    for st in &out.stages {
        if let Some(r) = &st.reference {
            let kinds: Vec<&KindAccuracy> = out.models.iter().filter(|k| k.processor == st.processor).collect();
            let built = kinds.iter().filter(|k| k.uses_reference).count();
            s.push_str(&format!(
                "{}: {built} of {} op kinds predicted as fixed + factor × {r}'s prediction (chosen over its own terms on models left out)\n",
                st.processor,
                kinds.len()
            ));
        }
    }
    s.push_str("\nstage models (stage µs from the sum of its ops' in-context µs):\n");
    for st in &out.stages {
        s.push_str(&format!("  {}: {:.1} + {:.3} × sum + {:.2} × ops  ({:?}, {} models)\n", st.processor, st.fixed_us, st.factor, st.per_op_us, st.form, st.samples));
    }
    if out.in_plan.is_empty() {
        s.push_str("in-plan calibration: no plan with splits has run yet (`tandem run` stores per-part timings the next fit learns from)\n");
    } else {
        s.push_str(&format!("in-plan calibration (split part µs inside a running plan from its prediction alone; {} parts timed in plan runs):\n", out.training.plan_part_samples));
        s.push_str(&calibration_table(&out.in_plan, "parts"));
        s.push_str("  (after: the calibration fitted without the part's model, '-' until plans of two models have run; own: each model's\n   own calibration, which re-planning it uses, fitted on half its parts predicting the other half; time off: the\n   time mispredicted as a share of the time measured, what a plan's latency feels)\n");
    }
    if !out.whole_in_plan.is_empty() {
        s.push_str(&format!(
            "whole-stage calibration (whole-op stage µs inside a running plan, and the interleaved `single:` baselines, from the stage model's prediction; {} timed):\n",
            out.training.plan_stage_samples
        ));
        s.push_str(&calibration_table(&out.whole_in_plan, "stages"));
        s.push_str("  (after: the ratio fitted without the stage's model; own: each model's own, which re-planning it uses, each run\n   predicted from the model's other runs, '-' until a model has run twice)\n");
    }
    if out.transfers.is_empty() {
        s.push_str("transfers: none measured (`tandem profile` measures them unless --no-transfers); hand-overs are predicted free\n");
    } else {
        for tr in &out.transfers {
            // A processor to itself is the copy joining a split's parts there.
            let what = if tr.src == tr.dst { format!("join on {}", tr.src) } else { format!("transfer {} -> {}", tr.src, tr.dst) };
            s.push_str(&format!("{what}: {:.1} µs + {:.2} µs/MB ({} sizes)\n", tr.fixed_us, tr.per_byte_us * 1e6, tr.samples));
        }
    }
    s.push_str(&format!(
        "\nstored {} models as version {}: tandem query \"select processor_id, op_kind, samples, mape, within_10pct, fallback_of from cost_models where version = {}\"\n",
        out.rows_stored, out.version, out.version
    ));
    crate::out(&s)?;
    Ok(())
}
