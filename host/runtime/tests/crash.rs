//! kill -9 of a process holding a LocalRuntime, then reopen: nothing acknowledged is
//! lost, runs in flight end `interrupted`, and cursors taken before the crash resume;
//! also when the process dies while it passivates and reactivates workers.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use yoi_driver::ScriptedConfig;
use yoi_protocol::{Cursor, Event, Role, WorkerStatus};

const CHILD_ENV: &str = "YOI_CRASH_CHILD_DIR";
const CHURN_ENV: &str = "YOI_CRASH_CHURN_DIR";
/// Workers of the reactivation test; one of them resident at a time.
const CHURN_WORKERS: usize = 6;

fn one_resident(dir: &std::path::Path) -> yoi_runtime::LocalRuntimeConfig {
    let mut config = yoi_runtime::LocalRuntimeConfig::new(dir);
    config.limits = yoi_protocol::Limits {
        max_resident_workers: 1,
        ..yoi_protocol::Limits::default()
    };
    config
}

/// The child side: runs only when the parent re-executes this test binary.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crash_child() {
    let Some(dir) = std::env::var_os(CHILD_ENV) else {
        return;
    };
    let slow = ScriptedConfig {
        token_delay: Duration::from_millis(1),
        ..ScriptedConfig::default()
    };
    let rt = open(Kind::Native, builder(std::path::Path::new(&dir), slow));
    for i in 0.. {
        let w = rt
            .create_worker(spec(&format!("crash{i}"), &[]))
            .await
            .unwrap();
        println!("ACK worker {}", w.id);
        let run = rt.send_input(&w.id, input("stream 100000")).await.unwrap();
        println!("ACK run {} {} {}", w.id, run, rt.events().last_cursor());
    }
}

#[test]
fn kill_9_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "crash_child", "--nocapture", "--test-threads=1"])
        .env(CHILD_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut workers = Vec::new();
    let mut runs = Vec::new();
    let mut last_cursor = None;
    let lines = BufReader::new(child.stdout.take().unwrap()).lines();
    for line in lines {
        let line = line.unwrap();
        let words: Vec<&str> = line.split_whitespace().collect();
        match words.as_slice() {
            ["ACK", "worker", id] => workers.push(id.to_string()),
            ["ACK", "run", w, r, c] => {
                runs.push((w.to_string(), r.to_string()));
                last_cursor = Some(Cursor::decode(c).unwrap());
            }
            _ => continue,
        }
        if runs.len() == 25 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL
    child.wait().unwrap();
    assert_eq!(runs.len(), 25, "the child acknowledged runs before dying");

    let rt_handle = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt_handle.block_on(async {
        let rt = open(Kind::Native, builder(dir.path(), ScriptedConfig::default()));
        let listed = rt.list_workers().await.unwrap();
        for id in &workers {
            let w = listed
                .iter()
                .find(|w| &w.id == id)
                .expect("acknowledged worker");
            assert_eq!(w.status, WorkerStatus::Idle, "no run survives a crash");
        }
        for (w, run) in &runs {
            let transcript = rt.transcript(w).await.unwrap();
            assert!(
                transcript
                    .iter()
                    .any(|m| m.role == Role::User && &m.run_id == run),
                "acknowledged input of {run} is in the transcript"
            );
        }
        assert!(rt.restored().interrupted_runs >= 1);
        // Every acknowledged run ended: completed before the crash or interrupted.
        let cursor = last_cursor.unwrap();
        let page = rt
            .events()
            .replay(Cursor::new(cursor.epoch, 0), None, 1_000_000)
            .unwrap();
        for (_, run) in &runs {
            let ended = page.events.iter().any(|e| {
                e.event.run_id() == Some(run.as_str())
                    && match &e.event {
                        Event::RunFailed { error, .. } => error.code == "interrupted",
                        Event::RunCompleted { .. } => true,
                        _ => false,
                    }
            });
            assert!(ended, "run {run} was closed");
        }
        // A cursor taken before the crash still resumes on the same log.
        assert_eq!(rt.events().epoch(), cursor.epoch);
        assert!(rt.events().replay(cursor, None, 10).is_ok());
        rt.shutdown().await;
    });
}

/// The child side of the reactivation test: `CHURN_WORKERS` workers, one resident at a
/// time, each sent input after input by its own task, so the runtime passivates one
/// worker and restores another from the store for almost every command.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn churn_child() {
    let Some(dir) = std::env::var_os(CHURN_ENV) else {
        return;
    };
    let rt = std::sync::Arc::new(open(
        Kind::Native,
        builder_with(
            one_resident(std::path::Path::new(&dir)),
            ScriptedConfig::default(),
        ),
    ));
    let mut workers = Vec::new();
    for i in 0..CHURN_WORKERS {
        let w = rt
            .create_worker(spec(&format!("churn{i}"), &[]))
            .await
            .unwrap();
        println!("ACK worker {}", w.id);
        workers.push(w);
    }
    let mut tasks = Vec::new();
    for w in workers {
        let rt = rt.clone();
        tasks.push(tokio::spawn(async move {
            for turn in 0.. {
                match rt.send_input(&w.id, input(&format!("hello {turn}"))).await {
                    Ok(run) => println!("ACK run {} {run}", w.id),
                    // Its previous run is still going: try again.
                    Err(e) if e.code() == yoi_protocol::ErrorCode::WorkerBusy => {
                        tokio::task::yield_now().await
                    }
                    Err(e) => panic!("{e}"),
                }
            }
        }));
    }
    for t in tasks {
        t.await.unwrap();
    }
}

