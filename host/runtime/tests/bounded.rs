//! The bounded runtime end to end: passivation is invisible to observers, a reopened
//! runtime restores infos and in-flight runs only, an oversized request fails only its
//! worker's run, deletion, create idempotency and a stuck core answering
//! `runtime_unavailable`.

mod common;

use std::sync::{Arc, Mutex};
use std::time::Duration;

use common::*;
use yoi_core::{CallError, Core, Fault, NativeCore};
use yoi_driver::ScriptedConfig;
use yoi_protocol::{
    Completion, CoreError, Effect, ErrorCode, Event, EventRecord, IndexChanges, Input, Limits,
    Message, ModelBudget, Residency, RestoreSummary, WorkerInfo, WorkerSnapshot, WorkerSpec,
};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig, RuntimeError};

fn config(dir: &std::path::Path, max_resident_workers: u32) -> LocalRuntimeConfig {
    let mut config = LocalRuntimeConfig::new(dir);
    config.limits = Limits {
        max_resident_workers,
        ..Limits::default()
    };
    config
}

/// Runs the same conversation on `rt`: three workers taking turns, `turns` rounds.
async fn conversation(rt: &LocalRuntime, turns: usize) -> Vec<String> {
    let mut live = rt.events().subscribe();
    let mut workers = Vec::new();
    for name in ["a", "b", "c"] {
        workers.push(rt.create_worker(spec(name, &[])).await.unwrap().id);
    }
    for turn in 0..turns {
        for w in &workers {
            rt.send_input(w, input(&format!("hello {turn}")))
                .await
                .unwrap();
            collect_until(&mut live, |e| run_ended(e, w)).await;
        }
    }
    workers
}

/// What an observer of one worker sees: its events, without sequence numbers or times
/// (two runtimes create their workers at different moments).
fn worker_events(rt: &LocalRuntime, worker: &str) -> Vec<Event> {
    let cursor = yoi_protocol::Cursor::new(rt.events().last_cursor().epoch, 0);
    let page = rt.events().replay(cursor, Some(worker), 100_000).unwrap();
    page.events
        .iter()
        .map(|e| match &e.event {
            Event::WorkerCreated { worker } => Event::WorkerCreated {
                worker: Box::new(WorkerInfo {
                    created_at_ms: 0,
                    ..(**worker).clone()
                }),
            },
            other => other.clone(),
        })
        .collect()
}

/// A worker's snapshot with its creation time left out (see [`worker_events`]).
fn timeless(mut snapshot: WorkerSnapshot) -> WorkerSnapshot {
    snapshot.worker.created_at_ms = 0;
    snapshot
}

