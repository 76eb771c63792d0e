//! **Which thread runs each row?** Takes a planned function (the answers to the
//! first three questions: its nests, their members' levels and axes, which members
//! are stored); gives every nest whose rows are independent a [`RowSplit`], which
//! the emitter writes as `rt::for_rows(&ws.threads, rows, work_per_row, outputs,
//! |i, rows_of_i| ..)`: each thread runs a block of rows, and row `i` gets its own
//! slice of every array the nest writes.
//!
//! A nest's rows are independent when
//!
//! - its domain is a matrix walked row by row (two axes, the inner one the columns);
//! - nothing is accumulated across rows (no nest-level member: a bias gradient's
//!   column sum keeps its nest on one thread);
//! - it writes at least one array, and every array it writes is a full matrix
//!   written along the row (the member's axes are the nest's, in order), so row
//!   `i` is one contiguous slice; a stored row-level value (an argmax, a row sum) is
//!   written element by element instead;
//! - no pick reads back, at its gathered column (`labels[i]`), a member stored in an
//!   earlier pass: that read is element by element, not through the row's slice.
//!
//! The emitter checks, as a safety net, that every array the nest writes is reached
//! only through its one row slice, and writes plain loops if not. For the writes
//! that is a planner bug (debug builds assert); a read it could not foresee is not:
//! whether a pick reads back a member stored in the same pass depends on when the
//! emitter first needs the pick's value.
//!
//! Whether a call's rows are worth splitting depends on the rows at run time: the
//! split carries a rough cost per element, and the runtime runs small loops on the
//! calling thread. Matmuls are split across threads inside the runtime's GEMM, not
//! here.

use super::{Kind, Level, Nest, Plan, RowSplit, Slot, Step};
use nnc_ir::{BinaryOp, Model, NodeId, Op, UnaryOp};

/// Decides, for every nest of `plan`, whether its rows run on threads.
pub(super) fn split_rows(model: &Model, plan: &mut Plan) {
    let splits: Vec<Option<RowSplit>> = plan
        .steps
        .iter()
        .map(|step| match step {
            Step::Nest(nest) => row_split(model, plan, nest),
            _ => None,
        })
        .collect();
    for (step, split) in plan.steps.iter_mut().zip(splits) {
        if let Step::Nest(nest) = step {
            nest.rows_on_threads = split;
        }
    }
}

/// `Some` when the nest's rows are independent.
fn row_split(model: &Model, plan: &Plan, nest: &Nest) -> Option<RowSplit> {
    let independent = walks_rows(nest)
        && !accumulates_across_rows(nest)
        && writes_whole_rows(nest)
        && !picks_stored(model, plan, nest);
    let work_per_element = work_per_element(model, nest);
    let worth_splitting = fixed_work(nest, work_per_element).is_none_or(|w| w >= PARALLEL_WORK);
    (independent && worth_splitting).then_some(RowSplit { work_per_element })
}

/// The work below which the runtime runs a row loop on the calling thread
/// (`nnc_runtime::parallel::PARALLEL_WORK`; this crate does not depend on the
/// runtime, and a test in `nnc-model-tests` checks the two agree). A nest of fixed
/// size below it (a parameter's transposed copy) is written as plain loops.
pub const PARALLEL_WORK: usize = 1 << 19;

/// A nest's whole work, when its size is fixed.
fn fixed_work(nest: &Nest, work_per_element: usize) -> Option<usize> {
    nest.domain
        .iter()
        .try_fold(work_per_element, |w, d| match d {
            nnc_ir::Dim::Fixed(s) => Some(w.saturating_mul(*s)),
            _ => None,
        })
}

/// A matrix walked row by row: two axes, the inner one the columns.
fn walks_rows(nest: &Nest) -> bool {
    nest.domain.len() == 2 && nest.r == 1
}

/// A member accumulated over the whole nest (a column sum, a total).
fn accumulates_across_rows(nest: &Nest) -> bool {
    nest.members.iter().any(|m| m.level == Level::Nest)
}

