//! The generator: a seed in, a well-typed [`Program`] out.
//!
//! Expressions are grown top-down from the shape they must have: `expr(shape, depth)`
//! picks an operation that can produce `shape` and asks for its operands' shapes
//! (broadcasting shapes for elementwise operands, a shape with one more axis for a
//! reduction, `[M, K]` and `[K, N]` for `@`, ...). Leaves are variables of exactly the
//! shape asked for: an earlier `let` (so values are shared), an input or parameter
//! already declared, or a new declaration.

use crate::ast::{Decl, DeclKind, Expr, Kind, Program, Sym, Ty};
use crate::rng::Rng;

/// The program for `seed`.
pub fn generate(seed: u64) -> Program {
    let mut g = Generator {
        rng: Rng::new(seed),
        loops: Rng::new(seed ^ 0x3c6e_f372_fe94_f82b),
        program: Program {
            seed,
            name: format!("r{seed}"),
            f64: false,
            sizes: [2, 3, 4],
            consts: vec![],
            fns: vec![],
            decls: vec![],
            lets: vec![],
            outputs: vec![],
            loss: vec![],
        },
    };
    g.program.f64 = g.rng.chance(0.5);
    // Distinct sizes, so that a transposed or swapped axis cannot go unnoticed.
    let mut sizes = [2, 3, 4, 5];
    for k in (1..sizes.len()).rev() {
        sizes.swap(k, g.rng.below(k + 1));
    }
    g.program.sizes = [sizes[0], sizes[1], sizes[2]];
    for k in 0..g.rng.below(3) {
        let value = g.rng.constant(0.1, 1.5);
        g.program.consts.push((format!("c{k}"), value));
    }
    g.fns();
    g.body();
    g.program
}

/// How deep expressions grow below a `let`, an output or a loss term.
const DEPTH: usize = 3;

struct Generator {
    rng: Rng,
    /// Every choice about loops, from a stream of its own: a program that calls no
    /// loop is the one its seed gave before loops were generated.
    loops: Rng,
    program: Program,
}

/// Elementwise functions of one argument, each with what keeps its argument in its
/// domain: `{}` is the argument.
const UNARY: &[&str] = &[
    "sigmoid({})",
    "tanh({})",
    "softplus({})",
    "relu({})",
    "abs({})",
    "-{}",
    "leaky_relu({})",
    "leaky_relu({}, alpha = 0.2)",
    "elu({})",
    "elu({}, alpha = 0.5)",
    "clip({}, -0.5, 0.5)",
    "exp(tanh({}))",
    "log(sigmoid({}) + 0.5)",
    "sqrt(softplus({}) + 0.1)",
    "tanh({}) ^ 2",
    "tanh({}) ^ 3",
    "(sigmoid({}) + 0.5) ^ -1.5",
    "(softplus({}) + 0.2) ^ 0.5",
];

impl Generator {
    /// A fresh name with `prefix`.
    fn fresh(&mut self, prefix: &str) -> String {
        let taken = |name: &str, p: &Program| {
            p.decls.iter().any(|d| d.name == name)
                || p.lets.iter().any(|(n, _)| n == name)
                || p.outputs.iter().any(|(n, _)| n == name)
        };
        let mut k = 0;
        loop {
            let name = format!("{prefix}{k}");
            if !taken(&name, &self.program) {
                return name;
            }
            k += 1;
        }
    }

    /// The user `fn`s this program may call (some of four templates), with random
    /// constants.
    fn fns(&mut self) {
        if self.rng.chance(0.6) {
            let k = self.rng.constant(0.1, 0.9);
            let text = format!("fn gate(a, b, k = {k}) = a * tanh(b) + k * a;");
            self.program.fns.push(("gate".into(), vec![], text));
            if self.rng.chance(0.5) {
                let k = self.rng.constant(0.1, 0.9);
                let text = format!("fn twice(x) = gate(x, sigmoid(x), k = {k}) - x / (1 + x * x);");
                self.program
                    .fns
                    .push(("twice".into(), vec!["gate".into()], text));
            }
        }
        if self.rng.chance(0.4) {
            let k = self.rng.constant(0.1, 0.9);
            let text = format!("fn layer(x, w) {{\n    let z = x @ w;\n    tanh(z) + {k} * z\n}}");
            self.program.fns.push(("layer".into(), vec![], text));
        }
        if self.rng.chance(0.3) {
            let text = "fn centred(x) = x - logsumexp(x, axis = -1, keepdims = true);".to_string();
            self.program.fns.push(("centred".into(), vec![], text));
        }
        if self.loops.chance(0.35) {
            // A loop over a stack `w: [n, s, s]`, keeping its steps.
            let (a, b) = (self.loops.constant(0.1, 0.9), self.loops.constant(0.1, 0.9));
            let text = format!(
                "fn deep(x, w, n) {{\n    let h, hs = for k in 0..n from x {{ tanh(h @ w[k]) + {a} * h }};\n    h + {b} * sum(hs, axis = 0)\n}}"
            );
            self.program.fns.push(("deep".into(), vec![], text));
        }
    }

