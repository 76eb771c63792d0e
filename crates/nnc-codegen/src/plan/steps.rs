//! **In what order do the steps run?** The last part of "where does it live": a
//! stored value lives from the step that writes it to the steps that read it. Takes
//! the kinds and the scheduled nests; gives the function's [`Step`]s (nests, scalar
//! `let`s, fills and matmuls) in an order that finishes every value before a step
//! reads it, keeping the IR's order where there is a choice, and the step that
//! computes each node.

use super::kind::Kinds;
use super::{Kind, Nest, Step, gemm_base};
use nnc_ir::NodeId;

/// The steps in order, and the step computing each node.
pub(super) fn ordered(kinds: &Kinds<'_>, nests: Vec<Nest>) -> (Vec<Step>, Vec<Option<usize>>) {
    let (steps, step_of) = listed(kinds, nests);
    let order = order(kinds, &steps, &step_of);
    let mut remap = vec![0; steps.len()];
    for (new, old) in order.iter().enumerate() {
        remap[*old] = new;
    }
    let mut slots: Vec<Option<Step>> = steps.into_iter().map(Some).collect();
    let steps = order.iter().filter_map(|o| slots[*o].take()).collect();
    let step_of = step_of.into_iter().map(|s| s.map(|s| remap[s])).collect();
    (steps, step_of)
}

/// The steps unordered: the nests, then the other steps in the IR's order.
fn listed(kinds: &Kinds<'_>, nests: Vec<Nest>) -> (Vec<Step>, Vec<Option<usize>>) {
    let mut steps: Vec<Step> = vec![];
    let mut step_of: Vec<Option<usize>> = vec![None; kinds.model.nodes.len()];
    for nest in nests {
        for m in &nest.members {
            step_of[m.node.index()] = Some(steps.len());
        }
        steps.push(Step::Nest(nest));
    }
    for (i, kind) in kinds.kind.iter().enumerate() {
        let n = NodeId(i as u32);
        let step = match kind {
            Kind::Scalar => Step::Scalar(n),
            Kind::Fill => Step::Fill(n),
            Kind::Assembled => Step::Assemble {
                dest: n,
                pieces: kinds.assembly[i].clone().unwrap_or_default(),
            },
            Kind::Gemm if kinds.absorbed[i] => continue,
            Kind::Gemm => {
                let dest = kinds.alias_of[i].unwrap_or(n);
                let piece = kinds.assembly[dest.index()].iter().flatten();
                Step::Gemm {
                    matmul: n,
                    dest,
                    accumulate: false,
                    rows: piece.into_iter().find(|p| p.value == n).map(|p| p.start),
                }
            }
            // Its nest (if any) writes the first term; the value is final after the
            // matmul accumulates.
            Kind::GemmAcc => match kinds.gemm_acc[i] {
                Some((_, m)) => Step::Gemm {
                    matmul: m,
                    dest: n,
                    accumulate: true,
                    rows: None,
                },
                None => continue,
            },
            _ => continue,
        };
        step_of[i] = Some(steps.len());
        steps.push(step);
    }
    (steps, step_of)
}

/// The steps in an order that respects every dependency, keeping the IR's order
/// where there is a choice (Kahn's algorithm, the step with the smallest first
/// node first).
fn order(kinds: &Kinds<'_>, steps: &[Step], step_of: &[Option<usize>]) -> Vec<usize> {
    let (first, deps): (Vec<usize>, Vec<Vec<usize>>) = (0..steps.len())
        .map(|s| dependencies(kinds, steps, step_of, s))
        .unzip();
    let mut done = vec![false; steps.len()];
    let mut order = vec![];
    while order.len() < steps.len() {
        let next = (0..steps.len())
            .filter(|s| !done[*s] && deps[*s].iter().all(|d| done[*d]))
            .min_by_key(|s| first[*s]);
        match next {
            Some(s) => {
                done[s] = true;
                order.push(s);
            }
            // A cycle would be a planner bug; emit the rest in IR order.
            None => {
                let mut rest: Vec<usize> = (0..steps.len()).filter(|s| !done[*s]).collect();
                rest.sort_by_key(|s| first[*s]);
                for s in rest {
                    done[s] = true;
                    order.push(s);
                }
            }
        }
    }
    order
}

