//! Golden snapshots: the IR text of every spec model, and the whole rendered
//! diagnostic of each class of shape error lowering reports.

mod common;

use common::{compile, model_files};
use nnc_ir::print::print;
use nnc_syntax::diagnostic::LineIndex;

/// The IR of every model of every spec file, one snapshot per file.
#[test]
fn ir_of_every_spec_model() {
    for (file, source) in model_files() {
        let located = LineIndex::new(&source);
        let text: String = compile(&source)
            .iter()
            .map(|m| print(m, Some(&located)))
            .collect::<Vec<_>>()
            .join("\n");
        let stem = file.trim_end_matches(".nn");
        insta::assert_snapshot!(format!("ir_{stem}"), text);
    }
}

/// A program that must fail to lower: its rendered diagnostics, snapshotted.
#[track_caller]
fn check_error(name: &str, source: &str) {
    match nnc_ir::compile_source(source) {
        Ok(models) => panic!(
            "`{name}` should not compile, but gave {} models",
            models.len()
        ),
        Err(diagnostics) => {
            let rendered = nnc_syntax::render(&diagnostics, "test.nn", source);
            insta::with_settings!({ description => source, omit_expression => true }, {
                insta::assert_snapshot!(format!("error_{name}"), rendered);
            });
        }
    }
}

#[test]
fn matmul_inner_dims_differ() {
    check_error(
        "matmul_inner_dims",
        "model m {
    dim N;
    input x: [N, 10];
    param w: [5, 10] = xavier;
    loss sum(x @ w);
}
",
    );
}

#[test]
fn broadcast_dims_differ() {
    check_error(
        "broadcast_mismatch",
        "model m {
    dim N;
    input a: [N, 3];
    input b: [N, 4];
    loss sum(a + b);
}
",
    );
}

#[test]
fn transpose_of_a_vector() {
    check_error(
        "transpose_non_matrix",
        "model m {
    dim N;
    input v: [N];
    loss sum(v.T);
}
",
    );
}

#[test]
fn axis_out_of_range() {
    check_error(
        "bad_axis",
        "model m {
    dim N;
    input x: [N, 3];
    loss sum(sum(x, axis = 2));
}
",
    );
}

#[test]
fn initialiser_argument_from_a_tensor() {
    check_error(
        "init_from_tensor",
        "model m {
    dim N, D = 4;
    input x: [N, D];
    param w: [D, 2] = normal(0, sum(x));
    loss sum(x @ w);
}
",
    );
}

#[test]
fn axis_given_twice() {
    // `1` and `-1` are the same axis of a rank-2 value.
    check_error(
        "axis_twice",
        "model m {
    param s: [2, 3] = zeros;
    loss sum(s, axis = (1, -1));
}
",
    );
}

#[test]
fn axis_tuple_longer_than_any_rank() {
    check_error(
        "axis_tuple_too_long",
        "model m {
    param s: [2, 3] = zeros;
    loss sum(s, axis = (0, 1, 0, 1, 0));
}
",
    );
}

#[test]
fn axis_tuple_where_one_axis_is_taken() {
    check_error(
        "axis_tuple_for_softmax",
        "model m {
    param s: [2, 3] = zeros;
    let p = softmax(s, axis = (0, 1));
    loss sum(p);
}
",
    );
}

#[test]
fn loss_not_a_scalar() {
    check_error(
        "non_scalar_loss",
        "model m {
    dim N;
    input x: [N, 3];
    loss x * 2;
}
",
    );
}

#[test]
fn pick_with_float_indices() {
    check_error(
        "pick_float_indices",
        "model m {
    dim N;
    input x: [N, 3];
    input y: [N];
    loss sum(pick(x, y));
}
",
    );
}

#[test]
fn power_with_a_tensor_exponent() {
    check_error(
        "pow_tensor_exponent",
        "model m {
    dim N;
    input x: [N];
    loss sum(x ^ x);
}
",
    );
}

#[test]
fn param_with_a_runtime_dim() {
    check_error(
        "param_runtime_dim",
        "model m {
    dim N;
    input x: [N, 3];
    param w: [N, 3] = xavier;
    loss sum(x * w);
}
",
    );
}

