//! The neighbour correction: what the base model misses about ops the data has seen.
//!
//! An additive model over a handful of terms cannot know every kernel's quirks (a tile size, a cache
//! that a layer's weights overflow, a slow path for an odd shape), yet networks repeat shapes: the same
//! convolution recurs within a model and across models. So each kind's model keeps its training ops'
//! log residuals `ln(measured / base)`, and a prediction is corrected by a kernel-weighted mean of the
//! residuals of the training ops *near* it (distance in `ln(1 + x)` of the counts and kernel
//! parameters, [`crate::term::coords`]). The kernel is narrow, so only near-identical ops correct a
//! prediction, and the mean is shrunk towards zero, so one neighbour corrects by part of its residual
//! and an op unlike anything seen keeps the base model's prediction.

use serde::{Deserialize, Serialize};

use crate::term::COORDS;

/// Default kernel bandwidth: squared distance at which a neighbour's weight falls to 1/e.
pub const BANDWIDTH: f64 = 0.05;
/// Default shrinkage: the weight of an implicit neighbour with residual 0.
pub const SHRINK: f64 = 0.05;
/// The weight of the whole op's residual in a split part's correction, in neighbours: a part measured
/// at the same share (weight 1) outweighs it four to one.
pub const ANCHOR: f64 = 0.25;
/// Squared distances beyond `CUTOFF · bandwidth` weigh less than e^-25 and are skipped.
const CUTOFF: f64 = 25.0;
/// The sort key sums the first `KEYED` coordinates, so |Δkey| ≤ √KEYED · distance.
const KEYED: usize = 5;

/// One training op (or several identical ones).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Point {
    /// The op's coordinates.
    pub coords: [f64; COORDS],
    /// Mean of `ln(measured / base)` over the identical ops merged here.
    pub residual: f64,
    /// How many ops were merged.
    pub count: f64,
}

/// The residuals of a kind's training ops, sorted by a key for windowed search.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Neighbours {
    /// Kernel bandwidth (squared `ln` distance).
    pub bandwidth: f64,
    /// Shrinkage towards no correction.
    pub shrink: f64,
    /// The points, sorted by the sum of their first five coordinates (for a windowed search).
    pub points: Vec<Point>,
    #[serde(skip)]
    keys: Vec<f64>,
}

impl Default for Neighbours {
    fn default() -> Self {
        Neighbours { bandwidth: BANDWIDTH, shrink: SHRINK, points: vec![], keys: vec![] }
    }
}

#[inline]
fn key(c: &[f64; COORDS]) -> f64 {
    c[..KEYED].iter().sum()
}

impl Neighbours {
    /// Builds the correction from `(coordinates, log residual)` pairs; identical coordinates merge.
    pub fn new(mut items: Vec<([f64; COORDS], f64)>, bandwidth: f64, shrink: f64) -> Neighbours {
        items.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
        let mut points: Vec<Point> = vec![];
        for (coords, r) in items {
            if !r.is_finite() || coords.iter().any(|v| !v.is_finite()) {
                continue;
            }
            match points.last_mut() {
                Some(p) if p.coords == coords => {
                    p.residual = (p.residual * p.count + r) / (p.count + 1.0);
                    p.count += 1.0;
                }
                _ => points.push(Point { coords, residual: r, count: 1.0 }),
            }
        }
        let mut n = Neighbours { bandwidth, shrink, points, keys: vec![] };
        n.index();
        n
    }

    /// Sorts the points by key and caches the keys (after deserialising, too).
    pub(crate) fn index(&mut self) {
        self.points.sort_by(|a, b| key(&a.coords).total_cmp(&key(&b.coords)));
        self.keys = self.points.iter().map(|p| key(&p.coords)).collect();
    }

    /// The log correction for an op at `c`: 0 with no neighbours near.
    #[inline]
    pub fn correction(&self, c: &[f64; COORDS]) -> f64 {
        let (num, den) = self.weighted(c);
        if den == 0.0 {
            0.0
        } else {
            num / (den + self.shrink)
        }
    }

    /// The log correction for a split part at `part`, anchored to the correction `whole` of the op
    /// it is cut from: the part's own neighbours (parts of this op measured at nearby shares) where
    /// there are some, else the whole op's residual, carried to its parts.
    ///
    /// Why: the profile times the whole op, and its parts at a few shares only; the planner asks for
    /// any share. A part's counts are far from the whole op's, so without the anchor an op the base
    /// model misses (tract's depthwise convolution with stride 2, 3 ms where the base model says 1)
    /// had parts predicted as the base model says.
    #[inline]
    pub fn part_correction(&self, part: &[f64; COORDS], whole: f64) -> f64 {
        let (num, den) = self.weighted(part);
        (num + ANCHOR * whole) / (den + ANCHOR + self.shrink)
    }

    /// Kernel-weighted sum of the residuals near `c`, and the sum of the weights.
    #[inline]
    fn weighted(&self, c: &[f64; COORDS]) -> (f64, f64) {
        if self.points.is_empty() {
            return (0.0, 0.0);
        }
        let limit = CUTOFF * self.bandwidth;
        let k = key(c);
        let half = (KEYED as f64 * limit).sqrt();
        let start = self.keys.partition_point(|&x| x < k - half);
        let (mut num, mut den) = (0.0, 0.0);
        for (p, &pk) in self.points[start..].iter().zip(&self.keys[start..]) {
            if pk > k + half {
                break;
            }
            let d2: f64 = p.coords.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
            if d2 < limit {
                let w = p.count * (-d2 / self.bandwidth).exp();
                num += w * p.residual;
                den += w;
            }
        }
        (num, den)
    }

    /// Whether every stored number is finite.
    pub fn is_valid(&self) -> bool {
        self.bandwidth.is_finite() && self.bandwidth > 0.0 && self.shrink.is_finite() && self.shrink >= 0.0
            && self.points.iter().all(|p| p.residual.is_finite() && p.count.is_finite() && p.coords.iter().all(|v| v.is_finite()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(v: f64) -> [f64; COORDS] {
        let mut c = [0.0; COORDS];
        c[0] = v;
        c[3] = v;
        c
    }

    #[test]
    fn corrects_only_near_seen_ops_and_merges_twins() {
        let n = Neighbours::new(vec![(at(10.0), 0.5), (at(10.0), 0.3), (at(20.0), -1.0)], BANDWIDTH, SHRINK);
        assert_eq!(n.points.len(), 2, "identical ops merge");
        let near = n.correction(&at(10.0));
        assert!((near - 0.4 * 2.0 / (2.0 + SHRINK)).abs() < 1e-9, "{near}");
        assert_eq!(n.correction(&at(15.0)), 0.0, "nothing near");
        assert!(n.correction(&at(20.0)) < -0.9);
    }

    #[test]
    fn a_part_far_from_every_neighbour_keeps_its_whole_ops_correction() {
        let n = Neighbours::new(vec![(at(10.0), 0.5)], BANDWIDTH, SHRINK);
        let whole = n.correction(&at(10.0));
        let alone = n.part_correction(&at(9.0), whole);
        assert!((alone - whole * ANCHOR / (ANCHOR + SHRINK)).abs() < 1e-12, "{alone} {whole}");
        // A part measured at this share outweighs the anchor.
        let m = Neighbours::new(vec![(at(10.0), 0.5), (at(9.0), -0.2)], BANDWIDTH, SHRINK);
        let measured = m.part_correction(&at(9.0), 0.5);
        assert!(measured < 0.0 && measured > -0.2, "{measured}");
    }
}
