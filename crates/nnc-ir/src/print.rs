//! The IR's stable text form: one node per line, source names kept, for snapshots,
//! `nnc compile --emit ir` and `nnc grad`.
//!
//! ```text
//! %3 = sigmoid %2                          : [N, 100]   h  @14:13
//! ```

use crate::model::{Init, InputKind, Model};
use crate::op::Op;
use nnc_syntax::diagnostic::LineIndex;
use std::fmt::Write;

/// A number as a person writes it: `2`, `0.5`, `1e-8`.
pub fn number(v: f64) -> String {
    if v.fract() == 0.0 && v.abs() < 1e15 {
        format!("{}", v as i64)
    } else if v != 0.0 && (v.abs() < 1e-4 || v.abs() >= 1e15) {
        format!("{v:e}")
    } else {
        format!("{v}")
    }
}

fn init_str(init: &Init) -> String {
    match init {
        Init::Zeros => "zeros".into(),
        Init::Ones => "ones".into(),
        Init::Constant(c) => number(*c),
        Init::Normal { mean, std } => format!("normal({}, {})", number(*mean), number(*std)),
        Init::Uniform { lo, hi } => format!("uniform({}, {})", number(*lo), number(*hi)),
        Init::Xavier => "xavier".into(),
        Init::He => "he".into(),
    }
}

/// The whole model: declarations, nodes, then outputs, loss and gradients; with the
/// source's [`LineIndex`] (built once for all the models of a file, so printing them
/// all takes linear time), each node ends with its `@line:col`.
pub fn print(model: &Model, source: Option<&LineIndex<'_>>) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "model {} ({})", model.name, model.dtype);
    for d in &model.dims {
        match d.size {
            Some(n) => {
                let _ = writeln!(out, "  dim {} = {n}", d.name);
            }
            None => {
                let _ = writeln!(out, "  dim {}", d.name);
            }
        }
    }
    for i in &model.inputs {
        let grad = if i.grad { " grad" } else { "" };
        let ty = model.type_str(&i.ty);
        let _ = match i.kind {
            InputKind::Data => writeln!(out, "  input {}: {ty}{grad}", i.name),
            InputKind::State(init) => {
                writeln!(out, "  state {}: {ty} = {}", i.name, init_str(&init))
            }
            InputKind::Mask { keep } => {
                writeln!(out, "  mask {}: {ty} (keep {})", i.name, number(keep))
            }
            InputKind::Training => writeln!(out, "  mode {}: {ty}", i.name),
        };
    }
    for p in &model.params {
        let _ = writeln!(
            out,
            "  param {}: {} = {}",
            p.name,
            model.shape_str(&p.shape),
            init_str(&p.init)
        );
    }
    for i in 0..model.nodes.len() {
        let _ = writeln!(out, "  {}", node_line(model, i, source));
    }
    for (name, node) in &model.outputs {
        let _ = writeln!(out, "  output {name} = %{}", node.0);
    }
    let _ = writeln!(out, "  loss = %{}", model.loss.0);
    for (state, node) in &model.state_updates {
        let name = &model.inputs[state.0 as usize].name;
        let _ = writeln!(out, "  update {name} = %{}", node.0);
    }
    for (of, node) in &model.grads {
        let _ = writeln!(out, "  grad {} = %{}", model.grad_name(*of), node.0);
    }
    out
}

/// One node: `%3 = sigmoid %2 : [N, 100]  h @14:13`.
pub fn node_line(model: &Model, index: usize, source: Option<&LineIndex<'_>>) -> String {
    let node = &model.nodes[index];
    let mut instr = format!("%{index} = {}", node.op);
    match &node.op {
        Op::Input(i) => instr.push_str(&format!(" {}", model.inputs[i.0 as usize].name)),
        Op::Param(p) => instr.push_str(&format!(" {}", model.params[p.0 as usize].name)),
        Op::DimSize(d) => instr.push_str(&format!(" {}", model.dim_name(*d))),
        Op::OneHot { classes } => instr.push_str(&format!(" classes={}", model.dim_str(*classes))),
        _ => {}
    }
    let args: Vec<String> = node.args.iter().map(|a| format!("%{}", a.0)).collect();
    if !args.is_empty() {
        instr.push(' ');
        instr.push_str(&args.join(", "));
    }
    let mut line = format!("{instr:<44} : {}", model.type_str(&node.ty));
    let leaf_named = matches!(node.op, Op::Input(_) | Op::Param(_));
    if let (Some(name), false) = (&node.name, leaf_named) {
        line.push_str(&format!("  {name}"));
    }
    if let Some(src) = source {
        let (l, c) = src.line_col(node.span.start);
        line.push_str(&format!("  @{l}:{c}"));
    }
    line
}

/// A slice in the source's notation: `x[:, 2:4]` for `len` positions from `start`
/// along axis 1.
pub fn slice_text(operand: &str, axis: usize, start: usize, len: usize) -> String {
    let mut items = vec![":".to_string(); axis];
    items.push(format!("{start}:{}", start + len));
    format!("{operand}[{}]", items.join(", "))
}
