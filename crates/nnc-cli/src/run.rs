//! `nnc run FILE [--model NAME] [--inputs in.npz] [--params p.npz | --seed S]
//! [--out out.npz] [--save-params p.npz] [--f32 | --f64] [--check-finite]`
//!
//! Evaluates a model with the reference interpreter ([`nnc_ir::interp`]) on arrays
//! read from `.npz` files, prints the loss, and optionally writes the loss, the
//! outputs (`output.NAME`) and the gradients (`grad.NAME`, once autodiff has filled
//! the model's gradient list) to an `.npz` file: the runtime's naming of result files
//! ([`nnc_runtime::npz::NpzBundle::results`]).
//!
//! Arrays are matched to the model's declarations by name; a missing, unexpected,
//! mis-shaped or wrongly-typed array is an error naming it. Float arrays may be
//! stored as `f32` or `f64` (converted to the model's float type); index arrays as
//! any integer type, with non-negative values. The sizes the inputs give are checked
//! against the memory the interpreter may use before anything is allocated for them.
//! Output files are written all or nothing: `--out` and `--save-params` are both
//! written, or neither is.
//!
//! The parameters are read from `--params`, or drawn from their initialisers with
//! `--seed` (0 when neither is given); one note on stderr says which, so stdout holds
//! the results alone.
//!
//! `--check-finite` reports the first value (in evaluation order, backward pass
//! included) that holds a NaN or an infinity, with its source line, and exits 1.

use ndarray::{ArrayD, IxDyn};
use nnc_autodiff::gradcheck::{MAX_INTERPRETER_BYTES, first_non_finite_in, interpreter_bytes};
use nnc_ir::interp::{Bindings, Scalar, Value, bind_dims, concrete_shape, evaluate};
use nnc_ir::{DType, Elem, Init, Model};
use nnc_runtime::init;
use nnc_runtime::npz::{GRAD_PREFIX, LOSS_NAME, NpzBundle, NpzError, NpzReader, OUTPUT_PREFIX};
use nnc_runtime::rand::SeedableRng;
use nnc_runtime::rand::rngs::StdRng;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    values: crate::source::ModelValues,
    /// Write `loss`, `output.NAME` and `grad.NAME` to this `.npz` file.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Write the parameters used (loaded or initialised) to this `.npz` file.
    #[arg(long, value_name = "FILE")]
    save_params: Option<PathBuf>,
    /// Compute in f32, whatever the model's `dtype`.
    #[arg(long, conflicts_with = "f64")]
    f32: bool,
    /// Compute in f64, whatever the model's `dtype`.
    #[arg(long)]
    f64: bool,
    /// Fail, naming the value and its source line, when any value computed (forward
    /// or backward) is NaN or infinite.
    #[arg(long)]
    check_finite: bool,
}

