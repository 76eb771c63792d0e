//! The four benchmark workloads of `spec/workloads.md`: their models, data, update
//! rules and matmul shapes.
//!
//! A [`Problem`] is one workload's data and initial parameters, by name in the
//! model's declaration order, generated from a seed. Every implementation (baseline,
//! interpreter, generated code) starts from the same [`Problem`], so their losses can
//! be compared step for step.

use crate::BenchFloat;
use ndarray::{Array1, Array2, ArrayD, IxDyn};
use nnc_ir::interp::{Bindings, Value};
use nnc_runtime::NamedInputs;
use nnc_runtime::init;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal, StandardUniform};
use std::fmt;

/// One of the spec's workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Workload {
    /// `two_layer.nn`: N=64, 1000-100-10, sigmoid, sum of squares; f64, GD lr 1e-4.
    W1,
    /// `spiral.nn`: 3 x 100 points, 2-100-3 ReLU, softmax CE + L2; f64, GD lr 1.0.
    W2,
    /// `mlp784.nn`: batch 128, 784-256-128-10 ReLU, softmax CE; f32, SGD lr 0.1.
    W3,
    /// `deep_tanh.nn`: batch 256, ten 500-wide tanh layers, 500->10; f32, SGD lr 0.01.
    W4,
}

/// One matrix product of a training step: `[m, k] @ [k, n]`, `2 m n k` FLOPs.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Matmul {
    /// What it computes, e.g. `x @ w1` or `d_w1 = x.T @ d_z1`.
    pub what: &'static str,
    pub m: usize,
    pub k: usize,
    pub n: usize,
}

impl Matmul {
    pub fn flops(&self) -> f64 {
        2.0 * (self.m * self.k * self.n) as f64
    }
}

impl fmt::Display for Matmul {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}x{}x{}", self.m, self.k, self.n)
    }
}

/// The best peer's single-thread and two-thread GFLOP/s, and the hand-written
/// ndarray figure, as `spec/workloads.md` lists them (measured elsewhere).
#[derive(Clone, Copy, Debug)]
pub struct PeerFigures {
    pub best_1_thread: f64,
    pub best_2_threads: f64,
    pub ndarray_1_thread: Option<f64>,
}

impl Workload {
    pub const ALL: [Workload; 4] = [Workload::W1, Workload::W2, Workload::W3, Workload::W4];

    /// `W1` .. `W4`.
    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
        }
    }

    /// The model's name (and its file's stem in `examples/models/`).
    pub fn model_name(self) -> &'static str {
        match self {
            Workload::W1 => "two_layer",
            Workload::W2 => "spiral",
            Workload::W3 => "mlp784",
            Workload::W4 => "deep_tanh",
        }
    }

    /// The model's `.nn` source.
    pub fn source(self) -> &'static str {
        match self {
            Workload::W1 => include_str!("../../../examples/models/two_layer.nn"),
            Workload::W2 => include_str!("../../../examples/models/spiral.nn"),
            Workload::W3 => include_str!("../../../examples/models/mlp784.nn"),
            Workload::W4 => include_str!("../../../examples/models/deep_tanh.nn"),
        }
    }

    /// The learning rate of the workload's update `w -= lr * dw`.
    pub fn lr(self) -> f64 {
        match self {
            Workload::W1 => 1e-4,
            Workload::W2 => 1.0,
            Workload::W3 => 0.1,
            Workload::W4 => 0.01,
        }
    }

    /// The batch size the spec benchmarks (W2: the whole data set, 3 x 100 points).
    pub fn batch(self) -> usize {
        match self {
            Workload::W1 => 64,
            Workload::W2 => 300,
            Workload::W3 => 128,
            Workload::W4 => 256,
        }
    }

    /// Whether the model computes in `f64` (W1, W2) or `f32` (W3, W4).
    pub fn is_f64(self) -> bool {
        matches!(self, Workload::W1 | Workload::W2)
    }

    /// Every matmul of one training step at batch size `n`, forward and backward
    /// (no gradient is taken for the inputs, so the first layer has no `d_x`).
    pub fn matmuls(self, n: usize) -> Vec<Matmul> {
        let mm = |what, m, k, n| Matmul { what, m, k, n };
        match self {
            Workload::W1 => vec![
                mm("x @ w1", n, 1000, 100),
                mm("h @ w2", n, 100, 10),
                mm("d_w2 = h.T @ d_y", 100, n, 10),
                mm("d_h = d_y @ w2.T", n, 10, 100),
                mm("d_w1 = x.T @ d_z", 1000, n, 100),
            ],
            Workload::W2 => dense_stack(n, &[2, 100, 3]),
            Workload::W3 => dense_stack(n, &[784, 256, 128, 10]),
            Workload::W4 => {
                let mut widths = vec![500; 11];
                widths.push(10);
                dense_stack(n, &widths)
            }
        }
    }

    /// MFLOP per training step at batch size `n`.
    pub fn mflop(self, n: usize) -> f64 {
        self.matmuls(n).iter().map(Matmul::flops).sum::<f64>() / 1e6
    }

    /// The forward matmul with the most FLOPs (the first, on a tie): the shape the
    /// matmul ceiling is measured on.
    pub fn largest_matmul(self) -> Matmul {
        let all = self.matmuls(self.batch());
        let mut best = all[0];
        for m in &all[1..] {
            if m.flops() > best.flops() {
                best = *m;
            }
        }
        best
    }

    /// The figures `spec/workloads.md` gives for this workload (not measured here).
    pub fn peers(self) -> PeerFigures {
        let (best_1_thread, best_2_threads, ndarray_1_thread) = match self {
            Workload::W1 => (36.0, 58.6, Some(24.3)),
            Workload::W2 => (4.8, 4.6, None),
            Workload::W3 => (75.2, 131.3, Some(60.5)),
            Workload::W4 => (77.5, 143.0, None),
        };
        PeerFigures {
            best_1_thread,
            best_2_threads,
            ndarray_1_thread,
        }
    }

    /// The MFLOP per step `spec/workloads.md` lists.
    pub fn spec_mflop(self) -> f64 {
        match self {
            Workload::W1 => 25.98,
            Workload::W2 => 0.78,
            Workload::W3 => 128.9,
            Workload::W4 => 3719.7,
        }
    }

    /// The lowered model (forward pass only).
    pub fn model(self) -> Result<nnc_ir::Model, String> {
        let models = nnc_ir::compile_source(self.source()).map_err(|diagnostics| {
            format!(
                "{}.nn does not compile: {} diagnostic(s), first: {:?}",
                self.model_name(),
                diagnostics.len(),
                diagnostics.first()
            )
        })?;
        models
            .into_iter()
            .find(|m| m.name == self.model_name())
            .ok_or_else(|| {
                format!(
                    "{}.nn has no model `{}`",
                    self.model_name(),
                    self.model_name()
                )
            })
    }

    /// The model with its (simplified) backward pass: what the interpreter runs.
    pub fn model_with_gradients(self) -> Result<nnc_ir::Model, String> {
        let model = self.model()?;
        nnc_autodiff::with_gradients(&model).map_err(|e| format!("{}: {e:?}", self.model_name()))
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{} {}", self.id(), self.model_name())
    }
}

