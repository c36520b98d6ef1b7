//! The router: a reverse proxy that owns a service's listen address and forwards to its slots.
//!
//! Requests go to the *active* slot, except for a canary share (a weight, sticky through a cookie)
//! and segments (a header or cookie value → a slot). The router switches only to a slot marked
//! healthy; a slot that stops being a target drains: its in-flight requests finish, up to
//! `drain_timeout`; then a request still waiting for its response head gets 504 and a response body
//! still streaming is cut. Upgraded connections (WebSocket) stay on their slot until they close or
//! the slot stops. Per-slot counters (requests, status classes, latency histogram) let verification
//! judge a canary.
//!
//! The routing state is written to a file at every change and read back at start. A restarted
//! agent's router takes the listening socket itself from the running router over a unix socket
//! (no connection refused or reset); without one it binds with `SO_REUSEPORT` next to it.
//!
//! Clients speak HTTP/1.1 (keep-alive, upgrades such as WebSocket) or HTTP/2 (prior knowledge, h2c);
//! upstreams get HTTP/1.1. Each HTTP/1 client connection has an upstream connection of its own
//! (its requests come one after the other, so no pool lock, checkout or absolute URI is needed per
//! request); HTTP/2 streams, upgrades and a request that finds that connection still busy use a
//! shared keep-alive pool. Bodies stream in both directions.
//!
//! Connections are served on the router's own threads, one single-threaded runtime per core
//! (`RouterConfig::threads`), each connection on one thread for its whole life.

use std::collections::BTreeMap;
use std::fs;
use std::io;
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::pin::Pin;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use bytes::Bytes;
use http_body_util::{BodyExt as _, Full, combinators::BoxBody};
use hyper::body::{Frame, Incoming, SizeHint};
use hyper::header::{self, HeaderMap, HeaderName, HeaderValue};
use hyper::{Request, Response, StatusCode, Uri, Version};
use hyper_util::client::legacy::Client;
use hyper_util::client::legacy::connect::HttpConnector;
use hyper_util::rt::{TokioExecutor, TokioIo};
use serde::{Deserialize, Serialize};
use tokio::net::TcpListener;
use tokio::sync::{mpsc, watch};

use crate::health::{Health, HealthStatus};
use crate::runtime::Slot;

/// How a router is set up (fixed for its life; what changes is in [`RoutingState`]).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RouterConfig {
    pub listen: SocketAddr,
    /// Where the routing state is kept between agent restarts.
    pub state_file: PathBuf,
    /// How long a drained slot's in-flight requests may take before they get 504.
    pub drain_timeout: Duration,
    /// How long a request is held while the router is paused before it gets 503.
    pub pause_timeout: Duration,
    /// Name of the sticky canary cookie.
    pub cookie_name: String,
    /// Where the slots listen (their ports are in the state).
    pub upstream_host: IpAddr,
    /// Unix socket through which a restarted agent's router takes this router's listening socket
    /// (see [`Router::start`]); `None` relies on `SO_REUSEPORT` alone.
    pub handoff_socket: Option<PathBuf>,
    /// Serving threads, each with a single-threaded runtime of its own; 0: one per core.
    #[serde(default)]
    pub threads: usize,
}

impl RouterConfig {
    #[must_use]
    pub fn new(listen: SocketAddr, state_file: impl Into<PathBuf>) -> Self {
        let state_file = state_file.into();
        Self {
            listen,
            handoff_socket: Some(state_file.with_extension("sock")),
            state_file,
            drain_timeout: Duration::from_secs(30),
            pause_timeout: Duration::from_secs(30),
            cookie_name: "cutover_slot".to_owned(),
            upstream_host: IpAddr::V4(Ipv4Addr::LOCALHOST),
            threads: 0,
        }
    }
}

/// A slot as the router knows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Upstream {
    pub port: u16,
    pub version: String,
    /// Set from the slot's health checks; only a healthy slot can become a target.
    pub healthy: bool,
}

/// Which requests a segment takes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Match {
    /// The request header `name` equals `value`.
    Header { name: String, value: String },
    /// The request cookie `name` equals `value`.
    Cookie { name: String, value: String },
}

/// Requests matching `when` go to `slot` (while it is healthy).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Segment {
    pub when: Match,
    pub slot: Slot,
}

/// A canary: `weight_percent` of new clients go to `slot`, the rest to the active slot.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Canary {
    pub slot: Slot,
    pub weight_percent: u8,
}

/// Everything that decides where a request goes; persisted at every change.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RoutingState {
    /// Bumped at every change.
    pub generation: u64,
    pub upstreams: BTreeMap<Slot, Upstream>,
    pub active: Option<Slot>,
    pub canary: Option<Canary>,
    pub segments: Vec<Segment>,
    pub paused: bool,
}

impl RoutingState {
    fn routable(&self, slot: Slot) -> bool {
        self.upstreams.get(&slot).is_some_and(|u| u.healthy)
    }

    /// Whether new requests may still go to `slot`.
    #[must_use]
    pub fn targets(&self, slot: Slot) -> bool {
        self.active == Some(slot)
            || self
                .canary
                .is_some_and(|c| c.slot == slot && c.weight_percent > 0)
            || self.segments.iter().any(|s| s.slot == slot)
    }
}

/// Why the router refused a change.
#[derive(Debug, thiserror::Error)]
pub enum RouterError {
    #[error("cannot bind the router to {addr}: {source}")]
    Bind {
        addr: SocketAddr,
        #[source]
        source: io::Error,
    },
    #[error("cannot start the router's serving threads: {0}")]
    Threads(#[source] io::Error),
    #[error("slot {slot} has no upstream; set its port first (set_upstream)")]
    NoUpstream { slot: Slot },
    #[error(
        "slot {slot} is not healthy; the router switches only to a slot that passed its health checks"
    )]
    NotHealthy { slot: Slot },
    #[error("a canary needs an active slot other than {slot}; switch to the stable slot first")]
    CanaryWithoutActive { slot: Slot },
    #[error("canary weight {0} is out of range; expected a percentage from 0 to 100")]
    Weight(u8),
    #[error("slot {slot} still receives traffic; switch away from it before removing it")]
    InUse { slot: Slot },
    #[error("cannot read the routing state {}: {source}", path.display())]
    ReadState {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    #[error("the routing state {} is corrupt at line {line}, column {column}: {message}; hint: move it away to start with an empty routing state", path.display())]
    CorruptState {
        path: PathBuf,
        line: usize,
        column: usize,
        message: String,
    },
    #[error("cannot write the routing state {}: {source}", path.display())]
    WriteState {
        path: PathBuf,
        #[source]
        source: io::Error,
    },
}

