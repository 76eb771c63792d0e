//! Gradient checking: derived gradients against central finite differences, both
//! evaluated in f64 by the IR interpreter (`nnc gradcheck`, and the tests).
//!
//! A check is only meaningful away from kinks (ReLU at 0, ties in `max`): a central
//! difference that straddles a kink measures neither side's slope. So the point is
//! drawn at random and redrawn until every kink-sensitive value (the operands of
//! `max`, `min`, comparisons and `abs`, and the top two of max/min reductions) is at
//! least [`Options::kink_margin`] from its tie.

use crate::builder::InternalError;
use nnc_ir::interp::{Bindings, RunError, Value, concrete_shape, evaluate};
use nnc_ir::{Dim, Elem, GradOf, InputId, Model, NodeId, Op, ReduceOp, UnaryOp};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::fmt;

/// How to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seed for the random point and the sampled elements.
    pub seed: u64,
    /// Size of every runtime dim.
    pub batch: usize,
    /// At most this many elements are checked per tensor (a seeded sample).
    pub max_samples: usize,
    /// The finite-difference step.
    pub step: f64,
    /// A check fails when any relative error exceeds this.
    pub threshold: f64,
    /// Minimum distance of kink-sensitive values from their ties.
    pub kink_margin: f64,
}

impl Default for Options {
    fn default() -> Options {
        Options {
            seed: 0,
            batch: 4,
            max_samples: 2000,
            step: 1e-5,
            threshold: 1e-6,
            kink_margin: 1e-3,
        }
    }
}

/// The result for one tensor.
#[derive(Clone, Debug, PartialEq)]
pub struct TensorReport {
    pub name: String,
    pub checked: usize,
    pub elements: usize,
    /// max |a - n| / max(|a|, |n|): what a person computes by hand.
    pub max_relative_error: f64,
    /// The same after discounting the rounding noise of the central difference; the
    /// check passes when this is within the threshold.
    pub max_error_beyond_noise: f64,
}

/// The result for a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub model: String,
    pub tensors: Vec<TensorReport>,
    pub threshold: f64,
    /// How many points were drawn before one was clear of every kink.
    pub draws: usize,
}

impl Report {
    pub fn passed(&self) -> bool {
        self.tensors
            .iter()
            .all(|t| t.max_error_beyond_noise <= self.threshold)
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gradient check of `{}` (f64, central differences, threshold {:e})",
            self.model, self.threshold
        )?;
        for t in &self.tensors {
            let verdict = if t.max_error_beyond_noise <= self.threshold {
                "ok"
            } else {
                "FAILED"
            };
            writeln!(
                f,
                "  d_{:<12} {:>6} of {:<8} elements   max relative error {:.2e}   {verdict}",
                t.name, t.checked, t.elements, t.max_relative_error
            )?;
        }
        Ok(())
    }
}

/// Why a check could not run.
#[derive(Debug)]
pub enum CheckError {
    Internal(InternalError),
    Run(RunError),
    /// No point clear of the kinks was found.
    Kinks {
        draws: usize,
    },
}

impl fmt::Display for CheckError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CheckError::Internal(e) => write!(f, "{e}"),
            CheckError::Run(e) => write!(f, "{e}"),
            CheckError::Kinks { draws } => {
                write!(
                    f,
                    "no point clear of the model's kinks was found in {draws} draws"
                )
            }
        }
    }
}

impl std::error::Error for CheckError {}

impl From<RunError> for CheckError {
    fn from(e: RunError) -> CheckError {
        CheckError::Run(e)
    }
}

impl From<InternalError> for CheckError {
    fn from(e: InternalError) -> CheckError {
        CheckError::Internal(e)
    }
}

/// Checks every gradient of `model` (a lowered model, without gradients).
pub fn gradcheck(model: &Model, options: &Options) -> Result<Report, CheckError> {
    let derived = crate::with_gradients(model)?;
    check_derived(model, &derived, options)
}

/// Checks the gradients of `derived` (a differentiated model) against central
/// differences of the forward `model`'s loss.
pub fn check_derived(
    model: &Model,
    derived: &Model,
    options: &Options,
) -> Result<Report, CheckError> {
    let mut rng = StdRng::seed_from_u64(options.seed);
    const MAX_DRAWS: usize = 50;
    for draw in 1..=MAX_DRAWS {
        let point = random_point(model, options.batch, &mut rng);
        if kink_distance(model, &point)? < options.kink_margin {
            continue;
        }
        let tensors = compare(model, derived, &point, options, &mut rng)?;
        return Ok(Report {
            model: model.name.clone(),
            tensors,
            threshold: options.threshold,
            draws: draw,
        });
    }
    Err(CheckError::Kinks { draws: MAX_DRAWS })
}

