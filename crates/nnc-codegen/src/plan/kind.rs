//! **How is each node computed?** Takes the model, the function's entry and the
//! nodes a first grouping found worth recomputing; gives [`Kinds`]: each needed
//! node's [`Kind`], the sums that a matmul accumulates into (`Kind::GemmAcc`), and
//! the users of every node, which the later questions walk.
//!
//! The kind follows from the op and the shapes (`classify`), with two corrections:
//! values that must exist as arrays (matmul operands, results) are never inline
//! (`force_materialised`), and cheap values that one nest would store only for
//! another to read are inline, recomputed where they are read (`rematerialised`).

use super::{Entry, Kind, gemm_base, hold, roots, scalar_like, unit};
use nnc_ir::{BinaryOp, Model, NodeId, Op, Shape, UnaryOp};

/// How each node of one function is computed.
pub(super) struct Kinds<'m> {
    pub(super) model: &'m Model,
    pub(super) kind: Vec<Kind>,
    /// The needed nodes reading each node, each once.
    pub(super) users: Vec<Vec<NodeId>>,
    /// The values the function produces.
    pub(super) roots: Vec<NodeId>,
    /// For `GemmAcc` nodes: the first term (written first) and the matmul accumulated.
    pub(super) gemm_acc: Vec<Option<(NodeId, NodeId)>>,
    /// A matmul whose result is written straight into a `GemmAcc` buffer, or into
    /// rows of an `Assembled` one.
    pub(super) alias_of: Vec<Option<NodeId>>,
    /// A matmul accumulated into a `GemmAcc` buffer: never stored on its own.
    pub(super) absorbed: Vec<bool>,
    /// For `Assembled` nodes: their pieces, by row.
    pub(super) assembly: Vec<Option<Vec<super::Piece>>>,
}

/// The nodes `n` reads, through inline nodes, split by a predicate: see
/// [`Kinds::reads`].
#[derive(Default)]
pub(super) struct Reads {
    /// Nodes reached for which the predicate is false.
    pub(super) outside: Vec<NodeId>,
    /// Nodes reached for which it is true.
    pub(super) inside: Vec<NodeId>,
}

