//! Shuffled minibatches and gathering rows into preallocated buffers.

use ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, Axis, IxDyn};
use rand::SeedableRng;
use rand::rngs::StdRng;
use rand::seq::SliceRandom;

use super::DataError;
use crate::{Float, NamedInputs};

/// How to cut an epoch into batches.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct BatchConfig {
    /// Samples per batch (at least 1).
    pub batch_size: usize,
    /// Seed of the shuffling RNG.
    pub seed: u64,
    /// Skip the last batch of an epoch when it is smaller than `batch_size`.
    pub drop_last: bool,
}

/// Sample indices `0..n`, reshuffled every epoch, handed out in batches.
///
/// The permutation is held in one buffer allocated at construction; [`epoch`]
/// shuffles it in place and lends out slices of it.
///
/// [`epoch`]: Minibatches::epoch
#[derive(Debug)]
pub struct Minibatches {
    order: Vec<usize>,
    config: BatchConfig,
    rng: StdRng,
}

impl Minibatches {
    /// Batches over `samples` samples. A zero batch size is an error.
    pub fn new(samples: usize, config: BatchConfig) -> Result<Self, DataError> {
        if config.batch_size == 0 {
            return Err(DataError::ZeroBatchSize);
        }
        Ok(Minibatches {
            order: (0..samples).collect(),
            config,
            rng: StdRng::seed_from_u64(config.seed),
        })
    }

    /// Reshuffles and returns this epoch's batches: every sample exactly once (but for
    /// a dropped last batch), in a new random order.
    pub fn epoch(&mut self) -> Batches<'_> {
        self.order.shuffle(&mut self.rng);
        Batches {
            rest: &self.order,
            batch_size: self.config.batch_size,
            drop_last: self.config.drop_last,
        }
    }

    /// How many batches [`epoch`](Minibatches::epoch) yields.
    pub fn batches_per_epoch(&self) -> usize {
        let (n, b) = (self.order.len(), self.config.batch_size);
        if self.config.drop_last {
            n / b
        } else {
            n.div_ceil(b)
        }
    }
}

/// One epoch's batches of sample indices, borrowed from [`Minibatches`].
#[derive(Clone, Debug)]
pub struct Batches<'a> {
    rest: &'a [usize],
    batch_size: usize,
    drop_last: bool,
}

impl<'a> Iterator for Batches<'a> {
    type Item = &'a [usize];

    fn next(&mut self) -> Option<&'a [usize]> {
        let take = self.batch_size.min(self.rest.len());
        if take == 0 || (self.drop_last && take < self.batch_size) {
            return None;
        }
        let (batch, rest) = self.rest.split_at(take);
        self.rest = rest;
        Some(batch)
    }
}

/// Copies rows `rows` (along axis 0) of `src` into `dst`, in order.
///
/// `dst` must have shape `[rows.len(), src's other dims...]`. Every row index is
/// checked before anything is written, so on error `dst` is unchanged.
pub fn gather_rows<T: Clone>(
    src: ArrayViewD<'_, T>,
    rows: &[usize],
    mut dst: ArrayViewMutD<'_, T>,
) -> Result<(), DataError> {
    let (n, row_shape) = split_samples(src.shape())?;
    // Compared piecewise: building the expected shape would allocate on every step.
    if dst.shape().split_first() != Some((&rows.len(), row_shape)) {
        let expected = [&[rows.len()], row_shape].concat();
        let actual = dst.shape().to_vec();
        let what = "batch buffer".into();
        return Err(DataError::Shape {
            what,
            expected,
            actual,
        });
    }
    if let Some(&row) = rows.iter().find(|&&r| r >= n) {
        return Err(DataError::RowOutOfRange { row, rows: n });
    }
    for (i, &row) in rows.iter().enumerate() {
        dst.index_axis_mut(Axis(0), i)
            .assign(&src.index_axis(Axis(0), row));
    }
    Ok(())
}

/// `(samples, shape of one sample)`, or an error for a scalar.
fn split_samples(shape: &[usize]) -> Result<(usize, &[usize]), DataError> {
    match shape.split_first() {
        Some((&n, rest)) => Ok((n, rest)),
        None => Err(DataError::Rank {
            min_rank: 1,
            actual: 0,
        }),
    }
}

