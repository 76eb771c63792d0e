//! The IR of one model: declarations, and an arena of nodes in topological order.

use crate::op::{BinaryOp, InputId, Op, ParamId};
use crate::shape::{self, ShapeError};
use crate::types::{DType, Dim, DimId, DimInfo, Elem, Shape, Type};
use nnc_syntax::Span;

/// A node's index in [`Model::nodes`]. Operands always have smaller ids than their
/// users, so a forward walk is a topological order and reverse mode is one backward
/// walk.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct NodeId(pub u32);

impl NodeId {
    pub fn index(self) -> usize {
        self.0 as usize
    }
}

/// One operation with its operands and result type.
#[derive(Clone, Debug, PartialEq)]
pub struct Node {
    pub op: Op,
    pub args: Vec<NodeId>,
    pub ty: Type,
    /// Where in the user's source this value comes from.
    pub span: Span,
    /// The source name (`h`, `y_pred`, `w1`), where the user gave one; autodiff names
    /// the gradient of `h` `d_h`.
    pub name: Option<String>,
    /// For nodes of the backward pass: the derivative rule that built it.
    pub rule: Option<&'static str>,
    /// The outermost function call (the user's or the prelude's) this node was
    /// inlined from, if any: pictures of the model draw such a call as one gate.
    pub call: Option<Call>,
    /// The step of the (innermost) loop this node was lowered in, if any; backward
    /// nodes take the step of the node whose rule built them.
    pub step: Option<LoopStep>,
}

/// One step of a loop: which loop (a position in [`Model::loops`]) and the index's
/// value at that step.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LoopStep {
    pub lp: u32,
    pub index: usize,
}

/// A loop of the source, unrolled when lowering: `for index in start..end`.
#[derive(Clone, Debug, PartialEq)]
pub struct LoopInfo {
    pub index: String,
    pub start: usize,
    pub end: usize,
    /// `for l in 0..L from x`, in the source.
    pub header: Span,
}

/// One inlined call of a function, as the user wrote it: `sigmoid(z)` at its span.
/// Calls inside a function's body belong to the outermost call.
#[derive(Clone, Debug, PartialEq)]
pub struct Call {
    /// The function's name.
    pub function: String,
    /// The call in the user's source.
    pub span: Span,
    /// Tells apart two calls of the same function (numbered in lowering order).
    pub id: u32,
}

/// What makes two nodes the same value: the op with its attributes, the operands and
/// the type; not the span, the name or the rule. Floats in attributes (constants,
/// exponents) compare by their bits, so `0` and `-0` stay apart and a key always
/// equals itself. Lowering hash-conses on it and the simplifier's CSE shares by it.
#[derive(Clone, Debug)]
pub struct NodeKey {
    op: Op,
    args: Vec<NodeId>,
    ty: Type,
}

impl NodeKey {
    pub fn new(op: &Op, args: &[NodeId], ty: &Type) -> NodeKey {
        NodeKey {
            op: op.clone(),
            args: args.to_vec(),
            ty: ty.clone(),
        }
    }

    /// The float attribute of an op that has one, as bits (for hashing).
    fn float_bits(op: &Op) -> Option<u64> {
        match op {
            Op::Const(v) | Op::Powf(v) => Some(v.to_bits()),
            _ => None,
        }
    }
}

impl PartialEq for NodeKey {
    fn eq(&self, other: &NodeKey) -> bool {
        let same_op = match (&self.op, &other.op) {
            (Op::Const(a), Op::Const(b)) | (Op::Powf(a), Op::Powf(b)) => a.to_bits() == b.to_bits(),
            (a, b) => a == b,
        };
        same_op && self.args == other.args && self.ty == other.ty
    }
}

impl Eq for NodeKey {}

