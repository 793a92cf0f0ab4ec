//! What every yoi server puts around its routes: typed answers for unknown routes and
//! wrong methods, a body limit, a request timeout, request logs without query strings
//! (a WebSocket upgrade may carry its token there), and a typed `500` instead of a
//! dropped connection when a handler panics; and the `Host` check against DNS rebinding
//! ([`AllowedHosts`]).

use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, Request, State};
use axum::http::{StatusCode, Uri};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::trace::{DefaultOnFailure, TraceLayer};
use yoi_protocol::ErrorCode;

use crate::error::ServeError;
use crate::hosts::{AllowedHosts, check_host};

/// `routes` with the layers every server needs (see the module docs): bodies up to
/// `max_body_bytes`, answers within `request_timeout`, only to the `hosts` names.
pub fn around<S: Clone + Send + Sync + 'static>(
    routes: Router<S>,
    max_body_bytes: usize,
    request_timeout: Duration,
    hosts: AllowedHosts,
) -> Router<S> {
    routes
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(max_body_bytes))
        .layer(middleware::from_fn_with_state(
            request_timeout,
            answer_in_time,
        ))
        .layer(
            // Error answers are logged where they are made; 5xx here are expected ones
            // (still loading, shutting down).
            TraceLayer::new_for_http()
                .make_span_with(request_span as fn(&Request<Body>) -> tracing::Span)
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(catch_panic())
        // Outermost: a request to another name gets nothing else.
        .layer(middleware::from_fn_with_state(hosts, check_host))
}

/// Turns a panicking handler's answer into a typed `500 internal` (put it inside other
/// layers, CORS say, so their headers still apply).
pub fn catch_panic() -> CatchPanicLayer<PanicAnswer> {
    CatchPanicLayer::custom(panic_answer as PanicAnswer)
}

/// See [`catch_panic`].
pub type PanicAnswer = fn(Box<dyn std::any::Any + Send + 'static>) -> Response;

/// The panic message goes to the log, not to the client.
fn panic_answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(panic = %message, "a request handler panicked");
    ServeError::internal("the server failed while answering this request (a bug; it is logged)")
        .into_response()
}

/// The span of a request's log lines: method and path, never the query string.
fn request_span(request: &Request<Body>) -> tracing::Span {
    tracing::debug_span!(
        "request",
        method = %request.method(),
        path = request.uri().path(),
    )
}

async fn answer_in_time(State(limit): State<Duration>, request: Request, next: Next) -> Response {
    match tokio::time::timeout(limit, next.run(request)).await {
        Ok(response) => response,
        Err(_) => ServeError::new(
            ErrorCode::Timeout,
            format!("the server did not answer within {} ms", limit.as_millis()),
        )
        .into_response(),
    }
}

/// The answer for a route that does not exist.
pub async fn not_found(uri: Uri) -> ServeError {
    ServeError::new(ErrorCode::NotFound, format!("no route {}", uri.path()))
}

/// The answer for a known route with the wrong method.
pub async fn method_not_allowed() -> ServeError {
    ServeError::invalid("this route does not take that method")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

/// `GET /healthz`: the process serves.
pub async fn healthz() -> &'static str {
    "ok\n"
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::routing::get;

    async fn spawn(app: Router) -> String {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        format!("http://{addr}")
    }

    async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
        let status = resp.status().as_u16();
        let body: serde_json::Value = resp.json().await.unwrap();
        let text = |k: &str| body["error"][k].as_str().unwrap().to_string();
        (status, text("code"), text("message"))
    }

    #[tokio::test]
    async fn panics_timeouts_and_unknown_routes_get_typed_answers() {
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        async fn slow() -> &'static str {
            tokio::time::sleep(Duration::from_secs(60)).await;
            "late"
        }
        let app = around(
            Router::new()
                .route("/boom", get(boom))
                .route("/slow", get(slow)),
            1024,
            Duration::from_millis(50),
            AllowedHosts::new("127.0.0.1:0".parse().unwrap(), &[]),
        );
        let base = spawn(app).await;
        let http = reqwest::Client::new();
        let (status, code, message) =
            error_of(http.get(format!("{base}/boom")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (500, "internal"));
        assert!(!message.contains("secret detail"), "{message}");
        let (status, code, _) =
            error_of(http.get(format!("{base}/slow")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (504, "timeout"));
        let (status, code, _) =
            error_of(http.get(format!("{base}/nope")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (404, "not_found"));
        let (status, code, _) =
            error_of(http.post(format!("{base}/boom")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (405, "invalid_request"));
        // DNS rebinding: the same server under another name answers nothing else.
        let resp = http
            .get(format!("{base}/boom"))
            .header("host", "rebound.example")
            .send()
            .await
            .unwrap();
        let (status, code, message) = error_of(resp).await;
        assert_eq!((status, code.as_str()), (421, "forbidden"));
        assert!(!message.contains("rebound"), "{message}");
        let resp = http
            .get(format!("{base}/nope"))
            .header("host", "localhost:1")
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status().as_u16(), 404, "its own names pass");
    }
}
