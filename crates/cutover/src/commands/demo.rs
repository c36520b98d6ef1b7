//! `cutover demo`: a self-contained tour on this machine. It builds a sample project (a git
//! repository with a Conventional Commits history and the test app as its service) in a temporary
//! directory and runs cutover's real command lines on it, on the embedded default store (SQLite)
//! and the local agent: v0.1.0 shipped through staging (blue-green) to production (canary), a
//! feature shipped as v0.2.0 through the canary, a faulty v0.3.0 rolled back automatically, then
//! status, history, the verified proof of delivery and the audit chain.
//!
//! It needs nothing but this binary and the system `git`: the sample's service is `cutover testapp`.

use crate::cli::DemoArgs;
use crate::context::Ctx;
use crate::error::{CliError, Result, ResultExt};
use crate::ui::{BOLD, Ui};
use clap::Parser;
use std::collections::BTreeMap;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

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
    let keep = args.keep || args.dir.is_some();
    let ui = ctx.ui;
    ui.status("Creating", format!("a sample project in {}", dir.display()));
    make_sample_repo(&dir)?;
    let project = dir.display().to_string();
    let result = tour(ui, &dir, &project);
    if keep {
        if let Some(tmp) = tmp {
            let _ = tmp.keep();
        }
        if result.is_ok() {
            match start_dashboard(&dir) {
                Ok(url) => ui.println(format!(
                    "{} {url} (`cutover serve`, read-only without a token; its pid is in \
                     .cutover/serve.pid, its log in .cutover/serve.log)",
                    Ui::paint(BOLD, "the dashboard:")
                )),
                Err(e) => ui.warn(format!("the dashboard did not start: {e}")),
            }
        }
        ui.println(format!(
            "\nThe sample project stays in {}; its services keep running \
             (`cutover --project {} agent stop --local --all` stops them).",
            dir.display(),
            dir.display()
        ));
    } else {
        // Nothing the demo started may outlive it: the agent, its routers and the slots.
        let _ = quiet_step(ui, &project, &["agent", "stop", "--local", "--all"]);
    }
    result
}

/// The tour proper: three ships through staging (blue-green) and production (canary).
fn tour(ui: &Ui, dir: &Path, project: &str) -> Result<()> {
    let exe = std::env::current_exe().internal(|| "cannot find the cutover executable".into())?;
    let staging = free_port_triple(None)?;
    let production = free_port_triple(Some(staging))?;
    step(ui, project, &["init", "--force"])?;
    // The demo's own configuration: QA checks, a build and a service that run this very binary,
    // so the tour needs nothing else installed.
    std::fs::write(
        dir.join("cutover.toml"),
        demo_config(&exe, staging, production),
    )
    .internal(|| "cannot write the demo's cutover.toml".into())?;
    write(dir, "service/greeting.txt", "hello, world\n")?;
    write(dir, "service/faults.conf", "# no faults in this release\n")?;
    commit(dir, "chore: release with cutover", "2026-11-20T10:00:00Z")?;

    step(ui, project, &["plan"])?;
    step(ui, project, &["notice", "--eta", "2026-12-01"])?;

    // Steady traffic through both routers, so the canary analysis and the observation windows
    // judge real requests.
    let load = Load::start(&[staging, production]);
    let outcome = (|| {
        step(ui, project, &["ship", "--to", "production"])?;
        step(ui, project, &["bom", "--check"])?;

        write(dir, "service/greeting.txt", "hello, world, faster\n")?;
        commit(
            dir,
            "feat: greet in the visitor's language",
            "2026-11-21T10:00:00Z",
        )?;
        step(ui, project, &["ship", "--to", "production"])?;

        // A release whose artifact carries a fault: half of its answers are 500s.
        write(
            dir,
            "service/faults.conf",
            "# a bad cache makes half of the answers fail\nerror_rate = 0.5\n",
        )?;
        commit(
            dir,
            "feat: cache greetings per language",
            "2026-11-22T10:00:00Z",
        )?;
        expect_failure(ui, project, &["ship", "--to", "production"])?;
        Ok::<(), CliError>(())
    })();
    let served = load.stop();
    outcome?;

    step(ui, project, &["status"])?;
    step(ui, project, &["history"])?;
    step(ui, project, &["proof", "production", "--verify"])?;
    step(ui, project, &["audit", "verify"])?;
    step(ui, project, &["metrics", "--env", "production"])?;
    ui.println(format!(
        "\n{} {served}",
        Ui::paint(BOLD, "requests during the tour:")
    ));
    ui.println(format!(
        "{} http://127.0.0.1:{} (staging), http://127.0.0.1:{} (production)",
        Ui::paint(BOLD, "the app:"),
        staging,
        production
    ));
    Ok(())
}

