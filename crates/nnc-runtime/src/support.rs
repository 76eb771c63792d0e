//! Support for generated code: the few helpers every compiled model calls, so that
//! the generated modules stay short and read like the math.
//!
//! Generated code imports this module as `rt` (`use ::nnc::runtime::support as rt;`).
//! It holds:
//!
//! - the IR's scalar functions with the IR's semantics ([`sigmoid`], [`softplus`],
//!   [`max`], [`min`]: stable for large inputs, ties and NaN to the first operand);
//!   [`max`], [`min`] and [`softplus`] agree with the interpreter to the last bit,
//!   while [`sigmoid`], [`exp`] and the `f32` [`tanh`] trade that for loops that
//!   vectorise (within an ulp or a few, see [`crate::math`]);
//! - views of workspace buffers ([`matrix`], [`matrix_mut`], [`view`]): workspace
//!   buffers are plain `Vec`s, sized by the workspace for the current dims, so loops
//!   index slices and `general_mat_mul` sees ndarray views of the same memory;
//! - element slices of the caller's arrays ([`contiguous`], [`slice_mut`]): a
//!   standard-layout array is read in place, any other layout is copied once into a
//!   preallocated staging buffer (no allocation once the workspace exists);
//! - parameter initialisation ([`init`]);
//! - the input checks ([`check_dim`], [`check_indices`], [`check_sizes`]) and the
//!   by-name binding ([`find_float`], [`find_index`], [`reject_unknown`]) behind
//!   `Inputs::dims` and `Model::bind_inputs`; the parameter check ([`check_shape`])
//!   behind `Params::check`.
//!
//! Nothing here allocates except [`grow`], [`grow_capacity`] and [`slice_mut`] when a
//! buffer is too small or of the wrong shape, which happens when the workspace is
//! created or the runtime dims change, never in a step with unchanged dims.
//!
//! ## Limits
//!
//! A buffer holds at most [`MAX_ELEMENTS`] (2^60 - 1) elements: `isize::MAX` bytes,
//! Rust's own limit for one allocation, at 8 bytes an element. Generated
//! `Inputs::dims` checks, with [`check_sizes`], that the runtime dims the inputs give
//! keep every value of the model within it, so sizes are never computed with an
//! overflow and a broadcast view of 2^60 rows is an `Err` naming the input, not a
//! panic. (Below that limit, a workspace larger than the memory available fails to
//! allocate as any Rust allocation does.)

use ndarray::{Array, ArrayD, ArrayView, ArrayView2, ArrayViewMut2, Dimension};
use rand::Rng;

use crate::init::{Init, fill};
use crate::{Float, NamedInputs, ShapeError};

pub use crate::linalg::matmul_then;
pub use crate::parallel::{RowsMut, for_rows};
use crate::parallel::{Threads, for_chunks};

/// A dropout mask drawn into a workspace buffer: each element `1 / keep` with
/// probability `keep`, else 0 ([`crate::init::fill_dropout_mask`]; allocates nothing).
pub fn dropout_mask<F: Float, R: Rng + ?Sized>(mask: &mut [F], keep: f64, rng: &mut R) {
    crate::init::fill_dropout_mask(mask, keep, rng);
}

/// A parameter of `shape` drawn from `init` (see [`crate::init::fill`]).
pub fn init<F: Float, D: Dimension, R: Rng + ?Sized>(
    shape: D,
    init: Init,
    rng: &mut R,
) -> Array<F, D> {
    let mut a = Array::zeros(shape);
    fill(&mut a.view_mut().into_dyn(), init, rng);
    a
}

/// `1 / (1 + e^-x)`, never exponentiating a positive number: `1 / (1 + e^-x)` for
/// `x >= 0` and `e^x / (1 + e^x)` below, both from `e = e^-|x|`. Branch-free, with
/// an inline `exp` ([`Float::exp_inline`]), so a loop of sigmoids vectorises.
#[inline]
pub fn sigmoid<F: Float>(x: F) -> F {
    let e = (-x.abs()).exp_inline();
    let numerator = if x >= F::zero() { F::one() } else { e };
    numerator / (F::one() + e)
}

