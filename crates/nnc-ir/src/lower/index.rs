//! Indexing and joining: `x[i]`, `x[:, a:b]`, `concat` and `stack`, lowered to the
//! two movement primitives `Slice` and `Pad` (and reshapes that drop or add a
//! size-1 axis).
//!
//! Positions are compile-time integers and the axes they select along have fixed
//! sizes, so every result has a static shape and nothing is checked at run time;
//! an axis of runtime size (`N`) can only be taken whole. `concat` is the sum of
//! its pieces each padded with zeros to the joined size: its derivative is then the
//! `Pad` rule's (a slice of the gradient per piece), with no rule of its own.

use super::{BuiltinCall, Env, Lowered, Lowerer, Reported, Val};
use crate::model::NodeId;
use crate::op::{BinaryOp, Op};
use crate::types::{Dim, Type};
use nnc_syntax::ast::{Expr, IndexItem};
use nnc_syntax::{Diagnostic, Span};

/// What one index item selects along its axis.
struct Selection {
    start: usize,
    len: usize,
    /// A single position (`x[2]`): the axis is dropped.
    drop: bool,
}

impl Lowerer<'_> {
    /// `base[items]`: a slice per axis that is not taken whole, then one reshape
    /// dropping the axes indexed by a single position. Never inlined: it is called
    /// from the recursion over nested expressions, whose frames must stay small
    /// (see `Lowerer::expr_kind`).
    #[inline(never)]
    pub(super) fn index(
        &mut self,
        base: &Expr,
        items: &[IndexItem],
        span: Span,
        env: &Env,
    ) -> Lowered<Val> {
        let v = self.expr(base, env)?;
        let x = self.tensor(v, base.span)?;
        self.index_of(x, items, span, env)
    }

    /// [`Lowerer::index`] once its base is lowered: kept apart so that the frame
    /// on the recursion's path holds only the base.
    #[inline(never)]
    fn index_of(&mut self, x: NodeId, items: &[IndexItem], span: Span, env: &Env) -> Lowered<Val> {
        let shape = self.model.shape(x).clone();
        if items.len() > shape.len() {
            let message = format!(
                "{} index items for a value of rank {}",
                items.len(),
                shape.len()
            );
            let shape_text = self.model.shape_str(&shape);
            return Err(self.fail_at(
                Diagnostic::error(message, self.span(span))
                    .with_label(format!("a value of shape {shape_text}")),
            ));
        }
        let mut selections = Vec::with_capacity(items.len());
        for (axis, item) in items.iter().enumerate() {
            selections.push(self.selection(item, axis, shape[axis], env)?);
        }
        let mut v = x;
        let mut kept = Vec::with_capacity(shape.len());
        for (axis, dim) in shape.iter().enumerate() {
            match selections.get(axis).and_then(Option::as_ref) {
                Some(s) => {
                    let whole = s.start == 0 && *dim == Dim::Fixed(s.len);
                    if !whole {
                        let op = Op::Slice {
                            axis,
                            start: s.start,
                            len: s.len,
                        };
                        v = self.push(op, vec![v], span)?;
                    }
                    if !s.drop {
                        kept.push(Dim::Fixed(s.len));
                    }
                }
                None => kept.push(*dim),
            }
        }
        if kept.len() < shape.len() {
            v = self.intern(Op::Reshape, vec![v], Type::float(kept), span)?;
        }
        Ok(Val::Tensor(v))
    }

    /// What `item` selects along an axis of size `dim`; `None` for all of it.
    fn selection(
        &mut self,
        item: &IndexItem,
        axis: usize,
        dim: Dim,
        env: &Env,
    ) -> Lowered<Option<Selection>> {
        let at = self.span(item.span());
        if let IndexItem::Range {
            step: Some(step), ..
        } = item
        {
            return Err(self.fail_at(
                Diagnostic::error("a slice takes no step", self.span(step.span))
                    .with_label("a step")
                    .with_note("write `start:stop`; every position between is taken"),
            ));
        }
        let whole_range = matches!(
            item,
            IndexItem::Range {
                start: None,
                stop: None,
                step: None,
                ..
            }
        );
        let size = match dim {
            Dim::Fixed(size) => size,
            // `:` takes the whole axis, whatever its size.
            _ if whole_range => return Ok(None),
            Dim::Var(_) => {
                let name = self.model.dim_str(dim);
                return Err(self.fail_at(
                    Diagnostic::error(
                        format!("axis {axis} has the runtime size `{name}`: it can only be taken whole"),
                        at,
                    )
                    .with_label("write `:` here")
                    .with_note(
                        "positions are checked when the model compiles, so they index axes of fixed size",
                    ),
                ));
            }
        };
        match item {
            IndexItem::At(e) => {
                let i = self.position(e, axis, size, env)?;
                if i >= size as i64 {
                    return Err(self.out_of_range(e.span, i, axis, size));
                }
                Ok(Some(Selection {
                    start: i as usize,
                    len: 1,
                    drop: true,
                }))
            }
            IndexItem::Range { start, stop, .. } => {
                let lo = match start {
                    Some(e) => self.position(e, axis, size, env)?,
                    None => 0,
                };
                let hi = match stop {
                    Some(e) => self.position(e, axis, size, env)?,
                    None => size as i64,
                };
                if let Some(e) = start.as_ref().filter(|_| lo > size as i64) {
                    return Err(self.out_of_range(e.span, lo, axis, size));
                }
                if let Some(e) = stop.as_ref().filter(|_| hi > size as i64) {
                    return Err(self.out_of_range(e.span, hi, axis, size));
                }
                if hi <= lo {
                    return Err(self.fail_at(
                        Diagnostic::error(format!("the slice {lo}:{hi} is empty"), at)
                            .with_label(format!("axis {axis} of size {size}")),
                    ));
                }
                Ok(Some(Selection {
                    start: lo as usize,
                    len: (hi - lo) as usize,
                    drop: false,
                }))
            }
        }
    }

    /// A position along an axis of size `size`: a compile-time integer, counted
    /// from the end when negative (`-1` is the last).
    fn position(&mut self, e: &Expr, axis: usize, size: usize, env: &Env) -> Lowered<i64> {
        let at = self.span(e.span);
        match self.expr(e, env)? {
            Val::Number(v) if v.fract() == 0.0 && v.abs() <= 1e15 => {
                let i = v as i64;
                if i < 0 && i + (size as i64) < 0 {
                    return Err(self.out_of_range(e.span, i, axis, size));
                }
                Ok(if i < 0 { i + size as i64 } else { i })
            }
            Val::Number(v) => Err(self.fail_at(
                Diagnostic::error(format!("a position must be an integer, not {v}"), at)
                    .with_label("not an integer"),
            )),
            Val::Poisoned => Err(Reported),
            _ => Err(self.fail_at(
                Diagnostic::error("a position must be a compile-time integer", at)
                    .with_label("not known when the model compiles")
                    .with_note("to take one element per row by a label, use `pick(x, labels)`"),
            )),
        }
    }

    fn out_of_range(&mut self, span: Span, i: i64, axis: usize, size: usize) -> Reported {
        let d = Diagnostic::error(
            format!("position {i} is out of range for axis {axis} of size {size}"),
            self.span(span),
        )
        .with_label(format!(
            "valid: {} to {} (or {size} as a slice's end)",
            -(size as i64),
            size as i64 - 1
        ));
        self.fail_at(d)
    }

    fn fail_at(&mut self, d: Diagnostic) -> Reported {
        self.error(d);
        Reported
    }
}

