//! The stylesheet, script and icon, embedded in the binary (no CDN, nothing to install).

use axum::extract::Path;
use axum::http::header;
use axum::response::{IntoResponse, Response};

use crate::WebError;

/// (file name, content type, bytes)
const ASSETS: &[(&str, &str, &str)] = &[
    (
        "style.css",
        "text/css; charset=utf-8",
        include_str!("../assets/style.css"),
    ),
    (
        "app.js",
        "text/javascript; charset=utf-8",
        include_str!("../assets/app.js"),
    ),
    (
        "icon.svg",
        "image/svg+xml",
        include_str!("../assets/icon.svg"),
    ),
];

pub(crate) async fn asset(Path(file): Path<String>) -> Result<Response, WebError> {
    let (_, content_type, body) = ASSETS
        .iter()
        .find(|(name, _, _)| *name == file)
        .ok_or_else(|| WebError::NotFound {
            what: format!("the asset {file}"),
        })?;
    Ok((
        [
            (header::CONTENT_TYPE, *content_type),
            // Embedded in this build: a restart with a new binary is the only way they change.
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        *body,
    )
        .into_response())
}