#[test]
fn runtime_dim_no_input_binds() {
    check_error(
        "unbound_runtime_dim",
        "model m {
    dim N, M;
    input x: [N, 3];
    loss sum(x) / M;
}
",
    );
}

#[test]
fn shape_error_inside_a_user_fn() {
    check_error(
        "inside_user_fn",
        "fn dense(x, w, b) = x @ w + b;

model m {
    dim N;
    input x: [N, 4];
    param w: [3, 5] = xavier;
    param b: [5] = zeros;
    loss sum(dense(x, w, b));
}
",
    );
}

#[test]
fn shape_error_inside_a_prelude_fn() {
    check_error(
        "inside_prelude_fn",
        "model m {
    dim N;
    input x: [N];
    input labels: index[N];
    loss softmax_cross_entropy(x, labels);
}
",
    );
}

#[test]
fn index_tensor_in_arithmetic() {
    check_error(
        "index_in_arithmetic",
        "model m {
    dim N;
    input x: [N];
    input labels: index[N];
    loss sum(x + labels * 2);
}
",
    );
}

// ---- element counts: an error at the declaration or operation, never a wrapped count

#[test]
fn parameter_with_too_many_elements() {
    check_error(
        "param_too_many_elements",
        "model m {
    dim A = 1099511627776;
    param w: [A, A];
    loss mean(w);
}
",
    );
}

#[test]
fn input_whose_element_count_wraps_64_bits() {
    // 2^32 * (2^32 + 1) wraps to 2^32 in 64 bits.
    check_error(
        "input_count_wraps",
        "model m {
    dim N, A = 4294967296, B = 4294967297;
    input x: [N, A, B];
    loss mean(x);
}
",
    );
}

#[test]
fn broadcast_making_too_many_elements() {
    check_error(
        "broadcast_too_many_elements",
        "model m {
    dim A = 33554432;
    input a: [A, 1];
    input b: [A];
    loss mean(a * b);
}
",
    );
}

#[test]
fn one_hot_making_too_many_elements() {
    check_error(
        "one_hot_too_many_elements",
        "model m {
    dim N, C = 1099511627776;
    input labels: index[N, 1048576];
    loss sum(one_hot(labels, C));
}
",
    );
}

/// Every way an index or a join can be wrong, one model each: the message names
/// the axis, its size and the position, at the item written.
#[test]
fn indexing_errors() {
    let cases = [
        ("index_out_of_range", "let c = s[:, 3];"),
        ("index_negative_out_of_range", "let c = s[:, -4];"),
        ("slice_past_the_end", "let c = s[:, 1:5];"),
        ("slice_empty", "let c = s[:, 2:1];"),
        ("slice_step", "let c = s[:, 0:3:2];"),
        ("index_runtime_axis", "let c = s[0];"),
        ("index_not_an_integer", "let c = s[:, 1.5];"),
        ("index_by_a_tensor", "let c = s[:, t];"),
        ("index_too_many_items", "let c = s[:, 0, 1];"),
        ("concat_shapes_differ", "let c = concat(s, t, axis = 1);"),
        ("concat_runtime_axis", "let c = concat(s, s);"),
        ("stack_shapes_differ", "let c = stack(s, s[:, 0:2]);"),
        ("reshape_count_differs", "let c = reshape(s, (N, 2, 2));"),
        ("reshape_runtime_dim_lost", "let c = reshape(s, (3, 2));"),
        ("reshape_two_unknowns", "let c = reshape(s, (-1, -1));"),
        ("reshape_not_a_shape", "let c = reshape(s, s);"),
    ];
    for (name, line) in cases {
        let source = format!(
            "model m {{\n    dim N;\n    input s: [N, 3];\n    input t: [N, 2, 1];\n    {line}\n    loss sum(c);\n}}\n"
        );
        check_error(name, &source);
    }
}

/// A shape's size must be a positive integer known when the model compiles.
#[test]
fn shape_expression_errors() {
    let cases = [
        ("shape_of_a_runtime_dim", "[2 * N, 3]"),
        ("shape_not_an_integer", "[H / 3, 3]"),
        ("shape_zero", "[H - 4, 2]"),
    ];
    for (name, shape) in cases {
        let source = format!(
            "model m {{\n    dim N, H = 4;\n    input x: [N, H];\n    param a: {shape} = normal(0, 1);\n    loss sum(a);\n}}\n"
        );
        check_error(name, &source);
    }
}

