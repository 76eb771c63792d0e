//! `cargo run --release -p nnc-bench [-- --budget SECONDS] [--only W1,W3] [--products | --regions]`
//!
//! Times one training step of every workload, for every implementation, in this one
//! run, and prints the tables `BENCHMARKS.md` shows. `--budget` is the time aimed for
//! per measurement (default 1.5 s); `--only` picks workloads. `--products` instead
//! times every matrix product of each step (forward and backward shapes, operands
//! transposed as the step has them) through the three GEMMs.

use ndarray::ArrayD;
use nnc_bench::baseline;
use nnc_bench::ceiling::{MatmulBench, Routine};
use nnc_bench::generated::{self, GeneratedFn};
use nnc_bench::interp::InterpTrainer;
use nnc_bench::report::{Align, Table, sig3};
use nnc_bench::timing::{Timing, TimingConfig, measure_interleaved, paired_ratio};
use nnc_bench::workload::{Matmul, Problem, Workload};
use nnc_bench::{BenchFloat, Trainer, relative_error};
use std::process::ExitCode;
use std::time::Instant;

/// The seed of every workload's data and initial parameters.
const SEED: u64 = 0;

struct Args {
    config: TimingConfig,
    workloads: Vec<Workload>,
    /// Time each product of a step instead of the steps.
    products: bool,
    /// Time the start and finish of parallel regions instead.
    regions: bool,
    /// Threads for the generated code and the runtime's GEMM (the baselines and the
    /// interpreter have one).
    threads: usize,
}

fn parse_args() -> Result<Args, String> {
    let mut config = TimingConfig::default();
    let mut workloads = Workload::ALL.to_vec();
    let mut products = false;
    let mut regions = false;
    let mut threads = 1;
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--budget" => {
                let v = args.next().ok_or("--budget needs a number of seconds")?;
                let secs: f64 = v
                    .parse()
                    .map_err(|_| format!("--budget: `{v}` is not a number of seconds"))?;
                if !(secs > 0.0 && secs < 600.0) {
                    return Err(format!("--budget: {secs} s is out of range (0, 600)"));
                }
                config = config.scaled(secs / config.target.as_secs_f64());
            }
            "--only" => {
                let v = args.next().ok_or("--only needs a list such as W1,W3")?;
                workloads = v
                    .split(',')
                    .map(|id| {
                        Workload::ALL
                            .into_iter()
                            .find(|w| w.id().eq_ignore_ascii_case(id.trim()))
                            .ok_or_else(|| format!("--only: unknown workload `{id}` (W1 to W4)"))
                    })
                    .collect::<Result<_, _>>()?;
            }
            "--products" => products = true,
            "--regions" => regions = true,
            "--threads" => {
                let v = args.next().ok_or("--threads needs a count")?;
                threads = v
                    .parse()
                    .ok()
                    .filter(|n| (1..=nnc_runtime::parallel::MAX_THREADS).contains(n))
                    .ok_or_else(|| format!("--threads: `{v}` is not a thread count"))?;
            }
            "-h" | "--help" => {
                return Err(
                    "usage: nnc-bench [--budget SECONDS] [--only W1,W2,W3,W4] [--threads N] [--products | --regions]"
                        .to_string(),
                );
            }
            other => return Err(format!("unknown argument `{other}` (try --help)")),
        }
    }
    Ok(Args {
        config,
        workloads,
        products,
        regions,
        threads,
    })
}

/// One implementation's line in the main table.
struct Measured {
    implementation: String,
    timing: Timing,
    /// How many times faster than the baseline, compared round by round.
    speedup: Option<f64>,
    /// Worst relative difference of the first loss and gradients from the baseline's.
    check: f64,
}

