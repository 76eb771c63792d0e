//! **Where in its row is each member computed?** The last part of "which loop".
//! Takes the grouping and the holds; gives each nest as a [`Nest`]: its members
//! with their slots, the running values (helpers) its row reductions need, and its
//! number of passes over the inner axis.
//!
//! Members are scheduled in topological order, each in the earliest pass its
//! operands allow. A softmax needs three passes (max, sum of exponentials, result),
//! a row reduction is ready after the pass accumulating it, and what is computed
//! once per row comes right after what it reads.

use super::nest::{Grouping, NestBuild};
use super::{Helper, HelperKind, Hold, Kind, Level, Member, Nest, Slot};
use nnc_ir::{NodeId, Op, ReduceOp};
use std::collections::HashMap;

impl Grouping<'_, '_> {
    /// Every nest, scheduled, in the order of its first member.
    pub(super) fn schedules(&self, hold: &[Hold]) -> Vec<Nest> {
        let mut nests: Vec<&NestBuild> = self.nests.iter().flatten().collect();
        nests.sort_by_key(|n| n.members.first().copied());
        nests
            .into_iter()
            .map(|nb| self.schedule(nb, hold))
            .collect()
    }

    /// Levels, passes and helpers of one nest.
    fn schedule(&self, nb: &NestBuild, hold: &[Hold]) -> Nest {
        let mut rows = Rows {
            grouping: self,
            home: nb.members.first().and_then(|m| self.nest_of[m.index()]),
            pass_of: HashMap::new(),
            ready: HashMap::new(),
            helpers: vec![],
        };
        let members: Vec<Member> = nb
            .members
            .iter()
            .map(|&n| Member {
                node: n,
                axes: self.axes[n.index()].clone(),
                level: self.level[n.index()].unwrap_or(Level::Pass),
                store: matches!(hold[n.index()], Hold::Buffer | Hold::Grad(_)),
                slot: rows.slot(n),
                input_axes: self.input_axes[n.index()].clone(),
            })
            .collect();
        let passes = members
            .iter()
            .map(|m| match m.slot {
                Slot::Pass(k) | Slot::Row(k) => k,
            })
            .chain(rows.helpers.iter().map(|h| h.pass))
            .max()
            .unwrap_or(0);
        Nest {
            domain: nb.domain.clone(),
            r: nb.r,
            members,
            helpers: rows.helpers,
            passes,
            rows_on_threads: None,
            in_product: false,
        }
    }
}

/// The schedule of one nest's row, while its members are placed.
struct Rows<'g, 'k, 'm> {
    grouping: &'g Grouping<'k, 'm>,
    /// The nest.
    home: Option<usize>,
    /// The pass computing each pass-level member.
    pass_of: HashMap<NodeId, usize>,
    /// The pass after which each row-level member is ready.
    ready: HashMap<NodeId, usize>,
    helpers: Vec<Helper>,
}

impl Rows<'_, '_, '_> {
    /// Where member `n` is computed; records its helpers.
    fn slot(&mut self, n: NodeId) -> Slot {
        let e = self.earliest(n);
        match self.grouping.level[n.index()].unwrap_or(Level::Pass) {
            Level::Pass => self.pass_slot(n, e),
            Level::Row => self.row_slot(n, e),
            // Accumulated where its input is evaluated: in a pass when the input
            // varies along r, else once per row.
            Level::Nest if self.grouping.input_varies_along_r(n) => Slot::Pass(e),
            Level::Nest => Slot::Row(e - 1),
        }
    }

    /// The earliest pass in which everything `n` reads can be evaluated (through
    /// inline nodes): values of this nest once computed or ready, others from pass 1.
    fn earliest(&self, n: NodeId) -> usize {
        let g = self.grouping;
        let in_nest = |o: NodeId| g.nest_of[o.index()] == self.home;
        g.kinds
            .reads(n, &in_nest)
            .inside
            .iter()
            .map(|o| match (self.pass_of.get(o), self.ready.get(o)) {
                (Some(p), _) => *p,
                (None, Some(k)) => k + 1,
                (None, None) => 1,
            })
            .fold(1, usize::max)
    }

    fn helper(&mut self, owner: NodeId, kind: HelperKind, of: NodeId, pass: usize) {
        self.helpers.push(Helper {
            owner,
            kind,
            of,
            pass,
        });
    }

    /// A member varying along the inner axis, its operands ready from pass `e`: a
    /// softmax after its max and sum passes, an extremum mask after its search.
    fn pass_slot(&mut self, n: NodeId, e: usize) -> Slot {
        let node = self.grouping.kinds.model.node(n);
        let member = self.grouping.kinds.kind[n.index()] == Kind::Member;
        let pass = match &node.op {
            Op::Softmax { .. } | Op::LogSoftmax { .. } if member => {
                let x = node.args[0];
                self.helper(n, HelperKind::Max, x, e);
                self.helper(n, HelperKind::SumExp, x, e + 1);
                e + 2
            }
            Op::ExtremumMask { op, .. } if member => {
                let kind = if *op == ReduceOp::Min {
                    HelperKind::ArgMin
                } else {
                    HelperKind::ArgMax
                };
                self.helper(n, kind, node.args[0], e);
                e + 1
            }
            _ => e,
        };
        self.pass_of.insert(n, pass);
        Slot::Pass(pass)
    }

    /// A member constant along the inner axis, its operands ready from pass `e`: a
    /// row reduction (ready after the pass accumulating it), or a value computed
    /// once per row after what it reads.
    fn row_slot(&mut self, n: NodeId, e: usize) -> Slot {
        let node = self.grouping.kinds.model.node(n);
        let done = match &node.op {
            Op::Reduce { op, .. } => {
                let x = node.args[0];
                let kind = match op {
                    ReduceOp::Sum => HelperKind::Sum,
                    ReduceOp::Max | ReduceOp::LogSumExp => HelperKind::Max,
                    ReduceOp::Min => HelperKind::Min,
                };
                self.helper(n, kind, x, e);
                if *op == ReduceOp::LogSumExp {
                    self.helper(n, HelperKind::SumExp, x, e + 1);
                    e + 1
                } else {
                    e
                }
            }
            Op::ArgMax { .. } => {
                self.helper(n, HelperKind::ArgMax, node.args[0], e);
                e
            }
            Op::MatMul => {
                // A dot product: the sum of the products, in one pass.
                self.helper(n, HelperKind::Sum, n, e);
                e
            }
            // Evaluated once per row, after what it reads is ready.
            _ => e - 1,
        };
        self.ready.insert(n, done);
        Slot::Row(done)
    }
}
