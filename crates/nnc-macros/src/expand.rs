//! Expanding `net!`: which form, the pipeline, and errors as `compile_error!`.

use crate::tokens::{self, SpanMap};
use nnc_syntax::Diagnostic;
use proc_macro2::{Span, TokenStream, TokenTree};
use quote::quote_spanned;

/// The whole expansion: generated modules, or errors.
pub fn net(input: TokenStream) -> TokenStream {
    match file_argument(&input) {
        Some(Ok((path, span))) => from_file(&path, span),
        Some(Err(e)) => e.to_compile_error(),
        None => inline(input),
    }
}

/// `file = "path"`, if that is the input's form.
fn file_argument(input: &TokenStream) -> Option<syn::Result<(String, Span)>> {
    let trees: Vec<TokenTree> = input.clone().into_iter().collect();
    match trees.as_slice() {
        [TokenTree::Ident(i), TokenTree::Punct(eq), rest @ ..]
            if i == "file" && eq.as_char() == '=' =>
        {
            let lit = match rest {
                [TokenTree::Literal(l)] => l,
                _ => {
                    return Some(Err(syn::Error::new(
                        i.span(),
                        "write `net!(file = \"path/to/model.nn\")`",
                    )));
                }
            };
            Some(
                syn::parse2::<syn::LitStr>(TokenTree::Literal(lit.clone()).into())
                    .map(|s| (s.value(), lit.span())),
            )
        }
        _ => None,
    }
}

/// The file `path` names: relative to the crate's `Cargo.toml`, or else to the Rust
/// file containing the macro call (as `include_str!` resolves paths).
fn locate(path: &str, span: Span) -> Result<std::path::PathBuf, String> {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").unwrap_or_else(|_| ".".to_string());
    let mut tried = vec![std::path::Path::new(&manifest).join(path)];
    if let Some(dir) = span
        .local_file()
        .as_deref()
        .and_then(std::path::Path::parent)
    {
        tried.push(dir.join(path));
    }
    match tried.iter().find(|p| p.is_file()) {
        Some(found) => Ok(found.clone()),
        None => {
            let places: Vec<String> = tried.iter().map(|p| format!("`{}`", p.display())).collect();
            Err(format!(
                "no file `{path}`: looked for {} (paths are relative to the crate's Cargo.toml, or to this Rust file)",
                places.join(" and ")
            ))
        }
    }
}

