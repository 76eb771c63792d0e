//! A generated program: declarations, `let`s, outputs and loss terms whose every
//! expression node knows its shape, and the `.nn` text it renders to.

use std::collections::BTreeSet;
use std::fmt::Write;

/// A dim of a shape: the runtime batch dim `N`, one of the fixed dims `A`, `B`, `C`,
/// or a literal 1 (from `keepdims`, or declared).
#[derive(Clone, Copy, PartialEq, Eq, Debug, PartialOrd, Ord)]
pub enum Sym {
    N,
    A,
    B,
    C,
    One,
}

impl Sym {
    /// The dims a shape may use other than 1.
    pub const SIZED: [Sym; 4] = [Sym::N, Sym::A, Sym::B, Sym::C];
    /// The fixed dims (class counts for `pick` and `one_hot` must be fixed).
    pub const FIXED: [Sym; 3] = [Sym::A, Sym::B, Sym::C];

    pub fn text(self) -> &'static str {
        match self {
            Sym::N => "N",
            Sym::A => "A",
            Sym::B => "B",
            Sym::C => "C",
            Sym::One => "1",
        }
    }
}

/// What a node's value is.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Ty {
    Float,
    /// Class indices (an `index` input).
    Index,
    /// A dim name passed as an argument (`one_hot(l, B)`).
    Dim,
}

/// An expression node, with its shape and type.
#[derive(Clone, Debug, PartialEq)]
pub struct Expr {
    pub kind: Kind,
    pub shape: Vec<Sym>,
    pub ty: Ty,
}

