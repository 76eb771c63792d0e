//! Hand-written ndarray training steps: the baseline every other implementation is
//! measured against.
//!
//! Each is what a careful Rust programmer would write for the workload without nnc:
//! every buffer allocated once in `new`; matrix products by ndarray's
//! `general_mat_mul`, with transposes as `.t()` views and bias additions folded into
//! the product (`beta = 1` on a buffer pre-filled with the bias); the elementwise work
//! as `Zip`s or plain loops, fused where a programmer would fuse it by hand (the
//! activation's derivative is applied to the incoming gradient in place; softmax,
//! cross-entropy and its gradient are one pass per row); the update in place. They
//! use no nnc code: `tests/against_interpreter.rs` checks them against the IR
//! interpreter, loss and gradients.

mod deep_tanh;
mod relu_mlp;
mod two_layer;

pub use deep_tanh::DeepTanh;
pub use relu_mlp::ReluMlp;
pub use two_layer::TwoLayer;

use crate::workload::{Problem, Workload};
use crate::{BenchFloat, Trainer};
use ndarray::{Array1, Array2, ArrayD, ArrayView1, ArrayView2, ArrayViewMut2, Ix1, Ix2, Zip};

/// The hand-written baseline for the problem's workload, updating with `lr`.
pub fn for_problem<F: BenchFloat>(problem: &Problem<F>, lr: f64) -> Box<dyn Trainer<F>> {
    match problem.workload {
        Workload::W1 => Box::new(TwoLayer::new(problem, lr)),
        Workload::W2 => Box::new(ReluMlp::new(problem, 2, 1e-3, lr)),
        Workload::W3 => Box::new(ReluMlp::new(problem, 3, 0.0, lr)),
        Workload::W4 => Box::new(DeepTanh::new(problem, lr)),
    }
}

/// `f64` to `F` (the constants here are all representable).
fn float<F: BenchFloat>(v: f64) -> F {
    F::from_f64(v).unwrap_or_else(F::nan)
}

/// An array of the problem as a matrix; the workloads' shapes are fixed by this crate,
/// so a mismatch is a bug here.
fn matrix<F: Clone>(a: &ArrayD<F>) -> Array2<F> {
    match a.clone().into_dimensionality::<Ix2>() {
        Ok(m) => m,
        Err(e) => panic!("expected a matrix, got shape {:?}: {e}", a.shape()),
    }
}

/// As [`matrix`], for vectors.
fn vector<F: Clone>(a: &ArrayD<F>) -> Array1<F> {
    match a.clone().into_dimensionality::<Ix1>() {
        Ok(v) => v,
        Err(e) => panic!("expected a vector, got shape {:?}: {e}", a.shape()),
    }
}

/// Mean softmax cross-entropy of the rows of `scores` against `labels`, in one pass
/// per row that also writes its gradient, `(softmax(row) - onehot(label)) / n`, into
/// `d_scores`.
fn softmax_cross_entropy<F: BenchFloat>(
    scores: ArrayView2<'_, F>,
    labels: ArrayView1<'_, usize>,
    mut d_scores: ArrayViewMut2<'_, F>,
) -> F {
    let n = scores.nrows();
    let inv_n = F::one() / float::<F>(n as f64);
    let mut total = F::zero();
    Zip::from(scores.rows())
        .and(d_scores.rows_mut())
        .and(&labels)
        .for_each(|s, mut d, &label| {
            let max = s.fold(F::neg_infinity(), |m, &v| m.max(v));
            let mut sum = F::zero();
            Zip::from(&mut d).and(&s).for_each(|d, &v| {
                let e = (v - max).exp();
                *d = e;
                sum = sum + e;
            });
            total = total + (max + sum.ln() - s[label]);
            let scale = inv_n / sum;
            d.mapv_inplace(|e| e * scale);
            d[label] = d[label] - inv_n;
        });
    total * inv_n
}

/// `out[j] = sum_i m[i, j]`: a bias gradient, as a loop over rows.
fn column_sums<F: BenchFloat>(m: ArrayView2<'_, F>, out: &mut Array1<F>) {
    out.fill(F::zero());
    for row in m.rows() {
        Zip::from(&mut *out).and(&row).for_each(|o, &v| *o = *o + v);
    }
}
