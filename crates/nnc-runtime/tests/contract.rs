//! The generic runtime (gradient checks, npz, optimisers, batching) driven through
//! hand-written `Model` implementations, as generated models will drive it.

mod support;

use std::error::Error;

use nnc_runtime::data::{BatchConfig, BatchInputs, Minibatches};
use nnc_runtime::gradcheck::{GradCheckConfig, GradCheckError, check_gradients};
use nnc_runtime::init::{Init, fill};
use nnc_runtime::ndarray::{Array2, ArrayD, IxDyn, arr1, arr2};
use nnc_runtime::num_traits::ToPrimitive;
use nnc_runtime::optim::{Adam, AdamConfig, Optimizer, Sgd};
use nnc_runtime::rand::SeedableRng;
use nnc_runtime::rand::rngs::StdRng;
use nnc_runtime::{Float, Model, NamedInputs, OutputValue, ShapeError, TensorSet, npz};

use support::linear::{self, Linear, WrongBias};
use support::softmax::{self, Softmax};

/// `shape` filled with standard normals from `seed`.
fn normal<F: Float>(shape: &[usize], seed: u64) -> ArrayD<F> {
    let mut a = ArrayD::zeros(IxDyn(shape));
    fill(
        &mut a.view_mut(),
        Init::Normal {
            mean: 0.0,
            std: 1.0,
        },
        &mut StdRng::seed_from_u64(seed),
    );
    a
}

/// Linear regression data: `y = x @ w_true + b_true` plus a little noise.
fn linear_data(n: usize, seed: u64) -> NamedInputs<f64> {
    let x: Array2<f64> = normal(&[n, linear::D], seed)
        .into_dimensionality()
        .expect("rank 2");
    let w_true = arr2(&[[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]]);
    let noise = normal::<f64>(&[n, linear::K], seed + 1) * 0.01;
    let y = x.dot(&w_true) + &arr1(&[0.5, -0.25]) + noise;
    NamedInputs {
        floats: vec![("x".into(), x.into_dyn()), ("y".into(), y.into_dyn())],
        indices: vec![],
    }
}

/// Three well-separated classes in 4-D: class `c` centred at `3 e_c`.
fn softmax_data(n: usize, seed: u64) -> NamedInputs<f32> {
    let mut x = normal::<f32>(&[n, softmax::D], seed);
    let labels: ArrayD<usize> = ArrayD::from_shape_fn(IxDyn(&[n]), |i| i[0] % softmax::C);
    for (i, &l) in labels.iter().enumerate() {
        x[[i, l]] += 3.0;
    }
    NamedInputs {
        floats: vec![("x".into(), x)],
        indices: vec![("labels".into(), labels)],
    }
}

/// Linear's parameters, with a non-zero bias so that every gradient is non-trivial.
fn linear_params() -> linear::Params {
    let mut params = Linear::init_params(&mut StdRng::seed_from_u64(7));
    params.b = arr1(&[0.3, -0.7]);
    params
}

// ---------------------------------------------------------------------------------
// The hand-written models themselves
// ---------------------------------------------------------------------------------

#[test]
fn bind_inputs_names_the_input_the_dim_and_both_sizes() {
    let mut data = linear_data(5, 1);
    data.floats[1].1 = ArrayD::zeros(IxDyn(&[4, 2]));
    let err = Linear::bind_inputs(&data)
        .err()
        .expect("y has 4 rows, x has 5");
    assert_eq!(
        err.to_string(),
        "input `y`: axis 0 (dim `N`) has size 4, expected 5"
    );

    let mut data = softmax_data(4, 1);
    data.indices[0].1[[2]] = 3;
    let err = Softmax::bind_inputs(&data)
        .err()
        .expect("label 3 of 3 classes");
    assert_eq!(
        err.to_string(),
        "input `labels`: index 3 at position 2 is out of range for `C` = 3"
    );
}

#[test]
fn init_params_follow_the_declared_initialisers() {
    let p = Softmax::init_params(&mut StdRng::seed_from_u64(3));
    assert!(p.b.iter().all(|&b| b == 0.0));
    assert!(
        p.w.iter().all(|&w| w != 0.0 && w.abs() < 0.05),
        "normal(0, 0.01): {}",
        p.w
    );
    assert_eq!(
        p,
        Softmax::init_params(&mut StdRng::seed_from_u64(3)),
        "seeded"
    );
}

// ---------------------------------------------------------------------------------
// Gradient checking
// ---------------------------------------------------------------------------------

#[test]
fn correct_gradients_pass_including_grad_inputs() {
    let config = GradCheckConfig::for_type::<f64>();
    let report =
        check_gradients::<Linear>(&linear_params(), &linear_data(5, 2), &config).expect("runs");
    assert!(report.passed(), "{report}");
    let checked: Vec<(&str, usize, usize)> = report
        .tensors
        .iter()
        .map(|t| (t.name.as_str(), t.directions, t.checked))
        .collect();
    assert_eq!(checked, vec![("w", 4, 6), ("b", 4, 2), ("x", 4, 15)]);
    // Central differences are exact for a quadratic but for round-off.
    assert!(
        report
            .tensors
            .iter()
            .all(|t| t.max_error_beyond_noise < 1e-8),
        "{report}"
    );
}

