//! **Where is each parameter updated?** For `sgd_step` alone, the training step that
//! also applies `p -= lr * d_p`. Takes a planned `loss_and_grad` (products and the
//! nests inside them placed); gives the products whose store updates a parameter
//! as well ([`FusedUpdate`]), which the emitter writes as
//! `rt::matmul_then(.., |_, _, d_p_row, (p_row,)| rt::sub_scaled(p_row, d_p_row, lr))`:
//! each stretch of the gradient's rows updates the same stretch of the parameter as
//! soon as the GEMM has finished it, while it is still in cache and on the thread
//! that computed it, instead of in a pass over both arrays after the step.
//!
//! A parameter is updated inside the product computing its gradient when
//!
//! - the gradient is held in place ([`Hold::Grad`]), a whole matrix that the
//!   product writes (not rows of an assembled value) and that no later step writes;
//! - nothing from that product on reads the parameter, directly or through an
//!   inline view (`w.T`): no later step, not the product itself, and not the
//!   results written after the steps (a gradient copied out, a state's new value,
//!   the loss). Reverse mode reads `w` in the same layer as it computes `d_w`
//!   (`d_h = d_z @ w.T` beside `d_w = h.T @ d_z`), and the steps put that read
//!   first, so the layers' weights all qualify;
//! - no nest runs inside the product already.
//!
//! Every other parameter (a bias, whose gradient is a column sum in a nest; a stack
//! of matrices) is updated after the step, in a pass of its own (`rt::sgd`). And
//! none is updated inside a product unless those that can be hold at least half
//! of the parameters' elements: `sgd_step` then writes the steps out a second time
//! (see [`elements`]).

use super::{Entry, Hold, Kind, Plan, Step, epilogue};
use nnc_ir::{Dim, GradOf, Model, NodeId};

/// A parameter updated inside the product that computes its gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FusedUpdate {
    /// The product's step.
    pub step: usize,
    /// The gradient's position in `Model::grads` (a parameter's).
    pub grad: usize,
}

/// The updates `sgd_step` runs inside products, in step order.
pub(super) fn fuse_updates(model: &Model, plan: &Plan) -> Vec<FusedUpdate> {
    if plan.entry != Entry::LossAndGrad {
        return vec![];
    }
    let written_at = epilogue::written_at(plan);
    let mut fused: Vec<FusedUpdate> = model
        .grads
        .iter()
        .enumerate()
        .filter_map(|(k, (of, g))| {
            let GradOf::Param(p) = of else {
                return None;
            };
            let param = model.param_node(*p)?;
            let step = *written_at.get(g)?;
            let fuses = plan.hold[g.index()] == Hold::Grad(k)
                && whole_matrix_product(model, plan, step, *g)
                && !matches!(plan.steps.get(step + 1), Some(Step::Nest(n)) if n.in_product)
                && !read_from(model, plan, param, step);
            fuses.then_some(FusedUpdate { step, grad: k })
        })
        .collect();
    fused.sort_by_key(|u| u.step);
    if elements(model, &fused) * 2 < elements(model, &[]) {
        return vec![];
    }
    fused
}

/// The elements of the parameters updated by `fused` (all parameters when it is
/// empty), a dim bound at run time counted as 1.
///
/// `sgd_step` with updates inside products is the steps of `loss_and_grad` written
/// a second time; that pays when those updates are most of the work. A model whose
/// weights are mostly a stack (`deep_stack.nn`), its updates after the steps, keeps
/// the short `sgd_step` that calls `loss_and_grad`.
fn elements(model: &Model, fused: &[FusedUpdate]) -> usize {
    let size = |shape: &[Dim]| -> usize {
        shape
            .iter()
            .map(|d| match d {
                Dim::Fixed(n) => *n,
                Dim::Var(_) => 1,
            })
            .product()
    };
    let params = model.params.iter().map(|p| size(&p.shape));
    if fused.is_empty() {
        return params.sum();
    }
    fused
        .iter()
        .filter_map(|u| match model.grads[u.grad].0 {
            GradOf::Param(p) => Some(size(&model.params[p.0 as usize].shape)),
            GradOf::Input(_) => None,
        })
        .sum()
}

/// Whether step `step` is a product of two matrices into the whole of `g`.
fn whole_matrix_product(model: &Model, plan: &Plan, step: usize, g: NodeId) -> bool {
    let Some(Step::Gemm {
        matmul,
        dest,
        rows: None,
        ..
    }) = plan.steps.get(step)
    else {
        return false;
    };
    let args = &model.node(*matmul).args;
    *dest == g && model.shape(g).len() == 2 && args.iter().all(|a| model.shape(*a).len() == 2)
}