    fn has_fn(&self, name: &str) -> bool {
        self.program.fns.iter().any(|(n, _, _)| n == name)
    }

    /// `let`s, outputs, and a loss that reads every `let` no output reads.
    fn body(&mut self) {
        let lets = self.rng.range(1, 5);
        for _ in 0..lets {
            let shape = self.shape();
            let depth = self.rng.range(1, DEPTH);
            let e = self.expr(&shape, depth);
            let name = self.fresh("v");
            self.program.lets.push((name, e));
        }
        if self.rng.chance(0.4) {
            let k = self.rng.below(self.program.lets.len());
            let (name, e) = self.program.lets[k].clone();
            let var = Expr::float(Kind::Var(name.clone()), e.shape);
            self.program.outputs.push((name, var));
        }
        if self.rng.chance(0.3) {
            let shape = self.shape();
            let e = self.expr(&shape, 2);
            let name = self.fresh("o");
            self.program.outputs.push((name, e));
        }
        if self.rng.chance(0.4) {
            let e = self.argmax();
            let name = self.fresh("o");
            self.program.outputs.push((name, e));
        }
        let lets = self.program.lets.clone();
        for (name, e) in lets {
            if self.program.loss.is_empty() || self.rng.chance(0.8) {
                let var = Expr::float(Kind::Var(name), e.shape);
                let term = self.scalarise(var);
                self.program.loss.push(term);
            }
        }
        if self.rng.chance(0.3) {
            let term = self.expr(&[], 2);
            self.program.loss.push(term);
        }
    }

    /// A random shape of rank 0 to 4, mostly 1 to 2.
    fn shape(&mut self) -> Vec<Sym> {
        let rank = [0, 1, 1, 2, 2, 2, 3, 4][self.rng.below(8)];
        let mut shape: Vec<Sym> = (0..rank).map(|_| *self.rng.pick(&Sym::SIZED)).collect();
        if rank > 0 && self.rng.chance(0.6) {
            shape[0] = Sym::N;
        }
        shape
    }

    fn dim(&mut self) -> Sym {
        *self.rng.pick(&Sym::SIZED)
    }

    /// A scalar loss term from a value of any shape.
    fn scalarise(&mut self, v: Expr) -> Expr {
        if v.shape.is_empty() {
            return v;
        }
        let shape = v.shape.clone();
        match self.rng.below(6) {
            0 => call("sum", vec![v], vec![], vec![]),
            1 => call("mean", vec![v], vec![], vec![]),
            2 => call("logsumexp", vec![v], vec![], vec![]),
            3 => call("l2", vec![v], vec![], vec![]),
            4 => {
                let t = self.expr(&shape, 1);
                call("sse", vec![v, t], vec![], vec![])
            }
            _ => {
                let t = self.expr(&shape, 1);
                call("mse", vec![v, t], vec![], vec![])
            }
        }
    }

    /// An `argmax` output: of a value plus its own random input, so no two elements tie.
    fn argmax(&mut self) -> Expr {
        let shape = vec![Sym::N, *self.rng.pick(&Sym::FIXED)];
        let x = self.expr(&shape, 1);
        let x = self.jittered(x);
        let axis = self.rng.below(2);
        let mut kwargs = vec![("axis", axis.to_string())];
        let mut out = shape.clone();
        if self.rng.chance(0.3) {
            kwargs.push(("keepdims", "true".into()));
            out[axis] = Sym::One;
        } else {
            out.remove(axis);
        }
        Expr {
            kind: Kind::Call("argmax".into(), vec![x], kwargs),
            shape: out,
            ty: Ty::Index,
        }
    }

    /// `x + j` with `j` a new input of `x`'s shape: random, so it breaks every tie.
    fn jittered(&mut self, x: Expr) -> Expr {
        let shape = x.shape.clone();
        let name = self.fresh("j");
        self.declare(&name, DeclKind::Input { grad: false }, &shape);
        let j = Expr::float(Kind::Var(name), shape.clone());
        binary("+", x, j, shape)
    }

    fn declare(&mut self, name: &str, kind: DeclKind, shape: &[Sym]) {
        self.program.decls.push(Decl {
            name: name.to_string(),
            kind,
            shape: shape.to_vec(),
        });
    }

