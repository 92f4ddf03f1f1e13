//! Op models: per (processor, context, kind), an additive base model times a neighbour correction, with
//! fallbacks to the kind's family and to a catch-all model when a kind has too few samples.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::additive::{AdditiveModel, FLOOR_US};
use crate::neighbours::Neighbours;
use crate::sample::{OpFeatures, OpSample};
use crate::term::{coords, Family, Term, ALL_KINDS, ALL_KINDS_TERMS, COORDS, REFERENCE_TERMS};

/// The latency model of one op kind in one context on one processor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpModel {
    /// The additive base model.
    pub base: AdditiveModel,
    /// Where the base comes from: `own` (fitted on this kind), `family:<name>` or `all`.
    pub base_from: String,
    /// Set when the kind had too few samples for a model of its own: the coarser model it uses
    /// (`family:<name>` or `all`).
    pub fallback_of: Option<String>,
    /// The correction from this kind's training ops.
    pub neighbours: Neighbours,
    /// Training samples of this kind in this context.
    pub samples: usize,
    /// The base models compared on held-out data (leave-one-model-out within the training data), with
    /// their mean absolute log error; the chosen one is `base_from`.
    pub tried: Vec<Tried>,
}

/// One candidate base model and its held-out error.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Tried {
    /// `own` or `family:<name>`.
    pub base: String,
    /// Mean of `|ln(predicted / measured)|` over held-out ops.
    pub error: f64,
}

impl OpModel {
    /// The predicted time, µs, of a model that does not use another processor's prediction
    /// ([`Term::Reference`]); see [`OpModel::predict_with`].
    #[inline]
    pub fn predict(&self, f: &OpFeatures) -> f64 {
        self.predict_at(f, &coords(f))
    }

    /// The predicted time for an op whose coordinates are already computed (without a reference
    /// processor's prediction: see [`OpModel::predict_with`]).
    #[inline]
    pub fn predict_at(&self, f: &OpFeatures, c: &[f64; COORDS]) -> f64 {
        self.predict_with(f, c, 0.0)
    }

    /// The predicted time for an op whose coordinates are already computed, given the reference
    /// processor's prediction for it (ignored unless the base uses [`Term::Reference`]).
    #[inline]
    pub fn predict_with(&self, f: &OpFeatures, c: &[f64; COORDS], reference_us: f64) -> f64 {
        self.base.predict_with(f, reference_us) * self.neighbours.correction(c).exp()
    }

    /// The predicted time of `part`, a split part of `whole`, given the reference processor's
    /// prediction for the part: the base model's, corrected by the part's neighbours and anchored to
    /// the whole op's correction ([`Neighbours::part_correction`]).
    #[inline]
    pub fn predict_part_with(&self, whole: &OpFeatures, part: &OpFeatures, reference_us: f64) -> f64 {
        let anchor = self.neighbours.correction(&coords(whole));
        self.base.predict_with(part, reference_us) * self.neighbours.part_correction(&coords(part), anchor).exp()
    }

    /// Whether the base needs the reference processor's prediction.
    #[inline]
    pub fn uses_reference(&self) -> bool {
        self.base.uses_reference()
    }

    /// Whether every number is finite.
    pub fn is_valid(&self) -> bool {
        self.base.is_valid() && self.neighbours.is_valid() && self.tried.iter().all(|t| t.error.is_finite())
    }
}

/// Every op model of one processor in one context.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct ContextModels {
    /// Per kind seen in training (kinds with too few samples carry their fallback).
    pub kinds: HashMap<String, OpModel>,
    /// Per family with enough samples, for kinds never seen.
    pub families: BTreeMap<Family, FamilyModel>,
    /// Every kind together: the last resort.
    pub all: FamilyModel,
}

/// A coarser model: a family's, or the catch-all.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct FamilyModel {
    /// The additive model.
    pub base: AdditiveModel,
    /// Samples it was fitted on.
    pub samples: usize,
}

