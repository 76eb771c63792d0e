//! The parser: tokens to an AST, with lalrpop (the grammar is `grammar/nn.lalrpop`).
//!
//! Parsing never gives up at the first error: statements and items recover, and every
//! error found is returned as a [`Diagnostic`] beside whatever AST could be built.
//!
//! lalrpop says "unexpected token, expected one of ..."; `unexpected_token` turns
//! that into what the user most likely did: a missing `;` (pointed at the end of the
//! statement, not at the next line), an unclosed bracket (shown), `**` for `^`,
//! chained comparisons, a keyword used as a name, a misspelt keyword. A parse error
//! right after a character that starts no token is dropped as its consequence.

use crate::Span;
use crate::ast::{BinOp, Block, Expr, ExprKind, File, Ident, Let, Loop, MAX_EXPR_DEPTH, Number};
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
    // A parse error at the first token after a bad character is most likely caused by
    // the character (`x × w` reads as `x w`): only the character is reported.
    let mut follow_ons: Vec<usize> = Vec::new();
    if !lex_errors.is_empty() {
        let starts: Vec<usize> = tokens
            .iter()
            .filter_map(|t| t.as_ref().ok())
            .map(|t| t.0)
            .collect();
        follow_ons = lex_errors
            .iter()
            .filter_map(|e| {
                starts
                    .get(starts.partition_point(|s| *s < e.span().end))
                    .copied()
            })
            .collect();
    }
    // The tokens go to the parser; error messages, if any, lex the source again.
    let context = || Context::new(&lexer::tokenize(source).0);
    let (file, mut diagnostics, quiet) = parse_inner(tokens, source.len(), &follow_ons, context);
    diagnostics.extend(
        lex_errors
            .into_iter()
            .map(user_error)
            .filter(|d| !is_consequence(d, &quiet)),
    );
    diagnostics.sort_by_key(|d| d.span.start);
    (file, diagnostics)
}

/// Parses a token stream that may come from the lexer or from `net!`'s converter.
/// `end` is the offset reported for "unexpected end of input".
pub fn parse_tokens(tokens: Vec<Spanned>, end: usize) -> (File, Vec<Diagnostic>) {
    let context = Context::new(&tokens);
    let (file, diagnostics, _) = parse_inner(tokens, end, &[], move || context);
    (file, diagnostics)
}

/// Parses, dropping errors whose unexpected token starts at one of `follow_ons`
/// (sorted, as lexer errors come in order).
fn parse_inner(
    tokens: Vec<Spanned>,
    end: usize,
    follow_ons: &[usize],
    context: impl FnOnce() -> Context,
) -> (File, Vec<Diagnostic>, Vec<Span>) {
    let mut recovered: Recovered = Vec::new();
    let result = generated::FileParser::new().parse(&mut recovered, tokens);
    let mut errors: Vec<ParseError<usize, Tok, SyntaxError>> =
        recovered.into_iter().map(|r| r.error).collect();
    let file = match result {
        Ok(file) => file,
        Err(error) => {
            errors.push(error);
            File { items: vec![] }
        }
    };
    let is_follow_on = |e: &ParseError<usize, Tok, SyntaxError>| match e {
        ParseError::UnrecognizedToken {
            token: (l, _, _), ..
        }
        | ParseError::ExtraToken { token: (l, _, _) } => follow_ons.binary_search(l).is_ok(),
        _ => false,
    };
    if errors.is_empty() {
        return (file, Vec::new(), Vec::new());
    }
    let context = context();
    let quiet: Vec<Span> = errors
        .iter()
        .filter_map(|e| consequences(e, &context))
        .collect();
    let mut diagnostics: Vec<Diagnostic> = errors
        .into_iter()
        .filter(|e| !is_follow_on(e))
        .map(|e| parse_error(e, end, &context))
        .filter(|d| !is_consequence(d, &quiet))
        .collect();
    diagnostics.sort_by_key(|d| d.span.start);
    diagnostics.dedup_by(|a, b| a.span == b.span && a.message == b.message);
    (file, diagnostics, quiet)
}

/// Whether `d` starts inside one of the `quiet` spans (after its first token,
/// which holds the diagnostic that explains the rest).
fn is_consequence(d: &Diagnostic, quiet: &[Span]) -> bool {
    quiet
        .iter()
        .any(|q| d.span.start > q.start && d.span.start < q.end)
}

