//! Process runtime: a release runs in a slot (blue or green) as a supervised process group.
//!
//! A slot's process is started from an argv template (never a shell), in a process group of its own so
//! that a stop reaches its children too; it is restarted with exponential backoff when it exits, until
//! the restart budget is spent and the slot is reported failed. Its stdout and stderr go to rotating
//! files under `<root>/<service>/logs/`.

use std::collections::BTreeMap;
use std::fmt;
use std::fs::{self, File, OpenOptions};
use std::io::Write as _;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

/// One of the two slots a service has on a host.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Slot {
    Blue,
    Green,
}

impl Slot {
    pub const ALL: [Slot; 2] = [Slot::Blue, Slot::Green];

    /// The other slot: where the next release goes.
    #[must_use]
    pub fn other(self) -> Slot {
        match self {
            Slot::Blue => Slot::Green,
            Slot::Green => Slot::Blue,
        }
    }

    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            Slot::Blue => "blue",
            Slot::Green => "green",
        }
    }

    /// Parses `blue` or `green` (as found in a cookie or a header).
    #[must_use]
    pub fn parse(s: &str) -> Option<Slot> {
        match s {
            "blue" => Some(Slot::Blue),
            "green" => Some(Slot::Green),
            _ => None,
        }
    }
}

impl fmt::Display for Slot {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// When to restart an exited process, and when to give up.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RestartPolicy {
    /// Restarts allowed in a row before the slot is reported failed.
    pub max_restarts: u32,
    /// First backoff; doubled at every restart in a row, up to `max_backoff`.
    pub initial_backoff: Duration,
    pub max_backoff: Duration,
    /// A process that ran this long was healthy enough: its restart count starts over.
    pub stable_after: Duration,
}

impl Default for RestartPolicy {
    fn default() -> Self {
        Self {
            max_restarts: 5,
            initial_backoff: Duration::from_millis(200),
            max_backoff: Duration::from_secs(10),
            stable_after: Duration::from_secs(60),
        }
    }
}

impl RestartPolicy {
    /// The wait before restart number `attempt` (1-based).
    #[must_use]
    pub fn backoff(&self, attempt: u32) -> Duration {
        let factor = 1u32
            .checked_shl(attempt.saturating_sub(1))
            .unwrap_or(u32::MAX);
        self.initial_backoff
            .checked_mul(factor)
            .unwrap_or(self.max_backoff)
            .min(self.max_backoff)
    }
}

/// How the logs of a slot rotate.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LogPolicy {
    /// A log file is rotated when it would grow past this size.
    pub max_bytes: u64,
    /// Rotated files kept (`.1` is the newest).
    pub keep: u32,
}

impl Default for LogPolicy {
    fn default() -> Self {
        Self {
            max_bytes: 10 * 1024 * 1024,
            keep: 5,
        }
    }
}

/// A value taken from the agent's environment or a file when the process starts: it never appears in
/// a log, a report or `Debug` output.
#[derive(Clone, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SecretSource {
    /// The agent's own environment variable of that name.
    Env(String),
    /// The file's content, without a trailing newline.
    File(PathBuf),
}

impl fmt::Debug for SecretSource {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Where a secret comes from is not secret; its value never reaches this type.
        match self {
            SecretSource::Env(v) => write!(f, "Env({v:?})"),
            SecretSource::File(p) => write!(f, "File({p:?})"),
        }
    }
}

/// How a service's processes are started and stopped (the same for both slots).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ProcessSpec {
    /// Service name; names the directory under the root.
    pub service: String,
    /// argv template; `{release_dir}`, `{port}`, `{version}` and `{slot}` are substituted inside
    /// each argument.
    pub argv: Vec<String>,
    /// Extra environment (after `PORT` and `CUTOVER_VERSION`, so it may override them).
    pub env: BTreeMap<String, String>,
    /// Secret environment variables, resolved at every start.
    pub secrets: BTreeMap<String, SecretSource>,
    /// SIGTERM → SIGKILL grace period.
    pub stop_timeout: Duration,
    pub restart: RestartPolicy,
    pub logs: LogPolicy,
}

impl ProcessSpec {
    /// A spec with default policies.
    #[must_use]
    pub fn new(service: impl Into<String>, argv: Vec<String>) -> Self {
        Self {
            service: service.into(),
            argv,
            env: BTreeMap::new(),
            secrets: BTreeMap::new(),
            stop_timeout: Duration::from_secs(10),
            restart: RestartPolicy::default(),
            logs: LogPolicy::default(),
        }
    }
}

/// What one start of a slot is about.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Launch {
    pub slot: Slot,
    pub version: String,
    pub release_dir: PathBuf,
    pub port: u16,
}

