//! Gradient checking on the IR interpreter: derived gradients against central finite
//! differences, both evaluated in f64 (`nnc gradcheck`, and the tests).
//!
//! The comparison itself — probes along random directions and sampled elements, the
//! error formula, the evaluation budget — is the runtime's one checker
//! ([`nnc_runtime::gradcheck`], which generated code uses too); this module gives it
//! the interpreter as the loss ([`Objective`]) and chooses the point.
//!
//! A check is only meaningful away from kinks (ReLU at 0, ties in `max`): a central
//! difference that straddles a kink measures neither side's slope. So the point is
//! drawn at random and redrawn until every kink-sensitive value (the operands of
//! `max`, `min`, comparisons and `abs`, and the top two of max/min reductions) is at
//! least [`Options::kink_margin`] from its tie.
//!
//! Before anything is allocated, the memory the interpreter needs for every value of
//! the derived model at the chosen sizes is added up ([`interpreter_bytes`]); above
//! [`Options::max_bytes`] the check is an error naming the largest value, its shape
//! and the sizes, not an allocation failure.
//!
//! [`first_non_finite`] is the interpreter's other numerical check: the first value,
//! in evaluation order, that is NaN or infinite, with its source line.

use crate::builder::InternalError;
use nnc_ir::interp::{Bindings, Evaluation, RunError, Scalar, Value, concrete_shape, evaluate};
use nnc_ir::{Dim, Elem, GradOf, InputId, InputKind, Model, NodeId, Op, ReduceOp, UnaryOp};
use nnc_runtime::gradcheck::{GradCheckConfig, GradCheckError, GradCheckReport, Objective};
use rand::rngs::StdRng;
use rand::{Rng, RngExt, SeedableRng};
use rand_distr::{Distribution, StandardNormal};
use std::fmt;
use std::time::Duration;

pub use nnc_runtime::gradcheck::{Probe, TensorReport, Worst, relative_error};

/// The most memory the interpreter may need for one evaluation, unless
/// [`Options::max_bytes`] says otherwise: 8 GiB.
pub const MAX_INTERPRETER_BYTES: u64 = 8 << 30;

/// How to check.
#[derive(Clone, Debug)]
pub struct Options {
    /// Seed for the random point, the directions and the sampled elements.
    pub seed: u64,
    /// Size of every runtime dim.
    pub batch: usize,
    /// Random directions probed per tensor.
    pub directions: usize,
    /// At most this many elements are probed per tensor (a seeded sample).
    pub max_samples: usize,
    /// At most this many loss evaluations for the differences.
    pub max_evaluations: usize,
    /// Stop probing after this long (every tensor still gets one direction).
    pub max_time: Option<Duration>,
    /// The finite-difference step.
    pub step: f64,
    /// A check fails when any error exceeds this.
    pub threshold: f64,
    /// Minimum distance of kink-sensitive values from their ties.
    pub kink_margin: f64,
    /// The most memory one evaluation may need (see the module docs).
    pub max_bytes: u64,
}

impl Default for Options {
    fn default() -> Options {
        let check = GradCheckConfig::default();
        Options {
            seed: 0,
            batch: 4,
            directions: check.directions,
            max_samples: check.samples_per_tensor,
            max_evaluations: check.max_evaluations,
            max_time: None,
            step: check.step,
            threshold: check.threshold,
            kink_margin: 1e-3,
            max_bytes: MAX_INTERPRETER_BYTES,
        }
    }
}

impl Options {
    /// The runtime checker's settings for these options.
    pub fn config(&self) -> GradCheckConfig {
        GradCheckConfig {
            step: self.step,
            directions: self.directions,
            samples_per_tensor: self.max_samples,
            max_evaluations: self.max_evaluations,
            max_time: self.max_time,
            seed: self.seed,
            threshold: self.threshold,
            ..GradCheckConfig::default()
        }
    }
}

