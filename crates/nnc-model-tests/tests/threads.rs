//! Generated code gives the same bits on every thread count: the loss, every
//! gradient, every output and the parameters after `sgd_step` of each model, on
//! one thread and cut for two and three, at a batch large enough that products and
//! row loops are split. And `sgd_step` is `loss_and_grad` then `p - lr * d_p`.

use nnc::Model;
use nnc_model_tests as models;
use nnc_model_tests::harness::{ir, random_inputs, random_params, same_bits_on_threads};

/// Large enough that the workloads' products and loops are split across threads.
const BATCH: usize = 256;

#[track_caller]
fn check<M: Model>(file: &str, name: &str) {
    let ir = ir(file, name);
    let named = random_inputs::<M>(&ir, BATCH, 7);
    let params = random_params::<M>(8);
    same_bits_on_threads::<M>(name, &params, &named);
}

#[test]
fn every_model_gives_the_same_bits_on_every_thread_count() {
    check::<models::activations::Activations>("activations.nn", "activations");
    check::<models::deep_tanh::DeepTanh>("deep_tanh.nn", "deep_tanh");
    // Its loop written once, as a Rust loop over stacked buffers.
    check::<models::deep_stack::DeepStack>("deep_stack.nn", "deep_stack");
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

#[test]
fn the_code_generator_knows_how_many_arrays_a_row_loop_can_write() {
    assert_eq!(
        nnc::codegen::emit::body::MAX_ROW_OUTPUTS,
        nnc::runtime::parallel::MAX_ROW_OUTPUTS
    );
}

#[test]
fn the_code_generator_knows_which_row_loops_the_runtime_splits() {
    assert_eq!(
        nnc::codegen::plan::PARALLEL_WORK,
        nnc::runtime::parallel::PARALLEL_WORK
    );
}

/// `deep_stack` is `deep_tanh` written as a loop, and its generated code runs the
/// loop's steps as one Rust loop (forward and backward) where `deep_tanh`'s spells out
/// every layer: with the same weights, the same bits (loss, every gradient, every
/// layer's activations), on one thread and on two.
#[test]
fn a_rolled_loop_gives_the_bits_of_its_layers_written_out() {
    use models::{deep_stack::DeepStack, deep_tanh::DeepTanh};
    use nnc::runtime::parallel::Threads;
    use nnc::runtime::{OutputValue, TensorSet};
    let ir = ir("deep_stack.nn", "deep_stack");
    let named = random_inputs::<DeepStack>(&ir, 37, 3);
    let stacked = random_params::<DeepStack>(4);
    let stack: Vec<_> = stacked.tensors().into_iter().collect();
    let mut spelled = random_params::<DeepTanh>(5);
    for (name, mut t) in spelled.tensors_mut() {
        // `w1`..`w10` are `w[0]`..`w[9]`; `w_out` is itself.
        let (from, layer) = match name.strip_prefix('w').and_then(|l| l.parse::<usize>().ok()) {
            Some(l) => ("w", Some(l - 1)),
            None => (name, None),
        };
        let source = &stack
            .iter()
            .find(|(n, _)| *n == from)
            .expect("a parameter of deep_stack")
            .1;
        match layer {
            Some(l) => t.assign(&source.index_axis(nnc::ndarray::Axis(0), l)),
            None => t.assign(source),
        }
    }
    for threads in [Threads::one(), Threads::new(2)] {
        let inputs = DeepStack::bind_inputs(&named).expect("deep_stack's inputs");
        let mut ws = DeepStack::workspace_on(&inputs, threads.clone());
        let mut grads = DeepStack::zero_grads(&inputs);
        let loss =
            DeepStack::loss_and_grad(&stacked, &inputs, &mut ws, &mut grads).expect("a loss");
        let outputs = DeepStack::outputs(&stacked, &inputs, &mut ws).expect("outputs");
        let hs = match &outputs[0].1 {
            OutputValue::Float(a) => a.clone(),
            OutputValue::Index(_) => panic!("hs is a float tensor"),
        };

        let tanh_inputs = DeepTanh::bind_inputs(&named).expect("deep_tanh's inputs");
        let mut tanh_ws = DeepTanh::workspace_on(&tanh_inputs, threads);
        let mut tanh_grads = DeepTanh::zero_grads(&tanh_inputs);
        let tanh_loss =
            DeepTanh::loss_and_grad(&spelled, &tanh_inputs, &mut tanh_ws, &mut tanh_grads)
                .expect("a loss");
        assert_eq!(loss.to_bits(), tanh_loss.to_bits(), "the loss");
        let d_stack = grads.tensors();
        let d_of = |n: &str| &d_stack.iter().find(|(m, _)| *m == n).expect("a gradient").1;
        for (name, want) in tanh_grads.tensors() {
            let got = match name.strip_prefix('w').and_then(|l| l.parse::<usize>().ok()) {
                Some(l) => d_of("w").index_axis(nnc::ndarray::Axis(0), l - 1),
                None => d_of(name).view(),
            };
            assert!(
                want.iter()
                    .zip(got.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "d_{name} differs"
            );
        }
        let tanh_outputs =
            DeepTanh::outputs(&spelled, &tanh_inputs, &mut tanh_ws).expect("outputs");
        for (l, (name, h)) in tanh_outputs.iter().enumerate() {
            let OutputValue::Float(h) = h else {
                panic!("{name} is a float tensor")
            };
            let kept = hs.index_axis(nnc::ndarray::Axis(0), l);
            assert!(
                h.iter()
                    .zip(kept.iter())
                    .all(|(a, b)| a.to_bits() == b.to_bits()),
                "{name} differs from hs[{l}]"
            );
        }
    }
}
