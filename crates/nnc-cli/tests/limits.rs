//! What `nnc` does with hostile or mistaken input: huge shapes and batches, empty
//! files, endless files, lying npz files, non-finite values, bad option values; and
//! how it writes files (the umask's mode, several files all or nothing). Every case is
//! an error message and an exit code, never a crash.

mod common;

use common::{Arg, code, model, nnc, repo, scratch, stderr, stdout};
use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// Writes `source` to `<dir>/<name>` and returns the path.
fn write(dir: &Path, name: &str, source: &str) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, source).expect("a scratch file");
    path
}

const HUGE: &str = "model big { dtype f64; dim A = 1099511627776; param w: [A]; loss sum(w); }";

#[test]
fn run_and_gradcheck_refuse_huge_declared_shapes() {
    let dir = scratch("limits", "huge");
    let file = write(&dir, "big.nn", HUGE);
    for args in [
        vec![&"run" as Arg, &file, &"--seed", &"0"],
        vec![&"gradcheck" as Arg, &file],
    ] {
        let out = nnc(args);
        let err = stderr(&out);
        assert_eq!(code(&out), 1, "{err}");
        assert!(
            err.contains("model `big` needs ")
                && err.contains("the largest value is `w` [1099511627776] (8796093022208 bytes)"),
            "{err}"
        );
    }
}

