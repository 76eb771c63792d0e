//! DOT, for users who have Graphviz (`dot -Tpdf`): the same gates and wires, left to
//! right, values in green above the gradients in red (HTML-like labels), the source
//! location of each gate as its tooltip.

use crate::diagram::{Diagram, GateKind};
use std::fmt::Write;

/// The diagram as a Graphviz `digraph`.
pub fn render(diagram: &Diagram) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "digraph {} {{", quoted(&diagram.title));
    out.push_str("  rankdir=LR;\n");
    out.push_str("  node [fontname=\"DejaVu Sans\", fontsize=12];\n");
    out.push_str("  edge [fontname=\"DejaVu Sans\", fontsize=10, arrowsize=0.6];\n");
    for (i, gate) in diagram.gates.iter().enumerate() {
        let (shape, fill) = match gate.kind {
            GateKind::Param => ("ellipse", "#e3f2fd"),
            GateKind::Input | GateKind::Constant => ("ellipse", "#f5f5f5"),
            GateKind::Operation => ("box", "#fff8e1"),
            GateKind::Function => ("box", "#ffe0b2"),
            GateKind::Result => ("box", "#ede7f6"),
            GateKind::Branch => ("point", "#424242"),
        };
        let label = match &gate.detail {
            Some(detail) => format!(
                "<{}<br/><font point-size=\"9\" color=\"#616161\">{}</font>>",
                html(&gate.label),
                html(detail)
            ),
            None => quoted(&gate.label),
        };
        let _ = writeln!(
            out,
            "  g{i} [shape={shape}, style=filled, fillcolor=\"{fill}\", label={label}, tooltip={}];",
            quoted(&gate.tooltip)
        );
    }
    for wire in &diagram.wires {
        let gradient = wire.gradient.as_ref().map_or(String::new(), |g| {
            format!("<br/><font color=\"#c62828\">{}</font>", html(g))
        });
        let _ = writeln!(
            out,
            "  g{} -> g{} [label=<<font color=\"#1b7a2f\">{}</font>{gradient}>];",
            wire.from,
            wire.to,
            html(&wire.value)
        );
    }
    out.push_str("}\n");
    out
}

/// A DOT string: quotes and backslashes escaped.
fn quoted(text: &str) -> String {
    format!("\"{}\"", text.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Text inside an HTML-like label.
fn html(text: &str) -> String {
    text.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}
