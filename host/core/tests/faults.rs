//! The test-only fault-injection build of the component fails each way a broken guest
//! can, and each failure is classified; the shipped component treats the same inputs as
//! plain text.
//!
//! Needs both builds: `cargo xtask build-guest` (or `YOI_GUEST_WASM` and
//! `YOI_GUEST_FAULTS_WASM`).

use std::time::Duration;

use yoi_core::{
    CallError, Core, FaultKind, GuestLimits, WasmConfig, WasmCore, WasmEngine,
    fault_guest_component_path, guest_component_path, load_component,
};
use yoi_protocol::{Input, WorkerSpec};

const LIMITS: GuestLimits = GuestLimits {
    max_memory_bytes: 32 << 20,
    call_deadline: Duration::from_secs(1),
};

fn engine() -> WasmEngine {
    WasmEngine::with_config(WasmConfig {
        epoch_tick: Duration::from_millis(10),
    })
    .unwrap()
}

fn spec() -> WorkerSpec {
    WorkerSpec {
        name: "w".into(),
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

#[test]
fn each_injected_fault_is_classified_and_poisons_the_core() {
    let engine = engine();
    let path = fault_guest_component_path().unwrap_or_else(|e| panic!("{e}"));
    let component = load_component(&engine, &path).unwrap_or_else(|e| panic!("{e}"));
    let cases = [
        ("__yoi_trap__", FaultKind::Trap),
        ("__yoi_hang__", FaultKind::Deadline),
        ("__yoi_oom__", FaultKind::OutOfMemory),
    ];
    for (text, kind) in cases {
        let mut core = WasmCore::instantiate(&engine, &component, LIMITS).unwrap();
        let w = core.create_worker(1, spec()).unwrap();
        // Ordinary input works in this build too.
        core.send_input(2, &w.id, input("hello")).unwrap();
        let err = core
            .send_input(3, &w.id, input(text))
            .expect_err("the injected fault");
        let CallError::Fault(fault) = err else {
            panic!("{text}: expected a fault, got {err}")
        };
        assert_eq!(fault.kind, kind, "{text}: {fault}");
        assert!(fault.message.contains("send-input"), "{fault}");
        let again = core.list_workers().expect_err("poisoned");
        assert_eq!(again.kind, FaultKind::Poisoned, "{text}");
    }
}

#[test]
fn the_shipped_component_has_no_fault_injection() {
    let engine = engine();
    let path = guest_component_path().unwrap_or_else(|e| panic!("{e}"));
    let component = load_component(&engine, &path).unwrap_or_else(|e| panic!("{e}"));
    let mut core = WasmCore::instantiate(&engine, &component, LIMITS).unwrap();
    for (i, text) in ["__yoi_trap__", "__yoi_hang__", "__yoi_oom__"]
        .into_iter()
        .enumerate()
    {
        let w = core.create_worker(1, spec()).unwrap();
        let run = core.send_input(2 + i as u64, &w.id, input(text));
        assert!(run.is_ok(), "{text}: {run:?}");
    }
    assert!(core.fault().is_none());
    assert_eq!(core.list_workers().unwrap().len(), 3);
}
