//! `nnc check`, run as a user runs it: exit codes 0 (clean), 1 (diagnostics) and
//! 2 (usage errors), what goes to stdout and what to stderr, and `--quiet`.

mod common;

use common::{code, nnc, repo, scratch, stderr, stdout};
use std::path::{Path, PathBuf};

/// A scratch file that removes itself.
struct TempFile(PathBuf);

impl TempFile {
    fn new(name: &str, contents: &[u8]) -> TempFile {
        let path = std::env::temp_dir().join(format!("nnc-cli-test-{}-{name}", std::process::id()));
        std::fs::write(&path, contents).expect("a temp file");
        TempFile(path)
    }
}

impl Drop for TempFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

const SPEC_MODELS: [&str; 9] = [
    "activations.nn",
    "deep_tanh.nn",
    "gates.nn",
    "logistic.nn",
    "mlp784.nn",
    "spiral.nn",
    "svm.nn",
    "three_layer.nn",
    "two_layer.nn",
];

#[test]
fn clean_files_exit_0_and_are_listed() {
    let paths: Vec<String> = SPEC_MODELS
        .iter()
        .map(|m| format!("examples/models/{m}"))
        .collect();
    let out = nnc(std::iter::once("check".to_string()).chain(paths.iter().cloned()));
    assert_eq!(code(&out), 0, "stderr: {}", stderr(&out));
    let expected: String = paths.iter().map(|p| format!("{p}: ok\n")).collect();
    assert_eq!(stdout(&out), expected);
    assert_eq!(stderr(&out), "");
}

#[test]
fn quiet_prints_nothing_when_clean() {
    for flag in ["--quiet", "-q"] {
        let out = nnc([
            "check",
            flag,
            "examples/models/spiral.nn",
            "examples/models/svm.nn",
        ]);
        assert_eq!(code(&out), 0, "{flag}: {}", stderr(&out));
        assert_eq!(stdout(&out), "", "{flag}");
        assert_eq!(stderr(&out), "", "{flag}");
    }
}

#[test]
fn diagnostics_exit_1_on_stderr_with_location() {
    let file = "tests/diagnostics/sem_unknown_function_suggestion.nn";
    let out = nnc(["check", file]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "", "nothing on stdout for a file with errors");
    let err = stderr(&out);
    assert!(err.contains("Error: unknown function `sigmod`"), "{err}");
    assert!(
        err.contains(&format!("{file}:7:13")),
        "file:line:col in {err}"
    );
    assert!(err.contains("did you mean `sigmoid`?"), "{err}");
    // The source line, and under it a line underlining exactly `sigmod`.
    let lines: Vec<&str> = err.lines().collect();
    let at = lines
        .iter()
        .position(|l| l.contains("let y = sigmod(x @ w);"))
        .expect("the source line");
    let byte = lines[at].find("sigmod").expect("the name");
    let col = lines[at][..byte].chars().count();
    let underline: Vec<char> = lines[at + 1].chars().collect();
    let marked: String = underline[col..].iter().collect();
    assert_eq!(marked.trim_end(), "───┬──", "underline: {}", lines[at + 1]);
    assert!(
        underline[..col].iter().all(|c| *c == ' ' || *c == '│'),
        "{}",
        lines[at + 1]
    );
}

