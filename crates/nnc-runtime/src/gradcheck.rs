//! Finite-difference gradient checking for any [`Model`].
//!
//! [`check_gradients`] compares the gradients `loss_and_grad` writes with central
//! differences `(L(x + h) - L(x - h)) / (2h)` of `loss`, computed in the model's own
//! float type. For every gradient tensor (parameters, then `grad`-marked inputs) it
//! checks at most [`GradCheckConfig::samples_per_tensor`] elements, chosen with a
//! seeded RNG, and reports the worst relative error
//! `|a - n| / max(|a| + |n|, tiny)` (`a` analytic, `n` numerical).
//!
//! ```
//! use nnc_runtime::gradcheck::{GradCheckConfig, GradCheckError, check_gradients};
//! use nnc_runtime::{Model, NamedInputs};
//!
//! fn check<M: Model>(params: &M::Params, inputs: &NamedInputs<M::Float>) -> Result<(), GradCheckError> {
//!     let config = GradCheckConfig::for_type::<M::Float>();
//!     let report = check_gradients::<M>(params, inputs, &config)?;
//!     assert!(report.passed(), "gradients disagree:\n{report}");
//!     Ok(())
//! }
//! ```

use std::fmt;

use ndarray::{ArrayViewD, ArrayViewMutD, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;

use crate::cast::{from_f64, to_f64};
use crate::{Float, Model, NamedInputs, ShapeError, TensorSet};

/// How to check: step size, sampling and the pass threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheckConfig {
    /// The step `h` of the central difference (rounded to the model's float type).
    pub step: f64,
    /// At most this many elements are checked per tensor (all of them if fewer).
    pub samples_per_tensor: usize,
    /// Seed for choosing which elements to check.
    pub seed: u64,
    /// Floor of the relative error's denominator, so that two near-zero values
    /// compare absolutely.
    pub tiny: f64,
    /// A tensor passes when its maximum relative error is at most this.
    pub tolerance: f64,
}

impl GradCheckConfig {
    /// Settings suited to the float type, for losses of order 1–10.
    ///
    /// The numerical gradient carries round-off of about `epsilon * |loss| / step`; a
    /// gradient element that is truly zero is compared against that noise, so `tiny`
    /// must sit well above it (`noise / tiny <= tolerance`).
    ///
    /// - `f64`: step 1e-5, tolerance 1e-5, tiny 1e-4 (noise ~2e-11 · |loss|).
    /// - `f32`: step 1e-2, tolerance 1e-2, tiny 5e-2 (noise ~1e-5 · |loss|). `f32`
    ///   checks are coarse; check in `f64` where the model allows it.
    pub fn for_type<F: Float>() -> Self {
        let double = F::epsilon() < from_f64(1e-10);
        let (step, tolerance, tiny) = if double {
            (1e-5, 1e-5, 1e-4)
        } else {
            (1e-2, 1e-2, 5e-2)
        };
        GradCheckConfig {
            step,
            samples_per_tensor: 20,
            seed: 0,
            tiny,
            tolerance,
        }
    }
}

/// The result for one gradient tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    pub name: &'static str,
    /// How many elements were checked.
    pub checked: usize,
    /// The largest relative error among them (0 if none was checked).
    pub max_rel_error: f64,
    /// Where that error occurred, with both gradient values there.
    pub worst: Option<Worst>,
}

/// The element with the largest relative error.
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    pub index: Vec<usize>,
    pub analytic: f64,
    pub numerical: f64,
}

/// The result for every gradient tensor, in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    pub tensors: Vec<TensorReport>,
    /// The tolerance the check was run with.
    pub tolerance: f64,
}

impl GradCheckReport {
    /// The largest relative error over all tensors.
    pub fn max_rel_error(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.max_rel_error)
            .fold(0.0, f64::max)
    }

    /// Whether every tensor is within the tolerance (a NaN error fails).
    pub fn passed(&self) -> bool {
        self.tensors
            .iter()
            .all(|t| t.max_rel_error <= self.tolerance)
    }

    /// The report for the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorReport> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

