//! Restore scenarios: a core rebuilt from the events of a live one.

mod common;

use common::*;
use yoi_protocol::{
    CoreError, ErrorInfo, Event, EventRecord, FinishReason, RestoreSummary, Role, WorkerStatus,
};
use yoi_runtime_guest::Runtime;

fn restored(log: &[EventRecord]) -> Runtime {
    let mut rt = Runtime::new();
    rt.restore(log.to_vec()).expect("restore");
    rt
}

#[test]
fn restore_reproduces_workers_transcripts_and_snapshots() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &["search"]));
    let b = h.create(spec("b", &[]));
    // a: a finished tool run, then a run in flight with partial output.
    h.input(&a, "one").unwrap();
    let c = h.model_call().call_id;
    h.deliver(vec![
        fragment(c, 0, Some("t"), Some("search"), "{}"),
        usage(c, 3, 4),
        done(c, FinishReason::ToolCalls),
    ]);
    let t = h.tool_calls()[0].call_id;
    h.deliver(vec![tool_done(t, "res", false)]);
    let c = h.model_call().call_id;
    h.deliver(vec![text(c, "done"), done(c, FinishReason::Stop)]);
    h.input(&a, "two").unwrap();
    let c = h.model_call().call_id;
    h.deliver(vec![
        reasoning(c, "hmm"),
        text(c, "par"),
        fragment(c, 3, None, Some("search"), "{\"q\""),
    ]);
    // b: stopped.
    h.rt.stop(h.now, &b).unwrap();
    h.records();

    let mut rt = restored(&h.log);
    assert_eq!(rt.list_workers(), h.rt.list_workers());
    for w in [&a, &b] {
        assert_eq!(
            rt.transcript(w, 0, u64::MAX).unwrap(),
            h.rt.transcript(w, 0, u64::MAX).unwrap()
        );
        assert_eq!(
            rt.snapshot(w, u64::MAX).unwrap(),
            h.rt.snapshot(w, u64::MAX).unwrap()
        );
    }
    assert!(rt.pull_events(usize::MAX, u64::MAX).is_empty());
    assert!(rt.pull_effects(usize::MAX, u64::MAX).is_empty());

    let summary = rt.finish_restore(99);
    assert_eq!(
        summary,
        RestoreSummary {
            workers: 2,
            interrupted_runs: 1
        }
    );
    let events: Vec<_> = rt.pull_events(usize::MAX, u64::MAX);
    assert!(
        events
            .iter()
            .all(|r| r.at_ms == 99 && r.worker_id.as_deref() == Some(a.as_str()))
    );
    assert_eq!(
        events.into_iter().map(|r| r.event).collect::<Vec<_>>(),
        vec![
            Event::RunFailed {
                run_id: "r_2".into(),
                error: ErrorInfo::new(
                    "interrupted",
                    "the run was in flight when the runtime stopped"
                )
            },
            Event::StatusChanged {
                from: WorkerStatus::Running,
                to: WorkerStatus::Idle
            },
        ]
    );
    let info = rt.get_worker(&a).unwrap();
    assert_eq!(info.status, WorkerStatus::Idle);
    assert_eq!(info.run_count, 2);
    assert_eq!(rt.get_worker(&b).unwrap().status, WorkerStatus::Stopped);
    // The partial step is not in the transcript.
    assert_eq!(rt.transcript(&a, 0, u64::MAX).unwrap().len(), 5);
}

#[test]
fn restore_in_chunks_and_continue_ids() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &[]));
    h.send(&a, input_with("one", "req")).unwrap();
    let c = h.model_call().call_id;
    h.deliver(vec![text(c, "hi"), done(c, FinishReason::Stop)]);
    h.records();
    let mut rt = Runtime::new();
    for chunk in h.log.chunks(2) {
        rt.restore(chunk.to_vec()).unwrap();
    }
    assert_eq!(
        rt.finish_restore(5),
        RestoreSummary {
            workers: 1,
            interrupted_runs: 0
        }
    );
    assert!(rt.pull_events(usize::MAX, u64::MAX).is_empty());
    // Same ids as the live core would make next; request ids are remembered.
    assert_eq!(
        rt.send_input(6, &a, input_with("one", "req")),
        Ok("r_1".into())
    );
    assert_eq!(rt.send_input(6, &a, input("two")), h.input(&a, "two"));
    assert_eq!(
        rt.create_worker(7, spec("b", &[])).unwrap().id,
        h.create(spec("b", &[]))
    );
}

