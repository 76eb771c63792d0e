//! # nnc-runtime: what generated models stand on
//!
//! Every model that nnc compiles (by `nnc compile` or `net!`) becomes a module whose
//! code depends only on this crate (through the `nnc` facade). The central item is the
//! [`Model`] trait: by-name access to a model's parameters, inputs, outputs and
//! gradients, so generic code — npz I/O, gradient checking, optimisers, training
//! loops — works on any compiled model.
//!
//! Invariants:
//! - Tensor order is declaration order everywhere: `Params::tensors()` and
//!   `Grads::tensors()` list the parameters in the order the model declares them, and
//!   `Grads` then appends the `grad`-marked inputs. Optimisers rely on this to zip
//!   parameters with gradients.
//! - Nothing here allocates inside a training step once its buffers exist (optimiser
//!   state is allocated at construction).

pub mod model;

pub use model::{NamedInputs, OutputValue, DimSpec, Float, Model, ShapeError, Signature, TensorInfo, TensorKind, TensorSet};

/// Re-exported so generated code and users need only this crate.
pub use ndarray;
pub use rand;
