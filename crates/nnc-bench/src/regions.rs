//! What a parallel region costs to start and finish: the runtime's pool
//! (`nnc_runtime::parallel::Threads`) against rayon, the ecosystem's pool, on a
//! region of two parts that each spin for [`PART`]. On two free cores a region
//! then lasts `PART` plus the overhead; run serially, twice `PART`.
//!
//! rayon is measured two ways: a `join` started from outside its pool (through
//! `ThreadPool::install`, as a user's training step calling into generated code
//! would), and a `join` inside an `install` that wraps many regions (the best
//! case, as if the whole step ran on a rayon thread).

use crate::timing::{Timing, TimingConfig, measure_interleaved};
use nnc_runtime::parallel::Threads;
use std::time::{Duration, Instant};

/// How long each part of a region works (spinning on the clock).
pub const PART: Duration = Duration::from_micros(10);

/// Regions per timed call: the per-region time is the call's time over this.
pub const REGIONS_PER_CALL: usize = 100;

/// One way of running regions, and its timing per region.
pub struct RegionCost {
    pub label: &'static str,
    pub timing: Timing,
}

/// Times `REGIONS_PER_CALL` two-part regions through each pool, on `threads`
/// threads.
pub fn measure(threads: usize, config: &TimingConfig) -> Result<Vec<RegionCost>, String> {
    let ours = Threads::new(threads);
    let rayon_pool = rayon::ThreadPoolBuilder::new()
        .num_threads(threads)
        .build()
        .map_err(|e| format!("rayon pool: {e}"))?;
    let tiny = |_: usize| {
        let start = Instant::now();
        while start.elapsed() < PART {
            std::hint::spin_loop();
        }
    };
    let labels = [
        "nnc_runtime::parallel",
        "rayon: install + join per region",
        "rayon: join inside one install",
    ];
    let timings = {
        let mut calls: Vec<Box<dyn FnMut() -> f64 + '_>> = vec![
            Box::new(|| {
                for _ in 0..REGIONS_PER_CALL {
                    ours.for_each(2, tiny);
                }
                0.0
            }),
            Box::new(|| {
                for _ in 0..REGIONS_PER_CALL {
                    rayon_pool.install(|| rayon::join(|| tiny(0), || tiny(1)));
                }
                0.0
            }),
            Box::new(|| {
                rayon_pool.install(|| {
                    for _ in 0..REGIONS_PER_CALL {
                        rayon::join(|| tiny(0), || tiny(1));
                    }
                });
                0.0
            }),
        ];
        measure_interleaved(&mut calls, config)
    };
    Ok(labels
        .into_iter()
        .zip(timings)
        .map(|(label, timing)| RegionCost { label, timing })
        .collect())
}
