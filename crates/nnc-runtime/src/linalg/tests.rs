//! The GEMM against a naive triple loop in f64, for every instruction set this CPU
//! has, on shapes that cover edge tiles, several blocks in each of m, k and n, and
//! operands of every layout (row- and column-major, transposed, strided, reversed).

use super::*;
use ndarray::{Array2, ShapeBuilder, s};

fn reference(a: ArrayView2<'_, f64>, b: ArrayView2<'_, f64>) -> Array2<f64> {
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

/// The worst difference from `want`, relative to the largest `|want|` (at least 1).
fn error(got: ArrayView2<'_, f64>, want: &Array2<f64>) -> f64 {
    let scale = want.iter().fold(1.0f64, |s, w| s.max(w.abs()));
    got.iter()
        .zip(want)
        .fold(0.0f64, |e, (g, w)| e.max((g - w).abs() / scale))
}

/// `(m, k, n)`: single elements, edge tiles in both directions, narrow and wide C,
/// and sizes past one block of MC (128), KC (256) and NC (2048).
const SHAPES: [(usize, usize, usize); 14] = [
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
];

#[test]
fn every_instruction_set_and_shape_in_f64() {
    for isa in Isa::available() {
        for (m, k, n) in SHAPES {
            let (a, b) = (filled((m, k), 0.1), filled((k, n), 0.7));
            let want = reference(a.view(), b.view());
            let mut c = Array2::from_elem((m, n), f64::NAN);
            matmul_on(
                isa,
                a.view(),
                b.view(),
                c.view_mut(),
                false,
                &mut GemmScratch::new(),
            );
            let e = error(c.view(), &want);
            assert!(e < 1e-13, "{isa:?} {m}x{k}x{n}: {e}");
        }
    }
}

#[test]
fn every_instruction_set_and_shape_in_f32() {
    for isa in Isa::available() {
        for (m, k, n) in SHAPES {
            let (a, b) = (filled((m, k), 0.1), filled((k, n), 0.7));
            let (a32, b32) = (a.mapv(|v| v as f32), b.mapv(|v| v as f32));
            let want = reference(a32.mapv(f64::from).view(), b32.mapv(f64::from).view());
            let mut c = Array2::from_elem((m, n), f32::NAN);
            matmul_on(
                isa,
                a32.view(),
                b32.view(),
                c.view_mut(),
                false,
                &mut GemmScratch::new(),
            );
            let e = error(c.mapv(f64::from).view(), &want);
            assert!(
                e < 1e-6 * (k as f64).sqrt().max(1.0),
                "{isa:?} {m}x{k}x{n}: {e}"
            );
        }
    }
}

#[test]
fn operands_of_every_layout() {
    let (m, k, n) = (19, 37, 23);
    let a = filled((m, k), 0.3);
    let b = filled((k, n), 0.9);
    let a_f = {
        let mut x = Array2::zeros((m, k).f());
        x.assign(&a);
        x
    };
    let b_t = b.t().to_owned();
    // Twice as wide, to take every other column; and stored reversed, to flip.
    let a_wide = Array2::from_shape_fn((m, 2 * k), |(i, j)| a[[i, j / 2]]);
    let b_rev = b.slice(s![..;-1, ..;-1]).to_owned();
    let operands = [
        (a.view(), b.view()),
        (a_f.view(), b_t.t()),
        (a.view(), b_t.t()),
        (a_wide.slice(s![.., ..;2]), b.view()),
        (a.view(), b_rev.slice(s![..;-1, ..;-1])),
    ];
    for isa in Isa::available() {
        for (i, (av, bv)) in operands.iter().enumerate() {
            let want = reference(av.view(), bv.view());
            let mut scratch = GemmScratch::new();
            // C row-major, column-major, and every other column of a wider array.
            let mut c_rows = Array2::from_elem((m, n), f64::NAN);
            let mut c_cols = Array2::from_elem((m, n).f(), f64::NAN);
            let mut c_wide = Array2::from_elem((m, 2 * n), f64::NAN);
            matmul_on(
                isa,
                av.view(),
                bv.view(),
                c_rows.view_mut(),
                false,
                &mut scratch,
            );
            matmul_on(
                isa,
                av.view(),
                bv.view(),
                c_cols.view_mut(),
                false,
                &mut scratch,
            );
            let c_strided = c_wide.slice_mut(s![.., ..;2]);
            matmul_on(isa, av.view(), bv.view(), c_strided, false, &mut scratch);
            for (what, c) in [
                ("rows", c_rows.view()),
                ("cols", c_cols.view()),
                ("strided", c_wide.slice(s![.., ..;2])),
            ] {
                let e = error(c, &want);
                assert!(e < 1e-13, "{isa:?} operands {i}, C {what}: {e}");
            }
            // The columns between the strided ones are untouched.
            assert!(c_wide.slice(s![.., 1..;2]).iter().all(|v| v.is_nan()));
        }
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
    // Neither stride contiguous: packed.
    assert!(!reads_well_in_place(a(2000, 2), 4));
}

#[test]
fn accumulates_into_the_destination() {
    for isa in Isa::available() {
        // k past one KC block: only the first block may overwrite.
        for (m, k, n) in [(4, 3, 5), (20, 300, 70), (64, 100, 10)] {
            let a = filled((m, k), 0.2);
            let b = filled((k, n), 0.9);
            let start = filled((m, n), 0.4);
            let mut c = start.clone();
            matmul_on(
                isa,
                a.view(),
                b.view(),
                c.view_mut(),
                true,
                &mut GemmScratch::new(),
            );
            let want = reference(a.view(), b.view()) + &start;
            let e = error(c.view(), &want);
            assert!(e < 1e-13, "{isa:?} {m}x{k}x{n}: {e}");
        }
    }
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
    for (m, k, n) in shapes {
        let a = filled((m, k), 0.1).mapv(|v| v as f32);
        let b = filled((k, n), 0.2).mapv(|v| v as f32);
        let mut c = Array2::zeros((m, n));
        matmul(a.view(), b.view(), c.view_mut(), false, &mut scratch);
        assert_eq!(scratch.len(), reserved, "{m}x{k}x{n}");
    }
    // Reserving a smaller product changes nothing either.
    scratch.reserve(2, 2, 2);
    assert_eq!(scratch.len(), reserved);
}

#[test]
fn empty_dimensions() {
    let mut scratch = GemmScratch::new();
    let a = Array2::<f64>::zeros((2, 0));
    let b = Array2::<f64>::zeros((0, 3));
    let mut c = Array2::from_elem((2, 3), 5.0);
    matmul(a.view(), b.view(), c.view_mut(), true, &mut scratch);
    assert!(c.iter().all(|v| *v == 5.0));
    matmul(a.view(), b.view(), c.view_mut(), false, &mut scratch);
    assert!(c.iter().all(|v| *v == 0.0));
    let mut none = Array2::<f64>::zeros((0, 3));
    matmul(
        Array2::zeros((0, 4)).view(),
        Array2::zeros((4, 3)).view(),
        none.view_mut(),
        false,
        &mut scratch,
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
    );
}
