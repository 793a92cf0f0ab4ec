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
use yoi_eventlog::{EventLog, IndexCounters, LogReader};
use yoi_protocol::{
    Envelope, EventRecord, WorkerInfo, WorkerSnapshot, WorkerStatus, index_row, size,
};
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

/// Cuts a row list into row lists of at most `budget` bytes (a row larger than the
/// budget goes alone).
fn row_batches(rows: &[u8], budget: u32) -> Result<Vec<&[u8]>, String> {
    let mut out = Vec::new();
    let (mut start, mut end) = (0, 0);
    for row in index_row::split(rows) {
        let framed = 4 + row.map_err(|e| format!("worker index: {e}"))?.len();
        if end > start && end + framed - start > budget as usize {
            out.push(&rows[start..end]);
            start = end;
        }
        end += framed;
    }
    if end > start {
        out.push(&rows[start..end]);
    }
    Ok(out)
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
            let running = restore_from_index(core, log, counters, settings.call_bytes)?;
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

/// Hands the worker index to the core page by page, every worker passivated, while a
/// thread of its own reads and decodes the next pages (at most two ahead): opening
/// takes about the longer of the two jobs, not their sum. Returns the workers with a
/// run in flight.
fn restore_from_index<C: Core>(
    core: &mut C,
    log: &EventLog,
    counters: IndexCounters,
    call_bytes: u32,
) -> Result<Vec<String>, String> {
    let reader = log.reader();
    std::thread::scope(|scope| {
        let (pages, received) = std::sync::mpsc::sync_channel(2);
        std::thread::Builder::new()
            .name("yoi-index-read".into())
            .spawn_scoped(scope, move || {
                let mut after = 0;
                loop {
                    let page = reader.index_page(after, INDEX_CHUNK);
                    let next = page.as_ref().ok().and_then(|p| p.next);
                    // A closed channel: the restore failed and stopped reading.
                    if pages.send(page).is_err() {
                        return;
                    }
                    match next {
                        Some(next) => after = next,
                        None => return,
                    }
                }
            })
            .map_err(|e| format!("starting the index reader: {e}"))?;
        let mut running = Vec::new();
        for page in received {
            let page = page.map_err(|e| e.to_string())?;
            running.extend(
                page.infos
                    .iter()
                    .filter(|i| i.status == WorkerStatus::Running)
                    .map(|i| i.id.clone()),
            );
            for rows in row_batches(&page.rows, call_bytes)? {
                core.restore_index(rows, counters.next_worker, counters.next_run)
                    .map_err(call_error("restore index"))?;
            }
        }
        Ok(running)
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row_list(sizes: &[usize]) -> Vec<u8> {
        let mut rows = Vec::new();
        for (i, &n) in sizes.iter().enumerate() {
            index_row::push(&mut rows, &vec![i as u8; n]);
        }
        rows
    }

    #[test]
    fn row_batches_keep_rows_whole_under_the_budget() {
        // Framed sizes 14, 14, 104, 14, 14 under a budget of 30.
        let rows = row_list(&[10, 10, 100, 10, 10]);
        let batches = row_batches(&rows, 30).unwrap();
        let framed: Vec<usize> = batches.iter().map(|b| b.len()).collect();
        assert_eq!(framed, [28, 104, 28]);
        assert_eq!(batches.concat(), rows);
        for batch in &batches {
            assert!(index_row::split(batch).all(|r| r.is_ok()));
        }
        assert!(row_batches(&[], 30).unwrap().is_empty());
        // A cut row list is an error, not a batch.
        assert!(row_batches(&rows[..rows.len() - 1], 30).is_err());
    }
}
