//! Reading a `.nn` file and choosing a model: shared by the subcommands.

use nnc_ir::Model;
use std::io::Read;
use std::path::Path;
use std::process::ExitCode;

/// The largest source file nnc reads: 16 MiB (a thousand times the largest example).
/// A larger file, or an endless one such as `/dev/zero`, is refused after reading
/// one byte past the limit.
pub const MAX_SOURCE_BYTES: u64 = 16 << 20;

/// The text of `path`, read up to [`MAX_SOURCE_BYTES`]; on failure the error is
/// printed and exit code 2 (a file that cannot be read) returned.
pub fn read(path: &Path) -> Result<String, ExitCode> {
    let fail = |why: String| {
        eprintln!("error: cannot read {}: {why}", path.display());
        ExitCode::from(2)
    };
    let file = std::fs::File::open(path).map_err(|e| fail(e.to_string()))?;
    let mut bytes = Vec::new();
    file.take(MAX_SOURCE_BYTES + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| fail(e.to_string()))?;
    if bytes.len() as u64 > MAX_SOURCE_BYTES {
        return Err(fail(format!(
            "it is larger than the limit of {} MiB for a source file",
            MAX_SOURCE_BYTES >> 20
        )));
    }
    String::from_utf8(bytes).map_err(|_| fail("stream did not contain valid UTF-8".to_string()))
}

/// A source file and its lowered models.
pub struct Loaded {
    pub source: String,
    pub models: Vec<Model>,
}

/// Reads and lowers every model of `path`. On failure the diagnostics (or the read
/// error) are printed and the exit code is returned: 1 for errors in the program, 2
/// for a file that cannot be read.
pub fn load(path: &Path) -> Result<Loaded, ExitCode> {
    let name = path.display().to_string();
    let source = read(path)?;
    let models = nnc_ir::compile_source(&source).map_err(|diagnostics| {
        eprint!("{}", nnc_syntax::render(&diagnostics, &name, &source));
        ExitCode::from(1)
    })?;
    Ok(Loaded { source, models })
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
/// Returns the model and the source it came from.
pub fn load_one(path: &Path, wanted: Option<&str>) -> Result<(Model, String), ExitCode> {
    let loaded = load(path)?;
    let model = select(&loaded.models, wanted, path)
        .cloned()
        .map_err(|message| {
            eprintln!("error: {message}");
            ExitCode::from(1)
        })?;
    Ok((model, loaded.source))
}

/// Parses a count that must be at least 1 (`--batch`, `--samples`).
pub fn positive(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(0) => Err("must be at least 1".to_string()),
        Ok(n) => Ok(n),
        Err(e) => Err(e.to_string()),
    }
}
