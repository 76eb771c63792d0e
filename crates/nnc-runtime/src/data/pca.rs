//! PCA decorrelation and whitening (feature `pca`), via nalgebra's symmetric
//! eigen-decomposition of the covariance matrix.

use nalgebra::{DMatrix, SymmetricEigen};
use ndarray::{Array1, Array2, ArrayView2, ArrayViewMut2, Axis, Zip, linalg::general_mat_mul};

use super::DataError;
use crate::Float;
use crate::cast::{from_f64, to_f64};

/// How to fit [`Pca`].
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct PcaConfig {
    /// Keep the leading this-many components (all if `None`).
    pub components: Option<usize>,
    /// Divide each component by `sqrt(eigenvalue + epsilon)`, giving (nearly) unit
    /// variance: whitening.
    pub whiten: bool,
    /// Added to the eigenvalues before whitening, so that near-zero variance
    /// directions are not blown up.
    pub epsilon: f64,
}

impl Default for PcaConfig {
    /// All components, whitened, `epsilon` 1e-5.
    fn default() -> Self {
        PcaConfig {
            components: None,
            whiten: true,
            epsilon: 1e-5,
        }
    }
}

/// PCA fitted on `[N, D]` training data: `x -> (x - mean) U` (times
/// `1 / sqrt(lambda + epsilon)` per component when whitening), where the columns of
/// `U` are the eigenvectors of the covariance `Xc^T Xc / N`, by decreasing eigenvalue.
///
/// Eigenvector signs are fixed so that each one's largest-magnitude entry is
/// positive, so the same data always gives the same transform.
#[derive(Clone, Debug, PartialEq)]
pub struct Pca<F> {
    mean: Array1<F>,
    /// `[D, K]`, one eigenvector per column.
    components: Array2<F>,
    eigenvalues: Array1<f64>,
    /// Per-component scale: `1 / sqrt(lambda + epsilon)`, or 1 without whitening.
    scale: Array1<F>,
    /// `mean U`, subtracted after projecting so that the transform needs no temporary.
    projected_mean: Array1<F>,
}

impl<F: Float> Pca<F> {
    /// Fits the mean and the covariance's eigenvectors to `train` (`[N, D]`).
    pub fn fit(train: ArrayView2<'_, F>, config: PcaConfig) -> Result<Self, DataError> {
        let (n, d) = train.dim();
        let k = config.components.unwrap_or(d);
        if k > d {
            return Err(DataError::TooManyComponents {
                requested: k,
                features: d,
            });
        }
        if n == 0 {
            return Err(DataError::NoSamples);
        }
        let (mean64, centred) = centred_f64(train)?;
        let covariance = centred.t().dot(&centred) / n as f64;
        let (eigenvalues, vectors) = sorted_eigen(&covariance)?;
        let components = Array2::from_shape_fn((d, k), |(i, j)| from_f64(vectors[(i, j)]));
        let eigenvalues = Array1::from_iter(eigenvalues.into_iter().take(k));
        let scale = eigenvalues.mapv(|l| {
            if config.whiten {
                from_f64(1.0 / (l + config.epsilon).sqrt())
            } else {
                F::one()
            }
        });
        let projected_mean = mean64.mapv(from_f64).dot(&components);
        Ok(Pca {
            mean: mean64.mapv(from_f64),
            components,
            eigenvalues,
            scale,
            projected_mean,
        })
    }

    /// The fitted per-feature mean.
    pub fn mean(&self) -> &Array1<F> {
        &self.mean
    }

    /// The kept eigenvectors, one per column, by decreasing eigenvalue (`[D, K]`).
    pub fn components(&self) -> &Array2<F> {
        &self.components
    }

    /// The kept eigenvalues (variances along the components), decreasing.
    pub fn eigenvalues(&self) -> &Array1<f64> {
        &self.eigenvalues
    }

