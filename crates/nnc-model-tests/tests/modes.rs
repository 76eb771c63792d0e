//! Train and eval modes in generated code (`models/train_eval.nn`, the issue's
//! `deep` model at small sizes): the training step against the interpreter's
//! `Mode::Train` graph with the same masks (drawn from the same seed by the same
//! runtime function) and the same state updates; eval mode against the `Mode::Eval`
//! graph and against a hand computation; reproducibility from the seed.

use nnc::ir::interp::{Bindings, Value, evaluate};
use nnc::ir::{InputKind, Mode};
use nnc::ndarray::{Array1, Array2, ArrayD, Axis};
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;
use nnc::runtime::TensorSet;
use nnc_model_tests::harness::source;
use nnc_model_tests::{dropout_only, train_eval, train_eval_thin};

/// The model lowered in `mode`, differentiated.
fn ir(mode: Mode, name: &str) -> nnc::ir::Model {
    let models = nnc::ir::compile_source_in(&source("train_eval.nn"), mode)
        .unwrap_or_else(|d| panic!("{d:?}"));
    let model = models
        .into_iter()
        .find(|m| m.name == name)
        .unwrap_or_else(|| panic!("no {name}"));
    nnc::autodiff::with_gradients(&model).unwrap_or_else(|e| panic!("{e}"))
}

fn data(n: usize) -> (Array2<f64>, Array1<usize>) {
    data_of(n, 5)
}

fn data_of(n: usize, d: usize) -> (Array2<f64>, Array1<usize>) {
    let x = Array2::from_shape_fn((n, d), |(i, j)| ((i * d + j) as f64 * 0.37).sin() * 1.5);
    let labels = Array1::from_shape_fn(n, |i| (i * 7) % 3);
    (x, labels)
}

/// The interpreter's values at the generated model's parameters and states, with
/// masks drawn from `seed` as the generated training step draws them.
fn interpret(
    model: &nnc::ir::Model,
    params: &impl TensorSet<f64>,
    state: &impl TensorSet<f64>,
    x: &Array2<f64>,
    labels: &Array1<usize>,
    training: bool,
    seed: u64,
) -> nnc::ir::interp::Evaluation<f64> {
    let data = vec![
        ("x".to_string(), Value::Float(x.clone().into_dyn())),
        (
            "labels".to_string(),
            Value::Index(labels.clone().into_dyn()),
        ),
    ];
    let states: Vec<(String, ArrayD<f64>)> = state
        .tensors()
        .into_iter()
        .map(|(n, a)| (n.to_string(), a.to_owned()))
        .collect();
    let mut rng = StdRng::seed_from_u64(seed);
    let mut draw =
        |mask: &mut [f64], keep: f64| nnc::runtime::init::fill_dropout_mask(mask, keep, &mut rng);
    let mut inputs = data.clone();
    inputs.extend(
        nnc::ir::modes::mode_inputs(model, &data, &states, training, &mut draw)
            .unwrap_or_else(|e| panic!("{e}")),
    );
    let params: Vec<(String, ArrayD<f64>)> = params
        .tensors()
        .into_iter()
        .map(|(n, a)| (n.to_string(), a.to_owned()))
        .collect();
    let bindings = Bindings::from_named(model, inputs, params).unwrap_or_else(|e| panic!("{e}"));
    evaluate(model, &bindings).unwrap_or_else(|e| panic!("{e}"))
}

#[track_caller]
fn assert_close(a: &ArrayD<f64>, b: &ArrayD<f64>, what: &str) {
    assert_eq!(a.shape(), b.shape(), "{what}");
    for (x, y) in a.iter().zip(b) {
        assert!(
            (x - y).abs() <= 1e-12 * (1.0 + y.abs()),
            "{what}: {x} vs {y}"
        );
    }
}

fn params() -> train_eval::Params {
    let mut p = train_eval::Params::init(&mut StdRng::seed_from_u64(3));
    // Not the initial ones and zeros, so that gamma and beta are seen.
    p.gamma
        .iter_mut()
        .enumerate()
        .for_each(|(i, g)| *g = 0.5 + 0.25 * i as f64);
    p.beta
        .iter_mut()
        .enumerate()
        .for_each(|(i, b)| *b = 0.1 * i as f64 - 0.2);
    p
}

