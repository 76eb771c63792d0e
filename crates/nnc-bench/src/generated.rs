//! Timing generated code: any compiled model, through the [`Model`] trait.
//!
//! [`GeneratedTrainer`] wraps any [`Model`] as a [`Trainer`], so generated code is
//! verified and timed exactly like the baselines. The models come from
//! `crates/nnc-model-tests`, which compiles every spec model at build time;
//! [`for_f64`] and [`for_f32`] name each workload's (behind the default `generated`
//! feature, so that the rest of the harness builds while the code generator does not).

use crate::workload::{Problem, Workload};
use crate::{BenchFloat, Named, Trainer};
#[cfg(feature = "generated")]
use nnc_model_tests as models;
use nnc_runtime::optim::{Optimizer, Sgd};
use nnc_runtime::parallel::Threads;
use nnc_runtime::{Model, NamedInputs, TensorSet};
use rand::SeedableRng;
use rand::rngs::StdRng;

/// A compiled model's training step as a [`Trainer`]: `M::loss_and_grad`, then
/// [`Sgd`] through the runtime's optimiser API (which checks names and shapes, as
/// a user's training loop would).
///
/// `M::Inputs<'a>` borrow the arrays they were bound from, so the trainer borrows the
/// caller's [`NamedInputs`] for `'a`.
pub struct GeneratedTrainer<'a, M: Model> {
    inputs: M::Inputs<'a>,
    params: M::Params,
    grads: M::Grads,
    ws: M::Workspace,
    sgd: Sgd,
    /// How many of `grads` are parameters' (the rest belong to `grad` inputs).
    param_count: usize,
}

impl<'a, M: Model> GeneratedTrainer<'a, M>
where
    M::Float: BenchFloat,
{
    /// Binds `named` (from [`Problem::named_inputs`]), copies the problem's
    /// parameters in by name, and runs one step on a copy of the parameters, so
    /// that inputs or parameters the model rejects are an error here rather than a
    /// panic while timing. The step runs on `threads`.
    pub fn new(
        named: &'a NamedInputs<M::Float>,
        problem: &Problem<M::Float>,
        lr: f64,
        threads: &Threads,
    ) -> Result<Self, String> {
        let model = M::signature().model;
        let inputs = M::bind_inputs(named).map_err(|e| format!("{model}: {e}"))?;
        let mut params = M::init_params(&mut StdRng::seed_from_u64(0));
        copy_params(&mut params, problem, model)?;
        let mut ws = M::workspace_on(&inputs, threads.clone());
        let mut grads = M::zero_grads(&inputs);
        let mut sgd = Sgd::new(lr);
        M::loss_and_grad(&params, &inputs, &mut ws, &mut grads)
            .map_err(|e| format!("{model}: {e}"))?;
        sgd.step(&mut params.clone(), &grads)
            .map_err(|e| format!("{model}: {e}"))?;
        let param_count = params.tensors().len();
        Ok(GeneratedTrainer {
            inputs,
            params,
            grads,
            ws,
            sgd,
            param_count,
        })
    }
}

impl<M: Model> Trainer<M::Float> for GeneratedTrainer<'_, M>
where
    M::Float: BenchFloat,
{
    fn loss_and_grad(&mut self) -> M::Float {
        // `new` ran this on the same inputs and parameters of the same shapes.
        M::loss_and_grad(&self.params, &self.inputs, &mut self.ws, &mut self.grads)
            .expect("loss_and_grad accepted these inputs in `GeneratedTrainer::new`")
    }

    fn update(&mut self) {
        self.sgd
            .step(&mut self.params, &self.grads)
            .expect("the SGD update accepted these parameters in `GeneratedTrainer::new`");
    }

    fn params(&self) -> Named<'_, M::Float> {
        self.params.tensors()
    }

    fn grads(&self) -> Named<'_, M::Float> {
        let mut grads = self.grads.tensors();
        grads.truncate(self.param_count);
        grads
    }
}

/// A workload's generated step: [`boxed`] instantiated for its model.
pub type GeneratedFn<F> = for<'a> fn(
    &'a NamedInputs<F>,
    &Problem<F>,
    f64,
    &Threads,
) -> Result<Box<dyn Trainer<F> + 'a>, String>;

/// [`GeneratedTrainer::new`], boxed: `boxed::<the_module::TheModel>` is a
/// [`GeneratedFn`].
pub fn boxed<'a, M: Model + 'static>(
    named: &'a NamedInputs<M::Float>,
    problem: &Problem<M::Float>,
    lr: f64,
    threads: &Threads,
) -> Result<Box<dyn Trainer<M::Float> + 'a>, String>
where
    M::Float: BenchFloat,
    M::Params: 'static,
    M::Grads: 'static,
    M::Workspace: 'static,
    for<'x> M::Inputs<'x>: 'x,
{
    Ok(Box::new(GeneratedTrainer::<M>::new(
        named, problem, lr, threads,
    )?))
}
/// The generated code of an `f64` workload (W1, W2).
#[cfg(feature = "generated")]
pub fn for_f64(workload: Workload) -> Option<GeneratedFn<f64>> {
    match workload {
        Workload::W1 => Some(boxed::<models::two_layer::TwoLayer>),
        Workload::W2 => Some(boxed::<models::spiral::Spiral>),
        Workload::W3 | Workload::W4 => None,
    }
}

/// The generated code of an `f32` workload (W3, W4).
#[cfg(feature = "generated")]
pub fn for_f32(workload: Workload) -> Option<GeneratedFn<f32>> {
    match workload {
        Workload::W3 => Some(boxed::<models::mlp784::Mlp784>),
        Workload::W4 => Some(boxed::<models::deep_tanh::DeepTanh>),
        Workload::W1 | Workload::W2 => None,
    }
}

/// Without the `generated` feature there is no generated code to time.
#[cfg(not(feature = "generated"))]
pub fn for_f64(_workload: Workload) -> Option<GeneratedFn<f64>> {
    None
}

/// Without the `generated` feature there is no generated code to time.
#[cfg(not(feature = "generated"))]
pub fn for_f32(_workload: Workload) -> Option<GeneratedFn<f32>> {
    None
}

/// Overwrites `params` with the problem's parameters, matching names and shapes.
fn copy_params<F: BenchFloat>(
    params: &mut impl TensorSet<F>,
    problem: &Problem<F>,
    model: &str,
) -> Result<(), String> {
    let mut targets = params.tensors_mut();
    if targets.len() != problem.params.len() {
        return Err(format!(
            "{model}: the generated code has {} parameters, the problem {}",
            targets.len(),
            problem.params.len()
        ));
    }
    for (name, target) in &mut targets {
        let Some((_, source)) = problem.params.iter().find(|(n, _)| n == name) else {
            return Err(format!("{model}: no parameter `{name}` in the problem"));
        };
        if target.shape() != source.shape() {
            return Err(format!(
                "{model}: parameter `{name}` has shape {:?} in the generated code, {:?} in the problem",
                target.shape(),
                source.shape()
            ));
        }
        target.assign(source);
    }
    Ok(())
}
