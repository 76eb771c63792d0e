//! The GEMM against a naive triple loop in f64, for every instruction set this CPU
//! has, in f32 and f64: shapes that cover edge tiles and several blocks in each of
//! m, k and n, and, on a set of shapes chosen to reach every packing and
//! transposition decision, operands and destinations in every layout (row- and
//! column-major, strided, rows reversed, broadcast), overwriting and accumulating,
//! on one thread and cut for several (bitwise the same result).

use super::*;
use ndarray::{Array2, ShapeBuilder, s};

fn reference(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
    let (m, n) = (a.nrows(), b.ncols());
    Array2::from_shape_fn((m, n), |(i, j)| {
        (0..a.ncols()).map(|p| a[[i, p]] * b[[p, j]]).sum()
    })
}

fn filled<F: Float>(shape: (usize, usize), seed: f64) -> Array2<F> {
    Array2::from_shape_fn(shape, |(i, j)| {
        let v = ((i * 31 + j * 17) as f64 * 0.37 + seed).sin();
        F::from_f64(v).unwrap_or_else(F::nan)
    })
}

thread_local! {
    /// A three-thread pool per test thread (tests run in parallel).
    static THREE: Threads = Threads::new(3);
}

/// Whether two arrays hold the same bits (NaNs included).
fn same_bits<F: Float>(x: &Array2<F>, y: &Array2<F>) -> bool {
    x.dim() == y.dim()
        && x.iter()
            .zip(y)
            .all(|(a, b)| a.to_f64().map(f64::to_bits) == b.to_f64().map(f64::to_bits))
}

fn to_f64<F: Float>(x: ArrayView2<'_, F>) -> Array2<f64> {
    x.mapv(|v| v.to_f64().unwrap_or(f64::NAN))
}

/// The worst difference from `want`, relative to the largest `|want|` (at least 1).
fn error<F: Float>(got: ArrayView2<'_, F>, want: &Array2<f64>) -> f64 {
    let scale = want.iter().fold(1.0f64, |s, w| s.max(w.abs()));
    to_f64(got)
        .iter()
        .zip(want)
        .fold(0.0f64, |e, (g, w)| e.max((g - w).abs() / scale))
}

/// The tolerance for a product with inner dimension `k`.
fn tolerance<F: Float>(k: usize) -> f64 {
    let eps = F::epsilon().to_f64().unwrap_or(1.0);
    8.0 * eps * (k as f64).sqrt().max(1.0)
}

/// `(m, k, n)`: single elements, edge tiles in both directions, narrow and wide C,
/// sizes past one block of MC (120-128), KC (512; 256 in `f64` for a `k` of at
/// most 384) and NC (2048), a row-major B packed by the first tile over each
/// panel (`(130, 600, 41)` in several k blocks with a partial last panel,
/// `(200, 30, 2100)` in two blocks of columns), and few rows over a long `k`
/// (split along `k`: `(2, 300, 100)` in `f64`, `(20, 1100, 40)`).
const SHAPES: [(usize, usize, usize); 16] = [
    (1, 1, 1),
    (3, 5, 2),
    (7, 3, 9),
    (17, 33, 9),
    (9, 40, 17),
    (64, 100, 10),
    (100, 64, 33),
    (13, 17, 65),
    (300, 2, 100),
    (300, 100, 3),
    (3, 100, 300),
    (2, 300, 100),
    (130, 600, 41),
    (3, 20, 2100),
    (20, 1100, 40),
    (200, 30, 2100),
];

fn row_major_shapes<F: Float>() {
    for isa in Isa::available() {
        for (m, k, n) in SHAPES {
            let (a, b) = (filled::<F>((m, k), 0.1), filled::<F>((k, n), 0.7));
            let want = reference(to_f64(a.view()).view(), to_f64(b.view()).view());
            let mut c = Array2::from_elem((m, n), F::nan());
            matmul_with(
                isa,
                a.view(),
                b.view(),
                c.view_mut(),
                false,
                &mut GemmScratch::new(),
                &Threads::one(),
            );
            let e = error(c.view(), &want);
            assert!(e < tolerance::<F>(k), "{isa:?} {m}x{k}x{n}: {e}");
            // Cut for three threads: the same bits.
            let mut cut = Array2::from_elem((m, n), F::nan());
            let mut scratch = GemmScratch::new();
            scratch.set_threads(3);
            matmul_with(
                isa,
                a.view(),
                b.view(),
                cut.view_mut(),
                false,
                &mut scratch,
                &THREE.with(Clone::clone),
            );
            assert!(same_bits(&c, &cut), "{isa:?} {m}x{k}x{n} on three threads");
        }
    }
}