/// What an error message may look at besides the offending token: the tokens before it.
struct Context {
    tokens: Vec<TokenInfo>,
    /// The innermost bracket still open after the last token.
    open_at_end: Option<(Span, char)>,
}

#[derive(Clone)]
struct TokenInfo {
    span: Span,
    tok: Tok,
    /// The innermost bracket open just before this token, and which one.
    open: Option<(Span, char)>,
}

impl Context {
    fn new(tokens: &[Spanned]) -> Context {
        let mut open: Vec<(Span, char)> = Vec::new();
        let mut infos = Vec::with_capacity(tokens.len());
        for (l, tok, r) in tokens.iter().filter_map(|t| t.as_ref().ok()) {
            let span = Span::new(*l, *r);
            infos.push(TokenInfo {
                span,
                tok: tok.clone(),
                open: open.last().copied(),
            });
            match tok {
                Tok::LParen => open.push((span, '(')),
                Tok::LBracket => open.push((span, '[')),
                Tok::LBrace => open.push((span, '{')),
                Tok::RParen | Tok::RBracket | Tok::RBrace => {
                    open.pop();
                }
                _ => {}
            }
        }
        Context {
            tokens: infos,
            open_at_end: open.last().copied(),
        }
    }

    /// The token just before offset `at`.
    fn before(&self, at: usize) -> Option<&TokenInfo> {
        let i = self.tokens.partition_point(|t| t.span.start < at);
        i.checked_sub(1).map(|i| &self.tokens[i])
    }

    /// The index of the token that starts at offset `at`, if one does.
    fn index_at(&self, at: usize) -> Option<usize> {
        let i = self.tokens.partition_point(|t| t.span.start < at);
        (self.tokens.get(i)?.span.start == at).then_some(i)
    }

    /// The innermost bracket open at offset `at` (the start of a token, or the end).
    fn open_at(&self, at: usize) -> Option<(Span, char)> {
        let i = self.tokens.partition_point(|t| t.span.start < at);
        match self.tokens.get(i) {
            Some(t) => t.open,
            None => self.open_at_end,
        }
    }

    /// The index of the `}` that closes the `{` at index `open`.
    fn closing(&self, open: usize) -> Option<usize> {
        let mut depth = 0usize;
        for (i, t) in self.tokens.iter().enumerate().skip(open) {
            match t.tok {
                Tok::LBrace => depth += 1,
                Tok::RBrace if depth <= 1 => return Some(i),
                Tok::RBrace => depth -= 1,
                _ => {}
            }
        }
        None
    }

    /// From the token starting at `at` to the end of the block it is in (the `}`
    /// closing the innermost `{` open there, or the end of input); at the top level,
    /// to the end of the first block that starts after it.
    fn to_end_of_block(&self, at: usize) -> Option<Span> {
        let i = self.index_at(at)?;
        let open = match self.open_at(at) {
            Some((span, '{')) => self.index_at(span.start)?,
            _ => (i..self.tokens.len()).find(|&j| self.tokens[j].tok == Tok::LBrace)?,
        };
        let last = self.closing(open).unwrap_or(self.tokens.len() - 1);
        Some(self.tokens[i].span.to(self.tokens[last].span))
    }
}

/// The closing bracket of an opening one.
fn closer(open: char) -> &'static str {
    match open {
        '(' => ")",
        '[' => "]",
        _ => "}",
    }
}

/// "this `(` is never closed", when the parser wanted the matching closer at `at`.
fn with_unclosed(d: Diagnostic, at: usize, expected: &[String], context: &Context) -> Diagnostic {
    match context.open_at(at) {
        Some((span, open)) if expected.iter().any(|e| e.trim_matches('"') == closer(open)) => {
            d.with_related(span, format!("this `{open}` is not closed"))
        }
        _ => d,
    }
}

/// Keywords that start a statement or an item: a `;` missing before one of these
/// (or before `}`) is reported as a missing `;`.
fn starts_statement(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Dtype
            | Tok::Dim
            | Tok::Const
            | Tok::Input
            | Tok::Param
            | Tok::State
            | Tok::Let
            | Tok::Output
            | Tok::Loss
            | Tok::Fn
            | Tok::Model
            | Tok::RBrace
    )
}

