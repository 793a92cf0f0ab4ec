//! Stable error codes and the JSON error body `{"error":{"code","message"}}`.

use serde::{Deserialize, Serialize};
use std::fmt;

/// Every error code a yoi API can answer with. The snake_case names are stable: clients
/// match on them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The request is malformed (bad JSON, missing or invalid field).
    InvalidRequest,
    /// No or wrong access token.
    Unauthorized,
    /// The principal may not do this (policy denial, refused origin).
    Forbidden,
    /// No such route or resource.
    NotFound,
    RuntimeNotFound,
    WorkerNotFound,
    /// The worker has a run in flight.
    WorkerBusy,
    /// The worker is stopped for good.
    WorkerStopped,
    /// Cancel of a worker with no run in flight.
    NotRunning,
    /// A runtime limit (workers, input size) would be exceeded.
    LimitExceeded,
    /// The request body is larger than the server accepts.
    PayloadTooLarge,
    /// A cursor string that is not a cursor.
    CursorMalformed,
    /// A cursor beyond the end of the log.
    CursorAhead,
    /// A cursor from another event store (diagnostic; a fresh snapshot follows).
    CursorUnknown,
    /// A cursor older than retained history (diagnostic; a fresh snapshot follows).
    CursorExpired,
    /// The stream's consumer fell behind and was disconnected; resume with the cursor.
    Lagged,
    /// The runtime cannot be reached or is not ready.
    RuntimeUnavailable,
    /// The runtime did not answer in time.
    Timeout,
    /// The runtime does not support this operation.
    Unsupported,
    /// The server is shutting down.
    ShuttingDown,
    /// A bug or an unexpected failure; the message says what, never a secret.
    Internal,
    /// A policy plugin failed to decide (it panicked or answered garbage): refused, to
    /// fail closed.
    PolicyError,
}

impl ErrorCode {
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::InvalidRequest => "invalid_request",
            ErrorCode::Unauthorized => "unauthorized",
            ErrorCode::Forbidden => "forbidden",
            ErrorCode::NotFound => "not_found",
            ErrorCode::RuntimeNotFound => "runtime_not_found",
            ErrorCode::WorkerNotFound => "worker_not_found",
            ErrorCode::WorkerBusy => "worker_busy",
            ErrorCode::WorkerStopped => "worker_stopped",
            ErrorCode::NotRunning => "not_running",
            ErrorCode::LimitExceeded => "limit_exceeded",
            ErrorCode::PayloadTooLarge => "payload_too_large",
            ErrorCode::CursorMalformed => "cursor_malformed",
            ErrorCode::CursorAhead => "cursor_ahead",
            ErrorCode::CursorUnknown => "cursor_unknown",
            ErrorCode::CursorExpired => "cursor_expired",
            ErrorCode::Lagged => "lagged",
            ErrorCode::RuntimeUnavailable => "runtime_unavailable",
            ErrorCode::Timeout => "timeout",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::ShuttingDown => "shutting_down",
            ErrorCode::Internal => "internal",
            ErrorCode::PolicyError => "policy_error",
        }
    }

    /// The HTTP status a REST answer with this code carries.
    pub fn http_status(self) -> u16 {
        match self {
            ErrorCode::InvalidRequest
            | ErrorCode::CursorMalformed
            | ErrorCode::CursorAhead
            | ErrorCode::CursorUnknown
            | ErrorCode::CursorExpired => 400,
            ErrorCode::Unauthorized => 401,
            ErrorCode::Forbidden => 403,
            ErrorCode::NotFound | ErrorCode::RuntimeNotFound | ErrorCode::WorkerNotFound => 404,
            ErrorCode::WorkerBusy | ErrorCode::WorkerStopped | ErrorCode::NotRunning => 409,
            ErrorCode::PayloadTooLarge => 413,
            ErrorCode::LimitExceeded | ErrorCode::Lagged => 429,
            ErrorCode::Internal | ErrorCode::PolicyError => 500,
            ErrorCode::Unsupported => 501,
            ErrorCode::RuntimeUnavailable | ErrorCode::ShuttingDown => 503,
            ErrorCode::Timeout => 504,
        }
    }

    /// Every code, for documentation and tests.
    pub const ALL: [ErrorCode; 22] = [
        ErrorCode::InvalidRequest,
        ErrorCode::Unauthorized,
        ErrorCode::Forbidden,
        ErrorCode::NotFound,
        ErrorCode::RuntimeNotFound,
        ErrorCode::WorkerNotFound,
        ErrorCode::WorkerBusy,
        ErrorCode::WorkerStopped,
        ErrorCode::NotRunning,
        ErrorCode::LimitExceeded,
        ErrorCode::PayloadTooLarge,
        ErrorCode::CursorMalformed,
        ErrorCode::CursorAhead,
        ErrorCode::CursorUnknown,
        ErrorCode::CursorExpired,
        ErrorCode::Lagged,
        ErrorCode::RuntimeUnavailable,
        ErrorCode::Timeout,
        ErrorCode::Unsupported,
        ErrorCode::ShuttingDown,
        ErrorCode::Internal,
        ErrorCode::PolicyError,
    ];
}

impl fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The inner object of an error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ErrorBody {
    pub code: ErrorCode,
    pub message: String,
}

/// An error answer: `{"error":{"code":"worker_busy","message":"…"}}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiError {
    pub error: ErrorBody,
}

impl ApiError {
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        ApiError {
            error: ErrorBody {
                code,
                message: message.into(),
            },
        }
    }
}

impl From<&crate::CoreError> for ApiError {
    fn from(e: &crate::CoreError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

impl fmt::Display for ApiError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.error.code, self.error.message)
    }
}

impl std::error::Error for ApiError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn as_str_matches_serde_for_every_code() {
        for code in ErrorCode::ALL {
            let json = serde_json::to_string(&code).unwrap();
            assert_eq!(json, format!("\"{}\"", code.as_str()));
            assert_eq!(serde_json::from_str::<ErrorCode>(&json).unwrap(), code);
            assert!((400..600).contains(&code.http_status()));
        }
    }

    #[test]
    fn core_errors_map_to_the_documented_statuses() {
        let busy = crate::CoreError::Busy {
            run_id: "r_1".into(),
        };
        let body = ApiError::from(&busy);
        assert_eq!(body.error.code, ErrorCode::WorkerBusy);
        assert_eq!(body.error.code.http_status(), 409);
        assert_eq!(
            serde_json::to_value(&body).unwrap(),
            serde_json::json!({"error":{"code":"worker_busy","message":"worker is busy with run r_1"}})
        );
        let nf = crate::CoreError::WorkerNotFound {
            worker_id: "w_9".into(),
        };
        assert_eq!(nf.code().http_status(), 404);
    }
}
