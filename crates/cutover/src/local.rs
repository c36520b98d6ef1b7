//! The embedded control plane of one project: the agent protocol served on `.cutover/control.sock`
//! for as long as a command runs, and the project's local agent daemon (host `local`) kept alive.
//!
//! Files under `.cutover/`: `control.sock` (the socket), `agent.pid` (the daemon's pid),
//! `agent.token` (its token, 0600; only the hash is in the store), `agent.log` (its output) and
//! `agent/` (its root: releases, slot logs, the kept assignment).

use std::io::Write as _;
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cutover_control::ControlState;
use cutover_store::Store;
use tokio::sync::watch;

use crate::context::{Ctx, STATE_DIR, store_error};
use crate::error::{CliError, Result};

/// The local agent's host name.
pub const LOCAL_HOST: &str = "local";
/// How long a freshly started (or woken) local agent has to register.
const REGISTER_TIMEOUT: Duration = Duration::from_secs(15);
/// How long other agents woken on the socket get to reconnect before the command goes on.
const OTHERS_TIMEOUT: Duration = Duration::from_secs(2);
/// How often the socket is tried again while another process serves it.
const BIND_RETRY: Duration = Duration::from_millis(100);

/// Where the local agent's files are.
#[derive(Debug, Clone)]
pub struct LocalPaths {
    pub state_dir: PathBuf,
    pub socket: PathBuf,
    pub pidfile: PathBuf,
    pub token: PathBuf,
    pub log: PathBuf,
    pub agent_root: PathBuf,
    pub artifacts: PathBuf,
}

impl LocalPaths {
    #[must_use]
    pub fn new(project_root: &Path) -> Self {
        let state_dir = project_root.join(STATE_DIR);
        Self {
            socket: state_dir.join("control.sock"),
            pidfile: state_dir.join("agent.pid"),
            token: state_dir.join("agent.token"),
            log: state_dir.join("agent.log"),
            agent_root: state_dir.join("agent"),
            artifacts: state_dir.join("artifacts").join("sha256"),
            state_dir,
        }
    }

    /// The control URL the local agent follows.
    #[must_use]
    pub fn control_url(&self) -> String {
        format!("unix:{}", self.socket.display())
    }
}

/// Serves the agent protocol on `.cutover/control.sock` while alive.
pub struct LocalControl {
    state: ControlState,
    paths: LocalPaths,
    shutdown: watch::Sender<bool>,
    bound: watch::Receiver<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl std::fmt::Debug for LocalControl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LocalControl")
            .field("socket", &self.paths.socket)
            .field("bound", &*self.bound.borrow())
            .finish_non_exhaustive()
    }
}

