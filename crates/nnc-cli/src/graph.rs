//! `nnc graph FILE [--model NAME] [--inputs in.npz] [--params p.npz | --seed S]
//! [--batch B] [-o graph.svg] [--format svg|dot|png] [--backward] [--expand]`
//!
//! Draws a model's computational graph as the lecture does, with the forward value
//! above every wire and the gradient of the loss below it ([`nnc_graph`]). The values
//! come from the interpreter: at the inputs of `--inputs` (or, without it, random
//! ones for a batch of `--batch`, with a note on stderr), and the parameters of
//! `--params` or drawn from their initialisers with `--seed` (0 by default; constant
//! initialisers such as `param x: [] = -2` need no seed). SVG and DOT go to stdout
//! without `-o`; every file is written atomically. The format is `--format`, else
//! the extension of `-o`, else SVG.

use nnc_ir::Model;
use nnc_ir::interp::Bindings;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(clap::Args)]
pub struct Args {
    #[command(flatten)]
    values: crate::source::ModelValues,
    /// Without `--inputs`: the size of every runtime dim (the batch) of the random
    /// inputs.
    #[arg(long, value_name = "B", default_value = "4", value_parser = crate::source::positive)]
    batch: usize,
    /// Write the picture here (atomically) instead of to stdout.
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
    /// `svg`, `dot` (for Graphviz) or `png`; default: from the extension of `-o`, else svg.
    #[arg(long, value_enum)]
    format: Option<Format>,
    /// Draw the derived backward pass (what `nnc grad` prints), each node with its rule.
    #[arg(long)]
    backward: bool,
    /// Open function calls (`sigmoid`, `softmax_cross_entropy`, your `fn`s) into
    /// their operations.
    #[arg(long)]
    expand: bool,
}

#[derive(Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
enum Format {
    Svg,
    Dot,
    Png,
}

pub fn run(args: &Args) -> ExitCode {
    let (model, source) = match args.values.load(nnc_ir::Mode::Train) {
        Ok(loaded) => loaded,
        Err(code) => return code,
    };
    match draw(&model, &source, args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(1)
        }
    }
}

fn draw(model: &Model, source: &str, args: &Args) -> Result<(), String> {
    let format = match (args.format, &args.output) {
        (Some(format), _) => format,
        (None, Some(path)) => from_extension(path),
        (None, None) => Format::Svg,
    };
    if format == Format::Png && args.output.is_none() {
        return Err("a PNG picture needs a file: pass -o FILE.png".to_string());
    }
    let bindings = bindings(model, args)?;
    let file = args.values.file.display().to_string();
    let options = nnc_graph::Options {
        expand: args.expand,
        backward: args.backward,
        ..nnc_graph::Options::new(&file, source)
    };
    let picture = nnc_graph::graph(model, &bindings, &options).map_err(|e| e.to_string())?;
    let bytes = match format {
        Format::Dot => picture.dot().into_bytes(),
        Format::Svg => picture.svg().map_err(|e| e.to_string())?.into_bytes(),
        Format::Png => picture.png().map_err(|e| e.to_string())?,
    };
    match &args.output {
        None => std::io::stdout()
            .write_all(&bytes)
            .map_err(|e| format!("cannot write to stdout: {e}")),
        Some(path) => nnc_runtime::atomic::write_atomically(path, |f| f.write_all(&bytes))
            .map_err(|e| format!("cannot write {}: {e}", path.display())),
    }
}

fn from_extension(path: &Path) -> Format {
    match path.extension().and_then(|e| e.to_str()) {
        Some(e) if e.eq_ignore_ascii_case("dot") || e.eq_ignore_ascii_case("gv") => Format::Dot,
        Some(e) if e.eq_ignore_ascii_case("png") => Format::Png,
        _ => Format::Svg,
    }
}

/// The inputs (read, or random with a note on stderr) and the parameters (read or
/// drawn): [`nnc_graph::values::bindings`].
fn bindings(model: &Model, args: &Args) -> Result<Bindings<f64>, String> {
    let spec = nnc_graph::values::Spec {
        inputs: args.values.inputs.as_deref(),
        params: args.values.params.as_deref(),
        seed: args.values.seed.unwrap_or(0),
        batch: args.batch,
    };
    nnc_graph::values::bindings(model, &spec, &mut |note| eprintln!("note: {note}"))
}