/// `param -= lr * grad`, elementwise, on `threads` when the tensor is large: the
/// update of generated `sgd_step`. Each element is `p - lr * g`, the same on any
/// thread count. Parameters and gradients in standard layout (as generated code
/// makes them) are updated as slices; any other layout element by element.
///
/// # Panics
/// If the shapes differ: generated code passes a parameter and its own gradient.
pub fn sgd<F: Float, D: Dimension>(
    threads: &Threads,
    lr: F,
    param: &mut Array<F, D>,
    grad: &Array<F, D>,
) {
    assert_eq!(
        param.shape(),
        grad.shape(),
        "sgd: a gradient of another shape"
    );
    match (param.as_slice_mut(), grad.as_slice()) {
        (Some(p), Some(g)) => for_chunks(threads, p, 2, |start, chunk| {
            F::sub_scaled(chunk, &g[start..], lr)
        }),
        _ => param.zip_mut_with(grad, |x, d| *x = *x - lr * *d),
    }
}

/// `e^x` inline ([`Float::exp_inline`]): vectorises, within an ulp of `x.exp()`.
#[inline]
pub fn exp<F: Float>(x: F) -> F {
    x.exp_inline()
}

/// `tanh(x)` for `f32`, without libm: generated f32 code calls this (`rt::tanh`)
/// so that its elementwise loops vectorise (a call to glibc's `tanhf` does not).
///
/// Branch-free: `x` is clamped to `±7.90531110763549805`, where the approximation
/// already rounds to exactly `±1`, and `tanh(x) ≈ x · p(x²) / q(x²)` with the odd
/// 13/6 rational approximation of Eigen's `ptanh_float` (also used by ONNX Runtime's
/// MLAS and XNNPACK-style kernels), evaluated by Horner in plain `f32` mul/add.
/// For `|x| < 0.0004`, where `tanh(x)` rounds to `x`, `x` itself is returned
/// (keeping tiny values, subnormals and `-0.0` exact). Both selects compile to
/// `min`/`max`/blend instructions, so a loop over slices vectorises.
///
/// Accuracy (tested against `f64::tanh` over a dense grid): error at most 4e-7
/// absolute and relative (measured 3.83e-7, about 3.3 `f32::EPSILON`); in ulps that
/// is at most 6, reached near `±1` where an ulp is 6e-8, while `|x| < 0.0004` is
/// exact; `±1` exactly for `|x| ≥ 7.91` and `±∞`; a NaN stays NaN. Monotone only up
/// to that rounding (close to `±1` it can step back by a few ulp). Not bit-identical to `f32::tanh` (the interpreter's), so
/// generated f32 code and the interpreter agree to a few ulp here, not to the bit.
#[inline]
#[allow(clippy::excessive_precision)] // Eigen's coefficients, as published
pub fn tanh(x: f32) -> f32 {
    const CLAMP: f32 = 7.905_311_107_635_498_05;
    const TINY: f32 = 0.0004;
    // Written as compare-and-select rather than `f32::min`/`max`, so a NaN `x`
    // passes through (`f32::min` would return the clamp bound).
    let c = if x > CLAMP { CLAMP } else { x };
    let c = if c < -CLAMP { -CLAMP } else { c };
    let x2 = c * c;
    let mut p = -2.760_768_477_423_55e-16_f32;
    p = p * x2 + 2.000_187_904_824_77e-13;
    p = p * x2 + -8.604_671_522_137_35e-11;
    p = p * x2 + 5.122_297_090_371_14e-8;
    p = p * x2 + 1.485_722_357_179_79e-5;
    p = p * x2 + 6.372_619_288_754_36e-4;
    p = p * x2 + 4.893_524_558_917_86e-3;
    p *= c;
    let mut q = 1.198_258_394_667_02e-6_f32;
    q = q * x2 + 1.185_347_056_866_54e-4;
    q = q * x2 + 2.268_434_632_439_00e-3;
    q = q * x2 + 4.893_525_185_543_85e-3;
    let r = p / q;
    if x.abs() < TINY { x } else { r }
}

