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

#[rustfmt::skip]
mod training {
// ---- README training begin
use nnc::ndarray::{Array1, Array2, Axis};
use nnc::prelude::*; // Optimizer, Model, TensorSet, StdRng, SeedableRng, Rng, RngExt
use nnc::runtime::data::{BatchConfig, Minibatches, gather_rows};
use nnc::runtime::npz;
use nnc::runtime::optim::{Adam, AdamConfig};
use std::error::Error;
use std::path::Path;

nnc::net! {
    model classifier {
        dtype f32;
        dim N, D = 2, H = 64, C = 3;
        input x: [N, D];
        input labels: index[N];
        param w1: [D, H] = he;
        param b1: [H] = zeros;
        param w2: [H, C] = xavier;
        param b2: [C] = zeros;
        let scores = relu(x @ w1 + b1) @ w2 + b2;
        output scores;
        loss softmax_cross_entropy(scores, labels) + 1e-4 * (l2(w1) + l2(w2));
    }
}

/// Trains on `x` and `labels` with Adam in minibatches, saves the parameters to `path`,
/// loads them back and returns their accuracy on `x`.
fn train(x: &Array2<f32>, labels: &Array1<usize>, epochs: usize, path: &Path) -> Result<f32, Box<dyn Error>> {
    use classifier::{Classifier, Dims, Grads, Inputs, Params, Workspace};
    let mut params = Params::init(&mut StdRng::seed_from_u64(0)); // he, xavier, zeros as declared
    let mut adam = Adam::new(&params, AdamConfig { lr: 1e-2, ..AdamConfig::default() });
    let config = BatchConfig { batch_size: 32, seed: 1, drop_last: true };
    let mut batches = Minibatches::new(x.nrows(), config)?; // reshuffled every epoch
    // Buffers for one batch, allocated once: the loop below allocates nothing.
    let dims = Dims { n: config.batch_size };
    let (mut ws, mut grads) = (Workspace::new(dims), Grads::zeros(dims));
    let (mut batch_x, mut batch_labels) = (Array2::zeros((dims.n, x.ncols())), Array1::zeros(dims.n));
    for epoch in 0..epochs {
        let mut total = 0.0;
        for rows in batches.epoch() {
            gather_rows(x.view().into_dyn(), rows, batch_x.view_mut().into_dyn())?;
            gather_rows(labels.view().into_dyn(), rows, batch_labels.view_mut().into_dyn())?;
            let inputs = Inputs { x: batch_x.view(), labels: batch_labels.view() };
            total += classifier::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
            adam.step(&mut params, &grads)?; // `Optimizer::step`
        }
        if epoch % 50 == 0 {
            println!("epoch {epoch}: mean loss {:.4}", total / batches.batches_per_epoch() as f32);
        }
    }
    npz::save_params::<Classifier>(path, &params)?; // w1, b1, w2, b2 by name
    let params: Params = npz::load_params::<Classifier>(path)?;
    // Evaluation: the forward pass on all of `x` at once.
    let inputs = Inputs { x: x.view(), labels: labels.view() };
    let mut ws = Workspace::new(inputs.dims()?);
    let scores = classifier::forward(&params, &inputs, &mut ws)?.scores;
    let right = scores.axis_iter(Axis(0)).zip(labels).filter(|(row, label)| {
        let best = row.iter().enumerate().max_by(|a, b| a.1.total_cmp(b.1)).map(|(j, _)| j);
        best == Some(**label)
    });
    Ok(right.count() as f32 / x.nrows() as f32)
}
// ---- README training end

    #[test]
    fn the_training_loop_learns_the_spiral_and_its_saved_parameters_reload() {
        // The lecture's three-arm spiral, 100 points an arm, as the examples make it.
        let (x, labels) = crate::common::spiral(100, 3, &mut StdRng::seed_from_u64(5));
        let x = x.mapv(|v| v as f32);
        let path = Path::new(env!("CARGO_TARGET_TMPDIR")).join("readme_classifier.npz");
        let before = train(&x, &labels, 1, &path).expect("trains");
        let after = train(&x, &labels, 300, &path).expect("trains");
        // A linear classifier gets about half; the network separates the arms.
        assert!(after > 0.95 && after > before, "accuracy {before} after 1 epoch, {after} after 300");
        let names: Vec<String> = npz::NpzReader::open(&path).expect("saved").names().to_vec();
        assert_eq!(names, ["w1", "b1", "w2", "b2"]);
    }
}

// The examples' helpers (the module allows its own dead code: this test uses the
// spiral data alone).
#[path = "../examples/common/mod.rs"]
mod common;

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
fn the_training_loop_is_the_readmes() {
    let readme = include_str!("../README.md");
    let section = between(readme, "### Training: minibatches, Adam, npz", "\n### ");
    let block = between(section, "```rust\n", "```\n");
    let this = include_str!("readme.rs");
    let snippet = between(
        this,
        "\n// ---- README training begin\n",
        "// ---- README training end\n",
    );
    assert_eq!(
        block, snippet,
        "the README's training loop and tests/readme.rs differ"
    );
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
