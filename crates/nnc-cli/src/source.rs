//! Reading a `.nn` file and choosing a model: shared by the subcommands.

use nnc_ir::{Mode, Model};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The arguments of the subcommands that evaluate one model (`run`, `graph`): which
/// model, and where its inputs and parameters come from.
#[derive(clap::Args)]
pub struct ModelValues {
    /// The `.nn` file.
    pub file: PathBuf,
    /// Which model (may be omitted when the file has one).
    #[arg(long)]
    pub model: Option<String>,
    /// An `.npz` file holding every input, by its declared name.
    #[arg(long, value_name = "FILE")]
    pub inputs: Option<PathBuf>,
    /// An `.npz` file holding every parameter (and every `state`), by its declared
    /// name.
    #[arg(long, value_name = "FILE")]
    pub params: Option<PathBuf>,
    /// Draw the parameters from their initialisers with this seed (0 when neither
    /// this nor `--params` is given); `graph` also draws its random inputs with it,
    /// and the dropout masks of a training step are drawn with it.
    #[arg(long, value_name = "S")]
    pub seed: Option<u64>,
}

impl ModelValues {
    /// The file's model chosen by `--model` (see [`load_one`]), lowered in `mode`.
    pub fn load(&self, mode: Mode) -> Result<(Model, String), ExitCode> {
        load_one(&self.file, self.model.as_deref(), mode)
    }
}

/// The text of `path`, read up to [`nnc_syntax::MAX_SOURCE_BYTES`]; on failure the error is
/// printed and exit code 2 (a file that cannot be read) returned.
pub fn read(path: &Path) -> Result<String, ExitCode> {
    nnc_syntax::read_source(path).map_err(|why| {
        eprintln!("error: cannot read {}: {why}", path.display());
        ExitCode::from(2)
    })
}

/// A source file and its lowered models.
pub struct Loaded {
    pub source: String,
    pub models: Vec<Model>,
}

/// Reads and lowers every model of `path` in `mode` (which matters only to models
/// with `dropout` or `state`: `Mode::Train` for the training step's graph). On
/// failure the diagnostics (or the read error) are printed and the exit code is
/// returned: 1 for errors in the program, 2 for a file that cannot be read.
pub fn load(path: &Path, mode: Mode) -> Result<Loaded, ExitCode> {
    let name = path.display().to_string();
    let source = read(path)?;
    let models = nnc_ir::compile_source_in(&source, mode).map_err(|diagnostics| {
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
pub fn load_one(
    path: &Path,
    wanted: Option<&str>,
    mode: Mode,
) -> Result<(Model, String), ExitCode> {
    let loaded = load(path, mode)?;
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

/// Prints the warnings about `source`'s models ([`nnc_ir::warnings`]; only the model
/// named `only`, when given) to stderr, rendered like errors, and gives how many.
/// For a source that compiled: the front end runs again, which costs little next to
/// what compiling it cost.
pub fn print_warnings(source: &str, name: &str, only: Option<&str>) -> usize {
    let Ok(models) = nnc_ir::compile_source(source) else {
        return 0;
    };
    let warnings: Vec<_> = models
        .iter()
        .filter(|m| only.is_none_or(|o| m.name == o))
        .flat_map(nnc_ir::warnings)
        .collect();
    if !warnings.is_empty() {
        eprint!("{}", nnc_syntax::render(&warnings, name, source));
    }
    warnings.len()
}
