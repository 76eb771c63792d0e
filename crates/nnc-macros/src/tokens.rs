//! Rust tokens to `.nn` tokens, so the lalrpop parser reads `net! { ... }` with no
//! string round trip and every diagnostic can point at the user's own tokens.
//!
//! As it converts, the converter also lays the tokens out in a text at their line
//! and column in the user's file (where the compiler tells them, Rust 1.88+), and
//! gives each token the byte span it has in that text. So spans mean the same as
//! for a `.nn` file: generated comments say `lib.rs:12:5`, and [`SpanMap`] turns a
//! diagnostic's span back into the Rust spans of its first and last tokens.

use nnc_syntax::Span;
use nnc_syntax::lexer::{NestingDepth, Spanned, SyntaxError, Tok};
use proc_macro2::{Delimiter, Spacing, TokenStream, TokenTree};

/// Where each converted token came from.
#[derive(Debug, Default)]
pub struct SpanMap {
    /// Byte offset of each token in [`Converted::text`], ascending.
    starts: Vec<usize>,
    spans: Vec<proc_macro2::Span>,
}

impl SpanMap {
    /// The Rust spans of the first and last token a diagnostic span covers.
    pub fn lookup(&self, span: Span) -> (proc_macro2::Span, proc_macro2::Span) {
        let fallback = proc_macro2::Span::call_site();
        // The last token starting at or before the offset.
        let token_at = |offset: usize| {
            self.starts
                .partition_point(|s| *s <= offset)
                .saturating_sub(1)
        };
        let first = self
            .spans
            .get(token_at(span.start))
            .copied()
            .unwrap_or(fallback);
        let last_offset = span.end.saturating_sub(1).max(span.start);
        let last = self
            .spans
            .get(token_at(last_offset))
            .copied()
            .unwrap_or(first);
        (first, last)
    }
}

/// A macro's input as the parser and the code generator want it.
#[derive(Debug)]
pub struct Converted {
    pub tokens: Vec<Spanned>,
    /// The tokens laid out at their places in the user's file.
    pub text: String,
    pub map: SpanMap,
    /// The user's file, when the compiler says.
    pub file: Option<String>,
}

/// A token Rust accepts but `.nn` does not.
#[derive(Debug)]
pub struct Unsupported {
    pub span: proc_macro2::Span,
    pub message: String,
}

/// Converts a macro's input. Errors name the offending Rust token.
pub fn convert(input: TokenStream) -> Result<Converted, Unsupported> {
    let mut c = Converter {
        out: Converted {
            tokens: Vec::new(),
            text: String::new(),
            map: SpanMap::default(),
            file: None,
        },
        depth: NestingDepth::default(),
        line: 1,
        column: 0,
    };
    c.stream(input)?;
    Ok(c.out)
}

/// The trees of a group still to convert.
type Open = std::iter::Peekable<proc_macro2::token_stream::IntoIter>;

