//! Workspace buffers shared by values whose lives do not overlap.
//!
//! Takes a function's statements (in the order they run) and the values it keeps
//! in workspace buffers; gives the groups of values that can take turns in one
//! buffer: values of the same element type and shape, each written only after
//! the one before it in the group is read for the last time.
//!
//! Why: a value per buffer makes a deep network's workspace several times the
//! size of what is live at once (W4: ten pre-activations, ten `d_h` and ten
//! `d_z` of 512 KiB each, where one of each is live at a time), and every fresh
//! buffer a product writes is fetched from memory. With one buffer per group the
//! buffers a step writes are still in cache from the layer before: W4's
//! workspace holds 12 buffers of `[N, 500]` instead of 40, and its step is 1.03x
//! faster on one thread and 1.04x on two (AVX-512, Zen 5, 2026-12-02, nnc-step
//! built with and without, alternating, 5 rounds; W1-W3 unchanged).
//!
//! A value's life is read off the statements themselves: from the first
//! statement that names its local to the last. Every use of a buffer goes
//! through that local, or through a local bound from it by a `let` of the
//! function's body (a row slice hoisted out of a loop, `let t10_row =
//! &t10[..n];`), whose uses count as the value's. Rust checks the rest:
//! each value's slice is a `&mut` borrow of its group's buffer, bound just before
//! its first statement, so a value used after the next one in its group is bound
//! would not compile.

use nnc_ir::NodeId;
use proc_macro2::{TokenStream, TokenTree};
use std::collections::{BTreeMap, BTreeSet};

/// A value kept in a buffer: its node, its local's name, and what must match for
/// two values to share a buffer (element type and shape, as text).
pub struct Candidate {
    pub node: NodeId,
    pub name: String,
    pub kind: String,
}

/// A value's life: the first and last statement naming it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Life {
    pub first: usize,
    pub last: usize,
}

/// A group of values taking turns in one buffer, in the order they are written,
/// with their lives.
#[derive(Debug)]
pub struct Group {
    pub members: Vec<(NodeId, Life)>,
}

/// The groups for `candidates` in `stmts` (the function's statements in order;
/// its results count as a last statement). Values not named by any statement are
/// left out. Of the buffers free when a value is first written, it takes the one
/// freed last: the most likely still in cache.
pub fn groups(stmts: &[TokenStream], candidates: &[Candidate]) -> Vec<Group> {
    let named = named(stmts);
    let mut lives: Vec<(&Candidate, Life)> = candidates
        .iter()
        .filter_map(|c| {
            let names_it = |n: &BTreeSet<String>| n.contains(&c.name);
            let first = named.iter().position(names_it)?;
            let last = named.iter().rposition(names_it).unwrap_or(first);
            Some((c, Life { first, last }))
        })
        .collect();
    lives.sort_by_key(|(c, life)| (life.first, c.node));
    let mut groups: Vec<(String, Group)> = vec![];
    for (c, life) in lives {
        let free = groups
            .iter_mut()
            .filter(|(kind, g)| *kind == c.kind && last_use(g) < life.first)
            .max_by_key(|(_, g)| last_use(g));
        match free {
            Some((_, g)) => g.members.push((c.node, life)),
            None => groups.push((
                c.kind.clone(),
                Group {
                    members: vec![(c.node, life)],
                },
            )),
        }
    }
    groups.into_iter().map(|(_, g)| g).collect()
}

/// The identifiers each statement names, a local bound by an earlier `let` of the
/// body standing for every identifier its value named.
fn named(stmts: &[TokenStream]) -> Vec<BTreeSet<String>> {
    let mut aliases: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    let mut out = vec![];
    for stmt in stmts {
        let mut names = BTreeSet::new();
        idents(stmt.clone(), &mut names);
        add_aliased(&mut names, &aliases);
        for (local, value) in lets(stmt) {
            let mut of = BTreeSet::new();
            idents(value, &mut of);
            add_aliased(&mut of, &aliases);
            aliases.insert(local, of);
        }
        out.push(names);
    }
    out
}

/// Adds to `names` what the locals among them were bound from.
fn add_aliased(names: &mut BTreeSet<String>, aliases: &BTreeMap<String, BTreeSet<String>>) {
    let through: Vec<String> = names
        .iter()
        .filter_map(|n| aliases.get(n))
        .flatten()
        .cloned()
        .collect();
    names.extend(through);
}

