//! The abstract syntax tree of a `.nn` file. Every node carries the byte span of the
//! source it came from, so later phases can point at it.

use crate::Span;

/// A whole source file (or the contents of one `net! { ... }`).
#[derive(Clone, Debug, PartialEq)]
pub struct File {
    pub items: Vec<Item>,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Fn(FnDef),
    Model(ModelDef),
    /// `const lr = 0.1, reg = 1e-3;` outside any model: seen by every model and `fn`.
    Const(Vec<ConstDecl>),
}

/// A name as written, with where it was written.
#[derive(Clone, Debug, PartialEq)]
pub struct Ident {
    pub name: String,
    pub span: Span,
}

/// `fn name(a, b, alpha = 0.1) = expr;` or `fn name(a) { let ...; expr }`.
#[derive(Clone, Debug, PartialEq)]
pub struct FnDef {
    pub name: Ident,
    pub params: Vec<FnParam>,
    pub body: Block,
    pub span: Span,
}

/// A function parameter; one with a default may also be passed by keyword.
#[derive(Clone, Debug, PartialEq)]
pub struct FnParam {
    pub name: Ident,
    /// A compile-time number (`0.01`, `1 / 3`, a file-level const), evaluated where
    /// the function is called without this argument.
    pub default: Option<Expr>,
}

/// Lets, then the value of the block.
#[derive(Clone, Debug, PartialEq)]
pub struct Block {
    pub lets: Vec<Let>,
    pub value: Expr,
}

