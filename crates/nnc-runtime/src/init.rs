//! Parameter initialisers: the contract's `zeros`, `ones`, constants, `normal`,
//! `uniform`, `xavier` and `he`.
//!
//! Generated `init_params` calls [`fill`] once per parameter, in declaration order,
//! with the caller's RNG:
//!
//! ```
//! use nnc_runtime::init::{fill, Init};
//! use nnc_runtime::ndarray::ArrayD;
//! use nnc_runtime::rand::{rngs::StdRng, SeedableRng};
//!
//! let mut rng = StdRng::seed_from_u64(0);
//! let mut w = ArrayD::<f32>::zeros(vec![784, 100]);
//! fill(&mut w.view_mut(), Init::He, &mut rng);
//! ```
//!
//! Random values are drawn as `f64` and then rounded to the model's float type, one
//! draw per element in logical row-major order, so the same seed gives the same
//! parameters (up to rounding) for `f32` and `f64` models, whatever the memory layout
//! of the view. Deterministic initialisers draw nothing from the RNG.

use std::fmt;

use ndarray::ArrayViewMutD;
use rand::Rng;
use rand_distr::{Distribution, StandardNormal, StandardUniform};

use crate::Float;
use crate::cast::from_f64;

/// A parameter initialiser, as written after `=` in a `param` declaration.
///
/// Every variant is well defined for every finite argument, so [`fill`] cannot fail:
/// `Normal` computes `mean + std * z` (a negative `std` mirrors the distribution) and
/// `Uniform` computes `lo + (hi - lo) * u` with `u` in `[0, 1)` (`lo == hi` gives the
/// constant `lo`). The compiler may reject such arguments earlier; see [`Init::check`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Init {
    /// All zeros.
    Zeros,
    /// All ones.
    Ones,
    /// Every element set to the value (`= 0.25`).
    Constant(f64),
    /// Normal with the given mean and standard deviation.
    Normal {
        /// The mean.
        mean: f64,
        /// The standard deviation.
        std: f64,
    },
    /// Uniform on `[lo, hi)`.
    Uniform {
        /// The lower bound (included).
        lo: f64,
        /// The upper bound (excluded).
        hi: f64,
    },
    /// Standard normal divided by `sqrt(fan_in)`.
    Xavier,
    /// Standard normal divided by `sqrt(fan_in / 2)`.
    He,
}

/// Why an initialiser's arguments are suspicious (see [`Init::check`]).
#[derive(Clone, Debug, PartialEq)]
pub enum InitError {
    /// An argument is NaN or infinite.
    NotFinite {
        /// The initialiser checked.
        init: Init,
        /// The first non-finite argument.
        value: f64,
    },
    /// `normal` with a negative standard deviation.
    NegativeStd {
        /// The initialiser checked.
        init: Init,
        /// The standard deviation given.
        std: f64,
    },
    /// `uniform` with `lo` not below `hi`.
    EmptyRange {
        /// The initialiser checked.
        init: Init,
        /// The lower bound given.
        lo: f64,
        /// The upper bound given.
        hi: f64,
    },
}

impl std::fmt::Display for InitError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            InitError::NotFinite { init, value } => {
                write!(f, "initialiser `{init}`: argument {value} is not finite")
            }
            InitError::NegativeStd { init, std } => write!(
                f,
                "initialiser `{init}`: standard deviation {std} is negative"
            ),
            InitError::EmptyRange { init, lo, hi } => write!(
                f,
                "initialiser `{init}`: empty range, `lo` = {lo} is not below `hi` = {hi}"
            ),
        }
    }
}

impl std::error::Error for InitError {}

impl Init {
    /// Rejects non-finite arguments, a negative `std` and an empty `uniform` range.
    ///
    /// [`fill`] works without this check; it exists so that front ends can report
    /// such initialisers as mistakes.
    pub fn check(self) -> Result<(), InitError> {
        let args: &[f64] = match &self {
            Init::Constant(c) => &[*c],
            Init::Normal { mean, std } => &[*mean, *std],
            Init::Uniform { lo, hi } => &[*lo, *hi],
            Init::Zeros | Init::Ones | Init::Xavier | Init::He => &[],
        };
        if let Some(&value) = args.iter().find(|v| !v.is_finite()) {
            return Err(InitError::NotFinite { init: self, value });
        }
        match self {
            Init::Normal { std, .. } if std < 0.0 => {
                Err(InitError::NegativeStd { init: self, std })
            }
            Init::Uniform { lo, hi } if lo >= hi => {
                Err(InitError::EmptyRange { init: self, lo, hi })
            }
            _ => Ok(()),
        }
    }
}

