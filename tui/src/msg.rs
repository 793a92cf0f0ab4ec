//! Messages into [`update`](crate::update) and the commands it asks the tasks to run.
//!
//! The terminal task turns keys and resizes into messages; the network task runs
//! commands against the host and turns answers and stream items into messages. Neither
//! touches the state: only `update` does.

use std::fmt;
use std::time::Duration;

use crossterm::event::KeyEvent;
use yoi_protocol::{ErrorCode, Frame, Input, RuntimeInfo, WorkerInfo, WorkerSpec};

/// Something that happened.
#[derive(Debug, Clone)]
pub enum Msg {
    Key(KeyEvent),
    Paste(String),
    /// The terminal changed size (what is drawn next uses it).
    Resize,
    /// A timer tick (animations, the clock of a reconnect countdown).
    Tick,
    Runtimes(Result<Vec<RuntimeInfo>, Failure>),
    Workers {
        runtime_id: String,
        result: Result<Vec<WorkerInfo>, Failure>,
    },
    WorkerCreated {
        runtime_id: String,
        result: Result<WorkerInfo, Failure>,
    },
    /// An answer to a command on the open worker.
    Done {
        command: WorkerCommand,
        result: Result<Answer, Failure>,
    },
    /// An item of the stream `id`; items of a stream no longer open are dropped.
    Stream {
        id: StreamId,
        event: StreamEvent,
    },
}

/// What the tasks should do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Cmd {
    LoadRuntimes,
    LoadWorkers {
        runtime_id: String,
    },
    CreateWorker {
        runtime_id: String,
        spec: WorkerSpec,
    },
    /// Open the stream of a worker (closing the one open before).
    OpenStream {
        id: StreamId,
        runtime_id: String,
        worker_id: String,
    },
    CloseStream,
    Worker {
        runtime_id: String,
        worker_id: String,
        command: WorkerCommand,
    },
    Quit,
}

/// A command on one worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerCommand {
    Send(Input),
    Cancel,
    Stop,
}

impl WorkerCommand {
    pub fn name(&self) -> &'static str {
        match self {
            WorkerCommand::Send(_) => "send",
            WorkerCommand::Cancel => "cancel",
            WorkerCommand::Stop => "stop",
        }
    }
}

/// A successful answer to a [`WorkerCommand`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Answer {
    Run { run_id: String },
    Worker(Box<WorkerInfo>),
}

/// Identifies one opened stream.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default)]
pub struct StreamId(pub u64);

/// What a worker stream delivers.
#[derive(Debug, Clone)]
pub enum StreamEvent {
    Frame(Box<Frame>),
    Status(Connection),
}

/// The connection of the open stream, as the status line shows it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub enum Connection {
    #[default]
    Connecting,
    Connected,
    /// Lost; the client tries again after `after` (attempt `attempt`).
    Reconnecting {
        attempt: u32,
        after: Duration,
        reason: String,
    },
    /// The stream ended for good (an error a retry cannot fix).
    Offline(Failure),
}

/// A request the host refused or could not be reached for: the stable code when
/// there is one, and the message. Never holds a token or a URL.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Failure {
    pub code: Option<ErrorCode>,
    pub message: String,
}

impl Failure {
    pub fn new(code: Option<ErrorCode>, message: impl Into<String>) -> Self {
        Failure {
            code,
            message: message.into(),
        }
    }
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.code {
            Some(code) => write!(f, "{code}: {}", self.message),
            None => f.write_str(&self.message),
        }
    }
}
