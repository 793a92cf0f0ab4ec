//! Workers of one runtime: `/api/v1/runtimes/{runtime_id}/workers[/{worker_id}[/input|cancel|stop|transcript]]`
//! (`DELETE …/{worker_id}` deletes one).

use axum::extract::State;
use axum::http::StatusCode;
use axum::{Extension, Json};
use yoi_protocol::{
    Input, RunResponse, TranscriptResponse, WorkerInfo, WorkerResponse, WorkerSpec, WorkersResponse,
};
use yoi_serving::{ApiJson, ApiPath, ServeError};

use crate::state::AppState;
use yoi_policy::{Command, Principal};

type Ids = ApiPath<(String, String)>;

/// A worker as `principal` may see it (hidden ones do not exist).
fn visible(
    state: &AppState,
    principal: &Principal,
    runtime_id: &str,
    worker: WorkerInfo,
) -> Result<WorkerInfo, ServeError> {
    let id = worker.id.clone();
    state
        .projection()
        .worker(principal, runtime_id, worker)
        .ok_or_else(|| ServeError::worker_not_found(&id))
}

/// Runs a command (its body checks the policy first) and counts its outcome.
macro_rules! command {
    ($state:expr, $name:literal, $body:expr) => {
        $state.metrics().count($name, async { $body }).await
    };
}

pub async fn list(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(runtime_id): ApiPath<String>,
) -> Result<Json<WorkersResponse>, ServeError> {
    command!(state, "list_workers", {
        state.authorize(
            &principal,
            &Command::ListWorkers {
                runtime: runtime_id.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        let workers = runtime.list_workers().await?;
        let workers = state.projection().workers(&principal, &runtime_id, workers);
        Ok(Json(WorkersResponse { workers }))
    })
}

pub async fn create(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath(runtime_id): ApiPath<String>,
    body: Result<ApiJson<WorkerSpec>, ServeError>,
) -> Result<(StatusCode, Json<WorkerResponse>), ServeError> {
    command!(state, "create_worker", {
        let ApiJson(spec) = body?;
        state.authorize(
            &principal,
            &Command::CreateWorker {
                runtime: runtime_id.clone(),
                spec: spec.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        let worker = runtime.create_worker(spec).await?;
        let worker = visible(&state, &principal, &runtime_id, worker)?;
        Ok((StatusCode::CREATED, Json(WorkerResponse { worker })))
    })
}

pub async fn get(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath((runtime_id, worker_id)): Ids,
) -> Result<Json<WorkerResponse>, ServeError> {
    command!(state, "get_worker", {
        state.authorize(
            &principal,
            &Command::GetWorker {
                runtime: runtime_id.clone(),
                worker: worker_id.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        let worker = runtime.get_worker(&worker_id).await?;
        let worker = visible(&state, &principal, &runtime_id, worker)?;
        Ok(Json(WorkerResponse { worker }))
    })
}

/// `202 {"run_id"}`. With a `request_id`, a retried request answers the run the first
/// one started instead of starting another.
pub async fn input(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath((runtime_id, worker_id)): Ids,
    body: Result<ApiJson<Input>, ServeError>,
) -> Result<(StatusCode, Json<RunResponse>), ServeError> {
    command!(state, "input", {
        let ApiJson(input) = body?;
        state.authorize(
            &principal,
            &Command::Input {
                runtime: runtime_id.clone(),
                worker: worker_id.clone(),
                input: input.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        let run_id = runtime.send_input(&worker_id, input).await?;
        Ok((StatusCode::ACCEPTED, Json(RunResponse { run_id })))
    })
}

/// `202 {"run_id"}` of the run being cancelled (`run_cancelled` follows on the stream).
pub async fn cancel(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath((runtime_id, worker_id)): Ids,
) -> Result<(StatusCode, Json<RunResponse>), ServeError> {
    command!(state, "cancel", {
        state.authorize(
            &principal,
            &Command::Cancel {
                runtime: runtime_id.clone(),
                worker: worker_id.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        let run_id = runtime.cancel(&worker_id).await?;
        Ok((StatusCode::ACCEPTED, Json(RunResponse { run_id })))
    })
}

pub async fn stop(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath((runtime_id, worker_id)): Ids,
) -> Result<Json<WorkerResponse>, ServeError> {
    command!(state, "stop", {
        state.authorize(
            &principal,
            &Command::Stop {
                runtime: runtime_id.clone(),
                worker: worker_id.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        let worker = runtime.stop(&worker_id).await?;
        let worker = visible(&state, &principal, &runtime_id, worker)?;
        Ok(Json(WorkerResponse { worker }))
    })
}

/// `DELETE …/workers/{worker_id}`: `204` once the worker is gone (its events stay in
/// the log).
pub async fn delete(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath((runtime_id, worker_id)): Ids,
) -> Result<StatusCode, ServeError> {
    command!(state, "delete_worker", {
        state.authorize(
            &principal,
            &Command::DeleteWorker {
                runtime: runtime_id.clone(),
                worker: worker_id.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        // A worker the principal may not see does not exist for it.
        let worker = runtime.get_worker(&worker_id).await?;
        visible(&state, &principal, &runtime_id, worker)?;
        runtime.delete_worker(&worker_id).await?;
        Ok(StatusCode::NO_CONTENT)
    })
}

pub async fn transcript(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    ApiPath((runtime_id, worker_id)): Ids,
) -> Result<Json<TranscriptResponse>, ServeError> {
    command!(state, "transcript", {
        state.authorize(
            &principal,
            &Command::Transcript {
                runtime: runtime_id.clone(),
                worker: worker_id.clone(),
            },
        )?;
        let runtime = state.registry()?.get(&runtime_id)?;
        // A worker the principal may not see does not exist for it.
        let worker = runtime.get_worker(&worker_id).await?;
        visible(&state, &principal, &runtime_id, worker)?;
        let messages = runtime.transcript(&worker_id).await?;
        let messages = state
            .projection()
            .transcript(&principal, &runtime_id, &worker_id, messages)
            .ok_or_else(|| {
                ServeError::forbidden("a policy withholds this worker's transcript from you")
            })?;
        Ok(Json(TranscriptResponse {
            worker_id,
            messages,
        }))
    })
}
