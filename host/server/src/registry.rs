//! [`RuntimeRegistry`]: `runtime_id → RuntimeHandle`.
//!
//! A [`RuntimeHandle`] is where a runtime's commands go and where its events come from
//! (it is the runtime's [`EventSource`] for streams). Today there is one kind of source,
//! [`RuntimeSource::Embedded`]: a `LocalRuntime` running the runtime component in this
//! process. A remote source (a `yoi-runtime` process reached over REST and one upstream
//! WebSocket) becomes a second variant; everything above this module (REST handlers,
//! streams) talks to [`RuntimeHandle`] only: commands, snapshots, live envelopes and
//! replay after a cursor with typed outcomes.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::Arc;

use tokio::sync::broadcast;
use yoi_core::WasmCore;
use yoi_driver::ModelCatalog;
use yoi_eventlog::ReplayPage;
use yoi_protocol::{
    Cursor, Envelope, ErrorCode, Input, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot,
    WorkerSpec,
};
use yoi_runtime::{LocalRuntime, StatsSnapshot};
use yoi_serving::{EventSource, FrameCache, LocalSource, ReplayOutcome, ServeError};

use crate::config::{Config, RuntimeConfig, RuntimeKind};

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

    /// Opens every runtime of `config` (compiling each component once); each serves the
    /// scripted model and `models` (the configured providers').
    pub async fn load(
        config: &Config,
        data_dir: &Path,
        models: &ModelCatalog,
    ) -> anyhow::Result<Self> {
        let mut handles = Vec::new();
        for rc in config.effective_runtimes() {
            let component =
                yoi_core::component_file(rc.component.as_deref().or(config.component.as_deref()))
                    .map_err(anyhow::Error::msg)?;
            let dir = data_dir.join("runtimes").join(rc.id.as_str());
            let cache = data_dir.join("cache");
            let started = std::time::Instant::now();
            let rc2 = rc.clone();
            let models = models.clone();
            let runtime = tokio::task::spawn_blocking(move || {
                open_embedded(&rc2, &dir, &cache, &component, &models)
            })
            .await??;
            let restored = runtime.restored();
            tracing::info!(
                runtime = %rc.id,
                kind = rc.kind.as_str(),
                workers = restored.workers,
                interrupted_runs = restored.interrupted_runs,
                took_ms = started.elapsed().as_millis() as u64,
                "runtime loaded"
            );
            handles.push(RuntimeHandle::new(
                rc.id.as_str(),
                RuntimeSource::Embedded(LocalSource::new(rc.id.as_str(), runtime)),
            ));
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
}

/// Counters of one runtime for `/metrics`.
#[derive(Debug, Clone, Copy, Default)]
pub struct SourceStats {
    pub runtime: StatsSnapshot,
    pub last_seq: u64,
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
        }
    }

    fn embedded(&self) -> &LocalSource {
        match &self.source {
            RuntimeSource::Embedded(e) => e,
        }
    }

    fn local(&self) -> &LocalRuntime {
        self.embedded().runtime()
    }

    pub fn info(&self, workers: usize) -> RuntimeInfo {
        RuntimeInfo {
            id: self.id.clone(),
            kind: self.kind().as_str().to_string(),
            state: "ready".to_string(),
            workers,
            capabilities: self.embedded().capabilities(),
        }
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, ServeError> {
        Ok(self.local().list_workers().await?)
    }

    pub async fn create_worker(&self, spec: WorkerSpec) -> Result<WorkerInfo, ServeError> {
        Ok(self.local().create_worker(spec).await?)
    }

    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, ServeError> {
        Ok(self.local().get_worker(worker_id).await?)
    }

    pub async fn send_input(&self, worker_id: &str, input: Input) -> Result<String, ServeError> {
        Ok(self.local().send_input(worker_id, input).await?)
    }

    pub async fn cancel(&self, worker_id: &str) -> Result<String, ServeError> {
        Ok(self.local().cancel(worker_id).await?)
    }

    pub async fn stop(&self, worker_id: &str) -> Result<WorkerInfo, ServeError> {
        Ok(self.local().stop(worker_id).await?)
    }

    pub async fn delete_worker(&self, worker_id: &str) -> Result<(), ServeError> {
        Ok(self.local().delete_worker(worker_id).await?)
    }

    pub async fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, ServeError> {
        Ok(self.local().transcript(worker_id).await?)
    }

    pub fn stats(&self) -> SourceStats {
        let local = self.local();
        SourceStats {
            runtime: local.stats(),
            last_seq: local.events().last_cursor().seq,
        }
    }

    pub async fn shutdown(&self) {
        self.local().shutdown().await;
    }
}

impl EventSource for RuntimeHandle {
    fn runtime_id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        self.embedded().epoch()
    }

    fn frames(&self) -> &Arc<FrameCache> {
        self.embedded().frames()
    }

    fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.embedded().subscribe()
    }

    async fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayOutcome> {
        self.embedded().replay(after, worker, limit).await
    }

    async fn snapshot(&self, worker_id: &str) -> Result<(WorkerSnapshot, Cursor), ServeError> {
        self.embedded().snapshot(worker_id).await
    }

    async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), ServeError> {
        self.embedded().snapshot_all().await
    }
}

/// Opens an embedded runtime (blocking: compiles the component, restores the log).
fn open_embedded(
    rc: &RuntimeConfig,
    dir: &Path,
    cache_dir: &Path,
    component: &Path,
    models: &ModelCatalog,
) -> anyhow::Result<LocalRuntime> {
    let (engine, component) =
        yoi_core::shared_component(component, cache_dir).map_err(|f| anyhow::anyhow!("{f}"))?;
    let guest_limits = rc.settings.core.guest_limits();
    rc.settings
        .open(dir, models, move || {
            WasmCore::instantiate(&engine, &component, guest_limits)
        })
        .map_err(|e| anyhow::anyhow!("runtime {}: {e}", rc.id))
}
