//! [`Streams`]: every stream of a server, from the WebSocket upgrade to the close.

use std::sync::Arc;
use std::time::Duration;

use axum::extract::ws::{WebSocket, WebSocketUpgrade};
use axum::response::Response;

use super::driver::{Driver, Timer};
use super::frames::error_frame;
use super::live::LiveEvents;
use super::notices::Notices;
use super::session::{Feed, Scope, Session, SessionConfig, StartCursor, close_code};
use super::slots::{StreamLimits, StreamSlots};
use super::socket::Socket;
use super::source::EventSource;
use super::view::Visibility;
use crate::auth::WS_PROTOCOL;
use crate::error::ServeError;
use crate::metrics::Metrics;
use crate::shutdown::Shutdown;

/// Largest message (and frame) accepted from a client: streams take none, so this only
/// bounds what a misbehaving client makes the server buffer.
const MAX_CLIENT_MESSAGE: usize = 64 * 1024;
/// The socket's read buffer. Clients send only control frames, and tungstenite
/// zero-fills the free part of this buffer on every read attempt, which a stream makes
/// each time it checks the client: at the default 128 KiB that was ~3 % of the host's
/// CPU in the host bench. Larger messages are still read, in several reads.
const READ_BUFFER: usize = 4 * 1024;

/// How a server's streams run.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StreamSettings {
    /// Events per replay page.
    pub replay_page: usize,
    /// Bytes of frames per replay page (at least one frame).
    pub replay_page_bytes: usize,
    /// Pings on idle and busy streams alike, this far apart.
    pub ping_interval: Duration,
    /// A client that accepts nothing for this long is dropped.
    pub write_timeout: Duration,
    pub limits: StreamLimits,
}

/// Every stream of one server: accepts WebSocket upgrades within the stream limits,
/// runs each stream's session, and lets shutdown wait for them. Cheap to clone.
#[derive(Clone)]
pub struct Streams {
    settings: StreamSettings,
    slots: Arc<StreamSlots>,
    metrics: Arc<Metrics>,
    shutdown: Shutdown,
}

impl Streams {
    /// Streams that count themselves in `metrics` and end when `shutdown` fires.
    pub fn new(settings: StreamSettings, metrics: Arc<Metrics>, shutdown: Shutdown) -> Self {
        Streams {
            slots: Arc::new(StreamSlots::new(settings.limits, metrics.clone())),
            settings,
            metrics,
            shutdown,
        }
    }

    /// Accepts `ws` as a stream of `client` (a token or principal name the per-client
    /// limit counts), or refuses it with `429 limit_exceeded` before upgrading. Then runs
    /// `stream` on the socket; the stream counts as open until it returns.
    pub fn accept<F, Fut>(
        &self,
        ws: WebSocketUpgrade,
        client: &str,
        stream: F,
    ) -> Result<Response, ServeError>
    where
        F: FnOnce(WebSocket) -> Fut + Send + 'static,
        Fut: Future<Output = ()> + Send + 'static,
    {
        let slot = self.slots.acquire(client)?;
        let ws = ws
            .max_message_size(MAX_CLIENT_MESSAGE)
            .max_frame_size(MAX_CLIENT_MESSAGE)
            .read_buffer_size(READ_BUFFER)
            .protocols([WS_PROTOCOL]);
        Ok(ws.on_upgrade(move |socket| async move {
            let _slot = slot;
            stream(socket).await;
        }))
    }

    /// Streams `sources` (one for a [`Scope::Worker`] or [`Scope::Runtime`] stream) to
    /// the client on `socket`, from `cursor`, as `view` lets it see them, until the client
    /// goes, falls behind, or the server shuts down.
    pub async fn run<S: EventSource, V: Visibility>(
        &self,
        socket: WebSocket,
        scope: Scope,
        sources: Vec<Arc<S>>,
        cursor: Option<StartCursor>,
        view: V,
    ) {
        // Subscribe first: nothing published from now on is missed.
        let live = LiveEvents::new(sources.iter().map(|s| s.subscribe()).collect());
        let notices = Notices::new(sources.iter().map(|s| s.availability()));
        let feeds = sources
            .iter()
            .map(|s| Feed {
                runtime_id: s.runtime_id().to_string(),
                epoch: s.epoch(),
                frames: s.frames().clone(),
            })
            .collect();
        let config = SessionConfig {
            replay_page: self.settings.replay_page,
            replay_page_bytes: self.settings.replay_page_bytes,
            ping_interval: self.settings.ping_interval,
        };
        let now = tokio::time::Instant::now().into_std();
        let session = Session::new(scope, feeds, cursor, view, config, now);
        Driver {
            socket: Socket::new(socket, self.settings.write_timeout),
            session,
            sources: &sources,
            live,
            notices,
            shutdown: self.shutdown.signal(),
            metrics: &self.metrics,
            timer: Timer::new(),
        }
        .run()
        .await;
    }

    /// Ends a stream that cannot start (a malformed cursor, an unknown worker, ...): the
    /// `error` frame, then the close.
    pub async fn refuse(&self, socket: WebSocket, error: ServeError) {
        let code = close_code(error.code);
        let frame = error_frame(error.code, error.message);
        Socket::new(socket, self.settings.write_timeout)
            .close(Some(frame.into()), Some(code))
            .await;
    }

    /// Streams open now.
    pub fn open(&self) -> usize {
        self.slots.open()
    }

    /// After shutdown: waits until every stream sent its closing frame and closed, or
    /// `grace` passed (then says how many did not).
    pub async fn closed(&self, grace: Duration) {
        if tokio::time::timeout(grace, self.slots.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.open(),
                "streams did not close within the shutdown grace period"
            );
        }
    }
}
