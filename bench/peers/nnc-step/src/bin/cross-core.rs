//! How long a cache line takes to go from one core to another and back, measured
//! by two threads passing a counter through one atomic word.
//!
//! Why the peer benchmark needs it: the 2-vCPU machines this project runs on are
//! guests on shared hosts, and the host moves them. On the AMD Zen 5 type the
//! round trip flips, for spells of seconds to minutes, between about 90 ns (the
//! two vCPUs on cores that share a cache) and about 380 ns (on different dies),
//! and in the slow spells every 2-thread step that moves data between its
//! threads is slower: nnc's W1 step from 0.17 to 0.31 ms. A 2-thread time means
//! little without the spell it was measured in, so `run.sh` runs this before
//! and after every 2-thread measurement and `report.py` compares like with like.
//!
//! Usage: cross-core [--out FILE]   prints the median round trip in ns; with
//! `--out`, also appends `{"probe": "cross_core", "ns": N, "unix_s": T}` to FILE.

use std::hint::spin_loop;
use std::io::Write;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Instant, SystemTime, UNIX_EPOCH};

/// Round trips per batch, and batches (the median batch is reported): about 40 ms
/// in a slow spell, short enough not to disturb the runs it brackets.
const TRIPS: u64 = 10_000;
const BATCHES: usize = 10;

/// A word alone on its cache line, so nothing else shares the line's trips.
#[repr(align(128))]
struct Line(AtomicU64);

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let out = match args.as_slice() {
        [] => None,
        [flag, path] if flag == "--out" => Some(path.clone()),
        _ => {
            eprintln!("usage: cross-core [--out FILE]");
            std::process::exit(2);
        }
    };
    let ns = round_trip_ns();
    println!("cross-core round trip: {ns:.0} ns");
    if let Some(path) = out {
        let unix_s = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0.0, |d| d.as_secs_f64());
        let line = format!("{{\"probe\": \"cross_core\", \"ns\": {ns:.1}, \"unix_s\": {unix_s:.3}}}");
        let written = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .and_then(|mut f| writeln!(f, "{line}"));
        if let Err(e) = written {
            eprintln!("{path}: {e}");
            std::process::exit(1);
        }
    }
}

/// The median over batches of one round trip's time: this thread writes odd
/// values, the other answers each with the next even one. Both threads spin, so
/// on an otherwise idle 2-CPU machine the scheduler puts them on different CPUs.
fn round_trip_ns() -> f64 {
    let word = Arc::new(Line(AtomicU64::new(0)));
    let total = TRIPS * BATCHES as u64;
    let answerer = {
        let word = Arc::clone(&word);
        std::thread::spawn(move || {
            for i in 0..total {
                while word.0.load(Ordering::Acquire) != 2 * i + 1 {
                    spin_loop();
                }
                word.0.store(2 * i + 2, Ordering::Release);
            }
        })
    };
    let mut batches = Vec::with_capacity(BATCHES);
    for b in 0..BATCHES as u64 {
        let start = Instant::now();
        for i in b * TRIPS..(b + 1) * TRIPS {
            word.0.store(2 * i + 1, Ordering::Release);
            while word.0.load(Ordering::Acquire) != 2 * i + 2 {
                spin_loop();
            }
        }
        batches.push(start.elapsed().as_secs_f64() * 1e9 / TRIPS as f64);
    }
    if answerer.join().is_err() {
        eprintln!("cross-core: the answering thread panicked");
        std::process::exit(1);
    }
    batches.sort_by(f64::total_cmp);
    batches[BATCHES / 2]
}
