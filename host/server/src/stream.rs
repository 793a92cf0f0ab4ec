//! WebSocket streams: one worker's events, or every runtime's (multiplexed).
//!
//! # Handshake (DESIGN.md, "Event log, cursors, streams")
//!
//! 1. Subscribe to the live broadcast of every runtime the stream covers, *first*.
//! 2. Without a cursor, send a snapshot (`snapshot` for one worker, `snapshot_all` for
//!    the multiplexed stream) taken after subscribing; its cursor is the position it is
//!    consistent with. With a cursor, replay the events after it in pages.
//! 3. Forward live events with `seq` greater than the last replayed (or snapshotted)
//!    position of their runtime: no gap (subscribed before replaying), no duplicate.
//!
//! Cursor outcomes: malformed → `error` frame and close; from another store →
//! `cursor_unknown` diagnostic then a fresh snapshot; older than retained history →
//! `cursor_expired` diagnostic then a fresh snapshot; ahead of the log → `cursor_ahead`
//! error and close. A missing runtime or worker is an error frame and close.
//!
//! # Flow control
//!
//! Each stream is one task that owns its socket (this module's `Session`): handshake,
//! live forwarding, projection and writing. Frames come from the runtime's
//! [`FrameCache`](crate::frames::FrameCache) when every stream of that shape would build
//! the same one. Replay and snapshots are written page by page as the client accepts
//! them (backpressure: history is pulled, never lost). Live events are taken from the
//! runtime's broadcast as they come, a burst at a time, and written in one flush; while
//! a write waits for the client they stay in the broadcast, which is the stream's only
//! buffer (no per-stream queue). A stream that falls further behind than the broadcast
//! holds (`runtimes.log.broadcast_capacity` events) is sent what it has, then a `lagged`
//! frame carrying the cursor of the last event sent, and closed. The client reconnects
//! with that cursor and replays the rest without loss. A slow client therefore never
//! slows the runtime or other clients.
//!
//! The stream pings every `streams.ping_interval_ms` and drops a client that accepts
//! nothing for `streams.write_timeout_ms`. Streams are observation-only: a text or
//! binary message from the client is answered with an `invalid_request` error frame and
//! the stream closes. On shutdown every stream gets an error frame `shutting_down` and a
//! close frame (1001).

use std::sync::Arc;
use std::time::Duration;

