//! Emission: one Rust module per model, from its IR and the plans of its three
//! functions. Items are built with `quote` and formatted with `prettyplease`;
//! comments travel as `nnc_comment!("...")` statements and become `//` lines after
//! formatting ([`finish`]).

pub mod body;
pub mod expr;
pub mod reuse;
pub mod roll;

use crate::names::{Names, is_snake};
use crate::plan::{self, Entry, Hold, Plan, scalar_like};
use body::{Body, Ix};
use expr::{Ex, ident};
use nnc_ir::{DType, Dim, Elem, GradOf, Init, Model, NodeId, Op, Shape};
use nnc_syntax::Span;
use proc_macro2::TokenStream;
use quote::quote;
use std::collections::{BTreeMap, BTreeSet};

/// Where a model's source came from, for the comments.
#[derive(Clone, Copy, Debug)]
pub struct Source<'a> {
    pub lines: &'a nnc_syntax::diagnostic::LineIndex<'a>,
    pub file: &'a str,
}

/// Names some values go by in a description (those of a rolled loop's step).
pub type Rename<'r> = dyn Fn(NodeId) -> Option<String> + 'r;

/// What emission reads: the model, its names, its source.
pub struct Cx<'a> {
    pub model: &'a Model,
    pub names: Names,
    pub src: Source<'a>,
    /// The loops' families of per-step values, and which are stacked (see `roll`).
    pub families: roll::Families,
}

impl Cx<'_> {
    /// `file.nn:17:13`.
    pub fn location(&self, span: Span) -> String {
        let (l, c) = self.src.lines.line_col(span.start);
        format!("{}:{l}:{c}", self.src.file)
    }

    /// A value's name as the source (or the derivation) calls it.
    pub fn display(&self, n: NodeId) -> String {
        let node = self.model.node(n);
        match (&node.op, &node.name) {
            (Op::Param(p), _) => self.model.params[p.0 as usize].name.clone(),
            (Op::Input(i), _) => self.model.inputs[i.0 as usize].name.clone(),
            (Op::Const(c), _) => nnc_ir::print::number(*c),
            (Op::DimSize(d), _) => self.model.dim_name(*d).to_string(),
            (_, Some(name)) => name.clone(),
            _ => format!("t{}", n.0),
        }
    }

    /// An operand in a description: its name, or for inline nodes their expression
    /// (`rename` gives the names of values inside a rolled loop).
    fn operand(&self, n: NodeId, depth: usize, rename: &Rename<'_>) -> String {
        if let Some(name) = rename(n) {
            return name;
        }
        let node = self.model.node(n);
        let named = node.name.is_some()
            || matches!(
                node.op,
                Op::Param(_) | Op::Input(_) | Op::Const(_) | Op::DimSize(_)
            );
        if named || depth > 2 {
            return self.display(n);
        }
        match node.op {
            Op::Broadcast | Op::Reshape => self.operand(node.args[0], depth + 1, rename),
            Op::Transpose => format!("{}.T", self.operand(node.args[0], depth + 1, rename)),
            Op::Slice { axis, start, len } => nnc_ir::print::slice_text(
                &self.operand(node.args[0], depth + 1, rename),
                axis,
                start,
                len,
            ),
            Op::OneHot { classes } => {
                format!(
                    "one_hot({}, {})",
                    self.operand(node.args[0], depth + 1, rename),
                    self.model.dim_str(classes)
                )
            }
            _ => self.display(n),
        }
    }

    /// A node's definition in the source's terms: `sigmoid(t4)`, `d_h * t18`.
    pub fn describe(&self, n: NodeId) -> String {
        self.describe_with(n, &|_| None)
    }

    /// [`Cx::describe`] with the operands `rename` names named so.
    pub fn describe_with(&self, n: NodeId, rename: &Rename<'_>) -> String {
        let node = self.model.node(n);
        let a = |i: usize| self.operand(node.args[i], 0, rename);
        match &node.op {
            Op::Unary(nnc_ir::UnaryOp::Neg) => format!("-{}", a(0)),
            Op::Unary(u) => format!("{}({})", u.name(), a(0)),
            Op::Powf(c) => format!("{} ^ {}", a(0), nnc_ir::print::number(*c)),
            Op::Binary(b) => match b.symbol() {
                Some(sym) => format!("{} {sym} {}", a(0), a(1)),
                None => format!("{}({}, {})", b.name(), a(0), a(1)),
            },
            Op::Compare(c) => format!("{} {} {}", a(0), c.symbol(), a(1)),
            Op::Select => format!("where({}, {}, {})", a(0), a(1), a(2)),
            Op::Reduce { op, axis, keepdims } => {
                let mut s = format!("{}({}", op.name(), a(0));
                if let Some(ax) = axis {
                    s.push_str(&format!(", axis = {ax}"));
                }
                if *keepdims {
                    s.push_str(", keepdims = true");
                }
                s + ")"
            }
            Op::Softmax { axis } => format!("softmax({}, axis = {axis})", a(0)),
            Op::LogSoftmax { axis } => format!("log_softmax({}, axis = {axis})", a(0)),
            Op::ExtremumMask { op, axis } => match axis {
                Some(ax) => format!("first_arg{}_mask({}, axis = {ax})", op.name(), a(0)),
                None => format!("first_arg{}_mask({})", op.name(), a(0)),
            },
            Op::MatMul => format!("{} @ {}", a(0), a(1)),
            Op::Transpose => format!("{}.T", a(0)),
            Op::Reshape => format!(
                "reshape({}, {})",
                a(0),
                self.model.shape_str(&node.ty.shape)
            ),
            Op::Broadcast => format!(
                "broadcast({}, {})",
                a(0),
                self.model.shape_str(&node.ty.shape)
            ),
            Op::Slice { axis, start, len } => nnc_ir::print::slice_text(&a(0), *axis, *start, *len),
            Op::Pad { axis, start, size } => {
                format!(
                    "pad({}, axis = {axis}, start = {start}, size = {size})",
                    a(0)
                )
            }
            Op::Pick { .. } => format!("pick({}, {})", a(0), a(1)),
            Op::OneHot { classes } => {
                format!("one_hot({}, {})", a(0), self.model.dim_str(*classes))
            }
            Op::ArgMax { axis, .. } => format!("argmax({}, axis = {axis})", a(0)),
            Op::Input(_) | Op::Param(_) | Op::Const(_) | Op::DimSize(_) => self.display(n),
        }
    }

    fn float_ty(&self) -> TokenStream {
        match self.model.dtype {
            DType::F32 => quote!(f32),
            DType::F64 => quote!(f64),
        }
    }

    /// The name a fixed dim is declared under (`D_in`), when exactly one declared
    /// dim has that size; else the size itself.
    fn dim_label(&self, d: Dim) -> String {
        match d {
            Dim::Var(v) => self.model.dim_name(v).to_string(),
            Dim::Fixed(n) => {
                let named: Vec<&str> = self
                    .model
                    .dims
                    .iter()
                    .filter(|x| x.size == Some(n))
                    .map(|x| x.name.as_str())
                    .collect();
                match named.as_slice() {
                    [one] => one.to_string(),
                    _ => n.to_string(),
                }
            }
        }
    }
}