/// Upper bounds (microseconds) of the latency histogram buckets; a last bucket takes the rest.
pub const LATENCY_BUCKETS_US: [u64; 15] = [
    250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000,
    2_500_000, 5_000_000, 10_000_000,
];

#[derive(Debug, Default)]
struct Counters {
    requests: AtomicU64,
    status: [AtomicU64; 5],
    upstream_errors: AtomicU64,
    drain_timeouts: AtomicU64,
    in_flight: AtomicU64,
    latency: [AtomicU64; LATENCY_BUCKETS_US.len() + 1],
}

/// A slot's counters, as reported.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlotCounters {
    pub requests: u64,
    /// Responses by class: 1xx, 2xx, 3xx, 4xx, 5xx (router-made 502/504 included).
    pub status_classes: [u64; 5],
    /// Upstream unreachable or broke (answered 502).
    pub upstream_errors: u64,
    /// Requests cut at the end of a drain (answered 504).
    pub drain_timeouts: u64,
    pub in_flight: u64,
    /// Counts per bucket of [`LATENCY_BUCKETS_US`] (time to response headers), plus the overflow.
    pub latency_us_buckets: Vec<u64>,
}

impl SlotCounters {
    #[must_use]
    pub fn errors_5xx(&self) -> u64 {
        self.status_classes[4]
    }

    /// Upper bound of the bucket holding quantile `q` (0..=1), in microseconds; `None` without data.
    #[must_use]
    pub fn latency_quantile_us(&self, q: f64) -> Option<u64> {
        let total: u64 = self.latency_us_buckets.iter().sum();
        if total == 0 {
            return None;
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            clippy::cast_precision_loss
        )]
        let rank = ((q.clamp(0.0, 1.0) * total as f64).ceil() as u64).max(1);
        let mut seen = 0;
        for (i, n) in self.latency_us_buckets.iter().enumerate() {
            seen += n;
            if seen >= rank {
                return Some(LATENCY_BUCKETS_US.get(i).copied().unwrap_or(u64::MAX));
            }
        }
        None
    }
}

impl Counters {
    fn snapshot(&self) -> SlotCounters {
        SlotCounters {
            requests: self.requests.load(Ordering::Relaxed),
            status_classes: std::array::from_fn(|i| self.status[i].load(Ordering::Relaxed)),
            upstream_errors: self.upstream_errors.load(Ordering::Relaxed),
            drain_timeouts: self.drain_timeouts.load(Ordering::Relaxed),
            in_flight: self.in_flight.load(Ordering::Relaxed),
            latency_us_buckets: self
                .latency
                .iter()
                .map(|a| a.load(Ordering::Relaxed))
                .collect(),
        }
    }

    fn record(&self, status: StatusCode, latency: Duration) {
        let class = usize::from(status.as_u16() / 100).clamp(1, 5) - 1;
        self.status[class].fetch_add(1, Ordering::Relaxed);
        let us = u64::try_from(latency.as_micros()).unwrap_or(u64::MAX);
        let bucket = LATENCY_BUCKETS_US
            .iter()
            .position(|b| us <= *b)
            .unwrap_or(LATENCY_BUCKETS_US.len());
        self.latency[bucket].fetch_add(1, Ordering::Relaxed);
    }
}

struct Inner {
    config: RouterConfig,
    state: watch::Sender<RoutingState>,
    /// Serializes changes and their writes to the state file.
    change: Mutex<()>,
    counters: BTreeMap<Slot, Counters>,
    client: Client<HttpConnector, Incoming>,
    /// Numbers new canary clients, for an exact, evenly spread split.
    assigned: AtomicU64,
    local_addr: SocketAddr,
    stop: watch::Sender<bool>,
    /// The hand-off thread's copy of the listener; emptied at shutdown.
    handoff: crate::handoff::Shared,
    /// Whether this router took its listener from a running router.
    took_over: bool,
    /// Closed when the accept loop and every connection have finished.
    finished: Mutex<Option<mpsc::Receiver<()>>>,
}

/// A running router. Cheap to clone; every clone controls the same router.
#[derive(Clone)]
pub struct Router {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for Router {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Router")
            .field("listen", &self.inner.local_addr)
            .field("state", &*self.inner.state.borrow())
            .finish_non_exhaustive()
    }
}

/// A listener that other processes (a restarted agent) can bind too.
fn reuseport_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    use socket2::{Domain, Protocol, Socket, Type};
    let socket = Socket::new(Domain::for_address(addr), Type::STREAM, Some(Protocol::TCP))?;
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_tcp_nodelay(true)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    socket.set_nonblocking(true)?;
    Ok(socket.into())
}

/// Reads a persisted routing state; a missing file is an empty state.
pub fn load_state(path: &Path) -> Result<RoutingState, RouterError> {
    match fs::read(path) {
        Ok(bytes) => serde_json::from_slice(&bytes).map_err(|e| RouterError::CorruptState {
            path: path.to_owned(),
            line: e.line(),
            column: e.column(),
            message: e.to_string(),
        }),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(RoutingState::default()),
        Err(source) => Err(RouterError::ReadState {
            path: path.to_owned(),
            source,
        }),
    }
}

