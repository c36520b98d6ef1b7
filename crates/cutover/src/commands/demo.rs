//! `cutover demo`: a self-contained tour on this machine. It builds a sample project (a git
//! repository with a Conventional Commits history and the test app as its service) in a temporary
//! directory and runs cutover's commands on it, on the embedded default store (SQLite).
//!
//! It needs nothing but this binary and the system `git`: the sample's service is `cutover testapp`.

use crate::cli::DemoArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result, ResultExt};
use crate::ui::{BOLD, Ui};
use clap::Parser;
use std::path::Path;
use std::process::Command;

/// The sample history: (file, content, commit message). Dates are fixed so the demo's notes and
/// hashes are the same on every run.
const HISTORY: &[(&str, &str, &str)] = &[
    (
        "README.md",
        "# hello\n\nA sample service released with cutover.\n",
        "chore: start the hello service",
    ),
    ("src/greeting.txt", "hello\n", "feat: greet visitors on /"),
    (
        "src/health.txt",
        "ok\n",
        "feat(api): add a /health endpoint for the router",
    ),
    (
        "src/greeting.txt",
        "hello, world\n",
        "fix: greet the whole world\n\nThe greeting forgot everyone but the first visitor.\n\nCloses #12",
    ),
    (
        "docs/ops.md",
        "# Operating hello\n",
        "docs: how to operate the service",
    ),
    ("src/cache.txt", "lru\n", "perf: cache rendered greetings"),
    (
        "src/config.txt",
        "port from PORT\n",
        "feat(config)!: read the port from PORT only\n\nBREAKING CHANGE: the --listen flag is gone; set PORT instead.",
    ),
    ("NOTES.txt", "wip\n", "Update NOTES.txt"),
    (
        "package-lock.json",
        PACKAGE_LOCK,
        "build(deps): lock the front-end dependencies",
    ),
];

/// A small real-world-shaped npm lockfile (v3) so that the bill of materials has content.
const PACKAGE_LOCK: &str = r#"{
  "name": "hello",
  "version": "0.0.0",
  "lockfileVersion": 3,
  "requires": true,
  "packages": {
    "": {
      "name": "hello",
      "version": "0.0.0",
      "license": "MIT",
      "dependencies": { "express": "^4.18.2", "lodash": "4.17.20" },
      "devDependencies": { "typescript": "^5.4.0" }
    },
    "node_modules/express": {
      "version": "4.18.2",
      "resolved": "https://registry.npmjs.org/express/-/express-4.18.2.tgz",
      "integrity": "sha512-5/PsL6iGPdfQ/lKM1UuielYgv3BUoJfz1aUwU9vHZ+J7gyvwdQXFEBIEIaxeGf0GIcreATNyBExtalisDbuMqQ==",
      "license": "MIT",
      "dependencies": { "cookie": "0.5.0" }
    },
    "node_modules/cookie": {
      "version": "0.5.0",
      "resolved": "https://registry.npmjs.org/cookie/-/cookie-0.5.0.tgz",
      "integrity": "sha512-YZ3GUyn/o8gfKJlnlX7g7xq4gyO6OSuhGPKaaGssGB2qgDUS0gPgtTvoyZLTt9Ab6dC4hfc9dV5arkvc/OCmrw==",
      "license": "MIT"
    },
    "node_modules/lodash": {
      "version": "4.17.20",
      "resolved": "https://registry.npmjs.org/lodash/-/lodash-4.17.20.tgz",
      "integrity": "sha512-PlhdFcillOINfeV7Ni6oF1TAEayyZBoZ8bcshTHqOYJYlrqzRK5hagpagky5o4HfCzzd1TRkXPMFq6cKk9rGmA==",
      "license": "MIT"
    },
    "node_modules/typescript": {
      "version": "5.4.5",
      "resolved": "https://registry.npmjs.org/typescript/-/typescript-5.4.5.tgz",
      "integrity": "sha512-vcI4UpRgg8xmWpCQbKEVQhxl3gNCDxbH5JE/HYw6yn2/7y6WVvs3aHPGVdVdt9JHMR7uXbM/wrfrpnYxNcbAPA==",
      "dev": true,
      "license": "Apache-2.0"
    }
  }
}
"#;

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

    let exe = std::env::current_exe().internal(|| "cannot find the cutover executable".into())?;
    let project = dir.display().to_string();
    step(ui, &project, &["init", "--force"])?;
    // The demo's own configuration: a QA check and a build that run this very binary, so the
    // tour needs nothing else installed.
    std::fs::write(dir.join("cutover.toml"), demo_config(&exe))
        .internal(|| "cannot write the demo's cutover.toml".into())?;
    git(&dir, &["add", "--all"], "2026-11-20T10:00:00Z")?;
    git(
        &dir,
        &["commit", "-q", "-m", "chore: release with cutover"],
        "2026-11-20T10:00:00Z",
    )?;

    step(ui, &project, &["plan"])?;
    step(ui, &project, &["notice", "--eta", "2026-12-01"])?;
    step(ui, &project, &["check"])?;
    step(ui, &project, &["release"])?;
    step(ui, &project, &["bom", "--check"])?;
    step(ui, &project, &["audit"])?;
    step(ui, &project, &["audit", "verify"])?;

    if args.keep || args.dir.is_some() {
        if let Some(tmp) = tmp {
            let _ = tmp.keep();
        }
        ui.println(format!("\nThe sample project stays in {}", dir.display()));
    }
    Ok(())
}

