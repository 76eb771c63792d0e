//! Gradient checking: analytic gradients against central finite differences of the
//! loss. This is the project's one gradient checker and its one error formula: the
//! generated code's [`check_gradients`] runs it through the [`Model`] trait, `nnc
//! gradcheck` and the compiler's tests run it on the IR interpreter (through
//! [`Objective`], in `nnc_autodiff::gradcheck`).
//!
//! ## What is compared
//!
//! A *probe* moves the point along a direction `u` and compares the directional
//! derivative two ways:
//!
//! - analytic: `sum_i g_i u_i`, from the gradient `g` being checked;
//! - numerical: `(L(x + h u) - L(x - h u)) / 2h`, two evaluations of the loss.
//!
//! Two kinds of probe, for every gradient tensor:
//!
//! - **directions**: `u` a random direction over the whole tensor
//!   ([`GradCheckConfig::directions`] per tensor), of length `s = min(sqrt(n),
//!   direction_norm)` for a tensor of `n` elements
//!   ([`GradCheckConfig::direction_norm`]: 10 in `f64`, where truncation error is
//!   far below the threshold; 1 in `f32`, whose step already balances truncation
//!   against rounding). One probe tests every element at once: a wrong element shifts
//!   the directional derivative by its error times its component of `u` (about
//!   `s / sqrt(n)`), against a derivative of about `s` times the gradient's typical
//!   element; so a single wrong element among `n` is caught, whichever it is, when
//!   its error exceeds about `threshold * sqrt(n)` of the typical element (plus
//!   `sqrt(n) / s` times the noise below), where a sample of `k` elements finds it
//!   with probability `k / n`;
//! - **elements**: `u` a unit vector along one element, for a seeded sample of
//!   [`GradCheckConfig::samples_per_tensor`] elements, which pins a failure to an
//!   index and checks small tensors exhaustively.
//!
//! `u` is the direction actually represented: `((x + h u) - (x - h u)) / 2h` in the
//! model's float type, so rounding the perturbed point does not count as an error.
//!
//! ## The error formula
//!
//! ```text
//! error = max(|a - n| - noise, 0) / max(|a|, |n|, floor)
//! ```
//!
//! where `a` and `n` are the analytic and numerical directional derivatives;
//! `noise = 64 eps max(|L|, 1) / 2h` bounds the rounding error the difference of two loss
//! evaluations carries (`eps` of the model's float type); and `floor` keeps probes
//! where the derivative nearly vanishes from dominating (a central difference's
//! truncation error is relative to the curvature, not to the derivative): for an
//! element, [`GradCheckConfig::floor`] (1e-3) of the tensor's largest gradient; for a
//! direction, that fraction of the directional derivative's typical size
//! `|g| |u| / sqrt(n)` (about `|g|`). [`relative_error`] is the formula; the report also gives the
//! plain `|a - n| / max(|a|, |n|)` a person computes by hand. A tensor passes when
//! every error is at most [`GradCheckConfig::threshold`]; NaN or infinity on either
//! side fails.
//!
//! ## Budget
//!
//! Each probe costs two loss evaluations. The probes are planned within
//! [`GradCheckConfig::max_evaluations`]: the directions first (at least one per
//! tensor whatever the budget), then the element samples, spread evenly over the
//! tensors; and run round by round over the tensors (every tensor's first direction,
//! then every tensor's second, ...), so that a [`GradCheckConfig::max_time`] cut
//! short still leaves every tensor checked along at least one direction.
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
use std::time::{Duration, Instant};

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

use crate::cast::{from_f64, to_f64};
use crate::{Float, Model, NamedInputs, ShapeError, TensorSet};

/// How to check: step, probes, budget and the pass threshold.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct GradCheckConfig {
    /// The step `h` of the central difference.
    pub step: f64,
    /// Random directions probed per tensor.
    pub directions: usize,
    /// The length of a direction over `n` elements is `min(sqrt(n), direction_norm)`
    /// (an element probe has length 1).
    pub direction_norm: f64,
    /// Elements probed per tensor (a seeded sample; every element of a smaller tensor).
    pub samples_per_tensor: usize,
    /// At most this many loss evaluations (two per probe; the directions are kept,
    /// at least one per tensor, and the element samples shrink to fit).
    pub max_evaluations: usize,
    /// Stop probing after this long (every tensor still gets one direction).
    pub max_time: Option<Duration>,
    /// Seed for the directions and the sampled elements.
    pub seed: u64,
    /// A tensor passes when every error is at most this.
    pub threshold: f64,
    /// Errors are relative to at least this fraction of the tensor's gradient scale.
    pub floor: f64,
}

