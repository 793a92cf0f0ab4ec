//! One yoi runtime: a core, its effect driver and its event log, owned by an actor.
//!
//! [`LocalRuntime`] is what both processes share: `yoi-host` wraps it as its embedded
//! source, `yoi-runtime` serves it over HTTP. It is a cheap, cloneable handle; the state
//! lives on one actor thread (module `actor`). The core type is chosen at
//! [`RuntimeBuilder::open`] (`NativeCore` or `WasmCore`), so the handle itself is not
//! generic.
//!
//! [`config::RuntimeSettings`] (cargo feature `config`, on by default) is a runtime's
//! settings as config files write them, and the one function that opens a runtime from
//! them. The library depends on no server crate, and on wasmtime only when a dependent
//! enables `yoi-core/wasm` (a native-only build links none; `tests/dependencies.rs`
//! checks both).

mod actor;
#[cfg(feature = "config")]
pub mod config;
mod driver;
mod error;
mod restore;
mod stats;
mod store_health;

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::{mpsc, oneshot};
use yoi_core::{Core, Fault};
use yoi_driver::{ModelCatalog, Provider, Workspaces};
use yoi_eventlog::{EventLog, LogConfig, LogReader};
use yoi_protocol::{
    Cursor, Input, Limits, Message, RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};

pub use driver::{DriverConfig, ToolRunner};
pub use error::{OpenError, RuntimeError};
pub use stats::{CORE_CALL_BUCKETS, RuntimeStats, StatsSnapshot};

use actor::{Actor, CoreSettings, Msg, Read, View};

/// Default of [`LocalRuntimeConfig::call_bytes`]: 4 MiB.
pub const DEFAULT_CALL_BYTES: u32 = 4 << 20;

/// Everything a runtime needs to open.
#[derive(Debug, Clone)]
pub struct LocalRuntimeConfig {
    /// Holds `events.db` (the event log) and `workspaces/` (one folder per worker).
    pub data_dir: PathBuf,
    pub limits: Limits,
    pub log: LogConfig,
    pub driver: DriverConfig,
    /// Capacity of each of the actor's two inboxes, in messages: one for commands (always
    /// served first), one for completions (in batches of up to 64 per model call).
    pub inbox_capacity: usize,
    /// Estimated bytes one call may carry across the core's boundary (events, effects,
    /// completions, restore input, transcript pages), default [`DEFAULT_CALL_BYTES`].
    /// Keep `limits.max_request_bytes` at or below it.
    pub call_bytes: u32,
    /// How long a caller waits for the actor's answer before `runtime_unavailable`
    /// (default 30 s): a stuck core never hangs a request.
    pub request_deadline: Duration,
}

impl LocalRuntimeConfig {
    pub fn new(data_dir: impl Into<PathBuf>) -> Self {
        LocalRuntimeConfig {
            data_dir: data_dir.into(),
            limits: Limits::default(),
            log: LogConfig::default(),
            driver: DriverConfig::default(),
            inbox_capacity: 1024,
            call_bytes: DEFAULT_CALL_BYTES,
            request_deadline: Duration::from_secs(30),
        }
    }
}

/// A handle to a running runtime. Clones share it.
#[derive(Clone)]
pub struct LocalRuntime {
    inner: Arc<Inner>,
}

struct Inner {
    tx: mpsc::Sender<Msg>,
    reader: LogReader,
    stats: Arc<RuntimeStats>,
    models: Arc<ModelCatalog>,
    limits: Limits,
    restored: RestoreSummary,
    request_deadline: Duration,
    thread: Mutex<Option<std::thread::JoinHandle<()>>>,
}

/// Sets up a runtime: its providers, its tools, then [`RuntimeBuilder::open`].
pub struct RuntimeBuilder {
    config: LocalRuntimeConfig,
    models: ModelCatalog,
    tools: Option<Arc<dyn ToolRunner>>,
}

impl RuntimeBuilder {
    /// Serves `model` with `provider`, with no context budget (requests carry the whole
    /// transcript).
    pub fn provider(mut self, model: impl Into<String>, provider: Arc<dyn Provider>) -> Self {
        self.models.add(model, provider, None);
        self
    }

    /// Serves every model of `models` (adding to what is there; a name given twice
    /// takes the later provider).
    pub fn models(mut self, models: &ModelCatalog) -> Self {
        self.models.extend(models);
        self
    }

    /// Replaces the built-in workspace tools (tests use this for slow tools).
    pub fn tools(mut self, tools: Arc<dyn ToolRunner>) -> Self {
        self.tools = Some(tools);
        self
    }

