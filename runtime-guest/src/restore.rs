//! Restore: rebuilding a core from the events of an earlier life.

use yoi_protocol::{CoreError, ErrorInfo, Event, EventRecord, RestoreSummary, WorkerStatus};

use crate::runtime::Runtime;
use crate::validate::preview;

impl Runtime {
    /// Applies events of an earlier life of this runtime, in order; call it once or more
    /// on a fresh core, then [`finish_restore`](Self::finish_restore). Nothing is queued.
    ///
    /// Until `finish_restore`, commands that change state are refused (`invalid_request`)
    /// and deliveries are ignored. An event for an unknown worker, or one that does not
    /// fit the state, is an `invalid_request` naming it; the events before it stay
    /// applied (a host should then discard the core).
    pub fn restore(&mut self, events: Vec<EventRecord>) -> Result<(), CoreError> {
        self.restoring = true;
        for (i, record) in events.iter().enumerate() {
            if let Err(why) = self.apply_record(record) {
                let worker = match &record.worker_id {
                    Some(id) => format!("worker {}", preview(id)),
                    None => "no worker".to_string(),
                };
                return Err(CoreError::InvalidRequest {
                    message: format!(
                        "restore: event {i} of this batch ({}, {worker}) does not fit: {why}",
                        record.event.kind()
                    ),
                });
            }
        }
        Ok(())
    }

    /// Applies one stored event.
    fn apply_record(&mut self, record: &EventRecord) -> Result<(), String> {
        match (&record.event, &record.worker_id) {
            (Event::WorkerCreated { worker }, Some(id)) if *id == worker.id => {
                self.add_worker(worker).map(|_| ())
            }
            (Event::WorkerCreated { .. }, _) => {
                Err("the record's worker id is not the created worker's id".into())
            }
            (Event::Diagnostic { .. }, None) => Ok(()),
            (_, None) => Err("the event needs a worker id".into()),
            (event, Some(id)) => {
                let index = self
                    .by_id
                    .get(id)
                    .copied()
                    .ok_or_else(|| "unknown worker".to_string())?;
                self.apply_to(index, event)?;
                if let Event::InputAccepted { run_id, .. } = event {
                    crate::ids::bump_past(&mut self.next_run, run_id, crate::ids::RUN_PREFIX);
                }
                Ok(())
            }
        }
    }

    /// Ends a restore: every run still in flight is closed (its waiting tool calls get
    /// `interrupted` error results, then `run_failed` with code `interrupted`, then the
    /// worker goes back to idle). These events are queued to pull. Normal operation
    /// resumes, and workers beyond the resident budgets are passivated.
    pub fn finish_restore(&mut self, now_ms: u64) -> RestoreSummary {
        self.restoring = false;
        self.activation = None;
        let mut interrupted: u32 = 0;
        // Only a worker with a run, or still marked running, has anything to close; the
        // passivated workers restored from the index (most of them) have not.
        let open: Vec<usize> = self
            .workers
            .iter()
            .filter(|(_, w)| w.run.is_some() || w.info.status == WorkerStatus::Running)
            .map(|(&index, _)| index)
            .collect();
        for index in open {
            let closed = self.close_run(index, now_ms, "interrupted", |run_id| Event::RunFailed {
                run_id,
                error: ErrorInfo::new(
                    "interrupted",
                    "the run was in flight when the runtime stopped",
                ),
            });
            if closed.is_some() {
                interrupted = interrupted.saturating_add(1);
            } else {
                // A log cut between a run's end and the status change.
                self.settle_status(index, now_ms);
            }
        }
        self.recount();
        self.enforce_budget(now_ms, None);
        RestoreSummary {
            workers: u32::try_from(self.workers.len()).unwrap_or(u32::MAX),
            interrupted_runs: interrupted,
        }
    }
}
