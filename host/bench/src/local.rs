//! `local.*`: a whole `LocalRuntime` with persistence on: the actor, the driver running
//! the scripted model with no delay, the SQLite event log and the live broadcast.
//!
//! `WORKERS` workers each stream one answer of `DELTAS` text deltas, all at once; the
//! clock runs from the first input to the last `run_completed` seen on the live
//! broadcast. The store's share is the time the actor spent appending (write and
//! commit) over the wall time. Meanwhile a client reads a worker (`get_worker`, a
//! command like any other) every millisecond: `local.*.command_p99_ms` is how long such
//! a command waits while the runtime is flat out.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use tokio::sync::broadcast::error::RecvError;
use yoi_core::{GuestLimits, NativeCore, WasmCore, WasmEngine};
use yoi_driver::{ScriptedConfig, ScriptedModel};
use yoi_eventlog::LogConfig;
use yoi_protocol::{Event, Input, WorkerSpec};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig, RuntimeBuilder};

use crate::results::{Results, Samples};

const WORKERS: usize = 100;
const DELTAS: usize = 2_000;

struct Outcome {
    events: u64,
    seconds: f64,
    store_share: f64,
    command_p99_ms: f64,
}

fn builder(dir: &std::path::Path) -> RuntimeBuilder {
    let mut config = LocalRuntimeConfig::new(dir);
    // The bench reads the broadcast itself and must not lag behind a full-speed run.
    config.log = LogConfig {
        broadcast_capacity: 1 << 20,
        ..LogConfig::default()
    };
    let scripted = ScriptedConfig {
        reasoning: false,
        ..ScriptedConfig::default()
    };
    LocalRuntime::builder(config).provider("scripted", Arc::new(ScriptedModel::new(scripted)))
}

async fn drive(rt: &LocalRuntime) -> anyhow::Result<Outcome> {
    let mut ids = Vec::with_capacity(WORKERS);
    for i in 0..WORKERS {
        let spec = WorkerSpec {
            name: format!("bench{i}"),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: None,
            context_tokens: None,
        };
        ids.push(rt.create_worker(spec).await?.id);
    }
    let mut live = rt.events().subscribe();
    let before = rt.events().last_cursor().seq;
    let stats_before = rt.stats();
    let started = Instant::now();
    for id in &ids {
        let input = Input {
            text: format!("stream {DELTAS}"),
            request_id: None,
        };
        rt.send_input(id, input).await?;
    }
    // A client reading a worker now and then while the runs stream.
    let done = Arc::new(AtomicBool::new(false));
    let prober = {
        let (rt, id, done) = (rt.clone(), ids[0].clone(), done.clone());
        tokio::spawn(async move {
            let mut waits = Vec::new();
            while !done.load(Ordering::Relaxed) {
                let asked = Instant::now();
                rt.get_worker(&id).await?;
                waits.push(asked.elapsed().as_secs_f64() * 1e3);
                tokio::time::sleep(Duration::from_millis(1)).await;
            }
            anyhow::Ok(waits)
        })
    };
    let mut remaining = WORKERS;
    while remaining > 0 {
        match live.recv().await {
            Ok(env) => {
                if let Event::RunCompleted { .. } | Event::RunFailed { .. } = env.event {
                    remaining -= 1;
                }
            }
            Err(RecvError::Lagged(n)) => anyhow::bail!("bench subscriber lagged by {n}"),
            Err(RecvError::Closed) => anyhow::bail!("event log closed"),
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    done.store(true, Ordering::Relaxed);
    let mut waits = prober.await??;
    anyhow::ensure!(!waits.is_empty(), "no command was answered during the runs");
    waits.sort_by(f64::total_cmp);
    let command_p99_ms = waits[((waits.len() - 1) as f64 * 0.99).round() as usize];
    let events = rt.events().last_cursor().seq - before;
    let appended = rt.stats().append_nanos - stats_before.append_nanos;
    Ok(Outcome {
        events,
        seconds,
        store_share: appended as f64 / 1e9 / seconds,
        command_p99_ms,
    })
}

pub async fn run(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds();
    println!(
        "local: {WORKERS} workers x {DELTAS} deltas, SQLite event log, scripted model; \
         {rounds} rounds, native and wasm alternating"
    );
    let dir = tempfile::tempdir()?;
    let engine = WasmEngine::new()?;
    let path = yoi_core::guest_component_path().map_err(anyhow::Error::msg)?;
    let component = yoi_core::load_component(&engine, &path)?;
    let mut figures: [Samples; 7] = Default::default();
    for round in 0..rounds {
        // A fresh data dir per runtime and round: every round appends to an empty store.
        let native =
            builder(&dir.path().join(format!("native{round}"))).open(|| Ok(NativeCore::new()))?;
        let n = drive(&native).await?;
        native.shutdown().await;

        let (engine, component) = (engine.clone(), component.clone());
        let wasm = builder(&dir.path().join(format!("wasm{round}")))
            .open(move || WasmCore::instantiate(&engine, &component, GuestLimits::default()))?;
        let w = drive(&wasm).await?;
        wasm.shutdown().await;

        let native_rate = n.events as f64 / n.seconds;
        let wasm_rate = w.events as f64 / w.seconds;
        figures[0].push(native_rate);
        figures[1].push(wasm_rate);
        figures[2].push(wasm_rate / native_rate);
        figures[3].push(n.store_share);
        figures[4].push(w.store_share);
        figures[5].push(n.command_p99_ms);
        figures[6].push(w.command_p99_ms);
    }
    let names = [
        "local.native.events_per_s",
        "local.wasm.events_per_s",
        "local.wasm_over_native",
        "local.native.store_share",
        "local.wasm.store_share",
        "local.native.command_p99_ms",
        "local.wasm.command_p99_ms",
    ];
    results.record_medians(names, &figures);
    Ok(())
}
