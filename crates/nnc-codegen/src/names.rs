//! Identifiers in generated code: the model's own names wherever there is one.
//!
//! Field names (`Params::w1`, `Inputs::labels`) are the source names as written
//! (raw identifiers for Rust keywords). Local variables are the source names in
//! lower case (`h`, `y_pred`, `d_h`; unnamed values `t17` after their IR node), made
//! unique, and kept clear of the names the generated functions use themselves
//! (`params`, `inputs`, `ws`, `grads`, `dims`, the loop variables `i j k l`, `rt`).

use nnc_ir::{Model, Op};
use std::collections::HashSet;

/// Names the generated functions use for their own purposes.
const RESERVED: &[&str] = &[
    "params",
    "inputs",
    "ws",
    "grads",
    "dims",
    "i",
    "j",
    "k",
    "l",
    "rt",
    "F",
    "ndarray",
    "nnc",
    "std",
    "core",
    "alloc",
    "super",
    "self",
    "Self",
    "crate",
    "Ok",
    "Err",
    "Some",
    "None",
    "Vec",
    "Result",
    "Option",
    "Outputs",
    "Params",
    "Grads",
    "Inputs",
    "Workspace",
    "Dims",
    "out",
    "matmul",
    "product",
    "j0",
    "aview1",
    "aview_mut1",
    "Axis",
];

/// Names the entry points of a model with `dropout` or `state` also use: the
/// states, the caller's generator, the mode (1 in training, 0 in eval mode).
const MODE_RESERVED: &[&str] = &["state", "rng", "mode", "State", "R"];

/// Rust's keywords (strict and reserved, 2024 edition).
const KEYWORDS: &[&str] = &[
    "as", "async", "await", "break", "const", "continue", "crate", "dyn", "else", "enum", "extern",
    "false", "fn", "for", "gen", "if", "impl", "in", "let", "loop", "match", "mod", "move", "mut",
    "pub", "ref", "return", "self", "Self", "static", "struct", "super", "trait", "true", "type",
    "unsafe", "use", "where", "while", "abstract", "become", "box", "do", "final", "macro",
    "override", "priv", "typeof", "unsized", "virtual", "yield", "try",
];

/// Whether `name` is a Rust keyword (and so needs `r#` as an identifier).
pub fn is_keyword(name: &str) -> bool {
    KEYWORDS.contains(&name)
}

/// `name` as a field identifier: raw for keywords, suffixed where even raw is not
/// allowed (`self`, `super`, `crate`, `Self`, `_`).
pub fn field(name: &str) -> String {
    match name {
        "self" | "super" | "crate" | "Self" | "_" => format!("{name}_"),
        _ if is_keyword(name) => format!("r#{name}"),
        _ => name.to_string(),
    }
}

/// `two_layer` -> `TwoLayer`; `mlp784` -> `Mlp784`.
pub fn camel(name: &str) -> String {
    let mut out = String::new();
    for part in name.split('_').filter(|p| !p.is_empty()) {
        let mut chars = part.chars();
        if let Some(c) = chars.next() {
            out.extend(c.to_uppercase());
            out.push_str(&chars.as_str().to_lowercase());
        }
    }
    if out.is_empty() || out.starts_with(|c: char| c.is_ascii_digit()) {
        out.insert_str(0, "Model");
    }
    if is_keyword(&out) {
        out.push('_');
    }
    out
}

/// Whether a source name is already snake case (no `non_snake_case` lint).
pub fn is_snake(name: &str) -> bool {
    !name.chars().any(|c| c.is_uppercase())
}

/// Hands out unique local identifiers.
#[derive(Clone, Debug, Default)]
pub struct Namer {
    used: HashSet<String>,
    /// The names handed out, in order (so that [`Namer::rollback`] can take back
    /// the latest).
    given: Vec<String>,
}

impl Namer {
    pub fn new() -> Namer {
        let mut used: HashSet<String> = RESERVED.iter().map(|s| s.to_string()).collect();
        used.extend(KEYWORDS.iter().map(|s| s.to_string()));
        Namer {
            used,
            given: vec![],
        }
    }

    /// How many names have been handed out: a mark for [`Namer::rollback`].
    pub fn mark(&self) -> usize {
        self.given.len()
    }

    /// Takes back the names handed out since `mark` (those of a trial emission, see
    /// `emit::roll`), so that the same names are given again.
    pub fn rollback(&mut self, mark: usize) {
        for name in self.given.drain(mark.min(self.given.len())..) {
            self.used.remove(&name);
        }
    }