fn diagnostics(rt: &LocalRuntime, code: &str) -> usize {
    let cursor = yoi_protocol::Cursor::new(rt.events().last_cursor().epoch, 0);
    let page = rt.events().replay(cursor, None, 100_000).unwrap();
    page.events
        .iter()
        .filter(|e| matches!(&e.event, Event::Diagnostic { code: c, .. } if c == code))
        .count()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn passivation_is_invisible_to_observers_on_both_cores() {
    for kind in BOTH {
        let roomy = tempfile::tempdir().unwrap();
        let tight = tempfile::tempdir().unwrap();
        let unbounded = open(
            kind,
            builder_with(config(roomy.path(), 1_000), ScriptedConfig::default()),
        );
        let bounded = open(
            kind,
            builder_with(config(tight.path(), 1), ScriptedConfig::default()),
        );
        let a = conversation(&unbounded, 3).await;
        let b = conversation(&bounded, 3).await;
        assert_eq!(a, b);
        for w in &a {
            assert_eq!(
                worker_events(&bounded, w),
                worker_events(&unbounded, w),
                "{kind:?}"
            );
            assert_eq!(
                bounded.transcript(w).await.unwrap(),
                unbounded.transcript(w).await.unwrap(),
                "{kind:?}"
            );
            assert_eq!(
                timeless(bounded.snapshot(w).await.unwrap().0),
                timeless(unbounded.snapshot(w).await.unwrap().0),
                "{kind:?}"
            );
        }
        // The bounded core really passivated and activated, said so on the runtime-wide
        // stream only, and holds what its budget allows.
        assert!(diagnostics(&bounded, "worker_passivated") > 0, "{kind:?}");
        assert!(diagnostics(&bounded, "worker_activated") > 0, "{kind:?}");
        assert_eq!(diagnostics(&unbounded, "worker_passivated"), 0);
        let stats = bounded.stats();
        assert_eq!(stats.resident_workers, 1, "{kind:?}: {stats:?}");
        assert_eq!(stats.workers, 3);
        assert!(stats.activations > 0);
        // Reading a passivated worker's transcript did not make it resident.
        let activations = bounded.stats().activations;
        for w in &a {
            bounded.transcript(w).await.unwrap();
        }
        assert_eq!(bounded.stats().activations, activations);
        unbounded.shutdown().await;
        bounded.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_restores_infos_and_activates_on_first_use() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let (workers, transcripts) = {
            let rt = open(
                kind,
                builder_with(config(dir.path(), 2), ScriptedConfig::default()),
            );
            let workers = conversation(&rt, 2).await;
            let mut transcripts = Vec::new();
            for w in &workers {
                transcripts.push(rt.transcript(w).await.unwrap());
            }
            rt.shutdown().await;
            (workers, transcripts)
        };
        let rt = open(
            kind,
            builder_with(config(dir.path(), 2), ScriptedConfig::default()),
        );
        // Nothing is resident after the open: infos only.
        assert_eq!(rt.stats().activations, 0);
        assert_eq!(rt.list_workers().await.unwrap().len(), 3);
        for (w, t) in workers.iter().zip(&transcripts) {
            assert_eq!(&rt.transcript(w).await.unwrap(), t, "{kind:?}");
        }
        assert_eq!(rt.stats().activations, 0, "reads do not activate");
        // A command activates the worker it needs, and it carries on.
        let mut live = rt.events().subscribe();
        rt.send_input(&workers[0], input("again")).await.unwrap();
        collect_until(&mut live, |e| run_ended(e, &workers[0])).await;
        assert_eq!(rt.stats().activations, 1);
        assert_eq!(
            rt.transcript(&workers[0]).await.unwrap().len(),
            transcripts[0].len() + 2
        );
        // New ids continue.
        let next = rt.create_worker(spec("d", &[])).await.unwrap();
        assert_eq!(next.id, "w_4");
        rt.shutdown().await;
    }
}

/// More workers than one page of the index, and calls smaller than a page: the pages
/// read on their own thread reach the core whole and in order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_reads_the_index_page_by_page() {
    const WORKERS: usize = 4_100;
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let mut small_calls = config(dir.path(), 2);
        small_calls.call_bytes = 4096;
        let before = {
            let rt = open(
                kind,
                builder_with(small_calls.clone(), ScriptedConfig::default()),
            );
            for i in 0..WORKERS {
                rt.create_worker(spec(&format!("w{i}"), &[])).await.unwrap();
            }
            let last = rt.list_workers().await.unwrap().last().unwrap().id.clone();
            let mut live = rt.events().subscribe();
            rt.send_input(&last, input("hello")).await.unwrap();
            collect_until(&mut live, |e| run_ended(e, &last)).await;
            let before = rt.list_workers().await.unwrap();
            rt.shutdown().await;
            before
        };
        assert_eq!(before.len(), WORKERS);
        let rt = open(kind, builder_with(small_calls, ScriptedConfig::default()));
        assert_eq!(rt.list_workers().await.unwrap(), before, "{kind:?}");
        assert_eq!(rt.stats().activations, 0);
        // The last worker (on the second page) carries on from its transcript.
        let last = &before.last().unwrap().id;
        let mut live = rt.events().subscribe();
        rt.send_input(last, input("again")).await.unwrap();
        collect_until(&mut live, |e| run_ended(e, last)).await;
        assert_eq!(rt.transcript(last).await.unwrap().len(), 4, "{kind:?}");
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_request_fails_only_its_workers_run() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LocalRuntimeConfig::new(dir.path());
        config.limits = Limits {
            max_request_bytes: 20_000,
            max_input_bytes: 64 * 1024,
            ..Limits::default()
        };
        let rt = open(kind, builder_with(config, ScriptedConfig::default()));
        let mut live = rt.events().subscribe();
        let big = rt.create_worker(spec("big", &[])).await.unwrap().id;
        let small = rt.create_worker(spec("small", &[])).await.unwrap().id;
        rt.send_input(&big, input(&"x".repeat(30_000)))
            .await
            .unwrap();
        rt.send_input(&small, input("hello")).await.unwrap();
        let seen = collect_runs(&mut live, 2).await;
        let failed: Vec<&str> = seen
            .iter()
            .filter_map(|e| match &e.event {
                Event::RunFailed { error, .. } => Some(error.code.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(failed, ["request_too_large"], "{kind:?}");
        assert_eq!(rt.transcript(&small).await.unwrap().len(), 2);
        assert_eq!(rt.stats().faults, 0, "{kind:?}: the core did not fault");
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delete_stops_removes_and_frees_the_workspace() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(Kind::Native, builder(dir.path(), ScriptedConfig::default()));
    let mut live = rt.events().subscribe();
    let w = rt
        .create_worker(spec("w", &["write_file"]))
        .await
        .unwrap()
        .id;
    rt.send_input(&w, input(r#"write notes.txt hello"#))
        .await
        .unwrap();
    collect_until(&mut live, |e| run_ended(e, &w)).await;
    let workspace = dir.path().join("workspaces").join(&w);
    rt.delete_worker(&w).await.unwrap();
    assert!(matches!(
        rt.get_worker(&w).await,
        Err(RuntimeError::Rejected(CoreError::WorkerNotFound { .. }))
    ));
    let unknown = rt.delete_worker(&w).await.unwrap_err();
    assert_eq!(unknown.code(), ErrorCode::WorkerNotFound);
    // Its events stay in the log, ending with the deletion.
    let events = worker_events(&rt, &w);
    assert!(matches!(events.last(), Some(Event::WorkerDeleted { name }) if name == "w"));
    // The workspace goes (on a blocking thread, right after the commit).
    tokio::time::timeout(PATIENCE, async {
        while workspace.exists() {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the workspace is removed");
    // A reopened runtime agrees.
    rt.shutdown().await;
    let rt = open(Kind::Native, builder(dir.path(), ScriptedConfig::default()));
    assert!(rt.list_workers().await.unwrap().is_empty());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_retried_create_makes_one_worker() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(Kind::Wasm, builder(dir.path(), ScriptedConfig::default()));
    let spec = WorkerSpec {
        name: String::new(),
        request_id: Some("create-1".into()),
        ..spec("", &[])
    };
    let first = rt.create_worker(spec.clone()).await.unwrap();
    let again = rt.create_worker(spec).await.unwrap();
    assert_eq!(first, again);
    assert_eq!(first.name, "worker-1");
    assert_eq!(rt.list_workers().await.unwrap().len(), 1);
    rt.shutdown().await;
}

/// A native core with probes: it blocks in `get-worker` while `stuck` is set (a stuck
/// guest the engine's deadline cannot reach), faults on the input `__fault__`, and
/// records, per instance, the calls it started and the completions it was delivered.
struct Probe {
    inner: NativeCore,
    stuck: Arc<Mutex<bool>>,
    /// This instance's record (a restarted core is a new instance).
    calls: Arc<Mutex<Calls>>,
}

#[derive(Default)]
struct Calls {
    started: std::collections::HashSet<u64>,
    /// Completions delivered for calls this instance never started.
    strangers: Vec<u64>,
    delivered: usize,
}

impl Probe {
    fn new(stuck: Arc<Mutex<bool>>, instances: &Arc<Mutex<Vec<Arc<Mutex<Calls>>>>>) -> Self {
        let calls = Arc::new(Mutex::new(Calls::default()));
        instances.lock().unwrap().push(calls.clone());
        Probe {
            inner: NativeCore::new(),
            stuck,
            calls,
        }
    }
}

impl Core for Probe {
    fn configure(&mut self, limits: Limits) -> Result<(), Fault> {
        self.inner.configure(limits)
    }
    fn configure_models(&mut self, budgets: Vec<ModelBudget>) -> Result<(), Fault> {
        self.inner.configure_models(budgets)
    }
    fn create_worker(&mut self, now_ms: u64, spec: WorkerSpec) -> Result<WorkerInfo, CallError> {
        self.inner.create_worker(now_ms, spec)
    }
    fn list_workers(&mut self) -> Result<Vec<WorkerInfo>, Fault> {
        self.inner.list_workers()
    }
    fn get_worker(&mut self, worker_id: &str) -> Result<WorkerInfo, CallError> {
        while *self.stuck.lock().unwrap() {
            std::thread::sleep(Duration::from_millis(5));
        }
        self.inner.get_worker(worker_id)
    }
    fn send_input(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        input: Input,
    ) -> Result<String, CallError> {
        if input.text == "__fault__" {
            return Err(CallError::Fault(Fault::new(
                yoi_core::FaultKind::Panic,
                "injected by the test",
            )));
        }
        self.inner.send_input(now_ms, worker_id, input)
    }
    fn cancel(&mut self, now_ms: u64, worker_id: &str) -> Result<String, CallError> {
        self.inner.cancel(now_ms, worker_id)
    }
    fn stop(&mut self, now_ms: u64, worker_id: &str) -> Result<WorkerInfo, CallError> {
        self.inner.stop(now_ms, worker_id)
    }
    fn delete_worker(&mut self, now_ms: u64, worker_id: &str) -> Result<(), CallError> {
        self.inner.delete_worker(now_ms, worker_id)
    }
    fn transcript(
        &mut self,
        worker_id: &str,
        start: usize,
        max_bytes: u32,
    ) -> Result<Vec<Message>, CallError> {
        self.inner.transcript(worker_id, start, max_bytes)
    }
    fn snapshot(&mut self, worker_id: &str, max_bytes: u32) -> Result<WorkerSnapshot, CallError> {
        self.inner.snapshot(worker_id, max_bytes)
    }
    fn pull_events(&mut self, max: usize, max_bytes: u32) -> Result<Vec<EventRecord>, Fault> {
        self.inner.pull_events(max, max_bytes)
    }
    fn pull_effects(&mut self, max: usize, max_bytes: u32) -> Result<Vec<Effect>, Fault> {
        let effects = self.inner.pull_effects(max, max_bytes)?;
        let mut calls = self.calls.lock().unwrap();
        for effect in &effects {
            calls.started.insert(effect.call_id());
        }
        Ok(effects)
    }
    fn pull_index(&mut self, max_bytes: u32) -> Result<IndexChanges, Fault> {
        self.inner.pull_index(max_bytes)
    }
    fn residency(&mut self) -> Result<Residency, Fault> {
        self.inner.residency()
    }
    fn deliver(&mut self, now_ms: u64, completions: Vec<Completion>) -> Result<(), Fault> {
        {
            let mut calls = self.calls.lock().unwrap();
            for completion in &completions {
                calls.delivered += 1;
                if !calls.started.contains(&completion.call_id()) {
                    calls.strangers.push(completion.call_id());
                }
            }
        }
        self.inner.deliver(now_ms, completions)
    }
    fn restore(&mut self, events: Vec<EventRecord>) -> Result<(), CallError> {
        self.inner.restore(events)
    }
    fn restore_index(
        &mut self,
        rows: &[u8],
        next_worker: u64,
        next_run: u64,
    ) -> Result<(), CallError> {
        self.inner.restore_index(rows, next_worker, next_run)
    }
    fn activate(
        &mut self,
        now_ms: u64,
        worker_id: &str,
        events: Vec<EventRecord>,
        last: bool,
    ) -> Result<(), CallError> {
        self.inner.activate(now_ms, worker_id, events, last)
    }
    fn finish_restore(&mut self, now_ms: u64) -> Result<RestoreSummary, Fault> {
        self.inner.finish_restore(now_ms)
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stuck_core_answers_runtime_unavailable() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalRuntimeConfig::new(dir.path());
    config.request_deadline = Duration::from_millis(300);
    let stuck = Arc::new(Mutex::new(false));
    let flag = stuck.clone();
    let instances = Arc::new(Mutex::new(Vec::new()));
    let rt = builder_with(config, ScriptedConfig::default())
        .open(move || Ok(Probe::new(flag.clone(), &instances)))
        .unwrap();
    let w = rt.create_worker(spec("w", &[])).await.unwrap().id;
    *stuck.lock().unwrap() = true;
    let err = rt.get_worker(&w).await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RuntimeUnavailable, "{err}");
    // Every later call meets the same deadline instead of hanging.
    let err = rt.list_workers().await.unwrap_err();
    assert_eq!(err.code(), ErrorCode::RuntimeUnavailable, "{err}");
    // Once the core moves again the runtime serves.
    *stuck.lock().unwrap() = false;
    assert_eq!(rt.get_worker(&w).await.unwrap().id, w);
    rt.shutdown().await;
}

/// The reproduction of the unbounded core's failure, with the budgets scaled down so it
/// runs in seconds: eight workers fed large messages turn after turn, their model steps
/// running together, until their requests outgrow the request budget. (At full scale,
/// ~22 MB transcripts, one `pull-effects` used to carry all eight requests at once, the
/// wasm core trapped and every run in flight ended `interrupted`.) Here each pull carries
/// at most the call budget, several requests each larger than it included; no run is
/// interrupted, the core never faults, each worker's oversized request fails only its
/// own run, and the resident transcripts stay inside their byte budget however long the
/// histories grow.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn long_conversations_with_large_messages_never_fault_the_core() {
    const WORKERS: usize = 8;
    const MESSAGE: usize = 16 << 10;
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LocalRuntimeConfig::new(dir.path());
        config.call_bytes = 64 << 10;
        config.limits = Limits {
            max_request_bytes: 256 << 10,
            max_resident_bytes: 512 << 10,
            max_input_bytes: 64 << 10,
            ..Limits::default()
        };
        let rt = open(kind, builder_with(config, ScriptedConfig::default()));
        let mut live = rt.events().subscribe();
        let mut active = Vec::new();
        for i in 0..WORKERS {
            active.push(
                rt.create_worker(spec(&format!("w{i}"), &[]))
                    .await
                    .unwrap()
                    .id,
            );
        }
        let mut too_large = Vec::new();
        let mut turns = 0;
        while !active.is_empty() {
            turns += 1;
            assert!(
                turns < 100,
                "{kind:?}: the requests never outgrew their budget"
            );
            let text = format!("{turns} {}", "x".repeat(MESSAGE));
            for w in &active {
                rt.send_input(w, input(&text)).await.unwrap();
            }
            let mut ends = 0;
            let seen = collect_until(&mut live, |e| {
                if active.iter().any(|w| run_ended(e, w)) {
                    ends += 1;
                }
                ends == active.len()
            })
            .await;
            for e in &seen {
                if let Event::RunFailed { error, .. } = &e.event {
                    assert_eq!(error.code, "request_too_large", "{kind:?}: {error:?}");
                    let w = e.worker_id.clone().unwrap();
                    active.retain(|a| *a != w);
                    too_large.push(w);
                }
            }
        }
        assert_eq!(too_large.len(), WORKERS, "{kind:?}");
        let stats = rt.stats();
        assert_eq!(stats.faults, 0, "{kind:?}: the core never faulted");
        assert!(
            stats.resident_bytes <= 512 << 10,
            "{kind:?}: resident transcripts within their budget: {stats:?}"
        );
        // Every worker is still whole: its transcript holds every message it was sent.
        for w in &too_large {
            let transcript = rt.transcript(w).await.unwrap();
            let inputs = transcript
                .iter()
                .filter(|m| m.role == yoi_protocol::Role::User)
                .count();
            assert!(inputs >= 2, "{kind:?}: {w} kept its history");
        }
        rt.shutdown().await;
    }
}

/// Completions of calls started for a core that then faulted never reach its
/// replacement (which numbers its calls afresh, so they could land in its own calls):
/// the driver tags them with its generation and the actor drops stale ones.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn completions_of_calls_started_before_a_restart_are_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let instances = Arc::new(Mutex::new(Vec::new()));
    let made = instances.clone();
    let stuck = Arc::new(Mutex::new(false));
    // No delay: the model floods the actor, so completions are waiting in its inbox when
    // the core faults.
    let flood = ScriptedConfig {
        token_delay: Duration::ZERO,
        ..ScriptedConfig::default()
    };
    let rt = builder(dir.path(), flood)
        .open(move || Ok(Probe::new(stuck.clone(), &made)))
        .unwrap();
    let mut live = rt.events().subscribe();
    let a = rt.create_worker(spec("a", &[])).await.unwrap().id;
    let b = rt.create_worker(spec("b", &[])).await.unwrap().id;
    rt.send_input(&a, input("stream 100000")).await.unwrap();
    collect_until(&mut live, |e| {
        e.worker_id.as_deref() == Some(a.as_str()) && matches!(e.event, Event::TextDelta { .. })
    })
    .await;
    let err = rt.send_input(&b, input("__fault__")).await.unwrap_err();
    assert!(matches!(err, RuntimeError::CoreFault(_)), "{err:?}");
    collect_until(&mut live, |e| run_ended(e, &a)).await;
    // The replacement runs calls of its own, numbered from the start again.
    rt.send_input(&a, input("stream 50")).await.unwrap();
    rt.send_input(&b, input("stream 50")).await.unwrap();
    let mut ends = 0;
    collect_until(&mut live, |e| {
        if run_ended(e, &a) || run_ended(e, &b) {
            ends += 1;
        }
        ends == 2
    })
    .await;
    let (first, replacement) = {
        let instances = instances.lock().unwrap();
        assert_eq!(instances.len(), 2, "the core was replaced once");
        let counts = |c: &Arc<Mutex<Calls>>| {
            let c = c.lock().unwrap();
            (c.delivered, c.strangers.clone())
        };
        (counts(&instances[0]), counts(&instances[1]))
    };
    assert!(first.0 > 0 && replacement.0 > 0);
    assert!(
        replacement.1.is_empty(),
        "{} completions of the faulted core's calls reached its replacement (calls {:?}...)",
        replacement.1.len(),
        &replacement.1[..replacement.1.len().min(5)]
    );
    assert!(first.1.is_empty());
    for w in [&a, &b] {
        let transcript = rt.transcript(w).await.unwrap();
        assert_eq!(
            transcript.last().unwrap().role,
            yoi_protocol::Role::Assistant
        );
    }
    rt.shutdown().await;
}
