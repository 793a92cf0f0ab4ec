//! `/readyz` and `/metrics`: what operators and orchestrators read.

use axum::extract::State;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use yoi_serving::{PromText, ServeError};

use crate::registry::RemoteStats;
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
        render_remote_metrics(&mut page, &stats);
        page.runtimes(
            stats
                .iter()
                .filter_map(|(id, s)| Some((*id, s.runtime?, s.last_seq))),
        );
    }
    page.into_response()
}

/// What the host holds of each remote runtime: `yoi_remote_window_events`,
/// `yoi_remote_window_bytes` (both bounded) and `yoi_remote_upstream_connections_total`.
fn render_remote_metrics(page: &mut PromText, stats: &[(&str, crate::registry::SourceStats)]) {
    let remote: Vec<_> = stats
        .iter()
        .filter_map(|(id, s)| Some((*id, s.remote?)))
        .collect();
    if remote.is_empty() {
        return;
    }
    /// Name, type, help and value of a family.
    type Family = (
        &'static str,
        &'static str,
        &'static str,
        fn(&RemoteStats) -> u64,
    );
    let families: [Family; 3] = [
        (
            "yoi_remote_window_events",
            "gauge",
            "Events of the remote runtime the host holds in memory for replay.",
            |s| s.window_events as u64,
        ),
        (
            "yoi_remote_window_bytes",
            "gauge",
            "Estimated bytes of those events.",
            |s| s.window_bytes,
        ),
        (
            "yoi_remote_upstream_connections_total",
            "counter",
            "Connections of the host's one stream to the remote runtime (reconnections included).",
            |s| s.upstream_connections,
        ),
    ];
    for (name, kind, help, value) in families {
        page.family(name, kind, help);
        for (id, s) in &remote {
            page.line(format_args!("{name}{{runtime=\"{id}\"}} {}", value(s)));
        }
    }
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
