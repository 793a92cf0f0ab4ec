//! `/readyz` and `/metrics`: what operators and orchestrators read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yoi_serving::{PromText, ServeError};

use crate::state::AppState;

/// `200 ready` once every embedded runtime is loaded and can store events, else
/// `503 runtime_unavailable` saying which runtime's event store refuses appends. Remote
/// runtimes do not count: one that is down leaves the host serving the others (its state
/// is in `/api/v1/runtimes` and `yoi_runtime_ready`), so an orchestrator does not restart
/// a healthy host for another machine's fault.
pub async fn readyz(State(state): State<AppState>) -> Response {
    let registry = match state.registry() {
        Ok(registry) => registry,
        Err(e) => return e.into_response(),
    };
    let failing: Vec<&str> = registry
        .all()
        .filter(|r| {
            r.stats()
                .runtime
                .is_some_and(|s| s.store_failing_since_ms.is_some())
        })
        .map(|r| r.id.as_str())
        .collect();
    if failing.is_empty() {
        (StatusCode::OK, "ready\n").into_response()
    } else {
        ServeError::store_failing(&failing.join(", ")).into_response()
    }
}

/// The Prometheus text page: readiness, streams, commands, the policy chain, and per
/// runtime its event log and core figures.
pub async fn metrics(State(state): State<AppState>) -> Response {
    let registry = state.registry().ok();
    let mut page = PromText::new();
    page.gauge(
        "yoi_host_ready",
        "1 once every runtime is loaded.",
        i64::from(registry.is_some()),
    );
    state.metrics().render(&mut page);
    render_policy_metrics(&state, &mut page);
    if let Some(registry) = registry {
        let name = "yoi_runtime_ready";
        page.family(
            name,
            "gauge",
            "1 while the runtime can be reached (always, for an embedded one).",
        );
        for r in registry.all() {
            let (id, kind) = (&r.id, r.kind().as_str());
            let ready = i64::from(r.is_ready());
            page.line(format_args!(
                "{name}{{runtime=\"{id}\",kind=\"{kind}\"}} {ready}"
            ));
        }
        let stats: Vec<_> = registry.all().map(|r| (r.id.as_str(), r.stats())).collect();
        page.runtimes(
            stats
                .iter()
                .filter_map(|(id, s)| Some((*id, s.runtime?, s.last_seq))),
        );
    }
    page.into_response()
}

/// `yoi_policy_plugin_calls_total`, `yoi_policy_cache_hits_total` and
/// `yoi_policy_failures_total{plugin,call}` (kept across reloads).
fn render_policy_metrics(state: &AppState, page: &mut PromText) {
    let figures = state.projection().policies().metrics().snapshot();
    page.counter(
        "yoi_policy_plugin_calls_total",
        "Calls into policy plugins (observe and command).",
        figures.plugin_calls,
    );
    page.counter(
        "yoi_policy_cache_hits_total",
        "Event decisions answered from the per-(event, role) cache.",
        figures.cache_hits,
    );
    page.family(
        "yoi_policy_failures_total",
        "counter",
        "Policy plugin calls that failed (panic, garbage, refused input), by plugin and call; \
         each failed closed.",
    );
    for failure in &figures.failures {
        page.line(format_args!(
            "yoi_policy_failures_total{{plugin=\"{}\",call=\"{}\"}} {}",
            failure.plugin.escape_default(),
            failure.call,
            failure.count
        ));
    }
}
