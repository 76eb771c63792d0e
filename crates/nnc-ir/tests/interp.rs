//! The reference interpreter: the lecture's worked numbers, a hand-written numpy-style
//! reference, every spec model at two batch sizes and in both float types, the
//! semantics of each op on small hand-checked cases, and the errors bad inputs get.

mod common;

use common::{Rng, compile, constant_params, convert, model_files, random_bindings, spec_model};
use ndarray::{ArrayD, Ix2, IxDyn};
use nnc_ir::interp::{Bindings, Evaluation, RunError, Scalar, Value, bind_dims, evaluate};
use nnc_ir::{Elem, Model, NodeId, Op, ReduceOp};

fn arr(shape: &[usize], data: &[f64]) -> ArrayD<f64> {
    ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).expect("data fits the shape")
}

fn idx(shape: &[usize], data: &[usize]) -> ArrayD<usize> {
    ArrayD::from_shape_vec(IxDyn(shape), data.to_vec()).expect("data fits the shape")
}

/// Evaluates the only model of `source` on named inputs and params.
fn run<F: Scalar>(
    source: &str,
    inputs: Vec<(&str, Value<F>)>,
    params: Vec<(&str, ArrayD<F>)>,
) -> Evaluation<F> {
    let model = &compile(source)[0];
    let bindings = Bindings::from_named(
        model,
        inputs.into_iter().map(|(n, v)| (n.to_string(), v)),
        params.into_iter().map(|(n, v)| (n.to_string(), v)),
    )
    .unwrap_or_else(|e| panic!("binding failed: {e}"));
    evaluate(model, &bindings).unwrap_or_else(|e| panic!("evaluation failed: {e}"))
}

fn output<F: Scalar>(eval: &Evaluation<F>, name: &str) -> ArrayD<F> {
    match eval.output(name) {
        Some(Value::Float(a)) => a.clone(),
        other => panic!("output `{name}` is not a float tensor: {other:?}"),
    }
}

#[track_caller]
fn assert_close(got: &ArrayD<f64>, expected: &ArrayD<f64>, tol: f64) {
    assert_eq!(
        got.shape(),
        expected.shape(),
        "shapes differ: {got} vs {expected}"
    );
    for (g, e) in got.iter().zip(expected) {
        let ok = (g - e).abs() <= tol * (1.0 + e.abs()) || (g.is_infinite() && g == e);
        assert!(ok, "got\n{got}\nexpected\n{expected}");
    }
}

fn rel_diff(a: f64, b: f64) -> f64 {
    (a - b).abs() / a.abs().max(b.abs()).max(1e-300)
}

// ---- the lecture's worked examples ----------------------------------------------------

#[test]
fn add_mul_gives_q_3_and_f_minus_12() {
    let model = spec_model("gates.nn", "add_mul");
    let eval = evaluate(
        &model,
        &Bindings {
            inputs: vec![],
            params: constant_params(&model),
        },
    )
    .expect("evaluates");
    assert_eq!(eval.loss(), -12.0);
    assert_eq!(eval.output("q"), Some(&Value::Float(arr(&[], &[3.0]))));
}

#[test]
fn neuron_gives_0_73_and_the_sigmoid_gate_agrees() {
    let loss = |name: &str| {
        let model = spec_model("gates.nn", name);
        evaluate(
            &model,
            &Bindings {
                inputs: vec![],
                params: constant_params(&model),
            },
        )
        .expect("evaluates")
        .loss()
    };
    let neuron = loss("neuron");
    assert_eq!(format!("{neuron:.2}"), "0.73");
    // 1 / (1 + e^-1), the dot product being 2 * -1 + -3 * -2 - 3 = 1.
    assert!(
        (neuron - 1.0 / (1.0 + (-1f64).exp())).abs() < 1e-15,
        "{neuron}"
    );
    assert!((loss("neuron_gate") - neuron).abs() < 1e-12);
}

