//! Behaviour of the event log through its public API.

mod common;

use common::*;
use std::sync::Arc;
use tokio::sync::broadcast::error::{RecvError, TryRecvError};
use yoi_eventlog::{
    Cursor, DELTA_KINDS, Durability, Envelope, EventLog, LogConfig, LogReader, ReplayError,
};
use yoi_protocol::{ErrorInfo, Event, Level, WorkerInfo, WorkerStatus};

fn small(window: usize) -> LogConfig {
    LogConfig {
        window_capacity: window,
        broadcast_capacity: 100_000,
        index_chunk_bits: 2,
        ..LogConfig::default()
    }
}

/// A value of the store's `meta` table.
fn meta(conn: &rusqlite::Connection, key: &str) -> i64 {
    conn.query_row("SELECT value FROM meta WHERE key = ?1", [key], |r| r.get(0))
        .unwrap()
}

/// `(first_seq, last_seq)` of every stored block, in order.
fn block_spans(path: &std::path::Path) -> Vec<(i64, i64)> {
    rusqlite::Connection::open(path)
        .unwrap()
        .prepare("SELECT first_seq, last_seq FROM blocks ORDER BY first_seq")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

fn temp() -> (tempfile::TempDir, std::path::PathBuf) {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    (dir, path)
}

#[test]
fn seqs_are_consecutive_and_continue_after_reopen() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, LogConfig::default()).unwrap();
    assert_eq!(log.last_cursor().seq, 0);
    assert!(log.append(Vec::new()).unwrap().is_empty());
    let a = log
        .append((0..5).map(|n| delta(Some("w_1"), n)).collect())
        .unwrap();
    let b = log.append(vec![complete(None, 9)]).unwrap();
    let seqs: Vec<u64> = a.iter().chain(&b).map(|e| e.seq).collect();
    assert_eq!(seqs, vec![1, 2, 3, 4, 5, 6]);
    assert_eq!(log.last_cursor().seq, 6);
    assert_eq!(log.reader().last_cursor(), log.last_cursor());
    drop(log);

    let mut log = EventLog::open(&path, LogConfig::default()).unwrap();
    assert_eq!(log.last_cursor().seq, 6);
    let c = log
        .append(vec![complete(Some("w_2"), 1), delta(None, 2)])
        .unwrap();
    assert_eq!(c.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![7, 8]);
    let stored = log.read_for_restore(0, 100).unwrap();
    assert_eq!(
        stored.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=8).collect::<Vec<_>>()
    );
}

#[test]
fn epoch_is_stable_across_reopen_and_new_per_store() {
    let (_dir, path) = temp();
    let epoch = EventLog::open(&path, LogConfig::default()).unwrap().epoch();
    assert_ne!(epoch, 0);
    let log = EventLog::open(&path, LogConfig::default()).unwrap();
    assert_eq!(log.epoch(), epoch);
    assert_eq!(log.reader().epoch(), epoch);
    assert_eq!(log.last_cursor().epoch, epoch);
    let (_other_dir, other) = temp();
    assert_ne!(
        EventLog::open(&other, LogConfig::default())
            .unwrap()
            .epoch(),
        epoch
    );
}

#[test]
fn store_uses_wal_and_the_documented_schema() {
    let (_dir, path) = temp();
    for durability in [Durability::Normal, Durability::Full] {
        let mut log = EventLog::open(
            &path,
            LogConfig {
                durability,
                ..LogConfig::default()
            },
        )
        .unwrap();
        log.append(vec![complete(Some("w_1"), 1)]).unwrap();
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let mode: String = conn
        .query_row("PRAGMA journal_mode", [], |r| r.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
    // Event 2 is the only one of its append, so its block holds just its frame, laid out
    // as the crate documentation says.
    let (first, last, frames): (i64, i64, Vec<u8>) = conn
        .query_row(
            "SELECT first_seq, last_seq, frames FROM blocks WHERE first_seq = 2",
            [],
            |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
        )
        .unwrap();
    assert_eq!((first, last), (2, 2));
    let record = complete(Some("w_1"), 1);
    let json = serde_json::to_vec(&record.event).unwrap();
    let mut want = Vec::new();
    want.extend_from_slice(&2u64.to_le_bytes());
    want.extend_from_slice(&record.at_ms.to_le_bytes());
    want.push(0b10); // has a worker, not a delta
    want.extend_from_slice(&3u32.to_le_bytes());
    want.extend_from_slice(b"w_1");
    want.extend_from_slice(&(json.len() as u32).to_le_bytes());
    want.extend_from_slice(&json);
    assert_eq!(frames, want);
    assert_eq!(meta(&conn, "schema_version"), yoi_eventlog::SCHEMA_VERSION);
}

#[test]
fn an_append_is_stored_in_blocks_of_256_events() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(0)).unwrap();
    let all = log
        .append((1..=600).map(|n| delta(Some("w_1"), n)).collect())
        .unwrap();
    let blocks = block_spans(&path);
    assert_eq!(blocks, vec![(1, 256), (257, 512), (513, 600)]);
    // Every page boundary, inside blocks and across them.
    for after in [0, 1, 255, 256, 257, 300, 511, 512, 599, 600] {
        for limit in [1, 7, 256, 1000] {
            let (got, _) = replay_all(
                &log.reader(),
                Cursor::new(log.epoch(), after),
                None,
                limit,
                true,
            )
            .unwrap();
            assert_eq!(
                got,
                expected(&all, after, None),
                "after {after} limit {limit}"
            );
        }
    }
}

