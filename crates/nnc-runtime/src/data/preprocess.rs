//! Shape-preserving preprocessors: zero-centring, normalising, per-channel means.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn, Zip};

use super::DataError;
use crate::Float;
use crate::cast::{from_f64, to_f64};

/// Per-feature mean and (population) variance over axis 0, accumulated in `f64`.
fn feature_moments<F: Float>(
    data: &ArrayViewD<'_, F>,
) -> Result<(ArrayD<f64>, ArrayD<f64>), DataError> {
    let features = feature_shape(data.shape())?;
    let n = data.len_of(Axis(0));
    if n == 0 {
        return Err(DataError::NoSamples);
    }
    let mut mean = ArrayD::<f64>::zeros(IxDyn(features));
    for row in data.axis_iter(Axis(0)) {
        Zip::from(&mut mean)
            .and(&row)
            .for_each(|m, &x| *m += to_f64(x));
    }
    mean /= n as f64;
    let mut var = ArrayD::<f64>::zeros(IxDyn(features));
    for row in data.axis_iter(Axis(0)) {
        Zip::from(&mut var)
            .and(&mean)
            .and(&row)
            .for_each(|v, &m, &x| *v += (to_f64(x) - m).powi(2));
    }
    var /= n as f64;
    Ok((mean, var))
}

/// The shape of one sample: every axis but the first.
fn feature_shape(shape: &[usize]) -> Result<&[usize], DataError> {
    match shape.split_first() {
        Some((_, features)) => Ok(features),
        None => Err(DataError::Rank {
            min_rank: 1,
            actual: 0,
        }),
    }
}

/// Checks `data` holds samples of the fitted feature shape.
fn check_features(data_shape: &[usize], fitted: &[usize]) -> Result<(), DataError> {
    if feature_shape(data_shape)? == fitted {
        return Ok(());
    }
    let mut expected = vec![data_shape.first().copied().unwrap_or(0)];
    expected.extend_from_slice(fitted);
    Err(DataError::Shape {
        what: "data (sample axis first)".into(),
        expected,
        actual: data_shape.to_vec(),
    })
}

/// Zero-centring: subtracts the per-feature mean of the training data.
///
/// Features are all axes after the first, so on `[N, C, H, W]` (or `[N, H, W, C]`)
/// images this is mean-image subtraction ([`MeanImage`]).
#[derive(Clone, Debug, PartialEq)]
pub struct ZeroCentre<F> {
    mean: ArrayD<F>,
}

/// Mean-image subtraction: zero-centring where each feature is one pixel of one channel.
pub type MeanImage<F> = ZeroCentre<F>;

impl<F: Float> ZeroCentre<F> {
    /// Computes the per-feature mean of `train` (sample axis first).
    pub fn fit(train: ArrayViewD<'_, F>) -> Result<Self, DataError> {
        let (mean, _) = feature_moments(&train)?;
        Ok(ZeroCentre {
            mean: mean.mapv(from_f64),
        })
    }

    /// The fitted mean, shaped like one sample.
    pub fn mean(&self) -> ArrayViewD<'_, F> {
        self.mean.view()
    }

    /// Subtracts the fitted mean from every sample of `data`, in place.
    pub fn apply(&self, mut data: ArrayViewMutD<'_, F>) -> Result<(), DataError> {
        check_features(data.shape(), self.mean.shape())?;
        for row in data.axis_iter_mut(Axis(0)) {
            Zip::from(row).and(&self.mean).for_each(|x, &m| *x = *x - m);
        }
        Ok(())
    }

    /// A centred copy of `data`.
    pub fn transform(&self, data: ArrayViewD<'_, F>) -> Result<ArrayD<F>, DataError> {
        let mut out = data.to_owned();
        self.apply(out.view_mut())?;
        Ok(out)
    }
}

/// Normalising: `(x - mean) / std` per feature, with the training data's mean and
/// population standard deviation (numpy's `std`, `ddof = 0`). A feature that is
/// constant in the training data has std 0; it is divided by 1 instead, so it maps
/// to 0.
#[derive(Clone, Debug, PartialEq)]
pub struct Normalise<F> {
    mean: ArrayD<F>,
    std: ArrayD<F>,
}

impl<F: Float> Normalise<F> {
    /// Computes the per-feature mean and std of `train` (sample axis first).
    pub fn fit(train: ArrayViewD<'_, F>) -> Result<Self, DataError> {
        let (mean, var) = feature_moments(&train)?;
        let std = var.mapv(|v| {
            if v > 0.0 {
                from_f64(v.sqrt())
            } else {
                F::one()
            }
        });
        Ok(Normalise {
            mean: mean.mapv(from_f64),
            std,
        })
    }

