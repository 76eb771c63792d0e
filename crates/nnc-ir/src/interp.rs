//! The reference interpreter: evaluates a [`Model`] node by node over ndarray.
//!
//! This is the oracle that generated code and derived gradients are tested against,
//! so it is written to be obviously correct rather than fast: every node gets its own
//! freshly allocated array, elementwise ops broadcast their operands to the node's
//! shape with ndarray's `broadcast`, and every value is checked against the type
//! shape inference gave its node. The scalar functions are the IR's own
//! ([`UnaryOp::eval`](crate::UnaryOp::eval), [`BinaryOp::eval`](crate::BinaryOp::eval),
//! [`CmpOp::holds`](crate::CmpOp::holds)), shared with constant folding.
//!
//! It is generic over the float type ([`Scalar`]: `f32` and `f64`); the caller picks
//! it, usually from [`Model::dtype`].
//!
//! Errors are values ([`RunError`]): inputs of the wrong rank, size or element kind,
//! runtime dims that disagree between inputs, parameters of the wrong shape and class
//! indices out of range are reported, naming the array, the dim and both sizes.
//! Nothing a caller passes in makes it panic.
//!
//! ```
//! use nnc_ir::interp::{evaluate, Bindings, Value};
//! use ndarray::{arr0, ArrayD};
//!
//! let src = "model m { dtype f64; dim N; input x: [N]; param w: [] = 2; loss sum(w * x); }";
//! let model = &nnc_ir::compile_source(src).unwrap()[0];
//! let x = ArrayD::from_shape_vec(vec![3], vec![1.0, 2.0, 3.0]).unwrap();
//! let bindings = Bindings { inputs: vec![Value::Float(x)], params: vec![arr0(2.0).into_dyn()] };
//! let eval = evaluate(model, &bindings).unwrap();
//! assert_eq!(eval.loss(), 12.0);
//! ```

use crate::model::{GradOf, Model, Node, NodeId};
use crate::op::{InputId, Op, ReduceOp};
use crate::types::{Dim, Elem, Shape};
use ndarray::{ArrayD, ArrayView1, ArrayView2, ArrayViewD, Axis, Dimension, Ix1, Ix2, IxDyn, Zip};
use std::fmt;

/// The float types the interpreter computes in.
pub trait Scalar:
    num_traits::Float
    + num_traits::FromPrimitive
    + ndarray::LinalgScalar
    + ndarray::ScalarOperand
    + fmt::Debug
    + fmt::Display
    + Send
    + Sync
    + 'static
{
}

impl Scalar for f32 {}
impl Scalar for f64 {}

/// An `f64` (a constant of the IR) in the computing type.
fn cast<F: Scalar>(v: f64) -> F {
    F::from_f64(v).unwrap_or_else(F::nan)
}

fn cast_usize<F: Scalar>(n: usize) -> F {
    F::from_usize(n).unwrap_or_else(F::nan)
}

/// A tensor value: floats, or class indices (`index[...]` inputs, `argmax`).
#[derive(Clone, Debug, PartialEq)]
pub enum Value<F> {
    Float(ArrayD<F>),
    Index(ArrayD<usize>),
}

impl<F> Value<F> {
    pub fn shape(&self) -> &[usize] {
        match self {
            Value::Float(a) => a.shape(),
            Value::Index(a) => a.shape(),
        }
    }

    pub fn elem(&self) -> Elem {
        match self {
            Value::Float(_) => Elem::Float,
            Value::Index(_) => Elem::Index,
        }
    }

    pub fn as_float(&self) -> Option<&ArrayD<F>> {
        match self {
            Value::Float(a) => Some(a),
            Value::Index(_) => None,
        }
    }

    pub fn as_index(&self) -> Option<&ArrayD<usize>> {
        match self {
            Value::Index(a) => Some(a),
            Value::Float(_) => None,
        }
    }
}

/// What a model runs on: its inputs and parameters, in declaration order.
#[derive(Clone, Debug, PartialEq)]
pub struct Bindings<F> {
    /// One value per [`Model::inputs`] entry.
    pub inputs: Vec<Value<F>>,
    /// One array per [`Model::params`] entry.
    pub params: Vec<ArrayD<F>>,
}