/// `model name { statements }`.
#[derive(Clone, Debug, PartialEq)]
pub struct ModelDef {
    pub name: Ident,
    pub stmts: Vec<Stmt>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Stmt {
    /// `dtype f64;`
    Dtype(Ident),
    /// `dim N, D = 10;` — one statement may declare several dims.
    Dim(Vec<DimDecl>),
    /// `const reg = 1e-3;`
    Const(Vec<ConstDecl>),
    Input(InputDecl),
    Param(ParamDecl),
    /// `state mu: [D] = zeros;`: a tensor that is not trained and has no gradient,
    /// read in both modes and written by the training step (`batch_norm`'s running
    /// statistics). Declared as a parameter is.
    State(ParamDecl),
    Let(Let),
    Output(OutputDecl),
    Loss(LossStmt),
}

/// A dim declaration: runtime (`N`) or fixed (`D = 1000`).
#[derive(Clone, Debug, PartialEq)]
pub struct DimDecl {
    pub name: Ident,
    pub size: Option<Number>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct ConstDecl {
    pub name: Ident,
    pub value: Expr,
}

/// `input x: [N, D];`, `input labels: index[N];`, `input t: [] grad;`
#[derive(Clone, Debug, PartialEq)]
pub struct InputDecl {
    pub name: Ident,
    pub ty: TensorType,
    /// The span of the `grad` marker, when present.
    pub grad: Option<Span>,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct TensorType {
    pub kind: ElemKind,
    pub shape: Shape,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ElemKind {
    Float,
    Index,
}

/// `[N, 10]`
#[derive(Clone, Debug, PartialEq)]
pub struct Shape {
    pub dims: Vec<DimRef>,
    pub span: Span,
}

/// A dim in a shape: a `dim` name or an integer literal.
#[derive(Clone, Debug, PartialEq)]
pub enum DimRef {
    /// A `dim`, or a `const` holding a positive integer.
    Named(Ident),
    Literal(Number),
    /// A compile-time expression (`2 * H`, `D / 2`): a positive integer.
    Expr(Expr),
}

impl DimRef {
    /// The dim an expression in a shape stands for: a bare name or number as such.
    pub fn of(e: Expr) -> DimRef {
        match e.kind {
            ExprKind::Name(name) => DimRef::Named(Ident { name, span: e.span }),
            ExprKind::Number(n) => DimRef::Literal(n),
            _ => DimRef::Expr(e),
        }
    }
}

/// `param w: [D, H] = he;`
#[derive(Clone, Debug, PartialEq)]
pub struct ParamDecl {
    pub name: Ident,
    pub shape: Shape,
    pub init: Option<Init>,
    pub span: Span,
}

/// A parameter initialiser as written: `he`, `normal(0, 0.01)`, `0.25`.
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    Named(Ident),
    /// `normal(0, 1 / sqrt(D))`: the arguments are compile-time numbers.
    Call {
        name: Ident,
        args: Vec<Expr>,
        span: Span,
    },
    Constant(Number),
}

impl Init {
    pub fn span(&self) -> Span {
        match self {
            Init::Named(ident) => ident.span,
            Init::Call { span, .. } => *span,
            Init::Constant(number) => number.span,
        }
    }
}

/// `let name = value;`
#[derive(Clone, Debug, PartialEq)]
pub struct Let {
    pub name: Ident,
    pub value: Expr,
}

impl Let {
    /// The names the `let` binds: its own, and a loop's steps (`let h, hs = for ...`).
    pub fn names(&self) -> impl Iterator<Item = &Ident> {
        let steps = match &self.value.kind {
            ExprKind::Loop(lp) => lp.steps.as_ref(),
            _ => None,
        };
        std::iter::once(&self.name).chain(steps)
    }
}

/// `output name;` or `output name = value;`
#[derive(Clone, Debug, PartialEq)]
pub struct OutputDecl {
    pub name: Ident,
    pub value: Option<Expr>,
}

#[derive(Clone, Debug, PartialEq)]
pub struct LossStmt {
    pub value: Expr,
    /// The `loss` keyword, for "two losses" diagnostics.
    pub keyword: Span,
}

/// A numeric literal, possibly negated (`-2` in an initialiser).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Number {
    pub value: f64,
    /// Written without a fraction or exponent (`3`, not `3.0` or `3e0`).
    pub is_integer: bool,
    pub span: Span,
}

#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: ExprKind,
    pub span: Span,
    /// Height of this expression tree; the parser caps it so that every later
    /// recursive pass has bounded depth.
    pub depth: u32,
}

#[derive(Clone, Debug, PartialEq)]
pub enum ExprKind {
    Number(Number),
    Bool(bool),
    Name(String),
    Neg(Box<Expr>),
    Binary {
        op: BinOp,
        op_span: Span,
        lhs: Box<Expr>,
        rhs: Box<Expr>,
    },
    /// `x.T`
    Transpose(Box<Expr>),
    Call {
        func: Ident,
        args: Vec<Arg>,
    },
    /// `(2, 3)`: several axes, as the value of an `axis` keyword (the only place the
    /// grammar takes one).
    Tuple(Vec<Expr>),
    /// `x[0]`, `x[:, 1:3]`, `x[-1]`: one item per leading axis of `base`.
    Index {
        base: Box<Expr>,
        items: Vec<IndexItem>,
    },
    /// `for l in 0..L from x { ... }`: the value of a `let` (see [`Loop`]).
    Loop(Box<Loop>),
    /// Stands in for an expression the parser could not build; an error was
    /// already reported.
    Error,
}

/// `let h = for l in 0..L from x { tanh(h @ w[l]) };`: the body runs once for each
/// `l` from `start` up to, not including, `end` (compile-time integers). Inside it,
/// the `let`'s own name (`h`, the carried value) is `from`'s value at the first step
/// and the body's value of the step before at the others; the loop's value is the
/// last step's. The body's value keeps the carried value's shape.
#[derive(Clone, Debug, PartialEq)]
pub struct Loop {
    /// `l`: a compile-time integer in the body.
    pub index: Ident,
    pub start: Expr,
    pub end: Expr,
    pub from: Expr,
    pub body: Block,
    /// The name of the `let` the loop is the value of.
    pub carried: Ident,
    /// `let h, hs = for ...`: `hs`, the carried value after every step, stacked along
    /// a new first axis (`hs[l]` after step `l`; the last is `h`).
    pub steps: Option<Ident>,
    /// `for l in 0..L from x`, for diagnostics about the loop as a whole.
    pub header: Span,
}

impl Loop {
    /// Every expression of the loop, in source order.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        [&self.start, &self.end, &self.from]
            .into_iter()
            .chain(self.body.lets.iter().map(|l| &l.value))
            .chain(std::iter::once(&self.body.value))
    }
}

