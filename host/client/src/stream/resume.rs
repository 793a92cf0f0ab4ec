//! The decisions of a self-resuming stream, with no socket in it (sans-IO).
//!
//! The socket loop ([`EventStream`](crate::EventStream)) feeds [`Resume`] every frame it
//! reads and every way a connection ends; `Resume` says what to yield, what to drop,
//! where to resume and when to try again. Its whole state is the last cursor it let
//! through and a count of failures, so it can be driven by recorded frame sequences in
//! tests.
//!
//! - **Resume point**: the cursor of the last `event`, `snapshot` or `snapshot_all`
//!   delivered (or the caller's starting cursor).
//! - **Duplicates**: an event whose sequence number is not beyond what the resume point
//!   has seen of its runtime (same log epoch) is dropped. On the multiplexed stream each
//!   runtime is compared with its own part of the host cursor.
//! - **Snapshots** reset the resume point: after a `cursor_expired` / `cursor_unknown`
//!   diagnostic (passed through) the server sends a fresh snapshot, possibly of another
//!   log epoch, and numbering continues from it.
//! - **`lagged`**: reconnect at once from the resume point.
//! - **`error` frames and failed connections**: transient ones (unreachable, timeout,
//!   `shutting_down`, `runtime_unavailable`, ...) are retried with [`Backoff`];
//!   permanent ones (`cursor_malformed`, `worker_not_found`, `unauthorized`, an
//!   undecodable frame, ...) end the stream.

use std::num::NonZeroU32;
use std::time::Duration;

use yoi_protocol::Frame;

use super::backoff::Backoff;
use super::item::{Disconnect, StreamCursor};
use crate::error::ClientError;
use crate::options::StreamOptions;

/// What to do with a frame.
#[allow(
    clippy::large_enum_variant,
    reason = "frames are the common case; boxing would allocate once per frame"
)]
#[derive(Debug, PartialEq)]
pub(crate) enum Step<C> {
    /// Yield it.
    Deliver(Frame<C>),
    /// Already delivered: drop it.
    Skip,
    /// Close this connection for this reason (then ask [`Resume::on_disconnect`]).
    Disconnect(Disconnect),
}

/// What to do after a connection ended.
#[derive(Debug, PartialEq)]
pub(crate) enum Next {
    /// Connect again after `after`, from [`Resume::resume_from`].
    Retry { attempt: u32, after: Duration },
    /// Stop for good.
    GiveUp(ClientError),
}

#[derive(Debug)]
pub(crate) struct Resume<C> {
    last: Option<C>,
    /// Connections that ended since a frame last arrived.
    failures: u32,
    max_attempts: Option<NonZeroU32>,
    backoff: Backoff,
}

impl<C: StreamCursor> Resume<C> {
    /// A stream starting after `start` (or with a snapshot when `None`); `seed` drives
    /// the backoff's jitter.
    pub(crate) fn new(start: Option<C>, options: &StreamOptions, seed: u64) -> Self {
        Resume {
            last: start,
            failures: 0,
            max_attempts: options.max_attempts,
            backoff: Backoff::new(options.backoff_initial, options.backoff_max, seed),
        }
    }

    /// Where the next connection starts: after this cursor, or with a snapshot.
    pub(crate) fn resume_from(&self) -> Option<&C> {
        self.last.as_ref()
    }

