//! The write side: [`EventLog`].

use crate::checkpoint::Checkpointer;
use crate::config::LogConfig;
use crate::error::{LogError, ReplayError};
use crate::index::{IndexCounters, IndexPage, IndexUpdate};
use crate::reader::{Counters, LogReader, LogStats, ReplayPage, Shared};
use crate::store;
use crate::window::Window;
use rusqlite::Connection;
use std::fmt;
use std::path::Path;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex, RwLock};
use std::time::Instant;
use tokio::sync::broadcast;
use yoi_protocol::{Cursor, Envelope, EventRecord};

/// What one [`EventLog::prune`] call did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Pruned {
    /// The horizon after the call: cursors with `seq` below it have expired.
    pub horizon: u64,
    /// Delta events deleted by this call.
    pub deleted: u64,
    /// The horizon has not reached its target yet (the call stopped after
    /// [`LogConfig::prune_batch`] sequence numbers); call again.
    pub remaining: bool,
}

/// The event log, owned by one thread. See the crate documentation.
pub struct EventLog {
    /// Dropped first: its connection closes before the writer's.
    checkpointer: Checkpointer,
    conn: Connection,
    /// The writer lock; released after `conn` is closed (fields drop in order).
    _lock: std::fs::File,
    config: LogConfig,
    shared: Arc<Shared>,
    live: broadcast::Sender<Arc<Envelope>>,
    /// The highest sequence number handed out and committed.
    last_seq: u64,
    horizon: u64,
    /// The worker index's newest chunk, as far as this writer has written it.
    index: store::ChunkIndex,
    encode_buf: Vec<u8>,
}

impl EventLog {
    /// Opens the store at `path`, creating it (with a new random epoch) if it does not
    /// exist. On an existing store, sequence numbers continue after the highest one
    /// stored, and the epoch and horizon are kept. The window starts empty.
    ///
    /// Only one `EventLog` may have a store open at a time (an exclusive lock on
    /// `<path>.lock`); a second `open` fails with [`LogError::Locked`].
    pub fn open(path: &Path, config: LogConfig) -> Result<EventLog, LogError> {
        let lock = store::lock(path)?;
        let autocheckpoint = if config.checkpoint_bytes == 0 {
            4000
        } else {
            crate::checkpoint::BACKSTOP_PAGES
        };
        let mut conn = store::open_writer(
            path,
            config.durability,
            config.max_store_bytes,
            autocheckpoint,
        )?;
        let meta = store::init(&mut conn, config.index_chunk_bits)?;
        let (live, _) = broadcast::channel(config.broadcast_capacity.max(1));
        let shared = Arc::new(Shared {
            path: path.to_path_buf(),
            epoch: meta.epoch,
            chunk_bits: meta.chunk_bits,
            last_seq: meta.last_seq.into(),
            horizon: meta.horizon.into(),
            window: RwLock::new(Window::new(config.window_capacity)),
            live: live.downgrade(),
            pool: Mutex::new(Vec::new()),
            pool_max: config.read_connections,
            counters: Counters::default(),
        });
        tracing::debug!(
            path = %path.display(),
            epoch = format_args!("{:016x}", meta.epoch),
            last_seq = meta.last_seq,
            horizon = meta.horizon,
            "event log opened"
        );
        let checkpointer = Checkpointer::start(path, config.checkpoint_bytes, shared.clone())?;
        let log = EventLog {
            checkpointer,
            conn,
            _lock: lock,
            config,
            shared,
            live,
            last_seq: meta.last_seq,
            horizon: meta.horizon,
            index: store::ChunkIndex::new(meta.chunk_bits),
            encode_buf: Vec::with_capacity(1024),
        };
        Ok(log)
    }

    /// A read handle for other threads and tasks.
    pub fn reader(&self) -> LogReader {
        LogReader {
            shared: self.shared.clone(),
        }
    }

    /// Appends a batch: consecutive sequence numbers, one transaction, commit; then the
    /// envelopes go to the window and the live broadcast (only after the commit). Returns
    /// the published envelopes. On error nothing was stored or published.
    ///
    /// The time spent in the store is in [`stats`](Self::stats) (`store_write_nanos`).
    ///
    /// The worker index is left behind (see [`append_indexed`](Self::append_indexed)).
    pub fn append(&mut self, records: Vec<EventRecord>) -> Result<Vec<Arc<Envelope>>, LogError> {
        self.write(records, None)
    }

