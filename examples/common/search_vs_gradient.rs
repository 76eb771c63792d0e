//! The lecture's ways to optimise a loss, on one model: a linear softmax classifier
//! of the (normalised) digits. Random search; gradient descent with numerical
//! gradients (central differences, two loss evaluations per weight per step); and
//! gradient descent with the gradients nnc derives (one `loss_and_grad` per step).
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Difference, Result};
use nnc::Model;
use nnc::ndarray::{Axis, Ix2};
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::data::Normalise;
use nnc::runtime::optim::{Optimizer, Sgd};
use nnc::runtime::{NamedInputs, TensorSet};
use std::time::{Duration, Instant};

nnc::net! {
    model linear_softmax {
        dtype f64;
        dim N, D = 64, C = 10;
        const reg = 1e-4;
        input x: [N, D];
        input labels: index[N];
        param w: [D, C] = normal(0, 0.001);
        param b: [C] = zeros;

        let scores = x @ w + b;
        output predicted = argmax(scores, axis = 1);
        loss softmax_cross_entropy(scores, labels) + 0.5 * reg * l2(w);
    }
}

use linear_softmax::LinearSoftmax;

/// The experiment's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Random weight draws tried by random search.
    pub random_tries: usize,
    /// Scale of random search's draws: w ~ normal(0, scale).
    pub random_scale: f64,
    /// Gradient descent steps with numerical gradients.
    pub numerical_steps: usize,
    /// Gradient descent steps with the derived gradients.
    pub analytic_steps: usize,
    /// Step size of both gradient descents.
    pub lr: f64,
    /// `h` of the numerical gradient's central differences.
    pub h: f64,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            // As many loss evaluations as the numerical gradient descent's 20 steps.
            random_tries: 26_000,
            random_scale: 0.1,
            numerical_steps: 20,
            analytic_steps: 300,
            lr: 0.5,
            h: 1e-5,
            seed: 0,
        }
    }
}

/// One method's run.
#[derive(Clone, Debug)]
pub struct Method {
    pub name: String,
    /// (seconds since the start, best training loss so far).
    pub curve: Vec<(f64, f64)>,
    /// Training losses after each step (gradient descents only).
    pub step_losses: Vec<f64>,
    /// How many times the loss (or loss and gradient) was evaluated.
    pub evaluations: usize,
    pub seconds: f64,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
}

impl Method {
    pub fn final_loss(&self) -> f64 {
        self.curve.last().map_or(f64::NAN, |&(_, l)| l)
    }
}

#[derive(Clone, Debug)]
pub struct Report {
    pub parameters: usize,
    pub methods: Vec<Method>,
}

/// Runs the three methods from the same starting weights on the same data.
pub fn run(config: &Config) -> Result<Report> {
    let (x, labels) = common::digits()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (train_rows, test_rows) = common::split(x.nrows(), 0.2, &mut rng);
    let train_x = x.select(Axis(0), &train_rows);
    let normalise = Normalise::fit(train_x.view().into_dyn())?;
    let data = |rows: &[usize]| -> Result<NamedInputs<f64>> {
        let x = normalise
            .transform(x.select(Axis(0), rows).into_dyn().view())?
            .into_dimensionality::<Ix2>()?;
        Ok(NamedInputs {
            floats: vec![("x".into(), x.into_dyn())],
            indices: vec![("labels".into(), labels.select(Axis(0), rows).into_dyn())],
        })
    };
    let (train, test) = (data(&train_rows)?, data(&test_rows)?);
    let start = LinearSoftmax::init_params(&mut rng);
    let parameters = start.tensors().iter().map(|(_, t)| t.len()).sum();

    let methods = vec![
        random_search(config, &start, &train, &test, &mut rng)?,
        descend(
            Gradient::Numerical,
            config.numerical_steps,
            config,
            &start,
            &train,
            &test,
        )?,
        descend(
            Gradient::Derived,
            config.analytic_steps,
            config,
            &start,
            &train,
            &test,
        )?,
    ];
    Ok(Report {
        parameters,
        methods,
    })
}