fn save_state(path: &Path, state: &RoutingState) -> Result<(), RouterError> {
    let write = || -> io::Result<()> {
        if let Some(dir) = path.parent() {
            fs::create_dir_all(dir)?;
        }
        let tmp = path.with_extension("json.tmp");
        let json = serde_json::to_vec_pretty(state).map_err(io::Error::other)?;
        fs::write(&tmp, json)?;
        // Rename is atomic: a crash leaves the old state or the new one, never half of one.
        fs::rename(&tmp, path)
    };
    write().map_err(|source| RouterError::WriteState {
        path: path.to_owned(),
        source,
    })
}

type BoxError = Box<dyn std::error::Error + Send + Sync>;
type ProxyBody = BoxBody<Bytes, BoxError>;

/// Resolves `drain_timeout` after `slot` stopped being a target: then what it still has in flight
/// is cut (504 before the response head, an aborted body after it). Takes the request's own
/// receiver of the routing state: one subscription per request, not two.
fn drain_deadline(
    inner: &Inner,
    mut rx: watch::Receiver<RoutingState>,
    slot: Slot,
) -> Pin<Box<dyn Future<Output = ()> + Send + Sync>> {
    let timeout = inner.config.drain_timeout;
    Box::pin(async move {
        let _ = rx.wait_for(|s| !s.targets(slot)).await;
        tokio::time::sleep(timeout).await;
    })
}

fn plain(status: StatusCode, msg: &'static str) -> Response<ProxyBody> {
    let mut resp = Response::new(
        Full::new(Bytes::from_static(msg.as_bytes()))
            .map_err(|never| match never {})
            .boxed(),
    );
    *resp.status_mut() = status;
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; charset=utf-8"),
    );
    resp
}

impl Router {
    /// Binds the listen address (with `SO_REUSEPORT`), restores the persisted routing state and
    /// starts serving. Inside a tokio runtime.
    pub async fn start(config: RouterConfig) -> Result<Router, RouterError> {
        let bind_err = |source| RouterError::Bind {
            addr: config.listen,
            source,
        };
        // Started before the hand-off: once the running router gave its socket up, nothing may
        // fail here, or the connections queued on it would be reset.
        let threads = match config.threads {
            0 => std::thread::available_parallelism().map_or(1, std::num::NonZeroUsize::get),
            n => n,
        };
        let workers = Workers::start(threads).map_err(RouterError::Threads)?;
        // A router already serving this address hands its socket over: no connection is refused
        // or reset. Without one (or when it does not answer properly) bind anew.
        let taken = match &config.handoff_socket {
            Some(path) => crate::handoff::take_listener(path, config.listen).unwrap_or(None),
            None => None,
        };
        let took_over = taken.is_some();
        let std_listener = match taken {
            Some(l) => {
                l.set_nonblocking(true).map_err(bind_err)?;
                l
            }
            None => reuseport_listener(config.listen).map_err(bind_err)?,
        };
        // Read after the hand-off: the previous router has stopped changing it.
        let state = load_state(&config.state_file)?;
        let handoff_copy = std_listener.try_clone().map_err(bind_err)?;
        let listener = TcpListener::from_std(std_listener).map_err(|source| RouterError::Bind {
            addr: config.listen,
            source,
        })?;
        let local_addr = listener.local_addr().map_err(|source| RouterError::Bind {
            addr: config.listen,
            source,
        })?;
        let mut connector = HttpConnector::new();
        connector.set_nodelay(true);
        connector.set_connect_timeout(Some(Duration::from_secs(5)));
        let client = Client::builder(TokioExecutor::new())
            .pool_idle_timeout(Duration::from_secs(30))
            .pool_max_idle_per_host(256)
            .build(connector);
        let (stop, stop_rx) = watch::channel(false);
        let (alive_tx, alive_rx) = mpsc::channel::<()>(1);
        let inner = Arc::new(Inner {
            config,
            state: watch::Sender::new(state),
            change: Mutex::new(()),
            counters: Slot::ALL
                .iter()
                .map(|s| (*s, Counters::default()))
                .collect(),
            client,
            assigned: AtomicU64::new(0),
            local_addr,
            stop,
            handoff: Arc::new(Mutex::new(Some(handoff_copy))),
            took_over,
            finished: Mutex::new(Some(alive_rx)),
        });
        let router = Router { inner };
        tokio::spawn(accept_loop(
            router.clone(),
            listener,
            workers,
            stop_rx,
            alive_tx,
        ));
        if let Some(path) = &router.inner.config.handoff_socket {
            let successor = router.clone();
            let rt = tokio::runtime::Handle::current();
            // The service's directory may not exist yet at a first start (the state file is
            // written at the first change); without it there would be no hand-off socket, and a
            // restart would fall back to SO_REUSEPORT, whose closing socket resets the
            // connections still queued on it. Without a hand-off socket a restart still works
            // through SO_REUSEPORT.
            if let Some(dir) = path.parent() {
                let _ = fs::create_dir_all(dir);
            }
            let _ = crate::handoff::serve(path, router.inner.handoff.clone(), move || {
                rt.spawn(async move { successor.shutdown().await });
            });
        }
        Ok(router)
    }

    /// Whether this router took its listening socket from a router that was running (an agent
    /// restart), rather than binding it.
    #[must_use]
    pub fn took_over(&self) -> bool {
        self.inner.took_over
    }

    /// Resolves once the router stopped accepting: after [`Router::shutdown`], or after a new
    /// router took its listener over. An agent waits for this to exit after a restart.
    pub async fn stopped(&self) {
        let mut rx = self.inner.stop.subscribe();
        let _ = rx.wait_for(|s| *s).await;
    }

    /// The address actually bound (useful with port 0).
    #[must_use]
    pub fn local_addr(&self) -> SocketAddr {
        self.inner.local_addr
    }

    #[must_use]
    pub fn state(&self) -> RoutingState {
        self.inner.state.borrow().clone()
    }

    /// Changes of the routing state.
    #[must_use]
    pub fn watch(&self) -> watch::Receiver<RoutingState> {
        self.inner.state.subscribe()
    }

