//! Diagnostics: what every phase reports, and how the edges (CLI, tests) render it.
//!
//! A phase builds [`Diagnostic`]s with byte spans into the source; rendering with
//! ariadne happens only at the edge, in [`render`], which prints
//! `file:line:col`, the source line and a caret under the span.

use crate::Span;
use ariadne::{Config, IndexType, Label, Report, ReportKind, Source};

/// One error or warning, pointing at the source.
#[derive(Clone, Debug, PartialEq)]
pub struct Diagnostic {
    /// An error stops compilation; a warning is reported and compilation goes on.
    pub severity: Severity,
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

/// Whether a [`Diagnostic`] stops compilation.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Severity {
    Error,
    Warning,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            label: None,
            related: vec![],
            notes: vec![],
        }
    }

    /// A warning: something legal that is most likely a mistake.
    pub fn warning(message: impl Into<String>, span: Span) -> Diagnostic {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
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

/// 1-based line and column (in characters) of a byte offset. It scans the text up to
/// the offset: for many locations in one text, index the text once with [`LineIndex`].
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let before = &source.as_bytes()[..offset.min(source.len())];
    let line = before.iter().filter(|b| **b == b'\n').count() + 1;
    let start = before
        .iter()
        .rposition(|b| *b == b'\n')
        .map_or(0, |i| i + 1);
    (line, chars_in(&before[start..]) + 1)
}

/// The characters that start in `bytes` (the bytes that are not UTF-8 continuations),
/// so an offset inside a character counts that character's start.
fn chars_in(bytes: &[u8]) -> usize {
    bytes.iter().filter(|b| (**b as i8) >= -0x40).count()
}

/// A text indexed for [`line_col`] lookups: the start of every line, and the number of
/// characters before every [`LineIndex::STEP`]th byte. A lookup costs a binary search
/// and at most two steps' bytes, however long the text or its lines (a file of
/// thousands of models, or a minified one, is located in linear time).
#[derive(Clone, Debug)]
pub struct LineIndex<'a> {
    text: &'a str,
    /// The byte offset of each line's first character, ascending; `lines[0] == 0`.
    lines: Vec<usize>,
    /// `chars[k]`: the characters that start before byte `k * STEP`.
    chars: Vec<usize>,
}

impl<'a> LineIndex<'a> {
    /// Bytes between two character-count checkpoints.
    const STEP: usize = 256;

    pub fn new(text: &'a str) -> LineIndex<'a> {
        let bytes = text.as_bytes();
        let line_ends = bytes.iter().enumerate().filter(|(_, b)| **b == b'\n');
        let lines = std::iter::once(0)
            .chain(line_ends.map(|(i, _)| i + 1))
            .collect();
        let mut chars = vec![0];
        for chunk in bytes.chunks(Self::STEP) {
            chars.push(chars[chars.len() - 1] + chars_in(chunk));
        }
        LineIndex { text, lines, chars }
    }

    /// The indexed text.
    pub fn text(&self) -> &'a str {
        self.text
    }

    /// [`line_col`] of the indexed text.
    pub fn line_col(&self, offset: usize) -> (usize, usize) {
        let offset = offset.min(self.text.len());
        let line = self.lines.partition_point(|s| *s <= offset);
        let start = self.lines[line - 1];
        (
            line,
            self.chars_before(offset) - self.chars_before(start) + 1,
        )
    }

    fn chars_before(&self, offset: usize) -> usize {
        let k = offset / Self::STEP;
        self.chars[k] + chars_in(&self.text.as_bytes()[k * Self::STEP..offset])
    }
}