#[test]
fn every_instruction_set_and_shape_in_f64() {
    row_major_shapes::<f64>();
}

#[test]
fn every_instruction_set_and_shape_in_f32() {
    row_major_shapes::<f32>();
}

/// Shapes that reach each decision (for f64 and f32 on every instruction set):
/// - small, with edge tiles on both sides;
/// - k past KC with A's row stride a multiple of 4 KiB (512 f64): A packed in
///   several k blocks;
/// - narrow B past KC (packed in full on AVX2, read in place elsewhere);
/// - `[N, 10]` C with a column-major A past KC: the transposed product, which reads
///   `A^T` in place with a partial last panel;
/// - m past MC and k past KC with B partly in place;
/// - m past NC with a column-major C: transposed, past NC;
/// - each small product (`small.rs`): `k` or `n` of at most 4 (and `m`, which
///   is not small), with the others past a vector or two and ragged;
/// - with A row-major, the last `n % LANES` columns as dot products (`dot.rs`),
///   B's columns read in place or copied: all of them where `n` is under the
///   vector (`n` of 8 or 10 past KC with 16 lanes, 10 with 8), beside the
///   kernel's tiles in two blocks of rows (130x300x41), a single edge row of
///   them (3x300x43), and a product of a few rows, cut by columns for three
///   threads, whose last part has only dot products (8x300x35 with 16 lanes).
const LAYOUT_SHAPES: [(usize, usize, usize); 11] = [
    (19, 37, 23),
    // Over 64 columns with a short `k`: a column-major A read in place.
    (50, 40, 70),
    (20, 512, 30),
    (20, 600, 8),
    (300, 600, 10),
    (130, 300, 41),
    (2100, 20, 3),
    (37, 3, 41),
    (3, 300, 43),
    (45, 300, 3),
    (8, 300, 35),
];

/// One operand in several layouts, all holding the same values.
struct Layouts<F> {
    base: Array2<F>,
    col_major: Array2<F>,
    reversed_rows: Array2<F>,
    wide: Array2<F>,
}

impl<F: Float> Layouts<F> {
    fn new(base: Array2<F>) -> Layouts<F> {
        let (rows, cols) = base.dim();
        let mut col_major = Array2::zeros((rows, cols).f());
        col_major.assign(&base);
        let reversed_rows = base.slice(s![..;-1, ..]).to_owned();
        let wide = Array2::from_shape_fn((rows, 2 * cols), |(i, j)| base[[i, j / 2]]);
        Layouts {
            base,
            col_major,
            reversed_rows,
            wide,
        }
    }

    /// `(name, view)` for row-major, column-major, rows reversed (a negative row
    /// stride) and every other column of a wider array.
    fn views(&self) -> [(&'static str, ArrayView2<'_, F>); 4] {
        [
            ("row-major", self.base.view()),
            ("col-major", self.col_major.view()),
            ("rows reversed", self.reversed_rows.slice(s![..;-1, ..])),
            ("strided", self.wide.slice(s![.., ..;2])),
        ]
    }
}

/// Writes `a @ b` (or adds it to `start`) into a destination of the given layout;
/// returns the result in row-major order.
fn product_into<F: Float>(
    (isa, threads): (Isa, &Threads),
    a: ArrayView2<'_, F>,
    b: ArrayView2<'_, F>,
    start: &Array2<F>,
    layout: &str,
    accumulate: bool,
    scratch: &mut GemmScratch<F>,
) -> Array2<F> {
    let (m, n) = start.dim();
    let initial = |x: &mut Array2<F>| {
        if accumulate {
            x.assign(start)
        } else {
            x.fill(F::nan())
        }
    };
    match layout {
        "row-major" => {
            let mut c = Array2::zeros((m, n));
            initial(&mut c);
            matmul_with(isa, a, b, c.view_mut(), accumulate, scratch, threads);
            c
        }
        "col-major" => {
            let mut c = Array2::zeros((m, n).f());
            initial(&mut c);
            matmul_with(isa, a, b, c.view_mut(), accumulate, scratch, threads);
            c.as_standard_layout().to_owned()
        }
        "strided" => {
            let mut wide = Array2::from_elem((m, 2 * n), F::nan());
            let mut c = wide.slice_mut(s![.., ..;2]);
            if accumulate {
                c.assign(start);
            }
            matmul_with(isa, a, b, c, accumulate, scratch, threads);
            // The columns between are untouched.
            assert!(wide.slice(s![.., 1..;2]).iter().all(|v| v.is_nan()));
            wide.slice(s![.., ..;2]).to_owned()
        }
        "rows reversed" | "cols reversed" => {
            let mut c = Array2::zeros((m, n));
            initial(&mut c);
            let flip = if layout == "rows reversed" {
                s![..;-1, ..]
            } else {
                s![.., ..;-1]
            };
            // Reverse the stored copy, so the reversed view holds `start` in order.
            let mut stored = c.slice(flip).to_owned();
            matmul_with(
                isa,
                a,
                b,
                stored.slice_mut(flip),
                accumulate,
                scratch,
                threads,
            );
            stored.slice(flip).to_owned()
        }
        other => panic!("unknown layout {other}"),
    }
}

