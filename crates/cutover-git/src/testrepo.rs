//! Hermetic git repositories for tests and benchmarks: built with the system git, with an empty
//! global/system configuration and pinned author/committer dates, so ids are the same on every machine.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

/// A repository being built in a directory the caller owns.
#[derive(Debug)]
pub struct TestRepo {
    dir: PathBuf,
    clock: i64,
}

/// The environment that makes git hermetic (no user/system config, fixed identity).
pub fn hermetic_env() -> Vec<(&'static str, String)> {
    vec![
        ("GIT_CONFIG_GLOBAL", "/dev/null".to_owned()),
        ("GIT_CONFIG_NOSYSTEM", "1".to_owned()),
        ("GIT_AUTHOR_NAME", "Ada Lovelace".to_owned()),
        ("GIT_AUTHOR_EMAIL", "ada@example.com".to_owned()),
        ("GIT_COMMITTER_NAME", "Ada Lovelace".to_owned()),
        ("GIT_COMMITTER_EMAIL", "ada@example.com".to_owned()),
        ("HOME", "/nonexistent".to_owned()),
    ]
}

impl TestRepo {
    /// `git init -b main` in `dir` (created if missing).
    pub fn init(dir: &Path) -> TestRepo {
        std::fs::create_dir_all(dir).expect("test repository directory can be created");
        let repo = TestRepo {
            dir: dir.to_owned(),
            clock: 1_700_000_000,
        };
        repo.git(&["init", "--quiet", "--initial-branch=main"]);
        repo.git(&["config", "commit.gpgSign", "false"]);
        repo.git(&["config", "tag.gpgSign", "false"]);
        // Repository-local identity, so that writes made through cutover's own git calls (which
        // use the caller's environment) work without a global configuration.
        repo.git(&["config", "user.name", "Ada Lovelace"]);
        repo.git(&["config", "user.email", "ada@example.com"]);
        repo
    }

    /// The repository directory.
    pub fn path(&self) -> &Path {
        &self.dir
    }

    /// Runs git with the hermetic environment and the current pinned date; panics on failure
    /// (this is test scaffolding: a failure here is a broken test, not a condition to handle).
    pub fn git(&self, args: &[&str]) -> String {
        self.git_input(args, None)
    }

    /// Like [`TestRepo::git`] with stdin.
    pub fn git_input(&self, args: &[&str], input: Option<&[u8]>) -> String {
        use std::io::Write as _;
        let date = format!("{} +0000", self.clock);
        let mut cmd = Command::new("git");
        cmd.current_dir(&self.dir)
            .args(args)
            .env("GIT_AUTHOR_DATE", &date)
            .env("GIT_COMMITTER_DATE", &date)
            .stdin(if input.is_some() {
                Stdio::piped()
            } else {
                Stdio::null()
            })
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in hermetic_env() {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn().expect("git is installed");
        if let Some(input) = input {
            child
                .stdin
                .take()
                .expect("stdin was piped")
                .write_all(input)
                .expect("git reads its stdin");
        }
        let out = child.wait_with_output().expect("git runs to completion");
        assert!(
            out.status.success(),
            "git {args:?} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// Commits (an empty-or-not change to `file`, default `README`) with `message`; returns the id.
    pub fn commit(&mut self, message: &str) -> String {
        self.commit_in("README", message)
    }

    /// Appends a line to `file` (creating directories) and commits it with `message`.
    pub fn commit_in(&mut self, file: &str, message: &str) -> String {
        self.commit_bytes(file, message.as_bytes())
    }

    /// Like [`TestRepo::commit_in`] with a raw (possibly non-UTF-8) message.
    pub fn commit_bytes(&mut self, file: &str, message: &[u8]) -> String {
        use std::io::Write as _;
        self.clock += 60;
        let path = self.dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).expect("directories can be created");
        }
        let mut f = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&path)
            .expect("file can be opened");
        writeln!(f, "{}", self.clock).expect("file can be written");
        self.git(&["add", "--", file]);
        self.git_input(
            &["commit", "--quiet", "--cleanup=verbatim", "--file=-"],
            Some(message),
        );
        self.head()
    }

    /// The current HEAD commit id.
    pub fn head(&self) -> String {
        self.git(&["rev-parse", "HEAD"]).trim().to_owned()
    }

    /// An annotated tag at HEAD.
    pub fn tag(&mut self, name: &str) {
        self.clock += 1;
        self.git(&["tag", "-a", name, "-m", &format!("release {name}")]);
    }

    /// A lightweight tag at HEAD.
    pub fn lightweight_tag(&self, name: &str) {
        self.git(&["tag", name]);
    }

    /// Moves the clock (for commits made through raw git calls).
    pub fn tick(&mut self) {
        self.clock += 60;
    }
}
