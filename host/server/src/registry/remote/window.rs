//! [`Upstream`]: what the host holds of a remote runtime's events: the position they
//! start after, a window of the most recent ones (bounded in events and in bytes, so a
//! runtime sending huge events cannot grow it without limit), and the live broadcast
//! that the host's streams subscribe to.
//!
//! The window is the only owner of the events: the broadcast carries weak references,
//! so its slots (a fixed number, whatever the events' size) keep no event alive that
//! the window dropped. A stream that had not taken such an event yet is `lagged` by it
//! (see `yoi_serving::Subscription`) and resumes from its cursor by replay.

use std::collections::VecDeque;
use std::sync::{Arc, Weak};

use tokio::sync::broadcast;
use yoi_eventlog::ReplayPage;
use yoi_protocol::{Cursor, Envelope};

/// Recent events of one remote runtime, in order and without a gap since `start`.
pub(super) struct Upstream {
    /// The position the window starts after; `None` until the first snapshot of the
    /// upstream stream.
    start: Option<Cursor>,
    window: VecDeque<Arc<Envelope>>,
    capacity: usize,
    /// Estimated bytes the window holds ([`yoi_protocol::size::envelope`]), and the most
    /// it may (the newest event is held whatever its size).
    bytes: u64,
    max_bytes: u64,
    live: broadcast::Sender<Weak<Envelope>>,
    live_capacity: usize,
}

impl Upstream {
    pub(super) fn new(capacity: usize, max_bytes: u64, live_capacity: usize) -> Self {
        Upstream {
            start: None,
            window: VecDeque::new(),
            capacity: capacity.max(1),
            bytes: 0,
            max_bytes,
            live: broadcast::channel(live_capacity.max(1)).0,
            live_capacity: live_capacity.max(1),
        }
    }

    /// The epoch of the runtime's event store, once known.
    pub(super) fn epoch(&self) -> Option<u64> {
        self.start.map(|c| c.epoch)
    }

    pub(super) fn subscribe(&self) -> broadcast::Receiver<Weak<Envelope>> {
        self.live.subscribe()
    }

    /// The upstream stream (re)started from a snapshot consistent with `at`. The first
    /// time, events are held from there. Later (the runtime's store changed, or the
    /// host's upstream fell behind its retained history) what streams were sent may no
    /// longer continue without a gap: the live broadcast is replaced, so every open
    /// stream ends (`shutting_down`) and its client resumes from its cursor, which the
    /// runtime answers (events, or `cursor_expired` / `cursor_unknown` and a fresh
    /// snapshot).
    pub(super) fn restart(&mut self, at: Cursor) {
        if self.start.is_some() {
            self.live = broadcast::channel(self.live_capacity).0;
        }
        self.start = Some(at);
        self.window.clear();
        self.bytes = 0;
    }

    /// Holds `env` (dropping the oldest beyond the capacity in events or bytes) and
    /// sends it to the streams.
    pub(super) fn publish(&mut self, env: Arc<Envelope>) {
        let size = yoi_protocol::size::envelope(&env);
        while !self.window.is_empty()
            && (self.window.len() >= self.capacity || self.bytes + size > self.max_bytes)
            && let Some(oldest) = self.window.pop_front()
        {
            self.bytes -= yoi_protocol::size::envelope(&oldest);
            if let Some(start) = &mut self.start {
                start.seq = oldest.seq;
            }
        }
        self.bytes += size;
        let weak = Arc::downgrade(&env);
        self.window.push_back(env);
        // No subscriber is not an error.
        let _ = self.live.send(weak);
    }

    /// Events and estimated bytes the window holds.
    pub(super) fn held(&self) -> (usize, u64) {
        (self.window.len(), self.bytes)
    }

    /// The last sequence number held.
    pub(super) fn last_seq(&self) -> u64 {
        self.window
            .back()
            .map(|e| e.seq)
            .or(self.start.map(|c| c.seq))
            .unwrap_or(0)
    }

