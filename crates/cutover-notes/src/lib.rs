//! cutover notes: release notes, changelog and the advance shipping notice, rendered from minijinja templates.
//!
//! The context a notes template sees is the [`Plan`] — exactly the document `cutover plan --json`
//! prints (with `notes` empty while the notes themselves are rendered) — plus three globals that
//! come from configuration rather than history: `tag` (the next tag name), `date` (`YYYY-MM-DD`,
//! from `SOURCE_DATE_EPOCH` or the newest commit, never the wall clock, so output is deterministic)
//! and `issue_url` (the issue link template, `{number}` substituted).
//!
//! Filters available to templates: `short` (7-character id), `breaking_notes` (a change's migration
//! text: its `BREAKING CHANGE` footers, or its summary when only `!` marked it), `co_authors`
//! (names from `Co-authored-by` footers), `sections` (`changes|sections`: the non-empty groups in
//! notes order as `(key, heading, changes)`) and `issue_link` (a ref as a Markdown link when a link
//! template is configured, else its text) and `link_issues` (the same for every reference inside a text).

pub mod notice;
mod plan;

pub use plan::*;

use minijinja::{Environment, Value};
use std::path::{Path, PathBuf};

/// The default release-notes template (Markdown).
pub const DEFAULT_TEMPLATE: &str = include_str!("templates/notes.md.j2");

/// A template problem, with where it is.
#[derive(Debug, thiserror::Error)]
pub enum NotesError {
    /// The template file cannot be read.
    #[error("{path}: cannot read the template: {detail}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The OS error.
        detail: String,
    },
    /// Syntax or rendering error.
    #[error("{name}:{line}:{column}: template error: {detail}")]
    Template {
        /// The template name (file path for `--template FILE`).
        name: String,
        /// 1-based line.
        line: usize,
        /// 1-based column.
        column: usize,
        /// What minijinja said.
        detail: String,
    },
    /// The context cannot be serialised (a bug, reported rather than hidden).
    #[error("cannot build the template context: {0}")]
    Context(String),
}

/// Configuration the templates need beyond the plan.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RenderOptions {
    /// Issue link template, e.g. `https://github.com/o/r/issues/{number}` (`{id}` works too).
    pub issue_url: Option<String>,
}

/// A compiled notes template.
pub struct Notes {
    env: Environment<'static>,
    name: String,
    source: String,
}

impl std::fmt::Debug for Notes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Notes").field("name", &self.name).finish()
    }
}

fn template_error(name: &str, source: &str, err: &minijinja::Error) -> NotesError {
    let line = err.line().unwrap_or(1);
    let column = err
        .range()
        .map(|r| {
            let start = r.start.min(source.len());
            let line_start = source[..start].rfind('\n').map_or(0, |p| p + 1);
            source[line_start..start].chars().count() + 1
        })
        .unwrap_or(1);
    let detail = match err.detail() {
        Some(d) => format!("{}: {d}", err.kind()),
        None => err.kind().to_string(),
    };
    NotesError::Template {
        name: name.to_owned(),
        line,
        column,
        detail,
    }
}

fn short(value: &str) -> String {
    value.chars().take(7).collect()
}

fn breaking_notes(change: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(footers) = change.get_attr("footers")
        && let Ok(iter) = footers.try_iter()
    {
        for f in iter {
            let token = f
                .get_attr("token")
                .map(|t| t.to_string())
                .unwrap_or_default();
            if token == "BREAKING CHANGE" || token == "BREAKING-CHANGE" {
                out.push(
                    f.get_attr("value")
                        .map(|v| v.to_string())
                        .unwrap_or_default(),
                );
            }
        }
    }
    let breaking = change.get_attr("breaking").is_ok_and(|b| b.is_true());
    if out.is_empty() && breaking {
        out.push(
            change
                .get_attr("summary")
                .map(|s| s.to_string())
                .unwrap_or_default(),
        );
    }
    out
}

