//! The primitive operations. Every built-in lowers to these; each costs a derivative
//! rule (nnc-autodiff), an interpreter case and a codegen case, so the set is small.
//!
//! Operands are listed per op in [`Op`]'s docs. Elementwise ops broadcast their
//! operands numpy-style; the result shape is the broadcast shape.

use crate::types::{Dim, DimId, Shape};
use std::fmt;

/// Index of an input in [`crate::Model::inputs`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct InputId(pub u32);

/// Index of a parameter in [`crate::Model::params`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ParamId(pub u32);

#[derive(Clone, Debug, PartialEq)]
pub enum Op {
    // ---- leaves (no operands) ----
    Input(InputId),
    Param(ParamId),
    /// A scalar constant.
    Const(f64),
    /// The size of a runtime dim, as a float scalar (for `mean` over `N`).
    DimSize(DimId),

    // ---- elementwise ----
    /// One operand.
    Unary(UnaryOp),
    /// `x ^ c` for a compile-time constant `c`. One operand.
    Powf(f64),
    /// Two operands, broadcast.
    Binary(BinaryOp),
    /// Two operands, broadcast; gives 1.0 where the comparison holds, else 0.0.
    /// Not differentiable (its gradient is zero).
    Compare(CmpOp),
    /// `(cond, a, b)`, broadcast: `a` where `cond != 0`, else `b`.
    Select,

    // ---- reductions and normalisers (one operand) ----
    /// Over one axis, or over all axes when `axis` is `None`.
    Reduce {
        op: ReduceOp,
        axis: Option<usize>,
        keepdims: bool,
    },
    /// Stable softmax along an axis.
    Softmax {
        axis: usize,
    },
    /// Stable log-softmax along an axis.
    LogSoftmax {
        axis: usize,
    },
    /// 1.0 at the first position of the maximum (or minimum) along `axis` (all axes
    /// when `None`), 0.0 elsewhere. Routes the gradient of max/min reductions.
    ExtremumMask {
        op: ReduceOp,
        axis: Option<usize>,
    },

    // ---- linear algebra and movement ----
    /// Two operands, numpy `matmul` for ranks 1 and 2.
    MatMul,
    /// Rank-2 transpose. One operand.
    Transpose,
    /// Same elements, new shape (the node's shape). One operand.
    Reshape,
    /// Expand size-1 or missing leading axes to the node's shape. One operand.
    Broadcast,
    /// `len` consecutive positions from `start` along `axis` (`x[:, start:start+len]`);
    /// the axis has a fixed size. One operand.
    Slice {
        axis: usize,
        start: usize,
        len: usize,
    },
    /// The operand placed from `start` along `axis` in zeros of size `size` there: the
    /// adjoint of `Slice`, and the pieces `concat` sums. One operand.
    Pad {
        axis: usize,
        start: usize,
        size: usize,
    },

    // ---- indexing ----
    /// `(x [N, C], idx index[N])` -> `x[i, idx[i]]`, shape `[N]` or `[N, 1]`.
    Pick {
        keepdims: bool,
    },
    /// `idx index[...]` -> float one-hot with a trailing axis of `classes`.
    OneHot {
        classes: Dim,
    },
    /// Index of the first maximum along `axis`; gives an index tensor.
    ArgMax {
        axis: usize,
        keepdims: bool,
    },
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum UnaryOp {
    Neg,
    Exp,
    Log,
    Sqrt,
    Abs,
    Tanh,
    Sigmoid,
    Softplus,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinaryOp {
    Add,
    Sub,
    Mul,
    Div,
    /// Elementwise maximum; a tie counts as the first operand.
    Max,
    /// Elementwise minimum; a tie counts as the first operand.
    Min,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum CmpOp {
    Gt,
    Ge,
    Lt,
    Le,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum ReduceOp {
    Sum,
    Max,
    Min,
    LogSumExp,
}

impl UnaryOp {
    pub fn name(self) -> &'static str {
        match self {
            UnaryOp::Neg => "neg",
            UnaryOp::Exp => "exp",
            UnaryOp::Log => "log",
            UnaryOp::Sqrt => "sqrt",
            UnaryOp::Abs => "abs",
            UnaryOp::Tanh => "tanh",
            UnaryOp::Sigmoid => "sigmoid",
            UnaryOp::Softplus => "softplus",
        }
    }
}

impl UnaryOp {
    /// The function itself, on one number (for constant folding and the interpreter).
    pub fn eval<F: num_traits::Float>(self, x: F) -> F {
        let zero = F::zero();
        let one = F::one();
        match self {
            UnaryOp::Neg => -x,
            UnaryOp::Exp => x.exp(),
            UnaryOp::Log => x.ln(),
            UnaryOp::Sqrt => x.sqrt(),
            UnaryOp::Abs => x.abs(),
            UnaryOp::Tanh => x.tanh(),
            // Stable for large |x|: never exponentiates a positive number.
            UnaryOp::Sigmoid => {
                if x >= zero {
                    one / (one + (-x).exp())
                } else {
                    let e = x.exp();
                    e / (one + e)
                }
            }
            // log(1 + e^x) = max(x, 0) + log(1 + e^-|x|)
            UnaryOp::Softplus => x.max(zero) + (-x.abs()).exp().ln_1p(),
        }
    }
}

impl BinaryOp {
    /// The function itself, on two numbers.
    pub fn eval<F: num_traits::Float>(self, a: F, b: F) -> F {
        match self {
            BinaryOp::Add => a + b,
            BinaryOp::Sub => a - b,
            BinaryOp::Mul => a * b,
            BinaryOp::Div => a / b,
            // Ties (and NaN comparisons) go to the first operand.
            BinaryOp::Max => {
                if a >= b || b.is_nan() {
                    a
                } else {
                    b
                }
            }
            BinaryOp::Min => {
                if a <= b || b.is_nan() {
                    a
                } else {
                    b
                }
            }
        }
    }

    pub fn name(self) -> &'static str {
        match self {
            BinaryOp::Add => "add",
            BinaryOp::Sub => "sub",
            BinaryOp::Mul => "mul",
            BinaryOp::Div => "div",
            BinaryOp::Max => "max",
            BinaryOp::Min => "min",
        }
    }

    /// The infix symbol, for ops that have one.
    pub fn symbol(self) -> Option<&'static str> {
        match self {
            BinaryOp::Add => Some("+"),
            BinaryOp::Sub => Some("-"),
            BinaryOp::Mul => Some("*"),
            BinaryOp::Div => Some("/"),
            BinaryOp::Max | BinaryOp::Min => None,
        }
    }
}

impl CmpOp {
    pub fn symbol(self) -> &'static str {
        match self {
            CmpOp::Gt => ">",
            CmpOp::Ge => ">=",
            CmpOp::Lt => "<",
            CmpOp::Le => "<=",
        }
    }

