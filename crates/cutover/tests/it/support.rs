//! Test support: hermetic git repositories with pinned dates, and running the real binary.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// A temporary git work tree with an empty global git configuration.
pub struct Project {
    pub dir: tempfile::TempDir,
}

/// Environment that makes git and cutover deterministic and independent of this machine.
pub fn hermetic_env(cmd: &mut Command) -> &mut Command {
    for (key, _) in std::env::vars() {
        if key.starts_with("CUTOVER_") || key.starts_with("GIT_") || key == "NO_COLOR" {
            cmd.env_remove(key);
        }
    }
    cmd.env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Ada Lovelace")
        .env("GIT_AUTHOR_EMAIL", "ada@example.com")
        .env("GIT_COMMITTER_NAME", "Ada Lovelace")
        .env("GIT_COMMITTER_EMAIL", "ada@example.com")
        .env("GIT_AUTHOR_DATE", "2026-01-02T03:04:05Z")
        .env("GIT_COMMITTER_DATE", "2026-01-02T03:04:05Z")
        .env("CUTOVER_ACTOR", "tester@example.com")
        .env("CUTOVER_LOG", "error")
}

impl Project {
    /// An empty git repository with one commit.
    pub fn new() -> Self {
        let dir = tempfile::Builder::new()
            .prefix("cutover-it-")
            .tempdir()
            .expect("temp dir");
        let p = Self { dir };
        p.git(&["init", "-q", "-b", "main"]);
        p.write("README.md", "# sample\n");
        p.git(&["add", "."]);
        p.git(&["commit", "-q", "-m", "chore: initial commit"]);
        p
    }

    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    pub fn write(&self, rel: &str, text: &str) {
        let path = self.path().join(rel);
        std::fs::create_dir_all(path.parent().expect("a parent")).expect("mkdir");
        std::fs::write(path, text).expect("write");
    }

    pub fn read(&self, rel: &str) -> String {
        std::fs::read_to_string(self.path().join(rel)).expect("read")
    }

    pub fn git(&self, args: &[&str]) {
        let out = hermetic_env(Command::new("git").arg("-C").arg(self.path()).args(args))
            .output()
            .expect("git runs");
        assert!(
            out.status.success(),
            "git {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    /// `cutover ARGS` in this project.
    pub fn cutover(&self, args: &[&str]) -> Run {
        self.cutover_with(args, &[])
    }

    pub fn cutover_with(&self, args: &[&str], env: &[(&str, &str)]) -> Run {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        hermetic_env(&mut cmd)
            .current_dir(self.path())
            .args(args)
            .env("NO_COLOR", "1");
        for (k, v) in env {
            cmd.env(k, v);
        }
        Run::new(cmd.output().expect("cutover runs"), self.path())
    }
}

/// The outcome of one run, with output normalised for snapshots.
pub struct Run {
    pub code: i32,
    pub stdout: String,
    pub stderr: String,
}

impl Run {
    fn new(out: Output, root: &Path) -> Self {
        let clean = |b: &[u8]| normalise(&String::from_utf8_lossy(b), root);
        Self {
            code: out.status.code().unwrap_or(-1),
            stdout: clean(&out.stdout),
            stderr: clean(&out.stderr),
        }
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_str(&self.stdout)
            .unwrap_or_else(|e| panic!("stdout is not JSON ({e}): {}", self.stdout))
    }

    #[track_caller]
    pub fn success(&self) -> &Self {
        assert_eq!(
            self.code, 0,
            "expected success\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }

    #[track_caller]
    pub fn code(&self, code: i32) -> &Self {
        assert_eq!(
            self.code, code,
            "expected exit {code}\nstdout:\n{}\nstderr:\n{}",
            self.stdout, self.stderr
        );
        self
    }
}

/// Replaces the temp project path and other machine-specific bits so snapshots are stable.
pub fn normalise(text: &str, root: &Path) -> String {
    let canon: PathBuf = std::fs::canonicalize(root).unwrap_or_else(|_| root.to_path_buf());
    let text = text
        .replace(&canon.display().to_string(), "[PROJECT]")
        .replace(&root.display().to_string(), "[PROJECT]");
    redact_hashes(&text)
}

/// Replaces runs of exactly 64 lowercase hex digits (sha256 digests) with `[HASH]`.
fn redact_hashes(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    let mut run = String::new();
    let flush = |run: &mut String, out: &mut String| {
        if run.len() == 64 {
            out.push_str("[HASH]");
        } else {
            out.push_str(run);
        }
        run.clear();
    };
    for c in text.chars() {
        if c.is_ascii_digit() || ('a'..='f').contains(&c) {
            run.push(c);
        } else {
            flush(&mut run, &mut out);
            out.push(c);
        }
    }
    flush(&mut run, &mut out);
    out
}
