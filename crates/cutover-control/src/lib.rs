//! The control plane's side of the agent protocol (`/agent/v1/…`), served from the store.
//!
//! - `POST /agent/v1/register`: the agent says who it is; its version is recorded (audited).
//! - `GET /agent/v1/poll?generation=G`: the host's current assignment, at once when its generation
//!   differs from `G`, else when one is put ([`ControlState::put_assignment`] wakes the waiting
//!   polls) or after the long-poll timeout. The store is re-read at a short interval as well,
//!   because another process (another CLI run on the same database) may put the assignment.
//! - `POST /agent/v1/report`: the observed state becomes an observation (audited).
//! - `GET /agent/v1/artifacts/sha256/<digest>`: an artifact from the content-addressed directory.
//! - `GET /agent/v1/logs/requests`, `POST /agent/v1/logs/{id}`: log reads relayed to the agent
//!   (a long poll of their own), and `GET /agent/v1/logs/read?request=SEQ` for the operator who
//!   asked; see [`logs`].
//!
//! Every request carries the agent's name ([`AGENT_HEADER`]) and its bearer token; tokens are
//! stored as sha256 hashes and compared in constant time. A refused token answers 401 and leaves an
//! audit event (`agent.auth_failed`) and a log line, neither of which contains the token.

use std::future::Future;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use chrono::Utc;
use cutover_agent::protocol::{Assignment, Register, Registered, Report};
use cutover_store::{Audit, Change, NewObservation, Store, StoreError};
use serde::Deserialize;
use serde_json::json;
use sha2::{Digest as _, Sha256};
use subtle::ConstantTimeEq as _;
use tokio::sync::watch;

pub use cutover_agent::client::AGENT_HEADER;
pub use logs::{LOG_READ_ACTION, LogError, LogQuery, LogReader, authorize_log_read};

pub mod logs;

/// The prefix of a stored token hash.
const HASH_PREFIX: &str = "sha256:";

/// How a token is stored: `sha256:<hex>`. Tokens are long random strings, so a plain hash (no
/// salt, no stretching) is enough: there is nothing to guess from a dictionary.
#[must_use]
pub fn hash_token(token: &str) -> String {
    format!(
        "{HASH_PREFIX}{}",
        hex::encode(Sha256::digest(token.as_bytes()))
    )
}

/// Whether `token` hashes to `stored`, compared in constant time.
#[must_use]
pub fn verify_token(token: &str, stored: &str) -> bool {
    let computed = hash_token(token);
    bool::from(computed.as_bytes().ct_eq(stored.as_bytes()))
}

/// A new random agent token (32 bytes from the OS, hex).
pub fn new_token() -> std::io::Result<String> {
    let mut bytes = [0u8; 32];
    std::io::Read::read_exact(&mut std::fs::File::open("/dev/urandom")?, &mut bytes)?;
    Ok(hex::encode(bytes))
}

/// Registers the host `name` (or replaces its token), keeping only the token's hash; audited as
/// `host.add` by `actor` (the payload never holds the token).
pub async fn add_host(
    store: &dyn Store,
    name: &str,
    token: &str,
    actor: &str,
) -> Result<(), StoreError> {
    let agent_version = store.get_host(name).await?.and_then(|h| h.agent_version);
    store
        .apply_one(
            Change::UpsertHost {
                name: name.to_owned(),
                token_hash: Some(hash_token(token)),
                agent_version,
                at: Utc::now(),
            },
            &Audit::new(actor, "host.add", format!("host:{name}"), json!({})),
        )
        .await?;
    Ok(())
}

/// Why the control plane could not serve.
#[derive(Debug, thiserror::Error)]
pub enum ControlError {
    #[error("cannot listen on the unix socket {}: {source}", path.display())]
    Bind {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "another control plane answers on {}; hint: stop it, or use another socket",
        path.display()
    )]
    InUse { path: PathBuf },
    #[error("serving the agent protocol failed: {0}")]
    Serve(#[source] std::io::Error),
    #[error("cannot listen on {addr}: {source}")]
    BindTcp {
        addr: std::net::SocketAddr,
        #[source]
        source: std::io::Error,
    },
    #[error("cannot use {} for TLS: {what}; hint: {hint}", path.display())]
    Tls {
        path: PathBuf,
        what: String,
        hint: &'static str,
    },
}

