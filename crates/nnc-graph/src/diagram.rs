//! From a model and its values to a [`Diagram`]: the gates and the labelled wires of
//! the picture, before any layout.
//!
//! The forward picture draws one gate per operation, or per call of a function (the
//! prelude's `softmax_cross_entropy`, the user's `layer`) unless `expand` opens calls
//! into their operations. Each wire carries the value flowing forward and the
//! gradient of the loss flowing back: where a value has several users, a branch point
//! shows the total arriving and the part each user sent back ("gradients add at
//! branches"). Scalar constants fold into the gate that uses them (`+1`, `1/x`), as
//! the lecture draws them.
//!
//! The backward picture draws the derived backward pass itself (what `nnc grad`
//! prints, simplified): every node a gate with the rule that made it, every wire its
//! value.

use crate::label;
use nnc_autodiff::Wires;
use nnc_ir::interp::{Bindings, Evaluation, Value, evaluate};
use nnc_ir::{Model, NodeId, Op};
use nnc_syntax::Span;
use nnc_syntax::diagnostic::LineIndex;
use std::collections::{BTreeMap, BTreeSet};

/// What a gate stands for (decides its shape and colour).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum GateKind {
    Param,
    Input,
    /// A constant that could not be folded into its user's label.
    Constant,
    /// One primitive operation.
    Operation,
    /// A function call drawn as one gate.
    Function,
    /// Where a value goes to several users.
    Branch,
    /// The loss, an output, or (backward) a gradient.
    Result,
}

/// One box of the picture.
#[derive(Clone, Debug, PartialEq)]
pub struct Gate {
    pub kind: GateKind,
    pub label: String,
    /// A second line: the local gradients of a scalar gate, or (backward) the rule.
    pub detail: Option<String>,
    /// Where it comes from: `gates.nn:12:10: exp(...)`.
    pub tooltip: String,
}

/// One arrow: the value flowing forward and (where the loss depends on it through a
/// parameter) the gradient flowing back.
#[derive(Clone, Debug, PartialEq)]
pub struct Wire {
    pub from: usize,
    pub to: usize,
    pub value: String,
    pub gradient: Option<String>,
}

/// The picture before layout.
#[derive(Clone, Debug, PartialEq, Default)]
pub struct Diagram {
    pub title: String,
    pub gates: Vec<Gate>,
    pub wires: Vec<Wire>,
}

/// Why a picture could not be made.
#[derive(Debug)]
pub enum DiagramError {
    /// The inputs or parameters do not fit the model.
    Run(nnc_ir::interp::RunError),
    /// Differentiation failed (a bug: reported, not panicked on).
    Internal(String),
}

impl std::fmt::Display for DiagramError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DiagramError::Run(e) => write!(f, "{e}"),
            DiagramError::Internal(e) => write!(f, "internal error: {e}"),
        }
    }
}

impl std::error::Error for DiagramError {}

/// Where tooltips point: the source's name and text.
pub struct Source<'a> {
    file: &'a str,
    text: &'a str,
    lines: LineIndex<'a>,
}

impl<'a> Source<'a> {
    /// The file's name as tooltips show it, and its text.
    pub fn new(file: &'a str, text: &'a str) -> Source<'a> {
        Source {
            file,
            text,
            lines: LineIndex::new(text),
        }
    }

    /// `gates.nn:6:11: x` (the source text, on one line and cut short).
    fn tooltip(&self, span: Span) -> String {
        let text = self.text.get(span.start..span.end).unwrap_or("");
        self.located(span, text)
    }

    /// `gates.nn:10:15: q = x + y`: a node's place and what it computes, written
    /// out (the span of an operation is its operator, which says little alone).
    fn at(&self, model: &Model, n: NodeId) -> String {
        let expression = label::expression(model, n);
        let text = match &model.node(n).name {
            Some(name) => format!("{name} = {expression}"),
            None => expression,
        };
        self.located(model.node(n).span, &text)
    }

    /// A result's tooltip: `d_x = z` where the gradient of `x` is the value of `z`.
    fn result(&self, model: &Model, n: NodeId, name: &str) -> String {
        let expression = label::expression(model, n);
        self.located(model.node(n).span, &format!("{name} = {expression}"))
    }

    fn located(&self, span: Span, text: &str) -> String {
        let (line, col) = self.lines.line_col(span.start);
        let words: Vec<&str> = text.split_whitespace().collect();
        let text = words.join(" ");
        let text = if text.chars().count() > 80 {
            format!("{}…", text.chars().take(79).collect::<String>())
        } else {
            text
        };
        format!("{}:{line}:{col}: {text}", self.file)
    }
}