/// Exit codes as for `check`: 1 for anything wrong with the program or the data,
/// 2 when the source file cannot be read.
pub fn run(args: &Args) -> ExitCode {
    let (model, source) = match args.values.load() {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // Differentiate too, so the out file carries every gradient.
    let model = match nnc_autodiff::with_gradients(&model) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let dtype = match (args.f32, args.f64) {
        (true, _) => DType::F32,
        (_, true) => DType::F64,
        _ => model.dtype,
    };
    let file = args.values.file.display().to_string();
    let result = match dtype {
        DType::F32 => run_typed::<f32>(&model, args, &source, &file),
        DType::F64 => run_typed::<f64>(&model, args, &source, &file),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

/// A float type the interpreter computes in and `.npz` files store.
pub(crate) trait RunFloat: Scalar + nnc_runtime::Float {}
impl RunFloat for f32 {}
impl RunFloat for f64 {}

fn run_typed<F: RunFloat>(
    model: &Model,
    args: &Args,
    source: &str,
    file: &str,
) -> Result<(), String> {
    let inputs = match &args.values.inputs {
        Some(path) => read_inputs::<F>(model, path)?,
        None if model.inputs.is_empty() => Vec::new(),
        None => {
            let names: Vec<String> = model
                .inputs
                .iter()
                .map(|i| format!("`{}`", i.name))
                .collect();
            return Err(format!(
                "model `{}` has inputs ({}); give them with --inputs FILE.npz",
                model.name,
                names.join(", ")
            ));
        }
    };
    // Everything the interpreter will hold, at the sizes the inputs give, before the
    // parameters are made or read.
    let values: Vec<Value<F>> = inputs.iter().map(|(_, v)| v.clone()).collect();
    let dims = bind_dims(model, &values).map_err(|e| e.to_string())?;
    drop(values);
    let element = std::mem::size_of::<F>() as u64;
    interpreter_bytes(model, &dims, element, MAX_INTERPRETER_BYTES).map_err(|e| e.to_string())?;
    let (params, origin) = match (&args.values.params, args.values.seed) {
        (Some(path), _) => (
            read_params::<F>(model, path)?,
            format!("parameters read from {}", path.display()),
        ),
        (None, Some(seed)) => (
            init_params::<F>(model, seed),
            format!("parameters drawn from their initialisers with seed {seed}"),
        ),
        (None, None) => (
            init_params::<F>(model, 0),
            "parameters drawn from their initialisers with seed 0 (pass --seed S or --params FILE)"
                .to_string(),
        ),
    };
    let bindings = Bindings::from_named(model, inputs, params).map_err(|e| e.to_string())?;
    let eval = evaluate(model, &bindings).map_err(|e| e.to_string())?;
    if args.check_finite
        && let Some(found) = first_non_finite_in(&eval)
    {
        return Err(found.render(model, source, file).trim_end().to_string());
    }
    // With the results (an error stays the only line of a failed run), on stderr so
    // stdout holds the results alone.
    if !model.params.is_empty() {
        eprintln!("note: {origin}");
    }
    println!("loss = {}", eval.loss());

    // Both files are staged before either is renamed into place: all or nothing.
    let mut staged = Vec::new();
    if let Some(path) = &args.out {
        let mut bundle = NpzBundle::new();
        bundle.scalar(LOSS_NAME, eval.loss());
        for (name, value) in eval.outputs() {
            let name = format!("{OUTPUT_PREFIX}{name}");
            match value {
                Value::Float(a) => bundle.float(name, a.view()),
                Value::Index(a) => bundle.index(name, a.view()),
            };
        }
        for (of, grad) in eval.grads() {
            bundle.float(format!("{GRAD_PREFIX}{}", model.grad_name(of)), grad.view());
        }
        staged.push(bundle.stage(path).map_err(|e| e.to_string())?);
    }
    if let Some(path) = &args.save_params {
        let mut bundle = NpzBundle::new();
        for (p, a) in model.params.iter().zip(&bindings.params) {
            bundle.float(p.name.as_str(), a.view());
        }
        staged.push(bundle.stage(path).map_err(|e| e.to_string())?);
    }
    let targets: Vec<String> = staged
        .iter()
        .map(|s| s.target().display().to_string())
        .collect();
    nnc_runtime::atomic::commit_all(staged)
        .map_err(|e| format!("cannot write {}: {e}", targets.join(" and ")))?;
    Ok(())
}

// ---- reading ----------------------------------------------------------------------

pub(crate) fn read_inputs<F: RunFloat>(
    model: &Model,
    path: &Path,
) -> Result<Vec<(String, Value<F>)>, String> {
    let mut npz = NpzReader::open(path).map_err(|e| e.to_string())?;
    let declared: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
    npz.check_names("input", &declared)
        .map_err(|e| e.to_string())?;
    let mut inputs = Vec::with_capacity(model.inputs.len());
    for info in &model.inputs {
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

pub(crate) fn read_params<F: RunFloat>(
    model: &Model,
    path: &Path,
) -> Result<Vec<(String, ArrayD<F>)>, String> {
    let mut npz = NpzReader::open(path).map_err(|e| e.to_string())?;
    let declared: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
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

/// A read error with the model's declaration of the array appended:
/// `…, expected a float array (f32 or f64); input `x` is declared [N, 2]`.
fn declared_as(error: NpzError, what: &str, name: &str, declared: &str) -> String {
    format!("{error}; {what} `{name}` is declared {declared}")
}

// ---- initialisation ---------------------------------------------------------------

/// Every parameter from its declared initialiser by the runtime's [`init::fill`] (as
/// generated code does), in declaration order, drawing from one generator seeded with
/// `seed`.
pub(crate) fn init_params<F: RunFloat>(model: &Model, seed: u64) -> Vec<(String, ArrayD<F>)> {
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
