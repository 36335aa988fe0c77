//! Config errors, rendered in one place: `file:line:column: error: message`,
//! then the source line with a caret under the offending span.

use std::fmt;
use std::ops::Range;
use std::path::{Path, PathBuf};

/// One problem in the file; `span` is a byte range into its text.
#[derive(Debug, Clone)]
pub struct Diagnostic {
    pub span: Option<Range<usize>>,
    pub message: String,
}

impl Diagnostic {
    pub fn at(span: Range<usize>, message: impl Into<String>) -> Self {
        Diagnostic {
            span: Some(span),
            message: message.into(),
        }
    }
}

/// Everything wrong with a services.toml, or why none could be read.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("no {name} found in {start} or any parent folder (give one with -f/--file or FPCTL_FILE)", start = start.display())]
    NotFound { start: PathBuf, name: &'static str },
    #[error("{}: cannot read: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("env file: {0}")]
    EnvFile(#[source] super::dotenv::DotenvError),
    #[error("{}", render(path, text, diagnostics))]
    Invalid {
        path: PathBuf,
        text: String,
        diagnostics: Vec<Diagnostic>,
    },
}

fn render(path: &Path, text: &str, diagnostics: &[Diagnostic]) -> String {
    let shown = display_path(path);
    let mut out = String::new();
    for (i, d) in diagnostics.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        let (line, col) = d
            .span
            .as_ref()
            .map(|s| line_col(text, s.start))
            .unwrap_or((1, 1));
        out.push_str(&format!("{shown}:{line}:{col}: error: {}", d.message));
        if let Some(span) = &d.span {
            out.push_str(&snippet(text, span.clone(), line));
        }
    }
    if diagnostics.len() > 1 {
        out.push_str(&format!("\n{} errors in {shown}", diagnostics.len()));
    }
    out
}

/// The lines of `text` that `span` covers, with carets under it (nothing
/// when there is no source text to show).
fn snippet(text: &str, span: Range<usize>, line: usize) -> String {
    use annotate_snippets::{AnnotationKind, Group, Level, Renderer, Snippet};
    let floor = |mut i: usize| {
        i = i.min(text.len());
        while !text.is_char_boundary(i) {
            i -= 1;
        }
        i
    };
    let (start, end) = (floor(span.start), floor(span.end.max(span.start)));
    // Only the lines the span touches (at most a few), not the whole file.
    let first = text[..start].rfind('\n').map_or(0, |i| i + 1);
    let last = text[end..].find('\n').map_or(text.len(), |i| end + i);
    let last = text[first..last]
        .match_indices('\n')
        .nth(4)
        .map_or(last, |(i, _)| first + i);
    let source = &text[first..last];
    if source.trim().is_empty() {
        return String::new();
    }
    let local = (start - first)..(end.min(last) - first);
    let report = [Group::with_level(Level::ERROR).element(
        Snippet::source(source)
            .line_start(line)
            .annotation(AnnotationKind::Primary.span(local)),
    )];
    format!("\n{}", Renderer::plain().render(&report))
}

/// 1-based line and column (in characters) of a byte offset.
pub fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let mut offset = offset.min(text.len());
    while !text.is_char_boundary(offset) {
        offset -= 1;
    }
    let before = &text[..offset];
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map(|i| i + 1).unwrap_or(0);
    let col = before[line_start..].chars().count() + 1;
    (line, col)
}

/// The path relative to the current directory when it is below it.
fn display_path(path: &Path) -> String {
    std::env::current_dir()
        .ok()
        .and_then(|cwd| path.strip_prefix(cwd).ok().map(Path::to_path_buf))
        .filter(|p| !p.as_os_str().is_empty())
        .unwrap_or_else(|| path.to_path_buf())
        .display()
        .to_string()
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}
