//! The API's one error shape: `{"error": {"code", "message", "field"?, "hint"?}}` with the HTTP
//! status that goes with the code. Every answer built from it carries its code as a response
//! extension, so that the metrics layer counts rejections by code.

use axum::Json;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use cutover_store::StoreError;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

/// What went wrong, as a machine-readable code.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    BadRequest,
    Unauthorized,
    Forbidden,
    NotFound,
    Conflict,
    PayloadTooLarge,
    Internal,
}

impl ErrorCode {
    #[must_use]
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "bad_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::Conflict => "conflict",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::Internal => "internal",
        }
    }

    #[must_use]
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest => StatusCode::BAD_REQUEST,
            ErrorCode::Unauthorized => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden => StatusCode::FORBIDDEN,
            ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::Conflict => StatusCode::CONFLICT,
            ErrorCode::PayloadTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::Internal => StatusCode::INTERNAL_SERVER_ERROR,
        }
    }
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorBody {
    pub error: ErrorDetail,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, ToSchema)]
pub struct ErrorDetail {
    pub code: ErrorCode,
    pub message: String,
    /// The JSON path of the offending field of the request (body or query), when known.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub field: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hint: Option<String>,
}

/// An error answer.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{}: {}", .0.code.as_str(), .0.message)]
pub struct ApiError(pub ErrorDetail);

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self(ErrorDetail {
            code,
            message: message.into(),
            field: None,
            hint: None,
        })
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::NotFound, message)
    }

    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Conflict, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    #[must_use]
    pub fn with_field(mut self, field: impl Into<String>) -> Self {
        self.0.field = Some(field.into());
        self
    }

    #[must_use]
    pub fn with_hint(mut self, hint: impl Into<String>) -> Self {
        self.0.hint = Some(hint.into());
        self
    }

    #[must_use]
    pub fn code(&self) -> ErrorCode {
        self.0.code
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let code = self.0.code;
        if code == ErrorCode::Internal {
            tracing::warn!(message = %self.0.message, "API request failed");
        }
        let mut response = (code.status(), Json(ErrorBody { error: self.0 })).into_response();
        response.extensions_mut().insert(code);
        if code == ErrorCode::Unauthorized {
            response.headers_mut().insert(
                axum::http::header::WWW_AUTHENTICATE,
                axum::http::HeaderValue::from_static("Bearer realm=\"cutover\""),
            );
        }
        response
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match &e {
            StoreError::NotFound { .. } => ApiError::not_found(e.to_string()),
            StoreError::Conflict { .. } | StoreError::LockHeld { .. } => {
                ApiError::conflict(e.to_string())
            }
            _ => ApiError::internal(format!("the store failed: {e}")),
        }
    }
}

impl From<cutover_views::ViewsError> for ApiError {
    fn from(e: cutover_views::ViewsError) -> Self {
        match e {
            cutover_views::ViewsError::Store(e) => e.into(),
            e @ cutover_views::ViewsError::UnknownEnvironment { .. } => {
                let hint = e.hint();
                let err = ApiError::not_found(e.to_string());
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            }
            e @ cutover_views::ViewsError::Time(_) => {
                let hint = e.hint();
                let err = ApiError::bad_request(e.to_string());
                match hint {
                    Some(h) => err.with_hint(h),
                    None => err,
                }
            }
        }
    }
}
