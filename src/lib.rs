//! # nnc — a compiler for small neural networks
//!
//! Describe a model and its loss in the `.nn` language; nnc checks its shapes at
//! compile time, derives the backward pass symbolically and generates plain Rust
//! that computes the loss and its gradients in fused loops.
//!
//! This crate is the one dependency a user adds. It re-exports:
//! - [`runtime`]: what generated models stand on (the [`Model`] trait, initialisers,
//!   npz I/O, optimisers, data utilities), with `ndarray` and `rand`;
//! - the compiler's stages, for programs that drive it: [`syntax`] (parse and check),
//!   [`ir`] (lower, print, interpret) and [`autodiff`] (derive, simplify).
//!
//! Generated code refers to everything through `::nnc::...`, so it compiles in any
//! crate that depends on `nnc`.

pub use nnc_autodiff as autodiff;
pub use nnc_codegen as codegen;
pub use nnc_macros::net;
pub use nnc_ir as ir;
pub use nnc_runtime as runtime;
pub use nnc_runtime::{Model, ndarray, rand, rand_distr};
pub use nnc_syntax as syntax;
