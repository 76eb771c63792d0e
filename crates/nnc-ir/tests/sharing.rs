//! Lowering is linear in the program: identical values are one node (hash-consing),
//! a function called again on the same values is not lowered again, and a file of
//! thousands of models lowers and prints in time proportional to its length.

use nnc_ir::{Model, NodeId, Op};
use nnc_syntax::diagnostic::{LineIndex, line_col};
use std::time::{Duration, Instant};

fn lower(source: &str) -> Vec<Model> {
    nnc_ir::compile_source(source).unwrap_or_else(|d| {
        panic!(
            "does not lower:\n{}",
            nnc_syntax::render(&d, "test.nn", source)
        )
    })
}

fn only(source: &str) -> Model {
    let mut models = lower(source);
    assert_eq!(models.len(), 1);
    models.remove(0)
}

/// `fn f0(x) = x * 2; fn f1(x) = f0(x) + f0(x); ...`: each level doubles the calls.
fn nested(depth: usize, model: &str) -> String {
    let mut s = String::from("fn f0(x) = x * 2;\n");
    for i in 1..=depth {
        s.push_str(&format!("fn f{i}(x) = f{}(x) + f{}(x);\n", i - 1, i - 1));
    }
    s.push_str(&model.replace("DEPTH", &depth.to_string()));
    s
}

#[test]
fn nested_calls_lower_to_one_node_per_operation() {
    for depth in [16, 40] {
        let m = only(&nested(
            depth,
            "model m { dim N; input x: [N, 3]; loss sum(fDEPTH(x)); }",
        ));
        // x, 2, x * 2, one add per level, the sum.
        assert_eq!(m.nodes.len(), depth + 4, "depth {depth}");
        for (i, n) in m.nodes.iter().enumerate() {
            if let Op::Binary(nnc_ir::BinaryOp::Add) = n.op {
                assert_eq!(n.args[0], n.args[1], "%{i} adds one value to itself");
            }
        }
    }
}

#[test]
fn the_same_expression_twice_is_one_node() {
    let m = only(
        "model m {
    dim N;
    input x: [N, 3];
    param w: [3, 3];
    let a = relu(x @ w) * 2;
    let b = relu(x @ w) * 2;
    loss sum(a - b);
}",
    );
    let matmuls = m.nodes.iter().filter(|n| n.op == Op::MatMul).count();
    assert_eq!(matmuls, 1);
    let sub = m.node(m.nodes[m.loss.index()].args[0]);
    assert_eq!(sub.args[0], sub.args[1], "a and b are one node");
    // The first name a value is given stays.
    assert_eq!(m.node(sub.args[0]).name.as_deref(), Some("a"));
    // Constants are shared too: one `2`, one `0` (relu's).
    let consts: Vec<&Op> = m
        .nodes
        .iter()
        .map(|n| &n.op)
        .filter(|op| matches!(op, Op::Const(_)))
        .collect();
    assert_eq!(consts.len(), 2, "{consts:?}");
}

#[test]
fn calls_on_other_values_are_not_shared() {
    let m = only(
        "fn double(v) = v * 2;
model m {
    dim N;
    input x: [N, 3];
    input y: [N, 3];
    loss sum(double(x) + double(y) + double(x));
}",
    );
    let muls = m
        .nodes
        .iter()
        .filter(|n| n.op == Op::Binary(nnc_ir::BinaryOp::Mul))
        .count();
    assert_eq!(muls, 2, "double(x) once, double(y) once");
}

#[test]
fn zero_and_negative_zero_stay_apart() {
    let m = only(
        "model m {
    dim N;
    input x: [N];
    loss sum(x / 0 + x / -0);
}",
    );
    let divs: Vec<NodeId> = m
        .nodes
        .iter()
        .filter(|n| n.op == Op::Binary(nnc_ir::BinaryOp::Div))
        .map(|n| n.args[1])
        .collect();
    assert_eq!(divs.len(), 2);
    assert_ne!(divs[0], divs[1]);
}

