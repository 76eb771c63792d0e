//! **Which nests run inside a product?** Takes a planned function whose nests know
//! their threads (`threads.rs`); moves each elementwise nest that reads a product
//! right behind it and marks it [`Nest::in_product`], which the emitter writes as
//! one `rt::matmul_then` call: the nest's row body runs on each stretch of the
//! product's `C` as soon as the GEMM has finished it (each block of rows after its
//! last block of `k`, while it is still in cache), on the thread that computed it
//! (`h = tanh(x @ w + b)`, `d_z = d_h * (1 - h²)` after `d_h = d_z' @ w'.T`).
//!
//! What that saves is a pass over `C` (read back from L2 or beyond) and, on several
//! threads, a parallel region and its wait for the slowest thread.
//!
//! A nest runs inside a product when
//!
//! - its rows run on threads ([`Nest::rows_on_threads`]: a matrix walked row by row,
//!   nothing accumulated across rows, every array it writes written along the row);
//! - it is one pass over the row with no running values (no helpers), every member
//!   computed in that pass: each element is a function of the same element of its
//!   operands, so a stretch of a row can be computed alone;
//! - one of its operands is the whole `C` of an earlier product (not a piece of an
//!   assembled value), of the nest's own shape, and it reads no view of it (`z.T`
//!   reads `z` at other positions than the nest's own);
//! - every other value it reads is ready when that product runs, so the nest can
//!   move up to it: nothing between them can read what the nest writes, since it
//!   came after them in an order that computes every value before it is read;
//! - both belong to the same step of an unrolled loop, or to none.
//!
//! The emitter checks, as a safety net, that the nest reaches `C` only through the
//! row slice the GEMM hands out and indexes every row slice by the column alone,
//! and writes the product and the nest as two steps if not.

use super::{Kind, Level, Nest, Plan, Slot, Step, scalar_like};
use nnc_ir::{Model, NodeId};
use std::collections::HashMap;

/// Moves every nest that can run inside a product behind it, and marks it.
pub(super) fn fuse_into_products(model: &Model, plan: &mut Plan) {
    let mut last_write = written_at(plan);
    for s in 0..plan.steps.len() {
        if let Some(g) = product_to_join(model, plan, &last_write, s) {
            let Step::Nest(mut nest) = plan.steps.remove(s) else {
                unreachable!("product_to_join only answers for nests");
            };
            nest.in_product = true;
            plan.steps.insert(g + 1, Step::Nest(nest));
            last_write = written_at(plan);
        }
    }
    for (i, step) in plan.steps.iter().enumerate() {
        if let Step::Nest(nest) = step {
            for m in &nest.members {
                plan.step_of[m.node.index()] = Some(i);
            }
        }
    }
}

/// For the nest at step `s`: the step of the product it can run inside, if any.
fn product_to_join(
    model: &Model,
    plan: &Plan,
    written_at: &HashMap<NodeId, usize>,
    s: usize,
) -> Option<usize> {
    let Some(Step::Nest(nest)) = plan.steps.get(s) else {
        return None;
    };
    if !elementwise_rows(nest) {
        return None;
    }
    let operands = operands(model, plan, nest);
    // The product's step, and its `C`.
    let (product, c) = operands.iter().find_map(|&d| {
        let g = *written_at.get(&d)?;
        let whole = matches!(
            plan.steps[g],
            Step::Gemm { dest, rows: None, matmul, .. }
                if dest == d && model.shape(model.node(matmul).args[0]).len() == 2
                    && model.shape(model.node(matmul).args[1]).len() == 2
        );
        let own_shape = model.shape(d)[..] == nest.domain[..];
        let here = g < s && same_loop_step(model, &plan.steps[g], nest);
        (whole && own_shape && here).then_some((g, d))
    })?;
    // A view of the product (`z.T`) reads it at other positions than the nest's.
    if operands.iter().any(|&o| views(model, plan, o, c)) {
        return None;
    }
    let joined = matches!(plan.steps.get(product + 1), Some(Step::Nest(n)) if n.in_product);
    let mut memo = HashMap::new();
    let ready = operands
        .iter()
        .all(|&o| ready_at(model, plan, written_at, o, &mut memo).is_none_or(|w| w <= product));
    (ready && !joined).then_some(product)
}

/// Whether the product and the nest belong to the same step of an unrolled loop
/// (or both to none): the emitter writes a loop's steps as one Rust loop when
/// their code is the same (`emit::roll`), and a nest joining the product of the
/// step after its own would split both steps' code.
fn same_loop_step(model: &Model, product: &Step, nest: &Nest) -> bool {
    let Step::Gemm { matmul, dest, .. } = product else {
        return false;
    };
    let step = model.node(*matmul).step;
    model.node(*dest).step == step && nest.members.iter().all(|m| model.node(m.node).step == step)
}

/// One pass over a matrix's rows, on threads, every member in that pass, with no
/// running values.
fn elementwise_rows(nest: &Nest) -> bool {
    nest.rows_on_threads.is_some()
        && nest.domain.len() == 2
        && nest.r == 1
        && nest.passes == 1
        && nest.helpers.is_empty()
        && nest
            .members
            .iter()
            .all(|m| m.level == Level::Pass && m.slot == Slot::Pass(1))
}

