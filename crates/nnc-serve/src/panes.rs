//! What each pane of the page shows, computed by the library calls the CLI makes:
//! `nnc check` ([`check`]), `nnc grad` ([`grad`]), `nnc graph` ([`graph`]),
//! `nnc compile` ([`compile`]) and `nnc gradcheck` ([`gradcheck`]). Plain functions
//! from a request to a [`Pane`], synchronous and CPU-bound: the server runs them on
//! its blocking pool under a deadline.
//!
//! A program with errors is not a failed request: its pane says `ok: false` and
//! holds the diagnostics rendered as the CLI renders them.

use nnc_ir::Model;
use serde::{Deserialize, Serialize};
use std::path::Path;
use std::time::Duration;

/// What the page sends for every pane: the editor's text and its settings.
#[derive(Clone, Debug, Deserialize)]
pub struct PaneRequest {
    /// The program text.
    pub source: String,
    /// The model picked (the file's first model when absent or unknown to it).
    #[serde(default)]
    pub model: Option<String>,
    /// Seeds the random inputs and the parameters' initialisers (graph, gradcheck).
    #[serde(default)]
    pub seed: u64,
    /// The size of every runtime dim of random inputs (graph, gradcheck).
    #[serde(default = "default_batch")]
    pub batch: usize,
    /// Graph: draw the backward pass.
    #[serde(default)]
    pub backward: bool,
    /// Graph: open function calls into their operations.
    #[serde(default)]
    pub expand: bool,
    /// Graph: evaluate at the uploaded `.npz` inputs rather than random ones.
    #[serde(default)]
    pub uploaded: bool,
}

fn default_batch() -> usize {
    4
}

/// The largest batch the page may ask for: the interpreter's memory budget bounds
/// the work too, this keeps a typo from reaching it.
pub const MAX_BATCH: usize = 1024;

/// One pane's content.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Pane {
    /// False when the program (or the request) has something wrong; `text` says what.
    pub ok: bool,
    /// The pane's text: rendered diagnostics, the derivation, Rust, a report, or an error.
    pub text: String,
    /// The graph pane's picture.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub svg: Option<String>,
    /// Where each diagnostic points, for the page to move the caret there.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub diagnostics: Vec<Located>,
    /// The check pane: the file's models, for the picker.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub models: Vec<String>,
    /// The model the pane shows.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub model: Option<String>,
    /// A remark beside the result (random inputs were used, say).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub note: Option<String>,
}

impl Pane {
    fn ok(text: String) -> Pane {
        Pane {
            ok: true,
            text,
            ..Pane::default()
        }
    }

    /// A pane holding an error message.
    pub fn error(text: impl Into<String>) -> Pane {
        Pane {
            ok: false,
            text: text.into(),
            ..Pane::default()
        }
    }
}

/// A diagnostic's position: 1-based line and column (in characters), as printed.
#[derive(Clone, Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct Located {
    pub line: usize,
    pub col: usize,
    /// `error` or `warning`.
    pub severity: String,
    pub message: String,
}

fn locate(diagnostics: &[nnc_syntax::Diagnostic], source: &str) -> Vec<Located> {
    diagnostics
        .iter()
        .map(|d| {
            let (line, col) = nnc_syntax::diagnostic::line_col(source, d.span.range().start);
            let severity = match d.severity {
                nnc_syntax::Severity::Error => "error",
                nnc_syntax::Severity::Warning => "warning",
            };
            Located {
                line,
                col,
                severity: severity.to_string(),
                message: d.message.clone(),
            }
        })
        .collect()
}

/// The diagnostics as the CLI prints them, with their positions.
fn diagnostics_pane(diagnostics: &[nnc_syntax::Diagnostic], source: &str, file: &str) -> Pane {
    Pane {
        diagnostics: locate(diagnostics, source),
        ..Pane::error(nnc_syntax::render(diagnostics, file, source))
    }
}

/// `nnc check`: every error `nnc compile` would report (names, shapes,
/// differentiation), else the warnings; and the file's models for the picker.
pub fn check(request: &PaneRequest, file: &str) -> Pane {
    let source = &request.source;
    // Lowered once: the warnings come from the front end's models, as `nnc check`'s.
    let checked = nnc_ir::compile_source(source).and_then(|lowered| {
        nnc_autodiff::with_gradients_all(&lowered).map(|models| (lowered, models))
    });
    let (lowered, models) = match checked {
        Ok(both) => both,
        Err(diagnostics) => return diagnostics_pane(&diagnostics, source, file),
    };
    let warnings: Vec<_> = lowered.iter().flat_map(nnc_ir::warnings).collect();
    let text = match warnings.len() {
        0 => format!("{file}: ok\n"),
        1 => format!("{}{file}: ok, 1 warning\n", render(&warnings, source, file)),
        n => format!(
            "{}{file}: ok, {n} warnings\n",
            render(&warnings, source, file)
        ),
    };
    Pane {
        diagnostics: locate(&warnings, source),
        models: models.iter().map(|m| m.name.clone()).collect(),
        ..Pane::ok(text)
    }
}

fn render(diagnostics: &[nnc_syntax::Diagnostic], source: &str, file: &str) -> String {
    nnc_syntax::render(diagnostics, file, source)
}

