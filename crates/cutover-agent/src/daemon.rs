//! The agent daemon: register, long-poll for the assignment, fetch its artifacts, apply it with the
//! [`Reconciler`], report; reconnect with jittered exponential backoff while the slots and routers
//! keep serving.
//!
//! One task owns the reconciler; the network exchange in flight (register, poll or a backoff sleep)
//! is a future raced against the routing tick, the report interval and the shutdown signal, so a
//! long poll never delays routing. What the agent knows survives a restart under `--root`: the
//! reconciler keeps the assignment, and `agent.json` records the connection state.

use std::collections::hash_map::RandomState;
use std::future::Future;
use std::hash::BuildHasher as _;
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::time::Duration;

use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};
use tokio::sync::{oneshot, watch};

use crate::client::{Client, ClientError};
use crate::protocol::{Assignment, Register, Registered};
use crate::reconcile::Reconciler;
use crate::runtime::Layout;

/// How often traffic alone makes a report during a rollout.
const TRAFFIC_REPORT: Duration = Duration::from_millis(500);
/// How long after an assignment change a rollout is taken to be under way (observation windows
/// and canary steps are shorter than this in practice; later ones still get the periodic report).
const ROLLOUT_WINDOW: Duration = Duration::from_secs(300);

/// Jittered exponential backoff: `base · 2^n` capped at `max`, each delay drawn uniformly from
/// its upper half, so that agents cut off together do not reconnect together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Backoff {
    pub base: Duration,
    pub max: Duration,
}

impl Default for Backoff {
    fn default() -> Self {
        Self {
            base: Duration::from_millis(200),
            max: Duration::from_secs(30),
        }
    }
}

impl Backoff {
    /// The delay before attempt `attempt` (0-based), with jitter from `random` (any u64).
    #[must_use]
    pub fn delay(&self, attempt: u32, random: u64) -> Duration {
        let factor = 1u32.checked_shl(attempt.min(20)).unwrap_or(u32::MAX);
        let full = self.base.saturating_mul(factor).min(self.max);
        let half = full / 2;
        let span = u64::try_from(half.as_micros()).unwrap_or(u64::MAX).max(1);
        half + Duration::from_micros(random % span)
    }
}

fn random_u64() -> u64 {
    // A fresh RandomState is seeded from the OS: enough randomness for jitter, no extra crate.
    RandomState::new().hash_one(std::time::SystemTime::now())
}

/// How the daemon runs.
#[derive(Debug, Clone)]
pub struct AgentConfig {
    pub name: String,
    pub client: Client,
    pub root: PathBuf,
    /// How often the observed state is reported besides after each apply.
    pub report_interval: Duration,
    /// How often routing that waits for health is retried.
    pub route_tick: Duration,
    pub backoff: Backoff,
    /// On SIGUSR1, give up the reconnect backoff and reconnect at once (the local agent: the CLI
    /// wakes it after binding the control socket). Off by default: a library must not take a
    /// process-wide signal unasked.
    pub wake_on_sigusr1: bool,
}

impl AgentConfig {
    #[must_use]
    pub fn new(name: impl Into<String>, client: Client, root: impl Into<PathBuf>) -> Self {
        Self {
            name: name.into(),
            client,
            root: root.into(),
            report_interval: Duration::from_secs(10),
            route_tick: Duration::from_millis(100),
            backoff: Backoff::default(),
            wake_on_sigusr1: false,
        }
    }
}

/// What the daemon is doing, published for the CLI and the tests; also kept in
/// `<root>/agent.json`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AgentStatus {
    /// Registered and the last exchange succeeded.
    pub connected: bool,
    /// The generation of the assignment applied last.
    pub generation: u64,
    /// Successful registrations since the start (a reconnection adds one).
    pub registrations: u64,
    /// Reports the control plane accepted since the start.
    pub reports: u64,
    pub last_contact: Option<DateTime<Utc>>,
    /// The last failure talking to the control plane (never contains the token).
    pub last_error: Option<String>,
    /// Problems of the last apply.
    pub apply_errors: Vec<String>,
}

/// The state file under the root.
#[must_use]
pub fn status_path(root: &Path) -> PathBuf {
    root.join("agent.json")
}

/// A running daemon.
#[derive(Debug)]
pub struct AgentHandle {
    pub status: watch::Receiver<AgentStatus>,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<Reconciler>,
    /// Answers log reads (`cutover logs --host`); on its own task so that a long follow never
    /// holds up reconciling.
    logs: tokio::task::JoinHandle<()>,
}