/// The result for a model.
#[derive(Clone, Debug, PartialEq)]
pub struct Report {
    pub model: String,
    /// One entry per gradient, in the model's order.
    pub tensors: Vec<TensorReport>,
    pub threshold: f64,
    pub step: f64,
    /// Loss evaluations spent on differences.
    pub evaluations: usize,
    /// Probes not run because the time ran out.
    pub skipped: usize,
    /// How many points were drawn before one was clear of every kink.
    pub draws: usize,
}

impl Report {
    fn new(model: &Model, check: GradCheckReport, draws: usize) -> Report {
        Report {
            model: model.name.clone(),
            tensors: check.tensors,
            threshold: check.threshold,
            step: check.step,
            evaluations: check.evaluations,
            skipped: check.skipped,
            draws,
        }
    }

    /// The runtime's report of the same check.
    pub fn check(&self) -> GradCheckReport {
        GradCheckReport {
            tensors: self.tensors.clone(),
            threshold: self.threshold,
            step: self.step,
            evaluations: self.evaluations,
            skipped: self.skipped,
        }
    }

    pub fn passed(&self) -> bool {
        self.check().passed()
    }
}

/// What the columns of a [`Report`] mean under `options`: the lines `nnc gradcheck`
/// (and `nnc serve`'s gradcheck pane) print above the reports.
pub fn legend(options: &Options) -> String {
    format!(
        "each probe compares a directional derivative, from the derived gradient and from central \
         differences (h = {:e}),\nalong {} random directions and up to {} elements per tensor; \
         error = (|analytic - numeric| - noise) / max(|analytic|, |numeric|, floor);\na tensor \
         passes when every error is at most {:e} (the relative error shown is without noise and floor)",
        options.step, options.directions, options.max_samples, options.threshold
    )
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(
            f,
            "gradient check of `{}` (f64, central differences, {} loss evaluations, threshold {:e})",
            self.model, self.evaluations, self.threshold
        )?;
        write!(f, "{}", self.check())
    }
}

/// Why a check could not run.
#[derive(Debug)]
pub enum CheckError {
    Internal(InternalError),
    Run(RunError),
    Check(GradCheckError),
    /// The interpreter would need more memory than allowed.
    TooLarge(Box<TooLarge>),
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
            CheckError::Check(e) => write!(f, "{e}"),
            CheckError::TooLarge(e) => write!(f, "{e}"),
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

impl From<GradCheckError> for CheckError {
    fn from(e: GradCheckError) -> CheckError {
        CheckError::Check(e)
    }
}

impl From<Box<TooLarge>> for CheckError {
    fn from(e: Box<TooLarge>) -> CheckError {
        CheckError::TooLarge(e)
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
    let dims = batch_dims(derived, options.batch);
    interpreter_bytes(derived, &dims, 8, options.max_bytes)?;
    let mut rng = StdRng::seed_from_u64(options.seed);
    const MAX_DRAWS: usize = 50;
    for draw in 1..=MAX_DRAWS {
        let point = random_point(model, options.batch, &mut rng);
        if kink_distance(model, &point)? < options.kink_margin {
            continue;
        }
        let mut objective = Interpreted {
            model,
            derived,
            point,
            targets: Vec::new(),
            empty: ndarray::ArrayD::zeros(ndarray::IxDyn(&[0])),
        };
        let check = nnc_runtime::gradcheck::check(&mut objective, &options.config())?;
        return Ok(Report::new(model, check, draw));
    }
    Err(CheckError::Kinks { draws: MAX_DRAWS })
}

/// The interpreter as the runtime checker's [`Objective`]: the forward model's loss,
/// the derived model's gradients, at a point it owns.
struct Interpreted<'m> {
    model: &'m Model,
    derived: &'m Model,
    point: Bindings<f64>,
    targets: Vec<GradOf>,
    /// What an index input (which has no gradient) would be perturbed as.
    empty: ndarray::ArrayD<f64>,
}

impl Objective for Interpreted<'_> {
    type Float = f64;
    type Error = CheckError;

