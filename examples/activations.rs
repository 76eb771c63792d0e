//! Every activation of the lecture and its derivative, plotted. Both come from code
//! nnc generates: the values are a model's outputs on a grid, the derivatives are
//! the gradient of `sum(act(x))` with respect to the grid (a `grad` input).
//!
//! ```text
//! cargo run --release --example activations
//! ```

mod common;
#[path = "common/activations.rs"]
mod lesson;

use common::{Panel, Result, Series};

fn main() -> Result<()> {
    let report = lesson::run(-4.0, 4.0, 801)?;
    println!(
        "values and derivatives from the generated model `activation_curves`, at a few points:\n"
    );
    let shown = [-2.0, -0.5, 0.0, 0.5, 2.0];
    print!("{:<12}", "");
    for x in shown {
        print!(" {:>17}", format!("x = {x}"));
    }
    println!();
    for curve in &report.curves {
        print!("{:<12}", curve.name);
        for x in shown {
            let i = report
                .grid
                .iter()
                .position(|g| (g - x).abs() < 1e-9)
                .ok_or("grid point")?;
            print!(
                " {:>17}",
                format!("{:.3} ({:.3})", curve.values[i], curve.derivatives[i])
            );
        }
        println!();
    }
    println!(
        "\n(value (derivative)); leaky_relu with alpha 0.1, elu with alpha 1, prelu with a fixed slope 0.25,"
    );
    println!(
        "maxout = max(0.5 x + 1, -x - 0.5). At a kink the derivative is the contract's subgradient."
    );

    let panels: Vec<Panel> = report
        .curves
        .iter()
        .map(|c| {
            let line = |ys: &[f64]| {
                report
                    .grid
                    .iter()
                    .copied()
                    .zip(ys.iter().copied())
                    .collect()
            };
            Panel {
                title: c.name.clone(),
                series: vec![
                    Series {
                        name: "f(x)".into(),
                        points: line(&c.values),
                    },
                    Series {
                        name: "f'(x)".into(),
                        points: line(&c.derivatives),
                    },
                ],
            }
        })
        .collect();
    let path = common::output_dir()?.join("activations.png");
    common::line_panels(
        &path,
        "activations and their derivatives, computed by nnc",
        &panels,
        4,
    )?;
    println!("\nwrote {}", path.display());
    Ok(())
}
