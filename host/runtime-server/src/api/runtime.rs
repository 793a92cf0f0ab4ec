//! `GET /v1/runtime`: what the runtime is and offers.

use axum::Json;
use axum::extract::State;
use yoi_protocol::{RuntimeInfo, RuntimeResponse};
use yoi_serving::{EventSource, ServeError};

use crate::state::AppState;

/// The runtime's id, its core (`kind`: `native` or `wasm`), its state, worker count and
/// capabilities; never a path, address or token.
pub async fn get(State(state): State<AppState>) -> Result<Json<RuntimeResponse>, ServeError> {
    state
        .metrics()
        .count("get_runtime", async {
            let runtime = state.runtime()?;
            let workers = runtime.runtime().list_workers().await?.len();
            Ok(Json(RuntimeResponse {
                runtime: RuntimeInfo {
                    id: runtime.runtime_id().to_string(),
                    kind: state.core().kind().to_string(),
                    state: "ready".to_string(),
                    workers,
                    unavailable: None,
                    capabilities: runtime.capabilities(),
                },
            }))
        })
        .await
}
