//! Gradient checking: nnc's derived gradients (the generated backward pass) against
//! numerical gradients computed here in f64, per parameter; then what goes wrong with
//! a one-sided difference, and with a step `h` that is too small.
//!
//! ```text
//! cargo run --release --example gradient_check
//! ```

mod common;
#[path = "common/gradient_check.rs"]
mod lesson;

use common::Result;

fn main() -> Result<()> {
    let points = 50;
    println!(
        "small_mlp (2-16-3 tanh, softmax cross-entropy + L2, f64) on a spiral of 3 x {points} points"
    );
    println!(
        "relative error: |a - n| / max(|a|, |n|, {:e}), a derived, n numerical\n",
        lesson::TINY
    );
    let report = lesson::run(points, 0)?;

    println!("worst relative error per parameter, h = {:e}:", report.h);
    println!(
        "  {:<6} {:>8} {:>12} {:>12}",
        "param", "elements", "central", "one-sided"
    );
    for p in &report.per_param {
        println!(
            "  {:<6} {:>8} {:>12.2e} {:>12.2e}",
            p.name, p.elements, p.central, p.one_sided
        );
    }
    println!("  (central: (f(x+h) - f(x-h)) / 2h; one-sided: (f(x+h) - f(x)) / h)");

    println!("\nworst relative error over all parameters, by step size:");
    println!("  {:>8} {:>12} {:>12}", "h", "central", "one-sided");
    for row in &report.steps {
        println!(
            "  {:>8.0e} {:>12.2e} {:>12.2e}",
            row.h, row.central, row.one_sided
        );
    }
    let best = |pick: fn(&lesson::StepRow) -> f64| {
        report
            .steps
            .iter()
            .min_by(|a, b| pick(a).total_cmp(&pick(b)))
            .map(|r| (r.h, pick(r)))
    };
    if let (Some((hc, ec)), Some((ho, eo))) = (best(|r| r.central), best(|r| r.one_sided)) {
        println!(
            "\nbest: central {ec:.1e} at h = {hc:.0e}; one-sided {eo:.1e} at h = {ho:.0e}.\n\
             Large h: truncation error, O(h^2) central, O(h) one-sided. Small h: f(x+h) and f(x)\n\
             agree in most of their digits, and the round-off (~1e-16 |f| / h) takes over."
        );
    }
    Ok(())
}
