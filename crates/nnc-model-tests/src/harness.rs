//! What the tests share: the models' IR, random inputs and parameters, tensor
//! comparison, and the check of generated code against the interpreter.

use nnc::Model;
use nnc::ir::interp::{Bindings, Evaluation, Scalar, Value, evaluate};
use nnc::ndarray::{ArrayD, ArrayViewD, IxDyn};
use nnc::rand::rngs::StdRng;
use nnc::rand::{RngExt, SeedableRng};
use nnc::runtime::num_traits::{NumCast, ToPrimitive};
use nnc::runtime::parallel::Threads;
use nnc::runtime::{DimSpec, Float, NamedInputs, OutputValue, TensorKind, TensorSet};
use std::path::Path;

/// The source of a model file: a spec model, or one of this crate's `models/`.
pub fn source(file: &str) -> String {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    let spec = root.join("../../examples/models").join(file);
    let path = if spec.exists() {
        spec
    } else {
        root.join("models").join(file)
    };
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// The IR of model `name` in `file`, with its simplified backward pass: what the
/// generated code was compiled from.
pub fn ir(file: &str, name: &str) -> nnc::ir::Model {
    let models = nnc::ir::compile_source(&source(file)).unwrap_or_else(|d| panic!("{file}: {d:?}"));
    let model = models
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no model {name} in {file}"));
    nnc::autodiff::with_gradients(&model).unwrap_or_else(|e| panic!("{name}: {e}"))
}

fn cast<F: Float>(v: f64) -> F {
    F::from_f64(v).unwrap_or_else(F::nan)
}

/// The class count each index input is checked against (the smallest of its uses).
fn index_bound(ir: &nnc::ir::Model, input: &str) -> usize {
    let Some(k) = ir.inputs.iter().position(|i| i.name == input) else {
        return 1;
    };
    let Some(node) = ir.input_node(nnc::ir::InputId(k as u32)) else {
        return 1;
    };
    let fixed = |d: Option<nnc::ir::Dim>| match d {
        Some(nnc::ir::Dim::Fixed(n)) => Some(n),
        _ => None,
    };
    ir.nodes
        .iter()
        .filter_map(|n| match n.op {
            nnc::ir::Op::Pick { .. } if n.args.get(1) == Some(&node) => {
                fixed(ir.shape(n.args[0]).get(1).copied())
            }
            nnc::ir::Op::OneHot { classes } if n.args.first() == Some(&node) => {
                fixed(Some(classes))
            }
            _ => None,
        })
        .min()
        .unwrap_or(1)
}

/// Random inputs for model `M` with every runtime dim of size `n`: floats uniform in
/// [-2, 2), class indices uniform below their bound.
pub fn random_inputs<M: Model>(ir: &nnc::ir::Model, n: usize, seed: u64) -> NamedInputs<M::Float> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut named = NamedInputs::default();
    for info in M::signature().inputs {
        let shape: Vec<usize> = info
            .shape
            .iter()
            .map(|d| match d {
                DimSpec::Fixed(k) => *k,
                DimSpec::Runtime(_) => n,
            })
            .collect();
        let len: usize = shape.iter().product();
        match info.kind {
            TensorKind::Float => {
                let data: Vec<M::Float> = (0..len)
                    .map(|_| cast(rng.random_range(-2.0..2.0)))
                    .collect();
                let a =
                    ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap_or_else(|e| panic!("{e}"));
                named.floats.push((info.name.to_string(), a));
            }
            TensorKind::Index => {
                let bound = index_bound(ir, info.name);
                let data: Vec<usize> = (0..len).map(|_| rng.random_range(0..bound)).collect();
                let a =
                    ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap_or_else(|e| panic!("{e}"));
                named.indices.push((info.name.to_string(), a));
            }
        }
    }
    named
}

/// Parameters from their initialisers, then jittered (so zero biases and equal
/// constants do not hide mistakes).
pub fn random_params<M: Model>(seed: u64) -> M::Params {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = M::init_params(&mut rng);
    for (_, mut t) in params.tensors_mut() {
        for x in t.iter_mut() {
            *x = *x + cast::<M::Float>(rng.random_range(-0.1..0.1));
        }
    }
    params
}

