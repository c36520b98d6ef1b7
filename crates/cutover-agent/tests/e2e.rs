//! End-to-end tests of the agent's runtime, health checks and router with real processes and sockets.
//!
//! The slots run the real test app: this test binary re-executes itself as `e2e testapp ARGS…`
//! (then it is `cutover-testapp`), so real child processes exist without a nested cargo build. That
//! needs a `main` of our own, hence the small runner below (filters: substrings of test names).
#![allow(clippy::unwrap_used, clippy::print_stdout, clippy::print_stderr)]

use std::collections::BTreeMap;
use std::net::{SocketAddr, TcpListener};
use std::path::Path;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use clap::Parser as _;
use cutover_agent::Slot;
use cutover_agent::health::{self, Health, HealthMonitor, HealthSpec, Probe};
use cutover_agent::loadgen::{self, LoadSpec};
use cutover_agent::protocol::{Assignment, DesiredRelease, DesiredRouting, DesiredService};
use cutover_agent::reconcile::Reconciler;
use cutover_agent::router::{Match, Router, RouterConfig, RouterError, Segment};
use cutover_agent::runtime::{
    Launch, Layout, ProcessSpec, ProcessState, RestartPolicy, RuntimeError, SlotProcess,
};
use http_body_util::{BodyExt as _, Empty, Full};
use hyper::Request;
use hyper_util::rt::{TokioExecutor, TokioIo};
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

type TestFn = fn(&Env);

const TESTS: &[(&str, TestFn)] = &[
    (
        "runtime_starts_substitutes_logs_and_stops",
        runtime_starts_substitutes_logs_and_stops,
    ),
    (
        "runtime_stop_reaches_children_and_kills_stubborn_ones",
        runtime_stop_reaches_children_and_kills_stubborn_ones,
    ),
    (
        "runtime_passes_env_and_secrets_without_logging_them",
        runtime_passes_env_and_secrets_without_logging_them,
    ),
    (
        "runtime_restarts_a_crashed_slot_then_gives_up",
        runtime_restarts_a_crashed_slot_then_gives_up,
    ),
    (
        "runtime_bad_starts_are_errors_at_once",
        runtime_bad_starts_are_errors_at_once,
    ),
    ("health_states_and_evidence", health_states_and_evidence),
    (
        "switch_under_load_loses_no_request",
        switch_under_load_loses_no_request,
    ),
    (
        "unhealthy_or_wrong_version_slot_never_gets_traffic",
        unhealthy_or_wrong_version_slot_never_gets_traffic,
    ),
    (
        "drain_lets_slow_requests_finish_then_cuts",
        drain_lets_slow_requests_finish_then_cuts,
    ),
    (
        "canary_split_sticky_and_segments",
        canary_split_sticky_and_segments,
    ),
    (
        "router_restart_keeps_routes_and_address",
        router_restart_keeps_routes_and_address,
    ),
    (
        "malformed_request_400_and_keeps_serving",
        malformed_request_400_and_keeps_serving,
    ),
    (
        "forwarded_headers_streaming_upgrade_and_http2",
        forwarded_headers_streaming_upgrade_and_http2,
    ),
    (
        "pause_holds_requests_until_resume",
        pause_holds_requests_until_resume,
    ),
    (
        "reconciler_deploys_switches_refuses_bad_artifacts_and_survives_restart",
        reconciler_end_to_end,
    ),
];

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("testapp") {
        let argv = std::iter::once("cutover-testapp".to_owned()).chain(args[2..].iter().cloned());
        return match cutover_testapp::run(cutover_testapp::Args::parse_from(argv)) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("error: {e}");
                ExitCode::from(2)
            }
        };
    }
    if args.get(1).map(String::as_str) == Some("router") {
        // A router in a process of its own, for the bench: `e2e router LISTEN_PORT UPSTREAM_PORT DIR`.
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let listen: u16 = args[2].parse().unwrap();
            let upstream: u16 = args[3].parse().unwrap();
            let mut cfg =
                RouterConfig::new(local(listen), Path::new(&args[4]).join("bench-router.json"));
            cfg.handoff_socket = None;
            let router = Router::start(cfg).await.unwrap();
            router.set_upstream(Slot::Blue, upstream, "1.0.0").unwrap();
            router.set_healthy(Slot::Blue, true).unwrap();
            router.switch_to(Slot::Blue).unwrap();
            let mut term =
                tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()).unwrap();
            term.recv().await;
            router.shutdown().await;
        });
        return ExitCode::SUCCESS;
    }
    if args.get(1).map(String::as_str) == Some("bench") {
        // Not a test: figures for the report (`cargo test --release -p cutover-agent --test e2e -- bench`).
        bench();
        return ExitCode::SUCCESS;
    }
    // Enough of libtest's command line for `cargo test` filters and for runners that list first
    // (`--list [--ignored]`, then `--exact NAME`).
    let flag = |f: &str| args.iter().any(|a| a == f);
    let filters: Vec<&String> = args[1..]
        .iter()
        .filter(|a| !a.starts_with('-') && !["terse", "pretty", "json"].contains(&a.as_str()))
        .collect();
    let selected = |name: &str| {
        filters.is_empty()
            || filters.iter().any(|f| {
                if flag("--exact") {
                    name == f.as_str()
                } else {
                    name.contains(f.as_str())
                }
            })
    };
    if flag("--list") {
        if !flag("--ignored") {
            for (name, _) in TESTS.iter().filter(|(n, _)| selected(n)) {
                println!("{name}: test");
            }
        }
        return ExitCode::SUCCESS;
    }
    let (mut passed, mut failed) = (0, 0);
    for (name, test) in TESTS {
        if !selected(name) {
            continue;
        }
        let started = Instant::now();
        let env = Env::new();
        let outcome = std::panic::catch_unwind(|| test(&env));
        let took = started.elapsed();
        if outcome.is_ok() {
            passed += 1;
            println!("test {name} ... ok ({took:.1?})");
        } else {
            failed += 1;
            println!("test {name} ... FAILED ({took:.1?})");
        }
    }
    let verdict = if failed == 0 { "ok" } else { "FAILED" };
    println!(
        "\ntest result: {verdict}. {passed} passed; {failed} failed; 0 ignored; 0 measured; 0 filtered out\n"
    );
    if failed == 0 {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    }
}

/// A temp root and a runtime for one test.
struct Env {
    root: tempfile::TempDir,
    rt: tokio::runtime::Runtime,
}

impl Env {
    fn new() -> Self {
        Self {
            root: tempfile::tempdir().unwrap(),
            rt: tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .enable_all()
                .build()
                .unwrap(),
        }
    }
    fn layout(&self) -> Layout {
        Layout::new(self.root.path())
    }
    fn path(&self) -> &Path {
        self.root.path()
    }
}

fn exe() -> String {
    std::env::current_exe()
        .unwrap()
        .to_string_lossy()
        .into_owned()
}

use cutover_testkit::free_port;

