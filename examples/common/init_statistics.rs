//! The lecture's initialisation experiment: push standard normal data through ten
//! 500-wide layers (the contract's `deep_tanh.nn`, its layers written out, and a
//! ReLU twin written with `net!` as a loop over a stack of weights) and look at each
//! layer's activations for several weight scales.
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Result};
use nnc::ndarray::{Array1, ArrayView2, Axis};
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::TensorSet;
use nnc::runtime::init::{Init, fill};

nnc::net!(file = "examples/models/deep_tanh.nn");

nnc::net! {
    // deep_tanh with ReLU instead of tanh, for He initialisation: the ten layers
    // as a loop over a stack of weights, keeping every layer's activations (`hs`).
    model deep_relu {
        dim N, D = 500, C = 10, L = 10;
        input x: [N, D];
        input labels: index[N];
        param w: [L, D, D] = he;
        param w_out: [D, C] = xavier;

        let h, hs = for l in 0..L from x { relu(h @ w[l]) };
        output hs;
        loss softmax_cross_entropy(h @ w_out, labels);
    }
}

/// The nonlinearity of the ten layers.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Activation {
    Tanh,
    Relu,
}

/// One weight initialisation of one network.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Setting {
    pub activation: Activation,
    /// How w1..w10 are drawn (the same runtime initialisers as `= xavier` in `.nn`).
    pub init: Init,
}

impl Setting {
    /// E.g. `tanh, normal(0, 0.01)`.
    pub fn label(&self) -> String {
        let act = match self.activation {
            Activation::Tanh => "tanh",
            Activation::Relu => "relu",
        };
        format!("{act}, {}", self.init)
    }

    /// A file-name-friendly form of [`Setting::label`].
    pub fn slug(&self) -> String {
        let keep = |c: char| {
            if c.is_ascii_alphanumeric() || c == '.' {
                c
            } else {
                '_'
            }
        };
        let slug: String = self.label().chars().map(keep).collect();
        slug.split('_')
            .filter(|s| !s.is_empty())
            .collect::<Vec<_>>()
            .join("_")
    }
}

/// The lecture's settings: tiny weights, unit weights and Xavier with tanh; Xavier and
/// He with ReLU.
pub fn settings() -> Vec<Setting> {
    let tanh = |init| Setting {
        activation: Activation::Tanh,
        init,
    };
    let relu = |init| Setting {
        activation: Activation::Relu,
        init,
    };
    vec![
        tanh(Init::Normal {
            mean: 0.0,
            std: 0.01,
        }),
        tanh(Init::Normal {
            mean: 0.0,
            std: 1.0,
        }),
        tanh(Init::Xavier),
        relu(Init::Xavier),
        relu(Init::He),
    ]
}

/// Statistics of one layer's activations.
#[derive(Clone, Debug)]
pub struct Layer {
    pub mean: f64,
    pub std: f64,
    /// Fraction of activations with `|h| > 0.9` (saturated, for tanh).
    pub saturated: f64,
    /// Fraction of activations with `|h| < 1e-3` (collapsed to zero).
    pub near_zero: f64,
    /// Some of the activations, for a histogram.
    pub sample: Vec<f64>,
}

/// The ten layers' statistics under one setting.
#[derive(Clone, Debug)]
pub struct Outcome {
    pub setting: Setting,
    pub layers: Vec<Layer>,
}

/// Runs `rows` standard normal inputs through the ten layers under every setting
/// (the same inputs each time), keeping up to `sample` activations per layer.
pub fn run(rows: usize, sample: usize, seed: u64) -> Result<Vec<Outcome>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let x = common::standard_normal(rows, 500, &mut rng).mapv(|v| v as f32);
    let labels = Array1::zeros(rows); // only the loss reads them
    let mut outcomes = vec![];
    for setting in settings() {
        let layers: Vec<Layer> = match setting.activation {
            Activation::Tanh => {
                let mut params = deep_tanh::Params::init(&mut rng);
                draw_hidden(&mut params, setting.init, &mut rng);
                let inputs = deep_tanh::Inputs {
                    x: x.view(),
                    labels: labels.view(),
                };
                let mut ws = deep_tanh::Workspace::new(inputs.dims()?);
                let h = deep_tanh::forward(&params, &inputs, &mut ws)?;
                [h.h1, h.h2, h.h3, h.h4, h.h5, h.h6, h.h7, h.h8, h.h9, h.h10]
                    .map(|h| statistics(h, sample))
                    .into()
            }
            Activation::Relu => {
                let mut params = deep_relu::Params::init(&mut rng);
                draw_hidden(&mut params, setting.init, &mut rng);
                let inputs = deep_relu::Inputs {
                    x: x.view(),
                    labels: labels.view(),
                };
                let mut ws = deep_relu::Workspace::new(inputs.dims()?);
                let h = deep_relu::forward(&params, &inputs, &mut ws)?;
                // Layer l's activations: hs[l].
                h.hs.axis_iter(Axis(0))
                    .map(|h| statistics(h, sample))
                    .collect()
            }
        };
        outcomes.push(Outcome { setting, layers });
    }
    Ok(outcomes)
}

/// Redraws the hidden layers' weights (w1..w10, or the stack w) from `init` (w_out
/// keeps its own; a stack's fan_in is each layer's, 500).
fn draw_hidden(params: &mut impl TensorSet<f32>, init: Init, rng: &mut StdRng) {
    for (name, mut w) in params.tensors_mut() {
        if name != "w_out" {
            fill(&mut w, init, rng);
        }
    }
}

/// Mean, std and the saturated and collapsed fractions, accumulated in f64.
fn statistics(h: ArrayView2<'_, f32>, sample: usize) -> Layer {
    let n = h.len().max(1) as f64;
    let mean = h.iter().map(|&v| f64::from(v)).sum::<f64>() / n;
    let var = h
        .iter()
        .map(|&v| (f64::from(v) - mean).powi(2))
        .sum::<f64>()
        / n;
    let fraction =
        |pred: fn(f64) -> bool| h.iter().filter(|&&v| pred(f64::from(v).abs())).count() as f64 / n;
    Layer {
        mean,
        std: var.sqrt(),
        saturated: fraction(|a| a > 0.9),
        near_zero: fraction(|a| a < 1e-3),
        sample: h.iter().take(sample).map(|&v| f64::from(v)).collect(),
    }
}