impl ContextModels {
    /// The predicted time of an op, µs: its kind's model, else its family's, else the catch-all.
    /// `reference` gives the reference processor's prediction for the op; it is called only when the
    /// model uses it ([`Term::Reference`]).
    #[inline]
    pub fn predict_with(&self, f: &OpFeatures, reference: &dyn Fn(&OpFeatures) -> f64) -> f64 {
        if let Some(m) = self.kinds.get(f.kind.as_str()) {
            let r = if m.uses_reference() { reference(f) } else { 0.0 };
            return m.predict_with(f, &coords(f), r);
        }
        let base = match self.families.get(&Family::of(&f.kind)) {
            Some(fm) => &fm.base,
            None => &self.all.base,
        };
        let r = if base.uses_reference() { reference(f) } else { 0.0 };
        base.predict_with(f, r)
    }

    /// The predicted time of `part`, a split part of `whole`, µs: as [`ContextModels::predict_with`],
    /// the kind's correction anchored to the whole op's ([`OpModel::predict_part_with`]).
    #[inline]
    pub fn predict_part_with(&self, whole: &OpFeatures, part: &OpFeatures, reference: &dyn Fn(&OpFeatures) -> f64) -> f64 {
        match self.kinds.get(part.kind.as_str()) {
            Some(m) => {
                let r = if m.uses_reference() { reference(part) } else { 0.0 };
                m.predict_part_with(whole, part, r)
            }
            None => self.predict_with(part, reference),
        }
    }

    /// The predicted time of an op, µs, for models that use no reference processor (with one, see
    /// [`crate::CostModels::predict_op_in`]).
    #[inline]
    pub fn predict(&self, f: &OpFeatures) -> f64 {
        self.predict_with(f, &|_| 0.0)
    }

    /// Whether every number is finite.
    pub fn is_valid(&self) -> bool {
        self.kinds.values().all(OpModel::is_valid) && self.families.values().all(|f| f.base.is_valid()) && self.all.base.is_valid()
    }
}

/// Settings of the op model fit.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpFitOptions {
    /// A kind with fewer samples (in one context on one processor) uses its family's model.
    pub kind_min_samples: usize,
    /// A family with fewer samples uses the catch-all model.
    pub family_min_samples: usize,
    /// Neighbour kernel bandwidth.
    pub bandwidth: f64,
    /// Neighbour shrinkage.
    pub shrink: f64,
}

impl Default for OpFitOptions {
    fn default() -> Self {
        OpFitOptions {
            kind_min_samples: 8,
            family_min_samples: 4,
            bandwidth: crate::neighbours::BANDWIDTH,
            shrink: crate::neighbours::SHRINK,
        }
    }
}

/// A training op, with everything the fit computes from it once.
#[derive(Debug, Clone)]
pub(crate) struct Row {
    /// Index into the training set's op samples.
    pub sample: usize,
    /// The timed features (the part's, for a split part).
    pub features: OpFeatures,
    pub coords: [f64; COORDS],
    /// Every term's value, indexed by `term_index`.
    pub values: [f64; TERMS],
    pub y: f64,
    /// Index of the sample's model.
    pub model: usize,
    /// What the fit's inner choices leave out together: the model, except that every training-only
    /// model (the probe networks) is one group, so that the choice is judged on real models and the
    /// probes count as one more.
    pub group: usize,
}

const TERMS: usize = 17;
const ALL_TERMS: [Term; TERMS] = [
    Term::One,
    Term::Macs,
    Term::ValidMacs,
    Term::Flops,
    Term::BytesIn,
    Term::BytesOut,
    Term::WeightBytes,
    Term::PackedBytes,
    Term::Channels,
    Term::Rows,
    Term::ThinPacked,
    Term::StridedMacs,
    Term::SpilledMacs,
    Term::ReducedRows,
    Term::ScratchPieces,
    Term::Reference,
    Term::SqrtReference,
];

#[inline]
fn term_index(t: Term) -> usize {
    ALL_TERMS.iter().position(|&x| x == t).unwrap_or(0)
}