    pub fn holds<F: PartialOrd>(self, a: F, b: F) -> bool {
        match self {
            CmpOp::Gt => a > b,
            CmpOp::Ge => a >= b,
            CmpOp::Lt => a < b,
            CmpOp::Le => a <= b,
        }
    }
}

impl ReduceOp {
    pub fn name(self) -> &'static str {
        match self {
            ReduceOp::Sum => "sum",
            ReduceOp::Max => "max",
            ReduceOp::Min => "min",
            ReduceOp::LogSumExp => "logsumexp",
        }
    }
}

impl Op {
    /// True for ops computed independently per element of the (broadcast) output.
    pub fn is_elementwise(&self) -> bool {
        matches!(
            self,
            Op::Unary(_) | Op::Powf(_) | Op::Binary(_) | Op::Compare(_) | Op::Select
        )
    }

    /// The op's mnemonic in the IR's text form.
    pub fn mnemonic(&self) -> String {
        match self {
            Op::Input(_) => "input".into(),
            Op::Param(_) => "param".into(),
            Op::Const(_) => "const".into(),
            Op::DimSize(_) => "dim".into(),
            Op::Unary(u) => u.name().into(),
            Op::Powf(_) => "pow".into(),
            Op::Binary(b) => b.name().into(),
            Op::Compare(c) => format!("cmp{}", c.symbol()),
            Op::Select => "select".into(),
            Op::Reduce { op, .. } => format!("reduce_{}", op.name()),
            Op::Softmax { .. } => "softmax".into(),
            Op::LogSoftmax { .. } => "log_softmax".into(),
            Op::ExtremumMask { op, .. } => format!("arg{}_mask", op.name()),
            Op::MatMul => "matmul".into(),
            Op::Transpose => "transpose".into(),
            Op::Reshape => "reshape".into(),
            Op::Broadcast => "broadcast".into(),
            Op::Slice { .. } => "slice".into(),
            Op::Pad { .. } => "pad".into(),
            Op::Pick { .. } => "pick".into(),
            Op::OneHot { .. } => "one_hot".into(),
            Op::ArgMax { .. } => "argmax".into(),
        }
    }
}

impl fmt::Display for Op {
    /// Mnemonic and attributes, e.g. `reduce_sum axis=1 keepdims`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.mnemonic())?;
        match self {
            Op::Const(v) | Op::Powf(v) => write!(f, " {}", crate::print::number(*v)),
            Op::Reduce { axis, keepdims, .. } => {
                if let Some(a) = axis {
                    write!(f, " axis={a}")?;
                }
                if *keepdims {
                    write!(f, " keepdims")?;
                }
                Ok(())
            }
            Op::ExtremumMask { axis: Some(a), .. }
            | Op::Softmax { axis: a }
            | Op::LogSoftmax { axis: a } => write!(f, " axis={a}"),
            Op::ArgMax { axis, keepdims } => {
                write!(f, " axis={axis}")?;
                if *keepdims {
                    write!(f, " keepdims")?;
                }
                Ok(())
            }
            Op::Pick { keepdims: true } => write!(f, " keepdims"),
            Op::Slice { axis, start, len } => write!(f, " axis={axis} start={start} len={len}"),
            Op::Pad { axis, start, size } => write!(f, " axis={axis} start={start} size={size}"),
            _ => Ok(()),
        }
    }
}

/// A shape's axes, for ops whose attributes need one.
pub fn reduced_shape(shape: &Shape, axis: Option<usize>, keepdims: bool) -> Shape {
    match (axis, keepdims) {
        (None, false) => vec![],
        (None, true) => vec![Dim::Fixed(1); shape.len()],
        (Some(a), false) => shape
            .iter()
            .enumerate()
            .filter(|(i, _)| *i != a)
            .map(|(_, d)| *d)
            .collect(),
        (Some(a), true) => shape
            .iter()
            .enumerate()
            .map(|(i, d)| if i == a { Dim::Fixed(1) } else { *d })
            .collect(),
    }
}