/// `net!(file = "...")`: compile the file as `nnc compile` would; errors are rendered
/// in full (file, line, column, the source line and a caret) at the path literal.
fn from_file(path: &str, span: Span) -> TokenStream {
    let full = match locate(path, span) {
        Ok(full) => full,
        Err(message) => return syn::Error::new(span, message).to_compile_error(),
    };
    let source = match nnc_syntax::read_source(&full) {
        Ok(s) => s,
        Err(e) => {
            return syn::Error::new(span, format!("cannot read `{}`: {e}", full.display()))
                .to_compile_error();
        }
    };
    let file_name = std::path::Path::new(path)
        .file_name()
        .map_or(path.to_string(), |n| n.to_string_lossy().into_owned());
    match nnc_codegen::compile_source(&source, &file_name, &nnc_codegen::Options::default()) {
        Ok(code) => {
            let full = full.to_string_lossy().into_owned();
            let generated: TokenStream = match code.parse() {
                Ok(t) => t,
                Err(e) => {
                    return syn::Error::new(
                        span,
                        format!("internal error: generated code does not parse: {e}"),
                    )
                    .to_compile_error();
                }
            };
            // Including the file makes cargo rebuild the crate when it changes.
            quote_spanned! {span=>
                const _: &str = include_str!(#full);
                #generated
            }
        }
        Err(diagnostics) => {
            let text = nnc_syntax::render(&diagnostics, path, &source);
            syn::Error::new(span, format!("errors in `{path}`:\n{text}")).to_compile_error()
        }
    }
}

/// `net! { ... }`: the tokens go to the parser directly.
fn inline(input: TokenStream) -> TokenStream {
    let converted = match tokens::convert(input) {
        Ok(c) => c,
        Err(e) => return syn::Error::new(e.span, e.message).to_compile_error(),
    };
    let file_name = converted.file.clone().unwrap_or_else(|| "net!".to_string());
    let end = converted.text.len();
    let (file, mut diagnostics) = nnc_syntax::parser::parse_tokens(converted.tokens, end);
    if diagnostics.is_empty() {
        diagnostics = nnc_syntax::check::check(&file);
    }
    if !diagnostics.is_empty() {
        return errors(&diagnostics, &converted.map);
    }
    let models = match nnc_ir::lower_file(&file) {
        Ok(m) => m,
        Err(d) => return errors(&d, &converted.map),
    };
    let mut out = TokenStream::new();
    let located = nnc_syntax::diagnostic::LineIndex::new(&converted.text);
    for model in &models {
        let generated = generate(model, &located, &file_name);
        match generated.and_then(|code| code.parse::<TokenStream>().map_err(|e| e.to_string())) {
            Ok(tokens) => out.extend(tokens),
            Err(e) => {
                let message = format!("internal error compiling model `{}`: {e}", model.name);
                return syn::Error::new(Span::call_site(), message).to_compile_error();
            }
        }
    }
    out
}

/// Differentiates and generates one model, as `nnc compile` does.
fn generate(
    model: &nnc_ir::Model,
    text: &nnc_syntax::diagnostic::LineIndex<'_>,
    file_name: &str,
) -> Result<String, String> {
    let derived = nnc_autodiff::with_gradients(model).map_err(|e| e.to_string())?;
    nnc_codegen::generate(&derived, text, file_name)
}

/// Every diagnostic as a `compile_error!` spanning its tokens, as rustc underlines its
/// own errors; labels and notes follow the message.
fn errors(diagnostics: &[Diagnostic], map: &SpanMap) -> TokenStream {
    let mut combined: Option<syn::Error> = None;
    for d in diagnostics {
        let (first, last) = map.lookup(d.span);
        let mut message = d.message.clone();
        if let Some(label) = d.label.as_ref().filter(|l| l.as_str() != "here") {
            message.push_str(&format!("\n  here: {label}"));
        }
        for note in &d.notes {
            message.push_str(&format!("\n  note: {note}"));
        }
        // Two tokens carrying the first and last spans make syn's error cover both.
        let span_tokens = quote_spanned!(first=> __nnc_first)
            .into_iter()
            .chain(quote_spanned!(last=> __nnc_last));
        let error = syn::Error::new_spanned(span_tokens.collect::<TokenStream>(), message);
        match &mut combined {
            Some(c) => c.combine(error),
            None => combined = Some(error),
        }
    }
    combined.map(|e| e.to_compile_error()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;
    use proc_macro2::{Delimiter, Group};

    /// A token stream without its doc attributes (`#[doc = ...]`, `#![doc = ...]`):
    /// they name the source file, which differs between `net! { ... }` (the Rust file)
    /// and `nnc compile` (the `.nn` file). Everything else must be identical.
    fn without_docs(tokens: TokenStream) -> String {
        fn strip(tokens: TokenStream) -> TokenStream {
            let trees: Vec<TokenTree> = tokens.into_iter().collect();
            let mut out = Vec::new();
            let mut i = 0;
            while i < trees.len() {
                let is_doc = |t: &TokenTree| {
                    matches!(t, TokenTree::Group(g) if g.delimiter() == Delimiter::Bracket
                        && g.stream().into_iter().next().is_some_and(|f| f.to_string() == "doc"))
                };
                match (&trees[i], trees.get(i + 1), trees.get(i + 2)) {
                    (TokenTree::Punct(p), Some(g), _) if p.as_char() == '#' && is_doc(g) => i += 2,
                    (TokenTree::Punct(p), Some(TokenTree::Punct(bang)), Some(g))
                        if p.as_char() == '#' && bang.as_char() == '!' && is_doc(g) =>
                    {
                        i += 3
                    }
                    (TokenTree::Group(g), _, _) => {
                        let mut inner = Group::new(g.delimiter(), strip(g.stream()));
                        inner.set_span(g.span());
                        out.push(TokenTree::Group(inner));
                        i += 1;
                    }
                    (t, _, _) => {
                        out.push(t.clone());
                        i += 1;
                    }
                }
            }
            out.into_iter().collect()
        }
        strip(tokens).to_string()
    }

    fn spec_models() -> Vec<(String, String)> {
        let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models");
        let mut files: Vec<_> = std::fs::read_dir(dir)
            .expect("examples/models")
            .flatten()
            .map(|e| e.path())
            .collect();
        files.sort();
        files
            .into_iter()
            .filter(|p| p.extension().is_some_and(|e| e == "nn"))
            .map(|p| {
                let name = p
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default();
                (name, std::fs::read_to_string(&p).expect("readable"))
            })
            .collect()
    }

    #[test]
    fn inline_net_generates_the_same_code_as_nnc_compile() {
        let models = spec_models();
        assert!(models.len() >= 9);
        for (name, source) in models {
            let compiled =
                nnc_codegen::compile_source(&source, &name, &nnc_codegen::Options::default())
                    .expect("spec models compile");
            let compiled: TokenStream = compiled.parse().expect("generated code parses");
            let expanded = net(source.parse().expect("Rust tokenizes .nn"));
            assert_eq!(without_docs(expanded), without_docs(compiled), "{name}");
        }
    }

    #[test]
    fn file_net_generates_exactly_what_nnc_compile_writes() {
        for (name, source) in spec_models() {
            let compiled =
                nnc_codegen::compile_source(&source, &name, &nnc_codegen::Options::default())
                    .expect("spec models compile");
            let compiled: TokenStream = compiled.parse().expect("generated code parses");
            let path = format!("../../examples/models/{name}");
            let expanded = net(quote::quote!(file = #path));
            // The expansion is an `include_str!` of the file (for rebuilds), then the
            // generated code, docs included.
            let text = expanded.to_string();
            assert!(text.ends_with(&compiled.to_string()), "{name}");
            assert!(
                text.starts_with("const _ : & str = include_str !"),
                "{name}: {}",
                &text[..80.min(text.len())]
            );
        }
    }
}