macro_rules! training_step_test {
    ($test:ident, $m:ident, $width:expr) => {
        #[test]
        fn $test() {
            use $m as train_eval;
            let model = ir(Mode::Train, stringify!($m));
            let (x, labels) = data_of(7, $width);
            let mut params = train_eval::Params::init(&mut StdRng::seed_from_u64(3));
            params
                .gamma
                .iter_mut()
                .enumerate()
                .for_each(|(i, g)| *g = 0.5 + 0.25 * i as f64);
            params
                .beta
                .iter_mut()
                .enumerate()
                .for_each(|(i, b)| *b = 0.1 * i as f64 - 0.2);
            let mut state = train_eval::State::init();
            state.var.fill(2.0);
            let before = state.clone();
            let inputs = train_eval::Inputs {
                x: x.view(),
                labels: labels.view(),
            };
            let mut ws =
                train_eval::Workspace::new(inputs.dims().unwrap_or_else(|e| panic!("{e}")));
            let mut grads = train_eval::Grads::zeros(inputs.dims().unwrap_or_default());
            let mut rng = StdRng::seed_from_u64(11);
            let loss = train_eval::loss_and_grad(
                &params, &mut state, &inputs, &mut ws, &mut grads, &mut rng,
            )
            .unwrap_or_else(|e| panic!("{e}"));
            let eval = interpret(&model, &params, &before, &x, &labels, true, 11);
            assert!(
                (loss - eval.loss()).abs() <= 1e-12,
                "{loss} vs {}",
                eval.loss()
            );
            for ((name, g), (of, expected)) in grads.tensors().into_iter().zip(eval.grads()) {
                assert_eq!(name, model.grad_name(of));
                assert_close(&g.to_owned(), expected, name);
            }
            let updated = nnc::ir::modes::updated_state(&model, &eval);
            assert_eq!(updated.len(), 2);
            for (name, expected) in &updated {
                let got = state
                    .tensors()
                    .into_iter()
                    .find(|(n, _)| n == name)
                    .map(|(_, a)| a.to_owned())
                    .unwrap_or_else(|| panic!("{name}"));
                assert_close(&got, expected, name);
            }
            // By hand: mu <- 0.8 * 0 + 0.2 * batch mean, var <- 0.8 * 2 + 0.2 * batch var.
            let masks: Vec<&ArrayD<f64>> = model
                .inputs
                .iter()
                .enumerate()
                .filter(|(_, i)| matches!(i.kind, InputKind::Mask { .. }))
                .filter_map(|(k, _)| {
                    eval.value(model.input_node(nnc::ir::InputId(k as u32))?)?
                        .as_float()
                })
                .collect();
            assert_eq!(masks.len(), 1);
            let h = eval
                .values()
                .iter()
                .zip(&model.nodes)
                .find(|(_, n)| n.name.as_deref() == Some("h"))
                .and_then(|(v, _)| v.as_float())
                .unwrap_or_else(|| panic!("no h"));
            let d = h * masks[0];
            let mean = d.mean_axis(Axis(0)).unwrap_or_else(|| panic!("empty"));
            let var = d.var_axis(Axis(0), 0.0);
            assert_close(
                &state.mu.clone().into_dyn(),
                &(&mean * 0.2).into_dyn(),
                "mu by hand",
            );
            assert_close(
                &state.var.clone().into_dyn(),
                &(&var * 0.2 + 1.6).into_dyn(),
                "var by hand",
            );
        }
    };
}

training_step_test!(
    the_training_step_matches_the_interpreter_with_the_same_masks_and_state_updates,
    train_eval,
    5
);
training_step_test!(
    the_same_with_products_expanded_into_loops,
    train_eval_thin,
    4
);

