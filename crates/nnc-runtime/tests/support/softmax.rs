//! A hand-written `softmax` classifier, as nnc would generate it from:
//!
//! ```text
//! model softmax {
//!     dim N;
//!     dim D = 4, C = 3;
//!     input x: [N, D];
//!     input labels: index[N];
//!     param w: [D, C] = normal(0, 0.01);
//!     param b: [C] = zeros;
//!     let s = x @ w + b;
//!     output class = argmax(s, axis = 1);
//!     loss softmax_cross_entropy(s, labels);   // mean over N
//! }
//! ```
//!
//! `f32`, the language's default dtype.

use nnc_runtime::init::{Init, fill};
use nnc_runtime::ndarray::linalg::general_mat_mul;
use nnc_runtime::ndarray::{Array1, Array2, ArrayView1, ArrayView2, ArrayViewD, ArrayViewMutD};
use nnc_runtime::rand::Rng;
use nnc_runtime::{
    DimSpec, Model, NamedInputs, OutputValue, ShapeError, Signature, TensorInfo, TensorKind,
    TensorSet,
};

use super::{check_dim, find, matrix, reject_unknown, vector};

pub const D: usize = 4;
pub const C: usize = 3;

const N_D: &[DimSpec] = &[DimSpec::Runtime("N"), DimSpec::Fixed(D)];
const N_: &[DimSpec] = &[DimSpec::Runtime("N")];
const D_C: &[DimSpec] = &[DimSpec::Fixed(D), DimSpec::Fixed(C)];
const C_: &[DimSpec] = &[DimSpec::Fixed(C)];

static SIGNATURE: Signature = Signature {
    model: "softmax",
    inputs: &[
        TensorInfo {
            name: "x",
            kind: TensorKind::Float,
            shape: N_D,
        },
        TensorInfo {
            name: "labels",
            kind: TensorKind::Index,
            shape: N_,
        },
    ],
    params: &[
        TensorInfo {
            name: "w",
            kind: TensorKind::Float,
            shape: D_C,
        },
        TensorInfo {
            name: "b",
            kind: TensorKind::Float,
            shape: C_,
        },
    ],
    outputs: &[TensorInfo {
        name: "class",
        kind: TensorKind::Index,
        shape: N_,
    }],
    grads: &[
        TensorInfo {
            name: "w",
            kind: TensorKind::Float,
            shape: D_C,
        },
        TensorInfo {
            name: "b",
            kind: TensorKind::Float,
            shape: C_,
        },
    ],
};

/// The model.
pub struct Softmax;

#[derive(Clone, Debug, PartialEq)]
pub struct Params {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Grads {
    pub w: Array2<f32>,
    pub b: Array1<f32>,
}

pub struct Inputs<'a> {
    pub x: ArrayView2<'a, f32>,
    pub labels: ArrayView1<'a, usize>,
    pub n: usize,
}

pub struct Workspace {
    n: usize,
    /// Scores, then (in `loss_and_grad`) their gradient.
    scores: Array2<f32>,
}

impl TensorSet<f32> for Params {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f32>)> {
        vec![
            ("w", self.w.view().into_dyn()),
            ("b", self.b.view().into_dyn()),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, f32>)> {
        vec![
            ("w", self.w.view_mut().into_dyn()),
            ("b", self.b.view_mut().into_dyn()),
        ]
    }
}

impl TensorSet<f32> for Grads {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f32>)> {
        vec![
            ("w", self.w.view().into_dyn()),
            ("b", self.b.view().into_dyn()),
        ]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, f32>)> {
        vec![
            ("w", self.w.view_mut().into_dyn()),
            ("b", self.b.view_mut().into_dyn()),
        ]
    }
}