impl BuiltinCall<'_, '_> {
    /// `reshape(x, (A, B, ...))`: the same elements, row-major, in a new shape. Each
    /// size is a positive integer or a runtime dim; one may be `-1`, the size that
    /// makes the element counts equal. The counts must agree as formulas: the same
    /// runtime dims on both sides, and the same product of fixed sizes.
    pub(super) fn reshape(&mut self) -> Lowered<NodeId> {
        let x = self.next()?;
        let (target, at) = match self.positional.next() {
            Some((Val::Tuple(items), at)) => (items, at),
            Some((v @ (Val::Number(_) | Val::RuntimeDim(_)), at)) => (vec![v], at),
            Some((Val::Poisoned, _)) => return Err(Reported),
            Some((_, at)) => {
                let at = self.lowerer.span(at);
                self.lowerer.error(
                    Diagnostic::error("`reshape`'s shape is a tuple of sizes", at)
                        .with_label("not a shape")
                        .with_note("write the sizes in parentheses: `reshape(x, (N, 6))`"),
                );
                return Err(Reported);
            }
            None => return Err(self.fail("`reshape` needs a shape".to_string())),
        };
        self.unused_keywords()?;
        let from = self.lowerer.model.shape(x).clone();
        let shape = self.target_shape(&from, &target, at)?;
        if shape == from {
            return Ok(x);
        }
        let span = self.span;
        self.lowerer
            .intern(Op::Reshape, vec![x], Type::float(shape), span)
    }