use axum::Extension;
use axum::extract::rejection::{PathRejection, QueryRejection};
use axum::extract::ws::rejection::WebSocketUpgradeRejection;
use axum::extract::ws::{CloseFrame, Message, Utf8Bytes, WebSocket, WebSocketUpgrade};
use axum::extract::{Path, Query, State};
use axum::http::HeaderValue;
use axum::response::Response;
use futures_util::stream::{BoxStream, SelectAll};
use futures_util::{FutureExt, SinkExt, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use tokio::sync::{broadcast, watch};
use yoi_protocol::{
    Cursor, Envelope, ErrorCode, Frame, InFlight, Message as ChatMessage, RuntimeWorkerSnapshot,
    WorkerInfo,
};

use crate::auth::{WS_PROTOCOL, WS_TOKEN_PROTOCOL_PREFIX};
use crate::error::HostError;
use crate::frames::{Shape, event_frame};
use crate::projection::{Command, Observed, Principal};
use crate::registry::{ReplayOutcome, RuntimeHandle};
use crate::server::AppState;
use yoi_protocol::HostCursor;

/// Largest message accepted from a client (streams take none; this bounds the buffer).
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// The socket's read buffer. Clients send only control frames, and tungstenite
/// zero-fills the free part of this buffer on every read attempt, which a stream makes
/// each time it checks the client: at the default 128 KiB that was ~3 % of the host's
/// CPU in the host bench. Larger messages are still read, in several reads.
const READ_BUFFER: usize = 4 * 1024;
/// Live envelopes taken per wake-up of a stream and written in one flush (then shutdown,
/// the client and the ping timer are checked again).
const LIVE_BURST: usize = 256;

#[derive(Debug, Deserialize)]
pub struct StreamQuery {
    pub cursor: Option<String>,
}

/// What a stream covers.
#[derive(Debug, Clone)]
pub enum Scope {
    /// One worker of one runtime; cursors are that runtime's [`Cursor`]s.
    Worker {
        runtime_id: String,
        worker_id: String,
    },
    /// Every worker of every runtime; cursors are [`HostCursor`]s.
    All,
}

/// `GET /api/v1/runtimes/{runtime_id}/workers/{worker_id}/events/ws?cursor=`
pub async fn worker_stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    path: Result<Path<(String, String)>, PathRejection>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HostError> {
    let Path((runtime_id, worker_id)) = path?;
    let Query(query) = query?;
    let scope = Scope::Worker {
        runtime_id,
        worker_id,
    };
    Ok(upgrade(state, principal, scope, query.cursor, ws?))
}

/// `GET /api/v1/events/ws?cursor=`
pub async fn all_stream(
    State(state): State<AppState>,
    Extension(principal): Extension<Principal>,
    query: Result<Query<StreamQuery>, QueryRejection>,
    ws: Result<WebSocketUpgrade, WebSocketUpgradeRejection>,
) -> Result<Response, HostError> {
    let Query(query) = query?;
    Ok(upgrade(state, principal, Scope::All, query.cursor, ws?))
}

fn upgrade(
    state: AppState,
    principal: Principal,
    scope: Scope,
    cursor: Option<String>,
    ws: WebSocketUpgrade,
) -> Response {
    let mut ws = ws
        .max_message_size(MAX_CLIENT_MESSAGE)
        .read_buffer_size(READ_BUFFER)
        .protocols([WS_PROTOCOL]);
    if ws.selected_protocol().is_none() {
        // A browser that offered only its token protocol must get one of its offers back.
        let offered = ws
            .requested_protocols()
            .find(|p| {
                p.to_str()
                    .is_ok_and(|p| p.starts_with(WS_TOKEN_PROTOCOL_PREFIX))
            })
            .cloned();
        if let Some(p) = offered.and_then(|p| HeaderValue::from_bytes(p.as_bytes()).ok()) {
            ws.set_selected_protocol(p);
        }
    }
    ws.on_upgrade(move |socket| run(state, principal, scope, cursor, socket))
}

/// How a producer ended.
enum End {
    /// The client went away (or closed); nothing more to send.
    Client,
    /// Send this closing frame, then close with this code.
    Close(String, u16),
    /// The client fell behind: send a `lagged` frame with the current position.
    Lagged,
}

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

fn error_end(code: ErrorCode, message: impl Into<String>) -> End {
    let code_close = if code == ErrorCode::ShuttingDown {
        CLOSE_GOING_AWAY
    } else {
        CLOSE_NORMAL
    };
    End::Close(
        frame_text(&Frame::<Cursor>::Error {
            code,
            message: message.into(),
        }),
        code_close,
    )
}

fn host_error_end(e: HostError) -> End {
    error_end(e.code, e.message)
}

fn shutting_down() -> End {
    error_end(
        ErrorCode::ShuttingDown,
        "the host is shutting down; reconnect later with your last cursor",
    )
}

/// Runs a socket operation unless the host shuts down first.
async fn or_shutdown(
    shutdown: &mut watch::Receiver<bool>,
    op: impl Future<Output = Result<(), End>>,
) -> Result<(), End> {
    tokio::select! {
        biased;
        done = op => done,
        _ = shutdown.wait_for(|s| *s).map(|_| ()) => Err(shutting_down()),
    }
}

/// What a message from the client means for the stream: a ping or pong is fine (the
/// protocol layer queues the pong); data, a close or a broken socket end it.
fn heard(message: Option<Result<Message, axum::Error>>) -> Result<(), End> {
    match message {
        Some(Ok(Message::Ping(_) | Message::Pong(_))) => Ok(()),
        Some(Ok(Message::Text(_) | Message::Binary(_))) => Err(error_end(
            ErrorCode::InvalidRequest,
            "streams are observation-only: send commands over the REST API",
        )),
        Some(Ok(Message::Close(_))) | Some(Err(_)) | None => Err(End::Client),
    }
}

fn frame_text<T: Serialize>(frame: &T) -> String {
    serde_json::to_string(frame).unwrap_or_else(|e| {
        format!(r#"{{"type":"error","code":"internal","message":"cannot encode a frame: {e}"}}"#)
    })
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "snapshot")]
struct SnapshotFrame<'a> {
    cursor: &'a str,
    runtime_id: &'a str,
    worker: &'a WorkerInfo,
    transcript: &'a [ChatMessage],
    in_flight: &'a Option<InFlight>,
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "snapshot_all")]
struct SnapshotAllFrame<'a> {
    cursor: &'a str,
    workers: &'a [RuntimeWorkerSnapshot],
}

