//! The effect driver's building blocks: model providers and sandboxed workspace tools.
//!
//! - [`provider`]: the [`Provider`] trait every model provider implements (object safe,
//!   streams [`Completion`](yoi_protocol::Completion)s to a bounded channel).
//! - [`scripted`]: the `scripted` model, a deterministic offline [`Provider`] for demos,
//!   tests and benchmarks.
//! - [`openai`]: any OpenAI-compatible chat-completions server as a [`Provider`].
//! - [`catalog`]: [`ModelCatalog`], which model names a runtime serves, by which
//!   provider, with which context budget.
//! - [`tools`]: `list_dir`, `read_file`, `write_file` and `search` on per-worker
//!   workspace directories through capability-based file access ([`Workspaces`]).
//!
//! The driver task itself (abort, timeouts, batching into the core) lives in
//! `yoi-runtime`; everything here is usable without it.

pub mod catalog;
pub mod openai;
pub mod provider;
pub mod scripted;
pub mod tools;

pub use catalog::ModelCatalog;
pub use openai::{OpenAiProvider, ProviderConfig};
pub use provider::{BoxFuture, Provider};
pub use scripted::{ScriptedConfig, ScriptedModel};
pub use tools::{Cancel, ToolConfig, ToolOutput, Workspace, Workspaces};
