//! The simplifier, run after differentiation: rewrite rules (a named table, each a
//! small function), common-subexpression elimination and dead-code elimination.
//!
//! It rebuilds the arena in one forward pass: each node's operands are first mapped
//! to their rebuilt versions, then rules rewrite the node until none applies, then an
//! identical existing node is reused if there is one (CSE). A final pass keeps only
//! what the outputs, the loss and the gradients need (DCE), renumbering densely.
//! Every rewrite keeps the node's type exactly, so no rule can change a shape.

use nnc_ir::{BinaryOp, Dim, Model, Node, NodeId, NodeKey, Op, ReduceOp, Type, UnaryOp};
use std::collections::HashMap;

/// What a rule turns a node into.
#[derive(Debug, PartialEq)]
pub enum Rewrite {
    /// An existing (rebuilt) node with the same type.
    Existing(NodeId),
    /// A scalar constant (only for scalar nodes).
    Const(f64),
    /// Another op on other operands (same type).
    Node(Op, Vec<NodeId>),
}

/// A rewrite rule: looks at a node (operands already rebuilt) and may rewrite it.
pub type Rule = fn(&Model, &Op, &[NodeId], &Type) -> Option<Rewrite>;

/// Every rewrite rule, by name.
pub const RULES: &[(&str, Rule)] = &[
    ("fold-constants", fold_constants),
    ("mul-by-one", mul_by_one),
    ("mul-by-zero", mul_by_zero),
    ("add-zero", add_zero),
    ("sub-zero", sub_zero),
    ("div-by-one", div_by_one),
    ("double-negation", double_negation),
    ("mul-neg-one", mul_neg_one),
    ("pow-one", pow_one),
    ("transpose-transpose", transpose_transpose),
    ("sum-size-one-axis", sum_size_one_axis),
    ("reshape-reshape", reshape_reshape),
    ("same-shape-move", same_shape_move),
    ("broadcast-of-reshaped-scalar", broadcast_of_reshaped_scalar),
];

/// Node counts before and after, for reports.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Stats {
    pub before: usize,
    pub after: usize,
}

/// Simplifies `model` in place.
pub fn simplify(model: &mut Model) -> Stats {
    let before = model.nodes.len();
    rebuild(model);
    eliminate_dead_code(model);
    Stats {
        before,
        after: model.nodes.len(),
    }
}

/// The value of a node that is a constant, possibly reshaped or broadcast.
fn constant_of(model: &Model, id: NodeId) -> Option<f64> {
    let node = model.node(id);
    match node.op {
        Op::Const(c) => Some(c),
        Op::Reshape | Op::Broadcast => constant_of(model, node.args[0]),
        _ => None,
    }
}

fn is_const(model: &Model, id: NodeId, value: f64) -> bool {
    constant_of(model, id) == Some(value)
}

/// `op(args)` where the result is `args[keep]`, if that has the same type.
fn keep(model: &Model, args: &[NodeId], index: usize, ty: &Type) -> Option<Rewrite> {
    (model.ty(args[index]) == ty).then(|| Rewrite::Existing(args[index]))
}

// ---- rules -------------------------------------------------------------------------

/// Scalar arithmetic on constants happens at compile time.
fn fold_constants(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if !ty.shape.is_empty() {
        return None;
    }
    let values: Option<Vec<f64>> = args.iter().map(|a| constant_of(model, *a)).collect();
    let v = values?;
    let folded = match (op, v.as_slice()) {
        (Op::Unary(u), [x]) => u.eval(*x),
        (Op::Powf(c), [x]) => x.powf(*c),
        (Op::Binary(b), [x, y]) => b.eval(*x, *y),
        (Op::Compare(c), [x, y]) => f64::from(u8::from(c.holds(*x, *y))),
        (Op::Select, [c, x, y]) => {
            if *c != 0.0 {
                *x
            } else {
                *y
            }
        }
        _ => return None,
    };
    Some(Rewrite::Const(folded))
}