    #[must_use]
    pub fn counters(&self) -> BTreeMap<Slot, SlotCounters> {
        self.inner
            .counters
            .iter()
            .map(|(slot, c)| (*slot, c.snapshot()))
            .collect()
    }

    fn change(
        &self,
        f: impl FnOnce(&mut RoutingState) -> Result<(), RouterError>,
    ) -> Result<RoutingState, RouterError> {
        let _serial = self
            .inner
            .change
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut next = self.inner.state.borrow().clone();
        f(&mut next)?;
        next.generation += 1;
        // Serve the change at once (a switch must not wait for the disk), then persist it; if it
        // cannot be persisted it is undone, so that what serves is what comes back after a restart.
        let previous = self.inner.state.send_replace(next.clone());
        if let Err(e) = save_state(&self.inner.config.state_file, &next) {
            self.inner.state.send_replace(previous);
            return Err(e);
        }
        Ok(next)
    }

    /// Points `slot` at a (new) process; it is unhealthy until [`Router::set_healthy`] says otherwise.
    /// Refused while the slot is a target, unless port and version are the ones it has (then
    /// nothing changes).
    pub fn set_upstream(
        &self,
        slot: Slot,
        port: u16,
        version: &str,
    ) -> Result<RoutingState, RouterError> {
        if let Some(up) = self.inner.state.borrow().upstreams.get(&slot)
            && up.port == port
            && up.version == version
        {
            // The same process again (an agent restart adopting it): keep what is known of it.
            return Ok(self.state());
        }
        self.change(|s| {
            if s.targets(slot) {
                return Err(RouterError::InUse { slot });
            }
            s.upstreams.insert(
                slot,
                Upstream {
                    port,
                    version: version.to_owned(),
                    healthy: false,
                },
            );
            Ok(())
        })
    }

    /// Forgets a slot that no longer receives traffic.
    pub fn remove_upstream(&self, slot: Slot) -> Result<RoutingState, RouterError> {
        self.change(|s| {
            if s.targets(slot) {
                return Err(RouterError::InUse { slot });
            }
            s.upstreams.remove(&slot);
            Ok(())
        })
    }

    /// Records the health checks' verdict on a slot. An unhealthy canary or segment slot stops
    /// getting its share at once (it goes to the active slot); the active slot keeps its traffic,
    /// since there is nowhere better: rolling back is the orchestrator's call.
    pub fn set_healthy(&self, slot: Slot, healthy: bool) -> Result<RoutingState, RouterError> {
        if self
            .inner
            .state
            .borrow()
            .upstreams
            .get(&slot)
            .map(|u| u.healthy)
            == Some(healthy)
        {
            return Ok(self.state());
        }
        self.change(|s| {
            let up = s
                .upstreams
                .get_mut(&slot)
                .ok_or(RouterError::NoUpstream { slot })?;
            up.healthy = healthy;
            Ok(())
        })
    }

    /// Sends all traffic to `slot` (ends any canary); refused unless the slot is healthy. The
    /// previous slot drains: see [`Router::drain`].
    pub fn switch_to(&self, slot: Slot) -> Result<RoutingState, RouterError> {
        self.change(|s| {
            if !s.upstreams.contains_key(&slot) {
                return Err(RouterError::NoUpstream { slot });
            }
            if !s.routable(slot) {
                return Err(RouterError::NotHealthy { slot });
            }
            s.active = Some(slot);
            s.canary = None;
            s.segments.retain(|seg| seg.slot == slot);
            Ok(())
        })
    }

    /// Sends `weight_percent` of new clients to `slot` (sticky through the cookie), the rest to the
    /// active slot; weight 0 ends the canary.
    pub fn set_canary(&self, slot: Slot, weight_percent: u8) -> Result<RoutingState, RouterError> {
        self.change(|s| {
            if weight_percent > 100 {
                return Err(RouterError::Weight(weight_percent));
            }
            if weight_percent == 0 {
                s.canary = None;
                return Ok(());
            }
            if s.active.is_none() || s.active == Some(slot) {
                return Err(RouterError::CanaryWithoutActive { slot });
            }
            if !s.upstreams.contains_key(&slot) {
                return Err(RouterError::NoUpstream { slot });
            }
            if !s.routable(slot) {
                return Err(RouterError::NotHealthy { slot });
            }
            s.canary = Some(Canary {
                slot,
                weight_percent,
            });
            Ok(())
        })
    }

    /// Replaces the segments; each slot named must be healthy.
    pub fn set_segments(&self, segments: Vec<Segment>) -> Result<RoutingState, RouterError> {
        self.change(|s| {
            if let Some(seg) = segments.iter().find(|seg| !s.routable(seg.slot)) {
                return Err(RouterError::NotHealthy { slot: seg.slot });
            }
            s.segments = segments;
            Ok(())
        })
    }

    /// Holds new requests (up to `pause_timeout`, then 503) until [`Router::resume`].
    pub fn pause(&self) -> Result<RoutingState, RouterError> {
        self.change(|s| {
            s.paused = true;
            Ok(())
        })
    }

    pub fn resume(&self) -> Result<RoutingState, RouterError> {
        self.change(|s| {
            s.paused = false;
            Ok(())
        })
    }

