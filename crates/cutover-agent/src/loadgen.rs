//! A closed-loop HTTP/1.1 load generator for loopback tests and benchmarks.
//!
//! Every run is bounded in request count and in time, and stops early when asked. Each request's
//! outcome is counted (`200 <body>`, another status, or `error …`), so that a lost request cannot
//! hide, and every latency is kept for exact percentiles.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Empty};
use hyper::Request;
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde::Serialize;
use tokio::net::TcpStream;

/// What to send.
#[derive(Debug, Clone)]
pub struct LoadSpec {
    pub addr: SocketAddr,
    pub path: String,
    /// Concurrent connections, one request in flight on each.
    pub connections: usize,
    /// Upper bound on requests per connection.
    pub max_requests_per_connection: u64,
    /// Upper bound on the run's duration.
    pub max_duration: Duration,
    /// A new connection for every request (`Connection: close`) instead of keep-alive.
    pub fresh_connections: bool,
}

impl LoadSpec {
    #[must_use]
    pub fn new(addr: SocketAddr, path: impl Into<String>) -> Self {
        Self {
            addr,
            path: path.into(),
            connections: 4,
            max_requests_per_connection: 100_000,
            max_duration: Duration::from_secs(60),
            fresh_connections: false,
        }
    }
}

/// What a run saw.
#[derive(Debug, Clone, Default, Serialize)]
pub struct LoadReport {
    pub sent: u64,
    /// Outcome → count: `200 <body>` (bodies up to 64 bytes), `503 <body>`, `error <what>`.
    pub outcomes: BTreeMap<String, u64>,
    pub elapsed: Duration,
    /// Latency of every completed request, in microseconds, sorted.
    #[serde(skip)]
    pub latencies_us: Vec<u32>,
}

impl LoadReport {
    /// Requests answered 200 with exactly `body`.
    #[must_use]
    pub fn ok(&self, body: &str) -> u64 {
        self.outcomes
            .get(&format!("200 {body}"))
            .copied()
            .unwrap_or(0)
    }

    /// Requests not answered 200.
    #[must_use]
    pub fn failures(&self) -> u64 {
        self.outcomes
            .iter()
            .filter(|(k, _)| !k.starts_with("200 "))
            .map(|(_, n)| n)
            .sum()
    }

    #[must_use]
    pub fn requests_per_second(&self) -> f64 {
        #[allow(clippy::cast_precision_loss)]
        let sent = self.sent as f64;
        sent / self.elapsed.as_secs_f64().max(f64::EPSILON)
    }

    /// Latency percentile `q` (0..=1) in microseconds.
    #[must_use]
    pub fn percentile_us(&self, q: f64) -> Option<u32> {
        if self.latencies_us.is_empty() {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let idx = ((q.clamp(0.0, 1.0) * (self.latencies_us.len() - 1) as f64).round()) as usize;
        self.latencies_us.get(idx).copied()
    }

    fn merge(&mut self, other: LoadReport) {
        self.sent += other.sent;
        for (k, n) in other.outcomes {
            *self.outcomes.entry(k).or_default() += n;
        }
        self.latencies_us.extend(other.latencies_us);
    }
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
    let stream = TcpStream::connect(addr)
        .await
        .map_err(|e| format!("connect {e}"))?;
    let _ = stream.set_nodelay(true);
    let (send, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| format!("handshake {e}"))?;
    tokio::spawn(conn);
    Ok(send)
}

/// Runs the load until the bounds are reached or `stop` is set. Inside a tokio runtime.
pub async fn run(spec: &LoadSpec, stop: Arc<AtomicBool>) -> LoadReport {
    let started = Instant::now();
    let deadline = started + spec.max_duration;
    let mut tasks = Vec::new();
    for _ in 0..spec.connections.max(1) {
        let stop = stop.clone();
        let spec = spec.clone();
        tasks.push(tokio::spawn(async move {
            let mut seen = LoadReport::default();
            let mut conn: Option<SendRequest<Empty<Bytes>>> = None;
            while seen.sent < spec.max_requests_per_connection
                && !stop.load(Ordering::Relaxed)
                && Instant::now() < deadline
            {
                // A client must not reuse a connection the server closed (`Connection: close`).
                if let Some(send) = conn.as_mut()
                    && send.ready().await.is_err()
                {
                    conn = None;
                }
                seen.sent += 1;
                let t = Instant::now();
                if conn.is_none() {
                    match connect(spec.addr).await {
                        Ok(c) => conn = Some(c),
                        Err(e) => {
                            *seen.outcomes.entry(format!("error {e}")).or_default() += 1;
                            continue;
                        }
                    }
                }
                let Some(send) = conn.as_mut() else { continue };
                let mut req = Request::get(spec.path.as_str()).header("host", "loadgen");
                if spec.fresh_connections {
                    req = req.header("connection", "close");
                }
                let Ok(req) = req.body(Empty::<Bytes>::new()) else {
                    *seen
                        .outcomes
                        .entry("error bad path".to_owned())
                        .or_default() += 1;
                    break;
                };
                let key = match send.send_request(req).await {
                    Ok(resp) => {
                        let status = resp.status().as_u16();
                        match resp.into_body().collect().await {
                            Ok(b) => {
                                let b = b.to_bytes();
                                let shown = &b[..b.len().min(64)];
                                format!("{status} {}", String::from_utf8_lossy(shown))
                            }
                            Err(e) => format!("error body {e}"),
                        }
                    }
                    Err(e) => {
                        conn = None;
                        format!("error {e}")
                    }
                };
                seen.latencies_us
                    .push(u32::try_from(t.elapsed().as_micros()).unwrap_or(u32::MAX));
                *seen.outcomes.entry(key).or_default() += 1;
                if spec.fresh_connections {
                    conn = None;
                }
            }
            seen
        }));
    }
    let mut all = LoadReport::default();
    for t in tasks {
        if let Ok(r) = t.await {
            all.merge(r);
        }
    }
    all.elapsed = started.elapsed();
    all.latencies_us.sort_unstable();
    all
}
