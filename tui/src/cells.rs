//! The screen model of one worker's conversation: a list of cells.
//!
//! A cell is what the console draws as one block: a user message, a step's reasoning,
//! an assistant answer, a tool call with its result, or a notice (a run that failed or
//! was cancelled, a diagnostic, a command the host refused). Cells are built by the
//! [adapter](crate::Conversation) from a snapshot and live events only.

/// One block of the console.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Cell {
    pub kind: CellKind,
    /// Changes whenever the cell does, so the layout knows what to re-wrap.
    pub(crate) rev: u64,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CellKind {
    User {
        text: String,
    },
    /// A model step's reasoning; `live` while it streams.
    Reasoning {
        text: String,
        live: bool,
    },
    /// A model step's answer, markdown; `live` while it streams.
    Assistant {
        text: String,
        live: bool,
    },
    Tool(ToolCell),
    Notice {
        level: NoticeLevel,
        text: String,
    },
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ToolCell {
    pub id: String,
    pub name: String,
    /// JSON text (partial while it streams).
    pub arguments: String,
    pub state: ToolState,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ToolState {
    /// The model is still writing the arguments.
    Streaming,
    /// Arguments complete; the tool runs.
    Running,
    Done {
        output: String,
        is_error: bool,
    },
    /// The run ended before a result came (cancelled mid-step, interrupted).
    NoResult,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum NoticeLevel {
    Info,
    Warn,
    Error,
}

impl CellKind {
    /// Whether the cell can still change (its run goes on).
    pub fn is_live(&self) -> bool {
        match self {
            CellKind::Reasoning { live, .. } | CellKind::Assistant { live, .. } => *live,
            CellKind::Tool(tool) => {
                matches!(tool.state, ToolState::Streaming | ToolState::Running)
            }
            CellKind::User { .. } | CellKind::Notice { .. } => false,
        }
    }
}
