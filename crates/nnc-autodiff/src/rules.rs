//! The derivative rules: one vector-Jacobian product per primitive, all here.
//!
//! `vjp(node, g)` takes the gradient `g` of the loss with respect to `node`'s value
//! and gives one gradient per operand (`None` where the operand is not
//! differentiable). Operand gradients may still have the node's broadcast shape: the
//! driver (`reverse.rs`) undoes broadcasting, and sums where a value has several
//! users. The match is exhaustive on purpose: a new op does not compile until it has
//! a rule.
//!
//! `y` below is the node's own value, which several rules reuse (exp, tanh, sigmoid,
//! softmax) instead of recomputing it.

use crate::builder::{Builder, InternalError};
use nnc_ir::{BinaryOp, CmpOp, Dim, NodeId, Op, ReduceOp, UnaryOp};

pub type Grads = Vec<Option<NodeId>>;

/// The rule's label, as `nnc grad` shows it next to each line it produced.
pub fn rule_name(op: &Op) -> &'static str {
    match op {
        Op::Input(_) | Op::Param(_) | Op::Const(_) | Op::DimSize(_) => "leaf",
        Op::Unary(UnaryOp::Neg) => "d(-x) = -dx",
        Op::Unary(UnaryOp::Exp) => "d exp(x) = exp(x) dx",
        Op::Unary(UnaryOp::Log) => "d log(x) = dx / x",
        Op::Unary(UnaryOp::Sqrt) => "d sqrt(x) = dx / (2 sqrt(x))",
        Op::Unary(UnaryOp::Abs) => "d |x| = sign(x) dx",
        Op::Unary(UnaryOp::Tanh) => "d tanh(x) = (1 - tanh(x)^2) dx",
        Op::Unary(UnaryOp::Sigmoid) => "d sigmoid(x) = sigmoid(x) (1 - sigmoid(x)) dx",
        Op::Unary(UnaryOp::Softplus) => "d softplus(x) = sigmoid(x) dx",
        Op::Powf(_) => "d x^c = c x^(c-1) dx",
        Op::Binary(BinaryOp::Add) => "add distributes",
        Op::Binary(BinaryOp::Sub) => "sub distributes, negated on the right",
        Op::Binary(BinaryOp::Mul) => "mul swaps",
        Op::Binary(BinaryOp::Div) => "d(a/b) = da/b - (a/b) db/b",
        Op::Binary(BinaryOp::Max) => "max routes (ties to the first)",
        Op::Binary(BinaryOp::Min) => "min routes (ties to the first)",
        Op::Compare(_) => "comparison: no gradient",
        Op::Select => "where routes",
        Op::Reduce {
            op: ReduceOp::Sum, ..
        } => "sum copies back",
        Op::Reduce {
            op: ReduceOp::Max, ..
        } => "max routes to the first maximum",
        Op::Reduce {
            op: ReduceOp::Min, ..
        } => "min routes to the first minimum",
        Op::Reduce {
            op: ReduceOp::LogSumExp,
            ..
        } => "d logsumexp(x) = softmax(x) dx",
        Op::Softmax { .. } => "softmax: y (g - sum(g y))",
        Op::LogSoftmax { .. } => "log_softmax: g - exp(y) sum(g)",
        Op::ExtremumMask { .. } => "mask: no gradient",
        Op::MatMul => "matmul: g @ b.T and a.T @ g",
        Op::Transpose => "transpose: g.T",
        Op::Reshape => "reshape back",
        Op::Broadcast => "unbroadcast: sum over the broadcast axes",
        Op::Slice { .. } => "slice: g padded with zeros back to x's shape",
        Op::Pad { .. } => "pad: the slice of g where x was placed",
        Op::Pick { .. } => "pick scatters into its row",
        Op::OneHot { .. } | Op::ArgMax { .. } => "indices: no gradient",
    }
}

