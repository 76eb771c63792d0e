//! Matrix products for generated code: `c = a @ b` or `c += a @ b` on ndarray views
//! of any strides (a transpose is a view, never a copy), with the packing scratch
//! taken from a [`GemmScratch`] the caller owns, so a product allocates nothing.
//!
//! Why our own GEMM and not a library's: every well-kept pure-Rust GEMM (`gemm`,
//! ndarray's `matrixmultiply`, `faer`) allocates its packing buffers inside the call,
//! and a generated training step must allocate nothing once its workspace exists. The
//! algorithm is the textbook one (Goto and van de Geijn, "Anatomy of high-performance
//! matrix multiplication", 2008; the BLIS loop order):
//!
//! ```text
//! for each block of NC columns of B and C
//!   for each block of KC steps of k        pack B's KC x NC block, in NR-wide panels
//!     for each block of MC rows of A       pack A's MC x KC block, in MR-tall panels
//!       for each NR-wide panel of B        (stays in L1 across the next loop)
//!         for each MR-tall panel of A      micro-kernel: an MR x NR tile of C
//!       the last n % LANES columns         dot products along k (`dot.rs`), when
//!                                          A is read in place row-major
//! ```
//!
//! With several threads ([`Threads`]) a product is cut into as many parts as
//! there are threads, along the rows or the columns of `C` at tile boundaries;
//! each part is a product of its own, packed into its thread's scratch. Every
//! element of `C` is computed by the same operations in the same order whatever
//! the cut (the `k` blocking does not depend on it), so results are bitwise the
//! same for every thread count. A product with few rows and a long `k` is
//! computed as two products over the halves of `k`, added ([`split_k`]): on any
//! thread count, since that changes the order of the sum.
//!
//! The micro-kernel (`kernel.rs`) keeps its tile in registers across the `k` loop;
//! it is compiled for AVX-512, for AVX2+FMA and as portable scalar code, and the
//! best the CPU has is picked at run time. `unsafe` is confined to that kernel, the
//! packing, and the raw-pointer plumbing between them: it is what SIMD intrinsics
//! and strided access without bounds checks cost. Measured: see BENCHMARKS.md
//! (`matmul ceiling` rows, against ndarray's `general_mat_mul` in the same run).

mod dot;
mod kernel;
mod small;

use crate::Float;
use crate::parallel::{RowOutputs, SendPtr, Threads};
use kernel::{Lanes, Panels, Scalar, TileOut};
use ndarray::{ArrayView2, ArrayViewMut2};
use std::any::TypeId;

/// The packing buffers of [`matmul`], one per thread. A generated workspace owns
/// one, reserved for the model's products, so products allocate nothing.
#[derive(Clone, Debug)]
pub struct GemmScratch<F> {
    /// One buffer per thread; all the same length.
    bufs: Vec<Vec<F>>,
    /// The second half's `C` of a product split along `k` ([`split_k`]).
    partial: Vec<F>,
}

impl<F: Float> Default for GemmScratch<F> {
    fn default() -> Self {
        GemmScratch::new()
    }
}

impl<F: Float> GemmScratch<F> {
    /// An empty scratch for one thread: the first product grows it.
    pub fn new() -> GemmScratch<F> {
        GemmScratch {
            bufs: vec![Vec::new()],
            partial: Vec::new(),
        }
    }

    /// Room for `threads` threads (buffers as large as the ones there are).
    pub fn set_threads(&mut self, threads: usize) {
        let len = self.len();
        self.bufs
            .resize_with(threads.max(1), || vec![F::zero(); len]);
    }

    /// Makes every thread's buffer large enough for an `[m, k] @ [k, n]` product
    /// (allocating only if one is too small).
    pub fn reserve(&mut self, m: usize, k: usize, n: usize) {
        self.reserve_on(Isa::detect(), m, k, n);
    }

    /// [`GemmScratch::reserve`] for the kernel of `isa`.
    fn reserve_on(&mut self, isa: Isa, m: usize, k: usize, n: usize) {
        let needed = isa.scratch_len::<F>(m, k, n);
        for buf in &mut self.bufs {
            if buf.len() < needed {
                buf.resize(needed, F::zero());
            }
        }
        let (mr, nr) = isa.tile::<F>();
        let blocks = Blocking::new(mr, nr, size_of::<F>());
        let partial = blocks.split_k_len(m, k, n);
        if self.partial.len() < partial {
            self.partial.resize(partial, F::zero());
        }
    }

    /// Elements held per thread (for tests that check a product did not grow it).
    pub fn len(&self) -> usize {
        self.bufs.first().map_or(0, Vec::len)
    }

    /// Whether nothing has been reserved yet.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Threads the scratch has room for.
    pub fn threads(&self) -> usize {
        self.bufs.len()
    }
}

/// `c = a @ b` (`accumulate == false`) or `c += a @ b`, on `threads`.
///
/// Shapes must agree: `a` is `[m, k]`, `b` is `[k, n]`, `c` is `[m, n]`; generated
/// code checks shapes before calling, so a mismatch here is a bug and panics. A
/// `scratch` too small for the product (see [`GemmScratch::reserve`]) is grown;
/// one with room for fewer threads than `threads` has (see
/// [`GemmScratch::set_threads`]) runs the product on as many threads as it has
/// room for. Small products run on the calling thread alone.
pub fn matmul<F: Float>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut GemmScratch<F>,
    threads: &Threads,
) {
    matmul_with(Isa::detect(), a, b, c, accumulate, scratch, threads)
}

/// [`matmul`], then `then(i, j0, values, rows)` on every stretch of a row of `C`
/// as soon as it is final: `values` is `C[i, j0..j0 + len]`, and `rows` holds the
/// same stretch of row `i` of each of `outputs` (arrays of `C`'s shape).
///
/// This is how generated code fuses the elementwise work that follows a product
/// (a bias, an activation, an activation's derivative) into it: each block of rows
/// is finished after its last block of `k`, while it is still in cache (L2), on
/// the thread that computed it, instead of in a pass of its own over the whole of
/// `C` after the product. (Finishing each tile from L1 was slower: its 32-wide
/// stretches leave a vectorised `tanh` mostly in its remainder loop.)
/// Every element of `C` is in exactly one stretch, so each element of the outputs
/// is handed out once; the stretches and their order depend on the product's cut
/// across threads, but the values do not (each is a function of its own element).
///
/// `c` must be in standard (row-major, contiguous) layout; panics unless it is
/// and unless every output has `C`'s rows of `C`'s width.
#[allow(clippy::too_many_arguments)]
pub fn matmul_then<'o, F: Float, O: RowOutputs<'o>>(
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut GemmScratch<F>,
    threads: &Threads,
    outputs: O,
    then: impl Fn(usize, usize, &[F], O::Row) + Sync,
) {
    matmul_then_with(
        Isa::detect(),
        a,
        b,
        c,
        accumulate,
        scratch,
        threads,
        outputs,
        then,
    )
}

/// [`matmul_then`] with the instruction set chosen by the caller.
#[allow(clippy::too_many_arguments)]
fn matmul_then_with<'o, F: Float, O: RowOutputs<'o>>(
    isa: Isa,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    mut c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut GemmScratch<F>,
    threads: &Threads,
    outputs: O,
    then: impl Fn(usize, usize, &[F], O::Row) + Sync,
) {
    assert!(
        c.is_standard_layout(),
        "matmul_then: C must be row-major and contiguous"
    );
    let (rows, width) = c.dim();
    outputs.check_shape(rows, width);
    // Positions are recovered from addresses: the cut and the orientation of the
    // product move its tiles around, but not where an element of `C` lives.
    let base = c.as_mut_ptr() as usize;
    let finish = move |at: *mut u8, len: usize| {
        let offset = (at as usize - base) / size_of::<F>();
        let (i, j0) = (offset / width.max(1), offset % width.max(1));
        // SAFETY: the GEMM calls this once per stretch of a row of `C`, after its
        // last write to it and with no other reference into it (`Finish`); the
        // stretch is inside row `i` of `C`, whose shape `check_shape` gave every
        // output, and is handed out once.
        unsafe {
            let values = std::slice::from_raw_parts(at.cast::<F>().cast_const(), len);
            then(i, j0, values, outputs.stretch(i, j0, len));
        }
    };
    finishing(isa, a, b, c, accumulate, scratch, threads, Some(&finish));
}