/// A loop's errors: its range must be known when compiling and count up; its body
/// keeps the carried value's shape; an error inside the body names the step it
/// happened at; loops may not run without bound.
#[test]
fn loop_errors() {
    let model = |body: &str| {
        format!(
            "model m {{
    dim N, D = 4, L = 3;
    input x: [N, D];
    param w: [L, D, D] = xavier;
    param v: [D, 2] = xavier;
    {body}
    loss sum(h);
}}
"
        )
    };
    let cases = [
        (
            "loop_index_out_of_range",
            "let h = for l in 0..L + 1 from x { tanh(h @ w[l]) };",
        ),
        (
            "loop_runtime_range",
            "let h = for l in 0..N from x { tanh(h @ w[0]) };",
        ),
        (
            "loop_backwards",
            "let h = for l in L..0 from x { tanh(h @ w[l]) };",
        ),
        (
            "loop_fractional_range",
            "let h = for l in 0..2.5 from x { tanh(h @ w[0]) };",
        ),
        (
            "loop_changes_shape",
            "let h = for l in 0..L from x { tanh(h @ v) };",
        ),
        (
            "loop_steps_of_no_steps",
            "let g, gs = for l in 0..0 from x { g * 2 }; let h = g + gs;",
        ),
        (
            "loop_steps_of_numbers",
            "let k, ks = for l in 0..3 from 0 { k + 1 }; let h = x * k;",
        ),
        (
            "loop_too_many_steps",
            "let h = for i in 0..1000 from x {
        let g = for j in 0..1000 from h { g * 0.5 };
        g
    };",
        ),
    ];
    for (name, body) in cases {
        check_error(name, &model(body));
    }
}

// ---- train and eval modes -----------------------------------------------------------

#[test]
fn state_with_a_random_initialiser() {
    check_error(
        "state_random_init",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    state mu: [D] = xavier;
    loss sum(x - mu);
}
",
    );
}

#[test]
fn state_with_a_runtime_dim() {
    check_error(
        "state_runtime_dim",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    state mu: [N, D] = zeros;
    loss sum(x - mu);
}
",
    );
}

#[test]
fn dropout_probability_out_of_range() {
    check_error(
        "dropout_p_out_of_range",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    param w: [D] = zeros;
    loss sum(dropout(x, 1) @ w);
}
",
    );
}

#[test]
fn dropout_probability_not_a_constant() {
    check_error(
        "dropout_p_not_constant",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    param w: [D] = zeros;
    param p: [] = 0.5;
    loss sum(dropout(x, p) @ w);
}
",
    );
}

#[test]
fn batch_norm_given_a_param_for_its_running_mean() {
    check_error(
        "batch_norm_param_as_state",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    param gamma: [D] = ones;
    param beta: [D] = zeros;
    param mu: [D] = zeros;
    state var: [D] = ones;
    loss sum(batch_norm(x, gamma, beta, mu, var));
}
",
    );
}

#[test]
fn batch_norm_updating_a_state_twice() {
    check_error(
        "batch_norm_state_twice",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    param gamma: [D] = ones;
    param beta: [D] = zeros;
    state mu: [D] = zeros;
    state var: [D] = ones;
    let a = batch_norm(x, gamma, beta, mu, var);
    loss sum(batch_norm(a, gamma, beta, mu, var));
}
",
    );
}

#[test]
fn batch_norm_momentum_out_of_range() {
    check_error(
        "batch_norm_momentum",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    param gamma: [D] = ones;
    param beta: [D] = zeros;
    state mu: [D] = zeros;
    state var: [D] = ones;
    loss sum(batch_norm(x, gamma, beta, mu, var, momentum = 1));
}
",
    );
}

#[test]
fn batch_norm_statistics_of_the_wrong_shape() {
    check_error(
        "batch_norm_state_shape",
        "model m {
    dim N, D = 3;
    input x: [N, D];
    param gamma: [D] = ones;
    param beta: [D] = zeros;
    state mu: [4] = zeros;
    state var: [D] = ones;
    loss sum(batch_norm(x, gamma, beta, mu, var));
}
",
    );
}