fn every_layout<F: Float>() {
    for isa in Isa::available() {
        for (m, k, n) in LAYOUT_SHAPES {
            let a = Layouts::new(filled::<F>((m, k), 0.3));
            let b = Layouts::new(filled::<F>((k, n), 0.9));
            let start = filled::<F>((m, n), 0.4);
            let product = reference(to_f64(a.base.view()).view(), to_f64(b.base.view()).view());
            let with_start = &product + &to_f64(start.view());
            let mut scratch = GemmScratch::new();
            scratch.set_threads(3);
            let three = THREE.with(Clone::clone);
            for (a_name, av) in a.views() {
                for (b_name, bv) in b.views() {
                    let c_layouts = [
                        "row-major",
                        "col-major",
                        "strided",
                        "rows reversed",
                        "cols reversed",
                    ];
                    for c_name in c_layouts {
                        for accumulate in [false, true] {
                            let one = Threads::one();
                            let got = product_into(
                                (isa, &one),
                                av,
                                bv,
                                &start,
                                c_name,
                                accumulate,
                                &mut scratch,
                            );
                            let cut = product_into(
                                (isa, &three),
                                av,
                                bv,
                                &start,
                                c_name,
                                accumulate,
                                &mut scratch,
                            );
                            assert!(
                                same_bits(&got, &cut),
                                "{isa:?} {m}x{k}x{n}, A {a_name}, B {b_name}, C {c_name}, \
                                 accumulate {accumulate}: three threads differ"
                            );
                            let want = if accumulate { &with_start } else { &product };
                            let e = error(got.view(), want);
                            assert!(
                                e < tolerance::<F>(k),
                                "{isa:?} {m}x{k}x{n}, A {a_name}, B {b_name}, C {c_name}, \
                                 accumulate {accumulate}: {e}"
                            );
                        }
                    }
                }
            }
        }
    }
}

#[test]
fn operands_of_every_layout_in_f64() {
    every_layout::<f64>();
}

#[test]
fn operands_of_every_layout_in_f32() {
    every_layout::<f32>();
}

#[test]
fn broadcast_and_odd_strided_operands() {
    for isa in Isa::available() {
        // A row broadcast down A (row stride 0): packed, never read in place.
        let row = filled::<f64>((1, 40), 0.5);
        let a = row.broadcast((33, 40)).expect("broadcasts");
        let b = filled::<f64>((40, 21), 0.2);
        let want = reference(a.view(), b.view());
        let mut c = Array2::zeros((33, 21));
        matmul_with(
            isa,
            a.view(),
            b.view(),
            c.view_mut(),
            false,
            &mut GemmScratch::new(),
            &Threads::one(),
        );
        assert!(error(c.view(), &want) < 1e-13, "{isa:?} broadcast");
        // A length-1 axis may carry any stride; a huge one must not overflow the
        // layout arithmetic.
        let data: Vec<f64> = (0..5).map(|i| i as f64).collect();
        let a = ArrayView2::from_shape((5, 1).strides((1, 1 << 62)), &data).expect("valid view");
        let b = filled::<f64>((1, 19), 0.6);
        let want = reference(a.view(), b.view());
        let mut c = Array2::zeros((5, 19));
        matmul_with(
            isa,
            a,
            b.view(),
            c.view_mut(),
            false,
            &mut GemmScratch::new(),
            &Threads::one(),
        );
        assert!(error(c.view(), &want) < 1e-13, "{isa:?} odd stride");
    }
}