fn parse_error(
    error: ParseError<usize, Tok, SyntaxError>,
    end: usize,
    context: &Context,
) -> Diagnostic {
    match error {
        ParseError::InvalidToken { location } => {
            Diagnostic::error("invalid token", Span::new(location, location + 1))
        }
        ParseError::UnrecognizedEof { location, expected } => {
            let at = Span::new(location.min(end), location.min(end));
            let d = Diagnostic::error("unexpected end of input", at)
                .with_label(format!("expected {}", expected_in_words(&expected)));
            with_unclosed(d, location, &expected, context)
        }
        ParseError::UnrecognizedToken {
            token: (l, tok, r),
            expected,
        } => unexpected_token(Span::new(l, r), &tok, &expected, context),
        ParseError::ExtraToken { token: (l, tok, r) } => {
            Diagnostic::error(format!("unexpected {}", describe(&tok)), Span::new(l, r))
                .with_label("expected the end of input")
        }
        ParseError::User { error } => user_error(error),
    }
}

/// The diagnostic for a token the grammar does not allow where it is. The common
/// mistakes get their own wording; the rest say what was expected.
fn unexpected_token(span: Span, tok: &Tok, expected: &[String], context: &Context) -> Diagnostic {
    let expects = |t: &str| expected.iter().any(|e| e.trim_matches('"') == t);
    let before = context.before(span.start);
    let comparison = matches!(tok, Tok::Gt | Tok::Ge | Tok::Lt | Tok::Le);

    if *tok == Tok::LParen
        && let Some(d) = method_call(span, context)
    {
        return d;
    }
    if let Some(word) = statement_word(tok)
        && let Some(d) = foreign_statement(word, span, expected)
    {
        return d;
    }

    if let (Tok::Star, Some(star)) = (tok, before)
        && star.tok == Tok::Star
        && star.span.end == span.start
    {
        return Diagnostic::error("`**` is not an operator", star.span.to(span))
            .with_label("write `^` for a power: `x ^ 2`");
    }
    if comparison && expects("+") && !expects(">") {
        return Diagnostic::error("comparisons cannot be chained", span)
            .with_label("a second comparison")
            .with_note("a comparison gives a 0/1 mask; combine two with `*`: `(a < b) * (b < c)`");
    }
    if let (true, true, Some(prev)) = (expects(";"), starts_statement(tok), before) {
        let prev_end = prev.span.end;
        let next = if *tok == Tok::RBrace {
            "the block ends here".to_string()
        } else {
            format!("{} starts the next statement", describe(tok))
        };
        return Diagnostic::error("missing `;`", Span::new(prev_end, prev_end))
            .with_label("expected `;` here")
            .with_related(span, next);
    }

    let mut d = Diagnostic::error(format!("unexpected {}", describe(tok)), span)
        .with_label(format!("expected {}", expected_in_words(expected)));
    // Reaching the end of a statement with a bracket open: the bracket is the mistake.
    if *tok == Tok::Semi || starts_statement(tok) {
        d = with_unclosed(d, span.start, expected, context);
    }
    let only = |set: &[&str]| expected.len() == set.len() && set.iter().all(|t| expects(t));
    if only(&[",", "]"]) {
        d = d.with_note("a shape lists `dim` names and integer literals: `[N, 10]`");
    }
    if only(&["from"]) {
        d = d.with_note(
            "a loop says where the value it carries starts: `for l in 0..L from x { ... }`",
        );
    }
    if *tok == Tok::RBrace && expects("let") {
        d = d.with_note("a block ends with its value: the expression the function gives");
    }
    if only(&["fn", "model", "const"]) && starts_statement(tok) {
        d = d.with_note(format!(
            "`{}` statements belong inside a `model {{ ... }}`",
            token_text(tok)
        ));
        if *tok == Tok::Let {
            d = d.with_note("a number for the whole file is a `const`: `const scale = 2;`");
        }
    }
    if is_keyword(tok) && expects("name") {
        d = d.with_note(format!(
            "`{}` is a keyword and cannot be used as a name",
            token_text(tok)
        ));
    }
    if let Tok::Ident(name) = tok {
        let keywords = expected.iter().map(|e| e.trim_matches('"')).filter(|e| {
            e.chars().all(|c| c.is_ascii_lowercase()) && *e != "name" && *e != "number"
        });
        if let Some(keyword) = crate::check::suggest(name, keywords) {
            d = d.with_note(format!("did you mean `{keyword}`?"));
        }
    }
    d
}

/// Module prefixes that Python code puts before the functions `.nn` calls bare.
const MODULES: &[&str] = &[
    "np", "numpy", "jnp", "jax", "torch", "F", "nn", "math", "tf",
];

