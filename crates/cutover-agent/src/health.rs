//! Health checks of a slot: HTTP, TCP or command probes, the version probe, and their evidence.
//!
//! A [`HealthMonitor`] probes a slot at an interval and turns the results into a [`Health`]: healthy
//! after `healthy_after` good rounds in a row, unhealthy after `unhealthy_after` bad ones. A round is
//! good when the probe passes and, if a version probe is configured, the body of its path equals the
//! release's version; a mismatch makes the slot "wrong version", never healthy. Every result is kept as
//! [`Evidence`] (time, result, latency), numbered so that a reporter can send only what is new.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::process::Stdio;
use std::time::{Duration, Instant};

use bytes::Bytes;
use chrono::{DateTime, Utc};
use http_body_util::{BodyExt as _, Empty};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What a probe does.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Probe {
    /// `GET path` answers `expected_status`.
    Http { path: String, expected_status: u16 },
    /// A TCP connection is accepted.
    Tcp,
    /// The command (argv, env `PORT` set) exits 0.
    Command { argv: Vec<String> },
}

/// A slot's health checking.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthSpec {
    pub probe: Probe,
    pub timeout: Duration,
    pub interval: Duration,
    pub healthy_after: u32,
    pub unhealthy_after: u32,
    /// Path whose body must equal the release's version.
    pub version_probe: Option<String>,
}

impl HealthSpec {
    /// `GET path` → 200, 2 s timeout, every 500 ms, healthy after 2, unhealthy after 3.
    #[must_use]
    pub fn http(path: impl Into<String>) -> Self {
        Self {
            probe: Probe::Http {
                path: path.into(),
                expected_status: 200,
            },
            timeout: Duration::from_secs(2),
            interval: Duration::from_millis(500),
            healthy_after: 2,
            unhealthy_after: 3,
            version_probe: None,
        }
    }
}

/// Which check produced a piece of evidence.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckKind {
    Http,
    Tcp,
    Command,
    Version,
}

/// One check result.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// Numbered from 1 per monitor.
    pub seq: u64,
    pub at: DateTime<Utc>,
    pub check: CheckKind,
    pub ok: bool,
    /// What was seen: `200`, `503`, `connection refused`, `version "1.0.0", expected "1.1.0"`.
    pub detail: String,
    pub latency_us: u64,
}

/// The judgement on a slot.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "health", rename_all = "snake_case")]
pub enum Health {
    /// Not yet `healthy_after` good rounds.
    Starting,
    Healthy,
    Unhealthy,
    /// The version probe answered something else than the release's version.
    WrongVersion {
        reported: String,
    },
}

/// The health of a slot and its recent evidence.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HealthStatus {
    #[serde(flatten)]
    pub health: Health,
    pub consecutive_ok: u32,
    pub consecutive_failed: u32,
    /// The most recent evidence, oldest first (at most [`EVIDENCE_KEPT`]).
    pub evidence: VecDeque<Evidence>,
}

/// Evidence kept in memory per monitor; a reporter drains it faster than this fills.
pub const EVIDENCE_KEPT: usize = 256;

fn elapsed_us(start: Instant) -> u64 {
    u64::try_from(start.elapsed().as_micros()).unwrap_or(u64::MAX)
}

