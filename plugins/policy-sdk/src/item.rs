//! What a client is about to see, as a policy sees it, and what the policy answers.

use serde::{Deserialize, Serialize};
use yoi_protocol::{Event, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};

/// One thing a client is about to receive.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Item {
    Event(EventItem),
    Snapshot(SnapshotItem),
    Transcript(TranscriptItem),
    Workers(WorkersItem),
    Runtimes(RuntimesItem),
}

/// One event of a stream. A redaction replaces `event` only: the sequence number and the
/// client's cursor stay, and a denied event still moves the cursor past it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventItem {
    pub runtime_id: String,
    pub seq: u64,
    /// `None` for runtime-wide events.
    pub worker_id: Option<String>,
    pub at_ms: u64,
    pub event: Event,
}

/// A worker's snapshot (worker, transcript, in-flight output): the first frame of a
/// stream without a cursor, one per worker on the multiplexed stream. Denied: the worker
/// is left out.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotItem {
    pub runtime_id: String,
    pub snapshot: WorkerSnapshot,
}

/// A worker's transcript (`GET …/transcript`). Denied: the client may not read it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptItem {
    pub runtime_id: String,
    pub worker_id: String,
    pub messages: Vec<Message>,
}

/// Workers of one runtime as an answer lists them (a listing, or one worker's answer).
/// A redaction may rewrite or leave out workers; denied: none is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersItem {
    pub runtime_id: String,
    pub workers: Vec<WorkerInfo>,
}

/// Runtimes as an answer lists them. A redaction may rewrite or leave out runtimes;
/// denied: none is shown.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimesItem {
    pub runtimes: Vec<RuntimeInfo>,
}

/// A policy's answer for an observed item; `T` is what replaces it when redacted (an
/// [`Event`] for events, a [`WorkerSnapshot`] for snapshots, the list for transcripts and
/// listings).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", content = "item", rename_all = "snake_case")]
pub enum Verdict<T> {
    /// Shown as it is (or as the policies before this one left it).
    Allow,
    /// Shown rewritten.
    Redact(T),
    /// Not shown.
    Deny,
}

impl<T> Verdict<T> {
    /// `Redact(value)` when `changed`, else `Allow`: a policy that rewrote a copy of an
    /// item answers allow when it found nothing to rewrite, so the host keeps what it
    /// has instead of decoding a copy.
    pub fn redact_if(changed: bool, value: T) -> Self {
        if changed {
            Verdict::Redact(value)
        } else {
            Verdict::Allow
        }
    }
}
