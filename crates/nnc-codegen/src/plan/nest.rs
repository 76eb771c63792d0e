//! **Which loop computes each member?** Takes the [`Kinds`]; gives a [`Grouping`]:
//! the nests (an iteration space and an inner axis each), the nest of every member,
//! and how it sits there (its axes, its level: per pass, per row, or per nest).
//!
//! Members are grouped greedily, in topological order. A member joins the nest of
//! the values it reads when its shapes line up with the nest's (`place.rs`) and no
//! value computed outside the nest lies between them (`can_join`); when it reads
//! several nests, they are first merged into one if they can run as one
//! (`can_merge`); otherwise it starts a nest of its own (its natural one). Last,
//! nests over the same space that read the same array merge (`merge_siblings`).
//! Where in its row each member is computed is `schedule.rs`'s question.

use super::kind::{Kinds, Reads};
use super::place::{Placement, natural};
use super::{Kind, Level, scalar_like, unit};
use nnc_ir::{NodeId, Shape};

/// A nest being formed.
#[derive(Clone, Debug)]
pub(super) struct NestBuild {
    /// The iteration space (no size-1 axes).
    pub(super) domain: Shape,
    /// The inner axis.
    pub(super) r: usize,
    /// In topological order.
    pub(super) members: Vec<NodeId>,
}

/// Which nest computes each member, and how it sits there.
#[derive(Clone)]
pub(super) struct Grouping<'k, 'm> {
    pub(super) kinds: &'k Kinds<'m>,
    /// `None` for nests merged into another.
    pub(super) nests: Vec<Option<NestBuild>>,
    pub(super) nest_of: Vec<Option<usize>>,
    /// Per member: for each of its axes, the nest axis it runs along.
    pub(super) axes: Vec<Vec<Option<usize>>>,
    /// Per reduction-like member: the same for the operand it reduces.
    pub(super) input_axes: Vec<Vec<Option<usize>>>,
    pub(super) level: Vec<Option<Level>>,
}

impl<'k, 'm> Grouping<'k, 'm> {
    /// Groups the members of `kinds` into nests.
    pub(super) fn form(kinds: &'k Kinds<'m>) -> Grouping<'k, 'm> {
        let mut grouping = Grouping::grouped(kinds);
        grouping.merge_siblings();
        grouping
    }

    /// The nests each member joins or starts, before siblings merge.
    fn grouped(kinds: &'k Kinds<'m>) -> Grouping<'k, 'm> {
        let len = kinds.model.nodes.len();
        let mut grouping = Grouping {
            kinds,
            nests: vec![],
            nest_of: vec![None; len],
            axes: vec![vec![]; len],
            input_axes: vec![vec![]; len],
            level: vec![None; len],
        };
        for i in 0..len {
            let n = NodeId(i as u32);
            if kinds.in_a_nest(n) {
                grouping.group(n);
            }
        }
        grouping
    }

    /// Puts `n` in a nest: the nests it reads merged into one, else the first of
    /// them it can join, else a nest of its own.
    fn group(&mut self, n: NodeId) {
        let cands = self.candidates(n);
        if cands.len() > 1 && self.join_merged(n, &cands) {
            return;
        }
        let joinable = cands
            .iter()
            .find_map(|&x| self.can_join(n, x).map(|p| (x, p)));
        match joinable {
            Some((x, p)) => self.add(n, x, p),
            None => self.start_nest(n),
        }
    }

    /// Merges the nests `xs` into the first and adds `n` to it, when all of that is
    /// possible; else leaves the grouping as it was.
    fn join_merged(&mut self, n: NodeId, xs: &[usize]) -> bool {
        let saved = self.clone();
        let first = xs[0];
        for &x in &xs[1..] {
            if !self.can_merge(first, x) {
                *self = saved;
                return false;
            }
            self.merge(first, x);
        }
        match self.can_join(n, first) {
            Some(p) => {
                self.add(n, first, p);
                true
            }
            None => {
                *self = saved;
                false
            }
        }
    }

    /// A nest of `n`'s own: its natural domain and inner axis.
    fn start_nest(&mut self, n: NodeId) {
        let (domain, r) = natural(self.kinds, n);
        self.nests.push(Some(NestBuild {
            domain,
            r,
            members: vec![],
        }));
        let x = self.nests.len() - 1;
        // `place` cannot fail for a natural nest; keep the node computable anyway
        // as a nest of its own shape with identity axes.
        let p = self.place(n, x).unwrap_or_else(|| self.identity(n));
        self.add(n, x, p);
    }

