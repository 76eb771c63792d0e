//! The lecture's spiral classifier (workload W2), compiled from the contract's
//! `spiral.nn`: 3 classes of 100 points, 2-100-3 ReLU network with biases, softmax
//! cross-entropy plus L2, full-batch gradient descent with step 1.0.
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Result};
use nnc::ndarray::{Array1, Array2};
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::optim::{Optimizer, Sgd};

nnc::net!(file = "examples/models/spiral.nn");

/// The experiment's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Points per class (the model has 3 classes).
    pub points: usize,
    pub steps: usize,
    pub lr: f64,
    pub seed: u64,
}

impl Default for Config {
    /// The lecture's: 100 points per class, 10 000 steps of size 1.0.
    fn default() -> Self {
        Config {
            points: 100,
            steps: 10_000,
            lr: 1.0,
            seed: 0,
        }
    }
}

/// The trained classifier and how it got there.
#[derive(Clone, Debug)]
pub struct Report {
    pub x: Array2<f64>,
    pub labels: Array1<usize>,
    pub params: spiral::Params,
    /// The loss before each step, then after the last one.
    pub losses: Vec<f64>,
    /// Training accuracy after the last step.
    pub accuracy: f64,
}

/// Generates the spiral and trains the classifier on all of it.
pub fn run(config: &Config) -> Result<Report> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (x, labels) = common::spiral(config.points, 3, &mut rng);
    let mut params = spiral::Params::init(&mut rng);
    let inputs = spiral::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let mut ws = spiral::Workspace::new(inputs.dims()?);
    let mut grads = spiral::Grads::zeros(inputs.dims()?);
    let mut sgd = Sgd::new(config.lr);
    let bar = common::progress(config.steps as u64, "spiral");
    let mut losses = Vec::with_capacity(config.steps + 1);
    for step in 0..config.steps {
        let loss = spiral::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
        sgd.step(&mut params, &grads)?;
        losses.push(loss);
        if step % 100 == 0 {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4}"));
        }
    }
    bar.finish_and_clear();
    losses.push(spiral::loss(&params, &inputs, &mut ws)?);
    let predicted = classify(&params, &x)?;
    let accuracy = common::accuracy(
        &predicted,
        labels.as_slice().ok_or("labels are contiguous")?,
    );
    Ok(Report {
        x,
        labels,
        params,
        losses,
        accuracy,
    })
}

/// The class the network gives each row of `points` (the model's `predicted` output).
pub fn classify(params: &spiral::Params, points: &Array2<f64>) -> Result<Vec<usize>> {
    let labels = Array1::zeros(points.nrows()); // not used by `forward`, but an input
    let inputs = spiral::Inputs {
        x: points.view(),
        labels: labels.view(),
    };
    let mut ws = spiral::Workspace::new(inputs.dims()?);
    let outputs = spiral::forward(params, &inputs, &mut ws)?;
    Ok(outputs.predicted.to_vec())
}
