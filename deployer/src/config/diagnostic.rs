//! Problems found in `cluster.toml`, located by file, line and column, shown the
//! way rustc shows them: the line, a caret under the culprit, and a hint.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::Serialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Severity {
    Error,
    Warning,
}

/// One problem in the file. `span` is a byte range into the source.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    pub severity: Severity,
    pub message: String,
    pub span: Option<Range<usize>>,
    pub hint: Option<String>,
}

impl Diagnostic {
    pub fn error(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            severity: Severity::Error,
            message: message.into(),
            span,
            hint: None,
        }
    }

    pub fn warning(message: impl Into<String>, span: Option<Range<usize>>) -> Self {
        Diagnostic {
            severity: Severity::Warning,
            ..Diagnostic::error(message, span)
        }
    }

    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.hint = Some(hint.into());
        self
    }

    pub fn is_error(&self) -> bool {
        self.severity == Severity::Error
    }
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(source: &str, offset: usize) -> (usize, usize) {
    let offset = floor_char_boundary(source, offset.min(source.len()));
    let before = &source[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let col = source[line_start..offset].chars().count() + 1;
    (line, col)
}

fn floor_char_boundary(s: &str, mut i: usize) -> usize {
    while i > 0 && !s.is_char_boundary(i) {
        i -= 1;
    }
    i
}

/// Diagnostics bound to the file they are about, ready to print.
#[derive(Debug, Clone)]
pub struct Report {
    pub path: PathBuf,
    pub source: String,
    pub diagnostics: Vec<Diagnostic>,
}

#[derive(Serialize)]
pub struct JsonDiagnostic<'a> {
    pub severity: Severity,
    pub message: &'a str,
    pub file: String,
    pub line: Option<usize>,
    pub column: Option<usize>,
    pub hint: Option<&'a str>,
}

impl Report {
    pub fn new(path: &Path, source: &str, diagnostics: Vec<Diagnostic>) -> Self {
        Report {
            path: path.to_path_buf(),
            source: source.to_string(),
            diagnostics,
        }
    }

    pub fn errors(&self) -> impl Iterator<Item = &Diagnostic> {
        self.diagnostics.iter().filter(|d| d.is_error())
    }

    pub fn has_errors(&self) -> bool {
        self.errors().next().is_some()
    }

    pub fn json(&self) -> Vec<JsonDiagnostic<'_>> {
        self.diagnostics
            .iter()
            .map(|d| {
                let lc = d.span.as_ref().map(|s| line_col(&self.source, s.start));
                JsonDiagnostic {
                    severity: d.severity,
                    message: &d.message,
                    file: self.path.display().to_string(),
                    line: lc.map(|l| l.0),
                    column: lc.map(|l| l.1),
                    hint: d.hint.as_deref(),
                }
            })
            .collect()
    }
}

impl fmt::Display for Report {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, d) in self.diagnostics.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write_diagnostic(f, &self.path, &self.source, d)?;
        }
        Ok(())
    }
}

fn write_diagnostic(
    f: &mut fmt::Formatter<'_>,
    path: &Path,
    source: &str,
    d: &Diagnostic,
) -> fmt::Result {
    let label = match d.severity {
        Severity::Error => "error",
        Severity::Warning => "warning",
    };
    writeln!(f, "{label}: {}", d.message)?;
    match &d.span {
        Some(span) => {
            let (line, col) = line_col(source, span.start);
            writeln!(f, "  --> {}:{line}:{col}", path.display())?;
            let text = source.lines().nth(line - 1).unwrap_or("");
            // Long lines (a 5 MB one-liner) are cut around the column.
            let (shown, caret_col) = excerpt(text, col);
            let width = line.to_string().len();
            writeln!(f, "{:width$} |", "")?;
            writeln!(f, "{line:width$} | {shown}")?;
            let len = source
                .get(span.clone())
                .map(|s| s.lines().next().unwrap_or("").chars().count())
                .unwrap_or(1)
                .clamp(1, 60);
            writeln!(
                f,
                "{:width$} | {}{}",
                "",
                " ".repeat(caret_col - 1),
                "^".repeat(len)
            )?;
        }
        None => writeln!(f, "  --> {}", path.display())?,
    }
    if let Some(hint) = &d.hint {
        writeln!(f, "  = hint: {}", hint.replace('\n', "\n          "))?;
    }
    Ok(())
}

/// At most 100 characters of `text` around 1-based column `col`, and where the
/// column falls in the excerpt. Control characters are shown escaped.
fn excerpt(text: &str, col: usize) -> (String, usize) {
    let chars: Vec<char> = text.chars().collect();
    let start = col.saturating_sub(50).min(chars.len());
    let end = (start + 100).min(chars.len());
    let mut shown: String = chars[start..end]
        .iter()
        .map(|c| {
            if c.is_control() && *c != '\t' {
                '\u{fffd}'
            } else {
                *c
            }
        })
        .collect();
    let mut caret = col - start;
    if start > 0 {
        shown.insert(0, '…');
        caret += 1;
    }
    if end < chars.len() {
        shown.push('…');
    }
    (shown, caret.max(1))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn line_and_column_are_one_based() {
        let src = "a = 1\nbb = 2\n";
        assert_eq!(line_col(src, 0), (1, 1));
        assert_eq!(line_col(src, 6), (2, 1));
        assert_eq!(line_col(src, 9), (2, 4));
    }

    #[test]
    fn renders_caret_under_span() {
        let src = "[app]\npool = 3\n";
        let r = Report::new(
            Path::new("cluster.toml"),
            src,
            vec![Diagnostic::error("unknown key `pool`", Some(6..10))
                .with_hint("did you mean `pool_size`?")],
        );
        let text = r.to_string();
        assert!(text.contains("--> cluster.toml:2:1"), "{text}");
        assert!(text.contains("2 | pool = 3\n  | ^^^^\n"), "{text}");
        assert!(text.contains("= hint: did you mean `pool_size`?"), "{text}");
    }
}
