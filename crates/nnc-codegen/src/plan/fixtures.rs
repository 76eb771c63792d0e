//! Models and helpers the planner's unit tests share.

use super::{Entry, Nest, Plan, Step, plan};
use nnc_ir::{Model, NodeId};
use std::path::Path;

pub(super) const TWO_LAYER: &str =
    "model m { dtype f64; dim N, D = 5, H = 4, C = 3; input x: [N, D]; input y: [N, C];
     param w1: [D, H] = zeros; param w2: [H, C] = zeros;
     let h = sigmoid(x @ w1); let y_pred = h @ w2; loss sum((y_pred - y) ^ 2); }";

pub(super) const RELU: &str =
    "model m { dtype f64; dim N, D = 2, H = 5; input x: [N, D]; input y: [N, H];
     param w: [D, H] = zeros; param b: [H] = zeros;
     let hidden = relu(x @ w + b); loss sum(hidden * y) + 0.5 * l2(w); }";

/// The first model of `src`, with its gradients.
pub(super) fn model(src: &str) -> Model {
    let models = nnc_ir::compile_source(src).unwrap_or_else(|d| panic!("{d:?}"));
    nnc_autodiff::with_gradients(&models[0]).unwrap_or_else(|e| panic!("{e}"))
}

/// The first model of an example file (`examples/models`), with its gradients.
pub(super) fn example(file: &str) -> Model {
    let path = Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../../examples/models")
        .join(file);
    let src = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    model(&src)
}

/// The plan of `entry` for a one-model source.
pub(super) fn plan_of(src: &str, entry: Entry) -> (Model, Plan) {
    let m = model(src);
    let p = plan(&m, entry);
    (m, p)
}

/// The plan of `loss_and_grad` for a one-model source.
pub(super) fn train(src: &str) -> (Model, Plan) {
    plan_of(src, Entry::LossAndGrad)
}

pub(super) fn nests(p: &Plan) -> Vec<&Nest> {
    p.steps
        .iter()
        .filter_map(|s| match s {
            Step::Nest(n) => Some(n),
            _ => None,
        })
        .collect()
}

/// The node the source names `name`.
pub(super) fn named(m: &Model, name: &str) -> NodeId {
    let i = m.nodes.iter().position(|n| n.name.as_deref() == Some(name));
    NodeId(i.unwrap_or_else(|| panic!("no node {name}")) as u32)
}
