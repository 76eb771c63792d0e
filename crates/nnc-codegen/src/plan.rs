//! Planning: from a model's IR (forward and backward pass) to the steps of one
//! generated function. Pure — it decides, [`crate::emit`] writes.
//!
//! A plan answers three questions for every node the function needs:
//!
//! 1. **How is it computed?** ([`Kind`]) Parameters and inputs are read in place;
//!    constants, broadcasts, reshapes, transposes and one-hots are *inline*: never
//!    stored, evaluated by index arithmetic wherever they are used; scalars are
//!    `let`s; matmuls are calls to `general_mat_mul`; everything else is a *member*
//!    of a loop nest.
//! 2. **Which loop?** ([`Nest`]) Members are grouped greedily, in topological order:
//!    a node joins the nest of its operands when the shapes line up and no value
//!    computed outside the nest lies between them (`Builder::can_join`). So an
//!    elementwise chain becomes one loop, a row-wise softmax + cross-entropy + its
//!    gradient one pass per row, a bias gradient a column sum inside the loop that
//!    computes its operand.
//! 3. **Where does it live?** ([`Hold`]) A member used only inside its nest stays in
//!    registers; one used elsewhere (by a matmul, another nest, as a result) is stored
//!    to a workspace buffer or straight into its gradient or output.
//!
//! Before grouping for good, a first grouping finds cheap values that would be
//! stored only for another nest to read, and those are recomputed there instead
//! (`Builder::rematerialised`); matmuls added to a value computed in a loop
//! accumulate into its buffer (`Kind::GemmAcc`).
//!
//! Within a nest, one axis `r` (the reduction axis of its row operations, else the
//! last) is the inner loop; the other axes are outer loops. Members that vary along
//! `r` are computed in *passes* over `r`; members that do not are computed once per
//! row; reductions over `r` are accumulated in a pass and ready after it. A softmax
//! needs three passes (max, sum of exponentials, result); members are placed in the
//! earliest pass their operands allow, and the passes of a nest are shared.

use nnc_ir::{BinaryOp, Dim, Elem, Model, NodeId, Op, ReduceOp, Shape};

/// The three generated functions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Entry {
    /// `loss`: the loss only.
    Loss,
    /// `forward`: the outputs.
    Forward,
    /// `loss_and_grad`: the loss and every gradient.
    LossAndGrad,
}

/// How a node is computed in this function.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Not needed by this function.
    Unneeded,
    /// A parameter or input: read in place.
    Leaf,
    /// Evaluated where it is used (constants, dims, broadcast, reshape, transpose,
    /// one-hot, reductions over a size-1 axis).
    Inline,
    /// A scalar (or all-size-1) value: one `let`.
    Scalar,
    /// A matmul into a buffer.
    Gemm,
    /// `P + A @ B`: `P` is written to the buffer, then the matmul accumulates into it.
    GemmAcc,
    /// Computed in a loop nest.
    Member,
    /// A scalar broadcast that must exist as an array: `slice.fill(v)`.
    Fill,
}

/// Where a node's value is while the function runs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Hold {
    None,
    Leaf,
    Inline,
    /// A local variable (scalars).
    Local,
    /// A workspace buffer.
    Buffer,
    /// The gradient at this position of `Model::grads`, in the caller's `Grads`.
    Grad(usize),
    /// Only in registers, inside its nest.
    Register,
    /// A first-extremum mask over all axes: the position of the extremum (a local).
    ArgPos,
}

/// Where in its nest a member is computed.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    /// Varies along the nest's inner axis: computed in a pass.
    Pass,
    /// Constant along the inner axis: computed once per row.
    Row,
    /// Accumulated over the whole nest (reductions over outer axes): ready after it.
    Nest,
}

/// A position in a nest's row: `Row(k)` is after pass `k` (`Row(0)` before the
/// first), `Pass(k)` is inside pass `k` (from 1).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Slot {
    Row(usize),
    Pass(usize),
}

impl Slot {
    /// Order of positions: `Row(0) < Pass(1) < Row(1) < Pass(2) < ...`.
    pub fn pos(self) -> usize {
        match self {
            Slot::Row(k) => 2 * k,
            Slot::Pass(k) => 2 * k - 1,
        }
    }
}

/// A node computed in a nest.
#[derive(Clone, Debug, PartialEq)]
pub struct Member {
    pub node: NodeId,
    /// For each axis of the node: the nest axis it runs along (`None` for size-1 axes).
    pub axes: Vec<Option<usize>>,
    pub level: Level,
    /// Written to its buffer (or gradient, or output).
    pub store: bool,
    /// Pass level: the pass computing it. Row level: `Row(k)`, ready after pass `k`.
    /// Nest level: where the accumulation happens.
    pub slot: Slot,
    /// For reductions, row operations and picks: the axes of the operand reduced
    /// (for a dot product, of both operands).
    pub input_axes: Vec<Option<usize>>,
}

/// A running value of a row reduction (the max and sum of a softmax, say).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum HelperKind {
    Max,
    Min,
    /// First maximum and its position along the inner axis.
    ArgMax,
    ArgMin,
    Sum,
    /// Sum of `exp(x - shift)`, the shift from the owner's `Max` helper.
    SumExp,
}

#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Helper {
    /// The member this helps compute.
    pub owner: NodeId,
    pub kind: HelperKind,
    /// The value reduced (evaluated in the pass, at the owner's input position).
    pub of: NodeId,
    pub pass: usize,
}

/// One loop nest.
#[derive(Clone, Debug, PartialEq)]
pub struct Nest {
    /// The iteration space (no size-1 axes).
    pub domain: Shape,
    /// The inner axis.
    pub r: usize,
    /// In topological order.
    pub members: Vec<Member>,
    pub helpers: Vec<Helper>,
    /// Number of passes over `r` per row.
    pub passes: usize,
}

impl Nest {
    pub fn member(&self, n: NodeId) -> Option<&Member> {
        self.members.iter().find(|m| m.node == n)
    }

    /// The outer axes, in order.
    pub fn outer(&self) -> Vec<usize> {
        (0..self.domain.len()).filter(|a| *a != self.r).collect()
    }
}

/// One step of a generated function.
#[derive(Clone, Debug, PartialEq)]
pub enum Step {
    /// `let name = expr;` for a scalar.
    Scalar(NodeId),
    /// `dest (+)= a @ b` for the matmul node `matmul`.
    Gemm {
        matmul: NodeId,
        dest: NodeId,
        accumulate: bool,
    },
    Nest(Nest),
    /// `node`'s storage filled with its (scalar) operand.
    Fill(NodeId),
}

/// The plan of one generated function.
#[derive(Clone, Debug)]
pub struct Plan {
    pub entry: Entry,
    pub kind: Vec<Kind>,
    pub hold: Vec<Hold>,
    /// For members: which step (a nest) computes them.
    pub step_of: Vec<Option<usize>>,
    pub steps: Vec<Step>,
    /// For `GemmAcc` nodes: the operand written first and the matmul accumulated.
    pub gemm_acc: Vec<Option<(NodeId, NodeId)>>,
}

impl Plan {
    pub fn nest(&self, step: usize) -> Option<&Nest> {
        match self.steps.get(step) {
            Some(Step::Nest(n)) => Some(n),
            _ => None,
        }
    }

    /// The nest computing `n`, and its member record.
    pub fn member(&self, n: NodeId) -> Option<(usize, &Member)> {
        let step = self.step_of[n.index()]?;
        self.nest(step)?.member(n).map(|m| (step, m))
    }
}

/// The values a function must produce.
pub fn roots(model: &Model, entry: Entry) -> Vec<NodeId> {
    match entry {
        Entry::Loss => vec![model.loss],
        Entry::Forward => model.outputs.iter().map(|(_, n)| *n).collect(),
        Entry::LossAndGrad => std::iter::once(model.loss)
            .chain(model.grads.iter().map(|(_, n)| *n))
            .collect(),
    }
}

/// True for a size-1 axis.
pub fn unit(d: Dim) -> bool {
    d == Dim::Fixed(1)
}

/// True when every axis has size 1 (scalars included).
pub fn scalar_like(shape: &[Dim]) -> bool {
    shape.iter().all(|d| unit(*d))
}

/// The size-1 axes removed: a nest's domain.
fn nonunit(shape: &[Dim]) -> Shape {
    shape.iter().copied().filter(|d| !unit(*d)).collect()
}

