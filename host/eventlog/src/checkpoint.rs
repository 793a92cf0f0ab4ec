//! WAL checkpoints off the appending thread.
//!
//! SQLite's automatic checkpoint runs inside the commit that crosses its threshold, on
//! the thread that appends (the runtime's actor): it copies the WAL into the database
//! and syncs it, tens of milliseconds that every command queued behind that commit
//! waits for. The log instead asks a thread of its own, with its own connection, for a
//! `PASSIVE` checkpoint each time about `checkpoint_bytes` have been appended. A passive
//! checkpoint never blocks the writer or the readers; once it has copied everything the
//! writer starts the WAL over at its next commit, so the WAL stays small. SQLite's own
//! automatic checkpoint stays on at a higher threshold as a backstop, should this
//! thread fall behind.

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::thread::JoinHandle;

use rusqlite::Connection;

use crate::error::LogError;
use crate::reader::Shared;

/// Pages in the WAL beyond which the writer checkpoints by itself (SQLite's automatic
/// checkpoint), whatever the checkpoint thread does.
pub(crate) const BACKSTOP_PAGES: u32 = 16_000;

/// Asks the checkpoint thread for a checkpoint every `every` bytes appended.
pub(crate) struct Checkpointer {
    wake: Option<SyncSender<()>>,
    thread: Option<JoinHandle<()>>,
    every: u64,
    since: u64,
}

impl Checkpointer {
    /// Starts the thread on its own connection to the store at `path`; it counts the
    /// checkpoints it completes in `shared`. `every` 0 turns the thread off.
    pub(crate) fn start(path: &Path, every: u64, shared: Arc<Shared>) -> Result<Self, LogError> {
        if every == 0 {
            return Ok(Checkpointer {
                wake: None,
                thread: None,
                every,
                since: 0,
            });
        }
        let conn = Connection::open(path)?;
        conn.busy_timeout(crate::store::BUSY_TIMEOUT)?;
        // One pending request is enough: a checkpoint copies whatever is there by then.
        let (wake, requests) = sync_channel(1);
        let thread = std::thread::Builder::new()
            .name("yoi-checkpoint".into())
            .spawn(move || run(conn, requests, shared))
            .map_err(|e| LogError::Io(format!("starting the checkpoint thread: {e}")))?;
        Ok(Checkpointer {
            wake: Some(wake),
            thread: Some(thread),
            every,
            since: 0,
        })
    }

    /// Counts `bytes` appended, and asks for a checkpoint when enough have been.
    pub(crate) fn appended(&mut self, bytes: u64) {
        let Some(wake) = &self.wake else { return };
        self.since += bytes;
        if self.since < self.every {
            return;
        }
        self.since = 0;
        match wake.try_send(()) {
            Ok(()) | Err(TrySendError::Full(())) => {}
            Err(TrySendError::Disconnected(())) => {
                tracing::warn!("event log: the checkpoint thread has stopped");
                self.wake = None;
            }
        }
    }
}

impl Drop for Checkpointer {
    fn drop(&mut self) {
        self.wake = None;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn run(conn: Connection, requests: Receiver<()>, shared: Arc<Shared>) {
    while requests.recv().is_ok() {
        // (busy, WAL frames, frames copied): busy when another checkpoint was running.
        let outcome = conn.query_row("PRAGMA wal_checkpoint(PASSIVE)", [], |r| {
            Ok((
                r.get::<_, i64>(0)?,
                r.get::<_, i64>(1)?,
                r.get::<_, i64>(2)?,
            ))
        });
        match outcome {
            Ok((0, _, _)) => {
                shared.counters.checkpoints.fetch_add(1, Ordering::Relaxed);
            }
            Ok(_) => {}
            Err(e) => tracing::warn!(error = %e, "event log: checkpoint failed"),
        }
    }
}