impl Row {
    pub(crate) fn new(sample: usize, s: &OpSample, model: usize) -> Row {
        let features = s.timed_features();
        let mut values = [0.0; TERMS];
        for (v, t) in values.iter_mut().zip(ALL_TERMS) {
            *v = t.value(&features);
        }
        Row { sample, coords: coords(&features), features, values, y: s.median_us, model, group: model }
    }

    /// The same row with the reference processor's prediction for it: the values of the terms the
    /// models supply from it ([`Term::is_reference`]).
    pub(crate) fn with_reference(&self, us: f64) -> Row {
        let mut r = self.clone();
        for (v, t) in r.values.iter_mut().zip(ALL_TERMS).filter(|(_, t)| t.is_reference()) {
            *v = t.value_with(&self.features, us);
        }
        r
    }
}

/// A model's prediction for a training row (from the row's term values, reference included).
#[inline]
fn predict_row(model: &AdditiveModel, r: &Row) -> f64 {
    model.terms.iter().map(|c| c.us * r.values[term_index(c.term)]).sum::<f64>().max(FLOOR_US)
}

/// Fits an additive model with `terms` on `rows`.
fn fit_base(rows: &[&Row], terms: &[Term]) -> AdditiveModel {
    let idx: Vec<usize> = terms.iter().map(|&t| term_index(t)).collect();
    let values: Vec<Vec<f64>> = rows.iter().map(|r| idx.iter().map(|&i| r.values[i]).collect()).collect();
    let slices: Vec<&[f64]> = values.iter().map(|v| &v[..]).collect();
    let y: Vec<f64> = rows.iter().map(|r| r.y).collect();
    AdditiveModel::fit(terms, &slices, &y)
}

/// Sum of `|ln(predicted / measured)|` over `rows`.
fn abs_log_error(model: &AdditiveModel, rows: &[&Row]) -> f64 {
    rows.iter().map(|r| (predict_row(model, r) / r.y).ln().abs()).sum::<f64>()
}

/// One way of building a base model, compared with the others on models left out.
#[derive(Clone, Copy)]
enum Candidate {
    /// The family's terms fitted on the kind's own rows.
    Own,
    /// The family's shared model, as is.
    Family,
    /// `fixed + factor · reference processor's prediction`, fitted on the kind's rows.
    Reference,
}

impl Candidate {
    fn label(self, family: Family) -> String {
        match self {
            Candidate::Own => "own".into(),
            Candidate::Family => family.label().into(),
            Candidate::Reference => "reference".into(),
        }
    }
}

/// A family's (or the catch-all's) model: its own terms or, on a processor with a reference, a model
/// over the reference's prediction, whichever predicts left-out models better.
fn fit_pooled(rows: &[&Row], terms: &'static [Term], has_reference: bool) -> (AdditiveModel, &'static [Term]) {
    if !has_reference {
        return (fit_base(rows, terms), terms);
    }
    let models: BTreeSet<usize> = rows.iter().map(|r| r.group).collect();
    if models.len() < 3 {
        return (fit_base(rows, terms), terms);
    }
    let (mut e_own, mut e_ref) = (0.0, 0.0);
    for &m in &models {
        let (test, train): (Vec<&Row>, Vec<&Row>) = rows.iter().partition(|r| r.group == m);
        e_own += abs_log_error(&fit_base(&train, terms), &test);
        e_ref += abs_log_error(&fit_base(&train, REFERENCE_TERMS), &test);
    }
    let chosen = if e_ref < e_own { REFERENCE_TERMS } else { terms };
    (fit_base(rows, chosen), chosen)
}