    /// Waits until `slot` has no request in flight, or the drain timeout passed (the stragglers
    /// get 504 then). Returns the requests still in flight at the end (0 for a clean drain).
    pub async fn drain(&self, slot: Slot) -> u64 {
        let deadline =
            Instant::now() + self.inner.config.drain_timeout + Duration::from_millis(100);
        let counters = &self.inner.counters[&slot];
        loop {
            let n = counters.in_flight.load(Ordering::Acquire);
            if n == 0 || Instant::now() >= deadline {
                return n;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    /// Keeps `slot`'s health in the routing state in step with a health monitor, until the monitor
    /// goes away. Only [`Health::Healthy`] counts as healthy.
    pub fn follow_health(
        &self,
        slot: Slot,
        mut health: watch::Receiver<HealthStatus>,
    ) -> tokio::task::JoinHandle<()> {
        let router = self.clone();
        tokio::spawn(async move {
            loop {
                // `Starting` decides nothing: a fresh upstream is unhealthy already, and one
                // restored after an agent restart keeps serving until its checks say otherwise.
                let verdict = match health.borrow_and_update().health {
                    Health::Starting => None,
                    Health::Healthy => Some(true),
                    Health::Unhealthy | Health::WrongVersion { .. } => Some(false),
                };
                // A slot replaced meanwhile has no upstream or a new one: nothing to follow.
                if let Some(healthy) = verdict
                    && router.set_healthy(slot, healthy).is_err()
                {
                    return;
                }
                if health.changed().await.is_err() {
                    return;
                }
            }
        })
    }

    /// Stops accepting, lets in-flight requests finish (up to the drain timeout) and returns. The
    /// routing state stays on disk for the next start.
    pub async fn shutdown(&self) {
        self.inner
            .handoff
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        self.inner.stop.send_replace(true);
        let rx = self
            .inner
            .finished
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(mut rx) = rx {
            let _ = tokio::time::timeout(self.inner.config.drain_timeout, rx.recv()).await;
        }
    }
}

/// The router's serving threads. Each runs a single-threaded runtime and serves the connections
/// handed to it, so that a request, its upstream exchange and its response stay on one thread: no
/// wake-up crosses threads and no task migrates, as in HAProxy's and nginx's per-thread event
/// loops. (On tokio's work-stealing runtime the client and upstream connection tasks of a request
/// often ran on different threads, and on a busy machine that hand-off is where the tail latency
/// came from.)
struct Workers {
    threads: Vec<Worker>,
    next: usize,
}

struct Worker {
    handle: tokio::runtime::Handle,
    /// Held by everything the worker serves (connections, upgraded tunnels) and by the
    /// dispatcher; the thread ends, and its runtime with it, when all of them have let go.
    alive: mpsc::Sender<()>,
}

impl Workers {
    fn start(n: usize) -> io::Result<Self> {
        let mut threads = Vec::with_capacity(n);
        for i in 0..n.max(1) {
            let rt = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            let handle = rt.handle().clone();
            let (alive, mut gone) = mpsc::channel::<()>(1);
            std::thread::Builder::new()
                .name(format!("cutover-router-{i}"))
                .spawn(move || {
                    rt.block_on(async move { while gone.recv().await.is_some() {} });
                })?;
            threads.push(Worker { handle, alive });
        }
        Ok(Self { threads, next: 0 })
    }

    /// The workers in turn: connections are spread evenly.
    fn next(&mut self) -> &Worker {
        let i = self.next % self.threads.len();
        self.next = self.next.wrapping_add(1);
        &self.threads[i]
    }
}

async fn accept_loop(
    router: Router,
    listener: TcpListener,
    mut workers: Workers,
    mut stop: watch::Receiver<bool>,
    alive: mpsc::Sender<()>,
) {
    loop {
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = stop.changed() => break,
        };
        let Ok((stream, peer)) = accepted else {
            // Out of file descriptors and the like: back off instead of spinning.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        let _ = stream.set_nodelay(true);
        // Re-registered with the worker's own reactor.
        let Ok(stream) = stream.into_std() else {
            continue;
        };
        let worker = workers.next();
        let router = router.clone();
        let stop = stop.clone();
        let alive = alive.clone();
        let keep = worker.alive.clone();
        worker.handle.spawn(async move {
            if let Ok(stream) = tokio::net::TcpStream::from_std(stream) {
                serve_connection(router, stream, peer, stop, keep).await;
            }
            drop(alive);
        });
    }
    // Closed before `alive` goes: whoever waits for the end finds the address released.
    drop(listener);
    drop(workers);
    drop(alive);
}

async fn serve_connection(
    router: Router,
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    mut stop: watch::Receiver<bool>,
    keep: mpsc::Sender<()>,
) {
    let conn_ctx = Arc::new(ConnCtx::new(peer, keep));
    let svc = hyper::service::service_fn(move |req| {
        let router = router.clone();
        let conn_ctx = conn_ctx.clone();
        async move { Ok::<_, std::convert::Infallible>(router.handle(req, &conn_ctx).await) }
    });
    let builder = hyper_util::server::conn::auto::Builder::new(TokioExecutor::new());
    let conn = builder.serve_connection_with_upgrades(TokioIo::new(stream), svc);
    tokio::pin!(conn);
    tokio::select! {
        _ = conn.as_mut() => {}
        _ = stop.changed() => {
            // Busy HTTP/1 clients get `Connection: close` on their next response and
            // reconnect (to the new router, when this is a hand-off); closing their idle
            // keep-alive connection now would race with a request already on the wire.
            if tokio::time::timeout(HANDOFF_GRACE, conn.as_mut()).await.is_err() {
                conn.as_mut().graceful_shutdown();
                let _ = conn.await;
            }
        }
    }
}

/// What a client connection keeps between its requests: its peer (the `X-Forwarded-For` value is
/// formatted once) and its own upstream connection. HTTP/1 requests of one client connection come
/// one after the other, so one upstream connection serves them all without the shared pool's
/// lock and checkout; a request that finds it busy (or HTTP/2, upgrades) uses the shared pool.
struct ConnCtx {
    peer: SocketAddr,
    peer_ip: Option<HeaderValue>,
    upstream: Mutex<Option<OwnUpstream>>,
    /// Keeps the serving thread up for as long as this connection (or its tunnel) lives.
    keep: mpsc::Sender<()>,
}

struct OwnUpstream {
    port: u16,
    sender: hyper::client::conn::http1::SendRequest<Incoming>,
}

impl ConnCtx {
    fn new(peer: SocketAddr, keep: mpsc::Sender<()>) -> Self {
        Self {
            peer,
            peer_ip: HeaderValue::from_str(&peer.ip().to_string()).ok(),
            upstream: Mutex::new(None),
            keep,
        }
    }
}

/// How long connecting to a slot may take before the request gets 502.
const UPSTREAM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

async fn connect_upstream(
    addr: SocketAddr,
) -> Result<hyper::client::conn::http1::SendRequest<Incoming>, BoxError> {
    let stream = tokio::time::timeout(
        UPSTREAM_CONNECT_TIMEOUT,
        tokio::net::TcpStream::connect(addr),
    )
    .await
    .map_err(|_| "connecting to the slot timed out")??;
    stream.set_nodelay(true)?;
    let (sender, conn) = hyper::client::conn::http1::Builder::new()
        .handshake(TokioIo::new(stream))
        .await?;
    tokio::spawn(async move {
        let _ = conn.await;
    });
    Ok(sender)
}

/// After a shutdown starts, how long a connection may go on serving (with `Connection: close`)
/// before it is closed.
const HANDOFF_GRACE: Duration = Duration::from_millis(1000);

const X_FORWARDED_FOR: HeaderName = HeaderName::from_static("x-forwarded-for");
const X_FORWARDED_HOST: HeaderName = HeaderName::from_static("x-forwarded-host");
const X_FORWARDED_PROTO: HeaderName = HeaderName::from_static("x-forwarded-proto");
const X_CUTOVER_SLOT: HeaderName = HeaderName::from_static("x-cutover-slot");

/// Headers that belong to one hop, not to the request (RFC 9110 §7.6.1).
const HOP_BY_HOP: [&str; 8] = [
    "connection",
    "keep-alive",
    "proxy-connection",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailer",
    "transfer-encoding",
];

fn strip_hop_by_hop(headers: &mut HeaderMap) {
    let named: Vec<HeaderName> = headers
        .get_all(header::CONNECTION)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .filter_map(|n| HeaderName::try_from(n.trim()).ok())
        .collect();
    for name in named {
        headers.remove(name);
    }
    for name in HOP_BY_HOP {
        headers.remove(name);
    }
    headers.remove(header::UPGRADE);
}

fn cookie<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|kv| kv.trim().split_once('='))
        .find(|(k, _)| *k == name)
        .map(|(_, v)| v)
}

/// Where a request goes, and whether the client gets a (new) sticky cookie.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Pick {
    slot: Slot,
    set_cookie: bool,
}

