//! The parser: tokens to an AST, with lalrpop (the grammar is `grammar/nn.lalrpop`).
//!
//! Parsing never gives up at the first error: statements and items recover, and every
//! error found is returned as a [`Diagnostic`] beside whatever AST could be built.

use crate::Span;
use crate::ast::{BinOp, Expr, ExprKind, File, Ident, MAX_EXPR_DEPTH, Number};
use crate::diagnostic::Diagnostic;
use crate::lexer::{self, Spanned, SyntaxError, Tok};
use lalrpop_util::{ErrorRecovery, ParseError};

#[allow(clippy::all, unused_parens, unused_imports, dead_code, non_snake_case)]
mod generated {
    include!(concat!(env!("OUT_DIR"), "/nn.rs"));
}

type Recovered = Vec<ErrorRecovery<usize, Tok, SyntaxError>>;

/// Parses a whole source text.
pub fn parse(source: &str) -> (File, Vec<Diagnostic>) {
    let (tokens, lex_errors) = lexer::tokenize(source);
    let (file, mut diagnostics) = parse_tokens(tokens, source.len());
    diagnostics.extend(lex_errors.into_iter().map(user_error));
    diagnostics.sort_by_key(|d| d.span.start);
    (file, diagnostics)
}

/// Parses a token stream that may come from the lexer or from `net!`'s converter.
/// `end` is the offset reported for "unexpected end of input".
pub fn parse_tokens(tokens: Vec<Spanned>, end: usize) -> (File, Vec<Diagnostic>) {
    let mut recovered: Recovered = Vec::new();
    let result = generated::FileParser::new().parse(&mut recovered, tokens);
    let mut diagnostics: Vec<Diagnostic> =
        recovered.into_iter().map(|r| parse_error(r.error, end)).collect();
    let file = match result {
        Ok(file) => file,
        Err(error) => {
            diagnostics.push(parse_error(error, end));
            File { items: vec![] }
        }
    };
    diagnostics.sort_by_key(|d| d.span.start);
    diagnostics.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    (file, diagnostics)
}

fn parse_error(error: ParseError<usize, Tok, SyntaxError>, end: usize) -> Diagnostic {
    match error {
        ParseError::InvalidToken { location } => {
            Diagnostic::error("invalid token", Span::new(location, location + 1))
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let at = Span::new(location.min(end), location.min(end));
            Diagnostic::error("unexpected end of input", at)
                .with_label(format!("expected {}", expected_in_words(&expected)))
        }
        ParseError::UnrecognizedToken { token: (l, tok, r), expected } => {
            Diagnostic::error(format!("unexpected {}", describe(&tok)), Span::new(l, r))
                .with_label(format!("expected {}", expected_in_words(&expected)))
        }
        ParseError::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::error(format!("unexpected {}", describe(&tok)), Span::new(l, r))
                .with_label("expected the end of input")
        }
        ParseError::User { error } => user_error(error),
    }
}

fn user_error(error: SyntaxError) -> Diagnostic {
    match error {
        SyntaxError::UnexpectedChar { span, text } => {
            Diagnostic::error(format!("unexpected character `{text}`"), span)
                .with_label("no token starts with this character")
        }
        SyntaxError::TooDeep { span } => Diagnostic::error("brackets nested too deeply", span)
            .with_label(format!("more than {} levels deep here", lexer::MAX_NESTING)),
        SyntaxError::ExprTooDeep { span } => Diagnostic::error("expression nested too deeply", span)
            .with_label(format!("more than {MAX_EXPR_DEPTH} levels deep")),
        SyntaxError::NotTranspose { span, field } => {
            Diagnostic::error(format!("unknown postfix `.{field}`"), span)
                .with_label("the only postfix is `.T` (transpose)")
        }
    }
}

/// A token as a user would name it.
pub fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(name) => format!("name `{name}`"),
        Tok::Number(text) => format!("number `{text}`"),
        other => format!("`{}`", token_text(other)),
    }
}

