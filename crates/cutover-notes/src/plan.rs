//! The plan document: what `cutover plan --json` prints and what notes templates see.

use cutover_core::commit::{self, Message, Separator, UnconventionalPolicy};
use cutover_core::version::{BumpKind, Reason};
use serde::{Deserialize, Serialize};

/// `cutover plan --json`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Plan {
    /// The last final release, `null` before the first.
    pub current: Option<Current>,
    /// The next release.
    pub next: NextRelease,
    /// The changes since `current`, newest first.
    pub changes: Vec<Change>,
    /// Commits that are not Conventional Commits (whatever the policy did with them).
    pub unconventional: Vec<Unconventional>,
    /// The rendered release notes.
    pub notes: String,
}

/// The release the plan starts from.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Current {
    /// Version.
    pub version: String,
    /// Tag name.
    pub tag: String,
    /// Tagged commit id.
    pub commit: String,
}

/// The next release.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NextRelease {
    /// Version.
    pub version: String,
    /// How it was decided (`major`, `minor`, `patch`, `none`, `initial`, `release-as`, `override`).
    pub bump: BumpKind,
    /// Which commits caused it.
    pub reasons: Vec<Reason>,
}

/// One footer, in message order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FooterEntry {
    /// Token as written.
    pub token: String,
    /// Value (may span lines).
    pub value: String,
}

/// A commit's author.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Author {
    /// Name.
    pub name: String,
    /// Email.
    pub email: String,
}

/// Which section of the notes a change goes to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Group {
    /// Breaking changes (any type).
    Breaking,
    /// `feat`.
    Features,
    /// `fix`.
    Fixes,
    /// `perf`.
    Performance,
    /// `revert:` and git reverts.
    Reverts,
    /// Every other type, and non-conventional commits under the `other` policy.
    Other,
}

/// One change.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Change {
    /// Full commit id.
    pub id: String,
    /// Lowercase type (`feat`; `revert` for git reverts; empty for non-conventional commits).
    #[serde(rename = "type")]
    pub kind: String,
    /// Scope.
    pub scope: Option<String>,
    /// Breaking change.
    pub breaking: bool,
    /// The description (the whole first line for non-conventional commits and git reverts).
    pub summary: String,
    /// Body.
    pub body: Option<String>,
    /// Footers.
    pub footers: Vec<FooterEntry>,
    /// Author.
    pub author: Author,
    /// Author time, RFC 3339 with the author's offset.
    pub time: String,
    /// Notes section.
    pub group: Group,
    /// Issue references.
    pub refs: Vec<commit::IssueRef>,
}

/// A commit that is not a Conventional Commit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unconventional {
    /// Commit id.
    pub id: String,
    /// First line.
    pub summary: String,
}

/// A commit as history gives it (no git types here, so this crate stays independent of the reader).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RawCommit<'a> {
    /// Id.
    pub id: &'a str,
    /// Message.
    pub message: &'a str,
    /// Author name.
    pub author_name: &'a str,
    /// Author email.
    pub author_email: &'a str,
    /// Author time, RFC 3339.
    pub time: String,
}

/// What one commit became.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Classified {
    /// The change for the notes, unless the policy ignores it.
    pub change: Option<Change>,
    /// Set when the commit is not conventional.
    pub unconventional: Option<Unconventional>,
    /// What it contributes to the version decision.
    pub impact: cutover_core::version::Impact,
}

fn footers_of(footers: &[commit::Footer]) -> Vec<FooterEntry> {
    footers
        .iter()
        .map(|f| FooterEntry {
            // Keep the `#` of `Closes #12` in the value, so templates show what was written.
            token: f.token.clone(),
            value: match f.separator {
                Separator::Colon => f.value.clone(),
                Separator::Hash => format!("#{}", f.value),
            },
        })
        .collect()
}

fn group_of(kind: &str, breaking: bool) -> Group {
    if breaking {
        return Group::Breaking;
    }
    match kind {
        "feat" => Group::Features,
        "fix" => Group::Fixes,
        "perf" => Group::Performance,
        "revert" => Group::Reverts,
        _ => Group::Other,
    }
}

/// Classifies one commit: its change (per policy), whether it is unconventional, and its version impact.
pub fn classify(raw: &RawCommit<'_>, policy: UnconventionalPolicy) -> Classified {
    let author = Author {
        name: raw.author_name.to_owned(),
        email: raw.author_email.to_owned(),
    };
    match commit::classify(raw.message) {
        Message::Conventional(c) => {
            let kind = c.kind();
            let breaking = c.is_breaking();
            let release_as = c
                .footer("release-as")
                .and_then(|v| semver::Version::parse(v.trim()).ok());
            let change = Change {
                id: raw.id.to_owned(),
                group: group_of(&kind, breaking),
                kind: kind.clone(),
                scope: c.scope.clone(),
                breaking,
                refs: commit::commit_refs(&c.description, &c.footers),
                summary: c.description,
                body: c.body,
                footers: footers_of(&c.footers),
                author,
                time: raw.time.clone(),
            };
            Classified {
                change: Some(change),
                unconventional: None,
                impact: cutover_core::version::Impact {
                    commit: raw.id.to_owned(),
                    kind: Some(kind),
                    breaking,
                    release_as,
                },
            }
        }
        Message::Revert(r) => {
            let summary = format!("Revert \"{}\"", r.reverted_header);
            let change = Change {
                id: raw.id.to_owned(),
                kind: "revert".to_owned(),
                scope: None,
                breaking: false,
                refs: commit::commit_refs(&summary, &r.footers),
                summary,
                body: r.body,
                footers: footers_of(&r.footers),
                author,
                time: raw.time.clone(),
                group: Group::Reverts,
            };
            Classified {
                change: Some(change),
                unconventional: None,
                impact: cutover_core::version::Impact {
                    commit: raw.id.to_owned(),
                    kind: Some("revert".to_owned()),
                    breaking: false,
                    release_as: None,
                },
            }
        }
        Message::Unconventional { summary, .. } => {
            let change = (policy == UnconventionalPolicy::Other).then(|| Change {
                id: raw.id.to_owned(),
                kind: String::new(),
                scope: None,
                breaking: false,
                refs: commit::issue_refs(&summary),
                summary: summary.clone(),
                body: None,
                footers: Vec::new(),
                author,
                time: raw.time.clone(),
                group: Group::Other,
            });
            Classified {
                change,
                unconventional: Some(Unconventional {
                    id: raw.id.to_owned(),
                    summary,
                }),
                impact: cutover_core::version::Impact {
                    commit: raw.id.to_owned(),
                    kind: None,
                    breaking: false,
                    release_as: None,
                },
            }
        }
    }
}
