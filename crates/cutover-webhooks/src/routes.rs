//! `POST /webhooks/github` and `POST /webhooks/gitlab`: verify, parse, and on a merge into the
//! configured branch record the delivery and enqueue the pipeline job in one transaction.
//!
//! Answers: 202 with the job when one was enqueued; 200 `{"ignored": reason}` for an authentic
//! delivery that starts nothing (a replay, another branch, a ping, the second event of one merge);
//! 401 for a missing or bad signature; 400 for a malformed payload (the field named); 404 when
//! the provider has no secret configured; 413 for a body over the limit. Every refusal is audited
//! (`webhook.reject`) and changes nothing else.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use axum::Router;
use axum::extract::{ConnectInfo, Request, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use cutover_config::{Config, Secret, SecretError, SecretValue};
use cutover_core::queue::JobClass;
use cutover_queue::pipeline::{PipelinePayload, ship_job};
use cutover_store::{Audit, Change, NewJob, Store, StoreError};
use serde_json::{Value, json};

use crate::{MergeEvent, Provider, Received, receive};

/// The job kind that runs the pipeline (`cutover ship --to <environment>`) for a commit.
pub use cutover_queue::pipeline::SHIP_KIND;

/// The default body limit (GitHub caps payloads at 25 MB, but merge and push payloads are small).
pub const DEFAULT_MAX_BODY: usize = 5 * 1024 * 1024;

/// Counters, for `/metrics`.
#[derive(Debug, Default)]
pub struct WebhookStats {
    /// Deliveries that enqueued a job.
    pub enqueued: AtomicU64,
    /// Authentic deliveries that started nothing (other branch, ping, duplicate commit).
    pub ignored: AtomicU64,
    /// Replayed deliveries (a delivery id seen before).
    pub replayed: AtomicU64,
    /// Refused deliveries (bad or missing signature, malformed, too large, not configured).
    pub rejected: AtomicU64,
}

/// What the webhook routes need.
#[derive(Clone)]
pub struct WebhookState {
    /// The store.
    pub store: Arc<dyn Store>,
    /// GitHub's webhook secret (`None`: GitHub deliveries are refused with 404).
    pub github_secret: Option<SecretValue>,
    /// GitLab's token (`None`: GitLab deliveries are refused with 404).
    pub gitlab_token: Option<SecretValue>,
    /// Merges into this branch start the pipeline (`project.main_branch`).
    pub branch: String,
    /// The pipeline's first environment (see [`first_environment`]).
    pub environment: String,
    /// Bodies larger than this get 413.
    pub max_body: usize,
    /// Counters.
    pub stats: Arc<WebhookStats>,
}

impl std::fmt::Debug for WebhookState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WebhookState")
            .field("github", &self.github_secret.is_some())
            .field("gitlab", &self.gitlab_token.is_some())
            .field("branch", &self.branch)
            .field("environment", &self.environment)
            .finish_non_exhaustive()
    }
}

impl WebhookState {
    /// The state for `config`: its main branch and first environment; `None` when the project
    /// has no environment (nothing to deploy to).
    pub fn new(
        store: Arc<dyn Store>,
        config: &Config,
        github_secret: Option<SecretValue>,
        gitlab_token: Option<SecretValue>,
    ) -> Option<WebhookState> {
        Some(WebhookState {
            store,
            github_secret,
            gitlab_token,
            branch: config.project.main_branch.clone(),
            environment: first_environment(config)?,
            max_body: DEFAULT_MAX_BODY,
            stats: Arc::default(),
        })
    }
}

impl WebhookState {
    /// The state for `config`'s `[webhooks]`: its secrets resolved by `resolve` (e.g.
    /// `|s| s.resolve(project_dir, &|k| std::env::var(k).ok())`), its branch (default
    /// `project.main_branch`), the first environment. `Ok(None)` when there is no `[webhooks]` or
    /// no environment.
    pub fn from_config(
        store: Arc<dyn Store>,
        config: &Config,
        resolve: &dyn Fn(&Secret) -> Result<SecretValue, SecretError>,
    ) -> Result<Option<WebhookState>, SecretError> {
        let Some(w) = &config.webhooks else {
            return Ok(None);
        };
        let github = w.github_secret.as_ref().map(resolve).transpose()?;
        let gitlab = w.gitlab_token.as_ref().map(resolve).transpose()?;
        let state = WebhookState::new(store, config, github, gitlab).map(|mut s| {
            if let Some(branch) = &w.branch {
                s.branch = branch.clone();
            }
            s
        });
        Ok(state)
    }
}