/// `two_layer` equals the lecture's numpy code, written out with ndarray.
#[test]
fn two_layer_matches_hand_written_numpy() {
    let model = spec_model("two_layer.nn", "two_layer");
    let mut rng = Rng::new(42);
    let n = 8;
    let (x, y) = (rng.normal_array(&[n, 1000]), rng.normal_array(&[n, 10]));
    let (w1, w2) = (rng.normal_array(&[1000, 100]), rng.normal_array(&[100, 10]));
    let bindings = Bindings::from_named(
        &model,
        [
            ("x".to_string(), Value::Float(x.clone())),
            ("y".to_string(), Value::Float(y.clone())),
        ],
        [
            ("w1".to_string(), w1.clone()),
            ("w2".to_string(), w2.clone()),
        ],
    )
    .expect("binds");
    let eval = evaluate(&model, &bindings).expect("evaluates");

    let as2 = |a: &ArrayD<f64>| a.clone().into_dimensionality::<Ix2>().expect("a matrix");
    let h = as2(&x).dot(&as2(&w1)).mapv(|z| 1.0 / (1.0 + (-z).exp()));
    let y_pred = h.dot(&as2(&w2));
    let expected: f64 = (&y_pred - &as2(&y)).mapv(|d| d * d).sum();

    assert!(
        rel_diff(eval.loss(), expected) < 1e-12,
        "{} vs {expected}",
        eval.loss()
    );
    assert_close(&output(&eval, "y_pred"), &y_pred.into_dyn(), 1e-12);
    assert!(expected > 1.0, "a non-trivial loss: {expected}");
}

// ---- every spec model ---------------------------------------------------------------

/// Each spec model runs on random inputs at two batch sizes, with a finite loss and
/// outputs of the declared shapes.
#[test]
fn every_spec_model_evaluates_at_two_batch_sizes() {
    let mut count = 0;
    for (file, source) in model_files() {
        for model in compile(&source) {
            for batch in [1, 6] {
                let bindings = random_bindings(&model, batch, 7 + batch as u64);
                let eval = evaluate(&model, &bindings)
                    .unwrap_or_else(|e| panic!("{file} {}: {e}", model.name));
                assert!(
                    eval.loss().is_finite(),
                    "{file} {} batch {batch}: loss {}",
                    model.name,
                    eval.loss()
                );
                for (name, node) in &model.outputs {
                    let value = eval.output(name).expect("every output has a value");
                    let expected = nnc_ir::interp::concrete_shape(model.shape(*node), eval.dims());
                    assert_eq!(
                        value.shape(),
                        expected.as_slice(),
                        "{file} {} output {name}",
                        model.name
                    );
                    if let Value::Float(a) = value {
                        assert!(
                            a.iter().all(|v| v.is_finite()),
                            "{file} {} output {name}",
                            model.name
                        );
                    }
                }
                count += 1;
            }
        }
    }
    assert_eq!(
        count,
        2 * 16,
        "fourteen spec models, deep_stack and deep_dropout_bn, two batch sizes each"
    );
}

/// The interpreter in f32 agrees with itself in f64 to f32 precision.
#[test]
fn f32_agrees_with_f64_on_every_spec_model() {
    for (file, source) in model_files() {
        for model in compile(&source) {
            let b64 = random_bindings(&model, 5, 11);
            let b32: Bindings<f32> = convert(&b64);
            let e64 =
                evaluate(&model, &b64).unwrap_or_else(|e| panic!("{file} {}: {e}", model.name));
            let e32 =
                evaluate(&model, &b32).unwrap_or_else(|e| panic!("{file} {}: {e}", model.name));
            let (l64, l32) = (e64.loss(), f64::from(e32.loss()));
            assert!(
                rel_diff(l64, l32) < 1e-4,
                "{file} {}: f64 {l64}, f32 {l32}",
                model.name
            );
            for ((name, v64), (_, v32)) in e64.outputs().zip(e32.outputs()) {
                if let (Value::Float(a), Value::Float(b)) = (v64, v32) {
                    let scale = a.iter().fold(1.0f64, |m, v| m.max(v.abs()));
                    for (x, y) in a.iter().zip(b) {
                        assert!(
                            (x - f64::from(*y)).abs() < 1e-4 * scale,
                            "{file} {} output {name}",
                            model.name
                        );
                    }
                }
            }
        }
    }
}

