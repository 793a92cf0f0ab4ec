//! A fake `yoi-runtime serve` for the host's remote-runtime fault tests: an in-process
//! axum server on loopback that answers the runtime API like a sound runtime (one
//! worker `w_1`, an idle event stream) except for one [`Fault`], as a broken, hostile or
//! older runtime would. Every wrong answer quotes the fake's own URL, address and token,
//! so a test can check that none of it reaches the host's clients.
#![allow(dead_code)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use axum::Router;
use axum::body::{Body, Bytes};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{Message, WebSocket, WebSocketUpgrade};
use axum::extract::{Query, State};
use axum::http::{Method, StatusCode, Uri};
use axum::response::{IntoResponse, Response};
use serde_json::json;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use yoi_protocol::{
    Capabilities, Cursor, Envelope, Event, Frame, Limits, RuntimeInfo, Usage, WorkerInfo,
    WorkerStatus,
};

/// The fake's event store epoch.
pub const EPOCH: u64 = 0xfa4e;

/// How the fake misbehaves.
#[derive(Debug, Clone)]
pub enum Fault {
    /// None: a sound (idle) runtime.
    None,
    /// Commands (the `/v1/workers…` routes) answer after this long.
    SlowCommands(Duration),
    /// Every route, the stream's upgrade included, answers this status (a refused token:
    /// 401, 403; a failing runtime: 500) with a body quoting the URL and token.
    Refuse(u16),
    /// Commands answer this status with a plain-text body (404, 405, 501: an older
    /// runtime without the route).
    CommandStatus(u16),
    /// Commands answer `409 worker_busy` with a message quoting the URL and token.
    LeakyRefusal,
    /// Commands answer `200` with JSON that does not decode.
    MalformedCommands,
    /// Commands answer `200` with a body that never ends.
    EndlessCommands,
    /// The stream sends its snapshot, then a frame that is not JSON.
    GarbageFrame,
    /// The stream sends its snapshot, then a frame of this many bytes.
    OversizedFrame(usize),
    /// The stream sends its snapshot, then an event with a gap before it.
    OutOfSequence,
    /// The stream sends its snapshot, then, once [`FakeRuntime::release`] was called,
    /// `events` consecutive events (`text_bytes` of text each) as fast as the
    /// connection takes them.
    Flood { events: u64, text_bytes: usize },
    /// The stream sends its snapshot, then nothing at all (no pings), holding the
    /// connection open.
    Stall,
}

struct Inner {
    fault: Fault,
    url: String,
    token: String,
    stream_connections: AtomicU64,
    requests: AtomicU64,
    /// Opened by [`FakeRuntime::release`].
    gate: tokio::sync::Semaphore,
}

/// A running fake runtime.
pub struct FakeRuntime {
    pub addr: SocketAddr,
    pub token: String,
    token_dir: tempfile::TempDir,
    inner: Option<Arc<Inner>>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for FakeRuntime {
    fn drop(&mut self) {
        self.task.abort();
    }
}

fn token_for(port: u16) -> String {
    format!("fake-runtime-token-{port}-0123456789abcdef")
}

impl FakeRuntime {
    /// Serves the runtime API with `fault` on a new loopback port.
    pub async fn start(fault: Fault) -> FakeRuntime {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let token = token_for(addr.port());
        let inner = Arc::new(Inner {
            fault,
            url: format!("http://{addr}"),
            token: token.clone(),
            stream_connections: AtomicU64::new(0),
            requests: AtomicU64::new(0),
            gate: tokio::sync::Semaphore::new(0),
        });
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let task = tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        FakeRuntime::with(addr, token, Some(inner), task)
    }

    /// A "runtime" that accepts connections, starts every answer and resets the
    /// connection in the middle of it.
    pub async fn resetting() -> FakeRuntime {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let task = tokio::spawn(async move {
            while let Ok((mut tcp, _)) = listener.accept().await {
                tokio::spawn(async move {
                    let mut buf = [0u8; 4096];
                    let _ = tcp.read(&mut buf).await;
                    let head = "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\n\
                                content-length: 4096\r\n\r\n{\"worker\":{\"id\":";
                    let _ = tcp.write_all(head.as_bytes()).await;
                    let _ = tcp.flush().await;
                    let _ = tcp.set_zero_linger();
                    drop(tcp);
                });
            }
        });
        FakeRuntime::with(addr, token_for(addr.port()), None, task)
    }