/// The first environment of the pipeline: the start of the longest `promote_from` chain (the
/// one leading to production); with no chains, the first environment by name.
pub fn first_environment(config: &Config) -> Option<String> {
    let envs = &config.environments;
    let root_and_depth = |name: &str| {
        let mut at = name;
        let mut depth = 0usize;
        while let Some(from) = envs.get(at).and_then(|e| e.promote_from.as_deref()) {
            if depth > envs.len() || !envs.contains_key(from) {
                break;
            }
            depth += 1;
            at = from;
        }
        (at.to_owned(), depth)
    };
    let mut best: Option<(String, usize)> = None;
    for name in envs.keys() {
        let (root, depth) = root_and_depth(name);
        if best.as_ref().is_none_or(|(_, d)| depth > *d) {
            best = Some((root, depth));
        }
    }
    best.map(|(root, _)| root)
}

/// The routes: `POST /webhooks/github` and `POST /webhooks/gitlab`. For the remote address in
/// the audit, serve with `into_make_service_with_connect_info::<SocketAddr>()`.
pub fn routes(state: WebhookState) -> Router {
    Router::new()
        .route("/webhooks/github", post(github))
        .route("/webhooks/gitlab", post(gitlab))
        .with_state(state)
}

async fn github(State(state): State<WebhookState>, request: Request) -> Response {
    handle(Provider::GitHub, &state, request).await
}

async fn gitlab(State(state): State<WebhookState>, request: Request) -> Response {
    handle(Provider::GitLab, &state, request).await
}

fn error(status: StatusCode, code: &str, message: String, field: Option<&str>) -> Response {
    let mut body = json!({"code": code, "message": message});
    if let (Some(field), Some(map)) = (field, body.as_object_mut()) {
        map.insert("field".into(), json!(field));
    }
    (status, axum::Json(json!({ "error": body }))).into_response()
}

async fn handle(provider: Provider, state: &WebhookState, request: Request) -> Response {
    let remote = request
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.to_string());
    let (parts, body) = request.into_parts();
    let reject = |reason: String| {
        let store = state.store.clone();
        let remote = remote.clone();
        state.stats.rejected.fetch_add(1, Ordering::Relaxed);
        async move {
            let audit = Audit::new(
                format!("webhook:{}", provider.as_str()),
                "webhook.reject",
                format!("webhook:{}", provider.as_str()),
                json!({"provider": provider.as_str(), "reason": reason, "remote": remote}),
            );
            // The refusal is answered whatever the store says; the audit is best effort.
            let _ = store.append_audit(&audit).await;
        }
    };
    let Ok(body) = axum::body::to_bytes(body, state.max_body).await else {
        reject("body too large".to_owned()).await;
        return error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("the body is larger than {} bytes", state.max_body),
            None,
        );
    };
    let secret = match provider {
        Provider::GitHub => state.github_secret.as_ref(),
        Provider::GitLab => state.gitlab_token.as_ref(),
    };
    let Some(secret) = secret else {
        reject("not configured".to_owned()).await;
        return error(
            StatusCode::NOT_FOUND,
            "not_found",
            format!("webhooks from {} are not configured", provider.as_str()),
            None,
        );
    };
    let received = match receive(provider, secret.expose().as_bytes(), &parts.headers, &body) {
        Ok(r) => r,
        Err(e) => {
            reject(e.reason()).await;
            let (status, code) = if e.is_auth() {
                (StatusCode::UNAUTHORIZED, "unauthorized")
            } else {
                (StatusCode::BAD_REQUEST, "bad_request")
            };
            return error(status, code, e.to_string(), e.field());
        }
    };
    let merge = match received {
        Received::Merge(m) if m.branch == state.branch => m,
        Received::Merge(m) => {
            state.stats.ignored.fetch_add(1, Ordering::Relaxed);
            return ignored(&format!(
                "branch {} is not {} (the configured branch)",
                m.branch, state.branch
            ));
        }
        Received::Ignored { reason, .. } => {
            state.stats.ignored.fetch_add(1, Ordering::Relaxed);
            return ignored(&reason);
        }
    };
    enqueue(provider, state, &merge).await
}

