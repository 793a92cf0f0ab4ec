//! [`Host`]: start-up and graceful shutdown.
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
use std::sync::Arc;
use std::time::Duration;

use anyhow::Context;
use tokio::sync::watch;
use yoi_serving::{AccessToken, Authenticator, Shutdown};

use crate::config::Config;
use crate::projection::{PassThrough, Projection};
use crate::registry::RuntimeRegistry;
use crate::router::router;
use crate::state::AppState;

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
    server: tokio::task::JoinHandle<()>,
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
        config.streams.warn_deprecated();
        // Fail before binding when a component is missing: the message says how to build it.
        for rc in config.effective_runtimes() {
            yoi_core::component_file(rc.component.as_deref().or(config.component.as_deref()))
                .map_err(anyhow::Error::msg)?;
        }
        yoi_serving::create_private_dir(&data_dir)
            .with_context(|| format!("creating the data directory {}", data_dir.display()))?;
        let token_file = config.resolved_token_file(&data_dir);
        let (token, token_created) = AccessToken::load_or_create(&token_file)
            .with_context(|| format!("access token file {}", token_file.display()))?;
        let listener = tokio::net::TcpListener::bind(config.bind)
            .await
            .with_context(|| format!("cannot listen on {}", config.bind))?;
        let addr = listener.local_addr()?;

        let auth = Authenticator::new(token, "in the file host.token in the host's data directory");
        let state = AppState::new(config, auth, projection);

        let (load_tx, load) = watch::channel(Load::Loading);
        let loader = {
            let state = state.clone();
            tokio::spawn(async move {
                match RuntimeRegistry::load(state.config(), &data_dir).await {
                    Ok(registry) => {
                        state.set_registry(Arc::new(registry));
                        load_tx.send_replace(Load::Ready);
                        tracing::info!("ready");
                    }
                    Err(e) => {
                        let message = format!("{e:#}");
                        tracing::error!(error = %message, "loading the runtimes failed");
                        load_tx.send_replace(Load::Failed(message));
                        state.shutdown().trigger();
                    }
                }
            })
        };

        let config = state.config();
        let server = tokio::spawn(yoi_serving::serve(
            listener,
            router(state.clone()),
            config.http.limits(),
            state.shutdown().signal(),
            Duration::from_millis(config.shutdown_grace_ms),
        ));
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
        self.state.auth().token().expose()
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

    pub fn shutdown_trigger(&self) -> Shutdown {
        self.state.shutdown().clone()
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
        let streams = self.state.streams();
        if tokio::time::timeout(grace, streams.all_closed())
            .await
            .is_err()
        {
            tracing::warn!(
                open = streams.open(),
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
        served.context("the server task failed")?;
        tracing::info!("stopped");
        Ok(())
    }

    /// Triggers the shutdown and waits for it.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        self.shutdown_trigger().trigger();
        self.wait().await
    }
}