impl<F> Bindings<F> {
    /// Binds arrays given by name, putting them in declaration order. Every input and
    /// parameter must be given exactly once, and nothing else. Shapes are checked
    /// later, by [`evaluate`].
    pub fn from_named(
        model: &Model,
        inputs: impl IntoIterator<Item = (String, Value<F>)>,
        params: impl IntoIterator<Item = (String, ArrayD<F>)>,
    ) -> Result<Bindings<F>, RunError> {
        let inputs = by_declaration(
            model,
            "input",
            model
                .inputs
                .iter()
                .map(|i| (i.name.as_str(), model.type_str(&i.ty))),
            inputs,
        )?;
        let params = by_declaration(
            model,
            "parameter",
            model
                .params
                .iter()
                .map(|p| (p.name.as_str(), model.shape_str(&p.shape))),
            params,
        )?;
        Ok(Bindings { inputs, params })
    }
}

/// Orders named values as `declared` lists them.
fn by_declaration<'m, T>(
    model: &Model,
    kind: &'static str,
    declared: impl Iterator<Item = (&'m str, String)>,
    given: impl IntoIterator<Item = (String, T)>,
) -> Result<Vec<T>, RunError> {
    let declared: Vec<(&str, String)> = declared.collect();
    let mut slots: Vec<Option<T>> = declared.iter().map(|_| None).collect();
    for (name, value) in given {
        let Some(i) = declared.iter().position(|(n, _)| *n == name) else {
            let names: Vec<&str> = declared.iter().map(|(n, _)| *n).collect();
            return Err(RunError::Unknown {
                kind,
                name,
                model: model.name.clone(),
                declared: list(&names),
            });
        };
        if slots[i].replace(value).is_some() {
            return Err(RunError::Duplicate { kind, name });
        }
    }
    slots
        .into_iter()
        .zip(&declared)
        .map(|(slot, (name, ty))| {
            slot.ok_or_else(|| RunError::Missing {
                kind,
                name: name.to_string(),
                declared: ty.clone(),
            })
        })
        .collect()
}

