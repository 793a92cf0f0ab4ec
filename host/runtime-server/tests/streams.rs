//! The runtime's WebSocket streams over real sockets: runtime-wide and per worker, every
//! cursor outcome, lagged and resumed, observation-only, stream limits, shutdown, and a
//! restart on the same data dir resumed by cursor.

mod common;

use common::*;
use serde_json::Value;
use yoi_protocol::{Cursor, Frame};

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_wide_stream_snapshots_then_follows_every_worker() {
    let rt = start().await;
    let a = rt.create_worker("a").await;
    let mut ws = rt.ws("/events/ws").await;
    let snap = ws.frame().await;
    // Frames parse as the protocol's frames, with runtime cursors.
    let Frame::<Cursor>::SnapshotAll { cursor, workers } =
        serde_json::from_value(snap.clone()).unwrap()
    else {
        panic!("a snapshot_all first: {snap}")
    };
    assert_eq!(workers.len(), 1);
    assert_eq!(workers[0].runtime_id, "local");
    assert_eq!(cursor.seq, rt.last_seq());
    let b = rt.create_worker("b").await;
    rt.input(&a, "hello").await;
    let frames = ws.events_until(|f| back_to_idle(f, &a)).await;
    assert_eq!(frames[0]["event"]["type"], "worker_created");
    assert_eq!(frames[0]["worker_id"], b.as_str());
    let seqs = seqs(&frames);
    assert_eq!(seqs, (cursor.seq + 1..=rt.last_seq()).collect::<Vec<_>>());
    for f in &frames {
        let frame: Frame = serde_json::from_value(f.clone()).unwrap();
        let Frame::Event { cursor, seq, .. } = frame else {
            panic!("{f}")
        };
        assert_eq!(cursor.seq, seq, "each frame resumes right after itself");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_stream_resumes_by_cursor_without_gap_or_duplicate() {
    let rt = start().await;
    let a = rt.create_worker("a").await;
    let b = rt.create_worker("b").await;
    let mut ws = rt.ws(&format!("/workers/{a}/events/ws")).await;
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot");
    assert_eq!(snap["worker"]["id"], a.as_str());
    rt.input(&a, "stream 5").await;
    rt.input(&b, "stream 5").await;
    let first = ws
        .events_until(|f| f["event"]["type"] == "text_delta")
        .await;
    assert!(first.iter().all(|f| f["worker_id"] == a.as_str()));
    let resume = cursor_of(first.last().unwrap());
    drop(ws);
    rt.wait_idle(&a, 1).await;
    rt.wait_idle(&b, 1).await;
    let mut ws = rt
        .ws(&format!("/workers/{a}/events/ws?cursor={resume}"))
        .await;
    let rest = ws.events_until(|f| back_to_idle(f, &a)).await;
    assert!(
        rest.iter().all(|f| f["worker_id"] == a.as_str()),
        "only a's events"
    );
    // Together: every event of `a` after the snapshot, once, in order.
    let got: Vec<u64> = seqs(&first).into_iter().chain(seqs(&rest)).collect();
    let (_, of_a) = events_of(&rt, &a, &cursor_of(&snap)).await;
    assert_eq!(got, of_a);
}

/// `a`'s events after `after`, from the replay endpoint.
async fn events_of(rt: &TestRuntime, worker: &str, after: &str) -> (String, Vec<u64>) {
    let page = rt
        .get_json(&format!("/events?worker={worker}&after={after}&limit=1000"))
        .await;
    let seqs = page["events"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["seq"].as_u64().unwrap())
        .collect();
    (cursor_of(&page), seqs)
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_outcomes_on_both_streams() {
    let rt = start_with(|c| c.runtime.log.retain_events = Some(5)).await;
    let w = rt.create_worker("w").await;
    let mut ws = rt.ws("/events/ws").await;
    let old = cursor_of(&ws.frame().await);
    drop(ws);
    let epoch = Cursor::decode(&old).unwrap().epoch;
    rt.input(&w, "stream 50").await;
    rt.wait_idle(&w, 1).await;
    let runtime = rt.server().state().runtime().unwrap().clone();
    tokio::time::timeout(PATIENCE, async {
        while runtime.runtime().events().horizon() <= Cursor::decode(&old).unwrap().seq {
            rt.get_json(&format!("/workers/{w}")).await;
        }
    })
    .await
    .expect("retention moves the horizon");

    let other = Cursor::new(epoch ^ 1, 1).encode();
    let ahead = Cursor::new(epoch, 10_000).encode();
    for stream in ["/events/ws".to_string(), format!("/workers/{w}/events/ws")] {
        let snapshot = if stream == "/events/ws" {
            "snapshot_all"
        } else {
            "snapshot"
        };
        // Not a cursor (a host cursor is not one either): error, close.
        for bad in ["nope", "h1~local.c1"] {
            let mut ws = rt.ws(&format!("{stream}?cursor={bad}")).await;
            let f = ws.frame().await;
            assert_eq!(
                (f["type"].as_str(), f["code"].as_str()),
                (Some("error"), Some("cursor_malformed")),
                "{f}"
            );
            assert_eq!(ws.expect_close().await, Some(1000));
        }
        // Another store's or an expired cursor: diagnostic, a fresh snapshot, then live.
        for (cursor, code) in [(&other, "cursor_unknown"), (&old, "cursor_expired")] {
            let mut ws = rt.ws(&format!("{stream}?cursor={cursor}")).await;
            let f = ws.frame().await;
            assert_eq!(
                (f["type"].as_str(), f["code"].as_str()),
                (Some("diagnostic"), Some(code)),
                "{f}"
            );
            assert_eq!(ws.frame().await["type"], snapshot);
        }
        // Ahead of the log: error, close.
        let mut ws = rt.ws(&format!("{stream}?cursor={ahead}")).await;
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some("cursor_ahead")),
            "{f}"
        );
        ws.expect_close().await;
    }
    // An unknown worker: error, close.
    let mut ws = rt.ws("/workers/w_404/events/ws").await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("worker_not_found"))
    );
    ws.expect_close().await;
}