/// Replaces the placeholders inside one argument; unknown `{…}` stay as they are.
#[must_use]
pub fn substitute(template: &str, launch: &Launch) -> String {
    template
        .replace("{release_dir}", &launch.release_dir.to_string_lossy())
        .replace("{port}", &launch.port.to_string())
        .replace("{version}", &launch.version)
        .replace("{slot}", launch.slot.as_str())
}

/// Where things of a service live under the agent's root.
#[derive(Debug, Clone)]
pub struct Layout {
    pub root: PathBuf,
}

impl Layout {
    #[must_use]
    pub fn new(root: impl Into<PathBuf>) -> Self {
        Self { root: root.into() }
    }
    #[must_use]
    pub fn service_dir(&self, service: &str) -> PathBuf {
        self.root.join(service)
    }
    #[must_use]
    pub fn release_dir(&self, service: &str, version: &str) -> PathBuf {
        self.service_dir(service).join("releases").join(version)
    }
    #[must_use]
    pub fn log_dir(&self, service: &str) -> PathBuf {
        self.service_dir(service).join("logs")
    }
    /// `<root>/<service>/logs/<slot>.<stream>.log`, stream `out` or `err`.
    #[must_use]
    pub fn log_file(&self, service: &str, slot: Slot, stream: &str) -> PathBuf {
        self.log_dir(service).join(format!("{slot}.{stream}.log"))
    }
    #[must_use]
    pub fn router_state(&self, service: &str) -> PathBuf {
        self.service_dir(service).join("router.json")
    }
    /// What runs in a slot (pid, version, port), for the next agent to adopt.
    #[must_use]
    pub fn slot_record(&self, service: &str, slot: Slot) -> PathBuf {
        self.service_dir(service)
            .join("slots")
            .join(format!("{slot}.json"))
    }
    /// Where a fetched artifact waits to be verified and unpacked.
    #[must_use]
    pub fn artifact(&self, sha256: &str) -> PathBuf {
        self.root
            .join("artifacts")
            .join(format!("{sha256}.tar.zst"))
    }
    /// The last assignment applied, re-applied when the agent starts.
    #[must_use]
    pub fn assignment(&self) -> PathBuf {
        self.root.join("assignment.json")
    }
}

/// The record of a slot's running process (`<root>/<service>/slots/<slot>.json`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotRecord {
    pub pid: u32,
    /// The process's start time in clock ticks since boot (`/proc/PID/stat` field 22): a reused pid
    /// has another one.
    pub start_ticks: u64,
    pub version: String,
    pub port: u16,
}

/// `/proc/PID/stat` start time of a live (not zombie) process.
fn proc_start_ticks(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces and parentheses: count from the last ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    if fields.first() == Some(&"Z") {
        return None;
    }
    // `rest` starts at field 3 (state); field 22 is index 19.
    fields.get(19)?.parse().ok()
}

fn write_record(layout: &Layout, service: &str, slot: Slot, record: &SlotRecord) {
    let path = layout.slot_record(service, slot);
    if let Some(dir) = path.parent() {
        let _ = fs::create_dir_all(dir);
    }
    if let Ok(json) = serde_json::to_vec(record) {
        let tmp = path.with_extension("json.tmp");
        if fs::write(&tmp, json).is_ok() {
            let _ = fs::rename(&tmp, &path);
        }
    }
}

/// Why a slot could not be started.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    #[error(
        "the start command of service {service:?} is empty; expected an argv array such as [\"{{release_dir}}/app\", \"--port\", \"{{port}}\"]"
    )]
    EmptyArgv { service: String },
    #[error("cannot start {program:?} for {service}/{slot}: {source}")]
    Spawn {
        service: String,
        slot: Slot,
        program: String,
        #[source]
        source: std::io::Error,
    },
    #[error("port {port} for {service}/{slot} is already in use: {source}")]
    PortInUse {
        service: String,
        slot: Slot,
        port: u16,
        #[source]
        source: std::io::Error,
    },
    #[error("secret {name} of service {service}: {what}")]
    Secret {
        service: String,
        name: String,
        what: String,
    },
    #[error("cannot write logs under {}: {source}", path.display())]
    Logs {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

/// Where a slot's process is in its life.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "state", rename_all = "snake_case")]
pub enum ProcessState {
    Running {
        pid: u32,
        since: DateTime<Utc>,
    },
    /// Exited; restarts after the backoff.
    Backoff {
        attempt: u32,
        last_exit: String,
    },
    /// Gave up after the restart budget was spent.
    Failed {
        reason: String,
    },
    /// Stopped on request.
    Stopped {
        last_exit: String,
    },
}

/// What a supervisor reports about its slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ProcessStatus {
    pub slot: Slot,
    pub version: String,
    pub port: u16,
    #[serde(flatten)]
    pub state: ProcessState,
    /// Restarts since the slot was started.
    pub restarts: u32,
}

