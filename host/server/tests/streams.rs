//! WebSocket streams over real sockets: the handshake, delivery, filtering, resume, every
//! cursor outcome, lagged consumers, pings, observation-only, shutdown.

mod common;

use std::collections::BTreeSet;
use std::time::Duration;

use common::*;
use serde_json::{Value, json};
use yoi_protocol::Cursor;

#[tokio::test(flavor = "multi_thread")]
async fn worker_stream_snapshot_then_live_delivery() {
    let h = start().await;
    let w = h.create_worker("demo").await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot", "{snap}");
    assert_eq!(snap["runtime_id"], "local");
    assert_eq!(snap["worker"]["id"], w.as_str());
    assert_eq!(snap["worker"]["status"], "idle");
    assert_eq!(snap["transcript"], json!([]));
    let snap_cursor = Cursor::decode(&cursor_of(&snap)).unwrap();

    let run = h.input(&w, "hello there").await;
    let frames = ws.events_until(|f| back_to_idle(f, &w)).await;
    // Contiguous: this worker is the only thing happening in the runtime.
    let s = seqs(&frames);
    assert_eq!(s[0], snap_cursor.seq + 1);
    assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "{s:?}");
    for f in &frames {
        assert_eq!(f["worker_id"], w.as_str());
        assert_eq!(f["runtime_id"], "local");
        let c = Cursor::decode(&cursor_of(f)).unwrap();
        assert_eq!(
            c,
            Cursor::new(snap_cursor.epoch, f["seq"].as_u64().unwrap())
        );
    }
    let kinds: Vec<&str> = frames
        .iter()
        .map(|f| f["event"]["type"].as_str().unwrap())
        .collect();
    assert_eq!(kinds[0], "input_accepted");
    assert_eq!(frames[0]["event"]["run_id"], run.as_str());
    assert!(kinds.contains(&"run_completed"), "{kinds:?}");
    let deltas: String = frames
        .iter()
        .filter(|f| f["event"]["type"] == "text_delta")
        .map(|f| f["event"]["text"].as_str().unwrap())
        .collect();
    let done = frames
        .iter()
        .find(|f| f["event"]["type"] == "text_done")
        .expect("text_done");
    assert_eq!(deltas, done["event"]["text"].as_str().unwrap());
    assert!(deltas.contains("hello there"), "{deltas}");
}

/// What a Rust client (`yoi-tui`) does: every frame of both kinds of stream parses as the
/// protocol's typed `Frame`, with the stream's cursor type.
#[tokio::test(flavor = "multi_thread")]
async fn frames_parse_as_the_protocol_types() {
    use yoi_protocol::{Frame, HostCursor};
    let h = start().await;
    let w = h.create_worker("typed").await;
    let mut one = h.ws(&h.worker_stream(&w, None)).await;
    let mut all = h.ws(&h.all_stream(None)).await;
    // The snapshots first: a stream subscribes when its task starts, so input sent
    // before that would be in the snapshot, not on the stream.
    let mut one_frames = vec![one.frame().await];
    let mut all_frames = vec![all.frame().await];
    h.input(&w, "hello").await;
    one_frames.extend(one.events_until(|f| back_to_idle(f, &w)).await);
    all_frames.extend(all.events_until(|f| back_to_idle(f, &w)).await);
    for v in one_frames {
        let frame: Frame = serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        assert!(
            matches!(frame, Frame::Snapshot { .. } | Frame::Event { .. }),
            "{v}"
        );
    }
    for v in all_frames {
        let frame: Frame<HostCursor> =
            serde_json::from_value(v.clone()).unwrap_or_else(|e| panic!("{e}: {v}"));
        match frame {
            Frame::SnapshotAll { cursor, .. } | Frame::Event { cursor, .. } => {
                assert!(cursor.get("local").is_some(), "{v}")
            }
            other => panic!("unexpected {other:?}"),
        }
    }
    // Error frames carry no cursor and parse as either.
    let mut bad = h.ws(&h.all_stream(Some("nonsense"))).await;
    let v = bad.frame().await;
    let frame: Frame<HostCursor> = serde_json::from_value(v.clone()).unwrap();
    assert!(matches!(frame, Frame::Error { .. }), "{v}");
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_stream_sees_only_its_worker() {
    let h = start().await;
    let a = h.create_worker("a").await;
    let b = h.create_worker("b").await;
    let mut wa = h.ws(&h.worker_stream(&a, None)).await;
    let mut all = h.ws(&h.all_stream(None)).await;
    assert_eq!(wa.frame().await["type"], "snapshot");
    let snap = all.frame().await;
    assert_eq!(snap["type"], "snapshot_all");
    assert_eq!(snap["workers"].as_array().unwrap().len(), 2);

    h.input(&b, "for b").await;
    h.wait_idle(&b, 1).await;
    h.input(&a, "for a").await;
    let seen = wa.events_until(|f| back_to_idle(f, &a)).await;
    assert!(seen.iter().all(|f| f["worker_id"] == a.as_str()));
    assert_eq!(seen[0]["event"]["type"], "input_accepted");
    assert_eq!(seen[0]["event"]["text"], "for a");

    // The multiplexed stream saw both runs, in log order, without gaps.
    let mux = all.events_until(|f| back_to_idle(f, &a)).await;
    let workers: BTreeSet<&str> = mux
        .iter()
        .map(|f| f["worker_id"].as_str().unwrap())
        .collect();
    assert_eq!(workers, BTreeSet::from([a.as_str(), b.as_str()]));
    let s = seqs(&mux);
    assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "{s:?}");
}