#[test]
fn at_most_k_elements_are_checked_per_tensor() {
    let config = GradCheckConfig {
        samples_per_tensor: 4,
        ..GradCheckConfig::for_type::<f64>()
    };
    let report =
        check_gradients::<Linear>(&linear_params(), &linear_data(5, 2), &config).expect("runs");
    let checked: Vec<usize> = report.tensors.iter().map(|t| t.checked).collect();
    assert_eq!(checked, vec![4, 2, 4]);
}

#[test]
fn a_wrong_gradient_fails_and_is_pinned_to_its_tensor() {
    let config = GradCheckConfig::for_type::<f64>();
    let report =
        check_gradients::<WrongBias>(&linear_params(), &linear_data(5, 2), &config).expect("runs");
    assert!(!report.passed(), "{report}");
    let b = report.tensor("b").expect("b is checked");
    // Analytic = numerical / 2, so |a - n| / max(|a|, |n|) = 1/2.
    assert!((b.max_relative_error - 0.5).abs() < 1e-6, "{report}");
    assert!(report.tensor("w").expect("w").max_relative_error < 1e-8);
    assert!(report.tensor("x").expect("x").max_relative_error < 1e-8);
    let text = report.to_string();
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("d_b "))
        .unwrap_or_else(|| panic!("{text}"));
    assert!(line.contains("max relative error 5.00e-1"), "{line}");
    assert!(line.ends_with("FAILED"), "{line}");
    assert!(text.contains("      worst at "), "{text}");
}

#[test]
fn softmax_gradients_pass_in_f32() {
    let mut params = Softmax::init_params(&mut StdRng::seed_from_u64(1));
    params.w.mapv_inplace(|w| w * 30.0);
    let config = GradCheckConfig::for_type::<f32>();
    let report = check_gradients::<Softmax>(&params, &softmax_data(6, 3), &config).expect("runs");
    assert!(report.passed(), "{report}");
    assert_eq!(report.tensors.len(), 2);
}

#[test]
fn gradient_checks_report_bad_inputs() {
    let mut data = linear_data(5, 2);
    data.floats.push(("z".into(), ArrayD::zeros(IxDyn(&[1]))));
    let err =
        check_gradients::<Linear>(&linear_params(), &data, &GradCheckConfig::for_type::<f64>());
    let expected = ShapeError::Unexpected {
        model: "linear".into(),
        name: "z".into(),
    };
    assert_eq!(err.err(), Some(GradCheckError::Shape(expected)));
}

// ---------------------------------------------------------------------------------
// npz files with a model
// ---------------------------------------------------------------------------------

#[test]
fn a_models_params_inputs_and_results_round_trip() {
    let dir = tempfile::tempdir().expect("temp dir");
    let params = linear_params();
    npz::save_params::<Linear>(&dir.path().join("params.npz"), &params).expect("saved");
    let loaded = npz::load_params::<Linear>(&dir.path().join("params.npz")).expect("loaded");
    assert_eq!(loaded, params);

    let data = linear_data(4, 5);
    npz::save_inputs(&dir.path().join("inputs.npz"), &data).expect("saved");
    let read: NamedInputs<f64> =
        npz::load_inputs(&dir.path().join("inputs.npz"), Linear::signature()).expect("loaded");
    let inputs = Linear::bind_inputs(&read).expect("binds");
    let mut ws = Linear::workspace(&inputs);
    let mut grads = Linear::zero_grads(&inputs);
    let loss = Linear::loss_and_grad(&params, &inputs, &mut ws, &mut grads).expect("runs");
    let outputs = Linear::outputs(&params, &inputs, &mut ws).expect("runs");

    let path = dir.path().join("results.npz");
    npz::NpzBundle::results(loss, &outputs, &grads)
        .save(&path)
        .expect("saved");
    let mut reader =
        ndarray_npy::NpzReader::new(std::fs::File::open(&path).expect("exists")).expect("npz");
    assert_eq!(
        reader.names().expect("names"),
        vec!["loss", "output.pred", "grad.w", "grad.b", "grad.x"]
    );
    let saved_loss: nnc_runtime::ndarray::Array0<f64> = reader.by_name("loss").expect("loss");
    assert_eq!(saved_loss.into_scalar(), loss);
    let grad_x: ArrayD<f64> = reader.by_name("grad.x").expect("grad.x");
    assert_eq!(grad_x, grads.x.into_dyn());
}

