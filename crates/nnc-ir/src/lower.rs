//! Lowering: a checked AST model to IR, with every shape inferred.
//!
//! Functions (the user's and the prelude's) are inlined at each call, so they are
//! shape-polymorphic: a call's shapes are checked where it is made. Compile-time
//! numbers (literals, `const`s, fixed dims) are folded as they are met, so `^`'s
//! exponent and keyword arguments are known numbers by the time an op is built.
//!
//! Errors become [`Diagnostic`]s at the span a user should look at: the operator of
//! a binary op, the call of a built-in, and for errors inside the prelude the user's
//! call of the prelude function.
//!
//! Lowering is linear in the program, however its functions call each other:
//! - nodes are **hash-consed**: a node with the op, operands and type of one already
//!   lowered is that node (the first one's span and name are kept);
//! - an inlined call is **memoised** on the function, the values bound to its
//!   parameters, its nesting depth and the span its prelude nodes take, so calling a
//!   function again on the same values costs a lookup. `fn f1(x) = f0(x) + f0(x);
//!   fn f2(x) = f1(x) + f1(x); ...` lowers each function once, to one node per
//!   operation written, where inlining alone would double the work at each level;
//! - functions and names are found through hash maps.
//!
//! Lowering recurses once per nested expression, through the bodies of the
//! functions it inlines; `MAX_NESTED_EXPRS` bounds that depth (an error beyond), so
//! no program overflows the stack.
//!
//! Every value's element count is checked against [`MAX_ELEMENTS`]: declared inputs
//! and parameters at their declaration, computed values at the operation that would
//! make them, so no later size computation can overflow.

use crate::model::{
    Call, GradOf, Init, InputInfo, InputKind, Mode, Model, NodeId, NodeKey, ParamInfo,
};
use crate::op::{BinaryOp, CmpOp, InputId, Op, ParamId, ReduceOp, UnaryOp};
use crate::shape::ShapeError;
use crate::types::{DType, Dim, DimId, DimInfo, Elem, MAX_ELEMENTS, Shape, Type, checked_elements};
use nnc_syntax::ast::{self, Arg, BinOp, ElemKind, Expr, ExprKind, FnDef, Stmt};
use nnc_syntax::builtins::Callee;
use nnc_syntax::check::suggest;
use nnc_syntax::{Diagnostic, Span};
use std::collections::HashMap;

mod index;
mod loops;
mod modes;

/// Lowers every model of a file. The file must have passed
/// [`nnc_syntax::check::check`]; anything that slips through is still reported,
/// never a panic.
pub fn lower_file(file: &ast::File) -> Result<Vec<Model>, Vec<Diagnostic>> {
    lower_file_in(file, Mode::Switched)
}

/// Lowers every model of a file in `mode` (which only matters to models with
/// `dropout` or `state`).
pub fn lower_file_in(file: &ast::File, mode: Mode) -> Result<Vec<Model>, Vec<Diagnostic>> {
    let fns = functions(file);
    let mut models = Vec::new();
    let mut diagnostics = Vec::new();
    for m in file.models() {
        match lower_with(&fns, file, m, mode) {
            Ok(model) => models.push(model),
            Err(mut d) => diagnostics.append(&mut d),
        }
    }
    if diagnostics.is_empty() {
        Ok(models)
    } else {
        Err(diagnostics)
    }
}

/// Lowers one model of `file`.
pub fn lower_model(file: &ast::File, def: &ast::ModelDef) -> Result<Model, Vec<Diagnostic>> {
    lower_with(&functions(file), file, def, Mode::Switched)
}

/// The file's functions by name (the first, if one is defined twice: the checker
/// reports that).
fn functions(file: &ast::File) -> HashMap<&str, &FnDef> {
    let mut fns = HashMap::new();
    for f in file.fns() {
        fns.entry(f.name.name.as_str()).or_insert(f);
    }
    fns
}

fn lower_with<'a>(
    fns: &'a HashMap<&'a str, &'a FnDef>,
    file: &ast::File,
    def: &ast::ModelDef,
    mode: Mode,
) -> Result<Model, Vec<Diagnostic>> {
    let dtype = def
        .stmts
        .iter()
        .find_map(|s| match s {
            Stmt::Dtype(d) if d.name == "f64" => Some(DType::F64),
            Stmt::Dtype(_) => Some(DType::F32),
            _ => None,
        })
        .unwrap_or(DType::F32);
    let mut lowerer = Lowerer {
        fns,
        model: Model::new(def.name.name.clone(), dtype),
        diagnostics: Vec::new(),
        frames: Vec::new(),
        dim_spans: Vec::new(),
        consed: HashMap::new(),
        calls: HashMap::new(),
        outer_calls: 0,
        nesting: 0,
        loop_steps: 0,
        in_step: None,
        file_consts: Env::default(),
        mode,
        training: None,
        masks: 0,
    };
    // The file's consts come first: they start the model's scope, and the user's
    // functions'.
    let mut consts = Env::default();
    lowerer.consts(file.consts(), &mut consts);
    let mut env = consts.clone();
    lowerer.file_consts = consts;
    let mut loss = None;
    for stmt in &def.stmts {
        if let Some(l) = lowerer.stmt(stmt, &mut env) {
            loss = Some(l);
        }
    }
    lowerer.finish(def, loss)
}

/// A value during lowering: a tensor node, or something known at compile time.
#[derive(Clone, Debug)]
enum Val {
    Tensor(NodeId),
    Number(f64),
    Bool(bool),
    /// A runtime dim used as a value (its size becomes a `DimSize` node when needed).
    RuntimeDim(DimId),
    /// `(2, 3)`, `(N, 6)`: the axes of an `axis` keyword, or a shape for
    /// `reshape`; each item a compile-time value (a number or a runtime dim).
    Tuple(Vec<Val>),
    /// The result of an expression that failed; already reported, so uses are silent.
    Poisoned,
}

/// Marks an error that has been reported.
#[derive(Debug)]
struct Reported;

type Lowered<T> = Result<T, Reported>;

impl Val {
    /// Appends the value's identity, for memoising calls: numbers by their bits, a
    /// tuple as its length and then its items.
    fn key(&self, out: &mut Vec<(u8, u64)>) {
        match self {
            Val::Tensor(n) => out.push((0, u64::from(n.0))),
            Val::Number(x) => out.push((1, x.to_bits())),
            Val::Bool(b) => out.push((2, u64::from(*b))),
            Val::RuntimeDim(d) => out.push((3, u64::from(d.0))),
            Val::Poisoned => out.push((4, 0)),
            Val::Tuple(items) => {
                out.push((5, items.len() as u64));
                for item in items {
                    item.key(out);
                }
            }
        }
    }
}

/// The names of one scope (a model, or one inlined call), each bound once: the checker
/// rejects a second binding of a name in a scope.
#[derive(Clone, Default)]
struct Env {
    names: HashMap<String, Val>,
    /// Dims by name, for shapes.
    dims: HashMap<String, Dim>,
}

