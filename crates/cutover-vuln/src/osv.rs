//! The OSV schema (1.7) as far as matching needs it, and the checks that make an advisory usable.
//!
//! Fields the matcher does not use (`details`, `credits`, `database_specific`,
//! `ecosystem_specific`) are either kept opaque or ignored; unknown fields are ignored.

use crate::severity::{self, Score};
use crate::version::{self, Scheme};
use serde::{Deserialize, Serialize};

/// One OSV advisory.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Advisory {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub schema_version: Option<String>,
    pub id: String,
    /// RFC 3339; required by the schema, tolerated when missing (empty).
    #[serde(default)]
    pub modified: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub published: Option<String>,
    /// When set, the advisory was retracted and must not produce findings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub withdrawn: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub aliases: Vec<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub related: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub summary: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub details: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub affected: Vec<Affected>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub references: Vec<Reference>,
    /// Opaque; not used for matching. The RustSec converter records `informational` here.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub database_specific: Option<serde_json::Value>,
}

/// A severity entry: `type` is `CVSS_V2`, `CVSS_V3`, `CVSS_V4`, `Ubuntu`, ...
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Severity {
    #[serde(rename = "type")]
    pub kind: String,
    pub score: String,
}

/// A reference link.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Reference {
    #[serde(rename = "type")]
    pub kind: String,
    pub url: String,
}

/// One affected package with its ranges and explicit versions.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Affected {
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub package: Option<Package>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub severity: Vec<Severity>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub ranges: Vec<Range>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub versions: Vec<String>,
}

/// The package an `affected` entry is about.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Package {
    pub ecosystem: String,
    pub name: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub purl: Option<String>,
}

/// A range of affected versions, given by events.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Range {
    /// `SEMVER`, `ECOSYSTEM` or `GIT` (other values are rejected by [`Advisory::validate`]).
    #[serde(rename = "type")]
    pub kind: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repo: Option<String>,
    #[serde(default)]
    pub events: Vec<Event>,
}

/// The kinds of range this crate evaluates.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RangeKind {
    Semver,
    Ecosystem,
    /// Commit ranges: kept, reported as not evaluated.
    Git,
}

impl Range {
    /// The range's kind, `None` for a type the schema does not define.
    pub fn range_kind(&self) -> Option<RangeKind> {
        match self.kind.as_str() {
            "SEMVER" => Some(RangeKind::Semver),
            "ECOSYSTEM" => Some(RangeKind::Ecosystem),
            "GIT" => Some(RangeKind::Git),
            _ => None,
        }
    }
}

/// One range event (a map with exactly one of the four keys).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", try_from = "RawEvent")]
pub enum Event {
    /// Affected from this version on (`"0"`: from the beginning).
    Introduced(String),
    /// Not affected from this version on.
    Fixed(String),
    /// Affected up to and including this version.
    LastAffected(String),
    /// Versions from this one on are outside the range.
    Limit(String),
}

/// The event as written: YAML deserialisers read externally tagged enums as tags, so events are
/// read as plain maps and checked here.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawEvent {
    introduced: Option<String>,
    fixed: Option<String>,
    last_affected: Option<String>,
    limit: Option<String>,
}

impl TryFrom<RawEvent> for Event {
    type Error = String;
    fn try_from(r: RawEvent) -> Result<Self, String> {
        match (r.introduced, r.fixed, r.last_affected, r.limit) {
            (Some(v), None, None, None) => Ok(Event::Introduced(v)),
            (None, Some(v), None, None) => Ok(Event::Fixed(v)),
            (None, None, Some(v), None) => Ok(Event::LastAffected(v)),
            (None, None, None, Some(v)) => Ok(Event::Limit(v)),
            _ => {
                Err("an event needs exactly one of introduced, fixed, last_affected, limit".into())
            }
        }
    }
}

impl Event {
    /// The event's version string.
    pub fn version(&self) -> &str {
        match self {
            Event::Introduced(v) | Event::Fixed(v) | Event::LastAffected(v) | Event::Limit(v) => v,
        }
    }
}

impl Affected {
    /// The version scheme a range of this entry is evaluated with, if the ecosystem is known.
    pub fn scheme_for(&self, kind: RangeKind) -> Option<Scheme> {
        let eco = Scheme::for_osv_ecosystem(&self.package.as_ref()?.ecosystem)?;
        match kind {
            // SEMVER ranges use SemVer whatever the ecosystem (Go keeps its `v` tolerance).
            RangeKind::Semver if eco == Scheme::Go => Some(Scheme::Go),
            RangeKind::Semver => Some(Scheme::SemVer),
            RangeKind::Ecosystem => Some(eco),
            RangeKind::Git => None,
        }
    }
}

