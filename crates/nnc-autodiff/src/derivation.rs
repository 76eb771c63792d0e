//! The derivation as a person reads it (`nnc grad`): the forward pass, then the
//! backward pass line by line in the source's names (`d_h = d_y_pred @ w2.T`), each
//! line with the rule that produced it; then the simplified backward pass.
//!
//! Values are printed as expressions. A value gets its own line when it has a name
//! (a `let`, or a gradient `d_...`), is used more than once, or is a result;
//! otherwise it is written inline where it is used.

use nnc_ir::{BinaryOp, LoopStep, Model, NodeId, Op, ReduceOp, UnaryOp};
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
/// shared or result value, the steps of a loop folded (see [`fold_steps`]).
pub fn listing(model: &Model, from: usize, format: Format) -> String {
    let names = line_names(model);
    let mut lines: Vec<(Option<LoopStep>, String)> = vec![];
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
        let line = match (format, node.rule) {
            (Format::Text, Some(rule)) => format!("  {:<52} // {rule}", format!("{name} = {rhs}")),
            (Format::Text, None) => format!("  {name} = {rhs}"),
            (Format::Latex, _) => format!("  {} &= {} \\\\", latex_name(name), rhs),
        };
        lines.push((node.step, line));
    }
    fold_steps(model, &lines, format)
}

/// The lines, with the steps of each loop folded: a step whose lines are those of
/// the step shown before it but for numbers (its positions, the step in its names)
/// is left out, and each run of steps left out is one line saying so. So a loop of
/// 100 layers shows its first step (which reads the loop's start), one step like
/// all the others, and its last (which gives the `let`'s value).
fn fold_steps(model: &Model, lines: &[(Option<LoopStep>, String)], format: Format) -> String {
    let mut out = String::new();
    let mut shown: Option<(LoopStep, Vec<String>)> = None;
    // The first and last step of the run left out since the one shown.
    let mut skipped: Option<(usize, usize)> = None;
    let mut k = 0;
    while k < lines.len() {
        let step = lines[k].0;
        let end = (k..lines.len())
            .find(|j| lines[*j].0 != step)
            .unwrap_or(lines.len());
        let block = &lines[k..end];
        k = end;
        let Some(step) = step else {
            flush_skipped(&mut out, model, &shown, &mut skipped, format);
            shown = None;
            block.iter().for_each(|(_, l)| push_line(&mut out, l));
            continue;
        };
        let shape: Vec<String> = block.iter().map(|(_, l)| without_numbers(l)).collect();
        if let Some((prev, prev_shape)) = &shown
            && prev.lp == step.lp
            && *prev_shape == shape
        {
            skipped = Some((skipped.map_or(step.index, |(first, _)| first), step.index));
            continue;
        }
        flush_skipped(&mut out, model, &shown, &mut skipped, format);
        let info = &model.loops[step.lp as usize];
        comment(
            &mut out,
            format,
            &format!(
                "step {} = {} of `for {} in {}..{}`",
                info.index, step.index, info.index, info.start, info.end
            ),
        );
        block.iter().for_each(|(_, l)| push_line(&mut out, l));
        shown = Some((step, shape));
    }
    flush_skipped(&mut out, model, &shown, &mut skipped, format);
    out
}

/// The line saying which steps were left out, like the one shown before them.
fn flush_skipped(
    out: &mut String,
    model: &Model,
    shown: &Option<(LoopStep, Vec<String>)>,
    skipped: &mut Option<(usize, usize)>,
    format: Format,
) {
    let (Some((like, _)), Some((first, last))) = (shown, skipped.take()) else {
        return;
    };
    let index = &model.loops[like.lp as usize].index;
    let which = match first.cmp(&last) {
        std::cmp::Ordering::Equal => format!("step {index} = {first}"),
        std::cmp::Ordering::Less => format!("steps {index} = {first} to {last}"),
        std::cmp::Ordering::Greater => format!("steps {index} = {first} down to {last}"),
    };
    comment(
        out,
        format,
        &format!(
            "{which}: as step {index} = {}, at their own {index}",
            like.index
        ),
    );
}

fn comment(out: &mut String, format: Format, text: &str) {
    let _ = match format {
        Format::Text => writeln!(out, "  // {text}"),
        Format::Latex => writeln!(out, "  % {text}"),
    };
}

fn push_line(out: &mut String, line: &str) {
    let _ = writeln!(out, "{line}");
}

/// A line with every run of digits written `#` and every run of spaces one space:
/// two steps' lines compare equal when they differ only in positions and the step
/// numbers in their names (and so in the padding before the rule).
fn without_numbers(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    for c in line.chars() {
        let c = match c {
            '0'..='9' => '#',
            c => c,
        };
        if !(matches!(c, '#' | ' ') && out.ends_with(c)) {
            out.push(c);
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

/// The most pieces of a `concat` shown; longer ones show their first and last.
const SHOWN_ROWS: usize = 6;

/// A sum of rows each padded into its place along axis 0, all of them once in
/// order (the gradient of a stack read as `w[l]` at every step): the rows, for
/// rendering as the `concat` it is. The sums between them must be inline.
fn joined_rows(model: &Model, id: NodeId, names: &[Option<String>]) -> Option<Vec<NodeId>> {
    let size = model.shape(id).first().copied();
    let join = model.axis0_join(id, |x| names[x.index()].is_none())?;
    // Rows as found (the tree bounds their number, not the axis's size, which can
    // be 2^40), then in order: one for each position.
    let mut rows: Vec<(usize, NodeId)> = vec![];
    for pad in join.pads {
        let node = model.node(pad);
        let Op::Pad { start, .. } = node.op else {
            return None;
        };
        if model.shape(node.args[0]).first() != Some(&nnc_ir::Dim::Fixed(1)) {
            return None;
        }
        rows.push((start, node.args[0]));
    }
    rows.sort_by_key(|(start, _)| *start);
    let each_once = rows.iter().enumerate().all(|(k, (start, _))| k == *start);
    let tiles = size == Some(nnc_ir::Dim::Fixed(rows.len()));
    (each_once && tiles).then(|| rows.into_iter().map(|(_, r)| r).collect())
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
    if let Some(rows) = joined_rows(model, id, names) {
        let mut parts: Vec<String> = rows
            .iter()
            .map(|r| render(model, *r, names, format, false))
            .collect();
        // A stack's gradient from a 100-step loop: its first rows and its last.
        if parts.len() > SHOWN_ROWS {
            let last = parts.pop().unwrap_or_default();
            parts.truncate(SHOWN_ROWS - 2);
            parts.extend(["...".to_string(), last]);
        }
        return format!("concat({}, axis = 0)", parts.join(", "));
    }
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
