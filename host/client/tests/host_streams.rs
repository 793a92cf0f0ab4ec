//! `EventStream` against a real in-process host: resuming across host restarts with no
//! gap and no duplicate (compared with the event log), lagged consumers, cursor
//! outcomes passed through, permanent errors ending the stream.

mod common;

use common::*;
use yoi_client::{ClientError, ConnState, Disconnect, StreamCursor};
use yoi_protocol::{Cursor, ErrorCode, Event, Frame, HostCursor};

fn interrupted<C>(frame: &Frame<C>) -> bool {
    matches!(
        frame,
        Frame::Event { event: Event::RunFailed { error, .. }, .. } if error.code == "interrupted"
    )
}

/// Reads a few frames, then restarts the host (the stream is not read meanwhile).
async fn read_then_restart<C: StreamCursor>(
    watch: &mut Watch<C>,
    h: &mut TestHost,
) -> Vec<Frame<C>> {
    let mut got = Vec::new();
    for _ in 0..10 {
        got.push(watch.frame().await);
    }
    h.restart().await;
    got
}

/// Asserts that `got` are the log's events after `start` (of `worker`, if given) up to
/// the last one received: none missing, none twice, in order. Returns their seqs.
async fn assert_exactly_the_log<C: StreamCursor>(
    h: &TestHost,
    start: Cursor,
    worker: Option<&str>,
    got: &[Frame<C>],
) -> Vec<u64> {
    let received = seqs(got);
    let last = *received.last().expect("events were received");
    let logged: Vec<u64> = h
        .log_seqs(start, worker)
        .await
        .into_iter()
        .take_while(|s| *s <= last)
        .collect();
    assert_eq!(
        received, logged,
        "every event of the log exactly once, in order"
    );
    received
}

