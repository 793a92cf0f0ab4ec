//! Shared set-up for the runtime server's tests: an in-process `yoi-runtime serve` on
//! 127.0.0.1:0 (native core, a scripted model without delays), a REST client and a
//! WebSocket client.
#![allow(dead_code)]

use std::path::Path;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{self, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};
use yoi_runtime_server::{Config, RuntimeServer};

/// Generous guard so a broken test fails instead of hanging; never a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(120);

/// A config for tests: ephemeral port, data in `dir`, a scripted model without delays.
pub fn test_config(dir: &Path) -> Config {
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.to_path_buf()),
        ..Config::default()
    };
    config.runtime.scripted.token_delay_ms = 0;
    config
}

pub struct TestRuntime {
    pub server: Option<RuntimeServer>,
    pub base: String,
    pub ws_base: String,
    pub root: String,
    pub token: String,
    pub http: reqwest::Client,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> TestRuntime {
    start_with(|_| {}).await
}

pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestRuntime {
    start_in(tempfile::tempdir().unwrap(), tweak).await
}

/// Starts a server on `dir` (a restart when an earlier server used it).
pub async fn start_in(dir: tempfile::TempDir, tweak: impl FnOnce(&mut Config)) -> TestRuntime {
    let mut config = test_config(dir.path());
    tweak(&mut config);
    let server = RuntimeServer::start(config).await.expect("server starts");
    tokio::time::timeout(PATIENCE, server.ready())
        .await
        .expect("the runtime opens in time")
        .expect("the runtime opens");
    let addr = server.local_addr();
    TestRuntime {
        base: format!("http://{addr}/v1"),
        ws_base: format!("ws://{addr}/v1"),
        root: format!("http://{addr}"),
        token: server.token().to_string(),
        http: reqwest::Client::new(),
        server: Some(server),
        dir,
    }
}

impl TestRuntime {
    pub fn server(&self) -> &RuntimeServer {
        self.server.as_ref().expect("server running")
    }

    /// Shuts the server down and hands back its data dir (for a restart).
    pub async fn stop(mut self) -> tempfile::TempDir {
        if let Some(server) = self.server.take() {
            server.shutdown().await.expect("clean shutdown");
        }
        self.dir
    }

    /// The runtime's last sequence number.
    pub fn last_seq(&self) -> u64 {
        let runtime = self.server().state().runtime().expect("ready").clone();
        runtime.runtime().events().last_cursor().seq
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

    /// `GET path` answered 200: its JSON.
    pub async fn get_json(&self, path: &str) -> Value {
        let resp = self.get(path).send().await.unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    pub async fn metrics(&self) -> String {
        let resp = self.http.get(format!("{}/metrics", self.root)).send().await;
        resp.unwrap().text().await.unwrap()
    }

    pub async fn create_worker(&self, name: &str) -> String {
        let resp = self
            .post("/workers")
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
            .post(&format!("/workers/{worker}/input"))
            .json(&json!({ "text": text }))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 202, "{:?}", resp.text().await);
        let body: Value = resp.json().await.unwrap();
        body["run_id"].as_str().unwrap().to_string()
    }

    /// Polls until the worker is idle with `runs` runs done.
    pub async fn wait_idle(&self, worker: &str, runs: u64) {
        tokio::time::timeout(PATIENCE, async {
            loop {
                let w = self.get_json(&format!("/workers/{worker}")).await;
                if w["worker"]["status"] == "idle" && w["worker"]["run_count"] == runs {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await
        .expect("the worker finishes its run in time");
    }

    /// Connects a stream (`path` below `/v1`) with the bearer header.
    pub async fn ws(&self, path: &str) -> Ws {
        let mut request = format!("{}{path}", self.ws_base)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        Ws::connect(request).await.expect("connect")
    }
}

/// The error of a REST answer: status, code, message.
pub async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.expect("a typed error body");
    let text = |k: &str| body["error"][k].as_str().unwrap().to_string();
    (status, text("code"), text("message"))
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
    pub async fn connect(
        request: tungstenite::handshake::client::Request,
    ) -> Result<Ws, tungstenite::Error> {
        let connecting = tokio_tungstenite::connect_async(request);
        let (ws, _) = tokio::time::timeout(PATIENCE, connecting)
            .await
            .expect("connect in time")?;
        Ok(Ws { ws })
    }

    /// The next message (pongs skipped).
    pub async fn next_raw(&mut self) -> Got {
        loop {
            let msg = tokio::time::timeout(PATIENCE, self.ws.next())
                .await
                .expect("a message in time");
            return match msg {
                Some(Ok(Message::Text(text))) => {
                    Got::Frame(serde_json::from_str(&text).expect("frames are JSON"))
                }
                Some(Ok(Message::Ping(_))) => Got::Ping,
                Some(Ok(Message::Pong(_))) => continue,
                Some(Ok(Message::Close(frame))) => Got::Closed(frame.map(|f| f.code.into())),
                Some(Ok(other)) => panic!("unexpected message {other:?}"),
                None | Some(Err(_)) => Got::Closed(None),
            };
        }
    }

    /// The next frame, or `None` when the stream closes (pings skipped).
    pub async fn frame_or_close(&mut self) -> Option<Value> {
        loop {
            match self.next_raw().await {
                Got::Frame(v) => return Some(v),
                Got::Ping => continue,
                Got::Closed(_) => return None,
            }
        }
    }

    /// The next frame; panics on close.
    pub async fn frame(&mut self) -> Value {
        self.frame_or_close()
            .await
            .expect("a frame, not the end of the stream")
    }

    /// Asserts the stream closes next (after any pings); the close code.
    pub async fn expect_close(&mut self) -> Option<u16> {
        loop {
            match self.next_raw().await {
                Got::Ping => continue,
                Got::Frame(v) => panic!("expected the stream to close, got {v}"),
                Got::Closed(code) => return code,
            }
        }
    }

    /// Event frames up to and including the one `done` picks.
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
}

/// Whether an event frame is `worker`'s return to idle after a run.
pub fn back_to_idle(frame: &Value, worker: &str) -> bool {
    frame["worker_id"] == worker
        && frame["event"]["type"] == "status_changed"
        && frame["event"]["to"] == "idle"
}

pub fn seqs(frames: &[Value]) -> Vec<u64> {
    frames.iter().map(|f| f["seq"].as_u64().unwrap()).collect()
}

pub fn cursor_of(frame: &Value) -> String {
    frame["cursor"].as_str().expect("a cursor").to_string()
}