/// `x.sum(...)`, `w.transpose()`, `np.tanh(x)`: a method call (or a module's
/// function), which `.nn` does not have, at the `(` that follows `.name`.
fn method_call(paren: Span, context: &Context) -> Option<Diagnostic> {
    let i = context.index_at(paren.start)?;
    let (dot, name) = (&context.tokens[i.checked_sub(2)?], &context.tokens[i - 1]);
    let (Tok::Dot, Tok::Ident(method)) = (&dot.tok, &name.tok) else {
        return None;
    };
    let receiver = match i.checked_sub(3).map(|r| &context.tokens[r]) {
        Some(TokenInfo {
            tok: Tok::Ident(r),
            span,
            ..
        }) if span.end == dot.span.start => Some((r.as_str(), *span)),
        _ => None,
    };
    let known =
        crate::builtins::builtin(method).is_some() || crate::prelude::function(method).is_some();
    let no_args = matches!(context.tokens.get(i + 1), Some(t) if t.tok == Tok::RParen);
    let headline = "method calls are not part of `.nn`";
    let called = dot.span.to(paren);
    let d = match (receiver, method.as_str()) {
        (Some((module, at)), _) if known && MODULES.contains(&module) => {
            Diagnostic::error("`.nn` functions have no module prefix", at.to(name.span))
                .with_label(format!("write `{method}(...)`"))
        }
        (_, "transpose" | "t" | "T") => {
            let x = receiver.map_or("x", |(r, _)| r);
            Diagnostic::error(headline, called)
                .with_label(format!("write `{x}.T` for the transpose"))
        }
        (_, "pow") => Diagnostic::error(headline, called).with_label("write `x ^ p` for a power"),
        _ if known => {
            let label = match receiver {
                Some((x, _)) if no_args => format!("write `{method}({x})`"),
                Some((x, _)) => format!("write `{method}({x}, ...)`"),
                None => format!("write `{method}(...)`, the value its first argument"),
            };
            Diagnostic::error(headline, called).with_label(label)
        }
        _ => Diagnostic::error(headline, called)
            .with_label("a method call")
            .with_note("`.nn` has functions, not methods: `f(x)`; the only postfix is `.T`"),
    };
    Some(d)
}

/// A statement of another language where `.nn` expects one of its own: a loop, an
/// `if`, a `return`, a Python `def`.
fn foreign_statement(word: &str, span: Span, expected: &[String]) -> Option<Diagnostic> {
    if !at_statement(expected) {
        return None;
    }
    let d = match word {
        "for" => Diagnostic::error("a loop is the value of a `let`", span)
            .with_label("a `for` statement")
            .with_note(
                "a loop computes a value step by step, carrying the `let`'s name: \
                 `let h = for l in 0..L from x { tanh(h @ w[l]) };`",
            ),
        "while" => Diagnostic::error("`.nn` has no `while` loops", span)
            .with_label("a `while` loop")
            .with_note(
                "loops run a number of steps known when the model compiles: \
                 `let h = for l in 0..L from x { tanh(h @ w[l]) };`",
            ),
        "if" => Diagnostic::error("`.nn` has no `if` statement", span)
            .with_label("an `if`")
            .with_note("`where(cond, a, b)` chooses elementwise: `where(x > 0, x, 0.1 * x)`"),
        "return" => Diagnostic::error("`.nn` has no `return`", span)
            .with_label("a `return`")
            .with_note(
                "a model gives its value with `loss expr;` (and `output name;`), \
                 a `fn` with its body: `fn f(x) = x * x;`",
            ),
        "def" | "function" | "func" => Diagnostic::error(format!("`{word}` is not a keyword of `.nn`"), span)
            .with_label("a function definition?")
            .with_note("functions are written `fn name(x, y) = expression;`"),
        "import" | "from" | "use" => Diagnostic::error("`.nn` has no imports", span)
            .with_label(format!("an `{word}`"))
            .with_note("the built-in functions and the prelude (`relu`, `softmax_cross_entropy`, ...) are always there"),
        _ => return None,
    };
    Some(d)
}

