//! After the workspace exists, `loss`, `forward` and `loss_and_grad` allocate
//! nothing — with the same batch size (256: products and loops are split across
//! threads), and with a smaller one, on one thread and on
//! several — counted by a global allocator on every thread. That includes the
//! matrix products (`nnc::runtime::linalg::matmul` packs into the workspace's
//! `GemmScratch`) and the pool's threads, whose own start-up allocations are over
//! when `Threads::new` (or `Threads::shared`, which the last case uses) returns.
//!
//! The count is global, so this binary has one test: nothing else runs while it
//! counts.

use nnc::Model;
use nnc::runtime::parallel::Threads;
use nnc_model_tests as models;
use nnc_model_tests::harness::{ir, random_inputs, random_params};
use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};

/// Counts allocations made by any thread while `COUNTING` is set.
struct Counting;

static ALLOCATIONS: AtomicUsize = AtomicUsize::new(0);
static COUNTING: AtomicBool = AtomicBool::new(false);

fn count() {
    if COUNTING.load(Ordering::Relaxed) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

// SAFETY: every method forwards to `System` with the caller's arguments unchanged.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { System.alloc(layout) }
    }

    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: forwarded as is.
        unsafe { System.dealloc(ptr, layout) }
    }

    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { System.alloc_zeroed(layout) }
    }

    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        count();
        // SAFETY: forwarded as is.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// How many allocations happen, on any thread, while `f` runs.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.load(Ordering::SeqCst);
    COUNTING.store(true, Ordering::SeqCst);
    f();
    COUNTING.store(false, Ordering::SeqCst);
    ALLOCATIONS.load(Ordering::SeqCst) - before
}

#[track_caller]
fn check<M: Model>(file: &str, name: &str, threads: &Threads) {
    let ir = ir(file, name);
    let (big, small) = (
        random_inputs::<M>(&ir, 256, 1),
        random_inputs::<M>(&ir, 5, 2),
    );
    let params = random_params::<M>(3);
    let big = M::bind_inputs(&big).unwrap_or_else(|e| panic!("{e}"));
    let small = M::bind_inputs(&small).unwrap_or_else(|e| panic!("{e}"));
    let mut ws = M::workspace_on(&big, threads.clone());
    let mut grads = M::zero_grads(&big);
    // Warm-up: anything lazy.
    M::loss_and_grad(&params, &big, &mut ws, &mut grads).unwrap_or_else(|e| panic!("{e}"));
    let mut stepped = params.clone();
    let lr = <M::Float as nnc::runtime::num_traits::Float>::epsilon();
    let mut results = Vec::with_capacity(16);
    let n = allocations(|| {
        for _ in 0..3 {
            results.push(M::loss_and_grad(&params, &big, &mut ws, &mut grads).is_ok());
            results.push(M::loss(&params, &big, &mut ws).is_ok());
            results.push(M::loss_and_grad(&params, &small, &mut ws, &mut grads).is_ok());
            results.push(M::sgd_step(&mut stepped, &big, &mut ws, &mut grads, lr).is_ok());
        }
    });
    assert!(results.iter().all(|ok| *ok), "{name}: a call failed");
    assert_eq!(
        n, 0,
        "{name}: {n} allocations in 12 calls after warm-up on {threads:?}"
    );
}

#[test]
fn nothing_allocates_after_warm_up_on_any_thread_count() {
    counting_works();
    for count in [1, 2, 3] {
        every_model(&Threads::new(count));
    }
    forward_allocates_nothing();
    for count in [1, 2] {
        train_and_eval_allocate_nothing(&Threads::new(count));
    }
}

fn counting_works() {
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(10);
        std::hint::black_box(&v);
        // Another thread's allocation counts too.
        std::thread::scope(|s| {
            s.spawn(|| std::hint::black_box(Vec::<u8>::with_capacity(10)));
        });
    });
    assert!(n >= 2, "{n}");
}

