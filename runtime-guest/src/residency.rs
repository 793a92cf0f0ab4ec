//! Residency: which workers keep their transcripts in the core, and how the host's
//! worker index follows the workers.
//!
//! Every worker keeps its info; a *resident* worker also keeps its transcript and the
//! request ids of its latest runs. After every call that changes state the core
//! passivates the least recently used resident workers that have no run in flight
//! until at most `max_resident_workers` are resident and their transcripts take at
//! most `max_resident_bytes` (the worker the call was about is spared). Each
//! passivation is a runtime-wide `worker_passivated` diagnostic. A command that needs
//! a passivated worker's transcript answers `passivated`; the host then feeds that
//! worker's events to [`Runtime::activate`] (which checks the rebuilt worker against
//! the info it kept, and says `worker_activated`) and repeats the command. Residency is
//! not part of the workers' state: no worker event changes, and a core restored from
//! the events has the same workers, transcripts and snapshots.
//!
//! The host also keeps a *worker index* (every worker's info and the id counters) with
//! its events: [`Runtime::pull_index`] hands it the changes, and
//! [`Runtime::restore_index`] rebuilds a core from it with every worker passivated, so
//! opening a runtime reads infos, not its whole history.

use yoi_protocol::{CoreError, Event, EventRecord, IndexChanges, Level, Residency, WorkerStatus};

use crate::ids;
use crate::runtime::Runtime;
use crate::validate::preview;
use crate::worker::Worker;
use yoi_protocol::{index_row, size};

/// A worker being rebuilt by [`Runtime::activate`].
#[derive(Debug, Clone)]
pub(crate) struct Activation {
    pub key: usize,
    pub worker: Worker,
    /// Whether `worker_created` has been applied.
    pub created: bool,
}

fn count(n: usize) -> u32 {
    u32::try_from(n).unwrap_or(u32::MAX)
}

impl Runtime {
    /// Marks the worker at `index` as just used: a resident worker without a run moves
    /// to the end of the LRU order; one with a run leaves it (it cannot be passivated).
    pub(crate) fn touch(&mut self, index: usize) {
        let Some(worker) = self.workers.get_mut(&index) else {
            return;
        };
        if let Some(tick) = worker.lru_tick.take() {
            self.lru.remove(&tick);
        }
        if worker.resident && worker.run.is_none() {
            self.tick += 1;
            worker.lru_tick = Some(self.tick);
            self.lru.insert(self.tick, index);
        }
    }

    /// Passivates least recently used workers until the resident budgets hold, sparing
    /// `keep`. Does nothing while restoring (a restore needs every transcript).
    pub(crate) fn enforce_budget(&mut self, now_ms: u64, keep: Option<usize>) {
        if self.restoring {
            return;
        }
        let max_workers = self.limits.max_resident_workers.max(1) as usize;
        let max_bytes = self.limits.max_resident_bytes;
        while self.resident_workers > max_workers || self.resident_bytes > max_bytes {
            let victim = self
                .lru
                .values()
                .copied()
                .find(|&index| Some(index) != keep);
            let Some(index) = victim else {
                return;
            };
            self.passivate(index, now_ms);
        }
    }

    /// Drops the transcript of the worker at `index` (resident, without a run).
    fn passivate(&mut self, index: usize, now_ms: u64) {
        let Some(worker) = self.workers.get_mut(&index) else {
            return;
        };
        if !worker.resident || worker.run.is_some() {
            return;
        }
        if let Some(tick) = worker.lru_tick.take() {
            self.lru.remove(&tick);
        }
        let bytes = worker.transcript_bytes;
        let id = worker.info.id.clone();
        worker.passivate();
        self.resident_workers = self.resident_workers.saturating_sub(1);
        self.resident_bytes = self.resident_bytes.saturating_sub(bytes);
        self.events.push_back(EventRecord {
            worker_id: None,
            at_ms: now_ms,
            event: Event::Diagnostic {
                level: Level::Info,
                code: "worker_passivated".into(),
                message: format!("{id}: transcript ({bytes} bytes) passivated"),
            },
        });
    }