    /// The fitted mean, shaped like one sample.
    pub fn mean(&self) -> ArrayViewD<'_, F> {
        self.mean.view()
    }

    /// The fitted standard deviation (1 for constant features), shaped like one sample.
    pub fn std(&self) -> ArrayViewD<'_, F> {
        self.std.view()
    }

    /// Normalises every sample of `data`, in place.
    pub fn apply(&self, mut data: ArrayViewMutD<'_, F>) -> Result<(), DataError> {
        check_features(data.shape(), self.mean.shape())?;
        for row in data.axis_iter_mut(Axis(0)) {
            Zip::from(row)
                .and(&self.mean)
                .and(&self.std)
                .for_each(|x, &m, &s| *x = (*x - m) / s);
        }
        Ok(())
    }

    /// A normalised copy of `data`.
    pub fn transform(&self, data: ArrayViewD<'_, F>) -> Result<ArrayD<F>, DataError> {
        let mut out = data.to_owned();
        self.apply(out.view_mut())?;
        Ok(out)
    }
}

/// Where the channel axis of rank-4 image data is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ChannelLayout {
    /// `[N, C, H, W]`, as convolution layers take it (channel axis 1).
    Nchw,
    /// `[N, H, W, C]`, as image files and CIFAR-10's raw arrays hold it (channel axis 3).
    Nhwc,
}

impl ChannelLayout {
    fn channel_axis(self) -> Axis {
        match self {
            ChannelLayout::Nchw => Axis(1),
            ChannelLayout::Nhwc => Axis(3),
        }
    }
}

/// Per-channel mean subtraction for rank-4 image data: one mean per channel, over all
/// samples and pixels.
#[derive(Clone, Debug, PartialEq)]
pub struct ChannelMean<F> {
    layout: ChannelLayout,
    mean: Vec<F>,
}

impl<F: Float> ChannelMean<F> {
    /// Computes each channel's mean over `train`, laid out as `layout` says.
    pub fn fit(train: ArrayViewD<'_, F>, layout: ChannelLayout) -> Result<Self, DataError> {
        check_rank4(train.shape())?;
        if train.is_empty() {
            return Err(DataError::NoSamples);
        }
        let mean = train
            .axis_iter(layout.channel_axis())
            .map(|channel| {
                let sum: f64 = channel.iter().map(|&x| to_f64(x)).sum();
                from_f64(sum / channel.len() as f64)
            })
            .collect();
        Ok(ChannelMean { layout, mean })
    }

    /// The fitted mean of each channel.
    pub fn mean(&self) -> &[F] {
        &self.mean
    }

    /// Subtracts each channel's fitted mean from `data`, in place.
    pub fn apply(&self, mut data: ArrayViewMutD<'_, F>) -> Result<(), DataError> {
        check_rank4(data.shape())?;
        let axis = self.layout.channel_axis();
        if data.len_of(axis) != self.mean.len() {
            let mut expected = data.shape().to_vec();
            expected[axis.index()] = self.mean.len();
            return Err(DataError::Shape {
                what: "image data".into(),
                expected,
                actual: data.shape().to_vec(),
            });
        }
        for (mut channel, &m) in data.axis_iter_mut(axis).zip(&self.mean) {
            channel.mapv_inplace(|x| x - m);
        }
        Ok(())
    }

    /// A copy of `data` with the channel means subtracted.
    pub fn transform(&self, data: ArrayViewD<'_, F>) -> Result<ArrayD<F>, DataError> {
        let mut out = data.to_owned();
        self.apply(out.view_mut())?;
        Ok(out)
    }
}

