//! Snapshots of every spec model's derivation, as `nnc grad` prints it: forward,
//! backward with one rule per line, then the simplified pass with node counts.

use nnc_autodiff::{Format, derive};

fn derivations(file: &str, format: Format) -> String {
    let path = format!(
        "{}/../../examples/models/{file}",
        env!("CARGO_MANIFEST_DIR")
    );
    let source = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{path}: {e}"));
    nnc_ir::compile_source(&source)
        .expect("spec models compile")
        .iter()
        .map(|m| derive(m).expect("differentiates").render(format))
        .collect::<Vec<_>>()
        .join("\n")
}

macro_rules! snapshot {
    ($name:ident, $file:literal) => {
        #[test]
        fn $name() {
            insta::assert_snapshot!(derivations($file, Format::Text));
        }
    };
}

snapshot!(activations, "activations.nn");
snapshot!(deep_tanh, "deep_tanh.nn");
snapshot!(gates, "gates.nn");
snapshot!(logistic, "logistic.nn");
snapshot!(mlp784, "mlp784.nn");
snapshot!(spiral, "spiral.nn");
snapshot!(svm, "svm.nn");
snapshot!(three_layer, "three_layer.nn");
snapshot!(two_layer, "two_layer.nn");

#[test]
fn add_mul_in_latex() {
    let all = derivations("gates.nn", Format::Latex);
    let add_mul = all.split("\nmodel ").next().unwrap_or_default();
    insta::assert_snapshot!(add_mul);
}

#[test]
fn two_layer_reads_like_the_hand_written_backward_pass() {
    let text = derivations("two_layer.nn", Format::Text);
    for line in [
        "d_h = d_y_pred @ w2.T",
        "d_w2 = h.T @ d_y_pred",
        "d_w1 = x.T @ d_t4",
        "d_y_pred = 2 * t7",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
}