impl Env {
    fn get(&self, name: &str) -> Option<&Val> {
        self.names.get(name)
    }

    fn bind(&mut self, name: &str, v: Val) {
        self.names.insert(name.to_string(), v);
    }
}

/// What an inlined call's result depends on: the function (by address), the values
/// bound to its parameters, the depth of the call (the depth limit applies below it)
/// and the span nodes inside the prelude take.
#[derive(Clone, PartialEq, Eq, Hash)]
struct CallKey {
    function: usize,
    args: Vec<(u8, u64)>,
    depth: usize,
    prelude_span: Option<Span>,
    /// How many dropout masks the model had when the call was lowered: a function
    /// that drops draws a new mask at each call, so its calls are not the same
    /// value (a call of one that does not is found again as long as no dropout
    /// happened in between).
    masks: usize,
}

/// An inlined call being lowered.
struct Frame {
    name: String,
    call_span: Span,
    /// Prelude bodies are not the user's source: their nodes and errors take the span
    /// of the user's call.
    prelude: bool,
}

struct Lowerer<'a> {
    fns: &'a HashMap<&'a str, &'a FnDef>,
    model: Model,
    diagnostics: Vec<Diagnostic>,
    frames: Vec<Frame>,
    dim_spans: Vec<Span>,
    /// Hash-consing: the node of every op, operands and type lowered so far.
    consed: HashMap<NodeKey, NodeId>,
    /// Memoised calls: the result of each (`None` if it failed, already reported).
    calls: HashMap<CallKey, Option<Val>>,
    /// How many outermost calls have been inlined: numbers [`Call::id`].
    outer_calls: u32,
    /// How many expressions are being lowered, one inside the other, counting
    /// through inlined calls: the depth of the recursion, bounded by
    /// [`MAX_NESTED_EXPRS`].
    nesting: usize,
    /// Steps the model's loops have run so far (see `loops::MAX_LOOP_STEPS`).
    loop_steps: usize,
    /// The loop step being lowered: new nodes are tagged with it.
    in_step: Option<crate::model::LoopStep>,
    /// The file-level consts' values: in the scope of the model and of the user's
    /// functions (not the prelude's, which must not depend on the user's names).
    file_consts: Env,
    /// Which graph `dropout` and `batch_norm` lower to.
    mode: Mode,
    /// The [`InputKind::Training`] leaf, once a `batch_norm` lowered
    /// [`Mode::Switched`] needs it.
    training: Option<NodeId>,
    /// The dropout masks made so far (see `modes::MAX_MASKS`).
    masks: usize,
}

/// The message of [`Lowerer::too_deep`].
const TOO_DEEP: &str = "expressions nested too deeply through function calls";

/// The deepest chain of inlined calls accepted.
const MAX_CALL_DEPTH: usize = 64;

/// The deepest nesting of expressions accepted, counting through the bodies of the
/// functions called: four times what one expression may have
/// ([`ast::MAX_EXPR_DEPTH`]). Lowering recurses once per level, so this bounds its
/// stack; without it, 64 nested calls of functions whose bodies are 256 deep
/// recursed 16 000 times and overflowed an 8 MiB stack.
const MAX_NESTED_EXPRS: usize = 4 * ast::MAX_EXPR_DEPTH as usize;

impl<'a> Lowerer<'a> {
    // ---- statements -------------------------------------------------------------

    /// Lowers one statement; returns the loss node for `loss`.
    fn stmt(&mut self, stmt: &Stmt, env: &mut Env) -> Option<NodeId> {
        match stmt {
            Stmt::Dtype(_) => {}
            Stmt::Dim(dims) => {
                for d in dims {
                    let dim = match d.size {
                        Some(n) => Dim::Fixed(n.value as usize),
                        None => {
                            let id = DimId(self.model.dims.len() as u32);
                            self.model.dims.push(DimInfo {
                                name: d.name.name.clone(),
                                size: None,
                            });
                            self.dim_spans.push(d.name.span);
                            Dim::Var(id)
                        }
                    };
                    if let (Dim::Fixed(n), Some(_)) = (dim, d.size) {
                        self.model.dims.push(DimInfo {
                            name: d.name.name.clone(),
                            size: Some(n),
                        });
                        self.dim_spans.push(d.name.span);
                        env.bind(&d.name.name, Val::Number(n as f64));
                    } else if let Dim::Var(id) = dim {
                        env.bind(&d.name.name, Val::RuntimeDim(id));
                    }
                    env.dims.insert(d.name.name.clone(), dim);
                }
            }
            Stmt::Const(consts) => self.consts(consts, env),
            Stmt::Input(input) => {
                let shape = self.shape(&input.ty.shape, env);
                let sized =
                    self.declared_size(&input.name.name, "input", &shape, input.ty.shape.span);
                let elem = match input.ty.kind {
                    ElemKind::Float => Elem::Float,
                    ElemKind::Index => Elem::Index,
                };
                let id = InputId(self.model.inputs.len() as u32);
                let ty = Type { elem, shape };
                self.model.inputs.push(InputInfo {
                    name: input.name.name.clone(),
                    ty: ty.clone(),
                    grad: input.grad.is_some() && elem == Elem::Float,
                    span: input.name.span,
                    kind: InputKind::Data,
                });
                let v = self.leaf(Op::Input(id), ty, sized, &input.name);
                env.bind(&input.name.name, v);
            }
            Stmt::Param(param) => {
                let shape = self.shape(&param.shape, env);
                let sized =
                    self.declared_size(&param.name.name, "parameter", &shape, param.shape.span);
                if let Some(Dim::Var(d)) = shape.iter().find(|d| matches!(d, Dim::Var(_))) {
                    let name = self.model.dim_name(*d).to_string();
                    self.error(
                        Diagnostic::error(
                            format!("parameter `{}` has a runtime dim `{name}`", param.name.name),
                            param.shape.span,
                        )
                        .with_label("parameter shapes must be fixed at compile time")
                        .with_note(format!("give the dim a size: `dim {name} = ...;`")),
                    );
                }
                let init = self.init(param.init.as_ref(), &shape, env);
                let id = ParamId(self.model.params.len() as u32);
                self.model.params.push(ParamInfo {
                    name: param.name.name.clone(),
                    shape: shape.clone(),
                    init,
                    span: param.name.span,
                });
                let v = self.leaf(Op::Param(id), Type::float(shape), sized, &param.name);
                env.bind(&param.name.name, v);
            }
            Stmt::State(state) => self.state(state, env),
            Stmt::Let(l) => {
                let _ = self.bind_let(l, env, None);
            }
            Stmt::Output(out) => {
                let v = match &out.value {
                    Some(e) => self.expr(e, env).unwrap_or(Val::Poisoned),
                    None => env.get(&out.name.name).cloned().unwrap_or(Val::Poisoned),
                };
                let span = out.value.as_ref().map_or(out.name.span, |e| e.span);
                if out.value.is_some() {
                    self.name_value(&v, &out.name.name);
                    env.bind(&out.name.name, v.clone());
                }
                if let Ok(node) = self.tensor(v, span) {
                    self.model.outputs.push((out.name.name.clone(), node));
                }
            }
            Stmt::Loss(l) => {
                let v = self.expr(&l.value, env).unwrap_or(Val::Poisoned);
                let node = self.tensor(v, l.value.span).ok()?;
                let ty = self.model.ty(node).clone();
                if ty.elem != Elem::Float || !ty.shape.is_empty() {
                    self.error(
                        Diagnostic::error(
                            format!(
                                "the loss must be a scalar, but this has shape {}",
                                self.model.type_str(&ty)
                            ),
                            l.value.span,
                        )
                        .with_label("not a scalar")
                        .with_note("reduce it, e.g. `sum(...)` or `mean(...)`"),
                    );
                    return None;
                }
                return Some(node);
            }
        }
        None
    }

