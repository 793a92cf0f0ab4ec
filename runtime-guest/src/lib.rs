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
//! Modules: [`runtime`](Runtime) (state, emission, commands), `deliver` (completions and
//! the step loop), `worker` (per-worker state and the event `apply`), `restore`,
//! `validate`, `ids`.

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
    Completion, CoreError, Effect, Event, EventRecord, Input, Limits, Message, RestoreSummary,
    WorkerInfo, WorkerSnapshot, WorkerSpec,
};
