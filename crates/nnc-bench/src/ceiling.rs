//! The matmul ceiling: GFLOP/s of one matrix product on a workload's largest shape,
//! through `nnc_runtime::linalg::matmul` (the `gemm` crate: what generated code
//! calls) and through ndarray's `general_mat_mul` (matrixmultiply: what the
//! hand-written baselines call).
//!
//! Operands are row-major, standard normal, and the product overwrites its
//! destination (`beta = 0`), as in a forward layer.

use crate::BenchFloat;
use crate::workload::Matmul;
use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// Which matmul routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routine {
    /// `nnc_runtime::linalg::matmul` (the `gemm` crate).
    Runtime,
    /// `ndarray::linalg::general_mat_mul` (matrixmultiply).
    Ndarray,
}

impl Routine {
    pub fn label(self) -> &'static str {
        match self {
            Routine::Runtime => "nnc_runtime::linalg::matmul",
            Routine::Ndarray => "ndarray general_mat_mul",
        }
    }
}

/// One matrix product of a fixed shape, ready to be timed: [`MatmulBench::call`].
pub struct MatmulBench<F> {
    routine: Routine,
    a: Array2<F>,
    b: Array2<F>,
    c: Array2<F>,
}

impl<F: BenchFloat> MatmulBench<F> {
    /// Standard normal operands of the shape's sizes.
    pub fn new(shape: Matmul, routine: Routine) -> Self {
        let mut rng = StdRng::seed_from_u64(7);
        let mut random = |rows, cols| {
            Array2::<F>::from_shape_simple_fn((rows, cols), || {
                let z: f64 = StandardNormal.sample(&mut rng);
                F::from_f64(z).unwrap_or_else(F::nan)
            })
        };
        MatmulBench {
            routine,
            a: random(shape.m, shape.k),
            b: random(shape.k, shape.n),
            c: Array2::zeros((shape.m, shape.n)),
        }
    }

    /// `c = a @ b`; returns an element of `c`, so the product is not optimised away.
    pub fn call(&mut self) -> f64 {
        match self.routine {
            Routine::Runtime => {
                nnc_runtime::linalg::matmul(self.a.view(), self.b.view(), self.c.view_mut(), false)
            }
            Routine::Ndarray => general_mat_mul(F::one(), &self.a, &self.b, F::zero(), &mut self.c),
        }
        self.c[[0, 0]].to_f64().unwrap_or(f64::NAN)
    }
}