    /// Gives a node its source name, unless it already has one.
    fn name_value(&mut self, v: &Val, name: &str) {
        if let Val::Tensor(node) = v {
            let n = &mut self.model.nodes[node.index()];
            if n.name.is_none() && !matches!(n.op, Op::Input(_) | Op::Param(_)) {
                n.name = Some(name.to_string());
            }
        }
    }

    /// The node reading a declared input or parameter, named after it; poisoned when
    /// its declaration was too large (`sized` false), so that nothing computes with it.
    fn leaf(&mut self, op: Op, ty: Type, sized: bool, name: &ast::Ident) -> Val {
        if !sized {
            return Val::Poisoned;
        }
        let node = self.model.push_typed(op, vec![], ty, name.span);
        self.model.nodes[node.index()].name = Some(name.name.clone());
        Val::Tensor(node)
    }

    /// Whether a declared input or parameter has at most [`MAX_ELEMENTS`] elements
    /// (its fixed dims, for an input with runtime dims); if not, reported at its shape.
    fn declared_size(&mut self, name: &str, what: &str, shape: &Shape, span: Span) -> bool {
        let sized = checked_elements(shape).is_some();
        if !sized {
            self.error(
                Diagnostic::error(
                    format!(
                        "{what} `{name}` has too many elements: {}",
                        element_count_str(shape)
                    ),
                    span,
                )
                .with_label(format!("more than 2^{} elements", MAX_ELEMENTS.ilog2()))
                .with_note(size_limit_note()),
            );
        }
        sized
    }

    fn shape(&mut self, shape: &ast::Shape, env: &Env) -> Shape {
        shape
            .dims
            .iter()
            .map(|d| match d {
                ast::DimRef::Literal(n) => Dim::Fixed(n.value as usize),
                ast::DimRef::Named(ident) => match env.dims.get(&ident.name) {
                    Some(d) => *d,
                    // A const: the checker allows only dims and consts here.
                    None => self.dim_value(
                        &Expr::new(ExprKind::Name(ident.name.clone()), ident.span),
                        env,
                    ),
                },
                ast::DimRef::Expr(e) => self.dim_value(e, env),
            })
            .collect()
    }

    /// A compile-time expression in a shape, as a dim: a positive integer (at most
    /// 2^40), or a runtime dim by itself. After an error, 1 (the error stops the
    /// compilation).
    fn dim_value(&mut self, e: &Expr, env: &Env) -> Dim {
        let problem = match self.expr(e, env) {
            Ok(Val::Number(v))
                if v >= 1.0 && v.fract() == 0.0 && v <= nnc_syntax::check::MAX_DIM as f64 =>
            {
                return Dim::Fixed(v as usize);
            }
            Ok(Val::RuntimeDim(d)) => return Dim::Var(d),
            Ok(Val::Number(v)) if v > nnc_syntax::check::MAX_DIM as f64 => {
                format!("a dim size is at most 2^40, not {v}")
            }
            Ok(Val::Number(v)) => format!("a dim size must be a positive integer, not {v}"),
            Ok(Val::Poisoned) | Err(Reported) => return Dim::Fixed(1),
            Ok(_) => "a dim size must be known when the model compiles".to_string(),
        };
        self.error(
            Diagnostic::error(problem, self.span(e.span))
                .with_label("in this shape")
                .with_note("a shape's sizes are dims, integers, or expressions of `const`s"),
        );
        Dim::Fixed(1)
    }