#[test]
fn in_place_reads_avoid_cache_aliasing_strides() {
    let a = |rs, cs| Operand::<f32> {
        ptr: std::ptr::null(),
        rs,
        cs,
    };
    // Row-major and column-major with ordinary strides: read in place.
    assert!(reads_well_in_place(a(1000, 1), 8));
    assert!(reads_well_in_place(a(1, 784), 4));
    // A 4 KiB row stride (1024 f32) would put every row in one set: packed.
    assert!(!reads_well_in_place(a(1024, 1), 4));
    assert!(!reads_well_in_place(a(1, 2048), 8));
    assert!(!reads_well_in_place(a(1030, 1), 4));
    assert!(!reads_well_in_place(a(1020, 1), 4));
    // W4's rows of 500 f64 (or 1000 f32), 4000 bytes: 1.5 lines from 4 KiB, each
    // row of a tile in a set of its own: in place.
    assert!(reads_well_in_place(a(500, 1), 8));
    assert!(reads_well_in_place(a(1000, 1), 4));
    assert!(reads_well_in_place(a(1, 1008), 4));
    assert!(!reads_well_in_place(a(1, 1009), 4));
    // Neither stride contiguous, or a broadcast: packed.
    assert!(!reads_well_in_place(a(2000, 2), 4));
    assert!(!reads_well_in_place(a(0, 1), 4));
    // No overflow on a huge stride (allowed on a length-1 axis).
    assert!(!reads_well_in_place(a(1 << 62, 1), 8));
}

#[test]
fn b_panels_in_place_need_rows_spread_over_the_sets() {
    let b = |rs| Operand::<f32> {
        ptr: std::ptr::null(),
        rs,
        cs: 1,
    };
    // W3's `w1`, 256 columns: 1 KiB (f32) or 2 KiB (f64) rows return to one L1 set
    // every 4 or 2 rows: packed, whatever the rows of A.
    assert!(!panels_stay_in_l1(b(256), 4));
    assert!(!panels_stay_in_l1(b(256), 8));
    let w1 = Product::<f32> {
        m: 128,
        n: 256,
        k: 784,
        a: Operand {
            ptr: std::ptr::null(),
            rs: 784,
            cs: 1,
        },
        b: b(256),
        c: std::ptr::null_mut(),
        c_rs: 256,
        c_cs: 1,
        overwrite: true,
    };
    assert!(Packing::of(&w1, &Blocking::new(12, 32, 4)).b);
    // W1's `w1`, 100 columns of f64 (800-byte rows, sets 32 rows apart at worst),
    // and W4's 500 columns of f32: a panel stays in L1.
    assert!(panels_stay_in_l1(b(100), 8));
    assert!(panels_stay_in_l1(b(500), 4));
    assert!(panels_stay_in_l1(b(36), 4));
    assert!(!panels_stay_in_l1(b(64), 4));
}

/// An `[m, k] @ [k, n]` product of row-major operands into a row-major `C`, for
/// the decisions made from shapes and strides (its pointers are null).
fn row_major_product<F>((m, k, n): (usize, usize, usize)) -> Product<F> {
    Product {
        m,
        n,
        k,
        a: Operand {
            ptr: std::ptr::null(),
            rs: k as isize,
            cs: 1,
        },
        b: Operand {
            ptr: std::ptr::null(),
            rs: n as isize,
            cs: 1,
        },
        c: std::ptr::null_mut(),
        c_rs: n as isize,
        c_cs: 1,
        overwrite: true,
    }
}

/// The transpose of a row-major matrix of `cols` columns (`h.T`, `w.T`), for the
/// decisions made from strides (its pointer is null).
fn transposed_operand<F>(cols: usize) -> Operand<F> {
    Operand {
        ptr: std::ptr::null(),
        rs: cols as isize,
        cs: 1,
    }
    .t()
}

#[test]
fn b_is_packed_when_its_panels_in_place_outgrow_l1_and_many_tiles_read_them() {
    // W1's `x @ w1` in f64, `[m, k] @ [k, 100]`, on the AVX2 kernel (6 x 8 tiles):
    // 800-byte rows, which alias nothing, so B could be read in place.
    let x_w1 = |m: usize, k: usize| row_major_product::<f64>((m, k, 100));
    let avx2 = Blocking::new(6, 8, 8);
    // Four blocks of 250 steps: a 44 KiB working set in place.
    assert!(in_place_panel_outgrows_l1(&x_w1(64, 1000), &avx2));
    assert!(Packing::of(&x_w1(64, 1000), &avx2).b);
    assert!(Packing::of(&x_w1(32, 1000), &avx2).b);
    // Too few tiles to pay for the copy.
    assert!(!Packing::of(&x_w1(16, 1000), &avx2).b);
    // 100 steps: 18 KiB, in L1.
    assert!(!in_place_panel_outgrows_l1(&x_w1(64, 100), &avx2));
    assert!(!Packing::of(&x_w1(64, 100), &avx2).b);
}

