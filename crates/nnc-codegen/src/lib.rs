//! # nnc-codegen: from a model's IR to a Rust module
//!
//! Takes a model whose backward pass autodiff has appended ([`nnc_ir::Model`] with
//! `grads` filled) and writes one Rust module for it: `Params`, `Grads`, borrowed
//! `Inputs`, `Outputs`, a `Workspace` of preallocated buffers, the functions `loss`,
//! `forward` and `loss_and_grad`, and an implementation of the by-name
//! `::nnc::runtime::Model` trait. Everything the module refers to goes through the
//! `nnc` facade (`::nnc::runtime`, `::nnc::ndarray`, `::nnc::rand`), so it compiles in
//! any crate that depends on `nnc`.
//!
//! ## Two stages
//!
//! **Planning** ([`plan`]) is pure: for each of the three functions it decides how
//! each node is computed, in which loop, where it lives and on which threads. The
//! rules, in the order they apply:
//!
//! 1. *Leaves and views.* Parameters and inputs are read in place. Broadcasts,
//!    reshapes, transposes, one-hots and constants are *inline*: index arithmetic at
//!    the place of use (`b1[j]`, `w[j * 3 + i]`, `if labels[i] == j {..}`), never a
//!    buffer. Scalars are `let`s.
//! 2. *Loop nests.* Every other node joins, in topological order, the nest of the
//!    values it reads when the iteration spaces line up and nothing computed outside
//!    the nest lies between them; otherwise it starts its own. Nests over the same
//!    space that read the same array and do not depend on each other merge. So a
//!    chain of elementwise ops is one loop, and a reduction joins the loop computing
//!    its operand.
//! 3. *Rows and passes.* A nest's inner axis is the axis of its row operations
//!    (else the last). Row operations (softmax, log-softmax, logsumexp, max, min,
//!    argmax, pick, sums along it) are passes over that axis per row, each value in
//!    the earliest pass its operands allow: softmax cross-entropy and its gradient
//!    are one nest of three passes per row, and a bias gradient is a column sum in
//!    the pass that computes its operand.
//! 4. *Recomputation over storage.* A cheap value (`+ - * max min`, comparisons,
//!    squares) that another nest needs is recomputed there from values that exist
//!    anyway, not stored: the sigmoid backward reads `h` and recomputes
//!    `h * (1 - h)`, a ReLU backward recomputes its mask from the matmul's buffer.
//! 5. *Matmuls* with a side of at most 4 (`[300, 2] @ [2, 100]`) are written as
//!    elementwise products and sums first ([`thin`]), so they fuse into the loops
//!    around them. The others call the runtime's `linalg::matmul` (its own GEMM,
//!    packing into the workspace's scratch) on views of the workspace: transposed
//!    operands are `.t()` views, never copies; operands that are computed
//!    expressions are stored first. `P + A @ B` (a gradient with
//!    two contributions) writes `P` into the result and lets the matmul accumulate.
//! 6. *Storage.* A value is stored only if a matmul reads it, another nest or step
//!    reads it, or it is a result; results are written straight into `Grads` or the
//!    workspace, everything else stays in registers.
//! 7. *Threads.* A nest whose rows are independent (a matrix walked row by row,
//!    nothing accumulated across rows, every stored value written along its row)
//!    runs its rows on the workspace's threads (`rt::for_rows`, each row handed its
//!    own slices), with a cost per element that lets small calls stay on one
//!    thread; matmuls are split inside the runtime's GEMM.
//!
//! 8. *Loops written once.* Lowering unrolls a source loop, tagging each node with
//!    its step. Emission finds runs of consecutive steps of one loop (rising in the
//!    forward pass, falling in the backward one), writes each step with its values
//!    named by their offset from the loop variable (`h_prev`, `h_l`) and its
//!    positions through it (`w.index_axis(Axis(0), l)`, `d_w[l * 250000..]`), and
//!    writes the steps whose text is the first's as one `for l in a..b` loop
//!    ([`emit::roll`]). The values of such a loop that live in buffers share one
//!    stacked buffer per value, a slot per step (`h_steps`), which each step borrows
//!    with `rt::steps_mut`; a step whose code differs is written out as before.
//! 9. *Buffers shared.* Values of one element type and shape whose lives do not
//!    overlap take turns in one workspace buffer ([`emit::reuse`]), each bound to
//!    it just before its first statement: a deep network's pre-activations, or
//!    its `d_h`, one buffer each, still in cache from the layer before.
//!
//! `cargo run -p nnc-codegen --example plan FILE` (or `nnc compile --emit plan`)
//! prints the plans.
//!
//! **Emission** ([`emit`]) writes the module with `quote` and formats it with
//! `prettyplease`. Values are produced on demand by index: a loop asks for `h` at
//! `[i, j]` and gets a register, a buffer element, or the expression itself. Inside
//! a pass, arrays walked along their last axis are read through row slices bound
//! before the loop (`let t4_row = &t4[i * 100..][..100];`), so the loop indexes by
//! `j` alone: no bounds checks remain and it vectorises. Every statement carries a
//! comment: the value in the source's names, its source location, and, in the
//! backward pass, the derivative rule that produced it.
//!
//! ## Invariants
//!
//! - **No allocation in a call** once the workspace exists (for the same or smaller
//!   runtime dims): buffers are `Vec`s sized by `Workspace::grow`, parameters and
//!   inputs in another layout than row-major are copied into preallocated staging
//!   buffers, gradients are written in place, and the matmuls pack into the
//!   workspace's `GemmScratch`, reserved for every product the model computes.
//! - **Inputs are checked once per call**, before anything is computed: rank (by
//!   type), every axis against its declaration and against the other inputs sharing a
//!   runtime dim, every class index against its bound, every parameter's shape. A
//!   wrong input is an `Err(ShapeError)` naming the input, the dim and both sizes;
//!   nothing in generated code panics on any input, and there is no `unsafe`.
//! - **Same arithmetic as the interpreter**: the scalar functions are the IR's
//!   (`support::sigmoid` is `UnaryOp::Sigmoid::eval`), and floating-point evaluation
//!   order is the IR's (`a + (b + c)` keeps its parentheses). Only summation order in
//!   matmuls and reductions differs, and one function: in f32 models `tanh` is
//!   `support::tanh`, a branch-free rational approximation within 6 ulp of the
//!   correctly rounded result, because libm's `tanhf` kept W4's loops from
//!   vectorising (measured: the W4 step went from 1.0x to 1.4x the hand-written one).
//! - **A rolled loop computes what its steps written out compute**: a step joins
//!   the loop only when its code is the first step's, at its own index (so the
//!   same bits; `nnc-model-tests/tests/threads.rs` checks `deep_stack` against
//!   `deep_tanh`, its layers spelled out).
//! - **Warning-free**: generated modules pass `cargo clippy -- -D warnings` (the test
//!   crate `nnc-model-tests` compiles and lints every spec model), also in a binary
//!   crate that uses only part of one: a module is the model's whole API, like a
//!   library, so it allows `dead_code` (`nnc-model-tests/tests/partial_use.rs`).
//!
//! One function runs the whole pipeline for the CLI and the macro:
//! [`compile_source`].