impl ProcessStatus {
    #[must_use]
    pub fn pid(&self) -> Option<u32> {
        match self.state {
            ProcessState::Running { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// A supervised slot process. Dropping it without [`SlotProcess::stop`] or
/// [`SlotProcess::detach`] kills the process group.
#[derive(Debug)]
pub struct SlotProcess {
    status: watch::Receiver<ProcessStatus>,
    stop_tx: Option<oneshot::Sender<StopMode>>,
    task: Option<JoinHandle<()>>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum StopMode {
    Stop,
    /// Stop supervising, leave the process running.
    Detach,
}

/// The process a supervisor watches: its own child, or one a previous agent started.
enum Proc {
    Child(Child),
    Adopted { pid: u32, start_ticks: u64 },
}

impl Proc {
    fn pid(&self) -> u32 {
        match self {
            Proc::Child(c) => c.id().unwrap_or(0),
            Proc::Adopted { pid, .. } => *pid,
        }
    }

    async fn wait(&mut self) -> String {
        match self {
            Proc::Child(c) => describe_exit(c.wait().await),
            Proc::Adopted { pid, start_ticks } => {
                // Not our child: no exit status, only its disappearance.
                while proc_start_ticks(*pid) == Some(*start_ticks) {
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
                "exited (adopted process; status unknown)".to_owned()
            }
        }
    }
}

/// Sends a signal to a whole process group; an already gone group is not an error.
fn signal_group(pgid: u32, sig: rustix::process::Signal) {
    let Ok(raw) = i32::try_from(pgid) else { return };
    if let Some(pid) = rustix::process::Pid::from_raw(raw) {
        let _ = rustix::process::kill_process_group(pid, sig);
    }
}

fn resolve_secrets(spec: &ProcessSpec) -> Result<Vec<(String, String)>, RuntimeError> {
    spec.secrets
        .iter()
        .map(|(name, source)| {
            let value = match source {
                SecretSource::Env(var) => std::env::var(var).map_err(|_| RuntimeError::Secret {
                    service: spec.service.clone(),
                    name: name.clone(),
                    what: format!("environment variable {var} is not set (or not UTF-8) in the agent's environment"),
                })?,
                SecretSource::File(path) => fs::read_to_string(path)
                    .map_err(|e| RuntimeError::Secret {
                        service: spec.service.clone(),
                        name: name.clone(),
                        what: format!("cannot read {}: {e}", path.display()),
                    })?
                    .trim_end_matches(['\n', '\r'])
                    .to_owned(),
            };
            Ok((name.clone(), value))
        })
        .collect()
}

fn spawn_child(
    spec: &ProcessSpec,
    launch: &Launch,
    layout: &Layout,
) -> Result<Child, RuntimeError> {
    let argv: Vec<String> = spec.argv.iter().map(|a| substitute(a, launch)).collect();
    let (program, args) = argv.split_first().ok_or_else(|| RuntimeError::EmptyArgv {
        service: spec.service.clone(),
    })?;
    let secrets = resolve_secrets(spec)?;
    let redactor = Redactor::new(secrets.iter().map(|(_, v)| v.clone()));
    let mut cmd = Command::new(program);
    cmd.args(args)
        .env("PORT", launch.port.to_string())
        .env("CUTOVER_VERSION", &launch.version)
        .envs(&spec.env)
        .envs(secrets)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Its own group, so that a stop reaches the children it forks too.
        .process_group(0)
        // Not on drop: a detached agent leaves its slots running for the next agent to adopt;
        // SlotProcess's own Drop kills the group when that is wanted.
        .kill_on_drop(false);
    if launch.release_dir.is_dir() {
        cmd.current_dir(&launch.release_dir);
    }
    let mut child = cmd.spawn().map_err(|source| RuntimeError::Spawn {
        service: spec.service.clone(),
        slot: launch.slot,
        program: program.clone(),
        source,
    })?;
    for (stream, pipe) in [
        (
            "out",
            child
                .stdout
                .take()
                .map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>),
        ),
        (
            "err",
            child
                .stderr
                .take()
                .map(|p| Box::new(p) as Box<dyn AsyncRead + Send + Unpin>),
        ),
    ] {
        if let Some(pipe) = pipe {
            let path = layout.log_file(&spec.service, launch.slot, stream);
            let log = RotatingLog::open(&path, spec.logs.clone())
                .map_err(|source| RuntimeError::Logs { path, source })?;
            tokio::spawn(copy_to_log(pipe, log, redactor.clone()));
        }
    }
    Ok(child)
}

/// Secret values shorter than this are not redacted: replacing every `1` or `ab` in the output
/// would destroy it, and such a value protects nothing anyway.
pub const MIN_REDACTED_LEN: usize = 4;
/// What replaces a secret value in a slot's output.
pub const REDACTED: &[u8] = b"[redacted]";

/// Replaces the values of a service's secrets in its output, so that a program that prints its
/// environment leaks nothing into the log files (nor to `cutover logs`, which reads them).
#[derive(Clone, Default)]
pub struct Redactor {
    /// Longest first, so that a secret containing another is replaced whole.
    values: Vec<Vec<u8>>,
}

impl fmt::Debug for Redactor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        // Never the values.
        write!(f, "Redactor({} values)", self.values.len())
    }
}

impl Redactor {
    #[must_use]
    pub fn new(values: impl IntoIterator<Item = String>) -> Self {
        let mut values: Vec<Vec<u8>> = values
            .into_iter()
            .filter(|v| v.len() >= MIN_REDACTED_LEN)
            .map(String::into_bytes)
            .collect();
        values.sort_by(|a, b| b.len().cmp(&a.len()).then_with(|| a.cmp(b)));
        values.dedup();
        Self { values }
    }

    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.values.is_empty()
    }

    /// `data` with every occurrence of a value replaced by [`REDACTED`].
    #[must_use]
    pub fn redact<'a>(&self, data: &'a [u8]) -> std::borrow::Cow<'a, [u8]> {
        let mut out = std::borrow::Cow::Borrowed(data);
        for value in &self.values {
            if !out.windows(value.len()).any(|w| w == value.as_slice()) {
                continue;
            }
            let mut next = Vec::with_capacity(out.len());
            let mut i = 0;
            while i < out.len() {
                if out[i..].starts_with(value) {
                    next.extend_from_slice(REDACTED);
                    i += value.len();
                } else {
                    next.push(out[i]);
                    i += 1;
                }
            }
            out = std::borrow::Cow::Owned(next);
        }
        out
    }
}

