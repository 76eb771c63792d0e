//! Every activation of the lecture and its derivative, evaluated by generated code:
//! the model's outputs are the activations of a grid, and its loss, the sum of them
//! all, has as gradient with respect to each (`grad`-marked) input exactly the
//! activation's derivative at each grid point.
#![allow(
    dead_code,
    reason = "shared with tests/examples.rs, which reads only what it asserts"
)]

use crate::common::{self, Result};
use nnc::Model;
use nnc::ndarray::Array1;
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::{NamedInputs, OutputValue, TensorSet};

nnc::net! {
    // Maxout of two fixed lines: max(0.5 x + 1, -x - 0.5), with a kink at x = -1.
    fn maxout(x) = max(0.5 * x + 1, -x - 0.5);

    model activation_curves {
        dtype f64;
        dim N;
        input x_sigmoid: [N] grad;
        input x_tanh: [N] grad;
        input x_relu: [N] grad;
        input x_leaky_relu: [N] grad;
        input x_elu: [N] grad;
        input x_softplus: [N] grad;
        input x_prelu: [N] grad;
        input x_maxout: [N] grad;

        let y_sigmoid = sigmoid(x_sigmoid);
        let y_tanh = tanh(x_tanh);
        let y_relu = relu(x_relu);
        let y_leaky_relu = leaky_relu(x_leaky_relu, alpha = 0.1);
        let y_elu = elu(x_elu, alpha = 1.0);
        let y_softplus = softplus(x_softplus);
        let y_prelu = prelu(x_prelu, 0.25);
        let y_maxout = maxout(x_maxout);
        output y_sigmoid; output y_tanh; output y_relu; output y_leaky_relu;
        output y_elu; output y_softplus; output y_prelu; output y_maxout;
        // Each input appears in one term only, so d loss / d x_f = f'(x_f).
        loss sum(y_sigmoid) + sum(y_tanh) + sum(y_relu) + sum(y_leaky_relu)
            + sum(y_elu) + sum(y_softplus) + sum(y_prelu) + sum(y_maxout);
    }
}

use activation_curves::ActivationCurves;

/// One activation on the grid.
#[derive(Clone, Debug)]
pub struct Curve {
    /// The activation's name (its input is `x_<name>`, its output `y_<name>`).
    pub name: String,
    pub values: Vec<f64>,
    pub derivatives: Vec<f64>,
}

#[derive(Clone, Debug)]
pub struct Report {
    pub grid: Vec<f64>,
    pub curves: Vec<Curve>,
}

/// Every activation and its derivative at `points` evenly spaced points of `[lo, hi]`.
pub fn run(lo: f64, hi: f64, points: usize) -> Result<Report> {
    let grid = Array1::linspace(lo, hi, points);
    // Every input of the model gets the same grid, by name.
    let floats = ActivationCurves::signature()
        .inputs
        .iter()
        .map(|input| (input.name.to_string(), grid.clone().into_dyn()))
        .collect();
    let named = NamedInputs {
        floats,
        indices: vec![],
    };
    let inputs = ActivationCurves::bind_inputs(&named)?;
    let mut ws = ActivationCurves::workspace(&inputs);
    let mut grads = ActivationCurves::zero_grads(&inputs);
    // The model has no parameters; its `Params` is empty.
    let params = ActivationCurves::init_params(&mut StdRng::seed_from_u64(0));
    ActivationCurves::loss_and_grad(&params, &inputs, &mut ws, &mut grads)?;
    let outputs = ActivationCurves::outputs(&params, &inputs, &mut ws)?;
    let gradients: common::Gradients = grads
        .tensors()
        .into_iter()
        .map(|(name, g)| (name, g.to_owned()))
        .collect();

    let mut curves = vec![];
    for (output, value) in outputs {
        let name = output.trim_start_matches("y_");
        let OutputValue::Float(values) = value else {
            return Err(format!("output `{output}` is not a float tensor").into());
        };
        let wanted = format!("x_{name}");
        let (_, derivatives) = gradients
            .iter()
            .find(|(g, _)| *g == wanted)
            .ok_or_else(|| format!("no gradient for `{wanted}`"))?;
        curves.push(Curve {
            name: name.to_string(),
            values: values.iter().copied().collect(),
            derivatives: derivatives.iter().copied().collect(),
        });
    }
    Ok(Report {
        grid: grid.to_vec(),
        curves,
    })
}
