//! The embedded control plane and the local agent (`agent start/stop --local`, `serve`, `logs`)
//! and deployments through the real command line: a project whose service is `cutover testapp`,
//! deployed to the local agent (and to extra agents on loopback), requests through the router.

use std::io::{Read as _, Write as _};
use std::net::{SocketAddr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use crate::support::{Project, Run, hermetic_env};

pub use cutover_testkit::free_ports;

/// A project deployable to `local`: the service is this very binary's test app, and every
/// command runs against it. Dropping it stops the local agent and its services.
pub struct Deployable {
    pub p: Project,
    pub listen: SocketAddr,
}

impl Drop for Deployable {
    fn drop(&mut self) {
        let _ = self.p.cutover(&["agent", "stop", "--local", "--all"]);
        // A test that failed while the agent was stopped (or killed) leaves its slots running:
        // `agent stop` only reaches the services of a running agent.
        kill_processes_under(self.p.path());
    }
}

/// Kills (SIGKILL) every process whose working directory is under `dir`: the test apps of the
/// slots run in their release directories under the agents' roots.
pub fn kill_processes_under(dir: &Path) {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    let Ok(procs) = std::fs::read_dir("/proc") else {
        return;
    };
    for entry in procs.flatten() {
        if let Ok(cwd) = std::fs::read_link(entry.path().join("cwd"))
            && cwd.starts_with(&dir)
            && let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>()
            && pid != std::process::id()
        {
            let _ = Command::new("kill")
                .args(["-KILL", &pid.to_string()])
                .status();
        }
    }
}

fn toml_str(s: &str) -> String {
    format!("{s:?}")
}

impl Deployable {
    /// `extra_env` is appended to `[environments.staging]`; `extra` to the file.
    pub fn new(extra_env: &str, extra: &str) -> Self {
        let p = Project::new();
        let ports = free_ports(3);
        let listen: SocketAddr = format!("127.0.0.1:{}", ports[0]).parse().unwrap();
        let exe = toml_str(env!("CARGO_BIN_EXE_cutover"));
        p.write(
            "cutover.toml",
            &format!(
                r#"[project]
name = "hello"

[build]
run = ["true"]
artifact = ["README.md"]

[service]
start = [{exe}, "testapp", "--port", "{{port}}", "--version", "{{version}}"]
health = {{ path = "/health", interval = "50ms", timeout = "1s", healthy_after = 2, start_timeout = "20s" }}
version_probe = {{ path = "/version" }}
stop_timeout = "2s"
drain_timeout = "2s"
ports = {{ blue = {blue}, green = {green} }}

[environments.staging]
hosts = ["local"]
strategy = "blue-green"
listen = "{listen}"
observe = "300ms"
{extra_env}
{extra}"#,
                blue = ports[1],
                green = ports[2],
            ),
        );
        p.write(".gitignore", "/.cutover/\n");
        p.git(&["add", "."]);
        p.git(&["commit", "-q", "-m", "feat: deploy hello"]);
        Self { p, listen }
    }

    /// Records release `version` (a commit first, so each release has its own).
    pub fn release(&self, version: &str) {
        self.p.write("README.md", &format!("# hello {version}\n"));
        self.p
            .git(&["commit", "-q", "-am", &format!("fix: release {version}")]);
        self.p.cutover(&["release", "--version", version]).success();
    }

    pub fn cutover(&self, args: &[&str]) -> Run {
        self.p.cutover(args)
    }

    pub fn audit_count(&self) -> usize {
        let run = self.p.cutover(&["--json", "audit"]);
        run.success();
        run.json()["events"].as_array().map_or(0, Vec::len)
    }
}

/// One HTTP/1.1 GET through the router; the status and body, or None when nothing answered.
pub fn get(addr: SocketAddr, path: &str) -> Option<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(5))).ok()?;
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .ok()?;
    let mut buf = Vec::new();
    s.read_to_end(&mut buf).ok()?;
    let text = String::from_utf8_lossy(&buf).into_owned();
    let status: u16 = text.split(' ').nth(1)?.parse().ok()?;
    let body = text.split("\r\n\r\n").nth(1).unwrap_or_default().to_owned();
    Some((status, body))
}

