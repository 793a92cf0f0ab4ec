//! Shared set-up for the host's socket tests: an in-process host on 127.0.0.1:0 running
//! the built runtime component, a REST client and a WebSocket client.
#![allow(dead_code)]

use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yoi_host::config::{Config, RuntimeConfig, RuntimeSettings};
use yoi_host::{Host, RuntimeHandle};

/// Generous guard so a broken test fails instead of hanging; never a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(120);

pub fn component() -> PathBuf {
    yoi_core::guest_component_path().unwrap_or_else(|e| panic!("{e}"))
}

/// A config for tests: ephemeral port, the built component, a fast scripted model.
pub fn test_config(data_dir: &std::path::Path) -> Config {
    let mut settings = RuntimeSettings::default();
    settings.scripted.token_delay_ms = 0;
    let runtime = RuntimeConfig::embedded("local", settings);
    Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(data_dir.to_path_buf()),
        component: Some(component()),
        runtimes: vec![runtime],
        ..Config::default()
    }
}

/// The settings of the test config's embedded runtime `local`.
pub fn local_settings(c: &mut Config) -> &mut RuntimeSettings {
    c.runtimes[0].settings_mut().expect("local is embedded")
}

/// Lets one input be 1 MiB, to fill socket buffers with few events.
pub fn allow_big_inputs(c: &mut Config) {
    c.max_body_bytes = (4 << 20).try_into().unwrap();
    local_settings(c).limits.max_input_bytes = 2 << 20;
}

// Policy plugins, built by `cargo xtask build-plugins --dev` (`cargo xtask test` runs it
// and exports `YOI_PLUGINS_DIR` and `YOI_TEST_PLUGINS_DIR`). A test whose plugins are not
// built says so on the terminal and returns (skipped).

/// `$env` when set, else `<target>/<folder>`, when it is a folder.
fn built(env: &str, folder: &str) -> Result<PathBuf, String> {
    let dir = match std::env::var_os(env) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("host/server lives two levels below the workspace root");
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"))
                .join(folder)
        }
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "{} is missing: run `cargo xtask build-plugins --dev` (or set {env})",
            dir.display()
        ))
    }
}

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The folder of the example plugins, or `None` (the test is skipped, and says so).
pub fn examples(test: &str) -> Option<PathBuf> {
    built("YOI_PLUGINS_DIR", "plugins")
        .inspect_err(|why| skip(test, why))
        .ok()
}

/// The folder of the test-only plugins, or `None` (the test is skipped, and says so).
pub fn test_plugins(test: &str) -> Option<PathBuf> {
    built("YOI_TEST_PLUGINS_DIR", "plugins-test")
        .inspect_err(|why| skip(test, why))
        .ok()
}

