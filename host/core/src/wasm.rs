//! [`WasmCore`]: the runtime core as a WebAssembly component in wasmtime.
//!
//! The pieces follow the builders of Spin's `spin-core`:
//!
//! - [`WasmEngine`] owns the wasmtime [`Engine`] and its configuration in one place
//!   (component model, epoch interruption) and the background thread that ticks the
//!   engine's epoch. Clone it freely; the ticker stops when the last clone (including
//!   the ones inside [`WasmCore`]s) is dropped.
//! - [`ComponentCache::load`] turns a file into a compiled [`Component`] through an
//!   on-disk cache of compiled components, keyed by
//!   [`Engine::precompile_compatibility_hash`] and the component's hash, so a restart
//!   does not recompile. [`load_component`] is the same load without a cache (tests,
//!   benchmarks, one-off tools).
//! - [`WasmCore::instantiate`] makes one [`Store`] and instance under [`GuestLimits`]: a
//!   memory limit enforced by a `ResourceLimiter` in the store data (a failed grow traps
//!   instead of returning -1 to the guest) and an epoch deadline set afresh before every
//!   call, so a runaway guest traps instead of hanging the runtime's actor.
//!
//! A guest fault (trap, deadline, out of memory) leaves the instance unusable; the core
//! then answers every call with [`FaultKind::Poisoned`] and its owner re-instantiates it
//! and restores it from the event log.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write as _;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use sha2::{Digest, Sha256};
use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};
use yoi_protocol::{
    Completion, CoreError, Effect, EventRecord, IndexChanges, Input, Limits, Message, ModelBudget,
    Residency, RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};

use crate::{CallError, Core, Fault, FaultKind};

/// The bindings `wasmtime::component::bindgen!` generates for `runtime.wit`, and the
/// `From` impls between their types and the `yoi-protocol` mirror (the same macro the
/// guest uses). Public for the drift test; nothing else should need it.
#[doc(hidden)]
pub mod bindings {
    wasmtime::component::bindgen!({
        path: "../../wit",
        world: "runtime",
        additional_derives: [PartialEq, Eq],
    });

    /// The generated WIT types (records, enums and variants of interface `types`).
    pub use self::yoi::runtime::types;

    yoi_protocol::wit_mirror!(self::yoi::runtime::types);
}

use bindings::types as w;

/// Engine-wide settings.
#[derive(Debug, Clone)]
pub struct WasmConfig {
    /// How often the engine's epoch advances; deadlines are counted in these ticks.
    /// Default 10 ms.
    pub epoch_tick: Duration,
}

impl Default for WasmConfig {
    fn default() -> Self {
        WasmConfig {
            epoch_tick: Duration::from_millis(10),
        }
    }
}

/// Per-instance limits of a guest: the sandbox a runtime core runs in.
#[derive(Debug, Clone, Copy)]
pub struct GuestLimits {
    /// Largest linear memory the guest may grow to, in bytes. Default 1 GiB: far above
    /// what thousands of workers' transcripts need, far below what hurts the host. A
    /// grow past it traps ([`FaultKind::OutOfMemory`]).
    pub max_memory_bytes: usize,
    /// Wall time one export call may take before it traps ([`FaultKind::Deadline`]),
    /// measured in epoch ticks (so it traps up to one tick later). Default 5 s: every export is meant to return in
    /// microseconds (a large restore batch in milliseconds), so only a runaway guest
    /// reaches it, even on a loaded machine.
    pub call_deadline: Duration,
    /// Core instances, linear memories and tables the component may create, and the
    /// elements one table may grow to. The defaults fit the runtime component (a few
    /// of each) with room to spare; a guest asking for more fails to instantiate or
    /// traps on the grow.
    pub max_instances: usize,
    pub max_memories: usize,
    pub max_tables: usize,
    pub max_table_elements: usize,
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            max_memory_bytes: 1 << 30,
            call_deadline: Duration::from_secs(5),
            max_instances: 32,
            max_memories: 8,
            max_tables: 32,
            max_table_elements: 1 << 16,
        }
    }
}

/// A wasmtime engine configured for yoi guests, with its epoch ticker.
#[derive(Clone)]
pub struct WasmEngine {
    inner: Arc<EngineInner>,
}

struct EngineInner {
    engine: Engine,
    config: WasmConfig,
    /// Built once: what every instance is linked against.
    linker: Linker<StoreState>,
    /// Dropping it disconnects the ticker thread's channel, which ends the thread.
    _stop_ticker: mpsc::Sender<()>,
}

