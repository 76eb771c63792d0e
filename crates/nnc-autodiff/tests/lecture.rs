//! The lecture's worked examples: derived gradients against the slides' numbers and
//! against hand-derived formulas.

use ndarray::{Array2, ArrayD, Ix2};
use nnc_autodiff::with_gradients;
use nnc_ir::interp::{Bindings, Evaluation, Value, evaluate};
use nnc_ir::{GradOf, Model, ParamId};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

fn model_file(name: &str) -> String {
    let path = format!(
        "{}/../../examples/models/{name}",
        env!("CARGO_MANIFEST_DIR")
    );
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// A model of a spec file, with its simplified backward pass.
fn derived(file: &str, model: &str) -> Model {
    let models = nnc_ir::compile_source(&model_file(file)).expect("spec models compile");
    let m = models
        .into_iter()
        .find(|m| m.name == model)
        .expect("model exists");
    with_gradients(&m).expect("differentiates")
}

/// Evaluates a model whose params are all scalars, at their `= value` initialisers.
fn at_initial_values(model: &Model) -> Evaluation<f64> {
    let params = model
        .params
        .iter()
        .map(|p| match p.init {
            nnc_ir::Init::Constant(c) => ArrayD::from_elem(vec![], c),
            other => panic!("expected a constant initialiser, got {other:?}"),
        })
        .collect();
    evaluate(
        model,
        &Bindings {
            inputs: vec![],
            params,
        },
    )
    .expect("evaluates")
}

fn grad(eval: &Evaluation<f64>, model: &Model, name: &str) -> f64 {
    let p = model
        .params
        .iter()
        .position(|p| p.name == name)
        .expect("param exists");
    let g = eval
        .grad(GradOf::Param(ParamId(p as u32)))
        .expect("gradient exists");
    *g.first().expect("scalar")
}

fn round2(x: f64) -> f64 {
    (x * 100.0).round() / 100.0
}

#[test]
fn add_mul_reads_like_the_slide() {
    let m = derived("gates.nn", "add_mul");
    let eval = at_initial_values(&m);
    assert_eq!(eval.loss(), -12.0);
    assert_eq!(grad(&eval, &m, "x"), -4.0);
    assert_eq!(grad(&eval, &m, "y"), -4.0);
    assert_eq!(grad(&eval, &m, "z"), 3.0);
}

#[test]
fn neuron_gradients_match_the_slide_and_the_sigmoid_gate() {
    let expanded = derived("gates.nn", "neuron");
    let gate = derived("gates.nn", "neuron_gate");
    let (e, g) = (at_initial_values(&expanded), at_initial_values(&gate));
    assert_eq!(round2(e.loss()), 0.73);
    let names = ["w0", "w1", "w2", "x0", "x1"];
    let slide = [-0.20, -0.39, 0.20, 0.39, -0.59];
    for (name, want) in names.iter().zip(slide) {
        let (a, b) = (grad(&e, &expanded, name), grad(&g, &gate, name));
        assert_eq!(round2(a), want, "d_{name} of neuron");
        assert!(
            (a - b).abs() <= 1e-12,
            "d_{name}: neuron {a} vs neuron_gate {b}"
        );
    }
}

fn normal(shape: (usize, usize), rng: &mut StdRng) -> Array2<f64> {
    Array2::from_shape_simple_fn(shape, || StandardNormal.sample(rng))
}

fn sigmoid(x: f64) -> f64 {
    1.0 / (1.0 + (-x).exp())
}

#[test]
fn two_layer_gradients_equal_the_hand_written_ones() {
    let m = derived("two_layer.nn", "two_layer");
    let mut rng = StdRng::seed_from_u64(7);
    let n = 16;
    let (x, y) = (normal((n, 1000), &mut rng), normal((n, 10), &mut rng));
    let (w1, w2) = (normal((1000, 100), &mut rng), normal((100, 10), &mut rng));
    // The seed's numpy, by hand.
    let h = x.dot(&w1).mapv(sigmoid);
    let y_pred = h.dot(&w2);
    let loss = (&y_pred - &y).mapv(|v| v * v).sum();
    let grad_y_pred = (&y_pred - &y) * 2.0;
    let grad_w2 = h.t().dot(&grad_y_pred);
    let grad_h = grad_y_pred.dot(&w2.t());
    let grad_w1 = x.t().dot(&(&grad_h * &h * h.mapv(|v| 1.0 - v)));

    let bindings = Bindings {
        inputs: vec![Value::Float(x.into_dyn()), Value::Float(y.into_dyn())],
        params: vec![w1.into_dyn(), w2.into_dyn()],
    };
    let eval = evaluate(&m, &bindings).expect("evaluates");
    assert!(((eval.loss() - loss) / loss).abs() <= 1e-12);
    for (p, want) in [(0u32, &grad_w1), (1, &grad_w2)] {
        let got = eval
            .grad(GradOf::Param(ParamId(p)))
            .expect("gradient")
            .clone()
            .into_dimensionality::<Ix2>()
            .expect("matrix");
        let scale = want.iter().fold(0.0f64, |m, v| m.max(v.abs()));
        let worst = (&got - want).iter().fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            worst <= 1e-12 * scale,
            "param {p}: max difference {worst} (scale {scale})"
        );
    }
}

#[test]
fn svm_and_svm_spelled_out_agree() {
    let builtin = derived("svm.nn", "svm");
    let spelled = derived("svm.nn", "svm_spelled_out");
    let mut rng = StdRng::seed_from_u64(3);
    let point = nnc_autodiff::gradcheck::random_point(&builtin, 32, &mut rng);
    let (a, b) = (
        evaluate(&builtin, &point).expect("svm"),
        evaluate(&spelled, &point).expect("spelled out"),
    );
    assert!((a.loss() - b.loss()).abs() <= 1e-12 * a.loss().abs());
    let (ga, gb) = (
        a.grad(GradOf::Param(ParamId(0))).expect("d_w"),
        b.grad(GradOf::Param(ParamId(0))).expect("d_w"),
    );
    let worst = (ga - gb).iter().fold(0.0f64, |m, v| m.max(v.abs()));
    assert!(worst <= 1e-12, "max difference {worst}");
}
