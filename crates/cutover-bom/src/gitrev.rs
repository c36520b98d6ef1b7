//! The BOM of a project as it was at a git revision (a release tag): the lockfiles and their
//! sidecar manifests are read from git into a temporary directory and parsed there, so
//! `cutover bom --release V` and `cutover bom diff 1.2.0 1.3.0` need no checkout.

use crate::bom::{Bom, DiscoverOptions, discover_and_parse_with};
use crate::lockfile::LockfileKind;
use std::path::Path;
use std::process::Command;

/// Why a revision's BOM could not be built.
#[derive(Debug, thiserror::Error)]
pub enum GitRevError {
    /// Neither `rev` nor `v<rev>` names a commit.
    #[error("`{rev}` is not a git revision or release tag in {root} (tried `{rev}` and `v{rev}`)")]
    UnknownRevision { rev: String, root: String },
    /// git could not be run or failed.
    #[error("git {args} failed in {root}: {message}")]
    Git {
        args: String,
        root: String,
        message: String,
    },
    /// The temporary copy could not be written.
    #[error("cannot write the temporary copy of {path}: {source}")]
    Io {
        path: String,
        source: std::io::Error,
    },
}

/// Files read besides the lockfiles: the manifests the parsers consult for direct/dev and the
/// Cargo workspace, and go.sum.
const SIDECARS: [&str; 5] = [
    "package.json",
    "composer.json",
    "Cargo.toml",
    "go.sum",
    "pyproject.toml",
];

fn git(root: &Path, args: &[&str]) -> Result<Vec<u8>, GitRevError> {
    let out = Command::new("git")
        .arg("-C")
        .arg(root)
        .args(args)
        .output()
        .map_err(|e| GitRevError::Git {
            args: args.join(" "),
            root: root.display().to_string(),
            message: e.to_string(),
        })?;
    if !out.status.success() {
        return Err(GitRevError::Git {
            args: args.join(" "),
            root: root.display().to_string(),
            message: String::from_utf8_lossy(&out.stderr).trim().to_owned(),
        });
    }
    Ok(out.stdout)
}

/// The commit `rev` (or `v<rev>`, as release tags are usually named) resolves to.
pub fn resolve_revision(root: &Path, rev: &str) -> Result<String, GitRevError> {
    for candidate in [rev.to_owned(), format!("v{rev}")] {
        if candidate.starts_with('-') {
            continue;
        }
        if let Ok(out) = git(
            root,
            &[
                "rev-parse",
                "--verify",
                "--quiet",
                &format!("{candidate}^{{commit}}"),
            ],
        ) {
            let sha = String::from_utf8_lossy(&out).trim().to_owned();
            if !sha.is_empty() {
                return Ok(sha);
            }
        }
    }
    Err(GitRevError::UnknownRevision {
        rev: rev.to_owned(),
        root: root.display().to_string(),
    })
}

/// Builds the BOM of `root` at revision `rev` (a commit, branch, tag, or a version whose tag is
/// `v<version>`). The BOM's creation time is the commit's time.
pub fn discover_at_revision(
    root: &Path,
    rev: &str,
    opts: &DiscoverOptions,
) -> Result<Bom, GitRevError> {
    let sha = resolve_revision(root, rev)?;
    let listing = git(root, &["ls-tree", "-r", "-z", "--name-only", &sha])?;
    let tmp = tempfile::Builder::new()
        .prefix("cutover-bom-rev-")
        .tempdir()
        .map_err(|e| GitRevError::Io {
            path: "a temporary directory".to_owned(),
            source: e,
        })?;
    let name = root
        .canonicalize()
        .ok()
        .and_then(|p| p.file_name().map(|n| n.to_string_lossy().into_owned()))
        .unwrap_or_else(|| "project".to_owned());
    for path in listing.split(|&b| b == 0).filter(|p| !p.is_empty()) {
        let path = String::from_utf8_lossy(path);
        let file = path.rsplit('/').next().unwrap_or(&path);
        let wanted = LockfileKind::detect_path(&path).is_some()
            || SIDECARS.contains(&file)
            || (file.ends_with(".txt") && path.contains("requirements"));
        if !wanted {
            continue;
        }
        let content = git(root, &["show", &format!("{sha}:{path}")])?;
        let dst = tmp.path().join(path.as_ref());
        let io = |e| GitRevError::Io {
            path: path.to_string(),
            source: e,
        };
        if let Some(parent) = dst.parent() {
            std::fs::create_dir_all(parent).map_err(io)?;
        }
        std::fs::write(&dst, content).map_err(|e| GitRevError::Io {
            path: path.to_string(),
            source: e,
        })?;
    }
    let mut bom = discover_and_parse_with(tmp.path(), opts);
    bom.name = name;
    let time = git(root, &["log", "-1", "--format=%ct", &sha])?;
    bom.created = String::from_utf8_lossy(&time).trim().parse().ok();
    Ok(bom)
}
