//! `nnc compile`: output, emit modes, and no partial file on error.

mod common;

use common::{model, nnc, scratch, stderr, stdout};

#[test]
fn writes_the_generated_module() {
    let dir = scratch("compile", "writes");
    let out = dir.join("two_layer.rs");
    let run = nnc([
        "compile",
        &model("two_layer.nn"),
        "-o",
        out.to_str().expect("utf-8 path"),
    ]);
    assert_eq!(run.status.code(), Some(0), "{}", stderr(&run));
    let text = std::fs::read_to_string(&out).expect("output written");
    for needle in [
        "pub mod two_layer",
        "pub struct Params",
        "pub fn loss_and_grad",
        "impl ::nnc::runtime::Model for",
    ] {
        assert!(text.contains(needle), "missing `{needle}`");
    }
    // Nothing but the output is left in the directory (no temporary files).
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 1);
}

#[test]
fn an_error_leaves_the_old_file_untouched() {
    let dir = scratch("compile", "error");
    let bad = dir.join("bad.nn");
    std::fs::write(
        &bad,
        "model m { dim N; input x: [N, 3]; param w: [4, 2]; loss sum(x @ w); }",
    )
    .expect("write");
    let out = dir.join("out.rs");
    std::fs::write(&out, "previous contents").expect("write");
    let run = nnc([
        "compile",
        bad.to_str().expect("utf-8"),
        "-o",
        out.to_str().expect("utf-8"),
    ]);
    assert_eq!(run.status.code(), Some(1));
    let stderr = stderr(&run);
    assert!(stderr.contains("inner dims 3 and 4 differ"), "{stderr}");
    assert!(stderr.contains("bad.nn:1:"), "{stderr}");
    assert_eq!(
        std::fs::read_to_string(&out).expect("still there"),
        "previous contents"
    );
    assert_eq!(std::fs::read_dir(&dir).expect("dir").count(), 2);
}

#[test]
fn emits_ir_grad_ir_and_plans() {
    let ir = nnc([
        "compile",
        &model("gates.nn"),
        "--model",
        "add_mul",
        "--emit",
        "ir",
    ]);
    let ir = stdout(&ir);
    assert!(ir.contains("%3 = add %0, %1"), "{ir}");
    assert!(!ir.contains("grad x"), "{ir}");
    let grad_ir = nnc([
        "compile",
        &model("gates.nn"),
        "--model",
        "add_mul",
        "--emit",
        "grad-ir",
    ]);
    let grad_ir = stdout(&grad_ir);
    assert!(grad_ir.contains("grad x = "), "{grad_ir}");
    let plan = nnc(["compile", &model("spiral.nn"), "--emit", "plan"]);
    assert_eq!(plan.status.code(), Some(0));
}

#[test]
fn unknown_model_is_an_error() {
    let run = nnc(["compile", &model("gates.nn"), "--model", "nope"]);
    assert_eq!(run.status.code(), Some(1));
    assert!(stderr(&run).contains("no model named `nope`"));
}
