//! The contract between generated code and generic code.
//!
//! A generated model module holds a unit struct implementing [`Model`], with its own
//! `Params`, `Grads`, `Inputs<'a>` and `Workspace` types. `tests/support/` in this
//! crate holds hand-written implementations in that shape: the reference for codegen.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use rand::Rng;
use std::fmt;

use crate::parallel::Threads;

/// The float types a model may be compiled for (`dtype f32;` or `dtype f64;`).
pub trait Float:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::ScalarOperand
    + ndarray::LinalgScalar
    + ndarray_npy::WritableElement
    + ndarray_npy::ReadableElement
    + fmt::Debug
    + fmt::Display
    + Default
    + Send
    + Sync
    + 'static
{
    /// `e^self` computed inline, without a libm call, so that a loop calling it
    /// vectorises ([`crate::math`]; within an ulp of `exp`).
    fn exp_inline(self) -> Self;
}
impl Float for f32 {
    #[inline]
    fn exp_inline(self) -> f32 {
        crate::math::exp_f32(self)
    }
}
impl Float for f64 {
    #[inline]
    fn exp_inline(self) -> f64 {
        crate::math::exp_f64(self)
    }
}

/// One dimension of a declared shape.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum DimSpec {
    /// Fixed at compile time (`dim D = 1000;` or a literal).
    Fixed(usize),
    /// Bound at run time from the inputs (`dim N;`).
    Runtime(&'static str),
}

/// Whether a tensor holds floats or class indices (`index[N]`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum TensorKind {
    /// A tensor of the model's float type.
    Float,
    /// A tensor of class indices (`usize`).
    Index,
}

/// Name, kind and declared shape of one input, parameter, output or gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    /// The name in the `.nn` source.
    pub name: &'static str,
    pub kind: TensorKind,
    /// The declared shape, one entry per axis (empty for a scalar).
    pub shape: &'static [DimSpec],
}

/// Everything a model declares, in declaration order.
#[derive(Clone, Copy, Debug)]
pub struct Signature {
    /// The model's name.
    pub model: &'static str,
    /// Inputs, in declaration order.
    pub inputs: &'static [TensorInfo],
    /// Parameters, in declaration order.
    pub params: &'static [TensorInfo],
    /// Outputs, in declaration order.
    pub outputs: &'static [TensorInfo],
    /// Params first, then `grad`-marked inputs (named after the input).
    pub grads: &'static [TensorInfo],
}

/// A runtime shape error: which input (or parameter), which dim, and both sizes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    /// An input has the wrong number of axes.
    #[error("input `{input}`: expected rank {expected}, got rank {actual}")]
    Rank {
        input: String,
        expected: usize,
        actual: usize,
    },
    /// An axis disagrees with a fixed dim, or with the size another input bound a
    /// runtime dim to.
    #[error("input `{input}`: axis {axis} (dim `{dim}`) has size {actual}, expected {expected}")]
    Dim {
        input: String,
        axis: usize,
        dim: String,
        expected: usize,
        actual: usize,
    },
    /// An index input holds a value outside `0..bound`.
    #[error(
        "input `{input}`: index {value} at position {position} is out of range for `{dim}` = {bound}"
    )]
    IndexOutOfRange {
        input: String,
        position: usize,
        value: usize,
        dim: String,
        bound: usize,
    },
    /// A declared input was not given.
    #[error("missing input `{input}`")]
    Missing { input: String },
    /// A given input is not declared by the model.
    #[error("`{name}` is not an input of model `{model}`")]
    Unexpected { model: String, name: String },
    /// A parameter has the wrong number of axes.
    #[error("parameter `{param}`: expected rank {expected}, got rank {actual}")]
    ParamRank {
        param: String,
        expected: usize,
        actual: usize,
    },
    /// A parameter's axis disagrees with its declared dim.
    #[error(
        "parameter `{param}`: axis {axis} (dim `{dim}`) has size {actual}, expected {expected}"
    )]
    ParamDim {
        param: String,
        axis: usize,
        dim: String,
        expected: usize,
        actual: usize,
    },
    /// The sizes the inputs give would make a value larger than any buffer can be
    /// ([`crate::support::MAX_ELEMENTS`]): the input and axis that set the runtime
    /// dim, its size, and the value's declared shape with its element count (`None`:
    /// more than can be counted).
    #[error(
        "input `{input}`: axis {axis} (dim `{dim}`) has size {size}, which makes values of shape \
         {shape} hold {}, more than the limit of {limit}",
        match .elements { Some(n) => format!("{n} elements"), None => "more elements than can be counted".to_string() }
    )]
    TooLarge {
        input: String,
        axis: usize,
        dim: String,
        size: usize,
        shape: String,
        elements: Option<usize>,
        limit: usize,
    },
}