fn every_model(threads: &Threads) {
    check::<models::activations::Activations>("activations.nn", "activations", threads);
    check::<models::deep_tanh::DeepTanh>("deep_tanh.nn", "deep_tanh", threads);
    // Its loop a Rust loop over stacked buffers.
    check::<models::deep_stack::DeepStack>("deep_stack.nn", "deep_stack", threads);
    check::<models::add_mul::AddMul>("gates.nn", "add_mul", threads);
    check::<models::neuron::Neuron>("gates.nn", "neuron", threads);
    check::<models::neuron_gate::NeuronGate>("gates.nn", "neuron_gate", threads);
    check::<models::logistic_regression::LogisticRegression>(
        "logistic.nn",
        "logistic_regression",
        threads,
    );
    check::<models::linear_svm::LinearSvm>("logistic.nn", "linear_svm", threads);
    check::<models::least_squares::LeastSquares>("logistic.nn", "least_squares", threads);
    check::<models::mlp784::Mlp784>("mlp784.nn", "mlp784", threads);
    check::<models::spiral::Spiral>("spiral.nn", "spiral", threads);
    check::<models::svm::Svm>("svm.nn", "svm", threads);
    check::<models::svm_spelled_out::SvmSpelledOut>("svm.nn", "svm_spelled_out", threads);
    check::<models::three_layer::ThreeLayer>("three_layer.nn", "three_layer", threads);
    check::<models::two_layer::TwoLayer>("two_layer.nn", "two_layer", threads);
    check::<models::reductions::Reductions>("features.nn", "reductions", threads);
    check::<models::shapes::Shapes>("features.nn", "shapes", threads);
    check::<models::activations_f32::ActivationsF32>("features.nn", "activations_f32", threads);
    check::<models::constant_batch::ConstantBatch>("features.nn", "constant_batch", threads);
}

fn forward_allocates_nothing() {
    use models::spiral;
    let ir = ir("spiral.nn", "spiral");
    let named = random_inputs::<spiral::Spiral>(&ir, 12, 4);
    let params = random_params::<spiral::Spiral>(5);
    let inputs = spiral::Spiral::bind_inputs(&named).unwrap_or_else(|e| panic!("{e}"));
    let mut ws = spiral::Workspace::new(inputs.dims_unchecked());
    let mut sum = 0.0;
    let n = allocations(|| {
        for _ in 0..3 {
            if let Ok(out) = spiral::forward(&params, &inputs, &mut ws) {
                sum += out.scores.sum() + out.predicted.len() as f64;
            }
        }
    });
    assert!(sum.is_finite() && sum != 0.0);
    assert_eq!(n, 0);
}

/// The issue's `deep` model (dropout, batch norm, states) at its full size (D = 500,
/// ten layers): the training step draws its mask into the workspace and writes the
/// states in place; eval mode fills the mask with ones. None of it allocates.
fn train_and_eval_allocate_nothing(threads: &Threads) {
    use models::deep;
    use nnc::ndarray::{Array1, Array2};
    use nnc::rand::SeedableRng;
    let (big, small) = (64, 5);
    let x = Array2::from_shape_fn((big, 500), |(i, j)| ((i * 500 + j) as f32 * 0.01).sin());
    let labels = Array1::from_shape_fn(big, |i| i % 10);
    let (xs, ls) = (
        x.slice(nnc::ndarray::s![..small, ..]),
        labels.slice(nnc::ndarray::s![..small]),
    );
    let mut rng = nnc::rand::rngs::StdRng::seed_from_u64(0);
    let mut params = deep::Params::init(&mut rng);
    let mut state = deep::State::init();
    let inputs = deep::Inputs {
        x: x.view(),
        labels: labels.view(),
    };
    let few = deep::Inputs { x: xs, labels: ls };
    let dims = inputs.dims().unwrap_or_else(|e| panic!("{e}"));
    let mut ws = deep::Workspace::with_threads(dims, threads.clone());
    let mut grads = deep::Grads::zeros(dims);
    deep::loss_and_grad(&params, &mut state, &inputs, &mut ws, &mut grads, &mut rng)
        .unwrap_or_else(|e| panic!("{e}"));
    let mut results = Vec::with_capacity(32);
    let n = allocations(|| {
        for _ in 0..2 {
            results.push(
                deep::loss_and_grad(&params, &mut state, &inputs, &mut ws, &mut grads, &mut rng)
                    .is_ok(),
            );
            results.push(
                deep::sgd_step(
                    &mut params,
                    &mut state,
                    &few,
                    &mut ws,
                    &mut grads,
                    1e-3,
                    &mut rng,
                )
                .is_ok(),
            );
            results.push(deep::loss(&params, &state, &inputs, &mut ws).is_ok());
            results.push(deep::forward(&params, &state, &few, &mut ws).is_ok());
        }
    });
    assert!(results.iter().all(|ok| *ok), "deep: a call failed");
    assert_eq!(n, 0, "deep: {n} allocations after warm-up on {threads:?}");
}
