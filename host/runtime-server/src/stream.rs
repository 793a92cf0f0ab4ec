//! The runtime's WebSocket streams: runtime-wide (`/v1/events/ws`) and one worker's
//! (`/v1/workers/{id}/events/ws`), with the handshake, frames and cursor outcomes of
//! every yoi stream ([`yoi_serving::Streams`]); their cursors are the runtime's cursors.

use std::sync::Arc;

use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use yoi_serving::{AllVisible, LocalSource, Scope, ServeError, StartCursor, StreamQuery};

use crate::state::AppState;

/// The runtime server has one token: its per-client stream limit counts all streams.
const CLIENT: &str = "token";

/// `GET /v1/events/ws?cursor=`
pub async fn runtime_stream(
    State(state): State<AppState>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ServeError> {
    let Query(query) = query?;
    let streams = state.streams().clone();
    streams
        .clone()
        .accept(ws?, CLIENT, move |socket| async move {
            let scope = Scope::Runtime;
            match open(&state, &scope, None, &query).await {
                Ok((runtime, cursor)) => {
                    streams
                        .run(socket, scope, vec![runtime], cursor, AllVisible)
                        .await
                }
                Err(e) => streams.refuse(socket, e).await,
            }
        })
}

/// `GET /v1/workers/{worker_id}/events/ws?cursor=`
pub async fn worker_stream(
    State(state): State<AppState>,
    path: Result<Path<String>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ServeError> {
    let Path(worker_id) = path?;
    let Query(query) = query?;
    let streams = state.streams().clone();
    streams
        .clone()
        .accept(ws?, CLIENT, move |socket| async move {
            let scope = Scope::Worker(worker_id.clone());
            match open(&state, &scope, Some(&worker_id), &query).await {
                Ok((runtime, cursor)) => {
                    streams
                        .run(socket, scope, vec![runtime], cursor, AllVisible)
                        .await
                }
                Err(e) => streams.refuse(socket, e).await,
            }
        })
}

/// The runtime and cursor of a stream (of `worker`, which must exist, if given).
async fn open(
    state: &AppState,
    scope: &Scope,
    worker: Option<&str>,
    query: &StreamQuery,
) -> Result<(Arc<LocalSource>, Option<StartCursor>), ServeError> {
    let cursor = query.start(scope)?;
    let runtime = state.runtime()?.clone();
    if let Some(worker) = worker {
        runtime.runtime().get_worker(worker).await?;
    }
    Ok((runtime, cursor))
}
