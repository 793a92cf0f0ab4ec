//! The stream protocol without a network: a [`Session`] driven against in-memory logs
//! (the way quinn tests its state machine), checking every frame it would send.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde_json::Value;
use yoi_eventlog::ReplayPage;
use yoi_protocol::{
    Cursor, Envelope, ErrorCode, Event, HostCursor, Usage, WorkerInfo, WorkerSnapshot, WorkerStatus,
};

use super::*;
use crate::stream::cache::FrameCache;
use crate::stream::source::ReplayOutcome;
use crate::stream::view::{AllVisible, Observed, Visibility};

/// One runtime's log in memory, answering like the event log does.
struct FakeLog {
    id: &'static str,
    epoch: u64,
    /// Cursors below this have expired.
    horizon: u64,
    events: Vec<Arc<Envelope>>,
    frames: Arc<FrameCache>,
}

fn envelope(seq: u64, worker: Option<&str>) -> Arc<Envelope> {
    Arc::new(Envelope {
        seq,
        worker_id: worker.map(str::to_string),
        at_ms: seq * 10,
        event: Event::TextDelta {
            run_id: "r_1".into(),
            text: format!("t{seq}"),
        },
    })
}

fn info(id: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        name: id.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: 8,
        status: WorkerStatus::Idle,
        created_at_ms: 0,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Usage::default(),
        context_tokens: None,
        request_id: None,
    }
}

impl FakeLog {
    /// `n` events alternating between workers `w_1` and `w_2`.
    fn new(id: &'static str, epoch: u64, n: u64) -> Self {
        let events = (1..=n)
            .map(|seq| envelope(seq, Some(if seq % 2 == 1 { "w_1" } else { "w_2" })))
            .collect();
        FakeLog {
            id,
            epoch,
            horizon: 0,
            events,
            frames: Arc::default(),
        }
    }

    fn last(&self) -> u64 {
        self.events.last().map_or(0, |e| e.seq)
    }

    fn feed(&self) -> Feed {
        Feed {
            runtime_id: self.id.into(),
            epoch: self.epoch,
            frames: self.frames.clone(),
        }
    }

    fn cursor(&self, seq: u64) -> Cursor {
        Cursor::new(self.epoch, seq)
    }

    fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayOutcome> {
        if after.epoch != self.epoch {
            return Err(ReplayOutcome::Unknown("another log".into()));
        }
        if after.seq > self.last() {
            return Err(ReplayOutcome::Ahead("ahead".into()));
        }
        if after.seq < self.horizon {
            return Err(ReplayOutcome::Expired("expired".into()));
        }
        let mut events: Vec<Arc<Envelope>> = self
            .events
            .iter()
            .filter(|e| e.seq > after.seq)
            .filter(|e| worker.is_none_or(|w| e.worker_id.as_deref() == Some(w)))
            .take(limit + 1)
            .cloned()
            .collect();
        let more = events.len() > limit;
        events.truncate(limit);
        let next = if more {
            events.last().map_or(after.seq, |e| e.seq)
        } else {
            self.last()
        };
        Ok(ReplayPage {
            events,
            next: self.cursor(next),
            more,
        })
    }

    fn snapshot(&self, worker: &str) -> WorkerSnapshot {
        WorkerSnapshot {
            worker: info(worker),
            transcript: vec![],
            in_flight: None,
        }
    }
}

const CONFIG: SessionConfig = SessionConfig {
    replay_page: 2,
    replay_page_bytes: 1 << 20,
    ping_interval: Duration::from_secs(10),
};

fn session<V: Visibility>(
    scope: Scope,
    logs: &[&FakeLog],
    cursor: Option<StartCursor>,
    view: V,
    now: Instant,
) -> Session<V> {
    let feeds = logs.iter().map(|l| l.feed()).collect();
    Session::new(scope, feeds, cursor, view, CONFIG, now)
}

