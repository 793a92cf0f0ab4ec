//! The server: shared state, the router, start-up and graceful shutdown.
//!
//! [`Host::start`] binds, writes the access token, and starts serving at once:
//! `/healthz` answers immediately, while the runtimes load in the background
//! (compiling the component and restoring each event log can take a moment);
//! `/readyz` turns 200 and the API stops answering `503 runtime_unavailable` once they
//! are loaded. [`Host::wait`] runs until [`Host::shutdown_trigger`] fires (the binary
//! wires SIGINT and SIGTERM to it), then: stops accepting connections and lets requests
//! in flight finish, sends every stream an error frame `shutting_down` and waits (up to
//! `shutdown_grace_ms`) for streams to flush it, then shuts every runtime down (each
//! commits what it holds to its event store).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use anyhow::Context;
use axum::Router;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderValue, Method, StatusCode, Uri, header};
use axum::middleware;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::serve::ListenerExt;
use tokio::sync::{Notify, watch};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::trace::{DefaultOnFailure, TraceLayer};

use crate::api;
use crate::auth;
use crate::config::Config;
use crate::error::HostError;
use crate::metrics::Metrics;
use crate::projection::{Command, PassThrough, Principal, Projection};
use crate::registry::{RuntimeRegistry, component_path};
use crate::stream;

/// State shared by every handler and stream. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    token: String,
    registry: OnceLock<Arc<RuntimeRegistry>>,
    projection: Arc<dyn Projection>,
    metrics: Metrics,
    shutdown: watch::Sender<bool>,
    streams_open: AtomicUsize,
    streams_idle: Notify,
}

impl AppState {
    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn token(&self) -> &str {
        &self.inner.token
    }

    /// The runtimes, once loaded.
    pub fn registry(&self) -> Result<&Arc<RuntimeRegistry>, HostError> {
        self.inner.registry.get().ok_or_else(HostError::not_ready)
    }

    pub fn projection(&self) -> &dyn Projection {
        &*self.inner.projection
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    /// Asks the policy whether `principal` may run `command`.
    pub fn authorize(&self, principal: &Principal, command: &Command<'_>) -> Result<(), HostError> {
        self.projection()
            .command(principal, command)
            .map_err(HostError::forbidden)
    }

    /// Turns `true` when the host starts shutting down.
    pub fn shutdown_signal(&self) -> watch::Receiver<bool> {
        self.inner.shutdown.subscribe()
    }

    /// Counts an open stream until the guard drops.
    pub(crate) fn stream_opened(&self) -> StreamGuard {
        self.inner.streams_open.fetch_add(1, Ordering::SeqCst);
        self.inner.metrics.stream_opened();
        StreamGuard(self.clone())
    }

    async fn streams_closed(&self) {
        loop {
            let idle = self.inner.streams_idle.notified();
            tokio::pin!(idle);
            idle.as_mut().enable();
            if self.inner.streams_open.load(Ordering::SeqCst) == 0 {
                return;
            }
            idle.await;
        }
    }
}

pub(crate) struct StreamGuard(AppState);

impl Drop for StreamGuard {
    fn drop(&mut self) {
        let inner = &self.0.inner;
        inner.metrics.stream_closed();
        if inner.streams_open.fetch_sub(1, Ordering::SeqCst) == 1 {
            inner.streams_idle.notify_waiters();
        }
    }
}

/// The router: `/api/v1/...` behind the origin check and the token, plus the
/// unauthenticated `/healthz`, `/readyz` and `/metrics`.
pub fn router(state: AppState) -> Router {
    let config = state.config();
    let cors = CorsLayer::new()
        .allow_origin(AllowOrigin::list(
            config
                .allowed_origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.as_str()).ok()),
        ))
        .allow_methods([Method::GET, Method::POST])
        .allow_headers([header::AUTHORIZATION, header::CONTENT_TYPE])
        .max_age(Duration::from_secs(600));
    let worker = "/v1/runtimes/{runtime_id}/workers/{worker_id}";
    let api = Router::new()
        .route("/v1/runtimes", get(api::runtimes::list))
        .route("/v1/runtimes/{runtime_id}", get(api::runtimes::get))
        .route(
            "/v1/runtimes/{runtime_id}/workers",
            get(api::workers::list).post(api::workers::create),
        )
        .route(worker, get(api::workers::get).delete(api::workers::delete))
        .route(&format!("{worker}/input"), post(api::workers::input))
        .route(&format!("{worker}/cancel"), post(api::workers::cancel))
        .route(&format!("{worker}/stop"), post(api::workers::stop))
        .route(
            &format!("{worker}/transcript"),
            get(api::workers::transcript),
        )
        .route(&format!("{worker}/events/ws"), get(stream::worker_stream))
        .route("/v1/events/ws", get(stream::all_stream))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(middleware::from_fn_with_state(
            state.clone(),
            auth::require_token,
        ))
        // Inside CORS, so a browser can read the typed 500 too.
        .layer(CatchPanicLayer::custom(panic_answer as PanicAnswer))
        .layer(cors);
    Router::new()
        .nest("/api", api)
        .route("/healthz", get(healthz))
        .route("/readyz", get(readyz))
        .route("/metrics", get(metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(config.max_body_bytes.get()))
        .layer(
            // Error answers are logged where they are made; 5xx here are expected ones
            // (still loading, shutting down).
            TraceLayer::new_for_http()
                .on_failure(DefaultOnFailure::new().level(tracing::Level::DEBUG)),
        )
        .layer(CatchPanicLayer::custom(panic_answer as PanicAnswer))
        .with_state(state)
}