/// Whether the parameter `param` is read from step `from` on, or by the results
/// the function writes after its steps.
fn read_from(model: &Model, plan: &Plan, param: NodeId, from: usize) -> bool {
    let reading = readers(model, plan, param);
    let reads = |n: &NodeId| reading[n.index()];
    let by_steps = plan.steps[from..]
        .iter()
        .any(|step| epilogue::step_operands(model, plan, step).iter().any(reads));
    let results = std::iter::once(model.loss)
        .chain(model.grads.iter().map(|(_, g)| *g))
        .chain(model.state_updates.iter().map(|(_, n)| *n));
    by_steps
        || results
            .filter(|n| evaluated_after(plan, *n))
            .any(|n| reads(&n))
}

/// For every node: whether reading it reads `param` (it is `param`, or an inline
/// value evaluated from it). Nodes are in topological order.
fn readers(model: &Model, plan: &Plan, param: NodeId) -> Vec<bool> {
    let mut reading = vec![false; model.nodes.len()];
    reading[param.index()] = true;
    for (i, node) in model.nodes.iter().enumerate() {
        if plan.kind[i] == Kind::Inline && node.args.iter().any(|a| reading[a.index()]) {
            reading[i] = true;
        }
    }
    reading
}

/// Whether result `n` is evaluated after the steps (a parameter or an inline value
/// of one), rather than read from where a step stored it.
fn evaluated_after(plan: &Plan, n: NodeId) -> bool {
    matches!(plan.hold[n.index()], Hold::Inline | Hold::Leaf)
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{RELU, TWO_LAYER, example, model};
    use super::super::{Entry, Step, epilogue, plan};
    use super::read_from;
    use nnc_ir::{GradOf, Model, ParamId};

    /// The parameters `sgd_step` updates inside products, by name.
    fn fused(m: &Model) -> Vec<String> {
        plan(m, Entry::LossAndGrad)
            .fused_updates
            .iter()
            .map(|u| match m.grads[u.grad].0 {
                GradOf::Param(p) => m.params[p.0 as usize].name.clone(),
                GradOf::Input(i) => m.inputs[i.0 as usize].name.clone(),
            })
            .collect()
    }

    #[test]
    fn every_layer_s_weights_are_updated_inside_their_gradient_s_product() {
        // Each `d_w` comes after `d_h = d_z @ w.T`, the last read of `w`; the first
        // layer's last, as reverse mode reaches it last.
        let m = example("deep_tanh.nn");
        let want: Vec<String> = [
            "w_out", "w10", "w9", "w8", "w7", "w6", "w5", "w4", "w3", "w2", "w1",
        ]
        .map(String::from)
        .to_vec();
        assert_eq!(fused(&m), want);
    }

    #[test]
    fn a_bias_is_updated_after_the_steps() {
        // `d_b` is a column sum in a nest, not a product; `w`'s gradient adds the
        // L2 term's `w` into the product's buffer before the product accumulates.
        assert_eq!(fused(&model(RELU)), ["w"]);
    }

    #[test]
    fn a_parameter_is_read_through_its_views_and_by_the_results_after_the_steps() {
        // Two layers: `d_h = d_y_pred @ w2.T` reads `w2` (through the view `w2.T`)
        // one step before `d_w2 = h.T @ d_y_pred`, which no longer does.
        let m = model(TWO_LAYER);
        let p = plan(&m, Entry::LossAndGrad);
        let w2 = m.param_node(ParamId(1)).expect("w2");
        let d_w2 = m.grads[1].1;
        let at = *epilogue::written_at(&p)
            .get(&d_w2)
            .expect("a step writes d_w2");
        let d_h = (0..at)
            .rev()
            .find(|&s| matches!(p.steps[s], Step::Gemm { .. }))
            .expect("d_h's product comes before d_w2's");
        assert!(read_from(&m, &p, w2, d_h));
        assert!(!read_from(&m, &p, w2, d_h + 1));
        assert!(!read_from(&m, &p, w2, at));
        // `d_v = w` is copied into `grads` after every step: `w` is read there.
        let src = "model m { dim N, D = 6; input x: [N, D]; param w: [D, D]; param v: [D, D]; \
                   loss sum(tanh(x @ w)) + sum(v * w); }";
        let m = model(src);
        let p = plan(&m, Entry::LossAndGrad);
        let w = m.param_node(ParamId(0)).expect("w");
        assert!(read_from(&m, &p, w, p.steps.len()));
        let v = m.param_node(ParamId(1)).expect("v");
        assert!(!read_from(&m, &p, v, p.steps.len()));
    }
}
