//! A faulting guest through LocalRuntime's public API: with the test-only
//! fault-injection build of the component, an input that traps, hangs or exhausts
//! memory faults the core mid-command. The command fails with `CoreFault`, the core is
//! re-instantiated and restored from the event log, a `core_restarted` diagnostic is
//! logged, runs in flight end `interrupted`, and the runtime keeps serving. The shipped
//! component treats the same inputs as plain text.
//!
//! Needs both builds: `cargo xtask build-guest` (or `YOI_GUEST_WASM` and
//! `YOI_GUEST_FAULTS_WASM`). No timed assertions: the deadline is configuration, waiting
//! is bounded by generous guards only.

mod common;

use std::time::Duration;

use common::*;
use yoi_driver::ScriptedConfig;
use yoi_protocol::{Cursor, Envelope, Event, Level, Role, WorkerStatus};
use yoi_runtime::{LocalRuntime, RuntimeError};

/// Whether the envelope is the runtime-wide diagnostic of a core restart.
fn core_restarted(env: &Envelope) -> bool {
    env.worker_id.is_none()
        && matches!(&env.event, Event::Diagnostic { level: Level::Error, code, .. } if code == "core_restarted")
}

/// Every event in the log, read from the store (not the in-memory window).
fn stored(rt: &LocalRuntime) -> Vec<Envelope> {
    let mut all = Vec::new();
    let mut after = Cursor::new(rt.events().epoch(), 0);
    loop {
        let page = rt.events().replay_from_store(after, None, 1000).unwrap();
        all.extend(page.events.iter().map(|e| (**e).clone()));
        after = page.next;
        if !page.more {
            return all;
        }
    }
}