fn ignored(reason: &str) -> Response {
    (StatusCode::OK, axum::Json(json!({ "ignored": reason }))).into_response()
}

fn receive_payload(merge: &MergeEvent, environment: &str, extra: Value) -> Value {
    let mut payload = json!({
        "provider": merge.provider.as_str(),
        "delivery": merge.delivery_id,
        "event": merge.event,
        "branch": merge.branch,
        "commit": merge.commit,
        "actor": merge.actor,
        "repository": merge.repository,
        "number": merge.number,
        "environment": environment,
    });
    if let (Some(map), Value::Object(extra)) = (payload.as_object_mut(), extra) {
        map.extend(extra);
    }
    payload
}

/// Records the delivery and enqueues the pipeline job, in one transaction. A delivery id seen
/// before is a replay; a commit already enqueued by another delivery (GitHub and GitLab both send
/// a push *and* a merge event for one merge) is recorded and ignored.
async fn enqueue(provider: Provider, state: &WebhookState, merge: &MergeEvent) -> Response {
    let now = chrono::Utc::now();
    let actor = format!("webhook:{}", provider.as_str());
    let subject = format!("webhook:{}:{}", provider.as_str(), merge.delivery_id);
    let delivery = Change::RecordWebhookDelivery {
        provider: provider.as_str().to_owned(),
        delivery_id: merge.delivery_id.clone(),
        at: now,
    };
    // The pipeline job `cutover serve` runs (`cutover_queue::pipeline`): ship this commit to
    // the first environment. Inserted here rather than through `enqueue_job` so that it lands
    // in the same transaction as the delivery record.
    let pipeline = ship_job(
        JobClass::Release,
        &PipelinePayload {
            environment: state.environment.clone(),
            from: None,
            version: None,
            commit: Some(merge.commit.clone()),
            actor: format!("{actor}:{}", merge.actor),
            message: Some(format!(
                "{} {} of {} (delivery {})",
                provider.as_str(),
                merge.event,
                merge.branch,
                merge.delivery_id
            )),
        },
    );
    let job = NewJob {
        class: pipeline.class.as_str().to_owned(),
        priority: pipeline.priority,
        kind: pipeline.kind,
        payload: pipeline.payload,
        supersede_key: pipeline.supersede_key,
        concurrency_group: pipeline.concurrency_group,
        run_at: now,
        created_at: now,
    };
    let changes = [
        delivery.clone(),
        // The commit as a second delivery key: the one that records it first enqueues.
        Change::RecordWebhookDelivery {
            provider: format!("{}-commit", provider.as_str()),
            delivery_id: merge.commit.clone(),
            at: now,
        },
        Change::InsertJob(job),
    ];
    let audit = Audit::new(
        &actor,
        "webhook.receive",
        &subject,
        receive_payload(
            merge,
            &state.environment,
            json!({"job": {"kind": SHIP_KIND, "to": state.environment}}),
        ),
    );
    let internal = |e: StoreError| {
        error(
            StatusCode::INTERNAL_SERVER_ERROR,
            "internal",
            format!("the store: {e}"),
            None,
        )
    };
    match state.store.apply(&changes, &audit).await {
        Ok(applied) => {
            state.stats.enqueued.fetch_add(1, Ordering::Relaxed);
            let id = applied.id(2);
            (
                StatusCode::ACCEPTED,
                axum::Json(json!({
                    "enqueued": {"job": id, "kind": SHIP_KIND, "to": state.environment, "commit": merge.commit},
                    "audit": applied.event.seq,
                })),
            )
                .into_response()
        }
        Err(StoreError::Conflict { .. }) => {
            // Which key was seen: record the delivery alone; if that conflicts too, it is a replay.
            let audit = Audit::new(
                &actor,
                "webhook.receive",
                &subject,
                receive_payload(
                    merge,
                    &state.environment,
                    json!({"ignored": "a job for this commit was enqueued by an earlier delivery"}),
                ),
            );
            match state.store.apply(&[delivery], &audit).await {
                Ok(_) => {
                    state.stats.ignored.fetch_add(1, Ordering::Relaxed);
                    ignored("duplicate commit")
                }
                Err(StoreError::Conflict { .. }) => {
                    state.stats.replayed.fetch_add(1, Ordering::Relaxed);
                    ignored("replay")
                }
                Err(e) => internal(e),
            }
        }
        Err(e) => internal(e),
    }
}