#[test]
fn a_huge_batch_is_an_error_naming_the_dim() {
    let out = nnc([
        "gradcheck",
        &model("spiral.nn"),
        "--batch",
        "18446744073709551615",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("N = 18446744073709551615"), "{err}");
    assert!(err.contains("more than the limit of"), "{err}");
}

#[test]
fn zero_batch_and_samples_are_rejected() {
    for flag in ["--batch", "--samples"] {
        let out = nnc(["gradcheck", &model("spiral.nn"), flag, "0"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{flag}: {err}");
        assert!(err.contains(flag), "{err}");
        assert!(err.contains("must be at least 1"), "{err}");
    }
}

#[test]
fn gradcheck_of_a_file_without_models_fails() {
    let dir = scratch("limits", "no_model");
    let file = write(&dir, "fns.nn", "fn double(x) = 2 * x;\n");
    let out = nnc([&"gradcheck" as Arg, &file]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(err.contains("holds no model"), "{err}");
}

#[test]
fn source_files_are_read_up_to_a_limit() {
    // An endless file: reading stops at the limit (16 MiB).
    for sub in ["compile", "run", "grad", "gradcheck"] {
        let out = nnc([sub, "/dev/zero"]);
        let err = stderr(&out);
        assert_eq!(code(&out), 2, "{sub}: {err}");
        assert!(
            err.contains(
                "cannot read /dev/zero: it is larger than the limit of 16 MiB for a source file"
            ),
            "{sub}: {err}"
        );
    }
}

/// Runs `nnc` under `sh` with a umask.
fn nnc_with_umask(umask: &str, args: &[&str]) -> Output {
    let mut script = format!("umask {umask}; exec \"$0\"");
    for (k, _) in args.iter().enumerate() {
        script.push_str(&format!(" \"${}\"", k + 1));
    }
    Command::new("sh")
        .arg("-c")
        .arg(script)
        .arg(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("sh runs")
}

#[cfg(unix)]
#[test]
fn written_files_honour_the_umask() {
    use std::os::unix::fs::PermissionsExt;
    let dir = scratch("limits", "umask");
    let mode = |p: &Path| std::fs::metadata(p).expect("written").permissions().mode() & 0o777;
    let gates = model("gates.nn");
    for (umask, expected) in [("022", 0o644), ("077", 0o600), ("002", 0o664)] {
        let rs = dir.join(format!("gates-{umask}.rs"));
        let npz = dir.join(format!("out-{umask}.npz"));
        let params = dir.join(format!("params-{umask}.npz"));
        let out = nnc_with_umask(
            umask,
            &["compile", &gates, "-o", rs.to_str().expect("utf-8")],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        let out = nnc_with_umask(
            umask,
            &[
                "run",
                &gates,
                "--model",
                "add_mul",
                "--out",
                npz.to_str().expect("utf-8"),
                "--save-params",
                params.to_str().expect("utf-8"),
            ],
        );
        assert_eq!(code(&out), 0, "{}", stderr(&out));
        for path in [&rs, &npz, &params] {
            assert_eq!(mode(path), expected, "umask {umask}: {}", path.display());
        }
    }
}

#[test]
fn out_and_save_params_are_written_all_or_nothing() {
    let dir = scratch("limits", "all_or_nothing");
    let out = dir.join("out.npz");
    let nowhere = dir.join("no/such/dir/params.npz");
    let gates = model("gates.nn");
    let run = |out: &Path| {
        nnc([
            &"run" as Arg,
            &gates,
            &"--model",
            &"add_mul",
            &"--out",
            &out,
            &"--save-params",
            &nowhere,
        ])
    };
    let failed = run(&out);
    assert_eq!(code(&failed), 1, "{}", stderr(&failed));
    assert!(
        stderr(&failed).contains("params.npz"),
        "{}",
        stderr(&failed)
    );
    assert!(
        !out.exists(),
        "--out is not written when --save-params fails"
    );
    // An existing --out keeps its contents.
    std::fs::write(&out, "previous").expect("writable");
    let failed = run(&out);
    assert_eq!(code(&failed), 1);
    assert_eq!(std::fs::read_to_string(&out).expect("kept"), "previous");
    assert_eq!(
        std::fs::read_dir(&dir).expect("dir").count(),
        1,
        "no temporary files"
    );
}

/// An `.npy` member whose header claims 2^40 float64s, with 80 bytes of data.
fn lying_npz(path: &Path) {
    let dict = "{'descr': '<f8', 'fortran_order': False, 'shape': (1099511627776,), }";
    let mut header = dict.as_bytes().to_vec();
    header.extend(std::iter::repeat_n(
        b' ',
        (64 - (10 + header.len() + 1) % 64) % 64,
    ));
    header.push(b'\n');
    let mut npy = b"\x93NUMPY\x01\x00".to_vec();
    npy.extend((header.len() as u16).to_le_bytes());
    npy.extend(header);
    npy.extend([0u8; 80]);
    let mut zip = zip_writer(path);
    zip.write_all(&npy).expect("member written");
    zip.finish().expect("archive finished");
}

/// A zip archive at `path` with one stored member `x.npy`, ready for its bytes.
fn zip_writer(path: &Path) -> zip::ZipWriter<std::fs::File> {
    let mut zip = zip::ZipWriter::new(std::fs::File::create(path).expect("file"));
    let options =
        zip::write::SimpleFileOptions::default().compression_method(zip::CompressionMethod::Stored);
    zip.start_file("x.npy", options).expect("member started");
    zip
}

#[test]
fn an_npz_with_a_lying_header_is_an_error_not_an_abort() {
    let dir = scratch("limits", "lying_npz");
    let inputs = dir.join("in.npz");
    lying_npz(&inputs);
    let file = write(
        &dir,
        "m.nn",
        "model m { dtype f64; dim N; input x: [N]; loss sum(x); }",
    );
    let out = nnc([&"run" as Arg, &file, &"--inputs", &inputs]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.contains(
            "array `x` could not be read: its header declares shape [1099511627776] of dtype \
             '<f8', 8796093022208 bytes, but the file holds 80 bytes of data"
        ),
        "{err}"
    );
}

#[test]
fn check_finite_names_the_first_non_finite_value_and_its_line() {
    let dir = scratch("limits", "finite");
    let file = write(
        &dir,
        "m.nn",
        "model m {\n    dtype f64;\n    dim N;\n    input x: [N];\n    let s = sum(x);\n    let p = log(s - 3);\n    loss p * 2;\n}\n",
    );
    let inputs = dir.join("in.npz");
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&inputs).expect("file"));
    npz.add_array("x", &ndarray::arr1(&[1.0f64, 2.0]))
        .expect("x");
    npz.finish().expect("npz");
    // Without the check, the loss is -inf and the run succeeds.
    let out = nnc([&"run" as Arg, &file, &"--inputs", &inputs]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), "loss = -inf\n");
    let out = nnc([
        &"run" as Arg,
        &file,
        &"--inputs",
        &inputs,
        &"--check-finite",
    ]);
    let err = stderr(&out);
    assert_eq!(code(&out), 1, "{err}");
    assert!(
        err.starts_with("error: the first value that is not finite is `p` (")
            && err.contains("m.nn:6:13): -inf at []"),
        "{err}"
    );
    assert!(err.contains("   6 |     let p = log(s - 3);"), "{err}");
    // Finite values pass the check.
    let mut npz = ndarray_npy::NpzWriter::new(std::fs::File::create(&inputs).expect("file"));
    npz.add_array("x", &ndarray::arr1(&[2.0f64, 2.0]))
        .expect("x");
    npz.finish().expect("npz");
    let out = nnc([
        &"run" as Arg,
        &file,
        &"--inputs",
        &inputs,
        &"--check-finite",
    ]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}