#[test]
fn npz_inputs_for_an_f32_model_bind_and_predict() {
    let dir = tempfile::tempdir().expect("temp dir");
    let path = dir.path().join("inputs.npz");
    npz::save_inputs(&path, &softmax_data(6, 1)).expect("saved");
    let data: NamedInputs<f32> = npz::load_inputs(&path, Softmax::signature()).expect("loaded");
    let inputs = Softmax::bind_inputs(&data).expect("binds");
    let mut params = Softmax::init_params(&mut StdRng::seed_from_u64(0));
    params.w = Array2::eye(4).slice_move(nnc_runtime::ndarray::s![.., ..3]);
    let outputs =
        Softmax::outputs(&params, &inputs, &mut Softmax::workspace(&inputs)).expect("runs");
    // With w = I, the predicted class is the arg-max feature: the true class here.
    let expected = OutputValue::Index(arr1(&[0usize, 1, 2, 0, 1, 2]).into_dyn());
    assert_eq!(outputs, vec![("class", expected)]);
}

// ---------------------------------------------------------------------------------
// Training: minibatches, batch buffers and optimisers together
// ---------------------------------------------------------------------------------

/// The training loop generic code writes once for every model: returns the mean loss
/// of each epoch.
fn train<M: Model>(
    params: &mut M::Params,
    data: &NamedInputs<M::Float>,
    opt: &mut impl Optimizer<M::Float>,
    epochs: usize,
    batch_size: usize,
) -> Result<Vec<f64>, Box<dyn Error>> {
    let samples = data.floats[0].1.shape()[0];
    let mut batches = Minibatches::new(
        samples,
        BatchConfig {
            batch_size,
            seed: 0,
            drop_last: true,
        },
    )?;
    let mut buffers = BatchInputs::new(data, batch_size)?;
    let first: Vec<usize> = (0..batch_size).collect();
    let (mut ws, mut grads) = {
        let inputs = M::bind_inputs(buffers.gather(data, &first)?)?;
        (M::workspace(&inputs), M::zero_grads(&inputs))
    };
    let mut losses = Vec::with_capacity(epochs);
    for _ in 0..epochs {
        let mut total = 0.0;
        for rows in batches.epoch() {
            let inputs = M::bind_inputs(buffers.gather(data, rows)?)?;
            let loss = M::loss_and_grad(params, &inputs, &mut ws, &mut grads)?;
            opt.step(params, &grads)?;
            total += loss.to_f64().unwrap_or(f64::NAN);
        }
        losses.push(total / batches.batches_per_epoch() as f64);
    }
    Ok(losses)
}

#[test]
fn sgd_recovers_linear_regression_weights() {
    let data = linear_data(200, 11);
    let mut params = Linear::init_params(&mut StdRng::seed_from_u64(0));
    let losses = train::<Linear>(&mut params, &data, &mut Sgd::new(0.01), 30, 20).expect("trains");
    assert!(losses[29] < 0.01 * losses[0], "{losses:?}");
    let w_true = arr2(&[[1.0, -2.0], [0.5, 0.0], [-1.0, 3.0]]);
    for (w, t) in params.w.iter().zip(&w_true) {
        assert!((w - t).abs() < 0.01, "w = {}", params.w);
    }
    for (b, t) in params.b.iter().zip(&[0.5, -0.25]) {
        assert!((b - t).abs() < 0.01, "b = {}", params.b);
    }
}

#[test]
fn adam_trains_a_softmax_classifier() {
    let data = softmax_data(300, 4);
    let mut params = Softmax::init_params(&mut StdRng::seed_from_u64(0));
    let mut adam = Adam::new(
        &params,
        AdamConfig {
            lr: 0.05,
            ..AdamConfig::default()
        },
    );
    let losses = train::<Softmax>(&mut params, &data, &mut adam, 20, 30).expect("trains");
    assert!(
        losses[19] < 0.2 && losses[19] < losses[0] / 4.0,
        "{losses:?}"
    );
    assert_eq!(adam.steps(), 20 * 10);

    let inputs = Softmax::bind_inputs(&data).expect("binds");
    let outputs =
        Softmax::outputs(&params, &inputs, &mut Softmax::workspace(&inputs)).expect("runs");
    let [(_, OutputValue::Index(class))] = outputs.as_slice() else {
        panic!("one index output: {outputs:?}")
    };
    let correct = class
        .iter()
        .zip(data.indices[0].1.iter())
        .filter(|(c, l)| c == l)
        .count();
    assert!(correct >= 280, "{correct} of 300 correct");
}

#[test]
fn grads_of_grad_inputs_do_not_disturb_the_optimiser() {
    // Linear's Grads hold `x` after the parameters; SGD must update only `w` and `b`.
    let data = linear_data(3, 1);
    let inputs = Linear::bind_inputs(&data).expect("binds");
    let mut params = linear_params();
    let before = params.clone();
    let mut grads = Linear::zero_grads(&inputs);
    Linear::loss_and_grad(
        &params,
        &inputs,
        &mut Linear::workspace(&inputs),
        &mut grads,
    )
    .expect("runs");
    Sgd::new(0.1).step(&mut params, &grads).expect("steps");
    let expected_w = &before.w - &(&grads.w * 0.1);
    assert_eq!(params.w, expected_w);
    assert_eq!(params.tensors().len(), 2);
}