    fn analytic(&mut self) -> Result<(f64, Vec<(String, ndarray::ArrayD<f64>)>), CheckError> {
        let eval = evaluate(self.derived, &self.point)?;
        let mut gradients = Vec::new();
        for (of, _) in &self.derived.grads {
            let Some(grad) = eval.grad(*of) else {
                continue;
            };
            self.targets.push(*of);
            gradients.push((self.derived.grad_name(*of).to_string(), grad.clone()));
        }
        Ok((eval.loss(), gradients))
    }

    fn tensor_mut(&mut self, k: usize) -> ndarray::ArrayViewMutD<'_, f64> {
        let array = match self.targets[k] {
            GradOf::Param(p) => self.point.params.get_mut(p.0 as usize),
            GradOf::Input(i) => match self.point.inputs.get_mut(i.0 as usize) {
                Some(Value::Float(a)) => Some(a),
                _ => None,
            },
        };
        match array {
            Some(a) => a.view_mut(),
            None => self.empty.view_mut(),
        }
    }

    fn loss(&mut self) -> Result<f64, CheckError> {
        Ok(evaluate(self.model, &self.point)?.loss())
    }
}

/// Every dim's size with the runtime dims set to `batch`.
fn batch_dims(model: &Model, batch: usize) -> Vec<usize> {
    model.dims.iter().map(|d| d.size.unwrap_or(batch)).collect()
}

