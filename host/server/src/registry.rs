//! [`RuntimeRegistry`]: `runtime_id → RuntimeSource`.
//!
//! A [`RuntimeSource`] is where a runtime's commands go and where its events come from.
//! Today there is one kind, [`RuntimeSource::Embedded`]: a [`LocalRuntime`] running the
//! runtime component in this process. A remote source (a `yoi-runtime` process reached
//! over REST and one upstream WebSocket) becomes a second variant; everything above this
//! module (REST handlers, streams) talks to [`RuntimeHandle`] only: commands, snapshots,
//! `subscribe` (live envelopes) and `replay` (history after a cursor) with typed outcomes.

use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime};

use tokio::sync::broadcast;
use yoi_core::{WasmCore, WasmEngine};
use yoi_driver::{ModelCatalog, ScriptedModel};
use yoi_eventlog::{ReplayError, ReplayPage};
use yoi_protocol::{
    Capabilities, Cursor, Envelope, ErrorCode, Input, Limits, Message, RuntimeInfo, WorkerInfo,
    WorkerSnapshot, WorkerSpec,
};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig, StatsSnapshot};

use crate::config::{Config, RuntimeConfig, RuntimeKind};
use crate::error::HostError;
use crate::frames::FrameCache;

/// Every runtime the host serves, by id (ordered).
pub struct RuntimeRegistry {
    runtimes: BTreeMap<String, Arc<RuntimeHandle>>,
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
            let component = component_path(rc.component.as_ref().or(config.component.as_ref()))
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
                RuntimeSource::Embedded(EmbeddedRuntime {
                    runtime,
                    limits: rc.limits.to_limits(&rc.core),
                }),
            ));
        }
        Ok(RuntimeRegistry::new(handles))
    }

    pub fn get(&self, id: &str) -> Result<Arc<RuntimeHandle>, HostError> {
        self.runtimes
            .get(id)
            .cloned()
            .ok_or_else(|| HostError::runtime_not_found(id))
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
    frames: FrameCache,
}

/// Where a runtime runs.
pub enum RuntimeSource {
    /// A [`LocalRuntime`] on the runtime component, in this process.
    Embedded(EmbeddedRuntime),
}

pub struct EmbeddedRuntime {
    runtime: LocalRuntime,
    limits: Limits,
}

impl EmbeddedRuntime {
    pub fn runtime(&self) -> &LocalRuntime {
        &self.runtime
    }
}