impl Advisory {
    /// Checks what matching relies on; the message says what is wrong and where in the advisory.
    ///
    /// Rejected: an empty id; an unknown range type; a range without events or without an
    /// `introduced`; events whose versions go backwards in the order given; an event version that
    /// does not parse in its ecosystem (checked for the ecosystems this crate orders). Listed
    /// `versions` are not checked: real data lists old tags that no grammar accepts, and they are
    /// matched by exact string as well.
    pub fn validate(&self) -> Result<(), String> {
        if self.id.trim().is_empty() {
            return Err("`id` is empty".into());
        }
        for (ai, aff) in self.affected.iter().enumerate() {
            let at = |what: String| format!("affected[{ai}]: {what}");
            if let Some(p) = &aff.package
                && (p.name.trim().is_empty() || p.ecosystem.trim().is_empty())
            {
                return Err(at("package needs both `ecosystem` and `name`".into()));
            }
            for (ri, range) in aff.ranges.iter().enumerate() {
                let at = |what: String| at(format!("ranges[{ri}]: {what}"));
                let Some(kind) = range.range_kind() else {
                    return Err(at(format!(
                        "unknown range type `{}` (expected SEMVER, ECOSYSTEM or GIT)",
                        range.kind
                    )));
                };
                if range.events.is_empty() {
                    return Err(at("no events".into()));
                }
                if !range
                    .events
                    .iter()
                    .any(|e| matches!(e, Event::Introduced(_)))
                {
                    return Err(at("no `introduced` event".into()));
                }
                let Some(scheme) = aff.scheme_for(kind) else {
                    continue;
                };
                // Events may be listed in any order (evaluation sorts them), but a `fixed` or
                // `last_affected` right after an `introduced` closes that introduction: one
                // lower than it is out of order (the range would close before it opens).
                let mut open: Option<(usize, version::Version)> = None;
                for (ei, ev) in range.events.iter().enumerate() {
                    let parsed = match ev {
                        Event::Introduced(v) if v == "0" => None,
                        Event::Limit(v) if v == "*" => None,
                        _ => Some(
                            version::parse(scheme, ev.version())
                                .map_err(|e| at(format!("events[{ei}]: {e}")))?,
                        ),
                    };
                    match ev {
                        Event::Introduced(_) => open = parsed.map(|p| (ei, p)),
                        Event::Fixed(_) | Event::LastAffected(_) => {
                            if let (Some((oi, o)), Some(p)) = (&open, &parsed) {
                                let bad = match ev {
                                    Event::Fixed(_) => p <= o,
                                    _ => p < o,
                                };
                                if bad {
                                    return Err(at(format!(
                                        "events out of order: events[{ei}] `{}` closes the range opened by events[{oi}] `{}` but is not above it",
                                        ev.version(),
                                        range.events[*oi].version()
                                    )));
                                }
                            }
                            open = None;
                        }
                        Event::Limit(_) => {}
                    }
                }
            }
        }
        Ok(())
    }

    /// The advisory's best severity score: the highest CVSS base score among its (and its
    /// affected entries') CVSS v3/v4 vectors that parse.
    pub fn best_score(&self) -> Option<Score> {
        self.severity
            .iter()
            .chain(self.affected.iter().flat_map(|a| a.severity.iter()))
            .filter_map(|s| severity::score(&s.kind, &s.score))
            .max_by(|a, b| a.value.total_cmp(&b.value))
    }

    /// RustSec's `informational` kind (`unmaintained`, `unsound`, `notice`), if any.
    pub fn informational(&self) -> Option<&str> {
        self.database_specific
            .as_ref()?
            .get("informational")?
            .as_str()
    }

    /// Whether any `affected` entry has a GIT range (reported as not evaluated).
    pub fn has_git_ranges(&self) -> bool {
        self.affected
            .iter()
            .flat_map(|a| a.ranges.iter())
            .any(|r| r.range_kind() == Some(RangeKind::Git))
    }
}

/// Parses an advisory from JSON.
pub fn from_json(text: &str) -> Result<Advisory, String> {
    serde_json::from_str(text).map_err(|e| format!("bad JSON: {e}"))
}

/// Parses an advisory from YAML.
pub fn from_yaml(text: &str) -> Result<Advisory, String> {
    serde_norway::from_str(text).map_err(|e| format!("bad YAML: {e}"))
}
