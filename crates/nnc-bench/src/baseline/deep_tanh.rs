//! W4 by hand: `h_i = tanh(h_{i-1} @ w_i)` for ten layers (`h_0 = x`), then mean
//! softmax cross-entropy of `h_10 @ w_out`.

use super::{float, matrix, softmax_cross_entropy, vector};
use crate::workload::Problem;
use crate::{BenchFloat, Named, Trainer};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Zip};

/// Hidden layers in `deep_tanh.nn`.
const LAYERS: usize = 10;

pub struct DeepTanh<F> {
    x: Array2<F>,
    labels: Array1<usize>,
    /// `w1, ..., w10, w_out`.
    names: Vec<String>,
    /// `w1, ..., w10, w_out`.
    w: Vec<Array2<F>>,
    lr: F,
    /// `h1, ..., h10`.
    h: Vec<Array2<F>>,
    scores: Array2<F>,
    d_scores: Array2<F>,
    /// The gradient of the current layer's output (then, in place, of its
    /// pre-activation), and the buffer the previous layer's gradient is written to.
    d_h: Array2<F>,
    d_h_next: Array2<F>,
    d_w: Vec<Array2<F>>,
}

impl<F: BenchFloat> DeepTanh<F> {
    pub fn new(problem: &Problem<F>, lr: f64) -> Self {
        let x = matrix(problem.float("x"));
        let labels = vector(problem.indices("labels"));
        let mut names: Vec<String> = (1..=LAYERS).map(|i| format!("w{i}")).collect();
        names.push("w_out".to_string());
        let w: Vec<Array2<F>> = names.iter().map(|n| matrix(problem.param(n))).collect();
        let n = x.nrows();
        let width = w[0].ncols();
        let classes = w[LAYERS].ncols();
        DeepTanh {
            h: (0..LAYERS)
                .map(|i| Array2::zeros((n, w[i].ncols())))
                .collect(),
            scores: Array2::zeros((n, classes)),
            d_scores: Array2::zeros((n, classes)),
            d_h: Array2::zeros((n, width)),
            d_h_next: Array2::zeros((n, width)),
            d_w: w.iter().map(|w| Array2::zeros(w.raw_dim())).collect(),
            lr: float(lr),
            x,
            labels,
            names,
            w,
        }
    }
}

impl<F: BenchFloat> Trainer<F> for DeepTanh<F> {
    fn loss_and_grad(&mut self) -> F {
        let (one, zero) = (F::one(), F::zero());
        for i in 0..LAYERS {
            let (before, rest) = self.h.split_at_mut(i);
            let input = if i == 0 { &self.x } else { &before[i - 1] };
            general_mat_mul(one, input, &self.w[i], zero, &mut rest[0]);
            rest[0].mapv_inplace(F::tanh);
        }
        general_mat_mul(
            one,
            &self.h[LAYERS - 1],
            &self.w[LAYERS],
            zero,
            &mut self.scores,
        );
        let loss = softmax_cross_entropy(
            self.scores.view(),
            self.labels.view(),
            self.d_scores.view_mut(),
        );
        general_mat_mul(
            one,
            &self.h[LAYERS - 1].t(),
            &self.d_scores,
            zero,
            &mut self.d_w[LAYERS],
        );
        general_mat_mul(
            one,
            &self.d_scores,
            &self.w[LAYERS].t(),
            zero,
            &mut self.d_h,
        );
        for i in (0..LAYERS).rev() {
            // tanh' = 1 - tanh^2, applied to the incoming gradient in place.
            Zip::from(&mut self.d_h)
                .and(&self.h[i])
                .for_each(|d, &h| *d = *d * (one - h * h));
            let input = if i == 0 { &self.x } else { &self.h[i - 1] };
            general_mat_mul(one, &input.t(), &self.d_h, zero, &mut self.d_w[i]);
            if i > 0 {
                general_mat_mul(one, &self.d_h, &self.w[i].t(), zero, &mut self.d_h_next);
                std::mem::swap(&mut self.d_h, &mut self.d_h_next);
            }
        }
        loss
    }

    fn update(&mut self) {
        for (w, d) in self.w.iter_mut().zip(&self.d_w) {
            w.scaled_add(-self.lr, d);
        }
    }

    fn params(&self) -> Named<'_, F> {
        self.names
            .iter()
            .zip(&self.w)
            .map(|(n, w)| (n.as_str(), w.view().into_dyn()))
            .collect()
    }

    fn grads(&self) -> Named<'_, F> {
        self.names
            .iter()
            .zip(&self.d_w)
            .map(|(n, d)| (n.as_str(), d.view().into_dyn()))
            .collect()
    }
}
