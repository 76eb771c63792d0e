//! Gradient checking, as the lecture does it: the gradients nnc derives (the generated
//! `loss_and_grad`) against numerical ones computed here in f64, per parameter, and
//! how the numerical estimate degrades with a one-sided difference or a tiny `h`.
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Difference, Result};
use nnc::Model;
use nnc::ndarray::ArrayD;
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::gradcheck::relative_error;
use nnc::runtime::{NamedInputs, TensorSet};

nnc::net! {
    // A small smooth classifier (tanh, so no kinks for a difference to straddle).
    model small_mlp {
        dtype f64;
        dim N, D = 2, H = 16, K = 3;
        const reg = 1e-3;
        input x: [N, D];
        input labels: index[N];
        param w1: [D, H] = xavier;
        param b1: [H] = normal(0, 0.1);
        param w2: [H, K] = xavier;
        param b2: [K] = normal(0, 0.1);

        let hidden = tanh(x @ w1 + b1);
        let scores = hidden @ w2 + b2;
        loss softmax_cross_entropy(scores, labels) + 0.5 * reg * (l2(w1) + l2(w2));
    }
}

use small_mlp::SmallMlp;

/// Relative errors are relative to at least this (below it, they are absolute).
pub const TINY: f64 = 1e-10;

/// The largest relative error of one parameter's gradient.
#[derive(Clone, Debug)]
pub struct ParamError {
    pub name: &'static str,
    pub elements: usize,
    pub central: f64,
    pub one_sided: f64,
}

/// One row of the step-size table: the worst relative error over all parameters.
#[derive(Clone, Debug)]
pub struct StepRow {
    pub h: f64,
    pub central: f64,
    pub one_sided: f64,
}

#[derive(Clone, Debug)]
pub struct Report {
    /// The step of the per-parameter comparison.
    pub h: f64,
    pub per_param: Vec<ParamError>,
    pub steps: Vec<StepRow>,
}

/// The step sizes of the table, 1e-1 down to 1e-13.
pub fn step_sizes() -> Vec<f64> {
    (1..=13).map(|k| 10f64.powi(-k)).collect()
}

/// Checks the derived gradients of `small_mlp` on a spiral of `points` per class.
pub fn run(points: usize, seed: u64) -> Result<Report> {
    let mut rng = StdRng::seed_from_u64(seed);
    let (x, labels) = common::spiral(points, 3, &mut rng);
    let params = SmallMlp::init_params(&mut rng);
    let inputs = NamedInputs {
        floats: vec![("x".into(), x.into_dyn())],
        indices: vec![("labels".into(), labels.into_dyn())],
    };

    // The derived gradients: the generated code's backward pass.
    let bound = SmallMlp::bind_inputs(&inputs)?;
    let mut ws = SmallMlp::workspace(&bound);
    let mut grads = SmallMlp::zero_grads(&bound);
    small_mlp::loss_and_grad(&params, &bound, &mut ws, &mut grads)?;
    let analytic: common::Gradients = grads
        .tensors()
        .into_iter()
        .map(|(name, g)| (name, g.to_owned()))
        .collect();

    let compare = |h: f64, difference: Difference| -> Result<Vec<f64>> {
        let (numerical, _) =
            common::numerical_gradient::<SmallMlp>(&params, &inputs, h, difference)?;
        Ok(analytic
            .iter()
            .zip(&numerical)
            .map(|((_, a), (_, n))| worst(a, n))
            .collect())
    };
    let h = 1e-5;
    let (central, one_sided) = (
        compare(h, Difference::Central)?,
        compare(h, Difference::OneSided)?,
    );
    let per_param = analytic
        .iter()
        .zip(central.iter().zip(&one_sided))
        .map(|((name, a), (&central, &one_sided))| ParamError {
            name,
            elements: a.len(),
            central,
            one_sided,
        })
        .collect();
    let max = |errors: Vec<f64>| errors.into_iter().fold(0.0, f64::max);
    let mut steps = vec![];
    for h in step_sizes() {
        steps.push(StepRow {
            h,
            central: max(compare(h, Difference::Central)?),
            one_sided: max(compare(h, Difference::OneSided)?),
        });
    }
    Ok(Report {
        h,
        per_param,
        steps,
    })
}

/// The largest elementwise relative error `|a - n| / max(|a|, |n|, TINY)`: the
/// runtime checker's formula with no noise discounted (this lesson shows the noise).
fn worst(analytic: &ArrayD<f64>, numerical: &ArrayD<f64>) -> f64 {
    analytic
        .iter()
        .zip(numerical)
        .map(|(&a, &n)| relative_error(a, n, 0.0, TINY))
        .fold(0.0, f64::max)
}
