//! The API's reads. Each answers the document the CLI prints with `--json` where there is one.

use std::collections::BTreeMap;

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use axum::response::Response;
use axum::{Extension, Json};
use chrono::Utc;
use cutover_store::{AuditFilter, DataVersion, DeploymentFilter, JobFilter, JobState};
use cutover_views::ViewOptions;
use serde_json::Value;

use super::types::{
    AtQuery, AuditQuery, BomSummary, CheckRef, DeploymentDetail, EnvQuery, JobsQuery, LimitQuery,
    ReleaseDetail, ReleaseSummary, TokenView,
};
use super::{int, limit, time};
use crate::ServerState;
use crate::body::ApiQuery;
use crate::cache::{self, Computed, RequestVersion};
use crate::error::{ApiError, ErrorBody};

type ApiResult<T> = Result<Json<T>, ApiError>;

fn known_environment(state: &ServerState, env: &str) -> Result<(), ApiError> {
    if state.config.environments.contains_key(env) {
        return Ok(());
    }
    let known: Vec<&str> = state
        .config
        .environments
        .keys()
        .map(String::as_str)
        .collect();
    Err(ApiError::not_found(format!("unknown environment `{env}`"))
        .with_hint(format!("the environments are: {}", known.join(", "))))
}

/// The data version the request's authentication read; for a request without a token
/// (`--public-read`) read now.
async fn request_version(
    state: &ServerState,
    version: Option<Extension<RequestVersion>>,
) -> Result<Option<DataVersion>, ApiError> {
    match version {
        Some(Extension(RequestVersion(v))) => Ok(v),
        None => Ok(state.store.data_version().await?),
    }
}

/// The instant the first connected host of `environments` would count as disconnected if its
/// agent stayed quiet: the status holds until then (or until a write).
fn connected_until(
    environments: &[cutover_views::EnvStatus],
    options: &ViewOptions,
) -> Option<cutover_store::Timestamp> {
    let window = chrono::Duration::from_std(options.poll_timeout.saturating_mul(3)).ok()?;
    environments
        .iter()
        .flat_map(|e| &e.hosts)
        .filter(|h| h.connected)
        .filter_map(|h| h.last_seen.map(|seen| seen + window))
        .min()
}

/// What runs where, in every environment.
#[utoipa::path(get, path = "/api/v1/status", tag = "status",
    responses((status = 200, body = super::types::docs::StatusDoc),
        (status = 304, description = "unchanged since the `ETag` given in `If-None-Match`"),
        (status = 401, body = ErrorBody)))]
pub async fn status(
    State(state): State<ServerState>,
    version: Option<Extension<RequestVersion>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let version = request_version(&state, version).await?;
    let key = Some("status".to_owned());
    cache::answer(&state, version.as_ref(), key, &headers, async {
        let options = ViewOptions::at(Utc::now());
        let status = cutover_views::status(&*state.store, &state.config, None, &options).await?;
        let valid_until = connected_until(&status.environments, &options);
        Ok(Computed {
            document: status,
            valid_until,
        })
    })
    .await
}

/// What runs where in one environment.
#[utoipa::path(get, path = "/api/v1/status/{env}", tag = "status",
    params(("env" = String, Path, description = "The environment")),
    responses((status = 200, body = super::types::docs::EnvStatusDoc),
        (status = 304, description = "unchanged since the `ETag` given in `If-None-Match`"),
        (status = 404, body = ErrorBody)))]
pub async fn env_status(
    State(state): State<ServerState>,
    Path(env): Path<String>,
    version: Option<Extension<RequestVersion>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    known_environment(&state, &env)?;
    let version = request_version(&state, version).await?;
    let key = Some(format!("status/{env}"));
    cache::answer(&state, version.as_ref(), key, &headers, async {
        let options = ViewOptions::at(Utc::now());
        let status =
            cutover_views::status(&*state.store, &state.config, Some(&env), &options).await?;
        let valid_until = connected_until(&status.environments, &options);
        let document = status
            .environments
            .into_iter()
            .next()
            .ok_or_else(|| ApiError::not_found(format!("unknown environment `{env}`")))?;
        Ok(Computed {
            document,
            valid_until,
        })
    })
    .await
}

