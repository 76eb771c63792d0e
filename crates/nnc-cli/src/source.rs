//! Reading a `.nn` file and choosing a model: shared by the subcommands.

use nnc_ir::Model;
use std::path::Path;
use std::process::ExitCode;

/// Reads and lowers every model of `path`. On failure the diagnostics (or the read
/// error) are printed and the exit code is returned: 1 for errors in the program, 2
/// for a file that cannot be read.
pub fn load(path: &Path) -> Result<Vec<Model>, ExitCode> {
    let name = path.display().to_string();
    let source = std::fs::read_to_string(path).map_err(|e| {
        eprintln!("error: cannot read {name}: {e}");
        ExitCode::from(2)
    })?;
    nnc_ir::compile_source(&source).map_err(|diagnostics| {
        eprint!("{}", nnc_syntax::render(&diagnostics, &name, &source));
        ExitCode::from(1)
    })
}

/// The model `--model` names, or the only one.
pub fn select<'m>(
    models: &'m [Model],
    wanted: Option<&str>,
    file: &Path,
) -> Result<&'m Model, String> {
    let file = file.display();
    let names = || {
        models
            .iter()
            .map(|m| format!("`{}`", m.name))
            .collect::<Vec<_>>()
            .join(", ")
    };
    match (wanted, models) {
        (Some(w), _) => models
            .iter()
            .find(|m| m.name == w)
            .ok_or_else(|| format!("{file} has no model `{w}`; its models: {}", names())),
        (None, [only]) => Ok(only),
        (None, []) => Err(format!("{file} holds no model")),
        (None, _) => Err(format!(
            "{file} holds several models ({}); choose one with --model NAME",
            names()
        )),
    }
}

/// [`load`] then [`select`], printing any error; for subcommands that need one model.
pub fn load_one(path: &Path, wanted: Option<&str>) -> Result<Model, ExitCode> {
    let models = load(path)?;
    select(&models, wanted, path).cloned().map_err(|message| {
        eprintln!("error: {message}");
        ExitCode::from(1)
    })
}
