//! Reading a `.nn` file and choosing a model: shared by the subcommands.

use nnc_ir::Model;
use std::path::Path;
use std::process::ExitCode;

/// A source file, compiled to IR.
pub struct Loaded {
    pub models: Vec<Model>,
}

impl Loaded {
    /// Reads and compiles `path`; on failure, diagnostics are printed and the exit
    /// code is returned (1 for errors in the file, 2 for an unreadable file).
    pub fn read(path: &Path) -> Result<Loaded, ExitCode> {
        let name = path.display().to_string();
        let source = std::fs::read_to_string(path).map_err(|e| {
            eprintln!("error: cannot read {name}: {e}");
            ExitCode::from(2)
        })?;
        match nnc_ir::compile_source(&source) {
            Ok(models) => Ok(Loaded { models }),
            Err(diagnostics) => {
                eprint!("{}", nnc_syntax::render(&diagnostics, &name, &source));
                Err(ExitCode::from(1))
            }
        }
    }
}

/// The model named `wanted`, or the only model when none is named.
pub fn select_model<'a>(loaded: &'a Loaded, wanted: Option<&str>) -> Result<&'a Model, ExitCode> {
    let names: Vec<&str> = loaded.models.iter().map(|m| m.name.as_str()).collect();
    match wanted {
        Some(w) => loaded.models.iter().find(|m| m.name == w).ok_or_else(|| {
            eprintln!("error: no model named `{w}`; the file has: {}", names.join(", "));
            ExitCode::from(2)
        }),
        None => match loaded.models.as_slice() {
            [only] => Ok(only),
            [] => {
                eprintln!("error: the file has no model");
                Err(ExitCode::from(1))
            }
            _ => {
                eprintln!("error: the file has several models; choose one with --model ({})", names.join(", "));
                Err(ExitCode::from(2))
            }
        },
    }
}