#[tokio::test(flavor = "multi_thread")]
async fn a_worker_stream_survives_a_host_restart_without_gap_or_duplicate() {
    // Slow tokens, so the host goes down in the middle of a run.
    let mut h = start_with(|c| local_settings(c).scripted.token_delay_ms = 5).await;
    let client = h.client();
    let local = client.runtime("local");
    let w = local.create_worker(&spec("restart")).await.unwrap();
    let mut watch = Watch::new(local.worker_stream(&w.id, None));
    let Frame::Snapshot { cursor: start, .. } = watch.frame().await else {
        panic!("a stream without a cursor starts with a snapshot");
    };

    // A run far longer than the test: the restart interrupts it.
    let first = local
        .send_input(&w.id, &input("stream 4000"))
        .await
        .unwrap();
    let mut got = read_then_restart(&mut watch, &mut h).await;
    // The rest of the interrupted run (closed as `interrupted` by the restart), then a
    // whole run on the restarted host.
    got.extend(watch.events_until(|f| run_ended(f, &first)).await);
    assert!(interrupted(got.last().unwrap()), "{:?}", got.last());
    let second = local
        .send_input(&w.id, &input("hello again"))
        .await
        .unwrap();
    got.extend(watch.events_until(|f| run_ended(f, &second)).await);

    let received = assert_exactly_the_log(&h, start, Some(&w.id), &got).await;
    assert!(
        watch.connections() >= 2,
        "the stream reconnected: {:?}",
        watch.statuses
    );
    assert!(
        watch.statuses.iter().any(|s| matches!(
            s,
            ConnState::Reconnecting { reason: Disconnect::Failed(e), .. } if e.code() == ErrorCode::ShuttingDown
        )),
        "the host said it was shutting down: {:?}",
        watch.statuses
    );
    assert_eq!(
        watch.stream.cursor().unwrap().seq,
        *received.last().unwrap()
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn the_multiplexed_stream_survives_a_host_restart_without_gap_or_duplicate() {
    let mut h = start_with(|c| local_settings(c).scripted.token_delay_ms = 5).await;
    let client = h.client();
    let local = client.runtime("local");
    let a = local.create_worker(&spec("a")).await.unwrap();
    let b = local.create_worker(&spec("b")).await.unwrap();
    let mut watch = Watch::new(client.all_stream(None));
    let Frame::SnapshotAll { cursor, workers } = watch.frame().await else {
        panic!("the multiplexed stream starts with snapshot_all");
    };
    assert_eq!(workers.len(), 2);
    let start = cursor.get("local").unwrap();

    let run_a = local
        .send_input(&a.id, &input("stream 4000"))
        .await
        .unwrap();
    let run_b = local
        .send_input(&b.id, &input("stream 4000"))
        .await
        .unwrap();
    let mut got = read_then_restart(&mut watch, &mut h).await;
    let mut ended = 0;
    got.extend(
        watch
            .events_until(|f| {
                ended += usize::from(run_ended(f, &run_a) || run_ended(f, &run_b));
                ended == 2
            })
            .await,
    );
    assert_eq!(got.iter().filter(|f| interrupted(f)).count(), 2);
    let last_run = local
        .send_input(&b.id, &input("after the restart"))
        .await
        .unwrap();
    got.extend(watch.events_until(|f| run_ended(f, &last_run)).await);

    let received = assert_exactly_the_log(&h, start, None, &got).await;
    assert!(watch.connections() >= 2, "{:?}", watch.statuses);
    let resume: &HostCursor = watch.stream.cursor().unwrap();
    assert_eq!(resume.get("local").unwrap().seq, *received.last().unwrap());
}

#[tokio::test(flavor = "multi_thread")]
async fn a_lagged_stream_reconnects_at_once_and_loses_nothing() {
    const RUNS: u32 = 16;
    let h = start_with(|c| {
        local_settings(c).log.broadcast_capacity = 2.try_into().unwrap();
        c.streams.write_timeout_ms = 600_000.try_into().unwrap();
        c.max_body_bytes = (4 << 20).try_into().unwrap();
        local_settings(c).limits.max_input_bytes = 2 << 20;
    })
    .await;
    let client = h.client();
    let local = client.runtime("local");
    let w = local.create_worker(&spec("w")).await.unwrap();
    let mut watch = Watch::new(client.all_stream(None));
    let Frame::SnapshotAll { cursor, .. } = watch.frame().await else {
        panic!("snapshot_all first");
    };
    let start = cursor.get("local").unwrap();

    // Far more than socket buffers hold while the stream is not read.
    let big = "x".repeat(1 << 20);
    for run in 1..=RUNS {
        local.send_input(&w.id, &input(&big)).await.unwrap();
        wait_idle(&client, &w.id, run).await;
    }
    let logged = h.log_seqs(start, None).await;
    let last = *logged.last().unwrap();
    let mut received = Vec::new();
    while received.last() != Some(&last) {
        received.extend(seqs(&[watch.frame().await]));
    }
    assert_eq!(
        received, logged,
        "every event exactly once across the connections"
    );
    assert!(
        watch.statuses.iter().any(|s| matches!(
            s,
            ConnState::Reconnecting { reason: Disconnect::Lagged, after, .. } if after.is_zero()
        )),
        "the stream lagged and reconnected at once: {:?}",
        watch.statuses
    );
}

#[tokio::test(flavor = "multi_thread")]
async fn cursor_outcomes_pass_through_and_permanent_errors_end_the_stream() {
    let h = start().await;
    let client = h.client();
    let local = client.runtime("local");
    let w = local.create_worker(&spec("w")).await.unwrap();

    // A cursor of another event store: the diagnostic, then a fresh snapshot.
    let foreign = Cursor::new(0x0bad_cafe, 3);
    let mut watch = Watch::new(local.worker_stream(&w.id, Some(foreign)));
    let Frame::Diagnostic { code, .. } = watch.frame().await else {
        panic!("cursor_unknown first");
    };
    assert_eq!(code, ErrorCode::CursorUnknown);
    let Frame::Snapshot { cursor, worker, .. } = watch.frame().await else {
        panic!("then a fresh snapshot");
    };
    assert_eq!(worker.id, w.id);
    assert_eq!(
        watch.stream.cursor(),
        Some(&cursor),
        "the snapshot resets the position"
    );
    let run = local.send_input(&w.id, &input("hi")).await.unwrap();
    let events = watch.events_until(|f| run_ended(f, &run)).await;
    assert_eq!(seqs(&events)[0], cursor.seq + 1);

    // Beyond the end of the log: permanent.
    let ahead = Cursor::new(cursor.epoch, cursor.seq + 1_000_000);
    let e = gives_up(local.worker_stream(&w.id, Some(ahead))).await;
    assert_eq!(e.code(), ErrorCode::CursorAhead);
    assert!(matches!(e, ClientError::Stream { .. }));
    // No such worker, no such runtime: permanent.
    let e = gives_up(local.worker_stream("w_404", None)).await;
    assert_eq!(e.code(), ErrorCode::WorkerNotFound);
    let e = gives_up(client.runtime("nowhere").worker_stream(&w.id, None)).await;
    assert_eq!(e.code(), ErrorCode::RuntimeNotFound);
}

/// Drives a stream that must give up before any frame; returns why.
async fn gives_up<C: StreamCursor>(stream: yoi_client::EventStream<C>) -> ClientError {
    let mut watch = Watch::new(stream);
    assert_eq!(watch.status().await, Some(ConnState::Connecting));
    assert_eq!(watch.status().await, Some(ConnState::Connected));
    let Some(ConnState::GaveUp(e)) = watch.status().await else {
        panic!("expected the stream to give up");
    };
    assert_eq!(watch.status().await, None, "nothing after giving up");
    e
}