/// Answers every request from `logs` until the session wants nothing more; returns the
/// requests it made.
fn handshake<V: Visibility>(s: &mut Session<V>, logs: &[&FakeLog]) -> Vec<Request> {
    let mut asked = Vec::new();
    while let Some(request) = s.poll_request() {
        asked.push(request.clone());
        let answer = match request {
            Request::Replay {
                feed,
                after,
                worker,
                limit,
            } => Answer::Replay(logs[feed].replay(after, worker.as_deref(), limit)),
            Request::Snapshot { worker } => Answer::Snapshot(Ok((
                Box::new(logs[0].snapshot(&worker)),
                logs[0].cursor(logs[0].last()),
            ))),
            Request::SnapshotAll { feed } => {
                let log = logs[feed];
                Answer::SnapshotAll(Ok((
                    vec![log.snapshot("w_1"), log.snapshot("w_2")],
                    log.cursor(log.last()),
                )))
            }
        };
        s.handle_answer(answer);
    }
    asked
}

/// What the session queued: frames as JSON, pings as `"ping"`, the close as
/// `{"close": code}`.
fn sent<V: Visibility>(s: &mut Session<V>) -> Vec<Value> {
    let mut out = Vec::new();
    while let Some(t) = s.poll_transmit() {
        match t {
            Transmit::Frame(text) => out.push(serde_json::from_str(text.as_str()).unwrap()),
            Transmit::Ping => out.push(Value::from("ping")),
            Transmit::Close { frame, code } => {
                if let Some(text) = frame {
                    out.push(serde_json::from_str(text.as_str()).unwrap());
                }
                out.push(serde_json::json!({ "close": code }));
            }
        }
    }
    out
}

fn kinds(frames: &[Value]) -> Vec<String> {
    frames
        .iter()
        .map(|f| match f {
            Value::String(s) => s.clone(),
            f if f.get("close").is_some() => format!("close {}", f["close"]),
            f => f["type"].as_str().unwrap().to_string(),
        })
        .collect()
}

fn event_seqs(frames: &[Value]) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "event")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn without_a_cursor_a_worker_stream_sends_a_snapshot_then_only_newer_live_events() {
    let mut log = FakeLog::new("local", 7, 4);
    let now = Instant::now();
    let mut s = session(Scope::Worker("w_1".into()), &[&log], None, AllVisible, now);
    assert!(!s.is_live(), "the snapshot comes first");
    let asked = handshake(&mut s, &[&log]);
    assert_eq!(
        asked,
        vec![Request::Snapshot {
            worker: "w_1".into()
        }]
    );
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["snapshot"]);
    assert_eq!(frames[0]["cursor"], log.cursor(4).encode());
    assert!(s.is_live());

    // Live: what the snapshot covers is dropped, other workers' events are not sent but
    // move the cursor.
    for seq in 3..=7 {
        let env = envelope(seq, Some(if seq % 2 == 1 { "w_1" } else { "w_2" }));
        log.events.push(env.clone());
        s.handle_live(0, Live::Event(env));
    }
    let frames = sent(&mut s);
    assert_eq!(event_seqs(&frames), [5, 7]);
    assert_eq!(frames[1]["cursor"], log.cursor(7).encode());
    s.handle_live(0, Live::Event(envelope(8, Some("w_2"))));
    assert!(sent(&mut s).is_empty());
    assert_eq!(s.cursor(), log.cursor(8).encode());
}

