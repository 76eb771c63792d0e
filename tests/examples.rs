//! The examples' claims, asserted: each test calls the same function as the example's
//! `main` (from `examples/common/`), often with a smaller setting so that it runs
//! quickly in a debug build, and checks the numbers the example prints.

#[path = "../examples/common/mod.rs"]
mod common;

#[path = "../examples/common/activations.rs"]
mod activations;
#[path = "../examples/common/digits.rs"]
mod digits;
#[path = "../examples/common/gradient_check.rs"]
mod gradient_check;
#[path = "../examples/common/init_statistics.rs"]
mod init_statistics;
#[path = "../examples/common/search_vs_gradient.rs"]
mod search_vs_gradient;
#[path = "../examples/common/spiral.rs"]
mod spiral;
#[path = "../examples/common/two_layer.rs"]
mod two_layer;

use common::Result;

/// The lecture's network learns: with the full batch of 64 and a quarter of the
/// steps, the loss falls more than a hundredfold, every step; the derived gradients
/// match central differences.
#[test]
fn two_layer_loss_falls_and_gradients_check() -> Result<()> {
    let config = two_layer::Config {
        steps: 500,
        check_samples: 5,
        ..Default::default()
    };
    let report = two_layer::run(&config)?;
    assert_eq!(report.losses.len(), 501);
    let (first, last) = (report.losses[0], report.losses[500]);
    assert!(
        first / last > 100.0,
        "loss fell from {first} to {last} only"
    );
    assert!(
        report.losses.windows(2).all(|w| w[1] < w[0]),
        "the loss falls at every step"
    );
    assert!(report.check.passed(), "gradient check:\n{}", report.check);
    assert!(
        report.check.max_relative_error() < 1e-5,
        "gradient check:\n{}",
        report.check
    );
    Ok(())
}

/// The spiral classifier separates the arms: ≥ 97% training accuracy.
#[test]
fn spiral_reaches_97_percent() -> Result<()> {
    let config = spiral::Config {
        steps: 3000,
        ..Default::default()
    };
    let report = spiral::run(&config)?;
    assert!(
        report.accuracy >= 0.97,
        "training accuracy {}",
        report.accuracy
    );
    let (first, last) = (report.losses[0], report.losses[config.steps]);
    assert!(
        (first - 3f64.ln()).abs() < 1e-3,
        "starts at log 3 (tiny weights): {first}"
    );
    assert!(last < 0.3, "final loss {last}");
    Ok(())
}

/// The digits MLP: ≥ 95% test accuracy with momentum and Adam (and ≥ 90% with plain
/// SGD at the same step size, which is still far behind after 30 epochs); momentum
/// and Adam end with lower training losses than SGD; the confusion matrix counts
/// every test image, with the right ones on the diagonal.
#[test]
fn digits_test_accuracy_and_optimisers() -> Result<()> {
    let report = digits::run(&digits::Config::default())?;
    assert_eq!((report.train_size, report.test_size), (1438, 359));
    let [sgd, momentum, adam] = report.runs.as_slice() else {
        panic!("three runs")
    };
    for run in [momentum, adam] {
        assert!(
            run.test_accuracy >= 0.95,
            "{}: test accuracy {}",
            run.optimiser,
            run.test_accuracy
        );
    }
    assert!(
        sgd.test_accuracy >= 0.90,
        "SGD: test accuracy {}",
        sgd.test_accuracy
    );
    let last = |run: &digits::Run| run.losses[run.losses.len() - 1];
    assert!(last(momentum) < last(sgd) && last(adam) < last(sgd));
    for run in &report.runs {
        let total: usize = run.confusion.iter().flatten().sum();
        let right: usize = (0..10).map(|i| run.confusion[i][i]).sum();
        assert_eq!(total, report.test_size);
        assert!((right as f64 / total as f64 - run.test_accuracy).abs() < 1e-12);
    }
    Ok(())
}