// ---- op semantics, on small hand-checked cases ----------------------------------------

const REDUCTIONS: &str = "model m {
    dtype f64;
    dim N;
    input x: [N, 3];
    output sum0 = sum(x, axis = 0);
    output max1 = max(x, axis = 1);
    output min_all = min(x);
    output max0k = max(x, axis = 0, keepdims = true);
    output sum_allk = sum(x, keepdims = true);
    output mean_all = mean(x);
    output mean0 = mean(x, axis = 0);
    output mean1 = mean(x, axis = -1);
    output lse1 = logsumexp(x, axis = 1);
    loss sum(x);
}";

#[test]
fn reductions_over_one_axis_or_all_with_keepdims() {
    let x = arr(&[2, 3], &[1.0, 5.0, 5.0, -2.0, -7.0, 0.0]);
    let eval = run(REDUCTIONS, vec![("x", Value::Float(x))], vec![]);
    let lse = |v: &[f64]| v.iter().map(|x| x.exp()).sum::<f64>().ln();
    let cases: &[(&str, ArrayD<f64>)] = &[
        ("sum0", arr(&[3], &[-1.0, -2.0, 5.0])),
        ("max1", arr(&[2], &[5.0, 0.0])),
        ("min_all", arr(&[], &[-7.0])),
        ("max0k", arr(&[1, 3], &[1.0, 5.0, 5.0])),
        ("sum_allk", arr(&[1, 1], &[2.0])),
        ("mean_all", arr(&[], &[2.0 / 6.0])),
        ("mean0", arr(&[3], &[-0.5, -1.0, 2.5])),
        ("mean1", arr(&[2], &[11.0 / 3.0, -3.0])),
        (
            "lse1",
            arr(&[2], &[lse(&[1.0, 5.0, 5.0]), lse(&[-2.0, -7.0, 0.0])]),
        ),
    ];
    for (name, expected) in cases {
        assert_close(&output(&eval, name), expected, 1e-14);
    }
    assert_eq!(eval.loss(), 2.0);
}

const NORMALISERS: &str = "model m {
    dtype f64;
    dim N;
    input x: [N, 3];
    output s = softmax(x);
    output s0 = softmax(x, axis = 0);
    output l = log_softmax(x, axis = 1);
    output lse = logsumexp(x, axis = 1, keepdims = true);
    output lse_all = logsumexp(x);
    loss sum(lse);
}";

/// Inputs of magnitude 1e4 give finite, exact softmax, log-softmax and logsumexp.
fn check_normalisers<F: Scalar>() {
    let f = |v: f64| F::from_f64(v).expect("a float");
    let data = [1e4, 0.0, -1e4, 1.0, 2.0, 3.0];
    let x =
        ArrayD::from_shape_vec(IxDyn(&[2, 3]), data.iter().map(|v| f(*v)).collect()).expect("fits");
    let eval = run(NORMALISERS, vec![("x", Value::Float(x))], vec![]);
    let back = |name: &str| output(&eval, name).mapv(|v| v.to_f64().expect("a float"));
    let e = |v: f64| v.exp();
    let z = e(1.0) + e(2.0) + e(3.0);
    let tol = if std::mem::size_of::<F>() == 4 {
        1e-6
    } else {
        1e-14
    };
    assert_close(
        &back("s"),
        &arr(
            &[2, 3],
            &[1.0, 0.0, 0.0, e(1.0) / z, e(2.0) / z, e(3.0) / z],
        ),
        tol,
    );
    assert_close(
        &back("s0"),
        &arr(
            &[2, 3],
            &[
                1.0,
                e(-2.0) / (1.0 + e(-2.0)),
                0.0,
                0.0,
                1.0 / (1.0 + e(-2.0)),
                1.0,
            ],
        ),
        tol,
    );
    assert_close(
        &back("l"),
        &arr(
            &[2, 3],
            &[0.0, -1e4, -2e4, 1.0 - z.ln(), 2.0 - z.ln(), 3.0 - z.ln()],
        ),
        tol,
    );
    assert_close(&back("lse"), &arr(&[2, 1], &[1e4, z.ln()]), tol);
    assert_close(&back("lse_all"), &arr(&[], &[1e4]), tol);
    assert!(eval.loss().is_finite());
}