#[test]
fn replay_across_the_window_boundary_matches_live_and_store() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(16)).unwrap();
    let reader = log.reader();
    let mut rx = reader.subscribe();
    let workers = [Some("w_a"), Some("w_b"), None, Some("w_c")];
    let mut appended = Vec::new();
    let mut n = 0u64;
    for batch in 0..40 {
        let size = 1 + batch % 13;
        let records = (0..size)
            .map(|i| {
                n += 1;
                record(workers[(n as usize * 7 + i) % 4], n, (n % 8) as u8)
            })
            .collect();
        appended.extend(log.append(records).unwrap());
    }
    let live = drain(&mut rx);
    assert_eq!(live.len(), appended.len());
    for (a, b) in live.iter().zip(&appended) {
        assert!(
            Arc::ptr_eq(a, b),
            "the broadcast carries the appended envelopes"
        );
    }
    let last = log.last_cursor().seq;
    assert_eq!(last, appended.len() as u64);
    let (lo, hi) = reader.window_bounds().unwrap();
    assert_eq!((lo, hi), (last - 15, last));

    let epoch = log.epoch();
    for after in 0..=last {
        for worker in [None, Some("w_a"), Some("w_c"), Some("nobody")] {
            let want = expected(&live, after, worker);
            for limit in [2, 7, 1000] {
                let cursor = Cursor::new(epoch, after);
                let (got, end) = replay_all(&reader, cursor, worker, limit, false).unwrap();
                assert_eq!(got, want, "after {after}, {worker:?}, limit {limit}");
                assert_eq!(end.seq, last);
                let (stored, _) = replay_all(&reader, cursor, worker, limit, true).unwrap();
                assert_eq!(
                    stored, want,
                    "store: after {after}, {worker:?}, limit {limit}"
                );
            }
        }
    }
    // Pages served from the window hand out the very envelopes that were broadcast.
    let page = reader
        .replay(Cursor::new(epoch, last - 10), None, 100)
        .unwrap();
    assert_eq!(page.events.len(), 10);
    assert!(
        page.events
            .iter()
            .all(|e| live.iter().any(|l| Arc::ptr_eq(l, e)))
    );

    // After a reopen the window is empty and everything comes from the store.
    drop(log);
    let log = EventLog::open(&path, small(16)).unwrap();
    assert_eq!(log.reader().window_bounds(), None);
    let (got, _) = replay_all(&log.reader(), Cursor::new(epoch, 0), None, 64, false).unwrap();
    assert_eq!(got, expected(&live, 0, None));
}

#[test]
fn a_window_of_zero_serves_everything_from_the_store() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(0)).unwrap();
    let all = log
        .append((1..=20).map(|n| delta(Some("w"), n)).collect())
        .unwrap();
    let (got, _) = replay_all(
        &log.reader(),
        Cursor::new(log.epoch(), 3),
        Some("w"),
        4,
        false,
    )
    .unwrap();
    assert_eq!(got, expected(&all, 3, Some("w")));
}

#[test]
fn worker_filter_excludes_other_workers_and_runtime_events() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(1000)).unwrap();
    let all = log
        .append(vec![
            complete(Some("w_1"), 1),
            complete(Some("w_2"), 2),
            complete(None, 3),
            delta(Some("w_1"), 4),
            complete(Some("w_10"), 5),
        ])
        .unwrap();
    let start = Cursor::new(log.epoch(), 0);
    for store_only in [false, true] {
        let (got, end) = replay_all(&log.reader(), start, Some("w_1"), 10, store_only).unwrap();
        assert_eq!(got.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![1, 4]);
        assert_eq!(end.seq, 5, "the cursor moves past other workers' events");
        let (got, _) = replay_all(&log.reader(), start, None, 10, store_only).unwrap();
        assert_eq!(got.len(), all.len());
    }
}

