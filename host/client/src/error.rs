//! The one error type of the client, [`ClientError`].
//!
//! Every variant carries only text this crate wrote or the server's own error message:
//! never the server's URL, address or the access token (transport errors are reduced to
//! the `Display` of their causes, which name neither; see [`describe`]).

use std::fmt::Write as _;

use yoi_protocol::{ApiError, ErrorCode};

/// Why a call or a stream failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ClientError {
    /// The server could not be reached, or the connection broke (refused, reset, DNS).
    #[error("cannot reach the server: {message}")]
    Network { message: String },
    /// Connecting or an answer took longer than the configured timeout.
    #[error("the server did not answer in time: {message}")]
    Timeout { message: String },
    /// The server refused the request with a typed error (`{"error":{"code","message"}}`),
    /// or with a bare HTTP status, mapped to the closest code.
    #[error("{code} (HTTP {status}): {message}")]
    Http {
        status: u16,
        code: ErrorCode,
        message: String,
    },
    /// A stream ended with an `error` frame.
    #[error("the stream ended with {code}: {message}")]
    Stream { code: ErrorCode, message: String },
    /// The server answered something this client cannot decode.
    #[error("bad response from the server: {message}")]
    BadResponse { message: String },
    /// The client is misconfigured (a bad URL, no token found); the message says how to fix it.
    #[error("{message}")]
    Config { message: String },
}

impl ClientError {
    /// The stable code closest to this error, for callers that map it to their own
    /// answers (the host's remote source) or match on it.
    ///
    /// Unreachable servers are `runtime_unavailable`, timeouts `timeout`, undecodable
    /// answers `internal` and configuration errors `invalid_request`.
    pub fn code(&self) -> ErrorCode {
        match self {
            ClientError::Network { .. } => ErrorCode::RuntimeUnavailable,
            ClientError::Timeout { .. } => ErrorCode::Timeout,
            ClientError::Http { code, .. } | ClientError::Stream { code, .. } => *code,
            ClientError::BadResponse { .. } => ErrorCode::Internal,
            ClientError::Config { .. } => ErrorCode::InvalidRequest,
        }
    }

    /// The HTTP status of an [`Http`](ClientError::Http) error.
    pub fn status(&self) -> Option<u16> {
        match self {
            ClientError::Http { status, .. } => Some(*status),
            _ => None,
        }
    }

    /// Whether trying again later may succeed: the server was unreachable, slow, busy
    /// restarting or failing internally. Not found, unauthorized, malformed requests and
    /// answers are permanent.
    pub fn is_transient(&self) -> bool {
        match self {
            ClientError::Network { .. } | ClientError::Timeout { .. } => true,
            ClientError::Http { code, .. } | ClientError::Stream { code, .. } => matches!(
                code,
                ErrorCode::RuntimeUnavailable
                    | ErrorCode::ShuttingDown
                    | ErrorCode::Timeout
                    | ErrorCode::Internal
                    | ErrorCode::LimitExceeded
                    | ErrorCode::Lagged
            ),
            ClientError::BadResponse { .. } | ClientError::Config { .. } => false,
        }
    }

    pub(crate) fn bad_response(message: impl Into<String>) -> Self {
        ClientError::BadResponse {
            message: message.into(),
        }
    }

    pub(crate) fn config(message: impl Into<String>) -> Self {
        ClientError::Config {
            message: message.into(),
        }
    }

    /// An error answer: the server's typed body when it sent one, else the code that
    /// matches the status (an older runtime answering `404`/`405`/`501` for a route it
    /// lacks, a proxy's `502`).
    pub(crate) fn from_status(status: u16, body: &[u8]) -> Self {
        if let Ok(ApiError { error }) = serde_json::from_slice::<ApiError>(body) {
            return ClientError::Http {
                status,
                code: error.code,
                message: error.message,
            };
        }
        let code = match status {
            401 => ErrorCode::Unauthorized,
            403 => ErrorCode::Forbidden,
            404 => ErrorCode::NotFound,
            405 | 501 => ErrorCode::Unsupported,
            413 => ErrorCode::PayloadTooLarge,
            429 => ErrorCode::LimitExceeded,
            503 => ErrorCode::RuntimeUnavailable,
            504 => ErrorCode::Timeout,
            500..=599 => ErrorCode::Internal,
            _ => ErrorCode::InvalidRequest,
        };
        ClientError::Http {
            status,
            code,
            message: format!("the server answered HTTP {status} without an error body"),
        }
    }

    /// A `reqwest` failure, without its URL.
    pub(crate) fn from_reqwest(e: reqwest::Error) -> Self {
        let e = e.without_url();
        let message = describe(&e);
        if e.is_timeout() {
            ClientError::Timeout { message }
        } else if e.is_decode() {
            ClientError::BadResponse { message }
        } else if e.is_builder() {
            ClientError::Config { message }
        } else {
            ClientError::Network { message }
        }
    }
}

/// The `Display` of an error and its causes, joined by `: `.
///
/// Only `Display` is used: the `Debug` of transport errors names the peer address
/// (hyper's connect errors do), their `Display` does not. Repeated messages (a wrapper
/// that prints its cause) are written once.
pub(crate) fn describe(error: &(dyn std::error::Error + 'static)) -> String {
    let mut out = String::new();
    let mut next = Some(error);
    let mut last = String::new();
    while let Some(e) = next {
        let text = e.to_string();
        if !text.is_empty() && !last.contains(&text) {
            if !out.is_empty() {
                out.push_str(": ");
            }
            let _ = write!(out, "{text}");
        }
        last = text;
        next = e.source();
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn typed_bodies_are_parsed_and_bare_statuses_mapped() {
        let body = br#"{"error":{"code":"worker_busy","message":"worker is busy with run r_1"}}"#;
        let e = ClientError::from_status(409, body);
        assert_eq!(e.code(), ErrorCode::WorkerBusy);
        assert_eq!(e.status(), Some(409));
        assert_eq!(
            e.to_string(),
            "worker_busy (HTTP 409): worker is busy with run r_1"
        );
        assert!(!e.is_transient());

        for (status, code) in [
            (401, ErrorCode::Unauthorized),
            (404, ErrorCode::NotFound),
            (405, ErrorCode::Unsupported),
            (501, ErrorCode::Unsupported),
            (502, ErrorCode::Internal),
            (503, ErrorCode::RuntimeUnavailable),
            (504, ErrorCode::Timeout),
            (418, ErrorCode::InvalidRequest),
        ] {
            assert_eq!(ClientError::from_status(status, b"<html>").code(), code);
        }
        assert!(ClientError::from_status(503, b"").is_transient());
    }

    #[test]
    fn codes_of_transport_errors() {
        let net = ClientError::Network {
            message: "connection refused".into(),
        };
        assert_eq!(net.code(), ErrorCode::RuntimeUnavailable);
        assert!(net.is_transient());
        assert_eq!(ClientError::bad_response("x").code(), ErrorCode::Internal);
        assert!(!ClientError::bad_response("x").is_transient());
    }

    #[test]
    fn describe_joins_causes_once() {
        #[derive(Debug, thiserror::Error)]
        #[error("outer")]
        struct Outer(#[source] std::io::Error);
        let e = Outer(std::io::Error::new(
            std::io::ErrorKind::ConnectionRefused,
            "refused",
        ));
        assert_eq!(describe(&e), "outer: refused");
    }
}
