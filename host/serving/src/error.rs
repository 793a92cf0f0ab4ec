//! [`ServeError`]: every failure a client of a yoi server can see, answered as
//! `{"error":{"code","message"}}` with the HTTP status of its [`ErrorCode`].

use axum::Json;
use axum::extract::rejection::{JsonRejection, PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yoi_protocol::{ApiError, ErrorCode};
use yoi_runtime::RuntimeError;

/// A typed error answer. The message never carries a secret, a path or a runtime address.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{code}: {message}")]
pub struct ServeError {
    pub code: ErrorCode,
    pub message: String,
    /// Overrides the status of `code` (only where HTTP has a more precise status, such as
    /// 405 for a known route with the wrong method).
    status: Option<StatusCode>,
}

impl ServeError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ServeError {
            code,
            message: message.into(),
            status: None,
        }
    }

    pub fn invalid(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidRequest, message)
    }

    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    pub fn unauthorized(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Unauthorized, message)
    }

    pub fn worker_not_found(worker_id: &str) -> Self {
        Self::new(
            ErrorCode::WorkerNotFound,
            format!("worker {worker_id} not found"),
        )
    }

    /// `/readyz` while the event store of `runtimes` refuses appends.
    pub fn store_failing(runtimes: &str) -> Self {
        Self::new(
            ErrorCode::RuntimeUnavailable,
            format!(
                "the event store of runtime {runtimes} refuses appends; commands to it are refused until it takes them again"
            ),
        )
    }

    pub fn internal(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Internal, message)
    }

    pub fn with_status(mut self, status: StatusCode) -> Self {
        self.status = Some(status);
        self
    }

    pub fn status(&self) -> StatusCode {
        self.status.unwrap_or_else(|| {
            StatusCode::from_u16(self.code.http_status())
                .unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
        })
    }

    /// The wire body.
    pub fn body(&self) -> ApiError {
        ApiError::new(self.code, self.message.clone())
    }
}

impl IntoResponse for ServeError {
    fn into_response(self) -> Response {
        let status = self.status();
        if self.code == ErrorCode::Internal {
            tracing::warn!(message = %self.message, "request failed");
        } else {
            tracing::debug!(code = %self.code, message = %self.message, "request refused");
        }
        (status, Json(self.body())).into_response()
    }
}

impl From<RuntimeError> for ServeError {
    fn from(e: RuntimeError) -> Self {
        ServeError::new(e.code(), e.to_string())
    }
}

impl From<JsonRejection> for ServeError {
    fn from(rejection: JsonRejection) -> Self {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            return ServeError::new(
                ErrorCode::PayloadTooLarge,
                "the request body is larger than the server accepts",
            );
        }
        let message = match &rejection {
            JsonRejection::MissingJsonContentType(_) => {
                "expected a JSON body with `Content-Type: application/json`".to_string()
            }
            JsonRejection::JsonSyntaxError(e) => {
                format!("the body is not valid JSON: {}", e.body_text())
            }
            JsonRejection::JsonDataError(e) => {
                format!("the body does not fit the request: {}", e.body_text())
            }
            other => other.body_text(),
        };
        ServeError::invalid(message)
    }
}

impl From<QueryRejection> for ServeError {
    fn from(rejection: QueryRejection) -> Self {
        ServeError::invalid(rejection.body_text())
    }
}

impl From<PathRejection> for ServeError {
    fn from(rejection: PathRejection) -> Self {
        ServeError::invalid(rejection.body_text())
    }
}

impl From<WebSocketUpgradeRejection> for ServeError {
    fn from(rejection: WebSocketUpgradeRejection) -> Self {
        ServeError::invalid(format!(
            "this route is a WebSocket stream: {}",
            rejection.body_text()
        ))
        .with_status(rejection.status())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn status_follows_the_code() {
        assert_eq!(ServeError::invalid("x").status(), StatusCode::BAD_REQUEST);
        assert_eq!(
            ServeError::new(ErrorCode::PayloadTooLarge, "x").status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
        assert_eq!(
            ServeError::invalid("x")
                .with_status(StatusCode::METHOD_NOT_ALLOWED)
                .status(),
            StatusCode::METHOD_NOT_ALLOWED
        );
    }
}
