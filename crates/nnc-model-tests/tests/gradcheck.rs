//! The generated gradients of every `f64` spec model against central finite
//! differences of the generated loss (`nnc::runtime::gradcheck`): a check that does
//! not go through the derivative rules at all.

use nnc::Model;
use nnc::runtime::gradcheck::{GradCheckConfig, check_gradients};
use nnc_model_tests as models;
use nnc_model_tests::harness::{ir, random_inputs, random_params};

#[track_caller]
fn check<M: Model<Float = f64>>(file: &str, name: &str) {
    let ir = ir(file, name);
    for n in [4, 9] {
        let named = random_inputs::<M>(&ir, n, n as u64);
        let params = random_params::<M>(7 + n as u64);
        // The runtime's defaults: the differences' round-off, which grows with the
        // loss (two_layer's is ~1e3), is discounted by the checker itself.
        let config = GradCheckConfig::for_type::<f64>();
        let report = check_gradients::<M>(&params, &named, &config)
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert!(report.passed(), "{name} (N = {n}):\n{report}");
        assert!(
            report.tensors.iter().all(|t| t.checked > 0),
            "{name}: every gradient is checked"
        );
    }
}

#[test]
fn two_layer() {
    check::<models::two_layer::TwoLayer>("two_layer.nn", "two_layer");
}

#[test]
fn spiral() {
    check::<models::spiral::Spiral>("spiral.nn", "spiral");
}

#[test]
fn gates() {
    check::<models::add_mul::AddMul>("gates.nn", "add_mul");
    check::<models::neuron::Neuron>("gates.nn", "neuron");
    check::<models::neuron_gate::NeuronGate>("gates.nn", "neuron_gate");
}

#[test]
fn logistic() {
    check::<models::logistic_regression::LogisticRegression>("logistic.nn", "logistic_regression");
    check::<models::linear_svm::LinearSvm>("logistic.nn", "linear_svm");
    check::<models::least_squares::LeastSquares>("logistic.nn", "least_squares");
}

/// Loops over stacked parameters (`features.nn`): each slice of a stack gets the
/// gradient of its own step.
#[test]
fn loops() {
    check::<models::loops::Loops>("features.nn", "loops");
}