/// What the GEMM calls on each stretch of a row of `C` once it is final: its first
/// element (type-erased, so that the instruction sets' entry points need not be
/// generic over it) and its length. Called once per stretch, from the thread
/// that wrote it, with no other reference into the stretch.
type Finish<'a> = &'a (dyn Fn(*mut u8, usize) + Sync);

/// [`matmul`] with the instruction set chosen by the caller (tests run every one).
fn matmul_with<F: Float>(
    isa: Isa,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut GemmScratch<F>,
    threads: &Threads,
) {
    finishing(isa, a, b, c, accumulate, scratch, threads, None)
}

/// [`matmul_with`], and what to run on each finished stretch of `C`.
#[allow(clippy::too_many_arguments)]
fn finishing<F: Float>(
    isa: Isa,
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    mut c: ArrayViewMut2<'_, F>,
    accumulate: bool,
    scratch: &mut GemmScratch<F>,
    threads: &Threads,
    finish: Option<Finish<'_>>,
) {
    assert!(isa.supported(), "{isa:?} is not available on this CPU");
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
        if let Some(finish) = finish {
            let (rs, cs) = (c.strides()[0], c.strides()[1]);
            // SAFETY: the block is the whole of `c`, borrowed mutably here.
            unsafe { finish_block(finish, c.as_mut_ptr(), (rs, cs), (m, n)) };
        }
        return;
    }
    scratch.reserve_on(isa, m, k, n);
    let product = Product {
        m,
        n,
        k,
        a: Operand::of(&a),
        b: Operand::of(&b),
        c: c.as_mut_ptr(),
        c_rs: c.strides()[0],
        c_cs: c.strides()[1],
        overwrite: !accumulate,
    };
    let (mr, nr) = isa.tile::<F>();
    let product = product.oriented(mr);
    let small = small::Shape::of(&product);
    let threads_free = threads.count().min(scratch.threads());
    if small.is_none()
        && let Some(k0) = Blocking::new(mr, nr, size_of::<F>()).split_k(&product)
    {
        // SAFETY: `product` describes `a`, `b` and `c`, borrowed for the call (`c`
        // uniquely), and `isa` is one this CPU has.
        return unsafe { split_k(isa, &product, k0, scratch, (threads, threads_free), finish) };
    }
    let cut = Cut::choose(&product, (mr, nr), threads_free);
    let route = small.map_or(Route::Blocked, Route::Small);
    let parts = SendProduct(&product);
    threads.for_each_with(&mut scratch.bufs, cut.parts, |part, buf| {
        let sub = cut.part(parts.get(), part);
        // SAFETY: the views are valid for their shapes and strides (ndarray's
        // invariant); `c` is a unique borrow, so it aliases neither `a` nor `b`;
        // the parts write disjoint blocks of `c` (`Cut::part`); the scratch is
        // this thread's alone; and `isa` is one this CPU has (`Isa::detect`, or a
        // test's `Isa::available`).
        unsafe { run_part(isa, sub, buf, route, finish) }
    });
}

/// Runs one part of a product in its thread's scratch buffer.
///
/// # Safety
/// As for [`Isa::run`], with `buf` holding the scratch the part needs.
unsafe fn run_part<F: Float>(
    isa: Isa,
    product: Product<F>,
    buf: &mut [F],
    route: Route,
    finish: Option<Finish<'_>>,
) {
    let scratch = Scratch::aligned(buf);
    // SAFETY: the caller's contract.
    unsafe {
        isa.run(Job {
            product,
            scratch,
            route,
            finish,
        })
    }
}

/// How a product (or a thread's part of it) is computed: by a small-product loop,
/// or by the blocked loops around the kernel.
#[derive(Clone, Copy, Debug)]
enum Route {
    Small(small::Shape),
    Blocked,
}

/// A product shared by the threads computing its parts.
struct SendProduct<'a, F>(&'a Product<F>);

impl<'a, F> SendProduct<'a, F> {
    // A method, not `.0`: a closure would capture the field, not the wrapper.
    fn get(&self) -> &'a Product<F> {
        self.0
    }
}

// SAFETY: the threads read the operands and write disjoint blocks of `C` (see
// `Cut::part`), and `F: Float` values may cross threads.
unsafe impl<F: Float> Sync for SendProduct<'_, F> {}
// SAFETY: as above.
unsafe impl<F: Float> Send for SendProduct<'_, F> {}

/// Below this many FLOPs (`2 m n k`) a product runs on one thread: a few
/// microseconds of work, where starting a region would cost a noticeable share.
/// (Tests cut every product, however small.)
const PARALLEL_FLOPS: usize = if cfg!(test) { 1 } else { 1 << 18 };

/// How a product is cut into parts, one per thread: blocks of `C`'s rows or of its
/// columns, at the kernel's tile boundaries.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Cut {
    /// Cut along the rows (`m`) rather than the columns.
    rows: bool,
    parts: usize,
    /// Tiles along the cut axis, and the tile's size along it.
    tiles: usize,
    tile: usize,
}

impl Cut {
    /// The cut for `threads` threads: the axis whose tiles share out most evenly
    /// (an uneven share makes every thread wait for the busiest); on a tie, the
    /// one that repeats less packing.
    ///
    /// Each part is a product of its own, packed by its thread into its own
    /// scratch: cutting the rows repeats B's packing in every part, cutting the
    /// columns A's. On a tie of those too, the columns: each thread then packs
    /// and keeps in its L2 only its part of B. Measured against packing B once
    /// for both threads in a shared buffer (f32 and f64, AVX-512, Zen 5,
    /// 2026-12-02, operands cycled through L3): W4's three products 1.06-1.24x
    /// faster, W3's small ones 1.2-1.6x (one parallel region, not two, and no
    /// packed panel read from the other core's cache).
    fn choose<F>(p: &Product<F>, (mr, nr): (usize, usize), threads: usize) -> Cut {
        let one = Cut {
            rows: true,
            parts: 1,
            tiles: 1,
            tile: p.m,
        };
        if threads <= 1 || 2 * p.m * p.n * p.k < PARALLEL_FLOPS {
            return one;
        }
        let along = |rows: bool| {
            let (len, tile) = if rows { (p.m, mr) } else { (p.n, nr) };
            let tiles = len.div_ceil(tile);
            let parts = threads.min(tiles);
            let busiest = tiles.div_ceil(parts);
            // Work of the busiest part, in tiles of the whole product.
            let share = busiest as f64 / tiles as f64;
            (
                Cut {
                    rows,
                    parts,
                    tiles,
                    tile,
                },
                share,
            )
        };
        let (by_rows, row_share) = along(true);
        let (by_cols, col_share) = along(false);
        let best = if (row_share - col_share).abs() < 0.02 {
            let packing = Packing::of(p, &Blocking::new(mr, nr, size_of::<F>()));
            let repeated_by_rows = if packing.b { p.k * p.n } else { 0 };
            // A column-major A read in place counts as packed: every part
            // reads all of it, a line per step. W3's `d_w1 = x.T @ d_z1` with A
            // in place, two threads (AVX-512, Zen 5, 2026-12-04, against A
            // packed and the rows cut): cut by columns 2.7-5.3% slower, by rows
            // 2.6% faster.
            let repeated_by_cols = if packing.a || p.a.cs != 1 {
                p.m * p.k
            } else {
                0
            };
            if repeated_by_cols <= repeated_by_rows {
                by_cols
            } else {
                by_rows
            }
        } else if row_share < col_share {
            by_rows
        } else {
            by_cols
        };
        if best.parts <= 1 { one } else { best }
    }

    /// Part `i` of `p`: its block of rows or columns, as a product of its own.
    fn part<F: Copy>(&self, p: &Product<F>, i: usize) -> Product<F> {
        if self.parts <= 1 {
            return p.clone();
        }
        // Tiles `first..end` of the cut axis; the first `tiles % parts` parts get
        // one tile more.
        let (base, extra) = (self.tiles / self.parts, self.tiles % self.parts);
        let first = i * base + i.min(extra);
        let count = base + usize::from(i < extra);
        let len = if self.rows { p.m } else { p.n };
        let start = (first * self.tile).min(len);
        let end = ((first + count) * self.tile).min(len);
        let mut sub = p.clone();
        // SAFETY (both arms): `start < len`, so the offsets stay inside the
        // operands and `C`.
        unsafe {
            if self.rows {
                sub.m = end - start;
                sub.a.ptr = p.a.at(start, 0);
                sub.c = p.c.offset(start as isize * p.c_rs);
            } else {
                sub.n = end - start;
                sub.b.ptr = p.b.at(0, start);
                sub.c = p.c.offset(start as isize * p.c_cs);
            }
        }
        sub
    }
}