    /// Writes the transform of `data` (`[M, D]`) into `out` (`[M, K]`) without
    /// allocating.
    pub fn transform_into(
        &self,
        data: ArrayView2<'_, F>,
        mut out: ArrayViewMut2<'_, F>,
    ) -> Result<(), DataError> {
        let (d, k) = self.components.dim();
        let m = data.nrows();
        if data.ncols() != d {
            return Err(DataError::Shape {
                what: "PCA input".into(),
                expected: vec![m, d],
                actual: data.shape().to_vec(),
            });
        }
        if out.dim() != (m, k) {
            return Err(DataError::Shape {
                what: "PCA output".into(),
                expected: vec![m, k],
                actual: out.shape().to_vec(),
            });
        }
        general_mat_mul(F::one(), &data, &self.components, F::zero(), &mut out);
        for row in out.rows_mut() {
            Zip::from(row)
                .and(&self.projected_mean)
                .and(&self.scale)
                .for_each(|x, &m, &c| *x = (*x - m) * c);
        }
        Ok(())
    }

    /// The transform of `data` (`[M, D]`), as a new `[M, K]` array.
    pub fn transform(&self, data: ArrayView2<'_, F>) -> Result<Array2<F>, DataError> {
        let mut out = Array2::zeros((data.nrows(), self.components.ncols()));
        self.transform_into(data, out.view_mut())?;
        Ok(out)
    }
}

/// The mean of `train` and `train - mean`, in `f64`, rejecting non-finite values
/// (which would keep the eigen-solver from converging).
fn centred_f64<F: Float>(
    train: ArrayView2<'_, F>,
) -> Result<(Array1<f64>, Array2<f64>), DataError> {
    if let Some(((i, j), &x)) = train.indexed_iter().find(|(_, x)| !x.is_finite()) {
        return Err(DataError::NonFinite {
            position: vec![i, j],
            value: x.to_string(),
        });
    }
    let data = train.map(|&x| to_f64(x));
    let mean = data.mean_axis(Axis(0)).ok_or(DataError::NoSamples)?;
    let centred = &data - &mean;
    Ok((mean, centred))
}

