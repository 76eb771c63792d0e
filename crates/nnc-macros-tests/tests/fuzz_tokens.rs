//! `net!` on odd token streams: the expansion returns generated items or
//! `compile_error!`s, and never panics or hangs.
//!
//! A proc-macro crate exports nothing but its macros, so the expansion is compiled
//! into this test from its own source files (`#[path]` below) and called on
//! `proc_macro2` tokens directly, as `net!` calls it on the compiler's. (Their unit
//! tests come along and run here too.)
//!
//! Two generators: random token trees (groups with every delimiter, invisible ones
//! included, nested and empty; punctuation runs such as `::`, `=>`, `'a`, `$`;
//! literals of every kind, byte strings, chars, raw strings, C strings, suffixed
//! integers, `1e999`, huge integers; doc attributes; raw, keyword and non-ASCII
//! identifiers; the `file = ...` form), and the spec models' own token streams with
//! trees replaced, deleted, duplicated or wrapped in groups.

#[path = "../../nnc-macros/src/tokens.rs"]
mod tokens;

#[path = "../../nnc-macros/src/expand.rs"]
mod expand;

use proc_macro2::{Delimiter, Group, Ident, Literal, Punct, Spacing, Span, TokenStream, TokenTree};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestRunner};
use std::time::{Duration, Instant};

/// The longest one expansion may take (a spec model compiles in well under a second
/// in the debug profile).
const LIMIT: Duration = Duration::from_secs(20);

