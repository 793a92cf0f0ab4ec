//! The SQLite store: schema, writes, range reads and pruning.
//!
//! Integers that SQLite holds as `i64` (sequence numbers, timestamps, the epoch) are
//! stored bit-for-bit (`u64 as i64`), so every `u64` round-trips exactly.

use crate::config::Durability;
use crate::error::LogError;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yoi_protocol::{Envelope, Event};

/// The schema version this build writes and reads.
pub const SCHEMA_VERSION: i64 = 1;

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
CREATE TABLE IF NOT EXISTS worker_seq (
    worker_id TEXT NOT NULL,
    seq       INTEGER NOT NULL,
    PRIMARY KEY (worker_id, seq)
) WITHOUT ROWID;
";

const INSERT: &str =
    "INSERT INTO events (seq, worker_id, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT_ALL: &str = "SELECT seq, worker_id, at_ms, body FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3";
/// A worker's events through the `(worker_id, seq)` index.
const SELECT_WORKER_INDEXED: &str = "SELECT e.seq, e.worker_id, e.at_ms, e.body FROM worker_seq w JOIN events e ON e.seq = w.seq WHERE w.worker_id = ?1 AND w.seq > ?2 AND w.seq <= ?3 ORDER BY w.seq LIMIT ?4";
/// A worker's events in the not yet indexed tail (a bounded scan).
const SELECT_WORKER_TAIL: &str = "SELECT seq, worker_id, at_ms, body FROM events WHERE seq > ?2 AND seq <= ?3 AND worker_id = ?1 ORDER BY seq LIMIT ?4";
const INDEX: &str = "INSERT OR IGNORE INTO worker_seq (worker_id, seq) SELECT worker_id, seq FROM events WHERE seq > ?1 AND seq <= ?2 AND worker_id IS NOT NULL ORDER BY worker_id, seq";
const SET_INDEXED: &str = "UPDATE meta SET value = ?1 WHERE key = 'indexed_upto'";
const PRUNE_INDEX: &str = "DELETE FROM worker_seq WHERE (worker_id, seq) IN (SELECT worker_id, seq FROM events WHERE seq > ?1 AND seq <= ?2 AND worker_id IS NOT NULL AND kind IN ('reasoning_delta', 'text_delta', 'tool_call_args_delta'))";
const PRUNE: &str = "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND kind IN ('reasoning_delta', 'text_delta', 'tool_call_args_delta')";

/// What `open` found (or made) in the meta table.
pub(crate) struct Meta {
    pub epoch: u64,
    pub horizon: u64,
    /// The highest sequence number ever handed out (stored or pruned).
    pub last_seq: u64,
    /// Every event with a worker and `seq <= indexed_upto` is in `worker_seq`.
    pub indexed_upto: u64,
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

/// Creates the schema and a new epoch on an empty store, or reads the existing meta.
pub(crate) fn init(conn: &mut Connection) -> Result<Meta, LogError> {
    let tx = conn.transaction_with_behavior(rusqlite::TransactionBehavior::Immediate)?;
    tx.execute_batch(SCHEMA)?;
    let get = |key: &str| -> Result<Option<i64>, rusqlite::Error> {
        tx.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
            .optional()
    };
    let (epoch, horizon, indexed_upto) = match get("schema_version")? {
        Some(found) if found != SCHEMA_VERSION => {
            return Err(LogError::UnsupportedSchema {
                found,
                supported: SCHEMA_VERSION,
            });
        }
        Some(_) => {
            let epoch = get("epoch")?
                .ok_or_else(|| LogError::NotAnEventStore("meta has no epoch".into()))?;
            let horizon = get("horizon")?.unwrap_or(0);
            let indexed = get("indexed_upto")?.unwrap_or(0);
            (epoch as u64, horizon as u64, indexed as u64)
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
            put.execute(params!["indexed_upto", 0i64])?;
            (epoch, 0, 0)
        }
    };
    let max: Option<i64> = tx.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    tx.commit()?;
    Ok(Meta {
        epoch,
        horizon,
        // Pruning only removes seqs <= horizon, so everything above it is still stored.
        last_seq: (max.unwrap_or(0) as u64).max(horizon),
        indexed_upto,
    })
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

/// Writes a batch in one transaction. `buf` is a reusable encoding buffer.
pub(crate) fn insert_batch(
    conn: &mut Connection,
    batch: &[Arc<Envelope>],
    buf: &mut Vec<u8>,
) -> Result<(), LogError> {
    let tx = conn.transaction()?;
    {
        let mut insert = tx.prepare_cached(INSERT)?;
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
        }
    }
    tx.commit()?;
    Ok(())
}

/// Stored events with `after < seq <= upto` (of one worker if given), in order, at most
/// `limit` of them.
///
/// A worker's events are found through the `worker_seq` index up to `indexed_upto` and by
/// a scan of the (bounded) tail after it, both in one read transaction.
pub(crate) fn read_range(
    conn: &Connection,
    after: u64,
    upto: u64,
    worker: Option<&str>,
    limit: usize,
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
            let tx = conn.unchecked_transaction()?;
            let indexed = tx
                .prepare_cached("SELECT value FROM meta WHERE key = 'indexed_upto'")?
                .query_row([], |r| r.get::<_, i64>(0))
                .optional()?
                .unwrap_or(0) as u64;
            let mut rows = Vec::new();
            let split = indexed.min(upto);
            if after < split {
                let mut stmt = tx.prepare_cached(SELECT_WORKER_INDEXED)?;
                let found = stmt.query_map(
                    params![worker, after as i64, split as i64, sql_limit(limit)],
                    raw_row,
                )?;
                for row in found {
                    rows.push(row?);
                }
            }
            if rows.len() < limit && split < upto {
                let mut stmt = tx.prepare_cached(SELECT_WORKER_TAIL)?;
                let found = stmt.query_map(
                    params![
                        worker,
                        after.max(split) as i64,
                        upto as i64,
                        sql_limit(limit - rows.len())
                    ],
                    raw_row,
                )?;
                for row in found {
                    rows.push(row?);
                }
            }
            tx.commit()?;
            rows
        }
    };
    rows.into_iter().map(decode).collect()
}

fn sql_limit(limit: usize) -> i64 {
    i64::try_from(limit).unwrap_or(i64::MAX)
}

/// Adds the events with `from < seq <= to` to the `(worker_id, seq)` index and records
/// `to` as indexed, in one transaction. Sorting first makes each index page written once
/// per call instead of once per event.
pub(crate) fn index_range(conn: &mut Connection, from: u64, to: u64) -> Result<(), LogError> {
    let tx = conn.transaction()?;
    tx.prepare_cached(INDEX)?
        .execute(params![from as i64, to as i64])?;
    tx.prepare_cached(SET_INDEXED)?.execute([to as i64])?;
    tx.commit()?;
    Ok(())
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
/// transaction. Returns how many events were deleted.
pub(crate) fn prune(conn: &mut Connection, from: u64, to: u64) -> Result<u64, LogError> {
    let tx = conn.transaction()?;
    tx.prepare_cached(PRUNE_INDEX)?
        .execute(params![from as i64, to as i64])?;
    let deleted = tx
        .prepare_cached(PRUNE)?
        .execute(params![from as i64, to as i64])?;
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'horizon'")?
        .execute([to as i64])?;
    tx.commit()?;
    Ok(deleted as u64)
}