/// Random inputs and parameters: floats standard normal (scaled down for wide layers
/// by the parameter's fan-in, so activations stay in a useful range), indices uniform
/// over the classes they index. Every runtime dim is `batch`.
pub fn random_point<R: Rng + ?Sized>(model: &Model, batch: usize, rng: &mut R) -> Bindings<f64> {
    let dims: Vec<usize> = model.dims.iter().map(|d| d.size.unwrap_or(batch)).collect();
    let mut normal = |shape: &[usize], scale: f64| {
        ndarray::ArrayD::from_shape_simple_fn(shape, || {
            let z: f64 = StandardNormal.sample(&mut *rng);
            scale * z
        })
    };
    let floats: Vec<Option<ndarray::ArrayD<f64>>> = model
        .inputs
        .iter()
        .map(|i| {
            (i.ty.elem == Elem::Float).then(|| normal(&concrete_shape(&i.ty.shape, &dims), 1.0))
        })
        .collect();
    let params = model
        .params
        .iter()
        .map(|p| {
            let fan_in = match p.shape.first() {
                Some(Dim::Fixed(n)) => *n as f64,
                _ => 1.0,
            };
            normal(&concrete_shape(&p.shape, &dims), 1.0 / fan_in.sqrt())
        })
        .collect();
    let inputs = model
        .inputs
        .iter()
        .enumerate()
        .zip(floats)
        .map(|((i, info), float)| match float {
            Some(a) => Value::Float(a),
            None => {
                let bound = index_bound(model, InputId(i as u32), &dims)
                    .unwrap_or(1)
                    .max(1);
                let shape = concrete_shape(&info.ty.shape, &dims);
                Value::Index(ndarray::ArrayD::from_shape_simple_fn(shape, || {
                    rng.random_range(0..bound)
                }))
            }
        })
        .collect();
    Bindings { inputs, params }
}

/// How many classes an index input can address: the class count of the `pick` or
/// `one_hot` that reads it.
pub fn index_bound(model: &Model, input: InputId, dims: &[usize]) -> Option<usize> {
    let node = model.input_node(input)?;
    let size = |d: Dim| match d {
        Dim::Fixed(n) => n,
        Dim::Var(v) => dims[v.0 as usize],
    };
    model.nodes.iter().find_map(|n| match n.op {
        Op::Pick { .. } if n.args.get(1) == Some(&node) => {
            model.shape(n.args[0]).get(1).map(|d| size(*d))
        }
        Op::OneHot { classes } if n.args.first() == Some(&node) => Some(size(classes)),
        _ => None,
    })
}

/// The smallest distance of any kink-sensitive value from its tie at this point.
pub fn kink_distance(model: &Model, point: &Bindings<f64>) -> Result<f64, RunError> {
    let eval = evaluate(model, point)?;
    let float = |id: NodeId| eval.value(id).and_then(Value::as_float);
    let mut nearest = f64::INFINITY;
    for node in &model.nodes {
        match &node.op {
            Op::Binary(nnc_ir::BinaryOp::Max | nnc_ir::BinaryOp::Min) | Op::Compare(_) => {
                if let (Some(a), Some(b)) = (float(node.args[0]), float(node.args[1]))
                    && let Some(gap) = broadcast_gap(a, b)
                {
                    nearest = nearest.min(gap);
                }
            }
            Op::Unary(UnaryOp::Abs) => {
                if let Some(a) = float(node.args[0]) {
                    nearest = a.iter().fold(nearest, |m, x| m.min(x.abs()));
                }
            }
            Op::Reduce {
                op: ReduceOp::Max | ReduceOp::Min,
                axis,
                ..
            } => {
                if let Some(a) = float(node.args[0]) {
                    nearest = nearest.min(top_two_gap(a, *axis));
                }
            }
            _ => {}
        }
    }
    Ok(nearest)
}

/// min |a - b| over the broadcast of `a` and `b`.
fn broadcast_gap(a: &ndarray::ArrayD<f64>, b: &ndarray::ArrayD<f64>) -> Option<f64> {
    let rank = a.ndim().max(b.ndim());
    let mut shape = vec![1usize; rank];
    for (k, s) in shape.iter_mut().enumerate() {
        let pick = |x: &ndarray::ArrayD<f64>| {
            let off = rank - x.ndim();
            if k >= off { x.shape()[k - off] } else { 1 }
        };
        *s = pick(a).max(pick(b));
    }
    let (a, b) = (a.broadcast(shape.clone())?, b.broadcast(shape)?);
    Some(
        ndarray::Zip::from(&a)
            .and(&b)
            .fold(f64::INFINITY, |m, x, y| m.min((x - y).abs())),
    )
}