fn pick(
    state: &RoutingState,
    headers: &HeaderMap,
    cookie_name: &str,
    assigned: &AtomicU64,
) -> Option<Pick> {
    for seg in &state.segments {
        let hit = match &seg.when {
            Match::Header { name, value } => headers
                .get(name.as_str())
                .is_some_and(|v| v.as_bytes() == value.as_bytes()),
            Match::Cookie { name, value } => cookie(headers, name) == Some(value.as_str()),
        };
        if hit && state.routable(seg.slot) {
            return Some(Pick {
                slot: seg.slot,
                set_cookie: false,
            });
        }
    }
    let active = state.active?;
    let Some(canary) = state
        .canary
        .filter(|c| c.weight_percent > 0 && state.routable(c.slot))
    else {
        return Some(Pick {
            slot: active,
            set_cookie: false,
        });
    };
    if let Some(sticky) = cookie(headers, cookie_name).and_then(Slot::parse)
        && (sticky == active || sticky == canary.slot)
    {
        return Some(Pick {
            slot: sticky,
            set_cookie: false,
        });
    }
    let n = assigned.fetch_add(1, Ordering::Relaxed) + 1;
    let w = u64::from(canary.weight_percent);
    // Client n goes to the canary when the running share crosses a whole client: exact and even.
    let to_canary = n * w / 100 > (n - 1) * w / 100;
    Some(Pick {
        slot: if to_canary { canary.slot } else { active },
        set_cookie: true,
    })
}

/// Counts a request as in flight on its slot for as long as it lives (response body included).
struct InFlight {
    router: Router,
    slot: Slot,
}

impl InFlight {
    fn new(router: &Router, slot: Slot) -> Self {
        router.inner.counters[&slot]
            .in_flight
            .fetch_add(1, Ordering::AcqRel);
        Self {
            router: router.clone(),
            slot,
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        self.router.inner.counters[&self.slot]
            .in_flight
            .fetch_sub(1, Ordering::AcqRel);
    }
}

/// The upstream's response body, holding its in-flight mark until it is done.
struct Tracked {
    body: Incoming,
    in_flight: InFlight,
    /// `None` once it fired.
    deadline: Option<Pin<Box<dyn Future<Output = ()> + Send + Sync>>>,
}

impl hyper::body::Body for Tracked {
    type Data = Bytes;
    type Error = BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<Frame<Bytes>, BoxError>>> {
        if let Some(deadline) = self.deadline.as_mut()
            && deadline.as_mut().poll(cx).is_ready()
        {
            self.deadline = None;
            let inner = &self.in_flight.router.inner;
            inner.counters[&self.in_flight.slot]
                .drain_timeouts
                .fetch_add(1, Ordering::Relaxed);
            return Poll::Ready(Some(Err(
                "the slot drained before the response was complete".into(),
            )));
        }
        Pin::new(&mut self.body)
            .poll_frame(cx)
            .map_err(BoxError::from)
    }

    fn is_end_stream(&self) -> bool {
        self.body.is_end_stream()
    }

