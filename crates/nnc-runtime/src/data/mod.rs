//! Data handling for training loops: minibatches and preprocessing.
//!
//! **Minibatches.** [`Minibatches`] reshuffles the sample indices `0..n` every epoch
//! with its own seeded RNG and hands them out in batches. [`gather_rows`] copies the
//! chosen rows of an array into a preallocated buffer; [`BatchInputs`] does that for
//! every array of a [`NamedInputs`](crate::NamedInputs), keeping its buffers between
//! steps so that a training step allocates nothing.
//!
//! **Preprocessing.** Each preprocessor is *fitted* on training data (its statistics
//! are computed once, in `f64`) and then *applied*, with those same statistics, to
//! training and test data alike. Data has the sample axis first; the remaining axes
//! are the features.
//!
//! | preprocessor | statistics | applied as |
//! |---|---|---|
//! | [`ZeroCentre`] (alias [`MeanImage`]) | per-feature mean | `x - mean` |
//! | [`Normalise`] | per-feature mean and std | `(x - mean) / std` |
//! | [`ChannelMean`] | per-channel mean of `[N, C, H, W]` or `[N, H, W, C]` images | `x - mean[c]` |
//! | `Pca` (feature `pca`) | mean, covariance eigenvectors and eigenvalues | `(x - mean) U`, optionally `/ sqrt(lambda + eps)` |
//!
//! Mean-image subtraction is zero-centring of image data: every pixel of every channel
//! is a feature, so the per-feature mean *is* the mean image.

mod batch;
#[cfg(feature = "pca")]
mod pca;
mod preprocess;

pub use batch::{BatchConfig, BatchInputs, Batches, Minibatches, gather_rows};
#[cfg(feature = "pca")]
pub use pca::{Pca, PcaConfig};
pub use preprocess::{ChannelLayout, ChannelMean, MeanImage, Normalise, ZeroCentre};

/// Data of the wrong shape or size for an operation, or unusable statistics.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum DataError {
    #[error("batch size must be at least 1")]
    ZeroBatchSize,
    #[error("row {row} is out of range for data with {rows} rows")]
    RowOutOfRange { row: usize, rows: usize },
    #[error("{what}: expected shape {expected:?}, got {actual:?}")]
    Shape {
        what: String,
        expected: Vec<usize>,
        actual: Vec<usize>,
    },
    #[error("{rows} rows do not fit a batch of at most {batch_size}")]
    BatchTooLarge { rows: usize, batch_size: usize },
    #[error("`{name}` has {actual} samples but `{first}` has {expected}")]
    SampleCount {
        name: String,
        first: String,
        expected: usize,
        actual: usize,
    },
    #[error("input {position} is `{actual}` but the batch buffers were built for `{expected}`")]
    InputName {
        position: usize,
        expected: String,
        actual: String,
    },
    #[error("data needs a sample axis (rank at least {min_rank}), got rank {actual}")]
    Rank { min_rank: usize, actual: usize },
    #[error("cannot fit statistics on 0 samples")]
    NoSamples,
    #[error("data holds a non-finite value ({value}) at {position:?}")]
    NonFinite { position: Vec<usize>, value: String },
    #[error("asked for {requested} principal components of {features}-feature data")]
    TooManyComponents { requested: usize, features: usize },
    #[error("the covariance eigen-decomposition did not converge")]
    NoConvergence,
}