impl GradCheckConfig {
    /// Settings suited to the float type.
    ///
    /// - `f64`: step 1e-5, threshold 1e-6, directions of length up to 10.
    /// - `f32`: step 1e-2, threshold 1e-2, directions of length up to 1 (the noise of
    ///   an `f32` loss, ~1e-7 of it, over 2h needs the large step; `f32` checks are
    ///   coarse, check in `f64` where the model allows it).
    ///
    /// Both probe 4 directions and up to 32 elements per tensor, within 2 000 loss
    /// evaluations.
    pub fn for_type<F: Float>() -> Self {
        let double = F::epsilon() < from_f64(1e-10);
        let (step, threshold, direction_norm) = if double {
            (1e-5, 1e-6, 10.0)
        } else {
            (1e-2, 1e-2, 1.0)
        };
        GradCheckConfig {
            step,
            directions: 4,
            direction_norm,
            samples_per_tensor: 32,
            max_evaluations: 2000,
            max_time: None,
            seed: 0,
            threshold,
            floor: 1e-3,
        }
    }
}

impl Default for GradCheckConfig {
    /// [`GradCheckConfig::for_type`] for `f64`.
    fn default() -> Self {
        GradCheckConfig::for_type::<f64>()
    }
}

/// A probe: where the point was moved.
#[derive(Clone, Debug, PartialEq)]
pub enum Probe {
    /// Along one element, at this index.
    Element(Vec<usize>),
    /// Along the tensor's `k`-th random direction.
    Direction(usize),
}

impl fmt::Display for Probe {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Probe::Element(index) => write!(f, "element {index:?}"),
            Probe::Direction(k) => write!(f, "direction {}", k + 1),
        }
    }
}

/// The probe with the largest error, with both derivatives there (per unit step of
/// the element for an element probe: the gradient element and its estimate).
#[derive(Clone, Debug, PartialEq)]
pub struct Worst {
    /// Where: the element or random direction probed.
    pub probe: Probe,
    /// The directional derivative from the gradient being checked.
    pub analytic: f64,
    /// The directional derivative from the central difference of the loss.
    pub numerical: f64,
}

/// The result for one gradient tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    /// The name of the tensor whose gradient this is.
    pub name: String,
    /// Elements in the tensor.
    pub elements: usize,
    /// Random directions probed.
    pub directions: usize,
    /// Elements probed.
    pub checked: usize,
    /// The largest `|a - n| / max(|a|, |n|)`: what a person computes by hand.
    pub max_relative_error: f64,
    /// The largest error by the module's formula (noise discounted, floor applied):
    /// what the threshold judges.
    pub max_error_beyond_noise: f64,
    /// Where the largest error (by the formula) was found.
    pub worst: Option<Worst>,
}

impl TensorReport {
    /// Whether every probe of this tensor is within `threshold` (NaN fails).
    pub fn passed(&self, threshold: f64) -> bool {
        self.max_error_beyond_noise <= threshold
    }
}

/// The result for every gradient tensor, in the order the gradients come.
#[derive(Clone, Debug, PartialEq)]
pub struct GradCheckReport {
    /// One report per gradient tensor, in the order the gradients come.
    pub tensors: Vec<TensorReport>,
    /// The threshold the check was run with.
    pub threshold: f64,
    /// The step the differences were taken with.
    pub step: f64,
    /// Loss evaluations spent on differences.
    pub evaluations: usize,
    /// Probes planned but not run because the time ran out.
    pub skipped: usize,
}

impl GradCheckReport {
    /// The largest plain relative error over all tensors.
    pub fn max_relative_error(&self) -> f64 {
        self.tensors
            .iter()
            .map(|t| t.max_relative_error)
            .fold(0.0, f64::max)
    }

    /// Whether every tensor is within the threshold.
    pub fn passed(&self) -> bool {
        self.tensors.iter().all(|t| t.passed(self.threshold))
    }

    /// The report for the tensor called `name`.
    pub fn tensor(&self, name: &str) -> Option<&TensorReport> {
        self.tensors.iter().find(|t| t.name == name)
    }
}

impl fmt::Display for GradCheckReport {
    /// One line per tensor: name, size, probes, error and verdict; a failing tensor
    /// adds its worst probe.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for t in &self.tensors {
            let verdict = if t.passed(self.threshold) {
                "ok"
            } else {
                "FAILED"
            };
            let name = format!("d_{}", t.name);
            writeln!(
                f,
                "  {name:<12} {:>8} elements: {} directions, {:>5} elements   max relative error {:.2e}   {verdict}",
                t.elements, t.directions, t.checked, t.max_relative_error
            )?;
            if let (false, Some(w)) = (t.passed(self.threshold), &t.worst) {
                writeln!(
                    f,
                    "      worst at {}: analytic {:e}, numerical {:e}",
                    w.probe, w.analytic, w.numerical
                )?;
            }
        }
        if self.skipped > 0 {
            writeln!(
                f,
                "  (time limit reached: {} of the planned probes were not run)",
                self.skipped
            )?;
        }
        Ok(())
    }
}

