//! Compiles `grammar/nn.lalrpop` (at the workspace root) into `$OUT_DIR/nn.rs`.
fn main() {
    let manifest = std::env::var("CARGO_MANIFEST_DIR").expect("cargo sets CARGO_MANIFEST_DIR");
    let grammar_dir = std::path::Path::new(&manifest).join("../../grammar");
    let out_dir = std::env::var("OUT_DIR").expect("cargo sets OUT_DIR");
    lalrpop::Configuration::new()
        .set_in_dir(&grammar_dir)
        .set_out_dir(&out_dir)
        .emit_rerun_directives(true)
        .process()
        .expect("the grammar compiles");
}
