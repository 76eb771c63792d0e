//! # nnc-syntax: the `.nn` front end
//!
//! Takes source text (or tokens from the `net!` macro) and gives an [`ast::File`] in
//! which every node carries its byte [`Span`], plus [`Diagnostic`]s for everything
//! wrong with it that can be seen without shapes.
//!
//! The pipeline inside: [`lexer`] (logos) → [`parser`] (lalrpop, grammar in
//! `grammar/nn.lalrpop`, with error recovery) → [`check`] (names, arity, recursion,
//! duplicates, loss count). [`builtins`] is the table of built-in functions and their
//! signatures, and [`prelude`] the built-ins written in `.nn` itself; both are shared
//! with lowering so the checker and the compiler agree on what exists.
//!
//! Invariants:
//! - Parsing never panics and never recurses deeper than
//!   [`lexer::MAX_NESTING`]/[`ast::MAX_EXPR_DEPTH`] allow: deeper input is an error.
//! - Spans are byte offsets into the text that was parsed; [`diagnostic::line_col`]
//!   turns one into a line (counting `\n` only) and a column (in characters), and
//!   [`render`] shows the same location.
//! - Work is linear in the input, errors included: no input makes a pass quadratic
//!   (name lookups are hashed, suggestions have a budget, recursion is found through
//!   strongly connected components, and [`render`] shows at most
//!   [`diagnostic::MAX_RENDERED`] diagnostics).

pub mod ast;
pub mod builtins;
pub mod check;
pub mod diagnostic;
pub mod lexer;
pub mod parser;
pub mod prelude;
pub mod source;
mod span;

pub use diagnostic::{Diagnostic, Severity, render};
pub use source::{MAX_SOURCE_BYTES, read_source};
pub use span::Span;

/// Parses and checks a source text: the AST (as much as could be built) and every
/// diagnostic, in source order. The file is usable by later phases only when the
/// diagnostics are empty.
pub fn parse_and_check(source: &str) -> (ast::File, Vec<Diagnostic>) {
    let (file, mut diagnostics) = parser::parse(source);
    if diagnostics.is_empty() {
        diagnostics = check::check(&file);
    }
    (file, diagnostics)
}