/// Why a gradient check could not run.
#[derive(Clone, Debug, PartialEq)]
pub enum GradCheckError {
    /// The inputs do not fit the model, or the model could not compute the loss and
    /// its gradients at the point.
    Shape(ShapeError),
    /// The model gives a gradient for a name that is neither one of its parameters nor
    /// one of the float inputs, so there is no tensor to perturb.
    UnknownGradient {
        /// The model's name.
        model: String,
        /// The name of the gradient.
        name: String,
    },
    /// A gradient's shape differs from the shape of the tensor it belongs to.
    ShapeMismatch {
        /// The name of the gradient (and of its tensor).
        name: String,
        /// The gradient's shape.
        grad: Vec<usize>,
        /// The tensor's shape.
        tensor: Vec<usize>,
    },
}

impl std::fmt::Display for GradCheckError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            GradCheckError::Shape(error) => error.fmt(f),
            GradCheckError::UnknownGradient { model, name } => write!(
                f,
                "gradient `{name}` is neither a parameter nor a float input of model `{model}`"
            ),
            GradCheckError::ShapeMismatch { name, grad, tensor } => write!(
                f,
                "gradient `{name}` has shape {grad:?} but the tensor it belongs to has shape {tensor:?}"
            ),
        }
    }
}

impl std::error::Error for GradCheckError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            GradCheckError::Shape(error) => error.source(),
            _ => None,
        }
    }
}

impl From<ShapeError> for GradCheckError {
    fn from(error: ShapeError) -> Self {
        GradCheckError::Shape(error)
    }
}

/// `max(|a - n| - noise, 0) / max(|a|, |n|, floor)`: the module's error formula. NaN
/// or infinity on either side gives infinity (a failure, never a pass).
pub fn relative_error(analytic: f64, numerical: f64, noise: f64, floor: f64) -> f64 {
    let diff = (analytic - numerical).abs();
    if !diff.is_finite() {
        return f64::INFINITY;
    }
    let diff = (diff - noise).max(0.0);
    if diff == 0.0 {
        return 0.0;
    }
    diff / analytic.abs().max(numerical.abs()).max(floor)
}

/// The largest [`relative_error`] of `actual` against `expected`, element by element,
/// each relative to at least the largest `|expected|` (no noise): how two
/// implementations' results are compared. Infinite when the shapes differ or a value
/// is not finite.
pub fn max_relative_error<F: Float>(
    actual: &ArrayViewD<'_, F>,
    expected: &ArrayViewD<'_, F>,
) -> f64 {
    if actual.shape() != expected.shape() {
        return f64::INFINITY;
    }
    let scale = expected.iter().fold(0.0f64, |m, &e| m.max(to_f64(e).abs()));
    actual
        .iter()
        .zip(expected)
        .map(|(&a, &e)| relative_error(to_f64(a), to_f64(e), 0.0, scale))
        .fold(0.0, f64::max)
}

/// What a check needs of a model at a point: the analytic gradients, the tensors
/// they belong to (to perturb), and the loss. Implemented here for generated models
/// ([`check_gradients`]) and by the compiler for its interpreter.
pub trait Objective {
    /// The float type the loss is computed in.
    type Float: Float;
    /// Why the loss or the gradients could not be computed.
    type Error: From<GradCheckError>;

    /// The loss and every gradient to check, named after the tensor it belongs to,
    /// at the point as given.
    #[allow(clippy::type_complexity)]
    fn analytic(
        &mut self,
    ) -> Result<(Self::Float, Vec<(String, ArrayD<Self::Float>)>), Self::Error>;

    /// The tensor the `k`-th gradient belongs to, writable: the checker moves it and
    /// puts it back exactly.
    fn tensor_mut(&mut self, k: usize) -> ArrayViewMutD<'_, Self::Float>;

    /// The loss at the point as it is now.
    fn loss(&mut self) -> Result<Self::Float, Self::Error>;
}