#[test]
fn a_cursor_replays_in_pages_then_live_without_gap_or_duplicate() {
    let mut log = FakeLog::new("local", 7, 5);
    let mut s = session(
        Scope::Runtime,
        &[&log],
        Some(StartCursor::Runtime(log.cursor(1))),
        AllVisible,
        Instant::now(),
    );
    let asked = handshake(&mut s, &[&log]);
    let afters: Vec<u64> = asked
        .iter()
        .map(|r| match r {
            Request::Replay { after, limit, .. } => {
                assert_eq!(*limit, 2);
                after.seq
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(afters, [1, 3], "pages of two from the cursor");
    let frames = sent(&mut s);
    assert_eq!(event_seqs(&frames), [2, 3, 4, 5]);
    // Every frame carries the cursor that resumes right after it.
    for f in &frames {
        let seq = f["seq"].as_u64().unwrap();
        assert_eq!(f["cursor"], log.cursor(seq).encode());
    }
    // Live envelopes the replay covered come again (subscribed before replaying): dropped.
    for seq in 4..=7 {
        let env = envelope(seq, None);
        if seq > 5 {
            log.events.push(env.clone());
        }
        s.handle_live(0, Live::Event(env));
    }
    let frames = sent(&mut s);
    assert_eq!(event_seqs(&frames), [6, 7]);
    assert_eq!(
        frames[0]["worker_id"],
        Value::Null,
        "runtime-wide events too"
    );
}

#[test]
fn a_filtered_replay_moves_the_cursor_past_other_workers_events() {
    let log = FakeLog::new("local", 7, 6);
    let mut s = session(
        Scope::Worker("w_1".into()),
        &[&log],
        Some(StartCursor::Runtime(log.cursor(0))),
        AllVisible,
        Instant::now(),
    );
    handshake(&mut s, &[&log]);
    assert_eq!(event_seqs(&sent(&mut s)), [1, 3, 5]);
    assert_eq!(
        s.cursor(),
        log.cursor(6).encode(),
        "w_2's event 6 is behind it too"
    );
}

#[test]
fn cursor_outcomes_on_a_runtime_cursor() {
    let mut log = FakeLog::new("local", 7, 4);
    log.horizon = 3;
    let cases = [
        (Cursor::new(99, 1), Some(ErrorCode::CursorUnknown)),
        (log.cursor(1), Some(ErrorCode::CursorExpired)),
        (log.cursor(9), None),
    ];
    for (cursor, diagnostic) in cases {
        let scope = Scope::Worker("w_1".into());
        let start = Some(StartCursor::Runtime(cursor));
        let mut s = session(scope, &[&log], start, AllVisible, Instant::now());
        handshake(&mut s, &[&log]);
        let frames = sent(&mut s);
        match diagnostic {
            Some(code) => {
                assert_eq!(kinds(&frames), ["diagnostic", "snapshot"], "{cursor:?}");
                assert_eq!(frames[0]["code"], code.as_str());
                assert!(s.is_live(), "the stream goes on");
            }
            None => {
                assert_eq!(kinds(&frames), ["error", "close 1000"]);
                assert_eq!(frames[0]["code"], "cursor_ahead");
                assert_eq!(s.ending(), Some(Ending::Error(ErrorCode::CursorAhead)));
            }
        }
    }
}

#[test]
fn a_cursor_of_the_wrong_kind_is_malformed() {
    assert!(StartCursor::parse(&Scope::Host, &Cursor::new(1, 2).encode()).is_err());
    assert!(StartCursor::parse(&Scope::Runtime, "h1~local.c1").is_err());
    let log = FakeLog::new("local", 7, 1);
    let start = Some(StartCursor::Runtime(log.cursor(0)));
    let mut s = session(Scope::Host, &[&log], start, AllVisible, Instant::now());
    assert_eq!(kinds(&sent(&mut s)), ["error", "close 1000"]);
    assert_eq!(s.ending(), Some(Ending::Error(ErrorCode::CursorMalformed)));
}

fn host_cursor(parts: &[(&str, Cursor)]) -> StartCursor {
    let mut c = HostCursor::new();
    for (id, cursor) in parts {
        c.set(id, *cursor);
    }
    StartCursor::Host(c)
}

#[test]
fn a_host_cursor_replays_each_runtime_and_carries_unknown_parts() {
    let a = FakeLog::new("a", 1, 3);
    let b = FakeLog::new("b", 2, 2);
    let gone = Cursor::new(5, 50);
    // `b` is not named: it is replayed from its beginning.
    let start = host_cursor(&[("a", a.cursor(1)), ("gone", gone)]);
    let mut s = session(
        Scope::Host,
        &[&a, &b],
        Some(start),
        AllVisible,
        Instant::now(),
    );
    let asked = handshake(&mut s, &[&a, &b]);
    let probes = asked
        .iter()
        .filter(|r| matches!(r, Request::Replay { limit: 0, .. }))
        .count();
    assert_eq!(
        probes, 2,
        "every part is checked before anything is replayed"
    );
    let frames = sent(&mut s);
    let per = |id: &str| -> Vec<u64> {
        frames
            .iter()
            .filter(|f| f["runtime_id"] == id)
            .map(|f| f["seq"].as_u64().unwrap())
            .collect()
    };
    assert_eq!((per("a"), per("b")), (vec![2, 3], vec![1, 2]));
    let last = HostCursor::decode(frames.last().unwrap()["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(last.get("a"), Some(a.cursor(3)));
    assert_eq!(last.get("b"), Some(b.cursor(2)));
    assert_eq!(last.get("gone"), Some(gone), "carried along unchanged");
}

#[test]
fn a_bad_part_of_a_host_cursor_is_reported_before_anything_is_replayed() {
    let mut a = FakeLog::new("a", 1, 3);
    let b = FakeLog::new("b", 2, 2);
    a.horizon = 2;
    // `a` expired: diagnostic, then one fresh snapshot of everything.
    let start = host_cursor(&[("a", a.cursor(1)), ("b", b.cursor(0))]);
    let mut s = session(
        Scope::Host,
        &[&a, &b],
        Some(start),
        AllVisible,
        Instant::now(),
    );
    handshake(&mut s, &[&a, &b]);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["diagnostic", "snapshot_all"]);
    assert_eq!(frames[0]["code"], "cursor_expired");
    assert!(frames[0]["message"].as_str().unwrap().contains("runtime a"));
    assert_eq!(frames[1]["workers"].as_array().unwrap().len(), 4);

    // `b` ahead: an error, and nothing of `a` was sent first.
    let start = host_cursor(&[("a", a.cursor(2)), ("b", b.cursor(9))]);
    let mut s = session(
        Scope::Host,
        &[&a, &b],
        Some(start),
        AllVisible,
        Instant::now(),
    );
    handshake(&mut s, &[&a, &b]);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1000"]);
    assert_eq!(frames[0]["code"], "cursor_ahead");
}

#[test]
fn a_client_behind_the_live_buffer_is_lagged_with_the_last_cursor_taken() {
    let log = FakeLog::new("local", 7, 2);
    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, Instant::now());
    handshake(&mut s, &[&log]);
    sent(&mut s);
    s.handle_live(0, Live::Event(envelope(3, None)));
    // Dropped envelopes the stream had not taken yet: lagged, after what it took.
    s.handle_live(0, Live::Skipped);
    s.handle_live(0, Live::Event(envelope(6, None)));
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["event", "lagged", "close 1013"]);
    assert_eq!(frames[1]["cursor"], log.cursor(3).encode());
    assert_eq!(s.ending(), Some(Ending::Lagged));
    // Nothing more after the close.
    s.handle_live(0, Live::Event(envelope(7, None)));
    assert!(sent(&mut s).is_empty());
}

#[test]
fn dropped_envelopes_a_replay_covered_are_not_a_lag() {
    let log = FakeLog::new("local", 7, 6);
    let start = Some(StartCursor::Runtime(log.cursor(0)));
    let mut s = session(Scope::Runtime, &[&log], start, AllVisible, Instant::now());
    handshake(&mut s, &[&log]);
    sent(&mut s);
    // The buffer overflowed during the replay; the next envelope follows what it covered.
    s.handle_live(0, Live::Skipped);
    s.handle_live(0, Live::Event(envelope(7, None)));
    assert_eq!(event_seqs(&sent(&mut s)), [7]);
    assert!(s.is_live());
}

#[test]
fn the_client_may_only_listen() {
    let log = FakeLog::new("local", 7, 1);
    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, Instant::now());
    handshake(&mut s, &[&log]);
    sent(&mut s);
    s.handle_client(FromClient::Control);
    assert!(sent(&mut s).is_empty());
    s.handle_client(FromClient::Data);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1000"]);
    assert_eq!(frames[0]["code"], "invalid_request");

    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, Instant::now());
    s.handle_client(FromClient::Gone);
    assert_eq!(kinds(&sent(&mut s)), ["close null"]);
    assert_eq!(s.poll_request(), None, "nothing more is asked for");
    assert_eq!(s.ending(), Some(Ending::Client));
}

