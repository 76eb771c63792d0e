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
    /// Vector registers the instruction set has.
    const REGISTERS: usize;
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
    /// Asks for the cache line holding `p` into L2 only (a hint, as
    /// [`Lanes::prefetch`]): for data a later step reads, which should not push
    /// what the kernel is reading out of L1.
    fn prefetch_l2(_p: *const F) {}
    /// Transposes a `LANES x LANES` block: for each `i` and `j` below `LANES`,
    /// `dst[i * dst_stride + j] = src[j * src_stride + i]`. Packing a
    /// column-major B reads `LANES` of its columns (each `LANES` contiguous steps
    /// of `k`) and writes them as `LANES` rows of a panel. This scalar loop is the
    /// fallback; the SIMD types transpose in registers.
    ///
    /// # Safety
    /// Both blocks must be valid: `LANES` runs of `LANES` elements from `src` and
    /// `dst`, `src_stride` and `dst_stride` apart; they must not overlap.
    #[inline(always)]
    unsafe fn transpose(src: *const F, src_stride: isize, dst: *mut F, dst_stride: isize) {
        for i in 0..Self::LANES {
            for j in 0..Self::LANES {
                // SAFETY: the caller's contract.
                unsafe {
                    *dst.offset(i as isize * dst_stride + j as isize) =
                        *src.offset(j as isize * src_stride + i as isize);
                }
            }
        }
    }
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
    /// Unless null, where the tile also writes the `NR` values of B it reads at
    /// each step, step `p` at `b_copy + p * NR`: the first tile over a panel of B
    /// read in place packs it for the tiles after it, instead of a pass of its own
    /// before them. Only a full tile (`R = MR`, `NV` vectors) copies.
    pub b_copy: *mut F,
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
/// `panels` must address `R` rows of A and `NV * LANES` columns of B for `kc` steps
/// (and `panels.b_copy`, unless null, `kc * NV * LANES` elements to write, apart
/// from everything else here), and `out` a valid `rows x cols` block of `C` with
/// `rows <= R`, `cols <= NV * LANES`.
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
        // A constant condition but for the pointer: the copying loops exist only
        // in the full tile's instantiation.
        let copies = R == V::MR && NV == V::NV && !panels.b_copy.is_null();
        debug_assert!(
            copies || panels.b_copy.is_null(),
            "only a full tile copies B"
        );
        let b = (panels.b, panels.b_step);
        if panels.a_rs == 1 && panels.a_step == V::MR as isize {
            if copies {
                packed_steps::<F, V, R, NV, true>(&mut acc, kc, panels.a, b, panels.b_copy);
            } else {
                packed_steps::<F, V, R, NV, false>(&mut acc, kc, panels.a, b, panels.b_copy);
            }
        } else {
            let a = (panels.a, panels.a_rs, panels.a_step);
            if copies {
                steps::<F, V, R, NV, true>(&mut acc, kc, a, b, panels.b_copy);
            } else {
                steps::<F, V, R, NV, false>(&mut acc, kc, a, b, panels.b_copy);
            }
        }
        store_tile::<F, V, R, NV>(&acc, out)
    }
}

/// The `k` loop of [`tile`] for a packed A (`MR` values per step, row `r` at
/// offset `r`): one pointer, so every broadcast is a constant offset from it.
///
/// A loop of its own, not [`steps`] with a row stride of one element: when the two
/// shared one loop (then [`steps`] took twelve row pointers), the packed tiles paid
/// for the row pointers of the in-place ones, seven of the twelve reloaded from the
/// stack at every step (AVX-512, Sapphire Rapids class, 2026-12-03, `perf
/// annotate`). Apart,
/// W4's `d_w = h.T @ d_z` (A packed) went from 113 to 115-119 GFLOP/s, the fastest
/// call of each build over 3 s, three runs of each back to back on the same host.
///
/// With `COPY`, each step's values of B also go to `copy` ([`Panels::b_copy`]).
#[inline(always)]
unsafe fn packed_steps<
    F: num_traits::Float,
    V: Lanes<F>,
    const R: usize,
    const NV: usize,
    const COPY: bool,
