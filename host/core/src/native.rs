//! [`NativeCore`]: the state machine linked into the process.

use std::panic::{AssertUnwindSafe, catch_unwind};

use yoi_protocol::{
    Completion, Effect, EventRecord, IndexChanges, Input, Limits, Message, ModelBudget, Residency,
    RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};
use yoi_runtime_guest::Runtime;

use crate::{CallError, Core, Fault, FaultKind};

/// The runtime core linked natively (used by `yoi-runtime serve` and as the reference
/// the wasm core is checked against).
///
/// It cannot trap; the one way it fails is a panic, which is caught at the call
/// boundary and returned as a [`Fault`] of kind [`FaultKind::Panic`]. A panic may have
/// left the state machine half-updated, so from then on the core is poisoned, exactly
/// like a trapped [`WasmCore`](crate::WasmCore).
pub struct NativeCore {
    runtime: Runtime,
    fault: Option<Fault>,
}

impl NativeCore {
    /// A fresh core with the default limits.
    pub fn new() -> Self {
        NativeCore {
            runtime: Runtime::new(),
            fault: None,
        }
    }

    /// Whether an earlier call faulted (every later call returns a fault).
    pub fn fault(&self) -> Option<&Fault> {
        self.fault.as_ref()
    }

    fn call<R>(&mut self, what: &str, f: impl FnOnce(&mut Runtime) -> R) -> Result<R, Fault> {
        if let Some(first) = &self.fault {
            return Err(Fault::poisoned(first));
        }
        let runtime = &mut self.runtime;
        match catch_unwind(AssertUnwindSafe(|| f(runtime))) {
            Ok(r) => Ok(r),
            Err(payload) => {
                let detail = payload
                    .downcast_ref::<&str>()
                    .map(|s| s.to_string())
                    .or_else(|| payload.downcast_ref::<String>().cloned())
                    .unwrap_or_else(|| "non-string panic payload".to_string());
                let fault = Fault::new(
                    FaultKind::Panic,
                    format!("native core panicked in `{what}`: {detail}"),
                );
                self.fault = Some(fault.clone());
                Err(fault)
            }
        }
    }

    fn command<R>(
        &mut self,
        what: &str,
        f: impl FnOnce(&mut Runtime) -> Result<R, yoi_protocol::CoreError>,
    ) -> Result<R, CallError> {
        self.call(what, f)?.map_err(CallError::Rejected)
    }
}

impl Default for NativeCore {
    fn default() -> Self {
        Self::new()
    }
}

impl Core for NativeCore {
    fn configure(&mut self, limits: Limits) -> Result<(), Fault> {
        self.call("configure", |rt| rt.configure(limits))
    }

    fn configure_models(&mut self, budgets: Vec<ModelBudget>) -> Result<(), Fault> {
        self.call("configure-models", |rt| rt.configure_models(budgets))
    }

    fn create_worker(&mut self, now_ms: u64, spec: WorkerSpec) -> Result<WorkerInfo, CallError> {
        self.command("create-worker", |rt| rt.create_worker(now_ms, spec))
    }

    fn list_workers(&mut self) -> Result<Vec<WorkerInfo>, Fault> {
        self.call("list-workers", |rt| rt.list_workers())
    }

    fn get_worker(&mut self, worker_id: &str) -> Result<WorkerInfo, CallError> {
        self.command("get-worker", |rt| rt.get_worker(worker_id))
    }

    fn send_input(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        input: Input,
    ) -> Result<String, CallError> {
        self.command("send-input", |rt| rt.send_input(now_ms, worker_id, input))
    }

    fn cancel(&mut self, now_ms: u64, worker_id: &str) -> Result<String, CallError> {
        self.command("cancel", |rt| rt.cancel(now_ms, worker_id))
    }

    fn stop(&mut self, now_ms: u64, worker_id: &str) -> Result<WorkerInfo, CallError> {
        self.command("stop", |rt| rt.stop(now_ms, worker_id))
    }

    fn delete_worker(&mut self, now_ms: u64, worker_id: &str) -> Result<(), CallError> {
        self.command("delete-worker", |rt| rt.delete_worker(now_ms, worker_id))
    }

    fn transcript(
        &mut self,
        worker_id: &str,
        start: usize,
        max_bytes: u32,
    ) -> Result<Vec<Message>, CallError> {
        self.command("transcript", |rt| {
            rt.transcript(worker_id, start, max_bytes.into())
        })
    }

    fn snapshot(&mut self, worker_id: &str, max_bytes: u32) -> Result<WorkerSnapshot, CallError> {
        self.command("snapshot", |rt| rt.snapshot(worker_id, max_bytes.into()))
    }

    fn pull_events(&mut self, max: usize, max_bytes: u32) -> Result<Vec<EventRecord>, Fault> {
        self.call("pull-events", |rt| rt.pull_events(max, max_bytes.into()))
    }

    fn pull_effects(&mut self, max: usize, max_bytes: u32) -> Result<Vec<Effect>, Fault> {
        self.call("pull-effects", |rt| rt.pull_effects(max, max_bytes.into()))
    }

    fn pull_index(&mut self, max_bytes: u32) -> Result<IndexChanges, Fault> {
        self.call("pull-index", |rt| rt.pull_index(max_bytes.into()))
    }

    fn residency(&mut self) -> Result<Residency, Fault> {
        self.call("residency", |rt| rt.residency())
    }

    fn deliver(&mut self, now_ms: u64, completions: Vec<Completion>) -> Result<(), Fault> {
        self.call("deliver", |rt| rt.deliver(now_ms, completions))
    }

    fn restore(&mut self, events: Vec<EventRecord>) -> Result<(), CallError> {
        self.command("restore", |rt| rt.restore(events))
    }

    fn restore_index(
        &mut self,
        rows: &[u8],
        next_worker: u64,
        next_run: u64,
    ) -> Result<(), CallError> {
        self.command("restore-index", |rt| {
            rt.restore_index(rows, next_worker, next_run)
        })
    }

    fn activate(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        events: Vec<EventRecord>,
        last: bool,
    ) -> Result<(), CallError> {
        self.command("activate", |rt| {
            rt.activate(now_ms, worker_id, events, last)
        })
    }

    fn finish_restore(&mut self, now_ms: u64) -> Result<RestoreSummary, Fault> {
        self.call("finish-restore", |rt| rt.finish_restore(now_ms))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_panic_is_a_fault_and_poisons_the_core() {
        let mut core = NativeCore::new();
        let fault = core.call("test", |_| -> () { panic!("boom") }).unwrap_err();
        assert_eq!(fault.kind, FaultKind::Panic);
        assert!(fault.message.contains("boom"), "{fault}");
        let again = core.list_workers().unwrap_err();
        assert_eq!(again.kind, FaultKind::Poisoned);
        assert!(again.message.contains("boom"), "{again}");
    }
}
