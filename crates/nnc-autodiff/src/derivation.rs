//! The derivation as a person reads it (`nnc grad`): the forward pass, then the
//! backward pass line by line in the source's names (`d_h = d_y_pred @ w2.T`), each
//! line with the rule that produced it; then the simplified backward pass.
//!
//! Values are printed as expressions. A value gets its own line when it has a name
//! (a `let`, or a gradient `d_...`), is used more than once, or is a result;
//! otherwise it is written inline where it is used.

use nnc_ir::{BinaryOp, Model, NodeId, Op, ReduceOp, UnaryOp};
use std::fmt::Write;

/// Output format of a derivation.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Format {
    #[default]
    Text,
    /// LaTeX `align*` body, for course notes.
    Latex,
}

/// Renders the value listing of `model` from node `from` on: one line per named,
/// shared or result value.
pub fn listing(model: &Model, from: usize, format: Format) -> String {
    let names = line_names(model);
    let mut out = String::new();
    for i in from..model.nodes.len() {
        let Some(name) = &names[i] else { continue };
        let node = &model.nodes[i];
        if matches!(
            node.op,
            Op::Input(_) | Op::Param(_) | Op::Const(_) | Op::DimSize(_)
        ) {
            continue;
        }
        let rhs = render(model, NodeId(i as u32), &names, format, true);
        match format {
            Format::Text => {
                let line = format!("{name} = {rhs}");
                match node.rule {
                    Some(rule) => {
                        let _ = writeln!(out, "  {line:<52} // {rule}");
                    }
                    None => {
                        let _ = writeln!(out, "  {line}");
                    }
                }
            }
            Format::Latex => {
                let _ = writeln!(out, "  {} &= {} \\\\", latex_name(name), rhs);
            }
        }
    }
    out
}

/// A value as one expression, every intermediate written inline (for tests and
/// short displays).
pub fn expression(model: &Model, id: NodeId) -> String {
    let names: Vec<Option<String>> = model
        .nodes
        .iter()
        .map(|n| match n.op {
            Op::Input(i) => Some(model.inputs[i.0 as usize].name.clone()),
            Op::Param(p) => Some(model.params[p.0 as usize].name.clone()),
            _ => None,
        })
        .collect();
    render(model, id, &names, Format::Text, true)
}

/// The names of the values that get their own line (`None`: written inline).
fn line_names(model: &Model) -> Vec<Option<String>> {
    let mut uses = vec![0usize; model.nodes.len()];
    for n in &model.nodes {
        for a in &n.args {
            uses[a.index()] += 1;
        }
    }
    let roots: Vec<NodeId> = model
        .outputs
        .iter()
        .map(|(_, n)| *n)
        .chain([model.loss])
        .chain(model.grads.iter().map(|(_, n)| *n))
        .collect();
    model
        .nodes
        .iter()
        .enumerate()
        .map(|(i, n)| match (&n.op, &n.name) {
            (Op::Input(id), _) => Some(model.inputs[id.0 as usize].name.clone()),
            (Op::Param(id), _) => Some(model.params[id.0 as usize].name.clone()),
            (Op::Const(_) | Op::DimSize(_), _) => None,
            (_, Some(name)) => Some(name.clone()),
            _ if uses[i] > 1 || roots.contains(&NodeId(i as u32)) => Some(format!("t{i}")),
            _ => None,
        })
        .collect()
}

/// Binding strength, for parentheses: higher binds tighter.
fn precedence(op: &Op) -> u8 {
    match op {
        Op::Compare(_) => 1,
        Op::Binary(BinaryOp::Add | BinaryOp::Sub) => 2,
        Op::Binary(BinaryOp::Mul | BinaryOp::Div) | Op::MatMul => 3,
        Op::Unary(UnaryOp::Neg) => 4,
        Op::Powf(_) => 5,
        _ => 6,
    }
}

