//! The reverse-mode driver: walks the arena backwards from a scalar, applies each
//! node's rule, undoes broadcasting and sums the contributions where a value has
//! several users. The rules themselves are in `rules.rs`.

use crate::builder::{Builder, InternalError};
use crate::rules::{rule_name, vjp};
use nnc_ir::{GradOf, Model, NodeId, Op, grad_targets};

/// Appends the backward pass to `model` and records in `model.grads` the gradient of
/// the loss for every param and `grad`-marked input (zeros where the loss does not
/// depend on it).
pub fn differentiate(model: &mut Model) -> Result<(), InternalError> {
    let targets = grad_targets(model);
    let wrt = target_nodes(model, &targets);
    let loss = model.loss;
    let grads = gradient(model, loss, &wrt)?;
    for (target, g) in targets.iter().zip(grads) {
        let name = format!("d_{}", model.grad_name(*target));
        let g = match g {
            Some(g) => g,
            None => zeros_like(model, model.grad_shape(*target).clone(), loss)?,
        };
        set_name(model, g, name, false);
        model.grads.push((*target, g));
    }
    Ok(())
}

/// The gradient of scalar node `of` with respect to each node in `wrt` (`None` in,
/// or no dependence, gives `None`). Nodes are appended to the model; since the
/// backward pass is ordinary IR, its results can be differentiated again.
pub fn gradient(
    model: &mut Model,
    of: NodeId,
    wrt: &[Option<NodeId>],
) -> Result<Vec<Option<NodeId>>, InternalError> {
    let wires = backward(model, of, wrt)?;
    Ok(wrt
        .iter()
        .map(|w| w.and_then(|w| wires.total.get(w.index()).copied().flatten()))
        .collect())
}

/// The backward pass wire by wire, as the lecture's circuit diagrams show it: the
/// gradient arriving at each value, and what each of its users contributed to it.
#[derive(Clone, Debug, Default)]
pub struct Wires {
    /// By forward node: the gradient of the loss with respect to it (`None` where the
    /// loss does not depend on it through any parameter or `grad` input).
    pub total: Vec<Option<NodeId>>,
    /// Every contribution: `(user, operand position, gradient)`, the part of the
    /// operand's gradient that flows back through that one use of it. Where a value
    /// has one use this is its total; where it branches, the totals are their sums.
    pub contributions: Vec<(NodeId, usize, NodeId)>,
}

/// Appends the backward pass of the loss like [`differentiate`] and returns its wires
/// (for pictures of the model: `nnc graph`).
pub fn differentiate_wires(model: &mut Model) -> Result<Wires, InternalError> {
    let targets = grad_targets(model);
    let wrt = target_nodes(model, &targets);
    let loss = model.loss;
    backward(model, loss, &wrt)
}

/// Reverse mode from scalar `of` towards the nodes of `wrt`, keeping every wire.
fn backward(model: &mut Model, of: NodeId, wrt: &[Option<NodeId>]) -> Result<Wires, InternalError> {
    if !model.shape(of).is_empty() {
        return Err(InternalError(format!(
            "gradient of a non-scalar node %{}",
            of.0
        )));
    }
    let needed = on_a_path(model, of, wrt);
    // Every contribution to each node's gradient, summed when the node is reached.
    let mut contributions: Vec<Vec<NodeId>> = vec![Vec::new(); of.index() + 1];
    let mut total: Vec<Option<NodeId>> = vec![None; of.index() + 1];
    let mut wires = Vec::new();
    let seed = {
        let mut b = Builder {
            span: model.node(of).span,
            step: None,
            model,
            rule: "seed: d loss / d loss = 1",
        };
        b.constant(1.0)
    };
    contributions[of.index()].push(seed);

    for i in (0..=of.index()).rev() {
        if !needed[i] || contributions[i].is_empty() {
            continue;
        }
        let n = NodeId(i as u32);
        let g = sum_at_branch(model, n, std::mem::take(&mut contributions[i]))?;
        if let Some(name) = model.node(n).name.clone() {
            let leaf = matches!(model.node(n).op, Op::Input(_) | Op::Param(_));
            set_name(model, g, format!("d_{name}"), !leaf);
        }
        total[i] = Some(g);
        let op = model.node(n).op.clone();
        let (span, step) = (model.node(n).span, model.node(n).step);
        let mut b = Builder {
            model,
            span,
            rule: rule_name(&op),
            step,
        };
        let operand_grads = vjp(&mut b, n, g)?;
        let args = b.model.node(n).args.clone();
        for (position, (arg, grad)) in args.iter().zip(operand_grads).enumerate() {
            let Some(grad) = grad else { continue };
            if !needed[arg.index()] {
                continue;
            }
            let target = b.model.shape(*arg).clone();
            let grad = b.unbroadcast(grad, &target)?;
            contributions[arg.index()].push(grad);
            wires.push((n, position, grad));
        }
    }
    Ok(Wires {
        total,
        contributions: wires,
    })
}

/// The node reading each target (`None` where nothing does), found in one pass over
/// the arena however many targets there are.
fn target_nodes(model: &Model, targets: &[GradOf]) -> Vec<Option<NodeId>> {
    let mut params = vec![None; model.params.len()];
    let mut inputs = vec![None; model.inputs.len()];
    for (i, node) in model.nodes.iter().enumerate() {
        let slot = match node.op {
            Op::Param(p) => params.get_mut(p.0 as usize),
            Op::Input(x) => inputs.get_mut(x.0 as usize),
            _ => None,
        };
        if let Some(slot) = slot {
            slot.get_or_insert(NodeId(i as u32));
        }
    }
    targets
        .iter()
        .map(|t| match t {
            GradOf::Param(p) => params.get(p.0 as usize).copied().flatten(),
            GradOf::Input(x) => inputs.get(x.0 as usize).copied().flatten(),
        })
        .collect()
}

