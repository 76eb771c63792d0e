//! **Thin products as loops.** Takes a differentiated model; gives the same model
//! with every matrix product that has a side of at most [`THIN`] (fixed) written as
//! elementwise products and sums, which the planner fuses into the loops around
//! them. The rest of the pipeline (planning, emission) sees an ordinary model.
//!
//! Why: a product such as the spiral's `x @ w1` (`[300, 2] @ [2, 100]`) is 60 000
//! multiply-adds that a GEMM call runs at a fraction of the core's peak (23-35% on
//! W2's five products, half of its step), after which the loop that adds the bias
//! and applies the ReLU reads the result again. Written as `x[:, 0:1] * w1[0:1] +
//! x[:, 1:2] * w1[1:2]`, it is two multiply-adds per element of that loop. With
//! `[M, K] @ [K, N]`:
//!
//! - `K <= THIN`: the sum over `p` of `a[:, p:p+1] * b[p:p+1, :]` (outer products);
//! - else `N <= THIN`: column `c` is `sum(a * b[:, c:c+1].T, axis = 1)`, a row
//!   reduction in the pass that computes or reads `a`;
//! - else `M <= THIN`: row `r` is `sum(a[r:r+1, :].T * b, axis = 0)`, a column sum;
//!
//! each only when the loop it makes reads the wide operand along its rows (see
//! `thin_side`): W2's `x @ w1`, `h.T @ d_scores`, `x.T @ d_z` and `d_scores @ w2.T`,
//! not `h @ w2`, which would read `w2: [100, 3]` down its columns. (`d_scores @ w2.T`
//! reads the rows of `w2.T`: the planner stores that transpose, 300 numbers copied
//! once per step, so the loop reads them in order; see `plan::kind`.)
//!
//! The columns (rows) are put in place with `Pad` and added, as `concat` does. The
//! arithmetic is the product's, in another order (as GEMM's blocking already is);
//! the interpreter, which computes the original product, is the reference the
//! generated code is tested against. Only here: `nnc grad` shows the product.

use nnc_ir::{BinaryOp, Dim, Model, Node, NodeId, Op, ReduceOp, Type};

/// The widest side of a product written as loops.
pub const THIN: usize = 4;

/// `model` with its thin products written out (a copy; the model is unchanged when
/// it has none).
pub fn expand(model: &Model) -> Model {
    if !model.nodes.iter().any(|n| thin_side(model, n).is_some()) {
        return model.clone();
    }
    let mut out = Model {
        nodes: Vec::with_capacity(model.nodes.len() * 2),
        ..model.clone()
    };
    let mut remap: Vec<NodeId> = Vec::with_capacity(model.nodes.len());
    for node in &model.nodes {
        let args: Vec<NodeId> = node.args.iter().map(|a| remap[a.index()]).collect();
        let id = match thin_side(model, node) {
            Some(side) => Expander {
                model: &mut out,
                node,
            }
            .product(side, args[0], args[1]),
            None => push(
                &mut out,
                Node {
                    args,
                    ..node.clone()
                },
            ),
        };
        remap.push(id);
    }
    out.loss = remap[model.loss.index()];
    for (_, n) in &mut out.outputs {
        *n = remap[n.index()];
    }
    for (_, n) in &mut out.state_updates {
        *n = remap[n.index()];
    }
    for (_, n) in &mut out.grads {
        *n = remap[n.index()];
    }
    out
}

/// Which side of a product is thin, and how thin.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    /// The inner dim `K`.
    Inner(usize),
    /// `N`: the result's columns.
    Columns(usize),
    /// `M`: the result's rows.
    Rows(usize),
}