/// Eigenvalues (decreasing) and matching eigenvectors (columns) of a symmetric matrix.
fn sorted_eigen(covariance: &Array2<f64>) -> Result<(Vec<f64>, DMatrix<f64>), DataError> {
    let d = covariance.nrows();
    let matrix = DMatrix::from_fn(d, d, |i, j| covariance[[i, j]]);
    let eigen = SymmetricEigen::try_new(matrix, f64::EPSILON, 1000 * d.max(1))
        .ok_or(DataError::NoConvergence)?;
    let mut order: Vec<usize> = (0..d).collect();
    order.sort_by(|&a, &b| eigen.eigenvalues[b].total_cmp(&eigen.eigenvalues[a]));
    let values = order
        .iter()
        .map(|&i| eigen.eigenvalues[i].max(0.0))
        .collect();
    let mut vectors = DMatrix::from_fn(d, d, |i, j| eigen.eigenvectors[(i, order[j])]);
    for mut column in vectors.column_iter_mut() {
        let largest =
            column.iter().copied().fold(
                0.0f64,
                |best, x| if x.abs() > best.abs() { x } else { best },
            );
        if largest < 0.0 {
            column.neg_mut();
        }
    }
    Ok((values, vectors))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{Init, fill};
    use ndarray::{ArrayD, IxDyn, arr2};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// `n` samples of correlated 3-D data: standard normals mixed by a fixed matrix and
    /// shifted.
    fn correlated(n: usize, seed: u64) -> Array2<f64> {
        let mut z = ArrayD::<f64>::zeros(IxDyn(&[n, 3]));
        fill(
            &mut z.view_mut(),
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
            &mut StdRng::seed_from_u64(seed),
        );
        let mix = arr2(&[[2.0, 0.5, 0.0], [0.0, 1.0, 0.3], [0.0, 0.0, 0.2]]);
        let z = z.into_dimensionality::<ndarray::Ix2>().expect("rank 2");
        z.dot(&mix) + &ndarray::arr1(&[5.0, -1.0, 2.0])
    }

    fn covariance(x: &Array2<f64>) -> Array2<f64> {
        let mean = x.mean_axis(Axis(0)).expect("non-empty");
        let c = x - &mean;
        c.t().dot(&c) / x.nrows() as f64
    }

    #[track_caller]
    fn assert_close(a: &Array2<f64>, b: &Array2<f64>, tol: f64) {
        assert_eq!(a.dim(), b.dim());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() < tol, "{a}\n!=\n{b}");
        }
    }

    #[test]
    fn whitened_training_data_has_identity_covariance() {
        let train = correlated(2000, 1);
        let pca = Pca::fit(train.view(), PcaConfig::default()).expect("fits");
        let white = pca.transform(train.view()).expect("3 features");
        assert_close(&covariance(&white), &Array2::eye(3), 1e-3);
        // Exactly: lambda / (lambda + epsilon) on the diagonal.
        let shrunk = pca.eigenvalues().mapv(|l| l / (l + 1e-5));
        assert_close(&covariance(&white), &Array2::from_diag(&shrunk), 1e-9);
        let mean = white.mean_axis(Axis(0)).expect("non-empty");
        assert!(mean.iter().all(|m| m.abs() < 1e-12), "{mean}");
    }

    #[test]
    fn decorrelated_data_has_the_eigenvalues_on_its_diagonal() {
        let train = correlated(2000, 2);
        let config = PcaConfig {
            whiten: false,
            ..PcaConfig::default()
        };
        let pca = Pca::fit(train.view(), config).expect("fits");
        let rotated = pca.transform(train.view()).expect("3 features");
        let expected = Array2::from_diag(pca.eigenvalues());
        assert_close(&covariance(&rotated), &expected, 1e-9);
        let ev = pca.eigenvalues();
        assert!(ev[0] >= ev[1] && ev[1] >= ev[2], "decreasing: {ev}");
        // The mixing matrix makes the first feature dominant.
        assert!(pca.components()[[0, 0]] > 0.9, "{}", pca.components());
    }

    #[test]
    fn test_data_reuses_the_training_statistics() {
        let train = correlated(2000, 3);
        let test = correlated(5, 4);
        let pca = Pca::fit(train.view(), PcaConfig::default()).expect("fits");
        let out = pca.transform(test.view()).expect("3 features");
        let centred = &test - pca.mean();
        let expected =
            centred.dot(pca.components()) / &pca.eigenvalues().mapv(|l| (l + 1e-5).sqrt());
        assert_close(&out, &expected, 1e-12);
    }

    #[test]
    fn components_can_be_truncated_and_errors_are_reported() {
        let train = correlated(100, 5);
        let pca = Pca::fit(
            train.view(),
            PcaConfig {
                components: Some(2),
                ..PcaConfig::default()
            },
        )
        .expect("fits");
        assert_eq!(
            pca.transform(train.view()).expect("3 features").dim(),
            (100, 2)
        );
        let err = Pca::fit(
            train.view(),
            PcaConfig {
                components: Some(4),
                ..PcaConfig::default()
            },
        );
        assert_eq!(
            err.err(),
            Some(DataError::TooManyComponents {
                requested: 4,
                features: 3
            })
        );
        let mut bad = train.clone();
        bad[[3, 1]] = f64::NAN;
        let err = Pca::fit(bad.view(), PcaConfig::default()).expect_err("NaN");
        assert_eq!(
            err.to_string(),
            "data holds a non-finite value (NaN) at [3, 1]"
        );
        let err = pca
            .transform(train.slice(ndarray::s![.., ..2]))
            .expect_err("2 features");
        assert_eq!(
            err.to_string(),
            "PCA input: expected shape [100, 3], got [100, 2]"
        );
    }
}