#[test]
fn paging_reports_more_and_next() {
    for window in [0, 4, 1000] {
        let (_dir, path) = temp();
        let mut log = EventLog::open(&path, small(window)).unwrap();
        let e = log.epoch();
        log.append(
            (1..=10)
                .map(|n| complete(Some(if n == 10 { "w_2" } else { "w_1" }), n))
                .collect(),
        )
        .unwrap();
        let r = log.reader();
        let seqs =
            |p: &yoi_eventlog::ReplayPage| p.events.iter().map(|e| e.seq).collect::<Vec<_>>();

        let p = r.replay(Cursor::new(e, 0), None, 3).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![1, 2, 3], 3, true));
        let p = r.replay(p.next, None, 3).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![4, 5, 6], 6, true));
        let p = r.replay(Cursor::new(e, 6), None, 4).unwrap();
        assert_eq!(
            (seqs(&p), p.next.seq, p.more),
            (vec![7, 8, 9, 10], 10, false)
        );
        let p = r.replay(Cursor::new(e, 10), None, 4).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![], 10, false));
        assert_eq!(p.next.epoch, e);

        // A limit of 0 asks only whether there is more.
        let p = r.replay(Cursor::new(e, 2), None, 0).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![], 2, true));
        let p = r.replay(Cursor::new(e, 9), Some("w_1"), 0).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![], 10, false));

        // Filtered: the last page moves the cursor to the end, past other workers.
        let p = r.replay(Cursor::new(e, 5), Some("w_1"), 4).unwrap();
        assert_eq!(
            (seqs(&p), p.next.seq, p.more),
            (vec![6, 7, 8, 9], 10, false)
        );
        let p = r.replay(Cursor::new(e, 5), Some("w_1"), 3).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![6, 7, 8], 8, true));
        let p = r.replay(Cursor::new(e, 0), Some("w_2"), 1).unwrap();
        assert_eq!((seqs(&p), p.next.seq, p.more), (vec![10], 10, false));
    }
}

#[test]
fn every_typed_replay_error() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(
        &path,
        LogConfig {
            retain_events: Some(5),
            ..small(100)
        },
    )
    .unwrap();
    let e = log.epoch();
    let r = log.reader();
    // An empty log replays from 0 and nothing else.
    let p = r.replay(Cursor::new(e, 0), None, 10).unwrap();
    assert!(p.events.is_empty() && !p.more && p.next == Cursor::new(e, 0));
    assert!(matches!(
        r.replay(Cursor::new(e, 1), None, 10),
        Err(ReplayError::Ahead { last: 0 })
    ));

    log.append((1..=20).map(|n| delta(Some("w"), n)).collect())
        .unwrap();
    match r.replay(Cursor::new(e.wrapping_add(1), 3), None, 10) {
        Err(ReplayError::UnknownEpoch { epoch }) => assert_eq!(epoch, e.wrapping_add(1)),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        r.replay(Cursor::new(e, 21), None, 10),
        Err(ReplayError::Ahead { last: 20 })
    ));
    assert!(matches!(
        r.replay(Cursor::new(e, u64::MAX), Some("w"), 10),
        Err(ReplayError::Ahead { .. })
    ));
    assert!(r.replay(Cursor::new(e, 3), None, 10).is_ok());

    let pruned = log.prune().unwrap();
    assert_eq!(
        (pruned.horizon, pruned.deleted, pruned.remaining),
        (15, 15, false)
    );
    for store_only in [false, true] {
        let replay = |after| {
            if store_only {
                r.replay_from_store(Cursor::new(e, after), None, 10)
            } else {
                r.replay(Cursor::new(e, after), None, 10)
            }
        };
        assert!(matches!(
            replay(3),
            Err(ReplayError::Expired { oldest: 15 })
        ));
        assert!(matches!(
            replay(14),
            Err(ReplayError::Expired { oldest: 15 })
        ));
        assert_eq!(replay(15).unwrap().events.len(), 5);
    }
    for err in [
        ReplayError::UnknownEpoch { epoch: 1 },
        ReplayError::Expired { oldest: 2 },
        ReplayError::Ahead { last: 3 },
    ] {
        assert!(!err.to_string().is_empty());
    }
}

#[test]
fn retention_prunes_only_deltas_and_old_cursors_expire() {
    let (_dir, path) = temp();
    let config = LogConfig {
        retain_events: Some(10),
        prune_batch: 7,
        ..small(8)
    };
    let mut log = EventLog::open(&path, config.clone()).unwrap();
    let e = log.epoch();
    let idle = log.prune().unwrap();
    assert_eq!((idle.horizon, idle.deleted, idle.remaining), (0, 0, false));
    let mut all = Vec::new();
    for n in 1..=100u64 {
        all.extend(
            log.append(vec![record(Some("w"), n, (n % 8) as u8)])
                .unwrap(),
        );
    }
    // Steps of at most `prune_batch` until the horizon reaches last - retain.
    let mut steps = 0;
    loop {
        let p = log.prune().unwrap();
        steps += 1;
        assert!(p.horizon <= 90);
        if !p.remaining {
            assert_eq!(p.horizon, 90);
            break;
        }
    }
    assert_eq!(steps, 13);
    assert_eq!(log.prune().unwrap().deleted, 0, "nothing left to do");
    assert_eq!(log.horizon(), 90);
    assert_eq!(log.reader().horizon(), 90);
    let deleted = all
        .iter()
        .filter(|e| e.seq <= 90 && e.event.is_delta())
        .count() as u64;
    assert_eq!(log.stats().events_pruned, deleted);

    let kept: Vec<Envelope> = all
        .iter()
        .filter(|e| !(e.seq <= 90 && e.event.is_delta()))
        .map(|e| (**e).clone())
        .collect();
    let check = |log: &EventLog| {
        let mut restored = Vec::new();
        let mut after = 0;
        loop {
            let chunk = log.read_for_restore(after, 9).unwrap();
            let Some(last) = chunk.last() else { break };
            after = last.seq;
            restored.extend(chunk);
        }
        assert_eq!(restored, kept, "every complete event and the recent deltas");
        assert!(
            all.iter()
                .filter(|e| !e.event.is_delta())
                .all(|e| restored.contains(e))
        );
        let r = log.reader();
        assert!(matches!(
            r.replay(Cursor::new(e, 89), None, 5),
            Err(ReplayError::Expired { oldest: 90 })
        ));
        assert!(matches!(
            r.replay(Cursor::new(e, 0), Some("w"), 5),
            Err(ReplayError::Expired { oldest: 90 })
        ));
        let (got, _) = replay_all(&r, Cursor::new(e, 90), None, 3, false).unwrap();
        assert_eq!(got, expected(&all, 90, None));
    };
    check(&log);
    drop(log);
    let log = EventLog::open(&path, config).unwrap();
    assert_eq!(log.horizon(), 90, "the horizon is stored");
    check(&log);
}