/// `k / m` from which a product is split along `k` ([`Blocking::split_k`]).
const K_SPLIT_RATIO: usize = 8;

/// `p` computed as two products over the halves of `k`, `C (+)= A0 @ B0` and
/// `P = A1 @ B1` into the scratch's `partial`, one part each, then `C += P` by
/// blocks of rows, each block finished as it is summed.
///
/// Why: a product with few rows and a long `k` (W1's `x @ w1`, 64x1000x100)
/// cut by rows makes every thread pack all of B, and B is a parameter that the
/// update just wrote half of on each core; cut by columns, its 100 columns are
/// seven 16-wide tiles, four against three. Cut along `k`, each thread packs and
/// reads only the rows of B that its part of the update wrote. Measured on W1's
/// generated step (Intel Xeon, Sapphire Rapids class, 2026-12-03, split and not
/// split alternating in one process, medians of about 1500 steps): two threads 0.782 ->
/// 0.674 ms and 0.748 -> 0.631 in two runs; one thread 0.883 -> 0.897, the cost
/// of adding the halves and of the extra pass over `k`'s blocks.
///
/// # Safety
/// `p` must describe valid operands and a `C` aliasing neither, borrowed for the
/// call.
unsafe fn split_k<F: Float>(
    isa: Isa,
    p: &Product<F>,
    k0: usize,
    scratch: &mut GemmScratch<F>,
    (threads, threads_free): (&Threads, usize),
    finish: Option<Finish<'_>>,
) {
    let (m, n) = (p.m, p.n);
    if scratch.partial.len() < m * n {
        scratch.partial.resize(m * n, F::zero());
    }
    let partial = scratch.partial.as_mut_ptr();
    let mut first = p.clone();
    first.k = k0;
    let mut second = p.clone();
    second.k = p.k - k0;
    // SAFETY: `k0 < p.k`: column `k0` of A and row `k0` of B are inside them.
    unsafe {
        second.a.ptr = p.a.at(0, k0);
        second.b.ptr = p.b.at(k0, 0);
    }
    second.c = partial;
    (second.c_rs, second.c_cs) = (n as isize, 1);
    second.overwrite = true;
    // With more than two threads each half is cut again, by rows or columns,
    // which does not change its bits.
    let tile = isa.tile::<F>();
    let cuts = [&first, &second].map(|half| Cut::choose(half, tile, (threads_free / 2).max(1)));
    let halves = [SendProduct(&first), SendProduct(&second)];
    threads.for_each_with(
        &mut scratch.bufs,
        cuts[0].parts + cuts[1].parts,
        |part, buf| {
            let (half, sub) = if part < cuts[0].parts {
                (0, part)
            } else {
                (1, part - cuts[0].parts)
            };
            let product = cuts[half].part(halves[half].get(), sub);
            // SAFETY: as in `finishing`; the halves write `C` and `partial`,
            // which are disjoint, and `partial` holds `m x n` elements.
            unsafe { run_part(isa, product, buf, Route::Blocked, None) }
        },
    );
    let (c, c_rs, c_cs) = (SendPtr(p.c), p.c_rs, p.c_cs);
    let partial = SendPtr(partial);
    let parts = threads.count().min(m);
    threads.for_each(parts, |part| {
        let rows = m * part / parts..m * (part + 1) / parts;
        // SAFETY: the parts' rows are disjoint blocks of `C` and of `partial`
        // (`m x n`, row-major), which no one else writes now.
        unsafe {
            for i in rows.clone() {
                let row = c.get().offset(i as isize * c_rs);
                let summand = std::slice::from_raw_parts(partial.get().add(i * n), n);
                if c_cs == 1 {
                    // Contiguous: a loop over slices, which vectorises.
                    let row = std::slice::from_raw_parts_mut(row, n);
                    for (c, s) in row.iter_mut().zip(summand) {
                        *c = *c + *s;
                    }
                } else {
                    for (j, s) in summand.iter().enumerate() {
                        let at = row.offset(j as isize * c_cs);
                        *at = *at + *s;
                    }
                }
            }
            if let Some(finish) = finish {
                let first = c.get().offset(rows.start as isize * c_rs);
                finish_block(finish, first, (c_rs, c_cs), (rows.len(), n));
            }
        }
    });
}

/// Whether `F` is `G` (the kernels are compiled for `f32` and `f64` only).
#[cfg_attr(not(target_arch = "x86_64"), allow(dead_code))]
fn is<F: 'static, G: 'static>() -> bool {
    TypeId::of::<F>() == TypeId::of::<G>()
}

/// The instruction sets the kernel is compiled for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Isa {
    Scalar,
    #[cfg(target_arch = "x86_64")]
    Avx2,
    #[cfg(target_arch = "x86_64")]
    Avx512,
}

impl Isa {
    /// The best this CPU has (`is_x86_feature_detected!` caches its answer).
    fn detect() -> Isa {
        #[cfg(target_arch = "x86_64")]
        {
            if is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
                return Isa::Avx2;
            }
        }
        Isa::Scalar
    }

    /// Whether this CPU can run the instruction set.
    fn supported(self) -> bool {
        match self {
            Isa::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 => is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma"),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 => is_x86_feature_detected!("avx512f"),
        }
    }

    /// Every instruction set this CPU can run, for tests.
    #[cfg(test)]
    fn available() -> Vec<Isa> {
        let all = [
            Isa::Scalar,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2,
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512,
        ];
        all.into_iter().filter(|isa| isa.supported()).collect()
    }

    /// The kernel's tile shape `(MR, NR)` for `F`.
    fn tile<F: Float>(self) -> (usize, usize) {
        fn shape<F: num_traits::Float, V: Lanes<F>>() -> (usize, usize) {
            (V::MR, V::NV * V::LANES)
        }
        match self {
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if is::<F, f64>() => shape::<f64, kernel::Avx512F64>(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx512 if is::<F, f32>() => shape::<f32, kernel::Avx512F32>(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if is::<F, f64>() => shape::<f64, kernel::Avx2F64>(),
            #[cfg(target_arch = "x86_64")]
            Isa::Avx2 if is::<F, f32>() => shape::<f32, kernel::Avx2F32>(),
            _ => shape::<F, Scalar<F>>(),
        }
    }

    /// Scratch elements an `[m, k] @ [k, n]` product needs: one packed block of B
    /// and one of A, plus slack to start B on a 64-byte boundary; or what a small
    /// product copies. Either way round: the kernel may compute `C^T = B^T @ A^T`
    /// instead.
    fn scratch_len<F: Float>(self, m: usize, k: usize, n: usize) -> usize {
        let (mr, nr) = self.tile::<F>();
        let blocks = Blocking::new(mr, nr, size_of::<F>());
        let blocked = blocks.packed_len(m, k, n).max(blocks.packed_len(n, k, m));
        let small = small::scratch_len(m, k, n).max(small::scratch_len(n, k, m));
        blocked.max(small) + ALIGN_SLACK
    }

    /// Runs `job` with this instruction set's code: the blocked loops around its
    /// kernel, or the loop for a small product (`small`).
    ///
    /// # Safety
    /// The CPU must have the instruction set; the job's product must address
    /// valid operands and a `C` no other thread writes, and its scratch must hold
    /// `scratch_len` elements for the product.
    unsafe fn run<F: Float>(self, job: Job<'_, F>) {
        // SAFETY (all arms): forwarded contract; the casts are between `F` and the
        // type `TypeId` just proved it is, and `supported` was checked by the caller.
        unsafe {
            match self {
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if is::<F, f64>() => x86::avx512_f64(job.cast()),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx512 if is::<F, f32>() => x86::avx512_f32(job.cast()),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 if is::<F, f64>() => x86::avx2_f64(job.cast()),
                #[cfg(target_arch = "x86_64")]
                Isa::Avx2 if is::<F, f32>() => x86::avx2_f32(job.cast()),
                _ => job_for::<F, Scalar<F>>(job),
            }
        }
    }
}

/// What an instruction set's entry point runs: a product (or a thread's part of
/// one) by its route, in its scratch.
struct Job<'a, F> {
    product: Product<F>,
    scratch: Scratch<F>,
    route: Route,
    finish: Option<Finish<'a>>,
}

impl<'a, F: Copy> Job<'a, F> {
    /// The same job on another element type (after a `TypeId` check).
    fn cast<G>(self) -> Job<'a, G> {
        Job {
            product: self.product.cast(),
            scratch: self.scratch.cast(),
            route: self.route,
            finish: self.finish,
        }
    }
}