    fn identity(&self, n: NodeId) -> Placement {
        let axes = self
            .kinds
            .shape(n)
            .iter()
            .enumerate()
            .map(|(k, d)| (!unit(*d)).then_some(k))
            .collect();
        Placement {
            axes,
            level: Level::Pass,
            input_axes: vec![],
        }
    }

    /// What `n` reads for its nest, through inline nodes: members of the nests `xs`
    /// inside, every other node outside.
    pub(super) fn reads(&self, n: NodeId, xs: &[usize]) -> Reads {
        self.kinds.reads(n, &|o| {
            self.nest_of[o.index()].is_some_and(|x| xs.contains(&x))
        })
    }

    /// What the members of the nests `xs` read, as [`Grouping::reads`].
    fn nest_reads(&self, xs: &[usize]) -> Reads {
        let mut all = Reads::default();
        for nest in xs.iter().filter_map(|x| self.nests[*x].as_ref()) {
            for m in &nest.members {
                let reads = self.reads(*m, xs);
                all.outside.extend(reads.outside);
                all.inside.extend(reads.inside);
            }
        }
        all
    }

    /// The nests holding members that `n` reads (through inline nodes).
    fn candidates(&self, n: NodeId) -> Vec<usize> {
        let reads = self.kinds.reads(n, &|o| self.nest_of[o.index()].is_some());
        let mut out = vec![];
        for x in reads.inside.iter().filter_map(|m| self.nest_of[m.index()]) {
            if !out.contains(&x) {
                out.push(x);
            }
        }
        out
    }

    /// A member whose value cannot be read inside its own nest: nest-level
    /// accumulations (ready only after the nest) and `GemmAcc`s (final only after
    /// their matmul).
    fn unavailable_inside(&self, m: NodeId) -> bool {
        self.level[m.index()] == Some(Level::Nest) || self.kinds.kind[m.index()] == Kind::GemmAcc
    }

    /// Whether the values read inside the nests `xs` are available there, and no
    /// value read from outside depends on them.
    fn independent(&self, reads: &Reads, xs: &[usize]) -> bool {
        if reads.inside.iter().any(|m| self.unavailable_inside(*m)) {
            return false;
        }
        // Parameters, inputs and constants depend on nothing: most reads from
        // outside are those, and then no search is needed (searching for every
        // node made planning quadratic in the length of a chain of values).
        let model = self.kinds.model;
        let computed = || {
            reads
                .outside
                .iter()
                .filter(|e| !model.node(**e).args.is_empty())
        };
        if computed().next().is_none() {
            return true;
        }
        let mut targets = vec![false; model.nodes.len()];
        for e in computed() {
            targets[e.index()] = true;
        }
        !self.reaches(xs, &targets)
    }

    /// Whether a node marked in `targets` depends on the nests `xs`, counting a nest
    /// as one step (a node depending on one member of a nest makes the whole nest
    /// depend on it). Stops at the first one found.
    fn reaches(&self, xs: &[usize], targets: &[bool]) -> bool {
        let mut seen = vec![false; self.kinds.model.nodes.len()];
        let mut queue: Vec<NodeId> = xs
            .iter()
            .filter_map(|x| self.nests[*x].as_ref())
            .flat_map(|n| n.members.iter().copied())
            .collect();
        for m in &queue {
            seen[m.index()] = true;
        }
        while let Some(v) = queue.pop() {
            for u in &self.kinds.users[v.index()] {
                if seen[u.index()] {
                    continue;
                }
                if targets[u.index()] {
                    return true;
                }
                seen[u.index()] = true;
                queue.push(*u);
                if let Some(z) = self.nest_of[u.index()]
                    && let Some(nest) = &self.nests[z]
                {
                    for w in &nest.members {
                        if targets[w.index()] {
                            return true;
                        }
                        if !seen[w.index()] {
                            seen[w.index()] = true;
                            queue.push(*w);
                        }
                    }
                }
            }
        }
        false
    }

