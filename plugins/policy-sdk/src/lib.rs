//! Policy plugins for yoi: the plugin ABI (v1), the [`Policy`] trait and
//! [`export_policy!`].
//!
//! A *policy* decides what each client of a yoi host sees and may do. The host knows
//! every client as a [`Principal`] (a name and a [`Role`]: owner, operator or observer)
//! and passes everything a client would receive and every command it sends through a
//! chain of policies, in the order configured. A policy answers:
//!
//! - for an observed item (a stream event, a worker snapshot, a transcript, a listing):
//!   [`Verdict::Allow`], [`Verdict::Redact`] (a rewritten item in its place: for an event
//!   the same sequence number and cursor) or [`Verdict::Deny`] (not shown; a stream's
//!   cursor still moves past a denied event);
//! - for a [`Command`]: [`CommandVerdict::Allow`] or [`CommandVerdict::Deny`] with a
//!   reason (the client gets `403 forbidden` with it).
//!
//! Each policy sees the item as the policies before it left it; the first deny ends the
//! chain.
//!
//! # Writing a plugin
//!
//! A plugin is a `cdylib` crate:
//!
//! ```toml
//! [package]
//! name = "no-stopping"
//! version = "0.1.0"
//! edition = "2024"
//!
//! [lib]
//! crate-type = ["cdylib"]
//!
//! [dependencies]
//! yoi-policy = { path = "…/plugins/policy-sdk" }
//! ```
//!
//! with one type implementing [`Policy`] and one [`export_policy!`]:
//!
//! ```
//! use yoi_policy::{Command, CommandVerdict, Interest, Policy, Principal, Role};
//!
//! /// Operators may do anything but stop workers.
//! struct NoStopping;
//!
//! impl Policy for NoStopping {
//!     const NAME: &'static str = "no-stopping";
//!     const VERSION: &'static str = env!("CARGO_PKG_VERSION");
//!
//!     fn new(_settings: yoi_policy::serde_json::Value) -> Result<Self, String> {
//!         Ok(NoStopping)
//!     }
//!
//!     fn interest(&self) -> Interest {
//!         Interest::nothing().for_roles([Role::Operator]).commands()
//!     }
//!
//!     fn command(&self, _who: &Principal, command: &Command) -> CommandVerdict {
//!         match command {
//!             Command::Stop { .. } => CommandVerdict::deny("operators may not stop workers"),
//!             _ => CommandVerdict::Allow,
//!         }
//!     }
//! }
//!
//! yoi_policy::export_policy!(NoStopping);
//! ```
//!
//! Settings arrive as JSON: deserialize them into a struct with
//! `#[serde(deny_unknown_fields)]` and return `Err` on anything wrong, so a typo in the
//! host's configuration is reported at load instead of silently ignored.
//!
//! Build it (`cargo build --release`), copy `target/release/libno_stopping.so` into the
//! host's plugins folder, name it in the host's configuration
//! (`[[policies]] plugin = "no-stopping"`) and reload the host. The examples in
//! `plugins/` (`redact-reasoning`, `read-only`, `truncate-tool-output`) are complete
//! plugins with settings.
//!
//! # The contract
//!
//! - **Declare your [`Interest`].** The host calls a policy only for the roles, event
//!   kinds, items and commands it declares; everything else is allowed without a call.
//!   Every decision defaults to allow, so a policy implements only what it decides.
//! - **Event decisions are per role.** The host decides each event once per role and
//!   shares the answer between all principals of that role; decide events by
//!   `principal.role`, not by the name.
//! - **Fail closed.** A panic (caught at the boundary: never build a plugin with
//!   `panic = "abort"`, the macro refuses to compile then), an answer the host cannot
//!   read, or an item the plugin cannot read (a newer host's event kind, say) make the
//!   host deny that item for that client, or refuse the command, and count it. Settings
//!   [`Policy::new`] refuses make the host refuse the whole new chain and keep the one it
//!   had.
//! - **Be quick, be `Sync`.** Calls arrive from many threads at once, on the threads
//!   that serve clients; never block in them.
//! - **Loaded for good.** The host never unloads a plugin library (unloading Rust code
//!   with thread-locals is unsound); a reload loads a new build next to the old one.
//!   Statics are never dropped; [`Policy`] values are dropped when their chain is.
//! - **Versions.** [`abi::ABI_VERSION`] is checked before anything else; a plugin built
//!   for another major version is refused with a message saying so. A plugin built with
//!   an older `yoi-policy` keeps loading within the major version, but items it cannot
//!   read are denied: rebuild plugins when you upgrade the host.
//!
//! # Without Rust
//!
//! The ABI is C: [`abi`] defines the two exported symbols, the function table and the
//! status codes, [`wire`] the JSON each call takes and answers. Every entry point must
//! catch its own failures; the bytes a plugin answers are freed through its own `free`.

#[doc(hidden)]
#[path = "export.rs"]
pub mod __export;
pub mod abi;
mod command;
mod interest;
mod item;
mod policy;
mod principal;
pub mod wire;

pub use command::{Command, CommandVerdict};
pub use interest::Interest;
pub use item::{EventItem, Item, RuntimesItem, SnapshotItem, TranscriptItem, Verdict, WorkersItem};
pub use policy::Policy;
pub use principal::{Principal, Role};

/// For settings: [`Policy::new`] receives a [`serde_json::Value`].
pub use serde_json;
/// The wire types items carry (events, messages, workers, runtimes).
pub use yoi_protocol as protocol;
pub use yoi_protocol::{Event, Message, RuntimeInfo, WorkerInfo, WorkerSnapshot};
