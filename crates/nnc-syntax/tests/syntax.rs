//! Unit-level checks of the front end's parts: the lexer's edge cases, the prelude,
//! recursion detection, suggestions and rendering. The diagnostics corpus (the root
//! `tests/diagnostics/`) covers the messages end to end.

use nnc_syntax::check::suggest;
use nnc_syntax::diagnostic::{LineIndex, MAX_RENDERED, line_col};
use nnc_syntax::lexer::{MAX_NESTING, SyntaxError, Tok, tokenize};
use nnc_syntax::{Diagnostic, Span, builtins, parse_and_check, parser, prelude, render};

fn messages(source: &str) -> Vec<String> {
    parse_and_check(source)
        .1
        .into_iter()
        .map(|d| d.message)
        .collect()
}

/// `(line, col)` of every diagnostic.
fn locations(source: &str) -> Vec<(usize, usize)> {
    parse_and_check(source)
        .1
        .iter()
        .map(|d| line_col(source, d.span.start))
        .collect()
}

// ---- lexer -----------------------------------------------------------------------------

#[test]
fn lexes_numbers_names_and_operators() {
    let (tokens, errors) = tokenize("let y_2 = 1e-3 * x.T >= 0.5; // done");
    assert!(errors.is_empty());
    let toks: Vec<Tok> = tokens.into_iter().map(|t| t.unwrap().1).collect();
    assert_eq!(
        toks,
        [
            Tok::Let,
            Tok::Ident("y_2".into()),
            Tok::Eq,
            Tok::Number("1e-3".into()),
            Tok::Star,
            Tok::Ident("x".into()),
            Tok::Dot,
            Tok::Ident("T".into()),
            Tok::Ge,
            Tok::Number("0.5".into()),
            Tok::Semi,
        ]
    );
}

#[test]
fn trailing_dot_is_one_error_and_the_number_survives() {
    let (tokens, errors) = tokenize("2. + 3");
    assert_eq!(
        errors,
        [SyntaxError::TrailingDot {
            span: Span::new(0, 2),
            text: "2.".into()
        }]
    );
    let toks: Vec<Tok> = tokens.into_iter().map(|t| t.unwrap().1).collect();
    assert_eq!(
        toks,
        [Tok::Number("2".into()), Tok::Plus, Tok::Number("3".into())]
    );
    // `2.T` is a transpose (of a number: wrong later, not here).
    let (_, errors) = tokenize("2.T");
    assert!(errors.is_empty());
}

#[test]
fn hash_skips_the_rest_of_its_line() {
    let (tokens, errors) = tokenize("a # b c $\nd");
    assert_eq!(
        errors,
        [SyntaxError::UnexpectedChar {
            span: Span::new(2, 3),
            text: "#".into()
        }]
    );
    let toks: Vec<Tok> = tokens.into_iter().map(|t| t.unwrap().1).collect();
    assert_eq!(toks, [Tok::Ident("a".into()), Tok::Ident("d".into())]);
}

#[test]
fn adjacent_bad_characters_are_one_error() {
    let (_, errors) = tokenize("a $$ b ?");
    assert_eq!(
        errors,
        [
            SyntaxError::UnexpectedChar {
                span: Span::new(2, 4),
                text: "$$".into()
            },
            SyntaxError::UnexpectedChar {
                span: Span::new(7, 8),
                text: "?".into()
            },
        ]
    );
}

#[test]
fn nesting_limit_is_exact() {
    let ok = format!("{}x{}", "(".repeat(MAX_NESTING), ")".repeat(MAX_NESTING));
    assert!(tokenize(&ok).0.iter().all(Result::is_ok));
    let deep = format!(
        "{}x{}",
        "(".repeat(MAX_NESTING + 1),
        ")".repeat(MAX_NESTING + 1)
    );
    let (tokens, _) = tokenize(&deep);
    assert_eq!(
        tokens.len(),
        MAX_NESTING + 1,
        "the stream ends at the error"
    );
    assert!(
        matches!(tokens.last(), Some(Err(SyntaxError::TooDeep { span })) if span.start == MAX_NESTING)
    );
}

// ---- the prelude and the built-ins ---------------------------------------------------

