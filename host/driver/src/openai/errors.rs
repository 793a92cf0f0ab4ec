//! Provider failures as typed `ModelFailed` errors: HTTP statuses, error bodies (before
//! or in the middle of a stream) and transport failures. Messages name the provider and
//! quote what the server said (shortened), never the API key or the server's address.

use serde_json::Value;
use yoi_protocol::ErrorInfo;

use crate::provider::codes;

/// Longest quote of a server's own message.
const QUOTE: usize = 300;

/// The server's message and error code/type from an error body, if it has them.
struct ServerError {
    message: String,
    code: String,
}

fn server_error(body: &Value) -> ServerError {
    let error = body.get("error").unwrap_or(body);
    let text = |v: Option<&Value>| match v {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Number(n)) => n.to_string(),
        _ => String::new(),
    };
    let message = match error {
        Value::String(s) => s.clone(),
        _ => text(error.get("message")),
    };
    let code = [text(error.get("code")), text(error.get("type"))]
        .into_iter()
        .filter(|s| !s.is_empty())
        .collect::<Vec<_>>()
        .join(" ");
    ServerError { message, code }
}

fn quote(s: &str) -> String {
    let s = s.trim();
    match s.char_indices().nth(QUOTE) {
        None => s.to_string(),
        Some((cut, _)) => format!("{}…", &s[..cut]),
    }
}

/// Whether an error says the prompt did not fit the model's context window.
fn is_context_length(e: &ServerError) -> bool {
    let code = e.code.to_ascii_lowercase();
    let message = e.message.to_ascii_lowercase();
    code.contains("context_length")
        || code.contains("exceed_context")
        || code.contains("context_window")
        || (message.contains("context")
            && ["length", "window", "too long", "exceed", "maximum"]
                .iter()
                .any(|w| message.contains(w)))
        || message.contains("prompt is too long")
        || message.contains("too many tokens")
}

/// An error answer (a non-2xx status) of provider `name`.
pub(crate) fn http_error(
    name: &str,
    status: u16,
    body: &str,
    retry_after: Option<&str>,
) -> ErrorInfo {
    let parsed: Value = serde_json::from_str(body).unwrap_or(Value::Null);
    let e = if parsed.is_null() {
        ServerError {
            message: body.to_string(),
            code: String::new(),
        }
    } else {
        server_error(&parsed)
    };
    let said = if e.message.trim().is_empty() {
        String::new()
    } else {
        format!(": {}", quote(&e.message))
    };
    let (code, what) = match status {
        401 | 403 => (codes::AUTH, "refused the credentials".to_string()),
        429 => (
            codes::RATE_LIMIT,
            match retry_after {
                Some(s) => format!("is rate limiting (retry after {}s)", quote(s)),
                None => "is rate limiting".to_string(),
            },
        ),
        408 | 504 => (codes::TIMEOUT, "timed out".to_string()),
        _ if is_context_length(&e) => (
            codes::CONTEXT_LENGTH,
            "refused a prompt longer than the model's context window".to_string(),
        ),
        400..=499 => (codes::INVALID_REQUEST, "refused the request".to_string()),
        _ => (codes::UNAVAILABLE, "failed".to_string()),
    };
    ErrorInfo::new(
        code,
        format!("provider {name} {what} (HTTP {status}){said}"),
    )
}

/// An `{"error": ...}` payload in the middle of a stream.
pub(crate) fn stream_error(name: &str, error: &Value) -> ErrorInfo {
    let e = server_error(&serde_json::json!({ "error": error }));
    let code_text = e.code.to_ascii_lowercase();
    let code = if is_context_length(&e) {
        codes::CONTEXT_LENGTH
    } else if code_text.contains("429") || code_text.contains("rate") {
        codes::RATE_LIMIT
    } else if code_text.contains("401") || code_text.contains("auth") {
        codes::AUTH
    } else {
        codes::MODEL_ERROR
    };
    let said = if e.message.is_empty() {
        quote(&error.to_string())
    } else {
        quote(&e.message)
    };
    ErrorInfo::new(code, format!("provider {name} failed mid-stream: {said}"))
}

