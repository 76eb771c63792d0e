//! Checks that need no shapes: names, calls, recursion, declarations, the loss.
//!
//! Takes a parsed [`File`]; gives every problem found as a [`Diagnostic`], so a file
//! with three independent mistakes gets three errors. Shapes are checked later, by
//! lowering to IR.

use crate::Span;
use crate::ast::*;
use crate::builtins::{self, Callee, INITIALISERS};
use crate::diagnostic::Diagnostic;
use std::collections::{HashMap, HashSet};

/// Checks a whole file.
pub fn check(file: &File) -> Vec<Diagnostic> {
    let mut fns: HashMap<&str, &FnDef> = HashMap::new();
    for f in file.fns() {
        fns.entry(f.name.name.as_str()).or_insert(f);
    }
    let mut checker = Checker {
        file,
        fns,
        diagnostics: Vec::new(),
        declarations: HashMap::new(),
        suggestion_budget: SUGGESTION_BUDGET,
        file_scope: Scope::default(),
    };
    checker.items();
    checker.file_consts();
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

/// The largest dim size: 2^40. (A value's element count, the product of its dims, is
/// bounded by lowering: at most 2^48.)
pub const MAX_DIM: usize = 1 << 40;

/// How many candidates one file's suggestions may compare in all. Real files use a few
/// thousand; the budget keeps a generated file with thousands of unknown names among
/// thousands of declared ones from taking quadratic time.
const SUGGESTION_BUDGET: usize = 200_000;

/// The closest candidate to a misspelt name, if one is close enough to be a likely typo.
pub fn suggest<'a>(name: &str, candidates: impl IntoIterator<Item = &'a str>) -> Option<&'a str> {
    // The distance is at least the difference in length: skip the hopeless cheaply.
    let close_in_length =
        |c: &str| name.len().abs_diff(c.len()) <= (name.len().max(c.len()) / 3).max(1);
    candidates
        .into_iter()
        .filter(|c| *c != name && close_in_length(c))
        .map(|c| (strsim::damerau_levenshtein(name, c), c))
        .filter(|(distance, c)| {
            *distance <= (name.len().max(c.len()) / 3).max(1) && *distance < name.len()
        })
        .min_by_key(|(distance, _)| *distance)
        .map(|(_, c)| c)
}

struct Checker<'a> {
    file: &'a File,
    /// The file's functions by name (the first, if defined twice).
    fns: HashMap<&'a str, &'a FnDef>,
    diagnostics: Vec<Diagnostic>,
    /// Every name the current model or function declares (first declaration), wherever
    /// it does, to tell "unknown" from "used before its declaration".
    declarations: HashMap<&'a str, Span>,
    /// Candidates [`suggest`] may still compare; see [`SUGGESTION_BUDGET`].
    suggestion_budget: usize,
    /// The file-level consts: where every model and function's scope starts.
    file_scope: Scope<'a>,
}

/// What a name in scope stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Binding {
    Dim,
    Const,
    Input,
    Param,
    State,
    Let,
    Output,
    FnParam,
    /// A loop's `l`.
    LoopIndex,
    /// Inside a loop's body, the `let` name the loop carries.
    Carried,
}

impl Binding {
    /// What the name is, with its article: "an input".
    fn describe(self) -> &'static str {
        match self {
            Binding::Dim => "a dim",
            Binding::Const => "a const",
            Binding::Input => "an input",
            Binding::Param => "a param",
            Binding::State => "a state",
            Binding::Let => "a `let`",
            Binding::Output => "an output",
            Binding::FnParam => "a function parameter",
            Binding::LoopIndex => "a loop index",
            Binding::Carried => "the value a loop carries",
        }
    }
}

/// Names visible at a point, in declaration order, and indexed by name. A name is in a
/// scope at most once (redeclarations are reported and not added).
#[derive(Clone, Default)]
struct Scope<'a> {
    names: Vec<(&'a str, Span, Binding)>,
    index: HashMap<&'a str, (Span, Binding)>,
}

impl<'a> Scope<'a> {
    fn lookup(&self, name: &str) -> Option<(Span, Binding)> {
        self.index.get(name).copied()
    }

