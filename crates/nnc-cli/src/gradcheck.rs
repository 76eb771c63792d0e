//! `nnc gradcheck FILE [--model NAME] [--seed S] [--batch B] [--directions D]
//! [--samples K] [--max-evals E] [--max-seconds T] [--threshold X]`: derived
//! gradients against central finite differences, in f64, on the IR interpreter, with
//! the runtime's one checker (`nnc_runtime::gradcheck`: random directions and sampled
//! elements within an evaluation budget).
//!
//! A model with `dropout` or `state` is checked in its training step
//! (`Mode::Train`): each dropout mask is drawn once, from `--seed`, and held fixed
//! while the parameters are perturbed, as an input is; the states are at their
//! initial values (the training step's loss does not read them).

use nnc_autodiff::gradcheck::{Options, gradcheck, legend};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

#[derive(clap::Args)]
pub struct Args {
    /// The `.nn` file.
    file: PathBuf,
    /// Which model; every model of the file when omitted.
    #[arg(long)]
    model: Option<String>,
    /// Seed for the random point, directions and sampled elements.
    #[arg(long, default_value_t = 0)]
    seed: u64,
    /// Size of every runtime dim (the batch); at least 1.
    #[arg(long, default_value_t = 4, value_parser = crate::source::positive)]
    batch: usize,
    /// Random directions probed per tensor (each tests every element at once).
    #[arg(long, default_value_t = 4)]
    directions: usize,
    /// Elements probed per tensor (a seeded sample); at least 1.
    #[arg(long, default_value_t = 32, value_parser = crate::source::positive)]
    samples: usize,
    /// At most this many loss evaluations per model (two per probe; the element
    /// samples shrink to fit, the directions stay).
    #[arg(long, default_value_t = 2000)]
    max_evals: usize,
    /// Stop probing a model after this many seconds (every tensor still gets one
    /// direction).
    #[arg(long, default_value_t = 60.0)]
    max_seconds: f64,
    /// Fail when an error exceeds this.
    #[arg(long, default_value_t = 1e-6)]
    threshold: f64,
}

/// Exit 0 when every gradient passes, 1 when any fails (or cannot be checked, or the
/// file holds no model).
pub fn run(args: &Args) -> ExitCode {
    let loaded = match crate::source::load(&args.file, nnc_ir::Mode::Train) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    let models = &loaded.models;
    let chosen: Vec<&nnc_ir::Model> = match (&args.model, models.as_slice()) {
        (None, [_, ..]) => models.iter().collect(),
        _ => match crate::source::select(models, args.model.as_deref(), &args.file) {
            Ok(m) => vec![m],
            Err(message) => {
                eprintln!("error: {message}");
                return ExitCode::from(1);
            }
        },
    };
    let options = Options {
        seed: args.seed,
        batch: args.batch,
        directions: args.directions,
        max_samples: args.samples,
        max_evaluations: args.max_evals,
        max_time: Duration::try_from_secs_f64(args.max_seconds.max(0.0)).ok(),
        threshold: args.threshold,
        ..Options::default()
    };
    println!("{}", legend(&options));
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
