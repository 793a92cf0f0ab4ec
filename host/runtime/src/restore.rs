//! Rebuilding a core from the event log, and workers from their events.
//!
//! - [`restore_core`] opens a fresh core: from the worker index when it is current
//!   (every worker passivated, only the workers with a run in flight activated from
//!   their events, which `finish_restore` then closes `interrupted`), else from a full
//!   replay of the log (a store written before the index existed, or after a fault
//!   left the index behind), after which the index is rebuilt whole.
//! - [`activate`] makes one passivated worker resident from its stored events (and its
//!   events not yet appended).
//! - [`rebuild`] rebuilds a passivated worker's snapshot from the store off the actor,
//!   so reading an idle worker's transcript does not make it resident.
//!
//! Everything that crosses into the core goes in batches under the call byte budget.

use yoi_core::{CallError, Core};
use yoi_eventlog::{EventLog, LogReader};
use yoi_protocol::{Envelope, EventRecord, WorkerInfo, WorkerSnapshot, WorkerStatus, size};
use yoi_runtime_guest::Runtime;

use crate::actor::{CoreSettings, now_ms};

/// Events read from the store per query.
const READ_CHUNK: usize = 1024;
/// Index rows read per query.
const INDEX_CHUNK: usize = 4096;

/// What [`restore_core`] did.
pub(crate) struct Restored {
    pub summary: yoi_protocol::RestoreSummary,
    /// Events the core produced (runs closed `interrupted`), not yet appended.
    pub events: Vec<EventRecord>,
    /// The log was replayed whole: the next append must rebuild the index whole.
    pub full: bool,
}

fn record(e: &Envelope) -> EventRecord {
    EventRecord {
        worker_id: e.worker_id.clone(),
        at_ms: e.at_ms,
        event: e.event.clone(),
    }
}

/// Cuts `items` into consecutive batches of at most `budget` estimated bytes (an item
/// larger than the budget goes alone).
pub(crate) fn batches<T>(items: Vec<T>, budget: u32, size: impl Fn(&T) -> u64) -> Vec<Vec<T>> {
    let mut out = Vec::new();
    let mut batch = Vec::new();
    let mut used = 0u64;
    for item in items {
        let s = size(&item);
        if !batch.is_empty() && used + s > u64::from(budget) {
            out.push(std::mem::take(&mut batch));
            used = 0;
        }
        used += s;
        batch.push(item);
    }
    if !batch.is_empty() {
        out.push(batch);
    }
    out
}

fn call_error(what: &str) -> impl Fn(CallError) -> String + '_ {
    move |e| match e {
        CallError::Rejected(e) => format!("{what}: the event log does not fit the core: {e}"),
        CallError::Fault(f) => f.to_string(),
    }
}

/// Configures a fresh core and restores it from `log` (see the module docs).
pub(crate) fn restore_core<C: Core>(
    core: &mut C,
    log: &EventLog,
    settings: &CoreSettings,
) -> Result<Restored, String> {
    core.configure(settings.limits).map_err(|f| f.to_string())?;
    core.configure_models(settings.budgets.clone())
        .map_err(|f| f.to_string())?;
    let full = match log.index_counters().map_err(|e| e.to_string())? {
        Some(counters) => {
            let mut after = 0;
            let mut running = Vec::new();
            loop {
                let page = log
                    .index_page(after, INDEX_CHUNK)
                    .map_err(|e| e.to_string())?;
                running.extend(
                    page.infos
                        .iter()
                        .filter(|i| i.status == WorkerStatus::Running)
                        .map(|i| i.id.clone()),
                );
                for batch in batches(page.infos, settings.call_bytes, size::info) {
                    core.restore_index(batch, counters.next_worker, counters.next_run)
                        .map_err(call_error("restore index"))?;
                }
                match page.next {
                    Some(next) => after = next,
                    None => break,
                }
            }
            for worker in running {
                activate(core, log, &worker, &[], settings.call_bytes)
                    .map_err(call_error("activate a running worker"))?;
            }
            false
        }
        None => {
            let mut after = 0;
            loop {
                let chunk = log
                    .read_for_restore(after, READ_CHUNK)
                    .map_err(|e| e.to_string())?;
                let Some(last) = chunk.last() else { break };
                after = last.seq;
                let records = chunk.iter().map(record).collect();
                for batch in batches(records, settings.call_bytes, size::event) {
                    core.restore(batch)
                        .map_err(call_error(&format!("restore (after seq {after})")))?;
                }
            }
            true
        }
    };
    let summary = core.finish_restore(now_ms()).map_err(|f| f.to_string())?;
    let mut events = Vec::new();
    loop {
        let pulled = core
            .pull_events(READ_CHUNK, settings.call_bytes)
            .map_err(|f| f.to_string())?;
        if pulled.is_empty() {
            break;
        }
        events.extend(pulled);
    }
    Ok(Restored {
        summary,
        events,
        full,
    })
}

/// Makes the passivated `worker` resident: its stored events, then `pending` (its
/// events not yet appended), in batches under `call_bytes`.
pub(crate) fn activate<C: Core>(
    core: &mut C,
    log: &EventLog,
    worker: &str,
    pending: &[EventRecord],
    call_bytes: u32,
) -> Result<(), CallError> {
    let now = now_ms();
    let mut after = 0;
    loop {
        let chunk = log
            .read_worker_for_restore(worker, after, READ_CHUNK)
            .map_err(|e| {
                CallError::Rejected(yoi_protocol::CoreError::InvalidRequest {
                    message: format!("reading the worker's events: {e}"),
                })
            })?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        let records = chunk.iter().map(record).collect();
        for batch in batches(records, call_bytes, size::event) {
            core.activate(now, worker, batch, false)?;
        }
    }
    for batch in batches(pending.to_vec(), call_bytes, size::event) {
        core.activate(now, worker, batch, false)?;
    }
    core.activate(now, worker, Vec::new(), true)
}

/// A passivated worker as it was at `upto` (a cursor's sequence number), rebuilt from
/// its stored events. Runs on the caller's thread (a blocking one), not the actor's.
pub(crate) fn rebuild(
    reader: &LogReader,
    info: &WorkerInfo,
    upto: u64,
) -> Result<WorkerSnapshot, String> {
    let mut rebuilt = Runtime::new();
    let mut after = 0;
    loop {
        let chunk = reader
            .worker_events(&info.id, after, upto, READ_CHUNK)
            .map_err(|e| e.to_string())?;
        let Some(last) = chunk.last() else { break };
        after = last.seq;
        rebuilt
            .restore(chunk.iter().map(record).collect())
            .map_err(|e| e.to_string())?;
    }
    rebuilt
        .snapshot(&info.id, u64::MAX)
        .map_err(|e| e.to_string())
}
