//! The OpenAPI 3.1 document of the JSON API, derived from the handlers' annotations and the API
//! types. `docs/openapi.json` is its committed copy (`cargo xtask codegen` writes it; a test and
//! `cargo xtask codegen --check` fail when it is stale).

use axum::Json;
use axum::response::IntoResponse;
use utoipa::OpenApi;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};

use crate::api::{incidents, read, types, write};
use crate::error::{ErrorBody, ErrorCode, ErrorDetail};

#[derive(OpenApi)]
#[openapi(
    info(
        title = "cutover",
        description = "The JSON API of `cutover serve`. Every request needs an API token \
            (`Authorization: Bearer cutover_…`, made by `cutover token create`): viewer for reads, \
            deployer (for its environments) for deployments and approvals, admin for tokens. \
            Errors have one shape: `{\"error\": {\"code\", \"message\", \"field\", \"hint\"}}`.",
        license(name = "MIT OR Apache-2.0"),
    ),
    paths(
        read::status, read::env_status, read::releases, read::release, read::deployments,
        read::deployment, read::history, read::audit, read::served, read::jobs, read::hosts,
        read::incidents, read::tokens, write::create_approval, write::create_deployment,
        incidents::metrics, incidents::open, incidents::resolve,
    ),
    components(schemas(
        ErrorBody, ErrorDetail, ErrorCode,
        types::ApprovalRequest, types::ApprovalResponse, types::DeploymentRequest,
        types::DeploymentAccepted, types::ReleaseSummary, types::ReleaseDetail, types::BomSummary,
        types::CheckRef, types::DeploymentDetail, types::TokenView,
        incidents::IncidentRequest, incidents::ResolveRequest,
    )),
    modifiers(&BearerAuth),
    security(("bearer" = [])),
)]
struct ApiDoc;

struct BearerAuth;

impl utoipa::Modify for BearerAuth {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        components.add_security_scheme(
            "bearer",
            SecurityScheme::Http(
                HttpBuilder::new()
                    .scheme(HttpAuthScheme::Bearer)
                    .bearer_format("cutover_<43 characters>")
                    .build(),
            ),
        );
    }
}

/// The document.
#[must_use]
pub fn openapi() -> utoipa::openapi::OpenApi {
    let mut doc = ApiDoc::openapi();
    // The crate's version would make the committed copy change at every release bump.
    doc.info.version = "1".to_owned();
    doc
}

/// The document as committed in `docs/openapi.json`: pretty JSON with a final newline.
#[must_use]
pub fn openapi_json() -> String {
    let mut s = openapi()
        .to_pretty_json()
        .unwrap_or_else(|e| format!("{{\"error\": \"{e}\"}}"));
    s.push('\n');
    s
}

/// `GET /api/openapi.json`.
pub async fn serve() -> impl IntoResponse {
    Json(openapi())
}
