//! Robustness of the front end: no input makes `parse_and_check` or `render` panic,
//! overflow the stack or return a diagnostic pointing outside the source.
//!
//! Three generators (random bytes, token soups, mutated spec models) run with a
//! modest number of cases each, so the suite stays fast on two cores; the deep
//! inputs (10 000 levels) run on the test harness's own 2 MiB threads on purpose.

use nnc_syntax::diagnostic::{MAX_RENDERED, line_col};
use nnc_syntax::{Diagnostic, parse_and_check, render};
use proptest::prelude::*;

/// Parses, checks and renders `source`; panics (failing the property) if a
/// diagnostic's span is outside the source or not on character boundaries, if the
/// diagnostics are out of order, or if the rendering misses one.
fn front_end(source: &str) -> Vec<Diagnostic> {
    let (_, diagnostics) = parse_and_check(source);
    for d in &diagnostics {
        let span = d.span;
        assert!(
            span.start <= span.end && span.end <= source.len(),
            "{d:?} outside the source"
        );
        assert!(
            source.is_char_boundary(span.start) && source.is_char_boundary(span.end),
            "{d:?} splits a character"
        );
        for (related, _) in &d.related {
            assert!(
                related.end <= source.len(),
                "{d:?}: a related span outside the source"
            );
        }
        assert!(!d.message.is_empty());
    }
    let starts: Vec<usize> = diagnostics.iter().map(|d| d.span.start).collect();
    assert!(starts.is_sorted(), "diagnostics out of order: {starts:?}");
    let text = render(&diagnostics, "fuzz.nn", source);
    let shown = diagnostics.len().min(MAX_RENDERED);
    assert_eq!(
        text.matches("Error: ").count(),
        shown,
        "every diagnostic rendered, up to the limit"
    );
    if diagnostics.len() > MAX_RENDERED {
        let more = diagnostics.len() - MAX_RENDERED;
        assert!(text.ends_with(&format!(
            "fuzz.nn: {more} more error{} not shown\n",
            if more == 1 { "" } else { "s" }
        )));
    }
    if let Some(first) = diagnostics.first() {
        let (line, col) = line_col(source, first.span.start);
        assert!(
            text.contains(&format!("fuzz.nn:{line}:{col}")),
            "the rendering names {line}:{col}"
        );
    }
    diagnostics
}

/// The spec models, as copied into `examples/models/`.
const MODELS: &[&str] = &[
    include_str!("../examples/models/activations.nn"),
    include_str!("../examples/models/deep_tanh.nn"),
    include_str!("../examples/models/deep_stack.nn"),
    include_str!("../examples/models/deep_dropout_bn.nn"),
    include_str!("../examples/models/gates.nn"),
    include_str!("../examples/models/logistic.nn"),
    include_str!("../examples/models/mlp784.nn"),
    include_str!("../examples/models/spiral.nn"),
    include_str!("../examples/models/svm.nn"),
    include_str!("../examples/models/three_layer.nn"),
    include_str!("../examples/models/two_layer.nn"),
];

/// Every kind of token of the language, and names the checker knows about.
const TOKENS: &[&str] = &[
    "fn",
    "model",
    "dtype",
    "dim",
    "const",
    "input",
    "param",
    "let",
    "output",
    "loss",
    "index",
    "grad",
    "true",
    "false",
    "for",
    "in",
    "from",
    "..",
    "x",
    "w",
    "N",
    "D",
    "T",
    "f32",
    "f64",
    "relu",
    "sum",
    "max",
    "pick",
    "sigmoid",
    "softmax_cross_entropy",
    "dense",
    "axis",
    "keepdims",
    "he",
    "normal",
    "zeros",
    "0",
    "1",
    "2.5",
    "1e-3",
    "10",
    "+",
    "-",
    "*",
    "/",
    "@",
    "^",
    ">",
    ">=",
    "<",
    "<=",
    "=",
    ".",
    ",",
    ":",
    ";",
    "(",
    ")",
    "[",
    "]",
    "{",
    "}",
    "//",
    "\n",
    "$",
    "é",
    "#",
];

/// Token soups: sequences of the language's tokens, sometimes glued together.
fn token_soup() -> impl Strategy<Value = String> {
    prop::collection::vec((prop::sample::select(TOKENS), any::<bool>()), 0..120).prop_map(|toks| {
        let mut s = String::new();
        for (t, space) in toks {
            s.push_str(t);
            if space {
                s.push(' ');
            }
        }
        s
    })
}