    /// An expression of exactly `shape`.
    fn expr(&mut self, shape: &[Sym], depth: usize) -> Expr {
        if depth == 0 || self.rng.chance(0.2) {
            return self.leaf(shape);
        }
        if self.deep_fits(shape) && self.loops.chance(0.2) {
            return self.deep(shape, depth - 1);
        }
        let rank = shape.len();
        let scalar = rank == 0;
        let has_one = shape.contains(&Sym::One);
        let matrix_like = rank <= 2;
        let pickable = (rank == 1 || (rank == 2 && shape[1] == Sym::One)) && shape[0] != Sym::One;
        let one_hot = rank == 2 && Sym::FIXED.contains(&shape[1]) && shape[0] != Sym::One;
        let weights = [
            6,                                               // unary
            8,                                               // binary arithmetic
            2,                                               // max / min
            2,                                               // where, comparisons
            if rank < 4 { 3 } else { 0 },                    // reduce along an axis
            if rank < 3 { 1 } else { 0 },                    // reduce along two axes
            if has_one { 3 } else { 0 },                     // reduce with keepdims
            if scalar { 4 } else { 0 },                      // reduce everything / losses
            if rank >= 1 { 2 } else { 0 },                   // softmax, log_softmax
            if matrix_like { 4 } else { 0 },                 // @
            if rank == 2 { 2 } else { 0 },                   // .T
            if pickable { 2 } else { 0 },                    // pick
            if one_hot { 1 } else { 0 },                     // one_hot
            if self.program.fns.is_empty() { 0 } else { 3 }, // user fns
            if rank >= 1 { 3 } else { 0 },                   // index, slice, join, reshape
        ];
        let d = depth - 1;
        match self.rng.weighted(&weights) {
            0 => self.unary(shape, d),
            1 => self.arithmetic(shape, d),
            2 => {
                let (a, b) = self.broadcast_pair(shape, d);
                let f = if self.rng.chance(0.5) { "max" } else { "min" };
                call(f, vec![a, b], vec![], shape.to_vec())
            }
            3 => self.masked(shape, d),
            4 => self.reduce_axis(shape, d),
            5 => self.reduce_two_axes(shape, d),
            6 => self.reduce_keepdims(shape, d),
            7 => self.scalar(d),
            8 => {
                let f = if self.rng.chance(0.5) {
                    "softmax"
                } else {
                    "log_softmax"
                };
                let x = self.expr(shape, d);
                let axis = self.axis(rank);
                call(f, vec![x], vec![("axis", axis)], shape.to_vec())
            }
            9 => self.matmul(shape, d),
            10 => {
                let x = self.expr(&[shape[1], shape[0]], d);
                Expr::float(Kind::Transpose(Box::new(x)), shape.to_vec())
            }
            11 => self.pick(shape, d),
            12 => {
                let labels = self.index_input(shape[0]);
                let classes = Expr {
                    kind: Kind::Var(shape[1].text().into()),
                    shape: vec![],
                    ty: Ty::Dim,
                };
                let hot = call("one_hot", vec![labels, classes], vec![], shape.to_vec());
                let x = self.expr(shape, d);
                binary("*", hot, x, shape.to_vec())
            }
            13 => self.user_fn(shape, d),
            _ => self.movement(shape, d),
        }
    }

    /// The size of a dim of this program (`N` counts as unknown: 0).
    fn size_of(&self, s: Sym) -> usize {
        match s {
            Sym::A => self.program.sizes[0],
            Sym::B => self.program.sizes[1],
            Sym::C => self.program.sizes[2],
            Sym::One => 1,
            Sym::N => 0,
        }
    }

