//! The 8x8 handwritten digits (data/digits.csv.gz, 1 797 images, 10 classes), classified
//! by a 64-128-10 ReLU MLP written with `net!`. The images are normalised with the
//! training set's statistics; SGD, momentum and Adam train the same network from the
//! same start; the test accuracy, a confusion matrix and one plot of loss vs epoch.
//!
//! ```text
//! cargo run --release --example digits
//! ```

mod common;
#[path = "common/digits.rs"]
mod lesson;

use common::{Result, Series};

fn main() -> Result<()> {
    let config = lesson::Config::default();
    println!(
        "digits: 64-128-10 ReLU MLP, softmax cross-entropy + L2; minibatches of {}, {} epochs",
        config.batch_size, config.epochs
    );
    let (report, seconds) = common::timed(|| lesson::run(&config))?;
    println!(
        "{} training images, {} test images (normalised with the training mean and std)\n",
        report.train_size, report.test_size
    );
    println!(
        "{:<10} {:>14} {:>10} {:>10}",
        "optimiser", "final loss", "train acc", "test acc"
    );
    for run in &report.runs {
        let last = run.losses.last().copied().unwrap_or(f64::NAN);
        println!(
            "{:<10} {last:>14.4} {:>9.1}% {:>9.1}%",
            run.optimiser,
            100.0 * run.train_accuracy,
            100.0 * run.test_accuracy
        );
    }
    println!("(all three in {seconds:.2} s)");

    let best = report
        .runs
        .iter()
        .max_by(|a, b| a.test_accuracy.total_cmp(&b.test_accuracy))
        .ok_or("no runs")?;
    println!(
        "\nconfusion matrix of {} on the test images (rows: true digit, columns: predicted):",
        best.optimiser
    );
    print!("     ");
    for p in 0..10 {
        print!("{p:>4}");
    }
    println!();
    for (t, row) in best.confusion.iter().enumerate() {
        print!("{t:>4} ");
        for count in row {
            print!("{count:>4}");
        }
        println!();
    }

    let path = common::output_dir()?.join("digits_optimisers.png");
    let series: Vec<Series> = report
        .runs
        .iter()
        .map(|run| Series {
            name: run.optimiser.clone(),
            points: run
                .losses
                .iter()
                .enumerate()
                .map(|(e, &l)| (e as f64, l))
                .collect(),
        })
        .collect();
    common::line_chart(
        &path,
        "digits: training loss by optimiser (log scale)",
        "epoch",
        "loss",
        &series,
        true,
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}
