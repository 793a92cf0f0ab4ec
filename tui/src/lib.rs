//! `yoi-tui`: the terminal client of `yoi-host`.
//!
//! Pick a runtime and a worker (or create one), chat with it, and watch its runs live:
//! reasoning, tool calls, the answer as markdown, usage and status, across reconnects.
//! It is a client of the host's API only (through `yoi-client`): it never sees a
//! runtime's address.
//!
//! The code follows the Elm architecture:
//!
//! - [`App`] is the whole state;
//! - [`Msg`] is everything that happens (keys, answers, stream frames and status);
//! - [`update`] is the one function that changes the state; it performs no I/O and
//!   returns [`Cmd`]s for the tasks;
//! - [`view`] draws the state with ratatui;
//! - the terminal task and the network task only turn what happens into messages.
//!
//! A worker's stream feeds one adapter, [`Conversation`]: the first screen comes from
//! the snapshot, then events are applied in order (duplicates dropped by sequence
//! number; a fresh snapshot after `cursor_expired` or `cursor_unknown` replaces the
//! model). The console's [`Layout`] wraps cells lazily and caches them, so long
//! histories open and scroll without stalls.

mod adapter;
mod app;
mod cell_view;
mod cells;
mod cli;
mod composer;
mod keys;
mod layout;
mod markdown;
mod msg;
mod net;
mod overlay_view;
mod picker;
mod picker_view;
mod run;
mod term;
mod theme;
mod update;
mod view;
mod wrap;

pub use adapter::{Applied, Conversation, RunView};
pub use app::{App, Console, Options, Overlay, Screen};
pub use cell_view::Toggles;
pub use cells::{Cell, CellKind, NoticeLevel, ToolCell, ToolState};
pub use cli::Cli;
pub use layout::{Layout, Pos, Scroll};
pub use msg::{Answer, Cmd, Connection, Failure, Msg, StreamEvent, StreamId, WorkerCommand};
pub use net::Backend;
pub use picker::{CreateForm, Focus, Loadable, Picker};
pub use run::run;
pub use update::update;
pub use view::view;
