//! `nnc grad`, `nnc gradcheck` and `nnc graph`, end to end.

mod common;

use common::{Arg, code, model, nnc, scratch, stderr, stdout};

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

// ---- nnc graph ---------------------------------------------------------------------

#[test]
fn graph_draws_add_mul_with_the_lectures_numbers() {
    let out = nnc([
        "graph",
        "examples/models/gates.nn",
        "--model",
        "add_mul",
        "--format",
        "dot",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dot = stdout(&out);
    assert!(dot.starts_with("digraph \"model add_mul\""), "{dot}");
    // x's wire: -2 forward, -4 back; z's: -4 and 3; the loss -12 with its seed 1.
    for wire in [
        ">-2</font><br/><font color=\"#c62828\">-4<",
        ">-4</font><br/><font color=\"#c62828\">3<",
        ">-12</font><br/><font color=\"#c62828\">1<",
    ] {
        assert!(dot.contains(wire), "{wire} in {dot}");
    }
    // Constant parameters need no seed: nothing on stderr.
    assert_eq!(stderr(&out), "");
}

#[test]
fn graph_writes_svg_and_png_files_by_their_extension() {
    let dir = scratch("graph", "files");
    let svg = dir.join("neuron.svg");
    let png = dir.join("neuron.png");
    for path in [&svg, &png] {
        let args: [Arg; 5] = [
            &"graph",
            &"examples/models/gates.nn",
            &"--model=neuron",
            &"-o",
            path,
        ];
        let out = nnc(args);
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        assert_eq!(stdout(&out), "", "the picture goes to the file");
    }
    let text = std::fs::read_to_string(&svg).expect("svg written");
    assert!(text.starts_with("<svg"), "{text}");
    assert!(text.contains(">0.73</text>"), "the neuron's output");
    assert!(
        text.contains("<title>examples/models/gates.nn:29:"),
        "tooltips carry the location"
    );
    let bytes = std::fs::read(&png).expect("png written");
    assert_eq!(&bytes[..8], b"\x89PNG\r\n\x1a\n");
}

#[test]
fn graph_draws_random_inputs_with_a_note() {
    let out = nnc([
        "graph",
        "examples/models/two_layer.nn",
        "--batch",
        "3",
        "--format",
        "dot",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stderr(&out).contains("note: random inputs (standard normal, a batch of 3, seed 0)"));
    // x is [3x1000]: summarised, not listed.
    assert!(stdout(&out).contains("[3×1000] μ "), "{}", stdout(&out));
}

#[test]
fn graph_refuses_what_it_cannot_do_with_a_clear_error() {
    let out = nnc([
        "graph",
        "examples/models/gates.nn",
        "--model",
        "neuron",
        "--format",
        "png",
    ]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stderr(&out),
        "error: a PNG picture needs a file: pass -o FILE.png\n"
    );
    let out = nnc(["graph", "examples/models/gates.nn"]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains("holds several models"),
        "{}",
        stderr(&out)
    );
    let dir = scratch("graph", "bad");
    let bad = dir.join("bad.nn");
    std::fs::write(
        &bad,
        "model m { param w: [2] = zeros; loss sum(w @ w @ w); }",
    )
    .expect("written");
    let target = dir.join("m.svg");
    let args: [Arg; 4] = [&"graph", &bad, &"-o", &target];
    let out = nnc(args);
    assert_eq!(code(&out), 1);
    assert!(stderr(&out).contains("bad.nn:1:"), "{}", stderr(&out));
    assert!(
        !target.exists(),
        "no picture is written for a model with errors"
    );
}

#[test]
fn graph_refuses_to_lay_out_a_huge_graph_but_writes_its_dot() {
    // 40 layers, each reading `w` and a value three layers back: long wires that
    // would take layout-rs minutes.
    let mut source = String::from("model big { dtype f64; param w: [] = 0.5; let a0 = w;\n");
    for i in 1usize..40 {
        source.push_str(&format!(
            "let a{i} = tanh(a{}) * w + a{};\n",
            i - 1,
            i.saturating_sub(3)
        ));
    }
    source.push_str("loss a39; }\n");
    let dir = scratch("graph", "huge");
    let file = dir.join("big.nn");
    std::fs::write(&file, source).expect("written");
    let started = std::time::Instant::now();
    let args: [Arg; 2] = [&"graph", &file];
    let out = nnc(args);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).starts_with("error: the graph is too large to lay out ("),
        "{}",
        stderr(&out)
    );
    assert!(
        started.elapsed().as_secs() < 10,
        "refused before laying out"
    );
    let args: [Arg; 4] = [&"graph", &file, &"--format", &"dot"];
    let out = nnc(args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    let dot = stdout(&out);
    let tanh_gates =
        dot.matches("label=<tanh<br/>").count() + dot.matches("label=\"tanh\"").count();
    assert_eq!(tanh_gates, 39, "{dot}");
}
