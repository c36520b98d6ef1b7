//! cutover release planning: tie history, Conventional Commits, SemVer and notes together.
//!
//! [`plan`] is `cutover plan`: from the last *final* release (highest tag of the format by SemVer)
//! to HEAD, classify every commit, decide the next version and render the notes. [`changelog`] is
//! `cutover changelog`: one section per release tag (newest first), each the commits between that
//! tag and the release before it in SemVer order, rendered with the same template.
//!
//! Dates in notes never come from the wall clock: `SOURCE_DATE_EPOCH` when the caller passes it,
//! else the author time of the newest commit of the release, as a UTC day, so that the same history
//! gives byte-identical notes.

use chrono::{DateTime, FixedOffset, TimeZone as _, Utc};
use cutover_core::commit::UnconventionalPolicy;
use cutover_core::tag::TagFormat;
use cutover_core::version::{self, Rules};
use cutover_git::{GitError, Head, Release, Repo, WalkOptions, Warning};
use cutover_notes::{
    Current, NextRelease, Notes, NotesError, Plan, RawCommit, RenderOptions, SectionHeader,
    Unconventional,
};
use std::path::{Path, PathBuf};

pub mod artifact;
pub mod ship;

pub use cutover_git::MergePolicy;

/// Everything `plan` and `changelog` can be told.
#[derive(Debug, Clone)]
pub struct Options {
    /// `tag_format`, e.g. `v{version}`.
    pub tag_format: String,
    /// `[versioning]` rules.
    pub rules: Rules,
    /// What to do with commits that are not conventional.
    pub policy: UnconventionalPolicy,
    /// Merges, first-parent, monorepo path.
    pub walk: WalkOptions,
    /// `--pre ID`.
    pub pre: Option<String>,
    /// `--version V`.
    pub explicit: Option<semver::Version>,
    /// Issue link template (`https://…/issues/{number}`).
    pub issue_url: Option<String>,
    /// `--template FILE`; the built-in Markdown template if `None`.
    pub template: Option<PathBuf>,
    /// `SOURCE_DATE_EPOCH`, if set.
    pub source_date_epoch: Option<i64>,
    /// Plan from this release tag instead of the highest final release (hotfix branches).
    pub base: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            tag_format: "v{version}".to_owned(),
            rules: Rules::default(),
            policy: UnconventionalPolicy::default(),
            walk: WalkOptions::default(),
            pre: None,
            explicit: None,
            issue_url: None,
            template: None,
            source_date_epoch: None,
            base: None,
        }
    }
}