    /// [`append`](Self::append), and the worker-index `update` in the same transaction
    /// (also when `records` is empty).
    pub fn append_indexed(
        &mut self,
        records: Vec<EventRecord>,
        update: &IndexUpdate<'_>,
    ) -> Result<Vec<Arc<Envelope>>, LogError> {
        self.write(records, Some(update))
    }

    /// The worker index's id counters when it is current (reflects every stored event),
    /// else `None`: the owner must rebuild it (see [`IndexUpdate::complete`]).
    pub fn index_counters(&self) -> Result<Option<IndexCounters>, LogError> {
        crate::index::counters(&self.conn, self.last_seq)
    }

    /// A page of the worker index, oldest worker first: `after` 0 for the first page,
    /// then the page's `next`.
    pub fn index_page(&self, after: i64, limit: usize) -> Result<IndexPage, LogError> {
        crate::index::page(&self.conn, after, limit)
    }

    fn write(
        &mut self,
        records: Vec<EventRecord>,
        update: Option<&IndexUpdate<'_>>,
    ) -> Result<Vec<Arc<Envelope>>, LogError> {
        if records.is_empty() && update.is_none() {
            return Ok(Vec::new());
        }
        let first = self.last_seq + 1;
        let batch: Vec<Arc<Envelope>> = records
            .into_iter()
            .zip(first..)
            .map(|(r, seq)| {
                Arc::new(Envelope {
                    seq,
                    worker_id: r.worker_id,
                    at_ms: r.at_ms,
                    event: r.event,
                })
            })
            .collect();
        let started = Instant::now();
        match store::insert_batch(
            &mut self.conn,
            &batch,
            first,
            update,
            &mut self.index,
            &mut self.encode_buf,
        ) {
            Ok(bytes) => self.checkpointer.appended(bytes),
            Err(e) => {
                self.index.forget();
                self.resync();
                return Err(e);
            }
        }
        let written = Instant::now();
        // Counted before publication: whoever has seen an event sees it counted.
        let c = &self.shared.counters;
        c.events_appended
            .fetch_add(batch.len() as u64, Ordering::Relaxed);
        c.commits.fetch_add(1, Ordering::Relaxed);
        c.store_write_nanos.fetch_add(
            written.duration_since(started).as_nanos() as u64,
            Ordering::Relaxed,
        );
        let last = self.last_seq + batch.len() as u64;
        self.last_seq = last;
        {
            let mut window = self.shared.window_write();
            for env in &batch {
                window.push(env.clone());
            }
            self.shared.last_seq.store(last, Ordering::Release);
        }
        for env in &batch {
            // An error only means nobody is subscribed.
            let _ = self.live.send(env.clone());
        }
        c.publish_nanos
            .fetch_add(written.elapsed().as_nanos() as u64, Ordering::Relaxed);
        Ok(batch)
    }

    /// After a failed append: never hand out a sequence number the store already holds.
    /// (A commit reported as failed that still reached the store would leave events
    /// nobody was shown; they become visible to replays, and the window restarts.)
    fn resync(&mut self) {
        match store::max_seq(&self.conn) {
            Ok(max) if max > self.last_seq => {
                tracing::warn!(
                    published = self.last_seq,
                    stored = max,
                    "event log: a failed append reached the store"
                );
                self.last_seq = max;
                let mut window = self.shared.window_write();
                window.clear();
                self.shared.last_seq.store(max, Ordering::Release);
            }
            Ok(_) => {}
            Err(e) => tracing::error!(error = %e, "event log: cannot read the last stored seq"),
        }
    }

