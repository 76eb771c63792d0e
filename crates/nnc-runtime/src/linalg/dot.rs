//! The last few columns of `C (+)= A @ B` when A's rows run along `k` in memory
//! (A read in place, row-major): each element a dot product, vectorised along
//! `k`, with B's columns contiguous along `k` too (a column-major B in place, or
//! those few columns copied so).
//!
//! The main kernel vectorises along C's rows, so a product whose `n` is not a
//! multiple of the vector width pads its last columns to a whole vector: W4's
//! 500 columns of `f32` are 32 vectors of 16 lanes, 12 lanes of the last one
//! wasted on every row and every step (2.3% of the work), W1's 100 columns of
//! `f64` 13 vectors of 8, and a `[N, 10]` C wastes 6 lanes of 16. Those
//! `n % LANES` columns need no padding as dot products: a tile of [`rows`] x
//! [`COLS`] of them loads `rows + COLS` vectors of `k` per `rows * COLS` FMAs, and
//! sums each accumulator's lanes once, at the end. Measured against the padded
//! kernel (AVX-512, Zen 5, 2026-12-04, alternating blocks of calls in one
//! process, one thread, `f32` and `f64`): W4's `h @ w` (256x500x500) 1.3% and
//! 1.1% faster, its `d_h = d_z @ w.T` 1.6% and 0.8%, its `h @ w` into the 10
//! scores 30% and 11%, W1's `x @ w1` (64x1000x100) 13% and 5.7%; the same on two
//! threads. But 64x100x10 in `f32`, six vectors of `k`, ran 6.5% slower (see
//! [`MIN_VECTORS`]).
//!
//! `small.rs` computes products of at most four columns the same way (its `Cols`
//! shape, one row at a time, each accumulator summed by [`Lanes::sum`]); the two
//! are kept apart because they were measured apart, and their sums can differ in
//! the sign of a zero (`Lanes::sum` starts from `+0`, [`lane_sums`] from lane 0).

use super::kernel::{Lanes, TileOut};

/// Columns of a tile of dot products.
const COLS: usize = 4;

/// Rows of a tile of dot products for vectors `V`: as many as keep the
/// `rows * COLS` accumulators, a vector of each row of A and one of B in
/// registers, and at most 4, so that a tile's accumulators are at most 16 (one
/// transposed group of `f32` lanes in [`lane_sums`], and the tiles [`dispatch`]
/// instantiates): 4 with AVX-512's 32 registers, 3 with AVX2's 16.
fn rows<F: num_traits::Float, V: Lanes<F>>() -> usize {
    ((V::REGISTERS - 1) / (COLS + 1)).min(4)
}

/// The fewest whole vectors of `k` for which the dot products beat the padded
/// kernel: the sums of the lanes and the steps past the last whole vector cost a
/// tile about as much as a few vectors of steps. Measured (see the module's
/// doc): 64x100x10 in `f32` (six vectors and four steps) 6.5% slower, 64x128x10
/// (eight) 46% faster; in `f64`, 64x64x10 (eight) 9% faster.
pub(super) const MIN_VECTORS: usize = 8;

/// Where a block's operands are: row `r` of A at `a + r * a_rs`, column `j` of B at
/// `b + j * b_cs`, both contiguous along `k`.
#[derive(Clone, Copy)]
pub(super) struct Operands<F> {
    pub a: *const F,
    pub a_rs: isize,
    pub b: *const F,
    pub b_cs: isize,
}

/// `C (+)= A @ B` on `out`'s block of C (`out.rows x out.cols`), over `kc` steps,
/// element by element as dot products, in tiles of [`rows`] x [`COLS`].
///
/// Each element's sum runs in the same order whatever the block around it (the
/// lanes of its accumulator first to last, then the steps past the last whole
/// vector), so its bits do not depend on how a product is cut between threads.
///
/// # Safety
/// `ops` must address `out.rows` rows of A and `out.cols` columns of B for `kc`
/// steps, and `out` a valid block of `C` no other thread writes.
#[inline(always)]
pub(super) unsafe fn block<F: num_traits::Float, V: Lanes<F>>(
    kc: usize,
    ops: Operands<F>,
    out: TileOut<F>,
) {
    let rows = rows::<F, V>();
    for i0 in (0..out.rows).step_by(rows) {
        for j0 in (0..out.cols).step_by(COLS) {
            let tile_ops = Operands {
                a: ops.a.wrapping_offset(i0 as isize * ops.a_rs),
                b: ops.b.wrapping_offset(j0 as isize * ops.b_cs),
                ..ops
            };
            let tile_out = TileOut {
                c: out
                    .c
                    .wrapping_offset(i0 as isize * out.rs + j0 as isize * out.cs),
                rows: rows.min(out.rows - i0),
                cols: COLS.min(out.cols - j0),
                ..out
            };
            // SAFETY: the tile is inside the caller's block.
            unsafe { dispatch::<F, V>(kc, tile_ops, tile_out) };
        }
    }
}