/// `log(1 + e^x)` as `max(x, 0) + log(1 + e^-|x|)`: finite for large `|x|`.
#[inline]
pub fn softplus<F: Float>(x: F) -> F {
    x.max(F::zero()) + (-x.abs()).exp().ln_1p()
}

/// The larger of `a` and `b`; a tie (or a NaN `b`) gives `a`.
#[inline]
pub fn max<F: Float>(a: F, b: F) -> F {
    if a >= b || b.is_nan() { a } else { b }
}

/// The smaller of `a` and `b`; a tie (or a NaN `b`) gives `a`.
#[inline]
pub fn min<F: Float>(a: F, b: F) -> F {
    if a <= b || b.is_nan() { a } else { b }
}

/// The first `rows * cols` elements of a buffer as a row-major matrix.
///
/// # Panics
/// If `data` has fewer than `rows * cols` elements: generated code sizes every buffer
/// for the current dims before viewing it.
#[inline]
pub fn matrix<T>(data: &[T], rows: usize, cols: usize) -> ArrayView2<'_, T> {
    ArrayView2::from_shape((rows, cols), &data[..rows * cols])
        .expect("a slice of rows * cols elements is a rows x cols matrix")
}

/// The first `rows * cols` elements of a buffer as a mutable row-major matrix.
///
/// # Panics
/// As [`matrix`].
#[inline]
pub fn matrix_mut<T>(data: &mut [T], rows: usize, cols: usize) -> ArrayViewMut2<'_, T> {
    ArrayViewMut2::from_shape((rows, cols), &mut data[..rows * cols])
        .expect("a slice of rows * cols elements is a rows x cols matrix")
}

/// The first `shape.size()` elements of a buffer as an array of that shape.
///
/// # Panics
/// As [`matrix`].
#[inline]
pub fn view<T, D: Dimension>(data: &[T], shape: D) -> ArrayView<'_, T, D> {
    let len = shape.size();
    ArrayView::from_shape(shape, &data[..len])
        .expect("a slice of shape.size() elements has that shape")
}

/// The elements of `a` in logical (row-major) order, as one slice: `a`'s own memory
/// when it is in standard layout, else a copy in `staging` (which keeps its capacity
/// between calls, so the copy allocates only the first time).
pub fn contiguous<'a, T: Copy, D: Dimension>(
    a: ArrayView<'a, T, D>,
    staging: &'a mut Vec<T>,
) -> &'a [T] {
    if let Some(s) = a.to_slice() {
        return s;
    }
    staging.clear();
    staging.extend(a.iter().copied());
    staging
}

/// The elements of an output array (a gradient) as one mutable slice, after making it
/// a zeroed standard-layout array of `shape` if it is not one already.
pub fn slice_mut<F: Float, D: Dimension>(a: &mut Array<F, D>, shape: D) -> &mut [F] {
    if a.raw_dim() != shape || !a.is_standard_layout() {
        *a = Array::zeros(shape);
    }
    a.as_slice_mut()
        .expect("a standard-layout array is one slice")
}

/// Copies `src` (any layout) into `dst` in logical order.
pub fn copy<T: Copy, D: Dimension>(dst: &mut [T], src: ArrayView<'_, T, D>) {
    for (d, s) in dst.iter_mut().zip(src.iter()) {
        *d = *s;
    }
}

/// Makes `buf` at least `len` long (new elements are zero).
pub fn grow<T: Copy + Default>(buf: &mut Vec<T>, len: usize) {
    if buf.len() < len {
        buf.resize(len, T::default());
    }
}

/// Steps `at` of a stack of equal-length steps (`len` elements each, one after the
/// other in `stack`), as disjoint mutable slices: how a loop emitted once reaches a
/// value of its own step and of the step before (`let [h_prev, h_l] =
/// rt::steps_mut(&mut *h_steps, n * 500, [l - 1, l]);`).
///
/// Generated code asks only for distinct steps of a stack it sized itself; a step
/// asked for twice or out of the stack is a bug of the code generator, and panics.
pub fn steps_mut<T, const K: usize>(stack: &mut [T], len: usize, at: [usize; K]) -> [&mut [T]; K] {
    let ranges = at.map(|s| s * len..(s + 1) * len);
    let total = stack.len();
    match stack.get_disjoint_mut(ranges) {
        Ok(slices) => slices,
        Err(e) => panic!("steps {at:?} of a stack of {total} elements by {len}: {e}"),
    }
}

