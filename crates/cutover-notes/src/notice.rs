//! The advance shipping notice: the draft notes of the coming release, sent before it ships, with
//! slots for the bill-of-materials diff and new vulnerabilities that the BOM and vulnerability
//! work fills (`None` renders as "not computed yet", an empty list as "none").

use crate::{Change, NotesError, Plan, RenderOptions, environment, template_error};
use serde::{Deserialize, Serialize};

const MARKDOWN: &str = include_str!("templates/notice.md.j2");
const HTML: &str = include_str!("templates/notice.html.j2");

/// A component (dependency) named in a BOM diff.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Component {
    /// Package name.
    pub name: String,
    /// Version.
    pub version: String,
}

/// A component whose version changed.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ComponentChange {
    /// Package name.
    pub name: String,
    /// Old version.
    pub from: String,
    /// New version.
    pub to: String,
}

/// The bill-of-materials difference between the live release and this one.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct BomDiff {
    /// New dependencies.
    pub added: Vec<Component>,
    /// Dropped dependencies.
    pub removed: Vec<Component>,
    /// Version changes.
    pub changed: Vec<ComponentChange>,
}

/// A vulnerability that this release would introduce.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Vulnerability {
    /// Advisory id (`GHSA-…`, `RUSTSEC-…`).
    pub id: String,
    /// Affected package.
    pub package: String,
    /// Affected version.
    pub version: String,
    /// Severity, if known.
    pub severity: Option<String>,
    /// One-line summary.
    pub summary: Option<String>,
    /// First fixed version, if any.
    pub fixed_in: Option<String>,
}

/// The notice's content (also its JSON form).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Notice {
    /// Project name.
    pub name: String,
    /// Version to ship.
    pub version: String,
    /// Its tag.
    pub tag: String,
    /// When the notice was drafted (RFC 3339; the caller decides the clock).
    pub drafted: String,
    /// Expected deployment date, if known.
    pub eta: Option<String>,
    /// Where to try it early (the staging URL).
    pub early_access: Option<String>,
    /// The changes, breaking ones first.
    pub changes: Vec<Change>,
    /// BOM diff slot.
    pub bom_diff: Option<BomDiff>,
    /// New vulnerabilities slot.
    pub vulnerabilities: Option<Vec<Vulnerability>>,
}

/// Output format of a notice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum NoticeFormat {
    /// Markdown.
    Markdown,
    /// A standalone HTML page (values escaped).
    Html,
    /// The [`Notice`] as pretty JSON.
    Json,
}

impl Notice {
    /// A notice from a plan; breaking changes go first, the rest keep the plan's order.
    pub fn from_plan(
        plan: &Plan,
        name: &str,
        tag: &str,
        drafted: &str,
        eta: Option<String>,
        early_access: Option<String>,
    ) -> Notice {
        let mut changes = plan.changes.clone();
        changes.sort_by_key(|c| !c.breaking);
        Notice {
            name: name.to_owned(),
            version: plan.next.version.clone(),
            tag: tag.to_owned(),
            drafted: drafted.to_owned(),
            eta,
            early_access,
            changes,
            bom_diff: None,
            vulnerabilities: None,
        }
    }

    /// Renders the notice.
    pub fn render(
        &self,
        format: NoticeFormat,
        options: &RenderOptions,
    ) -> Result<String, NotesError> {
        let (name, source) = match format {
            NoticeFormat::Json => {
                let mut out = serde_json::to_string_pretty(self)
                    .map_err(|e| NotesError::Context(e.to_string()))?;
                out.push('\n');
                return Ok(out);
            }
            NoticeFormat::Markdown => ("notice.md", MARKDOWN),
            // The `.html` name turns on minijinja's HTML auto-escaping.
            NoticeFormat::Html => ("notice.html", HTML),
        };
        let mut env = environment(options);
        env.add_template(name, source)
            .map_err(|e| template_error(name, source, &e))?;
        let template = env
            .get_template(name)
            .map_err(|e| template_error(name, source, &e))?;
        template
            .render(minijinja::Value::from(minijinja::value::Serde(self)))
            .map_err(|e| template_error(name, source, &e))
    }
}