fn list(names: &[&str]) -> String {
    if names.is_empty() {
        "none".to_string()
    } else {
        names
            .iter()
            .map(|n| format!("`{n}`"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// A shape as `[5, 784]`.
fn shape_str(shape: &[usize]) -> String {
    let dims: Vec<String> = shape.iter().map(usize::to_string).collect();
    format!("[{}]", dims.join(", "))
}

/// Why a model could not be evaluated.
#[derive(Clone, Debug, PartialEq)]
pub enum RunError {
    /// An array is given for a name the model does not declare.
    Unknown {
        kind: &'static str,
        name: String,
        model: String,
        declared: String,
    },
    /// The same name is given twice.
    Duplicate { kind: &'static str, name: String },
    /// A declared input or parameter is not given.
    Missing {
        kind: &'static str,
        name: String,
        declared: String,
    },
    /// Wrong number of inputs or parameters (positional [`Bindings`]).
    Count {
        kind: &'static str,
        model: String,
        expected: usize,
        got: usize,
    },
    /// A float tensor where an index tensor is declared, or the reverse.
    InputElem {
        input: String,
        declared: String,
        got: Elem,
    },
    InputRank {
        input: String,
        declared: String,
        rank: usize,
        got: Vec<usize>,
    },
    /// An axis of fixed size has another size.
    InputSize {
        input: String,
        declared: String,
        axis: usize,
        expected: usize,
        got: Vec<usize>,
    },
    /// Two inputs (or two axes of one) disagree on a runtime dim.
    DimConflict {
        dim: String,
        first: String,
        first_axis: usize,
        first_size: usize,
        input: String,
        axis: usize,
        size: usize,
    },
    ParamShape {
        param: String,
        expected: Vec<usize>,
        got: Vec<usize>,
    },
    /// A class index is not below the class count.
    IndexOutOfRange {
        op: &'static str,
        tensor: String,
        position: Vec<usize>,
        index: usize,
        classes: usize,
    },
    /// `argmax` along an axis of length 0.
    EmptyArgMax { tensor: String, axis: usize },
    /// The IR broke one of its own invariants (a bug in nnc, not in the input).
    Internal {
        node: u32,
        op: String,
        message: String,
    },
}

impl fmt::Display for RunError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            RunError::Unknown {
                kind,
                name,
                model,
                declared,
            } => {
                write!(
                    f,
                    "`{name}` is not {} {kind} of model `{model}` (its {kind}s: {declared})",
                    article(kind)
                )
            }
            RunError::Duplicate { kind, name } => write!(f, "{kind} `{name}` is given twice"),
            RunError::Missing {
                kind,
                name,
                declared,
            } => {
                write!(f, "missing {kind} `{name}` (declared as {declared})")
            }
            RunError::Count {
                kind,
                model,
                expected,
                got,
            } => {
                let s = if *expected == 1 { "" } else { "s" };
                write!(f, "model `{model}` takes {expected} {kind}{s}, got {got}")
            }
            RunError::InputElem {
                input,
                declared,
                got,
            } => {
                let got = match got {
                    Elem::Float => "a float tensor",
                    Elem::Index => "an index tensor",
                };
                write!(
                    f,
                    "input `{input}` is declared {declared}, but {got} was given"
                )
            }
            RunError::InputRank {
                input,
                declared,
                rank,
                got,
            } => write!(
                f,
                "input `{input}` is declared {declared} (rank {rank}), but has shape {} (rank {})",
                shape_str(got),
                got.len()
            ),
            RunError::InputSize {
                input,
                declared,
                axis,
                expected,
                got,
            } => write!(
                f,
                "input `{input}` is declared {declared}, but has shape {}: axis {axis} must be {expected}, got {}",
                shape_str(got),
                got.get(*axis).copied().unwrap_or(0)
            ),
            RunError::DimConflict {
                dim,
                first,
                first_axis,
                first_size,
                input,
                axis,
                size,
            } => write!(
                f,
                "inputs disagree on dim `{dim}`: `{first}` gives {dim} = {first_size} (axis {first_axis}), \
                 but `{input}` gives {dim} = {size} (axis {axis})"
            ),
            RunError::ParamShape {
                param,
                expected,
                got,
            } => write!(
                f,
                "parameter `{param}` must have shape {}, got {}",
                shape_str(expected),
                shape_str(got)
            ),
            RunError::IndexOutOfRange {
                op,
                tensor,
                position,
                index,
                classes,
            } => write!(
                f,
                "class index {index} at {} of `{tensor}` is out of range for `{op}` over {classes} classes \
                 (valid: 0 to {})",
                shape_str(position),
                classes.saturating_sub(1)
            ),
            RunError::EmptyArgMax { tensor, axis } => {
                write!(
                    f,
                    "`argmax` of `{tensor}` along axis {axis}, which has length 0"
                )
            }
            RunError::Internal { node, op, message } => {
                write!(
                    f,
                    "internal error in the interpreter at %{node} ({op}): {message}"
                )
            }
        }
    }
}

fn article(word: &str) -> &'static str {
    if word.starts_with(['a', 'e', 'i', 'o', 'u']) {
        "an"
    } else {
        "a"
    }
}

impl std::error::Error for RunError {}

/// Binds every dim from the inputs' shapes: the size per [`crate::DimId`] (fixed
/// dims their declared size; a runtime dim no input uses, 0). Checks each input's
/// element kind and rank, its fixed axes, and that inputs sharing a runtime dim agree
/// on its size.
pub fn bind_dims<F>(model: &Model, inputs: &[Value<F>]) -> Result<Vec<usize>, RunError> {
    if inputs.len() != model.inputs.len() {
        return Err(RunError::Count {
            kind: "input",
            model: model.name.clone(),
            expected: model.inputs.len(),
            got: inputs.len(),
        });
    }
    let mut dims: Vec<Option<usize>> = model.dims.iter().map(|d| d.size).collect();
    // Where each runtime dim was first bound: (input, axis).
    let mut bound_at: Vec<Option<(usize, usize)>> = vec![None; model.dims.len()];
    for (i, (info, value)) in model.inputs.iter().zip(inputs).enumerate() {
        let declared = model.type_str(&info.ty);
        if value.elem() != info.ty.elem {
            return Err(RunError::InputElem {
                input: info.name.clone(),
                declared,
                got: value.elem(),
            });
        }
        let got = value.shape();
        if got.len() != info.ty.shape.len() {
            return Err(RunError::InputRank {
                input: info.name.clone(),
                declared,
                rank: info.ty.shape.len(),
                got: got.to_vec(),
            });
        }
        for (axis, (dim, &size)) in info.ty.shape.iter().zip(got).enumerate() {
            match *dim {
                Dim::Fixed(n) if n != size => {
                    return Err(RunError::InputSize {
                        input: info.name.clone(),
                        declared,
                        axis,
                        expected: n,
                        got: got.to_vec(),
                    });
                }
                Dim::Fixed(_) => {}
                Dim::Var(d) => {
                    let k = d.0 as usize;
                    let Some(slot) = dims.get_mut(k) else {
                        return Err(RunError::Internal {
                            node: 0,
                            op: "input".into(),
                            message: format!("input `{}` uses undeclared dim #{k}", info.name),
                        });
                    };
                    match (*slot, bound_at[k]) {
                        (Some(prev), Some((first, first_axis))) if prev != size => {
                            return Err(RunError::DimConflict {
                                dim: model.dim_name(d).to_string(),
                                first: model.inputs[first].name.clone(),
                                first_axis,
                                first_size: prev,
                                input: info.name.clone(),
                                axis,
                                size,
                            });
                        }
                        (Some(_), _) => {}
                        (None, _) => {
                            *slot = Some(size);
                            bound_at[k] = Some((i, axis));
                        }
                    }
                }
            }
        }
    }
    Ok(dims.into_iter().map(|d| d.unwrap_or(0)).collect())
}

/// A shape with its runtime dims replaced by their bound sizes.
pub fn concrete_shape(shape: &Shape, dims: &[usize]) -> Vec<usize> {
    shape
        .iter()
        .map(|d| match *d {
            Dim::Fixed(n) => n,
            Dim::Var(v) => dims.get(v.0 as usize).copied().unwrap_or(0),
        })
        .collect()
}

/// Every node's value after a forward walk of the whole arena.
#[derive(Clone, Debug)]
pub struct Evaluation<F> {
    values: Vec<Value<F>>,
    dims: Vec<usize>,
    loss: F,
    outputs: Vec<(String, NodeId)>,
    grads: Vec<(GradOf, NodeId)>,
}

impl<F: Scalar> Evaluation<F> {
    /// The scalar loss.
    pub fn loss(&self) -> F {
        self.loss
    }

    /// Any node's value.
    pub fn value(&self, node: NodeId) -> Option<&Value<F>> {
        self.values.get(node.index())
    }

    /// Every node's value, indexed by [`NodeId`].
    pub fn values(&self) -> &[Value<F>] {
        &self.values
    }

    /// The size bound to each dim, indexed by [`crate::DimId`].
    pub fn dims(&self) -> &[usize] {
        &self.dims
    }

    /// A named output.
    pub fn output(&self, name: &str) -> Option<&Value<F>> {
        self.outputs
            .iter()
            .find(|(n, _)| n == name)
            .and_then(|(_, id)| self.value(*id))
    }

    /// The outputs in declaration order.
    pub fn outputs(&self) -> impl Iterator<Item = (&str, &Value<F>)> {
        self.outputs
            .iter()
            .filter_map(|(n, id)| Some((n.as_str(), self.value(*id)?)))
    }

    /// The gradient of the loss with respect to a param or `grad` input, once
    /// autodiff has filled [`Model::grads`].
    pub fn grad(&self, of: GradOf) -> Option<&ArrayD<F>> {
        self.grads
            .iter()
            .find(|(g, _)| *g == of)
            .and_then(|(_, id)| self.value(*id)?.as_float())
    }

    /// The gradients in [`Model::grads`] order.
    pub fn grads(&self) -> impl Iterator<Item = (GradOf, &ArrayD<F>)> {
        self.grads
            .iter()
            .filter_map(|(g, id)| Some((*g, self.value(*id)?.as_float()?)))
    }
}

/// Evaluates every node of `model` on `bindings`.
pub fn evaluate<F: Scalar>(
    model: &Model,
    bindings: &Bindings<F>,
) -> Result<Evaluation<F>, RunError> {
    let dims = bind_dims(model, &bindings.inputs)?;
    if bindings.params.len() != model.params.len() {
        return Err(RunError::Count {
            kind: "parameter",
            model: model.name.clone(),
            expected: model.params.len(),
            got: bindings.params.len(),
        });
    }
    for (info, value) in model.params.iter().zip(&bindings.params) {
        let expected = concrete_shape(&info.shape, &dims);
        if value.shape() != expected.as_slice() {
            return Err(RunError::ParamShape {
                param: info.name.clone(),
                expected,
                got: value.shape().to_vec(),
            });
        }
    }
    let mut values: Vec<Value<F>> = Vec::with_capacity(model.nodes.len());
    for (index, node) in model.nodes.iter().enumerate() {
        let cx = Cx {
            model,
            node,
            index,
            values: &values,
            dims: &dims,
        };
        let value = cx.eval(bindings)?;
        cx.check_type(&value)?;
        values.push(value);
    }
    let loss = match values.get(model.loss.index()) {
        Some(Value::Float(a)) if a.ndim() == 0 => a.iter().copied().next(),
        _ => None,
    };
    let Some(loss) = loss else {
        return Err(RunError::Internal {
            node: model.loss.0,
            op: "loss".into(),
            message: "the loss is not a float scalar".into(),
        });
    };
    Ok(Evaluation {
        values,
        dims,
        loss,
        outputs: model.outputs.clone(),
        grads: model.grads.clone(),
    })
}

/// Evaluating one node.
struct Cx<'a, F> {
    model: &'a Model,
    node: &'a Node,
    index: usize,
    values: &'a [Value<F>],
    dims: &'a [usize],
}

