//! Typed errors of the event log.

/// The store failed or holds something this version cannot read.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("stored event {seq} cannot be decoded: {message}")]
    Corrupt { seq: u64, message: String },
    #[error("event cannot be encoded: {0}")]
    Encode(String),
    #[error("event store schema version {found} is not supported (this build reads {supported})")]
    UnsupportedSchema { found: i64, supported: i64 },
    #[error("not a yoi event store: {0}")]
    NotAnEventStore(String),
    /// Another `EventLog` (in this or another process) has the store open for writing.
    #[error("event store {0} is already open for writing")]
    Locked(String),
    #[error("io: {0}")]
    Io(String),
}

/// Why a replay could not be served.
#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The cursor belongs to another store (a different epoch).
    #[error("cursor is from another event log (epoch {epoch:016x})")]
    UnknownEpoch { epoch: u64 },
    /// History right after the cursor was pruned; `oldest` is the oldest sequence number a
    /// cursor may hold and still replay (the log's horizon).
    #[error("cursor expired: history before seq {oldest} is no longer complete")]
    Expired { oldest: u64 },
    /// The cursor is beyond the last event of this log.
    #[error("cursor is ahead of the log (last seq is {last})")]
    Ahead { last: u64 },
    #[error(transparent)]
    Store(#[from] LogError),
}

impl From<rusqlite::Error> for ReplayError {
    fn from(e: rusqlite::Error) -> Self {
        ReplayError::Store(LogError::Sqlite(e))
    }
}
