//! Answers of the hot read endpoints (status, a release, "what ran at T") kept per data version,
//! and their ETags (`If-None-Match` → 304).
//!
//! Every state those answers show is read from the store, so an answer computed after the
//! database was at version V (see [`cutover_store::DataVersion`]: on PostgreSQL its transaction
//! snapshot, which moves on every commit of any writer, audited or not) is still the answer
//! while the database is at V. The version is read fresh from the database for each request, in
//! the same round trip as the request's token ([`crate::auth`]), before anything the answer is
//! computed from: so a replica never answers from a state older than what another replica wrote
//! before the request arrived, and nothing is invalidated in-process. An answer that also depends
//! on the clock (the status' "connected", which lapses when an agent goes quiet) carries the
//! instant it stops being true and is not served after it.
//!
//! A miss is computed once per version and key: requests that miss while the same answer is
//! being computed wait for it instead of computing it again. Without this, each write turned into
//! a burst of identical computations (every request arriving during the first one's few
//! milliseconds missed too), which is what set the tail latency once writes were frequent.
//!
//! SQLite has no such version: there nothing is cached, and the ETag is the answer's own digest,
//! computed after the answer (still a valid 304 for clients, without the saved work).

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use axum::http::{HeaderMap, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use bytes::Bytes;
use chrono::Utc;
use cutover_store::{DataVersion, Timestamp};
use serde::Serialize;
use sha2::{Digest as _, Sha256};
use tokio::sync::OnceCell;

use crate::ServerState;
use crate::error::ApiError;

/// At most this many answers are kept (per data version; a new version starts afresh).
pub const MAX_ENTRIES: usize = 1024;

/// The data version the request's authentication read (a request extension; `None` on SQLite).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RequestVersion(pub Option<DataVersion>);

/// One answer: its JSON, ETag, and until when it holds regardless of the data version.
#[derive(Debug, Clone)]
pub(crate) struct Entry {
    body: Bytes,
    etag: HeaderValue,
    valid_until: Option<Timestamp>,
}

/// An answer being computed: the first request to miss fills it, the others wait on it.
type Pending = Arc<OnceCell<Entry>>;

#[derive(Debug, Default)]
struct Inner {
    version: Option<DataVersion>,
    entries: HashMap<String, Entry>,
    /// Answers being computed, by version and key (removed when their computation ends).
    pending: HashMap<(DataVersion, String), Pending>,
}

/// Where an answer of a cacheable request came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheResult {
    /// Kept from an earlier request at the same version.
    Hit = 0,
    /// Computed by another request at the same time, which this one waited for.
    Shared = 1,
    /// Computed for this request.
    Miss = 2,
}

impl CacheResult {
    /// Every result, in the order of their discriminants (an index into a counter array).
    pub const ALL: [Self; 3] = [Self::Hit, Self::Shared, Self::Miss];

    /// The `result` label of `cutover_response_cache_total`.
    #[must_use]
    pub fn label(self) -> &'static str {
        match self {
            Self::Hit => "hit",
            Self::Shared => "shared",
            Self::Miss => "miss",
        }
    }
}

/// Removes a pending computation from the map when the request that looked it up is done with
/// it, finished or dropped (a client that went away): the map never keeps a computation nobody
/// drives. Waiters still holding the cell go on with it (one of them takes over the computation).
struct PendingGuard<'a> {
    cache: &'a ResponseCache,
    key: (DataVersion, String),
    cell: Pending,
}

impl Drop for PendingGuard<'_> {
    fn drop(&mut self) {
        self.cache.with(|inner| {
            if inner
                .pending
                .get(&self.key)
                .is_some_and(|p| Arc::ptr_eq(p, &self.cell))
            {
                inner.pending.remove(&self.key);
            }
        });
    }
}

/// This process's answers, all of one data version (the newest one stored).
#[derive(Debug, Default)]
pub struct ResponseCache {
    inner: Mutex<Inner>,
}