#[test]
fn normalisers_are_stable_in_f64() {
    check_normalisers::<f64>();
}

#[test]
fn normalisers_are_stable_in_f32() {
    check_normalisers::<f32>();
}

const ELEMENTWISE: &str = "model m {
    dtype f64;
    dim N;
    input x: [N, 3];
    input b: [3];
    output plus = x + b;
    output col = x - sum(x, axis = 1, keepdims = true);
    output mx = max(x, b);
    output mn = min(0, x);
    output sel = where(x > 0, x, 0.1 * x);
    output le = x <= b;
    output sq = x ^ 2;
    output sp = softplus(x * 1000);
    output sg = sigmoid(x * 1000);
    output neg = -x / 2;
    loss sum(x);
}";

#[test]
fn elementwise_ops_broadcast_numpy_style() {
    let x = arr(&[2, 3], &[1.0, -2.0, 3.0, 0.0, 4.0, -5.0]);
    let b = arr(&[3], &[10.0, -2.0, 0.0]);
    let eval = run(
        ELEMENTWISE,
        vec![("x", Value::Float(x)), ("b", Value::Float(b))],
        vec![],
    );
    let cases: &[(&str, ArrayD<f64>)] = &[
        ("plus", arr(&[2, 3], &[11.0, -4.0, 3.0, 10.0, 2.0, -5.0])),
        ("col", arr(&[2, 3], &[-1.0, -4.0, 1.0, 1.0, 5.0, -4.0])),
        ("mx", arr(&[2, 3], &[10.0, -2.0, 3.0, 10.0, 4.0, 0.0])),
        ("mn", arr(&[2, 3], &[0.0, -2.0, 0.0, 0.0, 0.0, -5.0])),
        ("sel", arr(&[2, 3], &[1.0, -0.2, 3.0, 0.0, 4.0, -0.5])),
        ("le", arr(&[2, 3], &[1.0, 1.0, 0.0, 1.0, 0.0, 1.0])),
        ("sq", arr(&[2, 3], &[1.0, 4.0, 9.0, 0.0, 16.0, 25.0])),
        (
            "sp",
            arr(&[2, 3], &[1000.0, 0.0, 3000.0, 2f64.ln(), 4000.0, 0.0]),
        ),
        ("sg", arr(&[2, 3], &[1.0, 0.0, 1.0, 0.5, 1.0, 0.0])),
        ("neg", arr(&[2, 3], &[-0.5, 1.0, -1.5, 0.0, -2.0, 2.5])),
    ];
    for (name, expected) in cases {
        assert_close(&output(&eval, name), expected, 1e-15);
    }
}

const MATMULS: &str = "model m {
    dtype f64;
    input v: [3];
    input a: [3, 2];
    output vm = v @ a;
    output mv = a.T @ v;
    output vv = v @ v;
    output mm = a.T @ a;
    loss vv;
}";

