//! `nnc check` reports every error `nnc compile` would, rendered the same way (names,
//! then lowering and shapes, then differentiation), and programs whose functions
//! double their calls at every level stay quick in every command.

mod common;

use common::{code, nnc, scratch, stderr, stdout};
use std::path::PathBuf;
use std::time::{Duration, Instant};

fn write(dir: &std::path::Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, source).expect("a scratch file");
    path
}

/// `nnc check` fails on `source` with exactly the diagnostics `nnc compile` prints.
#[track_caller]
fn check_says_what_compile_says(name: &str, source: &str, expected: &str) {
    let dir = scratch("check_like_compile", name);
    let file = write(&dir, &format!("{name}.nn"), source);
    let check = nnc([&"check" as &dyn AsRef<std::ffi::OsStr>, &file]);
    let compile = nnc([&"compile" as &dyn AsRef<std::ffi::OsStr>, &file]);
    assert_eq!(code(&compile), 1, "{name}: compile fails");
    assert_eq!(
        code(&check),
        1,
        "{name}: check fails too; it said {}",
        stdout(&check)
    );
    assert_eq!(stdout(&check), "", "{name}");
    assert_eq!(stderr(&check), stderr(&compile), "{name}: the same report");
    assert!(
        stderr(&check).contains(expected),
        "{name}: {}",
        stderr(&check)
    );
}

#[test]
fn shape_mismatch() {
    check_says_what_compile_says(
        "shape_mismatch",
        "model m {\n    dim N;\n    input x: [N, 3];\n    param w: [4, 2];\n    loss sum(x @ w);\n}\n",
        "shape mismatch in '@': [N, 3] @ [4, 2]",
    );
}

#[test]
fn axis_out_of_range() {
    check_says_what_compile_says(
        "axis_out_of_range",
        "model m {\n    dim N;\n    input x: [N, 3];\n    loss sum(sum(x, axis = 2));\n}\n",
        "axis 2 is out of range",
    );
}

#[test]
fn loss_not_a_scalar() {
    check_says_what_compile_says(
        "non_scalar_loss",
        "model m {\n    dim N;\n    input x: [N, 3];\n    loss x * 2;\n}\n",
        "the loss must be a scalar",
    );
}

#[test]
fn float_labels_given_to_pick() {
    check_says_what_compile_says(
        "pick_float_labels",
        "model m {\n    dim N;\n    input x: [N, 3];\n    input y: [N];\n    loss sum(pick(x, y));\n}\n",
        "'pick' needs class indices",
    );
}

#[test]
fn calls_nested_too_deeply() {
    let mut source = String::from("fn g0(x) = x * 2;\n");
    for i in 1..70 {
        source.push_str(&format!("fn g{i}(x) = g{}(x);\n", i - 1));
    }
    source.push_str("model m {\n    dim N;\n    input x: [N];\n    loss sum(g69(x));\n}\n");
    check_says_what_compile_says("too_deep", &source, "calls nested too deeply");
}

#[test]
fn too_many_elements() {
    check_says_what_compile_says(
        "too_many_elements",
        "model m {\n    dim A = 4294967296, B = 4294967297;\n    param w: [A, B];\n    loss mean(w);\n}\n",
        "parameter `w` has too many elements: 4294967296 × 4294967297 = 18446744078004518912",
    );
}

#[test]
fn errors_in_several_models_are_all_reported() {
    let dir = scratch("check_like_compile", "several_models");
    let file = write(
        &dir,
        "two.nn",
        "model a {\n    dim N;\n    input x: [N, 3];\n    loss x;\n}\n\
         model b {\n    dim N;\n    input x: [N, 3];\n    loss sum(x.T @ x, axis = 3);\n}\n",
    );
    let out = nnc([&"check" as &dyn AsRef<std::ffi::OsStr>, &file]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert!(err.contains("two.nn:4:10"), "{err}");
    assert!(err.contains("two.nn:9:10"), "{err}");
}

/// `fn f1(x) = f0(x) + f0(x); fn f2(x) = f1(x) + f1(x); ...`, 40 levels: 2^40 calls
/// if each were inlined anew.
fn nested_40() -> String {
    let mut s = String::from("fn f0(x) = x * 2;\n");
    for i in 1..=40 {
        s.push_str(&format!("fn f{i}(x) = f{}(x) + f{}(x);\n", i - 1, i - 1));
    }
    s.push_str(
        "model m {\n    dtype f64;\n    param w: [3, 3];\n    loss sum(f40(w) / 1e12);\n}\n",
    );
    s
}

#[test]
fn doubling_calls_40_deep_are_quick_in_every_command() {
    let dir = scratch("check_like_compile", "nested_40");
    let file = write(&dir, "nested.nn", &nested_40());
    let file = file.to_string_lossy().into_owned();
    for args in [
        vec!["check", &file],
        vec!["compile", "--emit", "ir", &file],
        vec!["compile", "--emit", "grad-ir", &file],
        vec!["compile", &file],
        vec!["grad", &file],
        vec!["run", &file, "--seed", "0"],
        vec!["gradcheck", &file],
    ] {
        let start = Instant::now();
        let out = nnc(&args);
        let took = start.elapsed();
        assert_eq!(code(&out), 0, "{args:?}: {}", stderr(&out));
        // Well under a second in release; the bound leaves room for a debug build on
        // a busy machine (each level used to double the time and the memory).
        assert!(took < Duration::from_secs(10), "{args:?} took {took:?}");
    }
    let ir = stdout(&nnc(["compile", "--emit", "ir", &file]));
    let nodes = ir
        .lines()
        .filter(|l| l.trim_start().starts_with('%'))
        .count();
    // w, 2, w * 2, one add per level, 1e12, the division, the sum.
    assert_eq!(nodes, 46, "{ir}");
}
