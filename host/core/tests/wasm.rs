//! The wasm engine's guard rails: memory limit, call deadline, poisoning after a fault,
//! clear errors when the component is missing, and what the component may import.
//!
//! Needs the built component: `cargo xtask build-guest` (or `YOI_GUEST_WASM=path`).

use std::sync::OnceLock;
use std::time::Duration;

use wasmtime::component::Component;
use yoi_core::{
    CallError, Core, FaultKind, GuestLimits, WasmConfig, WasmCore, WasmEngine, component_imports,
    guest_component_path, load_component,
};
use yoi_protocol::{Completion, Effect, Input, WorkerSpec};

fn compiled() -> &'static (WasmEngine, Component) {
    static COMPILED: OnceLock<(WasmEngine, Component)> = OnceLock::new();
    COMPILED.get_or_init(|| {
        let path = guest_component_path().unwrap_or_else(|e| panic!("{e}"));
        let engine = WasmEngine::new().expect("wasm engine");
        let component = load_component(&engine, &path).unwrap_or_else(|e| panic!("{e}"));
        (engine, component)
    })
}

fn spec(name: &str) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: None,
        context_tokens: None,
    }
}

fn input(text: &str) -> Input {
    Input {
        text: text.into(),
        request_id: None,
    }
}

fn text(call_id: u64, text: &str) -> Completion {
    Completion::TextDelta {
        call_id,
        text: text.into(),
    }
}

/// A worker with a run in flight; returns the model call's id.
fn running(core: &mut WasmCore) -> (String, u64) {
    let w = core.create_worker(1, spec("w")).unwrap();
    core.send_input(2, &w.id, input("hi")).unwrap();
    match core.pull_effects(10).unwrap().as_slice() {
        [Effect::CallModel(r)] => (w.id, r.call_id),
        other => panic!("expected a model call, got {other:?}"),
    }
}

/// A guest that grows past its memory limit traps with an out-of-memory fault; the core
/// is poisoned afterwards, and a fresh instance of the same component works.
#[test]
fn memory_limit_traps_and_poisons() {
    let (engine, component) = compiled();
    let limits = GuestLimits {
        max_memory_bytes: 8 << 20,
        ..GuestLimits::default()
    };
    let mut core = WasmCore::instantiate(engine, component, limits).expect("instantiate");
    let (worker, call) = running(&mut core);
    let huge = "x".repeat(16 << 20);
    let fault = core
        .deliver(3, vec![text(call, &huge)])
        .expect_err("a 16 MiB delivery cannot fit in 8 MiB");
    assert_eq!(fault.kind, FaultKind::OutOfMemory, "{fault}");
    assert!(fault.message.contains("deliver"), "{fault}");
    assert_eq!(core.fault(), Some(&fault));

    let again = core.get_worker(&worker).expect_err("poisoned");
    assert!(
        matches!(&again, CallError::Fault(f) if f.kind == FaultKind::Poisoned),
        "{again}"
    );
    let pulled = core.pull_events(10).expect_err("poisoned");
    assert_eq!(pulled.kind, FaultKind::Poisoned);
    assert!(pulled.message.contains("out_of_memory"), "{pulled}");

    let mut fresh = WasmCore::instantiate(engine, component, limits).expect("instantiate");
    assert!(fresh.list_workers().unwrap().is_empty());
    running(&mut fresh);
}

/// A call that runs past its deadline traps instead of hanging.
#[test]
fn deadline_traps_a_long_call() {
    let engine = WasmEngine::with_config(WasmConfig {
        epoch_tick: Duration::from_millis(1),
    })
    .expect("engine");
    let path = guest_component_path().unwrap_or_else(|e| panic!("{e}"));
    let component = load_component(&engine, &path).unwrap_or_else(|e| panic!("{e}"));
    let limits = GuestLimits {
        call_deadline: Duration::from_millis(1),
        ..GuestLimits::default()
    };
    let mut core = WasmCore::instantiate(&engine, &component, limits).expect("instantiate");
    let (_, call) = running(&mut core);
    // Far more work than fits in two milliseconds: every delta becomes an event.
    let mut fault = None;
    for _ in 0..100 {
        let batch: Vec<_> = (0..50_000).map(|_| text(call, "tok ")).collect();
        let outcome = core
            .deliver(3, batch)
            .and_then(|()| core.pull_events(usize::MAX).map(drop));
        if let Err(f) = outcome {
            fault = Some(f);
            break;
        }
    }
    let fault = fault.expect("the deadline should have interrupted the guest");
    assert_eq!(fault.kind, FaultKind::Deadline, "{fault}");
    assert!(fault.message.contains("deadline"), "{fault}");
}

/// Unreadable or invalid component files are instantiation faults naming the file.
#[test]
fn bad_component_files_are_clear_errors() {
    let engine = &compiled().0;
    let missing = std::path::Path::new("/nonexistent/yoi.wasm");
    let Err(err) = load_component(engine, missing) else {
        panic!("loaded a missing file")
    };
    assert_eq!(err.kind, FaultKind::Instantiate);
    assert!(err.message.contains("/nonexistent/yoi.wasm"), "{err}");

    let dir = tempfile::tempdir().unwrap();
    let garbage = dir.path().join("garbage.wasm");
    std::fs::write(&garbage, b"\0asm not really").unwrap();
    let Err(err) = WasmCore::from_file(engine, &garbage, GuestLimits::default()) else {
        panic!("instantiated garbage")
    };
    assert_eq!(err.kind, FaultKind::Instantiate);
    assert!(err.message.contains("garbage.wasm"), "{err}");
}

/// The core is pure: besides its own types it imports only the WASI interfaces that
/// `wasm32-wasip2` std links in (stdio, environment, exit; random and clocks would be
/// tolerated), never filesystems, sockets or HTTP.
#[test]
fn component_imports_nothing_but_std_wasi() {
    let (engine, component) = compiled();
    let imports = component_imports(engine, component);
    let allowed = [
        "yoi:runtime/types@",
        "wasi:cli/",
        "wasi:io/",
        "wasi:random/",
        "wasi:clocks/",
    ];
    let unexpected: Vec<_> = imports
        .iter()
        .filter(|name| !allowed.iter().any(|a| name.starts_with(a)))
        .collect();
    assert!(unexpected.is_empty(), "unexpected imports: {unexpected:?}");
}
