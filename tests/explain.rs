//! `nnc::explain`: the library call users snapshot-test their derivations with.

#[test]
fn add_mul_explained() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/models/gates.nn"
    ))
    .expect("spec model");
    let explained = nnc::explain(&source, "gates.nn", "add_mul").expect("compiles");
    insta::assert_snapshot!("add_mul_derivation", explained.derivation);
    insta::assert_snapshot!("add_mul_summary", explained.summary);
    assert!(explained.code.contains("pub mod add_mul"));
    assert!(
        !explained.code.contains("pub mod neuron"),
        "only the model asked for"
    );
}

#[test]
fn errors_come_back_rendered() {
    let err =
        nnc::explain("model m { loss sigmod(1); }", "m.nn", "m").expect_err("unknown function");
    assert!(err.contains("m.nn:1:16"), "{err}");
    assert!(err.contains("did you mean `sigmoid`?"), "{err}");
    let err = nnc::explain("model m { loss 1; }", "m.nn", "other").expect_err("no such model");
    assert!(err.contains("no model `other`"), "{err}");
}

#[test]
fn the_summary_lists_each_function_with_its_statements_and_no_rust() {
    let source = std::fs::read_to_string(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/examples/models/mlp784.nn"
    ))
    .expect("example model");
    let explained = nnc::explain(&source, "mlp784.nn", "mlp784").expect("compiles");
    insta::assert_snapshot!("mlp784_summary", explained.summary);
    let functions: Vec<&str> = explained
        .summary
        .lines()
        .filter(|l| l.starts_with("fn "))
        .collect();
    assert_eq!(
        functions,
        ["fn loss", "fn forward", "fn loss_and_grad", "fn sgd_step"]
    );
    assert!(
        explained
            .summary
            .lines()
            .all(|l| l.starts_with("fn ") || l.trim_start().starts_with("// ")),
        "only function names and comments"
    );
    assert!(explained.summary.lines().count() * 5 < explained.code.lines().count());
}