impl LocalControl {
    /// Binds .cutover/control.sock (when another live cutover process serves it, keeps retrying
    /// the bind every 100 ms in the background), and when `hosts` (those this command deploys to)
    /// include `local` makes sure the local agent daemon runs (registers host `local`, starts
    /// `cutover agent` detached, waits for it to register). Every agent following the socket is
    /// woken with SIGUSR1; only those of `hosts` are waited for (briefly).
    pub async fn start(
        ctx: &Ctx<'_>,
        store: Arc<dyn Store>,
        hosts: &[String],
    ) -> Result<LocalControl> {
        let local_agent = hosts.iter().any(|h| h == LOCAL_HOST);
        let root = ctx.project_root()?;
        let paths = LocalPaths::new(&root);
        std::fs::create_dir_all(&paths.state_dir).map_err(|e| {
            CliError::internal(format!("cannot create {}", paths.state_dir.display())).with_cause(e)
        })?;
        let state = ControlState::new(store.clone(), paths.artifacts.clone());
        let (shutdown, shutdown_rx) = watch::channel(false);
        let (bound_tx, bound) = watch::channel(false);
        let task = tokio::spawn(serve_socket(
            paths.clone(),
            state.clone(),
            shutdown_rx,
            bound_tx,
        ));
        let me = LocalControl {
            state,
            paths,
            shutdown,
            bound,
            task,
        };
        // Give the bind a moment: when the socket is free it is ours within milliseconds, and the
        // agent is then best woken once it can reach us.
        let bound_now = me.wait_bound(Duration::from_millis(500)).await;
        tracing::debug!(bound_now, "control: socket bound");
        let since = chrono::Utc::now();
        let agent = if local_agent {
            Some(ensure_agent(&me.paths, &*store, &|| ctx.actor()).await?)
        } else {
            None
        };
        if bound_now {
            // A fresh agent connects by itself; running ones may sit in their backoff.
            tracing::debug!("control: local agent ensured");
            let woken = wake_agents(&me.paths.socket);
            tracing::debug!(?woken, "control: agents woken");
            if let Some(agent) = agent {
                wait_registered(&*store, since, &me.paths, agent.fresh).await?;
                tracing::debug!("control: local agent registered");
            }
            // The other hosts of the environments are not this command's to vouch for: a short,
            // quiet wait; agents of other environments reconnect by themselves (no wait on the
            // rollback path for them).
            let others: Vec<String> = woken
                .into_iter()
                .filter(|n| n != LOCAL_HOST && hosts.contains(n))
                .collect();
            wait_seen(&*store, since, &others, OTHERS_TIMEOUT).await;
            tracing::debug!("control: other agents seen");
        } else if agent.is_some_and(|a| a.fresh) {
            // Another process serves the socket; the new agent registers there.
            wait_registered(&*store, since, &me.paths, true).await?;
        }
        Ok(me)
    }

    #[must_use]
    pub fn state(&self) -> &ControlState {
        &self.state
    }

    /// Whether this process serves the socket now.
    #[must_use]
    pub fn is_bound(&self) -> bool {
        *self.bound.borrow()
    }

    /// Waits up to `limit` for the socket to be ours; returns whether it is.
    pub async fn wait_bound(&self, limit: Duration) -> bool {
        let mut bound = self.bound.clone();
        tokio::time::timeout(limit, bound.wait_for(|b| *b))
            .await
            .is_ok_and(|r| r.is_ok())
    }

    /// Stops serving: the waiting polls answer at once, and the socket file is removed.
    pub async fn stop(self) {
        let _ = self.shutdown.send(true);
        let _ = self.task.await;
    }
}

async fn serve_socket(
    paths: LocalPaths,
    state: ControlState,
    mut shutdown: watch::Receiver<bool>,
    bound: watch::Sender<bool>,
) {
    let mut warned = false;
    loop {
        if *shutdown.borrow() {
            return;
        }
        match cutover_control::bind_unix(&paths.socket).await {
            Ok(listener) => {
                bound.send_replace(true);
                let closer = state.clone();
                let mut stop = shutdown.clone();
                let served = axum::serve(listener, cutover_control::router(state.clone()))
                    .with_graceful_shutdown(async move {
                        let _ = stop.wait_for(|s| *s).await;
                        closer.close();
                    })
                    .await;
                if let Err(e) = served {
                    tracing::error!(error = %e, "serving the agent protocol failed");
                }
                bound.send_replace(false);
                let _ = std::fs::remove_file(&paths.socket);
                return;
            }
            Err(e) => {
                if !matches!(e, cutover_control::ControlError::InUse { .. }) && !warned {
                    tracing::warn!(error = %e, "cannot serve the agent protocol yet; retrying");
                    warned = true;
                }
                tokio::select! {
                    _ = tokio::time::sleep(BIND_RETRY) => {}
                    _ = shutdown.changed() => {}
                }
            }
        }
    }
}

/// The local agent that runs (or was just started).
#[derive(Debug, Clone, Copy)]
pub struct AgentProcess {
    pub pid: u32,
    /// Started by this call.
    pub fresh: bool,
}