/// The values a nest reads that it does not compute.
fn operands(model: &Model, plan: &Plan, nest: &Nest) -> Vec<NodeId> {
    let mut out: Vec<NodeId> = vec![];
    for m in &nest.members {
        let args = match plan.gemm_acc[m.node.index()] {
            Some((first, _)) => vec![first],
            None => model.node(m.node).args.clone(),
        };
        for a in args {
            if nest.member(a).is_none() && !out.contains(&a) {
                out.push(a);
            }
        }
    }
    out
}

/// Whether `n` is an inline value (a view, a broadcast) evaluated from `of`.
fn views(model: &Model, plan: &Plan, n: NodeId, of: NodeId) -> bool {
    plan.kind[n.index()] == Kind::Inline
        && model
            .node(n)
            .args
            .iter()
            .any(|&a| a == of || views(model, plan, a, of))
}

/// The last step writing each value a step writes.
fn written_at(plan: &Plan) -> HashMap<NodeId, usize> {
    let mut at = HashMap::new();
    for (i, step) in plan.steps.iter().enumerate() {
        match step {
            Step::Scalar(n) | Step::Fill(n) => {
                at.insert(*n, i);
            }
            Step::Gemm { matmul, dest, .. } => {
                at.insert(*matmul, i);
                at.insert(*dest, i);
            }
            Step::Nest(nest) => {
                for m in &nest.members {
                    at.insert(m.node, i);
                }
            }
            Step::Assemble { dest, .. } => {
                at.insert(*dest, i);
            }
        }
    }
    at
}

/// The step after which `n` can be read (`None`: before every step): its own
/// step, or for an inline value the latest of its operands'.
fn ready_at(
    model: &Model,
    plan: &Plan,
    written_at: &HashMap<NodeId, usize>,
    n: NodeId,
    memo: &mut HashMap<NodeId, Option<usize>>,
) -> Option<usize> {
    if let Some(at) = memo.get(&n) {
        return *at;
    }
    let at = match written_at.get(&n) {
        Some(step) => Some(*step),
        None if plan.kind[n.index()] == Kind::Inline => model
            .node(n)
            .args
            .iter()
            .filter_map(|a| ready_at(model, plan, written_at, *a, memo))
            .max(),
        // Parameters, inputs, and scalars made once before every step.
        None => {
            debug_assert!(
                matches!(plan.kind[n.index()], Kind::Leaf | Kind::Scalar)
                    || scalar_like(model.shape(n)),
                "a value read by a nest that no step writes"
            );
            None
        }
    };
    memo.insert(n, at);
    at
}

#[cfg(test)]
mod tests {
    use super::super::{Entry, fixtures::model, plan};
    use super::*;

    /// The products each nest runs inside, as `matmul -> first member` names.
    fn joined(src: &str, entry: Entry) -> Vec<String> {
        let m = model(src);
        let p = plan(&m, entry);
        let mut out = vec![];
        for pair in p.steps.windows(2) {
            if let [Step::Gemm { matmul, .. }, Step::Nest(nest)] = pair
                && nest.in_product
            {
                out.push(format!(
                    "{} -> {}",
                    super::super::describe::name(&m, *matmul),
                    super::super::describe::name(&m, nest.members[0].node)
                ));
            }
        }
        assert_eq!(
            p.steps
                .iter()
                .filter(|s| matches!(s, Step::Nest(n) if n.in_product))
                .count(),
            out.len(),
            "every nest in a product comes right after it"
        );
        out
    }

    #[test]
    fn an_activation_and_its_derivative_run_inside_their_products() {
        // Forward: `tanh(x @ w1 + b1)` and `tanh(h1 @ w2)` inside their products.
        // Backward: `d_t = d_h2 * (1 - h2^2)` inside `d_h2`'s product, moved up
        // before `d_w3`'s; the first layer's derivative also sums `d_b1` down the
        // rows, so it stays a nest of its own.
        let src = "model m { dim N, D = 8, H = 40, C = 30; input x: [N, D]; \
                   input y: index[N]; param w1: [D, H]; param b1: [H]; param w2: [H, H]; \
                   param w3: [H, C]; \
                   let h1 = tanh(x @ w1 + b1); let h2 = tanh(h1 @ w2); \
                   loss softmax_cross_entropy(h2 @ w3, y); }";
        insta::assert_snapshot!(joined(src, Entry::LossAndGrad).join("\n"));
    }

    #[test]
    fn a_nest_reading_a_view_of_the_product_stays_apart() {
        // `tanh(z) * z.T` reads `z` across its rows, not on a stretch of one; the
        // same nest without the view joins.
        let src = "model m { dim D = 256, C = 30; input x: [D, D]; input y: index[D]; \
                   param w: [D, D]; param v: [D, C]; let z = x @ w; \
                   loss softmax_cross_entropy((tanh(z) * z.T) @ v, y); }";
        assert!(
            !joined(src, Entry::Loss)
                .iter()
                .any(|j| j.starts_with("z ->"))
        );
        let plain = src.replace("z.T", "z");
        assert!(
            joined(&plain, Entry::Loss)
                .iter()
                .any(|j| j.starts_with("z ->"))
        );
    }
}
