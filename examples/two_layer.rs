//! The lecture's 20-line numpy network, compiled by nnc: the loss as it falls, the
//! derived gradients checked against finite differences, and the loss curve.
//!
//! ```text
//! cargo run --release --example two_layer
//! ```

mod common;
#[path = "common/two_layer.rs"]
mod lesson;

use common::{Result, Series};

fn main() -> Result<()> {
    let config = lesson::Config::default();
    println!(
        "two_layer.nn: N = {}, 1000-100-10, sigmoid, sum of squares; w -= {:e} * dw for {} steps",
        config.n, config.lr, config.steps
    );
    let (report, seconds) = common::timed(|| lesson::run(&config))?;

    println!(
        "\nderived gradients vs central differences (h = {:e}; {} random directions and {} sampled \
         elements per tensor;\nrelative error |a - n| / max(|a|, |n|), judged less the noise of the \
         differences):",
        config.check_step, report.check.tensors[0].directions, config.check_samples
    );
    print!("{}", report.check);
    println!(
        "(the loss is ~{:.0e}: its round-off, ~1e-16 of it, over 2h limits the numerical side)",
        report.losses[0]
    );

    println!("\n{:>6}  {:>12}", "step", "loss");
    for (step, loss) in report.losses.iter().enumerate() {
        if step % 200 == 0 || step + 1 == report.losses.len() {
            println!("{step:>6}  {loss:>12.4e}");
        }
    }
    let (first, last) = (report.losses[0], report.losses[report.losses.len() - 1]);
    println!(
        "\nthe loss fell by a factor of {:.1e} in {seconds:.2} s (gradient check included)",
        first / last
    );

    let path = common::output_dir()?.join("two_layer_loss.png");
    let points = report
        .losses
        .iter()
        .enumerate()
        .map(|(i, &l)| (i as f64, l))
        .collect();
    let series = [Series {
        name: "sum of squares".into(),
        points,
    }];
    common::line_chart(
        &path,
        "two_layer: loss (log scale)",
        "step",
        "loss",
        &series,
        true,
    )?;
    println!("wrote {}", path.display());
    Ok(())
}
