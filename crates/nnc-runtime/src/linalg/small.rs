//! Products with a tiny inner dimension or a tiny `C` width: `k` or `n` at most
//! [`SMALL`], as a two-dimensional input (`x @ w1` with `k = 2`), a three-class
//! head (`h @ w2` with `n = 3`) or their gradients make them.
//!
//! The blocked kernel is built for long `k` and full tiles; on these it spends its
//! time loading and storing `C` tiles and padding panels. Here each case gets the
//! loop it wants, with the small dimension a constant (so its sums unroll and its
//! accumulators are registers):
//!
//! - **`k` small** ([`Shape::Inner`]): each row of `C` is `k` scaled rows of `B`
//!   added up, vector by vector along the row (W2's `x @ w1`: 13 to 19 GFLOP/s,
//!   `d_h = d_z @ w.T`: 17 to 28, on a core whose peak is 45);
//! - **`n` small** ([`Shape::Cols`]): each element of `C` is a dot product of a
//!   row of `A` and a column of `B`, vectorised along `k`, the columns of `B` first
//!   copied to rows of the scratch (W2's `h @ w2`: 18 to 26 GFLOP/s).
//!
//! (A small `m`, as in `d_w1 = x.T @ d_h`, was tried as rows of `C` accumulated
//! together over `B`'s rows: no faster than the blocked kernel, so it is not here.)
//!
//! Every element of `C` is one chain of fused multiply-adds in `k` order (for
//! `n` small: lane-wise partial sums added in a fixed order), the same for a whole
//! product and for any block of its rows or columns, so cutting a product across
//! threads does not change its bits. Operands whose layout a case cannot stream
//! are copied into the scratch first ([`scratch_len`] says how much).

use super::kernel::Lanes;
use super::{Operand, Product, Scratch, pack_columns};

/// The largest dimension handled here.
pub(super) const SMALL: usize = 4;

/// Which of the three loops a product takes, if any. Chosen once for the whole
/// product (a block of it could look different), so that every part of a product
/// cut across threads computes its elements the same way.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Shape {
    Inner,
    Cols,
}

impl Shape {
    /// The loop for `p`: `k` small first, then `n` small when `A`'s rows are
    /// contiguous. `None`: the blocked kernel.
    pub(super) fn of<F>(p: &Product<F>) -> Option<Shape> {
        if p.k <= SMALL {
            Some(Shape::Inner)
        } else if p.n <= SMALL && p.a.cs == 1 {
            Some(Shape::Cols)
        } else {
            None
        }
    }
}

/// Scratch elements a small product may need (a copy of `B`).
pub(super) fn scratch_len(_m: usize, k: usize, n: usize) -> usize {
    if k <= SMALL || n <= SMALL { k * n } else { 0 }
}

/// Runs `p` with the loop `shape`.
///
/// # Safety
/// As for `Isa::run`: the CPU has `V`'s instruction set, `p` describes valid views
/// with `C` aliasing neither operand, and `scratch` holds at least
/// [`scratch_len`] elements for `p`'s dimensions.
#[inline(always)]
pub(super) unsafe fn run<F: num_traits::Float, V: Lanes<F>>(
    shape: Shape,
    p: &Product<F>,
    scratch: Scratch<F>,
) {
    assert!(
        scratch.len >= scratch_len(p.m, p.k, p.n),
        "GEMM scratch too small"
    );
    // SAFETY: forwarded contract; the scratch length was just checked.
    unsafe {
        match shape {
            Shape::Inner => inner::<F, V>(p, scratch.ptr),
            Shape::Cols => cols::<F, V>(p, scratch.ptr),
        }
    }
}

/// `C[i, ..] (+)= sum_p A[i, p] B[p, ..]` for `k <= SMALL`, row by row.
#[inline(always)]
unsafe fn inner<F: num_traits::Float, V: Lanes<F>>(p: &Product<F>, scratch: *mut F) {
    // SAFETY (the whole body): the copy of B fits the scratch (`k * n` elements,
    // checked by `run`); `inner_k` is given `K == p.k`.
    unsafe {
        let b = if p.b.cs == 1 {
            p.b
        } else {
            copy_rows(p.b, p.k, p.n, scratch)
        };
        match p.k {
            1 => inner_k::<F, V, 1>(p, b),
            2 => inner_k::<F, V, 2>(p, b),
            3 => inner_k::<F, V, 3>(p, b),
            _ => inner_k::<F, V, 4>(p, b),
        }
    }
}