    /// `shape` by indexing, slicing, `concat`, `stack` or `reshape` of values of
    /// other shapes: positions from the start and from the end, omitted bounds.
    fn movement(&mut self, shape: &[Sym], d: usize) -> Expr {
        let rank = shape.len();
        let fixed: Vec<usize> = (0..rank).filter(|&k| shape[k] != Sym::N).collect();
        let lead = |k: usize| ":, ".repeat(k);
        match self.rng.below(5) {
            // `x[.., i]`: a position along a new fixed axis, which is dropped.
            0 if rank < 4 => {
                let k = self.rng.below(rank + 1);
                let dim = *self.rng.pick(&Sym::FIXED);
                let size = self.size_of(dim) as i64;
                let mut inner = shape.to_vec();
                inner.insert(k, dim);
                let i = self.rng.below(size as usize) as i64;
                let i = if self.rng.chance(0.3) { i - size } else { i };
                let x = self.expr(&inner, d);
                Expr::float(
                    Kind::Index(Box::new(x), format!("{}{i}", lead(k))),
                    shape.to_vec(),
                )
            }
            // `x[.., a:b]` along a fixed axis, from a wider one.
            1 if !fixed.is_empty() => {
                let k = *self.rng.pick(&fixed);
                let want = self.size_of(shape[k]);
                let wider: Vec<Sym> = Sym::FIXED
                    .into_iter()
                    .filter(|s| self.size_of(*s) >= want)
                    .collect();
                let from = *self.rng.pick(&wider);
                let size = self.size_of(from);
                let start = self.rng.below(size - want + 1);
                let stop = start + want;
                let bounds = match self.rng.below(3) {
                    0 if start == 0 => format!(":{stop}"),
                    0 if stop == size => format!("{start}:"),
                    1 => format!("{}:{}", start as i64 - size as i64, stop),
                    _ => format!("{start}:{stop}"),
                };
                let mut inner = shape.to_vec();
                inner[k] = from;
                let x = self.expr(&inner, d);
                Expr::float(
                    Kind::Index(Box::new(x), format!("{}{bounds}", lead(k))),
                    shape.to_vec(),
                )
            }
            // `concat(x[.., :s], y[.., s:], axis = k)` along a fixed axis.
            2 if fixed.iter().any(|&k| self.size_of(shape[k]) >= 2) => {
                let wide: Vec<usize> = fixed
                    .iter()
                    .copied()
                    .filter(|&k| self.size_of(shape[k]) >= 2)
                    .collect();
                let k = *self.rng.pick(&wide);
                let size = self.size_of(shape[k]);
                let split = 1 + self.rng.below(size - 1);
                let first = self.expr(shape, d);
                let second = self.expr(shape, d);
                let mut left = shape.to_vec();
                let mut right = shape.to_vec();
                // The pieces' sizes along `k` are no dim of the program: they are
                // marked 1 and only ever read by this `concat`.
                left[k] = Sym::One;
                right[k] = Sym::One;
                let a = Expr::float(
                    Kind::Index(Box::new(first), format!("{}:{split}", lead(k))),
                    left,
                );
                let b = Expr::float(
                    Kind::Index(Box::new(second), format!("{}{split}:", lead(k))),
                    right,
                );
                call(
                    "concat",
                    vec![a, b],
                    vec![("axis", k.to_string())],
                    shape.to_vec(),
                )
            }
            // `stack(x, y, .., axis = k)` along a fixed axis of at most 4.
            3 if fixed.iter().any(|&k| self.size_of(shape[k]) <= 4) => {
                let small: Vec<usize> = fixed
                    .iter()
                    .copied()
                    .filter(|&k| self.size_of(shape[k]) <= 4)
                    .collect();
                let k = *self.rng.pick(&small);
                let mut piece = shape.to_vec();
                piece.remove(k);
                let pieces: Vec<Expr> = (0..self.size_of(shape[k]))
                    .map(|_| self.expr(&piece, d.min(1)))
                    .collect();
                if pieces.len() < 2 {
                    // A stack of one: index a new axis of one instead.
                    return self.expr(shape, d);
                }
                call(
                    "stack",
                    pieces,
                    vec![("axis", k.to_string())],
                    shape.to_vec(),
                )
            }
            // `reshape(x, (..))`: size-1 axes dropped or added, `-1` for one size.
            _ => {
                let mut inner: Vec<Sym> =
                    shape.iter().copied().filter(|s| *s != Sym::One).collect();
                if inner.len() == rank && rank < 4 {
                    let k = self.rng.below(rank + 1);
                    inner.insert(k, Sym::One);
                }
                let x = self.expr(&inner, d);
                let unknown = self.rng.below(rank + 2);
                let sizes: Vec<String> = shape
                    .iter()
                    .enumerate()
                    .map(|(k, s)| {
                        if k == unknown {
                            "-1".to_string()
                        } else {
                            s.text().to_string()
                        }
                    })
                    .collect();
                let target = if sizes.len() == 1 {
                    sizes[0].clone()
                } else {
                    format!("({})", sizes.join(", "))
                };
                let target = Expr::float(Kind::Var(target), vec![]);
                call("reshape", vec![x, target], vec![], shape.to_vec())
            }
        }
    }

    /// An axis of a rank-`rank` value, as written: `1` or `-1`.
    fn axis(&mut self, rank: usize) -> String {
        let k = self.rng.below(rank);
        if self.rng.chance(0.3) {
            format!("{}", k as i64 - rank as i64)
        } else {
            k.to_string()
        }
    }

