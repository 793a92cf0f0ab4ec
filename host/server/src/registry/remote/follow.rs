//! The one upstream stream of a remote runtime: its runtime-wide stream, read by one
//! task whatever the number of the host's clients, resumed by cursor after any
//! disconnect (yoi-client's `EventStream` does the resuming, with backoff, and drops
//! duplicates), its events held in the [`Upstream`](super::window::Upstream) window and
//! broadcast to the host's streams, its connection state kept as the runtime's state.
//!
//! A runtime that answers what it must not (a frame that does not decode or is too
//! large, an event out of sequence: a gap, or another store's) is dropped, marked
//! unavailable (`internal`), and reconnected from the last event the host holds after
//! a delay that doubles with each such failure in a row, so a broken runtime costs the
//! host one connection attempt every [`RETRY_MAX`] at most.

use std::sync::Arc;
use std::time::Duration;

use yoi_client::{ClientError, ConnState, Disconnect, RuntimeClient, StreamItem};
use yoi_protocol::{Cursor, Envelope, ErrorCode, Frame};

use super::Shared;
use super::errors::classify;

/// After the upstream stream gave up (a permanent error: a refused token, a bad frame,
/// an event out of sequence), the first delay before it is tried again from where it
/// was; doubled per failure in a row, up to [`RETRY_MAX`].
const RETRY_FIRST: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);

/// Follows the runtime until the task is aborted.
pub(super) async fn follow(shared: Arc<Shared>, client: RuntimeClient) {
    let mut after: Option<Cursor> = None;
    let mut failures: u32 = 0;
    loop {
        if follow_once(&shared, &client, &mut after).await {
            failures = 0;
        }
        failures = failures.saturating_add(1);
        let delay = RETRY_FIRST
            .saturating_mul(1 << failures.saturating_sub(1).min(16))
            .min(RETRY_MAX);
        tokio::time::sleep(delay).await;
    }
}

/// One run of the self-resuming stream from `after` until it gives up or a frame breaks
/// the sequence; `after` follows what was taken. Whether it took anything.
async fn follow_once(shared: &Shared, client: &RuntimeClient, after: &mut Option<Cursor>) -> bool {
    let mut stream = client.events_stream(*after);
    let mut took = false;
    while let Some(item) = stream.next().await {
        match item {
            StreamItem::Frame(Frame::SnapshotAll { cursor, .. }) => {
                shared.upstream().restart(cursor);
                shared.set_epoch(cursor.epoch);
                *after = Some(cursor);
                took = true;
                // The first connection is ready once the window has a start.
                shared.set_ready();
            }
            StreamItem::Frame(Frame::Event {
                cursor,
                seq,
                worker_id,
                at_ms,
                event,
                ..
            }) => {
                let expected = after.map(|a| (a.epoch, a.seq.checked_add(1)));
                if expected != Some((cursor.epoch, Some(seq))) || cursor.seq != seq {
                    let e = ClientError::BadResponse {
                        message: "an event out of sequence".into(),
                    };
                    let (code, why) = cause(&shared.id, &e);
                    tracing::warn!(runtime = %shared.id, %code, seq, "the runtime's stream sent an event out of sequence; reconnecting");
                    shared.set_unavailable(code, why);
                    return took;
                }
                let env = Envelope {
                    seq,
                    worker_id,
                    at_ms,
                    event,
                };
                shared.upstream().publish(Arc::new(env));
                *after = Some(cursor);
                took = true;
            }
            StreamItem::Frame(Frame::Diagnostic { code, .. }) => {
                tracing::warn!(runtime = %shared.id, %code, "the runtime's stream resumed from a fresh snapshot");
            }
            StreamItem::Frame(_) | StreamItem::Status(ConnState::Connecting) => {}
            StreamItem::Status(ConnState::Connected) => {
                shared.connected();
                // Its capabilities may have changed across a restart.
                let capabilities = match client.info().await {
                    Ok(info) => Some(info.capabilities),
                    Err(e) => {
                        let (code, _) = classify(&shared.id, &e);
                        tracing::warn!(runtime = %shared.id, %code, "reading the runtime's capabilities failed");
                        None
                    }
                };
                shared.set_capabilities(capabilities);
                // Resumed from a cursor: ready at once. A first connection waits for its
                // snapshot, so nothing asks the window before it has a start.
                if shared.upstream().epoch().is_some() {
                    shared.set_ready();
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
                tracing::warn!(runtime = %shared.id, %code, "the runtime's stream failed; reconnecting later");
                shared.set_unavailable(code, why);
            }
        }
    }
    took
}

/// The runtime's state after `e`: the failure's own code (`unauthorized` for a refused
/// token, `timeout`, `runtime_unavailable` for an unreachable runtime, `internal` for an
/// answer the host cannot use, ...) and the host's words for it.
fn cause(id: &str, e: &ClientError) -> (ErrorCode, String) {
    (e.code(), classify(id, e).1)
}