/// The source's models lowered in `mode` (`Mode::Train` for the derivation and the
/// graph, as `nnc grad` and `nnc graph` show the training step of a model with
/// dropout or states), and the one the request picks (the first when it names none,
/// or one the file no longer has); or the pane to show instead.
fn pick(request: &PaneRequest, file: &str, mode: nnc_ir::Mode) -> Result<Model, Box<Pane>> {
    let source = &request.source;
    let models = nnc_ir::compile_source_in(source, mode)
        .map_err(|diagnostics| Box::new(diagnostics_pane(&diagnostics, source, file)))?;
    let wanted = request.model.as_deref();
    let chosen = models
        .iter()
        .position(|m| Some(m.name.as_str()) == wanted)
        .unwrap_or(0);
    models
        .into_iter()
        .nth(chosen)
        .ok_or_else(|| Box::new(Pane::error(format!("{file} holds no model"))))
}

fn shown(model: &Model, pane: Pane) -> Pane {
    Pane {
        model: Some(model.name.clone()),
        ..pane
    }
}

/// `nnc grad`: the derivation, rule by rule.
pub fn grad(request: &PaneRequest, file: &str) -> Pane {
    let model = match pick(request, file, nnc_ir::Mode::Train) {
        Ok(model) => model,
        Err(pane) => return *pane,
    };
    let pane = match nnc_autodiff::derive(&model) {
        Ok(derivation) => Pane::ok(derivation.render(nnc_autodiff::Format::Text)),
        Err(e) => Pane::error(format!("error: {e}")),
    };
    shown(&model, pane)
}

/// `nnc compile --emit rust --model M`: the generated Rust.
pub fn compile(request: &PaneRequest, file: &str) -> Pane {
    let model = match pick(request, file, nnc_ir::Mode::Switched) {
        Ok(model) => model,
        Err(pane) => return *pane,
    };
    let options = nnc_codegen::Options {
        model: Some(model.name.clone()),
        emit: nnc_codegen::Emit::Rust,
    };
    let source = &request.source;
    let pane = match nnc_codegen::compile_source(source, file, &options) {
        Ok(text) => Pane::ok(text),
        Err(diagnostics) => diagnostics_pane(&diagnostics, source, file),
    };
    shown(&model, pane)
}

/// `nnc graph --seed S --batch B [--inputs FILE] [--backward] [--expand]`: the
/// computational graph as SVG, the forward value above each wire and the gradient
/// below. `inputs` is the uploaded `.npz` file, used when the request asks for it.
pub fn graph(request: &PaneRequest, file: &str, inputs: Option<&Path>) -> Pane {
    let model = match pick(request, file, nnc_ir::Mode::Train) {
        Ok(model) => model,
        Err(pane) => return *pane,
    };
    shown(&model, draw(&model, request, file, inputs))
}

fn draw(model: &Model, request: &PaneRequest, file: &str, inputs: Option<&Path>) -> Pane {
    if request.batch == 0 || request.batch > MAX_BATCH {
        return Pane::error(format!("the batch must be 1 to {MAX_BATCH}"));
    }
    let inputs = match (request.uploaded, inputs) {
        (true, None) => return Pane::error("no inputs uploaded (choose an .npz file)"),
        (true, Some(path)) => Some(path),
        (false, _) => None,
    };
    let spec = nnc_graph::values::Spec {
        inputs,
        params: None,
        seed: request.seed,
        batch: request.batch,
    };
    let mut note = None;
    let bindings = match nnc_graph::values::bindings(model, &spec, &mut |n| {
        note = Some(n.replace("pass --inputs FILE.npz", "upload an .npz file"));
    }) {
        Ok(bindings) => bindings,
        Err(e) => return Pane::error(format!("error: {e}")),
    };
    let options = nnc_graph::Options {
        expand: request.expand,
        backward: request.backward,
        ..nnc_graph::Options::new(file, &request.source)
    };
    let svg = nnc_graph::graph(model, &bindings, &options)
        .map_err(|e| e.to_string())
        .and_then(|picture| picture.svg().map_err(|e| e.to_string()));
    match svg {
        Ok(svg) => Pane {
            svg: Some(svg),
            note,
            ..Pane::ok(String::new())
        },
        Err(e) => Pane::error(format!("error: {e}")),
    }
}

/// `nnc gradcheck --model M --seed S --batch B`, the CLI's other defaults, stopping
/// after `max_time`: the legend and the table.
pub fn gradcheck(request: &PaneRequest, file: &str, max_time: Duration) -> Pane {
    let model = match pick(request, file, nnc_ir::Mode::Train) {
        Ok(model) => model,
        Err(pane) => return *pane,
    };
    if request.batch == 0 || request.batch > MAX_BATCH {
        return Pane::error(format!("the batch must be 1 to {MAX_BATCH}"));
    }
    let options = nnc_autodiff::gradcheck::Options {
        seed: request.seed,
        batch: request.batch,
        max_time: Some(max_time),
        ..nnc_autodiff::gradcheck::Options::default()
    };
    let legend = nnc_autodiff::gradcheck::legend(&options);
    let pane = match nnc_autodiff::gradcheck::gradcheck(&model, &options) {
        Ok(report) => Pane {
            ok: report.passed(),
            text: format!("{legend}\n{report}"),
            ..Pane::default()
        },
        Err(e) => Pane::error(format!("error: `{}`: {e}", model.name)),
    };
    shown(&model, pane)
}
