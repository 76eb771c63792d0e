//! Train and eval modes: `state` declarations, `dropout` and `batch_norm`.
//!
//! Each is lowered to primitives and to leaves the caller binds like inputs
//! ([`InputKind`]), so autodiff, the simplifier, the interpreter and the gradient
//! check need nothing of their own:
//!
//! - `state mu: [D] = zeros;` is an [`InputKind::State`] input: never differentiated,
//!   read in both modes; the training step writes [`Model::state_updates`] into it.
//! - `dropout(x, p)` is `x * mask` in training, `mask` an [`InputKind::Mask`] input
//!   drawn for each step (held fixed by the gradient check), and `x` in eval mode.
//! - `batch_norm(x, gamma, beta, mu, var)` normalises with the batch's statistics
//!   over axis 0 in training, and records `mu <- momentum * mu + (1 - momentum) *
//!   mean` (the same for `var`, with the biased batch variance); in eval mode it
//!   normalises with `mu` and `var`.
//!
//! [`Mode::Switched`] keeps both in one graph for code generation: the mask stays
//! (all ones in eval mode) and `batch_norm` selects its statistics with `where` on
//! an [`InputKind::Training`] scalar.

use super::{BuiltinCall, Env, Lowered, Lowerer, Reported, Val};
use crate::model::{Init, InputInfo, InputKind, Mode, NodeId};
use crate::op::{BinaryOp, InputId, Op, UnaryOp};
use crate::types::{Dim, Elem, Type};
use nnc_syntax::ast;
use nnc_syntax::{Diagnostic, Span};

/// `batch_norm`'s defaults: `running = momentum * running + (1 - momentum) * batch`,
/// and the `eps` added to the variance under the square root.
pub const BATCH_NORM_MOMENTUM: f64 = 0.9;
pub const BATCH_NORM_EPS: f64 = 1e-5;

/// The most dropout masks a model may draw (calls of `dropout`, counting each loop
/// step and each call of a function that drops). A function that drops is lowered
/// again at each call, so a chain of calls that doubles at each level draws
/// exponentially many; this bounds it (and the time it takes to find out).
pub const MAX_MASKS: usize = 10_000;

impl Lowerer<'_> {
    /// `state mu: [D] = zeros;`: a float input of kind [`InputKind::State`], fixed
    /// shape, starting at a fixed value.
    pub(super) fn state(&mut self, decl: &ast::ParamDecl, env: &mut Env) {
        let name = &decl.name.name;
        let shape = self.shape(&decl.shape, env);
        let sized = self.declared_size(name, "state", &shape, decl.shape.span);
        if let Some(Dim::Var(d)) = shape.iter().find(|d| matches!(d, Dim::Var(_))) {
            let dim = self.model.dim_name(*d).to_string();
            self.error(
                Diagnostic::error(
                    format!("state `{name}` has a runtime dim `{dim}`"),
                    decl.shape.span,
                )
                .with_label("a state's shape must be fixed at compile time")
                .with_note("a state outlives the batch: running statistics are per feature, `[D]`"),
            );
        }
        let init = self.state_init(decl.init.as_ref());
        let ty = Type::float(shape);
        let id = self.push_input(name, &ty, decl.name.span, InputKind::State(init));
        let v = self.leaf(Op::Input(id), ty, sized, &decl.name);
        env.bind(name, v);
    }

    /// A state's initialiser: `zeros` (the default), `ones` or a number. A random
    /// initialiser is an error: a state is a statistic, not a weight to break
    /// symmetry in.
    fn state_init(&mut self, init: Option<&ast::Init>) -> Init {
        match init {
            None => Init::Zeros,
            Some(ast::Init::Constant(n)) => Init::Constant(n.value),
            Some(ast::Init::Named(ident)) if ident.name == "ones" => Init::Ones,
            Some(ast::Init::Named(ident)) if ident.name == "zeros" => Init::Zeros,
            Some(other) => {
                self.error(
                    Diagnostic::error("a `state` starts at a fixed value", other.span())
                        .with_label("not `zeros`, `ones` or a number")
                        .with_note(
                            "a state holds running statistics, which start at `zeros` (a mean) \
                             or `ones` (a variance); random initialisers are for `param`s",
                        ),
                );
                Init::Zeros
            }
        }
    }

    /// A leaf the modes add (a mask, the mode), named `base` or, if a declaration
    /// already has that name, `base_`, `base__`, ...
    fn mode_leaf(&mut self, base: &str, shape: Vec<Dim>, kind: InputKind, span: Span) -> NodeId {
        let mut name = base.to_string();
        // Masks are numbered apart; only the declarations can take their names.
        let taken = |m: &crate::Model, n: &str| {
            let mut declared = m
                .inputs
                .iter()
                .filter(|i| !matches!(i.kind, InputKind::Mask { .. }));
            declared.any(|i| i.name == n) || m.params.iter().any(|p| p.name == n)
        };
        while taken(&self.model, &name) {
            name.push('_');
        }
        let ty = Type::float(shape);
        let id = self.push_input(&name, &ty, span, kind);
        let node = self.model.push_typed(Op::Input(id), vec![], ty, span);
        self.model.nodes[node.index()].name = Some(name);
        node
    }

    /// A new input of the model the modes add (not the caller's data: no gradient).
    fn push_input(&mut self, name: &str, ty: &Type, span: Span, kind: InputKind) -> InputId {
        let id = InputId(self.model.inputs.len() as u32);
        self.model.inputs.push(InputInfo {
            name: name.to_string(),
            ty: ty.clone(),
            grad: false,
            span,
            kind,
        });
        id
    }

    /// The mode as a scalar (1 in training, 0 in eval): one leaf per model.
    fn training_flag(&mut self, span: Span) -> NodeId {
        if let Some(t) = self.training {
            return t;
        }
        let t = self.mode_leaf("training", vec![], InputKind::Training, span);
        self.training = Some(t);
        t
    }
}

