//! LocalRuntime through its public API: concurrency, cancel, timeouts, restart,
//! replay, on both cores.

mod common;

use std::sync::{Arc, Condvar, Mutex};
use std::time::Duration;

use common::*;
use tokio::sync::broadcast;
use yoi_driver::{Cancel, ScriptedConfig, ToolOutput};
use yoi_eventlog::LogConfig;
use yoi_protocol::{
    Completion, Cursor, Envelope, Event, Input, ModelRequest, Role, StopReason, WorkerInfo,
    WorkerStatus,
};
use yoi_runtime::{LocalRuntime, LocalRuntimeConfig, RuntimeError, ToolRunner};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn many_workers_run_concurrently_on_both_cores() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let rt = open(kind, builder(dir.path(), ScriptedConfig::default()));
        let mut live = rt.events().subscribe();
        let mut workers = Vec::new();
        for i in 0..40 {
            let w = rt.create_worker(spec(&format!("w{i}"), &[])).await.unwrap();
            workers.push(w.id);
        }
        for w in &workers {
            rt.send_input(w, input("stream 25")).await.unwrap();
        }
        let seen = collect_runs(&mut live, workers.len()).await;
        for w in &workers {
            let deltas: String = seen
                .iter()
                .filter(|e| e.worker_id.as_deref() == Some(w.as_str()))
                .filter_map(|e| match &e.event {
                    Event::TextDelta { text, .. } => Some(text.as_str()),
                    _ => None,
                })
                .collect();
            let transcript = rt.transcript(w).await.unwrap();
            assert_eq!(transcript.len(), 2, "{kind:?}: user + assistant");
            assert_eq!(transcript[1].role, Role::Assistant);
            assert_eq!(
                transcript[1].content, deltas,
                "{kind:?}: deltas add up to the answer"
            );
            assert_eq!(rt.get_worker(w).await.unwrap().status, WorkerStatus::Idle);
        }
        // Sequence numbers are consecutive and every event reached the live stream.
        for pair in seen.windows(2) {
            assert_eq!(pair[1].seq, pair[0].seq + 1);
        }
        // A model call's completions reach the core in batches, and events are committed
        // in groups (a command's events alone are several per commit).
        let stats = rt.stats();
        assert!(
            stats.deliveries < stats.completions,
            "{kind:?}: {} deliver calls for {} completions",
            stats.deliveries,
            stats.completions
        );
        assert!(
            stats.commits < stats.events_appended,
            "{kind:?}: {} commits for {} events",
            stats.commits,
            stats.events_appended
        );
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_tool_request_runs_the_tool_in_the_workspace() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let rt = open(kind, builder(dir.path(), ScriptedConfig::default()));
        let mut live = rt.events().subscribe();
        let w = rt
            .create_worker(spec("tools", &["write_file", "read_file"]))
            .await
            .unwrap();
        rt.send_input(&w.id, input("write notes.txt: hello from yoi"))
            .await
            .unwrap();
        collect_until(&mut live, |e| run_ended(e, &w.id)).await;
        rt.send_input(&w.id, input("read notes.txt")).await.unwrap();
        let seen = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
        let result = tool_result(&seen).expect("a tool result");
        assert_eq!(result, ("hello from yoi".to_string(), false), "{kind:?}");
        let on_disk =
            std::fs::read_to_string(dir.path().join("workspaces").join(&w.id).join("notes.txt"))
                .unwrap();
        assert_eq!(on_disk, "hello from yoi");
        rt.shutdown().await;
    }
}

/// A provider that tells when one of its calls is dropped (finished or aborted).
struct Watched<P> {
    inner: P,
    dropped: Arc<tokio::sync::Notify>,
}

impl<P> Watched<P> {
    fn new(inner: P) -> Self {
        Watched {
            inner,
            dropped: Arc::new(tokio::sync::Notify::new()),
        }
    }
}

struct NotifyOnDrop(Arc<tokio::sync::Notify>);

impl Drop for NotifyOnDrop {
    fn drop(&mut self) {
        // `notify_one` keeps a permit when nobody waits yet.
        self.0.notify_one();
    }
}

