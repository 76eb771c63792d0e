//! Function bodies: the steps of a [`Plan`] as Rust statements.
//!
//! Values are produced on demand: asking for a node's value at an index ([`Ix`], one
//! per axis) gives an expression, and emits the `let`s and stores it needs into the
//! right block — the current pass, the current row, or the function. Inline nodes
//! (broadcasts, transposes, one-hots, constants) become index arithmetic and never
//! appear as statements.

use super::Cx;
use super::expr::{Ex, constant, ident};
use super::roll::{self, Iteration};
use crate::names::Namer;
use crate::plan::{
    Helper, HelperKind, Hold, Kind, Level, Member, Nest, Piece, Plan, Slot, Step, gemm_base,
    stack_matrix, unit, unit_reshape,
};
use nnc_ir::{BinaryOp, CmpOp, DType, Dim, InputKind, NodeId, Op, ReduceOp, Shape, UnaryOp};
use proc_macro2::{Ident, TokenStream, TokenTree};
use quote::{ToTokens, quote};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;
use std::str::FromStr;

/// Loop variables, by nest axis.
pub const LOOP: [&str; 4] = ["i", "j", "k", "l"];

/// The longest softmax row whose exps are kept in a local array (on the stack: 512
/// bytes in `f64`).
const ROW_EXPS: usize = 64;

/// The rows a block of a nest summing its rows takes together (see
/// `Body::sums_rows_in_blocks`).
const ROW_BLOCK: usize = 4;

/// An index along one axis of a value.
#[derive(Clone, Debug, PartialEq, Eq, Hash)]
pub enum Ix {
    /// A size-1 axis.
    Zero,
    /// The loop variable of a nest axis.
    Var(usize),
    /// The value of an index tensor at an index (`labels[i]`).
    Gather(NodeId, Vec<Ix>),
    /// A position known when the code is generated (`x[:, 2]`).
    Const(usize),
    /// `of + by`: a position in a slice, in the sliced value.
    Shift(Box<Ix>, usize),
    /// `of.clamp(lo, last) - lo`: a position in a padded value, in the operand
    /// (clamped so that it is in bounds even where the pad reads zeros).
    Clamp { of: Box<Ix>, lo: usize, last: usize },
    /// Any other `usize` expression (its tokens as text).
    Expr(String),
}

impl Ix {
    /// The position, when it is known now.
    fn known(&self) -> Option<usize> {
        match self {
            Ix::Zero => Some(0),
            Ix::Const(c) => Some(*c),
            _ => None,
        }
    }

    /// Whether the index can vary with loop variable `r` (an `Expr` may).
    fn mentions(&self, r: usize) -> bool {
        match self {
            Ix::Var(v) => *v == r,
            Ix::Gather(_, idx) => idx.iter().any(|i| i.mentions(r)),
            Ix::Shift(of, _) | Ix::Clamp { of, .. } => of.mentions(r),
            Ix::Zero | Ix::Const(_) => false,
            Ix::Expr(_) => true,
        }
    }
}

/// What a function body refers to, so its prologue binds exactly that.
#[derive(Clone, Debug, Default)]
pub struct Uses {
    /// Runtime dims (by `DimId`).
    pub dims: BTreeSet<u32>,
    /// Parameters and inputs read element by element (through slices).
    pub leaf_slices: BTreeSet<NodeId>,
    /// Scalar parameters and inputs (read once into a local).
    pub leaf_scalars: BTreeSet<NodeId>,
    /// Workspace buffers.
    pub buffers: BTreeSet<NodeId>,
    /// Gradients written through slices (by position in `Model::grads`).
    pub grads: BTreeSet<usize>,
    /// The matmuls' `(m, k, n)`, for sizing the workspace's GEMM scratch (and the
    /// module's `matmul` import).
    pub products: Vec<[Dim; 3]>,
    /// Stacked buffers of loop values (families, see `roll`).
    pub stacks: BTreeSet<usize>,
    /// `aview1` and `aview_mut1` are called (for the module's imports).
    pub aview1: bool,
    pub aview_mut1: bool,
}

/// The state of the nest being emitted.
struct NestState {
    nest: Nest,
    /// Each member's position in `nest.members` (a nest can have thousands).
    member_at: HashMap<NodeId, usize>,
    cur: Slot,
    row: Vec<TokenStream>,
    pass: Vec<TokenStream>,
    row_cache: HashMap<NodeId, Ex>,
    pass_cache: HashMap<NodeId, Ex>,
    /// Row slices of the current pass.
    slices: Vec<RowSlice>,
    /// Row slices bound for earlier passes of this row (reused when they fit).
    bound: Vec<RowSlice>,
    /// Recomputed values (rematerialised nodes) of this pass and of this row.
    remat_pass: HashMap<(NodeId, Vec<Ix>), Ex>,
    remat_row: HashMap<(NodeId, Vec<Ix>), Ex>,
    /// The row's statements as a parallel row loop runs them: mutable row slices
    /// are the loop's arguments, not `let`s.
    par_row: Vec<TokenStream>,
    /// The mutable row slices bound in the row, in order.
    written: Vec<RowSlice>,
    /// How each array was reached in the row: `Some(local)` through a row slice,
    /// `None` element by element. A parallel loop needs every array it writes
    /// reached only through its one row slice.
    reached: Vec<(String, Option<String>)>,
    /// Whether an array is written element by element (not through a row slice).
    writes_elementwise: bool,
    /// For a nest whose rows are summed in blocks (see `sums_rows_in_blocks`): each
    /// column sum's local and the element of its array it is loaded from and
    /// stored to, around the rows of a block.
    column_sums: Option<Vec<(String, Ex)>>,
    /// That nest's whole loop, once its pass is written.
    blocked: Option<TokenStream>,
    /// For a nest inside a product: its pass over one stretch of a row, as the
    /// product hands it out (see `Body::stretch_pass`); `None` once a pass could
    /// not be written that way.
    stretch: Option<Vec<TokenStream>>,
}

/// The most arrays one `rt::for_rows` loop writes: the runtime's
/// `parallel::MAX_ROW_OUTPUTS` (this crate does not depend on the runtime; a test in
/// `nnc-model-tests` checks the two agree).
pub const MAX_ROW_OUTPUTS: usize = 12;

/// Why a nest whose rows the plan runs on threads is emitted as plain loops.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Unsplit {
    /// It writes an array other than through row `i`'s slice: the plan was wrong.
    Writes,
    /// An array it writes is also read element by element (a pick reading it back
    /// at a gathered column), which only emission finds out.
    Reads,
    /// It writes more arrays than `rt::for_rows` hands out rows of.
    TooMany,
}

/// `let t4_row = &t4[i * 100..][..100];`: one row of an array, bound before a pass
/// so that the pass indexes it by the loop variable alone (no bounds checks left,
/// and the loop vectorises).
#[derive(Clone)]
struct RowSlice {
    array: String,
    base: String,
    base_ex: Ex,
    len: Ex,
    local: String,
    mutable: bool,
}

/// Whether `var` appears in `ts` only as a whole index, `[var]` (of a row slice),
/// never in an expression of its own.
fn only_indexes(ts: &TokenStream, var: &str) -> bool {
    for t in ts.clone() {
        match t {
            TokenTree::Ident(id) if id == var => return false,
            TokenTree::Group(g) => {
                let inner: Vec<TokenTree> = g.stream().into_iter().collect();
                let whole_index = g.delimiter() == proc_macro2::Delimiter::Bracket
                    && matches!(&inner[..], [TokenTree::Ident(id)] if id == var);
                if !whole_index && !only_indexes(&g.stream(), var) {
                    return false;
                }
            }
            _ => {}
        }
    }
    true
}

/// Whether a row slice depends on the loop over `axis` (its start does).
fn by_row(slice: &RowSlice, axis: usize) -> bool {
    mentions_ident(&slice.base_ex.at(super::expr::Prec::Add), LOOP[axis])
}

/// Whether `ts` uses the identifier `name` anywhere.
pub(super) fn mentions_ident(ts: &TokenStream, name: &str) -> bool {
    ts.clone().into_iter().any(|t| match t {
        proc_macro2::TokenTree::Ident(i) => i == name,
        proc_macro2::TokenTree::Group(g) => mentions_ident(&g.stream(), name),
        _ => false,
    })
}

/// Ops computed by arithmetic (rather than index arithmetic, as views are).
fn is_arithmetic(op: &Op) -> bool {
    matches!(
        op,
        Op::Unary(_) | Op::Powf(_) | Op::Binary(_) | Op::Compare(_) | Op::Select
    )
}

/// Whether an expression is a bare name (a running sum, say), which needs no `let`.
fn is_name(e: &Ex) -> bool {
    let mut trees = e.ts.clone().into_iter();
    matches!(
        (trees.next(), trees.next()),
        (Some(proc_macro2::TokenTree::Ident(_)), None)
    )
}

/// Per node: whether a node of another loop step (or of none) reads it, or it is a
/// result of the function.
fn escapes(model: &nnc_ir::Model, plan: &Plan) -> Vec<bool> {
    let mut out = vec![false; model.nodes.len()];
    if model.loops.is_empty() {
        return out;
    }
    for (u, node) in model.nodes.iter().enumerate() {
        if plan.kind[u] == Kind::Unneeded {
            continue;
        }
        for a in &node.args {
            if model.node(*a).step != node.step {
                out[a.index()] = true;
            }
        }
    }
    for r in crate::plan::roots(model, plan.entry) {
        out[r.index()] = true;
    }
    out
}

/// Emits one function's steps.
pub struct Body<'a> {
    cx: &'a Cx<'a>,
    plan: &'a Plan,
    namer: Namer,
    pub uses: Uses,
    pub stmts: Vec<TokenStream>,
    nest: Option<NestState>,
    helper_names: HashMap<(NodeId, HelperKind, bool), String>,
    derived: HashMap<(NodeId, &'static str), String>,
    /// The (log-)softmaxes of the current nest whose row of `exp(x - shift)` is kept
    /// in a local array as its sum runs: the array's name (see `row_exps`).
    row_exps: HashMap<NodeId, String>,
    /// Slice locals of gradient positions that are not their node's own hold.
    grad_locals: HashMap<usize, String>,
    /// Names of row slices (free to reuse in another nest: each nest's are local to
    /// its loops).
    row_names: std::collections::HashSet<String>,
    /// First-extremum masks kept as positions whose buffer has been written (for a
    /// product that reads them as arrays): written once however many products read it.
    masks_written: std::collections::HashSet<NodeId>,
    /// The step of a loop being written as the body of a Rust loop, if any.
    roll: Option<Roll>,
    /// The stacked loop values the current step refers to: bound before it.
    stack_refs: BTreeSet<NodeId>,
    /// Per node: read by a node of another loop step, or a result (so a local
    /// holding it cannot be confined to a rolled body).
    escapes: Vec<bool>,
    /// The loops written as a Rust loop.
    pub rolled: BTreeSet<u32>,
    /// The last product written, while it is the last statement: a nest that runs
    /// inside it (`Nest::in_product`) replaces its call.
    last_gemm: Option<LastGemm>,
    /// Where the current iteration's statements start (see `iteration`).
    iteration_start: usize,
    /// The statement of the last product a nest joined.
    last_joined: Option<usize>,
}

/// A product's call as [`Body::gemm`] wrote it, for a nest to run inside it.
struct LastGemm {
    /// Its statement: the index in `stmts`, and the text (a trial emission of a
    /// rolled loop may have replaced the statement at that index since).
    stmt: usize,
    text: String,
    note: TokenStream,
    /// `a, b, c, accumulate`.
    args: TokenStream,
    /// The slice local of the product's destination.
    dest: String,
}

/// The loop step being written as a rolled body: values of the loop are named by
/// their step's offset from `at`, and indices by the loop variable ([`ROLL_VAR`]).
#[derive(Clone, Copy, Debug)]
struct Roll {
    lp: u32,
    at: usize,
}

/// The loop variable while a rolled body is written; renamed after (see
/// `Body::rolled_loop`).
const ROLL_VAR: &str = "nnc_step";

/// What a trial emission of a loop step changes, to undo it.
struct Snapshot {
    stmts: usize,
    names: usize,
    helper_names: HashMap<(NodeId, HelperKind, bool), String>,
    derived: HashMap<(NodeId, &'static str), String>,
    row_exps: HashMap<NodeId, String>,
    grad_locals: HashMap<usize, String>,
    masks_written: std::collections::HashSet<NodeId>,
}

impl<'a> Body<'a> {
    pub fn new(cx: &'a Cx<'a>, plan: &'a Plan) -> Body<'a> {
        Body {
            cx,
            plan,
            namer: cx.names.namer.clone(),
            uses: Uses::default(),
            stmts: vec![],
            nest: None,
            helper_names: HashMap::new(),
            derived: HashMap::new(),
            row_exps: HashMap::new(),
            grad_locals: HashMap::new(),
            row_names: Default::default(),
            masks_written: Default::default(),
            roll: None,
            stack_refs: BTreeSet::new(),
            escapes: escapes(cx.model, plan),
            rolled: BTreeSet::new(),
            last_gemm: None,
            iteration_start: 0,
            last_joined: None,
        }
    }

    fn model(&self) -> &'a nnc_ir::Model {
        self.cx.model
    }

