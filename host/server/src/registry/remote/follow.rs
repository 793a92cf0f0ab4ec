//! The one upstream stream of a remote runtime: its runtime-wide stream, read by one
//! task whatever the number of the host's clients, resumed by cursor after any
//! disconnect (yoi-client's `EventStream` does the resuming and drops duplicates), its
//! events held in the [`Upstream`](super::window::Upstream) window and broadcast to the
//! host's streams, its connection state kept as the runtime's state.

use std::sync::Arc;
use std::time::Duration;

use yoi_client::{ConnState, Disconnect, RuntimeClient, StreamItem};
use yoi_protocol::{Cursor, Envelope, ErrorCode, Frame};

use super::Shared;
use super::errors::classify;

/// After the upstream stream gave up (a permanent error, such as a refused token), how
/// long until it is tried again from where it was.
const RETRY_AFTER_GIVING_UP: Duration = Duration::from_secs(10);

/// Follows the runtime until the task is aborted.
pub(super) async fn follow(shared: Arc<Shared>, client: RuntimeClient) {
    let mut after: Option<Cursor> = None;
    loop {
        let mut stream = client.events_stream(after);
        while let Some(item) = stream.next().await {
            match item {
                StreamItem::Frame(Frame::SnapshotAll { cursor, .. }) => {
                    shared.upstream().restart(cursor);
                    shared.set_epoch(cursor.epoch);
                    after = Some(cursor);
                }
                StreamItem::Frame(Frame::Event {
                    cursor,
                    seq,
                    worker_id,
                    at_ms,
                    event,
                    ..
                }) => {
                    let env = Envelope {
                        seq,
                        worker_id,
                        at_ms,
                        event,
                    };
                    shared.upstream().publish(Arc::new(env));
                    after = Some(cursor);
                }
                StreamItem::Frame(Frame::Diagnostic { code, .. }) => {
                    tracing::warn!(runtime = %shared.id, %code, "the runtime's stream resumed from a fresh snapshot");
                }
                StreamItem::Frame(_) | StreamItem::Status(ConnState::Connecting) => {}
                StreamItem::Status(ConnState::Connected) => {
                    // Its capabilities may have changed across a restart.
                    match client.info().await {
                        Ok(info) => shared.set_ready(Some(info.capabilities)),
                        Err(e) => {
                            let (code, _) = classify(&shared.id, &e);
                            tracing::warn!(runtime = %shared.id, %code, "reading the runtime's capabilities failed");
                            shared.set_ready(None);
                        }
                    }
                }
                StreamItem::Status(ConnState::Reconnecting { reason, .. }) => {
                    let (code, why) = match &reason {
                        Disconnect::Failed(e) => cause(&shared.id, e),
                        Disconnect::Closed => (
                            ErrorCode::RuntimeUnavailable,
                            format!("runtime {} closed the connection", shared.id),
                        ),
                        // Caught up at once; not an outage.
                        Disconnect::Lagged => continue,
                    };
                    shared.set_unavailable(code, why);
                }
                StreamItem::Status(ConnState::GaveUp(e)) => {
                    let (code, why) = cause(&shared.id, &e);
                    shared.set_unavailable(code, why);
                }
            }
        }
        tokio::time::sleep(RETRY_AFTER_GIVING_UP).await;
    }
}

/// The runtime's state after `e`: the failure's own code (`unauthorized` for a refused
/// token, `timeout`, `runtime_unavailable` for an unreachable runtime, ...) and the
/// host's words for it.
fn cause(id: &str, e: &yoi_client::ClientError) -> (ErrorCode, String) {
    (e.code(), classify(id, e).1)
}