/// Calls `finish` on every stretch of `C` in the `rows x cols` block at `c` with
/// strides `(rs, cs)`: its rows when they are contiguous, else its columns when
/// those are (a product computed as `C^T = B^T A^T` walks `C`'s rows as its
/// columns), else element by element.
///
/// # Safety
/// The block must be inside `C`, final, and written by no other thread.
#[inline(always)]
unsafe fn finish_block<F>(
    finish: Finish<'_>,
    c: *mut F,
    (rs, cs): (isize, isize),
    (rows, cols): (usize, usize),
) {
    // SAFETY: positions inside the block, by the caller's contract.
    unsafe {
        if cs == 1 {
            for r in 0..rows {
                finish(c.offset(r as isize * rs).cast(), cols);
            }
        } else if rs == 1 {
            for j in 0..cols {
                finish(c.offset(j as isize * cs).cast(), rows);
            }
        } else {
            for r in 0..rows {
                for j in 0..cols {
                    finish(c.offset(r as isize * rs + j as isize * cs).cast(), 1);
                }
            }
        }
    }
}

/// Runs `job` with vectors `V`.
///
/// # Safety
/// As for [`Isa::run`].
#[inline(always)]
unsafe fn job_for<F: num_traits::Float, V: Lanes<F>>(job: Job<F>) {
    let Job {
        product,
        scratch,
        route,
        finish,
    } = job;
    // SAFETY: forwarded contract; a small product's part is final once it has
    // run, and is this thread's alone.
    unsafe {
        match route {
            Route::Small(shape) => {
                small::run::<F, V>(shape, &product, scratch);
                if let Some(finish) = finish {
                    let p = &product;
                    finish_block(finish, p.c, (p.c_rs, p.c_cs), (p.m, p.n));
                }
            }
            Route::Blocked => blocked::<F, V>(&product, scratch, finish),
        }
    }
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    //! The `#[target_feature]` entry points: `blocked` and the kernel inline into
    //! each, compiled for its instruction set.
    use super::kernel::{Avx2F32, Avx2F64, Avx512F32, Avx512F64};
    use super::{Job, job_for};

    macro_rules! entry {
        ($name:ident, $f:ty, $lanes:ty, $features:literal) => {
            /// # Safety
            /// As for `Isa::run`, for this instruction set.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(job: Job<'_, $f>) {
                // SAFETY: forwarded contract.
                unsafe { job_for::<$f, $lanes>(job) }
            }
        };
    }
    entry!(avx512_f64, f64, Avx512F64, "avx512f");
    entry!(avx512_f32, f32, Avx512F32, "avx512f");
    entry!(avx2_f64, f64, Avx2F64, "avx2,fma");
    entry!(avx2_f32, f32, Avx2F32, "avx2,fma");
}

/// Spare elements (16, for any `F` of 4 bytes or more) to move the scratch's start
/// to a cache line, so packed panels do not straddle lines needlessly.
const ALIGN_SLACK: usize = 64 / std::mem::size_of::<f32>();

/// A product's scratch: `len` elements from `ptr` (64-byte aligned when the buffer
/// allows; the kernel's loads do not require it).
struct Scratch<F> {
    ptr: *mut F,
    len: usize,
}

impl<F> Scratch<F> {
    /// The part of `buf` from its first 64-byte boundary.
    fn aligned(buf: &mut [F]) -> Scratch<F> {
        let offset = buf
            .as_ptr()
            .align_offset(64)
            .min(ALIGN_SLACK)
            .min(buf.len());
        let rest = &mut buf[offset..];
        Scratch {
            ptr: rest.as_mut_ptr(),
            len: rest.len(),
        }
    }

    /// The same scratch for another element type (after a `TypeId` check).
    fn cast<G>(self) -> Scratch<G> {
        Scratch {
            ptr: self.ptr.cast(),
            len: self.len,
        }
    }
}

/// Block sizes for a kernel with `MR x NR` tiles.
struct Blocking {
    /// The kernel's tile: `mr` rows by `nr` columns.
    mr: usize,
    nr: usize,
    /// Rows of A packed at once (a multiple of MR): `MC x KC` stays in L2.
    mc: usize,
    /// Steps of k per block, at most: 512 (2 KiB of each row of a tile's A in
    /// `f32`, 4 KiB in `f64`).
    kc: usize,
    /// Whether a `k` of at most [`SHORT_K`] steps is cut in blocks of at most
    /// `kc / 2` (`f64`; see [`Blocking::new`]).
    halves_short_k: bool,
    /// Columns of B packed at once (a multiple of NR): `KC x NC` stays in L3.
    nc: usize,
}

impl Blocking {
    /// Blocks for a `mr x nr` kernel on elements of `elem_bytes` bytes.
    ///
    /// `kc` is not the textbook "a `KC x NR` panel of B fits in L1" (with 32
    /// columns of `f32` that would be 256 steps): fewer k blocks store and reload C
    /// less often, and on Zen 5 the panel streams from L2 fast enough. Measured
    /// product by product (`nnc-bench --products`, AVX-512, 2026-12-01, kc 128 to
    /// 800 in one session): `f32` at 512 against 256, W4's `h @ w` 86% -> 88% of the
    /// peak and 73% -> 81% with its operands cold, `d_h = d_z @ w.T` 75% -> 79% cold,
    /// W3's `x @ w1` 93% -> 95%; 800 was worse again. `f64` takes 512 steps too
    /// (4 KiB), measured against 256 (AVX-512, Zen 5, 2026-12-04, alternating
    /// blocks of calls in one process): W4's three 256x500x500 products in one
    /// block of 500 rather than two of 250 1.4-2.6% faster, W3's `x @ w1` in two
    /// of 392 rather than four of 196 1.6-2.7%, W1's `x @ w1` level. Except that
    /// a `k` of at most [`SHORT_K`] keeps blocks of 256: W2's `d_w2 = h.T @ d_z`
    /// (100x300x3, a single 3-row tile once transposed) ran 16-20% slower in one
    /// block of 300 than in two of 150, though larger products over 300 steps
    /// gained 1-8% (256x300x256, 12x300x100, 100x300x12). Not measured on a core
    /// with less than 1 MiB of L2: the AVX2 kernel's blocks of A in `f64`, 126
    /// rows by 512 steps, take 504 KiB, all of a Zen 3's L2 (no workload's `f64`
    /// product has that many rows over that long a `k`: W1's `x @ w1` is 64 rows).
    fn new(mr: usize, nr: usize, elem_bytes: usize) -> Blocking {
        Blocking {
            mr,
            nr,
            mc: 128 / mr * mr,
            kc: 512,
            halves_short_k: elem_bytes == 8,
            nc: 2048 / nr * nr,
        }
    }

    /// Steps of k per block for a product over `k`: the fewest blocks of at most
    /// `kc` steps, all the same length (the last one shorter by less than one step
    /// per block). `k = 1100` is three blocks of 367 rather than two of 512 and one
    /// of 76, whose tiles would spend as long starting and storing as computing.
    /// It depends on `k` alone, so the order of every sum is the same for every
    /// cut of the product.
    fn k_step(&self, k: usize) -> usize {
        let kc = if self.halves_short_k && k <= SHORT_K {
            self.kc / 2
        } else {
            self.kc
        };
        k.div_ceil(k.div_ceil(kc).max(1)).max(1)
    }

    /// Rows of A per block for a product (or a thread's part of one) over `m`
    /// rows: the fewest blocks of at most `mc` rows, as even as whole tiles allow.
    /// Every block streams all of the packed B through the kernel, so a block of
    /// one tile pays B's reads for little work: W4's `h @ w` cut in two parts of
    /// 132 rows was blocks of 120 and 12 rows, and ran 1.44x its one-thread rate on
    /// two threads; as blocks of 72 and 60 rows it runs 1.97x (AVX-512, Zen 5,
    /// 2026-12-01, `nnc-bench --products --threads 2`). The blocks of rows do not
    /// change what is summed in which order.
    fn m_step(&self, m: usize) -> usize {
        let blocks = m.div_ceil(self.mc).max(1);
        m.div_ceil(blocks).next_multiple_of(self.mr)
    }