    /// The shape `reshape` asks for, with its `-1` worked out, checked against the
    /// element count of `from`.
    fn target_shape(&mut self, from: &[Dim], target: &[Val], at: Span) -> Lowered<Vec<Dim>> {
        let mut shape = Vec::with_capacity(target.len());
        let mut unknown = None;
        for (k, v) in target.iter().enumerate() {
            match v {
                Val::RuntimeDim(d) => shape.push(Dim::Var(*d)),
                Val::Number(n) if *n == -1.0 && unknown.is_none() => {
                    unknown = Some(k);
                    shape.push(Dim::Fixed(1));
                }
                Val::Number(n)
                    if *n >= 1.0 && n.fract() == 0.0 && *n <= nnc_syntax::check::MAX_DIM as f64 =>
                {
                    shape.push(Dim::Fixed(*n as usize));
                }
                other => {
                    let what = match other {
                        Val::Number(n) if *n == -1.0 => "a second `-1`".to_string(),
                        Val::Number(n) => format!("{n}"),
                        _ => "a value".to_string(),
                    };
                    return Err(self.shape_problem(
                        at,
                        format!(
                            "`reshape`'s sizes are positive integers, dims and one `-1`, not {what}"
                        ),
                    ));
                }
            }
        }
        let (from_fixed, mut from_dims) = element_formula(from);
        let (to_fixed, mut to_dims) = element_formula(&shape);
        from_dims.sort_unstable();
        to_dims.sort_unstable();
        // What the `-1` stands for: a fixed size, or the one runtime dim of `from`
        // that the target leaves out (`reshape(x, (-1, 6))` of an `[N, 2, 3]`).
        let missing = extra_dim(&from_dims, &to_dims);
        let fits = match (unknown, missing) {
            (Some(k), _) if from_dims == to_dims && from_fixed % to_fixed == 0 => {
                shape[k] = Dim::Fixed(from_fixed / to_fixed);
                true
            }
            (Some(k), Some(d)) if from_fixed == to_fixed => {
                shape[k] = Dim::Var(crate::types::DimId(d));
                true
            }
            (Some(_), _) => false,
            (None, _) => from_dims == to_dims && from_fixed == to_fixed,
        };
        if !fits {
            let model = &self.lowerer.model;
            let message = format!(
                "`reshape` cannot make {} elements of {} into {}",
                count_text(model, from),
                model.shape_str(from),
                match unknown {
                    Some(_) => format!("a shape with {} and a `-1`", count_text(model, &shape)),
                    None => model.shape_str(&shape),
                }
            );
            return Err(self.shape_problem(at, message));
        }
        Ok(shape)
    }

    fn shape_problem(&mut self, at: Span, message: String) -> Reported {
        let at = self.lowerer.span(at);
        self.lowerer.error(
            Diagnostic::error(message, at)
                .with_label("this shape")
                .with_note("a reshape keeps every element: the sizes' products must agree"),
        );
        Reported
    }

    /// `concat(a, b, ..., axis = k)`: the pieces joined along axis `k` (default 0),
    /// each `Pad`ded to the joined size and summed.
    pub(super) fn concat(&mut self) -> Lowered<NodeId> {
        let mut pieces = vec![self.next()?];
        while self.positional.len() > 0 {
            pieces.push(self.next()?);
        }
        let rank = self.lowerer.model.shape(pieces[0]).len();
        let axis = self.axis(rank.max(1), Some(0))?.unwrap_or(0);
        self.unused_keywords()?;
        self.join(&pieces, axis)
    }

    /// `stack(a, b, ..., axis = k)`: pieces of one shape joined along a new axis `k`.
    pub(super) fn stack(&mut self) -> Lowered<NodeId> {
        let mut pieces = vec![self.next()?];
        while self.positional.len() > 0 {
            pieces.push(self.next()?);
        }
        let shape = self.lowerer.model.shape(pieces[0]).clone();
        if shape.len() >= 4 {
            return Err(self.fail("`stack` of rank-4 values would exceed rank 4".to_string()));
        }
        let axis = self.axis(shape.len() + 1, Some(0))?.unwrap_or(0);
        self.unused_keywords()?;
        let mut widened = shape.clone();
        widened.insert(axis, Dim::Fixed(1));
        let mut raised = Vec::with_capacity(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            let s = self.lowerer.model.shape(*p).clone();
            if s != shape {
                let (a, b) = (
                    self.lowerer.model.shape_str(&shape),
                    self.lowerer.model.shape_str(&s),
                );
                return Err(self.fail(format!(
                    "`stack` needs pieces of one shape: piece 1 has shape {a}, piece {} has {b}",
                    i + 1
                )));
            }
            let span = self.span;
            raised.push(self.lowerer.intern(
                Op::Reshape,
                vec![*p],
                Type::float(widened.clone()),
                span,
            )?);
        }
        self.join(&raised, axis)
    }