fn co_authors(change: &Value) -> Vec<String> {
    let mut out = Vec::new();
    if let Ok(footers) = change.get_attr("footers")
        && let Ok(iter) = footers.try_iter()
    {
        for f in iter {
            let token = f
                .get_attr("token")
                .map(|t| t.to_string())
                .unwrap_or_default();
            if token.eq_ignore_ascii_case("co-authored-by") {
                let value = f
                    .get_attr("value")
                    .map(|v| v.to_string())
                    .unwrap_or_default();
                out.push(cutover_core::commit::parse_person(&value).name);
            }
        }
    }
    out
}

/// An issue URL from the link template: `{number}` and `{id}` (cutover.toml's spelling) both
/// stand for the issue number.
fn issue_link(template: &str, number: &str) -> String {
    template.replace("{number}", number).replace("{id}", number)
}

/// The template environment with cutover's settings and filters.
pub(crate) fn environment(options: &RenderOptions) -> Environment<'static> {
    let mut env = Environment::new();
    env.set_syntax(
        minijinja::syntax::SyntaxConfig::builder()
            .trim_blocks(true)
            .lstrip_blocks(true)
            .keep_trailing_newline(true)
            .build()
            .expect("the default delimiters are a valid syntax"),
    );
    env.set_undefined_behavior(minijinja::UndefinedBehavior::Strict);
    env.add_filter("short", short);
    env.add_filter("breaking_notes", breaking_notes);
    env.add_filter("co_authors", co_authors);
    env.add_filter("sections", sections);
    let issue_url = options.issue_url.clone();
    env.add_filter("issue_link", move |r: Value| -> String {
        let text = r
            .get_attr("text")
            .map(|t| t.to_string())
            .unwrap_or_default();
        let number = r
            .get_attr("number")
            .map(|n| n.to_string())
            .unwrap_or_default();
        match &issue_url {
            Some(url) => format!("[{text}]({})", issue_link(url, &number)),
            None => text,
        }
    });
    let issue_url = options.issue_url.clone();
    env.add_filter("link_issues", move |text: String| -> String {
        let Some(url) = &issue_url else {
            return text;
        };
        let mut out = String::with_capacity(text.len());
        let mut last = 0;
        for (range, r) in cutover_core::commit::issue_ref_spans(&text) {
            out.push_str(&text[last..range.start]);
            out.push_str(&format!(
                "[{}]({})",
                r.text,
                issue_link(url, &r.number.to_string())
            ));
            last = range.end;
        }
        out.push_str(&text[last..]);
        out
    });
    env
}

impl Notes {
    /// The built-in Markdown template.
    pub fn default_markdown(options: &RenderOptions) -> Notes {
        Notes::from_source("default", DEFAULT_TEMPLATE, options)
            .expect("the built-in template compiles (tested)")
    }

    /// A template from a file (`--template FILE`); errors name the file, line and column.
    pub fn from_file(path: &Path, options: &RenderOptions) -> Result<Notes, NotesError> {
        let source = std::fs::read_to_string(path).map_err(|e| NotesError::Read {
            path: path.to_owned(),
            detail: e.to_string(),
        })?;
        Notes::from_source(&path.display().to_string(), &source, options)
    }

    /// A template from text.
    pub fn from_source(
        name: &str,
        source: &str,
        options: &RenderOptions,
    ) -> Result<Notes, NotesError> {
        let mut env = environment(options);
        env.add_template_owned(name.to_owned(), source.to_owned())
            .map_err(|e| template_error(name, source, &e))?;
        Ok(Notes {
            env,
            name: name.to_owned(),
            source: source.to_owned(),
        })
    }

