//! `ready.*`: start-to-ready of a runtime whose log holds about a million events,
//! replaying the whole log (what every open did before the worker index, and what an
//! open still does when the index is behind) against opening from the worker index
//! (infos only; runs in flight rebuilt from their own events).
//!
//! The store is made once: `WORKERS` workers each stream one answer of `DELTAS` text
//! deltas through the wasm core. Each round then times `open` twice on it: after
//! appending one event without index changes (so the index is behind and the open
//! replays everything, then rebuilds the index) and right after that open (from the
//! index).

use std::sync::Arc;
use std::time::Instant;

use yoi_core::{GuestLimits, WasmCore, WasmEngine};
use yoi_driver::{ScriptedConfig, ScriptedModel};
use yoi_eventlog::{EventLog, LogConfig};
use yoi_protocol::{Event, EventRecord, Input, Level, WorkerSpec};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig};

use crate::results::{Results, Samples};

const WORKERS: usize = 1_000;
const DELTAS: usize = 1_000;

/// Makes a fresh wasm core (the compiled component is shared).
pub(crate) type MakeCore = Arc<dyn Fn() -> Result<WasmCore, yoi_core::Fault> + Send + Sync>;

pub(crate) fn open(dir: &std::path::Path, make: &MakeCore) -> anyhow::Result<LocalRuntime> {
    let mut config = LocalRuntimeConfig::new(dir);
    config.log = LogConfig {
        broadcast_capacity: 1 << 20,
        ..LogConfig::default()
    };
    let scripted = ScriptedConfig {
        reasoning: false,
        ..ScriptedConfig::default()
    };
    let make = make.clone();
    Ok(LocalRuntime::builder(config)
        .provider("scripted", Arc::new(ScriptedModel::new(scripted)))
        .open(move || make())?)
}

/// Makes wasm cores of the shipped component, as the host does.
pub(crate) fn wasm_cores() -> anyhow::Result<MakeCore> {
    let engine = WasmEngine::new()?;
    let path = yoi_core::guest_component_path().map_err(anyhow::Error::msg)?;
    let component = yoi_core::load_component(&engine, &path)?;
    Ok(Arc::new(move || {
        WasmCore::instantiate(&engine, &component, GuestLimits::default())
    }))
}

/// Fills a fresh store with about `WORKERS * DELTAS` events.
async fn fill(rt: &LocalRuntime) -> anyhow::Result<u64> {
    let mut live = rt.events().subscribe();
    for i in 0..WORKERS {
        let spec = WorkerSpec {
            name: format!("ready{i}"),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: None,
            context_tokens: None,
            request_id: None,
        };
        let id = rt.create_worker(spec).await?.id;
        let input = Input {
            text: format!("stream {DELTAS}"),
            request_id: None,
        };
        rt.send_input(&id, input).await?;
    }
    crate::local::until_runs_end(&mut live, WORKERS).await?;
    Ok(rt.events().last_cursor().seq)
}

/// Leaves the worker index behind the log: one event appended without index changes.
fn make_index_stale(dir: &std::path::Path) -> anyhow::Result<()> {
    let mut log = EventLog::open(&dir.join("events.db"), LogConfig::default())?;
    log.append(vec![EventRecord {
        worker_id: None,
        at_ms: 0,
        event: Event::Diagnostic {
            level: Level::Info,
            code: "bench".into(),
            message: "index made stale".into(),
        },
    }])?;
    Ok(())
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
    let rounds = crate::results::rounds();
    let dir = tempfile::tempdir()?;
    let make = wasm_cores()?;
    let rt = open(dir.path(), &make)?;
    let events = fill(&rt).await?;
    rt.shutdown().await;
    println!(
        "ready: start-to-ready of a wasm runtime over {events} events of {WORKERS} workers; \
         {rounds} rounds, full replay and worker index alternating"
    );
    let mut figures: [Samples; 4] = Default::default();
    for _ in 0..rounds {
        make_index_stale(dir.path())?;
        let full = timed_open(dir.path(), &make).await?;
        let indexed = timed_open(dir.path(), &make).await?;
        figures[0].push(events as f64);
        figures[1].push(full);
        figures[2].push(indexed);
        figures[3].push(full / indexed);
    }
    let names = [
        "ready.events",
        "ready.full_replay_ms",
        "ready.indexed_ms",
        "ready.speedup",
    ];
    results.record_medians(names, &figures);
    Ok(())
}
