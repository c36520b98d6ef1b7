//! Configuration errors: where (file, line, column or the override variable), what was expected,
//! a rustc-like snippet with a caret underline, and a hint.

use std::fmt;
use std::ops::Range;
use std::path::PathBuf;

use toml::Spanned;
use toml::de::{DeTable, DeValue};

use crate::types::HINT_MARKER;

/// Everything that can go wrong loading `cutover.toml`.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The configuration file does not exist.
    #[error("configuration file {} not found", path.display())]
    NotFound {
        /// The path that was looked for.
        path: PathBuf,
    },
    /// The configuration file could not be read.
    #[error("cannot read configuration file {}: {source}", path.display())]
    Read {
        /// The file.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
    /// The configuration (or an override) is malformed or invalid.
    #[error("{0}")]
    Invalid(Box<Diagnostic>),
}

impl ConfigError {
    /// A hint on how to fix it, if there is one.
    pub fn hint(&self) -> Option<String> {
        match self {
            ConfigError::NotFound { .. } => {
                Some("run `cutover init` to create one, or pass `--project DIR`".into())
            }
            ConfigError::Read { .. } => None,
            ConfigError::Invalid(d) => d.hint.clone(),
        }
    }

    /// File, line and column (1-based) of the problem, when it is in a file.
    pub fn location(&self) -> Option<(PathBuf, usize, usize)> {
        match self {
            ConfigError::Invalid(d) => match &d.origin {
                Origin::File {
                    path, line, column, ..
                } => Some((path.clone(), *line, *column)),
                Origin::Override { .. } => None,
            },
            _ => None,
        }
    }

    /// The diagnostic, for an invalid configuration.
    pub fn diagnostic(&self) -> Option<&Diagnostic> {
        match self {
            ConfigError::Invalid(d) => Some(d),
            _ => None,
        }
    }
}

/// The kind of problem.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ErrorKind {
    /// Not valid TOML.
    Syntax,
    /// A key that the configuration does not have.
    UnknownKey,
    /// A required key is missing.
    MissingKey,
    /// A value of the wrong type or an invalid value.
    InvalidValue,
    /// A rule across values is broken (e.g. `promote_from` names no environment).
    Semantic,
    /// An environment override is malformed.
    Override,
}

/// Where a problem is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// In the configuration file.
    File {
        /// The file.
        path: PathBuf,
        /// 1-based line.
        line: usize,
        /// 1-based column (in characters).
        column: usize,
        /// The text of that line.
        line_text: String,
        /// Characters underlined from `column`.
        width: usize,
    },
    /// In a `CUTOVER_*__*` environment override.
    Override {
        /// The variable's name.
        var: String,
        /// Its value.
        value: String,
    },
}

/// A located, explained configuration problem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Diagnostic {
    /// The kind of problem.
    pub kind: ErrorKind,
    /// The one-line summary.
    pub message: String,
    /// The dotted key path the problem is at (e.g. `environments.production.promote_from`), if known.
    pub key: Option<String>,
    /// What was expected, shown under the caret.
    pub label: Option<String>,
    /// How to fix it.
    pub hint: Option<String>,
    /// Where.
    pub origin: Origin,
}

impl fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        writeln!(f, "{}", self.message)?;
        let label = self.label.as_deref().unwrap_or("");
        match &self.origin {
            Origin::File {
                path,
                line,
                column,
                line_text,
                width,
            } => {
                let num = line.to_string();
                let pad = " ".repeat(num.len());
                writeln!(f, "{pad}--> {}:{line}:{column}", path.display())?;
                writeln!(f, "{pad} |")?;
                writeln!(f, "{num} | {line_text}")?;
                // Tabs are kept so that the caret lines up however the terminal renders them.
                let lead: String = line_text
                    .chars()
                    .take(column.saturating_sub(1))
                    .map(|c| if c == '\t' { '\t' } else { ' ' })
                    .collect();
                let carets = "^".repeat((*width).max(1));
                let tail = if label.is_empty() {
                    String::new()
                } else {
                    format!(" {label}")
                };
                write!(f, "{pad} | {lead}{carets}{tail}")
            }
            Origin::Override { var, value } => {
                writeln!(f, "  --> environment variable {var}")?;
                writeln!(f, "   |")?;
                let shown = format!("{var}={value}");
                writeln!(f, "   | {shown}")?;
                let carets = "^".repeat(shown.chars().count().max(1));
                let tail = if label.is_empty() {
                    String::new()
                } else {
                    format!(" {label}")
                };
                write!(f, "   | {carets}{tail}")
            }
        }
    }
}