    /// Applies retention (see the crate documentation): moves the horizon towards
    /// `last_seq - retain_events` by at most `prune_batch` and deletes the delta events
    /// up to it. Returns at once when there is nothing to do.
    pub fn prune(&mut self) -> Result<Pruned, LogError> {
        let idle = Pruned {
            horizon: self.horizon,
            deleted: 0,
            remaining: false,
        };
        let Some(retain) = self.config.retain_events else {
            return Ok(idle);
        };
        let target = self.last_seq.saturating_sub(retain);
        if target <= self.horizon {
            return Ok(idle);
        }
        let to = target.min(self.horizon.saturating_add(self.config.prune_batch.max(1)));
        // Readers check the horizon after reading the store, so raising it first means no
        // replay can return a page with deleted events missing.
        self.shared.horizon.store(to, Ordering::SeqCst);
        match store::prune(&mut self.conn, self.horizon, to) {
            Ok(deleted) => {
                self.horizon = to;
                self.shared
                    .counters
                    .events_pruned
                    .fetch_add(deleted, Ordering::Relaxed);
                Ok(Pruned {
                    horizon: to,
                    deleted,
                    remaining: to < target,
                })
            }
            Err(e) => {
                self.shared.horizon.store(self.horizon, Ordering::SeqCst);
                Err(e)
            }
        }
    }

    /// Stored events with `seq > after_seq`, in order, at most `chunk` of them (an empty
    /// result means the end). Reads through the writer's connection; for rebuilding a
    /// core on startup. Retention may have removed old delta events; every complete
    /// event is there.
    pub fn read_for_restore(
        &self,
        after_seq: u64,
        chunk: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        store::read_range(
            &self.conn,
            after_seq,
            u64::MAX >> 1,
            None,
            chunk,
            self.shared.chunk_bits,
        )
    }

    /// One worker's stored events with `seq > after_seq`, oldest first, at most `chunk`
    /// (empty: the end), through the writer's connection; for activating a passivated
    /// worker. Like [`read_for_restore`](Self::read_for_restore), old deltas may be gone.
    pub fn read_worker_for_restore(
        &self,
        worker: &str,
        after_seq: u64,
        chunk: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        store::read_range(
            &self.conn,
            after_seq,
            self.last_seq,
            Some(worker),
            chunk,
            self.shared.chunk_bits,
        )
    }

    /// See [`LogReader::replay`].
    pub fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayError> {
        self.shared.replay(after, worker, limit, true)
    }

    /// See [`LogReader::subscribe`].
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        self.live.subscribe()
    }

    /// The cursor of the last appended event (`seq` 0 when the log is empty).
    pub fn last_cursor(&self) -> Cursor {
        Cursor::new(self.shared.epoch, self.last_seq)
    }

    /// The store's epoch, fixed when it was created.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Cursors with `seq` below this have expired (0 when nothing was pruned).
    pub fn horizon(&self) -> u64 {
        self.horizon
    }

    /// Write-side counters.
    pub fn stats(&self) -> LogStats {
        self.shared.stats()
    }

    pub fn config(&self) -> &LogConfig {
        &self.config
    }

    pub fn path(&self) -> &Path {
        &self.shared.path
    }
}

impl fmt::Debug for EventLog {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("EventLog")
            .field("path", &self.shared.path)
            .field("epoch", &format_args!("{:016x}", self.shared.epoch))
            .field("last_seq", &self.last_seq)
            .field("horizon", &self.horizon)
            .finish_non_exhaustive()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Durability;

    /// What the writing connection of a log opened with `config` reports for `pragma`.
    fn pragma(config: LogConfig, pragma: &str) -> i64 {
        let dir = tempfile::tempdir().unwrap();
        let log = EventLog::open(&dir.path().join("events.db"), config).unwrap();
        log.conn
            .query_row(&format!("PRAGMA {pragma}"), [], |r| r.get(0))
            .unwrap()
    }

    #[test]
    fn durability_and_the_size_limit_reach_sqlite() {
        let with = |durability| LogConfig {
            durability,
            ..LogConfig::default()
        };
        // `synchronous`: 1 is NORMAL, 2 is FULL.
        assert_eq!(pragma(with(Durability::Normal), "synchronous"), 1);
        assert_eq!(pragma(with(Durability::Full), "synchronous"), 2);
        let limited = LogConfig {
            max_store_bytes: Some(1 << 20),
            ..LogConfig::default()
        };
        let page = pragma(LogConfig::default(), "page_size");
        assert_eq!(pragma(limited, "max_page_count"), (1 << 20) / page);
    }
}
