//! Loops emitted once: the steps of an unrolled `for` loop written as one Rust loop.
//!
//! Lowering unrolls a loop and tags every node with its step ([`LoopStep`]); the
//! plan orders the generated function's steps with those tags intact. This module
//! takes a plan and gives what [`super::body::Body`] needs to write a run of
//! consecutive loop steps as `for l in a..b { body }` with the body written once:
//!
//! - [`Families`]: the nodes of a loop's steps that play one part in their step
//!   (the same operation, source span, derivative rule and type, and the same
//!   occurrence of those in the step) are one *family*: `h` at each step, `d_z` at
//!   each step. Families are *stackable*: when its loop is rolled, a family's
//!   members stored in buffers live one
//!   after the other in one workspace buffer (`h_steps`, `[L, N, D]` in effect), and
//!   each step of generated code binds the members it reads or writes with
//!   `rt::steps_mut` (`let [h_prev, h_l] = rt::steps_mut(&mut *h_steps, n * 500,
//!   [l - 1, l]);`). Inside a rolled body a family member is named by its offset
//!   from the loop variable (`h_prev`, `h_l`, `h_next`).
//! - [`iterations`]: the function's steps grouped into loop iterations (consecutive
//!   steps of one tag), and [`run_len`], how many iterations from one form a run of
//!   consecutive indices of one loop (rising in the forward pass, falling in the
//!   backward one).
//!
//! Whether a run is rolled is decided by emission, not here: each iteration is
//! written with per-step names and indices relative to the loop variable, and
//! iterations whose text is the same as the first's are one loop. The text is the
//! proof: a name or a number that differs between steps, and is not expressed
//! through the loop variable, makes the texts differ, and those steps are written
//! out one by one as before. So rolling never changes what is computed, only how
//! often the code says it (the first step reading `x` where the others read the
//! step before is written on its own, and the rest rolled).

use crate::names::Namer;
use crate::plan::{Plan, Step};
use nnc_ir::{LoopStep, Model, NodeId};
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::ops::Range;

/// The nodes playing one part in each step of one loop.
#[derive(Clone, Debug)]
pub struct Family {
    pub lp: u32,
    /// By step position (`index - start`): the member, if that step has one (the
    /// first step of a backward pass often computes less).
    pub members: Vec<Option<NodeId>>,
    /// Its loop may roll: the members held in buffers share one stacked buffer
    /// (a slot per step, all of one type).
    pub stackable: bool,
    /// The stacked buffer's name (`h_steps`).
    pub stack: String,
    /// Names inside a rolled body, by offset from the loop variable: `h_prev` (-1),
    /// `h_l` (0), `h_next` (+1).
    pub near: [String; 3],
}

/// Every family of a model's loops, and which family each tagged node is in.
#[derive(Clone, Debug, Default)]
pub struct Families {
    pub list: Vec<Family>,
    /// Per node: its family and its step's index.
    of: Vec<Option<(usize, usize)>>,
}

impl Families {
    /// The families of `model`'s loops; only those of the loops in `stacked` may be
    /// stacked (the loops that roll, so that loops written out keep their buffers).
    /// Their names are reserved in `namer` (`node_names`: the nodes' own names).
    pub fn new(
        model: &Model,
        node_names: &[String],
        namer: &mut Namer,
        stacked: &BTreeSet<u32>,
    ) -> Families {
        // Each tagged node's part: its key, and how many nodes of its step had that
        // key before it.
        let mut seen: HashMap<(LoopStep, Part), usize> = HashMap::new();
        let mut parts: BTreeMap<(u32, Part, usize), Vec<Option<NodeId>>> = BTreeMap::new();
        for (i, node) in model.nodes.iter().enumerate() {
            let Some(step) = node.step else { continue };
            let Some(info) = model.loops.get(step.lp as usize) else {
                continue;
            };
            let part = Part::of(node);
            let occurrence = seen.entry((step, part.clone())).or_default();
            let members = parts
                .entry((step.lp, part, *occurrence))
                .or_insert_with(|| vec![None; info.end - info.start]);
            *occurrence += 1;
            if let Some(slot) = members.get_mut(step.index - info.start) {
                *slot = Some(NodeId(i as u32));
            }
        }
        let mut families = Families {
            list: vec![],
            of: vec![None; model.nodes.len()],
        };
        for ((lp, _, _), members) in parts {
            families.push(model, node_names, namer, stacked, lp, members);
        }
        families
    }

