//! `yoi-client`'s `RuntimeClient` against the real server: the client crate and the
//! runtime API agree (commands, replay pages, snapshots), and a runtime-wide stream survives a restart of the server on the
//! same data dir and address (resumed by cursor: no gap, no duplicate).

mod common;

use common::*;
use yoi_client::{RuntimeClient, StreamItem};
use yoi_protocol::{Cursor, Event, Frame, Input, WorkerSpec};

fn spec(name: &str) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: None,
        context_tokens: None,
        request_id: None,
    }
}

fn input(text: &str) -> Input {
    Input {
        text: text.into(),
        request_id: None,
    }
}

/// Event frames of the stream up to the end of a run of `worker` (statuses skipped).
async fn events_to_run_end(stream: &mut yoi_client::EventStream<Cursor>, worker: &str) -> Vec<u64> {
    let mut seqs = Vec::new();
    tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.next().await.expect("the stream goes on") {
                StreamItem::Frame(Frame::Event {
                    seq,
                    worker_id,
                    event,
                    ..
                }) => {
                    seqs.push(seq);
                    let ended = matches!(event, Event::RunCompleted { .. });
                    if ended && worker_id.as_deref() == Some(worker) {
                        return;
                    }
                }
                StreamItem::Frame(other) => panic!("unexpected frame {other:?}"),
                StreamItem::Status(_) => {}
            }
        }
    })
    .await
    .expect("the run ends in time");
    seqs
}

#[tokio::test(flavor = "multi_thread")]
async fn the_client_crate_speaks_the_runtime_api_across_a_restart() {
    let rt = start().await;
    let addr = rt.server().local_addr();
    let client = RuntimeClient::new(&format!("http://{addr}"), &rt.token).unwrap();
    let info = client.info().await.unwrap();
    assert_eq!((info.id.as_str(), info.kind.as_str()), ("local", "native"));
    let worker = client.create_worker(&spec("w")).await.unwrap();

    let mut stream = client.events_stream(None);
    let start = loop {
        match stream.next().await.expect("a first frame") {
            StreamItem::Frame(Frame::SnapshotAll { cursor, workers }) => {
                assert_eq!(workers.len(), 1);
                break cursor;
            }
            StreamItem::Frame(other) => panic!("a snapshot first, not {other:?}"),
            StreamItem::Status(_) => {}
        }
    };
    client
        .send_input(&worker.id, &input("hello"))
        .await
        .unwrap();
    let mut seen = events_to_run_end(&mut stream, &worker.id).await;

    // The replay page agrees with the stream.
    let page = client.events(Some(start), None, Some(1000)).await.unwrap();
    let replayed: Vec<u64> = page.events.iter().map(|e| e.seq).collect();
    assert_eq!(replayed[..seen.len()], seen[..]);

    // Snapshots come with the cursor they are consistent with: after the run, at or
    // past its last event, with its messages.
    let (snapshot, at) = client.snapshot(&worker.id).await.unwrap();
    assert_eq!(snapshot.worker.id, worker.id);
    assert_eq!(snapshot.transcript.len(), 2);
    assert!(at.epoch == start.epoch && at.seq >= *seen.last().unwrap());
    let (all, at_all) = client.snapshot_all().await.unwrap();
    assert_eq!(all.len(), 1);
    assert!(at_all.seq >= at.seq);
    let missing = client.snapshot("w_nope").await.unwrap_err();
    assert_eq!(missing.code(), yoi_protocol::ErrorCode::WorkerNotFound);

    // Restart on the same data dir and address; the stream reconnects by itself.
    let dir = rt.stop().await;
    let rt = start_in(dir, |c| c.bind = addr).await;
    client
        .send_input(&worker.id, &input("again"))
        .await
        .unwrap();
    seen.extend(events_to_run_end(&mut stream, &worker.id).await);
    // Every event from the snapshot on, once and in order, across both servers.
    let want: Vec<u64> = (start.seq + 1..=*seen.last().unwrap()).collect();
    assert_eq!(seen, want, "no gap, no duplicate");
    assert!(rt.last_seq() >= *seen.last().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_deleted_over_the_runtime_api_is_gone_and_its_stream_says_so() {
    let rt = start().await;
    let addr = rt.server().local_addr();
    let client = RuntimeClient::new(&format!("http://{addr}"), &rt.token).unwrap();
    let worker = client.create_worker(&spec("doomed")).await.unwrap();
    let mut stream = client.worker_stream(&worker.id, None);
    loop {
        match stream.next().await.expect("a first frame") {
            StreamItem::Frame(Frame::Snapshot { .. }) => break,
            StreamItem::Frame(other) => panic!("a snapshot first, not {other:?}"),
            StreamItem::Status(_) => {}
        }
    }
    client.delete_worker(&worker.id).await.unwrap();
    let deleted = tokio::time::timeout(PATIENCE, async {
        loop {
            match stream.next().await.expect("the stream goes on") {
                StreamItem::Frame(Frame::Event {
                    event: Event::WorkerDeleted { name },
                    ..
                }) => return name,
                StreamItem::Frame(_) | StreamItem::Status(_) => {}
            }
        }
    })
    .await
    .expect("worker_deleted in time");
    assert_eq!(deleted, "doomed");
    let gone = client.worker(&worker.id).await.unwrap_err();
    assert_eq!(
        gone.code(),
        yoi_protocol::ErrorCode::WorkerNotFound,
        "{gone}"
    );
    assert!(client.workers().await.unwrap().is_empty());
    let again = client.delete_worker(&worker.id).await.unwrap_err();
    assert_eq!(
        again.code(),
        yoi_protocol::ErrorCode::WorkerNotFound,
        "{again}"
    );
}