    /// Opens (or creates) the runtime in `data_dir`: restores every worker's info from
    /// the event log's worker index (the whole log only when the index is behind) into
    /// `make_core`'s core, rebuilds and closes runs that were in flight as
    /// `interrupted`, and starts the actor. Other workers are activated on first use. `make_core` is called again
    /// whenever a core faults and must be replaced.
    ///
    /// Must be called within a tokio runtime (the driver spawns its calls there).
    pub fn open<C, F>(self, mut make_core: F) -> Result<LocalRuntime, OpenError>
    where
        C: Core,
        F: FnMut() -> Result<C, Fault> + Send + 'static,
    {
        let RuntimeBuilder {
            config,
            models,
            tools,
        } = self;
        let settings = CoreSettings {
            limits: config.limits,
            budgets: models.budgets(),
            call_bytes: config.call_bytes.max(1024),
        };
        let dir_error = |path: &Path| {
            let path = path.display().to_string();
            move |source| OpenError::Workspace { path, source }
        };
        create_private_dir(&config.data_dir).map_err(dir_error(&config.data_dir))?;
        let tools = match tools {
            Some(tools) => tools,
            None => {
                let dir = config.data_dir.join("workspaces");
                Arc::new(Workspaces::new(&dir).map_err(dir_error(&dir))?)
            }
        };
        let mut log = EventLog::open(&config.data_dir.join("events.db"), config.log.clone())
            .map_err(|e| OpenError::Log(e.to_string()))?;
        let mut core = make_core().map_err(|f| OpenError::Core(f.to_string()))?;
        let restored =
            restore::restore_core(&mut core, &log, &settings).map_err(OpenError::Restore)?;
        actor::persist(
            &mut core,
            &mut log,
            restored.events,
            restored.full,
            settings.call_bytes,
        )
        .map_err(OpenError::Log)?;

        let (tx, commands) = mpsc::channel(config.inbox_capacity.max(1));
        let (completed_tx, completed) = mpsc::channel(config.inbox_capacity.max(1));
        let stats = Arc::new(RuntimeStats::default());
        let models = Arc::new(models);
        let rt = tokio::runtime::Handle::current();
        let driver = driver::Driver::new(
            rt.clone(),
            completed_tx,
            models.clone(),
            tools,
            config.driver.clone(),
        );
        let reader = log.reader();
        let actor = Actor::new(actor::Parts {
            core,
            make_core: Box::new(make_core),
            log,
            driver,
            commands,
            completed,
            rt,
            settings,
            stats: stats.clone(),
            index_complete: false,
        });
        let thread = std::thread::Builder::new()
            .name("yoi-runtime-actor".into())
            .spawn(move || actor.run())
            .map_err(OpenError::Thread)?;
        Ok(LocalRuntime {
            inner: Arc::new(Inner {
                tx,
                reader,
                stats,
                models,
                limits: config.limits,
                restored: restored.summary,
                request_deadline: config.request_deadline,
                thread: Mutex::new(Some(thread)),
            }),
        })
    }
}

impl LocalRuntime {
    /// Starts setting up a runtime with no providers; add them with
    /// [`RuntimeBuilder::provider`].
    pub fn builder(config: LocalRuntimeConfig) -> RuntimeBuilder {
        RuntimeBuilder {
            config,
            models: ModelCatalog::new(),
            tools: None,
        }
    }

    async fn ask<T>(
        &self,
        msg: impl FnOnce(oneshot::Sender<Result<T, RuntimeError>>) -> Msg,
    ) -> Result<T, RuntimeError> {
        let (reply, answer) = oneshot::channel();
        let deadline = self.inner.request_deadline;
        let asked = async {
            self.inner
                .tx
                .send(msg(reply))
                .await
                .map_err(|_| RuntimeError::ShuttingDown)?;
            answer.await.map_err(|_| RuntimeError::ShuttingDown)?
        };
        tokio::time::timeout(deadline, asked)
            .await
            .map_err(|_| RuntimeError::Unavailable(deadline))?
    }

    /// A worker as the actor answered, made whole: a passivated worker is rebuilt from
    /// its stored events up to `cursor` on a blocking thread.
    async fn whole(&self, view: View, cursor: Cursor) -> Result<WorkerSnapshot, RuntimeError> {
        match view {
            View::Resident(snapshot) => Ok(snapshot),
            View::Passivated(info) => {
                let reader = self.inner.reader.clone();
                tokio::task::spawn_blocking(move || restore::rebuild(&reader, &info, cursor.seq))
                    .await
                    .map_err(|e| RuntimeError::Log(e.to_string()))?
                    .map_err(|e| RuntimeError::Log(format!("rebuilding a passivated worker: {e}")))
            }
        }
    }

