//! The `nnc` command line: reads files, runs the library pipeline, renders diagnostics.
//! All compiler logic lives in the library crates; this file only does I/O.

use clap::{Parser, Subcommand};
use std::process::ExitCode;

mod check;
mod compile;
mod grad;
mod gradcheck;
mod graph;
mod run;
mod serve;
mod source;

/// nnc — a compiler for small neural networks.
#[derive(Parser)]
#[command(name = "nnc", version, about)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Parse and check `.nn` files; report every error found.
    Check(check::Args),
    /// Evaluate a model with the reference interpreter on `.npz` inputs.
    Run(run::Args),
    /// Generate Rust (or the IR, or the fusion plans) for `.nn` models.
    Compile(compile::Args),
    /// Show the derivation: forward pass, backward pass rule by rule, simplified.
    Grad(grad::Args),
    /// Compare derived gradients with central finite differences (f64).
    Gradcheck(gradcheck::Args),
    /// Draw the computational graph: values and gradients on every wire (SVG, DOT, PNG).
    Graph(graph::Args),
    /// Serve a local page showing diagnostics, derivation, graph and Rust as you type.
    Serve(serve::Args),
}

/// Exit codes: 0 clean, 1 diagnostics (or a failed check), 2 usage errors.
fn main() -> ExitCode {
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(e) => {
            // clap prints help and version to stdout with success, usage errors to stderr.
            let code = if e.use_stderr() { 2 } else { 0 };
            let _ = e.print();
            return ExitCode::from(code);
        }
    };
    match cli.command {
        Command::Check(args) => check::run(&args),
        Command::Run(args) => run::run(&args),
        Command::Compile(args) => compile::run(&args),
        Command::Grad(args) => grad::run(&args),
        Command::Gradcheck(args) => gradcheck::run(&args),
        Command::Graph(args) => graph::run(&args),
        Command::Serve(args) => serve::run(&args),
    }
}
