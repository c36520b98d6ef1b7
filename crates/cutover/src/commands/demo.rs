//! `cutover demo`: a self-contained tour on this machine. It builds a sample project (a git
//! repository with a Conventional Commits history and the test app as its service) in a temporary
//! directory and runs cutover's commands on it, on the embedded default store (SQLite).
//!
//! It needs nothing but this binary and the system `git`: the sample's service is `cutover testapp`.

use crate::cli::DemoArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result, ResultExt};
use crate::ui::{BOLD, Ui};
use std::path::{Path, PathBuf};
use std::process::Command;

/// The sample history: (file, content, commit message). Dates are fixed so the demo's notes and
/// hashes are the same on every run.
const HISTORY: &[(&str, &str, &str)] = &[
    ("README.md", "# hello\n\nA sample service released with cutover.\n", "chore: start the hello service"),
    ("src/greeting.txt", "hello\n", "feat: greet visitors on /"),
    ("src/health.txt", "ok\n", "feat(api): add a /health endpoint for the router"),
    ("src/greeting.txt", "hello, world\n", "fix: greet the whole world\n\nThe greeting forgot everyone but the first visitor.\n\nCloses #12"),
    ("docs/ops.md", "# Operating hello\n", "docs: how to operate the service"),
    ("src/cache.txt", "lru\n", "perf: cache rendered greetings"),
    ("src/config.txt", "port from PORT\n", "feat(config)!: read the port from PORT only\n\nBREAKING CHANGE: the --listen flag is gone; set PORT instead."),
    ("NOTES.txt", "wip\n", "Update NOTES.txt"),
];

pub fn run(ctx: &Ctx<'_>, args: &DemoArgs) -> Result<()> {
    // Removed on return unless `--keep` (or `--dir`) asks to leave the project for a person.
    let tmp = match &args.dir {
        Some(_) => None,
        None => Some(
            tempfile::Builder::new()
                .prefix("cutover-demo-")
                .tempdir()
                .internal(|| "cannot create a temporary directory".into())?,
        ),
    };
    let dir = match (&args.dir, &tmp) {
        (Some(dir), _) => dir.clone(),
        (None, Some(tmp)) => tmp.path().join("hello"),
        (None, None) => unreachable!("a temporary directory exists when no --dir is given"),
    };
    let ui = ctx.ui;
    ui.status("Creating", format!("a sample project in {}", dir.display()));
    make_sample_repo(&dir)?;

    let mut global = ctx.global.clone();
    global.project = Some(dir.clone());
    global.database = None;
    let inner = Ctx::new(ui, global);

    ui.println(format!("\n{}", Ui::paint(BOLD, "$ cutover init")));
    super::init::run(&inner, &crate::cli::InitArgs { force: true })?;

    ui.println(format!("\n{}", Ui::paint(BOLD, "$ cutover audit verify")));
    super::audit::run(
        &inner,
        &crate::cli::AuditArgs {
            command: Some(crate::cli::AuditCommand::Verify),
            since: None,
            action: None,
            subject: None,
            limit: None,
        },
    )?;

    if args.keep || args.dir.is_some() {
        if let Some(tmp) = tmp {
            let _ = tmp.keep();
        }
        ui.println(format!("\nThe sample project stays in {}", dir.display()));
    }
    Ok(())
}

fn git(dir: &Path, args: &[&str], when: &str) -> Result<()> {
    let out = Command::new("git")
        .arg("-C")
        .arg(dir)
        .args(args)
        // The sample's commits must not depend on this machine's git identity or hooks.
        .env("GIT_CONFIG_GLOBAL", "/dev/null")
        .env("GIT_CONFIG_NOSYSTEM", "1")
        .env("GIT_AUTHOR_NAME", "Demo Developer")
        .env("GIT_AUTHOR_EMAIL", "dev@example.com")
        .env("GIT_COMMITTER_NAME", "Demo Developer")
        .env("GIT_COMMITTER_EMAIL", "dev@example.com")
        .env("GIT_AUTHOR_DATE", when)
        .env("GIT_COMMITTER_DATE", when)
        .output()
        .map_err(|e| {
            CliError::usage("the demo needs `git` on PATH").with_cause(e).with_hint("install git (Debian: apt-get install git)")
        })?;
    if !out.status.success() {
        return Err(CliError::internal(format!("git {} failed", args.join(" ")))
            .with_cause(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(())
}

fn make_sample_repo(dir: &Path) -> Result<PathBuf> {
    std::fs::create_dir_all(dir).internal(|| format!("cannot create `{}`", dir.display()))?;
    let start = "2026-11-02T09:00:00Z";
    git(dir, &["init", "-q", "-b", "main"], start)?;
    for (i, (file, content, message)) in HISTORY.iter().enumerate() {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).internal(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, content).internal(|| format!("cannot write `{}`", path.display()))?;
        let when = format!("2026-11-{:02}T{:02}:00:00Z", 2 + i, 9 + i);
        git(dir, &["add", "--all"], &when)?;
        git(dir, &["commit", "-q", "-m", message], &when)?;
        if i == 2 {
            git(dir, &["tag", "-a", "v0.1.0", "-m", "v0.1.0"], &when)?;
        }
    }
    Ok(dir.to_path_buf())
}
