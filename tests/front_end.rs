//! The `.nn` front end, end to end: the spec's models are accepted, every malformed
//! program of `tests/diagnostics/` gets the diagnostics snapshotted beside it, pointing
//! where its first line says, and the precedence table of the README holds.

use nnc_syntax::ast::{ExprKind, IndexItem, Item, Stmt};
use nnc_syntax::diagnostic::line_col;
use nnc_syntax::{parse_and_check, render};
use std::path::{Path, PathBuf};

fn root() -> &'static Path {
    Path::new(env!("CARGO_MANIFEST_DIR"))
}

/// The `.nn` files of a directory, sorted by name.
fn nn_files(dir: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .map(|entry| entry.expect("a directory entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    files.sort();
    files
}

fn stem(path: &Path) -> String {
    path.file_stem()
        .expect("a file name")
        .to_string_lossy()
        .into_owned()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path).unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()))
}

// ---- the spec's models ------------------------------------------------------------

/// Every copy of a spec model parses and checks clean, and holds the models its
/// comments describe.
#[test]
fn spec_models_are_accepted() {
    let expected: &[(&str, &[&str])] = &[
        ("activations", &["activations"]),
        // deep_tanh as a loop over a stack: the one example that is not a spec copy.
        // The deep network with dropout and batch norm (train and eval modes).
        ("deep_dropout_bn", &["deep"]),
        ("deep_stack", &["deep_stack"]),
        ("deep_tanh", &["deep_tanh"]),
        ("gates", &["add_mul", "neuron", "neuron_gate"]),
        (
            "logistic",
            &["logistic_regression", "linear_svm", "least_squares"],
        ),
        ("mlp784", &["mlp784"]),
        ("spiral", &["spiral"]),
        ("svm", &["svm", "svm_spelled_out"]),
        ("three_layer", &["three_layer"]),
        ("two_layer", &["two_layer"]),
    ];
    let files = nn_files(&root().join("examples/models"));
    let names: Vec<String> = files.iter().map(|p| stem(p)).collect();
    let expected_names: Vec<&str> = expected.iter().map(|(n, _)| *n).collect();
    assert_eq!(
        names, expected_names,
        "examples/models/ holds a copy of each spec model, deep_stack and deep_dropout_bn"
    );
    for (path, (_, models)) in files.iter().zip(expected) {
        let source = read(path);
        let (file, diagnostics) = parse_and_check(&source);
        let name = path.file_name().unwrap().to_string_lossy();
        assert!(
            diagnostics.is_empty(),
            "{name} must check clean:\n{}",
            render(&diagnostics, &name, &source)
        );
        let found: Vec<&str> = file.models().map(|m| m.name.name.as_str()).collect();
        assert_eq!(&found, models, "models of {name}");
        for m in file.models() {
            let losses = m
                .stmts
                .iter()
                .filter(|s| matches!(s, Stmt::Loss(_)))
                .count();
            assert_eq!(losses, 1, "{name}: model `{}` has one loss", m.name.name);
        }
    }
}

/// A few facts of the spec models that the parser must get right, beyond "no errors".
#[test]
fn spec_model_details() {
    let source = read(&root().join("examples/models/spiral.nn"));
    let (file, _) = parse_and_check(&source);
    assert_eq!(
        file.fns().map(|f| f.name.name.as_str()).collect::<Vec<_>>(),
        ["dense"]
    );
    let spiral = file.models().next().unwrap();
    let dims: Vec<(String, Option<f64>)> = spiral
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Dim(dims) => Some(dims),
            _ => None,
        })
        .flatten()
        .map(|d| (d.name.name.clone(), d.size.map(|n| n.value)))
        .collect();
    let expected = [
        ("N", None),
        ("D", Some(2.0)),
        ("H", Some(100.0)),
        ("K", Some(3.0)),
    ];
    let expected: Vec<(String, Option<f64>)> =
        expected.iter().map(|(n, s)| (n.to_string(), *s)).collect();
    assert_eq!(dims, expected);
    // `output predicted = argmax(scores, axis = 1);` keeps its keyword argument.
    let predicted = spiral
        .stmts
        .iter()
        .find_map(|s| match s {
            Stmt::Output(o) if o.name.name == "predicted" => o.value.as_ref(),
            _ => None,
        })
        .expect("an output `predicted` with a value");
    let ExprKind::Call { func, args } = &predicted.kind else {
        panic!("a call: {predicted:?}")
    };
    assert_eq!(func.name, "argmax");
    assert_eq!(args.len(), 2);
    assert_eq!(
        args[1].keyword.as_ref().map(|k| k.name.as_str()),
        Some("axis")
    );
    assert_eq!(&source[predicted.span.range()], "argmax(scores, axis = 1)");
}

