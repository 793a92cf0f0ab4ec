//! The host's routes: `/api/v1/...` behind the origin check and the token, plus the
//! unauthenticated `/healthz`, `/readyz` and `/metrics`.

use std::time::Duration;

use axum::Router;
use axum::http::{HeaderValue, Method, header};
use axum::middleware;
use axum::routing::{get, post};
use tower_http::cors::{AllowOrigin, CorsLayer};
use yoi_serving::layers;

use crate::state::AppState;
use crate::{admin, api, auth, ops, stream};

pub fn router(state: AppState) -> Router {
    let config = state.config();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.as_str()).ok()),
        ))
        .allow_methods([Method::GET, Method::POST, Method::DELETE])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    let worker = "/v1/runtimes/{runtime_id}/workers/{worker_id}";
    let api = Router::new()
        .route("/v1/runtimes", get(api::runtimes::list))
        .route("/v1/runtimes/{runtime_id}", get(api::runtimes::get))
        .route(
            "/v1/runtimes/{runtime_id}/workers",
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
        .route(&format!("{worker}/events/ws"), get(stream::worker_stream))
        .route("/v1/events/ws", get(stream::all_stream))
        .route("/v1/admin/reload", post(admin::reload))
        // Unknown `/api` routes are answered behind the token too.
        .fallback(layers::not_found)
        .method_not_allowed_fallback(layers::method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        // Inside CORS, so a browser can read the typed 500 too.
        .layer(layers::catch_panic())
        .layer(cors);
    let routes = Router::new()
        .nest("/api", api)
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
