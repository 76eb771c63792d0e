//! The values a model is drawn at (and `nnc run` evaluates it at): inputs read from an
//! `.npz` file or drawn at random, parameters read from an `.npz` file or drawn from
//! their initialisers. Shared by `nnc graph`, `nnc run` and `nnc serve`, so the page
//! shows the numbers the command line prints.
//!
//! Arrays are matched to the model's declarations by name; a missing, unexpected,
//! mis-shaped or wrongly-typed array is an error naming it. Float arrays may be
//! stored as `f32` or `f64` (converted to the model's float type); index arrays as
//! any integer type, with non-negative values.

use ndarray::{ArrayD, IxDyn};
use nnc_autodiff::gradcheck::{MAX_INTERPRETER_BYTES, interpreter_bytes, random_point};
use nnc_ir::interp::{Bindings, Scalar, Value, bind_dims, concrete_shape};
use nnc_ir::modes::data_inputs;
use nnc_ir::{Elem, Init, Model};
use nnc_runtime::init;
use nnc_runtime::npz::{NpzError, NpzReader};
use nnc_runtime::rand::SeedableRng;
use nnc_runtime::rand::rngs::StdRng;
use std::path::Path;

/// A float type the interpreter computes in and `.npz` files store.
pub trait RunFloat: Scalar + nnc_runtime::Float {}
impl RunFloat for f32 {}
impl RunFloat for f64 {}

/// Where a picture's values come from.
#[derive(Clone, Copy, Debug)]
pub struct Spec<'a> {
    /// An `.npz` file holding every input; without it, random inputs.
    pub inputs: Option<&'a Path>,
    /// An `.npz` file holding every parameter; without it, drawn with `seed`.
    pub params: Option<&'a Path>,
    /// Seeds the random inputs and the parameters' initialisers.
    pub seed: u64,
    /// Without `inputs`: the size of every runtime dim of the random inputs.
    pub batch: usize,
}

/// The inputs (read, or random, saying so through `note`) and the parameters (read
/// or drawn), checked against the interpreter's memory budget before anything large
/// is allocated.
pub fn bindings(
    model: &Model,
    spec: &Spec<'_>,
    note: &mut dyn FnMut(&str),
) -> Result<Bindings<f64>, String> {
    let seed = spec.seed;
    let inputs = match spec.inputs {
        Some(path) => read_inputs::<f64>(model, path)?,
        None if data_inputs(model).next().is_none() => Vec::new(),
        None => {
            let dims: Vec<usize> = model
                .dims
                .iter()
                .map(|d| d.size.unwrap_or(spec.batch))
                .collect();
            interpreter_bytes(model, &dims, 8, MAX_INTERPRETER_BYTES).map_err(|e| e.to_string())?;
            note(&format!(
                "random inputs (standard normal, a batch of {}, seed {seed}); pass --inputs FILE.npz for yours",
                spec.batch
            ));
            let drawn = random_point(model, spec.batch, &mut StdRng::seed_from_u64(seed));
            model
                .inputs
                .iter()
                .map(|i| i.name.clone())
                .zip(drawn.inputs)
                .collect()
        }
    };
    let (params, state) = match spec.params {
        Some(path) => (
            read_params::<f64>(model, path)?,
            read_state::<f64>(model, path)?,
        ),
        None => (init_params::<f64>(model, seed), vec![]),
    };
    // Random inputs include the masks and states already.
    let inputs = if spec.inputs.is_some() || data_inputs(model).next().is_none() {
        with_mode_inputs(model, inputs, &state, true, seed)?
    } else {
        inputs
    };
    let values: Vec<Value<f64>> = inputs.iter().map(|(_, v)| v.clone()).collect();
    let dims = bind_dims(model, &values).map_err(|e| e.to_string())?;
    drop(values);
    interpreter_bytes(model, &dims, 8, MAX_INTERPRETER_BYTES).map_err(|e| e.to_string())?;
    Bindings::from_named(model, inputs, params).map_err(|e| e.to_string())
}

/// `inputs` (the data inputs) with the inputs train and eval modes add
/// ([`nnc_ir::InputKind`]): each `state` from `state` by name, else at its initial
/// value; each dropout mask drawn when `training` from one generator seeded with
/// `seed` by the runtime's `fill_dropout_mask` (as generated code draws it), all
/// ones otherwise; the mode flag of a model lowered `Mode::Switched`.
pub fn with_mode_inputs<F: RunFloat>(
    model: &Model,
    mut inputs: Vec<(String, Value<F>)>,
    state: &[(String, ArrayD<F>)],
    training: bool,
    seed: u64,
) -> Result<Vec<(String, Value<F>)>, String> {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw = |mask: &mut [F], keep: f64| init::fill_dropout_mask(mask, keep, &mut rng);
    let added = nnc_ir::modes::mode_inputs(model, &inputs, state, training, &mut draw)
        .map_err(|e| e.to_string())?;
    inputs.extend(added);
    Ok(inputs)
}