    /// A variable of exactly `shape`: an earlier `let`, a declared input or parameter,
    /// a number for a scalar, or a new declaration.
    fn leaf(&mut self, shape: &[Sym]) -> Expr {
        if shape.is_empty() && self.rng.chance(0.3) {
            if !self.program.consts.is_empty() && self.rng.chance(0.4) {
                let k = self.rng.below(self.program.consts.len());
                return Expr::float(Kind::Var(self.program.consts[k].0.clone()), vec![]);
            }
            return Expr::float(Kind::Num(self.rng.constant(-2.0, 2.0)), vec![]);
        }
        let mut found: Vec<String> = self
            .program
            .lets
            .iter()
            .filter(|(_, e)| e.shape == shape)
            .map(|(n, _)| n.clone())
            .collect();
        found.extend(
            self.program
                .decls
                .iter()
                .filter(|d| d.shape == shape && d.kind != DeclKind::IndexInput)
                .filter(|d| !d.name.starts_with('j'))
                .map(|d| d.name.clone()),
        );
        if !found.is_empty() && self.rng.chance(0.6) {
            let name = self.rng.pick(&found).clone();
            return Expr::float(Kind::Var(name), shape.to_vec());
        }
        let runtime = shape.contains(&Sym::N);
        let name;
        if runtime || self.rng.chance(0.4) {
            name = self.fresh("x");
            let grad = self.rng.chance(0.15);
            self.declare(&name, DeclKind::Input { grad }, shape);
        } else {
            name = self.fresh("p");
            let init = self.initialiser();
            self.declare(&name, DeclKind::Param(init), shape);
        }
        Expr::float(Kind::Var(name), shape.to_vec())
    }

    fn initialiser(&mut self) -> String {
        match self.rng.below(7) {
            0 => "zeros".into(),
            1 => "ones".into(),
            2 => crate::ast::number(self.rng.constant(-1.0, 1.0)),
            3 => format!("normal(0, {})", self.rng.constant(0.1, 1.0)),
            4 => format!(
                "uniform({}, {})",
                self.rng.constant(-1.0, -0.1),
                self.rng.constant(0.1, 1.0)
            ),
            5 => "xavier".into(),
            _ => "he".into(),
        }
    }

    /// An `index` input of shape `[dim]` (new, or one already declared).
    fn index_input(&mut self, dim: Sym) -> Expr {
        let existing: Vec<String> = self
            .program
            .decls
            .iter()
            .filter(|d| d.kind == DeclKind::IndexInput && d.shape == [dim])
            .map(|d| d.name.clone())
            .collect();
        let name = if !existing.is_empty() && self.rng.chance(0.7) {
            self.rng.pick(&existing).clone()
        } else {
            let name = self.fresh("l");
            self.declare(&name, DeclKind::IndexInput, &[dim]);
            name
        };
        Expr {
            kind: Kind::Var(name),
            shape: vec![dim],
            ty: Ty::Index,
        }
    }

    fn unary(&mut self, shape: &[Sym], d: usize) -> Expr {
        if self.rng.chance(0.1) {
            // prelu: its slope broadcast from a parameter of a sub-shape.
            let x = self.expr(shape, d);
            let sub = self.sub_shape(shape);
            let a = self.leaf(&sub);
            return call("prelu", vec![x, a], vec![], shape.to_vec());
        }
        let template = *self.rng.pick(UNARY);
        let x = self.expr(shape, d);
        template_expr(template, x)
    }

    /// `a op b` with `a` and `b` broadcasting to `shape`; `/` sees a denominator kept
    /// away from zero; `x ^ k` a base kept positive.
    fn arithmetic(&mut self, shape: &[Sym], d: usize) -> Expr {
        let (a, b) = self.broadcast_pair(shape, d);
        match self.rng.below(5) {
            0 => binary("+", a, b, shape.to_vec()),
            1 => binary("-", a, b, shape.to_vec()),
            2 => binary("*", a, b, shape.to_vec()),
            3 => {
                let bs = b.shape.clone();
                let sq = binary("*", b.clone(), b, bs.clone());
                let den = binary("+", sq, num(0.5), bs);
                binary("/", a, den, shape.to_vec())
            }
            _ => {
                if self.program.consts.is_empty() {
                    binary("+", a, b, shape.to_vec())
                } else {
                    let k = self.rng.below(self.program.consts.len());
                    let c = self.program.consts[k].0.clone();
                    let base = template_expr("(sigmoid({}) + 0.5)", a);
                    let p = Expr::float(Kind::Pow(Box::new(base), c), shape.to_vec());
                    binary("*", p, b, shape.to_vec())
                }
            }
        }
    }

    /// Two operands whose broadcast is `shape`: each axis kept by both, or by one side
    /// with 1 (or nothing, if leading) on the other.
    fn broadcast_pair(&mut self, shape: &[Sym], d: usize) -> (Expr, Expr) {
        let mut left = shape.to_vec();
        let mut right = shape.to_vec();
        for k in 0..shape.len() {
            if shape[k] == Sym::One {
                continue;
            }
            match self.rng.below(6) {
                0 => left[k] = Sym::One,
                1 => right[k] = Sym::One,
                _ => {}
            }
        }
        strip_leading_ones(&mut left, &mut self.rng);
        strip_leading_ones(&mut right, &mut self.rng);
        let (a, b) = (self.expr(&left, d), self.expr(&right, d));
        if self.rng.chance(0.5) { (a, b) } else { (b, a) }
    }

