//! Conversions between a model's float type and `f64`, without `unwrap`.
//!
//! For `f32` and `f64` these conversions always succeed (`f64 -> f32` rounds, and
//! overflows to infinity as `as` does); the fallbacks only keep the code total.

use crate::Float;

/// `x` as an `f64` (exact for both float types).
pub(crate) fn to_f64<F: Float>(x: F) -> f64 {
    x.to_f64().unwrap_or(f64::NAN)
}

/// `x` rounded to the model's float type.
pub(crate) fn from_f64<F: Float>(x: f64) -> F {
    F::from_f64(x).unwrap_or_else(F::nan)
}