#[test]
fn matmul_follows_numpy_for_ranks_1_and_2() {
    let v = arr(&[3], &[1.0, 2.0, 3.0]);
    let a = arr(&[3, 2], &[1.0, 2.0, 3.0, 4.0, 5.0, 6.0]);
    let eval = run(
        MATMULS,
        vec![("v", Value::Float(v)), ("a", Value::Float(a))],
        vec![],
    );
    assert_close(&output(&eval, "vm"), &arr(&[2], &[22.0, 28.0]), 0.0);
    assert_close(&output(&eval, "mv"), &arr(&[2], &[22.0, 28.0]), 0.0);
    assert_close(&output(&eval, "vv"), &arr(&[], &[14.0]), 0.0);
    assert_close(
        &output(&eval, "mm"),
        &arr(&[2, 2], &[35.0, 44.0, 44.0, 56.0]),
        0.0,
    );
    assert_eq!(eval.loss(), 14.0);
}

const INDEXING: &str = "model m {
    dtype f64;
    dim N, C = 3;
    input x: [N, C];
    input labels: index[N];
    output picked = pick(x, labels);
    output picked_k = pick(x, labels, keepdims = true);
    output hot = one_hot(labels, C);
    output best = argmax(x, axis = 1);
    output best0 = argmax(x, axis = 0, keepdims = true);
    loss sum(picked);
}";

#[test]
fn pick_one_hot_and_argmax() {
    let x = arr(&[2, 3], &[1.0, 5.0, 5.0, 7.0, -1.0, 2.0]);
    let labels = idx(&[2], &[2, 0]);
    let eval = run(
        INDEXING,
        vec![("x", Value::Float(x)), ("labels", Value::Index(labels))],
        vec![],
    );
    assert_close(&output(&eval, "picked"), &arr(&[2], &[5.0, 7.0]), 0.0);
    assert_close(&output(&eval, "picked_k"), &arr(&[2, 1], &[5.0, 7.0]), 0.0);
    assert_close(
        &output(&eval, "hot"),
        &arr(&[2, 3], &[0.0, 0.0, 1.0, 1.0, 0.0, 0.0]),
        0.0,
    );
    // Ties go to the first index.
    assert_eq!(eval.output("best"), Some(&Value::Index(idx(&[2], &[1, 0]))));
    assert_eq!(
        eval.output("best0"),
        Some(&Value::Index(idx(&[1, 3], &[1, 0, 0])))
    );
    assert_eq!(eval.loss(), 12.0);
}

/// The ops only autodiff builds (masks, reshape, broadcast), pushed by hand.
#[test]
fn extremum_masks_reshape_and_broadcast() {
    let mut model =
        compile("model m { dtype f64; dim N; input x: [N, 3]; loss sum(x); }").remove(0);
    let x = model
        .input_node(nnc_ir::InputId(0))
        .expect("the input's node");
    let span = model.node(x).span;
    let n = model.shape(x)[0];
    let mask = |model: &mut Model, op, axis| {
        model
            .push(Op::ExtremumMask { op, axis }, vec![x], span)
            .expect("a valid mask")
    };
    let max1 = mask(&mut model, ReduceOp::Max, Some(1));
    let min0 = mask(&mut model, ReduceOp::Min, Some(0));
    let max_all = mask(&mut model, ReduceOp::Max, None);
    let min_all = mask(&mut model, ReduceOp::Min, None);
    let row = model
        .push(
            Op::Reduce {
                op: ReduceOp::Sum,
                axis: Some(0),
                keepdims: false,
            },
            vec![x],
            span,
        )
        .expect("ok");
    let flat = model.reshape(x, vec![nnc_ir::Dim::Fixed(3), n], span);
    let wide = model
        .broadcast(
            row,
            vec![nnc_ir::Dim::Fixed(4), nnc_ir::Dim::Fixed(3)],
            span,
        )
        .expect("ok");

    let x_val = arr(&[2, 3], &[1.0, 5.0, 5.0, -2.0, -7.0, 1.0]);
    let eval = evaluate(
        &model,
        &Bindings {
            inputs: vec![Value::Float(x_val)],
            params: vec![],
        },
    )
    .expect("evaluates");
    let get = |id: NodeId| {
        eval.value(id)
            .and_then(Value::as_float)
            .expect("a float value")
            .clone()
    };
    let cases: &[(NodeId, ArrayD<f64>)] = &[
        (max1, arr(&[2, 3], &[0.0, 1.0, 0.0, 0.0, 0.0, 1.0])),
        (min0, arr(&[2, 3], &[0.0, 0.0, 0.0, 1.0, 1.0, 1.0])),
        (max_all, arr(&[2, 3], &[0.0, 1.0, 0.0, 0.0, 0.0, 0.0])),
        (min_all, arr(&[2, 3], &[0.0, 0.0, 0.0, 0.0, 1.0, 0.0])),
        (flat, arr(&[3, 2], &[1.0, 5.0, 5.0, -2.0, -7.0, 1.0])),
        (
            wide,
            arr(
                &[4, 3],
                &[
                    -1.0, -2.0, 6.0, -1.0, -2.0, 6.0, -1.0, -2.0, 6.0, -1.0, -2.0, 6.0,
                ],
            ),
        ),
    ];
    for (id, expected) in cases {
        assert_close(&get(*id), expected, 0.0);
    }
}

