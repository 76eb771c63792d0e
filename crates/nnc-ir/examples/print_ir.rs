//! Prints the IR of a `.nn` file: `cargo run -p nnc-ir --example print_ir FILE`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: print_ir FILE");
        std::process::exit(2);
    };
    let source = std::fs::read_to_string(&path).unwrap_or_default();
    match nnc_ir::compile_source(&source) {
        Ok(models) => {
            for m in &models {
                print!(
                    "{}",
                    nnc_ir::print::print(m, Some(&nnc_ir::print::Source { text: &source }))
                );
            }
        }
        Err(d) => eprint!("{}", nnc_syntax::render(&d, &path, &source)),
    }
}
