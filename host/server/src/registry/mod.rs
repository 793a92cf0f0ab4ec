//! [`RuntimeRegistry`]: `runtime_id → RuntimeHandle`.
//!
//! A [`RuntimeHandle`] is where a runtime's commands go and where its events come from
//! (it is the runtime's [`EventSource`] for streams). One module per kind of source:
//! `embedded` (a `LocalRuntime` on the runtime component, in this process) and `remote`
//! ([`RemoteSource`]: a `yoi-runtime serve` over the runtime API, REST commands and one
//! upstream stream). [`RuntimeSource`] dispatches between them here and nowhere else: REST
//! handlers and streams above this module talk to [`RuntimeHandle`] only, and cannot
//! tell the kinds apart except by [`RuntimeHandle::kind`].

mod embedded;
mod remote;

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::watch;
use yoi_driver::ModelCatalog;
use yoi_eventlog::ReplayPage;
use yoi_protocol::{
    Cursor, ErrorCode, Input, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot, WorkerSpec,
};
use yoi_runtime::{LocalRuntime, StatsSnapshot};
use yoi_serving::{
    Availability, EventSource, FrameCache, LocalSource, ReplayOutcome, ServeError, Subscription,
};

use crate::config::{Config, RuntimeKind, SourceConfig};
pub use remote::{RemoteSource, RemoteStats};

/// Every runtime the host serves, by id (ordered).
pub struct RuntimeRegistry {
    runtimes: BTreeMap<String, Arc<RuntimeHandle>>,
}

/// The answer for a runtime id the host does not serve.
pub fn runtime_not_found(runtime_id: &str) -> ServeError {
    ServeError::new(
        ErrorCode::RuntimeNotFound,
        format!("runtime {runtime_id} not found"),
    )
}

impl RuntimeRegistry {
    pub fn new(runtimes: impl IntoIterator<Item = RuntimeHandle>) -> Self {
        RuntimeRegistry {
            runtimes: runtimes
                .into_iter()
                .map(|r| (r.id.clone(), Arc::new(r)))
                .collect(),
        }
    }

    /// What can be checked of `config`'s runtimes before the host binds: an embedded
    /// runtime's component file exists (remote runtimes are dialled later, and one that
    /// is down does not stop the host).
    pub fn check(config: &Config) -> anyhow::Result<()> {
        for rc in config.effective_runtimes() {
            if let SourceConfig::Embedded(embedded) = &rc.source {
                let component = embedded.component.as_deref();
                yoi_core::component_file(component.or(config.component.as_deref()))
                    .map_err(anyhow::Error::msg)?;
            }
        }
        Ok(())
    }

    /// Opens every runtime of `config`: embedded ones are loaded (compiling each
    /// component once) and serve the scripted model and `models` (the configured
    /// providers'); remote ones start following their runtime and are not waited for
    /// (one that is down leaves the host ready, see `/readyz`).
    pub async fn load(
        config: &Config,
        data_dir: &Path,
        models: &ModelCatalog,
    ) -> anyhow::Result<Self> {
        let mut handles = Vec::new();
        for rc in config.effective_runtimes() {
            let id = rc.id.as_str().to_string();
            let source = match &rc.source {
                SourceConfig::Embedded(embedded) => {
                    let dir = data_dir.join("runtimes").join(&id);
                    let cache = data_dir.join("cache");
                    let started = std::time::Instant::now();
                    let (embedded, default_component) =
                        (embedded.clone(), config.component.clone());
                    let (models, opened_id) = (models.clone(), id.clone());
                    let source = tokio::task::spawn_blocking(move || {
                        embedded::open(
                            &opened_id,
                            &embedded,
                            default_component.as_deref(),
                            &dir,
                            &cache,
                            &models,
                        )
                    })
                    .await??;
                    let restored = source.runtime().restored();
                    tracing::info!(
                        runtime = %id,
                        kind = rc.kind().as_str(),
                        workers = restored.workers,
                        interrupted_runs = restored.interrupted_runs,
                        took_ms = started.elapsed().as_millis() as u64,
                        "runtime loaded"
                    );
                    RuntimeSource::Embedded(source)
                }
                SourceConfig::Remote(remote) => {
                    let source = RemoteSource::start(&id, remote)?;
                    tracing::info!(runtime = %id, kind = rc.kind().as_str(), "following the remote runtime");
                    RuntimeSource::Remote(source)
                }
            };
            handles.push(RuntimeHandle::new(id, source));
        }
        Ok(RuntimeRegistry::new(handles))
    }

    pub fn get(&self, id: &str) -> Result<Arc<RuntimeHandle>, ServeError> {
        self.runtimes
            .get(id)
            .cloned()
            .ok_or_else(|| runtime_not_found(id))
    }

    /// All runtimes, ordered by id.
    pub fn all(&self) -> impl Iterator<Item = &Arc<RuntimeHandle>> {
        self.runtimes.values()
    }

    /// Shuts every runtime down (each flushes its event store).
    pub async fn shutdown(&self) {
        for r in self.runtimes.values() {
            r.shutdown().await;
            tracing::info!(runtime = %r.id, "runtime stopped");
        }
    }
}

/// One registered runtime.
pub struct RuntimeHandle {
    pub id: String,
    pub source: RuntimeSource,
}

/// Where a runtime runs.
pub enum RuntimeSource {
    /// A `LocalRuntime` on the runtime component, in this process.
    Embedded(LocalSource),
    /// A `yoi-runtime serve` reached over the runtime API.
    Remote(RemoteSource),
}