struct Inner {
    store: Arc<dyn Store>,
    artifacts_dir: PathBuf,
    poll_timeout: Duration,
    recheck: Duration,
    changed: watch::Sender<u64>,
    /// Bumped after every stored report, so that an orchestrator waits on reports, not a timer.
    reports: watch::Sender<u64>,
    closing: AtomicBool,
    logs: logs::LogBroker,
}

/// What the endpoints share: the store, where artifacts are, and the poll wake-up.
#[derive(Clone)]
pub struct ControlState {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for ControlState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ControlState")
            .field("store", &self.inner.store.location())
            .field("artifacts_dir", &self.inner.artifacts_dir)
            .field("poll_timeout", &self.inner.poll_timeout)
            .finish_non_exhaustive()
    }
}

impl ControlState {
    /// Serves `store`, and artifacts from `artifacts_dir` (`.cutover/artifacts/sha256`: files
    /// named by their digest). Long polls wait up to 30 s, re-reading the store every second.
    #[must_use]
    pub fn new(store: Arc<dyn Store>, artifacts_dir: impl Into<PathBuf>) -> Self {
        Self::with_timing(
            store,
            artifacts_dir,
            Duration::from_secs(30),
            Duration::from_secs(1),
        )
    }

    /// As [`ControlState::new`] with the long-poll timeout and the store re-check interval.
    #[must_use]
    pub fn with_timing(
        store: Arc<dyn Store>,
        artifacts_dir: impl Into<PathBuf>,
        poll_timeout: Duration,
        recheck: Duration,
    ) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                artifacts_dir: artifacts_dir.into(),
                poll_timeout,
                recheck,
                changed: watch::channel(0).0,
                reports: watch::channel(0).0,
                closing: AtomicBool::new(false),
                logs: logs::LogBroker::default(),
            }),
        }
    }

    #[must_use]
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.inner.store
    }

    /// Wakes the waiting polls (they re-read the store). Call after writing assignments other
    /// than through [`ControlState::put_assignment`].
    pub fn notify_assignments_changed(&self) {
        self.inner.changed.send_modify(|n| *n = n.wrapping_add(1));
    }

    /// A receiver that changes after every report stored through this state (reports received by
    /// another process are not seen: re-read the store at an interval as well).
    #[must_use]
    pub fn reports(&self) -> watch::Receiver<u64> {
        self.inner.reports.subscribe()
    }

    /// Makes the waiting polls answer now, for a quick graceful shutdown.
    pub fn close(&self) {
        self.inner.closing.store(true, Ordering::SeqCst);
        self.notify_assignments_changed();
    }

    /// Puts `assignment` as the desired state of `host` (its generation must be above the current
    /// one: Conflict otherwise), audited as `assignment.put` by `actor`, and wakes that host's poll.
    pub async fn put_assignment(
        &self,
        host: &str,
        assignment: &Assignment,
        actor: &str,
    ) -> Result<(), StoreError> {
        let generation =
            i64::try_from(assignment.generation).map_err(|_| StoreError::Conflict {
                what: format!(
                    "assignment generation {} of host {host} is too large",
                    assignment.generation
                ),
            })?;
        let desired = serde_json::to_value(assignment).expect("an Assignment always serializes");
        self.inner
            .store
            .apply_one(
                Change::PutAssignment(cutover_store::Assignment {
                    host: host.to_owned(),
                    generation,
                    desired,
                    created_at: Utc::now(),
                }),
                &Audit::new(
                    actor,
                    "assignment.put",
                    format!("host:{host}"),
                    json!({ "generation": generation }),
                ),
            )
            .await?;
        self.notify_assignments_changed();
        Ok(())
    }

    /// The host's current desired state in protocol form (generation 0, nothing, when none).
    async fn current(&self, host: &str) -> Result<Assignment, ApiError> {
        let Some(stored) = self
            .inner
            .store
            .current_assignment(host)
            .await
            .map_err(ApiError::store)?
        else {
            return Ok(Assignment {
                generation: 0,
                services: Default::default(),
            });
        };
        let mut a: Assignment = serde_json::from_value(stored.desired).map_err(|e| {
            ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!(
                    "assignment {} of host {host} in the store is not an agent v1 assignment: {e}",
                    stored.generation
                ),
            )
        })?;
        a.generation = u64::try_from(stored.generation).unwrap_or(0);
        Ok(a)
    }
}

