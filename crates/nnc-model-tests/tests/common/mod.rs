//! What the tests share: the spec models' IR, random inputs and parameters, and
//! tensor comparison.

#![allow(
    dead_code,
    reason = "each test binary uses a different part of this module"
)]

use nnc::Model;
use nnc::ir::interp::{Bindings, Evaluation, Scalar, Value, evaluate};
use nnc::ndarray::{ArrayD, ArrayViewD, IxDyn};
use nnc::rand::rngs::StdRng;
use nnc::rand::{RngExt, SeedableRng};
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
    let bound = tol * scale.max(1e-300);
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
