//! The matmul ceiling: GFLOP/s of one matrix product on a workload's largest shape,
//! through `nnc_runtime::linalg::matmul` (what generated code calls), through
//! ndarray's `general_mat_mul` (matrixmultiply: what the hand-written baselines
//! call), and through the `gemm` crate (the fastest pure-Rust GEMM we know of, for
//! comparison).
//!
//! Operands are standard normal, laid out as the training step has them: row-major,
//! or a `.t()` view of a row-major array where the product reads a transpose
//! (`d_w = h.T @ d_z`). The product overwrites its destination (`beta = 0`).
//!
//! `nnc-bench --products` times every product of a step this way, not just the
//! largest.

use crate::BenchFloat;
use crate::workload::Matmul;
use ndarray::linalg::general_mat_mul;
use ndarray::{Array2, ArrayView2};
use nnc_runtime::linalg::{GemmScratch, matmul};
use nnc_runtime::parallel::Threads;
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
    /// `a` is stored transposed (`[k, m]`) and read through `.t()`.
    a_transposed: bool,
    /// The operands: one set, or several used in turn ([`MatmulBench::cold`]).
    operands: Vec<(Array2<F>, Array2<F>, Array2<F>)>,
    /// The set the next call uses.
    next: usize,
    b_transposed: bool,
    scratch: GemmScratch<F>,
    /// The runtime's GEMM runs on these (one thread unless [`MatmulBench::on`]).
    threads: Threads,
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
        let (a_transposed, b_transposed) = transposes(shape.what);
        let mut stored = |rows, cols, transposed| {
            if transposed {
                random(cols, rows)
            } else {
                random(rows, cols)
            }
        };
        let a = stored(shape.m, shape.k, a_transposed);
        let b = stored(shape.k, shape.n, b_transposed);
        MatmulBench {
            routine,
            a_transposed,
            operands: vec![(a, b, Array2::zeros((shape.m, shape.n)))],
            next: 0,
            b_transposed,
            scratch,
            threads: Threads::one(),
        }
    }

    /// The same bench with its operands out of cache, as they are in a training
    /// step (each product's operands were last touched many products ago): calls
    /// cycle through copies that together take [`COLD_BYTES`].
    pub fn cold(mut self) -> Self {
        let (a, b, c) = self.operands[0].clone();
        let bytes = (a.len() + b.len() + c.len()) * std::mem::size_of::<F>();
        let copies = COLD_BYTES.div_ceil(bytes.max(1)).clamp(2, 256);
        self.operands = vec![(a, b, c); copies];
        self
    }

    /// The same bench with the runtime's GEMM on `threads`.
    pub fn on(mut self, threads: &Threads) -> Self {
        self.scratch.set_threads(threads.count());
        self.threads = threads.clone();
        self
    }

    /// `c = a @ b`; returns an element of `c`, so the product is not optimised away.
    pub fn call(&mut self) -> f64 {
        let this = self.next;
        self.next = (this + 1) % self.operands.len();
        let (a, b, c) = &mut self.operands[this];
        let a = if self.a_transposed { a.t() } else { a.view() };
        let b = if self.b_transposed { b.t() } else { b.view() };
        match self.routine {
            Routine::Runtime => matmul(a, b, c.view_mut(), false, &mut self.scratch, &self.threads),
            Routine::Ndarray => general_mat_mul(F::one(), &a, &b, F::zero(), c),
            Routine::GemmCrate => gemm_crate(a, b, c),
        }
        c[[0, 0]].to_f64().unwrap_or(f64::NAN)
    }
}

/// Bytes of operands a cold bench cycles through: twice this machine type's L3, so
/// that each call finds its operands in memory, or at best in L3.
pub const COLD_BYTES: usize = 64 << 20;

/// Which operands of a product described as `what` (`d_w = h.T @ d_z`) are read
/// transposed.
fn transposes(what: &str) -> (bool, bool) {
    let expr = what.rsplit('=').next().unwrap_or(what);
    let mut sides = expr.split('@').map(|side| side.trim().ends_with(".T"));
    (sides.next().unwrap_or(false), sides.next().unwrap_or(false))
}

/// `c = a @ b` through the `gemm` crate, on the views' own strides.
fn gemm_crate<F: BenchFloat>(a: ArrayView2<'_, F>, b: ArrayView2<'_, F>, c: &mut Array2<F>) {
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn transposed_operands_are_read_from_the_description() {
        assert_eq!(transposes("x @ w1"), (false, false));
        assert_eq!(transposes("d_w = h.T @ d_z"), (true, false));
        assert_eq!(transposes("d_h = d_z @ w.T"), (false, true));
    }

    #[test]
    fn every_routine_computes_the_same_product() {
        for what in ["h @ w", "d_w = h.T @ d_z", "d_h = d_z @ w.T"] {
            let shape = Matmul {
                what,
                m: 13,
                k: 21,
                n: 9,
            };
            let mut results = [Routine::Runtime, Routine::Ndarray, Routine::GemmCrate].map(|r| {
                let mut bench = MatmulBench::<f64>::new(shape, r);
                bench.call();
                bench.operands[0].2.clone()
            });
            let reference = results[1].clone();
            for c in &mut results {
                let worst = (&*c - &reference)
                    .iter()
                    .fold(0.0f64, |w, d| w.max(d.abs()));
                assert!(worst < 1e-12, "{what}: {worst}");
            }
        }
    }
}
