//! `nnc gradcheck FILE [--model NAME] [--seed S] [--batch B]`: derived gradients
//! against central finite differences, in f64.

use nnc_autodiff::gradcheck::{Options, gradcheck};
use std::path::PathBuf;
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file.
    file: PathBuf,
    /// Which model; every model of the file when omitted.
    #[arg(long)]
    model: Option<String>,
    /// Seed for the random inputs, parameters and sampled elements.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Size of every runtime dim (the batch).
    #[arg(long, default_value_t = 4)]
    batch: usize,
    /// Check at most this many elements per tensor (a seeded sample).
    #[arg(long, default_value_t = 2000)]
    samples: usize,
    /// Fail when a relative error exceeds this.
    #[arg(long, default_value_t = 1e-6)]
    threshold: f64,
}

/// Exit 0 when every gradient passes, 1 when any fails (or cannot be checked).
pub fn run(args: &Args) -> ExitCode {
    let models = match crate::source::load(&args.file) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let chosen: Vec<&nnc_ir::Model> = match &args.model {
        Some(_) => match crate::source::select(&models, args.model.as_deref(), &args.file) {
            Ok(m) => vec![m],
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(1);
            }
        },
        None => models.iter().collect(),
    };
    let options = Options {
        seed: args.seed,
        batch: args.batch.max(1),
        max_samples: args.samples.max(1),
        threshold: args.threshold,
        ..Options::default()
    };
    println!(
        "relative error = |analytic - numeric| / max(|analytic|, |numeric|), central differences \
         with h = {:e};\na tensor passes when every error, less the difference's rounding noise and \
         over at least 1e-3 of the tensor's largest gradient, is at most {:e}",
        options.step, options.threshold
    );
    let mut failed = false;
    for model in chosen {
        match gradcheck(model, &options) {
            Ok(report) => {
                print!("{report}");
                failed |= !report.passed();
            }
            Err(e) => {
                eprintln!("error: `{}`: {e}", model.name);
                failed = true;
            }
        }
    }
    if failed {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