/// Makes `buf`'s capacity at least `cap` (a staging buffer for [`contiguous`]).
pub fn grow_capacity<T>(buf: &mut Vec<T>, cap: usize) {
    if buf.capacity() < cap {
        buf.reserve(cap - buf.len());
    }
}

/// Checks that axis `axis` of `input`, declared with dim `dim`, has size `expected`.
#[inline]
pub fn check_dim(
    input: &str,
    axis: usize,
    dim: &str,
    expected: usize,
    actual: usize,
) -> Result<(), ShapeError> {
    if expected == actual {
        return Ok(());
    }
    Err(ShapeError::Dim {
        input: input.to_string(),
        axis,
        dim: dim.to_string(),
        expected,
        actual,
    })
}

/// Checks a parameter's whole shape: `dims[k]` names axis `k` (its declared dims).
pub fn check_shape(
    param: &str,
    actual: &[usize],
    expected: &[usize],
    dims: &[&str],
) -> Result<(), ShapeError> {
    if actual.len() != expected.len() {
        return Err(ShapeError::ParamRank {
            param: param.to_string(),
            expected: expected.len(),
            actual: actual.len(),
        });
    }
    for (axis, (&a, &e)) in actual.iter().zip(expected).enumerate() {
        if a != e {
            return Err(ShapeError::ParamDim {
                param: param.to_string(),
                axis,
                dim: dims.get(axis).copied().unwrap_or("?").to_string(),
                expected: e,
                actual: a,
            });
        }
    }
    Ok(())
}

/// The most elements a buffer may hold: `isize::MAX` bytes (Rust's limit for one
/// allocation) at 8 bytes an element (`f64`, and the `usize` of index buffers).
pub const MAX_ELEMENTS: usize = isize::MAX as usize / 8;

/// A runtime dim as the inputs give it: its name, the input and axis it is read
/// from, and its size.
pub type Bound<'a> = (&'a str, &'a str, usize, usize);

/// Checks that every `shapes` entry (a declared shape, `[N, 100]`, with its sizes
/// for the current dims) holds at most [`MAX_ELEMENTS`]: called by generated
/// `Inputs::dims` with every shape of the model's buffers that has a runtime dim,
/// after `dims` are bound. The error names the largest runtime dim, the input it
/// comes from, and the shape that is too large.
pub fn check_sizes(dims: &[Bound<'_>], shapes: &[(&str, &[usize])]) -> Result<(), ShapeError> {
    for (shape, sizes) in shapes {
        let elements = sizes.iter().try_fold(1usize, |n, &d| n.checked_mul(d));
        if elements.is_some_and(|n| n <= MAX_ELEMENTS) {
            continue;
        }
        let (dim, input, axis, size) = dims
            .iter()
            .copied()
            .max_by_key(|&(_, _, _, size)| size)
            .unwrap_or(("?", "?", 0, 0));
        return Err(ShapeError::TooLarge {
            input: input.to_string(),
            axis,
            dim: dim.to_string(),
            size,
            shape: shape.to_string(),
            elements,
            limit: MAX_ELEMENTS,
        });
    }
    Ok(())
}

/// Checks that every class index in `values` is below `bound` (the size of dim `dim`).
pub fn check_indices<D: Dimension>(
    input: &str,
    dim: &str,
    bound: usize,
    values: ArrayView<'_, usize, D>,
) -> Result<(), ShapeError> {
    match values.iter().enumerate().find(|(_, v)| **v >= bound) {
        None => Ok(()),
        Some((position, &value)) => Err(ShapeError::IndexOutOfRange {
            input: input.to_string(),
            position,
            value,
            dim: dim.to_string(),
            bound,
        }),
    }
}

fn find<'a, T>(arrays: &'a [(String, ArrayD<T>)], name: &str) -> Result<&'a ArrayD<T>, ShapeError> {
    arrays
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .ok_or_else(|| ShapeError::Missing {
            input: name.to_string(),
        })
}