/// A library's file name on this platform (`yoi-policy-read-only` →
/// `libyoi_policy_read_only.so`).
pub fn library(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Copies the library `name` of `from` into the host's plugins folder.
pub fn install(data_dir: &Path, from: &Path, name: &str) {
    let plugins = data_dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(from.join(library(name)), plugins.join(library(name))).unwrap();
}

pub struct TestHost {
    pub host: Option<Host>,
    pub base: String,
    pub ws_base: String,
    pub token: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> TestHost {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let host = Host::start(config).await.expect("host starts");
    tokio::time::timeout(PATIENCE, host.ready())
        .await
        .expect("runtimes load in time")
        .expect("runtimes load");
    let addr = host.local_addr();
    TestHost {
        base: format!("http://{addr}/api/v1"),
        ws_base: format!("ws://{addr}/api/v1"),
        token: host.token().to_string(),
        http: reqwest::Client::new(),
        host: Some(host),
        dir,
    }
}

impl TestHost {
    pub fn host(&self) -> &Host {
        self.host.as_ref().expect("host running")
    }

    /// The `/metrics` page.
    pub async fn metrics(&self) -> String {
        self.http
            .get(format!("http://{}/metrics", self.host().local_addr()))
            .send()
            .await
            .unwrap()
            .text()
            .await
            .unwrap()
    }

    pub fn runtime(&self) -> std::sync::Arc<RuntimeHandle> {
        let registry = self.host().state().registry().expect("ready").clone();
        registry.get("local").expect("local runtime")
    }

    pub fn local(&self) -> yoi_runtime::LocalRuntime {
        let runtime = self.runtime();
        runtime
            .local_runtime()
            .expect("an embedded runtime")
            .clone()
    }

    pub async fn shutdown(&mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await.expect("clean shutdown");
        }
    }

    pub fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub fn delete(&self, path: &str) -> reqwest::RequestBuilder {
        self.http
            .delete(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
    }

    pub async fn create_worker(&self, name: &str) -> String {
        let resp = self
            .post("/runtimes/local/workers")
            .json(&json!({"name": name, "model": "scripted"}))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 201);
        let body: Value = resp.json().await.unwrap();
        body["worker"]["id"].as_str().unwrap().to_string()
    }

    pub async fn input(&self, worker: &str, text: &str) -> String {
        let resp = self
            .post(&format!("/runtimes/local/workers/{worker}/input"))
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
        let body: Value = resp.json().await.unwrap();
        body["run_id"].as_str().unwrap().to_string()
    }

    pub async fn worker(&self, worker: &str) -> Value {
        let resp = self
            .get(&format!("/runtimes/local/workers/{worker}"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let body: Value = resp.json().await.unwrap();
        body["worker"].clone()
    }

    /// Polls until the worker is idle with `runs` runs done.
    pub async fn wait_idle(&self, worker: &str, runs: u64) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let w = self.worker(worker).await;
                if w["status"] == "idle" && w["run_count"].as_u64() == Some(runs) {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the worker finishes its run in time");
    }

    /// Connects a stream with the bearer header; `path` is below `/api/v1`.
    pub async fn ws(&self, path: &str) -> Ws {
        self.ws_as(&self.token, path).await
    }

    /// [`TestHost::ws`] with another client's token.
    pub async fn ws_as(&self, token: &str, path: &str) -> Ws {
        let mut request = format!("{}{path}", self.ws_base)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
        );
        let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("connect");
        Ws { ws }
    }

    pub fn worker_stream(&self, worker: &str, cursor: Option<&str>) -> String {
        match cursor {
            Some(c) => format!("/runtimes/local/workers/{worker}/events/ws?cursor={c}"),
            None => format!("/runtimes/local/workers/{worker}/events/ws"),
        }
    }

    pub fn all_stream(&self, cursor: Option<&str>) -> String {
        match cursor {
            Some(c) => format!("/events/ws?cursor={c}"),
            None => "/events/ws".to_string(),
        }
    }
}

pub struct Ws {
    pub ws: WebSocketStream<MaybeTlsStream<TcpStream>>,
}

/// What a stream gave next.
#[derive(Debug)]
pub enum Got {
    Frame(Value),
    Ping,
    /// A close frame with its code, or the end of the connection.
    Closed(Option<u16>),
}

impl Ws {
    pub async fn next_raw(&mut self) -> Got {
        self.next_raw_by(tokio::time::Instant::now() + PATIENCE)
            .await
    }

    /// The next message before `deadline` (panics after it).
    async fn next_raw_by(&mut self, deadline: tokio::time::Instant) -> Got {
        loop {
            let msg = tokio::time::timeout_at(deadline, self.ws.next())
                .await
                .expect("a frame in time");
            return match msg {
                Some(Ok(Message::Text(text))) => {
                    Got::Frame(serde_json::from_str(&text).expect("frames are JSON"))
                }
                Some(Ok(Message::Ping(_))) => Got::Ping,
                Some(Ok(Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => Got::Closed(frame.map(|f| f.code.into())),
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                None
                | Some(Err(tungstenite::Error::ConnectionClosed))
                | Some(Err(tungstenite::Error::AlreadyClosed)) => Got::Closed(None),
                Some(Err(tungstenite::Error::Protocol(_))) => Got::Closed(None),
                Some(Err(tungstenite::Error::Io(_))) => Got::Closed(None),
                Some(Err(e)) => panic!("stream error {e:?}"),
            };
        }
    }

    /// The next JSON frame (pings skipped, within one `PATIENCE` however many pings
    /// come); panics on close.
    pub async fn frame(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.next_raw_by(deadline).await {
                Got::Frame(v) => return v,
                Got::Ping => continue,
                Got::Closed(code) => panic!("stream closed ({code:?}) while a frame was expected"),
            }
        }
    }

    /// The next frame, or `None` when the stream closes.
    pub async fn frame_or_close(&mut self) -> Option<Value> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.next_raw_by(deadline).await {
                Got::Frame(v) => return Some(v),
                Got::Ping => continue,
                Got::Closed(_) => return None,
            }
        }
    }

    /// Asserts the stream closes next (after any pings).
    pub async fn expect_close(&mut self) -> Option<u16> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            match self.next_raw_by(deadline).await {
                Got::Ping => continue,
                Got::Frame(v) => panic!("expected the stream to close, got {v}"),
                Got::Closed(code) => return code,
            }
        }
    }

    /// Event frames until `done` says stop (inclusive).
    pub async fn events_until(&mut self, mut done: impl FnMut(&Value) -> bool) -> Vec<Value> {
        let mut seen = Vec::new();
        loop {
            let f = self.frame().await;
            assert_eq!(f["type"], "event", "expected an event frame, got {f}");
            let stop = done(&f);
            seen.push(f);
            if stop {
                return seen;
            }
        }
    }

    pub async fn send_text(&mut self, text: &str) {
        self.ws.send(Message::Text(text.into())).await.unwrap();
    }

    pub async fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::Binary(bytes.to_vec().into()))
            .await
            .unwrap();
    }
}

