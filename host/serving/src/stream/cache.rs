//! [`FrameCache`]: each event's frame built once for every stream of a runtime.
//!
//! An event goes to every stream that observes it. Its JSON is the same for all of them,
//! and so is the whole frame for streams whose cursor is determined by the event alone:
//! streams with a runtime cursor (one worker's, a runtime server's runtime-wide stream)
//! and a host's multiplexed stream when the host has one runtime
//! (`h1~<id>.<runtime cursor>`). The cache keeps those per sequence number in a ring of
//! recent events, so N observers cost one serialization plus N reference-count
//! increments. A stream further behind than the ring builds its own frames and leaves
//! the newer entries to the streams that share them. Streams whose frames differ
//! (redacted events, multiplexed cursors over several runtimes) build their own.
//!
//! The ring is bounded in bytes as well as in events: a remote runtime's events may be
//! up to its 64 MiB frame limit each, and a ring of them must not outgrow what the
//! runtime's window may hold. Beyond [`MAX_BYTES`] (or for an event larger than
//! [`MAX_ENTRY_BYTES`]) a stream builds its own frame and nothing is kept.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use axum::extract::ws::Utf8Bytes;
use yoi_protocol::{Cursor, Envelope, HostCursor};

use super::frames::{event_frame, event_json};

/// Which shared frame a stream wants.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Shape {
    /// Cursor: the runtime cursor of the event.
    RuntimeCursor,
    /// Cursor: a host cursor naming only this runtime.
    HostCursor,
}

/// Events kept: as many as the default live buffer (`log.broadcast_capacity`), so streams
/// up to a live buffer apart still share frames. (With 4,096, observers that drifted
/// further apart evicted each other's entries: in the host bench each event's frame was
/// built about 3 times instead of once.)
const SLOTS: usize = 16_384;

/// Bytes of JSON and frames the ring holds at most (small events' frames of every slot
/// take a few MiB).
const MAX_BYTES: u64 = 64 << 20;
/// An entry larger than this is not kept: one stream's copy of a large event costs as
/// much as the sharing saves, and the ring stays for the many small ones.
const MAX_ENTRY_BYTES: u64 = 1 << 20;

#[derive(Default)]
struct Slot {
    /// The epoch of the event store the event is from: a remote runtime whose store is
    /// replaced numbers its events from 1 again, and the same sequence number is then
    /// another event.
    epoch: u64,
    seq: u64,
    json: Option<Arc<str>>,
    runtime_cursor: Option<Utf8Bytes>,
    host_cursor: Option<Utf8Bytes>,
    /// Bytes of the three above, counted in [`FrameCache::bytes`].
    bytes: u64,
}

impl Slot {
    fn frame_mut(&mut self, shape: Shape) -> &mut Option<Utf8Bytes> {
        match shape {
            Shape::RuntimeCursor => &mut self.runtime_cursor,
            Shape::HostCursor => &mut self.host_cursor,
        }
    }
}

/// Recent events' JSON and frames of one runtime, indexed by sequence number.
pub struct FrameCache {
    slots: Box<[Mutex<Slot>]>,
    /// Bytes the slots hold, at most [`MAX_BYTES`].
    bytes: AtomicU64,
}

impl Default for FrameCache {
    fn default() -> Self {
        FrameCache {
            slots: (0..SLOTS).map(|_| Mutex::new(Slot::default())).collect(),
            bytes: AtomicU64::new(0),
        }
    }
}

impl FrameCache {
    /// The slot of `seq`, taken over from an older event or another store; `None` when
    /// it already holds a newer one (a stream far behind the others must not evict what
    /// the leaders share).
    fn slot(&self, epoch: u64, seq: u64) -> Option<MutexGuard<'_, Slot>> {
        let m = &self.slots[(seq % SLOTS as u64) as usize];
        let mut slot = m.lock().unwrap_or_else(|e| e.into_inner());
        if slot.epoch == epoch && slot.seq > seq {
            return None;
        }
        if slot.epoch != epoch || slot.seq < seq {
            self.bytes.fetch_sub(slot.bytes, Ordering::Relaxed);
            *slot = Slot {
                epoch,
                seq,
                ..Slot::default()
            };
        }
        Some(slot)
    }

    /// Counts `len` more bytes for `slot` if the budget allows; whether it did.
    fn reserve(&self, slot: &mut Slot, len: usize) -> bool {
        let len = len as u64;
        let fits = len <= MAX_ENTRY_BYTES
            && self
                .bytes
                .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |held| {
                    (held + len <= MAX_BYTES).then_some(held + len)
                })
                .is_ok();
        if fits {
            slot.bytes += len;
        }
        fits
    }

    /// Bytes of JSON and frames held now.
    #[cfg(test)]
    fn held(&self) -> u64 {
        self.bytes.load(Ordering::Relaxed)
    }

    /// The JSON (`{"type":"text_delta",…}`) of the event of the store of `epoch`.
    pub fn json(&self, epoch: u64, env: &Envelope) -> Arc<str> {
        self.json_in(self.slot(epoch, env.seq).as_deref_mut(), env)
    }

    /// The whole event frame of `shape` (`epoch` is the runtime's).
    pub(crate) fn frame(
        &self,
        runtime_id: &str,
        epoch: u64,
        env: &Envelope,
        shape: Shape,
    ) -> Utf8Bytes {
        let mut slot = self.slot(epoch, env.seq);
        if let Some(frame) = slot.as_deref_mut().and_then(|s| s.frame_mut(shape).clone()) {
            return frame;
        }
        let json = self.json_in(slot.as_deref_mut(), env);
        let runtime_cursor = Cursor::new(epoch, env.seq);
        let mut cursor = String::with_capacity(64);
        match shape {
            Shape::RuntimeCursor => runtime_cursor.write_to(&mut cursor),
            Shape::HostCursor => {
                cursor.push_str(HostCursor::PREFIX);
                HostCursor::write_part(&mut cursor, runtime_id, runtime_cursor);
            }
        }
        let frame: Utf8Bytes = event_frame(&cursor, runtime_id, env, &json).into();
        if let Some(slot) = slot.as_deref_mut()
            && self.reserve(slot, frame.len())
        {
            *slot.frame_mut(shape) = Some(frame.clone());
        }
        frame
    }

    /// The event's JSON from its slot (encoded into it once), or encoded for this caller
    /// alone when the slot belongs to a newer event or the budget is spent.
    fn json_in(&self, slot: Option<&mut Slot>, env: &Envelope) -> Arc<str> {
        let Some(slot) = slot else {
            return event_json(env);
        };
        if let Some(json) = &slot.json {
            return json.clone();
        }
        let json = event_json(env);
        if self.reserve(slot, json.len()) {
            slot.json = Some(json.clone());
        }
        json
    }
}