// ---- malformed programs -------------------------------------------------------------

/// The `// expect: L:C` header of a corpus file.
fn expected_location(name: &str, source: &str) -> (usize, usize) {
    let first = source.lines().next().unwrap_or("");
    let rest = first
        .strip_prefix("// expect: ")
        .unwrap_or_else(|| panic!("{name}: the first line must be `// expect: LINE:COL`"));
    let (line, col) = rest
        .trim()
        .split_once(':')
        .unwrap_or_else(|| panic!("{name}: bad header"));
    (
        line.parse().expect("a line number"),
        col.parse().expect("a column number"),
    )
}

/// Every file of `tests/diagnostics/` gets at least one diagnostic, the first one at
/// the line and column its header names; the whole rendered output is snapshotted.
#[test]
fn diagnostics_corpus() {
    let files = nn_files(&root().join("tests/diagnostics"));
    assert!(files.len() >= 30, "the corpus has {} files", files.len());
    let mut wrong = Vec::new();
    let mut rendered = Vec::new();
    for path in &files {
        let name = stem(path);
        let file_name = format!("{name}.nn");
        let source = read(path);
        let expected = expected_location(&name, &source);
        let (_, diagnostics) = parse_and_check(&source);
        let Some(first) = diagnostics.first() else {
            wrong.push(format!("{file_name}: no diagnostic"));
            continue;
        };
        let found = line_col(&source, first.span.start);
        if found != expected {
            wrong.push(format!(
                "{file_name}: first diagnostic `{}` at {}:{}, expected {}:{}",
                first.message, found.0, found.1, expected.0, expected.1
            ));
        }
        let text = render(&diagnostics, &file_name, &source);
        let location = format!("{file_name}:{}:{}", expected.0, expected.1);
        if !text.contains(&location) {
            wrong.push(format!(
                "{file_name}: the rendering does not name {location}"
            ));
        }
        if text.matches("Error:").count() != diagnostics.len() {
            wrong.push(format!("{file_name}: not every diagnostic was rendered"));
        }
        rendered.push((name, path.clone(), text));
    }
    // A snapshot whose program is gone is stale.
    let names: Vec<&str> = rendered.iter().map(|(name, _, _)| name.as_str()).collect();
    let snapshots = std::fs::read_dir(root().join("tests/snapshots")).expect("tests/snapshots/");
    for entry in snapshots {
        let file = entry
            .expect("a directory entry")
            .file_name()
            .to_string_lossy()
            .into_owned();
        let corpus_name = file
            .strip_prefix("front_end__diagnostics__")
            .and_then(|f| f.strip_suffix(".snap"));
        if let Some(name) = corpus_name.filter(|n| !names.contains(n)) {
            wrong.push(format!(
                "tests/snapshots/{file}: no tests/diagnostics/{name}.nn"
            ));
        }
    }
    assert!(wrong.is_empty(), "wrong diagnostics:\n{}", wrong.join("\n"));
    for (name, path, text) in rendered {
        insta::with_settings!({ input_file => path, omit_expression => true }, {
            insta::assert_snapshot!(format!("diagnostics__{name}"), text);
        });
    }
}

