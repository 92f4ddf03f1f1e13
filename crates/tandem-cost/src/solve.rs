//! A small dense non-negative least-squares solver (Lawson–Hanson) on the normal equations of a
//! handful of features.
//!
//! The problems here have at most a dozen columns and a few thousand rows, so forming the Gram matrix
//! and solving it directly is both exact enough and fast. Columns are scaled to unit norm first, so
//! features counted in bytes and in multiply-adds (nine orders of magnitude apart) condition equally.

/// A weighted least-squares problem `min Σ w_i (x_i · c - y_i)²`, built row by row.
#[derive(Debug, Clone)]
pub(crate) struct Problem {
    dim: usize,
    /// Gram matrix `Xᵀ W X`, row-major `dim × dim`.
    gram: Vec<f64>,
    /// `Xᵀ W y`.
    rhs: Vec<f64>,
}

impl Problem {
    pub(crate) fn new(dim: usize) -> Problem {
        Problem { dim, gram: vec![0.0; dim * dim], rhs: vec![0.0; dim] }
    }

    /// Adds one row `x` with target `y` and weight `w`.
    pub(crate) fn add(&mut self, x: &[f64], y: f64, w: f64) {
        debug_assert_eq!(x.len(), self.dim);
        for (i, &xi) in x.iter().enumerate() {
            let wx = w * xi;
            if wx == 0.0 {
                continue;
            }
            self.rhs[i] += wx * y;
            for (g, &xj) in self.gram[i * self.dim..(i + 1) * self.dim].iter_mut().zip(x) {
                *g += wx * xj;
            }
        }
    }

    /// Column scales: the square root of each diagonal entry (1 for an all-zero column).
    fn scales(&self) -> Vec<f64> {
        (0..self.dim).map(|i| self.gram[i * self.dim + i].sqrt()).map(|s| if s > 0.0 && s.is_finite() { s } else { 1.0 }).collect()
    }

    /// The scaled normal equations: `G' = D⁻¹ G D⁻¹`, `h' = D⁻¹ h`.
    fn scaled(&self) -> (Vec<f64>, Vec<f64>, Vec<f64>) {
        let d = self.scales();
        let n = self.dim;
        let mut g = vec![0.0; n * n];
        for i in 0..n {
            for j in 0..n {
                g[i * n + j] = self.gram[i * n + j] / (d[i] * d[j]);
            }
        }
        let h: Vec<f64> = (0..n).map(|i| self.rhs[i] / d[i]).collect();
        (g, h, d)
    }

    /// Non-negative least squares (Lawson–Hanson active set). Columns that are all zero get 0.
    pub(crate) fn nnls(&self) -> Vec<f64> {
        let n = self.dim;
        let (g, h, d) = self.scaled();
        let usable: Vec<bool> = (0..n).map(|i| self.gram[i * n + i] > 0.0).collect();
        let mut x = vec![0.0; n];
        let mut passive = vec![false; n];
        let tol = 1e-12;
        for _outer in 0..(4 * n + 8) {
            // Gradient of the objective's negative: w = h - G x.
            let w: Vec<f64> = (0..n).map(|i| h[i] - (0..n).map(|j| g[i * n + j] * x[j]).sum::<f64>()).collect();
            let candidate = (0..n).filter(|&i| usable[i] && !passive[i] && w[i] > tol).max_by(|&a, &b| w[a].total_cmp(&w[b]));
            let Some(t) = candidate else { break };
            passive[t] = true;
            for _inner in 0..(4 * n + 8) {
                let s = solve_subset(&g, &h, n, &passive);
                if (0..n).all(|i| !passive[i] || s[i] > tol) {
                    x = s;
                    break;
                }
                // Step towards s as far as feasibility allows, and drop the columns that hit zero.
                let mut alpha = 1.0f64;
                for i in 0..n {
                    if passive[i] && s[i] <= tol {
                        let a = x[i] / (x[i] - s[i]);
                        if a < alpha {
                            alpha = a;
                        }
                    }
                }
                for i in 0..n {
                    x[i] += alpha * (s[i] - x[i]);
                    if passive[i] && x[i] <= tol {
                        passive[i] = false;
                        x[i] = 0.0;
                    }
                }
                if !passive.iter().any(|&p| p) {
                    break;
                }
            }
        }
        (0..n).map(|i| (x[i] / d[i]).max(0.0)).collect()
    }
}

