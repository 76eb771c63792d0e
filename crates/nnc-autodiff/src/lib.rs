//! # nnc-autodiff: symbolic reverse mode
//!
//! Takes a lowered [`nnc_ir::Model`] and appends its backward pass to the same arena,
//! as ordinary IR: for each node, in reverse topological order, its vector-Jacobian
//! product rule applied to the incoming gradient ([`rules`], one rule per primitive,
//! in one table); contributions summed where a value has several users; broadcasting
//! undone by summing over the broadcast axes ([`reverse`]). Then [`simplify`] folds
//! constants, applies algebraic identities, shares common subexpressions and removes
//! dead code.
//!
//! Invariants:
//! - The backward pass is IR like any other: it can be interpreted, compiled, printed
//!   and differentiated again ([`gradient`] takes any scalar node).
//! - Every backward node records the rule that produced it (`Node::rule`) and every
//!   gradient of a named value is named `d_<name>`, so derivations read like the
//!   lecture's slides ([`derivation`]).
//! - `model.grads` lists a gradient for every param, then every `grad` input, in
//!   declaration order; a loss that does not depend on a value gives zeros.

mod builder;
pub mod derivation;
pub mod gradcheck;
pub mod reverse;
pub mod rules;
pub mod simplify;

pub use builder::InternalError;
pub use derivation::Format;
pub use reverse::{Wires, differentiate, differentiate_wires, gradient, hessian_vector_product};
pub use simplify::{Stats, simplify};

use nnc_ir::{Model, Op};
use nnc_syntax::Diagnostic;
use std::fmt::Write;

/// A model's derivation at each stage.
#[derive(Clone, Debug)]
pub struct Derivation {
    /// The forward model with the raw backward pass appended.
    pub raw: Model,
    /// How many nodes the forward pass has (the backward pass starts there in `raw`).
    pub forward_len: usize,
    /// After simplification: what code generation compiles.
    pub simplified: Model,
    pub stats: Stats,
}

/// Differentiates and simplifies a lowered model.
pub fn derive(model: &Model) -> Result<Derivation, InternalError> {
    let mut raw = model.clone();
    let loss = raw.loss.index();
    // Every intermediate value gets a name, so each gets a line and its gradient
    // `d_t7` gets one too: the derivation then reads one rule per line.
    for (i, node) in raw.nodes.iter_mut().enumerate() {
        if node.name.is_none()
            && !matches!(
                node.op,
                Op::Input(_) | Op::Param(_) | Op::Const(_) | Op::DimSize(_)
            )
        {
            node.name = Some(if i == loss {
                "loss".to_string()
            } else {
                format!("t{i}")
            });
        }
    }
    let forward_len = raw.nodes.len();
    differentiate(&mut raw)?;
    let mut simplified = raw.clone();
    let stats = simplify(&mut simplified);
    Ok(Derivation {
        raw,
        forward_len,
        simplified,
        stats,
    })
}

/// The model with its simplified backward pass: the input to code generation.
pub fn with_gradients(model: &Model) -> Result<Model, InternalError> {
    derive(model).map(|d| d.simplified)
}

/// Every model of `source` with its simplified backward pass, or every error found on
/// the way: parsing and names, lowering and shapes, differentiation. What `nnc check`
/// reports, and what `nnc compile` reports before generating code.
pub fn compile_source(source: &str) -> Result<Vec<Model>, Vec<Diagnostic>> {
    with_gradients_all(&nnc_ir::compile_source(source)?)
}

/// Every lowered model with its simplified backward pass, or the diagnostics of the
/// ones that cannot be differentiated (the last stage of [`compile_source`], for a
/// caller that also wants the lowered models, for their warnings).
pub fn with_gradients_all(models: &[Model]) -> Result<Vec<Model>, Vec<Diagnostic>> {
    let mut derived = Vec::with_capacity(models.len());
    let mut errors = Vec::new();
    for model in models {
        match with_gradients(model) {
            Ok(m) => derived.push(m),
            Err(e) => errors.push(e.to_diagnostic(&model.name)),
        }
    }
    if errors.is_empty() {
        Ok(derived)
    } else {
        Err(errors)
    }
}