impl WasmEngine {
    /// An engine with the default [`WasmConfig`].
    pub fn new() -> Result<Self, Fault> {
        Self::with_config(WasmConfig::default())
    }

    pub fn with_config(config: WasmConfig) -> Result<Self, Fault> {
        let mut wasm = Config::new();
        wasm.wasm_component_model(true);
        wasm.epoch_interruption(true);
        let engine = Engine::new(&wasm).map_err(|e| {
            Fault::new(
                FaultKind::Instantiate,
                format!("cannot create the wasm engine: {e:#}"),
            )
        })?;

        let mut linker = Linker::<StoreState>::new(&engine);
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker)
            .and_then(|()| refuse_blocking(&mut linker))
            .map_err(|e| {
                Fault::new(
                    FaultKind::Instantiate,
                    format!("cannot link WASI for the guest: {e:#}"),
                )
            })?;

        let (stop_ticker, stopped) = mpsc::channel::<()>();
        let ticking = engine.clone();
        let tick = config.epoch_tick.max(Duration::from_millis(1));
        thread::Builder::new()
            .name("yoi-wasm-epoch".into())
            .spawn(move || {
                while let Err(RecvTimeoutError::Timeout) = stopped.recv_timeout(tick) {
                    ticking.increment_epoch();
                }
            })
            .map_err(|e| {
                Fault::new(
                    FaultKind::Instantiate,
                    format!("cannot start the epoch ticker thread: {e}"),
                )
            })?;

        Ok(WasmEngine {
            inner: Arc::new(EngineInner {
                engine,
                config,
                linker,
                _stop_ticker: stop_ticker,
            }),
        })
    }

    pub fn engine(&self) -> &Engine {
        &self.inner.engine
    }

    pub fn config(&self) -> &WasmConfig {
        &self.inner.config
    }

    /// `deadline` in epoch ticks: rounded up, plus one because the first tick may come
    /// right after the call starts. A call thus traps between `deadline` and one tick
    /// after it.
    fn ticks(&self, deadline: Duration) -> u64 {
        let tick = self.inner.config.epoch_tick.max(Duration::from_millis(1));
        let whole = deadline.as_nanos().div_ceil(tick.as_nanos());
        u64::try_from(whole).unwrap_or(u64::MAX / 2).max(1) + 1
    }
}

/// The WASI imports that wait: polling pollables and blocking on one. Nothing a core
/// does waits (a sleep is `subscribe-duration` then `block`, and the epoch deadline
/// cannot interrupt the host while it waits), so they trap instead of blocking the
/// runtime's actor thread.
const BLOCKING_IMPORTS: [(&str, &str); 2] = [
    ("wasi:io/poll@0.2.12", "poll"),
    ("wasi:io/poll@0.2.12", "[method]pollable.block"),
];

/// Replaces the [`BLOCKING_IMPORTS`] with functions that trap.
fn refuse_blocking(linker: &mut Linker<StoreState>) -> wasmtime::Result<()> {
    linker.allow_shadowing(true);
    for (instance, func) in BLOCKING_IMPORTS {
        linker
            .instance(instance)?
            .func_new(func, move |_, _, _, _| {
                Err(wasmtime::format_err!(
                    "the guest called `{func}`, which would block: a runtime core never waits"
                ))
            })?;
    }
    linker.allow_shadowing(false);
    Ok(())
}

/// Reads and compiles the component at `path`, without a disk cache: every call
/// compiles. Long-lived processes load through [`ComponentCache::load`] instead.
pub fn load_component(engine: &WasmEngine, path: &Path) -> Result<Component, Fault> {
    load(engine, path, None).map(|loaded| loaded.component)
}

/// A compiled component and how it was obtained.
pub struct Loaded {
    pub component: Component,
    /// Read from the disk cache: nothing was compiled.
    pub from_cache: bool,
}