#[derive(Serialize)]
#[serde(tag = "type", rename = "lagged")]
struct LaggedFrame<'a> {
    cursor: &'a str,
    message: &'a str,
}

/// One runtime a stream covers and the stream's position in it.
struct Feed {
    handle: Arc<RuntimeHandle>,
    /// Everything of this runtime up to here has been sent or taken to send (or did not concern the
    /// stream).
    pos: Cursor,
    /// The broadcast dropped events for this stream; the next one it yields shows whether
    /// any of them was not sent yet (replay may have covered them).
    skipped: bool,
}

/// One part of the multiplexed stream's cursor, in runtime-id order.
enum Part {
    Feed(usize),
    Carried(String, Cursor),
}

/// A live envelope (or receive error) and the index of its feed.
type Tagged = (usize, Result<Arc<Envelope>, RecvError>);

/// Live envelopes of every feed, merged; each tagged with its feed's index.
enum Live {
    One(broadcast::Receiver<Arc<Envelope>>),
    Many(SelectAll<BoxStream<'static, Tagged>>),
}

impl Live {
    fn new(receivers: Vec<broadcast::Receiver<Arc<Envelope>>>) -> Live {
        if receivers.len() == 1 {
            let rx = receivers.into_iter().next().expect("one receiver");
            return Live::One(rx);
        }
        let streams = receivers.into_iter().enumerate().map(|(i, rx)| {
            futures_util::stream::unfold(rx, move |mut rx| async move {
                let item = rx.recv().await;
                Some(((i, item), rx))
            })
            .boxed()
        });
        Live::Many(futures_util::stream::select_all(streams))
    }

    /// An envelope that is already waiting, if any.
    fn try_next(&mut self) -> Option<Tagged> {
        match self {
            Live::One(rx) => match rx.try_recv() {
                Ok(env) => Some((0, Ok(env))),
                Err(broadcast::error::TryRecvError::Lagged(n)) => {
                    Some((0, Err(RecvError::Lagged(n))))
                }
                Err(broadcast::error::TryRecvError::Closed) => Some((0, Err(RecvError::Closed))),
                Err(broadcast::error::TryRecvError::Empty) => None,
            },
            // Polled once without waiting; the next `next()` registers the real waker.
            Live::Many(all) => all.next().now_or_never().flatten(),
        }
    }