    /// Events after `after` (of `worker` only), at most `limit`, when the window holds
    /// everything after `after`; `None` when the runtime must answer.
    pub(super) fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Option<ReplayPage> {
        let start = self.start?;
        let end = self.last_seq();
        if after.epoch != start.epoch || after.seq < start.seq || after.seq > end {
            return None;
        }
        let mut events = Vec::new();
        let mut next = Cursor::new(start.epoch, end);
        let mut more = false;
        let matching = self
            .window
            .iter()
            .filter(|e| e.seq > after.seq)
            .filter(|e| worker.is_none_or(|w| e.worker_id.as_deref() == Some(w)));
        for env in matching {
            if events.len() == limit {
                more = true;
                let last: Option<&Arc<Envelope>> = events.last();
                next = Cursor::new(start.epoch, last.map_or(after.seq, |e| e.seq));
                break;
            }
            events.push(env.clone());
        }
        Some(ReplayPage { events, next, more })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::Event;

    fn env(seq: u64, worker: &str) -> Arc<Envelope> {
        Arc::new(Envelope {
            seq,
            worker_id: Some(worker.into()),
            at_ms: seq,
            event: Event::TextDelta {
                run_id: "r_1".into(),
                text: "x".into(),
            },
        })
    }

    #[test]
    fn the_window_answers_what_it_holds_in_pages_and_nothing_older() {
        let mut up = Upstream::new(3, 1 << 20, 8);
        assert!(
            up.replay(Cursor::new(5, 0), None, 10).is_none(),
            "not started"
        );
        up.restart(Cursor::new(5, 10));
        let mut rx = up.subscribe();
        for seq in 11..=14 {
            up.publish(env(seq, if seq % 2 == 0 { "a" } else { "b" }));
        }
        // 11 left the window: the broadcast kept nothing of it.
        assert!(rx.try_recv().unwrap().upgrade().is_none());
        assert_eq!(rx.try_recv().unwrap().upgrade().unwrap().seq, 12);
        // Holds 12..=14: after 11 is answerable, after 10 is not.
        assert!(up.replay(Cursor::new(5, 10), None, 10).is_none());
        assert!(
            up.replay(Cursor::new(6, 12), None, 10).is_none(),
            "other epoch"
        );
        assert!(up.replay(Cursor::new(5, 15), None, 10).is_none(), "beyond");
        let page = up.replay(Cursor::new(5, 11), None, 2).unwrap();
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!(
            (seqs, page.next, page.more),
            (vec![12, 13], Cursor::new(5, 13), true)
        );
        let page = up.replay(Cursor::new(5, 13), None, 2).unwrap();
        assert_eq!(
            (page.events.len(), page.next, page.more),
            (1, Cursor::new(5, 14), false)
        );
        let page = up.replay(Cursor::new(5, 11), Some("b"), 5).unwrap();
        let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
        assert_eq!((seqs, page.next), (vec![13], Cursor::new(5, 14)));
        assert_eq!(up.last_seq(), 14);
    }

    #[test]
    fn the_window_is_bounded_in_bytes_too() {
        let big = |seq: u64| {
            Arc::new(Envelope {
                seq,
                worker_id: None,
                at_ms: 0,
                event: Event::TextDelta {
                    run_id: "r".into(),
                    text: "x".repeat(1000),
                },
            })
        };
        let one = yoi_protocol::size::envelope(&big(1));
        let mut up = Upstream::new(100, 3 * one, 8);
        up.restart(Cursor::new(1, 0));
        for seq in 1..=10 {
            up.publish(big(seq));
            let (len, bytes) = up.held();
            assert!(len <= 3 && bytes <= 3 * one, "{len} {bytes}");
        }
        assert_eq!(up.held(), (3, 3 * one));
        // What fell out is answered by the runtime, not the window.
        assert!(up.replay(Cursor::new(1, 6), None, 10).is_none());
        assert_eq!(
            up.replay(Cursor::new(1, 7), None, 10).unwrap().events.len(),
            3
        );
        // One event larger than the budget is still held, alone.
        let mut tiny = Upstream::new(100, 10, 8);
        tiny.restart(Cursor::new(1, 0));
        tiny.publish(big(1));
        tiny.publish(big(2));
        assert_eq!(tiny.held().0, 1);
    }

    /// The broadcast has more slots than the window holds events of this size: a
    /// receiver that reads nothing keeps none of them alive, and is lagged by each one
    /// the window dropped before it took it.
    #[test]
    fn the_broadcast_keeps_alive_only_what_the_window_holds() {
        use tokio::sync::broadcast::error::TryRecvError;
        use yoi_serving::Subscription;
        let big = |seq: u64| {
            Arc::new(Envelope {
                seq,
                worker_id: Some("w_1".into()),
                at_ms: 0,
                event: Event::TextDelta {
                    run_id: "r".into(),
                    text: "x".repeat(100_000),
                },
            })
        };
        let one = yoi_protocol::size::envelope(&big(1));
        let mut up = Upstream::new(100, 3 * one, 64);
        up.restart(Cursor::new(1, 0));
        let stalled = up.subscribe();
        let mut all = Vec::new();
        for seq in 1..=10 {
            let env = big(seq);
            all.push(Arc::downgrade(&env));
            up.publish(env);
        }
        let alive: Vec<u64> = all
            .iter()
            .filter_map(Weak::upgrade)
            .map(|e| e.seq)
            .collect();
        assert_eq!(alive, [8, 9, 10], "only what the window holds is alive");
        assert_eq!(up.held(), (3, 3 * one));
        let mut sub = Subscription::from(stalled);
        for _ in 1..=7 {
            assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Lagged(1));
        }
        for seq in 8..=10 {
            let env = sub.try_recv().unwrap();
            assert_eq!(env.seq, seq);
            assert_eq!(Arc::strong_count(&env), 2, "the window's and this one");
        }
        assert_eq!(sub.try_recv().unwrap_err(), TryRecvError::Empty);
    }

    #[test]
    fn a_restart_ends_the_streams_of_the_old_broadcast() {
        let mut up = Upstream::new(3, 1 << 20, 8);
        up.restart(Cursor::new(5, 0));
        let mut rx = up.subscribe();
        up.restart(Cursor::new(6, 3));
        assert_eq!(
            rx.try_recv().unwrap_err(),
            broadcast::error::TryRecvError::Closed
        );
        assert_eq!(up.epoch(), Some(6));
        assert!(up.replay(Cursor::new(6, 3), None, 1).is_some());
    }
}
