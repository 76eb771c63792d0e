//! W1 by hand: `h = sigmoid(x @ w1); y_pred = h @ w2; loss = sum((y_pred - y)^2)`.

use super::{float, matrix};
use crate::workload::Problem;
use crate::{BenchFloat, Named, Trainer};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, Zip};

pub struct TwoLayer<F> {
    x: Array2<F>,
    y: Array2<F>,
    w1: Array2<F>,
    w2: Array2<F>,
    lr: F,
    /// `sigmoid(x @ w1)`, `[N, H]`.
    h: Array2<F>,
    /// `y_pred`, then its gradient `2 (y_pred - y)`, `[N, D_out]`.
    d_y: Array2<F>,
    /// The gradient of `h`, then of `x @ w1`, `[N, H]`.
    d_h: Array2<F>,
    d_w1: Array2<F>,
    d_w2: Array2<F>,
}

impl<F: BenchFloat> TwoLayer<F> {
    pub fn new(problem: &Problem<F>, lr: f64) -> Self {
        let x = matrix(problem.float("x"));
        let y = matrix(problem.float("y"));
        let w1 = matrix(problem.param("w1"));
        let w2 = matrix(problem.param("w2"));
        let n = x.nrows();
        let (hidden, out) = (w1.ncols(), w2.ncols());
        TwoLayer {
            h: Array2::zeros((n, hidden)),
            d_y: Array2::zeros((n, out)),
            d_h: Array2::zeros((n, hidden)),
            d_w1: Array2::zeros(w1.raw_dim()),
            d_w2: Array2::zeros(w2.raw_dim()),
            lr: float(lr),
            x,
            y,
            w1,
            w2,
        }
    }
}

impl<F: BenchFloat> Trainer<F> for TwoLayer<F> {
    fn loss_and_grad(&mut self) -> F {
        let (one, zero) = (F::one(), F::zero());
        general_mat_mul(one, &self.x, &self.w1, zero, &mut self.h);
        self.h.mapv_inplace(|z| one / (one + (-z).exp()));
        general_mat_mul(one, &self.h, &self.w2, zero, &mut self.d_y);
        let mut loss = zero;
        Zip::from(&mut self.d_y).and(&self.y).for_each(|d, &t| {
            let e = *d - t;
            loss = loss + e * e;
            *d = e + e;
        });
        general_mat_mul(one, &self.h.t(), &self.d_y, zero, &mut self.d_w2);
        general_mat_mul(one, &self.d_y, &self.w2.t(), zero, &mut self.d_h);
        Zip::from(&mut self.d_h)
            .and(&self.h)
            .for_each(|d, &h| *d = *d * h * (one - h));
        general_mat_mul(one, &self.x.t(), &self.d_h, zero, &mut self.d_w1);
        loss
    }

    fn update(&mut self) {
        self.w1.scaled_add(-self.lr, &self.d_w1);
        self.w2.scaled_add(-self.lr, &self.d_w2);
    }

    fn params(&self) -> Named<'_, F> {
        vec![
            ("w1", self.w1.view().into_dyn()),
            ("w2", self.w2.view().into_dyn()),
        ]
    }

    fn grads(&self) -> Named<'_, F> {
        vec![
            ("w1", self.d_w1.view().into_dyn()),
            ("w2", self.d_w2.view().into_dyn()),
        ]
    }
}
