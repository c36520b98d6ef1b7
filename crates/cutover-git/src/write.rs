//! Changes to a repository, made through the system `git` (argv arrays, never a shell string) so
//! that the user's hooks, signing configuration and credential helpers apply exactly as when they
//! run git themselves.

use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A git command that failed or could not start.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// `git` is not installed or not on PATH.
    #[error("could not run `git` ({detail}); hint: install git or put it on PATH")]
    Spawn {
        /// The OS error.
        detail: String,
    },
    /// git ran and failed.
    #[error("`git {args}` failed in {dir} (exit {code}): {stderr}")]
    Failed {
        /// The arguments, space-joined for the message only.
        args: String,
        /// Where.
        dir: PathBuf,
        /// Exit code (-1 if killed by a signal).
        code: i32,
        /// What git printed on stderr.
        stderr: String,
    },
}

fn git(dir: &Path, args: &[&str], stdin: Option<&str>) -> Result<String, WriteError> {
    let mut command = Command::new("git");
    command
        .arg("-C")
        .arg(dir)
        .args(args)
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = command.spawn().map_err(|e| WriteError::Spawn {
        detail: e.to_string(),
    })?;
    if let Some(input) = stdin
        && let Some(mut pipe) = child.stdin.take()
    {
        pipe.write_all(input.as_bytes())
            .map_err(|e| WriteError::Spawn {
                detail: e.to_string(),
            })?;
    }
    let output = child.wait_with_output().map_err(|e| WriteError::Spawn {
        detail: e.to_string(),
    })?;
    if !output.status.success() {
        return Err(WriteError::Failed {
            args: args.join(" "),
            dir: dir.to_owned(),
            code: output.status.code().unwrap_or(-1),
            stderr: String::from_utf8_lossy(&output.stderr).trim().to_owned(),
        });
    }
    Ok(String::from_utf8_lossy(&output.stdout).into_owned())
}

/// Paths with uncommitted changes (staged, unstaged or untracked, ignored files excluded), as
/// `git status` sees them with the user's ignore rules. Empty means clean.
pub fn dirty_paths(dir: &Path) -> Result<Vec<String>, WriteError> {
    let out = git(dir, &["status", "--porcelain=v1", "-z"], None)?;
    Ok(out
        .split('\0')
        .filter(|e| e.len() > 3)
        .map(|e| e[3..].to_owned())
        .collect())
}

/// Creates an annotated tag at `commit` whose message is `message`, kept verbatim (release notes
/// are Markdown; git's default cleanup would drop their `#` headings as comments).
pub fn create_annotated_tag(
    dir: &Path,
    name: &str,
    commit: &str,
    message: &str,
) -> Result<(), WriteError> {
    git(
        dir,
        &[
            "tag",
            "--annotate",
            "--cleanup=verbatim",
            "--file=-",
            name,
            commit,
        ],
        Some(message),
    )?;
    Ok(())
}

/// Stages `path` and commits it alone (other staged changes stay staged and uncommitted).
/// Returns the new commit id.
pub fn commit_file(dir: &Path, path: &str, message: &str) -> Result<String, WriteError> {
    git(dir, &["add", "--", path], None)?;
    git(
        dir,
        &[
            "commit",
            "--cleanup=verbatim",
            "--file=-",
            "--only",
            "--",
            path,
        ],
        Some(message),
    )?;
    Ok(git(dir, &["rev-parse", "HEAD"], None)?.trim().to_owned())
}

/// Creates `branch` at `start` and checks it out.
pub fn create_branch(dir: &Path, branch: &str, start: &str) -> Result<(), WriteError> {
    git(dir, &["switch", "--create", branch, start], None)?;
    Ok(())
}

/// Pushes refs (`main`, `refs/tags/v1.2.3`) to `remote` with the user's credentials.
pub fn push(dir: &Path, remote: &str, refs: &[&str]) -> Result<(), WriteError> {
    let mut args = vec!["push", remote];
    args.extend_from_slice(refs);
    git(dir, &args, None)?;
    Ok(())
}