fn summary(r: &cutover_store::Release) -> ReleaseSummary {
    ReleaseSummary {
        version: r.version.clone(),
        tag: r.tag.clone(),
        commit: r.commit.clone(),
        kind: r.kind.as_str().to_owned(),
        artifact_digest: r.artifact_digest.clone(),
        created_at: r.created_at,
    }
}

/// Releases, newest first.
#[utoipa::path(get, path = "/api/v1/releases", tag = "releases", params(LimitQuery),
    responses((status = 200, body = Vec<ReleaseSummary>), (status = 400, body = ErrorBody)))]
pub async fn releases(
    State(state): State<ServerState>,
    ApiQuery(q): ApiQuery<LimitQuery>,
) -> ApiResult<Vec<ReleaseSummary>> {
    let limit = usize::try_from(limit(q.limit.as_deref())?).unwrap_or(usize::MAX);
    let releases = state.store.list_releases().await?;
    Ok(Json(
        releases.iter().rev().take(limit).map(summary).collect(),
    ))
}

/// Counts the components of a CycloneDX document by license.
#[must_use]
pub fn bom_summary(bom: &Value) -> BomSummary {
    let components = bom
        .get("components")
        .and_then(Value::as_array)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let mut licenses: BTreeMap<String, usize> = BTreeMap::new();
    for c in components {
        let names: Vec<String> = c
            .get("licenses")
            .and_then(Value::as_array)
            .map(|ls| {
                ls.iter()
                    .filter_map(|l| {
                        let lic = l.get("license");
                        l.get("expression")
                            .or_else(|| lic.and_then(|x| x.get("id")))
                            .or_else(|| lic.and_then(|x| x.get("name")))
                            .and_then(Value::as_str)
                            .map(str::to_owned)
                    })
                    .collect()
            })
            .unwrap_or_default();
        if names.is_empty() {
            *licenses.entry("unknown".to_owned()).or_default() += 1;
        }
        for n in names {
            *licenses.entry(n).or_default() += 1;
        }
    }
    let spec = bom
        .get("specVersion")
        .and_then(Value::as_str)
        .unwrap_or("?");
    BomSummary {
        format: format!("CycloneDX {spec}"),
        components: components.len(),
        licenses,
    }
}

/// A release: notes, changes, bill of materials summary, vulnerabilities, checks, deployments.
#[utoipa::path(get, path = "/api/v1/releases/{version}", tag = "releases",
    params(("version" = String, Path, description = "The release's version")),
    responses((status = 200, body = ReleaseDetail),
        (status = 304, description = "unchanged since the `ETag` given in `If-None-Match`"),
        (status = 404, body = ErrorBody)))]
pub async fn release(
    State(state): State<ServerState>,
    Path(version): Path<String>,
    data_version: Option<Extension<RequestVersion>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let data_version = request_version(&state, data_version).await?;
    let key = Some(format!("release/{version}"));
    cache::answer(&state, data_version.as_ref(), key, &headers, async {
        release_detail(&state, &version).await.map(Computed::new)
    })
    .await
}

