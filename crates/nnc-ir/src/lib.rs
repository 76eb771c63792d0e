//! # nnc-ir: the typed tensor IR
//!
//! Takes a checked AST ([`nnc_syntax::ast::File`]) and gives one [`Model`] per
//! `model` item: declarations (dims, inputs, params), an arena of [`Node`]s, the
//! outputs and the loss. Autodiff appends the backward pass to the same arena, and
//! codegen reads it; neither sees the AST.
//!
//! Invariants (every pass keeps them):
//! - **Topological arena.** A node's operands have smaller [`NodeId`]s than the node,
//!   so a forward walk evaluates and a backward walk differentiates.
//! - **Typed.** Every node has its element kind and shape, inferred by
//!   [`shape::infer`] when it is pushed; a shape is a list of [`Dim`]s, fixed numbers
//!   or runtime dim symbols. A runtime dim matches only itself (or a broadcast 1).
//! - **Sized.** No value has more than [`MAX_ELEMENTS`] elements (counting fixed dims),
//!   so sizes, strides and offsets computed from shapes cannot overflow.
//! - **Hash-consed forward pass.** Lowering makes one node per distinct op, operands
//!   and type: the same expression written twice, or a function called twice on the
//!   same values, is one node. (The backward pass is shared the same way by the
//!   simplifier's CSE.)
//! - **Small op set.** [`Op`] is the whole primitive set; built-ins lower to it, and
//!   the activations and losses come from the `.nn` prelude.
//! - **Spans point at user source.** Nodes inlined from the prelude carry the span of
//!   the user's call.
//!
//! - **Modes are leaves.** `dropout`, `batch_norm` and `state` add no op: a state,
//!   a dropout mask and the mode flag are inputs of their own [`InputKind`], lowered
//!   per [`Mode`] (the training step, eval mode, or both for code generation), and
//!   the training step's writes to the states are roots, [`Model::state_updates`].
//!
//! Also here: the text form ([`print`]), the reference interpreter ([`interp`]), the
//! oracle the generated code is tested against, and the binding of the leaves the
//! modes add ([`modes`]).

pub mod interp;
mod lint;
pub mod lower;
mod model;
pub mod modes;
pub mod op;
pub mod print;
pub mod shape;
mod types;

pub use lint::warnings;
pub use lower::{grad_targets, lower_file, lower_file_in, lower_model};
pub use model::{
    Axis0Join, Call, GradOf, Init, InputInfo, InputKind, LoopInfo, LoopStep, Mode, Model, Node,
    NodeId, NodeKey, ParamInfo,
};
pub use op::{BinaryOp, CmpOp, InputId, Op, ParamId, ReduceOp, UnaryOp};
pub use types::{
    DType, Dim, DimId, DimInfo, Elem, MAX_ELEMENTS, Shape, Type, checked_elements, fixed_elements,
};

/// Parses, checks and lowers a source text: every model, or every diagnostic.
/// Models with modes are lowered [`Mode::Switched`], as code generation needs them.
pub fn compile_source(source: &str) -> Result<Vec<Model>, Vec<nnc_syntax::Diagnostic>> {
    compile_source_in(source, Mode::Switched)
}

/// [`compile_source`] in one mode: [`Mode::Train`] for the training step's graph
/// (what `nnc grad` derives and `nnc gradcheck` checks), [`Mode::Eval`] for inference.
pub fn compile_source_in(
    source: &str,
    mode: Mode,
) -> Result<Vec<Model>, Vec<nnc_syntax::Diagnostic>> {
    let (file, diagnostics) = nnc_syntax::parse_and_check(source);
    if !diagnostics.is_empty() {
        return Err(diagnostics);
    }
    lower_file_in(&file, mode)
}