/// A partial line is held at most this long before it is written anyway (a prompt without a
/// newline must show up).
const PARTIAL_LINE_WAIT: Duration = Duration::from_millis(200);
/// A line longer than this is written in pieces.
const MAX_HELD: usize = 64 * 1024;

async fn copy_to_log(
    mut pipe: Box<dyn AsyncRead + Send + Unpin>,
    mut log: RotatingLog,
    redactor: Redactor,
) {
    let mut buf = vec![0u8; 8192];
    if redactor.is_empty() {
        loop {
            match pipe.read(&mut buf).await {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    // A full disk must not stop the service: its output is lost, the process keeps running.
                    let _ = log.write(&buf[..n]);
                }
            }
        }
        return;
    }
    // With secrets, whole lines are redacted, so that a value split across two reads is still
    // found.
    let mut held: Vec<u8> = Vec::new();
    loop {
        let read = if held.is_empty() {
            pipe.read(&mut buf).await
        } else {
            match tokio::time::timeout(PARTIAL_LINE_WAIT, pipe.read(&mut buf)).await {
                Ok(r) => r,
                Err(_) => {
                    let _ = log.write(&redactor.redact(&held));
                    held.clear();
                    continue;
                }
            }
        };
        match read {
            Ok(0) | Err(_) => break,
            Ok(n) => {
                held.extend_from_slice(&buf[..n]);
                let cut = match held.iter().rposition(|b| *b == b'\n') {
                    Some(pos) => pos + 1,
                    None if held.len() >= MAX_HELD => held.len(),
                    None => continue,
                };
                let _ = log.write(&redactor.redact(&held[..cut]));
                held.drain(..cut);
            }
        }
    }
    if !held.is_empty() {
        let _ = log.write(&redactor.redact(&held));
    }
}

fn note(layout: &Layout, spec: &ProcessSpec, slot: Slot, line: &str) {
    let path = layout.log_file(&spec.service, slot, "err");
    if let Ok(mut log) = RotatingLog::open(&path, spec.logs.clone()) {
        let _ =
            log.write(format!("[cutover-agent {}] {line}\n", Utc::now().to_rfc3339()).as_bytes());
    }
}

fn describe_exit(status: std::io::Result<std::process::ExitStatus>) -> String {
    use std::os::unix::process::ExitStatusExt as _;
    match status {
        Ok(s) => match (s.code(), s.signal()) {
            (Some(code), _) => format!("exited with status {code}"),
            (None, Some(sig)) => format!("killed by signal {sig}"),
            _ => "exited".to_owned(),
        },
        Err(e) => format!("could not be waited for: {e}"),
    }
}