/// The forward picture of `model` at `bindings`.
pub fn forward(
    model: &Model,
    bindings: &Bindings<f64>,
    source: &Source<'_>,
    expand: bool,
) -> Result<Diagram, DiagramError> {
    let mut with_backward = model.clone();
    let wires = nnc_autodiff::differentiate_wires(&mut with_backward)
        .map_err(|e| DiagramError::Internal(e.0))?;
    let eval = evaluate(&with_backward, bindings).map_err(DiagramError::Run)?;
    let mut sent: BTreeMap<(NodeId, usize), Vec<NodeId>> = BTreeMap::new();
    for &(user, position, g) in &wires.contributions {
        sent.entry((user, position)).or_default().push(g);
    }
    let mut drawing = Forward {
        model,
        eval: &eval,
        wires: &wires,
        sent,
        source,
        diagram: Diagram {
            title: format!("model {}", model.name),
            ..Diagram::default()
        },
        gate_of_group: BTreeMap::new(),
    };
    drawing.draw(expand);
    Ok(drawing.diagram)
}

/// Which gate a node is drawn in: its own, or its function call's.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Group {
    Node(NodeId),
    Call(u32),
}

struct Forward<'a> {
    model: &'a Model,
    eval: &'a Evaluation<f64>,
    wires: &'a Wires,
    /// The backward pass's contributions by (user, operand position).
    sent: BTreeMap<(NodeId, usize), Vec<NodeId>>,
    source: &'a Source<'a>,
    diagram: Diagram,
    gate_of_group: BTreeMap<Group, usize>,
}