/// Semantic errors are all found in one run, and come in source order.
#[test]
fn several_errors_in_one_run() {
    let source = read(&root().join("tests/diagnostics/sem_several_errors.nn"));
    let (_, diagnostics) = parse_and_check(&source);
    let messages: Vec<&str> = diagnostics.iter().map(|d| d.message.as_str()).collect();
    assert_eq!(
        messages,
        [
            "unknown initialiser `xavir`",
            "`dense` is missing argument `b`",
            "unknown name `w2`",
            "unknown name `label`",
        ]
    );
    let starts: Vec<usize> = diagnostics.iter().map(|d| d.span.start).collect();
    assert!(
        starts.is_sorted(),
        "diagnostics in source order: {starts:?}"
    );
}

// ---- precedence ----------------------------------------------------------------------

/// An expression as an s-expression, to check how the parser grouped it.
fn sexp(e: &nnc_syntax::ast::Expr) -> String {
    match &e.kind {
        ExprKind::Number(n) => format!("{}", n.value),
        ExprKind::Bool(b) => b.to_string(),
        ExprKind::Name(n) => n.clone(),
        ExprKind::Neg(x) => format!("(neg {})", sexp(x)),
        ExprKind::Transpose(x) => format!("(T {})", sexp(x)),
        ExprKind::Tuple(items) => {
            let items: Vec<String> = items.iter().map(sexp).collect();
            format!("(tuple {})", items.join(" "))
        }
        ExprKind::Binary { op, lhs, rhs, .. } => {
            format!("({} {} {})", op.symbol(), sexp(lhs), sexp(rhs))
        }
        ExprKind::Call { func, args } => {
            let args: Vec<String> = args
                .iter()
                .map(|a| match &a.keyword {
                    Some(k) => format!("{}={}", k.name, sexp(&a.value)),
                    None => sexp(&a.value),
                })
                .collect();
            format!("({} {})", func.name, args.join(" "))
        }
        ExprKind::Index { base, items } => {
            let items: Vec<String> = items
                .iter()
                .map(|item| match item {
                    IndexItem::At(e) => sexp(e),
                    IndexItem::Range {
                        start, stop, step, ..
                    } => {
                        let bound = |b: &Option<nnc_syntax::ast::Expr>| {
                            b.as_ref().map_or(String::new(), sexp)
                        };
                        let step = step
                            .as_ref()
                            .map_or(String::new(), |s| format!(":{}", sexp(s)));
                        format!("{}:{}{step}", bound(start), bound(stop))
                    }
                })
                .collect();
            format!("(index {} {})", sexp(base), items.join(" "))
        }
        ExprKind::Loop(lp) => {
            let lets: Vec<String> = lp
                .body
                .lets
                .iter()
                .map(|l| format!("(let {} {}) ", l.name.name, sexp(&l.value)))
                .collect();
            let steps = lp
                .steps
                .as_ref()
                .map_or(String::new(), |s| format!(",{}", s.name));
            format!(
                "(for {}{steps} {} {} {} {} {}{})",
                lp.carried.name,
                lp.index.name,
                sexp(&lp.start),
                sexp(&lp.end),
                sexp(&lp.from),
                lets.concat(),
                sexp(&lp.body.value)
            )
        }
        ExprKind::Error => "<error>".to_string(),
    }
}

/// Parses `expr` as the loss of a one-model file and gives its grouping.
fn grouping(expr: &str) -> String {
    let source = format!(
        "model m {{ dim N = 2; param a: [N, N] = 1; param b: [N, N] = 1; param c: [N, N] = 1;\n\
         loss {expr}; }}"
    );
    let (file, diagnostics) = parse_and_check(&source);
    assert!(
        diagnostics.is_empty(),
        "`{expr}`:\n{}",
        render(&diagnostics, "expr.nn", &source)
    );
    let Some(Item::Model(m)) = file.items.first() else {
        panic!("a model")
    };
    let Some(Stmt::Loss(loss)) = m.stmts.last() else {
        panic!("a loss")
    };
    sexp(&loss.value)
}

