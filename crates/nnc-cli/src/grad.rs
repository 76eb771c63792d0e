//! `nnc grad FILE [--model NAME] [--format text|latex]`: the derivation.

use crate::source::{Loaded, select_model};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file.
    file: PathBuf,
    /// Which model (may be omitted when the file has one).
    #[arg(long)]
    model: Option<String>,
    /// `text` (default) or `latex` (an `align*` body for course notes).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Latex,
}

pub fn run(args: &Args) -> ExitCode {
    let loaded = match Loaded::read(&args.file) {
        Ok(l) => l,
        Err(code) => return code,
    };
    let model = match select_model(&loaded, args.model.as_deref()) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let derivation = match nnc_autodiff::derive(model) {
        Ok(d) => d,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let format = match args.format {
        Format::Text => nnc_autodiff::Format::Text,
        Format::Latex => nnc_autodiff::Format::Latex,
    };
    print!("{}", derivation.render(format));
    ExitCode::SUCCESS
}