impl AgentHandle {
    /// Stops the loop and returns the reconciler, still running its slots and routers: the
    /// caller chooses [`Reconciler::detach`] (an agent restart) or [`Reconciler::stop_all`].
    pub async fn stop(mut self) -> Result<Reconciler, tokio::task::JoinError> {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.logs.abort();
        self.task.await
    }
}

/// Resumes the kept assignment, then runs the loop on a task until [`AgentHandle::stop`].
pub async fn spawn(config: AgentConfig) -> AgentHandle {
    let (reconciler, errors) =
        Reconciler::resume(config.name.clone(), Layout::new(&config.root)).await;
    let status = AgentStatus {
        generation: reconciler.generation(),
        apply_errors: errors,
        ..AgentStatus::default()
    };
    let (tx, rx) = watch::channel(status);
    let (stop_tx, stop_rx) = oneshot::channel();
    let logs = tokio::spawn(crate::logs::serve_requests(
        config.client.clone(),
        Layout::new(&config.root),
        config.backoff,
        rx.clone(),
    ));
    let task = tokio::spawn(run(config, reconciler, tx, stop_rx));
    AgentHandle {
        status: rx,
        stop: Some(stop_tx),
        task,
        logs,
    }
}

enum Step {
    Registered(Result<Registered, ClientError>),
    Polled(Result<Assignment, ClientError>),
    Retry,
}

type Pending = Pin<Box<dyn Future<Output = Step> + Send>>;

fn register(client: Client, name: String) -> Pending {
    Box::pin(async move {
        let hostname = std::fs::read_to_string("/proc/sys/kernel/hostname")
            .map(|h| h.trim().to_owned())
            .unwrap_or_default();
        Step::Registered(
            client
                .register(&Register {
                    name,
                    agent_version: env!("CARGO_PKG_VERSION").to_owned(),
                    hostname,
                })
                .await,
        )
    })
}

/// A poll that outlives the control plane's long-poll timeout by this much is given up: the
/// connection died without a reset (a cable, a NAT).
const POLL_MARGIN: Duration = Duration::from_secs(15);

fn poll(client: Client, generation: u64, poll_timeout: Duration) -> Pending {
    Box::pin(async move {
        let limit = poll_timeout.saturating_add(POLL_MARGIN);
        let result = match tokio::time::timeout(limit, client.poll(generation)).await {
            Ok(r) => r,
            Err(_) => Err(ClientError::Transport {
                url: client.url().to_string(),
                method: "GET",
                path: "/agent/v1/poll".to_owned(),
                what: format!("no answer within {limit:?}"),
            }),
        };
        Step::Polled(result)
    })
}

fn retry_after(delay: Duration) -> Pending {
    Box::pin(async move {
        tokio::time::sleep(delay).await;
        Step::Retry
    })
}

fn keep_status(root: &Path, status: &AgentStatus) {
    let path = status_path(root);
    let tmp = path.with_extension("json.tmp");
    let Ok(bytes) = serde_json::to_vec_pretty(status) else {
        return;
    };
    // Best effort: the status file is informational; the assignment the reconciler keeps is what
    // a restart relies on.
    if std::fs::create_dir_all(root).is_ok() && std::fs::write(&tmp, bytes).is_ok() {
        let _ = std::fs::rename(&tmp, &path);
    }
}

/// Fetches the artifacts of `assignment` not yet on disk; returns the failures as
/// (service, message) for every service that uses the artifact. A failure that a retry may
/// mend (the control plane went away mid-download) is returned as `Err` instead: the assignment
/// is then not applied, so that it is fetched again after the reconnect rather than reported as
/// a slot that cannot start.
async fn fetch_artifacts(
    client: &Client,
    layout: &Layout,
    assignment: &Assignment,
) -> Result<Vec<(String, String)>, ClientError> {
    let mut errors = Vec::new();
    let mut digests: Vec<&str> = assignment
        .services
        .values()
        .flat_map(|s| s.slots.values().map(|r| r.artifact_sha256.as_str()))
        .collect();
    digests.sort_unstable();
    digests.dedup();
    for digest in digests {
        let dest = layout.artifact(digest);
        if dest.exists() {
            continue;
        }
        if let Err(e) = client.download_artifact(digest, &dest).await {
            if is_transient(&e) {
                return Err(e);
            }
            for (name, svc) in &assignment.services {
                if svc.slots.values().any(|r| r.artifact_sha256 == digest) {
                    errors.push((name.clone(), format!("fetching the artifact: {e}")));
                }
            }
        }
    }
    Ok(errors)
}

