//! kill -9 of a process holding a LocalRuntime, then reopen: nothing acknowledged is
//! lost, runs in flight end `interrupted`, and cursors taken before the crash resume.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::Duration;

use common::*;
use yoi_driver::ScriptedConfig;
use yoi_protocol::{Cursor, Event, Role, WorkerStatus};

const CHILD_ENV: &str = "YOI_CRASH_CHILD_DIR";

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