/// Where the parser's errors after `error` are its consequences: after a loop or
/// `if`, which `.nn` does not have, to the end of the block it is in (its `0..3`,
/// its `y = ...` and the statements the parser no longer sees inside the model
/// would otherwise each get an error of their own; the user fixes the loop first).
fn consequences(error: &ParseError<usize, Tok, SyntaxError>, context: &Context) -> Option<Span> {
    let ParseError::UnrecognizedToken {
        token: (l, tok, _),
        expected,
    } = error
    else {
        return None;
    };
    let word = statement_word(tok)?;
    if !matches!(word, "for" | "while" | "if") || !at_statement(expected) {
        return None;
    }
    context.to_end_of_block(*l)
}

/// The word a token at the start of a statement spells, for the statements of other
/// languages: a name, or one of `.nn`'s loop keywords out of place.
fn statement_word(tok: &Tok) -> Option<&str> {
    match tok {
        Tok::Ident(word) => Some(word),
        Tok::For => Some("for"),
        Tok::From => Some("from"),
        _ => None,
    }
}

/// Whether the parser wanted a statement (`let`) or an item (`fn`) where it stopped.
fn at_statement(expected: &[String]) -> bool {
    expected
        .iter()
        .any(|e| matches!(e.trim_matches('"'), "let" | "fn"))
}

fn is_keyword(tok: &Tok) -> bool {
    matches!(
        tok,
        Tok::Fn
            | Tok::Model
            | Tok::Dtype
            | Tok::Dim
            | Tok::Const
            | Tok::Input
            | Tok::Param
            | Tok::State
            | Tok::Let
            | Tok::Output
            | Tok::Loss
            | Tok::Index
            | Tok::Grad
            | Tok::True
            | Tok::False
            | Tok::For
            | Tok::In
            | Tok::From
    )
}

fn user_error(error: SyntaxError) -> Diagnostic {
    match error {
        SyntaxError::UnexpectedChar { span, text } => {
            let plural = if text.chars().count() > 1 { "s" } else { "" };
            // Invisible characters are named by code point.
            let shown = if text
                .chars()
                .any(|c| c.is_whitespace() || c.is_control() || c == '\u{200b}')
            {
                text.chars()
                    .map(|c| format!("U+{:04X}", c as u32))
                    .collect::<Vec<_>>()
                    .join(" ")
            } else {
                format!("`{text}`")
            };
            let d = Diagnostic::error(format!("unexpected character{plural} {shown}"), span)
                .with_label("no token starts with this");
            match unexpected_char_hint(&text) {
                Some(hint) => d.with_note(hint),
                None => d,
            }
        }
        SyntaxError::TrailingDot { span, text } => {
            Diagnostic::error(format!("a number cannot end with `.`: `{text}`"), span).with_label(
                format!("write `{text}0` or `{}`", text.trim_end_matches('.')),
            )
        }
        SyntaxError::TooDeep { span } => Diagnostic::error("brackets nested too deeply", span)
            .with_label(format!("more than {} levels deep here", lexer::MAX_NESTING)),
        SyntaxError::ExprTooDeep { span } => {
            // The expression can be very long: point at its first token only.
            let start = Span::new(span.start, (span.start + 1).min(span.end));
            Diagnostic::error("expression nested too deeply", start)
                .with_label(format!(
                    "the expression starting here is more than {MAX_EXPR_DEPTH} levels deep"
                ))
                .with_note("split it into steps with `let`")
        }
        SyntaxError::NotTranspose { span, field } => {
            Diagnostic::error(format!("unknown postfix `.{field}`"), span)
                .with_label("the only postfix is `.T` (transpose)")
        }
    }
}

/// What a character that starts no token was probably meant to be.
fn unexpected_char_hint(text: &str) -> Option<String> {
    let first = text.chars().next()?;
    let hint = match first {
        '#' => "comments start with `//`",
        '×' | '·' | '⋅' | '∗' => {
            "write `*` for an elementwise product, `@` for a matrix product"
        }
        '−' | '–' | '—' => "did you mean `-`?",
        '÷' => "did you mean `/`?",
        '≤' => "did you mean `<=`?",
        '≥' => "did you mean `>=`?",
        '\u{a0}' | '\u{2000}'..='\u{200b}' | '\u{3000}' => {
            "this is an unusual space (copied from a web page?): use a plain space"
        }
        '"' | '\'' => "there are no strings in `.nn`",
        c if c.is_alphabetic() => "names are made of ASCII letters, digits and `_`",
        _ => return None,
    };
    Some(hint.to_string())
}