/// Every input of `model` from the `.npz` file at `path`, by its declared name.
pub fn read_inputs<F: RunFloat>(
    model: &Model,
    path: &Path,
) -> Result<Vec<(String, Value<F>)>, String> {
    let mut npz = NpzReader::open(path).map_err(|e| e.to_string())?;
    let declared: Vec<&str> = data_inputs(model).map(|i| i.name.as_str()).collect();
    npz.check_names("input", &declared)
        .map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(model.inputs.len());
    for info in data_inputs(model) {
        let value = match info.ty.elem {
            Elem::Float => npz.float::<F>(&info.name).map(Value::Float),
            Elem::Index => npz.index(&info.name).map(Value::Index),
        };
        let ty = model.type_str(&info.ty);
        let value = value.map_err(|e| declared_as(e, "input", &info.name, &ty))?;
        inputs.push((info.name.clone(), value));
    }
    Ok(inputs)
}

/// Every parameter of `model` from the `.npz` file at `path`, by its declared name.
pub fn read_params<F: RunFloat>(
    model: &Model,
    path: &Path,
) -> Result<Vec<(String, ArrayD<F>)>, String> {
    let mut npz = NpzReader::open(path).map_err(|e| e.to_string())?;
    // The file holds the `state`s too, saved with the parameters.
    let declared: Vec<&str> = model
        .params
        .iter()
        .map(|p| p.name.as_str())
        .chain(states(model).map(|i| i.name.as_str()))
        .collect();
    npz.check_names("parameter", &declared)
        .map_err(|e| e.to_string())?;
    let mut params = Vec::with_capacity(model.params.len());
    for info in &model.params {
        let shape = model.shape_str(&info.shape);
        let array = npz
            .float::<F>(&info.name)
            .map_err(|e| declared_as(e, "parameter", &info.name, &shape))?;
        params.push((info.name.clone(), array));
    }
    Ok(params)
}

/// Every `state` of `model` from the parameters' `.npz` file at `path`, by its
/// declared name (the names were checked by [`read_params`]).
pub fn read_state<F: RunFloat>(
    model: &Model,
    path: &Path,
) -> Result<Vec<(String, ArrayD<F>)>, String> {
    let mut npz = NpzReader::open(path).map_err(|e| e.to_string())?;
    let mut out = vec![];
    for info in states(model) {
        let shape = model.shape_str(&info.ty.shape);
        let array = npz
            .float::<F>(&info.name)
            .map_err(|e| declared_as(e, "state", &info.name, &shape))?;
        out.push((info.name.clone(), array));
    }
    Ok(out)
}

/// The model's `state` declarations.
fn states(model: &Model) -> impl Iterator<Item = &nnc_ir::InputInfo> {
    model
        .inputs
        .iter()
        .filter(|i| matches!(i.kind, nnc_ir::InputKind::State(_)))
}

/// A read error with the model's declaration of the array appended:
/// `…, expected a float array (f32 or f64); input `x` is declared [N, 2]`.
fn declared_as(error: NpzError, what: &str, name: &str, declared: &str) -> String {
    format!("{error}; {what} `{name}` is declared {declared}")
}

/// Every parameter from its declared initialiser by the runtime's [`init::fill`] (as
/// generated code does), in declaration order, drawing from one generator seeded with
/// `seed`.
pub fn init_params<F: RunFloat>(model: &Model, seed: u64) -> Vec<(String, ArrayD<F>)> {
    let mut rng = StdRng::seed_from_u64(seed);
    model
        .params
        .iter()
        .map(|p| {
            let mut array = ArrayD::zeros(IxDyn(&concrete_shape(&p.shape, &[])));
            init::fill(&mut array.view_mut(), runtime_init(p.init), &mut rng);
            (p.name.clone(), array)
        })
        .collect()
}

fn runtime_init(init: Init) -> init::Init {
    match init {
        Init::Zeros => init::Init::Zeros,
        Init::Ones => init::Init::Ones,
        Init::Constant(c) => init::Init::Constant(c),
        Init::Normal { mean, std } => init::Init::Normal { mean, std },
        Init::Uniform { lo, hi } => init::Init::Uniform { lo, hi },
        Init::Xavier => init::Init::Xavier,
        Init::He => init::Init::He,
    }
}
