//! **How a member would sit in a nest**: the shape half of "which loop". Takes a
//! member, a nest and the grouping so far; gives a [`Placement`] (which nest axis
//! each of the member's axes runs along, and whether it is computed per pass, per
//! row or per nest), or `None` when the shapes do not line up.
//!
//! Axis maps ([`Ax`]) are followed through the values a member reads: members of
//! the nest have their axes, inline views (broadcasts, reshapes, transposes,
//! one-hots, size-1 reductions) map their operand's axes, and anything else is
//! matched against the nest's domain right-aligned, as numpy broadcasts
//! ([`complete`]).

use super::kind::Kinds;
use super::nest::Grouping;
use super::{Kind, Level, nonunit, unit, unit_reshape};
use nnc_ir::{NodeId, Op, ReduceOp, Shape};

/// Where a node would sit in a nest.
#[derive(Clone, Debug)]
pub(super) struct Placement {
    pub(super) axes: Vec<Option<usize>>,
    pub(super) level: Level,
    pub(super) input_axes: Vec<Option<usize>>,
}

/// One axis of a value inside a nest.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Ax {
    Unit,
    Dom(usize),
    Unknown,
    /// Read at positions the nest is not at: a slice or pad of a value this nest
    /// computes, which at the nest's current position holds another element. A
    /// value with such an axis cannot be computed in the nest.
    Never,
}

/// What a member needs of its nest.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Req {
    /// Elementwise (and forced views, and the first write of a `GemmAcc`).
    Map,
    Reduce {
        input: NodeId,
        op: ReduceOp,
        axis: Option<usize>,
        keepdims: bool,
    },
    /// Softmax, log-softmax, extremum mask or argmax along `axis`.
    RowOp {
        input: NodeId,
        axis: usize,
    },
    Pick {
        x: NodeId,
        keepdims: bool,
    },
    Dot {
        a: NodeId,
        b: NodeId,
    },
    /// First-extremum mask over all axes.
    MaskAll {
        input: NodeId,
    },
}

fn req(kinds: &Kinds<'_>, n: NodeId) -> Req {
    let node = kinds.model.node(n);
    let a = &node.args;
    // A row operation along a size-1 axis stored as a result (an output's
    // `argmax(x, axis = 1)` of an `[N, 1]` x) is a constant per element: a map.
    if kinds.kind[n.index()] == Kind::GemmAcc || super::kind::trivial_axis_op(kinds.model, n) {
        return Req::Map;
    }
    match node.op {
        Op::Reduce { op, axis, keepdims } => Req::Reduce {
            input: a[0],
            op,
            axis,
            keepdims,
        },
        Op::Softmax { axis } | Op::LogSoftmax { axis } | Op::ArgMax { axis, .. } => {
            Req::RowOp { input: a[0], axis }
        }
        Op::ExtremumMask {
            axis: Some(axis), ..
        } => Req::RowOp { input: a[0], axis },
        Op::ExtremumMask { axis: None, .. } => Req::MaskAll { input: a[0] },
        Op::Pick { keepdims } => Req::Pick { x: a[0], keepdims },
        Op::MatMul => Req::Dot { a: a[0], b: a[1] },
        _ => Req::Map,
    }
}

/// The natural nest of a member: its domain and inner axis.
pub(super) fn natural(kinds: &Kinds<'_>, n: NodeId) -> (Shape, usize) {
    let last = |shape: &Shape| nonunit(shape).len().saturating_sub(1);
    let position = |shape: &Shape, axis: usize| (0..axis).filter(|k| !unit(shape[*k])).count();
    match req(kinds, n) {
        Req::Map => {
            let s = kinds.shape(n);
            (nonunit(s), last(s))
        }
        Req::Reduce {
            input, op, axis, ..
        } => {
            let s = kinds.shape(input);
            let r = match (op, axis) {
                (ReduceOp::Sum, _) | (_, None) => last(s),
                (_, Some(a)) => position(s, a),
            };
            (nonunit(s), r)
        }
        Req::RowOp { input, axis } => {
            let s = kinds.shape(input);
            (nonunit(s), position(s, axis))
        }
        Req::Pick { x, .. } => {
            let s = kinds.shape(x);
            (nonunit(s), position(s, 1))
        }
        Req::Dot { a, .. } => (nonunit(kinds.shape(a)), 0),
        Req::MaskAll { input } => {
            let s = kinds.shape(input);
            (nonunit(s), last(s))
        }
    }
}

