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
pub use nnc_ir as ir;
pub use nnc_macros::net;
pub use nnc_runtime as runtime;
pub use nnc_runtime::{Model, ndarray, rand, rand_distr};
pub use nnc_syntax as syntax;

/// A model's derivation and generated code, as text: what `nnc grad` prints and what
/// `nnc compile` writes. Made for snapshot tests of your own models:
///
/// ```
/// let source = "model add_mul { dtype f64; param x: []; param y: []; param z: [];
///               let q = x + y; let f = q * z; loss f; }";
/// let explained = nnc::explain(source, "gates.nn", "add_mul").expect("compiles");
/// assert!(explained.derivation.contains("d_q = 1 * z"));
/// assert!(explained.code.contains("pub fn loss_and_grad"));
/// // In a test: insta::assert_snapshot!(explained.derivation);
/// ```
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// The forward pass, the backward pass rule by rule, and the simplified pass.
    pub derivation: String,
    /// The generated Rust module.
    pub code: String,
}

/// Compiles `model` from `source` and returns its [`Explained`] texts, or the rendered
/// diagnostics (`file_name` is used in both).
pub fn explain(source: &str, file_name: &str, model: &str) -> Result<Explained, String> {
    let render = |d: &[syntax::Diagnostic]| syntax::render(d, file_name, source);
    let models = ir::compile_source(source).map_err(|d| render(&d))?;
    let found = models.iter().find(|m| m.name == model).ok_or_else(|| {
        let names: Vec<&str> = models.iter().map(|m| m.name.as_str()).collect();
        format!(
            "{file_name} has no model `{model}`; its models: {}",
            names.join(", ")
        )
    })?;
    let derivation = autodiff::derive(found)
        .map_err(|e| e.to_string())?
        .render(autodiff::Format::Text);
    let options = codegen::Options {
        model: Some(model.to_string()),
        ..Default::default()
    };
    let code = codegen::compile_source(source, file_name, &options).map_err(|d| render(&d))?;
    Ok(Explained { derivation, code })
}