/// The smallest gap between the largest two values of each lane (all values when
/// `axis` is `None`).
fn top_two_gap(a: &ndarray::ArrayD<f64>, axis: Option<usize>) -> f64 {
    let gap = |values: Vec<f64>| {
        let mut v = values;
        v.sort_by(|x, y| y.total_cmp(x));
        let max_gap = if v.len() >= 2 {
            v[0] - v[1]
        } else {
            f64::INFINITY
        };
        v.reverse();
        let min_gap = if v.len() >= 2 {
            v[1] - v[0]
        } else {
            f64::INFINITY
        };
        max_gap.min(min_gap)
    };
    match axis {
        None => gap(a.iter().copied().collect()),
        Some(k) => a
            .lanes(ndarray::Axis(k))
            .into_iter()
            .map(|l| gap(l.to_vec()))
            .fold(f64::INFINITY, f64::min),
    }
}

/// Every gradient at `point`: derived (from `derived`) against central differences
/// of the forward `model`'s loss.
fn compare<R: Rng + ?Sized>(
    model: &Model,
    derived: &Model,
    point: &Bindings<f64>,
    options: &Options,
    rng: &mut R,
) -> Result<Vec<TensorReport>, CheckError> {
    let analytic = evaluate(derived, point)?;
    // Each loss evaluation is rounded to about eps * |L| (times a few for the sums
    // inside); the difference of two, over 2h, carries that much error.
    let noise = 16.0 * f64::EPSILON * analytic.loss().abs().max(1.0) / (2.0 * options.step);
    let mut reports = Vec::new();
    for (of, _) in &derived.grads {
        let Some(grad) = analytic.grad(*of) else {
            continue;
        };
        let elements = grad.len();
        let sample = sample_indices(elements, options.max_samples, rng);
        // Elements are judged relative to at least a thousandth of the tensor's
        // largest gradient.
        let floor = 1e-3 * grad.iter().fold(0.0f64, |m, g| m.max(g.abs()));
        let (mut worst, mut worst_beyond_noise) = (0.0f64, 0.0f64);
        for &flat in &sample {
            let numeric = central_difference(model, point, *of, flat, options.step)?;
            let exact = grad.iter().nth(flat).copied().unwrap_or(f64::NAN);
            worst = worst.max(relative_error(exact, numeric, 0.0, 0.0));
            worst_beyond_noise =
                worst_beyond_noise.max(relative_error(exact, numeric, noise, floor));
        }
        reports.push(TensorReport {
            name: derived.grad_name(*of).to_string(),
            checked: sample.len(),
            elements,
            max_relative_error: worst,
            max_error_beyond_noise: worst_beyond_noise,
        });
    }
    Ok(reports)
}

/// |a - n| / max(|a|, |n|, floor), after discounting `noise`, the rounding error the
/// central difference itself carries. `floor` keeps elements far smaller than the
/// rest of their tensor from dominating: a central difference's truncation error is
/// relative to the curvature, not to the element, so at a point where the gradient
/// nearly vanishes its relative error says nothing about the rule.
pub fn relative_error(analytic: f64, numeric: f64, noise: f64, floor: f64) -> f64 {
    let diff = (analytic - numeric).abs();
    // NaN or infinity on either side is an error, not a pass.
    if !diff.is_finite() {
        return f64::INFINITY;
    }
    let diff = (diff - noise).max(0.0);
    if diff == 0.0 {
        return 0.0;
    }
    diff / analytic.abs().max(numeric.abs()).max(floor)
}

/// Up to `max` distinct flat indices below `len`, in order.
fn sample_indices<R: Rng + ?Sized>(len: usize, max: usize, rng: &mut R) -> Vec<usize> {
    if len <= max {
        return (0..len).collect();
    }
    let mut picked = rand::seq::index::sample(rng, len, max).into_vec();
    picked.sort_unstable();
    picked
}

/// (L(x + h) - L(x - h)) / 2h for one element of one param or input.
fn central_difference(
    model: &Model,
    point: &Bindings<f64>,
    of: GradOf,
    flat: usize,
    h: f64,
) -> Result<f64, RunError> {
    let mut shifted = point.clone();
    let loss_at = |shifted: &mut Bindings<f64>, delta: f64| -> Result<f64, RunError> {
        if let Some(x) = element(shifted, of, flat) {
            *x += delta;
        }
        let loss = evaluate(model, shifted)?.loss();
        if let Some(x) = element(shifted, of, flat) {
            *x -= delta;
        }
        Ok(loss)
    };
    let plus = loss_at(&mut shifted, h)?;
    let minus = loss_at(&mut shifted, -h)?;
    Ok((plus - minus) / (2.0 * h))
}

fn element(point: &mut Bindings<f64>, of: GradOf, flat: usize) -> Option<&mut f64> {
    let array = match of {
        GradOf::Param(p) => point.params.get_mut(p.0 as usize)?,
        GradOf::Input(i) => match point.inputs.get_mut(i.0 as usize)? {
            Value::Float(a) => a,
            Value::Index(_) => return None,
        },
    };
    array.iter_mut().nth(flat)
}
