//! Matrix products for generated code: `c = a @ b` or `c += a @ b` on ndarray views
//! of any strides (a transpose is a view, never a copy), through the `gemm` crate.
//!
//! Why `gemm` and not ndarray's `general_mat_mul`: measured on this project's
//! machines it is the fastest pure-Rust GEMM single-threaded (43-46 GFLOP/s in f64
//! against 35-37, see BENCHMARKS.md), and it keeps its packing buffers per thread.
//!
//! Allocation: both libraries allocate scratch for packing on some calls. The model
//! code around them allocates nothing, and `scratch_scope` marks the library's
//! calls so an allocation-counting test can tell the two apart.

use crate::Float;
use ndarray::{ArrayView2, ArrayViewMut2};
use std::cell::Cell;

thread_local! {
    static IN_GEMM: Cell<bool> = const { Cell::new(false) };
}

/// Whether the current thread is inside the GEMM library (for allocation tests).
pub fn in_gemm() -> bool {
    IN_GEMM.with(Cell::get)
}

/// Runs `f` with [`in_gemm`] true.
fn scratch_scope<T>(f: impl FnOnce() -> T) -> T {
    IN_GEMM.with(|flag| flag.set(true));
    let out = f();
    IN_GEMM.with(|flag| flag.set(false));
    out
}

/// `c = a @ b` (`accumulate == false`) or `c += a @ b`.
///
/// Shapes must agree: `a` is `[m, k]`, `b` is `[k, n]`, `c` is `[m, n]`; generated
/// code checks shapes before calling, so a mismatch here is a bug and panics.
pub fn matmul<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    mut c: ArrayViewMut2<'_, F>,
    accumulate: bool,
) {
    let (m, k) = a.dim();
    let (k2, n) = b.dim();
    assert!(
        k == k2 && c.dim() == (m, n),
        "matmul shapes: [{m}, {k}] @ [{k2}, {n}] into {:?}",
        c.dim()
    );
    if m == 0 || n == 0 {
        return;
    }
    if k == 0 {
        if !accumulate {
            c.fill(F::zero());
        }
        return;
    }
    let (a_rs, a_cs) = (a.strides()[0], a.strides()[1]);
    let (b_rs, b_cs) = (b.strides()[0], b.strides()[1]);
    let (c_rs, c_cs) = (c.strides()[0], c.strides()[1]);
    let (pa, pb, pc) = (a.as_ptr(), b.as_ptr(), c.as_mut_ptr());
    // SAFETY: the three views are valid for their shapes and strides (ndarray's
    // invariant), `c` is a unique mutable borrow so it aliases neither `a` nor `b`,
    // and `gemm` reads and writes only the m x k, k x n and m x n elements those
    // strides address. Measured reason for `unsafe`: gemm's raw-pointer API is the
    // fastest GEMM available here (see the module docs).
    scratch_scope(|| unsafe {
        gemm::gemm(
            m,
            n,
            k,
            pc,
            c_cs,
            c_rs,
            accumulate,
            pa,
            a_cs,
            a_rs,
            pb,
            b_cs,
            b_rs,
            F::one(),
            F::one(),
            false,
            false,
            false,
            gemm::Parallelism::None,
        )
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, ShapeBuilder};

    fn reference(a: &Array2<f64>, b: &Array2<f64>) -> Array2<f64> {
        let (m, n) = (a.nrows(), b.ncols());
        Array2::from_shape_fn((m, n), |(i, j)| {
            (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
        })
    }

    fn filled(shape: (usize, usize), seed: f64) -> Array2<f64> {
        Array2::from_shape_fn(shape, |(i, j)| {
            ((i * 31 + j * 17) as f64 * 0.37 + seed).sin()
        })
    }

    #[test]
    fn products_of_every_layout() {
        for (m, k, n) in [(1, 1, 1), (3, 5, 2), (17, 33, 9), (64, 100, 10)] {
            let a = filled((m, k), 0.1);
            let b = filled((k, n), 0.7);
            let want = reference(&a, &b);
            // Row-major, column-major and transposed views.
            let a_f = {
                let mut x = Array2::zeros((m, k).f());
                x.assign(&a);
                x
            };
            let b_t = b.t().to_owned();
            for (av, bv) in [
                (a.view(), b.view()),
                (a_f.view(), b_t.t()),
                (a.view(), b_t.t()),
            ] {
                let mut c = Array2::from_elem((m, n), f64::NAN);
                matmul(av, bv, c.view_mut(), false);
                let worst = (&c - &want).iter().fold(0.0f64, |w, d| w.max(d.abs()));
                assert!(worst < 1e-12, "{m}x{k}x{n}: {worst}");
            }
        }
    }

    #[test]
    fn accumulates_into_the_destination() {
        let a = filled((4, 3), 0.2);
        let b = filled((3, 5), 0.9);
        let mut c = Array2::from_elem((4, 5), 1.0);
        matmul(a.view(), b.view(), c.view_mut(), true);
        let want = reference(&a, &b) + 1.0;
        assert!((&c - &want).iter().all(|d| d.abs() < 1e-12));
    }

    #[test]
    fn f32_and_a_transposed_destination() {
        let a = filled((6, 4), 0.3).mapv(|v| v as f32);
        let b = filled((4, 7), 0.5).mapv(|v| v as f32);
        let mut c_t = Array2::<f32>::zeros((7, 6));
        matmul(a.view(), b.view(), c_t.view_mut().reversed_axes(), false);
        let want = a.dot(&b);
        assert!((&c_t.t() - &want).iter().all(|d| d.abs() < 1e-5));
    }

    #[test]
    fn empty_inner_dimension_gives_zeros() {
        let a = Array2::<f64>::zeros((2, 0));
        let b = Array2::<f64>::zeros((0, 3));
        let mut c = Array2::from_elem((2, 3), 5.0);
        matmul(a.view(), b.view(), c.view_mut(), false);
        assert!(c.iter().all(|v| *v == 0.0));
        assert!(!in_gemm());
    }
}
