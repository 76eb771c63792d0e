//! Wrong inputs are errors that name the input, the dim and both sizes — from every
//! entry point, before anything is computed — and unusual but valid arguments
//! (other layouts, other batch sizes, mis-shaped gradient buffers) just work.

use nnc_model_tests::harness as common;

use nnc::Model;
use nnc::ndarray::{Array1, Array2, ArrayD, IxDyn, ShapeBuilder};
use nnc::runtime::{NamedInputs, ShapeError};
use nnc_model_tests::{spiral, two_layer};

fn dim(input: &str, axis: usize, dim: &str, expected: usize, actual: usize) -> ShapeError {
    ShapeError::Dim {
        input: input.into(),
        axis,
        dim: dim.into(),
        expected,
        actual,
    }
}

fn two_layer_params() -> two_layer::Params {
    common::random_params::<two_layer::TwoLayer>(1)
}

/// Every entry point of `two_layer` on `inputs`: all the same error, or all fine.
#[track_caller]
fn two_layer_results(
    params: &two_layer::Params,
    inputs: &two_layer::Inputs<'_>,
) -> [Result<(), ShapeError>; 3] {
    let mut ws = two_layer::Workspace::new(inputs.dims_unchecked());
    let mut grads = two_layer::Grads::zeros(inputs.dims_unchecked());
    [
        two_layer::loss(params, inputs, &mut ws).map(|_| ()),
        two_layer::forward(params, inputs, &mut ws).map(|_| ()),
        two_layer::loss_and_grad(params, inputs, &mut ws, &mut grads).map(|_| ()),
    ]
}

#[track_caller]
fn check_two_layer(x: (usize, usize), y: (usize, usize), expected: Option<ShapeError>) {
    let (x, y) = (Array2::<f64>::zeros(x), Array2::<f64>::zeros(y));
    let inputs = two_layer::Inputs {
        x: x.view(),
        y: y.view(),
    };
    let results = two_layer_results(&two_layer_params(), &inputs);
    for r in results {
        assert_eq!(r.err(), expected.clone());
    }
}

#[test]
fn a_wrong_fixed_dim_names_the_input_the_dim_and_both_sizes() {
    check_two_layer((4, 999), (4, 10), Some(dim("x", 1, "D_in", 1000, 999)));
    check_two_layer((4, 1000), (4, 11), Some(dim("y", 1, "D_out", 10, 11)));
    check_two_layer((4, 1000), (4, 10), None);
}

#[test]
fn inputs_disagreeing_on_a_runtime_dim_are_an_error() {
    check_two_layer((4, 1000), (5, 10), Some(dim("y", 0, "N", 4, 5)));
    let e = dim("y", 0, "N", 4, 5);
    assert_eq!(
        e.to_string(),
        "input `y`: axis 0 (dim `N`) has size 5, expected 4"
    );
}

#[test]
fn a_parameter_of_the_wrong_shape_is_an_error() {
    let (x, y) = (
        Array2::<f64>::zeros((3, 1000)),
        Array2::<f64>::zeros((3, 10)),
    );
    let inputs = two_layer::Inputs {
        x: x.view(),
        y: y.view(),
    };
    let mut params = two_layer_params();
    params.w2 = Array2::zeros((100, 9));
    let named = ShapeError::ParamDim {
        param: "w2".into(),
        axis: 1,
        dim: "D_out".into(),
        expected: 10,
        actual: 9,
    };
    assert_eq!(
        named.to_string(),
        "parameter `w2`: axis 1 (dim `D_out`) has size 9, expected 10"
    );
    for r in two_layer_results(&params, &inputs) {
        assert_eq!(r.err(), Some(named.clone()));
    }
}

fn spiral_inputs(labels: &[usize]) -> (Array2<f64>, Array1<usize>) {
    (
        Array2::from_shape_fn((labels.len(), 2), |(i, j)| (i + j) as f64 * 0.1),
        Array1::from(labels.to_vec()),
    )
}

#[test]
fn class_indices_out_of_range_are_an_error() {
    let params = common::random_params::<spiral::Spiral>(2);
    let (x, labels) = spiral_inputs(&[0, 2, 3, 1]);
    let inputs = spiral::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let mut ws = spiral::Workspace::new(inputs.dims_unchecked());
    let mut grads = spiral::Grads::zeros(inputs.dims_unchecked());
    let expected = ShapeError::IndexOutOfRange {
        input: "labels".into(),
        position: 2,
        value: 3,
        dim: "K".into(),
        bound: 3,
    };
    assert_eq!(
        spiral::loss(&params, &inputs, &mut ws).err(),
        Some(expected.clone())
    );
    assert_eq!(
        spiral::forward(&params, &inputs, &mut ws).err(),
        Some(expected.clone())
    );
    assert_eq!(
        spiral::loss_and_grad(&params, &inputs, &mut ws, &mut grads).err(),
        Some(expected)
    );
    let (x, labels) = spiral_inputs(&[0, 2, 2, 1]);
    let inputs = spiral::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    assert!(spiral::loss_and_grad(&params, &inputs, &mut ws, &mut grads).is_ok());
}

