//! [`RuntimeServer`]: start-up and graceful shutdown of `yoi-runtime serve`.
//!
//! [`RuntimeServer::start`] binds, writes the access token and serves at once:
//! `/healthz` answers immediately while the runtime opens in the background (restoring
//! its event log, compiling a component); `/readyz` turns 200 and the API stops answering
//! `503 runtime_unavailable` once it is open. [`RuntimeServer::wait`] runs until the
//! shutdown fires (the binary wires SIGINT and SIGTERM to it), then stops accepting
//! connections, lets requests in flight finish, sends every stream a `shutting_down`
//! error frame, waits (up to `shutdown_grace_ms`) for them to close, and shuts the
//! runtime down (it commits what it holds to its event store).

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use yoi_driver::ModelCatalog;
use yoi_serving::{Authenticator, Endpoint, LocalSource, Shutdown};

use crate::config::Config;
use crate::core::CoreChoice;
use crate::router::router;
use crate::state::AppState;

/// A running runtime server.
pub struct RuntimeServer {
    addr: SocketAddr,
    state: AppState,
    token_file: PathBuf,
    token_created: bool,
    server: tokio::task::JoinHandle<()>,
    opener: tokio::task::JoinHandle<()>,
}

impl RuntimeServer {
    /// Checks the config, writes or reads the token, binds and starts serving; the
    /// runtime opens in the background (see [`RuntimeServer::ready`]).
    pub async fn start(config: Config) -> anyhow::Result<RuntimeServer> {
        let data_dir = config.resolved_data_dir()?;
        config.streams.warn_deprecated();
        // Fail before binding when a provider cannot be set up (a missing API key, say)
        // or the component is missing: the message says what to fix.
        let models = config.provider_models()?;
        let core = CoreChoice::new(config.component.as_deref()).map_err(anyhow::Error::msg)?;
        let token_file = config.resolved_token_file(&data_dir);
        let endpoint = Endpoint::open(&data_dir, token_file, config.bind).await?;
        let auth = Authenticator::new(
            endpoint.token,
            "in the file runtime.token in the runtime's data directory",
        );
        let state = AppState::new(config, core, auth);
        let opener = tokio::spawn(open_runtime(state.clone(), models, data_dir));
        let config = state.config();
        let server = tokio::spawn(yoi_serving::serve(
            endpoint.listener,
            router(state.clone()),
            config.http.limits(),
            state.shutdown().signal(),
            Duration::from_millis(config.shutdown_grace_ms),
        ));
        tracing::info!(addr = %endpoint.addr, core = state.core().kind(), "listening");
        Ok(RuntimeServer {
            addr: endpoint.addr,
            state,
            token_file: endpoint.token_file,
            token_created: endpoint.token_created,
            server,
            opener,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn token(&self) -> &str {
        self.state.auth().token().expose()
    }

    pub fn token_file(&self) -> &Path {
        &self.token_file
    }

    /// Whether this start created the token file.
    pub fn token_created(&self) -> bool {
        self.token_created
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    pub fn shutdown_trigger(&self) -> Shutdown {
        self.state.shutdown().clone()
    }

    /// Waits until the runtime is open; errs if opening failed.
    pub async fn ready(&self) -> anyhow::Result<Arc<LocalSource>> {
        let runtime = self.state.loading().ready().await;
        runtime.cloned().map_err(anyhow::Error::msg)
    }

    /// Serves until the shutdown fires, then shuts down gracefully. Errs when the
    /// runtime could not be opened or the server failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await;
        let grace = Duration::from_millis(self.state.config().shutdown_grace_ms);
        self.state.streams().closed(grace).await;
        let _ = self.opener.await;
        if let Ok(runtime) = self.state.runtime() {
            runtime.runtime().shutdown().await;
        }
        if let Some(message) = self.state.loading().failure() {
            anyhow::bail!("{message}");
        }
        if served.is_err() {
            anyhow::bail!("the server task failed");
        }
        tracing::info!("stopped");
        Ok(())
    }

    /// Triggers the shutdown and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_trigger().trigger();
        self.wait().await
    }
}

/// Opens the runtime in `<data_dir>/runtime` serving `scripted` and `models` (its
/// compiled components cached in `<data_dir>/cache`); a failure stops the server.
async fn open_runtime(state: AppState, models: ModelCatalog, data_dir: PathBuf) {
    let started = std::time::Instant::now();
    let opening = {
        let state = state.clone();
        tokio::task::spawn_blocking(move || {
            let config = state.config();
            let dir = data_dir.join("runtime");
            let cache = data_dir.join("cache");
            state.core().open(&config.runtime, &models, &dir, &cache)
        })
    };
    match opening.await {
        Ok(Ok(runtime)) => {
            let restored = runtime.restored();
            tracing::info!(
                workers = restored.workers,
                interrupted_runs = restored.interrupted_runs,
                took_ms = started.elapsed().as_millis() as u64,
                "ready"
            );
            let id = state.config().id.as_str();
            state.loading().set(Arc::new(LocalSource::new(id, runtime)));
        }
        Ok(Err(e)) => fail(&state, format!("{e:#}")),
        Err(e) => fail(&state, format!("opening the runtime failed: {e}")),
    }
}

fn fail(state: &AppState, message: String) {
    tracing::error!(error = %message, "opening the runtime failed");
    state.loading().fail(message);
    state.shutdown().trigger();
}