impl SlotProcess {
    /// Starts the slot's process and its supervisor. The first spawn happens here, so a missing
    /// program, an unresolvable secret or a port already in use is an error at once.
    ///
    /// Must be called inside a tokio runtime.
    pub fn start(
        layout: &Layout,
        spec: &ProcessSpec,
        launch: &Launch,
    ) -> Result<Self, RuntimeError> {
        fs::create_dir_all(layout.log_dir(&spec.service)).map_err(|source| RuntimeError::Logs {
            path: layout.log_dir(&spec.service),
            source,
        })?;
        // The port must be free now: a process that cannot bind would only crash-loop.
        TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, launch.port))).map_err(
            |source| RuntimeError::PortInUse {
                service: spec.service.clone(),
                slot: launch.slot,
                port: launch.port,
                source,
            },
        )?;
        let child = spawn_child(spec, launch, layout)?;
        let pid = child.id().unwrap_or(0);
        record_spawn(layout, spec, launch, pid);
        note(
            layout,
            spec,
            launch.slot,
            &format!("started {} (pid {pid})", launch.version),
        );
        let (status_tx, status) = watch::channel(ProcessStatus {
            slot: launch.slot,
            version: launch.version.clone(),
            port: launch.port,
            state: ProcessState::Running {
                pid,
                since: Utc::now(),
            },
            restarts: 0,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(supervise(
            layout.clone(),
            spec.clone(),
            launch.clone(),
            Proc::Child(child),
            status_tx,
            stop_rx,
        ));
        Ok(Self {
            status,
            stop_tx: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Takes over the process a previous agent left running in this slot, if its record matches
    /// `launch` (version and port) and it is still alive. A live process that does not match is
    /// stopped (SIGTERM, then SIGKILL after `stop_timeout`) so that the slot is free. Inside a tokio
    /// runtime.
    pub async fn adopt(layout: &Layout, spec: &ProcessSpec, launch: &Launch) -> Option<Self> {
        let path = layout.slot_record(&spec.service, launch.slot);
        let record: SlotRecord = serde_json::from_slice(&fs::read(&path).ok()?).ok()?;
        if proc_start_ticks(record.pid) != Some(record.start_ticks) {
            let _ = fs::remove_file(&path);
            return None;
        }
        if record.version != launch.version || record.port != launch.port {
            signal_group(record.pid, rustix::process::Signal::TERM);
            let deadline = Instant::now() + spec.stop_timeout;
            while proc_start_ticks(record.pid) == Some(record.start_ticks)
                && Instant::now() < deadline
            {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            signal_group(record.pid, rustix::process::Signal::KILL);
            let _ = fs::remove_file(&path);
            return None;
        }
        note(
            layout,
            spec,
            launch.slot,
            &format!("adopted {} (pid {})", launch.version, record.pid),
        );
        let (status_tx, status) = watch::channel(ProcessStatus {
            slot: launch.slot,
            version: launch.version.clone(),
            port: launch.port,
            state: ProcessState::Running {
                pid: record.pid,
                since: Utc::now(),
            },
            restarts: 0,
        });
        let (stop_tx, stop_rx) = oneshot::channel();
        let task = tokio::spawn(supervise(
            layout.clone(),
            spec.clone(),
            launch.clone(),
            Proc::Adopted {
                pid: record.pid,
                start_ticks: record.start_ticks,
            },
            status_tx,
            stop_rx,
        ));
        Some(Self {
            status,
            stop_tx: Some(stop_tx),
            task: Some(task),
        })
    }

    /// Stops supervising but leaves the process running (and its record on disk), for the next
    /// agent to [`SlotProcess::adopt`]: an agent restart does not restart the service.
    pub async fn detach(mut self) {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(StopMode::Detach);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
    }

    #[must_use]
    pub fn status(&self) -> ProcessStatus {
        self.status.borrow().clone()
    }

    /// Changes of the status, for whoever reports or waits.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<ProcessStatus> {
        self.status.clone()
    }

    /// Graceful stop: SIGTERM to the process group, SIGKILL after `stop_timeout`. Returns the final
    /// status.
    pub async fn stop(mut self) -> ProcessStatus {
        if let Some(tx) = self.stop_tx.take() {
            let _ = tx.send(StopMode::Stop);
        }
        if let Some(task) = self.task.take() {
            let _ = task.await;
        }
        self.status.borrow().clone()
    }
}

impl Drop for SlotProcess {
    fn drop(&mut self) {
        if let Some(task) = self.task.take() {
            task.abort();
            // Dropped without stop or detach: nobody watches the process any more, so it goes.
            if let Some(pid) = self.status.borrow().pid() {
                signal_group(pid, rustix::process::Signal::KILL);
            }
        }
    }
}

fn record_spawn(layout: &Layout, spec: &ProcessSpec, launch: &Launch, pid: u32) {
    if let Some(start_ticks) = proc_start_ticks(pid) {
        write_record(
            layout,
            &spec.service,
            launch.slot,
            &SlotRecord {
                pid,
                start_ticks,
                version: launch.version.clone(),
                port: launch.port,
            },
        );
    }
}

async fn supervise(
    layout: Layout,
    spec: ProcessSpec,
    launch: Launch,
    mut proc: Proc,
    status: watch::Sender<ProcessStatus>,
    mut stop_rx: oneshot::Receiver<StopMode>,
) {
    let mut in_a_row: u32 = 0;
    let mut total: u32 = 0;
    let set = |state: ProcessState, total: u32| {
        status.send_modify(|s| {
            s.state = state;
            s.restarts = total;
        });
    };
    let forget = || {
        let _ = fs::remove_file(layout.slot_record(&spec.service, launch.slot));
    };
    loop {
        let pid = proc.pid();
        let started = Instant::now();
        let last_exit = tokio::select! {
            exit = proc.wait() => exit,
            mode = &mut stop_rx => {
                if mode == Ok(StopMode::Detach) {
                    note(&layout, &spec, launch.slot, &format!("detached (pid {pid} keeps running)"));
                    return;
                }
                signal_group(pid, rustix::process::Signal::TERM);
                let last_exit = match tokio::time::timeout(spec.stop_timeout, proc.wait()).await {
                    Ok(exit) => exit,
                    Err(_) => {
                        signal_group(pid, rustix::process::Signal::KILL);
                        proc.wait().await
                    }
                };
                // Children that ignored SIGTERM while their leader exited.
                signal_group(pid, rustix::process::Signal::KILL);
                forget();
                note(&layout, &spec, launch.slot, &format!("stopped: {last_exit}"));
                set(ProcessState::Stopped { last_exit }, total);
                return;
            }
        };
        // Orphans of a crashed leader would hold the port the restart needs.
        signal_group(pid, rustix::process::Signal::KILL);
        forget();
        if started.elapsed() >= spec.restart.stable_after {
            in_a_row = 0;
        }
        if in_a_row >= spec.restart.max_restarts {
            let reason = format!(
                "{last_exit}; gave up after {in_a_row} restarts in a row (max_restarts = {})",
                spec.restart.max_restarts
            );
            note(&layout, &spec, launch.slot, &reason);
            set(ProcessState::Failed { reason }, total);
            return;
        }
        in_a_row += 1;
        total += 1;
        note(
            &layout,
            &spec,
            launch.slot,
            &format!("{last_exit}; restart {in_a_row} after backoff"),
        );
        set(
            ProcessState::Backoff {
                attempt: in_a_row,
                last_exit: last_exit.clone(),
            },
            total,
        );
        tokio::select! {
            () = tokio::time::sleep(spec.restart.backoff(in_a_row)) => {}
            _ = &mut stop_rx => {
                set(ProcessState::Stopped { last_exit }, total);
                return;
            }
        }
        match spawn_child(&spec, &launch, &layout) {
            Ok(c) => {
                proc = Proc::Child(c);
                let pid = proc.pid();
                record_spawn(&layout, &spec, &launch, pid);
                note(
                    &layout,
                    &spec,
                    launch.slot,
                    &format!("restarted (pid {pid})"),
                );
                set(
                    ProcessState::Running {
                        pid,
                        since: Utc::now(),
                    },
                    total,
                );
            }
            Err(e) => {
                let reason = format!("restart failed: {e}");
                note(&layout, &spec, launch.slot, &reason);
                set(ProcessState::Failed { reason }, total);
                return;
            }
        }
    }
}

/// An append-only log file that rotates by size: `x.log` → `x.log.1` → … → `x.log.<keep>`.
#[derive(Debug)]
pub struct RotatingLog {
    path: PathBuf,
    file: File,
    size: u64,
    policy: LogPolicy,
}

impl RotatingLog {
    pub fn open(path: &Path, policy: LogPolicy) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata()?.len();
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            policy,
        })
    }

    fn rotated(&self, n: u32) -> PathBuf {
        let mut p = self.path.clone().into_os_string();
        p.push(format!(".{n}"));
        p.into()
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        if self.policy.keep == 0 {
            self.file = File::create(&self.path)?;
        } else {
            for n in (1..self.policy.keep).rev() {
                let from = self.rotated(n);
                if from.exists() {
                    fs::rename(&from, self.rotated(n + 1))?;
                }
            }
            fs::rename(&self.path, self.rotated(1))?;
            self.file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&self.path)?;
        }
        self.size = 0;
        Ok(())
    }

    /// Appends, rotating first when the file would grow past `max_bytes` (a single larger write
    /// still goes whole into a fresh file).
    pub fn write(&mut self, data: &[u8]) -> std::io::Result<()> {
        if self.size > 0 && self.size + data.len() as u64 > self.policy.max_bytes {
            self.rotate()?;
        }
        self.file.write_all(data)?;
        self.size += data.len() as u64;
        Ok(())
    }
}