    /// Binds each const (a model's, or the file's) to its compile-time number.
    fn consts<'c>(&mut self, consts: impl IntoIterator<Item = &'c ast::ConstDecl>, env: &mut Env) {
        for c in consts {
            let v = match self.expr(&c.value, env) {
                Ok(Val::Number(n)) => Val::Number(n),
                Ok(Val::Poisoned) | Err(Reported) => Val::Poisoned,
                Ok(_) => {
                    self.error(
                        Diagnostic::error(
                            format!("`const {}` is not a compile-time number", c.name.name),
                            c.value.span,
                        )
                        .with_label("this depends on inputs or parameters")
                        .with_note("use `let` for values computed from tensors"),
                    );
                    Val::Poisoned
                }
            };
            env.bind(&c.name.name, v);
        }
    }

    fn init(&mut self, init: Option<&ast::Init>, shape: &Shape, env: &Env) -> Init {
        match init {
            // No initialiser: zeros for scalars and vectors (biases), Xavier otherwise.
            None if shape.len() <= 1 => Init::Zeros,
            None => Init::Xavier,
            Some(ast::Init::Constant(n)) => Init::Constant(n.value),
            Some(ast::Init::Named(ident)) => match ident.name.as_str() {
                "ones" => Init::Ones,
                "xavier" => Init::Xavier,
                "he" => Init::He,
                _ => Init::Zeros,
            },
            Some(ast::Init::Call { name, args, .. }) => {
                let mut number = |i: usize, absent: f64| match args.get(i) {
                    None => absent,
                    Some(e) => self.init_arg(e, env).unwrap_or(absent),
                };
                let (a, b) = (number(0, 0.0), number(1, 1.0));
                if name.name == "uniform" {
                    Init::Uniform { lo: a, hi: b }
                } else {
                    Init::Normal { mean: a, std: b }
                }
            }
        }
    }

    /// An initialiser's argument: a finite compile-time number (`1 / sqrt(D)`), or
    /// an error at it.
    fn init_arg(&mut self, e: &Expr, env: &Env) -> Option<f64> {
        let (problem, label) = match self.expr(e, env) {
            Ok(Val::Number(x)) if x.is_finite() => return Some(x),
            Ok(Val::Number(x)) => (
                format!("an initialiser's argument must be finite, got {x}"),
                "not a finite number",
            ),
            Ok(Val::Poisoned) | Err(Reported) => return None,
            Ok(_) => (
                "an initialiser's arguments are compile-time numbers".to_string(),
                "not known at compile time",
            ),
        };
        self.error(
            Diagnostic::error(problem, self.span(e.span))
                .with_label(label)
                .with_note(
                    "numbers, consts, fixed dims and arithmetic on them, such as `1 / sqrt(D)`",
                ),
        );
        None
    }

    /// Final checks: a loss exists, runtime dims can be bound.
    fn finish(
        mut self,
        def: &ast::ModelDef,
        loss: Option<NodeId>,
    ) -> Result<Model, Vec<Diagnostic>> {
        match loss {
            Some(l) => self.model.loss = l,
            None if self.diagnostics.is_empty() => self.error(
                Diagnostic::error(
                    format!("model `{}` has no `loss`", def.name.name),
                    def.name.span,
                )
                .with_label("every model needs exactly one scalar `loss`"),
            ),
            None => {}
        }
        self.check_dims_bound();
        if self.diagnostics.is_empty() {
            self.model.grads = Vec::new();
            Ok(self.model)
        } else {
            self.diagnostics.sort_by_key(|d| d.span.start);
            Err(self.diagnostics)
        }
    }

    /// Every runtime dim used anywhere must be the size of some input axis, or it
    /// could not be bound when the model runs.
    fn check_dims_bound(&mut self) {
        let bound: Vec<DimId> = self
            .model
            .inputs
            .iter()
            .flat_map(|i| i.ty.shape.iter())
            .filter_map(|d| match d {
                Dim::Var(v) => Some(*v),
                Dim::Fixed(_) => None,
            })
            .collect();
        let mut used: Vec<DimId> = Vec::new();
        for n in &self.model.nodes {
            for d in &n.ty.shape {
                if let Dim::Var(v) = d {
                    used.push(*v);
                }
            }
            if let Op::DimSize(v)
            | Op::OneHot {
                classes: Dim::Var(v),
            } = n.op
            {
                used.push(v);
            }
        }
        used.sort();
        used.dedup();
        for d in used.into_iter().filter(|d| !bound.contains(d)) {
            let name = self.model.dim_name(d).to_string();
            self.error(
                Diagnostic::error(
                    format!("runtime dim `{name}` is not the size of any input"),
                    self.dim_spans[d.0 as usize],
                )
                .with_label("cannot be bound when the model runs")
                .with_note(format!(
                    "give it a size (`dim {name} = ...;`) or use it in an input's shape"
                )),
            );
        }
    }

    // ---- expressions ------------------------------------------------------------

    fn error(&mut self, d: Diagnostic) {
        self.diagnostics.push(d);
    }

    /// The span a node or error gets: inside the prelude, the user's call.
    fn span(&self, span: Span) -> Span {
        self.frames
            .iter()
            .find(|f| f.prelude)
            .map_or(span, |f| f.call_span)
    }

    /// Reports a shape error at `span`, noting the user call it happened in.
    fn shape_error(&mut self, e: ShapeError, span: Span) -> Reported {
        let mut d = Diagnostic::error(e.message, self.span(span));
        d = d.with_label(match self.frames.iter().find(|f| f.prelude) {
            Some(f) => format!("in this call to `{}`", f.name),
            None => "here".to_string(),
        });
        if let Some(note) = e.note {
            d = d.with_note(note);
        }
        if let Some(f) = self.frames.iter().rev().find(|f| !f.prelude) {
            d = d.with_related(f.call_span, format!("in this call to `{}`", f.name));
        }
        // The user cannot see the prelude's body: show the definition the error is in.
        if let Some(f) = self.frames.iter().find(|f| f.prelude)
            && let Some(def) = nnc_syntax::prelude::function(&f.name)
            && let Some(text) = nnc_syntax::prelude::SOURCE.get(def.span.range())
        {
            let text = text.split_whitespace().collect::<Vec<_>>().join(" ");
            d = d.with_note(format!(
                "`{}` is defined in the prelude as `{text}`",
                f.name
            ));
        }
        self.error(d);
        Reported
    }

    /// Infers the type of `op` on `args` and interns the node.
    fn push(&mut self, op: Op, args: Vec<NodeId>, span: Span) -> Lowered<NodeId> {
        match crate::shape::infer(&self.model, &op, &args) {
            Ok(ty) => self.intern(op, args, ty, span),
            Err(e) => Err(self.shape_error(e, span)),
        }
    }

    /// The node of `op` on `args` with type `ty`: the one already lowered if there is
    /// one (hash-consing), else a new one at `span` (inside the prelude, the user's
    /// call). A value with more than [`MAX_ELEMENTS`] elements is an error here, at
    /// the operation that would make it.
    fn intern(&mut self, op: Op, args: Vec<NodeId>, ty: Type, span: Span) -> Lowered<NodeId> {
        let key = NodeKey::new(&op, &args, &ty);
        if let Some(&id) = self.consed.get(&key) {
            return Ok(id);
        }
        if checked_elements(&ty.shape).is_none() {
            let message = format!(
                "'{}' would make a value of shape {} with too many elements: {}",
                crate::shape::op_label(&op),
                self.model.shape_str(&ty.shape),
                element_count_str(&ty.shape)
            );
            let e = crate::shape::ShapeError {
                message,
                note: Some(size_limit_note()),
            };
            return Err(self.shape_error(e, span));
        }
        let id = self.model.push_typed(op, args, ty, self.span(span));
        self.model.nodes[id.index()].step = self.in_step;
        if let Some(outer) = self.frames.first() {
            self.model.nodes[id.index()].call = Some(Call {
                function: outer.name.clone(),
                span: outer.call_span,
                id: self.outer_calls,
            });
        }
        self.consed.insert(key, id);
        Ok(id)
    }

    /// A value as a tensor node: numbers become constants, runtime dims their size.
    fn tensor(&mut self, v: Val, span: Span) -> Lowered<NodeId> {
        match v {
            Val::Tensor(n) => Ok(n),
            Val::Number(x) => self.intern(Op::Const(x), vec![], Type::float(vec![]), span),
            Val::RuntimeDim(d) => self.intern(Op::DimSize(d), vec![], Type::float(vec![]), span),
            Val::Bool(_) => {
                self.error(
                    Diagnostic::error(
                        "`true` and `false` are only keyword-argument values",
                        self.span(span),
                    )
                    .with_label("not a tensor"),
                );
                Err(Reported)
            }
            Val::Tuple(_) => {
                self.error(
                    Diagnostic::error(
                        "a tuple is only an `axis` value or a `reshape` shape",
                        self.span(span),
                    )
                    .with_label("not a tensor"),
                );
                Err(Reported)
            }
            Val::Poisoned => Err(Reported),
        }
    }

    /// Lowers an expression, within [`MAX_NESTED_EXPRS`].
    fn expr(&mut self, e: &Expr, env: &Env) -> Lowered<Val> {
        if self.nesting >= MAX_NESTED_EXPRS {
            return Err(self.too_deep(e.span));
        }
        self.nesting += 1;
        let v = self.expr_kind(e, env);
        self.nesting -= 1;
        v
    }

    /// Expressions nested too deeply through calls: reported once, at the user's
    /// outermost call, naming the chain of calls.
    fn too_deep(&mut self, span: Span) -> Reported {
        if self
            .diagnostics
            .iter()
            .any(|d| d.message.starts_with(TOO_DEEP))
        {
            return Reported;
        }
        let chain: Vec<&str> = self.frames.iter().map(|f| f.name.as_str()).collect();
        let at = self.frames.first().map_or(span, |f| f.call_span);
        self.error(
            Diagnostic::error(TOO_DEEP, at)
                .with_label(format!(
                    "more than {MAX_NESTED_EXPRS} nested expressions through the calls of {}",
                    chain.join(" -> ")
                ))
                .with_note("write the intermediate values as `let`s"),
        );
        Reported
    }

    /// One level of an expression. Only the recursion happens here, the rest in
    /// helpers, so that each level's stack frame stays small.
    fn expr_kind(&mut self, e: &Expr, env: &Env) -> Lowered<Val> {
        match &e.kind {
            ExprKind::Neg(inner) => {
                let v = self.expr(inner, env)?;
                self.neg(v, inner.span, e.span)
            }
            ExprKind::Transpose(inner) => {
                let v = self.expr(inner, env)?;
                self.transpose(v, inner.span, e.span)
            }
            ExprKind::Binary {
                op,
                op_span,
                lhs,
                rhs,
            } => {
                let a = self.expr(lhs, env)?;
                let b = self.expr(rhs, env)?;
                self.binary(*op, *op_span, a, b, (lhs.span, rhs.span))
            }
            ExprKind::Call { func, args } => self.call(func, args, e.span, env),
            ExprKind::Tuple(items) => self.tuple(items, e.span, env),
            ExprKind::Index { base, items } => self.index(base, items, e.span, env),
            ExprKind::Loop(lp) => self.loop_value(lp, env),
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Error | ExprKind::Name(_) => {
                self.atom(e, env)
            }
        }
    }

    /// `(2, 3)`, `(N, 6)`: at most 4 compile-time values (numbers or runtime dims),
    /// checked where the tuple is used. Kept out of `expr_kind`, whose frame is on
    /// the stack once per nested expression.
    #[inline(never)]
    fn tuple(&mut self, items: &[Expr], span: Span, env: &Env) -> Lowered<Val> {
        if items.len() > 4 {
            self.error(
                Diagnostic::error("a value has at most 4 axes", self.span(span))
                    .with_label(format!("{} axes", items.len())),
            );
            return Err(Reported);
        }
        let mut values = Vec::with_capacity(items.len());
        for item in items {
            match self.expr(item, env)? {
                v @ (Val::Number(_) | Val::RuntimeDim(_)) => values.push(v),
                _ => {
                    let at = self.span(item.span);
                    self.error(
                        Diagnostic::error("a tuple holds numbers and dims", at)
                            .with_label("not known when the model compiles"),
                    );
                    return Err(Reported);
                }
            }
        }
        Ok(Val::Tuple(values))
    }

    /// A number, a boolean or a name.
    fn atom(&mut self, e: &Expr, env: &Env) -> Lowered<Val> {
        match &e.kind {
            ExprKind::Number(n) => Ok(Val::Number(n.value)),
            ExprKind::Bool(b) => Ok(Val::Bool(*b)),
            ExprKind::Name(name) => match env.get(name) {
                Some(Val::Poisoned) => Err(Reported),
                Some(v) => Ok(v.clone()),
                None => {
                    let mut candidates: Vec<&str> = env.names.keys().map(String::as_str).collect();
                    candidates.sort_unstable();
                    let mut d =
                        Diagnostic::error(format!("unknown name `{name}`"), self.span(e.span))
                            .with_label("not found in this scope");
                    if let Some(s) = suggest(name, candidates) {
                        d = d.with_note(format!("did you mean `{s}`?"));
                    }
                    self.error(d);
                    Err(Reported)
                }
            },
            _ => Err(Reported),
        }
    }

    fn neg(&mut self, v: Val, inner: Span, span: Span) -> Lowered<Val> {
        match v {
            Val::Number(x) => Ok(Val::Number(-x)),
            v => {
                let x = self.tensor(v, inner)?;
                self.push(Op::Unary(UnaryOp::Neg), vec![x], span)
                    .map(Val::Tensor)
            }
        }
    }

    fn transpose(&mut self, v: Val, inner: Span, span: Span) -> Lowered<Val> {
        let x = self.tensor(v, inner)?;
        self.push(Op::Transpose, vec![x], span).map(Val::Tensor)
    }

    fn binary(
        &mut self,
        op: BinOp,
        op_span: Span,
        a: Val,
        b: Val,
        spans: (Span, Span),
    ) -> Lowered<Val> {
        let ir_op = match op {
            BinOp::Add => Op::Binary(BinaryOp::Add),
            BinOp::Sub => Op::Binary(BinaryOp::Sub),
            BinOp::Mul => Op::Binary(BinaryOp::Mul),
            BinOp::Div => Op::Binary(BinaryOp::Div),
            BinOp::Gt => Op::Compare(CmpOp::Gt),
            BinOp::Ge => Op::Compare(CmpOp::Ge),
            BinOp::Lt => Op::Compare(CmpOp::Lt),
            BinOp::Le => Op::Compare(CmpOp::Le),
            BinOp::MatMul => Op::MatMul,
            BinOp::Pow => {
                let Val::Number(exponent) = b else {
                    if matches!(b, Val::Poisoned) {
                        return Err(Reported);
                    }
                    self.error(
                        Diagnostic::error(
                            "the exponent of `^` must be a compile-time constant",
                            self.span(spans.1),
                        )
                        .with_label("this depends on inputs or parameters")
                        .with_note("write `exp(b * log(a))` for a tensor exponent"),
                    );
                    return Err(Reported);
                };
                return match a {
                    Val::Number(x) => Ok(Val::Number(x.powf(exponent))),
                    _ if exponent == 1.0 => Ok(a),
                    a => {
                        let x = self.tensor(a, spans.0)?;
                        self.push(Op::Powf(exponent), vec![x], op_span)
                            .map(Val::Tensor)
                    }
                };
            }
        };
        // Fold compile-time arithmetic.
        if let (Val::Number(x), Val::Number(y)) = (&a, &b) {
            match &ir_op {
                Op::Binary(bop) => return Ok(Val::Number(bop.eval(*x, *y))),
                Op::Compare(c) => return Ok(Val::Number(if c.holds(*x, *y) { 1.0 } else { 0.0 })),
                _ => {}
            }
        }
        let x = self.tensor(a, spans.0)?;
        let y = self.tensor(b, spans.1)?;
        self.push(ir_op, vec![x, y], op_span).map(Val::Tensor)
    }

    // ---- calls --------------------------------------------------------------------

    fn call(&mut self, func: &ast::Ident, args: &[Arg], span: Span, env: &Env) -> Lowered<Val> {
        let Some(callee) = Callee::resolve(&func.name, self.fns.get(func.name.as_str()).copied())
        else {
            self.error(Diagnostic::error(
                format!("unknown function `{}`", func.name),
                self.span(func.span),
            ));
            return Err(Reported);
        };
        // Arguments are evaluated in the caller's scope, left to right.
        let mut positional = Vec::new();
        let mut keywords: Vec<(&ast::Ident, Val, Span)> = Vec::new();
        let mut failed = false;
        for a in args {
            match (self.expr(&a.value, env), &a.keyword) {
                (Ok(v), None) => positional.push((v, a.value.span)),
                (Ok(v), Some(k)) => keywords.push((k, v, a.value.span)),
                (Err(Reported), _) => failed = true,
            }
        }
        if failed {
            return Err(Reported);
        }
        match callee {
            Callee::Builtin(_) => self.builtin(&func.name, positional, keywords, span),
            Callee::Prelude(f) => self.inline(f, positional, keywords, span, true),
            Callee::User(f) => self.inline(f, positional, keywords, span, false),
        }
    }

    fn inline(
        &mut self,
        f: &FnDef,
        positional: Vec<(Val, Span)>,
        keywords: Vec<(&ast::Ident, Val, Span)>,
        span: Span,
        prelude: bool,
    ) -> Lowered<Val> {
        if self.frames.len() >= MAX_CALL_DEPTH
            || self
                .frames
                .iter()
                .any(|fr| fr.name == f.name.name && !prelude)
        {
            self.error(
                Diagnostic::error(
                    format!("calls nested too deeply at `{}`", f.name.name),
                    self.span(span),
                )
                .with_label(format!(
                    "more than {MAX_CALL_DEPTH} nested calls, or recursion"
                )),
            );
            return Err(Reported);
        }
        // The function's scope starts with the file's consts (the user's functions
        // only); its defaults are evaluated there, before any parameter is bound.
        let consts = if prelude {
            Env::default()
        } else {
            self.file_consts.clone()
        };
        let mut fn_env = consts.clone();
        let mut bound = Vec::with_capacity(f.params.len());
        let mut positional = positional.into_iter();
        for p in &f.params {
            let mut given = positional.next().map(|(v, _)| v).or_else(|| {
                keywords
                    .iter()
                    .find(|(k, _, _)| k.name == p.name.name)
                    .map(|(_, v, _)| v.clone())
            });
            if let (None, Some(d)) = (&given, &p.default) {
                given = Some(self.expr(d, &consts)?);
            }
            match given {
                Some(v) => {
                    v.key(&mut bound);
                    fn_env.bind(&p.name.name, v);
                }
                None => {
                    self.error(
                        Diagnostic::error(
                            format!("`{}` is missing argument `{}`", f.name.name, p.name.name),
                            self.span(span),
                        )
                        .with_label("argument not given"),
                    );
                    return Err(Reported);
                }
            }
        }
        if self.frames.is_empty() {
            self.outer_calls += 1;
        }
        self.frames.push(Frame {
            name: f.name.name.clone(),
            call_span: span,
            prelude,
        });
        let key = CallKey {
            function: std::ptr::from_ref(f) as usize,
            args: bound,
            depth: self.frames.len(),
            prelude_span: self.frames.iter().find(|f| f.prelude).map(|f| f.call_span),
            masks: self.masks,
        };
        let result = match self.calls.get(&key) {
            Some(done) => done.clone().ok_or(Reported),
            None => {
                let result = self.block(&f.body, &mut fn_env, None);
                self.calls.insert(key, result.as_ref().ok().cloned());
                result
            }
        };
        self.frames.pop();
        result
    }

    /// A block's `let`s, then its value. In a loop's step `step` (counted from 1)
    /// the `let`s' values are named for it (`z_3`).
    fn block(&mut self, block: &ast::Block, env: &mut Env, step: Option<usize>) -> Lowered<Val> {
        for l in &block.lets {
            self.bind_let(l, env, step)?;
        }
        self.expr(&block.value, env)
    }

    /// Whether values lowered now are named after the source: not inside the prelude.
    fn names_values(&self) -> bool {
        !self.frames.last().is_some_and(|f| f.prelude)
    }

    fn builtin(
        &mut self,
        name: &str,
        positional: Vec<(Val, Span)>,
        keywords: Vec<(&ast::Ident, Val, Span)>,
        span: Span,
    ) -> Lowered<Val> {
        if let Some(x) = folded(name, &positional, &keywords) {
            return Ok(Val::Number(x));
        }
        let mut call = BuiltinCall {
            lowerer: self,
            name,
            positional: positional.into_iter(),
            keywords,
            span,
        };
        let op_and_args: (Op, Vec<NodeId>) = match name {
            "where" => (Op::Select, vec![call.next()?, call.next()?, call.next()?]),
            "max" | "min" => {
                let x = call.next()?;
                match call.positional.len() {
                    // Two operands: elementwise.
                    1.. => {
                        let y = call.next()?;
                        call.no_keywords("with two arguments it is elementwise")?;
                        let op = if name == "max" {
                            BinaryOp::Max
                        } else {
                            BinaryOp::Min
                        };
                        (Op::Binary(op), vec![x, y])
                    }
                    0 => {
                        let rank = call.lowerer.model.ty(x).rank();
                        let axes = call.reduced_axes(rank)?;
                        let keepdims = call.flag("keepdims")?;
                        let op = if name == "max" {
                            ReduceOp::Max
                        } else {
                            ReduceOp::Min
                        };
                        return call.reduce(op, x, axes, keepdims).map(Val::Tensor);
                    }
                }
            }
            "sum" | "logsumexp" => {
                let x = call.next()?;
                let rank = call.lowerer.model.ty(x).rank();
                let axes = call.reduced_axes(rank)?;
                let keepdims = call.flag("keepdims")?;
                let op = if name == "sum" {
                    ReduceOp::Sum
                } else {
                    ReduceOp::LogSumExp
                };
                return call.reduce(op, x, axes, keepdims).map(Val::Tensor);
            }
            "mean" => {
                let x = call.next()?;
                let rank = call.lowerer.model.ty(x).rank();
                let axes = call.reduced_axes(rank)?;
                let keepdims = call.flag("keepdims")?;
                return call.mean(x, axes, keepdims).map(Val::Tensor);
            }
            "var" | "std" => {
                let x = call.next()?;
                let rank = call.lowerer.model.ty(x).rank();
                let axes = call.reduced_axes(rank)?;
                let keepdims = call.flag("keepdims")?;
                let var = call.variance(x, axes, keepdims)?;
                if name == "var" {
                    return Ok(Val::Tensor(var));
                }
                (Op::Unary(UnaryOp::Sqrt), vec![var])
            }
            "softmax" | "log_softmax" => {
                let x = call.next()?;
                let rank = call.lowerer.model.ty(x).rank();
                let axis = call.axis(rank, Some(-1))?.unwrap_or(0);
                if rank == 0 {
                    return Err(call.fail(format!(
                        "`{name}` needs a tensor of rank 1 or more, got a scalar"
                    )));
                }
                (
                    if name == "softmax" {
                        Op::Softmax { axis }
                    } else {
                        Op::LogSoftmax { axis }
                    },
                    vec![x],
                )
            }
            "argmax" => {
                let x = call.next()?;
                let rank = call.lowerer.model.ty(x).rank();
                if rank == 0 {
                    return Err(call.fail(
                        "`argmax` needs a tensor of rank 1 or more, got a scalar".to_string(),
                    ));
                }
                let axis = call.axis(rank, Some(-1))?.unwrap_or(0);
                let keepdims = call.flag("keepdims")?;
                (Op::ArgMax { axis, keepdims }, vec![x])
            }
            "dropout" => return call.dropout().map(Val::Tensor),
            "batch_norm" => return call.batch_norm().map(Val::Tensor),
            "concat" => return call.concat().map(Val::Tensor),
            "reshape" => return call.reshape().map(Val::Tensor),
            "stack" => return call.stack().map(Val::Tensor),
            "pick" => {
                let x = call.next()?;
                let idx = call.next()?;
                let keepdims = call.flag("keepdims")?;
                (Op::Pick { keepdims }, vec![x, idx])
            }
            "one_hot" => {
                let idx = call.next()?;
                let classes = match call.positional.next() {
                    Some((Val::Number(n), _))
                        if n >= 1.0
                            && n.fract() == 0.0
                            && n <= nnc_syntax::check::MAX_DIM as f64 =>
                    {
                        Dim::Fixed(n as usize)
                    }
                    Some((Val::RuntimeDim(d), _)) => Dim::Var(d),
                    Some((Val::Poisoned, _)) => return Err(Reported),
                    Some((_, s)) => {
                        call.lowerer.error(
                            Diagnostic::error(
                                "`one_hot`'s class count must be a dim or a positive integer (at most 2^40)",
                                call.lowerer.span(s),
                            )
                            .with_label("not a class count"),
                        );
                        return Err(Reported);
                    }
                    None => return Err(call.fail("`one_hot` needs a class count".to_string())),
                };
                (Op::OneHot { classes }, vec![idx])
            }
            other => match unary_builtin(other) {
                Some(op) => (Op::Unary(op), vec![call.next()?]),
                None => return Err(call.fail(format!("`{other}` is not a built-in"))),
            },
        };
        call.unused_keywords()?;
        let (op, args) = op_and_args;
        self.push(op, args, span).map(Val::Tensor)
    }
}