/// A mean over the runtime batch dim divides by the bound size.
#[test]
fn dim_size_is_the_bound_batch_size() {
    let model =
        &compile("model m { dtype f64; dim N; input x: [N]; output n = N + 0; loss mean(x); }")[0];
    for n in [1, 4, 9] {
        let x = ArrayD::from_elem(IxDyn(&[n]), 3.0);
        let eval = evaluate(
            model,
            &Bindings {
                inputs: vec![Value::Float(x)],
                params: vec![],
            },
        )
        .expect("ok");
        assert_eq!(output(&eval, "n"), arr(&[], &[n as f64]));
        assert_eq!(eval.loss(), 3.0);
    }
}

// ---- errors -------------------------------------------------------------------------

const ERRORS: &str = "model m {
    dtype f64;
    dim N, C = 3;
    input x: [N, 4];
    input y: [N];
    input labels: index[N];
    param w: [4, C] = xavier;
    loss mean(pick(x @ w, labels)) + sum(y);
}";

/// Runs the `ERRORS` model after `edit` has spoilt its (valid) bindings.
fn error_after(
    edit: impl FnOnce(&mut Vec<(String, Value<f64>)>, &mut Vec<(String, ArrayD<f64>)>),
) -> String {
    let model = &compile(ERRORS)[0];
    let mut inputs = vec![
        ("x".to_string(), Value::Float(ArrayD::zeros(IxDyn(&[5, 4])))),
        ("y".to_string(), Value::Float(ArrayD::zeros(IxDyn(&[5])))),
        (
            "labels".to_string(),
            Value::Index(idx(&[5], &[0, 1, 2, 2, 0])),
        ),
    ];
    let mut params = vec![("w".to_string(), ArrayD::zeros(IxDyn(&[4, 3])))];
    edit(&mut inputs, &mut params);
    let result = Bindings::from_named(model, inputs, params).and_then(|b| evaluate(model, &b));
    match result {
        Ok(e) => panic!("expected an error, got loss {}", e.loss()),
        Err(e) => e.to_string(),
    }
}

fn set(list: &mut [(String, Value<f64>)], name: &str, v: Value<f64>) {
    list.iter_mut()
        .find(|(n, _)| n == name)
        .expect("a binding of that name")
        .1 = v;
}