impl BuiltinCall<'_, '_> {
    /// `dropout(x, p)`: `x * mask` in training, `x` in eval mode (and when `p` is 0).
    pub(super) fn dropout(&mut self) -> Lowered<NodeId> {
        let x = self.next()?;
        let p = self.probability()?;
        self.unused_keywords()?;
        let lowerer = &mut *self.lowerer;
        if lowerer.model.ty(x).elem != Elem::Float {
            return Err(self.fail("`dropout` needs a float tensor, not class indices".into()));
        }
        if p == 0.0 || lowerer.mode == Mode::Eval {
            return Ok(x);
        }
        let span = lowerer.span(self.span);
        if lowerer.masks >= MAX_MASKS {
            return Err(self.fail(format!(
                "more than {MAX_MASKS} dropout masks: each call of `dropout` (in each loop step and each call of the function it is in) draws one"
            )));
        }
        lowerer.masks += 1;
        let count = lowerer.masks - 1;
        let shape = lowerer.model.shape(x).clone();
        let kind = InputKind::Mask { keep: 1.0 - p };
        let mask = lowerer.mode_leaf(&format!("mask{}", count + 1), shape, kind, span);
        lowerer.push(Op::Binary(BinaryOp::Mul), vec![x, mask], span)
    }

    /// `dropout`'s `p`: a compile-time number in [0, 1).
    fn probability(&mut self) -> Lowered<f64> {
        let (v, s) = match self.positional.next() {
            Some(given) => given,
            None => return Err(self.fail("`dropout` is missing its probability `p`".into())),
        };
        let (message, label) = match v {
            Val::Number(p) if (0.0..1.0).contains(&p) => return Ok(p),
            Val::Poisoned => return Err(Reported),
            Val::Number(p) => (
                format!("`dropout`'s `p` must be in [0, 1), got {p}"),
                "the probability of dropping an element",
            ),
            _ => (
                "`dropout`'s `p` must be a compile-time number".to_string(),
                "not known when the model compiles",
            ),
        };
        let at = self.lowerer.span(s);
        self.lowerer.error(
            Diagnostic::error(message, at)
                .with_label(label)
                .with_note("a number or a `const` from 0 (keep everything) up to, not including, 1: `dropout(h, 0.5)`"),
        );
        Err(Reported)
    }

