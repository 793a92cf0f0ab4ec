//! The bounded core: passivation and activation, the worker index, deletion, create
//! idempotency and the byte budgets of what crosses the boundary.

mod common;

use common::*;
use yoi_protocol::{
    CoreError, Effect, Event, EventRecord, FinishReason, Limits, WorkerInfo, WorkerSpec,
    WorkerStatus,
};
use yoi_runtime_guest::Runtime;

fn bounded(max_resident_workers: u32) -> Harness {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        max_resident_workers,
        ..Limits::default()
    });
    h
}

/// One whole run of `worker`: input, a streamed answer, done.
fn converse(h: &mut Harness, worker: &str, text_in: &str, answer: &str) {
    h.input(worker, text_in).expect("input");
    let call = h.model_call().call_id;
    h.deliver(vec![text(call, answer), done(call, FinishReason::Stop)]);
    h.records();
}

/// Every event of `worker` in the harness's log.
fn events_of(h: &Harness, worker: &str) -> Vec<EventRecord> {
    h.log
        .iter()
        .filter(|r| r.worker_id.as_deref() == Some(worker))
        .cloned()
        .collect()
}

fn activate(h: &mut Harness, worker: &str) {
    let events = events_of(h, worker);
    let now = h.now;
    h.rt.activate(now, worker, events, true).expect("activate");
}

fn diagnostics(records: &[EventRecord], code: &str) -> usize {
    records
        .iter()
        .filter(|r| {
            r.worker_id.is_none()
                && matches!(&r.event, Event::Diagnostic { code: c, .. } if c == code)
        })
        .count()
}

#[test]
fn least_recently_used_idle_workers_are_passivated_and_activate_from_their_events() {
    let mut h = bounded(2);
    let a = h.create(spec("a", &[]));
    converse(&mut h, &a, "hello a", "hi a");
    let b = h.create(spec("b", &[]));
    converse(&mut h, &b, "hello b", "hi b");
    let before = h.rt.snapshot(&a, u64::MAX).unwrap();
    // A third worker makes a, the least recently used, passive.
    let c = h.create(spec("c", &[]));
    h.records();
    assert_eq!(h.rt.residency().resident_workers, 2);
    assert_eq!(diagnostics(&h.log, "worker_passivated"), 1);
    assert!(matches!(
        h.rt.transcript(&a, 0, u64::MAX),
        Err(CoreError::Passivated { worker_id }) if worker_id == a
    ));
    // Its info stays, listing is complete.
    assert_eq!(h.rt.get_worker(&a).unwrap(), before.worker);
    assert_eq!(h.rt.list_workers().len(), 3);
    // Input needs the transcript: passivated until activated.
    assert!(matches!(
        h.input(&a, "again"),
        Err(CoreError::Passivated { .. })
    ));
    activate(&mut h, &a);
    assert_eq!(h.rt.snapshot(&a, u64::MAX).unwrap(), before);
    let records = h.records();
    assert_eq!(diagnostics(&records, "worker_activated"), 1);
    // Activating a made b (now least recently used) passive instead.
    assert_eq!(diagnostics(&records, "worker_passivated"), 1);
    assert!(matches!(
        h.rt.snapshot(&b, u64::MAX),
        Err(CoreError::Passivated { .. })
    ));
    converse(&mut h, &a, "again", "sure");
    assert_eq!(h.rt.get_worker(&a).unwrap().message_count, 4);
    // Stop and cancel do not need the transcript.
    assert!(matches!(h.rt.cancel(h.now, &b), Err(CoreError::NotRunning)));
    h.rt.stop(h.now, &b).unwrap();
    assert_eq!(h.rt.get_worker(&b).unwrap().status, WorkerStatus::Stopped);
    assert!(matches!(h.input(&b, "x"), Err(CoreError::Stopped)));
    let _ = c;
}

#[test]
fn a_long_history_reactivates_exactly() {
    let mut h = bounded(1);
    let w = h.create(spec("long", &[]));
    for i in 0..300 {
        converse(&mut h, &w, &format!("question {i}"), &format!("answer {i}"));
    }
    let before = h.rt.snapshot(&w, u64::MAX).unwrap();
    assert_eq!(before.transcript.len(), 600);
    h.create(spec("other", &[]));
    h.records();
    assert!(h.rt.snapshot(&w, u64::MAX).is_err());
    // Fed in many small batches, as a host under a byte budget does.
    let events = events_of(&h, &w);
    for chunk in events.chunks(7) {
        h.rt.activate(h.now, &w, chunk.to_vec(), false).unwrap();
    }
    h.rt.activate(h.now, &w, Vec::new(), true).unwrap();
    assert_eq!(h.rt.snapshot(&w, u64::MAX).unwrap(), before);
    // Request ids of earlier runs are remembered again.
    converse(&mut h, &w, "one more", "ok");
    assert_eq!(h.rt.get_worker(&w).unwrap().run_count, 301);
}