/// Step `s`'s place in the IR's order (the index of the node it starts with), and
/// the steps it must come after.
fn dependencies(
    kinds: &Kinds<'_>,
    steps: &[Step],
    step_of: &[Option<usize>],
    s: usize,
) -> (usize, Vec<usize>) {
    let model = kinds.model;
    let finishing = |values: Vec<NodeId>| finishing_steps(kinds, values, step_of);
    let (first, mut deps) = match &steps[s] {
        Step::Scalar(n) | Step::Fill(n) => (n.index(), finishing(model.node(*n).args.clone())),
        Step::Gemm {
            matmul,
            dest,
            accumulate,
            ..
        } => {
            let bases = model.node(*matmul).args.iter();
            let mut deps = finishing(bases.map(|a| gemm_base(model, *a)).collect());
            if *accumulate {
                deps.extend(first_term_step(kinds, steps, *dest));
            }
            let first = if *accumulate { dest } else { matmul };
            (first.index(), deps)
        }
        Step::Nest(nest) => {
            let first = nest.members.first().map_or(0, |m| m.node.index());
            let reads = nest.members.iter().flat_map(|m| kinds.fargs(m.node));
            (first, finishing(reads.collect()))
        }
        // After every piece: products are finished by their own steps.
        Step::Assemble { dest, pieces } => {
            let reads = pieces.iter().map(|p| p.value).collect();
            (dest.index(), finishing(reads))
        }
    };
    deps.retain(|d| *d != s);
    deps.sort_unstable();
    deps.dedup();
    (first, deps)
}

/// The steps that finish the values `values` reads (through inline nodes).
fn finishing_steps(
    kinds: &Kinds<'_>,
    values: Vec<NodeId>,
    step_of: &[Option<usize>],
) -> Vec<usize> {
    let reads = kinds.reads_of(values, &|_| false).outside;
    reads
        .into_iter()
        .filter_map(|o| {
            // An aliased matmul is finished by its GemmAcc's last step.
            step_of[o.index()]
                .or_else(|| kinds.alias_of[o.index()].and_then(|r| step_of[r.index()]))
        })
        .collect()
}

/// The step writing the first term of `GemmAcc` `dest`: its matmul, when that writes
/// straight into the buffer, else the nest computing `dest`.
fn first_term_step(kinds: &Kinds<'_>, steps: &[Step], dest: NodeId) -> Option<usize> {
    let (p, _) = kinds.gemm_acc[dest.index()]?;
    if kinds.alias_of[p.index()] == Some(dest) {
        steps
            .iter()
            .position(|t| matches!(t, Step::Gemm { matmul, accumulate: false, .. } if *matmul == p))
    } else {
        steps.iter().position(|t| match t {
            Step::Nest(nest) => nest.member(dest).is_some(),
            _ => false,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{RELU, TWO_LAYER, train};
    use super::super::{Step, gemm_base};
    use nnc_ir::NodeId;

    #[test]
    fn steps_come_after_what_they_read() {
        for src in [TWO_LAYER, RELU] {
            let (m, p) = train(src);
            let mut done = vec![false; m.nodes.len()];
            for (s, step) in p.steps.iter().enumerate() {
                let reads: Vec<NodeId> = match step {
                    Step::Gemm { matmul, .. } => m
                        .node(*matmul)
                        .args
                        .iter()
                        .map(|a| gemm_base(&m, *a))
                        .collect(),
                    Step::Scalar(n) | Step::Fill(n) => m.node(*n).args.clone(),
                    Step::Assemble { pieces, .. } => pieces.iter().map(|p| p.value).collect(),
                    Step::Nest(nest) => nest
                        .members
                        .iter()
                        .flat_map(|mm| m.node(mm.node).args.clone())
                        .collect(),
                };
                for r in reads {
                    if let Some(t) = p.step_of[r.index()] {
                        assert!(
                            t <= s || done[r.index()],
                            "step {s} reads %{} from step {t}",
                            r.0
                        );
                    }
                }
                for (i, st) in p.step_of.iter().enumerate() {
                    if *st == Some(s) {
                        done[i] = true;
                    }
                }
            }
        }
    }
}