#[cfg(test)]
mod tests {
    use super::*;
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
        let runtime = cache.frame("local", 77, &env, Shape::RuntimeCursor);
        let frame: Frame = serde_json::from_str(runtime.as_str()).unwrap();
        assert!(matches!(frame, Frame::Event { cursor, .. } if cursor == Cursor::new(77, 9)));
        let host = cache.frame("local", 77, &env, Shape::HostCursor);
        let v: serde_json::Value = serde_json::from_str(host.as_str()).unwrap();
        let mut want = HostCursor::new();
        want.set("local", Cursor::new(77, 9));
        assert_eq!(v["cursor"], want.encode());
        assert_eq!(v["event"]["type"], "run_started");
        // A later event in the same slot replaces it.
        let later = Envelope {
            seq: 9 + SLOTS as u64,
            ..env.clone()
        };
        let newer = cache.frame("local", 77, &later, Shape::RuntimeCursor);
        let v: serde_json::Value = serde_json::from_str(newer.as_str()).unwrap();
        assert_eq!(v["seq"], later.seq);

        // A stream far behind gets its own (right) frame and does not evict the newer one.
        let behind = cache.frame("local", 77, &env, Shape::RuntimeCursor);
        let v: serde_json::Value = serde_json::from_str(behind.as_str()).unwrap();
        assert_eq!(v["seq"], env.seq);
        let shared = cache.frame("local", 77, &later, Shape::RuntimeCursor);
        assert_eq!(
            newer.as_str().as_ptr(),
            shared.as_str().as_ptr(),
            "the newer event's frame is still shared"
        );

        // The same sequence number in another store is another event.
        let other = Envelope {
            event: Event::RunStarted {
                run_id: "r_2".into(),
            },
            ..env.clone()
        };
        let replaced = cache.frame("local", 78, &other, Shape::RuntimeCursor);
        let v: serde_json::Value = serde_json::from_str(replaced.as_str()).unwrap();
        assert_eq!(v["event"]["run_id"], "r_2");
        assert_eq!(v["cursor"], Cursor::new(78, 9).encode());
    }

    #[test]
    fn the_ring_is_bounded_in_bytes() {
        let cache = FrameCache::default();
        let event = |seq: u64, bytes: usize| Envelope {
            seq,
            worker_id: Some("w_1".into()),
            at_ms: 1,
            event: Event::TextDelta {
                run_id: "r_1".into(),
                text: "x".repeat(bytes),
            },
        };
        // Large events are built for each caller and not kept.
        let big = event(1, MAX_ENTRY_BYTES as usize);
        let a = cache.frame("local", 1, &big, Shape::RuntimeCursor);
        let b = cache.frame("local", 1, &big, Shape::RuntimeCursor);
        assert_ne!(a.as_str().as_ptr(), b.as_str().as_ptr());
        assert_eq!(cache.held(), 0);
        // Entries up to the limit are shared until the budget is spent, then built
        // per caller; the bytes held never pass the budget.
        let size = (MAX_ENTRY_BYTES / 2) as usize;
        let mut seq = 2;
        loop {
            let env = event(seq, size);
            let a = cache.frame("local", 1, &env, Shape::RuntimeCursor);
            let b = cache.frame("local", 1, &env, Shape::RuntimeCursor);
            assert!(cache.held() <= MAX_BYTES);
            if a.as_str().as_ptr() != b.as_str().as_ptr() {
                break;
            }
            seq += 1;
        }
        assert!(
            cache.held() > MAX_BYTES - 2 * MAX_ENTRY_BYTES,
            "{}",
            cache.held()
        );
        // A slot taken over by a newer event gives its bytes back.
        let before = cache.held();
        let newer = event(2 + SLOTS as u64, 10);
        cache.frame("local", 1, &newer, Shape::RuntimeCursor);
        assert!(cache.held() < before - size as u64);
    }
}