/// An elementwise built-in applied to compile-time numbers, computed now, as
/// arithmetic on numbers is: `const scale = 1 / sqrt(D);` is a number.
fn folded(
    name: &str,
    positional: &[(Val, Span)],
    keywords: &[(&ast::Ident, Val, Span)],
) -> Option<f64> {
    if !keywords.is_empty() {
        return None;
    }
    let mut numbers = Vec::with_capacity(positional.len());
    for (v, _) in positional {
        let Val::Number(x) = v else { return None };
        numbers.push(*x);
    }
    match (name, numbers.as_slice()) {
        ("max", [a, b]) => Some(BinaryOp::Max.eval(*a, *b)),
        ("min", [a, b]) => Some(BinaryOp::Min.eval(*a, *b)),
        (_, [x]) => unary_builtin(name).map(|op| op.eval(*x)),
        _ => None,
    }
}

/// The elementwise built-ins of one argument, by name.
fn unary_builtin(name: &str) -> Option<UnaryOp> {
    Some(match name {
        "exp" => UnaryOp::Exp,
        "log" => UnaryOp::Log,
        "sqrt" => UnaryOp::Sqrt,
        "abs" => UnaryOp::Abs,
        "sigmoid" => UnaryOp::Sigmoid,
        "tanh" => UnaryOp::Tanh,
        "softplus" => UnaryOp::Softplus,
        _ => return None,
    })
}