#[test]
fn bad_inputs_are_errors_naming_the_array_the_dim_and_both_sizes() {
    type Edit = Box<dyn FnOnce(&mut Vec<(String, Value<f64>)>, &mut Vec<(String, ArrayD<f64>)>)>;
    let zeros = |s: &[usize]| Value::Float(ArrayD::zeros(IxDyn(s)));
    let cases: Vec<(Edit, &str)> = vec![
        (
            Box::new(move |i, _| set(i, "x", zeros(&[5]))),
            "input `x` is declared [N, 4] (rank 2), but has shape [5] (rank 1)",
        ),
        (
            Box::new(move |i, _| set(i, "x", zeros(&[5, 3]))),
            "input `x` is declared [N, 4], but has shape [5, 3]: axis 1 must be 4, got 3",
        ),
        (
            Box::new(move |i, _| set(i, "y", zeros(&[6]))),
            "inputs disagree on dim `N`: `x` gives N = 5 (axis 0), but `y` gives N = 6 (axis 0)",
        ),
        (
            Box::new(move |i, _| set(i, "labels", zeros(&[5]))),
            "input `labels` is declared index[N], but a float tensor was given",
        ),
        (
            Box::new(|i, _| set(i, "y", Value::Index(idx(&[5], &[0; 5])))),
            "input `y` is declared [N], but an index tensor was given",
        ),
        (
            Box::new(|_, p| p[0].1 = ArrayD::zeros(IxDyn(&[3, 4]))),
            "parameter `w` must have shape [4, 3], got [3, 4]",
        ),
        (
            Box::new(|i, _| set(i, "labels", Value::Index(idx(&[5], &[0, 3, 0, 0, 0])))),
            "class index 3 at [1] of `labels` is out of range for `pick` over 3 classes (valid: 0 to 2)",
        ),
        (
            Box::new(|i, _| i.retain(|(n, _)| n != "y")),
            "missing input `y` (declared as [N])",
        ),
        (
            Box::new(|_, p| p.clear()),
            "missing parameter `w` (declared as [4, 3])",
        ),
        (
            Box::new(move |i, _| i.push(("z".into(), zeros(&[1])))),
            "`z` is not an input of model `m` (its inputs: `x`, `y`, `labels`)",
        ),
        (
            Box::new(move |i, _| i.push(("x".into(), zeros(&[5, 4])))),
            "input `x` is given twice",
        ),
    ];
    for (edit, expected) in cases {
        assert_eq!(error_after(edit), expected);
    }
}

#[test]
fn one_hot_checks_its_class_range_and_counts_are_checked() {
    let model = &compile(
        "model m { dtype f64; dim N; input labels: index[N, 2]; output h = one_hot(labels, 4); loss sum(h); }",
    )[0];
    let ok = Bindings {
        inputs: vec![Value::Index(idx(&[1, 2], &[3, 0]))],
        params: vec![],
    };
    let eval = evaluate(model, &ok).expect("in range");
    assert_eq!(
        output(&eval, "h"),
        arr(&[1, 2, 4], &[0.0, 0.0, 0.0, 1.0, 1.0, 0.0, 0.0, 0.0])
    );
    let bad: Bindings<f64> = Bindings {
        inputs: vec![Value::Index(idx(&[2, 2], &[3, 0, 1, 4]))],
        params: vec![],
    };
    let err = evaluate(model, &bad).expect_err("4 is out of range");
    assert_eq!(
        err.to_string(),
        "class index 4 at [1, 1] of `labels` is out of range for `one_hot` over 4 classes (valid: 0 to 3)"
    );
    let none: Bindings<f64> = Bindings {
        inputs: vec![],
        params: vec![],
    };
    assert_eq!(
        evaluate(model, &none).expect_err("no input").to_string(),
        "model `m` takes 1 input, got 0"
    );
    let extra = Bindings {
        inputs: ok.inputs.clone(),
        params: vec![arr(&[], &[1.0])],
    };
    assert!(matches!(
        evaluate(model, &extra),
        Err(RunError::Count {
            kind: "parameter",
            expected: 0,
            got: 1,
            ..
        })
    ));
}