    /// Whether `name` is taken.
    pub fn is_used(&self, name: &str) -> bool {
        self.used.contains(name)
    }

    /// A fresh identifier based on `base` (lower-cased): `base`, else `base_2`, ...
    pub fn fresh(&mut self, base: &str) -> String {
        let mut base: String = base
            .chars()
            .map(|c| {
                if c.is_ascii_alphanumeric() || c == '_' {
                    c.to_ascii_lowercase()
                } else {
                    '_'
                }
            })
            .collect();
        if base.is_empty() || base.starts_with(|c: char| c.is_ascii_digit()) {
            base.insert(0, 'v');
        }
        let name = if self.used.contains(&base) {
            (2..)
                .map(|k| format!("{base}_{k}"))
                .find(|candidate| !self.used.contains(candidate))
                .unwrap_or(base)
        } else {
            base
        };
        if self.used.insert(name.clone()) {
            self.given.push(name.clone());
        }
        name
    }
}

/// Every identifier a model's module uses.
#[derive(Clone, Debug)]
pub struct Names {
    /// The module: the model's name.
    pub module: String,
    /// The unit struct implementing `Model`.
    pub model_struct: String,
    /// Per node: its local identifier (the value's name in functions, and the name of
    /// its workspace buffer if it has one).
    pub node: Vec<String>,
    /// Per runtime dim (`DimId`): its local, `n` for `N`.
    pub dim: Vec<String>,
    pub param_field: Vec<String>,
    pub input_field: Vec<String>,
    pub output_field: Vec<String>,
    /// Per gradient (params, then `grad` inputs): its field in `Grads`.
    pub grad_field: Vec<String>,
    /// The namer, for names a function makes up (helpers of row reductions).
    pub namer: Namer,
}

impl Names {
    pub fn new(model: &Model) -> Names {
        let mut namer = Namer::new();
        // The arguments and locals of the entry points of a model with modes.
        if model.has_modes() {
            for reserved in MODE_RESERVED {
                namer.used.insert(reserved.to_string());
            }
        }
        // Only runtime dims have locals; fixed dims are literals in generated code.
        let dim = model
            .dims
            .iter()
            .map(|d| {
                if d.size.is_none() {
                    namer.fresh(&d.name)
                } else {
                    d.name.to_lowercase()
                }
            })
            .collect();
        let mut node = Vec::with_capacity(model.nodes.len());
        // Leaves first, so that params and inputs keep their own names.
        let mut leaf_names = vec![None; model.nodes.len()];
        for (i, n) in model.nodes.iter().enumerate() {
            let name = match &n.op {
                Op::Param(p) => Some(model.params[p.0 as usize].name.clone()),
                Op::Input(x) => Some(model.inputs[x.0 as usize].name.clone()),
                _ => None,
            };
            leaf_names[i] = name.map(|s| namer.fresh(&s));
        }
        for (i, n) in model.nodes.iter().enumerate() {
            let name = match leaf_names[i].take() {
                Some(s) => s,
                None => namer.fresh(n.name.as_deref().unwrap_or(&format!("t{i}"))),
            };
            node.push(name);
        }
        Names {
            module: field(&model.name),
            model_struct: camel(&model.name),
            node,
            dim,
            param_field: model.params.iter().map(|p| field(&p.name)).collect(),
            input_field: model.inputs.iter().map(|x| field(&x.name)).collect(),
            output_field: model.outputs.iter().map(|(name, _)| field(name)).collect(),
            grad_field: model
                .grads
                .iter()
                .map(|(of, _)| field(model.grad_name(*of)))
                .collect(),
            namer,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_made_unique_and_safe() {
        let mut n = Namer::new();
        assert_eq!(n.fresh("h"), "h");
        assert_eq!(n.fresh("h"), "h_2");
        assert_eq!(n.fresh("i"), "i_2");
        assert_eq!(n.fresh("W1"), "w1");
        assert_eq!(n.fresh("w1"), "w1_2");
        assert_eq!(n.fresh("type"), "type_2");
        assert_eq!(n.fresh("t7"), "t7");
        assert_eq!(n.fresh("t7"), "t7_2");
    }

    #[test]
    fn fields_and_structs() {
        assert_eq!(field("type"), "r#type");
        assert_eq!(field("self"), "self_");
        assert_eq!(field("w1"), "w1");
        assert_eq!(camel("two_layer"), "TwoLayer");
        assert_eq!(camel("mlp784"), "Mlp784");
        assert_eq!(camel("MLP"), "Mlp");
        assert_eq!(camel("_"), "Model");
    }
}