    fn size_hint(&self) -> SizeHint {
        self.body.size_hint()
    }
}

fn is_upgrade(req: &Request<Incoming>) -> bool {
    req.headers().contains_key(header::UPGRADE)
        && req
            .headers()
            .get_all(header::CONNECTION)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .any(|t| t.trim().eq_ignore_ascii_case("upgrade"))
}

impl Router {
    /// Sends `req` (origin-form) to the slot at `port` over the client connection's own upstream
    /// connection when it is free, else through the shared pool.
    async fn forward(
        &self,
        conn: &ConnCtx,
        port: u16,
        mut req: Request<Incoming>,
        own: bool,
    ) -> Result<Response<Incoming>, BoxError> {
        let addr = SocketAddr::new(self.inner.config.upstream_host, port);
        if own {
            let cached = conn
                .upstream
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            let sender = match cached {
                Some(c) if c.port == port && c.sender.is_ready() => Some(c.sender),
                Some(c) if c.port == port && !c.sender.is_closed() => {
                    // Still finishing its previous response: kept, and this one goes by the pool.
                    *conn
                        .upstream
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(c);
                    None
                }
                _ => Some(connect_upstream(addr).await?),
            };
            if let Some(mut sender) = sender {
                let resp = sender.send_request(req).await?;
                *conn
                    .upstream
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner) =
                    Some(OwnUpstream { port, sender });
                return Ok(resp);
            }
        }
        let path = req.uri().path_and_query().map_or("/", |pq| pq.as_str());
        let uri = format!("http://{addr}{path}").parse::<Uri>()?;
        *req.uri_mut() = uri;
        Ok(self.inner.client.request(req).await?)
    }

