//! # nnc-progen: random well-typed `.nn` programs, and a shrinker for failing ones
//!
//! Takes a seed and gives a [`Program`]: one `.nn` model (with the `fn` items it
//! calls) that the compiler must accept, built so that every stage after the parser
//! has something to get wrong. It covers the whole language: every primitive and
//! prelude function, broadcasting from both sides, every axis (positive and negative)
//! with and without `keepdims`, ranks 0 to 4, transposes, every `@` form, runtime and
//! fixed dims, `index` inputs with `pick` and `one_hot`, `where` and comparisons, user
//! `fn`s with defaults (expression- and block-bodied, calling each other), values used
//! several times, `grad` inputs, outputs (`argmax` too), `const`s, f32 and f64.
//!
//! Values stay where finite differences mean something: `log`, `sqrt`, `/` and
//! fractional powers only see arguments kept away from zero (`log(sigmoid(e) + 0.5)`),
//! `exp` sees a `tanh`, and `max`/`min` reductions and `argmax` see their argument plus
//! an input of its own shape (random, so no two elements tie).
//!
//! A program is kept as a small AST ([`Program`], [`Expr`]) with the shape of every
//! node, so that [`shrink`] can cut a failing program down (drop loss terms and
//! outputs, replace a node by a child or a variable of the same shape, drop what is
//! no longer used) while the failure persists. [`Program::source`] renders it.
//!
//! The random numbers are our own splitmix64: a seed gives the same program whatever
//! the versions of the crates around it.

mod ast;
mod generate;
mod rng;
mod shrink;

pub use ast::{Decl, DeclKind, Expr, Kind, Program, Sym, Ty};
pub use generate::generate;
pub use shrink::shrink;