#[test]
fn binding_by_name_reports_rank_missing_and_unknown_inputs() {
    let named =
        |floats: Vec<(&str, Vec<usize>)>, indices: Vec<(&str, Vec<usize>)>| NamedInputs::<f64> {
            floats: floats
                .into_iter()
                .map(|(n, s)| (n.to_string(), ArrayD::zeros(IxDyn(&s))))
                .collect(),
            indices: indices
                .into_iter()
                .map(|(n, s)| (n.to_string(), ArrayD::zeros(IxDyn(&s))))
                .collect(),
        };
    let cases = [
        (
            named(vec![("x", vec![4, 2])], vec![("labels", vec![4])]),
            None,
        ),
        (
            named(vec![("x", vec![8])], vec![("labels", vec![4])]),
            Some(ShapeError::Rank {
                input: "x".into(),
                expected: 2,
                actual: 1,
            }),
        ),
        (
            named(vec![("x", vec![4, 2])], vec![]),
            Some(ShapeError::Missing {
                input: "labels".into(),
            }),
        ),
        (
            named(vec![("x", vec![4, 2]), ("labels", vec![4])], vec![]),
            Some(ShapeError::Unexpected {
                model: "spiral".into(),
                name: "labels".into(),
            }),
        ),
        (
            named(
                vec![("x", vec![4, 2])],
                vec![("labels", vec![4]), ("extra", vec![4])],
            ),
            Some(ShapeError::Unexpected {
                model: "spiral".into(),
                name: "extra".into(),
            }),
        ),
        (
            named(vec![("x", vec![4, 3])], vec![("labels", vec![4])]),
            Some(dim("x", 1, "D", 2, 3)),
        ),
        (
            named(vec![("x", vec![4, 2])], vec![("labels", vec![5])]),
            Some(dim("labels", 0, "N", 4, 5)),
        ),
    ];
    for (named, expected) in cases {
        let got = spiral::Spiral::bind_inputs(&named).map(|_| ()).err();
        assert_eq!(got, expected);
    }
}

/// Transposed inputs, a workspace sized for another batch and gradients of the wrong
/// shape give the same results as the plain case.
#[test]
fn layouts_batch_sizes_and_gradient_buffers_do_not_matter() {
    let ir = common::ir("two_layer.nn", "two_layer");
    let named = common::random_inputs::<two_layer::TwoLayer>(&ir, 6, 9);
    let params = two_layer_params();
    let inputs = two_layer::TwoLayer::bind_inputs(&named).unwrap_or_else(|e| panic!("{e}"));
    let mut ws = two_layer::Workspace::new(inputs.dims_unchecked());
    let mut grads = two_layer::Grads::zeros(inputs.dims_unchecked());
    let loss = two_layer::loss_and_grad(&params, &inputs, &mut ws, &mut grads)
        .unwrap_or_else(|e| panic!("{e}"));

    // The same values in column-major arrays.
    let column_major = |a: nnc::ndarray::ArrayView2<'_, f64>| {
        let mut f = Array2::zeros(a.raw_dim().f());
        f.assign(&a);
        f
    };
    let (xf, yf) = (column_major(inputs.x), column_major(inputs.y));
    let transposed = two_layer::Inputs {
        x: xf.view(),
        y: yf.view(),
    };
    assert!(
        transposed.x.as_slice().is_none() && transposed.y.as_slice().is_none(),
        "really not row-major"
    );
    let mut params_f = params.clone();
    params_f.w1 = column_major(params.w1.view());
    params_f.w2 = column_major(params.w2.view());
    let mut small_ws = two_layer::Workspace::new(two_layer::Dims { n: 1 });
    let mut odd_grads = two_layer::Grads {
        w1: Array2::zeros((3, 3)),
        w2: Array2::from_elem((10, 100), f64::NAN).reversed_axes(),
    };
    let loss2 = two_layer::loss_and_grad(&params_f, &transposed, &mut small_ws, &mut odd_grads)
        .unwrap_or_else(|e| panic!("{e}"));
    let tol = common::tolerance::<f64>();
    common::assert_close(
        "loss",
        common::scalar(loss2).view(),
        common::scalar(loss).view(),
        tol,
    );
    common::assert_close(
        "d_w1",
        odd_grads.w1.view().into_dyn(),
        grads.w1.view().into_dyn(),
        tol,
    );
    common::assert_close(
        "d_w2",
        odd_grads.w2.view().into_dyn(),
        grads.w2.view().into_dyn(),
        tol,
    );
    let out =
        two_layer::forward(&params_f, &transposed, &mut small_ws).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(out.y_pred.dim(), (6, 10));
}

/// An empty batch (`N = 0`) is valid input: every entry point returns without
/// panicking (a mean over nothing is NaN, as in numpy).
#[track_caller]
fn empty_batch<M: Model>(file: &str, name: &str) {
    let ir = common::ir(file, name);
    let named = common::random_inputs::<M>(&ir, 0, 1);
    let params = common::random_params::<M>(2);
    let inputs = M::bind_inputs(&named).unwrap_or_else(|e| panic!("{name}: {e}"));
    let mut ws = M::workspace(&inputs);
    let mut grads = M::zero_grads(&inputs);
    assert!(M::loss(&params, &inputs, &mut ws).is_ok(), "{name}");
    assert!(
        M::loss_and_grad(&params, &inputs, &mut ws, &mut grads).is_ok(),
        "{name}"
    );
    assert!(M::outputs(&params, &inputs, &mut ws).is_ok(), "{name}");
}

#[test]
fn an_empty_batch_runs() {
    use nnc_model_tests as m;
    empty_batch::<m::activations::Activations>("activations.nn", "activations");
    empty_batch::<m::deep_tanh::DeepTanh>("deep_tanh.nn", "deep_tanh");
    empty_batch::<m::logistic_regression::LogisticRegression>("logistic.nn", "logistic_regression");
    empty_batch::<m::mlp784::Mlp784>("mlp784.nn", "mlp784");
    empty_batch::<m::spiral::Spiral>("spiral.nn", "spiral");
    empty_batch::<m::svm_spelled_out::SvmSpelledOut>("svm.nn", "svm_spelled_out");
    empty_batch::<m::two_layer::TwoLayer>("two_layer.nn", "two_layer");
    empty_batch::<m::reductions::Reductions>("features.nn", "reductions");
    empty_batch::<m::shapes::Shapes>("features.nn", "shapes");
}
