//! Appends text deltas in batches and prints the throughput.
//!
//! `cargo run --release -p yoi-eventlog --example append_throughput [events] [batch] [full]`

use std::time::Instant;
use yoi_eventlog::{Cursor, Durability, EventLog, EventRecord, LogConfig};
use yoi_protocol::Event;

fn main() {
    let mut args = std::env::args().skip(1);
    let total: u64 = args.next().map_or(200_000, |a| a.parse().expect("events"));
    let batch: u64 = args.next().map_or(100, |a| a.parse().expect("batch"));
    let durability = match args.next().as_deref() {
        Some("full") => Durability::Full,
        _ => Durability::Normal,
    };
    let dir = tempfile::tempdir().expect("tempdir");
    let mut log = EventLog::open(
        &dir.path().join("events.db"),
        LogConfig {
            durability,
            retain_events: Some(65_536),
            ..LogConfig::default()
        },
    )
    .expect("open");
    let reader = log.reader();
    let mut rx = reader.subscribe();
    let started = Instant::now();
    let mut n = 0u64;
    while n < total {
        let records = (0..batch.min(total - n))
            .map(|_| {
                n += 1;
                EventRecord {
                    worker_id: Some(format!("w_{:04}", n % 100)),
                    at_ms: 1_700_000_000_000 + n,
                    event: Event::TextDelta {
                        run_id: format!("r_{:04}", n % 100),
                        text: "token ".into(),
                    },
                }
            })
            .collect();
        log.append(records).expect("append");
        while rx.try_recv().is_ok() {}
    }
    let took = started.elapsed();
    let stats = log.stats();
    println!(
        "{total} events in batches of {batch} ({durability:?}): {:.0} events/s, store writes {:.0}% of the time, {} commits",
        total as f64 / took.as_secs_f64(),
        100.0 * stats.store_write_nanos as f64 / took.as_nanos() as f64,
        stats.commits
    );

    let epoch = log.epoch();
    let started = Instant::now();
    let page = reader
        .replay_from_store(Cursor::new(epoch, 0), Some("w_0042"), 1000)
        .expect("replay");
    println!(
        "store replay of one worker ({} events): {:.2} ms",
        page.events.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let started = Instant::now();
    let page = reader
        .replay_from_store(Cursor::new(epoch, 0), None, 1000)
        .expect("replay");
    println!(
        "store replay of all workers ({} events): {:.2} ms",
        page.events.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    loop {
        let started = Instant::now();
        let pruned = log.prune().expect("prune");
        println!(
            "prune to horizon {}: {} deltas deleted in {:.1} ms",
            pruned.horizon,
            pruned.deleted,
            started.elapsed().as_secs_f64() * 1e3
        );
        if !pruned.remaining {
            break;
        }
    }
}
