//! Helpers shared by the interpreter and snapshot tests: the spec models, a seeded
//! random number generator, and random bindings for any model.
#![allow(dead_code)] // each test binary uses a different subset

use ndarray::{ArrayD, IxDyn};
use nnc_ir::interp::{Bindings, Scalar, Value, concrete_shape};
use nnc_ir::{Elem, Init, Model, Op};
use std::path::{Path, PathBuf};

/// The directory holding the spec models: the project's copies under
/// `examples/models/`, or the originals when the copies are not there.
pub fn models_dir() -> PathBuf {
    let copies = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../examples/models"
    ));
    let originals = Path::new(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/../../../shared/spec/models"
    ));
    if copies.join("gates.nn").is_file() {
        copies.to_path_buf()
    } else {
        originals.to_path_buf()
    }
}

/// Every spec model file, sorted by name, as (file name, source).
pub fn model_files() -> Vec<(String, String)> {
    let dir = models_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    files.sort();
    assert!(
        files.len() >= 9,
        "expected the nine spec model files in {}",
        dir.display()
    );
    files
        .into_iter()
        .map(|p| {
            let name = p
                .file_name()
                .expect("a file name")
                .to_string_lossy()
                .into_owned();
            let source = std::fs::read_to_string(&p)
                .unwrap_or_else(|e| panic!("cannot read {}: {e}", p.display()));
            (name, source)
        })
        .collect()
}

/// Compiles a source that must be valid.
pub fn compile(source: &str) -> Vec<Model> {
    match nnc_ir::compile_source(source) {
        Ok(models) => models,
        Err(d) => panic!(
            "expected a valid program:\n{}",
            nnc_syntax::render(&d, "test.nn", source)
        ),
    }
}

/// The model named `name` of a spec file.
pub fn spec_model(file: &str, name: &str) -> Model {
    let path = models_dir().join(file);
    let source = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    compile(&source)
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("{file} has no model `{name}`"))
}

/// SplitMix64: small, seeded, and the same on every platform.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Rng {
        Rng(seed)
    }

    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }

    /// Uniform in [0, 1).
    pub fn uniform(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// Standard normal (Box–Muller).
    pub fn normal(&mut self) -> f64 {
        let u1 = 1.0 - self.uniform();
        let u2 = self.uniform();
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    }

    /// Uniform in 0..n.
    pub fn below(&mut self, n: usize) -> usize {
        (self.next_u64() % n as u64) as usize
    }

    pub fn normal_array(&mut self, shape: &[usize]) -> ArrayD<f64> {
        ArrayD::from_shape_simple_fn(IxDyn(shape), || self.normal())
    }
}

/// One parameter initialised per its `Init` (fan_in = first dim, 1 for scalars).
pub fn init_param(init: Init, shape: &[usize], rng: &mut Rng) -> ArrayD<f64> {
    let fan_in = shape
        .get(shape.len().saturating_sub(2))
        .copied()
        .unwrap_or(1) as f64;
    let mut draw =
        |f: &mut dyn FnMut(&mut Rng) -> f64| ArrayD::from_shape_simple_fn(IxDyn(shape), || f(rng));
    match init {
        Init::Zeros => ArrayD::zeros(IxDyn(shape)),
        Init::Ones => ArrayD::ones(IxDyn(shape)),
        Init::Constant(c) => ArrayD::from_elem(IxDyn(shape), c),
        Init::Normal { mean, std } => draw(&mut |r| mean + std * r.normal()),
        Init::Uniform { lo, hi } => draw(&mut |r| lo + (hi - lo) * r.uniform()),
        Init::Xavier => draw(&mut |r| r.normal() / fan_in.sqrt()),
        Init::He => draw(&mut |r| r.normal() / (fan_in / 2.0).sqrt()),
    }
}

