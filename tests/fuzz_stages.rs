//! Robustness past the parser: mutated models through every stage of the pipeline.
//!
//! Each case takes a valid model (`examples/models/*.nn`, `../shared/spec/models/*.nn`,
//! and copies of them with small dims, so that the interpreter gets to run them),
//! applies one to three edits at the level of the language — a name swapped for
//! another, a dim value (0, 1, 2^40, ...), a shape, an operator, an axis or
//! `keepdims`, a statement duplicated, deleted or moved, a number replaced by 0, -0,
//! 1e308 or a NaN-making expression, calls nested, an expression moved into a user
//! `fn`, a chain of `fn`s that doubles at each level, a chain of deep `fn` bodies
//! calling each other, a long chain of `let`s, a dtype, an element kind, a `grad`
//! marker, an initialiser — and runs every stage in order:
//!
//! 1. parse and check (`nnc_syntax::parse_and_check`),
//! 2. lower (`nnc_ir::lower_file`), and print the IR,
//! 3. differentiate and simplify (`nnc_autodiff::derive`), and render the derivation,
//! 4. plan the three entry points and describe the plans (`nnc_codegen::plan`),
//! 5. emit the Rust module (`nnc_codegen::generate`),
//! 6. interpret the simplified model on small random inputs (`nnc_ir::interp`), when
//!    the memory check the CLI uses (`interpreter_bytes`) accepts it under
//!    [`INTERPRETER_BYTES`],
//! 7. draw the model as `nnc graph` does (`nnc_graph`: forward, expanded, backward;
//!    DOT and laid-out SVG), under the same check.
//!
//! Every stage must return `Ok` or an error with a message: never panic, never take
//! longer than [`CASE_LIMIT`] (each case runs on its own thread, watched), never
//! request more than [`MAX_ALLOCATION`] bytes at once or hold more than [`MAX_PEAK`]
//! (a counting global allocator). A diagnostic must point inside the source.
//!
//! The seed is fixed so CI is deterministic; `NNC_FUZZ_SEED=7 NNC_FUZZ_CASES=5000
//! cargo test --test fuzz_stages -- --nocapture` explores others (with
//! `NNC_FUZZ_KEEP_GOING=1`, printing every failure instead of stopping at the first;
//! `NNC_FUZZ_FILE=case.nn NNC_FUZZ_LOG=1` runs one program, stage by stage, timed).
//! The test prints how many cases reached each stage. The fixed programs at the end
//! are the fuzzer's findings in the code generator, ignored until it is fixed.

use nnc::autodiff::gradcheck::interpreter_bytes;
use nnc::codegen::plan::{self, Entry};
use nnc::ir::interp::{Bindings, Value, evaluate};
use nnc::ir::{DType, Dim, Elem, Model};
use nnc::ndarray::ArrayD;
use nnc::syntax::diagnostic::LineIndex;
use nnc::syntax::lexer::{Tok, tokenize};
use nnc::syntax::{Diagnostic, parse_and_check, render};
use proptest::prelude::*;
use proptest::test_runner::{Config, RngSeed, TestCaseError, TestRunner};
use std::ops::Range;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// The longest one case may take, all stages together: a hang detector. A case
/// takes milliseconds; the slowest of the corpus, a mutant of deep_stack.nn (a
/// 64-step loop over 1 048 576 classes, `D = 2`), took 14-40 s in the debug
/// profile, nearly all of it in the planner merging sibling nests (every pair
/// searched again after each merge, `plan::nest::Grouping::merge_siblings`); it
/// searches on from the last merge now, and the whole case's `nnc compile`
/// takes about a second (2026-12-02, Zen 3 VM). The limit keeps ample room for
/// a slow, busy host.
const CASE_LIMIT: Duration = Duration::from_secs(40);

/// What the interpreter may need for one evaluation (the CLI allows 8 GiB; small
/// here so that every case stays fast).
const INTERPRETER_BYTES: u64 = 32 << 20;

/// Stack of the thread a case runs on: the size of a main thread's (the CLI's).
const STACK: usize = 8 << 20;

// ---- memory: a counting allocator ----------------------------------------------------

/// No single allocation may be larger: a larger request fails, and the process stops
/// with "memory allocation of N bytes failed" naming its size.
const MAX_ALLOCATION: usize = 1 << 30;

/// The most a case's thread may hold at once: past it, an allocation fails and the
/// process stops, after printing the case's program.
const MAX_PEAK: usize = 1 << 30;

mod memory {
    use super::{MAX_ALLOCATION, MAX_PEAK};
    use std::alloc::{GlobalAlloc, Layout, System};
    use std::cell::Cell;
    use std::io::Write;
    use std::sync::Mutex;

    thread_local! {
        static LIVE: Cell<usize> = const { Cell::new(0) };
        static PEAK: Cell<usize> = const { Cell::new(0) };
        /// Whether this thread runs a case (and so is held to [`MAX_PEAK`]).
        static WATCHED: Cell<bool> = const { Cell::new(false) };
    }

    /// The program of the running case, shown when it is stopped for its memory.
    pub static CURRENT: Mutex<String> = Mutex::new(String::new());

    /// Holds this thread to [`MAX_PEAK`].
    pub fn watch() {
        WATCHED.with(|w| w.set(true));
    }

    /// Whether `n` more bytes fit this thread's budget; counts them if so. Over the
    /// budget, names the program before the allocation fails (and the process stops).
    fn grow(n: usize) -> bool {
        let fits = LIVE
            .try_with(|live| {
                let now = live.get().saturating_add(n);
                let watched = WATCHED.try_with(Cell::get).unwrap_or(false);
                if watched && now > MAX_PEAK {
                    return false;
                }
                live.set(now);
                let _ = PEAK.try_with(|peak| peak.set(peak.get().max(now)));
                true
            })
            .unwrap_or(true);
        if !fits {
            refused();
        }
        fits && n <= MAX_ALLOCATION
    }

    fn refused() {
        // Nothing here allocates: stderr is unbuffered, the message is static text.
        let mut err = std::io::stderr().lock();
        let _ = err
            .write_all(b"\nfuzz_stages: a case asked for more memory than allowed; its program:\n");
        if let Ok(current) = CURRENT.try_lock() {
            let _ = err.write_all(current.as_bytes());
        }
        let _ = err.write_all(b"\n");
    }

    fn shrank(n: usize) {
        let _ = LIVE.try_with(|live| live.set(live.get().saturating_sub(n)));
    }

    /// The most this thread has held at once (what it allocated, less what it freed).
    pub fn peak() -> usize {
        PEAK.try_with(Cell::get).unwrap_or(0)
    }

    /// The system allocator, counting per thread and refusing huge requests.
    pub struct Counting;

    // SAFETY: every call is forwarded to `System` with the caller's arguments; the
    // bookkeeping touches only const-initialised thread-locals, which never allocate.
    unsafe impl GlobalAlloc for Counting {
        unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
            if layout.size() > MAX_ALLOCATION {
                refused();
                return std::ptr::null_mut();
            }
            if !grow(layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as is.
            let p = unsafe { System.alloc(layout) };
            if p.is_null() {
                shrank(layout.size());
            }
            p
        }

        unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
            if layout.size() > MAX_ALLOCATION {
                refused();
                return std::ptr::null_mut();
            }
            if !grow(layout.size()) {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as is.
            let p = unsafe { System.alloc_zeroed(layout) };
            if p.is_null() {
                shrank(layout.size());
            }
            p
        }

        unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
            // SAFETY: forwarded as is.
            unsafe { System.dealloc(ptr, layout) };
            shrank(layout.size());
        }

        unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
            if new_size > MAX_ALLOCATION {
                refused();
                return std::ptr::null_mut();
            }
            if !grow(new_size) {
                return std::ptr::null_mut();
            }
            // SAFETY: forwarded as is.
            let p = unsafe { System.realloc(ptr, layout, new_size) };
            if p.is_null() {
                shrank(new_size);
            } else {
                shrank(layout.size());
            }
            p
        }
    }
}

#[global_allocator]
static ALLOCATOR: memory::Counting = memory::Counting;

// ---- the models ------------------------------------------------------------------------

/// The spec models, as copied into `examples/models/`.
const EXAMPLES: &[&str] = &[
    include_str!("../examples/models/activations.nn"),
    include_str!("../examples/models/deep_tanh.nn"),
    include_str!("../examples/models/gates.nn"),
    include_str!("../examples/models/logistic.nn"),
    include_str!("../examples/models/mlp784.nn"),
    include_str!("../examples/models/spiral.nn"),
    include_str!("../examples/models/svm.nn"),
    include_str!("../examples/models/three_layer.nn"),
    include_str!("../examples/models/two_layer.nn"),
    include_str!("../examples/models/deep_stack.nn"),
];

/// The models to mutate: the examples, the spec's own copies when `../shared` is
/// there (read at test time, duplicates dropped), and each with its dims made small.
fn corpus() -> Vec<String> {
    let mut models: Vec<String> = EXAMPLES.iter().map(|s| s.to_string()).collect();
    let spec = concat!(env!("CARGO_MANIFEST_DIR"), "/../shared/spec/models");
    if let Ok(entries) = std::fs::read_dir(spec) {
        let mut paths: Vec<_> = entries.flatten().map(|e| e.path()).collect();
        paths.sort();
        for path in paths {
            if path.extension().is_some_and(|e| e == "nn")
                && let Ok(text) = std::fs::read_to_string(&path)
                && !models.contains(&text)
            {
                models.push(text);
            }
        }
    }
    let small: Vec<String> = models.iter().map(|m| small_dims(m)).collect();
    models.extend(small);
    models
}

/// A token of the source, by the lexer's own reading.
#[derive(Clone, Debug)]
struct Token {
    range: Range<usize>,
    tok: Tok,
}

fn tokens(source: &str) -> Vec<Token> {
    let (tokens, _) = tokenize(source);
    tokens
        .into_iter()
        .filter_map(Result::ok)
        .map(|(start, tok, end)| Token {
            range: start..end,
            tok,
        })
        .collect()
}

fn is_ident(t: &Token, name: &str) -> bool {
    matches!(&t.tok, Tok::Ident(n) if n == name)
}

/// The same model with every fixed dim above 8 made 2 to 6, so the interpreter runs
/// it in microseconds.
fn small_dims(source: &str) -> String {
    let mut out = String::new();
    let mut last = 0;
    let mut in_dim = false;
    for t in tokens(source) {
        match &t.tok {
            Tok::Dim => in_dim = true,
            Tok::Semi => in_dim = false,
            Tok::Number(text) if in_dim => {
                if let Ok(n) = text.parse::<u64>()
                    && n > 8
                {
                    out.push_str(&source[last..t.range.start]);
                    out.push_str(&(2 + n % 5).to_string());
                    last = t.range.end;
                }
            }
            _ => {}
        }
    }
    out.push_str(&source[last..]);
    out
}

// ---- mutations -------------------------------------------------------------------------

/// Dim values, shape entries: small, and large enough that products overflow.
const DIM_VALUES: &[&str] = &[
    "1",
    "2",
    "3",
    "7",
    "64",
    "65536",
    "1048576",
    "4294967296",
    "4294967297",
    "1099511627776",
];

/// Dim values the checker must refuse: empty, past the limit, not integers.
const BAD_DIM_VALUES: &[&str] = &[
    "0",
    "1099511627777",
    "281474976710656",
    "18446744073709551615",
    "18446744073709551616",
    "99999999999999999999999999",
    "1.5",
    "1e3",
    "0.0",
    "-1",
];

/// Numbers anywhere: zeros of both signs, extremes, and expressions that make NaN or
/// infinity.
const NUMBERS: &[&str] = &[
    "0",
    "-0",
    "0.0",
    "1",
    "-1",
    "2",
    "0.5",
    "1e-3",
    "1e308",
    "-1e308",
    "1e-308",
    "1e-320",
    "1e999",
    "(0 / 0)",
    "(1e308 * 1e308)",
    "(-1e308 * 10)",
    "(0 * 1e999)",
    "(1e999 - 1e999)",
    "2.5e10",
    "18446744073709551616",
];

const OPERATORS: &[&str] = &["+", "-", "*", "/", "@", "^", ">", ">=", "<", "<="];

/// Calls that take `axis` or `keepdims`.
const AXIS_FNS: &[&str] = &[
    "sum",
    "mean",
    "max",
    "min",
    "logsumexp",
    "softmax",
    "log_softmax",
    "argmax",
    "pick",
];

const AXES: &[&str] = &[
    "0", "1", "2", "3", "4", "-1", "-2", "-5", "99", "1e3", "true",
];

const KEEPDIMS: &[&str] = &["true", "false", "1", "True", "0.5"];

/// Ways to wrap a subexpression `X`: every built-in and prelude function, operators,
/// the subexpression used twice (shared), transposes, deep nesting.
const NESTS: &[&str] = &[
    "exp(X)",
    "log(X)",
    "sqrt(X)",
    "abs(X)",
    "sigmoid(X)",
    "tanh(X)",
    "softplus(X)",
    "relu(X)",
    "sum(X)",
    "mean(X, axis = 0)",
    "sum(X, axis = -1, keepdims = true)",
    "max(X, axis = 1)",
    "min(X)",
    "logsumexp(X, axis = 0)",
    "softmax(X, axis = -1)",
    "log_softmax(X)",
    "argmax(X, axis = 0)",
    "max(X, X)",
    "min(0, X)",
    "where(X > 0, X, -X)",
    "where(X <= X, 1, 0)",
    "X.T",
    "(X @ X)",
    "(X @ X.T)",
    "(X.T @ X)",
    "X ^ 2",
    "X ^ 0.5",
    "(-X)",
    "(X / X)",
    "(X - X)",
    "one_hot(X, 3)",
    "pick(X, X)",
    "pick(X, argmax(X, axis = -1), keepdims = true)",
    "l2(X)",
    "elu(X, alpha = 0.5)",
    "leaky_relu(X)",
    "prelu(X, X)",
    "mse(X, X)",
    "hinge(X, X)",
    "logistic(X, X)",
    "sse(X, 0)",
    "multiclass_hinge(X, X, margin = 2)",
    "softmax_cross_entropy(X, X)",
    "exp(exp(exp(X)))",
    "(X >= X)",
    "(X * 0)",
    "(0 * X + 1)",
    "sum(sum(X, axis = 0), axis = 0)",
    "mean(X, axis = 0, keepdims = true)",
    "(X + mean(X, axis = 0, keepdims = true))",
];

/// User functions around an expression `B` (its names become the parameters `A`;
/// `F` is the function's own name).
const WRAPS: &[&str] = &[
    "= B;",
    "= B;",
    "= (B) * s;",
    "= (B) * s;",
    "{ let t = B; let u = t; u }",
    "{ let t = B; t * s + t }",
    "{ let t = B; t * s + t }",
    "= F(A);",
    "= B + F(A) * 0;",
];