/// Whether a failed request may succeed when retried: the control plane was unreachable, the
/// connection broke, or it answered a server error (say, while shutting down). A wrong digest
/// or a refusal will not change.
fn is_transient(e: &ClientError) -> bool {
    match e {
        ClientError::Connect { .. } | ClientError::Transport { .. } => true,
        ClientError::Status { status, .. } => *status >= 500,
        _ => false,
    }
}

/// Sends the observed state; a failure is noted (the poll in flight notices an outage too and
/// reconnects).
async fn send_report(
    client: &Client,
    reconciler: &mut Reconciler,
    status: &watch::Sender<AgentStatus>,
    fetch_errors: &[(String, String)],
) -> Result<(), ClientError> {
    let mut report = reconciler.report();
    add_fetch_errors(&mut report, fetch_errors);
    match client.report(&report).await {
        Ok(()) => {
            status.send_modify(|s| s.reports += 1);
            Ok(())
        }
        Err(e) => {
            let msg = e.to_string();
            status.send_modify(|s| s.last_error = Some(msg));
            Err(e)
        }
    }
}

/// The next SIGUSR1, or never when the daemon does not listen for it.
async fn woken(wake: &mut Option<tokio::signal::unix::Signal>) {
    match wake {
        Some(signal) => {
            if signal.recv().await.is_none() {
                std::future::pending::<()>().await;
            }
        }
        None => std::future::pending().await,
    }
}