    pub(crate) fn on_frame(&mut self, frame: Frame<C>) -> Step<C> {
        if !matches!(frame, Frame::Error { .. } | Frame::Lagged { .. }) {
            // The connection works: the next failure starts the backoff afresh. (A server
            // that answers every connection with an error frame keeps backing off.)
            self.failures = 0;
        }
        match frame {
            Frame::Event {
                ref cursor,
                seq,
                ref runtime_id,
                ..
            } => {
                if self.already_delivered(runtime_id, cursor, seq) {
                    return Step::Skip;
                }
                self.last = Some(cursor.clone());
                Step::Deliver(frame)
            }
            Frame::Snapshot { ref cursor, .. } | Frame::SnapshotAll { ref cursor, .. } => {
                self.last = Some(cursor.clone());
                Step::Deliver(frame)
            }
            Frame::Diagnostic { .. } => Step::Deliver(frame),
            Frame::Error { code, message } => {
                Step::Disconnect(Disconnect::Failed(ClientError::Stream { code, message }))
            }
            Frame::Lagged { cursor, .. } => {
                // Everything the server sent before `lagged` was delivered, so our own
                // position is at least as far; its cursor matters only if we have none.
                if self.last.is_none() {
                    self.last = Some(cursor);
                }
                Step::Disconnect(Disconnect::Lagged)
            }
        }
    }

    fn already_delivered(&self, runtime_id: &str, cursor: &C, seq: u64) -> bool {
        let (Some(seen), Some(this)) = (
            self.last.as_ref().and_then(|l| l.position(runtime_id)),
            cursor.position(runtime_id),
        ) else {
            return false;
        };
        seen.epoch == this.epoch && seq <= seen.seq
    }