/// Checks every gradient `objective` gives (see the module docs).
pub fn check<O: Objective>(
    objective: &mut O,
    config: &GradCheckConfig,
) -> Result<GradCheckReport, O::Error> {
    let start = Instant::now();
    let (loss, gradients) = objective.analytic()?;
    for (k, (name, g)) in gradients.iter().enumerate() {
        let tensor = objective.tensor_mut(k).shape().to_vec();
        if tensor != g.shape() {
            return Err(GradCheckError::ShapeMismatch {
                name: name.clone(),
                grad: g.shape().to_vec(),
                tensor,
            }
            .into());
        }
    }
    let h = config.step;
    let epsilon = to_f64(<O::Float as num_traits::Float>::epsilon());
    let noise = 64.0 * epsilon * to_f64(loss).abs().max(1.0) / (2.0 * h);
    let plan = Plan::new(&gradients, config);
    let mut rng = StdRng::seed_from_u64(config.seed);
    let mut tensors: Vec<Tally> = gradients
        .iter()
        .map(|(name, g)| Tally::new(name, g, config.floor))
        .collect();
    let mut evaluations = 0;
    let mut skipped = 0;
    for (round, probes) in plan.rounds().enumerate() {
        for (k, planned) in probes {
            // The first round (every tensor's first probe) always runs.
            if round > 0 && config.max_time.is_some_and(|t| start.elapsed() > t) {
                skipped += 1;
                continue;
            }
            let tally = &mut tensors[k];
            let direction = match planned {
                Planned::Direction(_) => {
                    let n = tally.gradient.len();
                    let length = (n as f64).sqrt().min(config.direction_norm);
                    Direction::Random(random_direction(n, length, &mut rng))
                }
                Planned::Element(i) => Direction::Element(i),
            };
            let measured = difference(objective, k, tally, &direction, h)?;
            evaluations += 2;
            tally.record(planned, &measured, noise);
        }
    }
    Ok(GradCheckReport {
        tensors: tensors.into_iter().map(Tally::report).collect(),
        threshold: config.threshold,
        step: h,
        evaluations,
        skipped,
    })
}

/// Which probes each tensor gets.
struct Plan {
    directions: Vec<usize>,
    /// The sampled flat indices of each tensor.
    elements: Vec<Vec<usize>>,
}

impl Plan {
    fn new<F>(gradients: &[(String, ArrayD<F>)], config: &GradCheckConfig) -> Plan {
        let mut rng = StdRng::seed_from_u64(config.seed ^ 0x5eed_e1e5);
        let tensors = gradients.len().max(1);
        let probes = config.max_evaluations / 2;
        let sizes: Vec<usize> = gradients.iter().map(|(_, g)| g.len()).collect();
        // Directions first: what the budget allows, at least one per tensor (unless
        // none are asked for).
        let per_tensor = match config.directions {
            0 => 0,
            d => d.min(probes / tensors).max(1),
        };
        let directions: Vec<usize> = sizes
            .iter()
            .map(|&n| if n == 0 { 0 } else { per_tensor })
            .collect();
        // Then the elements, shared out evenly (small tensors leave their share to
        // the others).
        let mut left = probes.saturating_sub(directions.iter().sum());
        let mut wanted: Vec<(usize, usize)> = sizes
            .iter()
            .map(|&n| n.min(config.samples_per_tensor))
            .enumerate()
            .collect();
        wanted.sort_by_key(|&(_, w)| w);
        let mut counts = vec![0; sizes.len()];
        for (i, &(k, w)) in wanted.iter().enumerate() {
            let share = left / (wanted.len() - i);
            counts[k] = w.min(share);
            left -= counts[k];
        }
        let elements = sizes
            .iter()
            .zip(&counts)
            .map(|(&n, &count)| sample(n, count, &mut rng))
            .collect();
        Plan {
            directions,
            elements,
        }
    }

    /// The probes round by round: every tensor's first direction, then every tensor's
    /// second, ..., then every tensor's first element, and so on.
    fn rounds(&self) -> impl Iterator<Item = Vec<(usize, Planned)>> + '_ {
        let most_directions = self.directions.iter().copied().max().unwrap_or(0);
        let most_elements = self.elements.iter().map(Vec::len).max().unwrap_or(0);
        let directions = (0..most_directions).map(move |r| {
            (0..self.directions.len())
                .filter(|&k| r < self.directions[k])
                .map(|k| (k, Planned::Direction(r)))
                .collect()
        });
        let elements = (0..most_elements).map(move |r| {
            (0..self.elements.len())
                .filter(|&k| r < self.elements[k].len())
                .map(|k| (k, Planned::Element(self.elements[k][r])))
                .collect()
        });
        directions.chain(elements)
    }
}

/// A probe as planned: a tensor's `r`-th direction, or an element by flat index.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Planned {
    Direction(usize),
    Element(usize),
}

/// Up to `k` distinct flat indices below `n`, in increasing order.
fn sample(n: usize, k: usize, rng: &mut StdRng) -> Vec<usize> {
    if n <= k {
        return (0..n).collect();
    }
    let mut picked = rand::seq::index::sample(rng, n, k).into_vec();
    picked.sort_unstable();
    picked
}

