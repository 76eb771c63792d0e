//! The 3-class spiral, classified by the contract's `spiral.nn` (2-100-3, ReLU):
//! full-batch gradient descent, training accuracy, the decision boundary and the
//! loss curve.
//!
//! ```text
//! cargo run --release --example spiral
//! ```

mod common;
#[path = "common/spiral.rs"]
mod lesson;

use common::{Result, Series};

fn main() -> Result<()> {
    let config = lesson::Config::default();
    println!(
        "spiral.nn: 3 x {} points, 2-100-3 ReLU, softmax cross-entropy + L2; full-batch GD, lr {}, {} steps",
        config.points, config.lr, config.steps
    );
    let (report, seconds) = common::timed(|| lesson::run(&config))?;
    println!("\n{:>6}  {:>8}", "step", "loss");
    for (step, loss) in report.losses.iter().enumerate() {
        if step % 1000 == 0 || step + 1 == report.losses.len() {
            println!("{step:>6}  {loss:>8.4}");
        }
    }
    println!(
        "\ntrained in {seconds:.2} s; training accuracy {:.1}%",
        100.0 * report.accuracy
    );

    let dir = common::output_dir()?;
    let boundary = dir.join("spiral_decision_boundary.png");
    let title = format!(
        "spiral: decision regions ({:.1}% training accuracy)",
        100.0 * report.accuracy
    );
    common::decision_boundary(&boundary, &title, &report.x, &report.labels, |grid| {
        lesson::classify(&report.params, grid)
    })?;
    let curve = dir.join("spiral_loss.png");
    let points = report
        .losses
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as f64, l))
        .collect();
    let series = [Series {
        name: "loss".into(),
        points,
    }];
    common::line_chart(
        &curve,
        "spiral: training loss (log scale)",
        "step",
        "loss",
        &series,
        true,
    )?;
    println!("wrote {}\nwrote {}", boundary.display(), curve.display());
    Ok(())
}