/// Batch-sized copies of a data set's inputs, refilled in place each step.
///
/// Arrays of rank at least 1 are per-sample: axis 0 indexes samples, and all of them
/// must have the same number of samples. Rank-0 arrays (scalars such as a
/// regularisation strength) are copied whole into every batch.
///
/// Buffers for full batches are allocated by [`new`](BatchInputs::new); buffers for a
/// smaller last batch are allocated the first time one is asked for and then kept, so
/// after the first epoch [`gather`](BatchInputs::gather) allocates nothing. A batch
/// size larger than the data set is allowed: the buffers then hold every sample (a
/// batch can hold no more), whatever the batch size says.
#[derive(Clone, Debug)]
pub struct BatchInputs<F> {
    batch_size: usize,
    /// Samples the full buffers hold: the batch size, or the whole data set if smaller.
    full_rows: usize,
    full: NamedInputs<F>,
    tail: Option<NamedInputs<F>>,
}

impl<F: Float> BatchInputs<F> {
    /// Buffers shaped like `data` with `batch_size` samples (at most as many as `data`
    /// holds).
    pub fn new(data: &NamedInputs<F>, batch_size: usize) -> Result<Self, DataError> {
        if batch_size == 0 {
            return Err(DataError::ZeroBatchSize);
        }
        let samples = sample_count(data)?;
        let full_rows = samples.map_or(batch_size, |n| n.min(batch_size));
        Ok(BatchInputs {
            batch_size,
            full_rows,
            full: buffers_like(data, full_rows),
            tail: None,
        })
    }

    /// The inputs of samples `rows` of `data`, which must have the same names, order
    /// and per-sample shapes as the data these buffers were built from.
    pub fn gather(
        &mut self,
        data: &NamedInputs<F>,
        rows: &[usize],
    ) -> Result<&NamedInputs<F>, DataError> {
        if rows.len() > self.batch_size {
            return Err(DataError::BatchTooLarge {
                rows: rows.len(),
                batch_size: self.batch_size,
            });
        }
        let buffers = if rows.len() == self.full_rows {
            &mut self.full
        } else {
            if self.tail.as_ref().and_then(batch_len) != Some(rows.len()) {
                self.tail = None;
            }
            self.tail
                .get_or_insert_with(|| buffers_like(data, rows.len()))
        };
        fill(buffers, data, rows)?;
        Ok(buffers)
    }
}

/// The common number of samples of `data`'s per-sample arrays (`None` if it has none).
fn sample_count<F>(data: &NamedInputs<F>) -> Result<Option<usize>, DataError> {
    let shapes = data
        .floats
        .iter()
        .map(|(n, a)| (n, a.shape()))
        .chain(data.indices.iter().map(|(n, a)| (n, a.shape())));
    let mut first: Option<(&String, usize)> = None;
    for (name, shape) in shapes {
        let Some(&n) = shape.first() else { continue };
        match first {
            None => first = Some((name, n)),
            Some((first_name, expected)) if expected != n => {
                return Err(DataError::SampleCount {
                    name: name.clone(),
                    first: first_name.clone(),
                    expected,
                    actual: n,
                });
            }
            Some(_) => {}
        }
    }
    Ok(first.map(|(_, n)| n))
}

/// The batch length of a set of buffers (samples of any per-sample array).
fn batch_len<F>(buffers: &NamedInputs<F>) -> Option<usize> {
    let floats = buffers.floats.iter().map(|(_, a)| a.shape());
    floats
        .chain(buffers.indices.iter().map(|(_, a)| a.shape()))
        .find_map(|s| s.first().copied())
}

fn buffers_like<F: Float>(data: &NamedInputs<F>, batch: usize) -> NamedInputs<F> {
    NamedInputs {
        floats: data
            .floats
            .iter()
            .map(|(n, a)| (n.clone(), batch_buffer(a, batch)))
            .collect(),
        indices: data
            .indices
            .iter()
            .map(|(n, a)| (n.clone(), batch_buffer(a, batch)))
            .collect(),
    }
}

/// Zeros shaped like `a` with `batch` samples (or like `a` itself for a scalar).
fn batch_buffer<T: Clone + num_traits::Zero>(a: &ArrayD<T>, batch: usize) -> ArrayD<T> {
    let mut shape = a.shape().to_vec();
    if let Some(first) = shape.first_mut() {
        *first = batch;
    }
    ArrayD::zeros(IxDyn(&shape))
}

