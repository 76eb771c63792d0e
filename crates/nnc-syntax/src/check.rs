//! Checks that need no shapes: names, calls, recursion, declarations, the loss.
//!
//! Takes a parsed [`File`]; gives every problem found as a [`Diagnostic`], so a file
//! with three independent mistakes gets three errors. Shapes are checked later, by
//! lowering to IR.

use crate::Span;
use crate::ast::*;
use crate::builtins::{self, Callee, INITIALISERS};
use crate::diagnostic::Diagnostic;
use std::collections::HashMap;

/// Checks a whole file.
pub fn check(file: &File) -> Vec<Diagnostic> {
    let mut checker = Checker { file, diagnostics: Vec::new() };
    checker.items();
    for f in file.fns() {
        checker.fn_def(f);
    }
    for m in file.models() {
        checker.model(m);
    }
    checker.recursion();
    let mut diagnostics = checker.diagnostics;
    diagnostics.sort_by_key(|d| d.span.start);
    diagnostics
}

/// The closest candidate to a misspelt name, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    candidates
        .into_iter()
        .filter(|c| *c != name)
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| *distance <= (name.len().max(c.len()) / 3).max(1) && *distance < name.len())
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

struct Checker<'a> {
    file: &'a File,
    diagnostics: Vec<Diagnostic>,
}

/// What a name in scope stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    Dim,
    Const,
    Input,
    Param,
    Let,
    Output,
    FnParam,
}

impl Binding {
    fn describe(self) -> &'static str {
        match self {
            Binding::Dim => "dim",
            Binding::Const => "const",
            Binding::Input => "input",
            Binding::Param => "param",
            Binding::Let => "let",
            Binding::Output => "output",
            Binding::FnParam => "function parameter",
        }
    }
}

/// Names visible at a point, in declaration order.
#[derive(Default)]
struct Scope<'a> {
    names: Vec<(&'a str, Span, Binding)>,
}

impl<'a> Scope<'a> {
    fn lookup(&self, name: &str) -> Option<(Span, Binding)> {
        self.names.iter().rev().find(|(n, _, _)| *n == name).map(|(_, s, b)| (*s, *b))
    }
}

impl<'a> Checker<'a> {
    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// Duplicate items, and user functions that would shadow built-ins.
    fn items(&mut self) {
        let mut seen: HashMap<&str, (Span, &str)> = HashMap::new();
        for item in &self.file.items {
            let (ident, kind) = match item {
                Item::Fn(f) => (&f.name, "function"),
                Item::Model(m) => (&m.name, "model"),
            };
            if kind == "function" && builtins::all_builtin_names().any(|b| b == ident.name) {
                self.error(
                    Diagnostic::error(format!("`{}` is a built-in function", ident.name), ident.span)
                        .with_label("cannot be redefined")
                        .with_note("choose another name for this function"),
                );
                continue;
            }
            match seen.get(ident.name.as_str()) {
                Some((first, first_kind)) => {
                    let d = Diagnostic::error(
                        format!("duplicate definition of `{}`", ident.name),
                        ident.span,
                    )
                    .with_label(format!("`{}` is already defined as a {first_kind}", ident.name))
                    .with_related(*first, "first defined here");
                    self.error(d);
                }
                None => {
                    seen.insert(&ident.name, (ident.span, kind));
                }
            }
        }
    }

    fn fn_def(&mut self, f: &'a FnDef) {
        let mut scope = Scope::default();
        for p in &f.params {
            self.declare(&mut scope, &p.name, Binding::FnParam);
            if let Some(d) = p.default {
                self.finite(d);
            }
        }
        for l in &f.body.lets {
            self.expr(&l.value, &scope);
            self.declare(&mut scope, &l.name, Binding::Let);
        }
        self.expr(&f.body.value, &scope);
    }

