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