/// An error answer: a status and a JSON `{"error": …}`.
#[derive(Debug)]
struct ApiError {
    status: StatusCode,
    message: String,
}

impl ApiError {
    fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Self {
            status,
            message: message.into(),
        }
    }
    fn store(e: StoreError) -> Self {
        tracing::error!(error = %e, "store error serving the agent protocol");
        Self::new(StatusCode::INTERNAL_SERVER_ERROR, e.to_string())
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        (self.status, Json(json!({ "error": self.message }))).into_response()
    }
}

/// The agent name as it may appear in logs and audit events (it comes from the request).
fn printable_name(name: &str) -> String {
    name.chars().filter(|c| !c.is_control()).take(128).collect()
}

async fn authenticate(
    state: &ControlState,
    headers: &HeaderMap,
    endpoint: &str,
) -> Result<String, ApiError> {
    let name = headers
        .get(AGENT_HEADER)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default();
    let token = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let stored = if name.is_empty() {
        None
    } else {
        state
            .inner
            .store
            .get_host(name)
            .await
            .map_err(ApiError::store)?
            .map(|h| h.token_hash)
    };
    let reason = match &stored {
        Some(Some(hash)) if !token.is_empty() && verify_token(token, hash) => {
            return Ok(name.to_owned());
        }
        _ if name.is_empty() => "no agent name",
        None => "unknown host",
        Some(None) => "the host has no token",
        Some(Some(_)) if token.is_empty() => "no bearer token",
        Some(Some(_)) => "the token does not match",
    };
    let who = printable_name(name);
    tracing::warn!(host = %who, endpoint, reason, "agent authentication refused");
    let audit = Audit::new(
        "anonymous",
        "agent.auth_failed",
        format!("host:{who}"),
        json!({ "endpoint": endpoint, "reason": reason }),
    );
    if let Err(e) = state.inner.store.append_audit(&audit).await {
        tracing::error!(error = %e, "cannot record a refused agent authentication");
    }
    Err(ApiError::new(
        StatusCode::UNAUTHORIZED,
        "the agent name and token do not match a registered host",
    ))
}

async fn touch(state: &ControlState, host: &str, agent_version: Option<&str>) {
    if let Err(e) = state
        .inner
        .store
        .touch_host(host, Utc::now(), agent_version)
        .await
    {
        tracing::warn!(host, error = %e, "cannot record an agent heartbeat");
    }
}

async fn register(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Json(req): Json<Register>,
) -> Result<Json<Registered>, ApiError> {
    let host = authenticate(&state, &headers, "register").await?;
    if req.name != host {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the body registers {:?} but the request is authenticated as {host:?}",
                printable_name(&req.name)
            ),
        ));
    }
    let store = &state.inner.store;
    let token_hash = store
        .get_host(&host)
        .await
        .map_err(ApiError::store)?
        .and_then(|h| h.token_hash);
    store
        .apply_one(
            Change::UpsertHost {
                name: host.clone(),
                token_hash,
                agent_version: Some(req.agent_version.clone()),
                at: Utc::now(),
            },
            &Audit::new(
                format!("agent:{host}"),
                "agent.register",
                format!("host:{host}"),
                json!({ "agent_version": req.agent_version, "hostname": printable_name(&req.hostname) }),
            ),
        )
        .await
        .map_err(ApiError::store)?;
    touch(&state, &host, Some(&req.agent_version)).await;
    let current = state.current(&host).await?;
    Ok(Json(Registered {
        generation: current.generation,
        poll_timeout: state.inner.poll_timeout,
    }))
}

#[derive(Debug, Deserialize)]
struct PollQuery {
    #[serde(default)]
    generation: u64,
}