impl fmt::Display for GradCheckReport {
    /// One line per tensor: name, verdict, error and the worst element.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tensors {
            let verdict = if t.max_rel_error <= self.tolerance {
                "ok  "
            } else {
                "FAIL"
            };
            write!(
                f,
                "{verdict} {}: max rel error {:.3e} over {} elements",
                t.name, t.max_rel_error, t.checked
            )?;
            if let Some(w) = &t.worst {
                write!(
                    f,
                    " (worst at {:?}: analytic {:e}, numerical {:e})",
                    w.index, w.analytic, w.numerical
                )?;
            }
            writeln!(f)?;
        }
        Ok(())
    }
}

/// Why a gradient check could not run.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum GradCheckError {
    #[error(transparent)]
    Shape(#[from] ShapeError),
    #[error("gradient `{name}` is neither a parameter nor a float input of model `{model}`")]
    UnknownGradient {
        model: &'static str,
        name: &'static str,
    },
    #[error(
        "gradient `{name}` has shape {grad:?} but the tensor it belongs to has shape {tensor:?}"
    )]
    ShapeMismatch {
        name: &'static str,
        grad: Vec<usize>,
        tensor: Vec<usize>,
    },
}

/// Checks `M::loss_and_grad` against central differences of `M::loss` at `params`
/// and `inputs`.
pub fn check_gradients<M: Model>(
    params: &M::Params,
    inputs: &NamedInputs<M::Float>,
    config: &GradCheckConfig,
) -> Result<GradCheckReport, GradCheckError> {
    let mut checker = Checker::<M>::new(params, inputs, config)?;
    let analytic = checker.analytic_gradients()?;
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut tensors = Vec::with_capacity(analytic.len());
    for (name, grad) in &analytic {
        let positions = sample_positions(grad.shape(), config.samples_per_tensor, &mut rng);
        let report = checker.check_tensor(name, grad.view(), &positions)?;
        tensors.push(report);
    }
    Ok(GradCheckReport {
        tensors,
        tolerance: config.tolerance,
    })
}

/// `|a - n| / max(|a| + |n|, tiny)`.
pub fn relative_error(analytic: f64, numerical: f64, tiny: f64) -> f64 {
    (analytic - numerical).abs() / (analytic.abs() + numerical.abs()).max(tiny)
}

/// Up to `k` distinct multi-indices into `shape`, in increasing flat order.
fn sample_positions(shape: &[usize], k: usize, rng: &mut StdRng) -> Vec<Vec<usize>> {
    let len: usize = shape.iter().product();
    let mut flat: Vec<usize> = if len <= k {
        (0..len).collect()
    } else {
        rand::seq::index::sample(rng, len, k).into_vec()
    };
    flat.sort_unstable();
    flat.into_iter().map(|i| unravel(i, shape)).collect()
}

/// The multi-index of flat (row-major) position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        *slot = flat % dim;
        flat /= dim;
    }
    index
}

/// Owned copies of named tensors.
type NamedArrays<F> = Vec<(&'static str, ndarray::ArrayD<F>)>;

/// What is perturbed: a parameter or a float input, by position in its container.
#[derive(Clone, Copy)]
enum Target {
    Param(usize),
    Input(usize),
}

/// Working copies of the parameters and inputs, perturbed one element at a time.
struct Checker<'a, M: Model> {
    params: M::Params,
    inputs: NamedInputs<M::Float>,
    original: &'a NamedInputs<M::Float>,
    workspace: M::Workspace,
    step: M::Float,
    tiny: f64,
}

impl<'a, M: Model> Checker<'a, M> {
    fn new(
        params: &M::Params,
        inputs: &'a NamedInputs<M::Float>,
        config: &GradCheckConfig,
    ) -> Result<Self, GradCheckError> {
        let workspace = M::workspace(&M::bind_inputs(inputs)?);
        Ok(Checker {
            params: params.clone(),
            inputs: inputs.clone(),
            original: inputs,
            workspace,
            step: from_f64(config.step),
            tiny: config.tiny,
        })
    }

    /// Every gradient `loss_and_grad` returns, by name, copied out.
    fn analytic_gradients(&mut self) -> Result<NamedArrays<M::Float>, GradCheckError> {
        let bound = M::bind_inputs(self.original)?;
        let mut grads = M::zero_grads(&bound);
        M::loss_and_grad(&self.params, &bound, &mut self.workspace, &mut grads)?;
        Ok(grads
            .tensors()
            .into_iter()
            .map(|(name, g)| (name, g.to_owned()))
            .collect())
    }