/// The on-disk cache of compiled components: one file per (engine configuration,
/// component) pair in a directory the caller owns (for the host: `<data-dir>/cache`).
///
/// An entry is named by [`ComponentCache::key`]: the SHA-256 of the engine's
/// [`Engine::precompile_compatibility_hash`] (wasmtime version, target, compiler
/// settings, wasm features) and of the component file's bytes, so a different engine or
/// a rebuilt component never finds a stale entry. The file holds a magic line, the
/// SHA-256 of the payload and the payload (what [`Component::serialize`] wrote).
///
/// Entries are written to a temporary file in the same directory and renamed into
/// place, so a reader sees a whole entry or none, and two processes filling the same
/// entry at once both succeed. Any problem with the cache (directory not writable,
/// entry unreadable, truncated, corrupt or rejected by wasmtime) is logged and the
/// component is compiled instead (and the entry rewritten): the cache can make a load
/// faster, never make it fail. Entries of components no longer used are not removed;
/// deleting the directory at any time is safe.
#[derive(Debug, Clone)]
pub struct ComponentCache {
    dir: PathBuf,
}

/// First bytes of a cache entry (bump the version when the layout changes).
const ENTRY_MAGIC: &[u8] = b"yoi compiled component v1\n";
const DIGEST_LEN: usize = 32;

impl ComponentCache {
    /// A cache in `dir` (created on first write).
    pub fn new(dir: impl Into<PathBuf>) -> Self {
        ComponentCache { dir: dir.into() }
    }

    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// The key of `component` (a component file's bytes) compiled by `engine`: hex
    /// SHA-256 over the engine's compatibility hash and the component's SHA-256.
    pub fn key(engine: &WasmEngine, component: &[u8]) -> String {
        let mut engine_hash = Sha256Hasher(Sha256::new());
        engine
            .engine()
            .precompile_compatibility_hash()
            .hash(&mut engine_hash);
        let mut key = Sha256::new();
        key.update(b"yoi-component-cache\0");
        key.update(engine_hash.0.finalize());
        key.update(Sha256::digest(component));
        hex::encode(key.finalize())
    }

    /// The file the entry `key` lives in.
    pub fn entry_path(&self, key: &str) -> PathBuf {
        self.dir.join(format!("{key}.cwasm"))
    }

    /// Loads the component at `path`: from its cache entry when there is a sound one,
    /// else compiled, and the entry (re)written.
    pub fn load(&self, engine: &WasmEngine, path: &Path) -> Result<Loaded, Fault> {
        load(engine, path, Some(self))
    }

    /// The cached component for `key`, if the entry exists and is sound.
    fn read(&self, engine: &WasmEngine, key: &str) -> Option<Component> {
        let entry = self.entry_path(key);
        let bytes = match fs::read(&entry) {
            Ok(bytes) => bytes,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return None,
            Err(e) => {
                tracing::warn!(entry = %entry.display(), error = %e, "cannot read a compiled-component cache entry; compiling");
                return None;
            }
        };
        let Some(payload) = verified_payload(&bytes) else {
            tracing::warn!(entry = %entry.display(), "corrupt compiled-component cache entry; compiling");
            return None;
        };
        // SAFETY: `Component::deserialize` trusts that its input is an artifact
        // `Component::serialize` produced (the machine code in it is not validated).
        // This payload is exactly such an artifact: only `write` below creates entries
        // in this directory, from `Component::serialize` of a component this process
        // compiled; the entry's name is the hash of the engine's compatibility settings
        // and of the component's bytes, so it was compiled for this engine
        // configuration from these very bytes (wasmtime also rejects an artifact of
        // another version or configuration itself); and the SHA-256 checked above
        // proves the payload is byte for byte what was written, so a truncated,
        // half-written or damaged file is never handed over. The bytes are copied into
        // wasmtime's own memory, so later changes to the file cannot affect the
        // component.
        match unsafe { Component::deserialize(engine.engine(), payload) } {
            Ok(component) => Some(component),
            Err(e) => {
                tracing::warn!(entry = %entry.display(), error = %format!("{e:#}"), "compiled-component cache entry rejected by the engine; compiling");
                None
            }
        }
    }

    /// Writes the entry `key` atomically (temporary file, then rename). Best effort.
    fn write(&self, key: &str, component: &Component) {
        if let Err(e) = self.try_write(key, component) {
            tracing::warn!(dir = %self.dir.display(), error = %e, "cannot write a compiled-component cache entry");
        }
    }