#[test]
fn pruning_the_tail_never_reuses_a_seq() {
    let (_dir, path) = temp();
    let config = LogConfig {
        retain_events: Some(0),
        ..LogConfig::default()
    };
    let mut log = EventLog::open(&path, config.clone()).unwrap();
    log.append(vec![
        complete(Some("w"), 1),
        delta(Some("w"), 2),
        delta(Some("w"), 3),
    ])
    .unwrap();
    log.prune().unwrap();
    assert_eq!(log.read_for_restore(0, 10).unwrap().len(), 1);
    drop(log);
    let mut log = EventLog::open(&path, config).unwrap();
    assert_eq!(log.last_cursor().seq, 3);
    assert_eq!(log.append(vec![complete(None, 4)]).unwrap()[0].seq, 4);
}

#[test]
fn a_subscriber_sees_only_committed_events_in_order() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(100)).unwrap();
    let reader = log.reader();
    let mut rx = reader.subscribe();
    let first = log
        .append(vec![complete(Some("w"), 1), delta(Some("w"), 2)])
        .unwrap();

    // Make the store refuse one event, so the next batch's transaction fails mid-way.
    let other = rusqlite::Connection::open(&path).unwrap();
    other
        .execute_batch(
            "CREATE TRIGGER poison BEFORE INSERT ON blocks
             WHEN instr(NEW.frames, CAST('poison' AS BLOB)) > 0
             BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
        )
        .unwrap();
    let mut poisoned = vec![complete(Some("w"), 3), complete(Some("w"), 4)];
    poisoned.push(yoi_protocol::EventRecord {
        worker_id: Some("w".into()),
        at_ms: 5,
        event: Event::RunFailed {
            run_id: "r".into(),
            error: ErrorInfo::new("x", "poison"),
        },
    });
    assert!(log.append(poisoned).is_err());
    assert_eq!(
        log.last_cursor().seq,
        2,
        "nothing of the failed batch was published"
    );
    assert_eq!(reader.last_cursor().seq, 2);
    assert_eq!(log.read_for_restore(0, 100).unwrap().len(), 2, "nor stored");
    let live = drain(&mut rx);
    assert_eq!(live.len(), 2);
    assert!(live.iter().zip(&first).all(|(a, b)| Arc::ptr_eq(a, b)));
    let p = reader
        .replay(Cursor::new(log.epoch(), 2), None, 10)
        .unwrap();
    assert!(p.events.is_empty());

    other.execute_batch("DROP TRIGGER poison").unwrap();
    let next = log.append(vec![complete(Some("w"), 6)]).unwrap();
    assert_eq!(next[0].seq, 3, "unseen seqs are handed out again");
    let live = drain(&mut rx);
    assert_eq!(live.iter().map(|e| e.seq).collect::<Vec<_>>(), vec![3]);
    assert_eq!(log.stats().commits, 2);
    assert_eq!(log.stats().events_appended, 3);
}

#[test]
fn subscribing_before_replay_gives_no_gap_and_no_duplicate() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(4)).unwrap();
    let epoch = log.epoch();
    log.append((1..=10).map(|n| delta(Some("w"), n)).collect())
        .unwrap();
    let reader = log.reader();
    let mut rx = reader.subscribe();
    log.append((11..=12).map(|n| delta(Some("w"), n)).collect())
        .unwrap();
    let (replayed, end) = replay_all(&reader, Cursor::new(epoch, 3), None, 4, false).unwrap();
    log.append((13..=15).map(|n| delta(Some("w"), n)).collect())
        .unwrap();
    let mut seqs: Vec<u64> = replayed.iter().map(|e| e.seq).collect();
    seqs.extend(
        drain(&mut rx)
            .iter()
            .map(|e| e.seq)
            .filter(|s| *s > end.seq),
    );
    assert_eq!(seqs, (4..=15).collect::<Vec<_>>());
}