/// A segment of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) enum Seg {
    Key(String),
    Index(usize),
}

pub(crate) fn path_string(path: &[Seg]) -> String {
    let mut s = String::new();
    for seg in path {
        match seg {
            Seg::Key(k) => {
                if !s.is_empty() {
                    s.push('.');
                }
                if k.chars()
                    .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == '-')
                    && !k.is_empty()
                {
                    s.push_str(k);
                } else {
                    s.push_str(&format!("{k:?}"));
                }
            }
            Seg::Index(i) => s.push_str(&format!("[{i}]")),
        }
    }
    s
}

/// Maps byte spans to places: the file, or an environment override whose synthetic span lies
/// past the end of the file.
pub(crate) struct SourceMap<'a> {
    pub path: PathBuf,
    pub src: &'a str,
    /// (span, variable, value) of each applied override.
    pub overrides: Vec<(Range<usize>, String, String)>,
}

impl SourceMap<'_> {
    pub(crate) fn origin(&self, span: Option<Range<usize>>) -> Origin {
        let span = span.unwrap_or(0..0);
        if let Some((_, var, value)) = self
            .overrides
            .iter()
            .find(|(r, _, _)| r.start <= span.start && span.start < r.end)
        {
            return Origin::Override {
                var: var.clone(),
                value: value.clone(),
            };
        }
        let start = span.start.min(self.src.len());
        // Step back to a char boundary: spans from the parser always are, clamped ones may not be.
        let start = (0..=start)
            .rev()
            .find(|i| self.src.is_char_boundary(*i))
            .unwrap_or(0);
        let before = &self.src[..start];
        let line = before.matches('\n').count() + 1;
        let line_start = before.rfind('\n').map_or(0, |i| i + 1);
        let line_end = self.src[start..]
            .find('\n')
            .map_or(self.src.len(), |i| start + i);
        let line_text = self.src[line_start..line_end].trim_end_matches('\r');
        let column = self.src[line_start..start].chars().count() + 1;
        let end = span.end.clamp(start, line_end);
        let end = (end..=line_end)
            .find(|i| self.src.is_char_boundary(*i))
            .unwrap_or(line_end);
        let width = self.src[start..end].chars().count().max(1);
        Origin::File {
            path: self.path.clone(),
            line,
            column,
            line_text: line_text.to_string(),
            width,
        }
    }

    pub(crate) fn diagnostic(
        &self,
        kind: ErrorKind,
        message: &str,
        span: Option<Range<usize>>,
        key: Option<String>,
        label: Option<String>,
        hint: Option<String>,
    ) -> ConfigError {
        let origin = self.origin(span);
        let message = match &origin {
            Origin::Override { var, .. } => {
                format!("invalid configuration override {var}: {message}")
            }
            Origin::File { .. } => format!("invalid configuration: {message}"),
        };
        ConfigError::Invalid(Box::new(Diagnostic {
            kind,
            message,
            key,
            label,
            hint,
            origin,
        }))
    }
}

// ---------------------------------------------------------------------------------------------
// Locating key paths and spans in the parsed document
// ---------------------------------------------------------------------------------------------

/// The span of the value at `path` (or of the deepest existing ancestor).
pub(crate) fn span_of(root: &Spanned<DeTable<'_>>, path: &[Seg]) -> Option<Range<usize>> {
    let mut best: Option<Range<usize>> = None;
    let mut table: Option<&DeTable<'_>> = Some(root.get_ref());
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    for seg in path {
        let next = match (seg, table, value) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Index(i), None, Some(v)) => match v.get_ref() {
                DeValue::Array(a) => a.get(*i),
                _ => None,
            },
            _ => None,
        };
        let Some(next) = next else { break };
        best = Some(next.span());
        value = Some(next);
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    best.or_else(|| Some(root.span()))
}

