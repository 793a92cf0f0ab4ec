//! Configuration of an event log.

/// How hard a commit tries to reach the disk. See the crate documentation.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum Durability {
    /// `synchronous=NORMAL`: committed appends survive a killed process; an OS crash or
    /// power loss may lose the last transactions (the store stays consistent).
    #[default]
    Normal,
    /// `synchronous=FULL`: every commit is synced to disk before `append` returns.
    Full,
}

impl Durability {
    pub(crate) fn pragma(self) -> &'static str {
        match self {
            Durability::Normal => "NORMAL",
            Durability::Full => "FULL",
        }
    }
}

/// Settings of an [`EventLog`](crate::EventLog).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogConfig {
    /// How many of the most recent events keep their deltas. `None` (the default) keeps
    /// everything. With `Some(n)`, [`prune`](crate::EventLog::prune) deletes delta events
    /// older than the last `n` events, and cursors older than that expire.
    pub retain_events: Option<u64>,
    /// Capacity of the in-memory window of recent events (`0` disables it; every replay
    /// then reads the store).
    pub window_capacity: usize,
    /// Capacity of the live broadcast; a subscriber that falls further behind than this
    /// gets `Lagged` from its receiver (minimum 1).
    pub broadcast_capacity: usize,
    /// Commit durability.
    pub durability: Durability,
    /// At most this many sequence numbers are pruned per [`prune`](crate::EventLog::prune)
    /// call (minimum 1), which bounds the time one call takes.
    pub prune_batch: u64,
    /// `log2` of the sequence numbers per chunk of the worker index (at most 20), used
    /// when a store is created; an existing store keeps the size it was created with. A
    /// worker-filtered store replay scans the chunks the worker appears in. See the
    /// crate documentation.
    pub index_chunk_bits: u8,
    /// Idle read-only connections kept for store replays (more are opened on demand when
    /// replays run concurrently, and closed afterwards).
    pub read_connections: usize,
    /// The most bytes the store file may grow to (`None`: as far as the disk allows). An
    /// append that would grow it further fails as on a full disk, storing nothing;
    /// space that retention frees is reused. A store already larger keeps its size.
    pub max_store_bytes: Option<u64>,
    /// A thread of the log's own checkpoints the WAL into the store each time about
    /// this many bytes have been appended, so the appending thread never does (`0`: no
    /// thread; SQLite then checkpoints inside the commit that crosses 4,000 pages).
    pub checkpoint_bytes: u64,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            retain_events: None,
            window_capacity: 65_536,
            broadcast_capacity: 16_384,
            durability: Durability::Normal,
            prune_batch: 8_192,
            index_chunk_bits: 10,
            read_connections: 4,
            max_store_bytes: None,
            checkpoint_bytes: 16 << 20,
        }
    }
}