/// The source as ariadne should see it. ariadne also breaks lines at `\r`, vertical
/// tab, form feed, U+0085, U+2028 and U+2029, where [`line_col`] (like rustc) counts
/// only `\n`: those characters become spaces of the same byte length, so that the
/// location in the header is the one [`line_col`] gives.
fn display_text(source: &str) -> std::borrow::Cow<'_, str> {
    let is_break = |c: char| {
        matches!(
            c,
            '\r' | '\x0B' | '\x0C' | '\u{85}' | '\u{2028}' | '\u{2029}'
        )
    };
    if !source.contains(is_break) {
        return std::borrow::Cow::Borrowed(source);
    }
    let replaced = source
        .chars()
        .map(|c| match c {
            '\r' | '\x0B' | '\x0C' => ' ',
            '\u{85}' => '\u{a0}',
            '\u{2028}' | '\u{2029}' => '\u{2000}',
            other => other,
        })
        .collect();
    std::borrow::Cow::Owned(replaced)
}

/// The most diagnostics [`render`] shows for one file; the rest are counted. Each shows
/// its whole source line, so without a limit a long line full of errors (a minified or
/// garbage file) would print its own length squared.
pub const MAX_RENDERED: usize = 100;

/// Renders diagnostics as plain text (no colour), each with `file:line:col`, the source
/// line and a caret under the span. Lines carry no trailing spaces. At most
/// [`MAX_RENDERED`] are shown, then a line saying how many more there are.
pub fn render(diagnostics: &[Diagnostic], file_name: &str, source: &str) -> String {
    let mut out = Vec::new();
    // Indexing the lines once serves every diagnostic.
    let display = Source::from(display_text(source));
    for d in diagnostics.iter().take(MAX_RENDERED) {
        render_one(d, file_name, source, &display, &mut out);
    }
    if let Some(more) = diagnostics
        .len()
        .checked_sub(MAX_RENDERED)
        .filter(|n| *n > 0)
    {
        let s = if more == 1 { "" } else { "s" };
        out.extend_from_slice(format!("{file_name}: {more} more error{s} not shown\n").as_bytes());
    }
    // ariadne pads some lines with spaces; drop them so output and snapshots are clean.
    let text = String::from_utf8_lossy(&out);
    let mut trimmed = String::with_capacity(text.len());
    for line in text.lines() {
        trimmed.push_str(line.trim_end());
        trimmed.push('\n');
    }
    trimmed
}

fn render_one<I: AsRef<str>>(
    d: &Diagnostic,
    file_name: &str,
    source: &str,
    display: &Source<I>,
    out: &mut Vec<u8>,
) {
    let clamp = |s: Span| {
        let start = s.start.min(source.len());
        start..s.end.clamp(start, source.len())
    };
    let primary = clamp(d.span);
    let kind = match d.severity {
        Severity::Error => ReportKind::Error,
        Severity::Warning => ReportKind::Warning,
    };
    let mut report = Report::build(kind, (file_name, primary.clone()))
        .with_config(
            Config::default()
                .with_color(false)
                .with_index_type(IndexType::Byte),
        )
        .with_message(&d.message);
    let mut label = Label::new((file_name, primary.clone()));
    if let Some(text) = &d.label {
        label = label.with_message(text);
    }
    // ariadne starts a new section, headed by the primary location again, whenever a
    // label lies above the previous one: ordering the labels by position keeps one
    // section per diagnostic.
    let mut labels = vec![(primary, label)];
    for (span, text) in &d.related {
        let range = clamp(*span);
        labels.push((
            range.clone(),
            Label::new((file_name, range)).with_message(text),
        ));
    }
    labels.sort_by_key(|(range, _)| range.start);
    for (order, (_, label)) in labels.into_iter().enumerate() {
        report = report.with_label(label.with_order(order as i32));
    }
    for note in &d.notes {
        report = report.with_note(note);
    }
    let written = report.finish().write((file_name, display), &mut *out);
    if written.is_err() {
        // Writing to a Vec cannot fail; keep the headline if it somehow does.
        let (line, col) = line_col(source, d.span.start);
        out.extend_from_slice(
            format!("error: {}:{line}:{col}: {}\n", file_name, d.message).as_bytes(),
        );
    }
}
