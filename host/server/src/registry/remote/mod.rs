//! Remote runtimes: a `yoi-runtime serve` reached over the runtime API with
//! [`yoi_client`].
//!
//! - **Commands** go over REST, one call each, bounded by the runtime's
//!   `connect_timeout_ms` / `request_timeout_ms`.
//! - **Events**: one upstream runtime-wide stream per remote runtime, whatever the
//!   number of the host's clients ([`follow`]), feeding a bounded window of recent
//!   envelopes and a live broadcast, exactly like an embedded runtime's log feeds the
//!   host's streams. A replay the window cannot answer (an older cursor) is a replay
//!   page of the runtime (`GET /v1/events`), page by page, with its typed cursor
//!   outcomes; snapshots come from the runtime's snapshot endpoints with the cursor
//!   they are consistent with. Until the upstream stream delivered its first snapshot
//!   the runtime answers `runtime_unavailable` to streams, so no stream can start
//!   before the window does (no gap between a client's position and the broadcast).
//! - **State**: `ready` while the upstream stream is connected, else `unavailable`
//!   (since when, and the code of the last failure). Open streams get one
//!   `runtime_unavailable` diagnostic per outage and go on when the upstream resumes.
//! - **Secrets**: the URL and token live in the client only; every error the host
//!   answers or logs is written by [`errors`] and names the runtime by id.

mod errors;
mod follow;
mod window;

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use tokio::sync::watch;
use yoi_client::{ClientError, ClientOptions, RuntimeClient};
use yoi_eventlog::ReplayPage;
use yoi_protocol::{
    Capabilities, Cursor, ErrorCode, Input, Limits, Message, Unavailable, WorkerInfo,
    WorkerSnapshot, WorkerSpec,
};
use yoi_serving::{Availability, FrameCache, ReplayOutcome, ServeError, Subscription};

use crate::config::{RemoteConfig, TokenSource};
use errors::upstream_error;
use window::Upstream;

/// Recent envelopes a remote runtime's window holds (older cursors are replayed from
/// the runtime).
const WINDOW_EVENTS: usize = 65_536;
/// Largest frame (and message) read from the runtime's stream (its first snapshot holds
/// every worker); a larger one ends the connection as a bad answer.
const UPSTREAM_MAX_FRAME: usize = 64 << 20;
/// Largest REST answer read from the runtime (a snapshot of every worker is the largest).
const MAX_ANSWER_BYTES: usize = 64 << 20;
/// Slots of the live broadcast: a slow stream further behind is `lagged`. The slots hold
/// weak references (the window owns the events, bounded in bytes by `window_bytes`).
const LIVE_EVENTS: usize = 16_384;

/// What the host holds of a remote runtime (see [`RemoteSource::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct RemoteStats {
    /// Events in the window, and their estimated bytes.
    pub window_events: usize,
    pub window_bytes: u64,
    /// Connections of the one upstream stream made so far (reconnections included).
    pub upstream_connections: u64,
}

/// A remote runtime as a stream source and command target.
pub struct RemoteSource {
    client: RuntimeClient,
    /// What the runtime's own messages must not carry to clients (see [`Scrub`]).
    scrub: Scrub,
    frames: Arc<FrameCache>,
    shared: Arc<Shared>,
    follower: tokio::task::JoinHandle<()>,
}

/// What the upstream task and the source share.
pub(super) struct Shared {
    id: String,
    upstream: Mutex<Upstream>,
    /// The runtime's event store epoch (`0` until known).
    epoch: AtomicU64,
    /// Connections of the upstream stream made so far.
    connections: AtomicU64,
    state: Mutex<State>,
    availability: watch::Sender<Availability>,
}

struct State {
    unavailable: Option<Unavailable>,
    capabilities: Option<Capabilities>,
}

