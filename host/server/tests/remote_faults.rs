//! A host fronting fake runtimes that misbehave (see `fake_runtime`): every failure of a
//! remote runtime reaches the host's clients as a stable, typed code, and nothing a
//! client receives names the runtime's URL, address, token or token file; a runtime
//! that floods the host or sends garbage costs it bounded memory, ends in typed
//! diagnostics and reconnects, while the host serves its other runtimes.

mod common;
mod fake_runtime;

use std::num::NonZeroU64;
use std::time::Duration;

use common::*;
use fake_runtime::{FakeRuntime, Fault};
use serde_json::{Value, json};
use yoi_host::config::{RemoteConfig, RuntimeConfig, RuntimeId, SourceConfig, TokenSource};

/// The host's idle timeout of upstream streams in these tests (the fakes ping every
/// second).
const STREAM_IDLE_MS: u64 = 3_000;

fn entry(id: &str, fake: &FakeRuntime, request_timeout_ms: u64) -> RuntimeConfig {
    RuntimeConfig {
        id: RuntimeId::parse(id).unwrap(),
        source: SourceConfig::Remote(RemoteConfig {
            url: fake.url(),
            token: TokenSource::File(fake.token_file()),
            connect_timeout_ms: NonZeroU64::new(2_000).unwrap(),
            request_timeout_ms: NonZeroU64::new(request_timeout_ms).unwrap(),
            // Short, for the stalled runtime; the others ping every 5 s.
            stream_idle_timeout_ms: NonZeroU64::new(STREAM_IDLE_MS).unwrap(),
            window_bytes: NonZeroU64::new(128 << 20).unwrap(),
        }),
    }
}

/// Everything a client received, as text.
#[derive(Default)]
struct Received(String);