#[test]
fn activation_checks_the_events_against_the_kept_info() {
    let mut h = bounded(1);
    let a = h.create(spec("a", &[]));
    converse(&mut h, &a, "one", "1");
    converse(&mut h, &a, "two", "2");
    h.create(spec("b", &[]));
    h.records();
    let mut events = events_of(&h, &a);
    // A lost tail rebuilds another worker than the core holds.
    events.truncate(events.len() - 4);
    let err = h.rt.activate(h.now, &a, events, true).unwrap_err();
    assert!(
        matches!(&err, CoreError::InvalidRequest { message } if message.contains("another worker")),
        "{err:?}"
    );
    assert!(h.rt.snapshot(&a, u64::MAX).is_err(), "still passivated");
    // Events of another worker are refused.
    let b_events = events_of(&h, "w_2");
    assert!(h.rt.activate(h.now, &a, b_events, true).is_err());
    // A resident worker is not activated twice.
    assert!(h.rt.activate(h.now, "w_2", Vec::new(), true).is_err());
}

#[test]
fn the_byte_budget_passivates_too() {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        max_resident_bytes: 4_000,
        ..Limits::default()
    });
    let a = h.create(spec("a", &[]));
    converse(&mut h, &a, &"x".repeat(3_000), "ok");
    let b = h.create(spec("b", &[]));
    converse(&mut h, &b, &"y".repeat(3_000), "ok");
    let r = h.rt.residency();
    assert!(r.resident_bytes <= 4_000, "{r:?}");
    assert!(h.rt.snapshot(&a, u64::MAX).is_err(), "a went first");
    assert!(h.rt.snapshot(&b, u64::MAX).is_ok());
}

#[test]
fn a_hundred_thousand_workers_stay_within_the_resident_budget() {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        max_resident_workers: 64,
        max_resident_bytes: 1 << 20,
        ..Limits::default()
    });
    let mut ids = Vec::new();
    for i in 0..100_000u32 {
        let id = h.create(spec("w", &[]));
        if i % 1_000 == 0 {
            converse(&mut h, &id, &"q".repeat(4_000), &"a".repeat(1_000));
        }
        // Pull as a host does (not keeping the events: only the counters matter here).
        h.rt.pull_events(usize::MAX, u64::MAX);
        ids.push(id);
        let r = h.rt.residency();
        assert!(r.resident_workers <= 64, "{r:?}");
        assert!(r.resident_bytes <= 1 << 20, "{r:?}");
    }
    let r = h.rt.residency();
    assert_eq!(r.workers, 100_000);
    assert_eq!(r.live_workers, 100_000);
    assert_eq!(h.rt.list_workers().len(), 100_000);
    assert_eq!(h.rt.get_worker(&ids[5_000]).unwrap().message_count, 2);
}

#[test]
fn a_request_larger_than_the_budget_fails_only_its_run() {
    let mut h = Harness::new();
    h.rt.configure(Limits {
        max_request_bytes: 10_000,
        ..Limits::default()
    });
    let big = h.create(spec("big", &[]));
    let small = h.create(spec("small", &[]));
    converse(&mut h, &big, &"x".repeat(6_000), "ok");
    // The second request carries both inputs: too large.
    h.input(&big, &"y".repeat(6_000)).unwrap();
    assert!(h.effects().is_empty(), "nothing crosses the boundary");
    let events = h.events();
    assert!(events.iter().any(|e| matches!(
        e,
        Event::RunFailed { error, .. } if error.code == "request_too_large"
    )));
    assert_eq!(h.rt.get_worker(&big).unwrap().status, WorkerStatus::Idle);
    // Others run on.
    converse(&mut h, &small, "hi", "hello");
    assert_eq!(h.rt.get_worker(&small).unwrap().message_count, 2);
}

#[test]
fn pulls_stay_within_the_byte_budget() {
    let mut h = Harness::new();
    let w = h.create(spec("w", &[]));
    h.input(&w, &"z".repeat(10_000)).unwrap();
    let call = h.model_call().call_id;
    h.deliver((0..100).map(|_| text(call, &"t".repeat(1_000))).collect());
    let first = h.rt.pull_events(usize::MAX, 20_000);
    let bytes: u64 = first.iter().map(yoi_protocol::size::event).sum();
    assert!(
        bytes <= 20_000 && first.len() > 1,
        "{} events, {bytes} bytes",
        first.len()
    );
    // An event larger than the budget still goes, alone.
    let mut rest = Vec::new();
    loop {
        let page = h.rt.pull_events(usize::MAX, 1);
        if page.is_empty() {
            break;
        }
        assert_eq!(page.len(), 1);
        rest.extend(page);
    }
    assert!(!rest.is_empty());
    // Transcript pages likewise.
    h.deliver(vec![done(call, FinishReason::Stop)]);
    let page = h.rt.transcript(&w, 0, 1).unwrap();
    assert_eq!(page.len(), 1);
    assert_eq!(h.rt.transcript(&w, 1, 1).unwrap().len(), 1);
    assert!(h.rt.transcript(&w, 2, 1).unwrap().is_empty());
    assert_eq!(h.rt.snapshot(&w, 1).unwrap().transcript.len(), 1);
}

