//! `cutover init`: detects the project's lockfiles and likely build/test commands, and renders a
//! commented `cutover.toml` that loads with the strict loader.
//!
//! Commented-out example settings are written as `#key = value` (no space after `#`), explanations
//! as `# text`; uncommenting the examples gives a configuration that also loads.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

/// A lockfile cutover knows, with the tool that writes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Lockfile {
    /// `Cargo.lock` (Rust, cargo).
    Cargo,
    /// `package-lock.json` (npm).
    Npm,
    /// `yarn.lock` (Yarn).
    Yarn,
    /// `pnpm-lock.yaml` (pnpm).
    Pnpm,
    /// `poetry.lock` (Poetry).
    Poetry,
    /// `uv.lock` (uv).
    Uv,
    /// `requirements.txt` (pip).
    Requirements,
    /// `composer.lock` (Composer).
    Composer,
    /// `go.sum` (Go modules).
    Go,
    /// `Gemfile.lock` (Bundler).
    Bundler,
    /// `gradle.lockfile` (Gradle).
    Gradle,
}

impl Lockfile {
    /// Every lockfile, in the order detection reports them (and picks the primary one).
    pub const ALL: [Lockfile; 11] = [
        Lockfile::Cargo,
        Lockfile::Npm,
        Lockfile::Yarn,
        Lockfile::Pnpm,
        Lockfile::Poetry,
        Lockfile::Uv,
        Lockfile::Requirements,
        Lockfile::Composer,
        Lockfile::Go,
        Lockfile::Bundler,
        Lockfile::Gradle,
    ];

    /// The file name at the project root.
    pub fn file_name(self) -> &'static str {
        match self {
            Lockfile::Cargo => "Cargo.lock",
            Lockfile::Npm => "package-lock.json",
            Lockfile::Yarn => "yarn.lock",
            Lockfile::Pnpm => "pnpm-lock.yaml",
            Lockfile::Poetry => "poetry.lock",
            Lockfile::Uv => "uv.lock",
            Lockfile::Requirements => "requirements.txt",
            Lockfile::Composer => "composer.lock",
            Lockfile::Go => "go.sum",
            Lockfile::Bundler => "Gemfile.lock",
            Lockfile::Gradle => "gradle.lockfile",
        }
    }

    /// The tool's name, for comments.
    pub fn tool(self) -> &'static str {
        match self {
            Lockfile::Cargo => "cargo",
            Lockfile::Npm => "npm",
            Lockfile::Yarn => "yarn",
            Lockfile::Pnpm => "pnpm",
            Lockfile::Poetry => "poetry",
            Lockfile::Uv => "uv",
            Lockfile::Requirements => "pip",
            Lockfile::Composer => "composer",
            Lockfile::Go => "go",
            Lockfile::Bundler => "bundler",
            Lockfile::Gradle => "gradle",
        }
    }
}

/// What `detect` found in a project directory.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Detected {
    /// The project's name: from `Cargo.toml`, `package.json`, `pyproject.toml`, `go.mod` or
    /// `composer.json`, else the directory's name.
    pub name: String,
    /// The lockfiles present at the root, in [`Lockfile::ALL`] order.
    pub lockfiles: Vec<Lockfile>,
    /// The likely build command of the primary (first) ecosystem.
    pub build: Option<Vec<String>>,
    /// Where that build leaves its output (the artifact), when known.
    pub artifact: Option<String>,
    /// The likely test command of each detected ecosystem (deduplicated), primary first.
    pub tests: Vec<(Lockfile, Vec<String>)>,
}

fn argv(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|p| p.to_string()).collect()
}

fn read_toml(dir: &Path, file: &str) -> Option<toml::Table> {
    std::fs::read_to_string(dir.join(file)).ok()?.parse().ok()
}

fn read_json(dir: &Path, file: &str) -> Option<serde_json::Value> {
    serde_json::from_str(&std::fs::read_to_string(dir.join(file)).ok()?).ok()
}