#[test]
fn finish_restore_answers_pending_tools_as_interrupted() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &["search"]));
    h.input(&a, "go").unwrap();
    let c = h.model_call().call_id;
    h.deliver(vec![
        fragment(c, 0, Some("t1"), Some("search"), "{}"),
        fragment(c, 1, Some("t2"), Some("search"), "{}"),
        done(c, FinishReason::ToolCalls),
    ]);
    let tools = h.tool_calls();
    h.deliver(vec![tool_done(tools[0].call_id, "ok", false)]);
    h.records();
    let mut rt = restored(&h.log);
    assert_eq!(
        rt.snapshot(&a, u64::MAX)
            .unwrap()
            .in_flight
            .unwrap()
            .pending_tools
            .len(),
        1
    );
    assert_eq!(rt.finish_restore(1).interrupted_runs, 1);
    let kinds: Vec<_> = rt
        .pull_events(usize::MAX, u64::MAX)
        .iter()
        .map(|r| r.event.kind())
        .collect();
    assert_eq!(kinds, ["tool_result", "run_failed", "status_changed"]);
    let transcript = rt.transcript(&a, 0, u64::MAX).unwrap();
    let last = transcript.last().unwrap();
    assert_eq!(last.role, Role::Tool);
    assert_eq!(last.tool_call_id.as_deref(), Some("t2"));
    assert_eq!(last.content, "interrupted");
    assert!(last.is_error);
    assert!(rt.pull_effects(usize::MAX, u64::MAX).is_empty());
}

#[test]
fn commands_wait_for_finish_restore() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &[]));
    h.records();
    let mut rt = restored(&h.log);
    assert!(matches!(
        rt.create_worker(1, spec("b", &[])),
        Err(CoreError::InvalidRequest { .. })
    ));
    assert!(matches!(
        rt.send_input(1, &a, input("x")),
        Err(CoreError::InvalidRequest { .. })
    ));
    assert!(matches!(
        rt.cancel(1, &a),
        Err(CoreError::InvalidRequest { .. })
    ));
    assert!(matches!(
        rt.stop(1, &a),
        Err(CoreError::InvalidRequest { .. })
    ));
    assert!(rt.get_worker(&a).is_ok());
    rt.finish_restore(2);
    assert!(rt.send_input(3, &a, input("x")).is_ok());
}

#[test]
fn corrupt_logs_are_rejected_with_the_event_named() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &[]));
    h.input(&a, "go").unwrap();
    h.records();
    let log = h.log.clone();

    // An event for an unknown worker.
    let mut rt = Runtime::new();
    let mut bad = log[1].clone();
    bad.worker_id = Some("w_77".into());
    let err = rt.restore(vec![log[0].clone(), bad]).unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest { message } if message.contains("event 1") && message.contains("input_accepted") && message.contains("w_77")),
        "{err:?}"
    );

    // A worker created twice.
    let mut rt = Runtime::new();
    let err = rt
        .restore(vec![log[0].clone(), log[0].clone()])
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest { message } if message.contains("worker_created"))
    );

    // Events out of order: run_started before input_accepted.
    let mut rt = Runtime::new();
    let err = rt
        .restore(vec![log[0].clone(), log[3].clone()])
        .unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest { message } if message.contains("run_started"))
    );

    // A delta for a run that is not in flight.
    let mut rt = Runtime::new();
    let delta = EventRecord {
        worker_id: Some(a.clone()),
        at_ms: 0,
        event: Event::TextDelta {
            run_id: "r_9".into(),
            text: "x".into(),
        },
    };
    assert!(rt.restore(vec![log[0].clone(), delta]).is_err());

    // A status change that does not fit.
    let mut rt = Runtime::new();
    let change = EventRecord {
        worker_id: Some(a.clone()),
        at_ms: 0,
        event: Event::StatusChanged {
            from: WorkerStatus::Running,
            to: WorkerStatus::Idle,
        },
    };
    assert!(rt.restore(vec![log[0].clone(), change]).is_err());

    // A runtime-wide diagnostic is fine.
    let mut rt = Runtime::new();
    let diag = EventRecord {
        worker_id: None,
        at_ms: 0,
        event: Event::Diagnostic {
            level: yoi_protocol::Level::Info,
            code: "x".into(),
            message: "y".into(),
        },
    };
    assert!(rt.restore(vec![diag]).is_ok());
}

#[test]
fn a_log_cut_mid_command_is_closed_cleanly() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &[]));
    h.input(&a, "go").unwrap();
    h.records();
    // Only worker_created + input_accepted survived (status still idle).
    let mut rt = restored(&h.log[..2]);
    assert_eq!(rt.finish_restore(1).interrupted_runs, 1);
    let kinds: Vec<_> = rt
        .pull_events(usize::MAX, u64::MAX)
        .iter()
        .map(|r| r.event.kind())
        .collect();
    assert_eq!(kinds, ["run_failed"]);
    assert_eq!(rt.get_worker(&a).unwrap().status, WorkerStatus::Idle);

    // The run ended but the status change was lost.
    let c = h.model_call().call_id;
    h.deliver(vec![done(c, FinishReason::Stop)]);
    h.records();
    let cut = h.log.len() - 1;
    let mut rt = restored(&h.log[..cut]);
    assert_eq!(rt.finish_restore(1).interrupted_runs, 0);
    let kinds: Vec<_> = rt
        .pull_events(usize::MAX, u64::MAX)
        .iter()
        .map(|r| r.event.kind())
        .collect();
    assert_eq!(kinds, ["status_changed"]);
    assert_eq!(rt.get_worker(&a).unwrap().status, WorkerStatus::Idle);
}