fn check_rank4(shape: &[usize]) -> Result<(), DataError> {
    match shape.len() {
        4 => Ok(()),
        actual => Err(DataError::Rank {
            min_rank: 4,
            actual,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::init::{Init, fill};
    use rand::SeedableRng;
    use rand::rngs::StdRng;

    /// `n` samples of shape `features`, feature `j` ~ normal(mean j, std 1 + j) in flat order.
    fn sample(n: usize, features: &[usize], seed: u64) -> ArrayD<f64> {
        let mut shape = vec![n];
        shape.extend_from_slice(features);
        let mut data = ArrayD::<f64>::zeros(IxDyn(&shape));
        let mut rng = StdRng::seed_from_u64(seed);
        fill(
            &mut data.view_mut(),
            Init::Normal {
                mean: 0.0,
                std: 1.0,
            },
            &mut rng,
        );
        for mut row in data.axis_iter_mut(Axis(0)) {
            for (j, x) in row.iter_mut().enumerate() {
                *x = j as f64 + (1.0 + j as f64) * *x;
            }
        }
        data
    }

    /// Per-feature (mean, std) of `data`, flattened.
    fn stats(data: &ArrayD<f64>) -> Vec<(f64, f64)> {
        let (mean, var) = feature_moments(&data.view()).expect("non-empty");
        mean.iter()
            .zip(var.iter())
            .map(|(&m, &v)| (m, v.sqrt()))
            .collect()
    }

    #[test]
    fn zero_centred_training_data_has_zero_mean() {
        let train = sample(500, &[2, 3], 1);
        let centre = ZeroCentre::fit(train.view()).expect("fits");
        let out = centre.transform(train.view()).expect("same features");
        for (j, ((m, s), (_, s0))) in stats(&out).into_iter().zip(stats(&train)).enumerate() {
            assert!(m.abs() < 1e-12, "feature {j}: mean {m}");
            assert!((s - s0).abs() < 1e-12, "feature {j}: std changed");
        }
    }

    #[test]
    fn normalised_training_data_has_zero_mean_and_unit_std() {
        let train = sample(500, &[4], 2);
        let norm = Normalise::fit(train.view()).expect("fits");
        let out = norm.transform(train.view()).expect("same features");
        for (j, (m, s)) in stats(&out).into_iter().enumerate() {
            assert!(
                m.abs() < 1e-12 && (s - 1.0).abs() < 1e-12,
                "feature {j}: mean {m}, std {s}"
            );
        }
    }

    #[test]
    fn test_data_reuses_the_training_statistics() {
        let train = sample(500, &[3], 3);
        let test = sample(7, &[3], 4) + 10.0;
        let norm = Normalise::fit(train.view()).expect("fits");
        let out = norm.transform(test.view()).expect("same features");
        for ((o, t), j) in out.iter().zip(test.iter()).zip((0..3).cycle()) {
            let expected = (t - norm.mean()[[j]]) / norm.std()[[j]];
            assert!((o - expected).abs() < 1e-12);
        }
        // Fitted on train, not on test: the test data stays visibly shifted.
        assert!(stats(&out).iter().all(|(m, _)| *m > 2.0));
    }

    #[test]
    fn constant_features_map_to_zero() {
        let train = ndarray::arr2(&[[1.0, 5.0], [3.0, 5.0]]).into_dyn();
        let norm = Normalise::fit(train.view()).expect("fits");
        assert_eq!(norm.std(), ndarray::arr1(&[1.0, 1.0]).into_dyn());
        let out = norm.transform(train.view()).expect("same features");
        assert_eq!(out, ndarray::arr2(&[[-1.0, 0.0], [1.0, 0.0]]).into_dyn());
    }

    #[test]
    fn channel_means_are_per_channel_in_both_layouts() {
        // Channel c of sample data has mean c (features j = c*4 + pixel, mean j... so
        // build the data explicitly instead): channel 0 holds 1s, channel 1 holds 3s.
        let mut nchw = ArrayD::<f64>::ones(IxDyn(&[2, 2, 2, 2]));
        nchw.index_axis_mut(Axis(1), 1).fill(3.0);
        let nhwc = nchw.view().permuted_axes(IxDyn(&[0, 2, 3, 1])).to_owned();
        for (data, layout) in [(nchw, ChannelLayout::Nchw), (nhwc, ChannelLayout::Nhwc)] {
            let cm = ChannelMean::fit(data.view(), layout).expect("rank 4");
            assert_eq!(cm.mean(), &[1.0, 3.0], "{layout:?}");
            let out = cm.transform(data.view()).expect("same channels");
            assert!(out.iter().all(|&x| x == 0.0), "{layout:?}");
        }
    }

    #[test]
    fn shape_errors_name_the_problem() {
        let norm = Normalise::fit(sample(10, &[3], 5).view()).expect("fits");
        let err = norm
            .transform(sample(4, &[2], 5).view())
            .expect_err("2 features, not 3");
        assert_eq!(
            err.to_string(),
            "data (sample axis first): expected shape [4, 3], got [4, 2]"
        );
        let empty = ArrayD::<f64>::zeros(IxDyn(&[0, 3]));
        assert_eq!(
            ZeroCentre::fit(empty.view()).err(),
            Some(DataError::NoSamples)
        );
        let cm = ChannelMean::fit(
            ArrayD::<f64>::ones(IxDyn(&[1, 3, 2, 2])).view(),
            ChannelLayout::Nchw,
        );
        let err = cm
            .expect("rank 4")
            .apply(ArrayD::<f64>::ones(IxDyn(&[1, 2, 2])).view_mut())
            .expect_err("rank 3");
        assert_eq!(
            err.to_string(),
            "data needs a sample axis (rank at least 4), got rank 3"
        );
    }
}
