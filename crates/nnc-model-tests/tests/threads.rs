//! Generated code gives the same bits on every thread count: the loss, every
//! gradient, every output and the parameters after `sgd_step` of each model, on
//! one thread and cut for two and three, at a batch large enough that products and
//! row loops are split. And `sgd_step` is `loss_and_grad` then `p - lr * d_p`.

mod common;

use common::{ir, random_inputs, random_params};
use nnc::Model;
use nnc::runtime::num_traits::{NumCast, ToPrimitive};
use nnc::runtime::parallel::Threads;
use nnc::runtime::{OutputValue, TensorSet};
use nnc_model_tests as models;

/// Large enough that the workloads' products and loops are split across threads.
const BATCH: usize = 256;

/// Everything a model computes, as bits.
fn results<M: Model>(
    params: &M::Params,
    inputs: &M::Inputs<'_>,
    threads: Threads,
) -> Vec<(String, Vec<u64>)> {
    let bits = |x: M::Float| x.to_f64().map_or(u64::MAX, f64::to_bits);
    let mut ws = M::workspace_on(inputs, threads);
    let mut grads = M::zero_grads(inputs);
    let loss =
        M::loss_and_grad(params, inputs, &mut ws, &mut grads).unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![("loss".to_string(), vec![bits(loss)])];
    for (name, g) in grads.tensors() {
        out.push((format!("d_{name}"), g.iter().map(|x| bits(*x)).collect()));
    }
    let mut stepped = params.clone();
    let lr: M::Float = NumCast::from(0.125).unwrap_or_else(|| panic!("0.125 is a float"));
    let step_loss = M::sgd_step(&mut stepped, inputs, &mut ws, &mut grads, lr)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bits(step_loss), bits(loss), "sgd_step's loss");
    for ((name, p), ((_, p0), (_, g))) in stepped
        .tensors()
        .into_iter()
        .zip(params.tensors().into_iter().zip(grads.tensors()))
    {
        let want: Vec<u64> = p0
            .iter()
            .zip(g.iter())
            .map(|(x, d)| bits(*x - lr * *d))
            .collect();
        let got: Vec<u64> = p.iter().map(|x| bits(*x)).collect();
        assert!(got == want, "sgd_step: {name} is not p - lr * d_p");
        out.push((format!("{name} after sgd_step"), got));
    }
    let outputs = M::outputs(params, inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in outputs {
        let values = match value {
            OutputValue::Float(a) => a.iter().map(|x| bits(*x)).collect(),
            OutputValue::Index(a) => a.iter().map(|i| *i as u64).collect(),
        };
        out.push((name.to_string(), values));
    }
    out
}

#[track_caller]
fn check<M: Model>(file: &str, name: &str) {
    let ir = ir(file, name);
    let named = random_inputs::<M>(&ir, BATCH, 7);
    let params = random_params::<M>(8);
    let inputs = M::bind_inputs(&named).unwrap_or_else(|e| panic!("{name}: {e}"));
    let one = results::<M>(&params, &inputs, Threads::one());
    for count in [2, 3] {
        let many = results::<M>(&params, &inputs, Threads::new(count));
        for ((what, a), (_, b)) in one.iter().zip(&many) {
            assert!(a == b, "{name}: {what} differs on {count} threads");
        }
    }
}

#[test]
fn every_model_gives_the_same_bits_on_every_thread_count() {
    check::<models::activations::Activations>("activations.nn", "activations");
    check::<models::deep_tanh::DeepTanh>("deep_tanh.nn", "deep_tanh");
    check::<models::logistic_regression::LogisticRegression>("logistic.nn", "logistic_regression");
    check::<models::mlp784::Mlp784>("mlp784.nn", "mlp784");
    check::<models::spiral::Spiral>("spiral.nn", "spiral");
    check::<models::svm::Svm>("svm.nn", "svm");
    check::<models::three_layer::ThreeLayer>("three_layer.nn", "three_layer");
    check::<models::two_layer::TwoLayer>("two_layer.nn", "two_layer");
    check::<models::reductions::Reductions>("features.nn", "reductions");
    check::<models::shapes::Shapes>("features.nn", "shapes");
    check::<models::activations_f32::ActivationsF32>("features.nn", "activations_f32");
}
