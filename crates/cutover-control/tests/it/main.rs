//! End to end: a real control plane on a unix socket over a SQLite store in a temp dir, and a real
//! agent daemon (in-process task) that registers, polls, fetches and verifies artifacts, runs a real
//! slot process, reports, and reconnects after the control plane goes away.

#![allow(clippy::unwrap_used, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use cutover_agent::Slot;
use cutover_agent::client::{Client, ClientError, ControlUrl};
use cutover_agent::daemon::{self, AgentConfig, AgentHandle, AgentStatus, Backoff};
use cutover_agent::health::{HealthSpec, Probe};
use cutover_agent::protocol::{
    Assignment, DesiredRelease, DesiredRouting, DesiredService, Register, Report,
};
use cutover_agent::runtime::ProcessSpec;
use cutover_control::{ControlState, serve_unix_until};
use cutover_store::{AuditFilter, Store};
use sha2::Digest as _;
use tokio::sync::oneshot;

mod logs;
mod tls;

/// A liveness bound, not a timing assertion: a wait that takes this long has hung.
const HUNG: Duration = Duration::from_secs(60);
const TOKEN: &str = "0123456789abcdef-test-token";

struct Plane {
    state: ControlState,
    socket: PathBuf,
    stop: Option<oneshot::Sender<()>>,
    task: tokio::task::JoinHandle<()>,
}

