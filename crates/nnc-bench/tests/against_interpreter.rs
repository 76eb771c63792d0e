//! Every implementation the benchmark times computes what the models say. The
//! hand-written baselines agree with the IR interpreter (on the model with its
//! derived backward pass) — loss, every gradient and the updated parameters, over two
//! steps — and the generated code agrees with the baselines. Small batches keep this
//! quick in a debug build; the layer widths are the spec's.

mod common;

use nnc_bench::interp::InterpTrainer;
use nnc_bench::workload::{Problem, Workload};
use nnc_bench::{BenchFloat, baseline, generated};
use nnc_runtime::parallel::Threads;

/// The baseline against the interpreter, and the generated code against the
/// baseline, over two steps at batch size `n`.
#[track_caller]
fn check<F: BenchFloat>(
    workload: Workload,
    n: usize,
    tol: f64,
    generated: Option<generated::GeneratedFn<F>>,
) {
    let problem = Problem::<F>::new(workload, n, 1).expect("the problem builds");
    let lr = workload.lr();
    let mut interp = InterpTrainer::new(&problem, lr).expect("the interpreter accepts it");
    let mut base = baseline::for_problem(&problem, lr);
    common::agree(
        &format!("{workload} by hand vs interpreted"),
        &mut interp,
        &mut *base,
        tol,
    );
    // Every workload has generated code unless the `generated` feature is off.
    let Some(make) = generated else {
        if cfg!(feature = "generated") {
            panic!("{workload} has no generated code");
        }
        return;
    };
    let named = problem.named_inputs();
    let mut code =
        make(&named, &problem, lr, &Threads::one()).expect("the generated code accepts it");
    let mut base = baseline::for_problem(&problem, lr);
    common::agree(
        &format!("{workload} generated vs by hand"),
        &mut *base,
        &mut *code,
        tol,
    );
}

#[test]
fn w1_two_layer_matches_the_interpreter() {
    check::<f64>(Workload::W1, 8, 1e-10, generated::for_f64(Workload::W1));
}

#[test]
fn w2_spiral_matches_the_interpreter() {
    // 3 x 10 points.
    check::<f64>(Workload::W2, 30, 1e-10, generated::for_f64(Workload::W2));
}

#[test]
fn w3_mlp784_matches_the_interpreter() {
    check::<f32>(Workload::W3, 8, 1e-4, generated::for_f32(Workload::W3));
}

#[test]
fn w4_deep_tanh_matches_the_interpreter() {
    check::<f32>(Workload::W4, 4, 1e-4, generated::for_f32(Workload::W4));
}

#[test]
fn the_counted_flops_are_the_spec_s() {
    for w in Workload::ALL {
        let counted = w.mflop(w.batch());
        let spec = w.spec_mflop();
        assert!(
            (counted - spec).abs() < 0.05,
            "{w}: {counted} MFLOP per step counted, the spec says {spec}"
        );
    }
}

#[test]
fn the_largest_matmuls_are_the_forward_layers() {
    let shapes: Vec<String> = Workload::ALL
        .iter()
        .map(|w| w.largest_matmul().to_string())
        .collect();
    assert_eq!(
        shapes,
        ["64x1000x100", "300x100x3", "128x784x256", "256x500x500"]
    );
}

#[test]
fn the_spiral_has_three_classes_on_the_unit_disc() {
    let problem = Problem::<f64>::new(Workload::W2, 300, 0).expect("the problem builds");
    let x = problem.float("x");
    let labels = problem.indices("labels");
    assert_eq!(x.shape(), [300, 2]);
    for c in 0..3 {
        assert_eq!(labels.iter().filter(|&&l| l == c).count(), 100);
    }
    for row in x.rows() {
        assert!(row.dot(&row) <= 1.0 + 1e-12);
    }
}
