//! Shape inference: the result type of an op from its operands' types, or an error
//! naming the operation, both shapes and the dims that disagree.
//!
//! Runtime dims are symbols: `N` matches only `N` (or a broadcast `1`), so a program
//! that type-checks here cannot fail a shape check at run time except by binding
//! inputs that disagree with their declarations, which the entry points check.

use crate::model::{Model, NodeId};
use crate::op::Op;
use crate::types::{Dim, Elem, Shape, Type};

/// A shape error, before it is given a source location.
#[derive(Clone, Debug, PartialEq)]
pub struct ShapeError {
    pub message: String,
    pub note: Option<String>,
}

impl ShapeError {
    fn new(message: impl Into<String>) -> ShapeError {
        ShapeError {
            message: message.into(),
            note: None,
        }
    }

    fn with_note(mut self, note: impl Into<String>) -> ShapeError {
        self.note = Some(note.into());
        self
    }
}

/// How an op is named in messages: its source symbol where it has one.
pub fn op_label(op: &Op) -> String {
    match op {
        Op::Binary(b) => b
            .symbol()
            .map_or_else(|| b.name().to_string(), str::to_string),
        Op::Compare(c) => c.symbol().to_string(),
        Op::MatMul => "@".to_string(),
        Op::Powf(_) => "^".to_string(),
        Op::Transpose => ".T".to_string(),
        Op::Select => "where".to_string(),
        other => other.mnemonic(),
    }
}

/// The type of `op` applied to `args` in `model`.
pub fn infer(model: &Model, op: &Op, args: &[NodeId]) -> Result<Type, ShapeError> {
    let arg = |i: usize| model.ty(args[i]);
    let float_args = |n: usize| -> Result<(), ShapeError> {
        for i in 0..n {
            if arg(i).elem == Elem::Index {
                let infix = matches!(op, Op::Binary(_) | Op::Compare(_) | Op::MatMul)
                    && op_label(op).len() <= 2;
                let which = match (infix, i) {
                    (true, 0) => "its left operand".to_string(),
                    (true, _) => "its right operand".to_string(),
                    (false, _) if args.len() == 1 => "its operand".to_string(),
                    (false, _) => format!("operand {}", i + 1),
                };
                return Err(ShapeError::new(format!(
                    "'{}' needs float operands, but {which} is an index tensor {}",
                    op_label(op),
                    model.type_str(arg(i))
                ))
                .with_note("index tensors can only be used by `pick` and `one_hot`"));
            }
        }
        Ok(())
    };
    match op {
        Op::Input(i) => Ok(model.inputs[i.0 as usize].ty.clone()),
        Op::Param(p) => Ok(Type::float(model.params[p.0 as usize].shape.clone())),
        Op::Const(_) | Op::DimSize(_) => Ok(Type::float(vec![])),
        Op::Unary(_) | Op::Powf(_) => {
            float_args(1)?;
            Ok(arg(0).clone())
        }
        Op::Binary(_) | Op::Compare(_) => {
            float_args(2)?;
            let shape = broadcast_shapes(model, op, &arg(0).shape, &arg(1).shape)?;
            Ok(Type::float(shape))
        }
        Op::Select => {
            float_args(3)?;
            let ab = broadcast_shapes(model, op, &arg(1).shape, &arg(2).shape)?;
            Ok(Type::float(broadcast_shapes(
                model,
                op,
                &arg(0).shape,
                &ab,
            )?))
        }
        Op::Reduce { axis, keepdims, .. } => {
            float_args(1)?;
            check_axis(model, op, &arg(0).shape, *axis)?;
            Ok(Type::float(crate::op::reduced_shape(
                &arg(0).shape,
                *axis,
                *keepdims,
            )))
        }
        Op::ExtremumMask { axis, .. } => {
            check_axis(model, op, &arg(0).shape, *axis)?;
            Ok(arg(0).clone())
        }
        Op::Softmax { axis } | Op::LogSoftmax { axis } => {
            float_args(1)?;
            check_axis(model, op, &arg(0).shape, Some(*axis))?;
            Ok(arg(0).clone())
        }
        Op::ArgMax { axis, keepdims } => {
            float_args(1)?;
            check_axis(model, op, &arg(0).shape, Some(*axis))?;
            let shape = crate::op::reduced_shape(&arg(0).shape, Some(*axis), *keepdims);
            Ok(Type {
                elem: Elem::Index,
                shape,
            })
        }
        Op::MatMul => {
            float_args(2)?;
            matmul(model, &arg(0).shape, &arg(1).shape).map(Type::float)
        }
        Op::Transpose => {
            float_args(1)?;
            match arg(0).shape.as_slice() {
                [a, b] => Ok(Type::float(vec![*b, *a])),
                other => Err(ShapeError::new(format!(
                    "'.T' needs a matrix, but its operand has shape {} (rank {})",
                    model.shape_str(other),
                    other.len()
                ))
                .with_note("transpose is defined for rank-2 values only")),
            }
        }
        Op::Slice { axis, start, len } => {
            float_args(1)?;
            let mut shape = arg(0).shape.clone();
            match shape.get(*axis) {
                Some(Dim::Fixed(size)) if *len >= 1 && start + len <= *size => {
                    shape[*axis] = Dim::Fixed(*len);
                    Ok(Type::float(shape))
                }
                _ => Err(ShapeError::new(format!(
                    "internal: slice {start}..{} of axis {axis} of {}",
                    start + len,
                    model.shape_str(&arg(0).shape)
                ))),
            }
        }
        Op::Pad { axis, start, size } => {
            float_args(1)?;
            let mut shape = arg(0).shape.clone();
            match shape.get(*axis) {
                Some(Dim::Fixed(len)) if start + len <= *size => {
                    shape[*axis] = Dim::Fixed(*size);
                    Ok(Type::float(shape))
                }
                _ => Err(ShapeError::new(format!(
                    "internal: pad of axis {axis} of {} to {size} from {start}",
                    model.shape_str(&arg(0).shape)
                ))),
            }
        }
        Op::Reshape | Op::Broadcast => Err(ShapeError::new(
            "internal: reshape and broadcast carry their shape; use push_typed",
        )),
        Op::Pick { keepdims } => {
            float_args(1)?;
            let (x, idx) = (arg(0), arg(1));
            if idx.elem != Elem::Index {
                return Err(ShapeError::new(format!(
                    "'pick' needs class indices as its second operand, got a float tensor {}",
                    model.type_str(idx)
                ))
                .with_note("declare the input as `index[N]`"));
            }
            match (x.shape.as_slice(), idx.shape.as_slice()) {
                ([n, _], [m]) if n == m => Ok(Type::float(if *keepdims {
                    vec![*n, Dim::Fixed(1)]
                } else {
                    vec![*n]
                })),
                ([n, _], [m]) => Err(ShapeError::new(format!(
                    "shape mismatch in 'pick': {} and {} — batch dims {} and {} differ",
                    model.shape_str(&x.shape),
                    model.type_str(idx),
                    model.dim_str(*n),
                    model.dim_str(*m)
                ))),
                _ => Err(ShapeError::new(format!(
                    "'pick' needs a matrix [N, C] and indices index[N], got {} and {}",
                    model.shape_str(&x.shape),
                    model.type_str(idx)
                ))),
            }
        }
        Op::OneHot { classes } => {
            let idx = arg(0);
            if idx.elem != Elem::Index {
                return Err(ShapeError::new(format!(
                    "'one_hot' needs class indices, got a float tensor {}",
                    model.type_str(idx)
                )));
            }
            if idx.rank() >= 4 {
                return Err(ShapeError::new(
                    "'one_hot' of a rank-4 index tensor would exceed rank 4",
                ));
            }
            let mut shape = idx.shape.clone();
            shape.push(*classes);
            Ok(Type::float(shape))
        }
    }
}

