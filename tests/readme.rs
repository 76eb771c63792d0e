//! The README's `net!` snippet, compiled as written: the block between the markers
//! below is the README's, character for character (the first test checks it), so a
//! README that no longer compiles fails this file's build.
#![allow(
    dead_code,
    reason = "the snippet defines what a user's crate would use"
)]

#[rustfmt::skip]
mod readme {
// ---- README begin
nnc::net! {
    model two_layer {
        dtype f64;
        dim N, D_in = 1000, H = 100, D_out = 10;
        input x: [N, D_in];
        input y: [N, D_out];
        param w1: [D_in, H] = normal(0, 1);
        param w2: [H, D_out] = normal(0, 1);
        let h = sigmoid(x @ w1);
        let y_pred = h @ w2;
        output y_pred;
        loss sum((y_pred - y) ^ 2);
    }
}
// or, relative to Cargo.toml (the crate rebuilds when the file changes):
nnc::net!(file = "examples/models/spiral.nn");

fn step(p: &mut two_layer::Params, x: &nnc::ndarray::Array2<f64>, y: &nnc::ndarray::Array2<f64>,
        ws: &mut two_layer::Workspace, g: &mut two_layer::Grads) -> Result<f64, nnc::runtime::ShapeError> {
    let inputs = two_layer::Inputs { x: x.view(), y: y.view() };
    let loss = two_layer::loss_and_grad(p, &inputs, ws, g)?;   // no allocation of its own
    p.w1.scaled_add(-1e-4, &g.w1);
    p.w2.scaled_add(-1e-4, &g.w2);
    Ok(loss)
}
// ---- README end

    #[test]
    fn the_snippet_steps() {
        use nnc::Model;
        use nnc::rand::SeedableRng;
        let mut rng = nnc::rand::rngs::StdRng::seed_from_u64(0);
        let mut p = two_layer::Params::init(&mut rng);
        let x = nnc::ndarray::Array2::<f64>::from_elem((3, 1000), 0.01);
        let y = nnc::ndarray::Array2::<f64>::zeros((3, 10));
        let dims = two_layer::Dims { n: 3 };
        let (mut ws, mut g) = (two_layer::Workspace::new(dims), two_layer::Grads::zeros(dims));
        let first = step(&mut p, &x, &y, &mut ws, &mut g).expect("runs");
        let second = step(&mut p, &x, &y, &mut ws, &mut g).expect("runs");
        assert!(second < first, "{second} < {first}");
        assert_eq!(spiral::Spiral::signature().model, "spiral");
    }
}

/// The text between `begin` and `end` in `text`.
fn between<'t>(text: &'t str, begin: &str, end: &str) -> &'t str {
    let start = text
        .find(begin)
        .map(|i| i + begin.len())
        .expect("begin marker");
    let len = text[start..].find(end).expect("end marker");
    &text[start..start + len]
}

#[test]
fn the_snippet_is_the_readmes() {
    let readme = include_str!("../README.md");
    let section = between(readme, "### Inside your crate: `net!`", "\n### ");
    let block = between(section, "```rust\n", "```\n");
    let this = include_str!("readme.rs");
    let snippet = between(this, "\n// ---- README begin\n", "// ---- README end\n");
    assert_eq!(
        block, snippet,
        "the README's net! snippet and tests/readme.rs differ"
    );
}