/// Why planning failed. Nothing is ever written by planning, so every error leaves the repository as it was.
#[derive(Debug, thiserror::Error)]
pub enum ReleaseError {
    /// Reading git failed.
    #[error(transparent)]
    Git(#[from] GitError),
    /// The tag format is invalid.
    #[error(transparent)]
    Tag(#[from] cutover_core::tag::TagError),
    /// No valid next version.
    #[error(transparent)]
    Version(#[from] version::VersionError),
    /// The template is broken.
    #[error(transparent)]
    Notes(#[from] NotesError),
    /// The policy is `error` and there are non-conventional commits.
    #[error(
        "{} commit(s) are not Conventional Commits and the policy is `error`:\n{}\nhint: reword them, or set the policy to `other` or `ignore`",
        list.len(),
        list.iter().map(|u| format!("  {} {}", &u.id[..u.id.len().min(7)], u.summary)).collect::<Vec<_>>().join("\n")
    )]
    Unconventional {
        /// The offending commits.
        list: Vec<Unconventional>,
    },
    /// `base` names no release tag.
    #[error("`{0}` is not a release tag of this repository; hint: list them with `git tag`")]
    UnknownBase(String),
    /// A `--range` that is not `A..B`.
    #[error("range `{0}` is not of the form A..B (e.g. v1.0.0..v1.1.0 or v1.1.0..HEAD)")]
    BadRange(String),
}

/// `plan`'s result: the plan document plus what the binary needs besides it.
#[derive(Debug, Clone)]
pub struct Planned {
    /// The document `cutover plan --json` prints.
    pub plan: Plan,
    /// Things to tell the user (detached HEAD, non-UTF-8 messages).
    pub warnings: Vec<Warning>,
    /// HEAD.
    pub head: Head,
    /// The next release's tag name.
    pub next_tag: String,
    /// The notes' date (`YYYY-MM-DD`).
    pub date: String,
    /// Every release tag, lowest version first.
    pub releases: Vec<Release>,
}

/// Formats a git time as RFC 3339 with its own offset.
pub fn rfc3339(seconds: i64, offset: i32) -> String {
    let tz = FixedOffset::east_opt(offset)
        .unwrap_or_else(|| FixedOffset::east_opt(0).expect("a zero offset is always valid"));
    match tz.timestamp_opt(seconds, 0).single() {
        Some(t) => t.to_rfc3339(),
        None => "1970-01-01T00:00:00+00:00".to_owned(),
    }
}

fn day(seconds: i64) -> String {
    DateTime::<Utc>::from_timestamp(seconds, 0)
        .map(|t| t.format("%Y-%m-%d").to_string())
        .unwrap_or_default()
}

fn notes_for(options: &Options) -> Result<Notes, ReleaseError> {
    let render = RenderOptions {
        issue_url: options.issue_url.clone(),
    };
    Ok(match &options.template {
        Some(path) => Notes::from_file(path, &render)?,
        None => Notes::default_markdown(&render),
    })
}

/// Classified commits of one range.
struct Classified {
    changes: Vec<cutover_notes::Change>,
    unconventional: Vec<Unconventional>,
    impacts: Vec<version::Impact>,
    newest_time: Option<i64>,
}

fn classify_all(commits: &[cutover_git::Commit], policy: UnconventionalPolicy) -> Classified {
    let mut out = Classified {
        changes: Vec::with_capacity(commits.len()),
        unconventional: Vec::new(),
        impacts: Vec::with_capacity(commits.len()),
        newest_time: commits.first().map(|c| c.time),
    };
    for c in commits {
        let raw = RawCommit {
            id: &c.id,
            message: &c.message,
            author_name: &c.author_name,
            author_email: &c.author_email,
            time: rfc3339(c.time, c.offset),
        };
        let classified = cutover_notes::classify(&raw, policy);
        out.changes.extend(classified.change);
        out.unconventional.extend(classified.unconventional);
        out.impacts.push(classified.impact);
    }
    out
}

/// `cutover plan`: the next release from the last final release to HEAD. Reads only.
pub fn plan(repo_path: &Path, options: &Options) -> Result<Planned, ReleaseError> {
    let format = TagFormat::new(&options.tag_format)?;
    let repo = Repo::open(repo_path)?;
    let mut warnings = Vec::new();
    let head = repo.head_with_warnings(&mut warnings)?;
    let releases = repo.releases(&format)?;
    let last_final = match &options.base {
        Some(base) => Some(
            releases
                .iter()
                .find(|r| &r.tag == base)
                .ok_or_else(|| ReleaseError::UnknownBase(base.clone()))?,
        ),
        None => releases.iter().rev().find(|r| r.version.pre.is_empty()),
    };
    let label = match last_final {
        Some(r) => format!("the last release {}", r.tag),
        None => "the first commit".to_owned(),
    };
    let commits = repo.commits(
        head.commit,
        last_final.map(|r| r.commit),
        &label,
        &options.walk,
        &mut warnings,
    )?;
    let classified = classify_all(&commits, options.policy);
    if options.policy == UnconventionalPolicy::Error && !classified.unconventional.is_empty() {
        return Err(ReleaseError::Unconventional {
            list: classified.unconventional,
        });
    }
    let existing: Vec<semver::Version> = releases.iter().map(|r| r.version.clone()).collect();
    let request = version::Request {
        current: last_final.map(|r| &r.version),
        existing: &existing,
        pre: options.pre.as_deref(),
        explicit: options.explicit.as_ref(),
    };
    let next = version::next(&request, &options.rules, &classified.impacts)?;
    let next_tag = format.format(&next.version);
    let date_seconds = options
        .source_date_epoch
        .or(classified.newest_time)
        .unwrap_or_else(|| commits.first().map_or(0, |c| c.time));
    let date = day(date_seconds);
    let mut plan = Plan {
        current: last_final.map(|r| Current {
            version: r.version.to_string(),
            tag: r.tag.clone(),
            commit: r.commit.to_string(),
        }),
        next: NextRelease {
            version: next.version.to_string(),
            bump: next.bump,
            reasons: next.reasons,
        },
        changes: classified.changes,
        unconventional: classified.unconventional,
        notes: String::new(),
    };
    let header = SectionHeader {
        tag: next_tag.clone(),
        title: next.version.to_string(),
        date: date.clone(),
    };
    plan.notes = notes_for(options)?.render(&plan, &header)?;
    Ok(Planned {
        plan,
        warnings,
        head,
        next_tag,
        date,
        releases,
    })
}

/// Which part of history a changelog covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ChangelogRange {
    /// Every release, plus unreleased changes on top if there are any.
    All,
    /// `A..B`: one section for the commits reachable from B but not from A.
    Range(String),
}

/// `changelog`'s result.
#[derive(Debug, Clone)]
pub struct Changelog {
    /// The Markdown text (`# Changelog` and the sections).
    pub text: String,
    /// How many sections.
    pub sections: usize,
    /// How many commits were read.
    pub commits: usize,
    /// Things to tell the user.
    pub warnings: Vec<Warning>,
}

/// One changelog section: the commits of a release, classified, with the heading's date set.
fn section_of(
    commits: &[cutover_git::Commit],
    previous: Option<&Release>,
    mut header: SectionHeader,
    version: String,
    options: &Options,
) -> (Plan, SectionHeader) {
    if let Some(newest) = commits.first() {
        header.date = day(options.source_date_epoch.unwrap_or(newest.time));
    }
    let classified = classify_all(commits, options.policy);
    let plan = Plan {
        current: previous.map(|r| Current {
            version: r.version.to_string(),
            tag: r.tag.clone(),
            commit: r.commit.to_string(),
        }),
        next: NextRelease {
            version,
            bump: version::BumpKind::None,
            reasons: Vec::new(),
        },
        changes: classified.changes,
        unconventional: classified.unconventional,
        notes: String::new(),
    };
    (plan, header)
}

/// `cutover changelog`: sections for every release (or one range), newest first. Reads only.
pub fn changelog(
    repo_path: &Path,
    options: &Options,
    range: &ChangelogRange,
) -> Result<Changelog, ReleaseError> {
    let format = TagFormat::new(&options.tag_format)?;
    let repo = Repo::open(repo_path)?;
    let notes = notes_for(options)?;
    let mut warnings = Vec::new();
    let head = repo.head_with_warnings(&mut warnings)?;
    let releases = repo.releases(&format)?;
    let mut sections: Vec<(Plan, SectionHeader)> = Vec::new();
    let mut total = 0;

    match range {
        ChangelogRange::All => {
            // One pass over the whole history: each release's part is what it reaches and no
            // lower release does; HEAD's part is the unreleased changes.
            let mut tips: Vec<cutover_git::ObjectId> = releases.iter().map(|r| r.commit).collect();
            tips.push(head.commit);
            // The walk runs here while another thread classifies and renders the parts it has
            // finished: reading history and rendering notes take about the same time.
            let section_for = |i: usize, commits: &[cutover_git::Commit]| {
                let previous = i.checked_sub(1).and_then(|p| releases.get(p));
                match releases.get(i) {
                    Some(release) => section_of(
                        commits,
                        previous,
                        SectionHeader {
                            tag: release.tag.clone(),
                            title: release.version.to_string(),
                            date: String::new(),
                        },
                        release.version.to_string(),
                        options,
                    ),
                    None => section_of(
                        commits,
                        releases.last(),
                        SectionHeader {
                            tag: "HEAD".to_owned(),
                            title: "Unreleased".to_owned(),
                            date: String::new(),
                        },
                        "unreleased".to_owned(),
                        options,
                    ),
                }
            };
            let unreleased_index = releases.len();
            let (walked, rendered) = std::thread::scope(|scope| {
                let (tx, rx) =
                    std::sync::mpsc::sync_channel::<(usize, Vec<cutover_git::Commit>)>(8);
                let notes = &notes;
                let consumer = scope.spawn(
                    move || -> Result<Vec<(usize, usize, String)>, ReleaseError> {
                        let mut out = Vec::new();
                        for (i, commits) in rx {
                            if i == unreleased_index && commits.is_empty() {
                                continue;
                            }
                            let (plan, header) = section_for(i, &commits);
                            out.push((i, commits.len(), notes.render(&plan, &header)?));
                        }
                        Ok(out)
                    },
                );
                let walked = repo.partition_each(&tips, &options.walk, &mut warnings, |i, part| {
                    // A send fails only if the consumer stopped on an error, which join reports.
                    let _ = tx.send((i, part));
                });
                drop(tx);
                let rendered = consumer
                    .join()
                    .unwrap_or_else(|panic| std::panic::resume_unwind(panic));
                (walked, rendered)
            });
            walked?;
            let mut rendered = rendered?;
            rendered.sort_by_key(|(i, _, _)| std::cmp::Reverse(*i));
            total = rendered.iter().map(|(_, n, _)| n).sum();
            let text =
                cutover_notes::assemble_changelog(rendered.iter().map(|(_, _, t)| t.as_str()));
            return Ok(Changelog {
                text,
                sections: rendered.len(),
                commits: total,
                warnings,
            });
        }
        ChangelogRange::Range(spec) => {
            let (from, to) = spec
                .split_once("..")
                .filter(|(a, b)| !a.is_empty() && !b.is_empty() && !b.starts_with('.'))
                .ok_or_else(|| ReleaseError::BadRange(spec.clone()))?;
            let tip = repo.resolve(to)?;
            let hide = repo.resolve(from)?;
            let hide_release = Release {
                tag: from.to_owned(),
                version: releases
                    .iter()
                    .find(|r| r.tag == from)
                    .map_or_else(|| semver::Version::new(0, 0, 0), |r| r.version.clone()),
                commit: hide,
            };
            let to_release = releases.iter().find(|r| r.tag == to);
            let title = match to_release {
                Some(r) => r.version.to_string(),
                None if to == "HEAD" => "Unreleased".to_owned(),
                None => to.to_owned(),
            };
            let commits = repo.commits(
                tip,
                Some(hide),
                &format!("`{from}`"),
                &options.walk,
                &mut warnings,
            )?;
            total += commits.len();
            sections.push(section_of(
                &commits,
                Some(&hide_release),
                SectionHeader {
                    tag: to.to_owned(),
                    title: title.clone(),
                    date: String::new(),
                },
                title,
                options,
            ));
        }
    }
    let text = notes.render_changelog(&sections)?;
    Ok(Changelog {
        text,
        sections: sections.len(),
        commits: total,
        warnings,
    })
}

#[cfg(test)]
mod tests;