impl<P: yoi_driver::Provider> yoi_driver::Provider for Watched<P> {
    fn call<'a>(
        &'a self,
        request: ModelRequest,
        out: tokio::sync::mpsc::Sender<Completion>,
    ) -> yoi_driver::BoxFuture<'a, ()> {
        let guard = NotifyOnDrop(self.dropped.clone());
        Box::pin(async move {
            let _guard = guard;
            self.inner.call(request, out).await
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tools_cannot_leave_the_workspace_through_the_runtime() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("secret.txt"), "the launch codes").unwrap();
        let rt = open(kind, builder(dir.path(), ScriptedConfig::default()));
        let mut live = rt.events().subscribe();
        let w = rt
            .create_worker(spec("nosy", &["read_file", "list_dir"]))
            .await
            .unwrap();
        for attempt in ["read ../../secret.txt", "read /etc/hostname"] {
            rt.send_input(&w.id, input(attempt)).await.unwrap();
            let seen = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
            let (output, is_error) = tool_result(&seen).expect("a tool result");
            assert!(is_error, "{kind:?} {attempt}: {output}");
            let leaked = seen
                .iter()
                .any(|e| format!("{:?}", e.event).contains("launch codes"));
            assert!(!leaked, "{kind:?} {attempt}: the secret reached an event");
        }
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_stream_stops_the_model_at_once() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let slow = ScriptedConfig {
            token_delay: Duration::from_millis(5),
            ..ScriptedConfig::default()
        };
        let watched = Arc::new(Watched::new(yoi_driver::ScriptedModel::new(slow)));
        let rt = open(
            kind,
            LocalRuntime::builder(LocalRuntimeConfig::new(dir.path()))
                .provider("scripted", watched.clone()),
        );
        let mut live = rt.events().subscribe();
        let w = rt.create_worker(spec("c", &[])).await.unwrap();
        let run = rt.send_input(&w.id, input("stream 100000")).await.unwrap();
        collect_until(&mut live, |e| matches!(e.event, Event::TextDelta { .. })).await;
        assert_eq!(rt.cancel(&w.id).await.unwrap(), run);
        let seen = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
        assert!(matches!(
            seen.last().unwrap().event,
            Event::RunCancelled { .. }
        ));
        // The model call itself was dropped, not left streaming into the void.
        tokio::time::timeout(PATIENCE, watched.dropped.notified())
            .await
            .expect("the cancelled model call is dropped");
        // Nothing of the cancelled run comes after its end, even with another run
        // streaming meanwhile.
        let end = seen.last().unwrap().seq;
        rt.send_input(&w.id, input("stream 50")).await.unwrap();
        let next = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
        assert!(
            next.iter()
                .filter(|e| e.seq > end)
                .all(|e| e.event.run_id() != Some(run.as_str())),
            "{kind:?}: the cancelled run produced events after run_cancelled"
        );
        assert!(matches!(
            rt.cancel(&w.id).await,
            Err(RuntimeError::Rejected(yoi_protocol::CoreError::NotRunning))
        ));
        rt.shutdown().await;
    }
}

/// A tool that blocks until released (or a long while passes), to test cancel and
/// timeouts mid-tool.
#[derive(Default)]
struct GateTool {
    open: Mutex<bool>,
    changed: Condvar,
    calls: Mutex<u32>,
}

impl GateTool {
    fn release(&self) {
        *self.open.lock().unwrap() = true;
        self.changed.notify_all();
    }
}