#[test]
fn a_shared_node_keeps_its_first_span() {
    let source = "model m {
    dim N;
    input x: [N, 3];
    let a = exp(x);
    let b = exp(x);
    loss sum(a * b);
}";
    let m = only(source);
    let exp = m
        .nodes
        .iter()
        .find(|n| matches!(n.op, Op::Unary(nnc_ir::UnaryOp::Exp)))
        .expect("an exp");
    assert_eq!(line_col(source, exp.span.start), (4, 13));
}

#[test]
fn a_call_reused_deeper_still_meets_the_depth_limit() {
    // g63 -> g62 -> ... -> g0 is 64 nested calls, the most allowed; through `h` it is
    // 65, even though g63(x) was lowered already.
    let mut s = String::from("fn g0(x) = x * 2;\n");
    for i in 1..64 {
        s.push_str(&format!("fn g{i}(x) = g{}(x);\n", i - 1));
    }
    s.push_str("fn h(x) = g63(x);\n");
    let ok = format!("{s}model m {{ dim N; input x: [N]; loss sum(g63(x)); }}\n");
    assert_eq!(lower(&ok).len(), 1);
    let deep = format!("{s}model m {{ dim N; input x: [N]; loss sum(g63(x)) + sum(h(x)); }}\n");
    let errors = nnc_ir::compile_source(&deep).expect_err("too deep through h");
    assert_eq!(errors.len(), 1, "{errors:?}");
    assert!(errors[0].message.starts_with("calls nested too deeply"));
}

/// `n` small models, each calling a function defined after all of them and each
/// after a comment, so that the file is long (800 bytes a model) while lowering it is
/// quick.
fn many_models(n: usize) -> String {
    let comment = format!("//{}\n", " a comment".repeat(80));
    let mut s = String::new();
    for i in 0..n {
        s.push_str(&comment);
        s.push_str(&format!(
            "model m{i} {{ dim N; input x: [N, 3]; param w: [3, 2]; param b: [2]; \
             let h = dense(x, w, b); loss mse(h, x @ w); }}\n"
        ));
    }
    s.push_str("fn dense(x, w, b) = relu(x @ w + b);\n");
    s
}

/// Parses, checks, lowers and prints (with source locations) every model of a file.
fn lower_and_print(source: &str) -> usize {
    let lines = LineIndex::new(source);
    lower(source)
        .iter()
        .map(|m| nnc_ir::print::print(m, Some(&lines)).len())
        .sum()
}

/// The fastest of two runs.
fn time(source: &str) -> Duration {
    (0..2)
        .map(|_| {
            let start = Instant::now();
            std::hint::black_box(lower_and_print(source));
            start.elapsed()
        })
        .min()
        .expect("two runs")
}

#[test]
fn thousands_of_models_take_linear_time() {
    let (small, large) = (many_models(500), many_models(2000));
    let (t1, t4) = (time(&small), time(&large));
    let ratio = t4.as_secs_f64() / t1.as_secs_f64();
    // Linear is 4; a pass quadratic in the file (locating each node by scanning the
    // text before it, finding a function by scanning the items) made it 10 to 16.
    assert!(
        ratio < 7.0,
        "4x the models took {ratio:.1}x the time ({t1:?} for 500, {t4:?} for 2000)"
    );
}

/// A function that drops draws a mask at each call: its calls are not shared, even
/// on the same value; a doubling chain of them meets the limit on masks, quickly.
#[test]
fn calls_of_a_function_that_drops_draw_a_mask_each() {
    let m = only(
        "fn drop(x) = dropout(x, 0.5);
model m { dim N; input x: [N, 3]; loss sum(drop(x) + drop(x)); }",
    );
    let masks = m
        .inputs
        .iter()
        .filter(|i| matches!(i.kind, nnc_ir::InputKind::Mask { .. }))
        .count();
    assert_eq!(masks, 2);
    let source = nested(
        40,
        "model m { dim N; input x: [N, 3]; loss sum(fDEPTH(x)); }",
    )
    .replace("fn f0(x) = x * 2;", "fn f0(x) = dropout(x, 0.5);");
    let start = Instant::now();
    let errors = nnc_ir::compile_source(&source).err().unwrap_or_default();
    assert!(
        start.elapsed() < Duration::from_secs(10),
        "{:?}",
        start.elapsed()
    );
    assert!(
        errors.iter().any(|d| d.message.contains("dropout masks")),
        "{errors:?}"
    );
}
