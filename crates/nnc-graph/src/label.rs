//! The text on the picture: numbers as the lecture writes them, summaries of large
//! tensors, and the names of gates.

use nnc_ir::interp::Value;
use nnc_ir::{BinaryOp, Model, NodeId, Op, ReduceOp, UnaryOp};

/// Tensors with at most this many elements are written out in full; larger ones get
/// their shape and a summary.
pub const MAX_LISTED: usize = 6;

/// A number as the lecture writes it: integers as such (`3`, `-12`), others with two
/// decimals (`0.73`, `-0.20`), and the very large or small in scientific notation
/// with three significant digits (`1.23e-4`).
pub fn number(v: f64) -> String {
    if !v.is_finite() {
        return if v.is_nan() {
            "NaN".to_string()
        } else if v > 0.0 {
            "inf".to_string()
        } else {
            "-inf".to_string()
        };
    }
    let magnitude = v.abs();
    let text = if v == v.round() && magnitude < 1e6 {
        format!("{v:.0}")
    } else if (0.01..1e4).contains(&magnitude) {
        format!("{v:.2}")
    } else {
        format!("{v:.2e}")
    };
    // `-0` and `-0.00` say nothing a reader needs.
    if text.starts_with('-') && text[1..].chars().all(|c| c == '0' || c == '.') {
        text[1..].to_string()
    } else {
        text
    }
}

/// A value for a wire: the numbers themselves when there are few, else the shape and
/// mean, standard deviation and largest magnitude.
pub fn value(value: &Value<f64>) -> String {
    match value {
        Value::Float(a) => floats(a.shape(), a.iter().copied(), true),
        Value::Index(a) if a.len() <= MAX_LISTED => {
            let items: Vec<String> = a.iter().map(usize::to_string).collect();
            listed(a.shape(), &items)
        }
        Value::Index(a) => format!("{} indices", shape(a.shape())),
    }
}

/// Floats: listed in full when there are few, else summarised, with the shape first
/// if `with_shape` (a gradient's summary leaves it to the value's, above it).
pub fn floats(
    dims: &[usize],
    values: impl ExactSizeIterator<Item = f64> + Clone,
    with_shape: bool,
) -> String {
    let count = values.len();
    if count <= MAX_LISTED {
        let items: Vec<String> = values.map(number).collect();
        return listed(dims, &items);
    }
    let n = count as f64;
    let mean = values.clone().sum::<f64>() / n;
    let var = values.clone().map(|v| (v - mean) * (v - mean)).sum::<f64>() / n;
    let largest = values.fold(0.0_f64, |m, v| m.max(v.abs()));
    let stats = format!(
        "μ {} σ {} max|·| {}",
        brief(mean),
        brief(var.sqrt()),
        brief(largest)
    );
    if with_shape {
        format!("{} {stats}", shape(dims))
    } else {
        stats
    }
}

/// A summary statistic: as [`number`], but two significant digits in scientific
/// notation (`-8.5e-4`), to keep a summary short.
fn brief(v: f64) -> String {
    let magnitude = v.abs();
    if v.is_finite() && magnitude != 0.0 && !(0.01..1e4).contains(&magnitude) {
        format!("{v:.1e}")
    } else {
        number(v)
    }
}

fn listed(dims: &[usize], items: &[String]) -> String {
    if dims.is_empty() {
        items.first().cloned().unwrap_or_default()
    } else {
        format!("[{}]", items.join(", "))
    }
}

/// `[64×100]`.
pub fn shape(dims: &[usize]) -> String {
    let dims: Vec<String> = dims.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join("×"))
}

/// A scalar leaf folded into the label of the gate that uses it: a constant's value,
/// a runtime dim's name.
pub fn folded_constant(model: &Model, n: NodeId) -> Option<String> {
    let node = model.node(n);
    if !node.ty.shape.is_empty() {
        return None;
    }
    match node.op {
        Op::Const(v) => Some(number(v)),
        Op::DimSize(d) => Some(model.dim_name(d).to_string()),
        _ => None,
    }
}

