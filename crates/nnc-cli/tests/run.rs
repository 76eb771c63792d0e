//! `nnc run`, end to end: `.npz` inputs written here, the binary run as a user runs
//! it, the result file read back and checked against hand computation and the
//! interpreter; and every kind of bad array is an error naming it (exit 1), with no
//! output file left behind.

mod common;

use common::{Arg, code, model, nnc, scratch, stderr, stdout};
use ndarray::{ArrayD, Ix2, IxDyn, OwnedRepr};
use ndarray_npy::{NpzReader, NpzWriter, ReadableElement};
use nnc_ir::interp::{Bindings, Value, evaluate};
use std::fs::File;
use std::path::Path;

/// An array of any storable element type, for writing test inputs.
#[derive(Clone)]
enum Arr {
    F64(ArrayD<f64>),
    F32(ArrayD<f32>),
    I64(ArrayD<i64>),
    I32(ArrayD<i32>),
    U8(ArrayD<u8>),
}

fn write_npz(path: &Path, arrays: &[(&str, &Arr)]) {
    let mut npz = NpzWriter::new(File::create(path).expect("a writable file"));
    for (name, a) in arrays {
        match a {
            Arr::F64(a) => npz.add_array(*name, a),
            Arr::F32(a) => npz.add_array(*name, a),
            Arr::I64(a) => npz.add_array(*name, a),
            Arr::I32(a) => npz.add_array(*name, a),
            Arr::U8(a) => npz.add_array(*name, a),
        }
        .expect("an array written");
    }
    npz.finish().expect("an npz file");
}

fn read<T: ReadableElement>(path: &Path, name: &str) -> ArrayD<T> {
    let mut npz =
        NpzReader::new(File::open(path).expect("the out file exists")).expect("an npz file");
    npz.by_name::<OwnedRepr<T>, IxDyn>(name)
        .unwrap_or_else(|e| panic!("array `{name}`: {e}"))
}

fn names(path: &Path) -> Vec<String> {
    let mut npz =
        NpzReader::new(File::open(path).expect("the out file exists")).expect("an npz file");
    let mut names = npz.names().expect("names");
    names.sort();
    names
}

/// A seeded standard normal array (SplitMix64 + Box–Muller).
fn normal(shape: &[usize], seed: u64) -> ArrayD<f64> {
    let mut state = seed;
    let mut uniform = move || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        ((z ^ (z >> 31)) >> 11) as f64 / (1u64 << 53) as f64
    };
    ArrayD::from_shape_simple_fn(IxDyn(shape), || {
        let (u1, u2) = (1.0 - uniform(), uniform());
        (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
    })
}

fn labels(n: usize, classes: usize) -> Vec<usize> {
    (0..n).map(|i| (i * 7 + 3) % classes).collect()
}

// ---- results --------------------------------------------------------------------