impl ResponseCache {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        // The map stays consistent even if a holder panicked (each operation is one insert/get).
        let mut guard = self
            .inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    fn get(&self, version: &DataVersion, key: &str, now: Timestamp) -> Option<Entry> {
        self.with(|inner| {
            if inner.version.as_ref() != Some(version) {
                return None;
            }
            inner
                .entries
                .get(key)
                .filter(|e| e.valid_until.is_none_or(|until| now < until))
                .cloned()
        })
    }

    fn put(&self, version: &DataVersion, key: String, entry: Entry) {
        self.with(|inner| {
            if inner.version.as_ref() != Some(version) {
                // Answers of another version are of no use to requests at this one. (A slow
                // request of an older version may replace newer ones: that costs misses, never a
                // stale answer, since entries are only served at their own version.)
                inner.version = Some(version.clone());
                inner.entries.clear();
            }
            if inner.entries.len() < MAX_ENTRIES || inner.entries.contains_key(&key) {
                inner.entries.insert(key, entry);
            }
        });
    }

    /// The answer of `key` at `version`: kept, or being computed by another request (waited
    /// for), or computed by `compute` now (then kept). An error is not kept: the next waiter
    /// computes again.
    pub(crate) async fn get_or_compute<E>(
        &self,
        version: &DataVersion,
        key: &str,
        compute: impl Future<Output = Result<Entry, E>>,
    ) -> Result<(Entry, CacheResult), E> {
        if let Some(hit) = self.get(version, key, Utc::now()) {
            return Ok((hit, CacheResult::Hit));
        }
        let pending_key = (version.clone(), key.to_owned());
        let cell = self.with(|inner| {
            if inner.pending.len() >= MAX_ENTRIES && !inner.pending.contains_key(&pending_key) {
                // More distinct answers in flight than are ever kept: stop sharing rather than
                // grow (each request then computes its own, as without this map).
                return None;
            }
            Some(Arc::clone(
                inner.pending.entry(pending_key.clone()).or_default(),
            ))
        });
        let Some(cell) = cell else {
            return Ok((compute.await?, CacheResult::Miss));
        };
        let _guard = PendingGuard {
            cache: self,
            key: pending_key,
            cell: Arc::clone(&cell),
        };
        let computed_here = AtomicBool::new(false);
        let entry = cell
            .get_or_try_init(|| async {
                computed_here.store(true, Ordering::Relaxed);
                let entry = compute.await?;
                // Kept before the waiters are woken, so no request that arrives from now on misses.
                self.put(version, key.to_owned(), entry.clone());
                Ok(entry)
            })
            .await?
            .clone();
        let result = if computed_here.load(Ordering::Relaxed) {
            CacheResult::Miss
        } else {
            CacheResult::Shared
        };
        Ok((entry, result))
    }

    /// How many answers are being computed now.
    #[cfg(test)]
    fn pending(&self) -> usize {
        self.with(|inner| inner.pending.len())
    }

    /// How many answers are kept now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.with(|inner| inner.entries.len())
    }

    /// Whether no answer is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// A strong ETag: the first 128 bits of the body's sha256, in hex and quotes.
#[must_use]
pub fn etag_of(body: &[u8]) -> HeaderValue {
    let digest = Sha256::digest(body);
    HeaderValue::from_str(&format!("\"{}\"", hex::encode(&digest[..16])))
        .expect("quoted hex is a valid header value")
}

/// Whether `If-None-Match` names `etag` (or is `*`); weak comparison, as RFC 9110 asks for it.
#[must_use]
pub fn not_modified(headers: &HeaderMap, etag: &HeaderValue) -> bool {
    let Ok(etag) = etag.to_str() else {
        return false;
    };
    headers
        .get_all(header::IF_NONE_MATCH)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .any(|tag| tag == "*" || tag.strip_prefix("W/").unwrap_or(tag) == etag)
}

fn respond(headers: &HeaderMap, body: Bytes, etag: HeaderValue) -> Response {
    // Clients may keep the answer but must ask again (with If-None-Match) before using it.
    let cache_control = HeaderValue::from_static("no-cache");
    if not_modified(headers, &etag) {
        return (
            StatusCode::NOT_MODIFIED,
            [(header::ETAG, etag), (header::CACHE_CONTROL, cache_control)],
        )
            .into_response();
    }
    (
        [
            (
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            ),
            (header::ETAG, etag),
            (header::CACHE_CONTROL, cache_control),
        ],
        body,
    )
        .into_response()
}

