//! The [`Core`] trait over a yoi runtime core, and its two implementations.
//!
//! A runtime core is the sans-IO state machine of `yoi-runtime-guest` (see DESIGN.md,
//! "The core is sans-IO"): commands go in with the current time, events and effects are
//! pulled out, completions are delivered back. The host and `yoi-runtime` drive it
//! through [`Core`] without knowing where it runs:
//!
//! - [`NativeCore`] links the state machine into the process (`yoi-runtime serve`).
//! - [`WasmCore`] runs the same state machine as a WebAssembly component in wasmtime
//!   (the host's embedded runtimes), under a memory limit and an epoch deadline.
//!
//! Both return the same results and produce the same events and effects for the same
//! calls; the scenario suite in `tests/scenarios.rs` checks that.
//!
//! `WasmCore` and everything around it (engine, component cache) are behind the default
//! cargo feature `wasm`: a native-only build (`default-features = false`) links no
//! wasmtime.
//!
//! Every call distinguishes two kinds of failure ([`CallError`]): the core *rejecting*
//! a command (a typed [`CoreError`] for the client, the core is fine) and the core
//! *faulting* (a [`Fault`]: the guest trapped, ran past its deadline or out of memory,
//! or the native core panicked). After a fault the core's state is lost: every later
//! call returns [`FaultKind::Poisoned`] and the owner rebuilds a fresh core and
//! restores it from its event log.

mod native;
#[cfg(feature = "wasm")]
pub mod wasm;

use std::fmt;

use yoi_protocol::{
    Completion, CoreError, Effect, EventRecord, IndexChanges, Input, Limits, Message, ModelBudget,
    Residency, RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};

pub use native::NativeCore;
#[cfg(feature = "wasm")]
pub use wasm::{
    ComponentCache, GuestLimits, Loaded, WasmConfig, WasmCore, WasmEngine, component_file,
    component_imports, fault_guest_component_path, guest_component_path, load_component,
    shared_component,
};

/// A runtime core: the command API, event and effect pull, completion delivery and
/// restore of `runtime.wit`'s `core` interface, with protocol types.
///
/// Methods take `&mut self` because a wasm call needs the store mutably; the owner (the
/// runtime's actor) serialises calls anyway. `Send + 'static` so the core can move into
/// that actor's thread or task.
///
/// Commands a client sends return [`CallError`], because they may be rejected. Calls
/// that cannot be rejected (pull, deliver, configure, list, finish-restore) return
/// [`Fault`] only: the one way they fail is the core itself failing.
pub trait Core: Send + 'static {
    /// Replace the runtime-wide limits (effective for later commands).
    fn configure(&mut self, limits: Limits) -> Result<(), Fault>;
    /// Replace the models' prompt-token budgets (effective for later model requests).
    fn configure_models(&mut self, budgets: Vec<ModelBudget>) -> Result<(), Fault>;
    /// Create an idle worker (or return the live one an earlier create with the same
    /// request id made).
    fn create_worker(&mut self, now_ms: u64, spec: WorkerSpec) -> Result<WorkerInfo, CallError>;
    /// Every worker, oldest first.
    fn list_workers(&mut self) -> Result<Vec<WorkerInfo>, Fault>;
    fn get_worker(&mut self, worker_id: &str) -> Result<WorkerInfo, CallError>;
    /// Start a run; returns its id (or an earlier run's id for a repeated request id).
    /// `passivated` when the worker must be activated first.
    fn send_input(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        input: Input,
    ) -> Result<String, CallError>;
    /// Cancel the run in flight; returns its id.
    fn cancel(&mut self, now_ms: u64, worker_id: &str) -> Result<String, CallError>;
    /// Stop the worker for good.
    fn stop(&mut self, now_ms: u64, worker_id: &str) -> Result<WorkerInfo, CallError>;
    /// Delete the worker (stopping it first if needed).
    fn delete_worker(&mut self, now_ms: u64, worker_id: &str) -> Result<(), CallError>;
    /// A page of a worker's transcript: from message `start`, as many as fit `max_bytes`
    /// (at least one). `passivated` when the worker's transcript is not in the core.
    fn transcript(
        &mut self,
        worker_id: &str,
        start: usize,
        max_bytes: u32,
    ) -> Result<Vec<Message>, CallError>;
    /// A worker, the first page of its transcript and its in-flight output.
    fn snapshot(&mut self, worker_id: &str, max_bytes: u32) -> Result<WorkerSnapshot, CallError>;
    /// Take up to `max` events produced so far, oldest first, within `max_bytes`.
    fn pull_events(&mut self, max: usize, max_bytes: u32) -> Result<Vec<EventRecord>, Fault>;
    /// Take up to `max` effects produced so far, oldest first, within `max_bytes`.
    fn pull_effects(&mut self, max: usize, max_bytes: u32) -> Result<Vec<Effect>, Fault>;
    /// Take the worker-index changes made so far, within `max_bytes`.
    fn pull_index(&mut self, max_bytes: u32) -> Result<IndexChanges, Fault>;
    /// What the core holds.
    fn residency(&mut self) -> Result<Residency, Fault>;
    /// Deliver completions of earlier effects (unknown or aborted calls are ignored).
    fn deliver(&mut self, now_ms: u64, completions: Vec<Completion>) -> Result<(), Fault>;
    /// Feed events of an earlier life, in order, in one or more calls, to a fresh core.
    /// Rejected when the events do not make sense (for example out of order).
    fn restore(&mut self, events: Vec<EventRecord>) -> Result<(), CallError>;
    /// Instead of `restore`: add workers from a worker index, passivated; `rows` is a
    /// row list ([`yoi_protocol::index_row`]).
    fn restore_index(
        &mut self,
        rows: &[u8],
        next_worker: u64,
        next_run: u64,
    ) -> Result<(), CallError>;
    /// Rebuild a passivated worker from its events (in one or more calls).
    fn activate(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        events: Vec<EventRecord>,
        last: bool,
    ) -> Result<(), CallError>;
    /// End a restore: runs still in flight are closed `interrupted` (events to pull).
    fn finish_restore(&mut self, now_ms: u64) -> Result<RestoreSummary, Fault>;
}