/// [`inner`] with `k` a constant, so the sum over `k` is unrolled.
///
/// # Safety
/// As for [`run`], with `K == p.k` and `b` (`K x n`) with contiguous rows.
#[inline(always)]
unsafe fn inner_k<F: num_traits::Float, V: Lanes<F>, const K: usize>(
    p: &Product<F>,
    b: Operand<F>,
) {
    debug_assert!(p.k == K && b.cs == 1);
    // SAFETY (the whole body): positions stay inside the operands and `C`.
    unsafe {
        for i in 0..p.m {
            let a: [F; K] = std::array::from_fn(|q| *p.a.at(i, q));
            let av: [V; K] = a.map(V::splat);
            let row = p.c.offset(i as isize * p.c_rs);
            let mut j = 0;
            if p.c_cs == 1 {
                while j + V::LANES <= p.n {
                    let mut acc = if p.overwrite {
                        V::zero()
                    } else {
                        V::load(row.add(j))
                    };
                    for (q, a_q) in av.iter().enumerate() {
                        acc = a_q.mul_add(V::load(b.at(q, j)), acc);
                    }
                    acc.store(row.add(j));
                    j += V::LANES;
                }
            }
            for j in j..p.n {
                let c = row.offset(j as isize * p.c_cs);
                let mut acc = if p.overwrite { F::zero() } else { *c };
                for (q, a_q) in a.iter().enumerate() {
                    acc = V::mul_add_one(*a_q, *b.at(q, j), acc);
                }
                *c = acc;
            }
        }
    }
}

/// `C[i, c] (+)= A[i, ..] . B[.., c]` for `n <= SMALL` and `A` with contiguous
/// rows: `B`'s columns are copied to rows of the scratch, then each element is a
/// dot product along `k`, in lanes, the lanes then added in order.
#[inline(always)]
unsafe fn cols<F: num_traits::Float, V: Lanes<F>>(p: &Product<F>, scratch: *mut F) {
    // SAFETY: `cols_n` is given `N == p.n`; the rest is forwarded.
    unsafe {
        match p.n {
            1 => cols_n::<F, V, 1>(p, scratch),
            2 => cols_n::<F, V, 2>(p, scratch),
            3 => cols_n::<F, V, 3>(p, scratch),
            _ => cols_n::<F, V, 4>(p, scratch),
        }
    }
}

/// [`cols`] with `n` a constant, so its accumulators are registers.
///
/// # Safety
/// As for [`run`], with `N == p.n`.
#[inline(always)]
unsafe fn cols_n<F: num_traits::Float, V: Lanes<F>, const N: usize>(
    p: &Product<F>,
    scratch: *mut F,
) {
    debug_assert!(p.n == N);
    // SAFETY (the whole body): positions stay inside the operands and `C`, and
    // `B^T` inside the scratch (`n * k` elements, checked by `run`).
    unsafe {
        pack_columns(scratch, p.b, (0, 0), (p.k, p.n));
        let whole = p.k / V::LANES * V::LANES;
        for i in 0..p.m {
            let a = p.a.at(i, 0);
            let mut acc = [V::zero(); N];
            let mut q = 0;
            while q < whole {
                let av = V::load(a.add(q));
                for (c, lane) in acc.iter_mut().enumerate() {
                    *lane = av.mul_add(V::load(scratch.add(c * p.k + q)), *lane);
                }
                q += V::LANES;
            }
            for (c, lane) in acc.iter().enumerate() {
                let mut sum = V::sum(*lane);
                for q in whole..p.k {
                    sum = V::mul_add_one(*a.add(q), *scratch.add(c * p.k + q), sum);
                }
                let dst = p.c.offset(i as isize * p.c_rs + c as isize * p.c_cs);
                *dst = if p.overwrite { sum } else { *dst + sum };
            }
        }
    }
}

/// `B` (`k x n`) copied to the scratch with contiguous rows, as an operand.
///
/// # Safety
/// `b` must be valid for `k x n`, and `dst` for `k * n` elements.
#[inline(always)]
unsafe fn copy_rows<F: Copy>(b: Operand<F>, k: usize, n: usize, dst: *mut F) -> Operand<F> {
    for q in 0..k {
        for j in 0..n {
            // SAFETY: the caller's contract.
            unsafe { *dst.add(q * n + j) = *b.at(q, j) };
        }
    }
    Operand {
        ptr: dst.cast_const(),
        rs: n as isize,
        cs: 1,
    }
}