#[test]
fn shutdown_replaces_what_is_queued_with_its_error() {
    let log = FakeLog::new("local", 7, 5);
    let start = Some(StartCursor::Runtime(log.cursor(0)));
    let mut s = session(Scope::Runtime, &[&log], start, AllVisible, Instant::now());
    let Some(Request::Replay { after, limit, .. }) = s.poll_request() else {
        panic!("a replay first")
    };
    s.handle_answer(Answer::Replay(log.replay(after, None, limit)));
    s.handle_shutdown();
    assert_eq!(s.poll_request(), None);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1001"]);
    assert_eq!(frames[0]["code"], "shutting_down");
    // An answer that arrives after the shutdown changes nothing.
    s.handle_answer(Answer::Replay(log.replay(after, None, limit)));
    assert!(sent(&mut s).is_empty());
}

#[test]
fn pings_go_out_while_live() {
    let log = FakeLog::new("local", 7, 1);
    let t0 = Instant::now();
    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, t0);
    assert_eq!(s.poll_timeout(), None, "no timer during the handshake");
    handshake(&mut s, &[&log]);
    sent(&mut s);
    let due = s.poll_timeout().expect("a timer while live");
    assert_eq!(due, t0 + CONFIG.ping_interval);
    s.handle_timeout(due - Duration::from_millis(1));
    assert!(sent(&mut s).is_empty());
    s.handle_timeout(due);
    assert_eq!(kinds(&sent(&mut s)), ["ping"]);
    assert_eq!(s.poll_timeout(), Some(due + CONFIG.ping_interval));
}

