//! `net!` on a model with train and eval modes (the issue's `deep` model, small):
//! the training step takes the states and the caller's generator, eval mode does
//! not draw, and a run is reproducible from its seed.

use nnc::ndarray::{Array1, Array2};
use nnc::rand::SeedableRng;
use nnc::rand::rngs::StdRng;

nnc::net! {
    model deep {
        dtype f64;
        dim N, D = 6, C = 3, L = 3;
        input x: [N, D];
        input labels: index[N];
        param w: [L, D, D] = xavier;
        param w_out: [D, C] = xavier;
        param gamma: [D] = ones;
        param beta: [D] = zeros;
        state mu: [D] = zeros;
        state var: [D] = ones;
        let h = for l in 0..L from x { tanh(h @ w[l]) };
        let d = dropout(h, 0.5);
        let b = batch_norm(d, gamma, beta, mu, var, momentum = 0.9);
        loss softmax_cross_entropy(b @ w_out, labels);
    }
}

/// The losses of `steps` SGD steps from `seed`, the final states, and the eval loss.
fn train(seed: u64, steps: usize) -> (Vec<f64>, deep::State, f64) {
    let x = Array2::from_shape_fn((8, 6), |(i, j)| ((i * 6 + j) as f64 * 0.7).cos());
    let labels = Array1::from_shape_fn(8, |i| i % 3);
    let inputs = deep::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let mut rng = StdRng::seed_from_u64(seed);
    let mut params = deep::Params::init(&mut StdRng::seed_from_u64(0));
    let mut state = deep::State::init();
    let dims = inputs.dims().unwrap_or_else(|e| panic!("{e}"));
    let (mut ws, mut grads) = (deep::Workspace::new(dims), deep::Grads::zeros(dims));
    let losses = (0..steps)
        .map(|_| {
            deep::sgd_step(
                &mut params,
                &mut state,
                &inputs,
                &mut ws,
                &mut grads,
                0.05,
                &mut rng,
            )
            .unwrap_or_else(|e| panic!("{e}"))
        })
        .collect();
    let eval = deep::loss(&params, &state, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    let again = deep::loss(&params, &state, &inputs, &mut ws).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(
        eval.to_bits(),
        again.to_bits(),
        "eval mode is deterministic"
    );
    (losses, state, eval)
}

#[test]
fn net_compiles_dropout_and_batch_norm_with_states_and_a_seeded_generator() {
    let (losses, state, eval) = train(1, 20);
    let (same, same_state, same_eval) = train(1, 20);
    assert_eq!(losses, same);
    assert_eq!(state, same_state);
    assert_eq!(eval.to_bits(), same_eval.to_bits());
    let (other, _, _) = train(2, 20);
    assert_ne!(losses, other);
    // The running statistics moved from their initial values, towards the batch's.
    assert!(state.mu.iter().any(|m| m.abs() > 1e-3), "{:?}", state.mu);
    assert!(
        state
            .var
            .iter()
            .all(|v| *v > 0.0 && (*v - 1.0).abs() > 1e-6),
        "{:?}",
        state.var
    );
    assert!(losses.iter().all(|l| l.is_finite()) && eval.is_finite());
}