const DTYPES: &[&str] = &["f32", "f64", "f16", "int", "F64", "f64; dtype f32"];

const INITS: &[&str] = &[
    "",
    " = zeros",
    " = ones",
    " = xavier",
    " = he",
    " = normal(0, 1)",
    " = normal(0, 1e308)",
    " = normal(1e308, 1e308)",
    " = normal(0, -1)",
    " = uniform(1, 0)",
    " = uniform(-1, 1)",
    " = normal(0)",
    " = normal()",
    " = uniform(0, 0, 0)",
    " = 1e999",
    " = -0",
    " = 0.25",
    " = glorot",
    " = he(2)",
];

/// Names to swap in: built-ins, prelude functions, declaration words, unknowns.
const NAMES: &[&str] = &[
    "relu",
    "sum",
    "exp",
    "T",
    "x",
    "N",
    "axis",
    "keepdims",
    "alpha",
    "labels",
    "undefined",
];

/// Which of the places that fit a mutation it applies to (shrinks towards the first).
#[derive(Clone, Copy, Debug)]
struct Pick(usize);

impl Pick {
    fn get<'a, T>(&self, places: &'a [T]) -> &'a T {
        &places[self.0 % places.len()]
    }
}

/// One edit at the level of the language; each picks its place with a [`Pick`] over
/// the places that fit, and does nothing when there is none.
#[derive(Clone, Debug)]
enum Mutation {
    /// An identifier becomes another name of the file (`foreign`: a built-in, a
    /// keyword argument or an unknown name).
    Rename {
        at: Pick,
        to: Pick,
        foreign: bool,
    },
    /// A number in a `dim` statement or a shape.
    DimValue {
        at: Pick,
        value: &'static str,
    },
    /// A declared shape gets new entries: the file's dims and literals.
    Shape {
        at: Pick,
        dims: Vec<(Pick, bool)>,
    },
    Operator {
        at: Pick,
        op: &'static str,
    },
    Axis {
        at: Pick,
        value: &'static str,
    },
    Keepdims {
        at: Pick,
        value: &'static str,
    },
    DuplicateStmt {
        at: Pick,
    },
    DeleteStmt {
        at: Pick,
    },
    SwapStmts {
        a: Pick,
        b: Pick,
    },
    Number {
        at: Pick,
        value: &'static str,
    },
    /// A subexpression `X` becomes a call or operation on it.
    Nest {
        at: Pick,
        template: &'static str,
    },
    /// A statement's expression moves into a new user `fn`, called with its names.
    WrapInFn {
        at: Pick,
        body: &'static str,
    },
    /// `fn c0(v) = v * 2; fn c1(v) = c0(v) + c0(v); ...` around a subexpression.
    Doubling {
        at: Pick,
        depth: usize,
    },
    /// `fn e1(v) = - - ... e0(v);` and so on: `calls` functions, each `depth` levels
    /// deep around a call of the previous one, around a subexpression.
    Deepening {
        at: Pick,
        calls: usize,
        depth: usize,
    },
    /// `let` chain of `len` values from a name, added to the loss.
    LetChain {
        at: Pick,
        len: usize,
    },
    Dtype {
        value: &'static str,
    },
    /// An input's element kind flips between float and `index`.
    Elem {
        at: Pick,
    },
    /// An input gets the `grad` marker.
    Grad {
        at: Pick,
    },
    Init {
        at: Pick,
        init: &'static str,
    },
}

fn mutation() -> impl Strategy<Value = Mutation> {
    let at = || any::<usize>().prop_map(Pick);
    prop_oneof![
        3 => (at(), at(), prop::bool::weighted(0.2))
            .prop_map(|(at, to, foreign)| Mutation::Rename { at, to, foreign }),
        3 => (at(), prop::sample::select(DIM_VALUES))
            .prop_map(|(at, value)| Mutation::DimValue { at, value }),
        1 => (at(), prop::sample::select(BAD_DIM_VALUES))
            .prop_map(|(at, value)| Mutation::DimValue { at, value }),
        2 => (at(), prop::collection::vec((at(), any::<bool>()), 0..6))
            .prop_map(|(at, dims)| Mutation::Shape { at, dims }),
        2 => (at(), prop::sample::select(OPERATORS)).prop_map(|(at, op)| Mutation::Operator { at, op }),
        2 => (at(), prop::sample::select(AXES)).prop_map(|(at, value)| Mutation::Axis { at, value }),
        1 => (at(), prop::sample::select(KEEPDIMS))
            .prop_map(|(at, value)| Mutation::Keepdims { at, value }),
        1 => at().prop_map(|at| Mutation::DuplicateStmt { at }),
        1 => at().prop_map(|at| Mutation::DeleteStmt { at }),
        1 => (at(), at()).prop_map(|(a, b)| Mutation::SwapStmts { a, b }),
        2 => (at(), prop::sample::select(NUMBERS)).prop_map(|(at, value)| Mutation::Number { at, value }),
        4 => (at(), prop::sample::select(NESTS))
            .prop_map(|(at, template)| Mutation::Nest { at, template }),
        2 => (at(), prop::sample::select(WRAPS)).prop_map(|(at, body)| Mutation::WrapInFn { at, body }),
        1 => (at(), prop::sample::select(&[1usize, 4, 8][..]))
            .prop_map(|(at, depth)| Mutation::Doubling { at, depth }),
        1 => (
            at(),
            prop::sample::select(&[2usize, 10, 63][..]),
            prop::sample::select(&[3usize, 60, 250][..])
        )
            .prop_map(|(at, calls, depth)| Mutation::Deepening { at, calls, depth }),
        1 => (at(), prop::sample::select(&[3usize, 50, 300][..]))
            .prop_map(|(at, len)| Mutation::LetChain { at, len }),
        1 => prop::sample::select(DTYPES).prop_map(|value| Mutation::Dtype { value }),
        1 => at().prop_map(|at| Mutation::Elem { at }),
        1 => at().prop_map(|at| Mutation::Grad { at }),
        1 => (at(), prop::sample::select(INITS)).prop_map(|(at, init)| Mutation::Init { at, init }),
    ]
}

/// `source` with `range` replaced by `with`.
fn splice(source: &str, range: Range<usize>, with: &str) -> String {
    format!("{}{}{}", &source[..range.start], with, &source[range.end..])
}

/// The token index of the bracket closing the one at `open`, if any.
fn matching(toks: &[Token], open: usize) -> Option<usize> {
    let mut depth = 0usize;
    for (i, t) in toks.iter().enumerate().skip(open) {
        match t.tok {
            Tok::LParen | Tok::LBracket | Tok::LBrace => depth += 1,
            Tok::RParen | Tok::RBracket | Tok::RBrace => {
                depth = depth.checked_sub(1)?;
                if depth == 0 {
                    return Some(i);
                }
            }
            _ => {}
        }
    }
    None
}

/// Statements: token ranges ending at a `;`, starting after the previous `;` or brace.
fn statements(toks: &[Token]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    let mut start = 0;
    for (i, t) in toks.iter().enumerate() {
        match t.tok {
            Tok::Semi => {
                if start < i {
                    out.push(start..i + 1);
                }
                start = i + 1;
            }
            Tok::LBrace | Tok::RBrace => start = i + 1,
            _ => {}
        }
    }
    out
}

/// The byte range of a token range.
fn bytes(toks: &[Token], r: &Range<usize>) -> Range<usize> {
    toks[r.start].range.start..toks[r.end - 1].range.end
}

