//! Every model's generated code (the spec models, and this crate's `models/`)
//! against the IR interpreter: loss (from `loss` and from `loss_and_grad`), outputs
//! and every gradient, at two batch sizes, within 1e-10 relative in `f64` and 1e-4
//! in `f32`.

use nnc::Model;
use nnc::ir::interp::Scalar;
use nnc_model_tests as models;
use nnc_model_tests::harness::{Layout, agrees_with_interpreter, ir};

/// Batch sizes: every model is checked at both (models without runtime dims twice).
const BATCHES: [usize; 2] = [3, 11];

#[track_caller]
fn check<M: Model>(file: &str, name: &str)
where
    M::Float: Scalar,
{
    let ir = ir(file, name);
    for layout in [Layout::Contiguous, Layout::Strided] {
        agrees_with_interpreter::<M>(&ir, name, &BATCHES, layout, 0.0);
    }
}

#[test]
fn activations() {
    check::<models::activations::Activations>("activations.nn", "activations");
}

#[test]
fn deep_tanh() {
    check::<models::deep_tanh::DeepTanh>("deep_tanh.nn", "deep_tanh");
}

#[test]
fn deep_stack() {
    check::<models::deep_stack::DeepStack>("deep_stack.nn", "deep_stack");
}

#[test]
fn biased_stack() {
    check::<models::biased_stack::BiasedStack>("features.nn", "biased_stack");
}

#[test]
fn add_mul() {
    check::<models::add_mul::AddMul>("gates.nn", "add_mul");
}

#[test]
fn neuron() {
    check::<models::neuron::Neuron>("gates.nn", "neuron");
}

#[test]
fn neuron_gate() {
    check::<models::neuron_gate::NeuronGate>("gates.nn", "neuron_gate");
}

#[test]
fn logistic_regression() {
    check::<models::logistic_regression::LogisticRegression>("logistic.nn", "logistic_regression");
}

#[test]
fn linear_svm() {
    check::<models::linear_svm::LinearSvm>("logistic.nn", "linear_svm");
}

#[test]
fn least_squares() {
    check::<models::least_squares::LeastSquares>("logistic.nn", "least_squares");
}

#[test]
fn mlp784() {
    check::<models::mlp784::Mlp784>("mlp784.nn", "mlp784");
}

#[test]
fn spiral() {
    check::<models::spiral::Spiral>("spiral.nn", "spiral");
}

#[test]
fn svm() {
    check::<models::svm::Svm>("svm.nn", "svm");
}

#[test]
fn svm_spelled_out() {
    check::<models::svm_spelled_out::SvmSpelledOut>("svm.nn", "svm_spelled_out");
}

#[test]
fn three_layer() {
    check::<models::three_layer::ThreeLayer>("three_layer.nn", "three_layer");
}

#[test]
fn two_layer() {
    check::<models::two_layer::TwoLayer>("two_layer.nn", "two_layer");
}

#[test]
fn reductions() {
    check::<models::reductions::Reductions>("features.nn", "reductions");
}

#[test]
fn shapes() {
    check::<models::shapes::Shapes>("features.nn", "shapes");
}

#[test]
fn activations_f32() {
    check::<models::activations_f32::ActivationsF32>("features.nn", "activations_f32");
}

#[test]
fn constant_batch() {
    check::<models::constant_batch::ConstantBatch>("features.nn", "constant_batch");
}

#[test]
fn odd_results() {
    check::<models::odd_results::OddResults>("features.nn", "odd_results");
}

#[test]
fn movement() {
    check::<models::movement::Movement>("features.nn", "movement");
}

#[test]
fn movement_f32() {
    check::<models::movement_f32::MovementF32>("features.nn", "movement_f32");
}

#[test]
fn loops() {
    check::<models::loops::Loops>("features.nn", "loops");
}

#[test]
fn loops_f32() {
    check::<models::loops_f32::LoopsF32>("features.nn", "loops_f32");
}