    fn try_write(&self, key: &str, component: &Component) -> Result<(), String> {
        let payload = component.serialize().map_err(|e| format!("{e:#}"))?;
        fs::create_dir_all(&self.dir).map_err(|e| e.to_string())?;
        static TEMP_COUNTER: AtomicU64 = AtomicU64::new(0);
        let temp = self.dir.join(format!(
            ".{key}.{}.{}.tmp",
            std::process::id(),
            TEMP_COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        let written = (|| {
            let mut file = fs::File::create(&temp)?;
            file.write_all(ENTRY_MAGIC)?;
            file.write_all(&Sha256::digest(&payload))?;
            file.write_all(&payload)?;
            drop(file);
            fs::rename(&temp, self.entry_path(key))
        })();
        if written.is_err() {
            let _ = fs::remove_file(&temp);
        }
        written.map_err(|e| e.to_string())
    }
}

/// The payload of an entry whose magic and checksum are right.
fn verified_payload(entry: &[u8]) -> Option<&[u8]> {
    let rest = entry.strip_prefix(ENTRY_MAGIC)?;
    if rest.len() < DIGEST_LEN {
        return None;
    }
    let (digest, payload) = rest.split_at(DIGEST_LEN);
    (Sha256::digest(payload).as_slice() == digest).then_some(payload)
}

/// Feeds what `Hash` writes into SHA-256 (a stable digest, unlike `DefaultHasher`).
struct Sha256Hasher(Sha256);

impl Hasher for Sha256Hasher {
    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }

    /// Unused: the key takes the SHA-256 digest itself.
    fn finish(&self) -> u64 {
        0
    }
}

/// The one load path: read the file, then the cache entry or a compilation.
fn load(engine: &WasmEngine, path: &Path, cache: Option<&ComponentCache>) -> Result<Loaded, Fault> {
    let bytes = fs::read(path).map_err(|e| {
        Fault::new(
            FaultKind::Instantiate,
            format!("cannot read the runtime component {}: {e}", path.display()),
        )
    })?;
    let key = cache.map(|_| ComponentCache::key(engine, &bytes));
    if let (Some(cache), Some(key)) = (cache, &key)
        && let Some(component) = cache.read(engine, key)
    {
        return Ok(Loaded {
            component,
            from_cache: true,
        });
    }
    let component = Component::new(engine.engine(), &bytes).map_err(|e| {
        Fault::new(
            FaultKind::Instantiate,
            format!(
                "cannot compile the runtime component {}: {e:#}",
                path.display()
            ),
        )
    })?;
    if let (Some(cache), Some(key)) = (cache, &key) {
        cache.write(key, &component);
    }
    Ok(Loaded {
        component,
        from_cache: false,
    })
}

/// Where the built runtime component is: `$YOI_GUEST_WASM` when set, else
/// `<target>/guest/yoi_runtime.wasm` (what `cargo xtask build-guest` writes; `<target>`
/// is `$CARGO_TARGET_DIR` or the workspace's `target`). A relative `$YOI_GUEST_WASM`
/// that does not exist from the current directory is looked up from the workspace root
/// (`cargo test` runs each test in its package's directory, while the variable is
/// usually written from the root). Errs, saying how to build it, when the file is
/// missing.
///
/// This is the shipped component, built without the test-only `fault-injection`
/// feature; for that build see [`fault_guest_component_path`]. The path is only where
/// the component *is*: load it through [`ComponentCache::load`] so a restart does not
/// recompile it.
pub fn guest_component_path() -> Result<PathBuf, String> {
    component_path("YOI_GUEST_WASM", "yoi_runtime.wasm", "runtime component")
}

/// The component file to run: `configured` when given (it must exist), else
/// [`guest_component_path`]. The error says how to build the component.
pub fn component_file(configured: Option<&Path>) -> Result<PathBuf, String> {
    match configured {
        Some(path) if path.is_file() => Ok(path.to_path_buf()),
        Some(path) => Err(format!(
            "the runtime component {} does not exist; build it with `cargo xtask build-guest` \
             (it writes target/guest/yoi_runtime.wasm) or pass --component FILE",
            path.display()
        )),
        None => guest_component_path(),
    }
}

/// The component at `path` compiled by the process's one [`WasmEngine`]: each file is
/// compiled once per process (a process may open many runtimes, tests start many
/// servers), and across restarts the compiled code comes from the [`ComponentCache`] in
/// `cache_dir`. A file that changed on disk (size or modification time) is loaded anew.
pub fn shared_component(path: &Path, cache_dir: &Path) -> Result<(WasmEngine, Component), Fault> {
    type Key = (PathBuf, u64, Option<std::time::SystemTime>);
    static SHARED: std::sync::Mutex<
        Option<(WasmEngine, std::collections::HashMap<Key, Component>)>,
    > = std::sync::Mutex::new(None);
    let meta = fs::metadata(path).map_err(|e| {
        Fault::new(
            FaultKind::Instantiate,
            format!("cannot read the component {}: {e}", path.display()),
        )
    })?;
    let key = (path.to_path_buf(), meta.len(), meta.modified().ok());
    let mut shared = SHARED.lock().unwrap_or_else(|e| e.into_inner());
    if shared.is_none() {
        *shared = Some((WasmEngine::new()?, std::collections::HashMap::new()));
    }
    let (engine, components) = shared.as_mut().expect("initialised above");
    if let Some(component) = components.get(&key) {
        return Ok((engine.clone(), component.clone()));
    }
    let loaded = ComponentCache::new(cache_dir).load(engine, path)?;
    tracing::info!(component = %path.display(), from_cache = loaded.from_cache, "runtime component loaded");
    components.insert(key, loaded.component.clone());
    Ok((engine.clone(), loaded.component))
}

/// Where the **test-only** fault-injection build of the runtime component is:
/// `$YOI_GUEST_FAULTS_WASM` when set, else `<target>/guest/yoi_runtime_faults.wasm`
/// (`cargo xtask build-guest` writes it next to the shipped one). In that build the
/// input texts `__yoi_trap__`, `__yoi_hang__` and `__yoi_oom__` make `send-input` trap,
/// loop forever or exhaust memory; recovery tests use it. Errs, saying how to build it,
/// when the file is missing. Never load it outside tests.
pub fn fault_guest_component_path() -> Result<PathBuf, String> {
    component_path(
        "YOI_GUEST_FAULTS_WASM",
        "yoi_runtime_faults.wasm",
        "test-only fault-injection component",
    )
}

/// `$env` when set (relative: from the current directory, else from the workspace
/// root), else `<target>/guest/<file>`; must exist.
fn component_path(env: &str, file: &str, what: &str) -> Result<PathBuf, String> {
    let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
        .ancestors()
        .nth(2)
        .expect("host/core lives two levels below the workspace root");
    let path = match std::env::var_os(env) {
        Some(p) => {
            let path = PathBuf::from(p);
            let from_root = workspace.join(&path);
            if path.is_relative() && !path.is_file() && from_root.is_file() {
                from_root
            } else {
                path
            }
        }
        None => {
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"));
            target.join("guest").join(file)
        }
    };
    require_component(path, env, what)
}

fn require_component(path: PathBuf, env: &str, what: &str) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the {what} {} does not exist; run `cargo xtask build-guest` \
             (or point {env} at a built component)",
            path.display()
        ))
    }
}

