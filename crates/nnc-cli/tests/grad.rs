//! `nnc grad` and `nnc gradcheck`, end to end.

mod common;

use common::{model, nnc, stderr, stdout};

#[test]
fn grad_prints_the_slides_derivation() {
    let out = nnc(["grad", &model("gates.nn"), "--model", "add_mul"]);
    assert_eq!(out.status.code(), Some(0));
    let text = stdout(&out);
    for line in [
        "q = x + y",
        "f = q * z",
        "d_q = 1 * z",
        "d_x = d_q",
        "d_y = d_q",
        "d_z = q",
    ] {
        assert!(text.contains(line), "missing `{line}` in\n{text}");
    }
}

#[test]
fn grad_in_latex() {
    let out = nnc([
        "grad",
        &model("gates.nn"),
        "--model",
        "add_mul",
        "--format",
        "latex",
    ]);
    assert_eq!(out.status.code(), Some(0));
    assert!(
        stdout(&out).contains("\\partial \\mathit{q} &= 1 \\cdot \\mathit{z}"),
        "{}",
        stdout(&out)
    );
}

#[test]
fn grad_needs_a_model_name_when_the_file_has_several() {
    let out = nnc(["grad", &model("gates.nn")]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("--model"));
}

#[test]
fn gradcheck_passes_on_spiral_and_reports_each_tensor() {
    let out = nnc([
        "gradcheck",
        &model("spiral.nn"),
        "--batch",
        "5",
        "--seed",
        "2",
    ]);
    assert_eq!(out.status.code(), Some(0), "{}", stdout(&out));
    let text = stdout(&out);
    for t in ["d_w1", "d_b1", "d_w2", "d_b2"] {
        let line = text
            .lines()
            .find(|l| l.trim_start().starts_with(t))
            .unwrap_or_else(|| panic!("{t} in\n{text}"));
        assert!(line.ends_with("ok"), "{line}");
    }
}

#[test]
fn gradcheck_exits_1_when_a_tensor_fails() {
    // A negative threshold fails every tensor: the failure path and its exit code.
    let out = nnc([
        "gradcheck",
        &model("gates.nn"),
        "--model",
        "add_mul",
        "--threshold=-1",
    ]);
    assert_eq!(out.status.code(), Some(1));
    assert!(stdout(&out).contains("FAILED"));
}
