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

/// Slicing, a single position, `concat` and `stack`: the derivation shows each
/// slice in the source's notation and its derivative as a `pad` back to the
/// sliced value's shape.
#[test]
fn slices_and_joins() {
    let source = "model joined {
    dtype f64;
    dim N, D = 4;
    input x: [N, D];
    param w: [2, 3] = normal(0, 1);
    let h = tanh(x[:, 1:3] @ w);
    let both = concat(h, x[:, -1:], axis = 1);
    let rows = stack(h[:, 0], both[:, 3], axis = 1);
    loss sum(both ^ 2) + sum(rows * w[0, 0:2]);
}
";
    let model = nnc_ir::compile_source(source).expect("compiles").remove(0);
    insta::assert_snapshot!(derive(&model).expect("differentiates").render(Format::Text));
}

/// A loop over a stack, its steps folded: the first step (reading `x`), one step like
/// the others, and the last (giving `h`); the backward pass likewise, the other way;
/// the stack's gradient as the `concat` of each step's slice. A 200-step loop shows
/// as many lines as a 5-step one.
#[test]
fn loops_show_their_steps_folded() {
    let source = |steps: usize| {
        format!(
            "model deep {{
    dtype f64;
    dim N, D = 3, L = {steps};
    input x: [N, D];
    param w: [L, D, D] = xavier;
    param b: [L, D] = zeros;
    let h = for l in 0..L from x {{
        let z = h @ w[l] + b[l];
        tanh(z)
    }};
    loss sum(h ^ 2);
}}
"
        )
    };
    let render = |steps: usize| {
        let model = nnc_ir::compile_source(&source(steps))
            .expect("compiles")
            .remove(0);
        derive(&model).expect("differentiates").render(Format::Text)
    };
    let five = render(5);
    assert_eq!(five.lines().count(), render(200).lines().count());
    insta::assert_snapshot!(five);
}