impl ToolRunner for GateTool {
    fn run(&self, _worker: &str, _name: &str, _args: &str, _cancel: &Cancel) -> ToolOutput {
        *self.calls.lock().unwrap() += 1;
        let guard = self.open.lock().unwrap();
        let (_guard, _) = self
            .changed
            .wait_timeout_while(guard, PATIENCE, |open| !*open)
            .unwrap();
        ToolOutput::ok("released")
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancel_mid_tool_closes_the_run_with_a_cancelled_result() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(GateTool::default());
    let config = LocalRuntimeConfig::new(dir.path());
    let (rt, mut live, w) = with_tools(Kind::Wasm, config, gate.clone()).await;
    rt.send_input(&w.id, input("list files")).await.unwrap();
    collect_until(&mut live, |e| {
        matches!(e.event, Event::ToolCallReady { .. })
    })
    .await;
    rt.cancel(&w.id).await.unwrap();
    let seen = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
    gate.release();
    assert_eq!(tool_result(&seen), Some(("cancelled".to_string(), true)));
    assert!(matches!(
        seen.last().unwrap().event,
        Event::RunCancelled { .. }
    ));
    let transcript = rt.transcript(&w.id).await.unwrap();
    assert_eq!(
        transcript.last().unwrap().role,
        Role::Tool,
        "every tool call keeps a result"
    );
    rt.shutdown().await;
}

/// A tool that works until its call is cancelled, then reports that it noticed.
#[derive(Default)]
struct PatientTool {
    /// (started, stopped)
    state: Mutex<(bool, bool)>,
    changed: Condvar,
}

impl PatientTool {
    /// Waits (up to PATIENCE) until `done` holds for (started, stopped).
    fn wait(&self, what: &str, done: impl Fn(&(bool, bool)) -> bool) {
        let guard = self.state.lock().unwrap();
        let (guard, _) = self
            .changed
            .wait_timeout_while(guard, PATIENCE, |s| !done(s))
            .unwrap();
        assert!(done(&guard), "{what}");
    }
}

impl ToolRunner for PatientTool {
    fn run(&self, _worker: &str, _name: &str, _args: &str, cancel: &Cancel) -> ToolOutput {
        self.state.lock().unwrap().0 = true;
        self.changed.notify_all();
        while !cancel.is_cancelled() {
            std::thread::sleep(Duration::from_millis(1));
        }
        self.state.lock().unwrap().1 = true;
        self.changed.notify_all();
        ToolOutput::error("cancelled")
    }
}

/// Cancelling a run, or a tool timing out, tells the tool: a cooperative tool gives its
/// thread back at once instead of running on for nobody.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cancelled_or_timed_out_tool_is_told_to_stop() {
    for timeout in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let tool = Arc::new(PatientTool::default());
        let mut config = LocalRuntimeConfig::new(dir.path());
        if timeout {
            config.driver.tool_timeout = Duration::from_millis(50);
        }
        let (rt, mut live, w) = with_tools(Kind::Native, config, tool.clone()).await;
        rt.send_input(&w.id, input("ls")).await.unwrap();
        if !timeout {
            // Cancel once the tool runs (a call cancelled before it starts never runs).
            let started = tool.clone();
            tokio::task::spawn_blocking(move || started.wait("the tool starts", |s| s.0))
                .await
                .unwrap();
            rt.cancel(&w.id).await.unwrap();
        }
        collect_until(&mut live, |e| run_ended(e, &w.id)).await;
        let tool = tool.clone();
        tokio::task::spawn_blocking(move || {
            tool.wait("the tool was never told its call ended", |s| s.1)
        })
        .await
        .unwrap();
        rt.shutdown().await;
    }
}

/// Creates a worker on `model`, runs one input and returns the worker and the run's
/// events.
async fn failing_run(
    rt: &LocalRuntime,
    model: &str,
) -> (yoi_protocol::WorkerInfo, Vec<Arc<yoi_protocol::Envelope>>) {
    let mut live = rt.events().subscribe();
    let mut s = spec("f", &[]);
    s.model = model.into();
    let w = rt.create_worker(s).await.unwrap();
    rt.send_input(&w.id, input("go")).await.unwrap();
    let seen = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
    (w, seen)
}

/// The error code of the `run_failed` that ends `seen`.
fn failure_code(seen: &[Arc<yoi_protocol::Envelope>]) -> String {
    match &seen.last().unwrap().event {
        Event::RunFailed { error, .. } => error.code.clone(),
        other => panic!("expected run_failed, got {other:?}"),
    }
}

/// A model that streams without end: its call is dropped past the output limit and the
/// run fails with a typed error, instead of growing the core until it runs out of memory.
struct EndlessModel;

