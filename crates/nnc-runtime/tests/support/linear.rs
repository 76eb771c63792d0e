//! A hand-written `linear` model, as nnc would generate it from:
//!
//! ```text
//! model linear {
//!     dtype f64;
//!     dim N;
//!     dim D = 3, K = 2;
//!     input x: [N, D] grad;
//!     input y: [N, K];
//!     param w: [D, K] = xavier;
//!     param b: [K] = zeros;
//!     output pred = x @ w + b;
//!     loss sum((pred - y) ^ 2);
//! }
//! ```
//!
//! Also [`WrongBias`]: the same model with a classic bug in its bias gradient.

use nnc_runtime::init::{Init, fill};
use nnc_runtime::ndarray::linalg::general_mat_mul;
use nnc_runtime::ndarray::{Array1, Array2, ArrayView2, ArrayViewD, ArrayViewMutD};
use nnc_runtime::rand::Rng;
use nnc_runtime::{
    DimSpec, Model, NamedInputs, OutputValue, ShapeError, Signature, TensorInfo, TensorKind,
    TensorSet,
};

use super::{check_dim, find, matrix, reject_unknown};

pub const D: usize = 3;
pub const K: usize = 2;

const N_D: &[DimSpec] = &[DimSpec::Runtime("N"), DimSpec::Fixed(D)];
const N_K: &[DimSpec] = &[DimSpec::Runtime("N"), DimSpec::Fixed(K)];
const D_K: &[DimSpec] = &[DimSpec::Fixed(D), DimSpec::Fixed(K)];
const K_: &[DimSpec] = &[DimSpec::Fixed(K)];

const fn float(name: &'static str, shape: &'static [DimSpec]) -> TensorInfo {
    TensorInfo {
        name,
        kind: TensorKind::Float,
        shape,
    }
}

static SIGNATURE: Signature = Signature {
    model: "linear",
    inputs: &[float("x", N_D), float("y", N_K)],
    params: &[float("w", D_K), float("b", K_)],
    outputs: &[float("pred", N_K)],
    grads: &[float("w", D_K), float("b", K_), float("x", N_D)],
};

/// The model.
pub struct Linear;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub w: Array2<f64>,
    pub b: Array1<f64>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    pub w: Array2<f64>,
    pub b: Array1<f64>,
    pub x: Array2<f64>,
}

/// Borrowed inputs, with the runtime dim `N` they bind.
pub struct Inputs<'a> {
    pub x: ArrayView2<'a, f64>,
    pub y: ArrayView2<'a, f64>,
    pub n: usize,
}

/// Buffers for one value of `N`.
pub struct Workspace {
    n: usize,
    pred: Array2<f64>,
    dpred: Array2<f64>,
}

impl TensorSet<f64> for Params {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f64>)> {
        vec![
            ("w", self.w.view().into_dyn()),
            ("b", self.b.view().into_dyn()),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, f64>)> {
        vec![
            ("w", self.w.view_mut().into_dyn()),
            ("b", self.b.view_mut().into_dyn()),
        ]
    }
}

impl TensorSet<f64> for Grads {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f64>)> {
        vec![
            ("w", self.w.view().into_dyn()),
            ("b", self.b.view().into_dyn()),
            ("x", self.x.view().into_dyn()),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, f64>)> {
        vec![
            ("w", self.w.view_mut().into_dyn()),
            ("b", self.b.view_mut().into_dyn()),
            ("x", self.x.view_mut().into_dyn()),
        ]
    }
}

/// Checks buffers sized for one `N` are used with inputs of the same `N`.
fn check_n(what: &str, expected: usize, actual: usize) -> Result<(), ShapeError> {
    check_dim(what, 0, "N", expected, actual)
}