    fn push(
        &mut self,
        model: &Model,
        node_names: &[String],
        namer: &mut Namer,
        stacked: &BTreeSet<u32>,
        lp: u32,
        members: Vec<Option<NodeId>>,
    ) {
        let present: Vec<NodeId> = members.iter().flatten().copied().collect();
        let (Some(first), Some(last)) = (present.first(), present.last()) else {
            return;
        };
        if present.len() < 2 {
            return;
        }
        let stackable =
            stacked.contains(&lp) && present.iter().all(|n| model.ty(*n) == model.ty(*first));
        let base = family_base(&node_names[last.index()]);
        let index = &model.loops[lp as usize].index;
        let family = self.list.len();
        let start = model.loops[lp as usize].start;
        for (p, n) in members.iter().enumerate() {
            if let Some(n) = n {
                self.of[n.index()] = Some((family, start + p));
            }
        }
        // Names only for families that can appear in a rolled body.
        let (stack, near) = if stacked.contains(&lp) {
            (
                namer.fresh(&format!("{base}_steps")),
                [
                    namer.fresh(&format!("{base}_prev")),
                    namer.fresh(&format!("{base}_{index}")),
                    namer.fresh(&format!("{base}_next")),
                ],
            )
        } else {
            Default::default()
        };
        self.list.push(Family {
            lp,
            members,
            stackable,
            stack,
            near,
        });
    }

    /// The family of a tagged node and its step's index.
    pub fn of(&self, n: NodeId) -> Option<(&Family, usize)> {
        let (f, index) = self.of.get(n.index()).copied().flatten()?;
        Some((&self.list[f], index))
    }

    /// Whether `n` lives in its family's stacked buffer when it is held in a buffer.
    pub fn stacked(&self, n: NodeId) -> Option<usize> {
        let (f, _) = self.of.get(n.index()).copied().flatten()?;
        self.list[f].stackable.then_some(f)
    }
}

/// A family's name from one member's: without `r#` and without the step number
/// lowering appends (`h_9` is `h`; `t42` stays).
fn family_base(name: &str) -> String {
    let name = name.trim_start_matches("r#");
    match name.rsplit_once('_') {
        Some((base, step))
            if !base.is_empty() && !step.is_empty() && step.chars().all(|c| c.is_ascii_digit()) =>
        {
            base.to_string()
        }
        _ => name.to_string(),
    }
}

/// What makes nodes of different steps one family (with their occurrence in the
/// step): the operation (not its constants: `w[l]` slices another row at each
/// step), where it is in the source, the rule that built it, and its type.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct Part {
    op: String,
    span: (usize, usize),
    rule: Option<&'static str>,
    ty: String,
}

impl Part {
    fn of(node: &nnc_ir::Node) -> Part {
        let op = format!("{:?}", node.op).replace(|c: char| c.is_ascii_digit(), "");
        Part {
            op,
            span: (node.span.start, node.span.end),
            rule: node.rule,
            ty: format!("{:?}", node.ty),
        }
    }
}

/// Consecutive steps of a plan with one loop-step tag (`None`: outside loops, or
/// computing values of several steps together).
#[derive(Clone, Debug, PartialEq)]
pub struct Iteration {
    pub tag: Option<LoopStep>,
    pub steps: Range<usize>,
}