    fn model(&mut self, m: &'a ModelDef) {
        let mut scope = Scope::default();
        let mut dtype: Option<Span> = None;
        let mut losses: Vec<&LossStmt> = Vec::new();
        for stmt in &m.stmts {
            match stmt {
                Stmt::Dtype(ident) => {
                    if let Some(first) = dtype {
                        self.error(
                            Diagnostic::error("duplicate `dtype`", ident.span)
                                .with_label("the dtype is already set")
                                .with_related(first, "first set here"),
                        );
                    }
                    dtype = Some(ident.span);
                    if ident.name != "f32" && ident.name != "f64" {
                        self.error(
                            Diagnostic::error(format!("unknown dtype `{}`", ident.name), ident.span)
                                .with_label("expected `f32` or `f64`"),
                        );
                    }
                }
                Stmt::Dim(dims) => {
                    for d in dims {
                        if let Some(size) = d.size {
                            self.dim_size(size);
                        }
                        self.declare(&mut scope, &d.name, Binding::Dim);
                    }
                }
                Stmt::Const(consts) => {
                    for c in consts {
                        self.expr(&c.value, &scope);
                        self.declare(&mut scope, &c.name, Binding::Const);
                    }
                }
                Stmt::Input(input) => {
                    self.shape(&input.ty.shape, &scope);
                    if let (Some(grad), ElemKind::Index) = (input.grad, input.ty.kind) {
                        self.error(
                            Diagnostic::error(
                                format!("`grad` on index input `{}`", input.name.name),
                                grad,
                            )
                            .with_label("index inputs are integers and have no gradient")
                            .with_note("remove `grad`, or declare the input as a float tensor"),
                        );
                    }
                    self.declare(&mut scope, &input.name, Binding::Input);
                }
                Stmt::Param(param) => {
                    self.shape(&param.shape, &scope);
                    if let Some(init) = &param.init {
                        self.init(init);
                    }
                    self.declare(&mut scope, &param.name, Binding::Param);
                }
                Stmt::Let(l) => {
                    self.expr(&l.value, &scope);
                    self.declare(&mut scope, &l.name, Binding::Let);
                }
                Stmt::Output(out) => match &out.value {
                    Some(value) => {
                        self.expr(value, &scope);
                        self.declare(&mut scope, &out.name, Binding::Output);
                    }
                    None => self.name_use(&out.name.name, out.name.span, &scope),
                },
                Stmt::Loss(loss) => {
                    self.expr(&loss.value, &scope);
                    losses.push(loss);
                }
            }
        }
        self.loss_count(m, &losses);
        self.duplicate_outputs(m);
    }

    fn loss_count(&mut self, m: &ModelDef, losses: &[&LossStmt]) {
        match losses {
            [] => self.error(
                Diagnostic::error(format!("model `{}` has no `loss`", m.name.name), m.name.span)
                    .with_label("every model needs exactly one `loss` statement")
                    .with_note("add a line such as `loss mse(prediction, target);`"),
            ),
            [_] => {}
            [first, rest @ ..] => {
                for extra in rest {
                    self.error(
                        Diagnostic::error(
                            format!("model `{}` has more than one `loss`", m.name.name),
                            extra.keyword,
                        )
                        .with_label("second `loss` here")
                        .with_related(first.keyword, "first `loss` here")
                        .with_note("a model has exactly one scalar loss; add the terms together"),
                    );
                }
            }
        }
    }

    /// `output y;` twice names the same output twice (`output y = ...` twice is
    /// already a duplicate binding).
    fn duplicate_outputs(&mut self, m: &ModelDef) {
        let mut seen: HashMap<&str, Span> = HashMap::new();
        for stmt in &m.stmts {
            if let Stmt::Output(out) = stmt {
                if let Some(first) = seen.insert(&out.name.name, out.name.span) {
                    if out.value.is_none() {
                        self.error(
                            Diagnostic::error(format!("duplicate output `{}`", out.name.name), out.name.span)
                                .with_label("already an output")
                                .with_related(first, "first output here"),
                        );
                    }
                }
            }
        }
    }

