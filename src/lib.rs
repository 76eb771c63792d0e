//! # nnc — a compiler for small neural networks
//!
//! Describe a model and its loss in the `.nn` language; nnc checks its shapes at
//! compile time, derives the backward pass symbolically and generates plain Rust
//! that computes the loss and its gradients in fused loops.
//!
//! This crate is the one dependency a user adds. It re-exports:
//! - [`runtime`]: what generated models stand on (the [`Model`] trait, the matrix
//!   products and threads, initialisers, optimisers, data utilities, gradient
//!   checks; npz I/O with the `npz` feature), with `ndarray` and `rand`;
//! - [`net!`](macro@net) (feature `macros`): a model compiled inside your crate;
//! - the compiler's stages (feature `compiler`), for programs that drive it:
//!   `syntax` (parse and check), `ir` (lower, print, interpret), `autodiff`
//!   (derive, simplify), `codegen`, and `explain` for snapshot tests;
//! - `graph` (feature `graph`): pictures of a model's computational graph with the
//!   values and gradients on its wires, as DOT, SVG or PNG;
//! - [`prelude`]: the traits a training loop calls methods of.
//!
//! Generated code refers to everything through `::nnc::...`, so it compiles in any
//! crate that depends on `nnc`, with any features.
//!
//! ## Features
//!
//! | feature | default | gives | costs |
//! |---|---|---|---|
//! | (none) | | the runtime core: all that `nnc compile` output needs | ndarray, rand |
//! | `macros` | yes | `net! { ... }` | the compiler, built for your build |
//! | `npz` | yes | `runtime::npz`, `runtime::atomic` | zip, deflate, tempfile |
//! | `os-rng` | yes | `rand::rng()`, seeding from the operating system | getrandom |
//! | `compiler` | | `syntax`, `ir`, `autodiff`, `codegen`, `explain` | the compiler |
//! | `pca` | | `runtime::data::Pca` | nalgebra |
//! | `graph` | | `graph` (with `compiler`) | layout-rs, resvg |
//! | `full` | | all of the above | |

#![warn(missing_docs)]

#[cfg(feature = "compiler")]
pub use nnc_autodiff as autodiff;
#[cfg(feature = "compiler")]
pub use nnc_codegen as codegen;
#[cfg(feature = "graph")]
pub use nnc_graph as graph;
#[cfg(feature = "compiler")]
pub use nnc_ir as ir;
#[cfg(feature = "macros")]
pub use nnc_macros::net;
pub use nnc_runtime as runtime;
pub use nnc_runtime::{Model, ndarray, rand, rand_distr};
#[cfg(feature = "compiler")]
pub use nnc_syntax as syntax;

/// The traits a training loop calls methods of, and the seeded generator, in one
/// import: `use nnc::prelude::*;`.
///
/// ```
/// use nnc::prelude::*;
///
/// let mut rng = StdRng::seed_from_u64(7);
/// let x: f64 = rng.random(); // `RngExt`: rand 0.10's home of `random`
/// assert!((0.0..1.0).contains(&x));
/// ```
pub mod prelude {
    pub use nnc_runtime::optim::Optimizer;
    pub use nnc_runtime::rand::rngs::StdRng;
    pub use nnc_runtime::rand::{Rng, RngExt, SeedableRng};
    pub use nnc_runtime::{Model, TensorSet};
}

/// A model's derivation and generated code, as text: what `nnc grad` prints and what
/// `nnc compile` writes. Made for snapshot tests of your own models:
///
/// ```
/// let source = "model add_mul { dtype f64; param x: []; param y: []; param z: [];
///               let q = x + y; let f = q * z; loss f; }";
/// let explained = nnc::explain(source, "gates.nn", "add_mul").expect("compiles");
/// assert!(explained.derivation.contains("d_q = 1 * z"));
/// assert!(explained.summary.contains("fn loss_and_grad\n    // q = x + y"));
/// assert!(explained.code.contains("pub fn loss_and_grad"));
/// // In a test: insta::assert_snapshot!(explained.derivation);
/// //            insta::assert_snapshot!(explained.summary);
/// ```
#[cfg(feature = "compiler")]
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Explained {
    /// The forward pass, the backward pass rule by rule, and the simplified pass.
    pub derivation: String,
    /// The generated code in brief: each function of the model's module (`loss`,
    /// `forward`, `loss_and_grad`, `sgd_step`) with the comment of every statement
    /// and loop it runs, in order, and no Rust. A few dozen lines where `code` has
    /// hundreds: the snapshot to review when a change to a model changes what is
    /// computed.
    pub summary: String,
    /// The generated Rust module.
    pub code: String,
}

/// Compiles `model` from `source` and returns its [`Explained`] texts, or the rendered
/// diagnostics (`file_name` is used in both).
#[cfg(feature = "compiler")]
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
    let summary = summarise(&code);
    Ok(Explained {
        derivation,
        summary,
        code,
    })
}

/// [`Explained::summary`] of generated `code`: a line per function of the model's
/// module, then that function's statement comments, indented by the braces they sit
/// in (a loop, a row loop's closure: one level each).
#[cfg(feature = "compiler")]
fn summarise(code: &str) -> String {
    // The module's own functions start at four spaces; the trait impls' methods
    // deeper, and are left out (they forward to these).
    const FUNCTION: &str = "    pub fn ";
    let mut summary = String::new();
    // Open braces since the function's line, while inside one of those functions.
    let mut depth: Option<usize> = None;
    for line in code.lines() {
        if let Some(rest) = line.strip_prefix(FUNCTION) {
            let name = rest.split(['(', '<']).next().unwrap_or(rest);
            summary.push_str(&format!("fn {name}\n"));
            depth = Some(0);
        }
        let Some(open) = depth else { continue };
        let text = line.trim_start();
        if text.starts_with("// ") {
            summary.push_str(&format!("{}{text}\n", "    ".repeat(open)));
            continue;
        }
        // Generated code has no braces in strings: what it formats are values.
        let closed = text.matches('}').count();
        let now = (open + text.matches('{').count()).saturating_sub(closed);
        // The brace that brings the count back to 0 ends the function (the
        // signature's lines before its first brace are at 0 too, but close nothing).
        depth = (now > 0 || closed == 0).then_some(now);
    }
    summary
}