/// What an endpoint computes on a miss: the document, and the instant it stops holding even if
/// no write happens (`None`: only a write ends it).
pub struct Computed<T> {
    pub document: T,
    pub valid_until: Option<Timestamp>,
}

impl<T> Computed<T> {
    /// A document that changes only with the data.
    pub fn new(document: T) -> Self {
        Self {
            document,
            valid_until: None,
        }
    }
}

/// Answers `key` (`None`: never cached, e.g. an answer that names the current instant) from the
/// cache when the request's data version has it, else from `compute` (then kept), with its
/// ETag; 304 when `If-None-Match` already names it.
pub async fn answer<T, F>(
    state: &ServerState,
    version: Option<&DataVersion>,
    key: Option<String>,
    headers: &HeaderMap,
    compute: F,
) -> Result<Response, ApiError>
where
    T: Serialize,
    F: Future<Output = Result<Computed<T>, ApiError>>,
{
    let Some((version, key)) = version.zip(key) else {
        let entry = entry_of(compute.await?)?;
        return Ok(respond(headers, entry.body, entry.etag));
    };
    let (entry, result) = state
        .cache
        .get_or_compute(version, &key, async { entry_of(compute.await?) })
        .await?;
    state.metrics.cache(result);
    Ok(respond(headers, entry.body, entry.etag))
}

