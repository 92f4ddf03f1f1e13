//! Checking a plan's outputs against the plain single-processor run.

use serde::{Deserialize, Serialize};
use tandem_graph::{compare, TValue};

/// How one output compares with the reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OutputCheck {
    /// The output's name in the model.
    pub name: String,
    /// Largest absolute difference.
    pub max_abs_diff: f64,
    /// Largest difference divided by the reference output's largest magnitude (random-weight networks
    /// can output values near 1e-9, where absolute differences say nothing).
    pub max_rel_diff: f64,
    /// Whether `max_rel_diff` is within the tolerance (and the shapes match).
    pub ok: bool,
}

/// Compares `got` with `reference`, output by output; `names` names them. An output whose shape or
/// count differs fails with infinite differences.
pub fn verify(names: &[String], reference: &[TValue], got: &[TValue], tolerance: f64) -> Vec<OutputCheck> {
    names
        .iter()
        .enumerate()
        .map(|(i, name)| {
            let diff = match (reference.get(i), got.get(i)) {
                (Some(r), Some(g)) => compare(r, g).ok(),
                _ => None,
            };
            let (abs, rel) = diff.map(|(a, r)| (a as f64, r as f64)).unwrap_or((f64::INFINITY, f64::INFINITY));
            OutputCheck { name: name.clone(), max_abs_diff: abs, max_rel_diff: rel, ok: rel <= tolerance }
        })
        .collect()
}

/// What failed, for the person at the terminal: the first output outside `tolerance`, with its
/// differences; `None` when every output is within it.
pub fn failure(checks: &[OutputCheck], tolerance: f64) -> Option<String> {
    checks.iter().find(|c| !c.ok).map(|c| {
        format!(
            "verification failed: output '{}' differs from the single-processor run by {:.3e} ({:.3e} relative to its magnitude, tolerance {:.0e})",
            c.name, c.max_abs_diff, c.max_rel_diff, tolerance
        )
    })
}