/// A random direction of `n` components and the given length (uniform over the
/// sphere: normalised standard normal components).
fn random_direction(n: usize, length: f64, rng: &mut StdRng) -> Vec<f64> {
    let mut v: Vec<f64> = (0..n).map(|_| StandardNormal.sample(rng)).collect();
    let norm = v.iter().map(|x| x * x).sum::<f64>().sqrt();
    if norm > 0.0 {
        v.iter_mut().for_each(|x| *x *= length / norm);
    }
    v
}

/// Along what a probe moves the tensor.
enum Direction {
    Random(Vec<f64>),
    Element(usize),
}

/// What one probe measured: both directional derivatives along the direction
/// actually taken, the floor for their error, and (for an element) the step taken
/// per unit `h`, to report per-element values.
struct Measured {
    analytic: f64,
    numerical: f64,
    floor: f64,
    unit: f64,
}

/// Moves tensor `k` to `x + h u` and `x - h u`, evaluates the loss at both, and puts
/// the tensor back exactly.
fn difference<O: Objective>(
    objective: &mut O,
    k: usize,
    tally: &Tally,
    direction: &Direction,
    h: f64,
) -> Result<Measured, O::Error> {
    // The values the probe moves: the whole tensor, or one element.
    let original: Vec<O::Float> = {
        let view = objective.tensor_mut(k);
        match direction {
            Direction::Random(_) => view.iter().copied().collect(),
            Direction::Element(i) => view.iter().nth(*i).copied().into_iter().collect(),
        }
    };
    let components: Vec<f64> = match direction {
        Direction::Random(u) => u.clone(),
        Direction::Element(_) => vec![1.0; original.len()],
    };
    let set = |objective: &mut O, values: &[O::Float]| {
        let mut view = objective.tensor_mut(k);
        match direction {
            Direction::Random(_) => view.iter_mut().zip(values).for_each(|(x, &v)| *x = v),
            Direction::Element(i) => {
                if let (Some(x), Some(&v)) = (view.iter_mut().nth(*i), values.first()) {
                    *x = v;
                }
            }
        }
    };
    let moved = |sign: f64| -> Vec<O::Float> {
        original
            .iter()
            .zip(&components)
            .map(|(&x, &u)| x + from_f64::<O::Float>(sign * h * u))
            .collect()
    };
    let (plus, minus) = (moved(1.0), moved(-1.0));
    set(objective, &plus);
    let loss_plus = objective.loss();
    set(objective, &minus);
    let loss_minus = objective.loss();
    set(objective, &original);
    let numerical = (to_f64(loss_plus?) - to_f64(loss_minus?)) / (2.0 * h);
    // The direction actually taken: ((x + h u) - (x - h u)) / 2h.
    let taken: Vec<f64> = plus
        .iter()
        .zip(&minus)
        .map(|(&p, &m)| (to_f64(p) - to_f64(m)) / (2.0 * h))
        .collect();
    Ok(match direction {
        Direction::Random(_) => {
            let analytic = taken
                .iter()
                .zip(tally.gradient.iter())
                .map(|(u, g)| u * g)
                .sum();
            let norm = taken.iter().map(|u| u * u).sum::<f64>().sqrt();
            let n = (taken.len() as f64).max(1.0);
            Measured {
                analytic,
                numerical,
                floor: tally.floor * tally.norm * norm / n.sqrt(),
                unit: 1.0,
            }
        }
        Direction::Element(i) => {
            let unit = taken.first().copied().unwrap_or(0.0);
            let g = tally.gradient.iter().nth(*i).copied().unwrap_or(f64::NAN);
            Measured {
                analytic: g * unit,
                numerical,
                floor: tally.floor * tally.largest * unit.abs(),
                unit,
            }
        }
    })
}

/// One tensor's running results.
struct Tally {
    report: TensorReport,
    shape: Vec<usize>,
    gradient: ArrayD<f64>,
    /// `floor` of the config.
    floor: f64,
    /// The largest |g| and the norm of g.
    largest: f64,
    norm: f64,
}

impl Tally {
    fn new<F: Float>(name: &str, g: &ArrayD<F>, floor: f64) -> Tally {
        let gradient = g.mapv(to_f64);
        let largest = gradient.iter().fold(0.0f64, |m, x| m.max(x.abs()));
        let norm = gradient.iter().map(|x| x * x).sum::<f64>().sqrt();
        Tally {
            report: TensorReport {
                name: name.to_string(),
                elements: g.len(),
                directions: 0,
                checked: 0,
                max_relative_error: 0.0,
                max_error_beyond_noise: 0.0,
                worst: None,
            },
            shape: g.shape().to_vec(),
            gradient,
            floor,
            largest,
            norm,
        }
    }