#[test]
fn prelude_checks_clean_and_names_are_unique() {
    // Checked as a user file, each prelude function "redefines a built-in"; nothing else
    // may be wrong with it.
    let diagnostics = nnc_syntax::check::check(prelude::file());
    let unexpected: Vec<Diagnostic> = diagnostics
        .iter()
        .filter(|d| !d.message.ends_with("is a built-in function"))
        .cloned()
        .collect();
    assert!(
        unexpected.is_empty(),
        "{}",
        render(&unexpected, "prelude.nn", prelude::SOURCE)
    );
    assert_eq!(diagnostics.len(), prelude::file().fns().count());
    let mut names: Vec<&str> = builtins::all_builtin_names().collect();
    let count = names.len();
    names.sort();
    names.dedup();
    assert_eq!(
        names.len(),
        count,
        "a prelude function shadows a built-in, or is defined twice"
    );
    for f in [
        "relu",
        "leaky_relu",
        "prelu",
        "elu",
        "mse",
        "sse",
        "hinge",
        "logistic",
    ] {
        assert!(prelude::function(f).is_some(), "{f} is in the prelude");
    }
    for f in ["multiclass_hinge", "softmax_cross_entropy", "l2", "clip"] {
        assert!(prelude::function(f).is_some(), "{f} is in the prelude");
    }
}

#[test]
fn prelude_defaults() {
    let default = |f: &str, p: &str| {
        prelude::function(f)
            .and_then(|f| f.params.iter().find(|q| q.name.name == p))
            .and_then(|q| q.default.as_ref())
            .and_then(|d| match &d.kind {
                nnc_syntax::ast::ExprKind::Number(n) => Some(n.value),
                _ => None,
            })
    };
    assert_eq!(default("leaky_relu", "alpha"), Some(0.01));
    assert_eq!(default("elu", "alpha"), Some(1.0));
    assert_eq!(default("multiclass_hinge", "margin"), Some(1.0));
}

// ---- recursion ---------------------------------------------------------------------------

const MODEL: &str = "model m { param w: [] = 1; loss w; }\n";

#[test]
fn recursion_is_reported_once_per_cycle_group() {
    let cases: &[(&str, &[&str])] = &[
        (
            "fn a(x) = b(x);\nfn b(x) = c(x);\nfn c(x) = a(x);",
            &["recursive function `a`"],
        ),
        // Two separate groups: two errors.
        (
            "fn a(x) = a(x);\nfn b(x) = c(x);\nfn c(x) = b(x);",
            &["recursive function `a`", "recursive function `b`"],
        ),
        // One group with two cycles through `a`: one error.
        (
            "fn a(x) = b(x) + c(x);\nfn b(x) = a(x);\nfn c(x) = a(x);",
            &["recursive function `a`"],
        ),
        // A diamond without a cycle, and a chain into a cycle: only the cycle.
        (
            "fn a(x) = b(x) + c(x);\nfn b(x) = d(x);\nfn c(x) = d(x);\nfn d(x) = x;",
            &[],
        ),
        (
            "fn a(x) = b(x);\nfn b(x) = c(x);\nfn c(x) = b(x);",
            &["recursive function `b`"],
        ),
    ];
    for (fns, expected) in cases {
        let source = format!("{fns}\n{MODEL}");
        assert_eq!(messages(&source), *expected, "for\n{fns}");
    }
}

#[test]
fn recursion_points_at_the_closing_call_and_names_the_chain() {
    let source = format!("fn a(x) = b(x);\nfn b(x) = c(x);\nfn c(x) = 2 * a(x);\n{MODEL}");
    let (_, diagnostics) = parse_and_check(&source);
    assert_eq!(diagnostics.len(), 1);
    let d = &diagnostics[0];
    assert_eq!(&source[d.span.range()], "a(x)");
    assert_eq!(line_col(&source, d.span.start), (3, 15));
    assert!(
        d.notes[0].contains("`a` -> `b` -> `c` -> `a`"),
        "{:?}",
        d.notes
    );
}