/// A node as an expression; `top` renders the definition itself rather than a use.
fn render(
    model: &Model,
    id: NodeId,
    names: &[Option<String>],
    format: Format,
    top: bool,
) -> String {
    let node = model.node(id);
    if let (false, Some(name)) = (top, &names[id.index()]) {
        return match format {
            Format::Text => name.clone(),
            Format::Latex => latex_name(name),
        };
    }
    let arg = |i: usize| render(model, node.args[i], names, format, false);
    // An operand, parenthesised if it binds more loosely than `min` allows.
    let operand = |i: usize, min: u8| {
        let a = node.args[i];
        let inline = names[a.index()].is_none();
        let text = arg(i);
        if inline && precedence(&model.node(a).op) < min {
            format!("({text})")
        } else {
            text
        }
    };
    let p = precedence(&node.op);
    let dims = |shape: &nnc_ir::Shape| model.shape_str(shape);
    match &node.op {
        Op::Input(i) => model.inputs[i.0 as usize].name.clone(),
        Op::Param(i) => model.params[i.0 as usize].name.clone(),
        Op::Const(c) => nnc_ir::print::number(*c),
        Op::DimSize(d) => model.dim_name(*d).to_string(),
        Op::Unary(UnaryOp::Neg) => format!("-{}", operand(0, p + 1)),
        Op::Unary(u) => format!("{}({})", u.name(), arg(0)),
        Op::Powf(c) => format!("{} ^ {}", operand(0, p + 1), nnc_ir::print::number(*c)),
        Op::Binary(b) => match b.symbol() {
            // Left-associative: the right operand needs parentheses at equal precedence.
            Some(sym) => match (format, b) {
                (Format::Latex, BinaryOp::Mul) => {
                    format!("{} \\cdot {}", operand(0, p), operand(1, p + 1))
                }
                (Format::Latex, BinaryOp::Div) => format!("\\frac{{{}}}{{{}}}", arg(0), arg(1)),
                _ => format!("{} {sym} {}", operand(0, p), operand(1, p + 1)),
            },
            None => format!("{}({}, {})", b.name(), arg(0), arg(1)),
        },
        Op::Compare(c) => format!("{} {} {}", operand(0, p + 1), c.symbol(), operand(1, p + 1)),
        Op::Select => format!("where({}, {}, {})", arg(0), arg(1), arg(2)),
        Op::Reduce { op, axis, keepdims } => {
            let name = match op {
                ReduceOp::Sum => "sum",
                ReduceOp::Max => "max",
                ReduceOp::Min => "min",
                ReduceOp::LogSumExp => "logsumexp",
            };
            format!("{name}({}{})", arg(0), axis_args(*axis, *keepdims))
        }
        Op::Softmax { axis } => format!("softmax({}, axis = {axis})", arg(0)),
        Op::LogSoftmax { axis } => format!("log_softmax({}, axis = {axis})", arg(0)),
        Op::ExtremumMask { op, axis } => {
            format!(
                "first_arg{}_mask({}{})",
                op.name(),
                arg(0),
                axis_args(*axis, false)
            )
        }
        Op::MatMul => match format {
            Format::Latex => format!("{} {}", operand(0, p), operand(1, p + 1)),
            Format::Text => format!("{} @ {}", operand(0, p), operand(1, p + 1)),
        },
        Op::Transpose => match format {
            Format::Latex => format!("{}^\\top", operand(0, 6)),
            Format::Text => format!("{}.T", operand(0, 6)),
        },
        Op::Reshape => format!("reshape({}, {})", arg(0), dims(&node.ty.shape)),
        Op::Broadcast => format!("broadcast({}, {})", arg(0), dims(&node.ty.shape)),
        Op::Slice { axis, start, len } => {
            nnc_ir::print::slice_text(&operand(0, 6), *axis, *start, *len)
        }
        Op::Pad { axis, start, size } => {
            format!(
                "pad({}, axis = {axis}, start = {start}, size = {size})",
                arg(0)
            )
        }
        Op::Pick { keepdims } => {
            let k = if *keepdims { ", keepdims = true" } else { "" };
            format!("pick({}, {}{k})", arg(0), arg(1))
        }
        Op::OneHot { classes } => format!("one_hot({}, {})", arg(0), model.dim_str(*classes)),
        Op::ArgMax { axis, keepdims } => {
            let k = if *keepdims { ", keepdims = true" } else { "" };
            format!("argmax({}, axis = {axis}{k})", arg(0))
        }
    }
}

fn axis_args(axis: Option<usize>, keepdims: bool) -> String {
    let mut s = String::new();
    if let Some(a) = axis {
        let _ = write!(s, ", axis = {a}");
    }
    if keepdims {
        s.push_str(", keepdims = true");
    }
    s
}

/// `d_w1` as `\partial w_1`-style LaTeX: `d_` becomes a partial, underscores subscript.
pub(crate) fn latex_name(name: &str) -> String {
    let (partial, base) = match name.strip_prefix("d_") {
        Some(rest) => ("\\partial ", rest),
        None => ("", name),
    };
    let base = base.replace('_', "\\_");
    format!("{partial}\\mathit{{{base}}}")
}