/// numpy broadcasting of two shapes, with runtime dims matching only themselves.
pub fn broadcast_shapes(model: &Model, op: &Op, a: &Shape, b: &Shape) -> Result<Shape, ShapeError> {
    let rank = a.len().max(b.len());
    let mut out = Vec::with_capacity(rank);
    for i in 0..rank {
        // Align from the right.
        let da = (i + a.len()).checked_sub(rank).map(|j| a[j]);
        let db = (i + b.len()).checked_sub(rank).map(|j| b[j]);
        let d = match (da, db) {
            (Some(x), None) | (None, Some(x)) => x,
            (Some(x), Some(y)) if x == y => x,
            (Some(Dim::Fixed(1)), Some(y)) => y,
            (Some(x), Some(Dim::Fixed(1))) => x,
            (Some(x), Some(y)) => {
                return Err(ShapeError::new(format!(
                    "shape mismatch in '{}': {} and {} — dims {} and {} differ (axis {} of the result)",
                    op_label(op),
                    model.shape_str(a),
                    model.shape_str(b),
                    model.dim_str(x),
                    model.dim_str(y),
                    i
                ))
                .with_note("elementwise operands must have equal dims, or 1, aligned from the right (numpy broadcasting)"));
            }
            (None, None) => unreachable!("i < rank means one of the shapes has axis i"),
        };
        out.push(d);
    }
    Ok(out)
}

/// Checks that `from` broadcasts to exactly `to`.
pub fn check_broadcasts_to(model: &Model, from: &Shape, to: &Shape) -> Result<(), ShapeError> {
    let result = broadcast_shapes(model, &Op::Broadcast, from, to)?;
    if result != *to {
        return Err(ShapeError::new(format!(
            "cannot broadcast {} to {}",
            model.shape_str(from),
            model.shape_str(to)
        )));
    }
    Ok(())
}

fn check_axis(
    model: &Model,
    op: &Op,
    shape: &Shape,
    axis: Option<usize>,
) -> Result<(), ShapeError> {
    match axis {
        Some(a) if a >= shape.len() => Err(ShapeError::new(format!(
            "axis {a} is out of range for '{}' of shape {} (rank {})",
            op_label(op),
            model.shape_str(shape),
            shape.len()
        ))),
        _ => Ok(()),
    }
}

/// numpy `matmul` for ranks 1 and 2.
fn matmul(model: &Model, a: &Shape, b: &Shape) -> Result<Shape, ShapeError> {
    let mismatch = |k1: Dim, k2: Dim| {
        ShapeError::new(format!(
            "shape mismatch in '@': {} @ {} — inner dims {} and {} differ",
            model.shape_str(a),
            model.shape_str(b),
            model.dim_str(k1),
            model.dim_str(k2)
        ))
        .with_note("the last dim of the left operand must equal the first dim of the right one")
    };
    let (result, k1, k2) = match (a.as_slice(), b.as_slice()) {
        ([m, k1], [k2, n]) => (vec![*m, *n], *k1, *k2),
        ([k1], [k2, n]) => (vec![*n], *k1, *k2),
        ([m, k1], [k2]) => (vec![*m], *k1, *k2),
        ([k1], [k2]) => (vec![], *k1, *k2),
        _ => {
            return Err(ShapeError::new(format!(
                "'@' needs operands of rank 1 or 2, got {} @ {}",
                model.shape_str(a),
                model.shape_str(b)
            ))
            .with_note("use `*` for elementwise products"));
        }
    };
    if k1 != k2 {
        return Err(mismatch(k1, k2));
    }
    Ok(result)
}