fn project_name(dir: &Path) -> String {
    let from_cargo = read_toml(dir, "Cargo.toml")
        .and_then(|t| t.get("package")?.get("name")?.as_str().map(str::to_string));
    let from_npm = || {
        read_json(dir, "package.json").and_then(|v| {
            let n = v.get("name")?.as_str()?;
            // A scoped npm name "@org/app" names the project "app".
            Some(n.rsplit('/').next().unwrap_or(n).to_string())
        })
    };
    let from_py = || {
        read_toml(dir, "pyproject.toml").and_then(|t| {
            t.get("project")
                .and_then(|p| p.get("name"))
                .or_else(|| t.get("tool")?.get("poetry")?.get("name"))?
                .as_str()
                .map(str::to_string)
        })
    };
    let from_go = || {
        let text = std::fs::read_to_string(dir.join("go.mod")).ok()?;
        let module = text
            .lines()
            .find_map(|l| l.trim().strip_prefix("module "))?
            .trim();
        module.rsplit('/').next().map(str::to_string)
    };
    let from_composer = || {
        read_json(dir, "composer.json").and_then(|v| {
            let n = v.get("name")?.as_str()?;
            Some(n.rsplit('/').next().unwrap_or(n).to_string())
        })
    };
    let from_dir = || {
        dir.canonicalize()
            .ok()
            .and_then(|d| d.file_name().map(|n| n.to_string_lossy().into_owned()))
    };
    from_cargo
        .or_else(from_npm)
        .or_else(from_py)
        .or_else(from_go)
        .or_else(from_composer)
        .or_else(from_dir)
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "app".to_string())
}

fn npm_has_script(dir: &Path, script: &str) -> bool {
    read_json(dir, "package.json")
        .and_then(|v| v.get("scripts")?.get(script).cloned())
        .is_some()
}

fn commands(
    dir: &Path,
    lock: Lockfile,
    name: &str,
) -> (Option<Vec<String>>, Option<String>, Vec<String>) {
    match lock {
        Lockfile::Cargo => (
            Some(argv(&["cargo", "build", "--release"])),
            Some(format!("target/release/{name}")),
            argv(&["cargo", "test"]),
        ),
        Lockfile::Npm | Lockfile::Yarn | Lockfile::Pnpm => {
            let tool = lock.tool();
            // Without a package.json to read, assume the usual scripts exist.
            let has_pkg = dir.join("package.json").exists();
            let build =
                (!has_pkg || npm_has_script(dir, "build")).then(|| argv(&[tool, "run", "build"]));
            let artifact = build.as_ref().map(|_| "dist".to_string());
            (build, artifact, argv(&[tool, "test"]))
        }
        Lockfile::Poetry => (
            Some(argv(&["poetry", "build"])),
            Some("dist".into()),
            argv(&["poetry", "run", "pytest"]),
        ),
        Lockfile::Uv => (
            Some(argv(&["uv", "build"])),
            Some("dist".into()),
            argv(&["uv", "run", "pytest"]),
        ),
        Lockfile::Requirements => (None, None, argv(&["python", "-m", "pytest"])),
        Lockfile::Composer => (
            Some(argv(&[
                "composer",
                "install",
                "--no-dev",
                "--optimize-autoloader",
            ])),
            None,
            argv(&["composer", "test"]),
        ),
        Lockfile::Go => (
            Some(argv(&["go", "build", "-o", "bin/", "./..."])),
            Some("bin".into()),
            argv(&["go", "test", "./..."]),
        ),
        Lockfile::Bundler => (None, None, argv(&["bundle", "exec", "rake"])),
        Lockfile::Gradle => (
            Some(argv(&["./gradlew", "build"])),
            Some("build/libs".into()),
            argv(&["./gradlew", "test"]),
        ),
    }
}