#[test]
fn a_reader_outlives_its_log() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(2)).unwrap();
    log.append((1..=5).map(|n| complete(Some("w"), n)).collect())
        .unwrap();
    let reader = log.reader();
    let mut before = reader.subscribe();
    drop(log);
    assert!(matches!(before.try_recv(), Err(TryRecvError::Closed)));
    let mut after = reader.subscribe();
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .unwrap();
    assert!(matches!(rt.block_on(after.recv()), Err(RecvError::Closed)));
    let (got, _) = replay_all(&reader, Cursor::new(reader.epoch(), 0), None, 2, false).unwrap();
    assert_eq!(got.len(), 5);
}

#[test]
fn reader_is_send_sync_clone() {
    fn check<T: Send + Sync + Clone + 'static>() {}
    check::<LogReader>();
    fn send<T: Send>() {}
    send::<EventLog>();
}

#[test]
fn concurrent_replays_while_appending_stay_consistent() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(64)).unwrap();
    let epoch = log.epoch();
    let reader = log.reader();
    let total = 4_000u64;
    let readers: Vec<_> = (0..4)
        .map(|i| {
            let reader = reader.clone();
            std::thread::spawn(move || {
                let worker = ["w_0", "w_1"][i % 2];
                let filter = (i >= 2).then_some(worker);
                let mut cursor = Cursor::new(epoch, 0);
                let mut seen = Vec::new();
                while cursor.seq < total {
                    let page = reader.replay(cursor, filter, 1 + i * 17).unwrap();
                    for env in &page.events {
                        assert!(env.seq > cursor.seq);
                        if let Some(w) = filter {
                            assert_eq!(env.worker_id.as_deref(), Some(w));
                        }
                        assert_eq!(env.at_ms, 1_700_000_000_000 + env.seq);
                        cursor.seq = env.seq;
                        seen.push(env.seq);
                    }
                    cursor = page.next.max(cursor);
                    if page.events.is_empty() {
                        std::thread::yield_now();
                    }
                }
                (filter, seen)
            })
        })
        .collect();
    let mut n = 0;
    while n < total {
        let batch = (0..50)
            .map(|_| {
                n += 1;
                delta(Some(["w_0", "w_1"][(n % 2) as usize]), n)
            })
            .collect();
        log.append(batch).unwrap();
    }
    for handle in readers {
        let (filter, seen) = handle.join().unwrap();
        let want: Vec<u64> = (1..=total)
            .filter(|s| filter.is_none_or(|w| w == ["w_0", "w_1"][(s % 2) as usize]))
            .collect();
        assert_eq!(seen, want, "{filter:?}");
    }
}

#[test]
fn delta_kinds_match_the_protocol() {
    let info = WorkerInfo {
        id: "w".into(),
        name: "n".into(),
        model: "m".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: 1,
        status: WorkerStatus::Idle,
        created_at_ms: 0,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Default::default(),
        context_tokens: None,
        request_id: None,
    };
    let r = || "r".to_string();
    let events = vec![
        Event::WorkerCreated {
            worker: Box::new(info),
        },
        Event::StatusChanged {
            from: WorkerStatus::Idle,
            to: WorkerStatus::Running,
        },
        Event::InputAccepted {
            run_id: r(),
            text: "t".into(),
            request_id: None,
        },
        Event::RunStarted { run_id: r() },
        Event::ReasoningDelta {
            run_id: r(),
            text: "t".into(),
        },
        Event::ReasoningDone {
            run_id: r(),
            text: "t".into(),
        },
        Event::TextDelta {
            run_id: r(),
            text: "t".into(),
        },
        Event::TextDone {
            run_id: r(),
            text: "t".into(),
        },
        Event::ToolCallStarted {
            run_id: r(),
            id: "c".into(),
            name: "n".into(),
        },
        Event::ToolCallArgsDelta {
            run_id: r(),
            id: "c".into(),
            delta: "d".into(),
        },
        Event::ToolCallReady {
            run_id: r(),
            id: "c".into(),
            name: "n".into(),
            arguments: "{}".into(),
        },
        Event::ToolResult {
            run_id: r(),
            id: "c".into(),
            name: "n".into(),
            output: "o".into(),
            is_error: false,
        },
        Event::Usage {
            run_id: r(),
            usage: Default::default(),
        },
        Event::StepFinished {
            run_id: r(),
            step: 1,
            finish_reason: yoi_protocol::FinishReason::Stop,
        },
        Event::RunCompleted {
            run_id: r(),
            stop_reason: yoi_protocol::StopReason::EndTurn,
        },
        Event::RunFailed {
            run_id: r(),
            error: ErrorInfo::new("c", "m"),
        },
        Event::RunCancelled { run_id: r() },
        Event::Diagnostic {
            level: Level::Info,
            code: "c".into(),
            message: "m".into(),
        },
    ];
    for event in &events {
        assert_eq!(
            event.is_delta(),
            DELTA_KINDS.contains(&event.kind()),
            "{}",
            event.kind()
        );
    }
    assert_eq!(
        events.iter().filter(|e| e.is_delta()).count(),
        DELTA_KINDS.len()
    );

    // And every kind round-trips through the store.
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(0)).unwrap();
    let records = events
        .iter()
        .map(|event| yoi_protocol::EventRecord {
            worker_id: Some("w".into()),
            at_ms: u64::MAX,
            event: event.clone(),
        })
        .collect();
    let appended = log.append(records).unwrap();
    let stored = log.read_for_restore(0, 100).unwrap();
    assert_eq!(
        stored,
        appended.iter().map(|e| (**e).clone()).collect::<Vec<_>>()
    );
}

