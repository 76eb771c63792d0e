//! The 8x8 digits (data/digits.csv.gz) classified by an MLP written with `net!`:
//! normalised with the training set's statistics, trained by minibatch SGD, momentum
//! and Adam from the same start.
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Result};
use nnc::Model;
use nnc::ndarray::{Array1, Array2, Axis, Ix2};
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::NamedInputs;
use nnc::runtime::data::{BatchConfig, BatchInputs, Minibatches, Normalise};
use nnc::runtime::optim::{Adam, AdamConfig, Momentum, MomentumConfig, Optimizer, Sgd};

nnc::net! {
    // 64 pixels, one hidden ReLU layer of 128 units, 10 classes.
    model digits_mlp {
        dtype f64;
        dim N, D = 64, H = 128, C = 10;
        const reg = 1e-4;
        input x: [N, D];
        input labels: index[N];
        param w1: [D, H] = he;
        param b1: [H] = zeros;
        param w2: [H, C] = xavier;
        param b2: [C] = zeros;

        let hidden = relu(x @ w1 + b1);
        let scores = hidden @ w2 + b2;
        output predicted = argmax(scores, axis = 1);
        loss softmax_cross_entropy(scores, labels) + 0.5 * reg * (l2(w1) + l2(w2));
    }
}

use digits_mlp::DigitsMlp;

/// The experiment's settings.
#[derive(Clone, Debug)]
pub struct Config {
    pub epochs: usize,
    pub batch_size: usize,
    /// Fraction of the images held out for testing.
    pub test_fraction: f64,
    /// Step sizes: plain SGD, SGD with momentum 0.9, Adam.
    pub sgd_lr: f64,
    pub momentum_lr: f64,
    pub adam_lr: f64,
    pub seed: u64,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            epochs: 30,
            batch_size: 32,
            test_fraction: 0.2,
            sgd_lr: 0.02,
            momentum_lr: 0.02,
            adam_lr: 1e-3,
            seed: 0,
        }
    }
}

/// One optimiser's run.
#[derive(Clone, Debug)]
pub struct Run {
    pub optimiser: String,
    /// Loss on the whole training set before training and after each epoch.
    pub losses: Vec<f64>,
    pub train_accuracy: f64,
    pub test_accuracy: f64,
    /// `confusion[true][predicted]`: test images.
    pub confusion: [[usize; 10]; 10],
}

/// The three runs, with the data set's sizes.
#[derive(Clone, Debug)]
pub struct Report {
    pub train_size: usize,
    pub test_size: usize,
    pub runs: Vec<Run>,
}

/// A data set as the model's named inputs.
fn named(x: Array2<f64>, labels: Array1<usize>) -> NamedInputs<f64> {
    NamedInputs {
        floats: vec![("x".into(), x.into_dyn())],
        indices: vec![("labels".into(), labels.into_dyn())],
    }
}

/// Loads, splits and normalises the digits, then trains one network per optimiser.
pub fn run(config: &Config) -> Result<Report> {
    let (x, labels) = common::digits()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let (train_rows, test_rows) = common::split(x.nrows(), config.test_fraction, &mut rng);
    // Zero-centred and normalised, (x - mean) / std per pixel, with statistics from the
    // training images only, applied to both sets.
    let train_x = x.select(Axis(0), &train_rows);
    let normalise = Normalise::fit(train_x.view().into_dyn())?;
    let train_x = normalise
        .transform(train_x.view().into_dyn())?
        .into_dimensionality::<Ix2>()?;
    let test_x = normalise
        .transform(x.select(Axis(0), &test_rows).into_dyn().view())?
        .into_dimensionality::<Ix2>()?;
    let train = named(train_x, labels.select(Axis(0), &train_rows));
    let test = named(test_x, labels.select(Axis(0), &test_rows));

    let start = DigitsMlp::init_params(&mut rng);
    let runs = vec![
        train_with(
            "SGD",
            Sgd::new(config.sgd_lr),
            &start,
            &train,
            &test,
            config,
        )?,
        train_with(
            "momentum",
            Momentum::new(
                &start,
                MomentumConfig {
                    lr: config.momentum_lr,
                    momentum: 0.9,
                },
            ),
            &start,
            &train,
            &test,
            config,
        )?,
        train_with(
            "Adam",
            Adam::new(
                &start,
                AdamConfig {
                    lr: config.adam_lr,
                    ..AdamConfig::default()
                },
            ),
            &start,
            &train,
            &test,
            config,
        )?,
    ];
    Ok(Report {
        train_size: train_rows.len(),
        test_size: test_rows.len(),
        runs,
    })
}

/// Minibatch training from `start` with `opt`.
fn train_with(
    name: &str,
    mut opt: impl Optimizer<f64>,
    start: &digits_mlp::Params,
    train: &NamedInputs<f64>,
    test: &NamedInputs<f64>,
    config: &Config,
) -> Result<Run> {
    let mut params = start.clone();
    let whole = DigitsMlp::bind_inputs(train)?;
    let mut whole_ws = DigitsMlp::workspace(&whole);
    let samples = whole.dims()?.n;
    // The same batches, in the same order, for every optimiser.
    let batching = BatchConfig {
        batch_size: config.batch_size,
        seed: config.seed,
        drop_last: false,
    };
    let mut batches = Minibatches::new(samples, batching)?;
    let mut buffers = BatchInputs::new(train, config.batch_size)?;
    let mut ws = digits_mlp::Workspace::default(); // grows to the batch size on first use
    let mut grads = DigitsMlp::zero_grads(&whole);

    let mut losses = vec![digits_mlp::loss(&params, &whole, &mut whole_ws)?];
    let bar = common::progress(config.epochs as u64, name);
    for _ in 0..config.epochs {
        for rows in batches.epoch() {
            let inputs = DigitsMlp::bind_inputs(buffers.gather(train, rows)?)?;
            digits_mlp::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
            opt.step(&mut params, &grads)?;
        }
        let loss = digits_mlp::loss(&params, &whole, &mut whole_ws)?;
        losses.push(loss);
        bar.inc(1);
        bar.set_message(format!("training loss {loss:.4}"));
    }
    bar.finish_and_clear();

    let (train_accuracy, _) = evaluate(&params, train)?;
    let (test_accuracy, confusion) = evaluate(&params, test)?;
    Ok(Run {
        optimiser: name.to_string(),
        losses,
        train_accuracy,
        test_accuracy,
        confusion,
    })
}

/// Accuracy and confusion matrix on a data set.
fn evaluate(
    params: &digits_mlp::Params,
    data: &NamedInputs<f64>,
) -> Result<(f64, [[usize; 10]; 10])> {
    let inputs = DigitsMlp::bind_inputs(data)?;
    let mut ws = DigitsMlp::workspace(&inputs);
    let predicted = digits_mlp::forward(params, &inputs, &mut ws)?
        .predicted
        .to_vec();
    let labels = inputs.labels.to_vec();
    let mut confusion = [[0; 10]; 10];
    for (&p, &l) in predicted.iter().zip(&labels) {
        confusion[l][p] += 1;
    }
    Ok((common::accuracy(&predicted, &labels), confusion))
}