#[test]
fn delete_stops_removes_and_reports() {
    let mut h = Harness::new();
    let a = h.create(spec("a", &[]));
    h.input(&a, "busy").unwrap();
    let call = h.model_call().call_id;
    h.records();
    h.rt.delete_worker(h.now, &a).unwrap();
    let kinds: Vec<&str> = h.events().iter().map(Event::kind).collect();
    assert_eq!(
        kinds,
        [
            "run_cancelled",
            "status_changed",
            "status_changed",
            "worker_deleted"
        ]
    );
    assert!(matches!(h.effects().as_slice(), [Effect::Abort { call_id }] if *call_id == call));
    assert!(matches!(
        h.rt.get_worker(&a),
        Err(CoreError::WorkerNotFound { .. })
    ));
    assert!(h.rt.list_workers().is_empty());
    assert!(matches!(
        h.rt.delete_worker(h.now, &a),
        Err(CoreError::WorkerNotFound { .. })
    ));
    // Ids are never reused.
    assert_eq!(h.create(spec("b", &[])), "w_2");
    h.records();
    // The index hears of it.
    let changes = h.rt.pull_index(u64::MAX);
    assert_eq!(changes.deleted, vec![a.clone()]);
    // A restore of the log agrees.
    let mut rt = Runtime::new();
    rt.restore(h.log.clone()).unwrap();
    rt.finish_restore(h.now);
    assert_eq!(rt.list_workers().len(), 1);
    assert!(rt.get_worker(&a).is_err());
}

#[test]
fn a_retried_create_returns_the_same_worker() {
    let mut h = Harness::new();
    let with_id = |name: &str, id: &str| WorkerSpec {
        request_id: Some(id.into()),
        ..spec(name, &[])
    };
    let first = h.rt.create_worker(1, with_id("a", "req-1")).unwrap();
    let again = h.rt.create_worker(2, with_id("a", "req-1")).unwrap();
    assert_eq!(first, again);
    assert_eq!(h.rt.list_workers().len(), 1);
    assert_eq!(h.kinds(), ["worker_created"]);
    let other = h.rt.create_worker(3, with_id("b", "req-2")).unwrap();
    assert_ne!(other.id, first.id);
    // A restored core remembers.
    let mut rt = Runtime::new();
    rt.restore(h.log.clone()).unwrap();
    rt.finish_restore(4);
    assert_eq!(rt.create_worker(5, with_id("a", "req-1")).unwrap(), first);
    // Deleting the worker frees its request id.
    h.rt.delete_worker(6, &first.id).unwrap();
    let fresh = h.rt.create_worker(7, with_id("a", "req-1")).unwrap();
    assert_ne!(fresh.id, first.id);
}

#[test]
fn an_empty_name_takes_a_generated_one() {
    let mut h = Harness::new();
    let info = h.rt.create_worker(1, spec("", &[])).unwrap();
    assert_eq!(info.name, "worker-1");
}

#[test]
fn restore_from_the_index_activates_only_what_is_needed() {
    let mut h = bounded(4);
    let idle = h.create(spec("idle", &[]));
    converse(&mut h, &idle, "hi", "hello");
    let running = h.create(spec("running", &[]));
    h.input(&running, "work").unwrap();
    let call = h.model_call().call_id;
    h.deliver(vec![text(call, "part")]);
    h.records();
    let changes = h.rt.pull_index(u64::MAX);
    let infos: Vec<WorkerInfo> = changes.changed.clone();
    assert_eq!(infos.len(), 2);

    let mut rt = Runtime::new();
    let rows = yoi_protocol::index_row::encode_all(&infos);
    rt.restore_index(&rows, changes.next_worker, changes.next_run)
        .unwrap();
    assert_eq!(rt.residency().resident_workers, 0);
    let running_events = events_of(&h, &running);
    rt.activate(0, &running, running_events, true).unwrap();
    let summary = rt.finish_restore(h.now + 1);
    assert_eq!(summary.interrupted_runs, 1);
    assert_eq!(summary.workers, 2);
    assert_eq!(rt.residency().resident_workers, 1);
    let closed: Vec<&str> = rt
        .pull_events(usize::MAX, u64::MAX)
        .iter()
        .map(|r| r.event.kind())
        .collect();
    assert_eq!(closed, ["run_failed", "status_changed"]);
    // The idle worker is listed, passivated, and activates from its events.
    assert_eq!(
        rt.get_worker(&idle).unwrap(),
        h.rt.get_worker(&idle).unwrap()
    );
    assert!(rt.snapshot(&idle, u64::MAX).is_err());
    rt.activate(0, &idle, events_of(&h, &idle), true).unwrap();
    assert_eq!(
        rt.snapshot(&idle, u64::MAX).unwrap(),
        h.rt.snapshot(&idle, u64::MAX).unwrap()
    );
    // New ids continue after the old ones.
    let next = rt.create_worker(1, spec("next", &[])).unwrap();
    assert_eq!(next.id, "w_3");
}