/// The key path of the key or value whose span is `span` (deepest match).
pub(crate) fn path_of_span(root: &DeTable<'_>, span: &Range<usize>) -> Option<(Vec<Seg>, bool)> {
    fn walk_table(
        t: &DeTable<'_>,
        span: &Range<usize>,
        prefix: &mut Vec<Seg>,
    ) -> Option<(Vec<Seg>, bool)> {
        for (k, v) in t.iter() {
            prefix.push(Seg::Key(k.get_ref().to_string()));
            if k.span() == *span {
                let found = prefix.clone();
                prefix.pop();
                return Some((found, true));
            }
            if let Some(found) = walk_value(v, span, prefix) {
                prefix.pop();
                return Some(found);
            }
            prefix.pop();
        }
        None
    }
    fn walk_value(
        v: &Spanned<DeValue<'_>>,
        span: &Range<usize>,
        prefix: &mut Vec<Seg>,
    ) -> Option<(Vec<Seg>, bool)> {
        let deeper = match v.get_ref() {
            DeValue::Table(t) => walk_table(t, span, prefix),
            DeValue::Array(a) => {
                let mut found = None;
                for (i, item) in a.iter().enumerate() {
                    prefix.push(Seg::Index(i));
                    found = walk_value(item, span, prefix);
                    prefix.pop();
                    if found.is_some() {
                        break;
                    }
                }
                found
            }
            _ => None,
        };
        if deeper.is_some() {
            return deeper;
        }
        if v.span() == *span {
            return Some((prefix.clone(), false));
        }
        None
    }
    walk_table(root, span, &mut Vec::new())
}

// ---------------------------------------------------------------------------------------------
// Turning serde/toml messages into explained diagnostics
// ---------------------------------------------------------------------------------------------

/// The names between backticks in `s`, in order.
fn backticked(s: &str) -> Vec<String> {
    s.split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, p)| p.to_string())
        .collect()
}

/// "did you mean `x`?" for the closest of `candidates`, when it is close enough.
pub(crate) fn suggest(word: &str, candidates: &[String]) -> Option<String> {
    let lower = word.to_ascii_lowercase();
    candidates
        .iter()
        .map(|c| (strsim::jaro_winkler(&lower, &c.to_ascii_lowercase()), c))
        .filter(|(score, _)| *score >= 0.8)
        .max_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, c)| format!("did you mean `{c}`?"))
}

