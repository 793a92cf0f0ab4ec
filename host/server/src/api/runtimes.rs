//! `GET /api/v1/runtimes` and `GET /api/v1/runtimes/{runtime_id}`.

use axum::extract::State;
use axum::{Extension, Json};
use yoi_protocol::{ErrorCode, RuntimeInfo, RuntimeResponse, RuntimesResponse};
use yoi_serving::{ApiPath, ServeError};

use crate::registry::RuntimeHandle;
use crate::state::AppState;
use yoi_policy::{Command, Principal};

/// A runtime's description, counting the workers `principal` may see.
async fn describe(
    state: &AppState,
    principal: &Principal,
    runtime: &RuntimeHandle,
) -> Result<RuntimeInfo, ServeError> {
    // A runtime that cannot be reached is still described (its state says why), without
    // waiting for it.
    if !runtime.is_ready() {
        return Ok(runtime.info(0));
    }
    let visible = match runtime.list_workers().await {
        Ok(workers) => state
            .projection()
            .workers(principal, &runtime.id, workers)
            .len(),
        Err(e) if is_unreachable(e.code) => 0,
        Err(e) => return Err(e),
    };
    Ok(runtime.info(visible))
}

fn is_unreachable(code: ErrorCode) -> bool {
    matches!(code, ErrorCode::RuntimeUnavailable | ErrorCode::Timeout)
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<RuntimesResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("list_runtimes", async {
            state.authorize(&principal, &Command::ListRuntimes)?;
            let registry = state.registry()?;
            let mut runtimes = Vec::new();
            for runtime in registry.all() {
                runtimes.push(describe(&state, &principal, runtime).await?);
            }
            let runtimes = state.projection().runtimes(&principal, runtimes);
            Ok(Json(RuntimesResponse { runtimes }))
        })
        .await
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(runtime_id): ApiPath<String>,
) -> Result<Json<RuntimeResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("get_runtime", async {
            state.authorize(
                &principal,
                &Command::GetRuntime {
                    runtime: runtime_id.clone(),
                },
            )?;
            let runtime = state.registry()?.get(&runtime_id)?;
            let runtime = describe(&state, &principal, &runtime).await?;
            // A runtime the principal may not see does not exist for it.
            let runtime = state
                .projection()
                .runtimes(&principal, vec![runtime])
                .pop()
                .ok_or_else(|| crate::registry::runtime_not_found(&runtime_id))?;
            Ok(Json(RuntimeResponse { runtime }))
        })
        .await
}