#[derive(Clone, Debug, PartialEq)]
pub enum Kind {
    /// An input, parameter, `let`, `const` or dim name.
    Var(String),
    Num(f64),
    Neg(Box<Expr>),
    /// `+ - * / @` and the comparisons `> < >= <=`.
    Binary(&'static str, Box<Expr>, Box<Expr>),
    /// `x ^ k`, the exponent as written (a literal or a `const`).
    Pow(Box<Expr>, String),
    Transpose(Box<Expr>),
    /// `x[...]`: the index items as written (`:, 1:3`).
    Index(Box<Expr>, String),
    /// A call: positional arguments, then keyword arguments as written.
    Call(String, Vec<Expr>, Vec<(&'static str, String)>),
}

impl Expr {
    pub fn float(kind: Kind, shape: Vec<Sym>) -> Expr {
        Expr {
            kind,
            shape,
            ty: Ty::Float,
        }
    }

    /// The direct sub-expressions.
    pub fn children(&self) -> Vec<&Expr> {
        match &self.kind {
            Kind::Var(_) | Kind::Num(_) => vec![],
            Kind::Neg(a) | Kind::Pow(a, _) | Kind::Transpose(a) | Kind::Index(a, _) => vec![a],
            Kind::Binary(_, a, b) => vec![a, b],
            Kind::Call(_, args, _) => args.iter().collect(),
        }
    }

    pub fn children_mut(&mut self) -> Vec<&mut Expr> {
        match &mut self.kind {
            Kind::Var(_) | Kind::Num(_) => vec![],
            Kind::Neg(a) | Kind::Pow(a, _) | Kind::Transpose(a) | Kind::Index(a, _) => vec![a],
            Kind::Binary(_, a, b) => vec![a, b],
            Kind::Call(_, args, _) => args.iter_mut().collect(),
        }
    }

    /// The number of nodes.
    pub fn size(&self) -> usize {
        1 + self.children().iter().map(|c| c.size()).sum::<usize>()
    }

    /// Every name the expression reads (variables, consts, dims and called `fn`s).
    pub fn names(&self, into: &mut BTreeSet<String>) {
        match &self.kind {
            Kind::Var(v) => {
                into.insert(v.clone());
            }
            Kind::Pow(_, k) => {
                into.insert(k.clone());
            }
            Kind::Call(f, _, kwargs) => {
                into.insert(f.clone());
                for (_, value) in kwargs {
                    into.insert(value.clone());
                }
            }
            _ => {}
        }
        for c in self.children() {
            c.names(into);
        }
    }

    /// The node at pre-order position `at`.
    pub fn node_mut(&mut self, at: usize) -> Option<&mut Expr> {
        if at == 0 {
            return Some(self);
        }
        let mut at = at - 1;
        for c in self.children_mut() {
            let size = c.size();
            if at < size {
                return c.node_mut(at);
            }
            at -= size;
        }
        None
    }

    pub fn node(&self, at: usize) -> Option<&Expr> {
        if at == 0 {
            return Some(self);
        }
        let mut at = at - 1;
        for c in self.children() {
            let size = c.size();
            if at < size {
                return c.node(at);
            }
            at -= size;
        }
        None
    }

    fn is_atom(&self) -> bool {
        matches!(
            self.kind,
            Kind::Var(_) | Kind::Call(..) | Kind::Transpose(_) | Kind::Index(..)
        ) || matches!(self.kind, Kind::Num(x) if x >= 0.0)
    }

    /// The text, parenthesised wherever a sub-expression is not an atom.
    pub fn render(&self) -> String {
        let sub = |e: &Expr| {
            if e.is_atom() {
                e.render()
            } else {
                format!("({})", e.render())
            }
        };
        match &self.kind {
            Kind::Var(v) => v.clone(),
            Kind::Num(x) => number(*x),
            Kind::Neg(a) => format!("-{}", sub(a)),
            Kind::Binary(op, a, b) => format!("{} {op} {}", sub(a), sub(b)),
            Kind::Pow(a, k) => format!("{} ^ {k}", sub(a)),
            Kind::Transpose(a) => format!("{}.T", sub(a)),
            Kind::Index(a, items) => format!("{}[{items}]", sub(a)),
            Kind::Call(f, args, kwargs) => {
                let mut parts: Vec<String> = args.iter().map(Expr::render).collect();
                parts.extend(kwargs.iter().map(|(k, v)| format!("{k} = {v}")));
                format!("{f}({})", parts.join(", "))
            }
        }
    }
}

/// A number as a user writes it: `2`, `0.25`, `-1.5`.
pub fn number(x: f64) -> String {
    if x == x.trunc() && x.abs() < 1e6 {
        format!("{x:.0}")
    } else {
        format!("{x}")
    }
}

/// What a declaration declares.
#[derive(Clone, Debug, PartialEq)]
pub enum DeclKind {
    Input {
        grad: bool,
    },
    IndexInput,
    /// A parameter and its initialiser, as written (`xavier`, `normal(0, 0.5)`).
    Param(String),
}

#[derive(Clone, Debug, PartialEq)]
pub struct Decl {
    pub name: String,
    pub kind: DeclKind,
    pub shape: Vec<Sym>,
}

/// One generated model and the `fn` items it may call.
#[derive(Clone, Debug, PartialEq)]
pub struct Program {
    /// The seed it came from.
    pub seed: u64,
    /// The model's name (`r17`): unique per seed, so many programs fit in one crate.
    pub name: String,
    pub f64: bool,
    /// The sizes of the fixed dims `A`, `B`, `C`.
    pub sizes: [usize; 3],
    pub consts: Vec<(String, f64)>,
    /// `fn` items: name, the names it calls, its text.
    pub fns: Vec<(String, Vec<String>, String)>,
    pub decls: Vec<Decl>,
    pub lets: Vec<(String, Expr)>,
    pub outputs: Vec<(String, Expr)>,
    /// Scalar terms; the loss is their sum.
    pub loss: Vec<Expr>,
}

impl Program {
    /// Every expression of the program: lets, outputs, loss terms.
    pub fn exprs(&self) -> impl Iterator<Item = &Expr> {
        self.lets
            .iter()
            .map(|(_, e)| e)
            .chain(self.outputs.iter().map(|(_, e)| e))
            .chain(&self.loss)
    }

    pub fn exprs_mut(&mut self) -> impl Iterator<Item = &mut Expr> {
        self.lets
            .iter_mut()
            .map(|(_, e)| e)
            .chain(self.outputs.iter_mut().map(|(_, e)| e))
            .chain(&mut self.loss)
    }

    /// Every name some expression or `fn` reads.
    pub fn used_names(&self) -> BTreeSet<String> {
        let mut names = BTreeSet::new();
        for e in self.exprs() {
            e.names(&mut names);
        }
        // `fn`s calling `fn`s: close over the calls.
        loop {
            let before = names.len();
            for (name, calls, _) in &self.fns {
                if names.contains(name) {
                    names.extend(calls.iter().cloned());
                }
            }
            if names.len() == before {
                return names;
            }
        }
    }

    /// The `.nn` source.
    pub fn source(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "// nnc-progen, seed {}", self.seed);
        let used = self.used_names();
        for (name, _, text) in &self.fns {
            if used.contains(name) {
                let _ = writeln!(out, "{text}");
            }
        }
        let _ = writeln!(out, "model {} {{", self.name);
        if self.f64 {
            let _ = writeln!(out, "    dtype f64;");
        }
        let fixed: Vec<String> = Sym::FIXED
            .iter()
            .zip(self.sizes)
            .map(|(d, size)| format!("{} = {size}", d.text()))
            .collect();
        let _ = writeln!(out, "    dim N, {};", fixed.join(", "));
        for (name, value) in &self.consts {
            let _ = writeln!(out, "    const {name} = {};", number(*value));
        }
        for d in &self.decls {
            let shape = shape_text(&d.shape);
            let _ = match &d.kind {
                DeclKind::Input { grad: false } => writeln!(out, "    input {}: {shape};", d.name),
                DeclKind::Input { grad: true } => {
                    writeln!(out, "    input {}: {shape} grad;", d.name)
                }
                DeclKind::IndexInput => writeln!(out, "    input {}: index{shape};", d.name),
                DeclKind::Param(init) => writeln!(out, "    param {}: {shape} = {init};", d.name),
            };
        }
        for (name, e) in &self.lets {
            let _ = writeln!(out, "    let {name} = {};", e.render());
        }
        for (name, e) in &self.outputs {
            if matches!(&e.kind, Kind::Var(v) if v == name) {
                let _ = writeln!(out, "    output {name};");
            } else {
                let _ = writeln!(out, "    output {name} = {};", e.render());
            }
        }
        let terms: Vec<String> = self
            .loss
            .iter()
            .map(|t| {
                if t.is_atom() || self.loss.len() == 1 {
                    t.render()
                } else {
                    format!("({})", t.render())
                }
            })
            .collect();
        let _ = writeln!(out, "    loss {};", terms.join(" + "));
        out.push_str("}\n");
        out
    }

    /// The number of expression nodes: how big a failing program still is.
    pub fn size(&self) -> usize {
        self.exprs().map(Expr::size).sum()
    }
}

pub fn shape_text(shape: &[Sym]) -> String {
    let dims: Vec<&str> = shape.iter().map(|d| d.text()).collect();
    format!("[{}]", dims.join(", "))
}
