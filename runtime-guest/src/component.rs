//! The component glue (built for wasm only): exports `yoi:runtime/core` over the one
//! [`Runtime`] of this instance.
//!
//! The WIT types `wit-bindgen` generates are converted to and from the `yoi-protocol`
//! mirror by `yoi_protocol::wit_mirror!`, the same mapping the host uses on its side,
//! so the state machine only ever sees protocol types.
//!
//! A component instance is single-threaded and its exports are never re-entered, so the
//! runtime lives in a thread-local `RefCell`; a borrow can never be contended.
//!
//! With the test-only cargo feature `fault-injection`, five input texts make
//! `send-input` fail the way a broken guest would, before the runtime sees them:
//! `__yoi_trap__` traps (`unreachable`), `__yoi_hang__` loops forever (the host's epoch
//! deadline ends it), `__yoi_oom__` allocates until the host's memory limit traps,
//! `__yoi_sleep__` sleeps for an hour (the host's WASI refuses to block: it traps) and
//! `__yoi_clock__` polls the monotonic clock until an hour has passed (the host's clock
//! is frozen, so the epoch deadline ends it).
//! The host's recovery tests use that build (`target/guest/yoi_runtime_faults.wasm`);
//! the shipped component is built without the feature, so those texts are plain input.

use std::cell::RefCell;

use yoi_protocol as p;

use crate::Runtime;
use exports::yoi::runtime::core::Guest;
use yoi::runtime::types as w;

wit_bindgen::generate!({
    path: "../wit",
    world: "runtime",
});

yoi_protocol::wit_mirror!(self::yoi::runtime::types);

thread_local! {
    static RUNTIME: RefCell<Runtime> = RefCell::new(Runtime::new());
}

fn with<R>(f: impl FnOnce(&mut Runtime) -> R) -> R {
    RUNTIME.with_borrow_mut(f)
}

fn out<T: Into<U>, U>(r: Result<T, p::CoreError>) -> Result<U, w::CoreError> {
    r.map(Into::into).map_err(Into::into)
}

fn list<T: Into<U>, U>(v: Vec<T>) -> Vec<U> {
    v.into_iter().map(Into::into).collect()
}

struct Component;

impl Guest for Component {
    fn configure(limits: w::Limits) {
        with(|rt| rt.configure(limits.into()))
    }

    fn configure_models(budgets: Vec<w::ModelBudget>) {
        let budgets = list(budgets);
        with(|rt| rt.configure_models(budgets))
    }

    fn create_worker(now_ms: u64, spec: w::WorkerSpec) -> Result<w::WorkerInfo, w::CoreError> {
        out(with(|rt| rt.create_worker(now_ms, spec.into())))
    }

    fn list_workers() -> Vec<w::WorkerInfo> {
        list(with(|rt| rt.list_workers()))
    }

    fn get_worker(worker_id: String) -> Result<w::WorkerInfo, w::CoreError> {
        out(with(|rt| rt.get_worker(&worker_id)))
    }

    fn send_input(now_ms: u64, worker_id: String, input: w::Input) -> Result<String, w::CoreError> {
        #[cfg(feature = "fault-injection")]
        fault_injection::inject(&input.text);
        out(with(|rt| rt.send_input(now_ms, &worker_id, input.into())))
    }

    fn cancel(now_ms: u64, worker_id: String) -> Result<String, w::CoreError> {
        out(with(|rt| rt.cancel(now_ms, &worker_id)))
    }

    fn stop(now_ms: u64, worker_id: String) -> Result<w::WorkerInfo, w::CoreError> {
        out(with(|rt| rt.stop(now_ms, &worker_id)))
    }

    fn delete_worker(now_ms: u64, worker_id: String) -> Result<(), w::CoreError> {
        with(|rt| rt.delete_worker(now_ms, &worker_id)).map_err(Into::into)
    }

    fn transcript(
        worker_id: String,
        start: u32,
        max_bytes: u32,
    ) -> Result<Vec<w::Message>, w::CoreError> {
        with(|rt| rt.transcript(&worker_id, start as usize, max_bytes.into()))
            .map(list)
            .map_err(Into::into)
    }

    fn snapshot(worker_id: String, max_bytes: u32) -> Result<w::WorkerSnapshot, w::CoreError> {
        out(with(|rt| rt.snapshot(&worker_id, max_bytes.into())))
    }

    fn pull_events(max: u32, max_bytes: u32) -> Vec<w::EventRecord> {
        list(with(|rt| rt.pull_events(max as usize, max_bytes.into())))
    }

    fn pull_effects(max: u32, max_bytes: u32) -> Vec<w::Effect> {
        list(with(|rt| rt.pull_effects(max as usize, max_bytes.into())))
    }

    fn pull_index(max_bytes: u32) -> w::IndexChanges {
        with(|rt| rt.pull_index(max_bytes.into())).into()
    }

    fn current_residency() -> w::Residency {
        with(|rt| rt.residency()).into()
    }

    fn deliver(now_ms: u64, completions: Vec<w::Completion>) {
        let completions = list(completions);
        with(|rt| rt.deliver(now_ms, completions))
    }

    fn restore(events: Vec<w::EventRecord>) -> Result<(), w::CoreError> {
        let events = list(events);
        with(|rt| rt.restore(events)).map_err(Into::into)
    }

    fn restore_index(rows: Vec<u8>, next_worker: u64, next_run: u64) -> Result<(), w::CoreError> {
        with(|rt| rt.restore_index(&rows, next_worker, next_run)).map_err(Into::into)
    }

    fn activate(
        now_ms: u64,
        worker_id: String,
        events: Vec<w::EventRecord>,
        last: bool,
    ) -> Result<(), w::CoreError> {
        let events = list(events);
        with(|rt| rt.activate(now_ms, &worker_id, events, last)).map_err(Into::into)
    }

    fn finish_restore(now_ms: u64) -> w::RestoreSummary {
        with(|rt| rt.finish_restore(now_ms)).into()
    }
}

export!(Component);

/// Test-only faults (see the module docs). Never compiled into the shipped component.
#[cfg(feature = "fault-injection")]
mod fault_injection {
    use std::hint::black_box;

    /// Fails the guest when `text` asks for it; returns normally otherwise.
    pub(super) fn inject(text: &str) {
        match text {
            "__yoi_trap__" => core::arch::wasm32::unreachable(),
            "__yoi_hang__" => {
                let mut spins = 0u64;
                loop {
                    spins = black_box(spins.wrapping_add(1));
                }
            }
            "__yoi_sleep__" => std::thread::sleep(std::time::Duration::from_secs(3600)),
            "__yoi_clock__" => {
                let started = std::time::Instant::now();
                while started.elapsed() < std::time::Duration::from_secs(3600) {
                    black_box(&started);
                }
            }
            "__yoi_oom__" => {
                // Touch every page so nothing is optimised away; the memory grow that
                // crosses the host's limit traps before the allocator sees a failure.
                let mut hoard: Vec<Vec<u8>> = Vec::new();
                loop {
                    hoard.push(vec![0x5a; 1 << 20]);
                    black_box(&hoard);
                }
            }
            _ => {}
        }
    }
}
