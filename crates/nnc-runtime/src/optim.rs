//! Optimisers: plain SGD, SGD with momentum, and Adam.
//!
//! Each works on any pair of [`TensorSet`]s, parameters and gradients, zipped in
//! declaration order. A model's `Grads` lists its parameters first and then its
//! `grad`-marked inputs, so the zip stops after the parameters; every step checks that
//! the names and shapes line up, and returns an [`OptimError`] rather than panicking.
//!
//! State (velocities, moment estimates) is allocated once, in `new`, from the
//! parameters' shapes. A step allocates no tensor; the only allocations are short
//! `Vec`s of views (those [`TensorSet::tensors`] and [`TensorSet::tensors_mut`] return,
//! and the zipped pairs), a few hundred bytes whatever the parameters' sizes.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Zip};

use crate::cast::from_f64;
use crate::{Float, TensorSet};

/// A rule that updates parameters from their gradients.
pub trait Optimizer<F: Float> {
    /// Applies one update to `params` using `grads`.
    fn step(
        &mut self,
        params: &mut impl TensorSet<F>,
        grads: &impl TensorSet<F>,
    ) -> Result<(), OptimError>;
}

/// Parameters and gradients (or optimiser state) that do not line up.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum OptimError {
    /// Fewer gradients than parameters.
    TooFewGradients {
        /// The number of parameters.
        params: usize,
        /// The number of gradients.
        grads: usize,
    },
    /// A gradient is not named after the parameter at its position.
    NameMismatch {
        /// The position (from 0) in declaration order.
        position: usize,
        /// The parameter's name.
        param: &'static str,
        /// The gradient's name.
        grad: &'static str,
    },
    /// A gradient's shape differs from its parameter's.
    ShapeMismatch {
        /// The parameter's name.
        name: &'static str,
        /// The parameter's shape.
        param: Vec<usize>,
        /// The gradient's shape.
        grad: Vec<usize>,
    },
    /// The optimiser's state was built for other parameters (other names, shapes or
    /// number) than those given to the step.
    StateMismatch {
        /// The parameters the state was built for, as `` `name` [shape] `` entries.
        expected: String,
        /// The parameters given, in the same form.
        found: String,
    },
}

impl std::fmt::Display for OptimError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            OptimError::TooFewGradients { params, grads } => {
                write!(f, "{grads} gradients for {params} parameters")
            }
            OptimError::NameMismatch {
                position,
                param,
                grad,
            } => write!(
                f,
                "parameter {position} is `{param}` but gradient {position} is `{grad}`"
            ),
            OptimError::ShapeMismatch { name, param, grad } => write!(
                f,
                "parameter `{name}` has shape {param:?} but its gradient has shape {grad:?}"
            ),
            OptimError::StateMismatch { expected, found } => write!(
                f,
                "optimiser state was built for {expected}, not for these parameters ({found})"
            ),
        }
    }
}

impl std::error::Error for OptimError {}