/// Runs `text` in worker `b` while worker `a` is mid-run, expecting the core to fault
/// with a message containing `expect`, and checks the recovery end to end.
async fn recovers_from(text: &str, expect: &str) {
    let dir = tempfile::tempdir().unwrap();
    let cache = dir.path().join("cache");
    let slow = ScriptedConfig {
        token_delay: Duration::from_millis(5),
        ..ScriptedConfig::default()
    };
    let (rt, from_cache) = open_faults(builder(dir.path(), slow.clone()), &cache);
    assert!(!from_cache, "a fresh data dir has an empty cache");
    let mut live = rt.events().subscribe();

    let a = rt.create_worker(spec("a", &[])).await.unwrap().id;
    let b = rt.create_worker(spec("b", &[])).await.unwrap().id;
    // b has history to keep; a is mid-run when the core faults.
    rt.send_input(&b, input("stream 5")).await.unwrap();
    collect_until(&mut live, |e| run_ended(e, &b)).await;
    let b_before = rt.transcript(&b).await.unwrap();
    assert_eq!(b_before.len(), 2);
    let a_run = rt.send_input(&a, input("stream 100000")).await.unwrap();
    collect_until(&mut live, |e| {
        e.worker_id.as_deref() == Some(a.as_str()) && matches!(e.event, Event::TextDelta { .. })
    })
    .await;
    let before_fault = rt.events().last_cursor();

    let err = rt
        .send_input(&b, input(text))
        .await
        .expect_err("the injected fault fails the command");
    let RuntimeError::CoreFault(message) = &err else {
        panic!("{text}: expected CoreFault, got {err:?}")
    };
    assert!(message.contains(expect), "{text}: {message}");
    assert_eq!(err.code(), yoi_protocol::ErrorCode::Internal);

    // The restart is announced, then a's run in flight ends `interrupted`.
    let seen = collect_until(&mut live, |e| run_ended(e, &a)).await;
    let diagnostic = seen
        .iter()
        .position(|e| core_restarted(e))
        .expect("a core_restarted diagnostic");
    let end = seen.last().unwrap();
    assert!(end.seq > seen[diagnostic].seq);
    match &end.event {
        Event::RunFailed { run_id, error } => {
            assert_eq!(run_id, &a_run);
            assert_eq!(error.code, "interrupted", "{error:?}");
        }
        other => panic!("{text}: a's run should fail interrupted, got {other:?}"),
    }
    assert_eq!(rt.stats().faults, 1);

    // Every worker and transcript survived; the faulting input left nothing behind.
    let workers = rt.list_workers().await.unwrap();
    let ids: Vec<&str> = workers.iter().map(|w| w.id.as_str()).collect();
    assert_eq!(ids, [a.as_str(), b.as_str()]);
    assert!(workers.iter().all(|w| w.status == WorkerStatus::Idle));
    assert_eq!(rt.transcript(&b).await.unwrap(), b_before);
    let a_transcript = rt.transcript(&a).await.unwrap();
    assert_eq!(a_transcript[0].role, Role::User);
    assert_eq!(a_transcript[0].content, "stream 100000");
    let after_fault = stored(&rt)
        .into_iter()
        .filter(|e| e.seq > before_fault.seq)
        .collect::<Vec<_>>();
    assert_eq!(
        after_fault.iter().filter(|e| core_restarted(e)).count(),
        1,
        "the diagnostic is in the store, once"
    );
    assert!(
        after_fault
            .iter()
            .all(|e| e.worker_id.as_deref() != Some(b.as_str())),
        "{text}: the faulting command produced no events"
    );

    // The runtime keeps serving both workers.
    rt.send_input(&b, input("stream 3")).await.unwrap();
    rt.send_input(&a, input("stream 3")).await.unwrap();
    // (Counted by run ends: a's interrupted run still has its back-to-idle event queued.)
    let mut ends = 0;
    let more = collect_until(&mut live, |e| {
        if run_ended(e, &a) || run_ended(e, &b) {
            ends += 1;
        }
        ends == 2
    })
    .await;
    for w in [&a, &b] {
        assert!(
            more.iter()
                .any(|e| e.worker_id.as_deref() == Some(w.as_str())
                    && matches!(e.event, Event::RunCompleted { .. })),
            "{text}: {w} completes a new run"
        );
        assert_eq!(
            rt.transcript(w).await.unwrap().last().unwrap().role,
            Role::Assistant
        );
    }
    assert_eq!(rt.transcript(&b).await.unwrap().len(), 4);
    rt.shutdown().await;

    // A restart on the same data dir restores the same state, and the compiled component
    // comes from the cache.
    let (again, from_cache) = open_faults(builder(dir.path(), slow), &cache);
    assert!(from_cache, "the second start must not recompile");
    assert_eq!(again.restored().workers, 2);
    assert_eq!(again.restored().interrupted_runs, 0);
    assert_eq!(again.transcript(&b).await.unwrap().len(), 4);
    assert_eq!(again.stats().faults, 0);
    again.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_trapping_guest_is_restarted_and_the_runtime_keeps_serving() {
    recovers_from("__yoi_trap__", "trap").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hanging_guest_hits_its_deadline_and_is_restarted() {
    recovers_from("__yoi_hang__", "deadline").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_guest_out_of_memory_is_restarted() {
    recovers_from("__yoi_oom__", "memory limit").await;
}

/// The shipped component is built without fault injection: the same inputs are plain
/// text, answered by the model like any other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_shipped_component_treats_fault_inputs_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(Kind::Wasm, builder(dir.path(), ScriptedConfig::default()));
    let mut live = rt.events().subscribe();
    let w = rt.create_worker(spec("plain", &[])).await.unwrap().id;
    for text in ["__yoi_trap__", "__yoi_hang__", "__yoi_oom__"] {
        rt.send_input(&w, input(text)).await.unwrap();
        let seen = collect_until(&mut live, |e| run_ended(e, &w)).await;
        assert!(
            matches!(seen.last().unwrap().event, Event::RunCompleted { .. }),
            "{text}: {:?}",
            seen.last().unwrap().event
        );
    }
    assert_eq!(rt.transcript(&w).await.unwrap().len(), 6);
    assert_eq!(rt.stats().faults, 0);
    assert!(!stored(&rt).iter().any(core_restarted));
    rt.shutdown().await;
}
