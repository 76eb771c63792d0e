//! The micro-kernel: one `rows x cols` tile of `C (+)= A_panel @ B_panel`, with the
//! tile's accumulators in registers for the whole `k` loop.
//!
//! A kernel is written once, generic over [`Lanes`] (a SIMD vector of `F` and its
//! operations), and compiled for each instruction set by the `#[target_feature]`
//! entry points in `super`: every function here is `#[inline(always)]`, so it is
//! inlined into those entry points and gets their instruction set.
//!
//! The operands' layout is given by strides ([`Panels`]), so a kernel reads either
//! the packed blocks `super` writes (A: `kc` steps of `MR` rows' values; B: `kc`
//! steps of `NR = NV * LANES` contiguous values) or the operands in place, when
//! packing would cost more than it saves.
//!
//! The tile is stored straight into `C` when it is full and `C`'s rows are
//! contiguous; otherwise (an edge tile, or a `C` with strided columns) it goes
//! through a small buffer on the stack and is written element by element.

use std::mem::MaybeUninit;

/// A SIMD vector of `F` with the few operations a GEMM kernel needs.
///
/// The methods execute the instruction set's instructions, so they may only run on
/// a CPU that has it: the implementing types are private to `linalg`, and are only
/// reached through `Isa::run`, after `Isa::supported` checked the CPU.
///
/// # Safety
/// Implementers promise that `Self` is `#[repr(transparent)]` over `LANES`
/// consecutive `F`s (the tile store reads spilled vectors as `F`s), that
/// `LANES <= 16`, and that `MR <= 12` and `NV <= 2` (the kernels `dispatch`
/// instantiates).
pub(super) unsafe trait Lanes<F: num_traits::Float>: Copy {
    /// Elements per vector.
    const LANES: usize;
    /// Rows in a full tile: chosen so `MR * NV` accumulators, `NV` B vectors and a
    /// broadcast fit in the register file.
    const MR: usize;
    /// Vectors per row of a full tile (`NR = NV * LANES` columns).
    const NV: usize;
    fn zero() -> Self;
    fn splat(x: F) -> Self;
    /// # Safety
    /// `p` must be valid for reading `LANES` elements.
    unsafe fn load(p: *const F) -> Self;
    /// # Safety
    /// `p` must be valid for writing `LANES` elements.
    unsafe fn store(self, p: *mut F);
    /// `self * b + c`, fused where the instruction set has it.
    fn mul_add(self, b: Self, c: Self) -> Self;
    fn add(self, b: Self) -> Self;
    /// `a * b + c` on one element, rounded as a lane of [`Lanes::mul_add`] is (so
    /// an element computed outside the vectors gets the same bits).
    fn mul_add_one(a: F, b: F, c: F) -> F;
    /// Asks for the cache line holding `p` (a hint: nothing is read, nothing can
    /// fault).
    fn prefetch(_p: *const F) {}
    /// The lanes added up, first to last.
    fn sum(self) -> F {
        let mut lanes = [F::zero(); 16];
        // SAFETY: `LANES <= 16` for every implementation (`Lanes`' contract).
        unsafe { self.store(lanes.as_mut_ptr()) };
        lanes[..Self::LANES].iter().fold(F::zero(), |s, x| s + *x)
    }
}

/// Where a tile's operands are: `A[r, p]` at `a + r * a_rs + p * a_step`, and the
/// `NR` values of `B[p, ..]` contiguous from `b + p * b_step`.
#[derive(Clone, Copy)]
pub(super) struct Panels<F> {
    pub a: *const F,
    pub a_rs: isize,
    pub a_step: isize,
    pub b: *const F,
    pub b_step: isize,
}

/// Where a tile goes, and how.
#[derive(Clone, Copy)]
pub(super) struct TileOut<F> {
    pub c: *mut F,
    pub rs: isize,
    pub cs: isize,
    pub rows: usize,
    pub cols: usize,
    /// `C = tile` rather than `C += tile`.
    pub overwrite: bool,
}

/// One tile: `R` rows (const, so the accumulators are registers) by `NV` vectors.
///
/// # Safety
/// `panels` must address `R` rows of A and `NV * LANES` columns of B for `kc` steps,
/// and `out` a valid `rows x cols` block of `C` with `rows <= R`, `cols <= NV * LANES`.
#[inline(always)]
pub(super) unsafe fn tile<F: num_traits::Float, V: Lanes<F>, const R: usize, const NV: usize>(
    kc: usize,
    panels: Panels<F>,
    out: TileOut<F>,
) {
    let mut acc = [[V::zero(); NV]; R];
    // SAFETY: the caller's contract.
    unsafe {
        // The tile's rows of C, fetched while the k loop runs: C is usually not in
        // cache (written long ago, or never), so the stores at the end would stall
        // on reading its lines (measured: 3% of W4's products, operands cold).
        for r in 0..out.rows {
            let row = out.c.offset(r as isize * out.rs);
            V::prefetch(row);
            V::prefetch(row.offset((out.cols as isize - 1) * out.cs));
        }
        if panels.a_rs == 1 && panels.a_step == V::MR as isize {
            // Packed A: constant offsets, which the loads can encode.
            steps::<F, V, R, NV>(
                &mut acc,
                kc,
                panels.a,
                1,
                V::MR as isize,
                panels.b,
                panels.b_step,
            );
        } else {
            steps::<F, V, R, NV>(
                &mut acc,
                kc,
                panels.a,
                panels.a_rs,
                panels.a_step,
                panels.b,
                panels.b_step,
            );
        }
        store_tile::<F, V, R, NV>(&acc, out)
    }
}

