//! `nnc run FILE [--model NAME] [--inputs in.npz] [--params p.npz | --seed S]
//! [--out out.npz] [--save-params p.npz] [--f32 | --f64]`
//!
//! Evaluates a model with the reference interpreter ([`nnc_ir::interp`]) on arrays
//! read from `.npz` files, prints the loss, and optionally writes the loss, the
//! outputs (`output.NAME`) and the gradients (`grad.NAME`, once autodiff has filled
//! the model's gradient list) to an `.npz` file.
//!
//! Arrays are matched to the model's declarations by name; a missing, unexpected,
//! mis-shaped or wrongly-typed array is an error naming it. Float arrays may be
//! stored as `f32` or `f64` (converted to the model's float type); index arrays as
//! any integer type, with non-negative values. Output files are written atomically.

use ndarray::{ArrayD, Dimension, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, ReadNpyError, ReadNpzError, ReadableElement};
use nnc_ir::interp::{Bindings, Scalar, Value, concrete_shape, evaluate};
use nnc_ir::{DType, Elem, Init, Model};
use nnc_runtime::init;
use nnc_runtime::npz::NpzBundle;
use nnc_runtime::rand::SeedableRng;
use nnc_runtime::rand::rngs::StdRng;
use std::fs::File;
use std::io::BufReader;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file.
    file: PathBuf,
    /// The model to run; may be omitted when the file holds one model.
    #[arg(long)]
    model: Option<String>,
    /// An `.npz` file holding every input, by its declared name.
    #[arg(long, value_name = "FILE")]
    inputs: Option<PathBuf>,
    /// An `.npz` file holding every parameter, by its declared name.
    #[arg(long, value_name = "FILE", conflicts_with = "seed")]
    params: Option<PathBuf>,
    /// Initialise the parameters from their declared initialisers with this seed.
    #[arg(long, value_name = "S")]
    seed: Option<u64>,
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
}