/// Everything measured for one workload.
struct WorkloadResult {
    workload: Workload,
    shape: Matmul,
    /// The matmul ceiling rows: the runtime's GEMM, ndarray's, the `gemm` crate's.
    runtime_mm: Timing,
    ndarray: Timing,
    gemm_crate: Timing,
    baseline: Timing,
    others: Vec<Measured>,
    /// Implementations not measured, and why.
    missing: Vec<String>,
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::FAILURE;
        }
    };
    if cfg!(debug_assertions) {
        eprintln!(
            "warning: a debug build; run `cargo run --release -p nnc-bench` for real numbers"
        );
    }
    println!("{}", machine(args.threads));
    let started = Instant::now();
    if args.products {
        products(&args);
        return ExitCode::SUCCESS;
    }
    if args.regions {
        return match regions(&args) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("{e}");
                ExitCode::FAILURE
            }
        };
    }
    let threads = nnc_runtime::parallel::Threads::new(args.threads);
    let mut results = Vec::new();
    for &w in &args.workloads {
        eprintln!("measuring {w} ...");
        let result = if w.is_f64() {
            bench::<f64>(w, &args.config, &threads, generated::for_f64(w))
        } else {
            bench::<f32>(w, &args.config, &threads, generated::for_f32(w))
        };
        match result {
            Ok(r) => results.push(r),
            Err(e) => {
                eprintln!("{w}: {e}");
                return ExitCode::FAILURE;
            }
        }
    }
    print_results(&results);
    println!(
        "\nTotal time of this run: {:.0} s (per measurement aimed for {:.1} s).",
        started.elapsed().as_secs_f64(),
        args.config.target.as_secs_f64()
    );
    ExitCode::SUCCESS
}

/// The CPU model (with its family and model numbers) and the threads available.
fn machine(threads: usize) -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let field = |key: &str| {
        cpuinfo
            .lines()
            .find(|l| l.split(':').next().map(str::trim) == Some(key))
            .and_then(|l| l.split(':').nth(1))
            .map(|v| v.trim().to_string())
    };
    let cpu = match (field("model name"), field("cpu family"), field("model")) {
        (Some(name), Some(family), Some(model)) => {
            format!("{name} (family {family}, model {model})")
        }
        (Some(name), _, _) => name,
        _ => "unknown CPU".to_string(),
    };
    let cores = std::thread::available_parallelism().map_or(0, |n| n.get());
    // Other processes' load: on a shared machine it says how much to trust the times.
    let load = std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().map(str::to_string))
        .map_or(String::new(), |l| {
            format!(", 1-minute load average {l} at the start")
        });
    let on = if threads == 1 {
        "every measurement single-threaded".to_string()
    } else {
        format!(
            "generated code and the runtime's GEMM on {threads} threads, everything else on one"
        )
    };
    format!(
        "nnc-bench: {cpu}, {cores} hardware threads{load}; {on}. Medians; times per \
         training step (forward + backward + update)."
    )
}

/// The loss and gradients at the initial parameters, gradients copied out.
fn first_step<F: BenchFloat>(t: &mut dyn Trainer<F>) -> (F, Vec<(String, ArrayD<F>)>) {
    let loss = t.loss_and_grad();
    let grads = t
        .grads()
        .into_iter()
        .map(|(n, g)| (n.to_string(), g.to_owned()))
        .collect();
    (loss, grads)
}

