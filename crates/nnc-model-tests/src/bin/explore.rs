//! Explores random programs beyond the ones CI checks, and shrinks a failing one.
//!
//! ```text
//! cargo run -p nnc-model-tests --bin explore -- 300..2300            # check seeds
//! cargo run -p nnc-model-tests --bin explore -- 300..2300 --chunk 250
//! cargo run -p nnc-model-tests --bin explore -- --shrink 1234        # one seed
//! ```
//!
//! Seeds are checked in chunks: each chunk is built into this crate's `random` test
//! (`NNC_RANDOM_SEEDS=FROM..TO cargo test -p nnc-model-tests --test random`), so
//! every check CI makes is made (interpreter against central differences, generated
//! code against the interpreter, thread counts). Each failing seed is then shrunk
//! ([`nnc_progen::shrink`]): a candidate must still pass the front end, and still
//! fail when built alone (`NNC_RANDOM_FILE`); each try rebuilds the test crate, so
//! shrinking takes minutes. The smallest failing program is printed and written to
//! `target/explore/r<seed>.nn`, ready to become a regression test.

use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match run(&args) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::FAILURE,
        Err(message) => {
            eprintln!("explore: {message}");
            eprintln!("usage: explore FROM..TO [--chunk N] | explore --shrink SEED");
            ExitCode::from(2)
        }
    }
}

/// True when every seed passed.
fn run(args: &[String]) -> Result<bool, String> {
    let root = workspace_root();
    let out = root.join("target/explore");
    std::fs::create_dir_all(&out).map_err(|e| format!("{}: {e}", out.display()))?;
    if let Some(k) = args.iter().position(|a| a == "--shrink") {
        let seed: u64 = args
            .get(k + 1)
            .and_then(|s| s.parse().ok())
            .ok_or("--shrink needs a seed")?;
        shrink_seed(&root, &out, seed)?;
        return Ok(false);
    }
    let range = args.first().ok_or("no seed range")?;
    let (from, to) = range
        .split_once("..")
        .and_then(|(a, b)| Some((a.parse::<u64>().ok()?, b.parse::<u64>().ok()?)))
        .ok_or_else(|| format!("{range}: expected FROM..TO"))?;
    let chunk: u64 = match args.iter().position(|a| a == "--chunk") {
        Some(k) => args
            .get(k + 1)
            .and_then(|s| s.parse().ok())
            .filter(|&n: &u64| n > 0)
            .ok_or("--chunk needs a positive count")?,
        None => 500,
    };
    let mut failing = vec![];
    let mut start = from;
    while start < to {
        let end = (start + chunk).min(to);
        eprintln!("explore: seeds {start}..{end}");
        // Programs whose generated code does not compile fail the whole build: they
        // are recorded and left out, and the chunk built again.
        let mut skipped: Vec<u64> = vec![];
        loop {
            let skip = skipped
                .iter()
                .map(u64::to_string)
                .collect::<Vec<_>>()
                .join(",");
            let env = [
                ("NNC_RANDOM_SEEDS", format!("{start}..{end}")),
                ("NNC_RANDOM_SKIP", skip),
            ];
            let output = test_crate(&root, &env)?;
            let broken = uncompiled_seeds(&output.text);
            if !broken.is_empty() {
                eprintln!("explore: generated code of seeds {broken:?} does not compile");
                skipped.extend(broken);
                continue;
            }
            let found = failing_seeds(&output);
            if found.is_empty() && !output.success {
                return Err(format!(
                    "the test crate failed without naming a seed:\n{}",
                    output.text
                ));
            }
            failing.extend(found);
            failing.extend(&skipped);
            break;
        }
        start = end;
    }
    println!(
        "{} of {} seeds failed: {failing:?}",
        failing.len(),
        to - from
    );
    for &seed in &failing {
        shrink_seed(&root, &out, seed)?;
    }
    Ok(failing.is_empty())
}

/// Shrinks the program of `seed` and prints the smallest failing one.
fn shrink_seed(root: &Path, out: &Path, seed: u64) -> Result<(), String> {
    let program = nnc_progen::generate(seed);
    let candidate = out.join(format!("candidate-r{seed}.nn"));
    let mut tries = 0;
    let mut fails = |p: &nnc_progen::Program| {
        let source = p.source();
        // Only well-typed cuts: a front-end error is not the failure being shrunk.
        if nnc::ir::compile_source(&source).is_err() {
            return false;
        }
        tries += 1;
        eprintln!("explore: seed {seed}: try {tries}, {} nodes", p.size());
        if std::fs::write(&candidate, &source).is_err() {
            return false;
        }
        let file = ("NNC_RANDOM_FILE", candidate.display().to_string());
        test_crate(root, &[file])
            .is_ok_and(|o| !failing_seeds(&o).is_empty() || !uncompiled_seeds(&o.text).is_empty())
    };
    if !fails(&program) {
        println!("seed {seed}: passes when built alone (nothing to shrink)");
        return Ok(());
    }
    let small = nnc_progen::shrink(&program, &mut fails);
    let target = out.join(format!("r{seed}.nn"));
    std::fs::write(&target, small.source()).map_err(|e| format!("{}: {e}", target.display()))?;
    let output = test_crate(root, &[("NNC_RANDOM_FILE", target.display().to_string())])?;
    println!(
        "seed {seed}: shrunk from {} to {} nodes ({}):\n{}\n{}",
        program.size(),
        small.size(),
        target.display(),
        small.source(),
        failure_text(&output.text)
    );
    Ok(())
}

struct Output {
    success: bool,
    text: String,
}

/// `cargo test -p nnc-model-tests --test random` with `env`.
fn test_crate(root: &Path, env: &[(&str, String)]) -> Result<Output, String> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let mut command = Command::new(cargo);
    command
        .current_dir(root)
        .args(["test", "-q", "-p", "nnc-model-tests", "--test", "random"])
        .env_remove("NNC_RANDOM_SEEDS")
        .env_remove("NNC_RANDOM_FILE");
    for (k, v) in env {
        command.env(k, v);
    }
    let output = command.output().map_err(|e| format!("cargo: {e}"))?;
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    Ok(Output {
        success: output.status.success(),
        text,
    })
}

/// The seeds a test run reports as failing (`seed 17: ...` lines).
fn failing_seeds(output: &Output) -> Vec<u64> {
    let mut seeds: Vec<u64> = output
        .text
        .lines()
        .filter_map(|l| l.strip_prefix("seed ")?.split_once(':')?.0.parse().ok())
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
}

/// The seeds whose generated code has compile errors (`--> .../random/r17.rs`).
fn uncompiled_seeds(text: &str) -> Vec<u64> {
    let mut seeds: Vec<u64> = text
        .lines()
        .filter(|l| l.trim_start().starts_with("-->"))
        .filter_map(|l| {
            let file = l.split("/random/r").nth(1)?;
            file.split_once(".rs")?.0.parse().ok()
        })
        .collect();
    seeds.sort_unstable();
    seeds.dedup();
    seeds
}

/// The failure messages of a test run.
fn failure_text(text: &str) -> String {
    text.lines()
        .filter(|l| l.starts_with("seed "))
        .collect::<Vec<_>>()
        .join("\n")
}

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}
