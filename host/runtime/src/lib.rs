//! Hosting one yoi runtime.
//!
//! - [`core`]: the [`core::Core`] trait over a runtime core, with [`core::NativeCore`]
//!   (the guest crate linked natively) and [`core::WasmCore`] (the component in wasmtime).
//! - [`log`]: the event log: sequence numbers, cursors, SQLite store, in-memory window,
//!   live broadcast.
//! - [`driver`]: performs effects: model providers (the `scripted` model) and sandboxed
//!   workspace tools.

pub mod core;
pub mod driver;
pub mod log;