    /// Whether `n` may be computed in nest `x`, and how: the values it reads there
    /// are available, and none of the values it reads from elsewhere depends on `x`.
    fn can_join(&self, n: NodeId, x: usize) -> Option<Placement> {
        if !self.independent(&self.reads(n, &[x]), &[x]) {
            return None;
        }
        self.place(n, x)
    }

    /// Whether nests `x` and `y` can run as one: same iteration space, nothing
    /// outside them between them, and no member reading a value of the other that is
    /// only ready after it.
    fn can_merge(&self, x: usize, y: usize) -> bool {
        let (Some(nx), Some(ny)) = (&self.nests[x], &self.nests[y]) else {
            return false;
        };
        if nx.domain != ny.domain || nx.r != ny.r {
            return false;
        }
        let both = [x, y];
        self.independent(&self.nest_reads(&both), &both)
            && !self.reads_shifted_from(x, y)
            && !self.reads_shifted_from(y, x)
    }

    /// Whether a member of nest `x` reads, through a slice or pad, a value nest `y`
    /// computes: merged, it would read rows the one loop is still writing (a thin
    /// product's `v0[1:2]` next to the row-by-row `v0`).
    fn reads_shifted_from(&self, x: usize, y: usize) -> bool {
        self.nests[x].as_ref().is_some_and(|nx| {
            nx.members.iter().any(|m| {
                self.kinds
                    .shifted_reads(*m)
                    .iter()
                    .any(|o| self.nest_of[o.index()] == Some(y))
            })
        })
    }

    /// Nest `y`'s members moved into nest `x`.
    fn merge(&mut self, x: usize, y: usize) {
        let Some(ny) = self.nests[y].take() else {
            return;
        };
        for m in &ny.members {
            self.nest_of[m.index()] = Some(x);
        }
        if let Some(nx) = &mut self.nests[x] {
            nx.members.extend(ny.members);
            nx.members.sort();
        }
    }

    fn add(&mut self, n: NodeId, x: usize, p: Placement) {
        self.nest_of[n.index()] = Some(x);
        self.axes[n.index()] = p.axes;
        self.input_axes[n.index()] = p.input_axes;
        self.level[n.index()] = Some(p.level);
        if let Some(nest) = &mut self.nests[x] {
            nest.members.push(n);
        }
    }

    /// Nests over the same domain that read the same array and do not depend on each
    /// other run as one (one read of the array instead of two).
    ///
    /// Merges the first such pair (in order of creation), then the first of what is
    /// left, until none is left, without searching every pair again after each
    /// merge (which made planning cubic in the number of nests: 35 s of a 64-layer
    /// stack's 36 s in the debug profile). That is exact because merging `x` and
    /// `y` only adds dependencies: a pair without either that could not merge
    /// before still cannot, so the first mergeable pair after a merge is one of
    /// `x`'s: with an earlier nest, or else with a later one.
    fn merge_siblings(&mut self) {
        let mut live: Vec<usize> = (0..self.nests.len())
            .filter(|x| self.nests[*x].is_some())
            .collect();
        let mut inputs: Vec<Vec<NodeId>> = (0..self.nests.len()).map(|z| self.inputs(z)).collect();
        let mut i = 0;
        while i < live.len() {
            let x = live[i];
            let Some(j) = (i + 1..live.len()).find(|&j| self.siblings(x, live[j], &inputs)) else {
                i += 1;
                continue;
            };
            let y = live.remove(j);
            self.merge(x, y);
            inputs[x] = self.inputs(x);
            if let Some(earlier) = (0..i).find(|&h| self.siblings(live[h], x, &inputs)) {
                i = earlier;
            }
        }
    }

    /// Whether nests `x` and `y` (`x` created first) can merge as siblings: over
    /// the same space, reading an array in common (`inputs`: each nest's
    /// [`Grouping::inputs`]), and independent.
    fn siblings(&self, x: usize, y: usize, inputs: &[Vec<NodeId>]) -> bool {
        let (Some(nx), Some(ny)) = (&self.nests[x], &self.nests[y]) else {
            return false;
        };
        nx.domain == ny.domain
            && nx.r == ny.r
            && inputs[y].iter().any(|e| inputs[x].contains(e))
            && self.can_merge(x, y)
    }