/// Token ranges of the expressions of `let`, `output =`, `const`, `loss` and
/// expression-bodied `fn`s: from after the `=` (or `loss`) to before the `;`.
fn expressions(toks: &[Token]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for stmt in statements(toks) {
        let first = &toks[stmt.start].tok;
        let body_start = match first {
            Tok::Loss => Some(stmt.start + 1),
            Tok::Let | Tok::Output | Tok::Const | Tok::Fn => {
                let mut depth = 0i32;
                let mut found = None;
                for i in stmt.clone() {
                    match toks[i].tok {
                        Tok::LParen | Tok::LBracket => depth += 1,
                        Tok::RParen | Tok::RBracket => depth -= 1,
                        Tok::Eq if depth == 0 => {
                            found = Some(i + 1);
                            break;
                        }
                        _ => {}
                    }
                }
                found
            }
            _ => None,
        };
        if let Some(s) = body_start
            && s < stmt.end - 1
        {
            out.push(s..stmt.end - 1);
        }
    }
    out
}

/// A value name in an expression: not a call, not `.T`, not a keyword argument.
fn is_value_name(toks: &[Token], i: usize) -> bool {
    matches!(toks[i].tok, Tok::Ident(_))
        && !matches!(toks.get(i + 1).map(|t| &t.tok), Some(Tok::LParen | Tok::Eq))
        && !(i > 0 && toks[i - 1].tok == Tok::Dot)
}

/// Subexpressions starting inside expressions: names, numbers, calls and
/// parenthesised groups, with any `.T` after them.
fn subexpressions(toks: &[Token]) -> Vec<Range<usize>> {
    let mut out = Vec::new();
    for e in expressions(toks) {
        for i in e.clone() {
            let end = match &toks[i].tok {
                Tok::Ident(_) if toks.get(i + 1).is_some_and(|t| t.tok == Tok::LParen) => {
                    matching(toks, i + 1)
                }
                Tok::Ident(_) if is_value_name(toks, i) => Some(i),
                Tok::Number(_) => Some(i),
                Tok::LParen if i == 0 || !matches!(toks[i - 1].tok, Tok::Ident(_)) => {
                    matching(toks, i)
                }
                _ => None,
            };
            let Some(mut end) = end.filter(|&end| end < e.end) else {
                continue;
            };
            while end + 2 < e.end && toks[end + 1].tok == Tok::Dot && is_ident(&toks[end + 2], "T")
            {
                end += 2;
            }
            out.push(i..end + 1);
        }
    }
    out
}

/// Names declared by `dim` statements.
fn dim_names(toks: &[Token]) -> Vec<String> {
    let mut names = Vec::new();
    for stmt in statements(toks) {
        if toks[stmt.start].tok != Tok::Dim {
            continue;
        }
        for i in stmt.start + 1..stmt.end {
            if let Tok::Ident(n) = &toks[i].tok
                && matches!(toks[i - 1].tok, Tok::Dim | Tok::Comma)
            {
                names.push(n.clone());
            }
        }
    }
    names
}

/// The statements (token ranges) starting with the given keyword.
fn statements_of(toks: &[Token], keyword: &Tok) -> Vec<Range<usize>> {
    statements(toks)
        .into_iter()
        .filter(|s| &toks[s.start].tok == keyword)
        .collect()
}

/// A fresh name for a new `fn`, unused in `source`.
fn fresh(source: &str, stem: &str) -> String {
    (0..)
        .map(|k| format!("{stem}{k}"))
        .find(|n| !source.contains(n.as_str()))
        .unwrap_or_default()
}