type Res<T> = Result<T, RunError>;

impl<F: Scalar> Cx<'_, F> {
    fn internal(&self, message: impl Into<String>) -> RunError {
        RunError::Internal {
            node: self.index as u32,
            op: self.node.op.mnemonic(),
            message: message.into(),
        }
    }

    /// The node's own shape, with runtime dims bound.
    fn shape(&self) -> Vec<usize> {
        concrete_shape(&self.node.ty.shape, self.dims)
    }

    fn arg(&self, i: usize) -> Res<&Value<F>> {
        let id = self
            .node
            .args
            .get(i)
            .ok_or_else(|| self.internal(format!("missing operand {i}")))?;
        self.values
            .get(id.index())
            .ok_or_else(|| self.internal(format!("operand %{} is not evaluated yet", id.0)))
    }

    fn float(&self, i: usize) -> Res<&ArrayD<F>> {
        self.arg(i)?
            .as_float()
            .ok_or_else(|| self.internal(format!("operand {i} is an index tensor")))
    }

    fn index(&self, i: usize) -> Res<&ArrayD<usize>> {
        self.arg(i)?
            .as_index()
            .ok_or_else(|| self.internal(format!("operand {i} is a float tensor")))
    }

    /// How an operand is named in messages: the input's or value's name, else `%k`.
    fn arg_name(&self, i: usize) -> String {
        let Some(id) = self.node.args.get(i) else {
            return "?".into();
        };
        let node = self.model.node(*id);
        match &node.op {
            Op::Input(InputId(k)) => self.model.inputs[*k as usize].name.clone(),
            _ => node.name.clone().unwrap_or_else(|| format!("%{}", id.0)),
        }
    }

    /// Operand `i` broadcast (numpy-style) to the node's shape.
    fn broadcast(&self, i: usize, shape: &[usize]) -> Res<ArrayViewD<'_, F>> {
        let a = self.float(i)?;
        a.broadcast(IxDyn(shape)).ok_or_else(|| {
            self.internal(format!(
                "cannot broadcast {} to {}",
                shape_str(a.shape()),
                shape_str(shape)
            ))
        })
    }

    fn axis(&self, axis: usize, ndim: usize) -> Res<Axis> {
        if axis < ndim {
            Ok(Axis(axis))
        } else {
            Err(self.internal(format!("axis {axis} of a rank-{ndim} tensor")))
        }
    }

    /// The value matches the node's type: a check on the interpreter and the IR.
    fn check_type(&self, value: &Value<F>) -> Res<()> {
        let expected = self.shape();
        if value.elem() != self.node.ty.elem || value.shape() != expected.as_slice() {
            return Err(self.internal(format!(
                "computed {:?} {}, but the node's type is {}",
                value.elem(),
                shape_str(value.shape()),
                self.model.type_str(&self.node.ty)
            )));
        }
        Ok(())
    }

    fn eval(&self, bindings: &Bindings<F>) -> Res<Value<F>> {
        let shape = self.shape();
        let float = |a: ArrayD<F>| Ok(Value::Float(a));
        match &self.node.op {
            Op::Input(i) => bindings
                .inputs
                .get(i.0 as usize)
                .cloned()
                .ok_or_else(|| self.internal("no such input")),
            Op::Param(p) => bindings
                .params
                .get(p.0 as usize)
                .map(|a| Value::Float(a.clone()))
                .ok_or_else(|| self.internal("no such parameter")),
            Op::Const(c) => float(ArrayD::from_elem(IxDyn(&[]), cast(*c))),
            Op::DimSize(d) => {
                let n = self
                    .dims
                    .get(d.0 as usize)
                    .copied()
                    .ok_or_else(|| self.internal("no such dim"))?;
                float(ArrayD::from_elem(IxDyn(&[]), cast_usize(n)))
            }
            Op::Unary(u) => float(self.float(0)?.mapv(|x| u.eval(x))),
            Op::Powf(c) => {
                let c: F = cast(*c);
                float(self.float(0)?.mapv(|x| x.powf(c)))
            }
            Op::Binary(b) => {
                let (x, y) = (self.broadcast(0, &shape)?, self.broadcast(1, &shape)?);
                float(Zip::from(&x).and(&y).map_collect(|&x, &y| b.eval(x, y)))
            }
            Op::Compare(c) => {
                let (x, y) = (self.broadcast(0, &shape)?, self.broadcast(1, &shape)?);
                float(
                    Zip::from(&x)
                        .and(&y)
                        .map_collect(|&x, &y| if c.holds(x, y) { F::one() } else { F::zero() }),
                )
            }
            Op::Select => {
                let cond = self.broadcast(0, &shape)?;
                let (a, b) = (self.broadcast(1, &shape)?, self.broadcast(2, &shape)?);
                float(
                    Zip::from(&cond)
                        .and(&a)
                        .and(&b)
                        .map_collect(|&c, &a, &b| if c != F::zero() { a } else { b }),
                )
            }
            Op::Reduce { op, axis, keepdims } => {
                let x = self.float(0)?;
                let out = match axis {
                    None => {
                        let v = reduce(*op, x.iter().copied());
                        let shape = if *keepdims { vec![1; x.ndim()] } else { vec![] };
                        ArrayD::from_elem(IxDyn(&shape), v)
                    }
                    Some(a) => {
                        let axis = self.axis(*a, x.ndim())?;
                        let r = x.map_axis(axis, |lane| reduce(*op, lane.iter().copied()));
                        if *keepdims { r.insert_axis(axis) } else { r }
                    }
                };
                float(out)
            }
            Op::Softmax { axis } | Op::LogSoftmax { axis } => {
                let log = matches!(self.node.op, Op::LogSoftmax { .. });
                let mut out = self.float(0)?.clone();
                let axis = self.axis(*axis, out.ndim())?;
                for mut lane in out.lanes_mut(axis) {
                    let m = reduce(ReduceOp::Max, lane.iter().copied());
                    // Subtracting the max keeps exp from overflowing.
                    let m = if m.is_finite() { m } else { F::zero() };
                    let sum = lane.iter().fold(F::zero(), |s, &v| s + (v - m).exp());
                    if log {
                        let log_sum = sum.ln();
                        lane.mapv_inplace(|v| v - m - log_sum);
                    } else {
                        lane.mapv_inplace(|v| (v - m).exp() / sum);
                    }
                }
                float(out)
            }
            Op::ExtremumMask { op, axis } => {
                if !matches!(op, ReduceOp::Max | ReduceOp::Min) {
                    return Err(self.internal(format!("no extremum mask for `{}`", op.name())));
                }
                let x = self.float(0)?;
                let mut mask = ArrayD::zeros(x.raw_dim());
                match axis {
                    None => {
                        if let Some(k) = arg_extremum(*op, x.iter().copied())
                            && let Some(m) = mask.iter_mut().nth(k)
                        {
                            *m = F::one();
                        }
                    }
                    Some(a) => {
                        let axis = self.axis(*a, x.ndim())?;
                        Zip::from(x.lanes(axis)).and(mask.lanes_mut(axis)).for_each(
                            |lane, mut m| {
                                if let Some(k) = arg_extremum(*op, lane.iter().copied()) {
                                    m[k] = F::one();
                                }
                            },
                        );
                    }
                }
                float(mask)
            }
            Op::ArgMax { axis, keepdims } => {
                let x = self.float(0)?;
                let ax = self.axis(*axis, x.ndim())?;
                let found =
                    x.map_axis(ax, |lane| arg_extremum(ReduceOp::Max, lane.iter().copied()));
                if x.shape()[*axis] == 0 {
                    return Err(RunError::EmptyArgMax {
                        tensor: self.arg_name(0),
                        axis: *axis,
                    });
                }
                let out = found.mapv(|k| k.unwrap_or(0));
                Ok(Value::Index(if *keepdims {
                    out.insert_axis(ax)
                } else {
                    out
                }))
            }
            Op::MatMul => float(self.matmul()?),
            Op::Transpose => {
                let x = self.float(0)?;
                if x.ndim() != 2 {
                    return Err(self.internal(format!("transpose of a rank-{} tensor", x.ndim())));
                }
                float(x.t().as_standard_layout().into_owned())
            }
            Op::Reshape => match self.arg(0)? {
                Value::Float(x) => float(self.reshape(x, &shape)?),
                Value::Index(x) => Ok(Value::Index(self.reshape(x, &shape)?)),
            },
            Op::Broadcast => {
                let x = self.broadcast(0, &shape)?;
                float(x.to_owned())
            }
            Op::Slice { axis, start, len } => {
                let x = self.float(0)?;
                if *axis >= x.ndim() || start + len > x.shape()[*axis] {
                    return Err(self.internal(format!(
                        "slice {start}..{} of axis {axis} of {:?}",
                        start + len,
                        x.shape()
                    )));
                }
                float(
                    x.slice_axis(Axis(*axis), (*start..start + len).into())
                        .to_owned(),
                )
            }
            Op::Pad { axis, start, .. } => {
                let x = self.float(0)?;
                let mut out = ArrayD::<F>::zeros(IxDyn(&shape));
                let len = x.shape().get(*axis).copied().unwrap_or(0);
                if *axis >= x.ndim() || out.ndim() != x.ndim() || start + len > shape[*axis] {
                    return Err(self.internal(format!(
                        "pad of {:?} from {start} along axis {axis} into {shape:?}",
                        x.shape()
                    )));
                }
                out.slice_axis_mut(Axis(*axis), (*start..start + len).into())
                    .assign(x);
                float(out)
            }
            Op::Pick { keepdims } => {
                let x = self.view2(self.float(0)?)?;
                let idx = self.index(1)?;
                let idx: ArrayView1<'_, usize> = idx
                    .view()
                    .into_dimensionality::<Ix1>()
                    .map_err(|e| self.internal(e.to_string()))?;
                let (n, classes) = x.dim();
                if idx.len() != n {
                    return Err(self.internal(format!("{n} rows but {} indices", idx.len())));
                }
                let mut out = Vec::with_capacity(n);
                for (row, &k) in idx.iter().enumerate() {
                    if k >= classes {
                        return Err(RunError::IndexOutOfRange {
                            op: "pick",
                            tensor: self.arg_name(1),
                            position: vec![row],
                            index: k,
                            classes,
                        });
                    }
                    out.push(x[[row, k]]);
                }
                let shape = if *keepdims { vec![n, 1] } else { vec![n] };
                float(
                    ArrayD::from_shape_vec(IxDyn(&shape), out)
                        .map_err(|e| self.internal(e.to_string()))?,
                )
            }
            Op::OneHot { classes } => {
                let idx = self.index(0)?;
                let classes = concrete_shape(&vec![*classes], self.dims)[0];
                let mut out = ArrayD::zeros(IxDyn(&shape));
                for (position, &k) in idx.indexed_iter() {
                    let mut at = position.slice().to_vec();
                    if k >= classes {
                        return Err(RunError::IndexOutOfRange {
                            op: "one_hot",
                            tensor: self.arg_name(0),
                            position: at,
                            index: k,
                            classes,
                        });
                    }
                    at.push(k);
                    let slot = out
                        .get_mut(IxDyn(&at))
                        .ok_or_else(|| self.internal("one-hot position out of bounds"))?;
                    *slot = F::one();
                }
                float(out)
            }
        }
    }

    fn view1<'v>(&self, x: &'v ArrayD<F>) -> Res<ArrayView1<'v, F>> {
        x.view()
            .into_dimensionality::<Ix1>()
            .map_err(|e| self.internal(e.to_string()))
    }

    fn view2<'v>(&self, x: &'v ArrayD<F>) -> Res<ArrayView2<'v, F>> {
        x.view()
            .into_dimensionality::<Ix2>()
            .map_err(|e| self.internal(e.to_string()))
    }

    fn reshape<T: Clone>(&self, x: &ArrayD<T>, shape: &[usize]) -> Res<ArrayD<T>> {
        x.as_standard_layout()
            .into_owned()
            .into_shape_with_order(IxDyn(shape))
            .map_err(|e| {
                self.internal(format!(
                    "cannot reshape {} to {}: {e}",
                    shape_str(x.shape()),
                    shape_str(shape)
                ))
            })
    }

    /// numpy `matmul` for ranks 1 and 2.
    fn matmul(&self) -> Res<ArrayD<F>> {
        let (a, b) = (self.float(0)?, self.float(1)?);
        let inner_a = a.shape().last().copied().unwrap_or(0);
        let inner_b = b.shape().first().copied().unwrap_or(0);
        if inner_a != inner_b || a.ndim() == 0 || b.ndim() == 0 {
            return Err(self.internal(format!(
                "{} @ {}",
                shape_str(a.shape()),
                shape_str(b.shape())
            )));
        }
        Ok(match (a.ndim(), b.ndim()) {
            (2, 2) => self.view2(a)?.dot(&self.view2(b)?).into_dyn(),
            (1, 2) => self.view1(a)?.dot(&self.view2(b)?).into_dyn(),
            (2, 1) => self.view2(a)?.dot(&self.view1(b)?).into_dyn(),
            (1, 1) => ArrayD::from_elem(IxDyn(&[]), self.view1(a)?.dot(&self.view1(b)?)),
            (ra, rb) => return Err(self.internal(format!("matmul of ranks {ra} and {rb}"))),
        })
    }
}

