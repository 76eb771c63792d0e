//! Prints the fusion plans of every model in a `.nn` file:
//! `cargo run -p nnc-codegen --example plan FILE`.
use nnc_codegen::plan::{Entry, describe, plan};

fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: plan FILE");
        std::process::exit(2);
    };
    let source = std::fs::read_to_string(&path).unwrap_or_default();
    match nnc_ir::compile_source(&source) {
        Ok(models) => {
            for m in &models {
                match nnc_autodiff::with_gradients(m) {
                    Ok(m) => {
                        for entry in [Entry::Loss, Entry::Forward, Entry::LossAndGrad] {
                            print!("{}", describe(&m, &plan(&m, entry)));
                        }
                    }
                    Err(e) => eprintln!("{e}"),
                }
            }
        }
        Err(d) => eprint!("{}", nnc_syntax::render(&d, &path, &source)),
    }
}