/// Applies a mutation; a mutation with no place to apply leaves the source as it is.
fn apply(source: &str, m: &Mutation) -> String {
    let toks = tokens(source);
    let same = || source.to_string();
    match m {
        Mutation::Rename { at, to, foreign } => {
            let idents: Vec<&Token> = toks
                .iter()
                .filter(|t| matches!(t.tok, Tok::Ident(_)))
                .collect();
            if idents.is_empty() {
                return same();
            }
            let mut pool: Vec<String> = if *foreign {
                NAMES.iter().map(|s| s.to_string()).collect()
            } else {
                idents
                    .iter()
                    .map(|t| source[t.range.clone()].to_string())
                    .collect()
            };
            pool.sort();
            pool.dedup();
            let target = at.get(&idents);
            splice(source, target.range.clone(), to.get(&pool).as_str())
        }
        Mutation::DimValue { at, value } => {
            let mut places = Vec::new();
            for stmt in statements_of(&toks, &Tok::Dim) {
                places.extend(stmt.filter(|&i| matches!(toks[i].tok, Tok::Number(_))));
            }
            for (i, t) in toks.iter().enumerate() {
                if t.tok == Tok::LBracket
                    && let Some(close) = matching(&toks, i)
                {
                    places.extend((i..close).filter(|&k| matches!(toks[k].tok, Tok::Number(_))));
                }
            }
            if places.is_empty() {
                return same();
            }
            splice(source, toks[*at.get(&places)].range.clone(), value)
        }
        Mutation::Shape { at, dims } => {
            let shapes: Vec<(usize, usize)> = toks
                .iter()
                .enumerate()
                .filter(|(i, t)| {
                    t.tok == Tok::LBracket
                        && *i > 0
                        && matches!(toks[i - 1].tok, Tok::Colon | Tok::Index)
                })
                .filter_map(|(i, _)| Some((i, matching(&toks, i)?)))
                .collect();
            if shapes.is_empty() {
                return same();
            }
            let (open, close) = *at.get(&shapes);
            let names = dim_names(&toks);
            let entries: Vec<String> = dims
                .iter()
                .map(|(pick, named)| {
                    if *named && !names.is_empty() {
                        pick.get(&names).clone()
                    } else {
                        pick.get(DIM_VALUES).to_string()
                    }
                })
                .collect();
            splice(
                source,
                toks[open].range.end..toks[close].range.start,
                &entries.join(", "),
            )
        }
        Mutation::Operator { at, op } => {
            let ops: Vec<&Token> = toks
                .iter()
                .filter(|t| {
                    matches!(
                        t.tok,
                        Tok::Plus
                            | Tok::Minus
                            | Tok::Star
                            | Tok::Slash
                            | Tok::At
                            | Tok::Caret
                            | Tok::Gt
                            | Tok::Ge
                            | Tok::Lt
                            | Tok::Le
                    )
                })
                .collect();
            if ops.is_empty() {
                return same();
            }
            splice(source, at.get(&ops).range.clone(), op)
        }
        Mutation::Axis { at, value } => keyword_argument(source, &toks, at, "axis", value),
        Mutation::Keepdims { at, value } => keyword_argument(source, &toks, at, "keepdims", value),
        Mutation::DuplicateStmt { at } => {
            let stmts = statements(&toks);
            if stmts.is_empty() {
                return same();
            }
            let b = bytes(&toks, at.get(&stmts));
            splice(source, b.end..b.end, &format!(" {}", &source[b]))
        }
        Mutation::DeleteStmt { at } => {
            let stmts = statements(&toks);
            if stmts.is_empty() {
                return same();
            }
            splice(source, bytes(&toks, at.get(&stmts)), "")
        }
        Mutation::SwapStmts { a, b } => {
            let stmts = statements(&toks);
            if stmts.len() < 2 {
                return same();
            }
            let (x, y) = (bytes(&toks, a.get(&stmts)), bytes(&toks, b.get(&stmts)));
            let (x, y) = if x.start <= y.start { (x, y) } else { (y, x) };
            if x == y {
                return same();
            }
            format!(
                "{}{}{}{}{}",
                &source[..x.start],
                &source[y.clone()],
                &source[x.end..y.start],
                &source[x],
                &source[y.end..]
            )
        }
        Mutation::Number { at, value } => {
            let numbers: Vec<&Token> = toks
                .iter()
                .filter(|t| matches!(t.tok, Tok::Number(_)))
                .collect();
            if numbers.is_empty() {
                return same();
            }
            splice(source, at.get(&numbers).range.clone(), value)
        }
        Mutation::Nest { at, template } => {
            let subs = subexpressions(&toks);
            if subs.is_empty() {
                return same();
            }
            let b = bytes(&toks, at.get(&subs));
            splice(source, b.clone(), &template.replace('X', &source[b]))
        }
        Mutation::WrapInFn { at, body } => {
            let exprs = expressions(&toks);
            if exprs.is_empty() {
                return same();
            }
            let e = at.get(&exprs).clone();
            let mut names: Vec<String> = Vec::new();
            let mut text = String::new();
            let mut last = toks[e.start].range.start;
            for i in e.clone() {
                if is_value_name(&toks, i) {
                    let name = source[toks[i].range.clone()].to_string();
                    let k = names.iter().position(|n| *n == name).unwrap_or_else(|| {
                        names.push(name);
                        names.len() - 1
                    });
                    text.push_str(&source[last..toks[i].range.start]);
                    text.push_str(&format!("p{k}"));
                    last = toks[i].range.end;
                }
            }
            let b = bytes(&toks, &e);
            text.push_str(&source[last..b.end]);
            let f = fresh(source, "wrap");
            let params: Vec<String> = (0..names.len()).map(|k| format!("p{k}")).collect();
            let mut declared = params.join(", ");
            if body.contains('s') {
                declared.push_str(if params.is_empty() {
                    "s = 1.5"
                } else {
                    ", s = 1.5"
                });
            }
            // The user's text goes in last, so its letters are not taken for holes.
            let body = body
                .replace('A', &params.join(", "))
                .replace('F', &f)
                .replace('B', &text);
            let def = format!("fn {f}({declared}) {body}\n");
            let call = format!("{f}({})", names.join(", "));
            format!("{def}{}", splice(source, b, &call))
        }
        Mutation::Doubling { at, depth } => {
            let subs = subexpressions(&toks);
            if subs.is_empty() {
                return same();
            }
            let stem = fresh(source, "twice");
            let mut defs = format!("fn {stem}_0(v) = v * 2;\n");
            for k in 1..=*depth {
                defs.push_str(&format!(
                    "fn {stem}_{k}(v) = {stem}_{j}(v) + {stem}_{j}(v);\n",
                    j = k - 1
                ));
            }
            let b = bytes(&toks, at.get(&subs));
            let call = format!("{stem}_{depth}({})", &source[b.clone()]);
            format!("{defs}{}", splice(source, b, &call))
        }
        Mutation::Deepening { at, calls, depth } => {
            let subs = subexpressions(&toks);
            if subs.is_empty() {
                return same();
            }
            let stem = fresh(source, "deep");
            let mut defs = format!("fn {stem}_0(v) = v;\n");
            for k in 1..=*calls {
                defs.push_str(&format!(
                    "fn {stem}_{k}(v) = {}{stem}_{j}(v);\n",
                    "- ".repeat(*depth),
                    j = k - 1
                ));
            }
            let b = bytes(&toks, at.get(&subs));
            let call = format!("{stem}_{calls}({})", &source[b.clone()]);
            format!("{defs}{}", splice(source, b, &call))
        }
        Mutation::LetChain { at, len } => {
            let losses = statements_of(&toks, &Tok::Loss);
            let Some(loss) = losses.first() else {
                return same();
            };
            // A name declared before the loss: a param, input or let.
            let names: Vec<String> = statements(&toks)
                .into_iter()
                .filter(|s| {
                    s.end <= loss.start
                        && matches!(toks[s.start].tok, Tok::Param | Tok::Input | Tok::Let)
                })
                .filter_map(|s| match &toks.get(s.start + 1)?.tok {
                    Tok::Ident(n) => Some(n.clone()),
                    _ => None,
                })
                .collect();
            if names.is_empty() {
                return same();
            }
            let from = at.get(&names);
            let stem = fresh(source, "link");
            let mut chain = format!("let {stem}_0 = {from};\n");
            for k in 1..*len {
                chain.push_str(&format!(
                    "let {stem}_{k} = {stem}_{j} * 0.5 + {from};\n",
                    j = k - 1
                ));
            }
            let semi = toks[loss.end - 1].range.start;
            let loss_start = toks[loss.start].range.start;
            let with_sum = splice(source, semi..semi, &format!(" + sum({stem}_{})", len - 1));
            splice(&with_sum, loss_start..loss_start, &chain)
        }
        Mutation::Dtype { value } => {
            match toks
                .iter()
                .position(|t| t.tok == Tok::Dtype)
                .and_then(|i| toks.get(i + 1))
            {
                Some(t) => splice(source, t.range.clone(), value),
                None => match toks.iter().position(|t| t.tok == Tok::Model) {
                    Some(i) => match toks[i..].iter().find(|t| t.tok == Tok::LBrace) {
                        Some(brace) => splice(
                            source,
                            brace.range.end..brace.range.end,
                            &format!(" dtype {value};"),
                        ),
                        None => same(),
                    },
                    None => same(),
                },
            }
        }
        Mutation::Elem { at } => {
            let inputs = statements_of(&toks, &Tok::Input);
            if inputs.is_empty() {
                return same();
            }
            let s = at.get(&inputs).clone();
            if let Some(i) = s.clone().find(|&i| toks[i].tok == Tok::Index) {
                splice(source, toks[i].range.clone(), "")
            } else if let Some(i) = s.clone().find(|&i| toks[i].tok == Tok::LBracket) {
                let p = toks[i].range.start;
                splice(source, p..p, "index")
            } else {
                same()
            }
        }
        Mutation::Grad { at } => {
            let inputs = statements_of(&toks, &Tok::Input);
            if inputs.is_empty() {
                return same();
            }
            let semi = toks[at.get(&inputs).end - 1].range.start;
            splice(source, semi..semi, " grad")
        }
        Mutation::Init { at, init } => {
            let params = statements_of(&toks, &Tok::Param);
            if params.is_empty() {
                return same();
            }
            let s = at.get(&params).clone();
            let semi = toks[s.end - 1].range.start;
            let close = s
                .clone()
                .filter(|&i| toks[i].tok == Tok::RBracket)
                .map(|i| toks[i].range.end)
                .next_back();
            match close {
                Some(end) => splice(source, end..semi, init),
                None => same(),
            }
        }
    }
}