impl Plane {
    async fn start(
        dir: &Path,
        store: Arc<dyn Store>,
        timeout: Duration,
        recheck: Duration,
    ) -> Plane {
        let state = ControlState::with_timing(store, artifacts_dir(dir), timeout, recheck);
        let socket = dir.join(".cutover/control.sock");
        let listener = cutover_control::bind_unix(&socket).await.unwrap();
        drop(listener);
        let (tx, rx) = oneshot::channel();
        let task = {
            let (state, socket) = (state.clone(), socket.clone());
            tokio::spawn(async move {
                serve_unix_until(&socket, state, async {
                    let _ = rx.await;
                })
                .await
                .unwrap();
            })
        };
        // The socket answers once the server has bound it.
        tokio::time::timeout(HUNG, async {
            while tokio::net::UnixStream::connect(&socket).await.is_err() {
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .unwrap();
        Plane {
            state,
            socket,
            stop: Some(tx),
            task,
        }
    }

    async fn stop(mut self) {
        let _ = self.stop.take().unwrap().send(());
        tokio::time::timeout(HUNG, self.task)
            .await
            .unwrap()
            .unwrap();
        assert!(!self.socket.exists(), "the socket file is removed");
    }
}

fn artifacts_dir(dir: &Path) -> PathBuf {
    dir.join(".cutover/artifacts/sha256")
}

async fn store_in(dir: &Path) -> Arc<dyn Store> {
    cutover_store::open_sqlite(&dir.join(".cutover/state.db"))
        .await
        .unwrap()
}

fn client(dir: &Path, name: &str, token: &str) -> Client {
    Client::new(
        ControlUrl::parse(
            &format!("unix:{}", dir.join(".cutover/control.sock").display()),
            false,
        )
        .unwrap(),
        name,
        token,
    )
}

async fn agent(dir: &Path, root: &Path) -> AgentHandle {
    let mut cfg = AgentConfig::new("web-1", client(dir, "web-1", TOKEN), root);
    cfg.report_interval = Duration::from_millis(200);
    cfg.route_tick = Duration::from_millis(20);
    cfg.backoff = Backoff {
        base: Duration::from_millis(20),
        max: Duration::from_millis(200),
    };
    daemon::spawn(cfg).await
}

async fn agent_again(dir: &Path, root: &Path) -> AgentHandle {
    agent(dir, root).await
}

async fn until(
    handle: &mut AgentHandle,
    what: &str,
    f: impl FnMut(&AgentStatus) -> bool,
) -> AgentStatus {
    let reached = match tokio::time::timeout(HUNG, handle.status.wait_for(f)).await {
        Ok(Ok(s)) => Some(s.clone()),
        _ => None,
    };
    reached.unwrap_or_else(|| {
        panic!(
            "agent never reached: {what}; status {:?}",
            *handle.status.borrow()
        )
    })
}

/// Waits until `f` finds what it looks for in the store.
async fn eventually<T, F, Fut>(what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let found = tokio::time::timeout(HUNG, async {
        loop {
            if let Some(t) = f().await {
                return t;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| panic!("never happened: {what}"))
}

/// A release artifact (tar.zst with an executable `run.sh` that sleeps), stored under its digest.
fn put_artifact(dir: &Path) -> String {
    let mut tar = tar::Builder::new(Vec::new());
    let script = b"#!/bin/sh\nexec sleep 600\n";
    let mut header = tar::Header::new_gnu();
    header.set_size(script.len() as u64);
    header.set_mode(0o755);
    header.set_mtime(1_700_000_000);
    header.set_cksum();
    tar.append_data(&mut header, "run.sh", &script[..]).unwrap();
    let bytes = zstd::encode_all(&tar.into_inner().unwrap()[..], 3).unwrap();
    let digest = hex::encode(sha2::Sha256::digest(&bytes));
    std::fs::create_dir_all(artifacts_dir(dir)).unwrap();
    std::fs::write(artifacts_dir(dir).join(&digest), bytes).unwrap();
    digest
}

use cutover_testkit::free_port;

fn assignment(generation: u64, version: &str, digest: &str) -> Assignment {
    let mut process = ProcessSpec::new("hello", vec!["{release_dir}/run.sh".into()]);
    process.stop_timeout = Duration::from_secs(2);
    let health = HealthSpec {
        probe: Probe::Command {
            argv: vec!["true".into()],
        },
        timeout: Duration::from_secs(5),
        interval: Duration::from_millis(50),
        healthy_after: 1,
        unhealthy_after: 3,
        version_probe: None,
    };
    Assignment {
        generation,
        services: BTreeMap::from([(
            "hello".to_owned(),
            DesiredService {
                listen: format!("127.0.0.1:{}", free_port()).parse().unwrap(),
                process,
                health,
                ports: BTreeMap::from([(Slot::Blue, free_port()), (Slot::Green, free_port())]),
                slots: BTreeMap::from([(
                    Slot::Blue,
                    DesiredRelease {
                        version: version.to_owned(),
                        artifact_sha256: digest.to_owned(),
                        warm_until: None,
                    },
                )]),
                routing: DesiredRouting {
                    active: Some(Slot::Blue),
                    ..DesiredRouting::default()
                },
                drain_timeout: Duration::from_secs(1),
                keep_releases: 3,
            },
        )]),
    }
}

async fn setup() -> (tempfile::TempDir, Arc<dyn Store>) {
    let dir = tempfile::Builder::new()
        .prefix("cc")
        .tempdir_in("/tmp")
        .unwrap();
    let store = store_in(dir.path()).await;
    cutover_control::add_host(&*store, "web-1", TOKEN, "test")
        .await
        .unwrap();
    (dir, store)
}

/// The newest observation of `generation`, once it shows the slot running, healthy and routed.
async fn observed_running(store: &Arc<dyn Store>, generation: i64) -> serde_json::Value {
    let seen = std::sync::Mutex::new(serde_json::Value::Null);
    let found = tokio::time::timeout(HUNG, async {
        loop {
            let obs = store
                .list_observations("web-1", Some(generation))
                .await
                .unwrap();
            if let Some(last) = obs.last() {
                let svc = &last.observed["services"]["hello"];
                if svc["active"] == "blue"
                    && svc["slots"]["blue"]["health"]["health"] == "healthy"
                    && svc["slots"]["blue"]["process"]["state"] == "running"
                {
                    return last.observed.clone();
                }
                *seen.lock().unwrap() = last.observed.clone();
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    found.unwrap_or_else(|_| {
        panic!(
            "no report of a healthy, routed slot; the last: {:#}",
            seen.lock().unwrap()
        )
    })
}

fn slot_pid(root: &Path) -> u32 {
    let record: serde_json::Value =
        serde_json::from_slice(&std::fs::read(root.join("hello/slots/blue.json")).unwrap())
            .unwrap();
    u32::try_from(record["pid"].as_u64().unwrap()).unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_registers_runs_its_assignment_and_reports() {
    let (dir, store) = setup().await;
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let root = dir.path().join("agent");
    let mut agent = agent(dir.path(), &root).await;
    until(&mut agent, "registered", |s| {
        s.connected && s.registrations == 1
    })
    .await;
    let host = store.get_host("web-1").await.unwrap().unwrap();
    assert_eq!(
        host.agent_version.as_deref(),
        Some(env!("CARGO_PKG_VERSION"))
    );
    assert!(host.last_seen.is_some());

    let digest = put_artifact(dir.path());
    plane
        .state
        .put_assignment("web-1", &assignment(1, "1.0.0", &digest), "test")
        .await
        .unwrap();
    let status = until(&mut agent, "generation 1 applied", |s| s.generation == 1).await;
    assert_eq!(status.apply_errors, Vec::<String>::new());
    let observed = observed_running(&store, 1).await;
    assert_eq!(
        observed["services"]["hello"]["slots"]["blue"]["version"],
        "1.0.0"
    );
    assert!(root.join(format!("artifacts/{digest}.tar.zst")).exists());
    assert!(root.join("hello/releases/1.0.0/run.sh").exists());
    // The evidence of the health checks lands apart from the state.
    eventually("health evidence in the store", || async {
        let obs = store.list_observations("web-1", Some(1)).await.unwrap();
        obs.iter()
            .any(|o| {
                o.evidence["hello"]["blue"]
                    .as_array()
                    .is_some_and(|a| !a.is_empty())
            })
            .then_some(())
    })
    .await;
    let actions: Vec<String> = store
        .list_audit(&AuditFilter::default())
        .await
        .unwrap()
        .into_iter()
        .map(|e| e.action)
        .collect();
    for a in [
        "host.add",
        "agent.register",
        "assignment.put",
        "agent.report",
    ] {
        assert!(actions.iter().any(|x| x == a), "{a} in {actions:?}");
    }

    agent.stop().await.unwrap().stop_all().await;
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_corrupt_artifact_is_refused_nothing_is_unpacked_and_it_is_reported() {
    let (dir, store) = setup().await;
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let digest = put_artifact(dir.path());
    // Same name, other bytes: what a corrupted artifact store serves.
    std::fs::write(artifacts_dir(dir.path()).join(&digest), b"not the release").unwrap();
    let root = dir.path().join("agent");
    let mut agent = agent(dir.path(), &root).await;
    plane
        .state
        .put_assignment("web-1", &assignment(1, "1.0.0", &digest), "test")
        .await
        .unwrap();
    let status = until(&mut agent, "generation 1 applied", |s| s.generation == 1).await;
    assert!(
        status.apply_errors.iter().any(|e| e.contains("discarded")),
        "{:?}",
        status.apply_errors
    );
    assert!(!root.join("hello/releases/1.0.0").exists());
    assert!(!root.join(format!("artifacts/{digest}.tar.zst")).exists());
    let errors = eventually("the refusal reported", || async {
        let obs = store.list_observations("web-1", Some(1)).await.unwrap();
        let errs = obs.last()?.observed["services"]["hello"]["errors"].clone();
        errs.as_array()
            .is_some_and(|a| !a.is_empty())
            .then_some(errs)
    })
    .await;
    assert!(errors.to_string().contains(&digest), "{errors}");
    agent.stop().await.unwrap().stop_all().await;
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bad_token_gets_401_an_audit_event_without_the_token_and_changes_nothing() {
    let (dir, store) = setup().await;
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(30),
        Duration::from_secs(1),
    )
    .await;
    let before = store.get_host("web-1").await.unwrap().unwrap();
    let wrong = "wrong-token-value-42";
    for c in [
        client(dir.path(), "web-1", wrong),
        client(dir.path(), "web-9", TOKEN),
        client(dir.path(), "web-1", ""),
    ] {
        let reg = c
            .register(&Register {
                name: "web-1".into(),
                agent_version: "9.9.9".into(),
                hostname: "evil".into(),
            })
            .await;
        assert!(
            matches!(reg, Err(ClientError::Unauthorized { .. })),
            "{reg:?}"
        );
        assert!(c.poll(0).await.unwrap_err().is_unauthorized());
        let report = Report {
            name: "web-1".into(),
            generation: 1,
            at: chrono::Utc::now(),
            services: BTreeMap::new(),
        };
        assert!(c.report(&report).await.unwrap_err().is_unauthorized());
        let dl = c
            .download_artifact(&"a".repeat(64), &dir.path().join("x"))
            .await;
        assert!(dl.unwrap_err().is_unauthorized());
    }
    assert_eq!(store.get_host("web-1").await.unwrap().unwrap(), before);
    assert!(store.get_host("web-9").await.unwrap().is_none());
    assert!(
        store
            .list_observations("web-1", None)
            .await
            .unwrap()
            .is_empty()
    );
    assert!(!dir.path().join("x").exists());
    let events = store.list_audit(&AuditFilter::default()).await.unwrap();
    let refused: Vec<_> = events
        .iter()
        .filter(|e| e.action == "agent.auth_failed")
        .collect();
    assert_eq!(refused.len(), 12, "one per refused request");
    let reasons: std::collections::BTreeSet<String> = refused
        .iter()
        .map(|e| e.payload["reason"].as_str().unwrap().to_owned())
        .collect();
    assert_eq!(
        reasons.into_iter().collect::<Vec<_>>(),
        [
            "no bearer token",
            "the token does not match",
            "unknown host"
        ]
    );
    for e in &events {
        let text = serde_json::to_string(e).unwrap();
        assert!(!text.contains(wrong) && !text.contains(TOKEN), "{text}");
    }
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_poll_returns_on_a_generation_change_and_after_the_timeout_otherwise() {
    let (dir, store) = setup().await;
    let empty = |generation| Assignment {
        generation,
        services: BTreeMap::new(),
    };
    // Timeout and store re-check far beyond the test's bound: only the wake-up can answer.
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(3600),
        Duration::from_secs(3600),
    )
    .await;
    let c = client(dir.path(), "web-1", TOKEN);
    let waiting = tokio::spawn({
        let c = c.clone();
        async move { c.poll(0).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    plane
        .state
        .put_assignment("web-1", &empty(1), "test")
        .await
        .unwrap();
    let got = tokio::time::timeout(HUNG, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.generation, 1);
    // A stale generation answers at once.
    let got = tokio::time::timeout(HUNG, c.poll(0))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got.generation, 1);
    plane.stop().await;

    // Another process writes straight into the store (no wake-up): the re-check finds it.
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(3600),
        Duration::from_millis(50),
    )
    .await;
    let waiting = tokio::spawn({
        let c = c.clone();
        async move { c.poll(1).await }
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    store
        .apply_one(
            cutover_store::Change::PutAssignment(cutover_store::Assignment {
                host: "web-1".into(),
                generation: 2,
                desired: serde_json::to_value(empty(2)).unwrap(),
                created_at: chrono::Utc::now(),
            }),
            &cutover_store::Audit::new(
                "other",
                "assignment.put",
                "host:web-1",
                serde_json::json!({}),
            ),
        )
        .await
        .unwrap();
    let got = tokio::time::timeout(HUNG, waiting)
        .await
        .unwrap()
        .unwrap()
        .unwrap();
    assert_eq!(got.generation, 2);
    plane.stop().await;

    // Nothing changes: the poll answers the same generation after the timeout.
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_millis(200),
        Duration::from_millis(50),
    )
    .await;
    let got = tokio::time::timeout(HUNG, c.poll(2))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(got, empty(2));
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_agent_keeps_serving_without_the_control_plane_and_reconnects() {
    let (dir, store) = setup().await;
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .await;
    let root = dir.path().join("agent");
    let mut agent = agent(dir.path(), &root).await;
    let digest = put_artifact(dir.path());
    let first = assignment(1, "1.0.0", &digest);
    plane
        .state
        .put_assignment("web-1", &first, "test")
        .await
        .unwrap();
    until(&mut agent, "generation 1 applied", |s| s.generation == 1).await;
    observed_running(&store, 1).await;
    let pid = slot_pid(&root);

    plane.stop().await;
    let status = until(&mut agent, "noticed the outage", |s| {
        !s.connected && s.last_error.is_some()
    })
    .await;
    assert!(status.last_error.unwrap().contains("control.sock"));
    // Still running what it ran, and its state is on disk.
    assert!(Path::new(&format!("/proc/{pid}")).exists());
    let kept: Assignment =
        serde_json::from_slice(&std::fs::read(root.join("assignment.json")).unwrap()).unwrap();
    assert_eq!(kept, first);
    let on_disk: AgentStatus =
        serde_json::from_slice(&std::fs::read(daemon::status_path(&root)).unwrap()).unwrap();
    assert!(!on_disk.connected);
    assert_eq!(on_disk.generation, 1);

    // A control plane is back (same socket, same store): the agent registers again and follows.
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .await;
    until(&mut agent, "reconnected", |s| {
        s.connected && s.registrations >= 2
    })
    .await;
    let mut second = first.clone();
    second.generation = 2;
    plane
        .state
        .put_assignment("web-1", &second, "test")
        .await
        .unwrap();
    until(&mut agent, "generation 2 applied", |s| s.generation == 2).await;
    observed_running(&store, 2).await;
    assert_eq!(slot_pid(&root), pid, "the same release keeps its process");

    // An agent restart resumes from the root before it reaches the control plane.
    agent.stop().await.unwrap().detach().await;
    plane.stop().await;
    let mut agent = agent_again(dir.path(), &root).await;
    assert_eq!(agent.status.borrow().generation, 2);
    assert_eq!(
        slot_pid(&root),
        pid,
        "the restarted agent adopted the running slot"
    );
    assert!(!agent.status.borrow().connected);
    let plane = Plane::start(
        dir.path(),
        store.clone(),
        Duration::from_secs(30),
        Duration::from_millis(200),
    )
    .await;
    until(&mut agent, "registered after the restart", |s| s.connected).await;
    agent.stop().await.unwrap().stop_all().await;
    plane.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_agent_talks_plain_http_over_loopback() {
    let (dir, store) = setup().await;
    let state = ControlState::with_timing(
        store.clone(),
        artifacts_dir(dir.path()),
        Duration::from_millis(200),
        Duration::from_millis(50),
    );
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let url = format!("http://{}", listener.local_addr().unwrap());
    let (stop, stopped) = oneshot::channel::<()>();
    let server = tokio::spawn(cutover_control::serve_tcp_until(
        listener,
        state.clone(),
        async move {
            let _ = stopped.await;
        },
    ));
    let c = Client::new(ControlUrl::parse(&url, false).unwrap(), "web-1", TOKEN);
    let registered = c
        .register(&Register {
            name: "web-1".into(),
            agent_version: "1.2.3".into(),
            hostname: "h".into(),
        })
        .await
        .unwrap();
    assert_eq!(registered.generation, 0);
    assert_eq!(registered.poll_timeout, Duration::from_millis(200));
    let digest = put_artifact(dir.path());
    state
        .put_assignment("web-1", &assignment(1, "1.0.0", &digest), "test")
        .await
        .unwrap();
    assert_eq!(c.poll(0).await.unwrap().generation, 1);
    let dest = dir.path().join("dl/a.tar.zst");
    c.download_artifact(&digest, &dest).await.unwrap();
    assert_eq!(
        std::fs::read(&dest).unwrap(),
        std::fs::read(artifacts_dir(dir.path()).join(&digest)).unwrap()
    );
    let missing = c
        .download_artifact(&"0".repeat(64), &dir.path().join("dl/b"))
        .await;
    assert!(
        matches!(missing, Err(ClientError::Status { status: 404, .. })),
        "{missing:?}"
    );
    assert_eq!(
        store
            .get_host("web-1")
            .await
            .unwrap()
            .unwrap()
            .agent_version
            .as_deref(),
        Some("1.2.3")
    );
    let _ = stop.send(());
    server.await.unwrap().unwrap();
}