/// A built-in call's arguments, consumed as the lowering reads them.
struct BuiltinCall<'b, 'a> {
    lowerer: &'b mut Lowerer<'a>,
    name: &'b str,
    positional: std::vec::IntoIter<(Val, Span)>,
    keywords: Vec<(&'b ast::Ident, Val, Span)>,
    span: Span,
}

impl<'b, 'a> BuiltinCall<'b, 'a> {
    fn fail(&mut self, message: String) -> Reported {
        let s = self.lowerer.span(self.span);
        self.lowerer
            .error(Diagnostic::error(message, s).with_label("in this call"));
        Reported
    }

    /// The next positional argument, as a tensor.
    fn next(&mut self) -> Lowered<NodeId> {
        match self.positional.next() {
            Some((v, s)) => self.lowerer.tensor(v, s),
            None => {
                let name = self.name;
                Err(self.fail(format!("`{name}` is missing an argument")))
            }
        }
    }

    /// numpy's `var`: `mean((x - mean(x, keepdims = true)) ^ 2)` over `axes`, as
    /// primitives, so that its derivative comes from their rules.
    fn variance(&mut self, x: NodeId, axes: Option<Vec<usize>>, keepdims: bool) -> Lowered<NodeId> {
        let span = self.span;
        let centre = self.mean(x, axes.clone(), true)?;
        let deviation = self
            .lowerer
            .push(Op::Binary(BinaryOp::Sub), vec![x, centre], span)?;
        let square = self.lowerer.push(Op::Powf(2.0), vec![deviation], span)?;
        self.mean(square, axes, keepdims)
    }