fn local(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

/// The test app started through the runtime's argv template.
fn testapp_spec(extra: &[&str]) -> ProcessSpec {
    let mut argv: Vec<String> = [
        exe().as_str(),
        "testapp",
        "--port",
        "{port}",
        "--version",
        "{version}",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .collect();
    argv.extend(extra.iter().map(|s| (*s).to_owned()));
    let mut spec = ProcessSpec::new("web", argv);
    spec.stop_timeout = Duration::from_secs(5);
    spec.restart = RestartPolicy {
        max_restarts: 3,
        initial_backoff: Duration::from_millis(50),
        max_backoff: Duration::from_millis(400),
        stable_after: Duration::from_secs(60),
    };
    spec
}

fn launch(env: &Env, slot: Slot, version: &str, port: u16) -> Launch {
    Launch {
        slot,
        version: version.to_owned(),
        release_dir: env.layout().release_dir("web", version),
        port,
    }
}

fn fast_health() -> HealthSpec {
    let mut h = HealthSpec::http("/health");
    h.interval = Duration::from_millis(50);
    h.timeout = Duration::from_secs(1);
    h.healthy_after = 2;
    h.unhealthy_after = 2;
    h.version_probe = Some("/version".into());
    h
}

/// A started slot with its health monitor.
struct Running {
    process: SlotProcess,
    health: HealthMonitor,
    port: u16,
}

async fn run_slot(env: &Env, slot: Slot, version: &str, extra: &[&str]) -> Running {
    let port = free_port();
    let process = SlotProcess::start(
        &env.layout(),
        &testapp_spec(extra),
        &launch(env, slot, version, port),
    )
    .unwrap();
    // The monitor counts refused connections as failures: on a loaded machine the app may take
    // longer to listen than two probe intervals, and "unhealthy before it ever answered" is not
    // what these tests are about.
    let listening = tokio::time::timeout(Duration::from_secs(20), async {
        while TcpStream::connect(local(port)).await.is_err() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(listening.is_ok(), "the test app never listened on {port}");
    let health = HealthMonitor::spawn(fast_health(), local(port), version.to_owned());
    Running {
        process,
        health,
        port,
    }
}

async fn router(env: &Env, drain: Duration) -> Router {
    let mut cfg = RouterConfig::new(local(0), env.layout().router_state("web"));
    cfg.drain_timeout = drain;
    cfg.pause_timeout = Duration::from_secs(5);
    Router::start(cfg).await.unwrap()
}

/// Registers a running slot with the router and keeps its health in step.
async fn attach(router: &Router, slot: Slot, version: &str, r: &Running) {
    router.set_upstream(slot, r.port, version).unwrap();
    router.follow_health(slot, r.health.watch());
}

async fn wait_healthy(r: &Running) {
    assert_eq!(
        r.health.settled(Duration::from_secs(20)).await,
        Health::Healthy
    );
}

async fn wait_routable(router: &Router, slot: Slot) {
    let mut w = router.watch();
    tokio::time::timeout(
        Duration::from_secs(20),
        w.wait_for(|s| s.upstreams.get(&slot).is_some_and(|u| u.healthy)),
    )
    .await
    .unwrap()
    .unwrap();
}

struct Reply {
    status: u16,
    headers: hyper::HeaderMap,
    body: String,
}

/// One request on a fresh connection.
async fn get(addr: SocketAddr, path: &str, headers: &[(&str, &str)]) -> Reply {
    let stream = TcpStream::connect(addr).await.unwrap();
    let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .unwrap();
    tokio::spawn(conn);
    let mut req = Request::get(path).header("host", "app.example");
    for (k, v) in headers {
        req = req.header(*k, *v);
    }
    let resp = send
        .send_request(req.body(Empty::<Bytes>::new()).unwrap())
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let headers = resp.headers().clone();
    let body = String::from_utf8(
        resp.into_body()
            .collect()
            .await
            .unwrap()
            .to_bytes()
            .to_vec(),
    )
    .unwrap();
    Reply {
        status,
        headers,
        body,
    }
}

type Load = loadgen::LoadReport;

/// The load generator on loopback: `workers` keep-alive connections sending `GET path`.
async fn load(
    addr: SocketAddr,
    path: &'static str,
    workers: usize,
    max_per_worker: u64,
    stop: Arc<AtomicBool>,
) -> Load {
    load_with(addr, path, workers, max_per_worker, stop, false).await
}

/// As [`load`]; with `fresh`, every request opens a new connection (`Connection: close`), which
/// exercises the listener itself rather than the keep-alive connections.
async fn load_with(
    addr: SocketAddr,
    path: &'static str,
    workers: usize,
    max_per_worker: u64,
    stop: Arc<AtomicBool>,
    fresh: bool,
) -> Load {
    let mut spec = LoadSpec::new(addr, path);
    spec.connections = workers;
    spec.max_requests_per_connection = max_per_worker;
    spec.fresh_connections = fresh;
    loadgen::run(&spec, stop).await
}

fn runtime_starts_substitutes_logs_and_stops(env: &Env) {
    env.rt.block_on(async {
        let r = run_slot(env, Slot::Blue, "1.4.0", &[]).await;
        wait_healthy(&r).await;
        assert!(matches!(r.process.status().state, ProcessState::Running { .. }));
        let reply = get(local(r.port), "/version", &[]).await;
        assert_eq!((reply.status, reply.body.as_str()), (200, "1.4.0"));
        let status = r.process.stop().await;
        assert!(matches!(&status.state, ProcessState::Stopped { last_exit } if last_exit == "exited with status 0"), "{status:?}");
        assert!(std::net::TcpStream::connect(local(r.port)).is_err());
        let out = std::fs::read_to_string(env.layout().log_file("web", Slot::Blue, "out")).unwrap();
        assert!(out.contains(&format!("listening on http://127.0.0.1:{}", r.port)), "{out}");
        let err = std::fs::read_to_string(env.layout().log_file("web", Slot::Blue, "err")).unwrap();
        assert!(err.contains("started 1.4.0") && err.contains("stopped: exited with status 0"), "{err}");
    });
}

fn pid_alive(pid: &str) -> bool {
    // A killed child may linger as a zombie until init reaps it: that is not alive.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            !s.rsplit(')')
                .next()
                .unwrap_or("")
                .trim_start()
                .starts_with('Z')
        })
        .unwrap_or(false)
}

async fn wait_for_log(path: &Path, needle: &str) -> String {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if text.contains(needle) || Instant::now() > deadline {
            return text;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn runtime_stop_reaches_children_and_kills_stubborn_ones(env: &Env) {
    env.rt.block_on(async {
        // A program that forks a child which would outlive it without a process group.
        let mut spec = ProcessSpec::new(
            "web",
            vec!["sh".into(), "-c".into(), "sleep 1000 & echo child $!; wait".into()],
        );
        spec.stop_timeout = Duration::from_millis(300);
        let p = SlotProcess::start(&env.layout(), &spec, &launch(env, Slot::Green, "1.0.0", free_port())).unwrap();
        let log = wait_for_log(&env.layout().log_file("web", Slot::Green, "out"), "child ").await;
        let child = log.trim().strip_prefix("child ").unwrap().to_owned();
        assert!(pid_alive(&child));
        let status = p.stop().await;
        assert!(matches!(status.state, ProcessState::Stopped { .. }), "{status:?}");
        tokio::time::sleep(Duration::from_millis(100)).await;
        assert!(!pid_alive(&child), "the forked child {child} survived the stop");

        // SIGTERM ignored: SIGKILL after stop_timeout.
        let mut spec = ProcessSpec::new(
            "web",
            vec!["sh".into(), "-c".into(), "trap '' TERM; echo ready; while :; do sleep 1; done".into()],
        );
        spec.stop_timeout = Duration::from_millis(300);
        let p = SlotProcess::start(&env.layout(), &spec, &launch(env, Slot::Blue, "1.0.0", free_port())).unwrap();
        wait_for_log(&env.layout().log_file("web", Slot::Blue, "out"), "ready").await;
        let status = p.stop().await;
        assert!(
            matches!(&status.state, ProcessState::Stopped { last_exit } if last_exit == "killed by signal 9"),
            "{status:?}"
        );
    });
}

fn runtime_passes_env_and_secrets_without_logging_them(env: &Env) {
    env.rt.block_on(async {
        let secret_file = env.path().join("db-password");
        std::fs::write(&secret_file, "hunter2-file\n").unwrap();
        let mut spec = ProcessSpec::new(
            "web",
            vec![
                "sh".into(),
                "-c".into(),
                "echo \"port=$PORT version=$CUTOVER_VERSION mode=$MODE arg=$0 db=$DB_PASSWORD\"; sleep 1000".into(),
                "{slot}@{version}:{port}".into(),
            ],
        );
        spec.env.insert("MODE".into(), "production".into());
        spec.secrets.insert(
            "DB_PASSWORD".into(),
            cutover_agent::runtime::SecretSource::File(secret_file),
        );
        spec.stop_timeout = Duration::from_secs(2);
        let port = free_port();
        let p = SlotProcess::start(&env.layout(), &spec, &launch(env, Slot::Green, "4.5.6", port)).unwrap();
        let out = wait_for_log(&env.layout().log_file("web", Slot::Green, "out"), "db=").await;
        // The secret reached the process (it printed its value), and its output on disk holds
        // the value redacted.
        assert_eq!(
            out.trim(),
            format!("port={port} version=4.5.6 mode=production arg=green@4.5.6:{port} db=[redacted]")
        );
        p.stop().await;
        // The agent's own notes say what happened, never the secret's value.
        let notes = std::fs::read_to_string(env.layout().log_file("web", Slot::Green, "err")).unwrap();
        assert!(notes.contains("started 4.5.6") && !notes.contains("hunter2"), "{notes}");
        let tail = cutover_agent::runtime::tail_log(&env.layout(), "web", Slot::Green, "err", 1).unwrap();
        assert!(tail[0].contains("stopped:"), "{tail:?}");
    });
}

fn runtime_restarts_a_crashed_slot_then_gives_up(env: &Env) {
    env.rt.block_on(async {
        let r = run_slot(env, Slot::Blue, "2.0.0", &["--crash-after", "0.4"]).await;
        let mut w = r.process.watch();
        // Restarted: running again with a restart counted, and serving.
        w.wait_for(|s| s.restarts >= 1 && matches!(s.state, ProcessState::Running { .. }))
            .await
            .unwrap();
        let first_pid = r.process.status().pid().unwrap();
        let reply = loop {
            if let Ok(Ok(stream)) = tokio::time::timeout(
                Duration::from_millis(200),
                TcpStream::connect(local(r.port)),
            )
            .await
            {
                drop(stream);
                break get(local(r.port), "/version", &[]).await;
            }
        };
        assert_eq!(reply.body, "2.0.0");
        // Then the budget (3 restarts in a row) runs out.
        let last = tokio::time::timeout(
            Duration::from_secs(30),
            w.wait_for(|s| matches!(s.state, ProcessState::Failed { .. })),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(last.restarts, 3);
        let ProcessState::Failed { reason } = &last.state else {
            unreachable!()
        };
        assert!(
            reason.contains("exited with status 1") && reason.contains("gave up after 3 restarts"),
            "{reason}"
        );
        assert!(first_pid > 0);
        let err = std::fs::read_to_string(env.layout().log_file("web", Slot::Blue, "err")).unwrap();
        assert_eq!(err.matches("restarted (pid").count(), 3, "{err}");
    });
}

fn runtime_bad_starts_are_errors_at_once(env: &Env) {
    env.rt.block_on(async {
        let spec = ProcessSpec::new("web", vec!["/nonexistent/cutover-app".into()]);
        let err = SlotProcess::start(
            &env.layout(),
            &spec,
            &launch(env, Slot::Blue, "1.0.0", free_port()),
        )
        .unwrap_err();
        assert!(matches!(err, RuntimeError::Spawn { .. }), "{err}");
        assert!(
            err.to_string().contains("/nonexistent/cutover-app"),
            "{err}"
        );

        let spec = ProcessSpec::new("web", vec![]);
        let err = SlotProcess::start(
            &env.layout(),
            &spec,
            &launch(env, Slot::Blue, "1.0.0", free_port()),
        )
        .unwrap_err();
        assert!(matches!(err, RuntimeError::EmptyArgv { .. }), "{err}");

        let taken = TcpListener::bind("127.0.0.1:0").unwrap();
        let port = taken.local_addr().unwrap().port();
        let err = SlotProcess::start(
            &env.layout(),
            &testapp_spec(&[]),
            &launch(env, Slot::Blue, "1.0.0", port),
        )
        .unwrap_err();
        assert!(matches!(err, RuntimeError::PortInUse { .. }), "{err}");

        // Exits at once: restarts, then reported failed.
        let mut spec = ProcessSpec::new("web", vec!["false".into()]);
        spec.restart.initial_backoff = Duration::from_millis(10);
        spec.restart.max_restarts = 2;
        let p = SlotProcess::start(
            &env.layout(),
            &spec,
            &launch(env, Slot::Green, "1.0.0", free_port()),
        )
        .unwrap();
        let mut w = p.watch();
        let s = tokio::time::timeout(
            Duration::from_secs(10),
            w.wait_for(|s| matches!(s.state, ProcessState::Failed { .. })),
        )
        .await
        .unwrap()
        .unwrap()
        .clone();
        assert_eq!(s.restarts, 2);
    });
}

fn health_states_and_evidence(env: &Env) {
    env.rt.block_on(async {
        let good = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let sick = run_slot(env, Slot::Green, "1.0.0", &["--unhealthy"]).await;
        assert_eq!(
            good.health.settled(Duration::from_secs(20)).await,
            Health::Healthy
        );
        assert_eq!(
            sick.health.settled(Duration::from_secs(20)).await,
            Health::Unhealthy
        );
        let ev: Vec<_> = good.health.status().evidence.into_iter().collect();
        assert!(ev.len() >= 4, "{ev:?}");
        assert!(ev.windows(2).all(|w| w[1].seq == w[0].seq + 1));
        assert!(ev.iter().any(|e| e.check == health::CheckKind::Version
            && e.ok
            && e.detail == "version \"1.0.0\""));
        let bad = sick.health.status().evidence;
        assert!(
            bad.iter().any(|e| e.check == health::CheckKind::Http
                && !e.ok
                && e.detail == "503, expected 200"),
            "{bad:?}"
        );

        // Wrong version: its own state, never healthy.
        let liar_port = free_port();
        let liar = SlotProcess::start(
            &env.layout(),
            &testapp_spec(&["--wrong-version", "0.9.0"]),
            &launch(env, Slot::Blue, "1.1.0", liar_port),
        );
        // Blue's port is taken by `good`; the liar runs under its own port all the same.
        let liar = liar.unwrap();
        let mon = HealthMonitor::spawn(fast_health(), local(liar_port), "1.1.0".into());
        assert_eq!(
            mon.settled(Duration::from_secs(20)).await,
            Health::WrongVersion {
                reported: "0.9.0".into()
            }
        );

        // TCP and command probes.
        let t = Duration::from_secs(1);
        assert!(health::probe_once(&Probe::Tcp, local(good.port), t).await.1);
        let closed = free_port();
        let (_, ok, detail, _) = health::probe_once(&Probe::Tcp, local(closed), t).await;
        assert!(!ok && detail.contains("refused"), "{detail}");
        let cmd = Probe::Command {
            argv: vec!["sh".into(), "-c".into(), "test \"$PORT\" = 4242".into()],
        };
        assert!(health::probe_once(&cmd, local(4242), t).await.1);
        assert!(!health::probe_once(&cmd, local(4243), t).await.1);
        drop(liar);
    });
}

fn switch_under_load_loses_no_request(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let green = run_slot(env, Slot::Green, "2.0.0", &[]).await;
        let router = router(env, Duration::from_secs(10)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        attach(&router, Slot::Green, "2.0.0", &green).await;
        wait_routable(&router, Slot::Blue).await;
        wait_routable(&router, Slot::Green).await;
        router.switch_to(Slot::Blue).unwrap();

        let stop = Arc::new(AtomicBool::new(false));
        let loadgen = tokio::spawn(load(
            router.local_addr(),
            "/version",
            8,
            200_000,
            stop.clone(),
        ));
        let mut switches = 0;
        let started = Instant::now();
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(10)).await;
            router
                .switch_to(if i % 2 == 0 { Slot::Green } else { Slot::Blue })
                .unwrap();
            switches += 1;
        }
        tokio::time::sleep(Duration::from_millis(40)).await;
        stop.store(true, Ordering::Relaxed);
        let seen = loadgen.await.unwrap();
        let secs = started.elapsed().as_secs_f64();
        println!(
            "  {} requests during {switches} switches in {secs:.2}s ({:.0} requests/s): {:?}",
            seen.sent,
            seen.sent as f64 / secs,
            seen.outcomes
        );
        assert_eq!(seen.failures(), 0, "{:?}", seen.outcomes);
        assert_eq!(seen.ok("1.0.0") + seen.ok("2.0.0"), seen.sent);
        assert!(seen.ok("1.0.0") > 0 && seen.ok("2.0.0") > 0);
        let c = router.counters();
        assert_eq!(
            c[&Slot::Blue].requests + c[&Slot::Green].requests,
            seen.sent
        );
        assert_eq!(
            c[&Slot::Blue].errors_5xx() + c[&Slot::Green].errors_5xx(),
            0
        );
        router.shutdown().await;
    });
}

fn unhealthy_or_wrong_version_slot_never_gets_traffic(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let router = router(env, Duration::from_secs(5)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        wait_routable(&router, Slot::Blue).await;
        router.switch_to(Slot::Blue).unwrap();
        for extra in [&["--unhealthy"][..], &["--wrong-version", "1.0.0"][..]] {
            let green = run_slot(env, Slot::Green, "2.0.0", extra).await;
            attach(&router, Slot::Green, "2.0.0", &green).await;
            let verdict = green.health.settled(Duration::from_secs(20)).await;
            assert_ne!(verdict, Health::Healthy);
            let stop = Arc::new(AtomicBool::new(false));
            let loadgen = tokio::spawn(load(router.local_addr(), "/version", 4, 300, stop));
            for _ in 0..10 {
                assert!(matches!(
                    router.switch_to(Slot::Green),
                    Err(RouterError::NotHealthy { slot: Slot::Green })
                ));
                assert!(matches!(
                    router.set_canary(Slot::Green, 50),
                    Err(RouterError::NotHealthy { .. })
                ));
                let seg = Segment {
                    when: Match::Header {
                        name: "x-beta".into(),
                        value: "1".into(),
                    },
                    slot: Slot::Green,
                };
                assert!(router.set_segments(vec![seg]).is_err());
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
            let seen = loadgen.await.unwrap();
            assert_eq!(seen.ok("1.0.0"), seen.sent, "{:?}", seen.outcomes);
            assert_eq!(router.counters()[&Slot::Green].requests, 0);
            green.process.stop().await;
            router.remove_upstream(Slot::Green).unwrap();
        }
        router.shutdown().await;
    });
}

fn drain_lets_slow_requests_finish_then_cuts(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let green = run_slot(env, Slot::Green, "2.0.0", &[]).await;
        let router = router(env, Duration::from_millis(1500)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        attach(&router, Slot::Green, "2.0.0", &green).await;
        wait_routable(&router, Slot::Blue).await;
        wait_routable(&router, Slot::Green).await;
        router.switch_to(Slot::Blue).unwrap();
        let addr = router.local_addr();
        let slow: Vec<_> = (0..5)
            .map(|_| tokio::spawn(get(addr, "/slow?ms=700", &[])))
            .collect();
        let too_slow = tokio::spawn(get(addr, "/slow?ms=8000", &[]));
        // A response whose head came at once but whose body trickles for 10 s.
        let trickle = tokio::spawn(async move {
            let stream = TcpStream::connect(addr).await.unwrap();
            let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
                .await
                .unwrap();
            tokio::spawn(conn);
            let req = Request::get("/stream?chunks=100&ms=100")
                .header("host", "x")
                .body(Empty::<Bytes>::new())
                .unwrap();
            let resp = send.send_request(req).await.unwrap();
            assert_eq!(resp.status(), 200);
            resp.into_body().collect().await.map(|b| b.to_bytes().len())
        });
        let mut w = router.watch();
        drop(w.borrow_and_update());
        // All six in flight on blue before the switch.
        let deadline = Instant::now() + Duration::from_secs(10);
        while router.counters()[&Slot::Blue].in_flight < 7 && Instant::now() < deadline {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        router.switch_to(Slot::Green).unwrap();
        assert_eq!(get(addr, "/version", &[]).await.body, "2.0.0");
        for s in slow {
            let r = s.await.unwrap();
            assert_eq!((r.status, r.body.as_str()), (200, "slept 700ms on 1.0.0\n"));
        }
        let r = too_slow.await.unwrap();
        assert_eq!(r.status, 504, "{}", r.body);
        assert_eq!(router.drain(Slot::Blue).await, 0);
        // The trickling body was cut at the end of the drain.
        assert!(
            trickle.await.unwrap().is_err(),
            "the body outlived the drain"
        );
        let c = router.counters();
        assert_eq!(c[&Slot::Blue].drain_timeouts, 2);
        router.shutdown().await;
    });
}

fn canary_split_sticky_and_segments(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let green = run_slot(env, Slot::Green, "2.0.0", &[]).await;
        let router = router(env, Duration::from_secs(5)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        attach(&router, Slot::Green, "2.0.0", &green).await;
        wait_routable(&router, Slot::Blue).await;
        wait_routable(&router, Slot::Green).await;
        router.switch_to(Slot::Blue).unwrap();
        router.set_canary(Slot::Green, 25).unwrap();
        let addr = router.local_addr();
        let mut cookies = Vec::new();
        let mut to_green = 0;
        for _ in 0..400 {
            let r = get(addr, "/version", &[]).await;
            let cookie = r
                .headers
                .get("set-cookie")
                .unwrap()
                .to_str()
                .unwrap()
                .to_owned();
            if r.body == "2.0.0" {
                to_green += 1;
            }
            assert!(cookie.starts_with(&format!(
                "cutover_slot={}",
                if r.body == "2.0.0" { "green" } else { "blue" }
            )));
            cookies.push((cookie.split(';').next().unwrap().to_owned(), r.body));
        }
        // 25% of 400 within 5 points.
        assert!(
            (80..=120).contains(&to_green),
            "{to_green} of 400 went to the canary"
        );
        for (cookie, version) in cookies.iter().take(40) {
            for _ in 0..3 {
                let r = get(addr, "/version", &[("cookie", cookie)]).await;
                assert_eq!(&r.body, version, "a sticky client moved");
                assert!(r.headers.get("set-cookie").is_none());
            }
        }
        router
            .set_segments(vec![Segment {
                when: Match::Header {
                    name: "x-beta".into(),
                    value: "yes".into(),
                },
                slot: Slot::Green,
            }])
            .unwrap();
        router.set_canary(Slot::Green, 0).unwrap();
        assert_eq!(
            get(addr, "/version", &[("x-beta", "yes")]).await.body,
            "2.0.0"
        );
        assert_eq!(
            get(addr, "/version", &[("x-beta", "no")]).await.body,
            "1.0.0"
        );
        let c = router.counters();
        assert_eq!(
            c[&Slot::Green].status_classes[1],
            to_green
                + cookies
                    .iter()
                    .take(40)
                    .filter(|(_, v)| v == "2.0.0")
                    .count() as u64
                    * 3
                + 1
        );
        router.shutdown().await;
    });
}

fn router_restart_keeps_routes_and_address(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let green = run_slot(env, Slot::Green, "2.0.0", &[]).await;
        let listen = local(free_port());
        let mut cfg = RouterConfig::new(listen, env.layout().router_state("web"));
        cfg.drain_timeout = Duration::from_secs(5);
        let old = Router::start(cfg.clone()).await.unwrap();
        attach(&old, Slot::Blue, "1.0.0", &blue).await;
        attach(&old, Slot::Green, "2.0.0", &green).await;
        wait_routable(&old, Slot::Green).await;
        wait_routable(&old, Slot::Blue).await;
        old.switch_to(Slot::Green).unwrap();

        // Load across the hand-off: the new router binds the same address while the old one serves.
        let stop = Arc::new(AtomicBool::new(false));
        let loadgen = tokio::spawn(load(listen, "/version", 4, 100_000, stop.clone()));
        let fresh = tokio::spawn(load_with(listen, "/version", 2, 100_000, stop.clone(), true));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let t = Instant::now();
        let new = Router::start(cfg.clone()).await.unwrap();
        let handoff = t.elapsed();
        assert!(new.took_over(), "the new router did not take the listener over");
        // The old router stops accepting by itself once its listener is taken.
        tokio::time::timeout(Duration::from_secs(5), old.stopped()).await.unwrap();
        assert_eq!(new.state(), old.state());
        old.shutdown().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let seen = loadgen.await.unwrap();
        let fresh = fresh.await.unwrap();
        println!(
            "  hand-off: the new router took the listening socket in {handoff:.1?}; keep-alive clients {} requests {:?}; new connection per request {} requests {:?}",
            seen.sent, seen.outcomes, fresh.sent, fresh.outcomes
        );
        assert_eq!(seen.failures(), 0, "{:?}", seen.outcomes);
        assert_eq!(fresh.failures(), 0, "{:?}", fresh.outcomes);
        assert!(seen.ok("2.0.0") > 0);
        assert!(fresh.ok("2.0.0") > 0);
        for _ in 0..20 {
            assert_eq!(get(listen, "/version", &[]).await.body, "2.0.0");
        }
        // Without the hand-off socket, SO_REUSEPORT still lets a second router bind the address
        // while the first one serves.
        let mut plain_cfg = cfg.clone();
        plain_cfg.handoff_socket = None;
        let third = Router::start(plain_cfg).await.unwrap();
        assert!(!third.took_over());
        assert_eq!(third.local_addr(), listen);
        new.shutdown().await;
        for _ in 0..20 {
            assert_eq!(get(listen, "/version", &[]).await.body, "2.0.0");
        }
        third.shutdown().await;
        assert!(std::net::TcpStream::connect(listen).is_err());
    });
}

