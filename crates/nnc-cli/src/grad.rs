//! `nnc grad FILE [--model NAME] [--format text|latex]`: the derivation.

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file.
    file: PathBuf,
    /// Which model (may be omitted when the file has one).
    #[arg(long)]
    model: Option<String>,
    /// `text`, or `latex` (`align*` blocks for course notes).
    #[arg(long, value_enum, default_value_t = Format::Text)]
    format: Format,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Format {
    Text,
    Latex,
}

pub fn run(args: &Args) -> ExitCode {
    let (model, _) =
        match crate::source::load_one(&args.file, args.model.as_deref(), nnc_ir::Mode::Train) {
            Ok(loaded) => loaded,
            Err(code) => return code,
        };
    let format = match args.format {
        Format::Text => nnc_autodiff::Format::Text,
        Format::Latex => nnc_autodiff::Format::Latex,
    };
    match nnc_autodiff::derive(&model) {
        Ok(derivation) => {
            print!("{}", derivation.render(format));
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(1)
        }
    }
}