/// The version the router's `/version` answers with.
pub fn served_version(addr: SocketAddr) -> Option<String> {
    get(addr, "/version").and_then(|(s, b)| (s == 200).then(|| b.trim().to_owned()))
}

fn pid_alive(pid: u32) -> bool {
    std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| !c.is_empty())
}

fn agent_pid(p: &Project) -> Option<u32> {
    std::fs::read_to_string(p.path().join(".cutover/agent.pid"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

#[test]
fn agent_start_local_starts_one_daemon_reuses_it_and_stop_local_stops_it() {
    let d = Deployable::new("", "");
    let first = d.cutover(&["--json", "agent", "start", "--local"]);
    let doc = first.success().json();
    assert_eq!(doc["started"], true, "{doc}");
    let pid = agent_pid(&d.p).expect("a pidfile");
    assert_eq!(doc["pid"], pid);
    assert!(pid_alive(pid));
    use std::os::unix::fs::PermissionsExt as _;
    let mode = std::fs::metadata(d.p.path().join(".cutover/agent.token"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Host `local` is registered and was seen by the control plane.
    let hosts = d.cutover(&["--json", "host", "ls"]).json();
    let local = hosts["hosts"]
        .as_array()
        .unwrap()
        .iter()
        .find(|h| h["name"] == "local")
        .expect("host local")
        .clone();
    assert!(local["last_seen"].is_string(), "{hosts}");
    // Reused, not started twice; it reconnects to the new command's socket.
    let second = d.cutover(&["--json", "agent", "start", "--local"]);
    let doc = second.success().json();
    assert_eq!(doc["started"], false);
    assert_eq!(doc["pid"], pid);
    // The agent outlived each command's socket and still runs.
    assert!(pid_alive(pid));
    let stop = d.cutover(&["--json", "agent", "stop", "--local"]);
    let doc = stop.success().json();
    assert_eq!(doc["stopped"], true);
    assert_eq!(doc["services_stopped"], false);
    assert!(!pid_alive(pid));
    assert!(!d.p.path().join(".cutover/agent.pid").exists());
    // Stopping what does not run is not an error.
    let again = d.cutover(&["--json", "agent", "stop", "--local"]);
    assert_eq!(again.success().json()["stopped"], false);
    let log = d.p.read(".cutover/agent.log");
    assert!(log.contains("local following unix:"), "{log}");
}

#[test]
fn a_stale_pidfile_is_replaced_by_a_new_agent() {
    let d = Deployable::new("", "");
    // A pid that is surely not a cutover agent: this test process.
    d.p.write(".cutover/agent.pid", &format!("{}\n", std::process::id()));
    let doc = d
        .cutover(&["--json", "agent", "start", "--local"])
        .success()
        .json();
    assert_eq!(doc["started"], true);
    assert_ne!(agent_pid(&d.p), Some(std::process::id()));
}

/// Reads stdout until one whole JSON document has arrived.
fn read_json_doc(out: &mut impl std::io::BufRead) -> serde_json::Value {
    let mut text = String::new();
    loop {
        let mut line = String::new();
        assert!(
            out.read_line(&mut line).unwrap() > 0,
            "stdout ended: {text}"
        );
        text.push_str(&line);
        if let Ok(v) = serde_json::from_str(&text) {
            return v;
        }
    }
}

fn spawn_cutover(dir: &Path, args: &[&str]) -> Child {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
    hermetic_env(&mut cmd)
        .current_dir(dir)
        .args(args)
        .env("NO_COLOR", "1")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    cmd.spawn().expect("cutover starts")
}

fn signal(child: &Child, sig: &str) {
    Command::new("kill")
        .args([sig, &child.id().to_string()])
        .status()
        .expect("kill runs");
}

/// Waits (a liveness bound, not a timing assertion) until `f` holds.
pub fn eventually(what: &str, limit: Duration, mut f: impl FnMut() -> bool) {
    let start = Instant::now();
    while !f() {
        assert!(start.elapsed() < limit, "never happened: {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn serve_answers_remote_agents_over_tcp_until_interrupted() {
    let p = Project::new();
    // `cutover serve` serves a project (its API and dashboard need its configuration).
    p.write("cutover.toml", "[project]\nname = \"remote\"\n");
    p.cutover(&["host", "add", "web-1", "--token-file", "web-1.token"])
        .success();
    let mut serve = spawn_cutover(p.path(), &["--json", "serve", "--listen", "127.0.0.1:0"]);
    let mut out = std::io::BufReader::new(serve.stdout.take().unwrap());
    let doc = read_json_doc(&mut out);
    let url = doc["url"].as_str().expect("the url").to_owned();
    assert!(url.starts_with("http://127.0.0.1:"), "{doc}");
    let root = p.path().join("agent-root");
    let mut agent = spawn_cutover(
        p.path(),
        &[
            "agent",
            "--name",
            "web-1",
            "--control",
            &url,
            "--token-file",
            "web-1.token",
            "--root",
            root.to_str().unwrap(),
        ],
    );
    eventually("web-1 registers", Duration::from_secs(30), || {
        let hosts = p.cutover(&["--json", "host", "ls"]).json();
        hosts["hosts"][0]["agent_version"].is_string()
    });
    signal(&agent, "-TERM");
    assert!(agent.wait().unwrap().success());
    signal(&serve, "-INT");
    let status = serve.wait().unwrap();
    let mut err = String::new();
    serve
        .stderr
        .take()
        .unwrap()
        .read_to_string(&mut err)
        .unwrap();
    assert!(status.success(), "{err}");
    assert!(err.contains("serving"), "{err}");
}

#[test]
fn serve_refuses_a_bad_listen_address() {
    let p = Project::new();
    let run = p.cutover(&["serve", "--listen", "localhost"]);
    run.code(2);
    assert!(run.stderr.contains("IP:PORT"), "{}", run.stderr);
}

#[test]
fn logs_refuses_unknown_environments_hosts_and_slots_and_says_where_remote_logs_are() {
    let d = Deployable::new(
        "",
        "[environments.prod]\nhosts = [\"web-1\"]\nlisten = \"127.0.0.1:1\"\n",
    );
    let run = d.cutover(&["logs", "nope"]);
    run.code(2);
    assert!(run.stderr.contains("staging"), "{}", run.stderr);
    d.cutover(&["logs", "staging", "--host", "web-9"]).code(2);
    d.cutover(&["logs", "staging", "--slot", "purple"]).code(2);
    let remote = d.cutover(&["logs", "prod"]);
    remote.code(2);
    assert!(remote.stderr.contains("hint:"), "{}", remote.stderr);
    let remote = d.cutover(&["logs", "prod", "--host", "web-1"]);
    remote.code(2);
    assert!(
        remote.stderr.contains("cutover agent --name web-1"),
        "{}",
        remote.stderr
    );
    // Nothing deployed yet: said, exit 1.
    d.cutover(&["logs", "staging"]).code(1);
}

/// The deployments of the project, newest first, from its store.
fn deployments(p: &Project) -> Vec<cutover_store::Deployment> {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let store = cutover_store::open_sqlite(&p.path().join(".cutover/state.db"))
            .await
            .unwrap();
        let list = store
            .list_deployments(&cutover_store::DeploymentFilter::default())
            .await
            .unwrap();
        store.close().await;
        list
    })
}

/// The pid a slot of the local agent runs (from its record), if any.
fn slot_pid(p: &Project, slot: &str) -> Option<u64> {
    let text = std::fs::read_to_string(
        p.path()
            .join(format!(".cutover/agent/hello-staging/slots/{slot}.json")),
    )
    .ok()?;
    serde_json::from_str::<serde_json::Value>(&text).ok()?["pid"].as_u64()
}

#[test]
fn dropping_a_deployable_stops_its_slots_even_when_its_agent_no_longer_runs() {
    let d = Deployable::new("", "");
    d.release("1.0.0");
    d.cutover(&["deploy", "staging", "--version", "1.0.0"])
        .success();
    let blue = u32::try_from(slot_pid(&d.p, "blue").expect("blue runs")).unwrap();
    // As a test that fails between `agent stop --local` and the next start would leave it.
    d.cutover(&["agent", "stop", "--local"]).success();
    assert!(pid_alive(blue), "the slot outlives its agent by design");
    drop(d);
    eventually(
        "the orphaned slot is stopped",
        Duration::from_secs(5),
        || !pid_alive(blue),
    );
}

#[test]
fn deploy_blue_green_then_roll_back_through_the_router_and_read_the_logs() {
    let d = Deployable::new("", "");
    d.release("1.0.0");
    d.release("2.0.0");
    let first = d.cutover(&["--json", "deploy", "staging", "--version", "1.0.0"]);
    let doc = first.success().json();
    assert_eq!(doc["state"], "live", "{doc}");
    assert_eq!(doc["version"], "1.0.0");
    assert_eq!(doc["environment"], "staging");
    assert!(doc["reason"].is_null());
    assert_eq!(served_version(d.listen).as_deref(), Some("1.0.0"));
    let (status, body) = get(d.listen, "/").unwrap();
    assert_eq!(
        (status, body.trim()),
        (200, "hello from cutover-testapp 1.0.0")
    );
    assert!(first.stderr.contains("live"), "{}", first.stderr);

    // Without --version: the newest release, into the other slot.
    let second = d.cutover(&["--json", "deploy", "staging"]);
    let doc = second.success().json();
    assert_eq!(doc["version"], "2.0.0", "{doc}");
    assert_eq!(served_version(d.listen).as_deref(), Some("2.0.0"));

    // The previous release is warm: the rollback only switches the router.
    let back = d.cutover(&["--json", "rollback", "staging"]);
    let doc = back.success().json();
    assert_eq!(doc["state"], "live");
    assert_eq!(doc["version"], "1.0.0");
    assert_eq!(served_version(d.listen).as_deref(), Some("1.0.0"));
    let all = deployments(&d.p);
    assert_eq!(all.len(), 3);
    assert_eq!(all[0].trigger, "rollback");
    assert_eq!(all[0].reverts, Some(all[1].id));
    assert!(
        all.iter()
            .all(|x| x.state == "live" && x.finished_at.is_some())
    );

    // Logs of both slots from the local agent's files.
    let logs = d.cutover(&["logs", "staging", "-n", "5"]);
    logs.success();
    assert!(
        logs.stdout.contains("blue/out | listening on"),
        "{}",
        logs.stdout
    );
    assert!(logs.stdout.contains("green/err |"), "{}", logs.stdout);
    let json = d
        .cutover(&["--json", "logs", "staging", "--slot", "blue"])
        .success()
        .json();
    assert_eq!(json["logs"].as_array().unwrap().len(), 2, "{json}");
    assert_eq!(json["logs"][0]["slot"], "blue");

    // Stopping only the agent leaves the slot processes running; the next start adopts them.
    let blue = slot_pid(&d.p, "blue").expect("blue runs");
    d.cutover(&["agent", "stop", "--local"]).success();
    assert!(pid_alive(u32::try_from(blue).unwrap()));
    d.cutover(&["agent", "start", "--local"]).success();
    eventually("the router is back", Duration::from_secs(20), || {
        served_version(d.listen).as_deref() == Some("1.0.0")
    });
    assert_eq!(
        slot_pid(&d.p, "blue"),
        Some(blue),
        "the slot was adopted, not restarted"
    );
    // `--all` stops the services as well.
    d.cutover(&["agent", "stop", "--local", "--all"]).success();
    assert!(!pid_alive(u32::try_from(blue).unwrap()));
    assert!(get(d.listen, "/").is_none());
    d.cutover(&["audit", "verify"]).success();
}

#[test]
fn logs_follow_prints_new_lines_until_interrupted() {
    let d = Deployable::new("", "");
    d.release("1.0.0");
    d.cutover(&["deploy", "staging"]).success();
    let mut follow = spawn_cutover(d.p.path(), &["logs", "staging", "--follow", "-n", "0"]);
    let out = follow.stdout.take().unwrap();
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in std::io::BufRead::lines(std::io::BufReader::new(out)) {
            let Ok(line) = line else { break };
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    // A new slot start writes to the green logs: deploy another release.
    d.release("1.1.0");
    d.cutover(&["deploy", "staging"]).success();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        if let Ok(line) = rx.recv_timeout(Duration::from_millis(200)) {
            seen.push(line);
            if seen.iter().any(|l| l.contains("started 1.1.0")) {
                break;
            }
        }
    }
    signal(&follow, "-INT");
    assert!(follow.wait().unwrap().success());
    assert!(
        seen.iter()
            .any(|l| l.starts_with("green/err |") && l.contains("started 1.1.0")),
        "{seen:?}"
    );
}

#[test]
fn bad_input_is_refused_with_exit_2_and_changes_nothing() {
    let d = Deployable::new(
        "",
        "[environments.far]\nhosts = [\"web-9\"]\nlisten = \"127.0.0.1:1\"\n",
    );
    // A release without an artifact: recorded while the project had no [build].
    let with_build = d.p.read("cutover.toml");
    let without: String = with_build.replace(
        "[build]\nrun = [\"true\"]\nartifact = [\"README.md\"]\n",
        "",
    );
    assert_ne!(without, with_build);
    d.p.write("cutover.toml", &without);
    d.p.git(&["commit", "-q", "-am", "chore: no build"]);
    d.p.cutover(&["release", "--version", "0.9.0"]).success();
    d.p.write("cutover.toml", &with_build);
    d.p.git(&["commit", "-q", "-am", "build: artifacts again"]);
    d.release("1.0.0");
    let before = d.audit_count();
    for (args, needle) in [
        (vec!["deploy", "nope"], "unknown environment"),
        (
            vec!["deploy", "staging", "--version", "7.7.7"],
            "no release `7.7.7`",
        ),
        (
            vec!["deploy", "staging", "--version", "0.9.0"],
            "no artifact",
        ),
        (vec!["deploy", "far", "--version", "1.0.0"], "web-9"),
        (vec!["rollback", "staging"], "nothing is live"),
        (vec!["rollback", "nope"], "unknown environment"),
    ] {
        let run = d.cutover(&args);
        run.code(2);
        assert!(run.stderr.contains(needle), "{args:?}: {}", run.stderr);
        assert!(run.stderr.contains("hint:"), "{args:?}: {}", run.stderr);
    }
    assert_eq!(d.audit_count(), before, "bad input changed the audit log");
    assert!(deployments(&d.p).is_empty());
    assert!(
        agent_pid(&d.p).is_none(),
        "bad input started the local agent"
    );
    // A rollback target that was never live.
    d.cutover(&["deploy", "staging"]).success();
    let before = d.audit_count();
    let run = d.cutover(&["rollback", "staging", "--to", "0.9.0"]);
    run.code(2);
    assert!(run.stderr.contains("never live"), "{}", run.stderr);
    assert_eq!(d.audit_count(), before);
}

/// A deterministic xorshift generator: the kill points are the same on every run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
}

/// A client asking the router for its version without pause, from another thread; it counts
/// what was answered and what failed.
struct Client {
    stop: std::sync::Arc<std::sync::atomic::AtomicBool>,
    thread: std::thread::JoinHandle<(u64, Vec<String>)>,
}

impl Client {
    fn start(addr: SocketAddr) -> Self {
        let stop = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            let mut ok = 0;
            let mut failures = Vec::new();
            while !flag.load(std::sync::atomic::Ordering::Relaxed) {
                match get(addr, "/version") {
                    Some((200, _)) => ok += 1,
                    other => failures.push(format!("{other:?}")),
                }
            }
            (ok, failures)
        });
        Self { stop, thread }
    }

    fn finish(self) -> (u64, Vec<String>) {
        self.stop.store(true, std::sync::atomic::Ordering::Relaxed);
        self.thread.join().unwrap()
    }
}

#[test]
fn deploys_killed_at_20_random_points_are_resumed_and_the_app_keeps_serving() {
    let d = Deployable::new("", "");
    d.release("1.0.0");
    d.release("2.0.0");
    d.cutover(&["deploy", "staging", "--version", "1.0.0"])
        .success();
    // A whole deployment's duration spreads the kill points over every step of the next ones.
    let timed = Instant::now();
    d.cutover(&["deploy", "staging", "--version", "2.0.0"])
        .success();
    let span_ms = u64::try_from(timed.elapsed().as_millis()).unwrap().max(200);
    let client = Client::start(d.listen);
    let mut rng = Rng(0x5eed_c0ff_ee15_600d);
    let mut version = "1.0.0";
    for round in 0..20 {
        let delay = Duration::from_millis(rng.next() % (span_ms + 100));
        let mut deploy = spawn_cutover(d.p.path(), &["deploy", "staging", "--version", version]);
        std::thread::sleep(delay);
        signal(&deploy, "-KILL");
        let _ = deploy.wait();
        let resumed = d.cutover(&["deploy", "staging", "--resume"]);
        assert!(
            resumed.code == 0 || resumed.code == 1,
            "round {round} (killed after {delay:?}): resume exited {}\n{}",
            resumed.code,
            resumed.stderr
        );
        version = if version == "1.0.0" { "2.0.0" } else { "1.0.0" };
    }
    let (ok, failures) = client.finish();
    let all = deployments(&d.p);
    for x in &all {
        assert!(
            matches!(x.state.as_str(), "live" | "rolled_back") && x.finished_at.is_some(),
            "deployment {} ended {} (finished {:?})",
            x.id,
            x.state,
            x.finished_at
        );
    }
    assert!(ok > 0);
    assert!(
        failures.is_empty(),
        "{} of {} requests failed during the kills: {:?}",
        failures.len(),
        ok + failures.len() as u64,
        &failures[..failures.len().min(10)]
    );
    // What serves is a release the records say is live.
    let served = served_version(d.listen).expect("the app serves");
    assert!(served == "1.0.0" || served == "2.0.0");
    d.cutover(&["audit", "verify"]).success();
}

/// Extra agents (`cutover agent --name hN …`) on this machine, following the project's socket.
struct Agents {
    dir: PathBuf,
    socket: PathBuf,
    running: Vec<(String, Child)>,
}

impl Agents {
    fn new(p: &Project) -> Self {
        Self {
            dir: p.path().join("agents"),
            socket: p.path().join(".cutover/control.sock"),
            running: Vec::new(),
        }
    }

    fn root(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn start(&mut self, p: &Project, name: &str) {
        let token = self.dir.join(format!("{name}.token"));
        if !token.exists() {
            std::fs::create_dir_all(&self.dir).unwrap();
            p.cutover(&["host", "add", name, "--token-file", token.to_str().unwrap()])
                .success();
        }
        let status = self.root(name).join("agent.json");
        let _ = std::fs::remove_file(&status);
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_cutover"));
        hermetic_env(&mut cmd)
            .current_dir(p.path())
            .args([
                "agent",
                "--name",
                name,
                "--token-file",
                token.to_str().unwrap(),
            ])
            .arg("--control")
            .arg(format!("unix:{}", self.socket.display()))
            .arg("--root")
            .arg(self.root(name))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null());
        let child = cmd.spawn().unwrap();
        // Its SIGUSR1 handler is in place once its status file is written (a wake-up before
        // would be ignored by the CLI, which only wakes agents that handle the signal).
        eventually(
            &format!("agent {name} runs"),
            Duration::from_secs(20),
            || status.exists(),
        );
        self.running.push((name.to_owned(), child));
    }

    fn kill(&mut self, name: &str) {
        let i = self.running.iter().position(|(n, _)| n == name).unwrap();
        let (_, mut child) = self.running.remove(i);
        signal(&child, "-KILL");
        let _ = child.wait();
    }
}

impl Drop for Agents {
    fn drop(&mut self) {
        for (name, child) in &mut self.running {
            // The agent stops its services as well when it finds this file.
            let _ = std::fs::write(self.dir.join(name.as_str()).join("stop-services"), "all\n");
            signal(child, "-TERM");
            let _ = child.wait();
        }
        // A slot whose agent was killed and not adopted again would outlive the test: its
        // working directory is under the agents' roots.
        kill_processes_under(&self.dir);
    }
}

#[test]
fn a_rolling_deployment_over_three_agents_survives_one_killed_within_max_unavailable() {
    let ports = free_ports(9);
    let host = |name: &str, i: usize| {
        format!(
            "{{ name = \"{name}\", listen = \"127.0.0.1:{}\", ports = {{ blue = {}, green = {} }} }}",
            ports[i * 3],
            ports[i * 3 + 1],
            ports[i * 3 + 2]
        )
    };
    let multi = format!(
        "[environments.multi]\nhosts = [{}, {}, {}]\nlisten = \"127.0.0.1:1\"\nobserve = \"200ms\"\nstrategy = {{ rolling = {{ batch = 1, max_unavailable = 1 }} }}\n",
        host("local", 2),
        host("h2", 0),
        host("h3", 1)
    );
    let d = Deployable::new("", &multi);
    let text =
        d.p.read("cutover.toml")
            .replace("start_timeout = \"20s\"", "start_timeout = \"4s\"");
    d.p.write("cutover.toml", &text);
    d.p.write(".gitignore", "/.cutover/\n/agents/\n");
    d.p.git(&["commit", "-q", "-am", "chore: three hosts"]);
    d.release("1.0.0");
    d.release("2.0.0");
    let routers: Vec<SocketAddr> = [ports[6], ports[0], ports[3]]
        .iter()
        .map(|p| SocketAddr::from(([127, 0, 0, 1], *p)))
        .collect();
    let mut agents = Agents::new(&d.p);
    agents.start(&d.p, "h2");
    agents.start(&d.p, "h3");
    d.cutover(&["deploy", "multi", "--version", "1.0.0"])
        .success();
    for r in &routers {
        assert_eq!(served_version(*r).as_deref(), Some("1.0.0"), "{r}");
    }

    // Kill h3's agent while the first batch (local) is being deployed.
    let mut deploy = spawn_cutover(
        d.p.path(),
        &["--json", "deploy", "multi", "--version", "2.0.0"],
    );
    eventually("local serves 2.0.0", Duration::from_secs(30), || {
        served_version(routers[0]).as_deref() == Some("2.0.0")
    });
    agents.kill("h3");
    let out = {
        let mut s = String::new();
        deploy
            .stdout
            .take()
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        let mut e = String::new();
        deploy
            .stderr
            .take()
            .unwrap()
            .read_to_string(&mut e)
            .unwrap();
        (deploy.wait().unwrap(), s, e)
    };
    assert!(
        out.0.success(),
        "one unavailable host is within max_unavailable:\n{}",
        out.2
    );
    let doc: serde_json::Value = serde_json::from_str(&out.1).unwrap();
    assert_eq!(doc["state"], "live", "{doc}");
    assert!(
        out.2.contains("h3"),
        "the unavailable host is named: {}",
        out.2
    );
    assert_eq!(served_version(routers[0]).as_deref(), Some("2.0.0"));
    assert_eq!(served_version(routers[1]).as_deref(), Some("2.0.0"));
    // h3's router died with its agent; the other hosts were unaffected.
    assert!(get(routers[2], "/version").is_none());

    // A second host down is more than max_unavailable = 1: the deployment stops and is rolled
    // back on the host it reached.
    agents.kill("h2");
    let stopped = d.cutover(&["--json", "deploy", "multi", "--version", "1.0.0"]);
    stopped.code(1);
    let doc = stopped.json();
    assert_eq!(doc["state"], "rolled_back", "{doc}");
    assert!(
        doc["reason"].as_str().unwrap().contains("max_unavailable"),
        "{doc}"
    );
    assert_eq!(served_version(routers[0]).as_deref(), Some("2.0.0"));

    // h2 and h3 come back (their agents adopt the slots they left); a rollback then works
    // everywhere.
    agents.start(&d.p, "h2");
    agents.start(&d.p, "h3");
    let back = d.cutover(&["--json", "rollback", "multi", "--to", "1.0.0"]);
    let doc = back.success().json();
    assert_eq!(doc["state"], "live", "{doc}");
    for r in &routers {
        eventually(
            &format!("{r} serves 1.0.0"),
            Duration::from_secs(20),
            || served_version(*r).as_deref() == Some("1.0.0"),
        );
    }
    d.cutover(&["audit", "verify"]).success();
}