    /// Cancel-safe: nothing is lost when the future is dropped.
    async fn next(&mut self) -> Tagged {
        match self {
            Live::One(rx) => (0, rx.recv().await),
            Live::Many(all) => all.next().await.unwrap_or((0, Err(RecvError::Closed))),
        }
    }
}

/// One stream: its handshake, live forwarding and projection, and its socket.
struct Session {
    state: AppState,
    principal: Principal,
    scope: Scope,
    feeds: Vec<Feed>,
    /// Host-cursor parts of runtimes this host does not serve (kept as they were).
    carried: HostCursor,
    /// The multiplexed cursor's parts in order.
    parts: Vec<Part>,
    socket: Socket,
    /// Frames projected and not yet written (at most a page or a live burst).
    pending: Vec<Utf8Bytes>,
    shutdown: watch::Receiver<bool>,
    page: usize,
}

async fn run(
    state: AppState,
    principal: Principal,
    scope: Scope,
    cursor: Option<String>,
    socket: WebSocket,
) {
    let _guard = state.stream_opened();
    let streams = &state.config().streams;
    let mut session = Session {
        page: streams.replay_page.get(),
        shutdown: state.shutdown_signal(),
        socket: Socket {
            ws: socket,
            write_timeout: Duration::from_millis(streams.write_timeout_ms.get()),
            broken: false,
        },
        state: state.clone(),
        principal,
        scope,
        feeds: Vec::new(),
        carried: HostCursor::new(),
        parts: Vec::new(),
        pending: Vec::new(),
    };
    let ping_every = Duration::from_millis(streams.ping_interval_ms.get());
    let end = session.produce(cursor, ping_every).await;
    let mut closing = match end {
        End::Client => None,
        End::Close(text, code) => Some((text, code)),
        End::Lagged => {
            state.metrics().lagged();
            let cursor = session.cursor_text();
            tracing::debug!(cursor, "stream closed as lagged");
            let text = frame_text(&LaggedFrame {
                cursor: &cursor,
                message: "the client fell behind; reconnect with this cursor to resume without loss",
            });
            Some((text, CLOSE_TRY_AGAIN_LATER))
        }
    };
    // What was taken before the end is still sent (the lagged cursor counts it).
    if !session.pending.is_empty() {
        match session.write_pending().await {
            Ok(()) => {}
            // The host shut down meanwhile: that is the stream's end now.
            Err(End::Close(text, code)) => closing = Some((text, code)),
            Err(_) => return,
        }
    }
    session.socket.close(closing).await;
}

impl Session {
    async fn produce(&mut self, cursor: Option<String>, ping_every: Duration) -> End {
        let started = match self.scope.clone() {
            Scope::Worker {
                runtime_id,
                worker_id,
            } => self.start_worker(&runtime_id, &worker_id, cursor).await,
            Scope::All => self.start_all(cursor).await,
        };
        let mut live = match started {
            Ok(live) => live,
            Err(end) => return end,
        };
        let mut ping =
            tokio::time::interval_at(tokio::time::Instant::now() + ping_every, ping_every);
        ping.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut shutdown = self.shutdown.clone();
        loop {
            tokio::select! {
                biased;
                // (`map` drops the watch guard before any handler awaits.)
                _ = shutdown.wait_for(|s| *s).map(|_| ()) => return shutting_down(),
                message = self.socket.ws.next() => {
                    if let Err(end) = heard(message) {
                        return end;
                    }
                    // A pong to a ping is queued by the protocol layer; send it now.
                    if let Err(end) = or_shutdown(&mut shutdown, self.socket.flush()).await {
                        return end;
                    }
                }
                // Before live events, so steady traffic does not hold pings back.
                _ = ping.tick() => {
                    if let Err(end) = or_shutdown(&mut shutdown, self.socket.ping()).await {
                        return end;
                    }
                }
                (i, item) = live.next() => {
                    if let Err(end) = self.take_live(i, item) {
                        return end;
                    }
                    // Whatever else is already waiting goes out in the same flush.
                    for _ in 0..LIVE_BURST {
                        let Some((i, item)) = live.try_next() else { break };
                        if let Err(end) = self.take_live(i, item) {
                            return end;
                        }
                    }
                    if let Err(end) = self.write_pending().await {
                        return end;
                    }
                }
            }
        }
    }

    fn take_live(&mut self, i: usize, item: Result<Arc<Envelope>, RecvError>) -> Result<(), End> {
        match item {
            Ok(env) => self.forward_live(i, &env),
            Err(RecvError::Lagged(_)) => {
                self.feeds[i].skipped = true;
                Ok(())
            }
            Err(RecvError::Closed) => {
                Err(error_end(ErrorCode::ShuttingDown, "the runtime stopped"))
            }
        }
    }

    /// The stream's resume cursor: a runtime cursor (one worker) or a host cursor (all).
    fn cursor_text(&self) -> String {
        let mut out = String::with_capacity(48);
        self.write_cursor(&mut out);
        out
    }

    /// Appends the resume cursor to `out` (for the multiplexed stream the same text as
    /// [`HostCursor::encode`], built without a map).
    fn write_cursor(&self, out: &mut String) {
        match self.scope {
            Scope::Worker { .. } => {
                if let Some(f) = self.feeds.first() {
                    f.pos.write_to(out);
                }
            }
            Scope::All => {
                out.push_str(HostCursor::PREFIX);
                for part in &self.parts {
                    let (id, cursor) = match part {
                        Part::Feed(i) => (self.feeds[*i].handle.id.as_str(), self.feeds[*i].pos),
                        Part::Carried(id, cursor) => (id.as_str(), *cursor),
                    };
                    HostCursor::write_part(out, id, cursor);
                }
            }
        }
    }

