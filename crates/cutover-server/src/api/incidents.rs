//! The API's DORA metrics (`cutover metrics`) and incidents (`cutover incident open|resolve`),
//! through the same `cutover_metrics` functions the CLI calls.

use axum::Extension;
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use chrono::Utc;
use cutover_metrics::{MetricsError, MetricsQuery};
use cutover_store::TokenScope;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::types::MetricsParams;

use crate::ServerState;
use crate::auth::Principal;
use crate::body::{ApiJson, ApiQuery};
use crate::error::{ApiError, ErrorBody};

/// `POST /api/v1/incidents`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct IncidentRequest {
    pub environment: String,
    pub summary: String,
    /// The deployment that caused it (default: the environment's live deployment).
    #[serde(default)]
    pub caused_by: Option<i64>,
}

/// `POST /api/v1/incidents/{id}/resolve`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ResolveRequest {
    /// The deployment that restored service (default: the environment's live deployment when it
    /// differs from the cause).
    #[serde(default)]
    pub restored_by: Option<i64>,
}

fn metrics_error(e: MetricsError, field: Option<&str>) -> ApiError {
    let hint = e.hint();
    let err = match &e {
        MetricsError::NoIncident { .. } => ApiError::not_found(e.to_string()),
        MetricsError::AlreadyResolved { .. } => ApiError::conflict(e.to_string()),
        _ if e.is_user_error() => {
            let err = ApiError::bad_request(e.to_string());
            match field {
                Some(f) => err.with_field(f),
                None => err,
            }
        }
        _ => ApiError::internal(e.to_string()),
    };
    match hint {
        Some(h) => err.with_hint(h),
        None => err,
    }
}

/// DORA metrics of an environment with their performance bands (the `cutover metrics --json`
/// document).
#[utoipa::path(get, path = "/api/v1/metrics", tag = "metrics", params(MetricsParams),
    responses((status = 200, description = "the `cutover metrics --json` document", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody)))]
pub async fn metrics(
    State(state): State<ServerState>,
    ApiQuery(params): ApiQuery<MetricsParams>,
) -> Result<Json<Value>, ApiError> {
    let env = match params.env {
        Some(env) => {
            if state.config.environment(&env).is_none() {
                return Err(
                    ApiError::bad_request(format!("unknown environment `{env}`")).with_field("env"),
                );
            }
            env
        }
        None => cutover_views::production_environment(&state.config).ok_or_else(|| {
            ApiError::bad_request("the project has no environments").with_field("env")
        })?,
    };
    let query = MetricsQuery::parse(
        env,
        params.since.as_deref(),
        params.until.as_deref(),
        Utc::now(),
    )
    .map_err(|e| metrics_error(e, Some("since")))?;
    let report = cutover_metrics::compute(&*state.store, &query)
        .await
        .map_err(|e| metrics_error(e, None))?;
    Ok(Json(serde_json::to_value(report).map_err(|e| {
        ApiError::internal(format!("the metrics document: {e}"))
    })?))
}

/// Opens an incident (deployer of the environment).
#[utoipa::path(post, path = "/api/v1/incidents", tag = "incidents", request_body = IncidentRequest,
    responses((status = 201, description = "the `cutover incident open --json` document", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 413, body = ErrorBody)))]
pub async fn open(
    State(state): State<ServerState>,
    Extension(principal): Extension<Principal>,
    ApiJson(req): ApiJson<IncidentRequest>,
) -> Result<(StatusCode, Json<Value>), ApiError> {
    principal.require(TokenScope::Deployer, Some(&req.environment))?;
    if state.config.environment(&req.environment).is_none() {
        return Err(
            ApiError::bad_request(format!("unknown environment `{}`", req.environment))
                .with_field("environment"),
        );
    }
    let summary = req.summary.trim();
    if summary.is_empty() {
        return Err(ApiError::bad_request("the summary is empty").with_field("summary"));
    }
    let opened = cutover_metrics::open_incident(
        &*state.store,
        &req.environment,
        summary,
        req.caused_by,
        &principal.actor(),
        Utc::now(),
    )
    .await
    .map_err(|e| metrics_error(e, Some("caused_by")))?;
    Ok((
        StatusCode::CREATED,
        Json(serde_json::to_value(opened).map_err(|e| ApiError::internal(e.to_string()))?),
    ))
}

/// Resolves an incident (deployer of its environment).
#[utoipa::path(post, path = "/api/v1/incidents/{id}/resolve", tag = "incidents",
    params(("id" = i64, Path, description = "the incident")), request_body = ResolveRequest,
    responses((status = 200, description = "the `cutover incident resolve --json` document", body = Object),
        (status = 400, body = ErrorBody), (status = 401, body = ErrorBody),
        (status = 403, body = ErrorBody), (status = 404, body = ErrorBody),
        (status = 409, body = ErrorBody)))]
pub async fn resolve(
    State(state): State<ServerState>,
    Extension(principal): Extension<Principal>,
    Path(id): Path<i64>,
    ApiJson(req): ApiJson<ResolveRequest>,
) -> Result<Json<Value>, ApiError> {
    let incident = state
        .store
        .get_incident(id)
        .await?
        .ok_or_else(|| ApiError::not_found(format!("there is no incident {id}")))?;
    principal.require(TokenScope::Deployer, Some(&incident.environment))?;
    let resolved = cutover_metrics::resolve_incident(
        &*state.store,
        id,
        req.restored_by,
        &principal.actor(),
        Utc::now(),
    )
    .await
    .map_err(|e| metrics_error(e, Some("restored_by")))?;
    Ok(Json(
        serde_json::to_value(resolved).map_err(|e| ApiError::internal(e.to_string()))?,
    ))
}
