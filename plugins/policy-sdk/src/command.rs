//! Commands as a policy sees them, and what it answers.

use serde::{Deserialize, Serialize};
use yoi_protocol::WorkerSpec;

/// A command a client sends to the host.
///
/// New kinds of commands may be added; a plugin built before them sees
/// [`Command::Unknown`] (and should refuse it if it restricts commands at all).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
#[non_exhaustive]
pub enum Command {
    ListRuntimes,
    GetRuntime {
        runtime: String,
    },
    ListWorkers {
        runtime: String,
    },
    CreateWorker {
        runtime: String,
        spec: WorkerSpec,
    },
    GetWorker {
        runtime: String,
        worker: String,
    },
    Input {
        runtime: String,
        worker: String,
        input: yoi_protocol::Input,
    },
    Cancel {
        runtime: String,
        worker: String,
    },
    Stop {
        runtime: String,
        worker: String,
    },
    Transcript {
        runtime: String,
        worker: String,
    },
    /// Opening a stream: one worker's, or (`worker: None`) every worker's of `runtime`
    /// (`runtime: None`: of every runtime).
    Observe {
        runtime: Option<String>,
        worker: Option<String>,
    },
    /// A command this build of the SDK does not know (sent by a newer host).
    #[serde(other)]
    Unknown,
}

impl Command {
    /// The snake_case `type` tag (also the host's metric label).
    pub fn name(&self) -> &'static str {
        match self {
            Command::ListRuntimes => "list_runtimes",
            Command::GetRuntime { .. } => "get_runtime",
            Command::ListWorkers { .. } => "list_workers",
            Command::CreateWorker { .. } => "create_worker",
            Command::GetWorker { .. } => "get_worker",
            Command::Input { .. } => "input",
            Command::Cancel { .. } => "cancel",
            Command::Stop { .. } => "stop",
            Command::Transcript { .. } => "transcript",
            Command::Observe { .. } => "observe",
            Command::Unknown => "unknown",
        }
    }

    /// Whether the command may change state (create, input, cancel, stop). Unknown
    /// commands count as changing state: a policy that guards state refuses what it
    /// cannot read.
    pub fn changes_state(&self) -> bool {
        match self {
            Command::CreateWorker { .. }
            | Command::Input { .. }
            | Command::Cancel { .. }
            | Command::Stop { .. }
            | Command::Unknown => true,
            Command::ListRuntimes
            | Command::GetRuntime { .. }
            | Command::ListWorkers { .. }
            | Command::GetWorker { .. }
            | Command::Transcript { .. }
            | Command::Observe { .. } => false,
        }
    }
}

/// A policy's answer to a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "decision", rename_all = "snake_case")]
pub enum CommandVerdict {
    Allow,
    /// Refused; the host answers `403 forbidden` with `reason`.
    Deny {
        reason: String,
    },
}

impl CommandVerdict {
    pub fn deny(reason: impl Into<String>) -> Self {
        CommandVerdict::Deny {
            reason: reason.into(),
        }
    }
}
