//! One check for every pair of implementations.

use nnc_bench::{BenchFloat, Named, Trainer, relative_error};

/// Runs two steps of `reference` and `other` side by side and asserts that the
/// losses, the gradients and the updated parameters agree to `tol` (relative).
#[track_caller]
pub fn agree<F: BenchFloat>(
    what: &str,
    reference: &mut dyn Trainer<F>,
    other: &mut dyn Trainer<F>,
    tol: f64,
) {
    for step in 0..2 {
        let (lr, lo) = (reference.loss_and_grad(), other.loss_and_grad());
        let (lr, lo) = (
            lr.to_f64().unwrap_or(f64::NAN),
            lo.to_f64().unwrap_or(f64::NAN),
        );
        let err = (lr - lo).abs() / lr.abs();
        assert!(
            err < tol,
            "{what}, step {step}: loss {lo}, reference {lr} (relative error {err:e})"
        );
        compare(
            what,
            step,
            "gradient",
            &other.grads(),
            &reference.grads(),
            tol,
        );
        reference.update();
        other.update();
        compare(
            what,
            step,
            "updated parameter",
            &other.params(),
            &reference.params(),
            tol,
        );
    }
}

#[track_caller]
fn compare<F: BenchFloat>(
    what: &str,
    step: usize,
    kind: &str,
    got: &Named<'_, F>,
    want: &Named<'_, F>,
    tol: f64,
) {
    let names = |v: &Named<'_, F>| v.iter().map(|(n, _)| n.to_string()).collect::<Vec<_>>();
    assert_eq!(names(got), names(want), "{what}: {kind} names");
    for ((name, a), (_, b)) in got.iter().zip(want) {
        let err = relative_error(a, b);
        assert!(
            err < tol,
            "{what}, step {step}: {kind} `{name}` differs by {err:e} (relative)"
        );
    }
}