/// Exit codes as for `check`: 1 for anything wrong with the program or the data,
/// 2 when the source file cannot be read.
pub fn run(args: &Args) -> ExitCode {
    let model = match crate::source::load_one(&args.file, args.model.as_deref()) {
        Ok(m) => m,
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
    let result = match dtype {
        DType::F32 => run_typed::<f32>(&model, args),
        DType::F64 => run_typed::<f64>(&model, args),
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
trait RunFloat: Scalar + nnc_runtime::Float {}
impl RunFloat for f32 {}
impl RunFloat for f64 {}

fn run_typed<F: RunFloat>(model: &Model, args: &Args) -> Result<(), String> {
    let inputs = match &args.inputs {
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
    let params = match &args.params {
        Some(path) => read_params::<F>(model, path)?,
        None => init_params::<F>(model, args.seed.unwrap_or(0)),
    };
    let bindings = Bindings::from_named(model, inputs, params).map_err(|e| e.to_string())?;
    let eval = evaluate(model, &bindings).map_err(|e| e.to_string())?;
    println!("loss = {}", eval.loss());

    if let Some(path) = &args.out {
        let mut bundle = NpzBundle::new();
        bundle.scalar("loss", eval.loss());
        for (name, value) in eval.outputs() {
            match value {
                Value::Float(a) => bundle.float(format!("output.{name}"), a.view()),
                Value::Index(a) => bundle.index(format!("output.{name}"), a.view()),
            };
        }
        for (of, grad) in eval.grads() {
            bundle.float(format!("grad.{}", model.grad_name(of)), grad.view());
        }
        bundle.save(path).map_err(|e| e.to_string())?;
    }
    if let Some(path) = &args.save_params {
        let mut bundle = NpzBundle::new();
        for (p, a) in model.params.iter().zip(&bindings.params) {
            bundle.float(p.name.as_str(), a.view());
        }
        bundle.save(path).map_err(|e| e.to_string())?;
    }
    Ok(())
}

// ---- reading ----------------------------------------------------------------------

/// An open `.npz` file, remembering its path for messages.
struct Npz {
    path: String,
    reader: NpzReader<BufReader<File>>,
    names: Vec<String>,
}

/// Reading one array as one element type: the array, or the dtype the file has.
enum Attempt<T> {
    Found(ArrayD<T>),
    OtherType(String),
}

impl Npz {
    fn open(path: &Path) -> Result<Npz, String> {
        let shown = path.display().to_string();
        let file = File::open(path).map_err(|e| format!("cannot read {shown}: {e}"))?;
        let mut reader = NpzReader::new(BufReader::new(file))
            .map_err(|e| format!("{shown} is not a readable npz file: {e}"))?;
        let names = reader
            .names()
            .map_err(|e| format!("{shown} is not a readable npz file: {e}"))?;
        Ok(Npz {
            path: shown,
            reader,
            names,
        })
    }

    /// Checks the file holds exactly `declared`.
    fn check_names(&self, kind: &str, declared: &[&str]) -> Result<(), String> {
        let missing: Vec<&str> = declared
            .iter()
            .copied()
            .filter(|d| !self.names.iter().any(|n| n == d))
            .collect();
        if !missing.is_empty() {
            return Err(format!(
                "{}: missing {kind} {}; the file holds {}",
                self.path,
                quoted(&missing),
                quoted(&self.names.iter().map(String::as_str).collect::<Vec<_>>())
            ));
        }
        let extra: Vec<&str> = self
            .names
            .iter()
            .map(String::as_str)
            .filter(|n| !declared.contains(n))
            .collect();
        if !extra.is_empty() {
            return Err(format!(
                "{}: unexpected array {}: the model's {kind}s are {}",
                self.path,
                quoted(&extra),
                quoted(declared)
            ));
        }
        Ok(())
    }

    fn attempt<T: ReadableElement>(&mut self, name: &str) -> Result<Attempt<T>, String> {
        match self.reader.by_name::<OwnedRepr<T>, IxDyn>(name) {
            Ok(a) => Ok(Attempt::Found(a)),
            Err(ReadNpzError::Npy(ReadNpyError::WrongDescriptor(d))) => {
                Ok(Attempt::OtherType(dtype_name(&d.to_string())))
            }
            Err(e) => Err(format!("{}: cannot read array `{name}`: {e}", self.path)),
        }
    }

    /// A float array (stored as f64 or f32) in the computing type.
    fn float<F: RunFloat>(&mut self, name: &str, what: &str) -> Result<ArrayD<F>, String> {
        let conv = |v: f64| F::from_f64(v).unwrap_or_else(F::nan);
        if let Attempt::Found(a) = self.attempt::<f64>(name)? {
            return Ok(a.mapv(conv));
        }
        match self.attempt::<f32>(name)? {
            Attempt::Found(a) => Ok(a.mapv(|v| conv(f64::from(v)))),
            Attempt::OtherType(dtype) => Err(format!(
                "{}: array `{name}` has dtype {dtype}, but {what} is a float tensor; store it as float32 or float64",
                self.path
            )),
        }
    }

    /// Class indices stored as any integer type, each non-negative.
    fn index(&mut self, name: &str, what: &str) -> Result<ArrayD<usize>, String> {
        macro_rules! try_types {
            ($($t:ty),*) => {$(
                if let Attempt::Found(a) = self.attempt::<$t>(name)? {
                    return self.indices(name, a);
                }
            )*};
        }
        try_types!(i64, i32, u8, u64, u32, i16, u16);
        match self.attempt::<i8>(name)? {
            Attempt::Found(a) => self.indices(name, a),
            Attempt::OtherType(dtype) => Err(format!(
                "{}: array `{name}` has dtype {dtype}, but {what} holds class indices; store it as an integer array",
                self.path
            )),
        }
    }

    fn indices<T: Copy + TryInto<usize> + std::fmt::Display>(
        &self,
        name: &str,
        a: ArrayD<T>,
    ) -> Result<ArrayD<usize>, String> {
        let mut out = ArrayD::<usize>::zeros(a.raw_dim());
        for ((position, &v), slot) in a.indexed_iter().zip(out.iter_mut()) {
            *slot = v.try_into().map_err(|_| {
                format!(
                    "{}: array `{name}` holds {v} at {:?}; class indices must be non-negative",
                    self.path,
                    position.slice()
                )
            })?;
        }
        Ok(out)
    }
}

fn quoted(names: &[&str]) -> String {
    if names.is_empty() {
        return "nothing".to_string();
    }
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A numpy type descriptor with its readable name: `'<i8' (int64)`.
fn dtype_name(descr: &str) -> String {
    let code = descr
        .trim_matches('\'')
        .trim_start_matches(['<', '>', '|', '=']);
    let friendly = match code {
        "b1" | "?" => "bool",
        "i1" => "int8",
        "i2" => "int16",
        "i4" => "int32",
        "i8" => "int64",
        "u1" => "uint8",
        "u2" => "uint16",
        "u4" => "uint32",
        "u8" => "uint64",
        "f2" => "float16",
        "f4" => "float32",
        "f8" => "float64",
        "c8" => "complex64",
        "c16" => "complex128",
        _ => return descr.to_string(),
    };
    format!("{descr} ({friendly})")
}

fn read_inputs<F: RunFloat>(model: &Model, path: &Path) -> Result<Vec<(String, Value<F>)>, String> {
    let mut npz = Npz::open(path)?;
    let declared: Vec<&str> = model.inputs.iter().map(|i| i.name.as_str()).collect();
    npz.check_names("input", &declared)?;
    let mut inputs = Vec::with_capacity(model.inputs.len());
    for info in &model.inputs {
        let what = format!("input `{}` ({})", info.name, model.type_str(&info.ty));
        let value = match info.ty.elem {
            Elem::Float => Value::Float(npz.float::<F>(&info.name, &what)?),
            Elem::Index => Value::Index(npz.index(&info.name, &what)?),
        };
        inputs.push((info.name.clone(), value));
    }
    Ok(inputs)
}

fn read_params<F: RunFloat>(
    model: &Model,
    path: &Path,
) -> Result<Vec<(String, ArrayD<F>)>, String> {
    let mut npz = Npz::open(path)?;
    let declared: Vec<&str> = model.params.iter().map(|p| p.name.as_str()).collect();
    npz.check_names("parameter", &declared)?;
    let mut params = Vec::with_capacity(model.params.len());
    for info in &model.params {
        let what = format!("parameter `{}`", info.name);
        params.push((info.name.clone(), npz.float::<F>(&info.name, &what)?));
    }
    Ok(params)
}

// ---- initialisation ---------------------------------------------------------------

/// Every parameter from its declared initialiser by the runtime's [`init::fill`] (as
/// generated code does), in declaration order, drawing from one generator seeded with
/// `seed`.
fn init_params<F: RunFloat>(model: &Model, seed: u64) -> Vec<(String, ArrayD<F>)> {
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