    /// The pieces joined along `axis`, which each has with a fixed size; every other
    /// axis must agree.
    fn join(&mut self, pieces: &[NodeId], axis: usize) -> Lowered<NodeId> {
        let name = self.name;
        let first = self.lowerer.model.shape(pieces[0]).clone();
        if first.is_empty() {
            return Err(self.fail(format!("`{name}` joins tensors, not scalars")));
        }
        let mut sizes = Vec::with_capacity(pieces.len());
        for (i, p) in pieces.iter().enumerate() {
            let s = self.lowerer.model.shape(*p).clone();
            let model = &self.lowerer.model;
            let differs = s.len() != first.len()
                || s.iter()
                    .zip(&first)
                    .enumerate()
                    .any(|(k, (a, b))| k != axis && a != b);
            if differs {
                let (a, b) = (model.shape_str(&first), model.shape_str(&s));
                return Err(self.fail(format!(
                    "`{name}` along axis {axis}: piece 1 has shape {a} but piece {} has {b}; \
                     every axis but {axis} must agree",
                    i + 1
                )));
            }
            match s[axis] {
                Dim::Fixed(size) => sizes.push(size),
                d => {
                    let d = model.dim_str(d);
                    return Err(self.fail(format!(
                        "`{name}` along axis {axis}: piece {} has the runtime size `{d}` there; \
                         pieces are joined along axes of fixed size",
                        i + 1
                    )));
                }
            }
        }
        let sized: Vec<(NodeId, usize)> = pieces.iter().copied().zip(sizes).collect();
        self.lowerer.joined(&sized, axis, self.span)
    }
}

impl Lowerer<'_> {
    /// `pieces`, each with its size along `axis`, padded with zeros into consecutive
    /// places along `axis` and summed: a join (`concat`, `stack`, a loop's kept
    /// steps), whose derivative is the `Pad` rule's, a slice of the gradient per piece.
    pub(super) fn joined(
        &mut self,
        pieces: &[(NodeId, usize)],
        axis: usize,
        span: Span,
    ) -> Lowered<NodeId> {
        let total: usize = pieces.iter().map(|(_, len)| len).sum();
        let mut sum: Option<NodeId> = None;
        let mut start = 0;
        for (p, len) in pieces {
            let pad = Op::Pad {
                axis,
                start,
                size: total,
            };
            let placed = self.push(pad, vec![*p], span)?;
            sum = Some(match sum {
                Some(acc) => self.push(Op::Binary(BinaryOp::Add), vec![acc, placed], span)?,
                None => placed,
            });
            start += len;
        }
        sum.ok_or(Reported)
    }
}

/// The element count of `shape` as a formula: the product of its fixed sizes and
/// its runtime dims (a `-1` placeholder counts as 1).
fn element_formula(shape: &[Dim]) -> (usize, Vec<u32>) {
    let mut fixed = 1usize;
    let mut dims = Vec::new();
    for d in shape {
        match d {
            // At most 4 sizes of at most 2^40 whose product lowering has checked
            // (at most 2^48) or that were just given: saturate rather than wrap.
            Dim::Fixed(n) => fixed = fixed.saturating_mul(*n),
            Dim::Var(v) => dims.push(v.0),
        }
    }
    (fixed, dims)
}

/// `N x 6` or `6`: an element count as the user reads it.
fn count_text(model: &crate::model::Model, shape: &[Dim]) -> String {
    let (fixed, dims) = element_formula(shape);
    let mut parts: Vec<String> = shape
        .iter()
        .filter(|d| matches!(d, Dim::Var(_)))
        .map(|d| model.dim_str(*d))
        .collect();
    if fixed != 1 || dims.is_empty() {
        parts.push(fixed.to_string());
    }
    parts.join(" x ")
}

/// The runtime dim `from` has and `to` lacks, when that is the only difference
/// (both sorted).
fn extra_dim(from: &[u32], to: &[u32]) -> Option<u32> {
    if from.len() != to.len() + 1 {
        return None;
    }
    let k = from
        .iter()
        .zip(to)
        .position(|(a, b)| a != b)
        .unwrap_or(to.len());
    let mut rest = from.to_vec();
    let d = rest.remove(k);
    (rest == to).then_some(d)
}
