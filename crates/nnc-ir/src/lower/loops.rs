//! Loops: `let h = for l in 0..L from x { tanh(h @ w[l]) };`, lowered by unrolling.
//!
//! The body is lowered once per step, with the index bound to the step's number (a
//! compile-time integer, so `w[l]` is an ordinary slice of the stack `w`) and the
//! carried name to the value so far. The IR, and so the derivation, the interpreter
//! and generated code, see the steps one after the other, as if written out by hand;
//! the gradient of a stack is the sum of its slices' gradients, each padded into
//! place (the `Slice` rule). Each step's value is named after the carried name and
//! the step (`h_1`, `h_2`, ...; the last is the `let`'s own `h`), so that the
//! derivation and generated code read like the hand-written layers.

use super::{Env, Lowered, Lowerer, Reported, Val};
use crate::model::{LoopInfo, LoopStep};
use crate::op::Op;
use crate::types::{Dim, Type};
use nnc_syntax::ast::{Expr, ExprKind, Let, Loop};
use nnc_syntax::{Diagnostic, Span};

/// The most steps the loops of one model may run in all, nested loops counting the
/// product of their ranges: each step is a copy of the body in the IR.
pub(super) const MAX_LOOP_STEPS: usize = 100_000;

impl Lowerer<'_> {
    /// A loop's value. Never inlined: it is called from the recursion over nested
    /// expressions, whose frames must stay small (see `Lowerer::expr_kind`).
    #[inline(never)]
    pub(super) fn loop_value(&mut self, lp: &Loop, env: &Env) -> Lowered<Val> {
        self.run_loop(lp, env, false).map(|(value, _)| value)
    }

    /// Binds a `let`: its name to its value, and for `let h, hs = for ...` the
    /// steps' stack too, each value named after its name (in a loop's step `step`,
    /// with the step: `z_3`). A value that failed is poisoned, so that its uses are
    /// silent.
    pub(super) fn bind_let(&mut self, l: &Let, env: &mut Env, step: Option<usize>) -> Lowered<()> {
        let lowered = match &l.value.kind {
            ExprKind::Loop(lp) if lp.steps.is_some() => self.run_loop(lp, env, true),
            _ => self.expr(&l.value, env).map(|v| (v, None)),
        };
        let Ok((value, steps)) = lowered else {
            for name in l.names() {
                env.bind(&name.name, Val::Poisoned);
            }
            return Err(Reported);
        };
        let named = self.names_values();
        for (name, v) in l.names().zip([Some(value), steps].into_iter().flatten()) {
            if named {
                let name = match step {
                    Some(count) => format!("{}_{count}", name.name),
                    None => name.name.clone(),
                };
                self.name_value(&v, &name);
            }
            env.bind(&name.name, v);
        }
        Ok(())
    }

    /// Runs the loop's steps; with `keep`, also stacks every step's value.
    fn run_loop(&mut self, lp: &Loop, env: &Env, keep: bool) -> Lowered<(Val, Option<Val>)> {
        let start = self.loop_bound(&lp.start, env)?;
        let end = self.loop_bound(&lp.end, env)?;
        if end < start {
            let at = self.span(lp.start.span.to(lp.end.span));
            self.error(
                Diagnostic::error("the loop's range runs backwards", at)
                    .with_label(format!("{start}..{end}"))
                    .with_note("a range counts up, from its start to just before its end: `0..L`"),
            );
            return Err(Reported);
        }
        self.count_steps(end - start, lp.header)?;
        let mut carried = self.expr(&lp.from, env)?;
        let mut kept = vec![];
        let id = self.model.loops.len() as u32;
        self.model.loops.push(LoopInfo {
            index: lp.index.name.clone(),
            start,
            end,
            header: self.span(lp.header),
        });
        let outer = self.in_step;
        for step in start..end {
            let count = step - start + 1;
            let reported = self.diagnostics.len();
            self.in_step = Some(LoopStep {
                lp: id,
                index: step,
            });
            let next = self.step(lp, step, carried.clone(), env, (count, step + 1 == end));
            self.in_step = outer;
            let Ok(next) = next else {
                self.at_step(reported, lp, step);
                return Err(Reported);
            };
            self.same_carried_type(&carried, &next, lp, step)?;
            if keep {
                kept.push(next.clone());
            }
            carried = next;
        }
        let steps = match keep {
            true => Some(self.stack_steps(&kept, lp)?),
            false => None,
        };
        Ok((carried, steps))
    }

    /// Every step's value stacked along a new first axis, each padded into its row
    /// and summed (as `stack` is: the planner writes each into its rows).
    fn stack_steps(&mut self, kept: &[Val], lp: &Loop) -> Lowered<Val> {
        let at = self.span(lp.steps.as_ref().map_or(lp.header, |s| s.span));
        let fail = |lowerer: &mut Self, message: &str, label: String| {
            lowerer.error(Diagnostic::error(message.to_string(), at).with_label(label));
            Err(Reported)
        };
        let mut pieces = Vec::with_capacity(kept.len());
        for v in kept {
            match v {
                Val::Tensor(n) => pieces.push(*n),
                Val::Poisoned => return Err(Reported),
                _ => {
                    let label = format!("`{}` is a number", lp.carried.name);
                    return fail(self, "only a tensor's steps can be kept", label);
                }
            }
        }
        let Some(&first) = pieces.first() else {
            return fail(
                self,
                "a loop of no steps has no steps to keep",
                "no steps".into(),
            );
        };
        let shape = self.model.shape(first).clone();
        if shape.len() >= 4 {
            let label = format!("its steps would be rank {}", shape.len() + 1);
            return fail(self, "a value has at most 4 axes", label);
        }
        let mut row = vec![Dim::Fixed(1)];
        row.extend(shape.iter().copied());
        let mut rows = Vec::with_capacity(pieces.len());
        for p in pieces {
            let raised = self.intern(Op::Reshape, vec![p], Type::float(row.clone()), lp.header)?;
            rows.push((raised, 1));
        }
        self.joined(&rows, 0, lp.header).map(Val::Tensor)
    }

    /// One step: the body with the index at `step` and the carried name bound to
    /// `carried`. Its values are named for the step (`z_3`, `h_3` for the third
    /// step, `count`), but for the `last` step's value, which takes the `let`'s own
    /// name.
    fn step(
        &mut self,
        lp: &Loop,
        step: usize,
        carried: Val,
        env: &Env,
        (count, last): (usize, bool),
    ) -> Lowered<Val> {
        let mut body = env.clone();
        body.bind(&lp.index.name, Val::Number(step as f64));
        body.bind(&lp.carried.name, carried);
        let next = self.block(&lp.body, &mut body, Some(count))?;
        if self.names_values() && !last {
            self.name_value(&next, &format!("{}_{count}", lp.carried.name));
        }
        Ok(next)
    }

    /// Points the errors reported since `reported` (in one step's body) at the step
    /// they happened in: the body is the same text at every step.
    fn at_step(&mut self, reported: usize, lp: &Loop, step: usize) {
        let header = self.span(lp.header);
        let label = format!("at the step `{} = {step}` of this loop", lp.index.name);
        for d in &mut self.diagnostics[reported..] {
            d.related.push((header, label.clone()));
        }
    }

    /// A bound of a loop's range: a non-negative compile-time integer.
    fn loop_bound(&mut self, e: &Expr, env: &Env) -> Lowered<usize> {
        let at = self.span(e.span);
        let d = match self.expr(e, env)? {
            Val::Number(v) if v.fract() == 0.0 && (0.0..=MAX_LOOP_STEPS as f64).contains(&v) => {
                return Ok(v as usize);
            }
            Val::Number(v) if v.fract() == 0.0 && v < 0.0 => {
                Diagnostic::error(format!("a loop's range starts at 0 or above, not {v}"), at)
                    .with_label("negative")
            }
            Val::Number(v) if v.fract() == 0.0 => {
                Diagnostic::error(format!("a loop of {v} steps is too long"), at)
                    .with_label(format!("at most {MAX_LOOP_STEPS} steps"))
            }
            Val::Number(v) => {
                Diagnostic::error(format!("a loop's range is made of integers, not {v}"), at)
                    .with_label("not an integer")
            }
            Val::Poisoned => return Err(Reported),
            Val::RuntimeDim(d) => {
                let name = self.model.dim_name(d).to_string();
                Diagnostic::error("a loop's range must be known when the model compiles", at)
                    .with_label(format!("`{name}` is a runtime dim"))
                    .with_note(format!(
                        "give it a size, `dim {name} = ...;`, or use a `const`"
                    ))
            }
            _ => Diagnostic::error("a loop's range must be known when the model compiles", at)
                .with_label("not a compile-time integer")
                .with_note("loop over `dim`s with a size, `const`s and integers: `0..L`"),
        };
        self.error(d);
        Err(Reported)
    }

    /// Counts `steps` more steps against [`MAX_LOOP_STEPS`].
    fn count_steps(&mut self, steps: usize, header: Span) -> Lowered<()> {
        self.loop_steps = self.loop_steps.saturating_add(steps);
        if self.loop_steps <= MAX_LOOP_STEPS {
            return Ok(());
        }
        let at = self.span(header);
        self.error(
            Diagnostic::error("the model's loops run too many steps", at)
                .with_label(format!(
                    "more than {MAX_LOOP_STEPS} steps in all (nested loops multiply)"
                ))
                .with_note("each step is a copy of the loop's body in the compiled model"),
        );
        Err(Reported)
    }

    /// The body's value must keep the carried value's kind and shape: it is the
    /// carried value of the next step.
    fn same_carried_type(
        &mut self,
        before: &Val,
        after: &Val,
        lp: &Loop,
        step: usize,
    ) -> Lowered<()> {
        let same = match (before, after) {
            (Val::Tensor(a), Val::Tensor(b)) => self.model.ty(*a) == self.model.ty(*b),
            (Val::Tensor(_), Val::Number(_)) | (Val::Number(_), Val::Tensor(_)) => false,
            _ => true,
        };
        if same {
            return Ok(());
        }
        let describe = |v: &Val| match v {
            Val::Tensor(n) => self.model.type_str(self.model.ty(*n)),
            _ => "a number".to_string(),
        };
        let (was, is) = (describe(before), describe(after));
        let (value, from) = (self.span(lp.body.value.span), self.span(lp.from.span));
        let name = &lp.carried.name;
        self.error(
            Diagnostic::error(format!("the loop changes the shape of `{name}`"), value)
                .with_label(format!("{is} at step {step}"))
                .with_related(from, format!("`{name}` starts as {was}"))
                .with_note(format!(
                    "the body's value is `{name}` at the next step: it keeps `{name}`'s shape"
                )),
        );
        Err(Reported)
    }
}