/// The value of the sample `name` (exactly, labels included) on a metrics page: the
/// line `^name value$` with an integer value; `None` when there is no such line.
pub fn metric(page: &str, name: &str) -> Option<u64> {
    page.lines().find_map(|line| {
        let value = line.strip_prefix(name)?.strip_prefix(' ')?;
        value.parse().ok()
    })
}

/// Connects to `path` (below `/api/v1` of `addr`) with a tiny receive buffer, so the
/// server's sends back up quickly.
pub async fn connect_small_buffer_to(
    addr: std::net::SocketAddr,
    ws_base: &str,
    token: &str,
    path: &str,
) -> Ws {
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(addr).await.unwrap();
    let mut request = format!("{ws_base}{path}").into_client_request().unwrap();
    request.headers_mut().insert(
        "authorization",
        HeaderValue::from_str(&format!("Bearer {token}")).unwrap(),
    );
    let (ws, _) = tokio::time::timeout(
        PATIENCE,
        tokio_tungstenite::client_async(request, MaybeTlsStream::Plain(stream)),
    )
    .await
    .expect("connect in time")
    .unwrap();
    Ws { ws }
}

/// [`connect_small_buffer_to`] the test host.
pub async fn connect_small_buffer(h: &TestHost, path: &str) -> Ws {
    connect_small_buffer_to(h.host().local_addr(), &h.ws_base, &h.token, path).await
}

/// Reads event frames up to a `lagged` frame and the close after it (asserted to be
/// 1013, "try again later"): the events' seqs and the lagged frame.
pub async fn read_until_lagged(ws: &mut Ws) -> (Vec<u64>, Value) {
    let mut got = Vec::new();
    let lagged = loop {
        let f = ws.frame().await;
        match f["type"].as_str().unwrap() {
            "event" => got.push(f["seq"].as_u64().unwrap()),
            "lagged" => break f,
            other => panic!("unexpected {other} frame"),
        }
    };
    assert_eq!(
        ws.expect_close().await,
        Some(1013),
        "lagged closes with 1013"
    );
    (got, lagged)
}

/// Reads event frames up to and including seq `last`; returns their seqs.
pub async fn read_events_to(ws: &mut Ws, last: u64) -> Vec<u64> {
    let mut got = Vec::new();
    loop {
        let f = ws.frame().await;
        assert_eq!(f["type"], "event", "{f}");
        let seq = f["seq"].as_u64().unwrap();
        got.push(seq);
        if seq == last {
            return got;
        }
    }
}

/// Whether an event frame ends a run (of any worker, or of `worker`).
pub fn run_ended(frame: &Value, worker: Option<&str>) -> bool {
    let kind = frame["event"]["type"].as_str().unwrap_or("");
    matches!(kind, "run_completed" | "run_failed" | "run_cancelled")
        && worker.is_none_or(|w| frame["worker_id"] == w)
}

/// Whether an event frame is the worker's return to idle after a run.
pub fn back_to_idle(frame: &Value, worker: &str) -> bool {
    frame["worker_id"] == worker
        && frame["event"]["type"] == "status_changed"
        && frame["event"]["to"] == "idle"
}

pub fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

pub fn cursor_of(frame: &Value) -> String {
    frame["cursor"]
        .as_str()
        .expect("frame has a cursor")
        .to_string()
}

/// The runtime-wide frames (`worker_id` null) among `frames`, checked to be the
/// passivate / activate / passivate diagnostics of `runtime`, each with an explicit
/// `null` and a host cursor at its own sequence number.
pub fn passivation_diagnostics<'a>(frames: &'a [Value], runtime: &str) -> Vec<&'a Value> {
    let wide: Vec<&Value> = frames.iter().filter(|f| f["worker_id"].is_null()).collect();
    let codes: Vec<&str> = wide
        .iter()
        .map(|f| f["event"]["code"].as_str().unwrap())
        .collect();
    assert_eq!(
        codes,
        ["worker_passivated", "worker_activated", "worker_passivated"]
    );
    for f in &wide {
        assert_eq!(f.get("worker_id"), Some(&Value::Null), "explicit null: {f}");
        assert_eq!(f["runtime_id"], runtime, "{f}");
        assert_eq!(f["event"]["type"], "diagnostic", "{f}");
        let at = yoi_protocol::HostCursor::decode(&cursor_of(f)).unwrap();
        assert_eq!(at.get(runtime).unwrap().seq, f["seq"].as_u64().unwrap());
    }
    wide
}
