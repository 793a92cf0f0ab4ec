//! The read side: state shared between the log and its readers, and [`LogReader`].

use crate::error::{LogError, ReplayError};
use crate::store;
use crate::window::Window;
use rusqlite::Connection;
use std::fmt;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock, RwLockReadGuard, RwLockWriteGuard};
use tokio::sync::broadcast;
use yoi_protocol::{Cursor, Envelope};

/// A replay holds the window lock for at most this many window entries at a time, so a
/// long filtered scan never keeps the writer waiting for more than a few microseconds.
pub const WINDOW_SCAN_CHUNK: usize = 4096;

/// One page of a replay.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayPage {
    /// The events after the requested cursor, in order (at most `limit`).
    pub events: Vec<Arc<Envelope>>,
    /// Where to resume: the last event of the page when `more`, otherwise the last
    /// sequence number the replay looked at (so a filtered replay moves past events of
    /// other workers).
    pub next: Cursor,
    /// More matching events exist after `next`.
    pub more: bool,
}

/// Counters of the log's write side; a copy taken at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LogStats {
    /// Events appended (committed) since the log was opened.
    pub events_appended: u64,
    /// Append transactions committed.
    pub commits: u64,
    /// Time spent in store writes: encoding, inserting (events and worker-index rows)
    /// and committing (nanoseconds).
    pub store_write_nanos: u64,
    /// Time spent publishing to the window and the broadcast (nanoseconds).
    pub publish_nanos: u64,
    /// Delta events deleted by retention since the log was opened.
    pub events_pruned: u64,
    /// WAL checkpoints the log's checkpoint thread completed since the log was opened.
    pub checkpoints: u64,
}

#[derive(Default)]
pub(crate) struct Counters {
    pub events_appended: AtomicU64,
    pub commits: AtomicU64,
    pub store_write_nanos: AtomicU64,
    pub publish_nanos: AtomicU64,
    pub events_pruned: AtomicU64,
    pub checkpoints: AtomicU64,
}

/// What the log and all its readers share.
pub(crate) struct Shared {
    pub path: PathBuf,
    pub epoch: u64,
    /// The store's worker-index chunk size (`log2` of sequence numbers per chunk).
    pub chunk_bits: u8,
    /// The last published sequence number; written under the window's write lock.
    pub last_seq: AtomicU64,
    /// Cursors with `seq < horizon` have expired. Raised before pruning deletes anything.
    pub horizon: AtomicU64,
    pub window: RwLock<Window>,
    pub live: broadcast::WeakSender<Arc<Envelope>>,
    pub pool: Mutex<Vec<Connection>>,
    pub pool_max: usize,
    pub counters: Counters,
}

impl Shared {
    pub fn window_read(&self) -> RwLockReadGuard<'_, Window> {
        self.window.read().unwrap_or_else(|e| e.into_inner())
    }

    pub fn window_write(&self) -> RwLockWriteGuard<'_, Window> {
        self.window.write().unwrap_or_else(|e| e.into_inner())
    }

    fn pool(&self) -> MutexGuard<'_, Vec<Connection>> {
        self.pool.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Runs `f` on a pooled read-only connection (opening one if none is idle).
    fn with_conn<T>(
        &self,
        f: impl FnOnce(&Connection) -> Result<T, LogError>,
    ) -> Result<T, LogError> {
        let idle = self.pool().pop();
        let conn = match idle {
            Some(conn) => conn,
            None => store::open_reader(&self.path)?,
        };
        let result = f(&conn);
        if result.is_ok() {
            let mut pool = self.pool();
            if pool.len() < self.pool_max {
                pool.push(conn);
            }
        }
        result
    }

    pub fn last_cursor(&self) -> Cursor {
        Cursor::new(self.epoch, self.last_seq.load(Ordering::Acquire))
    }

    pub fn stats(&self) -> LogStats {
        let c = &self.counters;
        LogStats {
            events_appended: c.events_appended.load(Ordering::Relaxed),
            commits: c.commits.load(Ordering::Relaxed),
            store_write_nanos: c.store_write_nanos.load(Ordering::Relaxed),
            publish_nanos: c.publish_nanos.load(Ordering::Relaxed),
            events_pruned: c.events_pruned.load(Ordering::Relaxed),
            checkpoints: c.checkpoints.load(Ordering::Relaxed),
        }
    }

    pub fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
        use_window: bool,
    ) -> Result<ReplayPage, ReplayError> {
        if after.epoch != self.epoch {
            return Err(ReplayError::UnknownEpoch { epoch: after.epoch });
        }
        // Everything up to `last` is committed, in the store, and (if still held) in the
        // window; the page is consistent with this moment.
        let last = self.last_seq.load(Ordering::Acquire);
        if after.seq > last {
            return Err(ReplayError::Ahead { last });
        }
        let horizon = self.horizon.load(Ordering::SeqCst);
        if after.seq < horizon {
            return Err(ReplayError::Expired { oldest: horizon });
        }
        let want = limit.saturating_add(1);
        let matches = |env: &Envelope| worker.is_none_or(|w| env.worker_id.as_deref() == Some(w));
        let mut events: Vec<Arc<Envelope>> = Vec::new();
        // Every event with seq <= pos has been looked at.
        let mut pos = after.seq;
        while events.len() < want && pos < last {
            if use_window {
                let window = self.window_read();
                if let Some(start) = window.index_of(pos + 1) {
                    for env in window.range_from(start).take(WINDOW_SCAN_CHUNK) {
                        if env.seq > last {
                            break;
                        }
                        pos = env.seq;
                        if matches(env) {
                            events.push(env.clone());
                            if events.len() == want {
                                break;
                            }
                        }
                    }
                    continue;
                }
            }
            let need = want - events.len();
            let rows = self.with_conn(|conn| {
                store::read_range(conn, pos, last, worker, need, self.chunk_bits)
            })?;
            // Pruning raises the horizon before it deletes: if it moved past where this
            // read started, rows may be missing from what was read.
            let horizon = self.horizon.load(Ordering::SeqCst);
            if pos < horizon {
                return Err(ReplayError::Expired { oldest: horizon });
            }
            events.extend(rows.into_iter().map(Arc::new));
            // The store read either filled the page or covered everything up to `last`.
            break;
        }
        let more = events.len() > limit;
        if more {
            events.truncate(limit);
        }
        let next = if more {
            events.last().map_or(after.seq, |e| e.seq)
        } else {
            last
        };
        Ok(ReplayPage {
            events,
            next: Cursor::new(self.epoch, next),
            more,
        })
    }
}