/// Random inputs and parameters: floats standard normal (scaled down for wide layers
/// by the parameter's fan-in, so activations stay in a useful range), indices uniform
/// over the classes they index. Every runtime dim is `batch`.
///
/// Allocates every input and parameter: check [`interpreter_bytes`] first when the
/// sizes are not known to be small.
pub fn random_point<R: Rng + ?Sized>(model: &Model, batch: usize, rng: &mut R) -> Bindings<f64> {
    let dims = batch_dims(model, batch);
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
            let shape = concrete_shape(&i.ty.shape, &dims);
            match i.kind {
                InputKind::Data => (i.ty.elem == Elem::Float).then(|| normal(&shape, 1.0)),
                // The leaves the modes add: a mask drawn as the training step draws
                // it (and then held fixed), a state at its initial value, training.
                InputKind::Mask { .. } => Some(ndarray::ArrayD::zeros(shape)),
                InputKind::State(_) | InputKind::Training => None,
            }
        })
        .collect();
    let states = nnc_ir::modes::initial_state::<f64>(model);
    let params = model
        .params
        .iter()
        .map(|p| {
            let fan_in = match p.shape.get(p.shape.len().saturating_sub(2)) {
                Some(Dim::Fixed(n)) => *n as f64,
                _ => 1.0,
            };
            normal(&concrete_shape(&p.shape, &dims), 1.0 / fan_in.sqrt())
        })
        .collect();
    let mut floats = floats;
    for (info, float) in model.inputs.iter().zip(&mut floats) {
        if let (InputKind::Mask { keep }, Some(mask)) = (info.kind, float)
            && let Some(slice) = mask.as_slice_mut()
        {
            nnc_runtime::init::fill_dropout_mask(slice, keep, &mut *rng);
        }
    }
    let inputs = model
        .inputs
        .iter()
        .enumerate()
        .zip(floats)
        .map(|((i, info), float)| match (float, info.kind) {
            (Some(a), _) => Value::Float(a),
            (None, InputKind::Training) => Value::Float(ndarray::arr0(1.0).into_dyn()),
            (None, InputKind::State(_)) => {
                let initial = states.iter().find(|(n, _)| *n == info.name);
                Value::Float(initial.map_or_else(
                    || ndarray::ArrayD::zeros(concrete_shape(&info.ty.shape, &dims)),
                    |(_, a)| a.clone(),
                ))
            }
            (None, _) => {
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

/// How many classes an index input can address: the smallest class count of the
/// `pick`s and `one_hot`s that read it.
pub fn index_bound(model: &Model, input: InputId, dims: &[usize]) -> Option<usize> {
    let node = model.input_node(input)?;
    let size = |d: Dim| match d {
        Dim::Fixed(n) => n,
        Dim::Var(v) => dims[v.0 as usize],
    };
    // Every use must accept the index: the smallest class count of them all.
    model
        .nodes
        .iter()
        .filter_map(|n| match n.op {
            Op::Pick { .. } if n.args.get(1) == Some(&node) => {
                model.shape(n.args[0]).get(1).map(|d| size(*d))
            }
            Op::OneHot { classes } if n.args.first() == Some(&node) => Some(size(classes)),
            _ => None,
        })
        .min()
}

/// The smallest distance of any kink-sensitive value from its tie at this point:
/// the gap between the two arguments of `max`, `min` or a comparison, `|x|` under
/// `abs`, the gap between the two largest (smallest) values a `max` (`min`)
/// reduction sees.
///
/// A gap that the differentiated values cannot move is no kink: `relu(relu(x))`
/// where `x < 0` compares 0 with 0 whatever the parameters, `max(p, p)` ties
/// everywhere and its subgradient sums to the derivative, and `x > 0` on an input
/// stays on its side however close to 0 it is. So every gap is also measured at a
/// nearby point (each parameter and `grad` input moved by about 1e-6 of its size),
/// and an element whose gap is the same at both points is left out.
pub fn kink_distance(model: &Model, point: &Bindings<f64>) -> Result<f64, RunError> {
    let here = kink_gaps(model, &evaluate(model, point)?);
    let there = kink_gaps(model, &evaluate(model, &nudged(model, point))?);
    let mut nearest = f64::INFINITY;
    for (a, b) in here.iter().zip(&there) {
        for (&g, &h) in a.iter().zip(b) {
            if g != h {
                nearest = nearest.min(g);
            }
        }
    }
    Ok(nearest)
}

/// `point` with every parameter and `grad` input moved a little (by 1e-6 of each
/// element's size, with a pseudo-random sign per element).
fn nudged(model: &Model, point: &Bindings<f64>) -> Bindings<f64> {
    let mut nudged = point.clone();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut nudge = |x: &mut f64| {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let sign = if state & 1 == 0 { 1.0 } else { -1.0 };
        *x += sign * 1e-6 * x.abs().max(1e-3);
    };
    for p in &mut nudged.params {
        p.iter_mut().for_each(&mut nudge);
    }
    for (info, value) in model.inputs.iter().zip(&mut nudged.inputs) {
        if let (true, Value::Float(a)) = (info.grad, value) {
            a.iter_mut().for_each(&mut nudge);
        }
    }
    nudged
}

/// Per kink-sensitive node, in node order, the gap of each of its elements (each
/// lane, for a reduction) from its tie.
fn kink_gaps(model: &Model, eval: &Evaluation<f64>) -> Vec<Vec<f64>> {
    let float = |id: NodeId| eval.value(id).and_then(Value::as_float);
    let mut gaps = Vec::new();
    for node in &model.nodes {
        let gap = match &node.op {
            Op::Binary(nnc_ir::BinaryOp::Max | nnc_ir::BinaryOp::Min) | Op::Compare(_) => {
                match (float(node.args[0]), float(node.args[1])) {
                    (Some(a), Some(b)) => broadcast_gaps(a, b),
                    _ => None,
                }
            }
            Op::Unary(UnaryOp::Abs) => {
                float(node.args[0]).map(|a| a.iter().map(|x| x.abs()).collect())
            }
            Op::Reduce {
                op: ReduceOp::Max | ReduceOp::Min,
                axis,
                ..
            } => float(node.args[0]).map(|a| top_two_gaps(a, *axis)),
            _ => None,
        };
        gaps.extend(gap);
    }
    gaps
}

/// |a - b| over the broadcast of `a` and `b`.
fn broadcast_gaps(a: &ndarray::ArrayD<f64>, b: &ndarray::ArrayD<f64>) -> Option<Vec<f64>> {
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
    Some(a.iter().zip(b.iter()).map(|(x, y)| (x - y).abs()).collect())
}

/// For each lane (all values when `axis` is `None`), the smaller of the gaps between
/// its largest two and its smallest two values.
fn top_two_gaps(a: &ndarray::ArrayD<f64>, axis: Option<usize>) -> Vec<f64> {
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
        None => vec![gap(a.iter().copied().collect())],
        Some(k) => a
            .lanes(ndarray::Axis(k))
            .into_iter()
            .map(|l| gap(l.to_vec()))
            .collect(),
    }
}

// ---------------------------------------------------------------------------------
// Memory
// ---------------------------------------------------------------------------------

/// The interpreter would need more memory than allowed: the total, and the largest
/// value with its declared shape and its sizes.
#[derive(Clone, Debug, PartialEq)]
pub struct TooLarge {
    pub model: String,
    /// Bytes for every value together (`None`: more than can be counted).
    pub total: Option<u128>,
    pub limit: u64,
    /// The largest value: as the source names it, its declared shape, its sizes.
    pub value: String,
    pub declared: String,
    pub sizes: Vec<usize>,
    pub bytes: Option<u128>,
    /// The runtime dims and their sizes, `N = 4`.
    pub dims: Vec<(String, usize)>,
}

impl fmt::Display for TooLarge {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let amount = |b: Option<u128>| match b {
            Some(b) => format!("{b} bytes"),
            None => "more bytes than can be counted".to_string(),
        };
        let sizes = format!("{:?}", self.sizes);
        let shape = if sizes == self.declared {
            sizes
        } else {
            format!("{} = {sizes}", self.declared)
        };
        write!(
            f,
            "model `{}` needs {} to interpret, more than the limit of {} bytes: the largest value is `{}` {shape} ({})",
            self.model,
            amount(self.total),
            self.limit,
            self.value,
            amount(self.bytes)
        )?;
        if !self.dims.is_empty() {
            let dims: Vec<String> = self
                .dims
                .iter()
                .map(|(name, size)| format!("{name} = {size}"))
                .collect();
            write!(f, ", with {}", dims.join(", "))?;
        }
        Ok(())
    }
}

impl std::error::Error for TooLarge {}

/// The bytes the interpreter holds to evaluate `model` once at `dims` (the size of
/// each dim, fixed ones included): every node's value at `element_bytes` per element
/// (the interpreter keeps them all), counted without overflow. An error when that is
/// more than `limit`.
pub fn interpreter_bytes(
    model: &Model,
    dims: &[usize],
    element_bytes: u64,
    limit: u64,
) -> Result<u128, Box<TooLarge>> {
    let bytes_of = |shape: &[usize]| {
        shape
            .iter()
            .try_fold(u128::from(element_bytes), |n, &d| n.checked_mul(d as u128))
    };
    let mut total = Some(0u128);
    let mut largest: Option<(usize, Vec<usize>, Option<u128>)> = None;
    for (index, node) in model.nodes.iter().enumerate() {
        let sizes = concrete_shape(&node.ty.shape, dims);
        let bytes = bytes_of(&sizes);
        total = total.zip(bytes).and_then(|(t, b)| t.checked_add(b));
        let bigger = match (&largest, bytes) {
            (None, _) => true,
            (Some((_, _, None)), _) => false,
            (Some(_), None) => true,
            (Some((_, _, Some(l))), Some(b)) => b > *l,
        };
        if bigger {
            largest = Some((index, sizes, bytes));
        }
    }
    if total.is_some_and(|t| t <= u128::from(limit)) {
        return Ok(total.unwrap_or(0));
    }
    let (index, sizes, bytes) = largest.unwrap_or((0, Vec::new(), None));
    let node = &model.nodes[index];
    Err(Box::new(TooLarge {
        model: model.name.clone(),
        total,
        limit,
        value: value_name(model, NodeId(index as u32)),
        declared: model.shape_str(&node.ty.shape),
        sizes,
        bytes,
        dims: model
            .dims
            .iter()
            .zip(dims)
            .filter(|(d, _)| d.size.is_none())
            .map(|(d, &size)| (d.name.clone(), size))
            .collect(),
    }))
}

/// A value as the source names it: a parameter, input or `let` name, else `%k`.
fn value_name(model: &Model, id: NodeId) -> String {
    let node = model.node(id);
    match (&node.op, &node.name) {
        (Op::Param(p), _) => model.params[p.0 as usize].name.clone(),
        (Op::Input(i), _) => model.inputs[i.0 as usize].name.clone(),
        (_, Some(name)) => name.clone(),
        _ => format!("%{}", id.0),
    }
}

// ---------------------------------------------------------------------------------
// Non-finite values
// ---------------------------------------------------------------------------------

/// The first value, in evaluation order, holding a NaN or an infinity: a node whose
/// operands are all finite (they come earlier in the arena), or an input or parameter
/// given with one.
#[derive(Clone, Debug, PartialEq)]
pub struct NonFinite {
    pub node: NodeId,
    /// The first offending element, and its value.
    pub position: Vec<usize>,
    pub value: f64,
}

impl NonFinite {
    /// For a person: the value as the source names it, where it is computed, the
    /// offending element, the source line, and the IR node.
    ///
    /// ```text
    /// the first value that is not finite is `p` (m.nn:6:11): -inf at []
    ///    6 |   let p = log(s - 3);
    ///      (%5 = log %4 : []  p; its operands are finite)
    /// ```
    pub fn render(&self, model: &Model, source: &str, file: &str) -> String {
        let node = model.node(self.node);
        let (line, column) = nnc_syntax::diagnostic::line_col(source, node.span.start);
        let text = source.lines().nth(line.saturating_sub(1)).unwrap_or("");
        let name = value_name(model, self.node);
        let (what, how) = match &node.op {
            Op::Input(_) => (format!("input `{name}`"), "as given".to_string()),
            Op::Param(_) => (format!("parameter `{name}`"), "as given".to_string()),
            _ => {
                let ir = nnc_ir::print::node_line(model, self.node.index(), None);
                let ir = ir.split_whitespace().collect::<Vec<_>>().join(" ");
                (
                    format!("`{name}`"),
                    format!("{ir}; its operands are finite"),
                )
            }
        };
        format!(
            "the first value that is not finite is {what} ({file}:{line}:{column}): {} at {:?}\n{line:>4} | {text}\n     ({how})\n",
            self.value, self.position
        )
    }
}

/// Evaluates `model` on `bindings` and returns the first value holding a NaN or an
/// infinity (see [`NonFinite`]), or `None` when every value is finite.
pub fn first_non_finite<F: Scalar>(
    model: &Model,
    bindings: &Bindings<F>,
) -> Result<Option<NonFinite>, RunError> {
    Ok(first_non_finite_in(&evaluate(model, bindings)?))
}

/// [`first_non_finite`] of an evaluation already made.
pub fn first_non_finite_in<F: Scalar>(eval: &Evaluation<F>) -> Option<NonFinite> {
    eval.values().iter().enumerate().find_map(|(index, value)| {
        let Value::Float(a) = value else {
            return None;
        };
        let (position, x) = a.indexed_iter().find(|(_, x)| !x.is_finite())?;
        Some(NonFinite {
            node: NodeId(index as u32),
            position: ndarray::Dimension::slice(&position).to_vec(),
            value: x.to_f64().unwrap_or(f64::NAN),
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use nnc_ir::{BinaryOp, Op};

    fn model(source: &str) -> Model {
        nnc_ir::compile_source(source).expect("compiles").remove(0)
    }

    const DEEP_TANH: &str = include_str!("../../../examples/models/deep_tanh.nn");

    /// The default check of the 11-tensor deep_tanh (250 000 elements per weight):
    /// a bounded number of evaluations, and a wrong gradient is caught. Two injected
    /// bugs: `d_w5` off by 0.1% everywhere, and `d_w3`/`d_w4` swapped (the same
    /// shape, so nothing but the values tells them apart).
    #[test]
    fn the_default_check_of_deep_tanh_is_bounded_and_catches_wrong_gradients() {
        let forward = model(DEEP_TANH);
        let derived = crate::with_gradients(&forward).expect("derives");
        // Fewer elements than the default keep the unoptimised test quick; the
        // directions are the default's.
        let options = Options {
            max_samples: 2,
            batch: 2,
            ..Options::default()
        };
        let report = check_derived(&forward, &derived, &options).expect("runs");
        assert!(report.passed(), "{report}");
        assert_eq!(report.tensors.len(), 11);
        assert!(report.tensors.iter().all(|t| t.directions == 4), "{report}");
        assert_eq!(report.evaluations, 11 * 2 * (4 + 2));

        let grad_of = |name: &str| {
            derived
                .grads
                .iter()
                .position(|(of, _)| derived.grad_name(*of) == name)
                .expect("a gradient")
        };
        // d_w5 * 1.001.
        let mut scaled = derived.clone();
        let k = grad_of("w5");
        let g = scaled.grads[k].1;
        let span = scaled.node(g).span;
        let c = scaled.constant(1.001, span);
        let shape = scaled.shape(g).clone();
        let c = scaled.broadcast(c, shape, span).expect("broadcasts");
        let wrong = scaled
            .push(Op::Binary(BinaryOp::Mul), vec![g, c], span)
            .expect("typed");
        scaled.grads[k].1 = wrong;
        let report = check_derived(&forward, &scaled, &options).expect("runs");
        assert!(!report.passed(), "{report}");
        let failed: Vec<&str> = report
            .tensors
            .iter()
            .filter(|t| !t.passed(report.threshold))
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(failed, ["w5"], "{report}");

        // d_w3 and d_w4 swapped.
        let mut swapped = derived.clone();
        let (a, b) = (grad_of("w3"), grad_of("w4"));
        let (ga, gb) = (swapped.grads[a].1, swapped.grads[b].1);
        swapped.grads[a].1 = gb;
        swapped.grads[b].1 = ga;
        let report = check_derived(&forward, &swapped, &options).expect("runs");
        let failed: Vec<&str> = report
            .tensors
            .iter()
            .filter(|t| !t.passed(report.threshold))
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(failed, ["w3", "w4"], "{report}");
    }

    #[test]
    fn a_huge_batch_or_shape_is_an_error_naming_the_value_not_an_allocation() {
        let spiral = model(include_str!("../../../examples/models/spiral.nn"));
        let options = Options {
            batch: usize::MAX,
            ..Options::default()
        };
        let err = gradcheck(&spiral, &options).expect_err("too large");
        let text = err.to_string();
        assert!(text.starts_with("model `spiral` needs "), "{text}");
        assert!(
            text.contains("bytes to interpret, more than the limit of 8589934592 bytes"),
            "{text}"
        );
        assert!(text.contains(&format!("N = {}", usize::MAX)), "{text}");

        let huge =
            model("model big { dtype f64; dim A = 1099511627776; param w: [A]; loss sum(w); }");
        let err = gradcheck(&huge, &Options::default()).expect_err("too large");
        let text = err.to_string();
        assert!(
            text.contains("the largest value is `w` [1099511627776] (8796093022208 bytes)"),
            "{text}"
        );
    }

    #[test]
    fn ties_the_parameters_cannot_move_are_no_kinks() {
        // Each of these ties at every point (`relu(relu(x))` compares 0 with 0 where
        // `x @ w < 0`; `max(w, w)` and a max over broadcast copies tie everywhere):
        // the checker used to find no point "clear of the kinks" and refuse them.
        for body in [
            "loss sum(relu(relu(x @ w)));",
            "loss sum(max(w, w) * 2);",
            "loss sum(max(x * 0 + sum(w), axis = 0));",
            "loss sum(abs(relu(x @ w)));",
        ] {
            let source =
                format!("model m {{ dtype f64; dim N; input x: [N, 3]; param w: [3, 2]; {body} }}");
            let report = gradcheck(&model(&source), &Options::default())
                .unwrap_or_else(|e| panic!("{body}: {e}"));
            assert!(report.passed(), "{body}: {report}");
        }
        // An input near a kink it cannot cross: 500 values of x^3 come within 1e-8
        // of 0, every draw (this model was refused too).
        let m = model(
            "model m { dtype f64; dim N; input x: [N, 125]; param w: [125]; \
             loss sum(where(x ^ 3 > 0, x, w * x)); }",
        );
        let report = gradcheck(&m, &Options::default()).expect("a point is found");
        assert!(report.passed(), "{report}");
        // A tie the parameters do move is still avoided: `relu(w - w0)` at `w = w0`.
        let m = model("model m { dtype f64; param w: [3]; loss sum(relu(w)); }");
        let mut point = random_point(&m, 1, &mut StdRng::seed_from_u64(1));
        point.params[0][[0]] = 0.0;
        assert_eq!(kink_distance(&m, &point).expect("runs"), 0.0);
    }

    #[test]
    fn an_index_read_by_two_class_counts_is_drawn_below_both() {
        let m = model(
            "model m { dtype f64; dim N; input x: [N, 2]; input y: [N, 5]; \
             input l: index[N]; loss sum(pick(y, l)) + sum(pick(x, l)); }",
        );
        let input = InputId(2);
        assert_eq!(index_bound(&m, input, &[4]), Some(2));
        for seed in 0..20 {
            let point = random_point(&m, 64, &mut StdRng::seed_from_u64(seed));
            let Value::Index(l) = &point.inputs[2] else {
                panic!("l is an index input");
            };
            assert!(l.iter().all(|&k| k < 2));
        }
    }

    #[test]
    fn interpreter_bytes_count_every_value() {
        let m = model(
            "model m { dtype f64; dim N; input x: [N, 3]; param w: [3, 2]; loss sum(x @ w); }",
        );
        // x [N, 3], w [3, 2], x @ w [N, 2], the sum []: 3N + 6 + 2N + 1 elements.
        let bytes = interpreter_bytes(&m, &[5], 8, u64::MAX).expect("fits");
        assert_eq!(bytes, 8 * (15 + 6 + 10 + 1));
        let err = interpreter_bytes(&m, &[5], 8, 100).expect_err("over");
        assert_eq!(
            err.to_string(),
            "model `m` needs 256 bytes to interpret, more than the limit of 100 bytes: the \
             largest value is `x` [N, 3] = [5, 3] (120 bytes), with N = 5"
        );
    }

    #[test]
    fn the_first_non_finite_value_is_named_with_its_line() {
        let source = "model m {\n  dtype f64;\n  dim N;\n  input x: [N];\n  let s = sum(x);\n  let p = log(s - 3);\n  loss p * 2;\n}\n";
        let m = model(source);
        let at = |values: &[f64]| Bindings {
            inputs: vec![Value::Float(ndarray::arr1(values).into_dyn())],
            params: vec![],
        };
        assert_eq!(first_non_finite(&m, &at(&[2.0, 2.0])).expect("runs"), None);
        let found = first_non_finite(&m, &at(&[1.0, 2.0]))
            .expect("runs")
            .expect("log(0) is -inf");
        assert_eq!(found.value, f64::NEG_INFINITY);
        let text = found.render(&m, source, "m.nn");
        assert!(
            text.starts_with("the first value that is not finite is `p` (m.nn:6:11): -inf at []\n"),
            "{text}"
        );
        assert!(text.contains("\n   6 |   let p = log(s - 3);\n"), "{text}");
        assert!(text.contains(" = log %"), "{text}");
        // A NaN given as an input is the input's.
        let found = first_non_finite(&m, &at(&[f64::NAN, 2.0]))
            .expect("runs")
            .expect("NaN");
        let text = found.render(&m, source, "m.nn");
        assert!(
            text.starts_with(
                "the first value that is not finite is input `x` (m.nn:4:9): NaN at [0]\n"
            ),
            "{text}"
        );
    }
}