/// normal(0, 0.01) collapses the activations to zero, normal(0, 1) saturates tanh,
/// Xavier keeps tanh spread out; with ReLU, Xavier shrinks the spread layer by layer
/// and He keeps it.
#[test]
fn init_statistics_collapse_saturation_and_spread() -> Result<()> {
    use init_statistics::Activation::{Relu, Tanh};
    use nnc::runtime::init::Init;
    let outcomes = init_statistics::run(100, 0, 0)?;
    let find = |activation, init| {
        outcomes
            .iter()
            .find(|o| o.setting.activation == activation && o.setting.init == init)
            .map(|o| &o.layers)
            .expect("setting was run")
    };
    let tiny = find(
        Tanh,
        Init::Normal {
            mean: 0.0,
            std: 0.01,
        },
    );
    assert!(tiny[9].std < 1e-5, "layer 10 std {}", tiny[9].std);
    assert!(tiny[9].near_zero > 0.99);
    assert!(
        tiny.windows(2).all(|w| w[1].std < 0.5 * w[0].std),
        "shrinks every layer"
    );

    let unit = find(
        Tanh,
        Init::Normal {
            mean: 0.0,
            std: 1.0,
        },
    );
    for (i, layer) in unit.iter().enumerate() {
        assert!(
            layer.saturated > 0.9,
            "layer {}: {} saturated",
            i + 1,
            layer.saturated
        );
    }

    let xavier = find(Tanh, Init::Xavier);
    for (i, layer) in xavier.iter().enumerate() {
        assert!(
            (0.15..0.7).contains(&layer.std),
            "layer {}: std {}",
            i + 1,
            layer.std
        );
        assert!(
            layer.near_zero < 0.02,
            "layer {}: {} near zero",
            i + 1,
            layer.near_zero
        );
    }
    assert!(xavier[9].saturated < 0.01);

    let relu_xavier = find(Relu, Init::Xavier);
    assert!(relu_xavier[9].std < relu_xavier[0].std / 10.0);
    let he = find(Relu, Init::He);
    let ratio = he[9].std / he[0].std;
    assert!(
        (0.5..2.0).contains(&ratio),
        "He: std ratio layer 10 / layer 1 = {ratio}"
    );
    Ok(())
}

/// Central differences agree with the derived gradients; one-sided ones far less; a
/// too-small step ruins both.
#[test]
fn gradient_check_central_one_sided_and_tiny_steps() -> Result<()> {
    let report = gradient_check::run(20, 0)?;
    assert_eq!(
        report.per_param.iter().map(|p| p.name).collect::<Vec<_>>(),
        ["w1", "b1", "w2", "b2"]
    );
    for p in &report.per_param {
        assert!(p.central < 1e-6, "{}: central {}", p.name, p.central);
        assert!(p.one_sided > 1e-6, "{}: one-sided {}", p.name, p.one_sided);
    }
    let at = |h: f64| {
        report
            .steps
            .iter()
            .find(|r| (r.h / h - 1.0).abs() < 1e-9)
            .expect("h in the table")
    };
    let usual = at(1e-5);
    assert!(usual.one_sided > 30.0 * usual.central, "{usual:?}");
    let best_central = report
        .steps
        .iter()
        .map(|r| r.central)
        .fold(f64::INFINITY, f64::min);
    let best_one_sided = report
        .steps
        .iter()
        .map(|r| r.one_sided)
        .fold(f64::INFINITY, f64::min);
    assert!(best_central < 1e-7 && best_one_sided > 30.0 * best_central);
    for h in [1e-11, 1e-12] {
        let row = at(h);
        assert!(
            row.central > 1e-2 && row.one_sided > 1e-2,
            "round-off at h = {h}: {row:?}"
        );
    }
    assert!(at(1e-1).central > 1e-3, "truncation at h = 0.1");
    Ok(())
}

/// Numerical and derived gradients take the same steps, the derived ones much
/// faster; both beat random search.
#[test]
fn search_vs_gradient_ranking() -> Result<()> {
    let config = search_vs_gradient::Config {
        random_tries: 300,
        numerical_steps: 2,
        analytic_steps: 100,
        ..Default::default()
    };
    let report = search_vs_gradient::run(&config)?;
    assert_eq!(report.parameters, 650);
    let [random, numerical, derived] = report.methods.as_slice() else {
        panic!("three methods")
    };
    assert_eq!(numerical.evaluations, 2 * 2 * 650);
    assert_eq!(derived.evaluations, 100);
    for (n, d) in numerical.step_losses.iter().zip(&derived.step_losses) {
        assert!(
            ((n - d) / d).abs() < 1e-6,
            "numerical GD {n} vs derived GD {d}"
        );
    }
    let per_step = |m: &search_vs_gradient::Method| m.seconds / m.step_losses.len() as f64;
    assert!(
        per_step(numerical) > 10.0 * per_step(derived),
        "a numerical step is the slower"
    );
    assert!(derived.final_loss() < 0.5 * random.final_loss());
    assert!(
        derived.test_accuracy > 0.9,
        "derived GD: {}",
        derived.test_accuracy
    );
    assert!(
        random.test_accuracy < derived.test_accuracy - 0.3,
        "random search: {}",
        random.test_accuracy
    );
    Ok(())
}