    /// Orders the host-cursor parts by runtime id (call once feeds and carried parts are
    /// known).
    fn order_parts(&mut self) {
        let mut parts: Vec<(String, Part)> = self
            .feeds
            .iter()
            .enumerate()
            .map(|(i, f)| (f.handle.id.clone(), Part::Feed(i)))
            .chain(
                self.carried
                    .iter()
                    .map(|(id, c)| (id.to_string(), Part::Carried(id.to_string(), c))),
            )
            .collect();
        parts.sort_by(|a, b| a.0.cmp(&b.0));
        self.parts = parts.into_iter().map(|(_, p)| p).collect();
    }

    fn worker_filter(&self) -> Option<&str> {
        match &self.scope {
            Scope::Worker { worker_id, .. } => Some(worker_id),
            Scope::All => None,
        }
    }

    /// An event frame at the feed's (already advanced) position.
    fn event_text(&self, i: usize, env: &Envelope, body: &str) -> String {
        let mut cursor = String::with_capacity(48);
        self.write_cursor(&mut cursor);
        event_frame(&cursor, &self.feeds[i].handle.id, env, body)
    }

    /// Projects one event for this stream: `None` when it is not for this client.
    fn project(&self, i: usize, env: &Envelope) -> Option<Utf8Bytes> {
        if let Some(worker) = self.worker_filter()
            && env.worker_id.as_deref() != Some(worker)
        {
            return None;
        }
        let feed = &self.feeds[i];
        match self
            .state
            .projection()
            .observe(&self.principal, &feed.handle.id, env)
        {
            Observed::Allow => {
                // Frames every stream of this shape shares come from the runtime's cache.
                let shape = match self.scope {
                    Scope::Worker { .. } => Some(Shape::Worker),
                    Scope::All if self.parts.len() == 1 => Some(Shape::All),
                    Scope::All => None,
                };
                let frames = feed.handle.frames();
                Some(match shape {
                    Some(shape) => frames.frame(&feed.handle.id, feed.pos.epoch, env, shape),
                    None => self.event_text(i, env, &frames.json(env)).into(),
                })
            }
            Observed::Redact(event) => {
                let body = serde_json::to_string(&event).unwrap_or_else(|e| {
                    format!(r#"{{"type":"diagnostic","level":"error","code":"internal","message":"{e}"}}"#)
                });
                Some(self.event_text(i, env, &body).into())
            }
            Observed::Deny => None,
        }
    }

    /// A live event: projected into the pending frames (written after the burst). After
    /// the broadcast dropped events, a gap between the position and this event means the
    /// client fell behind the live buffer: the stream ends as lagged.
    fn forward_live(&mut self, i: usize, env: &Envelope) -> Result<(), End> {
        let feed = &mut self.feeds[i];
        if std::mem::take(&mut feed.skipped) && env.seq > feed.pos.seq + 1 {
            return Err(End::Lagged);
        }
        if env.seq <= feed.pos.seq {
            return Ok(());
        }
        feed.pos = Cursor::new(feed.pos.epoch, env.seq);
        if let Some(text) = self.project(i, env) {
            self.pending.push(text);
        }
        Ok(())
    }

    /// Writes the pending frames in one flush, waiting for the client (within the write
    /// timeout) unless the host shuts down first. The frames are counted as they are
    /// handed to the socket: counted after the flush, a client could read them and then
    /// scrape `/metrics` before the count moved.
    async fn write_pending(&mut self) -> Result<(), End> {
        self.state.metrics().frames_sent(self.pending.len() as u64);
        or_shutdown(&mut self.shutdown, self.socket.write(&mut self.pending)).await
    }

    /// Handles what the client sent while the stream was not reading the socket (during
    /// the handshake): a close or a data message ends the stream; pings are answered
    /// with the next write.
    fn check_client(&mut self) -> Result<(), End> {
        while let Some(message) = self.socket.ws.next().now_or_never() {
            heard(message)?;
        }
        Ok(())
    }

    /// Writes one frame (snapshots, diagnostics), waiting for the client.
    async fn send(&mut self, text: Utf8Bytes) -> Result<(), End> {
        self.pending.push(text);
        self.write_pending().await
    }

    async fn diagnostic(&mut self, code: ErrorCode, message: String) -> Result<(), End> {
        self.send(frame_text(&Frame::<Cursor>::Diagnostic { code, message }).into())
            .await
    }

    /// Replays feed `i` from `after` to the end of its log, in pages. On success the
    /// feed's position is where live forwarding continues. The outer error ends the
    /// stream; the inner one is a cursor outcome for the caller.
    async fn replay(&mut self, i: usize, after: Cursor) -> Result<Result<(), ReplayOutcome>, End> {
        let handle = self.feeds[i].handle.clone();
        let worker = self.worker_filter().map(str::to_string);
        let mut after = after;
        loop {
            let page = match handle.replay(after, worker.as_deref(), self.page).await {
                Ok(page) => page,
                Err(outcome) => return Ok(Err(outcome)),
            };
            self.feeds[i].pos = after;
            for env in &page.events {
                self.feeds[i].pos = Cursor::new(after.epoch, env.seq);
                if let Some(text) = self.project(i, env) {
                    self.pending.push(text);
                }
            }
            // The page goes out before the position moves past it.
            self.check_client()?;
            self.write_pending().await?;
            self.feeds[i].pos = page.next;
            after = page.next;
            if !page.more {
                return Ok(Ok(()));
            }
        }
    }

    async fn start_worker(
        &mut self,
        runtime_id: &str,
        worker_id: &str,
        cursor: Option<String>,
    ) -> Result<Live, End> {
        let cursor = match cursor.as_deref().map(Cursor::decode) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => return Err(error_end(ErrorCode::CursorMalformed, e.to_string())),
        };
        let registry = self.state.registry().map_err(host_error_end)?;
        let handle = registry.get(runtime_id).map_err(host_error_end)?;
        self.state
            .authorize(
                &self.principal,
                &Command::Observe {
                    runtime: Some(runtime_id),
                    worker: Some(worker_id),
                },
            )
            .map_err(host_error_end)?;
        let info = handle.get_worker(worker_id).await.map_err(host_error_end)?;
        if self
            .state
            .projection()
            .worker(&self.principal, runtime_id, info)
            .is_none()
        {
            return Err(error_end(
                ErrorCode::WorkerNotFound,
                format!("worker {worker_id} not found"),
            ));
        }
        let live = handle.subscribe();
        let epoch = handle.epoch();
        self.feeds.push(Feed {
            handle,
            pos: Cursor::new(epoch, 0),
            skipped: false,
        });
        if let Some(after) = cursor {
            match self.replay(0, after).await? {
                Ok(()) => return Ok(Live::new(vec![live])),
                Err(outcome) => self.recover(outcome).await?,
            }
        }
        self.snapshot_worker(worker_id).await?;
        Ok(Live::new(vec![live]))
    }