/// The float input `name` of rank `D`, or a `Missing` or `Rank` error.
pub fn find_float<'a, F, D: Dimension>(
    named: &'a NamedInputs<F>,
    name: &str,
) -> Result<ArrayView<'a, F, D>, ShapeError> {
    with_rank(find(&named.floats, name)?, name)
}

/// The index input `name` of rank `D`, or a `Missing` or `Rank` error.
pub fn find_index<'a, F, D: Dimension>(
    named: &'a NamedInputs<F>,
    name: &str,
) -> Result<ArrayView<'a, usize, D>, ShapeError> {
    with_rank(find(&named.indices, name)?, name)
}

/// `a` viewed with rank `D`, or a `Rank` error naming the input.
fn with_rank<'a, T, D: Dimension>(
    a: &'a ArrayD<T>,
    name: &str,
) -> Result<ArrayView<'a, T, D>, ShapeError> {
    let expected = D::NDIM.unwrap_or(a.ndim());
    a.view()
        .into_dimensionality::<D>()
        .map_err(|_| ShapeError::Rank {
            input: name.to_string(),
            expected,
            actual: a.ndim(),
        })
}

/// Rejects named arrays that are not inputs of the model (or are given as the wrong
/// kind: a float array under an index input's name, or the reverse).
pub fn reject_unknown<F>(
    named: &NamedInputs<F>,
    model: &str,
    floats: &[&str],
    indices: &[&str],
) -> Result<(), ShapeError> {
    let unknown = named
        .floats
        .iter()
        .map(|(n, _)| n)
        .find(|n| !floats.contains(&n.as_str()))
        .or_else(|| {
            named
                .indices
                .iter()
                .map(|(n, _)| n)
                .find(|n| !indices.contains(&n.as_str()))
        });
    match unknown {
        Some(name) => Err(ShapeError::Unexpected {
            model: model.to_string(),
            name: name.clone(),
        }),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{Array2, Ix2, arr2};

    #[test]
    fn steps_of_a_stack_are_its_slots_in_the_order_asked() {
        let mut stack: Vec<u32> = (0..12).collect();
        let [next, cur] = steps_mut(&mut stack, 3, [2, 1]);
        assert_eq!((&*next, &*cur), (&[6, 7, 8][..], &[3, 4, 5][..]));
        cur[0] = 40;
        assert_eq!(stack[3], 40);
        // Steps of no elements (a batch of 0 rows) are empty slices.
        let [a, b] = steps_mut(&mut stack, 0, [0, 1]);
        assert!(a.is_empty() && b.is_empty());
    }

    #[test]
    fn scalar_functions_are_stable_and_break_ties_to_the_first_operand() {
        assert_eq!(sigmoid(0.0f64), 0.5);
        assert_eq!(sigmoid(-1e4f64), 0.0);
        assert_eq!(sigmoid(1e4f32), 1.0);
        assert_eq!(softplus(1e4f64), 1e4);
        assert_eq!(softplus(-1e4f64), 0.0);
        assert!((softplus(0.0f64) - 2f64.ln()).abs() < 1e-15);
        assert_eq!(max(1.0f64, f64::NAN), 1.0);
        assert_eq!(
            max(f64::NAN, 1.0),
            1.0,
            "as `BinaryOp::Max::eval`: a later number replaces a NaN"
        );
        assert_eq!(min(-0.0f64, 0.0).to_bits(), (-0.0f64).to_bits());
    }

    /// Distance in representable `f32`s between `a` and `b` (same sign assumed).
    fn ulps(a: f32, b: f32) -> u32 {
        let key = |v: f32| {
            let i = v.to_bits() as i32;
            if i < 0 { i32::MIN - i } else { i }
        };
        key(a).abs_diff(key(b))
    }

    #[test]
    fn tanh_f32_is_within_a_few_ulp_of_f64_tanh() {
        // The f32s in [-10, 10] with a stride of 97 bit patterns (22 million points),
        // every third f32 in [2e-4, 2e-3] (around the switch to `tanh(x) = x` at
        // 4e-4, where relative error matters most), and below 2e-4 (subnormals
        // included) a stride of 4099.
        let mut worst = (0u32, 0.0f32);
        let mut worst_abs = 0.0f64;
        let mut worst_rel = 0.0f64;
        let mut check = |x: f32| {
            let got = tanh(x);
            let want = (x as f64).tanh();
            let u = ulps(got, want as f32);
            if u > worst.0 {
                worst = (u, x);
            }
            worst_abs = worst_abs.max((got as f64 - want).abs());
            if want != 0.0 {
                worst_rel = worst_rel.max(((got as f64 - want) / want).abs());
            }
        };
        let top = 10.0f32.to_bits();
        for bits in (0..=top).step_by(97) {
            let x = f32::from_bits(bits);
            check(x);
            check(-x);
        }
        for bits in (2e-4f32.to_bits()..=2e-3f32.to_bits()).step_by(3) {
            check(f32::from_bits(bits));
        }
        for bits in (0..2e-4f32.to_bits()).step_by(4099) {
            check(f32::from_bits(bits));
        }
        eprintln!(
            "tanh: worst {} ulp at {:e}; worst absolute error {worst_abs:e}, relative {worst_rel:e}",
            worst.0, worst.1
        );
        // Measured: 6 ulp at x = 3.857 (near ±1, where an ulp is 6e-8), 3.83e-7
        // absolute, 3.9e-7 relative (3.3 f32::EPSILON).
        assert!(worst.0 <= 6, "{} ulp at x = {:e}", worst.0, worst.1);
        assert!(worst_abs <= 4e-7, "absolute error {worst_abs:e}");
        assert!(worst_rel <= 4e-7, "relative error {worst_rel:e}");
    }

    #[test]
    fn tanh_f32_edge_cases() {
        assert_eq!(tanh(0.0).to_bits(), 0.0f32.to_bits());
        assert_eq!(tanh(-0.0).to_bits(), (-0.0f32).to_bits());
        let sub = f32::from_bits(1);
        assert_eq!(tanh(sub), sub, "subnormals are returned as they are");
        assert_eq!(tanh(-1e-30), -1e-30);
        assert_eq!(tanh(1e-4), 1e-4);
        for x in [7.91f32, 8.0, 9.0, 20.0, 88.0, 1e10, f32::MAX, f32::INFINITY] {
            assert_eq!(tanh(x), 1.0, "tanh({x}) is exactly 1");
            assert_eq!(tanh(-x), -1.0, "tanh(-{x}) is exactly -1");
        }
        assert!(tanh(f32::NAN).is_nan());
        assert!(tanh(-f32::NAN).is_nan());
        // Odd, and monotone up to rounding (close to ±1 it can step back by a few
        // ulp, within twice the error bound), over a grid crossing the clamp.
        let mut prev = -1.0f32;
        for i in -10_000..=10_000 {
            let x = i as f32 * 1e-3;
            let y = tanh(x);
            assert_eq!(y, -tanh(-x), "odd at {x}");
            assert!(y >= prev - 8e-7, "monotone at {x}: {y} < {prev}");
            assert!(y.abs() <= 1.0);
            prev = y;
        }
    }

    #[test]
    fn contiguous_reads_in_place_or_copies_in_logical_order() {
        let a = arr2(&[[1.0, 2.0], [3.0, 4.0]]);
        let mut staging = Vec::new();
        assert_eq!(contiguous(a.view(), &mut staging), &[1.0, 2.0, 3.0, 4.0]);
        assert_eq!(staging.capacity(), 0, "standard layout is read in place");
        assert_eq!(contiguous(a.t(), &mut staging), &[1.0, 3.0, 2.0, 4.0]);
    }

    #[test]
    fn slice_mut_replaces_arrays_of_the_wrong_shape_or_layout() {
        let mut a = Array2::<f64>::ones((3, 2));
        assert_eq!(slice_mut(&mut a, Ix2(3, 2)).len(), 6);
        assert_eq!(a[[0, 0]], 1.0, "a right array is kept");
        let mut b = Array2::<f64>::ones((2, 3)).reversed_axes();
        assert_eq!(slice_mut(&mut b, Ix2(3, 2)), &[0.0; 6]);
        let mut c = Array2::<f64>::ones((1, 1));
        assert_eq!(slice_mut(&mut c, Ix2(3, 2)).len(), 6);
    }

    #[test]
    fn checks_name_the_input_the_dim_and_both_sizes() {
        let e = check_dim("x", 1, "D", 3, 4).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `x`: axis 1 (dim `D`) has size 4, expected 3"
        );
        let e = check_shape("w", &[2, 5], &[2, 3], &["D", "H"]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "parameter `w`: axis 1 (dim `H`) has size 5, expected 3"
        );
        let e = check_shape("w", &[2], &[2, 3], &["D", "H"]).unwrap_err();
        assert_eq!(e.to_string(), "parameter `w`: expected rank 2, got rank 1");
        let labels = ndarray::arr1(&[0usize, 2, 3]);
        let e = check_indices("labels", "C", 3, labels.view()).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `labels`: index 3 at position 2 is out of range for `C` = 3"
        );
    }

    #[test]
    fn sizes_past_what_a_buffer_holds_name_the_input_and_the_dim() {
        let n = 1usize << 60;
        let dims = [("N", "x", 0, n), ("B", "y", 1, 3)];
        assert!(check_sizes(&dims, &[("[B, 2]", &[3, 2])]).is_ok());
        let e = check_sizes(&dims, &[("[B, 2]", &[3, 2]), ("[N, 1]", &[n, 1])]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "input `x`: axis 0 (dim `N`) has size 1152921504606846976, which makes values of \
             shape [N, 1] hold 1152921504606846976 elements, more than the limit of \
             1152921504606846975"
        );
        let e = check_sizes(&dims, &[("[N, 100]", &[n, 100])]).unwrap_err();
        assert!(
            e.to_string()
                .ends_with("[N, 100] hold more elements than can be counted, more than the limit of 1152921504606846975"),
            "{e}"
        );
        assert!(check_sizes(&dims, &[("[N]", &[MAX_ELEMENTS])]).is_ok());
    }

    #[test]
    fn binding_by_name_reports_missing_unknown_and_rank() {
        let named = NamedInputs::<f64> {
            floats: vec![("x".into(), ArrayD::zeros(vec![2, 3]))],
            indices: vec![("labels".into(), ArrayD::zeros(vec![2]))],
        };
        assert!(find_float::<f64, Ix2>(&named, "x").is_ok());
        let e = find_float::<f64, ndarray::Ix1>(&named, "x").unwrap_err();
        assert_eq!(
            e,
            ShapeError::Rank {
                input: "x".into(),
                expected: 1,
                actual: 2
            }
        );
        assert_eq!(
            find_float::<f64, Ix2>(&named, "y").unwrap_err(),
            ShapeError::Missing { input: "y".into() }
        );
        assert!(find_index::<f64, ndarray::Ix1>(&named, "labels").is_ok());
        assert!(reject_unknown(&named, "m", &["x"], &["labels"]).is_ok());
        let e = reject_unknown(&named, "m", &["x"], &[]).unwrap_err();
        assert_eq!(
            e,
            ShapeError::Unexpected {
                model: "m".into(),
                name: "labels".into()
            }
        );
    }

    #[test]
    fn views_and_growth() {
        let mut buf = vec![0.0f32; 2];
        grow(&mut buf, 6);
        assert_eq!(buf.len(), 6);
        grow(&mut buf, 4);
        assert_eq!(buf.len(), 6, "never shrinks");
        matrix_mut(&mut buf, 2, 3)[[1, 2]] = 5.0;
        assert_eq!(matrix(&buf, 2, 3)[[1, 2]], 5.0);
        assert_eq!(view(&buf, Ix2(3, 2))[[2, 1]], 5.0);
        let mut staging: Vec<f32> = Vec::new();
        grow_capacity(&mut staging, 10);
        assert!(staging.capacity() >= 10);
    }
}