impl Derivation {
    /// The derivation as `nnc grad` prints it.
    pub fn render(&self, format: Format) -> String {
        let m = &self.raw;
        let mut out = String::new();
        let (open, close) = match format {
            Format::Text => ("", ""),
            Format::Latex => ("\\begin{align*}\n", "\\end{align*}\n"),
        };
        let _ = writeln!(out, "model {}", m.name);
        let _ = writeln!(out, "\nforward:");
        out.push_str(open);
        out.push_str(&forward_listing(m, self.forward_len, format));
        out.push_str(close);
        out.push_str(&state_updates(m, format));
        let _ = writeln!(
            out,
            "\nbackward (d_v = d loss / d v; each line names its rule):"
        );
        out.push_str(open);
        out.push_str(&seed_line(m, format));
        out.push_str(&derivation::listing(m, self.forward_len, format));
        out.push_str(&gradient_aliases(m, format));
        out.push_str(close);
        let _ = writeln!(
            out,
            "\nsimplified ({} nodes -> {} nodes): what the generated code computes",
            self.stats.before, self.stats.after
        );
        out.push_str(open);
        out.push_str(&derivation::listing(&self.simplified, 0, format));
        out.push_str(&gradient_aliases(&self.simplified, format));
        out.push_str(close);
        out
    }
}

/// The forward pass alone: names and inlining as if no backward pass existed.
fn forward_listing(model: &Model, forward_len: usize, format: Format) -> String {
    let mut forward = model.clone();
    forward.nodes.truncate(forward_len);
    forward.grads.clear();
    derivation::listing(&forward, 0, format)
}

/// What the training step writes into each `state` after it has run, when the
/// model has any: `mu <- mu_new`.
fn state_updates(model: &Model, format: Format) -> String {
    let mut out = String::new();
    if model.state_updates.is_empty() {
        return out;
    }
    let _ = writeln!(out, "\nstate updates (written after the training step):");
    for (state, node) in &model.state_updates {
        let name = &model.inputs[state.0 as usize].name;
        let value = match &model.node(*node).name {
            Some(n) => n.clone(),
            None => derivation::expression(model, *node),
        };
        let _ = match format {
            Format::Text => writeln!(out, "  {name} <- {value}"),
            Format::Latex => writeln!(
                out,
                "  {} \\leftarrow {} \\\\",
                derivation::latex_name(name),
                derivation::latex_name(&value)
            ),
        };
    }
    out
}

/// `d_x = d_q` lines for gradients that are another named value.
fn gradient_aliases(model: &Model, format: Format) -> String {
    let mut out = String::new();
    for (of, node) in &model.grads {
        let want = format!("d_{}", model.grad_name(*of));
        let n = model.node(*node);
        if n.name.as_deref() == Some(want.as_str()) {
            continue;
        }
        let value = match (&n.op, &n.name) {
            (Op::Const(c), _) => nnc_ir::print::number(*c),
            (Op::Input(i), _) => model.inputs[i.0 as usize].name.clone(),
            (Op::Param(p), _) => model.params[p.0 as usize].name.clone(),
            (_, Some(name)) => name.clone(),
            _ => derivation::expression(model, *node),
        };
        let _ = match format {
            Format::Text => writeln!(out, "  {want} = {value}"),
            Format::Latex => {
                let value = if n.name.is_some() || matches!(n.op, Op::Input(_) | Op::Param(_)) {
                    derivation::latex_name(&value)
                } else {
                    value
                };
                writeln!(out, "  {} &= {value} \\\\", derivation::latex_name(&want))
            }
        };
    }
    out
}

/// The seed of reverse mode: `d_loss = 1`.
fn seed_line(model: &Model, format: Format) -> String {
    let name = model
        .node(model.loss)
        .name
        .clone()
        .unwrap_or_else(|| "loss".to_string());
    match format {
        Format::Text => format!(
            "  {:<52} // seed: d loss / d loss = 1\n",
            format!("d_{name} = 1")
        ),
        Format::Latex => format!(
            "  {} &= 1 \\\\\n",
            derivation::latex_name(&format!("d_{name}"))
        ),
    }
}
