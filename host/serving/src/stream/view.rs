//! [`Visibility`]: what one client may see of the events and workers it streams.

use std::sync::Arc;

use yoi_protocol::{Envelope, WorkerSnapshot};

use super::cache::FrameCache;

/// What a client sees of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The event as it is (the frame every stream of this shape shares).
    Allow,
    /// A rewritten event in its place (same sequence number and cursor): its JSON
    /// (`{"type":…}`), shared by every client that sees the same rewrite.
    Redact(Arc<str>),
    /// Nothing; the stream's cursor still moves past it.
    Deny,
}

/// Decides, for one stream's client, what it sees. A host implements it with its
/// policy chain and the client's principal; a server without policies uses
/// [`AllVisible`].
pub trait Visibility: Send + Sync + 'static {
    /// What the client sees of one event of `runtime_id` (whose event store is `epoch`).
    /// `frames` holds the event's JSON as every stream of the runtime shares it
    /// ([`FrameCache::json`]), for a policy that needs to read the event.
    fn event(
        &self,
        runtime_id: &str,
        epoch: u64,
        event: &Envelope,
        frames: &FrameCache,
    ) -> Observed;

    /// A snapshot as the client sees it (`None`: hidden, as if the worker did not exist).
    fn snapshot(&self, runtime_id: &str, snapshot: WorkerSnapshot) -> Option<WorkerSnapshot>;
}

/// Everything is visible.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllVisible;

impl Visibility for AllVisible {
    fn event(&self, _: &str, _: u64, _: &Envelope, _: &FrameCache) -> Observed {
        Observed::Allow
    }

    fn snapshot(&self, _: &str, snapshot: WorkerSnapshot) -> Option<WorkerSnapshot> {
        Some(snapshot)
    }
}
