//! The matmul ceiling: GFLOP/s of one matrix product on a workload's largest shape,
//! through `nnc_runtime::linalg::matmul` (what generated code calls), through
//! ndarray's `general_mat_mul` (matrixmultiply: what the hand-written baselines
//! call), and through the `gemm` crate (the fastest pure-Rust GEMM we know of, for
//! comparison).
//!
//! Operands are row-major, standard normal, and the product overwrites its
//! destination (`beta = 0`), as in a forward layer.

use crate::BenchFloat;
use crate::workload::Matmul;
use ndarray::Array2;
use ndarray::linalg::general_mat_mul;
use nnc_runtime::linalg::{GemmScratch, matmul};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand_distr::{Distribution, StandardNormal};

/// Which matmul routine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Routine {
    /// `nnc_runtime::linalg::matmul`, with its scratch reserved beforehand.
    Runtime,
    /// `ndarray::linalg::general_mat_mul` (matrixmultiply).
    Ndarray,
    /// `gemm::gemm`, single-threaded.
    GemmCrate,
}

impl Routine {
    pub fn label(self) -> &'static str {
        match self {
            Routine::Runtime => "nnc_runtime::linalg::matmul",
            Routine::Ndarray => "ndarray general_mat_mul",
            Routine::GemmCrate => "gemm crate",
        }
    }
}

/// One matrix product of a fixed shape, ready to be timed: [`MatmulBench::call`].
pub struct MatmulBench<F> {
    routine: Routine,
    a: Array2<F>,
    b: Array2<F>,
    c: Array2<F>,
    scratch: GemmScratch<F>,
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
        let mut scratch = GemmScratch::new();
        scratch.reserve(shape.m, shape.k, shape.n);
        MatmulBench {
            routine,
            a: random(shape.m, shape.k),
            b: random(shape.k, shape.n),
            c: Array2::zeros((shape.m, shape.n)),
            scratch,
        }
    }

    /// `c = a @ b`; returns an element of `c`, so the product is not optimised away.
    pub fn call(&mut self) -> f64 {
        match self.routine {
            Routine::Runtime => {
                let (a, b, c) = (self.a.view(), self.b.view(), self.c.view_mut());
                matmul(a, b, c, false, &mut self.scratch)
            }
            Routine::Ndarray => general_mat_mul(F::one(), &self.a, &self.b, F::zero(), &mut self.c),
            Routine::GemmCrate => gemm_crate(&self.a, &self.b, &mut self.c),
        }
        self.c[[0, 0]].to_f64().unwrap_or(f64::NAN)
    }
}

/// `c = a @ b` through the `gemm` crate, on the arrays' own strides.
fn gemm_crate<F: BenchFloat>(a: &Array2<F>, b: &Array2<F>, c: &mut Array2<F>) {
    let ((m, k), n) = (a.dim(), b.ncols());
    assert!(b.nrows() == k && c.dim() == (m, n), "gemm_crate: shapes");
    let (a_s, b_s) = (a.strides(), b.strides());
    let c_s = [c.strides()[0], c.strides()[1]];
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // SAFETY: the three arrays are valid for their shapes and strides, `c` is a
    // unique borrow, and the shapes agree (asserted above); `gemm` reads and writes
    // only the elements those strides address.
    unsafe {
        gemm::gemm(
            m,
            n,
            k,
            pc,
            c_s[1],
            c_s[0],
            false,
            pa,
            a_s[1],
            a_s[0],
            pb,
            b_s[1],
            b_s[0],
            F::zero(),
            F::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    }
}
