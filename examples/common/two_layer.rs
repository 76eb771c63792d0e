//! The lecture's 20-line numpy network (workload W1), compiled from the contract's
//! `two_layer.nn`: N = 64, 1000-100-10, sigmoid, sum of squares; x, y, w1 and w2
//! standard normal; `w -= 1e-4 * dw` for 2000 steps.
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Result};
use nnc::Model;
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::NamedInputs;
use nnc::runtime::gradcheck::{GradCheckConfig, GradCheckReport, check_gradients};

nnc::net!(file = "examples/models/two_layer.nn");

/// The experiment's settings.
#[derive(Clone, Debug)]
pub struct Config {
    /// Rows of x and y.
    pub n: usize,
    pub steps: usize,
    pub lr: f64,
    /// The step `h` of the gradient check's central differences.
    pub check_step: f64,
    /// Elements checked per parameter.
    pub check_samples: usize,
    pub seed: u64,
}

impl Default for Config {
    /// The lecture's: N = 64, 2000 steps of `w -= 1e-4 * dw`.
    fn default() -> Self {
        Config {
            n: 64,
            steps: 2000,
            lr: 1e-4,
            check_step: 1e-4,
            check_samples: 20,
            seed: 0,
        }
    }
}

/// What the run shows.
#[derive(Clone, Debug)]
pub struct Report {
    /// The loss before each step, then after the last one (`steps + 1` values).
    pub losses: Vec<f64>,
    /// The gradient check's report (worst element of each parameter).
    pub check: GradCheckReport,
}

/// Draws the data and the weights, checks the derived gradients against finite
/// differences once, then trains.
pub fn run(config: &Config) -> Result<Report> {
    let mut rng = StdRng::seed_from_u64(config.seed);
    let x = common::standard_normal(config.n, 1000, &mut rng);
    let y = common::standard_normal(config.n, 10, &mut rng);
    let mut params = two_layer::Params::init(&mut rng); // both normal(0, 1), as declared

    // Once, at the start: derived gradients against central differences.
    let named = NamedInputs {
        floats: vec![
            ("x".into(), x.clone().into_dyn()),
            ("y".into(), y.clone().into_dyn()),
        ],
        indices: vec![],
    };
    // The loss is ~4e4, so its round-off (~1e-11) divided by 2h bounds the numerical
    // gradient's accuracy: h = 1e-4 rather than the usual 1e-5.
    let check = GradCheckConfig {
        step: config.check_step,
        samples_per_tensor: config.check_samples,
        ..GradCheckConfig::for_type::<f64>()
    };
    let report = check_gradients::<two_layer::TwoLayer>(&params, &named, &check)?;

    // The training loop: typed inputs, workspace and gradients from the generated module.
    let inputs = two_layer::Inputs {
        x: x.view(),
        y: y.view(),
    };
    let mut ws = two_layer::Workspace::new(inputs.dims()?);
    let mut grads = two_layer::TwoLayer::zero_grads(&inputs);
    let bar = common::progress(config.steps as u64, "two_layer");
    let mut losses = Vec::with_capacity(config.steps + 1);
    for step in 0..config.steps {
        let loss = two_layer::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
        params.w1.scaled_add(-config.lr, &grads.w1); // w1 -= 1e-4 * dw1
        params.w2.scaled_add(-config.lr, &grads.w2);
        losses.push(loss);
        if step % 20 == 0 {
            bar.set_position(step as u64);
            bar.set_message(format!("loss {loss:.4e}"));
        }
    }
    losses.push(two_layer::loss(&params, &inputs, &mut ws)?);
    bar.finish_and_clear();
    Ok(Report {
        losses,
        check: report,
    })
}