impl<'m> Kinds<'m> {
    /// The kinds of the nodes `entry` needs; `remat` are recomputed (inline).
    pub(super) fn new(model: &'m Model, entry: Entry, remat: &[NodeId]) -> Kinds<'m> {
        let len = model.nodes.len();
        let roots = roots(model, entry);
        let needed = needed(model, &roots);
        let mut kinds = Kinds {
            model,
            kind: vec![Kind::Unneeded; len],
            users: users(model, &needed),
            roots,
            gemm_acc: vec![None; len],
            alias_of: vec![None; len],
            absorbed: vec![false; len],
            assembly: vec![None; len],
        };
        let mut recomputed = vec![false; len];
        for n in remat {
            recomputed[n.index()] = true;
        }
        for (i, _) in needed.iter().enumerate().filter(|(_, n)| **n) {
            let n = NodeId(i as u32);
            kinds.kind[i] = if recomputed[i] {
                Kind::Inline
            } else {
                kinds.classify(n)
            };
        }
        kinds.assemble();
        kinds.force_materialised();
        kinds
    }

    pub(super) fn shape(&self, n: NodeId) -> &'m Shape {
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
            Op::Transpose if self.rows_read_by_loops(n) => Kind::Member,
            Op::Const(_)
            | Op::DimSize(_)
            | Op::Broadcast
            | Op::Reshape
            | Op::Transpose
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::OneHot { .. } => Kind::Inline,
            _ if trivial_axis_op(self.model, n) => Kind::Inline,
            Op::Unary(_) | Op::Powf(_) | Op::Compare(_) | Op::Select if sl => Kind::Scalar,
            Op::Binary(_) if sl => Kind::Scalar,
            Op::Binary(BinaryOp::Add) => match self.gemm_accumulation(n) {
                Some(pm) => self.accumulate_into(n, pm),
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

    /// A transposed matrix of fixed size whose rows loops read (a thin product's
    /// `w.T[p:p+1]`, see `crate::thin`) is copied once, transposed, so that those
    /// loops read it along its rows: read in place they would walk `w` down a column
    /// (a stride per element), which does not vectorise (W2's `d_scores @ w2.T` ran
    /// 3x slower as such a loop than as a GEMM call).
    fn rows_read_by_loops(&self, n: NodeId) -> bool {
        let read_by_rows = self.users[n.index()]
            .iter()
            .any(|u| matches!(self.model.node(*u).op, Op::Slice { axis: 0, .. }));
        read_by_rows && crate::thin::worth_a_transposed_copy(self.shape(n))
    }

    /// `n = p + m` becomes a `GemmAcc`: `m` accumulates into `n`'s buffer, and `p`,
    /// if it is a matmul used only here, writes straight into it.
    fn accumulate_into(&mut self, n: NodeId, (p, m): (NodeId, NodeId)) -> Kind {
        self.gemm_acc[n.index()] = Some((p, m));
        self.absorbed[m.index()] = true;
        if self.kind[p.index()] == Kind::Gemm && self.single_use(p) {
            self.alias_of[p.index()] = Some(n);
        }
        Kind::GemmAcc
    }

    /// A matmul used only here (and not a result).
    pub(super) fn single_use(&self, n: NodeId) -> bool {
        self.users[n.index()].len() == 1 && !self.is_root(n)
    }

    /// `P + M` with `M` a matmul of the same shape used only here, and `P` computed
    /// in a loop (or another such matmul): `(P, M)`.
    fn gemm_accumulation(&self, n: NodeId) -> Option<(NodeId, NodeId)> {
        let node = self.model.node(n);
        let (x, y) = (node.args[0], node.args[1]);
        // `v + v` of a matmul `v`: the product is read twice, so it cannot become
        // the sum's accumulation (there would be nothing to add it to).
        if x == y {
            return None;
        }
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
        let mut force = self.gemm_operands();
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

    /// The arrays the matmuls read (through their transposed and reshaped views).
    pub(super) fn gemm_operands(&self) -> Vec<NodeId> {
        let model = self.model;
        (0..model.nodes.len())
            .filter(|i| self.kind[*i] == Kind::Gemm)
            .flat_map(|i| model.nodes[i].args.iter().map(|a| gemm_base(model, *a)))
            .collect()
    }

    /// The operands a member reads for its nest: a `GemmAcc` reads only its first
    /// term there.
    pub(super) fn fargs(&self, n: NodeId) -> Vec<NodeId> {
        match self.gemm_acc[n.index()] {
            Some((p, _)) => vec![p],
            None => self.model.node(n).args.clone(),
        }
    }

    /// What `n` reads for its nest ([`Kinds::fargs`]), through inline nodes: every
    /// other node reached, split by `inside`.
    pub(super) fn reads(&self, n: NodeId, inside: &dyn Fn(NodeId) -> bool) -> Reads {
        self.reads_of(self.fargs(n), inside)
    }

    /// The nodes reading `values` reads, through inline nodes, split by `inside`.
    pub(super) fn reads_of(
        &self,
        values: impl IntoIterator<Item = NodeId>,
        inside: &dyn Fn(NodeId) -> bool,
    ) -> Reads {
        let mut out = Reads::default();
        for v in values {
            self.reach_through_inline(v, inside, &mut out);
        }
        out
    }

    fn reach_through_inline(&self, o: NodeId, inside: &dyn Fn(NodeId) -> bool, out: &mut Reads) {
        if inside(o) {
            out.inside.push(o);
        } else if self.kind[o.index()] == Kind::Inline {
            for a in &self.model.node(o).args {
                self.reach_through_inline(*a, inside, out);
            }
        } else {
            out.outside.push(o);
        }
    }

    /// The non-inline nodes `n` reads for its nest, through inline nodes.
    pub(super) fn operands(&self, n: NodeId) -> Vec<NodeId> {
        self.reads(n, &|_| false).outside
    }

    /// Whether `n` is computed in a nest: a member, or a `GemmAcc` whose first term
    /// is written by a loop (not by a matmul straight into its buffer).
    pub(super) fn in_a_nest(&self, n: NodeId) -> bool {
        match self.kind[n.index()] {
            Kind::Member => true,
            Kind::GemmAcc => self.alias_of_first(n).is_none(),
            _ => false,
        }
    }

    /// A `GemmAcc` whose first term is itself a matmul written into its buffer has
    /// nothing to compute in a nest.
    fn alias_of_first(&self, n: NodeId) -> Option<NodeId> {
        let (p, _) = self.gemm_acc[n.index()]?;
        (self.alias_of[p.index()] == Some(n)).then_some(p)
    }

    /// **Rematerialisation.** A cheap member (`+ - * max min`, comparisons, selects,
    /// squares) that another nest reads is recomputed there instead of stored, when
    /// everything it is computed from is available there anyway: stored for other
    /// reasons, a parameter or input, a matmul result, or itself recomputable (up to
    /// four ops). So the backward pass of `sigmoid` reads `h` and recomputes
    /// `h * (1 - h)`, and a ReLU's backward recomputes its mask `0 < x @ w + b` from
    /// the matmul's buffer: the forward stores nothing extra.
    ///
    /// `nest_of` is a first grouping's: which nest computes each member.
    pub(super) fn rematerialised(&self, nest_of: &[Option<usize>]) -> Vec<NodeId> {
        let must = hold::must_store(self);
        let cost = self.recompute_costs(&must);
        let mut out = vec![];
        for (i, home) in nest_of.iter().enumerate() {
            if cost[i].is_none() {
                continue;
            }
            let read_elsewhere = self.users[i]
                .iter()
                .any(|u| nest_of[u.index()] != *home || home.is_none());
            if read_elsewhere {
                self.with_operands(NodeId(i as u32), &cost, &must, &mut out);
            }
        }
        out.sort();
        out.dedup();
        out
    }

    /// For each member that could be recomputed: the ops a recomputation costs (at
    /// most four), counting recomputable operands and not stored ones.
    fn recompute_costs(&self, must: &[bool]) -> Vec<Option<usize>> {
        let len = self.model.nodes.len();
        let mut cost: Vec<Option<usize>> = vec![None; len];
        for i in 0..len {
            let n = NodeId(i as u32);
            if self.kind[i] != Kind::Member
                || must[i]
                || !cheap(&self.model.node(n).op)
                || self.reads_shifted(n)
            {
                continue;
            }
            let mut total = Some(1);
            for e in self.operands(n) {
                let c = match self.kind[e.index()] {
                    Kind::Member if must[e.index()] => Some(0),
                    Kind::Member => cost[e.index()],
                    _ => Some(0),
                };
                total = total.zip(c).map(|(t, c)| t + c);
            }
            cost[i] = total.filter(|c| *c <= 4);
        }
        cost
    }

    /// Whether `n` reads an operand through a slice or pad (another position than
    /// its own): recomputed in another nest, that read could land on an array the
    /// nest is writing row by row (a thin product's `v0[1:2]` in the nest that
    /// computes `v0`), so such a value is stored, never recomputed.
    fn reads_shifted(&self, n: NodeId) -> bool {
        !self.shifted_reads(n).is_empty()
    }

    /// The non-inline nodes `n` reads through a slice or pad (and other inline
    /// nodes): the values it reads at other positions than its own.
    pub(super) fn shifted_reads(&self, n: NodeId) -> Vec<NodeId> {
        let mut out = vec![];
        for a in &self.model.node(n).args {
            self.reach_shifted(*a, false, &mut out);
        }
        out
    }

    fn reach_shifted(&self, o: NodeId, shifted: bool, out: &mut Vec<NodeId>) {
        if self.kind[o.index()] != Kind::Inline {
            if shifted {
                out.push(o);
            }
            return;
        }
        let node = self.model.node(o);
        let shifted = shifted || matches!(node.op, Op::Slice { .. } | Op::Pad { .. });
        for a in &node.args {
            self.reach_shifted(*a, shifted, out);
        }
    }

    /// `n` and the recomputable members it is computed from.
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
        for e in self.operands(n) {
            if self.kind[e.index()] == Kind::Member && !must[e.index()] && cost[e.index()].is_some()
            {
                self.with_operands(e, cost, must, out);
            }
        }
    }
}

/// The nodes the roots are computed from (the roots included).
fn needed(model: &Model, roots: &[NodeId]) -> Vec<bool> {
    let mut needed = vec![false; model.nodes.len()];
    for r in roots {
        needed[r.index()] = true;
    }
    for i in (0..model.nodes.len()).rev() {
        if needed[i] && !constant_of_shape(model, NodeId(i as u32)) {
            for a in &model.nodes[i].args {
                needed[a.index()] = true;
            }
        }
    }
    needed
}

/// A softmax (1) or log-softmax (0) along a size-1 axis: a constant, which reads
/// nothing of its operand (so the operand is not computed for it).
fn constant_of_shape(model: &Model, n: NodeId) -> bool {
    matches!(model.node(n).op, Op::Softmax { .. } | Op::LogSoftmax { .. })
        && trivial_axis_op(model, n)
}

/// The needed users of each node, each once, in topological order.
fn users(model: &Model, needed: &[bool]) -> Vec<Vec<NodeId>> {
    let mut users = vec![Vec::new(); model.nodes.len()];
    for (i, _) in needed.iter().enumerate().filter(|(_, n)| **n) {
        let user = NodeId(i as u32);
        for a in &model.nodes[i].args {
            // Users come in increasing order: a repeat is the last one pushed (an
            // input read by 10 000 nodes is not searched 10 000 times).
            if users[a.index()].last() != Some(&user) {
                users[a.index()].push(user);
            }
        }
    }
    users
}

/// Ops cheap enough to compute twice rather than store once.
fn cheap(op: &Op) -> bool {
    match op {
        Op::Unary(u) => matches!(u, UnaryOp::Neg | UnaryOp::Abs),
        Op::Powf(c) => *c == 2.0,
        Op::Binary(b) => !matches!(b, BinaryOp::Div),
        Op::Compare(_) | Op::Select => true,
        _ => false,
    }
}

/// A reduction over a size-1 axis (or a row operation along one) needs no loop.
pub fn trivial_axis_op(model: &Model, n: NodeId) -> bool {
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

#[cfg(test)]
mod tests {
    use super::super::fixtures::{RELU, TWO_LAYER, named, train};
    use super::super::{Hold, Kind, Step, describe};
    use nnc_ir::Op;

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
}