/// The vector-Jacobian product of node `n` for incoming gradient `g`.
pub fn vjp(b: &mut Builder<'_>, n: NodeId, g: NodeId) -> Result<Grads, InternalError> {
    let node = b.model.node(n).clone();
    let a = &node.args;
    let y = n;
    Ok(match node.op {
        Op::Input(_) | Op::Param(_) | Op::Const(_) | Op::DimSize(_) => vec![],

        Op::Unary(UnaryOp::Neg) => vec![Some(b.neg(g)?)],
        Op::Unary(UnaryOp::Exp) => vec![Some(b.mul(g, y)?)],
        Op::Unary(UnaryOp::Log) => vec![Some(b.div(g, a[0])?)],
        Op::Unary(UnaryOp::Sqrt) => {
            let two = b.constant(2.0);
            let two_y = b.mul(two, y)?;
            vec![Some(b.div(g, two_y)?)]
        }
        Op::Unary(UnaryOp::Abs) => {
            let zero = b.constant(0.0);
            let pos = b.cmp(CmpOp::Gt, a[0], zero)?;
            let negative = b.cmp(CmpOp::Lt, a[0], zero)?;
            let sign = b.sub(pos, negative)?;
            vec![Some(b.mul(g, sign)?)]
        }
        Op::Unary(UnaryOp::Tanh) => {
            let one = b.constant(1.0);
            let y2 = b.pow(y, 2.0)?;
            let local = b.sub(one, y2)?;
            vec![Some(b.mul(g, local)?)]
        }
        Op::Unary(UnaryOp::Sigmoid) => {
            let one = b.constant(1.0);
            let one_minus_y = b.sub(one, y)?;
            let local = b.mul(y, one_minus_y)?;
            vec![Some(b.mul(g, local)?)]
        }
        Op::Unary(UnaryOp::Softplus) => {
            let s = b.unary(UnaryOp::Sigmoid, a[0])?;
            vec![Some(b.mul(g, s)?)]
        }
        Op::Powf(c) => {
            let coefficient = b.constant(c);
            let power = b.pow(a[0], c - 1.0)?;
            let local = b.mul(coefficient, power)?;
            vec![Some(b.mul(g, local)?)]
        }

        Op::Binary(BinaryOp::Add) => vec![Some(g), Some(g)],
        Op::Binary(BinaryOp::Sub) => vec![Some(g), Some(b.neg(g)?)],
        Op::Binary(BinaryOp::Mul) => vec![Some(b.mul(g, a[1])?), Some(b.mul(g, a[0])?)],
        Op::Binary(BinaryOp::Div) => {
            let da = b.div(g, a[1])?;
            let g_y = b.mul(g, y)?;
            let g_y_over_b = b.div(g_y, a[1])?;
            vec![Some(da), Some(b.neg(g_y_over_b)?)]
        }
        Op::Binary(op @ (BinaryOp::Max | BinaryOp::Min)) => {
            // The first operand wins ties. Which one won is read off the result
            // (`0 < h` for `h = max(0, z)`, exactly `0 < z`): the result is usually
            // kept anyway (it feeds the next product), the other operand often not.
            let (first, second) = if op == BinaryOp::Max {
                (CmpOp::Ge, CmpOp::Lt)
            } else {
                (CmpOp::Le, CmpOp::Gt)
            };
            let first_wins = b.cmp(first, a[0], y)?;
            let second_wins = b.cmp(second, a[0], y)?;
            vec![Some(b.mul(g, first_wins)?), Some(b.mul(g, second_wins)?)]
        }
        Op::Compare(_) => vec![None, None],
        Op::Select => {
            let zero = b.constant(0.0);
            vec![
                None,
                Some(b.select(a[0], g, zero)?),
                Some(b.select(a[0], zero, g)?),
            ]
        }

        Op::Reduce { op, axis, keepdims } => {
            let x_shape = b.shape(a[0]);
            let spread = b.spread(g, &x_shape, axis, keepdims)?;
            match op {
                ReduceOp::Sum => vec![Some(spread)],
                ReduceOp::Max | ReduceOp::Min => {
                    let mask = b.push(Op::ExtremumMask { op, axis }, vec![a[0]])?;
                    vec![Some(b.mul(spread, mask)?)]
                }
                ReduceOp::LogSumExp => {
                    // exp(x - logsumexp(x)) is softmax(x), bounded by 1: stable.
                    let lse = b.spread(y, &x_shape, axis, keepdims)?;
                    let shifted = b.sub(a[0], lse)?;
                    let softmax = b.unary(UnaryOp::Exp, shifted)?;
                    vec![Some(b.mul(spread, softmax)?)]
                }
            }
        }
        Op::Softmax { axis } => {
            let g_y = b.mul(g, y)?;
            let s = b.sum(g_y, Some(axis), true)?;
            let centred = b.sub(g, s)?;
            vec![Some(b.mul(y, centred)?)]
        }
        Op::LogSoftmax { axis } => {
            // exp of a log-softmax is at most 1: never overflows.
            let p = b.unary(UnaryOp::Exp, y)?;
            let s = b.sum(g, Some(axis), true)?;
            let p_s = b.mul(p, s)?;
            vec![Some(b.sub(g, p_s)?)]
        }
        Op::ExtremumMask { .. } => vec![None],

        Op::MatMul => matmul(b, a[0], a[1], g)?,
        Op::Transpose => vec![Some(b.transpose(g)?)],
        Op::Reshape => {
            let shape = b.shape(a[0]);
            vec![Some(b.reshape(g, shape))]
        }
        Op::Broadcast => {
            let shape = b.shape(a[0]);
            vec![Some(b.unbroadcast(g, &shape)?)]
        }
        Op::Slice { axis, start, .. } => {
            let size = fixed_size(b, a[0], axis)?;
            vec![Some(b.push(Op::Pad { axis, start, size }, vec![g])?)]
        }
        Op::Pad { axis, start, .. } => {
            let len = fixed_size(b, a[0], axis)?;
            vec![Some(b.push(Op::Slice { axis, start, len }, vec![g])?)]
        }

        Op::Pick { keepdims } => {
            // Row i's gradient goes to column idx[i]: one_hot(idx) * g[:, None].
            let x_shape = b.shape(a[0]);
            let (rows, classes) = (x_shape[0], x_shape[1]);
            let one_hot = b.push(Op::OneHot { classes }, vec![a[1]])?;
            let g_col = if keepdims {
                g
            } else {
                b.reshape(g, vec![rows, Dim::Fixed(1)])
            };
            vec![Some(b.mul(one_hot, g_col)?), None]
        }
        Op::OneHot { .. } | Op::ArgMax { .. } => vec![None],
    })
}

