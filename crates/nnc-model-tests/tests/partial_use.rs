//! A program that uses only part of a module written by `nnc compile` compiles
//! without warnings: this test binary, like a user's binary crate, includes the
//! generated `two_layer` module (not as a library, where `pub` items count as used)
//! and calls only `Params::init` and `sgd_step`. The unused rest (`loss`, `forward`,
//! `Outputs`, the model type, ...) must not be reported as dead code, so the lint is
//! an error here: without the generated module's `allow(dead_code)` this file does not
//! compile. (`net!`'s expansion is not linted by rustc at all; this is the
//! `nnc compile` path.)

#![deny(dead_code)]

mod model {
    include!(concat!(env!("OUT_DIR"), "/two_layer.rs"));
}

use model::two_layer::{Grads, Inputs, Params, Workspace, sgd_step};
use nnc::ndarray::Array2;
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;

#[test]
fn a_program_may_use_part_of_a_generated_module() {
    let mut params = Params::init(&mut StdRng::seed_from_u64(0));
    let x = Array2::from_shape_fn((2, 1000), |(i, j)| ((i + j) % 7) as f64 / 7.0);
    let y = Array2::from_shape_fn((2, 10), |(i, j)| ((i * j) % 3) as f64);
    let inputs = Inputs {
        x: x.view(),
        y: y.view(),
    };
    let dims = inputs.dims().expect("inputs match the declarations");
    let mut ws = Workspace::new(dims);
    let mut grads = Grads::zeros(dims);
    let before = sgd_step(&mut params, &inputs, &mut ws, &mut grads, 1e-4).expect("step");
    let after = sgd_step(&mut params, &inputs, &mut ws, &mut grads, 1e-4).expect("step");
    assert!(after.is_finite() && after < before, "{before} -> {after}");
}