impl std::hash::Hash for NodeKey {
    /// The op's variant and float bits, the operands and the type: other attributes
    /// (axes, kinds) are left to `eq`, as nodes that differ only there are rare.
    fn hash<H: std::hash::Hasher>(&self, state: &mut H) {
        std::mem::discriminant(&self.op).hash(state);
        NodeKey::float_bits(&self.op).hash(state);
        self.args.hash(state);
        self.ty.hash(state);
    }
}

/// A model input.
#[derive(Clone, Debug, PartialEq)]
pub struct InputInfo {
    pub name: String,
    pub ty: Type,
    /// `grad`-marked: its gradient is returned too.
    pub grad: bool,
    pub span: Span,
    /// Who gives the value: the caller's data, or (for train and eval modes) a
    /// `state`, a dropout mask or the mode itself.
    pub kind: InputKind,
}

/// What an input of the IR stands for. Only [`InputKind::Data`] inputs are the
/// caller's `input` declarations; the others are leaves the modes add, which the
/// interpreter's caller binds like inputs (so that autodiff, the simplifier and the
/// gradient check treat them as constants: a mask is held fixed) and generated code
/// reads from elsewhere (the `State`, the workspace, the entry point).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum InputKind {
    /// An `input` declaration.
    Data,
    /// A `state` declaration and its initial value (`zeros`, `ones` or a number).
    State(Init),
    /// The mask of one `dropout` call, drawn for each training step: each element
    /// `1 / keep` with probability `keep` (`1 - p`), else 0. All ones in eval mode.
    Mask { keep: f64 },
    /// The mode, a scalar (1 in training, 0 in eval), in models lowered
    /// [`Mode::Switched`] only.
    Training,
}

/// Which graph lowering builds for `dropout` and `batch_norm` (models without them
/// lower the same in every mode).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum Mode {
    /// The training step: `dropout` multiplies by a mask input, `batch_norm` uses
    /// the batch's statistics and updates the running ones ([`Model::state_updates`]).
    Train,
    /// Inference: `dropout` is the identity, `batch_norm` uses the running
    /// statistics, nothing is updated.
    Eval,
    /// Both, chosen when the model runs: the mask stays (all ones in eval mode) and
    /// `batch_norm` selects with a [`InputKind::Training`] input. What code
    /// generation compiles, so that one module holds the training step and eval mode.
    #[default]
    Switched,
}

/// A trainable parameter; its shape is fixed at compile time.
#[derive(Clone, Debug, PartialEq)]
pub struct ParamInfo {
    pub name: String,
    pub shape: Shape,
    pub init: Init,
    pub span: Span,
}

/// How a parameter is initialised (the contract's initialisers).
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    Zeros,
    Ones,
    Constant(f64),
    Normal {
        mean: f64,
        std: f64,
    },
    Uniform {
        lo: f64,
        hi: f64,
    },
    /// Standard normal / sqrt(fan_in).
    Xavier,
    /// Standard normal / sqrt(fan_in / 2).
    He,
}

/// What a gradient is taken with respect to.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum GradOf {
    Param(ParamId),
    Input(InputId),
}

/// One model, lowered. After differentiation, `grads` holds the node computing the
/// gradient of the loss for every param and `grad` input, in declaration order
/// (params first).
#[derive(Clone, Debug, PartialEq)]
pub struct Model {
    pub name: String,
    pub dtype: DType,
    pub dims: Vec<DimInfo>,
    pub inputs: Vec<InputInfo>,
    pub params: Vec<ParamInfo>,
    pub nodes: Vec<Node>,
    /// Named results of `forward`, in declaration order.
    pub outputs: Vec<(String, NodeId)>,
    /// The scalar loss.
    pub loss: NodeId,
    pub grads: Vec<(GradOf, NodeId)>,
    /// The loops the model was written with, in lowering order; nodes name their
    /// step ([`Node::step`]).
    pub loops: Vec<LoopInfo>,
    /// What the training step writes into each `state` input (an
    /// [`InputKind::State`]) after it has run: `(state, new value)`, in the order
    /// lowering met them. Empty in eval mode.
    pub state_updates: Vec<(InputId, NodeId)>,
}