/// Runtime dims are bound from the inputs; fixed dims keep their sizes.
#[test]
fn bind_dims_gives_every_dim_its_size() {
    let model = &compile(ERRORS)[0];
    let inputs: Vec<Value<f64>> = vec![
        Value::Float(ArrayD::zeros(IxDyn(&[7, 4]))),
        Value::Float(ArrayD::zeros(IxDyn(&[7]))),
        Value::Index(ArrayD::zeros(IxDyn(&[7]))),
    ];
    assert_eq!(bind_dims(model, &inputs), Ok(vec![7, 3]));
    assert_eq!(model.inputs[2].ty.elem, Elem::Index);
}

/// An empty batch is not an error: every spec model evaluates (means over no rows
/// give NaN, as in numpy), and nothing panics.
#[test]
fn an_empty_batch_evaluates_without_panicking() {
    for (file, source) in model_files() {
        for model in compile(&source) {
            let bindings = random_bindings(&model, 0, 1);
            let eval = evaluate(&model, &bindings)
                .unwrap_or_else(|e| panic!("{file} {}: {e}", model.name));
            let has_batch = model.dims.iter().any(|d| d.size.is_none());
            assert!(
                has_batch || eval.loss().is_finite(),
                "{file} {}",
                model.name
            );
        }
    }
}

// ---- loops ----------------------------------------------------------------------------

/// A loop is its steps written out: the loop over a stack of weights and biases
/// gives bit for bit the loss and outputs of the same layers written by hand, and
/// the carried value's first and last values are what they should be (`h` after no
/// steps is `x`; numbers are folded: `0 + 0 + 1 + 2 + 3`).
#[test]
fn a_loop_is_its_steps_written_out() {
    let looped = "model m { dim N, D = 3, L = 3;
        input x: [N, D]; param w: [L, D, D] = xavier; param b: [L, D] = zeros;
        let h = for l in 0..L from x { let z = h @ w[l] + b[l]; tanh(z) * (l + 1) };
        let same = for k in 2..2 from x { same * 2 };
        let six = for k in 0..4 from 0 { six + k };
        output h; output same;
        loss sum(h) * six; }";
    let by_hand = "model m { dim N, D = 3, L = 3;
        input x: [N, D]; param w: [L, D, D] = xavier; param b: [L, D] = zeros;
        let h1 = tanh(x @ w[0] + b[0]) * 1;
        let h2 = tanh(h1 @ w[1] + b[1]) * 2;
        let h = tanh(h2 @ w[2] + b[2]) * 3;
        let same = x;
        output h; output same;
        loss sum(h) * 6; }";
    let mut rng = Rng::new(5);
    let x = rng.normal_array(&[4, 3]);
    let w = rng.normal_array(&[3, 3, 3]);
    let b = rng.normal_array(&[3, 3]);
    let eval = |source: &str| {
        run::<f64>(
            source,
            vec![("x", Value::Float(x.clone()))],
            vec![("w", w.clone()), ("b", b.clone())],
        )
    };
    let (a, e) = (eval(looped), eval(by_hand));
    assert_eq!(
        a.loss().to_bits(),
        e.loss().to_bits(),
        "{} vs {}",
        a.loss(),
        e.loss()
    );
    assert_eq!(output(&a, "h"), output(&e, "h"));
    assert_eq!(output(&a, "same"), x);
    assert!(a.loss().abs() > 1e-3, "a non-trivial loss: {}", a.loss());
}

/// The IR of a loop names each step's values after the step (`z_1`, `h_1`, ...),
/// and the last step's value after the `let`.
#[test]
fn loop_steps_are_named_after_the_step() {
    let model = &compile(
        "model m { dim N, D = 2, L = 3; input x: [N, D]; param w: [L, D, D] = xavier;
         let h = for l in 0..L from x { let z = h @ w[l]; tanh(z) };
         loss sum(h); }",
    )[0];
    let names: Vec<&str> = model
        .nodes
        .iter()
        .filter_map(|n| n.name.as_deref())
        .collect();
    assert_eq!(names, ["x", "w", "z_1", "h_1", "z_2", "h_2", "z_3", "h"]);
}