/// Checks every worker-filtered store replay after every cursor from `from` on against
/// the model (`all`, minus deltas at or below `horizon`).
fn check_worker_replays(log: &EventLog, all: &[Arc<Envelope>], from: u64, horizon: u64) {
    let last = log.last_cursor().seq;
    for after in from..=last {
        for worker in ["w_1", "w_2", "w_none"] {
            for limit in [1, 4, 100] {
                let (got, _) = replay_all(
                    &log.reader(),
                    Cursor::new(log.epoch(), after),
                    Some(worker),
                    limit,
                    true,
                )
                .unwrap();
                let want: Vec<Envelope> = expected(all, after, Some(worker))
                    .into_iter()
                    .filter(|e| !(e.seq <= horizon && e.event.is_delta()))
                    .collect();
                assert_eq!(got, want, "{worker} after {after} limit {limit}");
            }
        }
    }
}

#[test]
fn the_worker_index_has_a_row_per_worker_and_chunk() {
    let (_dir, path) = temp();
    let config = LogConfig {
        index_chunk_bits: 2,
        retain_events: Some(20),
        window_capacity: 0,
        ..LogConfig::default()
    };
    let mut log = EventLog::open(&path, config.clone()).unwrap();
    let mut all = Vec::new();
    // w_1 is busy, w_2 quiet (every 7th event), some events are runtime-wide; batches of
    // different sizes cross chunk boundaries.
    let mut n = 0u64;
    for batch in [1usize, 3, 9, 2, 17, 1, 30, 5, 27] {
        let records = (0..batch)
            .map(|_| {
                n += 1;
                let worker = match n {
                    n if n % 7 == 0 => Some("w_2"),
                    n if n % 5 == 0 => None,
                    _ => Some("w_1"),
                };
                record(worker, n, (n % 8) as u8)
            })
            .collect();
        all.extend(log.append(records).unwrap());
    }
    let conn = rusqlite::Connection::open(&path).unwrap();
    let rows: Vec<(String, i64)> = conn
        .prepare("SELECT worker_id, chunk FROM worker_chunks ORDER BY worker_id, chunk")
        .unwrap()
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap();
    let mut want: Vec<(String, i64)> = all
        .iter()
        .filter_map(|e| Some((e.worker_id.clone()?, (e.seq >> 2) as i64)))
        .collect();
    want.sort();
    want.dedup();
    assert_eq!(rows, want, "one row per worker and chunk of 4");
    check_worker_replays(&log, &all, 0, 0);

    while log.prune().unwrap().remaining {}
    assert_eq!(log.horizon(), n - 20);
    check_worker_replays(&log, &all, n - 20, n - 20);

    // A store keeps the chunk size it was created with, whatever the config says later.
    drop(log);
    let mut log = EventLog::open(
        &path,
        LogConfig {
            index_chunk_bits: 6,
            ..config
        },
    )
    .unwrap();
    assert_eq!(meta(&conn, "chunk_bits"), 2);
    all.extend(
        log.append((1..=6).map(|i| record(Some("w_2"), n + i, 1)).collect())
            .unwrap(),
    );
    check_worker_replays(&log, &all, n - 20, n - 20);
}

/// Writes `all` the way schema 1 or 2 stored events (one row each in `events`), with
/// that schema's index: schema 1's per-event `worker_seq`, built up to seq 30 only (it
/// was extended lazily), or schema 2's `worker_chunks` with chunks of 4.
fn write_old_store(path: &std::path::Path, version: i64, epoch: i64, all: &[Arc<Envelope>]) {
    let conn = rusqlite::Connection::open(path).unwrap();
    conn.execute_batch(
        "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL) WITHOUT ROWID;
         CREATE TABLE events (seq INTEGER PRIMARY KEY, worker_id TEXT,
             at_ms INTEGER NOT NULL, kind TEXT NOT NULL, body TEXT NOT NULL);",
    )
    .unwrap();
    for e in all {
        conn.execute(
            "INSERT INTO events VALUES (?1, ?2, ?3, ?4, ?5)",
            rusqlite::params![
                e.seq as i64,
                e.worker_id,
                e.at_ms as i64,
                e.event.kind(),
                serde_json::to_string(&e.event).unwrap()
            ],
        )
        .unwrap();
    }
    conn.execute(
        "INSERT INTO meta VALUES ('schema_version', ?1), ('epoch', ?2), ('horizon', 0)",
        [version, epoch],
    )
    .unwrap();
    if version == 1 {
        conn.execute_batch(
            "CREATE TABLE worker_seq (worker_id TEXT NOT NULL, seq INTEGER NOT NULL,
                 PRIMARY KEY (worker_id, seq)) WITHOUT ROWID;
             INSERT INTO worker_seq SELECT worker_id, seq FROM events
                 WHERE worker_id IS NOT NULL AND seq <= 30;
             INSERT INTO meta (key, value) VALUES ('indexed_upto', 30);",
        )
        .unwrap();
    } else {
        conn.execute_batch(
            "CREATE TABLE worker_chunks (worker_id TEXT NOT NULL, chunk INTEGER NOT NULL,
                 PRIMARY KEY (worker_id, chunk)) WITHOUT ROWID;
             INSERT INTO worker_chunks SELECT DISTINCT worker_id, seq >> 2 FROM events
                 WHERE worker_id IS NOT NULL;
             INSERT INTO meta (key, value) VALUES ('chunk_bits', 2);",
        )
        .unwrap();
    }
}