fn bench<F: BenchFloat>(
    w: Workload,
    config: &TimingConfig,
    threads: &nnc_runtime::parallel::Threads,
    generated: Option<GeneratedFn<F>>,
) -> Result<WorkloadResult, String> {
    let problem = Problem::<F>::new(w, w.batch(), SEED)?;
    let named = problem.named_inputs();
    let lr = w.lr();
    let shape = w.largest_matmul();
    let mut runtime_mm = MatmulBench::<F>::new(shape, Routine::Runtime).on(threads);
    let mut nd = MatmulBench::<F>::new(shape, Routine::Ndarray);
    let mut gemm_crate = MatmulBench::<F>::new(shape, Routine::GemmCrate);

    let mut base = baseline::for_problem(&problem, lr);
    let (base_loss, base_grads) = first_step(&mut *base);

    let mut trainers: Vec<(String, Box<dyn Trainer<F> + '_>)> = Vec::new();
    let mut missing = Vec::new();
    // The generated code is reported, not fatal, when it is missing or refuses the
    // problem: the other measurements still mean something.
    match generated.map(|make| make(&named, &problem, lr, threads)) {
        Some(Ok(t)) => trainers.push(("nnc generated code".into(), t)),
        Some(Err(e)) => missing.push(format!("nnc generated code: failed: {e}")),
        None => missing.push("nnc generated code: none for this workload".to_string()),
    }
    trainers.push((
        "IR interpreter".into(),
        Box::new(InterpTrainer::new(&problem, lr)?),
    ));

    // Each implementation's first loss and gradients against the baseline's.
    let mut checks = Vec::new();
    for (_, t) in &mut trainers {
        let (loss, grads) = first_step(&mut **t);
        let mut worst = rel(to_f64(loss), to_f64(base_loss));
        if grads.len() != base_grads.len() {
            worst = f64::INFINITY;
        }
        for ((name, g), (base_name, b)) in grads.iter().zip(&base_grads) {
            let err = if name == base_name {
                relative_error(&g.view(), &b.view())
            } else {
                f64::INFINITY
            };
            worst = worst.max(err);
        }
        checks.push(worst);
    }

    // Everything timed together, round by round.
    let mut timings = {
        let mut calls: Vec<Box<dyn FnMut() -> f64 + '_>> = vec![Box::new(|| to_f64(base.step()))];
        for (_, t) in &mut trainers {
            calls.push(Box::new(move || to_f64(t.step())));
        }
        calls.push(Box::new(|| runtime_mm.call()));
        calls.push(Box::new(|| nd.call()));
        calls.push(Box::new(|| gemm_crate.call()));
        measure_interleaved(&mut calls, config)
    };
    let gemm_crate = timings.pop().ok_or("no timing")?;
    let ndarray = timings.pop().ok_or("no timing")?;
    let runtime_mm = timings.pop().ok_or("no timing")?;
    let baseline = timings.remove(0);
    // Training went somewhere sensible (no NaN): the loss before and after timing.
    eprintln!(
        "  hand-written loss {:.4} -> {:.4}",
        baseline.first, baseline.last
    );
    for ((name, _), t) in trainers.iter().zip(&timings) {
        eprintln!("  {name} loss {:.4} -> {:.4}", t.first, t.last);
    }
    let others = trainers
        .into_iter()
        .zip(timings)
        .zip(checks)
        .map(|(((implementation, _), timing), check)| Measured {
            speedup: paired_ratio(&baseline, &timing),
            implementation,
            timing,
            check,
        })
        .collect();
    Ok(WorkloadResult {
        workload: w,
        shape,
        runtime_mm,
        ndarray,
        gemm_crate,
        baseline,
        others,
        missing,
    })
}

fn to_f64<F: BenchFloat>(v: F) -> f64 {
    v.to_f64().unwrap_or(f64::NAN)
}

fn rel(a: f64, b: f64) -> f64 {
    if a == b {
        0.0
    } else {
        (a - b).abs() / b.abs().max(f64::MIN_POSITIVE)
    }
}

fn gflops(mflop: f64, t: &Timing) -> f64 {
    mflop * 1e6 / t.median().as_secs_f64() / 1e9
}

fn print_results(results: &[WorkloadResult]) {
    let mut main = Table::new(&[
        ("workload", Align::Left),
        ("implementation", Align::Left),
        ("ms/step", Align::Right),
        ("IQR", Align::Right),
        ("samples", Align::Right),
        ("GFLOP/s", Align::Right),
        ("of ceiling", Align::Right),
        ("speed-up vs hand-written", Align::Right),
        ("check vs hand-written", Align::Right),
    ]);
    for r in results {
        let w = r.workload;
        let mflop = w.mflop(w.batch());
        let ceiling = gflops(r.shape.flops() / 1e6, &r.runtime_mm);
        let label = format!(
            "{} {} ({})",
            w.id(),
            w.model_name(),
            if w.is_f64() { "f64" } else { "f32" }
        );
        let line = |name: &str, t: &Timing, flop: f64, vs: Option<f64>, check: &str| {
            let g = gflops(flop, t);
            vec![
                label.clone(),
                name.to_string(),
                sig3(t.median_ms()),
                format!("{:.0}%", 100.0 * t.spread()),
                format!("{}x{}", t.samples.len(), t.calls_per_sample),
                sig3(g),
                format!("{:.0}%", 100.0 * g / ceiling),
                vs.map_or(String::new(), |v| format!("{}x", sig3(v))),
                check.to_string(),
            ]
        };
        main.row(line(
            "hand-written ndarray",
            &r.baseline,
            mflop,
            Some(1.0),
            "reference",
        ));
        for m in &r.others {
            let tol = if w.is_f64() { 1e-9 } else { 1e-3 };
            let check = if m.check <= tol {
                format!("{:.0e}", m.check)
            } else {
                format!("{:.0e} > {tol:.0e}: DIFFERENT", m.check)
            };
            main.row(line(&m.implementation, &m.timing, mflop, m.speedup, &check));
        }
        for m in &r.missing {
            main.row(vec![label.clone(), m.clone()]);
        }
        let mm = r.shape.flops() / 1e6;
        for (routine, t) in [
            (Routine::Runtime, &r.runtime_mm),
            (Routine::Ndarray, &r.ndarray),
            (Routine::GemmCrate, &r.gemm_crate),
        ] {
            let name = format!("matmul ceiling: {} {}", routine.label(), r.shape);
            main.row(line(&name, t, mm, None, ""));
        }
    }
    println!("\n## Measured in this run\n");
    print!("{}", main.render());
    println!(
        "\nms/step: median time per call; IQR: interquartile range / median; samples: \
         samples x calls per sample. GFLOP/s count the matmuls (2mnk each, forward and \
         backward). \"of ceiling\": GFLOP/s / those of nnc_runtime::linalg::matmul on the \
         workload's largest matmul (its own row). Speed-up > 1 is faster than the \
         hand-written baseline. Check: worst relative difference of the first loss and \
         gradients from the baseline's."
    );

    let mut peers = Table::new(&[
        ("workload", Align::Left),
        ("MFLOP/step (spec)", Align::Right),
        ("MFLOP/step (counted)", Align::Right),
        ("best peer, 1 thread", Align::Right),
        ("best peer, 2 threads", Align::Right),
        ("ndarray, 1 thread (spec)", Align::Right),
        ("hand-written here", Align::Right),
        ("generated here", Align::Right),
    ]);
    for r in results {
        let w = r.workload;
        let p = w.peers();
        let mflop = w.mflop(w.batch());
        let generated = r
            .others
            .iter()
            .find(|m| m.implementation == "nnc generated code")
            .map_or("–".to_string(), |m| sig3(gflops(mflop, &m.timing)));
        peers.row(vec![
            format!("{} {}", w.id(), w.model_name()),
            sig3(w.spec_mflop()),
            sig3(mflop),
            sig3(p.best_1_thread),
            sig3(p.best_2_threads),
            p.ndarray_1_thread.map_or("–".to_string(), sig3),
            sig3(gflops(mflop, &r.baseline)),
            generated,
        ]);
    }
    println!(
        "\n## For reference: peers' GFLOP/s from spec/workloads.md (measured elsewhere, NOT in this run)\n"
    );
    print!("{}", peers.render());
}

/// Every distinct product of each workload's step through the three GEMMs, timed
/// together round by round with the FMA loop (for the share of the core's peak)
/// and, with `--threads N`, the runtime's GEMM on N threads; prints one table.
fn products(args: &Args) {
    let peak = nnc_bench::peak::measure(std::time::Duration::from_millis(1200));
    println!(
        "\nOne core's FMA peak ({}, measured at the start): {} GFLOP/s f32, {} GFLOP/s f64. \
         The shares below are taken round by round against the same loop.",
        peak.isa,
        sig3(peak.f32_gflops),
        sig3(peak.f64_gflops)
    );
    let threads = nnc_runtime::parallel::Threads::new(args.threads);
    let many = args.threads > 1;
    let mut columns = vec![
        ("workload", Align::Left),
        ("product", Align::Left),
        ("m x k x n", Align::Right),
        ("runtime GFLOP/s", Align::Right),
        ("of peak, in cache", Align::Right),
        ("fastest, in cache", Align::Right),
        ("operands cold", Align::Right),
        ("of peak, cold", Align::Right),
    ];
    if many {
        columns.push(("runtime, N threads", Align::Right));
        columns.push(("of N x peak", Align::Right));
        columns.push(("N threads vs 1", Align::Right));
    }
    columns.extend([
        ("ndarray GFLOP/s", Align::Right),
        ("gemm crate GFLOP/s", Align::Right),
        ("runtime vs ndarray", Align::Right),
        ("runtime vs gemm crate", Align::Right),
    ]);
    let mut table = Table::new(&columns);
    for &w in &args.workloads {
        eprintln!("measuring the products of {w} ...");
        let mut seen: Vec<Matmul> = Vec::new();
        for shape in w.matmuls(w.batch()) {
            if seen.contains(&shape) {
                continue;
            }
            seen.push(shape);
            let row = if w.is_f64() {
                product_row::<f64>(shape, &args.config, &threads)
            } else {
                product_row::<f32>(shape, &args.config, &threads)
            };
            let mut cells = vec![w.to_string(), shape.what.to_string()];
            cells.push(format!("{}x{}x{}", shape.m, shape.k, shape.n));
            cells.extend(row);
            table.row(cells);
        }
        if !w.is_f64() {
            // The f64 kernel on the large products too (issue 11 asks for the peak
            // in both types on W3's and W4's): W1 and W2, the f64 workloads, have
            // no product of that size.
            let largest = w.largest_matmul().flops();
            for shape in seen.iter().filter(|s| s.flops() >= largest / 4.0) {
                let mut cells = vec![format!("{w}, in f64"), shape.what.to_string()];
                cells.push(format!("{}x{}x{}", shape.m, shape.k, shape.n));
                cells.extend(product_row::<f64>(*shape, &args.config, &threads));
                table.row(cells);
            }
        }
    }
    println!("\n## Every product of a step\n");
    print!("{}", table.render());
    println!(
        "\nGFLOP/s: 2mnk / median time. \"of peak, in cache\": the median over rounds of the \
         product's rate over the FMA loop's (on as many cores as threads), each sample after \
         an untimed call on the same operands. \"fastest\": the product's fastest sample \
         over the loop's fastest (noise on a shared host only adds time). \"operands cold\": the same product with its \
         operands cycled through 64 MiB of copies, out of cache as in a training step. \
         \"vs\": the median over \
         rounds of the other GEMM's time / the runtime's (above 1: the runtime's is faster). \
         N = {} threads.",
        args.threads
    );
}

/// One product's cells: the runtime's GEMM on one thread (GFLOP/s, share of the
/// peak), the same with its operands out of cache, on `threads` if more than one (GFLOP/s, share of the peak times the
/// threads, speed-up), ndarray's and the `gemm` crate's GFLOP/s, and the runtime's
/// speed-ups over them.
fn product_row<F: BenchFloat>(
    shape: Matmul,
    config: &TimingConfig,
    threads: &nnc_runtime::parallel::Threads,
) -> Vec<String> {
    use nnc_bench::peak::FmaLoop;
    let one = nnc_runtime::parallel::Threads::one();
    let many = threads.count() > 1;
    let is_f64 = std::mem::size_of::<F>() == 8;
    let (peak_one, peak_many) = (FmaLoop::new(is_f64, &one), FmaLoop::new(is_f64, threads));
    let mut runtime = MatmulBench::<F>::new(shape, Routine::Runtime);
    let mut runtime_cold = MatmulBench::<F>::new(shape, Routine::Runtime).cold();
    let mut runtime_many = MatmulBench::<F>::new(shape, Routine::Runtime).on(threads);
    let mut nd = MatmulBench::<F>::new(shape, Routine::Ndarray);
    let mut gemm_crate = MatmulBench::<F>::new(shape, Routine::GemmCrate);
    // Each sample after an untimed call: the warm columns are "in cache", and the
    // cold one stays cold (the untimed call moves on to the next copy).
    let config = TimingConfig {
        warm_each_sample: true,
        ..*config
    };
    let t = {
        let mut calls: Vec<Box<dyn FnMut() -> f64 + '_>> = vec![
            Box::new(|| peak_one.call()),
            Box::new(|| runtime.call()),
            Box::new(|| nd.call()),
            Box::new(|| gemm_crate.call()),
            Box::new(|| runtime_cold.call()),
        ];
        if many {
            calls.push(Box::new(|| peak_many.call()));
            calls.push(Box::new(|| runtime_many.call()));
        }
        measure_interleaved(&mut calls, &config)
    };
    let mflop = shape.flops() / 1e6;
    let rate = |t: &Timing| sig3(gflops(mflop, t));
    // `r`: the loop's time over the product's, for the same work as `peak_flops`.
    let percent =
        |r: f64, peak_flops: f64| format!("{:.0}%", 100.0 * r * shape.flops() / peak_flops);
    let share = |peak: &Timing, peak_flops: f64, product: &Timing| {
        paired_ratio(peak, product).map_or(String::new(), |r| percent(r, peak_flops))
    };
    // The fastest sample of each over the fastest of the loop: on a shared host the
    // medians measure the neighbours too (2026-12-03, Intel: W4's `h @ w` at a median
    // of 63% of the peak with its fastest calls at 82-86%).
    let fastest_share = |peak: &Timing, peak_flops: f64, product: &Timing| {
        let product = product.fastest().as_secs_f64();
        if product > 0.0 {
            percent(peak.fastest().as_secs_f64() / product, peak_flops)
        } else {
            String::new()
        }
    };
    let ratio = |a: &Timing, b: &Timing| {
        paired_ratio(a, b).map_or(String::new(), |r| format!("{}x", sig3(r)))
    };
    let mut cells = vec![
        rate(&t[1]),
        share(&t[0], peak_one.flops(), &t[1]),
        fastest_share(&t[0], peak_one.flops(), &t[1]),
        rate(&t[4]),
        share(&t[0], peak_one.flops(), &t[4]),
    ];
    if many {
        cells.push(rate(&t[6]));
        cells.push(share(&t[5], peak_many.flops(), &t[6]));
        cells.push(ratio(&t[1], &t[6]));
    }
    cells.extend([
        rate(&t[2]),
        rate(&t[3]),
        ratio(&t[2], &t[1]),
        ratio(&t[3], &t[1]),
    ]);
    cells
}

/// The cost of a parallel region on two threads, the runtime's pool against rayon.
fn regions(args: &Args) -> Result<(), String> {
    use nnc_bench::regions::{PART, REGIONS_PER_CALL, measure};
    let mut table = Table::new(&[
        ("pool", Align::Left),
        ("µs per region", Align::Right),
        ("overhead µs", Align::Right),
        ("IQR", Align::Right),
        ("samples", Align::Right),
    ]);
    for cost in measure(2, &args.config)? {
        let t = &cost.timing;
        let per_region = t.median().as_secs_f64() * 1e6 / REGIONS_PER_CALL as f64;
        table.row(vec![
            cost.label.to_string(),
            format!("{:.2}", per_region),
            format!("{:.2}", per_region - PART.as_secs_f64() * 1e6),
            format!("{:.0}%", 100.0 * t.spread()),
            format!("{}x{}", t.samples.len(), t.calls_per_sample),
        ]);
    }
    println!(
        "\n## A region of two {} µs parts on two threads (serially: {} µs)\n",
        PART.as_micros(),
        2 * PART.as_micros()
    );
    print!("{}", table.render());
    Ok(())
}
