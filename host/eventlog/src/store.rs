//! The SQLite store: schema, writes, range reads and pruning.
//!
//! Integers that SQLite holds as `i64` (sequence numbers, timestamps, the epoch) are
//! stored bit-for-bit (`u64 as i64`), so every `u64` round-trips exactly.

use crate::block::{self, BLOCK_BYTES};
use crate::config::Durability;
use crate::error::LogError;
use rusqlite::{Connection, OpenFlags, OptionalExtension, params};
use std::collections::HashSet;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;
use yoi_protocol::Envelope;

/// The schema version this build writes and reads (older stores are migrated on open).
pub const SCHEMA_VERSION: i64 = 4;

/// The `kind`s of delta events (the ones for which [`Event::is_delta`] is true): the only
/// events retention deletes. (Schema 2 stored the kind per row; migrating it reads it.)
///
/// [`Event::is_delta`]: yoi_protocol::Event::is_delta
pub const DELTA_KINDS: [&str; 3] = ["reasoning_delta", "text_delta", "tool_call_args_delta"];

pub(crate) const BUSY_TIMEOUT: Duration = Duration::from_secs(5);

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS meta (
    key   TEXT PRIMARY KEY,
    value INTEGER NOT NULL
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    first_seq INTEGER PRIMARY KEY,
    last_seq  INTEGER NOT NULL,
    frames    BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS worker_chunks (
    worker_id TEXT NOT NULL,
    chunk     INTEGER NOT NULL,
    PRIMARY KEY (worker_id, chunk)
) WITHOUT ROWID;
";

const INSERT_BLOCK: &str = "INSERT INTO blocks (first_seq, last_seq, frames) VALUES (?1, ?2, ?3)";
const INSERT_CHUNK: &str = "INSERT OR IGNORE INTO worker_chunks (worker_id, chunk) VALUES (?1, ?2)";
/// The blocks that may hold events with `?1 <= seq <= ?2`: from the one holding `?1` (the
/// last to start at or before it) to the last starting at or before `?2`.
const SELECT_BLOCKS: &str = "SELECT first_seq, frames FROM blocks WHERE first_seq >= coalesce((SELECT first_seq FROM blocks WHERE first_seq <= ?1 ORDER BY first_seq DESC LIMIT 1), 0) AND first_seq <= ?2 ORDER BY first_seq";
/// The chunks of one worker's events with `?2 <= chunk <= ?3`, in order.
const SELECT_CHUNKS: &str = "SELECT chunk FROM worker_chunks WHERE worker_id = ?1 AND chunk >= ?2 AND chunk <= ?3 ORDER BY chunk";

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
/// Options that create a file with mode 0600 (on Unix): the store holds every
/// conversation.
fn private_options() -> std::fs::OpenOptions {
    let mut options = std::fs::OpenOptions::new();
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    options
}

pub(crate) fn lock(path: &Path) -> Result<std::fs::File, LogError> {
    let mut lock_path = path.as_os_str().to_owned();
    lock_path.push(".lock");
    let lock_path = std::path::PathBuf::from(lock_path);
    let file = private_options()
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

/// Opens (creating if needed) the writing connection with WAL and the given durability,
/// its database file limited to `max_bytes` (rounded down to whole pages; SQLite keeps
/// a limit below the current size at the current size).
pub(crate) fn open_writer(
    path: &Path,
    durability: Durability,
    max_bytes: Option<u64>,
    autocheckpoint_pages: u32,
) -> Result<Connection, LogError> {
    // Created here, readable by its owner only; SQLite gives its WAL and shared-memory
    // files the database file's mode.
    private_options()
        .create(true)
        .truncate(false)
        .write(true)
        .open(path)
        .map_err(|e| LogError::Io(format!("{}: {e}", path.display())))?;
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
         PRAGMA wal_autocheckpoint = {autocheckpoint_pages};",
        durability.pragma()
    ))?;
    if let Some(max) = max_bytes {
        let page: u64 = conn.query_row("PRAGMA page_size", [], |r| r.get(0))?;
        let pages = (max / page.max(1)).max(1);
        let _: u64 = conn.query_row(&format!("PRAGMA max_page_count = {pages}"), [], |r| {
            r.get(0)
        })?;
    }
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
    tx.execute_batch(crate::index::SCHEMA)?;
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
            if found < 3 {
                migrate_v2(&tx)?;
            }
            if found < 4 {
                // Schema 4 writes worker-index rows in the binary encoding and still
                // reads the JSON rows of schema 3; the number keeps an older yoi from
                // reading rows it cannot decode.
                tx.execute(
                    "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
                    [SCHEMA_VERSION],
                )?;
            }
            (epoch as u64, horizon as u64, bits)
        }
        None => {
            let stored: bool = tx.query_row(
                "SELECT EXISTS (SELECT 1 FROM blocks) \
                 OR EXISTS (SELECT 1 FROM sqlite_master WHERE name = 'events')",
                [],
                |r| r.get(0),
            )?;
            if stored {
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
    let max = max_seq(&tx)?;
    tx.commit()?;
    Ok(Meta {
        epoch,
        horizon,
        // Pruning only removes seqs <= horizon, so everything above it is still stored.
        last_seq: max.max(horizon),
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
    tracing::info!("event store: worker index migrated from schema 1");
    Ok(chunk_bits)
}

/// Schemas 1 and 2 stored one `events(seq, worker_id, at_ms, kind, body)` row per event;
/// schema 3 stores them in blocks (see [`block`]). Moves the rows into blocks of
/// consecutive events (the JSON bodies are copied, not re-encoded) and drops the old
/// table. The store needs about twice its size in free disk while this runs (the blocks
/// are written through the WAL before the old table is dropped). In the open's
/// transaction: a failed migration leaves the store as it was.
fn migrate_v2(tx: &rusqlite::Transaction<'_>) -> Result<(), LogError> {
    let mut moved = 0u64;
    {
        let mut select =
            tx.prepare("SELECT seq, worker_id, at_ms, kind, body FROM events ORDER BY seq")?;
        let mut insert = tx.prepare(INSERT_BLOCK)?;
        let mut rows = select.query([])?;
        block::cut_blocks(
            &mut Vec::new(),
            |frames| {
                let Some(row) = rows.next()? else {
                    return Ok(None);
                };
                let seq = row.get::<_, i64>(0)? as u64;
                let worker = row
                    .get_ref(1)?
                    .as_str_or_null()
                    .map_err(rusqlite::Error::from)?;
                let kind = row.get_ref(3)?.as_str().map_err(rusqlite::Error::from)?;
                block::encode_json(
                    seq,
                    row.get::<_, i64>(2)? as u64,
                    DELTA_KINDS.contains(&kind),
                    worker.map(str::as_bytes),
                    row.get_ref(4)?.as_bytes().map_err(rusqlite::Error::from)?,
                    frames,
                )?;
                moved += 1;
                Ok(Some(seq))
            },
            |first, last, frames| {
                insert.execute(params![first as i64, last as i64, frames])?;
                Ok(())
            },
        )?;
    }
    tx.execute_batch("DROP TABLE events;")?;
    tx.execute(
        "UPDATE meta SET value = ?1 WHERE key = 'schema_version'",
        [SCHEMA_VERSION],
    )?;
    tracing::info!(
        events = moved,
        "event store migrated to schema {SCHEMA_VERSION} (events in blocks)"
    );
    Ok(())
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
    // Blocks do not overlap, so the last one to start holds the highest seq.
    let max: Option<i64> = conn
        .query_row(
            "SELECT last_seq FROM blocks ORDER BY first_seq DESC LIMIT 1",
            [],
            |r| r.get(0),
        )
        .optional()?;
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

/// Writes a batch (its worker-chunk rows, and the worker-index update if any) in one
/// transaction: one row per block ([`block::cut_blocks`]). `first` is the batch's first
/// sequence number (the batch may be empty when there is an update). `buf` is a
/// reusable encoding buffer. On error the caller must [`ChunkIndex::forget`].
pub(crate) fn insert_batch(
    conn: &mut Connection,
    batch: &[Arc<Envelope>],
    first: u64,
    update: Option<&crate::index::IndexUpdate<'_>>,
    index: &mut ChunkIndex,
    buf: &mut Vec<u8>,
) -> Result<u64, LogError> {
    let tx = conn.transaction()?;
    let mut written = 0u64;
    if let Some(update) = update {
        let last = first + batch.len() as u64 - 1;
        crate::index::write(&tx, update, first, last)?;
    }
    {
        let mut insert = tx.prepare_cached(INSERT_BLOCK)?;
        let mut insert_chunk = tx.prepare_cached(INSERT_CHUNK)?;
        let mut events = batch.iter();
        block::cut_blocks(
            buf,
            |buf| {
                let Some(env) = events.next() else {
                    return Ok(None);
                };
                block::encode(env, buf)?;
                if let Some(worker) = env.worker_id.as_deref()
                    && index.is_new(worker, env.seq)
                {
                    insert_chunk.execute(params![worker, (env.seq >> index.bits) as i64])?;
                }
                Ok(Some(env.seq))
            },
            |first, last, frames| {
                insert.execute(params![first as i64, last as i64, frames])?;
                written += frames.len() as u64;
                Ok(())
            },
        )?;
    }
    tx.commit()?;
    // One huge event must not keep its buffer's size for the life of the log.
    if buf.capacity() > 2 * BLOCK_BYTES {
        *buf = Vec::with_capacity(BLOCK_BYTES);
    }
    Ok(written)
}

/// Stored events with `after < seq <= upto` (of one worker if given), in order, at most
/// `limit` of them. A worker's events are read chunk by chunk through the worker index
/// (`chunk_bits` is the store's), so a quiet worker's replay in a busy log touches only
/// the blocks of the chunks it appears in.
pub(crate) fn read_range(
    conn: &Connection,
    after: u64,
    upto: u64,
    worker: Option<&str>,
    limit: usize,
    chunk_bits: u8,
) -> Result<Vec<Envelope>, LogError> {
    let mut out = Vec::new();
    if limit == 0 || after >= upto {
        return Ok(out);
    }
    let from = after + 1;
    let Some(worker) = worker else {
        read_blocks(conn, from, upto, None, limit, &mut out)?;
        return Ok(out);
    };
    // The chunks are read as the page fills, not all up front: a page near the start of
    // a long history stops after the chunks it needs.
    let mut chunks = conn.prepare_cached(SELECT_CHUNKS)?;
    let mut chunks = chunks.query(params![
        worker,
        (from >> chunk_bits) as i64,
        (upto >> chunk_bits) as i64
    ])?;
    while let Some(row) = chunks.next()? {
        let chunk = row.get::<_, i64>(0)? as u64;
        let lo = from.max(chunk << chunk_bits);
        let hi = upto.min(((chunk + 1) << chunk_bits) - 1);
        read_blocks(conn, lo, hi, Some(worker), limit, &mut out)?;
        if out.len() >= limit {
            break;
        }
    }
    Ok(out)
}

/// Appends to `out` the events with `lo <= seq <= hi` (of `worker`, if given) until it
/// holds `limit`. Frames of other workers are skipped without parsing their JSON.
fn read_blocks(
    conn: &Connection,
    lo: u64,
    hi: u64,
    worker: Option<&str>,
    limit: usize,
    out: &mut Vec<Envelope>,
) -> Result<(), LogError> {
    let mut stmt = conn.prepare_cached(SELECT_BLOCKS)?;
    let mut rows = stmt.query(params![lo as i64, hi as i64])?;
    while let Some(row) = rows.next()? {
        let first = row.get::<_, i64>(0)? as u64;
        let frames = row.get_ref(1)?.as_blob().map_err(rusqlite::Error::from)?;
        for frame in block::frames(frames, first) {
            let frame = frame?;
            if frame.seq > hi {
                return Ok(());
            }
            if frame.seq < lo || !frame.is_of(worker) {
                continue;
            }
            out.push(frame.envelope()?);
            if out.len() >= limit {
                return Ok(());
            }
        }
    }
    Ok(())
}

/// Deletes delta events with `from < seq <= to` and records `to` as the horizon, in one
/// transaction. Returns how many events were deleted. Each block holding such deltas is
/// rewritten without them (keeping its key, so blocks still never overlap), or deleted
/// when nothing is left. The worker index keeps its chunk rows: a chunk whose deltas are
/// gone still holds the worker's complete events (and a chunk left empty costs a replay
/// one empty read).
pub(crate) fn prune(conn: &mut Connection, from: u64, to: u64) -> Result<u64, LogError> {
    let tx = conn.transaction()?;
    let mut deleted = 0;
    {
        let mut select = tx.prepare_cached(SELECT_BLOCKS)?;
        let blocks: Vec<(i64, Vec<u8>)> = select
            .query_map(params![(from + 1) as i64, to as i64], |r| {
                Ok((r.get(0)?, r.get(1)?))
            })?
            .collect::<Result<_, _>>()?;
        let mut kept = Vec::new();
        for (first, frames) in blocks {
            kept.clear();
            let mut removed = 0;
            let mut corrupt = None;
            for frame in block::frames(&frames, first as u64) {
                match frame {
                    Ok(frame) if frame.delta && frame.seq > from && frame.seq <= to => removed += 1,
                    Ok(frame) => frame.copy_to(&mut kept)?,
                    Err(e) => {
                        corrupt = Some(e);
                        break;
                    }
                }
            }
            // A block that cannot be decoded is left as it is (replays through it report
            // it); failing here would stop retention for good.
            if let Some(e) = corrupt {
                tracing::error!(block = first, error = %e, "event log: retention skips an undecodable block");
                continue;
            }
            if removed == 0 {
                continue;
            }
            if kept.is_empty() {
                tx.prepare_cached("DELETE FROM blocks WHERE first_seq = ?1")?
                    .execute([first])?;
            } else {
                tx.prepare_cached("UPDATE blocks SET frames = ?2 WHERE first_seq = ?1")?
                    .execute(params![first, &kept[..]])?;
            }
            deleted += removed;
        }
    }
    tx.prepare_cached("UPDATE meta SET value = ?1 WHERE key = 'horizon'")?
        .execute([to as i64])?;
    tx.commit()?;
    Ok(deleted)
}
