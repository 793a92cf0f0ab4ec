//! The runtime API's routes: `/v1/...` behind the token, plus the unauthenticated
//! `/healthz`, `/readyz` and `/metrics`.

use axum::Router;
use axum::middleware;
use axum::routing::{get, post};
use yoi_serving::layers;

use crate::state::AppState;
use crate::{api, ops, stream};

pub fn router(state: AppState) -> Router {
    let config = state.config();
    let worker = "/workers/{worker_id}";
    let v1 = Router::new()
        .route("/runtime", get(api::runtime::get))
        .route(
            "/workers",
            get(api::workers::list).post(api::workers::create),
        )
        .route(worker, get(api::workers::get).delete(api::workers::delete))
        .route(&format!("{worker}/input"), post(api::workers::input))
        .route(&format!("{worker}/cancel"), post(api::workers::cancel))
        .route(&format!("{worker}/stop"), post(api::workers::stop))
        .route(
            &format!("{worker}/transcript"),
            get(api::workers::transcript),
        )
        .route(&format!("{worker}/snapshot"), get(api::snapshots::worker))
        .route(&format!("{worker}/events/ws"), get(stream::worker_stream))
        .route("/snapshot", get(api::snapshots::all))
        .route("/events", get(api::events::page))
        .route("/events/ws", get(stream::runtime_stream))
        // Unknown `/v1` routes are answered behind the token too.
        .fallback(layers::not_found)
        .method_not_allowed_fallback(layers::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.auth().clone(),
            yoi_serving::require_token,
        ));
    let routes = Router::new()
        .nest("/v1", v1)
        .route("/healthz", get(layers::healthz))
        .route("/readyz", get(ops::readyz))
        .route("/metrics", get(ops::metrics));
    layers::around(
        routes,
        config.max_body_bytes.get(),
        config.http.limits().request_timeout,
        config.http.allowed_hosts(config.bind),
    )
    .with_state(state)
}