/// Runs one real command line against the sample project, showing it first.
fn step(ui: &Ui, project: &str, args: &[&str]) -> Result<()> {
    ui.println(format!(
        "\n{}",
        Ui::paint(BOLD, format!("$ cutover {}", args.join(" ")))
    ));
    let mut argv = vec!["cutover", "--project", project];
    if ui.quiet {
        argv.push("--quiet");
    }
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(&argv)
        .map_err(|e| CliError::internal(format!("the demo built a bad command line: {e}")))?;
    super::run(cli, ui)
}

fn demo_config(exe: &Path) -> String {
    let exe = toml_string(&exe.display().to_string());
    format!(
        r#"# The demo's configuration (see `cutover init` for a commented one).
[project]
name = "hello"

[versioning]
issue_link = "https://example.com/hello/issues/{{id}}"

[[checks]]
name = "version"
run = [{exe}, "--version"]
timeout = "1m"

[[checks]]
name = "help"
run = [{exe}, "testapp", "--help"]
timeout = "1m"
required = false

[build]
run = [{exe}, "--version"]
artifact = ["src"]
"#
    )
}

/// A TOML basic string: the executable's path may hold any character.
fn toml_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            c if c.is_control() => out.push_str(&format!("\\u{:04X}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
    out
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
            CliError::usage("the demo needs `git` on PATH")
                .with_cause(e)
                .with_hint("install git (Debian: apt-get install git)")
        })?;
    if !out.status.success() {
        return Err(CliError::internal(format!("git {} failed", args.join(" ")))
            .with_cause(String::from_utf8_lossy(&out.stderr).trim().to_owned()));
    }
    Ok(())
}

fn make_sample_repo(dir: &Path) -> Result<()> {
    std::fs::create_dir_all(dir).internal(|| format!("cannot create `{}`", dir.display()))?;
    let start = "2026-11-02T09:00:00Z";
    git(dir, &["init", "-q", "-b", "main"], start)?;
    for (i, (file, content, message)) in HISTORY.iter().enumerate() {
        let path = dir.join(file);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent)
                .internal(|| format!("cannot create `{}`", parent.display()))?;
        }
        std::fs::write(&path, content).internal(|| format!("cannot write `{}`", path.display()))?;
        let when = format!("2026-11-{:02}T{:02}:00:00Z", 2 + i, 9 + i);
        git(dir, &["add", "--all"], &when)?;
        git(dir, &["commit", "-q", "-m", message], &when)?;
        if i == 2 {
            git(dir, &["tag", "-a", "v0.1.0", "-m", "v0.1.0"], &when)?;
        }
    }
    Ok(())
}
