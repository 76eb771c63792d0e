//! Random programs (`nnc-progen`, seeds 0..300 by default; see `build.rs`), each
//! checked every way `harness::check_random_program` knows: the interpreter against
//! central differences, the generated code against the interpreter (batches 1 and 7,
//! contiguous and strided inputs; `loss`, `loss_and_grad`, `forward`), the same bits
//! on every thread count. Four shards, so the test threads share the work.
//!
//! A failure names its seed; `cargo run -p nnc-model-tests --bin explore` explores
//! other seeds and shrinks a failing program to a small one.

use nnc::Model;
use nnc::ir::interp::Scalar;
use nnc_model_tests::harness::{Visit, check_random_program};
use std::panic::{AssertUnwindSafe, catch_unwind};

const SHARDS: u64 = 4;

/// Checks the programs whose seed is `shard` modulo [`SHARDS`], collecting failures.
struct Shard {
    shard: u64,
    checked: usize,
    /// Programs whose central differences could not be checked (no point clear of
    /// their kinks): allowed, but only a few.
    without_differences: Vec<u64>,
    failures: Vec<String>,
}

impl Visit for Shard {
    fn visit<M: Model>(&mut self, seed: u64, source: &'static str)
    where
        M::Float: Scalar,
    {
        if seed % SHARDS != self.shard {
            return;
        }
        self.checked += 1;
        let outcome = catch_unwind(AssertUnwindSafe(|| check_random_program::<M>(source)));
        if let Ok(false) = outcome {
            self.without_differences.push(seed);
        }
        if let Err(panic) = outcome {
            let message = panic
                .downcast_ref::<String>()
                .cloned()
                .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
                .unwrap_or_default();
            self.failures
                .push(format!("seed {seed}: {message}\n{source}"));
        }
    }

    fn rejected(&mut self, seed: u64, source: &'static str, diagnostics: &'static str) {
        if seed % SHARDS == self.shard {
            self.checked += 1;
            let failure =
                format!("seed {seed}: the code generator rejected it:\n{diagnostics}\n{source}");
            self.failures.push(failure);
        }
    }
}

fn run(shard: u64) {
    let mut visitor = Shard {
        shard,
        checked: 0,
        without_differences: vec![],
        failures: vec![],
    };
    nnc_model_tests::random::visit_all(&mut visitor);
    // A few programs sit on their kinks wherever they are drawn; many would mean the
    // kink test itself has gone wrong.
    assert!(
        visitor.without_differences.len() * 20 <= visitor.checked,
        "{} of {} random programs had no point clear of their kinks: seeds {:?}",
        visitor.without_differences.len(),
        visitor.checked,
        visitor.without_differences
    );
    assert!(
        visitor.failures.is_empty(),
        "{} of {} random programs failed:\n\n{}",
        visitor.failures.len(),
        visitor.checked,
        visitor.failures.join("\n\n")
    );
}

#[test]
fn random_programs_shard_0() {
    run(0);
}

#[test]
fn random_programs_shard_1() {
    run(1);
}

#[test]
fn random_programs_shard_2() {
    run(2);
}

#[test]
fn random_programs_shard_3() {
    run(3);
}