impl fmt::Display for Init {
    /// The initialiser as written in `.nn` source.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Init::Zeros => f.write_str("zeros"),
            Init::Ones => f.write_str("ones"),
            Init::Constant(c) => write!(f, "{c}"),
            Init::Normal { mean, std } => write!(f, "normal({mean}, {std})"),
            Init::Uniform { lo, hi } => write!(f, "uniform({lo}, {hi})"),
            Init::Xavier => f.write_str("xavier"),
            Init::He => f.write_str("he"),
        }
    }
}

/// The fan-in of a parameter: its second-to-last dimension (the rows of a `[in, out]`
/// matrix, and of each matrix of a stack `[L, in, out]`), its only one for a vector,
/// or 1 for a scalar.
pub fn fan_in(shape: &[usize]) -> usize {
    let rows = shape.len().saturating_sub(2);
    shape.get(rows).copied().unwrap_or(1)
}

/// Overwrites every element of `view` with values drawn from `init`.
///
/// `xavier` and `he` take their fan-in from the view's shape (see [`fan_in`]); a view
/// whose first dimension is 0 has no elements, so nothing is drawn.
pub fn fill<F: Float, R: Rng + ?Sized>(view: &mut ArrayViewMutD<'_, F>, init: Init, rng: &mut R) {
    let fan_in = fan_in(view.shape()) as f64;
    match init {
        Init::Zeros => view.fill(F::zero()),
        Init::Ones => view.fill(F::one()),
        Init::Constant(c) => view.fill(from_f64(c)),
        Init::Normal { mean, std } => fill_normal(view, mean, std, rng),
        Init::Uniform { lo, hi } => fill_uniform(view, lo, hi, rng),
        Init::Xavier => fill_normal(view, 0.0, 1.0 / fan_in.sqrt(), rng),
        Init::He => fill_normal(view, 0.0, (2.0 / fan_in).sqrt(), rng),
    }
}

/// A dropout mask (inverted dropout): each element is `1 / keep` with probability
/// `keep`, else 0, drawn in order from one uniform `f64` each (`u < keep`), so that
/// every float type and every caller (generated code, the interpreter's callers)
/// draws the same mask from the same generator. `keep` is in (0, 1].
pub fn fill_dropout_mask<F: Float, R: Rng + ?Sized>(mask: &mut [F], keep: f64, rng: &mut R) {
    let scale: F = from_f64(1.0 / keep);
    for x in mask.iter_mut() {
        let u: f64 = StandardUniform.sample(rng);
        *x = if u < keep { scale } else { F::zero() };
    }
}

fn fill_normal<F: Float, R: Rng + ?Sized>(
    view: &mut ArrayViewMutD<'_, F>,
    mean: f64,
    std: f64,
    rng: &mut R,
) {
    for x in view.iter_mut() {
        let z: f64 = StandardNormal.sample(rng);
        *x = from_f64(mean + std * z);
    }
}

