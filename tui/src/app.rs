//! The whole state of the client. Only [`update`](crate::update) changes it (the view
//! fills the layout cache and records the size it drew at, nothing else).

use crate::adapter::Conversation;
use crate::composer::Composer;
use crate::layout::{Layout, Pos, Scroll};
use crate::msg::{Cmd, Connection, StreamId};
use crate::picker::Picker;

/// What the command line asked for.
#[derive(Debug, Clone, Default)]
pub struct Options {
    /// Keep the terminal's scrollback (inline viewport) instead of the alternate screen.
    pub inline: bool,
    /// Open this runtime's workers first.
    pub runtime: Option<String>,
    /// Open this worker (of `runtime`, or of the only runtime) right away.
    pub worker: Option<String>,
    /// Create a worker with this name (first model, every tool) and open it.
    pub new_worker: Option<String>,
    /// Where the host is, for the title (never a token).
    pub host_label: String,
    /// `--direct`: talking to one runtime without a host (a debug mode, labelled so).
    pub direct: bool,
    /// Prefix of the request ids of sent messages, unique per start of the client.
    pub session: String,
}

/// Which screen has the keys.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Screen {
    Picker,
    Console,
}

/// A box over the screen.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Overlay {
    Help,
    /// "Stop this worker?"
    ConfirmStop,
}

/// The worker being chatted with.
#[derive(Debug)]
pub struct Console {
    pub runtime_id: String,
    pub worker_id: String,
    pub stream: StreamId,
    /// `None` until the stream's snapshot arrives.
    pub conv: Option<Conversation>,
    pub layout: Layout,
    pub scroll: Scroll,
    pub connection: Connection,
    pub composer: Composer,
    /// Text of a send the host has not answered yet.
    pub sending: Option<String>,
    /// Inline mode: what was printed into the terminal's scrollback.
    pub printed: Pos,
    /// Rows of the conversation view at the last draw (page size).
    pub rows: u16,
}

impl Console {
    pub fn new(runtime_id: String, worker_id: String, stream: StreamId) -> Self {
        Console {
            runtime_id,
            worker_id,
            stream,
            conv: None,
            layout: Layout::default(),
            scroll: Scroll::Follow,
            connection: Connection::Connecting,
            composer: Composer::default(),
            sending: None,
            printed: Pos { cell: 0, line: 0 },
            rows: 0,
        }
    }

    /// Whether the worker has a run in flight, as far as the stream has told.
    pub fn running(&self) -> bool {
        self.conv.as_ref().is_some_and(|c| c.run().is_some())
    }
}

#[derive(Debug)]
pub struct App {
    pub options: Options,
    pub screen: Screen,
    pub picker: Picker,
    pub console: Option<Console>,
    pub overlay: Option<Overlay>,
    /// A short message for the picker's footer (an error of a wish from the command line).
    pub flash: Option<String>,
    pub tick: u64,
    pub quit: bool,
    pub(crate) next_stream: u64,
    pub(crate) next_request: u64,
    /// Command-line wishes not yet fulfilled (cleared once tried).
    pub(crate) wish_runtime: Option<String>,
    pub(crate) wish_worker: Option<String>,
    pub(crate) wish_new: Option<String>,
}

impl App {
    /// The state at start, and the commands that start it (load the runtimes).
    pub fn new(options: Options) -> (Self, Vec<Cmd>) {
        let app = App {
            wish_runtime: options.runtime.clone(),
            wish_worker: options.worker.clone(),
            wish_new: options.new_worker.clone(),
            options,
            screen: Screen::Picker,
            picker: Picker::default(),
            console: None,
            overlay: None,
            flash: None,
            tick: 0,
            quit: false,
            next_stream: 0,
            next_request: 0,
        };
        (app, vec![Cmd::LoadRuntimes])
    }
}