async fn poll(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Query(q): Query<PollQuery>,
) -> Result<Json<Assignment>, ApiError> {
    let host = authenticate(&state, &headers, "poll").await?;
    touch(&state, &host, None).await;
    let deadline = tokio::time::Instant::now() + state.inner.poll_timeout;
    // Subscribed before reading the store, so a put in between is not missed.
    let mut changed = state.inner.changed.subscribe();
    loop {
        let current = state.current(&host).await?;
        let now = tokio::time::Instant::now();
        if current.generation != q.generation
            || now >= deadline
            || state.inner.closing.load(Ordering::SeqCst)
        {
            return Ok(Json(current));
        }
        let wait = state.inner.recheck.min(deadline - now);
        let _ = tokio::time::timeout(wait, changed.changed()).await;
    }
}

async fn report(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Json(mut report): Json<Report>,
) -> Result<StatusCode, ApiError> {
    let host = authenticate(&state, &headers, "report").await?;
    if report.name != host {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            format!(
                "the report is for {:?} but the request is authenticated as {host:?}",
                printable_name(&report.name)
            ),
        ));
    }
    let generation = i64::try_from(report.generation).map_err(|_| {
        ApiError::new(
            StatusCode::BAD_REQUEST,
            format!("report generation {} is out of range", report.generation),
        )
    })?;
    // The evidence is kept apart from the state it supports: {service: {slot: [checks]}}.
    let mut evidence = serde_json::Map::new();
    for (name, svc) in &mut report.services {
        let mut slots = serde_json::Map::new();
        for (slot, observed) in &mut svc.slots {
            let checks = std::mem::take(&mut observed.evidence);
            slots.insert(
                slot.to_string(),
                serde_json::to_value(checks).expect("evidence always serializes"),
            );
        }
        evidence.insert(name.clone(), serde_json::Value::Object(slots));
    }
    let observed = json!({ "at": report.at, "services": report.services });
    state
        .inner
        .store
        .apply_one(
            Change::InsertObservation(NewObservation {
                host: host.clone(),
                generation,
                observed,
                evidence: serde_json::Value::Object(evidence),
                at: Utc::now(),
            }),
            &Audit::new(
                format!("agent:{host}"),
                "agent.report",
                format!("host:{host}"),
                json!({ "generation": generation }),
            ),
        )
        .await
        .map_err(ApiError::store)?;
    state.inner.reports.send_modify(|n| *n = n.wrapping_add(1));
    touch(&state, &host, None).await;
    Ok(StatusCode::NO_CONTENT)
}

fn is_sha256_hex(s: &str) -> bool {
    s.len() == 64
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

async fn artifact(
    State(state): State<ControlState>,
    headers: HeaderMap,
    UrlPath(digest): UrlPath<String>,
) -> Result<Response, ApiError> {
    authenticate(&state, &headers, "artifact").await?;
    if !is_sha256_hex(&digest) {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "expected a sha256 digest: 64 lowercase hexadecimal digits",
        ));
    }
    // The digest is plain hex, so the path cannot leave the directory.
    let path = state.inner.artifacts_dir.join(&digest);
    match tokio::fs::File::open(&path).await {
        Ok(file) => {
            let mut headers = vec![(header::CONTENT_TYPE, "application/zstd".to_owned())];
            if let Ok(meta) = file.metadata().await {
                headers.push((header::CONTENT_LENGTH, meta.len().to_string()));
            }
            let body = Body::from_stream(tokio_util::io::ReaderStream::new(file));
            let mut resp = body.into_response();
            for (name, value) in headers {
                if let Ok(value) = value.parse() {
                    resp.headers_mut().insert(name, value);
                }
            }
            Ok(resp)
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(ApiError::new(
            StatusCode::NOT_FOUND,
            format!("no artifact with sha256 {digest}"),
        )),
        Err(e) => {
            tracing::error!(path = %path.display(), error = %e, "cannot read an artifact");
            Err(ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                format!("cannot read the artifact with sha256 {digest}"),
            ))
        }
    }
}