/// The text of a fixed token.
fn token_text(tok: &Tok) -> &'static str {
    match tok {
        Tok::Fn => "fn",
        Tok::Model => "model",
        Tok::Dtype => "dtype",
        Tok::Dim => "dim",
        Tok::Const => "const",
        Tok::Input => "input",
        Tok::Param => "param",
        Tok::Let => "let",
        Tok::Output => "output",
        Tok::Loss => "loss",
        Tok::Index => "index",
        Tok::Grad => "grad",
        Tok::True => "true",
        Tok::False => "false",
        Tok::Ident(_) => "name",
        Tok::Number(_) => "number",
        Tok::Plus => "+",
        Tok::Minus => "-",
        Tok::Star => "*",
        Tok::Slash => "/",
        Tok::At => "@",
        Tok::Caret => "^",
        Tok::Gt => ">",
        Tok::Ge => ">=",
        Tok::Lt => "<",
        Tok::Le => "<=",
        Tok::Eq => "=",
        Tok::Dot => ".",
        Tok::Comma => ",",
        Tok::Colon => ":",
        Tok::Semi => ";",
        Tok::LParen => "(",
        Tok::RParen => ")",
        Tok::LBracket => "[",
        Tok::RBracket => "]",
        Tok::LBrace => "{",
        Tok::RBrace => "}",
    }
}

/// lalrpop's expected-terminal list (`"\";\""`, `"\"name\""`) in words:
/// "`;`, `,` or a name". Tokens that can start an expression collapse into
/// "an expression".
fn expected_in_words(expected: &[String]) -> String {
    let terminals: Vec<&str> = expected.iter().map(|t| t.trim_matches('"')).collect();
    let starts_expr = ["name", "number", "(", "-"].iter().all(|t| terminals.contains(t));
    let mut words: Vec<String> = Vec::new();
    if starts_expr {
        words.push("an expression".to_string());
    }
    for t in &terminals {
        let in_expr = ["name", "number", "(", "-", "true", "false"].contains(t);
        if starts_expr && in_expr {
            continue;
        }
        words.push(match *t {
            "name" => "a name".to_string(),
            "number" => "a number".to_string(),
            other => format!("`{}`", other.replace("\\\"", "\"")),
        });
    }
    match words.len() {
        0 => "nothing more".to_string(),
        1 => words.remove(0),
        n => format!("{} or {}", words[..n - 1].join(", "), words[n - 1]),
    }
}

// ---- grammar actions -------------------------------------------------------------

/// A literal from its text. The lexer's pattern guarantees the text parses.
pub(crate) fn number(text: &str, negate: bool, span: Span) -> Number {
    let value: f64 = text.parse().unwrap_or(f64::NAN);
    let is_integer = !text.contains(['.', 'e', 'E']);
    Number { value: if negate { -value } else { value }, is_integer, span }
}

pub(crate) fn number_negated(n: Number, start: usize) -> Number {
    Number { value: -n.value, span: Span::new(start, n.span.end), ..n }
}

/// Builds a node unless it would exceed [`MAX_EXPR_DEPTH`]; then reports once and
/// returns an error node, so the tree never grows past the limit.
pub(crate) fn capped(kind: ExprKind, span: Span, errors: &mut Recovered) -> Expr {
    let expr = Expr::new(kind, span);
    if expr.depth <= MAX_EXPR_DEPTH {
        return expr;
    }
    let already_reported = errors.iter().any(|e| {
        matches!(&e.error, ParseError::User { error: SyntaxError::ExprTooDeep { .. } })
    });
    if !already_reported {
        errors.push(ErrorRecovery {
            error: ParseError::User { error: SyntaxError::ExprTooDeep { span } },
            dropped_tokens: vec![],
        });
    }
    Expr::error(span)
}

pub(crate) fn binary(lhs: Expr, (op, op_span): (BinOp, Span), rhs: Expr, errors: &mut Recovered) -> Expr {
    let span = lhs.span.to(rhs.span);
    capped(ExprKind::Binary { op, op_span, lhs: Box::new(lhs), rhs: Box::new(rhs) }, span, errors)
}

pub(crate) fn transpose(e: Expr, field: Ident, span: Span, errors: &mut Recovered) -> Expr {
    if field.name == "T" {
        return capped(ExprKind::Transpose(Box::new(e)), span, errors);
    }
    errors.push(ErrorRecovery {
        error: ParseError::User {
            error: SyntaxError::NotTranspose { span: field.span, field: field.name },
        },
        dropped_tokens: vec![],
    });
    Expr::error(span)
}
