//! `nnc compile FILE [--model NAME] [-o out.rs] [--emit rust|ir|grad-ir|plan]`.
//!
//! The output file is written atomically ([`nnc_runtime::atomic`]): to a temporary
//! file beside it, renamed into place only when everything succeeded, so an error
//! never leaves a partial file; it gets the mode the umask gives a new file.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file.
    file: PathBuf,
    /// Only this model (every model of the file when omitted).
    #[arg(long)]
    model: Option<String>,
    /// Where to write; standard output when omitted.
    #[arg(short, long)]
    output: Option<PathBuf>,
    /// What to emit.
    #[arg(long, value_enum, default_value_t = Emit::Rust)]
    emit: Emit,
}

#[derive(Clone, Copy, clap::ValueEnum)]
enum Emit {
    /// The Rust modules.
    Rust,
    /// The forward IR.
    Ir,
    /// The IR with the simplified backward pass.
    GradIr,
    /// The fusion plans.
    Plan,
}

pub fn run(args: &Args) -> ExitCode {
    let name = args.file.display().to_string();
    let source = match crate::source::read(&args.file) {
        Ok(s) => s,
        Err(code) => return code,
    };
    let file_name = args
        .file
        .file_name()
        .map_or(name.clone(), |n| n.to_string_lossy().into_owned());
    let emit = match args.emit {
        Emit::Rust => nnc_codegen::Emit::Rust,
        Emit::Ir => nnc_codegen::Emit::Ir,
        Emit::GradIr => nnc_codegen::Emit::GradIr,
        Emit::Plan => nnc_codegen::Emit::Plan,
    };
    let options = nnc_codegen::Options {
        model: args.model.clone(),
        emit,
    };
    let text = match nnc_codegen::compile_source(&source, &file_name, &options) {
        Ok(text) => text,
        Err(diagnostics) => {
            eprint!("{}", nnc_syntax::render(&diagnostics, &name, &source));
            return ExitCode::from(1);
        }
    };
    crate::source::print_warnings(&source, &name, args.model.as_deref());
    match &args.output {
        None => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Some(path) => match nnc_runtime::atomic::write_atomically(path, |file| {
            file.write_all(text.as_bytes())
        }) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: cannot write {}: {e}", path.display());
                ExitCode::from(1)
            }
        },
    }
}