    async fn handle(&self, mut req: Request<Incoming>, conn: &ConnCtx) -> Response<ProxyBody> {
        let inner = &self.inner;
        let mut state_rx = inner.state.subscribe();
        if state_rx.borrow().paused {
            let resumed =
                tokio::time::timeout(inner.config.pause_timeout, state_rx.wait_for(|s| !s.paused))
                    .await;
            if !matches!(resumed, Ok(Ok(_))) {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "paused for maintenance\n");
            }
        }
        let (picked, port) = {
            let state = state_rx.borrow_and_update();
            let Some(p) = pick(
                &state,
                req.headers(),
                &inner.config.cookie_name,
                &inner.assigned,
            ) else {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "no active slot\n");
            };
            let Some(up) = state.upstreams.get(&p.slot) else {
                return plain(StatusCode::SERVICE_UNAVAILABLE, "no active slot\n");
            };
            (p, up.port)
        };
        let slot = picked.slot;
        let counters = &inner.counters[&slot];
        counters.requests.fetch_add(1, Ordering::Relaxed);
        let in_flight = InFlight::new(self, slot);
        let started = Instant::now();

        let request_version = req.version();
        let upgrade = is_upgrade(&req);
        // HTTP/2 streams of one connection run side by side, and an upgraded connection leaves
        // HTTP: both go through the shared pool.
        let own = request_version < Version::HTTP_2 && !upgrade;
        let upgrade_value = req.headers().get(header::UPGRADE).cloned();
        let client_upgrade = upgrade.then(|| hyper::upgrade::on(&mut req));
        let host = req.headers().get(header::HOST).cloned().or_else(|| {
            req.uri()
                .authority()
                .and_then(|a| HeaderValue::from_str(a.as_str()).ok())
        });
        // Origin-form for the slot; the pool's client makes it absolute itself.
        if req.uri().scheme().is_some() || req.uri().authority().is_some() {
            let Ok(uri) = req
                .uri()
                .path_and_query()
                .map_or("/", |pq| pq.as_str())
                .parse::<Uri>()
            else {
                counters.record(StatusCode::BAD_REQUEST, started.elapsed());
                return plain(StatusCode::BAD_REQUEST, "bad request target\n");
            };
            *req.uri_mut() = uri;
        }
        *req.version_mut() = Version::HTTP_11;
        let headers = req.headers_mut();
        strip_hop_by_hop(headers);
        if let (true, Some(value)) = (upgrade, upgrade_value) {
            headers.insert(header::CONNECTION, HeaderValue::from_static("upgrade"));
            headers.insert(header::UPGRADE, value);
        }
        if let Some(host) = host {
            headers.insert(header::HOST, host.clone());
            headers.insert(X_FORWARDED_HOST, host);
        }
        match headers.get(X_FORWARDED_FOR).map(HeaderValue::to_str) {
            Some(Ok(prior)) => {
                let xff = format!("{prior}, {}", conn.peer.ip());
                if let Ok(v) = HeaderValue::from_str(&xff) {
                    headers.insert(X_FORWARDED_FOR, v);
                }
            }
            _ => {
                if let Some(ip) = &conn.peer_ip {
                    headers.insert(X_FORWARDED_FOR, ip.clone());
                }
            }
        }
        headers.insert(X_FORWARDED_PROTO, HeaderValue::from_static("http"));

        // A slot that stops being a target gets drain_timeout for what it still has in flight;
        // the same deadline follows the response body.
        let mut deadline = drain_deadline(inner, state_rx, slot);
        let result = tokio::select! {
            // The response is the common case: polled first, without the random branch order.
            biased;
            r = self.forward(conn, port, req, own) => Some(r),
            () = &mut deadline => None,
        };
        let mut resp = match result {
            Some(Ok(resp)) => resp,
            Some(Err(_)) => {
                counters.upstream_errors.fetch_add(1, Ordering::Relaxed);
                counters.record(StatusCode::BAD_GATEWAY, started.elapsed());
                return plain(StatusCode::BAD_GATEWAY, "upstream unavailable\n");
            }
            None => {
                counters.drain_timeouts.fetch_add(1, Ordering::Relaxed);
                counters.record(StatusCode::GATEWAY_TIMEOUT, started.elapsed());
                return plain(
                    StatusCode::GATEWAY_TIMEOUT,
                    "upstream drained before it answered\n",
                );
            }
        };
        counters.record(resp.status(), started.elapsed());

        if resp.status() == StatusCode::SWITCHING_PROTOCOLS
            && let Some(client_upgrade) = client_upgrade
        {
            let upstream_upgrade = hyper::upgrade::on(&mut resp);
            let keep = conn.keep.clone();
            tokio::spawn(async move {
                // The tunnel counts as in flight on its slot for as long as it is open.
                let _in_flight = in_flight;
                let _keep = keep;
                if let (Ok(client), Ok(upstream)) = (client_upgrade.await, upstream_upgrade.await) {
                    let _ = tokio::io::copy_bidirectional(
                        &mut TokioIo::new(client),
                        &mut TokioIo::new(upstream),
                    )
                    .await;
                }
            });
            let (parts, _) = resp.into_parts();
            return Response::from_parts(
                parts,
                http_body_util::Empty::new()
                    .map_err(|never| match never {})
                    .boxed(),
            );
        }
        strip_hop_by_hop(resp.headers_mut());
        if picked.set_cookie {
            let cookie = format!(
                "{}={}; Path=/; HttpOnly; SameSite=Lax",
                inner.config.cookie_name, slot
            );
            if let Ok(v) = HeaderValue::from_str(&cookie) {
                resp.headers_mut().append(header::SET_COOKIE, v);
            }
        }
        resp.headers_mut()
            .insert(X_CUTOVER_SLOT, HeaderValue::from_static(slot.as_str()));
        if *inner.stop.borrow() && request_version < Version::HTTP_2 {
            resp.headers_mut()
                .insert(header::CONNECTION, HeaderValue::from_static("close"));
        }
        let (parts, body) = resp.into_parts();
        Response::from_parts(
            parts,
            Tracked {
                body,
                in_flight,
                deadline: Some(deadline),
            }
            .boxed(),
        )
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn state(canary: u8) -> RoutingState {
        let mut s = RoutingState::default();
        for (slot, port) in [(Slot::Blue, 1), (Slot::Green, 2)] {
            s.upstreams.insert(
                slot,
                Upstream {
                    port,
                    version: "v".into(),
                    healthy: true,
                },
            );
        }
        s.active = Some(Slot::Blue);
        if canary > 0 {
            s.canary = Some(Canary {
                slot: Slot::Green,
                weight_percent: canary,
            });
        }
        s
    }

    #[test]
    fn canary_split_is_exact() {
        let s = state(20);
        let n = AtomicU64::new(0);
        let picks: Vec<Slot> = (0..100)
            .map(|_| pick(&s, &HeaderMap::new(), "c", &n).unwrap().slot)
            .collect();
        assert_eq!(picks.iter().filter(|p| **p == Slot::Green).count(), 20);
        assert_eq!(
            &picks[..5],
            [Slot::Blue, Slot::Blue, Slot::Blue, Slot::Blue, Slot::Green]
        );
    }

    #[test]
    fn sticky_cookie_wins_while_its_slot_is_a_target() {
        let mut s = state(50);
        let n = AtomicU64::new(0);
        let mut h = HeaderMap::new();
        h.insert(header::COOKIE, HeaderValue::from_static("a=b; c=green"));
        assert_eq!(
            pick(&s, &h, "c", &n),
            Some(Pick {
                slot: Slot::Green,
                set_cookie: false
            })
        );
        // The canary is unhealthy: its clients go back to the active slot.
        s.upstreams.get_mut(&Slot::Green).unwrap().healthy = false;
        assert_eq!(
            pick(&s, &h, "c", &n),
            Some(Pick {
                slot: Slot::Blue,
                set_cookie: false
            })
        );
    }

    #[test]
    fn segments_come_first() {
        let mut s = state(0);
        s.segments.push(Segment {
            when: Match::Header {
                name: "x-beta".into(),
                value: "1".into(),
            },
            slot: Slot::Green,
        });
        let n = AtomicU64::new(0);
        let mut h = HeaderMap::new();
        assert_eq!(pick(&s, &h, "c", &n).unwrap().slot, Slot::Blue);
        h.insert("x-beta", HeaderValue::from_static("1"));
        assert_eq!(pick(&s, &h, "c", &n).unwrap().slot, Slot::Green);
    }

    proptest::proptest! {
        #[test]
        fn any_cookie_header_picks_a_target_slot(raw in "[ -~]{0,200}") {
            let s = state(30);
            let n = AtomicU64::new(0);
            let mut h = HeaderMap::new();
            if let Ok(v) = HeaderValue::from_str(&raw) {
                h.insert(header::COOKIE, v);
            }
            let p = pick(&s, &h, "cutover_slot", &n).unwrap();
            proptest::prop_assert!(s.targets(p.slot));
            // A client with a valid sticky cookie is never re-assigned.
            if let Some(sticky) = cookie(&h, "cutover_slot").and_then(Slot::parse) {
                proptest::prop_assert_eq!(p, Pick { slot: sticky, set_cookie: false });
            }
        }
    }

    #[test]
    fn hop_by_hop_headers_go() {
        let mut h = HeaderMap::new();
        h.insert(
            header::CONNECTION,
            HeaderValue::from_static("keep-alive, x-secret-hop"),
        );
        h.insert("x-secret-hop", HeaderValue::from_static("1"));
        h.insert("keep-alive", HeaderValue::from_static("timeout=5"));
        h.insert("x-kept", HeaderValue::from_static("1"));
        strip_hop_by_hop(&mut h);
        assert_eq!(h.len(), 1);
        assert!(h.contains_key("x-kept"));
    }

    #[test]
    fn quantiles_from_buckets() {
        let c = Counters::default();
        for us in [100, 200, 300, 4_000, 2_000_000] {
            c.record(StatusCode::OK, Duration::from_micros(us));
        }
        let snap = c.snapshot();
        assert_eq!(snap.latency_quantile_us(0.5), Some(500));
        assert_eq!(snap.latency_quantile_us(0.99), Some(2_500_000));
        assert_eq!(snap.status_classes, [0, 5, 0, 0, 0]);
    }

    #[test]
    fn state_survives_a_round_trip_and_corruption_is_named() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("router.json");
        assert_eq!(load_state(&path).unwrap(), RoutingState::default());
        let s = state(10);
        save_state(&path, &s).unwrap();
        assert_eq!(load_state(&path).unwrap(), s);
        fs::write(&path, "{\n  \"generation\": x").unwrap();
        let err = load_state(&path).unwrap_err().to_string();
        assert!(err.contains("line 2, column 17"), "{err}");
    }
}
