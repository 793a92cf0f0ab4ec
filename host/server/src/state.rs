//! [`AppState`]: what every handler and stream of the host shares.

use std::sync::Arc;

use yoi_serving::{Authenticator, Loading, Metrics, ServeError, Shutdown, Streams};

use crate::config::Config;
use yoi_policy::{Command, Principal};

use yoi_policy_host::ReloadReport;

use crate::policies::PolicySetup;
use crate::projection::Projection;
use crate::registry::RuntimeRegistry;

/// State shared by every handler and stream. Cheap to clone.
#[derive(Clone)]
pub struct AppState {
    inner: Arc<Inner>,
}

struct Inner {
    config: Config,
    auth: Authenticator<Principal>,
    registry: Loading<Arc<RuntimeRegistry>>,
    projection: Projection,
    policy_setup: PolicySetup,
    metrics: Arc<Metrics>,
    streams: Streams,
    shutdown: Shutdown,
}

impl AppState {
    /// The state of a host that has not loaded its runtimes yet (see
    /// [`AppState::loading`]).
    pub fn new(
        config: Config,
        auth: Authenticator<Principal>,
        projection: Projection,
        policy_setup: PolicySetup,
    ) -> Self {
        let metrics = Arc::new(Metrics::default());
        let shutdown = Shutdown::new();
        let streams = Streams::new(config.streams.settings(), metrics.clone(), shutdown.clone());
        AppState {
            inner: Arc::new(Inner {
                config,
                auth,
                registry: Loading::new("the host is still loading its runtimes"),
                projection,
                policy_setup,
                metrics,
                streams,
                shutdown,
            }),
        }
    }

    pub fn config(&self) -> &Config {
        &self.inner.config
    }

    pub fn auth(&self) -> &Authenticator<Principal> {
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

    pub fn projection(&self) -> &Projection {
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

    /// Reloads the policy chain (see [`crate::policies`]), off the async threads.
    pub async fn reload_policies(&self) -> Result<ReloadReport, ServeError> {
        let state = self.clone();
        tokio::task::spawn_blocking(move || {
            let inner = &state.inner;
            inner.policy_setup.reload(inner.projection.policies())
        })
        .await
        .map_err(|e| ServeError::internal(format!("the policy reload failed: {e}")))
    }

    /// Asks the role and the policies whether `principal` may run `command`.
    pub fn authorize(&self, principal: &Principal, command: &Command) -> Result<(), ServeError> {
        self.inner.projection.authorize(principal, command)
    }
}
