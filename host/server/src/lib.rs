//! `yoi-host`: the client-facing backend of yoi.
//!
//! It registers runtimes ([`registry`]: today embedded [`LocalRuntime`]s running the
//! runtime component), and serves them to clients ([`server`]): a REST API under
//! `/api/v1` ([`api`]) and WebSocket event streams ([`stream`]) whose cursors resume
//! without gaps or duplicates, behind a token ([`auth`]) and a policy seam
//! ([`projection`]). The README ("The host") documents the API, the stream protocol
//! and the configuration.
//!
//! [`LocalRuntime`]: yoi_runtime::LocalRuntime

pub mod api;
pub mod auth;
pub mod cli;
pub mod config;
pub mod error;
pub mod frames;
pub mod metrics;
pub mod projection;
pub mod registry;
pub mod server;
pub mod stream;

pub use config::Config;
pub use error::HostError;
pub use projection::{PassThrough, Principal, Projection};
pub use registry::{RuntimeHandle, RuntimeRegistry};
pub use server::{AppState, Host, ShutdownTrigger};
