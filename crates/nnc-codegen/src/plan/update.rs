//! **Which parameter is updated inside its gradient's product?** For the training
//! step `sgd_step`, which runs the steps of `loss_and_grad` and then
//! `p -= lr * d_p` for every parameter: takes the planned `loss_and_grad`, gives the
//! products after which a parameter can be updated on each stretch of its gradient
//! as the GEMM finishes it (`rt::matmul_then`), instead of in a pass of its own
//! after the whole step. What that saves is reading every gradient back (W4: ten
//! 500 x 500 matrices, from L3 or beyond) and, on several threads, a parallel
//! region per parameter.
//!
//! A parameter `p` is updated inside the product writing `d_p` when
//!
//! - that product is the last step writing `d_p`, all of it (not rows of an
//!   assembled value), straight into the caller's gradient, a matrix of `p`'s shape;
//! - no step after it reads `p`, and no result of the function is `p` or a view of
//!   it (a gradient that is a parameter is copied at the end): the update must come
//!   after `p`'s last read, as it does when run after the whole step;
//! - the product is not in a step of an unrolled loop (whose steps the emitter may
//!   write as one Rust loop, `emit::roll`).
//!
//! Each element of `p` then becomes `p - lr * d_p` from the same two values as
//! after the step, so the parameters are bitwise the same either way.
//!
//! `sgd_step` then needs a body of its own (the statements of `loss_and_grad` with
//! the updates inside), as long as `loss_and_grad`'s: the plan asks for it only
//! when the parameters updated inside hold at least half of the parameters'
//! elements (W4: all of them; a stack of layers whose gradient is assembled row by
//! row, none).

use super::{Entry, Hold, Kind, Plan, Step, roots};
use nnc_ir::{Dim, GradOf, Model, NodeId};
use std::collections::{BTreeMap, HashSet};

/// For `loss_and_grad`'s plan: the matmul of each product that finishes a
/// parameter's gradient after the parameter's last read, and the parameter's
/// position in `Model::grads`.
pub(super) fn updates_in_products(model: &Model, plan: &Plan) -> BTreeMap<NodeId, usize> {
    let mut out = BTreeMap::new();
    if plan.entry != Entry::LossAndGrad {
        return out;
    }
    let read_by_results = reads(model, plan, &roots(model, plan.entry));
    for (k, &(of, grad)) in model.grads.iter().enumerate() {
        let GradOf::Param(p) = of else { continue };
        let Some(param) = model.param_node(p) else {
            continue;
        };
        let Some(s) = last_write(plan, grad) else {
            continue;
        };
        let Step::Gemm {
            matmul, rows: None, ..
        } = plan.steps[s]
        else {
            continue;
        };
        let args = &model.node(matmul).args;
        let matrices = args.iter().all(|a| model.shape(*a).len() == 2);
        let whole = plan.hold[grad.index()] == Hold::Grad(k)
            && matrices
            && model.shape(grad) == model.shape(param)
            && model.node(matmul).step.is_none();
        let read_later = read_by_results.contains(&param)
            || plan.steps[s + 1..]
                .iter()
                .any(|step| reads(model, plan, &step_operands(model, plan, step)).contains(&param));
        if whole && !read_later {
            out.insert(matmul, k);
        }
    }
    // `sgd_step` then has a body of its own, as long as `loss_and_grad`'s: worth it
    // when it updates most of the parameters' elements.
    let elements = |k: usize| -> usize {
        let shape = match model.grads[k].0 {
            GradOf::Param(p) => &model.params[p.0 as usize].shape,
            GradOf::Input(_) => return 0,
        };
        shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Var(_) => 1,
            })
            .fold(1, usize::saturating_mul)
    };
    let inside: usize = out.values().map(|&k| elements(k)).sum();
    let all: usize = (0..model.grads.len()).map(elements).sum();
    if inside.saturating_mul(2) < all {
        out.clear();
    }
    out
}

/// The last step writing `n`.
fn last_write(plan: &Plan, n: NodeId) -> Option<usize> {
    plan.steps.iter().rposition(|step| match step {
        Step::Scalar(d) | Step::Fill(d) => *d == n,
        Step::Gemm { matmul, dest, .. } => *matmul == n || *dest == n,
        Step::Nest(nest) => nest.member(n).is_some(),
        Step::Assemble { dest, .. } => *dest == n,
    })
}

/// The values a step reads that it does not compute itself.
fn step_operands(model: &Model, plan: &Plan, step: &Step) -> Vec<NodeId> {
    match step {
        Step::Scalar(n) | Step::Fill(n) => model.node(*n).args.clone(),
        Step::Gemm { matmul, .. } => model.node(*matmul).args.clone(),
        Step::Nest(nest) => nest
            .members
            .iter()
            .flat_map(|m| match plan.gemm_acc[m.node.index()] {
                Some((first, _)) => vec![first],
                None => model.node(m.node).args.clone(),
            })
            .filter(|a| nest.member(*a).is_none())
            .collect(),
        Step::Assemble { pieces, .. } => pieces.iter().map(|p| p.value).collect(),
    }
}

/// `values`, and the values they read in place: what an inline value (a view, a
/// broadcast) is evaluated from, recursively. Every parameter a step reads is in
/// the set for its operands.
fn reads(model: &Model, plan: &Plan, values: &[NodeId]) -> HashSet<NodeId> {
    let mut seen = HashSet::new();
    let mut todo = values.to_vec();
    while let Some(n) = todo.pop() {
        if !seen.insert(n) {
            continue;
        }
        if matches!(plan.kind[n.index()], Kind::Inline | Kind::Unneeded) {
            todo.extend(model.node(n).args.iter().copied());
        }
    }
    seen
}

#[cfg(test)]
mod tests {
    use super::super::{fixtures::model, plan};
    use super::*;

    /// The parameters `sgd_step` updates inside a product, by name.
    fn updated(src: &str) -> Vec<String> {
        let m = model(src);
        let p = plan(&m, Entry::LossAndGrad);
        let mut ks: Vec<usize> = p.updates.values().copied().collect();
        ks.sort_unstable();
        ks.iter()
            .map(|&k| m.grad_name(m.grads[k].0).to_string())
            .collect()
    }

    #[test]
    fn weights_are_updated_inside_the_products_of_their_gradients() {
        // `d_w2 = h1.T @ d_z` comes after `d_h1 = d_z @ w2.T`, the last read of
        // `w2`; `d_w1 = x.T @ d_z1` after everything that reads `w1`. The bias's
        // gradient is a column sum, not a product.
        let src = "model m { dim N, D = 8, H = 40, C = 30; input x: [N, D]; \
                   input y: index[N]; param w1: [D, H]; param b1: [H]; param w2: [H, C]; \
                   let h1 = tanh(x @ w1 + b1); \
                   loss softmax_cross_entropy(h1 @ w2, y); }";
        assert_eq!(updated(src), ["w1", "w2"]);
    }

    #[test]
    fn a_parameter_read_after_its_gradients_product_is_updated_after_the_step() {
        // The gradient of `sum(v * w)` with respect to `v` is `w` itself, copied
        // into `d_v` at the end of the step: `w` may not change before that.
        let src = "model m { dim N, D = 8, H = 4; input x: [N, D]; param w: [D, H]; \
                   param v: [D, H]; \
                   loss sum((x @ w) * (x @ w)) + sum(v * w); }";
        let got = updated(src);
        assert!(!got.contains(&"w".to_string()), "{got:?}");
    }
}
