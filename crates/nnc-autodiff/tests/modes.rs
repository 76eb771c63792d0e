//! Dropout and batch norm in the training step: the derivation (`nnc grad`), the
//! forward values of batch norm against a hand computation, and the gradients
//! against central differences in f64 with the dropout mask held fixed.

use ndarray::{Array1, Array2, ArrayD, Axis};
use nnc_autodiff::gradcheck::{Options, gradcheck};
use nnc_autodiff::{Format, derive};
use nnc_ir::Mode;
use nnc_ir::interp::{Bindings, Value, evaluate};

const SMALL: &str = "model bn {
    dtype f64;
    dim N, D = 4, C = 3;
    input x: [N, D];
    input labels: index[N];
    param w: [D, D] = xavier;
    param w_out: [D, C] = xavier;
    param gamma: [D] = ones;
    param beta: [D] = zeros;
    state mu: [D] = zeros;
    state var: [D] = ones;
    let h = tanh(x @ w);
    let d = dropout(h, 0.25);
    let b = batch_norm(d, gamma, beta, mu, var, momentum = 0.9);
    output b;
    loss softmax_cross_entropy(b @ w_out, labels);
}
";

fn model(source: &str, mode: Mode) -> nnc_ir::Model {
    nnc_ir::compile_source_in(source, mode)
        .unwrap_or_else(|d| panic!("{d:?}"))
        .remove(0)
}

#[test]
fn the_derivation_of_dropout_and_batch_norm() {
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/models/deep_dropout_bn.nn"
    );
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let model = model(&source, Mode::Train);
    insta::assert_snapshot!(derive(&model).expect("differentiates").render(Format::Text));
}

#[test]
fn gradients_pass_central_differences_with_the_mask_held_fixed() {
    for seed in 0..4 {
        let options = Options {
            batch: 16,
            seed,
            ..Options::default()
        };
        let report =
            gradcheck(&model(SMALL, Mode::Train), &options).unwrap_or_else(|e| panic!("{e}"));
        assert!(report.passed(), "{report}");
        assert_eq!(report.tensors.len(), 4);
    }
    // The model at its full size, at the default batch.
    let path = concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/models/deep_dropout_bn.nn"
    );
    let source = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{e}"));
    let report = gradcheck(&model(&source, Mode::Train), &Options::default())
        .unwrap_or_else(|e| panic!("{e}"));
    assert!(report.passed(), "{report}");
}

/// Batch norm's output in the training step, and in eval mode, by hand.
#[test]
fn batch_norm_values_by_hand_in_both_modes() {
    let x = Array2::from_shape_fn((5, 4), |(i, j)| ((i * 4 + j) as f64 * 0.9).sin());
    let labels = Array1::from_shape_fn(5, |i| i % 3);
    let w = Array2::from_shape_fn((4, 4), |(i, j)| if i == j { 1.0 } else { 0.1 });
    let gamma = Array1::from_vec(vec![1.0, 2.0, 0.5, 1.5]);
    let beta = Array1::from_vec(vec![0.0, -1.0, 0.5, 0.25]);
    let mask = Array2::from_shape_fn(
        (5, 4),
        |(i, j)| if (i + j) % 4 == 0 { 0.0 } else { 1.0 / 0.75 },
    );
    let mu = Array1::from_vec(vec![0.1, 0.2, -0.1, 0.0]);
    let var = Array1::from_vec(vec![1.0, 0.5, 2.0, 1.5]);
    let named = |m: &nnc_ir::Model, with_mask: bool| {
        let mut inputs = vec![
            ("x".to_string(), Value::Float(x.clone().into_dyn())),
            (
                "labels".to_string(),
                Value::Index(labels.clone().into_dyn()),
            ),
            ("mu".to_string(), Value::Float(mu.clone().into_dyn())),
            ("var".to_string(), Value::Float(var.clone().into_dyn())),
        ];
        if with_mask {
            inputs.push(("mask1".to_string(), Value::Float(mask.clone().into_dyn())));
        }
        let params = vec![
            ("w".to_string(), w.clone().into_dyn()),
            (
                "w_out".to_string(),
                ArrayD::from_shape_fn(vec![4, 3], |i| (i[0] + 2 * i[1]) as f64 * 0.1),
            ),
            ("gamma".to_string(), gamma.clone().into_dyn()),
            ("beta".to_string(), beta.clone().into_dyn()),
        ];
        Bindings::from_named(m, inputs, params).unwrap_or_else(|e| panic!("{e}"))
    };
    let h = x.dot(&w).mapv(f64::tanh);
    // Training: the batch's mean and biased variance of the dropped-out values.
    let train = model(SMALL, Mode::Train);
    let eval = evaluate(&train, &named(&train, true)).unwrap_or_else(|e| panic!("{e}"));
    let d = &h * &mask;
    let mean = d.mean_axis(Axis(0)).unwrap_or_else(|| panic!("empty"));
    let v = d.var_axis(Axis(0), 0.0);
    let by_hand = (&d - &mean) / v.mapv(|v| (v + 1e-5).sqrt()) * &gamma + &beta;
    close(eval.output("b"), &by_hand, "training");
    let updated = nnc_ir::modes::updated_state(&train, &eval);
    close(
        Some(&Value::Float(updated[0].1.clone())),
        &(&mu * 0.9 + &mean * 0.1),
        "mu",
    );
    close(
        Some(&Value::Float(updated[1].1.clone())),
        &(&var * 0.9 + &v * 0.1),
        "var",
    );
    // Eval: no mask, the running statistics.
    let inference = model(SMALL, Mode::Eval);
    let eval = evaluate(&inference, &named(&inference, false)).unwrap_or_else(|e| panic!("{e}"));
    let by_hand = (&h - &mu) / var.mapv(|v| (v + 1e-5).sqrt()) * &gamma + &beta;
    close(eval.output("b"), &by_hand, "eval");
    assert!(inference.state_updates.is_empty());
}

#[track_caller]
fn close<D: ndarray::Dimension>(
    got: Option<&Value<f64>>,
    expected: &ndarray::Array<f64, D>,
    what: &str,
) {
    let got = got
        .and_then(Value::as_float)
        .unwrap_or_else(|| panic!("{what}: no value"));
    assert_eq!(got.len(), expected.len(), "{what}");
    for (a, b) in got.iter().zip(expected.iter()) {
        assert!((a - b).abs() < 1e-12, "{what}: {a} vs {b}");
    }
}
