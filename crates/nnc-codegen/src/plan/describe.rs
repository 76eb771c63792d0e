//! The plan as text: one line per step, nests with their helpers and members, for
//! `nnc compile --emit plan` and for reading what the planner decided.

use super::{Nest, Plan, Step};
use nnc_ir::{Model, NodeId, Op};
use std::fmt::Write;

/// The plan of one function as text, one line per step.
pub fn describe(model: &Model, plan: &Plan) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "{:?} {}:", plan.entry, model.name);
    for step in &plan.steps {
        let _ = match step {
            Step::Scalar(n) => {
                writeln!(out, "  scalar {} = {}", name(model, *n), model.node(*n).op)
            }
            Step::Fill(n) => writeln!(
                out,
                "  fill {} ({:?})",
                name(model, *n),
                plan.hold[n.index()]
            ),
            Step::Gemm {
                matmul,
                dest,
                accumulate,
                rows,
            } => {
                let args = &model.node(*matmul).args;
                let op = if *accumulate { "+=" } else { "=" };
                let at = rows.map_or(String::new(), |r| format!(" (rows from {r})"));
                writeln!(
                    out,
                    "  gemm {}{at} {op} {} @ {} ({:?})",
                    name(model, *dest),
                    name(model, args[0]),
                    name(model, args[1]),
                    plan.hold[dest.index()]
                )
            }
            Step::Nest(nest) => write_nest(&mut out, model, plan, nest),
            Step::Assemble { dest, pieces } => {
                let parts: Vec<String> = pieces
                    .iter()
                    .map(|p| {
                        let how = if p.product { "product " } else { "" };
                        let rows = p.start..p.start + p.rows;
                        format!("{how}{} -> rows {rows:?}", name(model, p.value))
                    })
                    .collect();
                writeln!(
                    out,
                    "  assemble {} ({:?}): {}",
                    name(model, *dest),
                    plan.hold[dest.index()],
                    parts.join(", ")
                )
            }
        };
    }
    out
}

/// A nest: its domain, inner axis, passes and threads, then its helpers and members.
fn write_nest(out: &mut String, model: &Model, plan: &Plan, nest: &Nest) -> std::fmt::Result {
    let threads = match nest.rows_on_threads {
        Some(split) => format!(" rows on threads (work {}/element)", split.work_per_element),
        None => String::new(),
    };
    let inside = if nest.in_product {
        ", inside the product"
    } else {
        ""
    };
    writeln!(
        out,
        "  nest {} r={} passes={}{threads}{inside}",
        model.shape_str(&nest.domain),
        nest.r,
        nest.passes
    )?;
    for h in &nest.helpers {
        writeln!(
            out,
            "    helper {:?} of {} for {} in pass {}",
            h.kind,
            name(model, h.of),
            name(model, h.owner),
            h.pass
        )?;
    }
    for m in &nest.members {
        let store = if m.store {
            format!(" -> {:?}", plan.hold[m.node.index()])
        } else {
            String::new()
        };
        writeln!(
            out,
            "    {:<10} {:<24} axes={:?} {:?} {:?}{store}",
            name(model, m.node),
            model.node(m.node).op.to_string(),
            m.axes,
            m.level,
            m.slot,
        )?;
    }
    Ok(())
}

/// A node as the plan names it: a parameter's or input's name, the IR's name, else
/// `%id`.
pub(super) fn name(model: &Model, n: NodeId) -> String {
    let node = model.node(n);
    match (&node.op, &node.name) {
        (Op::Param(p), _) => model.params[p.0 as usize].name.clone(),
        (Op::Input(i), _) => model.inputs[i.0 as usize].name.clone(),
        (_, Some(s)) => s.clone(),
        _ => format!("%{}", n.0),
    }
}
