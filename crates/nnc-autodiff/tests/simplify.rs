//! The simplifier's rules, one line each: `input => expected`, on the loss of a tiny
//! model (so every rule runs exactly as it does after differentiation).

use nnc_autodiff::{derivation::expression, simplify};

const DECLS: &str = "dtype f64; param x: []; param m: [3, 4]; param v: [3, 1];";

/// Simplifies `loss <expr>` and returns the loss as an expression, and the node count.
fn simplified(expr: &str) -> (String, usize) {
    let source = format!("model t {{ {DECLS} loss {expr}; }}");
    let mut models = nnc_ir::compile_source(&source).unwrap_or_else(|d| panic!("{source}: {d:?}"));
    let mut model = models.remove(0);
    simplify(&mut model);
    (expression(&model, model.loss), model.nodes.len())
}

#[track_caller]
fn check(input: &str, expected: &str) {
    assert_eq!(simplified(input).0, expected, "simplifying `{input}`");
}

#[test]
fn mul_by_one() {
    check("x * 1", "x");
    check("1 * x", "x");
}

#[test]
fn add_and_sub_zero() {
    check("x + 0", "x");
    check("0 + x", "x");
    check("x - 0", "x");
    check("0 - x", "-x");
}

#[test]
fn div_by_one_and_pow_one() {
    check("x / 1", "x");
    check("x ^ 1", "x");
}

#[test]
fn double_negation() {
    check("--x", "x");
    check("-(-(x))", "x");
}

#[test]
fn mul_by_minus_one() {
    check("x * -1", "-x");
}

#[test]
fn transpose_of_transpose() {
    check("sum(m.T.T)", "sum(m)");
}

#[test]
fn sum_over_a_size_one_axis() {
    check("sum(sum(v, axis = 1, keepdims = true))", "sum(v)");
    check("sum(sum(v, axis = 1))", "sum(reshape(v, [3]))");
}

#[test]
fn constants_fold() {
    // `x * (2 * 3)` folds during lowering; after differentiation the seed folds too.
    check("x * (2 * 3)", "x * 6");
    check("x * (exp(0) + 1)", "x * 2");
}

#[test]
fn mul_by_zero_only_where_safe() {
    // 0 * x is not folded for a parameter: x could be infinite.
    check("0 * x", "0 * x");
}

#[test]
fn common_subexpressions_are_shared() {
    let (once, n1) = simplified("sum(m * x)");
    let (twice, n2) = simplified("sum(m * x) + sum(m * x)");
    assert_eq!(once, "sum(m * x)");
    assert_eq!(twice, "sum(m * x) + sum(m * x)");
    // The second copy adds only the final `+`.
    assert_eq!(n2, n1 + 1);
}

#[test]
fn dead_code_is_removed() {
    let source = format!("model t {{ {DECLS} let unused = exp(m); loss sum(m); }}");
    let mut model = nnc_ir::compile_source(&source).expect("compiles").remove(0);
    let before = model.nodes.len();
    let stats = simplify(&mut model);
    assert_eq!(stats.before, before);
    assert!(
        model
            .nodes
            .iter()
            .all(|n| n.name.as_deref() != Some("unused"))
    );
    assert_eq!(stats.after, before - 1);
}