    /// The arrays (not scalars) nest `z`'s members read from outside it.
    fn inputs(&self, z: usize) -> Vec<NodeId> {
        if self.nests[z].is_none() {
            return vec![];
        }
        let mut outside = self.nest_reads(&[z]).outside;
        outside.retain(|e| !scalar_like(self.kinds.shape(*e)));
        outside
    }
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{RELU, example, model, nests, train};
    use super::super::kind::Kinds;
    use super::super::{Entry, Level, Step, plan};
    use super::Grouping;

    /// What `merge_siblings` computes, by its definition: merge the first pair (in
    /// order of creation) that can merge, then search every pair again.
    fn merge_siblings_by_definition(g: &mut Grouping<'_, '_>) {
        'search: loop {
            let live: Vec<usize> = (0..g.nests.len())
                .filter(|x| g.nests[*x].is_some())
                .collect();
            let inputs: Vec<_> = (0..g.nests.len()).map(|z| g.inputs(z)).collect();
            for (i, &x) in live.iter().enumerate() {
                for &y in &live[i + 1..] {
                    if g.siblings(x, y, &inputs) {
                        g.merge(x, y);
                        continue 'search;
                    }
                }
            }
            return;
        }
    }

    #[test]
    fn siblings_merge_as_by_their_definition() {
        // Models with many nests over shared inputs (together at least 20 merges,
        // checked below). Their merges do not depend on one another's order: this
        // checks the merged nests, not the search's order (reversing that order
        // passes too).
        let stack = std::fs::read_to_string(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../../examples/models/deep_stack.nn"),
        )
        .expect("deep_stack.nn")
        .replace("D = 500", "D = 2")
        .replace("L = 10", "L = 16")
        .replace("C = 10,", "C = 1048576,")
        .replace("input x: [N, D];", "input x: [N, D] grad;");
        // As code generation plans them: thin products expanded into loops.
        let models = [
            model(&stack),
            example("deep_tanh.nn"),
            example("deep_dropout_bn.nn"),
            example("spiral.nn"),
            example("activations.nn"),
            model(RELU),
        ]
        .map(|m| crate::thin::expand(&m));
        let mut merges = 0;
        for m in &models {
            for entry in [Entry::LossAndGrad, Entry::Forward] {
                let kinds = Kinds::new(m, entry, &[]);
                let grouped = Grouping::grouped(&kinds);
                let mut fast = grouped.clone();
                fast.merge_siblings();
                let mut reference = grouped.clone();
                merge_siblings_by_definition(&mut reference);
                assert_eq!(fast.nest_of, reference.nest_of, "{}", m.name);
                let members = |g: &Grouping<'_, '_>| {
                    g.nests
                        .iter()
                        .map(|n| n.as_ref().map(|n| n.members.clone()))
                        .collect::<Vec<_>>()
                };
                assert_eq!(members(&fast), members(&reference), "{}", m.name);
                let merged =
                    grouped.nests.iter().flatten().count() - fast.nests.iter().flatten().count();
                merges += merged;
            }
        }
        assert!(
            merges >= 20,
            "only {merges} merges: the test checks too little"
        );
    }

    #[test]
    fn a_bias_gradient_is_a_column_sum_in_the_loop_computing_its_operand() {
        let (m, p) = train(RELU);
        let (d_b, _) = m.grads[1];
        assert_eq!(m.grad_name(d_b), "b");
        let d_b = m.grads[1].1;
        let home = p.step_of[d_b.index()];
        let operand = m.node(d_b).args[0];
        assert_eq!(home, p.step_of[operand.index()]);
        assert_eq!(p.member(d_b).map(|(_, mm)| mm.level), Some(Level::Nest));
    }

    #[test]
    fn softmax_cross_entropy_and_its_gradient_are_one_nest() {
        let m = model(
            "model m { dtype f64; dim N, D = 2, C = 3; input x: [N, D]; input labels: index[N];
             param w: [D, C] = zeros; param b: [C] = zeros;
             loss softmax_cross_entropy(x @ w + b, labels); }",
        );
        let p = plan(&m, Entry::LossAndGrad);
        let ns = nests(&p);
        assert_eq!(ns.len(), 1, "{:#?}", p.steps);
        assert_eq!(ns[0].passes, 3);
        let gemms = p
            .steps
            .iter()
            .filter(|s| matches!(s, Step::Gemm { .. }))
            .count();
        assert_eq!(gemms, 2, "x @ w and x.T @ d_scores");
    }
}