/// Strategy 1: draw weights at random, keep the best.
fn random_search(
    config: &Config,
    start: &linear_softmax::Params,
    train: &NamedInputs<f64>,
    test: &NamedInputs<f64>,
    rng: &mut StdRng,
) -> Result<Method> {
    let inputs = LinearSoftmax::bind_inputs(train)?;
    let mut ws = LinearSoftmax::workspace(&inputs);
    let mut best = start.clone();
    let mut best_loss = linear_softmax::loss(&best, &inputs, &mut ws)?;
    let mut candidate = start.clone();
    let clock = Instant::now();
    let mut curve = vec![(0.0, best_loss)];
    let bar = common::progress(config.random_tries as u64, "random");
    for k in 0..config.random_tries {
        candidate.w = common::standard_normal(64, 10, rng) * config.random_scale;
        let loss = linear_softmax::loss(&candidate, &inputs, &mut ws)?;
        if loss < best_loss {
            best_loss = loss;
            std::mem::swap(&mut best, &mut candidate);
        }
        if k % 500 == 0 || k + 1 == config.random_tries {
            curve.push((clock.elapsed().as_secs_f64(), best_loss));
            bar.set_position(k as u64);
            bar.set_message(format!("best loss {best_loss:.4}"));
        }
    }
    bar.finish_and_clear();
    let seconds = clock.elapsed().as_secs_f64();
    finish(
        "random search",
        curve,
        vec![],
        config.random_tries + 1,
        seconds,
        &best,
        train,
        test,
    )
}

/// Where gradient descent gets its gradient from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Gradient {
    /// Central differences of the loss, two evaluations per weight.
    Numerical,
    /// The generated `loss_and_grad`.
    Derived,
}

/// Strategy 3: follow the gradient, for `steps` steps. Only the steps are timed, not
/// the loss recorded after each.
fn descend(
    gradient: Gradient,
    steps: usize,
    config: &Config,
    start: &linear_softmax::Params,
    train: &NamedInputs<f64>,
    test: &NamedInputs<f64>,
) -> Result<Method> {
    let inputs = LinearSoftmax::bind_inputs(train)?;
    let mut ws = LinearSoftmax::workspace(&inputs);
    let mut grads = LinearSoftmax::zero_grads(&inputs);
    let mut params = start.clone();
    let mut sgd = Sgd::new(config.lr);
    let mut spent = Duration::ZERO;
    let mut curve = vec![(0.0, linear_softmax::loss(&params, &inputs, &mut ws)?)];
    let mut step_losses = vec![];
    let mut evaluations = 0;
    let (name, label) = match gradient {
        Gradient::Numerical => ("GD, numerical gradient", "numerical"),
        Gradient::Derived => ("GD, derived gradient", "derived"),
    };
    let bar = common::progress(steps as u64, label);
    for _ in 0..steps {
        let clock = Instant::now();
        match gradient {
            Gradient::Numerical => {
                let (numerical, count) = common::numerical_gradient::<LinearSoftmax>(
                    &params,
                    train,
                    config.h,
                    Difference::Central,
                )?;
                evaluations += count;
                for ((_, mut g), (_, n)) in grads.tensors_mut().into_iter().zip(&numerical) {
                    g.assign(n);
                }
            }
            Gradient::Derived => {
                linear_softmax::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
                evaluations += 1;
            }
        }
        sgd.step(&mut params, &grads)?;
        spent += clock.elapsed();
        let loss = linear_softmax::loss(&params, &inputs, &mut ws)?;
        curve.push((spent.as_secs_f64(), loss));
        step_losses.push(loss);
        bar.inc(1);
        bar.set_message(format!("loss {loss:.4}"));
    }
    bar.finish_and_clear();
    finish(
        name,
        curve,
        step_losses,
        evaluations,
        spent.as_secs_f64(),
        &params,
        train,
        test,
    )
}

/// Accuracies of the final weights, and the method's record.
#[allow(
    clippy::too_many_arguments,
    reason = "a private constructor of the record"
)]
fn finish(
    name: &str,
    curve: Vec<(f64, f64)>,
    step_losses: Vec<f64>,
    evaluations: usize,
    seconds: f64,
    params: &linear_softmax::Params,
    train: &NamedInputs<f64>,
    test: &NamedInputs<f64>,
) -> Result<Method> {
    Ok(Method {
        name: name.to_string(),
        curve,
        step_losses,
        evaluations,
        seconds,
        train_accuracy: accuracy(params, train)?,
        test_accuracy: accuracy(params, test)?,
    })
}

fn accuracy(params: &linear_softmax::Params, data: &NamedInputs<f64>) -> Result<f64> {
    let inputs = LinearSoftmax::bind_inputs(data)?;
    let mut ws = LinearSoftmax::workspace(&inputs);
    let predicted = linear_softmax::forward(params, &inputs, &mut ws)?
        .predicted
        .to_vec();
    Ok(common::accuracy(&predicted, &inputs.labels.to_vec()))
}
