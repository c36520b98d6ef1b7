//! The API's writes: approvals (`cutover approve`) and deployments (enqueued as `deploy` jobs).
//! Each checks everything before it writes, so that a refused request changes nothing.

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use chrono::Utc;
use cutover_store::{ReleaseKind, TokenScope};

use super::types::{ApprovalRequest, ApprovalResponse, DeploymentAccepted, DeploymentRequest};
use crate::ServerState;
use crate::auth::Principal;
use crate::body::ApiJson;
use crate::error::{ApiError, ErrorBody};
use crate::jobs::deploy_job;

fn environment<'a>(
    state: &'a ServerState,
    name: &str,
) -> Result<&'a cutover_config::Environment, ApiError> {
    state.config.environment(name).ok_or_else(|| {
        let known: Vec<&str> = state
            .config
            .environments
            .keys()
            .map(String::as_str)
            .collect();
        ApiError::bad_request(format!("unknown environment `{name}`"))
            .with_field("environment")
            .with_hint(format!("the environments are: {}", known.join(", ")))
    })
}

async fn release(state: &ServerState, version: &str) -> Result<cutover_store::Release, ApiError> {
    state.store.get_release(version).await?.ok_or_else(|| {
        ApiError::bad_request(format!("there is no release {version}"))
            .with_field("version")
            .with_hint("GET /api/v1/releases lists them")
    })
}

/// Approves a release for an environment (as the token's name).
#[utoipa::path(post, path = "/api/v1/approvals", tag = "deployments",
    request_body = ApprovalRequest,
    responses((status = 201, body = ApprovalResponse), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn create_approval(
    State(state): State<ServerState>,
    Extension(principal): Extension<Principal>,
    ApiJson(req): ApiJson<ApprovalRequest>,
) -> Result<(StatusCode, Json<ApprovalResponse>), ApiError> {
    principal.require(TokenScope::Deployer, Some(&req.environment))?;
    let env = environment(&state, &req.environment)?;
    release(&state, &req.version).await?;
    let approver = principal.actor();
    if !cutover_gates::approver_allowed(env, &approver) {
        return Err(ApiError::forbidden(format!(
            "{approver} may not approve deployments to `{}`",
            req.environment
        ))
        .with_hint(format!(
            "the approvers of `{}` are {}; the approver is the token's name",
            req.environment,
            env.approvers.join(", ")
        )));
    }
    let existing = cutover_gates::approvals(&*state.store, &req.environment, &req.version)
        .await
        .map_err(|e| ApiError::internal(format!("reading the approvals failed: {e}")))?;
    if let Some(prev) = existing
        .iter()
        .find(|a| a.approver.eq_ignore_ascii_case(&approver))
    {
        return Err(ApiError::conflict(format!(
            "{approver} already approved {} for `{}` (at {})",
            req.version,
            req.environment,
            prev.at.to_rfc3339_opts(chrono::SecondsFormat::Secs, true)
        ))
        .with_hint("approvals count distinct people: another approver has to approve"));
    }
    let comment = req
        .comment
        .as_deref()
        .map(str::trim)
        .filter(|c| !c.is_empty());
    let event = state
        .store
        .append_audit(&cutover_gates::approval_audit(
            &approver,
            &req.environment,
            &req.version,
            comment,
        ))
        .await?;
    let mut approvers: Vec<String> = existing.into_iter().map(|a| a.approver).collect();
    approvers.push(approver.clone());
    Ok((
        StatusCode::CREATED,
        Json(ApprovalResponse {
            environment: req.environment,
            version: req.version,
            approver,
            comment: comment.map(str::to_owned),
            seq: event.seq,
            approvers,
            required: env.approvals,
        }),
    ))
}

/// Asks for a deployment: the environment's gates must be open; a `deploy` job is queued and run
/// by one of the servers' workers.
#[utoipa::path(post, path = "/api/v1/deployments", tag = "deployments",
    request_body = DeploymentRequest,
    responses((status = 202, body = DeploymentAccepted), (status = 400, body = ErrorBody),
        (status = 401, body = ErrorBody), (status = 403, body = ErrorBody),
        (status = 409, body = ErrorBody, description = "a gate holds"),
        (status = 413, body = ErrorBody)))]
pub async fn create_deployment(
    State(state): State<ServerState>,
    Extension(principal): Extension<Principal>,
    ApiJson(req): ApiJson<DeploymentRequest>,
) -> Result<(StatusCode, Json<DeploymentAccepted>), ApiError> {
    principal.require(TokenScope::Deployer, Some(&req.environment))?;
    environment(&state, &req.environment)?;
    let release = release(&state, &req.version).await?;
    let actor = principal.actor();
    let report = evaluate_gates(&state, &req.environment, &req.version, &actor).await?;
    if !report.open() {
        return Err(ApiError::conflict(format!(
            "the gates of {} hold {}: {}",
            req.environment,
            req.version,
            report.summary()
        ))
        .with_hint("`cutover gates ENV --version V` shows them"));
    }
    let job = deploy_job(
        &req.environment,
        &req.version,
        &actor,
        release.kind == ReleaseKind::Hotfix,
    );
    let class = job.class.as_str().to_owned();
    let enqueued = state
        .store
        .enqueue_job(&job, &cutover_store::QueuePolicy::default(), &actor)
        .await?;
    Ok((
        StatusCode::ACCEPTED,
        Json(DeploymentAccepted {
            job: enqueued.id,
            environment: req.environment,
            version: req.version,
            class,
        }),
    ))
}

/// The environment's gates for `version` deployed by `actor`.
///
/// `cutover_gates::evaluate`'s future is not provably `Send` (a higher-ranked lifetime the
/// compiler cannot see through), which an axum handler must be: it runs on a blocking thread of
/// this runtime instead, over owned copies.
async fn evaluate_gates(
    state: &ServerState,
    environment: &str,
    version: &str,
    actor: &str,
) -> Result<cutover_gates::GateReport, ApiError> {
    let (store, config) = (state.store.clone(), state.config.clone());
    let (environment, version, actor) =
        (environment.to_owned(), version.to_owned(), actor.to_owned());
    let handle = tokio::runtime::Handle::current();
    tokio::task::spawn_blocking(move || {
        handle
            .block_on(cutover_gates::evaluate(
                &*store,
                &config,
                &environment,
                &version,
                &actor,
                Utc::now(),
                &cutover_gates::Overrides::default(),
            ))
            .map_err(|e| ApiError::internal(format!("evaluating the gates failed: {e}")))
    })
    .await
    .map_err(|e| ApiError::internal(format!("evaluating the gates ended abnormally: {e}")))?
}