fn mul_by_one(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    if is_const(model, args[1], 1.0) {
        return keep(model, args, 0, ty);
    }
    if is_const(model, args[0], 1.0) {
        return keep(model, args, 1, ty);
    }
    None
}

/// `x * 0 = 0` only where `x` cannot be infinite or NaN (0 * inf is NaN): masks,
/// one-hots and constants.
fn mul_by_zero(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op != Op::Binary(BinaryOp::Mul) || !ty.shape.is_empty() {
        return None;
    }
    let finite = |id: NodeId| {
        matches!(
            model.node(id).op,
            Op::Const(_)
                | Op::DimSize(_)
                | Op::Compare(_)
                | Op::OneHot { .. }
                | Op::ExtremumMask { .. }
        )
    };
    let zero_and_finite = |z: NodeId, x: NodeId| is_const(model, z, 0.0) && finite(x);
    if zero_and_finite(args[0], args[1]) || zero_and_finite(args[1], args[0]) {
        return Some(Rewrite::Const(0.0));
    }
    None
}

fn add_zero(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op != Op::Binary(BinaryOp::Add) {
        return None;
    }
    if is_const(model, args[1], 0.0) {
        return keep(model, args, 0, ty);
    }
    if is_const(model, args[0], 0.0) {
        return keep(model, args, 1, ty);
    }
    None
}

fn sub_zero(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op != Op::Binary(BinaryOp::Sub) {
        return None;
    }
    if is_const(model, args[1], 0.0) {
        return keep(model, args, 0, ty);
    }
    if is_const(model, args[0], 0.0) && model.ty(args[1]) == ty {
        return Some(Rewrite::Node(Op::Unary(UnaryOp::Neg), vec![args[1]]));
    }
    None
}

fn div_by_one(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op == Op::Binary(BinaryOp::Div) && is_const(model, args[1], 1.0) {
        return keep(model, args, 0, ty);
    }
    None
}

fn double_negation(model: &Model, op: &Op, args: &[NodeId], _ty: &Type) -> Option<Rewrite> {
    let neg = Op::Unary(UnaryOp::Neg);
    if *op == neg && model.node(args[0]).op == neg {
        return Some(Rewrite::Existing(model.node(args[0]).args[0]));
    }
    None
}

/// `x * -1` is `-x`.
fn mul_neg_one(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op != Op::Binary(BinaryOp::Mul) {
        return None;
    }
    for (c, x) in [(args[0], args[1]), (args[1], args[0])] {
        if is_const(model, c, -1.0) && model.ty(x) == ty {
            return Some(Rewrite::Node(Op::Unary(UnaryOp::Neg), vec![x]));
        }
    }
    None
}

fn pow_one(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if *op == Op::Powf(1.0) {
        return keep(model, args, 0, ty);
    }
    None
}

fn transpose_transpose(model: &Model, op: &Op, args: &[NodeId], _ty: &Type) -> Option<Rewrite> {
    if *op == Op::Transpose && model.node(args[0]).op == Op::Transpose {
        return Some(Rewrite::Existing(model.node(args[0]).args[0]));
    }
    None
}

/// Summing over an axis of size 1 only drops (or keeps) that axis.
fn sum_size_one_axis(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    let Op::Reduce {
        op: ReduceOp::Sum,
        axis: Some(axis),
        keepdims,
    } = op
    else {
        return None;
    };
    if model.shape(args[0]).get(*axis) != Some(&Dim::Fixed(1)) {
        return None;
    }
    if *keepdims {
        keep(model, args, 0, ty)
    } else {
        Some(Rewrite::Node(Op::Reshape, vec![args[0]]))
    }
}

fn reshape_reshape(model: &Model, op: &Op, args: &[NodeId], _ty: &Type) -> Option<Rewrite> {
    if *op == Op::Reshape && model.node(args[0]).op == Op::Reshape {
        return Some(Rewrite::Node(
            Op::Reshape,
            vec![model.node(args[0]).args[0]],
        ));
    }
    None
}