/// Bytes of guest stderr kept for fault messages (a guest panic prints there first).
const STDERR_CAPACITY: usize = 64 * 1024;

/// What a guest's [`Store`] carries: its memory limiter and its WASI context.
///
/// `wasm32-wasip2` std imports WASI (stdio, environment, exit, ...) even though the core
/// never does I/O; those imports are satisfied by `wasmtime-wasi` with an empty,
/// deterministic context: no environment, arguments, preopened directories or network,
/// stdin closed, stdout discarded, clocks frozen at zero, randomness a fixed sequence.
/// Stderr goes to a small in-memory pipe whose tail ends up in a fault's message, so a
/// guest panic is reported with its panic message.
struct StoreState {
    limits: StoreLimits,
    wasi: WasiCtx,
    table: ResourceTable,
    stderr: MemoryOutputPipe,
}

impl WasiView for StoreState {
    fn ctx(&mut self) -> WasiCtxView<'_> {
        WasiCtxView {
            ctx: &mut self.wasi,
            table: &mut self.table,
        }
    }
}

/// The guest has no business reading a clock (time comes in as `now-ms`).
struct FrozenClock;

impl HostWallClock for FrozenClock {
    fn resolution(&self) -> Duration {
        Duration::from_secs(1)
    }
    fn now(&self) -> Duration {
        Duration::ZERO
    }
}

impl HostMonotonicClock for FrozenClock {
    fn resolution(&self) -> u64 {
        1_000_000_000
    }
    fn now(&self) -> u64 {
        0
    }
}