    /// An address nothing listens on (bound, then released): connections are refused.
    pub async fn absent() -> FakeRuntime {
        let addr = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        FakeRuntime::with(addr, token_for(addr.port()), None, tokio::spawn(async {}))
    }

    fn with(
        addr: SocketAddr,
        token: String,
        inner: Option<Arc<Inner>>,
        task: tokio::task::JoinHandle<()>,
    ) -> FakeRuntime {
        let token_dir = tempfile::tempdir().unwrap();
        std::fs::write(token_dir.path().join("runtime.token"), &token).unwrap();
        FakeRuntime {
            addr,
            token,
            token_dir,
            inner,
            task,
        }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn token_file(&self) -> PathBuf {
        self.token_dir.path().join("runtime.token")
    }

    /// Lets a flood start.
    pub fn release(&self) {
        if let Some(inner) = &self.inner {
            inner
                .gate
                .add_permits(tokio::sync::Semaphore::MAX_PERMITS / 2);
        }
    }

    /// Upgrades of its event stream so far.
    pub fn stream_connections(&self) -> u64 {
        self.inner
            .as_ref()
            .map_or(0, |i| i.stream_connections.load(Ordering::SeqCst))
    }

    /// What must never reach a client of the host: the URL, `host:port`, `:port`, the
    /// token and the token file's path.
    pub fn secrets(&self) -> Vec<String> {
        vec![
            self.url(),
            self.addr.to_string(),
            format!(":{}", self.addr.port()),
            self.token.clone(),
            self.token_file().display().to_string(),
            self.token_dir.path().display().to_string(),
        ]
    }
}

fn worker() -> WorkerInfo {
    WorkerInfo {
        id: "w_1".into(),
        name: "w".into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: 8,
        status: WorkerStatus::Idle,
        created_at_ms: 1,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Usage::default(),
        context_tokens: None,
        request_id: None,
    }
}

fn info() -> RuntimeInfo {
    RuntimeInfo {
        id: "fake".into(),
        kind: "native".into(),
        state: "ready".into(),
        workers: 1,
        capabilities: Capabilities {
            models: vec!["scripted".into()],
            tools: vec![],
            limits: Limits::default(),
            streams: vec!["worker".into(), "all".into()],
        },
        unavailable: None,
    }
}

/// An error answer quoting what must not leak.
fn leaky(status: u16, fake: &Inner) -> Response {
    let code = match status {
        401 => "unauthorized",
        403 => "forbidden",
        404 => "not_found",
        _ => "internal",
    };
    let status = StatusCode::from_u16(status).unwrap();
    let body = json!({"error": {
        "code": code,
        "message": format!("at {} with token {} (/srv/yoi/runtime.token)", fake.url, fake.token),
    }});
    (status, axum::Json(body)).into_response()
}

async fn handle(
    State(fake): State<Arc<Inner>>,
    method: Method,
    uri: Uri,
    Query(query): Query<std::collections::HashMap<String, String>>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Response {
    fake.requests.fetch_add(1, Ordering::SeqCst);
    if let Fault::Refuse(status) = fake.fault {
        return leaky(status, &fake);
    }
    let path = uri.path();
    let command = path.starts_with("/v1/workers");
    if command {
        match &fake.fault {
            Fault::SlowCommands(delay) => tokio::time::sleep(*delay).await,
            Fault::CommandStatus(status) => {
                let status = StatusCode::from_u16(*status).unwrap();
                let body = format!("no route {path} on {} (token {})", fake.url, fake.token);
                return (status, body).into_response();
            }
            Fault::LeakyRefusal => {
                let body = json!({"error": {
                    "code": "worker_busy",
                    "message": format!("busy; see {} with {}", fake.url, fake.token),
                }});
                return (StatusCode::CONFLICT, axum::Json(body)).into_response();
            }
            Fault::MalformedCommands => {
                let body = format!("{{\"worker\": {} {}", fake.url, fake.token);
                return (StatusCode::OK, body).into_response();
            }
            Fault::EndlessCommands => {
                let chunk = Bytes::from(vec![b' '; 1 << 20]);
                let chunks = futures_util::stream::repeat_with(move || {
                    Ok::<_, std::io::Error>(chunk.clone())
                });
                return (StatusCode::OK, Body::from_stream(chunks)).into_response();
            }
            _ => {}
        }
    }
    let at = Cursor::new(EPOCH, 0);
    match (method, path) {
        (Method::GET, "/v1/runtime") => axum::Json(json!({ "runtime": info() })).into_response(),
        (Method::GET, "/v1/events/ws") => match ws {
            Ok(ws) => {
                fake.stream_connections.fetch_add(1, Ordering::SeqCst);
                let after = query.get("cursor").and_then(|c| Cursor::decode(c).ok());
                let fake = fake.clone();
                ws.on_upgrade(move |socket| stream(socket, fake, after))
            }
            Err(e) => e.into_response(),
        },
        (Method::GET, "/v1/events") => {
            axum::Json(json!({"events": [], "cursor": at, "more": false})).into_response()
        }
        (Method::GET, "/v1/snapshot") => {
            axum::Json(json!({"cursor": at, "workers": []})).into_response()
        }
        (Method::GET, "/v1/workers") => {
            axum::Json(json!({ "workers": [worker()] })).into_response()
        }
        (Method::POST, "/v1/workers") => (
            StatusCode::CREATED,
            axum::Json(json!({ "worker": worker() })),
        )
            .into_response(),
        (Method::GET, "/v1/workers/w_1") => {
            axum::Json(json!({ "worker": worker() })).into_response()
        }
        (Method::GET, "/v1/workers/w_1/snapshot") => axum::Json(json!({
            "cursor": at, "worker": worker(), "transcript": [], "in_flight": null
        }))
        .into_response(),
        _ => leaky(404, &fake),
    }
}

fn event_text(seq: u64, text: &str) -> String {
    let frame = Frame::Event {
        cursor: Cursor::new(EPOCH, seq),
        seq,
        runtime_id: "fake".into(),
        worker_id: Some("w_1".into()),
        at_ms: seq,
        event: Event::TextDelta {
            run_id: "r_1".into(),
            text: text.into(),
        },
    };
    serde_json::to_string(&frame).unwrap()
}

/// The runtime-wide stream: a snapshot (without a cursor), then the fault.
async fn stream(mut socket: WebSocket, fake: Arc<Inner>, after: Option<Cursor>) {
    let mut last = after.map_or(0, |c| c.seq);
    if after.is_none() {
        let snapshot: Frame<Cursor> = Frame::SnapshotAll {
            cursor: Cursor::new(EPOCH, 0),
            workers: vec![],
        };
        let text = serde_json::to_string(&snapshot).unwrap();
        if socket.send(Message::Text(text.into())).await.is_err() {
            return;
        }
    }
    let bad = match &fake.fault {
        Fault::GarbageFrame => Some(format!("not json at {} {}", fake.url, fake.token)),
        Fault::OversizedFrame(bytes) => Some("x".repeat(*bytes)),
        Fault::OutOfSequence => Some(event_text(last + 5, &fake.url)),
        Fault::Flood { events, text_bytes } => {
            let _open = fake.gate.acquire().await;
            let text = "f".repeat(*text_bytes);
            for _ in 0..*events {
                last += 1;
                let frame = event_text(last, &text);
                if socket.send(Message::Text(frame.into())).await.is_err() {
                    return;
                }
            }
            None
        }
        _ => None,
    };
    if let Some(text) = bad {
        let _ = socket.send(Message::Text(text.into())).await;
    }
    if matches!(fake.fault, Fault::Stall) {
        // Read (so a close is noticed) and never send.
        while let Some(Ok(_)) = socket.recv().await {}
        return;
    }
    // Hold the connection, pinging like a runtime does (every second here, so hosts in
    // tests can use a short idle timeout), until the host closes it.
    let mut ping = tokio::time::interval(Duration::from_secs(1));
    loop {
        tokio::select! {
            _ = ping.tick() => {
                if socket.send(Message::Ping(Bytes::new())).await.is_err() {
                    return;
                }
            }
            message = socket.recv() => {
                if !matches!(message, Some(Ok(_))) {
                    return;
                }
            }
        }
    }
}

/// A frame of `Envelope`s is what the host keeps; kept here so the type is used.
pub fn envelope_size(seq: u64, text_bytes: usize) -> u64 {
    yoi_protocol::size::envelope(&Envelope {
        seq,
        worker_id: Some("w_1".into()),
        at_ms: seq,
        event: Event::TextDelta {
            run_id: "r_1".into(),
            text: "f".repeat(text_bytes),
        },
    })
}
