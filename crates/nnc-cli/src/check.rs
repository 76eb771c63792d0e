//! `nnc check FILE...`: every error `nnc compile` would report, without generating
//! code, and the warnings (a parameter that does not reach the loss).

use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` files to check.
    #[arg(required = true)]
    files: Vec<PathBuf>,
    /// Print nothing on success (errors still go to stderr).
    #[arg(short, long)]
    quiet: bool,
}

pub fn run(args: &Args) -> ExitCode {
    let mut failed = false;
    for path in &args.files {
        let name = path.display().to_string();
        let source = match std::fs::read_to_string(path) {
            Ok(s) => s,
            Err(e) => {
                eprintln!("error: cannot read {name}: {e}");
                return ExitCode::from(2);
            }
        };
        // Everything `nnc compile` checks before generating code: names, shapes,
        // differentiation.
        match nnc_autodiff::compile_source(&source) {
            Ok(_) => {
                let warned = crate::source::print_warnings(&source, &name, None);
                if !args.quiet {
                    match warned {
                        0 => println!("{name}: ok"),
                        1 => println!("{name}: ok, 1 warning"),
                        n => println!("{name}: ok, {n} warnings"),
                    }
                }
            }
            Err(diagnostics) => {
                failed = true;
                eprint!("{}", nnc_syntax::render(&diagnostics, &name, &source));
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