/// A reduction's result axes from its operand's: each reduced axis dropped, or
/// kept as `unit` with `keepdims`.
fn reduce_axes<T: Copy>(
    input: &[T],
    is_reduced: impl Fn(usize) -> bool,
    keepdims: bool,
    unit: T,
) -> Vec<T> {
    input
        .iter()
        .enumerate()
        .filter_map(|(k, a)| match (is_reduced(k), keepdims) {
            (false, _) => Some(*a),
            (true, true) => Some(unit),
            (true, false) => None,
        })
        .collect()
}

/// Fills unknown axes right-aligned with the domain and checks the map: sizes
/// agree, no nest axis used twice.
fn complete(map: Vec<Ax>, shape: &Shape, domain: &Shape) -> Option<Vec<Option<usize>>> {
    if map.contains(&Ax::Never) {
        return None;
    }
    let mut used: Vec<bool> = vec![false; domain.len()];
    for m in &map {
        if let Ax::Dom(d) = m {
            if used[*d] {
                return None;
            }
            used[*d] = true;
        }
    }
    let nonunit_axes: Vec<usize> = (0..shape.len()).filter(|k| !unit(shape[*k])).collect();
    let mut out = vec![None; shape.len()];
    for (t, k) in nonunit_axes.iter().rev().enumerate() {
        let d = match map[*k] {
            Ax::Dom(d) => d,
            Ax::Unit | Ax::Never => return None,
            Ax::Unknown => {
                let d = domain.len().checked_sub(t + 1)?;
                if used[d] {
                    return None;
                }
                used[d] = true;
                d
            }
        };
        if domain.get(d) != Some(&shape[*k]) {
            return None;
        }
        out[*k] = Some(d);
    }
    Some(out)
}

/// The nest a member is placed in.
struct Site<'a> {
    x: usize,
    domain: &'a Shape,
    r: usize,
}

impl Site<'_> {
    /// Whether `axes` run along exactly the nest axes `want`, in any order.
    fn covers(&self, axes: &[Option<usize>], want: impl Iterator<Item = usize>) -> bool {
        let mut covered: Vec<usize> = axes.iter().flatten().copied().collect();
        covered.sort_unstable();
        covered.into_iter().eq(want)
    }

    /// Whether `axes` run along every axis of the nest.
    fn full(&self, axes: &[Option<usize>]) -> bool {
        self.covers(axes, 0..self.domain.len())
    }

    /// Whether `axes` run along every outer axis and not the inner one.
    fn outer_only(&self, axes: &[Option<usize>]) -> bool {
        self.covers(axes, (0..self.domain.len()).filter(|d| *d != self.r))
    }

    /// Per pass when the value varies along the inner axis, else per row.
    fn level_of(&self, axes: &[Option<usize>]) -> Level {
        if axes.contains(&Some(self.r)) {
            Level::Pass
        } else {
            Level::Row
        }
    }
}

impl Grouping<'_, '_> {
    /// How `n` would sit in nest `x`, if its shapes allow.
    pub(super) fn place(&self, n: NodeId, x: usize) -> Option<Placement> {
        let nest = self.nests[x].as_ref()?;
        let site = Site {
            x,
            domain: &nest.domain,
            r: nest.r,
        };
        match req(self.kinds, n) {
            Req::Map => self.place_map(n, &site),
            Req::Reduce {
                input,
                op,
                axis,
                keepdims,
            } => {
                let mi = self.input_map(input, &site)?;
                let nest_ok = op == ReduceOp::Sum || axis.is_none();
                let rank = self.kinds.shape(input).len();
                let reduced: Vec<usize> = axis.map_or_else(|| (0..rank).collect(), |a| vec![a]);
                place_reduce(mi, &reduced, keepdims, nest_ok, &site)
            }
            Req::RowOp { input, axis } => {
                let mi = self.input_map(input, &site)?;
                if mi[axis] != Some(site.r) || !site.full(&mi) {
                    return None;
                }
                // An argmax is one value per row; the others, one per element.
                Some(match self.kinds.model.node(n).op {
                    Op::ArgMax { keepdims, .. } => per(
                        reduce_axes(&mi, |k| k == axis, keepdims, None),
                        Level::Row,
                        mi,
                    ),
                    _ => per(mi.clone(), Level::Pass, mi),
                })
            }
            Req::Pick { x: xs, keepdims } => {
                let mx = self.input_map(xs, &site)?;
                if mx[1] != Some(site.r) || !site.full(&mx) {
                    return None;
                }
                let mut axes = vec![mx[0]];
                if keepdims {
                    axes.push(None);
                }
                Some(per(axes, Level::Row, mx))
            }
            Req::Dot { a, b } => {
                let (ma, mb) = (self.input_map(a, &site)?, self.input_map(b, &site)?);
                let r = Some(site.r);
                (site.domain.len() == 1 && ma == [r] && mb == [r]).then_some(per(
                    vec![],
                    Level::Row,
                    ma,
                ))
            }
            Req::MaskAll { input } => {
                let mi = self.input_map(input, &site)?;
                site.full(&mi).then_some(per(mi.clone(), Level::Nest, mi))
            }
        }
    }

