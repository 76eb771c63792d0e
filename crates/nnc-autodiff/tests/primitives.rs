//! Every derivative rule against finite differences, on random shapes (broadcast and
//! keepdims cases included) and random points, chosen by proptest.

use nnc_autodiff::gradcheck::{Options, check_derived, gradcheck};
use nnc_ir::GradOf;
use proptest::prelude::*;

/// A shape of rank 1 to 3, dims 1 to 4.
fn shape() -> impl Strategy<Value = Vec<usize>> {
    prop::collection::vec(1usize..=4, 1..=3)
}

/// A shape that broadcasts against `s`: some dims set to 1, some leading dims dropped.
fn broadcast_partner(s: Vec<usize>) -> impl Strategy<Value = (Vec<usize>, Vec<usize>)> {
    let rank = s.len();
    (prop::collection::vec(any::<bool>(), rank), 0..rank).prop_map(move |(ones, drop)| {
        let b: Vec<usize> = s
            .iter()
            .zip(&ones)
            .map(|(d, one)| if *one { 1 } else { *d })
            .skip(drop)
            .collect();
        (s.clone(), b)
    })
}

fn dims(s: &[usize]) -> String {
    s.iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Checks `loss sum((expr) ^ 2)` with params `a` and `b` of the given shapes.
fn check(
    expr: &str,
    a: &[usize],
    b: &[usize],
    extra: &str,
    seed: u64,
) -> Result<(), TestCaseError> {
    let source = format!(
        "model t {{ dtype f64; {extra} param a: [{}]; param b: [{}]; loss sum(({expr}) ^ 2); }}",
        dims(a),
        dims(b)
    );
    let model = match nnc_ir::compile_source(&source) {
        Ok(mut m) => m.remove(0),
        Err(d) => return Err(TestCaseError::fail(format!("{source}\n{d:?}"))),
    };
    let options = Options {
        seed,
        batch: 3,
        max_samples: 64,
        ..Options::default()
    };
    let report =
        gradcheck(&model, &options).map_err(|e| TestCaseError::fail(format!("{source}: {e}")))?;
    prop_assert!(report.passed(), "{source}\n{report}");
    Ok(())
}

const ELEMENTWISE_BINARY: &[&str] = &[
    "a + b",
    "a - b",
    "a * b",
    "a / (b ^ 2 + 1)",
    "max(a, b)",
    "min(a, b)",
    "where(a > b, a, 2 * b)",
    "where(a <= b, a * b, b)",
    "clip(a, b - 1, b + 1)",
];

const ELEMENTWISE_UNARY: &[&str] = &[
    "-a",
    "exp(a)",
    "log(a ^ 2 + 1)",
    "sqrt(a ^ 2 + 1)",
    "abs(a)",
    "tanh(a)",
    "sigmoid(a)",
    "softplus(a)",
    "a ^ 3",
    "relu(a) + leaky_relu(a, alpha = 0.1) + elu(a) + prelu(a, b)",
    "clip(a, -0.5, 0.5)",
];

const AXIS_OPS: &[&str] = &["sum", "mean", "max", "min", "logsumexp", "var"];

proptest! {
    #![proptest_config(ProptestConfig::with_cases(48))]

    #[test]
    fn elementwise_binary((a, b) in shape().prop_flat_map(broadcast_partner), op in 0..ELEMENTWISE_BINARY.len(), seed in 0u64..1000) {
        check(ELEMENTWISE_BINARY[op], &a, &b, "", seed)?;
        // And with the operands' shapes swapped: broadcasting on the left.
        check(ELEMENTWISE_BINARY[op], &b, &a, "", seed)?;
    }

    #[test]
    fn elementwise_unary(a in shape(), op in 0..ELEMENTWISE_UNARY.len(), seed in 0u64..1000) {
        let b = vec![*a.last().unwrap_or(&1)];
        check(ELEMENTWISE_UNARY[op], &a, &b, "", seed)?;
    }

    #[test]
    fn reductions(a in shape(), op in 0..AXIS_OPS.len(), axis_choice in 0usize..4, keepdims in any::<bool>(), seed in 0u64..1000) {
        let name = AXIS_OPS[op];
        let rank = a.len();
        // Axis None (all), or one axis, sometimes negative.
        let axis = match axis_choice {
            0 => String::new(),
            k => {
                let ax = (k - 1) % rank;
                if k == 3 { format!(", axis = -{}", rank - ax) } else { format!(", axis = {ax}") }
            }
        };
        let expr = format!("{name}(a * b{axis}, keepdims = {keepdims})");
        check(&expr, &a, &[1], "", seed)?;
    }

    /// `std` is `sqrt(var)`: at least two values along each reduced axis, so that
    /// the variance (and the square root's derivative) stays away from zero.
    #[test]
    fn standard_deviation(a in prop::collection::vec(2usize..=4, 1..=3), axis_choice in 0usize..3, keepdims in any::<bool>(), seed in 0u64..1000) {
        let axis = match axis_choice {
            0 => String::new(),
            1 => ", axis = -1".to_string(),
            _ => ", axis = 0".to_string(),
        };
        check(&format!("std(a{axis}, keepdims = {keepdims})"), &a, &[1], "", seed)?;
    }

    #[test]
    fn reductions_over_several_axes(a in prop::collection::vec(1usize..=4, 2..=3), op in 0..AXIS_OPS.len(), keepdims in any::<bool>(), seed in 0u64..1000) {
        // The first and the last axis, the last written negative, in either order.
        let axes = if seed % 2 == 0 { "(0, -1)" } else { "(-1, 0)" };
        let expr = format!("{}(a * b, axis = {axes}, keepdims = {keepdims})", AXIS_OPS[op]);
        check(&expr, &a, &[1], "", seed)?;
    }

    #[test]
    fn normalisers(a in shape(), axis in 0usize..3, log in any::<bool>(), seed in 0u64..1000) {
        let axis = axis % a.len();
        let name = if log { "log_softmax" } else { "softmax" };
        // Weighting by `b` makes the loss depend on each output differently.
        let expr = format!("{name}(a, axis = {axis}) * b");
        check(&expr, &a, &a, "", seed)?;
    }

    #[test]
    fn matmul_every_rank_form(m in 1usize..4, k in 1usize..4, n in 1usize..4, form in 0..4usize, seed in 0u64..1000) {
        let (a, b) = match form {
            0 => (vec![m, k], vec![k, n]),
            1 => (vec![k], vec![k, n]),
            2 => (vec![m, k], vec![k]),
            _ => (vec![k], vec![k]),
        };
        check("a @ b", &a, &b, "", seed)?;
        if a.len() == 2 && b.len() == 2 {
            check("(a @ b).T @ a", &a, &b, "", seed)?;
        }
    }

    #[test]
    fn slices_and_positions(a in prop::collection::vec(2usize..=4, 1..=3), axis in 0usize..3, from in 0usize..4, len in 1usize..4, negative in any::<bool>(), seed in 0u64..1000) {
        // A slice along one axis (its start written from the end when `negative`),
        // and a single position along it, weighted by `b` so each element counts
        // differently.
        let axis = axis % a.len();
        let size = a[axis];
        let start = from % size;
        let stop = (start + len).min(size);
        let lead = ":, ".repeat(axis);
        let begin = if negative { format!("{}", start as i64 - size as i64) } else { start.to_string() };
        let mut part = a.clone();
        part[axis] = stop - start;
        check(&format!("a[{lead}{begin}:{stop}] * b"), &a, &part, "", seed)?;
        check(&format!("a[{lead}{begin}] * b + sum(a)"), &a, &[1], "", seed)?;
    }

    #[test]
    fn concat_and_stack(a in prop::collection::vec(1usize..=3, 1..=3), axis in 0usize..3, extra in 1usize..3, seed in 0u64..1000) {
        let axis = axis % a.len();
        let mut b = a.clone();
        b[axis] = extra;
        let mut joined = a.clone();
        joined[axis] += extra;
        // The joined value weighted elementwise by a third tensor, so that each
        // piece's gradient is a different slice of it.
        let extra_decl = format!("param w: [{}];", dims(&joined));
        check(&format!("concat(a, b * b, axis = {axis}) * w"), &a, &b, &extra_decl, seed)?;
        let along = axis % (a.len() + 1);
        check(&format!("stack(a, a * a, tanh(a), axis = {along})"), &a, &[1], "", seed)?;
    }

    #[test]
    fn reshapes(a in prop::collection::vec(1usize..=4, 1..=3), split in 0usize..3, seed in 0u64..1000) {
        // The elements regrouped: all in one row, or the first axis split in two
        // (with `-1` for the second part), weighted so each element counts
        // differently.
        let count: usize = a.iter().product();
        check(&format!("reshape(a * b, {count}) * reshape(b, ({count}))"), &a, &a, "", seed)?;
        let first = a[0] * 2;
        let parts = if split % 2 == 0 { format!("(2, -1, {})", dims(&a[1..])) } else { format!("({first}, {})", dims(&a[1..])) };
        let parts = parts.replace(", )", ")");
        check(&format!("tanh(reshape(concat(a, b * a, axis = 0), {parts}))"), &a, &a, "", seed)?;
    }

    #[test]
    fn pick_and_one_hot(c in 1usize..5, keepdims in any::<bool>(), seed in 0u64..1000) {
        let extra = format!("dim N; input idx: index[N]; input r: [N, {c}];");
        // `r` has the runtime batch: the check's batch size sets N.
        let expr = format!("pick(r * a, idx, keepdims = {keepdims}) + sum(one_hot(idx, {c}) * r * b)");
        check(&expr, &[c], &[1], &extra, seed)?;
    }
}

/// The check can fail: a model whose "gradients" are swapped is caught.
#[test]
fn gradcheck_catches_a_wrong_gradient() {
    let source = "model t { dtype f64; param x: [] = -2; param z: [] = -4; loss x * z + x; }";
    let model = nnc_ir::compile_source(source).expect("compiles").remove(0);
    let mut derived = nnc_autodiff::with_gradients(&model).expect("derives");
    let (dx, dz) = (derived.grads[0].1, derived.grads[1].1);
    derived.grads = vec![(derived.grads[0].0, dz), (derived.grads[1].0, dx)];
    let report = check_derived(&model, &derived, &Options::default()).expect("runs");
    assert!(!report.passed(), "{report}");
    assert!(
        report.tensors.iter().all(|t| t.max_relative_error > 1e-3),
        "{report}"
    );
    assert!(matches!(derived.grads[0].0, GradOf::Param(_)));
}

#[test]
fn relative_error_counts_nan_as_a_failure() {
    use nnc_autodiff::gradcheck::relative_error;
    assert_eq!(relative_error(f64::NAN, 1.0, 1e-10, 0.0), f64::INFINITY);
    assert_eq!(
        relative_error(1.0, f64::INFINITY, 1e-10, 0.0),
        f64::INFINITY
    );
    assert_eq!(relative_error(2.0, 1.0, 0.0, 0.0), 0.5);
    assert_eq!(relative_error(1.0 + 1e-12, 1.0, 1e-10, 0.0), 0.0);
    // A tiny element is judged against the floor, not itself.
    assert_eq!(relative_error(2e-9, 1e-9, 0.0, 1e-3), 1e-6);
}