#[test]
fn precedence_and_associativity() {
    let table = [
        ("a + b * c", "(+ a (* b c))"),
        ("a - b - c", "(- (- a b) c)"),
        ("a * b @ c", "(@ (* a b) c)"),
        ("a / b / c", "(/ (/ a b) c)"),
        ("-a ^ 2", "(neg (^ a 2))"),
        ("a ^ b ^ c", "(^ a (^ b c))"),
        ("a ^ -2", "(^ a (neg 2))"),
        ("-a @ b", "(@ (neg a) b)"),
        ("a.T @ b", "(@ (T a) b)"),
        ("a.T.T", "(T (T a))"),
        ("a ^ 2.0 * b", "(* (^ a 2) b)"),
        ("(a + b) * c", "(* (+ a b) c)"),
        ("a + b > c * 2", "(> (+ a b) (* c 2))"),
        ("a <= b", "(<= a b)"),
        (
            "sum(a, axis = -1, keepdims = true)",
            "(sum a axis=(neg 1) keepdims=true)",
        ),
        ("- -a", "(neg (neg a))"),
        ("exp(a).T", "(T (exp a))"),
        // A tuple has a comma; parentheses alone group.
        ("sum(a, axis = (0, -1))", "(sum a axis=(tuple 0 (neg 1)))"),
        ("sum(a, axis = (1,))", "(sum a axis=(tuple 1))"),
        ("sum(a, axis = (1))", "(sum a axis=1)"),
        // Indexing binds like `.T`, tighter than `^` and `-`.
        ("-a[0] ^ 2", "(neg (^ (index a 0) 2))"),
        ("a[:, 1:]", "(index a : 1:)"),
        ("a[-1, :2].T", "(T (index a (neg 1) :2))"),
        ("a.T[0][1:2]", "(index (index (T a) 0) 1:2)"),
        ("a[::2]", "(index a ::2)"),
        ("exp(a)[0, b - 1:]", "(index (exp a) 0 (- b 1):)"),
    ];
    for (expr, expected) in table {
        assert_eq!(grouping(expr), expected, "grouping of `{expr}`");
    }
}

/// A `fn` parameter with a default may be left out, or given by keyword.
#[test]
fn fn_default_parameters() {
    let source = "fn leaky(x, alpha = 0.01) = where(x > 0, x, alpha * x);\n\
                  model m { param w: [] = 1; loss leaky(w) + leaky(w, 0.2) + leaky(w, alpha = 0.3); }";
    let (file, diagnostics) = parse_and_check(source);
    assert!(
        diagnostics.is_empty(),
        "{}",
        render(&diagnostics, "default.nn", source)
    );
    let f = file.fns().next().unwrap();
    assert_eq!(f.params[0].default, None);
    let default = f.params[1].default.as_ref().map(|d| &d.kind);
    assert!(
        matches!(default, Some(ExprKind::Number(n)) if n.value == 0.01),
        "{default:?}"
    );
}

/// Consts declared outside any model are in the scope of every model and of the
/// user's functions (each model evaluates them first), and a const may use the ones
/// before it.
#[test]
fn file_level_consts_reach_models_and_functions() {
    let source = "\
const SLOPE = 0.2;
fn leaky(x) = where(x > 0, x, SLOPE * x);
const HALF = 0.5, SCALE = HALF / 2;
model a {
    dim N;
    input x: [N, 3];
    param w: [3, 4] = xavier;
    loss sum(leaky(x @ w) * SCALE);
}
model b {
    param v: [2] = ones;
    loss sum(v * HALF);
}
";
    let models = nnc_ir::compile_source(source).unwrap_or_else(|d| panic!("{d:?}"));
    let printed: Vec<String> = models
        .iter()
        .map(|m| nnc_ir::print::print(m, None))
        .collect();
    let has = |text: &str, value: &str| {
        text.lines()
            .any(|l| l.contains(&format!("= const {value} ")))
    };
    assert!(
        has(&printed[0], "0.2") && has(&printed[0], "0.25"),
        "{}",
        printed[0]
    );
    assert!(has(&printed[1], "0.5"), "{}", printed[1]);
    // The prelude does not see them: its `alpha` is still its own parameter.
    let shadowed = "const alpha = 5;\nmodel m { param w: [2] = ones; loss sum(leaky_relu(w)); }\n";
    let models = nnc_ir::compile_source(shadowed).unwrap_or_else(|d| panic!("{d:?}"));
    let text = nnc_ir::print::print(&models[0], None);
    assert!(has(&text, "0.01") && !has(&text, "5"), "{text}");
}

