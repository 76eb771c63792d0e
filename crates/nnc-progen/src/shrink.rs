//! Greedy shrinking: smaller programs that still fail, until none is found.

use crate::ast::{Decl, DeclKind, Expr, Kind, Program, Ty};

/// The smallest program reachable from `program` by one-step cuts for which
/// `fails` stays true (`fails(program)` is assumed). Each accepted cut makes the
/// program strictly smaller ([`measure`]), so this ends; `fails` is called at most
/// once per candidate.
pub fn shrink(program: &Program, mut fails: impl FnMut(&Program) -> bool) -> Program {
    let mut current = program.clone();
    'progress: loop {
        let size = measure(&current);
        for candidate in candidates(&current) {
            if measure(&candidate) < size && fails(&candidate) {
                current = candidate;
                continue 'progress;
            }
        }
        return current;
    }
}

/// What shrinking decreases: expression nodes, then declarations and statements.
fn measure(p: &Program) -> usize {
    2 * p.size() + p.decls.len() + p.lets.len() + p.outputs.len() + p.consts.len()
}

/// One-step cuts, the biggest first.
fn candidates(p: &Program) -> Vec<Program> {
    let mut out = vec![];
    for k in 0..p.loss.len() {
        if p.loss.len() > 1 {
            let mut q = p.clone();
            q.loss.remove(k);
            out.push(q);
        }
    }
    for k in 0..p.outputs.len() {
        let mut q = p.clone();
        q.outputs.remove(k);
        out.push(q);
    }
    let used = p.used_names();
    for k in 0..p.lets.len() {
        if !used.contains(&p.lets[k].0) {
            let mut q = p.clone();
            q.lets.remove(k);
            out.push(q);
        }
    }
    // `let b = a;`: uses of `b` read `a`.
    for k in 0..p.lets.len() {
        if let Kind::Var(target) = &p.lets[k].1.kind {
            let mut q = p.clone();
            let alias = q.lets.remove(k).0;
            for e in q.exprs_mut() {
                rename(e, &alias, target);
            }
            // An `output b;` becomes `output b = a;`.
            out.push(q);
        }
    }
    for k in 0..p.decls.len() {
        if !used.contains(&p.decls[k].name) {
            let mut q = p.clone();
            q.decls.remove(k);
            out.push(q);
        }
    }
    for k in 0..p.consts.len() {
        if !used.contains(&p.consts[k].0) {
            let mut q = p.clone();
            q.consts.remove(k);
            out.push(q);
        }
    }
    let count = p.exprs().count();
    for e in 0..count {
        let Some(root) = p.exprs().nth(e) else {
            continue;
        };
        for at in 0..root.size() {
            let Some(node) = root.node(at) else {
                continue;
            };
            if node.ty != Ty::Float || matches!(node.kind, Kind::Var(_) | Kind::Num(_)) {
                continue;
            }
            // The node replaced by a child of its shape.
            for child in node.children() {
                if child.ty == Ty::Float && child.shape == node.shape {
                    out.push(replaced(p, e, at, child.clone()));
                }
            }
            // The node replaced by a new input of its shape.
            if node.size() >= 3 {
                let mut q = p.clone();
                let name = fresh_input(&q);
                q.decls.push(Decl {
                    name: name.clone(),
                    kind: DeclKind::Input { grad: false },
                    shape: node.shape.clone(),
                });
                let var = Expr::float(Kind::Var(name), node.shape.clone());
                out.push(replaced(&q, e, at, var));
            }
        }
    }
    out
}

/// `p` with node `at` (pre-order) of expression `e` replaced by `by`.
fn replaced(p: &Program, e: usize, at: usize, by: Expr) -> Program {
    let mut q = p.clone();
    if let Some(node) = q.exprs_mut().nth(e).and_then(|root| root.node_mut(at)) {
        *node = by;
    }
    q
}

fn rename(e: &mut Expr, from: &str, to: &str) {
    if let Kind::Var(v) = &mut e.kind
        && v == from
    {
        *v = to.to_string();
    }
    for c in e.children_mut() {
        rename(c, from, to);
    }
}

fn fresh_input(p: &Program) -> String {
    (0..)
        .map(|k| format!("s{k}"))
        .find(|name| !p.decls.iter().any(|d| &d.name == name))
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate;

    #[test]
    fn shrinking_keeps_the_failure_and_cuts_the_rest() {
        // A stand-in failure: "the program uses `sigmoid`".
        let fails = |p: &Program| p.exprs().any(|e| e.render().contains("sigmoid("));
        let seed = (0..200)
            .find(|&s| {
                let p = generate(s);
                fails(&p) && p.size() > 20
            })
            .expect("a program with sigmoid");
        let big = generate(seed);
        let small = shrink(&big, fails);
        assert!(fails(&small));
        assert!(small.size() < big.size() / 2, "{}", small.source());
        assert!(small.size() <= 8, "{}", small.source());
    }
}