>(
    acc: &mut [[V; NV]; R],
    kc: usize,
    mut a: *const F,
    (mut b, b_step): (*const F, isize),
    mut copy: *mut F,
) {
    for _ in 0..kc {
        // SAFETY: within the panels by the caller's contract.
        unsafe {
            if COPY {
                fetch_ahead::<F, V, NV>(b, b_step);
            }
            step::<F, V, R, NV, COPY>(acc, |r| *a.add(r), b, copy);
            // Wrapping: after the last step the cursors may point past the panels.
            a = a.wrapping_add(V::MR);
            b = b.wrapping_offset(b_step);
            copy = copy.wrapping_add(NV * V::LANES);
        }
    }
}

/// The `k` loop of [`tile`] for an A read in place: `acc += A[.., p] * B[p, ..]`
/// for each step `p`, row `r` of A `r * a_rs` elements from `a`, each step `a_step`
/// elements on from the last.
///
/// The rows are addressed as hand-written kernels (BLIS's) address them: from one
/// base pointer per four rows and two strides, `rs` and `3 * rs` in bytes, so that
/// rows `4q .. 4q + 4` are `[base_q]`, `[base_q + rs]`, `[base_q + 2 * rs]` and
/// `[base_q + rs3]`, each an x86 address of its own. Five registers for twelve
/// rows: the loop keeps them, its 24 accumulators and B's pointer in registers
/// (with `perf annotate`, W4's `f64` loop reads two values from the stack per
/// step, A's and B's step lengths, where the loop it replaces read nine, most of
/// them row pointers).
///
/// The bases pass through [`opaque`] at every step: left to see that they advance
/// together, LLVM's loop strength reduction folds them into one pointer and twelve
/// offsets, more registers than x86 has, and reloads most offsets from the stack
/// at every step (as it did with twelve row pointers, the loop this replaces).
/// Measured against that loop (AVX-512, Zen 5, 2026-12-04, alternating blocks of
/// calls in one process, medians of the paired ratios, two or three runs): W4's
/// `h @ w` (256x500x500) 1.2-1.4% faster in `f64` and 0.4-0.8% in `f32`, its
/// `d_z @ w.T` 0.8-1.3% and 0.6-0.7%, W3's `x @ w1` 1.1-1.3% and 0.9-1.0%, W1's
/// `x @ w1` 2.9-3.7% (its first tile, which also copies B, spilled the most),
/// W4's `h @ w` into the 10 scores 7.7-8.9%, four rows of A by 500x500 3.2%;
/// products with A packed are unchanged.
///
/// With `COPY`, each step's values of B also go to `copy` ([`Panels::b_copy`]).
#[inline(always)]
unsafe fn steps<
    F: num_traits::Float,
    V: Lanes<F>,
    const R: usize,
    const NV: usize,
    const COPY: bool,
>(
    acc: &mut [[V; NV]; R],
    kc: usize,
    (a, a_rs, a_step): (*const F, isize, isize),
    (mut b, b_step): (*const F, isize),
    mut copy: *mut F,
) {
    // Wrapping: a stride times a row count past A's end is never dereferenced.
    // Through `black_box`, once per tile: without it LLVM kept `rs3` on the stack
    // and reloaded it at every step (`perf annotate`, W4's `f64` `h @ w`).
    let rs = a_rs.wrapping_mul(size_of::<F>() as isize);
    let [rs, rs3] = std::hint::black_box([rs, rs.wrapping_mul(3)]);
    // Only the first `R.div_ceil(4)` are read; the others are optimised out.
    let mut bases: [*const F; 3] =
        std::array::from_fn(|q| opaque(a.wrapping_byte_offset((4 * q as isize).wrapping_mul(rs))));
    for _ in 0..kc {
        // SAFETY: within the panels by the caller's contract.
        unsafe {
            if COPY {
                fetch_ahead::<F, V, NV>(b, b_step);
            }
            let a_at = |r: usize| {
                let base = bases[r / 4];
                match r % 4 {
                    0 => *base,
                    1 => *base.byte_offset(rs),
                    2 => *base.byte_offset(2 * rs),
                    _ => *base.byte_offset(rs3),
                }
            };
            step::<F, V, R, NV, COPY>(acc, a_at, b, copy);
        }
        // Wrapping: after the last step the cursors may point past the operands
        // read in place (they are not dereferenced again).
        bases = bases.map(|base| opaque(base.wrapping_offset(a_step)));
        b = b.wrapping_offset(b_step);
        copy = copy.wrapping_add(NV * V::LANES);
    }
}