/// The position of the first maximum (or minimum) — `None` for no elements. NaN is
/// passed over, as [`crate::BinaryOp::Max`] does: a later number replaces a NaN.
fn arg_extremum<F: Scalar>(op: ReduceOp, values: impl Iterator<Item = F>) -> Option<usize> {
    let mut best: Option<(usize, F)> = None;
    for (k, v) in values.enumerate() {
        let better = match best {
            None => true,
            Some((_, b)) => {
                let strictly = if op == ReduceOp::Min { v < b } else { v > b };
                strictly || (b.is_nan() && !v.is_nan())
            }
        };
        if better {
            best = Some((k, v));
        }
    }
    best.map(|(k, _)| k)
}

/// One reduction over a sequence of numbers (a lane, or the whole tensor). Empty
/// sequences give the operation's identity: 0, -inf, +inf, -inf.
fn reduce<F: Scalar>(op: ReduceOp, values: impl Iterator<Item = F> + Clone) -> F {
    match op {
        ReduceOp::Sum => values.fold(F::zero(), |s, v| s + v),
        ReduceOp::Max | ReduceOp::Min => {
            let empty = if op == ReduceOp::Max {
                F::neg_infinity()
            } else {
                F::infinity()
            };
            match arg_extremum(op, values.clone()) {
                Some(k) => values.clone().nth(k).unwrap_or(empty),
                None => empty,
            }
        }
        // m + log(sum(exp(x - m))) with m the max: no overflow.
        ReduceOp::LogSumExp => {
            let m = reduce(ReduceOp::Max, values.clone());
            if !m.is_finite() {
                return m;
            }
            m + values.fold(F::zero(), |s, v| s + (v - m).exp()).ln()
        }
    }
}
