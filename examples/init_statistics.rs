//! The lecture's initialisation experiment on `deep_tanh.nn` (ten tanh layers of 500
//! units) and a ReLU twin: per-layer mean and std of the activations when the weights
//! are normal(0, 0.01) (they collapse to zero), normal(0, 1) (they saturate at ±1),
//! Xavier (they stay spread out), and, for ReLU, Xavier (they shrink layer by layer)
//! and He (they keep their scale). One histogram picture per setting.
//!
//! ```text
//! cargo run --release --example init_statistics
//! ```

mod common;
#[path = "common/init_statistics.rs"]
mod lesson;

use common::Result;
use lesson::Activation;

fn main() -> Result<()> {
    let rows = 1000;
    println!("{rows} standard normal inputs through ten 500-wide layers\n");
    let (outcomes, seconds) = common::timed(|| lesson::run(rows, 20_000, 0))?;
    let dir = common::output_dir()?;
    for outcome in &outcomes {
        println!("{}", outcome.setting.label());
        println!(
            "  {:>5} {:>10} {:>10} {:>10} {:>10}",
            "layer", "mean", "std", "|h| > 0.9", "|h| < 1e-3"
        );
        for (i, layer) in outcome.layers.iter().enumerate() {
            println!(
                "  {:>5} {:>10.2e} {:>10.2e} {:>9.1}% {:>9.1}%",
                i + 1,
                layer.mean,
                layer.std,
                100.0 * layer.saturated,
                100.0 * layer.near_zero
            );
        }
        let (first, last) = (
            &outcome.layers[0],
            &outcome.layers[outcome.layers.len() - 1],
        );
        let verdict = match outcome.setting.activation {
            Activation::Tanh if last.near_zero > 0.9 => {
                "the activations collapse to zero".to_string()
            }
            Activation::Tanh if last.saturated > 0.5 => {
                format!(
                    "{:.0}% of the activations saturate at ±1",
                    100.0 * last.saturated
                )
            }
            _ if last.std < 0.1 * first.std => {
                format!(
                    "the spread shrinks {:.0}-fold from layer 1 to layer 10",
                    first.std / last.std
                )
            }
            _ => format!(
                "a healthy spread in every layer (std {:.2} in layer 1, {:.2} in layer 10)",
                first.std, last.std
            ),
        };
        println!("  -> {verdict}\n");

        // ReLU zeroes half of its inputs: its histograms show the positive part.
        let relu = outcome.setting.activation == Activation::Relu;
        let panels: Vec<(String, Vec<f64>)> = outcome
            .layers
            .iter()
            .enumerate()
            .map(|(i, l)| {
                let title = format!(
                    "layer {}: std {:.2e}{}",
                    i + 1,
                    l.std,
                    if relu { ", h > 0" } else { "" }
                );
                (
                    title,
                    l.sample
                        .iter()
                        .copied()
                        .filter(|&v| !relu || v > 0.0)
                        .collect(),
                )
            })
            .collect();
        let range = match outcome.setting.activation {
            Activation::Tanh => (-1.0, 1.0),
            Activation::Relu => (0.0, (3.0 * first.std).max(1e-3)),
        };
        let path = dir.join(format!("init_{}.png", outcome.setting.slug()));
        common::histogram_grid(
            &path,
            &format!("activations per layer: {}", outcome.setting.label()),
            &panels,
            range,
            5,
        )?;
        println!("  wrote {}\n", path.display());
    }
    println!("({} settings in {seconds:.2} s)", outcomes.len());
    Ok(())
}
