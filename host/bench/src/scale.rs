//! `scale.*`: a runtime with many more workers than it keeps resident.
//!
//! `WORKERS` workers on one wasm runtime with the default budgets (1,024 resident
//! workers), `ACTIVE` of them having a turn at a time: each turn is a ~4.6 KiB message
//! and a streamed answer of `DELTAS` text deltas, so every worker ends with a ~5 KiB
//! transcript and the log with about ten million events. Then:
//!
//! - `scale.rss_mib`: the process's resident memory (goal under 512 MiB; what it holds is
//!   set by the budgets, not by the 100,000 histories);
//! - `scale.activate_p99_ms`: a command for a passivated worker (input to one of the
//!   first workers, long evicted), from the call to its answer, which includes restoring
//!   the worker from its events: p99 over `PROBES` workers (goal under 10 ms);
//! - `scale.ready_ms`: start-to-ready of the runtime reopened on that log (goal under
//!   200 ms), with `scale.events` the log's size.

use std::time::Instant;

use yoi_protocol::{Input, WorkerSpec};
use yoi_runtime::LocalRuntime;

use crate::ready::{MakeCore, open, wasm_cores};
use crate::results::{Results, Samples};

const WORKERS: usize = 100_000;
const ACTIVE: usize = 1_000;
const DELTAS: usize = 100;
const PROBES: usize = 1_000;

fn spec(i: usize) -> WorkerSpec {
    WorkerSpec {
        name: format!("scale{i}"),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: None,
        context_tokens: None,
        request_id: None,
    }
}

/// A ~4.6 KiB message asking for `deltas` text deltas.
fn message(deltas: usize) -> Input {
    Input {
        text: format!("stream {deltas}\n{}", "lorem ipsum ".repeat(384)),
        request_id: None,
    }
}

/// Creates the workers and gives each one turn, `ACTIVE` at a time.
async fn fill(rt: &LocalRuntime) -> anyhow::Result<Vec<String>> {
    let mut live = rt.events().subscribe();
    let mut ids = Vec::with_capacity(WORKERS);
    for wave in 0..WORKERS / ACTIVE {
        let mut wave_ids = Vec::with_capacity(ACTIVE);
        for i in 0..ACTIVE {
            wave_ids.push(rt.create_worker(spec(wave * ACTIVE + i)).await?.id);
        }
        for id in &wave_ids {
            rt.send_input(id, message(DELTAS)).await?;
        }
        crate::local::until_runs_end(&mut live, ACTIVE).await?;
        ids.extend(wave_ids);
    }
    Ok(ids)
}

fn rss_mib() -> anyhow::Result<f64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .ok_or_else(|| anyhow::anyhow!("no VmRSS"))?;
    Ok(kib / 1024.0)
}

async fn timed_open(dir: &std::path::Path, make: &MakeCore) -> anyhow::Result<f64> {
    let started = Instant::now();
    let rt = open(dir, make)?;
    let ms = started.elapsed().as_secs_f64() * 1e3;
    anyhow::ensure!(rt.list_workers().await?.len() == WORKERS, "workers lost");
    rt.shutdown().await;
    Ok(ms)
}

pub async fn run(results: &mut Results) -> anyhow::Result<()> {
    let dir = tempfile::tempdir()?;
    let make = wasm_cores()?;
    let rt = open(dir.path(), &make)?;
    println!(
        "scale: {WORKERS} workers, {ACTIVE} active at a time, one turn each \
         (~5 KiB transcript, {DELTAS} deltas)"
    );
    let started = Instant::now();
    let ids = fill(&rt).await?;
    let events = rt.events().last_cursor().seq;
    let stats = rt.stats();
    println!(
        "scale: filled in {:.1} s: {events} events; {} resident workers, {:.1} MiB of \
         resident transcripts",
        started.elapsed().as_secs_f64(),
        stats.resident_workers,
        stats.resident_bytes as f64 / (1 << 20) as f64
    );
    let mut rss = Samples::default();
    rss.push(rss_mib()?);

    // The first workers were passivated long ago: each probe activates one.
    let mut live = rt.events().subscribe();
    let mut activate = Vec::with_capacity(PROBES);
    for id in ids.iter().take(PROBES) {
        let started = Instant::now();
        rt.send_input(id, message(1)).await?;
        activate.push(started.elapsed().as_secs_f64() * 1e3);
    }
    crate::local::until_runs_end(&mut live, PROBES).await?;
    activate.sort_by(f64::total_cmp);
    let mut p99 = Samples::default();
    p99.push(activate[(activate.len() * 99 / 100).min(activate.len() - 1)]);
    anyhow::ensure!(
        rt.stats().activations >= PROBES as u64,
        "the probes did not activate passivated workers"
    );
    rt.shutdown().await;
    drop(rt);

    let mut ready = Samples::default();
    for _ in 0..crate::results::rounds().min(3) {
        ready.push(timed_open(dir.path(), &make).await?);
    }
    let mut count = Samples::default();
    count.push(events as f64);
    results.record_median("scale.events", &count);
    results.record_median("scale.rss_mib", &rss);
    results.record_median("scale.activate_p99_ms", &p99);
    results.record_median("scale.ready_ms", &ready);
    Ok(())
}