async fn release_detail(state: &ServerState, version: &str) -> Result<ReleaseDetail, ApiError> {
    let release = state.store.get_release(version).await?.ok_or_else(|| {
        ApiError::not_found(format!("there is no release {version}"))
            .with_hint("GET /api/v1/releases lists them")
    })?;
    let jobs = state
        .store
        .list_jobs(&JobFilter {
            kind: Some(cutover_queue::CHECK_KIND.to_owned()),
            release_version: Some(version.to_owned()),
            ..JobFilter::default()
        })
        .await?;
    let checks = jobs
        .into_iter()
        .map(|j| CheckRef {
            job: j.id,
            name: j
                .payload
                .pointer("/check/name")
                .and_then(Value::as_str)
                .map(str::to_owned),
            state: j.state,
            attempts: j.attempts,
            last_error: j.last_error,
            finished_at: j.finished_at,
        })
        .collect();
    let deployments = cutover_views::release_history(&*state.store, version).await?;
    Ok(ReleaseDetail {
        release: summary(&release),
        bom: release.bom.as_ref().map(bom_summary),
        notes: release.notes,
        changes: release.changes,
        vulns: release.vulns,
        checks,
        deployments,
    })
}

/// Deployments, newest first.
#[utoipa::path(get, path = "/api/v1/deployments", tag = "deployments", params(EnvQuery),
    responses((status = 200, body = super::types::docs::DeploymentsDoc), (status = 400, body = ErrorBody)))]
pub async fn deployments(
    State(state): State<ServerState>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> ApiResult<Vec<cutover_store::Deployment>> {
    let limit = limit(q.limit.as_deref())?;
    Ok(Json(
        state
            .store
            .list_deployments(&DeploymentFilter {
                environment: q.env,
                unfinished_only: false,
                limit: Some(limit),
            })
            .await?,
    ))
}

/// A deployment with its steps and proofs of delivery.
#[utoipa::path(get, path = "/api/v1/deployments/{id}", tag = "deployments",
    params(("id" = i64, Path, description = "The deployment's id")),
    responses((status = 200, body = DeploymentDetail), (status = 404, body = ErrorBody)))]
pub async fn deployment(
    State(state): State<ServerState>,
    Path(id): Path<String>,
) -> ApiResult<DeploymentDetail> {
    let id = int("id", Some(&id))?.unwrap_or_default();
    let deployment = state
        .store
        .get_deployment(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no deployment {id}")))?;
    let steps = state.store.list_deployment_steps(id).await?;
    let proofs = state.store.list_proofs(id).await?;
    Ok(Json(DeploymentDetail {
        deployment,
        steps,
        proofs,
    }))
}

/// The deployment history (`cutover history --json`).
#[utoipa::path(get, path = "/api/v1/history", tag = "deployments", params(EnvQuery),
    responses((status = 200, body = super::types::docs::HistoryDoc), (status = 400, body = ErrorBody)))]
pub async fn history(
    State(state): State<ServerState>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> ApiResult<Vec<cutover_views::HistoryEntry>> {
    let limit = usize::try_from(limit(q.limit.as_deref())?).unwrap_or(usize::MAX);
    if let Some(env) = &q.env {
        known_environment(&state, env)?;
    }
    Ok(Json(
        cutover_views::history(&*state.store, q.env.as_deref(), Some(limit)).await?,
    ))
}

/// The audit log, filtered; oldest first (page with `after_seq`).
#[utoipa::path(get, path = "/api/v1/audit", tag = "audit", params(AuditQuery),
    responses((status = 200, body = super::types::docs::AuditDoc), (status = 400, body = ErrorBody)))]
pub async fn audit(
    State(state): State<ServerState>,
    ApiQuery(q): ApiQuery<AuditQuery>,
) -> ApiResult<Vec<cutover_store::AuditEvent>> {
    let filter = AuditFilter {
        since: time("since", q.since.as_deref())?,
        until: time("until", q.until.as_deref())?,
        action: q.action,
        subject: q.subject,
        after_seq: int("after_seq", q.after_seq.as_deref())?,
        descending: false,
        limit: Some(limit(q.limit.as_deref())?),
    };
    Ok(Json(state.store.list_audit(&filter).await?))
}

