//! `/readyz` and `/metrics`.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yoi_serving::{EventSource, PromText, ServeError};

use crate::state::AppState;

/// `200 ready` once the runtime is open and can store events, else
/// `503 runtime_unavailable`.
pub async fn readyz(State(state): State<AppState>) -> Response {
    match state.runtime() {
        Ok(r) if r.runtime().stats().store_failing_since_ms.is_some() => {
            ServeError::store_failing(r.runtime_id()).into_response()
        }
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => e.into_response(),
    }
}

/// The Prometheus text page: readiness, streams, commands, the event log and the core.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let runtime = state.runtime().ok();
    let mut page = PromText::new();
    page.gauge(
        "yoi_runtime_ready",
        "1 once the runtime is open.",
        i64::from(runtime.is_some()),
    );
    state.metrics().render(&mut page);
    if let Some(runtime) = runtime {
        let local = runtime.runtime();
        let last_seq = local.events().last_cursor().seq;
        page.runtimes([(runtime.runtime_id(), local.stats(), last_seq)]);
    }
    page.into_response()
}
