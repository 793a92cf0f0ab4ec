//! [`Visibility`]: what one client may see of the events and workers it streams.

use yoi_protocol::{Envelope, Event, WorkerSnapshot};

/// What a client sees of one event.
#[derive(Debug, Clone, PartialEq)]
pub enum Observed {
    /// The event as it is.
    Allow,
    /// A rewritten event in its place (same sequence number and cursor).
    Redact(Event),
    /// Nothing; the stream's cursor still moves past it.
    Deny,
}

/// Decides, for one stream's client, what it sees. A host implements it with its
/// projection policy and the client's principal; a server without policies uses
/// [`AllVisible`].
pub trait Visibility: Send + Sync + 'static {
    /// What the client sees of one event of `runtime_id`.
    fn event(&self, runtime_id: &str, event: &Envelope) -> Observed;

    /// A snapshot as the client sees it (`None`: hidden, as if the worker did not exist).
    fn snapshot(&self, runtime_id: &str, snapshot: WorkerSnapshot) -> Option<WorkerSnapshot>;
}

/// Everything is visible.
#[derive(Debug, Clone, Copy, Default)]
pub struct AllVisible;

impl Visibility for AllVisible {
    fn event(&self, _: &str, _: &Envelope) -> Observed {
        Observed::Allow
    }

    fn snapshot(&self, _: &str, snapshot: WorkerSnapshot) -> Option<WorkerSnapshot> {
        Some(snapshot)
    }
}