/// What ran on each host of an environment at an instant.
#[utoipa::path(get, path = "/api/v1/environments/{env}/served", tag = "audit",
    params(("env" = String, Path, description = "The environment"), AtQuery),
    responses((status = 200, body = super::types::docs::ServedAtDoc),
        (status = 304, description = "unchanged since the `ETag` given in `If-None-Match`"),
        (status = 400, body = ErrorBody), (status = 404, body = ErrorBody)))]
pub async fn served(
    State(state): State<ServerState>,
    Path(env): Path<String>,
    ApiQuery(q): ApiQuery<AtQuery>,
    version: Option<Extension<RequestVersion>>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    known_environment(&state, &env)?;
    let given = time("at", q.at.as_deref())?;
    let at = given.unwrap_or_else(Utc::now);
    let version = request_version(&state, version).await?;
    // Without `at` the answer names the current instant: never the same twice.
    let key = given.map(|at| format!("served/{env}/{}", at.timestamp_micros()));
    cache::answer(&state, version.as_ref(), key, &headers, async {
        let hosts = state
            .config
            .environment(&env)
            .map(cutover_views::host_names)
            .unwrap_or_default();
        let served = cutover_views::served_at(&*state.store, &env, &hosts, at).await?;
        Ok(Computed::new(served))
    })
    .await
}

/// The queue's jobs, newest first.
#[utoipa::path(get, path = "/api/v1/jobs", tag = "queue", params(JobsQuery),
    responses((status = 200, body = super::types::docs::JobsDoc), (status = 400, body = ErrorBody)))]
pub async fn jobs(
    State(state): State<ServerState>,
    ApiQuery(q): ApiQuery<JobsQuery>,
) -> ApiResult<Vec<cutover_store::Job>> {
    let job_state = q
        .state
        .as_deref()
        .map(|s| {
            JobState::parse(s).ok_or_else(|| {
                ApiError::bad_request(format!("unknown job state {s:?}"))
                    .with_field("state")
                    .with_hint("queued, running, succeeded, failed or cancelled")
            })
        })
        .transpose()?;
    Ok(Json(
        state
            .store
            .list_jobs(&JobFilter {
                state: job_state,
                kind: q.kind,
                release_version: q.release,
                ids: Vec::new(),
                limit: Some(limit(q.limit.as_deref())?),
            })
            .await?,
    ))
}

/// Registered hosts and what their agents run.
#[utoipa::path(get, path = "/api/v1/hosts", tag = "status",
    responses((status = 200, body = super::types::docs::HostsDoc)))]
pub async fn hosts(State(state): State<ServerState>) -> ApiResult<Vec<cutover_views::HostRuns>> {
    let (hosts, _unreadable) =
        cutover_views::hosts(&*state.store, &ViewOptions::at(Utc::now())).await?;
    Ok(Json(hosts))
}

/// Incidents, oldest first.
#[utoipa::path(get, path = "/api/v1/incidents", tag = "incidents", params(EnvQuery),
    responses((status = 200, body = super::types::docs::IncidentsDoc)))]
pub async fn incidents(
    State(state): State<ServerState>,
    ApiQuery(q): ApiQuery<EnvQuery>,
) -> ApiResult<Vec<cutover_store::Incident>> {
    let limit = usize::try_from(limit(q.limit.as_deref())?).unwrap_or(usize::MAX);
    let all = state.store.list_incidents(q.env.as_deref()).await?;
    let skip = all.len().saturating_sub(limit);
    Ok(Json(all.into_iter().skip(skip).collect()))
}

/// The API tokens (admin only; never their secrets).
#[utoipa::path(get, path = "/api/v1/tokens", tag = "tokens",
    responses((status = 200, body = Vec<TokenView>), (status = 403, body = ErrorBody)))]
pub async fn tokens(State(state): State<ServerState>) -> ApiResult<Vec<TokenView>> {
    Ok(Json(
        state
            .store
            .list_api_tokens()
            .await?
            .into_iter()
            .map(TokenView::from)
            .collect(),
    ))
}
