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
    + NpyElement
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

    /// `param[i] = param[i] - lr * grad[i]` for every `i` of `param` (`grad` at
    /// least as long). Not generic and not inlined, so it is compiled here, in the
    /// runtime, whatever the caller's crate is compiled with: a user's debug build
    /// with optimised dependencies (README, "Debug builds") runs the parameter
    /// update optimised, where a generic loop would run at the user's opt-level 0
    /// (measured on the README's `two_layer`: 40% of a debug step).
    fn sub_scaled(param: &mut [Self], grad: &[Self], lr: Self);
}

/// The loop of [`Float::sub_scaled`], instantiated by each float type's impl.
fn sub_scaled<F: num_traits::Float>(param: &mut [F], grad: &[F], lr: F) {
    for (x, d) in param.iter_mut().zip(grad) {
        *x = *x - lr * *d;
    }
}

impl Float for f32 {
    #[inline]
    fn exp_inline(self) -> f32 {
        crate::math::exp_f32(self)
    }

    fn sub_scaled(param: &mut [f32], grad: &[f32], lr: f32) {
        sub_scaled(param, grad, lr)
    }
}
impl Float for f64 {
    #[inline]
    fn exp_inline(self) -> f64 {
        crate::math::exp_f64(self)
    }

    fn sub_scaled(param: &mut [f64], grad: &[f64], lr: f64) {
        sub_scaled(param, grad, lr)
    }
}

/// What `.npy` files need of an element type, with the `npz` feature; nothing
/// without it. (A supertrait of [`Float`], so that generic code over `F: Float`
/// reads and writes npz files whenever the feature is on.)
#[cfg(feature = "npz")]
pub trait NpyElement: ndarray_npy::WritableElement + ndarray_npy::ReadableElement {}
#[cfg(feature = "npz")]
impl<T: ndarray_npy::WritableElement + ndarray_npy::ReadableElement> NpyElement for T {}
/// What `.npy` files need of an element type, with the `npz` feature; nothing
/// without it.
#[cfg(not(feature = "npz"))]
pub trait NpyElement {}
#[cfg(not(feature = "npz"))]
impl<T> NpyElement for T {}

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
    /// Whether it holds floats or class indices.
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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ShapeError {
    /// An input has the wrong number of axes.
    Rank {
        /// The input's name.
        input: String,
        /// The declared rank.
        expected: usize,
        /// The rank of the array given.
        actual: usize,
    },
    /// An axis disagrees with a fixed dim, or with the size another input bound a
    /// runtime dim to.
    Dim {
        /// The input's name.
        input: String,
        /// The axis (from 0).
        axis: usize,
        /// The dim declared for that axis, as written in the source (`N`, `D`, `10`).
        dim: String,
        /// The size the dim has: fixed, or bound by an earlier input.
        expected: usize,
        /// The size of the axis given.
        actual: usize,
    },
    /// An index input holds a value outside `0..bound`.
    IndexOutOfRange {
        /// The input's name.
        input: String,
        /// The element's position in the input, counted in row-major order.
        position: usize,
        /// The index found there.
        value: usize,
        /// The dim the indices range over (the number of classes).
        dim: String,
        /// The size of that dim: every index must be below it.
        bound: usize,
    },
    /// A declared input was not given.
    Missing {
        /// The input's name.
        input: String,
    },
    /// A given input is not declared by the model.
    Unexpected {
        /// The model's name.
        model: String,
        /// The name the array was given under.
        name: String,
    },
    /// A parameter has the wrong number of axes.
    ParamRank {
        /// The parameter's name.
        param: String,
        /// The declared rank.
        expected: usize,
        /// The rank of the array given.
        actual: usize,
    },
    /// A parameter's axis disagrees with its declared dim.
    ParamDim {
        /// The parameter's name.
        param: String,
        /// The axis (from 0).
        axis: usize,
        /// The dim declared for that axis, as written in the source.
        dim: String,
        /// The size the dim has.
        expected: usize,
        /// The size of the axis given.
        actual: usize,
    },
    /// The sizes the inputs give would make a value larger than any buffer can be
    /// ([`crate::support::MAX_ELEMENTS`]): the input and axis that set the runtime
    /// dim, its size, and the value's declared shape with its element count (`None`:
    /// more than can be counted).
    TooLarge {
        /// The input the runtime dim is read from.
        input: String,
        /// The axis of that input (from 0).
        axis: usize,
        /// The runtime dim's name.
        dim: String,
        /// The size the input gives the dim.
        size: usize,
        /// The declared shape of the value that is too large, e.g. `[N, 100]`.
        shape: String,
        /// The number of elements that value would hold (`None`: it overflows `usize`).
        elements: Option<usize>,
        /// The most elements a buffer may hold ([`crate::support::MAX_ELEMENTS`]).
        limit: usize,
    },
}

impl std::fmt::Display for ShapeError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            ShapeError::Rank {
                input,
                expected,
                actual,
            } => write!(
                f,
                "input `{input}`: expected rank {expected}, got rank {actual}"
            ),
            ShapeError::Dim {
                input,
                axis,
                dim,
                expected,
                actual,
            } => write!(
                f,
                "input `{input}`: axis {axis} (dim `{dim}`) has size {actual}, expected {expected}"
            ),
            ShapeError::IndexOutOfRange {
                input,
                position,
                value,
                dim,
                bound,
            } => write!(
                f,
                "input `{input}`: index {value} at position {position} is out of range for `{dim}` = {bound}"
            ),
            ShapeError::Missing { input } => write!(f, "missing input `{input}`"),
            ShapeError::Unexpected { model, name } => {
                write!(f, "`{name}` is not an input of model `{model}`")
            }
            ShapeError::ParamRank {
                param,
                expected,
                actual,
            } => write!(
                f,
                "parameter `{param}`: expected rank {expected}, got rank {actual}"
            ),
            ShapeError::ParamDim {
                param,
                axis,
                dim,
                expected,
                actual,
            } => write!(
                f,
                "parameter `{param}`: axis {axis} (dim `{dim}`) has size {actual}, expected {expected}"
            ),
            ShapeError::TooLarge {
                input,
                axis,
                dim,
                size,
                shape,
                elements,
                limit,
            } => write!(
                f,
                "input `{input}`: axis {axis} (dim `{dim}`) has size {size}, which makes \
                 values of shape {shape} hold {}, more than the limit of {limit}",
                match elements {
                    Some(n) => format!("{n} elements"),
                    None => "more elements than can be counted".to_string(),
                }
            ),
        }
    }
}

impl std::error::Error for ShapeError {}

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

/// A set borrowed mutably is the set: `(&mut params, &mut state)` below.
impl<F, T: TensorSet<F> + ?Sized> TensorSet<F> for &mut T {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, F>)> {
        (**self).tensors()
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, F>)> {
        (**self).tensors_mut()
    }
}

/// Two sets as one, the first's tensors then the second's: a model's parameters and
/// its `State`, saved to and loaded from one npz file
/// (`npz::load_tensors_into(path, &mut (&mut params, &mut state))`), as `nnc run
/// --save-params` writes them.
impl<F, A: TensorSet<F>, B: TensorSet<F>> TensorSet<F> for (A, B) {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, F>)> {
        let mut all = self.0.tensors();
        all.extend(self.1.tensors());
        all
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, F>)> {
        let mut all = self.0.tensors_mut();
        all.extend(self.1.tensors_mut());
        all
    }
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
    /// An output of the model's float type.
    Float(ArrayD<F>),
    /// An output of class indices (from `argmax`).
    Index(ArrayD<usize>),
}