/// Looks at the project root `dir`: lockfiles, name, likely build and test commands.
pub fn detect(dir: &Path) -> Detected {
    let name = project_name(dir);
    let lockfiles: Vec<Lockfile> = Lockfile::ALL
        .into_iter()
        .filter(|l| dir.join(l.file_name()).is_file())
        .collect();
    let mut build = None;
    let mut artifact = None;
    let mut tests: Vec<(Lockfile, Vec<String>)> = Vec::new();
    for (i, lock) in lockfiles.iter().enumerate() {
        let (b, a, t) = commands(dir, *lock, &name);
        if i == 0 {
            build = b;
            artifact = a;
        }
        if !tests.iter().any(|(_, existing)| *existing == t) {
            tests.push((*lock, t));
        }
    }
    Detected {
        name,
        lockfiles,
        build,
        artifact,
        tests,
    }
}

fn toml_str(s: &str) -> String {
    toml::Value::String(s.to_string()).to_string()
}

fn toml_argv(a: &[String]) -> String {
    let parts: Vec<String> = a.iter().map(|p| toml_str(p)).collect();
    format!("[{}]", parts.join(", "))
}

/// A commented `cutover.toml` for `detected`; it loads with [`crate::load_str`].
pub fn render(detected: &Detected) -> String {
    let mut s = String::new();
    let name = toml_str(&detected.name);
    let _ = writeln!(
        s,
        "# cutover.toml: how this project is released and delivered.\n\
         # Every setting is explained; lines starting with `#key` are optional examples: remove\n\
         # the `#` to use them. Reference: `cutover config schema`; check: `cutover config show`.\n\
         # Any key can be overridden from the environment: CUTOVER_PROJECT__TAG_FORMAT=... sets\n\
         # project.tag_format (segments separated by a double underscore)."
    );
    if detected.lockfiles.is_empty() {
        let _ = writeln!(s, "#\n# No lockfile was found at the project root.");
    } else {
        let found: Vec<String> = detected
            .lockfiles
            .iter()
            .map(|l| format!("{} ({})", l.file_name(), l.tool()))
            .collect();
        let _ = writeln!(s, "#\n# Lockfiles found: {}.", found.join(", "));
    }

    let _ = writeln!(
        s,
        r#"
[project]
# The project's name, used in notices, artifacts and as the service name.
name = {name}
# Release tags: "{{version}}" is replaced by the SemVer version. Other tags are ignored.
tag_format = "v{{version}}"
# The branch releases are cut from.
main_branch = "main"

[versioning]
# The first release's version, when there is no release tag yet.
initial = "0.1.0"
# On 0.x, a breaking change bumps the minor version ("minor") or goes to 1.0.0 ("major").
zero_major_breaking = "minor"
# Commits that are not Conventional Commits: "ignore", list them under "other", or "error".
unconventional = "other"
# Merge commits: "skip" (the merged commits still count) or "include".
merges = "skip"
# Link issue references like #123 in the notes:
#issue_link = "https://github.com/OWNER/REPO/issues/{{id}}"

[versioning.changelog]
# The changelog `cutover release` prepends each release's section to (and commits).
file = "CHANGELOG.md"
commit_message = "chore(release): {{version}}"
# A minijinja template for notes and changelog sections (default: built-in Markdown):
#template = "release-notes.md.j2"
"#
    );

    let _ = writeln!(
        s,
        "# QA checks run through cutover's job queue before a release or deployment.\n\
         # `run` is an argv array: cutover never runs shell strings. A failing check with\n\
         # `required = true` (the default) blocks release and deploy."
    );
    if detected.tests.is_empty() {
        let _ = writeln!(
            s,
            "#[[checks]]\n#name = \"test\"\n#run = [\"make\", \"test\"]\n#timeout = \"30m\""
        );
    }
    for (i, (lock, test)) in detected.tests.iter().enumerate() {
        let check_name = if i == 0 {
            "test".to_string()
        } else {
            format!("test-{}", lock.tool())
        };
        let _ = writeln!(
            s,
            "[[checks]]\nname = {}\nrun = {}\ntimeout = \"30m\"\n",
            toml_str(&check_name),
            toml_argv(test)
        );
    }
    let _ = writeln!(
        s,
        "#[[checks]]\n#name = \"lint\"\n#run = [\"make\", \"lint\"]\n#required = false\n"
    );

    let _ = writeln!(
        s,
        "# How the release artifact is built. `artifact` lists the files and directories packed\n\
         # into a reproducible archive that is deployed to the hosts."
    );
    match &detected.build {
        Some(build) => {
            let artifact = detected.artifact.clone().unwrap_or_else(|| "dist".into());
            let _ = writeln!(
                s,
                "[build]\nrun = {}\nartifact = [{}]\n",
                toml_argv(build),
                toml_str(&artifact)
            );
        }
        None => {
            let _ = writeln!(
                s,
                "#[build]\n#run = [\"make\", \"build\"]\n#artifact = [\"dist\"]\n"
            );
        }
    }

    let start = match &detected.artifact {
        Some(a) if detected.lockfiles.first() == Some(&Lockfile::Cargo) => toml_argv(&[
            format!("{{release_dir}}/{a}"),
            "--port".into(),
            "{port}".into(),
        ]),
        _ => toml_argv(&[
            "{release_dir}/bin/server".into(),
            "--port".into(),
            "{port}".into(),
        ]),
    };
    let _ = writeln!(
        s,
        r#"# How the service runs on a host. In `start`, {{release_dir}}, {{port}}, {{version}} and {{slot}}
# are replaced inside arguments; PORT and CUTOVER_VERSION are also set in its environment.
#[service]
#start = {start}
#stop_timeout = "10s"
#drain_timeout = "30s"
#keep_releases = 5
#smoke = [["curl", "-fsS", "{{url}}/health"]]
# Health: `path` (HTTP), `tcp = true` or `command`; the version probe's body must equal the version.
#health = {{ path = "/health", interval = "500ms", timeout = "2s", healthy_after = 2 }}
#version_probe = {{ path = "/version" }}
#restart = {{ max = 5, backoff = "1s" }}
#env = {{ RUST_LOG = "info" }}
# Secrets are references, never values: {{ env = "VAR" }} or {{ file = "path" }}.
#secrets = {{ API_KEY = {{ env = "HELLO_API_KEY" }} }}

# Environments, deployed in the order of their `promote_from` chain. Hosts are agent names;
# "local" is this machine. Strategies: "recreate", "rolling", "blue-green", "canary", or tables
# such as {{ canary = [5, 25, 100], step = "2m", max_error_rate = 0.01 }}.
#[environments.staging]
#hosts = ["local"]
#strategy = "blue-green"
#listen = "127.0.0.1:8080"
#url = "http://127.0.0.1:8080"
#observe = "1m"

#[environments.production]
#hosts = ["local"]
#strategy = {{ canary = [5, 25, 100], step = "2m", max_error_rate = 0.01 }}
#listen = "127.0.0.1:8090"
#promote_from = "staging"
# Gates: time live in staging, approvals, and freeze windows (weekly or dates, with a time zone).
#soak = "30m"
#approvals = 1
#separate_approver = true
#freeze = ["Fri 16:00-Mon 08:00 UTC", "2026-12-24..2026-12-26"]
#keep_warm = "30m"

# Notifications: the advance shipping notice, released, delivered, failed, rolled-back, incident.
#[notify]
#events = ["notice", "released", "delivered", "failed", "rolled-back", "incident"]
#recipients = ["team@example.com"]

#[[notify.slack]]
#url = {{ env = "SLACK_WEBHOOK_URL" }}

#[[notify.webhook]]
#url = "https://hooks.example.com/cutover"
#secret = {{ env = "CUTOVER_WEBHOOK_SECRET" }}

#[notify.email]
#smtp = {{ host = "smtp.example.com", port = 587, username = "cutover", password = {{ env = "SMTP_PASSWORD" }} }}
#from = "cutover@example.com"

#[notify.atom]
#max_entries = 50

# License policy for the bill of materials (`cutover bom --check`). Empty `allow`: no policy.
[licenses]
#allow = ["MIT", "Apache-2.0", "BSD-3-Clause", "ISC"]
# Unknown licenses: "allow", "warn" or "deny".
unknown = "warn"
#[[licenses.exceptions]]
#package = "ring"
#allow = ["OpenSSL"]
#reason = "reviewed"

# Known vulnerabilities (offline database, `cutover vulns`): the lowest severity that fails
# ("none", "low", "medium", "high", "critical"), and advisories ignored on purpose.
[vulns]
fail_on = "high"
#[[vulns.ignore]]
#id = "RUSTSEC-2023-0071"
#until = "2026-12-31"
#reason = "not reachable: we never decrypt"

# The application's own database: migrations bound to releases, recovery points, drills.
#[database]
#engine = "postgres"
#url = {{ env = "DATABASE_URL" }}
#migrations = "migrations"
#contract = "after-observe"
#drill = {{ query = "select 1" }}"#
    );
    s
}