#[test]
fn schema_1_and_2_stores_are_migrated_on_open() {
    // More than a block's worth, so the migration writes several blocks.
    let all: Vec<Arc<Envelope>> = (1..=600u64)
        .map(|n| {
            let r = record(
                [Some("w_1"), Some("w_2"), None][(n % 3) as usize],
                n,
                (n % 8) as u8,
            );
            Arc::new(Envelope {
                seq: n,
                worker_id: r.worker_id,
                at_ms: r.at_ms,
                event: r.event,
            })
        })
        .collect();
    for version in [1, 2] {
        let (_dir, path) = temp();
        write_old_store(&path, version, 77, &all);
        let config = LogConfig {
            retain_events: Some(100),
            ..small(0)
        };
        let mut log = EventLog::open(&path, config.clone()).unwrap();
        assert_eq!(
            log.epoch(),
            77,
            "the epoch survives: old cursors stay valid"
        );
        assert_eq!(log.last_cursor().seq, 600);
        let conn = rusqlite::Connection::open(&path).unwrap();
        let old_tables: i64 = conn
            .query_row(
                "SELECT count(*) FROM sqlite_master WHERE name IN ('events', 'worker_seq')",
                [],
                |r| r.get(0),
            )
            .unwrap();
        assert_eq!(
            old_tables, 0,
            "schema {version}: the old tables are dropped"
        );
        assert_eq!(meta(&conn, "schema_version"), yoi_eventlog::SCHEMA_VERSION);
        let (got, _) = replay_all(&log.reader(), Cursor::new(77, 0), None, 100, true).unwrap();
        assert_eq!(got, expected(&all, 0, None), "schema {version}");
        check_worker_replays(&log, &all, 590, 0);

        // It goes on as a new store would: appends, retention, reopening.
        let mut all = all.clone();
        all.extend(log.append(vec![complete(Some("w_2"), 601)]).unwrap());
        while log.prune().unwrap().remaining {}
        assert_eq!(log.horizon(), 501);
        drop(log);
        let log = EventLog::open(&path, config).unwrap();
        assert_eq!(log.last_cursor().seq, 601);
        check_worker_replays(&log, &all, 595, 501);
        let restored = log.read_for_restore(0, 10_000).unwrap();
        let want: Vec<Envelope> = expected(&all, 0, None)
            .into_iter()
            .filter(|e| !(e.seq <= 501 && e.event.is_delta()))
            .collect();
        assert_eq!(restored, want);
    }
}

#[test]
fn only_one_log_opens_a_store() {
    let (_dir, path) = temp();
    let log = EventLog::open(&path, LogConfig::default()).unwrap();
    assert!(matches!(
        EventLog::open(&path, LogConfig::default()),
        Err(yoi_eventlog::LogError::Locked(_))
    ));
    drop(log);
    EventLog::open(&path, LogConfig::default()).unwrap();
}

#[test]
fn opening_something_else_is_a_typed_error() {
    let (_dir, path) = temp();
    {
        let conn = rusqlite::Connection::open(&path).unwrap();
        conn.execute_batch(
            "CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
             INSERT INTO meta VALUES ('schema_version', 99), ('epoch', 1);",
        )
        .unwrap();
    }
    match EventLog::open(&path, LogConfig::default()) {
        Err(yoi_eventlog::LogError::UnsupportedSchema { found: 99, .. }) => {}
        other => panic!("{other:?}"),
    }
}

#[test]
fn big_events_close_a_block_early() {
    let (_dir, path) = temp();
    let mut log = EventLog::open(&path, small(0)).unwrap();
    let big = |n: u64| yoi_protocol::EventRecord {
        worker_id: Some("w_1".into()),
        at_ms: n,
        event: Event::TextDone {
            run_id: "r_1".into(),
            text: "x".repeat(600 << 10),
        },
    };
    // 600 KiB each: a block closes once it passes 1 MiB, so no value SQLite stores can
    // grow with the number of big events in one append.
    let all = log
        .append(vec![big(1), big(2), big(3), delta(Some("w_1"), 4)])
        .unwrap();
    let blocks = block_spans(&path);
    assert_eq!(blocks, vec![(1, 2), (3, 4)]);
    let (got, _) = replay_all(&log.reader(), Cursor::new(log.epoch(), 0), None, 3, true).unwrap();
    assert_eq!(got, expected(&all, 0, None));
}

