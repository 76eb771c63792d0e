//! The peers' timing protocol (bench/peers/common.py, `measure`), and their JSON record.

use nnc::runtime::ShapeError;
use std::time::Instant;

/// Untimed steps from the initial parameters before the timed repeats.
pub const WARMUP_STEPS: usize = 20;

/// A training loop the protocol can drive.
pub trait Steps {
    /// Restores the initial parameters (not timed).
    fn reset(&mut self);
    /// One training step; returns the loss at the parameters it started from.
    fn step(&mut self) -> Result<f64, ShapeError>;
}

/// What one workload's timing gives.
pub struct Measurement {
    /// Milliseconds per step, one per repeat.
    pub ms: Vec<f64>,
    /// Process CPU time / wall time, one per repeat.
    pub cpu_over_wall: Vec<f64>,
    /// Seconds to build what the loop needs (the workspace, the gradients).
    pub setup_s: f64,
    pub warmup_s: f64,
    /// Loss of the first and the last step of the last repeat.
    pub first_loss: f64,
    pub final_loss: f64,
    /// Loss of the last step of every repeat (equal when the step is deterministic).
    pub repeat_final_losses: Vec<f64>,
}

/// Reset, `WARMUP_STEPS` untimed steps; then `repeats` times: reset (untimed) and time
/// `steps` steps with the wall clock and the process's CPU clock.
pub fn measure(
    s: &mut impl Steps,
    steps: usize,
    repeats: usize,
) -> Result<Measurement, ShapeError> {
    let start = Instant::now();
    s.reset();
    run(s, steps.min(WARMUP_STEPS))?;
    let warmup_s = start.elapsed().as_secs_f64();
    let mut m = Measurement {
        ms: vec![],
        cpu_over_wall: vec![],
        setup_s: 0.0,
        warmup_s,
        first_loss: f64::NAN,
        final_loss: f64::NAN,
        repeat_final_losses: vec![],
    };
    for _ in 0..repeats {
        s.reset();
        let cpu0 = cpu_seconds();
        let t0 = Instant::now();
        let (first, last) = run(s, steps)?;
        let wall = t0.elapsed().as_secs_f64();
        m.ms.push(wall * 1e3 / steps as f64);
        m.cpu_over_wall.push((cpu_seconds() - cpu0) / wall);
        (m.first_loss, m.final_loss) = (first, last);
        m.repeat_final_losses.push(last);
    }
    Ok(m)
}

/// `n` steps; the losses of the first and the last.
fn run(s: &mut impl Steps, n: usize) -> Result<(f64, f64), ShapeError> {
    let first = s.step()?;
    let mut last = first;
    for _ in 1..n {
        last = s.step()?;
    }
    Ok((first, last))
}

/// User + system CPU time of this process, all threads, from /proc/self/stat (in clock
/// ticks of 1/100 s); NaN where that file is unreadable.
fn cpu_seconds() -> f64 {
    let Ok(stat) = std::fs::read_to_string("/proc/self/stat") else {
        return f64::NAN;
    };
    // Fields after the command name (which may hold spaces) closed by ')': state is
    // field 3, utime and stime are fields 14 and 15.
    let after_name = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
    let fields: Vec<&str> = after_name.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|f| f.parse::<f64>().ok());
    match (ticks(11), ticks(12)) {
        (Some(user), Some(system)) => (user + system) / 100.0,
        _ => f64::NAN,
    }
}

/// Median as Python's `statistics.median` computes it (the mean of the middle two).
pub fn median(values: &[f64]) -> f64 {
    let mut v = values.to_vec();
    v.sort_by(f64::total_cmp);
    match v.len() {
        0 => f64::NAN,
        n if n % 2 == 1 => v[n / 2],
        n => (v[n / 2 - 1] + v[n / 2]) / 2.0,
    }
}

/// What identifies a record: the peer's columns in the report.
pub struct Meta<'a> {
    pub workload: &'a str,
    pub model: &'a str,
    pub dtype: &'a str,
    pub threads: usize,
    pub steps: usize,
    pub lr: f64,
    pub repeats: usize,
}

/// The JSON line common.py writes for a peer, for nnc.
pub fn json_record(meta: &Meta, m: &Measurement) -> String {
    let fields = [
        ("peer", string("nnc")),
        ("workload", string(meta.workload)),
        ("model", string(meta.model)),
        ("dtype", string(meta.dtype)),
        ("threads", meta.threads.to_string()),
        ("steps", meta.steps.to_string()),
        ("lr", number(meta.lr)),
        ("repeats", meta.repeats.to_string()),
        ("warmup_steps", meta.steps.min(WARMUP_STEPS).to_string()),
        (
            "version",
            string(concat!(
                "nnc-step ",
                env!("CARGO_PKG_VERSION"),
                ", net! generated sgd_step"
            )),
        ),
        ("ms_median", number(median(&m.ms))),
        (
            "ms_min",
            number(m.ms.iter().copied().fold(f64::INFINITY, f64::min)),
        ),
        (
            "ms_max",
            number(m.ms.iter().copied().fold(f64::NEG_INFINITY, f64::max)),
        ),
        ("ms", numbers(&m.ms)),
        ("cpu_over_wall", number(median(&m.cpu_over_wall))),
        ("setup_s", number(m.setup_s)),
        ("warmup_s", number(m.warmup_s)),
        ("first_loss", number(m.first_loss)),
        ("final_loss", number(m.final_loss)),
        ("repeat_final_losses", numbers(&m.repeat_final_losses)),
    ];
    let body: Vec<String> = fields
        .iter()
        .map(|(k, v)| format!("\"{k}\": {v}"))
        .collect();
    format!("{{{}}}", body.join(", "))
}

/// The summary line common.py prints for a peer.
pub fn summary_line(meta: &Meta, m: &Measurement) -> String {
    let (lo, hi) =
        m.ms.iter()
            .fold((f64::INFINITY, f64::NEG_INFINITY), |(lo, hi), &x| {
                (lo.min(x), hi.max(x))
            });
    format!(
        "{:15} {} t={}  {:9.4} ms/step [{lo:.4}-{hi:.4}]  cpu/wall {:.2}  loss {:.6} -> {:.8}  (setup {:.1} s, warm-up {:.1} s)",
        "nnc",
        meta.workload,
        meta.threads,
        median(&m.ms),
        median(&m.cpu_over_wall),
        m.first_loss,
        m.final_loss,
        m.setup_s,
        m.warmup_s
    )
}

fn string(s: &str) -> String {
    format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""))
}

/// Shortest round-tripping form; JSON has no NaN or infinity, so those are null.
fn number(x: f64) -> String {
    if x.is_finite() {
        format!("{x:?}")
    } else {
        "null".to_string()
    }
}

fn numbers(xs: &[f64]) -> String {
    let items: Vec<String> = xs.iter().map(|&x| number(x)).collect();
    format!("[{}]", items.join(", "))
}