    /// A shape that broadcasts to `shape`.
    fn sub_shape(&mut self, shape: &[Sym]) -> Vec<Sym> {
        let mut sub = shape.to_vec();
        for s in sub.iter_mut() {
            if self.rng.chance(0.4) {
                *s = Sym::One;
            }
        }
        strip_leading_ones(&mut sub, &mut self.rng);
        sub
    }

    /// `where(a > b, x, y)` or `(a < b) * x`.
    fn masked(&mut self, shape: &[Sym], d: usize) -> Expr {
        let op = *self.rng.pick(&[">", "<", ">=", "<="]);
        let (ca, cb) = (self.sub_shape(shape), self.sub_shape(shape));
        let cond_shape = broadcast(&ca, &cb);
        let a = self.expr(&ca, d.min(1));
        let b = self.expr(&cb, d.min(1));
        let cond = binary(op, a, b, cond_shape);
        if self.rng.chance(0.6) {
            let x = self.expr(shape, d);
            let other = self.sub_shape(shape);
            let y = self.expr(&other, d);
            call("where", vec![cond, x, y], vec![], shape.to_vec())
        } else {
            let x = self.expr(shape, d);
            binary("*", cond, x, shape.to_vec())
        }
    }

    fn reduction(&mut self) -> &'static str {
        const REDUCTIONS: [&str; 6] = ["sum", "mean", "logsumexp", "max", "min", "var"];
        REDUCTIONS[self.rng.below(REDUCTIONS.len())]
    }

    /// A reduction whose operand has one more axis than `shape`.
    fn reduce_axis(&mut self, shape: &[Sym], d: usize) -> Expr {
        let k = self.rng.below(shape.len() + 1);
        let mut inner = shape.to_vec();
        let dim = self.dim();
        inner.insert(k, dim);
        let f = self.reduction();
        let x = self.expr(&inner, d);
        let x = if f == "max" || f == "min" {
            self.jittered(x)
        } else {
            x
        };
        let rank = inner.len();
        let axis = if self.rng.chance(0.3) {
            format!("{}", k as i64 - rank as i64)
        } else {
            k.to_string()
        };
        call(f, vec![x], vec![("axis", axis)], shape.to_vec())
    }

    /// A reduction whose operand has two more axes than `shape`, reduced together
    /// (`axis = (0, 2)`).
    fn reduce_two_axes(&mut self, shape: &[Sym], d: usize) -> Expr {
        let mut inner = shape.to_vec();
        let first = self.rng.below(inner.len() + 1);
        let dim = self.dim();
        inner.insert(first, dim);
        let second = self.rng.below(inner.len() + 1);
        let dim = self.dim();
        inner.insert(second, dim);
        // `first` moved one on if `second` went in before it.
        let first = if second <= first { first + 1 } else { first };
        let f = self.reduction();
        let x = self.expr(&inner, d);
        let x = if f == "max" || f == "min" {
            self.jittered(x)
        } else {
            x
        };
        let axes = format!("({first}, {second})");
        call(f, vec![x], vec![("axis", axes)], shape.to_vec())
    }

    /// A reduction with `keepdims = true` along an axis where `shape` has a 1.
    fn reduce_keepdims(&mut self, shape: &[Sym], d: usize) -> Expr {
        let ones: Vec<usize> = (0..shape.len()).filter(|&k| shape[k] == Sym::One).collect();
        let k = *self.rng.pick(&ones);
        let mut inner = shape.to_vec();
        inner[k] = self.dim();
        let f = self.reduction();
        let x = self.expr(&inner, d);
        let x = if f == "max" || f == "min" {
            self.jittered(x)
        } else {
            x
        };
        let kwargs = vec![("axis", k.to_string()), ("keepdims", "true".into())];
        call(f, vec![x], kwargs, shape.to_vec())
    }

    /// A scalar: a whole reduction, a dot product, or one of the prelude's losses.
    fn scalar(&mut self, d: usize) -> Expr {
        let batch = vec![Sym::N];
        let scores = vec![Sym::N, *self.rng.pick(&Sym::FIXED)];
        match self.rng.below(9) {
            0 => {
                let f = self.reduction();
                let mut shape = self.shape();
                if shape.is_empty() {
                    shape.push(Sym::N);
                }
                let x = self.expr(&shape, d);
                let x = if f == "max" || f == "min" {
                    self.jittered(x)
                } else {
                    x
                };
                call(f, vec![x], vec![], vec![])
            }
            1 => {
                let k = vec![self.dim()];
                let (a, b) = (self.expr(&k, d), self.expr(&k, d));
                binary("@", a, b, vec![])
            }
            2 | 3 => {
                let f = if self.rng.chance(0.5) {
                    "hinge"
                } else {
                    "logistic"
                };
                let s = self.expr(&batch, d);
                let y = self.leaf(&batch);
                call(f, vec![s, y], vec![], vec![])
            }
            4 | 5 => {
                let s = self.expr(&scores, d);
                let labels = self.index_input(Sym::N);
                call("softmax_cross_entropy", vec![s, labels], vec![], vec![])
            }
            6 => {
                let s = self.expr(&scores, d);
                let labels = self.index_input(Sym::N);
                let kwargs = if self.rng.chance(0.5) {
                    vec![("margin", crate::ast::number(self.rng.constant(0.5, 2.0)))]
                } else {
                    vec![]
                };
                call("multiclass_hinge", vec![s, labels], kwargs, vec![])
            }
            _ => {
                let shape = self.shape();
                let x = self.expr(&shape, d);
                self.scalarise(x)
            }
        }
    }

    /// `a @ b` in the form that gives `shape` (rank 0 to 2), operands sometimes
    /// transposed.
    fn matmul(&mut self, shape: &[Sym], d: usize) -> Expr {
        let k = self.dim();
        let (ls, rs): (Vec<Sym>, Vec<Sym>) = match shape.len() {
            0 => (vec![k], vec![k]),
            1 => {
                if self.rng.chance(0.5) {
                    (vec![shape[0], k], vec![k])
                } else {
                    (vec![k], vec![k, shape[0]])
                }
            }
            _ => (vec![shape[0], k], vec![k, shape[1]]),
        };
        if self.has_fn("layer") && self.rng.chance(0.3) {
            let (a, b) = (self.expr(&ls, d), self.expr(&rs, d));
            return call("layer", vec![a, b], vec![], shape.to_vec());
        }
        let a = self.maybe_transposed(&ls, d);
        let b = self.maybe_transposed(&rs, d);
        binary("@", a, b, shape.to_vec())
    }

    fn maybe_transposed(&mut self, shape: &[Sym], d: usize) -> Expr {
        if shape.len() == 2 && self.rng.chance(0.35) {
            let x = self.expr(&[shape[1], shape[0]], d);
            Expr::float(Kind::Transpose(Box::new(x)), shape.to_vec())
        } else {
            self.expr(shape, d)
        }
    }

    /// `pick(x, labels)` of shape `[X]`, or `[X, 1]` with `keepdims = true`.
    fn pick(&mut self, shape: &[Sym], d: usize) -> Expr {
        let classes = *self.rng.pick(&Sym::FIXED);
        let x = self.expr(&[shape[0], classes], d);
        let labels = self.index_input(shape[0]);
        let kwargs = if shape.len() == 2 {
            vec![("keepdims", "true".into())]
        } else {
            vec![]
        };
        call("pick", vec![x, labels], kwargs, shape.to_vec())
    }

    /// Whether `deep` may give `shape`: the program has it, and `shape` is a vector
    /// or matrix whose last dim is fixed (the stack's matrices are square in it).
    fn deep_fits(&self, shape: &[Sym]) -> bool {
        let last_fixed = shape.last().is_some_and(|s| Sym::FIXED.contains(s));
        self.has_fn("deep") && (1..=2).contains(&shape.len()) && last_fixed
    }

    /// `deep(x, w, n)` of `shape` (whose last dim `s` is fixed): a loop over the
    /// stack `w: [K, s, s]`, `n` the size of `K`.
    fn deep(&mut self, shape: &[Sym], d: usize) -> Expr {
        let s = shape[shape.len() - 1];
        let k = *self.rng.pick(&Sym::FIXED);
        let x = self.expr(shape, d);
        let w = self.expr(&[k, s, s], d);
        let steps = num(self.size_of(k) as f64);
        call("deep", vec![x, w, steps], vec![], shape.to_vec())
    }

    /// A call of one of the program's `fn`s that gives `shape`.
    fn user_fn(&mut self, shape: &[Sym], d: usize) -> Expr {
        let mut choices = vec![];
        if self.has_fn("gate") {
            choices.push("gate");
        }
        if self.has_fn("twice") {
            choices.push("twice");
        }
        if self.has_fn("centred") && !shape.is_empty() {
            choices.push("centred");
        }
        if self.deep_fits(shape) && self.loops.chance(0.5) {
            return self.deep(shape, d);
        }
        if self.has_fn("layer") && shape.len() <= 2 {
            return self.matmul(shape, d);
        }
        if choices.is_empty() {
            return self.unary(shape, d);
        }
        match *self.rng.pick(&choices) {
            "gate" => {
                let (a, b) = self.broadcast_pair(shape, d);
                let kwargs = if self.rng.chance(0.4) {
                    vec![("k", crate::ast::number(self.rng.constant(0.1, 2.0)))]
                } else {
                    vec![]
                };
                call("gate", vec![a, b], kwargs, shape.to_vec())
            }
            f => {
                let x = self.expr(shape, d);
                call(f, vec![x], vec![], shape.to_vec())
            }
        }
    }
}

