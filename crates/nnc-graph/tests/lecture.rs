//! The lecture's circuit diagrams (`examples/models/gates.nn`): the numbers on the
//! wires are the lecture's, and the pictures are snapshot-tested (DOT and SVG).

use nnc_graph::{Diagram, GateKind, Options, Picture, graph};
use nnc_ir::interp::Bindings;

const GATES: &str = include_str!("../../../examples/models/gates.nn");

fn picture(model: &str, expand: bool, backward: bool) -> Picture {
    let models = nnc_ir::compile_source(GATES).expect("gates.nn compiles");
    let model = models.iter().find(|m| m.name == model).expect("model");
    // The parameters' declared constants (`param x: [] = -2`).
    let params = model
        .params
        .iter()
        .map(|p| match p.init {
            nnc_ir::Init::Constant(v) => ndarray::arr0(v).into_dyn(),
            other => panic!("{other:?}"),
        })
        .collect();
    let bindings = Bindings {
        inputs: vec![],
        params,
    };
    let options = Options {
        expand,
        backward,
        ..Options::new("gates.nn", GATES)
    };
    graph(model, &bindings, &options).expect("drawn")
}

/// The wire leaving the gate labelled `from` (the only one): value and gradient.
fn wire_from(diagram: &Diagram, from: &str) -> (String, Option<String>) {
    let gate = diagram
        .gates
        .iter()
        .position(|g| g.label == from)
        .unwrap_or_else(|| panic!("no gate `{from}`"));
    let wires: Vec<_> = diagram.wires.iter().filter(|w| w.from == gate).collect();
    assert_eq!(wires.len(), 1, "one wire from `{from}`");
    (wires[0].value.clone(), wires[0].gradient.clone())
}

/// The lecture's gradients of the sigmoid neuron, on the wires leaving its inputs.
fn assert_lecture_neuron_gradients(d: &Diagram) {
    let expected = [
        ("w0", "-0.20"),
        ("x0", "0.39"),
        ("w1", "-0.39"),
        ("x1", "-0.59"),
        ("w2", "0.20"),
    ];
    for (param, gradient) in expected {
        assert_eq!(wire_from(d, param).1.as_deref(), Some(gradient), "{param}");
    }
}

fn labels(diagram: &Diagram, kind: GateKind) -> Vec<&str> {
    diagram
        .gates
        .iter()
        .filter(|g| g.kind == kind)
        .map(|g| g.label.as_str())
        .collect()
}

#[test]
fn add_mul_has_the_lectures_numbers() {
    let d = picture("add_mul", false, false).diagram;
    // q = x + y = 3 is both used by `*` and an output: a branch.
    assert_eq!(wire_from(&d, "x"), ("-2".into(), Some("-4".into())));
    assert_eq!(wire_from(&d, "y"), ("5".into(), Some("-4".into())));
    assert_eq!(wire_from(&d, "z"), ("-4".into(), Some("3".into())));
    assert_eq!(wire_from(&d, "*"), ("-12".into(), Some("1".into())));
    let plus = d.gates.iter().position(|g| g.label == "+").expect("+");
    let from_plus: Vec<_> = d.wires.iter().filter(|w| w.from == plus).collect();
    assert_eq!(from_plus.len(), 1, "`+` feeds a branch point");
    assert_eq!(from_plus[0].value, "3");
    assert_eq!(d.gates[from_plus[0].to].kind, GateKind::Branch);
    // The branch: -4 arrives (from `*`; the output `q` sends nothing back).
    assert_eq!(from_plus[0].gradient.as_deref(), Some("-4"));
    assert_eq!(labels(&d, GateKind::Result), ["q", "loss"]);
    // "mul swaps": the local gradients of `*` are z and q.
    let times = d.gates.iter().find(|g| g.label == "*").expect("*");
    assert_eq!(times.detail.as_deref(), Some("local -4, 3"));
}

#[test]
fn neuron_shows_the_sigmoids_gates_and_the_lectures_gradients() {
    let d = picture("neuron", false, false).diagram;
    assert_eq!(wire_from(&d, "1/x").0, "0.73");
    assert_lecture_neuron_gradients(&d);
    let ops = labels(&d, GateKind::Operation);
    assert_eq!(ops, ["*", "*", "+", "+", "*-1", "exp", "+1", "1/x"]);
    // The lecture's local gradients: 1/x gives -1/x^2 = -0.53, exp gives e^-1 = 0.37.
    let detail = |label: &str| {
        d.gates
            .iter()
            .find(|g| g.label == label)
            .and_then(|g| g.detail.clone())
    };
    assert_eq!(detail("1/x").as_deref(), Some("local -0.53"));
    assert_eq!(detail("+1").as_deref(), Some("local 1"));
    assert_eq!(detail("exp").as_deref(), Some("local 0.37"));
    assert_eq!(detail("*-1").as_deref(), Some("local -1"));
    assert_eq!(wire_from(&d, "exp"), ("0.37".into(), Some("-0.53".into())));
}

#[test]
fn neuron_gate_draws_sigmoid_as_one_gate_with_the_same_gradients() {
    let d = picture("neuron_gate", false, false).diagram;
    assert_eq!(wire_from(&d, "sigmoid").0, "0.73");
    assert_lecture_neuron_gradients(&d);
    // sigmoid's local gradient: (1 - 0.73) 0.73 = 0.20.
    let sigmoid = d
        .gates
        .iter()
        .find(|g| g.label == "sigmoid")
        .expect("sigmoid");
    assert_eq!(sigmoid.detail.as_deref(), Some("local 0.20"));
}

#[test]
fn tooltips_point_at_the_source() {
    let d = picture("add_mul", false, false).diagram;
    let plus = d.gates.iter().find(|g| g.label == "+").expect("+");
    assert_eq!(plus.tooltip, "gates.nn:10:15: q = x + y");
    let x = d.gates.iter().find(|g| g.label == "x").expect("x");
    assert!(x.tooltip.starts_with("gates.nn:6:11: x"), "{}", x.tooltip);
}

#[test]
fn add_mul_dot() {
    insta::assert_snapshot!(picture("add_mul", false, false).dot());
}

#[test]
fn neuron_dot() {
    insta::assert_snapshot!(picture("neuron", false, false).dot());
}

#[test]
fn neuron_svg() {
    insta::assert_snapshot!(picture("neuron", false, false).svg().expect("laid out"));
}

#[test]
fn neuron_gate_svg() {
    insta::assert_snapshot!(
        picture("neuron_gate", false, false)
            .svg()
            .expect("laid out")
    );
}

#[test]
fn add_mul_backward_dot() {
    insta::assert_snapshot!(picture("add_mul", false, true).dot());
}

#[cfg(feature = "png")]
#[test]
fn png_is_a_picture_with_ink() {
    let png = picture("neuron", false, false).png().expect("rasterised");
    assert_eq!(&png[..8], b"\x89PNG\r\n\x1a\n");
    // Width and height from the IHDR chunk: a picture of some size.
    let width = u32::from_be_bytes([png[16], png[17], png[18], png[19]]);
    let height = u32::from_be_bytes([png[20], png[21], png[22], png[23]]);
    assert!(width > 400 && height > 100, "{width}x{height}");
}
