//! Random appends, prunes, reopens and replays against a model: a replay is always the
//! filter of everything appended, from the window and from the store alike, also when
//! some appends fail (the store refuses them) between the ones that succeed.

mod common;

use proptest::prelude::*;
use std::sync::Arc;
use yoi_eventlog::{Cursor, Envelope, EventLog, LogConfig, ReplayError};

const WORKERS: [Option<&str>; 4] = [Some("w_0"), Some("w_1"), Some("w_2"), None];

#[derive(Debug, Clone)]
enum Op {
    /// (worker index, event variant) per record.
    Append(Vec<(usize, u8)>),
    /// An append the store refuses: these records with a poisoned one at the given
    /// position (modulo their number + 1).
    FailingAppend(Vec<(usize, u8)>, usize),
    Prune,
    Reopen,
    /// (cursor position as a fraction of last+2, worker filter, limit)
    Replay(f64, Option<usize>, usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => prop::collection::vec((0..4usize, any::<u8>()), 0..40).prop_map(Op::Append),
        // Over a store block (256 events): appends split across blocks.
        1 => prop::collection::vec((0..4usize, any::<u8>()), 200..700).prop_map(Op::Append),
        // Short ones stay within one worker-index chunk, as the next append does: the
        // index must not remember rows that rolled back.
        3 => (prop::collection::vec((0..4usize, any::<u8>()), 0..8), any::<usize>())
            .prop_map(|(spec, at)| Op::FailingAppend(spec, at)),
        1 => (prop::collection::vec((0..4usize, any::<u8>()), 0..300), any::<usize>())
            .prop_map(|(spec, at)| Op::FailingAppend(spec, at)),
        1 => Just(Op::Prune),
        1 => Just(Op::Reopen),
        4 => (0.0..1.0f64, prop::option::of(0..4usize), 0..30usize)
            .prop_map(|(at, w, limit)| Op::Replay(at, w, limit)),
    ]
}

fn config() -> impl Strategy<Value = LogConfig> {
    (0..40usize, prop::option::of(0..60u64), 1..30u64, 0..4u8).prop_map(
        |(window, retain, batch, chunk)| LogConfig {
            window_capacity: window,
            retain_events: retain,
            prune_batch: batch,
            index_chunk_bits: chunk,
            broadcast_capacity: 10_000,
            ..LogConfig::default()
        },
    )
}

