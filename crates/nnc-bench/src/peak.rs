//! The core's FMA peak, measured: GFLOP/s of a loop of independent fused
//! multiply-adds on the widest vectors the CPU has, so that a product's rate can be
//! read as a share of what one core can do at all (its clock as it runs now, not
//! as the data sheet says).
//!
//! Twelve accumulator chains: more than an FMA's latency times the FMA ports on any
//! x86 core we know of (4 cycles x 2 ports), so the loop is bound by throughput.

use nnc_runtime::parallel::Threads;
use std::time::{Duration, Instant};

/// The FMA loop as a call to time beside others (`timing::measure_interleaved`):
/// a fixed number of iterations per call on every thread of `threads`, so that a
/// product's share of the peak can be taken round by round (`timing::paired_ratio`)
/// on a machine whose clock, or whose sibling hyperthread, varies.
pub struct FmaLoop {
    is_f64: bool,
    threads: Threads,
}

/// Iterations per call per thread: 12 x 2 x 65536 vector FMAs, about 0.1-0.2 ms.
const CALL_ITERATIONS: u64 = 1 << 16;

impl FmaLoop {
    pub fn new(is_f64: bool, threads: &Threads) -> FmaLoop {
        FmaLoop {
            is_f64,
            threads: threads.clone(),
        }
    }

    /// Runs the loop once on every thread; returns the FLOPs done.
    pub fn call(&self) -> f64 {
        let is_f64 = self.is_f64;
        let done = std::sync::atomic::AtomicU64::new(0);
        self.threads.for_each(self.threads.count(), |_| {
            let flops = best_loop(is_f64)(CALL_ITERATIONS);
            done.fetch_add(flops as u64, std::sync::atomic::Ordering::Relaxed);
        });
        done.into_inner() as f64
    }

    /// FLOPs per [`FmaLoop::call`].
    pub fn flops(&self) -> f64 {
        loop_flops(self.is_f64, CALL_ITERATIONS) * self.threads.count() as f64
    }
}

/// FLOPs of `n` iterations of the best loop for the element type.
fn loop_flops(is_f64: bool, n: u64) -> f64 {
    let lanes = lanes(is_f64);
    (n * 12 * 2 * lanes) as f64
}

/// Vector lanes of the best instruction set for the element type.
fn lanes(is_f64: bool) -> u64 {
    let bytes = if is_f64 { 8 } else { 4 };
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            return 64 / bytes;
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            return 32 / bytes;
        }
    }
    let _ = bytes;
    1
}

/// The loop for the best instruction set: `n` iterations, returning FLOPs.
fn best_loop(is_f64: bool) -> fn(u64) -> f64 {
    #[cfg(target_arch = "x86_64")]
    {
        if is_x86_feature_detected!("avx512f") {
            // SAFETY (both): AVX-512F was just detected.
            return if is_f64 {
                |n| unsafe { x86::avx512_f64(n) }
            } else {
                |n| unsafe { x86::avx512_f32(n) }
            };
        }
        if is_x86_feature_detected!("avx2") && is_x86_feature_detected!("fma") {
            // SAFETY (both): AVX2 and FMA were just detected.
            return if is_f64 {
                |n| unsafe { x86::avx2_f64(n) }
            } else {
                |n| unsafe { x86::avx2_f32(n) }
            };
        }
    }
    if is_f64 { scalar::<f64> } else { scalar::<f32> }
}

/// Peak GFLOP/s of one core, in `f32` and in `f64`, with the instruction set used.
#[derive(Clone, Copy, Debug)]
pub struct Peak {
    pub f32_gflops: f64,
    pub f64_gflops: f64,
    pub isa: &'static str,
}

impl Peak {
    /// The peak for the element type of `is_f64`.
    pub fn gflops(&self, is_f64: bool) -> f64 {
        if is_f64 {
            self.f64_gflops
        } else {
            self.f32_gflops
        }
    }
}

/// Measures the peak on the calling thread: the best of a few runs of about
/// `budget / 6` each, per element type.
pub fn measure(budget: Duration) -> Peak {
    let per_run = budget / 6;
    let best = |is_f64: bool| {
        let run = best_loop(is_f64);
        (0..3).map(|_| rate(&run, per_run)).fold(0.0f64, f64::max)
    };
    Peak {
        f32_gflops: best(false),
        f64_gflops: best(true),
        isa: isa_name(),
    }
}

/// The instruction set the loop runs.
fn isa_name() -> &'static str {
    match lanes(false) {
        16 => "AVX-512",
        8 => "AVX2+FMA",
        _ => "scalar",
    }
}

/// GFLOP/s of `run` (which returns its FLOPs for `n` iterations), doubling `n`
/// until one call lasts `at_least`.
fn rate(run: &fn(u64) -> f64, at_least: Duration) -> f64 {
    let mut n = 1 << 10;
    loop {
        let start = Instant::now();
        let flops = run(n);
        let elapsed = start.elapsed();
        if elapsed >= at_least || n >= 1 << 40 {
            return flops / elapsed.as_secs_f64() / 1e9;
        }
        n *= 2;
    }
}

/// Twelve scalar chains (no SIMD on this target).
fn scalar<F: nnc_runtime::num_traits::Float>(n: u64) -> f64 {
    let (a, b) = (
        F::from(0.999_999).unwrap_or(F::one()),
        F::from(1e-7).unwrap_or(F::zero()),
    );
    let mut acc = [F::one(); 12];
    for _ in 0..n {
        for x in &mut acc {
            *x = *x * a + b;
        }
    }
    std::hint::black_box(acc);
    (n * 12 * 2) as f64
}

#[cfg(target_arch = "x86_64")]
mod x86 {
    use std::arch::x86_64::*;

    macro_rules! chains {
        ($name:ident, $features:literal, $v:ty, $lanes:literal, $set1:ident, $fma:ident, $f:ty) => {
            /// `n` iterations of 12 independent vector FMAs; returns the FLOPs.
            ///
            /// # Safety
            /// The CPU must have the instruction set.
            #[target_feature(enable = $features)]
            pub(super) unsafe fn $name(n: u64) -> f64 {
                let a: $v = $set1(0.999_999 as $f);
                let b: $v = $set1(1e-7 as $f);
                let mut acc: [$v; 12] = [$set1(1.0 as $f); 12];
                for _ in 0..n {
                    for x in &mut acc {
                        *x = $fma(*x, a, b);
                    }
                }
                std::hint::black_box(acc);
                (n * 12 * 2 * $lanes) as f64
            }
        };
    }
    chains!(
        avx2_f32,
        "avx2,fma",
        __m256,
        8,
        _mm256_set1_ps,
        _mm256_fmadd_ps,
        f32
    );
    chains!(
        avx2_f64,
        "avx2,fma",
        __m256d,
        4,
        _mm256_set1_pd,
        _mm256_fmadd_pd,
        f64
    );
    chains!(
        avx512_f32,
        "avx512f",
        __m512,
        16,
        _mm512_set1_ps,
        _mm512_fmadd_ps,
        f32
    );
    chains!(
        avx512_f64,
        "avx512f",
        __m512d,
        8,
        _mm512_set1_pd,
        _mm512_fmadd_pd,
        f64
    );
}
