//! Medians of repeated timings, interleaved, with the repetitions chosen adaptively.
//!
//! The machines are shared: another process can slow everything down for a second.
//! So [`measure_interleaved`] takes the implementations of one workload together and
//! runs them in *rounds*, one sample of each per round; a slow second then costs
//! every implementation a sample, and the ratios between them (compared round by
//! round, [`paired_ratio`]) stay put.
//!
//! Each call gets one untimed warm-up, then one timed call to calibrate. Calls are
//! grouped into samples of at least [`TimingConfig::min_sample`] (so a 20 µs step is
//! not timed one call at a time), and as many rounds are run as fit in
//! [`TimingConfig::target`] per implementation, but never fewer than
//! [`TimingConfig::min_samples`] — unless the cap runs out first, which only a very
//! slow step (the interpreter on W4) can reach.

use std::time::{Duration, Instant};

/// How long to spend on one measurement.
#[derive(Clone, Copy, Debug)]
pub struct TimingConfig {
    /// Time to aim for per implementation, over all its samples.
    pub target: Duration,
    /// Fewest samples taken (unless `cap` is reached).
    pub min_samples: usize,
    /// Most samples taken.
    pub max_samples: usize,
    /// Shortest sample: calls are grouped until a sample takes at least this long.
    pub min_sample: Duration,
    /// Hard limit on the time spent sampling, per implementation; at least two
    /// rounds are always run.
    pub cap: Duration,
    /// One untimed call before each sample of [`measure_interleaved`], so that a
    /// call finds what it left in cache rather than what the other calls of the
    /// round left (a GEMM's operands "in cache", as BLAS benchmarks time them).
    pub warm_each_sample: bool,
}

impl Default for TimingConfig {
    fn default() -> Self {
        TimingConfig {
            target: Duration::from_millis(1500),
            min_samples: 5,
            max_samples: 1000,
            min_sample: Duration::from_millis(2),
            cap: Duration::from_secs(8),
            warm_each_sample: false,
        }
    }
}

impl TimingConfig {
    /// The same configuration with every duration scaled by `factor`.
    pub fn scaled(self, factor: f64) -> TimingConfig {
        TimingConfig {
            target: self.target.mul_f64(factor),
            min_sample: self.min_sample.mul_f64(factor.min(1.0)),
            cap: self.cap.mul_f64(factor),
            ..self
        }
    }
}

/// The timings of one call: time per call in each sample, in round order.
#[derive(Clone, Debug)]
pub struct Timing {
    /// Time per call in each sample, in the order taken.
    pub samples: Vec<Duration>,
    /// Calls per sample.
    pub calls_per_sample: usize,
    /// What the warm-up call returned (for training steps: the loss at the start).
    pub first: f64,
    /// What the last call returned.
    pub last: f64,
}

impl Timing {
    /// The median time per call.
    pub fn median(&self) -> Duration {
        self.quantile(0.5)
    }

    pub fn median_ms(&self) -> f64 {
        self.median().as_secs_f64() * 1e3
    }

    /// The fastest sample's time per call: on a shared host, noise only ever adds
    /// time, so this is the estimate of what the code does when left alone.
    pub fn fastest(&self) -> Duration {
        self.samples.iter().copied().min().unwrap_or(Duration::ZERO)
    }

    /// The interquartile range relative to the median.
    pub fn spread(&self) -> f64 {
        let (q1, q3) = (self.quantile(0.25), self.quantile(0.75));
        (q3.as_secs_f64() - q1.as_secs_f64()) / self.median().as_secs_f64().max(1e-12)
    }

    fn quantile(&self, q: f64) -> Duration {
        let mut sorted = self.samples.clone();
        sorted.sort();
        quantile(&sorted, q)
    }
}

/// Times one call: [`measure_interleaved`] with nothing to interleave.
pub fn measure(call: impl FnMut() -> f64, config: &TimingConfig) -> Timing {
    let mut timings = measure_interleaved(&mut [Box::new(call)], config);
    match timings.pop() {
        Some(t) => t,
        None => unreachable!("one timing per call"),
    }
}

