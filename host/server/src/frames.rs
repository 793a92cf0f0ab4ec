//! Event frames, and the per-runtime cache that builds each frame once for all streams.
//!
//! An event goes to every stream that observes it. Its JSON is the same for all of them,
//! and so is the whole frame for streams whose cursor is determined by the event alone:
//! one worker's stream (the runtime cursor) and the multiplexed stream of a host with one
//! runtime (`h1~<id>.<runtime cursor>`). The cache keeps those per sequence number in a
//! ring of recent events, so N observers cost one serialization plus N reference-count
//! increments. A stream further behind than the ring builds its own frames and leaves the
//! newer entries to the streams that share them. Streams whose frames differ (redacted
//! events, multiplexed cursors over several runtimes) build their own.

use std::sync::{Arc, Mutex};

use axum::extract::ws::Utf8Bytes;
use yoi_protocol::{Cursor, Envelope, HostCursor};

/// An `event` frame; `body` is the event's JSON. Built by hand: the body is shared by
/// every stream (see [`FrameCache`]), the rest is a few numbers and ids.
pub(crate) fn event_frame(cursor: &str, runtime_id: &str, env: &Envelope, body: &str) -> String {
    let mut out = String::with_capacity(body.len() + cursor.len() + 128);
    out.push_str(r#"{"type":"event","cursor":""#);
    out.push_str(cursor);
    let mut number = itoa::Buffer::new();
    out.push_str(r#"","seq":"#);
    out.push_str(number.format(env.seq));
    out.push_str(r#","runtime_id":""#);
    // Runtime ids are `a-z 0-9 _ -` (checked by the config) and cursors are hex and
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

/// Which shared frame a stream wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Cursor: the runtime cursor of the event.
    Worker,
    /// Cursor: a host cursor naming only this runtime.
    All,
}

/// Events kept: as many as the default live buffer (`runtimes.log.broadcast_capacity`),
/// so streams up to a live buffer apart still share frames. (With 4,096, observers that
/// drifted further apart evicted each other's entries: in the host bench each event's
/// frame was built about 3 times instead of once.)
const SLOTS: usize = 16_384;

#[derive(Default)]
struct Slot {
    seq: u64,
    json: Option<Arc<str>>,
    worker: Option<Utf8Bytes>,
    all: Option<Utf8Bytes>,
}

/// Recent events' JSON and frames of one runtime, indexed by sequence number.
pub struct FrameCache {
    slots: Box<[Mutex<Slot>]>,
}

impl Default for FrameCache {
    fn default() -> Self {
        FrameCache {
            slots: (0..SLOTS).map(|_| Mutex::new(Slot::default())).collect(),
        }
    }
}

fn encode_event(env: &Envelope) -> Arc<str> {
    serde_json::to_string(&env.event)
        .unwrap_or_else(|e| {
            format!(
                r#"{{"type":"diagnostic","level":"error","code":"internal","message":"cannot encode event: {e}"}}"#
            )
        })
        .into()
}

impl FrameCache {
    /// The slot of `seq`, taken over from an older event; `None` when it already holds a
    /// newer one (a stream far behind the others must not evict what the leaders share).
    fn slot(&self, seq: u64) -> Option<std::sync::MutexGuard<'_, Slot>> {
        let m = &self.slots[seq as usize % SLOTS];
        let mut slot = m.lock().unwrap_or_else(|e| e.into_inner());
        if slot.seq > seq {
            return None;
        }
        if slot.seq < seq {
            *slot = Slot {
                seq,
                ..Slot::default()
            };
        }
        Some(slot)
    }

    /// The event's JSON (`{"type":"text_delta",…}`).
    pub fn json(&self, env: &Envelope) -> Arc<str> {
        json_in(self.slot(env.seq).as_deref_mut(), env)
    }

    /// The whole event frame of `shape` (`epoch` is the runtime's).
    pub(crate) fn frame(
        &self,
        runtime_id: &str,
        epoch: u64,
        env: &Envelope,
        shape: Shape,
    ) -> Utf8Bytes {
        let mut slot = self.slot(env.seq);
        if let Some(frame) = slot.as_deref_mut().and_then(|s| s.frame_mut(shape).clone()) {
            return frame;
        }
        let json = json_in(slot.as_deref_mut(), env);
        let runtime_cursor = Cursor::new(epoch, env.seq);
        let mut cursor = String::with_capacity(64);
        match shape {
            Shape::Worker => runtime_cursor.write_to(&mut cursor),
            Shape::All => {
                cursor.push_str(HostCursor::PREFIX);
                HostCursor::write_part(&mut cursor, runtime_id, runtime_cursor);
            }
        }
        let frame: Utf8Bytes = event_frame(&cursor, runtime_id, env, &json).into();
        if let Some(slot) = slot.as_deref_mut() {
            *slot.frame_mut(shape) = Some(frame.clone());
        }
        frame
    }
}

impl Slot {
    fn frame_mut(&mut self, shape: Shape) -> &mut Option<Utf8Bytes> {
        match shape {
            Shape::Worker => &mut self.worker,
            Shape::All => &mut self.all,
        }
    }
}

/// The event's JSON from its slot (encoded into it once), or encoded for this caller
/// alone when the slot belongs to a newer event.
fn json_in(slot: Option<&mut Slot>, env: &Envelope) -> Arc<str> {
    match slot {
        Some(slot) => slot.json.get_or_insert_with(|| encode_event(env)).clone(),
        None => encode_event(env),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::HostCursor;
    use yoi_protocol::{Event, Frame};

    #[test]
    fn shared_frames_carry_the_right_cursors() {
        let cache = FrameCache::default();
        let env = Envelope {
            seq: 9,
            worker_id: Some("w_1".into()),
            at_ms: 1,
            event: Event::RunStarted {
                run_id: "r_1".into(),
            },
        };
        let worker = cache.frame("local", 77, &env, Shape::Worker);
        let frame: Frame = serde_json::from_str(worker.as_str()).unwrap();
        assert!(matches!(frame, Frame::Event { cursor, .. } if cursor == Cursor::new(77, 9)));
        let all = cache.frame("local", 77, &env, Shape::All);
        let v: serde_json::Value = serde_json::from_str(all.as_str()).unwrap();
        let mut want = HostCursor::new();
        want.set("local", Cursor::new(77, 9));
        assert_eq!(v["cursor"], want.encode());
        assert_eq!(v["event"]["type"], "run_started");
        // A later event in the same slot replaces it.
        let later = Envelope {
            seq: 9 + SLOTS as u64,
            ..env.clone()
        };
        let newer = cache.frame("local", 77, &later, Shape::Worker);
        let v: serde_json::Value = serde_json::from_str(newer.as_str()).unwrap();
        assert_eq!(v["seq"], later.seq);

        // A stream far behind gets its own (right) frame and does not evict the newer one.
        let behind = cache.frame("local", 77, &env, Shape::Worker);
        let v: serde_json::Value = serde_json::from_str(behind.as_str()).unwrap();
        assert_eq!(v["seq"], env.seq);
        let shared = cache.frame("local", 77, &later, Shape::Worker);
        assert_eq!(
            newer.as_str().as_ptr(),
            shared.as_str().as_ptr(),
            "the newer event's frame is still shared"
        );
    }
}
