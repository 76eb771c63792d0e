//! # nnc-model-tests: every spec model, compiled
//!
//! `build.rs` runs the code generator on every model in `examples/models/*.nn` (the
//! spec models) and `models/*.nn` (cases the spec models do not reach: reductions
//! along other axes, rank-3 values, `grad` inputs, ...) at build time; this crate is
//! those modules (`nnc_model_tests::spiral`, `nnc_model_tests::two_layer`, ...), and
//! its tests compare each one against the IR interpreter: loss, outputs and
//! gradients at two batch sizes, in `f32` and `f64`; no allocation in `loss_and_grad`
//! once the workspace exists; wrong inputs give the right errors.
//!
//! The generated code is never checked in: it is rebuilt whenever a model or the
//! code generator changes, and `cargo clippy --all-targets -- -D warnings` lints it
//! like any other code here.

pub mod harness;

include!(concat!(env!("OUT_DIR"), "/models.rs"));

/// The random programs of `nnc-progen` (seeds 0..300 unless `NNC_RANDOM_SEEDS` or
/// `NNC_RANDOM_FILE` say otherwise; see `build.rs`), compiled like the models above.
pub mod random {
    include!(concat!(env!("OUT_DIR"), "/random.rs"));
}