/// The `let NAME = value;` of `stmt`'s top level (not those inside its blocks,
/// which end with them): each local and the tokens of its value.
fn lets(stmt: &TokenStream) -> Vec<(String, TokenStream)> {
    let tokens: Vec<TokenTree> = stmt.clone().into_iter().collect();
    let mut out = vec![];
    let mut k = 0;
    while k < tokens.len() {
        if matches!(&tokens[k], TokenTree::Ident(i) if i == "let") {
            let mut at = k + 1;
            if matches!(tokens.get(at), Some(TokenTree::Ident(i)) if i == "mut") {
                at += 1;
            }
            let end = tokens[at..]
                .iter()
                .position(|t| matches!(t, TokenTree::Punct(p) if p.as_char() == ';'))
                .map_or(tokens.len(), |p| at + p);
            if let Some(TokenTree::Ident(local)) = tokens.get(at) {
                let value: TokenStream = tokens[at + 1..end].iter().cloned().collect();
                out.push((local.to_string(), value));
            }
            k = end;
        }
        k += 1;
    }
    out
}

fn last_use(g: &Group) -> usize {
    g.members.last().map_or(0, |(_, life)| life.last)
}

/// Every identifier in `ts`, through its groups (string literals, such as the
/// comments' text, are not identifiers).
fn idents(ts: TokenStream, out: &mut BTreeSet<String>) {
    for tree in ts {
        match tree {
            TokenTree::Ident(i) => {
                out.insert(i.to_string());
            }
            TokenTree::Group(g) => idents(g.stream(), out),
            TokenTree::Punct(_) | TokenTree::Literal(_) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use quote::quote;

    fn candidate(node: u32, name: &str, kind: &str) -> Candidate {
        Candidate {
            node: NodeId(node),
            name: name.to_string(),
            kind: kind.to_string(),
        }
    }

    fn members(g: &Group) -> Vec<u32> {
        g.members.iter().map(|(n, _)| n.0).collect()
    }

    /// W4's shape of lives: each pre-activation read once, by its `tanh`; the
    /// activations live on. The pre-activations take turns in one buffer, the
    /// activations keep theirs.
    #[test]
    fn values_dead_before_the_next_is_written_share() {
        let stmts = vec![
            quote!(matmul(x, w1, t1);),
            quote!(tanh(t1, h1);),
            quote!(matmul(h1, w2, t2);),
            quote!(tanh(t2, h2);),
            quote!(matmul(h2, w3, t3);),
            quote!(tanh(t3, h3);),
            quote!(Ok(h1 + h2 + h3)),
        ];
        let names = ["t1", "h1", "t2", "h2", "t3", "h3"];
        let candidates: Vec<Candidate> = names
            .iter()
            .enumerate()
            .map(|(k, n)| candidate(k as u32, n, "[N, 500]"))
            .collect();
        let groups = groups(&stmts, &candidates);
        let shared: Vec<Vec<u32>> = groups.iter().map(members).collect();
        assert_eq!(shared, vec![vec![0, 2, 4], vec![1], vec![3], vec![5]]);
        assert_eq!(groups[0].members[1].1, Life { first: 2, last: 3 });
    }

    /// A value read in the statement that writes the next one, a value of another
    /// shape, and a name inside a string (a comment's text) do not share.
    #[test]
    fn overlapping_lives_and_other_shapes_do_not_share() {
        let stmts = vec![
            quote!(a = x;),
            quote!(b = a;),
            quote!(c = b; nnc_comment!("a");),
            quote!(d = c;),
        ];
        let candidates = vec![
            candidate(0, "a", "[N]"),
            candidate(1, "b", "[N]"),
            candidate(2, "c", "[N]"),
            candidate(3, "d", "[M]"),
        ];
        let shared: Vec<Vec<u32>> = groups(&stmts, &candidates).iter().map(members).collect();
        // `a` dies at statement 1, where `b` is written: `c` (written at 2) may
        // take `a`'s buffer, and `d` has a shape of its own.
        assert_eq!(shared, vec![vec![0, 2], vec![1], vec![3]]);
    }

    /// A row slice bound from a value by a statement of its own keeps the value
    /// alive for as long as the slice is read (random program 19's `t10_row`).
    #[test]
    fn a_local_bound_from_a_value_extends_its_life() {
        let stmts = vec![
            quote!(a = x;),
            quote!(let a_row = &a[..n];),
            quote!(let mut r = a_row;),
            quote!(b = x;),
            quote!(c = r[0] + b;),
            quote!(d = c;),
        ];
        let candidates = vec![
            candidate(0, "a", "[N]"),
            candidate(1, "b", "[N]"),
            candidate(2, "d", "[N]"),
        ];
        let groups = groups(&stmts, &candidates);
        assert_eq!(groups[0].members[0].1, Life { first: 0, last: 4 });
        // `a` and `b` are both read last by statement 4: `d` takes either.
        let shared: Vec<Vec<u32>> = groups.iter().map(members).collect();
        assert_eq!(shared, vec![vec![0], vec![1, 2]]);
    }

    #[test]
    fn unnamed_values_are_left_out() {
        let stmts = vec![quote!(a = 1;)];
        let candidates = vec![candidate(0, "a", "[N]"), candidate(1, "zz", "[N]")];
        let shared: Vec<Vec<u32>> = groups(&stmts, &candidates).iter().map(members).collect();
        assert_eq!(shared, vec![vec![0]]);
    }
}