/// The interpreter's evaluation of the same model on the same values.
pub fn interpret<M: Model>(
    ir: &nnc::ir::Model,
    params: &M::Params,
    named: &NamedInputs<M::Float>,
) -> Evaluation<M::Float>
where
    M::Float: Scalar,
{
    let inputs = named
        .floats
        .iter()
        .map(|(n, a)| (n.clone(), Value::Float(a.clone())))
        .chain(
            named
                .indices
                .iter()
                .map(|(n, a)| (n.clone(), Value::Index(a.clone()))),
        );
    let params = params
        .tensors()
        .into_iter()
        .map(|(n, a)| (n.to_string(), a.to_owned()));
    let bindings = Bindings::from_named(ir, inputs, params).unwrap_or_else(|e| panic!("{e}"));
    evaluate(ir, &bindings).unwrap_or_else(|e| panic!("interpreter: {e}"))
}

/// The relative tolerance for a float type: 1e-10 in `f64`, 1e-4 in `f32`.
pub fn tolerance<F: Float>() -> f64 {
    if F::epsilon() < cast(1e-10) {
        1e-10
    } else {
        1e-4
    }
}

/// `got` and `want` agree within `tol` relative to the largest magnitude in `want`
/// (elementwise relative error is meaningless where sums cancel).
#[track_caller]
pub fn assert_close<F: Float>(
    what: &str,
    got: ArrayViewD<'_, F>,
    want: ArrayViewD<'_, F>,
    tol: f64,
) {
    assert_close_above(what, got, want, tol, 0.0);
}

/// [`assert_close`], with the magnitude the error is relative to at least `floor`.
#[track_caller]
pub fn assert_close_above<F: Float>(
    what: &str,
    got: ArrayViewD<'_, F>,
    want: ArrayViewD<'_, F>,
    tol: f64,
    floor: f64,
) {
    assert_eq!(got.shape(), want.shape(), "{what}: shapes differ");
    let to = |x: F| x.to_f64().unwrap_or(f64::NAN);
    let scale = want.iter().map(|x| to(*x).abs()).fold(0.0, f64::max);
    let mut worst = (0.0, 0usize);
    for (k, (g, w)) in got.iter().zip(want.iter()).enumerate() {
        let (g, w) = (to(*g), to(*w));
        assert!(
            g.is_finite() == w.is_finite(),
            "{what}[{k}]: got {g}, want {w}"
        );
        let err = (g - w).abs();
        if err > worst.0 || err.is_nan() {
            worst = (err, k);
        }
    }
    let bound = tol * scale.max(floor).max(1e-300);
    assert!(
        worst.0 <= bound,
        "{what}: max error {:.3e} at flat position {} exceeds {:.3e} (= {tol:e} x max |want| {scale:.3e}); got {}, want {}",
        worst.0,
        worst.1,
        bound,
        got.iter().nth(worst.1).map_or(f64::NAN, |x| to(*x)),
        want.iter().nth(worst.1).map_or(f64::NAN, |x| to(*x)),
    );
}

/// A scalar as a 0-d array, for [`assert_close`].
pub fn scalar<F: Clone>(x: F) -> ArrayD<F> {
    ArrayD::from_elem(IxDyn(&[]), x)
}

/// An output value's array, floats or indices.
pub fn output_floats<F: Clone>(v: &OutputValue<F>) -> Option<&ArrayD<F>> {
    match v {
        OutputValue::Float(a) => Some(a),
        OutputValue::Index(_) => None,
    }
}

/// How the inputs handed to generated code are laid out in memory.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Layout {
    /// Row-major and contiguous, as `ArrayD::from_shape_vec` makes them.
    Contiguous,
    /// Not contiguous: matrices and higher in column-major order (every axis
    /// reversed), vectors every other element of a buffer twice as long.
    Strided,
}

/// `a` with the same elements in `layout`.
pub fn relayout<T: Clone + Default>(a: &ArrayD<T>, layout: Layout) -> ArrayD<T> {
    match (layout, a.ndim()) {
        (Layout::Contiguous, _) | (_, 0) => a.as_standard_layout().into_owned(),
        (Layout::Strided, 1) => {
            let mut wide = ArrayD::from_elem(IxDyn(&[2 * a.len()]), T::default());
            wide.slice_axis_inplace(nnc::ndarray::Axis(0), nnc::ndarray::Slice::new(0, None, 2));
            wide.assign(a);
            wide
        }
        (Layout::Strided, _) => {
            let reversed = a.view().reversed_axes();
            reversed.as_standard_layout().into_owned().reversed_axes()
        }
    }
}

