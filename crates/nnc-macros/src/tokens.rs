//! Rust tokens to `.nn` tokens, so the lalrpop parser reads `net! { ... }` with no
//! string round trip and every diagnostic can point at the user's own tokens.
//!
//! Each `.nn` token gets a synthetic span `i..i + 1` (its index); [`SpanMap`] turns a
//! diagnostic's synthetic span back into the Rust spans of its first and last tokens.

use nnc_syntax::Span;
use nnc_syntax::lexer::{NestingDepth, Spanned, Tok};
use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Where each converted token came from.
#[derive(Debug, Default)]
pub struct SpanMap {
    spans: Vec<proc_macro2::Span>,
}

impl SpanMap {
    /// The Rust spans of the first and last token covered by a diagnostic span.
    pub fn lookup(&self, span: Span) -> (proc_macro2::Span, proc_macro2::Span) {
        let fallback = proc_macro2::Span::call_site();
        let first = self.spans.get(span.start).copied().or_else(|| self.spans.last().copied()).unwrap_or(fallback);
        let last_index = span.end.saturating_sub(1).max(span.start);
        let last = self.spans.get(last_index).copied().unwrap_or(first);
        (first, last)
    }

    /// The synthetic offset one past the last token (for "unexpected end of input").
    pub fn end(&self) -> usize {
        self.spans.len()
    }
}

/// A token Rust accepts but `.nn` does not.
#[derive(Debug)]
pub struct Unsupported {
    pub span: proc_macro2::Span,
    pub message: String,
}

/// Converts a macro's input. Errors name the offending Rust token.
pub fn convert(input: TokenStream) -> Result<(Vec<Spanned>, SpanMap), Unsupported> {
    let mut out = Converter { tokens: Vec::new(), map: SpanMap::default(), depth: NestingDepth::default() };
    out.stream(input)?;
    Ok((out.tokens, out.map))
}

struct Converter {
    tokens: Vec<Spanned>,
    map: SpanMap,
    depth: NestingDepth,
}

impl Converter {
    fn push(&mut self, tok: Tok, span: proc_macro2::Span) {
        let i = self.map.spans.len();
        self.map.spans.push(span);
        let synthetic = Span::new(i, i + 1);
        match self.depth.track(&tok, synthetic) {
            Ok(()) => self.tokens.push(Ok((i, tok, i + 1))),
            Err(e) => self.tokens.push(Err(e)),
        }
    }

    fn stream(&mut self, input: TokenStream) -> Result<(), Unsupported> {
        let mut iter = input.into_iter().peekable();
        while let Some(tree) = iter.next() {
            match tree {
                TokenTree::Group(g) => {
                    let (open, close) = match g.delimiter() {
                        Delimiter::Parenthesis => (Tok::LParen, Tok::RParen),
                        Delimiter::Bracket => (Tok::LBracket, Tok::RBracket),
                        Delimiter::Brace => (Tok::LBrace, Tok::RBrace),
                        // Invisible groups come from macro_rules! expansion: splice.
                        Delimiter::None => {
                            self.stream(g.stream())?;
                            continue;
                        }
                    };
                    self.push(open, g.span_open());
                    self.stream(g.stream())?;
                    self.push(close, g.span_close());
                }
                TokenTree::Ident(ident) => {
                    let text = ident.to_string();
                    self.push(keyword(&text).unwrap_or(Tok::Ident(text)), ident.span());
                }
                TokenTree::Literal(lit) => {
                    let text = lit.to_string();
                    if !is_number(&text) {
                        return Err(Unsupported {
                            span: lit.span(),
                            message: format!("`{text}` is not a `.nn` number (write plain numbers like `1`, `0.5`, `1e-3`)"),
                        });
                    }
                    self.push(Tok::Number(text), lit.span());
                }
                TokenTree::Punct(p) => {
                    let c = p.as_char();
                    // `>=` and `<=` arrive as a joint punct followed by `=`.
                    let joined_eq = p.spacing() == Spacing::Joint
                        && matches!(iter.peek(), Some(TokenTree::Punct(next)) if next.as_char() == '=');
                    let tok = match (c, joined_eq) {
                        ('>', true) | ('<', true) => {
                            iter.next();
                            if c == '>' { Tok::Ge } else { Tok::Le }
                        }
                        ('+', _) => Tok::Plus,
                        ('-', _) => Tok::Minus,
                        ('*', _) => Tok::Star,
                        ('/', _) => Tok::Slash,
                        ('@', _) => Tok::At,
                        ('^', _) => Tok::Caret,
                        ('>', _) => Tok::Gt,
                        ('<', _) => Tok::Lt,
                        ('=', _) => Tok::Eq,
                        ('.', _) => Tok::Dot,
                        (',', _) => Tok::Comma,
                        (':', _) => Tok::Colon,
                        (';', _) => Tok::Semi,
                        _ => {
                            return Err(Unsupported {
                                span: p.span(),
                                message: format!("unexpected character `{c}` in `net!`"),
                            });
                        }
                    };
                    self.push(tok, p.span());
                }
            }
        }
        Ok(())
    }
}