#[test]
fn a_reserved_scratch_is_not_grown() {
    let mut scratch = GemmScratch::<f32>::new();
    assert!(scratch.is_empty());
    let shapes = [
        (64, 1000, 100),
        (1000, 64, 100),
        (100, 64, 10),
        (64, 10, 100),
    ];
    for (m, k, n) in shapes {
        scratch.reserve(m, k, n);
    }
    let reserved = scratch.len();
    // `x @ w1` is split along `k`: its second half's `C` is reserved too.
    assert_eq!(scratch.partial.len(), 64 * 100);
    for (m, k, n) in shapes {
        let a = filled::<f32>((m, k), 0.1);
        let b = filled::<f32>((k, n), 0.2);
        let mut c = Array2::zeros((m, n));
        matmul(
            a.view(),
            b.view(),
            c.view_mut(),
            false,
            &mut scratch,
            &Threads::one(),
        );
        assert_eq!(scratch.len(), reserved, "{m}x{k}x{n}");
        assert_eq!(scratch.partial.len(), 64 * 100, "{m}x{k}x{n}");
    }
    // Reserving a smaller product changes nothing either.
    scratch.reserve(2, 2, 2);
    assert_eq!(scratch.len(), reserved);
}

#[test]
fn the_reservation_covers_the_transposed_product() {
    // `[1000, 10]` C from a column-major A: computed as `C^T = B^T @ A^T`, which
    // packs differently from the product as written.
    let (m, k, n) = (1000, 64, 10);
    let mut scratch = GemmScratch::<f64>::new();
    scratch.reserve(m, k, n);
    let reserved = scratch.len();
    let a = Layouts::new(filled::<f64>((m, k), 0.1));
    let b = filled::<f64>((k, n), 0.2);
    let mut c = Array2::zeros((m, n));
    matmul(
        a.col_major.view(),
        b.view(),
        c.view_mut(),
        false,
        &mut scratch,
        &Threads::one(),
    );
    assert_eq!(scratch.len(), reserved);
    let want = reference(a.base.view(), b.view());
    assert!(error(c.view(), &want) < 1e-13);
}

#[test]
fn empty_dimensions() {
    let mut scratch = GemmScratch::new();
    let a = Array2::<f64>::zeros((2, 0));
    let b = Array2::<f64>::zeros((0, 3));
    let mut c = Array2::from_elem((2, 3), 5.0);
    let one = Threads::one();
    matmul(a.view(), b.view(), c.view_mut(), true, &mut scratch, &one);
    assert!(c.iter().all(|v| *v == 5.0));
    matmul(
        a.view(),
        b.view(),
        c.view_mut(),
        false,
        &mut scratch,
        &Threads::one(),
    );
    assert!(c.iter().all(|v| *v == 0.0));
    let mut none = Array2::<f64>::zeros((0, 3));
    let (a, b) = (Array2::zeros((0, 4)), Array2::zeros((4, 3)));
    matmul(
        a.view(),
        b.view(),
        none.view_mut(),
        false,
        &mut scratch,
        &one,
    );
    assert!(scratch.is_empty());
}

#[test]
#[should_panic(expected = "matmul shapes")]
fn disagreeing_shapes_panic() {
    let a = Array2::<f64>::zeros((2, 3));
    let b = Array2::<f64>::zeros((4, 5));
    let mut c = Array2::zeros((2, 5));
    matmul(
        a.view(),
        b.view(),
        c.view_mut(),
        false,
        &mut GemmScratch::new(),
        &Threads::one(),
    );
}

#[test]
fn small_products_take_their_own_loops() {
    let product = |m, k, n, a: (isize, isize), b: (isize, isize)| Product::<f32> {
        m,
        n,
        k,
        a: Operand {
            ptr: std::ptr::null(),
            rs: a.0,
            cs: a.1,
        },
        b: Operand {
            ptr: std::ptr::null(),
            rs: b.0,
            cs: b.1,
        },
        c: std::ptr::null_mut(),
        c_rs: n as isize,
        c_cs: 1,
        overwrite: true,
    };
    use small::Shape;
    // W2's products: x @ w1, hidden @ w2, d_scores @ w2.T, x.T @ d_hidden.
    assert_eq!(
        Shape::of(&product(300, 2, 100, (2, 1), (100, 1))),
        Some(Shape::Inner)
    );
    assert_eq!(
        Shape::of(&product(300, 100, 3, (100, 1), (3, 1))),
        Some(Shape::Cols)
    );
    assert_eq!(
        Shape::of(&product(300, 3, 100, (3, 1), (1, 3))),
        Some(Shape::Inner)
    );
    assert_eq!(Shape::of(&product(2, 300, 100, (1, 2), (100, 1))), None);
    // Nothing small, or a layout the loops cannot stream: the blocked kernel.
    assert_eq!(Shape::of(&product(64, 100, 10, (100, 1), (10, 1))), None);
    assert_eq!(Shape::of(&product(3, 300, 100, (300, 1), (1, 300))), None);
}

