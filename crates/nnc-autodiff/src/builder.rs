//! A small builder for backward-pass nodes: arithmetic that reads like the math in
//! the rules, each node tagged with the rule that made it.

use nnc_ir::{BinaryOp, CmpOp, Dim, LoopStep, Model, NodeId, Op, ReduceOp, Shape, UnaryOp};
use nnc_syntax::{Diagnostic, Span};

/// A rule built a node whose shapes do not fit: a bug in a rule, never a user error.
#[derive(Debug, Clone, PartialEq)]
pub struct InternalError(pub String);

impl std::fmt::Display for InternalError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "internal error in autodiff: {}", self.0)
    }
}

impl std::error::Error for InternalError {}

impl InternalError {
    /// The error as `nnc check`, `nnc compile` and `net!` report it: naming the model,
    /// at the start of the file (it is the compiler's mistake, at no place in the
    /// user's source).
    pub fn to_diagnostic(&self, model: &str) -> Diagnostic {
        Diagnostic::error(format!("model `{model}`: {self}"), Span::default())
    }
}

pub type Built = Result<NodeId, InternalError>;

/// Appends nodes to a model on behalf of one derivative rule.
pub struct Builder<'m> {
    pub model: &'m mut Model,
    /// The span of the forward node being differentiated.
    pub span: Span,
    /// Label of the rule being applied, stored on each node it builds.
    pub rule: &'static str,
    /// The loop step of the forward node being differentiated, stored likewise.
    pub step: Option<LoopStep>,
}

impl Builder<'_> {
    pub fn push(&mut self, op: Op, args: Vec<NodeId>) -> Built {
        let id = self.model.push(op.clone(), args, self.span).map_err(|e| {
            InternalError(format!(
                "rule `{}` built `{}`: {}",
                self.rule,
                op.mnemonic(),
                e.message
            ))
        })?;
        self.tag(id);
        Ok(id)
    }

    fn tag(&mut self, id: NodeId) {
        let node = &mut self.model.nodes[id.index()];
        if node.rule.is_none() && !matches!(node.op, Op::Input(_) | Op::Param(_)) {
            node.rule = Some(self.rule);
        }
        if node.step.is_none() && !matches!(node.op, Op::Input(_) | Op::Param(_)) {
            node.step = self.step;
        }
    }

    pub fn shape(&self, x: NodeId) -> Shape {
        self.model.shape(x).clone()
    }

    pub fn constant(&mut self, v: f64) -> NodeId {
        let id = self.model.constant(v, self.span);
        self.tag(id);
        id
    }

    fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Built {
        self.push(Op::Binary(op), vec![a, b])
    }

    pub fn add(&mut self, a: NodeId, b: NodeId) -> Built {
        self.binary(BinaryOp::Add, a, b)
    }

    pub fn sub(&mut self, a: NodeId, b: NodeId) -> Built {
        self.binary(BinaryOp::Sub, a, b)
    }

    pub fn mul(&mut self, a: NodeId, b: NodeId) -> Built {
        self.binary(BinaryOp::Mul, a, b)
    }

    pub fn div(&mut self, a: NodeId, b: NodeId) -> Built {
        self.binary(BinaryOp::Div, a, b)
    }

    pub fn unary(&mut self, op: UnaryOp, x: NodeId) -> Built {
        self.push(Op::Unary(op), vec![x])
    }

    pub fn neg(&mut self, x: NodeId) -> Built {
        self.unary(UnaryOp::Neg, x)
    }

    pub fn pow(&mut self, x: NodeId, c: f64) -> Built {
        if c == 1.0 {
            Ok(x)
        } else {
            self.push(Op::Powf(c), vec![x])
        }
    }

    /// `1.0` where `a op b`, else `0.0`.
    pub fn cmp(&mut self, op: CmpOp, a: NodeId, b: NodeId) -> Built {
        self.push(Op::Compare(op), vec![a, b])
    }

    pub fn select(&mut self, cond: NodeId, a: NodeId, b: NodeId) -> Built {
        self.push(Op::Select, vec![cond, a, b])
    }

    pub fn sum(&mut self, x: NodeId, axis: Option<usize>, keepdims: bool) -> Built {
        self.push(
            Op::Reduce {
                op: ReduceOp::Sum,
                axis,
                keepdims,
            },
            vec![x],
        )
    }

    pub fn matmul(&mut self, a: NodeId, b: NodeId) -> Built {
        self.push(Op::MatMul, vec![a, b])
    }

    pub fn transpose(&mut self, x: NodeId) -> Built {
        self.push(Op::Transpose, vec![x])
    }

    pub fn reshape(&mut self, x: NodeId, shape: Shape) -> NodeId {
        let id = self.model.reshape(x, shape, self.span);
        self.tag(id);
        id
    }

    pub fn broadcast(&mut self, x: NodeId, shape: Shape) -> Built {
        let id = self
            .model
            .broadcast(x, shape, self.span)
            .map_err(|e| InternalError(format!("rule `{}`: {}", self.rule, e.message)))?;
        self.tag(id);
        Ok(id)
    }

    /// A reduced gradient `g` (shape of `reduce(x, axis, keepdims)`) spread back over
    /// `x`'s shape: the inverse of reducing.
    pub fn spread(
        &mut self,
        g: NodeId,
        x_shape: &Shape,
        axis: Option<usize>,
        keepdims: bool,
    ) -> Built {
        let kept = nnc_ir::op::reduced_shape(x_shape, axis, true);
        let g = if keepdims { g } else { self.reshape(g, kept) };
        self.broadcast(g, x_shape.clone())
    }

    /// Sums `g` over the axes along which a value of shape `target` was broadcast,
    /// so the result has shape `target` (the "undo broadcasting" rule).
    pub fn unbroadcast(&mut self, mut g: NodeId, target: &Shape) -> Built {
        let rule = std::mem::replace(&mut self.rule, "unbroadcast: sum over the broadcast axes");
        let extra = self.shape(g).len().saturating_sub(target.len());
        for _ in 0..extra {
            g = self.sum(g, Some(0), false)?;
        }
        let shape = self.shape(g);
        for (axis, (have, want)) in shape.iter().zip(target).enumerate() {
            if *want == Dim::Fixed(1) && *have != Dim::Fixed(1) {
                g = self.sum(g, Some(axis), true)?;
            }
        }
        self.rule = rule;
        Ok(g)
    }
}
