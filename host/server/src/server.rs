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

use yoi_serving::{Endpoint, Shutdown};

use yoi_policy_host::ReloadReport;

use crate::clients::authenticator;
use crate::config::Config;
use crate::policies::PolicySetup;
use crate::projection::Projection;
use crate::registry::RuntimeRegistry;
use crate::router::router;
use crate::state::AppState;

/// A running host.
pub struct Host {
    addr: SocketAddr,
    state: AppState,
    token_file: PathBuf,
    token_created: bool,
    server: tokio::task::JoinHandle<()>,
    loader: tokio::task::JoinHandle<()>,
}

impl Host {
    /// Checks the config, reads the clients' tokens, loads the policy plugins, writes or
    /// reads the host token, binds and starts serving; the runtimes load in the
    /// background (see [`Host::ready`]). A policy plugin refused, or a client token that
    /// cannot be read, stops the start with a message saying what to fix.
    pub async fn start(config: Config) -> anyhow::Result<Host> {
        let data_dir = config.resolved_data_dir()?;
        config.streams.warn_deprecated();
        // Fail before binding when a provider cannot be set up (a missing API key, say)
        // or a component is missing: the message says what to fix.
        let models = config.provider_models()?;
        RuntimeRegistry::check(&config)?;
        // Private before anything (the plugin cache, say) creates it.
        yoi_serving::create_private_dir(&data_dir).map_err(|e| {
            anyhow::anyhow!("creating the data directory {}: {e}", data_dir.display())
        })?;
        let setup = PolicySetup::new(&config, &data_dir);
        // Blocking (file copies, the dynamic loader), but once, before anything is
        // served; not on the blocking pool, which the runtimes' loading needs.
        let (policies, report) = setup.open()?;
        tracing::info!(chain = ?report.chain, "policy chain loaded");
        let token_file = config.resolved_token_file(&data_dir);
        let endpoint = Endpoint::open(&data_dir, token_file, config.bind).await?;
        let auth = authenticator(endpoint.token, &config.clients).map_err(anyhow::Error::msg)?;
        let projection = Projection::new(Arc::new(policies));
        let state = AppState::new(config, auth, projection, setup);

        let loader = {
            let state = state.clone();
            tokio::spawn(async move {
                match RuntimeRegistry::load(state.config(), &data_dir, &models).await {
                    Ok(registry) => {
                        state.loading().set(Arc::new(registry));
                        tracing::info!("ready");
                    }
                    Err(e) => {
                        let message = format!("{e:#}");
                        tracing::error!(error = %message, "loading the runtimes failed");
                        state.loading().fail(message);
                        state.shutdown().trigger();
                    }
                }
            })
        };

        let config = state.config();
        let addr = endpoint.addr;
        let server = tokio::spawn(yoi_serving::serve(
            endpoint.listener,
            router(state.clone()),
            config.http.limits(),
            state.shutdown().signal(),
            Duration::from_millis(config.shutdown_grace_ms),
        ));
        tracing::info!(%addr, "listening");
        Ok(Host {
            addr,
            state,
            token_file: endpoint.token_file,
            token_created: endpoint.token_created,
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

    /// Reloads the policy chain (what `SIGHUP` and `POST /api/v1/admin/reload` do).
    pub async fn reload_policies(&self) -> anyhow::Result<ReloadReport> {
        Ok(self.state.reload_policies().await?)
    }

    /// Reloads the policy chain on every `SIGHUP` until the host shuts down.
    #[cfg(unix)]
    pub fn reload_on_hangup(&self) -> anyhow::Result<()> {
        use tokio::signal::unix::{SignalKind, signal};
        let mut hangups = signal(SignalKind::hangup())?;
        let state = self.state.clone();
        tokio::spawn(async move {
            let mut shutdown = state.shutdown().signal();
            loop {
                tokio::select! {
                    got = hangups.recv() => if got.is_none() { return },
                    _ = shutdown.triggered() => return,
                }
                tracing::info!("SIGHUP: reloading the policy chain");
                if let Err(e) = state.reload_policies().await {
                    tracing::error!(error = %e, "policy reload failed");
                }
            }
        });
        Ok(())
    }

    pub fn shutdown_trigger(&self) -> Shutdown {
        self.state.shutdown().clone()
    }

    /// Waits until the runtimes are loaded; errs if loading failed.
    pub async fn ready(&self) -> anyhow::Result<Arc<RuntimeRegistry>> {
        let registry = self.state.loading().ready().await;
        registry.cloned().map_err(anyhow::Error::msg)
    }

    /// Serves until the shutdown trigger fires, then shuts down gracefully. Errs when the
    /// runtimes could not be loaded or the server failed.
    pub async fn wait(self) -> anyhow::Result<()> {
        let served = self.server.await;
        // The listener is closed and HTTP requests have finished; streams are closing.
        let grace = Duration::from_millis(self.state.config().shutdown_grace_ms);
        self.state.streams().closed(grace).await;
        let _ = self.loader.await;
        if let Ok(registry) = self.state.registry() {
            registry.shutdown().await;
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