/// Calls the same method on whichever source a handle has.
macro_rules! dispatch {
    ($handle:expr, $source:ident => $call:expr) => {
        match &$handle.source {
            RuntimeSource::Embedded($source) => $call,
            RuntimeSource::Remote($source) => $call,
        }
    };
}

/// Counters of one runtime for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceStats {
    /// Core and event-log figures (of runtimes in this process).
    pub runtime: Option<StatsSnapshot>,
    pub last_seq: u64,
    /// What the host holds of a remote runtime.
    pub remote: Option<remote::RemoteStats>,
}

impl RuntimeHandle {
    pub fn new(id: impl Into<String>, source: RuntimeSource) -> Self {
        RuntimeHandle {
            id: id.into(),
            source,
        }
    }

    pub fn kind(&self) -> RuntimeKind {
        match &self.source {
            RuntimeSource::Embedded(_) => RuntimeKind::Embedded,
            RuntimeSource::Remote(_) => RuntimeKind::Remote,
        }
    }

    /// The `LocalRuntime` of an embedded runtime (for tests and tools in this process).
    pub fn local_runtime(&self) -> Option<&LocalRuntime> {
        match &self.source {
            RuntimeSource::Embedded(e) => Some(e.runtime()),
            RuntimeSource::Remote(_) => None,
        }
    }

    /// Whether commands can reach the runtime now.
    pub fn is_ready(&self) -> bool {
        match &self.source {
            RuntimeSource::Embedded(_) => true,
            RuntimeSource::Remote(r) => r.unavailable().is_none(),
        }
    }

    /// The runtime's description with `workers` visible workers.
    pub fn info(&self, workers: usize) -> RuntimeInfo {
        let (unavailable, capabilities) = match &self.source {
            RuntimeSource::Embedded(e) => (None, e.capabilities()),
            RuntimeSource::Remote(r) => (r.unavailable(), r.capabilities()),
        };
        RuntimeInfo {
            id: self.id.clone(),
            kind: self.kind().as_str().to_string(),
            state: if unavailable.is_some() {
                "unavailable"
            } else {
                "ready"
            }
            .to_string(),
            workers,
            capabilities,
            unavailable,
        }
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().list_workers().await?),
            RuntimeSource::Remote(r) => r.list_workers().await,
        }
    }

    pub async fn create_worker(&self, spec: WorkerSpec) -> Result<WorkerInfo, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().create_worker(spec).await?),
            RuntimeSource::Remote(r) => r.create_worker(spec).await,
        }
    }

    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().get_worker(worker_id).await?),
            RuntimeSource::Remote(r) => r.get_worker(worker_id).await,
        }
    }

    pub async fn send_input(&self, worker_id: &str, input: Input) -> Result<String, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().send_input(worker_id, input).await?),
            RuntimeSource::Remote(r) => r.send_input(worker_id, input).await,
        }
    }

    pub async fn cancel(&self, worker_id: &str) -> Result<String, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().cancel(worker_id).await?),
            RuntimeSource::Remote(r) => r.cancel(worker_id).await,
        }
    }

    pub async fn stop(&self, worker_id: &str) -> Result<WorkerInfo, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().stop(worker_id).await?),
            RuntimeSource::Remote(r) => r.stop(worker_id).await,
        }
    }

    pub async fn delete_worker(&self, worker_id: &str) -> Result<(), ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().delete_worker(worker_id).await?),
            RuntimeSource::Remote(r) => r.delete_worker(worker_id).await,
        }
    }

    pub async fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, ServeError> {
        match &self.source {
            RuntimeSource::Embedded(e) => Ok(e.runtime().transcript(worker_id).await?),
            RuntimeSource::Remote(r) => r.transcript(worker_id).await,
        }
    }

    pub fn stats(&self) -> SourceStats {
        match &self.source {
            RuntimeSource::Embedded(e) => SourceStats {
                runtime: Some(e.runtime().stats()),
                last_seq: e.runtime().events().last_cursor().seq,
                remote: None,
            },
            RuntimeSource::Remote(r) => SourceStats {
                runtime: None,
                last_seq: r.last_seq(),
                remote: Some(r.stats()),
            },
        }
    }

    /// Shuts an embedded runtime down (it flushes its event store); stops following a
    /// remote one.
    pub async fn shutdown(&self) {
        match &self.source {
            RuntimeSource::Embedded(e) => e.runtime().shutdown().await,
            RuntimeSource::Remote(r) => r.shutdown(),
        }
    }
}

impl EventSource for RuntimeHandle {
    fn runtime_id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        dispatch!(self, s => s.epoch())
    }

    fn frames(&self) -> &Arc<FrameCache> {
        dispatch!(self, s => s.frames())
    }

    fn subscribe(&self) -> Subscription {
        dispatch!(self, s => s.subscribe())
    }

    async fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayOutcome> {
        dispatch!(self, s => s.replay(after, worker, limit).await)
    }

    async fn snapshot(&self, worker_id: &str) -> Result<(WorkerSnapshot, Cursor), ServeError> {
        dispatch!(self, s => s.snapshot(worker_id).await)
    }

    async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), ServeError> {
        dispatch!(self, s => s.snapshot_all().await)
    }

    fn availability(&self) -> Option<watch::Receiver<Availability>> {
        match &self.source {
            RuntimeSource::Embedded(_) => None,
            RuntimeSource::Remote(r) => Some(r.availability()),
        }
    }
}