/// Soups inside a model (or after a function head), to reach deeper grammar states.
fn framed_soup() -> impl Strategy<Value = String> {
    (token_soup(), 0..3usize).prop_map(|(soup, frame)| match frame {
        0 => format!("model m {{ dim N, D = 3; input x: [N, D]; param w: [D] = zeros; {soup} }}"),
        1 => format!("fn f(x, alpha = 0.1) = {soup};\nmodel m {{ param w: [] = 1; loss f(w); }}"),
        _ => format!("model m {{ param w: [] = 1; let y = {soup}; loss y; }}"),
    })
}

/// One edit of a source text.
#[derive(Clone, Debug)]
enum Edit {
    DeleteChars { at: usize, len: usize },
    InsertChar { at: usize, c: char },
    SwapChars { a: usize, b: usize },
    DeleteToken { index: usize },
    DuplicateToken { index: usize },
    SwapTokens { a: usize, b: usize },
    ReplaceToken { index: usize, with: &'static str },
}

fn edit() -> impl Strategy<Value = Edit> {
    let pos = any::<prop::sample::Index>();
    prop_oneof![
        (any::<usize>(), 1..8usize).prop_map(|(at, len)| Edit::DeleteChars { at, len }),
        (
            any::<usize>(),
            prop::sample::select(&b"()[]{};,.=+-*@^:x0\n"[..])
        )
            .prop_map(|(at, c)| Edit::InsertChar { at, c: c as char }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapChars { a, b }),
        pos.clone().prop_map(|i| Edit::DeleteToken {
            index: i.index(usize::MAX)
        }),
        pos.clone().prop_map(|i| Edit::DuplicateToken {
            index: i.index(usize::MAX)
        }),
        (any::<usize>(), any::<usize>()).prop_map(|(a, b)| Edit::SwapTokens { a, b }),
        (pos, prop::sample::select(TOKENS)).prop_map(|(i, with)| Edit::ReplaceToken {
            index: i.index(usize::MAX),
            with
        }),
    ]
}

/// Byte ranges of the tokens of `source` (the lexer's own view).
fn token_ranges(source: &str) -> Vec<std::ops::Range<usize>> {
    let (tokens, _) = nnc_syntax::lexer::tokenize(source);
    tokens
        .into_iter()
        .filter_map(|t| t.ok())
        .map(|(l, _, r)| l..r)
        .collect()
}

/// Applies an edit; positions are taken modulo the text's length, on char boundaries.
fn apply(source: &str, edit: &Edit) -> String {
    let chars: Vec<char> = source.chars().collect();
    let n = chars.len().max(1);
    let tokens = token_ranges(source);
    let m = tokens.len().max(1);
    let splice = |range: std::ops::Range<usize>, with: &str| {
        format!("{}{}{}", &source[..range.start], with, &source[range.end..])
    };
    match *edit {
        Edit::DeleteChars { at, len } => {
            let at = at % n;
            chars[..at]
                .iter()
                .chain(chars.iter().skip(at + len))
                .collect()
        }
        Edit::InsertChar { at, c } => {
            let mut out = chars.clone();
            out.insert(at % (chars.len() + 1), c);
            out.into_iter().collect()
        }
        Edit::SwapChars { a, b } => {
            let mut out = chars.clone();
            if !out.is_empty() {
                out.swap(a % n, b % n);
            }
            out.into_iter().collect()
        }
        Edit::DeleteToken { index } => match tokens.get(index % m) {
            Some(r) => splice(r.clone(), ""),
            None => source.to_string(),
        },
        Edit::DuplicateToken { index } => match tokens.get(index % m) {
            Some(r) => splice(r.start..r.start, &format!("{} ", &source[r.clone()])),
            None => source.to_string(),
        },
        Edit::SwapTokens { a, b } => {
            let (a, b) = (a % m, b % m);
            let (a, b) = (a.min(b), a.max(b));
            match (tokens.get(a), tokens.get(b)) {
                (Some(ra), Some(rb)) if a != b => format!(
                    "{}{}{}{}{}",
                    &source[..ra.start],
                    &source[rb.clone()],
                    &source[ra.end..rb.start],
                    &source[ra.clone()],
                    &source[rb.end..]
                ),
                _ => source.to_string(),
            }
        }
        Edit::ReplaceToken { index, with } => match tokens.get(index % m) {
            Some(r) => splice(r.clone(), with),
            None => source.to_string(),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..400)) {
        front_end(&String::from_utf8_lossy(&bytes));
    }

    #[test]
    fn random_text_never_panics(text in "\\PC{0,200}") {
        front_end(&text);
    }

    #[test]
    fn token_soups_never_panic(soup in token_soup()) {
        front_end(&soup);
    }

    #[test]
    fn framed_token_soups_never_panic(source in framed_soup()) {
        front_end(&source);
    }

    #[test]
    fn mutated_models_never_panic(
        model in prop::sample::select(MODELS),
        edits in prop::collection::vec(edit(), 1..5),
    ) {
        let mut source = model.to_string();
        for e in &edits {
            source = apply(&source, e);
        }
        front_end(&source);
    }
}

/// A single deleted `;` in a spec model is always reported, at a real position.
#[test]
fn every_deleted_semicolon_is_reported() {
    for model in MODELS {
        let semicolons = token_ranges(model)
            .into_iter()
            .filter(|r| &model[r.clone()] == ";");
        for r in semicolons {
            let i = r.start;
            let source = format!("{}{}", &model[..i], &model[i + 1..]);
            let diagnostics = front_end(&source);
            assert!(
                !diagnostics.is_empty(),
                "deleting the `;` at byte {i} went unnoticed"
            );
        }
    }
}

// ---- deep inputs: each is an error, not a stack overflow -------------------------------

const DEEP: usize = 10_000;

fn first_message(source: &str) -> String {
    let diagnostics = front_end(source);
    diagnostics
        .first()
        .map(|d| d.message.clone())
        .unwrap_or_default()
}

#[test]
fn ten_thousand_nested_parentheses() {
    let source = format!(
        "model m {{ param a: [] = 1; loss {}a{}; }}",
        "(".repeat(DEEP),
        ")".repeat(DEEP)
    );
    assert_eq!(first_message(&source), "brackets nested too deeply");
}

#[test]
fn ten_thousand_unary_minuses() {
    let source = format!("model m {{ param a: [] = 1; loss {}a; }}", "-".repeat(DEEP));
    assert_eq!(first_message(&source), "expression nested too deeply");
}

#[test]
fn ten_thousand_term_sum() {
    let sum = vec!["a"; DEEP].join(" + ");
    let source = format!("model m {{ param a: [] = 1; loss {sum}; }}");
    assert_eq!(first_message(&source), "expression nested too deeply");
}

#[test]
fn ten_thousand_nested_brackets() {
    let source = format!("model m {{ input x: {}; loss x; }}", "[".repeat(DEEP));
    assert_eq!(first_message(&source), "brackets nested too deeply");
}

#[test]
fn other_deep_shapes() {
    let cases = [
        (vec!["a"; DEEP].join(" ^ "), "expression nested too deeply"),
        (
            format!("{}a{}", "exp(".repeat(DEEP), ")".repeat(DEEP)),
            "brackets nested too deeply",
        ),
        (
            format!("a{}", ".T".repeat(DEEP)),
            "expression nested too deeply",
        ),
        ("- a ".repeat(DEEP), "expression nested too deeply"),
        (
            format!("{}a", "-a ^ ".repeat(DEEP)),
            "expression nested too deeply",
        ),
    ];
    for (expr, expected) in cases {
        let source = format!("model m {{ param a: [] = 1; loss {expr}; }}");
        assert_eq!(first_message(&source), expected, "for `{}...`", &expr[..20]);
    }
}

/// Just under the limits, the same shapes are accepted: the limits are not too tight.
#[test]
fn deep_but_allowed() {
    let parens = format!(
        "model m {{ param a: [] = 1; loss {}a{}; }}",
        "(".repeat(100),
        ")".repeat(100)
    );
    assert!(front_end(&parens).is_empty());
    let sum = vec!["a"; 200].join(" + ");
    assert!(front_end(&format!("model m {{ param a: [] = 1; loss {sum}; }}")).is_empty());
    let negs = format!("model m {{ param a: [] = 1; loss {}a; }}", "-".repeat(200));
    assert!(front_end(&negs).is_empty());
}

/// Many errors in one long file: each statement is reported, and quickly.
#[test]
fn many_errors() {
    let source = format!(
        "model m {{ param a: [] = 1;\n{}loss a; }}",
        "let = ;\n".repeat(2_000)
    );
    let diagnostics = front_end(&source);
    assert_eq!(diagnostics.len(), 2_000);
}