/// Sets keyword argument `name` of a call that takes it: replaces its value, or adds it.
fn keyword_argument(source: &str, toks: &[Token], at: &Pick, name: &str, value: &str) -> String {
    let calls: Vec<(usize, usize)> = toks
        .iter()
        .enumerate()
        .filter(|(i, t)| {
            matches!(&t.tok, Tok::Ident(n) if AXIS_FNS.contains(&n.as_str()))
                && toks.get(i + 1).is_some_and(|t| t.tok == Tok::LParen)
        })
        .filter_map(|(i, _)| Some((i + 1, matching(toks, i + 1)?)))
        .collect();
    if calls.is_empty() {
        return source.to_string();
    }
    let (open, close) = *at.get(&calls);
    // An existing `name = value` at the call's own level.
    let mut depth = 0;
    for i in open + 1..close {
        match toks[i].tok {
            Tok::LParen | Tok::LBracket => depth += 1,
            Tok::RParen | Tok::RBracket => depth -= 1,
            _ if depth == 0
                && is_ident(&toks[i], name)
                && toks.get(i + 1).is_some_and(|t| t.tok == Tok::Eq) =>
            {
                // The value: up to the next `,` or the `)` at this level.
                let start = i + 2;
                let end = (start..close)
                    .find(|&k| toks[k].tok == Tok::Comma)
                    .unwrap_or(close);
                if start >= end {
                    return source.to_string();
                }
                return splice(
                    source,
                    toks[start].range.start..toks[end - 1].range.end,
                    value,
                );
            }
            _ => {}
        }
    }
    let p = toks[close].range.start;
    splice(source, p..p, &format!(", {name} = {value}"))
}

// ---- the pipeline ----------------------------------------------------------------------

/// Counters: how many cases (or models) reached each stage, and how many it accepted.
struct Tally {
    reached: [AtomicUsize; STAGES.len()],
    accepted: [AtomicUsize; STAGES.len()],
}

const STAGES: &[&str] = &[
    "parse+check",
    "lower",
    "autodiff+simplify",
    "plan",
    "emit",
    "interpret",
    "graph",
];

const CHECK: usize = 0;
const LOWER: usize = 1;
const AUTODIFF: usize = 2;
const PLAN: usize = 3;
const EMIT: usize = 4;
const INTERPRET: usize = 5;
const GRAPH: usize = 6;

static TALLY: Tally = Tally {
    reached: [const { AtomicUsize::new(0) }; STAGES.len()],
    accepted: [const { AtomicUsize::new(0) }; STAGES.len()],
};

/// Models the interpreter's memory check refused (over [`INTERPRETER_BYTES`]).
static EPOCH: std::sync::LazyLock<Instant> = std::sync::LazyLock::new(Instant::now);

static TOO_LARGE: AtomicUsize = AtomicUsize::new(0);

fn reached(stage: usize) {
    if !COUNTED.with(std::cell::Cell::get) {
        return;
    }
    if std::env::var_os("NNC_FUZZ_LOG").is_some() {
        eprintln!("  {:?} {}", EPOCH.elapsed(), STAGES[stage]);
    }
    TALLY.reached[stage].fetch_add(1, Ordering::Relaxed);
}

fn accepted(stage: usize) {
    if !COUNTED.with(std::cell::Cell::get) {
        return;
    }
    TALLY.accepted[stage].fetch_add(1, Ordering::Relaxed);
}

/// Diagnostics must have a message, point inside the source, and render.
fn check_diagnostics(source: &str, diagnostics: &[Diagnostic]) -> Result<(), String> {
    if std::env::var_os("NNC_FUZZ_LOG").is_some()
        && let Some(d) = diagnostics.first()
    {
        eprintln!("  diagnostic: {}", d.message);
    }
    if diagnostics.is_empty() {
        return Err("an error without a diagnostic".into());
    }
    for d in diagnostics {
        if d.message.is_empty() {
            return Err(format!("a diagnostic without a message: {d:?}"));
        }
        let s = d.span;
        if s.start > s.end
            || s.end > source.len()
            || !source.is_char_boundary(s.start)
            || !source.is_char_boundary(s.end)
        {
            return Err(format!("{d:?} points outside the source"));
        }
    }
    let text = render(diagnostics, "fuzz.nn", source);
    if !text.contains("Error: ") {
        return Err(format!("rendered without an error: {text}"));
    }
    Ok(())
}

/// A small deterministic generator for the interpreter's inputs.
struct SplitMix(u64);

impl SplitMix {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in [-2, 2).
    fn float(&mut self) -> f64 {
        (self.next() >> 11) as f64 / (1u64 << 53) as f64 * 4.0 - 2.0
    }
}

/// Every stage on one source. `Err` is a broken promise (a stage's error without a
/// usable diagnostic); panics are caught by the caller.
fn pipeline(source: &str, batch: usize, seed: u64) -> Result<(), String> {
    reached(CHECK);
    let (file, diagnostics) = parse_and_check(source);
    if !diagnostics.is_empty() {
        return check_diagnostics(source, &diagnostics);
    }
    accepted(CHECK);

    reached(LOWER);
    let models = match nnc::ir::lower_file(&file) {
        Ok(models) => models,
        Err(diagnostics) => return check_diagnostics(source, &diagnostics),
    };
    accepted(LOWER);

    let lines = LineIndex::new(source);
    for model in &models {
        let _ = nnc::ir::print::print(model, Some(&lines));
        reached(AUTODIFF);
        let derived = match nnc::autodiff::derive(model) {
            Ok(d) => d,
            Err(e) => {
                // Reported as `nnc compile` reports it; still, a lowered model that
                // cannot be differentiated is the compiler's mistake: fail.
                check_diagnostics(source, &[e.to_diagnostic(&model.name)])?;
                return Err(format!("autodiff: {e}"));
            }
        };
        let _ = derived.render(nnc::autodiff::Format::Text);
        let simplified = derived.simplified;
        let _ = nnc::ir::print::print(&simplified, Some(&lines));
        accepted(AUTODIFF);

        reached(PLAN);
        for entry in [Entry::Loss, Entry::Forward, Entry::LossAndGrad] {
            let plan = plan::plan(&simplified, entry);
            let _ = plan::describe(&simplified, &plan);
        }
        accepted(PLAN);

        reached(EMIT);
        if let Err(e) = nnc::codegen::generate(&simplified, &lines, "fuzz.nn") {
            return Err(format!("codegen: {e}"));
        }
        accepted(EMIT);

        interpret(&simplified, batch, seed)?;
        draw(model, source, batch, seed)?;
    }
    Ok(())
}

/// Draws the lowered model as `nnc graph` does (forward, expanded and backward, as
/// DOT; the forward picture laid out as SVG when it is small, as the layout of a
/// large one takes up to a second) at random f64 values, when it fits in
/// [`INTERPRETER_BYTES`].
fn draw(model: &Model, source: &str, batch: usize, seed: u64) -> Result<(), String> {
    use nnc::runtime::rand::SeedableRng;
    let dims: Vec<usize> = model.dims.iter().map(|d| d.size.unwrap_or(batch)).collect();
    if interpreter_bytes(model, &dims, 8, INTERPRETER_BYTES).is_err() {
        return Ok(());
    }
    reached(GRAPH);
    let mut rng = nnc::runtime::rand::rngs::StdRng::seed_from_u64(seed);
    let bindings = nnc::autodiff::gradcheck::random_point(model, batch, &mut rng);
    for (expand, backward) in [(false, false), (true, false), (false, true)] {
        let options = nnc::graph::Options {
            expand,
            backward,
            ..nnc::graph::Options::new("fuzz.nn", source)
        };
        // Errors are values (a class index out of range, ...).
        let Ok(picture) = nnc::graph::graph(model, &bindings, &options) else {
            return Ok(());
        };
        let _ = picture.dot();
        if expand || backward || nnc::graph::svg::layout_cost(&picture.diagram) > 2_000 {
            continue;
        }
        match picture.svg() {
            Ok(_) | Err(nnc::graph::RenderError::TooLarge { .. }) => {}
            Err(e) => return Err(format!("graph: {e}")),
        }
    }
    accepted(GRAPH);
    Ok(())
}