/// The pid in the pidfile, when that process is alive and is this project's local agent.
#[must_use]
pub fn running_agent(paths: &LocalPaths) -> Option<u32> {
    let pid: u32 = std::fs::read_to_string(&paths.pidfile)
        .ok()?
        .trim()
        .parse()
        .ok()?;
    is_local_agent(pid, &paths.agent_root).then_some(pid)
}

/// Whether `pid` is alive and runs `… agent … --root <agent_root>` (a reused pid runs something
/// else; a zombie has an empty command line).
fn is_local_agent(pid: u32, agent_root: &Path) -> bool {
    let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
        return false;
    };
    let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
    let root = agent_root.as_os_str().as_encoded_bytes();
    args.contains(&b"agent".as_slice())
        && args
            .windows(2)
            .any(|w| w[0] == b"--root".as_slice() && w[1] == root)
}

/// Sends SIGUSR1 to every agent that follows `unix:<socket>` and handles the signal (a process
/// that has not installed its handler yet would die of it), so that agents waiting in their
/// reconnect backoff connect now. Returns the `--name`s of those woken.
pub fn wake_agents(socket: &Path) -> Vec<String> {
    let mut control = b"unix:".to_vec();
    control.extend_from_slice(socket.as_os_str().as_encoded_bytes());
    let Ok(dir) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    let mut woken = Vec::new();
    for entry in dir.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<u32>().ok())
        else {
            continue;
        };
        let Ok(cmdline) = std::fs::read(format!("/proc/{pid}/cmdline")) else {
            continue;
        };
        let args: Vec<&[u8]> = cmdline.split(|b| *b == 0).collect();
        let follows = args.contains(&b"agent".as_slice())
            && args
                .windows(2)
                .any(|w| w[0] == b"--control".as_slice() && w[1] == control.as_slice());
        if follows && catches_sigusr1(pid) && signal_agent(pid, rustix::process::Signal::USR1) {
            let name = args
                .windows(2)
                .find(|w| w[0] == b"--name".as_slice())
                .map(|w| String::from_utf8_lossy(w[1]).into_owned());
            woken.extend(name);
        }
    }
    woken
}

/// Whether `pid` has a handler for SIGUSR1 (`SigCgt` in `/proc/PID/status`, bit 9).
fn catches_sigusr1(pid: u32) -> bool {
    let Ok(status) = std::fs::read_to_string(format!("/proc/{pid}/status")) else {
        return false;
    };
    status
        .lines()
        .find_map(|l| l.strip_prefix("SigCgt:"))
        .and_then(|mask| u64::from_str_radix(mask.trim(), 16).ok())
        .is_some_and(|mask| mask & (1 << (libc::SIGUSR1 - 1)) != 0)
}

pub(crate) fn signal_agent(pid: u32, signal: rustix::process::Signal) -> bool {
    let Some(pid) = i32::try_from(pid)
        .ok()
        .and_then(rustix::process::Pid::from_raw)
    else {
        return false;
    };
    rustix::process::kill_process(pid, signal).is_ok()
}

/// Makes sure host `local` is registered with the token in `.cutover/agent.token` and that its
/// daemon runs; starts it when not.
pub async fn ensure_agent(
    paths: &LocalPaths,
    store: &dyn Store,
    actor: &dyn Fn() -> String,
) -> Result<AgentProcess> {
    // One starter at a time: two commands started together must not start two daemons.
    let lock_path = paths.state_dir.join("agent.lock");
    let lock = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| {
            CliError::internal(format!("cannot open {}", lock_path.display())).with_cause(e)
        })?;
    let locked = tokio::task::spawn_blocking(move || lock.lock().map(|()| lock))
        .await
        .map_err(|e| CliError::internal("the agent lock task failed").with_cause(e))?
        .map_err(|e| {
            CliError::internal(format!("cannot lock {}", lock_path.display())).with_cause(e)
        })?;
    let token = ensure_token(paths)?;
    let registered = store
        .get_host(LOCAL_HOST)
        .await
        .map_err(store_error)?
        .and_then(|h| h.token_hash)
        .is_some_and(|hash| cutover_control::verify_token(&token, &hash));
    if !registered {
        // The actor is looked up only when needed (it may ask git).
        cutover_control::add_host(store, LOCAL_HOST, &token, &actor())
            .await
            .map_err(store_error)?;
    }
    if let Some(pid) = running_agent(paths) {
        drop(locked);
        return Ok(AgentProcess { pid, fresh: false });
    }
    let pid = spawn_agent(paths)?;
    drop(locked);
    Ok(AgentProcess { pid, fresh: true })
}