/// One parameter with its gradient.
type Pair<'p, 'g, F> = (&'static str, ArrayViewMutD<'p, F>, ArrayViewD<'g, F>);

/// Zips parameters with the leading gradients, checking names and shapes.
fn pairs<'p, 'g, F: Float>(
    params: &'p mut impl TensorSet<F>,
    grads: &'g impl TensorSet<F>,
) -> Result<Vec<Pair<'p, 'g, F>>, OptimError> {
    let params = params.tensors_mut();
    let grads = grads.tensors();
    if grads.len() < params.len() {
        return Err(OptimError::TooFewGradients {
            params: params.len(),
            grads: grads.len(),
        });
    }
    let mut out = Vec::with_capacity(params.len());
    for (position, ((name, p), (grad_name, g))) in params.into_iter().zip(grads).enumerate() {
        if name != grad_name {
            return Err(OptimError::NameMismatch {
                position,
                param: name,
                grad: grad_name,
            });
        }
        if p.shape() != g.shape() {
            return Err(OptimError::ShapeMismatch {
                name,
                param: p.shape().to_vec(),
                grad: g.shape().to_vec(),
            });
        }
        out.push((name, p, g));
    }
    Ok(out)
}

/// Per-parameter state buffers, one per parameter, shaped like it.
#[derive(Clone, Debug)]
struct State<F> {
    names: Vec<&'static str>,
    buffers: Vec<ArrayD<F>>,
}

impl<F: Float> State<F> {
    fn zeros_like(params: &impl TensorSet<F>) -> Self {
        let (names, buffers) = params
            .tensors()
            .into_iter()
            .map(|(name, p)| (name, ArrayD::zeros(p.raw_dim())))
            .unzip();
        State { names, buffers }
    }

    /// Checks the state was built for exactly these parameters.
    fn check(&self, pairs: &[Pair<'_, '_, F>]) -> Result<(), OptimError> {
        let fits = pairs.len() == self.buffers.len()
            && pairs
                .iter()
                .zip(&self.names)
                .zip(&self.buffers)
                .all(|(((name, p, _), n), b)| name == n && p.shape() == b.shape());
        if fits {
            return Ok(());
        }
        let describe = |items: Vec<(&str, &[usize])>| {
            items
                .iter()
                .map(|(n, s)| format!("`{n}` {s:?}"))
                .collect::<Vec<_>>()
                .join(", ")
        };
        Err(OptimError::StateMismatch {
            expected: describe(
                self.names
                    .iter()
                    .zip(&self.buffers)
                    .map(|(n, b)| (*n, b.shape()))
                    .collect(),
            ),
            found: describe(pairs.iter().map(|(n, p, _)| (*n, p.shape())).collect()),
        })
    }
}

/// Plain stochastic gradient descent: `w -= lr * dw`.
#[derive(Clone, Debug, PartialEq)]
pub struct Sgd {
    /// The learning rate.
    pub lr: f64,
}

impl Sgd {
    /// SGD with learning rate `lr`.
    pub fn new(lr: f64) -> Self {
        Sgd { lr }
    }
}

impl<F: Float> Optimizer<F> for Sgd {
    fn step(
        &mut self,
        params: &mut impl TensorSet<F>,
        grads: &impl TensorSet<F>,
    ) -> Result<(), OptimError> {
        let lr: F = from_f64(self.lr);
        for (_, mut p, g) in pairs(params, grads)? {
            p.scaled_add(-lr, &g);
        }
        Ok(())
    }
}

/// Settings for [`Momentum`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MomentumConfig {
    /// The learning rate.
    pub lr: f64,
    /// The fraction of the velocity kept each step (`mu`).
    pub momentum: f64,
}

impl Default for MomentumConfig {
    /// `lr` 0.01, `momentum` 0.9.
    fn default() -> Self {
        MomentumConfig {
            lr: 0.01,
            momentum: 0.9,
        }
    }
}

/// SGD with momentum: `v = mu * v - lr * dw; w += v`, with `v` starting at zero.
#[derive(Clone, Debug)]
pub struct Momentum<F> {
    /// The settings, read at every step (they may be changed between steps).
    pub config: MomentumConfig,
    velocity: State<F>,
}

impl<F: Float> Momentum<F> {
    /// Allocates a zero velocity for every parameter.
    pub fn new(params: &impl TensorSet<F>, config: MomentumConfig) -> Self {
        Momentum {
            config,
            velocity: State::zeros_like(params),
        }
    }
}

impl<F: Float> Optimizer<F> for Momentum<F> {
    fn step(
        &mut self,
        params: &mut impl TensorSet<F>,
        grads: &impl TensorSet<F>,
    ) -> Result<(), OptimError> {
        let (lr, mu): (F, F) = (from_f64(self.config.lr), from_f64(self.config.momentum));
        let pairs = pairs(params, grads)?;
        self.velocity.check(&pairs)?;
        for ((_, p, g), v) in pairs.into_iter().zip(&mut self.velocity.buffers) {
            Zip::from(p).and(v).and(&g).for_each(|p, v, &g| {
                *v = mu * *v - lr * g;
                *p = *p + *v;
            });
        }
        Ok(())
    }
}

/// Settings for [`Adam`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct AdamConfig {
    /// The learning rate.
    pub lr: f64,
    /// The decay rate of the first-moment (mean) estimate.
    pub beta1: f64,
    /// The decay rate of the second-moment (uncentred variance) estimate.
    pub beta2: f64,
    /// Added to the denominator, to keep the step finite where `v` is near zero.
    pub epsilon: f64,
}

