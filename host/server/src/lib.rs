//! `yoi-host`: the client-facing backend of yoi.
//!
//! It registers runtimes ([`registry`]: embedded `LocalRuntime`s running the runtime
//! component, and remote `yoi-runtime serve` processes reached over the runtime API) and
//! serves them to clients alike: a REST API under `/api/v1` ([`api`])
//! and WebSocket event streams ([`stream`]) whose cursors resume without gaps or
//! duplicates, behind tokens that name principals ([`auth`], [`clients`]) and the
//! policy chain of drop-in plugins ([`projection`], [`policies`]). What it
//! shares with `yoi-runtime serve` (the stream protocol, errors, token auth, limits,
//! shutdown) is in `yoi-serving`. The README ("The host") documents the API, the stream
//! protocol and the configuration.

pub mod admin;
pub mod api;
pub mod auth;
pub mod cli;
pub mod clients;
pub mod config;
mod ops;
pub mod policies;
pub mod projection;
pub mod registry;
mod router;
pub mod server;
pub mod state;
pub mod stream;

pub use config::Config;
pub use projection::Projection;
pub use registry::{RuntimeHandle, RuntimeRegistry};
pub use router::router;
pub use server::Host;
pub use state::AppState;
pub use yoi_policy::{Principal, Role};