/// Reads a whole run once from `cursor`, as the reference for resume tests.
async fn reference(h: &TestHost, path: String, until: impl FnMut(&Value) -> bool) -> Vec<u64> {
    let mut ws = h.ws(&path).await;
    seqs(&ws.events_until(until).await)
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_stream_resumes_after_disconnect_without_gap_or_duplicate() {
    let h = start_with(|c| local_settings(c).scripted.token_delay_ms = 1).await;
    let w = h.create_worker("w").await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    let start_cursor = cursor_of(&ws.frame().await);
    h.input(&w, "stream 200").await;
    let mut first = Vec::new();
    for _ in 0..40 {
        let f = ws.frame().await;
        first.push(f);
    }
    let resume = cursor_of(first.last().unwrap());
    drop(ws);

    let mut ws = h.ws(&h.worker_stream(&w, Some(&resume))).await;
    let second = ws.events_until(|f| back_to_idle(f, &w)).await;
    let mut got = seqs(&first);
    got.extend(seqs(&second));

    let want = reference(&h, h.worker_stream(&w, Some(&start_cursor)), |f| {
        back_to_idle(f, &w)
    })
    .await;
    assert_eq!(got, want, "resumed stream = one uninterrupted replay");
    let text_deltas = first
        .iter()
        .chain(&second)
        .filter(|f| f["event"]["type"] == "text_delta")
        .count();
    assert_eq!(text_deltas, 200);
}

#[tokio::test(flavor = "multi_thread")]
async fn connecting_mid_run_gives_a_consistent_snapshot_then_the_rest() {
    // A delta every millisecond: events are published while each stream subscribes and
    // snapshots (the case the handshake's `seq >` rule exists for), and the run (3 s or
    // more) is still going when the last stream has connected, even on a loaded machine.
    // The streams are read one after the other: the default live buffer (16,384 events)
    // holds the whole run for the ones not read yet.
    let h = start_with(|c| {
        local_settings(c).scripted.token_delay_ms = 1;
    })
    .await;
    let w = h.create_worker("w").await;
    h.input(&w, "stream 3000").await;
    // Wait until the run is producing, then connect without a cursor.
    tokio::time::timeout(PATIENCE, async {
        while h.local().events().last_cursor().seq < 20 {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await
    .unwrap();
    // Both connect while the run streams; each is then read to the end of the run.
    let mut streams = Vec::new();
    for _ in 0..3 {
        streams.push(h.ws(&h.all_stream(None)).await);
        streams.push(h.ws(&h.worker_stream(&w, None)).await);
    }
    assert_eq!(h.worker(&w).await["status"], "running", "connected mid-run");
    for mut ws in streams {
        let snap = ws.frame().await;
        assert!(snap["type"] == "snapshot" || snap["type"] == "snapshot_all");
        let rest = ws.events_until(|f| back_to_idle(f, &w)).await;
        let s = seqs(&rest);
        let snap_seq = if snap["type"] == "snapshot" {
            Cursor::decode(&cursor_of(&snap)).unwrap().seq
        } else {
            let hc = yoi_protocol::HostCursor::decode(&cursor_of(&snap)).unwrap();
            hc.get("local").unwrap().seq
        };
        assert!(
            s.iter().all(|&q| q > snap_seq),
            "no event the snapshot covers"
        );
        if snap["type"] == "snapshot_all" {
            assert_eq!(s[0], snap_seq + 1, "nothing after the snapshot is missed");
            assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "{s:?}");
        }
        // The snapshot's partial text plus the deltas after it is the whole answer.
        let text_done = rest
            .iter()
            .find(|f| f["event"]["type"] == "text_done")
            .map(|f| f["event"]["text"].as_str().unwrap().to_string());
        if let Some(done) = text_done {
            let partial = if snap["type"] == "snapshot" {
                snap["in_flight"]["text"].as_str().unwrap_or("").to_string()
            } else {
                snap["workers"][0]["in_flight"]["text"]
                    .as_str()
                    .unwrap_or("")
                    .to_string()
            };
            let after: String = rest
                .iter()
                .filter(|f| f["event"]["type"] == "text_delta")
                .map(|f| f["event"]["text"].as_str().unwrap())
                .collect();
            assert_eq!(format!("{partial}{after}"), done);
        }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn multiplexed_stream_resumes_with_its_host_cursor() {
    let h = start().await;
    let a = h.create_worker("a").await;
    let mut ws = h.ws(&h.all_stream(None)).await;
    let snap = ws.frame().await;
    let start_cursor = cursor_of(&snap);
    assert!(start_cursor.starts_with("h1~local.c1"), "{start_cursor}");
    h.input(&a, "one").await;
    let first = ws.events_until(|f| back_to_idle(f, &a)).await;
    let resume = cursor_of(first.last().unwrap());
    drop(ws);
    let b = h.create_worker("b").await;
    h.input(&b, "two").await;
    h.wait_idle(&b, 1).await;

    let mut ws = h.ws(&h.all_stream(Some(&resume))).await;
    let second = ws.events_until(|f| back_to_idle(f, &b)).await;
    assert_eq!(second[0]["event"]["type"], "worker_created");
    let mut got = seqs(&first);
    got.extend(seqs(&second));
    let want = reference(&h, h.all_stream(Some(&start_cursor)), |f| {
        back_to_idle(f, &b)
    })
    .await;
    assert_eq!(got, want);
    assert!(want.windows(2).all(|p| p[1] == p[0] + 1));
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_outcomes_on_the_worker_stream() {
    let h = start().await;
    let w = h.create_worker("w").await;
    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;
    let last = h.local().events().last_cursor();

    // Malformed: error frame, then close.
    for bad in ["garbage", "c1zz", "h1~local.c100"] {
        let mut ws = h.ws(&h.worker_stream(&w, Some(bad))).await;
        let f = ws.frame().await;
        assert_eq!(f["type"], "error", "{f}");
        assert_eq!(f["code"], "cursor_malformed");
        ws.expect_close().await;
    }

    // Ahead of the log: error frame, then close.
    let ahead = Cursor::new(last.epoch, last.seq + 1000).encode();
    let mut ws = h.ws(&h.worker_stream(&w, Some(&ahead))).await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("cursor_ahead"))
    );
    ws.expect_close().await;

    // From another store: diagnostic, fresh snapshot, and the stream goes on.
    let unknown = Cursor::new(last.epoch ^ 0x5555, 3).encode();
    let mut ws = h.ws(&h.worker_stream(&w, Some(&unknown))).await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("diagnostic"), Some("cursor_unknown"))
    );
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["worker"]["run_count"], 1);
    assert_eq!(Cursor::decode(&cursor_of(&snap)).unwrap(), last);
    h.input(&w, "again").await;
    let live = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(live[0]["seq"].as_u64().unwrap(), last.seq + 1);

    // At the end of the log: nothing replayed, live follows.
    let end = h.local().events().last_cursor().encode();
    let mut ws = h.ws(&h.worker_stream(&w, Some(&end))).await;
    h.input(&w, "third").await;
    let live = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(live[0]["event"]["type"], "input_accepted");
    assert_eq!(live[0]["event"]["text"], "third");

    // Unknown worker, unknown runtime: error frame, then close.
    let mut ws = h.ws(&h.worker_stream("w_404", None)).await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("worker_not_found"))
    );
    ws.expect_close().await;
    let mut ws = h.ws("/runtimes/nope/workers/w_1/events/ws").await;
    let f = ws.frame().await;
    assert_eq!(f["code"], "runtime_not_found");
    ws.expect_close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_outcomes_on_the_multiplexed_stream() {
    let h = start().await;
    let w = h.create_worker("w").await;
    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;
    let last = h.local().events().last_cursor();

    // A runtime cursor is not a host cursor.
    let mut ws = h.ws(&h.all_stream(Some(&last.encode()))).await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("cursor_malformed"))
    );
    ws.expect_close().await;

    let part = |c: Cursor| format!("h1~local.{}", c.encode());
    let mut ws = h
        .ws(&h.all_stream(Some(&part(Cursor::new(last.epoch, last.seq + 5)))))
        .await;
    let f = ws.frame().await;
    assert_eq!(f["code"], "cursor_ahead", "{f}");
    ws.expect_close().await;

    let mut ws = h
        .ws(&h.all_stream(Some(&part(Cursor::new(last.epoch ^ 1, 1)))))
        .await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("diagnostic"), Some("cursor_unknown"))
    );
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot_all");
    assert_eq!(cursor_of(&snap), part(last));

    // Parts of runtimes this host does not serve are carried along; a runtime missing
    // from the cursor is replayed from its beginning.
    let mut ws = h
        .ws(&h.all_stream(Some(&format!("h1~gone.{}", Cursor::new(9, 9).encode()))))
        .await;
    let replayed = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(replayed[0]["seq"], 1);
    let c = cursor_of(replayed.last().unwrap());
    assert_eq!(
        c,
        format!(
            "h1~gone.{}~local.{}",
            Cursor::new(9, 9).encode(),
            last.encode()
        )
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn expired_cursor_gets_a_diagnostic_and_a_fresh_snapshot() {
    let h = start_with(|c| local_settings(c).log.retain_events = Some(5)).await;
    let w = h.create_worker("w").await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    let old = cursor_of(&ws.frame().await);
    drop(ws);
    h.input(&w, "stream 50").await;
    h.wait_idle(&w, 1).await;
    // Retention runs every few hundred actor batches; reads are batches too.
    let old_seq = Cursor::decode(&old).unwrap().seq;
    tokio::time::timeout(PATIENCE, async {
        while h.local().events().horizon() <= old_seq {
            h.worker(&w).await;
        }
    })
    .await
    .expect("retention moves the horizon");

    for path in [
        h.worker_stream(&w, Some(&old)),
        h.all_stream(Some(&format!("h1~local.{old}"))),
    ] {
        let mut ws = h.ws(&path).await;
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("diagnostic"), Some("cursor_expired")),
            "{f}"
        );
        let snap = ws.frame().await;
        assert!(
            snap["type"] == "snapshot" || snap["type"] == "snapshot_all",
            "{snap}"
        );
        let messages = if snap["type"] == "snapshot" {
            snap["transcript"].clone()
        } else {
            snap["workers"][0]["transcript"].clone()
        };
        assert_eq!(
            messages.as_array().unwrap().len(),
            2,
            "the transcript survives retention"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn slow_consumer_is_closed_as_lagged_then_resumes_without_loss() {
    const RUNS: u64 = 16;
    let h = start_with(|c| {
        local_settings(c).log.broadcast_capacity = 2.try_into().unwrap();
        c.streams.write_timeout_ms = 600_000.try_into().unwrap();
        allow_big_inputs(c);
    })
    .await;
    let w = h.create_worker("w").await;
    let mut ws = connect_small_buffer(&h, &h.all_stream(None)).await;
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot_all");
    let start = yoi_protocol::HostCursor::decode(&cursor_of(&snap))
        .unwrap()
        .get("local")
        .unwrap();

    // Produce far more than socket buffers hold while the client reads nothing.
    let big = "x".repeat(1 << 20);
    for run in 1..=RUNS {
        h.input(&w, &big).await;
        h.wait_idle(&w, run).await;
    }
    let last = h.local().events().last_cursor().seq;

    let (mut got, lagged) = read_until_lagged(&mut ws).await;
    assert!(
        (got.len() as u64) < last - start.seq,
        "the stream was cut short"
    );
    let resume = cursor_of(&lagged);
    let resume_seq = yoi_protocol::HostCursor::decode(&resume)
        .unwrap()
        .get("local")
        .unwrap()
        .seq;
    assert_eq!(
        resume_seq,
        *got.last().unwrap_or(&start.seq),
        "lagged carries the last delivered cursor"
    );

    let mut ws = h.ws(&h.all_stream(Some(&resume))).await;
    got.extend(read_events_to(&mut ws, last).await);
    let want: Vec<u64> = (start.seq + 1..=last).collect();
    assert_eq!(
        got, want,
        "every event exactly once across the two connections"
    );

    let metrics = h.metrics().await;
    assert_eq!(
        metric(&metrics, "yoi_stream_lagged_closes_total"),
        Some(1),
        "{metrics}"
    );
}

/// A worker stream replaying 16 runs of history (far larger than the socket buffers, so
/// the replay waits for this client, which reads nothing yet) in pages of `replay_page`
/// events, while 4 more runs publish more than the live buffer (16 events) holds.
/// Returns the host, the worker, the stream, and the seqs before and after all of it.
async fn overflow_the_live_buffer_during_a_replay(
    replay_page: usize,
) -> (TestHost, String, Ws, u64, u64) {
    let h = start_with(|c| {
        c.streams.write_timeout_ms = 600_000.try_into().unwrap();
        allow_big_inputs(c);
        local_settings(c).log.broadcast_capacity = 16.try_into().unwrap();
        c.streams.replay_page = replay_page.try_into().unwrap();
    })
    .await;
    let w = h.create_worker("w").await;
    let start = h.local().events().last_cursor();
    let big = "x".repeat(1 << 20);
    for run in 1..=16 {
        h.input(&w, &big).await;
        h.wait_idle(&w, run).await;
    }
    let ws = connect_small_buffer(&h, &h.worker_stream(&w, Some(&start.encode()))).await;
    for run in 17..=20 {
        h.input(&w, "hello").await;
        h.wait_idle(&w, run).await;
    }
    let last = h.local().events().last_cursor().seq;
    (h, w, ws, start.seq, last)
}

/// Falling further behind than the live buffer holds while replaying: the stream is
/// closed as lagged at the position it reached, and resuming from there delivers the rest
/// exactly once. (The history is one replay page, meant to be read before the new events
/// exist. On a loaded machine the stream may read it only after some of them, and then
/// the page covers what the live buffer dropped: the stream goes on without `lagged`,
/// and must still deliver every event exactly once. The session's unit tests pin the
/// lagged outcome itself without sockets.)
#[tokio::test(flavor = "multi_thread")]
async fn falling_behind_the_live_buffer_is_lagged_then_resumes_without_loss() {
    let (h, w, mut ws, start, last) = overflow_the_live_buffer_during_a_replay(100_000).await;
    let mut got = Vec::new();
    let lagged = loop {
        let f = ws.frame().await;
        match f["type"].as_str().unwrap() {
            "event" => {
                let seq = f["seq"].as_u64().unwrap();
                got.push(seq);
                if seq == last {
                    break None;
                }
            }
            "lagged" => break Some(f),
            other => panic!("unexpected {other} frame"),
        }
    };
    match lagged {
        Some(lagged) => {
            ws.expect_close().await;
            assert!((got.len() as u64) < last - start, "cut short");
            let resume = cursor_of(&lagged);
            assert_eq!(
                Cursor::decode(&resume).unwrap().seq,
                *got.last().unwrap(),
                "lagged carries the last delivered cursor"
            );
            let mut ws = h.ws(&h.worker_stream(&w, Some(&resume))).await;
            got.extend(read_events_to(&mut ws, last).await);
        }
        None => eprintln!("NOTE: the replay page was read after the new events; no lag"),
    }
    let want: Vec<u64> = (start + 1..=last).collect();
    assert_eq!(
        got, want,
        "every event exactly once across the two connections"
    );
}

/// The same overflow during a replay of several pages: the pages read after it cover the
/// events the live buffer dropped, so nothing is missing and the stream goes on live
/// without a `lagged` close.
#[tokio::test(flavor = "multi_thread")]
async fn a_replay_that_covers_what_the_live_buffer_dropped_goes_on_live() {
    let (h, w, mut ws, start, last) = overflow_the_live_buffer_during_a_replay(64).await;
    let mut got = read_events_to(&mut ws, last).await;
    // Live again: stopping the worker (fewer events than the live buffer holds) reaches
    // the same connection.
    let resp = h
        .post(&format!("/runtimes/local/workers/{w}/stop"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);
    let end = h.local().events().last_cursor().seq;
    assert!(end > last);
    got.extend(read_events_to(&mut ws, end).await);
    let want: Vec<u64> = (start + 1..=end).collect();
    assert_eq!(got, want, "every event exactly once, on one connection");
}

/// The client is heard during a replay too: a message sent while the history is still
/// being written ends the stream with `invalid_request` after the page in flight, not
/// after the whole history.
#[tokio::test(flavor = "multi_thread")]
async fn a_message_during_a_replay_ends_the_stream_before_the_history_is_done() {
    let (_h, _w, mut ws, start, last) = overflow_the_live_buffer_during_a_replay(64).await;
    ws.send_text("hello?").await;
    let mut events = 0u64;
    let error = loop {
        let f = ws.frame().await;
        match f["type"].as_str().unwrap() {
            "event" => events += 1,
            "error" => break f,
            other => panic!("unexpected {other} frame"),
        }
    };
    assert_eq!(error["code"], "invalid_request", "{error}");
    assert!(
        events < last - start,
        "ended within the replay ({events} of {} events)",
        last - start
    );
    ws.expect_close().await;
}

/// A client that accepts nothing for `streams.write_timeout_ms` is dropped, and the host
/// counts the stream as closed.
#[tokio::test(flavor = "multi_thread")]
async fn a_client_that_accepts_nothing_is_dropped() {
    let h = start_with(|c| {
        c.streams.write_timeout_ms = 200.try_into().unwrap();
        allow_big_inputs(c);
    })
    .await;
    let w = h.create_worker("w").await;
    let mut ws = connect_small_buffer(&h, &h.worker_stream(&w, None)).await;
    // The snapshot frame is read, then nothing: the socket buffers fill up.
    assert_eq!(ws.frame().await["type"], "snapshot");
    let big = "x".repeat(1 << 20);
    tokio::time::timeout(PATIENCE, async {
        let mut run = 0;
        while metric(&h.metrics().await, "yoi_streams_open") != Some(0) {
            run += 1;
            h.input(&w, &big).await;
            h.wait_idle(&w, run).await;
        }
    })
    .await
    .expect("the stream is dropped");
    // What the client still finds is what the kernel had buffered, then the end.
    while ws.frame_or_close().await.is_some() {}
}

#[tokio::test(flavor = "multi_thread")]
async fn pings_keep_idle_streams_alive() {
    let h = start_with(|c| c.streams.ping_interval_ms = 20.try_into().unwrap()).await;
    let mut ws = h.ws(&h.all_stream(None)).await;
    assert_eq!(ws.frame().await["type"], "snapshot_all");
    // Nothing happens in the runtime, so the next thing on the wire is a ping.
    match ws.next_raw().await {
        Got::Ping => {}
        other => panic!("expected a ping, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_observation_only() {
    let h = start().await;
    let w = h.create_worker("w").await;
    // A short message, and one larger than the stream's 4 KiB read buffer (read in
    // several reads): both get the typed answer.
    let long = format!(r#"{{"text":"{}"}}"#, "x".repeat(20_000));
    for message in [r#"{"text":"hello"}"#, long.as_str()] {
        let mut ws = h.ws(&h.worker_stream(&w, None)).await;
        assert_eq!(ws.frame().await["type"], "snapshot");
        ws.send_text(message).await;
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some("invalid_request"))
        );
        ws.expect_close().await;
    }
}

/// A binary message is data like a text one: on either kind of stream it gets the typed
/// `invalid_request` error frame and the stream closes (code 1000, as after any error
/// frame but `shutting_down`).
#[tokio::test(flavor = "multi_thread")]
async fn a_binary_message_gets_invalid_request_and_a_close_on_both_kinds_of_stream() {
    let h = start().await;
    let w = h.create_worker("w").await;
    for path in [h.worker_stream(&w, None), h.all_stream(None)] {
        for message in [vec![0u8, 159, 146, 150], vec![7u8; 20_000]] {
            let mut ws = h.ws(&path).await;
            assert!(
                ws.frame().await["type"]
                    .as_str()
                    .unwrap()
                    .starts_with("snapshot")
            );
            ws.send_binary(&message).await;
            let f = ws.frame().await;
            assert_eq!(
                (f["type"].as_str(), f["code"].as_str()),
                (Some("error"), Some("invalid_request")),
                "{path}: {f}"
            );
            assert_eq!(ws.expect_close().await, Some(1000), "{path}");
        }
    }
    // The stream that answered is the only one that ended.
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    assert_eq!(ws.frame().await["type"], "snapshot");
    h.input(&w, "still here").await;
    ws.events_until(|f| back_to_idle(f, &w)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_streams_with_a_frame() {
    let mut h = start().await;
    let w = h.create_worker("w").await;
    let mut a = h.ws(&h.worker_stream(&w, None)).await;
    let mut b = h.ws(&h.all_stream(None)).await;
    assert_eq!(a.frame().await["type"], "snapshot");
    assert_eq!(b.frame().await["type"], "snapshot_all");
    h.shutdown().await;
    for ws in [&mut a, &mut b] {
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some("shutting_down"))
        );
        assert_eq!(ws.expect_close().await, Some(1001));
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn multiplexed_stream_spans_runtimes_and_resumes_each() {
    let h = start_with(|c| {
        let mut second = c.runtimes[0].clone();
        second.id = yoi_host::config::RuntimeId::parse("second").unwrap();
        c.runtimes.push(second);
    })
    .await;
    let create = |runtime: &'static str| {
        let h = &h;
        async move {
            let resp = h
                .post(&format!("/runtimes/{runtime}/workers"))
                .json(&json!({"name": "w", "model": "scripted"}))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 201);
            let v: Value = resp.json().await.unwrap();
            v["worker"]["id"].as_str().unwrap().to_string()
        }
    };
    let input = |runtime: &'static str, worker: String, text: &'static str| {
        let h = &h;
        async move {
            let resp = h
                .post(&format!("/runtimes/{runtime}/workers/{worker}/input"))
                .json(&json!({ "text": text }))
                .send()
                .await
                .unwrap();
            assert_eq!(resp.status(), 202);
        }
    };
    let a = create("local").await;
    let b = create("second").await;
    // Both runtimes number their own events: the worker ids may even coincide.
    let listed: Value = h
        .get("/runtimes")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(listed["runtimes"].as_array().unwrap().len(), 2);

    let mut ws = h.ws(&h.all_stream(None)).await;
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot_all");
    assert_eq!(snap["workers"].as_array().unwrap().len(), 2);
    let start_cursor = cursor_of(&snap);
    let parts = yoi_protocol::HostCursor::decode(&start_cursor).unwrap();
    assert!(parts.get("local").is_some() && parts.get("second").is_some());

    input("local", a.clone(), "to local").await;
    let ended = |f: &Value, runtime: &str| {
        f["runtime_id"] == runtime
            && f["event"]["type"] == "status_changed"
            && f["event"]["to"] == "idle"
    };
    let first = ws.events_until(|f| ended(f, "local")).await;
    assert!(first.iter().all(|f| f["runtime_id"] == "local"));
    let resume = cursor_of(first.last().unwrap());
    drop(ws);
    input("second", b.clone(), "to second").await;
    input("local", a.clone(), "local again").await;

    // Resuming replays each runtime from its own part of the cursor.
    let mut ws = h.ws(&h.all_stream(Some(&resume))).await;
    let mut done = BTreeSet::new();
    let mut rest = Vec::new();
    while done.len() < 2 {
        let f = ws.frame().await;
        assert_eq!(f["type"], "event", "{f}");
        if ended(&f, "local") || ended(&f, "second") {
            done.insert(f["runtime_id"].as_str().unwrap().to_string());
        }
        rest.push(f);
    }
    let per_runtime = |frames: &[Value], runtime: &str| -> Vec<u64> {
        frames
            .iter()
            .filter(|f| f["runtime_id"] == runtime)
            .map(|f| f["seq"].as_u64().unwrap())
            .collect()
    };
    let local_all: Vec<u64> = per_runtime(&first, "local")
        .into_iter()
        .chain(per_runtime(&rest, "local"))
        .collect();
    let second_all = per_runtime(&rest, "second");
    let contiguous = |s: &[u64]| s.windows(2).all(|p| p[1] == p[0] + 1);
    assert!(contiguous(&local_all), "{local_all:?}");
    assert!(contiguous(&second_all), "{second_all:?}");
    assert_eq!(local_all[0], parts.get("local").unwrap().seq + 1);
    assert_eq!(second_all[0], parts.get("second").unwrap().seq + 1);
    let last = yoi_protocol::HostCursor::decode(&cursor_of(rest.last().unwrap())).unwrap();
    assert_eq!(last.get("local").unwrap().seq, *local_all.last().unwrap());
    assert_eq!(last.get("second").unwrap().seq, *second_all.last().unwrap());
}

/// Runtime-wide events (`worker_id: null`: here the core's residency diagnostics, with
/// one resident worker allowed) reach the multiplexed stream with the runtime's id, in
/// log order among the workers' events, and never a worker stream.
#[tokio::test(flavor = "multi_thread")]
async fn runtime_wide_events_reach_the_multiplexed_stream_and_no_worker_stream() {
    let h = start_with(|c| {
        local_settings(c).core.max_resident_workers = std::num::NonZeroU32::new(1).unwrap();
    })
    .await;
    let mut all = h.ws(&h.all_stream(None)).await;
    let snap = all.frame().await;
    assert_eq!(snap["type"], "snapshot_all");
    let from = yoi_protocol::HostCursor::decode(&cursor_of(&snap))
        .unwrap()
        .get("local")
        .unwrap();
    let a = h.create_worker("a").await;
    let mut one = h.ws(&h.worker_stream(&a, None)).await;
    let one_snap = one.frame().await;
    assert_eq!(one_snap["type"], "snapshot");
    let one_from = Cursor::decode(&cursor_of(&one_snap)).unwrap().seq;
    // Creating b passivates a; a's input activates it again and passivates b.
    let b = h.create_worker("b").await;
    h.input(&a, "hello").await;
    let mux = all.events_until(|f| back_to_idle(f, &a)).await;
    let mine = one.events_until(|f| back_to_idle(f, &a)).await;

    let s = seqs(&mux);
    assert_eq!(s[0], from.seq + 1);
    assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "{s:?}");
    let wide = passivation_diagnostics(&mux, "local");
    assert!(wide[0]["event"]["message"].as_str().unwrap().contains(&a));
    assert!(wide[2]["event"]["message"].as_str().unwrap().contains(&b));

    // The worker stream: exactly a's events after its snapshot, none of the runtime's.
    assert!(mine.iter().all(|f| f["worker_id"] == a.as_str()));
    let want: Vec<u64> = mux
        .iter()
        .filter(|f| f["worker_id"] == a.as_str())
        .map(|f| f["seq"].as_u64().unwrap())
        .filter(|&seq| seq > one_from)
        .collect();
    assert_eq!(seqs(&mine), want);
}

/// Two clients of one worker stream: one never reads (a tiny receive buffer), one reads
/// as the runs go. The stalled one falls further behind than the live buffer and is
/// `lagged` (close 1013); the reading one gets every event, in order, with no gap and
/// no `lagged`, and resuming the stalled one from its cursor loses nothing. (The runs
/// wait for the reading client, so it is never more than one run behind: nothing here
/// depends on timing.)
#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_client_does_not_hold_back_a_fast_one() {
    let h = start_with(|c| {
        local_settings(c).log.broadcast_capacity = 64.try_into().unwrap();
        c.streams.write_timeout_ms = 600_000.try_into().unwrap();
        allow_big_inputs(c);
    })
    .await;
    let w = h.create_worker("w").await;
    let mut stalled = connect_small_buffer(&h, &h.worker_stream(&w, None)).await;
    let mut fast = h.ws(&h.worker_stream(&w, None)).await;
    let start = Cursor::decode(&cursor_of(&stalled.frame().await)).unwrap();
    let fast_start = Cursor::decode(&cursor_of(&fast.frame().await)).unwrap();
    assert_eq!(start, fast_start, "nothing happened between the two");

    // 1 MiB inputs fill the stalled client's socket buffers, then runs of 200 deltas
    // overflow its place in the live buffer (64 events) several times.
    let big = "x".repeat(1 << 20);
    let mut fast_got = Vec::new();
    for run in 1..=24u64 {
        let text = if run <= 16 {
            big.as_str()
        } else {
            "stream 200"
        };
        h.input(&w, text).await;
        let frames = fast.events_until(|f| back_to_idle(f, &w)).await;
        fast_got.extend(seqs(&frames));
        h.wait_idle(&w, run).await;
    }
    let last = h.local().events().last_cursor().seq;
    assert!(last > start.seq + 64 * 4);
    let want: Vec<u64> = (start.seq + 1..=last).collect();
    assert_eq!(fast_got, want, "the fast client got everything, in order");

    let (mut got, lagged) = read_until_lagged(&mut stalled).await;
    assert!(
        (got.len() as u64) < last - start.seq,
        "the stalled one lagged"
    );
    let resume = cursor_of(&lagged);
    assert_eq!(
        Cursor::decode(&resume).unwrap().seq,
        *got.last().unwrap_or(&start.seq)
    );
    let mut again = h.ws(&h.worker_stream(&w, Some(&resume))).await;
    got.extend(read_events_to(&mut again, last).await);
    assert_eq!(got, want, "the stalled one resumes without loss");

    // The fast one is still live: nothing but events came, and more come.
    h.input(&w, "one more").await;
    let more = fast.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(more[0]["seq"].as_u64().unwrap(), last + 1);
    let metrics = h.metrics().await;
    assert_eq!(
        metric(&metrics, "yoi_stream_lagged_closes_total"),
        Some(1),
        "{metrics}"
    );
}