    pub(crate) fn on_disconnect(&mut self, reason: &Disconnect) -> Next {
        let error = match reason {
            Disconnect::Lagged => {
                self.failures = 0;
                return Next::Retry {
                    attempt: 1,
                    after: Duration::ZERO,
                };
            }
            Disconnect::Closed => ClientError::Network {
                message: "the server closed the stream".into(),
            },
            Disconnect::Failed(e) if !e.is_transient() => return Next::GiveUp(e.clone()),
            Disconnect::Failed(e) => e.clone(),
        };
        self.failures = self.failures.saturating_add(1);
        if self
            .max_attempts
            .is_some_and(|max| self.failures > max.get())
        {
            return Next::GiveUp(error);
        }
        Next::Retry {
            attempt: self.failures,
            after: self.backoff.delay(self.failures),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::{Cursor, ErrorCode, HostCursor};

    const E1: u64 = 0x1111;
    const E2: u64 = 0x2222;

    fn options() -> StreamOptions {
        StreamOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..StreamOptions::default()
        }
    }

    /// A frame as the server writes it (one JSON text message).
    fn frame<C: StreamCursor>(json: &str) -> Frame<C> {
        serde_json::from_str(json).unwrap_or_else(|e| panic!("{e}: {json}"))
    }

    fn cursor(epoch: u64, seq: u64) -> String {
        Cursor::new(epoch, seq).encode()
    }

    fn worker_event(epoch: u64, seq: u64) -> String {
        format!(
            r#"{{"type":"event","cursor":"{}","seq":{seq},"runtime_id":"local","worker_id":"w_1","at_ms":1700000000000,"event":{{"type":"text_delta","run_id":"r_1","text":"t{seq}"}}}}"#,
            cursor(epoch, seq)
        )
    }

    fn worker_snapshot(epoch: u64, seq: u64) -> String {
        format!(
            r#"{{"type":"snapshot","cursor":"{}","runtime_id":"local","worker":{{"id":"w_1","name":"demo","model":"scripted","system_prompt":null,"tools":[],"max_steps":8,"status":"idle","created_at_ms":1,"current_run":null,"run_count":0,"message_count":0,"usage":{{"input_tokens":0,"output_tokens":0}}}},"transcript":[],"in_flight":null}}"#,
            cursor(epoch, seq)
        )
    }

    /// Feeds recorded frames; returns the sequence numbers delivered (`0` for a
    /// snapshot, `-1` for a diagnostic) and the disconnect, if one came.
    fn feed<C: StreamCursor>(
        r: &mut Resume<C>,
        frames: &[String],
    ) -> (Vec<i64>, Option<Disconnect>) {
        let mut out = Vec::new();
        for text in frames {
            match r.on_frame(frame(text)) {
                Step::Deliver(Frame::Event { seq, .. }) => out.push(seq as i64),
                Step::Deliver(Frame::Snapshot { .. } | Frame::SnapshotAll { .. }) => out.push(0),
                Step::Deliver(Frame::Diagnostic { .. }) => out.push(-1),
                Step::Deliver(other) => panic!("delivered {other:?}"),
                Step::Skip => {}
                Step::Disconnect(d) => return (out, Some(d)),
            }
        }
        (out, None)
    }

    #[test]
    fn resumes_after_the_last_event_and_drops_replayed_duplicates() {
        let mut r = Resume::<Cursor>::new(None, &options(), 1);
        assert_eq!(
            r.resume_from(),
            None,
            "the first connection asks for a snapshot"
        );
        let (seen, end) = feed(
            &mut r,
            &[
                worker_snapshot(E1, 3),
                worker_event(E1, 4),
                worker_event(E1, 6),
            ],
        );
        assert_eq!(seen, [0, 4, 6]);
        assert_eq!(end, None);
        assert_eq!(r.resume_from(), Some(&Cursor::new(E1, 6)));

        let Next::Retry { attempt, after } = r.on_disconnect(&Disconnect::Closed) else {
            panic!("a closed connection is retried");
        };
        assert_eq!(attempt, 1);
        assert!(after >= Duration::from_millis(50) && after <= Duration::from_millis(100));

        // A server replaying from an older point: what was delivered is dropped.
        let (seen, _) = feed(
            &mut r,
            &[
                worker_event(E1, 5),
                worker_event(E1, 6),
                worker_event(E1, 7),
                worker_event(E1, 7),
                worker_event(E1, 9),
            ],
        );
        assert_eq!(seen, [7, 9]);
        assert_eq!(r.resume_from(), Some(&Cursor::new(E1, 9)));
    }

    #[test]
    fn a_starting_cursor_is_the_first_resume_point() {
        let mut r = Resume::new(Some(Cursor::new(E1, 10)), &options(), 1);
        assert_eq!(r.resume_from(), Some(&Cursor::new(E1, 10)));
        let (seen, _) = feed(&mut r, &[worker_event(E1, 10), worker_event(E1, 11)]);
        assert_eq!(seen, [11]);
    }

    #[test]
    fn lagged_reconnects_at_once_from_the_last_event() {
        let mut r = Resume::<Cursor>::new(None, &options(), 1);
        let lagged = format!(
            r#"{{"type":"lagged","cursor":"{}","message":"the client fell behind"}}"#,
            cursor(E1, 5)
        );
        let (seen, end) = feed(
            &mut r,
            &[worker_snapshot(E1, 2), worker_event(E1, 5), lagged.clone()],
        );
        assert_eq!(seen, [0, 5]);
        assert_eq!(end, Some(Disconnect::Lagged));
        assert_eq!(
            r.on_disconnect(&Disconnect::Lagged),
            Next::Retry {
                attempt: 1,
                after: Duration::ZERO
            }
        );
        assert_eq!(r.resume_from(), Some(&Cursor::new(E1, 5)));

        // With nothing delivered yet, the lagged frame's cursor is the resume point.
        let mut fresh = Resume::<Cursor>::new(None, &options(), 1);
        assert_eq!(feed(&mut fresh, &[lagged]).1, Some(Disconnect::Lagged));
        assert_eq!(fresh.resume_from(), Some(&Cursor::new(E1, 5)));
    }

    #[test]
    fn expired_cursor_diagnostic_then_snapshot_resets_the_position() {
        let mut r = Resume::new(Some(Cursor::new(E1, 10)), &options(), 1);
        let expired = r#"{"type":"diagnostic","code":"cursor_expired","message":"history after the cursor was pruned"}"#;
        let (seen, end) = feed(
            &mut r,
            &[
                expired.to_string(),
                worker_snapshot(E1, 50),
                worker_event(E1, 50),
                worker_event(E1, 51),
            ],
        );
        assert_eq!(seen, [-1, 0, 51]);
        assert_eq!(end, None);
        assert_eq!(r.resume_from(), Some(&Cursor::new(E1, 51)));
    }

    #[test]
    fn unknown_cursor_then_snapshot_of_a_new_store_restarts_numbering() {
        let mut r = Resume::new(Some(Cursor::new(E1, 100)), &options(), 1);
        let unknown = r#"{"type":"diagnostic","code":"cursor_unknown","message":"the cursor is from another event store"}"#;
        let (seen, _) = feed(
            &mut r,
            &[
                unknown.to_string(),
                worker_snapshot(E2, 5),
                worker_event(E2, 6),
                worker_event(E2, 7),
            ],
        );
        assert_eq!(
            seen,
            [-1, 0, 6, 7],
            "lower numbers of the new store are new"
        );
        assert_eq!(r.resume_from(), Some(&Cursor::new(E2, 7)));
    }

    #[test]
    fn permanent_error_frames_end_the_stream() {
        for code in [
            "cursor_malformed",
            "cursor_ahead",
            "worker_not_found",
            "runtime_not_found",
            "unauthorized",
            "invalid_request",
        ] {
            let mut r = Resume::<Cursor>::new(None, &options(), 1);
            let text = format!(r#"{{"type":"error","code":"{code}","message":"m"}}"#);
            let (_, end) = feed(&mut r, &[text]);
            let end = end.expect("an error frame ends the connection");
            let Next::GiveUp(e) = r.on_disconnect(&end) else {
                panic!("{code} is permanent");
            };
            assert_eq!(e.code().as_str(), code);
            assert!(matches!(e, ClientError::Stream { .. }));
        }
    }

    #[test]
    fn transient_failures_back_off_and_a_frame_resets_the_count() {
        let mut r = Resume::<Cursor>::new(None, &options(), 1);
        let shutting_down = r#"{"type":"error","code":"shutting_down","message":"the host is shutting down; reconnect later with your last cursor"}"#;
        let (_, end) = feed(&mut r, &[worker_snapshot(E1, 1), shutting_down.into()]);
        let end = end.unwrap();
        assert!(matches!(
            r.on_disconnect(&end),
            Next::Retry { attempt: 1, .. }
        ));
        let refused = Disconnect::Failed(ClientError::Network {
            message: "connection refused".into(),
        });
        let mut ceilings = Vec::new();
        for expected in 2..=6 {
            let Next::Retry { attempt, after } = r.on_disconnect(&refused) else {
                panic!("unreachable servers are retried");
            };
            assert_eq!(attempt, expected);
            ceilings.push(after);
        }
        assert!(
            ceilings[4] <= Duration::from_secs(1),
            "capped: {ceilings:?}"
        );
        assert!(ceilings[4] >= Duration::from_millis(500), "{ceilings:?}");
        feed(&mut r, &[worker_event(E1, 2)]);
        assert!(matches!(
            r.on_disconnect(&refused),
            Next::Retry { attempt: 1, .. }
        ));
        for http in [
            ClientError::from_status(
                503,
                br#"{"error":{"code":"runtime_unavailable","message":"loading"}}"#,
            ),
            ClientError::Timeout {
                message: "connect".into(),
            },
        ] {
            assert!(matches!(
                r.on_disconnect(&Disconnect::Failed(http)),
                Next::Retry { .. }
            ));
        }
    }

    #[test]
    fn error_frames_alone_keep_backing_off() {
        let mut r = Resume::<Cursor>::new(None, &options(), 1);
        let unavailable =
            r#"{"type":"error","code":"runtime_unavailable","message":"the runtime is loading"}"#;
        for expected in 1..=3 {
            let (_, end) = feed(&mut r, &[unavailable.to_string()]);
            assert!(matches!(
                r.on_disconnect(&end.unwrap()),
                Next::Retry { attempt, .. } if attempt == expected
            ));
        }
    }

    #[test]
    fn permanent_connect_failures_give_up_at_once() {
        let mut r = Resume::<Cursor>::new(None, &options(), 1);
        let refused = ClientError::from_status(
            401,
            br#"{"error":{"code":"unauthorized","message":"wrong access token"}}"#,
        );
        assert_eq!(
            r.on_disconnect(&Disconnect::Failed(refused.clone())),
            Next::GiveUp(refused)
        );
        let garbage = ClientError::bad_response("a frame is not JSON");
        assert_eq!(
            r.on_disconnect(&Disconnect::Failed(garbage.clone())),
            Next::GiveUp(garbage)
        );
    }

    #[test]
    fn max_attempts_bounds_consecutive_failures() {
        let opts = StreamOptions {
            max_attempts: NonZeroU32::new(2),
            ..options()
        };
        let mut r = Resume::<Cursor>::new(None, &opts, 1);
        assert!(matches!(
            r.on_disconnect(&Disconnect::Closed),
            Next::Retry { attempt: 1, .. }
        ));
        assert!(matches!(
            r.on_disconnect(&Disconnect::Closed),
            Next::Retry { attempt: 2, .. }
        ));
        let Next::GiveUp(e) = r.on_disconnect(&Disconnect::Closed) else {
            panic!("the third failure in a row gives up");
        };
        assert_eq!(e.code(), ErrorCode::RuntimeUnavailable);
    }

    fn host_cursor(parts: &[(&str, u64, u64)]) -> String {
        let mut c = HostCursor::new();
        for (id, epoch, seq) in parts {
            c.set(id, Cursor::new(*epoch, *seq));
        }
        c.encode()
    }

    fn mux_event(runtime: &str, seq: u64, cursor: &str, worker: Option<&str>) -> String {
        let worker = worker.map_or("null".to_string(), |w| format!("\"{w}\""));
        format!(
            r#"{{"type":"event","cursor":"{cursor}","seq":{seq},"runtime_id":"{runtime}","worker_id":{worker},"at_ms":5,"event":{{"type":"run_started","run_id":"r_1"}}}}"#
        )
    }

    #[test]
    fn multiplexed_streams_deduplicate_per_runtime() {
        let mut r = Resume::<HostCursor>::new(None, &options(), 1);
        let snap = format!(
            r#"{{"type":"snapshot_all","cursor":"{}","workers":[]}}"#,
            host_cursor(&[("a", E1, 4), ("b", E2, 2)])
        );
        let (seen, _) = feed(
            &mut r,
            &[
                snap,
                mux_event(
                    "a",
                    5,
                    &host_cursor(&[("a", E1, 5), ("b", E2, 2)]),
                    Some("w_1"),
                ),
                mux_event("b", 3, &host_cursor(&[("a", E1, 5), ("b", E2, 3)]), None),
            ],
        );
        assert_eq!(seen, [0, 5, 3]);
        let resume = r.resume_from().unwrap().clone();
        assert_eq!(resume.get("a"), Some(Cursor::new(E1, 5)));
        assert_eq!(resume.get("b"), Some(Cursor::new(E2, 3)));

        r.on_disconnect(&Disconnect::Closed);
        // After reconnecting: `a` 5 and `b` 3 again are duplicates, `b` 4 is new although
        // `a` is already past 4, and a runtime the cursor does not know yet is new.
        let (seen, _) = feed(
            &mut r,
            &[
                mux_event("a", 5, &host_cursor(&[("a", E1, 5), ("b", E2, 3)]), None),
                mux_event("b", 3, &host_cursor(&[("a", E1, 5), ("b", E2, 3)]), None),
                mux_event("b", 4, &host_cursor(&[("a", E1, 5), ("b", E2, 4)]), None),
                mux_event(
                    "c",
                    1,
                    &host_cursor(&[("a", E1, 5), ("b", E2, 4), ("c", E1, 1)]),
                    None,
                ),
                mux_event(
                    "a",
                    6,
                    &host_cursor(&[("a", E1, 6), ("b", E2, 4), ("c", E1, 1)]),
                    None,
                ),
            ],
        );
        assert_eq!(seen, [4, 1, 6]);
        assert_eq!(r.resume_from().unwrap().get("c"), Some(Cursor::new(E1, 1)));
    }
}