/// Starts `cutover serve --public-read` for the kept project, detached (its own process group, so
/// it outlives the demo), and returns its URL once it answers.
fn start_dashboard(dir: &Path) -> std::result::Result<String, String> {
    let exe =
        std::env::current_exe().map_err(|e| format!("cannot find the cutover executable: {e}"))?;
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_err(|e| format!("no free port: {e}"))?
        .port();
    let state = dir.join(".cutover");
    let log = std::fs::File::create(state.join("serve.log"))
        .map_err(|e| format!("cannot write .cutover/serve.log: {e}"))?;
    let err = log.try_clone().map_err(|e| e.to_string())?;
    let listen = format!("127.0.0.1:{port}");
    let mut cmd = Command::new(exe);
    cmd.current_dir(dir)
        .arg("--project")
        .arg(dir)
        .args(["serve", "--listen", &listen, "--public-read"])
        .stdin(Stdio::null())
        .stdout(log)
        .stderr(err);
    std::os::unix::process::CommandExt::process_group(&mut cmd, 0);
    let child = cmd
        .spawn()
        .map_err(|e| format!("cannot start cutover serve: {e}"))?;
    std::fs::write(state.join("serve.pid"), format!("{}\n", child.id()))
        .map_err(|e| format!("cannot write .cutover/serve.pid: {e}"))?;
    // A liveness bound: the server binds at once unless something is wrong.
    let deadline = Instant::now() + Duration::from_secs(10);
    while Instant::now() < deadline {
        if std::net::TcpStream::connect(&listen).is_ok() {
            return Ok(format!("http://{listen}/"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    Err(format!(
        "nothing answered on {listen} (see .cutover/serve.log)"
    ))
}

/// Runs one real command line against the sample project, showing it first.
fn step(ui: &Ui, project: &str, args: &[&str]) -> Result<()> {
    ui.println(format!(
        "\n{}",
        Ui::paint(BOLD, format!("$ cutover {}", args.join(" ")))
    ));
    quiet_step(ui, project, args)
}

fn quiet_step(ui: &Ui, project: &str, args: &[&str]) -> Result<()> {
    let mut argv = vec!["cutover", "--project", project];
    if ui.quiet {
        argv.push("--quiet");
    }
    argv.extend_from_slice(args);
    let cli = crate::cli::Cli::try_parse_from(&argv)
        .map_err(|e| CliError::internal(format!("the demo built a bad command line: {e}")))?;
    super::run(cli, ui)
}

/// A step that must fail with exit 1 (the faulty release is rolled back).
fn expect_failure(ui: &Ui, project: &str, args: &[&str]) -> Result<()> {
    match step(ui, project, args) {
        Err(e) if e.exit_code() == 1 => {
            ui.status("as expected", format!("{} (exit 1)", e.message));
            Ok(())
        }
        Err(e) => Err(e),
        Ok(()) => Err(CliError::internal(
            "the faulty release went live; the demo expected it to be rolled back",
        )),
    }
}

/// Background HTTP/1.1 requests to the routers, about 50 a second each.
struct Load {
    stop: Arc<AtomicBool>,
    threads: Vec<std::thread::JoinHandle<BTreeMap<u16, u64>>>,
}

impl Load {
    fn start(ports: &[u16]) -> Load {
        let stop = Arc::new(AtomicBool::new(false));
        let threads = ports
            .iter()
            .map(|&port| {
                let stop = stop.clone();
                std::thread::spawn(move || {
                    let mut statuses = BTreeMap::new();
                    while !stop.load(Ordering::Relaxed) {
                        // Before the first deployment nothing listens: not counted.
                        if let Some(status) = get(port) {
                            *statuses.entry(status).or_insert(0) += 1;
                        }
                        std::thread::sleep(Duration::from_millis(20));
                    }
                    statuses
                })
            })
            .collect();
        Load { stop, threads }
    }

    /// Stops the requests; what they were answered, by status.
    fn stop(self) -> String {
        self.stop.store(true, Ordering::Relaxed);
        let mut all: BTreeMap<u16, u64> = BTreeMap::new();
        for t in self.threads {
            if let Ok(statuses) = t.join() {
                for (status, n) in statuses {
                    *all.entry(status).or_insert(0) += n;
                }
            }
        }
        all.iter()
            .map(|(status, n)| format!("{n} answered {status}"))
            .collect::<Vec<_>>()
            .join(", ")
    }
}

/// One `GET /` on loopback; the status code, or `None` when nothing answers.
fn get(port: u16) -> Option<u16> {
    use std::io::{Read as _, Write as _};
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], port));
    let mut s = std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    s.write_all(b"GET / HTTP/1.1\r\nHost: demo\r\nConnection: close\r\n\r\n")
        .ok()?;
    let mut head = [0_u8; 12];
    s.read_exact(&mut head).ok()?;
    std::str::from_utf8(&head[9..12]).ok()?.parse().ok()
}

/// A port whose next two ports are free too (the router's, then the blue and green slots'),
/// away from `avoid`'s triple.
///
/// The ports are picked below the kernel's ephemeral range: the slots bind theirs only when they
/// start, and until then any outgoing connection on a busy machine (the demo's own load client
/// included) may be given an ephemeral source port, which a port asked of the kernel with `:0`
/// always is.
fn free_port_triple(avoid: Option<u16>) -> Result<u16> {
    let low = ephemeral_low();
    let (from, to) = if low > 12_000 {
        (10_000_u32, u32::from(low) - 3)
    } else {
        (u32::from(low).max(1_024), 65_000)
    };
    let mut seed = u32::from_le_bytes(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.subsec_nanos())
            .unwrap_or(0)
            .to_le_bytes(),
    ) ^ std::process::id().rotate_left(16);
    for _ in 0..200 {
        // xorshift: a cheap spread over the range; no need for a cryptographic source here.
        seed ^= seed << 13;
        seed ^= seed >> 17;
        seed ^= seed << 5;
        let Ok(port) = u16::try_from(from + seed % (to - from)) else {
            continue;
        };
        if avoid.is_some_and(|a| port.abs_diff(a) < 3) {
            continue;
        }
        if (0..3).all(|i| std::net::TcpListener::bind(("127.0.0.1", port + i)).is_ok()) {
            return Ok(port);
        }
    }
    Err(CliError::internal(
        "cannot find three consecutive free loopback ports",
    ))
}