fn thin_side(model: &Model, node: &Node) -> Option<Side> {
    if node.op != Op::MatMul {
        return None;
    }
    let (a, b) = (model.shape(node.args[0]), model.shape(node.args[1]));
    let ([m, k], [_, n]) = (a.as_slice(), b.as_slice()) else {
        return None;
    };
    let thin = |d: &Dim| match d {
        Dim::Fixed(s) if *s <= THIN => Some(*s),
        _ => None,
    };
    // Only where the loop then walks the wide operand along its rows: read down a
    // column (a stride of `n` per step), the loop does not vectorise, and was
    // measured at 3x the GEMM's time on W2 (`h @ w2` with `w2: [100, 3]`). The
    // rows of a transposed `b` (`K` thin) are rows of a stored copy: the planner
    // keeps a transpose whose rows are sliced (`Kinds::rows_read_by_loops`).
    let transposed = |x: NodeId| model.node(x).op == Op::Transpose;
    let (ta, tb) = (transposed(node.args[0]), transposed(node.args[1]));
    thin(k)
        .filter(|_| !tb || worth_a_transposed_copy(model.shape(node.args[1])))
        .map(Side::Inner)
        .or_else(|| thin(n).filter(|_| ta || tb).map(Side::Columns))
        .or_else(|| thin(m).filter(|_| !ta || !tb).map(Side::Rows))
}

/// Whether a transposed matrix of this shape whose rows loops read is worth
/// copying once per step: a fixed size, and rows long enough to vectorise (a
/// `[2, 2]` copy per step of a 64-step loop costs more than it saves, and the
/// planner's time grows with the nests it adds).
pub(crate) fn worth_a_transposed_copy(shape: &nnc_ir::Shape) -> bool {
    const MIN_ROW: usize = 16;
    match shape.as_slice() {
        [Dim::Fixed(_), Dim::Fixed(cols)] => *cols >= MIN_ROW,
        _ => false,
    }
}

fn push(model: &mut Model, node: Node) -> NodeId {
    model.nodes.push(node);
    NodeId(model.nodes.len() as u32 - 1)
}

/// Writes one product's nodes, each with the product's span, rule and call.
struct Expander<'a> {
    model: &'a mut Model,
    node: &'a Node,
}