impl Forward<'_> {
    fn draw(&mut self, expand: bool) {
        let model = self.model;
        let live = live_forward(model);
        let group = |n: NodeId| match &model.node(n).call {
            Some(call) if !expand && !is_leaf(&model.node(n).op) => Group::Call(call.id),
            _ => Group::Node(n),
        };
        // Uses of each value by other gates: (user gate's group, user node, position).
        let mut uses: BTreeMap<NodeId, Vec<(Group, NodeId, usize)>> = BTreeMap::new();
        for (i, node) in model.nodes.iter().enumerate() {
            let user = NodeId(i as u32);
            if !live[i] {
                continue;
            }
            for (position, &arg) in node.args.iter().enumerate() {
                let folded = folded_operand(self.model, user).map(|(p, _)| p) == Some(position)
                    || (self.is_foldable(arg) && matches!(group(user), Group::Call(_)));
                if group(arg) != group(user) && !folded {
                    uses.entry(arg)
                        .or_default()
                        .push((group(user), user, position));
                }
            }
        }
        let is_result = |n: NodeId| n == model.loss || model.outputs.iter().any(|(_, o)| *o == n);
        for (i, node) in model.nodes.iter().enumerate() {
            let n = NodeId(i as u32);
            if !live[i] || (self.is_foldable(n) && !uses.contains_key(&n) && !is_result(n)) {
                continue;
            }
            if !self.gate_of_group.contains_key(&group(n)) {
                let gate = self.gate(n, node, group(n));
                let index = self.add_gate(gate);
                self.gate_of_group.insert(group(n), index);
            }
        }
        // The sinks: the loss (its gradient the seed, 1), then each output (which
        // sends no gradient back).
        let mut results: Vec<(NodeId, String, String)> = vec![(
            model.loss,
            "loss".to_string(),
            self.source.result(model, model.loss, "loss"),
        )];
        for (name, n) in &model.outputs {
            if *n != model.loss {
                results.push((*n, name.clone(), self.source.result(model, *n, name)));
            }
        }
        for (value, users) in &uses {
            let from = self.gate_of_group[&group(*value)];
            // By user gate: what all of its uses of the value sent back, summed.
            let mut targets: BTreeMap<usize, Option<ndarray::ArrayD<f64>>> = BTreeMap::new();
            for (user_group, user, position) in users {
                let to = self.gate_of_group[user_group];
                let part = self.contribution(*user, *position);
                let sum = targets.entry(to).or_default();
                *sum = add(sum.take(), part);
            }
            let mut targets: Vec<(usize, Option<String>)> = targets
                .into_iter()
                .map(|(to, g)| (to, g.map(|g| gradient_text(&g))))
                .collect();
            for (n, name, tooltip) in results.iter().filter(|r| r.0 == *value) {
                let sink = self.add_gate(Gate {
                    kind: GateKind::Result,
                    label: name.clone(),
                    detail: None,
                    tooltip: tooltip.clone(),
                });
                let gradient = if *n == model.loss {
                    self.total(*n)
                } else {
                    None
                };
                targets.push((sink, gradient));
            }
            self.connect(from, *value, targets);
        }
        // A loss or output that no other gate reads.
        for (n, name, tooltip) in results {
            if uses.contains_key(&n) {
                continue;
            }
            let from = self.gate_of_group[&group(n)];
            let sink = self.add_gate(Gate {
                kind: GateKind::Result,
                label: name,
                detail: None,
                tooltip,
            });
            let gradient = if n == model.loss { self.total(n) } else { None };
            self.connect(from, n, vec![(sink, gradient)]);
        }
        let drawn: BTreeSet<(NodeId, usize)> = uses
            .values()
            .flatten()
            .filter(|(user_group, user, _)| *user_group == Group::Node(*user))
            .map(|(_, user, position)| (*user, *position))
            .collect();
        self.local_gradients(&drawn);
    }

    /// Wires from gate `from` (value `value`) to each target with its gradient; through
    /// a branch point when there are several.
    fn connect(&mut self, from: usize, value: NodeId, targets: Vec<(usize, Option<String>)>) {
        let text = self.value(value);
        if let [(to, gradient)] = targets.as_slice() {
            self.diagram.wires.push(Wire {
                from,
                to: *to,
                value: text,
                gradient: gradient.clone(),
            });
            return;
        }
        let branch = self.add_gate(Gate {
            kind: GateKind::Branch,
            label: String::new(),
            detail: None,
            tooltip: "a branch: the gradients coming back add up".to_string(),
        });
        self.diagram.wires.push(Wire {
            from,
            to: branch,
            value: text.clone(),
            gradient: self.total(value),
        });
        for (to, gradient) in targets {
            self.diagram.wires.push(Wire {
                from: branch,
                to,
                value: text.clone(),
                gradient,
            });
        }
    }

    /// The local gradients of scalar one-node gates, as a second line: what each input's
    /// gradient is, divided by the output's ("mul swaps": `local -4, 3` on `-2 * 3`...).
    /// `drawn`: the operands (user, position) of one-node gates that have a wire.
    fn local_gradients(&mut self, drawn: &BTreeSet<(NodeId, usize)>) {
        for (g, &gate) in &self.gate_of_group {
            let Group::Node(n) = *g else { continue };
            let node = self.model.node(n);
            if is_leaf(&node.op) || !node.ty.shape.is_empty() {
                continue;
            }
            let Some(out) = self.scalar(self.wires.total.get(n.index()).copied().flatten()) else {
                continue;
            };
            if out == 0.0 {
                continue;
            }
            let mut locals = Vec::new();
            for position in 0..node.args.len() {
                if !drawn.contains(&(n, position)) {
                    continue;
                }
                let part = self.contribution(n, position);
                match part
                    .filter(|p| p.len() == 1)
                    .and_then(|p| p.iter().next().copied())
                {
                    Some(v) => locals.push(label::number(v / out)),
                    None => {
                        locals.clear();
                        break;
                    }
                }
            }
            if !locals.is_empty() {
                self.diagram.gates[gate].detail = Some(format!("local {}", locals.join(", ")));
            }
        }
    }

    fn add_gate(&mut self, gate: Gate) -> usize {
        self.diagram.gates.push(gate);
        self.diagram.gates.len() - 1
    }

    /// The gate a node (or, for a function call, its group) is drawn as.
    fn gate(&self, n: NodeId, node: &nnc_ir::Node, group: Group) -> Gate {
        let model = self.model;
        if let (Group::Call(_), Some(call)) = (group, &node.call) {
            return Gate {
                kind: GateKind::Function,
                label: call.function.clone(),
                detail: None,
                tooltip: self.source.tooltip(call.span),
            };
        }
        if let Some(gate) = leaf_gate(model, &node.op, self.source) {
            return gate;
        }
        match node.op {
            Op::Const(_) | Op::DimSize(_) => Gate {
                kind: GateKind::Constant,
                label: label::folded_constant(model, n).unwrap_or_else(|| self.value(n)),
                detail: None,
                tooltip: self.source.tooltip(node.span),
            },
            ref op => operation_gate(model, n, op, self.source),
        }
    }

    fn is_foldable(&self, n: NodeId) -> bool {
        label::folded_constant(self.model, n).is_some()
    }

    fn value(&self, n: NodeId) -> String {
        self.eval.value(n).map(label::value).unwrap_or_default()
    }

    fn total(&self, n: NodeId) -> Option<String> {
        let g = self.wires.total.get(n.index()).copied().flatten()?;
        self.floats(g).map(gradient_text)
    }

    /// What `user` sent back to its operand at `position`.
    fn contribution(&self, user: NodeId, position: usize) -> Option<ndarray::ArrayD<f64>> {
        self.sent
            .get(&(user, position))?
            .iter()
            .fold(None, |sum, g| add(sum, self.floats(*g).cloned()))
    }

    fn floats(&self, n: NodeId) -> Option<&ndarray::ArrayD<f64>> {
        self.eval.value(n).and_then(Value::as_float)
    }

    fn scalar(&self, n: Option<NodeId>) -> Option<f64> {
        self.floats(n?)
            .filter(|a| a.len() == 1)
            .and_then(|a| a.iter().next().copied())
    }
}

