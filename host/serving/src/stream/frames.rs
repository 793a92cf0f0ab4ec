//! The text of every frame a stream sends (JSON, DESIGN.md "Event log, cursors, streams").
//!
//! Event frames are built by hand around the event's JSON, which every stream of a
//! runtime shares (see [`FrameCache`](super::cache::FrameCache)); the rest serialize
//! borrowed views of the protocol's [`Frame`] shapes (a unit test checks they parse as
//! [`Frame`]).

use std::sync::Arc;

use serde::Serialize;
use yoi_protocol::{
    Cursor, Envelope, ErrorCode, Frame, InFlight, Message, RuntimeWorkerSnapshot, WorkerInfo,
};

/// An `event` frame; `body` is the event's JSON.
pub(crate) fn event_frame(cursor: &str, runtime_id: &str, env: &Envelope, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + cursor.len() + 128);
    out.push_str(r#"{"type":"event","cursor":""#);
    out.push_str(cursor);
    let mut number = itoa::Buffer::new();
    out.push_str(r#"","seq":"#);
    out.push_str(number.format(env.seq));
    out.push_str(r#","runtime_id":""#);
    // Runtime ids are `a-z 0-9 _ -` (checked by the configs) and cursors are hex and
    // `h1~.`: nothing to escape.
    out.push_str(runtime_id);
    out.push_str(r#"","worker_id":"#);
    match &env.worker_id {
        Some(w)
            if w.bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-') =>
        {
            out.push('"');
            out.push_str(w);
            out.push('"');
        }
        Some(w) => out.push_str(&serde_json::to_string(w).unwrap_or_else(|_| "null".into())),
        None => out.push_str("null"),
    }
    out.push_str(r#","at_ms":"#);
    out.push_str(number.format(env.at_ms));
    out.push_str(r#","event":"#);
    out.push_str(body);
    out.push('}');
    out
}

/// An event's JSON (`{"type":"text_delta",…}`).
pub(crate) fn event_json(env: &Envelope) -> Arc<str> {
    serde_json::to_string(&env.event)
        .unwrap_or_else(|e| {
            format!(
                r#"{{"type":"diagnostic","level":"error","code":"internal","message":"cannot encode event: {e}"}}"#
            )
        })
        .into()
}

pub(crate) fn frame_text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"cannot encode a frame: {e}"}}"#)
    })
}

/// The stream ends after this frame.
pub(crate) fn error_frame(code: ErrorCode, message: String) -> String {
    frame_text(&Frame::<Cursor>::Error { code, message })
}

/// Something the client should know; the stream goes on.
pub(crate) fn diagnostic_frame(code: ErrorCode, message: String) -> String {
    frame_text(&Frame::<Cursor>::Diagnostic { code, message })
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "snapshot")]
pub(crate) struct SnapshotFrame<'a> {
    pub cursor: &'a str,
    pub runtime_id: &'a str,
    pub worker: &'a WorkerInfo,
    pub transcript: &'a [Message],
    pub in_flight: &'a Option<InFlight>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "snapshot_all")]
pub(crate) struct SnapshotAllFrame<'a> {
    pub cursor: &'a str,
    pub workers: &'a [RuntimeWorkerSnapshot],
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "lagged")]
pub(crate) struct LaggedFrame<'a> {
    pub cursor: &'a str,
    pub message: &'a str,
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::{Event, HostCursor, Usage, WorkerStatus};

    #[test]
    fn hand_built_frames_match_the_protocol_frames() {
        let event = Event::TextDelta {
            run_id: "r_1".into(),
            text: "Hel".into(),
        };
        let cursor = Cursor::new(1, 42);
        for worker_id in [Some("w_1"), None, Some("odd \"id\"")] {
            let env = Envelope {
                seq: 42,
                worker_id: worker_id.map(str::to_string),
                at_ms: 7,
                event: event.clone(),
            };
            let text = event_frame(&cursor.encode(), "local", &env, &event_json(&env));
            let frame: Frame = serde_json::from_str(&text).unwrap();
            assert_eq!(
                frame,
                Frame::Event {
                    cursor,
                    seq: 42,
                    runtime_id: "local".into(),
                    worker_id: worker_id.map(str::to_string),
                    at_ms: 7,
                    event: event.clone(),
                }
            );
        }

        let worker = WorkerInfo {
            id: "w_1".into(),
            name: "n".into(),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: 8,
            status: WorkerStatus::Idle,
            created_at_ms: 1,
            current_run: None,
            run_count: 0,
            message_count: 0,
            usage: Usage::default(),
            context_tokens: None,
            request_id: None,
        };
        let text = frame_text(&SnapshotFrame {
            cursor: &cursor.encode(),
            runtime_id: "local",
            worker: &worker,
            transcript: &[],
            in_flight: &None,
        });
        let frame: Frame = serde_json::from_str(&text).unwrap();
        assert!(matches!(frame, Frame::Snapshot { cursor: c, .. } if c == cursor));

        let mut host = HostCursor::new();
        host.set("local", cursor);
        let text = frame_text(&SnapshotAllFrame {
            cursor: &host.encode(),
            workers: &[],
        });
        let frame: Frame<HostCursor> = serde_json::from_str(&text).unwrap();
        assert!(matches!(frame, Frame::SnapshotAll { cursor: c, .. } if c == host));

        let text = frame_text(&LaggedFrame {
            cursor: &cursor.encode(),
            message: "m",
        });
        let frame: Frame = serde_json::from_str(&text).unwrap();
        assert!(matches!(frame, Frame::Lagged { cursor: c, .. } if c == cursor));

        let frame: Frame =
            serde_json::from_str(&error_frame(ErrorCode::CursorAhead, "m".into())).unwrap();
        assert!(matches!(
            frame,
            Frame::Error {
                code: ErrorCode::CursorAhead,
                ..
            }
        ));
    }
}