    /// `op` over `axes` (all when `None`): one reduction per axis, the last axis
    /// first, so that the others keep their positions when `keepdims` is false.
    fn reduce(
        &mut self,
        op: ReduceOp,
        x: NodeId,
        axes: Option<Vec<usize>>,
        keepdims: bool,
    ) -> Lowered<NodeId> {
        self.unused_keywords()?;
        let span = self.span;
        let Some(axes) = axes else {
            let whole = Op::Reduce {
                op,
                axis: None,
                keepdims,
            };
            return self.lowerer.push(whole, vec![x], span);
        };
        let mut v = x;
        for a in axes.into_iter().rev() {
            let one = Op::Reduce {
                op,
                axis: Some(a),
                keepdims,
            };
            v = self.lowerer.push(one, vec![v], span)?;
        }
        Ok(v)
    }

    /// A reduction's `axis` keyword: one axis or a tuple of them (`axis = (2, 3)`),
    /// normalised to `0..rank` and sorted; `None` (absent) means every axis.
    fn reduced_axes(&mut self, rank: usize) -> Lowered<Option<Vec<usize>>> {
        let tuple = self
            .keywords
            .iter()
            .position(|(k, v, _)| k.name == "axis" && matches!(v, Val::Tuple(_)));
        let Some(i) = tuple else {
            return Ok(self.axis(rank, None)?.map(|a| vec![a]));
        };
        let (_, Val::Tuple(given), span) = self.keywords.remove(i) else {
            return Err(Reported);
        };
        let name = self.name;
        let mut axes = Vec::with_capacity(given.len());
        for v in given {
            let a = match v {
                Val::Number(a) if a.fract() == 0.0 && a.abs() < 1e15 => a as i64,
                _ => {
                    let at = self.lowerer.span(span);
                    self.lowerer.error(
                        Diagnostic::error("an axis tuple holds integers", at)
                            .with_label(format!("axes of a rank-{rank} tensor")),
                    );
                    return Err(Reported);
                }
            };
            let normalised = if a < 0 { a + rank as i64 } else { a };
            if normalised < 0 || normalised >= rank as i64 {
                return Err(self.fail(format!(
                    "axis {a} is out of range for `{name}` of a rank-{rank} tensor (valid: {} to {})",
                    -(rank as i64),
                    rank as i64 - 1
                )));
            }
            if axes.contains(&(normalised as usize)) {
                return Err(self.fail(format!("axis {a} is given twice to `{name}`")));
            }
            axes.push(normalised as usize);
        }
        axes.sort_unstable();
        Ok(Some(axes))
    }

