//! [`EventSource`]: where a stream's events come from, one runtime's worth.

use std::future::Future;
use std::sync::Arc;

use tokio::sync::watch;
use yoi_eventlog::{ReplayError, ReplayPage};
use yoi_protocol::{Cursor, ErrorCode, WorkerSnapshot};

use super::cache::FrameCache;
use super::subscription::Subscription;
use crate::error::ServeError;

/// One runtime's events as streams read them: live envelopes, history after a cursor,
/// snapshots consistent with a cursor. A [`LocalSource`](super::LocalSource) reads a
/// `LocalRuntime` in this process; a source for a runtime in another process implements
/// the same from the runtime API (REST replay pages and one upstream stream fanned out
/// into a broadcast).
///
/// The stream driver subscribes *before* it replays or snapshots, and skips live
/// envelopes at or below what it replayed: a source must publish every envelope with
/// a sequence number above the ones its replays and snapshots already cover, in order.
pub trait EventSource: Send + Sync + 'static {
    /// The runtime's id, in frames and host cursors.
    fn runtime_id(&self) -> &str;

    /// The epoch of the runtime's event store (`Cursor::new(epoch, 0)` is "before
    /// everything").
    fn epoch(&self) -> u64;

    /// Frames of recent events, shared by every stream of this runtime.
    fn frames(&self) -> &Arc<FrameCache>;

    /// Live envelopes from now on. A receiver that falls behind the buffer (or, for a
    /// source whose broadcast holds weak references, behind what its window keeps) gets
    /// `Lagged`; one whose source is gone gets `Closed`.
    fn subscribe(&self) -> Subscription;

    /// Events after `after` (of `worker` only, if given), at most `limit` (`0`: only
    /// check that `after` can be replayed).
    fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> impl Future<Output = Result<ReplayPage, ReplayOutcome>> + Send;

    /// One worker's snapshot and the cursor it is consistent with.
    fn snapshot(
        &self,
        worker_id: &str,
    ) -> impl Future<Output = Result<(WorkerSnapshot, Cursor), ServeError>> + Send;

    /// Every worker's snapshot and the cursor they are consistent with.
    fn snapshot_all(
        &self,
    ) -> impl Future<Output = Result<(Vec<WorkerSnapshot>, Cursor), ServeError>> + Send;

    /// Changes of the runtime's availability, for a source whose runtime can become
    /// unreachable while its streams stay open (a runtime in another process). `None`:
    /// always available.
    fn availability(&self) -> Option<watch::Receiver<Availability>> {
        None
    }
}

/// Whether a source's runtime can be reached. While it cannot, open streams get a
/// `runtime_unavailable` diagnostic and stay open; its events continue, in order and
/// without a gap, once it is back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Availability {
    Ready,
    /// Unreachable; the message says why (it must name no address or secret).
    Unavailable(String),
}

/// Why a replay could not be served (the source-independent form of [`ReplayError`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ReplayOutcome {
    /// The cursor is from another event store.
    Unknown(String),
    /// History after the cursor is no longer complete.
    Expired(String),
    /// The cursor is beyond the end of the log.
    Ahead(String),
    Failed(ServeError),
}

impl ReplayOutcome {
    /// The outcome as an error answer (`cursor_unknown`, `cursor_expired`,
    /// `cursor_ahead`, or the failure).
    pub fn into_error(self) -> ServeError {
        match self {
            ReplayOutcome::Unknown(m) => ServeError::new(ErrorCode::CursorUnknown, m),
            ReplayOutcome::Expired(m) => ServeError::new(ErrorCode::CursorExpired, m),
            ReplayOutcome::Ahead(m) => ServeError::new(ErrorCode::CursorAhead, m),
            ReplayOutcome::Failed(e) => e,
        }
    }
}

impl From<ReplayError> for ReplayOutcome {
    fn from(e: ReplayError) -> Self {
        match e {
            ReplayError::UnknownEpoch { .. } => ReplayOutcome::Unknown(e.to_string()),
            ReplayError::Expired { .. } => ReplayOutcome::Expired(e.to_string()),
            ReplayError::Ahead { .. } => ReplayOutcome::Ahead(e.to_string()),
            ReplayError::Store(e) => {
                ReplayOutcome::Failed(ServeError::internal(format!("replay failed: {e}")))
            }
        }
    }
}