/// A parameter the loss does not depend on compiles (it is legal) but is most
/// likely a mistake: `check` and `compile` warn at its declaration and exit 0.
#[test]
fn a_parameter_the_loss_does_not_reach_is_a_warning() {
    let file = scratch("cli", "warning").join("unused.nn");
    let source = "model m {\n    dim N;\n    input x: [N, 3];\n    param w: [3, 3] = zeros;\n    param extra: [3] = zeros;\n    loss sum(x @ w);\n}\n";
    std::fs::write(&file, source).expect("the scratch file");
    let path = file.display().to_string();
    let out = nnc(["check", path.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{path}: ok, 1 warning\n"));
    let warned = |err: &str| {
        err.contains("Warning: parameter `extra` does not reach the loss")
            && err.contains(&format!("{path}:5:11"))
            && err.contains("never used")
            && !err.contains("Error")
    };
    assert!(warned(&stderr(&out)), "{}", stderr(&out));
    let out = nnc(["compile", path.as_str()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert!(stdout(&out).contains("pub fn loss_and_grad("));
    assert!(warned(&stderr(&out)), "{}", stderr(&out));
}

#[test]
fn every_error_of_a_file_is_reported() {
    let out = nnc(["check", "tests/diagnostics/sem_several_errors.nn"]);
    assert_eq!(code(&out), 1);
    let err = stderr(&out);
    assert_eq!(err.matches("Error:").count(), 4, "{err}");
    for location in [":8:24 ", ":10:18 ", ":11:22 ", ":12:40 "] {
        assert!(err.contains(location), "{location} in {err}");
    }
}

#[test]
fn mixed_files_report_each_and_exit_1() {
    let out = nnc([
        "check",
        "examples/models/two_layer.nn",
        "tests/diagnostics/syn_missing_semicolon.nn",
        "examples/models/gates.nn",
    ]);
    assert_eq!(code(&out), 1);
    assert_eq!(
        stdout(&out),
        "examples/models/two_layer.nn: ok\nexamples/models/gates.nn: ok\n"
    );
    let err = stderr(&out);
    assert!(err.contains("Error: missing `;`"), "{err}");
    assert!(
        err.contains("tests/diagnostics/syn_missing_semicolon.nn:7:18"),
        "{err}"
    );
}

#[test]
fn quiet_still_reports_errors() {
    let out = nnc([
        "check",
        "--quiet",
        "examples/models/mlp784.nn",
        "tests/diagnostics/sem_no_loss.nn",
    ]);
    assert_eq!(code(&out), 1);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).contains("sem_no_loss.nn:3:7"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn absolute_paths_and_temp_files() {
    let good = TempFile::new("good.nn", b"model m { param w: [] = 1; loss w ^ 2; }\n");
    let out = nnc([Path::new("check"), good.0.as_path()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
    assert_eq!(stdout(&out), format!("{}: ok\n", good.0.display()));

    let bad = TempFile::new(
        "bad.nn",
        b"model m {\n    param w: [] = 1;\n    loss w ^^ 2;\n}\n",
    );
    let out = nnc([Path::new("check"), bad.0.as_path()]);
    assert_eq!(code(&out), 1);
    assert!(
        stderr(&out).contains(&format!("{}:3:13", bad.0.display())),
        "{}",
        stderr(&out)
    );
}

#[test]
fn empty_file_is_clean() {
    // A file may hold any number of items, including none.
    let empty = TempFile::new("empty.nn", b"// nothing yet\n");
    let out = nnc([Path::new("check"), empty.0.as_path()]);
    assert_eq!(code(&out), 0, "{}", stderr(&out));
}

#[test]
fn no_files_is_a_usage_error() {
    let out = nnc(["check"]);
    assert_eq!(code(&out), 2);
    assert_eq!(stdout(&out), "");
    assert!(
        stderr(&out).to_lowercase().contains("usage"),
        "{}",
        stderr(&out)
    );
}

#[test]
fn no_command_and_unknown_flags_are_usage_errors() {
    for args in [
        &[][..],
        &["frobnicate"][..],
        &["check", "--loud", "examples/models/svm.nn"][..],
    ] {
        let out = nnc(args);
        assert_eq!(code(&out), 2, "nnc {args:?}: {}", stderr(&out));
        assert!(!stderr(&out).is_empty(), "nnc {args:?} explains itself");
    }
}

#[test]
fn unreadable_file_is_a_usage_error() {
    let out = nnc(["check", "examples/models/no_such_model.nn"]);
    assert_eq!(code(&out), 2);
    let err = stderr(&out);
    assert!(
        err.contains("cannot read examples/models/no_such_model.nn"),
        "{err}"
    );

    // A directory is not a file either.
    let out = nnc(["check", "examples/models"]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));

    // Nor is text that is not UTF-8.
    let latin1 = TempFile::new(
        "latin1.nn",
        b"model m { param w: [] = 1; loss w; } // caf\xe9\n",
    );
    let out = nnc([Path::new("check"), latin1.0.as_path()]);
    assert_eq!(code(&out), 2, "{}", stderr(&out));
    assert!(stderr(&out).contains("cannot read"), "{}", stderr(&out));
}

#[test]
fn help_and_version_exit_0() {
    let out = nnc(["--help"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("check"), "{}", stdout(&out));
    let out = nnc(["check", "--help"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).contains("--quiet"), "{}", stdout(&out));
    let out = nnc(["--version"]);
    assert_eq!(code(&out), 0);
    assert!(stdout(&out).starts_with("nnc "), "{}", stdout(&out));
}

#[test]
fn whole_diagnostics_corpus_exits_1() {
    let dir = repo().join("tests/diagnostics");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("the corpus")
        .map(|e| e.expect("an entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "nn"))
        .collect();
    files.sort();
    assert!(files.len() >= 30);
    for file in files {
        let out = nnc([Path::new("check"), file.as_path()]);
        assert_eq!(code(&out), 1, "{}", file.display());
        // The header `// expect: L:C` names the first diagnostic's location.
        let source = std::fs::read_to_string(&file).expect("readable");
        let expect = source
            .lines()
            .next()
            .and_then(|l| l.strip_prefix("// expect: "))
            .expect("a header");
        let first = stderr(&out)
            .lines()
            .find(|l| l.contains("╭─["))
            .map(str::to_string)
            .unwrap_or_default();
        assert!(
            first.ends_with(&format!(":{} ]", expect.trim())),
            "{}: {first}",
            file.display()
        );
    }
}