/// The k blocks are as few as `kc` allows and even: no short last block whose tiles
/// would spend as long starting and storing as computing.
#[test]
fn k_blocks_are_even() {
    let blocks = Blocking::new(6, 16, 8);
    assert_eq!(blocks.kc, 512);
    assert_eq!(Blocking::new(12, 32, 4).kc, 512);
    for (k, step) in [
        (0, 1),
        (1, 1),
        (256, 256),
        (257, 129),
        (300, 150),
        (384, 192),
        (385, 385),
        (500, 500),
        (513, 257),
        (784, 392),
        (1000, 500),
    ] {
        assert_eq!(blocks.k_step(k), step, "k = {k}");
    }
    // f32 has no short-k exception.
    assert_eq!(Blocking::new(12, 32, 4).k_step(300), 300);
    for k in 1..2000 {
        let step = blocks.k_step(k);
        let count = k.div_ceil(step);
        let kc = if k <= SHORT_K {
            blocks.kc / 2
        } else {
            blocks.kc
        };
        assert!(step <= kc && count == k.div_ceil(kc), "k = {k}");
        assert!(k - (count - 1) * step <= step && step - (k - (count - 1) * step) < count);
    }
}

/// The blocks of A's rows are as few as `mc` allows, whole tiles, and as even as
/// tiles go: no block of one short tile that streams all of B again.
#[test]
fn m_blocks_are_even_whole_tiles() {
    let blocks = Blocking::new(12, 32, 4);
    assert_eq!(blocks.mc, 120);
    for (m, step) in [
        (1, 12),
        (12, 12),
        (120, 120),
        (121, 72),
        (132, 72),
        (256, 96),
    ] {
        assert_eq!(blocks.m_step(m), step, "m = {m}");
    }
    for m in 1..1000 {
        let step = blocks.m_step(m);
        let count = m.div_ceil(step);
        assert!(
            step.is_multiple_of(blocks.mr) && step <= blocks.mc,
            "m = {m}"
        );
        assert_eq!(count, m.div_ceil(blocks.mc), "m = {m}");
        // The last block is short by less than a tile per block.
        assert!(step * count - m < blocks.mr * count, "m = {m}");
    }
}

/// On two threads the large products of W3 and W4 are cut where the repeated
/// packing is smallest: W4's three by columns (each thread packs only its part of
/// B, which stays in its L2), W3's `x.T @ d_z` by rows (its B, `d_z`, is a sixth
/// of its A, `x.T`, which each part would read whole: read in place, as its
/// 128-step blocks of a column-major A fit in L1, but counted as packed).
#[test]
fn products_are_cut_where_packing_repeats_least() {
    // A row-major matrix of `cols` columns, and the transpose of one.
    let row_major = |cols: usize| Operand::<f32> {
        ptr: std::ptr::null(),
        rs: cols as isize,
        cs: 1,
    };
    let transposed = transposed_operand::<f32>;
    let product = |a: Operand<f32>, b: Operand<f32>, (m, k, n): (usize, usize, usize)| {
        Product::<f32> {
            m,
            n,
            k,
            a,
            b,
            c: std::ptr::null_mut(),
            c_rs: n as isize,
            c_cs: 1,
            overwrite: true,
        }
        .oriented(12)
    };
    let cut = |p: &Product<f32>| Cut::choose(p, (12, 32), 2);
    // W4: `h @ w`, `d_w = h.T @ d_z`, `d_h = d_z @ w.T`.
    let h_w = product(row_major(500), row_major(500), (256, 500, 500));
    let d_w = product(transposed(500), row_major(500), (500, 256, 500));
    let d_h = product(row_major(500), transposed(500), (256, 500, 500));
    for p in [&h_w, &d_w, &d_h] {
        assert_eq!(cut(p).parts, 2);
        assert!(!cut(p).rows, "{}x{}x{}", p.m, p.k, p.n);
    }
    // W3: `d_w1 = x.T @ d_z`.
    let d_w1 = product(transposed(784), row_major(256), (784, 128, 256));
    let packing = Packing::of(&d_w1, &Blocking::new(12, 32, 4));
    assert!(!packing.a && packing.b);
    assert!(cut(&d_w1).rows);
}