/// The size each dim gets: `batch` for runtime dims, the declared size otherwise.
pub fn dim_sizes(model: &Model, batch: usize) -> Vec<usize> {
    model.dims.iter().map(|d| d.size.unwrap_or(batch)).collect()
}

/// How many classes an index input may name: the smallest class count among the
/// `pick`s and `one_hot`s that read it directly (1 when none does).
pub fn class_count(model: &Model, input: usize, dims: &[usize]) -> usize {
    let Some(leaf) = model.input_node(nnc_ir::InputId(input as u32)) else {
        return 1;
    };
    let counts = model.nodes.iter().filter_map(|n| match n.op {
        Op::Pick { .. } if n.args.get(1) == Some(&leaf) => {
            concrete_shape(model.shape(n.args[0]), dims).get(1).copied()
        }
        Op::OneHot { classes } if n.args.first() == Some(&leaf) => {
            Some(concrete_shape(&vec![classes], dims)[0])
        }
        _ => None,
    });
    counts.min().unwrap_or(1)
}

/// Random bindings for any model, in f64: float inputs standard normal, index inputs
/// uniform over the classes they are used with, params per their `Init`.
pub fn random_bindings(model: &Model, batch: usize, seed: u64) -> Bindings<f64> {
    let mut rng = Rng::new(seed);
    let dims = dim_sizes(model, batch);
    let inputs = model
        .inputs
        .iter()
        .enumerate()
        .map(|(k, i)| {
            let shape = concrete_shape(&i.ty.shape, &dims);
            // The leaves train and eval modes add: the training step with the states
            // at their initial values and masks that keep every other element.
            match i.kind {
                nnc_ir::InputKind::Data => {}
                nnc_ir::InputKind::Mask { keep } => {
                    let mut k = 0;
                    return Value::Float(ArrayD::from_shape_simple_fn(IxDyn(&shape), || {
                        k += 1;
                        if k % 2 == 0 { 1.0 / keep } else { 0.0 }
                    }));
                }
                nnc_ir::InputKind::State(_) | nnc_ir::InputKind::Training => {
                    let state = nnc_ir::modes::initial_state::<f64>(model);
                    let value = state.into_iter().find(|(n, _)| *n == i.name);
                    return Value::Float(
                        value.map_or_else(|| ArrayD::ones(IxDyn(&shape)), |(_, v)| v),
                    );
                }
            }
            match i.ty.elem {
                Elem::Float => Value::Float(rng.normal_array(&shape)),
                Elem::Index => {
                    let classes = class_count(model, k, &dims);
                    Value::Index(ArrayD::from_shape_simple_fn(IxDyn(&shape), || {
                        rng.below(classes)
                    }))
                }
            }
        })
        .collect();
    let params = model
        .params
        .iter()
        .map(|p| init_param(p.init, &concrete_shape(&p.shape, &dims), &mut rng))
        .collect();
    Bindings { inputs, params }
}

/// The same bindings in another float type.
pub fn convert<F: Scalar>(b: &Bindings<f64>) -> Bindings<F> {
    let conv = |a: &ArrayD<f64>| a.mapv(|v| F::from_f64(v).expect("a float"));
    Bindings {
        inputs: b
            .inputs
            .iter()
            .map(|v| match v {
                Value::Float(a) => Value::Float(conv(a)),
                Value::Index(a) => Value::Index(a.clone()),
            })
            .collect(),
        params: b.params.iter().map(conv).collect(),
    }
}

/// Parameters from their initialisers when those are constants (the lecture's
/// worked examples).
pub fn constant_params(model: &Model) -> Vec<ArrayD<f64>> {
    let mut rng = Rng::new(0);
    model
        .params
        .iter()
        .map(|p| {
            assert!(
                matches!(p.init, Init::Zeros | Init::Ones | Init::Constant(_)),
                "param `{}` has a random initialiser",
                p.name
            );
            init_param(p.init, &concrete_shape(&p.shape, &[]), &mut rng)
        })
        .collect()
}