/// What [`write`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Written {
    /// The configuration file written.
    pub config: PathBuf,
    /// What was detected (the file is `render(&detected)`).
    pub detected: Detected,
    /// Whether `.cutover/` was added to `.gitignore` (false when it was already ignored).
    pub gitignore_updated: bool,
}

/// Why `cutover init` wrote nothing.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// The configuration exists and `force` was not given.
    #[error("{} already exists", path.display())]
    Exists {
        /// The existing file.
        path: PathBuf,
    },
    /// A file could not be written.
    #[error("cannot write {}: {source}", path.display())]
    Io {
        /// The file or directory.
        path: PathBuf,
        /// The IO error.
        #[source]
        source: std::io::Error,
    },
}

impl InitError {
    /// A hint on how to proceed.
    pub fn hint(&self) -> Option<String> {
        match self {
            InitError::Exists { .. } => {
                Some("pass `--force` to overwrite it, or edit it by hand".into())
            }
            InitError::Io { .. } => None,
        }
    }
}

/// `cutover init` in `dir`: writes `cutover.toml` (refusing to overwrite an existing one unless
/// `force`), creates `.cutover/` and makes sure `.gitignore` ignores it.
pub fn write(dir: &Path, force: bool) -> Result<Written, InitError> {
    let config = dir.join(crate::FILE_NAME);
    if config.exists() && !force {
        return Err(InitError::Exists { path: config });
    }
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| InitError::Io { path, source }
    };
    let detected = detect(dir);
    std::fs::write(&config, render(&detected)).map_err(io(&config))?;
    let state = dir.join(".cutover");
    std::fs::create_dir_all(&state).map_err(io(&state))?;
    let gitignore = dir.join(".gitignore");
    let existing = match std::fs::read_to_string(&gitignore) {
        Ok(s) => s,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => String::new(),
        Err(e) => return Err(io(&gitignore)(e)),
    };
    let ignored = existing
        .lines()
        .map(str::trim)
        .any(|l| matches!(l, ".cutover" | ".cutover/" | "/.cutover" | "/.cutover/"));
    if !ignored {
        let mut text = existing;
        if !text.is_empty() && !text.ends_with('\n') {
            text.push('\n');
        }
        text.push_str(".cutover/\n");
        std::fs::write(&gitignore, text).map_err(io(&gitignore))?;
    }
    Ok(Written {
        config,
        detected,
        gitignore_updated: !ignored,
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    #[test]
    fn toml_argv_quotes() {
        assert_eq!(
            toml_argv(&argv(&["a b", "q\"uote"])),
            r#"["a b", 'q"uote']"#
        );
    }
}
