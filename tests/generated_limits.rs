//! Generated code at the limits of its inputs: broadcast (stride-0) views of 2^60
//! rows are errors naming the input, the dim and the sizes, from every entry point,
//! never a panic; a parameter of the wrong shape is named as a parameter.

use nnc::Model;
use nnc::ndarray::Array2;
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::ShapeError;

nnc::net! {
    model wide {
        dtype f64;
        // Sides above 4: `x @ w` stays a product (see `nnc_codegen::thin`).
        dim N, D = 5, H = 6;
        input x: [N, D];
        param w: [D, H];
        loss sum(x * x) + sum(x @ w);
    }
}

fn params() -> wide::Params {
    wide::Params::init(&mut StdRng::seed_from_u64(0))
}

/// Every entry point on `inputs`, with a workspace and gradients made for them.
fn every_entry(params: &wide::Params, inputs: &wide::Inputs<'_>) -> Vec<Result<(), ShapeError>> {
    let mut ws = wide::Wide::workspace(inputs);
    let mut grads = wide::Wide::zero_grads(inputs);
    let mut p = params.clone();
    vec![
        inputs.dims().map(|_| ()),
        wide::loss(params, inputs, &mut ws).map(|_| ()),
        wide::forward(params, inputs, &mut ws).map(|_| ()),
        wide::loss_and_grad(params, inputs, &mut ws, &mut grads).map(|_| ()),
        wide::sgd_step(&mut p, inputs, &mut ws, &mut grads, 0.1).map(|_| ()),
        wide::loss(params, inputs, &mut wide::Workspace::default()).map(|_| ()),
    ]
}

#[test]
fn broadcast_views_of_2_to_the_60_rows_are_errors() {
    let row = Array2::<f64>::ones((1, 5));
    let rows = 1usize << 60;
    let x = row.broadcast((rows, 5)).expect("a stride-0 view");
    let inputs = wide::Inputs { x };
    for result in every_entry(&params(), &inputs) {
        let err = result.expect_err("too large");
        assert_eq!(
            err.to_string(),
            format!(
                "input `x`: axis 0 (dim `N`) has size {rows}, which makes values of shape \
                 [N, 6] hold {} elements, more than the limit of {}",
                6 * rows,
                nnc::runtime::support::MAX_ELEMENTS
            )
        );
    }
    // A broadcast view of a size that fits is read as usual (through the staging copy).
    let x = row.broadcast((5, 5)).expect("a stride-0 view");
    let inputs = wide::Inputs { x };
    for result in every_entry(&params(), &inputs) {
        result.expect("fits");
    }
}

#[test]
fn a_parameter_of_the_wrong_shape_is_named_as_a_parameter() {
    let x = Array2::<f64>::ones((4, 5));
    let inputs = wide::Inputs { x: x.view() };
    let mut p = params();
    p.w = Array2::zeros((5, 4));
    let mut ws = wide::Wide::workspace(&inputs);
    let err = wide::loss(&p, &inputs, &mut ws).expect_err("w is [5, 4]");
    assert_eq!(
        err.to_string(),
        "parameter `w`: axis 1 (dim `H`) has size 4, expected 6"
    );
}