fn malformed_request_400_and_keeps_serving(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let router = router(env, Duration::from_secs(5)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        // Before a slot is active: 503, not a hang.
        assert_eq!(get(router.local_addr(), "/", &[]).await.status, 503);
        wait_routable(&router, Slot::Blue).await;
        router.switch_to(Slot::Blue).unwrap();
        for garbage in [
            &b"GARBAGE\r\n\r\n"[..],
            b"GET / HTTP/1.1\r\nHost: a\r\nBad Header\r\n\r\n",
            b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03",
        ] {
            let mut s = TcpStream::connect(router.local_addr()).await.unwrap();
            s.write_all(garbage).await.unwrap();
            let mut out = Vec::new();
            let _ = tokio::time::timeout(Duration::from_secs(5), s.read_to_end(&mut out)).await;
            let text = String::from_utf8_lossy(&out);
            assert!(text.starts_with("HTTP/1.1 400"), "{garbage:?} → {text:?}");
        }
        let r = get(router.local_addr(), "/", &[]).await;
        assert_eq!(
            (r.status, r.body.as_str()),
            (200, "hello from cutover-testapp 1.0.0\n")
        );
        router.shutdown().await;
    });
}

fn forwarded_headers_streaming_upgrade_and_http2(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let router = router(env, Duration::from_secs(5)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        wait_routable(&router, Slot::Blue).await;
        router.switch_to(Slot::Blue).unwrap();
        let addr = router.local_addr();

        let r = get(
            addr,
            "/headers",
            &[
                ("x-forwarded-for", "10.1.2.3"),
                ("connection", "x-hop"),
                ("x-hop", "1"),
            ],
        )
        .await;
        assert!(
            r.body.contains("x-forwarded-for: 10.1.2.3, 127.0.0.1\n"),
            "{}",
            r.body
        );
        assert!(
            r.body.contains("x-forwarded-host: app.example\n"),
            "{}",
            r.body
        );
        assert!(r.body.contains("x-forwarded-proto: http\n"), "{}", r.body);
        assert!(r.body.contains("host: app.example\n"), "{}", r.body);
        assert!(!r.body.contains("x-hop"), "{}", r.body);
        assert_eq!(r.headers.get("x-cutover-slot").unwrap(), "blue");

        // Streaming: a 4 MiB body through /echo, sent in chunks.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let (tx, rx) = tokio::sync::mpsc::channel::<Bytes>(4);
        let req = Request::post("/echo")
            .header("host", "x")
            .body(ChannelBody(rx))
            .unwrap();
        let resp_fut = tokio::spawn(async move { send.send_request(req).await });
        let chunk = Bytes::from(vec![b'x'; 64 * 1024]);
        for _ in 0..64 {
            tx.send(chunk.clone()).await.unwrap();
        }
        drop(tx);
        let resp = resp_fut.await.unwrap().unwrap();
        let echoed = resp.into_body().collect().await.unwrap().to_bytes();
        assert_eq!(echoed.len(), 4 * 1024 * 1024);

        // Upgrade (the test app's raw echo protocol, as a WebSocket would be) passes through.
        let mut s = TcpStream::connect(addr).await.unwrap();
        s.write_all(
            b"GET /upgrade HTTP/1.1\r\nHost: x\r\nConnection: Upgrade\r\nUpgrade: echo\r\n\r\n",
        )
        .await
        .unwrap();
        let mut head = Vec::new();
        while !head.ends_with(b"\r\n\r\n") {
            let mut b = [0u8; 1];
            s.read_exact(&mut b).await.unwrap();
            head.push(b[0]);
        }
        assert!(
            head.starts_with(b"HTTP/1.1 101"),
            "{}",
            String::from_utf8_lossy(&head)
        );
        for msg in [&b"hello"[..], b"over the tunnel"] {
            s.write_all(msg).await.unwrap();
            let mut back = vec![0u8; msg.len()];
            s.read_exact(&mut back).await.unwrap();
            assert_eq!(back, msg);
        }
        assert_eq!(
            router.counters()[&Slot::Blue].in_flight,
            1,
            "an open tunnel counts as in flight"
        );
        // The tunnel survives a switch: it stays on its slot while new requests go to green.
        let green = run_slot(env, Slot::Green, "2.0.0", &[]).await;
        attach(&router, Slot::Green, "2.0.0", &green).await;
        wait_routable(&router, Slot::Green).await;
        router.switch_to(Slot::Green).unwrap();
        assert_eq!(get(addr, "/version", &[]).await.body, "2.0.0");
        s.write_all(b"still there").await.unwrap();
        let mut back = [0u8; 11];
        s.read_exact(&mut back).await.unwrap();
        assert_eq!(&back, b"still there");
        drop(s);
        assert_eq!(
            router.drain(Slot::Blue).await,
            0,
            "the closed tunnel left blue"
        );

        // HTTP/2 with prior knowledge.
        let stream = TcpStream::connect(addr).await.unwrap();
        let (mut send, conn) =
            hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(stream))
                .await
                .unwrap();
        tokio::spawn(conn);
        let req = Request::get(format!("http://{addr}/version"))
            .body(Full::new(Bytes::new()))
            .unwrap();
        let resp = send.send_request(req).await.unwrap();
        assert_eq!(resp.status(), 200);
        assert_eq!(
            resp.into_body().collect().await.unwrap().to_bytes(),
            "2.0.0"
        );
        router.shutdown().await;
    });
}