/// An event the store's `poison` trigger refuses.
fn poisoned(worker: Option<&str>, n: u64) -> yoi_protocol::EventRecord {
    yoi_protocol::EventRecord {
        worker_id: worker.map(str::to_owned),
        at_ms: n,
        event: yoi_protocol::Event::TextDone {
            run_id: format!("r_{n}"),
            text: "poisoned-event".into(),
        },
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn replay_is_the_filter_of_everything_appended(
        config in config(),
        ops in prop::collection::vec(op(), 1..40),
    ) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("events.db");
        let mut log = EventLog::open(&path, config.clone()).unwrap();
        let epoch = log.epoch();
        let mut rx = log.subscribe();
        // A failing append: the store refuses any block holding a poisoned event, so the
        // transaction fails after the blocks (and worker-index rows) before it.
        rusqlite::Connection::open(&path)
            .unwrap()
            .execute_batch(
                "CREATE TRIGGER poison BEFORE INSERT ON blocks
                 WHEN instr(NEW.frames, CAST('poisoned-event' AS BLOB)) > 0
                 BEGIN SELECT RAISE(ABORT, 'poisoned'); END;",
            )
            .unwrap();
        // The model: everything appended, and the horizon.
        let mut all: Vec<Arc<Envelope>> = Vec::new();
        let mut horizon = 0u64;
        let mut n = 0u64;
        for op in ops {
            match op {
                Op::Append(spec) => {
                    let records = spec
                        .iter()
                        .map(|&(w, v)| {
                            n += 1;
                            common::record(WORKERS[w], n, v)
                        })
                        .collect();
                    let appended = log.append(records).unwrap();
                    for env in &appended {
                        prop_assert_eq!(env.seq, all.len() as u64 + 1);
                        all.push(env.clone());
                    }
                    let live = common::drain(&mut rx);
                    prop_assert_eq!(live, appended);
                }
                Op::FailingAppend(spec, at) => {
                    let mut records: Vec<_> = spec
                        .iter()
                        .map(|&(w, v)| {
                            n += 1;
                            common::record(WORKERS[w], n, v)
                        })
                        .collect();
                    n += 1;
                    let poisoned = poisoned(WORKERS[at % WORKERS.len()], n);
                    records.insert(at % (records.len() + 1), poisoned);
                    let before = log.last_cursor();
                    prop_assert!(log.append(records).is_err());
                    prop_assert_eq!(log.last_cursor(), before, "nothing was published");
                    prop_assert!(common::drain(&mut rx).is_empty(), "nor sent live");
                }
                Op::Prune => {
                    let p = log.prune().unwrap();
                    prop_assert!(p.horizon >= horizon);
                    horizon = p.horizon;
                    if let Some(retain) = config.retain_events {
                        let target = (all.len() as u64).saturating_sub(retain);
                        prop_assert!(horizon <= target);
                        prop_assert_eq!(p.remaining, horizon < target);
                    } else {
                        prop_assert_eq!(horizon, 0);
                    }
                }
                Op::Reopen => {
                    drop(log);
                    log = EventLog::open(&path, config.clone()).unwrap();
                    prop_assert_eq!(log.epoch(), epoch);
                    prop_assert_eq!(log.horizon(), horizon);
                    rx = log.subscribe();
                }
                Op::Replay(at, w, limit) => {
                    let last = all.len() as u64;
                    let after = ((last + 2) as f64 * at) as u64;
                    let worker = w.and_then(|w| WORKERS[w]);
                    let reader = log.reader();
                    for store_only in [false, true] {
                        let cursor = Cursor::new(epoch, after);
                        let page = if store_only {
                            reader.replay_from_store(cursor, worker, limit)
                        } else {
                            reader.replay(cursor, worker, limit)
                        };
                        if after > last {
                            let ok = matches!(page, Err(ReplayError::Ahead { last: l }) if l == last);
                            prop_assert!(ok, "ahead");
                            continue;
                        }
                        if after < horizon {
                            let ok = matches!(page, Err(ReplayError::Expired { oldest }) if oldest == horizon);
                            prop_assert!(ok, "expired");
                            continue;
                        }
                        let page = page.unwrap();
                        let want = common::expected(&all, after, worker);
                        let more = want.len() > limit;
                        let got: Vec<Envelope> = page.events.iter().map(|e| (**e).clone()).collect();
                        prop_assert_eq!(&got[..], &want[..want.len().min(limit)]);
                        prop_assert_eq!(page.more, more);
                        let next = if more { got.last().map_or(after, |e| e.seq) } else { last };
                        prop_assert_eq!(page.next, Cursor::new(epoch, next));
                        // Paging on to the end yields the rest.
                        if limit > 0 {
                            let (rest, end) =
                                common::replay_all(&reader, page.next, worker, limit, store_only)
                                    .unwrap();
                            let mut whole = got;
                            whole.extend(rest);
                            prop_assert_eq!(whole, want);
                            prop_assert_eq!(end.seq, last);
                        }
                    }
                }
            }
        }
        // Restore sees every event except deltas at or below the horizon.
        let restored = log.read_for_restore(0, usize::MAX).unwrap();
        let kept: Vec<Envelope> = all
            .iter()
            .filter(|e| !(e.seq <= horizon && e.event.is_delta()))
            .map(|e| (**e).clone())
            .collect();
        prop_assert_eq!(restored, kept);
    }
}