#[test]
fn a_source_that_stops_ends_the_stream() {
    let log = FakeLog::new("local", 7, 1);
    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, Instant::now());
    handshake(&mut s, &[&log]);
    sent(&mut s);
    s.handle_live(0, Live::Closed);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1001"]);
    assert_eq!(frames[0]["code"], "shutting_down");
}

/// Sees only `w_1`, and redacts its text.
struct OnlyW1;

impl Visibility for OnlyW1 {
    fn event(&self, _: &str, _: u64, env: &Envelope, _: &FrameCache) -> Observed {
        match env.worker_id.as_deref() {
            Some("w_1") => Observed::Redact(
                serde_json::to_string(&Event::TextDelta {
                    run_id: "r_1".into(),
                    text: "[redacted]".into(),
                })
                .unwrap()
                .into(),
            ),
            _ => Observed::Deny,
        }
    }

    fn snapshot(&self, _: &str, s: WorkerSnapshot) -> Option<WorkerSnapshot> {
        (s.worker.id == "w_1").then_some(s)
    }
}

#[test]
fn the_view_decides_what_the_client_sees() {
    let log = FakeLog::new("local", 7, 4);
    let mut s = session(Scope::Runtime, &[&log], None, OnlyW1, Instant::now());
    handshake(&mut s, &[&log]);
    let frames = sent(&mut s);
    let workers = frames[0]["workers"].as_array().unwrap();
    assert_eq!(workers.len(), 1, "w_2 is hidden");
    for seq in 5..=6 {
        s.handle_live(
            0,
            Live::Event(envelope(seq, Some(if seq == 5 { "w_1" } else { "w_2" }))),
        );
    }
    let frames = sent(&mut s);
    assert_eq!(event_seqs(&frames), [5]);
    assert_eq!(frames[0]["event"]["text"], "[redacted]");
    assert_eq!(
        s.cursor(),
        log.cursor(6).encode(),
        "denied events still move the cursor"
    );

    let mut s = session(
        Scope::Worker("w_2".into()),
        &[&log],
        None,
        OnlyW1,
        Instant::now(),
    );
    handshake(&mut s, &[&log]);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1000"]);
    assert_eq!(frames[0]["code"], "worker_not_found");
}

#[test]
fn a_failed_snapshot_ends_the_stream_with_its_error() {
    let log = FakeLog::new("local", 7, 1);
    let mut s = session(
        Scope::Worker("w_9".into()),
        &[&log],
        None,
        AllVisible,
        Instant::now(),
    );
    assert!(matches!(s.poll_request(), Some(Request::Snapshot { .. })));
    s.handle_answer(Answer::Snapshot(Err(
        crate::error::ServeError::worker_not_found("w_9"),
    )));
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1000"]);
    assert_eq!(frames[0]["code"], "worker_not_found");
}