/// `pred = x @ w + b` into the workspace.
fn forward(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<(), ShapeError> {
    check_n("x", ws.n, inputs.n)?;
    general_mat_mul(1.0, &inputs.x, &params.w, 0.0, &mut ws.pred);
    ws.pred += &params.b;
    Ok(())
}

impl Model for Linear {
    type Float = f64;
    type Params = Params;
    type Grads = Grads;
    type Inputs<'a> = Inputs<'a>;
    type Workspace = Workspace;

    fn signature() -> &'static Signature {
        &SIGNATURE
    }

    fn init_params<R: Rng + ?Sized>(rng: &mut R) -> Params {
        let mut w = Array2::zeros((D, K));
        fill(&mut w.view_mut().into_dyn(), Init::Xavier, rng);
        let mut b = Array1::zeros(K);
        fill(&mut b.view_mut().into_dyn(), Init::Zeros, rng);
        Params { w, b }
    }

    fn zero_grads(inputs: &Inputs<'_>) -> Grads {
        Grads {
            w: Array2::zeros((D, K)),
            b: Array1::zeros(K),
            x: Array2::zeros((inputs.n, D)),
        }
    }

    fn bind_inputs(named: &NamedInputs<f64>) -> Result<Inputs<'_>, ShapeError> {
        reject_unknown(SIGNATURE.model, &named.floats, &["x", "y"])?;
        reject_unknown(SIGNATURE.model, &named.indices, &[])?;
        let x = matrix("x", find(&named.floats, "x")?)?;
        let y = matrix("y", find(&named.floats, "y")?)?;
        let n = x.nrows();
        check_dim("x", 1, "D", D, x.ncols())?;
        check_dim("y", 0, "N", n, y.nrows())?;
        check_dim("y", 1, "K", K, y.ncols())?;
        Ok(Inputs { x, y, n })
    }

    fn workspace(inputs: &Inputs<'_>) -> Workspace {
        Workspace {
            n: inputs.n,
            pred: Array2::zeros((inputs.n, K)),
            dpred: Array2::zeros((inputs.n, K)),
        }
    }

    fn loss(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<f64, ShapeError> {
        forward(params, inputs, ws)?;
        Ok(ws
            .pred
            .iter()
            .zip(inputs.y.iter())
            .map(|(p, y)| (p - y).powi(2))
            .sum())
    }

    fn loss_and_grad(
        params: &Params,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
        grads: &mut Grads,
    ) -> Result<f64, ShapeError> {
        check_n("x (gradient buffer)", inputs.n, grads.x.nrows())?;
        forward(params, inputs, ws)?;
        let mut loss = 0.0;
        for ((d, &p), &y) in ws.dpred.iter_mut().zip(ws.pred.iter()).zip(inputs.y.iter()) {
            loss += (p - y).powi(2);
            *d = 2.0 * (p - y);
        }
        general_mat_mul(1.0, &inputs.x.t(), &ws.dpred, 0.0, &mut grads.w);
        grads.b.fill(0.0);
        for row in ws.dpred.rows() {
            grads.b += &row;
        }
        general_mat_mul(1.0, &ws.dpred, &params.w.t(), 0.0, &mut grads.x);
        Ok(loss)
    }

    fn outputs(
        params: &Params,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
    ) -> Result<Vec<(&'static str, OutputValue<f64>)>, ShapeError> {
        forward(params, inputs, ws)?;
        Ok(vec![(
            "pred",
            OutputValue::Float(ws.pred.clone().into_dyn()),
        )])
    }
}

/// [`Linear`] with the bias gradient missing the factor 2 of the square's derivative.
pub struct WrongBias;

impl Model for WrongBias {
    type Float = f64;
    type Params = Params;
    type Grads = Grads;
    type Inputs<'a> = Inputs<'a>;
    type Workspace = Workspace;

    fn signature() -> &'static Signature {
        Linear::signature()
    }
    fn init_params<R: Rng + ?Sized>(rng: &mut R) -> Params {
        Linear::init_params(rng)
    }
    fn zero_grads(inputs: &Inputs<'_>) -> Grads {
        Linear::zero_grads(inputs)
    }
    fn bind_inputs(named: &NamedInputs<f64>) -> Result<Inputs<'_>, ShapeError> {
        Linear::bind_inputs(named)
    }
    fn workspace(inputs: &Inputs<'_>) -> Workspace {
        Linear::workspace(inputs)
    }
    fn loss(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<f64, ShapeError> {
        Linear::loss(params, inputs, ws)
    }
    fn loss_and_grad(
        params: &Params,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
        grads: &mut Grads,
    ) -> Result<f64, ShapeError> {
        let loss = Linear::loss_and_grad(params, inputs, ws, grads)?;
        grads.b *= 0.5;
        Ok(loss)
    }
    fn outputs(
        params: &Params,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
    ) -> Result<Vec<(&'static str, OutputValue<f64>)>, ShapeError> {
        Linear::outputs(params, inputs, ws)
    }
}
