//! Three ways to optimise one model, a linear softmax classifier of the digits:
//! random search, gradient descent with numerical gradients, and gradient descent
//! with the gradients nnc derives. Loss against wall time in one plot; the final
//! accuracies.
//!
//! ```text
//! cargo run --release --example search_vs_gradient
//! ```

mod common;
#[path = "common/search_vs_gradient.rs"]
mod lesson;

use common::{Result, Series};

fn main() -> Result<()> {
    let config = lesson::Config::default();
    let report = lesson::run(&config)?;
    println!(
        "linear softmax classifier of the digits ({} weights), softmax cross-entropy + L2\n",
        report.parameters
    );
    println!(
        "{:<24} {:>12} {:>9} {:>12} {:>11} {:>10} {:>9}",
        "method", "evaluations", "seconds", "s per step", "final loss", "train acc", "test acc"
    );
    for m in &report.methods {
        let steps = if m.step_losses.is_empty() {
            m.evaluations
        } else {
            m.step_losses.len()
        };
        println!(
            "{:<24} {:>12} {:>9.3} {:>12.2e} {:>11.4} {:>9.1}% {:>8.1}%",
            m.name,
            m.evaluations,
            m.seconds,
            m.seconds / steps.max(1) as f64,
            m.final_loss(),
            100.0 * m.train_accuracy,
            100.0 * m.test_accuracy
        );
    }
    println!(
        "(evaluations: of the loss, or for the derived gradient of loss and gradient together;\n \
         a step of random search is one try)"
    );
    if let [_, numerical, derived] = report.methods.as_slice() {
        let agree = numerical
            .step_losses
            .iter()
            .zip(&derived.step_losses)
            .map(|(n, d)| ((n - d) / d).abs())
            .fold(0.0, f64::max);
        let per_step = |m: &lesson::Method| m.seconds / m.step_losses.len().max(1) as f64;
        println!(
            "\nThe two gradient descents take the same steps (losses agree to {agree:.1e} over the first {}),\n\
             but a numerical step costs {} loss evaluations: {:.0}x the time of a derived one.",
            numerical.step_losses.len(),
            numerical.evaluations / numerical.step_losses.len().max(1),
            per_step(numerical) / per_step(derived)
        );
    }

    let path = common::output_dir()?.join("search_vs_gradient.png");
    let series: Vec<Series> = report
        .methods
        .iter()
        .map(|m| Series {
            name: m.name.clone(),
            points: m.curve.clone(),
        })
        .collect();
    let axes = common::Axes {
        x_label: "seconds (log scale)",
        y_label: "training loss (log scale)",
        log_x: true,
        log_y: true,
    };
    common::line_chart_with(&path, "training loss against wall time", &axes, &series)?;
    println!("wrote {}", path.display());
    Ok(())
}
