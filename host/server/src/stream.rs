//! The host's WebSocket streams: one worker's events (`…/workers/{id}/events/ws`), or
//! every worker of every runtime (`/api/v1/events/ws`, the multiplexed stream, with host
//! cursors). Each resolves what it covers and whether the principal may watch it, then
//! runs on [`yoi_serving::Streams`] (handshake, replay, live, cursor outcomes, lagged,
//! keep-alive, close: see that crate) with the principal's projection as its view: each
//! event passes the policy chain in use when it is sent (decided once per event and
//! role), snapshots too.

use std::sync::Arc;

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::WebSocketUpgrade;
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::{Path, Query, State};
use axum::response::Response;
use yoi_serving::{Scope, ServeError, StartCursor, StreamQuery};

use crate::registry::RuntimeHandle;
use crate::state::AppState;
use yoi_policy::{Command, Principal};

/// `GET /api/v1/runtimes/{runtime_id}/workers/{worker_id}/events/ws?cursor=`
pub async fn worker_stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ServeError> {
    let Path((runtime_id, worker_id)) = path?;
    let Query(query) = query?;
    let streams = state.streams().clone();
    let client = principal.name.clone();
    streams
        .clone()
        .accept(ws?, &client, move |socket| async move {
            let scope = Scope::Worker(worker_id.clone());
            let opened =
                open_worker(&state, &principal, &scope, &runtime_id, &worker_id, query).await;
            match opened {
                Ok((runtime, cursor)) => {
                    let view = state.projection().view(principal);
                    streams
                        .run(socket, scope, vec![runtime], cursor, view)
                        .await
                }
                Err(e) => streams.refuse(socket, e).await,
            }
        })
}

/// `GET /api/v1/events/ws?cursor=`
pub async fn all_stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, ServeError> {
    let Query(query) = query?;
    let streams = state.streams().clone();
    let client = principal.name.clone();
    streams
        .clone()
        .accept(ws?, &client, move |socket| async move {
            match open_all(&state, &principal, query).await {
                Ok((runtimes, cursor)) => {
                    let view = state.projection().view(principal);
                    streams
                        .run(socket, Scope::Host, runtimes, cursor, view)
                        .await
                }
                Err(e) => streams.refuse(socket, e).await,
            }
        })
}

/// The runtime and cursor of a worker stream the principal may watch.
async fn open_worker(
    state: &AppState,
    principal: &Principal,
    scope: &Scope,
    runtime_id: &str,
    worker_id: &str,
    query: StreamQuery,
) -> Result<(Arc<RuntimeHandle>, Option<StartCursor>), ServeError> {
    let cursor = query.start(scope)?;
    let runtime = state.registry()?.get(runtime_id)?;
    state.authorize(
        principal,
        &Command::Observe {
            runtime: Some(runtime_id.to_string()),
            worker: Some(worker_id.to_string()),
        },
    )?;
    let info = runtime.get_worker(worker_id).await?;
    if state
        .projection()
        .worker(principal, runtime_id, info)
        .is_none()
    {
        return Err(ServeError::worker_not_found(worker_id));
    }
    Ok((runtime, cursor))
}

/// Every runtime, and the cursor, of a multiplexed stream the principal may watch.
async fn open_all(
    state: &AppState,
    principal: &Principal,
    query: StreamQuery,
) -> Result<(Vec<Arc<RuntimeHandle>>, Option<StartCursor>), ServeError> {
    let cursor = query.start(&Scope::Host)?;
    let registry = state.registry()?;
    state.authorize(
        principal,
        &Command::Observe {
            runtime: None,
            worker: None,
        },
    )?;
    Ok((registry.all().cloned().collect(), cursor))
}
