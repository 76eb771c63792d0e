//! # nnc-runtime: what generated models stand on
//!
//! Every model that nnc compiles (by `nnc compile` or `net!`) becomes a module whose
//! code depends only on this crate (through the `nnc` facade). The central item is the
//! [`Model`] trait: by-name access to a model's parameters, inputs, outputs and
//! gradients, so generic code — npz I/O, gradient checking, optimisers, training
//! loops — works on any compiled model.
//!
//! ## What the crate gives
//!
//! | module | for | key items |
//! |---|---|---|
//! | [`model`] | the contract generated code implements | [`Model`], [`TensorSet`], [`Signature`], [`NamedInputs`] |
//! | [`init`] | parameter initialisers, called by generated `init_params` | [`init::Init`], [`init::fill`] |
//! | [`npz`] | parameters, inputs and results as `.npz` files, by name | [`npz::load_params`], [`npz::load_inputs`], [`npz::NpzReader`], [`npz::NpzBundle`] |
//! | [`atomic`] | files written all or nothing (npz files, the CLI's outputs) | [`atomic::write_atomically`], [`atomic::commit_all`] |
//! | [`gradcheck`] | finite-difference checks of `loss_and_grad` | [`gradcheck::check_gradients`] |
//! | [`linalg`] | matrix products on views of any strides, packing into caller-owned scratch | [`linalg::matmul`], [`linalg::GemmScratch`] |
//! | [`optim`] | SGD, momentum, Adam over any parameter/gradient sets | [`optim::Optimizer`] |
//! | [`support`] | helpers generated code calls (stable scalar functions, input checks) | |
//! | [`data`] | shuffled minibatches, batch buffers, preprocessing | [`data::Minibatches`], [`data::BatchInputs`], [`data::Normalise`] |
//!
//! A training loop, written once for every model (`tests/contract.rs` runs this loop
//! on hand-written models):
//!
//! ```
//! use std::error::Error;
//! use std::path::Path;
//! use nnc_runtime::data::{BatchConfig, BatchInputs, Minibatches};
//! use nnc_runtime::optim::{Adam, AdamConfig, Optimizer};
//! use nnc_runtime::rand::{SeedableRng, rngs::StdRng};
//! use nnc_runtime::{Model, NamedInputs, npz};
//!
//! fn train<M: Model>(path: &Path, samples: usize, epochs: usize) -> Result<M::Params, Box<dyn Error>> {
//!     let data: NamedInputs<M::Float> = npz::load_inputs(path, M::signature())?;
//!     let mut params = M::init_params(&mut StdRng::seed_from_u64(0));
//!     let mut opt = Adam::new(&params, AdamConfig::default());
//!     let config = BatchConfig { batch_size: 64, seed: 0, drop_last: true };
//!     let mut batches = Minibatches::new(samples, config)?;
//!     let mut buffers = BatchInputs::new(&data, config.batch_size)?;
//!     // Size the workspace and gradients once, from a first batch.
//!     let first: Vec<usize> = (0..config.batch_size).collect();
//!     let (mut ws, mut grads) = {
//!         let inputs = M::bind_inputs(buffers.gather(&data, &first)?)?;
//!         (M::workspace(&inputs), M::zero_grads(&inputs))
//!     };
//!     for _ in 0..epochs {
//!         for rows in batches.epoch() {
//!             let inputs = M::bind_inputs(buffers.gather(&data, rows)?)?;
//!             let _loss = M::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
//!             opt.step(&mut params, &grads)?;
//!         }
//!     }
//!     Ok(params)
//! }
//! ```
//!
//! ## Invariants
//!
//! - **Declaration order.** `Params::tensors()` and `Grads::tensors()` list the
//!   parameters in the order the model declares them, and `Grads` then appends the
//!   `grad`-marked inputs, named after the input. Optimisers zip parameters with the
//!   leading gradients by position, and check names and shapes as they do.
//! - **No allocation in a step.** Once its buffers exist, nothing here allocates a
//!   tensor inside a training step: optimiser state is allocated at construction,
//!   batch buffers by [`data::BatchInputs`] on first use. (The only per-step heap use
//!   is the short `Vec`s of views that [`TensorSet`] hands out; `tests/allocations.rs`
//!   measures this.)
//! - **Errors, not panics.** Everything that takes user data returns a `Result` whose
//!   error names the array, input or parameter concerned; one error type per module.
//! - **Files are all or nothing.** npz files are written to a temporary file and renamed
//!   into place; loading checks everything before changing anything.
//! - **Reproducible randomness.** Every random choice (initialisers, shuffling, sampled
//!   gradient checks) comes from a caller's RNG or an explicit seed.
//! - **Light by default.** PCA, the one piece needing a linear-algebra library, sits
//!   behind the `pca` cargo feature (nalgebra).

#![warn(missing_docs)]

#[cfg(feature = "npz")]
pub mod atomic;
mod cast;
pub mod data;
pub mod gradcheck;
pub mod init;
pub mod linalg;
pub mod math;
pub mod model;
#[cfg(feature = "npz")]
pub mod npz;
pub mod optim;
pub mod parallel;
pub mod support;
#[cfg(test)]
mod testing;

pub use model::{
    DimSpec, Float, Model, NamedInputs, OutputValue, Outputs, ShapeError, Signature, TensorInfo,
    TensorKind, TensorSet,
};

/// Re-exported so generated code and users need only this crate.
pub use ndarray;
pub use num_traits;
pub use rand;
pub use rand_distr;