/// Drops leading 1s of `shape` half the time (numpy broadcasting adds them back).
fn strip_leading_ones(shape: &mut Vec<Sym>, rng: &mut Rng) {
    while shape.first() == Some(&Sym::One) && rng.chance(0.5) {
        shape.remove(0);
    }
}

/// numpy's broadcast of two shapes that broadcast.
fn broadcast(a: &[Sym], b: &[Sym]) -> Vec<Sym> {
    let rank = a.len().max(b.len());
    (0..rank)
        .map(|k| {
            let from_end = rank - k;
            let x = a.len().checked_sub(from_end).map_or(Sym::One, |i| a[i]);
            let y = b.len().checked_sub(from_end).map_or(Sym::One, |i| b[i]);
            if x == Sym::One { y } else { x }
        })
        .collect()
}

fn num(x: f64) -> Expr {
    Expr::float(Kind::Num(x), vec![])
}

fn binary(op: &'static str, a: Expr, b: Expr, shape: Vec<Sym>) -> Expr {
    Expr::float(Kind::Binary(op, Box::new(a), Box::new(b)), shape)
}

fn call(f: &str, args: Vec<Expr>, kwargs: Vec<(&'static str, String)>, shape: Vec<Sym>) -> Expr {
    Expr::float(Kind::Call(f.into(), args, kwargs), shape)
}

/// A unary template (`log(sigmoid({}) + 0.5)`) applied to `x`, as a tree: calls,
/// `+ number`, `^ number` and a leading `-`.
fn template_expr(template: &str, x: Expr) -> Expr {
    let shape = x.shape.clone();
    let t = template.trim();
    if t == "{}" {
        return x;
    }
    if let Some(at) = top_level(t, " ^ ") {
        let base = template_expr(&t[..at], x);
        let k = t[at + 3..].trim().to_string();
        return Expr::float(Kind::Pow(Box::new(base), k), shape);
    }
    if let Some(at) = top_level(t, " + ") {
        let value: f64 = t[at + 3..].trim().parse().unwrap_or(0.5);
        return binary("+", template_expr(&t[..at], x), num(value), shape);
    }
    if let Some(rest) = t.strip_prefix('-') {
        return Expr::float(Kind::Neg(Box::new(template_expr(rest, x))), shape);
    }
    if let Some(inner) = t.strip_prefix('(').and_then(|s| s.strip_suffix(')')) {
        return template_expr(inner, x);
    }
    // `f(inner)`, then numbers (`clip(inner, -0.5, 0.5)`) or `key = value`s
    let (f, args) = t.split_once('(').unwrap_or((t, ")"));
    let args = args.strip_suffix(')').unwrap_or(args);
    let (inner, rest) = match top_level(args, ", ") {
        Some(at) => (&args[..at], &args[at + 2..]),
        None => (args, ""),
    };
    let mut positional = vec![template_expr(inner, x)];
    let mut kwargs = Vec::new();
    for extra in rest.split(", ").filter(|e| !e.is_empty()) {
        match extra.split_once(" = ") {
            Some((k, v)) => {
                let key: &'static str = if k == "alpha" { "alpha" } else { "k" };
                kwargs.push((key, v.to_string()));
            }
            None => positional.push(num(extra.parse().unwrap_or(0.5))),
        }
    }
    call(f, positional, kwargs, shape)
}

/// Where `op` first occurs in `text` outside parentheses.
fn top_level(text: &str, op: &str) -> Option<usize> {
    let mut depth = 0i32;
    for (at, c) in text.char_indices() {
        match c {
            '(' => depth += 1,
            ')' => depth -= 1,
            _ if depth == 0 && text[at..].starts_with(op) => return Some(at),
            _ => {}
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_seed_gives_one_program() {
        for seed in 0..50 {
            assert_eq!(generate(seed).source(), generate(seed).source());
        }
        assert_ne!(generate(1).source(), generate(2).source());
    }

    #[test]
    fn templates_render_as_written() {
        let x = Expr::float(Kind::Var("x".into()), vec![Sym::N]);
        for t in UNARY {
            let e = template_expr(t, x.clone());
            let want = t.replace("{}", "x");
            assert_eq!(e.render(), want, "{t}");
        }
    }

    #[test]
    fn broadcast_follows_numpy() {
        use Sym::*;
        assert_eq!(broadcast(&[N, One], &[A]), vec![N, A]);
        assert_eq!(broadcast(&[], &[A, B]), vec![A, B]);
        assert_eq!(broadcast(&[One, B], &[C, One, One]), vec![C, One, B]);
    }
}