/// The last `lines` lines a slot wrote to `stream` (`out` or `err`; `err` also holds the agent's
/// notes on starts, exits and restarts), across rotated files, oldest first. For `cutover logs`.
pub fn tail_log(
    layout: &Layout,
    service: &str,
    slot: Slot,
    stream: &str,
    lines: usize,
) -> std::io::Result<Vec<String>> {
    let current = layout.log_file(service, slot, stream);
    let mut files = Vec::new();
    for n in (1..=64u32).rev() {
        let mut p = current.clone().into_os_string();
        p.push(format!(".{n}"));
        let p = PathBuf::from(p);
        if p.exists() {
            files.push(p);
        }
    }
    files.push(current);
    let mut out = std::collections::VecDeque::with_capacity(lines.min(4096));
    for f in files {
        let text = match fs::read(&f) {
            Ok(b) => String::from_utf8_lossy(&b).into_owned(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => continue,
            Err(e) => return Err(e),
        };
        for line in text.lines() {
            if out.len() == lines {
                out.pop_front();
            }
            if lines > 0 {
                out.push_back(line.to_owned());
            }
        }
    }
    Ok(out.into())
}

/// Keeps the newest `keep` release directories of a service (by modification time) and the ones in
/// `in_use`; removes the others. Returns the versions removed.
pub fn prune_releases(
    layout: &Layout,
    service: &str,
    keep: usize,
    in_use: &[&str],
) -> std::io::Result<Vec<String>> {
    let dir = layout.service_dir(service).join("releases");
    let mut releases = Vec::new();
    for entry in fs::read_dir(&dir)? {
        let entry = entry?;
        if entry.file_type()?.is_dir() {
            let modified = entry.metadata()?.modified()?;
            releases.push((modified, entry.file_name().to_string_lossy().into_owned()));
        }
    }
    releases.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| b.1.cmp(&a.1)));
    let mut removed = Vec::new();
    for (_, version) in releases.into_iter().skip(keep) {
        if !in_use.contains(&version.as_str()) {
            fs::remove_dir_all(dir.join(&version))?;
            removed.push(version);
        }
    }
    removed.sort();
    Ok(removed)
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn substitutes_inside_arguments() {
        let launch = Launch {
            slot: Slot::Green,
            version: "1.2.3".into(),
            release_dir: "/srv/app/releases/1.2.3".into(),
            port: 9001,
        };
        let out: Vec<String> = [
            "{release_dir}/bin/app",
            "--listen=127.0.0.1:{port}",
            "{slot}-{version}",
            "{other}",
        ]
        .iter()
        .map(|a| substitute(a, &launch))
        .collect();
        assert_eq!(
            out,
            [
                "/srv/app/releases/1.2.3/bin/app",
                "--listen=127.0.0.1:9001",
                "green-1.2.3",
                "{other}"
            ]
        );
    }

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let p = RestartPolicy {
            max_restarts: 10,
            initial_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_millis(1000),
            stable_after: Duration::from_secs(1),
        };
        let waits: Vec<u128> = (1..=6).map(|a| p.backoff(a).as_millis()).collect();
        assert_eq!(waits, [100, 200, 400, 800, 1000, 1000]);
        assert_eq!(p.backoff(100), Duration::from_millis(1000));
    }

    #[test]
    fn log_rotates_and_keeps_n() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("blue.out.log");
        let mut log = RotatingLog::open(
            &path,
            LogPolicy {
                max_bytes: 10,
                keep: 2,
            },
        )
        .unwrap();
        for chunk in ["aaaaaa", "bbbbbb", "cccccc", "dddddd"] {
            log.write(chunk.as_bytes()).unwrap();
        }
        assert_eq!(fs::read_to_string(&path).unwrap(), "dddddd");
        assert_eq!(
            fs::read_to_string(dir.path().join("blue.out.log.1")).unwrap(),
            "cccccc"
        );
        assert_eq!(
            fs::read_to_string(dir.path().join("blue.out.log.2")).unwrap(),
            "bbbbbb"
        );
        assert!(!dir.path().join("blue.out.log.3").exists());
    }

    #[test]
    fn tail_reads_across_rotations() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        let path = layout.log_file("svc", Slot::Blue, "out");
        let mut log = RotatingLog::open(
            &path,
            LogPolicy {
                max_bytes: 8,
                keep: 3,
            },
        )
        .unwrap();
        for i in 1..=6 {
            log.write(format!("line {i}\n").as_bytes()).unwrap();
        }
        let tail = tail_log(&layout, "svc", Slot::Blue, "out", 3).unwrap();
        assert_eq!(tail, ["line 4", "line 5", "line 6"]);
        // Only `keep` rotations exist: the oldest lines are gone.
        let all = tail_log(&layout, "svc", Slot::Blue, "out", 100).unwrap();
        assert_eq!(all, ["line 3", "line 4", "line 5", "line 6"]);
        assert!(
            tail_log(&layout, "svc", Slot::Green, "out", 3)
                .unwrap()
                .is_empty()
        );
    }

    #[test]
    fn secrets_resolve_and_never_show_in_debug() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("token");
        fs::write(&file, "s3cr3t-value\n").unwrap();
        let mut spec = ProcessSpec::new("svc", vec!["x".into()]);
        spec.secrets
            .insert("TOKEN".into(), SecretSource::File(file));
        assert_eq!(
            resolve_secrets(&spec).unwrap(),
            [("TOKEN".to_owned(), "s3cr3t-value".to_owned())]
        );
        assert!(!format!("{spec:?}").contains("s3cr3t"));
        spec.secrets.insert(
            "OTHER".into(),
            SecretSource::Env("CUTOVER_TEST_NO_SUCH_VAR".into()),
        );
        let err = resolve_secrets(&spec).unwrap_err().to_string();
        assert!(err.contains("CUTOVER_TEST_NO_SUCH_VAR is not set"), "{err}");
        assert!(!err.contains("s3cr3t"));
    }

    #[test]
    fn redaction_replaces_every_value_longest_first_and_skips_short_ones() {
        let r = Redactor::new(["hunter22".to_owned(), "hunter2".to_owned(), "ab".to_owned()]);
        assert_eq!(
            &*r.redact(b"pw=hunter22 and hunter2, ab"),
            b"pw=[redacted] and [redacted], ab"
        );
        assert!(matches!(
            r.redact(b"nothing"),
            std::borrow::Cow::Borrowed(_)
        ));
        assert!(Redactor::new(["abc".to_owned()]).is_empty());
        assert!(!format!("{r:?}").contains("hunter"));
    }

    /// A real process that prints its secret (in two writes that split the value): the log
    /// file holds the line, redacted.
    #[test]
    fn a_slot_printing_its_secret_leaves_it_redacted_in_its_log() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path().join("root"));
        let file = dir.path().join("token");
        fs::write(&file, "s3cr3t-value\n").unwrap();
        let mut spec = ProcessSpec::new(
            "svc",
            vec![
                "sh".into(),
                "-c".into(),
                "printf 'token=s3cr3'; sleep 0.05; printf 't-value!\\n'; echo \"env=$TOKEN\""
                    .into(),
            ],
        );
        spec.secrets
            .insert("TOKEN".into(), SecretSource::File(file));
        let launch = Launch {
            slot: Slot::Blue,
            version: "1".into(),
            release_dir: dir.path().to_owned(),
            port: 1,
        };
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut child = spawn_child(&spec, &launch, &layout).unwrap();
            assert!(child.wait().await.unwrap().success());
            let path = layout.log_file("svc", Slot::Blue, "out");
            let deadline = Instant::now() + Duration::from_secs(10);
            while fs::read_to_string(&path)
                .unwrap_or_default()
                .lines()
                .count()
                < 2
            {
                assert!(
                    Instant::now() < deadline,
                    "the output never reached the log"
                );
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            let text = fs::read_to_string(&path).unwrap();
            assert_eq!(text, "token=[redacted]!\nenv=[redacted]\n");
        });
    }

    proptest::proptest! {
        /// Redacted output never holds the value, and output without it is left alone.
        #[test]
        fn redacted_output_never_holds_the_secret(
            before in "[a-z ]{0,20}", secret in "[0-9xyz]{4,12}", after in "[a-z ]{0,20}",
        ) {
            // The secret's alphabet shares nothing with `[redacted]`, so no occurrence can form
            // across a replacement.
            let r = Redactor::new([secret.clone()]);
            let text = format!("{before}{secret}{after}");
            let out = r.redact(text.as_bytes());
            proptest::prop_assert!(!out.windows(secret.len()).any(|w| w == secret.as_bytes()));
            let plain = format!("{before}{after}");
            if !plain.contains(&secret) {
                proptest::prop_assert_eq!(&*r.redact(plain.as_bytes()), plain.as_bytes());
            }
        }
    }

    #[test]
    fn prune_keeps_newest_and_in_use() {
        let dir = tempfile::tempdir().unwrap();
        let layout = Layout::new(dir.path());
        for (i, v) in ["1.0.0", "1.1.0", "1.2.0", "1.3.0"].iter().enumerate() {
            let d = layout.release_dir("svc", v);
            fs::create_dir_all(&d).unwrap();
            let t =
                std::time::SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000 + i as u64);
            File::open(&d).unwrap().set_modified(t).unwrap();
        }
        let removed = prune_releases(&layout, "svc", 2, &["1.0.0"]).unwrap();
        assert_eq!(removed, ["1.1.0"]);
        assert!(layout.release_dir("svc", "1.0.0").exists());
        assert!(layout.release_dir("svc", "1.3.0").exists());
    }
}
