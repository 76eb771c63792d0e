//! After the workspace exists, `loss`, `forward` and `loss_and_grad` allocate
//! nothing — with the same batch size, and with a smaller one — counted by a global
//! allocator. That includes the matrix products: `nnc::runtime::linalg::matmul`
//! packs into the workspace's `GemmScratch`.

mod common;

use common::{ir, random_inputs, random_params};
use nnc::Model;
use nnc_model_tests as models;
use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;

/// Counts allocations made by the current thread (tests run on several threads).
struct Counting;

thread_local! {
    /// Allocations while counting.
    static ALLOCATIONS: Cell<usize> = const { Cell::new(0) };
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCATIONS.try_with(|c| c.set(c.get() + 1));
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

/// How many allocations `f` makes on this thread.
fn allocations(f: impl FnOnce()) -> usize {
    let before = ALLOCATIONS.with(Cell::get);
    COUNTING.with(|c| c.set(true));
    f();
    COUNTING.with(|c| c.set(false));
    ALLOCATIONS.with(Cell::get) - before
}

#[track_caller]
fn check<M: Model>(file: &str, name: &str) {
    let ir = ir(file, name);
    let (big, small) = (
        random_inputs::<M>(&ir, 16, 1),
        random_inputs::<M>(&ir, 5, 2),
    );
    let params = random_params::<M>(3);
    let big = M::bind_inputs(&big).unwrap_or_else(|e| panic!("{e}"));
    let small = M::bind_inputs(&small).unwrap_or_else(|e| panic!("{e}"));
    let mut ws = M::workspace(&big);
    let mut grads = M::zero_grads(&big);
    // Warm-up: the allocation counter's thread-locals, and anything lazy.
    M::loss_and_grad(&params, &big, &mut ws, &mut grads).unwrap_or_else(|e| panic!("{e}"));
    let mut results = Vec::with_capacity(16);
    let n = allocations(|| {
        for _ in 0..3 {
            results.push(M::loss_and_grad(&params, &big, &mut ws, &mut grads).is_ok());
            results.push(M::loss(&params, &big, &mut ws).is_ok());
            results.push(M::loss_and_grad(&params, &small, &mut ws, &mut grads).is_ok());
        }
    });
    assert!(results.iter().all(|ok| *ok), "{name}: a call failed");
    assert_eq!(n, 0, "{name}: {n} allocations in 9 calls after warm-up");
}

#[test]
fn counting_works() {
    let n = allocations(|| {
        let v: Vec<u8> = Vec::with_capacity(10);
        std::hint::black_box(&v);
    });
    assert_eq!(n, 1);
}

#[test]
fn every_model() {
    check::<models::activations::Activations>("activations.nn", "activations");
    check::<models::deep_tanh::DeepTanh>("deep_tanh.nn", "deep_tanh");
    check::<models::add_mul::AddMul>("gates.nn", "add_mul");
    check::<models::neuron::Neuron>("gates.nn", "neuron");
    check::<models::neuron_gate::NeuronGate>("gates.nn", "neuron_gate");
    check::<models::logistic_regression::LogisticRegression>("logistic.nn", "logistic_regression");
    check::<models::linear_svm::LinearSvm>("logistic.nn", "linear_svm");
    check::<models::least_squares::LeastSquares>("logistic.nn", "least_squares");
    check::<models::mlp784::Mlp784>("mlp784.nn", "mlp784");
    check::<models::spiral::Spiral>("spiral.nn", "spiral");
    check::<models::svm::Svm>("svm.nn", "svm");
    check::<models::svm_spelled_out::SvmSpelledOut>("svm.nn", "svm_spelled_out");
    check::<models::three_layer::ThreeLayer>("three_layer.nn", "three_layer");
    check::<models::two_layer::TwoLayer>("two_layer.nn", "two_layer");
    check::<models::reductions::Reductions>("features.nn", "reductions");
    check::<models::shapes::Shapes>("features.nn", "shapes");
    check::<models::activations_f32::ActivationsF32>("features.nn", "activations_f32");
    check::<models::constant_batch::ConstantBatch>("features.nn", "constant_batch");
}

#[test]
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
