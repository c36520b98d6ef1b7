//! `cutover release`: from a clean work tree, plan, build, pack the artifact, prepend the changelog
//! section and commit it, create the annotated tag whose message is the notes, and push if asked.
//! Every check that can refuse (dirty tree, nothing to release, a hotfix with features, an
//! existing tag) runs before anything is written. Recording the release in the store is the
//! caller's (it owns the store); this returns everything the record needs.

use crate::artifact::{self, Artifact, ArtifactError};
use crate::{Options, Planned, ReleaseError, plan};
use cutover_git::write::{self, WriteError};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// `[build]`.
#[derive(Debug, Clone, Default)]
pub struct Build {
    /// argv.
    pub run: Vec<String>,
    /// Paths to pack (relative to the project).
    pub artifact: Vec<PathBuf>,
    /// Extra environment.
    pub env: BTreeMap<String, String>,
    /// Working directory relative to the project.
    pub workdir: Option<PathBuf>,
}

/// `[versioning.changelog]` when the changelog file is updated.
#[derive(Debug, Clone)]
pub struct ChangelogFile {
    /// Relative to the project.
    pub file: PathBuf,
    /// Commit the updated file before tagging.
    pub commit: bool,
    /// Commit message; `{version}` is replaced.
    pub commit_message: String,
}

/// What `release` does.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Planning options (with `--pre`, `--version`).
    pub options: Options,
    /// Check and describe only.
    pub dry_run: bool,
    /// `[build]`, if any.
    pub build: Option<Build>,
    /// Changelog update, if enabled.
    pub changelog: Option<ChangelogFile>,
    /// cutover's state directory (artifacts go under `artifacts/`).
    pub state_dir: PathBuf,
    /// Push the commit and tag to this remote.
    pub push: Option<String>,
    /// A hotfix: refuse features and breaking changes.
    pub hotfix: bool,
}

/// What happened (or, with `dry_run`, would happen).
#[derive(Debug, Clone)]
pub struct Released {
    /// The plan the release was made from.
    pub planned: Planned,
    /// Tag name.
    pub tag: String,
    /// The tagged commit.
    pub commit: String,
    /// The artifact, when there is a `[build]` (not built in a dry run).
    pub artifact: Option<Artifact>,
    /// The changelog commit, if one was made.
    pub changelog_commit: Option<String>,
    /// The steps, in order, as sentences.
    pub steps: Vec<String>,
    /// Whether pushed.
    pub pushed: bool,
}

