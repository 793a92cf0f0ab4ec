//! The SQLite store: schema, writes, range reads and pruning.
//!
//! Integers that SQLite holds as `i64` (sequence numbers, timestamps, the epoch) are
//! stored bit-for-bit (`u64 as i64`), so every `u64` round-trips exactly.

use crate::config::Durability;
use crate::error::LogError;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yoi_protocol::{Envelope, Event};

/// The schema version this build writes and reads (older stores are migrated on open).
pub const SCHEMA_VERSION: i64 = 2;

/// The `kind`s of delta events (the ones for which [`Event::is_delta`] is true): the only
/// events retention deletes.
pub const DELTA_KINDS: [&str; 3] = ["reasoning_delta", "text_delta", "tool_call_args_delta"];

const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS events (
    seq       INTEGER PRIMARY KEY,
    worker_id TEXT,
    at_ms     INTEGER NOT NULL,
    kind      TEXT NOT NULL,
    body      TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS worker_chunks (
    worker_id TEXT NOT NULL,
    chunk     INTEGER NOT NULL,
    PRIMARY KEY (worker_id, chunk)
) WITHOUT ROWID;
";

const INSERT: &str =
    "INSERT INTO events (seq, worker_id, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)";
const INSERT_CHUNK: &str = "INSERT OR IGNORE INTO worker_chunks (worker_id, chunk) VALUES (?1, ?2)";
const SELECT_ALL: &str = "SELECT seq, worker_id, at_ms, body FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3";
/// One worker's events: the chunks it appears in, in order (`CROSS JOIN` keeps that loop
/// outside), each scanned by its `seq` range.
const SELECT_WORKER: &str = "SELECT e.seq, e.worker_id, e.at_ms, e.body FROM worker_chunks c CROSS JOIN events e WHERE c.worker_id = ?1 AND c.chunk >= (?2 >> ?5) AND c.chunk <= (?3 >> ?5) AND e.seq >= (c.chunk << ?5) AND e.seq < ((c.chunk + 1) << ?5) AND e.seq > ?2 AND e.seq <= ?3 AND e.worker_id = ?1 ORDER BY c.chunk, e.seq LIMIT ?4";
const PRUNE: &str = "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND kind IN ('reasoning_delta', 'text_delta', 'tool_call_args_delta')";

/// What `open` found (or made) in the meta table.
pub(crate) struct Meta {
    pub epoch: u64,
    pub horizon: u64,
    /// The highest sequence number ever handed out (stored or pruned).
    pub last_seq: u64,
    /// `log2` of the sequence numbers per worker-index chunk, fixed at creation.
    pub chunk_bits: u8,
}

/// Takes the store's writer lock: an exclusive `flock` on `<path>.lock`, held while the
/// returned file is open (the OS releases it when the process dies).
pub(crate) fn lock(path: &Path) -> Result<std::fs::File, LogError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&lock_path)
        .map_err(|e| LogError::Io(format!("{}: {e}", lock_path.display())))?;
    match file.try_lock() {
        Ok(()) => Ok(file),
        Err(std::fs::TryLockError::WouldBlock) => Err(LogError::Locked(path.display().to_string())),
        Err(std::fs::TryLockError::Error(e)) => {
            Err(LogError::Io(format!("{}: {e}", lock_path.display())))
        }
    }
}

