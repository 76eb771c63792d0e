//! # nnc-macros: `net! { ... }`
//!
//! The compiler inside a user's crate. This crate is thin on purpose: it converts the
//! macro's Rust tokens into the front end's tokens ([`tokens`]), runs the same library
//! pipeline as `nnc compile`, and turns diagnostics into `compile_error!`s spanning
//! the user's own tokens. It holds no compiler logic.

mod expand;
mod tokens;

use proc_macro::TokenStream;

/// Compiles `.nn` models to Rust modules, exactly as `nnc compile` does.
///
/// Inline: `net! { model m { ... } fn f(x) = ...; }`. From a file, relative to the
/// crate's `Cargo.toml`: `net!(file = "models/spiral.nn")` (the crate rebuilds when the
/// file changes). Each model becomes a module named after it; errors point at the
/// offending tokens (inline) or name the `.nn` file, line and column.
#[proc_macro]
pub fn net(input: TokenStream) -> TokenStream {
    expand::net(input.into()).into()
}