/// Evaluates `model` on random inputs, when it fits in [`INTERPRETER_BYTES`].
fn interpret(model: &Model, batch: usize, seed: u64) -> Result<(), String> {
    let dims: Vec<usize> = model.dims.iter().map(|d| d.size.unwrap_or(batch)).collect();
    let element = match model.dtype {
        DType::F32 => 4,
        DType::F64 => 8,
    };
    if interpreter_bytes(model, &dims, element, INTERPRETER_BYTES).is_err() {
        if COUNTED.with(std::cell::Cell::get) {
            TOO_LARGE.fetch_add(1, Ordering::Relaxed);
        }
        return Ok(());
    }
    reached(INTERPRET);
    let mut rng = SplitMix(seed);
    let size = |shape: &[Dim]| nnc::ir::interp::concrete_shape(&shape.to_vec(), &dims);
    let ok = match model.dtype {
        DType::F32 => run::<f32>(model, &size, &mut rng),
        DType::F64 => run::<f64>(model, &size, &mut rng),
    };
    if ok {
        accepted(INTERPRET);
    }
    Ok(())
}

fn run<F: nnc::ir::interp::Scalar>(
    model: &Model,
    size: &dyn Fn(&[Dim]) -> Vec<usize>,
    rng: &mut SplitMix,
) -> bool {
    fn float<F: nnc::ir::interp::Scalar>(shape: Vec<usize>, rng: &mut SplitMix) -> ArrayD<F> {
        let n = shape.iter().product();
        let data: Vec<F> = (0..n)
            .map(|_| F::from_f64(rng.float()).unwrap_or_else(F::zero))
            .collect();
        ArrayD::from_shape_vec(shape, data).expect("sizes match")
    }
    let params: Vec<ArrayD<F>> = model
        .params
        .iter()
        .map(|p| float(size(&p.shape), rng))
        .collect();
    let mut inputs: Vec<Value<F>> = Vec::new();
    for i in &model.inputs {
        let shape = size(&i.ty.shape);
        inputs.push(match i.ty.elem {
            Elem::Float => Value::Float(float(shape, rng)),
            Elem::Index => {
                let n = shape.iter().product();
                let data: Vec<usize> = (0..n).map(|_| (rng.next() % 3) as usize).collect();
                Value::Index(ArrayD::from_shape_vec(shape, data).expect("sizes match"))
            }
        });
    }
    match evaluate(model, &Bindings { inputs, params }) {
        Ok(eval) => {
            let _ = eval.loss();
            true
        }
        // Errors are values (a class index out of range, ...); each has a message.
        Err(e) => {
            let message = e.to_string();
            assert!(!message.is_empty());
            if std::env::var_os("NNC_FUZZ_LOG").is_some() {
                eprintln!("  run error: {message}");
            }
            false
        }
    }
}

/// Why a case failed.
#[derive(Debug)]
enum Failure {
    /// A stage panicked, broke a promise or held too much memory.
    Broken(String),
    /// It took longer than [`CASE_LIMIT`]; its thread is still running.
    Hung,
}

impl std::fmt::Display for Failure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Failure::Broken(why) => f.write_str(why),
            Failure::Hung => write!(f, "took more than {CASE_LIMIT:?}"),
        }
    }
}

thread_local! {
    /// Whether this thread's stages count in [`TALLY`] (the fuzzing test's cases do;
    /// the fixed programs of the other tests do not).
    static COUNTED: std::cell::Cell<bool> = const { std::cell::Cell::new(false) };
}

/// Runs [`pipeline`] on its own thread, watched: a panic, a broken promise, more time
/// than [`CASE_LIMIT`] or more memory than [`MAX_PEAK`] fails the case. `counted`:
/// the stages it reaches count in [`TALLY`].
fn watched(source: String, batch: usize, seed: u64, counted: bool) -> Result<Duration, Failure> {
    let (send, receive) = std::sync::mpsc::channel();
    let started = Instant::now();
    let text = source.clone();
    if let Ok(mut current) = memory::CURRENT.lock() {
        current.clone_from(&source);
    }
    if std::env::var_os("NNC_FUZZ_LOG").is_some() {
        eprintln!("---- case (batch {batch}, seed {seed})\n{source}");
    }
    let worker = std::thread::Builder::new()
        .name("fuzz case".into())
        .stack_size(STACK)
        .spawn(move || {
            memory::watch();
            COUNTED.with(|c| c.set(counted));
            let result = pipeline(&text, batch, seed);
            let _ = send.send((result, memory::peak()));
        })
        .map_err(|e| Failure::Broken(format!("cannot start a thread: {e}")))?;
    match receive.recv_timeout(CASE_LIMIT) {
        Ok((result, peak)) => {
            let _ = worker.join();
            result.map_err(Failure::Broken)?;
            if peak > MAX_PEAK {
                return Err(Failure::Broken(format!("held {peak} bytes at once")));
            }
            Ok(started.elapsed())
        }
        // The sender is gone without a result: the thread panicked.
        Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
            let message = match worker.join() {
                Err(payload) => payload
                    .downcast_ref::<String>()
                    .cloned()
                    .or_else(|| payload.downcast_ref::<&str>().map(|s| s.to_string()))
                    .unwrap_or_else(|| "a panic".into()),
                Ok(()) => "the case's thread ended without a result".into(),
            };
            Err(Failure::Broken(format!("panicked: {message}")))
        }
        Err(std::sync::mpsc::RecvTimeoutError::Timeout) => Err(Failure::Hung),
    }
}