    /// After a replay that cannot be served: the diagnostic (the caller then sends a fresh
    /// snapshot), or the end of the stream.
    async fn recover(&mut self, outcome: ReplayOutcome) -> Result<(), End> {
        match outcome {
            ReplayOutcome::Unknown(m) => self.diagnostic(ErrorCode::CursorUnknown, m).await,
            ReplayOutcome::Expired(m) => self.diagnostic(ErrorCode::CursorExpired, m).await,
            ReplayOutcome::Ahead(m) => Err(error_end(ErrorCode::CursorAhead, m)),
            ReplayOutcome::Failed(e) => Err(host_error_end(e)),
        }
    }

    async fn snapshot_worker(&mut self, worker_id: &str) -> Result<(), End> {
        let handle = self.feeds[0].handle.clone();
        let (snapshot, cursor) = handle.snapshot(worker_id).await.map_err(host_error_end)?;
        let Some(snapshot) =
            self.state
                .projection()
                .snapshot(&self.principal, &handle.id, snapshot)
        else {
            return Err(error_end(
                ErrorCode::WorkerNotFound,
                format!("worker {worker_id} not found"),
            ));
        };
        self.feeds[0].pos = cursor;
        let text = frame_text(&SnapshotFrame {
            cursor: &cursor.encode(),
            runtime_id: &handle.id,
            worker: &snapshot.worker,
            transcript: &snapshot.transcript,
            in_flight: &snapshot.in_flight,
        });
        self.send(text.into()).await
    }

