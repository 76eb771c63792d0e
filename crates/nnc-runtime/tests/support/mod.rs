//! Hand-written implementations of [`nnc_runtime::Model`], written the way generated
//! code implements it. They are the reference for codegen and the test subjects for
//! the generic code (gradient checks, npz, optimisers, batching).

pub mod linear;
pub mod softmax;

use nnc_runtime::ShapeError;
use nnc_runtime::ndarray::{ArrayD, ArrayView1, ArrayView2, Ix1, Ix2};

/// Looks up a named array, or reports it missing.
pub fn find<'a, T>(
    arrays: &'a [(String, ArrayD<T>)],
    name: &str,
) -> Result<&'a ArrayD<T>, ShapeError> {
    arrays
        .iter()
        .find(|(n, _)| n == name)
        .map(|(_, a)| a)
        .ok_or_else(|| ShapeError::Missing {
            input: name.to_string(),
        })
}

/// Rejects names that are not inputs of the model.
pub fn reject_unknown<T>(
    model: &str,
    arrays: &[(String, ArrayD<T>)],
    known: &[&str],
) -> Result<(), ShapeError> {
    match arrays.iter().find(|(n, _)| !known.contains(&n.as_str())) {
        Some((name, _)) => Err(ShapeError::Unexpected {
            model: model.to_string(),
            name: name.clone(),
        }),
        None => Ok(()),
    }
}

fn rank_error(input: &str, expected: usize, actual: usize) -> ShapeError {
    ShapeError::Rank {
        input: input.to_string(),
        expected,
        actual,
    }
}

/// A named array as a matrix.
pub fn matrix<'a, T>(input: &str, a: &'a ArrayD<T>) -> Result<ArrayView2<'a, T>, ShapeError> {
    a.view()
        .into_dimensionality::<Ix2>()
        .map_err(|_| rank_error(input, 2, a.ndim()))
}

/// A named array as a vector.
pub fn vector<'a, T>(input: &str, a: &'a ArrayD<T>) -> Result<ArrayView1<'a, T>, ShapeError> {
    a.view()
        .into_dimensionality::<Ix1>()
        .map_err(|_| rank_error(input, 1, a.ndim()))
}

/// The generated code's own dim check, so the hand-written models report alike.
pub use nnc_runtime::support::check_dim;