    /// `batch_norm(x, gamma, beta, running_mean, running_var, momentum = 0.9,
    /// eps = 1e-5)`, over axis 0.
    pub(super) fn batch_norm(&mut self) -> Lowered<NodeId> {
        let x = self.next()?;
        let gamma = self.next()?;
        let beta = self.next()?;
        let (mean_state, running_mean, mean_at) = self.state_arg("running_mean")?;
        let (var_state, running_var, var_at) = self.state_arg("running_var")?;
        let momentum =
            self.number_keyword("momentum", BATCH_NORM_MOMENTUM, |m| (0.0..1.0).contains(&m))?;
        let eps = self.number_keyword("eps", BATCH_NORM_EPS, |e| e > 0.0 && e.is_finite())?;
        self.unused_keywords()?;
        let shape = self.lowerer.model.shape(x).clone();
        for (state, at) in [(running_mean, mean_at), (running_var, var_at)] {
            let state_shape = self.lowerer.model.shape(state).clone();
            if shape.is_empty() || state_shape[..] != shape[1..] {
                let m = &self.lowerer.model;
                let x_shape = m.shape_str(&shape);
                let wanted = m.shape_str(shape.get(1..).unwrap_or(&[]));
                let got = m.shape_str(&state_shape);
                let at = self.lowerer.span(at);
                self.lowerer.error(
                    Diagnostic::error(
                        format!(
                            "`batch_norm` of a {x_shape} value needs running statistics of shape {wanted}"
                        ),
                        at,
                    )
                    .with_label(format!("this state is {got}"))
                    .with_note(
                        "batch norm normalises over axis 0: one statistic per position of the other axes",
                    ),
                );
                return Err(Reported);
            }
        }
        let span = self.lowerer.span(self.span);
        let mode = self.lowerer.mode;
        let (mean, var) = if mode == Mode::Eval {
            (running_mean, running_var)
        } else {
            let batch_mean = self.mean(x, Some(vec![0]), true)?;
            let centred = self.sub(x, batch_mean)?;
            let square = self.lowerer.push(Op::Powf(2.0), vec![centred], span)?;
            let batch_var = self.mean(square, Some(vec![0]), true)?;
            // Named after the running statistics they feed: `mu_batch`, `var_batch`.
            for (state, value) in [(mean_state, batch_mean), (var_state, batch_var)] {
                let name = format!("{}_batch", self.lowerer.model.inputs[state.0 as usize].name);
                self.lowerer.name_value(&Val::Tensor(value), &name);
            }
            self.update(mean_state, running_mean, batch_mean, momentum, mean_at)?;
            self.update(var_state, running_var, batch_var, momentum, var_at)?;
            if mode == Mode::Train {
                (batch_mean, batch_var)
            } else {
                let training = self.lowerer.training_flag(span);
                (
                    self.lowerer.push(
                        Op::Select,
                        vec![training, batch_mean, running_mean],
                        span,
                    )?,
                    self.lowerer
                        .push(Op::Select, vec![training, batch_var, running_var], span)?,
                )
            }
        };
        let centred = self.sub(x, mean)?;
        let eps = self.lowerer.tensor(Val::Number(eps), span)?;
        let shifted = self.binary(BinaryOp::Add, var, eps)?;
        let scale = self
            .lowerer
            .push(Op::Unary(UnaryOp::Sqrt), vec![shifted], span)?;
        let normalised = self.binary(BinaryOp::Div, centred, scale)?;
        let scaled = self.binary(BinaryOp::Mul, gamma, normalised)?;
        self.binary(BinaryOp::Add, scaled, beta)
    }

    fn sub(&mut self, a: NodeId, b: NodeId) -> Lowered<NodeId> {
        self.binary(BinaryOp::Sub, a, b)
    }

    fn binary(&mut self, op: BinaryOp, a: NodeId, b: NodeId) -> Lowered<NodeId> {
        let span = self.lowerer.span(self.span);
        self.lowerer.push(Op::Binary(op), vec![a, b], span)
    }