    fn take(&mut self, key: &str) -> Option<(Val, Span)> {
        let i = self.keywords.iter().position(|(k, _, _)| k.name == key)?;
        let (_, v, s) = self.keywords.remove(i);
        Some((v, s))
    }

    /// The `axis` keyword, normalised to `0..rank`; `default` (possibly negative)
    /// when absent, `None` meaning "all axes".
    fn axis(&mut self, rank: usize, default: Option<i64>) -> Lowered<Option<usize>> {
        let given = match self.take("axis") {
            None => default,
            Some((Val::Number(a), _)) if a.fract() == 0.0 => Some(a as i64),
            Some((Val::Poisoned, _)) => return Err(Reported),
            Some((Val::Tuple(_), s)) => {
                let (s, name) = (self.lowerer.span(s), self.name);
                self.lowerer.error(
                    Diagnostic::error(format!("`{name}` takes one axis"), s)
                        .with_label("a tuple of axes")
                        .with_note(
                            "`sum`, `mean`, `max`, `min` and `logsumexp` reduce over several",
                        ),
                );
                return Err(Reported);
            }
            Some((_, s)) => {
                let s = self.lowerer.span(s);
                self.lowerer.error(
                    Diagnostic::error("`axis` must be an integer", s).with_label("not an integer"),
                );
                return Err(Reported);
            }
        };
        let Some(a) = given else { return Ok(None) };
        let normalised = if a < 0 { a + rank as i64 } else { a };
        if normalised < 0 || normalised >= rank as i64 {
            let name = self.name;
            return Err(self.fail(format!(
                "axis {a} is out of range for `{name}` of a rank-{rank} tensor (valid: {} to {})",
                -(rank as i64),
                rank as i64 - 1
            )));
        }
        Ok(Some(normalised as usize))
    }

    fn flag(&mut self, key: &str) -> Lowered<bool> {
        match self.take(key) {
            None => Ok(false),
            Some((Val::Bool(b), _)) => Ok(b),
            Some((Val::Poisoned, _)) => Err(Reported),
            Some((_, s)) => {
                let s = self.lowerer.span(s);
                self.lowerer.error(
                    Diagnostic::error(format!("`{key}` must be `true` or `false`"), s)
                        .with_label("not a boolean"),
                );
                Err(Reported)
            }
        }
    }

    fn no_keywords(&mut self, why: &str) -> Lowered<()> {
        if let Some((k, _, _)) = self.keywords.first() {
            let (kname, kspan) = (k.name.clone(), k.span);
            let s = self.lowerer.span(kspan);
            let name = self.name;
            self.lowerer.error(
                Diagnostic::error(format!("`{name}` takes no `{kname}` here"), s)
                    .with_label(why.to_string()),
            );
            return Err(Reported);
        }
        Ok(())
    }

    fn unused_keywords(&mut self) -> Lowered<()> {
        self.no_keywords("not used by this built-in")
    }

    /// `mean` is `sum` divided by the number of elements reduced.
    fn mean(&mut self, x: NodeId, axes: Option<Vec<usize>>, keepdims: bool) -> Lowered<NodeId> {
        let span = self.span;
        let shape = self.lowerer.model.shape(x).clone();
        let reduced: Vec<Dim> = match &axes {
            Some(axes) => axes.iter().map(|a| shape[*a]).collect(),
            None => shape,
        };
        let sum = self.reduce(ReduceOp::Sum, x, axes, keepdims)?;
        let fixed = crate::types::fixed_elements(&reduced);
        let mut count = None;
        if fixed != 1 || reduced.iter().all(|d| matches!(d, Dim::Fixed(_))) {
            count = Some(self.lowerer.tensor(Val::Number(fixed as f64), span)?);
        }
        for d in reduced {
            if let Dim::Var(v) = d {
                let size = self.lowerer.tensor(Val::RuntimeDim(v), span)?;
                count = Some(match count {
                    None => size,
                    Some(c) => self
                        .lowerer
                        .push(Op::Binary(BinaryOp::Mul), vec![c, size], span)?,
                });
            }
        }
        let count = count.ok_or(Reported)?;
        self.lowerer
            .push(Op::Binary(BinaryOp::Div), vec![sum, count], span)
    }
}

/// A shape's element count (its fixed dims) for messages, as the product it is:
/// `4294967296 × 4294967297 = 18446744078004518912` (in scientific notation when it
/// does not fit 128 bits).
fn element_count_str(shape: &Shape) -> String {
    let fixed: Vec<usize> = shape
        .iter()
        .filter_map(|d| match d {
            Dim::Fixed(n) => Some(*n),
            Dim::Var(_) => None,
        })
        .collect();
    let product = match fixed
        .iter()
        .try_fold(1u128, |n, d| n.checked_mul(*d as u128))
    {
        Some(n) => n.to_string(),
        None => format!("{:.3e}", fixed.iter().map(|d| *d as f64).product::<f64>()),
    };
    let factors: Vec<String> = fixed.iter().map(usize::to_string).collect();
    format!("{} = {product}", factors.join(" × "))
}

fn size_limit_note() -> String {
    format!(
        "a value has at most 2^{} = {MAX_ELEMENTS} elements (the product of its fixed dims)",
        MAX_ELEMENTS.ilog2()
    )
}

/// Which gradients a model returns: every param, then every `grad` input.
pub fn grad_targets(model: &Model) -> Vec<GradOf> {
    (0..model.params.len())
        .map(|p| GradOf::Param(ParamId(p as u32)))
        .chain(
            model
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| i.grad)
                .map(|(i, _)| GradOf::Input(InputId(i as u32))),
        )
        .collect()
}
