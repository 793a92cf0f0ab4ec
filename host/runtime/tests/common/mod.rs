//! Shared set-up for LocalRuntime tests.
#![allow(dead_code)]

use std::path::Path;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

use tokio::sync::broadcast;
use yoi_core::{GuestLimits, NativeCore, WasmCore, WasmEngine};
use yoi_driver::{ScriptedConfig, ScriptedModel};
use yoi_protocol::{Envelope, Event, Input, WorkerSpec};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig, RuntimeBuilder};

/// Generous guard so a broken test fails instead of hanging; never a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(120);

#[derive(Clone, Copy, Debug)]
pub enum Kind {
    Native,
    Wasm,
}

pub const BOTH: [Kind; 2] = [Kind::Native, Kind::Wasm];

pub fn builder(dir: &Path, scripted: ScriptedConfig) -> RuntimeBuilder {
    builder_with(LocalRuntimeConfig::new(dir), scripted)
}

/// A runtime with `config` and the scripted model.
pub fn builder_with(config: LocalRuntimeConfig, scripted: ScriptedConfig) -> RuntimeBuilder {
    LocalRuntime::builder(config).provider("scripted", Arc::new(ScriptedModel::new(scripted)))
}

fn engine() -> &'static (WasmEngine, wasmtime::component::Component) {
    static ENGINE: OnceLock<(WasmEngine, wasmtime::component::Component)> = OnceLock::new();
    ENGINE.get_or_init(|| {
        let path = yoi_core::guest_component_path().unwrap_or_else(|e| panic!("{e}"));
        let engine = WasmEngine::new().expect("engine");
        let component = yoi_core::load_component(&engine, &path).expect("component");
        (engine, component)
    })
}

pub fn open(kind: Kind, builder: RuntimeBuilder) -> LocalRuntime {
    match kind {
        Kind::Native => builder.open(|| Ok(NativeCore::new())).expect("open native"),
        Kind::Wasm => {
            let (engine, component) = engine();
            builder
                .open(move || WasmCore::instantiate(engine, component, GuestLimits::default()))
                .expect("open wasm")
        }
    }
}

pub fn spec(name: &str, tools: &[&str]) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: tools.iter().map(|t| t.to_string()).collect(),
        max_steps: None,
        context_tokens: None,
    }
}

pub fn input(text: &str) -> Input {
    Input {
        text: text.into(),
        request_id: None,
    }
}

/// Collects live envelopes until `done` says so (or PATIENCE runs out: a failure).
pub async fn collect_until(
    rx: &mut broadcast::Receiver<Arc<Envelope>>,
    mut done: impl FnMut(&Envelope) -> bool,
) -> Vec<Arc<Envelope>> {
    let mut seen = Vec::new();
    let result = tokio::time::timeout(PATIENCE, async {
        loop {
            match rx.recv().await {
                Ok(env) => {
                    let stop = done(&env);
                    seen.push(env);
                    if stop {
                        return;
                    }
                }
                Err(broadcast::error::RecvError::Lagged(n)) => {
                    panic!("test subscriber lagged by {n}")
                }
                Err(broadcast::error::RecvError::Closed) => panic!("log closed"),
            }
        }
    })
    .await;
    assert!(result.is_ok(), "gave up waiting; saw {} events", seen.len());
    seen
}

/// Whether the envelope ends a run of `worker`.
pub fn run_ended(env: &Envelope, worker: &str) -> bool {
    env.worker_id.as_deref() == Some(worker)
        && matches!(
            env.event,
            Event::RunCompleted { .. } | Event::RunFailed { .. } | Event::RunCancelled { .. }
        )
}

/// Collects live envelopes until `runs` runs have ended (each run's last event is its
/// worker going back to idle).
pub async fn collect_runs(
    rx: &mut broadcast::Receiver<Arc<Envelope>>,
    runs: usize,
) -> Vec<Arc<Envelope>> {
    let mut remaining = runs;
    collect_until(rx, |env| {
        if back_to_idle(env) {
            remaining -= 1;
        }
        remaining == 0
    })
    .await
}

/// Whether the envelope is a worker going back to idle: the last event of every run.
pub fn back_to_idle(env: &Envelope) -> bool {
    matches!(
        env.event,
        Event::StatusChanged {
            to: yoi_protocol::WorkerStatus::Idle,
            ..
        }
    )
}

/// Guest limits for the fault-injection tests: a small memory limit (the OOM input
/// reaches it at once) and a short call deadline (the hang input reaches it soon; every
/// ordinary call takes microseconds, so it stays far from it).
pub const FAULT_LIMITS: yoi_core::GuestLimits = yoi_core::GuestLimits {
    max_memory_bytes: 32 << 20,
    call_deadline: Duration::from_secs(1),
};

/// One engine for the fault-injection tests, ticking every 10 ms.
fn fault_engine() -> &'static WasmEngine {
    static ENGINE: OnceLock<WasmEngine> = OnceLock::new();
    ENGINE.get_or_init(|| {
        WasmEngine::with_config(yoi_core::WasmConfig {
            epoch_tick: Duration::from_millis(10),
        })
        .expect("engine")
    })
}

/// Opens a runtime on the test-only fault-injection component (inputs `__yoi_trap__`,
/// `__yoi_hang__` and `__yoi_oom__` fault the core) under [`FAULT_LIMITS`]. The
/// component is loaded the way the host loads it, through the compiled-component cache
/// in `cache_dir`; returns whether it came from that cache.
pub fn open_faults(builder: RuntimeBuilder, cache_dir: &Path) -> (LocalRuntime, bool) {
    let path = yoi_core::fault_guest_component_path().unwrap_or_else(|e| panic!("{e}"));
    let engine = fault_engine().clone();
    let loaded = yoi_core::ComponentCache::new(cache_dir)
        .load(&engine, &path)
        .expect("fault-injection component");
    let component = loaded.component;
    let runtime = builder
        .open(move || WasmCore::instantiate(&engine, &component, FAULT_LIMITS))
        .expect("open on the fault-injection component");
    (runtime, loaded.from_cache)
}