fn fill<F: Float>(
    buffers: &mut NamedInputs<F>,
    data: &NamedInputs<F>,
    rows: &[usize],
) -> Result<(), DataError> {
    check_count("float inputs", buffers.floats.len(), data.floats.len())?;
    check_count("index inputs", buffers.indices.len(), data.indices.len())?;
    let floats = buffers.floats.iter_mut().zip(&data.floats);
    for (position, ((name, dst), (src_name, src))) in floats.enumerate() {
        fill_one(position, name, dst, src_name, src, rows)?;
    }
    let indices = buffers.indices.iter_mut().zip(&data.indices);
    for (position, ((name, dst), (src_name, src))) in indices.enumerate() {
        fill_one(position, name, dst, src_name, src, rows)?;
    }
    Ok(())
}

fn check_count(what: &str, expected: usize, actual: usize) -> Result<(), DataError> {
    if expected == actual {
        return Ok(());
    }
    Err(DataError::Shape {
        what: format!("number of {what}"),
        expected: vec![expected],
        actual: vec![actual],
    })
}

fn fill_one<T: Clone>(
    position: usize,
    name: &str,
    dst: &mut ArrayD<T>,
    src_name: &str,
    src: &ArrayD<T>,
    rows: &[usize],
) -> Result<(), DataError> {
    if name != src_name {
        return Err(DataError::InputName {
            position,
            expected: name.into(),
            actual: src_name.into(),
        });
    }
    if src.ndim() == 0 {
        if dst.shape() != src.shape() {
            let what = format!("input `{name}`");
            return Err(DataError::Shape {
                what,
                expected: dst.shape().to_vec(),
                actual: src.shape().to_vec(),
            });
        }
        dst.assign(src);
        return Ok(());
    }
    gather_rows(src.view(), rows, dst.view_mut()).map_err(|e| match e {
        DataError::Shape {
            expected, actual, ..
        } => DataError::Shape {
            what: format!("batch buffer of input `{name}`"),
            expected,
            actual,
        },
        other => other,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use ndarray::{arr0, arr1, arr2};

    fn config(batch_size: usize, drop_last: bool) -> BatchConfig {
        BatchConfig {
            batch_size,
            seed: 5,
            drop_last,
        }
    }

    #[test]
    fn an_epoch_covers_every_sample_once_in_batches() {
        let mut mb = Minibatches::new(10, config(4, false)).expect("batch size 4");
        assert_eq!(mb.batches_per_epoch(), 3);
        let batches: Vec<Vec<usize>> = mb.epoch().map(<[usize]>::to_vec).collect();
        assert_eq!(
            batches.iter().map(Vec::len).collect::<Vec<_>>(),
            vec![4, 4, 2]
        );
        let mut all: Vec<usize> = batches.concat();
        assert_ne!(all, (0..10).collect::<Vec<_>>(), "shuffled");
        all.sort_unstable();
        assert_eq!(all, (0..10).collect::<Vec<_>>());
    }

    #[test]
    fn epochs_differ_and_seeds_reproduce() {
        let mut a = Minibatches::new(20, config(20, false)).expect("valid");
        let mut b = Minibatches::new(20, config(20, false)).expect("valid");
        let a1: Vec<usize> = a.epoch().flatten().copied().collect();
        let a2: Vec<usize> = a.epoch().flatten().copied().collect();
        let b1: Vec<usize> = b.epoch().flatten().copied().collect();
        assert_ne!(a1, a2);
        assert_eq!(a1, b1);
    }

    #[test]
    fn drop_last_skips_a_short_final_batch() {
        let mut mb = Minibatches::new(10, config(4, true)).expect("valid");
        assert_eq!(mb.batches_per_epoch(), 2);
        assert_eq!(
            mb.epoch().map(<[usize]>::len).collect::<Vec<_>>(),
            vec![4, 4]
        );
        assert_eq!(
            Minibatches::new(10, config(0, true)).err(),
            Some(DataError::ZeroBatchSize)
        );
    }

    #[test]
    fn gather_rows_copies_rows_in_order() {
        let src = arr2(&[[0.0, 1.0], [2.0, 3.0], [4.0, 5.0]]).into_dyn();
        let mut dst = ArrayD::<f64>::zeros(IxDyn(&[2, 2]));
        gather_rows(src.view(), &[2, 0], dst.view_mut()).expect("fits");
        assert_eq!(dst, arr2(&[[4.0, 5.0], [0.0, 1.0]]).into_dyn());
    }

    #[test]
    fn gather_rows_rejects_bad_rows_and_buffers() {
        let src = arr2(&[[0.0, 1.0], [2.0, 3.0]]).into_dyn();
        let mut dst = ArrayD::<f64>::zeros(IxDyn(&[2, 2]));
        let err = gather_rows(src.view(), &[1, 2], dst.view_mut()).expect_err("row 2");
        assert_eq!(
            err.to_string(),
            "row 2 is out of range for data with 2 rows"
        );
        assert_eq!(dst, ArrayD::zeros(IxDyn(&[2, 2])), "unchanged");
        let err = gather_rows(src.view(), &[1], dst.view_mut()).expect_err("1 row into 2");
        assert_eq!(
            err.to_string(),
            "batch buffer: expected shape [1, 2], got [2, 2]"
        );
    }

    fn data() -> NamedInputs<f64> {
        NamedInputs {
            floats: vec![
                (
                    "x".into(),
                    arr2(&[[0.0, 0.5], [1.0, 1.5], [2.0, 2.5]]).into_dyn(),
                ),
                ("reg".into(), arr0(0.1).into_dyn()),
            ],
            indices: vec![("labels".into(), arr1(&[7, 8, 9]).into_dyn())],
        }
    }

    #[test]
    fn batch_inputs_gather_every_array_and_keep_scalars() {
        let data = data();
        let mut batches = BatchInputs::new(&data, 2).expect("consistent");
        let batch = batches.gather(&data, &[2, 1]).expect("fits");
        assert_eq!(
            batch.floats[0].1,
            arr2(&[[2.0, 2.5], [1.0, 1.5]]).into_dyn()
        );
        assert_eq!(batch.floats[1].1, arr0(0.1).into_dyn());
        assert_eq!(batch.indices[0].1, arr1(&[9, 8]).into_dyn());
        // A short last batch gets its own buffers, kept for the next epoch.
        let tail = batches.gather(&data, &[0]).expect("fits").indices[0]
            .1
            .clone();
        assert_eq!(tail, arr1(&[7]).into_dyn());
        let tail_ptr = batches.tail.as_ref().map(|t| t.floats[0].1.as_ptr());
        batches.gather(&data, &[1]).expect("fits");
        assert_eq!(
            batches.tail.as_ref().map(|t| t.floats[0].1.as_ptr()),
            tail_ptr,
            "reused"
        );
    }

    #[test]
    fn a_batch_size_past_the_data_holds_the_data() {
        let data = data();
        for batch_size in [4, 1 << 40, usize::MAX] {
            let mut batches = BatchInputs::new(&data, batch_size).expect("a batch of everything");
            assert_eq!(batches.full.floats[0].1.shape(), [3, 2], "{batch_size}");
            let all = batches.gather(&data, &[2, 0, 1]).expect("fits");
            assert_eq!(all.indices[0].1, arr1(&[9, 7, 8]).into_dyn());
            assert!(batches.tail.is_none(), "the full buffers are used");
        }
        let mut epoch = Minibatches::new(3, config(usize::MAX, false)).expect("valid");
        assert_eq!(epoch.batches_per_epoch(), 1);
        assert_eq!(epoch.epoch().map(<[usize]>::len).collect::<Vec<_>>(), [3]);
    }

    #[test]
    fn batch_inputs_reject_inconsistent_data() {
        let mut bad = data();
        bad.indices[0].1 = arr1(&[1, 2]).into_dyn();
        let err = BatchInputs::new(&bad, 2).expect_err("2 labels for 3 samples");
        assert_eq!(err.to_string(), "`labels` has 2 samples but `x` has 3");

        let data = data();
        let mut batches = BatchInputs::new(&data, 2).expect("consistent");
        let err = batches
            .gather(&data, &[0, 1, 2])
            .expect_err("too many rows");
        assert_eq!(err.to_string(), "3 rows do not fit a batch of at most 2");
        let mut renamed = data.clone();
        renamed.floats[0].0 = "z".into();
        let err = batches.gather(&renamed, &[0, 1]).expect_err("renamed");
        assert_eq!(
            err.to_string(),
            "input 0 is `z` but the batch buffers were built for `x`"
        );
    }
}