/// At least one array written, and every array written along the row: its axes
/// are the nest's, in order (size-1 axes aside).
fn writes_whole_rows(nest: &Nest) -> bool {
    let mut stored = nest.members.iter().filter(|m| m.store).peekable();
    stored.peek().is_some() && stored.all(|m| m.axes.iter().flatten().copied().eq([0, 1]))
}

/// Whether a pick reads back a member stored in an earlier pass of the row: its
/// column is gathered (`labels[i]`), so it reads that array element by element, not
/// through the row's slice.
fn picks_stored(model: &Model, plan: &Plan, nest: &Nest) -> bool {
    nest.members
        .iter()
        .filter(|m| matches!(model.node(m.node).op, Op::Pick { .. }))
        .any(|m| reads_stored_before(model, plan, nest, model.node(m.node).args[0], m.slot))
}

/// Whether evaluating `n` at another column than the nest's own, at `slot` or
/// later, reads a member stored before `slot`: through inline nodes and the
/// nest's pass-level members not stored by then, which are recomputed at that
/// column. (A member stored at `slot` or after may be read back too, depending on
/// when the emitter first needs the pick; its check catches that.)
fn reads_stored_before(model: &Model, plan: &Plan, nest: &Nest, n: NodeId, slot: Slot) -> bool {
    let operands = match plan.gemm_acc[n.index()] {
        Some((first, _)) => vec![first],
        None => model.node(n).args.clone(),
    };
    let through = || {
        operands
            .iter()
            .any(|a| reads_stored_before(model, plan, nest, *a, slot))
    };
    match nest.member(n) {
        Some(m) if m.store && m.slot.pos() < slot.pos() => true,
        Some(m) => m.level == Level::Pass && through(),
        None => plan.kind[n.index()] == Kind::Inline && through(),
    }
}

/// A rough cost of one element of a nest, in adds: what decides whether its rows
/// are worth splitting across threads.
fn work_per_element(model: &Model, nest: &Nest) -> usize {
    nest.members
        .iter()
        .map(|m| match &model.node(m.node).op {
            Op::Unary(UnaryOp::Neg | UnaryOp::Abs) => 1,
            Op::Unary(_) | Op::Softmax { .. } | Op::LogSoftmax { .. } => 10,
            Op::Binary(BinaryOp::Div) | Op::Powf(_) => 4,
            _ => 1,
        })
        .sum::<usize>()
        .max(1)
}

#[cfg(test)]
mod tests {
    use super::super::describe::name;
    use super::super::fixtures::{example, model, nests};
    use super::super::{Entry, Level, describe, plan};
    use nnc_ir::{Model, Op, UnaryOp};

    /// The nests of each function of an example model, as `describe` names what
    /// they store or accumulate, with ` ||` after those whose rows run on threads.
    fn threading(m: &Model) -> Vec<String> {
        let mut out = vec![];
        for entry in [Entry::Loss, Entry::Forward, Entry::LossAndGrad] {
            let p = plan(m, entry);
            for nest in nests(&p) {
                let names: Vec<String> = nest
                    .members
                    .iter()
                    .filter(|mm| mm.store || mm.level == Level::Nest)
                    .map(|mm| name(m, mm.node))
                    .collect();
                let on = if nest.rows_on_threads.is_some() {
                    " ||"
                } else {
                    ""
                };
                out.push(format!("{entry:?} {}{on}", names.join(", ")));
            }
        }
        out
    }

    #[track_caller]
    fn check(file: &str, expected: &[&str]) {
        assert_eq!(threading(&example(file)), expected, "{file}");
    }

    #[test]
    fn w1_two_layer_runs_its_activation_and_its_derivative_on_threads() {
        check(
            "two_layer.nn",
            &[
                "Loss h ||",
                "Loss loss",
                "Forward h ||",
                "LossAndGrad h ||",
                "LossAndGrad loss, d_y_pred",
                "LossAndGrad d_t4 ||",
            ],
        );
    }

    #[test]
    fn w2_spiral_keeps_argmax_and_column_sums_on_one_thread() {
        check(
            "spiral.nn",
            &[
                "Loss hidden ||",
                "Loss t15",
                "Loss t20",
                "Loss t22",
                "Forward hidden ||",
                "Forward scores, predicted",
                "LossAndGrad hidden ||",
                "LossAndGrad t20, d_w1",
                "LossAndGrad t22, d_w2",
                "LossAndGrad t15, d_scores, d_b2",
                "LossAndGrad d_t7, d_b1",
            ],
        );
    }