#[test]
fn eval_mode_matches_the_interpreter_and_a_hand_computation_and_is_deterministic() {
    let model = ir(Mode::Eval, "train_eval");
    let (x, labels) = data(6);
    let params = params();
    let mut state = train_eval::State::init();
    state
        .mu
        .iter_mut()
        .enumerate()
        .for_each(|(i, m)| *m = 0.1 * i as f64);
    state
        .var
        .iter_mut()
        .enumerate()
        .for_each(|(i, v)| *v = 0.5 + i as f64);
    let inputs = train_eval::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let mut ws = train_eval::Workspace::new(inputs.dims().unwrap_or_else(|e| panic!("{e}")));
    let loss =
        train_eval::loss(&params, &state, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    let again =
        train_eval::loss(&params, &state, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        loss.to_bits(),
        again.to_bits(),
        "eval mode is deterministic"
    );
    let b = train_eval::forward(&params, &state, &inputs, &mut ws)
        .unwrap_or_else(|e| panic!("{e}"))
        .b
        .to_owned();
    let eval = interpret(&model, &params, &state, &x, &labels, false, 0);
    assert!(
        (loss - eval.loss()).abs() <= 1e-12,
        "{loss} vs {}",
        eval.loss()
    );
    let expected = eval
        .output("b")
        .and_then(Value::as_float)
        .unwrap_or_else(|| panic!("b"));
    assert_close(&b.clone().into_dyn(), expected, "b");
    // By hand: no dropout; gamma * (h - mu) / sqrt(var + 1e-5) + beta.
    let mut h = x.clone();
    for l in 0..2 {
        h = h.dot(&params.w.index_axis(Axis(0), l)).mapv(f64::tanh);
    }
    let by_hand =
        (&h - &state.mu) / &state.var.mapv(|v| (v + 1e-5).sqrt()) * &params.gamma + &params.beta;
    assert_close(&b.into_dyn(), &by_hand.into_dyn(), "b by hand");
    // Eval mode changes no state.
    assert_eq!(state, {
        let mut s = train_eval::State::init();
        s.mu.iter_mut()
            .enumerate()
            .for_each(|(i, m)| *m = 0.1 * i as f64);
        s.var
            .iter_mut()
            .enumerate()
            .for_each(|(i, v)| *v = 0.5 + i as f64);
        s
    });
}

/// Loss, gradients and states after `steps` SGD steps from the seed.
fn run(seed: u64, steps: usize) -> (Vec<u64>, Vec<u64>, train_eval::State) {
    let (x, labels) = data(8);
    let mut params = params();
    let mut state = train_eval::State::init();
    let inputs = train_eval::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let mut ws = train_eval::Workspace::new(inputs.dims().unwrap_or_default());
    let mut grads = train_eval::Grads::zeros(inputs.dims().unwrap_or_default());
    let mut rng = StdRng::seed_from_u64(seed);
    let mut losses = vec![];
    for _ in 0..steps {
        let loss = train_eval::sgd_step(
            &mut params,
            &mut state,
            &inputs,
            &mut ws,
            &mut grads,
            0.1,
            &mut rng,
        )
        .unwrap_or_else(|e| panic!("{e}"));
        losses.push(loss.to_bits());
    }
    let bits = grads
        .tensors()
        .into_iter()
        .flat_map(|(_, g)| g.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
        .collect();
    (losses, bits, state)
}

#[test]
fn a_dropout_run_is_reproducible_from_its_seed() {
    let (losses, grads, state) = run(5, 4);
    let (losses2, grads2, state2) = run(5, 4);
    assert_eq!(losses, losses2);
    assert_eq!(grads, grads2);
    assert_eq!(state, state2);
    let (other, other_grads, _) = run(6, 4);
    assert_ne!(losses, other, "another seed draws other masks");
    assert_ne!(grads, other_grads);
}

#[test]
fn dropout_masks_keep_the_declared_fraction_scaled_by_its_inverse() {
    let mut mask = vec![0.0f64; 100_000];
    nnc::runtime::init::fill_dropout_mask(&mut mask, 0.75, &mut StdRng::seed_from_u64(1));
    let kept = mask.iter().filter(|m| **m != 0.0).count();
    assert!(mask.iter().all(|m| *m == 0.0 || *m == 1.0 / 0.75));
    let fraction = kept as f64 / mask.len() as f64;
    // Binomial(100 000, 0.75): standard deviation 0.0014.
    assert!((fraction - 0.75).abs() < 0.007, "{fraction}");
    let mean = mask.iter().sum::<f64>() / mask.len() as f64;
    assert!(
        (mean - 1.0).abs() < 0.01,
        "inverted dropout keeps the mean: {mean}"
    );
}

#[test]
fn a_model_with_dropout_only_takes_the_generator_and_no_state() {
    let x = Array2::from_shape_fn((3, 4), |(i, j)| (i + j) as f32 * 0.3 - 0.5);
    let y = Array1::from_shape_fn(3, |i| i as f32);
    let params = dropout_only::Params::init(&mut StdRng::seed_from_u64(0));
    let inputs = dropout_only::Inputs {
        x: x.view(),
        y: y.view(),
    };
    let mut ws = dropout_only::Workspace::new(inputs.dims().unwrap_or_default());
    let mut grads = dropout_only::Grads::zeros(inputs.dims().unwrap_or_default());
    let mut rng = StdRng::seed_from_u64(2);
    let train = dropout_only::loss_and_grad(&params, &inputs, &mut ws, &mut grads, &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let eval = dropout_only::loss(&params, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    // Eval mode is the model without dropout, by hand.
    let h = x.mapv(f32::tanh);
    let pred = h.dot(&params.w);
    let by_hand = (&pred - &y).mapv(|e| e * e).sum() / 3.0;
    assert!(
        (eval - by_hand).abs() <= 1e-5 * by_hand.abs().max(1.0),
        "{eval} vs {by_hand}"
    );
    assert_ne!(train, eval, "the training step drops elements");
}

#[test]
fn wrong_shapes_are_errors_not_panics() {
    let (x, labels) = data(4);
    let params = params();
    let mut state = train_eval::State::init();
    state.mu = Array1::zeros(4);
    let inputs = train_eval::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let mut ws = train_eval::Workspace::new(inputs.dims().unwrap_or_default());
    let mut grads = train_eval::Grads::zeros(inputs.dims().unwrap_or_default());
    let mut rng = StdRng::seed_from_u64(0);
    let e = train_eval::loss_and_grad(&params, &mut state, &inputs, &mut ws, &mut grads, &mut rng);
    let message = e.err().map(|e| e.to_string()).unwrap_or_default();
    assert!(
        message.contains("`mu`") && message.contains("4"),
        "{message}"
    );
    let short = Array2::<f64>::zeros((4, 3));
    let inputs = train_eval::Inputs {
        x: short.view(),
        labels: labels.view(),
    };
    let state = train_eval::State::init();
    let message = train_eval::loss(&params, &state, &inputs, &mut ws)
        .err()
        .map(|e| e.to_string())
        .unwrap_or_default();
    assert!(
        message.contains("`x`") && message.contains("3"),
        "{message}"
    );
}

#[test]
fn parameters_and_states_round_trip_through_one_npz_file() {
    let (_, _, state) = run(3, 5);
    let mut state = state;
    let mut params = params();
    let dir = std::env::temp_dir().join(format!("nnc-modes-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("{e}"));
    let path = dir.join("params.npz");
    nnc::runtime::npz::save_tensors(&path, &(&mut params, &mut state))
        .unwrap_or_else(|e| panic!("{e}"));
    let (saved_params, saved_state) = (params.clone(), state.clone());
    let mut params = train_eval::Params::init(&mut StdRng::seed_from_u64(10));
    let mut state = train_eval::State::init();
    nnc::runtime::npz::load_tensors_into(&path, &mut (&mut params, &mut state))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(params, saved_params);
    assert_eq!(state, saved_state);
    let _ = std::fs::remove_dir_all(&dir);
}

/// The training step and eval mode give the same bits on 1, 2 and 3 threads.
#[test]
fn threads_never_change_the_bits_of_either_mode() {
    use nnc::runtime::parallel::Threads;
    let (x, labels) = data(300);
    let params = params();
    let inputs = train_eval::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let dims = inputs.dims().unwrap_or_else(|e| panic!("{e}"));
    let mut results = vec![];
    for count in [1, 2, 3] {
        let mut ws = train_eval::Workspace::with_threads(dims, Threads::new(count));
        let mut grads = train_eval::Grads::zeros(dims);
        let mut state = train_eval::State::init();
        let mut rng = StdRng::seed_from_u64(8);
        let train =
            train_eval::loss_and_grad(&params, &mut state, &inputs, &mut ws, &mut grads, &mut rng)
                .unwrap_or_else(|e| panic!("{e}"));
        let eval =
            train_eval::loss(&params, &state, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
        let bits: Vec<u64> = grads
            .tensors()
            .into_iter()
            .chain(state.tensors())
            .flat_map(|(_, a)| a.iter().map(|v| v.to_bits()).collect::<Vec<_>>())
            .collect();
        results.push((train.to_bits(), eval.to_bits(), bits));
    }
    assert_eq!(results[0], results[1]);
    assert_eq!(results[0], results[2]);
}