/// A request body fed in chunks through a channel, so it streams instead of being sent whole.
struct ChannelBody(tokio::sync::mpsc::Receiver<Bytes>);

impl hyper::body::Body for ChannelBody {
    type Data = Bytes;
    type Error = std::convert::Infallible;
    fn poll_frame(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> std::task::Poll<Option<Result<hyper::body::Frame<Bytes>, Self::Error>>> {
        self.0
            .poll_recv(cx)
            .map(|b| b.map(|b| Ok(hyper::body::Frame::data(b))))
    }
}

fn pause_holds_requests_until_resume(env: &Env) {
    env.rt.block_on(async {
        let blue = run_slot(env, Slot::Blue, "1.0.0", &[]).await;
        let router = router(env, Duration::from_secs(5)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        wait_routable(&router, Slot::Blue).await;
        router.switch_to(Slot::Blue).unwrap();
        router.pause().unwrap();
        let held = tokio::spawn(get(router.local_addr(), "/version", &[]));
        tokio::time::sleep(Duration::from_millis(300)).await;
        assert!(!held.is_finished(), "a request went through while paused");
        router.resume().unwrap();
        let r = held.await.unwrap();
        assert_eq!((r.status, r.body.as_str()), (200, "1.0.0"));
        // Paused past pause_timeout: 503.
        let mut cfg = RouterConfig::new(local(0), env.path().join("other.json"));
        cfg.pause_timeout = Duration::from_millis(200);
        let short = Router::start(cfg).await.unwrap();
        short.set_upstream(Slot::Blue, blue.port, "1.0.0").unwrap();
        short.set_healthy(Slot::Blue, true).unwrap();
        short.switch_to(Slot::Blue).unwrap();
        short.pause().unwrap();
        assert_eq!(get(short.local_addr(), "/version", &[]).await.status, 503);
        short.resume().unwrap();
        assert_eq!(get(short.local_addr(), "/version", &[]).await.status, 200);
    });
}

/// A release artifact (tar.zst) whose `bin/app` runs this binary as the test app.
fn artifact(env: &Env, label: &str) -> String {
    let script = format!(
        "#!/bin/sh\n# release {label}\nexec '{}' testapp \"$@\"\n",
        exe()
    );
    let mut builder = tar::Builder::new(Vec::new());
    let mut h = tar::Header::new_gnu();
    h.set_size(script.len() as u64);
    h.set_mode(0o755);
    h.set_mtime(1_700_000_000);
    builder
        .append_data(&mut h, "bin/app", script.as_bytes())
        .unwrap();
    let bytes = zstd::encode_all(&builder.into_inner().unwrap()[..], 3).unwrap();
    let digest = {
        let tmp = env.path().join("tmp.tar.zst");
        std::fs::write(&tmp, &bytes).unwrap();
        cutover_agent::artifact::sha256_file(&tmp).unwrap()
    };
    let path = env.layout().artifact(&digest);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, bytes).unwrap();
    digest
}

fn assignment(
    generation: u64,
    listen: SocketAddr,
    ports: [u16; 2],
    slots: &[(Slot, &str, &str)],
    active: Option<Slot>,
) -> Assignment {
    let mut process = ProcessSpec::new(
        "web",
        [
            "{release_dir}/bin/app",
            "--port",
            "{port}",
            "--version",
            "{version}",
        ]
        .iter()
        .map(|s| (*s).to_owned())
        .collect(),
    );
    process.stop_timeout = Duration::from_secs(5);
    Assignment {
        generation,
        services: BTreeMap::from([(
            "web".to_owned(),
            DesiredService {
                listen,
                process,
                health: fast_health(),
                ports: BTreeMap::from([(Slot::Blue, ports[0]), (Slot::Green, ports[1])]),
                slots: slots
                    .iter()
                    .map(|(slot, version, digest)| {
                        (
                            *slot,
                            DesiredRelease {
                                version: (*version).to_owned(),
                                artifact_sha256: (*digest).to_owned(),
                                warm_until: None,
                            },
                        )
                    })
                    .collect(),
                routing: DesiredRouting {
                    active,
                    ..DesiredRouting::default()
                },
                drain_timeout: Duration::from_secs(5),
                keep_releases: 3,
            },
        )]),
    }
}

async fn route_until_done(rec: &mut Reconciler) {
    let deadline = Instant::now() + Duration::from_secs(20);
    while !rec.route() {
        assert!(
            Instant::now() < deadline,
            "routing never became possible: {:?}",
            rec.report()
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn reconciler_end_to_end(env: &Env) {
    env.rt.block_on(async {
        let v1 = artifact(env, "1.0.0");
        let v2 = artifact(env, "2.0.0");
        let listen = local(free_port());
        let ports = [free_port(), free_port()];
        let mut rec = Reconciler::new("host-1", env.layout());

        // Generation 1: blue runs 1.0.0 and takes the traffic once healthy.
        let errors = rec.apply(assignment(1, listen, ports, &[(Slot::Blue, "1.0.0", &v1)], Some(Slot::Blue))).await;
        assert!(errors.is_empty(), "{errors:?}");
        route_until_done(&mut rec).await;
        assert_eq!(get(listen, "/version", &[]).await.body, "1.0.0");
        assert!(env.layout().release_dir("web", "1.0.0").join("bin/app").exists());

        // Generation 2: green gets 2.0.0 while blue serves; generation 3 switches under load.
        let slots2 = [(Slot::Blue, "1.0.0", v1.as_str()), (Slot::Green, "2.0.0", v2.as_str())];
        let errors = rec.apply(assignment(2, listen, ports, &slots2, Some(Slot::Blue))).await;
        assert!(errors.is_empty(), "{errors:?}");
        let deadline = Instant::now() + Duration::from_secs(20);
        while rec.report().services["web"].slots[&Slot::Green].health != Health::Healthy {
            assert!(Instant::now() < deadline);
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        let stop = Arc::new(AtomicBool::new(false));
        let loadgen = tokio::spawn(load(listen, "/version", 4, 100_000, stop.clone()));
        tokio::time::sleep(Duration::from_millis(100)).await;
        let mut w = rec.router("web").unwrap().watch();
        let switched = tokio::spawn(async move {
            w.wait_for(|s| s.active == Some(Slot::Green)).await.unwrap();
            Instant::now()
        });
        let t = Instant::now();
        let errors = rec.apply(assignment(3, listen, ports, &slots2, Some(Slot::Green))).await;
        let applied = t.elapsed();
        let first = get(listen, "/version", &[]).await;
        let switch_latency = t.elapsed();
        let in_router = switched.await.unwrap() - t;
        assert!(errors.is_empty(), "{errors:?}");
        assert_eq!(first.body, "2.0.0");
        println!(
            "  switch latency, assignment → first request served by the new slot: {switch_latency:.2?} (apply: {applied:.2?}, new routing in effect after {in_router:.2?})"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;

        // An agent restart under load: the new agent binds next to the old one, adopts the slots.
        let pid_of = |state: &ProcessState| match state {
            ProcessState::Running { pid, .. } => *pid,
            other => panic!("not running: {other:?}"),
        };
        let green_pid = pid_of(&rec.report().services["web"].slots[&Slot::Green].process);
        let (mut next, errors) = Reconciler::resume("host-1", env.layout()).await;
        assert!(errors.is_empty(), "{errors:?}");
        rec.detach().await;
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let seen = loadgen.await.unwrap();
        println!("  switch + agent restart under load: {} requests {:?}", seen.sent, seen.outcomes);
        assert_eq!(seen.failures(), 0, "{:?}", seen.outcomes);
        assert!(seen.ok("1.0.0") > 0 && seen.ok("2.0.0") > 0);
        let report = next.report();
        let web = &report.services["web"];
        assert_eq!(web.active, Some(Slot::Green));
        assert_eq!(pid_of(&web.slots[&Slot::Green].process), green_pid, "the restarted agent restarted the slot");
        assert_eq!(get(listen, "/version", &[]).await.body, "2.0.0");
        let err_log = std::fs::read_to_string(env.layout().log_file("web", Slot::Green, "err")).unwrap();
        assert!(err_log.contains("detached") && err_log.contains("adopted 2.0.0"), "{err_log}");

        // Generation 4: a wrong digest for blue's next release is refused; nothing is unpacked.
        let wrong = "0".repeat(64);
        std::fs::copy(env.layout().artifact(&v1), env.layout().artifact(&wrong)).unwrap();
        let slots4 = [(Slot::Blue, "3.0.0", wrong.as_str()), (Slot::Green, "2.0.0", v2.as_str())];
        let errors = next.apply(assignment(4, listen, ports, &slots4, Some(Slot::Green))).await;
        assert_eq!(errors.len(), 1, "{errors:?}");
        assert!(errors[0].contains("expected 0000") && errors[0].contains("nothing was unpacked"), "{errors:?}");
        assert!(!env.layout().release_dir("web", "3.0.0").exists());
        let report = next.report();
        assert_eq!(report.generation, 4);
        assert_eq!(report.services["web"].errors, errors.iter().map(|e| e.trim_start_matches("web: ").to_owned()).collect::<Vec<_>>());
        assert!(!report.services["web"].slots.contains_key(&Slot::Blue));
        assert!(report.services["web"].counters[&Slot::Green].requests > 0);
        // Green keeps serving through all of it.
        assert_eq!(get(listen, "/version", &[]).await.body, "2.0.0");

        // Replacing the release of the slot that takes the traffic is refused.
        let slots5 = [(Slot::Green, "1.0.0", v1.as_str())];
        let errors = next.apply(assignment(5, listen, ports, &slots5, Some(Slot::Green))).await;
        assert!(errors.iter().any(|e| e.contains("still receives traffic")), "{errors:?}");
        assert_eq!(get(listen, "/version", &[]).await.body, "2.0.0");
        next.stop_all().await;
        assert!(std::net::TcpStream::connect(listen).is_err());
    });
}

/// A bench size from the environment (`CUTOVER_BENCH_*`), else `default`.
fn bench_size(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// One target's figures over the bench's rounds: the median of each.
struct Figures {
    rps: f64,
    p50: u32,
    p99: u32,
    failures: u64,
}

fn median_f64(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn median_u32(v: &mut [u32]) -> u32 {
    v.sort_unstable();
    v[v.len() / 2]
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Throughput and latency direct to the test app, through the cutover router (in a process of its
/// own, as the agent runs it), through HAProxy and through nginx, all in one run and interleaved
/// round by round (so that the machine's other load falls on all of them alike); then requests
/// lost during 100 switches under load, and the switch latency. Run on demand only (`cargo xtask
/// bench router`); timings are never asserted.
fn bench() {
    let env = Env::new();
    let rounds = bench_size("CUTOVER_BENCH_ROUNDS", 5).max(1);
    let secs = bench_size("CUTOVER_BENCH_SECS", 3).max(1);
    let connections = usize::try_from(bench_size("CUTOVER_BENCH_CONNECTIONS", 16)).unwrap_or(16);
    env.rt.block_on(async {
        let blue = run_slot(&env, Slot::Blue, "1.0.0", &[]).await;
        let green = run_slot(&env, Slot::Green, "2.0.0", &[]).await;
        let router = router(&env, Duration::from_secs(10)).await;
        attach(&router, Slot::Blue, "1.0.0", &blue).await;
        attach(&router, Slot::Green, "2.0.0", &green).await;
        wait_routable(&router, Slot::Blue).await;
        wait_routable(&router, Slot::Green).await;
        router.switch_to(Slot::Blue).unwrap();

        let peers: [(&str, PeerConfig); 3] = [
            ("router", router_process),
            ("haproxy", haproxy_config),
            ("nginx", nginx_config),
        ];
        let mut running = Vec::new();
        let mut targets = vec![("direct", local(blue.port))];
        // An A/B comparison of two builds in the same run: `CUTOVER_BENCH_ROUTER_B=<another e2e
        // binary>` adds its router as the target `router-b`.
        if let Ok(other) = std::env::var("CUTOVER_BENCH_ROUTER_B") {
            let port = free_port();
            let child = std::process::Command::new(&other)
                .args(["router", &port.to_string(), &blue.port.to_string()])
                .arg(env.path().join("b"))
                .spawn()
                .unwrap();
            let peer = Peer(child, port);
            while TcpStream::connect(local(port)).await.is_err() {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
            targets.push(("router-b", local(port)));
            running.push(peer);
        }
        for (name, config) in peers {
            match peer_proxy(&env, name, blue.port, config).await {
                Some(peer) => {
                    targets.push((name, local(peer.1)));
                    running.push(peer);
                }
                None => println!("{name}: not available (not installed?); skipped"),
            }
        }
        println!(
            "load: {connections} keep-alive connections, GET /version, {rounds} rounds of {secs} s per target, interleaved; load average before: {}",
            loadavg()
        );
        let measure = |addr: SocketAddr, secs: u64| async move {
            let mut spec = LoadSpec::new(addr, "/version");
            spec.connections = connections;
            spec.max_duration = Duration::from_secs(secs);
            loadgen::run(&spec, Arc::new(AtomicBool::new(false))).await
        };
        for (_, addr) in &targets {
            let _ = measure(*addr, 1).await; // warm-up: pools, caches, page faults
        }
        let mut samples: Vec<Vec<Load>> = targets.iter().map(|_| Vec::new()).collect();
        let mut loads = Vec::new();
        for _ in 0..rounds {
            loads.push(loadavg().split_whitespace().next().unwrap_or("?").to_owned());
            for (i, (_, addr)) in targets.iter().enumerate() {
                samples[i].push(measure(*addr, secs).await);
            }
        }
        println!("1-minute load average at the start of each round: {}", loads.join(", "));
        let figures: Vec<Figures> = samples
            .iter()
            .map(|runs| Figures {
                rps: median_f64(&mut runs.iter().map(Load::requests_per_second).collect::<Vec<_>>()),
                p50: median_u32(&mut runs.iter().map(|r| r.percentile_us(0.5).unwrap_or(0)).collect::<Vec<_>>()),
                p99: median_u32(&mut runs.iter().map(|r| r.percentile_us(0.99).unwrap_or(0)).collect::<Vec<_>>()),
                failures: runs.iter().map(Load::failures).sum(),
            })
            .collect();
        println!("{:<10} {:>10} {:>9} {:>9} {:>9}", "target", "req/s", "p50 µs", "p99 µs", "failures");
        for ((name, _), f) in targets.iter().zip(&figures) {
            println!(
                "{name:<10} {:>10.0} {:>9} {:>9} {:>9}",
                f.rps, f.p50, f.p99, f.failures
            );
        }
        // Ratios are taken round by round (the targets of a round ran seconds apart, under about
        // the same machine load), then their median: steadier than a ratio of medians.
        if let Some(r) = targets.iter().position(|(n, _)| *n == "router") {
            for (t, (name, _)) in targets.iter().enumerate() {
                if t == r {
                    continue;
                }
                let per_round = |f: &dyn Fn(&Load) -> f64| -> Vec<f64> {
                    samples[r]
                        .iter()
                        .zip(&samples[t])
                        .map(|(ours, theirs)| f(ours) / f(theirs).max(f64::EPSILON))
                        .collect()
                };
                let mut tput = per_round(&Load::requests_per_second);
                let mut p50 = per_round(&|l: &Load| f64::from(l.percentile_us(0.5).unwrap_or(0).max(1)));
                let mut p99 = per_round(&|l: &Load| f64::from(l.percentile_us(0.99).unwrap_or(0).max(1)));
                let rounds_text = tput.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
                let p99_text = p99.iter().map(|x| format!("{x:.2}")).collect::<Vec<_>>().join(" ");
                let (throughput, p50, p99) = (median_f64(&mut tput), median_f64(&mut p50), median_f64(&mut p99));
                let verdict = if *name == "direct" || *name == "router-b" {
                    String::new()
                } else {
                    format!(
                        "  [target: throughput >= 0.80 {}, p99 <= 1.25 {}]",
                        if throughput >= 0.8 { "met" } else { "MISSED" },
                        if p99 <= 1.25 { "met" } else { "MISSED" }
                    )
                };
                println!(
                    "router/{name}: throughput {throughput:.2}, p50 {p50:.2}, p99 {p99:.2} (medians of per-round ratios; rounds: throughput {rounds_text}; p99 {p99_text}){verdict}"
                );
            }
        }
        drop(running);
        println!("load average after: {}", loadavg());

        // 100 switches under load through the in-process router: lost requests, and the switch
        // latency from the switch to the first response from the new slot.
        let stop = Arc::new(AtomicBool::new(false));
        let mut spec = LoadSpec::new(router.local_addr(), "/version");
        spec.connections = connections;
        spec.max_duration = Duration::from_secs(30);
        let running = tokio::spawn({
            let stop = stop.clone();
            async move { loadgen::run(&spec, stop).await }
        });
        tokio::time::sleep(Duration::from_millis(200)).await;
        let stream = TcpStream::connect(router.local_addr()).await.unwrap();
        let _ = stream.set_nodelay(true);
        let (mut probe, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .unwrap();
        tokio::spawn(conn);
        let mut switch_us = Vec::new();
        for i in 0..100 {
            tokio::time::sleep(Duration::from_millis(20)).await;
            let (slot, version) = if i % 2 == 0 {
                (Slot::Green, "2.0.0")
            } else {
                (Slot::Blue, "1.0.0")
            };
            let t = Instant::now();
            router.switch_to(slot).unwrap();
            loop {
                probe.ready().await.unwrap();
                let resp = probe
                    .send_request(Request::get("/version").header("host", "bench").body(Empty::<Bytes>::new()).unwrap())
                    .await
                    .unwrap();
                let body = resp.into_body().collect().await.unwrap().to_bytes();
                if body == version.as_bytes() {
                    break;
                }
            }
            switch_us.push(t.elapsed().as_micros());
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        stop.store(true, Ordering::Relaxed);
        let seen = running.await.unwrap();
        switch_us.sort_unstable();
        println!(
            "100 switches under {:.0} req/s: {} requests, {} lost; switch to first response from the new slot: p50 {} µs, max {} µs",
            seen.requests_per_second(),
            seen.sent,
            seen.failures(),
            switch_us[50],
            switch_us[99]
        );
        router.shutdown().await;
    });
}

type PeerConfig = fn(&Path, u16, u16) -> Vec<String>;

/// The cutover router in a process of its own, as the agent runs it (the in-process figure shares
/// its runtime with the load generator).
fn router_process(dir: &Path, port: u16, upstream: u16) -> Vec<String> {
    vec![
        exe(),
        "router".into(),
        port.to_string(),
        upstream.to_string(),
        dir.to_string_lossy().into_owned(),
    ]
}

/// A peer proxy started for the bench; stopped (SIGTERM, as nginx needs for its workers) on drop.
struct Peer(std::process::Child, u16);

impl Drop for Peer {
    fn drop(&mut self) {
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &self.0.id().to_string()])
            .status();
        let _ = self.0.wait();
    }
}

fn haproxy_config(dir: &Path, port: u16, upstream: u16) -> Vec<String> {
    let cfg = dir.join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 4096\n  nbthread 2\ndefaults\n  mode http\n  timeout connect 5s\n  timeout client 30s\n  timeout server 30s\n  option http-keep-alive\nfrontend f\n  bind 127.0.0.1:{port}\n  default_backend b\nbackend b\n  http-reuse always\n  server s1 127.0.0.1:{upstream}\n"
        ),
    )
    .unwrap();
    vec![
        "haproxy".into(),
        "-db".into(),
        "-f".into(),
        cfg.to_string_lossy().into_owned(),
    ]
}

fn nginx_config(dir: &Path, port: u16, upstream: u16) -> Vec<String> {
    let cfg = dir.join("nginx.conf");
    let d = dir.to_string_lossy();
    std::fs::write(
        &cfg,
        format!(
            "worker_processes 2;\ndaemon off;\npid {d}/nginx.pid;\nerror_log {d}/nginx-error.log;\nevents {{ worker_connections 1024; }}\nhttp {{\n  access_log off;\n  client_body_temp_path {d}/nginx-body;\n  proxy_temp_path {d}/nginx-proxy;\n  upstream up {{ server 127.0.0.1:{upstream}; keepalive 64; }}\n  server {{\n    listen 127.0.0.1:{port};\n    location / {{ proxy_pass http://up; proxy_http_version 1.1; proxy_set_header Connection \"\"; }}\n  }}\n}}\n"
        ),
    )
    .unwrap();
    vec![
        "nginx".into(),
        "-p".into(),
        d.into_owned(),
        "-c".into(),
        cfg.to_string_lossy().into_owned(),
    ]
}

async fn peer_proxy(env: &Env, name: &str, upstream: u16, config: PeerConfig) -> Option<Peer> {
    let port = free_port();
    let argv = config(env.path(), port, upstream);
    let child = std::process::Command::new(&argv[0])
        .args(&argv[1..])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .ok()?;
    let peer = Peer(child, port);
    for _ in 0..100 {
        if TcpStream::connect(local(port)).await.is_ok() {
            return Some(peer);
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!("{name}: did not start listening");
    None
}