    /// Where a product is split along `k` ([`split_k`]), if it is: at the
    /// boundary of its k blocks nearest the middle, when it has two blocks or more
    /// and `C` is small beside B (`m` at most `k / K_SPLIT_RATIO`), so that adding
    /// the halves costs little beside the product. Decided from the shape alone,
    /// never from the thread count: a one-thread product is split the same way,
    /// so its bits are the same for every thread count.
    fn split_k<F>(&self, p: &Product<F>) -> Option<usize> {
        if 2 * p.m * p.n * p.k < PARALLEL_FLOPS || p.m * K_SPLIT_RATIO > p.k {
            return None;
        }
        let step = self.k_step(p.k);
        let blocks = p.k.div_ceil(step);
        (blocks >= 2).then(|| blocks / 2 * step)
    }

    /// The largest second `C` ([`split_k`]) of any product of at most `m` rows
    /// and `n` columns over `k`, in either orientation: a workspace reserved for
    /// a batch also runs smaller ones, and fewer rows over the same `k` may split
    /// where more did not.
    fn split_k_len(&self, m: usize, k: usize, n: usize) -> usize {
        if k.div_ceil(self.k_step(k)) < 2 {
            return 0;
        }
        let rows = k / K_SPLIT_RATIO;
        (m.min(rows) * n).max(n.min(rows) * m)
    }

    /// Elements of a packed block of B (first) and of A.
    fn packed_b_len(&self, k: usize, n: usize) -> usize {
        n.min(self.nc).div_ceil(self.nr) * panel_stride(k.min(self.kc), self.nr)
    }

    /// Elements of a packed block of A.
    fn packed_a_len(&self, m: usize, k: usize) -> usize {
        m.min(self.mc).next_multiple_of(self.mr) * k.min(self.kc)
    }

    /// Elements of the copy of B's last columns for dot products
    /// ([`dots_for_last_columns`]): fewer than `LANES` columns of a block of `k`,
    /// reserved as `nr` (the width `Blocking` knows; `LANES` is half of it, 32 KiB
    /// more than needed per thread on AVX-512).
    fn packed_dots_len(&self, k: usize) -> usize {
        self.nr * k.min(self.kc)
    }

    fn packed_len(&self, m: usize, k: usize, n: usize) -> usize {
        self.packed_b_len(k, n) + self.packed_a_len(m, k) + self.packed_dots_len(k)
    }
}

/// The longest `k` that [`Blocking::halves_short_k`] cuts in half-length blocks.
const SHORT_K: usize = 384;

/// Elements from one packed panel of B to the next: `kc x nr`, and a cache line or
/// two more, so that the panels' rows do not all fall in one L1 set (with 16 KiB
/// panels they would, and packing, which writes a row of every panel in turn,
/// missed its own writes).
fn panel_stride(kc: usize, nr: usize) -> usize {
    kc * nr + PANEL_PAD
}

/// See [`panel_stride`].
const PANEL_PAD: usize = 16;

/// Where [`pack_b`] writes: panel `j` at `ptr + j * stride`, `nr` columns wide.
struct PanelsOut<F> {
    ptr: *mut F,
    stride: usize,
    nr: usize,
}

// By hand: derived impls would demand `F: Copy`.
impl<F> Clone for PanelsOut<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for PanelsOut<F> {}

/// A matrix operand: where it starts and its strides, in elements.
#[derive(Debug)]
struct Operand<F> {
    ptr: *const F,
    rs: isize,
    cs: isize,
}

// By hand: derived impls would demand `F: Copy`, and a pointer is `Copy` anyway.
impl<F> Clone for Operand<F> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<F> Copy for Operand<F> {}

impl<F> Operand<F> {
    fn of(view: &ArrayView2<'_, F>) -> Operand<F> {
        Operand {
            ptr: view.as_ptr(),
            rs: view.strides()[0],
            cs: view.strides()[1],
        }
    }

    /// The same operand for another element type (after a `TypeId` check).
    fn cast<G>(self) -> Operand<G> {
        Operand {
            ptr: self.ptr.cast(),
            rs: self.rs,
            cs: self.cs,
        }
    }

    /// The operand's transpose.
    fn t(self) -> Operand<F> {
        Operand {
            ptr: self.ptr,
            rs: self.cs,
            cs: self.rs,
        }
    }

    /// The element at `(row, col)`.
    ///
    /// # Safety
    /// The position must be inside the operand.
    #[inline(always)]
    unsafe fn at(self, row: usize, col: usize) -> *const F {
        // SAFETY: the caller's contract.
        unsafe {
            self.ptr
                .offset(row as isize * self.rs + col as isize * self.cs)
        }
    }
}

/// One `C (+)= A @ B` on raw views.
#[derive(Debug)]
struct Product<F> {
    m: usize,
    n: usize,
    k: usize,
    a: Operand<F>,
    b: Operand<F>,
    c: *mut F,
    c_rs: isize,
    c_cs: isize,
    overwrite: bool,
}

// By hand: derived impls would demand `F: Clone`.
impl<F> Clone for Product<F> {
    fn clone(&self) -> Self {
        Product { ..*self }
    }
}

impl<F: Copy> Product<F> {
    /// The product as the kernel computes it best: itself, or `C^T = B^T @ A^T`
    /// (see [`better_transposed`]).
    fn oriented(self, mr: usize) -> Product<F> {
        if better_transposed(&self, mr) {
            self.transposed()
        } else {
            self
        }
    }

    /// The same product on another element type (after a `TypeId` check).
    fn cast<G>(&self) -> Product<G> {
        Product {
            m: self.m,
            n: self.n,
            k: self.k,
            a: self.a.cast(),
            b: self.b.cast(),
            c: self.c.cast(),
            c_rs: self.c_rs,
            c_cs: self.c_cs,
            overwrite: self.overwrite,
        }
    }

    /// `C^T (+)= B^T @ A^T`: the same product with rows and columns swapped.
    fn transposed(&self) -> Product<F> {
        Product {
            m: self.n,
            n: self.m,
            k: self.k,
            a: self.b.t(),
            b: self.a.t(),
            c: self.c,
            c_rs: self.c_cs,
            c_cs: self.c_rs,
            overwrite: self.overwrite,
        }
    }
}

/// Whether the kernel does better on `C^T = B^T @ A^T`. It vectorises along C's
/// rows and stores whole vectors only into contiguous rows, so: when C is
/// column-major; or when C is narrow (as `[N, 10]` scores are), so that padding its
/// columns to whole vectors would waste most lanes, A is column-major (so `A^T`,
/// the new B, is read in place, unpacked), and `k` is long enough for the
/// element-wise stores that come with a strided C not to matter.
fn better_transposed<F>(p: &Product<F>, mr: usize) -> bool {
    if p.c_cs != 1 {
        return p.c_rs == 1;
    }
    p.n <= mr && p.a.rs == 1 && p.k >= 16
}

/// Which operands a product packs into its scratch, and which the kernel reads in
/// place.
///
/// Packing is the textbook way to make the kernel's reads contiguous, but it costs
/// a pass over the operand, which on the workloads' shapes can cost more than it
/// saves. Measured on the workloads' products (AVX2 kernel, Zen 4, 2026-11-30):
///
/// - A is read in place when it is row-major (each row of a tile a contiguous
///   stream) with a stride that does not alias in L1. A column-major A (`h.T` in
///   `d_w = h.T @ d_z`) read in place touches a new cache line at every step of `k`
///   for a tile's few rows, and the panel outgrows L1: packing it took those
///   products from 70-80% of the core's peak to 85-93%. Except when few panels of
///   B reuse the packed A ([`PACK_A_COLS`]): the narrow `d_w = h.T @ d_z` with ten
///   columns runs at 49% of the peak with A in place, 30% with A packed, the copy
///   of all of A paid for one panel of B. And except when the lines a tile reads
///   of A over a block of `k` fit in L1 beside B's panel
///   ([`column_major_a_stays_in_l1`]): then a column-major A is read in place
///   too.
/// - B is read in place when its rows are contiguous, its stride does not alias,
///   and few rows of A share each panel (`m` below [`PACK_B_ROWS`]): an unaligned
///   in-place panel straddles twice the cache lines of a packed one, which costs
///   when many row tiles reuse it (W4's `h @ w`: 86% in place, 93% packed) and not
///   when few do (W1's 64-row `x @ w1` in f64 on a Zen 4: 91% in place, 81% packed,
///   the copy not paid back). B's last, partial panel is always packed,
///   zero-padded to NR.
/// - Except that B is packed from [`PACK_B_TILES`] tiles of rows on when the
///   panel read in place and the tile's A would not fit in L1 together
///   ([`in_place_panel_outgrows_l1`]): then every tile reads the panel from L2
///   again. On a Zen 3 (AVX2, 32 KiB of L1d, 2026-12-02, alternating blocks of
///   calls in one process) W1's `x @ w1` in f64, its 250-step panels 44 KiB in
///   place, ran at 35 GFLOP/s in place and 40-41 packed (the `gemm` crate, which
///   packs, 41), 32 rows of it 33 against 36, the `f32` version 69 against 72;
///   with 100 steps (18 KiB) in place stayed 3-5% ahead, and so did 8 and 16 rows
///   (5-12%), too few tiles to pay for the copy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Packing {
    a: bool,
    b: bool,
}

