//! [`AppState`]: what every handler and stream of the host shares.

use std::sync::Arc;

use yoi_serving::{Authenticator, Loading, Metrics, ServeError, Shutdown, Streams};

use crate::config::Config;
use crate::projection::{Command, Principal, Projection};
use crate::registry::RuntimeRegistry;

/// State shared by every handler and stream. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    auth: Authenticator,
    registry: Loading<Arc<RuntimeRegistry>>,
    projection: Arc<dyn Projection>,
    metrics: Arc<Metrics>,
    streams: Streams,
    shutdown: Shutdown,
}

impl AppState {
    /// The state of a host that has not loaded its runtimes yet (see
    /// [`AppState::loading`]).
    pub fn new(config: Config, auth: Authenticator, projection: Arc<dyn Projection>) -> Self {
        let metrics = Arc::new(Metrics::default());
        let shutdown = Shutdown::new();
        let streams = Streams::new(config.streams.settings(), metrics.clone(), shutdown.clone());
        AppState {
            inner: Arc::new(Inner {
                config,
                auth,
                registry: Loading::new("the host is still loading its runtimes"),
                projection,
                metrics,
                streams,
                shutdown,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn auth(&self) -> &Authenticator {
        &self.inner.auth
    }

    /// The runtimes, once loaded (`503 runtime_unavailable` until then).
    pub fn registry(&self) -> Result<&Arc<RuntimeRegistry>, ServeError> {
        self.inner.registry.get()
    }

    /// The runtimes' loading (see [`crate::Host::ready`]).
    pub fn loading(&self) -> &Loading<Arc<RuntimeRegistry>> {
        &self.inner.registry
    }

    pub fn projection(&self) -> &Arc<dyn Projection> {
        &self.inner.projection
    }

    pub fn metrics(&self) -> &Metrics {
        &self.inner.metrics
    }

    pub fn streams(&self) -> &Streams {
        &self.inner.streams
    }

    /// Turns on when the host starts shutting down.
    pub fn shutdown(&self) -> &Shutdown {
        &self.inner.shutdown
    }

    /// Asks the policy whether `principal` may run `command`.
    pub fn authorize(
        &self,
        principal: &Principal,
        command: &Command<'_>,
    ) -> Result<(), ServeError> {
        self.inner
            .projection
            .command(principal, command)
            .map_err(ServeError::forbidden)
    }
}