/// Why a release was refused or failed.
#[derive(Debug, thiserror::Error)]
pub enum ShipError {
    /// Planning failed.
    #[error(transparent)]
    Plan(#[from] ReleaseError),
    /// Uncommitted changes.
    #[error(
        "the work tree has uncommitted changes:\n{}\nhint: commit or stash them first; a release is built from a commit",
        paths.iter().map(|p| format!("  {p}")).collect::<Vec<_>>().join("\n")
    )]
    Dirty {
        /// The changed paths.
        paths: Vec<String>,
    },
    /// No releasable change.
    #[error(
        "nothing to release: no feat, fix, perf, revert or breaking change since {since}; hint: `--version V` forces a release"
    )]
    Nothing {
        /// The last release.
        since: String,
    },
    /// A hotfix with features or breaking changes.
    #[error(
        "a hotfix releases fixes only, but these commits are features or breaking changes:\n{}\nhint: revert them on the hotfix branch, or make a normal release",
        list.iter().map(|c| format!("  {c}")).collect::<Vec<_>>().join("\n")
    )]
    HotfixRefused {
        /// `<short id> <type>: <summary>` lines.
        list: Vec<String>,
    },
    /// The tag exists already.
    #[error("tag `{0}` already exists; hint: delete it, or choose another version with --version")]
    TagExists(String),
    /// The build command failed.
    #[error("the build `{argv}` failed ({status}); nothing was tagged")]
    Build {
        /// The command line, for the message.
        argv: String,
        /// Exit status.
        status: String,
    },
    /// `[build] run` is empty.
    #[error(
        "[build] run is empty; hint: give the build command as an array, e.g. [\"cargo\", \"build\", \"--release\"]"
    )]
    EmptyBuild,
    /// Packing failed.
    #[error(transparent)]
    Artifact(#[from] ArtifactError),
    /// A git write failed.
    #[error(transparent)]
    Git(#[from] WriteError),
    /// Reading or writing the changelog failed.
    #[error("{path}: {detail}")]
    Io {
        /// The file.
        path: PathBuf,
        /// What happened.
        detail: String,
    },
}

/// Releases the project at `repo_path`.
pub fn release(repo_path: &Path, settings: &Settings) -> Result<Released, ShipError> {
    let repo = cutover_git::Repo::open(repo_path).map_err(ReleaseError::from)?;
    let root = repo.path().to_owned();
    let state_prefix = settings
        .state_dir
        .strip_prefix(&root)
        .ok()
        .map(|p| format!("{}/", p.to_string_lossy()));
    let dirty: Vec<String> = write::dirty_paths(&root)?
        .into_iter()
        // cutover's own state (the store, artifacts) is not part of the release.
        .filter(|p| state_prefix.as_deref().is_none_or(|s| !p.starts_with(s)))
        .collect();
    if !dirty.is_empty() {
        return Err(ShipError::Dirty { paths: dirty });
    }
    let planned = plan(&root, &settings.options)?;
    let since = planned
        .plan
        .current
        .as_ref()
        .map_or_else(|| "the first commit".to_owned(), |c| c.tag.clone());
    if planned.plan.next.bump == cutover_core::version::BumpKind::None {
        return Err(ShipError::Nothing { since });
    }
    if settings.hotfix {
        let list: Vec<String> = planned
            .plan
            .changes
            .iter()
            .filter(|c| c.breaking || c.kind == "feat")
            .map(|c| {
                format!(
                    "{} {}{}: {}",
                    &c.id[..c.id.len().min(7)],
                    c.kind,
                    if c.breaking { "!" } else { "" },
                    c.summary
                )
            })
            .collect();
        if !list.is_empty() {
            return Err(ShipError::HotfixRefused { list });
        }
    }
    let tag = planned.next_tag.clone();
    if repo
        .tags()
        .map_err(ReleaseError::from)?
        .iter()
        .any(|t| t.name == tag)
    {
        return Err(ShipError::TagExists(tag));
    }

    let head = planned.head.commit.to_string();
    let version = planned.plan.next.version.clone();
    let mut steps = Vec::new();
    if let Some(build) = &settings.build {
        steps.push(format!("run the build: {}", build.run.join(" ")));
        steps.push(format!(
            "pack {} into a tar.zst under {}",
            build
                .artifact
                .iter()
                .map(|p| p.display().to_string())
                .collect::<Vec<_>>()
                .join(", "),
            settings.state_dir.join("artifacts").display()
        ));
    }
    if let Some(changelog) = &settings.changelog {
        steps.push(format!(
            "prepend the {version} section to {}",
            changelog.file.display()
        ));
        if changelog.commit {
            steps.push(format!(
                "commit it: {}",
                changelog.commit_message.replace("{version}", &version)
            ));
        }
    }
    steps.push(format!(
        "create the annotated tag {tag} with the release notes"
    ));
    if let Some(remote) = &settings.push {
        steps.push(format!("push the commit and {tag} to {remote}"));
    }
    if settings.dry_run {
        return Ok(Released {
            planned,
            tag,
            commit: head,
            artifact: None,
            changelog_commit: None,
            steps,
            pushed: false,
        });
    }

    let artifact = match &settings.build {
        Some(build) => {
            run_build(&root, build)?;
            let mtime = settings
                .options
                .source_date_epoch
                .and_then(|s| u64::try_from(s).ok())
                .unwrap_or_else(|| {
                    let time = repo.commit_time(planned.head.commit).unwrap_or(0);
                    u64::try_from(time).unwrap_or(0)
                });
            Some(artifact::pack(
                &root,
                &build.artifact,
                mtime,
                &settings.state_dir.join("artifacts"),
            )?)
        }
        None => None,
    };

    let mut commit = head;
    let mut changelog_commit = None;
    if let Some(changelog) = &settings.changelog {
        let path = root.join(&changelog.file);
        let existing = match std::fs::read_to_string(&path) {
            Ok(text) => Some(text),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => None,
            Err(e) => {
                return Err(ShipError::Io {
                    path,
                    detail: e.to_string(),
                });
            }
        };
        let updated = cutover_notes::prepend_section(existing.as_deref(), &planned.plan.notes);
        std::fs::write(&path, updated).map_err(|e| ShipError::Io {
            path: path.clone(),
            detail: e.to_string(),
        })?;
        if changelog.commit {
            let message = format!(
                "{}\n",
                changelog.commit_message.replace("{version}", &version)
            );
            let rel = changelog.file.to_string_lossy().replace('\\', "/");
            commit = write::commit_file(&root, &rel, &message)?;
            changelog_commit = Some(commit.clone());
        }
    }
    write::create_annotated_tag(&root, &tag, &commit, &planned.plan.notes)?;
    let mut pushed = false;
    if let Some(remote) = &settings.push {
        let tag_ref = format!("refs/tags/{tag}");
        let mut refs = Vec::new();
        if let Some(branch) = &planned.head.branch
            && changelog_commit.is_some()
        {
            refs.push(branch.as_str());
        }
        refs.push(tag_ref.as_str());
        write::push(&root, remote, &refs)?;
        pushed = true;
    }
    Ok(Released {
        planned,
        tag,
        commit,
        artifact,
        changelog_commit,
        steps,
        pushed,
    })
}

fn run_build(root: &Path, build: &Build) -> Result<(), ShipError> {
    let (program, args) = build.run.split_first().ok_or(ShipError::EmptyBuild)?;
    let dir = build
        .workdir
        .as_ref()
        .map_or_else(|| root.to_owned(), |w| root.join(w));
    let mut command = Command::new(program);
    command
        .args(args)
        .current_dir(&dir)
        .envs(&build.env)
        .stdin(Stdio::null());
    // The build's output goes to stderr so that stdout stays one document under --json.
    #[cfg(unix)]
    {
        use std::os::fd::AsFd as _;
        if let Ok(fd) = std::io::stderr().as_fd().try_clone_to_owned() {
            command.stdout(Stdio::from(fd));
        }
    }
    let status = command.status().map_err(|e| ShipError::Build {
        argv: build.run.join(" "),
        status: format!("could not start: {e}"),
    })?;
    if !status.success() {
        return Err(ShipError::Build {
            argv: build.run.join(" "),
            status: status.to_string(),
        });
    }
    Ok(())
}