#[test]
fn retention_skips_a_block_it_cannot_decode() {
    let (_dir, path) = temp();
    let config = LogConfig {
        retain_events: Some(0),
        ..small(0)
    };
    let mut log = EventLog::open(&path, config).unwrap();
    log.append((1..=3).map(|n| delta(Some("w_1"), n)).collect())
        .unwrap();
    log.append((4..=6).map(|n| delta(Some("w_1"), n)).collect())
        .unwrap();
    let conn = rusqlite::Connection::open(&path).unwrap();
    conn.execute("UPDATE blocks SET frames = X'0102' WHERE first_seq = 1", [])
        .unwrap();
    // The garbled block stays (and replays through it say so); the next one is pruned.
    while log.prune().unwrap().remaining {}
    assert_eq!(log.horizon(), 6);
    let blocks: i64 = conn
        .query_row("SELECT count(*) FROM blocks", [], |r| r.get(0))
        .unwrap();
    assert_eq!(blocks, 1, "the decodable block's deltas are all gone");
    assert!(matches!(
        log.read_for_restore(0, 10),
        Err(yoi_eventlog::LogError::Corrupt { seq: 1, .. })
    ));
}

/// Text that does not compress: `n` bytes from a seeded generator.
fn noise(seed: u64, n: usize) -> String {
    let mut x = seed
        .wrapping_mul(6364136223846793005)
        .wrapping_add(1442695040888963407);
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6364136223846793005)
                .wrapping_add(1442695040888963407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

#[test]
fn a_full_store_refuses_a_whole_append_and_goes_on_once_it_has_room() {
    let (_dir, path) = temp();
    let config = |max| LogConfig {
        max_store_bytes: Some(max),
        ..LogConfig::default()
    };
    let mut log = EventLog::open(&path, config(256 << 10)).unwrap();
    let batch = |seed: u64| {
        vec![yoi_eventlog::EventRecord {
            worker_id: Some("w_1".into()),
            at_ms: 1,
            event: Event::TextDelta {
                run_id: "r_1".into(),
                text: noise(seed, 16 << 10),
            },
        }]
    };
    let mut stored = 0;
    let error = loop {
        match log.append(batch(stored)) {
            Ok(_) => stored += 1,
            Err(e) => break e,
        }
        assert!(stored < 1000, "the limit never applied");
    };
    assert!(stored > 0, "the store had room for the first batches");
    assert!(error.to_string().contains("full"), "{error}");
    // Nothing of the refused batch is stored or published, and the log stays usable.
    assert_eq!(log.last_cursor().seq, stored);
    assert!(log.append(batch(9999)).is_err(), "still full");
    assert_eq!(log.last_cursor().seq, stored);
    drop(log);

    let mut log = EventLog::open(&path, config(4 << 20)).unwrap();
    assert_eq!(log.last_cursor().seq, stored);
    let next = log.append(batch(stored)).unwrap();
    assert_eq!(next[0].seq, stored + 1, "no gap, no sequence number reused");
    let all = log.read_for_restore(0, 10_000).unwrap();
    assert_eq!(
        all.iter().map(|e| e.seq).collect::<Vec<_>>(),
        (1..=stored + 1).collect::<Vec<_>>()
    );
}

/// WAL checkpoints run on the log's own thread: asked for every 64 KiB appended, they
/// let the writer start the WAL over instead of growing it with everything appended
/// (SQLite's own checkpoint, the backstop, would wait for 64 MiB).
#[test]
fn the_checkpoint_thread_keeps_the_wal_small() {
    let (_dir, path) = temp();
    let config = LogConfig {
        checkpoint_bytes: 64 << 10,
        ..LogConfig::default()
    };
    let mut log = EventLog::open(&path, config).unwrap();
    let mut wal = path.clone().into_os_string();
    wal.push("-wal");
    let big = yoi_eventlog::EventRecord {
        worker_id: None,
        at_ms: 1,
        event: Event::Diagnostic {
            level: Level::Info,
            code: "note".into(),
            message: "x".repeat(80 << 10),
        },
    };
    let rounds = 64u64;
    for _ in 0..rounds {
        let done = log.stats().checkpoints;
        log.append(vec![big.clone()]).unwrap();
        // The checkpoint this append asked for (the deadline only guards against a hang).
        let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
        while log.stats().checkpoints == done {
            assert!(
                std::time::Instant::now() < deadline,
                "no checkpoint was made"
            );
            std::thread::sleep(std::time::Duration::from_millis(1));
        }
    }
    let appended = rounds * (80 << 10);
    let wal_bytes = std::fs::metadata(&wal).unwrap().len();
    assert!(
        wal_bytes < appended / 8,
        "the WAL holds {wal_bytes} bytes after {appended} appended"
    );
}