/// A reshape or broadcast to the shape its operand already has does nothing.
fn same_shape_move(model: &Model, op: &Op, args: &[NodeId], ty: &Type) -> Option<Rewrite> {
    if matches!(op, Op::Reshape | Op::Broadcast) {
        return keep(model, args, 0, ty);
    }
    None
}

/// Broadcasting a reshaped scalar is broadcasting the scalar.
fn broadcast_of_reshaped_scalar(
    model: &Model,
    op: &Op,
    args: &[NodeId],
    _ty: &Type,
) -> Option<Rewrite> {
    if *op != Op::Broadcast || model.node(args[0]).op != Op::Reshape {
        return None;
    }
    let inner = model.node(args[0]).args[0];
    model
        .shape(inner)
        .is_empty()
        .then(|| Rewrite::Node(Op::Broadcast, vec![inner]))
}

// ---- the passes ------------------------------------------------------------------------

/// One forward pass: rewrite each node to a fixed point, then deduplicate.
fn rebuild(model: &mut Model) {
    let old = std::mem::take(&mut model.nodes);
    let mut remap: Vec<NodeId> = Vec::with_capacity(old.len());
    // CSE: the rebuilt node of each op, operands and type (leaves that read inputs and
    // params are unique anyway; constants unify by value).
    let mut seen: HashMap<NodeKey, NodeId> = HashMap::new();
    for node in old {
        let args: Vec<NodeId> = node.args.iter().map(|a| remap[a.index()]).collect();
        let mut candidate = Node { args, ..node };
        let mut result = None;
        // Each rewrite makes progress toward fewer or simpler nodes; the bound only
        // guards against a rule pair undoing each other.
        for _ in 0..16 {
            let Some(rewrite) = RULES
                .iter()
                .find_map(|(_, rule)| rule(model, &candidate.op, &candidate.args, &candidate.ty))
            else {
                break;
            };
            match rewrite {
                Rewrite::Existing(id) => {
                    result = Some(id);
                    break;
                }
                Rewrite::Const(v) => {
                    candidate.op = Op::Const(v);
                    candidate.args = vec![];
                }
                Rewrite::Node(op, args) => {
                    candidate.op = op;
                    candidate.args = args;
                }
            }
        }
        let id = match result {
            Some(id) => id,
            None => {
                let key = NodeKey::new(&candidate.op, &candidate.args, &candidate.ty);
                match seen.get(&key) {
                    Some(id) => *id,
                    None => {
                        let id = NodeId(model.nodes.len() as u32);
                        model.nodes.push(candidate.clone());
                        seen.insert(key, id);
                        id
                    }
                }
            }
        };
        // The first name given to a value wins; a rewritten node passes its name on.
        let target = &mut model.nodes[id.index()];
        if target.name.is_none() && !matches!(target.op, Op::Const(_)) {
            target.name = candidate.name.clone();
        }
        remap.push(id);
    }
    remap_roots(model, &remap);
}

fn remap_roots(model: &mut Model, remap: &[NodeId]) {
    model.loss = remap[model.loss.index()];
    for (_, n) in &mut model.outputs {
        *n = remap[n.index()];
    }
    for (_, n) in &mut model.grads {
        *n = remap[n.index()];
    }
    for (_, n) in &mut model.state_updates {
        *n = remap[n.index()];
    }
}

/// Keeps the nodes the roots need, plus every input and param leaf, renumbered densely.
fn eliminate_dead_code(model: &mut Model) {
    let mut live = model.live_nodes();
    for (i, n) in model.nodes.iter().enumerate() {
        if matches!(n.op, Op::Input(_) | Op::Param(_)) {
            live[i] = true;
        }
    }
    let old = std::mem::take(&mut model.nodes);
    let mut remap = vec![NodeId(u32::MAX); old.len()];
    for (i, node) in old.into_iter().enumerate() {
        if !live[i] {
            continue;
        }
        remap[i] = NodeId(model.nodes.len() as u32);
        let args = node.args.iter().map(|a| remap[a.index()]).collect();
        model.nodes.push(Node { args, ..node });
    }
    remap_roots(model, &remap);
}
