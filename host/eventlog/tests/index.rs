//! The worker index: written with the events in one transaction, current only while
//! every append carried its changes, listed oldest worker first.

use yoi_eventlog::{EventLog, IndexCounters, IndexUpdate, LogConfig};
use yoi_protocol::{Event, EventRecord, Level, Usage, WorkerInfo, WorkerStatus};

fn info(n: u64, status: WorkerStatus) -> WorkerInfo {
    WorkerInfo {
        id: format!("w_{n}"),
        name: format!("worker {n}"),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: 8,
        status,
        created_at_ms: n,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Usage::default(),
        context_tokens: None,
        request_id: None,
    }
}

fn note() -> EventRecord {
    EventRecord {
        worker_id: None,
        at_ms: 1,
        event: Event::Diagnostic {
            level: Level::Info,
            code: "note".into(),
            message: "x".into(),
        },
    }
}

fn update<'a>(changed: &'a [WorkerInfo], deleted: &'a [String], next: u64) -> IndexUpdate<'a> {
    IndexUpdate {
        changed,
        deleted,
        next_worker: next,
        next_run: 7,
        complete: false,
    }
}

fn ids(log: &EventLog) -> Vec<String> {
    let mut out = Vec::new();
    let mut after = 0;
    loop {
        let page = log.index_page(after, 3).unwrap();
        out.extend(page.infos.into_iter().map(|i| i.id));
        match page.next {
            Some(next) => after = next,
            None => return out,
        }
    }
}

#[test]
fn the_index_follows_the_appends_that_carry_it() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let mut log = EventLog::open(&path, LogConfig::default()).unwrap();
    // A new store has no index yet: its owner builds it whole.
    assert_eq!(log.index_counters().unwrap(), None);
    let complete = IndexUpdate {
        complete: true,
        ..update(&[], &[], 1)
    };
    log.append_indexed(Vec::new(), &complete).unwrap();
    assert_eq!(
        log.index_counters().unwrap(),
        Some(IndexCounters {
            next_worker: 1,
            next_run: 7
        })
    );

    // Ten workers, created in order (w_10 sorts before w_2 as text, not here).
    let infos: Vec<WorkerInfo> = (1..=10).map(|n| info(n, WorkerStatus::Idle)).collect();
    log.append_indexed(vec![note()], &update(&infos, &[], 11))
        .unwrap();
    let expected: Vec<String> = (1..=10).map(|n| format!("w_{n}")).collect();
    assert_eq!(ids(&log), expected);

    // A change keeps the worker's place; a deletion removes it.
    let changed = [info(2, WorkerStatus::Stopped)];
    let deleted = ["w_5".to_string()];
    log.append_indexed(vec![note(), note()], &update(&changed, &deleted, 11))
        .unwrap();
    let page = log.index_page(0, 100).unwrap();
    assert_eq!(page.infos.len(), 9);
    assert_eq!(page.infos[1], changed[0]);
    assert!(page.infos.iter().all(|i| i.id != "w_5"));
    assert_eq!(log.index_counters().unwrap().unwrap().next_worker, 11);

    // Reopened: still current.
    drop(log);
    let mut log = EventLog::open(&path, LogConfig::default()).unwrap();
    assert!(log.index_counters().unwrap().is_some());

    // An append without changes leaves it behind, and later indexed appends cannot
    // catch up by themselves...
    log.append(vec![note()]).unwrap();
    assert_eq!(log.index_counters().unwrap(), None);
    log.append_indexed(vec![note()], &update(&[], &[], 11))
        .unwrap();
    assert_eq!(log.index_counters().unwrap(), None);
    // ...until a complete one replaces it.
    let all = [info(1, WorkerStatus::Idle), info(3, WorkerStatus::Running)];
    let rebuilt = IndexUpdate {
        complete: true,
        ..update(&all, &[], 12)
    };
    log.append_indexed(Vec::new(), &rebuilt).unwrap();
    assert_eq!(log.index_counters().unwrap().unwrap().next_worker, 12);
    assert_eq!(ids(&log), ["w_1", "w_3"]);
}

/// A store written by schema 3 kept index rows as JSON: they still read, the core gets
/// them in the binary row list, and opening moves the store to the current schema.
#[test]
fn json_rows_of_schema_3_still_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let mut log = EventLog::open(&path, LogConfig::default()).unwrap();
    let infos: Vec<WorkerInfo> = (1..=3).map(|n| info(n, WorkerStatus::Idle)).collect();
    let complete = IndexUpdate {
        complete: true,
        ..update(&infos, &[], 4)
    };
    log.append_indexed(vec![note()], &complete).unwrap();
    drop(log);
    {
        // Back to what schema 3 wrote: JSON rows, version 3.
        let conn = rusqlite::Connection::open(&path).unwrap();
        for info in &infos[..2] {
            conn.execute(
                "UPDATE worker_index SET info = ?1 WHERE worker_id = ?2",
                rusqlite::params![serde_json::to_vec(info).unwrap(), info.id],
            )
            .unwrap();
        }
        conn.execute("UPDATE meta SET value = 3 WHERE key = 'schema_version'", [])
            .unwrap();
    }
    let log = EventLog::open(&path, LogConfig::default()).unwrap();
    for page in [
        log.index_page(0, 10).unwrap(),
        log.reader().index_page(0, 10).unwrap(),
    ] {
        assert_eq!(page.infos, infos);
        let rows: Vec<WorkerInfo> = yoi_protocol::index_row::split(&page.rows)
            .map(|row| yoi_protocol::index_row::decode(row.unwrap()).unwrap())
            .collect();
        assert_eq!(rows, infos);
    }
    drop(log);
    let conn = rusqlite::Connection::open(&path).unwrap();
    let version: i64 = conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'schema_version'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert_eq!(version, yoi_eventlog::SCHEMA_VERSION);
}