/// A sum of values each padded along axis 0 into the sum's shape: a join along axis
/// 0 (`concat`, a loop's kept steps, the gradient of a stack read as `w[l]`).
pub struct Axis0Join {
    /// The pads, in the order found: `Pad { axis: 0, start, .. }` of a piece.
    pub pads: Vec<NodeId>,
    /// The sums walked through to reach them, the root's operands' included.
    pub sums: Vec<NodeId>,
}

impl Model {
    /// `n` as an [`Axis0Join`]: the sum `n` and the sums below it that `through`
    /// accepts, down to terms that must each be a pad along axis 0 into `n`'s shape.
    /// `None` when `n` is not a sum along a fixed first axis, or a term is another
    /// value; `through` sees every node below `n` before it is walked.
    pub fn axis0_join(&self, n: NodeId, through: impl Fn(NodeId) -> bool) -> Option<Axis0Join> {
        let node = self.node(n);
        let shape = &node.ty.shape;
        let (Op::Binary(BinaryOp::Add), Some(Dim::Fixed(size))) = (&node.op, shape.first()) else {
            return None;
        };
        let mut join = Axis0Join {
            pads: vec![],
            sums: vec![],
        };
        let mut todo = node.args.clone();
        while let Some(x) = todo.pop() {
            let term = self.node(x);
            if !through(x) {
                return None;
            }
            match term.op {
                Op::Binary(BinaryOp::Add) => {
                    join.sums.push(x);
                    todo.extend(&term.args);
                }
                Op::Pad {
                    axis: 0, size: s, ..
                } if s == *size && term.ty.shape == *shape => {
                    join.pads.push(x);
                }
                _ => return None,
            }
        }
        Some(join)
    }

    /// An empty model; lowering fills it.
    pub fn new(name: impl Into<String>, dtype: DType) -> Model {
        Model {
            name: name.into(),
            dtype,
            dims: vec![],
            inputs: vec![],
            params: vec![],
            nodes: vec![],
            outputs: vec![],
            loss: NodeId(0),
            grads: vec![],
            loops: vec![],
            state_updates: vec![],
        }
    }

    /// True for a model with `dropout` or `state`: one whose training step and eval
    /// mode differ.
    pub fn has_modes(&self) -> bool {
        self.inputs.iter().any(|i| i.kind != InputKind::Data)
    }

    /// The inputs of one kind, with their ids.
    pub fn inputs_where(
        &self,
        keep: impl Fn(&InputKind) -> bool,
    ) -> impl Iterator<Item = (InputId, &InputInfo)> {
        self.inputs
            .iter()
            .enumerate()
            .filter(move |(_, i)| keep(&i.kind))
            .map(|(k, i)| (InputId(k as u32), i))
    }

    pub fn node(&self, id: NodeId) -> &Node {
        &self.nodes[id.index()]
    }

    pub fn ty(&self, id: NodeId) -> &Type {
        &self.nodes[id.index()].ty
    }

    pub fn shape(&self, id: NodeId) -> &Shape {
        &self.nodes[id.index()].ty.shape
    }

    /// Appends a node after inferring its type from its operands.
    pub fn push(&mut self, op: Op, args: Vec<NodeId>, span: Span) -> Result<NodeId, ShapeError> {
        let ty = shape::infer(self, &op, &args)?;
        Ok(self.push_typed(op, args, ty, span))
    }

    /// Appends a node whose type the caller already knows (leaves; reshape and
    /// broadcast targets, which carry their shape in the node).
    pub fn push_typed(&mut self, op: Op, args: Vec<NodeId>, ty: Type, span: Span) -> NodeId {
        debug_assert!(
            args.iter().all(|a| a.index() < self.nodes.len()),
            "operands precede users"
        );
        let id = NodeId(self.nodes.len() as u32);
        self.nodes.push(Node {
            op,
            args,
            ty,
            span,
            name: None,
            rule: None,
            call: None,
            step: None,
        });
        id
    }