/// Opens (creating if needed) the writing connection with WAL and the given durability.
pub(crate) fn open_writer(path: &Path, durability: Durability) -> Result<Connection, LogError> {
    let conn = Connection::open(path)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    let mode: String = conn.query_row("PRAGMA journal_mode = WAL", [], |r| r.get(0))?;
    if !mode.eq_ignore_ascii_case("wal") {
        return Err(LogError::NotAnEventStore(format!(
            "cannot switch the store to WAL mode (journal_mode is {mode})"
        )));
    }
    conn.execute_batch(&format!(
        "PRAGMA synchronous = {};
         PRAGMA temp_store = MEMORY;
         PRAGMA cache_size = -16384;
         PRAGMA journal_size_limit = 67108864;
         PRAGMA wal_autocheckpoint = 4000;",
        durability.pragma()
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens a connection for reads only (`query_only`); the store must exist.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(BUSY_TIMEOUT)?;
    conn.execute_batch("PRAGMA query_only = ON;")?;
    Ok(conn)
}

/// Creates the schema and a new epoch on an empty store (with `chunk_bits` for its
/// worker index), or reads the existing meta, migrating an older schema first.
pub(crate) fn init(conn: &mut Connection, chunk_bits: u8) -> Result<Meta, LogError> {
    let chunk_bits = chunk_bits.min(MAX_CHUNK_BITS);
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let get = |key: &str| -> Result<Option<i64>, rusqlite::Error> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let (epoch, horizon, chunk_bits) = match get("schema_version")? {
        Some(found) if !(1..=SCHEMA_VERSION).contains(&found) => {
            return Err(LogError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(found) => {
            let epoch = get("epoch")?
                .ok_or_else(|| LogError::NotAnEventStore("meta has no epoch".into()))?;
            let horizon = get("horizon")?.unwrap_or(0);
            let bits = match found {
                1 => migrate_v1(&tx, chunk_bits)?,
                _ => get("chunk_bits")?
                    .and_then(|b| u8::try_from(b).ok())
                    .filter(|&b| b <= MAX_CHUNK_BITS)
                    .ok_or_else(|| {
                        LogError::NotAnEventStore("meta has no valid chunk_bits".into())
                    })?,
            };
            (epoch as u64, horizon as u64, bits)
        }
        None => {
            let stored: i64 = tx.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
            if stored != 0 {
                return Err(LogError::NotAnEventStore(
                    "events exist but the meta table is empty".into(),
                ));
            }
            let epoch = new_epoch();
            let mut put = tx.prepare("INSERT INTO meta (key, value) VALUES (?1, ?2)")?;
            put.execute(params!["schema_version", SCHEMA_VERSION])?;
            put.execute(params!["epoch", epoch as i64])?;
            put.execute(params!["horizon", 0i64])?;
            put.execute(params!["chunk_bits", chunk_bits as i64])?;
            (epoch, 0, chunk_bits)
        }
    };
    let max: Option<i64> = tx.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    tx.commit()?;
    Ok(Meta {
        epoch,
        horizon,
        // Pruning only removes seqs <= horizon, so everything above it is still stored.
        last_seq: (max.unwrap_or(0) as u64).max(horizon),
        chunk_bits,
    })
}

/// Largest accepted `chunk_bits` (chunks of 2^20 sequence numbers).
pub(crate) const MAX_CHUNK_BITS: u8 = 20;

/// Schema 1 indexed every event in `worker_seq(worker_id, seq)`, extended lazily up to
/// `indexed_upto`; schema 2 keeps one `worker_chunks` row per worker and chunk, written
/// with the events. Builds the chunk index from the events themselves (so the old
/// index's unindexed tail does not matter), drops the old index. In the open's
/// transaction: a failed migration leaves the store as it was.
fn migrate_v1(tx: &rusqlite::Transaction<'_>, chunk_bits: u8) -> Result<u8, LogError> {
    tx.execute(
        "INSERT OR IGNORE INTO worker_chunks (worker_id, chunk) \
         SELECT DISTINCT worker_id, seq >> ?1 FROM events WHERE worker_id IS NOT NULL",
        [chunk_bits as i64],
    )?;
    tx.execute_batch(
        "DROP TABLE IF EXISTS worker_seq;
         DELETE FROM meta WHERE key = 'indexed_upto';",
    )?;
    tx.execute(
        "INSERT OR REPLACE INTO meta (key, value) VALUES ('chunk_bits', ?1)",
        [chunk_bits as i64],
    )?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [SCHEMA_VERSION],
    )?;
    tracing::info!("event store migrated from schema 1 to {SCHEMA_VERSION}");
    Ok(chunk_bits)
}

/// A random, non-zero epoch.
fn new_epoch() -> u64 {
    loop {
        let epoch: u64 = rand::random();
        if epoch != 0 {
            return epoch;
        }
    }
}

/// The highest stored sequence number (0 when empty).
pub(crate) fn max_seq(conn: &Connection) -> Result<u64, LogError> {
    let max: Option<i64> = conn.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    Ok(max.unwrap_or(0) as u64)
}

/// The workers already in the chunk index for the newest chunk, so an append inserts
/// an index row only for a worker's first event in each chunk.
#[derive(Debug)]
pub(crate) struct ChunkIndex {
    bits: u8,
    chunk: u64,
    workers: HashSet<String>,
}

impl ChunkIndex {
    pub(crate) fn new(bits: u8) -> Self {
        ChunkIndex {
            bits,
            chunk: u64::MAX,
            workers: HashSet::new(),
        }
    }

    /// Forgets what was indexed (after a failed transaction, whose rows rolled back).
    pub(crate) fn forget(&mut self) {
        self.chunk = u64::MAX;
        self.workers.clear();
    }

    /// Whether `(worker, chunk of seq)` still needs its row; remembers that it got one.
    fn is_new(&mut self, worker: &str, seq: u64) -> bool {
        let chunk = seq >> self.bits;
        if chunk != self.chunk {
            self.chunk = chunk;
            self.workers.clear();
        }
        // Only the first event of a worker in a chunk allocates.
        !self.workers.contains(worker) && self.workers.insert(worker.to_string())
    }
}

/// Writes a batch (and its worker-index rows) in one transaction. `buf` is a reusable
/// encoding buffer. On error the caller must [`ChunkIndex::forget`].
pub(crate) fn insert_batch(
    conn: &mut Connection,
    batch: &[Arc<Envelope>],
    index: &mut ChunkIndex,
    buf: &mut Vec<u8>,
) -> Result<(), LogError> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(INSERT)?;
        let mut insert_chunk = tx.prepare_cached(INSERT_CHUNK)?;
        for env in batch {
            buf.clear();
            serde_json::to_writer(&mut *buf, &env.event)
                .map_err(|e| LogError::Encode(e.to_string()))?;
            let body = std::str::from_utf8(buf).map_err(|e| LogError::Encode(e.to_string()))?;
            insert.execute(params![
                env.seq as i64,
                env.worker_id.as_deref(),
                env.at_ms as i64,
                env.event.kind(),
                body
            ])?;
            if let Some(worker) = env.worker_id.as_deref()
                && index.is_new(worker, env.seq)
            {
                insert_chunk.execute(params![worker, (env.seq >> index.bits) as i64])?;
            }
        }
    }
    tx.commit()?;
    Ok(())
}

/// Stored events with `after < seq <= upto` (of one worker if given), in order, at most
/// `limit` of them. A worker's events are read chunk by chunk through the worker index
/// (`chunk_bits` is the store's), so a quiet worker's replay in a busy log touches only
/// the chunks it appears in.
pub(crate) fn read_range(
    conn: &Connection,
    after: u64,
    upto: u64,
    worker: Option<&str>,
    limit: usize,
    chunk_bits: u8,
) -> Result<Vec<Envelope>, LogError> {
    let rows = match worker {
        None => {
            let mut stmt = conn.prepare_cached(SELECT_ALL)?;
            let rows = stmt.query_map(
                params![after as i64, upto as i64, sql_limit(limit)],
                raw_row,
            )?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        Some(worker) => {
            let mut stmt = conn.prepare_cached(SELECT_WORKER)?;
            let rows = stmt.query_map(
                params![
                    worker,
                    after as i64,
                    upto as i64,
                    sql_limit(limit),
                    chunk_bits as i64
                ],
                raw_row,
            )?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
    };
    rows.into_iter().map(decode).collect()
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

type RawRow = (i64, Option<String>, i64, String);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?))
}

fn decode((seq, worker_id, at_ms, body): RawRow) -> Result<Envelope, LogError> {
    let seq = seq as u64;
    let event: Event = serde_json::from_str(&body).map_err(|e| LogError::Corrupt {
        seq,
        message: e.to_string(),
    })?;
    Ok(Envelope {
        seq,
        worker_id,
        at_ms: at_ms as u64,
        event,
    })
}

/// Deletes delta events with `from < seq <= to` and records `to` as the horizon, in one
/// transaction. Returns how many events were deleted. The worker index keeps its chunk
/// rows: a chunk whose deltas are gone still holds the worker's complete events (and a
/// chunk left empty costs a replay one empty range scan).
pub(crate) fn prune(conn: &mut Connection, from: u64, to: u64) -> Result<u64, LogError> {
    let tx = conn.transaction()?;
    let deleted = tx
        .prepare_cached(PRUNE)?
        .execute(params![from as i64, to as i64])?;
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'horizon'")?
        .execute([to as i64])?;
    tx.commit()?;
    Ok(deleted as u64)
}