    /// Creates an idle worker. The model must be one this runtime serves.
    pub async fn create_worker(&self, spec: WorkerSpec) -> Result<WorkerInfo, RuntimeError> {
        if !self.inner.models.serves(&spec.model) {
            return Err(RuntimeError::UnknownModel(spec.model));
        }
        self.ask(|r| Msg::CreateWorker(spec, r)).await
    }

    pub async fn list_workers(&self) -> Result<Vec<WorkerInfo>, RuntimeError> {
        self.ask(|r| Msg::Read(Read::ListWorkers(r))).await
    }

    pub async fn get_worker(&self, worker_id: &str) -> Result<WorkerInfo, RuntimeError> {
        let id = worker_id.to_string();
        self.ask(|r| Msg::Read(Read::GetWorker(id, r))).await
    }

    /// Starts a run; returns its id. The `input_accepted` event is on disk when this
    /// returns.
    pub async fn send_input(&self, worker_id: &str, input: Input) -> Result<String, RuntimeError> {
        let id = worker_id.to_string();
        self.ask(|r| Msg::SendInput(id, input, r)).await
    }

    pub async fn cancel(&self, worker_id: &str) -> Result<String, RuntimeError> {
        let id = worker_id.to_string();
        self.ask(|r| Msg::Cancel(id, r)).await
    }

    pub async fn stop(&self, worker_id: &str) -> Result<WorkerInfo, RuntimeError> {
        let id = worker_id.to_string();
        self.ask(|r| Msg::Stop(id, r)).await
    }

    /// Deletes the worker: stops it if needed, removes it from the core and removes its
    /// workspace; its events stay in the log (subject to retention).
    pub async fn delete_worker(&self, worker_id: &str) -> Result<(), RuntimeError> {
        let id = worker_id.to_string();
        self.ask(|r| Msg::Delete(id, r)).await
    }

    /// The worker's transcript; a passivated worker's is read from the store without
    /// making it resident.
    pub async fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, RuntimeError> {
        self.snapshot(worker_id).await.map(|(s, _)| s.transcript)
    }

    /// A worker's snapshot and the cursor it is consistent with: events after the cursor
    /// are exactly what happened since.
    pub async fn snapshot(
        &self,
        worker_id: &str,
    ) -> Result<(WorkerSnapshot, Cursor), RuntimeError> {
        let id = worker_id.to_string();
        let (view, cursor) = self.ask(|r| Msg::Read(Read::Worker(id, r))).await?;
        Ok((self.whole(view, cursor).await?, cursor))
    }

    /// Every worker's snapshot and the cursor they are consistent with.
    pub async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), RuntimeError> {
        let (views, cursor) = self.ask(|r| Msg::Read(Read::AllWorkers(r))).await?;
        let mut snapshots = Vec::with_capacity(views.len());
        for view in views {
            snapshots.push(self.whole(view, cursor).await?);
        }
        Ok((snapshots, cursor))
    }

    /// The event log, for replay and live subscription.
    pub fn events(&self) -> &LogReader {
        &self.inner.reader
    }

    pub fn stats(&self) -> StatsSnapshot {
        self.inner.stats.snapshot(self.inner.reader.stats())
    }

    /// Model names this runtime serves (`name/*`: any model id of provider `name`).
    pub fn models(&self) -> Vec<String> {
        self.inner.models.models()
    }

    /// The runtime-wide limits it enforces.
    pub fn limits(&self) -> Limits {
        self.inner.limits
    }

    /// What the restore at open rebuilt.
    pub fn restored(&self) -> RestoreSummary {
        self.inner.restored
    }

    /// Stops the actor after committing what it holds; in-flight calls are aborted.
    /// Later commands fail with `shutting_down`.
    pub async fn shutdown(&self) {
        let (done, finished) = oneshot::channel();
        if self.inner.tx.send(Msg::Shutdown(done)).await.is_ok() {
            let _ = finished.await;
        }
        let thread = self.inner.thread.lock().ok().and_then(|mut t| t.take());
        if let Some(thread) = thread {
            let _ = tokio::task::spawn_blocking(move || thread.join()).await;
        }
    }
}

/// Creates `dir` (and missing parents) with mode 0700 on Unix: it holds the event store
/// and the workers' workspaces.
fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = std::fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}