#[test]
fn a_long_recursive_chain_is_summarised() {
    let n = 5_000;
    let mut source: String = (0..n)
        .map(|i| format!("fn f{i}(x) = f{}(x);\n", (i + 1) % n))
        .collect();
    source.push_str(MODEL);
    let (_, diagnostics) = parse_and_check(&source);
    assert_eq!(diagnostics.len(), 1);
    assert!(
        diagnostics[0].notes[0].contains("`f3` -> (4995 more) -> `f4999` -> `f0`"),
        "{:?}",
        diagnostics[0].notes
    );
}

// ---- names ---------------------------------------------------------------------------------

#[test]
fn suggestions() {
    let names = ["sigmoid", "softmax", "sum", "hidden", "w1", "w2"];
    assert_eq!(suggest("sigmod", names), Some("sigmoid"));
    assert_eq!(suggest("hiden", names), Some("hidden"));
    assert_eq!(suggest("w3", names), Some("w1"));
    assert_eq!(suggest("frobnicate", names), None);
    assert_eq!(
        suggest("x", ["y"]),
        None,
        "one letter is not a typo of another"
    );
    assert_eq!(
        suggest("sum", names),
        None,
        "a name is not its own suggestion"
    );
}

#[test]
fn use_before_declaration_and_self_reference() {
    let source = "model m {\n  param w: [] = 1;\n  let a = b;\n  let b = w;\n  let c = c + 1;\n  loss a + c;\n}\n";
    let (_, diagnostics) = parse_and_check(source);
    let summary: Vec<(String, Vec<String>)> = diagnostics
        .iter()
        .map(|d| {
            (
                d.message.clone(),
                d.related.iter().map(|(_, l)| l.clone()).collect(),
            )
        })
        .collect();
    assert_eq!(
        summary,
        [
            (
                "unknown name `b`".to_string(),
                vec!["declared here, after its use".to_string()]
            ),
            (
                "unknown name `c`".to_string(),
                vec!["defined by this statement".to_string()]
            ),
        ]
    );
}

#[test]
fn many_unknown_names_among_many_declared() {
    // Suggestions have a budget: this must not take quadratic time (it would, without).
    let n = 3_000;
    let mut source = String::from("model m {\n  param w: [] = 1;\n");
    for i in 0..n {
        source.push_str(&format!("  let a{i} = zz{i} + w;\n"));
    }
    source.push_str("  loss w;\n}\n");
    assert_eq!(messages(&source).len(), n);
}

// ---- parse errors --------------------------------------------------------------------------

#[test]
fn missing_semicolon_points_after_the_statement() {
    let source = "model m {\n  param w: [] = 1\n  loss w;\n}\n";
    assert_eq!(messages(source), ["missing `;`"]);
    assert_eq!(locations(source), [(2, 18)]);
    let source = "fn f(x) = x\nmodel m { param w: [] = 1; loss f(w); }\n";
    assert_eq!(messages(source), ["missing `;`"]);
    assert_eq!(locations(source), [(1, 12)]);
}

#[test]
fn bad_character_hides_its_follow_on_error() {
    let source = "model m { param w: [] = 1; loss w $ 2; }";
    assert_eq!(messages(source), ["unexpected character `$`"]);
}

#[test]
fn unclosed_bracket_at_end_of_input() {
    let source = "model m {\n  param w: [] = 1;\n  loss w;\n";
    let (_, diagnostics) = parse_and_check(source);
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].message, "unexpected end of input");
    assert_eq!(
        diagnostics[0].related,
        [(Span::new(8, 9), "this `{` is not closed".to_string())]
    );
}

#[test]
fn token_streams_from_the_macro_parse_the_same() {
    // `net!` gives each token a synthetic span i..i+1.
    let toks = [
        Tok::Model,
        Tok::Ident("m".into()),
        Tok::LBrace,
        Tok::Param,
        Tok::Ident("w".into()),
        Tok::Colon,
        Tok::LBracket,
        Tok::RBracket,
        Tok::Semi,
        Tok::Loss,
        Tok::Ident("w".into()),
        Tok::RBrace,
    ];
    let n = toks.len();
    let stream: Vec<_> = toks
        .into_iter()
        .enumerate()
        .map(|(i, t)| Ok((i, t, i + 1)))
        .collect();
    let (_, diagnostics) = parser::parse_tokens(stream, n);
    // `loss w` without `;`: a missing `;` just before `}` (token 11).
    assert_eq!(diagnostics.len(), 1);
    assert_eq!(diagnostics[0].message, "missing `;`");
    assert_eq!(diagnostics[0].span, Span::new(11, 11));
}

