//! The REST API over real sockets: shapes, typed errors, idempotent input, auth, origins,
//! body limits, ops endpoints.

mod common;

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yoi_host::config::Origin;

async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("typed error body");
    (
        status,
        body["error"]["code"].as_str().unwrap().to_string(),
        body["error"]["message"].as_str().unwrap().to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn runtimes_describe_themselves_without_paths() {
    let h = start().await;
    h.create_worker("a").await;
    let resp = h.get("/runtimes").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let text = resp.text().await.unwrap();
    let dir = h.dir.path().to_str().unwrap();
    assert!(!text.contains(dir), "no data paths in runtime info: {text}");
    assert!(!text.contains(".wasm"), "no component path: {text}");
    let body: Value = serde_json::from_str(&text).unwrap();
    let r = &body["runtimes"][0];
    assert_eq!(r["id"], "local");
    assert_eq!(r["kind"], "embedded");
    assert_eq!(r["state"], "ready");
    assert_eq!(r["workers"], 1);
    assert_eq!(r["capabilities"]["models"], json!(["scripted"]));
    assert!(r["capabilities"]["tools"].as_array().unwrap().len() >= 4);

    let one: Value = h
        .get("/runtimes/local")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(one["runtime"]["id"], "local");
    let (status, code, _) = error_of(h.get("/runtimes/nope").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "runtime_not_found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn worker_lifecycle_and_typed_errors() {
    let h = start_with(|c| local_settings(c).scripted.token_delay_ms = 20).await;
    let w = h.create_worker("w").await;
    let list: Value = h
        .get("/runtimes/local/workers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["workers"][0]["id"], w.as_str());

    // A run in flight: more input is refused as busy, cancel ends it.
    // The longest scripted answer: still streaming when the next requests arrive.
    let run = h.input(&w, "stream 100000").await;
    let resp = h
        .post(&format!("/runtimes/local/workers/{w}/input"))
        .json(&json!({"text": "too soon"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (409, "worker_busy"));
    assert!(message.contains(&run), "{message}");
    let resp = h
        .post(&format!("/runtimes/local/workers/{w}/cancel"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 202);
    let body: Value = resp.json().await.unwrap();
    assert_eq!(body["run_id"], run.as_str());
    h.wait_idle(&w, 1).await;
    let (status, code, _) = error_of(
        h.post(&format!("/runtimes/local/workers/{w}/cancel"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "not_running"));

    let transcript: Value = h
        .get(&format!("/runtimes/local/workers/{w}/transcript"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(transcript["worker_id"], w.as_str());
    assert_eq!(transcript["messages"][0]["role"], "user");

    let stopped: Value = h
        .post(&format!("/runtimes/local/workers/{w}/stop"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(stopped["worker"]["status"], "stopped");
    let (status, code, _) = error_of(
        h.post(&format!("/runtimes/local/workers/{w}/input"))
            .json(&json!({"text": "hello?"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (409, "worker_stopped"));

    for path in [
        "/runtimes/local/workers/w_404".to_string(),
        "/runtimes/local/workers/w_404/transcript".to_string(),
    ] {
        let (status, code, _) = error_of(h.get(&path).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (404, "worker_not_found"));
    }
    let (status, code, _) = error_of(h.get("/nothing/here").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "not_found"));
    let (status, code, _) = error_of(h.post("/runtimes").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (405, "invalid_request"));
    let (status, code, _) = error_of(
        h.post("/runtimes/local/workers")
            .json(&json!({"name": "x", "model": "gpt-9"}))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!((status, code.as_str()), (400, "invalid_request"));
}

#[tokio::test(flavor = "multi_thread")]
async fn input_with_a_request_id_runs_once() {
    let h = start().await;
    let w = h.create_worker("w").await;
    let send = || async {
        let resp = h
            .post(&format!("/runtimes/local/workers/{w}/input"))
            .json(&json!({"text": "only once", "request_id": "req-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202);
        let body: Value = resp.json().await.unwrap();
        body["run_id"].as_str().unwrap().to_string()
    };
    let first = send().await;
    let retry = send().await;
    assert_eq!(first, retry);
    h.wait_idle(&w, 1).await;
    let late_retry = send().await;
    assert_eq!(first, late_retry);
    let worker = h.worker(&w).await;
    assert_eq!(worker["run_count"], 1);
    let transcript: Value = h
        .get(&format!("/runtimes/local/workers/{w}/transcript"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    let users = transcript["messages"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|m| m["role"] == "user")
        .count();
    assert_eq!(users, 1);
}

#[tokio::test(flavor = "multi_thread")]
async fn create_with_a_request_id_makes_one_worker_and_delete_removes_it() {
    let h = start().await;
    let create = || async {
        let resp = h
            .post("/runtimes/local/workers")
            .json(&json!({"model": "scripted", "request_id": "create-1"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        body["worker"].clone()
    };
    let first = create().await;
    let retry = create().await;
    assert_eq!(first, retry);
    assert_eq!(first["name"], "worker-1", "a name is generated");
    let w = first["id"].as_str().unwrap().to_string();
    let list: Value = h
        .get("/runtimes/local/workers")
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(list["workers"].as_array().unwrap().len(), 1);

    let path = format!("/runtimes/local/workers/{w}");
    let resp = h.delete(&path).send().await.unwrap();
    assert_eq!(resp.status(), 204);
    let (status, code, _) = error_of(h.get(&path).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "worker_not_found"));
    let (status, code, _) = error_of(h.delete(&path).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (404, "worker_not_found"));
}

#[tokio::test(flavor = "multi_thread")]
async fn bad_bodies_get_typed_errors() {
    let h = start_with(|c| c.max_body_bytes = 1024.try_into().unwrap()).await;
    let w = h.create_worker("w").await;
    let input = format!("/runtimes/local/workers/{w}/input");
    // Requests are rebuilt for a retry: a server refusing a body early may close the
    // connection while the client still writes it (the client then sees no answer).
    type Make<'a> = Box<dyn Fn() -> reqwest::RequestBuilder + 'a>;
    let cases: Vec<(Make, u16, &str)> = vec![
        (
            Box::new(|| {
                h.post(&input)
                    .header("content-type", "application/json")
                    .body("{not json")
            }),
            400,
            "invalid_request",
        ),
        (
            Box::new(|| h.post(&input).json(&json!({"text": "hi", "bogus": 1}))),
            400,
            "invalid_request",
        ),
        (
            Box::new(|| h.post(&input).json(&json!({"txt": "hi"}))),
            400,
            "invalid_request",
        ),
        (
            Box::new(|| h.post(&input).body(r#"{"text":"hi"}"#)),
            400,
            "invalid_request",
        ),
        (
            Box::new(|| h.post(&input).json(&json!({"text": "x".repeat(4096)}))),
            413,
            "payload_too_large",
        ),
        (
            // No Content-Length: the limit applies while streaming the body too.
            Box::new(|| {
                h.post(&input)
                    .header("content-type", "application/json")
                    .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
                        (0..8).map(|_| Ok::<_, std::io::Error>(vec![b' '; 512])),
                    )))
            }),
            413,
            "payload_too_large",
        ),
        (
            Box::new(|| {
                h.post("/runtimes/local/workers")
                    .json(&json!({"name": 5, "model": "scripted"}))
            }),
            400,
            "invalid_request",
        ),
    ];
    for (request, want_status, want_code) in cases {
        let mut tries = 0;
        let response = loop {
            match request().send().await {
                Ok(response) => break response,
                Err(e) if tries < 5 && want_status == 413 => {
                    tries += 1;
                    eprintln!("retrying after {e}");
                }
                Err(e) => panic!("{e}"),
            }
        };
        let (status, code, message) = error_of(response).await;
        assert_eq!(
            (status, code.as_str()),
            (want_status, want_code),
            "{message}"
        );
        assert!(!message.is_empty());
    }
    assert_eq!(h.worker(&w).await["run_count"], 0, "nothing ran");
}

#[tokio::test(flavor = "multi_thread")]
async fn api_requires_the_token() {
    let h = start().await;
    let url = format!("{}/runtimes", h.base);
    let (status, code, _) = error_of(h.http.get(&url).send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    let (status, code, _) =
        error_of(h.http.get(&url).bearer_auth("nope").send().await.unwrap()).await;
    assert_eq!((status, code.as_str()), (401, "unauthorized"));
    // The query-string token is for WebSocket upgrades only.
    let (status, _, _) = error_of(
        h.http
            .get(format!("{url}?access_token={}", h.token))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 401);
    // Ops endpoints are open.
    let root = format!("http://{}", h.host().local_addr());
    assert_eq!(
        h.http
            .get(format!("{root}/healthz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );
    assert_eq!(
        h.http
            .get(format!("{root}/readyz"))
            .send()
            .await
            .unwrap()
            .status(),
        200
    );

    // WebSocket: no token is refused before the upgrade ...
    let ws_url = format!("{}/events/ws", h.ws_base);
    match tokio_tungstenite::connect_async(ws_url.as_str()).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 401),
        other => panic!("expected 401, got {other:?}"),
    }
    // ... the query token and the subprotocol token are accepted.
    let (ws, _) = tokio_tungstenite::connect_async(format!("{ws_url}?access_token={}", h.token))
        .await
        .unwrap();
    let mut ws_q = Ws { ws };
    assert_eq!(ws_q.frame().await["type"], "snapshot_all");
    let mut request = ws_url.as_str().into_client_request().unwrap();
    request.headers_mut().insert(
        "sec-websocket-protocol",
        format!("yoi, yoi.token.{}", h.token).parse().unwrap(),
    );
    let (ws, resp) = tokio_tungstenite::connect_async(request).await.unwrap();
    assert_eq!(resp.headers()["sec-websocket-protocol"], "yoi");
    let mut ws_p = Ws { ws };
    assert_eq!(ws_p.frame().await["type"], "snapshot_all");
}

#[tokio::test(flavor = "multi_thread")]
async fn cross_origin_requests_are_refused_unless_configured() {
    let h = start_with(|c| {
        c.allowed_origins = vec![Origin::parse("http://localhost:5173").unwrap()];
    })
    .await;
    let url = format!("{}/runtimes", h.base);
    let evil = h
        .http
        .get(&url)
        .bearer_auth(&h.token)
        .header("origin", "http://evil.example")
        .send()
        .await
        .unwrap();
    assert!(evil.headers().get("access-control-allow-origin").is_none());
    let (status, code, _) = error_of(evil).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));

    let good = h
        .http
        .get(&url)
        .bearer_auth(&h.token)
        .header("origin", "http://localhost:5173")
        .send()
        .await
        .unwrap();
    assert_eq!(good.status(), 200);
    assert_eq!(
        good.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );

    let preflight = h
        .http
        .request(reqwest::Method::OPTIONS, &url)
        .header("origin", "http://localhost:5173")
        .header("access-control-request-method", "POST")
        .header(
            "access-control-request-headers",
            "authorization, content-type",
        )
        .send()
        .await
        .unwrap();
    assert!(preflight.status().is_success(), "{}", preflight.status());
    assert_eq!(
        preflight.headers()["access-control-allow-origin"],
        "http://localhost:5173"
    );

    // WebSocket upgrades from a foreign page are refused even with a valid token.
    let mut request = format!("{}/events/ws?access_token={}", h.ws_base, h.token)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://evil.example".parse().unwrap());
    match tokio_tungstenite::connect_async(request).await {
        Err(tokio_tungstenite::tungstenite::Error::Http(resp)) => assert_eq!(resp.status(), 403),
        other => panic!("expected 403, got {other:?}"),
    }
    let mut request = format!("{}/events/ws?access_token={}", h.ws_base, h.token)
        .into_client_request()
        .unwrap();
    request
        .headers_mut()
        .insert("origin", "http://localhost:5173".parse().unwrap());
    let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
    let mut ws = Ws { ws };
    assert_eq!(ws.frame().await["type"], "snapshot_all");
}

#[tokio::test(flavor = "multi_thread")]
async fn metrics_count_events_streams_and_commands() {
    let h = start().await;
    let w = h.create_worker("w").await;
    let mut ws = h.ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    h.input(&w, "hi").await;
    ws.events_until(|f| back_to_idle(f, &w)).await;
    let _ = h.get("/runtimes/local/workers/w_404").send().await.unwrap();
    let text = h.metrics().await;
    let value = |sample: &str| -> u64 {
        metric(&text, sample).unwrap_or_else(|| panic!("no line `{sample} N` in:\n{text}"))
    };
    assert_eq!(value("yoi_host_ready"), 1);
    assert_eq!(value("yoi_streams_open"), 1);
    let last = h.local().events().last_cursor().seq;
    assert!(last > 5);
    assert_eq!(value("yoi_events_appended_total{runtime=\"local\"}"), last);
    assert!(value("yoi_guest_call_seconds_count{runtime=\"local\"}") > 0);
    let sum = "yoi_guest_call_seconds_sum{runtime=\"local\"} ";
    let sum: f64 = text
        .lines()
        .find_map(|l| l.strip_prefix(sum))
        .unwrap_or_else(|| panic!("{sum} missing in:\n{text}"))
        .parse()
        .unwrap();
    assert!(sum > 0.0);
    // A histogram: cumulative buckets ending in +Inf, which equals the count.
    assert!(
        text.lines()
            .any(|l| l == "# TYPE yoi_guest_call_seconds histogram"),
        "{text}"
    );
    assert_eq!(
        value("yoi_guest_call_seconds_bucket{runtime=\"local\",le=\"+Inf\"}"),
        value("yoi_guest_call_seconds_count{runtime=\"local\"}")
    );
    let buckets: Vec<u64> = text
        .lines()
        .filter(|l| l.starts_with("yoi_guest_call_seconds_bucket{runtime=\"local\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse().unwrap())
        .collect();
    assert!(
        buckets.len() > 5 && buckets.windows(2).all(|p| p[0] <= p[1]),
        "{buckets:?}"
    );
    assert_eq!(
        value("yoi_commands_total{command=\"input\",outcome=\"ok\"}"),
        1
    );
    assert_eq!(
        value("yoi_commands_total{command=\"get_worker\",outcome=\"worker_not_found\"}"),
        1
    );
    assert!(value("yoi_stream_frames_sent_total") > 5);
    assert_eq!(value("yoi_stream_lagged_closes_total"), 0);
}

/// The stream and event-log families after a known sequence of actions, each sample
/// matched as a whole line (`^name{labels} value$`): three streams opened, one run, the
/// last sequence number the clients saw; no core fault.
#[tokio::test(flavor = "multi_thread")]
async fn metrics_are_exact_after_a_known_sequence_of_actions() {
    let h = start().await;
    let w = h.create_worker("w").await;
    let mut streams = vec![
        h.ws(&h.worker_stream(&w, None)).await,
        h.ws(&h.worker_stream(&w, None)).await,
        h.ws(&h.all_stream(None)).await,
    ];
    for ws in &mut streams {
        assert!(
            ws.frame().await["type"]
                .as_str()
                .unwrap()
                .starts_with("snapshot")
        );
    }
    h.input(&w, "hi").await;
    let mut lasts = Vec::new();
    for ws in &mut streams {
        let run = ws.events_until(|f| back_to_idle(f, &w)).await;
        lasts.push(run.last().unwrap()["seq"].as_u64().unwrap());
    }
    let last = lasts[0];
    assert_eq!(lasts, [last; 3]);
    assert_eq!(h.local().events().last_cursor().seq, last);

    let page = h.metrics().await;
    let exact = |sample: &str, want: u64| {
        assert_eq!(metric(&page, sample), Some(want), "{sample} in:\n{page}");
    };
    exact("yoi_streams_opened_total", 3);
    exact("yoi_streams_open", 3);
    exact("yoi_event_log_last_seq{runtime=\"local\"}", last);
    exact("yoi_events_appended_total{runtime=\"local\"}", last);
    exact("yoi_runtime_core_faults_total{runtime=\"local\"}", 0);
    exact("yoi_stream_lagged_closes_total", 0);
    exact(
        "yoi_commands_total{command=\"create_worker\",outcome=\"ok\"}",
        1,
    );
    exact("yoi_commands_total{command=\"input\",outcome=\"ok\"}", 1);

    // A stream that ends is no longer open; opened streams stay counted.
    drop(streams.pop());
    tokio::time::timeout(PATIENCE, async {
        while metric(&h.metrics().await, "yoi_streams_open") != Some(2) {
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the closed stream is counted in time");
    let page = h.metrics().await;
    assert_eq!(metric(&page, "yoi_streams_opened_total"), Some(3), "{page}");
}

/// A core fault (the test-only fault-injection component traps on `__yoi_trap__`) is
/// counted exactly once, its `core_restarted` diagnostic is a runtime-wide frame on the
/// multiplexed stream, and the runtime serves on.
#[tokio::test(flavor = "multi_thread")]
async fn a_core_fault_is_counted_exactly_once() {
    let faults = yoi_core::fault_guest_component_path().unwrap_or_else(|e| panic!("{e}"));
    let h = start_with(|c| c.component = Some(faults)).await;
    let w = h.create_worker("w").await;
    let mut all = h.ws(&h.all_stream(None)).await;
    assert_eq!(all.frame().await["type"], "snapshot_all");
    let page = h.metrics().await;
    assert_eq!(
        metric(&page, "yoi_runtime_core_faults_total{runtime=\"local\"}"),
        Some(0)
    );
    let resp = h
        .post(&format!("/runtimes/local/workers/{w}/input"))
        .json(&json!({"text": "__yoi_trap__"}))
        .send()
        .await
        .unwrap();
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    assert_eq!(status, 500, "{body}");
    assert_eq!(body["error"]["code"], "internal", "{body}");
    let restarted = loop {
        let f = all.frame().await;
        if f["event"]["code"] == "core_restarted" {
            break f;
        }
    };
    assert_eq!(
        restarted.get("worker_id"),
        Some(&Value::Null),
        "{restarted}"
    );
    assert_eq!(restarted["runtime_id"], "local");

    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;
    let page = h.metrics().await;
    assert_eq!(
        metric(&page, "yoi_runtime_core_faults_total{runtime=\"local\"}"),
        Some(1),
        "{page}"
    );
    assert_eq!(
        metric(&page, "yoi_event_log_last_seq{runtime=\"local\"}"),
        Some(h.local().events().last_cursor().seq)
    );
}

/// While the runtimes load, `/healthz` answers, `/readyz` and the API say
/// `503 runtime_unavailable`; once loaded, both serve. The loading is held back
/// deterministically: it runs on tokio's blocking pool, whose only thread this test keeps
/// busy until it has checked the loading state.
#[test]
fn until_the_runtimes_load_readyz_and_the_api_answer_503() {
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
        let host = yoi_host::Host::start(test_config(dir.path()))
            .await
            .unwrap();
        let base = format!("http://{}", host.local_addr());
        let http = reqwest::Client::new();
        let health = http.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.status(), 200);
        let (status, code, _) =
            error_of(http.get(format!("{base}/readyz")).send().await.unwrap()).await;
        assert_eq!((status, code.as_str()), (503, "runtime_unavailable"));
        let runtimes = http
            .get(format!("{base}/api/v1/runtimes"))
            .bearer_auth(host.token())
            .send()
            .await
            .unwrap();
        let (status, code, _) = error_of(runtimes).await;
        assert_eq!((status, code.as_str()), (503, "runtime_unavailable"));

        release.send(()).unwrap();
        held.await.unwrap();
        tokio::time::timeout(PATIENCE, host.ready())
            .await
            .unwrap()
            .unwrap();
        let ready = http.get(format!("{base}/readyz")).send().await.unwrap();
        assert_eq!(ready.status(), 200);
        host.shutdown().await.unwrap();
    });
}
