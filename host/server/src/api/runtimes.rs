//! `GET /api/v1/runtimes` and `GET /api/v1/runtimes/{runtime_id}`.

use axum::extract::State;
use axum::{Extension, Json};
use yoi_protocol::{RuntimeInfo, RuntimeResponse, RuntimesResponse};
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
    // waiting for it. The count of its workers is best effort: a runtime that cannot
    // list them in time (slow, failing, an older one) shows none rather than making the
    // host's answer fail or wait.
    if !runtime.is_ready() {
        return Ok(runtime.info(0));
    }
    let visible = match tokio::time::timeout(COUNT_WAIT, runtime.list_workers()).await {
        Ok(Ok(workers)) => state
            .projection()
            .workers(principal, &runtime.id, workers)
            .len(),
        Ok(Err(e)) => {
            tracing::debug!(runtime = %runtime.id, code = %e.code, "counting the runtime's workers failed");
            0
        }
        Err(_) => 0,
    };
    Ok(runtime.info(visible))
}

/// Longest the description of a runtime waits for the count of its workers.
const COUNT_WAIT: std::time::Duration = std::time::Duration::from_secs(2);

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
) -> Result<Json<RuntimesResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("list_runtimes", async {
            state.authorize(&principal, &Command::ListRuntimes)?;
            let registry = state.registry()?;
            // Described at once, so a slow runtime delays the answer by its own wait only.
            let mut described = tokio::task::JoinSet::new();
            for (i, runtime) in registry.all().enumerate() {
                let (state, principal, runtime) =
                    (state.clone(), principal.clone(), runtime.clone());
                described.spawn(async move { (i, describe(&state, &principal, &runtime).await) });
            }
            let mut runtimes = Vec::new();
            while let Some(done) = described.join_next().await {
                let (i, info) = done.map_err(|e| {
                    ServeError::internal(format!("describing a runtime failed: {e}"))
                })?;
                runtimes.push((i, info?));
            }
            runtimes.sort_by_key(|(i, _)| *i);
            let runtimes = runtimes.into_iter().map(|(_, info)| info).collect();
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