/// The `k` loop of [`tile`]: `acc += A[.., p] * B[p, ..]` for each step `p`.
#[inline(always)]
unsafe fn steps<F: num_traits::Float, V: Lanes<F>, const R: usize, const NV: usize>(
    acc: &mut [[V; NV]; R],
    kc: usize,
    mut a: *const F,
    a_rs: isize,
    a_step: isize,
    mut b: *const F,
    b_step: isize,
) {
    for _ in 0..kc {
        // SAFETY: within the panels by the caller's contract.
        unsafe {
            let bv: [V; NV] = std::array::from_fn(
                #[inline(always)]
                |v| V::load(b.add(v * V::LANES)),
            );
            for (r, row) in acc.iter_mut().enumerate() {
                let av = V::splat(*a.offset(r as isize * a_rs));
                for (lane, b_lane) in row.iter_mut().zip(&bv) {
                    *lane = av.mul_add(*b_lane, *lane);
                }
            }
            // Wrapping: after the last step the cursors may point past an operand
            // read in place (they are not dereferenced again).
            a = a.wrapping_offset(a_step);
            b = b.wrapping_offset(b_step);
        }
    }
}

#[inline(always)]
unsafe fn store_tile<F: num_traits::Float, V: Lanes<F>, const R: usize, const NV: usize>(
    acc: &[[V; NV]; R],
    out: TileOut<F>,
) {
    let full = out.rows == R && out.cols == NV * V::LANES && out.cs == 1;
    if full {
        for (r, row) in acc.iter().enumerate() {
            // SAFETY: a full tile with contiguous rows: `NV * LANES` elements from
            // the row's start are inside `C`.
            unsafe {
                let c_row = out.c.offset(r as isize * out.rs);
                for (v, lane) in row.iter().enumerate() {
                    let p = c_row.add(v * V::LANES);
                    let value = if out.overwrite {
                        *lane
                    } else {
                        lane.add(V::load(p))
                    };
                    value.store(p);
                }
            }
        }
        return;
    }
    // Edge or strided tile: spill the registers, then write what is inside `C`.
    let mut spill = [[MaybeUninit::<V>::uninit(); NV]; R];
    for (dst, src) in spill.iter_mut().zip(acc) {
        for (d, s) in dst.iter_mut().zip(src) {
            d.write(*s);
        }
    }
    let spill_ptr = spill.as_ptr().cast::<F>();
    for r in 0..out.rows {
        for j in 0..out.cols {
            // SAFETY: `spill` holds `R * NV * LANES` initialised `F`s, and
            // `(r, j)` is inside the block of `C` the caller vouched for.
            unsafe {
                let value = *spill_ptr.add(r * NV * V::LANES + j);
                let p = out.c.offset(r as isize * out.rs + j as isize * out.cs);
                *p = if out.overwrite { value } else { *p + value };
            }
        }
    }
}

/// Calls [`tile`] with `R = rows` and `NV` = the vectors `cols` needs, both as
/// constants (edge tiles get their own instantiation, so no lane is wasted on rows).
///
/// # Safety
/// As for [`tile`], with `rows <= V::MR <= 12` and `cols <= V::NV * V::LANES`.
#[inline(always)]
pub(super) unsafe fn dispatch<F: num_traits::Float, V: Lanes<F>>(
    kc: usize,
    panels: Panels<F>,
    out: TileOut<F>,
) {
    macro_rules! rows {
        ($nv:literal) => {
            // SAFETY: forwarded contract.
            unsafe {
                match out.rows {
                    1 => tile::<F, V, 1, $nv>(kc, panels, out),
                    2 => tile::<F, V, 2, $nv>(kc, panels, out),
                    3 => tile::<F, V, 3, $nv>(kc, panels, out),
                    4 => tile::<F, V, 4, $nv>(kc, panels, out),
                    5 => tile::<F, V, 5, $nv>(kc, panels, out),
                    6 => tile::<F, V, 6, $nv>(kc, panels, out),
                    7 => tile::<F, V, 7, $nv>(kc, panels, out),
                    8 => tile::<F, V, 8, $nv>(kc, panels, out),
                    9 => tile::<F, V, 9, $nv>(kc, panels, out),
                    10 => tile::<F, V, 10, $nv>(kc, panels, out),
                    11 => tile::<F, V, 11, $nv>(kc, panels, out),
                    _ => tile::<F, V, 12, $nv>(kc, panels, out),
                }
            }
        };
    }
    const { assert!(V::MR <= 12 && V::NV <= 2) };
    debug_assert!(out.rows >= 1 && out.rows <= V::MR && out.cols <= V::NV * V::LANES);
    if V::NV == 2 && out.cols > V::LANES {
        rows!(2)
    } else {
        rows!(1)
    }
}

