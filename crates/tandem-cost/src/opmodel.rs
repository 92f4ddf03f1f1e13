//! Op models: per (processor, context, kind), an additive base model times a neighbour correction, with
//! fallbacks to the kind's family and to a catch-all model when a kind has too few samples.

use std::collections::{BTreeMap, BTreeSet, HashMap};

use serde::{Deserialize, Serialize};

use crate::additive::AdditiveModel;
use crate::neighbours::Neighbours;
use crate::sample::{OpFeatures, OpSample};
use crate::term::{coords, Family, Term, ALL_KINDS, ALL_KINDS_TERMS, COORDS};

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
    /// The predicted time, µs.
    #[inline]
    pub fn predict(&self, f: &OpFeatures) -> f64 {
        self.predict_at(f, &coords(f))
    }

    /// The predicted time for an op whose coordinates are already computed.
    #[inline]
    pub fn predict_at(&self, f: &OpFeatures, c: &[f64; COORDS]) -> f64 {
        self.base.predict(f) * self.neighbours.correction(c).exp()
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
    #[inline]
    pub fn predict(&self, f: &OpFeatures) -> f64 {
        if let Some(m) = self.kinds.get(f.kind.as_str()) {
            return m.predict(f);
        }
        match self.families.get(&Family::of(&f.kind)) {
            Some(fm) => fm.base.predict(f),
            None => self.all.base.predict(f),
        }
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
        OpFitOptions { kind_min_samples: 8, family_min_samples: 4, bandwidth: crate::neighbours::BANDWIDTH, shrink: crate::neighbours::SHRINK }
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
}

const TERMS: usize = 9;
const ALL_TERMS: [Term; TERMS] =
    [Term::One, Term::Macs, Term::Flops, Term::BytesIn, Term::BytesOut, Term::WeightBytes, Term::PackedBytes, Term::Channels, Term::Rows];

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
        Row { sample, coords: coords(&features), features, values, y: s.median_us, model }
    }
}

/// Fits an additive model with `terms` on `rows`.
fn fit_base(rows: &[&Row], terms: &[Term]) -> AdditiveModel {
    let idx: Vec<usize> = terms.iter().map(|&t| term_index(t)).collect();
    let values: Vec<Vec<f64>> = rows.iter().map(|r| idx.iter().map(|&i| r.values[i]).collect()).collect();
    let slices: Vec<&[f64]> = values.iter().map(|v| &v[..]).collect();
    let y: Vec<f64> = rows.iter().map(|r| r.y).collect();
    AdditiveModel::fit(terms, &slices, &y)
}

fn mean_abs_log_error(model: &AdditiveModel, rows: &[&Row]) -> f64 {
    rows.iter().map(|r| (model.predict(&r.features) / r.y).ln().abs()).sum::<f64>()
}

/// Fits every op model of one processor in one context from its rows.
pub(crate) fn fit_context(rows: &[&Row], kinds_of: &dyn Fn(&Row) -> String, opts: &OpFitOptions) -> ContextModels {
    let mut by_kind: BTreeMap<String, Vec<&Row>> = BTreeMap::new();
    for &r in rows {
        by_kind.entry(kinds_of(r)).or_default().push(r);
    }
    let mut by_family: BTreeMap<Family, Vec<&Row>> = BTreeMap::new();
    for (k, v) in &by_kind {
        by_family.entry(Family::of(k)).or_default().extend(v.iter().copied());
    }
    let all = FamilyModel { base: fit_base(rows, ALL_KINDS_TERMS), samples: rows.len() };
    let families: BTreeMap<Family, FamilyModel> = by_family
        .iter()
        .filter(|(_, v)| v.len() >= opts.family_min_samples)
        .map(|(&f, v)| (f, FamilyModel { base: fit_base(v, f.terms()), samples: v.len() }))
        .collect();

    let mut kinds = HashMap::new();
    for (kind, mine) in &by_kind {
        let family = Family::of(kind);
        let family_rows = &by_family[&family];
        let (base, base_from, fallback_of, tried) = if mine.len() >= opts.kind_min_samples {
            let own = fit_base(mine, family.terms());
            let shared = families.get(&family).filter(|_| family_rows.len() > mine.len());
            match shared {
                Some(fm) => {
                    // Own model or the family's? Whichever predicts this kind better on models left out.
                    let models: BTreeSet<usize> = mine.iter().map(|r| r.model).collect();
                    if models.len() >= 3 {
                        let (mut e_own, mut e_family, mut n) = (0.0, 0.0, 0usize);
                        for &m in &models {
                            let (test, train): (Vec<&Row>, Vec<&Row>) = mine.iter().partition(|r| r.model == m);
                            let family_train: Vec<&Row> = family_rows.iter().copied().filter(|r| r.model != m).collect();
                            e_own += mean_abs_log_error(&fit_base(&train, family.terms()), &test);
                            e_family += mean_abs_log_error(&fit_base(&family_train, family.terms()), &test);
                            n += test.len();
                        }
                        let tried = vec![
                            Tried { base: "own".into(), error: e_own / n as f64 },
                            Tried { base: family.label().into(), error: e_family / n as f64 },
                        ];
                        if e_own <= e_family {
                            (own, "own".to_string(), None, tried)
                        } else {
                            (fm.base.clone(), family.label().to_string(), None, tried)
                        }
                    } else {
                        (own, "own".to_string(), None, vec![])
                    }
                }
                None => (own, "own".to_string(), None, vec![]),
            }
        } else {
            match families.get(&family) {
                Some(fm) => (fm.base.clone(), family.label().to_string(), Some(family.label().to_string()), vec![]),
                None => (all.base.clone(), ALL_KINDS.to_string(), Some(ALL_KINDS.to_string()), vec![]),
            }
        };
        let residuals: Vec<([f64; COORDS], f64)> = mine.iter().map(|r| (r.coords, (r.y / base.predict(&r.features)).ln())).collect();
        let neighbours = Neighbours::new(residuals, opts.bandwidth, opts.shrink);
        kinds.insert(kind.clone(), OpModel { base, base_from, fallback_of, neighbours, samples: mine.len(), tried });
    }
    ContextModels { kinds, families, all }
}