/// Connects with a tiny receive buffer, so the server's writes back up quickly.
async fn connect_small_buffer(rt: &TestRuntime, path: &str) -> Ws {
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(rt.server().local_addr()).await.unwrap();
    let mut request = format!("{}{path}", rt.ws_base)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", rt.token).parse().unwrap(),
    );
    let plain = tokio_tungstenite::MaybeTlsStream::Plain(stream);
    let (ws, _) = tokio_tungstenite::client_async(request, plain)
        .await
        .unwrap();
    Ws { ws }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_slow_client_is_lagged_then_resumes_without_loss() {
    const RUNS: u64 = 16;
    let rt = start_with(|c| {
        c.runtime.log.broadcast_capacity = 2.try_into().unwrap();
        c.streams.write_timeout_ms = 600_000.try_into().unwrap();
        c.max_body_bytes = (4 << 20).try_into().unwrap();
        c.runtime.limits.max_input_bytes = 2 << 20;
    })
    .await;
    let w = rt.create_worker("w").await;
    let mut ws = connect_small_buffer(&rt, "/events/ws").await;
    let start = Cursor::decode(&cursor_of(&ws.frame().await)).unwrap().seq;
    // Far more than socket buffers hold, while the client reads nothing.
    let big = "x".repeat(1 << 20);
    for run in 1..=RUNS {
        rt.input(&w, &big).await;
        rt.wait_idle(&w, run).await;
    }
    let last = rt.last_seq();
    let mut got = Vec::new();
    let lagged = loop {
        let f = ws.frame().await;
        match f["type"].as_str().unwrap() {
            "event" => got.push(f["seq"].as_u64().unwrap()),
            "lagged" => break f,
            other => panic!("unexpected {other} frame"),
        }
    };
    assert_eq!(ws.expect_close().await, Some(1013));
    assert!((got.len() as u64) < last - start, "cut short");
    let resume = cursor_of(&lagged);
    assert_eq!(
        Cursor::decode(&resume).unwrap().seq,
        *got.last().unwrap_or(&start),
        "lagged carries the last delivered cursor"
    );
    let mut ws = rt.ws(&format!("/events/ws?cursor={resume}")).await;
    loop {
        let f = ws.frame().await;
        let seq = f["seq"].as_u64().unwrap();
        got.push(seq);
        if seq == last {
            break;
        }
    }
    assert_eq!(
        got,
        (start + 1..=last).collect::<Vec<_>>(),
        "every event exactly once"
    );
    assert!(
        rt.metrics()
            .await
            .lines()
            .any(|l| l == "yoi_stream_lagged_closes_total 1")
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn streams_are_observation_only_and_limited() {
    let rt = start_with(|c| c.streams.max_open = 1.try_into().unwrap()).await;
    let mut ws = rt.ws("/events/ws").await;
    assert_eq!(ws.frame().await["type"], "snapshot_all");
    // One stream is the limit: the next upgrade is refused before upgrading.
    use tokio_tungstenite::tungstenite::client::IntoClientRequest;
    let mut request = format!("{}/events/ws", rt.ws_base)
        .into_client_request()
        .unwrap();
    request.headers_mut().insert(
        "authorization",
        format!("Bearer {}", rt.token).parse().unwrap(),
    );
    match Ws::connect(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
            assert_eq!(resp.status(), 429);
            let body: Value = serde_json::from_slice(resp.body().as_deref().unwrap()).unwrap();
            assert_eq!(body["error"]["code"], "limit_exceeded");
        }
        other => panic!("expected 429, got {:?}", other.map(|_| ())),
    }
    ws.send_text(r#"{"text":"hello"}"#).await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("invalid_request"))
    );
    ws.expect_close().await;
}

#[tokio::test(flavor = "multi_thread")]
async fn shutdown_closes_streams_and_a_restart_resumes_by_cursor() {
    let rt = start().await;
    let w = rt.create_worker("w").await;
    let mut ws = rt.ws(&format!("/workers/{w}/events/ws")).await;
    let snap = ws.frame().await;
    rt.input(&w, "hello").await;
    let seen = ws.events_until(|f| back_to_idle(f, &w)).await;
    let cursor = cursor_of(seen.last().unwrap());
    let mut all = rt.ws("/events/ws").await;
    assert_eq!(all.frame().await["type"], "snapshot_all");

    let token = rt.token.clone();
    let dir = rt.stop().await;
    for ws in [&mut ws, &mut all] {
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some("shutting_down"))
        );
        assert_eq!(ws.expect_close().await, Some(1001));
    }

    // The same data dir: same token, same workers, and the cursor resumes.
    let rt = start_in(dir, |_| {}).await;
    assert_eq!(rt.token, token);
    assert_eq!(
        rt.get_json(&format!("/workers/{w}")).await["worker"]["run_count"],
        1
    );
    let mut ws = rt
        .ws(&format!("/workers/{w}/events/ws?cursor={cursor}"))
        .await;
    rt.input(&w, "again").await;
    let next = ws.events_until(|f| back_to_idle(f, &w)).await;
    // The worker's next event: the runtime-wide `worker_activated` diagnostic of the
    // restored (passivated) worker may take a sequence number before it.
    let first = next[0]["seq"].as_u64().unwrap();
    let after = Cursor::decode(&cursor).unwrap().seq;
    assert!(
        (after + 1..=after + 2).contains(&first),
        "no gap, no duplicate: {first} after {after}"
    );
    assert_eq!(next[0]["event"]["type"], "input_accepted");
    // The old snapshot's cursor still replays the whole story.
    let mut ws = rt
        .ws(&format!(
            "/workers/{w}/events/ws?cursor={}",
            cursor_of(&snap)
        ))
        .await;
    let replayed = ws
        .events_until(|f| f["seq"] == next.last().unwrap()["seq"])
        .await;
    let want: Vec<u64> = seqs(&seen).into_iter().chain(seqs(&next)).collect();
    assert_eq!(seqs(&replayed), want);
}
