//! [`AppState`]: what every handler and stream of the runtime server shares.

use std::sync::Arc;

use yoi_serving::{Authenticator, Loading, LocalSource, Metrics, ServeError, Shutdown, Streams};

use crate::config::Config;
use crate::core::CoreChoice;

/// State shared by every handler and stream. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    core: CoreChoice,
    auth: Arc<Authenticator>,
    runtime: Loading<Arc<LocalSource>>,
    metrics: Arc<Metrics>,
    streams: Streams,
    shutdown: Shutdown,
}

impl AppState {
    /// The state of a server whose runtime is still opening (see [`AppState::loading`]).
    pub fn new(config: Config, core: CoreChoice, auth: Authenticator) -> Self {
        let metrics = Arc::new(Metrics::default());
        let shutdown = Shutdown::new();
        let streams = Streams::new(config.streams.settings(), metrics.clone(), shutdown.clone());
        AppState {
            inner: Arc::new(Inner {
                config,
                core,
                auth: Arc::new(auth),
                runtime: Loading::new("the runtime is still loading"),
                metrics,
                streams,
                shutdown,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn core(&self) -> &CoreChoice {
        &self.inner.core
    }

    pub fn auth(&self) -> &Arc<Authenticator> {
        &self.inner.auth
    }

    /// The runtime, once open (`503 runtime_unavailable` until then).
    pub fn runtime(&self) -> Result<&Arc<LocalSource>, ServeError> {
        self.inner.runtime.get()
    }

    /// The runtime's opening.
    pub fn loading(&self) -> &Loading<Arc<LocalSource>> {
        &self.inner.runtime
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn streams(&self) -> &Streams {
        &self.inner.streams
    }

    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }
}
