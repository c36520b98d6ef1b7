//! What can go wrong while rendering a page, and the error page each case gets.

use axum::http::StatusCode;
use axum::response::{Html, IntoResponse, Response};

#[derive(Debug, thiserror::Error)]
pub enum WebError {
    #[error("{what} was not found")]
    NotFound { what: String },
    #[error("the query parameter `{field}` is not valid: {message}")]
    BadRequest { field: String, message: String },
    #[error(transparent)]
    Store(#[from] cutover_store::StoreError),
    #[error(transparent)]
    Views(#[from] cutover_views::ViewsError),
    /// Boxed: the metrics error is large and every handler returns this type.
    #[error(transparent)]
    Metrics(Box<cutover_metrics::MetricsError>),
    #[error("the page template {name} failed: {source}")]
    Template {
        name: String,
        #[source]
        source: Box<minijinja::Error>,
    },
}

impl WebError {
    fn status(&self) -> StatusCode {
        match self {
            WebError::NotFound { .. } => StatusCode::NOT_FOUND,
            WebError::BadRequest { .. } => StatusCode::BAD_REQUEST,
            WebError::Views(e) if e.is_user_error() => StatusCode::BAD_REQUEST,
            WebError::Metrics(e) if e.is_user_error() => StatusCode::BAD_REQUEST,
            _ => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

impl From<cutover_metrics::MetricsError> for WebError {
    fn from(e: cutover_metrics::MetricsError) -> Self {
        WebError::Metrics(Box::new(e))
    }
}

impl WebError {
    /// What to do about it, when there is something to say.
    #[must_use]
    pub fn hint(&self) -> Option<String> {
        match self {
            WebError::Store(e) => e.hint(),
            WebError::Views(e) => e.hint(),
            WebError::Metrics(e) => e.hint(),
            WebError::NotFound { .. } | WebError::BadRequest { .. } | WebError::Template { .. } => {
                None
            }
        }
    }
}

impl IntoResponse for WebError {
    fn into_response(self) -> Response {
        let status = self.status();
        let title = status.canonical_reason().unwrap_or("Error");
        let body =
            crate::render::error_page(status.as_u16(), title, &self.to_string(), self.hint());
        (status, Html(body)).into_response()
    }
}