    fn record(&mut self, planned: Planned, m: &Measured, noise: f64) {
        let error = relative_error(m.analytic, m.numerical, noise, m.floor);
        let plain = relative_error(m.analytic, m.numerical, 0.0, 0.0);
        let r = &mut self.report;
        r.max_relative_error = r.max_relative_error.max(plain);
        let probe = match planned {
            Planned::Direction(k) => {
                r.directions += 1;
                Probe::Direction(k)
            }
            Planned::Element(i) => {
                r.checked += 1;
                Probe::Element(unravel(i, &self.shape))
            }
        };
        // Ties go to element probes, which say where.
        let better_place = matches!(probe, Probe::Element(_))
            && matches!(
                r.worst.as_ref().map(|w| &w.probe),
                Some(Probe::Direction(_))
            );
        if r.worst.is_none()
            || error > r.max_error_beyond_noise
            || (better_place && error >= r.max_error_beyond_noise)
        {
            r.max_error_beyond_noise = error;
            // Per unit step of the element for an element probe.
            let unit = if m.unit != 0.0 && m.unit.is_finite() {
                m.unit
            } else {
                1.0
            };
            r.worst = Some(Worst {
                probe,
                analytic: m.analytic / unit,
                numerical: m.numerical / unit,
            });
        }
    }

    fn report(self) -> TensorReport {
        self.report
    }
}

/// The multi-index of flat (row-major) position `flat` in `shape`.
fn unravel(mut flat: usize, shape: &[usize]) -> Vec<usize> {
    let mut index = vec![0; shape.len()];
    for (slot, &dim) in index.iter_mut().zip(shape).rev() {
        let dim = dim.max(1);
        *slot = flat % dim;
        flat /= dim;
    }
    index
}

// ---------------------------------------------------------------------------------
// Generated models, through the `Model` trait
// ---------------------------------------------------------------------------------

/// Checks `M::loss_and_grad` against central differences of `M::loss` at `params`
/// and `inputs`, in the model's own float type (see the module docs).
pub fn check_gradients<M: Model>(
    params: &M::Params,
    inputs: &NamedInputs<M::Float>,
    config: &GradCheckConfig,
) -> Result<GradCheckReport, GradCheckError> {
    let workspace = M::workspace(&M::bind_inputs(inputs)?);
    let mut objective = ModelObjective::<M> {
        params: params.clone(),
        inputs: inputs.clone(),
        targets: Vec::new(),
        workspace,
    };
    check(&mut objective, config)
}

/// What is perturbed: a parameter or a float input, by position in its container.
#[derive(Clone, Copy)]
enum Target {
    Param(usize),
    Input(usize),
}

/// Working copies of a generated model's parameters and inputs.
struct ModelObjective<M: Model> {
    params: M::Params,
    inputs: NamedInputs<M::Float>,
    targets: Vec<Target>,
    workspace: M::Workspace,
}

impl<M: Model> Objective for ModelObjective<M> {
    type Float = M::Float;
    type Error = GradCheckError;

    fn analytic(&mut self) -> Result<(M::Float, Vec<(String, ArrayD<M::Float>)>), GradCheckError> {
        let bound = M::bind_inputs(&self.inputs)?;
        let mut grads = M::zero_grads(&bound);
        let loss = M::loss_and_grad(&self.params, &bound, &mut self.workspace, &mut grads)?;
        let mut gradients = Vec::new();
        for (name, g) in grads.tensors() {
            let param = self.params.tensors().iter().position(|(n, _)| *n == name);
            let input = self.inputs.floats.iter().position(|(n, _)| n == name);
            let target = match (param, input) {
                (Some(i), _) => Target::Param(i),
                (None, Some(i)) => Target::Input(i),
                (None, None) => {
                    return Err(GradCheckError::UnknownGradient {
                        model: M::signature().model.to_string(),
                        name: name.to_string(),
                    });
                }
            };
            self.targets.push(target);
            gradients.push((name.to_string(), g.to_owned()));
        }
        Ok((loss, gradients))
    }

