//! nnc's side of the peer benchmark: the four workload models compiled with `net!`, as
//! a user crate would, and their generated training step (`sgd_step`: the loss and
//! gradients, then `p -= lr * d_p` for every parameter, on the workspace's threads)
//! timed with the peers' protocol on the peers' data (DATA/<W>/inputs.npz and
//! params.npz, read with nnc's npz loader).
//!
//! Usage: nnc-step --data DIR [--repeats N] [--workloads W1,W2,W3,W4] [--out FILE]
//! The thread count recorded is NNC_THREADS (default 1); the runtime reads it itself.

mod protocol;

use nnc::runtime::num_traits::{FromPrimitive, ToPrimitive};
use nnc::runtime::{Model, ShapeError, npz};
use protocol::{Meta, Steps};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Instant;

nnc::net!(file = "../../../examples/models/two_layer.nn");
nnc::net!(file = "../../../examples/models/spiral.nn");
nnc::net!(file = "../../../examples/models/mlp784.nn");
nnc::net!(file = "../../../examples/models/deep_tanh.nn");

/// A row of spec/workloads.md (the same table as common.py's WORKLOADS).
struct Workload {
    id: &'static str,
    model: &'static str,
    dtype: &'static str,
    lr: f64,
    steps: usize,
}

#[rustfmt::skip]
const WORKLOADS: [Workload; 4] = [
    Workload { id: "W1", model: "two_layer", dtype: "float64", lr: 1e-4, steps: 2000 },
    Workload { id: "W2", model: "spiral", dtype: "float64", lr: 1.0, steps: 10000 },
    Workload { id: "W3", model: "mlp784", dtype: "float32", lr: 0.1, steps: 300 },
    Workload { id: "W4", model: "deep_tanh", dtype: "float32", lr: 0.01, steps: 50 },
];

/// One model's training loop on borrowed inputs.
struct Trainer<'a, M: Model> {
    init: M::Params,
    params: M::Params,
    inputs: M::Inputs<'a>,
    ws: M::Workspace,
    grads: M::Grads,
    lr: M::Float,
}

impl<M: Model> Steps for Trainer<'_, M> {
    fn reset(&mut self) {
        self.params.clone_from(&self.init);
    }

    fn step(&mut self) -> Result<f64, ShapeError> {
        let loss = M::sgd_step(
            &mut self.params,
            &self.inputs,
            &mut self.ws,
            &mut self.grads,
            self.lr,
        )?;
        Ok(loss.to_f64().unwrap_or(f64::NAN))
    }
}

/// Loads workload `w`'s data for model `M` and times its step.
fn measure<M: Model>(
    w: &Workload,
    data: &Path,
    repeats: usize,
) -> Result<protocol::Measurement, String> {
    let dir = data.join(w.id);
    let (params_file, inputs_file) = (dir.join("params.npz"), dir.join("inputs.npz"));
    let init = npz::load_params::<M>(&params_file)
        .map_err(|e| format!("{}: {e}", params_file.display()))?;
    let named = npz::load_inputs::<M::Float>(&inputs_file, M::signature())
        .map_err(|e| format!("{}: {e}", inputs_file.display()))?;
    let inputs = M::bind_inputs(&named).map_err(|e| format!("{}: {e}", inputs_file.display()))?;
    let lr =
        M::Float::from_f64(w.lr).ok_or_else(|| format!("learning rate {} out of range", w.lr))?;
    let start = Instant::now();
    let mut trainer = Trainer::<M> {
        params: init.clone(),
        init,
        ws: M::workspace(&inputs),
        grads: M::zero_grads(&inputs),
        inputs,
        lr,
    };
    let setup_s = start.elapsed().as_secs_f64();
    let mut m = protocol::measure(&mut trainer, w.steps, repeats)
        .map_err(|e| format!("sgd_step: {e}"))?;
    m.setup_s = setup_s;
    Ok(m)
}

fn measure_workload(w: &Workload, args: &Args) -> Result<protocol::Measurement, String> {
    let (data, n) = (args.data.as_path(), args.repeats);
    match w.model {
        "two_layer" => measure::<two_layer::TwoLayer>(w, data, n),
        "spiral" => measure::<spiral::Spiral>(w, data, n),
        "mlp784" => measure::<mlp784::Mlp784>(w, data, n),
        "deep_tanh" => measure::<deep_tanh::DeepTanh>(w, data, n),
        other => Err(format!("no model {other}")),
    }
}

struct Args {
    data: PathBuf,
    repeats: usize,
    workloads: Vec<String>,
    out: Option<PathBuf>,
    threads: usize,
}

const USAGE: &str =
    "usage: nnc-step --data DIR [--repeats N] [--workloads W1,W2,W3,W4] [--out FILE]";

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        data: PathBuf::new(),
        repeats: 3,
        workloads: WORKLOADS.iter().map(|w| w.id.to_string()).collect(),
        out: None,
        threads: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let value = it
            .next()
            .ok_or_else(|| format!("{flag} needs a value\n{USAGE}"))?;
        match flag.as_str() {
            "--data" => args.data = PathBuf::from(value),
            "--repeats" => {
                args.repeats = value
                    .parse()
                    .map_err(|_| format!("--repeats {value}: not a count"))?
            }
            "--workloads" => args.workloads = value.split(',').map(str::to_string).collect(),
            "--out" => args.out = Some(PathBuf::from(value)),
            _ => return Err(format!("unknown option {flag}\n{USAGE}")),
        }
    }
    if args.data.as_os_str().is_empty() {
        return Err(USAGE.to_string());
    }
    if args.repeats == 0 {
        return Err("--repeats must be at least 1".to_string());
    }
    if let Ok(t) = std::env::var("NNC_THREADS") {
        args.threads = t
            .parse()
            .map_err(|_| format!("NNC_THREADS={t}: not a count"))?;
    }
    Ok(args)
}

fn append_line(path: &Path, line: &str) -> Result<(), String> {
    let mut f = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| format!("{}: {e}", path.display()))?;
    writeln!(f, "{line}").map_err(|e| format!("{}: {e}", path.display()))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("{e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "# nnc: generated sgd_step via net!; NNC_THREADS={}",
        args.threads
    );
    let mut failed = false;
    for id in &args.workloads {
        let Some(w) = WORKLOADS.iter().find(|w| w.id == id) else {
            println!("FAILED nnc {id}: no such workload");
            failed = true;
            continue;
        };
        let meta = Meta {
            workload: w.id,
            model: w.model,
            dtype: w.dtype,
            threads: args.threads,
            steps: w.steps,
            lr: w.lr,
            repeats: args.repeats,
        };
        let written = measure_workload(w, &args).and_then(|m| {
            println!("{}", protocol::summary_line(&meta, &m));
            match &args.out {
                Some(out) => append_line(out, &protocol::json_record(&meta, &m)),
                None => Ok(()),
            }
        });
        if let Err(e) = written {
            println!("FAILED nnc {id} t={}: {e}", args.threads);
            failed = true;
        }
    }
    if failed {
        ExitCode::FAILURE
    } else {
        ExitCode::SUCCESS
    }
}
