//! `generated::boxed` makes any `nnc_runtime::Model` a `Trainer`: checked here on a
//! hand-written model in the shape generated code has (W1's `two_layer`), so plugging
//! in the real generated modules is only a matter of naming them.

use nnc_bench::generated::{self, GeneratedFn};
use nnc_bench::workload::{Problem, Workload};
use nnc_bench::{baseline, relative_error};
use nnc_runtime::ndarray::linalg::general_mat_mul;
use nnc_runtime::ndarray::{Array2, ArrayView2, ArrayViewD, ArrayViewMutD, Ix2, Zip};
use nnc_runtime::parallel::Threads;
use nnc_runtime::rand::Rng;
use nnc_runtime::{
    DimSpec, Model, NamedInputs, Outputs, ShapeError, Signature, TensorInfo, TensorKind, TensorSet,
};

const X: &[DimSpec] = &[DimSpec::Runtime("N"), DimSpec::Fixed(1000)];
const Y: &[DimSpec] = &[DimSpec::Runtime("N"), DimSpec::Fixed(10)];
const W1: &[DimSpec] = &[DimSpec::Fixed(1000), DimSpec::Fixed(100)];
const W2: &[DimSpec] = &[DimSpec::Fixed(100), DimSpec::Fixed(10)];

const fn info(name: &'static str, shape: &'static [DimSpec]) -> TensorInfo {
    TensorInfo {
        name,
        kind: TensorKind::Float,
        shape,
    }
}

static SIGNATURE: Signature = Signature {
    model: "two_layer",
    inputs: &[info("x", X), info("y", Y)],
    params: &[info("w1", W1), info("w2", W2)],
    outputs: &[info("y_pred", Y)],
    grads: &[info("w1", W1), info("w2", W2)],
};

struct TwoLayer;

#[derive(Clone)]
struct Pair {
    w1: Array2<f64>,
    w2: Array2<f64>,
}

impl TensorSet<f64> for Pair {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f64>)> {
        vec![
            ("w1", self.w1.view().into_dyn()),
            ("w2", self.w2.view().into_dyn()),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, f64>)> {
        vec![
            ("w1", self.w1.view_mut().into_dyn()),
            ("w2", self.w2.view_mut().into_dyn()),
        ]
    }
}

struct Inputs<'a> {
    x: ArrayView2<'a, f64>,
    y: ArrayView2<'a, f64>,
}

struct Workspace {
    h: Array2<f64>,
    d_y: Array2<f64>,
    d_h: Array2<f64>,
}

fn zeros() -> Pair {
    Pair {
        w1: Array2::zeros((1000, 100)),
        w2: Array2::zeros((100, 10)),
    }
}

fn input<'a>(named: &'a NamedInputs<f64>, name: &str) -> Result<ArrayView2<'a, f64>, ShapeError> {
    let missing = || ShapeError::Missing {
        input: name.to_string(),
    };
    let (_, a) = named
        .floats
        .iter()
        .find(|(n, _)| n == name)
        .ok_or_else(missing)?;
    a.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| ShapeError::Rank {
            input: name.to_string(),
            expected: 2,
            actual: a.ndim(),
        })
}

impl Model for TwoLayer {
    type Float = f64;
    type Params = Pair;
    type Grads = Pair;
    type Inputs<'a> = Inputs<'a>;
    type Workspace = Workspace;

    fn signature() -> &'static Signature {
        &SIGNATURE
    }
    fn init_params<R: Rng + ?Sized>(_rng: &mut R) -> Pair {
        zeros()
    }
    fn zero_grads(_inputs: &Inputs<'_>) -> Pair {
        zeros()
    }
    fn bind_inputs(named: &NamedInputs<f64>) -> Result<Inputs<'_>, ShapeError> {
        Ok(Inputs {
            x: input(named, "x")?,
            y: input(named, "y")?,
        })
    }
    fn workspace(inputs: &Inputs<'_>) -> Workspace {
        let n = inputs.x.nrows();
        Workspace {
            h: Array2::zeros((n, 100)),
            d_y: Array2::zeros((n, 10)),
            d_h: Array2::zeros((n, 100)),
        }
    }
    fn loss(p: &Pair, i: &Inputs<'_>, ws: &mut Workspace) -> Result<f64, ShapeError> {
        let mut grads = zeros();
        Self::loss_and_grad(p, i, ws, &mut grads)
    }
    fn loss_and_grad(
        p: &Pair,
        i: &Inputs<'_>,
        ws: &mut Workspace,
        g: &mut Pair,
    ) -> Result<f64, ShapeError> {
        general_mat_mul(1.0, &i.x, &p.w1, 0.0, &mut ws.h);
        ws.h.mapv_inplace(|z| 1.0 / (1.0 + (-z).exp()));
        general_mat_mul(1.0, &ws.h, &p.w2, 0.0, &mut ws.d_y);
        let mut loss = 0.0;
        Zip::from(&mut ws.d_y).and(&i.y).for_each(|d, &t| {
            let e = *d - t;
            loss += e * e;
            *d = 2.0 * e;
        });
        general_mat_mul(1.0, &ws.h.t(), &ws.d_y, 0.0, &mut g.w2);
        general_mat_mul(1.0, &ws.d_y, &p.w2.t(), 0.0, &mut ws.d_h);
        Zip::from(&mut ws.d_h)
            .and(&ws.h)
            .for_each(|d, &h| *d *= h * (1.0 - h));
        general_mat_mul(1.0, &i.x.t(), &ws.d_h, 0.0, &mut g.w1);
        Ok(loss)
    }
    fn outputs(_: &Pair, _: &Inputs<'_>, _: &mut Workspace) -> Result<Outputs<f64>, ShapeError> {
        Ok(Vec::new())
    }
}

#[test]
fn a_model_trains_like_the_baseline_from_the_problem_s_parameters() {
    let problem = Problem::<f64>::new(Workload::W1, 4, 3).expect("the problem builds");
    let named = problem.named_inputs();
    let lr = Workload::W1.lr();
    let make: GeneratedFn<f64> = generated::boxed::<TwoLayer>;
    let mut model =
        make(&named, &problem, lr, &Threads::one()).expect("the model accepts the problem");
    let mut base = baseline::for_problem(&problem, lr);
    for step in 0..2 {
        let (lm, lb) = (model.loss_and_grad(), base.loss_and_grad());
        assert!(
            (lm - lb).abs() <= 1e-12 * lb.abs(),
            "step {step}: {lm} vs {lb}"
        );
        let names: Vec<&str> = model.grads().iter().map(|(n, _)| *n).collect();
        assert_eq!(names, ["w1", "w2"]);
        for ((_, g), (_, b)) in model.grads().iter().zip(base.grads()) {
            assert!(relative_error(g, &b) < 1e-12, "step {step}");
        }
        model.update();
        base.update();
        for ((_, p), (_, b)) in model.params().iter().zip(base.params()) {
            assert!(relative_error(p, &b) < 1e-12, "step {step}");
        }
    }
}

#[test]
fn a_problem_the_model_rejects_is_an_error() {
    let mut problem = Problem::<f64>::new(Workload::W1, 4, 3).expect("the problem builds");
    let named = problem.named_inputs();
    problem.params.pop();
    let err = generated::boxed::<TwoLayer>(&named, &problem, 1e-4, &Threads::one())
        .err()
        .expect("a missing parameter is reported");
    assert!(err.contains("2 parameters, the problem 1"), "{err}");
}