    fn declare(&mut self, scope: &mut Scope<'a>, ident: &'a Ident, binding: Binding) {
        if let Some((first, first_binding)) = scope.lookup(&ident.name) {
            let what = if binding == Binding::Let && first_binding == Binding::Let {
                format!("`{}` is bound twice", ident.name)
            } else {
                format!("duplicate declaration of `{}`", ident.name)
            };
            self.error(
                Diagnostic::error(what, ident.span)
                    .with_label(format!(
                        "`{}` is already a {} in this scope",
                        ident.name,
                        first_binding.describe()
                    ))
                    .with_related(first, "first declared here")
                    .with_note("names cannot be rebound; choose a new name"),
            );
            return;
        }
        scope.names.push((&ident.name, ident.span, binding));
    }

    fn shape(&mut self, shape: &Shape, scope: &Scope<'a>) {
        for dim in &shape.dims {
            match dim {
                DimRef::Literal(n) => self.dim_size(*n),
                DimRef::Named(ident) => match scope.lookup(&ident.name) {
                    Some((_, Binding::Dim)) => {}
                    Some((_, other)) => self.error(
                        Diagnostic::error(format!("`{}` is not a dim", ident.name), ident.span)
                            .with_label(format!("this is a {}", other.describe()))
                            .with_note("shapes are made of `dim` names and integer literals"),
                    ),
                    None => {
                        let dims = scope
                            .names
                            .iter()
                            .filter(|(_, _, b)| *b == Binding::Dim)
                            .map(|(n, _, _)| *n);
                        let mut d = Diagnostic::error(format!("unknown dim `{}`", ident.name), ident.span)
                            .with_label("not declared with `dim`");
                        if let Some(s) = suggest(&ident.name, dims) {
                            d = d.with_note(format!("did you mean `{s}`?"));
                        } else {
                            d = d.with_note(format!("declare it: `dim {};`", ident.name));
                        }
                        self.error(d);
                    }
                },
            }
        }
        if shape.dims.len() > 4 {
            self.error(
                Diagnostic::error(format!("rank {} is not supported", shape.dims.len()), shape.span)
                    .with_label("tensors have at most 4 dims"),
            );
        }
    }

    fn dim_size(&mut self, n: Number) {
        if !n.is_integer || n.value < 1.0 || n.value > (1u64 << 40) as f64 {
            self.error(
                Diagnostic::error("a dim size must be a positive integer", n.span)
                    .with_label("not a positive integer"),
            );
        }
    }

    fn finite(&mut self, n: Number) {
        if !n.value.is_finite() {
            self.error(Diagnostic::error("number out of range", n.span).with_label("too large for a float"));
        }
    }

    fn init(&mut self, init: &Init) {
        match init {
            Init::Constant(n) => self.finite(*n),
            Init::Named(ident) => match ident.name.as_str() {
                "zeros" | "ones" | "xavier" | "he" => {}
                "normal" | "uniform" => self.error(
                    Diagnostic::error(format!("`{}` needs two arguments", ident.name), ident.span)
                        .with_label(format!("write `{}(a, b)`", ident.name)),
                ),
                other => self.unknown_init(other, ident.span),
            },
            Init::Call { name, args, span } => match name.name.as_str() {
                "normal" | "uniform" => {
                    if args.len() != 2 {
                        let what = if name.name == "normal" { "(mean, std)" } else { "(lo, hi)" };
                        self.error(
                            Diagnostic::error(
                                format!("`{}` takes 2 arguments, got {}", name.name, args.len()),
                                *span,
                            )
                            .with_label(format!("expected `{}{what}`", name.name)),
                        );
                    }
                    for a in args {
                        self.finite(*a);
                    }
                }
                "zeros" | "ones" | "xavier" | "he" => self.error(
                    Diagnostic::error(format!("`{}` takes no arguments", name.name), *span)
                        .with_label(format!("write just `{}`", name.name)),
                ),
                other => self.unknown_init(other, name.span),
            },
        }
    }

    fn unknown_init(&mut self, name: &str, span: Span) {
        let mut d = Diagnostic::error(format!("unknown initialiser `{name}`"), span)
            .with_label("not an initialiser");
        d = match suggest(name, INITIALISERS.iter().copied()) {
            Some(s) => d.with_note(format!("did you mean `{s}`?")),
            None => d.with_note(format!("initialisers are: {}", INITIALISERS.join(", "))),
        };
        self.error(d);
    }

