//! The runtime API's REST routes over real sockets: shapes, typed errors, auth, replay
//! pages, snapshots, readiness and metrics.

mod common;

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yoi_protocol::{Cursor, EventsPage, SnapshotResponse, SnapshotsResponse};

#[tokio::test(flavor = "multi_thread")]
async fn the_runtime_describes_itself_without_paths() {
    let rt = start().await;
    rt.create_worker("a").await;
    let resp = rt.get("/runtime").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    assert!(
        !text.contains(rt.dir.path().to_str().unwrap()),
        "no data paths: {text}"
    );
    let body: Value = serde_json::from_str(&text).unwrap();
    let r = &body["runtime"];
    assert_eq!(r["id"], "local");
    assert_eq!(r["kind"], "native");
    assert_eq!(r["state"], "ready");
    assert_eq!(r["workers"], 1);
    assert_eq!(r["capabilities"]["models"], json!(["scripted"]));
    assert_eq!(r["capabilities"]["streams"], json!(["worker", "all"]));
    assert!(r["capabilities"]["tools"].as_array().unwrap().len() >= 4);
    assert_eq!(r["capabilities"]["limits"]["max_workers"], 100000);
}

#[tokio::test(flavor = "multi_thread")]
async fn workers_answer_commands_and_typed_errors() {
    let rt = start_with(|c| c.runtime.scripted.token_delay_ms = 20).await;
    let w = rt.create_worker("w").await;
    let list = rt.get_json("/workers").await;
    assert_eq!(list["workers"][0]["id"], w.as_str());
    assert_eq!(
        rt.get_json(&format!("/workers/{w}")).await["worker"]["name"],
        "w"
    );

    // A run in flight: more input is busy, cancel ends it.
    let run = rt.input(&w, "stream 100000").await;
    let busy = rt
        .post(&format!("/workers/{w}/input"))
        .json(&json!({"text": "too soon"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(busy).await;
    assert_eq!((status, code.as_str()), (409, "worker_busy"));
    assert!(message.contains(&run), "{message}");
    let cancel = rt
        .post(&format!("/workers/{w}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(cancel.status(), 202);
    assert_eq!(
        cancel.json::<Value>().await.unwrap()["run_id"],
        run.as_str()
    );
    rt.wait_idle(&w, 1).await;
    let (status, code, _) = error_of(
        rt.post(&format!("/workers/{w}/cancel"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "not_running"));

    let transcript = rt.get_json(&format!("/workers/{w}/transcript")).await;
    assert_eq!(transcript["worker_id"], w.as_str());
    assert_eq!(transcript["messages"][0]["content"], "stream 100000");

    let stopped = rt.post(&format!("/workers/{w}/stop")).send().await.unwrap();
    assert_eq!(stopped.status(), 200);
    assert_eq!(
        stopped.json::<Value>().await.unwrap()["worker"]["status"],
        "stopped"
    );
    let again = rt
        .post(&format!("/workers/{w}/input"))
        .json(&json!({"text": "hello"}))
        .send()
        .await
        .unwrap();
    let (status, code, _) = error_of(again).await;
    assert_eq!((status, code.as_str()), (409, "worker_stopped"));

    let cases = [
        (rt.get("/workers/w_404"), 404, "worker_not_found"),
        (rt.post("/workers/w_404/stop"), 404, "worker_not_found"),
        (rt.get("/nope"), 404, "not_found"),
        (rt.post("/runtime"), 405, "invalid_request"),
        (
            rt.post("/workers")
                .json(&json!({"name": "x", "model": "gpt-9"})),
            400,
            "invalid_request",
        ),
        (
            rt.post("/workers")
                .json(&json!({"name": "x", "model": "scripted", "bogus": 1})),
            400,
            "invalid_request",
        ),
        (
            rt.post("/workers")
                .header("content-type", "application/json")
                .body("{not json"),
            400,
            "invalid_request",
        ),
    ];
    for (request, want_status, want_code) in cases {
        let (status, code, message) = error_of(request.send().await.unwrap()).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{message}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn the_api_requires_the_token() {
    let rt = start().await;
    let url = format!("{}/workers", rt.base);
    let (status, code, _) = error_of(rt.http.get(&url).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    let wrong = rt.http.get(&url).bearer_auth("nope").send().await.unwrap();
    let (status, _, message) = error_of(wrong).await;
    assert_eq!(status, 401);
    assert!(!message.contains(&rt.token), "{message}");
    // Unknown routes under /v1 are behind the token too; the query token is for
    // WebSocket upgrades only.
    let (status, _, _) = error_of(
        rt.http
            .get(format!("{}/nope", rt.base))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    let query = format!("{url}?access_token={}", rt.token);
    let (status, _, _) = error_of(rt.http.get(query).send().await.unwrap()).await;
    assert_eq!(status, 401);
    // Ops endpoints are open.
    for path in ["/healthz", "/readyz", "/metrics"] {
        let resp = rt
            .http
            .get(format!("{}{path}", rt.root))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "{path}");
    }

    // WebSocket upgrades: refused without a token or with a wrong one ...
    let ws_url = format!("{}/events/ws", rt.ws_base);
    for url in [ws_url.clone(), format!("{ws_url}?access_token=nope")] {
        match Ws::connect(url.into_client_request().unwrap()).await {
            Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => {
                assert_eq!(resp.status(), 401)
            }
            other => panic!("expected 401, got {:?}", other.map(|_| ())),
        }
    }
    // ... accepted with the query token, or the subprotocol token next to `yoi` (and the
    // server answers `yoi`, never the token).
    let query = format!("{ws_url}?access_token={}", rt.token);
    let mut ws = Ws::connect(query.into_client_request().unwrap())
        .await
        .unwrap();
    assert_eq!(ws.frame().await["type"], "snapshot_all");
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("yoi, yoi.token.{}", rt.token).parse().unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "yoi");
    let mut ws = Ws { ws };
    assert_eq!(ws.frame().await["type"], "snapshot_all");
}

/// Every page of `GET /v1/events` from `after`, following `cursor` while `more`.
async fn all_pages(rt: &TestRuntime, query: &str) -> (Vec<EventsPage>, Vec<u64>) {
    let mut pages = Vec::new();
    let mut url = format!("/events?{query}");
    loop {
        let page: EventsPage = serde_json::from_value(rt.get_json(&url).await).unwrap();
        let more = page.more;
        url = format!("/events?{query}&after={}", page.cursor.encode());
        pages.push(page);
        if !more {
            break;
        }
    }
    let seqs = pages
        .iter()
        .flat_map(|p| p.events.iter().map(|e| e.seq))
        .collect();
    (pages, seqs)
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_pages_cover_the_log_in_order() {
    let rt = start_with(|c| c.events.max_page = 5.try_into().unwrap()).await;
    let a = rt.create_worker("a").await;
    let b = rt.create_worker("b").await;
    rt.input(&a, "stream 6").await;
    rt.wait_idle(&a, 1).await;
    rt.input(&b, "stream 4").await;
    rt.wait_idle(&b, 1).await;
    let last = rt.last_seq();

    // Pages of 3: every event once, in order; the last page says no more.
    let (pages, seqs) = all_pages(&rt, "limit=3").await;
    assert_eq!(seqs, (1..=last).collect::<Vec<_>>());
    assert!(
        pages[..pages.len() - 1]
            .iter()
            .all(|p| p.events.len() == 3 && p.more)
    );
    assert_eq!(pages.last().unwrap().cursor.seq, last);
    // `limit` is capped by `events.max_page`.
    let capped: EventsPage =
        serde_json::from_value(rt.get_json("/events?limit=100").await).unwrap();
    assert_eq!(capped.events.len(), 5);
    assert!(capped.more);
    // One worker's events, with a cursor that moves past the others'.
    let (whole, _) = all_pages(&rt, "limit=1000").await;
    let of_b: Vec<u64> = whole
        .iter()
        .flat_map(|p| &p.events)
        .filter(|e| e.worker_id.as_deref() == Some(b.as_str()))
        .map(|e| e.seq)
        .collect();
    let (pages, seqs) = all_pages(&rt, &format!("worker={b}&limit=4")).await;
    assert_eq!(seqs, of_b);
    assert_eq!(pages.last().unwrap().cursor.seq, last);
    // Up to date: an empty page at the end of the log.
    let end: EventsPage = serde_json::from_value(
        rt.get_json(&format!(
            "/events?after={}",
            pages.last().unwrap().cursor.encode()
        ))
        .await,
    )
    .unwrap();
    assert!(end.events.is_empty() && !end.more);
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_pages_are_bounded_in_bytes() {
    let rt = start_with(|c| c.events.max_page_bytes = 2048.try_into().unwrap()).await;
    let w = rt.create_worker("w").await;
    rt.input(&w, &"x".repeat(1500)).await;
    rt.wait_idle(&w, 1).await;
    let (pages, seqs) = all_pages(&rt, "limit=1000").await;
    assert_eq!(seqs, (1..=rt.last_seq()).collect::<Vec<_>>());
    assert!(pages.len() > 1, "cut into several pages");
    for page in &pages {
        let size = serde_json::to_string(page).unwrap().len();
        assert!(size <= 2048 || page.events.len() == 1, "{size} bytes");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn replay_refuses_bad_cursors_with_typed_errors() {
    let rt = start_with(|c| c.runtime.log.retain_events = Some(5)).await;
    let w = rt.create_worker("w").await;
    let first: EventsPage = serde_json::from_value(rt.get_json("/events?limit=1").await).unwrap();
    let epoch = first.cursor.epoch;
    let cases = [
        ("after=nope".to_string(), 400, "cursor_malformed"),
        (
            format!("after={}", Cursor::new(epoch ^ 1, 0).encode()),
            400,
            "cursor_unknown",
        ),
        (
            format!("after={}", Cursor::new(epoch, 999).encode()),
            400,
            "cursor_ahead",
        ),
        ("worker=w_404".to_string(), 404, "worker_not_found"),
        ("bogus=1".to_string(), 400, "invalid_request"),
        ("limit=-1".to_string(), 400, "invalid_request"),
    ];
    for (query, want_status, want_code) in cases {
        let resp = rt.get(&format!("/events?{query}")).send().await.unwrap();
        let (status, code, message) = error_of(resp).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{query}: {message}"
        );
    }
    // Older than retained history: expired.
    rt.input(&w, "stream 50").await;
    rt.wait_idle(&w, 1).await;
    let runtime = rt.server().state().runtime().unwrap().clone();
    tokio::time::timeout(PATIENCE, async {
        // Retention runs every few hundred actor batches; reads are batches too.
        while runtime.runtime().events().horizon() <= 1 {
            rt.get_json(&format!("/workers/{w}")).await;
        }
    })
    .await
    .expect("retention moves the horizon");
    let resp = rt
        .get(&format!("/events?after={}", Cursor::new(epoch, 1).encode()))
        .send()
        .await;
    let (status, code, _) = error_of(resp.unwrap()).await;
    assert_eq!((status, code.as_str()), (400, "cursor_expired"));
}

#[tokio::test(flavor = "multi_thread")]
async fn snapshots_carry_the_cursor_they_are_consistent_with() {
    let rt = start().await;
    let w = rt.create_worker("w").await;
    rt.input(&w, "hello").await;
    rt.wait_idle(&w, 1).await;
    let one: SnapshotResponse =
        serde_json::from_value(rt.get_json(&format!("/workers/{w}/snapshot")).await).unwrap();
    assert_eq!(one.snapshot.worker.id, w);
    assert_eq!(one.snapshot.transcript.len(), 2);
    assert_eq!(one.cursor.seq, rt.last_seq());
    let all: SnapshotsResponse = serde_json::from_value(rt.get_json("/snapshot").await).unwrap();
    assert_eq!(all.workers.len(), 1);
    assert_eq!(all.cursor, one.cursor);
    // What happens next is exactly what the replay after the cursor holds.
    rt.input(&w, "again").await;
    rt.wait_idle(&w, 2).await;
    let (_, seqs) = all_pages(&rt, &format!("after={}", one.cursor.encode())).await;
    assert_eq!(
        seqs,
        (one.cursor.seq + 1..=rt.last_seq()).collect::<Vec<_>>()
    );
    let (status, code, _) = error_of(rt.get("/workers/w_404/snapshot").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "worker_not_found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_streams_commands_and_the_log() {
    let rt = start().await;
    let w = rt.create_worker("w").await;
    let mut ws = rt.ws(&format!("/workers/{w}/events/ws")).await;
    ws.frame().await;
    rt.input(&w, "hi").await;
    ws.events_until(|f| back_to_idle(f, &w)).await;
    let _ = rt.get("/workers/w_404").send().await.unwrap();
    let text = rt.metrics().await;
    let lines: Vec<&str> = text.lines().collect();
    let last = rt.last_seq();
    for want in [
        "yoi_runtime_ready 1".to_string(),
        "yoi_streams_open 1".to_string(),
        "yoi_streams_opened_total 1".to_string(),
        "yoi_stream_lagged_closes_total 0".to_string(),
        "yoi_commands_total{command=\"create_worker\",outcome=\"ok\"} 1".to_string(),
        "yoi_commands_total{command=\"input\",outcome=\"ok\"} 1".to_string(),
        "yoi_commands_total{command=\"get_worker\",outcome=\"worker_not_found\"} 1".to_string(),
        format!("yoi_event_log_last_seq{{runtime=\"local\"}} {last}"),
        "yoi_runtime_core_faults_total{runtime=\"local\"} 0".to_string(),
    ] {
        assert!(lines.contains(&want.as_str()), "{want} missing in:\n{text}");
    }
}

/// While the runtime opens, `/healthz` answers and `/readyz` and the API say
/// `503 runtime_unavailable`; once open, both serve. The opening is held back
/// deterministically: it runs on tokio's blocking pool, whose only thread this test keeps
/// busy until it has checked.
#[test]
fn until_the_runtime_opens_readyz_and_the_api_answer_503() {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .max_blocking_threads(1)
        .enable_all()
        .build()
        .unwrap();
    rt.block_on(async {
        let (release, gate) = std::sync::mpsc::channel::<()>();
        let held = tokio::task::spawn_blocking(move || {
            let _ = gate.recv();
        });
        let dir = tempfile::tempdir().unwrap();
        let server = yoi_runtime_server::RuntimeServer::start(test_config(dir.path()))
            .await
            .unwrap();
        let base = format!("http://{}", server.local_addr());
        let http = reqwest::Client::new();
        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let (status, code, _) =
            error_of(http.get(format!("{base}/readyz")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (503, "runtime_unavailable"));
        let workers = http
            .get(format!("{base}/v1/workers"))
            .bearer_auth(server.token())
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_of(workers).await;
        assert_eq!((status, code.as_str()), (503, "runtime_unavailable"));
        assert!(
            http.get(format!("{base}/metrics"))
                .send()
                .await
                .unwrap()
                .text()
                .await
                .unwrap()
                .lines()
                .any(|l| l == "yoi_runtime_ready 0")
        );

        release.send(()).unwrap();
        held.await.unwrap();
        tokio::time::timeout(PATIENCE, server.ready())
            .await
            .unwrap()
            .unwrap();
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        server.shutdown().await.unwrap();
    });
}

/// With `--component`, the same API runs on the runtime component in wasmtime.
#[cfg(feature = "wasm")]
#[tokio::test(flavor = "multi_thread")]
async fn the_component_core_serves_the_same_api() {
    let component = yoi_core::guest_component_path().unwrap_or_else(|e| panic!("{e}"));
    let rt = start_with(|c| c.component = Some(component)).await;
    assert_eq!(rt.get_json("/runtime").await["runtime"]["kind"], "wasm");
    let w = rt.create_worker("w").await;
    let mut ws = rt.ws(&format!("/workers/{w}/events/ws")).await;
    assert_eq!(ws.frame().await["type"], "snapshot");
    rt.input(&w, "hello").await;
    let frames = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(frames.iter().any(|f| f["event"]["type"] == "run_completed"));
}
