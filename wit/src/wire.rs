//! Wire types: stored envelopes, REST bodies and WebSocket frames.

use crate::cursor::Cursor;
use crate::error::ErrorCode;
use crate::types::{Event, InFlight, Limits, Message, WorkerInfo, WorkerSnapshot};
use serde::{Deserialize, Serialize};

/// A stored event: the event log's sequence number plus what the core emitted.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Envelope {
    /// Runtime-wide, strictly increasing, starting at 1.
    pub seq: u64,
    pub worker_id: Option<String>,
    pub at_ms: u64,
    pub event: Event,
}

/// `POST …/workers` answers and `GET …/workers/{id}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerResponse {
    pub worker: WorkerInfo,
}

/// `GET …/workers`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkersResponse {
    pub workers: Vec<WorkerInfo>,
}

/// `POST …/input` and `…/cancel` answers.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunResponse {
    pub run_id: String,
}

/// `GET …/transcript`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TranscriptResponse {
    pub worker_id: String,
    pub messages: Vec<Message>,
}

/// `GET /v1/events?after=&worker=&limit=`: one replay page.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EventsPage {
    pub events: Vec<Envelope>,
    /// Resume point after this page (the last event's cursor, or the request's `after`).
    pub cursor: Cursor,
    /// More events exist after this page.
    pub more: bool,
}

/// `GET /v1/workers/{id}/snapshot` (runtime API): one worker's state (the shape of a
/// `snapshot` frame) and the cursor it is consistent with; the events after the cursor
/// are exactly what happened since.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotResponse {
    pub cursor: Cursor,
    #[serde(flatten)]
    pub snapshot: WorkerSnapshot,
}

/// `GET /v1/snapshot` (runtime API): every worker's state and the cursor they are
/// consistent with.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SnapshotsResponse {
    pub cursor: Cursor,
    pub workers: Vec<WorkerSnapshot>,
}

/// What a client may know of a runtime: never a path, URL, socket or token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeInfo {
    pub id: String,
    /// On a host: `embedded` or `remote`, where the runtime runs. A runtime server
    /// (`GET /v1/runtime`) says which core it runs: `native` or `wasm`.
    pub kind: String,
    /// `ready` or `unavailable`.
    pub state: String,
    /// Workers the asking client may see.
    pub workers: usize,
    pub capabilities: Capabilities,
    /// While `unavailable`: since when and why (absent when ready).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub unavailable: Option<Unavailable>,
}

/// Why a runtime is unavailable, and since when.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Unavailable {
    /// Unix time in milliseconds when the runtime became unavailable.
    pub since_ms: u64,
    /// The code of the last failure to reach it (`runtime_unavailable`, `timeout`,
    /// `unauthorized`, `unsupported`, ...).
    pub last_error: ErrorCode,
}

/// What a runtime offers its clients.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Capabilities {
    /// Model names a worker may be created with.
    pub models: Vec<String>,
    /// Tool names a worker may enable.
    pub tools: Vec<String>,
    pub limits: Limits,
    /// Stream kinds this runtime's events can be watched on (`worker`, `all`).
    pub streams: Vec<String>,
}

/// `GET /api/v1/runtimes`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimesResponse {
    pub runtimes: Vec<RuntimeInfo>,
}

/// `GET /api/v1/runtimes/{id}` and the runtime API's `GET /v1/runtime`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeResponse {
    pub runtime: RuntimeInfo,
}

/// A WebSocket frame (JSON text). Streams are observation-only.
///
/// `C` is the stream's cursor: [`Cursor`] on a runtime's streams and the host's
/// one-worker streams, [`HostCursor`](crate::HostCursor) on the host's multiplexed
/// stream (`Frame<HostCursor>`). Clients treat either as opaque and send it back as is.
// A snapshot frame is built once per stream start and serialized at once; boxing its
// worker would cost every constructor and pattern for nothing.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum Frame<C = Cursor> {
    /// One event, with the cursor that resumes right after it.
    Event {
        cursor: C,
        seq: u64,
        runtime_id: String,
        worker_id: Option<String>,
        at_ms: u64,
        event: Event,
    },
    /// State of one worker consistent with `cursor`; events after it follow.
    Snapshot {
        cursor: C,
        runtime_id: String,
        worker: WorkerInfo,
        transcript: Vec<Message>,
        in_flight: Option<InFlight>,
    },
    /// State of every observed worker of a multiplexed stream, consistent with `cursor`.
    SnapshotAll {
        cursor: C,
        workers: Vec<RuntimeWorkerSnapshot>,
    },
    /// Something the client should know (`cursor_unknown`, `cursor_expired`); the stream
    /// goes on.
    Diagnostic { code: ErrorCode, message: String },
    /// The stream ends after this frame.
    Error { code: ErrorCode, message: String },
    /// The client fell behind; the connection closes. Reconnect with `cursor` (the last
    /// event delivered) to resume without loss.
    Lagged { cursor: C, message: String },
}

/// A worker snapshot tagged with its runtime, for multiplexed streams.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RuntimeWorkerSnapshot {
    pub runtime_id: String,
    #[serde(flatten)]
    pub snapshot: WorkerSnapshot,
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::types::*;

    #[test]
    fn event_frame_matches_the_documented_shape() {
        let frame = Frame::Event {
            cursor: Cursor::new(1, 42),
            seq: 42,
            runtime_id: "local".into(),
            worker_id: Some("w_1".into()),
            at_ms: 7,
            event: Event::TextDelta {
                run_id: "r_1".into(),
                text: "Hel".into(),
            },
        };
        let v = serde_json::to_value(&frame).unwrap();
        assert_eq!(v["type"], "event");
        assert_eq!(v["seq"], 42);
        assert_eq!(v["event"]["type"], "text_delta");
        assert_eq!(v["event"]["run_id"], "r_1");
        assert_eq!(v["event"]["text"], "Hel");
        assert_eq!(serde_json::from_value::<Frame>(v).unwrap(), frame);
    }

    #[test]
    fn unknown_fields_in_requests_are_refused() {
        let err = serde_json::from_str::<WorkerSpec>(r#"{"name":"a","model":"m","bogus":1}"#);
        assert!(err.is_err());
        let spec: WorkerSpec = serde_json::from_str(r#"{"name":"a","model":"scripted"}"#).unwrap();
        assert_eq!(spec.tools, Vec::<String>::new());
        assert_eq!(spec.max_steps, None);
    }
}
