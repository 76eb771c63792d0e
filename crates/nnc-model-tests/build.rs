//! Compiles every spec model (`examples/models/*.nn` at the workspace root) and this
//! crate's own test models (`models/*.nn`: the cases the spec models do not reach)
//! into `$OUT_DIR/<file>.rs`, and `$OUT_DIR/models.rs` including them all. Nothing
//! generated is checked in: `src/lib.rs` includes `models.rs`, so building (and
//! linting) this crate builds (and lints) the generated code.

use std::fmt::Write;
use std::path::{Path, PathBuf};

fn main() {
    let manifest = PathBuf::from(std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default());
    let out_dir = PathBuf::from(std::env::var("OUT_DIR").unwrap_or_default());
    let spec = manifest.join("../../examples/models");
    let own = manifest.join("models");
    let mut files = vec![];
    for dir in [&spec, &own] {
        println!("cargo:rerun-if-changed={}", dir.display());
        let mut found: Vec<PathBuf> = std::fs::read_dir(dir)
            .map(|d| {
                d.filter_map(|e| e.ok().map(|e| e.path()))
                    .filter(|p| p.extension().is_some_and(|x| x == "nn"))
                    .collect()
            })
            .unwrap_or_default();
        if found.is_empty() {
            fail(&format!("no models found in {}", dir.display()));
        }
        found.sort();
        files.extend(found);
    }
    let mut index = String::new();
    for path in &files {
        println!("cargo:rerun-if-changed={}", path.display());
        let name = file_name(path);
        let source = std::fs::read_to_string(path)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
        let options = nnc_codegen::Options::default();
        let code = match nnc_codegen::compile_source(&source, &name, &options) {
            Ok(code) => code,
            Err(diagnostics) => fail(&nnc_syntax::render(&diagnostics, &name, &source)),
        };
        let stem = path
            .file_stem()
            .map_or_else(String::new, |s| s.to_string_lossy().into_owned());
        let target = out_dir.join(format!("{stem}.rs"));
        std::fs::write(&target, code)
            .unwrap_or_else(|e| fail(&format!("{}: {e}", target.display())));
        let _ = writeln!(
            index,
            "include!(concat!(env!(\"OUT_DIR\"), \"/{stem}.rs\"));"
        );
    }
    let target = out_dir.join("models.rs");
    std::fs::write(&target, index).unwrap_or_else(|e| fail(&format!("{}: {e}", target.display())));
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1);
}