/// The local agent's token: read from `.cutover/agent.token`, or created there (0600).
fn ensure_token(paths: &LocalPaths) -> Result<String> {
    if let Ok(text) = std::fs::read_to_string(&paths.token) {
        let token = text.lines().next().unwrap_or_default().trim().to_owned();
        if !token.is_empty() {
            return Ok(token);
        }
    }
    let token = cutover_control::new_token()
        .map_err(|e| CliError::internal("cannot draw a random token").with_cause(e))?;
    let tmp = paths.token.with_extension("token.tmp");
    let _ = std::fs::remove_file(&tmp);
    let write = || -> std::io::Result<()> {
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)?;
        writeln!(file, "{token}")?;
        file.sync_all()?;
        std::fs::rename(&tmp, &paths.token)
    };
    write().map_err(|e| {
        CliError::internal(format!("cannot write {}", paths.token.display())).with_cause(e)
    })?;
    Ok(token)
}

/// Starts `cutover agent --name local …` in its own session (it outlives this command), its
/// output appended to `.cutover/agent.log`, and records its pid.
fn spawn_agent(paths: &LocalPaths) -> Result<u32> {
    let exe = std::env::current_exe()
        .map_err(|e| CliError::internal("cannot find the cutover executable").with_cause(e))?;
    let log = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&paths.log)
        .map_err(|e| {
            CliError::internal(format!("cannot open {}", paths.log.display())).with_cause(e)
        })?;
    let log2 = log
        .try_clone()
        .map_err(|e| CliError::internal("cannot duplicate the log file").with_cause(e))?;
    let mut cmd = std::process::Command::new(exe);
    cmd.arg("agent")
        .arg("--name")
        .arg(LOCAL_HOST)
        .arg("--control")
        .arg(paths.control_url())
        .arg("--token-file")
        .arg(&paths.token)
        .arg("--root")
        .arg(&paths.agent_root)
        .current_dir(&paths.state_dir)
        .stdin(std::process::Stdio::null())
        .stdout(log)
        .stderr(log2)
        .env("CUTOVER_LOCAL_AGENT", "1");
    if std::env::var_os("CUTOVER_LOG").is_none() {
        cmd.env("CUTOVER_LOG", "info");
    }
    new_session(&mut cmd);
    let child = cmd.spawn().map_err(|e| {
        CliError::internal("cannot start the local agent")
            .with_cause(e)
            .with_hint(format!("see {}", paths.log.display()))
    })?;
    let pid = child.id();
    // Not waited for: it runs on after this command, adopted by init when we exit.
    drop(child);
    let tmp = paths.pidfile.with_extension("pid.tmp");
    std::fs::write(&tmp, format!("{pid}\n"))
        .and_then(|()| std::fs::rename(&tmp, &paths.pidfile))
        .map_err(|e| {
            CliError::internal(format!("cannot write {}", paths.pidfile.display())).with_cause(e)
        })?;
    Ok(pid)
}

#[allow(unsafe_code)]
fn new_session(cmd: &mut std::process::Command) {
    use std::os::unix::process::CommandExt as _;
    // SAFETY: the closure runs in the forked child before exec and only calls setsid(2) and signal(2),
    // both async-signal-safe; it allocates nothing and touches no lock.
    unsafe {
        cmd.pre_exec(|| {
            rustix::process::setsid().map_err(std::io::Error::from)?;
            // Ignored until the agent installs its handler (an ignored disposition survives
            // exec): a wake-up sent in between must not kill it.
            libc::signal(libc::SIGUSR1, libc::SIG_IGN);
            Ok(())
        });
    }
}