async fn run(
    config: AgentConfig,
    mut reconciler: Reconciler,
    status: watch::Sender<AgentStatus>,
    mut stop: oneshot::Receiver<()>,
) -> Reconciler {
    let layout = Layout::new(&config.root);
    let client = config.client.clone();
    let mut attempt = 0u32;
    let mut poll_timeout = Duration::from_secs(30);
    let mut pending = register(client.clone(), config.name.clone());
    // Whether `pending` is a backoff sleep (which a wake-up may cut short).
    let mut backing_off = false;
    let mut wake = if config.wake_on_sigusr1 {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::user_defined1()) {
            Ok(s) => Some(s),
            Err(e) => {
                // The agent still reconnects, on its backoff.
                status
                    .send_modify(|s| s.last_error = Some(format!("cannot watch for SIGUSR1: {e}")));
                None
            }
        }
    } else {
        None
    };
    let mut route_tick = tokio::time::interval(config.route_tick);
    route_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut report_tick = tokio::time::interval(config.report_interval);
    report_tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    // What the control plane was told last, apart from evidence and counters.
    let mut reported_key = String::new();
    // Traffic counters move on every request, so they alone do not make a report; but while a
    // rollout is likely under way (an assignment changed recently) the orchestrator judges the
    // new slot by them (observation window, canary analysis), so then they are reported at
    // most every TRAFFIC_REPORT.
    let mut last_assignment = tokio::time::Instant::now();
    let mut last_report = tokio::time::Instant::now();
    let mut reported_requests = 0u64;
    let publish = |f: &dyn Fn(&mut AgentStatus)| {
        // On disk first: whoever sees the new status may read the file.
        let mut next = status.borrow().clone();
        f(&mut next);
        keep_status(&config.root, &next);
        status.send_replace(next);
    };
    let fail = |e: &ClientError, attempt: &mut u32| -> Pending {
        let msg = e.to_string();
        publish(&|s| {
            s.connected = false;
            s.last_error = Some(msg.clone());
        });
        let delay = config.backoff.delay(*attempt, random_u64());
        *attempt = attempt.saturating_add(1);
        retry_after(delay)
    };
    loop {
        tokio::select! {
            _ = &mut stop => break,
            () = woken(&mut wake) => {
                if backing_off {
                    attempt = 0;
                    backing_off = false;
                    pending = register(client.clone(), config.name.clone());
                }
            }
            _ = route_tick.tick() => {
                reconciler.expire_warm().await;
                reconciler.route();
                // A slot that turned healthy, a switch that health allowed only now, a restart:
                // the orchestrator waits on these, so they are reported at once.
                if status.borrow().connected {
                    let key = reconciler.observed_key();
                    let now = tokio::time::Instant::now();
                    let requests = reconciler.total_requests();
                    let traffic = requests != reported_requests
                        && now.duration_since(last_assignment) < ROLLOUT_WINDOW
                        && now.duration_since(last_report) >= TRAFFIC_REPORT;
                    if (key != reported_key || traffic)
                        && send_report(&client, &mut reconciler, &status, &[]).await.is_ok()
                    {
                        reported_key = key;
                        reported_requests = requests;
                        last_report = now;
                    }
                }
            }
            _ = report_tick.tick(), if status.borrow().connected => {
                let key = reconciler.observed_key();
                if send_report(&client, &mut reconciler, &status, &[]).await.is_ok() {
                    reported_key = key;
                }
            }
            step = &mut pending => {
                backing_off = false;
                pending = match step {
                    Step::Retry => register(client.clone(), config.name.clone()),
                    Step::Registered(Ok(registered)) => {
                        attempt = 0;
                        poll_timeout = registered.poll_timeout;
                        publish(&|s| {
                            s.connected = true;
                            s.registrations += 1;
                            s.last_contact = Some(Utc::now());
                        });
                        // Tell the control plane at once what runs here (also after a reconnect).
                        let key = reconciler.observed_key();
                        match send_report(&client, &mut reconciler, &status, &[]).await {
                            Ok(()) => {
                                reported_key = key;
                                poll(client.clone(), reconciler.generation(), poll_timeout)
                            }
                            Err(e) => {
                                backing_off = true;
                                fail(&e, &mut attempt)
                            }
                        }
                    }
                    Step::Registered(Err(e)) | Step::Polled(Err(e)) => {
                        backing_off = true;
                        fail(&e, &mut attempt)
                    }
                    Step::Polled(Ok(assignment)) => {
                        attempt = 0;
                        // Generation 0: the control plane holds no assignment for this host (a
                        // new store, say); keep running what runs rather than stop everything.
                        let changed = assignment.generation != 0
                            && assignment.generation != reconciler.generation();
                        let fetched = if changed {
                            Some(fetch_artifacts(&client, &layout, &assignment).await)
                        } else {
                            None
                        };
                        if let Some(Err(e)) = &fetched {
                            backing_off = true;
                            pending = fail(e, &mut attempt);
                            continue;
                        }
                        if let Some(Ok(fetch)) = fetched {
                            last_assignment = tokio::time::Instant::now();
                            let mut errors: Vec<String> =
                                fetch.iter().map(|(svc, e)| format!("{svc}: {e}")).collect();
                            // `apply` routes as far as health allows, so a switch to a warm slot
                            // happens here, and the report right after tells it without waiting
                            // for a tick.
                            errors.extend(reconciler.apply(assignment).await);
                            let key = reconciler.observed_key();
                            if send_report(&client, &mut reconciler, &status, &fetch).await.is_ok() {
                                reported_key = key;
                            }
                            let generation = reconciler.generation();
                            publish(&|s| {
                                s.generation = generation;
                                s.apply_errors.clone_from(&errors);
                            });
                        }
                        publish(&|s| {
                            s.connected = true;
                            s.last_contact = Some(Utc::now());
                        });
                        poll(client.clone(), reconciler.generation(), poll_timeout)
                    }
                };
            }
        }
    }
    publish(&|s| s.connected = false);
    reconciler
}

/// The reconciler only sees a missing artifact file; the report says why it is missing.
fn add_fetch_errors(report: &mut crate::protocol::Report, errors: &[(String, String)]) {
    for (name, e) in errors {
        if let Some(svc) = report.services.get_mut(name)
            && !svc.errors.contains(e)
        {
            svc.errors.push(e.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_caps_and_jitters_within_the_upper_half() {
        let b = Backoff {
            base: Duration::from_millis(100),
            max: Duration::from_secs(2),
        };
        for (attempt, full_ms) in [(0, 100), (1, 200), (3, 800), (10, 2000), (60, 2000)] {
            let full = Duration::from_millis(full_ms);
            for random in [0, 1, 12_345, u64::MAX] {
                let d = b.delay(attempt, random);
                assert!(d >= full / 2 && d <= full, "{attempt} {random} {d:?}");
            }
        }
        assert_ne!(b.delay(5, 1), b.delay(5, 777_777));
    }
}
