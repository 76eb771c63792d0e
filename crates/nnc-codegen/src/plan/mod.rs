//! Planning: from a model's IR (forward and backward pass) to the steps of one
//! generated function. Pure — it decides, [`crate::emit`] writes.
//!
//! A plan answers four questions for every node the function needs, each in a module
//! of its own and each from the answers before it:
//!
//! 1. **How is it computed?** ([`Kind`], `kind.rs`) Parameters and inputs are read
//!    in place; constants, broadcasts, reshapes, transposes and one-hots are
//!    *inline*: never stored, evaluated by index arithmetic wherever they are used;
//!    scalars are `let`s; matmuls are calls to the runtime's GEMM; everything else is
//!    a *member* of a loop nest.
//! 2. **Which loop?** ([`Nest`], `nest.rs`, with `place.rs` and `schedule.rs`)
//!    Members are grouped greedily, in topological order: a node joins the nest of
//!    its operands when the shapes line up (`place.rs`: axis maps) and no value
//!    computed outside the nest lies between them (`Grouping::can_join`). So an
//!    elementwise chain becomes one loop, a row-wise softmax + cross-entropy + its
//!    gradient one pass per row, a bias gradient a column sum inside the loop that
//!    computes its operand. `schedule.rs` then puts each member in a pass of its row.
//! 3. **Where does it live?** ([`Hold`], `hold.rs`, and `steps.rs` for the order) A
//!    member used only inside its nest stays in registers; one used elsewhere (by a
//!    matmul, another nest, as a result) is stored to a workspace buffer or straight
//!    into its gradient or output. The steps are then put in an order that computes
//!    every stored value before it is read.
//! 4. **Which thread?** ([`RowSplit`], `threads.rs`) A nest whose rows are
//!    independent (a matrix walked row by row, nothing accumulated across rows, every
//!    stored value written along its row) runs its rows on the workspace's threads,
//!    and carries the work per element that decides at run time whether a call's
//!    rows are worth splitting. Matmuls are split inside the runtime's GEMM instead,
//!    and an elementwise nest that reads a product's result runs inside that
//!    product, on each stretch of it the GEMM finishes (`epilogue.rs`).
//!
//! Before grouping for good, a first grouping finds cheap values that would be
//! stored only for another nest to read, and those are recomputed there instead
//! (`Kinds::rematerialised`); matmuls added to a value computed in a loop
//! accumulate into its buffer (`Kind::GemmAcc`).
//!
//! Within a nest, one axis `r` (the reduction axis of its row operations, else the
//! last) is the inner loop; the other axes are outer loops. Members that vary along
//! `r` are computed in *passes* over `r`; members that do not are computed once per
//! row; reductions over `r` are accumulated in a pass and ready after it. A softmax
//! needs three passes (max, sum of exponentials, result); members are placed in the
//! earliest pass their operands allow, and the passes of a nest are shared.
//!
//! [`describe`] prints a plan (`nnc compile --emit plan`).

mod assemble;
mod describe;
mod epilogue;
#[cfg(test)]
mod fixtures;
mod hold;
mod kind;
mod nest;
mod place;
mod schedule;
mod steps;
mod threads;

pub use describe::describe;

pub use assemble::Piece;
use kind::Kinds;
pub use kind::trivial_axis_op;
use nest::Grouping;
use nnc_ir::{Dim, Elem, Model, NodeId, Op, Shape};
pub use threads::PARALLEL_WORK;

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
    /// A sum of pieces padded into disjoint rows: each piece written into its rows
    /// (see `assemble`).
    Assembled,
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

