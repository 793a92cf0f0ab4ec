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
CREATE INDEX IF NOT EXISTS events_worker_seq ON events (worker_id, seq);
";

const INSERT: &str = "INSERT INTO events (seq, worker_id, at_ms, kind, body) VALUES (?1, ?2, ?3, ?4, ?5)";
const SELECT_ALL: &str = "SELECT seq, worker_id, at_ms, body FROM events WHERE seq > ?1 AND seq <= ?2 ORDER BY seq LIMIT ?3";
const SELECT_WORKER: &str = "SELECT seq, worker_id, at_ms, body FROM events WHERE worker_id = ?1 AND seq > ?2 AND seq <= ?3 ORDER BY seq LIMIT ?4";
const PRUNE: &str = "DELETE FROM events WHERE seq > ?1 AND seq <= ?2 AND kind IN ('reasoning_delta', 'text_delta', 'tool_call_args_delta')";

/// What `open` found (or made) in the meta table.
pub(crate) struct Meta {
    pub epoch: u64,
    pub horizon: u64,
    /// The highest sequence number ever handed out (stored or pruned).
    pub last_seq: u64,
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
         PRAGMA journal_size_limit = 67108864;",
        durability.pragma()
    ))?;
    conn.set_prepared_statement_cache_capacity(32);
    Ok(conn)
}

/// Opens a connection for reads only (`query_only`); the store must exist.
pub(crate) fn open_reader(path: &Path) -> Result<Connection, LogError> {
    let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
        | OpenFlags::SQLITE_OPEN_NO_MUTEX
        | OpenFlags::SQLITE_OPEN_URI;
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
    let (epoch, horizon) = match get("schema_version")? {
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
            (epoch as u64, horizon as u64)
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
            (epoch, 0)
        }
    };
    let max: Option<i64> = tx.query_row("SELECT max(seq) FROM events", [], |r| r.get(0))?;
    tx.commit()?;
    Ok(Meta {
        epoch,
        horizon,
        // Pruning only removes seqs <= horizon, so everything above it is still stored.
        last_seq: (max.unwrap_or(0) as u64).max(horizon),
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
            let body =
                std::str::from_utf8(buf).map_err(|e| LogError::Encode(e.to_string()))?;
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
pub(crate) fn read_range(
    conn: &Connection,
    after: u64,
    upto: u64,
    worker: Option<&str>,
    limit: usize,
) -> Result<Vec<Envelope>, LogError> {
    let limit = i64::try_from(limit).unwrap_or(i64::MAX);
    let (after, upto) = (after as i64, upto as i64);
    let mut out = Vec::new();
    let mut rows = match worker {
        Some(w) => {
            let mut stmt = conn.prepare_cached(SELECT_WORKER)?;
            let rows = stmt.query_map(params![w, after, upto, limit], raw_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
        None => {
            let mut stmt = conn.prepare_cached(SELECT_ALL)?;
            let rows = stmt.query_map(params![after, upto, limit], raw_row)?;
            rows.collect::<Result<Vec<_>, _>>()?
        }
    };
    out.reserve(rows.len());
    for raw in rows.drain(..) {
        out.push(decode(raw)?);
    }
    Ok(out)
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
    let deleted = tx
        .prepare_cached(PRUNE)?
        .execute(params![from as i64, to as i64])?;
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'horizon'")?
        .execute([to as i64])?;
    tx.commit()?;
    Ok(deleted as u64)
}