// ---- rendering ---------------------------------------------------------------------------

fn error_at(source: &str, needle: &str) -> Diagnostic {
    let start = source.find(needle).expect("the needle");
    Diagnostic::error("boom", Span::new(start, start + needle.len())).with_label("here")
}

#[test]
fn render_counts_lines_like_line_col() {
    // CRLF, a lone CR, a form feed and a line separator: only `\n` starts a line.
    for source in [
        "a\r\nb\r\nTARGET\r\n",
        "a\rb\nc TARGET",
        "a\x0cb\nTARGET",
        "a\u{2028}b TARGET",
    ] {
        let d = error_at(source, "TARGET");
        let (line, col) = line_col(source, d.span.start);
        let text = render(&[d], "t.nn", source);
        assert!(
            text.contains(&format!("t.nn:{line}:{col} ]")),
            "{source:?}:\n{text}"
        );
    }
}

#[test]
fn render_counts_columns_in_characters() {
    let source = "// é\nlet ü = é + TARGET;\n";
    let d = error_at(source, "TARGET");
    assert_eq!(line_col(source, d.span.start), (2, 13));
    assert!(render(&[d], "t.nn", source).contains("t.nn:2:13 ]"));
}

#[test]
fn line_index_locates_as_line_col_does() {
    // Multi-byte characters, empty lines, offsets inside a character and past the end,
    // and a line longer than the index's checkpoint step.
    let long = format!("{}é TARGET\n", "é".repeat(300));
    for source in ["", "a\n\nü\r\nb", "日本語\nx = ü + y\n", long.as_str()] {
        let index = LineIndex::new(source);
        for offset in 0..=source.len() + 2 {
            assert_eq!(
                index.line_col(offset),
                line_col(source, offset),
                "{source:?} at {offset}"
            );
        }
    }
    assert_eq!(
        LineIndex::new(&long).line_col(long.find("TARGET").unwrap()),
        (1, 303)
    );
    assert_eq!(line_col("ab\ncé", 5), (2, 3), "inside `é`: its start");
}

#[test]
fn python_booleans_get_a_note() {
    for (written, meant) in [("True", "true"), ("FALSE", "false")] {
        let source = format!(
            "model m {{ dim N; input x: [N, 2]; loss sum(sum(x, axis = 1, keepdims = {written})); }}"
        );
        let (_, diagnostics) = parse_and_check(&source);
        assert_eq!(diagnostics.len(), 1);
        assert_eq!(diagnostics[0].message, format!("unknown name `{written}`"));
        assert_eq!(diagnostics[0].notes, [format!("did you mean `{meant}`?")]);
    }
}

#[test]
fn render_has_no_trailing_spaces_and_caps_its_output() {
    let source = "x ".repeat(MAX_RENDERED + 5);
    let diagnostics: Vec<Diagnostic> = (0..MAX_RENDERED + 5)
        .map(|i| Diagnostic::error("bad x", Span::new(2 * i, 2 * i + 1)))
        .collect();
    let text = render(&diagnostics, "t.nn", &source);
    assert_eq!(text.matches("Error: bad x").count(), MAX_RENDERED);
    assert!(
        text.ends_with("t.nn: 5 more errors not shown\n"),
        "{}",
        &text[text.len() - 100..]
    );
    assert!(text.lines().all(|l| l == l.trim_end()));
}

#[test]
fn render_orders_related_labels_into_one_section() {
    let source = "first\nsecond\n";
    let d = Diagnostic::error("twice", Span::new(6, 12)).with_related(Span::new(0, 5), "earlier");
    let text = render(&[d], "t.nn", source);
    assert_eq!(text.matches("t.nn:").count(), 1, "{text}");
    assert!(
        text.find("earlier").unwrap() < text.find("second").unwrap(),
        "{text}"
    );
}

#[test]
fn render_survives_spans_past_the_end() {
    let d = Diagnostic::error("late", Span::new(100, 200)).with_related(Span::new(50, 10), "odd");
    let text = render(&[d], "t.nn", "short");
    assert!(text.contains("Error: late"), "{text}");
}