/// Every input of `named` in `layout`.
pub fn relayout_inputs<F: Float>(named: &NamedInputs<F>, layout: Layout) -> NamedInputs<F> {
    let mut out = NamedInputs::default();
    for (name, a) in &named.floats {
        out.floats.push((name.clone(), relayout(a, layout)));
    }
    for (name, a) in &named.indices {
        out.indices.push((name.clone(), relayout(a, layout)));
    }
    out
}

/// Model `M`'s generated code against the interpreter on `ir` (what it was compiled
/// from), at each batch size, with inputs in `layout`: the loss from `loss` and from
/// `loss_and_grad`, every gradient, every output from `forward`; within
/// [`tolerance`] relative to each value's largest magnitude, or to `floor` if that
/// is larger. Panics with what differs.
#[track_caller]
pub fn agrees_with_interpreter<M: Model>(
    ir: &nnc::ir::Model,
    name: &str,
    batches: &[usize],
    layout: Layout,
    floor: f64,
) where
    M::Float: Scalar,
{
    let tol = tolerance::<M::Float>();
    for (k, &n) in batches.iter().enumerate() {
        let seed = 100 * k as u64 + n as u64;
        let named = random_inputs::<M>(ir, n, seed);
        let params = random_params::<M>(seed + 1);
        let want = interpret::<M>(ir, &params, &named);
        let named = relayout_inputs(&named, layout);
        let inputs = M::bind_inputs(&named).unwrap_or_else(|e| panic!("{name}: {e}"));
        let mut ws = M::workspace(&inputs);
        let mut grads = M::zero_grads(&inputs);
        let at = |what: &str| format!("{name} (N = {n}, {layout:?} inputs): {what}");

        let loss = M::loss(&params, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
        let want_loss = scalar(want.loss());
        assert_close_above(
            &at("loss"),
            scalar(loss).view(),
            want_loss.view(),
            tol,
            floor,
        );
        let loss = M::loss_and_grad(&params, &inputs, &mut ws, &mut grads)
            .unwrap_or_else(|e| panic!("{e}"));
        let what = at("loss of loss_and_grad");
        assert_close_above(&what, scalar(loss).view(), want_loss.view(), tol, floor);

        let got: Vec<_> = grads.tensors();
        let expected: Vec<_> = want.grads().collect();
        assert_eq!(got.len(), expected.len(), "{}", at("number of gradients"));
        for ((gname, g), (of, w)) in got.iter().zip(&expected) {
            assert_eq!(*gname, ir.grad_name(*of), "{}", at("gradient order"));
            assert_close_above(&at(&format!("d_{gname}")), g.view(), w.view(), tol, floor);
        }

        let outputs = M::outputs(&params, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
        let count = ir.outputs.len();
        assert_eq!(outputs.len(), count, "{}", at("number of outputs"));
        for (oname, value) in &outputs {
            let expected = want
                .output(oname)
                .unwrap_or_else(|| panic!("{}", at(&format!("no output {oname}"))));
            match (value, expected) {
                (OutputValue::Float(g), Value::Float(w)) => {
                    assert_close_above(&at(oname), g.view(), w.view(), tol, floor)
                }
                (OutputValue::Index(g), Value::Index(w)) => assert_eq!(g, w, "{}", at(oname)),
                _ => panic!(
                    "{}",
                    at(&format!("output {oname} has the wrong element kind"))
                ),
            }
        }
    }
}

/// Model `M` gives the same bits on one, two and three threads: loss, gradients,
/// parameters after `sgd_step`, outputs ([`results`]).
#[track_caller]
pub fn same_bits_on_threads<M: Model>(
    name: &str,
    params: &M::Params,
    named: &NamedInputs<M::Float>,
) {
    let inputs = M::bind_inputs(named).unwrap_or_else(|e| panic!("{name}: {e}"));
    let one = results::<M>(params, &inputs, Threads::one());
    for count in [2, 3] {
        let many = results::<M>(params, &inputs, Threads::new(count));
        for ((what, a), (_, b)) in one.iter().zip(&many) {
            assert!(a == b, "{name}: {what} differs on {count} threads");
        }
    }
}

/// Everything a model computes, as bits.
fn results<M: Model>(
    params: &M::Params,
    inputs: &M::Inputs<'_>,
    threads: Threads,
) -> Vec<(String, Vec<u64>)> {
    let bits = |x: M::Float| x.to_f64().map_or(u64::MAX, f64::to_bits);
    let mut ws = M::workspace_on(inputs, threads);
    let mut grads = M::zero_grads(inputs);
    let loss =
        M::loss_and_grad(params, inputs, &mut ws, &mut grads).unwrap_or_else(|e| panic!("{e}"));
    let mut out = vec![("loss".to_string(), vec![bits(loss)])];
    for (name, g) in grads.tensors() {
        out.push((format!("d_{name}"), g.iter().map(|x| bits(*x)).collect()));
    }
    let mut stepped = params.clone();
    let lr: M::Float = NumCast::from(0.125).unwrap_or_else(|| panic!("0.125 is a float"));
    let step_loss = M::sgd_step(&mut stepped, inputs, &mut ws, &mut grads, lr)
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(bits(step_loss), bits(loss), "sgd_step's loss");
    for ((name, p), ((_, p0), (_, g))) in stepped
        .tensors()
        .into_iter()
        .zip(params.tensors().into_iter().zip(grads.tensors()))
    {
        let want: Vec<u64> = p0
            .iter()
            .zip(g.iter())
            .map(|(x, d)| bits(*x - lr * *d))
            .collect();
        let got: Vec<u64> = p.iter().map(|x| bits(*x)).collect();
        assert!(got == want, "sgd_step: {name} is not p - lr * d_p");
        out.push((format!("{name} after sgd_step"), got));
    }
    let outputs = M::outputs(params, inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    for (name, value) in outputs {
        let values = match value {
            OutputValue::Float(a) => a.iter().map(|x| bits(*x)).collect(),
            OutputValue::Index(a) => a.iter().map(|i| *i as u64).collect(),
        };
        out.push((name.to_string(), values));
    }
    out
}

/// What the random programs' test is handed, one model type at a time.
pub trait Visit {
    /// A program the code generator compiled into model type `M`.
    fn visit<M: Model>(&mut self, seed: u64, source: &'static str)
    where
        M::Float: Scalar;
    /// A program the code generator rejected (with its diagnostics): a bug, since
    /// every generated program is well-typed.
    fn rejected(&mut self, seed: u64, source: &'static str, diagnostics: &'static str);
}

/// The batch sizes random programs run at: 1, and one where no two dims are equal.
pub const RANDOM_BATCHES: [usize; 2] = [1, 7];

/// Every check a random program gets, panicking with the first that fails:
/// the interpreter's gradients against central differences (f64, at batch 3); the
/// generated code against the interpreter at [`RANDOM_BATCHES`] with contiguous
/// and strided inputs; the same bits on one, two and three threads.
///
/// Gives whether the central differences could be checked: not when no random point
/// lies clear of the program's kinks (a random program can compare a value with a
/// function of itself, `p < tanh(p)`, whose tie is a whole neighbourhood of 0 as the
/// gap is measured); the other checks run either way.
pub fn check_random_program<M: Model>(source: &str) -> bool
where
    M::Float: Scalar,
{
    let models = nnc::ir::compile_source(source).unwrap_or_else(|d| panic!("front end: {d:?}"));
    let forward = models
        .into_iter()
        .next()
        .unwrap_or_else(|| panic!("no model"));
    let name = forward.name.clone();
    let options = nnc::autodiff::gradcheck::Options {
        batch: 3,
        max_samples: 8,
        max_evaluations: 400,
        threshold: 1e-5,
        ..Default::default()
    };
    let differences_checked = match nnc::autodiff::gradcheck::gradcheck(&forward, &options) {
        Ok(report) => {
            assert!(
                report.passed(),
                "interpreter against central differences:\n{report}"
            );
            true
        }
        Err(nnc::autodiff::gradcheck::CheckError::Kinks { .. }) => false,
        Err(e) => panic!("gradient check: {e}"),
    };
    let ir = nnc::autodiff::with_gradients(&forward).unwrap_or_else(|e| panic!("{name}: {e}"));
    // Random programs' values are of order 1 (inputs in [-2, 2]); where a gradient
    // cancels to nearly 0 (`logsumexp` of a log-softmax), its rounding noise is
    // judged against 1, not against the tiny value.
    for layout in [Layout::Contiguous, Layout::Strided] {
        agrees_with_interpreter::<M>(&ir, &name, &RANDOM_BATCHES, layout, 1.0);
    }
    let named = random_inputs::<M>(&ir, 5, 11);
    let params = random_params::<M>(12);
    same_bits_on_threads::<M>(&name, &params, &named);
    differences_checked
}