/// Waits up to `limit` until each of `hosts` was seen at or after `since`.
async fn wait_seen(
    store: &dyn Store,
    since: chrono::DateTime<chrono::Utc>,
    hosts: &[String],
    limit: Duration,
) {
    let deadline = tokio::time::Instant::now() + limit;
    let since = since - chrono::Duration::milliseconds(5);
    for host in hosts {
        loop {
            let seen = store
                .get_host(host)
                .await
                .ok()
                .flatten()
                .and_then(|h| h.last_seen);
            if seen.is_some_and(|t| t >= since) || tokio::time::Instant::now() >= deadline {
                break;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }
}

/// Waits until host `local` was seen at or after `since` (it registered or polled).
async fn wait_registered(
    store: &dyn Store,
    since: chrono::DateTime<chrono::Utc>,
    paths: &LocalPaths,
    fresh: bool,
) -> Result<()> {
    let deadline = tokio::time::Instant::now() + REGISTER_TIMEOUT;
    // Timestamps may be stored with less precision than `since` has.
    let since = since - chrono::Duration::milliseconds(5);
    loop {
        let seen = store
            .get_host(LOCAL_HOST)
            .await
            .map_err(store_error)?
            .and_then(|h| h.last_seen);
        if seen.is_some_and(|t| t >= since) {
            return Ok(());
        }
        if tokio::time::Instant::now() >= deadline {
            let what = if fresh {
                "the local agent was started but did not register"
            } else {
                "the local agent runs but did not reconnect"
            };
            return Err(
                CliError::failed(format!("{what} within {}s", REGISTER_TIMEOUT.as_secs()))
                    .with_hint(format!("see {}", paths.log.display())),
            );
        }
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// A child process that is killed and reaped when dropped, also when an assertion fails
    /// before the test's end.
    struct Reaped(std::process::Child);

    impl Drop for Reaped {
        fn drop(&mut self) {
            let _ = self.0.kill();
            let _ = self.0.wait();
        }
    }

    #[test]
    fn only_a_live_agent_with_this_root_counts_as_the_local_agent() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LocalPaths::new(dir.path());
        assert!(running_agent(&paths).is_none(), "no pidfile");
        std::fs::create_dir_all(&paths.state_dir).unwrap();
        // This test process is alive but is not `cutover agent --root <root>`.
        std::fs::write(&paths.pidfile, format!("{}\n", std::process::id())).unwrap();
        assert!(running_agent(&paths).is_none());
        std::fs::write(&paths.pidfile, "not a pid\n").unwrap();
        assert!(running_agent(&paths).is_none());
        // A live process whose command line is `… agent … --root <root>` is one. The shell
        // waits in its `read` builtin (no grandchild to outlive it) until killed, or until its
        // stdin closes with this test process.
        let child = Reaped(
            std::process::Command::new("sh")
                .args(["-c", "read -r line", "agent", "--root"])
                .arg(&paths.agent_root)
                .stdin(std::process::Stdio::piped())
                .stdout(std::process::Stdio::null())
                .stderr(std::process::Stdio::null())
                .spawn()
                .unwrap(),
        );
        let pid = child.0.id();
        std::fs::write(&paths.pidfile, format!("{pid}\n")).unwrap();
        let found = running_agent(&paths);
        drop(child);
        assert_eq!(found, Some(pid));
        assert!(running_agent(&paths).is_none(), "a dead process is not");
        assert_eq!(
            paths.control_url(),
            format!("unix:{}", paths.socket.display())
        );
    }

    #[test]
    fn nobody_follows_a_fresh_socket_so_nobody_is_woken() {
        let dir = tempfile::tempdir().unwrap();
        let paths = LocalPaths::new(dir.path());
        assert!(wake_agents(&paths.socket).is_empty());
        assert!(!catches_sigusr1(u32::MAX));
    }
}