/// One item of an index: a position or a range of positions along one axis.
#[derive(Clone, Debug, PartialEq)]
pub enum IndexItem {
    /// `i`: one position; the axis is dropped.
    At(Expr),
    /// `start:stop`, either bound optional (`:` is the whole axis); `step` is
    /// parsed so that `a:b:c` gets its own message, and is not supported.
    Range {
        start: Option<Expr>,
        stop: Option<Expr>,
        step: Option<Expr>,
        span: Span,
    },
}

impl IndexItem {
    /// The expressions the item holds.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        let (a, b, c) = match self {
            IndexItem::At(e) => (Some(e), None, None),
            IndexItem::Range {
                start, stop, step, ..
            } => (start.as_ref(), stop.as_ref(), step.as_ref()),
        };
        a.into_iter().chain(b).chain(c)
    }

    /// Where the item is.
    pub fn span(&self) -> Span {
        match self {
            IndexItem::At(e) => e.span,
            IndexItem::Range { span, .. } => *span,
        }
    }
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum BinOp {
    Add,
    Sub,
    Mul,
    Div,
    MatMul,
    Pow,
    Gt,
    Ge,
    Lt,
    Le,
}

impl BinOp {
    /// The operator as written.
    pub fn symbol(self) -> &'static str {
        match self {
            BinOp::Add => "+",
            BinOp::Sub => "-",
            BinOp::Mul => "*",
            BinOp::Div => "/",
            BinOp::MatMul => "@",
            BinOp::Pow => "^",
            BinOp::Gt => ">",
            BinOp::Ge => ">=",
            BinOp::Lt => "<",
            BinOp::Le => "<=",
        }
    }
}

/// A call argument: positional, or `name = value`.
#[derive(Clone, Debug, PartialEq)]
pub struct Arg {
    pub keyword: Option<Ident>,
    pub value: Expr,
}

/// The deepest expression tree the parser builds. Deeper input is reported, not
/// built, so no later pass can overflow the stack.
pub const MAX_EXPR_DEPTH: u32 = 256;

impl Expr {
    /// Builds a node whose depth is one more than its deepest child.
    pub fn new(kind: ExprKind, span: Span) -> Expr {
        let child_depth = match &kind {
            ExprKind::Number(_) | ExprKind::Bool(_) | ExprKind::Name(_) | ExprKind::Error => 0,
            ExprKind::Neg(e) | ExprKind::Transpose(e) => e.depth,
            ExprKind::Binary { lhs, rhs, .. } => lhs.depth.max(rhs.depth),
            ExprKind::Call { args, .. } => args.iter().map(|a| a.value.depth).max().unwrap_or(0),
            ExprKind::Tuple(items) => items.iter().map(|e| e.depth).max().unwrap_or(0),
            ExprKind::Index { base, items } => items
                .iter()
                .flat_map(IndexItem::exprs)
                .map(|e| e.depth)
                .fold(base.depth, u32::max),
            ExprKind::Loop(lp) => lp.exprs().map(|e| e.depth).max().unwrap_or(0),
        };
        Expr {
            kind,
            span,
            depth: child_depth + 1,
        }
    }

    /// A node standing for an expression that was already reported as an error.
    pub fn error(span: Span) -> Expr {
        Expr {
            kind: ExprKind::Error,
            span,
            depth: 1,
        }
    }
}

impl File {
    pub fn models(&self) -> impl Iterator<Item = &ModelDef> {
        self.items.iter().filter_map(|item| match item {
            Item::Model(m) => Some(m),
            Item::Fn(_) | Item::Const(_) => None,
        })
    }

    pub fn fns(&self) -> impl Iterator<Item = &FnDef> {
        self.items.iter().filter_map(|item| match item {
            Item::Fn(f) => Some(f),
            Item::Model(_) | Item::Const(_) => None,
        })
    }

    /// The file-level consts, in the order written.
    pub fn consts(&self) -> impl Iterator<Item = &ConstDecl> {
        self.items.iter().flat_map(|item| match item {
            Item::Const(consts) => consts.as_slice(),
            Item::Fn(_) | Item::Model(_) => &[],
        })
    }
}
