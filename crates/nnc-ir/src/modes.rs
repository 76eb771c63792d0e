//! Binding the leaves train and eval modes add ([`InputKind`]) for the interpreter:
//! the `state`s (given, or at their initial values), the dropout masks (drawn by the
//! caller's function in training, all ones in eval mode) and the mode flag of a
//! [`Mode::Switched`](crate::Mode::Switched) model; and reading the new values of
//! the states after a training step.
//!
//! The masks are drawn in declaration order (`mask1`, `mask2`, ...), one call of
//! `draw` each, as generated code draws them at the start of `loss_and_grad`: with
//! the runtime's `fill_dropout_mask` and the same seeded generator, the
//! interpreter and the generated code use the same masks.

use crate::interp::{Evaluation, RunError, Scalar, Value, concrete_shape};
use crate::model::{Init, InputKind, Model};
use crate::types::Dim;
use ndarray::{ArrayD, IxDyn};

/// Every `state` at its declared initial value, by name in declaration order.
pub fn initial_state<F: Scalar>(model: &Model) -> Vec<(String, ArrayD<F>)> {
    model
        .inputs
        .iter()
        .filter_map(|i| match i.kind {
            InputKind::State(init) => {
                let shape = concrete_shape(&i.ty.shape, &[]);
                let value = match init {
                    Init::Ones => 1.0,
                    Init::Constant(c) => c,
                    _ => 0.0,
                };
                Some((i.name.clone(), ArrayD::from_elem(shape, cast(value))))
            }
            _ => None,
        })
        .collect()
}

fn cast<F: Scalar>(v: f64) -> F {
    F::from_f64(v).unwrap_or_else(F::nan)
}

/// The values of every input the modes add, by name: the states from `state` (by
/// name; those not given at their initial values), each mask drawn by
/// `draw(mask, keep)` when `training` (all ones otherwise), and the mode flag.
/// The masks' shapes take their runtime dims from the `data` inputs.
pub fn mode_inputs<F: Scalar>(
    model: &Model,
    data: &[(String, Value<F>)],
    state: &[(String, ArrayD<F>)],
    training: bool,
    draw: &mut dyn FnMut(&mut [F], f64),
) -> Result<Vec<(String, Value<F>)>, RunError> {
    let dims = data_dims(model, data);
    let initial = initial_state::<F>(model);
    let mut out = vec![];
    for info in &model.inputs {
        let value = match info.kind {
            InputKind::Data => continue,
            InputKind::State(_) => {
                let given = state.iter().chain(&initial).find(|(n, _)| *n == info.name);
                match given {
                    Some((_, v)) => v.clone(),
                    None => continue,
                }
            }
            InputKind::Mask { keep } => {
                let shape = concrete_shape(&info.ty.shape, &dims);
                let mut mask = ArrayD::from_elem(IxDyn(&shape), F::one());
                if training && let Some(slice) = mask.as_slice_mut() {
                    draw(slice, keep);
                }
                mask
            }
            InputKind::Training => {
                ArrayD::from_elem(IxDyn(&[]), if training { F::one() } else { F::zero() })
            }
        };
        out.push((info.name.clone(), Value::Float(value)));
    }
    Ok(out)
}

/// The size of each dim as the data inputs give it (0 for a runtime dim none gives).
fn data_dims<F>(model: &Model, data: &[(String, Value<F>)]) -> Vec<usize> {
    let mut dims: Vec<usize> = model.dims.iter().map(|d| d.size.unwrap_or(0)).collect();
    for info in model.inputs.iter().filter(|i| i.kind == InputKind::Data) {
        let Some((_, value)) = data.iter().find(|(n, _)| *n == info.name) else {
            continue;
        };
        for (d, size) in info.ty.shape.iter().zip(value.shape()) {
            if let Dim::Var(v) = d
                && dims[v.0 as usize] == 0
            {
                dims[v.0 as usize] = *size;
            }
        }
    }
    dims
}

/// The states after the training step `eval` evaluated: every updated state's new
/// value, by name, in [`Model::state_updates`] order.
pub fn updated_state<F: Scalar>(model: &Model, eval: &Evaluation<F>) -> Vec<(String, ArrayD<F>)> {
    model
        .state_updates
        .iter()
        .filter_map(|(s, n)| {
            let value = eval.value(*n)?.as_float()?.clone();
            Some((model.inputs[s.0 as usize].name.clone(), value))
        })
        .collect()
}

/// The names of the data inputs only (what a caller gives).
pub fn data_inputs(model: &Model) -> impl Iterator<Item = &crate::InputInfo> {
    model.inputs.iter().filter(|i| i.kind == InputKind::Data)
}