/// Rows of A from which B is packed even when it could be read in place.
const PACK_B_ROWS: usize = 192;

/// Tiles of rows of A from which B is packed when its panels read in place would
/// not stay in L1 ([`in_place_panel_outgrows_l1`]).
const PACK_B_TILES: usize = 4;

/// Columns of B from which a column-major A is packed even when it could be read
/// in place.
const PACK_A_COLS: usize = 64;

/// The L1 data cache the blocking plans for: 32 KiB, the smallest of the x86
/// cores this runs on (48 KiB on the newer ones).
const L1_BYTES: usize = 32 * 1024;

impl Packing {
    fn of<F>(p: &Product<F>, blocks: &Blocking) -> Packing {
        let elem = size_of::<F>();
        let b_in_place =
            p.b.cs == 1 && reads_well_in_place(p.b, elem) && panels_stay_in_l1(p.b, elem);
        let many_tiles = p.m >= PACK_B_ROWS
            || (p.m >= PACK_B_TILES * blocks.mr && in_place_panel_outgrows_l1(p, blocks));
        Packing {
            a: !reads_well_in_place(p.a, elem)
                || (p.a.cs != 1 && p.n >= PACK_A_COLS && !column_major_a_stays_in_l1(p, blocks)),
            b: !b_in_place || many_tiles,
        }
    }
}

/// Whether a panel of B read in place (a row of `NR` elements per step, most of
/// them straddling two cache lines) and the tile's `MR` rows of A over the same
/// steps take more than L1.
fn in_place_panel_outgrows_l1<F>(p: &Product<F>, blocks: &Blocking) -> bool {
    let elem = size_of::<F>();
    let steps = blocks.k_step(p.k).min(p.k);
    let panel = steps * (blocks.nr * elem + 64);
    let a_rows = steps * blocks.mr * elem;
    panel + a_rows > L1_BYTES
}

/// Whether a tile reading a column-major A in place keeps A's lines for a block
/// of `k` in L1 beside the packed panel of B it multiplies: each step reads the
/// tile's `MR` values of one column of A, contiguous, on one or two lines (three
/// for the 96 bytes of `f64`, allowing for one line they straddle). Then the
/// lines stay for the next panels' tiles, and packing A buys nothing.
///
/// Measured against packing A (AVX-512, Zen 5, 48 KiB of L1d, 2026-12-04,
/// alternating blocks of calls in one process, one and two threads): W3's
/// `d_w1 = x.T @ d_z1` (784x128x256, 128-step blocks) 2.4-2.6% faster in `f32`,
/// its `d_w2` (256x128x128) 7-9%, W1's `d_w1` (1000x64x100, `f64`) 6.3-6.6%.
/// Larger blocks stay packed, on purpose: the rule plans for 32 KiB of L1
/// ([`L1_BYTES`]), where the workloads' `d_w` products with A in place ran at
/// 70-80% of the peak and packed at 85-93% (AVX2 kernel, Zen 4, 2026-11-30,
/// [`Packing`]). So W4's `d_w` (500x256x500, 256-step blocks) is packed, though
/// here, with 48 KiB, in place measured level on one thread (1.000-1.003) and
/// 1.7-2.2% faster on two.
fn column_major_a_stays_in_l1<F>(p: &Product<F>, blocks: &Blocking) -> bool {
    let elem = size_of::<F>();
    let steps = blocks.k_step(p.k).min(p.k);
    let a_lines = (blocks.mr * elem).div_ceil(64) + 1;
    let b_panel = steps * blocks.nr * elem;
    steps * a_lines * 64 + b_panel <= L1_BYTES
}

/// Whether the kernel reads an operand as fast in place as packed: one of its
/// strides is 1, and the other keeps the rows (or columns) it reads at once in
/// different L1 sets. L1 sets repeat every 4 KiB (64 sets of 64-byte lines), so
/// rows whose stride is at least a line away from a multiple of 4 KiB land a line
/// or more apart in the sets, a tile's `MR` rows in `MR` different sets; closer,
/// several rows share a set (at a multiple of 4 KiB, all `MR` of them share one,
/// more than its 8 ways on the older cores).
///
/// The margin was two lines until 2026-12-04: W4's `f64` rows (500 values, 4000
/// bytes, 1.5 lines short of 4 KiB) were packed. Read in place instead (AVX-512,
/// Zen 5, alternating blocks of calls in one process): its `h @ w` and
/// `d_z @ w.T` (256x500x500) 1.1-1.3% faster on one thread and 2% on two,
/// `h @ w` into the 10 scores 58%, and `f32` rows of 1000 values 6%; a B of
/// such rows read in place by a few rows of A rather than packed: 12x500x500
/// in `f64` 36%, 32x500x500 14%, 24x1000x500 in `f32` 4.5%.
fn reads_well_in_place<F>(operand: Operand<F>, elem_bytes: usize) -> bool {
    let outer = match (operand.rs, operand.cs) {
        (_, 1) => operand.rs,
        (1, _) => operand.cs,
        _ => return false,
    };
    // Wrapping is exact here: 4096 divides 2^64. (A length-1 axis may have any
    // stride, so the product can overflow.)
    let offset = outer.unsigned_abs().wrapping_mul(elem_bytes) % 4096;
    (64..=4096 - 64).contains(&offset)
}

/// Whether a panel of a row-major B read in place stays in L1 while the tiles of
/// a block of A's rows reuse it: its rows (one or two cache lines each) must fall
/// in many L1 sets. Rows whose stride is a multiple of `g` bytes (and of no
/// larger power of two) come back to the same set every `4096 / g` rows, so
/// a stride of 1 or 2 KiB (W3's `w1`, 256 columns of `f32` or `f64`) keeps a
/// 196-step panel in 4 or 8 of the 64 sets, and every tile reads it again from
/// L2 or further: W3's `x @ w1` ran at 65% of the peak in `f64`, B in place.
/// At least 32 rows apart (`g <= 128`), a panel of 256 steps fits the sets its
/// rows reach, 12 ways each.
fn panels_stay_in_l1<F>(b: Operand<F>, elem_bytes: usize) -> bool {
    let stride = b.rs.unsigned_abs().wrapping_mul(elem_bytes) % 4096;
    // The largest power of two dividing the stride (4096 for a multiple of it).
    let g = if stride == 0 {
        4096
    } else {
        1 << stride.trailing_zeros()
    };
    g <= 128
}

