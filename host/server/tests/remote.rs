//! A host fronting a real `yoi-runtime serve` (started in-process through its library)
//! next to its embedded runtime: commands and streams through the host, one upstream
//! stream for any number of clients, a runtime restarted mid-run, old cursors replayed
//! from the runtime, and failures that are typed and leak no URL or token.

mod common;

use std::net::SocketAddr;
use std::num::NonZeroU64;
use std::path::PathBuf;

use common::*;
use serde_json::{Value, json};
use yoi_client::RuntimeClient;
use yoi_host::config::{RemoteConfig, RuntimeConfig, RuntimeId, SourceConfig, TokenSource};
use yoi_protocol::Cursor;
use yoi_runtime_server::RuntimeServer;

/// A runtime server on loopback with its data dir.
struct Remote {
    server: Option<RuntimeServer>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Remote {
    /// Starts (or restarts, on `dir` and `bind`) a runtime server.
    async fn start(dir: tempfile::TempDir, bind: SocketAddr, token_delay_ms: u64) -> Remote {
        Remote::start_with(dir, bind, |c| {
            c.runtime.scripted.token_delay_ms = token_delay_ms
        })
        .await
    }

    /// [`Remote::start`] with its config changed by `tweak`.
    async fn start_with(
        dir: tempfile::TempDir,
        bind: SocketAddr,
        tweak: impl FnOnce(&mut yoi_runtime_server::Config),
    ) -> Remote {
        let mut config = yoi_runtime_server::Config {
            bind,
            data_dir: Some(dir.path().to_path_buf()),
            ..yoi_runtime_server::Config::default()
        };
        tweak(&mut config);
        let server = RuntimeServer::start(config).await.expect("runtime starts");
        tokio::time::timeout(PATIENCE, server.ready())
            .await
            .expect("the runtime opens in time")
            .expect("the runtime opens");
        Remote {
            addr: server.local_addr(),
            server: Some(server),
            dir,
        }
    }

    async fn new(token_delay_ms: u64) -> Remote {
        let any = "127.0.0.1:0".parse().unwrap();
        Remote::start(tempfile::tempdir().unwrap(), any, token_delay_ms).await
    }

    fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    fn token_file(&self) -> PathBuf {
        self.dir.path().join("runtime.token")
    }

    fn token(&self) -> String {
        std::fs::read_to_string(self.token_file()).unwrap()
    }

    fn client(&self) -> RuntimeClient {
        RuntimeClient::new(&self.url(), self.token().trim()).unwrap()
    }

    /// Shuts the server down (runs in flight are interrupted); hands back its data dir.
    async fn stop(mut self) -> (tempfile::TempDir, SocketAddr) {
        let server = self.server.take().expect("running");
        server.shutdown().await.expect("clean shutdown");
        (self.dir, self.addr)
    }

    async fn metrics(&self) -> String {
        let url = format!("{}/metrics", self.url());
        reqwest::get(url).await.unwrap().text().await.unwrap()
    }

    /// Seqs of `worker`'s events in the runtime's log after `after`, read page by page.
    async fn log_seqs(&self, worker: &str, after: Cursor) -> Vec<u64> {
        self.log_seqs_of(Some(worker), after).await
    }

    /// Seqs of the events (of `worker`, or all) in the runtime's log after `after`.
    async fn log_seqs_of(&self, worker: Option<&str>, after: Cursor) -> Vec<u64> {
        let client = self.client();
        let (mut after, mut seqs) = (after, Vec::new());
        loop {
            let page = client.events(Some(after), worker, None).await.unwrap();
            seqs.extend(page.events.iter().map(|e| e.seq));
            after = page.cursor;
            if !page.more {
                return seqs;
            }
        }
    }
}

fn remote_entry(id: &str, url: String, token_file: PathBuf) -> RuntimeConfig {
    RuntimeConfig {
        id: RuntimeId::parse(id).unwrap(),
        source: SourceConfig::Remote(RemoteConfig {
            url,
            token: TokenSource::File(token_file),
            connect_timeout_ms: NonZeroU64::new(2_000).unwrap(),
            request_timeout_ms: NonZeroU64::new(10_000).unwrap(),
            stream_idle_timeout_ms: NonZeroU64::new(60_000).unwrap(),
            window_bytes: NonZeroU64::new(128 << 20).unwrap(),
        }),
    }
}

/// A host serving its embedded `local` and `far`, the runtime at `remote`.
async fn host_fronting(remote: &Remote, tweak: impl FnOnce(&mut yoi_host::Config)) -> TestHost {
    let entry = remote_entry("far", remote.url(), remote.token_file());
    start_with(|c| {
        c.runtimes.push(entry);
        tweak(c);
    })
    .await
}

async fn json_of(resp: reqwest::Response) -> (u16, Value) {
    let status = resp.status().as_u16();
    (status, resp.json().await.unwrap())
}

/// Polls `GET /runtimes/{id}` until its state is `state`; the description.
async fn wait_state(h: &TestHost, id: &str, state: &str) -> Value {
    tokio::time::timeout(PATIENCE, async {
        loop {
            let (_, body) = json_of(h.get(&format!("/runtimes/{id}")).send().await.unwrap()).await;
            if body["runtime"]["state"] == state {
                return body["runtime"].clone();
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| panic!("runtime {id} turns {state} in time"))
}

async fn create_far(h: &TestHost, name: &str) -> String {
    let resp = h
        .post("/runtimes/far/workers")
        .json(&json!({"name": name, "model": "scripted"}))
        .send()
        .await
        .unwrap();
    let (status, body) = json_of(resp).await;
    assert_eq!(status, 201, "{body}");
    body["worker"]["id"].as_str().unwrap().to_string()
}

async fn input_far(h: &TestHost, worker: &str, text: &str) -> (u16, Value) {
    let resp = h
        .post(&format!("/runtimes/far/workers/{worker}/input"))
        .json(&json!({ "text": text }))
        .send()
        .await
        .unwrap();
    json_of(resp).await
}

fn far_stream(worker: &str, cursor: Option<&str>) -> String {
    match cursor {
        Some(c) => format!("/runtimes/far/workers/{worker}/events/ws?cursor={c}"),
        None => format!("/runtimes/far/workers/{worker}/events/ws"),
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_remote_runtime_serves_like_an_embedded_one_over_one_upstream_stream() {
    let remote = Remote::new(0).await;
    let h = host_fronting(&remote, |_| {}).await;
    let far = wait_state(&h, "far", "ready").await;
    assert_eq!(far["kind"], "remote");
    assert!(far.get("unavailable").is_none(), "{far}");
    // Capabilities are the runtime's own.
    let (_, own) = json_of(
        reqwest::Client::new()
            .get(format!("{}/v1/runtime", remote.url()))
            .bearer_auth(remote.token().trim())
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(far["capabilities"], own["runtime"]["capabilities"]);
    let (_, all) = json_of(h.get("/runtimes").send().await.unwrap()).await;
    let kinds: Vec<&str> = all["runtimes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["kind"].as_str().unwrap())
        .collect();
    assert_eq!(kinds, ["remote", "embedded"], "ordered by id: far, local");

    // Commands through the host.
    let w = create_far(&h, "w").await;
    let mut ws = h.ws(&far_stream(&w, None)).await;
    let snap = ws.frame().await;
    assert_eq!(
        (snap["type"].as_str(), snap["runtime_id"].as_str()),
        (Some("snapshot"), Some("far"))
    );
    let mut all_ws = h.ws("/events/ws").await;
    let all_snap = all_ws.frame().await;
    assert_eq!(all_snap["type"], "snapshot_all");
    let local_w = h.create_worker("near").await;

    let (status, _) = input_far(&h, &w, "hello there").await;
    assert_eq!(status, 202);
    let seen = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(
        seen.iter()
            .all(|f| f["runtime_id"] == "far" && f["worker_id"] == w)
    );
    let after = Cursor::decode(snap["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(
        seqs(&seen),
        remote.log_seqs(&w, after).await,
        "no gap, no duplicate"
    );

    let (status, body) = json_of(
        h.get(&format!("/runtimes/far/workers/{w}/transcript"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(status, 200);
    assert_eq!(body["messages"].as_array().unwrap().len(), 2, "{body}");
    // The runtime's typed refusals pass through.
    let (status, body) = json_of(
        h.post(&format!("/runtimes/far/workers/{w}/cancel"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (409, Some("not_running"))
    );
    let (status, body) = json_of(h.get("/runtimes/far/workers/w_nope").send().await.unwrap()).await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (404, Some("worker_not_found"))
    );

    // The multiplexed stream carries both runtimes, with host cursors.
    h.input(&local_w, "hi").await;
    let mut runtimes_seen = std::collections::BTreeSet::new();
    let mut last = Value::Null;
    while runtimes_seen.len() < 2 || !back_to_idle(&last, &local_w) {
        last = all_ws.frame().await;
        if last["type"] == "event" {
            runtimes_seen.insert(last["runtime_id"].as_str().unwrap().to_string());
            assert!(
                last["cursor"].as_str().unwrap().starts_with("h1~"),
                "{last}"
            );
        }
    }
    assert!(last["cursor"].as_str().unwrap().contains("~far."), "{last}");

    // Many clients, one upstream stream: the runtime serves exactly one.
    let mut clients = Vec::new();
    for i in 0..20 {
        let path = if i % 2 == 0 {
            far_stream(&w, None)
        } else {
            "/events/ws".into()
        };
        let mut c = h.ws(&path).await;
        assert!(
            c.frame().await["type"]
                .as_str()
                .unwrap()
                .starts_with("snapshot")
        );
        clients.push(c);
    }
    let metrics = remote.metrics().await;
    assert_eq!(metric(&metrics, "yoi_streams_open"), Some(1), "{metrics}");
    assert_eq!(
        metric(&metrics, "yoi_streams_opened_total"),
        Some(1),
        "{metrics}"
    );
    let (status, _) = input_far(&h, &w, "again").await;
    assert_eq!(status, 202);
    for c in clients.iter_mut().step_by(2) {
        let got = c.events_until(|f| back_to_idle(f, &w)).await;
        assert!(!got.is_empty());
    }

    // Stop: the worker is stopped for good.
    let (status, body) = json_of(
        h.post(&format!("/runtimes/far/workers/{w}/stop"))
            .send()
            .await
            .unwrap(),
    )
    .await;
    assert_eq!(
        (status, body["worker"]["status"].as_str()),
        (200, Some("stopped"))
    );
    let host_metrics = h.metrics().await;
    assert_eq!(
        metric(
            &host_metrics,
            "yoi_runtime_ready{runtime=\"far\",kind=\"remote\"}"
        ),
        Some(1)
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn a_runtime_restarted_mid_run_resumes_host_streams_without_gap_or_duplicate() {
    let remote = Remote::new(5).await;
    let h = host_fronting(&remote, |_| {}).await;
    wait_state(&h, "far", "ready").await;
    let w = create_far(&h, "w").await;
    let mut ws = h.ws(&far_stream(&w, None)).await;
    let snap = ws.frame().await;
    let mut all_ws = h.ws("/events/ws").await;
    assert_eq!(all_ws.frame().await["type"], "snapshot_all");
    let (status, _) = input_far(&h, &w, "stream 100000").await;
    assert_eq!(status, 202);
    let mut seen = ws
        .events_until(|f| f["event"]["type"] == "text_delta")
        .await;

    let (dir, addr) = remote.stop().await;
    // The host's streams stay open and say why nothing comes.
    let mut diagnostic = Value::Null;
    while diagnostic.is_null() {
        let f = ws.frame().await;
        match f["type"].as_str() {
            Some("event") => seen.push(f),
            Some("diagnostic") => diagnostic = f,
            _ => panic!("unexpected frame {f}"),
        }
    }
    assert_eq!(diagnostic["code"], "runtime_unavailable", "{diagnostic}");
    loop {
        let f = all_ws.frame().await;
        if f["type"] == "diagnostic" {
            assert_eq!(f["code"], "runtime_unavailable");
            break;
        }
    }
    let far = wait_state(&h, "far", "unavailable").await;
    assert!(
        far["unavailable"]["since_ms"].as_u64().unwrap() > 0,
        "{far}"
    );
    assert!(far["unavailable"]["last_error"].is_string(), "{far}");
    let (status, body) = input_far(&h, &w, "while down").await;
    assert_eq!(
        (status, body["error"]["code"].as_str()),
        (503, Some("runtime_unavailable"))
    );
    // The host stays ready and serves its embedded runtime.
    let ready = reqwest::get(format!("http://{}/readyz", h.host().local_addr()))
        .await
        .unwrap();
    assert_eq!(ready.status(), 200);
    let near = h.create_worker("near").await;
    h.input(&near, "hi").await;

    let remote = Remote::start(dir, addr, 5).await;
    // The same connection goes on: the interrupted run ends, nothing missed or repeated.
    let rest = ws.events_until(|f| back_to_idle(f, &w)).await;
    let failed = rest
        .iter()
        .find(|f| f["event"]["type"] == "run_failed")
        .expect("the interrupted run ends as failed");
    assert_eq!(failed["event"]["error"]["code"], "interrupted");
    seen.extend(rest);
    let after = Cursor::decode(snap["cursor"].as_str().unwrap()).unwrap();
    assert_eq!(seqs(&seen), remote.log_seqs(&w, after).await);
    wait_state(&h, "far", "ready").await;
    let (status, _) = input_far(&h, &w, "hello").await;
    assert_eq!(status, 202);
    ws.events_until(|f| back_to_idle(f, &w)).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn old_cursors_are_replayed_from_the_runtime_in_pages() {
    let remote = Remote::new(0).await;
    // History the host never held: made before it started.
    let client = remote.client();
    let spec = serde_json::from_value(json!({"name": "old", "model": "scripted"})).unwrap();
    let w = client.create_worker(&spec).await.unwrap().id;
    let input = serde_json::from_value(json!({"text": "hello"})).unwrap();
    client.send_input(&w, &input).await.unwrap();
    let (_, at) = tokio::time::timeout(PATIENCE, async {
        loop {
            let (snap, at) = client.snapshot(&w).await.unwrap();
            if snap.worker.run_count == 1 && snap.in_flight.is_none() {
                return (snap, at);
            }
            tokio::time::sleep(std::time::Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the run ends in time");
    let h = host_fronting(&remote, |c| c.streams.replay_page = 2.try_into().unwrap()).await;
    wait_state(&h, "far", "ready").await;

    let start = Cursor::new(at.epoch, 0).encode();
    let mut ws = h.ws(&far_stream(&w, Some(&start))).await;
    let replayed = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(
        seqs(&replayed),
        remote.log_seqs(&w, Cursor::new(at.epoch, 0)).await
    );
    assert!(replayed.len() > 2, "more than one page");

    // A host cursor naming the runtime's old position replays it too.
    let mut host_cursor = yoi_protocol::HostCursor::new();
    host_cursor.set("far", Cursor::new(at.epoch, 0));
    host_cursor.set("local", Cursor::new(0, 0));
    let mut all_ws = h
        .ws(&format!("/events/ws?cursor={}", host_cursor.encode()))
        .await;
    let first = all_ws.frame().await;
    // `local`'s part is from another store: told, then a fresh snapshot of everything.
    if first["type"] == "diagnostic" {
        assert_eq!(first["code"], "cursor_unknown", "{first}");
        assert_eq!(all_ws.frame().await["type"], "snapshot_all");
    } else {
        assert_eq!(first["seq"], replayed[0]["seq"], "{first}");
    }

    // Typed outcomes pass through: a cursor of another store, one beyond the log.
    let mut ws = h
        .ws(&far_stream(
            &w,
            Some(&Cursor::new(at.epoch + 1, 0).encode()),
        ))
        .await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("diagnostic"), Some("cursor_unknown"))
    );
    assert_eq!(ws.frame().await["type"], "snapshot");
    let ahead = Cursor::new(at.epoch, at.seq + 1_000).encode();
    let mut ws = h.ws(&far_stream(&w, Some(&ahead))).await;
    let f = ws.frame().await;
    assert_eq!(
        (f["type"].as_str(), f["code"].as_str()),
        (Some("error"), Some("cursor_ahead"))
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn failures_are_typed_and_no_answer_names_the_runtimes_address_or_token() {
    let remote = Remote::new(0).await;
    let wrong = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(wrong.path(), "not-the-token-0123456789").unwrap();
    // A port nothing listens on: bound, then released.
    let gone_addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let entries = [
        remote_entry("refused", remote.url(), wrong.path().to_path_buf()),
        remote_entry("gone", format!("http://{gone_addr}"), remote.token_file()),
    ];
    let h = start_with(|c| c.runtimes.extend(entries)).await;
    let mut received = String::new();

    let refused = wait_state(&h, "refused", "unavailable").await;
    let refused = tokio::time::timeout(PATIENCE, async {
        let mut refused = refused;
        while refused["unavailable"]["last_error"] != "unauthorized" {
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            let (_, body) = json_of(h.get("/runtimes/refused").send().await.unwrap()).await;
            refused = body["runtime"].clone();
        }
        refused
    })
    .await
    .expect("the refused token is reported");
    received.push_str(&refused.to_string());
    let gone = wait_state(&h, "gone", "unavailable").await;
    received.push_str(&gone.to_string());

    for id in ["refused", "gone"] {
        let resp = h
            .post(&format!("/runtimes/{id}/workers"))
            .json(&json!({"name": "w", "model": "scripted"}))
            .send()
            .await
            .unwrap();
        let (status, body) = json_of(resp).await;
        assert_eq!(
            (status, body["error"]["code"].as_str()),
            (503, Some("runtime_unavailable")),
            "{body}"
        );
        received.push_str(&body.to_string());
        let (_, body) = json_of(
            h.get(&format!("/runtimes/{id}/workers/w_1"))
                .send()
                .await
                .unwrap(),
        )
        .await;
        received.push_str(&body.to_string());
        let mut ws = h.ws(&format!("/runtimes/{id}/workers/w_1/events/ws")).await;
        let f = ws.frame().await;
        assert_eq!(
            (f["type"].as_str(), f["code"].as_str()),
            (Some("error"), Some("runtime_unavailable")),
            "{f}"
        );
        received.push_str(&f.to_string());
    }
    let (status, body) = json_of(h.get("/runtimes").send().await.unwrap()).await;
    assert_eq!(status, 200, "the others are still described");
    received.push_str(&body.to_string());
    let metrics = h.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "yoi_runtime_ready{runtime=\"gone\",kind=\"remote\"}"
        ),
        Some(0)
    );
    assert_eq!(
        metric(
            &metrics,
            "yoi_runtime_ready{runtime=\"local\",kind=\"embedded\"}"
        ),
        Some(1)
    );
    received.push_str(&metrics);
    let ready = reqwest::get(format!("http://{}/readyz", h.host().local_addr()))
        .await
        .unwrap();
    assert_eq!(
        ready.status(),
        200,
        "remote runtimes do not make the host unready"
    );

    let secrets = [
        remote.addr.to_string(),
        remote.addr.port().to_string(),
        gone_addr.to_string(),
        gone_addr.port().to_string(),
        remote.token().trim().to_string(),
        "not-the-token".to_string(),
        remote.dir.path().display().to_string(),
    ];
    for secret in secrets {
        assert!(
            !received.contains(&secret),
            "{secret:?} leaked in {received}"
        );
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn a_hundred_clients_of_a_remote_runtime_share_one_upstream_stream() {
    let remote = Remote::new(0).await;
    let h = host_fronting(&remote, |_| {}).await;
    wait_state(&h, "far", "ready").await;
    let w = create_far(&h, "w").await;
    let mut clients = Vec::new();
    for i in 0..100 {
        let path = if i % 2 == 0 {
            far_stream(&w, None)
        } else {
            "/events/ws".into()
        };
        let mut c = h.ws(&path).await;
        let first = c.frame().await;
        assert!(
            first["type"].as_str().unwrap().starts_with("snapshot"),
            "{first}"
        );
        clients.push(c);
    }
    let (status, _) = input_far(&h, &w, "hello").await;
    assert_eq!(status, 202);
    for c in &mut clients {
        let got = c.events_until(|f| back_to_idle(f, &w)).await;
        assert!(got.iter().any(|f| f["event"]["type"] == "run_completed"));
    }
    // The runtime served one stream, ever; the host counts one connection to it.
    let metrics = remote.metrics().await;
    assert_eq!(metric(&metrics, "yoi_streams_open"), Some(1), "{metrics}");
    assert_eq!(
        metric(&metrics, "yoi_streams_opened_total"),
        Some(1),
        "{metrics}"
    );
    let host_metrics = h.metrics().await;
    assert_eq!(
        metric(
            &host_metrics,
            "yoi_remote_upstream_connections_total{runtime=\"far\"}"
        ),
        Some(1),
        "{host_metrics}"
    );
    assert_eq!(metric(&host_metrics, "yoi_streams_open"), Some(100));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_multiplexed_stream_opened_while_a_remote_runtime_is_down_goes_on_when_it_is_back() {
    let remote = Remote::new(0).await;
    // History the host never saw, then the runtime goes down before the host starts.
    let client = remote.client();
    let spec = serde_json::from_value(json!({"name": "old", "model": "scripted"})).unwrap();
    let old = client.create_worker(&spec).await.unwrap().id;
    let (dir, addr) = remote.stop().await;
    let entry = remote_entry(
        "far",
        format!("http://{addr}"),
        dir.path().join("runtime.token"),
    );
    let h = start_with(|c| c.runtimes.push(entry)).await;
    wait_state(&h, "far", "unavailable").await;

    // Opens without a cursor: told that `far` is down, a snapshot of the others.
    let mut all = h.ws("/events/ws").await;
    let told = all.frame().await;
    assert_eq!(
        (told["type"].as_str(), told["code"].as_str()),
        (Some("diagnostic"), Some("runtime_unavailable")),
        "{told}"
    );
    assert!(
        told["message"].as_str().unwrap().contains("runtime far"),
        "{told}"
    );
    let snap = all.frame().await;
    assert_eq!(snap["type"], "snapshot_all", "{snap}");
    let cursor = yoi_protocol::HostCursor::decode(snap["cursor"].as_str().unwrap()).unwrap();
    assert!(cursor.get("local").is_some());
    assert_eq!(cursor.get("far"), None, "no position in far yet");
    // The others go on meanwhile.
    let near = h.create_worker("near").await;
    h.input(&near, "hi").await;
    let local = all.events_until(|f| back_to_idle(f, &near)).await;
    assert!(local.iter().all(|f| f["runtime_id"] == "local"));

    // Back: far's history comes first (from its beginning), then its live events.
    let remote = Remote::start(dir, addr, 0).await;
    wait_state(&h, "far", "ready").await;
    let w = create_far(&h, "w").await;
    let (status, _) = input_far(&h, &w, "hello").await;
    assert_eq!(status, 202);
    let seen = all.events_until(|f| back_to_idle(f, &w)).await;
    let far: Vec<Value> = seen
        .into_iter()
        .filter(|f| f["runtime_id"] == "far")
        .collect();
    assert!(
        far.iter().any(|f| f["worker_id"] == old.as_str()),
        "history from before the host started"
    );
    let last = cursor_of(far.last().unwrap());
    let epoch = yoi_protocol::HostCursor::decode(&last)
        .unwrap()
        .get("far")
        .unwrap()
        .epoch;
    let log: Vec<u64> = remote
        .log_seqs_of(None, Cursor::new(epoch, 0))
        .await
        .into_iter()
        .filter(|&s| s <= far.last().unwrap()["seq"].as_u64().unwrap())
        .collect();
    assert_eq!(seqs(&far), log, "no gap, no duplicate");
}

/// A remote runtime's runtime-wide events (`worker_id: null`: its residency diagnostics,
/// with one resident worker allowed) reach the host's multiplexed stream with the
/// runtime's id, and never a worker stream.
#[tokio::test(flavor = "multi_thread")]
async fn runtime_wide_events_of_a_remote_runtime_reach_only_the_multiplexed_stream() {
    let any = "127.0.0.1:0".parse().unwrap();
    let remote = Remote::start_with(tempfile::tempdir().unwrap(), any, |c| {
        c.runtime.scripted.token_delay_ms = 0;
        c.runtime.core.max_resident_workers = std::num::NonZeroU32::new(1).unwrap();
    })
    .await;
    let h = host_fronting(&remote, |_| {}).await;
    wait_state(&h, "far", "ready").await;
    let a = create_far(&h, "a").await;
    let mut all = h.ws("/events/ws").await;
    assert_eq!(all.frame().await["type"], "snapshot_all");
    let mut one = h.ws(&far_stream(&a, None)).await;
    let snap = one.frame().await;
    assert_eq!(snap["type"], "snapshot");
    let from = Cursor::decode(&cursor_of(&snap)).unwrap();
    // Creating b passivates a; a's input activates it again and passivates b.
    let b = create_far(&h, "b").await;
    let (status, _) = input_far(&h, &a, "hello").await;
    assert_eq!(status, 202);
    let mux = all.events_until(|f| back_to_idle(f, &a)).await;
    let mine = one.events_until(|f| back_to_idle(f, &a)).await;

    let wide = passivation_diagnostics(&mux, "far");
    assert!(wide[2]["event"]["message"].as_str().unwrap().contains(&b));
    // Every event of far, in the runtime's own order, no gap: the same as its log.
    let far: Vec<u64> = mux
        .iter()
        .filter(|f| f["runtime_id"] == "far")
        .map(|f| f["seq"].as_u64().unwrap())
        .collect();
    let log: Vec<u64> = remote
        .log_seqs_of(None, from)
        .await
        .into_iter()
        .filter(|&seq| seq <= *far.last().unwrap())
        .collect();
    assert_eq!(far, log);
    // The worker stream: a's events only, exactly the runtime's.
    assert!(mine.iter().all(|f| f["worker_id"] == a.as_str()));
    assert_eq!(seqs(&mine), remote.log_seqs(&a, from).await);
}

/// Large events of a remote runtime: the host keeps at most `window_bytes` of them (its
/// streams' live buffer refers to the window and keeps no copy). A client that stalls
/// falls behind the window and is `lagged` (close 1013), then resumes from its cursor
/// without a gap (what the window dropped is replayed by the runtime); a client of the
/// same runtime that reads gets every event, in order, with no `lagged`. (Each run waits
/// for the reading client, so nothing here depends on timing.)
#[tokio::test(flavor = "multi_thread")]
async fn large_remote_events_stay_within_window_bytes_and_only_the_stalled_client_lags() {
    const WINDOW: u64 = 4 << 20;
    let any = "127.0.0.1:0".parse().unwrap();
    let remote = Remote::start_with(tempfile::tempdir().unwrap(), any, |c| {
        c.runtime.scripted.token_delay_ms = 0;
        c.runtime.limits.max_input_bytes = 1 << 20;
    })
    .await;
    let mut entry = remote_entry("far", remote.url(), remote.token_file());
    if let SourceConfig::Remote(r) = &mut entry.source {
        r.window_bytes = NonZeroU64::new(WINDOW).unwrap();
    }
    let h = start_with(|c| {
        c.runtimes.push(entry);
        c.streams.write_timeout_ms = 600_000.try_into().unwrap();
    })
    .await;
    wait_state(&h, "far", "ready").await;
    let w = create_far(&h, "w").await;
    let addr = h.host().local_addr();
    let mut stalled =
        connect_small_buffer_to(addr, &h.ws_base, &h.token, &far_stream(&w, None)).await;
    let mut fast = h.ws(&far_stream(&w, None)).await;
    let start = Cursor::decode(&cursor_of(&stalled.frame().await)).unwrap();
    assert_eq!(
        Cursor::decode(&cursor_of(&fast.frame().await)).unwrap(),
        start
    );

    let big = "y".repeat(512 << 10);
    let mut fast_got = Vec::new();
    let window_bytes = "yoi_remote_window_bytes{runtime=\"far\"}";
    let window_events = "yoi_remote_window_events{runtime=\"far\"}";
    for _ in 0..24 {
        let (status, body) = input_far(&h, &w, &big).await;
        assert_eq!(status, 202, "{body}");
        fast_got.extend(seqs(&fast.events_until(|f| back_to_idle(f, &w)).await));
        let held = metric(&h.metrics().await, window_bytes).unwrap();
        assert!(held <= WINDOW, "{held} bytes held");
    }
    let log = remote.log_seqs(&w, start).await;
    assert_eq!(
        fast_got, log,
        "the reading client got every event, in order"
    );
    let held = metric(&h.metrics().await, window_events).unwrap();
    assert!(
        held < log.len() as u64,
        "the window dropped the oldest ({held} held)"
    );

    let (mut got, lagged) = read_until_lagged(&mut stalled).await;
    assert!(got.len() < log.len(), "the stalled client lagged");
    let resume = cursor_of(&lagged);
    assert_eq!(
        Cursor::decode(&resume).unwrap().seq,
        *got.last().unwrap_or(&start.seq)
    );
    let mut again = h.ws(&far_stream(&w, Some(&resume))).await;
    got.extend(read_events_to(&mut again, *log.last().unwrap()).await);
    assert_eq!(got, log, "resumed without a gap or a duplicate");
    let metrics = h.metrics().await;
    assert_eq!(metric(&metrics, "yoi_stream_lagged_closes_total"), Some(1));
    assert_eq!(
        metric(
            &metrics,
            "yoi_remote_upstream_connections_total{runtime=\"far\"}"
        ),
        Some(1),
        "one upstream stream throughout"
    );
}
