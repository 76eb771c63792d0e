//! Compiles every spec model (`examples/models/*.nn` at the workspace root) and this
//! crate's own test models (`models/*.nn`: the cases the spec models do not reach)
//! into `$OUT_DIR/<file>.rs`, and `$OUT_DIR/models.rs` including them all. Nothing
//! generated is checked in: `src/lib.rs` includes `models.rs`, so building (and
//! linting) this crate builds (and lints) the generated code.
//!
//! Then the random programs of `nnc-progen` (see [`random_programs`]) into
//! `$OUT_DIR/random/`, indexed by `$OUT_DIR/random.rs`.

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
    random_programs(&out_dir);
}

/// The seeds CI checks when `NNC_RANDOM_SEEDS` is not set.
const DEFAULT_SEEDS: std::ops::Range<u64> = 0..300;

/// Generates the random programs (seeds `NNC_RANDOM_SEEDS`, `FROM..TO`, 0..300 by
/// default; or the one program in the file `NNC_RANDOM_FILE`, which is how the
/// shrinker tries a candidate), compiles each into `$OUT_DIR/random/r<seed>.rs` with
/// its source beside it, and writes `$OUT_DIR/random.rs`: the modules and
/// `visit_all`, which hands each model type to a [`Visit`]or. A program the code
/// generator rejects is a bug, reported by `visit_all` as a failure of that program
/// (the others still build and run).
fn random_programs(out_dir: &Path) {
    println!("cargo:rerun-if-env-changed=NNC_RANDOM_SEEDS");
    println!("cargo:rerun-if-env-changed=NNC_RANDOM_FILE");
    println!("cargo:rerun-if-env-changed=NNC_RANDOM_SKIP");
    // Seeds left out (`NNC_RANDOM_SKIP=3,17`): the explorer's way past a program
    // whose generated code does not compile, so the rest of its chunk still runs.
    let skipped: Vec<u64> = std::env::var("NNC_RANDOM_SKIP")
        .unwrap_or_default()
        .split(',')
        .filter_map(|s| s.trim().parse().ok())
        .collect();
    let dir = out_dir.join("random");
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap_or_else(|e| fail(&format!("{}: {e}", dir.display())));
    let programs: Vec<(u64, String, String)> = match std::env::var("NNC_RANDOM_FILE") {
        _ if std::env::var_os("CARGO_FEATURE_RANDOM").is_none() => vec![],
        Ok(path) => {
            println!("cargo:rerun-if-changed={path}");
            let source =
                std::fs::read_to_string(&path).unwrap_or_else(|e| fail(&format!("{path}: {e}")));
            let name = model_name(&source).unwrap_or_else(|| fail(&format!("{path}: no model")));
            let seed = name.trim_start_matches('r').parse().unwrap_or(0);
            vec![(seed, name, source)]
        }
        Err(_) => seeds()
            .filter(|seed| !skipped.contains(seed))
            .map(|seed| {
                let program = nnc_progen::generate(seed);
                (seed, program.name.clone(), program.source())
            })
            .collect(),
    };
    // Programs kept because they once found a bug (`models/random/*.nn`, as generated
    // then): always checked, whatever the generator makes of their seeds today.
    let mut programs = programs;
    if std::env::var_os("NNC_RANDOM_FILE").is_none()
        && std::env::var_os("CARGO_FEATURE_RANDOM").is_some()
    {
        let kept_dir = Path::new(&std::env::var("CARGO_MANIFEST_DIR").unwrap_or_default())
            .join("models/random");
        println!("cargo:rerun-if-changed={}", kept_dir.display());
        let mut kept: Vec<PathBuf> = std::fs::read_dir(&kept_dir)
            .map(|d| d.filter_map(|e| e.ok().map(|e| e.path())).collect())
            .unwrap_or_default();
        kept.sort();
        for path in kept
            .iter()
            .filter(|p| p.extension().is_some_and(|x| x == "nn"))
        {
            let source = std::fs::read_to_string(path)
                .unwrap_or_else(|e| fail(&format!("{}: {e}", path.display())));
            let name = model_name(&source)
                .unwrap_or_else(|| fail(&format!("{}: no model", path.display())));
            let seed = name.trim_start_matches('r').parse().unwrap_or(0);
            programs.retain(|(_, n, _)| *n != name);
            programs.push((seed, name, source));
        }
    }
    let mut modules = String::new();
    let mut visits = String::new();
    for (seed, name, source) in &programs {
        let nn = dir.join(format!("{name}.nn"));
        std::fs::write(&nn, source).unwrap_or_else(|e| fail(&format!("{}: {e}", nn.display())));
        let source_expr =
            format!("include_str!(concat!(env!(\"OUT_DIR\"), \"/random/{name}.nn\"))");
        match nnc_codegen::compile_source(
            source,
            &format!("{name}.nn"),
            &nnc_codegen::Options::default(),
        ) {
            Ok(code) => {
                let rs = dir.join(format!("{name}.rs"));
                std::fs::write(&rs, code)
                    .unwrap_or_else(|e| fail(&format!("{}: {e}", rs.display())));
                let _ = writeln!(
                    modules,
                    "include!(concat!(env!(\"OUT_DIR\"), \"/random/{name}.rs\"));"
                );
                let _ = writeln!(
                    visits,
                    "    v.visit::<{name}::{}>({seed}, {source_expr});",
                    nnc_codegen::names::camel(name)
                );
            }
            Err(diagnostics) => {
                let message = nnc_syntax::render(&diagnostics, &format!("{name}.nn"), source);
                let _ = writeln!(
                    visits,
                    "    v.rejected({seed}, {source_expr}, {message:?});"
                );
            }
        }
    }
    let index = format!(
        "{modules}\n/// Hands every random program to `v`: its model type, seed and source.\n\
         pub fn visit_all<V: crate::harness::Visit>(v: &mut V) {{\n    let _ = &v;\n{visits}}}\n"
    );
    let target = out_dir.join("random.rs");
    std::fs::write(&target, index).unwrap_or_else(|e| fail(&format!("{}: {e}", target.display())));
}

/// The seed range of `NNC_RANDOM_SEEDS` (`FROM..TO`), or the default.
fn seeds() -> std::ops::Range<u64> {
    let Ok(text) = std::env::var("NNC_RANDOM_SEEDS") else {
        return DEFAULT_SEEDS;
    };
    let parsed = text
        .split_once("..")
        .and_then(|(a, b)| Some(a.trim().parse().ok()?..b.trim().parse().ok()?));
    parsed.unwrap_or_else(|| fail(&format!("NNC_RANDOM_SEEDS={text}: expected FROM..TO")))
}

/// The name after the first `model`.
fn model_name(source: &str) -> Option<String> {
    let rest = &source[source.find("model ")? + 6..];
    let name: String = rest
        .trim_start()
        .chars()
        .take_while(|c| c.is_ascii_alphanumeric() || *c == '_')
        .collect();
    (!name.is_empty()).then_some(name)
}

fn file_name(path: &Path) -> String {
    path.file_name()
        .map_or_else(String::new, |s| s.to_string_lossy().into_owned())
}

fn fail(message: &str) -> ! {
    eprintln!("{message}");
    std::process::exit(1);
}