    /// An elementwise member (or a forced view, or a `GemmAcc`'s first write).
    fn place_map(&self, n: NodeId, site: &Site<'_>) -> Option<Placement> {
        let node = self.kinds.model.node(n);
        let map = if self.kinds.kind[n.index()] == Kind::GemmAcc {
            self.map_elementwise(n, &self.kinds.fargs(n), site.x)?
        } else if !node.op.is_elementwise() {
            self.map_view(n, site.x)
        } else {
            self.map_elementwise(n, &node.args, site.x)?
        };
        let axes = complete(map, self.kinds.shape(n), site.domain)?;
        let level = site.level_of(&axes);
        Some(per(axes, level, vec![]))
    }

    /// The axes of an operand `i` in the nest, complete.
    fn input_map(&self, i: NodeId, site: &Site<'_>) -> Option<Vec<Option<usize>>> {
        complete(self.map_of(i, site.x), self.kinds.shape(i), site.domain)
    }

    /// Whether the input of nest-level reduction `n` varies along the inner axis of
    /// its nest.
    pub(super) fn input_varies_along_r(&self, n: NodeId) -> bool {
        let Some(x) = self.nest_of[n.index()] else {
            return true;
        };
        let Some(nest) = &self.nests[x] else {
            return true;
        };
        let input = self.kinds.fargs(n)[0];
        match complete(self.map_of(input, x), self.kinds.shape(input), &nest.domain) {
            Some(map) => map.contains(&Some(nest.r)),
            None => true,
        }
    }

    // ---- axis maps -------------------------------------------------------------

    fn unknown(&self, n: NodeId) -> Vec<Ax> {
        self.kinds
            .shape(n)
            .iter()
            .map(|d| if unit(*d) { Ax::Unit } else { Ax::Unknown })
            .collect()
    }

    /// The axes of `o`'s value inside nest `x`, as far as they are known.
    fn map_of(&self, o: NodeId, x: usize) -> Vec<Ax> {
        if self.nest_of[o.index()] == Some(x) {
            return self.axes[o.index()]
                .iter()
                .map(|a| a.map_or(Ax::Unit, Ax::Dom))
                .collect();
        }
        match self.kinds.kind[o.index()] {
            Kind::Inline => self.map_view(o, x),
            _ => self.unknown(o),
        }
    }

    /// Axis maps through inline nodes (and forced ones, for their own placement).
    fn map_view(&self, o: NodeId, x: usize) -> Vec<Ax> {
        let node = self.kinds.model.node(o);
        let shape = &node.ty.shape;
        let operand = || self.map_of(node.args[0], x);
        // A view of a value that cannot be read here cannot be either.
        if node.args.len() == 1 && operand().contains(&Ax::Never) {
            return vec![Ax::Never; shape.len().max(1)];
        }
        match &node.op {
            Op::Broadcast => self.map_broadcast(o, operand(), self.kinds.shape(node.args[0])),
            Op::Reshape => match unit_reshape(self.kinds.shape(node.args[0]), shape) {
                Some(map) => {
                    let ms = operand();
                    map.iter().map(|s| s.map_or(Ax::Unit, |k| ms[k])).collect()
                }
                None => self.unknown(o),
            },
            Op::Transpose => {
                let mut ms = operand();
                ms.reverse();
                ms
            }
            // Read at other positions along the axis than the loop's: not a map of
            // the nest's axes there, so the operand is never fused into the reader.
            // Another position along `axis` than the operand's: readable from a
            // stored operand (any position), not from one this nest computes.
            Op::Slice { axis, .. } | Op::Pad { axis, .. } => {
                let mut ms = operand();
                if matches!(ms[*axis], Ax::Dom(_)) {
                    return vec![Ax::Never; shape.len()];
                }
                ms[*axis] = if unit(shape[*axis]) {
                    Ax::Unit
                } else {
                    Ax::Unknown
                };
                ms
            }
            Op::OneHot { classes } => {
                let mut ms = operand();
                ms.push(if unit(*classes) {
                    Ax::Unit
                } else {
                    Ax::Unknown
                });
                ms
            }
            Op::Reduce {
                axis: Some(a),
                keepdims,
                ..
            } => reduce_axes(&operand(), |k| k == *a, *keepdims, Ax::Unit),
            Op::Pick { keepdims } => {
                let mut out = vec![operand()[0]];
                if *keepdims {
                    out.push(Ax::Unit);
                }
                out
            }
            Op::Unary(_) | Op::Powf(_) | Op::Binary(_) | Op::Compare(_) | Op::Select => self
                .map_elementwise(o, &node.args, x)
                .unwrap_or_else(|| self.unknown(o)),
            _ => self.unknown(o),
        }
    }