/// Times every call in rounds, one sample of each per round. The calls return a
/// value (the loss) so their work cannot be optimised away.
pub fn measure_interleaved(
    calls: &mut [Box<dyn FnMut() -> f64 + '_>],
    config: &TimingConfig,
) -> Vec<Timing> {
    let mut timings = Vec::with_capacity(calls.len());
    let mut round_time = 0.0;
    for call in calls.iter_mut() {
        let first = std::hint::black_box(call());
        let start = Instant::now();
        let last = std::hint::black_box(call());
        let one = start.elapsed().as_secs_f64().max(1e-9);
        let calls_per_sample = ((config.min_sample.as_secs_f64() / one).ceil() as usize).max(1);
        round_time += one * calls_per_sample as f64;
        timings.push(Timing {
            samples: Vec::new(),
            calls_per_sample,
            first,
            last,
        });
    }
    let budget = config.target.as_secs_f64() * calls.len() as f64;
    let rounds = ((budget / round_time.max(1e-9)).round() as usize)
        .clamp(config.min_samples.max(1), config.max_samples.max(1));
    let cap = config.cap.mul_f64(calls.len() as f64);
    let begun = Instant::now();
    for round in 0..rounds {
        for (call, timing) in calls.iter_mut().zip(&mut timings) {
            if config.warm_each_sample {
                std::hint::black_box(call());
            }
            let start = Instant::now();
            for _ in 0..timing.calls_per_sample {
                timing.last = std::hint::black_box(call());
            }
            timing
                .samples
                .push(start.elapsed() / timing.calls_per_sample as u32);
        }
        if round >= 1 && begun.elapsed() > cap {
            break;
        }
    }
    timings
}

/// The median over rounds of `reference`'s time per call divided by `other`'s:
/// how many times faster `other` is, compared within each round. `None` when the two
/// were not measured in the same rounds.
pub fn paired_ratio(reference: &Timing, other: &Timing) -> Option<f64> {
    if reference.samples.len() != other.samples.len() || reference.samples.is_empty() {
        return None;
    }
    let mut ratios: Vec<f64> = reference
        .samples
        .iter()
        .zip(&other.samples)
        .map(|(r, o)| r.as_secs_f64() / o.as_secs_f64().max(1e-12))
        .collect();
    ratios.sort_by(f64::total_cmp);
    let mid = ratios.len() / 2;
    Some(if ratios.len() % 2 == 1 {
        ratios[mid]
    } else {
        0.5 * (ratios[mid - 1] + ratios[mid])
    })
}

/// The `q` quantile of sorted durations, interpolating linearly between neighbours
/// (so the median of an even count is the mean of the middle two).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    match sorted.len() {
        0 => Duration::ZERO,
        1 => sorted[0],
        len => {
            let pos = q * (len - 1) as f64;
            let lo = pos.floor() as usize;
            let hi = (lo + 1).min(len - 1);
            let frac = pos - lo as f64;
            sorted[lo].mul_f64(1.0 - frac) + sorted[hi].mul_f64(frac)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantiles_interpolate() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        assert_eq!(quantile(&ms(&[1, 2, 3]), 0.5), Duration::from_millis(2));
        assert_eq!(
            quantile(&ms(&[1, 2, 3, 4]), 0.5),
            Duration::from_micros(2500)
        );
        assert_eq!(quantile(&ms(&[7]), 0.25), Duration::from_millis(7));
        assert_eq!(quantile(&[], 0.5), Duration::ZERO);
    }

    #[test]
    fn the_fastest_sample_is_the_shortest_whatever_its_place() {
        let timing = |ms: &[u64]| Timing {
            samples: ms.iter().map(|&m| Duration::from_millis(m)).collect(),
            calls_per_sample: 1,
            first: 0.0,
            last: 0.0,
        };
        assert_eq!(timing(&[5, 3, 9]).fastest(), Duration::from_millis(3));
        assert_eq!(timing(&[4]).fastest(), Duration::from_millis(4));
        assert_eq!(timing(&[]).fastest(), Duration::ZERO);
    }

    #[test]
    fn interleaved_calls_get_the_same_rounds_and_paired_ratios() {
        let config = TimingConfig {
            target: Duration::from_millis(4),
            min_samples: 4,
            max_samples: 8,
            min_sample: Duration::from_micros(200),
            cap: Duration::from_secs(1),
            warm_each_sample: false,
        };
        let spin = |d: Duration| {
            let start = Instant::now();
            while start.elapsed() < d {}
            1.0
        };
        let slow = move || spin(Duration::from_micros(300));
        let fast = move || spin(Duration::from_micros(100));
        let timings = measure_interleaved(&mut [Box::new(slow), Box::new(fast)], &config);
        assert_eq!(timings[0].samples.len(), timings[1].samples.len());
        let ratio = paired_ratio(&timings[0], &timings[1]).expect("same rounds");
        // 3x, give or take a loaded machine.
        assert!(ratio > 1.5, "{ratio}");
    }

    /// With `warm_each_sample`, each sample follows one untimed call.
    #[test]
    fn a_warm_sample_follows_an_untimed_call() {
        let config = TimingConfig {
            target: Duration::from_millis(3),
            min_samples: 3,
            max_samples: 6,
            min_sample: Duration::from_micros(100),
            cap: Duration::from_secs(1),
            warm_each_sample: true,
        };
        let calls = std::cell::Cell::new(0usize);
        let count = || {
            calls.set(calls.get() + 1);
            let start = Instant::now();
            while start.elapsed() < Duration::from_micros(20) {}
            0.0
        };
        let timings = measure_interleaved(&mut [Box::new(count)], &config);
        let t = &timings[0];
        assert_eq!(calls.get(), 2 + t.samples.len() * (t.calls_per_sample + 1));
    }

    #[test]
    fn measure_counts_calls_and_reports_the_first_and_last_values() {
        let mut calls = 0u32;
        let config = TimingConfig {
            target: Duration::from_millis(5),
            min_samples: 3,
            max_samples: 10,
            min_sample: Duration::from_micros(100),
            cap: Duration::from_secs(1),
            warm_each_sample: false,
        };
        let timing = measure(
            || {
                calls += 1;
                f64::from(calls)
            },
            &config,
        );
        let samples = timing.samples.len();
        assert!((3..=10).contains(&samples), "{samples} samples");
        assert_eq!(timing.first, 1.0);
        let total = 2 + samples * timing.calls_per_sample;
        assert_eq!(timing.last, total as f64);
        assert_eq!(calls as usize, total);
    }
}