pub mod emit;
pub mod names;
pub mod plan;
pub mod thin;

use nnc_syntax::{Diagnostic, Span};

/// What [`compile_source`] produces.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Emit {
    /// The Rust modules.
    #[default]
    Rust,
    /// The forward IR, as `nnc_ir::print` writes it.
    Ir,
    /// The IR with the simplified backward pass.
    GradIr,
    /// The fusion plans of the three functions.
    Plan,
}

/// How to compile.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Options {
    /// Only the model of this name; every model of the file when `None`.
    pub model: Option<String>,
    pub emit: Emit,
}

/// Parses, checks, lowers, differentiates and generates: the text for every model
/// of `source` (or the one `options.model` names), or the diagnostics.
///
/// `file_name` appears in the generated comments (`spiral.nn:17:18`).
pub fn compile_source(
    source: &str,
    file_name: &str,
    options: &Options,
) -> Result<String, Vec<Diagnostic>> {
    let models = nnc_ir::compile_source(source)?;
    let selected: Vec<&nnc_ir::Model> = match &options.model {
        None => models.iter().collect(),
        Some(name) => {
            let found: Vec<&nnc_ir::Model> = models.iter().filter(|m| &m.name == name).collect();
            if found.is_empty() {
                let names: Vec<String> = models.iter().map(|m| format!("`{}`", m.name)).collect();
                let list = if names.is_empty() {
                    "none".to_string()
                } else {
                    names.join(", ")
                };
                return Err(vec![
                    Diagnostic::error(
                        format!("no model named `{name}` in {file_name}"),
                        Span::default(),
                    )
                    .with_note(format!("the file's models: {list}")),
                ]);
            }
            found
        }
    };
    let mut out = String::new();
    let located = nnc_syntax::diagnostic::LineIndex::new(source);
    if options.emit == Emit::Rust {
        out.push_str(&format!(
            "// Generated by nnc from `{file_name}`. Do not edit.\n\n"
        ));
    }
    for (i, model) in selected.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        if options.emit == Emit::Ir {
            out.push_str(&nnc_ir::print::print(model, Some(&located)));
            continue;
        }
        let derived =
            nnc_autodiff::with_gradients(model).map_err(|e| vec![e.to_diagnostic(&model.name)])?;
        match options.emit {
            Emit::GradIr => out.push_str(&nnc_ir::print::print(&derived, Some(&located))),
            Emit::Plan => {
                let derived = thin::expand(&derived);
                for entry in [
                    plan::Entry::Loss,
                    plan::Entry::Forward,
                    plan::Entry::LossAndGrad,
                ] {
                    out.push_str(&plan::describe(&derived, &plan::plan(&derived, entry)));
                }
            }
            _ => {
                let text = generate(&derived, &located, file_name).map_err(|e| {
                    vec![Diagnostic::error(
                        format!("model `{}`: internal error: {e}", model.name),
                        Span::default(),
                    )]
                })?;
                out.push_str(&text);
            }
        }
    }
    Ok(out)
}

/// The formatted Rust module for one differentiated model; `source` is the text the
/// model was compiled from, indexed once for every model of the file.
pub fn generate(
    model: &nnc_ir::Model,
    source: &nnc_syntax::diagnostic::LineIndex<'_>,
    file_name: &str,
) -> Result<String, String> {
    let model = thin::expand(model);
    let tokens = emit::module(
        &model,
        emit::Source {
            lines: source,
            file: file_name,
        },
    );
    emit::finish(tokens)
}