    #[test]
    fn w3_mlp784_runs_its_forward_nests_on_threads() {
        check(
            "mlp784.nn",
            &[
                "Loss h1 ||",
                "Loss h2 ||",
                "Loss t19",
                "Forward h1 ||",
                "Forward h2 ||",
                "Forward scores ||",
                "LossAndGrad h1 ||",
                "LossAndGrad h2 ||",
                "LossAndGrad t19, d_scores, d_b3",
                "LossAndGrad d_t13, d_b2",
                "LossAndGrad d_t9, d_b1",
            ],
        );
    }

    #[test]
    fn w4_deep_tanh_runs_every_tanh_and_tanh_derivative_on_threads_but_not_the_softmax() {
        let m = example("deep_tanh.nn");
        for entry in [Entry::Loss, Entry::Forward, Entry::LossAndGrad] {
            let p = plan(&m, entry);
            for nest in nests(&p) {
                let has = |op: &dyn Fn(&Op) -> bool| {
                    nest.members.iter().any(|mm| op(&m.node(mm.node).op))
                };
                let softmax = has(&|op| matches!(op, Op::LogSoftmax { .. }));
                let tanh = has(&|op| *op == Op::Unary(UnaryOp::Tanh));
                let derivative = nest.members.iter().any(|mm| {
                    m.node(mm.node)
                        .name
                        .as_deref()
                        .is_some_and(|s| s.starts_with("d_t"))
                });
                assert!(softmax || tanh || derivative, "{}", describe(&m, &p));
                assert_eq!(
                    nest.rows_on_threads.is_some(),
                    !softmax,
                    "{}",
                    describe(&m, &p)
                );
            }
        }
    }

    /// Whether the plan puts each nest of `forward` on threads, and whether the
    /// generated code does.
    fn forward_on_threads(src: &str) -> (Vec<bool>, bool) {
        let p = plan(&model(src), Entry::Forward);
        let planned = nests(&p)
            .iter()
            .map(|n| n.rows_on_threads.is_some())
            .collect();
        let options = crate::Options {
            model: None,
            emit: crate::Emit::Rust,
        };
        let rust = crate::compile_source(src, "m.nn", &options).unwrap_or_else(|d| panic!("{d:?}"));
        let forward = &rust[rust.find("pub fn forward").unwrap_or(0)..];
        let forward = &forward[..forward
            .find("pub fn loss_and_grad")
            .unwrap_or(forward.len())];
        (planned, forward.contains("rt::for_rows"))
    }

    #[test]
    fn a_pick_reading_back_a_row_stored_in_an_earlier_pass_keeps_its_nest_on_one_thread() {
        // `s` is stored in pass 1; the pick recomputes `t` at `labels[i]` from it.
        let src = "model m { dtype f64; dim N, C = 3; input x: [N, C]; input labels: index[N];
             let s = exp(x); let t = s - max(s, axis = 1, keepdims = true);
             output s; output u = t - pick(t, labels, keepdims = true); loss sum(s); }";
        assert_eq!(forward_on_threads(src), (vec![false], false));
    }

    #[test]
    fn a_pick_recomputing_what_its_pass_stores_leaves_the_rows_on_threads() {
        // The pick comes before the pass storing `s`, so it recomputes `exp(x)`.
        let src = "model m { dtype f64; dim N, C = 3; input x: [N, C]; input labels: index[N];
             let s = exp(x); output s; output t = s - pick(s, labels, keepdims = true);
             loss sum(s); }";
        assert_eq!(forward_on_threads(src), (vec![true], true));
    }

    #[test]
    fn the_work_per_element_weighs_transcendental_functions() {
        let m = example("deep_tanh.nn");
        let p = plan(&m, Entry::Forward);
        let works: Vec<usize> = nests(&p)
            .iter()
            .filter_map(|n| n.rows_on_threads.map(|s| s.work_per_element))
            .collect();
        assert_eq!(works, [10; 10]);
    }
}