/// `p`, through an empty `asm!` block: the compiler cannot tell the result from
/// any other pointer, so it cannot relate it to the pointers it came from (see
/// [`steps`]). No instruction is emitted, and the value stays in its register
/// (`std::hint::black_box` would take it through memory at every step).
#[cfg(target_arch = "x86_64")]
#[inline(always)]
#[allow(
    clippy::pointers_in_nomem_asm_block,
    reason = "the block does not touch what the pointer points to"
)]
fn opaque<T>(mut p: *const T) -> *const T {
    // SAFETY: the block is empty: it reads and writes nothing, and leaves the
    // register, the stack and the flags as they were.
    unsafe {
        std::arch::asm!(
            "/* {0} */",
            inout(reg) p,
            options(pure, nomem, nostack, preserves_flags)
        );
    }
    p
}

/// Elsewhere, `p` as it is: the spills were measured with x86-64's 16 general
/// registers, and only x86-64 has SIMD kernels here (others run [`Scalar`]).
#[cfg(not(target_arch = "x86_64"))]
#[inline(always)]
fn opaque<T>(p: *const T) -> *const T {
    p
}

/// Asks for the row of B [`FETCH_AHEAD`] steps on into L2, for a tile that reads a
/// panel of B in place to pack it ([`Panels::b_copy`]), when B's rows are more than
/// [`FETCH_STRIDE`] bytes apart: then each step's row is on a page of its own
/// (W4's in `f64`, 4000 bytes apart), where the hardware prefetchers do not
/// follow, and the tile waits on L3 at every step. Measured (AVX-512, Zen 5,
/// 2026-12-04, alternating blocks of calls in one process): W4's `f64` products
/// with B row-major 1.7-3.6% faster; at 2 KiB apart or less (W4's `f32` rows,
/// W3's in both types) level to 3% slower, so not there. Into L2 only: the row is read a dozen steps later
/// at the earliest, and L1 holds the tile's A.
#[inline(always)]
fn fetch_ahead<F: num_traits::Float, V: Lanes<F>, const NV: usize>(b: *const F, b_step: isize) {
    // Saturating and wrapping: nothing here may panic, whatever the stride (a
    // prefetch never faults).
    if b_step.unsigned_abs().saturating_mul(size_of::<F>()) <= FETCH_STRIDE {
        return;
    }
    let row = b.wrapping_offset(FETCH_AHEAD.wrapping_mul(b_step));
    // The row's first, middle and last elements: its 2 or 3 cache lines.
    V::prefetch_l2(row);
    V::prefetch_l2(row.wrapping_add(NV * V::LANES / 2));
    V::prefetch_l2(row.wrapping_add(NV * V::LANES - 1));
}

/// Steps ahead [`fetch_ahead`] asks for (16 and 32 measured the same).
const FETCH_AHEAD: isize = 16;

/// Row strides (bytes) above which [`fetch_ahead`] asks for rows ahead.
const FETCH_STRIDE: usize = 2048;

/// One step `p` of the `k` loop: `acc[r] += A[r, p] * B[p, ..]` for every row,
/// `A[r, p]` from `a_at(r)` and the `NV` vectors of `B[p, ..]` from `b` (and,
/// with `COPY`, stored to `copy`).
///
/// # Safety
/// `a_at` must read inside A, and `b` must be valid for reading `NV * LANES`
/// elements (and `copy`, with `COPY`, for writing them).
#[inline(always)]
unsafe fn step<
    F: num_traits::Float,
    V: Lanes<F>,
    const R: usize,
    const NV: usize,
    const COPY: bool,