    fn add(&mut self, name: &'a str, span: Span, binding: Binding) {
        self.names.push((name, span, binding));
        self.index.insert(name, (span, binding));
    }
}

impl<'a> Checker<'a> {
    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// [`Callee::resolve`], with the file's functions looked up by name.
    fn resolve(&self, name: &str) -> Option<Callee<'a>> {
        if let Some(b) = builtins::builtin(name) {
            return Some(Callee::Builtin(b));
        }
        if let Some(f) = crate::prelude::function(name) {
            return Some(Callee::Prelude(f));
        }
        self.fns.get(name).map(|f| Callee::User(f))
    }

    /// [`suggest`], within the file's [`SUGGESTION_BUDGET`].
    fn suggest<'c>(
        &mut self,
        name: &str,
        candidates: impl IntoIterator<Item = &'c str>,
    ) -> Option<&'c str> {
        let candidates: Vec<&str> = candidates
            .into_iter()
            .take(self.suggestion_budget)
            .collect();
        self.suggestion_budget -= candidates.len();
        suggest(name, candidates)
    }

    /// Duplicate items, and user functions that would shadow built-ins.
    fn items(&mut self) {
        let mut seen: HashMap<&str, (Span, &str)> = HashMap::new();
        for item in &self.file.items {
            let (ident, kind) = match item {
                Item::Fn(f) => (&f.name, "function"),
                Item::Model(m) => (&m.name, "model"),
                // Names of values, not of items: `file_consts` checks them.
                Item::Const(_) => continue,
            };
            if kind == "function" && builtins::all_builtin_names().any(|b| b == ident.name) {
                self.error(
                    Diagnostic::error(
                        format!("`{}` is a built-in function", ident.name),
                        ident.span,
                    )
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
                    .with_label(format!(
                        "`{}` is already defined as a {first_kind}",
                        ident.name
                    ))
                    .with_related(*first, "first defined here");
                    self.error(d);
                }
                None => {
                    seen.insert(&ident.name, (ident.span, kind));
                }
            }
        }
    }

    /// The file-level consts, in order: each may use the ones before it.
    fn file_consts(&mut self) {
        let file = self.file;
        self.declarations = declarations(file.consts().map(|c| &c.name));
        let mut scope = Scope::default();
        for c in file.consts() {
            self.expr(&c.value, &scope);
            self.declare(&mut scope, &c.name, Binding::Const);
        }
        self.file_scope = scope;
    }

    fn fn_def(&mut self, f: &'a FnDef) {
        self.declarations = declarations(
            f.params
                .iter()
                .map(|p| &p.name)
                .chain(f.body.lets.iter().flat_map(Let::names)),
        );
        let mut scope = self.file_scope.clone();
        // A default sees the file's consts, not the other parameters.
        let consts = self.file_scope.clone();
        let mut first_default: Option<&Ident> = None;
        for p in &f.params {
            self.declare(&mut scope, &p.name, Binding::FnParam);
            match (&p.default, first_default) {
                (Some(d), _) => {
                    self.expr(d, &consts);
                    first_default.get_or_insert(&p.name);
                }
                (None, Some(with_default)) => self.error(
                    Diagnostic::error(
                        format!("parameter `{}` needs a default value", p.name.name),
                        p.name.span,
                    )
                    .with_label("a parameter without a default")
                    .with_related(with_default.span, "follows this one, which has a default")
                    .with_note(
                        "parameters with defaults come last, so that calls can leave them out",
                    ),
                ),
                (None, None) => {}
            }
        }
        for l in &f.body.lets {
            self.expr(&l.value, &scope);
            for name in l.names() {
                self.declare(&mut scope, name, Binding::Let);
            }
        }
        self.expr(&f.body.value, &scope);
    }

    fn model(&mut self, m: &'a ModelDef) {
        self.declarations = declarations(m.stmts.iter().flat_map(declared_names));
        let mut scope = self.file_scope.clone();
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
                            Diagnostic::error(
                                format!("unknown dtype `{}`", ident.name),
                                ident.span,
                            )
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
                        self.init(init, &scope);
                    }
                    self.declare(&mut scope, &param.name, Binding::Param);
                }
                Stmt::State(state) => {
                    self.shape(&state.shape, &scope);
                    if let Some(init) = &state.init {
                        self.init(init, &scope);
                    }
                    self.declare(&mut scope, &state.name, Binding::State);
                }
                Stmt::Let(l) => {
                    self.expr(&l.value, &scope);
                    for name in l.names() {
                        self.declare(&mut scope, name, Binding::Let);
                    }
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
                Diagnostic::error(
                    format!("model `{}` has no `loss`", m.name.name),
                    m.name.span,
                )
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
            let Stmt::Output(out) = stmt else { continue };
            match seen.get(out.name.name.as_str()) {
                Some(&first) if out.value.is_none() => self.error(
                    Diagnostic::error(
                        format!("duplicate output `{}`", out.name.name),
                        out.name.span,
                    )
                    .with_label("already an output")
                    .with_related(first, "first output here"),
                ),
                Some(_) => {}
                None => {
                    seen.insert(&out.name.name, out.name.span);
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
                        "`{}` is already {} in this scope",
                        ident.name,
                        first_binding.describe()
                    ))
                    .with_related(first, "first declared here")
                    .with_note("names cannot be rebound; choose a new name"),
            );
            return;
        }
        scope.add(&ident.name, ident.span, binding);
    }

    fn shape(&mut self, shape: &'a Shape, scope: &Scope<'a>) {
        for dim in &shape.dims {
            match dim {
                DimRef::Literal(n) => self.dim_size(*n),
                DimRef::Expr(e) => self.expr(e, scope),
                DimRef::Named(ident) => match scope.lookup(&ident.name) {
                    Some((_, Binding::Dim | Binding::Const)) => {}
                    Some((_, other)) => self.error(
                        Diagnostic::error(format!("`{}` is not a dim", ident.name), ident.span)
                            .with_label(format!("`{}` is {}", ident.name, other.describe()))
                            .with_note(
                                "shapes are made of `dim` names, integers and `const` expressions",
                            ),
                    ),
                    None => {
                        let dims = scope
                            .names
                            .iter()
                            .filter(|(_, _, b)| *b == Binding::Dim)
                            .map(|(n, _, _)| *n);
                        let mut d =
                            Diagnostic::error(format!("unknown dim `{}`", ident.name), ident.span)
                                .with_label("not declared with `dim`");
                        if let Some(s) = self.suggest(&ident.name, dims) {
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
                Diagnostic::error(
                    format!("rank {} is not supported", shape.dims.len()),
                    shape.span,
                )
                .with_label("tensors have at most 4 dims"),
            );
        }
    }

    fn dim_size(&mut self, n: Number) {
        if !n.is_integer || n.value < 1.0 {
            self.error(
                Diagnostic::error("a dim size must be a positive integer", n.span)
                    .with_label("not a positive integer"),
            );
        } else if n.value > MAX_DIM as f64 {
            self.error(
                Diagnostic::error("a dim size is at most 2^40", n.span)
                    .with_label(format!("more than {MAX_DIM}"))
                    .with_note("a value has at most 2^48 elements in all"),
            );
        }
    }

    fn finite(&mut self, n: Number) {
        if !n.value.is_finite() {
            self.error(
                Diagnostic::error("number out of range", n.span)
                    .with_label("too large for a float"),
            );
        }
    }

    fn init(&mut self, init: &'a Init, scope: &Scope<'a>) {
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
                        let what = if name.name == "normal" {
                            "(mean, std)"
                        } else {
                            "(lo, hi)"
                        };
                        self.error(
                            Diagnostic::error(
                                format!("`{}` takes 2 arguments, got {}", name.name, args.len()),
                                *span,
                            )
                            .with_label(format!("expected `{}{what}`", name.name)),
                        );
                    }
                    for a in args {
                        self.expr(a, scope);
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
        let mut d = Diagnostic::error(format!("unknown name `{name}`"), span)
            .with_label("not found in this scope");
        let declared = self.declarations.get(name).copied();
        if let Some(at) = declared.filter(|at| at.start > span.start) {
            d = d
                .with_related(at, "declared here, after its use")
                .with_note("names must be declared before they are used");
        } else if let Some(at) = declared {
            // Declared before but not in scope: this is its own definition.
            d = d
                .with_related(at, "defined by this statement")
                .with_note(format!(
                    "a definition cannot use the name it defines; `{name}` exists only after it"
                ));
        } else if let Some(b) = ["true", "false"]
            .into_iter()
            .find(|b| b.eq_ignore_ascii_case(name))
        {
            // Python's `True`: booleans are lowercase, as in Rust.
            d = d.with_note(format!("did you mean `{b}`?"));
        } else if matches!(name, "None" | "newaxis") {
            // numpy's `x[:, None]`: a new axis of size 1.
            d = d.with_note(
                "`.nn` has no `None`; to add an axis of size 1, reshape: `reshape(x, (N, 1))`",
            );
        } else if let Some(s) = self.suggest(name, scope.names.iter().map(|(n, _, _)| *n)) {
            d = d.with_note(format!("did you mean `{s}`?"));
        } else if self.resolve(name).is_some() {
            d = d.with_note(format!(
                "`{name}` is a function: call it with `{name}(...)`"
            ));
        }
        self.error(d);
    }

    fn expr(&mut self, e: &'a Expr, scope: &Scope<'a>) {
        match &e.kind {
            ExprKind::Number(n) => self.finite(*n),
            ExprKind::Bool(_) | ExprKind::Error => {}
            ExprKind::Name(name) => self.name_use(name, e.span, scope),
            ExprKind::Neg(inner) | ExprKind::Transpose(inner) => self.expr(inner, scope),
            ExprKind::Binary { lhs, rhs, .. } => {
                self.expr(lhs, scope);
                self.expr(rhs, scope);
            }
            ExprKind::Tuple(items) => {
                for item in items {
                    self.expr(item, scope);
                }
            }
            ExprKind::Index { base, items } => {
                self.expr(base, scope);
                for e in items.iter().flat_map(IndexItem::exprs) {
                    self.expr(e, scope);
                }
            }
            ExprKind::Call { func, args } => {
                self.call(func, args, e.span);
                for arg in args {
                    self.expr(&arg.value, scope);
                }
            }
            ExprKind::Loop(lp) => self.loop_expr(lp, scope),
        }
    }

    /// A loop: its range and start in the enclosing scope; its body in that scope
    /// with the index, the carried name and the body's own `let`s added.
    fn loop_expr(&mut self, lp: &'a Loop, scope: &Scope<'a>) {
        self.expr(&lp.start, scope);
        self.expr(&lp.end, scope);
        self.expr(&lp.from, scope);
        let mut body = scope.clone();
        self.declare(&mut body, &lp.index, Binding::LoopIndex);
        // A carried name already in scope is the `let`'s own duplicate, reported there.
        if body.lookup(&lp.carried.name).is_none() {
            body.add(&lp.carried.name, lp.carried.span, Binding::Carried);
        }
        for l in &lp.body.lets {
            self.expr(&l.value, &body);
            for name in l.names() {
                self.declare(&mut body, name, Binding::Let);
            }
        }
        self.expr(&lp.body.value, &body);
    }

    fn call(&mut self, func: &Ident, args: &[Arg], call_span: Span) {
        let Some(callee) = self.resolve(&func.name) else {
            let file = self.file;
            let builtin_names = builtins::all_builtin_names().map(|n| -> &'a str { n });
            let candidates = builtin_names.chain(file.fns().map(|f| f.name.name.as_str()));
            let mut d = Diagnostic::error(format!("unknown function `{}`", func.name), func.span)
                .with_label("no built-in or `fn` has this name");
            if let Some(s) = self.suggest(&func.name, candidates) {
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
                .with_note(signature_note(
                    &func.name,
                    &positional,
                    required,
                    &keywords,
                )),
            );
        }
        // The parameters given so far: where, and whether by keyword.
        let mut filled: HashMap<&str, (Span, bool)> = positional
            .iter()
            .zip(&given)
            .map(|(p, a)| (*p, (a.value.span, false)))
            .collect();
        let keyword_set: HashSet<&str> = keywords.iter().copied().collect();
        for arg in args {
            let Some(kw) = &arg.keyword else { continue };
            if !keyword_set.contains(kw.name.as_str()) {
                let mut d = Diagnostic::error(
                    format!("`{}` has no keyword argument `{}`", func.name, kw.name),
                    kw.span,
                )
                .with_label("unknown keyword");
                d = match self.suggest(&kw.name, keywords.iter().copied()) {
                    Some(s) => d.with_note(format!("did you mean `{s}`?")),
                    None => {
                        d.with_note(signature_note(&func.name, &positional, required, &keywords))
                    }
                };
                self.error(d);
            } else if let Some(&(first, by_keyword)) = filled.get(kw.name.as_str()) {
                let how = if by_keyword {
                    "first given here"
                } else {
                    "first given here, by position"
                };
                self.error(
                    Diagnostic::error(format!("argument `{}` given twice", kw.name), kw.span)
                        .with_label("given again")
                        .with_related(first, how),
                );
            } else {
                filled.insert(&kw.name, (kw.span, true));
            }
        }
        let missing: Vec<&str> = positional[..required]
            .iter()
            .filter(|p| !filled.contains_key(*p))
            .copied()
            .collect();
        if !missing.is_empty() {
            self.error(
                Diagnostic::error(
                    format!(
                        "`{}` is missing argument{} {}",
                        func.name,
                        plural(missing.len()),
                        missing
                            .iter()
                            .map(|m| format!("`{m}`"))
                            .collect::<Vec<_>>()
                            .join(", ")
                    ),
                    call_span,
                )
                .with_label(format!(
                    "takes {required} required argument{}",
                    plural(required)
                ))
                .with_note(signature_note(
                    &func.name,
                    &positional,
                    required,
                    &keywords,
                )),
            );
        }
    }

    /// Recursion among user functions: one error per group of functions that call each
    /// other in a cycle (strongly connected component), at its first function.
    fn recursion(&mut self) {
        let fns: Vec<&FnDef> = self.file.fns().collect();
        let mut index: HashMap<&str, usize> = HashMap::new();
        for (i, f) in fns.iter().enumerate() {
            index.entry(f.name.name.as_str()).or_insert(i);
        }
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
        let component = components(&calls);
        let mut size = vec![0usize; fns.len()];
        for &c in &component {
            size[c] += 1;
        }
        let mut seen = vec![false; fns.len()];
        let mut visited = vec![false; fns.len()];
        for start in 0..fns.len() {
            let c = component[start];
            if std::mem::replace(&mut seen[c], true) {
                continue;
            }
            let self_call = calls[start].iter().any(|&(j, _)| j == start);
            if size[c] == 1 && !self_call {
                continue;
            }
            let Some(cycle) = find_cycle(start, &calls, |j| component[j] == c, &mut visited) else {
                continue;
            };
            let mut chain: Vec<String> = std::iter::once(start)
                .chain(cycle.iter().map(|&(i, _)| i))
                .map(|i| format!("`{}`", fns[i].name.name))
                .collect();
            // A long cycle shows its start and its end.
            if chain.len() > 8 {
                let hidden = chain.len() - 6;
                chain.splice(4..chain.len() - 2, [format!("({hidden} more)")]);
            }
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

/// The first declaration of each name.
fn declarations<'a>(names: impl Iterator<Item = &'a Ident>) -> HashMap<&'a str, Span> {
    let mut map = HashMap::new();
    for ident in names {
        map.entry(ident.name.as_str()).or_insert(ident.span);
    }
    map
}

/// The names a model statement declares.
fn declared_names(stmt: &Stmt) -> Vec<&Ident> {
    match stmt {
        Stmt::Dim(dims) => dims.iter().map(|d| &d.name).collect(),
        Stmt::Const(consts) => consts.iter().map(|c| &c.name).collect(),
        Stmt::Input(input) => vec![&input.name],
        Stmt::Param(param) | Stmt::State(param) => vec![&param.name],
        Stmt::Let(l) => l.names().collect(),
        Stmt::Output(out) if out.value.is_some() => vec![&out.name],
        Stmt::Output(_) | Stmt::Dtype(_) | Stmt::Loss(_) => vec![],
    }
}

fn plural(n: usize) -> &'static str {
    if n == 1 { "" } else { "s" }
}

fn signature_note(name: &str, positional: &[&str], required: usize, keywords: &[&str]) -> String {
    /// Parameters shown before `...`.
    const SHOWN: usize = 12;
    let positional_parts = positional.iter().enumerate().map(|(i, p)| {
        if i < required {
            p.to_string()
        } else {
            format!("[{p}]")
        }
    });
    let keyword_parts = keywords
        .iter()
        .filter(|k| !positional.contains(k))
        .map(|k| format!("{k} = ..."));
    // Lazy: keyword-only parameters are looked at only when few are positional.
    let mut parts: Vec<String> = positional_parts
        .chain(keyword_parts)
        .take(SHOWN + 1)
        .collect();
    if parts.len() > SHOWN {
        parts[SHOWN] = "...".to_string();
    }
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
        ExprKind::Tuple(items) => {
            for item in items {
                collect_calls_expr(item, f);
            }
        }
        ExprKind::Index { base, items } => {
            collect_calls_expr(base, f);
            for e in items.iter().flat_map(IndexItem::exprs) {
                collect_calls_expr(e, f);
            }
        }
        ExprKind::Call { func, args } => {
            f(&func.name, e.span);
            for a in args {
                collect_calls_expr(&a.value, f);
            }
        }
        ExprKind::Loop(lp) => {
            for e in lp.exprs() {
                collect_calls_expr(e, f);
            }
        }
    }
}

/// A path of calls from `start` back to `start` (each step: callee, call span) through
/// functions `inside` allows, by iterative depth-first search. `visited` is all false
/// on entry and on return, so one buffer serves every search.
fn find_cycle(
    start: usize,
    calls: &[Vec<(usize, Span)>],
    inside: impl Fn(usize) -> bool,
    visited: &mut [bool],
) -> Option<Vec<(usize, Span)>> {
    let mut touched = vec![start];
    // Stack of (function, next edge to try); `path` holds the edges taken.
    let mut stack: Vec<(usize, usize)> = vec![(start, 0)];
    let mut path: Vec<(usize, Span)> = Vec::new();
    visited[start] = true;
    let mut found = None;
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
            found = Some(path);
            break;
        }
        if !visited[callee] && inside(callee) {
            visited[callee] = true;
            touched.push(callee);
            path.push((callee, span));
            stack.push((callee, 0));
        }
    }
    for i in touched {
        visited[i] = false;
    }
    found
}

