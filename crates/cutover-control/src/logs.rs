//! Log reads relayed to agents: hosts open no inbound port, so the control plane keeps the reads
//! asked of each host until its agent picks them up (`GET /agent/v1/logs/requests`, a long poll)
//! and passes the lines the agent posts (`POST /agent/v1/logs/{id}`) on to the reader.
//!
//! Readers: [`ControlState::read_logs`] in-process (the server's API may call it), or the CLI
//! over HTTP: `cutover logs ENV --host H` writes an audit event `logs.read` that names the read
//! and carries the sha256 of a one-time key ([`authorize_log_read`]), then calls
//! `GET /agent/v1/logs/read?request=SEQ` with `Authorization: Bearer KEY`. Whoever can write the
//! store is an operator already, so the event is the permission (and the record of who read what);
//! it is good once, for [`GRANT_LIFETIME`].
//!
//! The reader's answer is JSON lines: one `{"service","slot","stream","line"}` per log line, an
//! empty line now and then while following (so that a reader that left is noticed), and a last
//! `{"error": "..."}` when the agent could not read the logs.
//!
//! When a followed read is under way: the agent posts its first chunk (the tail) only once it
//! watches the files, and an empty chunk still makes an (empty) line, so the reader's first line,
//! whatever it is, means that every line written from then on will come. A reader waits for it
//! before it makes lines it wants to see (`cutover logs --follow` then says `following` on
//! stderr). Nothing new goes over the wire for this: an agent or a reader of an earlier version
//! already sends, and skips, that first line.

use std::collections::{HashMap, HashSet};
use std::sync::Mutex;
use std::time::Duration;

use axum::Json;
use axum::body::Body;
use axum::extract::{Path as UrlPath, Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use chrono::Utc;
use cutover_agent::Slot;
use cutover_agent::protocol::{LogChunk, LogRequest, LogRequests};
use cutover_store::{Audit, AuditFilter, Store, StoreError};
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::io::{AsyncWriteExt as _, DuplexStream};
use tokio::sync::{oneshot, watch};

use crate::{ApiError, ControlState, authenticate, hash_token, touch, verify_token};

/// The audit action of a log read.
pub const LOG_READ_ACTION: &str = "logs.read";
/// How long after its audit event a read may start.
pub const GRANT_LIFETIME: Duration = Duration::from_secs(120);
/// How long a read waits for the host's agent to pick it up.
pub const PICKUP_TIMEOUT: Duration = Duration::from_secs(10);
/// A reader that takes no lines for this long is taken to be gone.
const WRITE_TIMEOUT: Duration = Duration::from_secs(30);
/// Bytes buffered between the agent's posts and a slow reader.
const PIPE_BYTES: usize = 256 * 1024;

/// What to read from one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LogQuery {
    /// The services whose logs are read; empty: every service the host runs.
    pub services: Vec<String>,
    pub slot: Option<Slot>,
    /// Lines per log shown first.
    pub lines: usize,
    /// Then the new lines, until the reader goes away.
    pub follow: bool,
}

/// Why a log read could not start.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("host `{host}` is not registered with this control plane")]
    UnknownHost { host: String },
    #[error(
        "the agent of host `{host}` did not pick up the log read within {}s: it is not connected to this control plane",
        waited.as_secs()
    )]
    NotConnected { host: String, waited: Duration },
    #[error(transparent)]
    Store(#[from] StoreError),
}

/// The lines of a read as they come: JSON lines (see the module documentation). It ends when the
/// read is complete; a followed read ends only when the agent stops (dropping the reader makes
/// the agent stop).
#[derive(Debug)]
pub struct LogReader {
    pub id: String,
    pub pipe: DuplexStream,
}

struct Active {
    host: String,
    /// The writing end; taken by the post that writes (posts of one read come one at a time).
    pipe: Option<DuplexStream>,
    /// Told when the agent picked the read up.
    picked: Option<oneshot::Sender<()>>,
}

/// The reads waiting for their agents, and those under way.
pub(crate) struct LogBroker {
    pending: Mutex<HashMap<String, Vec<LogRequest>>>,
    active: Mutex<HashMap<String, Active>>,
    /// Bumped when a read is asked, to wake the hosts' long polls.
    wake: watch::Sender<u64>,
    /// Audit events already used to read (each is good once).
    used: Mutex<HashSet<i64>>,
}

