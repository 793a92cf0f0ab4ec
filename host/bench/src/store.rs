//! `store.*`: one small commit to the event store, back to back and after a pause.
//!
//! A command's acknowledgement waits for one commit (a few events and the worker's
//! index row, one SQLite transaction, `durability` Normal). The same commit is timed
//! `COMMITS` times in a row (`store.commit_us`, the median) and `PAUSED` times each after
//! `PAUSE` of sleep (`store.commit_after_pause_us`); `store.pause_over_hot` is their
//! ratio, paired per round. On a VM that shares its cores with other guests, the
//! caches a thread warmed are gone a few milliseconds later, and the second figure is
//! what a command arriving at an idle runtime pays. Figures in microseconds.

use std::time::{Duration, Instant};

use yoi_eventlog::{EventLog, IndexUpdate, LogConfig};
use yoi_protocol::{Event, EventRecord, Usage, WorkerInfo, WorkerStatus};

use crate::results::{Results, Samples};

const WORKERS: u64 = 300;
const COMMITS: usize = 1_000;
const PAUSED: usize = 300;
const PAUSE: Duration = Duration::from_millis(5);

pub fn run(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds();
    println!(
        "store: one commit of 3 events and an index row, {COMMITS} back to back vs \
         {PAUSED} each after {PAUSE:?} of sleep; {rounds} rounds"
    );
    let dir = tempfile::tempdir()?;
    let mut log = EventLog::open(&dir.path().join("events.db"), LogConfig::default())?;
    let infos: Vec<WorkerInfo> = (0..WORKERS).map(info).collect();
    log.append_indexed(Vec::new(), &update(&infos, true))?;
    let mut n = 0u64;
    let mut figures: [Samples; 3] = Default::default();
    for _ in 0..rounds {
        let hot = median(
            (0..COMMITS)
                .map(|_| commit(&mut log, &mut n))
                .collect::<Result<_, _>>()?,
        );
        let paused = median(
            (0..PAUSED)
                .map(|_| {
                    std::thread::sleep(PAUSE);
                    commit(&mut log, &mut n)
                })
                .collect::<Result<_, _>>()?,
        );
        figures[0].push(hot);
        figures[1].push(paused);
        figures[2].push(paused / hot);
    }
    results.record_medians(
        [
            "store.commit_us",
            "store.commit_after_pause_us",
            "store.pause_over_hot",
        ],
        &figures,
    );
    Ok(())
}

/// Times one commit: three events of one worker and its index row.
fn commit(log: &mut EventLog, n: &mut u64) -> anyhow::Result<f64> {
    *n += 1;
    let worker = *n % WORKERS;
    let records = (0..3)
        .map(|k| EventRecord {
            worker_id: Some(format!("w_{worker}")),
            at_ms: *n,
            event: Event::TextDelta {
                run_id: format!("r_{n}"),
                text: format!("delta {k}"),
            },
        })
        .collect();
    let changed = [info(worker)];
    let started = Instant::now();
    log.append_indexed(records, &update(&changed, false))?;
    Ok(started.elapsed().as_secs_f64() * 1e6)
}

fn median(mut samples: Vec<f64>) -> f64 {
    samples.sort_by(f64::total_cmp);
    samples[samples.len() / 2]
}

fn update(changed: &[WorkerInfo], complete: bool) -> IndexUpdate<'_> {
    IndexUpdate {
        changed,
        deleted: &[],
        next_worker: WORKERS,
        next_run: 1,
        complete,
    }
}

fn info(n: u64) -> WorkerInfo {
    WorkerInfo {
        id: format!("w_{n}"),
        name: format!("worker {n}"),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: 8,
        status: WorkerStatus::Running,
        created_at_ms: n,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Usage::default(),
        context_tokens: None,
        request_id: None,
    }
}