impl StoreState {
    fn new(limits: &GuestLimits) -> Self {
        let stderr = MemoryOutputPipe::new(STDERR_CAPACITY);
        let wasi = WasiCtx::builder()
            .stderr(stderr.clone())
            .allow_tcp(false)
            .allow_udp(false)
            .allow_ip_name_lookup(false)
            .wall_clock(FrozenClock)
            .monotonic_clock(FrozenClock)
            .secure_random(Deterministic::new(vec![0x79, 0x6f, 0x69, 0x21]))
            .insecure_random(Deterministic::new(vec![0x79, 0x6f, 0x69, 0x3f]))
            .insecure_random_seed(0x796f69)
            .build();
        StoreState {
            limits: StoreLimitsBuilder::new()
                .memory_size(limits.max_memory_bytes)
                .instances(limits.max_instances)
                .memories(limits.max_memories)
                .tables(limits.max_tables)
                .table_elements(limits.max_table_elements)
                .trap_on_grow_failure(true)
                .build(),
            wasi,
            table: ResourceTable::new(),
            stderr,
        }
    }

    /// The last lines the guest wrote to stderr, if any.
    fn stderr_tail(&self) -> Option<String> {
        let bytes = self.stderr.contents();
        let text = String::from_utf8_lossy(&bytes);
        let text = text.trim();
        if text.is_empty() {
            return None;
        }
        let start = text.len().saturating_sub(2048);
        let start = (start..text.len())
            .find(|&i| text.is_char_boundary(i))
            .unwrap_or(text.len());
        Some(text[start..].to_string())
    }
}

/// The runtime core running as a component instance in its own [`Store`].
///
/// Calls are synchronous and return in microseconds; the owner (the runtime's actor)
/// makes them from its own thread or from `spawn_blocking`, never directly on an async
/// executor thread: the WASI glue of `wasmtime-wasi` enters tokio with `block_on` for
/// the blocking stream operations a panicking guest uses to print its message.
pub struct WasmCore {
    store: Store<StoreState>,
    runtime: bindings::Runtime,
    deadline_ticks: u64,
    fault: Option<Fault>,
    /// Keeps the epoch ticker alive as long as this store may run guest code.
    _engine: WasmEngine,
}

impl WasmCore {
    /// Instantiates `component` (compiled with `engine`) in a fresh store under `limits`.
    pub fn instantiate(
        engine: &WasmEngine,
        component: &Component,
        limits: GuestLimits,
    ) -> Result<Self, Fault> {
        let mut store = Store::new(engine.engine(), StoreState::new(&limits));
        store.limiter(|s| &mut s.limits);
        store.epoch_deadline_trap();
        let deadline_ticks = engine.ticks(limits.call_deadline);
        store.set_epoch_deadline(deadline_ticks);

        let runtime = bindings::Runtime::instantiate(&mut store, component, &engine.inner.linker)
            .map_err(|e| classify("instantiate", e, FaultKind::Instantiate, &store))?;
        Ok(WasmCore {
            store,
            runtime,
            deadline_ticks,
            fault: None,
            _engine: engine.clone(),
        })
    }

    /// Loads the component at `path` and instantiates it: [`load_component`] then
    /// [`WasmCore::instantiate`].
    pub fn from_file(engine: &WasmEngine, path: &Path, limits: GuestLimits) -> Result<Self, Fault> {
        let component = load_component(engine, path)?;
        Self::instantiate(engine, &component, limits)
    }

    /// Whether an earlier call faulted (every later call returns a fault).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    /// Runs one export under a fresh deadline; a failure poisons the core.
    fn call<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(
            &bindings::exports::yoi::runtime::core::Guest,
            &mut Store<StoreState>,
        ) -> wasmtime::Result<R>,
    ) -> Result<R, Fault> {
        if let Some(first) = &self.fault {
            return Err(Fault::poisoned(first));
        }
        self.store.set_epoch_deadline(self.deadline_ticks);
        match f(self.runtime.yoi_runtime_core(), &mut self.store) {
            Ok(r) => Ok(r),
            Err(e) => {
                let fault = classify(what, e, FaultKind::Trap, &self.store);
                self.fault = Some(fault.clone());
                Err(fault)
            }
        }
    }

    fn command<T, R>(
        &mut self,
        what: &str,
        f: impl FnOnce(
            &bindings::exports::yoi::runtime::core::Guest,
            &mut Store<StoreState>,
        ) -> wasmtime::Result<Result<T, w::CoreError>>,
    ) -> Result<R, CallError>
    where
        T: Into<R>,
    {
        match self.call(what, f)? {
            Ok(v) => Ok(v.into()),
            Err(e) => Err(CallError::Rejected(CoreError::from(e))),
        }
    }
}