/// `Array2<F>`-style type for a rank.
fn array_ty(rank: usize, elem: TokenStream) -> TokenStream {
    let t = ident(&format!("Array{rank}"));
    quote!(#t<#elem>)
}

fn view_ty(rank: usize, elem: TokenStream) -> TokenStream {
    let t = ident(&format!("ArrayView{rank}"));
    quote!(#t<'a, #elem>)
}

/// `Ix2(a, b)` for a shape, sizes from `size`.
fn ix_of(shape: &[Dim], size: &mut dyn FnMut(Dim) -> TokenStream) -> TokenStream {
    let f = ident(&format!("Ix{}", shape.len()));
    let sizes: Vec<TokenStream> = shape.iter().map(|d| size(*d)).collect();
    quote!(#f(#(#sizes),*))
}

fn usize_lit(n: usize) -> TokenStream {
    let lit = proc_macro2::Literal::usize_unsuffixed(n);
    quote!(#lit)
}

fn doc(text: &str) -> TokenStream {
    quote!(#[doc = #text])
}

/// The generated module for one model, unformatted.
pub fn module(model: &Model, src: Source<'_>) -> TokenStream {
    let plans: Vec<Plan> = [Entry::Loss, Entry::Forward, Entry::LossAndGrad]
        .iter()
        .map(|e| plan::plan(model, *e))
        .collect();
    if model.loops.is_empty() {
        return module_with(model, src, &plans, &BTreeSet::new()).0;
    }
    // Which loops roll is known once their steps are written: a first pass may
    // stack every loop's values, the second stacks only those of the loops that
    // rolled, so a loop written out step by step keeps a buffer per value.
    let every: BTreeSet<u32> = (0..model.loops.len() as u32).collect();
    let (_, rolled) = module_with(model, src, &plans, &every);
    module_with(model, src, &plans, &rolled).0
}

/// The module, with the values of the loops in `stacked` in stacked buffers; and the
/// loops some function wrote as a Rust loop.
fn module_with(
    model: &Model,
    src: Source<'_>,
    plans: &[Plan],
    stacked: &BTreeSet<u32>,
) -> (TokenStream, BTreeSet<u32>) {
    let mut names = Names::new(model);
    let families = roll::Families::new(model, &names.node, &mut names.namer, stacked);
    let cx = Cx {
        model,
        names,
        src,
        families,
    };
    let mut generator = Gen {
        cx: &cx,
        imports: [false; 3],
        buffers: BTreeSet::new(),
        sharers: BTreeMap::new(),
        staging: BTreeSet::new(),
        out_copies: BTreeSet::new(),
        products: vec![],
        masks: BTreeSet::new(),
        stacks: BTreeSet::new(),
        rolled: BTreeSet::new(),
    };
    let functions: Vec<TokenStream> = plans.iter().map(|p| generator.function(p)).collect();
    let items = generator.items(&functions);
    let name = ident(&cx.names.module);
    let module = quote! {
        pub mod #name {
            #items
        }
    };
    (module, generator.rolled)
}

struct Gen<'a> {
    cx: &'a Cx<'a>,
    /// Imports the functions need: `matmul`, `aview1`, `aview_mut1`.
    imports: [bool; 3],
    /// Workspace buffers (nodes).
    buffers: BTreeSet<NodeId>,
    /// For a buffer some function shares (see `reuse`): the other values it holds
    /// in turn.
    sharers: BTreeMap<NodeId, BTreeSet<NodeId>>,
    /// Parameters and inputs read through slices: their staging buffers.
    staging: BTreeSet<NodeId>,
    /// Outputs that are parameters or inputs, copied into the workspace.
    out_copies: BTreeSet<usize>,
    /// Every matmul's `(m, k, n)`: the workspace's GEMM scratch is reserved for each.
    products: Vec<[Dim; 3]>,
    /// The dropout masks' leaves: their workspace buffers.
    masks: BTreeSet<NodeId>,
    /// Stacked buffers of loop values (families, see `roll`).
    stacks: BTreeSet<usize>,
    /// The loops some function wrote as a Rust loop.
    rolled: BTreeSet<u32>,
}

/// The extra arguments of the entry points of a model with `dropout` or `state`
/// (none for other models, whose API does not change): the states (read in eval
/// mode, written by the training step) and the caller's generator.
struct ModeArgs {
    modes: bool,
    has_state: bool,
    has_masks: bool,
    state_ro: TokenStream,
    state_rw: TokenStream,
    generics: TokenStream,
    rng: TokenStream,
}

impl ModeArgs {
    fn of(model: &Model) -> ModeArgs {
        let has_state = model
            .inputs
            .iter()
            .any(|i| matches!(i.kind, nnc_ir::InputKind::State(_)));
        let has_masks = model
            .inputs
            .iter()
            .any(|i| matches!(i.kind, nnc_ir::InputKind::Mask { .. }));
        let (state_ro, state_rw) = if has_state {
            (quote!(state: &State,), quote!(state: &mut State,))
        } else {
            (quote!(), quote!())
        };
        let (generics, rng) = if has_masks {
            (
                quote!(<R: ::nnc::rand::Rng + ?Sized>),
                quote!(, rng: &mut R),
            )
        } else {
            (quote!(), quote!())
        };
        ModeArgs {
            modes: model.has_modes(),
            has_state,
            has_masks,
            state_ro,
            state_rw,
            generics,
            rng,
        }
    }
}

impl Gen<'_> {
    fn model(&self) -> &Model {
        self.cx.model
    }

    fn staging_name(&self, n: NodeId) -> String {
        format!("{}_staging", self.cx.names.node[n.index()])
    }

    fn out_copy_name(&self, k: usize) -> String {
        format!(
            "out_{}",
            self.cx.names.output_field[k].trim_start_matches("r#")
        )
    }

    /// One generated function.
    fn function(&mut self, plan: &Plan) -> TokenStream {
        let cx = self.cx;
        let model = cx.model;
        let mut b = Body::new(cx, plan);
        b.steps();
        // The results.
        let mut tail: Vec<TokenStream> = vec![];
        match plan.entry {
            Entry::Loss => {
                let v = b.val(model.loss, &[], false);
                tail.push(quote!(Ok(#v)));
            }
            Entry::LossAndGrad => {
                for (k, (of, g)) in model.grads.iter().enumerate() {
                    tail.extend(self.grad_result(&mut b, plan, k, *of, *g));
                }
                if model.grads.is_empty() {
                    tail.push(quote!(let _ = grads;));
                }
                tail.extend(self.state_writes(&mut b, plan));
                let v = b.val(model.loss, &[], false);
                tail.push(quote!(Ok(#v)));
            }
            Entry::Forward => {
                let mut fields = vec![];
                for (k, (_, o)) in model.outputs.iter().enumerate() {
                    let f = ident(&cx.names.output_field[k]);
                    let shape = model.shape(*o);
                    let v = if shape.is_empty() {
                        let v = b.val(*o, &[], false).ts;
                        if v.to_string() == f.to_string() {
                            fields.push(quote!(#f));
                            continue;
                        }
                        v
                    } else {
                        let ix = ix_of(shape, &mut |d| b.size(d).ts);
                        match plan.hold[o.index()] {
                            Hold::Leaf => {
                                self.out_copies.insert(k);
                                let field = b.leaf_field(*o);
                                let buf = ident(&self.out_copy_name(k));
                                let len = b.len(shape);
                                tail.push(quote!(rt::copy(&mut ws.#buf[..#len], #field.view());));
                                quote!(rt::view(&ws.#buf, #ix))
                            }
                            _ => {
                                let s = ident(&b.slice_name(*o));
                                quote!(rt::view(&*#s, #ix))
                            }
                        }
                    };
                    fields.push(quote!(#f: #v));
                }
                if self.outputs_need_marker() {
                    fields.push(quote!(workspace: ::std::marker::PhantomData));
                }
                tail.push(quote!(Ok(Outputs { #(#fields),* })));
            }
        }
        // The loop values the results read, bound from their stacks.
        let mut tail_binds = b.stack_bindings();
        tail_binds.append(&mut tail);
        let tail = tail_binds;
        self.rolled.extend(b.rolled.iter().copied());
        let mut stmts = std::mem::take(&mut b.stmts);
        let shared = self.share_buffers(&mut b, &mut stmts, &tail);
        let prologue = self.prologue(&mut b, plan, &shared);
        // Products whose nest runs inside them call `rt::matmul_then` instead.
        self.imports[0] |= stmts.iter().any(|s| body::mentions_ident(s, "matmul"));
        for product in &b.uses.products {
            if !self.products.contains(product) {
                self.products.push(*product);
            }
        }
        self.imports[1] |= b.uses.aview1;
        self.imports[2] |= b.uses.aview_mut1;
        let body = quote!(#(#prologue)* #(#stmts)* #(#tail)*);
        let args = ModeArgs::of(model);
        let (state_ro, state_rw) = (&args.state_ro, &args.state_rw);
        let (generics, rng) = (&args.generics, &args.rng);
        let eval = if args.modes {
            " In eval mode: no dropout, running statistics."
        } else {
            ""
        };
        match plan.entry {
            Entry::Loss => {
                let d = doc(&format!(" The loss at `params` and `inputs`.{eval}"));
                quote! {
                    #d
                    pub fn loss(params: &Params, #state_ro inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<F, ShapeError> {
                        #body
                    }
                }
            }
            Entry::Forward => {
                let d = doc(&format!(
                    " The outputs at `params` and `inputs`, in the workspace.{eval}"
                ));
                quote! {
                    #d
                    pub fn forward<'w>(params: &Params, #state_ro inputs: &Inputs<'_>, ws: &'w mut Workspace) -> Result<Outputs<'w>, ShapeError> {
                        #body
                    }
                }
            }
            Entry::LossAndGrad => {
                let mut d = vec![doc(
                    " The loss, and its gradients written into `grads` (overwritten).",
                )];
                if args.modes {
                    d.extend([
                        " The training step: each dropout mask drawn from `rng` (in declaration order,",
                        " into the workspace), `batch_norm` with the batch's statistics, and every",
                        " `state` updated in place after the step.",
                    ].map(doc));
                }
                let sgd = self.sgd_step(&args);
                quote! {
                    #(#d)*
                    pub fn loss_and_grad #generics (params: &Params, #state_rw inputs: &Inputs<'_>, ws: &mut Workspace, grads: &mut Grads #rng) -> Result<F, ShapeError> {
                        #body
                    }
                    #sgd
                }
            }
        }
    }

    /// After the training step: every `state` written with its new value.
    fn state_writes(&self, b: &mut Body<'_>, plan: &Plan) -> Vec<TokenStream> {
        let model = self.model();
        let mut out = vec![];
        for (state, node) in &model.state_updates {
            let name = &model.inputs[state.0 as usize].name;
            let f = ident(&self.cx.names.input_field[state.0 as usize]);
            let text = format!("{name} <- {}", self.cx.display(*node));
            out.push(quote!(nnc_comment!(#text);));
            let shape = model.shape(*node);
            if shape.is_empty() {
                let v = b.val(*node, &[], false);
                out.push(quote!(state.#f[()] = #v;));
                continue;
            }
            let value = match plan.hold[node.index()] {
                Hold::Leaf => b.leaf_field(*node),
                _ => {
                    let ix = ix_of(shape, &mut |d| b.size(d).ts);
                    let slice = ident(&b.slice_name(*node));
                    quote!(rt::view(&*#slice, #ix))
                }
            };
            out.push(quote!(state.#f.assign(&#value);));
        }
        out
    }

    /// `sgd_step`: `loss_and_grad`, then every parameter updated in place.
    fn sgd_step(&self, args: &ModeArgs) -> TokenStream {
        let cx = self.cx;
        let updates: Vec<TokenStream> = (0..cx.model.params.len())
            .map(|k| {
                let p = ident(&cx.names.param_field[k]);
                let g = ident(&cx.names.grad_field[k]);
                quote!(rt::sgd(&ws.threads, lr, &mut params.#p, &grads.#g);)
            })
            .collect();
        let unused = if updates.is_empty() {
            quote!(let _ = lr;)
        } else {
            quote!()
        };
        let d: Vec<TokenStream> = [
            " One step of gradient descent with learning rate `lr`: the loss and gradients at",
            " `params` (as [`loss_and_grad`]), then `p -= lr * d_p` for every parameter, on the",
            " workspace's threads. Returns the loss before the step; `grads` keeps the gradients.",
        ]
        .into_iter()
        .map(doc)
        .collect();
        if !args.modes {
            return quote! {
                #(#d)*
                pub fn sgd_step(params: &mut Params, inputs: &Inputs<'_>, ws: &mut Workspace, grads: &mut Grads, lr: F) -> Result<F, ShapeError> {
                    let loss = loss_and_grad(params, inputs, ws, grads)?;
                    #unused
                    #(#updates)*
                    Ok(loss)
                }
            };
        }
        let (state_rw, generics, rng) = (&args.state_rw, &args.generics, &args.rng);
        let state = if args.has_state {
            quote!(state,)
        } else {
            quote!()
        };
        let rng_value = if args.has_masks {
            quote!(, rng)
        } else {
            quote!()
        };
        quote! {
            #(#d)*
            #[allow(clippy::too_many_arguments, reason = "the training step's arguments, as `loss_and_grad` takes them, and `lr`")]
            pub fn sgd_step #generics (params: &mut Params, #state_rw inputs: &Inputs<'_>, ws: &mut Workspace, grads: &mut Grads, lr: F #rng) -> Result<F, ShapeError> {
                let loss = loss_and_grad(params, #state inputs, ws, grads #rng_value)?;
                #unused
                #(#updates)*
                Ok(loss)
            }
        }
    }

    fn outputs_need_marker(&self) -> bool {
        let m = self.model();
        m.outputs.iter().all(|(_, o)| m.shape(*o).is_empty())
    }

    /// Gradient `k`, when it is not already written in place.
    fn grad_result(
        &mut self,
        b: &mut Body<'_>,
        plan: &Plan,
        k: usize,
        of: GradOf,
        g: NodeId,
    ) -> Vec<TokenStream> {
        let model = self.model();
        let field = ident(&self.cx.names.grad_field[k]);
        let shape = model.grad_shape(of);
        let hold = plan.hold[g.index()];
        if hold == Hold::Grad(k) {
            return vec![];
        }
        let text = format!("d_{} = {}", model.grad_name(of), self.cx.display(g));
        let note = quote!(nnc_comment!(#text););
        if shape.is_empty() {
            let v = b.val(g, &[], false);
            return vec![quote!(#note grads.#field[()] = #v;)];
        }
        let local = ident(&b.grad_local(k));
        match hold {
            Hold::Grad(k2) => {
                let src = ident(&b.grad_local(k2));
                vec![quote!(#note #local.copy_from_slice(#src);)]
            }
            Hold::Leaf if !scalar_like(model.shape(g)) => {
                let f = b.leaf_field(g);
                vec![quote!(#note rt::copy(#local, #f.view());)]
            }
            // A first-extremum mask kept as its position: 1 there, 0 elsewhere.
            Hold::ArgPos => {
                let fill = b.write_arg_pos(g, &local);
                vec![quote!(#note #fill)]
            }
            _ => {
                let v = b.val(g, &vec![Ix::Zero; model.shape(g).len()], false);
                vec![quote!(#note #local.fill(#v);)]
            }
        }
    }

    /// Values that take turns in a workspace buffer (see `reuse`): each is bound
    /// to its group's buffer just before the first of `stmts` naming it, with a
    /// comment saying whose buffer it takes. Returns them (the prologue binds the
    /// others).
    fn share_buffers(
        &mut self,
        b: &mut Body<'_>,
        stmts: &mut Vec<TokenStream>,
        tail: &[TokenStream],
    ) -> BTreeSet<NodeId> {
        let cx = self.cx;
        let model = cx.model;
        let candidates: Vec<reuse::Candidate> = b
            .uses
            .buffers
            .iter()
            .map(|&n| reuse::Candidate {
                node: n,
                name: cx.names.node[n.index()].clone(),
                kind: format!("{} {:?}", plan::is_index(model, n), model.shape(n)),
            })
            .collect();
        let mut all = stmts.clone();
        all.push(quote!(#(#tail)*));
        let mut binds: BTreeMap<usize, Vec<TokenStream>> = BTreeMap::new();
        let mut shared = BTreeSet::new();
        for group in reuse::groups(&all, &candidates) {
            let [(first, _), rest @ ..] = group.members.as_slice() else {
                continue;
            };
            if rest.is_empty() {
                continue;
            }
            // The group's buffer is named after its first value.
            self.buffers.insert(*first);
            let buf = ident(&cx.names.node[first.index()]);
            let len = b.len(model.shape(*first));
            let mut before = *first;
            for (n, life) in &group.members {
                shared.insert(*n);
                let name = ident(&cx.names.node[n.index()]);
                let mut bind = vec![];
                if n != first {
                    self.sharers.entry(*first).or_default().insert(*n);
                    let text = format!(
                        "{name} takes the buffer of {}, which is not read again",
                        cx.names.node[before.index()]
                    );
                    bind.push(quote!(nnc_comment!(#text);));
                }
                bind.push(quote!(let #name = &mut ws.#buf[..#len];));
                binds.entry(life.first).or_default().extend(bind);
                before = *n;
            }
        }
        // Inserted from the last position back, so earlier positions stay put;
        // a value first named by the results is bound before them, and one first
        // named by a step is bound before the step's comments.
        let is_comment = |s: &TokenStream| {
            // `nnc_comment ! ( "..." ) ;` and nothing else.
            let tokens: Vec<_> = s.clone().into_iter().collect();
            tokens.len() == 4
                && matches!(&tokens[0], proc_macro2::TokenTree::Ident(i) if i == "nnc_comment")
        };
        for (at, bind) in binds.into_iter().rev() {
            let mut at = at.min(stmts.len());
            while at > 0 && is_comment(&stmts[at - 1]) {
                at -= 1;
            }
            stmts.splice(at..at, bind);
        }
        shared
    }

    /// Checks, workspace sizing, and the locals the body reads (but the values in
    /// `shared` buffers, bound where they are first written).
    fn prologue(
        &mut self,
        b: &mut Body<'_>,
        plan: &Plan,
        shared: &BTreeSet<NodeId>,
    ) -> Vec<TokenStream> {
        let cx = self.cx;
        let model = cx.model;
        let mut out = vec![
            quote!(let dims = inputs.dims()?;),
            quote!(params.check()?;),
            quote!(ws.grow(dims);),
        ];
        let modes = self.mode_prologue(b, plan.entry == Entry::LossAndGrad);
        // Sizes of buffers first (they may use dims not used elsewhere).
        let mut buffers = vec![];
        for n in b.uses.buffers.clone() {
            if shared.contains(&n) {
                continue;
            }
            self.buffers.insert(n);
            let name = ident(&cx.names.node[n.index()]);
            let len = b.len(model.shape(n));
            buffers.push(quote!(let #name = &mut ws.#name[..#len];));
        }
        for f in b.uses.stacks.clone() {
            self.stacks.insert(f);
            let family = &cx.families.list[f];
            let name = ident(&family.stack);
            let len = self.stack_len(b, f);
            buffers.push(quote!(let #name = &mut ws.#name[..#len];));
        }
        let mut grads = vec![];
        for k in b.uses.grads.clone() {
            let local = ident(&b.grad_local(k));
            let (of, _) = model.grads[k];
            let field = ident(&cx.names.grad_field[k]);
            let shape = model.grad_shape(of);
            let ix = ix_of(shape, &mut |d| b.size(d).ts);
            grads.push(quote!(let #local = rt::slice_mut(&mut grads.#field, #ix);));
        }
        let mut leaves = vec![];
        for n in b.uses.leaf_scalars.clone() {
            let name = ident(&cx.names.node[n.index()]);
            // The mode flag is the entry point's own `mode`.
            if let Op::Input(i) = model.node(n).op
                && model.inputs[i.0 as usize].kind == nnc_ir::InputKind::Training
            {
                leaves.push(quote!(let #name = mode;));
                continue;
            }
            let f = b.leaf_field(n);
            leaves.push(quote!(let #name = #f[()];));
        }
        for n in b.uses.leaf_slices.clone() {
            let name = ident(&cx.names.node[n.index()]);
            // A dropout mask is a workspace buffer: read in place.
            if let Op::Input(i) = model.node(n).op
                && let nnc_ir::InputKind::Mask { .. } = model.inputs[i.0 as usize].kind
            {
                let len = b.len(model.shape(n));
                leaves.push(quote!(let #name = &ws.#name[..#len];));
                continue;
            }
            self.staging.insert(n);
            let f = b.leaf_field(n);
            let staging = ident(&self.staging_name(n));
            let view = match model.node(n).op {
                Op::Param(_) => quote!(#f.view()),
                _ => quote!(#f),
            };
            leaves.push(quote!(let #name = rt::contiguous(#view, &mut ws.#staging);));
        }
        let mut dims = vec![];
        for d in b.uses.dims.clone() {
            let local = ident(&cx.names.dim[d as usize]);
            dims.push(quote!(let #local = dims.#local;));
        }
        let _ = plan;
        out.extend(dims);
        out.extend(modes);
        out.extend(leaves);
        out.extend(buffers);
        out.extend(grads);
        out
    }

    /// The length of family `f`'s stacked buffer: its members' length times the steps.
    fn stack_len(&self, b: &mut Body<'_>, f: usize) -> expr::Ex {
        let family = &self.cx.families.list[f];
        let shape = family
            .members
            .iter()
            .flatten()
            .next()
            .map_or(&[][..], |n| self.cx.model.shape(*n).as_slice());
        let len = b.len(shape);
        Ex::mul(&len, &Ex::usize(family.members.len()))
    }

    /// The start of an entry point of a model with modes: the states checked, the
    /// mode set (1 in the training step, 0 in eval mode), each dropout mask drawn
    /// from `rng` (training) or set to ones (eval).
    fn mode_prologue(&mut self, b: &mut Body<'_>, training: bool) -> Vec<TokenStream> {
        let cx = self.cx;
        let model = cx.model;
        let mut out = vec![];
        if model
            .inputs
            .iter()
            .any(|i| matches!(i.kind, nnc_ir::InputKind::State(_)))
        {
            out.push(quote!(state.check()?;));
        }
        for (k, info) in model.inputs.iter().enumerate() {
            match info.kind {
                nnc_ir::InputKind::Training => {
                    let read = model
                        .input_node(nnc_ir::InputId(k as u32))
                        .is_some_and(|n| {
                            b.uses.leaf_scalars.contains(&n) || b.uses.leaf_slices.contains(&n)
                        });
                    if !read {
                        continue;
                    }
                    let text = if training {
                        "training step"
                    } else {
                        "eval mode"
                    };
                    let v = Ex::float(if training { 1.0 } else { 0.0 }).ts;
                    out.push(quote!(nnc_comment!(#text);));
                    out.push(quote!(let mode: F = #v;));
                }
                nnc_ir::InputKind::Mask { keep } => {
                    let Some(node) = model.input_node(nnc_ir::InputId(k as u32)) else {
                        continue;
                    };
                    self.masks.insert(node);
                    let buf = ident(&cx.names.node[node.index()]);
                    let len = b.len(model.shape(node));
                    let at = cx.location(info.span);
                    if training {
                        let text = format!(
                            "{}: keep each element with probability {}, then scale by 1 / {} ({at})",
                            info.name,
                            nnc_ir::print::number(keep),
                            nnc_ir::print::number(keep)
                        );
                        let keep = f64_lit(keep);
                        out.push(quote!(nnc_comment!(#text);));
                        out.push(quote!(rt::dropout_mask(&mut ws.#buf[..#len], #keep, rng);));
                    } else {
                        let text = format!("{}: no dropout in eval mode ({at})", info.name);
                        let one = Ex::float(1.0).ts;
                        out.push(quote!(nnc_comment!(#text);));
                        out.push(quote!(ws.#buf[..#len].fill(#one);));
                    }
                }
                _ => {}
            }
        }
        out
    }

    /// Everything in the module.
    fn items(&mut self, functions: &[TokenStream]) -> TokenStream {
        let cx = self.cx;
        let model = cx.model;
        let f_ty = cx.float_ty();
        let strukt = ident(&cx.names.model_struct);
        let title = if model.has_modes() {
            format!(
                " The model `{}` (with train and eval modes: its entry points take the `State` and the generator, so it does not implement `::nnc::runtime::Model`).",
                model.name
            )
        } else {
            format!(
                " The model `{}`: implements [`::nnc::runtime::Model`].",
                model.name
            )
        };
        let params = self.params();
        let grads = self.grads();
        let inputs = self.inputs();
        let outputs = self.outputs();
        let workspace = self.workspace();
        let state = self.state();
        let model_impl = if model.has_modes() {
            self.tensor_sets()
        } else {
            self.model_impl()
        };
        let module_doc = self.module_doc();
        let mut imports = vec![];
        if self.imports[0] {
            imports.push(quote!(
                use ::nnc::runtime::linalg::matmul;
            ));
        }
        match (self.imports[1], self.imports[2]) {
            (true, true) => imports.push(quote!(
                use ::nnc::ndarray::{aview1, aview_mut1};
            )),
            (true, false) => imports.push(quote!(
                use ::nnc::ndarray::aview1;
            )),
            (false, true) => imports.push(quote!(
                use ::nnc::ndarray::aview_mut1;
            )),
            (false, false) => {}
        }
        // `net!`'s tokens carry no spacing, so this lint reads the steps `[l - 1, l]`
        // of a rolled loop's bindings as `[l -1, l]`.
        let rolled = (!self.stacks.is_empty()).then(|| quote! {
            #![allow(clippy::possible_missing_comma, reason = "a rolled loop binds its steps `[l - 1, l]` of a stack")]
        });
        quote! {
            #(#module_doc)*
            #![allow(dead_code, reason = "the module is the model's whole API, like a library's: a program uses the parts it needs")]
            #rolled
            #![allow(clippy::needless_range_loop, reason = "loops index several arrays by the same position, as the math does")]
            #![allow(clippy::eq_op, clippy::if_same_then_else, reason = "the model's own expressions, such as `x - x` or `where(c, x, x)`, are computed as written")]
            #![allow(clippy::manual_memcpy, reason = "a gradient copied back through a broadcast is a loop like every other nest")]
            use ::nnc::ndarray::prelude::*;
            #(#imports)*
            use ::nnc::runtime::support as rt;
            use ::nnc::runtime::ShapeError;

            /// The float type the model computes in.
            pub type F = #f_ty;

            #[doc = #title]
            #[derive(Clone, Copy, Debug, Default)]
            pub struct #strukt;

            #params
            #state
            #grads
            #inputs
            #outputs
            #workspace
            #(#functions)*
            #model_impl
        }
    }

    fn module_doc(&self) -> Vec<TokenStream> {
        let m = self.model();
        let mut lines = vec![format!(
            " `{}` ({}), generated by nnc from `{}`.",
            m.name, m.dtype, self.cx.src.file
        )];
        lines.push(String::new());
        lines.push(
            " - [`Params`]: the parameters; [`Params::init`] draws them from their initialisers."
                .into(),
        );
        lines.push(" - [`Inputs`]: borrowed inputs; [`Inputs::dims`] checks them.".into());
        lines.push(
            " - [`Workspace`]: every buffer a call needs, sized from the runtime dims.".into(),
        );
        lines.push(
            " - [`loss`], [`forward`] (to [`Outputs`]) and [`loss_and_grad`] (into [`Grads`])."
                .into(),
        );
        lines.push(String::new());
        lines.push(
            " Each statement below is commented with the value it computes in the source's".into(),
        );
        lines.push(
            " names, where in the source it comes from, and for the backward pass the".into(),
        );
        lines.push(" derivative rule that produced it.".into());
        lines.iter().map(|l| quote!(#![doc = #l])).collect()
    }

    /// Size of a dim in item code: `dims.n` or a literal.
    fn size_in(&self, d: Dim, dims: &TokenStream) -> TokenStream {
        match d {
            Dim::Fixed(n) => usize_lit(n),
            Dim::Var(v) => {
                let f = ident(&self.cx.names.dim[v.0 as usize]);
                quote!(#dims.#f)
            }
        }
    }

    fn params(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let mut fields = vec![];
        let mut inits = vec![];
        let mut checks = vec![];
        for (k, p) in m.params.iter().enumerate() {
            let f = ident(&cx.names.param_field[k]);
            let ty = array_ty(p.shape.len(), quote!(F));
            let d = doc(&format!(
                " `{}: {} = {}`",
                p.name,
                m.shape_str(&p.shape),
                init_text(&p.init)
            ));
            fields.push(quote!(#d pub #f: #ty));
            let ix = ix_of(&p.shape, &mut |d| self.size_in(d, &quote!(dims)));
            let init = init_tokens(&p.init);
            inits.push(quote!(#f: rt::init(#ix, #init, rng)));
            let name = &p.name;
            let sizes: Vec<TokenStream> = p
                .shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => usize_lit(*n),
                    Dim::Var(_) => usize_lit(0),
                })
                .collect();
            let labels: Vec<String> = p.shape.iter().map(|d| cx.dim_label(*d)).collect();
            checks.push(
                quote!(rt::check_shape(#name, self.#f.shape(), &[#(#sizes),*], &[#(#labels),*])?;),
            );
        }
        let allow = self.snake_allow(m.params.iter().map(|p| p.name.as_str()));
        // A model without parameters draws nothing.
        let (rng, use_init) = if m.params.is_empty() {
            (quote!(_rng), quote!())
        } else {
            (
                quote!(rng),
                quote!(
                    use ::nnc::runtime::init::Init;
                ),
            )
        };
        quote! {
            /// The parameters, with the model's own names.
            #[derive(Clone, Debug, PartialEq)]
            #allow
            pub struct Params { #(#fields),* }

            impl Params {
                /// Parameters drawn from their declared initialisers, in declaration order.
                pub fn init<R: ::nnc::rand::Rng + ?Sized>(#rng: &mut R) -> Params {
                    #use_init
                    Params { #(#inits),* }
                }

                /// Checks every parameter has its declared shape.
                pub fn check(&self) -> Result<(), ShapeError> {
                    #(#checks)*
                    Ok(())
                }
            }
        }
    }

    fn snake_allow<'s>(&self, mut names: impl Iterator<Item = &'s str>) -> TokenStream {
        if names.all(is_snake) {
            quote!()
        } else {
            quote!(#[allow(non_snake_case, reason = "fields keep the model's own names")])
        }
    }

    fn grads(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let mut fields = vec![];
        let mut zeros = vec![];
        let mut uses_dims = false;
        for (k, (of, _)) in m.grads.iter().enumerate() {
            let f = ident(&cx.names.grad_field[k]);
            let shape = m.grad_shape(*of);
            let ty = array_ty(shape.len(), quote!(F));
            let d = doc(&format!(
                " d loss / d `{}`: {}",
                m.grad_name(*of),
                m.shape_str(shape)
            ));
            fields.push(quote!(#d pub #f: #ty));
            uses_dims |= shape.iter().any(|d| matches!(d, Dim::Var(_)));
            let ix = ix_of(shape, &mut |d| self.size_in(d, &quote!(dims)));
            zeros.push(quote!(#f: Array::zeros(#ix)));
        }
        let dims_arg = if uses_dims {
            quote!(dims)
        } else {
            quote!(_dims)
        };
        let allow = self.snake_allow(m.grads.iter().map(|(of, _)| m.grad_name(*of)));
        quote! {
            /// The gradient of the loss for every parameter, then every `grad` input.
            #[derive(Clone, Debug, PartialEq)]
            #allow
            pub struct Grads { #(#fields),* }

            impl Grads {
                /// Zeroed gradients (`grad` inputs sized for `dims`).
                pub fn zeros(#dims_arg: Dims) -> Grads {
                    Grads { #(#zeros),* }
                }
            }
        }
    }

    /// Class-index bounds of each index input: `(dim label, size)` per use.
    fn index_bounds(&self, input: usize) -> Vec<Dim> {
        let m = self.model();
        let Some(node) = m.input_node(nnc_ir::InputId(input as u32)) else {
            return vec![];
        };
        let mut out = vec![];
        for n in &m.nodes {
            let bound = match n.op {
                Op::Pick { .. } if n.args.get(1) == Some(&node) => {
                    m.shape(n.args[0]).get(1).copied()
                }
                Op::OneHot { classes } if n.args.first() == Some(&node) => Some(classes),
                _ => None,
            };
            if let Some(b) = bound
                && !out.contains(&b)
            {
                out.push(b);
            }
        }
        out
    }

    fn inputs(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let mut fields = vec![];
        let mut checks = vec![];
        let mut index_checks = vec![];
        let mut bound: Vec<bool> = vec![false; m.dims.len()];
        let mut first: Vec<Option<TokenStream>> = vec![None; m.dims.len()];
        // Each runtime dim as an input gives it: (dim, input, axis, size).
        let mut given = vec![];
        for (k, input) in m.inputs.iter().enumerate() {
            if input.kind != nnc_ir::InputKind::Data {
                continue;
            }
            let f = ident(&cx.names.input_field[k]);
            let elem = if input.ty.elem == Elem::Index {
                quote!(usize)
            } else {
                quote!(F)
            };
            let ty = view_ty(input.ty.shape.len(), elem);
            let d = doc(&format!(
                " `{}: {}`{}",
                input.name,
                m.type_str(&input.ty),
                if input.grad {
                    " (its gradient is returned)"
                } else {
                    ""
                }
            ));
            fields.push(quote!(#d pub #f: #ty));
            let name = &input.name;
            for (axis, d) in input.ty.shape.iter().enumerate() {
                let a = usize_lit(axis);
                let actual = quote!(self.#f.len_of(Axis(#a)));
                match d {
                    Dim::Var(v) if !bound[v.0 as usize] => {
                        bound[v.0 as usize] = true;
                        let local = ident(&cx.names.dim[v.0 as usize]);
                        let label = cx.dim_label(*d);
                        given.push(quote!((#label, #name, #a, #local)));
                        checks.push(quote!(let #local = #actual;));
                        first[v.0 as usize] = Some(actual.clone());
                    }
                    _ => {
                        let label = cx.dim_label(*d);
                        let expected = match d {
                            Dim::Fixed(n) => usize_lit(*n),
                            Dim::Var(v) => ident(&cx.names.dim[v.0 as usize]),
                        };
                        checks.push(quote!(rt::check_dim(#name, #a, #label, #expected, #actual)?;));
                    }
                }
            }
            if input.ty.elem == Elem::Index {
                for b in self.index_bounds(k) {
                    let label = cx.dim_label(b);
                    let size = match b {
                        Dim::Fixed(n) => usize_lit(n),
                        Dim::Var(v) if bound[v.0 as usize] => ident(&cx.names.dim[v.0 as usize]),
                        Dim::Var(_) => usize_lit(0),
                    };
                    index_checks.push(quote!(rt::check_indices(#name, #label, #size, self.#f)?;));
                }
            }
        }
        // Every shape with a runtime dim among the workspace's buffers and the
        // gradients, once: the sizes the inputs give must keep each within what a
        // buffer can hold, before any size is computed (`rt::check_sizes`).
        let mut shapes: Vec<&Shape> = vec![];
        let held = self
            .buffers
            .iter()
            .chain(&self.staging)
            .chain(&self.masks)
            .map(|n| m.shape(*n));
        let copies = self.out_copies.iter().map(|k| m.shape(m.outputs[*k].1));
        let grads = m.grads.iter().map(|(of, _)| m.grad_shape(*of));
        for shape in held.chain(copies).chain(grads) {
            if shape.iter().any(|d| matches!(d, Dim::Var(_))) && !shapes.contains(&shape) {
                shapes.push(shape);
            }
        }
        if !shapes.is_empty() {
            let sizes = shapes.iter().map(|shape| {
                let label = m.shape_str(shape);
                let sizes = shape.iter().map(|d| match d {
                    Dim::Fixed(n) => usize_lit(*n),
                    Dim::Var(v) if bound[v.0 as usize] => ident(&cx.names.dim[v.0 as usize]),
                    Dim::Var(_) => usize_lit(0),
                });
                quote!((#label, &[#(#sizes),*][..]))
            });
            checks.push(quote!(rt::check_sizes(&[#(#given),*], &[#(#sizes),*])?;));
        }
        let mut dims_fields = vec![];
        let mut dims_init = vec![];
        let mut dims_unchecked = vec![];
        for (i, d) in m.dims.iter().enumerate() {
            if d.size.is_some() {
                continue;
            }
            let local = ident(&cx.names.dim[i]);
            let dd = doc(&format!(" `{}`", d.name));
            dims_fields.push(quote!(#dd pub #local: usize));
            if bound[i] {
                dims_init.push(quote!(#local));
            } else {
                dims_init.push(quote!(#local: 0));
            }
            let v = first[i].clone().unwrap_or_else(|| quote!(0));
            dims_unchecked.push(quote!(#local: #v));
        }
        let (lifetime_field, marker_init) = if data_inputs(m).next().is_none() {
            (
                quote!(
                    /// No inputs: the lifetime is unused.
                    pub marker: ::std::marker::PhantomData<&'a ()>
                ),
                quote!(marker: ::std::marker::PhantomData),
            )
        } else {
            (quote!(), quote!())
        };
        let _ = marker_init;
        let allow = self.snake_allow(data_inputs(m).map(|i| i.name.as_str()));
        let dims_allow = self.snake_allow(m.dims.iter().filter(|d| d.size.is_none()).map(|_| "n"));
        quote! {
            /// The inputs, borrowed.
            #[derive(Clone, Copy, Debug)]
            #allow
            pub struct Inputs<'a> { #(#fields,)* #lifetime_field }

            /// The sizes of the runtime dims.
            #[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
            #dims_allow
            pub struct Dims { #(#dims_fields),* }

            impl Inputs<'_> {
                /// The runtime dims, after checking every input against its declaration
                /// (and each other): an error names the input, the dim and both sizes.
                pub fn dims(&self) -> Result<Dims, ShapeError> {
                    #(#checks)*
                    #(#index_checks)*
                    Ok(Dims { #(#dims_init),* })
                }

                /// The runtime dims as the first input using each gives them, unchecked
                /// (for sizing buffers before a checked call).
                pub fn dims_unchecked(&self) -> Dims {
                    Dims { #(#dims_unchecked),* }
                }
            }
        }
    }

    fn outputs(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let mut fields = vec![];
        for (k, (name, o)) in m.outputs.iter().enumerate() {
            let f = ident(&cx.names.output_field[k]);
            let ty = m.ty(*o);
            let elem = if ty.elem == Elem::Index {
                quote!(usize)
            } else {
                quote!(F)
            };
            let t = if ty.shape.is_empty() {
                elem
            } else {
                view_ty(ty.shape.len(), elem)
            };
            let d = doc(&format!(" `{name}`: {}", m.type_str(ty)));
            fields.push(quote!(#d pub #f: #t));
        }
        if self.outputs_need_marker() {
            fields.push(quote!(
                /// Outputs borrow the workspace.
                pub workspace: ::std::marker::PhantomData<&'a Workspace>
            ));
        }
        let allow = self.snake_allow(m.outputs.iter().map(|(n, _)| n.as_str()));
        quote! {
            /// The outputs of [`forward`], borrowed from the workspace.
            #[derive(Clone, Copy, Debug)]
            #allow
            pub struct Outputs<'a> { #(#fields),* }
        }
    }

    fn workspace(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let mut fields = vec![];
        let mut grow = vec![];
        let mut dims_used: BTreeSet<usize> = BTreeSet::new();
        let mut size = |shape: &Shape| -> TokenStream {
            let fixed = nnc_ir::fixed_elements(shape);
            let mut terms: Vec<TokenStream> = vec![];
            for d in shape {
                if let Dim::Var(v) = d {
                    dims_used.insert(v.0 as usize);
                    terms.push(ident(&cx.names.dim[v.0 as usize]));
                }
            }
            if fixed != 1 || terms.is_empty() {
                terms.push(usize_lit(fixed));
            }
            let mut product = TokenStream::new();
            for (k, t) in terms.iter().enumerate() {
                if k > 0 {
                    product.extend(quote!(*));
                }
                product.extend(t.clone());
            }
            product
        };
        for n in &self.buffers {
            let name = ident(&cx.names.node[n.index()]);
            let elem = if plan::is_index(m, *n) {
                quote!(usize)
            } else {
                quote!(F)
            };
            let mut text = format!(" `{}`: {}", cx.display(*n), m.type_str(m.ty(*n)));
            if let Some(sharers) = self.sharers.get(n) {
                let names: Vec<String> = sharers
                    .iter()
                    .map(|s| format!("`{}`", cx.display(*s)))
                    .collect();
                text.push_str(&format!(
                    "; in turn also {}, each written once the one before is read for the last time",
                    names.join(", ")
                ));
            }
            let d = doc(&text);
            fields.push(quote!(#d #name: Vec<#elem>));
            let len = size(m.shape(*n));
            grow.push(quote!(rt::grow(&mut self.#name, #len);));
        }
        for f in &self.stacks {
            let family = &cx.families.list[*f];
            let Some(first) = family.members.iter().flatten().next() else {
                continue;
            };
            let name = ident(&family.stack);
            let elem = if plan::is_index(m, *first) {
                quote!(usize)
            } else {
                quote!(F)
            };
            let info = &m.loops[family.lp as usize];
            let d = doc(&format!(
                " `{}` at each step of `for {} in {}..{}`, one after the other: {}",
                cx.display(*first),
                info.index,
                info.start,
                info.end,
                m.type_str(m.ty(*first))
            ));
            fields.push(quote!(#d #name: Vec<#elem>));
            let mut shape = vec![Dim::Fixed(family.members.len())];
            shape.extend(m.shape(*first).iter().copied());
            let len = size(&shape);
            grow.push(quote!(rt::grow(&mut self.#name, #len);));
        }
        for n in &self.masks {
            let name = ident(&cx.names.node[n.index()]);
            let d = doc(&format!(
                " The dropout mask `{}`: {}",
                cx.display(*n),
                m.type_str(m.ty(*n))
            ));
            fields.push(quote!(#d #name: Vec<F>));
            let len = size(m.shape(*n));
            grow.push(quote!(rt::grow(&mut self.#name, #len);));
        }
        for n in &self.staging {
            let name = ident(&self.staging_name(*n));
            let elem = if plan::is_index(m, *n) {
                quote!(usize)
            } else {
                quote!(F)
            };
            let d = doc(&format!(
                " `{}` in row-major order, if the caller's array is not",
                cx.display(*n)
            ));
            fields.push(quote!(#d #name: Vec<#elem>));
            let len = size(m.shape(*n));
            grow.push(quote!(rt::grow_capacity(&mut self.#name, #len);));
        }
        for k in &self.out_copies {
            let name = ident(&self.out_copy_name(*k));
            let (oname, o) = &m.outputs[*k];
            let elem = if plan::is_index(m, *o) {
                quote!(usize)
            } else {
                quote!(F)
            };
            let d = doc(&format!(" The output `{oname}`"));
            fields.push(quote!(#d #name: Vec<#elem>));
            let len = size(m.shape(*o));
            grow.push(quote!(rt::grow(&mut self.#name, #len);));
        }
        let d = doc(" The threads the loops and products run on");
        fields.push(quote!(#d threads: ::nnc::runtime::parallel::Threads));
        if !self.products.is_empty() {
            let d =
                doc(" Packing space for the matmuls (one per thread), so they allocate nothing");
            fields.push(quote!(#d gemm: ::nnc::runtime::linalg::GemmScratch<F>));
            grow.push(quote!(self.gemm.set_threads(self.threads.count());));
            for [rows, inner, cols] in &self.products {
                let [m, k, n] = [rows, inner, cols].map(|d| size(&vec![*d]));
                grow.push(quote!(self.gemm.reserve(#m, #k, #n);));
            }
        }
        let dims_locals: Vec<TokenStream> = dims_used
            .iter()
            .map(|d| {
                let l = ident(&cx.names.dim[*d]);
                quote!(let #l = dims.#l;)
            })
            .collect();
        let dims_arg = if dims_used.is_empty() {
            quote!(_dims)
        } else {
            quote!(dims)
        };
        // With no buffers, the threads are the whole workspace.
        let new_ws = if fields.len() == 1 {
            quote!(Workspace { threads })
        } else {
            quote!(Workspace {
                threads,
                ..Workspace::default()
            })
        };
        quote! {
            /// Every buffer a call needs, sized from the runtime dims: after
            /// [`Workspace::new`], calls with the same (or smaller) dims allocate nothing.
            /// (`Workspace::default()` is empty and runs on one thread.)
            #[derive(Clone, Debug, Default)]
            pub struct Workspace { #(#fields),* }

            impl Workspace {
                /// A workspace for `dims`, on the shared threads
                /// ([`::nnc::runtime::parallel::Threads::shared`]: `NNC_THREADS`, else
                /// every core).
                pub fn new(dims: Dims) -> Workspace {
                    Workspace::with_threads(dims, ::nnc::runtime::parallel::Threads::shared())
                }

                /// A workspace for `dims` whose calls run on `threads`. Results are the
                /// same, bit for bit, whatever the thread count.
                pub fn with_threads(dims: Dims, threads: ::nnc::runtime::parallel::Threads) -> Workspace {
                    let mut ws = #new_ws;
                    ws.grow(dims);
                    ws
                }

                /// The threads calls run on.
                pub fn threads(&self) -> &::nnc::runtime::parallel::Threads {
                    &self.threads
                }

                /// Runs later calls on `threads` (the next call makes room for them).
                pub fn set_threads(&mut self, threads: ::nnc::runtime::parallel::Threads) {
                    self.threads = threads;
                }

                /// Makes every buffer large enough for `dims` (allocating only if one is
                /// too small).
                pub fn grow(&mut self, #dims_arg: Dims) {
                    #(#dims_locals)*
                    #(#grow)*
                }
            }
        }
    }

    fn model_impl(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let strukt = ident(&cx.names.model_struct);
        let info = |name: &str, elem: Elem, shape: &Shape| {
            let kind = if elem == Elem::Index {
                quote!(rtm::TensorKind::Index)
            } else {
                quote!(rtm::TensorKind::Float)
            };
            let dims: Vec<TokenStream> = shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => {
                        let n = usize_lit(*n);
                        quote!(rtm::DimSpec::Fixed(#n))
                    }
                    Dim::Var(v) => {
                        let s = m.dim_name(*v);
                        quote!(rtm::DimSpec::Runtime(#s))
                    }
                })
                .collect();
            quote!(rtm::TensorInfo { name: #name, kind: #kind, shape: &[#(#dims),*] })
        };
        let inputs: Vec<TokenStream> = m
            .inputs
            .iter()
            .map(|i| info(&i.name, i.ty.elem, &i.ty.shape))
            .collect();
        let params: Vec<TokenStream> = m
            .params
            .iter()
            .map(|p| info(&p.name, Elem::Float, &p.shape))
            .collect();
        let outputs: Vec<TokenStream> = m
            .outputs
            .iter()
            .map(|(name, o)| info(name, m.ty(*o).elem, &m.ty(*o).shape))
            .collect();
        let grads: Vec<TokenStream> = m
            .grads
            .iter()
            .map(|(of, _)| info(m.grad_name(*of), Elem::Float, m.grad_shape(*of)))
            .collect();
        let model_name = &m.name;
        let tensor_sets = self.tensor_sets();
        let floats: Vec<&str> = m
            .inputs
            .iter()
            .filter(|i| i.ty.elem == Elem::Float)
            .map(|i| i.name.as_str())
            .collect();
        let indices: Vec<&str> = m
            .inputs
            .iter()
            .filter(|i| i.ty.elem == Elem::Index)
            .map(|i| i.name.as_str())
            .collect();
        let binds: Vec<TokenStream> = m
            .inputs
            .iter()
            .enumerate()
            .map(|(k, i)| {
                let f = ident(&cx.names.input_field[k]);
                let name = &i.name;
                if i.ty.elem == Elem::Index {
                    quote!(#f: rt::find_index(named, #name)?)
                } else {
                    quote!(#f: rt::find_float(named, #name)?)
                }
            })
            .collect();
        let marker = if m.inputs.is_empty() {
            quote!(marker: ::std::marker::PhantomData)
        } else {
            quote!()
        };
        let outs: Vec<TokenStream> = m
            .outputs
            .iter()
            .enumerate()
            .map(|(k, (name, o))| {
                let f = ident(&cx.names.output_field[k]);
                let ty = m.ty(*o);
                let wrap = if ty.elem == Elem::Index {
                    quote!(::nnc::runtime::OutputValue::Index)
                } else {
                    quote!(::nnc::runtime::OutputValue::Float)
                };
                if ty.shape.is_empty() {
                    quote!((#name, #wrap(::nnc::ndarray::arr0(out.#f).into_dyn())))
                } else {
                    quote!((#name, #wrap(out.#f.to_owned().into_dyn())))
                }
            })
            .collect();
        let out_binding = if m.outputs.is_empty() {
            quote!(forward(params, inputs, ws)?;)
        } else {
            quote!(let out = forward(params, inputs, ws)?;)
        };
        quote! {
            static SIGNATURE: ::nnc::runtime::Signature = {
                use ::nnc::runtime as rtm;
                rtm::Signature {
                    model: #model_name,
                    inputs: &[#(#inputs),*],
                    params: &[#(#params),*],
                    outputs: &[#(#outputs),*],
                    grads: &[#(#grads),*],
                }
            };

            #tensor_sets

            impl ::nnc::runtime::Model for #strukt {
                type Float = F;
                type Params = Params;
                type Grads = Grads;
                type Inputs<'a> = Inputs<'a>;
                type Workspace = Workspace;

                fn signature() -> &'static ::nnc::runtime::Signature {
                    &SIGNATURE
                }

                fn init_params<R: ::nnc::rand::Rng + ?Sized>(rng: &mut R) -> Params {
                    Params::init(rng)
                }

                fn zero_grads(inputs: &Inputs<'_>) -> Grads {
                    Grads::zeros(inputs.dims().unwrap_or_default())
                }

                fn bind_inputs(named: &::nnc::runtime::NamedInputs<F>) -> Result<Inputs<'_>, ShapeError> {
                    rt::reject_unknown(named, #model_name, &[#(#floats),*], &[#(#indices),*])?;
                    let inputs = Inputs { #(#binds,)* #marker };
                    inputs.dims()?;
                    Ok(inputs)
                }

                fn workspace(inputs: &Inputs<'_>) -> Workspace {
                    Workspace::new(inputs.dims().unwrap_or_default())
                }

                fn workspace_on(inputs: &Inputs<'_>, threads: ::nnc::runtime::parallel::Threads) -> Workspace {
                    Workspace::with_threads(inputs.dims().unwrap_or_default(), threads)
                }

                fn loss(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<F, ShapeError> {
                    loss(params, inputs, ws)
                }

                fn loss_and_grad(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace, grads: &mut Grads) -> Result<F, ShapeError> {
                    loss_and_grad(params, inputs, ws, grads)
                }

                fn sgd_step(params: &mut Params, inputs: &Inputs<'_>, ws: &mut Workspace, grads: &mut Grads, lr: F) -> Result<F, ShapeError> {
                    sgd_step(params, inputs, ws, grads, lr)
                }

                fn outputs(params: &Params, inputs: &Inputs<'_>, ws: &mut Workspace) -> Result<Vec<(&'static str, ::nnc::runtime::OutputValue<F>)>, ShapeError> {
                    #out_binding
                    Ok(vec![#(#outs),*])
                }
            }
        }
    }
}

impl Gen<'_> {
    /// `TensorSet` for `Params` and `Grads` (and `State`, when the model has states):
    /// by-name access for generic code (npz files, optimisers, gradient checks).
    fn tensor_sets(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let pnames: Vec<(String, String)> = m
            .params
            .iter()
            .enumerate()
            .map(|(k, p)| (p.name.clone(), cx.names.param_field[k].clone()))
            .collect();
        let gnames: Vec<(String, String)> = m
            .grads
            .iter()
            .enumerate()
            .map(|(k, (of, _))| (m.grad_name(*of).to_string(), cx.names.grad_field[k].clone()))
            .collect();
        let mut out = tensor_set(quote!(Params), &pnames);
        out.extend(tensor_set(quote!(Grads), &gnames));
        let snames: Vec<(String, String)> = states(m)
            .map(|(k, s)| (s.name.clone(), cx.names.input_field[k].clone()))
            .collect();
        if !snames.is_empty() {
            out.extend(tensor_set(quote!(State), &snames));
        }
        out
    }

    /// `State`: the `state`s, with their initial values and shape check.
    fn state(&self) -> TokenStream {
        let cx = self.cx;
        let m = cx.model;
        let mut fields = vec![];
        let mut inits = vec![];
        let mut checks = vec![];
        for (k, s) in states(m) {
            let nnc_ir::InputKind::State(init) = s.kind else {
                continue;
            };
            let f = ident(&cx.names.input_field[k]);
            let shape = &s.ty.shape;
            let ty = array_ty(shape.len(), quote!(F));
            let d = doc(&format!(
                " `state {}: {} = {}`",
                s.name,
                m.shape_str(shape),
                init_text(&init)
            ));
            fields.push(quote!(#d pub #f: #ty));
            let ix = ix_of(shape, &mut |d| self.size_in(d, &quote!(dims)));
            let value = match init {
                Init::Ones => 1.0,
                Init::Constant(c) => c,
                _ => 0.0,
            };
            let value = Ex::float(value).ts;
            inits.push(quote!(#f: Array::from_elem(#ix, #value)));
            let name = &s.name;
            let sizes: Vec<TokenStream> = shape
                .iter()
                .map(|d| match d {
                    Dim::Fixed(n) => usize_lit(*n),
                    Dim::Var(_) => usize_lit(0),
                })
                .collect();
            let labels: Vec<String> = shape.iter().map(|d| cx.dim_label(*d)).collect();
            checks.push(
                quote!(rt::check_shape(#name, self.#f.shape(), &[#(#sizes),*], &[#(#labels),*])?;),
            );
        }
        if fields.is_empty() {
            return quote!();
        }
        let allow = self.snake_allow(states(m).map(|(_, s)| s.name.as_str()));
        quote! {
            /// The `state`s, with the model's own names: not trained, read in eval mode
            /// and by the training step, which writes their new values after it has run.
            #[derive(Clone, Debug, PartialEq)]
            #allow
            pub struct State { #(#fields),* }

            impl State {
                /// Every state at its declared initial value.
                pub fn init() -> State {
                    State { #(#inits),* }
                }

                /// Checks every state has its declared shape.
                pub fn check(&self) -> Result<(), ShapeError> {
                    #(#checks)*
                    Ok(())
                }
            }

            impl Default for State {
                fn default() -> State {
                    State::init()
                }
            }
        }
    }
}

/// The model's `state` declarations, with their positions among the inputs.
fn states(m: &Model) -> impl Iterator<Item = (usize, &nnc_ir::InputInfo)> {
    m.inputs
        .iter()
        .enumerate()
        .filter(|(_, i)| matches!(i.kind, nnc_ir::InputKind::State(_)))
}

/// The inputs the caller gives (not the leaves train and eval modes add).
fn data_inputs(m: &Model) -> impl Iterator<Item = &nnc_ir::InputInfo> {
    m.inputs
        .iter()
        .filter(|i| i.kind == nnc_ir::InputKind::Data)
}

/// `impl TensorSet<F> for #ty`, listing `(name, field)` in order.
fn tensor_set(ty: TokenStream, names: &[(String, String)]) -> TokenStream {
    let tensors = |mutable: bool| -> TokenStream {
        let items: Vec<TokenStream> = names
            .iter()
            .map(|(name, field)| {
                let f = ident(field);
                if mutable {
                    quote!((#name, self.#f.view_mut().into_dyn()))
                } else {
                    quote!((#name, self.#f.view().into_dyn()))
                }
            })
            .collect();
        quote!(vec![#(#items),*])
    };
    let (t, tm) = (tensors(false), tensors(true));
    quote! {
        impl ::nnc::runtime::TensorSet<F> for #ty {
            fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, F>)> { #t }
            fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, F>)> { #tm }
        }
    }
}

fn init_text(init: &Init) -> String {
    let n = nnc_ir::print::number;
    match init {
        Init::Zeros => "zeros".into(),
        Init::Ones => "ones".into(),
        Init::Constant(c) => n(*c),
        Init::Normal { mean, std } => format!("normal({}, {})", n(*mean), n(*std)),
        Init::Uniform { lo, hi } => format!("uniform({}, {})", n(*lo), n(*hi)),
        Init::Xavier => "xavier".into(),
        Init::He => "he".into(),
    }
}

fn f64_lit(v: f64) -> TokenStream {
    Ex::float(v).ts
}

fn init_tokens(init: &Init) -> TokenStream {
    match init {
        Init::Zeros => quote!(Init::Zeros),
        Init::Ones => quote!(Init::Ones),
        Init::Constant(c) => {
            let c = f64_lit(*c);
            quote!(Init::Constant(#c))
        }
        Init::Normal { mean, std } => {
            let (a, b) = (f64_lit(*mean), f64_lit(*std));
            quote!(Init::Normal { mean: #a, std: #b })
        }
        Init::Uniform { lo, hi } => {
            let (a, b) = (f64_lit(*lo), f64_lit(*hi));
            quote!(Init::Uniform { lo: #a, hi: #b })
        }
        Init::Xavier => quote!(Init::Xavier),
        Init::He => quote!(Init::He),
    }
}

/// Formats a generated file and turns comment markers into comments.
///
/// Comments travel through formatting as `nnc_comment!(k);` statements (or items)
/// whose text is kept aside: `prettyplease` keeps such a short statement on one line,
/// and the line becomes `// text` at its indentation.
pub fn finish(tokens: TokenStream) -> Result<String, String> {
    let mut texts = vec![];
    let tokens = number_comments(tokens, &mut texts);
    let file: syn::File =
        syn::parse2(tokens).map_err(|e| format!("generated code does not parse: {e}"))?;
    let text = prettyplease::unparse(&file);
    let mut out = String::with_capacity(text.len());
    for line in text.lines() {
        let trimmed = line.trim_start();
        let id = trimmed
            .strip_prefix("nnc_comment!(")
            .and_then(|r| r.strip_suffix(");"))
            .and_then(|k| k.parse::<usize>().ok());
        match id.and_then(|k| texts.get(k)) {
            Some(comment) => {
                let indent = &line[..line.len() - trimmed.len()];
                for part in comment.lines() {
                    out.push_str(indent);
                    out.push_str("// ");
                    out.push_str(part);
                    out.push('\n');
                }
            }
            None => {
                out.push_str(line);
                out.push('\n');
            }
        }
    }
    if out.contains("nnc_comment!") {
        return Err("a comment marker was not turned into a comment".into());
    }
    Ok(out)
}

/// Replaces the text of every `nnc_comment!("text")` with its index in `texts`.
fn number_comments(tokens: TokenStream, texts: &mut Vec<String>) -> TokenStream {
    use proc_macro2::{Group, Literal, TokenTree};
    let trees: Vec<TokenTree> = tokens.into_iter().collect();
    let mut out = Vec::with_capacity(trees.len());
    let mut i = 0;
    while i < trees.len() {
        let is_marker = matches!(&trees[i], TokenTree::Ident(id) if id == "nnc_comment")
            && matches!(trees.get(i + 1), Some(TokenTree::Punct(p)) if p.as_char() == '!');
        if is_marker && let Some(TokenTree::Group(g)) = trees.get(i + 2) {
            let lit = g.stream().into_iter().next();
            if let Some(TokenTree::Literal(l)) = lit
                && let Ok(syn::Lit::Str(s)) = syn::parse2::<syn::Lit>(TokenTree::Literal(l).into())
            {
                texts.push(s.value());
                let id = Literal::usize_unsuffixed(texts.len() - 1);
                out.push(trees[i].clone());
                out.push(trees[i + 1].clone());
                let mut ng = Group::new(g.delimiter(), TokenTree::Literal(id).into());
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
                i += 3;
                continue;
            }
        }
        match &trees[i] {
            TokenTree::Group(g) => {
                let mut ng = Group::new(g.delimiter(), number_comments(g.stream(), texts));
                ng.set_span(g.span());
                out.push(TokenTree::Group(ng));
            }
            other => out.push(other.clone()),
        }
        i += 1;
    }
    out.into_iter().collect()
}