    async fn start_all(&mut self, cursor: Option<String>) -> Result<Live, End> {
        let cursor = match cursor.as_deref().map(HostCursor::decode) {
            None => None,
            Some(Ok(c)) => Some(c),
            Some(Err(e)) => return Err(error_end(ErrorCode::CursorMalformed, e.to_string())),
        };
        let registry = self.state.registry().map_err(host_error_end)?;
        self.state
            .authorize(
                &self.principal,
                &Command::Observe {
                    runtime: None,
                    worker: None,
                },
            )
            .map_err(host_error_end)?;
        let mut receivers = Vec::new();
        for handle in registry.all() {
            receivers.push(handle.subscribe());
            self.feeds.push(Feed {
                pos: Cursor::new(handle.epoch(), 0),
                handle: handle.clone(),
                skipped: false,
            });
        }
        let live = Live::new(receivers);
        let Some(cursor) = cursor else {
            self.order_parts();
            self.snapshot_all().await?;
            return Ok(live);
        };
        for (id, c) in cursor.iter() {
            if !self.feeds.iter().any(|f| f.handle.id == id) {
                self.carried.set(id, c);
            }
        }
        self.order_parts();
        // Probe every runtime's part first, so a bad part is reported before anything
        // is replayed.
        let mut diagnostics = Vec::new();
        for i in 0..self.feeds.len() {
            let feed = &self.feeds[i];
            let after = cursor.get(&feed.handle.id).unwrap_or(feed.pos);
            let id = feed.handle.id.clone();
            match feed.handle.replay(after, None, 0).await {
                Ok(_) => self.feeds[i].pos = after,
                Err(ReplayOutcome::Unknown(m)) => {
                    diagnostics.push((ErrorCode::CursorUnknown, format!("runtime {id}: {m}")))
                }
                Err(ReplayOutcome::Expired(m)) => {
                    diagnostics.push((ErrorCode::CursorExpired, format!("runtime {id}: {m}")))
                }
                Err(ReplayOutcome::Ahead(m)) => {
                    return Err(error_end(
                        ErrorCode::CursorAhead,
                        format!("runtime {id}: {m}"),
                    ));
                }
                Err(ReplayOutcome::Failed(e)) => return Err(host_error_end(e)),
            }
        }
        if diagnostics.is_empty() {
            for i in 0..self.feeds.len() {
                let after = self.feeds[i].pos;
                if let Err(outcome) = self.replay(i, after).await? {
                    // History moved under the replay (retention): start over from a
                    // snapshot of everything.
                    self.recover(outcome).await?;
                    self.snapshot_all().await?;
                    break;
                }
            }
            return Ok(live);
        }
        for (code, message) in diagnostics {
            self.diagnostic(code, message).await?;
        }
        self.snapshot_all().await?;
        Ok(live)
    }