/// The size of `x`'s axis `axis`, which slices and pads only take along fixed axes.
fn fixed_size(b: &Builder<'_>, x: NodeId, axis: usize) -> Result<usize, InternalError> {
    match b.shape(x).get(axis) {
        Some(Dim::Fixed(size)) => Ok(*size),
        _ => Err(InternalError(format!(
            "a slice or pad along axis {axis}, which has no fixed size"
        ))),
    }
}

/// numpy `matmul`'s gradients for each rank combination.
fn matmul(b: &mut Builder<'_>, x: NodeId, w: NodeId, g: NodeId) -> Result<Grads, InternalError> {
    let (xs, ws) = (b.shape(x), b.shape(w));
    Ok(match (xs.len(), ws.len()) {
        // [M, K] @ [K, N]
        (2, 2) => {
            let wt = b.transpose(w)?;
            let xt = b.transpose(x)?;
            vec![Some(b.matmul(g, wt)?), Some(b.matmul(xt, g)?)]
        }
        // [K] @ [K, N] -> [N]: dx = w @ g, dw = outer(x, g)
        (1, 2) => {
            let dx = b.matmul(w, g)?;
            let x_col = b.reshape(x, vec![xs[0], Dim::Fixed(1)]);
            let g_row = b.reshape(g, vec![Dim::Fixed(1), ws[1]]);
            vec![Some(dx), Some(b.matmul(x_col, g_row)?)]
        }
        // [M, K] @ [K] -> [M]: dx = outer(g, w), dw = x.T @ g
        (2, 1) => {
            let g_col = b.reshape(g, vec![xs[0], Dim::Fixed(1)]);
            let w_row = b.reshape(w, vec![Dim::Fixed(1), ws[0]]);
            let dx = b.matmul(g_col, w_row)?;
            let xt = b.transpose(x)?;
            vec![Some(dx), Some(b.matmul(xt, g)?)]
        }
        // [K] @ [K] -> []: a dot product
        _ => vec![Some(b.mul(g, w)?), Some(b.mul(g, x)?)],
    })
}
