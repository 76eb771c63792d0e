//! What every `nnc` end-to-end test needs: running the binary as a user runs it, the
//! example models, scratch directories, and the parts of a finished run.
//!
//! Each test file declares `mod common;`; not every file uses every helper.
#![allow(dead_code)]

use std::ffi::OsStr;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// One argument of a list mixing strings and paths: `nnc([&"run" as Arg, &file])`.
/// (Lists of one type need no cast: `nnc(["check", "a.nn"])`.)
pub type Arg<'a> = &'a dyn AsRef<OsStr>;

/// The repository root (this crate is `crates/nnc-cli`).
pub fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The absolute path of `examples/models/<file>`.
pub fn model(file: &str) -> String {
    repo()
        .join("examples/models")
        .join(file)
        .to_string_lossy()
        .into_owned()
}

/// Runs `nnc` with `args` from the repository root, so relative paths such as
/// `examples/models/gates.nn` resolve there.
pub fn nnc<I, S>(args: I) -> Output
where
    I: IntoIterator<Item = S>,
    S: AsRef<OsStr>,
{
    Command::new(env!("CARGO_BIN_EXE_nnc"))
        .args(args)
        .current_dir(repo())
        .output()
        .expect("nnc runs")
}

/// The exit code (a run killed by a signal fails the test).
pub fn code(out: &Output) -> i32 {
    out.status
        .code()
        .expect("nnc exits normally, not by a signal")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A fresh, empty directory `<group>/<test>-<pid>` under cargo's scratch directory
/// for integration tests; the process id keeps concurrent `cargo test` runs apart.
pub fn scratch(group: &str, test: &str) -> PathBuf {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(group)
        .join(format!("{test}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("a scratch directory");
    dir
}