    /// A broadcast's axes from its operand's (right-aligned).
    fn map_broadcast(&self, o: NodeId, ms: Vec<Ax>, src: &Shape) -> Vec<Ax> {
        let shape = self.kinds.shape(o);
        let off = shape.len() - src.len().min(shape.len());
        (0..shape.len())
            .map(|k| {
                if unit(shape[k]) {
                    return Ax::Unit;
                }
                match k.checked_sub(off) {
                    Some(k2) if k2 < src.len() && !unit(src[k2]) => ms[k2],
                    _ => Ax::Unknown,
                }
            })
            .collect()
    }

    /// An elementwise node's axes from its operands' (right-aligned broadcasting);
    /// `None` when two operands disagree.
    fn map_elementwise(&self, n: NodeId, args: &[NodeId], x: usize) -> Option<Vec<Ax>> {
        let shape = self.kinds.shape(n);
        let mut out = self.unknown(n);
        for a in args {
            let s = self.kinds.shape(*a);
            let ms = self.map_of(*a, x);
            if ms.contains(&Ax::Never) {
                return Some(vec![Ax::Never; shape.len().max(1)]);
            }
            let off = shape.len().checked_sub(s.len())?;
            for (k2, m) in ms.iter().enumerate() {
                let k = k2 + off;
                if unit(s[k2]) || unit(shape[k]) {
                    continue;
                }
                if let Ax::Dom(d) = m {
                    match out[k] {
                        Ax::Dom(e) if e != *d => return None,
                        _ => out[k] = Ax::Dom(*d),
                    }
                }
            }
        }
        Some(out)
    }
}

/// A placement.
fn per(axes: Vec<Option<usize>>, level: Level, input_axes: Vec<Option<usize>>) -> Placement {
    Placement {
        axes,
        level,
        input_axes,
    }
}

/// A reduction with operand axes `mi`: accumulated per row when it reduces exactly
/// the inner axis of a full operand, else over the whole nest when it may be
/// (`nest_ok`: sums, and reductions of everything) and its operand covers the nest
/// (or every outer axis, when it does not vary along the inner one).
fn place_reduce(
    mi: Vec<Option<usize>>,
    reduced: &[usize],
    keepdims: bool,
    nest_ok: bool,
    site: &Site<'_>,
) -> Option<Placement> {
    let reduced_dom: Vec<usize> = reduced.iter().filter_map(|a| mi[*a]).collect();
    let axes = reduce_axes(&mi, |k| reduced.contains(&k), keepdims, None);
    if reduced_dom == [site.r] && site.full(&mi) {
        return Some(per(axes, Level::Row, mi));
    }
    let covered = if mi.contains(&Some(site.r)) {
        site.full(&mi)
    } else {
        site.outer_only(&mi)
    };
    (nest_ok && covered).then_some(per(axes, Level::Nest, mi))
}

#[cfg(test)]
mod tests {
    use super::super::fixtures::{nests, train};

    #[test]
    fn a_reduction_along_the_first_axis_makes_it_the_inner_loop() {
        let (_, p) = train(
            "model m { dtype f64; dim N, C = 3; input x: [N, C]; param w: [C, C] = zeros;
             loss sum(log_softmax(x @ w, axis = 0)); }",
        );
        let rs: Vec<usize> = nests(&p).iter().map(|n| n.r).collect();
        assert!(rs.contains(&0), "{rs:?}");
    }
}