#[test]
fn kill_9_during_reactivation_loses_nothing_acknowledged() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "churn_child", "--nocapture", "--test-threads=1"])
        .env(CHURN_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut workers = Vec::new();
    let mut runs = Vec::new();
    for line in BufReader::new(child.stdout.take().unwrap()).lines() {
        let line = line.unwrap();
        // The harness prints `test churn_child ... ` without a newline before the
        // child's first line.
        let line = line
            .get(line.find("ACK").unwrap_or(0)..)
            .unwrap_or_default();
        match line.split_whitespace().collect::<Vec<_>>().as_slice() {
            ["ACK", "worker", id] => workers.push(id.to_string()),
            ["ACK", "run", w, r] => runs.push((w.to_string(), r.to_string())),
            _ => continue,
        }
        if runs.len() == 300 {
            break;
        }
    }
    child.kill().unwrap(); // SIGKILL, with workers being passivated and restored
    child.wait().unwrap();
    assert_eq!(workers.len(), CHURN_WORKERS);
    assert_eq!(runs.len(), 300, "the child acknowledged runs before dying");

    let rt_handle = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    rt_handle.block_on(async {
        let rt = open(
            Kind::Native,
            builder_with(one_resident(dir.path()), ScriptedConfig::default()),
        );
        // Every acknowledged input is in its worker's transcript (read from the store,
        // the workers passivated), and every acknowledged run was closed.
        let mut transcripts = Vec::new();
        for w in &workers {
            transcripts.push(rt.transcript(w).await.unwrap());
        }
        for (w, run) in &runs {
            let t = &transcripts[workers.iter().position(|x| x == w).unwrap()];
            assert!(
                t.iter().any(|m| m.role == Role::User && &m.run_id == run),
                "acknowledged input of {run} is in {w}'s transcript"
            );
        }
        let epoch = rt.events().epoch();
        let page = rt
            .events()
            .replay(Cursor::new(epoch, 0), None, 10_000_000)
            .unwrap();
        // The child was churning: it passivated and restored workers all along.
        let churn = page
            .events
            .iter()
            .filter(|e| matches!(&e.event, Event::Diagnostic { code, .. } if code == "worker_activated"))
            .count();
        assert!(churn >= 100, "only {churn} activations before the kill");
        for (_, run) in &runs {
            let ended = page.events.iter().any(|e| {
                e.event.run_id() == Some(run.as_str())
                    && matches!(
                        &e.event,
                        Event::RunCompleted { .. } | Event::RunFailed { .. }
                    )
            });
            assert!(ended, "run {run} was closed");
        }
        // Each worker reactivates from what the crash left and carries on: its
        // transcript is what it was, plus the new turn.
        let mut live = rt.events().subscribe();
        for (w, before) in workers.iter().zip(&transcripts) {
            rt.send_input(w, input("after the crash")).await.unwrap();
            collect_until(&mut live, |e| run_ended(e, w)).await;
            let after = rt.transcript(w).await.unwrap();
            assert_eq!(&after[..before.len()], &before[..], "{w}");
            assert_eq!(after.len(), before.len() + 2, "{w}: input and answer");
            assert_eq!(rt.snapshot(w).await.unwrap().0.worker.status, WorkerStatus::Idle);
        }
        assert!(rt.stats().activations >= CHURN_WORKERS as u64);
        rt.shutdown().await;
    });
}