/// The gate an op is drawn as. `constant` is the operand folded into the label, with
/// its position (`+1` for `x + 1`, `1/x` for `1 / x`), as the lecture draws them.
pub fn gate(op: &Op, constant: Option<(usize, &str)>) -> String {
    match (op, constant) {
        (Op::Binary(b), Some((position, c))) => folded_binary(*b, position, c),
        (Op::Unary(UnaryOp::Neg), _) => "*-1".to_string(),
        (Op::Unary(u), _) => u.name().to_string(),
        (Op::Powf(c), _) => format!("x^{}", nnc_ir::print::number(*c)),
        (Op::Binary(b), None) => b.symbol().unwrap_or(b.name()).to_string(),
        (Op::Compare(c), _) => c.symbol().to_string(),
        (Op::Select, _) => "where".to_string(),
        (Op::Reduce { op, axis, .. }, _) => {
            let name = match op {
                ReduceOp::Sum => "sum",
                ReduceOp::Max => "max",
                ReduceOp::Min => "min",
                ReduceOp::LogSumExp => "logsumexp",
            };
            match axis {
                Some(a) => format!("{name} axis {a}"),
                None => name.to_string(),
            }
        }
        (Op::Softmax { .. }, _) => "softmax".to_string(),
        (Op::LogSoftmax { .. }, _) => "log_softmax".to_string(),
        (Op::MatMul, _) => "@".to_string(),
        (Op::Transpose, _) => ".T".to_string(),
        (other, _) => other.mnemonic(),
    }
}

/// What a node computes, for its tooltip: `w0 * x0 + w1 * x1`, operands by their
/// names where they have one, cut to about [`EXPRESSION_CHARS`] (values shared many
/// times over would otherwise write out exponentially long).
pub fn expression(model: &Model, n: NodeId) -> String {
    let mut budget = EXPRESSION_CHARS;
    let (text, _) = written(model, n, 0, &mut budget);
    if budget == 0 {
        format!("{text}…")
    } else {
        text
    }
}

/// How much of an expression a tooltip writes out.
pub const EXPRESSION_CHARS: usize = 80;

/// How tightly an infix operator binds (atoms and calls bind tightest).
fn precedence(op: &Op) -> u8 {
    match op {
        Op::Binary(BinaryOp::Add | BinaryOp::Sub) => 1,
        Op::Binary(BinaryOp::Mul | BinaryOp::Div) => 2,
        Op::MatMul => 3,
        _ => 4,
    }
}

/// How many operations deep a tooltip's expression goes.
const EXPRESSION_DEPTH: usize = 8;

/// The text of `n` and how tightly it binds, `depth` operations below the top;
/// spends `budget` on what it writes.
fn written(model: &Model, n: NodeId, depth: usize, budget: &mut usize) -> (String, u8) {
    let node = model.node(n);
    let top = depth == 0;
    let atom = match (&node.op, &node.name) {
        (Op::Param(p), _) => Some(model.params[p.0 as usize].name.clone()),
        (Op::Input(i), _) => Some(model.inputs[i.0 as usize].name.clone()),
        (_, Some(name)) if !top => Some(name.clone()),
        (Op::Const(v), _) => Some(number(*v)),
        (Op::DimSize(d), _) => Some(model.dim_name(*d).to_string()),
        _ if *budget == 0 || depth == EXPRESSION_DEPTH => {
            *budget = 0;
            Some("…".to_string())
        }
        _ => None,
    };
    if let Some(atom) = atom {
        *budget = budget.saturating_sub(atom.len());
        return (atom, 4);
    }
    *budget = budget.saturating_sub(3);
    let op = &node.op;
    let mut args = Vec::with_capacity(node.args.len());
    for a in &node.args {
        args.push(written(model, *a, depth + 1, budget));
    }
    let symbol = match op {
        Op::Binary(b) => b.symbol(),
        Op::MatMul => Some("@"),
        _ => None,
    };
    let mine = precedence(op);
    match (symbol, args.as_slice()) {
        (Some(symbol), [(a, pa), (b, pb)]) => {
            // Left-associative: a right operand of the same precedence needs
            // parentheses (`a - (b - c)`), a left one does not.
            let a = if *pa < mine {
                format!("({a})")
            } else {
                a.clone()
            };
            let b = if *pb <= mine && *pb < 4 {
                format!("({b})")
            } else {
                b.clone()
            };
            (format!("{a} {symbol} {b}"), mine)
        }
        (_, [(a, pa)]) if matches!(op, Op::Unary(UnaryOp::Neg)) => {
            let a = if *pa < 4 { format!("({a})") } else { a.clone() };
            (format!("-{a}"), 4)
        }
        _ => {
            let args: Vec<&str> = args.iter().map(|(a, _)| a.as_str()).collect();
            (format!("{}({})", gate(op, None), args.join(", ")), 4)
        }
    }
}

