//! Errors of a [`crate::LocalRuntime`], each with a stable wire code.

use yoi_protocol::{ApiError, CoreError, ErrorCode};

#[derive(Debug, Clone, thiserror::Error)]
pub enum RuntimeError {
    /// The core refused the command (not found, busy, stopped, invalid, limit).
    #[error(transparent)]
    Rejected(#[from] CoreError),
    /// The command named a model no provider serves.
    #[error("unknown model `{0}`")]
    UnknownModel(String),
    /// The core faulted while handling the command; it was restarted from the event
    /// log and the command had no effect.
    #[error("the runtime core faulted and was restarted: {0}")]
    CoreFault(String),
    /// The event log could not persist the command's events; the command is not
    /// acknowledged.
    #[error("event log: {0}")]
    Log(String),
    /// The event store did not take the command's events (a full disk, a failing
    /// device), or refuses appends for now: the command is not acknowledged; the runtime
    /// tries the store again by itself.
    #[error("{0}")]
    StoreUnavailable(String),
    /// The runtime is shutting down or has stopped.
    #[error("the runtime is shutting down")]
    ShuttingDown,
    /// The runtime did not answer within its request deadline (a stuck or overloaded
    /// core). A command may still take effect later: retry it with its request id.
    #[error("the runtime did not answer within {0:?}")]
    Unavailable(std::time::Duration),
}

impl RuntimeError {
    pub fn code(&self) -> ErrorCode {
        match self {
            RuntimeError::Rejected(e) => e.code(),
            RuntimeError::UnknownModel(_) => ErrorCode::InvalidRequest,
            RuntimeError::CoreFault(_) | RuntimeError::Log(_) => ErrorCode::Internal,
            RuntimeError::ShuttingDown => ErrorCode::ShuttingDown,
            RuntimeError::Unavailable(_) | RuntimeError::StoreUnavailable(_) => {
                ErrorCode::RuntimeUnavailable
            }
        }
    }
}

impl From<&RuntimeError> for ApiError {
    fn from(e: &RuntimeError) -> Self {
        ApiError::new(e.code(), e.to_string())
    }
}

/// Why a runtime could not be opened.
#[derive(Debug, thiserror::Error)]
pub enum OpenError {
    #[error("event log: {0}")]
    Log(String),
    #[error("runtime core: {0}")]
    Core(String),
    #[error("restoring the runtime from its event log: {0}")]
    Restore(String),
    #[error("workspace directory {path}: {source}")]
    Workspace {
        path: String,
        source: std::io::Error,
    },
    #[error("starting the runtime thread: {0}")]
    Thread(std::io::Error),
}