/// The matmuls of a stack of dense layers `widths[0] -> widths[1] -> ...` at batch
/// size `n`: forward `h @ w`, backward `d_w = h.T @ d_z` and, except for the first
/// layer, `d_h = d_z @ w.T`.
fn dense_stack(n: usize, widths: &[usize]) -> Vec<Matmul> {
    let layers: Vec<(usize, usize)> = widths.windows(2).map(|w| (w[0], w[1])).collect();
    let mut out = Vec::new();
    for &(k, m_out) in &layers {
        out.push(Matmul {
            what: "h @ w",
            m: n,
            k,
            n: m_out,
        });
    }
    for (i, &(k, m_out)) in layers.iter().enumerate().rev() {
        out.push(Matmul {
            what: "d_w = h.T @ d_z",
            m: k,
            k: n,
            n: m_out,
        });
        if i > 0 {
            out.push(Matmul {
                what: "d_h = d_z @ w.T",
                m: n,
                k: m_out,
                n: k,
            });
        }
    }
    out
}

/// One workload's data and initial parameters, in the model's declaration order.
#[derive(Clone, Debug)]
pub struct Problem<F> {
    pub workload: Workload,
    /// Rows in the batch (W2: points in the data set).
    pub n: usize,
    /// Float inputs by name (`x`, and `y` for W1).
    pub floats: Vec<(String, ArrayD<F>)>,
    /// Index inputs by name (`labels`).
    pub indices: Vec<(String, ArrayD<usize>)>,
    /// Parameters by name, in declaration order.
    pub params: Vec<(String, ArrayD<F>)>,
}

