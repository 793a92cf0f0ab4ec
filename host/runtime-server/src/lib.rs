//! `yoi-runtime serve`: one [`LocalRuntime`](yoi_runtime::LocalRuntime) served over the
//! runtime API of DESIGN.md ("The runtime API"), on `yoi-serving` like `yoi-host`.
//!
//! - REST under `/v1` ([`api`]): the runtime (`GET /v1/runtime`), workers and their
//!   commands, transcripts, snapshots with their cursors, and replay pages
//!   (`GET /v1/events?after=&worker=&limit=`).
//! - WebSocket streams ([`stream`]): runtime-wide and one worker's, with the handshake,
//!   frames and cursor outcomes of the host's streams.
//! - `/healthz`, `/readyz`, `/metrics`; a bearer token (created 0600 in the data dir on
//!   first start, or given); the config conventions of the host ([`config`]).
//!
//! The core is native by default; with `--component` (cargo feature `wasm`, on by
//! default) it is the runtime component in wasmtime ([`core`]). The README ("The runtime
//! server") documents flags, config and API.

pub mod api;
pub mod cli;
pub mod config;
pub mod core;
mod ops;
mod router;
pub mod server;
pub mod state;
pub mod stream;

pub use config::Config;
pub use router::router;
pub use server::RuntimeServer;
pub use state::AppState;