/// The loop step every node a plan step computes belongs to, if they share one.
fn step_tag(model: &Model, step: &Step) -> Option<LoopStep> {
    let nodes: Vec<NodeId> = match step {
        Step::Scalar(n) | Step::Fill(n) => vec![*n],
        // A product written into rows of a stack's gradient is its step's.
        Step::Gemm {
            matmul,
            rows: Some(_),
            ..
        } => vec![*matmul],
        Step::Gemm { matmul, dest, .. } => vec![*matmul, *dest],
        Step::Nest(nest) => nest.members.iter().map(|m| m.node).collect(),
        Step::Assemble { .. } => return None,
    };
    let first = model.node(*nodes.first()?).step?;
    nodes
        .iter()
        .all(|n| model.node(*n).step == Some(first))
        .then_some(first)
}

/// The plan's steps grouped into iterations.
pub fn iterations(model: &Model, plan: &Plan) -> Vec<Iteration> {
    let mut out: Vec<Iteration> = vec![];
    for (k, step) in plan.steps.iter().enumerate() {
        let tag = step_tag(model, step);
        match out.last_mut() {
            Some(last) if last.tag == tag && tag.is_some() => last.steps.end = k + 1,
            _ => out.push(Iteration {
                tag,
                steps: k..k + 1,
            }),
        }
    }
    out
}

/// How many iterations from the first of `its` are consecutive steps of one loop,
/// in one direction (at least 1).
pub fn run_len(its: &[Iteration]) -> usize {
    let Some(Some(first)) = its.first().map(|it| it.tag) else {
        return 1;
    };
    let Some(Some(second)) = its.get(1).map(|it| it.tag) else {
        return 1;
    };
    let dir = second.index as isize - first.index as isize;
    if second.lp != first.lp || dir.abs() != 1 {
        return 1;
    }
    its.iter()
        .enumerate()
        .take_while(|(k, it)| {
            it.tag.is_some_and(|t| {
                t.lp == first.lp && t.index as isize == first.index as isize + dir * *k as isize
            })
        })
        .count()
}

/// Replaces every identifier `from` in `ts` by `to` (the loop variable's
/// placeholder by its name, once the body is known not to use that name).
pub fn rename_ident(
    ts: proc_macro2::TokenStream,
    from: &str,
    to: &proc_macro2::Ident,
) -> proc_macro2::TokenStream {
    use proc_macro2::{Group, TokenTree};
    ts.into_iter()
        .map(|t| match t {
            TokenTree::Ident(i) if i == from => TokenTree::Ident(to.clone()),
            TokenTree::Group(g) => {
                let mut new = Group::new(g.delimiter(), rename_ident(g.stream(), from, to));
                new.set_span(g.span());
                TokenTree::Group(new)
            }
            other => other,
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn it(lp: u32, index: usize) -> Iteration {
        Iteration {
            tag: Some(LoopStep { lp, index }),
            steps: 0..1,
        }
    }

    #[test]
    fn family_names_drop_the_step_number() {
        assert_eq!(family_base("h_9"), "h");
        assert_eq!(family_base("d_h_12"), "d_h");
        assert_eq!(family_base("t42"), "t42");
        assert_eq!(family_base("r#loop"), "loop");
        assert_eq!(family_base("x_"), "x_");
    }

    #[test]
    fn runs_are_consecutive_indices_of_one_loop_in_one_direction() {
        let up = [it(0, 0), it(0, 1), it(0, 2), it(1, 3)];
        assert_eq!(run_len(&up), 3);
        let down = [it(0, 5), it(0, 4), it(0, 3), it(0, 1)];
        assert_eq!(run_len(&down), 3);
        let untagged = Iteration {
            tag: None,
            steps: 0..1,
        };
        assert_eq!(run_len(&[untagged, it(0, 0)]), 1);
        assert_eq!(run_len(&[it(0, 0), it(0, 2)]), 1);
        assert_eq!(run_len(&[it(0, 0)]), 1);
    }
}
