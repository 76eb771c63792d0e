//! The prelude: built-ins written in `.nn` (activations and losses), parsed once.

use crate::ast::{File, FnDef};
use std::sync::OnceLock;

/// The prelude's source text.
pub const SOURCE: &str = include_str!("prelude.nn");

/// The parsed prelude. It is part of the compiler, so a prelude that fails to parse
/// is a bug caught by this crate's tests, never a user error.
pub fn file() -> &'static File {
    static FILE: OnceLock<File> = OnceLock::new();
    FILE.get_or_init(|| {
        let (file, diagnostics) = crate::parser::parse(SOURCE);
        assert!(
            diagnostics.is_empty(),
            "the prelude does not parse: {diagnostics:?}"
        );
        file
    })
}

/// A prelude function by name.
pub fn function(name: &str) -> Option<&'static FnDef> {
    file().fns().find(|f| f.name.name == name)
}