/// A column-major A is read in place when a tile's lines of it over a block of
/// `k` fit in L1 beside B's panel (W3's `d_w` products over 128 steps, W1's
/// `d_w1` over 64 in `f64`), and packed when they do not (W4's `d_w` over 256
/// steps, in `f32` and `f64`; W3's over 128 in `f64`, three lines a step).
#[test]
fn column_major_a_is_read_in_place_when_its_lines_stay_in_l1() {
    // `h.T @ d_z`: A column-major.
    fn d_w<F>((m, k, n): (usize, usize, usize)) -> Product<F> {
        Product {
            a: transposed_operand(m),
            ..row_major_product((m, k, n))
        }
    }
    let f32_blocks = Blocking::new(12, 32, 4);
    let f64_blocks = Blocking::new(12, 16, 8);
    assert!(!Packing::of(&d_w::<f32>((784, 128, 256)), &f32_blocks).a);
    assert!(!Packing::of(&d_w::<f32>((256, 128, 128)), &f32_blocks).a);
    assert!(!Packing::of(&d_w::<f64>((1000, 64, 100)), &f64_blocks).a);
    assert!(Packing::of(&d_w::<f32>((500, 256, 500)), &f32_blocks).a);
    assert!(Packing::of(&d_w::<f64>((500, 256, 500)), &f64_blocks).a);
    assert!(Packing::of(&d_w::<f64>((784, 128, 256)), &f64_blocks).a);
}

/// The last `n % LANES` columns are dot products when A is read in place with
/// its rows along `k` (W4's `d_h = d_z @ w.T` and `h @ w`, 256x500x500), whatever
/// B's layout, rows and columns (so a thread's part of a product decides as the
/// whole does; `every_layout` checks the bits on three threads); not when A runs
/// the other way, when it is packed, or when `k` is under eight vectors.
#[cfg(target_arch = "x86_64")]
#[test]
fn last_columns_are_dot_products_when_rows_and_columns_run_along_k() {
    use kernel::{Avx2F64, Avx512F32};
    // `d_z @ w.T`: B column-major.
    fn d_h<F>((m, k, n): (usize, usize, usize)) -> Product<F> {
        Product {
            b: transposed_operand(k),
            ..row_major_product((m, k, n))
        }
    }
    let dots = dots_for_last_columns::<f32, Avx512F32>;
    assert!(dots(&d_h((256, 500, 500)), false));
    assert!(dots(&d_h((7, 500, 3)), false));
    assert!(dots(&d_h((64, 128, 10)), false));
    // Six vectors of `k`: the padded kernel is faster.
    assert!(!dots(&d_h((64, 100, 10)), false));
    assert!(!dots(&d_h((256, 500, 500)), true));
    assert!(dots(&row_major_product((256, 500, 500)), false));
    let column_major_a = Product {
        a: transposed_operand(256),
        ..d_h((256, 500, 500))
    };
    assert!(!dots(&column_major_a, false));
    // Eight vectors of four `f64` lanes.
    let avx2_f64 = dots_for_last_columns::<f64, Avx2F64>;
    assert!(avx2_f64(&d_h((64, 32, 10)), false));
    assert!(!avx2_f64(&d_h((64, 31, 10)), false));
    // The scalar kernel has no lanes to pad.
    let scalar = dots_for_last_columns::<f32, Scalar<f32>>;
    assert!(!scalar(&d_h((256, 500, 500)), false));
}

/// Products with few rows over a long `k` are split along it, whatever the thread
/// count (W1's `x @ w1`, in `f64` and `f32`); the others are not (W3's `x @ w1`:
/// 128 rows over 784; W4's products; one block of `k`).
#[test]
fn few_rows_over_a_long_k_are_split_along_k() {
    let f64_blocks = Blocking::new(12, 16, 8);
    let f32_blocks = Blocking::new(12, 32, 4);
    // f64: k blocks of 500, one on each side.
    assert_eq!(
        f64_blocks.split_k(&row_major_product::<f64>((64, 1000, 100))),
        Some(500)
    );
    // f32: k blocks of 500.
    assert_eq!(
        f32_blocks.split_k(&row_major_product::<f32>((64, 1000, 100))),
        Some(500)
    );
    // Three blocks of 367: one on the first side, two on the second.
    assert_eq!(
        f32_blocks.split_k(&row_major_product::<f32>((20, 1100, 40))),
        Some(367)
    );
    for (m, k, n) in [(128, 784, 256), (256, 500, 500), (500, 256, 500)] {
        assert_eq!(
            f32_blocks.split_k(&row_major_product::<f32>((m, k, n))),
            None
        );
    }
    assert_eq!(
        f32_blocks.split_k(&row_major_product::<f32>((10, 400, 100))),
        None
    );
    // The room reserved for the second half's `C`: 64 of 100 rows, or of 64
    // rows with the product transposed; W3's 128 rows do not split, but a batch
    // of up to 98 over the same `k` would.
    assert_eq!(f64_blocks.split_k_len(64, 1000, 100), 64 * 100);
    assert_eq!(f64_blocks.split_k_len(100, 1000, 64), 64 * 100);
    assert_eq!(f32_blocks.split_k_len(128, 784, 256), 98 * 256);
    assert_eq!(f32_blocks.split_k_len(256, 500, 500), 0);
}