/// A token tree as the generators build it: `proc_macro2` values are made from it.
#[derive(Clone, Debug)]
enum Tree {
    Group(Delimiter, Vec<Tree>),
    Ident(&'static str),
    Punct(char, Spacing),
    Literal(&'static str),
    /// A tree taken from a real token stream.
    Real(TokenTree),
}

const IDENTS: &[&str] = &[
    "model",
    "fn",
    "dim",
    "input",
    "param",
    "let",
    "loss",
    "output",
    "dtype",
    "const",
    "index",
    "grad",
    "true",
    "false",
    "for",
    "in",
    "from",
    "x",
    "w",
    "N",
    "D",
    "T",
    "f32",
    "f64",
    "sum",
    "relu",
    "axis",
    "keepdims",
    "file",
    "r#model",
    "r#x",
    "r#fn",
    "größe",
    "π",
    "_",
    "__nnc_first",
    "self",
    "Self",
    "crate",
    "super",
    "async",
    "r#type",
    "doc",
    "compile_error",
];

const PUNCTS: &[char] = &[
    '+', '-', '*', '/', '%', '^', '!', '&', '|', '@', '.', ',', ';', ':', '#', '$', '?', '~', '=',
    '<', '>', '\'',
];

/// Literals of every kind Rust has, and numbers at and past every limit.
const LITERALS: &[&str] = &[
    "0",
    "1",
    "2.5",
    "1e-3",
    "1e999",
    "1E3",
    "1.",
    "1_000",
    "0x1F",
    "0b101",
    "0o17",
    "1u8",
    "1i128",
    "2f32",
    "1.5f64",
    "340282366920938463463374607431768211456",
    "99999999999999999999999999999999999999999999999999",
    "1099511627776",
    "'c'",
    "'\\n'",
    "'\\u{1F600}'",
    "b'x'",
    "\"text\"",
    "\"\"",
    "\"../../examples/models/gates.nn\"",
    "\"no/such/file.nn\"",
    "\"/dev/zero\"",
    "\".\"",
    "r\"raw\"",
    "r#\"raw \"# string\"#",
    "b\"bytes\"",
    "br\"raw bytes\"",
    "c\"c string\"",
    "\"\\0\"",
    "1suffix",
    "\"x\"suffix",
];

/// Names a spec model may use in the place of another.
const SIMILAR_NAMES: &[&str] = &[
    "x", "w", "w1", "w2", "b", "N", "D", "H", "C", "K", "labels", "scores", "hidden", "h", "f",
    "q", "z", "relu", "tanh", "sigmoid", "sum", "mean", "max", "exp", "log", "zeros", "he",
];

fn tree() -> impl Strategy<Value = Tree> {
    let leaf = prop_oneof![
        4 => prop::sample::select(IDENTS).prop_map(Tree::Ident),
        3 => (prop::sample::select(PUNCTS), any::<bool>()).prop_map(|(c, joint)| {
            Tree::Punct(c, if joint { Spacing::Joint } else { Spacing::Alone })
        }),
        3 => prop::sample::select(LITERALS).prop_map(Tree::Literal),
    ];
    leaf.prop_recursive(6, 64, 8, |inner| {
        (
            prop::sample::select(
                &[
                    Delimiter::Parenthesis,
                    Delimiter::Bracket,
                    Delimiter::Brace,
                    Delimiter::None,
                ][..],
            ),
            prop::collection::vec(inner, 0..8),
        )
            .prop_map(|(d, trees)| Tree::Group(d, trees))
    })
}

/// Streams of random trees, sometimes in a form `net!` knows: `file = ...`, a model
/// frame, a doc attribute in front, a lifetime or a path.
fn stream() -> impl Strategy<Value = TokenStream> {
    (prop::collection::vec(tree(), 0..24), 0..6usize).prop_map(|(trees, frame)| {
        let body = to_stream(&trees);
        let text = match frame {
            0 => return body,
            1 => format!("file = {body}"),
            2 => format!("model m {{ {body} }}"),
            3 => format!("#[doc = \"docs\"] model m {{ param w: [] = 1; loss {body}; }}"),
            4 => format!("fn f(x) = {body}; model m {{ param w: [] = 1; loss f(w); }}"),
            _ => format!("'a :: b => $c {body}"),
        };
        text.parse().unwrap_or(body)
    })
}

fn to_tree(t: &Tree) -> TokenTree {
    match t {
        Tree::Group(d, trees) => TokenTree::Group(Group::new(*d, to_stream(trees))),
        Tree::Ident(name) => match name.strip_prefix("r#") {
            Some(raw) => TokenTree::Ident(Ident::new_raw(raw, Span::call_site())),
            None => TokenTree::Ident(Ident::new(name, Span::call_site())),
        },
        Tree::Punct(c, spacing) => TokenTree::Punct(Punct::new(*c, *spacing)),
        Tree::Literal(text) => match text.parse::<Literal>() {
            Ok(l) => TokenTree::Literal(l),
            Err(_) => TokenTree::Literal(Literal::string(text)),
        },
        Tree::Real(t) => t.clone(),
    }
}

fn to_stream(trees: &[Tree]) -> TokenStream {
    trees.iter().map(to_tree).collect()
}

/// A real stream as trees, groups opened so edits can reach inside them.
fn from_stream(stream: TokenStream) -> Vec<Tree> {
    stream
        .into_iter()
        .map(|t| match t {
            TokenTree::Group(g) => Tree::Group(g.delimiter(), from_stream(g.stream())),
            other => Tree::Real(other),
        })
        .collect()
}

/// The spec models, as `net! { ... }` receives them.
fn spec_models() -> Vec<String> {
    let dir = concat!(env!("CARGO_MANIFEST_DIR"), "/../../examples/models");
    let mut paths: Vec<_> = std::fs::read_dir(dir)
        .expect("examples/models")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    paths.sort();
    paths
        .iter()
        .map(|p| std::fs::read_to_string(p).expect("readable"))
        .collect()
}

/// An edit of a tree sequence at the `at`-th tree in preorder.
#[derive(Clone, Debug)]
enum Edit {
    Replace(Tree),
    /// A name, number or operator becomes another of its kind (this keeps more of
    /// the programs valid, so they reach the later stages).
    Similar(usize),
    Delete,
    Duplicate,
    Wrap(Delimiter),
    Insert(Tree),
}

fn edit() -> impl Strategy<Value = Edit> {
    prop_oneof![
        3 => tree().prop_map(Edit::Replace),
        4 => any::<usize>().prop_map(Edit::Similar),
        2 => Just(Edit::Delete),
        1 => Just(Edit::Duplicate),
        1 => prop::sample::select(&[
            Delimiter::Parenthesis,
            Delimiter::Bracket,
            Delimiter::Brace,
            Delimiter::None,
        ][..])
        .prop_map(Edit::Wrap),
        2 => tree().prop_map(Edit::Insert),
    ]
}

fn count(trees: &[Tree]) -> usize {
    trees
        .iter()
        .map(|t| match t {
            Tree::Group(_, inner) => 1 + count(inner),
            _ => 1,
        })
        .sum()
}

/// Applies `edit` at the `*at`-th tree (preorder); returns whether it was applied.
fn apply(trees: &mut Vec<Tree>, at: &mut usize, edit: &Edit) -> bool {
    let mut i = 0;
    while i < trees.len() {
        if *at == 0 {
            match edit {
                Edit::Replace(t) => trees[i] = t.clone(),
                Edit::Similar(k) => {
                    trees[i] = match &trees[i] {
                        Tree::Real(TokenTree::Ident(_)) => {
                            Tree::Ident(SIMILAR_NAMES[k % SIMILAR_NAMES.len()])
                        }
                        Tree::Real(TokenTree::Literal(_)) => Tree::Literal(LITERALS[k % 4]),
                        Tree::Real(TokenTree::Punct(_)) => Tree::Punct(
                            ['+', '-', '*', '/', '@', '^', '<', '>'][k % 8],
                            Spacing::Alone,
                        ),
                        other => other.clone(),
                    }
                }
                Edit::Delete => {
                    trees.remove(i);
                }
                Edit::Duplicate => trees.insert(i, trees[i].clone()),
                Edit::Wrap(d) => trees[i] = Tree::Group(*d, vec![trees[i].clone()]),
                Edit::Insert(t) => trees.insert(i, t.clone()),
            }
            return true;
        }
        *at -= 1;
        if let Tree::Group(_, inner) = &mut trees[i]
            && apply(inner, at, edit)
        {
            return true;
        }
        i += 1;
    }
    false
}

fn mutated_model() -> impl Strategy<Value = TokenStream> {
    let models = spec_models();
    (
        prop::sample::select(models),
        prop::collection::vec((any::<prop::sample::Index>(), edit()), 1..3),
    )
        .prop_map(|(source, edits)| {
            let mut trees = from_stream(source.parse().expect("Rust tokenizes .nn"));
            for (at, e) in &edits {
                let n = count(&trees).max(1);
                apply(&mut trees, &mut at.index(n), e);
            }
            to_stream(&trees)
        })
}

/// Whether an expansion is only `compile_error!`s: `:: core :: compile_error ! { "..." }`
/// (8 trees each), with a message.
fn is_compile_error(out: &TokenStream) -> bool {
    let trees: Vec<TokenTree> = out.clone().into_iter().collect();
    !trees.is_empty()
        && trees.len().is_multiple_of(8)
        && trees.chunks(8).all(|c| {
            let path: String = c[..7].iter().map(ToString::to_string).collect();
            path == "::core::compile_error!"
                && matches!(&c[7], TokenTree::Group(g) if g.delimiter() == Delimiter::Brace
                    && g.stream().to_string().len() > 2)
        })
}

/// The case being expanded: when it started, and its input.
type Current = std::sync::Arc<std::sync::Mutex<Option<(Instant, String)>>>;

/// Expands `input`: the result must be `compile_error!`s, or Rust items.
fn check(input: TokenStream, current: &Current) -> Result<bool, TestCaseError> {
    let shown = input.to_string();
    if let Ok(mut c) = current.lock() {
        *c = Some((Instant::now(), shown.clone()));
    }
    let out = expand::net(input);
    if let Ok(mut c) = current.lock() {
        *c = None;
    }
    if is_compile_error(&out) {
        if std::env::var_os("NNC_FUZZ_LOG").is_some() {
            eprintln!("input: {shown}\nerror: {out}\n");
        }
        return Ok(false);
    }
    syn::parse2::<syn::File>(out.clone()).map_err(|e| {
        TestCaseError::fail(format!(
            "neither items nor compile_error!: {e}\ninput: {shown}\noutput: {out}"
        ))
    })?;
    Ok(true)
}

/// Runs `cases` on a thread with a compiler thread's stack (8 MiB), watched: a case
/// that takes longer than [`LIMIT`] fails the test with its input. (proc_macro2's
/// values cannot move between threads, so the cases are made on that thread.)
fn watched<T: Send + 'static>(cases: impl FnOnce(&Current) -> T + Send + 'static) -> T {
    let current = Current::default();
    let shared = current.clone();
    let worker = std::thread::Builder::new()
        .stack_size(8 << 20)
        .spawn(move || cases(&shared))
        .expect("a thread");
    loop {
        if worker.is_finished() {
            return match worker.join() {
                Ok(t) => t,
                Err(payload) => std::panic::resume_unwind(payload),
            };
        }
        if let Ok(c) = current.lock()
            && let Some((started, input)) = c.as_ref()
            && started.elapsed() > LIMIT
        {
            panic!("the expansion took more than {LIMIT:?}; input: {input}");
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs `cases` cases of a strategy from a fixed seed; returns how many expanded to
/// items and how many to errors.
fn run<S: Strategy<Value = TokenStream>>(
    cases: u32,
    strategy: impl FnOnce() -> S + Send + 'static,
) -> (usize, usize) {
    watched(move |current| {
        let config = Config {
            cases,
            rng_seed: RngSeed::Fixed(12),
            failure_persistence: None,
            ..Config::default()
        };
        let items = std::cell::Cell::new(0);
        let errors = std::cell::Cell::new(0);
        let result = TestRunner::new(config).run(&strategy(), |input| {
            if check(input, current)? {
                items.set(items.get() + 1);
            } else {
                errors.set(errors.get() + 1);
            }
            Ok(())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
        (items.get(), errors.get())
    })
}

#[test]
fn random_token_trees_expand_to_items_or_errors() {
    let (items, errors) = run(3000, stream);
    eprintln!("net! on random token trees: {items} expanded to items, {errors} to compile_error!");
    assert!(errors > 0);
}

#[test]
fn mutated_models_expand_to_items_or_errors() {
    let (items, errors) = run(400, mutated_model);
    eprintln!("net! on mutated spec models: {items} expanded to items, {errors} to compile_error!");
    assert!(items > 0 && errors > 0, "{items} items, {errors} errors");
}

/// Hand-picked streams, each once.
#[test]
fn odd_streams_expand_to_items_or_errors() {
    watched(odd_streams);
}

fn odd_streams(current: &Current) {
    let group = |d, inner: TokenStream| TokenStream::from(TokenTree::Group(Group::new(d, inner)));
    let nested_empty = (0..200).fold(TokenStream::new(), |inner, k| {
        let d = [
            Delimiter::Parenthesis,
            Delimiter::Bracket,
            Delimiter::Brace,
            Delimiter::None,
        ][k % 4];
        group(d, inner)
    });
    let invisible_model = group(
        Delimiter::None,
        "model m { param w: [] = 1; loss w; }"
            .parse()
            .expect("tokenizes"),
    );
    let mut streams = vec![
        TokenStream::new(),
        nested_empty,
        invisible_model,
        group(Delimiter::None, TokenStream::new()),
    ];
    for text in [
        "file",
        "file =",
        "file = 1",
        "file = \"a\" \"b\"",
        "file = b\"x\"",
        "file = r\"../../examples/models/gates.nn\"",
        "file = c\"x\"",
        "file = \"\"",
        "file = \"/\"",
        "/// a doc comment\nmodel m { param w: [] = 1; loss w; }",
        "//! an inner doc comment\nmodel m { param w: [] = 1; loss w; }",
        "#![doc = \"x\"] model m { param w: [] = 1; loss w; }",
        "model m { param w: [] = 1; loss w ^ 1e999; }",
        "model m { param w: [] = 1; loss w * 340282366920938463463374607431768211456; }",
        "model m { dim D = 99999999999999999999999; param w: [D] = 1; loss sum(w); }",
        "model m { param w: [] = 1; loss 'a; }",
        "model m { param w: [] = 1; loss w => w; }",
        "model m { param w: [] = 1; loss ::w; }",
        "model m { param w: [] = 1; loss $w; }",
        "model m { param w: [] = 1; loss r#w; }",
        "model r#model { loss 1; }",
        "model m { param π: [] = 1; loss π; }",
        "model m { param w: [] = 1u8; loss w; }",
        "model m { param w: [] = 1; loss (((((((((w))))))))); }",
        "model m { param w: [] = 1; loss w; } model m { param w: [] = 1; loss w; }",
        "macro_rules! m { () => {} }",
    ] {
        streams.push(text.parse().expect(text));
    }
    for s in streams {
        check(s, current).unwrap_or_else(|e| panic!("{e}"));
    }
}

/// Taking a model's stream apart into trees and back loses nothing `net!` needs: the
/// mutations start from programs that compile.
/// Ten thousand nested groups (Rust's own parser takes them; `.nn` allows 128
/// brackets): an error, not a stack overflow (`net!`'s converter recursed into every
/// group and overflowed an 8 MiB stack).
#[test]
fn deeply_nested_groups_are_an_error() {
    watched(|current| {
        for d in [
            Delimiter::Parenthesis,
            Delimiter::Bracket,
            Delimiter::Brace,
            Delimiter::None,
        ] {
            let w: TokenStream = "w".parse().expect("tokenizes");
            let deep = (0..10_000).fold(w, |inner, _| {
                TokenStream::from(TokenTree::Group(Group::new(d, inner)))
            });
            // Built from trees: printing and reparsing 10 000 levels is recursive.
            let mut body: TokenStream = "param w: [] = 1; loss".parse().expect("tokenizes");
            body.extend(deep);
            body.extend(";".parse::<TokenStream>().expect("tokenizes"));
            let mut source: TokenStream = "model m".parse().expect("tokenizes");
            source.extend([TokenTree::Group(Group::new(Delimiter::Brace, body))]);
            // Invisible groups are spliced, at any depth: `loss w` compiles.
            let compiles = d == Delimiter::None;
            assert_eq!(check(source.clone(), current).ok(), Some(compiles), "{d:?}");
            if !compiles {
                let error = expand::net(source).to_string();
                assert!(error.contains("brackets nested too deeply"), "{error}");
            }
        }
    });
}

#[test]
fn unmutated_models_expand_to_items() {
    watched(|current| {
        for source in spec_models() {
            let trees = from_stream(source.parse().expect("Rust tokenizes .nn"));
            let out = check(to_stream(&trees), current);
            assert!(matches!(out, Ok(true)), "{out:?}");
        }
    });
}