/// How a reshape maps axes, when it only adds or removes size-1 axes: for each
/// output axis, the operand axis (`None` for size-1 axes).
pub fn unit_reshape(from: &[Dim], to: &[Dim]) -> Option<Vec<Option<usize>>> {
    if nonunit(from) != nonunit(to) {
        return None;
    }
    let src: Vec<usize> = (0..from.len()).filter(|a| !unit(from[*a])).collect();
    let mut next = src.into_iter();
    Some(
        to.iter()
            .map(|d| if unit(*d) { None } else { next.next() })
            .collect(),
    )
}

/// The node a matmul operand is read from, through transposes and reshapes that only
/// add size-1 axes (which are ndarray views), and whether that is the case for each.
pub fn gemm_base(model: &Model, mut n: NodeId) -> NodeId {
    loop {
        let node = model.node(n);
        match node.op {
            Op::Transpose => n = node.args[0],
            Op::Reshape
                if unit_reshape(model.shape(node.args[0]), &node.ty.shape).is_some()
                    && model.shape(node.args[0]).len() <= 2 =>
            {
                n = node.args[0]
            }
            _ => return n,
        }
    }
}

/// A reduction over a size-1 axis (or a row operation along one) needs no loop.
fn trivial_axis_op(model: &Model, n: NodeId) -> bool {
    let node = model.node(n);
    let input = |i: usize| model.shape(node.args[i]);
    match node.op {
        Op::Reduce { axis: Some(a), .. }
        | Op::Softmax { axis: a }
        | Op::LogSoftmax { axis: a }
        | Op::ExtremumMask { axis: Some(a), .. }
        | Op::ArgMax { axis: a, .. } => input(0).get(a).is_none_or(|d| unit(*d)),
        Op::Pick { .. } => input(0).get(1).is_none_or(|d| unit(*d)),
        _ => false,
    }
}

/// One axis of a value inside a nest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ax {
    Unit,
    Dom(usize),
    Unknown,
}

/// What a member needs of its nest.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Req {
    /// Elementwise (and forced views, and the first write of a `GemmAcc`).
    Map,
    Reduce {
        input: NodeId,
        op: ReduceOp,
        axis: Option<usize>,
        keepdims: bool,
    },
    /// Softmax, log-softmax, extremum mask or argmax along `axis`.
    RowOp {
        input: NodeId,
        axis: usize,
    },
    Pick {
        x: NodeId,
        keepdims: bool,
    },
    Dot {
        a: NodeId,
        b: NodeId,
    },
    /// First-extremum mask over all axes.
    MaskAll {
        input: NodeId,
    },
}

#[derive(Clone, Debug)]
struct NestBuild {
    domain: Shape,
    r: usize,
    members: Vec<NodeId>,
}

/// Where a node would sit in a nest.
#[derive(Clone, Debug)]
struct Placement {
    axes: Vec<Option<usize>>,
    level: Level,
    input_axes: Vec<Option<usize>>,
}

#[derive(Clone)]
struct State {
    nests: Vec<Option<NestBuild>>,
    nest_of: Vec<Option<usize>>,
    axes: Vec<Vec<Option<usize>>>,
    input_axes: Vec<Vec<Option<usize>>>,
    level: Vec<Option<Level>>,
}

/// The planner's working state for one function.
struct Builder<'m> {
    model: &'m Model,
    kind: Vec<Kind>,
    users: Vec<Vec<NodeId>>,
    roots: Vec<NodeId>,
    gemm_acc: Vec<Option<(NodeId, NodeId)>>,
    /// A matmul whose result is written straight into a `GemmAcc` buffer.
    alias_of: Vec<Option<NodeId>>,
    /// A matmul accumulated into a `GemmAcc` buffer: never stored on its own.
    absorbed: Vec<bool>,
    st: State,
}

/// Plans one function of `model`.
///
/// Twice when it pays: cheap values that the first grouping would store only so
/// that another nest can read them are recomputed there instead (see
/// `Builder::rematerialised`), and the grouping is redone without them.
pub fn plan(model: &Model, entry: Entry) -> Plan {
    let mut b = Builder::new(model, entry, &[]);
    b.form_nests();
    let remat = b.rematerialised();
    if !remat.is_empty() {
        b = Builder::new(model, entry, &remat);
        b.form_nests();
    }
    b.finish(entry)
}

/// Ops cheap enough to compute twice rather than store once.
fn cheap(op: &Op) -> bool {
    match op {
        Op::Unary(u) => matches!(u, nnc_ir::UnaryOp::Neg | nnc_ir::UnaryOp::Abs),
        Op::Powf(c) => *c == 2.0,
        Op::Binary(b) => !matches!(b, BinaryOp::Div),
        Op::Compare(_) | Op::Select => true,
        _ => false,
    }
}

