//! Golden snapshots of the generated code, reviewed for readability: a student
//! should be able to follow each derivative in them (`cargo insta review` after a
//! change to the generator).

use nnc_codegen::{Emit, Options, compile_source};
use std::path::Path;

fn source(file: &str) -> String {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/models")
        .join(file);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The generated text for one model of a spec file.
#[track_caller]
fn generated(file: &str, model: &str, emit: Emit) -> String {
    let options = Options {
        model: Some(model.to_string()),
        emit,
    };
    compile_source(&source(file), file, &options).unwrap_or_else(|d| panic!("{file}: {d:?}"))
}

#[test]
fn two_layer() {
    insta::assert_snapshot!(
        "two_layer",
        generated("two_layer.nn", "two_layer", Emit::Rust)
    );
}

#[test]
fn add_mul() {
    insta::assert_snapshot!("add_mul", generated("gates.nn", "add_mul", Emit::Rust));
}

#[test]
fn spiral() {
    insta::assert_snapshot!("spiral", generated("spiral.nn", "spiral", Emit::Rust));
}

#[test]
fn spiral_plan() {
    insta::assert_snapshot!("spiral_plan", generated("spiral.nn", "spiral", Emit::Plan));
}

/// Train and eval modes: the `State`, the training step drawing its dropout mask
/// from the caller's generator and writing the states after the step, eval mode
/// with a mask of ones and the running statistics (`batch_norm` selects on `mode`).
#[test]
fn train_and_eval_modes() {
    let source = "model bn {
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
    let d = dropout(h, 0.5);
    let b = batch_norm(d, gamma, beta, mu, var, momentum = 0.9);
    loss softmax_cross_entropy(b @ w_out, labels);
}
";
    let code =
        compile_source(source, "bn.nn", &Options::default()).unwrap_or_else(|d| panic!("{d:?}"));
    insta::assert_snapshot!("train_and_eval_modes", code);
}