/// The lexer's keywords, by text.
fn keyword(text: &str) -> Option<Tok> {
    Some(match text {
        "fn" => Tok::Fn,
        "model" => Tok::Model,
        "dtype" => Tok::Dtype,
        "dim" => Tok::Dim,
        "const" => Tok::Const,
        "input" => Tok::Input,
        "param" => Tok::Param,
        "let" => Tok::Let,
        "output" => Tok::Output,
        "loss" => Tok::Loss,
        "index" => Tok::Index,
        "grad" => Tok::Grad,
        "true" => Tok::True,
        "false" => Tok::False,
        _ => return None,
    })
}

/// Whether a Rust literal is a `.nn` number, by the lexer's own definition: it
/// lexes as exactly one number token.
fn is_number(text: &str) -> bool {
    let (tokens, errors) = nnc_syntax::lexer::tokenize(text);
    errors.is_empty() && matches!(tokens.as_slice(), [Ok((0, Tok::Number(_), end))] if *end == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowers a program read both ways: from text by the lexer, and from Rust tokens
    /// by [`convert`]; the IR (printed without positions) must be the same.
    fn both_ways(source: &str) -> (String, String) {
        let print = |models: Vec<nnc_ir::Model>| {
            models.iter().map(|m| nnc_ir::print::print(m, None)).collect::<Vec<_>>().join("\n")
        };
        let from_text = nnc_ir::compile_source(source).expect("the lexer path compiles");
        let rust_tokens: TokenStream = source.parse().expect("Rust tokenizes .nn source");
        let (tokens, map) = convert(rust_tokens).expect("converts");
        let (file, diagnostics) = nnc_syntax::parser::parse_tokens(tokens, map.end());
        assert!(diagnostics.is_empty(), "{diagnostics:?}");
        let checked = nnc_syntax::check::check(&file);
        assert!(checked.is_empty(), "{checked:?}");
        let from_tokens = nnc_ir::lower_file(&file).expect("the token path lowers");
        (print(from_text), print(from_tokens))
    }

    #[test]
    fn every_spec_model_reads_the_same_from_rust_tokens() {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models");
        let mut count = 0;
        for entry in std::fs::read_dir(dir).expect("examples/models exists") {
            let path = entry.expect("readable entry").path();
            if path.extension().is_some_and(|e| e == "nn") {
                let source = std::fs::read_to_string(&path).expect("readable model");
                let (a, b) = both_ways(&source);
                assert_eq!(a, b, "{}", path.display());
                count += 1;
            }
        }
        assert!(count >= 9, "expected the spec models, found {count}");
    }

    #[test]
    fn operators_rust_splits_or_joins() {
        let (a, b) = both_ways(
            "model m { dim N; input x: [N, 3]; param w: [3, 3]; \
             let y = where(x >= 0, x, 0.5 * x) + where(x <= 1e-3, x.T.T, -x); \
             loss sum((y @ w) ^ 2); }",
        );
        assert_eq!(a, b);
    }

    #[test]
    fn non_number_literals_are_rejected() {
        for text in ["\"text\"", "1u8", "'c'", "2f32"] {
            let stream: TokenStream = format!("model m {{ loss {text}; }}").parse().expect("tokenizes");
            let err = convert(stream).expect_err(text);
            assert!(err.message.contains(text), "{}", err.message);
        }
    }
}