    /// Records `state <- momentum * state + (1 - momentum) * batch` (the batch
    /// statistic reshaped to the state's shape), once per state.
    fn update(
        &mut self,
        state: InputId,
        running: NodeId,
        batch: NodeId,
        momentum: f64,
        at: Span,
    ) -> Lowered<()> {
        if self
            .lowerer
            .model
            .state_updates
            .iter()
            .any(|(s, _)| *s == state)
        {
            let name = self.lowerer.model.inputs[state.0 as usize].name.clone();
            let at = self.lowerer.span(at);
            self.lowerer.error(
                Diagnostic::error(
                    format!("state `{name}` is updated by two `batch_norm`s"),
                    at,
                )
                .with_label("an earlier `batch_norm` (or loop step) updates it already")
                .with_note(
                    "each running statistic belongs to one `batch_norm`: declare a state for each",
                ),
            );
            return Err(Reported);
        }
        let span = self.lowerer.span(self.span);
        let shape = self.lowerer.model.shape(running).clone();
        let batch = self.lowerer.model.reshape(batch, shape, span);
        let keep = self.lowerer.tensor(Val::Number(momentum), span)?;
        // `1 - 0.9` is 0.09999999999999998 in binary: rounded to 15 decimals it is
        // the 0.1 the user means (and prints as such).
        let take = ((1.0 - momentum) * 1e15).round() / 1e15;
        let take = self.lowerer.tensor(Val::Number(take), span)?;
        let old = self.binary(BinaryOp::Mul, keep, running)?;
        let new = self.binary(BinaryOp::Mul, take, batch)?;
        let updated = self.binary(BinaryOp::Add, old, new)?;
        let name = format!("{}_new", self.lowerer.model.inputs[state.0 as usize].name);
        self.lowerer.name_value(&Val::Tensor(updated), &name);
        self.lowerer.model.state_updates.push((state, updated));
        Ok(())
    }

    /// The next positional argument, which must be a `state`: its id and node.
    fn state_arg(&mut self, what: &str) -> Lowered<(InputId, NodeId, Span)> {
        let Some((v, s)) = self.positional.next() else {
            let name = self.name;
            return Err(self.fail(format!("`{name}` is missing its `{what}`")));
        };
        let node = self.lowerer.tensor(v, s)?;
        let model = &self.lowerer.model;
        let found = match model.node(node).op {
            Op::Input(i) => match model.inputs[i.0 as usize].kind {
                InputKind::State(_) => return Ok((i, node, s)),
                _ => format!("`{}` is an input", model.inputs[i.0 as usize].name),
            },
            Op::Param(p) => format!(
                "`{}` is a param: trained by gradient descent, never written by the step",
                model.params[p.0 as usize].name
            ),
            _ => "a value computed here".to_string(),
        };
        let at = self.lowerer.span(s);
        let name = self.name;
        self.lowerer.error(
            Diagnostic::error(format!("`{name}`'s `{what}` must be a `state`"), at)
                .with_label(found)
                .with_note(
                    "declare it `state mu: [D] = zeros;` (`ones` for a variance): the training \
                     step updates it in place, eval mode reads it",
                ),
        );
        Err(Reported)
    }

    /// A number keyword with a default, which `valid` must accept.
    fn number_keyword(
        &mut self,
        key: &str,
        default: f64,
        valid: impl Fn(f64) -> bool,
    ) -> Lowered<f64> {
        let (v, s) = match self.take(key) {
            None => return Ok(default),
            Some(given) => given,
        };
        let name = self.name;
        let (message, label) = match v {
            Val::Number(x) if valid(x) => return Ok(x),
            Val::Poisoned => return Err(Reported),
            Val::Number(x) => (
                format!("`{name}`'s `{key}` is out of range"),
                format!("{x} is out of range"),
            ),
            _ => (
                format!("`{name}`'s `{key}` must be a compile-time number"),
                "not known when the model compiles".to_string(),
            ),
        };
        let note = match key {
            "momentum" => {
                "`momentum` is in [0, 1): running = momentum * running + (1 - momentum) * batch"
            }
            _ => "`eps` is a positive number added to the variance",
        };
        let at = self.lowerer.span(s);
        self.lowerer.error(
            Diagnostic::error(message, at)
                .with_label(label)
                .with_note(note),
        );
        Err(Reported)
    }
}
