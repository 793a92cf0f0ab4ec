//! [`WasmCore`]: the runtime core as a WebAssembly component in wasmtime.
//!
//! The pieces follow the builders of Spin's `spin-core`:
//!
//! - [`WasmEngine`] owns the wasmtime [`Engine`] and its configuration in one place
//!   (component model, epoch interruption) and the background thread that ticks the
//!   engine's epoch. Clone it freely; the ticker stops when the last clone (including
//!   the ones inside [`WasmCore`]s) is dropped.
//! - [`load_component`] turns a file into a compiled [`Component`]. It is where the
//!   on-disk cache of compiled components goes (keyed by
//!   [`Engine::precompile_compatibility_hash`] and the component's hash).
//! - [`WasmCore::instantiate`] makes one [`Store`] and instance under [`GuestLimits`]: a
//!   memory limit enforced by a `ResourceLimiter` in the store data (a failed grow traps
//!   instead of returning -1 to the guest) and an epoch deadline set afresh before every
//!   call, so a runaway guest traps instead of hanging the runtime's actor.
//!
//! A guest fault (trap, deadline, out of memory) leaves the instance unusable; the core
//! then answers every call with [`FaultKind::Poisoned`] and its owner re-instantiates it
//! and restores it from the event log.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::mpsc::{self, RecvTimeoutError};
use std::thread;
use std::time::Duration;

use wasmtime::component::{Component, Linker, ResourceTable};
use wasmtime::{Config, Engine, Store, StoreLimits, StoreLimitsBuilder, Trap};
use wasmtime_wasi::p2::pipe::MemoryOutputPipe;
use wasmtime_wasi::random::Deterministic;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtx, WasiCtxView, WasiView};
use yoi_protocol::{
    Completion, CoreError, Effect, EventRecord, Input, Limits, Message, RestoreSummary, WorkerInfo,
    WorkerSnapshot, WorkerSpec,
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

/// Per-instance limits of a guest.
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
}

impl Default for GuestLimits {
    fn default() -> Self {
        GuestLimits {
            max_memory_bytes: 1 << 30,
            call_deadline: Duration::from_secs(5),
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
        wasmtime_wasi::p2::add_to_linker_sync(&mut linker).map_err(|e| {
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

/// Reads and compiles the component at `path`.
///
/// This is where the compiled-component disk cache goes (next issue): look up
/// `(engine compatibility hash, component hash)` and `Component::deserialize_file` on a
/// hit, compile and `serialize` on a miss.
pub fn load_component(engine: &WasmEngine, path: &Path) -> Result<Component, Fault> {
    let bytes = std::fs::read(path).map_err(|e| {
        Fault::new(
            FaultKind::Instantiate,
            format!("cannot read the runtime component {}: {e}", path.display()),
        )
    })?;
    Component::new(engine.engine(), &bytes).map_err(|e| {
        Fault::new(
            FaultKind::Instantiate,
            format!(
                "cannot compile the runtime component {}: {e:#}",
                path.display()
            ),
        )
    })
}

/// Where the built runtime component is: `$YOI_GUEST_WASM` when set, else
/// `<workspace>/target/guest/yoi_runtime.wasm` (what `cargo xtask build-guest` writes).
/// Errs, saying how to build it, when the file is missing.
pub fn guest_component_path() -> Result<PathBuf, String> {
    let path = match std::env::var_os("YOI_GUEST_WASM") {
        Some(p) => PathBuf::from(p),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("host/core lives two levels below the workspace root");
            let target = std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"));
            target.join("guest").join("yoi_runtime.wasm")
        }
    };
    require_component(path)
}

fn require_component(path: PathBuf) -> Result<PathBuf, String> {
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "the runtime component {} does not exist; run `cargo xtask build-guest` \
             (or point YOI_GUEST_WASM at a built component)",
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

    fn transcript(&mut self, worker_id: &str) -> Result<Vec<Message>, CallError> {
        match self.call("transcript", |g, s| g.call_transcript(s, worker_id))? {
            Ok(v) => Ok(list(v)),
            Err(e) => Err(CallError::Rejected(e.into())),
        }
    }

    fn snapshot(&mut self, worker_id: &str) -> Result<WorkerSnapshot, CallError> {
        self.command("snapshot", |g, s| g.call_snapshot(s, worker_id))
    }

    fn pull_events(&mut self, max: usize) -> Result<Vec<EventRecord>, Fault> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        self.call("pull-events", |g, s| g.call_pull_events(s, max))
            .map(list)
    }

    fn pull_effects(&mut self, max: usize) -> Result<Vec<Effect>, Fault> {
        let max = u32::try_from(max).unwrap_or(u32::MAX);
        self.call("pull-effects", |g, s| g.call_pull_effects(s, max))
            .map(list)
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
        let err = require_component(PathBuf::from("/nowhere/yoi_runtime.wasm")).unwrap_err();
        assert!(err.contains("/nowhere/yoi_runtime.wasm"), "{err}");
        assert!(err.contains("cargo xtask build-guest"), "{err}");
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
