//! The lexer: source text to tokens, with logos.
//!
//! The token type [`Tok`] is also what the `net!` macro produces from Rust tokens, so
//! the parser does not care where its tokens came from. Tokens carry owned data for
//! that reason.

use crate::Span;
use logos::Logos;

#[derive(Logos, Clone, Debug, PartialEq)]
#[logos(skip r"[ \t\r\n\f]+")]
#[logos(skip(r"//[^\n]*", allow_greedy = true))]
pub enum Tok {
    #[token("fn")]
    Fn,
    #[token("model")]
    Model,
    #[token("dtype")]
    Dtype,
    #[token("dim")]
    Dim,
    #[token("const")]
    Const,
    #[token("input")]
    Input,
    #[token("param")]
    Param,
    #[token("state")]
    State,
    #[token("let")]
    Let,
    #[token("output")]
    Output,
    #[token("loss")]
    Loss,
    #[token("index")]
    Index,
    #[token("grad")]
    Grad,
    #[token("true")]
    True,
    #[token("false")]
    False,
    #[token("for")]
    For,
    #[token("in")]
    In,
    #[token("from")]
    From,

    #[regex("[A-Za-z_][A-Za-z0-9_]*", |lex| lex.slice().to_string())]
    Ident(String),
    /// The literal's text; the parser turns it into a value.
    #[regex(r"[0-9]+(\.[0-9]+)?([eE][+-]?[0-9]+)?", |lex| lex.slice().to_string())]
    Number(String),

    #[token("+")]
    Plus,
    #[token("-")]
    Minus,
    #[token("*")]
    Star,
    #[token("/")]
    Slash,
    #[token("@")]
    At,
    #[token("^")]
    Caret,
    #[token(">")]
    Gt,
    #[token(">=")]
    Ge,
    #[token("<")]
    Lt,
    #[token("<=")]
    Le,
    #[token("=")]
    Eq,
    #[token(".")]
    Dot,
    #[token("..")]
    DotDot,
    #[token(",")]
    Comma,
    #[token(":")]
    Colon,
    #[token(";")]
    Semi,
    #[token("(")]
    LParen,
    #[token(")")]
    RParen,
    #[token("[")]
    LBracket,
    #[token("]")]
    RBracket,
    #[token("{")]
    LBrace,
    #[token("}")]
    RBrace,
}

/// Syntax errors found outside lalrpop's own machinery: by the lexer, or by grammar
/// actions (this is the grammar's user error type).
#[derive(Clone, Debug, PartialEq)]
pub enum SyntaxError {
    /// Characters that start no token (a run of adjacent ones is one error).
    UnexpectedChar { span: Span, text: String },
    /// A number written with a trailing point, `2.`: the span covers the number and
    /// the point.
    TrailingDot { span: Span, text: String },
    /// Brackets nested deeper than [`MAX_NESTING`].
    TooDeep { span: Span },
    /// An expression tree taller than [`crate::ast::MAX_EXPR_DEPTH`].
    ExprTooDeep { span: Span },
    /// `x.foo` where only `x.T` exists.
    NotTranspose { span: Span, field: String },
}

impl SyntaxError {
    /// The same error in a text where the one it was found in starts at `offset`.
    pub fn shifted(mut self, offset: usize) -> SyntaxError {
        let (SyntaxError::UnexpectedChar { span, .. }
        | SyntaxError::TrailingDot { span, .. }
        | SyntaxError::TooDeep { span }
        | SyntaxError::ExprTooDeep { span }
        | SyntaxError::NotTranspose { span, .. }) = &mut self;
        *span = Span::new(span.start + offset, span.end + offset);
        self
    }

    /// Where the error is.
    pub fn span(&self) -> Span {
        match self {
            SyntaxError::UnexpectedChar { span, .. }
            | SyntaxError::TrailingDot { span, .. }
            | SyntaxError::TooDeep { span }
            | SyntaxError::ExprTooDeep { span }
            | SyntaxError::NotTranspose { span, .. } => *span,
        }
    }
}

/// Deepest bracket nesting accepted. Real models nest a handful of levels; the limit
/// keeps every later pass's recursion bounded.
pub const MAX_NESTING: usize = 128;

/// A token with its byte span, as lalrpop's external-lexer interface wants it.
pub type Spanned = Result<(usize, Tok, usize), SyntaxError>;

/// Lexes all of `source`. Characters that start no token are reported and skipped, so
/// the parser still sees the rest of the file (after a `#`, taken for a comment from
/// another language, the rest of the line is skipped too); nesting deeper than
/// [`MAX_NESTING`] ends the token stream with an error, which stops the parser.
pub fn tokenize(source: &str) -> (Vec<Spanned>, Vec<SyntaxError>) {
    let mut tokens: Vec<Spanned> = Vec::new();
    let mut errors: Vec<SyntaxError> = Vec::new();
    let mut depth = NestingDepth::default();
    // Tokens starting before this offset are skipped (the rest of a `#` line).
    let mut skip_until = 0;
    for (tok, range) in Tok::lexer(source).spanned() {
        let span = Span::from(range);
        if span.start < skip_until {
            continue;
        }
        match tok {
            Ok(Tok::Dot) if trailing_dot(source, &tokens, span) => {
                // `2.`: report the number with its point; the parser sees just `2`.
                let Some(Ok((start, Tok::Number(text), _))) = tokens.last() else {
                    continue;
                };
                let span = Span::new(*start, span.end);
                errors.push(SyntaxError::TrailingDot {
                    span,
                    text: format!("{text}."),
                });
            }
            Ok(tok) => {
                if let Err(too_deep) = depth.track(&tok, span) {
                    tokens.push(Err(too_deep));
                    break;
                }
                tokens.push(Ok((span.start, tok, span.end)));
            }
            Err(()) => {
                let text = source.get(span.range()).unwrap_or("");
                if text == "#" {
                    skip_until = source[span.end..]
                        .find('\n')
                        .map_or(source.len(), |i| span.end + i);
                }
                match errors.last_mut() {
                    // Adjacent bad characters are one error: `$$`, `¿¿`.
                    Some(SyntaxError::UnexpectedChar {
                        span: last,
                        text: last_text,
                    }) if last.end == span.start && text != "#" && last_text != "#" => {
                        last.end = span.end;
                        last_text.push_str(text);
                    }
                    _ => errors.push(SyntaxError::UnexpectedChar {
                        span,
                        text: text.to_string(),
                    }),
                }
            }
        }
    }
    (tokens, errors)
}

/// Whether the `.` at `dot` ends a number (`2.`): it follows a number directly and
/// no name follows it directly (`2.T` would be a transpose, wrong only later).
fn trailing_dot(source: &str, tokens: &[Spanned], dot: Span) -> bool {
    let after_number =
        matches!(tokens.last(), Some(Ok((_, Tok::Number(_), end))) if *end == dot.start);
    let next = source[dot.end..].chars().next();
    after_number && !next.is_some_and(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// Bracket depth of a token stream; shared with the `net!` macro's token converter.
#[derive(Default)]
pub struct NestingDepth(usize);

impl NestingDepth {
    /// Updates the depth for `tok`; an error once it exceeds [`MAX_NESTING`].
    pub fn track(&mut self, tok: &Tok, span: Span) -> Result<(), SyntaxError> {
        match tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => {
                self.0 += 1;
                if self.0 > MAX_NESTING {
                    return Err(SyntaxError::TooDeep { span });
                }
            }
            Tok::RParen | Tok::RBracket | Tok::RBrace => self.0 = self.0.saturating_sub(1),
            _ => {}
        }
        Ok(())
    }
}