/// Turns an engine error into a [`Fault`] of the right kind, with what the guest
/// printed to stderr (a panic message) appended. The wasm backtrace is left out: the
/// shipped component is stripped, so it names no functions.
fn classify(
    what: &str,
    e: wasmtime::Error,
    otherwise: FaultKind,
    store: &Store<StoreState>,
) -> Fault {
    let trap = e.downcast_ref::<Trap>();
    let kind = match trap {
        Some(Trap::Interrupt) => FaultKind::Deadline,
        _ if is_memory_limit(&e) => FaultKind::OutOfMemory,
        Some(_) => FaultKind::Trap,
        None => otherwise,
    };
    let cause = match trap {
        Some(t) => t.to_string(),
        None => e.root_cause().to_string(),
    };
    let mut message = match kind {
        FaultKind::Deadline => {
            format!("guest call `{what}` ran past its deadline ({cause})")
        }
        FaultKind::OutOfMemory => {
            format!("guest call `{what}` exceeded the memory limit ({cause})")
        }
        FaultKind::Instantiate => format!("cannot instantiate the runtime component: {e:#}"),
        _ => format!("guest call `{what}` trapped ({cause})"),
    };
    if let Some(stderr) = store.data().stderr_tail() {
        message.push_str("; guest stderr: ");
        message.push_str(&stderr);
    }
    Fault::new(kind, message)
}

/// Whether an error comes from the store's memory limiter refusing a grow.
fn is_memory_limit(e: &wasmtime::Error) -> bool {
    e.chain().any(|c| {
        let s = c.to_string();
        s.contains("forcing trap when growing memory") || s.contains("memory growth failure")
    })
}

fn list<A: Into<B>, B>(v: Vec<A>) -> Vec<B> {
    v.into_iter().map(Into::into).collect()
}

impl Core for WasmCore {
    fn configure(&mut self, limits: Limits) -> Result<(), Fault> {
        let limits = w::Limits::from(limits);
        self.call("configure", |g, s| g.call_configure(s, limits))
    }

    fn configure_models(&mut self, budgets: Vec<ModelBudget>) -> Result<(), Fault> {
        let budgets: Vec<w::ModelBudget> = list(budgets);
        self.call("configure-models", |g, s| {
            g.call_configure_models(s, &budgets)
        })
    }

    fn create_worker(&mut self, now_ms: u64, spec: WorkerSpec) -> Result<WorkerInfo, CallError> {
        let spec = w::WorkerSpec::from(spec);
        self.command("create-worker", |g, s| {
            g.call_create_worker(s, now_ms, &spec)
        })
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerInfo>, Fault> {
        self.call("list-workers", |g, s| g.call_list_workers(s))
            .map(list)
    }

    fn get_worker(&mut self, worker_id: &str) -> Result<WorkerInfo, CallError> {
        self.command("get-worker", |g, s| g.call_get_worker(s, worker_id))
    }

    fn send_input(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        input: Input,
    ) -> Result<String, CallError> {
        let input = w::Input::from(input);
        self.command("send-input", |g, s| {
            g.call_send_input(s, now_ms, worker_id, &input)
        })
    }

    fn cancel(&mut self, now_ms: u64, worker_id: &str) -> Result<String, CallError> {
        self.command("cancel", |g, s| g.call_cancel(s, now_ms, worker_id))
    }

    fn stop(&mut self, now_ms: u64, worker_id: &str) -> Result<WorkerInfo, CallError> {
        self.command("stop", |g, s| g.call_stop(s, now_ms, worker_id))
    }

    fn delete_worker(&mut self, now_ms: u64, worker_id: &str) -> Result<(), CallError> {
        match self.call("delete-worker", |g, s| {
            g.call_delete_worker(s, now_ms, worker_id)
        })? {
            Ok(()) => Ok(()),
            Err(e) => Err(CallError::Rejected(e.into())),
        }
    }

    fn transcript(
        &mut self,
        worker_id: &str,
        start: usize,
        max_bytes: u32,
    ) -> Result<Vec<Message>, CallError> {
        let start = u32::try_from(start).unwrap_or(u32::MAX);
        match self.call("transcript", |g, s| {
            g.call_transcript(s, worker_id, start, max_bytes)
        })? {
            Ok(v) => Ok(list(v)),
            Err(e) => Err(CallError::Rejected(e.into())),
        }
    }

    fn snapshot(&mut self, worker_id: &str, max_bytes: u32) -> Result<WorkerSnapshot, CallError> {
        self.command("snapshot", |g, s| g.call_snapshot(s, worker_id, max_bytes))
    }

    fn pull_events(&mut self, max: usize, max_bytes: u32) -> Result<Vec<EventRecord>, Fault> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        self.call("pull-events", |g, s| g.call_pull_events(s, max, max_bytes))
            .map(list)
    }

