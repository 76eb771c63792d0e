//! `net!`'s diagnostics, as rustc shows them to a user: each case under `tests/ui/`
//! with its expected output beside it (`.stderr`).

#[test]
fn net_macro_diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
