//! kill -9 of a process appending to the log: nothing acknowledged is lost.
//!
//! The test binary re-runs itself as the child (`CHILD_ENV` names the store): the child
//! appends batches forever and writes `ACK <batch> <first> <last>` to stdout after each
//! commit; the parent kills it with SIGKILL after a number of acknowledgements, reopens
//! the store and checks every acknowledged batch is there, intact.

mod common;

use std::io::{BufRead, BufReader, Write};
use std::process::{Command, Stdio};
use yoi_eventlog::{EventLog, LogConfig};

const CHILD_ENV: &str = "YOI_EVENTLOG_CRASH_CHILD";
const BATCH: u64 = 50;

fn batch_records(batch: u64) -> Vec<yoi_protocol::EventRecord> {
    (0..BATCH)
        .map(|i| {
            let n = batch * BATCH + i;
            common::record(Some(&format!("w_{}", batch % 3)), n, (n % 8) as u8)
        })
        .collect()
}

/// The child's body; a no-op unless run by `acknowledged_batches_survive_kill_9`.
#[test]
fn crash_child() {
    let Some(path) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let start: u64 = std::env::var("YOI_EVENTLOG_CRASH_START")
        .unwrap()
        .parse()
        .unwrap();
    let mut log = EventLog::open(std::path::Path::new(&path), LogConfig::default()).unwrap();
    let mut out = std::io::stdout().lock();
    for batch in start.. {
        let appended = log.append(batch_records(batch)).unwrap();
        // Written straight to the process's stdout (not the test harness's capture).
        writeln!(
            out,
            "ACK {batch} {} {}",
            appended[0].seq,
            appended.last().unwrap().seq
        )
        .unwrap();
        out.flush().unwrap();
    }
}

#[test]
fn acknowledged_batches_survive_kill_9() {
    if std::env::var_os(CHILD_ENV).is_some() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("events.db");
    let exe = std::env::current_exe().unwrap();
    let mut acked: Vec<(u64, u64, u64)> = Vec::new();
    let mut next_batch = 0;
    // Several rounds: each child continues the store the previous one was killed over.
    for round in 0..3 {
        let mut child = Command::new(&exe)
            .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
            .env(CHILD_ENV, &path)
            .env("YOI_EVENTLOG_CRASH_START", next_batch.to_string())
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap();
        let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
        let mut this_round = 0;
        let kill_after = 20 + round * 15;
        for line in lines.by_ref() {
            let line = line.unwrap();
            let Some(rest) = line.strip_prefix("ACK ") else {
                continue;
            };
            let v: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
            acked.push((v[0], v[1], v[2]));
            this_round += 1;
            if this_round == kill_after {
                child.kill().unwrap(); // SIGKILL
                break;
            }
        }
        // Acknowledgements written before the kill are acknowledged too.
        for line in lines {
            let Ok(line) = line else { break };
            if let Some(rest) = line.strip_prefix("ACK ") {
                let v: Vec<u64> = rest.split(' ').map(|x| x.parse().unwrap()).collect();
                acked.push((v[0], v[1], v[2]));
            }
        }
        let status = child.wait().unwrap();
        assert!(!status.success(), "the child was killed, round {round}");
        assert!(
            this_round >= kill_after,
            "the child stopped early in round {round}"
        );

        let log = EventLog::open(&path, LogConfig::default()).unwrap();
        let stored = log.read_for_restore(0, usize::MAX).unwrap();
        let seqs: Vec<u64> = stored.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, (1..=seqs.len() as u64).collect::<Vec<_>>(), "no gaps");
        for &(batch, first, last) in &acked {
            assert_eq!((first, last), (batch * BATCH + 1, (batch + 1) * BATCH));
            let got = &stored[(first - 1) as usize..last as usize];
            let want = batch_records(batch);
            for (env, rec) in got.iter().zip(&want) {
                assert_eq!(
                    (&env.worker_id, env.at_ms, &env.event),
                    (&rec.worker_id, rec.at_ms, &rec.event),
                    "batch {batch} at seq {}",
                    env.seq
                );
            }
        }
        // Whatever was written beyond the last acknowledgement is whole batches only.
        assert_eq!(
            stored.len() as u64 % BATCH,
            0,
            "a transaction is all or nothing"
        );
        next_batch = stored.len() as u64 / BATCH;
        assert!(next_batch >= acked.len() as u64);
    }
}