#[test]
fn an_outage_is_one_diagnostic_and_the_stream_goes_on_without_gap_or_duplicate() {
    let log = FakeLog::new("remote", 7, 2);
    let now = Instant::now();
    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, now);
    handshake(&mut s, &[&log]);
    assert_eq!(kinds(&sent(&mut s)), ["snapshot_all"]);
    s.handle_live(0, Live::Event(envelope(3, Some("w_1"))));
    let down = || Availability::Unavailable("unreachable".into());
    s.handle_availability(0, down(), 7);
    s.handle_availability(0, down(), 7);
    let frames = sent(&mut s);
    assert_eq!(
        kinds(&frames),
        ["event", "diagnostic"],
        "told once per outage"
    );
    assert_eq!(frames[1]["code"], "runtime_unavailable");
    assert!(!s.is_closed());
    // Back: the resumed upstream repeats what it had sent; only newer events go out.
    s.handle_availability(0, Availability::Ready, 7);
    for seq in [3, 4, 5] {
        s.handle_live(0, Live::Event(envelope(seq, Some("w_2"))));
    }
    assert_eq!(event_seqs(&sent(&mut s)), [4, 5]);
    s.handle_availability(0, down(), 7);
    assert_eq!(
        kinds(&sent(&mut s)),
        ["diagnostic"],
        "a second outage is told again"
    );
}

fn unreachable(id: &str) -> crate::error::ServeError {
    crate::error::ServeError::new(
        ErrorCode::RuntimeUnavailable,
        format!("runtime {id} is not connected yet; try again later"),
    )
}

/// Like [`handshake`], but the feeds in `down` cannot be reached.
fn handshake_down<V: Visibility>(s: &mut Session<V>, logs: &[&FakeLog], down: &[usize]) {
    while let Some(request) = s.poll_request() {
        let feed = match &request {
            Request::Replay { feed, .. } | Request::SnapshotAll { feed } => *feed,
            Request::Snapshot { .. } => 0,
        };
        if !down.contains(&feed) {
            let answer = match request {
                Request::Replay {
                    feed,
                    after,
                    worker,
                    limit,
                } => Answer::Replay(logs[feed].replay(after, worker.as_deref(), limit)),
                Request::SnapshotAll { feed } => {
                    let log = logs[feed];
                    Answer::SnapshotAll(Ok((vec![log.snapshot("w_1")], log.cursor(log.last()))))
                }
                Request::Snapshot { .. } => unreachable!("no worker streams here"),
            };
            s.handle_answer(answer);
            continue;
        }
        let id = logs[feed].id;
        s.handle_answer(match request {
            Request::Replay { .. } => Answer::Replay(Err(ReplayOutcome::Failed(unreachable(id)))),
            Request::SnapshotAll { .. } => Answer::SnapshotAll(Err(unreachable(id))),
            Request::Snapshot { .. } => Answer::Snapshot(Err(unreachable(id))),
        });
    }
}

fn seqs_of(frames: &[Value], runtime: &str) -> Vec<u64> {
    frames
        .iter()
        .filter(|f| f["type"] == "event" && f["runtime_id"] == runtime)
        .map(|f| f["seq"].as_u64().unwrap())
        .collect()
}