    fn loss(&mut self) -> Result<M::Float, GradCheckError> {
        let bound = M::bind_inputs(&self.inputs)?;
        Ok(M::loss(&self.params, &bound, &mut self.workspace)?)
    }

    fn target(&self, name: &'static str) -> Result<Target, GradCheckError> {
        let param = self.params.tensors().iter().position(|(n, _)| *n == name);
        let input = || self.inputs.floats.iter().position(|(n, _)| n == name);
        match (param, input()) {
            (Some(i), _) => Ok(Target::Param(i)),
            (None, Some(i)) => Ok(Target::Input(i)),
            (None, None) => Err(GradCheckError::UnknownGradient {
                model: M::signature().model,
                name,
            }),
        }
    }

    /// The perturbed tensor, mutably.
    fn view_mut(&mut self, target: Target) -> ArrayViewMutD<'_, M::Float> {
        match target {
            Target::Param(i) => self.params.tensors_mut().swap_remove(i).1,
            Target::Input(i) => self.inputs.floats[i].1.view_mut(),
        }
    }

    fn check_tensor(
        &mut self,
        name: &'static str,
        grad: ArrayViewD<'_, M::Float>,
        positions: &[Vec<usize>],
    ) -> Result<TensorReport, GradCheckError> {
        let target = self.target(name)?;
        let tensor_shape = self.view_mut(target).shape().to_vec();
        if tensor_shape != grad.shape() {
            return Err(GradCheckError::ShapeMismatch {
                name,
                grad: grad.shape().to_vec(),
                tensor: tensor_shape,
            });
        }
        let mut report = TensorReport {
            name,
            checked: 0,
            max_rel_error: 0.0,
            worst: None,
        };
        for index in positions {
            let numerical = to_f64(self.central_difference(target, index)?);
            let analytic = to_f64(grad[IxDyn(index)]);
            let error = relative_error(analytic, numerical, self.tiny);
            report.checked += 1;
            // A NaN error (from a NaN gradient) is recorded as the worst.
            if report.worst.is_none() || error > report.max_rel_error || error.is_nan() {
                report.max_rel_error = error;
                report.worst = Some(Worst {
                    index: index.clone(),
                    analytic,
                    numerical,
                });
            }
        }
        Ok(report)
    }

    /// `(L(x + h) - L(x - h)) / ((x + h) - (x - h))` at one element, which is then
    /// restored. Dividing by the difference actually represented removes the rounding
    /// of `x ± h` from the estimate.
    fn central_difference(
        &mut self,
        target: Target,
        index: &[usize],
    ) -> Result<M::Float, GradCheckError> {
        let at = IxDyn(index);
        let x = self.view_mut(target)[at.clone()];
        let (plus, minus) = (x + self.step, x - self.step);
        self.view_mut(target)[at.clone()] = plus;
        let loss_plus = self.loss();
        self.view_mut(target)[at.clone()] = minus;
        let loss_minus = self.loss();
        self.view_mut(target)[at] = x;
        Ok((loss_plus? - loss_minus?) / (plus - minus))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn relative_error_follows_the_definition() {
        assert_eq!(relative_error(1.0, 1.0, 1e-12), 0.0);
        assert_eq!(relative_error(1.0, 3.0, 1e-12), 0.5);
        assert_eq!(relative_error(-1.0, 1.0, 1e-12), 1.0);
        // Near zero, the floor makes the comparison absolute.
        assert_eq!(relative_error(0.0, 1e-12, 1e-6), 1e-6);
    }

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(7, &[2, 2, 2]), vec![1, 1, 1]);
    }

    #[test]
    fn sampling_takes_all_small_tensors_and_k_distinct_of_large_ones() {
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(sample_positions(&[2, 2], 10, &mut rng).len(), 4);
        assert_eq!(
            sample_positions(&[], 10, &mut rng),
            vec![Vec::<usize>::new()]
        );
        let picked = sample_positions(&[100, 100], 10, &mut rng);
        assert_eq!(picked.len(), 10);
        let mut dedup = picked.clone();
        dedup.dedup();
        assert_eq!(dedup, picked, "sorted and distinct");
        let again = sample_positions(&[100, 100], 10, &mut StdRng::seed_from_u64(0));
        let first = sample_positions(&[100, 100], 10, &mut StdRng::seed_from_u64(0));
        assert_eq!(again, first, "seeded");
    }
}