    /// Renders the notes of one release from a plan (its `notes` field is ignored).
    pub fn render(&self, plan: &Plan, header: &SectionHeader) -> Result<String, NotesError> {
        // Serialised straight into minijinja values (no JSON detour): the same shape as the
        // plan document, with `notes` empty, plus the heading globals.
        let ctx = Context {
            current: &plan.current,
            next: &plan.next,
            changes: &plan.changes,
            unconventional: &plan.unconventional,
            notes: "",
            tag: &header.tag,
            date: &header.date,
            title: &header.title,
        };
        let template = self
            .env
            .get_template(&self.name)
            .map_err(|e| template_error(&self.name, &self.source, &e))?;
        let mut out = template
            .render(Value::from(minijinja::value::Serde(&ctx)))
            .map_err(|e| template_error(&self.name, &self.source, &e))?;
        // One trailing newline whatever the template's whitespace does, so notes compose cleanly.
        out.truncate(out.trim_end().len());
        out.push('\n');
        Ok(out)
    }

    /// A changelog: a title, then one section per release (newest first), each rendered with this template.
    pub fn render_changelog(
        &self,
        sections: &[(Plan, SectionHeader)],
    ) -> Result<String, NotesError> {
        let rendered = sections
            .iter()
            .map(|(plan, header)| self.render(plan, header))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(assemble_changelog(rendered.iter().map(String::as_str)))
    }
}

/// What a notes template sees: the plan document's fields plus the heading globals.
#[derive(serde::Serialize)]
struct Context<'a> {
    current: &'a Option<Current>,
    next: &'a NextRelease,
    changes: &'a [Change],
    unconventional: &'a [Unconventional],
    notes: &'a str,
    tag: &'a str,
    date: &'a str,
    title: &'a str,
}

/// The notes sections in order, with their headings.
pub const SECTIONS: [(&str, &str); 6] = [
    ("breaking", "Breaking changes"),
    ("features", "Features"),
    ("fixes", "Bug fixes"),
    ("performance", "Performance"),
    ("reverts", "Reverts"),
    ("other", "Other"),
];

/// `changes|sections`: the non-empty sections in order as `(key, heading, changes)`, in one pass.
fn sections(changes: &Value) -> Vec<Value> {
    let mut buckets: Vec<Vec<Value>> = vec![Vec::new(); SECTIONS.len()];
    if let Ok(iter) = changes.try_iter() {
        for change in iter {
            let group = change.get_attr("group").unwrap_or_default();
            if let Some(i) = SECTIONS
                .iter()
                .position(|(key, _)| group.as_str() == Some(key))
            {
                buckets[i].push(change);
            }
        }
    }
    SECTIONS
        .iter()
        .zip(buckets)
        .filter(|(_, items)| !items.is_empty())
        .map(|((key, heading), items)| {
            Value::from(vec![
                Value::from(*key),
                Value::from(*heading),
                Value::from(items),
            ])
        })
        .collect()
}

/// What a section's heading shows.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SectionHeader {
    /// The tag (`v1.3.0`), or `Unreleased`.
    pub tag: String,
    /// The heading text (`1.3.0`, `Unreleased`).
    pub title: String,
    /// `YYYY-MM-DD`.
    pub date: String,
}

/// A changelog from sections already rendered (newest first): the title, then each section.
pub fn assemble_changelog<'a>(sections: impl IntoIterator<Item = &'a str>) -> String {
    let mut out = String::from("# Changelog\n");
    for section in sections {
        out.push('\n');
        out.push_str(section.trim_end());
        out.push('\n');
    }
    out
}

/// Puts a new section at the top of an existing `CHANGELOG.md` (below its `# ` title if it has
/// one), or bootstraps a changelog.
pub fn prepend_section(existing: Option<&str>, section: &str) -> String {
    let section = section.trim_end();
    match existing {
        None => format!("# Changelog\n\n{section}\n"),
        Some(text) => {
            if let Some(rest) = text.strip_prefix("# ") {
                let (title, after) = rest.split_once('\n').unwrap_or((rest, ""));
                format!(
                    "# {title}\n\n{section}\n\n{}",
                    after.trim_start_matches('\n')
                )
                .trim_end()
                .to_owned()
                    + "\n"
            } else {
                format!("{section}\n\n{text}")
            }
        }
    }
}

#[cfg(test)]
mod tests;
