//! Workers: `/v1/workers[/{worker_id}[/input|cancel|stop|transcript]]`.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use yoi_protocol::{
    Input, RunResponse, TranscriptResponse, WorkerResponse, WorkerSpec, WorkersResponse,
};
use yoi_serving::{ApiJson, ApiPath, ServeError};

use crate::state::AppState;

pub async fn list(State(state): State<AppState>) -> Result<Json<WorkersResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("list_workers", async {
            let workers = state.runtime()?.runtime().list_workers().await?;
            Ok(Json(WorkersResponse { workers }))
        })
        .await
}

pub async fn create(
    State(state): State<AppState>,
    body: Result<ApiJson<WorkerSpec>, ServeError>,
) -> Result<(StatusCode, Json<WorkerResponse>), ServeError> {
    let metrics = state.metrics();
    metrics
        .count("create_worker", async {
            let ApiJson(spec) = body?;
            let worker = state.runtime()?.runtime().create_worker(spec).await?;
            Ok((StatusCode::CREATED, Json(WorkerResponse { worker })))
        })
        .await
}

pub async fn get(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
) -> Result<Json<WorkerResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("get_worker", async {
            let worker = state.runtime()?.runtime().get_worker(&worker_id).await?;
            Ok(Json(WorkerResponse { worker }))
        })
        .await
}

/// `202 {"run_id"}`. With a `request_id`, a retried request answers the run the first
/// one started instead of starting another.
pub async fn input(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
    body: Result<ApiJson<Input>, ServeError>,
) -> Result<(StatusCode, Json<RunResponse>), ServeError> {
    let metrics = state.metrics();
    metrics
        .count("input", async {
            let ApiJson(input) = body?;
            let runtime = state.runtime()?.runtime();
            let run_id = runtime.send_input(&worker_id, input).await?;
            Ok((StatusCode::ACCEPTED, Json(RunResponse { run_id })))
        })
        .await
}

/// `202 {"run_id"}` of the run being cancelled (`run_cancelled` follows on the stream).
pub async fn cancel(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
) -> Result<(StatusCode, Json<RunResponse>), ServeError> {
    let metrics = state.metrics();
    metrics
        .count("cancel", async {
            let run_id = state.runtime()?.runtime().cancel(&worker_id).await?;
            Ok((StatusCode::ACCEPTED, Json(RunResponse { run_id })))
        })
        .await
}

pub async fn stop(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
) -> Result<Json<WorkerResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("stop", async {
            let worker = state.runtime()?.runtime().stop(&worker_id).await?;
            Ok(Json(WorkerResponse { worker }))
        })
        .await
}

/// `DELETE /v1/workers/{worker_id}`: `204` once the worker is gone (stopped first if
/// needed; its events stay in the log).
pub async fn delete(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
) -> Result<StatusCode, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("delete_worker", async {
            state.runtime()?.runtime().delete_worker(&worker_id).await?;
            Ok(StatusCode::NO_CONTENT)
        })
        .await
}

pub async fn transcript(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
) -> Result<Json<TranscriptResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("transcript", async {
            let messages = state.runtime()?.runtime().transcript(&worker_id).await?;
            Ok(Json(TranscriptResponse {
                worker_id,
                messages,
            }))
        })
        .await
}
