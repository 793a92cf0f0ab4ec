//! The yoi worker runtime **core**: a pure, deterministic state machine (sans-IO).
//!
//! [`Runtime`] holds the workers of one runtime. Commands go in with the current time
//! and return typed results; the events they cause and the effects (model calls, tool
//! calls, aborts) the host must perform are pulled out; completions of those effects are
//! delivered back in batches; [`Runtime::restore`] rebuilds a core from earlier events.
//! The host drains the event and effect queues after every call.
//!
//! The core reads no clock, does no I/O, spawns no thread, uses no randomness and keeps
//! everything in ordered collections, so native and wasm builds behave identically.
//! Built natively it is the host's `NativeCore`; built for `wasm32-wasip2` it is the
//! component (`component.rs`, the wit-bindgen glue).
//!
//! Modules: `runtime` (state, event emission, commands), `deliver` (completions and the
//! step loop), `worker` (per-worker state and the one event `apply`), `context` (which
//! messages a model request carries), `restore`, `validate`, `ids`.
//!
//! Decisions the contract leaves open:
//! - A request id already used by this worker (the run in flight or one of its last 256
//!   runs) returns that run's id and changes nothing, whatever the worker's status
//!   except `stopped`; only then is a running worker `busy`.
//! - `partial-tool-call.index` in snapshots is the order in which the step's tool calls
//!   started (what the events record), not the provider's fragment index. A tool call
//!   keeps the name it started with in snapshots until `tool_call_ready` carries the
//!   whole name. A tool-call id missing, empty or already used in the step is replaced
//!   by `call_<run>_<step>_<index>`.
//! - Empty text and reasoning deltas emit nothing. Every finished step becomes an
//!   assistant message, even an empty one. Tools asked for in the last allowed step
//!   still run; the run then completes with `max_steps`.
//! - Limits and call ids are not part of the events: after a restore the host configures
//!   the limits again and drops the completions of calls made before it.
//! - Between `restore` and `finish_restore`, commands that change state are refused
//!   (`invalid_request`) and deliveries ignored.

mod context;
mod deliver;
mod ids;
mod restore;
mod runtime;
mod validate;
mod worker;

#[cfg(target_family = "wasm")]
mod component;

pub use runtime::Runtime;
pub use yoi_protocol::{
    Completion, CoreError, Effect, Event, EventRecord, Input, Limits, Message, ModelBudget,
    RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};