type PanicAnswer = fn(Box<dyn std::any::Any + Send + 'static>) -> Response;

/// A handler that panicked (a bug) answers a typed `500 internal` instead of dropping the
/// connection; the panic message goes to the log, not to the client.
fn panic_answer(panic: Box<dyn std::any::Any + Send + 'static>) -> Response {
    let message = panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "non-string panic payload".into());
    tracing::error!(panic = %message, "a request handler panicked");
    HostError::internal("the host failed while answering this request (a bug; it is logged)")
        .into_response()
}

async fn not_found(uri: Uri) -> HostError {
    HostError::new(
        yoi_protocol::ErrorCode::NotFound,
        format!("no route {}", uri.path()),
    )
}

async fn method_not_allowed() -> HostError {
    HostError::invalid("this route does not take that method")
        .with_status(StatusCode::METHOD_NOT_ALLOWED)
}

async fn healthz() -> &'static str {
    "ok\n"
}

async fn readyz(State(state): State<AppState>) -> Response {
    match state.registry() {
        Ok(_) => (StatusCode::OK, "ready\n").into_response(),
        Err(e) => e.into_response(),
    }
}

async fn metrics(State(state): State<AppState>) -> Response {
    let registry = state.registry().ok().map(|r| &**r);
    let body = state.metrics().render(registry);
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
        )],
        body,
    )
        .into_response()
}

/// Fires the host's graceful shutdown. Cheap to clone.
#[derive(Clone)]
pub struct ShutdownTrigger(watch::Sender<bool>);

impl ShutdownTrigger {
    pub fn trigger(&self) {
        self.0.send_replace(true);
    }
}

/// Loading state of the runtimes.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Load {
    Loading,
    Ready,
    Failed(String),
}

/// A running host.
pub struct Host {
    addr: SocketAddr,
    state: AppState,
    token_file: PathBuf,
    token_created: bool,
    load: watch::Receiver<Load>,
    server: tokio::task::JoinHandle<std::io::Result<()>>,
    loader: tokio::task::JoinHandle<()>,
}

impl Host {
    /// Checks the config, writes or reads the token, binds and starts serving; the
    /// runtimes load in the background (see [`Host::ready`]).
    pub async fn start(config: Config) -> anyhow::Result<Host> {
        Self::start_with(config, Arc::new(PassThrough)).await
    }

