//! Diagnostics: what every phase reports, and how the edges (CLI, tests) render it.
//!
//! A phase builds [`Diagnostic`]s with byte spans into the source; rendering with
//! ariadne happens only at the edge, in [`render`], which prints
//! `file:line:col`, the source line and a caret under the span.

use crate::Span;
use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};

/// One error, pointing at the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// The headline: what is wrong.
    pub message: String,
    /// Where: the primary span, underlined.
    pub span: Span,
    /// Text under the primary caret (what was expected, usually).
    pub label: Option<String>,
    /// Other places worth showing (the first declaration of a duplicate, say).
    pub related: Vec<(Span, String)>,
    /// Extra lines: hints, suggestions.
    pub notes: Vec<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic { message: message.into(), span, label: None, related: vec![], notes: vec![] }
    }

    pub fn with_label(mut self, label: impl Into<String>) -> Diagnostic {
        self.label = Some(label.into());
        self
    }

    pub fn with_related(mut self, span: Span, label: impl Into<String>) -> Diagnostic {
        self.related.push((span, label.into()));
        self
    }

    pub fn with_note(mut self, note: impl Into<String>) -> Diagnostic {
        self.notes.push(note.into());
        self
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(source.len());
    let before = source.get(..offset).unwrap_or(source);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// Renders diagnostics as plain text (no colour), each with `file:line:col`, the source
/// line and a caret under the span.
pub fn render(diagnostics: &[Diagnostic], file_name: &str, source: &str) -> String {
    let mut out = Vec::new();
    for d in diagnostics {
        render_one(d, file_name, source, &mut out);
    }
    String::from_utf8_lossy(&out).into_owned()
}

fn render_one(d: &Diagnostic, file_name: &str, source: &str, out: &mut Vec<u8>) {
    let clamp = |s: Span| {
        let start = s.start.min(source.len());
        start..s.end.clamp(start, source.len())
    };
    let primary = clamp(d.span);
    let (line, col) = line_col(source, primary.start);
    let mut report = Report::build(ReportKind::Error, (file_name, primary.clone()))
        .with_config(Config::default().with_color(false).with_index_type(IndexType::Byte))
        .with_message(&d.message);
    let mut label = Label::new((file_name, primary));
    if let Some(text) = &d.label {
        label = label.with_message(text);
    }
    report = report.with_label(label);
    for (span, text) in &d.related {
        report = report.with_label(Label::new((file_name, clamp(*span))).with_message(text));
    }
    for note in &d.notes {
        report = report.with_note(note);
    }
    let written = report.finish().write((file_name, Source::from(source)), &mut *out);
    if written.is_err() {
        // Writing to a Vec cannot fail; keep the headline if it somehow does.
        out.extend_from_slice(format!("error: {}:{line}:{col}: {}\n", file_name, d.message).as_bytes());
    }
}