/// Solves `G[P,P] s_P = h[P]` (zero elsewhere) by Cholesky, with a tiny ridge for collinear columns.
fn solve_subset(g: &[f64], h: &[f64], n: usize, subset: &[bool]) -> Vec<f64> {
    let idx: Vec<usize> = (0..n).filter(|&i| subset[i]).collect();
    let m = idx.len();
    let mut a = vec![0.0; m * m];
    let mut b = vec![0.0; m];
    for (r, &i) in idx.iter().enumerate() {
        b[r] = h[i];
        for (c, &j) in idx.iter().enumerate() {
            a[r * m + c] = g[i * n + j];
        }
        a[r * m + r] += 1e-10;
    }
    let s = cholesky_solve(&mut a, &mut b, m);
    let mut out = vec![0.0; n];
    for (r, &i) in idx.iter().enumerate() {
        out[i] = s[r];
    }
    out
}

/// Solves the symmetric positive (semi-)definite system in place; pivots that vanish give 0.
fn cholesky_solve(a: &mut [f64], b: &mut [f64], m: usize) -> Vec<f64> {
    // a = L Lᵀ, L stored in the lower triangle.
    for j in 0..m {
        let mut diag = a[j * m + j];
        for k in 0..j {
            diag -= a[j * m + k] * a[j * m + k];
        }
        let l = if diag > 1e-14 { diag.sqrt() } else { 0.0 };
        a[j * m + j] = l;
        for i in (j + 1)..m {
            let mut v = a[i * m + j];
            for k in 0..j {
                v -= a[i * m + k] * a[j * m + k];
            }
            a[i * m + j] = if l > 0.0 { v / l } else { 0.0 };
        }
    }
    // Forward: L z = b.
    let mut z = vec![0.0; m];
    for i in 0..m {
        let mut v = b[i];
        for k in 0..i {
            v -= a[i * m + k] * z[k];
        }
        z[i] = if a[i * m + i] > 0.0 { v / a[i * m + i] } else { 0.0 };
    }
    // Backward: Lᵀ s = z.
    let mut s = vec![0.0; m];
    for i in (0..m).rev() {
        let mut v = z[i];
        for k in (i + 1)..m {
            v -= a[k * m + i] * s[k];
        }
        s[i] = if a[i * m + i] > 0.0 { v / a[i * m + i] } else { 0.0 };
    }
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nnls_recovers_a_non_negative_solution_and_clamps_a_negative_one() {
        // y = 2 + 3 a, with a useless column b whose unconstrained coefficient would be negative.
        let mut p = Problem::new(3);
        for i in 0..50 {
            let a = i as f64;
            let b = if i % 2 == 0 { 1.0 } else { 0.0 };
            p.add(&[1.0, a, b], 2.0 + 3.0 * a - 0.5 * b, 1.0);
        }
        let c = p.nnls();
        assert!(c[2] == 0.0, "{c:?}");
        assert!((c[1] - 3.0).abs() < 0.05, "{c:?}");
        let mut q = Problem::new(2);
        for i in 0..20 {
            let a = i as f64 * 1e6;
            q.add(&[1.0, a], 5.0 + 1e-6 * a, 1.0);
        }
        let c = q.nnls();
        assert!((c[0] - 5.0).abs() < 1e-6 && (c[1] - 1e-6).abs() < 1e-12, "{c:?}");
    }
}