impl Default for AdamConfig {
    /// `lr` 1e-3, `beta1` 0.9, `beta2` 0.999, `epsilon` 1e-8.
    fn default() -> Self {
        AdamConfig {
            lr: 1e-3,
            beta1: 0.9,
            beta2: 0.999,
            epsilon: 1e-8,
        }
    }
}

/// Adam, with bias correction. At step `t` (from 1):
///
/// ```text
/// m = beta1 * m + (1 - beta1) * dw
/// v = beta2 * v + (1 - beta2) * dw^2
/// w -= lr * (m / (1 - beta1^t)) / (sqrt(v / (1 - beta2^t)) + epsilon)
/// ```
#[derive(Clone, Debug)]
pub struct Adam<F> {
    /// The settings, read at every step (they may be changed between steps).
    pub config: AdamConfig,
    first: State<F>,
    second: State<F>,
    steps: u64,
}

impl<F: Float> Adam<F> {
    /// Allocates zero moment estimates for every parameter.
    pub fn new(params: &impl TensorSet<F>, config: AdamConfig) -> Self {
        Adam {
            config,
            first: State::zeros_like(params),
            second: State::zeros_like(params),
            steps: 0,
        }
    }

    /// How many steps have been taken.
    pub fn steps(&self) -> u64 {
        self.steps
    }

    /// `1 - beta^t`, the bias correction after `t` steps.
    fn correction(beta: f64, t: u64) -> F {
        from_f64(1.0 - beta.powi(i32::try_from(t).unwrap_or(i32::MAX)))
    }
}

