//! **Where does each node live?** Takes the kinds and the grouping into nests; gives
//! each node's [`Hold`]: nothing, in place (leaves), inline, a local, a workspace
//! buffer, the caller's gradient, or registers inside its nest.
//!
//! A member is stored only when something outside its nest reads it: a matmul,
//! another nest or step, or the caller (results). Stored results that are gradients
//! are written straight into the caller's `Grads`.

use super::kind::Kinds;
use super::nest::Grouping;
use super::{Entry, Hold, Kind, scalar_like};
use nnc_ir::{Model, NodeId, Op, ReduceOp};

/// Members that are stored whatever the grouping: results, matmul operands, and
/// operands of steps outside any nest (scalars, fills, `GemmAcc` first terms).
pub(super) fn must_store(kinds: &Kinds<'_>) -> Vec<bool> {
    let mut out = vec![false; kinds.model.nodes.len()];
    for n in kinds.roots.iter().chain(&kinds.gemm_operands()) {
        out[n.index()] = true;
    }
    // A result that is a view (`d_p = reshape(d_s[:, 2:3], [1])`, written with a
    // fill) reads the arrays under it where they are stored.
    for n in &kinds.roots {
        if kinds.kind[n.index()] == Kind::Inline {
            for e in kinds.operands(*n) {
                out[e.index()] = true;
            }
        }
    }
    for (i, kind) in kinds.kind.iter().enumerate() {
        if matches!(kind, Kind::Scalar | Kind::Fill) {
            for e in kinds.operands(NodeId(i as u32)) {
                out[e.index()] = true;
            }
        }
    }
    // Pieces copied into an assembled value are copied from their buffers.
    for p in kinds.assembly.iter().flatten().flatten() {
        if !p.product {
            out[p.value.index()] = true;
        }
    }
    out
}

/// Which nodes are stored: those stored whatever the grouping, and members read
/// outside their nest (through inline nodes).
fn stored(grouping: &Grouping<'_, '_>) -> Vec<bool> {
    let kinds = grouping.kinds;
    let mut store = must_store(kinds);
    for (i, kind) in kinds.kind.iter().enumerate() {
        if matches!(kind, Kind::Member | Kind::GemmAcc) {
            let home: Vec<usize> = grouping.nest_of[i].into_iter().collect();
            for e in grouping.reads(NodeId(i as u32), &home).outside {
                store[e.index()] = true;
            }
        }
    }
    store
}

/// Where every node of the function lives.
pub(super) fn holds(grouping: &Grouping<'_, '_>, entry: Entry) -> Vec<Hold> {
    let kinds = grouping.kinds;
    let model = kinds.model;
    let store = stored(grouping);
    let mut gemm_operand = vec![false; model.nodes.len()];
    for n in kinds.gemm_operands() {
        gemm_operand[n.index()] = true;
    }
    let grad_slot = grad_slots(model, entry);
    let array = |i: usize, stored: bool| match (stored, grad_slot[i]) {
        (true, Some(k)) => Hold::Grad(k),
        (true, None) => Hold::Buffer,
        (false, _) => Hold::Register,
    };
    (0..model.nodes.len())
        .map(|i| match kinds.kind[i] {
            Kind::Unneeded => Hold::None,
            Kind::Leaf => Hold::Leaf,
            Kind::Inline => Hold::Inline,
            Kind::Scalar => Hold::Local,
            Kind::Gemm if kinds.alias_of[i].is_some() || kinds.absorbed[i] => Hold::None,
            Kind::Gemm | Kind::GemmAcc | Kind::Fill | Kind::Assembled => array(i, true),
            Kind::Member => match model.nodes[i].op {
                Op::ExtremumMask { axis: None, .. } => Hold::ArgPos,
                // A sum a GEMM reads as an array goes to its buffer even when it
                // holds one element.
                Op::Reduce {
                    op: ReduceOp::Sum, ..
                } if gemm_operand[i] => array(i, true),
                _ if scalar_like(&model.nodes[i].ty.shape) => Hold::Local,
                _ => array(i, store[i]),
            },
        })
        .collect()
}

/// For each node that is a gradient `loss_and_grad` returns: its first position in
/// `Model::grads`.
fn grad_slots(model: &Model, entry: Entry) -> Vec<Option<usize>> {
    let mut slot = vec![None; model.nodes.len()];
    if entry == Entry::LossAndGrad {
        for (k, (_, g)) in model.grads.iter().enumerate() {
            if slot[g.index()].is_none() {
                slot[g.index()] = Some(k);
            }
        }
    }
    slot
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{TWO_LAYER, nests, plan_of, train};
    use super::super::{Entry, Hold};

    #[test]
    fn only_matmul_operands_and_results_are_stored() {
        let (m, p) = train(TWO_LAYER);
        let stored: Vec<&str> = (0..m.nodes.len())
            .filter(|i| matches!(p.hold[*i], Hold::Buffer | Hold::Grad(_)))
            .filter_map(|i| m.nodes[i].name.as_deref())
            .collect();
        assert_eq!(
            stored,
            [
                "t4", "h", "y_pred", "d_y_pred", "d_h", "d_w2", "d_t4", "d_w1"
            ]
        );
    }

    #[test]
    fn an_elementwise_chain_is_one_loop_and_its_intermediates_stay_in_registers() {
        let (_, p) = plan_of(
            "model m { dtype f64; dim N, D = 4; input x: [N, D]; input y: [N, D]; param w: [D, D] = zeros;
             loss sum((x @ w - y) ^ 2); }",
            Entry::Loss,
        );
        assert_eq!(nests(&p).len(), 1);
        let registers = p.hold.iter().filter(|h| **h == Hold::Register).count();
        assert_eq!(registers, 2, "x @ w - y and its square: {:?}", p.hold);
    }
}