    /// The local or buffer naming `n` (inside a rolled body, by its step's offset).
    fn name(&self, n: NodeId) -> String {
        self.rolled_name(n, true)
            .unwrap_or_else(|| self.cx.names.node[n.index()].clone())
    }

    fn shape(&self, n: NodeId) -> &'a Shape {
        self.cx.model.shape(n)
    }

    /// Emits every step: runs of consecutive loop steps whose code is the same at
    /// their own index as one Rust loop (see `roll`), the others one by one.
    pub fn steps(&mut self) {
        let its = roll::iterations(self.model(), self.plan);
        let mut k = 0;
        while k < its.len() {
            let run = roll::run_len(&its[k..]);
            if run >= 2 {
                self.run(&its[k..k + run]);
            } else {
                self.iteration(its[k].steps.clone());
            }
            k += run;
        }
    }

    /// The plan's steps `steps` (one loop step, or one step outside loops), after
    /// the bindings of the stacked loop values they refer to.
    fn iteration(&mut self, steps: Range<usize>) {
        let mut at = self.stmts.len();
        self.iteration_start = at;
        for step in &self.plan.steps[steps] {
            self.step(step);
        }
        // A nest that joined the product of the iteration before: the bindings go
        // before their joint call.
        if let Some(joined) = self.last_joined.take() {
            at = at.min(joined);
        }
        let binds = self.stack_bindings();
        self.stmts.splice(at..at, binds);
    }

    fn step(&mut self, step: &Step) {
        match step {
            Step::Scalar(n) => self.scalar(*n),
            Step::Gemm {
                matmul,
                dest,
                accumulate,
                rows,
            } => self.gemm(*matmul, *dest, *accumulate, *rows),
            Step::Nest(nest) => self.nest(nest),
            Step::Fill(n) => self.fill(*n),
            Step::Assemble { dest, pieces } => self.assemble(*dest, pieces),
        }
    }

    // ---- rolled loops (see `roll`) -------------------------------------------

    /// A run of consecutive steps of one loop: each stretch of steps whose code is
    /// the same as its first's, at their own index, as one Rust loop; a step like
    /// no neighbour on its own.
    fn run(&mut self, its: &[Iteration]) {
        let mut k = 0;
        while k < its.len() {
            let snap = self.snapshot();
            let first = self.trial(&its[k]);
            self.restore(&snap);
            let mut j = k + 1;
            while j < its.len() {
                let same = self.trial(&its[j]) == first;
                self.restore(&snap);
                if !same {
                    break;
                }
                j += 1;
            }
            if j - k >= 2 {
                self.rolled_loop(&its[k], &its[j - 1], &snap);
            } else {
                self.iteration(its[k].steps.clone());
            }
            k = j;
        }
    }

    /// Writes a loop step as a rolled body (its values named by offset, indices by
    /// the loop variable) and gives its text; the statements stay in `stmts`.
    fn trial(&mut self, it: &Iteration) -> String {
        let Some(tag) = it.tag else {
            return String::new();
        };
        let at = self.stmts.len();
        self.roll = Some(Roll {
            lp: tag.lp,
            at: tag.index,
        });
        self.iteration(it.steps.clone());
        self.roll = None;
        self.stmts[at..].iter().map(|t| t.to_string()).collect()
    }