    /// A scalar constant.
    pub fn constant(&mut self, value: f64, span: Span) -> NodeId {
        self.push_typed(Op::Const(value), vec![], Type::float(vec![]), span)
    }

    /// `x` reshaped (same element count) to `shape`.
    pub fn reshape(&mut self, x: NodeId, shape: Shape, span: Span) -> NodeId {
        if *self.shape(x) == shape {
            return x;
        }
        let elem = self.ty(x).elem;
        self.push_typed(Op::Reshape, vec![x], Type { elem, shape }, span)
    }

    /// `x` broadcast to `shape` (which must be a broadcast of `x`'s shape).
    pub fn broadcast(&mut self, x: NodeId, shape: Shape, span: Span) -> Result<NodeId, ShapeError> {
        if *self.shape(x) == shape {
            return Ok(x);
        }
        shape::check_broadcasts_to(self, self.shape(x), &shape)?;
        Ok(self.push_typed(Op::Broadcast, vec![x], Type::float(shape), span))
    }

    /// The node that reads a parameter (lowering creates one per parameter).
    pub fn param_node(&self, p: ParamId) -> Option<NodeId> {
        self.find_leaf(&Op::Param(p))
    }

    pub fn input_node(&self, i: InputId) -> Option<NodeId> {
        self.find_leaf(&Op::Input(i))
    }

    fn find_leaf(&self, op: &Op) -> Option<NodeId> {
        self.nodes
            .iter()
            .position(|n| n.op == *op)
            .map(|i| NodeId(i as u32))
    }

    /// The dim's name, for messages and printing.
    pub fn dim_name(&self, d: DimId) -> &str {
        &self.dims[d.0 as usize].name
    }

    /// A shape as users write it: `[N, 100]`.
    pub fn shape_str(&self, shape: &[Dim]) -> String {
        let dims: Vec<String> = shape.iter().map(|d| self.dim_str(*d)).collect();
        format!("[{}]", dims.join(", "))
    }

    pub fn dim_str(&self, d: Dim) -> String {
        match d {
            Dim::Fixed(n) => n.to_string(),
            Dim::Var(v) => self.dim_name(v).to_string(),
        }
    }

    /// A type as users write it: `[N, 100]` or `index[N]`.
    pub fn type_str(&self, ty: &Type) -> String {
        match ty.elem {
            Elem::Float => self.shape_str(&ty.shape),
            Elem::Index => format!("index{}", self.shape_str(&ty.shape)),
        }
    }

    /// The name a gradient is reported under (the param's or input's name).
    pub fn grad_name(&self, of: GradOf) -> &str {
        match of {
            GradOf::Param(p) => &self.params[p.0 as usize].name,
            GradOf::Input(i) => &self.inputs[i.0 as usize].name,
        }
    }

    /// The shape a gradient has (that of its param or input).
    pub fn grad_shape(&self, of: GradOf) -> &Shape {
        match of {
            GradOf::Param(p) => &self.params[p.0 as usize].shape,
            GradOf::Input(i) => &self.inputs[i.0 as usize].ty.shape,
        }
    }

    /// Everything the loss, outputs and gradients need, as a keep-mask over nodes.
    pub fn live_nodes(&self) -> Vec<bool> {
        let mut live = vec![false; self.nodes.len()];
        let roots = self
            .outputs
            .iter()
            .map(|(_, n)| *n)
            .chain([self.loss])
            .chain(self.grads.iter().map(|(_, n)| *n))
            .chain(self.state_updates.iter().map(|(_, n)| *n));
        for r in roots {
            live[r.index()] = true;
        }
        for i in (0..self.nodes.len()).rev() {
            if live[i] {
                for a in &self.nodes[i].args {
                    live[a.index()] = true;
                }
            }
        }
        live
    }
}