    fn tensor_mut(&mut self, k: usize) -> ArrayViewMutD<'_, M::Float> {
        match self.targets[k] {
            Target::Param(i) => self.params.tensors_mut().swap_remove(i).1,
            Target::Input(i) => self.inputs.floats[i].1.view_mut(),
        }
    }

    fn loss(&mut self) -> Result<M::Float, GradCheckError> {
        let bound = M::bind_inputs(&self.inputs)?;
        Ok(M::loss(&self.params, &bound, &mut self.workspace)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{IxDyn, arr1};

    #[test]
    fn relative_error_follows_the_formula() {
        assert_eq!(relative_error(1.0, 1.0, 0.0, 0.0), 0.0);
        assert_eq!(relative_error(2.0, 1.0, 0.0, 0.0), 0.5);
        assert_eq!(relative_error(-1.0, 1.0, 0.0, 0.0), 2.0);
        assert_eq!(relative_error(1.0 + 1e-12, 1.0, 1e-10, 0.0), 0.0, "noise");
        // A tiny element is judged against the floor, not itself.
        assert_eq!(relative_error(2e-9, 1e-9, 0.0, 1e-3), 1e-6);
        assert_eq!(relative_error(f64::NAN, 1.0, 0.0, 0.0), f64::INFINITY);
        assert_eq!(relative_error(1.0, f64::INFINITY, 0.0, 0.0), f64::INFINITY);
    }

    #[test]
    fn arrays_compare_relative_to_the_expected_scale() {
        let a = arr1(&[1.0, 2.0, 4.0 + 1e-9]).into_dyn();
        let b = arr1(&[1.0, 2.0, 4.0]).into_dyn();
        let expected = 1e-9 / (4.0 + 1e-9);
        assert!((max_relative_error(&a.view(), &b.view()) - expected).abs() < 1e-6 * expected);
        let c = arr1(&[1.0, 2.0]).into_dyn();
        assert_eq!(max_relative_error(&a.view(), &c.view()), f64::INFINITY);
        let nan = arr1(&[1.0, f64::NAN, 4.0]).into_dyn();
        assert_eq!(max_relative_error(&nan.view(), &b.view()), f64::INFINITY);
    }

    #[test]
    fn unravel_is_row_major() {
        assert_eq!(unravel(0, &[]), Vec::<usize>::new());
        assert_eq!(unravel(5, &[2, 3]), vec![1, 2]);
        assert_eq!(unravel(7, &[2, 2, 2]), vec![1, 1, 1]);
    }

    fn gradients(sizes: &[usize]) -> Vec<(String, ArrayD<f64>)> {
        sizes
            .iter()
            .enumerate()
            .map(|(k, &n)| (format!("t{k}"), ArrayD::zeros(IxDyn(&[n]))))
            .collect()
    }

    #[test]
    fn the_plan_keeps_directions_and_shares_the_rest_of_the_budget() {
        let config = GradCheckConfig {
            directions: 4,
            samples_per_tensor: 32,
            max_evaluations: 2000,
            ..GradCheckConfig::default()
        };
        // Small tensors are checked whole; the budget is not reached.
        let plan = Plan::new(&gradients(&[3, 0, 40]), &config);
        assert_eq!(plan.directions, vec![4, 0, 4]);
        let counts: Vec<usize> = plan.elements.iter().map(Vec::len).collect();
        assert_eq!(counts, vec![3, 0, 32]);
        assert_eq!(plan.elements[0], vec![0, 1, 2]);
        // 100 probes over 11 tensors: 4 directions each, 56 elements shared out.
        let tight = GradCheckConfig {
            max_evaluations: 200,
            ..config
        };
        let plan = Plan::new(&gradients(&[250_000; 11]), &tight);
        assert_eq!(plan.directions, vec![4; 11]);
        let counts: Vec<usize> = plan.elements.iter().map(Vec::len).collect();
        assert_eq!(counts.iter().sum::<usize>(), 100 - 44);
        assert!(counts.iter().all(|&c| c == 5 || c == 6), "{counts:?}");
        // A budget below one direction per tensor still gives each tensor one.
        let none = GradCheckConfig {
            max_evaluations: 0,
            ..config
        };
        let plan = Plan::new(&gradients(&[5; 3]), &none);
        assert_eq!(plan.directions, vec![1; 3]);
        assert!(plan.elements.iter().all(Vec::is_empty));
        let rounds: Vec<Vec<(usize, Planned)>> = plan.rounds().collect();
        assert_eq!(rounds.len(), 1, "one round of directions");
    }

    #[test]
    fn samples_are_seeded_sorted_and_distinct() {
        let mut rng = StdRng::seed_from_u64(0);
        assert_eq!(sample(4, 10, &mut rng), vec![0, 1, 2, 3]);
        let picked = sample(10_000, 10, &mut rng);
        assert_eq!(picked.len(), 10);
        let mut dedup = picked.clone();
        dedup.dedup();
        assert_eq!(dedup, picked, "sorted and distinct");
        let first = sample(10_000, 10, &mut StdRng::seed_from_u64(1));
        assert_eq!(first, sample(10_000, 10, &mut StdRng::seed_from_u64(1)));
    }

    /// `L = mean_i c_i x_i^2 / 2` over one tensor (a loss of order 1, as a mean over
    /// a batch is), with a gradient that can be wrong in one element: the objective
    /// behind the power tests.
    struct Quadratic {
        x: ArrayD<f64>,
        c: ArrayD<f64>,
        /// (element, added error) of the analytic gradient.
        wrong: Option<(usize, f64)>,
    }

    impl Objective for Quadratic {
        type Float = f64;
        type Error = GradCheckError;
        fn analytic(&mut self) -> Result<(f64, Vec<(String, ArrayD<f64>)>), GradCheckError> {
            let mut g = &self.x * &self.c / self.x.len() as f64;
            if let Some((i, e)) = self.wrong
                && let Some(v) = g.iter_mut().nth(i)
            {
                *v += e;
            }
            Ok((self.loss()?, vec![("w".to_string(), g)]))
        }
        fn tensor_mut(&mut self, _: usize) -> ArrayViewMutD<'_, f64> {
            self.x.view_mut()
        }
        fn loss(&mut self) -> Result<f64, GradCheckError> {
            Ok((&self.x * &self.x * &self.c).sum() / (2.0 * self.x.len() as f64))
        }
    }

    fn quadratic(n: usize, wrong: Option<(usize, f64)>) -> Quadratic {
        let mut rng = StdRng::seed_from_u64(9);
        let mut normal = || -> f64 { StandardNormal.sample(&mut rng) };
        Quadratic {
            x: ArrayD::from_shape_simple_fn(IxDyn(&[n]), &mut normal),
            c: ArrayD::from_shape_simple_fn(IxDyn(&[n]), || 1.0 + normal().abs()),
            wrong,
        }
    }

    /// One wrong element among 250 000, off by 1% of the gradient's typical size:
    /// the old default (2 000 sampled elements per tensor, no directions) misses it
    /// more than 99% of the time; four random directions catch it.
    #[test]
    fn directions_catch_a_single_wrong_element_that_sampling_misses() {
        let n = 250_000;
        let right = quadratic(n, None);
        let rms = ((&right.x * &right.c / n as f64).mapv(|g| g * g).sum() / n as f64).sqrt();
        let wrong_at = 123_457;
        let mut objective = quadratic(n, Some((wrong_at, 0.01 * rms)));
        let defaults = GradCheckConfig::default();
        let report = check(&mut objective, &defaults).expect("runs");
        assert!(!report.passed(), "{report}");
        let w = &report.tensors[0];
        assert_eq!(w.directions, 4);
        assert!(
            matches!(
                w.worst.as_ref().map(|w| &w.probe),
                Some(Probe::Direction(_))
            ),
            "{report}"
        );
        // Elements alone (the old scheme) do not see it.
        let elements_only = GradCheckConfig {
            directions: 0,
            samples_per_tensor: 2000,
            max_evaluations: 4000,
            ..defaults
        };
        let mut objective = quadratic(n, Some((wrong_at, 0.01 * rms)));
        let report = check(&mut objective, &elements_only).expect("runs");
        assert!(
            report.passed(),
            "the sample misses element {wrong_at}: {report}"
        );
        // And a right gradient passes the default check.
        let mut objective = quadratic(n, None);
        let report = check(&mut objective, &defaults).expect("runs");
        assert!(report.passed(), "{report}");
        assert_eq!(report.evaluations, 2 * (4 + 32));
    }

    #[test]
    fn the_point_is_restored_exactly_after_every_probe() {
        let mut objective = quadratic(100, None);
        let before = objective.x.clone();
        check(&mut objective, &GradCheckConfig::default()).expect("runs");
        assert_eq!(objective.x, before);
    }

    #[test]
    fn an_element_probe_reports_the_gradient_element_and_its_estimate() {
        let mut objective = quadratic(3, Some((1, 1.0)));
        let config = GradCheckConfig {
            directions: 1,
            ..GradCheckConfig::default()
        };
        let report = check(&mut objective, &config).expect("runs");
        let w = &report.tensors[0];
        assert_eq!(w.checked, 3);
        // Directions see it too, but the element's error is the largest.
        let worst = w.worst.as_ref().expect("a worst probe");
        assert_eq!(worst.probe, Probe::Element(vec![1]));
        let exact = objective.x[[1]] * objective.c[[1]] / 3.0;
        assert!((worst.numerical - exact).abs() < 1e-8, "{worst:?}");
        assert!((worst.analytic - (exact + 1.0)).abs() < 1e-12, "{worst:?}");
        let text = report.to_string();
        assert!(text.contains("FAILED"), "{text}");
        assert!(text.contains("worst at element [1]"), "{text}");
    }
}