    fn pull_effects(&mut self, max: usize, max_bytes: u32) -> Result<Vec<Effect>, Fault> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        self.call("pull-effects", |g, s| {
            g.call_pull_effects(s, max, max_bytes)
        })
        .map(list)
    }

    fn pull_index(&mut self, max_bytes: u32) -> Result<IndexChanges, Fault> {
        self.call("pull-index", |g, s| g.call_pull_index(s, max_bytes))
            .map(Into::into)
    }

    fn residency(&mut self) -> Result<Residency, Fault> {
        self.call("residency", |g, s| g.call_current_residency(s))
            .map(Into::into)
    }

    fn deliver(&mut self, now_ms: u64, completions: Vec<Completion>) -> Result<(), Fault> {
        let completions: Vec<w::Completion> = list(completions);
        self.call("deliver", |g, s| g.call_deliver(s, now_ms, &completions))
    }

    fn restore(&mut self, events: Vec<EventRecord>) -> Result<(), CallError> {
        let events: Vec<w::EventRecord> = list(events);
        match self.call("restore", |g, s| g.call_restore(s, &events))? {
            Ok(()) => Ok(()),
            Err(e) => Err(CallError::Rejected(e.into())),
        }
    }

    fn restore_index(
        &mut self,
        rows: &[u8],
        next_worker: u64,
        next_run: u64,
    ) -> Result<(), CallError> {
        match self.call("restore-index", |g, s| {
            g.call_restore_index(s, rows, next_worker, next_run)
        })? {
            Ok(()) => Ok(()),
            Err(e) => Err(CallError::Rejected(e.into())),
        }
    }

    fn activate(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        events: Vec<EventRecord>,
        last: bool,
    ) -> Result<(), CallError> {
        let events: Vec<w::EventRecord> = list(events);
        match self.call("activate", |g, s| {
            g.call_activate(s, now_ms, worker_id, &events, last)
        })? {
            Ok(()) => Ok(()),
            Err(e) => Err(CallError::Rejected(e.into())),
        }
    }

    fn finish_restore(&mut self, now_ms: u64) -> Result<RestoreSummary, Fault> {
        self.call("finish-restore", |g, s| g.call_finish_restore(s, now_ms))
            .map(Into::into)
    }
}

/// The names of the component's imports, instance exports included
/// (`wasi:cli/stderr@0.2.6#get-stderr`), for diagnostics and tests.
pub fn component_imports(engine: &WasmEngine, component: &Component) -> Vec<String> {
    use wasmtime::component::types::ComponentItem;
    let engine = engine.engine();
    let mut names = Vec::new();
    for (name, item) in component.component_type().imports(engine) {
        match item.ty {
            ComponentItem::ComponentInstance(instance) => {
                for (export, _) in instance.exports(engine) {
                    names.push(format!("{name}#{export}"));
                }
            }
            _ => names.push(name.to_string()),
        }
    }
    names
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_component_says_how_to_build_it() {
        let err = require_component(
            PathBuf::from("/nowhere/yoi_runtime.wasm"),
            "YOI_GUEST_WASM",
            "runtime component",
        )
        .unwrap_err();
        assert!(err.contains("/nowhere/yoi_runtime.wasm"), "{err}");
        assert!(err.contains("cargo xtask build-guest"), "{err}");
        assert!(err.contains("YOI_GUEST_WASM"), "{err}");
    }

    #[test]
    fn deadlines_round_up_to_ticks() {
        let engine = WasmEngine::new().unwrap();
        assert_eq!(engine.ticks(Duration::ZERO), 2);
        assert_eq!(engine.ticks(Duration::from_millis(10)), 2);
        assert_eq!(engine.ticks(Duration::from_millis(11)), 3);
        assert_eq!(engine.ticks(Duration::from_secs(5)), 501);
    }
}
