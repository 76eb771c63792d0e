//! Warnings: what compiles but most likely does not say what the user meant. Takes
//! a lowered [`Model`]; gives [`Diagnostic`]s of severity warning, which the CLI
//! prints and compilation goes past.

use crate::{InputKind, Model, Op};
use nnc_syntax::Diagnostic;

/// Every warning about `model`: each parameter the loss does not depend on, whose
/// gradient is therefore always zero, so that training never changes it (a layer
/// left out of the chain, a typo'd name in one of two similar lines).
pub fn warnings(model: &Model) -> Vec<Diagnostic> {
    let reaches_loss = reaching(model);
    let mut read = vec![false; model.nodes.len()];
    for node in &model.nodes {
        for a in &node.args {
            read[a.index()] = true;
        }
    }
    for (_, out) in &model.outputs {
        read[out.index()] = true;
    }
    let mut warnings = Vec::new();
    for (i, node) in model.nodes.iter().enumerate() {
        let Op::Param(id) = node.op else { continue };
        let Some(param) = model.params.get(id.0 as usize) else {
            continue;
        };
        if reaches_loss[i] {
            continue;
        }
        let label = if read[i] {
            "used, but not by the loss"
        } else {
            "never used"
        };
        warnings.push(
            Diagnostic::warning(
                format!("parameter `{}` does not reach the loss", param.name),
                param.span,
            )
            .with_label(label)
            .with_note("its gradient is always zero, so training never changes it"),
        );
    }
    warnings.extend(states_never_updated(model));
    warnings
}

/// Each `state` no `batch_norm` updates, which keeps its initial value for ever:
/// most likely a running statistic meant for `batch_norm`. (On a model lowered for
/// training, `Mode::Train` or `Mode::Switched`, as [`crate::compile_source`] gives:
/// eval mode records no updates.)
fn states_never_updated(model: &Model) -> Vec<Diagnostic> {
    model
        .inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.kind, InputKind::State(_)))
        .filter(|(k, _)| !model.state_updates.iter().any(|(s, _)| s.0 as usize == *k))
        .map(|(_, i)| {
            Diagnostic::warning(format!("state `{}` is never updated", i.name), i.span)
                .with_label("no `batch_norm` writes it")
                .with_note(
                    "a state keeps its initial value unless the training step writes it: pass \
                     it to `batch_norm` as a running statistic, or make it a `const` or `param`",
                )
        })
        .collect()
}

/// For every node, whether the loss depends on it (the arena is topological: a
/// node's operands come before it, so one backward sweep finds them all).
fn reaching(model: &Model) -> Vec<bool> {
    let mut reaches = vec![false; model.nodes.len()];
    if let Some(r) = reaches.get_mut(model.loss.index()) {
        *r = true;
    }
    for i in (0..model.nodes.len()).rev() {
        if reaches[i] {
            for a in &model.nodes[i].args {
                reaches[a.index()] = true;
            }
        }
    }
    reaches
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_syntax::Severity;

    fn warnings_of(source: &str) -> Vec<(String, Option<String>, usize)> {
        let models = crate::compile_source(source).unwrap_or_else(|e| panic!("{e:?}"));
        models
            .iter()
            .flat_map(warnings)
            .map(|d| {
                assert_eq!(d.severity, Severity::Warning);
                (d.message, d.label, d.span.start)
            })
            .collect()
    }

    #[test]
    fn a_parameter_the_loss_does_not_read_is_reported_where_declared() {
        let source = "model m {\n    dim N;\n    input x: [N, 3];\n    param w: [3, 3] = zeros;\n    param v: [3, 3] = zeros;\n    param u: [3] = zeros;\n    let h = x @ v;\n    output h;\n    loss sum(x @ w);\n}\n";
        let found = warnings_of(source);
        let at = |decl: &str| source.find(decl).unwrap_or_else(|| panic!("{decl}"));
        assert_eq!(
            found,
            vec![
                (
                    "parameter `v` does not reach the loss".to_string(),
                    Some("used, but not by the loss".to_string()),
                    at("v: [3, 3]")
                ),
                (
                    "parameter `u` does not reach the loss".to_string(),
                    Some("never used".to_string()),
                    at("u: [3]")
                ),
            ]
        );
    }

    #[test]
    fn parameters_the_loss_reads_through_functions_are_not_reported() {
        let source = "fn layer(x, w) = tanh(x @ w);\nmodel m {\n    dim N;\n    input x: [N, 3];\n    param w1: [3, 3] = zeros;\n    param w2: [3, 3] = zeros;\n    loss sum(layer(layer(x, w1), w2));\n}\n";
        assert_eq!(warnings_of(source), vec![]);
    }

    #[test]
    fn a_state_no_batch_norm_updates_is_reported_where_declared() {
        let source = "model m {\n    dim N, D = 3;\n    input x: [N, D];\n    param g: [D] = ones;\n    state mu: [D] = zeros;\n    state var: [D] = ones;\n    state offset: [D] = zeros;\n    loss sum(batch_norm(x, g, offset, mu, var));\n}\n";
        let at = source.find("offset: [D]").unwrap_or(0);
        assert_eq!(
            warnings_of(source),
            vec![(
                "state `offset` is never updated".to_string(),
                Some("no `batch_norm` writes it".to_string()),
                at
            )]
        );
    }
}