/// `x + 1` as `+1`, `1 / x` as `1/x`, `max(x, 0)` as `max(·, 0)`.
fn folded_binary(op: BinaryOp, position: usize, c: &str) -> String {
    let constant_first = position == 0;
    match op {
        BinaryOp::Add => format!("+{c}"),
        BinaryOp::Mul => format!("*{c}"),
        BinaryOp::Sub if constant_first => format!("{c}-x"),
        BinaryOp::Sub => format!("-{c}"),
        BinaryOp::Div if constant_first => format!("{c}/x"),
        BinaryOp::Div => format!("/{c}"),
        BinaryOp::Max | BinaryOp::Min if constant_first => format!("{}({c}, ·)", op.name()),
        BinaryOp::Max | BinaryOp::Min => format!("{}(·, {c})", op.name()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_read_like_the_lecture() {
        let cases = [
            (3.0, "3"),
            (-12.0, "-12"),
            (0.7310585786, "0.73"),
            (-0.19661193, "-0.20"),
            (0.393, "0.39"),
            (-0.0, "0"),
            (-0.001, "-1.00e-3"),
            (123456.7, "1.23e5"),
            (1e-12, "1.00e-12"),
            (-0.0000001, "-1.00e-7"),
            (f64::NAN, "NaN"),
            (f64::NEG_INFINITY, "-inf"),
        ];
        for (v, text) in cases {
            assert_eq!(number(v), text, "{v}");
        }
    }

    #[test]
    fn small_tensors_are_listed_and_large_ones_summarised() {
        assert_eq!(
            floats(&[3], [1.0, -0.5, 2.25].into_iter(), true),
            "[1, -0.50, 2.25]"
        );
        assert_eq!(floats(&[], [0.5].into_iter(), true), "0.50");
        let many: Vec<f64> = (0..8).map(f64::from).collect();
        // mean 3.5, population std sqrt(5.25) = 2.29, largest 7.
        assert_eq!(
            floats(&[2, 4], many.clone().into_iter(), true),
            "[2×4] μ 3.50 σ 2.29 max|·| 7"
        );
        let tiny = many.iter().map(|v| v * 1e-4);
        assert_eq!(
            floats(&[2, 4], tiny, false),
            "μ 3.5e-4 σ 2.3e-4 max|·| 7.0e-4"
        );
    }

    #[test]
    fn constants_fold_into_the_gate() {
        assert_eq!(gate(&Op::Binary(BinaryOp::Add), Some((0, "1"))), "+1");
        assert_eq!(gate(&Op::Binary(BinaryOp::Div), Some((0, "1"))), "1/x");
        assert_eq!(gate(&Op::Binary(BinaryOp::Div), Some((1, "N"))), "/N");
        assert_eq!(
            gate(&Op::Binary(BinaryOp::Max), Some((1, "0"))),
            "max(·, 0)"
        );
        assert_eq!(gate(&Op::Unary(UnaryOp::Neg), None), "*-1");
        assert_eq!(gate(&Op::Binary(BinaryOp::Mul), None), "*");
    }

    #[test]
    fn expressions_are_written_with_few_parentheses_and_bounded() {
        let source = "model m { dtype f64; param a: [] = 1; param b: [] = 2; param c: [] = 3;
            let d = a - (b - c) * -(a + b); loss d; }";
        let model = &nnc_ir::compile_source(source).expect("compiles")[0];
        assert_eq!(expression(model, model.loss), "a - (b - c) * -(a + b)");
        // Each value used twice by the next, unnamed: written out in full it would
        // double at each level (2^40 leaves); the budget cuts it short.
        let mut deep = String::from("fn f0(x) = exp(x);");
        for i in 1..40 {
            deep.push_str(&format!("fn f{i}(x) = f{}(x) * f{}(x);", i - 1, i - 1));
        }
        deep.push_str("model m { dtype f64; param a: [] = 1; loss f39(a); }");
        let model = &nnc_ir::compile_source(&deep).expect("compiles")[0];
        let text = expression(model, model.loss);
        assert!(text.starts_with("… * …"), "{text}");
        assert!(
            text.ends_with('…') && text.len() < 4 * EXPRESSION_CHARS,
            "{text}"
        );
        assert!(expression(model, model.loss).chars().count() <= EXPRESSION_CHARS + 1);
    }
}