    fn name_use(&mut self, name: &str, span: Span, scope: &Scope<'a>) {
        if scope.lookup(name).is_some() {
            return;
        }
        let mut d = Diagnostic::error(format!("unknown name `{name}`"), span).with_label("not found in this scope");
        if let Some(s) = suggest(name, scope.names.iter().map(|(n, _, _)| *n)) {
            d = d.with_note(format!("did you mean `{s}`?"));
        } else if Callee::resolve(name, self.file.fns()).is_some() {
            d = d.with_note(format!("`{name}` is a function: call it with `{name}(...)`"));
        }
        self.error(d);
    }

    fn expr(&mut self, e: &Expr, scope: &Scope<'a>) {
        match &e.kind {
            ExprKind::Number(n) => self.finite(*n),
            ExprKind::Bool(_) | ExprKind::Error => {}
            ExprKind::Name(name) => self.name_use(name, e.span, scope),
            ExprKind::Neg(inner) | ExprKind::Transpose(inner) => self.expr(inner, scope),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs, scope);
                self.expr(rhs, scope);
            }
            ExprKind::Call { func, args } => {
                self.call(func, args, e.span);
                for arg in args {
                    self.expr(&arg.value, scope);
                }
            }
        }
    }

    fn call(&mut self, func: &Ident, args: &[Arg], call_span: Span) {
        let Some(callee) = Callee::resolve(&func.name, self.file.fns()) else {
            let mut candidates: Vec<&str> = builtins::all_builtin_names().collect();
            candidates.extend(self.file.fns().map(|f| f.name.name.as_str()));
            let mut d = Diagnostic::error(format!("unknown function `{}`", func.name), func.span)
                .with_label("no built-in or `fn` has this name");
            if let Some(s) = suggest(&func.name, candidates) {
                d = d.with_note(format!("did you mean `{s}`?"));
            }
            self.error(d);
            return;
        };
        let (positional, required, keywords): (Vec<&str>, usize, Vec<&str>) = match callee {
            Callee::Builtin(b) => (b.positional.to_vec(), b.required, b.keywords.to_vec()),
            Callee::Prelude(f) | Callee::User(f) => {
                let names: Vec<&str> = f.params.iter().map(|p| p.name.name.as_str()).collect();
                let required = f.params.iter().take_while(|p| p.default.is_none()).count();
                (names.clone(), required, names)
            }
        };
        let given: Vec<&Arg> = args.iter().filter(|a| a.keyword.is_none()).collect();
        if given.len() > positional.len() {
            let extra = given[positional.len()].value.span;
            self.error(
                Diagnostic::error(
                    format!(
                        "`{}` takes {} positional argument{}, got {}",
                        func.name,
                        positional.len(),
                        plural(positional.len()),
                        given.len()
                    ),
                    extra,
                )
                .with_label("unexpected argument")
                .with_note(signature_note(&func.name, &positional, required, &keywords)),
            );
        }
        let mut filled: Vec<&str> = positional.iter().take(given.len()).copied().collect();
        for arg in args {
            let Some(kw) = &arg.keyword else { continue };
            if !keywords.contains(&kw.name.as_str()) {
                let mut d = Diagnostic::error(
                    format!("`{}` has no keyword argument `{}`", func.name, kw.name),
                    kw.span,
                )
                .with_label("unknown keyword");
                d = match suggest(&kw.name, keywords.iter().copied()) {
                    Some(s) => d.with_note(format!("did you mean `{s}`?")),
                    None => d.with_note(signature_note(&func.name, &positional, required, &keywords)),
                };
                self.error(d);
            } else if filled.contains(&kw.name.as_str()) {
                self.error(
                    Diagnostic::error(format!("argument `{}` given twice", kw.name), kw.span)
                        .with_label("already given"),
                );
            } else {
                filled.push(&kw.name);
            }
        }
        let missing: Vec<&str> = positional[..required].iter().filter(|p| !filled.contains(p)).copied().collect();
        if !missing.is_empty() {
            self.error(
                Diagnostic::error(
                    format!(
                        "`{}` is missing argument{} {}",
                        func.name,
                        plural(missing.len()),
                        missing.iter().map(|m| format!("`{m}`")).collect::<Vec<_>>().join(", ")
                    ),
                    call_span,
                )
                .with_label(format!("takes {required} required argument{}", plural(required)))
                .with_note(signature_note(&func.name, &positional, required, &keywords)),
            );
        }
    }

    /// Recursion among user functions: each cycle reported once, at its first function.
    fn recursion(&mut self) {
        let fns: Vec<&FnDef> = self.file.fns().collect();
        let index: HashMap<&str, usize> =
            fns.iter().enumerate().map(|(i, f)| (f.name.name.as_str(), i)).collect();
        let calls: Vec<Vec<(usize, Span)>> = fns
            .iter()
            .map(|f| {
                let mut out = Vec::new();
                collect_calls(&f.body, &mut |name, span| {
                    if let Some(&j) = index.get(name) {
                        out.push((j, span));
                    }
                });
                out
            })
            .collect();
        let mut reported = vec![false; fns.len()];
        for start in 0..fns.len() {
            if reported[start] {
                continue;
            }
            if let Some(cycle) = find_cycle(start, &calls) {
                for &(i, _) in &cycle {
                    reported[i] = true;
                }
                let chain: Vec<String> = std::iter::once(start)
                    .chain(cycle.iter().map(|&(i, _)| i))
                    .map(|i| format!("`{}`", fns[i].name.name))
                    .collect();
                let (_, call_span) = cycle[cycle.len() - 1];
                let mut d = Diagnostic::error(
                    format!("recursive function `{}`", fns[start].name.name),
                    call_span,
                )
                .with_label("this call leads back to the function being defined")
                .with_note(format!("the call chain is {}", chain.join(" -> ")))
                .with_note("functions are inlined at each call, so they cannot recurse");
                if cycle.len() > 1 {
                    d = d.with_related(fns[start].name.span, "defined here");
                }
                self.error(d);
            }
        }
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn signature_note(name: &str, positional: &[&str], required: usize, keywords: &[&str]) -> String {
    let mut parts: Vec<String> = positional
        .iter()
        .enumerate()
        .map(|(i, p)| if i < required { p.to_string() } else { format!("[{p}]") })
        .collect();
    parts.extend(keywords.iter().filter(|k| !positional.contains(k)).map(|k| format!("{k} = ...")));
    format!("the signature is `{name}({})`", parts.join(", "))
}

/// Calls every function named in a block, with the call's span.
fn collect_calls(block: &Block, f: &mut impl FnMut(&str, Span)) {
    for l in &block.lets {
        collect_calls_expr(&l.value, f);
    }
    collect_calls_expr(&block.value, f);
}

fn collect_calls_expr(e: &Expr, f: &mut impl FnMut(&str, Span)) {
    match &e.kind {
        ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Name(_) | ExprKind::Error => {}
        ExprKind::Neg(inner) | ExprKind::Transpose(inner) => collect_calls_expr(inner, f),
        ExprKind::Binary { lhs, rhs, .. } => {
            collect_calls_expr(lhs, f);
            collect_calls_expr(rhs, f);
        }
        ExprKind::Call { func, args } => {
            f(&func.name, e.span);
            for a in args {
                collect_calls_expr(&a.value, f);
            }
        }
    }
}

/// A path of calls from `start` back to `start` (each step: callee, call span), by
/// iterative depth-first search.
fn find_cycle(start: usize, calls: &[Vec<(usize, Span)>]) -> Option<Vec<(usize, Span)>> {
    let mut visited = vec![false; calls.len()];
    // Stack of (function, next edge to try); `path` holds the edges taken.
    let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
    let mut path: Vec<(usize, Span)> = Vec::new();
    visited[start] = true;
    while let Some(&mut (node, ref mut next)) = stack.last_mut() {
        if *next >= calls[node].len() {
            stack.pop();
            path.pop();
            continue;
        }
        let (callee, span) = calls[node][*next];
        *next += 1;
        if callee == start {
            path.push((callee, span));
            return Some(path);
        }
        if !visited[callee] {
            visited[callee] = true;
            path.push((callee, span));
            stack.push((callee, 0));
        }
    }
    None
}