impl<F: BenchFloat> Problem<F> {
    /// The workload's data at batch size `n` (W2: `n` points, `n / 3` per class) and
    /// its parameters drawn from their declared initialisers, all from `seed`.
    ///
    /// The data are as the spec says: W1 `x`, `y` standard normal; W2 the spiral;
    /// W3 and W4 `x` standard normal with labels uniform over the classes.
    pub fn new(workload: Workload, n: usize, seed: u64) -> Result<Problem<F>, String> {
        let model = workload.model()?;
        let mut rng = StdRng::seed_from_u64(seed);
        let mut floats = Vec::new();
        let mut indices = Vec::new();
        match workload {
            Workload::W1 => {
                floats.push(("x".to_string(), normal(&[n, 1000], &mut rng)));
                floats.push(("y".to_string(), normal(&[n, 10], &mut rng)));
            }
            Workload::W2 => {
                let (x, labels) = spiral(n / 3, &mut rng);
                floats.push(("x".to_string(), x.into_dyn()));
                indices.push(("labels".to_string(), labels.into_dyn()));
            }
            Workload::W3 | Workload::W4 => {
                let d = if workload == Workload::W3 { 784 } else { 500 };
                floats.push(("x".to_string(), normal(&[n, d], &mut rng)));
                let labels = (0..n)
                    .map(|_| {
                        let u: f64 = StandardUniform.sample(&mut rng);
                        ((u * 10.0) as usize).min(9)
                    })
                    .collect::<Vec<_>>();
                indices.push(("labels".to_string(), Array1::from(labels).into_dyn()));
            }
        }
        let n = floats[0].1.shape()[0];
        let mut params = Vec::new();
        for p in &model.params {
            let shape = nnc_ir::interp::concrete_shape(&p.shape, &[]);
            let mut array = ArrayD::<F>::zeros(IxDyn(&shape));
            init::fill(&mut array.view_mut(), runtime_init(p.init), &mut rng);
            params.push((p.name.clone(), array));
        }
        Ok(Problem {
            workload,
            n,
            floats,
            indices,
            params,
        })
    }

    /// A float input by name.
    pub fn float(&self, name: &str) -> &ArrayD<F> {
        lookup(&self.floats, name)
    }

    /// An index input (class labels) by name.
    pub fn indices(&self, name: &str) -> &ArrayD<usize> {
        lookup(&self.indices, name)
    }

    /// A parameter by name.
    pub fn param(&self, name: &str) -> &ArrayD<F> {
        lookup(&self.params, name)
    }

    /// The inputs as generated code binds them.
    pub fn named_inputs(&self) -> NamedInputs<F> {
        NamedInputs {
            floats: self.floats.clone(),
            indices: self.indices.clone(),
        }
    }

    /// Inputs and parameters in the interpreter's positional form.
    pub fn bindings(&self, model: &nnc_ir::Model) -> Result<Bindings<F>, String> {
        let inputs = self
            .floats
            .iter()
            .map(|(n, a)| (n.clone(), Value::Float(a.clone())))
            .chain(
                self.indices
                    .iter()
                    .map(|(n, a)| (n.clone(), Value::Index(a.clone()))),
            );
        Bindings::from_named(model, inputs, self.params.clone()).map_err(|e| e.to_string())
    }
}

/// Looks a name up in a list the workload itself built; a missing name is a bug in
/// this crate, not a user error.
fn lookup<'a, T>(list: &'a [(String, T)], name: &str) -> &'a T {
    match list.iter().find(|(n, _)| n == name) {
        Some((_, v)) => v,
        None => panic!("no tensor `{name}` in this problem"),
    }
}

fn normal<F: BenchFloat>(shape: &[usize], rng: &mut StdRng) -> ArrayD<F> {
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let z: f64 = StandardNormal.sample(&mut *rng);
        F::from_f64(z).unwrap_or_else(F::nan)
    })
}

/// The spiral data set: for class `j` in 0..3 and `i` in 0..per_class,
/// `r = i / (per_class - 1)`, `t = 4 j + 4 r + 0.2 z` (`z` standard normal), the
/// point `(r sin t, r cos t)` with label `j`. With 100 points per class this is the
/// spec's `r = i/99, t = 4j + 4i/99 + 0.2 z`.
pub fn spiral<F: BenchFloat>(per_class: usize, rng: &mut StdRng) -> (Array2<F>, Array1<usize>) {
    let n = 3 * per_class;
    let mut x = Array2::<F>::zeros((n, 2));
    let mut labels = Array1::<usize>::zeros(n);
    let denom = per_class.saturating_sub(1).max(1) as f64;
    for j in 0..3 {
        for i in 0..per_class {
            let row = j * per_class + i;
            let r = i as f64 / denom;
            let z: f64 = StandardNormal.sample(&mut *rng);
            let t = 4.0 * j as f64 + 4.0 * i as f64 / denom + 0.2 * z;
            x[[row, 0]] = F::from_f64(r * t.sin()).unwrap_or_else(F::nan);
            x[[row, 1]] = F::from_f64(r * t.cos()).unwrap_or_else(F::nan);
            labels[row] = j;
        }
    }
    (x, labels)
}

/// The IR's initialiser as the runtime's.
fn runtime_init(i: nnc_ir::Init) -> init::Init {
    match i {
        nnc_ir::Init::Zeros => init::Init::Zeros,
        nnc_ir::Init::Ones => init::Init::Ones,
        nnc_ir::Init::Constant(c) => init::Init::Constant(c),
        nnc_ir::Init::Normal { mean, std } => init::Init::Normal { mean, std },
        nnc_ir::Init::Uniform { lo, hi } => init::Init::Uniform { lo, hi },
        nnc_ir::Init::Xavier => init::Init::Xavier,
        nnc_ir::Init::He => init::Init::He,
    }
}