impl<'m> Builder<'m> {
    fn new(model: &'m Model, entry: Entry, remat: &[NodeId]) -> Builder<'m> {
        let len = model.nodes.len();
        let roots = roots(model, entry);
        let mut needed = vec![false; len];
        for r in &roots {
            needed[r.index()] = true;
        }
        for i in (0..len).rev() {
            if needed[i] {
                for a in &model.nodes[i].args {
                    needed[a.index()] = true;
                }
            }
        }
        let mut users = vec![Vec::new(); len];
        for (i, _) in needed.iter().enumerate().filter(|(_, n)| **n) {
            {
                for a in &model.nodes[i].args {
                    if !users[a.index()].contains(&NodeId(i as u32)) {
                        users[a.index()].push(NodeId(i as u32));
                    }
                }
            }
        }
        let mut b = Builder {
            model,
            kind: vec![Kind::Unneeded; len],
            users,
            roots,
            gemm_acc: vec![None; len],
            alias_of: vec![None; len],
            absorbed: vec![false; len],
            st: State {
                nests: vec![],
                nest_of: vec![None; len],
                axes: vec![vec![]; len],
                input_axes: vec![vec![]; len],
                level: vec![None; len],
            },
        };
        for (i, _) in needed.iter().enumerate().filter(|(_, n)| **n) {
            b.kind[i] = if remat.contains(&NodeId(i as u32)) {
                Kind::Inline
            } else {
                b.classify(NodeId(i as u32))
            };
        }
        b.force_materialised();
        b
    }

    /// Members that are stored whatever the grouping: results, matmul operands, and
    /// operands of steps outside any nest (scalars, fills, `GemmAcc` first terms).
    fn must_store(&self) -> Vec<bool> {
        let len = self.model.nodes.len();
        let mut out = vec![false; len];
        for r in &self.roots {
            out[r.index()] = true;
        }
        for i in 0..len {
            let n = NodeId(i as u32);
            match self.kind[i] {
                Kind::Gemm => {
                    for a in &self.model.nodes[i].args {
                        out[gemm_base(self.model, *a).index()] = true;
                    }
                }
                Kind::Scalar | Kind::Fill => {
                    let (mut ext, mut int) = (vec![], vec![]);
                    for a in self.fargs(n) {
                        self.deps(a, &[], &mut ext, &mut int);
                    }
                    for e in ext {
                        out[e.index()] = true;
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// **Rematerialisation.** A cheap member (`+ - * max min`, comparisons, selects,
    /// squares) that another nest reads is recomputed there instead of stored, when
    /// everything it is computed from is available there anyway: stored for other
    /// reasons, a parameter or input, a matmul result, or itself recomputable (up to
    /// four ops). So the backward pass of `sigmoid` reads `h` and recomputes
    /// `h * (1 - h)`, and a ReLU's backward recomputes its mask `0 < x @ w + b` from
    /// the matmul's buffer: the forward stores nothing extra.
    fn rematerialised(&self) -> Vec<NodeId> {
        let must = self.must_store();
        let len = self.model.nodes.len();
        // The ops a recomputation costs, when it is possible at all.
        let mut cost: Vec<Option<usize>> = vec![None; len];
        for i in 0..len {
            let n = NodeId(i as u32);
            if self.kind[i] != Kind::Member || must[i] || !cheap(&self.model.node(n).op) {
                continue;
            }
            let (mut ext, mut int) = (vec![], vec![]);
            for a in self.fargs(n) {
                self.deps(a, &[], &mut ext, &mut int);
            }
            let mut total = Some(1);
            for e in ext {
                let c = match self.kind[e.index()] {
                    Kind::Member if must[e.index()] => Some(0),
                    Kind::Member => cost[e.index()],
                    _ => Some(0),
                };
                total = total.zip(c).map(|(t, c)| t + c);
            }
            cost[i] = total.filter(|c| *c <= 4);
        }
        // Those read by another nest, and what they are computed from.
        let mut out = vec![];
        for i in 0..len {
            let n = NodeId(i as u32);
            if cost[i].is_none() {
                continue;
            }
            let home = self.st.nest_of[i];
            let read_elsewhere = self.users[i]
                .iter()
                .any(|u| self.st.nest_of[u.index()] != home || home.is_none());
            if read_elsewhere {
                self.with_operands(n, &cost, &must, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    fn with_operands(
        &self,
        n: NodeId,
        cost: &[Option<usize>],
        must: &[bool],
        out: &mut Vec<NodeId>,
    ) {
        if out.contains(&n) {
            return;
        }
        out.push(n);
        let (mut ext, mut int) = (vec![], vec![]);
        for a in self.fargs(n) {
            self.deps(a, &[], &mut ext, &mut int);
        }
        for e in ext {
            if self.kind[e.index()] == Kind::Member && !must[e.index()] && cost[e.index()].is_some()
            {
                self.with_operands(e, cost, must, out);
            }
        }
    }

    fn shape(&self, n: NodeId) -> &'m Shape {
        self.model.shape(n)
    }

    fn is_root(&self, n: NodeId) -> bool {
        self.roots.contains(&n)
    }

    fn classify(&mut self, n: NodeId) -> Kind {
        let node = self.model.node(n);
        let sl = scalar_like(&node.ty.shape);
        match &node.op {
            Op::Input(_) | Op::Param(_) => Kind::Leaf,
            Op::Const(_)
            | Op::DimSize(_)
            | Op::Broadcast
            | Op::Reshape
            | Op::Transpose
            | Op::OneHot { .. } => Kind::Inline,
            _ if trivial_axis_op(self.model, n) => Kind::Inline,
            Op::Unary(_) | Op::Powf(_) | Op::Compare(_) | Op::Select if sl => Kind::Scalar,
            Op::Binary(_) if sl => Kind::Scalar,
            Op::Binary(BinaryOp::Add) => match self.gemm_accumulation(n) {
                Some((p, m)) => {
                    self.gemm_acc[n.index()] = Some((p, m));
                    self.absorbed[m.index()] = true;
                    if self.kind[p.index()] == Kind::Gemm && self.single_use(p) {
                        self.alias_of[p.index()] = Some(n);
                    }
                    Kind::GemmAcc
                }
                None => Kind::Member,
            },
            Op::Unary(_) | Op::Powf(_) | Op::Compare(_) | Op::Select | Op::Binary(_) => {
                Kind::Member
            }
            Op::Reduce { .. } if scalar_like(self.shape(node.args[0])) => Kind::Scalar,
            Op::Reduce { .. }
            | Op::Softmax { .. }
            | Op::LogSoftmax { .. }
            | Op::ExtremumMask { .. }
            | Op::ArgMax { .. }
            | Op::Pick { .. } => Kind::Member,
            Op::MatMul => {
                let (a, b) = (self.shape(node.args[0]), self.shape(node.args[1]));
                match (a.len(), b.len()) {
                    (1, 1) if unit(a[0]) => Kind::Scalar,
                    (1, 1) => Kind::Member,
                    _ => Kind::Gemm,
                }
            }
        }
    }

    /// A matmul used only here (and not a result).
    fn single_use(&self, n: NodeId) -> bool {
        self.users[n.index()].len() == 1 && !self.is_root(n)
    }

    /// `P + M` with `M` a matmul of the same shape used only here, and `P` computed
    /// in a loop (or another such matmul): `(P, M)`.
    fn gemm_accumulation(&self, n: NodeId) -> Option<(NodeId, NodeId)> {
        let node = self.model.node(n);
        let (x, y) = (node.args[0], node.args[1]);
        let shape = &node.ty.shape;
        let is_gemm = |m: NodeId| {
            self.kind[m.index()] == Kind::Gemm && self.single_use(m) && self.shape(m) == shape
        };
        // `P` is computed in a loop (its last value written straight into the
        // buffer), or is itself a matmul that can write there: never a copy.
        let fits = |p: NodeId| {
            self.shape(p) == shape && (self.kind[p.index()] == Kind::Member || is_gemm(p))
        };
        if is_gemm(y) && fits(x) {
            return Some((x, y));
        }
        if is_gemm(x) && fits(y) {
            return Some((y, x));
        }
        None
    }

    /// Matmul operands must be arrays, and so must results: inline values there
    /// become members (or fills).
    fn force_materialised(&mut self) {
        let mut force = vec![];
        for (i, k) in self.kind.iter().enumerate() {
            if *k == Kind::Gemm {
                for a in &self.model.nodes[i].args {
                    force.push(gemm_base(self.model, *a));
                }
            }
        }
        force.extend(self.roots.iter().copied());
        for n in force {
            if self.kind[n.index()] != Kind::Inline {
                continue;
            }
            let node = self.model.node(n);
            if scalar_like(&node.ty.shape) {
                continue;
            }
            let fill = node.op == Op::Broadcast && scalar_like(self.shape(node.args[0]));
            self.kind[n.index()] = if fill { Kind::Fill } else { Kind::Member };
        }
    }

    /// The operands a member reads for its nest: a `GemmAcc` reads only its first
    /// term there.
    fn fargs(&self, n: NodeId) -> Vec<NodeId> {
        match self.gemm_acc[n.index()] {
            Some((p, _)) => vec![p],
            None => self.model.node(n).args.clone(),
        }
    }

    fn req(&self, n: NodeId) -> Req {
        let node = self.model.node(n);
        let a = &node.args;
        if self.kind[n.index()] == Kind::GemmAcc {
            return Req::Map;
        }
        match node.op {
            Op::Reduce { op, axis, keepdims } => Req::Reduce {
                input: a[0],
                op,
                axis,
                keepdims,
            },
            Op::Softmax { axis } | Op::LogSoftmax { axis } | Op::ArgMax { axis, .. } => {
                Req::RowOp { input: a[0], axis }
            }
            Op::ExtremumMask {
                axis: Some(axis), ..
            } => Req::RowOp { input: a[0], axis },
            Op::ExtremumMask { axis: None, .. } => Req::MaskAll { input: a[0] },
            Op::Pick { keepdims } => Req::Pick { x: a[0], keepdims },
            Op::MatMul => Req::Dot { a: a[0], b: a[1] },
            _ => Req::Map,
        }
    }

    /// The natural nest of a member: its domain and inner axis.
    fn natural(&self, n: NodeId) -> (Shape, usize) {
        let last = |shape: &Shape| nonunit(shape).len().saturating_sub(1);
        let position = |shape: &Shape, axis: usize| (0..axis).filter(|k| !unit(shape[*k])).count();
        match self.req(n) {
            Req::Map => {
                let s = self.shape(n);
                (nonunit(s), last(s))
            }
            Req::Reduce {
                input, op, axis, ..
            } => {
                let s = self.shape(input);
                let r = match (op, axis) {
                    (ReduceOp::Sum, _) | (_, None) => last(s),
                    (_, Some(a)) => position(s, a),
                };
                (nonunit(s), r)
            }
            Req::RowOp { input, axis } => {
                let s = self.shape(input);
                (nonunit(s), position(s, axis))
            }
            Req::Pick { x, .. } => {
                let s = self.shape(x);
                (nonunit(s), position(s, 1))
            }
            Req::Dot { a, .. } => (nonunit(self.shape(a)), 0),
            Req::MaskAll { input } => {
                let s = self.shape(input);
                (nonunit(s), last(s))
            }
        }
    }

    // ---- axis maps -------------------------------------------------------------

    fn unknown(&self, n: NodeId) -> Vec<Ax> {
        self.shape(n)
            .iter()
            .map(|d| if unit(*d) { Ax::Unit } else { Ax::Unknown })
            .collect()
    }

    /// The axes of `o`'s value inside nest `x`, as far as they are known.
    fn map_of(&self, o: NodeId, x: usize) -> Vec<Ax> {
        if self.st.nest_of[o.index()] == Some(x) {
            return self.st.axes[o.index()]
                .iter()
                .map(|a| a.map_or(Ax::Unit, Ax::Dom))
                .collect();
        }
        match self.kind[o.index()] {
            Kind::Inline => self.map_view(o, x),
            _ => self.unknown(o),
        }
    }

    /// Axis maps through inline nodes (and forced ones, for their own placement).
    fn map_view(&self, o: NodeId, x: usize) -> Vec<Ax> {
        let node = self.model.node(o);
        let shape = &node.ty.shape;
        let from_operand = |ms: Vec<Ax>, src: &Shape| -> Vec<Ax> {
            // Right-aligned broadcasting.
            let off = shape.len() - src.len().min(shape.len());
            (0..shape.len())
                .map(|k| {
                    if unit(shape[k]) {
                        return Ax::Unit;
                    }
                    match k.checked_sub(off) {
                        Some(k2) if k2 < src.len() && !unit(src[k2]) => ms[k2],
                        _ => Ax::Unknown,
                    }
                })
                .collect()
        };
        match &node.op {
            Op::Broadcast => from_operand(self.map_of(node.args[0], x), self.shape(node.args[0])),
            Op::Reshape => match unit_reshape(self.shape(node.args[0]), shape) {
                Some(map) => {
                    let ms = self.map_of(node.args[0], x);
                    map.iter().map(|s| s.map_or(Ax::Unit, |k| ms[k])).collect()
                }
                None => self.unknown(o),
            },
            Op::Transpose => {
                let mut ms = self.map_of(node.args[0], x);
                ms.reverse();
                ms
            }
            Op::OneHot { classes } => {
                let mut ms = self.map_of(node.args[0], x);
                ms.push(if unit(*classes) {
                    Ax::Unit
                } else {
                    Ax::Unknown
                });
                ms
            }
            Op::Reduce {
                axis: Some(a),
                keepdims,
                ..
            } => {
                let ms = self.map_of(node.args[0], x);
                ms.iter()
                    .enumerate()
                    .filter_map(|(k, m)| match (k == *a, keepdims) {
                        (false, _) => Some(*m),
                        (true, true) => Some(Ax::Unit),
                        (true, false) => None,
                    })
                    .collect()
            }
            Op::Pick { keepdims } => {
                let ms = self.map_of(node.args[0], x);
                let mut out = vec![ms[0]];
                if *keepdims {
                    out.push(Ax::Unit);
                }
                out
            }
            Op::Unary(_) | Op::Powf(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => self
                .map_elementwise(o, &node.args, x)
                .unwrap_or_else(|| self.unknown(o)),
            _ => self.unknown(o),
        }
    }

    /// An elementwise node's axes from its operands' (right-aligned broadcasting);
    /// `None` when two operands disagree.
    fn map_elementwise(&self, n: NodeId, args: &[NodeId], x: usize) -> Option<Vec<Ax>> {
        let shape = self.shape(n);
        let mut out = self.unknown(n);
        for a in args {
            let s = self.shape(*a);
            let ms = self.map_of(*a, x);
            let off = shape.len().checked_sub(s.len())?;
            for (k2, m) in ms.iter().enumerate() {
                let k = k2 + off;
                if unit(s[k2]) || unit(shape[k]) {
                    continue;
                }
                if let Ax::Dom(d) = m {
                    match out[k] {
                        Ax::Dom(e) if e != *d => return None,
                        _ => out[k] = Ax::Dom(*d),
                    }
                }
            }
        }
        Some(out)
    }

    /// Fills unknown axes right-aligned with the domain and checks the map: sizes
    /// agree, no nest axis used twice.
    fn complete(&self, map: Vec<Ax>, shape: &Shape, domain: &Shape) -> Option<Vec<Option<usize>>> {
        let mut used: Vec<bool> = vec![false; domain.len()];
        for m in &map {
            if let Ax::Dom(d) = m {
                if used[*d] {
                    return None;
                }
                used[*d] = true;
            }
        }
        let nonunit_axes: Vec<usize> = (0..shape.len()).filter(|k| !unit(shape[*k])).collect();
        let mut out = vec![None; shape.len()];
        for (t, k) in nonunit_axes.iter().rev().enumerate() {
            let d = match map[*k] {
                Ax::Dom(d) => d,
                Ax::Unit => return None,
                Ax::Unknown => {
                    let d = domain.len().checked_sub(t + 1)?;
                    if used[d] {
                        return None;
                    }
                    used[d] = true;
                    d
                }
            };
            if domain.get(d) != Some(&shape[*k]) {
                return None;
            }
            out[*k] = Some(d);
        }
        Some(out)
    }

    // ---- placement and legality -------------------------------------------------

    /// How `n` would sit in nest `x`, if its shapes allow.
    fn place(&self, n: NodeId, x: usize) -> Option<Placement> {
        let nest = self.st.nests[x].as_ref()?;
        let (domain, r) = (&nest.domain, nest.r);
        let full = |axes: &[Option<usize>]| {
            let mut covered: Vec<usize> = axes.iter().flatten().copied().collect();
            covered.sort_unstable();
            covered == (0..domain.len()).collect::<Vec<_>>()
        };
        let outer_only = |axes: &[Option<usize>]| {
            let mut covered: Vec<usize> = axes.iter().flatten().copied().collect();
            covered.sort_unstable();
            covered == (0..domain.len()).filter(|d| *d != r).collect::<Vec<_>>()
        };
        let input_map = |i: NodeId| self.complete(self.map_of(i, x), self.shape(i), domain);
        let level_of = |axes: &[Option<usize>]| {
            if axes.contains(&Some(r)) {
                Level::Pass
            } else {
                Level::Row
            }
        };
        match self.req(n) {
            Req::Map => {
                let map = if self.kind[n.index()] == Kind::GemmAcc
                    || !self.model.node(n).op.is_elementwise()
                {
                    if self.kind[n.index()] == Kind::GemmAcc {
                        self.map_elementwise(n, &self.fargs(n), x)?
                    } else {
                        self.map_view(n, x)
                    }
                } else {
                    self.map_elementwise(n, &self.model.node(n).args, x)?
                };
                let axes = self.complete(map, self.shape(n), domain)?;
                let level = level_of(&axes);
                Some(Placement {
                    axes,
                    level,
                    input_axes: vec![],
                })
            }
            Req::Reduce {
                input,
                op,
                axis,
                keepdims,
            } => {
                let mi = input_map(input)?;
                let in_shape = self.shape(input);
                let reduced: Vec<usize> = match axis {
                    Some(a) => vec![a],
                    None => (0..in_shape.len()).collect(),
                };
                let reduced_dom: Vec<usize> = reduced.iter().filter_map(|a| mi[*a]).collect();
                let row_acc = reduced_dom == [r] && full(&mi);
                let axes: Vec<Option<usize>> = (0..in_shape.len())
                    .filter_map(|k| match (reduced.contains(&k), keepdims) {
                        (false, _) => Some(mi[k]),
                        (true, true) => Some(None),
                        (true, false) => None,
                    })
                    .collect();
                if row_acc {
                    return Some(Placement {
                        axes,
                        level: Level::Row,
                        input_axes: mi,
                    });
                }
                let nest_ok = op == ReduceOp::Sum || axis.is_none();
                let input_pass = mi.contains(&Some(r));
                let covered = if input_pass {
                    full(&mi)
                } else {
                    outer_only(&mi)
                };
                (nest_ok && covered).then_some(Placement {
                    axes,
                    level: Level::Nest,
                    input_axes: mi,
                })
            }
            Req::RowOp { input, axis } => {
                let mi = input_map(input)?;
                if mi[axis] != Some(r) || !full(&mi) {
                    return None;
                }
                match self.model.node(n).op {
                    Op::ArgMax { keepdims, .. } => {
                        let axes = (0..mi.len())
                            .filter_map(|k| match (k == axis, keepdims) {
                                (false, _) => Some(mi[k]),
                                (true, true) => Some(None),
                                (true, false) => None,
                            })
                            .collect();
                        Some(Placement {
                            axes,
                            level: Level::Row,
                            input_axes: mi,
                        })
                    }
                    _ => Some(Placement {
                        axes: mi.clone(),
                        level: Level::Pass,
                        input_axes: mi,
                    }),
                }
            }
            Req::Pick { x: xs, keepdims } => {
                let mx = input_map(xs)?;
                if mx[1] != Some(r) || !full(&mx) {
                    return None;
                }
                let mut axes = vec![mx[0]];
                if keepdims {
                    axes.push(None);
                }
                Some(Placement {
                    axes,
                    level: Level::Row,
                    input_axes: mx,
                })
            }
            Req::Dot { a, b } => {
                let (ma, mb) = (input_map(a)?, input_map(b)?);
                (domain.len() == 1 && ma == [Some(r)] && mb == [Some(r)]).then_some(Placement {
                    axes: vec![],
                    level: Level::Row,
                    input_axes: ma,
                })
            }
            Req::MaskAll { input } => {
                let mi = input_map(input)?;
                full(&mi).then_some(Placement {
                    axes: mi.clone(),
                    level: Level::Nest,
                    input_axes: mi,
                })
            }
        }
    }

    /// A member whose value cannot be read inside its own nest: nest-level
    /// accumulations (ready only after the nest) and `GemmAcc`s (final only after
    /// their matmul).
    fn unavailable_inside(&self, m: NodeId) -> bool {
        self.st.level[m.index()] == Some(Level::Nest) || self.kind[m.index()] == Kind::GemmAcc
    }

    /// Nodes `o` reads from outside the nests `xs` (through inline nodes), and
    /// members of `xs` it reads.
    fn deps(&self, o: NodeId, xs: &[usize], ext: &mut Vec<NodeId>, int: &mut Vec<NodeId>) {
        if self.st.nest_of[o.index()].is_some_and(|x| xs.contains(&x)) {
            int.push(o);
        } else if self.kind[o.index()] == Kind::Inline {
            for a in &self.model.node(o).args {
                self.deps(*a, xs, ext, int);
            }
        } else {
            ext.push(o);
        }
    }

    /// Every node that depends on the nests `xs`, counting a nest as one step (a node
    /// depending on one member of a nest makes the whole nest depend on it).
    fn reach(&self, xs: &[usize]) -> Vec<bool> {
        let len = self.model.nodes.len();
        let mut seen = vec![false; len];
        let mut queue: Vec<NodeId> = xs
            .iter()
            .filter_map(|x| self.st.nests[*x].as_ref())
            .flat_map(|n| n.members.iter().copied())
            .collect();
        for m in &queue {
            seen[m.index()] = true;
        }
        while let Some(v) = queue.pop() {
            for u in &self.users[v.index()] {
                if seen[u.index()] {
                    continue;
                }
                seen[u.index()] = true;
                queue.push(*u);
                if let Some(z) = self.st.nest_of[u.index()]
                    && let Some(nest) = &self.st.nests[z]
                {
                    for w in &nest.members {
                        if !seen[w.index()] {
                            seen[w.index()] = true;
                            queue.push(*w);
                        }
                    }
                }
            }
        }
        seen
    }

    /// Whether `n` may be computed in nest `x`: the values it reads there are
    /// available, and none of the values it reads from elsewhere depends on `x`.
    fn can_join(&self, n: NodeId, x: usize) -> Option<Placement> {
        let (mut ext, mut int) = (vec![], vec![]);
        for a in self.fargs(n) {
            self.deps(a, &[x], &mut ext, &mut int);
        }
        if int.iter().any(|m| self.unavailable_inside(*m)) {
            return None;
        }
        let reach = self.reach(&[x]);
        if ext.iter().any(|e| reach[e.index()]) {
            return None;
        }
        self.place(n, x)
    }

    /// Whether nests `x` and `y` can run as one: same iteration space, nothing
    /// outside them between them, and no member reading a value of the other that is
    /// only ready after it.
    fn can_merge(&self, x: usize, y: usize) -> bool {
        let (Some(nx), Some(ny)) = (&self.st.nests[x], &self.st.nests[y]) else {
            return false;
        };
        if nx.domain != ny.domain || nx.r != ny.r {
            return false;
        }
        let both = [x, y];
        let (mut ext, mut int) = (vec![], vec![]);
        for m in nx.members.iter().chain(&ny.members) {
            for a in self.fargs(*m) {
                self.deps(a, &both, &mut ext, &mut int);
            }
        }
        if int.iter().any(|m| self.unavailable_inside(*m)) {
            return false;
        }
        let reach = self.reach(&both);
        !ext.iter().any(|e| reach[e.index()])
    }

    fn merge(&mut self, x: usize, y: usize) {
        let Some(ny) = self.st.nests[y].take() else {
            return;
        };
        for m in &ny.members {
            self.st.nest_of[m.index()] = Some(x);
        }
        if let Some(nx) = &mut self.st.nests[x] {
            nx.members.extend(ny.members);
            nx.members.sort();
        }
    }

    fn add(&mut self, n: NodeId, x: usize, p: Placement) {
        self.st.nest_of[n.index()] = Some(x);
        self.st.axes[n.index()] = p.axes;
        self.st.input_axes[n.index()] = p.input_axes;
        self.st.level[n.index()] = Some(p.level);
        if let Some(nest) = &mut self.st.nests[x] {
            nest.members.push(n);
        }
    }

    /// The nests holding members that `n` reads (through inline nodes).
    fn candidates(&self, n: NodeId) -> Vec<usize> {
        fn walk(b: &Builder<'_>, o: NodeId, out: &mut Vec<usize>) {
            if let Some(x) = b.st.nest_of[o.index()] {
                if !out.contains(&x) {
                    out.push(x);
                }
            } else if b.kind[o.index()] == Kind::Inline {
                for a in &b.model.node(o).args {
                    walk(b, *a, out);
                }
            }
        }
        let mut out = vec![];
        for a in self.fargs(n) {
            walk(self, a, &mut out);
        }
        out
    }

    /// Groups members into nests, greedily in topological order.
    fn form_nests(&mut self) {
        for i in 0..self.model.nodes.len() {
            let n = NodeId(i as u32);
            let is_member = self.kind[i] == Kind::Member
                || (self.kind[i] == Kind::GemmAcc && self.alias_of_first(n).is_none());
            if !is_member {
                continue;
            }
            let cands = self.candidates(n);
            // All candidate nests merged, then each alone.
            if cands.len() > 1 {
                let saved = self.st.clone();
                let first = cands[0];
                let mut ok = true;
                for &c in &cands[1..] {
                    if self.can_merge(first, c) {
                        self.merge(first, c);
                    } else {
                        ok = false;
                        break;
                    }
                }
                if ok && let Some(p) = self.can_join(n, first) {
                    self.add(n, first, p);
                    continue;
                }
                self.st = saved;
            }
            let mut placed = false;
            for &c in &cands {
                if let Some(p) = self.can_join(n, c) {
                    self.add(n, c, p);
                    placed = true;
                    break;
                }
            }
            if placed {
                continue;
            }
            let (domain, r) = self.natural(n);
            self.st.nests.push(Some(NestBuild {
                domain,
                r,
                members: vec![],
            }));
            let x = self.st.nests.len() - 1;
            match self.place(n, x) {
                Some(p) => self.add(n, x, p),
                None => {
                    // Cannot happen for a natural nest; keep the node computable anyway
                    // as a nest of its own shape with identity axes.
                    let axes = self
                        .shape(n)
                        .iter()
                        .enumerate()
                        .map(|(k, d)| (!unit(*d)).then_some(k))
                        .collect();
                    self.add(
                        n,
                        x,
                        Placement {
                            axes,
                            level: Level::Pass,
                            input_axes: vec![],
                        },
                    );
                }
            }
        }
        self.merge_siblings();
    }

    /// A `GemmAcc` whose first term is itself a matmul written into its buffer has
    /// nothing to compute in a nest.
    fn alias_of_first(&self, n: NodeId) -> Option<NodeId> {
        let (p, _) = self.gemm_acc[n.index()]?;
        (self.alias_of[p.index()] == Some(n)).then_some(p)
    }

    /// Nests over the same domain that read the same array and do not depend on each
    /// other run as one (one read of the array instead of two).
    fn merge_siblings(&mut self) {
        loop {
            let live: Vec<usize> = (0..self.st.nests.len())
                .filter(|x| self.st.nests[*x].is_some())
                .collect();
            let mut merged = false;
            'outer: for (i, &x) in live.iter().enumerate() {
                for &y in &live[i + 1..] {
                    if self.share_input(x, y) && self.can_merge(x, y) {
                        self.merge(x, y);
                        merged = true;
                        break 'outer;
                    }
                }
            }
            if !merged {
                break;
            }
        }
    }

    fn share_input(&self, x: usize, y: usize) -> bool {
        let inputs = |z: usize| {
            let mut ext = vec![];
            let mut int = vec![];
            if let Some(nest) = &self.st.nests[z] {
                for m in &nest.members {
                    for a in self.fargs(*m) {
                        self.deps(a, &[z], &mut ext, &mut int);
                    }
                }
            }
            ext.retain(|e| !scalar_like(self.shape(*e)));
            ext
        };
        let ix = inputs(x);
        inputs(y).iter().any(|e| ix.contains(e))
    }

    // ---- storage, schedules and steps --------------------------------------------

    fn finish(self, entry: Entry) -> Plan {
        let model = self.model;
        let len = model.nodes.len();
        // Which members must be stored: read outside their nest (through inline
        // nodes), by a matmul, or a result.
        let mut store = vec![false; len];
        for r in &self.roots {
            store[r.index()] = true;
        }
        for i in 0..len {
            match self.kind[i] {
                Kind::Gemm => {
                    for a in &model.nodes[i].args {
                        store[gemm_base(model, *a).index()] = true;
                    }
                }
                Kind::Unneeded | Kind::Leaf | Kind::Inline => {}
                _ => {
                    let n = NodeId(i as u32);
                    let mut ext = vec![];
                    let mut int = vec![];
                    let home: Vec<usize> = self.st.nest_of[i].into_iter().collect();
                    for a in self.fargs(n) {
                        self.deps(a, &home, &mut ext, &mut int);
                    }
                    for e in ext {
                        store[e.index()] = true;
                    }
                }
            }
        }
        // Holds.
        let mut hold = vec![Hold::None; len];
        let mut grad_slot: Vec<Option<usize>> = vec![None; len];
        if entry == Entry::LossAndGrad {
            for (k, (_, g)) in model.grads.iter().enumerate() {
                if grad_slot[g.index()].is_none() {
                    grad_slot[g.index()] = Some(k);
                }
            }
        }
        for i in 0..len {
            let n = NodeId(i as u32);
            let sl = scalar_like(model.shape(n));
            let array = |store: bool| match (store, grad_slot[i]) {
                (true, Some(k)) => Hold::Grad(k),
                (true, None) => Hold::Buffer,
                (false, _) => Hold::Register,
            };
            hold[i] = match self.kind[i] {
                Kind::Unneeded => Hold::None,
                Kind::Leaf => Hold::Leaf,
                Kind::Inline => Hold::Inline,
                Kind::Scalar => Hold::Local,
                Kind::Gemm if self.alias_of[i].is_some() || self.absorbed[i] => Hold::None,
                Kind::Gemm | Kind::GemmAcc | Kind::Fill => array(true),
                Kind::Member => match (model.node(n).op.clone(), self.st.level[i]) {
                    (Op::ExtremumMask { axis: None, .. }, _) => Hold::ArgPos,
                    _ if sl => Hold::Local,
                    _ => array(store[i]),
                },
            };
        }
        // Nests with their schedules, in the order of their first member.
        let mut nest_ids: Vec<usize> = (0..self.st.nests.len())
            .filter(|x| self.st.nests[*x].is_some())
            .collect();
        nest_ids.sort_by_key(|x| {
            self.st.nests[*x]
                .as_ref()
                .and_then(|n| n.members.first().copied())
        });
        let mut built: Vec<(usize, Nest)> = vec![];
        for x in nest_ids {
            if let Some(nb) = &self.st.nests[x] {
                built.push((x, self.schedule(nb, &hold)));
            }
        }
        // Steps, then a topological order of them.
        let mut steps: Vec<Step> = vec![];
        let mut step_of: Vec<Option<usize>> = vec![None; len];
        for (_, nest) in built {
            let s = steps.len();
            for m in &nest.members {
                step_of[m.node.index()] = Some(s);
            }
            steps.push(Step::Nest(nest));
        }
        for (i, kind) in self.kind.iter().enumerate() {
            let n = NodeId(i as u32);
            match kind {
                Kind::Scalar => {
                    step_of[i] = Some(steps.len());
                    steps.push(Step::Scalar(n));
                }
                Kind::Fill => {
                    step_of[i] = Some(steps.len());
                    steps.push(Step::Fill(n));
                }
                Kind::Gemm if self.absorbed[i] => {}
                Kind::Gemm => {
                    let dest = self.alias_of[i].unwrap_or(n);
                    step_of[i] = Some(steps.len());
                    steps.push(Step::Gemm {
                        matmul: n,
                        dest,
                        accumulate: false,
                    });
                }
                Kind::GemmAcc => {
                    if let Some((_, m)) = self.gemm_acc[i] {
                        // Its nest (if any) writes the first term; the value is final
                        // after the matmul accumulates.
                        step_of[i] = Some(steps.len());
                        steps.push(Step::Gemm {
                            matmul: m,
                            dest: n,
                            accumulate: true,
                        });
                    }
                }
                _ => {}
            }
        }
        let order = self.order_steps(&steps, &step_of);
        let mut remap = vec![0; steps.len()];
        for (new, old) in order.iter().enumerate() {
            remap[*old] = new;
        }
        let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
        let steps: Vec<Step> = order.iter().filter_map(|o| slots[*o].take()).collect();
        let step_of = step_of.into_iter().map(|s| s.map(|s| remap[s])).collect();
        Plan {
            entry,
            kind: self.kind,
            hold,
            step_of,
            steps,
            gemm_acc: self.gemm_acc,
        }
    }

    /// The steps in an order that respects every dependency, keeping the IR's order
    /// where there is a choice.
    fn order_steps(&self, steps: &[Step], step_of: &[Option<usize>]) -> Vec<usize> {
        let model = self.model;
        let mut deps: Vec<Vec<usize>> = vec![vec![]; steps.len()];
        let mut first: Vec<usize> = vec![usize::MAX; steps.len()];
        // Reading `o` from step `s`: `s` depends on the step that finishes `o`.
        fn reads(b: &Builder<'_>, o: NodeId, step_of: &[Option<usize>], out: &mut Vec<usize>) {
            if b.kind[o.index()] == Kind::Inline {
                for a in &b.model.node(o).args {
                    reads(b, *a, step_of, out);
                }
            } else if let Some(s) = step_of[o.index()] {
                out.push(s);
            } else if let Some(r) = b.alias_of[o.index()] {
                // An aliased matmul is finished by its GemmAcc's last step.
                if let Some(s) = step_of[r.index()] {
                    out.push(s);
                }
            }
        }
        for (s, step) in steps.iter().enumerate() {
            let mut out = vec![];
            match step {
                Step::Scalar(n) | Step::Fill(n) => {
                    first[s] = n.index();
                    for a in &model.node(*n).args {
                        reads(self, *a, step_of, &mut out);
                    }
                }
                Step::Gemm {
                    matmul,
                    dest,
                    accumulate,
                    ..
                } => {
                    first[s] = if *accumulate {
                        dest.index()
                    } else {
                        matmul.index()
                    };
                    for a in &model.node(*matmul).args {
                        reads(self, gemm_base(model, *a), step_of, &mut out);
                    }
                    if *accumulate && let Some((p, _)) = self.gemm_acc[dest.index()] {
                        // The first term: its nest, or its matmul.
                        if self.alias_of[p.index()] == Some(*dest) {
                            let gs = steps.iter().position(
                                |t| matches!(t, Step::Gemm { matmul, accumulate: false, .. } if *matmul == p),
                            );
                            out.extend(gs);
                        } else {
                            // The nest writing the first term.
                            out.extend(steps.iter().position(|t| match t {
                                Step::Nest(nest) => nest.member(*dest).is_some(),
                                _ => false,
                            }));
                        }
                    }
                }
                Step::Nest(nest) => {
                    first[s] = nest.members.first().map_or(0, |m| m.node.index());
                    for m in &nest.members {
                        for a in self.fargs(m.node) {
                            reads(self, a, step_of, &mut out);
                        }
                    }
                }
            }
            out.retain(|d| *d != s);
            out.sort_unstable();
            out.dedup();
            deps[s] = out;
        }
        // Kahn's algorithm, smallest first node first.
        let mut done = vec![false; steps.len()];
        let mut order = vec![];
        while order.len() < steps.len() {
            let next = (0..steps.len())
                .filter(|s| !done[*s] && deps[*s].iter().all(|d| done[*d]))
                .min_by_key(|s| first[*s]);
            match next {
                Some(s) => {
                    done[s] = true;
                    order.push(s);
                }
                // A cycle would be a planner bug; emit the rest in IR order.
                None => {
                    let mut rest: Vec<usize> = (0..steps.len()).filter(|s| !done[*s]).collect();
                    rest.sort_by_key(|s| first[*s]);
                    for s in rest {
                        done[s] = true;
                        order.push(s);
                    }
                }
            }
        }
        order
    }

    /// Levels, passes and helpers of one nest.
    fn schedule(&self, nb: &NestBuild, hold: &[Hold]) -> Nest {
        let model = self.model;
        let r = nb.r;
        let mut members: Vec<Member> = vec![];
        let mut helpers: Vec<Helper> = vec![];
        // Pass of pass-level members, readiness of row-level ones.
        let mut pass_of: std::collections::HashMap<NodeId, usize> = Default::default();
        let mut ready: std::collections::HashMap<NodeId, usize> = Default::default();
        let in_nest =
            |o: NodeId| self.st.nest_of[o.index()] == self.st.nest_of[nb.members[0].index()];
        // The earliest pass in which a value can be evaluated (through inline nodes).
        fn earliest(
            b: &Builder<'_>,
            o: NodeId,
            in_nest: &dyn Fn(NodeId) -> bool,
            pass_of: &std::collections::HashMap<NodeId, usize>,
            ready: &std::collections::HashMap<NodeId, usize>,
        ) -> usize {
            if in_nest(o) {
                if let Some(p) = pass_of.get(&o) {
                    return *p;
                }
                if let Some(k) = ready.get(&o) {
                    return k + 1;
                }
                return 1;
            }
            if b.kind[o.index()] == Kind::Inline {
                return b
                    .model
                    .node(o)
                    .args
                    .iter()
                    .map(|a| earliest(b, *a, in_nest, pass_of, ready))
                    .max()
                    .unwrap_or(1);
            }
            1
        }
        for &n in &nb.members {
            let level = self.st.level[n.index()].unwrap_or(Level::Pass);
            let axes = self.st.axes[n.index()].clone();
            let node = model.node(n);
            let e = |o: NodeId,
                     p: &std::collections::HashMap<NodeId, usize>,
                     q: &std::collections::HashMap<NodeId, usize>| {
                earliest(self, o, &in_nest, p, q)
            };
            let args_e = self
                .fargs(n)
                .iter()
                .map(|a| e(*a, &pass_of, &ready))
                .max()
                .unwrap_or(1);
            let slot = match (level, &node.op) {
                (Level::Pass, Op::Softmax { .. } | Op::LogSoftmax { .. })
                    if self.kind[n.index()] == Kind::Member =>
                {
                    let x = node.args[0];
                    helpers.push(Helper {
                        owner: n,
                        kind: HelperKind::Max,
                        of: x,
                        pass: args_e,
                    });
                    helpers.push(Helper {
                        owner: n,
                        kind: HelperKind::SumExp,
                        of: x,
                        pass: args_e + 1,
                    });
                    pass_of.insert(n, args_e + 2);
                    Slot::Pass(args_e + 2)
                }
                (Level::Pass, Op::ExtremumMask { op, .. })
                    if self.kind[n.index()] == Kind::Member =>
                {
                    let kind = if *op == ReduceOp::Min {
                        HelperKind::ArgMin
                    } else {
                        HelperKind::ArgMax
                    };
                    helpers.push(Helper {
                        owner: n,
                        kind,
                        of: node.args[0],
                        pass: args_e,
                    });
                    pass_of.insert(n, args_e + 1);
                    Slot::Pass(args_e + 1)
                }
                (Level::Pass, _) => {
                    pass_of.insert(n, args_e);
                    Slot::Pass(args_e)
                }
                (Level::Row, Op::Reduce { op, .. }) => {
                    let x = node.args[0];
                    let k = match op {
                        ReduceOp::Sum => HelperKind::Sum,
                        ReduceOp::Max => HelperKind::Max,
                        ReduceOp::Min => HelperKind::Min,
                        ReduceOp::LogSumExp => HelperKind::Max,
                    };
                    helpers.push(Helper {
                        owner: n,
                        kind: k,
                        of: x,
                        pass: args_e,
                    });
                    let done = if *op == ReduceOp::LogSumExp {
                        helpers.push(Helper {
                            owner: n,
                            kind: HelperKind::SumExp,
                            of: x,
                            pass: args_e + 1,
                        });
                        args_e + 1
                    } else {
                        args_e
                    };
                    ready.insert(n, done);
                    Slot::Row(done)
                }
                (Level::Row, Op::ArgMax { .. }) => {
                    helpers.push(Helper {
                        owner: n,
                        kind: HelperKind::ArgMax,
                        of: node.args[0],
                        pass: args_e,
                    });
                    ready.insert(n, args_e);
                    Slot::Row(args_e)
                }
                (Level::Row, Op::MatMul) => {
                    // A dot product: the sum of the products, in one pass.
                    helpers.push(Helper {
                        owner: n,
                        kind: HelperKind::Sum,
                        of: n,
                        pass: args_e,
                    });
                    ready.insert(n, args_e);
                    Slot::Row(args_e)
                }
                (Level::Row, _) => {
                    // Evaluated once per row, after what it reads is ready.
                    let k = args_e - 1;
                    ready.insert(n, k);
                    Slot::Row(k)
                }
                (Level::Nest, _) => {
                    // Accumulated where its input is evaluated: in a pass when the input
                    // varies along r, else once per row.
                    if self.input_varies_along_r(n, r) {
                        Slot::Pass(args_e)
                    } else {
                        Slot::Row(args_e - 1)
                    }
                }
            };
            let store = matches!(hold[n.index()], Hold::Buffer | Hold::Grad(_));
            let input_axes = self.st.input_axes[n.index()].clone();
            members.push(Member {
                node: n,
                axes,
                level,
                store,
                slot,
                input_axes,
            });
        }
        let passes = members
            .iter()
            .map(|m| match m.slot {
                Slot::Pass(k) | Slot::Row(k) => k,
            })
            .chain(helpers.iter().map(|h| h.pass))
            .max()
            .unwrap_or(0);
        Nest {
            domain: nb.domain.clone(),
            r,
            members,
            helpers,
            passes,
        }
    }

    /// Whether the input of a nest-level reduction varies along the inner axis.
    fn input_varies_along_r(&self, n: NodeId, r: usize) -> bool {
        let Some(x) = self.st.nest_of[n.index()] else {
            return true;
        };
        let input = self.fargs(n)[0];
        let Some(nest) = &self.st.nests[x] else {
            return true;
        };
        match self.complete(self.map_of(input, x), self.shape(input), &nest.domain) {
            Some(map) => map.contains(&Some(r)),
            None => true,
        }
    }
}

/// The plan as text: one line per step, nests with their members, for
/// `--emit plan` and for reading what the fuser decided.
pub fn describe(model: &Model, plan: &Plan) -> String {
    use std::fmt::Write;
    let name = |n: NodeId| {
        let node = model.node(n);
        match (&node.op, &node.name) {
            (Op::Param(p), _) => model.params[p.0 as usize].name.clone(),
            (Op::Input(i), _) => model.inputs[i.0 as usize].name.clone(),
            (_, Some(s)) => s.clone(),
            _ => format!("%{}", n.0),
        }
    };
    let mut out = String::new();
    let _ = writeln!(out, "{:?} {}:", plan.entry, model.name);
    for step in &plan.steps {
        match step {
            Step::Scalar(n) => {
                let _ = writeln!(out, "  scalar {} = {}", name(*n), model.node(*n).op);
            }
            Step::Fill(n) => {
                let _ = writeln!(out, "  fill {} ({:?})", name(*n), plan.hold[n.index()]);
            }
            Step::Gemm {
                matmul,
                dest,
                accumulate,
            } => {
                let args = &model.node(*matmul).args;
                let op = if *accumulate { "+=" } else { "=" };
                let _ = writeln!(
                    out,
                    "  gemm {} {op} {} @ {} ({:?})",
                    name(*dest),
                    name(args[0]),
                    name(args[1]),
                    plan.hold[dest.index()]
                );
            }
            Step::Nest(nest) => {
                let _ = writeln!(
                    out,
                    "  nest {} r={} passes={}",
                    model.shape_str(&nest.domain),
                    nest.r,
                    nest.passes
                );
                for h in &nest.helpers {
                    let _ = writeln!(
                        out,
                        "    helper {:?} of {} for {} in pass {}",
                        h.kind,
                        name(h.of),
                        name(h.owner),
                        h.pass
                    );
                }
                for m in &nest.members {
                    let _ = writeln!(
                        out,
                        "    {:<10} {:<24} axes={:?} {:?} {:?}{}",
                        name(m.node),
                        model.node(m.node).op.to_string(),
                        m.axes,
                        m.level,
                        m.slot,
                        if m.store {
                            format!(" -> {:?}", plan.hold[m.node.index()])
                        } else {
                            String::new()
                        }
                    );
                }
            }
        }
    }
    out
}

/// The element kind of a node's buffer.
pub fn is_index(model: &Model, n: NodeId) -> bool {
    model.ty(n).elem == Elem::Index
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(src: &str) -> Model {
        let models = nnc_ir::compile_source(src).unwrap_or_else(|d| panic!("{d:?}"));
        nnc_autodiff::with_gradients(&models[0]).unwrap_or_else(|e| panic!("{e}"))
    }

    fn nests(p: &Plan) -> Vec<&Nest> {
        p.steps
            .iter()
            .filter_map(|s| match s {
                Step::Nest(n) => Some(n),
                _ => None,
            })
            .collect()
    }

    /// The plan of `loss_and_grad` for a one-model source.
    fn train(src: &str) -> (Model, Plan) {
        let m = model(src);
        let p = plan(&m, Entry::LossAndGrad);
        (m, p)
    }

    fn named(m: &Model, name: &str) -> NodeId {
        let i = m.nodes.iter().position(|n| n.name.as_deref() == Some(name));
        NodeId(i.unwrap_or_else(|| panic!("no node {name}")) as u32)
    }

    const TWO_LAYER: &str =
        "model m { dtype f64; dim N, D = 5, H = 4, C = 3; input x: [N, D]; input y: [N, C];
         param w1: [D, H] = zeros; param w2: [H, C] = zeros;
         let h = sigmoid(x @ w1); let y_pred = h @ w2; loss sum((y_pred - y) ^ 2); }";

    const RELU: &str = "model m { dtype f64; dim N, D = 2, H = 5; input x: [N, D]; input y: [N, H];
         param w: [D, H] = zeros; param b: [H] = zeros;
         let hidden = relu(x @ w + b); loss sum(hidden * y) + 0.5 * l2(w); }";

    #[test]
    fn only_matmul_operands_and_results_are_stored() {
        let (m, p) = train(TWO_LAYER);
        let stored: Vec<&str> = (0..m.nodes.len())
            .filter(|i| matches!(p.hold[*i], Hold::Buffer | Hold::Grad(_)))
            .filter_map(|i| m.nodes[i].name.as_deref())
            .collect();
        assert_eq!(
            stored,
            [
                "t4", "h", "y_pred", "d_y_pred", "d_h", "d_w2", "d_t4", "d_w1"
            ]
        );
    }

    #[test]
    fn cheap_backward_factors_are_recomputed_not_stored() {
        // h * (1 - h) is recomputed from h in the backward nest.
        let (m, p) = train(TWO_LAYER);
        let d_t4 = named(&m, "d_t4");
        let factor = m.node(d_t4).args[1];
        assert_eq!(p.kind[factor.index()], Kind::Inline);
        // The ReLU mask `0 < x @ w + b` is recomputed from the matmul's buffer.
        let (m, p) = train(RELU);
        let stored = (0..m.nodes.len())
            .filter(|i| p.hold[*i] == Hold::Buffer)
            .count();
        assert_eq!(stored, 2, "x @ w and d_hidden only: {}", describe(&m, &p));
    }

    #[test]
    fn a_bias_gradient_is_a_column_sum_in_the_loop_computing_its_operand() {
        let (m, p) = train(RELU);
        let (d_b, _) = m.grads[1];
        assert_eq!(m.grad_name(d_b), "b");
        let d_b = m.grads[1].1;
        let home = p.step_of[d_b.index()];
        let operand = m.node(d_b).args[0];
        assert_eq!(home, p.step_of[operand.index()]);
        assert_eq!(p.member(d_b).map(|(_, mm)| mm.level), Some(Level::Nest));
    }

    #[test]
    fn two_gradient_contributions_accumulate_into_one_buffer() {
        // d_w = 0.5 * 2 w + x.T @ d_t: the matmul adds into d_w, written in a loop first.
        let (m, p) = train(RELU);
        let d_w = m.grads[0].1;
        assert_eq!(p.kind[d_w.index()], Kind::GemmAcc);
        let acc = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Gemm { dest, accumulate: true, .. } if *dest == d_w));
        assert_eq!(acc.count(), 1);
        assert_eq!(p.hold[d_w.index()], Hold::Grad(0));
    }

    #[test]
    fn transposes_and_broadcasts_are_never_materialised() {
        let (m, p) = train(TWO_LAYER);
        for (i, n) in m.nodes.iter().enumerate() {
            if matches!(n.op, Op::Transpose | Op::Broadcast | Op::Reshape) {
                assert_eq!(p.hold[i], Hold::Inline, "%{i} {}", n.op);
            }
        }
    }

    #[test]
    fn a_reduction_along_the_first_axis_makes_it_the_inner_loop() {
        let (_, p) = train(
            "model m { dtype f64; dim N, C = 3; input x: [N, C]; param w: [C, C] = zeros;
             loss sum(log_softmax(x @ w, axis = 0)); }",
        );
        let rs: Vec<usize> = nests(&p).iter().map(|n| n.r).collect();
        assert!(rs.contains(&0), "{rs:?}");
    }

    #[test]
    fn steps_come_after_what_they_read() {
        for src in [TWO_LAYER, RELU] {
            let (m, p) = train(src);
            let mut done = vec![false; m.nodes.len()];
            for (s, step) in p.steps.iter().enumerate() {
                let reads: Vec<NodeId> = match step {
                    Step::Gemm { matmul, .. } => m
                        .node(*matmul)
                        .args
                        .iter()
                        .map(|a| gemm_base(&m, *a))
                        .collect(),
                    Step::Scalar(n) | Step::Fill(n) => m.node(*n).args.clone(),
                    Step::Nest(nest) => nest
                        .members
                        .iter()
                        .flat_map(|mm| m.node(mm.node).args.clone())
                        .collect(),
                };
                for r in reads {
                    if let Some(t) = p.step_of[r.index()] {
                        assert!(
                            t <= s || done[r.index()],
                            "step {s} reads %{} from step {t}",
                            r.0
                        );
                    }
                }
                for (i, st) in p.step_of.iter().enumerate() {
                    if *st == Some(s) {
                        done[i] = true;
                    }
                }
            }
        }
    }

    #[test]
    fn softmax_cross_entropy_and_its_gradient_are_one_nest() {
        let m = model(
            "model m { dtype f64; dim N, D = 2, C = 3; input x: [N, D]; input labels: index[N];
             param w: [D, C] = zeros; param b: [C] = zeros;
             loss softmax_cross_entropy(x @ w + b, labels); }",
        );
        let p = plan(&m, Entry::LossAndGrad);
        let ns = nests(&p);
        assert_eq!(ns.len(), 1, "{:#?}", p.steps);
        assert_eq!(ns[0].passes, 3);
        let gemms = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Gemm { .. }))
            .count();
        assert_eq!(gemms, 2, "x @ w and x.T @ d_scores");
    }

    #[test]
    fn an_elementwise_chain_is_one_loop_and_its_intermediates_stay_in_registers() {
        let m = model(
            "model m { dtype f64; dim N, D = 4; input x: [N, D]; input y: [N, D]; param w: [D, D] = zeros;
             loss sum((x @ w - y) ^ 2); }",
        );
        let p = plan(&m, Entry::Loss);
        assert_eq!(nests(&p).len(), 1);
        let registers = p.hold.iter().filter(|h| **h == Hold::Register).count();
        assert_eq!(registers, 2, "x @ w - y and its square: {:?}", p.hold);
    }
}