fn list(names: &[String]) -> String {
    names
        .iter()
        .map(|n| format!("`{n}`"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// When an error about one element of an array is reported at the whole array, points at the
/// element whose text the message quotes.
fn narrow_to_item(
    root: &Spanned<DeTable<'_>>,
    span: Option<Range<usize>>,
    message: &str,
) -> Option<Range<usize>> {
    let s = span?;
    let Some((path, false)) = path_of_span(root.get_ref(), &s) else {
        return Some(s);
    };
    let mut value: Option<&Spanned<DeValue<'_>>> = None;
    let mut table = Some(root.get_ref());
    for seg in &path {
        let next = match (seg, table, value) {
            (Seg::Key(k), Some(t), _) => t.get(k.as_str()),
            (Seg::Index(i), _, Some(v)) => match v.get_ref() {
                DeValue::Array(a) => a.get(*i),
                _ => None,
            },
            _ => None,
        };
        let Some(next) = next else { return Some(s) };
        value = Some(next);
        table = match next.get_ref() {
            DeValue::Table(t) => Some(t),
            _ => None,
        };
    }
    if let Some(DeValue::Array(items)) = value.map(|v| v.get_ref()) {
        for item in items.iter() {
            if let DeValue::String(text) = item.get_ref()
                && message.contains(&format!("`{text}`"))
            {
                return Some(item.span());
            }
        }
    }
    Some(s)
}

/// serde's names for what it expected, in the words of a TOML user.
fn humanize_expected(e: &str) -> String {
    let e = e.trim();
    match e {
        "u8" | "u16" | "u32" | "u64" | "usize" => "a non-negative integer".into(),
        "i8" | "i16" | "i32" | "i64" | "isize" => "an integer".into(),
        "f32" | "f64" => "a number".into(),
        "a sequence" => "an array".into(),
        "a map" => "a table".into(),
        _ if e.starts_with("struct ") => "a table".into(),
        _ if e.starts_with("a sequence") => e.replacen("a sequence", "an array", 1),
        _ => e.to_string(),
    }
}

fn humanize_found(f: &str) -> String {
    f.replacen("sequence", "array", 1)
        .replacen("map", "table", 1)
}

/// The name of the table at `path` for messages: `[project]`, or `checks[0]` inside arrays.
fn table_name(path: &[Seg]) -> String {
    if path.iter().any(|s| matches!(s, Seg::Index(_))) {
        format!("`{}`", path_string(path))
    } else {
        format!("`[{}]`", path_string(path))
    }
}

/// Explains a deserialization error of the parsed document.
pub(crate) fn explain(
    map: &SourceMap<'_>,
    root: &Spanned<DeTable<'_>>,
    err: &toml::de::Error,
) -> ConfigError {
    let raw = err.message().trim().to_string();
    let span = narrow_to_item(root, err.span(), &raw);
    let (msg, mut hint) = match raw.split_once(HINT_MARKER) {
        Some((m, h)) => (m.trim().to_string(), Some(h.trim().to_string())),
        None => (raw.clone(), None),
    };
    let located = span.as_ref().and_then(|s| path_of_span(root.get_ref(), s));
    let key_path = located.as_ref().map(|(p, _)| p.clone());
    let key = key_path.as_ref().map(|p| path_string(p));
    let at = |p: &Option<Vec<Seg>>| -> String {
        match p {
            Some(p) if !p.is_empty() => format!(" for `{}`", path_string(p)),
            _ => String::new(),
        }
    };

    if let Some(rest) = msg.strip_prefix("unknown field ") {
        let names = backticked(rest);
        let (unknown, expected) = match names.split_first() {
            Some((u, e)) => (u.clone(), e.to_vec()),
            None => (String::new(), Vec::new()),
        };
        let table = match &key_path {
            Some(p) if p.len() > 1 => format!(" in {}", table_name(&p[..p.len() - 1])),
            _ => " at the top level".to_string(),
        };
        let label = if expected.is_empty() {
            "this table takes no keys".to_string()
        } else {
            format!("expected one of {}", list(&expected))
        };
        if hint.is_none() {
            hint = suggest(&unknown, &expected);
        }
        return map.diagnostic(
            ErrorKind::UnknownKey,
            &format!("unknown key `{unknown}`{table}"),
            span,
            key,
            Some(label),
            hint,
        );
    }
    if let Some(rest) = msg.strip_prefix("unknown variant ") {
        let names = backticked(rest);
        let (unknown, expected) = match names.split_first() {
            Some((u, e)) => (u.clone(), e.to_vec()),
            None => (String::new(), Vec::new()),
        };
        if hint.is_none() {
            hint = suggest(&unknown, &expected);
        }
        return map.diagnostic(
            ErrorKind::InvalidValue,
            &format!("invalid value `{unknown}`{}", at(&key_path)),
            span,
            key,
            Some(format!("expected one of {}", list(&expected))),
            hint,
        );
    }
    if let Some(rest) = msg.strip_prefix("missing field ") {
        let names = backticked(rest);
        let field = names.first().cloned().unwrap_or_default();
        let table = match &key_path {
            Some(p) if !p.is_empty() => table_name(p),
            _ => "the configuration".to_string(),
        };
        let full = match &key_path {
            Some(p) if !p.is_empty() => format!("{}.{field}", path_string(p)),
            _ => field.clone(),
        };
        return map.diagnostic(
            ErrorKind::MissingKey,
            &format!("missing key `{field}` in {table}"),
            span,
            Some(full),
            Some(format!("`{field}` is required here")),
            hint,
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid type: ") {
        // "string \"x\", expected a boolean"
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return map.diagnostic(
            ErrorKind::InvalidValue,
            &format!(
                "wrong type{}: found {}",
                at(&key_path),
                humanize_found(found)
            ),
            span,
            key,
            Some(format!("expected {}", humanize_expected(expected))),
            hint,
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid value: ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return map.diagnostic(
            ErrorKind::InvalidValue,
            &format!("invalid value{}: {found}", at(&key_path)),
            span,
            key,
            Some(format!("expected {}", humanize_expected(expected))),
            hint,
        );
    }
    if let Some(rest) = msg.strip_prefix("invalid length ") {
        let (found, expected) = rest.split_once(", expected ").unwrap_or((rest, ""));
        return map.diagnostic(
            ErrorKind::InvalidValue,
            &format!("wrong number of items{}: {found}", at(&key_path)),
            span,
            key,
            Some(format!("expected {expected}")),
            hint,
        );
    }
    map.diagnostic(
        ErrorKind::InvalidValue,
        &format!("invalid value{}", at(&key_path)),
        span,
        key,
        Some(msg),
        hint,
    )
}

/// Explains a TOML syntax error.
pub(crate) fn syntax(map: &SourceMap<'_>, err: &toml::de::Error) -> ConfigError {
    let msg = err.message().trim();
    let (what, expected) = match msg.split_once(", expected ") {
        Some((w, e)) => (w.to_string(), Some(format!("expected {e}"))),
        None => (msg.to_string(), None),
    };
    let hint = if what.contains("duplicate key") {
        Some("each key may appear once per table; remove or rename one of them".to_string())
    } else if what.contains("string") && msg.contains('"') {
        Some("strings are written in double quotes, e.g. name = \"hello\"".to_string())
    } else {
        None
    };
    map.diagnostic(
        ErrorKind::Syntax,
        &format!("TOML syntax error: {what}"),
        err.span(),
        None,
        expected.or_else(|| Some(what.clone())),
        hint,
    )
}