fn fill_uniform<F: Float, R: Rng + ?Sized>(
    view: &mut ArrayViewMutD<'_, F>,
    lo: f64,
    hi: f64,
    rng: &mut R,
) {
    for x in view.iter_mut() {
        let u: f64 = StandardUniform.sample(rng);
        *x = from_f64(lo + (hi - lo) * u);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{ArrayD, IxDyn};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// Sample mean and (population) standard deviation.
    fn moments(a: &ArrayD<f64>) -> (f64, f64) {
        let n = a.len() as f64;
        let mean = a.sum() / n;
        let var = a.iter().map(|x| (x - mean).powi(2)).sum::<f64>() / n;
        (mean, var.sqrt())
    }

    /// Fills a fresh array of `shape` and checks its mean and std against the expected
    /// values, within `tol` (absolute).
    #[track_caller]
    fn check_stats(init: Init, shape: &[usize], mean: f64, std: f64, tol: f64) {
        let mut rng = StdRng::seed_from_u64(42);
        let mut a = ArrayD::<f64>::from_elem(IxDyn(shape), f64::NAN);
        fill(&mut a.view_mut(), init, &mut rng);
        let (m, s) = moments(&a);
        assert!((m - mean).abs() < tol, "{init}: mean {m}, expected {mean}");
        assert!((s - std).abs() < tol, "{init}: std {s}, expected {std}");
    }

    #[test]
    fn deterministic_initialisers_fill_exact_values() {
        let mut rng = StdRng::seed_from_u64(0);
        for (init, value) in [
            (Init::Zeros, 0.0f32),
            (Init::Ones, 1.0),
            (Init::Constant(0.25), 0.25),
        ] {
            let mut a = ArrayD::<f32>::from_elem(IxDyn(&[3, 2]), f32::NAN);
            fill(&mut a.view_mut(), init, &mut rng);
            assert!(a.iter().all(|&x| x == value), "{init}: {a}");
        }
    }

    #[test]
    fn random_initialisers_have_the_declared_statistics() {
        // 200 000 samples: the sample mean and std are within ~0.01 of the truth.
        check_stats(
            Init::Normal {
                mean: 3.0,
                std: 0.5,
            },
            &[400, 500],
            3.0,
            0.5,
            0.01,
        );
        check_stats(
            Init::Uniform { lo: -1.0, hi: 3.0 },
            &[400, 500],
            1.0,
            4.0 / 12f64.sqrt(),
            0.01,
        );
        check_stats(Init::Xavier, &[400, 500], 0.0, 1.0 / 400f64.sqrt(), 0.001);
        check_stats(Init::He, &[400, 500], 0.0, (2.0 / 400f64).sqrt(), 0.001);
    }

    #[test]
    fn uniform_stays_in_its_range() {
        let mut rng = StdRng::seed_from_u64(1);
        let mut a = ArrayD::<f32>::zeros(IxDyn(&[10_000]));
        fill(
            &mut a.view_mut(),
            Init::Uniform { lo: -0.5, hi: 0.25 },
            &mut rng,
        );
        assert!(a.iter().all(|&x| (-0.5..0.25).contains(&x)));
    }

    #[test]
    fn fan_in_is_the_second_to_last_dim_or_one_for_a_scalar() {
        assert_eq!(fan_in(&[]), 1);
        assert_eq!(fan_in(&[7]), 7);
        assert_eq!(fan_in(&[7, 3]), 7);
        // A stack of ten [3, 2] matrices: each matrix's rows.
        assert_eq!(fan_in(&[10, 3, 2]), 3);
        // A scalar `he` parameter is standard normal * sqrt(2 / 1).
        let mut rng = StdRng::seed_from_u64(9);
        let mut expected_rng = StdRng::seed_from_u64(9);
        let mut a = ArrayD::<f64>::zeros(IxDyn(&[]));
        fill(&mut a.view_mut(), Init::He, &mut rng);
        let z: f64 = StandardNormal.sample(&mut expected_rng);
        assert_eq!(a[IxDyn(&[])], z * 2f64.sqrt());
    }

    #[test]
    fn same_seed_gives_same_values_in_f32_and_f64() {
        let mut a32 = ArrayD::<f32>::zeros(IxDyn(&[5, 4]));
        let mut a64 = ArrayD::<f64>::zeros(IxDyn(&[5, 4]));
        fill(
            &mut a32.view_mut(),
            Init::Xavier,
            &mut StdRng::seed_from_u64(7),
        );
        fill(
            &mut a64.view_mut(),
            Init::Xavier,
            &mut StdRng::seed_from_u64(7),
        );
        for (x, y) in a32.iter().zip(&a64) {
            assert_eq!(*x, *y as f32);
        }
    }

    #[test]
    fn values_follow_logical_order_not_memory_order() {
        let mut c = ArrayD::<f64>::zeros(IxDyn(&[3, 4]));
        let mut f = ArrayD::<f64>::zeros(IxDyn(&[4, 3]));
        fill(
            &mut c.view_mut(),
            Init::Uniform { lo: 0.0, hi: 1.0 },
            &mut StdRng::seed_from_u64(3),
        );
        // A transposed view of `f` is logically [3, 4] but column-major in memory.
        let mut ft = f.view_mut().reversed_axes();
        fill(
            &mut ft,
            Init::Uniform { lo: 0.0, hi: 1.0 },
            &mut StdRng::seed_from_u64(3),
        );
        assert_eq!(c, f.t());
    }

    #[test]
    fn check_flags_suspicious_arguments() {
        let cases = [
            (Init::He, None),
            (
                Init::Normal {
                    mean: 0.0,
                    std: 0.01,
                },
                None,
            ),
            (
                Init::Normal {
                    mean: 0.0,
                    std: -1.0,
                },
                Some("initialiser `normal(0, -1)`: standard deviation -1 is negative"),
            ),
            (
                Init::Uniform { lo: 1.0, hi: 1.0 },
                Some("initialiser `uniform(1, 1)`: empty range, `lo` = 1 is not below `hi` = 1"),
            ),
            (
                Init::Constant(f64::NAN),
                Some("initialiser `NaN`: argument NaN is not finite"),
            ),
        ];
        for (init, expected) in cases {
            let got = init.check().err().map(|e| e.to_string());
            assert_eq!(got.as_deref(), expected, "{init}");
        }
    }
}