/// A token as a user would name it.
pub fn describe(tok: &Tok) -> String {
    match tok {
        Tok::Ident(name) => format!("name `{name}`"),
        Tok::Number(text) => format!("number `{text}`"),
        other if is_keyword(other) => format!("keyword `{}`", token_text(other)),
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
        Tok::State => "state",
        Tok::Let => "let",
        Tok::Output => "output",
        Tok::Loss => "loss",
        Tok::Index => "index",
        Tok::Grad => "grad",
        Tok::True => "true",
        Tok::False => "false",
        Tok::For => "for",
        Tok::In => "in",
        Tok::From => "from",
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
        Tok::DotDot => "..",
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
/// "an expression", and the operators that may follow an operand (with `.T`, the
/// `(` of a call and the `[` of an index) into "an operator".
fn expected_in_words(expected: &[String]) -> String {
    const EXPR_START: [&str; 6] = ["name", "number", "(", "-", "true", "false"];
    const OPERATORS: [&str; 6] = ["+", "-", "*", "/", "@", "^"];
    const AFTER_OPERAND: [&str; 13] = [
        "+", "-", "*", "/", "@", "^", ">", ">=", "<", "<=", ".", "(", "[",
    ];
    let terminals: Vec<&str> = expected.iter().map(|t| t.trim_matches('"')).collect();
    let starts_expr = ["name", "number", "(", "-"]
        .iter()
        .all(|t| terminals.contains(t));
    let operator = !starts_expr && OPERATORS.iter().all(|t| terminals.contains(t));
    let mut words: Vec<String> = Vec::new();
    if starts_expr {
        words.push("an expression".to_string());
    }
    if operator {
        words.push("an operator".to_string());
    }
    for t in &terminals {
        if (starts_expr && EXPR_START.contains(t)) || (operator && AFTER_OPERAND.contains(t)) {
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
    Number {
        value: if negate { -value } else { value },
        is_integer,
        span,
    }
}

pub(crate) fn number_negated(n: Number, start: usize) -> Number {
    Number {
        value: -n.value,
        span: Span::new(start, n.span.end),
        ..n
    }
}

/// `let name = for index in start..end from from { body }`: the `let` whose value is
/// the loop, which carries `name` from one step to the next (and `let name, steps =
/// ...` also keeps every step's value as `steps`).
#[allow(
    clippy::too_many_arguments,
    reason = "the grammar action's captures, in order"
)]
pub(crate) fn loop_let(
    (name, steps): (Ident, Option<Ident>),
    index: Ident,
    start: Expr,
    end: Expr,
    from: Expr,
    body: Block,
    header: Span,
    span: Span,
    errors: &mut Recovered,
) -> Let {
    let lp = Loop {
        index,
        start,
        end,
        from,
        body,
        carried: name.clone(),
        steps,
        header,
    };
    let value = capped(ExprKind::Loop(Box::new(lp)), span, errors);
    Let { name, value }
}

/// Builds a node unless it would exceed [`MAX_EXPR_DEPTH`]; then reports once and
/// returns an error node, so the tree never grows past the limit.
pub(crate) fn capped(kind: ExprKind, span: Span, errors: &mut Recovered) -> Expr {
    let expr = Expr::new(kind, span);
    if expr.depth <= MAX_EXPR_DEPTH {
        return expr;
    }
    let already_reported = errors.iter().any(|e| {
        matches!(
            &e.error,
            ParseError::User {
                error: SyntaxError::ExprTooDeep { .. }
            }
        )
    });
    if !already_reported {
        errors.push(ErrorRecovery {
            error: ParseError::User {
                error: SyntaxError::ExprTooDeep { span },
            },
            dropped_tokens: vec![],
        });
    }
    Expr::error(span)
}

pub(crate) fn binary(
    lhs: Expr,
    (op, op_span): (BinOp, Span),
    rhs: Expr,
    errors: &mut Recovered,
) -> Expr {
    let span = lhs.span.to(rhs.span);
    capped(
        ExprKind::Binary {
            op,
            op_span,
            lhs: Box::new(lhs),
            rhs: Box::new(rhs),
        },
        span,
        errors,
    )
}

pub(crate) fn transpose(e: Expr, field: Ident, span: Span, errors: &mut Recovered) -> Expr {
    if field.name == "T" {
        return capped(ExprKind::Transpose(Box::new(e)), span, errors);
    }
    errors.push(ErrorRecovery {
        error: ParseError::User {
            error: SyntaxError::NotTranspose {
                span: field.span,
                field: field.name,
            },
        },
        dropped_tokens: vec![],
    });
    Expr::error(span)
}