/// A group's closing bracket: its token, text and span.
type Close = (Tok, &'static str, proc_macro2::Span);

struct Converter {
    out: Converted,
    depth: NestingDepth,
    /// Where the text ends: 1-based line, 0-based column.
    line: usize,
    column: usize,
}

impl Converter {
    fn push(&mut self, tok: Tok, text: &str, span: proc_macro2::Span) {
        self.place(span);
        let start = self.out.text.len();
        self.out.text.push_str(text);
        self.column += text.chars().count();
        let synthetic = Span::new(start, self.out.text.len());
        self.out.map.starts.push(start);
        self.out.map.spans.push(span);
        match self.depth.track(&tok, synthetic) {
            Ok(()) => self.out.tokens.push(Ok((start, tok, synthetic.end))),
            Err(e) => self.out.tokens.push(Err(e)),
        }
    }

    /// A token `.nn` does not accept, as the lexer would report it: `error`'s span is
    /// relative to `text`, which is laid out like any token.
    fn push_error(&mut self, error: SyntaxError, text: &str, span: proc_macro2::Span) {
        self.place(span);
        let start = self.out.text.len();
        self.out.text.push_str(text);
        self.column += text.chars().count();
        self.out.map.starts.push(start);
        self.out.map.spans.push(span);
        self.out.tokens.push(Err(error.shifted(start)));
    }

    /// Moves the end of the text to the token's line and column, or adds a space when
    /// the compiler gives no location.
    fn place(&mut self, span: proc_macro2::Span) {
        let at = span.start();
        if self.out.file.is_none() && at.line > 0 {
            let file = span.file();
            self.out.file = Some(file.rsplit('/').next().unwrap_or(&file).to_string());
        }
        if at.line > self.line || (at.line == self.line && at.column >= self.column) {
            while self.line < at.line {
                self.out.text.push('\n');
                self.line += 1;
                self.column = 0;
            }
            while self.column < at.column {
                self.out.text.push(' ');
                self.column += 1;
            }
        } else if !self.out.text.is_empty() {
            self.out.text.push(' ');
            self.column += 1;
        }
    }

    /// Converts a whole stream. Groups are walked with a stack of their open
    /// streams, not by recursion: Rust hands a macro any depth of nesting (and
    /// invisible groups from `macro_rules!` count for nothing). As in the lexer, the
    /// first bracket past [`nnc_syntax::lexer::MAX_NESTING`] ends the tokens.
    fn stream(&mut self, input: TokenStream) -> Result<(), Unsupported> {
        // Each open group: its remaining trees, and its closing bracket.
        let mut stack: Vec<(Open, Option<Close>)> = vec![(input.into_iter().peekable(), None)];
        while let Some((iter, _)) = stack.last_mut() {
            let Some(tree) = iter.next() else {
                if let Some((_, Some((close, text, span)))) = stack.pop() {
                    self.push(close, text, span);
                }
                continue;
            };
            match tree {
                TokenTree::Group(g) => {
                    let (open, close, texts) = match g.delimiter() {
                        Delimiter::Parenthesis => (Tok::LParen, Tok::RParen, ("(", ")")),
                        Delimiter::Bracket => (Tok::LBracket, Tok::RBracket, ("[", "]")),
                        Delimiter::Brace => (Tok::LBrace, Tok::RBrace, ("{", "}")),
                        // Invisible groups come from macro_rules! expansion: splice.
                        Delimiter::None => {
                            stack.push((g.stream().into_iter().peekable(), None));
                            continue;
                        }
                    };
                    self.push(open, texts.0, g.span_open());
                    if matches!(
                        self.out.tokens.last(),
                        Some(Err(SyntaxError::TooDeep { .. }))
                    ) {
                        return Ok(());
                    }
                    stack.push((
                        g.stream().into_iter().peekable(),
                        Some((close, texts.1, g.span_close())),
                    ));
                }
                TokenTree::Ident(ident) => {
                    let text = ident.to_string();
                    if let Some(name) = text.strip_prefix("r#") {
                        return Err(raw_identifier(&text, name, ident.span()));
                    }
                    match name_error(&text) {
                        // Reported by the parser, as the lexer's errors are.
                        Some(error) => self.push_error(error, &text, ident.span()),
                        None => {
                            let tok = keyword(&text).unwrap_or_else(|| Tok::Ident(text.clone()));
                            self.push(tok, &text, ident.span());
                        }
                    }
                }
                TokenTree::Literal(lit) => {
                    let text = lit.to_string();
                    if !is_number(&text) {
                        return Err(Unsupported {
                            span: lit.span(),
                            message: format!(
                                "`{text}` is not a `.nn` number (write plain numbers like `1`, `0.5`, `1e-3`)"
                            ),
                        });
                    }
                    self.push(Tok::Number(text.clone()), &text, lit.span());
                }
                TokenTree::Punct(p) => {
                    let c = p.as_char();
                    // `>=` and `<=` arrive as a joint punct followed by `=`.
                    let joined_eq = p.spacing() == Spacing::Joint
                        && matches!(iter.peek(), Some(TokenTree::Punct(next)) if next.as_char() == '=');
                    // `..` arrives as a joint `.` followed by `.`.
                    let joined_dot = c == '.'
                        && p.spacing() == Spacing::Joint
                        && matches!(iter.peek(), Some(TokenTree::Punct(next)) if next.as_char() == '.');
                    if joined_dot {
                        iter.next();
                        self.push(Tok::DotDot, "..", p.span());
                        continue;
                    }
                    let (tok, text) = match (c, joined_eq) {
                        ('>', true) | ('<', true) => {
                            iter.next();
                            if c == '>' {
                                (Tok::Ge, ">=")
                            } else {
                                (Tok::Le, "<=")
                            }
                        }
                        ('+', _) => (Tok::Plus, "+"),
                        ('-', _) => (Tok::Minus, "-"),
                        ('*', _) => (Tok::Star, "*"),
                        ('/', _) => (Tok::Slash, "/"),
                        ('@', _) => (Tok::At, "@"),
                        ('^', _) => (Tok::Caret, "^"),
                        ('>', _) => (Tok::Gt, ">"),
                        ('<', _) => (Tok::Lt, "<"),
                        ('=', _) => (Tok::Eq, "="),
                        ('.', _) => (Tok::Dot, "."),
                        (',', _) => (Tok::Comma, ","),
                        (':', _) => (Tok::Colon, ":"),
                        (';', _) => (Tok::Semi, ";"),
                        _ => {
                            return Err(Unsupported {
                                span: p.span(),
                                message: format!("unexpected character `{c}` in `net!`"),
                            });
                        }
                    };
                    self.push(tok, text, p.span());
                }
            }
        }
        Ok(())
    }
}

/// Why Rust identifier `text` is not a `.nn` name or keyword, in the lexer's words:
/// Rust accepts Unicode letters (`größe`), `.nn` only ASCII.
fn name_error(text: &str) -> Option<SyntaxError> {
    if text.is_ascii() {
        return None;
    }
    let (_, errors) = nnc_syntax::lexer::tokenize(text);
    errors.into_iter().next()
}

/// `r#name`: not a `.nn` name (a raw identifier lets Rust use a keyword as a name;
/// `.nn`'s keywords cannot be names at all).
fn raw_identifier(text: &str, name: &str, span: proc_macro2::Span) -> Unsupported {
    let note = if keyword(name).is_some() {
        format!("`{name}` is a keyword in `.nn`, and keywords cannot be names")
    } else {
        format!("write `{name}`")
    };
    Unsupported {
        span,
        message: format!("raw identifier `{text}` is not a `.nn` name\n  note: {note}"),
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
        "state" => Tok::State,
        "let" => Tok::Let,
        "output" => Tok::Output,
        "loss" => Tok::Loss,
        "index" => Tok::Index,
        "grad" => Tok::Grad,
        "true" => Tok::True,
        "false" => Tok::False,
        "for" => Tok::For,
        "in" => Tok::In,
        "from" => Tok::From,
        _ => return None,
    })
}