    async fn snapshot_all(&mut self) -> Result<(), End> {
        let mut workers = Vec::new();
        for i in 0..self.feeds.len() {
            let handle = self.feeds[i].handle.clone();
            let (snapshots, cursor) = handle.snapshot_all().await.map_err(host_error_end)?;
            self.feeds[i].pos = cursor;
            let projection = self.state.projection();
            workers.extend(
                snapshots
                    .into_iter()
                    .filter_map(|s| projection.snapshot(&self.principal, &handle.id, s))
                    .map(|snapshot| RuntimeWorkerSnapshot {
                        runtime_id: handle.id.clone(),
                        snapshot,
                    }),
            );
        }
        let cursor = self.cursor_text();
        let text = frame_text(&SnapshotAllFrame {
            cursor: &cursor,
            workers: &workers,
        });
        self.send(text.into()).await
    }
}

/// The stream's WebSocket. Every write operation (a frame, a flush, a ping) must make
/// progress within the write timeout; one that fails or times out breaks the socket, and
/// nothing more is sent on it.
struct Socket {
    ws: WebSocket,
    write_timeout: Duration,
    broken: bool,
}

/// Runs one write operation on the socket: at once when the socket takes it (the common
/// case, with no timer and no clock read), else within `timeout`. A failure or a timeout
/// (the client is gone, or accepted nothing for that long) breaks the socket.
async fn timed(
    broken: &mut bool,
    timeout: Duration,
    op: impl Future<Output = Result<(), axum::Error>>,
) -> Result<(), End> {
    let mut op = std::pin::pin!(op);
    let written = match op.as_mut().now_or_never() {
        Some(done) => done.is_ok(),
        None => matches!(tokio::time::timeout(timeout, op).await, Ok(Ok(()))),
    };
    if !written {
        *broken = true;
        return Err(End::Client);
    }
    Ok(())
}

impl Socket {
    /// Writes (and empties) `frames` with one flush.
    async fn write(&mut self, frames: &mut Vec<Utf8Bytes>) -> Result<(), End> {
        if self.broken {
            return Err(End::Client);
        }
        for text in frames.drain(..) {
            let feed = self.ws.feed(Message::Text(text));
            timed(&mut self.broken, self.write_timeout, feed).await?;
        }
        self.flush().await
    }

    async fn flush(&mut self) -> Result<(), End> {
        timed(&mut self.broken, self.write_timeout, self.ws.flush()).await
    }

    async fn ping(&mut self) -> Result<(), End> {
        let ping = self.ws.send(Message::Ping(Default::default()));
        timed(&mut self.broken, self.write_timeout, ping).await
    }

    /// Sends the closing frame (if any) and a close frame, then closes.
    async fn close(mut self, closing: Option<(String, u16)>) {
        if self.broken {
            return;
        }
        let ws = &mut self.ws;
        let _ = tokio::time::timeout(self.write_timeout, async move {
            if let Some((text, code)) = closing {
                ws.send(Message::Text(text.into())).await?;
                ws.send(Message::Close(Some(CloseFrame {
                    code,
                    reason: Utf8Bytes::default(),
                })))
                .await?;
            } else {
                ws.send(Message::Close(None)).await?;
            }
            ws.close().await
        })
        .await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_protocol::{Event, Usage, WorkerStatus};

    #[test]
    fn borrowed_frames_match_the_protocol_frames() {
        let event = Event::TextDelta {
            run_id: "r_1".into(),
            text: "Hel".into(),
        };
        let cursor = Cursor::new(1, 42);
        for worker_id in [Some("w_1"), None, Some("odd \"id\"")] {
            let env = Envelope {
                seq: 42,
                worker_id: worker_id.map(str::to_string),
                at_ms: 7,
                event: event.clone(),
            };
            let body = serde_json::to_string(&event).unwrap();
            let text = event_frame(&cursor.encode(), "local", &env, &body);
            let frame: Frame = serde_json::from_str(&text).unwrap();
            assert_eq!(
                frame,
                Frame::Event {
                    cursor,
                    seq: 42,
                    runtime_id: "local".into(),
                    worker_id: worker_id.map(str::to_string),
                    at_ms: 7,
                    event: event.clone(),
                }
            );
        }

        let worker = WorkerInfo {
            id: "w_1".into(),
            name: "n".into(),
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
        };
        let text = frame_text(&SnapshotFrame {
            cursor: &cursor.encode(),
            runtime_id: "local",
            worker: &worker,
            transcript: &[],
            in_flight: &None,
        });
        let frame: Frame = serde_json::from_str(&text).unwrap();
        assert!(matches!(frame, Frame::Snapshot { cursor: c, .. } if c == cursor));

        let text = frame_text(&LaggedFrame {
            cursor: &cursor.encode(),
            message: "m",
        });
        let frame: Frame = serde_json::from_str(&text).unwrap();
        assert!(matches!(frame, Frame::Lagged { cursor: c, .. } if c == cursor));
    }
}
