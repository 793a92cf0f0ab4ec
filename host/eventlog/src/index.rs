//! The worker index: every worker's latest info and the core's id counters, written in
//! the same transaction as the events that changed them, so opening a runtime reads
//! one row per worker instead of replaying the whole log.
//!
//! The log does not interpret events: the runtime's core says what changed
//! ([`IndexUpdate`], pulled from the core with the events) and the log stores it. The
//! index is *current* when meta `index_seq` equals the last sequence number; an
//! [`EventLog::append`](crate::EventLog::append) without an update (and every store
//! written before the index existed) leaves it behind, and the owner then rebuilds it
//! from a full replay with a `complete` update.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use yoi_protocol::{WorkerInfo, index_row};

use crate::error::LogError;

pub(crate) const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS worker_index (
    worker_id TEXT NOT NULL UNIQUE,
    info      BLOB NOT NULL
);
";

/// What changed in the workers with one append (see the module docs).
#[derive(Debug, Clone, Copy)]
pub struct IndexUpdate<'a> {
    /// Workers created or changed: their info now (in creation order for new ones, so
    /// the index lists workers oldest first).
    pub changed: &'a [WorkerInfo],
    /// Workers deleted.
    pub deleted: &'a [String],
    /// The core's id counters.
    pub next_worker: u64,
    pub next_run: u64,
    /// `changed` holds every worker: the index is replaced by it (after a full replay).
    pub complete: bool,
}

/// The id counters of a current index.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IndexCounters {
    pub next_worker: u64,
    pub next_run: u64,
}

/// A page of the index: infos oldest first, and where the next page starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct IndexPage {
    pub infos: Vec<WorkerInfo>,
    /// The same infos as one row list ([`yoi_protocol::index_row`]), as the core takes
    /// them.
    pub rows: Vec<u8>,
    /// Pass it as `after` for the next page; `None` when this was the last one.
    pub next: Option<i64>,
}

fn meta(conn: &Connection, key: &str) -> Result<Option<i64>, LogError> {
    Ok(conn
        .query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .optional()?)
}

fn set_meta(tx: &Transaction<'_>, key: &str, value: i64) -> Result<(), LogError> {
    tx.prepare_cached("INSERT OR REPLACE INTO meta (key, value) VALUES (?1, ?2)")?
        .execute(params![key, value])?;
    Ok(())
}

/// Applies `update` in the append's transaction. `first` and `last` are the sequence
/// numbers of the append (`first > last` for an append without events); the index
/// becomes current at `last` if it was current before or the update is complete.
pub(crate) fn write(
    tx: &Transaction<'_>,
    update: &IndexUpdate<'_>,
    first: u64,
    last: u64,
) -> Result<(), LogError> {
    let current = meta(tx, "index_seq")? == Some(first as i64 - 1);
    if update.complete {
        tx.execute("DELETE FROM worker_index", [])?;
    }
    {
        let mut upsert = tx.prepare_cached(
            "INSERT INTO worker_index (worker_id, info) VALUES (?1, ?2) \
             ON CONFLICT (worker_id) DO UPDATE SET info = excluded.info",
        )?;
        let mut row = Vec::with_capacity(256);
        for info in update.changed {
            row.clear();
            index_row::encode(info, &mut row);
            upsert.execute(params![info.id, row])?;
        }
        let mut delete = tx.prepare_cached("DELETE FROM worker_index WHERE worker_id = ?1")?;
        for id in update.deleted {
            delete.execute([id])?;
        }
    }
    if current || update.complete {
        set_meta(tx, "index_seq", last as i64)?;
        set_meta(tx, "next_worker", update.next_worker as i64)?;
        set_meta(tx, "next_run", update.next_run as i64)?;
    }
    Ok(())
}

/// The counters when the index is current at `last_seq`, else `None`.
pub(crate) fn counters(
    conn: &Connection,
    last_seq: u64,
) -> Result<Option<IndexCounters>, LogError> {
    if meta(conn, "index_seq")? != Some(last_seq as i64) {
        return Ok(None);
    }
    let (Some(next_worker), Some(next_run)) = (meta(conn, "next_worker")?, meta(conn, "next_run")?)
    else {
        return Ok(None);
    };
    Ok(Some(IndexCounters {
        next_worker: next_worker as u64,
        next_run: next_run as u64,
    }))
}

/// Up to `limit` infos after position `after` (start with 0), oldest first.
pub(crate) fn page(conn: &Connection, after: i64, limit: usize) -> Result<IndexPage, LogError> {
    let mut stmt = conn.prepare_cached(
        "SELECT rowid, info FROM worker_index WHERE rowid > ?1 ORDER BY rowid LIMIT ?2",
    )?;
    let mut rows = stmt.query(params![after, limit as i64])?;
    let mut infos = Vec::new();
    let mut list = Vec::new();
    let mut last = after;
    while let Some(row) = rows.next()? {
        last = row.get(0)?;
        let bytes = row.get_ref(1)?.as_bytes().map_err(rusqlite::Error::from)?;
        let corrupt = |e: String| LogError::Corrupt {
            seq: 0,
            message: format!("worker index row {last}: {e}"),
        };
        // Rows written before the binary encoding are JSON objects.
        if bytes.first() == Some(&b'{') {
            let info: WorkerInfo =
                serde_json::from_slice(bytes).map_err(|e| corrupt(e.to_string()))?;
            let mut row = Vec::new();
            index_row::encode(&info, &mut row);
            index_row::push(&mut list, &row);
            infos.push(info);
        } else {
            infos.push(index_row::decode(bytes).map_err(corrupt)?);
            index_row::push(&mut list, bytes);
        }
    }
    let next = (infos.len() == limit && limit > 0).then_some(last);
    Ok(IndexPage {
        infos,
        rows: list,
        next,
    })
}