/// `scores = x @ w + b`.
fn forward(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<(), ShapeError> {
    check_dim("x", 0, "N", ws.n, inputs.n)?;
    general_mat_mul(1.0, &inputs.x, &params.w, 0.0, &mut ws.scores);
    ws.scores += &params.b;
    Ok(())
}

/// `log(sum(exp(row)))`, shifted by the row's maximum for stability.
fn logsumexp(row: ArrayView1<'_, f32>) -> f32 {
    let max = row.fold(f32::NEG_INFINITY, |m, &s| m.max(s));
    max + row.iter().map(|&s| (s - max).exp()).sum::<f32>().ln()
}

/// Mean cross-entropy of the scores in the workspace.
fn cross_entropy(inputs: &Inputs<'_>, ws: &Workspace) -> f32 {
    let total: f32 = ws
        .scores
        .rows()
        .into_iter()
        .zip(inputs.labels)
        .map(|(row, &l)| logsumexp(row) - row[l])
        .sum();
    total / inputs.n as f32
}

impl Model for Softmax {
    type Float = f32;
    type Params = Params;
    type Grads = Grads;
    type Inputs<'a> = Inputs<'a>;
    type Workspace = Workspace;

    fn signature() -> &'static Signature {
        &SIGNATURE
    }

    fn init_params<R: Rng + ?Sized>(rng: &mut R) -> Params {
        let mut w = Array2::zeros((D, C));
        fill(
            &mut w.view_mut().into_dyn(),
            Init::Normal {
                mean: 0.0,
                std: 0.01,
            },
            rng,
        );
        let mut b = Array1::zeros(C);
        fill(&mut b.view_mut().into_dyn(), Init::Zeros, rng);
        Params { w, b }
    }

    fn zero_grads(_inputs: &Inputs<'_>) -> Grads {
        Grads {
            w: Array2::zeros((D, C)),
            b: Array1::zeros(C),
        }
    }

    fn bind_inputs(named: &NamedInputs<f32>) -> Result<Inputs<'_>, ShapeError> {
        reject_unknown(SIGNATURE.model, &named.floats, &["x"])?;
        reject_unknown(SIGNATURE.model, &named.indices, &["labels"])?;
        let x = matrix("x", find(&named.floats, "x")?)?;
        let labels = vector("labels", find(&named.indices, "labels")?)?;
        let n = x.nrows();
        check_dim("x", 1, "D", D, x.ncols())?;
        check_dim("labels", 0, "N", n, labels.len())?;
        if let Some((position, &value)) = labels.iter().enumerate().find(|(_, l)| **l >= C) {
            let input = "labels".to_string();
            return Err(ShapeError::IndexOutOfRange {
                input,
                position,
                value,
                dim: "C".into(),
                bound: C,
            });
        }
        Ok(Inputs { x, labels, n })
    }

    fn workspace(inputs: &Inputs<'_>) -> Workspace {
        Workspace {
            n: inputs.n,
            scores: Array2::zeros((inputs.n, C)),
        }
    }

    fn loss(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<f32, ShapeError> {
        forward(params, inputs, ws)?;
        Ok(cross_entropy(inputs, ws))
    }

    fn loss_and_grad(
        params: &Params,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
        grads: &mut Grads,
    ) -> Result<f32, ShapeError> {
        forward(params, inputs, ws)?;
        let loss = cross_entropy(inputs, ws);
        // d loss / d scores = (softmax(scores) - one_hot(labels)) / N, in place.
        let inv_n = 1.0 / inputs.n as f32;
        for (mut row, &l) in ws.scores.rows_mut().into_iter().zip(inputs.labels) {
            let lse = logsumexp(row.view());
            row.mapv_inplace(|s| (s - lse).exp() * inv_n);
            row[l] -= inv_n;
        }
        general_mat_mul(1.0, &inputs.x.t(), &ws.scores, 0.0, &mut grads.w);
        grads.b.fill(0.0);
        for row in ws.scores.rows() {
            grads.b += &row;
        }
        Ok(loss)
    }

    fn outputs(
        params: &Params,
        inputs: &Inputs<'_>,
        ws: &mut Workspace,
    ) -> Result<Vec<(&'static str, OutputValue<f32>)>, ShapeError> {
        forward(params, inputs, ws)?;
        let argmax = |row: ArrayView1<'_, f32>| {
            // First index of the maximum, as the contract's tie rule says.
            row.iter()
                .enumerate()
                .fold(0, |best, (j, &s)| if s > row[best] { j } else { best })
        };
        let class: Array1<usize> = ws.scores.rows().into_iter().map(argmax).collect();
        Ok(vec![("class", OutputValue::Index(class.into_dyn()))])
    }
}