/// The agent protocol's routes.
pub fn router(state: ControlState) -> axum::Router {
    axum::Router::new()
        .route("/agent/v1/register", post(register))
        .route("/agent/v1/poll", get(poll))
        .route("/agent/v1/report", post(report))
        .route("/agent/v1/artifacts/sha256/{digest}", get(artifact))
        .route("/agent/v1/logs/requests", get(logs::requests))
        .route("/agent/v1/logs/read", get(logs::read))
        .route("/agent/v1/logs/{id}", post(logs::chunk))
        .with_state(state)
}

/// Binds the unix socket `path` (owner-only), replacing a stale socket file left by a crash but
/// refusing one a live control plane answers on.
pub async fn bind_unix(path: &Path) -> Result<tokio::net::UnixListener, ControlError> {
    if path.exists() {
        if tokio::net::UnixStream::connect(path).await.is_ok() {
            return Err(ControlError::InUse {
                path: path.to_owned(),
            });
        }
        let _ = std::fs::remove_file(path);
    }
    let bind_err = |source| ControlError::Bind {
        path: path.to_owned(),
        source,
    };
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).map_err(bind_err)?;
    }
    let listener = tokio::net::UnixListener::bind(path).map_err(bind_err)?;
    use std::os::unix::fs::PermissionsExt as _;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o600)).map_err(bind_err)?;
    Ok(listener)
}

/// Serves the agent protocol on the unix socket `path` until the process ends.
pub async fn serve_unix(path: impl AsRef<Path>, state: ControlState) -> Result<(), ControlError> {
    serve_unix_until(path, state, std::future::pending()).await
}

/// Serves on the unix socket `path` until `shutdown` completes; then the waiting polls answer at
/// once, the requests in flight finish, and the socket file is removed.
pub async fn serve_unix_until(
    path: impl AsRef<Path>,
    state: ControlState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let path = path.as_ref();
    let listener = bind_unix(path).await?;
    let closer = state.clone();
    let result = axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            closer.close();
        })
        .await
        .map_err(ControlError::Serve);
    let _ = std::fs::remove_file(path);
    result
}

/// Serves on a bound TCP listener until `shutdown` completes (for `http://` agents).
pub async fn serve_tcp_until(
    listener: tokio::net::TcpListener,
    state: ControlState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let closer = state.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            closer.close();
        })
        .await
        .map_err(ControlError::Serve)
}

/// The server side of TLS: the certificate chain in `cert_pem` (the server's certificate first,
/// then intermediates) and its private key in `key_pem` (PKCS#8, PKCS#1 or SEC1), with the ring
/// provider and HTTP/1.1 by ALPN.
pub fn tls_config(
    cert_pem: &Path,
    key_pem: &Path,
) -> Result<Arc<rustls::ServerConfig>, ControlError> {
    use rustls::pki_types::pem::PemObject as _;
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let tls_err = |path: &Path, what: String, hint| ControlError::Tls {
        path: path.to_owned(),
        what,
        hint,
    };
    const CERT_HINT: &str = "expected PEM `CERTIFICATE` blocks, the server's certificate first";
    let chain = CertificateDer::pem_file_iter(cert_pem)
        .map_err(|e| tls_err(cert_pem, e.to_string(), CERT_HINT))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| tls_err(cert_pem, e.to_string(), CERT_HINT))?;
    if chain.is_empty() {
        return Err(tls_err(
            cert_pem,
            "it holds no certificate".to_owned(),
            CERT_HINT,
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key_pem).map_err(|e| {
        tls_err(
            key_pem,
            e.to_string(),
            "expected a PEM private key (`PRIVATE KEY`, `RSA PRIVATE KEY` or `EC PRIVATE KEY`)",
        )
    })?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| tls_err(cert_pem, e.to_string(), CERT_HINT))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| {
            tls_err(
                key_pem,
                e.to_string(),
                "the key must be the private key of the first certificate",
            )
        })?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(Arc::new(config))
}

/// How long a client may take over its TLS handshake before its connection is dropped.
const TLS_HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// TCP connections that completed their TLS handshake. Handshakes run on tasks of their own, so
/// a slow or silent client holds up no other. Also used by `cutover serve`'s whole app.
#[derive(Debug)]
pub struct TlsListener {
    ready: tokio::sync::mpsc::Receiver<(
        tokio_rustls::server::TlsStream<tokio::net::TcpStream>,
        std::net::SocketAddr,
    )>,
    local_addr: std::net::SocketAddr,
}