/// The strongly connected components of a call graph, by an iterative Tarjan: a
/// component number per function.
fn components(calls: &[Vec<(usize, Span)>]) -> Vec<usize> {
    const NONE: usize = usize::MAX;
    let n = calls.len();
    let mut order = vec![NONE; n];
    let mut low = vec![0; n];
    let mut on_stack = vec![false; n];
    let mut stack: Vec<usize> = Vec::new();
    let mut component = vec![NONE; n];
    let (mut next_order, mut next_component) = (0, 0);
    for root in 0..n {
        if order[root] != NONE {
            continue;
        }
        order[root] = next_order;
        low[root] = next_order;
        next_order += 1;
        stack.push(root);
        on_stack[root] = true;
        // (function, next edge to follow)
        let mut work: Vec<(usize, usize)> = vec![(root, 0)];
        while let Some(&mut (v, ref mut edge)) = work.last_mut() {
            if let Some(&(w, _)) = calls[v].get(*edge) {
                *edge += 1;
                if order[w] == NONE {
                    order[w] = next_order;
                    low[w] = next_order;
                    next_order += 1;
                    stack.push(w);
                    on_stack[w] = true;
                    work.push((w, 0));
                } else if on_stack[w] {
                    low[v] = low[v].min(order[w]);
                }
                continue;
            }
            work.pop();
            if let Some(&(parent, _)) = work.last() {
                low[parent] = low[parent].min(low[v]);
            }
            if low[v] == order[v] {
                while let Some(w) = stack.pop() {
                    on_stack[w] = false;
                    component[w] = next_component;
                    if w == v {
                        break;
                    }
                }
                next_component += 1;
            }
        }
    }
    component
}