/// A cheap, cloneable read handle on an [`EventLog`](crate::EventLog), for any thread or
/// task: live subscription, replay, cursors and counters.
///
/// Store replays use the reader's own read-only SQLite connections (pooled), so they run
/// concurrently with appends. A reader outliving its log can still replay; its
/// subscriptions end (`RecvError::Closed`) once the log is dropped.
#[derive(Clone)]
pub struct LogReader {
    pub(crate) shared: Arc<Shared>,
}

impl LogReader {
    /// Subscribes to events published from now on. Subscribe *before* replaying, then
    /// skip live events with `seq <=` the last replayed one: no gap, no duplicate.
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<Envelope>> {
        match self.shared.live.upgrade() {
            Some(sender) => sender.subscribe(),
            None => {
                // The log is gone: a receiver that reports `Closed` at once.
                let (_, receiver) = broadcast::channel(1);
                receiver
            }
        }
    }

    /// The events after `after` (of `worker` only, if given), at most `limit` of them;
    /// from the window when it still holds `after.seq + 1`, else from the store.
    pub fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayError> {
        self.shared.replay(after, worker, limit, true)
    }

    /// A page of the worker index, as [`EventLog::index_page`](crate::EventLog::index_page)
    /// reads it, on a connection of this reader's (so another thread can read the index
    /// while the log's owner restores from it).
    pub fn index_page(&self, after: i64, limit: usize) -> Result<crate::IndexPage, LogError> {
        self.shared
            .with_conn(|conn| crate::index::page(conn, after, limit))
    }

    /// One worker's stored events with `after_seq < seq <= upto_seq`, oldest first, at
    /// most `limit` (empty: the end), from the store, whatever the horizon: retention may
    /// have removed old deltas, every complete event is there. For rebuilding a worker
    /// (a passivated worker's transcript), not for streams.
    pub fn worker_events(
        &self,
        worker: &str,
        after_seq: u64,
        upto_seq: u64,
        limit: usize,
    ) -> Result<Vec<Envelope>, LogError> {
        let shared = &self.shared;
        shared.with_conn(|conn| {
            store::read_range(
                conn,
                after_seq,
                upto_seq,
                Some(worker),
                limit,
                shared.chunk_bits,
            )
        })
    }

    /// Like [`replay`](Self::replay) but always reads the store, never the window (for
    /// verification and tools; the answers are identical).
    pub fn replay_from_store(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayError> {
        self.shared.replay(after, worker, limit, false)
    }

    /// The cursor of the last published event (`seq` 0 when the log is empty).
    pub fn last_cursor(&self) -> Cursor {
        self.shared.last_cursor()
    }

    /// The store's epoch, fixed when it was created.
    pub fn epoch(&self) -> u64 {
        self.shared.epoch
    }

    /// Cursors with `seq` below this have expired (0 when nothing was pruned).
    pub fn horizon(&self) -> u64 {
        self.shared.horizon.load(Ordering::SeqCst)
    }

    /// The lowest and highest sequence numbers the in-memory window holds.
    pub fn window_bounds(&self) -> Option<(u64, u64)> {
        self.shared.window_read().bounds()
    }

    /// Write-side counters (store write time, commits, …).
    pub fn stats(&self) -> LogStats {
        self.shared.stats()
    }
}

impl fmt::Debug for LogReader {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("LogReader")
            .field("path", &self.shared.path)
            .field("last", &self.last_cursor())
            .finish_non_exhaustive()
    }
}