impl Shared {
    fn upstream(&self) -> MutexGuard<'_, Upstream> {
        self.upstream.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn state(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn set_epoch(&self, epoch: u64) {
        self.epoch.store(epoch, Ordering::Release);
    }

    fn connected(&self) {
        self.connections.fetch_add(1, Ordering::Relaxed);
    }

    fn set_capabilities(&self, capabilities: Option<Capabilities>) {
        if capabilities.is_some() {
            self.state().capabilities = capabilities;
        }
    }

    fn set_ready(&self) {
        if self.state().unavailable.take().is_some() {
            tracing::info!(runtime = %self.id, "remote runtime ready");
        }
        self.availability.send_if_modified(|now| {
            let changed = *now != Availability::Ready;
            *now = Availability::Ready;
            changed
        });
    }

    fn set_unavailable(&self, code: ErrorCode, why: String) {
        let mut state = self.state();
        match &mut state.unavailable {
            Some(u) => u.last_error = code,
            None => {
                tracing::warn!(runtime = %self.id, %code, "remote runtime unavailable");
                state.unavailable = Some(Unavailable {
                    since_ms: now_ms(),
                    last_error: code,
                });
            }
        }
        self.availability.send_if_modified(|now| {
            let was_ready = *now == Availability::Ready;
            *now = Availability::Unavailable(why);
            was_ready
        });
    }
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

impl RemoteSource {
    /// Connects to nothing yet: builds the client (reading the token) and starts the
    /// upstream task, which keeps trying until the runtime answers. Errors name the
    /// runtime and the key at fault, never the URL or token.
    pub fn start(id: &str, config: &RemoteConfig) -> anyhow::Result<Self> {
        let token = read_token(id, &config.token)?;
        let defaults = ClientOptions::default();
        let options = ClientOptions {
            connect_timeout: Duration::from_millis(config.connect_timeout_ms.get()),
            request_timeout: Duration::from_millis(config.request_timeout_ms.get()),
            max_response_bytes: MAX_ANSWER_BYTES,
            stream: yoi_client::StreamOptions {
                max_frame_bytes: UPSTREAM_MAX_FRAME,
                idle_timeout: Duration::from_millis(config.stream_idle_timeout_ms.get()),
                ..defaults.stream
            },
        };
        let client = RuntimeClient::with_options(&config.url, &token, options)
            .map_err(|_| anyhow::anyhow!("runtime {id}: `url` is not a usable http://host:port"))?;
        let shared = Arc::new(Shared {
            id: id.to_string(),
            upstream: Mutex::new(Upstream::new(
                WINDOW_EVENTS,
                config.window_bytes.get(),
                LIVE_EVENTS,
            )),
            epoch: AtomicU64::new(0),
            connections: AtomicU64::new(0),
            state: Mutex::new(State {
                unavailable: Some(Unavailable {
                    since_ms: now_ms(),
                    last_error: ErrorCode::RuntimeUnavailable,
                }),
                capabilities: None,
            }),
            availability: watch::Sender::new(Availability::Unavailable(format!(
                "runtime {id} is not connected yet"
            ))),
        });
        let follower = tokio::spawn(follow::follow(shared.clone(), client.clone()));
        Ok(RemoteSource {
            client,
            scrub: Scrub::new(&config.url, &token, &config.token),
            frames: Arc::default(),
            shared,
            follower,
        })
    }

    pub fn id(&self) -> &str {
        &self.shared.id
    }

    /// Why the runtime is unavailable, since when; `None` when ready.
    pub fn unavailable(&self) -> Option<Unavailable> {
        self.shared.state().unavailable.clone()
    }

    /// What the runtime said it offers when last connected (nothing before that).
    pub fn capabilities(&self) -> Capabilities {
        self.shared
            .state()
            .capabilities
            .clone()
            .unwrap_or(Capabilities {
                models: vec![],
                tools: vec![],
                limits: Limits::default(),
                streams: vec![],
            })
    }

    /// The last sequence number the host holds.
    pub fn last_seq(&self) -> u64 {
        self.shared.upstream().last_seq()
    }

    /// What the host holds of the runtime, for `/metrics`.
    pub fn stats(&self) -> RemoteStats {
        let (window_events, window_bytes) = self.shared.upstream().held();
        RemoteStats {
            window_events,
            window_bytes,
            upstream_connections: self.shared.connections.load(Ordering::Relaxed),
        }
    }

    fn fail(&self, e: ClientError) -> ServeError {
        let mut answer = upstream_error(self.id(), &e);
        answer.message = self.scrub.message(self.id(), answer.code, answer.message);
        answer
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, ServeError> {
        self.client.workers().await.map_err(|e| self.fail(e))
    }

    pub async fn create_worker(&self, spec: WorkerSpec) -> Result<WorkerInfo, ServeError> {
        self.client
            .create_worker(&spec)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, ServeError> {
        self.client
            .worker(worker_id)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn send_input(&self, worker_id: &str, input: Input) -> Result<String, ServeError> {
        self.client
            .send_input(worker_id, &input)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn cancel(&self, worker_id: &str) -> Result<String, ServeError> {
        self.client
            .cancel(worker_id)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn stop(&self, worker_id: &str) -> Result<WorkerInfo, ServeError> {
        self.client.stop(worker_id).await.map_err(|e| self.fail(e))
    }

    pub async fn delete_worker(&self, worker_id: &str) -> Result<(), ServeError> {
        self.client
            .delete_worker(worker_id)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, ServeError> {
        self.client
            .transcript(worker_id)
            .await
            .map_err(|e| self.fail(e))
    }

    /// Stops following the runtime (the runtime itself runs on).
    pub fn shutdown(&self) {
        self.follower.abort();
    }

    /// Streams start only once the window has (see the module docs).
    fn started(&self) -> Result<(), ServeError> {
        match self.shared.upstream().epoch() {
            Some(_) => Ok(()),
            None => Err(ServeError::new(
                ErrorCode::RuntimeUnavailable,
                format!(
                    "runtime {} is not connected yet; try again later",
                    self.id()
                ),
            )),
        }
    }

    // The stream source (called by the registry's `EventSource` impl).

    pub fn epoch(&self) -> u64 {
        self.shared.epoch.load(Ordering::Acquire)
    }

    pub fn frames(&self) -> &Arc<FrameCache> {
        &self.frames
    }

    /// Weak references to what the window holds (see [`Subscription::Weak`]).
    pub fn subscribe(&self) -> Subscription {
        self.shared.upstream().subscribe().into()
    }

    pub fn availability(&self) -> watch::Receiver<Availability> {
        self.shared.availability.subscribe()
    }

    pub async fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayOutcome> {
        self.started().map_err(ReplayOutcome::Failed)?;
        if let Some(page) = self.shared.upstream().replay(after, worker, limit) {
            return Ok(page);
        }
        let page = self
            .client
            .events(Some(after), worker, Some(limit))
            .await
            .map_err(|e| match e.code() {
                code @ ErrorCode::CursorUnknown => {
                    ReplayOutcome::Unknown(self.scrub.message(self.id(), code, message_of(e)))
                }
                code @ ErrorCode::CursorExpired => {
                    ReplayOutcome::Expired(self.scrub.message(self.id(), code, message_of(e)))
                }
                code @ ErrorCode::CursorAhead => {
                    ReplayOutcome::Ahead(self.scrub.message(self.id(), code, message_of(e)))
                }
                _ => ReplayOutcome::Failed(self.fail(e)),
            })?;
        Ok(ReplayPage {
            events: page.events.into_iter().map(Arc::new).collect(),
            next: page.cursor,
            more: page.more,
        })
    }

    pub async fn snapshot(&self, worker_id: &str) -> Result<(WorkerSnapshot, Cursor), ServeError> {
        self.started()?;
        self.client
            .snapshot(worker_id)
            .await
            .map_err(|e| self.fail(e))
    }

    pub async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), ServeError> {
        self.started()?;
        self.client.snapshot_all().await.map_err(|e| self.fail(e))
    }
}

impl Drop for RemoteSource {
    fn drop(&mut self) {
        self.follower.abort();
    }
}

/// Longest message of the runtime's own that is passed to clients.
const MAX_PASSED_MESSAGE: usize = 1024;

/// The runtime's own messages reach clients (its typed refusals, `worker_busy` and the
/// like) unless they quote its URL, address, token or token file, or are long: then
/// the host says it in its own words.
struct Scrub(Vec<String>);

impl Scrub {
    fn new(url: &str, token: &str, source: &TokenSource) -> Self {
        let authority = url
            .split_once("://")
            .map_or(url, |(_, rest)| rest)
            .split('/')
            .next()
            .unwrap_or_default();
        let host = authority
            .rsplit_once(':')
            .map_or(authority, |(host, _)| host);
        let mut secrets = vec![url.to_string(), authority.to_string(), token.to_string()];
        if !matches!(host, "" | "localhost") {
            secrets.push(host.to_string());
        }
        if let TokenSource::File(path) = source {
            secrets.push(path.display().to_string());
        }
        secrets.retain(|s| !s.is_empty());
        Scrub(secrets)
    }

    fn message(&self, id: &str, code: ErrorCode, message: String) -> String {
        let quotes = |m: &str| self.0.iter().any(|s| m.contains(s.as_str()));
        if message.len() > MAX_PASSED_MESSAGE || quotes(&message) {
            format!("runtime {id} refused the request ({code})")
        } else {
            message
        }
    }
}

/// The runtime's own message of a typed cursor outcome (it names cursors only).
fn message_of(e: ClientError) -> String {
    match e {
        ClientError::Http { message, .. } | ClientError::Stream { message, .. } => message,
        other => other.code().to_string(),
    }
}

/// The token of a remote runtime, from its file or variable (surrounding whitespace
/// dropped). Errors name the file or variable, never the token.
fn read_token(id: &str, source: &TokenSource) -> anyhow::Result<String> {
    let token = match source {
        TokenSource::File(path) => std::fs::read_to_string(path).map_err(|e| {
            anyhow::anyhow!(
                "runtime {id}: cannot read its token_file {}: {e}",
                path.display()
            )
        })?,
        TokenSource::Env(var) => std::env::var(var)
            .map_err(|_| anyhow::anyhow!("runtime {id}: token_env {var} is not set"))?,
    };
    let token = token.trim();
    if token.is_empty() {
        anyhow::bail!("runtime {id}: its token is empty");
    }
    Ok(token.to_string())
}