/// The first port of the kernel's ephemeral range (Linux), or the IANA default elsewhere.
fn ephemeral_low() -> u16 {
    std::fs::read_to_string("/proc/sys/net/ipv4/ip_local_port_range")
        .ok()
        .and_then(|s| s.split_whitespace().next()?.parse().ok())
        .unwrap_or(49_152)
}

fn write(dir: &Path, file: &str, content: &str) -> Result<()> {
    let path = dir.join(file);
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .internal(|| format!("cannot create `{}`", parent.display()))?;
    }
    std::fs::write(&path, content).internal(|| format!("cannot write `{}`", path.display()))
}

fn commit(dir: &Path, message: &str, when: &str) -> Result<()> {
    git(dir, &["add", "--all"], when)?;
    git(dir, &["commit", "-q", "-m", message], when)
}

fn demo_config(exe: &Path, staging: u16, production: u16) -> String {
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
artifact = ["service"]

# The service is the test app built into cutover; a release's artifact may carry a faults file.
[service]
start = [{exe}, "testapp", "--port", "{{port}}", "--version", "{{version}}", "--faults-file", "{{release_dir}}/service/faults.conf"]
health = {{ path = "/health", interval = "200ms", healthy_after = 2, start_timeout = "20s" }}
version_probe = {{ path = "/version" }}
stop_timeout = "2s"
drain_timeout = "2s"

[environments.staging]
hosts = ["local"]
listen = "127.0.0.1:{staging}"
strategy = "blue-green"
observe = "3s"

[environments.production]
hosts = ["local"]
listen = "127.0.0.1:{production}"
promote_from = "staging"
strategy = {{ canary = [25, 100], step = "2s", max_error_rate = 0.05, min_requests = 10 }}
observe = "2s"
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
    }
    Ok(())
}
