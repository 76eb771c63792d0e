//! Issue 12's item 7: compile time grows linearly with the program. A file of
//! 10 000 models took 24 times as long as one of 1 000, and planning a chain of
//! `let`s was quadratic in its length (each value's place in a loop searched
//! everything downstream of the loop; each node's users list searched for
//! duplicates). Each test times the whole pipeline (source to formatted Rust) on a
//! program and on one four times larger, the fastest of two runs each, and checks
//! the ratio: 4 is linear, 16 quadratic.

use nnc_codegen::{Options, compile_source};
use std::time::{Duration, Instant};

/// A chain of `links` values in one loop: `let a1 = a0 + x; let a2 = a1 + x; ...`.
fn chain(links: usize) -> String {
    let mut s =
        String::from("model m { dim N; input x: [N, 3]; param w: [3] = zeros; let a0 = x * w;\n");
    for k in 1..=links {
        s.push_str(&format!("let a{k} = a{} + x;\n", k - 1));
    }
    s + &format!("loss sum(a{links}); }}\n")
}

/// `count` small models with a product, a bias, a ReLU and a loss each.
fn models(count: usize) -> String {
    (0..count)
        .map(|i| {
            format!(
                "model m{i} {{ dim N; input x: [N, 3]; param w: [3, 2]; param b: [2]; \
                 let h = relu(x @ w + b); loss mse(h, x @ w); }}\n"
            )
        })
        .collect()
}

/// The fastest of two compilations of `source`.
fn time(source: &str) -> Duration {
    (0..2)
        .map(|_| {
            let start = Instant::now();
            let code = compile_source(source, "scale.nn", &Options::default());
            assert!(code.is_ok_and(|c| c.contains("pub mod")));
            start.elapsed()
        })
        .min()
        .expect("two runs")
}

fn assert_linear(what: &str, small: &str, large: &str) {
    let (t1, t4) = (time(small), time(large));
    let ratio = t4.as_secs_f64() / t1.as_secs_f64();
    assert!(
        ratio < 8.0,
        "{what}: 4x the size took {ratio:.1}x the time ({t1:?}, then {t4:?})"
    );
}

#[test]
fn a_chain_of_values_compiles_in_linear_time() {
    assert_linear("a chain of lets", &chain(1_000), &chain(4_000));
}

#[test]
fn many_models_compile_in_linear_time() {
    assert_linear("models in one file", &models(20), &models(80));
}
