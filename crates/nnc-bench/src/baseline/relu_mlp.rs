//! W2 and W3 by hand: dense layers `h = relu(h @ w + b)`, a last dense layer to the
//! scores, mean softmax cross-entropy, and optionally `0.5 * reg * sum(w^2)` over the
//! weights (W2's L2 term; biases are not regularised).

use super::{column_sums, float, matrix, softmax_cross_entropy, vector};
use crate::workload::Problem;
use crate::{BenchFloat, Named, Trainer};
use ndarray::linalg::general_mat_mul;
use ndarray::{Array1, Array2, Zip};

pub struct ReluMlp<F> {
    x: Array2<F>,
    labels: Array1<usize>,
    /// `w1, b1, w2, b2, ...` as in the model's declarations.
    names: Vec<String>,
    w: Vec<Array2<F>>,
    b: Vec<Array1<F>>,
    reg: F,
    lr: F,
    /// Each layer's output: `relu(h @ w + b)`, the last one the scores.
    out: Vec<Array2<F>>,
    /// The gradient of each layer's output, then (in place) of its pre-activation.
    d_out: Vec<Array2<F>>,
    d_w: Vec<Array2<F>>,
    d_b: Vec<Array1<F>>,
}

impl<F: BenchFloat> ReluMlp<F> {
    /// `layers` dense layers, the parameters `w1, b1, ..., w{layers}, b{layers}`.
    pub fn new(problem: &Problem<F>, layers: usize, reg: f64, lr: f64) -> Self {
        let x = matrix(problem.float("x"));
        let labels = vector(problem.indices("labels"));
        let n = x.nrows();
        let mut names = Vec::new();
        let (mut w, mut b) = (Vec::new(), Vec::new());
        for i in 1..=layers {
            w.push(matrix(problem.param(&format!("w{i}"))));
            b.push(vector(problem.param(&format!("b{i}"))));
            names.push(format!("w{i}"));
            names.push(format!("b{i}"));
        }
        let out: Vec<Array2<F>> = w.iter().map(|w| Array2::zeros((n, w.ncols()))).collect();
        ReluMlp {
            d_out: out.clone(),
            out,
            d_w: w.iter().map(|w| Array2::zeros(w.raw_dim())).collect(),
            d_b: b.iter().map(|b| Array1::zeros(b.raw_dim())).collect(),
            reg: float(reg),
            lr: float(lr),
            x,
            labels,
            names,
            w,
            b,
        }
    }
}

impl<F: BenchFloat> Trainer<F> for ReluMlp<F> {
    fn loss_and_grad(&mut self) -> F {
        let (one, zero) = (F::one(), F::zero());
        let last = self.w.len() - 1;
        // Forward: the bias first, then the product accumulated onto it.
        for i in 0..=last {
            let (before, rest) = self.out.split_at_mut(i);
            let out = &mut rest[0];
            out.assign(&self.b[i]);
            let input = if i == 0 { &self.x } else { &before[i - 1] };
            general_mat_mul(one, input, &self.w[i], one, out);
            if i < last {
                out.mapv_inplace(|z| z.max(zero));
            }
        }
        let mut loss = softmax_cross_entropy(
            self.out[last].view(),
            self.labels.view(),
            self.d_out[last].view_mut(),
        );
        if self.reg != zero {
            let squares = self
                .w
                .iter()
                .fold(zero, |acc, w| w.fold(acc, |s, &v| s + v * v));
            loss = loss + float::<F>(0.5) * self.reg * squares;
        }
        // Backward, layer by layer from the scores.
        for i in (0..=last).rev() {
            let (before, rest) = self.d_out.split_at_mut(i);
            let d_z = &mut rest[0];
            if i < last {
                // ReLU: the gradient passes where the output is positive.
                Zip::from(&mut *d_z)
                    .and(&self.out[i])
                    .for_each(|d, &h| *d = if h > zero { *d } else { zero });
            }
            let input = if i == 0 { &self.x } else { &self.out[i - 1] };
            // d_w = input.T @ d_z (+ reg * w, by starting from w and beta = reg).
            if self.reg != zero {
                self.d_w[i].assign(&self.w[i]);
                general_mat_mul(one, &input.t(), &*d_z, self.reg, &mut self.d_w[i]);
            } else {
                general_mat_mul(one, &input.t(), &*d_z, zero, &mut self.d_w[i]);
            }
            column_sums(d_z.view(), &mut self.d_b[i]);
            if i > 0 {
                general_mat_mul(one, &*d_z, &self.w[i].t(), zero, &mut before[i - 1]);
            }
        }
        loss
    }

    fn update(&mut self) {
        for (w, d) in self.w.iter_mut().zip(&self.d_w) {
            w.scaled_add(-self.lr, d);
        }
        for (b, d) in self.b.iter_mut().zip(&self.d_b) {
            b.scaled_add(-self.lr, d);
        }
    }

    fn params(&self) -> Named<'_, F> {
        let mut out = Vec::new();
        for (i, (w, b)) in self.w.iter().zip(&self.b).enumerate() {
            out.push((self.names[2 * i].as_str(), w.view().into_dyn()));
            out.push((self.names[2 * i + 1].as_str(), b.view().into_dyn()));
        }
        out
    }

    fn grads(&self) -> Named<'_, F> {
        let mut out = Vec::new();
        for (i, (w, b)) in self.d_w.iter().zip(&self.d_b).enumerate() {
            out.push((self.names[2 * i].as_str(), w.view().into_dyn()));
            out.push((self.names[2 * i + 1].as_str(), b.view().into_dyn()));
        }
        out
    }
}