/// A transport failure (no answer, or a broken stream).
pub(crate) fn transport_error(name: &str, e: &reqwest::Error) -> ErrorInfo {
    // reqwest's Display names the URL; the message must not.
    let source = {
        let mut chain = Vec::new();
        let mut cur: Option<&dyn std::error::Error> = std::error::Error::source(e);
        while let Some(err) = cur {
            chain.push(err.to_string());
            cur = err.source();
        }
        chain.join(": ")
    };
    let detail = if source.is_empty() {
        String::new()
    } else {
        format!(" ({})", quote(&source))
    };
    if e.is_timeout() {
        ErrorInfo::new(
            codes::TIMEOUT,
            format!("provider {name} did not answer in time{detail}"),
        )
    } else if e.is_connect() {
        ErrorInfo::new(
            codes::UNAVAILABLE,
            format!("provider {name} could not be reached{detail}"),
        )
    } else if e.is_decode() || e.is_body() {
        ErrorInfo::new(
            codes::UNAVAILABLE,
            format!("provider {name}'s answer broke off{detail}"),
        )
    } else {
        ErrorInfo::new(
            codes::UNAVAILABLE,
            format!("provider {name} failed{detail}"),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn statuses_map_to_codes() {
        let c = |status, body: &str| http_error("p", status, body, None).code;
        assert_eq!(c(401, r#"{"error":{"message":"bad key"}}"#), "auth");
        assert_eq!(c(403, ""), "auth");
        assert_eq!(c(429, "slow down"), "rate_limit");
        assert_eq!(c(504, ""), "timeout");
        assert_eq!(
            c(404, r#"{"error":{"message":"model x not found"}}"#),
            "invalid_request"
        );
        assert_eq!(c(500, "boom"), "unavailable");
        assert_eq!(c(503, ""), "unavailable");
    }

    #[test]
    fn context_overflows_are_recognised_in_the_wild() {
        let c = |body: &str| http_error("p", 400, body, None).code;
        // llama.cpp
        assert_eq!(
            c(
                r#"{"error":{"code":400,"message":"the request exceeds the available context size, try increasing it","type":"exceed_context_size_error"}}"#
            ),
            "context_length"
        );
        // OpenAI
        assert_eq!(
            c(
                r#"{"error":{"message":"This model's maximum context length is 8192 tokens. However, your messages resulted in 9000 tokens.","type":"invalid_request_error","param":"messages","code":"context_length_exceeded"}}"#
            ),
            "context_length"
        );
        // vLLM
        assert_eq!(
            c(
                r#"{"object":"error","message":"This model's maximum context length is 4096 tokens. However, you requested 5000 tokens","type":"BadRequestError","code":400}"#
            ),
            "context_length"
        );
        assert_eq!(
            c(r#"{"error":{"message":"temperature must be <= 2"}}"#),
            "invalid_request"
        );
    }

    #[test]
    fn messages_quote_the_server_briefly() {
        let long = "x".repeat(1000);
        let e = http_error("local", 500, &long, None);
        assert!(
            e.message
                .starts_with("provider local failed (HTTP 500): xxx")
        );
        assert!(e.message.chars().count() < 400);
        let e = http_error("local", 429, "", Some("7"));
        assert_eq!(
            e.message,
            "provider local is rate limiting (retry after 7s) (HTTP 429)"
        );
    }

    #[test]
    fn mid_stream_errors() {
        let e = stream_error(
            "p",
            &serde_json::json!({"message":"overloaded","code":"server_error"}),
        );
        assert_eq!(e.code, "model_error");
        assert!(e.message.contains("overloaded"));
        let e = stream_error(
            "p",
            &serde_json::json!({"message":"Rate limit reached","code":429}),
        );
        assert_eq!(e.code, "rate_limit");
        let e = stream_error("p", &serde_json::json!("context length exceeded"));
        assert_eq!(e.code, "context_length");
    }
}