/// `GET path` on `addr`; returns the status and the body (bodies over 64 KiB are cut).
pub async fn http_get(
    addr: SocketAddr,
    path: &str,
    timeout: Duration,
) -> Result<(u16, Bytes), String> {
    let fut = async {
        let stream = TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
        let (mut send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
            .await
            .map_err(|e| e.to_string())?;
        tokio::spawn(conn);
        let req = hyper::Request::get(path)
            .header(hyper::header::HOST, addr.to_string())
            .header("user-agent", "cutover-agent-health")
            .body(Empty::<Bytes>::new())
            .map_err(|e| format!("bad probe path {path:?}: {e}"))?;
        let resp = send.send_request(req).await.map_err(|e| e.to_string())?;
        let status = resp.status().as_u16();
        let limited = http_body_util::Limited::new(resp.into_body(), 64 * 1024);
        let body = limited
            .collect()
            .await
            .map_err(|e| e.to_string())?
            .to_bytes();
        Ok((status, body))
    };
    tokio::time::timeout(timeout, fut)
        .await
        .unwrap_or_else(|_| Err(format!("timed out after {timeout:?}")))
}

/// Runs one probe against `addr` (the command probe gets the port in `PORT`).
pub async fn probe_once(
    probe: &Probe,
    addr: SocketAddr,
    timeout: Duration,
) -> (CheckKind, bool, String, u64) {
    let start = Instant::now();
    match probe {
        Probe::Http {
            path,
            expected_status,
        } => {
            let (ok, detail) = match http_get(addr, path, timeout).await {
                Ok((status, _)) => (
                    status == *expected_status,
                    if status == *expected_status {
                        status.to_string()
                    } else {
                        format!("{status}, expected {expected_status}")
                    },
                ),
                Err(e) => (false, e),
            };
            (CheckKind::Http, ok, detail, elapsed_us(start))
        }
        Probe::Tcp => {
            let (ok, detail) = match tokio::time::timeout(timeout, TcpStream::connect(addr)).await {
                Ok(Ok(_)) => (true, "connected".to_owned()),
                Ok(Err(e)) => (false, e.to_string()),
                Err(_) => (false, format!("timed out after {timeout:?}")),
            };
            (CheckKind::Tcp, ok, detail, elapsed_us(start))
        }
        Probe::Command { argv } => {
            let (ok, detail) = run_command(argv, addr.port(), timeout).await;
            (CheckKind::Command, ok, detail, elapsed_us(start))
        }
    }
}

async fn run_command(argv: &[String], port: u16, timeout: Duration) -> (bool, String) {
    let Some((program, args)) = argv.split_first() else {
        return (false, "empty command; expected an argv array".to_owned());
    };
    let child = tokio::process::Command::new(program)
        .args(args)
        .env("PORT", port.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .kill_on_drop(true)
        .status();
    match tokio::time::timeout(timeout, child).await {
        Ok(Ok(s)) if s.success() => (true, "exit 0".to_owned()),
        Ok(Ok(s)) => (false, format!("{s}")),
        Ok(Err(e)) => (false, format!("cannot run {program:?}: {e}")),
        Err(_) => (false, format!("timed out after {timeout:?}")),
    }
}

/// Probes `path` and compares its body with `expected`.
pub async fn version_once(
    addr: SocketAddr,
    path: &str,
    expected: &str,
    timeout: Duration,
) -> (bool, String, Option<String>, u64) {
    let start = Instant::now();
    match http_get(addr, path, timeout).await {
        Ok((200, body)) => {
            let reported = String::from_utf8_lossy(&body).into_owned();
            if reported == expected {
                (
                    true,
                    format!("version {reported:?}"),
                    None,
                    elapsed_us(start),
                )
            } else {
                (
                    false,
                    format!("version {reported:?}, expected {expected:?}"),
                    Some(reported),
                    elapsed_us(start),
                )
            }
        }
        Ok((status, _)) => (
            false,
            format!("{status}, expected 200"),
            None,
            elapsed_us(start),
        ),
        Err(e) => (false, e, None, elapsed_us(start)),
    }
}

/// Probes a slot in the background for as long as it lives.
#[derive(Debug)]
pub struct HealthMonitor {
    status: watch::Receiver<HealthStatus>,
    task: JoinHandle<()>,
}

impl HealthMonitor {
    /// Starts probing `addr` for a release whose version is `expected_version`. Inside a tokio runtime.
    #[must_use]
    pub fn spawn(spec: HealthSpec, addr: SocketAddr, expected_version: String) -> Self {
        let (tx, status) = watch::channel(HealthStatus {
            health: Health::Starting,
            consecutive_ok: 0,
            consecutive_failed: 0,
            evidence: VecDeque::new(),
        });
        let task = tokio::spawn(monitor(spec, addr, expected_version, tx));
        Self { status, task }
    }

    #[must_use]
    pub fn status(&self) -> HealthStatus {
        self.status.borrow().clone()
    }

    #[must_use]
    pub fn watch(&self) -> watch::Receiver<HealthStatus> {
        self.status.clone()
    }

    /// Waits until the health is decided one way or the other (anything but `Starting`), or the
    /// timeout passes; returns the health then.
    pub async fn settled(&self, timeout: Duration) -> Health {
        let mut rx = self.status.clone();
        let _ = tokio::time::timeout(timeout, rx.wait_for(|s| s.health != Health::Starting)).await;
        self.status.borrow().health.clone()
    }
}

impl Drop for HealthMonitor {
    fn drop(&mut self) {
        self.task.abort();
    }
}

async fn monitor(
    spec: HealthSpec,
    addr: SocketAddr,
    expected: String,
    tx: watch::Sender<HealthStatus>,
) {
    let mut seq = 0u64;
    let mut ticker = tokio::time::interval(spec.interval);
    ticker.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        ticker.tick().await;
        let (check, mut ok, detail, latency_us) = probe_once(&spec.probe, addr, spec.timeout).await;
        let mut found = vec![(check, ok, detail, latency_us)];
        let mut wrong = None;
        if ok && let Some(path) = &spec.version_probe {
            let (vok, detail, reported, latency_us) =
                version_once(addr, path, &expected, spec.timeout).await;
            ok = vok;
            wrong = reported;
            found.push((CheckKind::Version, vok, detail, latency_us));
        }
        tx.send_modify(|s| {
            for (check, ok, detail, latency_us) in found {
                seq += 1;
                if s.evidence.len() == EVIDENCE_KEPT {
                    s.evidence.pop_front();
                }
                s.evidence.push_back(Evidence {
                    seq,
                    at: Utc::now(),
                    check,
                    ok,
                    detail,
                    latency_us,
                });
            }
            if let Some(reported) = wrong {
                s.consecutive_ok = 0;
                s.consecutive_failed += 1;
                s.health = Health::WrongVersion { reported };
                return;
            }
            if ok {
                s.consecutive_ok += 1;
                s.consecutive_failed = 0;
                if s.consecutive_ok >= spec.healthy_after.max(1) {
                    s.health = Health::Healthy;
                }
            } else {
                s.consecutive_failed += 1;
                s.consecutive_ok = 0;
                if s.consecutive_failed >= spec.unhealthy_after.max(1) {
                    s.health = Health::Unhealthy;
                }
            }
        });
    }
}