/// How a nest's rows run on the workspace's threads (`rt::for_rows`): each thread
/// takes a block of rows, and each row is handed its own slice of every array the
/// nest writes.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RowSplit {
    /// A rough cost of one element of the nest, in adds (about ten for an `exp` or
    /// a `tanh`): times the row width, the work per row that the runtime weighs
    /// against the cost of waking threads.
    pub work_per_element: usize,
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
    /// `Some` when the rows are independent and run on threads (see `threads.rs`).
    pub rows_on_threads: Option<RowSplit>,
    /// Runs inside the product of the step before it, on each stretch of that
    /// product's `C` as soon as it is final (see `epilogue.rs`).
    pub in_product: bool,
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
    /// `dest (+)= a @ b` for the matmul node `matmul`; with `rows`, into `dest`'s
    /// rows from that one on (a piece of an assembled value).
    Gemm {
        matmul: NodeId,
        dest: NodeId,
        accumulate: bool,
        rows: Option<usize>,
    },
    Nest(Nest),
    /// `node`'s storage filled with its (scalar) operand.
    Fill(NodeId),
    /// `dest` finished piece by piece: the pieces that are not products (which their
    /// own `Gemm` steps write into their rows) copied, rows no piece covers zeroed.
    Assemble {
        dest: NodeId,
        pieces: Vec<Piece>,
    },
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

/// Plans one function of `model`: the four questions in order.
///
/// Grouping runs twice when it pays: cheap values that the first grouping would
/// store only so that another nest can read them are recomputed there instead (see
/// `Kinds::rematerialised`), and the grouping is redone without them.
pub fn plan(model: &Model, entry: Entry) -> Plan {
    let kinds = Kinds::new(model, entry, &[]);
    let first = Grouping::form(&kinds);
    let remat = kinds.rematerialised(&first.nest_of);
    let mut plan = if remat.is_empty() {
        finish(&first, entry)
    } else {
        let kinds = Kinds::new(model, entry, &remat);
        finish(&Grouping::form(&kinds), entry)
    };
    threads::split_rows(model, &mut plan);
    epilogue::fuse_into_products(model, &mut plan);
    plan
}

/// Where every node lives, each nest's passes, and the steps in order.
fn finish(grouping: &Grouping<'_, '_>, entry: Entry) -> Plan {
    let kinds = grouping.kinds;
    let hold = hold::holds(grouping, entry);
    let nests = grouping.schedules(&hold);
    let (steps, step_of) = steps::ordered(kinds, nests);
    Plan {
        entry,
        kind: kinds.kind.clone(),
        hold,
        step_of,
        steps,
        gemm_acc: kinds.gemm_acc.clone(),
    }
}

/// The values a function must produce.
pub fn roots(model: &Model, entry: Entry) -> Vec<NodeId> {
    match entry {
        Entry::Loss => vec![model.loss],
        Entry::Forward => model.outputs.iter().map(|(_, n)| *n).collect(),
        // The training step also computes the states' new values.
        Entry::LossAndGrad => std::iter::once(model.loss)
            .chain(model.grads.iter().map(|(_, n)| *n))
            .chain(model.state_updates.iter().map(|(_, n)| *n))
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

/// The node a matmul operand is read from, through transposes, reshapes that only
/// add size-1 axes (which are ndarray views) and a matrix of a stack (`w[l]`).
pub fn gemm_base(model: &Model, mut n: NodeId) -> NodeId {
    loop {
        let node = model.node(n);
        if let Some((stack, _)) = stack_matrix(model, n) {
            n = stack;
            continue;
        }
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

/// `w[l]` for a stack of matrices `w: [L, R, C]`: the reshape to `[R, C]` of the
/// slice `w[l:l+1]`. A view of the stack, `R * C` elements from `l * R * C` in its
/// row-major storage. Gives the stack and `l`.
pub fn stack_matrix(model: &Model, n: NodeId) -> Option<(NodeId, usize)> {
    let (stack, at) = stack_slice(model, n)?;
    (model.shape(stack).len() == 3).then_some((stack, at))
}

/// A stack's slice `w[l]` (`Reshape(Slice { axis: 0, len: 1 })`, of any rank): the
/// stack and `l`.
pub fn stack_slice(model: &Model, n: NodeId) -> Option<(NodeId, usize)> {
    let node = model.node(n);
    let slice = model.node(*node.args.first()?);
    let (
        Op::Reshape,
        Op::Slice {
            axis: 0,
            start,
            len: 1,
        },
    ) = (&node.op, &slice.op)
    else {
        return None;
    };
    let stack = slice.args[0];
    let (from, to) = (model.shape(stack), &node.ty.shape);
    (!from.is_empty() && from[1..] == to[..]).then_some((stack, *start))
}

/// The element kind of a node's buffer.
pub fn is_index(model: &Model, n: NodeId) -> bool {
    model.ty(n).elem == Elem::Index
}
