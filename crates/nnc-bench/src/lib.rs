//! # nnc-bench: what a training step costs, against what it could cost
//!
//! The harness behind `BENCHMARKS.md` (GitHub issue #5). For each workload of
//! `spec/workloads.md` (W1–W4, [`workload::Workload`]) it times one training step —
//! forward, backward and the parameter update — of several implementations, **in the
//! same run**, single-threaded:
//!
//! | implementation | what it is | module |
//! |---|---|---|
//! | hand-written ndarray | what a careful Rust programmer writes without nnc: preallocated buffers, `general_mat_mul` (transposes as `.t()` views), `Zip`/loops for the elementwise work, the update in place | [`baseline`] |
//! | IR interpreter | `nnc_ir::interp::evaluate` on the model with its derived backward pass, then the update | [`interp`] |
//! | generated code | a compiled model's `loss_and_grad` and an SGD update, through the [`nnc_runtime::Model`] trait | [`generated`] |
//! | matmul ceiling | `nnc_runtime::linalg::matmul` (the GEMM generated code calls) and ndarray's `general_mat_mul` on the workload's largest matmul shape | [`ceiling`] |
//!
//! The machines are shared and noisy, so what the table reports are **ratios within
//! one run** and GFLOP/s against the matmul ceiling, from **medians** of repeated
//! timings ([`timing`]). FLOPs per step count the matmuls only, `2 m n k` each, forward
//! and backward ([`workload::Workload::matmuls`]).
//!
//! ## Invariants
//!
//! - **Same computation.** Every implementation starts from the same
//!   [`workload::Problem`] (data and initial parameters from one seed). The baselines
//!   are tested against the interpreter — loss and every gradient, over two steps —
//!   in `tests/against_interpreter.rs`, so a fast baseline is a correct one; the
//!   benchmark binary also checks every implementation's first loss against the
//!   baseline's before it prints a time.
//! - **What is timed.** Data generation, buffer allocation and one warm-up step are
//!   not; everything a training step does after that is.
//! - **One thread.** Nothing here starts threads; `gemm` is called with
//!   `Parallelism::None` and ndarray's matrixmultiply without its threading feature.

pub mod baseline;
pub mod ceiling;
pub mod generated;
pub mod interp;
pub mod peak;
pub mod regions;
pub mod report;
pub mod timing;
pub mod workload;

use ndarray::ArrayViewD;

/// The float types the harness runs: what both the runtime and the interpreter take.
pub trait BenchFloat: nnc_runtime::Float + nnc_ir::interp::Scalar {}
impl<T: nnc_runtime::Float + nnc_ir::interp::Scalar> BenchFloat for T {}

/// Tensors by name, in the model's declaration order.
pub type Named<'a, F> = Vec<(&'a str, ArrayViewD<'a, F>)>;

/// One implementation of a workload's training step, holding its own parameters,
/// data and buffers.
pub trait Trainer<F> {
    /// The loss at the current parameters; leaves the gradients where
    /// [`Trainer::grads`] reads them.
    fn loss_and_grad(&mut self) -> F;
    /// `w -= lr * dw` for every parameter, from the last [`Trainer::loss_and_grad`].
    fn update(&mut self);
    /// The parameters, in declaration order.
    fn params(&self) -> Named<'_, F>;
    /// The gradients of the parameters from the last [`Trainer::loss_and_grad`], in
    /// declaration order.
    fn grads(&self) -> Named<'_, F>;

    /// One training step; returns the loss before the update.
    fn step(&mut self) -> F {
        let loss = self.loss_and_grad();
        self.update();
        loss
    }
}

/// How two implementations' results are compared (loss, gradients, parameters): the
/// runtime's one error formula, element by element, each relative to at least the
/// largest `|b|` (`b` the reference); infinite when the shapes differ or a value is not
/// finite. See [`nnc_runtime::gradcheck::max_relative_error`].
pub use nnc_runtime::gradcheck::max_relative_error as relative_error;