/// Calls [`tile`] with the tile's rows and columns as constants.
///
/// # Safety
/// As for [`block`], with at most 4 rows and [`COLS`] columns.
#[inline(always)]
unsafe fn dispatch<F: num_traits::Float, V: Lanes<F>>(
    kc: usize,
    ops: Operands<F>,
    out: TileOut<F>,
) {
    macro_rules! cols {
        ($r:literal) => {
            match out.cols {
                1 => tile::<F, V, $r, 1>(kc, ops, out),
                2 => tile::<F, V, $r, 2>(kc, ops, out),
                3 => tile::<F, V, $r, 3>(kc, ops, out),
                _ => tile::<F, V, $r, 4>(kc, ops, out),
            }
        };
    }
    const { assert!(COLS == 4) };
    debug_assert!((1..=4).contains(&out.rows) && (1..=COLS).contains(&out.cols));
    // SAFETY: forwarded contract.
    unsafe {
        match out.rows {
            1 => cols!(1),
            2 => cols!(2),
            3 => cols!(3),
            _ => cols!(4),
        }
    }
}

/// One tile of `R x Q` dot products.
///
/// # Safety
/// As for [`block`], with `out.rows == R` and `out.cols == Q`.
#[inline(always)]
unsafe fn tile<F: num_traits::Float, V: Lanes<F>, const R: usize, const Q: usize>(
    kc: usize,
    ops: Operands<F>,
    out: TileOut<F>,
) {
    let a_row = |r: usize| ops.a.wrapping_offset(r as isize * ops.a_rs);
    let b_col = |j: usize| ops.b.wrapping_offset(j as isize * ops.b_cs);
    let whole = kc / V::LANES * V::LANES;
    let mut acc = [[V::zero(); Q]; R];
    for p in (0..whole).step_by(V::LANES) {
        // SAFETY: steps `p..p + LANES` are inside the rows and columns.
        unsafe {
            let av: [V; R] = std::array::from_fn(|r| V::load(a_row(r).add(p)));
            for j in 0..Q {
                let bv = V::load(b_col(j).add(p));
                for (row, a) in acc.iter_mut().zip(&av) {
                    row[j] = a.mul_add(bv, row[j]);
                }
            }
        }
    }
    let mut sums = lane_sums::<F, V, R, Q>(&acc);
    for p in whole..kc {
        for (r, row) in sums.chunks_exact_mut(Q).take(R).enumerate() {
            for (j, sum) in row.iter_mut().enumerate() {
                // SAFETY: step `p` is inside the rows and columns.
                let (a, b) = unsafe { (*a_row(r).add(p), *b_col(j).add(p)) };
                *sum = V::mul_add_one(a, b, *sum);
            }
        }
    }
    for (r, row) in sums.chunks_exact(Q).take(R).enumerate() {
        for (j, sum) in row.iter().enumerate() {
            // SAFETY: `(r, j)` is inside the caller's block of C.
            unsafe {
                let c = out.c.offset(r as isize * out.rs + j as isize * out.cs);
                *c = if out.overwrite { *sum } else { *c + *sum };
            }
        }
    }
}

/// Each accumulator's lanes summed, first to last; accumulator `(r, j)` at
/// `r * Q + j`. `LANES` accumulators at a time are transposed, so their sums are
/// `LANES - 1` vector additions rather than as many per accumulator.
#[inline(always)]
fn lane_sums<F: num_traits::Float, V: Lanes<F>, const R: usize, const Q: usize>(
    acc: &[[V; Q]; R],
) -> [F; 16] {
    // At most 16 accumulators (4 x `COLS`); the rest zero, as the transposes
    // read whole groups of `LANES`, which must divide 16.
    const { assert!(R * Q <= 16 && 16 % V::LANES == 0) };
    let mut spilled = [V::zero(); 16];
    for (slot, a) in spilled.iter_mut().zip(acc.iter().flatten()) {
        *slot = *a;
    }
    let mut sums = [F::zero(); 16];
    let groups = (R * Q).div_ceil(V::LANES);
    for g in 0..groups {
        let mut columns = [V::zero(); 16];
        // SAFETY: `Lanes` is `LANES` consecutive `F`s (its contract), so `spilled`
        // and `columns` hold 16 runs of `LANES` elements; the group's `LANES` runs
        // from `g * LANES` are inside (`(g + 1) * LANES <= 16`), and `sums` holds
        // 16 elements.
        unsafe {
            let src = spilled.as_ptr().cast::<F>().add(g * V::LANES * V::LANES);
            let dst = columns.as_mut_ptr().cast::<F>();
            V::transpose(src, V::LANES as isize, dst, V::LANES as isize);
            let total = columns[1..V::LANES]
                .iter()
                .fold(columns[0], |sum, lanes| sum.add(*lanes));
            total.store(sums.as_mut_ptr().add(g * V::LANES));
        }
    }
    sums
}