#[test]
fn a_multiplexed_stream_starts_without_an_unreachable_runtime_and_replays_it_once_back() {
    let a = FakeLog::new("a", 1, 3);
    let mut b = FakeLog::new("b", 2, 0);
    // `b` was never reached: the stream knows no epoch for it yet.
    b.epoch = 0;
    let mut s = session(Scope::Host, &[&a, &b], None, AllVisible, Instant::now());
    b.epoch = 2;
    b.events = (1..=5).map(|seq| envelope(seq, Some("w_1"))).collect();
    handshake_down(&mut s, &[&a, &b], &[1]);
    assert!(s.is_live(), "opened without waiting for b");
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["diagnostic", "snapshot_all"]);
    assert_eq!(frames[0]["code"], "runtime_unavailable");
    assert!(frames[0]["message"].as_str().unwrap().contains("runtime b"));
    assert_eq!(frames[1]["workers"].as_array().unwrap().len(), 1, "a's");
    let cursor = HostCursor::decode(frames[1]["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(cursor.get("a"), Some(a.cursor(3)));
    assert_eq!(
        cursor.get("b"),
        None,
        "no position in b yet: from its beginning"
    );

    // Still down: b's live events are held back, a's go on; told once.
    s.handle_availability(1, Availability::Unavailable("down".into()), 0);
    s.handle_live(1, Live::Event(envelope(4, Some("w_1"))));
    s.handle_live(0, Live::Event(envelope(4, Some("w_2"))));
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["event"]);
    assert_eq!(seqs_of(&frames, "a"), [4]);

    // Back: b's history is replayed in pages, then its live events go on.
    s.handle_availability(1, Availability::Ready, 2);
    assert!(!s.is_live());
    assert!(matches!(
        s.poll_request(),
        Some(Request::Replay { feed: 1, after, limit: 2, .. }) if after == b.cursor(0)
    ));
    s.handle_answer(Answer::Replay(b.replay(b.cursor(0), None, 2)));
    handshake(&mut s, &[&a, &b]);
    assert!(s.is_live());
    for seq in [4, 5, 6] {
        s.handle_live(1, Live::Event(envelope(seq, Some("w_1"))));
    }
    let frames = sent(&mut s);
    assert_eq!(
        seqs_of(&frames, "b"),
        [1, 2, 3, 4, 5, 6],
        "no gap, no duplicate"
    );
    let last = HostCursor::decode(frames.last().unwrap()["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(
        (last.get("a"), last.get("b")),
        (Some(a.cursor(4)), Some(b.cursor(6)))
    );
}

#[test]
fn a_host_cursor_part_of_an_unreachable_runtime_is_resumed_once_back() {
    let a = FakeLog::new("a", 1, 4);
    let b = FakeLog::new("b", 2, 4);
    let start = host_cursor(&[("a", a.cursor(1)), ("b", b.cursor(2))]);
    let mut s = session(
        Scope::Host,
        &[&a, &b],
        Some(start),
        AllVisible,
        Instant::now(),
    );
    handshake_down(&mut s, &[&a, &b], &[1]);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames)[0], "diagnostic");
    assert_eq!(seqs_of(&frames, "a"), [2, 3, 4]);
    let last = HostCursor::decode(frames.last().unwrap()["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(last.get("b"), Some(b.cursor(2)), "the client's part, kept");

    // Back, but its replay fails once: retried at the next ping, not in a loop.
    s.handle_availability(1, Availability::Ready, 2);
    handshake_down(&mut s, &[&a, &b], &[1]);
    assert!(s.is_live());
    assert!(s.poll_request().is_none());
    let later = Instant::now() + Duration::from_secs(11);
    s.handle_timeout(later);
    handshake(&mut s, &[&a, &b]);
    let frames = sent(&mut s);
    assert_eq!(seqs_of(&frames, "b"), [3, 4]);
}

#[test]
fn a_worker_or_runtime_stream_of_an_unreachable_runtime_ends_with_the_error() {
    let log = FakeLog::new("remote", 7, 1);
    let mut s = session(Scope::Runtime, &[&log], None, AllVisible, Instant::now());
    handshake_down(&mut s, &[&log], &[0]);
    let frames = sent(&mut s);
    assert_eq!(kinds(&frames), ["error", "close 1000"]);
    assert_eq!(frames[0]["code"], "runtime_unavailable");
}

#[test]
fn replay_pages_are_bounded_in_bytes_as_well_as_events() {
    let log = FakeLog::new("local", 7, 9);
    let config = SessionConfig {
        replay_page: 100,
        replay_page_bytes: 1,
        ..CONFIG
    };
    let mut s = Session::new(
        Scope::Runtime,
        vec![log.feed()],
        Some(StartCursor::Runtime(log.cursor(0))),
        AllVisible,
        config,
        Instant::now(),
    );
    let mut pages = 0;
    while let Some(request) = s.poll_request() {
        let Request::Replay { after, limit, .. } = request else {
            panic!("{request:?}")
        };
        pages += 1;
        s.handle_answer(Answer::Replay(log.replay(after, None, limit)));
        // Each page queued one frame: its budget is reached after the first.
        assert_eq!(sent(&mut s).len(), 1);
    }
    assert_eq!(pages, 9, "one event per page, none lost or repeated");
    s.handle_live(0, Live::Event(envelope(10, Some("w_1"))));
    assert_eq!(event_seqs(&sent(&mut s)), [10]);
}