impl<F: Float> Optimizer<F> for Adam<F> {
    fn step(
        &mut self,
        params: &mut impl TensorSet<F>,
        grads: &impl TensorSet<F>,
    ) -> Result<(), OptimError> {
        let AdamConfig {
            lr,
            beta1,
            beta2,
            epsilon,
        } = self.config;
        let pairs = pairs(params, grads)?;
        self.first.check(&pairs)?;
        self.second.check(&pairs)?;
        self.steps += 1;
        let (c1, c2) = (
            Self::correction(beta1, self.steps),
            Self::correction(beta2, self.steps),
        );
        let (lr, eps): (F, F) = (from_f64(lr), from_f64(epsilon));
        let (b1, b2): (F, F) = (from_f64(beta1), from_f64(beta2));
        let one = F::one();
        let moments = self.first.buffers.iter_mut().zip(&mut self.second.buffers);
        for ((_, p, g), (m, v)) in pairs.into_iter().zip(moments) {
            Zip::from(p).and(m).and(v).and(&g).for_each(|p, m, v, &g| {
                *m = b1 * *m + (one - b1) * g;
                *v = b2 * *v + (one - b2) * g * g;
                *p = *p - lr * (*m / c1) / ((*v / c2).sqrt() + eps);
            });
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::Tensors;

    fn params(w: &[f64], b: f64) -> Tensors<f64> {
        Tensors::new(vec![
            ("w", ndarray::arr1(w).into_dyn()),
            ("b", ndarray::arr0(b).into_dyn()),
        ])
    }

    /// Runs `opt` over the gradient sequence and compares every parameter with the
    /// hand-computed values after each step, to 1e-12.
    #[track_caller]
    fn check(opt: &mut impl Optimizer<f64>, steps: &[(Tensors<f64>, Tensors<f64>)]) {
        let mut p = params(&[1.0, 2.0], 0.5);
        for (i, (grad, expected)) in steps.iter().enumerate() {
            opt.step(&mut p, grad).expect("shapes line up");
            for ((name, got), (_, want)) in p.tensors().into_iter().zip(expected.tensors()) {
                for (x, y) in got.iter().zip(want.iter()) {
                    assert!(
                        (x - y).abs() < 1e-12,
                        "step {}: `{name}` is {got}, expected {want}",
                        i + 1
                    );
                }
            }
        }
    }

    #[test]
    fn sgd_subtracts_lr_times_gradient() {
        let g = || params(&[0.5, -1.0], 2.0);
        check(
            &mut Sgd::new(0.1),
            &[
                (g(), params(&[0.95, 2.1], 0.3)),
                (g(), params(&[0.9, 2.2], 0.1)),
            ],
        );
    }

    #[test]
    fn momentum_accumulates_velocity() {
        // v1 = -0.1 g = [-0.05, 0.1], 0.2;  v2 = 0.9 v1 - 0.1 g = [-0.095, 0.19], 0.38.
        let start = params(&[1.0, 2.0], 0.5);
        let config = MomentumConfig {
            lr: 0.1,
            momentum: 0.9,
        };
        let g = || params(&[0.5, -1.0], -2.0);
        check(
            &mut Momentum::new(&start, config),
            &[
                (g(), params(&[0.95, 2.1], 0.7)),
                (g(), params(&[0.855, 2.29], 1.08)),
            ],
        );
    }

    #[test]
    fn adam_matches_hand_computed_steps() {
        // Step 1, g = [0.5, -1], -2: m = 0.1 g, v = 0.001 g^2, so the bias-corrected step
        // is lr * g / (|g| + 1e-8): w = [0.9 + 2e-9, 2.1 - 1e-9], b = 0.6 - 5e-10.
        // Step 2, g = [0.25, 1], 0:
        //   m = 0.9 m + 0.1 g       = [0.07, 0.01], -0.18;   m^ = m / (1 - 0.9^2) = m / 0.19
        //   v = 0.999 v + 0.001 g^2 = [0.00031225, 0.001999], 0.003996;   v^ = v / 0.001999
        let start = params(&[1.0, 2.0], 0.5);
        let config = AdamConfig {
            lr: 0.1,
            ..AdamConfig::default()
        };
        let step = |m: f64, v: f64| 0.1 * (m / 0.19) / ((v / 0.001999f64).sqrt() + 1e-8);
        let (w0, w1, b) = (0.9 + 2e-9, 2.1 - 1e-9, 0.6 - 5e-10);
        let step2 = params(
            &[w0 - step(0.07, 0.00031225), w1 - step(0.01, 0.001999)],
            b - step(-0.18, 0.003996),
        );
        check(
            &mut Adam::new(&start, config),
            &[
                (params(&[0.5, -1.0], -2.0), params(&[w0, w1], b)),
                (params(&[0.25, 1.0], 0.0), step2),
            ],
        );
    }

    #[test]
    fn extra_gradients_after_the_parameters_are_ignored() {
        let mut p = params(&[1.0, 2.0], 0.5);
        let mut g = params(&[1.0, 1.0], 1.0);
        g.push("x", ndarray::arr1(&[7.0, 7.0, 7.0]).into_dyn());
        Sgd::new(0.5)
            .step(&mut p, &g)
            .expect("the extra `x` gradient is ignored");
        assert_eq!(p, params(&[0.5, 1.5], 0.0));
    }

    #[test]
    fn mismatches_are_errors_not_panics() {
        let mut p = params(&[1.0, 2.0], 0.5);
        let cases: Vec<(Tensors<f64>, &str)> = vec![
            (
                Tensors::new(vec![("w", ndarray::arr1(&[1.0, 1.0]).into_dyn())]),
                "1 gradients for 2 parameters",
            ),
            (
                Tensors::new(vec![
                    ("b", ndarray::arr0(1.0).into_dyn()),
                    ("w", ndarray::arr1(&[1.0, 1.0]).into_dyn()),
                ]),
                "parameter 0 is `w` but gradient 0 is `b`",
            ),
            (
                params(&[1.0, 1.0, 1.0], 0.0),
                "parameter `w` has shape [2] but its gradient has shape [3]",
            ),
        ];
        for (g, expected) in cases {
            let err = Sgd::new(0.1).step(&mut p, &g).expect_err(expected);
            assert_eq!(err.to_string(), expected);
        }
        assert_eq!(p, params(&[1.0, 2.0], 0.5), "unchanged after errors");
    }

    #[test]
    fn state_built_for_other_parameters_is_an_error() {
        let mut adam = Adam::new(&params(&[1.0, 2.0, 3.0], 0.5), AdamConfig::default());
        let mut p = params(&[1.0, 2.0], 0.5);
        let err = adam
            .step(&mut p, &params(&[1.0, 1.0], 1.0))
            .expect_err("state is [3]");
        assert_eq!(
            err.to_string(),
            "optimiser state was built for `w` [3], `b` [], not for these parameters (`w` [2], `b` [])"
        );
        assert_eq!(adam.steps(), 0);
    }
}