impl Default for LogBroker {
    fn default() -> Self {
        Self {
            pending: Mutex::default(),
            active: Mutex::default(),
            wake: watch::channel(0).0,
            used: Mutex::default(),
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn new_id() -> String {
    // The id is not a secret (the agent's token guards the posts); it must only be unique.
    crate::new_token().unwrap_or_else(|_| {
        format!(
            "{:x}{:x}",
            std::process::id(),
            Utc::now().timestamp_nanos_opt().unwrap_or_default()
        )
    })[..32]
        .to_owned()
}

impl ControlState {
    /// Asks the agent of `host` for its logs and returns the reader once the agent picked the read
    /// up (within [`PICKUP_TIMEOUT`]).
    pub async fn read_logs(&self, host: &str, query: LogQuery) -> Result<LogReader, LogError> {
        if self.store().get_host(host).await?.is_none() {
            return Err(LogError::UnknownHost {
                host: host.to_owned(),
            });
        }
        let broker = &self.inner.logs;
        let id = new_id();
        let (writer, reader) = tokio::io::duplex(PIPE_BYTES);
        let (picked_tx, picked_rx) = oneshot::channel();
        lock(&broker.active).insert(
            id.clone(),
            Active {
                host: host.to_owned(),
                pipe: Some(writer),
                picked: Some(picked_tx),
            },
        );
        lock(&broker.pending)
            .entry(host.to_owned())
            .or_default()
            .push(LogRequest {
                id: id.clone(),
                services: query.services,
                slot: query.slot,
                lines: query.lines,
                follow: query.follow,
            });
        broker.wake.send_modify(|n| *n = n.wrapping_add(1));
        if matches!(
            tokio::time::timeout(PICKUP_TIMEOUT, picked_rx).await,
            Ok(Ok(()))
        ) {
            return Ok(LogReader { id, pipe: reader });
        }
        if let Some(waiting) = lock(&broker.pending).get_mut(host) {
            waiting.retain(|r| r.id != id);
        }
        lock(&broker.active).remove(&id);
        Err(LogError::NotConnected {
            host: host.to_owned(),
            waited: PICKUP_TIMEOUT,
        })
    }

    /// The reads waiting for `host`, marked picked up.
    fn take_log_requests(&self, host: &str) -> Vec<LogRequest> {
        let broker = &self.inner.logs;
        let taken = lock(&broker.pending).remove(host).unwrap_or_default();
        let mut active = lock(&broker.active);
        taken
            .into_iter()
            .filter(|r| {
                // A read whose reader already gave up is not worth the agent's time.
                active
                    .get_mut(&r.id)
                    .and_then(|a| a.picked.take())
                    .is_some_and(|tx| tx.send(()).is_ok())
            })
            .collect()
    }
}

/// Writes the audit event that permits one log read (see the module documentation) as `actor`;
/// returns its seq and the one-time key to present as the bearer token.
pub async fn authorize_log_read(
    store: &dyn Store,
    actor: &str,
    environment: &str,
    host: &str,
    query: &LogQuery,
) -> Result<(i64, String), StoreError> {
    let key = crate::new_token().map_err(|e| StoreError::Conflict {
        what: format!("cannot draw a random key for the log read: {e}"),
    })?;
    let event = store
        .append_audit(&Audit::new(
            actor,
            LOG_READ_ACTION,
            format!("host:{host}"),
            json!({
                "environment": environment,
                "host": host,
                "services": query.services,
                "slot": query.slot,
                "lines": query.lines,
                "follow": query.follow,
                // The hash of a key good once, for two minutes: it opens nothing later.
                "key_sha256": hash_token(&key),
            }),
        ))
        .await?;
    Ok((event.seq, key))
}

/// The payload of a `logs.read` event.
#[derive(Debug, Deserialize)]
struct Grant {
    host: String,
    services: Vec<String>,
    slot: Option<Slot>,
    lines: usize,
    follow: bool,
    key_sha256: String,
}

/// The read that audit event `seq` permits, when `key` is its key and it is fresh and unused.
async fn grant(state: &ControlState, seq: i64, key: &str) -> Result<Grant, ApiError> {
    let refused = |why: &str| {
        tracing::warn!(request = seq, why, "log read refused");
        ApiError::new(
            StatusCode::UNAUTHORIZED,
            format!("log read {seq} is not permitted: {why}"),
        )
    };
    let events = state
        .store()
        .list_audit(&AuditFilter {
            after_seq: Some(seq.saturating_sub(1)),
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .map_err(ApiError::store)?;
    let Some(event) = events
        .into_iter()
        .find(|e| e.seq == seq && e.action == LOG_READ_ACTION)
    else {
        return Err(refused("no such `logs.read` audit event"));
    };
    let grant: Grant = serde_json::from_value(event.payload)
        .map_err(|_| refused("the audit event is not a log read"))?;
    if key.is_empty() || !verify_token(key, &grant.key_sha256) {
        return Err(refused("the key does not match"));
    }
    let age = Utc::now().signed_duration_since(event.at);
    if age.to_std().is_ok_and(|age| age > GRANT_LIFETIME) {
        return Err(refused("it expired; ask again"));
    }
    if !lock(&state.inner.logs.used).insert(seq) {
        return Err(refused("it was used already"));
    }
    Ok(grant)
}

#[derive(Debug, Deserialize)]
pub(crate) struct ReadQuery {
    request: i64,
}

/// `GET /agent/v1/logs/read?request=SEQ`: an operator's read (see the module documentation).
pub(crate) async fn read(
    State(state): State<ControlState>,
    headers: HeaderMap,
    Query(q): Query<ReadQuery>,
) -> Result<Response, ApiError> {
    let key = headers
        .get(header::AUTHORIZATION)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.strip_prefix("Bearer "))
        .unwrap_or_default();
    let grant = grant(&state, q.request, key).await?;
    let query = LogQuery {
        services: grant.services,
        slot: grant.slot,
        lines: grant.lines,
        follow: grant.follow,
    };
    let reader = state
        .read_logs(&grant.host, query)
        .await
        .map_err(|e| match e {
            LogError::UnknownHost { .. } => ApiError::new(StatusCode::NOT_FOUND, e.to_string()),
            LogError::NotConnected { .. } => {
                ApiError::new(StatusCode::GATEWAY_TIMEOUT, e.to_string())
            }
            LogError::Store(e) => ApiError::store(e),
        })?;
    let mut resp =
        Body::from_stream(tokio_util::io::ReaderStream::new(reader.pipe)).into_response();
    resp.headers_mut().insert(
        header::CONTENT_TYPE,
        header::HeaderValue::from_static("application/x-ndjson"),
    );
    Ok(resp)
}

/// `GET /agent/v1/logs/requests`: the reads asked of the agent's host; a long poll.
pub(crate) async fn requests(
    State(state): State<ControlState>,
    headers: HeaderMap,
) -> Result<Json<LogRequests>, ApiError> {
    let host = authenticate(&state, &headers, "logs.requests").await?;
    touch(&state, &host, None).await;
    let deadline = tokio::time::Instant::now() + state.inner.poll_timeout;
    // Subscribed before looking, so a read asked in between is not missed.
    let mut wake = state.inner.logs.wake.subscribe();
    let mut closing = state.inner.changed.subscribe();
    loop {
        let requests = state.take_log_requests(&host);
        if !requests.is_empty()
            || tokio::time::Instant::now() >= deadline
            || state
                .inner
                .closing
                .load(std::sync::atomic::Ordering::SeqCst)
        {
            return Ok(Json(LogRequests { requests }));
        }
        tokio::select! {
            _ = wake.changed() => {}
            _ = closing.changed() => {}
            () = tokio::time::sleep_until(deadline) => {}
        }
    }
}

/// `POST /agent/v1/logs/{id}`: lines of a read, passed on to its reader. `410 Gone` once the
/// reader left.
pub(crate) async fn chunk(
    State(state): State<ControlState>,
    headers: HeaderMap,
    UrlPath(id): UrlPath<String>,
    Json(chunk): Json<LogChunk>,
) -> Result<StatusCode, ApiError> {
    let host = authenticate(&state, &headers, "logs.chunk").await?;
    let broker = &state.inner.logs;
    let gone = || {
        ApiError::new(
            StatusCode::GONE,
            format!("log read {id} has no reader (any more)"),
        )
    };
    let mut pipe = {
        let mut active = lock(&broker.active);
        match active.get_mut(&id) {
            // Another host's read is none of this agent's business: as if it did not exist.
            Some(a) if a.host == host => a.pipe.take().ok_or_else(|| {
                ApiError::new(
                    StatusCode::CONFLICT,
                    format!("log read {id} is being written by another post"),
                )
            })?,
            _ => return Err(gone()),
        }
    };
    let mut out = Vec::new();
    for line in &chunk.lines {
        serde_json::to_writer(&mut out, line).expect("a LogLine always serializes");
        out.push(b'\n');
    }
    if let Some(error) = &chunk.error {
        serde_json::to_writer(&mut out, &json!({ "error": error }))
            .expect("a JSON value always serializes");
        out.push(b'\n');
    }
    if out.is_empty() {
        // A heartbeat: writing something is how a reader that left is noticed. The first one
        // also tells the reader that the agent follows the files now (see the module
        // documentation), so an empty chunk is never dropped.
        out.push(b'\n');
    }
    let written = tokio::time::timeout(WRITE_TIMEOUT, async {
        pipe.write_all(&out).await?;
        pipe.flush().await
    })
    .await;
    let delivered = matches!(written, Ok(Ok(())));
    let mut active = lock(&broker.active);
    if delivered && !chunk.done && chunk.error.is_none() {
        if let Some(a) = active.get_mut(&id) {
            a.pipe = Some(pipe);
        }
        return Ok(StatusCode::NO_CONTENT);
    }
    // Done, failed, or the reader left: dropping the writing end ends the reader's stream.
    active.remove(&id);
    if delivered {
        Ok(StatusCode::NO_CONTENT)
    } else {
        Err(gone())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn ids_are_unique_hex() {
        let a = new_id();
        let b = new_id();
        assert_eq!(a.len(), 32);
        assert!(a.bytes().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
    }
}
