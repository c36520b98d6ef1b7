//! Prometheus metrics in the text exposition format (0.0.4) at `/metrics`: requests by route
//! template, method and status, their latency histogram, authentication failures and rejections
//! by reason, and, read from the store at scrape time (so that every replica reports the same),
//! the queue's depth by class and the deployments by state.
//!
//! Hand-rolled: a few counters under a mutex are all that is needed, and the format is small.

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::Instant;

use axum::extract::{MatchedPath, Request, State};
use axum::http::{HeaderValue, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use cutover_store::{DeploymentFilter, JobClass, JobFilter, JobState};

use crate::ServerState;
use crate::cache::CacheResult;
use crate::error::{ApiError, ErrorCode};

/// Upper bounds (seconds) of the latency histogram's buckets.
const BUCKETS: [f64; 12] = [
    0.000_5, 0.001, 0.002_5, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 5.0,
];

#[derive(Debug, Default, Clone)]
struct Histogram {
    counts: [u64; BUCKETS.len()],
    sum: f64,
    count: u64,
}

#[derive(Debug, Default)]
struct Counters {
    requests: BTreeMap<(String, String, u16), u64>,
    latency: BTreeMap<String, Histogram>,
    auth_failures: BTreeMap<String, u64>,
    rejections: BTreeMap<String, u64>,
    /// Answers of the cached endpoints by where they came from: hit, shared, miss.
    cache: [u64; CacheResult::ALL.len()],
}

/// This process's counters.
#[derive(Debug, Default)]
pub struct Metrics {
    counters: Mutex<Counters>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Counters) -> R) -> R {
        // A panic while holding the lock cannot leave the counters inconsistent in a way that
        // matters: keep counting.
        let mut guard = self
            .counters
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&mut guard)
    }

    /// Counts a refused authentication (`missing`, `unknown`, `revoked`, `malformed`, `scope`).
    pub fn auth_failure(&self, reason: &str) {
        self.with(|c| *c.auth_failures.entry(reason.to_owned()).or_default() += 1);
    }

    /// Counts an answer of a cached endpoint by where it came from.
    pub fn cache(&self, result: CacheResult) {
        self.with(|c| c.cache[result as usize] += 1);
    }

    /// Counts a finished request.
    pub fn record(
        &self,
        route: &str,
        method: &str,
        status: u16,
        seconds: f64,
        rejected: Option<ErrorCode>,
    ) {
        self.with(|c| {
            *c.requests
                .entry((route.to_owned(), method.to_owned(), status))
                .or_default() += 1;
            let h = c.latency.entry(route.to_owned()).or_default();
            for (i, bound) in BUCKETS.iter().enumerate() {
                if seconds <= *bound {
                    h.counts[i] += 1;
                }
            }
            h.sum += seconds;
            h.count += 1;
            if let Some(code) = rejected {
                *c.rejections.entry(code.as_str().to_owned()).or_default() += 1;
            }
        });
    }

    /// How many requests were rejected with `code` so far.
    #[must_use]
    pub fn rejections(&self, code: ErrorCode) -> u64 {
        self.with(|c| c.rejections.get(code.as_str()).copied().unwrap_or(0))
    }

    /// The counters in the text exposition format.
    #[must_use]
    pub fn render(&self) -> String {
        let c = self.with(|c| {
            (
                c.requests.clone(),
                c.latency.clone(),
                c.auth_failures.clone(),
                c.rejections.clone(),
                c.cache,
            )
        });
        let (requests, latency, auth, rejections, cache) = c;
        let mut out = String::new();
        out.push_str("# HELP cutover_http_requests_total HTTP requests answered, by route template, method and status.\n");
        out.push_str("# TYPE cutover_http_requests_total counter\n");
        for ((route, method, status), n) in &requests {
            let _ = writeln!(
                out,
                "cutover_http_requests_total{{route=\"{}\",method=\"{}\",status=\"{status}\"}} {n}",
                escape(route),
                escape(method)
            );
        }
        out.push_str(
            "# HELP cutover_http_request_duration_seconds Time to answer, by route template.\n",
        );
        out.push_str("# TYPE cutover_http_request_duration_seconds histogram\n");
        for (route, h) in &latency {
            let route = escape(route);
            for (i, bound) in BUCKETS.iter().enumerate() {
                let _ = writeln!(
                    out,
                    "cutover_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"{bound}\"}} {}",
                    h.counts[i]
                );
            }
            let _ = writeln!(
                out,
                "cutover_http_request_duration_seconds_bucket{{route=\"{route}\",le=\"+Inf\"}} {}",
                h.count
            );
            let _ = writeln!(
                out,
                "cutover_http_request_duration_seconds_sum{{route=\"{route}\"}} {}",
                h.sum
            );
            let _ = writeln!(
                out,
                "cutover_http_request_duration_seconds_count{{route=\"{route}\"}} {}",
                h.count
            );
        }
        out.push_str("# HELP cutover_auth_failures_total Requests refused by authentication or scope, by reason.\n");
        out.push_str("# TYPE cutover_auth_failures_total counter\n");
        for (reason, n) in &auth {
            let _ = writeln!(
                out,
                "cutover_auth_failures_total{{reason=\"{}\"}} {n}",
                escape(reason)
            );
        }
        out.push_str("# HELP cutover_http_rejections_total Requests answered with an error, by error code.\n");
        out.push_str("# TYPE cutover_http_rejections_total counter\n");
        for (code, n) in &rejections {
            let _ = writeln!(
                out,
                "cutover_http_rejections_total{{code=\"{}\"}} {n}",
                escape(code)
            );
        }
        out.push_str("# HELP cutover_response_cache_total Answers of the cached read endpoints: kept from an earlier request (hit), computed by a concurrent request and waited for (shared), or computed (miss).\n");
        out.push_str("# TYPE cutover_response_cache_total counter\n");
        for result in CacheResult::ALL {
            let _ = writeln!(
                out,
                "cutover_response_cache_total{{result=\"{}\"}} {}",
                result.label(),
                cache[result as usize]
            );
        }
        out
    }
}

fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// The metrics layer: times and counts every answer.
pub async fn track(State(state): State<ServerState>, req: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let method = req.method().as_str().to_owned();
    let response = next.run(req).await;
    let status = response.status();
    let code = response
        .extensions()
        .get::<ErrorCode>()
        .copied()
        .or_else(|| {
            // Answers not built by this crate (the agent protocol's, axum's own) count by status.
            match status.as_u16() {
                400 | 422 => Some(ErrorCode::BadRequest),
                401 => Some(ErrorCode::Unauthorized),
                403 => Some(ErrorCode::Forbidden),
                413 => Some(ErrorCode::PayloadTooLarge),
                _ => None,
            }
        });
    state.metrics.record(
        &route,
        &method,
        status.as_u16(),
        started.elapsed().as_secs_f64(),
        code,
    );
    response
}

/// `GET /metrics`.
pub async fn scrape(State(state): State<ServerState>) -> Result<Response, ApiError> {
    let mut out = state.metrics.render();
    let queued = state
        .store
        .list_jobs(&JobFilter {
            state: Some(JobState::Queued),
            ..JobFilter::default()
        })
        .await?;
    out.push_str("# HELP cutover_queue_depth Queued jobs, by class (read from the store).\n");
    out.push_str("# TYPE cutover_queue_depth gauge\n");
    for class in JobClass::ALL {
        let n = queued.iter().filter(|j| j.class == class.as_str()).count();
        let _ = writeln!(
            out,
            "cutover_queue_depth{{class=\"{}\"}} {n}",
            class.as_str()
        );
    }
    let deployments = state
        .store
        .list_deployments(&DeploymentFilter::default())
        .await?;
    let mut by_state: BTreeMap<&str, u64> = BTreeMap::new();
    for d in &deployments {
        *by_state.entry(d.state.as_str()).or_default() += 1;
    }
    out.push_str("# HELP cutover_deployments Deployments, by state (read from the store).\n");
    out.push_str("# TYPE cutover_deployments gauge\n");
    for (s, n) in by_state {
        let _ = writeln!(out, "cutover_deployments{{state=\"{}\"}} {n}", escape(s));
    }
    let mut response = out.into_response();
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
