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
//! A model with `dropout` or `state` runs its training step by default: the masks
//! are drawn from a generator seeded with `--seed` (0 when not given), the states
//! are read from `--params` with the parameters (or start at their declared
//! values), and `--save-params` writes the states the step updated. `--eval` runs
//! eval mode instead: no dropout, `batch_norm` with the running statistics, the
//! states unchanged.
//!
//! `--check-finite` reports the first value (in evaluation order, backward pass
//! included) that holds a NaN or an infinity, with its source line, and exits 1.

use nnc_autodiff::gradcheck::{MAX_INTERPRETER_BYTES, first_non_finite_in, interpreter_bytes};
use nnc_graph::values::{
    RunFloat, init_params, read_inputs, read_params, read_state, with_mode_inputs,
};
use nnc_ir::interp::{Bindings, Value, bind_dims, evaluate};
use nnc_ir::modes::{data_inputs, initial_state, updated_state};
use nnc_ir::{DType, Mode, Model};
use nnc_runtime::npz::{GRAD_PREFIX, LOSS_NAME, NpzBundle, OUTPUT_PREFIX};
use std::path::PathBuf;
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
    /// Eval mode: no dropout, `batch_norm` with its running statistics, no state
    /// updated (without it, a model with `dropout` or `state` runs its training step).
    #[arg(long)]
    eval: bool,
}

/// Exit codes as for `check`: 1 for anything wrong with the program or the data,
/// 2 when the source file cannot be read.
pub fn run(args: &Args) -> ExitCode {
    let mode = if args.eval { Mode::Eval } else { Mode::Train };
    let (model, source) = match args.values.load(mode) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    // With `--params`, `--seed` can only draw dropout masks.
    let has_masks = model
        .inputs
        .iter()
        .any(|i| matches!(i.kind, nnc_ir::InputKind::Mask { .. }));
    if args.values.params.is_some() && args.values.seed.is_some() && !has_masks && !args.eval {
        eprintln!(
            "error: --seed draws the parameters (and the dropout masks of a training step); \
             with --params it has nothing to draw: model `{}` has no dropout",
            model.name
        );
        return ExitCode::from(2);
    }
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

fn run_typed<F: RunFloat>(
    model: &Model,
    args: &Args,
    source: &str,
    file: &str,
) -> Result<(), String> {
    let inputs = match &args.values.inputs {
        Some(path) => read_inputs::<F>(model, path)?,
        None if data_inputs(model).next().is_none() => Vec::new(),
        None => {
            let names: Vec<String> = data_inputs(model)
                .map(|i| format!("`{}`", i.name))
                .collect();
            return Err(format!(
                "model `{}` has inputs ({}); give them with --inputs FILE.npz",
                model.name,
                names.join(", ")
            ));
        }
    };
    let state = match &args.values.params {
        Some(path) => read_state::<F>(model, path)?,
        None => initial_state::<F>(model),
    };
    let training = !args.eval;
    let seed = args.values.seed.unwrap_or(0);
    let inputs = with_mode_inputs(model, inputs, &state, training, seed)?;
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
        // The states after the step: updated ones, the others as they were.
        let updated = updated_state(model, &eval);
        for (name, value) in &state {
            let after = updated
                .iter()
                .find(|(n, _)| n == name)
                .map_or(value, |(_, v)| v);
            bundle.float(name.as_str(), after.view());
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