/// `matmul_then` against `matmul` followed by the same work row by row: for every
/// instruction set, on shapes that take the blocked loops, the small loops and the
/// transposed orientation (a narrow `C` with a column-major A), with `k = 0`, on
/// one thread and cut for three. Each element of the output must be written
/// exactly once (a second output counts the visits), with `tanh` of `C` plus an
/// operand read at the same position, and `C` itself left as `matmul` writes it.
#[test]
fn finished_stretches_cover_c_once_with_its_final_values() {
    fn check<F: Float>() {
        // `(40, 1100, 9)` is split along `k`; with a column-major A, as `C^T`.
        let shapes = [
            (1, 1, 1),
            (3, 2, 40),
            (300, 100, 3),
            (130, 600, 41),
            (64, 0, 9),
            (40, 1100, 9),
        ];
        for isa in Isa::available() {
            for (m, k, n) in shapes {
                for a_column_major in [false, true] {
                    let a_data = filled::<F>((k, m), 0.2);
                    let a_owned = filled::<F>((m, k), 0.1);
                    let a = if a_column_major {
                        a_data.t()
                    } else {
                        a_owned.view()
                    };
                    let b = filled::<F>((k, n), 0.7);
                    let other = filled::<F>((m, n), 0.4);
                    for accumulate in [false, true] {
                        let start = filled::<F>((m, n), 0.9);
                        let mut want_c = start.clone();
                        let threads = Threads::one();
                        let mut scratch = GemmScratch::new();
                        matmul_with(
                            isa,
                            a,
                            b.view(),
                            want_c.view_mut(),
                            accumulate,
                            &mut scratch,
                            &threads,
                        );
                        let want = Array2::from_shape_fn((m, n), |(i, j)| {
                            (want_c[[i, j]] + other[[i, j]]).tanh()
                        });
                        for pool in [Threads::one(), THREE.with(Threads::clone)] {
                            let mut c = start.clone();
                            let mut out = Array2::from_elem((m, n), F::nan());
                            let mut visits = Array2::<u32>::zeros((m, n));
                            let mut scratch = GemmScratch::new();
                            scratch.set_threads(pool.count());
                            let outputs = (
                                crate::parallel::RowsMut::new(out.as_slice_mut().unwrap(), n),
                                crate::parallel::RowsMut::new(visits.as_slice_mut().unwrap(), n),
                            );
                            matmul_then_with(
                                isa,
                                a,
                                b.view(),
                                c.view_mut(),
                                accumulate,
                                &mut scratch,
                                &pool,
                                outputs,
                                |i, j0, values, (out_row, visit_row)| {
                                    for j in 0..values.len() {
                                        out_row[j] = (values[j] + other[[i, j0 + j]]).tanh();
                                        visit_row[j] += 1;
                                    }
                                },
                            );
                            let what = format!(
                                "{isa:?} {m}x{k}x{n} a column-major {a_column_major} \
                                 accumulate {accumulate} threads {}",
                                pool.count()
                            );
                            assert!(visits.iter().all(|v| *v == 1), "{what}: {visits:?}");
                            assert!(same_bits(&c, &want_c), "{what}: C");
                            assert!(same_bits(&out, &want), "{what}: output");
                        }
                    }
                }
            }
        }
    }
    check::<f32>();
    check::<f64>();
}

#[test]
#[should_panic(expected = "an output of 20 elements in rows of 5, for a product of 3 x 5")]
fn finished_stretches_need_outputs_of_the_product_shape() {
    let (a, b) = (filled::<f64>((3, 4), 0.1), filled::<f64>((4, 5), 0.2));
    let mut c = Array2::zeros((3, 5));
    let mut out = vec![0.0; 20];
    matmul_then(
        a.view(),
        b.view(),
        c.view_mut(),
        false,
        &mut GemmScratch::new(),
        &Threads::one(),
        (crate::parallel::RowsMut::new(&mut out, 5),),
        |_, _, _, _| {},
    );
}