    /// Like [`Host::start`] with another projection policy.
    pub async fn start_with(
        config: Config,
        projection: Arc<dyn Projection>,
    ) -> anyhow::Result<Host> {
        let data_dir = config.resolved_data_dir()?;
        if let Some(queue) = config.streams.unused_queue {
            tracing::warn!(
                queue,
                "streams.queue is no longer used: a stream's queue is its place in the \
                 runtime's live buffer (runtimes.log.broadcast_capacity); remove the key"
            );
        }
        // Fail before binding when a provider cannot be set up (a missing API key, say)
        // or a component is missing: the message says what to fix.
        let models = config.provider_models()?;
        for rc in config.effective_runtimes() {
            component_path(rc.component.as_ref().or(config.component.as_ref()))
                .map_err(anyhow::Error::msg)?;
        }
        std::fs::create_dir_all(&data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let token_file = config.resolved_token_file(&data_dir);
        let (token, token_created) = auth::load_or_create_token(&token_file)
            .with_context(|| format!("access token file {}", token_file.display()))?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;

        let (shutdown, _) = watch::channel(false);
        let state = AppState {
            inner: Arc::new(Inner {
                config,
                token,
                registry: OnceLock::new(),
                projection,
                metrics: Metrics::default(),
                shutdown,
                streams_open: AtomicUsize::new(0),
                streams_idle: Notify::new(),
            }),
        };

        let (load_tx, load) = watch::channel(Load::Loading);
        let loader = {
            let state = state.clone();
            tokio::spawn(async move {
                match RuntimeRegistry::load(state.config(), &data_dir, &models).await {
                    Ok(registry) => {
                        let _ = state.inner.registry.set(Arc::new(registry));
                        load_tx.send_replace(Load::Ready);
                        tracing::info!("ready");
                    }
                    Err(e) => {
                        let message = format!("{e:#}");
                        tracing::error!(error = %message, "loading the runtimes failed");
                        load_tx.send_replace(Load::Failed(message));
                        state.inner.shutdown.send_replace(true);
                    }
                }
            })
        };

        let app = router(state.clone());
        let mut stop = state.shutdown_signal();
        // Streams write many small frames: without TCP_NODELAY a frame written while
        // the previous one is unacknowledged waits for the client's delayed ACK (up to
        // 40 ms on Linux).
        let listener = listener.tap_io(|tcp| {
            if let Err(e) = tcp.set_nodelay(true) {
                tracing::debug!(error = %e, "cannot set TCP_NODELAY on a connection");
            }
        });
        let server = tokio::spawn(async move {
            axum::serve(listener, app)
                .with_graceful_shutdown(async move {
                    let _ = stop.wait_for(|s| *s).await;
                })
                .await
        });
        tracing::info!(%addr, "listening");
        Ok(Host {
            addr,
            state,
            token_file,
            token_created,
            load,
            server,
            loader,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> &str {
        self.state.token()
    }

    pub fn token_file(&self) -> &std::path::Path {
        &self.token_file
    }

    /// Whether this start created the token file.
    pub fn token_created(&self) -> bool {
        self.token_created
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn shutdown_trigger(&self) -> ShutdownTrigger {
        ShutdownTrigger(self.state.inner.shutdown.clone())
    }

    /// Waits until the runtimes are loaded; errs if loading failed.
    pub async fn ready(&self) -> anyhow::Result<Arc<RuntimeRegistry>> {
        let mut load = self.load.clone();
        let state = load
            .wait_for(|l| *l != Load::Loading)
            .await
            .map(|l| l.clone())
            .unwrap_or(Load::Failed("the loader stopped".into()));
        match state {
            Load::Ready => Ok(self.state.registry()?.clone()),
            Load::Failed(message) => Err(anyhow::anyhow!(message)),
            Load::Loading => unreachable!("waited for a change"),
        }
    }

    /// Serves until the shutdown trigger fires, then shuts down gracefully. Errs when the
    /// runtimes could not be loaded or the server failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await;
        // The listener is closed and HTTP requests have finished; streams are closing.
        let grace = Duration::from_millis(self.state.config().shutdown_grace_ms);
        if tokio::time::timeout(grace, self.state.streams_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = self.state.inner.streams_open.load(Ordering::SeqCst),
                "streams did not close within the shutdown grace period"
            );
        }
        let _ = self.loader.await;
        if let Ok(registry) = self.state.registry() {
            registry.shutdown().await;
        }
        if let Load::Failed(message) = &*self.load.borrow() {
            anyhow::bail!("{message}");
        }
        served
            .context("the server task failed")?
            .context("the server failed")?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Triggers the shutdown and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_trigger().trigger();
        self.wait().await
    }
}

/// Returns when SIGINT or SIGTERM arrives.
pub async fn shutdown_signal() {
    let interrupt = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = interrupt => tracing::info!("SIGINT: shutting down"),
        _ = terminate => tracing::info!("SIGTERM: shutting down"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test]
    async fn a_panicking_handler_answers_a_typed_500() {
        async fn boom() -> &'static str {
            panic!("secret detail")
        }
        let app: Router = Router::new()
            .route("/boom", get(boom))
            .layer(CatchPanicLayer::custom(panic_answer as PanicAnswer));
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move { axum::serve(listener, app).await });
        let resp = reqwest::get(format!("http://{addr}/boom")).await.unwrap();
        assert_eq!(resp.status(), 500);
        let body: serde_json::Value = resp.json().await.unwrap();
        assert_eq!(body["error"]["code"], "internal");
        let message = body["error"]["message"].as_str().unwrap();
        assert!(!message.contains("secret detail"), "{message}");
    }
}
