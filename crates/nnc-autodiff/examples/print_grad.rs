//! Prints derivations: `cargo run -p nnc-autodiff --example print_grad FILE`.
fn main() {
    let Some(path) = std::env::args().nth(1) else {
        eprintln!("usage: print_grad FILE");
        std::process::exit(2);
    };
    let source = std::fs::read_to_string(&path).unwrap_or_default();
    match nnc_ir::compile_source(&source) {
        Ok(models) => {
            for m in &models {
                match nnc_autodiff::derive(m) {
                    Ok(d) => {
                        print!("{}", d.render(nnc_autodiff::Format::Text));
                        if std::env::var("DBG").is_ok() {
                            dbg_ir(&d.simplified);
                        }
                    }
                    Err(e) => eprintln!("{e}"),
                }
            }
        }
        Err(d) => eprint!("{}", nnc_syntax::render(&d, &path, &source)),
    }
}
// debug
#[allow(dead_code)]
fn dbg_ir(m: &nnc_ir::Model) {
    print!("{}", nnc_ir::print::print(m, None));
}