/// Which nodes lie on a path from some `wrt` node to `of`: only those need gradients.
fn on_a_path(model: &Model, of: NodeId, wrt: &[Option<NodeId>]) -> Vec<bool> {
    let len = of.index() + 1;
    let mut from_wrt = vec![false; len];
    for w in wrt.iter().flatten() {
        if w.index() < len {
            from_wrt[w.index()] = true;
        }
    }
    for i in 0..len {
        if !from_wrt[i] && model.nodes[i].args.iter().any(|a| from_wrt[a.index()]) {
            from_wrt[i] = true;
        }
    }
    let mut to_of = vec![false; len];
    to_of[of.index()] = true;
    for i in (0..len).rev() {
        if to_of[i] {
            for a in &model.nodes[i].args {
                to_of[a.index()] = true;
            }
        }
    }
    from_wrt.iter().zip(&to_of).map(|(a, b)| *a && *b).collect()
}

/// "Sum at branches": a value used several times gets the sum of its users' gradients.
fn sum_at_branch(
    model: &mut Model,
    n: NodeId,
    parts: Vec<NodeId>,
) -> Result<NodeId, InternalError> {
    let (span, step) = (model.node(n).span, model.node(n).step);
    let mut b = Builder {
        model,
        span,
        rule: "sum at branches",
        step,
    };
    let mut parts = parts.into_iter();
    let mut total = parts
        .next()
        .ok_or_else(|| InternalError("no contributions".into()))?;
    for p in parts {
        total = b.add(total, p)?;
    }
    Ok(total)
}

fn zeros_like(
    model: &mut Model,
    shape: nnc_ir::Shape,
    near: NodeId,
) -> Result<NodeId, InternalError> {
    let (span, step) = (model.node(near).span, model.node(near).step);
    let mut b = Builder {
        model,
        span,
        rule: "no dependence: zero",
        step,
    };
    let zero = b.constant(0.0);
    b.broadcast(zero, shape)
}

/// Names a gradient node. A node that is the gradient of several values (`d_x =
/// d_q` when `q = x + y`) keeps the first name it gets, walking backwards, except
/// that the gradient of a value the user named beats a generated name (`d_y_pred`
/// over `d_t7`) when `may_replace` says the new name is such. Params and inputs never
/// take over a name: `d_w2 = d_t8` reads better than `d_w1 = d_w2 * x1`.
fn set_name(model: &mut Model, g: NodeId, name: String, may_replace: bool) {
    let node = &mut model.nodes[g.index()];
    if matches!(node.op, Op::Input(_) | Op::Param(_) | Op::Const(_)) {
        return;
    }
    let replace = match &node.name {
        None => true,
        Some(old) => may_replace && is_generated(old) && !is_generated(&name),
    };
    if replace {
        node.name = Some(name);
    }
}

/// Names the derivation makes up for unnamed intermediates: `t7`, `d_t7`.
pub fn is_generated(name: &str) -> bool {
    let base = name.strip_prefix("d_").unwrap_or(name);
    base.strip_prefix('t')
        .is_some_and(|digits| !digits.is_empty() && digits.bytes().all(|b| b.is_ascii_digit()))
}

/// Appends a Hessian-vector product to a differentiated model: for each parameter
/// `w` a new input `v_w` (a direction, shaped like `w`) and an output `hv_w`, the
/// matching block of `H v` where `H` is the loss's Hessian with respect to all
/// parameters. It differentiates the backward pass itself: `H v` is the gradient of
/// `sum_w sum(d_w * v_w)`.
pub fn hessian_vector_product(model: &mut Model) -> Result<(), InternalError> {
    if model.grads.is_empty() {
        differentiate(model)?;
    }
    let param_grads: Vec<(nnc_ir::ParamId, NodeId)> = model
        .grads
        .iter()
        .filter_map(|(of, g)| match of {
            GradOf::Param(p) => Some((*p, *g)),
            GradOf::Input(_) => None,
        })
        .collect();
    let span = model.node(model.loss).span;
    let mut directional: Option<NodeId> = None;
    for (p, g) in &param_grads {
        let info = &model.params[p.0 as usize];
        let name = format!("v_{}", info.name);
        let ty = nnc_ir::Type::float(info.shape.clone());
        let id = nnc_ir::InputId(model.inputs.len() as u32);
        model.inputs.push(nnc_ir::InputInfo {
            name: name.clone(),
            ty: ty.clone(),
            grad: false,
            span,
            kind: nnc_ir::InputKind::Data,
        });
        let v = model.push_typed(Op::Input(id), vec![], ty, span);
        model.nodes[v.index()].name = Some(name);
        let mut b = Builder {
            model,
            span,
            rule: "Hessian-vector product: sum(d_w * v_w)",
            step: None,
        };
        let product = b.mul(*g, v)?;
        let term = b.sum(product, None, false)?;
        directional = Some(match directional {
            None => term,
            Some(total) => b.add(total, term)?,
        });
    }
    let Some(directional) = directional else {
        return Ok(());
    };
    let params: Vec<GradOf> = param_grads.iter().map(|(p, _)| GradOf::Param(*p)).collect();
    let wrt = target_nodes(model, &params);
    let hv = gradient(model, directional, &wrt)?;
    for ((p, _), h) in param_grads.iter().zip(hv) {
        let shape = model.params[p.0 as usize].shape.clone();
        let h = match h {
            Some(h) => h,
            None => zeros_like(model, shape, directional)?,
        };
        let name = format!("hv_{}", model.params[p.0 as usize].name);
        model.outputs.push((name, h));
    }
    Ok(())
}