/// The kept form of a computed answer: its JSON and ETag.
fn entry_of<T: Serialize>(computed: Computed<T>) -> Result<Entry, ApiError> {
    let body = Bytes::from(
        serde_json::to_vec(&computed.document)
            .map_err(|e| ApiError::internal(format!("serializing the answer: {e}")))?,
    );
    Ok(Entry {
        etag: etag_of(&body),
        body,
        valid_until: computed.valid_until,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn entry(body: &'static str, valid_until: Option<Timestamp>) -> Entry {
        Entry {
            body: Bytes::from_static(body.as_bytes()),
            etag: etag_of(body.as_bytes()),
            valid_until,
        }
    }

    #[test]
    fn entries_are_served_only_at_their_version_and_before_they_lapse() {
        let cache = ResponseCache::default();
        let (v1, v2) = (DataVersion("1:1:".into()), DataVersion("1:2:".into()));
        let now = Utc::now();
        cache.put(&v1, "a".into(), entry("one", None));
        cache.put(
            &v1,
            "b".into(),
            entry("two", Some(now + chrono::Duration::seconds(1))),
        );
        assert_eq!(
            cache.get(&v1, "a", now).map(|e| e.body),
            Some(Bytes::from_static(b"one"))
        );
        assert!(cache.get(&v2, "a", now).is_none());
        assert!(cache.get(&v1, "b", now).is_some());
        assert!(
            cache
                .get(&v1, "b", now + chrono::Duration::seconds(1))
                .is_none()
        );
        // A newer version replaces everything.
        cache.put(&v2, "c".into(), entry("three", None));
        assert_eq!(cache.len(), 1);
        assert!(cache.get(&v1, "a", now).is_none());
    }

    #[test]
    fn the_cache_is_bounded() {
        let cache = ResponseCache::default();
        let v = DataVersion("v".into());
        for i in 0..MAX_ENTRIES + 10 {
            cache.put(&v, format!("k{i}"), entry("x", None));
        }
        assert_eq!(cache.len(), MAX_ENTRIES);
    }

    /// Lets every spawned task of this (current-thread) runtime run until it waits.
    async fn settle() {
        for _ in 0..64 {
            tokio::task::yield_now().await;
        }
    }

    #[tokio::test]
    async fn concurrent_misses_compute_an_answer_once() {
        use std::sync::atomic::AtomicUsize;
        let cache = Arc::new(ResponseCache::default());
        let v = DataVersion("v".into());
        let computations = Arc::new(AtomicUsize::new(0));
        let gate = Arc::new(tokio::sync::Notify::new());
        let mut tasks = tokio::task::JoinSet::new();
        for _ in 0..16 {
            let (cache, v, computations, gate) =
                (cache.clone(), v.clone(), computations.clone(), gate.clone());
            tasks.spawn(async move {
                cache
                    .get_or_compute(&v, "k", async {
                        computations.fetch_add(1, Ordering::SeqCst);
                        gate.notified().await;
                        Ok::<_, ()>(entry("answer", None))
                    })
                    .await
            });
        }
        settle().await;
        assert_eq!(computations.load(Ordering::SeqCst), 1);
        assert_eq!(cache.pending(), 1);
        gate.notify_one();
        let mut results = Vec::new();
        while let Some(done) = tasks.join_next().await {
            let (entry, result) = done.unwrap().unwrap();
            assert_eq!(entry.body, Bytes::from_static(b"answer"));
            results.push(result);
        }
        assert_eq!(computations.load(Ordering::SeqCst), 1);
        assert_eq!(
            results.iter().filter(|r| **r == CacheResult::Miss).count(),
            1
        );
        assert_eq!(
            results
                .iter()
                .filter(|r| **r == CacheResult::Shared)
                .count(),
            15
        );
        assert_eq!(cache.pending(), 0, "a finished computation leaves the map");
        let (_, again) = cache
            .get_or_compute(&v, "k", async { Err::<Entry, ()>(()) })
            .await
            .unwrap();
        assert_eq!(again, CacheResult::Hit);
        // Another version computes afresh.
        let (_, other) = cache
            .get_or_compute(&DataVersion("w".into()), "k", async {
                Ok::<_, ()>(entry("newer", None))
            })
            .await
            .unwrap();
        assert_eq!(other, CacheResult::Miss);
    }

    #[tokio::test]
    async fn a_computation_abandoned_or_failed_is_taken_over_by_a_waiter() {
        let cache = Arc::new(ResponseCache::default());
        let v = DataVersion("v".into());
        // The first request's client goes away in the middle of its computation.
        let first = tokio::spawn({
            let (cache, v) = (cache.clone(), v.clone());
            async move {
                cache
                    .get_or_compute(&v, "k", std::future::pending::<Result<Entry, ()>>())
                    .await
            }
        });
        settle().await;
        let waiter = tokio::spawn({
            let (cache, v) = (cache.clone(), v.clone());
            async move {
                cache
                    .get_or_compute(&v, "k", async { Ok::<_, ()>(entry("second", None)) })
                    .await
            }
        });
        settle().await;
        first.abort();
        let (entry2, result) = waiter.await.unwrap().unwrap();
        assert_eq!(entry2.body, Bytes::from_static(b"second"));
        assert_eq!(result, CacheResult::Miss);
        assert_eq!(cache.pending(), 0);

        // An error is given to the request that computed it, and not kept.
        let failed = cache
            .get_or_compute(&v, "e", async { Err::<Entry, &str>("not found") })
            .await;
        assert_eq!(failed.unwrap_err(), "not found");
        assert_eq!(cache.pending(), 0);
        let (_, result) = cache
            .get_or_compute(&v, "e", async { Ok::<_, &str>(entry("found", None)) })
            .await
            .unwrap();
        assert_eq!(result, CacheResult::Miss);
    }

    #[test]
    fn if_none_match_lists_and_weak_tags() {
        let etag = etag_of(b"body");
        let tag = etag.to_str().unwrap().to_owned();
        for (given, matches) in [
            (tag.clone(), true),
            (format!("W/{tag}"), true),
            (format!("\"other\", {tag}"), true),
            ("*".to_owned(), true),
            ("\"other\"".to_owned(), false),
        ] {
            let mut h = HeaderMap::new();
            h.insert(
                header::IF_NONE_MATCH,
                HeaderValue::from_str(&given).unwrap(),
            );
            assert_eq!(not_modified(&h, &etag), matches, "{given}");
        }
        assert!(!not_modified(&HeaderMap::new(), &etag));
    }
}