/// By-name access to a set of tensors (parameters or gradients), in declaration order.
///
/// Implemented by a model's `Params` and `Grads`. Both methods list every tensor, in the
/// same order, with the same names, every time.
pub trait TensorSet<F> {
    /// Every tensor, read-only.
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, F>)>;
    /// Every tensor, writable.
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, F>)>;
}

/// Inputs given by name, as generic code (npz files, gradient checks) holds them.
#[derive(Clone, Debug, Default)]
pub struct NamedInputs<F> {
    /// Float inputs by name.
    pub floats: Vec<(String, ArrayD<F>)>,
    /// Index inputs by name.
    pub indices: Vec<(String, ArrayD<usize>)>,
}

/// A model's outputs by name, in declaration order (what [`Model::outputs`] returns).
pub type Outputs<F> = Vec<(&'static str, OutputValue<F>)>;

/// Implemented by every generated model module's unit struct.
pub trait Model {
    /// The model's `dtype`.
    type Float: Float;
    /// The parameters, by name in declaration order.
    type Params: TensorSet<Self::Float> + Clone;
    /// Gradients of the parameters, then of the `grad`-marked inputs.
    type Grads: TensorSet<Self::Float>;
    /// Inputs borrowed from their owner (typed views, with the runtime dims bound).
    type Inputs<'a>;
    /// Buffers for the intermediate values of one set of runtime dims.
    type Workspace;

    /// Names, kinds and shapes of everything the model declares.
    fn signature() -> &'static Signature;
    /// Parameters drawn from their declared initialisers.
    fn init_params<R: Rng + ?Sized>(rng: &mut R) -> Self::Params;
    /// Zeroed gradients, shaped like the parameters (and `grad` inputs, whose shapes
    /// may depend on runtime dims, hence the inputs).
    fn zero_grads(inputs: &Self::Inputs<'_>) -> Self::Grads;
    /// Borrow inputs by name, checking ranks, dims and index ranges.
    fn bind_inputs(named: &NamedInputs<Self::Float>) -> Result<Self::Inputs<'_>, ShapeError>;
    /// Buffers sized for the runtime dims of `inputs`; calls run on the shared
    /// threads ([`Threads::shared`]).
    fn workspace(inputs: &Self::Inputs<'_>) -> Self::Workspace;
    /// [`Model::workspace`] whose calls run on `threads`. Generated models give the
    /// same results, bit for bit, for every thread count. (The default, for
    /// single-threaded implementations, ignores `threads`.)
    fn workspace_on(inputs: &Self::Inputs<'_>, threads: Threads) -> Self::Workspace {
        let _ = threads;
        Self::workspace(inputs)
    }
    /// The loss at `params` and `inputs`.
    fn loss(
        params: &Self::Params,
        inputs: &Self::Inputs<'_>,
        ws: &mut Self::Workspace,
    ) -> Result<Self::Float, ShapeError>;
    /// Loss, and gradients written into `grads` (overwritten, not accumulated).
    fn loss_and_grad(
        params: &Self::Params,
        inputs: &Self::Inputs<'_>,
        ws: &mut Self::Workspace,
        grads: &mut Self::Grads,
    ) -> Result<Self::Float, ShapeError>;
    /// One step of gradient descent: [`Model::loss_and_grad`], then
    /// `p -= lr * d_p` for every parameter. Returns the loss before the step.
    /// Generated models update in place on the workspace's threads, allocating
    /// nothing; this default goes through [`TensorSet`].
    fn sgd_step(
        params: &mut Self::Params,
        inputs: &Self::Inputs<'_>,
        ws: &mut Self::Workspace,
        grads: &mut Self::Grads,
        lr: Self::Float,
    ) -> Result<Self::Float, ShapeError> {
        let loss = Self::loss_and_grad(params, inputs, ws, grads)?;
        for ((_, mut p), (_, g)) in params.tensors_mut().into_iter().zip(grads.tensors()) {
            p.zip_mut_with(&g, |x, d| *x = *x - lr * *d);
        }
        Ok(loss)
    }
    /// Outputs by name, in declaration order, after a forward pass.
    ///
    /// Written with the [`Outputs`] alias only to satisfy clippy's type-complexity
    /// lint; the type is unchanged, so implementations may spell it out in full.
    fn outputs(
        params: &Self::Params,
        inputs: &Self::Inputs<'_>,
        ws: &mut Self::Workspace,
    ) -> Result<Outputs<Self::Float>, ShapeError>;
}

/// An output value: floats, or indices (from `argmax`).
#[derive(Clone, Debug, PartialEq)]
pub enum OutputValue<F> {
    Float(ArrayD<F>),
    Index(ArrayD<usize>),
}
