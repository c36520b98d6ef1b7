//! `/events`: the audit log as server-sent events. Each event with a seq above `after` (or the
//! `Last-Event-ID` a reconnecting browser sends; without either, the newest seq at connection
//! time) is pushed as an `audit` event whose id is its
//! seq, so that a reconnect resumes where it stopped. The store is polled (every
//! [`crate::WebState::event_poll`]): it works the same on SQLite and on PostgreSQL, and across
//! replicas, since every replica reads the one audit log.
//!
//! A stream ends when the server begins to stop ([`crate::WebState::shutdown`]): otherwise an
//! open browser tab would hold a graceful shutdown up for as long as it stays open. The browser's
//! `EventSource` reconnects by itself (to another replica, or to this one once restarted) and
//! resumes from its `Last-Event-ID`.

use std::collections::VecDeque;
use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{Query, State};
use axum::http::HeaderMap;
use axum::response::sse::{Event, KeepAlive, Sse};
use chrono::SecondsFormat;
use cutover_store::{AuditEvent, AuditFilter, Store};
use futures_util::Stream;
use serde::Deserialize;
use serde_json::json;

use crate::WebState;
use crate::render::time_text;

/// How many events one poll reads at most.
const BATCH: i64 = 200;

#[derive(Debug, Default, Deserialize)]
pub(crate) struct EventsQuery {
    after: Option<i64>,
    subject: Option<String>,
}

pub(crate) async fn events(
    State(state): State<WebState>,
    Query(query): Query<EventsQuery>,
    headers: HeaderMap,
) -> Sse<impl Stream<Item = Result<Event, Infallible>>> {
    let resumed = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<i64>().ok());
    // Without a position, only what happens from now on: a client must not be able to make the
    // server replay a long audit log by accident.
    let after = match resumed.or(query.after) {
        Some(after) => after.max(0),
        None => newest_seq(&*state.store).await,
    };
    let subject = query.subject.filter(|s| !s.is_empty());
    let poll = state.event_poll.max(Duration::from_millis(50));
    let stream = tail(state.store, after, subject, poll);
    Sse::new(until_shutdown(stream, state.shutdown)).keep_alive(KeepAlive::default())
}

/// `stream` until `shutdown` is cancelled, then its end (also when it is cancelled already, or
/// while the stream waits for its next poll).
fn until_shutdown<S>(
    stream: S,
    shutdown: tokio_util::sync::CancellationToken,
) -> impl Stream<Item = Result<Event, Infallible>>
where
    S: Stream<Item = Result<Event, Infallible>>,
{
    use futures_util::StreamExt as _;
    stream.take_until(shutdown.cancelled_owned())
}

/// The newest seq (0 for an empty log, or when the log cannot be read: the stream then starts
/// from the beginning rather than not at all).
async fn newest_seq(store: &dyn Store) -> i64 {
    store
        .list_audit(&AuditFilter {
            descending: true,
            limit: Some(1),
            ..AuditFilter::default()
        })
        .await
        .ok()
        .and_then(|events| events.first().map(|e| e.seq))
        .unwrap_or(0)
}

struct Tail {
    store: Arc<dyn Store>,
    after: i64,
    subject: Option<String>,
    poll: Duration,
    pending: VecDeque<AuditEvent>,
    first: bool,
}

fn tail(
    store: Arc<dyn Store>,
    after: i64,
    subject: Option<String>,
    poll: Duration,
) -> impl Stream<Item = Result<Event, Infallible>> {
    let start = Tail {
        store,
        after,
        subject,
        poll,
        pending: VecDeque::new(),
        first: true,
    };
    futures_util::stream::unfold(start, |mut t| async move {
        loop {
            if let Some(event) = t.pending.pop_front() {
                t.after = event.seq;
                return Some((Ok(to_sse(&event)), t));
            }
            // The first read happens at once, so that events written between the page's render
            // and the connection show without waiting a poll interval.
            if !t.first {
                tokio::time::sleep(t.poll).await;
            }
            t.first = false;
            let filter = AuditFilter {
                subject: t.subject.clone(),
                after_seq: Some(t.after),
                limit: Some(BATCH),
                ..AuditFilter::default()
            };
            match t.store.list_audit(&filter).await {
                Ok(events) => t.pending.extend(events),
                // A store hiccup ends nothing: the browser keeps its connection and the next
                // poll tries again.
                Err(e) => {
                    let note =
                        Event::default().comment(format!("the audit log could not be read: {e}"));
                    return Some((Ok(note), t));
                }
            }
        }
    })
}

/// The `audit` event: its id is the seq; its data is what the page's script shows.
fn to_sse(event: &AuditEvent) -> Event {
    let data = json!({
        "seq": event.seq,
        "at": event.at.to_rfc3339_opts(SecondsFormat::AutoSi, true),
        "at_text": time_text(event.at),
        "actor": event.actor,
        "action": event.action,
        "subject": event.subject,
        "summary": crate::model::summarize(&event.payload),
        "payload": event.payload,
    });
    Event::default()
        .event("audit")
        .id(event.seq.to_string())
        .data(data.to_string())
}