/// The blocked loops around the kernel, for kernel `V`.
///
/// # Safety
/// As for [`Isa::run`].
/// The product is computed as it is given: the caller chose its orientation
/// ([`Product::oriented`]).
#[inline(always)]
unsafe fn blocked<F: num_traits::Float, V: Lanes<F>>(
    p: &Product<F>,
    scratch: Scratch<F>,
    finish: Option<Finish<'_>>,
) {
    let (mr, nr) = (V::MR, V::NV * V::LANES);
    let blocks = Blocking::new(mr, nr, size_of::<F>());
    // Checked once per product: everything below writes within this bound.
    assert!(
        blocks.packed_len(p.m, p.k, p.n) <= scratch.len,
        "GEMM scratch too small"
    );
    let packing = Packing::of(p, &blocks);
    let packs_a = packing.a;
    let packs_b = packing.b;
    // SAFETY (the whole body): positions stay inside the operands' shapes, and the
    // packed blocks inside the scratch (just checked).
    unsafe {
        let packed_a = scratch.ptr.add(blocks.packed_b_len(p.k, p.n));
        let packed_dots = packed_a.add(blocks.packed_a_len(p.m, p.k));
        let k_step = blocks.k_step(p.k);
        let dots = dots_for_last_columns::<F, V>(p, packs_a);
        for jc in (0..p.n).step_by(blocks.nc) {
            let nc_all = blocks.nc.min(p.n - jc);
            // The last `n % LANES` columns as dot products (`dot`), when
            // `dots_for_last_columns`; the kernel's tiles take the rest.
            let dot_cols = if dots { nc_all % V::LANES } else { 0 };
            let nc = nc_all - dot_cols;
            for pc in (0..p.k).step_by(k_step) {
                let kc = k_step.min(p.k - pc);
                // B's columns for the dot products, contiguous along `k`: in
                // place when B is column-major, otherwise copied, a column per
                // `kc` elements (a few columns: a short pass, reused by every
                // block of rows). Without dot products, no position: column
                // `jc + nc` may be past B's last.
                let (dot_b, dot_b_cs) = if dot_cols == 0 {
                    (std::ptr::null(), 0)
                } else if p.b.rs == 1 {
                    (p.b.at(pc, jc + nc), p.b.cs)
                } else {
                    pack_columns(packed_dots, p.b, (pc, jc + nc), (kc, dot_cols));
                    (packed_dots.cast_const(), kc as isize)
                };
                // The panels of B from column `packed_from` on are packed.
                let packed_from = if packs_b { 0 } else { nc / nr * nr };
                let stride = panel_stride(kc, nr);
                // A row-major B is packed by the first tile over each whole
                // panel (`fuses`), which reads the panel in place and writes it
                // to the scratch as it computes: the copy's reads and writes
                // then overlap the tile's FMAs instead of taking a pass of their
                // own. Measured against the pass (AVX-512, Zen 5, 2026-12-04,
                // alternating blocks of calls in one process): W4's `h @ w`
                // 1.9-2.3% faster in f32 and f64, W3's `x @ w1` 1.4-1.5% in f32
                // and 0.3-0.9% in f64, `d_w = h.T @ d_z` 0.1-0.3% (W3's,
                // 784x128x256) to 2% (256x500x500). It needs a first tile of
                // all `MR` rows; otherwise, and for the last, partial panel, B
                // is packed up front by rows (one sequential stream).
                //
                // A column-major B is packed panel by panel, just before the
                // first block of A's rows uses it, while the next panel's lines
                // are fetched during the tiles of this one. Measured (f32,
                // AVX-512, Zen 5, operands cycled through L3): W4's `d_z @ w.T`
                // 163 -> 174 GFLOP/s; row-major B the same way lost 4-11% with
                // its operands in cache and gained nothing without.
                let packed_b = scratch.ptr;
                let packs_here = packed_from < nc;
                // Only a row-major B has panels read in place (`packed_from > 0`),
                // so one packed by panels is packed whole.
                let by_panels = packs_here && p.b.cs != 1;
                debug_assert!(!by_panels || packed_from == 0);
                // Only a B packed whole: one read in place has just its last,
                // partial panel packed, up front.
                let fuses = packs_b && !by_panels && p.m >= mr;
                if packs_here && !by_panels {
                    let out = PanelsOut {
                        ptr: packed_b,
                        stride,
                        nr,
                    };
                    if fuses {
                        let whole = nc / nr * nr;
                        pack_b_scalar(out, p.b, (pc, jc + whole), (0, kc), (whole, nc));
                    } else {
                        pack_b::<F, V>(out, p.b, pc, jc + packed_from, kc, nc - packed_from);
                    }
                }
                let m_step = blocks.m_step(p.m);
                for ic in (0..p.m).step_by(m_step) {
                    let mc = m_step.min(p.m - ic);
                    if packs_a {
                        pack_a::<F, V>(packed_a, p.a, ic, pc, mc, kc);
                    }
                    for j0 in (0..nc).step_by(nr) {
                        let first_use = by_panels && ic == 0;
                        let fetch_next = first_use && j0 + nr < nc;
                        if first_use {
                            let out = PanelsOut {
                                ptr: packed_b.add(j0 / nr * stride),
                                stride,
                                nr,
                            };
                            pack_b::<F, V>(out, p.b, pc, jc + j0, kc, nr.min(nc - j0));
                        }
                        let (b, b_step) = if j0 < packed_from {
                            (p.b.at(pc, jc + j0), p.b.rs)
                        } else {
                            (
                                packed_b.add((j0 - packed_from) / nr * stride).cast_const(),
                                nr as isize,
                            )
                        };
                        let copies_panel = fuses && ic == 0 && j0 + nr <= nc;
                        let tiles = mc.div_ceil(mr);
                        for (t, i0) in (0..mc).step_by(mr).enumerate() {
                            if fetch_next {
                                let steps = (kc * t / tiles, kc * (t + 1) / tiles);
                                let cols = nr.min(nc - j0 - nr);
                                prefetch_b::<F, V>(p.b, pc, jc + j0 + nr, cols, steps);
                            }
                            let (row, col) = (ic + i0, jc + j0);
                            let (a, a_rs, a_step) = if packs_a {
                                (packed_a.add(i0 * kc).cast_const(), 1, mr as isize)
                            } else {
                                (p.a.at(row, pc), p.a.rs, p.a.cs)
                            };
                            // The first tile reads the panel in place and writes it
                            // where the others read it (`fuses`: B is packed whole).
                            let (b, b_step, b_copy) = if copies_panel && i0 == 0 {
                                (p.b.at(pc, jc + j0), p.b.rs, b.cast_mut())
                            } else {
                                (b, b_step, std::ptr::null_mut())
                            };
                            let panels = Panels {
                                a,
                                a_rs,
                                a_step,
                                b,
                                b_step,
                                b_copy,
                            };
                            let out = TileOut {
                                c: p.c.offset(row as isize * p.c_rs + col as isize * p.c_cs),
                                rs: p.c_rs,
                                cs: p.c_cs,
                                rows: mr.min(mc - i0),
                                cols: nr.min(nc - j0),
                                overwrite: p.overwrite && pc == 0,
                            };
                            kernel::dispatch::<F, V>(kc, panels, out);
                        }
                    }
                    if dot_cols > 0 {
                        let ops = dot::Operands {
                            a: p.a.at(ic, pc),
                            a_rs: p.a.rs,
                            b: dot_b,
                            b_cs: dot_b_cs,
                        };
                        let out = TileOut {
                            c: p.c
                                .offset(ic as isize * p.c_rs + (jc + nc) as isize * p.c_cs),
                            rs: p.c_rs,
                            cs: p.c_cs,
                            rows: mc,
                            cols: dot_cols,
                            overwrite: p.overwrite && pc == 0,
                        };
                        dot::block::<F, V>(kc, ops, out);
                    }
                    // The block of rows is final after the last block of `k`.
                    if let Some(finish) = finish.filter(|_| pc + kc == p.k) {
                        let c = p.c.offset(ic as isize * p.c_rs + jc as isize * p.c_cs);
                        finish_block(finish, c, (p.c_rs, p.c_cs), (mc, nc_all));
                    }
                }
            }
        }
    }
}

/// Whether a product's last `n % LANES` columns are computed as dot products
/// ([`dot`]) rather than by the kernel, padded to a whole vector: A must be read
/// in place with its rows contiguous along `k` (B's columns are too when B is
/// column-major, as `w.T` in `d_h = d_z @ w.T` is; otherwise those few columns
/// are copied so, [`pack_columns`]), and `k` at least [`dot::MIN_VECTORS`]
/// vectors long. It depends on the product's operands and `k`, never on its rows
/// or columns, so every part of a cut product decides the same way; and the
/// columns it applies to are the product's last `n % LANES` whatever the cut,
/// since cuts fall on multiples of `NR` and blocks of columns are `NC` wide (a
/// multiple of `NR`), so each is computed the same way for every thread count.
fn dots_for_last_columns<F: num_traits::Float, V: Lanes<F>>(p: &Product<F>, packs_a: bool) -> bool {
    V::LANES > 1 && !packs_a && p.a.cs == 1 && p.k >= dot::MIN_VECTORS * V::LANES
}

/// Copies `B[pc.., j..]`'s `cols` columns over `kc` steps to `dst`, column `c`
/// from `dst + c * kc`, contiguous along `k` (for [`dot::block`], and for
/// `small.rs`'s products of a few columns).
///
/// # Safety
/// The block must be inside `b`, and `dst` must have room for `cols * kc`
/// elements.
#[inline(always)]
unsafe fn pack_columns<F: Copy>(
    dst: *mut F,
    b: Operand<F>,
    (pc, j): (usize, usize),
    (kc, cols): (usize, usize),
) {
    // Step by step: a row-major B's `cols` values of a step are adjacent.
    for p in 0..kc {
        for c in 0..cols {
            // SAFETY: the caller's contract.
            unsafe { *dst.add(c * kc + p) = *b.at(pc + p, j + c) };
        }
    }
}