impl Received {
    async fn json(&mut self, resp: reqwest::Response) -> (u16, Value) {
        let status = resp.status().as_u16();
        let text = resp.text().await.unwrap();
        self.0.push_str(&text);
        self.0.push('\n');
        (status, serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    fn frame(&mut self, frame: &Value) {
        self.0.push_str(&frame.to_string());
        self.0.push('\n');
    }

    /// Frames of `ws` until it closes, or until `done` says stop (inclusive).
    async fn frames_until(&mut self, ws: &mut Ws, mut done: impl FnMut(&Value) -> bool) {
        while let Some(frame) = ws.frame_or_close().await {
            self.frame(&frame);
            if done(&frame) {
                return;
            }
        }
    }
}

/// Polls `GET /runtimes/{id}` until `pred` holds of its description.
async fn wait_runtime(h: &TestHost, id: &str, what: &str, pred: impl Fn(&Value) -> bool) {
    let last = std::sync::Mutex::new(Value::Null);
    tokio::time::timeout(PATIENCE, async {
        loop {
            let resp = h.get(&format!("/runtimes/{id}")).send().await.unwrap();
            let body: Value = resp.json().await.unwrap();
            if pred(&body["runtime"]) {
                return;
            }
            *last.lock().unwrap() = body;
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await
    .unwrap_or_else(|_| {
        panic!(
            "runtime {id}: {what} in time; last {}",
            last.lock().unwrap()
        )
    });
}

fn failed_with(code: &'static str) -> impl Fn(&Value) -> bool {
    move |r: &Value| r["state"] == "unavailable" && r["unavailable"]["last_error"] == code
}

#[tokio::test(flavor = "multi_thread")]
async fn every_fault_is_a_typed_code_and_no_client_byte_names_the_runtime() {
    // (runtime id, fake, request timeout, the host's answer to a command)
    let slow = Duration::from_secs(60);
    let cases = vec![
        (
            "slow",
            FakeRuntime::start(Fault::SlowCommands(slow)).await,
            300,
            (504, "timeout"),
        ),
        (
            "refused",
            FakeRuntime::absent().await,
            5_000,
            (503, "runtime_unavailable"),
        ),
        (
            "reset",
            FakeRuntime::resetting().await,
            5_000,
            (503, "runtime_unavailable"),
        ),
        (
            "unauthorized",
            FakeRuntime::start(Fault::Refuse(401)).await,
            5_000,
            (503, "runtime_unavailable"),
        ),
        (
            "forbidden",
            FakeRuntime::start(Fault::Refuse(403)).await,
            5_000,
            (503, "runtime_unavailable"),
        ),
        (
            "failing",
            FakeRuntime::start(Fault::Refuse(500)).await,
            5_000,
            (503, "runtime_unavailable"),
        ),
        (
            "no-route",
            FakeRuntime::start(Fault::CommandStatus(404)).await,
            5_000,
            (501, "unsupported"),
        ),
        (
            "no-method",
            FakeRuntime::start(Fault::CommandStatus(405)).await,
            5_000,
            (501, "unsupported"),
        ),
        (
            "not-implemented",
            FakeRuntime::start(Fault::CommandStatus(501)).await,
            5_000,
            (501, "unsupported"),
        ),
        (
            "leaky",
            FakeRuntime::start(Fault::LeakyRefusal).await,
            5_000,
            (409, "worker_busy"),
        ),
        (
            "malformed",
            FakeRuntime::start(Fault::MalformedCommands).await,
            5_000,
            (500, "internal"),
        ),
        (
            "endless",
            FakeRuntime::start(Fault::EndlessCommands).await,
            30_000,
            (500, "internal"),
        ),
        (
            "garbage",
            FakeRuntime::start(Fault::GarbageFrame).await,
            5_000,
            (201, ""),
        ),
        (
            "oversized",
            FakeRuntime::start(Fault::OversizedFrame((64 << 20) + 1)).await,
            5_000,
            (201, ""),
        ),
        (
            "sequence",
            FakeRuntime::start(Fault::OutOfSequence).await,
            5_000,
            (201, ""),
        ),
    ];
    let entries: Vec<RuntimeConfig> = cases
        .iter()
        .map(|(id, fake, timeout, _)| entry(id, fake, *timeout))
        .collect();
    let h = start_with(|c| c.runtimes.extend(entries)).await;
    let mut got = Received::default();

    // The state each failure leaves the runtime in.
    wait_runtime(&h, "refused", "refused", failed_with("runtime_unavailable")).await;
    wait_runtime(&h, "reset", "reset", |r| r["state"] == "unavailable").await;
    wait_runtime(&h, "unauthorized", "401", failed_with("unauthorized")).await;
    wait_runtime(&h, "forbidden", "403", failed_with("forbidden")).await;
    wait_runtime(&h, "failing", "5xx", failed_with("internal")).await;
    for id in ["garbage", "oversized", "sequence"] {
        wait_runtime(&h, id, "a bad frame", failed_with("internal")).await;
    }
    for id in [
        "slow",
        "no-route",
        "no-method",
        "not-implemented",
        "leaky",
        "malformed",
        "endless",
    ] {
        wait_runtime(&h, id, "ready", |r| r["state"] == "ready").await;
    }

    // Commands: each failure is its stable code, in the host's words.
    for (id, _, _, (status, code)) in &cases {
        let resp = h
            .post(&format!("/runtimes/{id}/workers"))
            .json(&json!({"name": "w", "model": "scripted"}))
            .send()
            .await
            .unwrap();
        let (got_status, body) = got.json(resp).await;
        assert_eq!(got_status, *status, "{id}: {body}");
        if !code.is_empty() {
            assert_eq!(body["error"]["code"], *code, "{id}: {body}");
            let message = body["error"]["message"].as_str().unwrap();
            assert!(
                message.contains(&format!("runtime {id}")),
                "{id}: {message}"
            );
        }
        for path in ["/workers", "/workers/w_1", "/workers/w_1/transcript", ""] {
            let resp = h
                .get(&format!("/runtimes/{id}{path}"))
                .send()
                .await
                .unwrap();
            got.json(resp).await;
        }
    }

    // Streams: a worker stream of each runtime, until it ends or says the runtime is
    // unavailable; the multiplexed stream, which opens whatever is down.
    for (id, _, _, _) in &cases {
        let mut ws = h.ws(&format!("/runtimes/{id}/workers/w_1/events/ws")).await;
        got.frames_until(&mut ws, |f| f["type"] == "diagnostic")
            .await;
    }
    let mut all = h.ws("/events/ws").await;
    let mut diagnostics = 0;
    got.frames_until(&mut all, |f| {
        if f["type"] == "diagnostic" {
            assert_eq!(f["code"], "runtime_unavailable", "{f}");
            diagnostics += 1;
        }
        f["type"] == "snapshot_all"
    })
    .await;
    assert!(diagnostics >= 5, "the runtimes that are down are told");

    // A runtime answering garbage is dropped and tried again, with a growing delay.
    for (id, fake, _, _) in &cases[12..] {
        tokio::time::timeout(PATIENCE, async {
            while fake.stream_connections() < 3 {
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{id} is reconnected"));
    }
    got.frames_until(&mut all, |f| f["type"] == "diagnostic")
        .await;
    assert!(
        got.0
            .lines()
            .last()
            .is_some_and(|l| l.contains("runtime_unavailable")),
        "a runtime dropped for a bad frame is told as unavailable"
    );

    let (status, body) = got.json(h.get("/runtimes").send().await.unwrap()).await;
    assert_eq!(status, 200);
    assert_eq!(body["runtimes"].as_array().unwrap().len(), cases.len() + 1);
    let metrics = h.metrics().await;
    assert!(
        metric(
            &metrics,
            "yoi_remote_upstream_connections_total{runtime=\"garbage\"}"
        )
        .unwrap()
            >= 3,
        "{metrics}"
    );
    got.0.push_str(&metrics);
    // The host still serves its own runtime.
    let w = h.create_worker("near").await;
    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;

    let received = got.0;
    for (id, fake, _, _) in &cases {
        for secret in fake.secrets() {
            assert!(
                !received.contains(&secret),
                "{id}: {secret:?} reached a client"
            );
        }
    }
    assert!(!received.contains("127.0.0.1"), "no runtime address at all");
    assert!(!received.contains("/srv/yoi"), "no runtime path");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_flooding_runtime_costs_bounded_memory_and_lags_only_its_slow_clients() {
    const EVENTS: u64 = 70_000;
    const WINDOW_EVENTS: u64 = 65_536;
    const WINDOW_BYTES: u64 = 128 << 20;
    let fake = FakeRuntime::start(Fault::Flood {
        events: EVENTS,
        text_bytes: 512,
    })
    .await;
    let flood = entry("flood", &fake, 5_000);
    let h = start_with(|c| {
        c.runtimes.push(flood);
        // The stalled client is lagged, not dropped for writing too slowly.
        c.streams.write_timeout_ms = NonZeroU64::new(600_000).unwrap();
    })
    .await;
    wait_runtime(&h, "flood", "ready", |r| r["state"] == "ready").await;

    // Clients that stop reading once their stream is live.
    let mut stalled = h.ws("/runtimes/flood/workers/w_1/events/ws").await;
    assert_eq!(stalled.frame().await["type"], "snapshot");
    let mut stalled_all = h.ws("/events/ws").await;
    assert_eq!(stalled_all.frame().await["type"], "snapshot_all");

    fake.release();
    let window = "yoi_remote_window_events{runtime=\"flood\"}";
    let bytes = "yoi_remote_window_bytes{runtime=\"flood\"}";
    tokio::time::timeout(PATIENCE, async {
        loop {
            let metrics = h.metrics().await;
            let held = metric(&metrics, window).expect("the window is measured");
            assert!(held <= WINDOW_EVENTS, "{held} events held");
            assert!(metric(&metrics, bytes).unwrap() <= WINDOW_BYTES);
            if held == WINDOW_EVENTS {
                return;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the flood fills the window to its bound");

    // The stalled clients fell behind the live buffer: lagged, with a cursor to resume.
    for ws in [&mut stalled, &mut stalled_all] {
        let mut last = Value::Null;
        while let Some(frame) = ws.frame_or_close().await {
            last = frame;
        }
        assert_eq!(last["type"], "lagged", "{last}");
        assert!(last["cursor"].is_string());
    }
    // A client resuming from the window is served; the upstream never broke.
    let mut fresh = h.ws("/runtimes/flood/workers/w_1/events/ws").await;
    assert_eq!(fresh.frame().await["type"], "snapshot");
    let metrics = h.metrics().await;
    assert_eq!(
        metric(
            &metrics,
            "yoi_remote_upstream_connections_total{runtime=\"flood\"}"
        ),
        Some(1),
        "{metrics}"
    );
    assert_eq!(fake.stream_connections(), 1);
    // The host serves its own runtime meanwhile.
    let w = h.create_worker("near").await;
    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_stalled_runtime_is_dropped_and_reconnected_while_the_host_serves_on() {
    // The runtime's stream goes silent (no events, no pings): after the idle timeout the
    // host calls it unavailable, tells open streams, and connects again.
    let fake = FakeRuntime::start(Fault::Stall).await;
    let stalled = entry("stalled", &fake, 5_000);
    let h = start_with(|c| c.runtimes.push(stalled)).await;
    wait_runtime(&h, "stalled", "ready", |r| r["state"] == "ready").await;
    let mut all = h.ws("/events/ws").await;
    assert_eq!(all.frame().await["type"], "snapshot_all");
    // The diagnostic reaches the open stream, which stays open.
    tokio::time::timeout(PATIENCE, async {
        loop {
            let frame = all.frame().await;
            if frame["type"] == "diagnostic" && frame["code"] == "runtime_unavailable" {
                return;
            }
        }
    })
    .await
    .expect("a runtime_unavailable diagnostic");
    // The host connects again (and again: the fake stalls every time), with backoff.
    let connections = "yoi_remote_upstream_connections_total{runtime=\"stalled\"}";
    tokio::time::timeout(PATIENCE, async {
        while metric(&h.metrics().await, connections).unwrap_or(0) < 2 {
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    })
    .await
    .expect("the host reconnects to a stalled runtime");
    assert!(fake.stream_connections() >= 2);
    // The host serves its own runtime meanwhile.
    let w = h.create_worker("near").await;
    h.input(&w, "hi").await;
    h.wait_idle(&w, 1).await;
}