/// Plain scalar code: the kernel for targets without a SIMD implementation here.
#[derive(Clone, Copy)]
#[repr(transparent)]
pub(super) struct Scalar<F>(F);

// SAFETY: plain arithmetic; valid on every target.
unsafe impl<F: num_traits::Float> Lanes<F> for Scalar<F> {
    const LANES: usize = 1;
    const MR: usize = 4;
    const NV: usize = 2;
    #[inline(always)]
    fn zero() -> Self {
        Scalar(F::zero())
    }
    #[inline(always)]
    fn splat(x: F) -> Self {
        Scalar(x)
    }
    #[inline(always)]
    unsafe fn load(p: *const F) -> Self {
        // SAFETY: the caller's contract.
        Scalar(unsafe { *p })
    }
    #[inline(always)]
    unsafe fn store(self, p: *mut F) {
        // SAFETY: the caller's contract.
        unsafe { *p = self.0 }
    }
    #[inline(always)]
    fn mul_add(self, b: Self, c: Self) -> Self {
        // Not `F::mul_add`: without a hardware FMA that is a slow library call.
        Scalar(self.0 * b.0 + c.0)
    }
    #[inline(always)]
    fn add(self, b: Self) -> Self {
        Scalar(self.0 + b.0)
    }
    #[inline(always)]
    fn mul_add_one(a: F, b: F, c: F) -> F {
        a * b + c
    }
}

#[cfg(target_arch = "x86_64")]
pub(super) use x86::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! AVX2+FMA (16 vector registers) and AVX-512 (32) vectors of f32 and f64.
    use super::Lanes;
    use std::arch::x86_64::*;

    macro_rules! lanes {
        (
            $name:ident, $f:ty, $v:ty, lanes: $lanes:literal, mr: $mr:literal, nv: $nv:literal,
            $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident, $add:ident
        ) => {
            #[derive(Clone, Copy)]
            #[repr(transparent)]
            pub(crate) struct $name($v);

            // SAFETY: only dispatched to after `is_x86_feature_detected!` confirms the
            // instruction set (see `super::super::Isa::detect`).
            unsafe impl Lanes<$f> for $name {
                const LANES: usize = $lanes;
                const MR: usize = $mr;
                const NV: usize = $nv;
                #[inline(always)]
                fn zero() -> Self {
                    // SAFETY: the instruction set is enabled (trait contract).
                    $name(unsafe { $zero() })
                }
                #[inline(always)]
                fn splat(x: $f) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $splat(x) })
                }
                #[inline(always)]
                unsafe fn load(p: *const $f) -> Self {
                    // SAFETY: the caller's contract; unaligned loads are allowed.
                    $name(unsafe { $load(p) })
                }
                #[inline(always)]
                unsafe fn store(self, p: *mut $f) {
                    // SAFETY: the caller's contract; unaligned stores are allowed.
                    unsafe { $store(p, self.0) }
                }
                #[inline(always)]
                fn mul_add(self, b: Self, c: Self) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $fma(self.0, b.0, c.0) })
                }
                #[inline(always)]
                fn add(self, b: Self) -> Self {
                    // SAFETY: as above.
                    $name(unsafe { $add(self.0, b.0) })
                }
                #[inline(always)]
                fn prefetch(p: *const $f) {
                    // SAFETY: a prefetch is a hint; it never faults, whatever `p`.
                    unsafe { _mm_prefetch::<_MM_HINT_T0>(p.cast()) }
                }
                #[inline(always)]
                fn mul_add_one(a: $f, b: $f, c: $f) -> $f {
                    // Correctly rounded, as the vector FMA's lanes are.
                    a.mul_add(b, c)
                }
            }
        };
    }

    // 16 registers: 6 x 2 accumulators, 2 B vectors and a broadcast.
    lanes!(Avx2F64, f64, __m256d, lanes: 4, mr: 6, nv: 2,
        _mm256_setzero_pd, _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd,
        _mm256_fmadd_pd, _mm256_add_pd);
    lanes!(Avx2F32, f32, __m256, lanes: 8, mr: 6, nv: 2,
        _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
        _mm256_fmadd_ps, _mm256_add_ps);
    // 32 registers: 12 x 2 accumulators, 2 B vectors and a broadcast. Zen 4 retires
    // one 512-bit FMA per cycle with a latency of 4, so 8 chains would keep it busy;
    // 12 rows measured the same as 8 on the workloads' large products, and better on
    // the 10-row ones (a whole `[N, 10]` score matrix, transposed, is one panel).
    lanes!(Avx512F64, f64, __m512d, lanes: 8, mr: 12, nv: 2,
        _mm512_setzero_pd, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd,
        _mm512_fmadd_pd, _mm512_add_pd);
    lanes!(Avx512F32, f32, __m512, lanes: 16, mr: 12, nv: 2,
        _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
        _mm512_fmadd_ps, _mm512_add_ps);
}
