//! Prints the generated Rust for a `.nn` file:
//! `cargo run -p nnc-codegen --example compile FILE [MODEL]`.
fn main() {
    let mut args = std::env::args().skip(1);
    let Some(path) = args.next() else {
        eprintln!("usage: compile FILE [MODEL]");
        std::process::exit(2);
    };
    let source = std::fs::read_to_string(&path).unwrap_or_default();
    let file_name = std::path::Path::new(&path)
        .file_name()
        .map_or(path.clone(), |f| f.to_string_lossy().into_owned());
    let options = nnc_codegen::Options {
        model: args.next(),
        ..Default::default()
    };
    match nnc_codegen::compile_source(&source, &file_name, &options) {
        Ok(text) => print!("{text}"),
        Err(d) => {
            eprint!("{}", nnc_syntax::render(&d, &path, &source));
            std::process::exit(1);
        }
    }
}
