//! **Values assembled from pieces.** The gradient of a stack `w: [L, R, C]` read as
//! `w[l]` at each step of a loop is the sum of every step's gradient, each padded
//! into its rows: `pad(g_0, start = 0) + pad(g_1, start = 1) + ...` (the `Slice`
//! rule; `concat` gives the same shape of sum). Computed as written, every element
//! of the sum reads every piece behind a bounds test, `L` of them per element. Its
//! pieces are disjoint blocks of rows, which in row-major storage are disjoint runs
//! of the buffer: so each is written into its run instead, a product straight from
//! the GEMM and anything else copied, and the rows no piece covers are zeroed.
//!
//! Only where that pays: when a piece is a product (which then needs no buffer of
//! its own), or there are more than [`FEW_PIECES`]. A few pieces computed in loops
//! are better summed where the sum is read (a thin product's columns, W2's
//! `x.T @ d_z`): a bounds test or two per element, against a buffer per piece and
//! a copy.
//!
//! Takes the kinds; marks the sum [`Kind::Assembled`] with its pieces, the sums and
//! pads inside it inline (nothing computes them), and products written into it
//! aliased to it (their steps, where they fall in the order, write its rows).

use super::Kind;
use super::kind::Kinds;
use nnc_ir::{BinaryOp, Dim, NodeId, Op};

/// The most pieces a sum of pieces computed in loops may have and still be summed
/// in a loop rather than assembled.
pub const FEW_PIECES: usize = 4;

/// A block of rows (along axis 0) of an assembled value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Piece {
    /// The value written there (below any reshapes, which keep row-major order).
    pub value: NodeId,
    /// The first row, and how many.
    pub start: usize,
    pub rows: usize,
    /// `value` is a product, which its own step computes into the rows.
    pub product: bool,
}

impl Kinds<'_> {
    /// Finds the sums of padded pieces and marks them (see the module's doc).
    pub(super) fn assemble(&mut self) {
        for i in (0..self.model.nodes.len()).rev() {
            let n = NodeId(i as u32);
            if self.kind[i] != Kind::Member {
                continue;
            }
            let Some((pieces, inside)) = self.pieces(n) else {
                continue;
            };
            for x in inside {
                self.kind[x.index()] = Kind::Inline;
            }
            for p in pieces.iter().filter(|p| p.product) {
                self.alias_of[p.value.index()] = Some(n);
            }
            self.kind[i] = Kind::Assembled;
            self.assembly[i] = Some(pieces);
        }
    }

    /// `n`'s pieces, sorted by row, and the sums and pads between them and `n`:
    /// when `n` is a sum of at least two pieces padded along axis 0 into disjoint
    /// rows, each used only there, each computed in a way that can be written into
    /// rows (a product, a loop, a scalar).
    fn pieces(&self, n: NodeId) -> Option<(Vec<Piece>, Vec<NodeId>)> {
        // Sums and pads used only here; sums computed in loops (not `GemmAcc`s).
        let through = |x: NodeId| {
            self.single_use(x)
                && (self.model.node(x).op != Op::Binary(BinaryOp::Add)
                    || self.kind[x.index()] == Kind::Member)
        };
        let join = self.model.axis0_join(n, through)?;
        let mut inside = join.sums;
        let mut pieces = vec![];
        for pad in join.pads {
            inside.push(pad);
            let (Op::Pad { start, .. }, [piece]) =
                (&self.model.node(pad).op, &self.model.node(pad).args[..])
            else {
                return None;
            };
            let Some(Dim::Fixed(rows)) = self.shape(*piece).first() else {
                return None;
            };
            pieces.push(self.piece(*piece, *start, *rows, &mut inside)?);
        }
        pieces.sort_by_key(|p| p.start);
        let disjoint = pieces
            .windows(2)
            .all(|w| w[0].start + w[0].rows <= w[1].start);
        let pays = pieces.len() > FEW_PIECES || pieces.iter().any(|p| p.product);
        (disjoint && pieces.len() >= 2 && pays).then_some((pieces, inside))
    }

    /// The piece `x` padded to rows `start..start + rows`: the value below its
    /// reshapes (each used only here), if it can be written into rows.
    fn piece(
        &self,
        mut x: NodeId,
        start: usize,
        rows: usize,
        inside: &mut Vec<NodeId>,
    ) -> Option<Piece> {
        while self.model.node(x).op == Op::Reshape {
            if !self.single_use(x) {
                return None;
            }
            inside.push(x);
            x = self.model.node(x).args[0];
        }
        let product = match self.kind[x.index()] {
            Kind::Gemm => self.single_use(x) && !self.absorbed[x.index()],
            Kind::Member | Kind::GemmAcc | Kind::Scalar => false,
            _ => return None,
        };
        if product && self.alias_of[x.index()].is_some() {
            return None;
        }
        Some(Piece {
            value: x,
            start,
            rows,
            product,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::plan_of;
    use super::super::{Entry, Kind, Step};

    /// A stack's gradient from a loop: each step's product written into its rows,
    /// the bias pieces (column sums, more than a few) copied; nothing sums the
    /// padded pieces.
    #[test]
    fn a_stacks_gradient_is_written_piece_by_piece() {
        let (m, p) = plan_of(
            "model m { dtype f64; dim N, D = 3, L = 5; input x: [N, D];
             param w: [L, D, D] = xavier; param b: [L, D] = zeros;
             let h = for l in 0..L from x { tanh(h @ w[l] + b[l]) };
             loss sum(h); }",
            Entry::LossAndGrad,
        );
        let grad = |name: &str| {
            m.grads
                .iter()
                .find(|(p, _)| {
                    matches!(p, nnc_ir::GradOf::Param(p) if m.params[p.0 as usize].name == name)
                })
                .map(|(_, g)| *g)
                .expect("a gradient")
        };
        for (name, products) in [("w", 5), ("b", 0)] {
            let g = grad(name);
            assert_eq!(p.kind[g.index()], Kind::Assembled, "d_{name}");
            let pieces = p
                .steps
                .iter()
                .find_map(|s| match s {
                    Step::Assemble { dest, pieces } if *dest == g => Some(pieces),
                    _ => None,
                })
                .expect("an assembly step");
            let starts: Vec<usize> = pieces.iter().map(|p| p.start).collect();
            assert_eq!(starts, [0, 1, 2, 3, 4], "d_{name}");
            assert_eq!(pieces.iter().filter(|p| p.product).count(), products);
        }
        let pads = (0..m.nodes.len())
            .filter(|i| matches!(m.nodes[*i].op, nnc_ir::Op::Pad { .. }))
            .filter(|i| p.kind[*i] != Kind::Inline)
            .count();
        assert_eq!(pads, 0, "no pad is computed");
    }

    /// Two pieces computed in loops (`concat` of two sums) are summed where read.
    #[test]
    fn a_few_pieces_from_loops_are_summed_in_place() {
        let (m, p) = plan_of(
            "model m { dtype f64; dim N, D = 3; input x: [N, D];
             loss sum(concat(sum(x, axis = 0, keepdims = true), sum(x * x, axis = 0, keepdims = true), axis = 0) * 2); }",
            Entry::Loss,
        );
        assert!(
            (0..m.nodes.len()).all(|i| p.kind[i] != Kind::Assembled),
            "{:?}",
            p.kind
        );
    }
}