/// Whether a Rust literal is a `.nn` number, by the lexer's own definition: it
/// lexes as exactly one number token.
fn is_number(text: &str) -> bool {
    let (tokens, errors) = nnc_syntax::lexer::tokenize(text);
    errors.is_empty()
        && matches!(tokens.as_slice(), [Ok((0, Tok::Number(_), end))] if *end == text.len())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Lowers a program read both ways: from text by the lexer, and from Rust tokens
    /// by [`convert`]; the IR (printed without positions) must be the same.
    fn both_ways(source: &str) -> (String, String) {
        let print = |models: Vec<nnc_ir::Model>| {
            models
                .iter()
                .map(|m| nnc_ir::print::print(m, None))
                .collect::<Vec<_>>()
                .join("\n")
        };
        let from_text = nnc_ir::compile_source(source).expect("the lexer path compiles");
        let rust_tokens: TokenStream = source.parse().expect("Rust tokenizes .nn source");
        let converted = convert(rust_tokens).expect("converts");
        let end = converted.text.len();
        let (file, diagnostics) = nnc_syntax::parser::parse_tokens(converted.tokens, end);
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
    fn tokens_keep_their_line_and_column() {
        let source = "model m {\n    dim N;\n    input x: [N, 2];\n  loss sum(x >= 1e-3);\n}\n";
        let converted = convert(source.parse().expect("tokenizes")).expect("converts");
        let (lexed, _) = nnc_syntax::lexer::tokenize(source);
        assert_eq!(converted.tokens.len(), lexed.len());
        for (a, b) in converted.tokens.iter().zip(&lexed) {
            let (Ok((sa, ta, _)), Ok((sb, tb, _))) = (a, b) else {
                panic!("token error")
            };
            assert_eq!(ta, tb);
            let at = |text: &str, offset: usize| nnc_syntax::diagnostic::line_col(text, offset);
            assert_eq!(at(&converted.text, *sa), at(source, *sb), "{ta:?}");
        }
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

    /// A loop's `..` (a joint `.` then a `.` in Rust's tokens, `0..L` with or
    /// without spaces) and its keywords, nested loops included.
    #[test]
    fn loops_read_the_same_from_rust_tokens() {
        let (a, b) = both_ways(
            "model m { dim N, L = 3; input x: [N, 2]; param w: [L, 2, 2]; \
             let h = for l in 0..L from x { let z = h @ w[l]; tanh(z) }; \
             let g = for i in 1 .. 3 from h { let k = for j in 0..i from g { k * 0.5 }; k }; \
             loss sum(g); }",
        );
        assert_eq!(a, b);
        assert!(a.contains("h_2"), "{a}");
    }

    #[test]
    fn raw_identifiers_are_rejected() {
        for (source, note) in [
            ("model r#model { loss 1; }", "`model` is a keyword"),
            ("model r#m { loss 1; }", "write `m`"),
        ] {
            let err = convert(source.parse().expect("tokenizes")).expect_err(source);
            assert!(
                err.message.starts_with("raw identifier `r#"),
                "{}",
                err.message
            );
            assert!(err.message.contains(note), "{}", err.message);
        }
    }

    /// Rust takes `größe` as a name; the lexer's error for it reaches the parser,
    /// which reports it as `nnc check` does.
    #[test]
    fn non_ascii_names_are_rejected_as_the_lexer_rejects_them() {
        let source = "model m { dim N; input größe: [N]; loss sum(größe); }";
        let converted = convert(source.parse().expect("tokenizes")).expect("converts");
        let (_, from_tokens) =
            nnc_syntax::parser::parse_tokens(converted.tokens, converted.text.len());
        let (_, from_text) = nnc_syntax::parse_and_check(source);
        assert_eq!(from_tokens[0].message, "unexpected characters `öß`");
        assert_eq!(from_tokens[0].message, from_text[0].message);
        assert_eq!(from_tokens[0].notes, from_text[0].notes);
    }

    #[test]
    fn non_number_literals_are_rejected() {
        for text in ["\"text\"", "1u8", "'c'", "2f32"] {
            let stream: TokenStream = format!("model m {{ loss {text}; }}")
                .parse()
                .expect("tokenizes");
            let err = convert(stream).expect_err(text);
            assert!(err.message.contains(text), "{}", err.message);
        }
    }
}