/// Values and derivatives from the generated model match the closed forms.
#[test]
fn activations_match_closed_forms() -> Result<()> {
    let report = activations::run(-4.0, 4.0, 161)?;
    type Pair = fn(f64) -> (f64, f64);
    let expected: [(&str, Pair); 8] = [
        ("sigmoid", |x| {
            let s = 1.0 / (1.0 + (-x).exp());
            (s, s * (1.0 - s))
        }),
        ("tanh", |x| (x.tanh(), 1.0 - x.tanh().powi(2))),
        ("relu", |x| if x > 0.0 { (x, 1.0) } else { (0.0, 0.0) }),
        ("leaky_relu", |x| {
            if x > 0.0 { (x, 1.0) } else { (0.1 * x, 0.1) }
        }),
        ("elu", |x| {
            if x > 0.0 {
                (x, 1.0)
            } else {
                (x.exp() - 1.0, x.exp())
            }
        }),
        ("softplus", |x| {
            ((1.0 + x.exp()).ln(), 1.0 / (1.0 + (-x).exp()))
        }),
        (
            "prelu",
            |x| if x > 0.0 { (x, 1.0) } else { (0.25 * x, 0.25) },
        ),
        ("maxout", |x| {
            if 0.5 * x + 1.0 >= -x - 0.5 {
                (0.5 * x + 1.0, 0.5)
            } else {
                (-x - 0.5, -1.0)
            }
        }),
    ];
    let names: Vec<&str> = report.curves.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, expected.iter().map(|(n, _)| *n).collect::<Vec<_>>());
    for (curve, (name, f)) in report.curves.iter().zip(&expected) {
        for (i, &x) in report.grid.iter().enumerate() {
            let (value, derivative) = f(x);
            assert!(
                (curve.values[i] - value).abs() < 1e-12,
                "{name}({x}) = {}, expected {value}",
                curve.values[i]
            );
            assert!(
                (curve.derivatives[i] - derivative).abs() < 1e-12,
                "{name}'({x}) = {}, expected {derivative}",
                curve.derivatives[i]
            );
        }
    }
    // And the derivative of the smooth ones is the slope of the values.
    let h = report.grid[1] - report.grid[0];
    for curve in report
        .curves
        .iter()
        .filter(|c| ["sigmoid", "tanh", "softplus"].contains(&c.name.as_str()))
    {
        for i in 1..report.grid.len() - 1 {
            let slope = (curve.values[i + 1] - curve.values[i - 1]) / (2.0 * h);
            assert!(
                (slope - curve.derivatives[i]).abs() < 1e-3,
                "{} at {}",
                curve.name,
                report.grid[i]
            );
        }
    }
    Ok(())
}

/// The pictures' tick labels are readable: three significant digits, no `-0` (the
/// decision boundary's axes showed `-0.0`, plotters' sum of steps `-2.2e-16`), and a
/// log axis over less than a decade (the spiral's loss, 1.09 down to 0.245, had the
/// single label `1`) labels several values, starting at or below the smallest.
#[test]
fn plot_tick_labels_are_readable() {
    let labels = |ticks: &[f64]| ticks.iter().map(|&t| common::tick(t)).collect::<Vec<_>>();
    let cases = [
        (0.0, "0"),
        (-0.0, "0"),
        (-0.4, "-0.4"),
        (1.0, "1"),
        (0.25, "0.25"),
        (0.245123, "0.245"),
        (0.30000000000000004, "0.3"),
        (0.001, "0.001"),
        (2500.0, "2500"),
        (10000.0, "10000"),
        (1e-5, "1e-5"),
        (2.5e6, "2.5e6"),
    ];
    for (v, label) in cases {
        assert_eq!(common::tick(v), label, "{v:e}");
    }
    assert_eq!(common::tick_labels(false, 2.2)(&-2.2e-16), "0");
    assert_eq!(common::tick_labels(true, 1.0)(&1e-12), "1e-12");

    let spiral = common::log_ticks(0.245, 1.09);
    assert_eq!(
        labels(&spiral),
        ["0.2", "0.3", "0.4", "0.5", "0.6", "0.7", "0.8", "0.9", "1"]
    );
    let digits = common::log_ticks(0.021, 3.1);
    assert_eq!(
        labels(&digits),
        ["0.02", "0.05", "0.1", "0.2", "0.5", "1", "2"]
    );
    let two_layer = common::log_ticks(2.8, 40_000.0);
    assert_eq!(labels(&two_layer), ["1", "10", "100", "1000", "10000"]);
    // Within a factor of two: round linear steps.
    let narrow = common::log_ticks(0.31, 0.38);
    assert!(narrow.len() >= 4 && narrow[0] <= 0.31, "{narrow:?}");
    // Thirty decades: at most ten labels.
    let wide = common::log_ticks(1e-30, 1.0);
    assert!((4..=10).contains(&wide.len()), "{wide:?}");
    assert!(wide[0] <= 1e-30, "{wide:?}");
}
