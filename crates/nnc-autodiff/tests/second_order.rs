//! The backward pass is IR, so it differentiates again: a Hessian-vector product
//! checked against finite differences of the gradient.

use nnc_autodiff::gradcheck::random_point;
use nnc_autodiff::{hessian_vector_product, with_gradients};
use nnc_ir::interp::{Bindings, Value, evaluate};
use nnc_ir::{GradOf, ParamId};
use rand::SeedableRng;
use rand::rngs::StdRng;

const SOURCE: &str = "
model small {
    dtype f64;
    dim N, D = 3, H = 4;
    input x: [N, D];
    input labels: index[N];
    param w1: [D, H];
    param w2: [H, 2];
    let h = tanh(x @ w1);
    loss softmax_cross_entropy(h @ w2, labels) + 0.1 * l2(w1);
}";

#[test]
fn hessian_vector_product_matches_differences_of_the_gradient() {
    let model = nnc_ir::compile_source(SOURCE).expect("compiles").remove(0);
    let mut rng = StdRng::seed_from_u64(11);
    let point = random_point(&model, 5, &mut rng);
    let direction: Vec<ndarray::ArrayD<f64>> = random_point(&model, 5, &mut rng)
        .params
        .into_iter()
        .collect();

    // H v from the twice-differentiated model: directions are extra inputs.
    let mut hvp = model.clone();
    hessian_vector_product(&mut hvp).expect("differentiates twice");
    let mut inputs = point.inputs.clone();
    inputs.extend(direction.iter().cloned().map(Value::Float));
    let eval = evaluate(
        &hvp,
        &Bindings {
            inputs,
            params: point.params.clone(),
        },
    )
    .expect("evaluates");

    // (g(p + e v) - g(p - e v)) / 2e from the once-differentiated model.
    let derived = with_gradients(&model).expect("differentiates");
    let eps = 1e-5;
    let grads_at = |sign: f64| {
        let params = point
            .params
            .iter()
            .zip(&direction)
            .map(|(p, v)| p + &(v * (sign * eps)))
            .collect();
        let e = evaluate(
            &derived,
            &Bindings {
                inputs: point.inputs.clone(),
                params,
            },
        )
        .expect("evaluates");
        (0..2)
            .map(|p| e.grad(GradOf::Param(ParamId(p))).expect("grad").clone())
            .collect::<Vec<_>>()
    };
    let (plus, minus) = (grads_at(1.0), grads_at(-1.0));
    for (p, name) in ["w1", "w2"].iter().enumerate() {
        let numeric = (&plus[p] - &minus[p]) / (2.0 * eps);
        let Some(Value::Float(exact)) = eval.output(&format!("hv_{name}")) else {
            panic!("hv_{name} missing")
        };
        let scale = numeric.iter().fold(1e-3f64, |m, v| m.max(v.abs()));
        let worst = (exact - &numeric)
            .iter()
            .fold(0.0f64, |m, v| m.max(v.abs()));
        assert!(
            worst <= 1e-6 * scale,
            "hv_{name}: max difference {worst}, scale {scale}"
        );
    }
}
