//! The "no allocation in a training step" invariant, measured with
//! `allocation-counter`'s global allocator (which counts per thread, so tests running
//! in parallel do not disturb each other).

#[allow(dead_code)]
mod support;

use nnc_runtime::data::{BatchConfig, BatchInputs, Minibatches};
use nnc_runtime::ndarray::{ArrayD, ArrayViewD, ArrayViewMutD, IxDyn};
use nnc_runtime::optim::{Adam, AdamConfig, Momentum, MomentumConfig, Optimizer, Sgd};
use nnc_runtime::rand::SeedableRng;
use nnc_runtime::rand::rngs::StdRng;
use nnc_runtime::{Model, NamedInputs, TensorSet};

use support::linear::Linear;

/// Bytes this thread allocates while running `f`.
fn allocated_by(f: impl FnOnce()) -> u64 {
    allocation_counter::measure(f).bytes_total
}

/// Two large parameters, so a tensor-sized allocation would stand out.
#[derive(Clone)]
struct Big {
    a: ArrayD<f32>,
    b: ArrayD<f32>,
}

impl Big {
    fn filled(value: f32) -> Self {
        Big {
            a: ArrayD::from_elem(IxDyn(&[100, 100]), value),
            b: ArrayD::from_elem(IxDyn(&[1000]), value),
        }
    }
}

impl TensorSet<f32> for Big {
    fn tensors(&self) -> Vec<(&'static str, ArrayViewD<'_, f32>)> {
        vec![("a", self.a.view()), ("b", self.b.view())]
    }
    fn tensors_mut(&mut self) -> Vec<(&'static str, ArrayViewMutD<'_, f32>)> {
        vec![("a", self.a.view_mut()), ("b", self.b.view_mut())]
    }
}

#[test]
fn optimiser_steps_allocate_no_tensor() {
    let grads = Big::filled(0.5);
    let mut params = Big::filled(1.0);
    let mut sgd = Sgd::new(0.1);
    let mut momentum = Momentum::new(&params, MomentumConfig::default());
    let mut adam = Adam::new(&params, AdamConfig::default());
    // A tensor here is 40 000 bytes; the views `TensorSet` lends take a few hundred.
    for (name, bytes) in [
        (
            "sgd",
            allocated_by(|| sgd.step(&mut params, &grads).expect("fits")),
        ),
        (
            "momentum",
            allocated_by(|| momentum.step(&mut params, &grads).expect("fits")),
        ),
        (
            "adam",
            allocated_by(|| adam.step(&mut params, &grads).expect("fits")),
        ),
    ] {
        assert!(bytes < 1024, "{name} allocated {bytes} bytes in one step");
    }
}

#[test]
fn batching_and_loss_and_grad_allocate_nothing_once_warm() {
    let x = ArrayD::from_shape_fn(IxDyn(&[10, 3]), |i| (i[0] * 3 + i[1]) as f64);
    let y = ArrayD::from_shape_fn(IxDyn(&[10, 2]), |i| i[0] as f64);
    let data = NamedInputs {
        floats: vec![("x".into(), x), ("y".into(), y)],
        indices: vec![],
    };
    let mut batches = Minibatches::new(
        10,
        BatchConfig {
            batch_size: 4,
            seed: 0,
            drop_last: false,
        },
    )
    .expect("valid");
    let mut buffers = BatchInputs::new(&data, 4).expect("consistent");
    let params = Linear::init_params(&mut StdRng::seed_from_u64(0));
    // Warm up: one epoch allocates the short last batch's buffers.
    for rows in batches.epoch() {
        buffers.gather(&data, rows).expect("fits");
    }
    let full: Vec<usize> = (0..4).collect();
    let (mut ws, mut grads) = {
        let inputs =
            Linear::bind_inputs(buffers.gather(&data, &full).expect("fits")).expect("binds");
        (Linear::workspace(&inputs), Linear::zero_grads(&inputs))
    };
    let mut epoch = batches.epoch();
    let rows = epoch.next().expect("a first batch");
    // Gathering a batch and binding it allocate nothing.
    let bytes = allocated_by(|| {
        let batch = buffers.gather(&data, rows).expect("fits");
        Linear::bind_inputs(batch).expect("binds");
    });
    assert_eq!(bytes, 0);
    // Nor does the hand-written model's backward pass, but for the packing buffers
    // ndarray's matrix product (matrixmultiply) allocates on every call: three
    // products here, a few hundred bytes each, independent of the step.
    let inputs = Linear::bind_inputs(buffers.gather(&data, rows).expect("fits")).expect("binds");
    let first = allocated_by(|| drop(Linear::loss_and_grad(&params, &inputs, &mut ws, &mut grads)));
    let second =
        allocated_by(|| drop(Linear::loss_and_grad(&params, &inputs, &mut ws, &mut grads)));
    assert_eq!(first, second);
    assert!(first < 4096, "{first} bytes");
    let tail = epoch.nth(1).expect("the short last batch");
    assert_eq!(tail.len(), 2);
    assert_eq!(
        allocated_by(|| {
            let _ = buffers.gather(&data, tail).expect("fits");
        }),
        0
    );
}
