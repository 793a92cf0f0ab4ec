//! How a remote runtime's failures reach the host's clients: stable codes, and messages
//! the host writes itself (never the runtime's URL, address or token).

use yoi_client::ClientError;
use yoi_protocol::ErrorCode;
use yoi_serving::ServeError;

/// The host's answer for a call to runtime `id` that failed with `e`.
///
/// - unreachable, refused or reset connections, the runtime shutting down or failing
///   (5xx) → `503 runtime_unavailable`;
/// - timeouts → `504 timeout`;
/// - the runtime refusing the host's token → `503 runtime_unavailable` (the client's own
///   token is fine; it is the host's configuration that is wrong);
/// - a route or method the runtime does not have (an older runtime) → `501 unsupported`;
/// - an answer the host cannot use (it does not decode, is larger than the host reads,
///   or an event is out of sequence) → `500 internal`;
/// - the runtime's own typed refusals (`worker_not_found`, `worker_busy`, ...) pass
///   through with its message.
pub(crate) fn upstream_error(id: &str, e: &ClientError) -> ServeError {
    let (code, message) = classify(id, e);
    ServeError::new(code, message)
}

/// The code and a host-written reason, for errors and for the runtime's state.
pub(crate) fn classify(id: &str, e: &ClientError) -> (ErrorCode, String) {
    let unavailable = |why: &str| {
        (
            ErrorCode::RuntimeUnavailable,
            format!("runtime {id} {why}; try again later"),
        )
    };
    match e {
        ClientError::Network { .. } => unavailable("cannot be reached"),
        ClientError::Timeout { .. } => (
            ErrorCode::Timeout,
            format!("runtime {id} did not answer in time"),
        ),
        // The client's own words may quote the answer: not repeated.
        ClientError::BadResponse { .. } => (
            ErrorCode::Internal,
            format!(
                "runtime {id} answered something the host cannot use (undecodable, too \
                 large or out of sequence)"
            ),
        ),
        ClientError::Config { .. } => (
            ErrorCode::Internal,
            format!("runtime {id} is misconfigured in the host"),
        ),
        ClientError::Http { code, message, .. } | ClientError::Stream { code, message } => {
            match code {
                ErrorCode::Unauthorized | ErrorCode::Forbidden => {
                    unavailable("refused the host's token")
                }
                ErrorCode::NotFound | ErrorCode::Unsupported => (
                    ErrorCode::Unsupported,
                    format!("runtime {id} does not support this (an older runtime?)"),
                ),
                ErrorCode::Internal | ErrorCode::RuntimeUnavailable | ErrorCode::ShuttingDown => {
                    unavailable("is failing or restarting")
                }
                _ if e.status() == Some(405) => (
                    ErrorCode::Unsupported,
                    format!("runtime {id} does not support this (an older runtime?)"),
                ),
                code => (*code, message.clone()),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn failures_map_to_stable_codes_without_the_peers_words() {
        let http = |status, code, message: &str| ClientError::Http {
            status,
            code,
            message: message.into(),
        };
        let cases = [
            (
                ClientError::Network {
                    message: "10.1.2.3:80 refused".into(),
                },
                ErrorCode::RuntimeUnavailable,
            ),
            (
                ClientError::Timeout {
                    message: "10.1.2.3".into(),
                },
                ErrorCode::Timeout,
            ),
            (
                http(401, ErrorCode::Unauthorized, "token sk-x"),
                ErrorCode::RuntimeUnavailable,
            ),
            (
                http(404, ErrorCode::NotFound, "/v1/x"),
                ErrorCode::Unsupported,
            ),
            (
                http(405, ErrorCode::InvalidRequest, "/v1/x"),
                ErrorCode::Unsupported,
            ),
            (
                http(500, ErrorCode::Internal, "at /srv"),
                ErrorCode::RuntimeUnavailable,
            ),
            (
                ClientError::BadResponse {
                    message: "http://10.1.2.3".into(),
                },
                ErrorCode::Internal,
            ),
        ];
        for (e, code) in cases {
            let answer = upstream_error("gpu", &e);
            assert_eq!(answer.code, code, "{e}");
            for secret in ["10.1.2.3", "sk-x", "/v1/x", "/srv"] {
                assert!(!answer.message.contains(secret), "{}", answer.message);
            }
            assert!(answer.message.contains("runtime gpu"), "{}", answer.message);
        }
        let busy = upstream_error("gpu", &http(409, ErrorCode::WorkerBusy, "w_1 is busy"));
        assert_eq!(
            (busy.code, busy.message.as_str()),
            (ErrorCode::WorkerBusy, "w_1 is busy")
        );
    }
}