fn env_number(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

#[test]
fn mutated_models_pass_every_stage_or_are_diagnosed() {
    // One program, every stage, timed: `NNC_FUZZ_FILE=case.nn NNC_FUZZ_LOG=1`.
    if let Some(path) = std::env::var_os("NNC_FUZZ_FILE") {
        let source = std::fs::read_to_string(path).expect("NNC_FUZZ_FILE is readable");
        let took = watched(source, env_number("NNC_FUZZ_BATCH", 2) as usize, 0, true);
        eprintln!("{took:?}");
        return;
    }
    // Most of this file's 54 s in the debug profile (Zen 3 VM, 2026-12-02).
    let cases = env_number("NNC_FUZZ_CASES", 1500) as u32;
    let seed = env_number("NNC_FUZZ_SEED", 12);
    let config = Config {
        cases,
        rng_seed: RngSeed::Fixed(seed),
        failure_persistence: None,
        max_shrink_iters: 2000,
        ..Config::default()
    };
    let mut runner = TestRunner::new(config);
    let strategy = (
        prop::sample::select(corpus()),
        prop::collection::vec(mutation(), 1..4),
        // The runtime dims' size: 0 (empty inputs) to 3.
        0usize..4,
        any::<u64>(),
    );
    let started = Instant::now();
    let slowest = std::cell::RefCell::new((Duration::ZERO, String::new()));
    let count = std::cell::Cell::new(0usize);
    // Exploring: every failure printed (`FAILURE: ...`), none stops the run.
    let keep_going = std::env::var_os("NNC_FUZZ_KEEP_GOING").is_some();
    let failures = std::cell::Cell::new(0usize);
    // A hang cannot be shrunk (its thread keeps running): the cases after it pass
    // at once, and the test fails with its program.
    let hung = std::cell::RefCell::new(None);
    let result = runner.run(&strategy, |(model, mutations, batch, seed)| {
        if hung.borrow().is_some() {
            return Ok(());
        }
        let mut source = model;
        for m in &mutations {
            source = apply(&source, m);
        }
        count.set(count.get() + 1);
        match watched(source.clone(), batch, seed, true) {
            Ok(took) => {
                let mut slowest = slowest.borrow_mut();
                if took > slowest.0 {
                    *slowest = (took, source);
                }
                Ok(())
            }
            Err(e) => {
                let report = format!("{e}\n--- program (batch {batch}, seed {seed}) ---\n{source}");
                if let Failure::Hung = e {
                    *hung.borrow_mut() = Some(report.clone());
                }
                if keep_going {
                    eprintln!("FAILURE: {report}");
                    failures.set(failures.get() + 1);
                    return Ok(());
                }
                Err(TestCaseError::fail(report))
            }
        }
    });
    let (took, slowest_source) = slowest.into_inner();
    let count = count.get();
    eprintln!(
        "fuzz_stages: {count} runs (seed {seed}, {cases} cases, shrinking included) in {:.1?}; slowest case {took:.1?}",
        started.elapsed()
    );
    // Parsing and lowering take a case's whole file; the later stages each model.
    for (k, stage) in STAGES.iter().enumerate() {
        eprintln!(
            "  {stage:<18} reached {:>5}, accepted {:>5} {}",
            TALLY.reached[k].load(Ordering::Relaxed),
            TALLY.accepted[k].load(Ordering::Relaxed),
            if k <= LOWER { "files" } else { "models" }
        );
    }
    eprintln!(
        "  models over the interpreter's memory limit ({INTERPRETER_BYTES} bytes): {}",
        TOO_LARGE.load(Ordering::Relaxed)
    );
    if std::env::var_os("NNC_FUZZ_SHOW_SLOWEST").is_some() {
        eprintln!("slowest:\n{slowest_source}");
    }
    if keep_going {
        eprintln!("  failures: {}", failures.get());
    }
    if let Some(hung) = hung.into_inner() {
        panic!("{hung}");
    }
    if let Err(e) = result {
        panic!("{e}");
    }
}

/// The mutations do what they say on a known model (a guard against a generator that
/// silently stops mutating).
#[test]
fn mutations_change_the_spec_models() {
    let source = EXAMPLES[5]; // spiral
    let first = Pick(0);
    let m = |m: Mutation| apply(source, &m);
    let swapped = m(Mutation::Operator {
        at: Pick(1),
        op: "-",
    });
    assert!(swapped.contains("x @ w - b"), "{swapped}");
    let axis = m(Mutation::Axis {
        at: first,
        value: "0",
    });
    assert!(axis.contains("argmax(scores, axis = 0)"), "{axis}");
    let dim = m(Mutation::DimValue {
        at: first,
        value: "1099511627776",
    });
    assert!(dim.contains("D = 1099511627776"), "{dim}");
    let wrapped = m(Mutation::WrapInFn {
        at: first,
        body: "= (B) * s;",
    });
    assert!(
        wrapped.starts_with("fn wrap0(p0, p1, p2, s = 1.5) = (p0 @ p1 + p2) * s;"),
        "{wrapped}"
    );
    assert!(
        wrapped.contains("fn dense(x, w, b) = wrap0(x, w, b);"),
        "{wrapped}"
    );
    let nested = m(Mutation::Nest {
        at: first,
        template: "max(X, X)",
    });
    assert!(nested.contains("= max(x, x) @ w + b;"), "{nested}");
    let nested = m(Mutation::Nest {
        at: Pick(4),
        template: "X.T",
    });
    assert!(nested.contains("relu(dense(x, w1, b1)).T"), "{nested}");
    let small = small_dims(EXAMPLES[1]);
    assert!(small.contains("D = 2,"), "{small}"); // 500 -> 2 + 500 % 5
    for source in corpus() {
        let (_, diagnostics) = parse_and_check(&source);
        assert!(diagnostics.is_empty(), "{diagnostics:?}\n{source}");
    }
}

// ---- fixed programs -----------------------------------------------------------------

/// Every stage on one program, as a case of the fuzzing test is run.
fn every_stage(source: &str) -> Result<Duration, String> {
    watched(source.to_string(), 2, 0, false).map_err(|e| format!("{e}"))
}

/// `fn c1(v) = c0(v) + c0(v); ...`, `depth` levels, called by `model`'s loss on `X`.
fn doubling(depth: usize, outer: &str, model: &str) -> String {
    let mut source = String::from("fn c0(v) = v * 2;\n");
    for k in 1..depth {
        source.push_str(&format!("fn c{k}(v) = c{j}(v) + c{j}(v);\n", j = k - 1));
    }
    let last = depth - 1;
    source.push_str(&format!(
        "fn c{depth}(v) = {};\n",
        outer.replace('P', &format!("c{last}(v)"))
    ));
    source + &model.replace('F', &format!("c{depth}"))
}

/// 60 levels (64 is the limit) of functions that call the previous one twice: 2^60
/// calls if inlined naively; every stage shares them and takes milliseconds.
#[test]
fn doubling_functions_are_linear_in_every_stage() {
    let source = doubling(
        60,
        "P + P",
        "model m { dim N, K = 3; input x: [N, K]; param w: [K, K] = xavier; loss sum(F(x @ w)); }",
    );
    assert!(nnc::autodiff::compile_source(&source).is_ok(), "compiles");
    let took = every_stage(&source).unwrap_or_else(|e| panic!("{e}"));
    assert!(took < Duration::from_secs(5), "{took:?}");
}

/// Found by the fuzzer (seed 1): the emitter indexes past a nest's domain for an
/// `argmax` along an axis of length 1.
#[test]
fn codegen_argmax_along_an_axis_of_length_one() {
    let source = "model m { dim N; input x: [N, 1]; param w: [] = 0; output p = argmax(x, axis = 1); loss w; }";
    every_stage(source).unwrap_or_else(|e| panic!("{e}"));
}

/// Found by the fuzzer (seed 12, a doubling chain around spiral's scores): lowering
/// shares the 2^24 calls, but the emitter expands the shared value into each use
/// through softmax cross-entropy's passes: 3.5 s at 14 levels, doubling with each.
/// (Fixed: a value recomputed at the gathered column is bound to a `let`.)
#[test]
fn codegen_shared_values_under_softmax_cross_entropy() {
    let source = doubling(
        24,
        "P + P",
        "model m { dim N, K = 3; input x: [N, K]; input l: index[N]; param w: [K, K] = xavier; \
         loss softmax_cross_entropy(F(x @ w), l); }",
    );
    every_stage(&source).unwrap_or_else(|e| panic!("{e}"));
}

/// Issue 12's item 1: the emitter computes a value from its operands recursively,
/// one level per link of a chain of `let`s; 6 000 overflowed the stack of a release
/// build (2 000 a debug one). Now the stack grows on the heap past a red zone, and
/// every stage takes time linear in the chain (10 000 links, debug profile, every
/// stage including the interpreter).
#[test]
fn codegen_long_let_chain() {
    let mut source =
        String::from("model m { dim N; input x: [N, 3]; param w: [3] = zeros; let a0 = x * w;\n");
    for k in 1..=LINKS {
        source.push_str(&format!("let a{k} = a{} + x;\n", k - 1));
    }
    source.push_str(&format!("loss sum(a{LINKS}); }}\n"));
    let took = every_stage(&source).unwrap_or_else(|e| panic!("{e}"));
    eprintln!("{LINKS} links: {took:?}");
}

/// The links of [`codegen_long_let_chain`].
const LINKS: usize = 10_000;
