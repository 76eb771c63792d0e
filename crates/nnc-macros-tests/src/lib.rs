//! Nothing but tests: `net!`'s, kept out of `crates/nnc-macros` so that their
//! dependencies build once with the workspace's (see `Cargo.toml`).