impl Expander<'_> {
    fn product(&mut self, side: Side, a: NodeId, b: NodeId) -> NodeId {
        let shape = self.node.ty.shape.clone();
        let mut sum = None;
        let count = match side {
            Side::Inner(k) => k,
            Side::Columns(n) => n,
            Side::Rows(m) => m,
        };
        for p in 0..count {
            let term = match side {
                Side::Inner(_) => {
                    let column = self.slice(a, 1, p);
                    let row = self.slice(b, 0, p);
                    self.node_of(Op::Binary(BinaryOp::Mul), vec![column, row], shape.clone())
                }
                Side::Columns(n) => {
                    let column = self.slice(b, 1, p);
                    let sum = self.contract(a, 1, column, false);
                    self.pad(sum, 1, p, n)
                }
                Side::Rows(m) => {
                    let row = self.slice(a, 0, p);
                    let sum = self.contract(b, 0, row, true);
                    self.pad(sum, 0, p, m)
                }
            };
            sum = Some(match sum {
                None => term,
                Some(acc) => {
                    self.node_of(Op::Binary(BinaryOp::Add), vec![acc, term], shape.clone())
                }
            });
        }
        // The last node is the product's value: it keeps the product's name.
        let id = sum.unwrap_or_else(|| self.node_of(Op::Const(0.0), vec![], vec![]));
        self.model.nodes[id.index()].name = self.node.name.clone();
        id
    }

    /// Position `at` of `x` along `axis`, the axis kept (size 1).
    fn slice(&mut self, x: NodeId, axis: usize, at: usize) -> NodeId {
        let mut shape = self.model.shape(x).clone();
        shape[axis] = Dim::Fixed(1);
        let op = Op::Slice {
            axis,
            start: at,
            len: 1,
        };
        self.node_of(op, vec![x], shape)
    }

    /// `sum(w * v, axis = k, keepdims = true)`: the wide operand `w` (`K` along axis
    /// `k`) contracted with the vector `v` (`K` long, as a row or a column), the
    /// other axis of `w` kept in place. A transposed `w` is walked in its own
    /// layout, row by row (`h.T @ d` sums down the columns of `h`), and the sum
    /// transposed back. The factors are multiplied in the product's order
    /// (`vector_first` when `v` comes from its left operand).
    fn contract(&mut self, w: NodeId, k: usize, v: NodeId, vector_first: bool) -> NodeId {
        let (matrix, k) = match self.transposed(w) {
            Some(x) => (x, 1 - k),
            None => (w, k),
        };
        let v = self.oriented(v, k);
        let scaled = if vector_first {
            self.broadcast_mul(v, matrix)
        } else {
            self.broadcast_mul(matrix, v)
        };
        let sum = self.reduce(scaled, k);
        if matrix == w {
            sum
        } else {
            self.transpose(sum)
        }
    }

    /// The vector `v` (`[K, 1]` or `[1, K]`) with `K` along `axis`.
    fn oriented(&mut self, v: NodeId, axis: usize) -> NodeId {
        if self.model.shape(v)[axis] == Dim::Fixed(1) {
            self.transpose(v)
        } else {
            v
        }
    }

    /// The matrix `x` is the transpose of, if it is one.
    fn transposed(&self, x: NodeId) -> Option<NodeId> {
        let node = self.model.node(x);
        (node.op == Op::Transpose).then(|| node.args[0])
    }

    fn transpose(&mut self, x: NodeId) -> NodeId {
        let mut shape = self.model.shape(x).clone();
        shape.reverse();
        self.node_of(Op::Transpose, vec![x], shape)
    }

    /// `x * y` with numpy broadcasting of their size-1 axes.
    fn broadcast_mul(&mut self, x: NodeId, y: NodeId) -> NodeId {
        let (sx, sy) = (self.model.shape(x).clone(), self.model.shape(y).clone());
        let shape = sx
            .iter()
            .zip(&sy)
            .map(|(a, b)| if *a == Dim::Fixed(1) { *b } else { *a })
            .collect();
        self.node_of(Op::Binary(BinaryOp::Mul), vec![x, y], shape)
    }

    fn reduce(&mut self, x: NodeId, axis: usize) -> NodeId {
        let mut shape = self.model.shape(x).clone();
        shape[axis] = Dim::Fixed(1);
        let op = Op::Reduce {
            op: ReduceOp::Sum,
            axis: Some(axis),
            keepdims: true,
        };
        self.node_of(op, vec![x], shape)
    }

    fn pad(&mut self, x: NodeId, axis: usize, start: usize, size: usize) -> NodeId {
        let mut shape = self.model.shape(x).clone();
        shape[axis] = Dim::Fixed(size);
        self.node_of(Op::Pad { axis, start, size }, vec![x], shape)
    }

    fn node_of(&mut self, op: Op, args: Vec<NodeId>, shape: nnc_ir::Shape) -> NodeId {
        push(
            self.model,
            Node {
                op,
                args,
                ty: Type::float(shape),
                span: self.node.span,
                name: None,
                rule: self.node.rule,
                call: self.node.call.clone(),
                step: self.node.step,
            },
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn model(source: &str) -> Model {
        let models = nnc_ir::compile_source(source).expect("compiles");
        nnc_autodiff::with_gradients(&models[0]).expect("differentiates")
    }

    /// The thin products that make row-walking loops are gone (`x @ w`, `h.T @ d_s`,
    /// `x.T @ d_z`), the others stay, and the results keep their names.
    #[test]
    fn thin_products_are_written_out_and_wide_ones_kept() {
        let m = model(
            "model t { dtype f64; dim N; input x: [N, 2]; param w: [2, 50] = ones;
             param v: [50, 3] = ones; param u: [50, 50] = ones;
             let h = tanh(x @ w); let s = h @ v; loss sum(s) + sum(h @ u); }",
        );
        let products = |m: &Model| {
            m.nodes
                .iter()
                .filter(|n| n.op == Op::MatMul)
                .map(|n| {
                    let (a, b) = (m.shape(n.args[0]), m.shape(n.args[1]));
                    format!("{} @ {}", m.shape_str(a), m.shape_str(b))
                })
                .collect::<Vec<_>>()
        };
        let expanded = expand(&m);
        assert!(products(&m).len() > 2, "{:?}", products(&m));
        assert_eq!(
            products(&expanded),
            [
                // `h @ v` would read `v: [50, 3]` down its columns; `d_s @ v.T`
                // reads the rows of `v.T`, which the planner stores (`plan::kind`).
                "[N, 50] @ [50, 3]",
                "[N, 50] @ [50, 50]",
                "[N, 50] @ [50, 50]",
                "[50, N] @ [N, 50]",
            ]
        );
        let named = |m: &Model| {
            let mut names: Vec<String> = m.nodes.iter().filter_map(|n| n.name.clone()).collect();
            names.sort();
            names
        };
        assert_eq!(named(&m), named(&expanded));
        assert_eq!(m.grads.len(), expanded.grads.len());
    }
}