/// Why a replay could not be served (the source-independent form of [`ReplayError`]).
#[derive(Debug)]
pub enum ReplayOutcome {
    /// The cursor is from another store.
    Unknown(String),
    /// History after the cursor is no longer complete.
    Expired(String),
    /// The cursor is beyond the end of the log.
    Ahead(String),
    Failed(HostError),
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
            frames: FrameCache::default(),
        }
    }

    /// Recent events' JSON and frames, built once for all streams.
    pub fn frames(&self) -> &FrameCache {
        &self.frames
    }

    pub fn kind(&self) -> RuntimeKind {
        match &self.source {
            RuntimeSource::Embedded(_) => RuntimeKind::Embedded,
        }
    }

    fn local(&self) -> &LocalRuntime {
        match &self.source {
            RuntimeSource::Embedded(e) => &e.runtime,
        }
    }

    pub fn info(&self, workers: usize) -> RuntimeInfo {
        let RuntimeSource::Embedded(e) = &self.source;
        RuntimeInfo {
            id: self.id.clone(),
            kind: self.kind().as_str().to_string(),
            state: "ready".to_string(),
            workers,
            capabilities: Capabilities {
                models: e.runtime.models(),
                tools: yoi_driver::tools::names()
                    .iter()
                    .map(|t| t.to_string())
                    .collect(),
                limits: e.limits,
                streams: vec!["worker".to_string(), "all".to_string()],
            },
        }
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, HostError> {
        Ok(self.local().list_workers().await?)
    }

    pub async fn create_worker(&self, spec: WorkerSpec) -> Result<WorkerInfo, HostError> {
        Ok(self.local().create_worker(spec).await?)
    }

    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, HostError> {
        Ok(self.local().get_worker(worker_id).await?)
    }

    pub async fn send_input(&self, worker_id: &str, input: Input) -> Result<String, HostError> {
        Ok(self.local().send_input(worker_id, input).await?)
    }

    pub async fn cancel(&self, worker_id: &str) -> Result<String, HostError> {
        Ok(self.local().cancel(worker_id).await?)
    }

    pub async fn stop(&self, worker_id: &str) -> Result<WorkerInfo, HostError> {
        Ok(self.local().stop(worker_id).await?)
    }

    pub async fn delete_worker(&self, worker_id: &str) -> Result<(), HostError> {
        Ok(self.local().delete_worker(worker_id).await?)
    }

    pub async fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, HostError> {
        Ok(self.local().transcript(worker_id).await?)
    }

    /// A worker's snapshot and the cursor it is consistent with.
    pub async fn snapshot(&self, worker_id: &str) -> Result<(WorkerSnapshot, Cursor), HostError> {
        Ok(self.local().snapshot(worker_id).await?)
    }

    /// Every worker's snapshot and the cursor they are consistent with.
    pub async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), HostError> {
        Ok(self.local().snapshot_all().await?)
    }

    /// Live envelopes from now on. Subscribe before replaying or snapshotting.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.local().events().subscribe()
    }

    /// The store's epoch (a cursor of this runtime starts from `Cursor::new(epoch, 0)`).
    pub fn epoch(&self) -> u64 {
        self.local().events().epoch()
    }

    /// Events after `after` (of one worker, if given), at most `limit`.
    pub async fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayOutcome> {
        let reader = self.local().events();
        // The window answers from memory; older history is a SQLite read, which belongs
        // on a blocking thread.
        let in_window = reader
            .window_bounds()
            .is_some_and(|(low, _)| after.seq + 1 >= low);
        let result = if in_window || after.epoch != reader.epoch() {
            reader.replay(after, worker, limit)
        } else {
            let reader = reader.clone();
            let worker = worker.map(str::to_string);
            tokio::task::spawn_blocking(move || reader.replay(after, worker.as_deref(), limit))
                .await
                .map_err(|e| ReplayOutcome::Failed(HostError::internal(e.to_string())))?
        };
        result.map_err(|e| match e {
            ReplayError::UnknownEpoch { .. } => ReplayOutcome::Unknown(e.to_string()),
            ReplayError::Expired { .. } => ReplayOutcome::Expired(e.to_string()),
            ReplayError::Ahead { .. } => ReplayOutcome::Ahead(e.to_string()),
            ReplayError::Store(e) => ReplayOutcome::Failed(HostError::new(
                ErrorCode::Internal,
                format!("replay failed: {e}"),
            )),
        })
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

/// The component file: the configured one, else [`yoi_core::guest_component_path`]
/// (which says how to build it when it is missing).
pub fn component_path(configured: Option<&PathBuf>) -> Result<PathBuf, String> {
    match configured {
        Some(path) if path.is_file() => Ok(path.clone()),
        Some(path) => Err(format!(
            "the runtime component {} does not exist; build it with `cargo xtask build-guest` \
             (it writes target/guest/yoi_runtime.wasm) or pass --component FILE",
            path.display()
        )),
        None => yoi_core::guest_component_path(),
    }
}

type CompiledKey = (PathBuf, u64, Option<SystemTime>);

/// One engine per process and each component compiled once (tests start many hosts);
/// across restarts the compiled code comes from the disk cache in `<data-dir>/cache`.
fn compiled(
    path: &Path,
    cache_dir: &Path,
) -> anyhow::Result<(WasmEngine, wasmtime::component::Component)> {
    static CACHE: Mutex<
        Option<(
            WasmEngine,
            HashMap<CompiledKey, wasmtime::component::Component>,
        )>,
    > = Mutex::new(None);
    let meta = std::fs::metadata(path)?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let mut cache = CACHE.lock().unwrap_or_else(|e| e.into_inner());
    if cache.is_none() {
        let engine = WasmEngine::new().map_err(|f| anyhow::anyhow!("{f}"))?;
        *cache = Some((engine, HashMap::new()));
    }
    let (engine, components) = cache.as_mut().expect("initialised above");
    if let Some(component) = components.get(&key) {
        return Ok((engine.clone(), component.clone()));
    }
    let loaded = yoi_core::ComponentCache::new(cache_dir)
        .load(engine, path)
        .map_err(|f| anyhow::anyhow!("{f}"))?;
    tracing::info!(component = %path.display(), from_cache = loaded.from_cache, "runtime component loaded");
    let component = loaded.component;
    components.insert(key, component.clone());
    Ok((engine.clone(), component))
}

/// Opens an embedded runtime (blocking: compiles the component, restores the log).
fn open_embedded(
    rc: &RuntimeConfig,
    dir: &Path,
    cache_dir: &Path,
    component: &Path,
    models: &ModelCatalog,
) -> anyhow::Result<LocalRuntime> {
    let (engine, component) = compiled(component, cache_dir)?;
    let guest_limits = rc.core.guest_limits();
    let mut config = LocalRuntimeConfig::new(dir);
    config.limits = rc.limits.to_limits(&rc.core);
    config.call_bytes = rc.core.call_bytes;
    config.request_deadline = Duration::from_millis(rc.core.request_deadline_ms.get());
    config.log = rc.log.to_log_config();
    config.driver = rc.driver.to_driver_config();
    let scripted = rc.scripted.to_scripted_config();
    let budget = scripted
        .context_tokens
        .map(|n| n.min(u64::from(u32::MAX)) as u32);
    let mut catalog = models.clone();
    catalog.add(
        yoi_driver::scripted::MODEL_NAME,
        Arc::new(ScriptedModel::new(scripted)),
        budget,
    );
    let runtime = LocalRuntime::builder(config)
        .models(&catalog)
        .open(move || WasmCore::instantiate(&engine, &component, guest_limits))
        .map_err(|e| anyhow::anyhow!("runtime {}: {e}", rc.id))?;
    Ok(runtime)
}