/// The lecture's gate circuit: no inputs, constant params, loss -12 and q = 3.
#[test]
fn add_mul_prints_and_writes_the_loss_and_outputs() {
    let dir = scratch("run", "add_mul");
    let out = dir.join("out.npz");
    let gates = model("gates.nn");
    let add_mul = |flags: &[&str]| {
        let mut args: Vec<Arg> = vec![&"run", &gates, &"--model", &"add_mul", &"--out", &out];
        args.extend(flags.iter().map(|f| f as Arg));
        nnc(args)
    };
    let run = add_mul(&[]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    assert_eq!(stdout(&run), "loss = -12\n");
    assert_eq!(
        names(&out),
        ["grad.x", "grad.y", "grad.z", "loss", "output.q"]
    );
    for (name, want) in [("grad.x", -4.0), ("grad.y", -4.0), ("grad.z", 3.0)] {
        assert_eq!(
            read::<f64>(&out, name),
            ArrayD::from_elem(IxDyn(&[]), want),
            "{name}"
        );
    }
    assert_eq!(
        read::<f64>(&out, "loss"),
        ArrayD::from_elem(IxDyn(&[]), -12.0)
    );
    assert_eq!(
        read::<f64>(&out, "output.q"),
        ArrayD::from_elem(IxDyn(&[]), 3.0)
    );

    // --f32 computes (and writes) in f32 whatever the model's dtype.
    let run = add_mul(&["--f32"]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    assert_eq!(
        read::<f32>(&out, "loss"),
        ArrayD::from_elem(IxDyn(&[]), -12.0f32)
    );
}

/// `two_layer` on inputs and params from files equals the lecture's numpy code.
#[test]
fn two_layer_loss_matches_hand_computation() {
    let dir = scratch("run", "two_layer");
    let (x, y) = (normal(&[4, 1000], 1), normal(&[4, 10], 2));
    let (w1, w2) = (normal(&[1000, 100], 3), normal(&[100, 10], 4));
    let (inputs, params, out) = (dir.join("in.npz"), dir.join("p.npz"), dir.join("out.npz"));
    write_npz(
        &inputs,
        &[("x", &Arr::F64(x.clone())), ("y", &Arr::F64(y.clone()))],
    );
    // Params stored as f32 are accepted and widened.
    let w2_32 = w2.mapv(|v| v as f32);
    write_npz(
        &params,
        &[
            ("w1", &Arr::F64(w1.clone())),
            ("w2", &Arr::F32(w2_32.clone())),
        ],
    );
    let run = nnc([
        &"run" as Arg,
        &model("two_layer.nn"),
        &"--inputs",
        &inputs,
        &"--params",
        &params,
        &"--out",
        &out,
    ]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));

    let as2 = |a: &ArrayD<f64>| a.clone().into_dimensionality::<Ix2>().expect("a matrix");
    let w2_used = w2_32.mapv(f64::from);
    let h = as2(&x).dot(&as2(&w1)).mapv(|z| 1.0 / (1.0 + (-z).exp()));
    let y_pred = h.dot(&as2(&w2_used));
    let expected: f64 = (&y_pred - &as2(&y)).mapv(|d| d * d).sum();

    let loss = read::<f64>(&out, "loss")
        .into_iter()
        .next()
        .expect("a scalar loss");
    assert!(
        (loss - expected).abs() <= 1e-12 * expected.abs(),
        "{loss} vs {expected}"
    );
    let printed: f64 = stdout(&run)
        .trim()
        .trim_start_matches("loss = ")
        .parse()
        .expect("the loss is printed");
    assert_eq!(printed, loss);
    let got = read::<f64>(&out, "output.y_pred");
    assert_eq!(got.shape(), &[4, 10]);
    for (g, e) in got.iter().zip(y_pred.iter()) {
        assert!((g - e).abs() <= 1e-12 * (1.0 + e.abs()));
    }
}

/// `spiral` with seeded params and integer labels of another dtype: the loss is the
/// interpreter's on the saved params, the same seed gives the same params, and the
/// index output is written as int64.
#[test]
fn spiral_with_seeded_params_round_trips() {
    let dir = scratch("run", "spiral");
    let n = 9;
    let x = normal(&[n, 2], 5);
    let lab: Vec<usize> = labels(n, 3);
    let lab_i32 =
        ArrayD::from_shape_vec(IxDyn(&[n]), lab.iter().map(|&l| l as i32).collect()).expect("fits");
    let inputs = dir.join("in.npz");
    write_npz(
        &inputs,
        &[("x", &Arr::F64(x.clone())), ("labels", &Arr::I32(lab_i32))],
    );
    let (p1, p2, out) = (dir.join("p1.npz"), dir.join("p2.npz"), dir.join("out.npz"));
    let file = model("spiral.nn");
    // Runs with parameters initialised from `seed`, saving them to `save`.
    let seeded = |seed: &str, save: &Path, more: &[Arg]| {
        let mut args: Vec<Arg> = vec![&"run", &file, &"--inputs", &inputs];
        args.extend([&"--seed" as Arg, &seed, &"--save-params", &save]);
        args.extend_from_slice(more);
        nnc(args)
    };
    let run = seeded("3", &p1, &[&"--out", &out]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    assert_eq!(
        names(&out),
        [
            "grad.b1",
            "grad.b2",
            "grad.w1",
            "grad.w2",
            "loss",
            "output.predicted",
            "output.scores"
        ]
    );
    assert_eq!(names(&p1), ["b1", "b2", "w1", "w2"]);

    // The interpreter, in process, on the saved params.
    let source = std::fs::read_to_string(&file).expect("the spec file");
    let model = &nnc_ir::compile_source(&source).expect("valid")[0];
    let params: Vec<ArrayD<f64>> = ["w1", "b1", "w2", "b2"]
        .iter()
        .map(|p| read::<f64>(&p1, p))
        .collect();
    let w1 = &params[0];
    assert_eq!(w1.shape(), &[2, 100]);
    let std = (w1.iter().map(|v| v * v).sum::<f64>() / 200.0).sqrt();
    assert!(std > 0.005 && std < 0.02, "normal(0, 0.01) gives std {std}");
    assert!(params[1].iter().all(|&b| b == 0.0), "zeros");
    let bindings = Bindings {
        inputs: vec![
            Value::Float(x),
            Value::Index(ArrayD::from_shape_vec(IxDyn(&[n]), lab).expect("fits")),
        ],
        params,
    };
    let eval = evaluate(model, &bindings).expect("evaluates");
    let loss = read::<f64>(&out, "loss")
        .into_iter()
        .next()
        .expect("a scalar");
    assert_eq!(loss, eval.loss());
    assert!(
        (loss - 3f64.ln()).abs() < 0.01,
        "tiny weights give a loss near ln 3: {loss}"
    );
    let predicted = read::<i64>(&out, "output.predicted");
    let expected = eval
        .output("predicted")
        .and_then(Value::as_index)
        .expect("an index output");
    assert_eq!(predicted, expected.mapv(|v| v as i64));

    // Same seed, same params; loading them back gives the same loss.
    let again = seeded("3", &p2, &[]);
    assert_eq!(code(&again), 0, "{}", stderr(&again));
    assert_eq!(read::<f64>(&p1, "w2"), read::<f64>(&p2, "w2"));
    let other = seeded("4", &p2, &[]);
    assert_eq!(code(&other), 0, "{}", stderr(&other));
    assert_ne!(read::<f64>(&p1, "w2"), read::<f64>(&p2, "w2"));
    let loaded = nnc([&"run" as Arg, &file, &"--inputs", &inputs, &"--params", &p1]);
    assert_eq!(code(&loaded), 0, "{}", stderr(&loaded));
    assert_eq!(stdout(&loaded), stdout(&run));
}

/// One note on stderr says where the parameters came from: the default seed 0 (and
/// how to choose), the seed given, or the file read; stdout is the loss alone. A
/// model without parameters gets no note.
#[test]
fn a_note_on_stderr_says_where_the_parameters_came_from() {
    let dir = scratch("run", "params_note");
    let gates = model("gates.nn");
    let saved = dir.join("p.npz");
    let add_mul = |flags: &[Arg]| {
        let mut args: Vec<Arg> = vec![&"run", &gates, &"--model", &"add_mul"];
        args.extend_from_slice(flags);
        let run = nnc(args);
        assert_eq!(code(&run), 0, "{}", stderr(&run));
        assert_eq!(stdout(&run), "loss = -12\n");
        stderr(&run)
    };
    assert_eq!(
        add_mul(&[]),
        "note: parameters drawn from their initialisers with seed 0 (pass --seed S or --params FILE)\n"
    );
    assert_eq!(
        add_mul(&[&"--seed", &"7", &"--save-params", &saved]),
        "note: parameters drawn from their initialisers with seed 7\n"
    );
    assert_eq!(
        add_mul(&[&"--params", &saved]),
        format!("note: parameters read from {}\n", saved.display())
    );

    let file = dir.join("no_params.nn");
    std::fs::write(
        &file,
        "model m {\n    dim N;\n    input x: [N];\n    loss sum(x);\n}\n",
    )
    .expect("written");
    let inputs = dir.join("in.npz");
    write_npz(&inputs, &[("x", &Arr::F64(normal(&[3], 6)))]);
    let run = nnc([&"run" as Arg, &file, &"--inputs", &inputs]);
    assert_eq!(code(&run), 0, "{}", stderr(&run));
    assert_eq!(stderr(&run), "");
}

// ---- errors -----------------------------------------------------------------------

/// Runs `spiral` on inputs `arrays` (or `extra` arguments) and returns stderr, after
/// checking the run failed with exit 1 and wrote no output file.
fn spiral_error(test: &str, arrays: &[(&str, &Arr)], extra: &[&str]) -> String {
    let dir = scratch("run", test);
    let (inputs, out) = (dir.join("in.npz"), dir.join("out.npz"));
    write_npz(&inputs, arrays);
    let mut args: Vec<Arg> = vec![&"run"];
    let file = model("spiral.nn");
    args.extend([&file as Arg, &"--inputs", &inputs, &"--out", &out]);
    for e in extra {
        args.push(e);
    }
    let run = nnc(&args);
    assert_eq!(
        code(&run),
        1,
        "{test}: expected exit 1; stderr: {}",
        stderr(&run)
    );
    assert!(stdout(&run).is_empty(), "{test}: nothing on stdout");
    assert!(!out.exists(), "{test}: no output file on error");
    let leftovers: Vec<_> = std::fs::read_dir(&dir)
        .expect("the dir")
        .map(|e| e.expect("entry").file_name())
        .collect();
    assert_eq!(
        leftovers.len(),
        1,
        "{test}: only the input file remains: {leftovers:?}"
    );
    stderr(&run)
}

#[test]
fn bad_arrays_are_errors_naming_them() {
    let x = Arr::F64(normal(&[4, 2], 9));
    let lab =
        |v: &[i64]| Arr::I64(ArrayD::from_shape_vec(IxDyn(&[v.len()]), v.to_vec()).expect("fits"));
    let good = lab(&[0, 1, 2, 0]);
    type Case = (&'static str, Vec<(&'static str, Arr)>, &'static str);
    let cases: Vec<Case> = vec![
        (
            "missing",
            vec![("x", x.clone())],
            "in.npz: missing input `labels`; the file holds array `x`",
        ),
        (
            "extra",
            vec![("x", x.clone()), ("labels", good.clone()), ("z", x.clone())],
            "in.npz: unexpected array `z`; expected only inputs `x`, `labels`",
        ),
        (
            "shape",
            vec![
                ("x", Arr::F64(normal(&[4, 3], 1))),
                ("labels", good.clone()),
            ],
            "input `x` is declared [N, 2], but has shape [4, 3]: axis 1 must be 2, got 3",
        ),
        (
            "batch",
            vec![("x", x.clone()), ("labels", lab(&[0, 1, 2]))],
            "inputs disagree on dim `N`: `x` gives N = 4 (axis 0), but `labels` gives N = 3 (axis 0)",
        ),
        (
            "float_labels",
            vec![
                ("x", x.clone()),
                ("labels", Arr::F64(ArrayD::zeros(IxDyn(&[4])))),
            ],
            "in.npz: array `labels` has dtype '<f8' (float64), expected an integer array \
             (any of i8 … u64); input `labels` is declared index[N]",
        ),
        (
            "int_x",
            vec![
                ("x", Arr::I64(ArrayD::zeros(IxDyn(&[4, 2])))),
                ("labels", good.clone()),
            ],
            "in.npz: array `x` has dtype '<i8' (int64), expected a float array (f32 or f64); \
             input `x` is declared [N, 2]",
        ),
        (
            "negative",
            vec![("x", x.clone()), ("labels", lab(&[0, -1, 2, 0]))],
            "in.npz: array `labels` holds -1 at [1], which is not a valid index (must be \
             non-negative); input `labels` is declared index[N]",
        ),
        (
            "out_of_range",
            vec![
                ("x", x.clone()),
                ("labels", Arr::U8(ArrayD::from_elem(IxDyn(&[4]), 3))),
            ],
            "class index 3 at [0] of `labels` is out of range for `pick` over 3 classes (valid: 0 to 2)",
        ),
    ];
    for (test, arrays, expected) in cases {
        let arrays: Vec<(&str, &Arr)> = arrays.iter().map(|(n, a)| (*n, a)).collect();
        let err = spiral_error(test, &arrays, &[]);
        assert!(
            err.starts_with("error: ") && err.contains(expected),
            "{test}: got\n{err}\nexpected\n{expected}"
        );
    }
    // Parameter files: a wrongly-shaped, a wrongly-typed and a missing parameter.
    let dir = scratch("run", "params");
    let params = dir.join("p.npz");
    let params_arg = params.to_string_lossy().into_owned();
    let w = |s: &[usize]| Arr::F64(ArrayD::zeros(IxDyn(s)));
    let (w1, b1, w2, b2) = (w(&[2, 100]), w(&[100]), w(&[100, 3]), w(&[3]));
    let (w2_t, b2_int) = (w(&[3, 100]), Arr::I32(ArrayD::zeros(IxDyn(&[3]))));
    let param_cases: Vec<Case> = vec![
        (
            "param_shape",
            vec![
                ("w1", w1.clone()),
                ("b1", b1.clone()),
                ("w2", w2_t),
                ("b2", b2.clone()),
            ],
            "parameter `w2` must have shape [100, 3], got [3, 100]",
        ),
        (
            "param_dtype",
            vec![
                ("w1", w1.clone()),
                ("b1", b1.clone()),
                ("w2", w2.clone()),
                ("b2", b2_int),
            ],
            "p.npz: array `b2` has dtype '<i4' (int32), expected a float array (f32 or f64); \
             parameter `b2` is declared [3]",
        ),
        (
            "param_missing",
            vec![("w1", w1), ("b1", b1), ("w2", w2)],
            "p.npz: missing parameter `b2`; the file holds arrays `w1`, `b1`, `w2`",
        ),
    ];
    for (test, arrays, expected) in param_cases {
        let arrays: Vec<(&str, &Arr)> = arrays.iter().map(|(n, a)| (*n, a)).collect();
        write_npz(&params, &arrays);
        let err = spiral_error(
            test,
            &[("x", &x), ("labels", &good)],
            &["--params", &params_arg],
        );
        assert!(
            err.contains(expected),
            "{test}: got\n{err}\nexpected\n{expected}"
        );
    }
}

#[test]
fn model_selection_and_missing_inputs() {
    let gates = model("gates.nn");
    let several = nnc(["run", &gates]);
    assert_eq!(code(&several), 1);
    assert!(
        stderr(&several).contains("holds several models (`add_mul`, `neuron`, `neuron_gate`); choose one with --model NAME"),
        "{}",
        stderr(&several)
    );
    let unknown = nnc(["run", &gates, "--model", "nope"]);
    assert_eq!(code(&unknown), 1);
    assert!(
        stderr(&unknown)
            .contains("has no model `nope`; its models: `add_mul`, `neuron`, `neuron_gate`")
    );
    let neuron = nnc(["run", &gates, "--model", "neuron"]);
    assert_eq!(code(&neuron), 0, "{}", stderr(&neuron));
    assert!(
        stdout(&neuron).starts_with("loss = 0.731058578630"),
        "{}",
        stdout(&neuron)
    );

    let no_inputs = nnc(["run", &model("spiral.nn")]);
    assert_eq!(code(&no_inputs), 1);
    assert!(
        stderr(&no_inputs).contains(
            "model `spiral` has inputs (`x`, `labels`); give them with --inputs FILE.npz"
        )
    );

    let missing_file = nnc([
        "run",
        &model("spiral.nn"),
        "--inputs",
        "/nonexistent/in.npz",
    ]);
    assert_eq!(code(&missing_file), 1);
    assert!(
        stderr(&missing_file).contains("/nonexistent/in.npz: cannot read: "),
        "{}",
        stderr(&missing_file)
    );

    let conflicting = nnc([
        "run", &gates, "--model", "add_mul", "--seed", "1", "--params", "p.npz",
    ]);
    assert_eq!(
        code(&conflicting),
        2,
        "--seed with --params draws nothing here"
    );
    assert!(
        stderr(&conflicting).contains("has no dropout"),
        "{}",
        stderr(&conflicting)
    );
}

/// A diagnostic in the source is rendered, exit 1.
#[test]
fn shape_errors_in_the_source_are_rendered() {
    let dir = scratch("run", "bad_source");
    let file = dir.join("bad.nn");
    std::fs::write(&file, "model m {\n    dim N;\n    input x: [N, 10];\n    param w: [5, 10];\n    loss sum(x @ w);\n}\n")
        .expect("written");
    let run = nnc([&"run" as Arg, &file]);
    assert_eq!(code(&run), 1);
    assert!(
        stderr(&run)
            .contains("shape mismatch in '@': [N, 10] @ [5, 10] — inner dims 10 and 5 differ"),
        "{}",
        stderr(&run)
    );
}

// ---- train and eval modes ---------------------------------------------------------

/// The issue's `deep` model at small sizes (dropout, batch norm, states).
const DEEP_SMALL: &str = "model deep {
    dtype f64;
    dim N, D = 6, C = 3, L = 2;
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
    output b;
    loss softmax_cross_entropy(b @ w_out, labels);
}
";

/// `nnc run` on `DEEP_SMALL`: the loss printed and the states saved, for `extra`.
fn run_deep(dir: &Path, extra: &[&str], tag: &str) -> (String, std::path::PathBuf) {
    let (source, inputs) = (dir.join("deep.nn"), dir.join("in.npz"));
    std::fs::write(&source, DEEP_SMALL).expect("written");
    let x = Arr::F64(normal(&[5, 6], 3));
    let l = Arr::I64(
        ArrayD::from_shape_vec(
            IxDyn(&[5]),
            labels(5, 3).iter().map(|&v| v as i64).collect(),
        )
        .expect("labels"),
    );
    write_npz(&inputs, &[("x", &x), ("labels", &l)]);
    let saved = dir.join(format!("params-{tag}.npz"));
    let mut args: Vec<String> = vec![
        "run".into(),
        source.display().to_string(),
        "--inputs".into(),
        inputs.display().to_string(),
        "--save-params".into(),
        saved.display().to_string(),
    ];
    args.extend(extra.iter().map(|a| a.to_string()));
    let out = nnc(args);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    (stdout(&out), saved)
}

#[test]
fn a_training_step_is_reproducible_from_its_seed_and_saves_the_updated_states() {
    let dir = scratch("run", "train_eval");
    let (first, saved) = run_deep(&dir, &["--seed", "4"], "a");
    let (again, _) = run_deep(&dir, &["--seed", "4"], "b");
    let (other, _) = run_deep(&dir, &["--seed", "5"], "c");
    assert_eq!(first, again, "the same seed draws the same mask");
    assert_ne!(
        first, other,
        "another seed draws another mask (and other params)"
    );
    // The states were saved with the parameters, updated from their initial values.
    assert_eq!(names(&saved), ["beta", "gamma", "mu", "var", "w", "w_out"]);
    let mu: ArrayD<f64> = read(&saved, "mu");
    let var: ArrayD<f64> = read(&saved, "var");
    assert!(mu.iter().any(|m| m.abs() > 1e-6), "{mu}");
    assert!(
        var.iter().all(|v| *v > 0.0) && var.iter().any(|v| (v - 1.0).abs() > 1e-6),
        "{var}"
    );
    // Eval mode from the saved parameters and states: deterministic, whatever the
    // seed, and it leaves the states as they were.
    let saved_arg = saved.display().to_string();
    let (eval, kept) = run_deep(
        &dir,
        &["--params", &saved_arg, "--eval", "--seed", "1"],
        "d",
    );
    let (eval2, _) = run_deep(
        &dir,
        &["--params", &saved_arg, "--eval", "--seed", "2"],
        "e",
    );
    assert_eq!(eval, eval2);
    assert_eq!(read::<f64>(&kept, "mu"), mu);
    assert_eq!(read::<f64>(&kept, "var"), var);
}

#[test]
fn gradcheck_holds_the_dropout_mask_fixed() {
    let dir = scratch("run", "gradcheck_modes");
    let source = dir.join("deep.nn");
    std::fs::write(&source, DEEP_SMALL).expect("written");
    let source = source.display().to_string();
    let out = nnc(["gradcheck", source.as_str(), "--batch", "16"]);
    assert_eq!(code(&out), 0, "{}{}", stdout(&out), stderr(&out));
    let report = stdout(&out);
    for name in ["d_w ", "d_w_out", "d_gamma", "d_beta"] {
        assert!(report.contains(name), "{report}");
    }
    assert!(
        !report.contains("d_mu") && !report.contains("d_mask"),
        "states and masks have no gradient: {report}"
    );
}