/// Fits every op model of one processor in one context from its rows. `has_reference`: the rows
/// carry the reference processor's predictions, and models over them are candidates.
pub(crate) fn fit_context(rows: &[&Row], kinds_of: &dyn Fn(&Row) -> String, opts: &OpFitOptions, has_reference: bool) -> ContextModels {
    let mut by_kind: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for &r in rows {
        by_kind.entry(kinds_of(r)).or_default().push(r);
    }
    let mut by_family: BTreeMap<Family, Vec<&Row>> = BTreeMap::new();
    for (k, v) in &by_kind {
        by_family.entry(Family::of(k)).or_default().extend(v.iter().copied());
    }
    let all = FamilyModel { base: fit_pooled(rows, ALL_KINDS_TERMS, has_reference).0, samples: rows.len() };
    let mut family_terms: BTreeMap<Family, &'static [Term]> = BTreeMap::new();
    let mut families: BTreeMap<Family, FamilyModel> = BTreeMap::new();
    for (&f, v) in by_family.iter().filter(|(_, v)| v.len() >= opts.family_min_samples) {
        let (base, terms) = fit_pooled(v, f.terms(), has_reference);
        family_terms.insert(f, terms);
        families.insert(f, FamilyModel { base, samples: v.len() });
    }

    let mut candidates = vec![Candidate::Own, Candidate::Family];
    if has_reference {
        candidates.push(Candidate::Reference);
    }
    let mut kinds = HashMap::new();
    for (kind, mine) in &by_kind {
        let family = Family::of(kind);
        let family_rows = &by_family[&family];
        // A candidate's base, fitted on `own_rows` of the kind (the family's model is passed in when
        // it is already fitted on the right rows, else fitted on `pooled_rows`).
        let build = |c: Candidate, own_rows: &[&Row], pooled_rows: &[&Row], family_model: Option<&AdditiveModel>| match c {
            Candidate::Own => fit_base(own_rows, family.terms()),
            Candidate::Family => match family_model {
                Some(m) => m.clone(),
                None => fit_base(pooled_rows, family_terms.get(&family).copied().unwrap_or(family.terms())),
            },
            Candidate::Reference => fit_base(own_rows, REFERENCE_TERMS),
        };
        let (base, base_from, fallback_of, tried) = if mine.len() >= opts.kind_min_samples {
            let shared = families.get(&family).filter(|_| family_rows.len() > mine.len());
            let models: BTreeSet<usize> = mine.iter().map(|r| r.group).collect();
            let usable: Vec<Candidate> = candidates.iter().copied().filter(|c| shared.is_some() || !matches!(c, Candidate::Family)).collect();
            if models.len() >= 3 && usable.len() > 1 {
                // Which base predicts this kind best on models left out (within the training data)?
                let mut errors = vec![0.0; usable.len()];
                let mut n = 0usize;
                for &m in &models {
                    let (test, train): (Vec<&Row>, Vec<&Row>) = mine.iter().partition(|r| r.group == m);
                    let family_train: Vec<&Row> = family_rows.iter().copied().filter(|r| r.group != m).collect();
                    for (e, &c) in errors.iter_mut().zip(&usable) {
                        *e += abs_log_error(&build(c, &train, &family_train, None), &test);
                    }
                    n += test.len();
                }
                let tried: Vec<Tried> = usable.iter().zip(&errors).map(|(c, e)| Tried { base: c.label(family), error: e / n as f64 }).collect();
                // The first candidate wins ties: the kind's own model, then the family's.
                let best = (0..usable.len()).fold(0, |b, i| if errors[i] < errors[b] { i } else { b });
                let c = usable[best];
                (build(c, mine, family_rows, shared.map(|f| &f.base)), c.label(family), None, tried)
            } else {
                (fit_base(mine, family.terms()), "own".to_string(), None, vec![])
            }
        } else {
            let (coarse, label) = match families.get(&family) {
                Some(fm) => (&fm.base, family.label().to_string()),
                None => (&all.base, ALL_KINDS.to_string()),
            };
            (coarse.clone(), label.clone(), Some(label), vec![])
        };
        let residuals: Vec<([f64; COORDS], f64)> = mine.iter().map(|r| (r.coords, (r.y / predict_row(&base, r)).ln())).collect();
        let neighbours = Neighbours::new(residuals, opts.bandwidth, opts.shrink);
        kinds.insert(kind.clone(), OpModel { base, base_from, fallback_of, neighbours, samples: mine.len(), tried });
    }
    ContextModels { kinds, families, all }
}