/// Why a call to a [`Core`] failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CallError {
    /// The core refused the command; it is fine and keeps serving. The error goes to the
    /// client with its stable code.
    Rejected(CoreError),
    /// The core failed; see [`Fault`].
    Fault(Fault),
}

impl CallError {
    /// The rejection, if this is one.
    pub fn rejected(&self) -> Option<&CoreError> {
        match self {
            CallError::Rejected(e) => Some(e),
            CallError::Fault(_) => None,
        }
    }
}

impl From<Fault> for CallError {
    fn from(f: Fault) -> Self {
        CallError::Fault(f)
    }
}

impl From<CoreError> for CallError {
    fn from(e: CoreError) -> Self {
        CallError::Rejected(e)
    }
}

impl fmt::Display for CallError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CallError::Rejected(e) => e.fmt(f),
            CallError::Fault(e) => e.fmt(f),
        }
    }
}

impl std::error::Error for CallError {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        match self {
            CallError::Rejected(e) => Some(e),
            CallError::Fault(e) => Some(e),
        }
    }
}

/// What kind of failure a [`Fault`] is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum FaultKind {
    /// The guest trapped (a panic in the guest aborts with a trap too).
    Trap,
    /// The guest ran past its epoch deadline (a runaway loop).
    Deadline,
    /// The guest tried to grow its memory past the limit.
    OutOfMemory,
    /// The component could not be loaded, compiled or instantiated.
    Instantiate,
    /// The native core panicked (caught at the call boundary).
    Panic,
    /// An earlier call faulted; the core's state is lost and it serves nothing more.
    Poisoned,
}

impl FaultKind {
    /// A stable snake_case name (for logs and metrics).
    pub fn as_str(self) -> &'static str {
        match self {
            FaultKind::Trap => "trap",
            FaultKind::Deadline => "deadline",
            FaultKind::OutOfMemory => "out_of_memory",
            FaultKind::Instantiate => "instantiate",
            FaultKind::Panic => "panic",
            FaultKind::Poisoned => "poisoned",
        }
    }
}

/// The core itself failed: an engine failure (trap, epoch deadline, out of memory,
/// instantiation failure) or a caught panic of the native core. Not the client's fault;
/// the core must be rebuilt and restored from the event log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fault {
    pub kind: FaultKind,
    /// What happened, for operators (includes the call and the engine's description).
    pub message: String,
}

impl Fault {
    pub fn new(kind: FaultKind, message: impl Into<String>) -> Self {
        Fault {
            kind,
            message: message.into(),
        }
    }

    /// The fault every call after a fault returns.
    pub(crate) fn poisoned(first: &Fault) -> Self {
        Fault::new(
            FaultKind::Poisoned,
            format!(
                "the runtime core faulted earlier and must be rebuilt ({}: {})",
                first.kind.as_str(),
                first.message
            ),
        )
    }
}

impl fmt::Display for Fault {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "runtime core fault ({}): {}",
            self.kind.as_str(),
            self.message
        )
    }
}

impl std::error::Error for Fault {}
