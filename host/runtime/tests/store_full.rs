//! A full event store (a full disk), then one that refuses every write (a failing
//! device): no command is acknowledged before its events are stored, the runtime refuses
//! work instead of restoring its core in a loop, says so in its stats, and takes work
//! again by itself once the store has room.

mod common;

use std::time::Duration;

use common::*;
use yoi_driver::ScriptedConfig;
use yoi_protocol::{ErrorCode, Event};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig};

/// Text that does not compress: `n` letters from a seeded generator.
fn noise(seed: u64, n: usize) -> String {
    let mut x = seed ^ 0x9e37_79b9_7f4a_7c15;
    (0..n)
        .map(|_| {
            x = x
                .wrapping_mul(6_364_136_223_846_793_005)
                .wrapping_add(1_442_695_040_888_963_407);
            char::from(b'a' + ((x >> 33) % 26) as u8)
        })
        .collect()
}

fn scripted() -> ScriptedConfig {
    ScriptedConfig {
        token_delay: Duration::ZERO,
        ..ScriptedConfig::default()
    }
}

/// Runs ids of the runs the log says were accepted.
fn accepted_runs(rt: &LocalRuntime) -> Vec<String> {
    let cursor = yoi_protocol::Cursor::new(rt.events().last_cursor().epoch, 0);
    let page = rt.events().replay(cursor, None, 1_000_000).unwrap();
    page.events
        .iter()
        .filter_map(|e| match &e.event {
            Event::InputAccepted { run_id, .. } => Some(run_id.clone()),
            _ => None,
        })
        .collect()
}

async fn eventually(what: &str, mut done: impl FnMut() -> bool) {
    let waited = tokio::time::timeout(PATIENCE, async {
        while !done() {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "gave up waiting for {what}");
}

#[tokio::test(flavor = "multi_thread")]
async fn a_full_store_refuses_work_without_a_restore_loop_and_recovers_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("events.db");
    // A store that exists, then filler that takes most of the room a limit will leave.
    let rt = open(Kind::Native, builder(dir.path(), scripted()));
    let worker = rt.create_worker(spec("w", &[])).await.unwrap().id;
    rt.shutdown().await;
    drop(rt);
    let filler = rusqlite::Connection::open(&db).unwrap();
    filler.busy_timeout(Duration::from_secs(30)).unwrap();
    filler
        .execute_batch(
            "CREATE TABLE filler (b BLOB);
             INSERT INTO filler VALUES (zeroblob(4194304));",
        )
        .unwrap();
    let pages: u64 = filler
        .query_row("PRAGMA page_count", [], |r| r.get(0))
        .unwrap();
    let page_size: u64 = filler
        .query_row("PRAGMA page_size", [], |r| r.get(0))
        .unwrap();

    let mut config = LocalRuntimeConfig::new(dir.path());
    config.log.max_store_bytes = Some(pages * page_size + (256 << 10));
    let rt = open(Kind::Native, builder_with(config, scripted()));
    let mut live = rt.events().subscribe();

    // Feed the worker until the store is full: either an input is refused, or the events
    // of a run in flight are, and the runtime stops taking work.
    let mut acked = Vec::new();
    let refused = 'feed: loop {
        assert!(acked.len() < 500, "the store never filled up");
        let text = noise(acked.len() as u64, 32 << 10);
        match rt.send_input(&worker, input(&text)).await {
            Ok(run) => acked.push(run),
            Err(e) => break 'feed e,
        }
        // Until the run ends, or the store fails under it.
        let ended = tokio::time::timeout(PATIENCE, async {
            loop {
                if rt.stats().store_failing_since_ms.is_some() {
                    return false;
                }
                if let Ok(Ok(env)) =
                    tokio::time::timeout(Duration::from_millis(50), live.recv()).await
                    && run_ended(&env, &worker)
                {
                    return true;
                }
            }
        })
        .await
        .expect("the run ends or the store fails");
        if !ended {
            break 'feed rt.send_input(&worker, input("more")).await.unwrap_err();
        }
    };
    assert_eq!(refused.code(), ErrorCode::RuntimeUnavailable, "{refused}");
    assert!(
        refused.to_string().contains("nothing was acknowledged"),
        "{refused}"
    );
    assert!(!acked.is_empty());

    // Now the store refuses every write, however small (a failing device; here another
    // connection holding the write lock): the next batch is refused, and so are the
    // few events of the core's restore after it.
    filler.execute_batch("BEGIN IMMEDIATE").unwrap();
    let e = rt.send_input(&worker, input("one more")).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::RuntimeUnavailable, "{e}");

    // The store failed twice at least (the batch, then the restore's own events): the
    // runtime now refuses work and says so, and further commands neither touch the core
    // nor restore it again.
    eventually("the runtime to report the failing store", || {
        rt.stats().store_failing_since_ms.is_some()
    })
    .await;
    let stats = rt.stats();
    assert!(stats.store_failures >= 2, "{stats:?}");
    for i in 0..20 {
        let e = rt.send_input(&worker, input(&format!("refused {i}"))).await;
        let e = e.expect_err("refused while the store is full");
        assert_eq!(e.code(), ErrorCode::RuntimeUnavailable);
        assert!(e.to_string().contains("refuses appends"), "{e}");
    }
    let e = rt.create_worker(spec("x", &[])).await.unwrap_err();
    assert_eq!(e.code(), ErrorCode::RuntimeUnavailable);
    assert_eq!(rt.stats().faults, stats.faults, "no restore per command");

    // Room again (an operator freed disk space): the runtime stores what it kept and
    // takes work again by itself.
    filler
        .execute_batch("ROLLBACK; DELETE FROM filler;")
        .unwrap();
    eventually("the store to take appends again", || {
        rt.stats().store_failing_since_ms.is_none()
    })
    .await;
    let run = rt.send_input(&worker, input("after")).await.unwrap();
    collect_until(&mut live, |e| run_ended(e, &worker)).await;
    acked.push(run);

    // Every acknowledged run is stored, nothing refused is, and the restore said so.
    assert_eq!(accepted_runs(&rt), acked);
    let cursor = yoi_protocol::Cursor::new(rt.events().last_cursor().epoch, 0);
    let page = rt.events().replay(cursor, None, 1_000_000).unwrap();
    assert!(page.events.iter().any(|e| matches!(
        &e.event,
        Event::Diagnostic { code, .. } if code == "core_restarted"
    )));
    let seqs: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gap");
    rt.shutdown().await;
}
