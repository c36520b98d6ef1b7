//! The JSON API under `/api/v1/`: reads through `cutover-views` and the store (the same
//! documents `--json` prints), writes through the same library functions as the CLI.
//!
//! Lists take `?limit=` (default [`DEFAULT_LIMIT`], at most [`MAX_LIMIT`]). Times are RFC 3339 UTC.

pub mod incidents;
pub mod read;
pub mod types;
pub mod write;

use axum::Router;
use axum::routing::{get, post};

use crate::ServerState;
use crate::error::ApiError;

/// The default of `?limit=`.
pub const DEFAULT_LIMIT: i64 = 100;
/// The most a list returns.
pub const MAX_LIMIT: i64 = 1000;

/// The API's routes (state still to be given).
pub fn routes() -> Router<ServerState> {
    Router::new()
        .route("/api/v1/status", get(read::status))
        .route("/api/v1/status/{env}", get(read::env_status))
        .route("/api/v1/releases", get(read::releases))
        .route("/api/v1/releases/{version}", get(read::release))
        .route(
            "/api/v1/deployments",
            get(read::deployments).post(write::create_deployment),
        )
        .route("/api/v1/deployments/{id}", get(read::deployment))
        .route("/api/v1/history", get(read::history))
        .route("/api/v1/audit", get(read::audit))
        .route("/api/v1/environments/{env}/served", get(read::served))
        .route("/api/v1/jobs", get(read::jobs))
        .route("/api/v1/hosts", get(read::hosts))
        .route(
            "/api/v1/incidents",
            get(read::incidents).post(incidents::open),
        )
        .route("/api/v1/incidents/{id}/resolve", post(incidents::resolve))
        .route("/api/v1/metrics", get(incidents::metrics))
        .route("/api/v1/approvals", post(write::create_approval))
        .route("/api/v1/tokens", get(read::tokens))
}

/// Answers paths that match no route.
pub async fn not_found(uri: axum::http::Uri) -> ApiError {
    ApiError::not_found(format!("there is no resource at {}", uri.path()))
        .with_hint("the API is described at /api/openapi.json")
}

/// Parses `?limit=`: default [`DEFAULT_LIMIT`], 1..=[`MAX_LIMIT`].
pub fn limit(value: Option<&str>) -> Result<i64, ApiError> {
    let Some(v) = value else {
        return Ok(DEFAULT_LIMIT);
    };
    match v.parse::<i64>() {
        Ok(n) if (1..=MAX_LIMIT).contains(&n) => Ok(n),
        _ => Err(ApiError::bad_request(format!(
            "limit {v:?} is not a number from 1 to {MAX_LIMIT}"
        ))
        .with_field("limit")),
    }
}

/// Parses an integer query parameter `field`.
pub fn int(field: &str, value: Option<&str>) -> Result<Option<i64>, ApiError> {
    value
        .map(|v| {
            v.parse::<i64>().map_err(|_| {
                ApiError::bad_request(format!("{field} {v:?} is not an integer")).with_field(field)
            })
        })
        .transpose()
}

/// Parses a time query parameter `field`: RFC 3339, or what `cutover audit --at` takes.
pub fn time(
    field: &str,
    value: Option<&str>,
) -> Result<Option<cutover_store::Timestamp>, ApiError> {
    value
        .map(|v| {
            cutover_views::parse_time(v, chrono::Utc::now()).map_err(|e| {
                ApiError::bad_request(format!("{field}: {e}"))
                    .with_field(field)
                    .with_hint(e.hint())
            })
        })
        .transpose()
}