    /// Makes a passivated worker resident again from its events: every event of that
    /// worker, oldest first, starting with `worker_created`, in one or more calls;
    /// `last` on the final call. The rebuilt worker must have exactly the info the core
    /// kept (else `invalid_request`, and the worker stays passivated). Also allowed
    /// while restoring (a run in flight at open is rebuilt this way, then closed by
    /// `finish_restore`).
    pub fn activate(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        events: Vec<EventRecord>,
        last: bool,
    ) -> Result<(), CoreError> {
        let key = self.index_of(worker_id)?;
        let kept = self
            .workers
            .get(&key)
            .ok_or_else(|| CoreError::WorkerNotFound {
                worker_id: worker_id.to_string(),
            })?;
        if kept.resident {
            return Err(CoreError::InvalidRequest {
                message: format!("worker {} is already resident", preview(worker_id)),
            });
        }
        let mut staged = match self.activation.take() {
            Some(a) if a.key == key => a,
            _ => Activation {
                key,
                worker: Worker::new(kept.info.clone()),
                created: false,
            },
        };
        let invalid = |i: usize, why: String| CoreError::InvalidRequest {
            message: format!(
                "activate {}: event {i} of this batch does not fit: {why}",
                preview(worker_id)
            ),
        };
        for (i, record) in events.iter().enumerate() {
            if record.worker_id.as_deref() != Some(worker_id) {
                return Err(invalid(i, "it is another worker's event".into()));
            }
            match &record.event {
                Event::WorkerCreated { worker } if !staged.created => {
                    staged.worker = Worker::new((**worker).clone());
                    staged.created = true;
                }
                event if staged.created => staged.worker.apply(event).map_err(|e| invalid(i, e))?,
                _ => return Err(invalid(i, "the first event must be worker_created".into())),
            }
            if let Event::InputAccepted { run_id, .. } = &record.event {
                ids::bump_past(&mut self.next_run, run_id, ids::RUN_PREFIX);
            }
        }
        if !last {
            self.activation = Some(staged);
            return Ok(());
        }
        let Activation {
            worker: rebuilt, ..
        } = staged;
        let worker = self
            .workers
            .get_mut(&key)
            .ok_or_else(|| CoreError::WorkerNotFound {
                worker_id: worker_id.to_string(),
            })?;
        if rebuilt.info != worker.info {
            return Err(CoreError::InvalidRequest {
                message: format!(
                    "activate {}: its events rebuild another worker than the core holds \
                     (status {} with {} messages, not {} with {})",
                    preview(worker_id),
                    rebuilt.info.status.as_str(),
                    rebuilt.info.message_count,
                    worker.info.status.as_str(),
                    worker.info.message_count
                ),
            });
        }
        worker.transcript = rebuilt.transcript;
        worker.request_ids = rebuilt.request_ids;
        worker.transcript_bytes = rebuilt.transcript_bytes;
        worker.run = rebuilt.run;
        worker.resident = true;
        self.resident_workers += 1;
        self.resident_bytes += worker.transcript_bytes;
        let bytes = worker.transcript_bytes;
        self.touch(key);
        if !self.restoring {
            self.events.push_back(EventRecord {
                worker_id: None,
                at_ms: now_ms,
                event: Event::Diagnostic {
                    level: Level::Info,
                    code: "worker_activated".into(),
                    message: format!("{worker_id}: transcript ({bytes} bytes) activated"),
                },
            });
            self.enforce_budget(now_ms, Some(key));
        }
        Ok(())
    }

    /// Adds workers from the host's worker index, passivated, with the id counters; call
    /// it (once or more) on a fresh core instead of [`restore`](Self::restore), then
    /// [`activate`](Self::activate) the workers with a run in flight, then
    /// [`finish_restore`](Self::finish_restore).
    pub fn restore_index(
        &mut self,
        rows: &[u8],
        next_worker: u64,
        next_run: u64,
    ) -> Result<(), CoreError> {
        self.restoring = true;
        self.next_worker = self.next_worker.max(next_worker);
        self.next_run = self.next_run.max(next_run);
        for row in index_row::split(rows) {
            let info =
                row.and_then(index_row::decode)
                    .map_err(|message| CoreError::InvalidRequest {
                        message: format!("restore index: {message}"),
                    })?;
            if let Some(current) = &info.current_run {
                ids::bump_past(&mut self.next_run, current, ids::RUN_PREFIX);
            }
            let mut worker = Worker::new(info);
            worker.passivate();
            // Restored from the index: not dirty, nothing to report back to it.
            self.insert_worker(worker)
                .map_err(|message| CoreError::InvalidRequest {
                    message: format!("restore index: {message}"),
                })?;
        }
        Ok(())
    }

    /// Takes the worker-index changes made so far: infos of changed workers (as many as
    /// fit `max_bytes`, at least one), ids of deleted ones and the id counters.
    pub fn pull_index(&mut self, max_bytes: u64) -> IndexChanges {
        let mut changed = Vec::new();
        let mut used = 0u64;
        while let Some(&key) = self.dirty.first() {
            let Some(worker) = self.workers.get(&key) else {
                self.dirty.remove(&key);
                continue;
            };
            let bytes = size::info(&worker.info);
            if !changed.is_empty() && used + bytes > max_bytes {
                break;
            }
            used += bytes;
            changed.push(worker.info.clone());
            self.dirty.remove(&key);
        }
        IndexChanges {
            changed,
            deleted: std::mem::take(&mut self.deleted),
            next_worker: self.next_worker,
            next_run: self.next_run,
            more: !self.dirty.is_empty(),
        }
    }

    /// What the core holds.
    pub fn residency(&self) -> Residency {
        Residency {
            workers: count(self.workers.len()),
            live_workers: count(self.live_workers),
            resident_workers: count(self.resident_workers),
            resident_bytes: self.resident_bytes,
        }
    }

    /// Recomputes the counters and the LRU order from the workers (after a restore).
    pub(crate) fn recount(&mut self) {
        self.live_workers = 0;
        self.resident_workers = 0;
        self.resident_bytes = 0;
        self.lru.clear();
        // One pass (what `touch` does for each worker, inline): this walks every worker.
        for (&key, worker) in self.workers.iter_mut() {
            worker.lru_tick = None;
            if worker.info.status != WorkerStatus::Stopped {
                self.live_workers += 1;
            }
            if worker.resident {
                self.resident_workers += 1;
                self.resident_bytes += worker.transcript_bytes;
                if worker.run.is_none() {
                    self.tick += 1;
                    worker.lru_tick = Some(self.tick);
                    self.lru.insert(self.tick, key);
                }
            }
        }
    }
}