impl yoi_driver::Provider for EndlessModel {
    fn call<'a>(
        &'a self,
        request: ModelRequest,
        out: tokio::sync::mpsc::Sender<Completion>,
    ) -> yoi_driver::BoxFuture<'a, ()> {
        Box::pin(async move {
            let text = "x".repeat(1024);
            loop {
                let delta = Completion::TextDelta {
                    call_id: request.call_id,
                    text: text.clone(),
                };
                if out.send(delta).await.is_err() {
                    return;
                }
            }
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_streaming_past_the_output_limit_fails_the_run() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let mut config = LocalRuntimeConfig::new(dir.path());
        config.driver.max_model_output_bytes = 64 * 1024;
        let rt = open(
            kind,
            LocalRuntime::builder(config).provider("endless", Arc::new(EndlessModel)),
        );
        let (w, seen) = failing_run(&rt, "endless").await;
        assert_eq!(failure_code(&seen), "output_too_large", "{kind:?}");
        let streamed: usize = seen
            .iter()
            .map(|e| match &e.event {
                Event::TextDelta { text, .. } => text.len(),
                _ => 0,
            })
            .sum();
        assert!(
            streamed <= 64 * 1024,
            "{kind:?}: {streamed} bytes reached the core"
        );
        // The worker is usable again.
        assert_eq!(
            rt.get_worker(&w.id).await.unwrap().status,
            WorkerStatus::Idle
        );
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_slow_tool_times_out_as_an_error_result() {
    let dir = tempfile::tempdir().unwrap();
    let gate = Arc::new(GateTool::default());
    let mut config = LocalRuntimeConfig::new(dir.path());
    config.driver.tool_timeout = Duration::from_millis(50);
    let (rt, mut live, w) = with_tools(Kind::Native, config, gate.clone()).await;
    rt.send_input(&w.id, input("ls")).await.unwrap();
    let seen = collect_until(&mut live, |e| run_ended(e, &w.id)).await;
    gate.release();
    let (output, is_error) = tool_result(&seen).unwrap();
    assert!(is_error && output.contains("timed out"), "{output}");
    // The model still answers after the failed tool.
    assert!(matches!(
        seen.last().unwrap().event,
        Event::RunCompleted {
            stop_reason: StopReason::EndTurn,
            ..
        }
    ));
    rt.shutdown().await;
}

/// A model that says one word and then never finishes.
struct StallingModel;

impl yoi_driver::Provider for StallingModel {
    fn call<'a>(
        &'a self,
        request: ModelRequest,
        out: tokio::sync::mpsc::Sender<Completion>,
    ) -> yoi_driver::BoxFuture<'a, ()> {
        Box::pin(async move {
            let _ = out
                .send(Completion::TextDelta {
                    call_id: request.call_id,
                    text: "thinking".into(),
                })
                .await;
            std::future::pending::<()>().await;
        })
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_model_that_stops_producing_fails_the_run_with_timeout() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalRuntimeConfig::new(dir.path());
    config.driver.model_idle_timeout = Duration::from_millis(50);
    let rt = open(
        Kind::Native,
        LocalRuntime::builder(config).provider("stalling", Arc::new(StallingModel)),
    );
    let (_, seen) = failing_run(&rt, "stalling").await;
    assert_eq!(failure_code(&seen), "timeout");
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_models_and_bad_commands_get_typed_errors() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(Kind::Wasm, builder(dir.path(), ScriptedConfig::default()));
    let mut s = spec("x", &[]);
    s.model = "gpt-nonexistent".into();
    assert!(matches!(
        rt.create_worker(s).await,
        Err(RuntimeError::UnknownModel(_))
    ));
    assert!(matches!(
        rt.send_input("w_404", input("hi")).await,
        Err(RuntimeError::Rejected(
            yoi_protocol::CoreError::WorkerNotFound { .. }
        ))
    ));
    let w = rt.create_worker(spec("x", &[])).await.unwrap();
    let err = rt.send_input(&w.id, input("   ")).await.unwrap_err();
    assert_eq!(err.code(), yoi_protocol::ErrorCode::InvalidRequest);
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_repeated_request_id_is_not_run_twice() {
    let dir = tempfile::tempdir().unwrap();
    let rt = open(Kind::Wasm, builder(dir.path(), ScriptedConfig::default()));
    let mut live = rt.events().subscribe();
    let w = rt.create_worker(spec("i", &[])).await.unwrap();
    let req = Input {
        text: "hello".into(),
        request_id: Some("req-1".into()),
    };
    let first = rt.send_input(&w.id, req.clone()).await.unwrap();
    let again = rt.send_input(&w.id, req.clone()).await.unwrap();
    assert_eq!(first, again);
    collect_until(&mut live, |e| run_ended(e, &w.id)).await;
    assert_eq!(rt.send_input(&w.id, req).await.unwrap(), first);
    assert_eq!(rt.get_worker(&w.id).await.unwrap().run_count, 1);
    rt.shutdown().await;
}

/// With retention on, old deltas are pruned as the runtime runs; transcripts survive it
/// (and a restart after it), and a cursor from before the horizon is refused as expired.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn retention_prunes_deltas_but_never_transcripts() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let config = || {
            let mut config = LocalRuntimeConfig::new(dir.path());
            config.log = LogConfig {
                retain_events: Some(50),
                prune_batch: 64,
                ..LogConfig::default()
            };
            builder_with(config, ScriptedConfig::default())
        };
        let rt = open(kind, config());
        let mut live = rt.events().subscribe();
        let w = rt.create_worker(spec("r", &[])).await.unwrap();
        let start = rt.events().last_cursor();
        // Retention runs every few hundred actor batches: keep the runtime busy until it
        // has pruned something.
        let mut runs = 0;
        tokio::time::timeout(PATIENCE, async {
            while rt.events().horizon() == 0 {
                rt.send_input(&w.id, input("stream 20")).await.unwrap();
                collect_until(&mut live, |e| run_ended(e, &w.id)).await;
                runs += 1;
            }
        })
        .await
        .expect("retention ran");
        let transcript = rt.transcript(&w.id).await.unwrap();
        assert_eq!(transcript.len(), 2 * runs, "{kind:?}");
        assert!(matches!(
            rt.events().replay(start, None, 10),
            Err(yoi_eventlog::ReplayError::Expired { .. })
        ));
        rt.shutdown().await;

        let rt = open(kind, config());
        assert_eq!(rt.transcript(&w.id).await.unwrap(), transcript, "{kind:?}");
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reopening_restores_workers_transcripts_and_cursors() {
    for kind in BOTH {
        let dir = tempfile::tempdir().unwrap();
        let (workers, transcripts, cursor) = {
            let rt = open(kind, builder(dir.path(), ScriptedConfig::default()));
            let mut live = rt.events().subscribe();
            let a = rt.create_worker(spec("a", &["list_dir"])).await.unwrap();
            let b = rt.create_worker(spec("b", &[])).await.unwrap();
            rt.send_input(&a.id, input("ls")).await.unwrap();
            collect_until(&mut live, |e| run_ended(e, &a.id)).await;
            rt.send_input(&b.id, input("hello there")).await.unwrap();
            collect_until(&mut live, |e| run_ended(e, &b.id)).await;
            rt.stop(&b.id).await.unwrap();
            let workers = rt.list_workers().await.unwrap();
            let transcripts = vec![
                rt.transcript(&a.id).await.unwrap(),
                rt.transcript(&b.id).await.unwrap(),
            ];
            let cursor = rt.events().last_cursor();
            rt.shutdown().await;
            (workers, transcripts, cursor)
        };
        let rt = open(kind, builder(dir.path(), ScriptedConfig::default()));
        assert_eq!(rt.list_workers().await.unwrap(), workers, "{kind:?}");
        assert_eq!(rt.transcript(&workers[0].id).await.unwrap(), transcripts[0]);
        assert_eq!(rt.transcript(&workers[1].id).await.unwrap(), transcripts[1]);
        assert_eq!(
            rt.events().last_cursor(),
            cursor,
            "nothing new was appended"
        );
        // The old cursor still resumes, and seq continues after it.
        let page = rt.events().replay(cursor, None, 100).unwrap();
        assert!(page.events.is_empty());
        let c = rt.create_worker(spec("c", &[])).await.unwrap();
        let page = rt.events().replay(cursor, None, 100).unwrap();
        assert_eq!(page.events.len(), 1);
        assert_eq!(page.events[0].seq, cursor.seq + 1);
        assert_eq!(page.events[0].worker_id.as_deref(), Some(c.id.as_str()));
        rt.shutdown().await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replay_across_window_and_store_equals_what_was_live() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = LocalRuntimeConfig::new(dir.path());
    config.log = LogConfig {
        window_capacity: 64,
        ..LogConfig::default()
    };
    let rt = open(Kind::Wasm, builder_with(config, ScriptedConfig::default()));
    let start = rt.events().last_cursor();
    let mut live = rt.events().subscribe();
    let mut ids = Vec::new();
    for i in 0..5 {
        ids.push(
            rt.create_worker(spec(&format!("r{i}"), &[]))
                .await
                .unwrap()
                .id,
        );
    }
    for id in &ids {
        rt.send_input(id, input("stream 40")).await.unwrap();
    }
    let seen = collect_runs(&mut live, ids.len()).await;
    assert!(seen.len() > 64 * 3, "the workload outgrows the window");
    // All of it, in small pages: the early pages come from the store, the last from
    // the window.
    let mut replayed = Vec::new();
    let mut after = start;
    loop {
        let page = rt.events().replay(after, None, 17).unwrap();
        replayed.extend(page.events.iter().map(|e| (**e).clone()));
        after = page.next;
        if !page.more {
            break;
        }
    }
    let live: Vec<_> = seen.iter().map(|e| (**e).clone()).collect();
    assert_eq!(replayed.len(), live.len());
    assert!(
        replayed == live,
        "replayed envelopes differ from the live ones"
    );
    // One worker's events only.
    let one: Vec<_> = live
        .iter()
        .filter(|e| e.worker_id.as_deref() == Some(ids[2].as_str()))
        .cloned()
        .collect();
    let page = rt.events().replay(start, Some(&ids[2]), 10_000).unwrap();
    let got: Vec<_> = page.events.iter().map(|e| (**e).clone()).collect();
    assert_eq!(got, one);
    // A cursor from another store is recognised.
    let foreign = Cursor::new(rt.events().epoch() ^ 1, 1);
    assert!(rt.events().replay(foreign, None, 10).is_err());
    rt.shutdown().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn snapshot_and_cursor_are_consistent_mid_run() {
    let dir = tempfile::tempdir().unwrap();
    let slow = ScriptedConfig {
        token_delay: Duration::from_millis(2),
        ..ScriptedConfig::default()
    };
    let rt = open(Kind::Wasm, builder(dir.path(), slow));
    let mut live = rt.events().subscribe();
    let w = rt.create_worker(spec("s", &[])).await.unwrap();
    rt.send_input(&w.id, input("stream 60")).await.unwrap();
    collect_until(&mut live, |e| matches!(e.event, Event::TextDelta { .. })).await;
    let (snapshot, cursor) = rt.snapshot(&w.id).await.unwrap();
    let in_flight = snapshot.in_flight.expect("the run is in flight");
    // Snapshot text + the deltas after the cursor = the whole answer.
    collect_until(&mut live, |e| run_ended(e, &w.id)).await;
    let mut text = in_flight.text.clone();
    let mut after = cursor;
    loop {
        let page = rt.events().replay(after, Some(&w.id), 1000).unwrap();
        for e in &page.events {
            if let Event::TextDelta { text: t, .. } = &e.event {
                text.push_str(t);
            }
        }
        after = page.next;
        if !page.more {
            break;
        }
    }
    let transcript = rt.transcript(&w.id).await.unwrap();
    assert_eq!(text, transcript.last().unwrap().content);
    rt.shutdown().await;
}

#[test]
fn error_codes_of_runtime_errors() {
    use yoi_protocol::{CoreError, ErrorCode};
    assert_eq!(
        RuntimeError::Rejected(CoreError::Busy {
            run_id: "r_1".into()
        })
        .code(),
        ErrorCode::WorkerBusy
    );
    assert_eq!(RuntimeError::ShuttingDown.code(), ErrorCode::ShuttingDown);
    assert_eq!(
        RuntimeError::UnknownModel("m".into()).code(),
        ErrorCode::InvalidRequest
    );
}

/// A runtime of `kind` with `config` whose tools are `tools`, its live feed, and a worker
/// allowed `list_dir`.
async fn with_tools(
    kind: Kind,
    config: LocalRuntimeConfig,
    tools: Arc<dyn ToolRunner>,
) -> (LocalRuntime, broadcast::Receiver<Arc<Envelope>>, WorkerInfo) {
    let rt = open(
        kind,
        builder_with(config, ScriptedConfig::default()).tools(tools),
    );
    let live = rt.events().subscribe();
    let w = rt.create_worker(spec("t", &["list_dir"])).await.unwrap();
    (rt, live, w)
}

/// The first tool result among `seen`: its output and whether it is an error.
fn tool_result(seen: &[Arc<Envelope>]) -> Option<(String, bool)> {
    seen.iter().find_map(|e| match &e.event {
        Event::ToolResult {
            output, is_error, ..
        } => Some((output.clone(), *is_error)),
        _ => None,
    })
}
