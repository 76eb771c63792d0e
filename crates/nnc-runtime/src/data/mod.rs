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
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DataError {
    /// A batch size of 0 was asked for.
    ZeroBatchSize,
    /// A row index to gather is not below the number of rows of the source.
    RowOutOfRange {
        /// The offending row index.
        row: usize,
        /// The number of rows (samples) of the source array.
        rows: usize,
    },
    /// An array (or a count of arrays) does not have the shape the operation needs.
    Shape {
        /// What has the wrong shape, e.g. `batch buffer of input `x`` or `PCA input`.
        what: String,
        /// The shape the operation needs.
        expected: Vec<usize>,
        /// The shape given.
        actual: Vec<usize>,
    },
    /// More rows were asked for than the batch buffers hold.
    BatchTooLarge {
        /// The number of rows asked for.
        rows: usize,
        /// The batch size the buffers were built for.
        batch_size: usize,
    },
    /// Two per-sample inputs disagree on the number of samples (their first axis).
    SampleCount {
        /// The input whose sample count differs.
        name: String,
        /// The first per-sample input, whose sample count the others must match.
        first: String,
        /// The sample count of `first`.
        expected: usize,
        /// The sample count of `name`.
        actual: usize,
    },
    /// The inputs to gather from are not, name by name, those the batch buffers were
    /// built for.
    InputName {
        /// The input's position (from 0) among the float or among the index inputs.
        position: usize,
        /// The name the batch buffers hold at that position.
        expected: String,
        /// The name the data holds at that position.
        actual: String,
    },
    /// Data of a rank the operation cannot take: a scalar where a sample axis is
    /// needed, or not `[N, C, H, W]`/`[N, H, W, C]` images for [`ChannelMean`].
    Rank {
        /// The rank the operation needs (at least 1; exactly 4 for images).
        min_rank: usize,
        /// The rank of the data given.
        actual: usize,
    },
    /// Statistics were to be fitted on data with no samples.
    NoSamples,
    /// The data to fit on holds a NaN or an infinity.
    NonFinite {
        /// The index of the first such element.
        position: Vec<usize>,
        /// The value, as text.
        value: String,
    },
    /// More principal components were asked for than the data has features.
    TooManyComponents {
        /// The number of components asked for.
        requested: usize,
        /// The number of features (columns) of the training data.
        features: usize,
    },
    /// The eigen-decomposition of the covariance matrix did not converge.
    NoConvergence,
}

impl std::fmt::Display for DataError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DataError::ZeroBatchSize => write!(f, "batch size must be at least 1"),
            DataError::RowOutOfRange { row, rows } => {
                write!(f, "row {row} is out of range for data with {rows} rows")
            }
            DataError::Shape {
                what,
                expected,
                actual,
            } => write!(f, "{what}: expected shape {expected:?}, got {actual:?}"),
            DataError::BatchTooLarge { rows, batch_size } => {
                write!(f, "{rows} rows do not fit a batch of at most {batch_size}")
            }
            DataError::SampleCount {
                name,
                first,
                expected,
                actual,
            } => write!(
                f,
                "`{name}` has {actual} samples but `{first}` has {expected}"
            ),
            DataError::InputName {
                position,
                expected,
                actual,
            } => write!(
                f,
                "input {position} is `{actual}` but the batch buffers were built for `{expected}`"
            ),
            DataError::Rank { min_rank, actual } => write!(
                f,
                "data needs a sample axis (rank at least {min_rank}), got rank {actual}"
            ),
            DataError::NoSamples => write!(f, "cannot fit statistics on 0 samples"),
            DataError::NonFinite { position, value } => {
                write!(f, "data holds a non-finite value ({value}) at {position:?}")
            }
            DataError::TooManyComponents {
                requested,
                features,
            } => write!(
                f,
                "asked for {requested} principal components of {features}-feature data"
            ),
            DataError::NoConvergence => {
                write!(f, "the covariance eigen-decomposition did not converge")
            }
        }
    }
}

impl std::error::Error for DataError {}
