//! `GET /v1/workers/{worker_id}/snapshot` and `GET /v1/snapshot`: state consistent with a
//! cursor, for a client (a host's remote source) that starts watching without one: the
//! events after the cursor are exactly what happened since.

use axum::Json;
use axum::extract::State;
use yoi_protocol::{SnapshotResponse, SnapshotsResponse};
use yoi_serving::{ApiPath, EventSource, ServeError};

use crate::state::AppState;

pub async fn worker(
    State(state): State<AppState>,
    ApiPath(worker_id): ApiPath<String>,
) -> Result<Json<SnapshotResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("snapshot", async {
            let (snapshot, cursor) = state.runtime()?.snapshot(&worker_id).await?;
            Ok(Json(SnapshotResponse { cursor, snapshot }))
        })
        .await
}

pub async fn all(State(state): State<AppState>) -> Result<Json<SnapshotsResponse>, ServeError> {
    let metrics = state.metrics();
    metrics
        .count("snapshot_all", async {
            let (workers, cursor) = state.runtime()?.snapshot_all().await?;
            Ok(Json(SnapshotsResponse { cursor, workers }))
        })
        .await
}