/// A gradient under its value: summarised without the shape the value shows.
fn gradient_text(g: &ndarray::ArrayD<f64>) -> String {
    label::floats(g.shape(), g.iter().copied(), false)
}

/// The sum of two optional gradients (absent counts as zero).
fn add(
    a: Option<ndarray::ArrayD<f64>>,
    b: Option<ndarray::ArrayD<f64>>,
) -> Option<ndarray::ArrayD<f64>> {
    match (a, b) {
        (Some(a), Some(b)) if a.shape() == b.shape() => Some(a + b),
        (Some(a), _) => Some(a),
        (None, b) => b,
    }
}

/// The gate of a parameter or an input: its name, its declaration as the tooltip.
fn leaf_gate(model: &Model, op: &Op, source: &Source<'_>) -> Option<Gate> {
    let (kind, name, span) = match *op {
        Op::Param(p) => {
            let info = &model.params[p.0 as usize];
            (GateKind::Param, &info.name, info.span)
        }
        Op::Input(x) => {
            let info = &model.inputs[x.0 as usize];
            (GateKind::Input, &info.name, info.span)
        }
        _ => return None,
    };
    Some(Gate {
        kind,
        label: name.clone(),
        detail: None,
        tooltip: source.tooltip(span),
    })
}

/// The gate of operation `n`, with a scalar constant operand folded into its label.
fn operation_gate(model: &Model, n: NodeId, op: &Op, source: &Source<'_>) -> Gate {
    let folded = folded_operand(model, n);
    Gate {
        kind: GateKind::Operation,
        label: label::gate(op, folded.as_ref().map(|(p, c)| (*p, c.as_str()))),
        detail: None,
        tooltip: source.at(model, n),
    }
}