impl TlsListener {
    /// Accepts on `listener` with `config` (see [`tls_config`]).
    pub fn new(
        listener: tokio::net::TcpListener,
        config: Arc<rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let local_addr = listener.local_addr()?;
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        let acceptor = tokio_rustls::TlsAcceptor::from(config);
        tokio::spawn(async move {
            loop {
                let accepted = tokio::select! {
                    a = listener.accept() => a,
                    // The server dropped its side: it no longer accepts.
                    () = tx.closed() => return,
                };
                let (tcp, peer) = match accepted {
                    Ok(a) => a,
                    Err(e) => {
                        // Out of file descriptors and the like: back off instead of spinning.
                        tracing::warn!(error = %e, "accepting a TLS connection failed");
                        tokio::time::sleep(Duration::from_millis(50)).await;
                        continue;
                    }
                };
                let _ = tcp.set_nodelay(true);
                let (acceptor, tx) = (acceptor.clone(), tx.clone());
                tokio::spawn(async move {
                    match tokio::time::timeout(TLS_HANDSHAKE_TIMEOUT, acceptor.accept(tcp)).await {
                        Ok(Ok(stream)) => {
                            let _ = tx.send((stream, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::info!(%peer, error = %e, "TLS handshake refused");
                        }
                        Err(_) => tracing::info!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(Self { ready, local_addr })
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = tokio_rustls::server::TlsStream<tokio::net::TcpStream>;
    type Addr = std::net::SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(conn) => conn,
            // The acceptor task only ends once this listener is gone.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local_addr)
    }
}

/// Serves the agent protocol over TLS (`https://` agents) on `addr` until `shutdown` completes,
/// with the certificate chain and key of [`tls_config`].
pub async fn serve_tls_until(
    addr: std::net::SocketAddr,
    cert_pem: impl AsRef<Path>,
    key_pem: impl AsRef<Path>,
    state: ControlState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let config = tls_config(cert_pem.as_ref(), key_pem.as_ref())?;
    let listener = tokio::net::TcpListener::bind(addr)
        .await
        .map_err(|source| ControlError::BindTcp { addr, source })?;
    serve_tls_on(listener, config, state, shutdown).await
}

/// As [`serve_tls_until`] on a bound listener and a ready TLS configuration.
pub async fn serve_tls_on(
    listener: tokio::net::TcpListener,
    config: Arc<rustls::ServerConfig>,
    state: ControlState,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> Result<(), ControlError> {
    let listener = TlsListener::new(listener, config).map_err(ControlError::Serve)?;
    let closer = state.clone();
    axum::serve(listener, router(state))
        .with_graceful_shutdown(async move {
            shutdown.await;
            closer.close();
        })
        .await
        .map_err(ControlError::Serve)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_verify_against_their_hash_only() {
        let h = hash_token("s3cret");
        assert!(h.starts_with("sha256:") && !h.contains("s3cret"));
        assert!(verify_token("s3cret", &h));
        assert!(!verify_token("s3cret ", &h));
        assert!(!verify_token("", &h));
        assert!(!verify_token("s3cret", "sha256:00"));
    }

    #[test]
    fn only_lowercase_sha256_hex_is_a_digest() {
        assert!(is_sha256_hex(&"a1".repeat(32)));
        assert!(!is_sha256_hex(&"A1".repeat(32)));
        assert!(!is_sha256_hex(&"a1".repeat(31)));
        assert!(!is_sha256_hex(&format!("../{}", "a".repeat(61))));
    }

    proptest::proptest! {
        #[test]
        fn a_token_verifies_only_itself(a in ".{0,40}", b in ".{0,40}") {
            proptest::prop_assert!(verify_token(&a, &hash_token(&a)));
            proptest::prop_assert_eq!(verify_token(&b, &hash_token(&a)), a == b);
        }

        #[test]
        fn printable_names_hold_no_control_characters(s in ".{0,300}") {
            let p = printable_name(&s);
            proptest::prop_assert!(p.chars().count() <= 128);
            proptest::prop_assert!(!p.chars().any(char::is_control));
        }
    }
}
