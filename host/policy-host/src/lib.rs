//! The host side of yoi's policy plugins: loads plugin libraries (ABI v1, see
//! [`yoi_policy`]), builds the configured chain, evaluates it, and reloads it.
//!
//! ```no_run
//! use yoi_policy::{Principal, Role};
//! use yoi_policy_host::{
//!     ChainOptions, EventDecision, EventRef, PluginLoader, PluginSources, Policies, PolicyEntry,
//! };
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let envelope: yoi_protocol::Envelope = unimplemented!();
//! let loader = PluginLoader::new("data/cache/plugins")?;
//! let sources = PluginSources::dir("data/plugins");
//! let entries = vec![PolicyEntry::new(
//!     "redact-reasoning",
//!     serde_json::json!({"roles": ["observer"]}),
//! )];
//! // At startup: refuse to serve without the configured policies.
//! let (policies, _report) = Policies::open(loader, ChainOptions::default(), &sources, &entries)
//!     .map_err(|report| format!("policy plugins refused: {:?}", report.refused))?;
//!
//! // For each event a stream is about to send:
//! let observer = Principal::new("ci", Role::Observer);
//! let event = EventRef::new("local", 7, &envelope);
//! match policies.chain().observe_event(&observer, &event, || {
//!     serde_json::to_string(&envelope.event).unwrap() // the host's cached JSON instead
//! }) {
//!     EventDecision::Allow => { /* the shared frame */ }
//!     EventDecision::Redact(redacted) => { /* a frame around redacted.json() */ }
//!     EventDecision::Deny => { /* nothing; the cursor moves on */ }
//! }
//!
//! // On SIGHUP or the reload endpoint (off the async threads: it blocks):
//! let report = policies.reload(&sources, &entries);
//! # Ok(()) }
//! ```
//!
//! # Behaviour
//!
//! - **Loading.** Every library in the plugins folder is loaded (see
//!   [`PluginSources`]). The ABI version symbol is called before anything else and a
//!   plugin of another major version is refused with a message saying which; then the
//!   function table's size (at least v1's) and entries, then its name and version. A
//!   plugin is named in the configuration by the name it reports. Files are loaded
//!   through private copies named by content in a staging folder, so a new build copied
//!   over an old one is picked up by the next reload, and nothing done to the plugins
//!   folder touches the code the host runs.
//! - **Never unloaded.** A loaded library stays mapped until the process exits, even when
//!   refused or no longer configured: unloading Rust code that used thread-locals is
//!   unsound, and a plugin's initialisers have run the moment it was opened. Each
//!   distinct build loaded costs its size in memory once (the same build is not loaded
//!   twice).
//! - **Reload is all or nothing.** [`Policies::reload`] loads every file and initialises
//!   every entry with its settings (once per chain). Anything refused (a file that does
//!   not load, two files reporting one name, an entry naming no plugin, settings a
//!   plugin rejects) leaves the chain in use as it is; the [`ReloadReport`] lists what
//!   loaded and what was refused and why. Otherwise the new chain is swapped in
//!   atomically: a stream's next decision uses it.
//! - **Evaluation.** Policies run in order, each seeing the item as the previous left
//!   it; the first deny ends it. A policy is asked only about what its
//!   [`Interest`](yoi_policy::Interest) declares (roles, event kinds, item kinds,
//!   commands); everything else is allowed without a call, so a chain that redacts
//!   reasoning costs nothing on text deltas.
//! - **Events are decided once per (event, role)** and shared by every stream of that
//!   role, from a bounded cache ([`ChainOptions::cache_slots`] recent events). The event's
//!   JSON the host already built for its frames is passed to plugins as it is; a
//!   redaction comes back as the rewritten event with its JSON ([`Redacted::json`]),
//!   encoded once.
//! - **Fail closed, stay up.** A plugin that panics (caught inside it by the SDK), answers
//!   garbage (not JSON, the wrong shape, an unknown status, a null pointer) or cannot read
//!   its input denies the item to that principal, or refuses the command
//!   ([`CommandRefusal::Failed`]); the failure is counted ([`PolicyMetrics`]) and logged
//!   (the first time and at every power of two). A plugin can still take the process
//!   down by crashing outright (a segfault, an abort): it runs in-process, and the
//!   operator installs only plugins they trust.

mod cache;
mod call;
mod chain;
mod config;
mod instance;
mod library;
mod metrics;
mod policies;
mod report;
mod staging;

pub use call::CallError;
pub use chain::{ChainOptions, CommandRefusal, EventDecision, EventRef, PolicyChain, Redacted};
pub use config::{PluginSources, PolicyEntry};
pub use library::{LoadError, Plugin, PluginLoader};
pub use metrics::{FailureCount, MetricsSnapshot, PolicyMetrics};
pub use policies::{ChainGuard, Policies};
pub use report::{LoadedPlugin, Refusal, ReloadReport};
