//! The table of primitive built-in functions: names and signatures. Lowering maps
//! each to IR; the checker uses the same table for arity and keyword checks. Built-ins
//! that can be written in `.nn` live in the prelude instead.

use crate::ast::FnDef;

/// A built-in's call signature.
#[derive(Debug)]
pub struct Builtin {
    pub name: &'static str,
    /// Positional parameter names; the first `required` must be given.
    pub positional: &'static [&'static str],
    pub required: usize,
    /// Keyword-only parameters.
    pub keywords: &'static [&'static str],
}

const fn unary(name: &'static str) -> Builtin {
    Builtin {
        name,
        positional: &["x"],
        required: 1,
        keywords: &[],
    }
}

const fn reduction(name: &'static str) -> Builtin {
    Builtin {
        name,
        positional: &["x"],
        required: 1,
        keywords: &["axis", "keepdims"],
    }
}

/// Every primitive built-in.
pub const BUILTINS: &[Builtin] = &[
    unary("exp"),
    unary("log"),
    unary("sqrt"),
    unary("abs"),
    unary("sigmoid"),
    unary("tanh"),
    unary("softplus"),
    // `max(a, b)` is elementwise; `max(x)` and `max(x, axis = k)` reduce.
    Builtin {
        name: "max",
        positional: &["a", "b"],
        required: 1,
        keywords: &["axis", "keepdims"],
    },
    Builtin {
        name: "min",
        positional: &["a", "b"],
        required: 1,
        keywords: &["axis", "keepdims"],
    },
    reduction("sum"),
    reduction("mean"),
    reduction("logsumexp"),
    // numpy's: the mean squared deviation from the mean (no Bessel correction).
    reduction("var"),
    reduction("std"),
    Builtin {
        name: "softmax",
        positional: &["x"],
        required: 1,
        keywords: &["axis"],
    },
    Builtin {
        name: "log_softmax",
        positional: &["x"],
        required: 1,
        keywords: &["axis"],
    },
    // The same elements in row-major order, in a shape given as a tuple `(N, 6)`.
    Builtin {
        name: "reshape",
        positional: &["x", "shape"],
        required: 2,
        keywords: &[],
    },
    // Up to 8 pieces, joined along an existing axis (`concat`) or a new one (`stack`).
    Builtin {
        name: "concat",
        positional: &["a", "b", "c", "d", "e", "f", "g", "h"],
        required: 2,
        keywords: &["axis"],
    },
    Builtin {
        name: "stack",
        positional: &["a", "b", "c", "d", "e", "f", "g", "h"],
        required: 2,
        keywords: &["axis"],
    },
    Builtin {
        name: "pick",
        positional: &["x", "idx"],
        required: 2,
        keywords: &["keepdims"],
    },
    Builtin {
        name: "one_hot",
        positional: &["idx", "classes"],
        required: 2,
        keywords: &[],
    },
    Builtin {
        name: "argmax",
        positional: &["x"],
        required: 1,
        keywords: &["axis", "keepdims"],
    },
    Builtin {
        name: "where",
        positional: &["cond", "a", "b"],
        required: 3,
        keywords: &[],
    },
    // Inverted dropout: in training `x * mask`, the mask drawn for each step (each
    // element kept with probability `1 - p`, then scaled by `1 / (1 - p)`); in eval
    // mode `x`. `p` is a compile-time number in [0, 1).
    Builtin {
        name: "dropout",
        positional: &["x", "p"],
        required: 2,
        keywords: &[],
    },
    // Batch normalisation over axis 0. `running_mean` and `running_var` must be
    // `state`s: read in eval mode, updated by the training step.
    Builtin {
        name: "batch_norm",
        positional: &["x", "gamma", "beta", "running_mean", "running_var"],
        required: 5,
        keywords: &["momentum", "eps"],
    },
];

pub fn builtin(name: &str) -> Option<&'static Builtin> {
    BUILTINS.iter().find(|b| b.name == name)
}

/// What a call's name refers to.
#[derive(Clone, Copy, Debug)]
pub enum Callee<'a> {
    Builtin(&'static Builtin),
    /// A function of the prelude (`relu`, `softmax_cross_entropy`, ...).
    Prelude(&'static FnDef),
    /// A function of the user's file.
    User(&'a FnDef),
}

impl<'a> Callee<'a> {
    /// Resolves a function name: user functions may not shadow built-ins (the checker
    /// reports that), so the order here does not matter for valid programs.
    pub fn resolve(
        name: &str,
        user_fns: impl IntoIterator<Item = &'a FnDef>,
    ) -> Option<Callee<'a>> {
        if let Some(b) = builtin(name) {
            return Some(Callee::Builtin(b));
        }
        if let Some(f) = crate::prelude::function(name) {
            return Some(Callee::Prelude(f));
        }
        user_fns
            .into_iter()
            .find(|f| f.name.name == name)
            .map(Callee::User)
    }
}

/// Every name that can be called without a user definition, for suggestions.
pub fn all_builtin_names() -> impl Iterator<Item = &'static str> {
    BUILTINS
        .iter()
        .map(|b| b.name)
        .chain(crate::prelude::file().fns().map(|f| f.name.name.as_str()))
}

/// The initialiser names a `param` may use.
pub const INITIALISERS: &[&str] = &["zeros", "ones", "xavier", "he", "normal", "uniform"];