/// Shapes take dims, integers and compile-time expressions of consts and fixed dims.
#[test]
fn shapes_take_const_expressions() {
    let source = "const K = 3;
model m {
    dim N, H = 4;
    const W = 2 * H;
    input x: [N, H];
    param a: [H, 2 * H] = normal(0, 1);
    param b: [W, K] = normal(0, 1);
    param c: [K + 1 - 1, (H), H / 2] = normal(0, 1);
    loss sum(x @ a @ b) + sum(c);
}
";
    let models = nnc_ir::compile_source(source).expect("compiles");
    let shapes: Vec<String> = models[0]
        .params
        .iter()
        .map(|p| models[0].shape_str(&p.shape))
        .collect();
    assert_eq!(shapes, ["[4, 8]", "[8, 3]", "[3, 4, 2]"]);
}

/// Arithmetic and elementwise built-ins on compile-time numbers (literals, consts,
/// fixed dims) fold to numbers, which initialisers take as arguments.
#[test]
fn compile_time_numbers_fold_calls_and_reach_initialisers() {
    let source = "const GAIN = 2;
fn leak(x, slope = GAIN / 10) = where(x > 0, x, slope * x);
model m {
    dim N, D = 16;
    const s = 1 / sqrt(D) + max(0, -1);
    input x: [N, D];
    param w: [D, 2] = normal(0, GAIN / sqrt(D));
    param b: [2] = uniform(-s, s);
    loss sum(leak(x @ w + b)) * s;
}
";
    let models = nnc_ir::compile_source(source).unwrap_or_else(|d| panic!("{d:?}"));
    // The default `GAIN / 10` of `slope`, evaluated where `leak` is called without it.
    let text = nnc_ir::print::print(&models[0], None);
    assert!(text.contains("= const 0.2 "), "{text}");
    let inits: Vec<nnc_ir::Init> = models[0].params.iter().map(|p| p.init).collect();
    assert_eq!(
        inits,
        vec![
            nnc_ir::Init::Normal {
                mean: 0.0,
                std: 0.5
            },
            nnc_ir::Init::Uniform {
                lo: -0.25,
                hi: 0.25
            },
        ]
    );
}

/// A loop is a `let`'s value: its range (`0..L`, with `..` apart from numbers), its
/// start, its body's `let`s and value, the carried name (the `let`'s) and the name
/// keeping its steps (`let g, gs = ...`), nested loops included.
#[test]
fn loops_parse_as_the_value_of_a_let() {
    let source = "model m { dim N, L = 3; input x: [N, 4]; param w: [L, 4, 4] = 1;
        let h = for l in 0..L from x { let z = h @ w[l]; tanh(z) };
        let g, gs = for i in 1..2*L from h {
            let inner = for j in 0..i from g { g * j };
            inner + g
        };
        loss sum(g); }";
    let (file, diagnostics) = parse_and_check(source);
    assert!(
        diagnostics.is_empty(),
        "{}",
        render(&diagnostics, "loops.nn", source)
    );
    let Some(Item::Model(m)) = file.items.first() else {
        panic!("a model")
    };
    let lets: Vec<String> = m
        .stmts
        .iter()
        .filter_map(|s| match s {
            Stmt::Let(l) => Some(format!("{} = {}", l.name.name, sexp(&l.value))),
            _ => None,
        })
        .collect();
    assert_eq!(
        lets,
        [
            "h = (for h l 0 L x (let z (@ h (index w l))) (tanh z))",
            "g = (for g,gs i 1 (* 2 L) h (let inner (for inner j 0 i g (* g j))) (+ inner g))",
        ]
    );
}