fn is_leaf(op: &Op) -> bool {
    matches!(
        op,
        Op::Input(_) | Op::Param(_) | Op::Const(_) | Op::DimSize(_)
    )
}

/// The forward nodes the loss and the outputs need.
fn live_forward(model: &Model) -> Vec<bool> {
    let mut forward = model.clone();
    forward.grads.clear();
    forward.live_nodes()
}

/// The backward picture: the derived, simplified backward pass of `model` at
/// `bindings`, every node a gate labelled with its rule.
pub fn backward(
    model: &Model,
    bindings: &Bindings<f64>,
    source: &Source<'_>,
) -> Result<Diagram, DiagramError> {
    let derived = nnc_autodiff::with_gradients(model).map_err(|e| DiagramError::Internal(e.0))?;
    let eval = evaluate(&derived, bindings).map_err(DiagramError::Run)?;
    let live = derived.live_nodes();
    let mut diagram = Diagram {
        title: format!("model {}: the backward pass", model.name),
        ..Diagram::default()
    };
    let value = |n: NodeId| eval.value(n).map(label::value).unwrap_or_default();
    let mut gate_of: BTreeMap<NodeId, usize> = BTreeMap::new();
    for (i, node) in derived.nodes.iter().enumerate() {
        let n = NodeId(i as u32);
        if !live[i] || (label::folded_constant(&derived, n).is_some()) {
            continue;
        }
        let gate = leaf_gate(&derived, &node.op, source).unwrap_or_else(|| match node.op {
            Op::Const(_) | Op::DimSize(_) => Gate {
                kind: GateKind::Constant,
                label: value(n),
                detail: None,
                tooltip: source.tooltip(node.span),
            },
            ref op => operation_gate(&derived, n, op, source),
        });
        diagram.gates.push(Gate {
            detail: node.rule.map(str::to_string),
            ..gate
        });
        gate_of.insert(n, diagram.gates.len() - 1);
        let to = diagram.gates.len() - 1;
        for (position, arg) in node.args.iter().enumerate() {
            if folded_operand(&derived, n).map(|(p, _)| p) == Some(position) {
                continue;
            }
            let from = match gate_of.get(arg) {
                Some(&from) => from,
                // A constant its user does not fold: a gate of its own, here.
                None => {
                    diagram.gates.push(Gate {
                        kind: GateKind::Constant,
                        label: value(*arg),
                        detail: None,
                        tooltip: source.tooltip(derived.node(*arg).span),
                    });
                    gate_of.insert(*arg, diagram.gates.len() - 1);
                    diagram.gates.len() - 1
                }
            };
            diagram.wires.push(Wire {
                from,
                to,
                value: value(*arg),
                gradient: None,
            });
        }
    }
    let results = std::iter::once(("loss".to_string(), derived.loss))
        .chain(derived.outputs.iter().cloned())
        .chain(
            derived
                .grads
                .iter()
                .map(|(of, g)| (format!("d_{}", derived.grad_name(*of)), *g)),
        );
    for (name, n) in results {
        let Some(&from) = gate_of.get(&n) else {
            continue;
        };
        diagram.gates.push(Gate {
            kind: GateKind::Result,
            tooltip: source.result(&derived, n, &name),
            label: name,
            detail: None,
        });
        diagram.wires.push(Wire {
            from,
            to: diagram.gates.len() - 1,
            value: value(n),
            gradient: None,
        });
    }
    Ok(diagram)
}

/// The scalar constant operand a binary op shows in its label (`+1`, `1/x`), with
/// its position: only where there is exactly one.
fn folded_operand(model: &Model, n: NodeId) -> Option<(usize, String)> {
    let node = model.node(n);
    if !matches!(node.op, Op::Binary(_)) {
        return None;
    }
    let constants: Vec<(usize, String)> = node
        .args
        .iter()
        .enumerate()
        .filter_map(|(p, a)| label::folded_constant(model, *a).map(|c| (p, c)))
        .collect();
    match constants.as_slice() {
        [one] => Some(one.clone()),
        _ => None,
    }
}