>(
    acc: &mut [[V; NV]; R],
    a_at: impl Fn(usize) -> F,
    b: *const F,
    copy: *mut F,
) {
    // SAFETY: the caller's contract.
    let bv: [V; NV] = std::array::from_fn(
        #[inline(always)]
        |v| unsafe { V::load(b.add(v * V::LANES)) },
    );
    if COPY {
        for (v, lanes) in bv.iter().enumerate() {
            // SAFETY: the caller's contract.
            unsafe { lanes.store(copy.add(v * V::LANES)) };
        }
    }
    for (r, row) in acc.iter_mut().enumerate() {
        let av = V::splat(a_at(r));
        for (lane, b_lane) in row.iter_mut().zip(&bv) {
            *lane = av.mul_add(*b_lane, *lane);
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
    // Not a register file (the compiler allocates scalar code's registers); the
    // smaller of the SIMD ones, for the loops sized by it (`dot.rs`), which never
    // run on this kernel (one lane: nothing to pad).
    const REGISTERS: usize = 16;
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
            registers: $registers:literal,
            $zero:ident, $splat:ident, $load:ident, $store:ident, $fma:ident, $add:ident,
            transpose: $transpose:path
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
                const REGISTERS: usize = $registers;
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
                unsafe fn transpose(
                    src: *const $f,
                    src_stride: isize,
                    dst: *mut $f,
                    dst_stride: isize,
                ) {
                    // SAFETY: the caller's contract; the instruction set is enabled.
                    unsafe { $transpose(src, src_stride, dst, dst_stride) }
                }
                #[inline(always)]
                fn prefetch_l2(p: *const $f) {
                    // SAFETY: a prefetch is a hint; it never faults, whatever `p`.
                    unsafe { _mm_prefetch::<_MM_HINT_T1>(p.cast()) }
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
    lanes!(Avx2F64, f64, __m256d, lanes: 4, mr: 6, nv: 2, registers: 16,
        _mm256_setzero_pd, _mm256_set1_pd, _mm256_loadu_pd, _mm256_storeu_pd,
        _mm256_fmadd_pd, _mm256_add_pd,
        transpose: transpose::avx2_f64);
    lanes!(Avx2F32, f32, __m256, lanes: 8, mr: 6, nv: 2, registers: 16,
        _mm256_setzero_ps, _mm256_set1_ps, _mm256_loadu_ps, _mm256_storeu_ps,
        _mm256_fmadd_ps, _mm256_add_ps,
        transpose: transpose::avx2_f32);
    // 32 registers: 12 x 2 accumulators, 2 B vectors and a broadcast. Zen 4 retires
    // one 512-bit FMA per cycle with a latency of 4, so 8 chains would keep it busy;
    // 12 rows measured the same as 8 on the workloads' large products, and better on
    // the 10-row ones (a whole `[N, 10]` score matrix, transposed, is one panel).
    lanes!(Avx512F64, f64, __m512d, lanes: 8, mr: 12, nv: 2, registers: 32,
        _mm512_setzero_pd, _mm512_set1_pd, _mm512_loadu_pd, _mm512_storeu_pd,
        _mm512_fmadd_pd, _mm512_add_pd,
        transpose: transpose::avx512_f64);
    lanes!(Avx512F32, f32, __m512, lanes: 16, mr: 12, nv: 2, registers: 32,
        _mm512_setzero_ps, _mm512_set1_ps, _mm512_loadu_ps, _mm512_storeu_ps,
        _mm512_fmadd_ps, _mm512_add_ps,
        transpose: transpose::avx512_f32);

    mod transpose {
        //! In-register transposes of one `LANES x LANES` block (see
        //! `Lanes::transpose`): loads of `src`'s rows, shuffles, stores of `dst`'s.
        //! Each works in stages of growing granularity (elements, pairs, 128-bit
        //! lanes), as the classic unpack-and-shuffle transposes do; packing a
        //! column-major B this way replaced element-by-element copies the compiler
        //! had turned into scatters (W4's `d_z @ w.T` spent 14% of its time
        //! packing).
        //!
        //! # Safety (every function)
        //! The instruction set must be enabled, and the blocks valid as
        //! `Lanes::transpose` requires.
        use std::arch::x86_64::*;

        /// Row `i` of `src`.
        #[inline(always)]
        unsafe fn row<T>(src: *const T, stride: isize, i: usize) -> *const T {
            // SAFETY: the caller's contract.
            unsafe { src.offset(i as isize * stride) }
        }

        /// Row `i` of `dst`.
        #[inline(always)]
        unsafe fn row_mut<T>(dst: *mut T, stride: isize, i: usize) -> *mut T {
            // SAFETY: the caller's contract.
            unsafe { dst.offset(i as isize * stride) }
        }

        #[inline(always)]
        pub(crate) unsafe fn avx512_f32(src: *const f32, ss: isize, dst: *mut f32, ds: isize) {
            // SAFETY: the module's contract.
            unsafe {
                let r: [__m512; 16] = std::array::from_fn(|i| _mm512_loadu_ps(row(src, ss, i)));
                // Stage 1: in each 128-bit lane, rows 2g and 2g+1 interleaved.
                let a: [__m512; 16] = std::array::from_fn(|i| {
                    let (x, y) = (r[i & !1], r[i | 1]);
                    if i % 2 == 0 {
                        _mm512_unpacklo_ps(x, y)
                    } else {
                        _mm512_unpackhi_ps(x, y)
                    }
                });
                // Stage 2: `b[4g + q]`'s lane `l` holds rows 4g..4g+3 of column
                // 4l + q.
                let b: [__m512; 16] = std::array::from_fn(|i| {
                    let (g, q) = (i / 4, i % 4);
                    let x = _mm512_castps_pd(a[4 * g + q / 2]);
                    let y = _mm512_castps_pd(a[4 * g + 2 + q / 2]);
                    _mm512_castpd_ps(if q % 2 == 0 {
                        _mm512_unpacklo_pd(x, y)
                    } else {
                        _mm512_unpackhi_pd(x, y)
                    })
                });
                // Stage 3: lanes 0 and 2 (`lo`) or 1 and 3 (`hi`) of row groups
                // 0, 1 (`c`) and 2, 3 (`d`); stage 4 gathers one lane from each
                // group: output row 4l + q is lane l of b[q], b[4+q], b[8+q], b[12+q].
                for q in 0..4 {
                    let c_lo = _mm512_shuffle_f32x4::<0x88>(b[q], b[4 + q]);
                    let c_hi = _mm512_shuffle_f32x4::<0xDD>(b[q], b[4 + q]);
                    let d_lo = _mm512_shuffle_f32x4::<0x88>(b[8 + q], b[12 + q]);
                    let d_hi = _mm512_shuffle_f32x4::<0xDD>(b[8 + q], b[12 + q]);
                    _mm512_storeu_ps(
                        row_mut(dst, ds, q),
                        _mm512_shuffle_f32x4::<0x88>(c_lo, d_lo),
                    );
                    _mm512_storeu_ps(
                        row_mut(dst, ds, 4 + q),
                        _mm512_shuffle_f32x4::<0x88>(c_hi, d_hi),
                    );
                    _mm512_storeu_ps(
                        row_mut(dst, ds, 8 + q),
                        _mm512_shuffle_f32x4::<0xDD>(c_lo, d_lo),
                    );
                    _mm512_storeu_ps(
                        row_mut(dst, ds, 12 + q),
                        _mm512_shuffle_f32x4::<0xDD>(c_hi, d_hi),
                    );
                }
            }
        }

        #[inline(always)]
        pub(crate) unsafe fn avx512_f64(src: *const f64, ss: isize, dst: *mut f64, ds: isize) {
            // SAFETY: the module's contract.
            unsafe {
                let r: [__m512d; 8] = std::array::from_fn(|i| _mm512_loadu_pd(row(src, ss, i)));
                // Stage 1: `a[2g + q]`'s lane `l` holds rows 2g, 2g+1 of column 2l + q.
                let a: [__m512d; 8] = std::array::from_fn(|i| {
                    let (x, y) = (r[i & !1], r[i | 1]);
                    if i % 2 == 0 {
                        _mm512_unpacklo_pd(x, y)
                    } else {
                        _mm512_unpackhi_pd(x, y)
                    }
                });
                // Output row 2l + q is lane l of a[q], a[2+q], a[4+q], a[6+q].
                for q in 0..2 {
                    let c_lo = _mm512_shuffle_f64x2::<0x88>(a[q], a[2 + q]);
                    let c_hi = _mm512_shuffle_f64x2::<0xDD>(a[q], a[2 + q]);
                    let d_lo = _mm512_shuffle_f64x2::<0x88>(a[4 + q], a[6 + q]);
                    let d_hi = _mm512_shuffle_f64x2::<0xDD>(a[4 + q], a[6 + q]);
                    _mm512_storeu_pd(
                        row_mut(dst, ds, q),
                        _mm512_shuffle_f64x2::<0x88>(c_lo, d_lo),
                    );
                    _mm512_storeu_pd(
                        row_mut(dst, ds, 2 + q),
                        _mm512_shuffle_f64x2::<0x88>(c_hi, d_hi),
                    );
                    _mm512_storeu_pd(
                        row_mut(dst, ds, 4 + q),
                        _mm512_shuffle_f64x2::<0xDD>(c_lo, d_lo),
                    );
                    _mm512_storeu_pd(
                        row_mut(dst, ds, 6 + q),
                        _mm512_shuffle_f64x2::<0xDD>(c_hi, d_hi),
                    );
                }
            }
        }

        #[inline(always)]
        pub(crate) unsafe fn avx2_f32(src: *const f32, ss: isize, dst: *mut f32, ds: isize) {
            // SAFETY: the module's contract.
            unsafe {
                let r: [__m256; 8] = std::array::from_fn(|i| _mm256_loadu_ps(row(src, ss, i)));
                let a: [__m256; 8] = std::array::from_fn(|i| {
                    let (x, y) = (r[i & !1], r[i | 1]);
                    if i % 2 == 0 {
                        _mm256_unpacklo_ps(x, y)
                    } else {
                        _mm256_unpackhi_ps(x, y)
                    }
                });
                // `b[4g + q]`'s lane `l` holds rows 4g..4g+3 of column 4l + q.
                let b: [__m256; 8] = std::array::from_fn(|i| {
                    let (g, q) = (i / 4, i % 4);
                    let x = _mm256_castps_pd(a[4 * g + q / 2]);
                    let y = _mm256_castps_pd(a[4 * g + 2 + q / 2]);
                    _mm256_castpd_ps(if q % 2 == 0 {
                        _mm256_unpacklo_pd(x, y)
                    } else {
                        _mm256_unpackhi_pd(x, y)
                    })
                });
                for q in 0..4 {
                    _mm256_storeu_ps(
                        row_mut(dst, ds, q),
                        _mm256_permute2f128_ps::<0x20>(b[q], b[4 + q]),
                    );
                    _mm256_storeu_ps(
                        row_mut(dst, ds, 4 + q),
                        _mm256_permute2f128_ps::<0x31>(b[q], b[4 + q]),
                    );
                }
            }
        }

        #[inline(always)]
        pub(crate) unsafe fn avx2_f64(src: *const f64, ss: isize, dst: *mut f64, ds: isize) {
            // SAFETY: the module's contract.
            unsafe {
                let r: [__m256d; 4] = std::array::from_fn(|i| _mm256_loadu_pd(row(src, ss, i)));
                let a: [__m256d; 4] = std::array::from_fn(|i| {
                    let (x, y) = (r[i & !1], r[i | 1]);
                    if i % 2 == 0 {
                        _mm256_unpacklo_pd(x, y)
                    } else {
                        _mm256_unpackhi_pd(x, y)
                    }
                });
                for q in 0..2 {
                    _mm256_storeu_pd(
                        row_mut(dst, ds, q),
                        _mm256_permute2f128_pd::<0x20>(a[q], a[2 + q]),
                    );
                    _mm256_storeu_pd(
                        row_mut(dst, ds, 2 + q),
                        _mm256_permute2f128_pd::<0x31>(a[q], a[2 + q]),
                    );
                }
            }
        }
    }
}
