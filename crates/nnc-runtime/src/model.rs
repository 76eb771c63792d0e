//! The contract between generated code and generic code.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD};
use rand::Rng;
use std::fmt;

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
}
impl Float for f32 {}
impl Float for f64 {}

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
    Float,
    Index,
}

/// Name, kind and declared shape of one input, parameter, output or gradient.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TensorInfo {
    pub name: &'static str,
    pub kind: TensorKind,
    pub shape: &'static [DimSpec],
}

/// Everything a model declares, in declaration order.
#[derive(Clone, Copy, Debug)]
pub struct Signature {
    pub model: &'static str,
    pub inputs: &'static [TensorInfo],
    pub params: &'static [TensorInfo],
    pub outputs: &'static [TensorInfo],
    /// Params first, then `grad`-marked inputs (named after the input).
    pub grads: &'static [TensorInfo],
}

/// A runtime shape error: which input, which dim, and both sizes.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum ShapeError {
    #[error("input `{input}`: expected rank {expected}, got rank {actual}")]
    Rank { input: String, expected: usize, actual: usize },
    #[error("input `{input}`: axis {axis} (dim `{dim}`) has size {actual}, expected {expected}")]
    Dim { input: String, axis: usize, dim: String, expected: usize, actual: usize },
    #[error("input `{input}`: index {value} at position {position} is out of range for `{dim}` = {bound}")]
    IndexOutOfRange { input: String, position: usize, value: usize, dim: String, bound: usize },
    #[error("missing input `{input}`")]
    Missing { input: String },
    #[error("`{name}` is not an input of model `{model}`")]
    Unexpected { model: String, name: String },
}

/// By-name access to a set of tensors (parameters or gradients), in declaration order.
pub trait TensorSet<F> {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, F>)>;
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, F>)>;
}

/// Inputs given by name, as generic code (npz files, gradient checks) holds them.
#[derive(Clone, Debug, Default)]
pub struct NamedInputs<F> {
    pub floats: Vec<(String, ArrayD<F>)>,
    pub indices: Vec<(String, ArrayD<usize>)>,
}

/// Implemented by every generated model module's unit struct.
pub trait Model {
    type Float: Float;
    type Params: TensorSet<Self::Float> + Clone;
    type Grads: TensorSet<Self::Float>;
    type Inputs<'a>;
    type Workspace;

    fn signature() -> &'static Signature;
    /// Parameters drawn from their declared initialisers.
    fn init_params<R: Rng + ?Sized>(rng: &mut R) -> Self::Params;
    /// Zeroed gradients, shaped like the parameters (and `grad` inputs, whose shapes
    /// may depend on runtime dims, hence the inputs).
    fn zero_grads(inputs: &Self::Inputs<'_>) -> Self::Grads;
    /// Borrow inputs by name, checking ranks, dims and index ranges.
    fn bind_inputs(named: &NamedInputs<Self::Float>) -> Result<Self::Inputs<'_>, ShapeError>;
    /// Buffers sized for the runtime dims of `inputs`.
    fn workspace(inputs: &Self::Inputs<'_>) -> Self::Workspace;
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
    /// Outputs by name, in declaration order, after a forward pass.
    fn outputs(
        params: &Self::Params,
        inputs: &Self::Inputs<'_>,
        ws: &mut Self::Workspace,
    ) -> Result<Vec<(&'static str, OutputValue<Self::Float>)>, ShapeError>;
}

/// An output value: floats, or indices (from `argmax`).
#[derive(Clone, Debug, PartialEq)]
pub enum OutputValue<F> {
    Float(ArrayD<F>),
    Index(ArrayD<usize>),
}