/// Asks for the lines of steps `p0..p1` of `B[pc.., j..j + cols]` into L2, ahead
/// of packing them: a panel packed from memory costs a latency per line, hidden
/// when the lines are fetched while the tiles of the panel before run.
///
/// Prefetches are hints: they never fault, so no position needs to be valid.
#[inline(always)]
fn prefetch_b<F: num_traits::Float, V: Lanes<F>>(
    b: Operand<F>,
    pc: usize,
    j: usize,
    cols: usize,
    (p0, p1): (usize, usize),
) {
    let line = 64 / size_of::<F>();
    // Wrapping offsets: nothing is dereferenced.
    let at = |row: usize, col: usize| {
        b.ptr
            .wrapping_offset(row as isize * b.rs + col as isize * b.cs)
    };
    if b.cs == 1 {
        for p in p0..p1 {
            for col in (0..cols).step_by(line).chain([cols - 1]) {
                V::prefetch_l2(at(pc + p, j + col));
            }
        }
    } else if b.rs == 1 {
        for col in 0..cols {
            for p in (p0..p1).step_by(line) {
                V::prefetch_l2(at(pc + p, j + col));
            }
        }
    }
}

/// Packs `B[pc.., jc..]` (`kc x nc`) into `NR`-wide panels (`NR = NV * LANES` of
/// kernel `V`): panel `j` holds, for each step `p`, its `NR` columns' values,
/// zero-padded past `nc`.
///
/// Every copy here has a length known at compile time (a panel's row, a block of
/// [`Lanes::transpose`]): the pointers may alias as far as the compiler knows, so
/// a loop of element copies stays element by element (or becomes scatters), and
/// packing took 7-14% of W4's products that way.
///
/// # Safety
/// The block must be inside `b`, `out.nr` must be `V`'s `NR`, and `out` must have
/// room for `ceil(nc / NR)` panels of `out.stride` elements
/// (`out.stride >= kc * NR`).
#[inline(always)]
unsafe fn pack_b<F: num_traits::Float, V: Lanes<F>>(
    out: PanelsOut<F>,
    b: Operand<F>,
    pc: usize,
    jc: usize,
    kc: usize,
    nc: usize,
) {
    let nr = V::NV * V::LANES;
    debug_assert_eq!(out.nr, nr);
    let (dst, stride) = (out.ptr, out.stride);
    let whole = nc / nr * nr;
    if b.cs == 1 {
        // Row by row of B: one sequential read stream (the prefetchers follow it
        // from memory; panel by panel, the reads stride down the rows), written to
        // every panel at once, a panel's row in one copy.
        for p in 0..kc {
            // SAFETY: the caller's contract.
            unsafe {
                let src = b.at(pc + p, jc);
                for j0 in (0..whole).step_by(nr) {
                    let row = dst.add(j0 / nr * stride + p * nr);
                    std::ptr::copy_nonoverlapping(src.add(j0), row, nr);
                }
            }
        }
        // SAFETY: the caller's contract.
        unsafe { pack_b_scalar(out, b, (pc, jc + whole), (0, kc), (whole, nc)) };
        return;
    }
    let mut transposed = 0;
    if b.rs == 1 {
        // Column-major B (a transposed view, `w.T`): blocks of LANES steps by
        // LANES columns, each LANES contiguous reads down a column, transposed in
        // registers into LANES rows of the panel.
        transposed = kc / V::LANES * V::LANES;
        for j0 in (0..whole).step_by(nr) {
            for p0 in (0..transposed).step_by(V::LANES) {
                for v in 0..V::NV {
                    let col = j0 + v * V::LANES;
                    // SAFETY: the caller's contract: LANES columns from `col` and
                    // LANES steps from `p0` are inside B and the panel.
                    unsafe {
                        V::transpose(
                            b.at(pc + p0, jc + col),
                            b.cs,
                            dst.add(j0 / nr * stride + p0 * nr + v * V::LANES),
                            nr as isize,
                        );
                    }
                }
            }
        }
    }
    // SAFETY: the caller's contract.
    unsafe {
        pack_b_scalar(out, b, (pc, jc), (transposed, kc), (0, whole));
        pack_b_scalar(out, b, (pc, jc + whole), (0, kc), (whole, nc));
    }
}

/// The part of [`pack_b`] the copies of whole rows and blocks leave: steps
/// `p0..p1` of `B[pc.., jc..]`'s columns `j0..j1` (`j0` on a panel's first
/// column), element by element, and the zero padding of `j1`'s panel past `j1`
/// when `j1` is not on a panel boundary.
///
/// # Safety
/// As for [`pack_b`], for the columns given.
#[inline(always)]
unsafe fn pack_b_scalar<F: num_traits::Float>(
    out: PanelsOut<F>,
    b: Operand<F>,
    (pc, jc): (usize, usize),
    (p0, p1): (usize, usize),
    (j0, j1): (usize, usize),
) {
    let PanelsOut {
        ptr: dst,
        stride,
        nr,
    } = out;
    // Step by step: along B's rows when it is row-major, and when it is not, the
    // few steps or columns left keep their lines in L1 from one step to the next.
    for p in p0..p1 {
        for j in j0..j1 {
            let (panel, col) = (j / nr, j % nr);
            // SAFETY: the caller's contract.
            unsafe { *dst.add(panel * stride + p * nr + col) = *b.at(pc + p, jc + j - j0) };
        }
    }
    if j1 % nr != 0 {
        let panel = j1 / nr;
        for p in p0..p1 {
            for col in j1 % nr..nr {
                // SAFETY: the caller's contract: the panel holding column `j1 - 1`
                // is inside `out`.
                unsafe { *dst.add(panel * stride + p * nr + col) = F::zero() };
            }
        }
    }
}

/// Packs `A[ic.., pc..]` (`mc x kc`) into `MR`-tall panels (`MR` of kernel `V`):
/// panel `i` holds, for each step `p`, its rows' values, `MR` apart (a last,
/// shorter panel has only its own rows: the kernel for it reads no more).
///
/// # Safety
/// The block must be inside `a`, and `dst` must hold `round_up(mc, MR) * kc`
/// elements.
#[inline(always)]
unsafe fn pack_a<F: num_traits::Float, V: Lanes<F>>(
    dst: *mut F,
    a: Operand<F>,
    ic: usize,
    pc: usize,
    mc: usize,
    kc: usize,
) {
    let mr = V::MR;
    if a.rs == 1 {
        // Column-major A (a transposed view): step by step, each step's `mc` values
        // one sequential read (the prefetchers follow it from memory), written to
        // every panel at once, in copies of a constant `MR` elements (see
        // `pack_b`).
        let whole = mc / mr * mr;
        for p in 0..kc {
            // SAFETY: the caller's contract.
            unsafe {
                let src = a.at(ic, pc + p);
                for i0 in (0..whole).step_by(mr) {
                    std::ptr::copy_nonoverlapping(src.add(i0), dst.add(i0 * kc + p * mr), mr);
                }
                // The last, shorter panel has only its own rows.
                let row = dst.add(whole * kc + p * mr);
                for i in whole..mc {
                    *row.add(i - whole) = *src.add(i);
                }
            }
        }
        return;
    }
    // A row-major A (or any other): a full panel whose rows are contiguous goes
    // by blocks of LANES steps, transposed in registers, LANES of its rows at a
    // time; when LANES does not divide MR, the last block of rows overlaps the one
    // before it (rewriting the same values). The rest element by element, writing
    // the panel in order while the reads run along `rows` streams.
    let transposes = a.cs == 1 && V::LANES <= mr;
    let row_blocks = || (0..mr - V::LANES).step_by(V::LANES).chain([mr - V::LANES]);
    for i0 in (0..mc).step_by(mr) {
        let rows = mr.min(mc - i0);
        let transposed = if transposes && rows == mr {
            kc / V::LANES * V::LANES
        } else {
            0
        };
        // SAFETY: the caller's contract.
        unsafe {
            let panel = dst.add(i0 * kc);
            for p0 in (0..transposed).step_by(V::LANES) {
                for r in row_blocks() {
                    V::transpose(
                        a.at(ic + i0 + r, pc + p0),
                        a.rs,
                        panel.add(p0 * mr + r),
                        mr as isize,
                    );
                }
            }
            for p in transposed..kc {
                for i in 0..rows {
                    *panel.add(p * mr + i) = *a.at(ic + i0 + i, pc + p);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests;