    /// `for l in a..b { body }` for the steps from `first` to `last` (down from
    /// `first` in the backward pass), the body written once from `first`'s code.
    fn rolled_loop(&mut self, first: &Iteration, last: &Iteration, snap: &Snapshot) {
        let (Some(a), Some(b)) = (first.tag, last.tag) else {
            return;
        };
        let at = self.stmts.len();
        self.trial(first);
        let body: Vec<TokenStream> = self.stmts.drain(at..).collect();
        let body = quote!(#(#body)*);
        // Values of the step live in the loop's body only: what they cached goes.
        self.helper_names.clone_from(&snap.helper_names);
        self.derived.clone_from(&snap.derived);
        self.row_exps.clone_from(&snap.row_exps);
        let info = &self.model().loops[a.lp as usize];
        let var = if mentions_ident(&body, &info.index) {
            self.namer.fresh(&format!("{}_step", info.index))
        } else {
            info.index.clone()
        };
        let body = roll::rename_ident(
            body,
            ROLL_VAR,
            &Ident::new(&var, proc_macro2::Span::call_site()),
        );
        let (lo, hi) = (a.index.min(b.index), a.index.max(b.index));
        let (lo_ex, end_ex) = (super::usize_lit(lo), super::usize_lit(hi + 1));
        let var_id = ident(&var);
        let (range, pass) = if a.index <= b.index {
            (quote!(#lo_ex..#end_ex), "")
        } else {
            (quote!((#lo_ex..#end_ex).rev()), "backward through ")
        };
        let note = Self::comment(&format!(
            "{pass}steps {var} = {} {} {} of the loop `for {} in {}..{}` ({}), written once",
            a.index,
            if a.index <= b.index { "to" } else { "down to" },
            b.index,
            info.index,
            info.start,
            info.end,
            self.cx.location(info.header),
        ));
        let names = Self::comment(&format!(
            "(each value named by the step computing it: `_{var}` step {var}'s, `_prev` and `_next` its neighbours')"
        ));
        self.stmts
            .push(quote!(#note #names for #var_id in #range { #body }));
        self.rolled.insert(a.lp);
    }

    fn snapshot(&self) -> Snapshot {
        Snapshot {
            stmts: self.stmts.len(),
            names: self.namer.mark(),
            helper_names: self.helper_names.clone(),
            derived: self.derived.clone(),
            row_exps: self.row_exps.clone(),
            grad_locals: self.grad_locals.clone(),
            masks_written: self.masks_written.clone(),
        }
    }

    fn restore(&mut self, snap: &Snapshot) {
        self.stmts.truncate(snap.stmts);
        self.namer.rollback(snap.names);
        self.helper_names.clone_from(&snap.helper_names);
        self.derived.clone_from(&snap.derived);
        self.row_exps.clone_from(&snap.row_exps);
        self.grad_locals.clone_from(&snap.grad_locals);
        self.masks_written.clone_from(&snap.masks_written);
        self.stack_refs.clear();
    }

    /// Inside a rolled body, the name of a value of the loop: `h_prev`, `h_l` or
    /// `h_next` by its step's offset from the one written. `code`: as an identifier
    /// the body binds (a stacked buffer, a register, a local of the step alone);
    /// otherwise for the comments.
    fn rolled_name(&self, n: NodeId, code: bool) -> Option<String> {
        let roll = self.roll?;
        let (family, index) = self.cx.families.of(n)?;
        let offset = index as isize - roll.at as isize;
        if family.lp != roll.lp || !(-1..=1).contains(&offset) || family.near[1].is_empty() {
            return None;
        }
        let nameable = match self.plan.hold[n.index()] {
            Hold::Buffer => self.cx.families.stacked(n).is_some(),
            Hold::Register | Hold::Inline => true,
            Hold::Local | Hold::ArgPos => offset == 0 && !self.escapes[n.index()],
            Hold::Leaf | Hold::None | Hold::Grad(_) => false,
        };
        (nameable || !code).then(|| family.near[(offset + 1) as usize].clone())
    }

    /// Position `value` (a step's index, a row of a stack) as an expression: inside
    /// a rolled body, through the loop variable (`l`, `l - 1`, `l * 250000`).
    fn step_ex(&self, value: usize) -> Ex {
        let Some(roll) = self.roll else {
            return Ex::usize(value);
        };
        let var = Ex::ident(ROLL_VAR);
        match value.cmp(&roll.at) {
            std::cmp::Ordering::Equal => var,
            std::cmp::Ordering::Greater => Ex::add(&var, &Ex::usize(value - roll.at)),
            std::cmp::Ordering::Less => Ex::sub(&var, &Ex::usize(roll.at - value)),
        }
    }

    /// In a rolled body, the position of a slice `x[at]` of the step being written
    /// (`b[l]` read element by element), through the loop variable: each step's
    /// text then reads its own slice, as the products' `w[l]` do, and the steps
    /// can roll. Any other slice keeps its number (and a step whose number differs
    /// from the others' stays written out: the texts decide).
    fn step_slice(&self, axis: usize, start: usize, len: usize) -> Option<Ix> {
        let roll = self.roll?;
        (axis == 0 && len == 1 && start == roll.at).then(|| {
            let at = self.step_ex(start);
            Ix::Expr(at.at(super::expr::Prec::Atom).to_string())
        })
    }

    /// The bindings of the stacked loop values referred to since the last ones:
    /// `let [h_prev, h_l] = rt::steps_mut(&mut *h_steps, n * 500, [l - 1, l]);`.
    pub fn stack_bindings(&mut self) -> Vec<TokenStream> {
        let families = &self.cx.families;
        let mut by_family: BTreeMap<usize, Vec<NodeId>> = BTreeMap::new();
        for n in std::mem::take(&mut self.stack_refs) {
            if let Some(f) = families.stacked(n) {
                by_family.entry(f).or_default().push(n);
            }
        }
        let mut out = vec![];
        for (f, nodes) in by_family {
            let family = &families.list[f];
            let start = self.model().loops[family.lp as usize].start;
            let stack = ident(&family.stack);
            let names: Vec<TokenStream> = nodes.iter().map(|n| ident(&self.name(*n))).collect();
            let at: Vec<Ex> = nodes
                .iter()
                .filter_map(|n| families.of(*n))
                .map(|(_, index)| self.step_ex(index - start))
                .collect();
            let len = self.len(self.shape(nodes[0]));
            out.push(quote!(let [#(#names),*] = rt::steps_mut(&mut *#stack, #len, [#(#at),*]);));
        }
        out
    }

    // ---- sizes and indices ----------------------------------------------------

    /// A dim's size as a `usize` expression.
    pub fn size(&mut self, d: Dim) -> Ex {
        match d {
            Dim::Fixed(n) => Ex::usize(n),
            Dim::Var(v) => {
                self.uses.dims.insert(v.0);
                Ex::ident(&self.cx.names.dim[v.0 as usize])
            }
        }
    }

    /// The number of elements of a shape.
    pub fn len(&mut self, shape: &[Dim]) -> Ex {
        let fixed = nnc_ir::fixed_elements(shape);
        let mut acc: Option<Ex> = None;
        for d in shape {
            if let Dim::Var(_) = d {
                let s = self.size(*d);
                acc = Some(match acc {
                    Some(a) => Ex::mul(&a, &s),
                    None => s,
                });
            }
        }
        match (acc, fixed) {
            (None, f) => Ex::usize(f),
            (Some(a), 1) => a,
            (Some(a), f) => Ex::mul(&a, &Ex::usize(f)),
        }
    }

    fn ix(&mut self, i: &Ix) -> Ex {
        match i {
            Ix::Zero => Ex::usize(0),
            Ix::Const(c) => Ex::usize(*c),
            Ix::Var(d) => Ex::ident(LOOP[*d]),
            Ix::Gather(n, idx) => self.index_val(*n, idx),
            Ix::Shift(of, by) => {
                let e = self.ix(of);
                Ex::add(&e, &Ex::usize(*by))
            }
            Ix::Clamp { of, lo, last } => {
                let e = self.ix(of);
                let receiver = e.at(super::expr::Prec::Atom);
                let (lo_e, last) = (Ex::usize(*lo), Ex::usize(*last));
                if *lo == 0 {
                    Ex::atom(quote!(#receiver.min(#last)))
                } else {
                    let clamped = Ex::atom(quote!(#receiver.clamp(#lo_e, #last)));
                    Ex::sub(&clamped, &lo_e)
                }
            }
            Ix::Expr(s) => Ex::atom(TokenStream::from_str(s).unwrap_or_else(|_| quote!(0))),
        }
    }

    /// Index `i` moved `by` positions along its axis.
    fn shifted(i: &Ix, by: usize) -> Ix {
        match i.known() {
            _ if by == 0 => i.clone(),
            Some(c) => Ix::Const(c + by),
            None => Ix::Shift(Box::new(i.clone()), by),
        }
    }

    /// The row-major position of `idx` in an array of `shape` (size-1 axes skipped).
    /// Positions known now are folded: `x[:, 2]` of a `[N, 3, 4]` reads
    /// `x[i * 12 + 8 + j]`, never `2 * 4`.
    fn flat(&mut self, shape: &[Dim], idx: &[Ix]) -> Ex {
        // The position so far: a number while every index has been one.
        enum Pos {
            Known(usize),
            Expr(Ex),
        }
        let mut acc: Option<Pos> = None;
        for (k, d) in shape.iter().enumerate() {
            if unit(*d) {
                continue;
            }
            acc = acc.map(|a| match (a, *d) {
                (Pos::Known(0), _) => Pos::Known(0),
                (Pos::Known(c), Dim::Fixed(n)) => Pos::Known(c * n),
                (Pos::Known(1), d) => Pos::Expr(self.size(d)),
                (Pos::Known(c), d) => Pos::Expr(Ex::mul(&Ex::usize(c), &self.size(d))),
                (Pos::Expr(e), d) => Pos::Expr(Ex::mul(&e, &self.size(d))),
            });
            let i = idx.get(k).cloned().unwrap_or(Ix::Zero);
            acc = match (acc, i.known()) {
                (acc, Some(0)) => acc,
                (None, Some(c)) => Some(Pos::Known(c)),
                (Some(Pos::Known(a)), Some(c)) => Some(Pos::Known(a + c)),
                (Some(Pos::Expr(e)), Some(c)) => Some(Pos::Expr(Ex::add(&e, &Ex::usize(c)))),
                (None | Some(Pos::Known(0)), None) => Some(Pos::Expr(self.ix(&i))),
                (Some(Pos::Known(a)), None) => {
                    Some(Pos::Expr(Ex::add(&Ex::usize(a), &self.ix(&i))))
                }
                (Some(Pos::Expr(e)), None) => Some(Pos::Expr(Ex::add(&e, &self.ix(&i)))),
            };
        }
        match acc {
            None => Ex::usize(0),
            Some(Pos::Known(c)) => Ex::usize(c),
            Some(Pos::Expr(e)) => e,
        }
    }

    /// An operand's index under numpy broadcasting into a value of `to` at `idx`.
    fn bcast(from: &[Dim], to: &[Dim], idx: &[Ix]) -> Vec<Ix> {
        let off = to.len().saturating_sub(from.len());
        (0..from.len())
            .map(|k| {
                if unit(from[k]) {
                    Ix::Zero
                } else {
                    idx.get(k + off).cloned().unwrap_or(Ix::Zero)
                }
            })
            .collect()
    }

    fn canon(axes: &[Option<usize>]) -> Vec<Ix> {
        axes.iter().map(|a| a.map_or(Ix::Zero, Ix::Var)).collect()
    }

    // ---- reading values -------------------------------------------------------

    /// Element `idx` of array `array` (a slice local) of `shape`: through a row
    /// slice when the current pass walks the array's last axis.
    fn access(&mut self, array: &str, shape: &[Dim], idx: &[Ix], write: bool) -> Ex {
        if let Some(e) = self.row_access(array, shape, idx, write) {
            return e;
        }
        if let Some(e) = self.through_bound_row(array, shape, idx, write) {
            return e;
        }
        if let Some(state) = &mut self.nest {
            state.reached.push((array.to_string(), None));
            state.writes_elementwise |= write;
        }
        let at = self.flat(shape, idx);
        let name = ident(array);
        Ex::atom(quote!(#name[#at]))
    }

    /// A read of the current row of an array an earlier pass bound as a row slice,
    /// at a column the pass does not walk (`pick`'s gathered column): through that
    /// slice (`v0_row[l0[i]]`), since the array itself is mutably borrowed by it.
    fn through_bound_row(
        &mut self,
        array: &str,
        shape: &[Dim],
        idx: &[Ix],
        write: bool,
    ) -> Option<Ex> {
        if write {
            return None;
        }
        let last = (0..shape.len()).rev().find(|k| !unit(shape[*k]))?;
        let mut base_idx = idx.to_vec();
        base_idx[last] = Ix::Zero;
        let key = self.flat(shape, &base_idx).ts.to_string();
        let local = self
            .nest
            .as_ref()?
            .bound
            .iter()
            .find(|s| s.array == array && s.base == key)?
            .local
            .clone();
        let at = self.flat(&shape[last..=last], &idx[last..=last]);
        self.nest
            .as_mut()?
            .reached
            .push((array.to_string(), Some(local.clone())));
        let local = ident(&local);
        Some(Ex::atom(quote!(#local[#at])))
    }

    fn row_access(&mut self, array: &str, shape: &[Dim], idx: &[Ix], write: bool) -> Option<Ex> {
        let state = self.nest.as_ref()?;
        let Slot::Pass(_) = state.cur else {
            return None;
        };
        let r = state.nest.r;
        let last = (0..shape.len()).rev().find(|k| !unit(shape[*k]))?;
        if idx.get(last) != Some(&Ix::Var(r)) {
            return None;
        }
        if idx
            .iter()
            .enumerate()
            .any(|(k, i)| k != last && i.mentions(r))
        {
            return None;
        }
        let mut base_idx = idx.to_vec();
        base_idx[last] = Ix::Zero;
        let base = self.flat(shape, &base_idx);
        let key = base.ts.to_string();
        let j = ident(LOOP[r]);
        let earlier = self
            .nest
            .as_ref()?
            .bound
            .iter()
            .find(|s| s.array == array && s.base == key && (s.mutable || !write));
        if let Some(s) = earlier {
            let local = s.local.clone();
            self.nest
                .as_mut()?
                .reached
                .push((array.to_string(), Some(local.clone())));
            let local = ident(&local);
            return Some(Ex::atom(quote!(#local[#j])));
        }
        let existing = self
            .nest
            .as_ref()?
            .slices
            .iter()
            .position(|s| s.array == array && s.base == key);
        let local = match existing {
            Some(k) => {
                let slices = &mut self.nest.as_mut()?.slices;
                slices[k].mutable |= write;
                slices[k].local.clone()
            }
            None => {
                let len = self.size(shape[last]);
                let wanted = format!("{}_row", array.trim_start_matches("r#"));
                let in_nest = {
                    let st = self.nest.as_ref()?;
                    st.slices.iter().chain(&st.bound).any(|s| s.local == wanted)
                };
                let free =
                    !in_nest && (self.row_names.contains(&wanted) || !self.namer.is_used(&wanted));
                let local = if free {
                    self.namer.fresh(&wanted);
                    wanted
                } else {
                    self.namer.fresh(&wanted)
                };
                self.row_names.insert(local.clone());
                self.nest.as_mut()?.slices.push(RowSlice {
                    array: array.to_string(),
                    base: key,
                    base_ex: base,
                    len,
                    local: local.clone(),
                    mutable: write,
                });
                local
            }
        };
        self.nest
            .as_mut()?
            .reached
            .push((array.to_string(), Some(local.clone())));
        let local = ident(&local);
        Some(Ex::atom(quote!(#local[#j])))
    }

    /// The local naming a parameter's or input's elements (a slice, or the value of
    /// a scalar).
    fn leaf_read(&mut self, n: NodeId, idx: &[Ix]) -> Ex {
        let shape = self.shape(n);
        if shape.is_empty() {
            self.uses.leaf_scalars.insert(n);
            return Ex::ident(&self.name(n));
        }
        self.uses.leaf_slices.insert(n);
        let name = self.name(n);
        self.access(&name, shape, idx, false)
    }

    /// The slice local of a stored value.
    pub fn slice_name(&mut self, n: NodeId) -> String {
        match self.plan.hold[n.index()] {
            Hold::Grad(k) => {
                self.uses.grads.insert(k);
                self.name(n).to_string()
            }
            _ => {
                if let Some(f) = self.cx.families.stacked(n) {
                    // A loop value in its family's stack: bound before the step.
                    self.stack_refs.insert(n);
                    self.uses.stacks.insert(f);
                } else {
                    self.uses.buffers.insert(n);
                }
                self.name(n)
            }
        }
    }

    /// The slice local of gradient position `k` (its node's own, or a fresh one).
    pub fn grad_local(&mut self, k: usize) -> String {
        self.uses.grads.insert(k);
        let node = self.model().grads[k].1;
        if self.plan.hold[node.index()] == Hold::Grad(k) {
            return self.name(node).to_string();
        }
        if let Some(s) = self.grad_locals.get(&k) {
            return s.clone();
        }
        let s = self.namer.fresh(&format!(
            "d_{}",
            self.model().grad_name(self.model().grads[k].0)
        ));
        self.grad_locals.insert(k, s.clone());
        s
    }

    pub fn grad_locals(&self) -> &HashMap<usize, String> {
        &self.grad_locals
    }

    fn buffer_read(&mut self, n: NodeId, idx: &[Ix]) -> Ex {
        let name = self.slice_name(n);
        self.access(&name, self.shape(n), idx, false)
    }

    /// Where a stored value's element is written.
    fn place(&mut self, n: NodeId, idx: &[Ix]) -> Ex {
        let name = self.slice_name(n);
        self.access(&name, self.shape(n), idx, true)
    }

    /// The member record of `n` if it belongs to the nest being emitted.
    fn current_member(&self, n: NodeId) -> Option<Member> {
        let state = self.nest.as_ref()?;
        Some(state.nest.members[*state.member_at.get(&n)?].clone())
    }

    /// The value of node `n` at `idx`. `inline`: write its computation out in full
    /// (no `let`s), for one-off positions such as a picked column.
    ///
    /// A value is computed from its operands' values, recursively: one level per
    /// link of a chain (`let a1 = a0 + x; ... let a9999 = a9998 + x;` in one loop is
    /// 10 000 levels). Past a red zone the stack grows on the heap instead of
    /// overflowing, as rustc does for deep expressions; what is emitted stays flat,
    /// one `let` per value.
    pub fn val(&mut self, n: NodeId, idx: &[Ix], inline: bool) -> Ex {
        const RED_ZONE: usize = 256 * 1024;
        const NEW_SEGMENT: usize = 4 * 1024 * 1024;
        stacker::maybe_grow(RED_ZONE, NEW_SEGMENT, || self.val_here(n, idx, inline))
    }

    fn val_here(&mut self, n: NodeId, idx: &[Ix], inline: bool) -> Ex {
        match self.plan.hold[n.index()] {
            Hold::Leaf => self.leaf_read(n, idx),
            Hold::Inline
                if !inline && self.nest.is_some() && is_arithmetic(&self.model().node(n).op) =>
            {
                self.remat_val(n, idx)
            }
            Hold::Inline => self.view_val(n, idx, inline),
            Hold::ArgPos => {
                let pos = Ex::ident(&self.arg_pos_name(n));
                let at = self.flat(self.shape(n), idx);
                Ex::call(quote!(F::from), &[Ex::cmp(&at, quote!(==), &pos)])
            }
            Hold::Local | Hold::Buffer | Hold::Grad(_) | Hold::Register | Hold::None => {
                match self.current_member(n) {
                    Some(m) if m.level != Level::Nest => self.member_val(&m, idx, inline),
                    _ if self.plan.hold[n.index()] == Hold::Local => Ex::ident(&self.name(n)),
                    _ => self.buffer_read(n, idx),
                }
            }
        }
    }

    /// A recomputed value (see `plan::Kinds::rematerialised`): a `let` in the pass
    /// (or row) that needs it, like a member's.
    fn remat_val(&mut self, n: NodeId, idx: &[Ix]) -> Ex {
        self.remat_with(n, idx, false)
    }

    /// [`Body::remat_val`], its operands read `inline` (recomputed where they are
    /// members of the nest).
    fn remat_with(&mut self, n: NodeId, idx: &[Ix], inline: bool) -> Ex {
        let key = (n, idx.to_vec());
        let state = self.nest.as_ref();
        let in_pass = state.is_some_and(|s| {
            matches!(s.cur, Slot::Pass(_)) && idx.iter().any(|i| i.mentions(s.nest.r))
        });
        let cached = state
            .and_then(|s| {
                if in_pass {
                    s.remat_pass.get(&key)
                } else {
                    s.remat_row.get(&key)
                }
            })
            .cloned();
        if let Some(e) = cached {
            return e;
        }
        let e = self.compute(n, idx, inline);
        if is_name(&e) {
            return e;
        }
        let taken = self.nest.as_ref().is_some_and(|s| {
            let name = self.name(n);
            let used = |m: &HashMap<(NodeId, Vec<Ix>), Ex>| {
                m.iter()
                    .any(|((k, _), v)| *k == n && v.ts.to_string() == name)
            };
            // A row's bindings are in scope inside its passes: a name bound at row
            // level (the value at another position) must not be shadowed by the
            // pass's binding, which may be read where the row's one was meant.
            used(&s.remat_pass) || used(&s.remat_row)
        });
        // A value recomputed at another position never takes the node's own name:
        // the node's value at its own position may be bound under it in this scope.
        let local = if taken || inline {
            self.namer.fresh(&self.name(n))
        } else {
            self.name(n).to_string()
        };
        let note = self.note(n);
        let id = ident(&local);
        let level = if in_pass { Level::Pass } else { Level::Row };
        self.push(level, quote!(#note let #id = #e;));
        let v = Ex::ident(&local);
        if let Some(s) = &mut self.nest {
            if in_pass {
                s.remat_pass.insert(key, v.clone())
            } else {
                s.remat_row.insert(key, v.clone())
            };
        }
        v
    }

    /// An index tensor's element (a `usize`).
    fn index_val(&mut self, n: NodeId, idx: &[Ix]) -> Ex {
        let node = self.model().node(n);
        match (&node.op, self.plan.hold[n.index()]) {
            (_, Hold::Leaf) => self.leaf_read(n, idx),
            (Op::Reshape | Op::Broadcast, _) => {
                let src = node.args[0];
                let sidx = self.view_operand_idx(n, idx);
                self.index_val(src, &sidx)
            }
            (Op::ArgMax { .. }, Hold::Inline) => Ex::usize(0),
            _ => self.val(n, idx, false),
        }
    }

    /// The operand index of a broadcast or reshape.
    fn view_operand_idx(&mut self, n: NodeId, idx: &[Ix]) -> Vec<Ix> {
        let node = self.model().node(n);
        let src = node.args[0];
        let (from, to) = (self.shape(src), &node.ty.shape);
        match node.op {
            Op::Reshape => match unit_reshape(from, to) {
                Some(map) => {
                    let mut out = vec![Ix::Zero; from.len()];
                    for (k, m) in map.iter().enumerate() {
                        if let Some(s) = m {
                            out[*s] = idx.get(k).cloned().unwrap_or(Ix::Zero);
                        }
                    }
                    out
                }
                None => {
                    // A general reshape: through the row-major position.
                    let flat = self.flat(to, idx);
                    let mut out = vec![];
                    let mut stride: Vec<Dim> = vec![];
                    for k in (0..from.len()).rev() {
                        let mut e = flat.clone();
                        if !stride.is_empty() {
                            let s = self.len(&stride);
                            e = Ex::div(&e, &s);
                        }
                        if k > 0 {
                            let d = self.size(from[k]);
                            e = Ex::binary(&e, quote!(%), &d, super::expr::Prec::Mul);
                        }
                        out.push(if unit(from[k]) {
                            Ix::Zero
                        } else {
                            Ix::Expr(e.at(super::expr::Prec::Atom).to_string())
                        });
                        stride.push(from[k]);
                    }
                    out.reverse();
                    out
                }
            },
            _ => Self::bcast(from, to, idx),
        }
    }

    /// Inline nodes: index arithmetic.
    fn view_val(&mut self, n: NodeId, idx: &[Ix], inline: bool) -> Ex {
        let node = self.model().node(n);
        let dtype = self.model().dtype;
        match &node.op {
            Op::Const(c) => constant(*c, dtype),
            Op::DimSize(d) => match self.model().dims[d.0 as usize].size {
                Some(v) => constant(v as f64, dtype),
                None => self.size(Dim::Var(*d)).cast_f(),
            },
            Op::Broadcast | Op::Reshape => {
                let sidx = self.view_operand_idx(n, idx);
                self.val(node.args[0], &sidx, inline)
            }
            Op::Transpose => {
                let mut t = idx.to_vec();
                t.reverse();
                self.val(node.args[0], &t, inline)
            }
            Op::Slice { axis, start, len } => {
                // `x[.., start + i, ..]`
                let mut sidx = idx.to_vec();
                sidx[*axis] = match self.step_slice(*axis, *start, *len) {
                    Some(at) => at,
                    None => Self::shifted(&idx[*axis], *start),
                };
                self.val(node.args[0], &sidx, inline)
            }
            Op::Pad { axis, start, size } => {
                // `x[.., i - start, ..]` where `start <= i < start + len`, else zero. The
                // read is clamped into `x` as well: it may be hoisted out of the `if`.
                let len = match self.shape(node.args[0])[*axis] {
                    Dim::Fixed(len) => len,
                    Dim::Var(_) => 1,
                };
                let (axis, start) = (*axis, *start);
                if *size == 1 {
                    // One position, the operand's own.
                    return self.val(node.args[0], idx, inline);
                }
                let (lo, hi, last) = (start, start + len, start + len - 1);
                let mut sidx = idx.to_vec();
                if let Some(c) = idx[axis].known() {
                    // A position known now: inside the operand or not, decided here.
                    if !(lo..hi).contains(&c) {
                        return self.zero();
                    }
                    sidx[axis] = Ix::Const(c - lo);
                    return self.val(node.args[0], &sidx, inline);
                }
                sidx[axis] = if len == 1 {
                    Ix::Zero
                } else {
                    Ix::Clamp {
                        of: Box::new(idx[axis].clone()),
                        lo,
                        last,
                    }
                };
                let x = self.val(node.args[0], &sidx, inline);
                let i = self.ix(&idx[axis]).at(super::expr::Prec::Atom);
                let (lo, hi) = (Ex::usize(lo), Ex::usize(hi));
                let inside = Ex::atom(quote!((#lo..#hi).contains(&#i)));
                Ex::if_else(&inside, &x, &self.zero())
            }
            Op::OneHot { .. } => {
                let rank = idx.len();
                let class = self.index_val(node.args[0], &idx[..rank.saturating_sub(1)]);
                let at = self.ix(&idx[rank - 1]);
                Ex::call(quote!(F::from), &[Ex::cmp(&class, quote!(==), &at)])
            }
            Op::Reduce {
                axis: Some(a),
                keepdims,
                ..
            } => {
                let mut sidx = idx.to_vec();
                if *keepdims {
                    sidx[*a] = Ix::Zero;
                } else {
                    sidx.insert(*a, Ix::Zero);
                }
                self.val(node.args[0], &sidx, inline)
            }
            Op::Pick { .. } => self.val(node.args[0], &[idx[0].clone(), Ix::Zero], inline),
            Op::Softmax { .. } | Op::ExtremumMask { .. } => self.one(),
            Op::LogSoftmax { .. } => self.zero(),
            Op::ArgMax { .. } => Ex::usize(0),
            // Not inline ops; kept total.
            _ => self.compute(n, idx, true),
        }
    }

    fn one(&self) -> Ex {
        constant(1.0, self.model().dtype)
    }

    fn zero(&self) -> Ex {
        constant(0.0, self.model().dtype)
    }

    fn stored_before(&self, m: &Member) -> bool {
        let cur = self.nest.as_ref().map_or(Slot::Row(0), |s| s.cur);
        m.store && m.slot.pos() < cur.pos()
    }

    /// A member of the nest being emitted, at `idx`.
    fn member_val(&mut self, m: &Member, idx: &[Ix], inline: bool) -> Ex {
        let n = m.node;
        let canonical = Self::canon(&m.axes);
        if inline || idx != canonical.as_slice() {
            if self.stored_before(m) {
                return self.buffer_read(n, idx);
            }
            // Recomputed at another position (a pick's gathered column): bound to a
            // `let` like a rematerialised value, so a value read twice there is
            // computed once (`t6 = t5 + t5` ten levels deep is ten lets, not 2^10
            // terms).
            if is_arithmetic(&self.model().node(n).op) {
                return self.remat_with(n, idx, true);
            }
            return self.compute(n, idx, true);
        }
        let cached = self.nest.as_ref().and_then(|s| match m.level {
            Level::Pass => s.pass_cache.get(&n).cloned(),
            _ => s.row_cache.get(&n).cloned(),
        });
        if let Some(e) = cached {
            return e;
        }
        if self.stored_before(m) {
            let e = self.buffer_read(n, idx);
            self.cache(m.level, n, e.clone());
            return e;
        }
        let e = self.compute(n, idx, false);
        let cur = self.nest.as_ref().map_or(Slot::Row(0), |s| s.cur);
        if m.store && m.slot == cur {
            // Stored where it is computed; later uses read it back.
            let note = self.note(n);
            let target = self.place(n, idx);
            self.push(m.level, quote!(#note #target = #e;));
            self.cache(m.level, n, target.clone());
            return target;
        }
        if is_name(&e) {
            // Already a name (a running sum, say).
            self.cache(m.level, n, e.clone());
            return e;
        }
        let local = if m.store {
            self.namer.fresh(&format!("{}_v", self.name(n)))
        } else {
            self.name(n).to_string()
        };
        let note = self.note(n);
        let id = ident(&local);
        self.push(m.level, quote!(#note let #id = #e;));
        let v = Ex::ident(&local);
        self.cache(m.level, n, v.clone());
        v
    }

    fn cache(&mut self, level: Level, n: NodeId, e: Ex) {
        if let Some(s) = &mut self.nest {
            match level {
                Level::Pass => s.pass_cache.insert(n, e),
                _ => s.row_cache.insert(n, e),
            };
        }
    }

    fn push(&mut self, level: Level, ts: TokenStream) {
        match &mut self.nest {
            Some(s) if level == Level::Pass => s.pass.push(ts),
            Some(s) => {
                s.par_row.push(ts.clone());
                s.row.push(ts)
            }
            None => self.stmts.push(ts),
        }
    }

    /// A node's defining expression at `idx`.
    fn compute(&mut self, n: NodeId, idx: &[Ix], inline: bool) -> Ex {
        let model = self.model();
        if crate::plan::trivial_axis_op(model, n) {
            // Along a size-1 axis: what the inline form computes (0 for argmax, 1 for
            // softmax, the element itself for a reduction).
            return self.view_val(n, idx, inline);
        }
        let dtype = model.dtype;
        let node = model.node(n);
        let shape = &node.ty.shape;
        let arg = |b: &mut Body<'_>, i: usize| {
            let a = node.args[i];
            let aidx = Self::bcast(b.shape(a), shape, idx);
            b.val(a, &aidx, inline)
        };
        if self.plan.kind[n.index()] == Kind::GemmAcc
            && let Some((p, _)) = self.plan.gemm_acc[n.index()]
        {
            let pidx = Self::bcast(self.shape(p), shape, idx);
            return self.val(p, &pidx, inline);
        }
        match &node.op {
            // `exp(log_softmax(x))` is the softmax: the row's kept exps over their sum.
            Op::Unary(UnaryOp::Exp)
                if self.row_exps.contains_key(&node.args[0])
                    && let Op::LogSoftmax { axis } = model.node(node.args[0]).op =>
            {
                self.kept_exp_over_sum(node.args[0], &idx[axis])
            }
            Op::Unary(u) => {
                let x = arg(self, 0);
                match u {
                    UnaryOp::Neg => Ex::neg(&x),
                    UnaryOp::Exp => x.method(dtype, "exp", &[]),
                    UnaryOp::Log => x.method(dtype, "ln", &[]),
                    UnaryOp::Sqrt => x.method(dtype, "sqrt", &[]),
                    UnaryOp::Abs => x.method(dtype, "abs", &[]),
                    // f32: the branch-free `rt::tanh`, so the loop vectorises (glibc's
                    // `tanhf` does not); f64 keeps libm's.
                    UnaryOp::Tanh if matches!(dtype, DType::F32) => {
                        Ex::generic_call(quote!(rt::tanh), &[x], dtype)
                    }
                    UnaryOp::Tanh => x.method(dtype, "tanh", &[]),
                    UnaryOp::Sigmoid => Ex::generic_call(quote!(rt::sigmoid), &[x], dtype),
                    UnaryOp::Softplus => Ex::generic_call(quote!(rt::softplus), &[x], dtype),
                }
            }
            Op::Powf(c) => {
                let x = arg(self, 0);
                if c.fract() == 0.0 && c.abs() <= 16.0 {
                    x.method(
                        dtype,
                        "powi",
                        &[Ex::atom(
                            TokenStream::from_str(&format!("{}", *c as i32)).unwrap_or_default(),
                        )],
                    )
                } else {
                    x.method(dtype, "powf", &[constant(*c, dtype)])
                }
            }
            Op::Binary(b) => {
                let (x, y) = (arg(self, 0), arg(self, 1));
                match b {
                    BinaryOp::Add => Ex::add(&x, &y),
                    BinaryOp::Sub => Ex::sub(&x, &y),
                    BinaryOp::Mul => Ex::mul(&x, &y),
                    BinaryOp::Div => Ex::div(&x, &y),
                    BinaryOp::Max => Ex::generic_call(quote!(rt::max), &[x, y], dtype),
                    BinaryOp::Min => Ex::generic_call(quote!(rt::min), &[x, y], dtype),
                }
            }
            Op::Compare(c) => {
                let (x, y) = (arg(self, 0), arg(self, 1));
                let op = match c {
                    CmpOp::Gt => quote!(>),
                    CmpOp::Ge => quote!(>=),
                    CmpOp::Lt => quote!(<),
                    CmpOp::Le => quote!(<=),
                };
                Ex::call(quote!(F::from), &[Ex::cmp(&x, op, &y)])
            }
            Op::Select => {
                let c = arg(self, 0);
                let (x, y) = (arg(self, 1), arg(self, 2));
                Ex::if_else(&Ex::cmp(&c, quote!(!=), &self.zero()), &x, &y)
            }
            Op::Input(_) | Op::Param(_) => self.leaf_read(n, idx),
            Op::Const(_)
            | Op::DimSize(_)
            | Op::Broadcast
            | Op::Reshape
            | Op::Transpose
            | Op::Slice { .. }
            | Op::Pad { .. }
            | Op::OneHot { .. } => self.view_val(n, idx, inline),
            _ if self.plan.kind[n.index()] == Kind::Inline => self.view_val(n, idx, inline),
            Op::Softmax { axis } if self.row_exps.contains_key(&n) => {
                self.kept_exp_over_sum(n, &idx[*axis])
            }
            Op::Softmax { .. } | Op::LogSoftmax { .. } => {
                let x = self.val(node.args[0], idx, inline);
                let shift = self.derived(n, "shift");
                if matches!(node.op, Op::Softmax { .. }) {
                    let sum = self.helper_ex(n, HelperKind::SumExp);
                    let e = Ex::sub(&x, &shift).method(dtype, "exp", &[]);
                    Ex::div(&e, &sum)
                } else {
                    let log_sum = self.derived(n, "log_sum");
                    Ex::sub(&Ex::sub(&x, &shift), &log_sum)
                }
            }
            Op::ExtremumMask { op, axis: Some(a) } => {
                let kind = if *op == ReduceOp::Min {
                    HelperKind::ArgMin
                } else {
                    HelperKind::ArgMax
                };
                let arg_ix = self.helper_arg(n, kind);
                let at = self.ix(&idx[*a]);
                Ex::if_else(
                    &Ex::cmp(&at, quote!(==), &arg_ix),
                    &self.one(),
                    &self.zero(),
                )
            }
            Op::ArgMax { .. } => self.helper_arg(n, HelperKind::ArgMax),
            Op::Reduce { op, .. } => match op {
                ReduceOp::Sum => self.helper_ex(n, HelperKind::Sum),
                ReduceOp::Max => self.helper_ex(n, HelperKind::Max),
                ReduceOp::Min => self.helper_ex(n, HelperKind::Min),
                ReduceOp::LogSumExp => {
                    let m = self.helper_ex(n, HelperKind::Max);
                    let s = self.helper_ex(n, HelperKind::SumExp);
                    let finite = m.method(dtype, "is_finite", &[]);
                    let lse = Ex::add(&m, &s.method(dtype, "ln", &[]));
                    Ex::if_else(&finite, &lse, &m)
                }
            },
            Op::Pick { .. } => {
                let x = node.args[0];
                let labels = node.args[1];
                let col = Ix::Gather(labels, vec![idx[0].clone()]);
                self.val(x, &[idx[0].clone(), col], true)
            }
            Op::MatMul => self.helper_ex(n, HelperKind::Sum),
            Op::ExtremumMask { axis: None, .. } => self.val(n, idx, inline),
        }
    }

    /// The length of the row of a (log-)softmax owning a sum of exps in the current
    /// nest, when its exps are worth keeping: a fixed row of at most [`ROW_EXPS`]
    /// along the nest's inner axis. Its value, or `exp` of it, then reads them
    /// instead of calling `exp` a second time (W2's log-softmax: 6 calls per row
    /// became 3, and its step 0.035 -> 0.029 ms).
    fn row_exps_len(&self, owner: NodeId) -> Option<usize> {
        let nest = &self.nest.as_ref()?.nest;
        let (Op::Softmax { axis } | Op::LogSoftmax { axis }) = self.model().node(owner).op else {
            return None;
        };
        match (self.shape(owner)[axis], nest.domain[nest.r]) {
            (Dim::Fixed(a), Dim::Fixed(b)) if a == b && a <= ROW_EXPS => Some(a),
            _ => None,
        }
    }

    /// `exps[j] / sum` for the (log-)softmax `owner` whose row's exps are kept.
    fn kept_exp_over_sum(&mut self, owner: NodeId, at: &Ix) -> Ex {
        let exps = self.row_exps[&owner].clone();
        let j = self.ix(at);
        let exps = ident(&exps);
        let e = Ex::atom(quote!(#exps[#j]));
        Ex::div(&e, &self.helper_ex(owner, HelperKind::SumExp))
    }

    /// A row value derived from helpers: a softmax's shift (its row maximum, or 0 for
    /// a row without a finite maximum) and the log of its sum.
    fn derived(&mut self, owner: NodeId, what: &'static str) -> Ex {
        if let Some(s) = self.derived.get(&(owner, what)) {
            return Ex::ident(s);
        }
        let dtype = self.model().dtype;
        let local = self.namer.fresh(&format!("{}_{what}", self.name(owner)));
        let owner_name = self.display(owner);
        let (e, note) = match what {
            "shift" => {
                let m = self.helper_ex(owner, HelperKind::Max);
                (
                    Ex::if_else(&m.method(dtype, "is_finite", &[]), &m, &self.zero()),
                    format!(
                        "{owner_name}: subtract the row's max (if finite) so exp cannot overflow"
                    ),
                )
            }
            _ => (
                self.helper_ex(owner, HelperKind::SumExp)
                    .method(dtype, "ln", &[]),
                format!("{owner_name}: log of the row's sum of exp(x - shift)"),
            ),
        };
        let id = ident(&local);
        let note = Self::comment(&note);
        self.push(Level::Row, quote!(#note let #id = #e;));
        self.derived.insert((owner, what), local.clone());
        Ex::ident(&local)
    }

    /// The local of a helper's running value. `arg`: the position of an arg-helper.
    fn helper_local(&mut self, owner: NodeId, kind: HelperKind, arg: bool) -> String {
        if let Some(s) = self.helper_names.get(&(owner, kind, arg)) {
            return s.clone();
        }
        let op = &self.model().node(owner).op;
        let stored = !matches!(self.plan.hold[owner.index()], Hold::Register | Hold::Local);
        let direct = !stored
            && match (op, kind) {
                (
                    Op::Reduce {
                        op: ReduceOp::Sum, ..
                    },
                    HelperKind::Sum,
                )
                | (
                    Op::Reduce {
                        op: ReduceOp::Max, ..
                    },
                    HelperKind::Max,
                )
                | (
                    Op::Reduce {
                        op: ReduceOp::Min, ..
                    },
                    HelperKind::Min,
                )
                | (Op::MatMul, HelperKind::Sum) => true,
                (Op::ArgMax { .. }, HelperKind::ArgMax) => arg,
                _ => false,
            };
        let base = self.name(owner);
        let s = if direct {
            base.to_string()
        } else {
            let suffix = match (kind, arg) {
                (HelperKind::Max, _) => "max",
                (HelperKind::Min, _) => "min",
                (HelperKind::Sum | HelperKind::SumExp, _) => "sum",
                (_, true) => "arg",
                (_, false) => "best",
            };
            self.namer.fresh(&format!("{base}_{suffix}"))
        };
        self.helper_names.insert((owner, kind, arg), s.clone());
        s
    }

    fn helper_ex(&mut self, owner: NodeId, kind: HelperKind) -> Ex {
        Ex::ident(&self.helper_local(owner, kind, false))
    }

    fn helper_arg(&mut self, owner: NodeId, kind: HelperKind) -> Ex {
        Ex::ident(&self.helper_local(owner, kind, true))
    }

    // ---- steps ----------------------------------------------------------------

    /// `let name = expr;` for a scalar.
    fn scalar(&mut self, n: NodeId) {
        let idx = vec![Ix::Zero; self.shape(n).len()];
        let node = self.model().node(n);
        let e = match &node.op {
            Op::Reduce { .. } => {
                let a = node.args[0];
                let aidx = vec![Ix::Zero; self.shape(a).len()];
                self.val(a, &aidx, false)
            }
            Op::MatMul => {
                let (a, b) = (
                    self.val(node.args[0], &[Ix::Zero], false),
                    self.val(node.args[1], &[Ix::Zero], false),
                );
                Ex::mul(&a, &b)
            }
            _ => self.compute(n, &idx, false),
        };
        let note = self.note(n);
        let id = ident(&self.name(n));
        self.stmts.push(quote!(#note let #id = #e;));
    }

    /// `dest.fill(value)` for a broadcast scalar that must exist as an array.
    fn fill(&mut self, n: NodeId) {
        let node = self.model().node(n);
        let src = node.args[0];
        let v = self.val(src, &vec![Ix::Zero; self.shape(src).len()], false);
        let dest = ident(&self.slice_name(n));
        let note = self.note(n);
        self.stmts.push(quote!(#note #dest.fill(#v);));
    }

    /// An ndarray view of a matmul operand: the array it reads, through `.t()` and
    /// size-1 axes.
    fn operand_view(&mut self, o: NodeId) -> TokenStream {
        let model = self.model();
        let base = gemm_base(model, o);
        // The chain of views from `o` down to `base`.
        let mut chain = vec![];
        let mut cur = o;
        while cur != base {
            chain.push(cur);
            cur = model.node(cur).args[0];
        }
        chain.reverse();
        // A matrix of a stack (`w[l]`), its slice and reshape taken together.
        if let Some(&first) = chain.first()
            && model.node(first).op != Op::Transpose
            && let Some(&matrix) = chain.get(1)
            && let Some((_, l)) = stack_matrix(model, matrix)
        {
            let mut view = self.stack_matrix_view(base, l);
            for c in &chain[2..] {
                // Only transposes follow (see `gemm_base`).
                debug_assert_eq!(model.node(*c).op, Op::Transpose);
                view = quote!(#view.reversed_axes());
            }
            return view;
        }
        let only_t = chain.iter().all(|c| model.node(*c).op == Op::Transpose) && chain.len() <= 1;
        let shape = self.shape(base);
        let mut view = match self.plan.hold[base.index()] {
            Hold::Leaf => {
                let field = self.leaf_field(base);
                match (model.node(base).op.clone(), only_t && !chain.is_empty()) {
                    // `.t()` of an array or a view is a view.
                    (_, true) => field,
                    (Op::Input(_), false) => field,
                    _ => quote!(#field.view()),
                }
            }
            // A scalar local (a one-element value computed as a scalar): a view of it
            // in place, no buffer.
            Hold::Local => {
                let id = ident(&self.name(base));
                let one = quote!(::std::slice::from_ref(&#id));
                match shape.len() {
                    2 => quote!(rt::matrix(#one, 1, 1)),
                    _ => {
                        self.uses.aview1 = true;
                        quote!(aview1(#one))
                    }
                }
            }
            _ => {
                let name = ident(&self.slice_name(base));
                match shape.len() {
                    2 => {
                        let (r, c) = (self.size(shape[0]), self.size(shape[1]));
                        quote!(rt::matrix(#name, #r, #c))
                    }
                    _ => {
                        self.uses.aview1 = true;
                        quote!(aview1(#name))
                    }
                }
            }
        };
        for c in chain {
            let node = model.node(c);
            match node.op {
                Op::Transpose if only_t && matches!(self.plan.hold[base.index()], Hold::Leaf) => {
                    view = quote!(#view.t())
                }
                Op::Transpose => view = quote!(#view.reversed_axes()),
                _ => {
                    // A reshape adding or removing size-1 axes.
                    let from = self.shape(node.args[0]);
                    let to = &node.ty.shape;
                    for k in (0..from.len()).rev().filter(|k| unit(from[*k])) {
                        let k = Ex::usize(k);
                        view = quote!(#view.index_axis_move(Axis(#k), 0));
                    }
                    for k in (0..to.len()).filter(|k| unit(to[*k])) {
                        let k = Ex::usize(k);
                        view = quote!(#view.insert_axis(Axis(#k)));
                    }
                }
            }
        }
        view
    }

    /// Matrix `l` of the stack `base` (`[L, R, C]`), as a view: of the caller's array
    /// for a parameter or input, else of the stack's buffer.
    fn stack_matrix_view(&mut self, base: NodeId, l: usize) -> TokenStream {
        let shape = self.shape(base);
        let (r, c) = (self.size(shape[1]), self.size(shape[2]));
        let at = self.step_ex(l);
        if self.plan.hold[base.index()] == Hold::Leaf {
            let field = self.leaf_field(base);
            return quote!(#field.index_axis(Axis(0), #at));
        }
        let name = ident(&self.slice_name(base));
        let matrix = self.rows_of(&name, base, l, &shape[1..]);
        quote!(rt::matrix(&#matrix, #r, #c))
    }

    /// `params.w1` or `inputs.x`.
    pub fn leaf_field(&self, n: NodeId) -> TokenStream {
        match self.model().node(n).op {
            Op::Param(p) => {
                let f = ident(&self.cx.names.param_field[p.0 as usize]);
                quote!(params.#f)
            }
            Op::Input(i) => {
                let f = ident(&self.cx.names.input_field[i.0 as usize]);
                match self.model().inputs[i.0 as usize].kind {
                    InputKind::Data => quote!(inputs.#f),
                    InputKind::State(_) => quote!(state.#f.view()),
                    InputKind::Mask { .. } => {
                        let buf = ident(&self.cx.names.node[n.index()]);
                        let ix = super::ix_of(self.shape(n), &mut |d| match d {
                            Dim::Fixed(k) => super::usize_lit(k),
                            Dim::Var(v) => {
                                let local = ident(&self.cx.names.dim[v.0 as usize]);
                                quote!(dims.#local)
                            }
                        });
                        quote!(rt::view(&ws.#buf, #ix))
                    }
                    InputKind::Training => quote!(::nnc::ndarray::aview0(&mode)),
                }
            }
            _ => quote!(()),
        }
    }

    /// The local holding the position of a first-extremum mask kept as
    /// [`Hold::ArgPos`] (the node's own name is its buffer's, when it has one).
    pub fn arg_pos_name(&self, n: NodeId) -> String {
        format!("{}_at", self.name(n))
    }

    /// `slice = mask` for a first-extremum mask `n` kept as its position: 1 there,
    /// 0 elsewhere. The one place such a mask becomes an array (a gradient
    /// returned, an operand of a product).
    pub fn write_arg_pos(&self, n: NodeId, slice: &TokenStream) -> TokenStream {
        let pos = ident(&self.arg_pos_name(n));
        quote!(for (k, d) in #slice.iter_mut().enumerate() { *d = F::from(k == #pos); })
    }

    /// A first-extremum mask kept as its position, read by a product as an array:
    /// written to its buffer before the first product that reads it.
    fn materialise_arg_pos(&mut self, operand: NodeId) {
        let base = gemm_base(self.model(), operand);
        if self.plan.hold[base.index()] != Hold::ArgPos || !self.masks_written.insert(base) {
            return;
        }
        let buffer = ident(&self.slice_name(base));
        let note = self.note(base);
        let fill = self.write_arg_pos(base, &buffer);
        self.stmts.push(quote!(#note #fill));
    }

    /// `dest (+)= a @ b` with the runtime's `matmul` on views, packing through the
    /// workspace's scratch: vectors as one-row or one-column matrices. With `rows`,
    /// the product goes to `dest`'s rows from that one on (an assembled value).
    fn gemm(&mut self, matmul: NodeId, dest: NodeId, accumulate: bool, rows: Option<usize>) {
        let node = self.model().node(matmul);
        let (a, b) = (node.args[0], node.args[1]);
        for o in [a, b] {
            self.materialise_arg_pos(o);
        }
        let mut av = self.operand_view(a);
        let mut bv = self.operand_view(b);
        let mut d = ident(&self.slice_name(dest)).into_token_stream();
        let mut dshape = self.shape(dest);
        if let Some(start) = rows {
            dshape = self.shape(matmul);
            let part = self.rows_of(&d, dest, start, dshape);
            d = quote!(&mut #part);
        }
        let mut dview = if dshape.len() == 2 {
            let (r, c) = (self.size(dshape[0]), self.size(dshape[1]));
            quote!(rt::matrix_mut(#d, #r, #c))
        } else {
            self.uses.aview_mut1 = true;
            quote!(aview_mut1(#d))
        };
        match (self.shape(a).len(), self.shape(b).len()) {
            (1, _) => {
                // [K] @ [K, N]: a row vector.
                av = quote!(#av.insert_axis(Axis(0)));
                dview = quote!(#dview.insert_axis(Axis(0)));
            }
            (_, 1) => {
                // [M, K] @ [K]: a column vector.
                bv = quote!(#bv.insert_axis(Axis(1)));
                dview = quote!(#dview.insert_axis(Axis(1)));
            }
            _ => {}
        }
        let (a_shape, b_shape) = (self.shape(a), self.shape(b));
        let product = [
            if a_shape.len() == 2 {
                a_shape[0]
            } else {
                Dim::Fixed(1)
            },
            b_shape[0],
            if b_shape.len() == 2 {
                b_shape[1]
            } else {
                Dim::Fixed(1)
            },
        ];
        if !self.uses.products.contains(&product) {
            self.uses.products.push(product);
        }
        let call = quote!(matmul(#av, #bv, #dview, #accumulate, &mut ws.gemm, &ws.threads););
        let note = if accumulate {
            self.note_gemm_acc(dest, matmul)
        } else {
            self.note(matmul)
        };
        let stmt = quote!(#note #call);
        self.last_gemm = rows.is_none().then(|| LastGemm {
            stmt: self.stmts.len(),
            text: stmt.to_string(),
            note,
            args: quote!(#av, #bv, #dview, #accumulate),
            dest: d.to_string(),
        });
        self.stmts.push(stmt);
    }

    /// An assembled value finished: the pieces that are not products (whose own
    /// steps wrote them) copied into their rows, the rows between pieces zeroed.
    fn assemble(&mut self, dest: NodeId, pieces: &[Piece]) {
        let rows = match self.shape(dest).first() {
            Some(Dim::Fixed(rows)) => *rows,
            _ => return,
        };
        let d = ident(&self.slice_name(dest));
        if let Some(f) = self.whole_stack(rows, pieces) {
            // Every step's value of a stacked family, in step order: the stack itself.
            let note = self.note(dest);
            let stack = ident(&self.cx.families.list[f].stack);
            self.uses.stacks.insert(f);
            self.stmts.push(quote!(#note #d.copy_from_slice(#stack);));
            return;
        }
        let zero = self.zero();
        let mut note = Some(self.note(dest));
        let mut next = 0;
        let gaps = pieces
            .iter()
            .map(|p| (p.start, Some(p)))
            .chain(std::iter::once((rows, None)));
        for (start, piece) in gaps {
            if next < start {
                let (a, b) = (self.row_offset(dest, next), self.row_offset(dest, start));
                let n = note.take();
                self.stmts.push(quote!(#n #d[#a..#b].fill(#zero);));
            }
            let Some(p) = piece else { break };
            next = p.start + p.rows;
            if p.product {
                continue;
            }
            let n = note.take();
            if self.plan.hold[p.value.index()] == Hold::Local {
                let at = self.row_offset(dest, p.start);
                let v = self.val(p.value, &vec![Ix::Zero; self.shape(p.value).len()], false);
                self.stmts.push(quote!(#n #d[#at] = #v;));
            } else {
                let src = ident(&self.slice_name(p.value));
                let rows = self.rows_of(&d, dest, p.start, self.shape(p.value));
                self.stmts.push(quote!(#n #rows.copy_from_slice(#src);));
            }
        }
    }

    /// The stacked family whose members, one per row in step order, are all the
    /// pieces of a value of `rows` rows (a loop's kept steps, `hs`).
    fn whole_stack(&self, rows: usize, pieces: &[Piece]) -> Option<usize> {
        let families = &self.cx.families;
        let f = families.stacked(pieces.first()?.value)?;
        let family = &families.list[f];
        let start = self.model().loops[family.lp as usize].start;
        let whole = family.members.len() == rows
            && pieces.len() == rows
            && pieces.iter().all(|p| {
                p.rows == 1
                    && !p.product
                    && self.plan.hold[p.value.index()] == Hold::Buffer
                    && families.stacked(p.value) == Some(f)
                    && families
                        .of(p.value)
                        .is_some_and(|(_, index)| index - start == p.start)
            });
        whole.then_some(f)
    }

    /// `slice[..]` restricted to the elements of a `part` (its shape) placed at row
    /// `row` of `n`, whose storage `slice` is: `slice[at..][..len]`.
    fn rows_of(
        &mut self,
        slice: &impl ToTokens,
        n: NodeId,
        row: usize,
        part: &[Dim],
    ) -> TokenStream {
        let len = self.len(part);
        if row == 0 && self.roll.is_none() {
            return quote!(#slice[..#len]);
        }
        let at = self.row_offset(n, row);
        quote!(#slice[#at..][..#len])
    }

    /// Where row `row` of `n` starts in its row-major storage (no `0 * n` or
    /// `1 * n`: clippy rejects both).
    fn row_offset(&mut self, n: NodeId, row: usize) -> Ex {
        let inner = &self.shape(n)[1..];
        if self.roll.is_some() {
            // Inside a rolled body the row is the loop variable's.
            let len = self.len(inner);
            return Ex::mul(&self.step_ex(row), &len);
        }
        if inner.iter().all(|d| matches!(d, Dim::Fixed(_))) {
            return Ex::usize(row * nnc_ir::fixed_elements(inner));
        }
        let len = self.len(inner);
        match row {
            0 => Ex::usize(0),
            1 => len,
            _ => Ex::mul(&Ex::usize(row), &len),
        }
    }

    // ---- nests ----------------------------------------------------------------

    fn nest(&mut self, nest: &Nest) {
        let dtype = self.model().dtype;
        self.row_exps.clear();
        self.nest = Some(NestState {
            nest: nest.clone(),
            member_at: (nest.members.iter().enumerate())
                .map(|(k, m)| (m.node, k))
                .collect(),
            cur: Slot::Row(0),
            row: vec![],
            pass: vec![],
            row_cache: HashMap::new(),
            pass_cache: HashMap::new(),
            slices: vec![],
            bound: vec![],
            remat_pass: HashMap::new(),
            remat_row: HashMap::new(),
            par_row: vec![],
            written: vec![],
            reached: vec![],
            writes_elementwise: false,
            column_sums: self.sums_rows_in_blocks(nest).then(Vec::new),
            blocked: None,
            stretch: nest.in_product.then(Vec::new),
        });
        let mut pre: Vec<TokenStream> = vec![];
        let mut post: Vec<TokenStream> = vec![];
        // Nest-level accumulators start before the loops.
        for m in &nest.members {
            if m.level != Level::Nest {
                continue;
            }
            let n = m.node;
            let node = self.model().node(n);
            match (&node.op, self.plan.hold[n.index()]) {
                (Op::ExtremumMask { op, .. }, _) => {
                    let best = ident(&self.helper_local(n, HelperKind::ArgMax, false));
                    let pos = ident(&self.arg_pos_name(n));
                    let init = if *op == ReduceOp::Min {
                        quote!(F::INFINITY)
                    } else {
                        quote!(F::NEG_INFINITY)
                    };
                    pre.push(quote!(let mut #best = #init; let mut #pos = 0usize;));
                }
                (Op::Reduce { op, .. }, Hold::Local) => {
                    let id = ident(&self.name(n));
                    match op {
                        ReduceOp::Sum => {
                            let z = self.zero();
                            pre.push(quote!(let mut #id = #z;));
                        }
                        ReduceOp::Max => pre.push(quote!(let mut #id = F::NEG_INFINITY;)),
                        ReduceOp::Min => pre.push(quote!(let mut #id = F::INFINITY;)),
                        ReduceOp::LogSumExp => {
                            let m = ident(&self.helper_local(n, HelperKind::Max, false));
                            let s = ident(&self.helper_local(n, HelperKind::SumExp, false));
                            let z = self.zero();
                            pre.push(quote!(let mut #m = F::NEG_INFINITY; let mut #s = #z;));
                            let one = self.one();
                            let _ = one;
                            let note = self.note(n);
                            let (me, se) = (
                                Ex::ident(&self.helper_local(n, HelperKind::Max, false)),
                                Ex::ident(&self.helper_local(n, HelperKind::SumExp, false)),
                            );
                            let lse = Ex::if_else(
                                &me.method(dtype, "is_finite", &[]),
                                &Ex::add(&me, &se.method(dtype, "ln", &[])),
                                &me,
                            );
                            post.push(quote!(#note let #id = #lse;));
                        }
                    }
                }
                _ => {
                    // A sum into an array: zeroed first.
                    let buf = ident(&self.slice_name(n));
                    let z = self.zero();
                    pre.push(quote!(#buf.fill(#z);));
                }
            }
        }
        let passes = nest.passes;
        for k in 0..=passes {
            self.set_cur(Slot::Row(k));
            for m in &nest.members {
                if m.slot == Slot::Row(k) {
                    self.task(m);
                }
            }
            if k == passes {
                break;
            }
            self.set_cur(Slot::Pass(k + 1));
            // Running values of this pass start at the row.
            for h in nest.helpers.iter().filter(|h| h.pass == k + 1) {
                self.declare_helper(h);
            }
            for m in &nest.members {
                for h in nest
                    .helpers
                    .iter()
                    .filter(|h| h.pass == k + 1 && h.owner == m.node)
                {
                    self.update_helper(h, nest);
                }
                if m.slot == Slot::Pass(k + 1) {
                    self.task(m);
                }
            }
            let (state, slices) = self
                .nest
                .as_mut()
                .map(|s| (std::mem::take(&mut s.pass), std::mem::take(&mut s.slices)))
                .unwrap_or_default();
            if !state.is_empty() {
                let var = ident(LOOP[nest.r]);
                let len = self.size(nest.domain[nest.r]);
                let binding = |s: &RowSlice| {
                    let (local, array, len) = (ident(&s.local), ident(&s.array), &s.len);
                    let row = if s.base == "0" {
                        quote!(#array[..#len])
                    } else {
                        let base = s.base_ex.at(super::expr::Prec::Add);
                        quote!(#array[#base..][..#len])
                    };
                    if s.mutable {
                        quote!(let #local = &mut #row;)
                    } else {
                        quote!(let #local = &#row;)
                    }
                };
                let bindings: Vec<TokenStream> = slices.iter().map(binding).collect();
                let shared: Vec<TokenStream> =
                    slices.iter().filter(|s| !s.mutable).map(binding).collect();
                let body = quote!(#(#state)*);
                let var = if mentions_ident(&body, LOOP[nest.r]) {
                    var
                } else {
                    quote!(_)
                };
                let sums = self.nest.as_mut().and_then(|s| s.column_sums.take());
                let sums = sums.filter(|s| !s.is_empty()).unwrap_or_default();
                // Summing in blocks implies a second axis, the rows.
                let rows = nest.outer().first().copied().unwrap_or(0);
                let writes_rows = slices.iter().any(|s| s.mutable && by_row(s, rows));
                // Values computed once per row, before the pass, stay per row.
                let per_row = self.nest.as_ref().is_some_and(|s| !s.row.is_empty());
                if !sums.is_empty() && !writes_rows && !per_row {
                    let var = ident(LOOP[nest.r]);
                    let blocked = self.rows_in_blocks(&slices, &sums, rows, &var, &len, &body);
                    if let Some(s) = &mut self.nest {
                        s.blocked = Some(blocked);
                    }
                    continue;
                }
                // A nest that also writes its rows, or computes values per row: one
                // row at a time, each sum still a local across the pass's statements.
                let (locals, targets): (Vec<TokenStream>, Vec<&Ex>) =
                    sums.iter().map(|(l, t)| (ident(l), t)).unzip();
                let body = quote!(#(let mut #locals = #targets;)* #body #(#targets = #locals;)*);
                let stretch = self.stretch_pass(nest, &slices, &body);
                if let Some(s) = &mut self.nest {
                    s.stretch = s.stretch.take().zip(stretch).map(|(mut all, pass)| {
                        all.push(pass);
                        all
                    });
                }
                let lp = quote!(#(#bindings)* for #var in 0..#len { #body });
                let par_lp = quote!(#(#shared)* for #var in 0..#len { #body });
                if let Some(s) = &mut self.nest {
                    s.row.push(lp);
                    s.par_row.push(par_lp);
                    s.written
                        .extend(slices.iter().filter(|s| s.mutable).cloned());
                    s.bound.extend(slices);
                }
            }
        }
        let Some(state) = self.nest.take() else {
            return;
        };
        if pre.is_empty()
            && post.is_empty()
            && let Some(call) = self.inside_product(nest, &state)
        {
            return self.stmts.push(call);
        }
        if let Some(lp) = self.row_loop_on_threads(nest, &state) {
            let header = self.nest_note(nest, true);
            self.stmts.push(header);
            self.stmts.extend(pre);
            self.stmts.push(lp);
            self.stmts.extend(post);
            return;
        }
        if let Some(blocked) = state.blocked {
            let header = self.nest_note(nest, false);
            self.stmts.push(header);
            self.stmts.extend(pre);
            self.stmts.push(blocked);
            self.stmts.extend(post);
            return;
        }
        let mut body: Vec<TokenStream> = state.row;
        for axis in nest.outer().into_iter().rev() {
            let inner = quote!(#(#body)*);
            let var = if mentions_ident(&inner, LOOP[axis]) {
                ident(LOOP[axis])
            } else {
                quote!(_)
            };
            let len = self.size(nest.domain[axis]);
            body = vec![quote!(for #var in 0..#len { #inner })];
        }
        let header = self.nest_note(nest, false);
        self.stmts.push(header);
        self.stmts.extend(pre);
        self.stmts.extend(body);
        self.stmts.extend(post);
    }

    /// The nest as a row loop on the workspace's threads (`rt::for_rows`), when the
    /// plan runs its rows there (see `plan::threads`). `None` when it runs as plain
    /// loops.
    fn row_loop_on_threads(&mut self, nest: &Nest, state: &NestState) -> Option<TokenStream> {
        let split = nest.rows_on_threads?;
        let (rows_of, args) = match self.rows_handed_out(nest, state) {
            Ok(handed_out) => handed_out,
            Err(why) => {
                debug_assert!(
                    why != Unsplit::Writes,
                    "the plan runs this nest's rows on threads, but it writes an array \
                     other than row by row: {}",
                    self.nest_note(nest, true)
                );
                return None;
            }
        };
        let rows = self.size(nest.domain[0]);
        let cost = split.work_per_element;
        let work = match nest.domain[1] {
            Dim::Fixed(width) => Ex::usize(width.saturating_mul(cost)),
            var if cost == 1 => self.size(var),
            var => Ex::mul(&self.size(var), &Ex::usize(cost)),
        };
        let body = &state.par_row;
        let body = quote!(#(#body)*);
        let i = if mentions_ident(&body, LOOP[0]) {
            ident(LOOP[0])
        } else {
            quote!(_)
        };
        Some(quote! {
            rt::for_rows(&ws.threads, #rows, #work, (#(#rows_of,)*), |#i, (#(#args,)*)| { #body });
        })
    }

    /// For a nest inside a product (`Nest::in_product`): the product's call, which
    /// the nest's pass joins, as `rt::matmul_then(a, b, c, accumulate, .., outputs,
    /// |i, j0, product, rows| pass)`: the GEMM hands out each stretch of a row of
    /// `C` once it is final (`product`, from column `j0`), with the same stretch of
    /// every array the nest writes. Replaces the product's statement, which must
    /// be the last one. `None` (the nest then runs after the product, as a loop of
    /// its own) when the product is not the last statement, or the pass could not
    /// be written over a stretch (see [`Body::stretch_pass`]).
    fn inside_product(&mut self, nest: &Nest, state: &NestState) -> Option<TokenStream> {
        let passes = state
            .stretch
            .as_ref()
            .filter(|p| p.len() == 1 && state.row.len() == 1)?;
        let last = self.last_gemm.as_ref()?;
        let is_last = last.stmt + 1 == self.stmts.len()
            && self.stmts.get(last.stmt).map(|s| s.to_string()) == Some(last.text.clone());
        // A rolled loop's body is its iteration's statements alone.
        let across = self.roll.is_some() && last.stmt < self.iteration_start;
        if !is_last || across || state.blocked.is_some() {
            return None;
        }
        let (rows_of, args) = self.rows_handed_out(nest, state).ok()?;
        let last = self.last_gemm.take()?;
        self.stmts.pop();
        self.last_joined = Some(last.stmt);
        let (note, gemm_args) = (last.note, last.args);
        let pass = &passes[0];
        let i = if mentions_ident(pass, LOOP[0]) {
            ident(LOOP[0])
        } else {
            quote!(_)
        };
        let j0 = if mentions_ident(pass, "j0") {
            ident("j0")
        } else {
            quote!(_)
        };
        let header = Self::comment(&format!(
            "then on each stretch of its rows, as soon as it is final: {}",
            self.nest_results(nest)
        ));
        Some(quote! {
            #note #header
            rt::matmul_then(#gemm_args, &mut ws.gemm, &ws.threads, (#(#rows_of,)*),
                |#i, #j0, product, (#(#args,)*)| { #pass });
        })
    }

    /// A pass of a nest inside a product, over the stretch `j0..j0 + product.len()`
    /// of row `i`: the row slices it reads start at `j0` (the product's own row is
    /// `product`), those it writes are handed out by the GEMM, and the loop runs
    /// over the stretch. `None` when that would not compute the same: a slice not
    /// as wide as the row, the product read other than through its row's slice, or
    /// the column index used other than to index a row slice (a position along
    /// the row computed from it).
    fn stretch_pass(
        &mut self,
        nest: &Nest,
        slices: &[RowSlice],
        body: &TokenStream,
    ) -> Option<TokenStream> {
        let in_product = self.nest.as_ref().is_some_and(|s| s.stretch.is_some());
        if !in_product || !only_indexes(body, LOOP[nest.r]) {
            return None;
        }
        let dest = self.last_gemm.as_ref()?.dest.clone();
        let width = self.size(nest.domain[nest.r]).ts.to_string();
        let row_base = Ex::mul(&Ex::ident(LOOP[0]), &self.size(nest.domain[nest.r]))
            .ts
            .to_string();
        let reached_dest = self.nest.as_ref().is_some_and(|s| {
            s.reached
                .iter()
                .any(|(array, through)| *array == dest && through.is_none())
        });
        if reached_dest {
            return None;
        }
        let mut bindings = vec![];
        for s in slices {
            if s.len.ts.to_string() != width {
                return None;
            }
            let local = ident(&s.local);
            if s.array == dest {
                if s.mutable || s.base != row_base {
                    return None;
                }
                bindings.push(quote!(let #local = product;));
            } else if !s.mutable {
                let array = ident(&s.array);
                let start = if s.base == "0" {
                    quote!(j0)
                } else {
                    let base = s.base_ex.at(super::expr::Prec::Add);
                    quote!(#base + j0)
                };
                bindings.push(quote!(let #local = &#array[#start..][..product.len()];));
            }
        }
        let var = ident(LOOP[nest.r]);
        Some(quote!(#(#bindings)* for #var in 0..product.len() { #body }))
    }

    /// The safety net under the plan's decision: every array the nest writes is
    /// written (and read) only through its one slice of row `i`, of an array of
    /// exactly the nest's rows. Then, per array, what the loop hands out
    /// (`rt::RowsMut::new(..)`) and the closure's name for its row.
    fn rows_handed_out(
        &mut self,
        nest: &Nest,
        state: &NestState,
    ) -> Result<(Vec<TokenStream>, Vec<TokenStream>), Unsplit> {
        if state.written.is_empty() || state.writes_elementwise {
            return Err(Unsplit::Writes);
        }
        let mut rows_of = vec![];
        let mut args = vec![];
        for w in &state.written {
            let row_base = Ex::mul(&Ex::ident(LOOP[0]), &w.len).ts.to_string();
            let width_matches = w.len.ts.to_string() == self.size(nest.domain[1]).ts.to_string();
            if w.base != row_base || !width_matches {
                return Err(Unsplit::Writes);
            }
            let only_this = state
                .reached
                .iter()
                .filter(|(a, _)| *a == w.array)
                .all(|(_, l)| l.as_deref() == Some(w.local.as_str()));
            if !only_this {
                return Err(Unsplit::Reads);
            }
            let (array, len) = (ident(&w.array), &w.len);
            rows_of.push(quote!(rt::RowsMut::new(&mut *#array, #len)));
            args.push(ident(&w.local));
        }
        if rows_of.len() > MAX_ROW_OUTPUTS {
            return Err(Unsplit::TooMany);
        }
        Ok((rows_of, args))
    }

    fn set_cur(&mut self, slot: Slot) {
        if let Some(s) = &mut self.nest {
            s.cur = slot;
            if let Slot::Pass(_) = slot {
                s.pass_cache.clear();
                s.remat_pass.clear();
            }
        }
    }

    /// What a member's slot asks of it: its store, or its accumulation.
    fn task(&mut self, m: &Member) {
        let n = m.node;
        match m.level {
            Level::Nest => self.accumulate(m),
            Level::Pass | Level::Row if m.store => {
                // Evaluating it at its slot stores it.
                let idx = Self::canon(&m.axes);
                let _ = self.val(n, &idx, false);
            }
            // A scalar the nest's single row computes (a reduction of a vector by
            // passes) is read after the nest: evaluating it binds its local.
            Level::Row if self.plan.hold[n.index()] == Hold::Local => {
                let idx = Self::canon(&m.axes);
                let _ = self.val(n, &idx, false);
            }
            _ => {}
        }
    }

    /// The operand of a reduction-like member at its position in the nest.
    fn input_at(&mut self, m: &Member) -> Ex {
        let node = self.model().node(m.node);
        let dtype = self.model().dtype;
        let _ = dtype;
        let idx = Self::canon(&m.input_axes);
        match node.op {
            Op::MatMul => {
                let (a, b) = (node.args[0], node.args[1]);
                let ia = Self::canon(&m.input_axes);
                let (x, y) = (self.val(a, &ia, false), self.val(b, &idx, false));
                Ex::mul(&x, &y)
            }
            _ => {
                let x = if self.plan.kind[m.node.index()] == Kind::GemmAcc {
                    self.plan.gemm_acc[m.node.index()].map_or(node.args[0], |g| g.0)
                } else {
                    node.args[0]
                };
                self.val(x, &idx, false)
            }
        }
    }

    /// A nest-level reduction's update.
    fn accumulate(&mut self, m: &Member) {
        let n = m.node;
        let dtype = self.model().dtype;
        let level = if matches!(m.slot, Slot::Pass(_)) {
            Level::Pass
        } else {
            Level::Row
        };
        let v = self.input_at(m);
        let note = self.note(n);
        let node = self.model().node(n);
        let ts = match (&node.op, self.plan.hold[n.index()]) {
            (Op::ExtremumMask { op, .. }, _) => {
                let best = ident(&self.helper_local(n, HelperKind::ArgMax, false));
                let pos = ident(&self.arg_pos_name(n));
                let idx = Self::canon(&m.input_axes);
                let at = self.flat(self.shape(node.args[0]), &idx);
                let cmp = if *op == ReduceOp::Min {
                    quote!(<)
                } else {
                    quote!(>)
                };
                quote!(#note if #v #cmp #best { #best = #v; #pos = #at; })
            }
            (Op::Reduce { op, .. }, Hold::Local) => {
                let id = ident(&self.name(n));
                match op {
                    ReduceOp::Sum => quote!(#note #id += #v;),
                    ReduceOp::Max => quote!(#note #id = #id.max(#v);),
                    ReduceOp::Min => quote!(#note #id = #id.min(#v);),
                    ReduceOp::LogSumExp => {
                        let m_ = ident(&self.helper_local(n, HelperKind::Max, false));
                        let s_ = ident(&self.helper_local(n, HelperKind::SumExp, false));
                        let one = self.one();
                        let _ = dtype;
                        quote!(#note if #v > #m_ { #s_ = #s_ * (#m_ - #v).exp() + #one; #m_ = #v; } else { #s_ += (#v - #m_).exp(); })
                    }
                }
            }
            _ => {
                let idx = Self::canon(&m.axes);
                let target = self.place(n, &idx);
                match self.column_sum_local(n, target.clone()) {
                    Some(sum) => quote!(#note #sum += #v;),
                    None => quote!(#note #target += #v;),
                }
            }
        };
        self.push(level, ts);
    }

    /// The loops of a nest summing its rows in blocks (see `sums_rows_in_blocks`),
    /// given its pass (`body`, over `var` in `0..len`), the row slices it reads
    /// and writes, and its column sums:
    ///
    /// ```text
    /// let mut rows = 0;
    /// while rows + 4 <= n {
    ///     let x_rows: [_; 4] = std::array::from_fn(|r| { let i = rows + r; &x[i * d..][..d] });
    ///     let d_b_row = &mut d_b[..d];
    ///     for j in 0..d {
    ///         let mut d_b_sum = d_b_row[j];
    ///         for r in 0..4 { let i = rows + r; let x_row = x_rows[r]; <pass>; d_b_sum += ..; }
    ///         d_b_row[j] = d_b_sum;
    ///     }
    ///     rows += 4;
    /// }
    /// for i in rows..n { <the same, one row> }
    /// ```
    ///
    /// Slices that depend on the row are read-only here: a nest whose rows are
    /// independent enough to write them runs on threads instead, or as plain loops.
    fn rows_in_blocks(
        &mut self,
        slices: &[RowSlice],
        sums: &[(String, Ex)],
        rows_axis: usize,
        var: &TokenStream,
        len: &Ex,
        body: &TokenStream,
    ) -> TokenStream {
        let row_var = LOOP[rows_axis];
        let i = ident(row_var);
        let n = self.size(
            self.nest
                .as_ref()
                .map_or(Dim::Fixed(0), |s| s.nest.domain[rows_axis]),
        );
        let start = ident(&self.namer.fresh("rows"));
        let r = ident(&self.namer.fresh("r"));
        let block = proc_macro2::Literal::usize_unsuffixed(ROW_BLOCK);
        let row_of = |s: &RowSlice| {
            let (array, len) = (ident(&s.array), &s.len);
            let base = s.base_ex.at(super::expr::Prec::Add);
            let row = if s.base == "0" {
                quote!(#array[..#len])
            } else {
                quote!(#array[#base..][..#len])
            };
            if s.mutable {
                quote!(&mut #row)
            } else {
                quote!(&#row)
            }
        };
        let (row_slices, shared): (Vec<&RowSlice>, Vec<&RowSlice>) =
            slices.iter().partition(|s| by_row(s, rows_axis));
        let bind = |s: &&RowSlice| {
            let (local, row) = (ident(&s.local), row_of(s));
            quote!(let #local = #row;)
        };
        let shared: Vec<TokenStream> = shared.iter().map(bind).collect();
        let arrays: Vec<Ident> = row_slices
            .iter()
            .map(|s| self.namer.fresh(&format!("{}s", s.local)))
            .map(|a| proc_macro2::Ident::new(&a, proc_macro2::Span::call_site()))
            .collect();
        let gather: Vec<TokenStream> = row_slices
            .iter()
            .zip(&arrays)
            .map(|(s, a)| {
                let row = row_of(s);
                quote!(let #a: [_; #block] = std::array::from_fn(|#r| { let #i = #start + #r; #row });)
            })
            .collect();
        let pick: Vec<TokenStream> = row_slices
            .iter()
            .zip(&arrays)
            .map(|(s, a)| {
                let local = ident(&s.local);
                quote!(let #local = #a[#r];)
            })
            .collect();
        let row_bindings: Vec<TokenStream> = row_slices.iter().map(bind).collect();
        let (locals, targets): (Vec<TokenStream>, Vec<&Ex>) =
            sums.iter().map(|(l, t)| (ident(l), t)).unzip();
        let reads_row = mentions_ident(body, row_var);
        let set_row = if reads_row {
            quote!(let #i = #start + #r;)
        } else {
            quote!()
        };
        // A sum of the same value in every row names neither.
        let (r_loop, i_loop) = if reads_row || !row_slices.is_empty() {
            (r.clone(), i.clone())
        } else {
            (quote!(_), quote!(_))
        };
        let note = Self::comment(&format!(
            "rows in blocks of {ROW_BLOCK}: each column's sums stay in registers"
        ));
        quote! {
            let mut #start = 0;
            #note
            while #start + #block <= #n {
                #(#gather)*
                #(#shared)*
                for #var in 0..#len {
                    #(let mut #locals = #targets;)*
                    for #r_loop in 0..#block {
                        #set_row
                        #(#pick)*
                        #body
                    }
                    #(#targets = #locals;)*
                }
                #start += #block;
            }
            for #i_loop in #start..#n {
                #(#row_bindings)*
                #(#shared)*
                for #var in 0..#len {
                    #(let mut #locals = #targets;)*
                    #body
                    #(#targets = #locals;)*
                }
            }
        }
    }

    /// In a nest summing rows in blocks: the local that sums `n`'s element `target`
    /// over a block's rows.
    fn column_sum_local(&mut self, n: NodeId, target: Ex) -> Option<TokenStream> {
        self.nest.as_ref()?.column_sums.as_ref()?;
        let local = self.namer.fresh(&format!("{}_sum", self.name(n)));
        let sums = self.nest.as_mut()?.column_sums.as_mut()?;
        sums.push((local.clone(), target));
        Some(ident(&local))
    }

    /// Whether a nest's column sums run over blocks of [`ROW_BLOCK`] rows, each sum
    /// a local for the block: a nest over `[rows, columns]` with one pass per row,
    /// whose only accumulations are sums over the rows into arrays (a bias's or a
    /// thin product's gradient), and which stores nothing else. Otherwise each row loads and stores every sum's
    /// element: W2's backward nest, six sums, spent most of its time on those
    /// loads and stores. Each element still adds its rows in order, so the result
    /// is the same to the bit.
    fn sums_rows_in_blocks(&self, nest: &Nest) -> bool {
        let column_sum = |m: &Member| {
            m.level == Level::Nest
                && matches!(
                    self.model().node(m.node).op,
                    Op::Reduce {
                        op: ReduceOp::Sum,
                        ..
                    }
                )
                && !matches!(self.plan.hold[m.node.index()], Hold::Local | Hold::Register)
                && m.axes.contains(&Some(1))
                && !m.axes.contains(&Some(0))
        };
        let rows = match nest.domain.first() {
            Some(Dim::Fixed(rows)) => *rows >= 2 * ROW_BLOCK,
            _ => true,
        };
        nest.domain.len() == 2
            && nest.r == 1
            && nest.passes == 1
            && nest.helpers.is_empty()
            && nest.rows_on_threads.is_none()
            && rows
            && nest.members.iter().all(|m| m.slot == Slot::Pass(1))
            && nest.members.iter().any(|m| m.level == Level::Nest)
            && nest
                .members
                .iter()
                .filter(|m| m.level == Level::Nest)
                .all(column_sum)
            // A nest that also stores its rows writes them one by one.
            && !nest.members.iter().any(|m| m.level != Level::Nest && m.store)
    }

    fn declare_helper(&mut self, h: &Helper) {
        let z = self.zero();
        let s = ident(&self.helper_local(h.owner, h.kind, false));
        let ts = match h.kind {
            HelperKind::Max => quote!(let mut #s = F::NEG_INFINITY;),
            HelperKind::Min => quote!(let mut #s = F::INFINITY;),
            HelperKind::Sum => quote!(let mut #s = #z;),
            HelperKind::SumExp => match self.row_exps_len(h.owner) {
                Some(len) => {
                    let len = proc_macro2::Literal::usize_unsuffixed(len);
                    let local = self.namer.fresh(&format!("{}_exp", self.name(h.owner)));
                    let exps = ident(&local);
                    self.row_exps.insert(h.owner, local);
                    let note = Self::comment(&format!(
                        "{}: the row's exp(x - shift), kept (its softmax is exp / sum)",
                        self.display(h.owner)
                    ));
                    quote!(let mut #s = #z; #note let mut #exps = [#z; #len];)
                }
                None => quote!(let mut #s = #z;),
            },
            HelperKind::ArgMax | HelperKind::ArgMin => {
                let init = if h.kind == HelperKind::ArgMin {
                    quote!(F::INFINITY)
                } else {
                    quote!(F::NEG_INFINITY)
                };
                let arg = ident(&self.helper_local(h.owner, h.kind, true));
                quote!(let mut #s = #init; let mut #arg = 0usize;)
            }
        };
        self.push(Level::Row, ts);
    }

    fn update_helper(&mut self, h: &Helper, nest: &Nest) {
        let dtype = self.model().dtype;
        let Some(m) = nest.member(h.owner).cloned() else {
            return;
        };
        let v = self.input_at(&m);
        let s = ident(&self.helper_local(h.owner, h.kind, false));
        let ts = match h.kind {
            HelperKind::Max => quote!(#s = #s.max(#v);),
            HelperKind::Min => quote!(#s = #s.min(#v);),
            HelperKind::Sum => quote!(#s += #v;),
            HelperKind::SumExp => {
                let shift = match self.model().node(h.owner).op {
                    Op::Reduce { .. } => self.helper_ex(h.owner, HelperKind::Max),
                    _ => self.derived(h.owner, "shift"),
                };
                let e = Ex::sub(&v, &shift).method(dtype, "exp", &[]);
                match self.row_exps.get(&h.owner) {
                    Some(exps) => {
                        let (exps, j) = (ident(exps), ident(LOOP[nest.r]));
                        quote!(#exps[#j] = #e; #s += #exps[#j];)
                    }
                    None => quote!(#s += #e;),
                }
            }
            HelperKind::ArgMax | HelperKind::ArgMin => {
                let arg = ident(&self.helper_local(h.owner, h.kind, true));
                let j = ident(LOOP[nest.r]);
                let cmp = if h.kind == HelperKind::ArgMin {
                    quote!(<)
                } else {
                    quote!(>)
                };
                quote!(if #v #cmp #s { #s = #v; #arg = #j; })
            }
        };
        let note = self.note_helper(h);
        self.push(Level::Pass, quote!(#note #ts));
    }

    // ---- comments -------------------------------------------------------------

    /// `nnc_comment!("...")`, turned into a `//` comment after formatting.
    fn comment(text: &str) -> TokenStream {
        quote!(nnc_comment!(#text);)
    }

    /// A statement's comment: what it computes in the source's names, where, and
    /// (for the backward pass) by which rule.
    fn note(&self, n: NodeId) -> TokenStream {
        let node = self.model().node(n);
        let mut text = match self.plan.gemm_acc[n.index()] {
            // The first term of `P + A @ B`; the matmul adds the second.
            Some((p, m)) => {
                format!(
                    "{} = {}, then += {} below",
                    self.display(n),
                    self.display(p),
                    self.describe(m)
                )
            }
            None => format!("{} = {}", self.display(n), self.describe(n)),
        };
        text.push_str(&format!("  ({})", self.cx.location(node.span)));
        if let Some(rule) = node.rule {
            text.push_str(&format!("  [{rule}]"));
        }
        Self::comment(&text)
    }

    fn note_gemm_acc(&self, dest: NodeId, matmul: NodeId) -> TokenStream {
        let node = self.model().node(dest);
        let mut text = format!("{} += {}", self.display(dest), self.describe(matmul));
        text.push_str(&format!("  ({})", self.cx.location(node.span)));
        if let Some(rule) = node.rule {
            text.push_str(&format!("  [{rule}]"));
        }
        Self::comment(&text)
    }

    fn note_helper(&self, h: &Helper) -> TokenStream {
        let what = match h.kind {
            HelperKind::Max => "running max",
            HelperKind::Min => "running min",
            HelperKind::Sum => "running sum",
            HelperKind::SumExp => "running sum of exp(x - max)",
            HelperKind::ArgMax => "first maximum",
            HelperKind::ArgMin => "first minimum",
        };
        Self::comment(&format!("{what} for {}", self.display(h.owner)))
    }

    fn nest_note(&self, nest: &Nest, on_threads: bool) -> TokenStream {
        let model = self.model();
        let passes = if nest.passes > 1 {
            format!(", {} passes per row", nest.passes)
        } else {
            String::new()
        };
        let threads = if on_threads {
            ", rows split across threads"
        } else {
            ""
        };
        Self::comment(&format!(
            "loop over {}{passes}{threads}: {}",
            model.shape_str(&nest.domain),
            self.nest_results(nest)
        ))
    }

    /// What a nest leaves behind, for its comment: the values it stores, its
    /// totals and the locals it sets.
    fn nest_results(&self, nest: &Nest) -> String {
        let names: Vec<String> = nest
            .members
            .iter()
            .filter(|m| {
                m.store || m.level == Level::Nest || self.plan.hold[m.node.index()] == Hold::Local
            })
            .map(|m| self.display(m.node))
            .collect();
        names.join(", ")
    }

    /// A node's name as the source (or the derivation) calls it; inside a rolled
    /// body, a loop value by its step's offset (`h_prev`) and a matrix of a stack
    /// by the loop variable (`w[l]`).
    fn display(&self, n: NodeId) -> String {
        self.rolled_display(n).unwrap_or_else(|| self.cx.display(n))
    }

    fn rolled_display(&self, n: NodeId) -> Option<String> {
        let roll = self.roll?;
        if let Some((stack, at)) = crate::plan::stack_slice(self.model(), n) {
            let index = &self.model().loops[roll.lp as usize].index;
            let rel = match at.cmp(&roll.at) {
                std::cmp::Ordering::Equal => index.clone(),
                std::cmp::Ordering::Greater => format!("{index} + {}", at - roll.at),
                std::cmp::Ordering::Less => format!("{index} - {}", roll.at - at),
            };
            return Some(format!("{}[{rel}]", self.cx.display(stack)));
        }
        // Views (`w[l].T`) are described by what they view.
        if self.plan.hold[n.index()] == Hold::Inline && !is_arithmetic(&self.model().node(n).op) {
            return None;
        }
        self.rolled_name(n, false)
    }

    /// A node's definition in the source's terms (see `display`).
    fn describe(&self, n: NodeId) -> String {
        self.cx.describe_with(n, &|m| self.rolled_display(m))
    }
}
