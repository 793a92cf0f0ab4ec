//! The effect driver: runs a core's model and tool calls concurrently on the tokio
//! runtime and sends their completions to the actor.
//!
//! Every call is a task with an abort handle, so `abort` stops a model stream or a tool
//! at once. A model call that produces nothing for `model_idle_timeout` fails with code
//! `timeout`; a tool call that takes longer than `tool_timeout` ends as an error result.
//! Completions go to the actor over their own bounded channel (commands have theirs, which
//! the actor serves first): a slow actor slows the producers, nothing queues without
//! bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::{Semaphore, mpsc};
use tokio::task::AbortHandle;
use tokio::time::Instant;
use yoi_driver::{Cancel, ModelCatalog, Provider, ToolOutput, Workspaces};
use yoi_protocol::{Completion, Effect, ErrorInfo, ModelRequest, ToolRequest};

use crate::actor::Completed;

/// Timeouts and limits of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Longest a tool call may run (waiting for a free tool thread included).
    pub tool_timeout: Duration,
    /// Longest a model call may go without producing anything.
    pub model_idle_timeout: Duration,
    /// Tool calls running at once (each on a blocking thread); more wait their turn.
    pub max_concurrent_tools: usize,
    /// Most bytes of text, reasoning and tool-call arguments one model call may stream;
    /// beyond it the call is dropped and the run fails with code `output_too_large`.
    pub max_model_output_bytes: usize,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tool_timeout: Duration::from_secs(30),
            model_idle_timeout: Duration::from_secs(120),
            max_concurrent_tools: 16,
            max_model_output_bytes: 4 << 20,
        }
    }
}

/// Runs tool calls. The default is [`Workspaces`]: the built-in tools on a per-worker
/// workspace directory.
///
/// Called on a blocking thread, at most [`DriverConfig::max_concurrent_tools`] at once.
/// `cancel` is set when the call is cancelled or times out: its result is no longer
/// wanted, and a tool that notices returns early, giving its thread back (one that does
/// not keeps it until it returns).
pub trait ToolRunner: Send + Sync + 'static {
    fn run(&self, worker_id: &str, name: &str, arguments_json: &str, cancel: &Cancel)
    -> ToolOutput;
}

impl ToolRunner for Workspaces {
    fn run(
        &self,
        worker_id: &str,
        name: &str,
        arguments_json: &str,
        cancel: &Cancel,
    ) -> ToolOutput {
        self.run_cancellable(worker_id, name, arguments_json, cancel)
    }
}

/// Completions a provider may have buffered ahead of the driver.
const PROVIDER_BUFFER: usize = 256;

pub(crate) struct Driver {
    rt: Handle,
    completed: mpsc::Sender<Completed>,
    models: Arc<ModelCatalog>,
    tools: Arc<dyn ToolRunner>,
    config: DriverConfig,
    calls: HashMap<u64, AbortHandle>,
    /// Bumped by `abort_all` (a core restart): completions carry it.
    generation: u64,
    /// One permit per tool call running on a blocking thread.
    tool_threads: Arc<Semaphore>,
}

impl Driver {
    pub fn new(
        rt: Handle,
        completed: mpsc::Sender<Completed>,
        models: Arc<ModelCatalog>,
        tools: Arc<dyn ToolRunner>,
        config: DriverConfig,
    ) -> Self {
        Driver {
            rt,
            completed,
            models,
            tools,
            calls: HashMap::new(),
            generation: 0,
            tool_threads: Arc::new(Semaphore::new(
                config.max_concurrent_tools.clamp(1, Semaphore::MAX_PERMITS),
            )),
            config,
        }
    }

    pub fn start(&mut self, effect: Effect) {
        let call_id = effect.call_id();
        let sink = Sink {
            completed: self.completed.clone(),
            generation: self.generation,
        };
        let task = match effect {
            Effect::CallModel(request) => {
                let provider = self.models.resolve(&request.model).cloned();
                let limits = ModelLimits {
                    idle: self.config.model_idle_timeout,
                    max_output_bytes: self.config.max_model_output_bytes,
                };
                self.rt.spawn(run_model(provider, request, limits, sink))
            }
            Effect::CallTool(request) => {
                let tools = self.tools.clone();
                let threads = self.tool_threads.clone();
                let timeout = self.config.tool_timeout;
                self.rt
                    .spawn(run_tool(tools, threads, request, timeout, sink))
            }
            Effect::Abort { call_id } => {
                self.abort(call_id);
                return;
            }
        };
        self.calls.insert(call_id, task.abort_handle());
    }

    pub fn abort(&mut self, call_id: u64) {
        if let Some(task) = self.calls.remove(&call_id) {
            task.abort();
        }
    }

    /// Aborts every call and starts a new generation: completions already on their way
    /// from the aborted calls are dropped by the actor.
    pub fn abort_all(&mut self) {
        for (_, task) in self.calls.drain() {
            task.abort();
        }
        self.generation += 1;
    }

    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// The call's last completion reached the actor.
    pub fn finished(&mut self, call_id: u64) {
        self.calls.remove(&call_id);
    }
}

/// Where a call's completions go: the actor's completions channel, tagged with the
/// call's generation.
struct Sink {
    completed: mpsc::Sender<Completed>,
    generation: u64,
}

async fn send(sink: &Sink, completions: Vec<Completion>) -> bool {
    let generation = sink.generation;
    sink.completed
        .send(Completed {
            generation,
            completions,
        })
        .await
        .is_ok()
}

/// Completions forwarded to the actor in one message: whatever a provider has buffered,
/// up to this many (one message per completion cost as much as the rest of the
/// forwarding).
const FORWARD_BATCH: usize = 64;

/// What bounds one model call.
#[derive(Debug, Clone, Copy)]
struct ModelLimits {
    idle: Duration,
    max_output_bytes: usize,
}

/// Bytes of model output a completion carries.
fn output_bytes(c: &Completion) -> usize {
    match c {
        Completion::TextDelta { text, .. } | Completion::ReasoningDelta { text, .. } => text.len(),
        Completion::ToolCallDelta {
            id,
            name,
            arguments,
            ..
        } => {
            arguments.len()
                + id.as_ref().map_or(0, String::len)
                + name.as_ref().map_or(0, String::len)
        }
        _ => 0,
    }
}

async fn run_model(
    provider: Option<Arc<dyn Provider>>,
    request: ModelRequest,
    limits: ModelLimits,
    sink: Sink,
) {
    let ModelLimits {
        idle,
        max_output_bytes,
    } = limits;
    let call_id = request.call_id;
    let fail = |code: &str, message: String| {
        vec![Completion::ModelFailed {
            call_id,
            error: ErrorInfo::new(code, message),
        }]
    };
    let Some(provider) = provider else {
        let message = format!("no provider serves model `{}`", request.model);
        send(&sink, fail("unknown_model", message)).await;
        return;
    };
    let (tx, mut rx) = mpsc::channel(PROVIDER_BUFFER);
    let mut call = Box::pin(provider.call(request, tx));
    let mut producing = true;
    // One timer for the whole call, re-armed only when it fires (a fresh timer per
    // completion cost more than the rest of the forwarding).
    let mut last_item = Instant::now();
    let quiet = tokio::time::sleep(idle);
    tokio::pin!(quiet);
    let mut batch = Vec::with_capacity(FORWARD_BATCH);
    let mut streamed = 0usize;
    loop {
        let received = tokio::select! {
            biased;
            n = rx.recv_many(&mut batch, FORWARD_BATCH) => n,
            _ = &mut call, if producing => { producing = false; continue; }
            () = &mut quiet => {
                if last_item.elapsed() < idle {
                    quiet.as_mut().reset(last_item + idle);
                    continue;
                }
                let message = format!("the model produced nothing for {idle:?}");
                send(&sink, fail("timeout", message)).await;
                return;
            }
        };
        if received == 0 {
            let message = "the model stream ended without finishing".to_string();
            send(&sink, fail("model_failed", message)).await;
            return;
        }
        streamed = streamed.saturating_add(batch.iter().map(output_bytes).sum());
        if streamed > max_output_bytes {
            let message =
                format!("the model streamed more than {max_output_bytes} bytes in one call");
            send(&sink, fail("output_too_large", message)).await;
            return;
        }
        // Nothing after the call's end is forwarded.
        let end = batch.iter().position(|c| {
            matches!(
                c,
                Completion::ModelDone { .. } | Completion::ModelFailed { .. }
            )
        });
        if let Some(end) = end {
            batch.truncate(end + 1);
        }
        let full = std::mem::replace(&mut batch, Vec::with_capacity(FORWARD_BATCH));
        if !send(&sink, full).await || end.is_some() {
            return;
        }
        // Time spent waiting for room in the actor's channel is not the model's silence.
        last_item = Instant::now();
    }
}

/// Sets a tool call's [`Cancel`] when the task running it ends, whichever way: done,
/// timed out, or aborted (cancel, stop, a core restart).
struct CancelOnDrop(Cancel);

impl Drop for CancelOnDrop {
    fn drop(&mut self) {
        self.0.cancel();
    }
}

async fn run_tool(
    tools: Arc<dyn ToolRunner>,
    threads: Arc<Semaphore>,
    request: ToolRequest,
    timeout: Duration,
    sink: Sink,
) {
    let call_id = request.call_id;
    let name = request.name.clone();
    let cancel = Cancel::new();
    let _cancel = CancelOnDrop(cancel.clone());
    // One deadline for the whole call: waiting for a free tool slot counts too.
    let deadline = Instant::now() + timeout;
    let (output, is_error) = match tokio::time::timeout_at(deadline, threads.acquire_owned()).await
    {
        Err(_) => {
            tracing::warn!(tool = %name, ?timeout, "tool call found no free tool slot in time");
            let message =
                format!("tool `{name}` did not start within {timeout:?}: every tool slot was busy");
            (message, true)
        }
        // The semaphore is never closed, so acquiring only waits.
        Ok(permit) => {
            let tool_cancel = cancel.clone();
            let work = tokio::task::spawn_blocking(move || {
                // Held until the tool returns: a tool that ignores `cancel` keeps its slot.
                let _permit = permit;
                tools.run(
                    &request.worker_id,
                    &request.name,
                    &request.arguments,
                    &tool_cancel,
                )
            });
            match tokio::time::timeout_at(deadline, work).await {
                Ok(Ok(out)) => (out.output, out.is_error),
                Ok(Err(join)) => (format!("tool `{name}` failed: {join}"), true),
                Err(_) => {
                    cancel.cancel();
                    tracing::warn!(tool = %name, ?timeout, "tool call timed out; told it to stop");
                    (format!("tool `{name}` timed out after {timeout:?}"), true)
                }
            }
        }
    };
    let done = Completion::ToolDone {
        call_id,
        output,
        is_error,
    };
    send(&sink, vec![done]).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_driver::BoxFuture;
    use yoi_protocol::ToolRequest;

    /// Streams `count` text deltas `gap` apart, then stops without finishing.
    struct Trickle {
        count: usize,
        gap: Duration,
    }

    impl Provider for Trickle {
        fn call<'a>(
            &'a self,
            request: ModelRequest,
            out: mpsc::Sender<Completion>,
        ) -> BoxFuture<'a, ()> {
            Box::pin(async move {
                for i in 0..self.count {
                    if i > 0 {
                        tokio::time::sleep(self.gap).await;
                    }
                    let text = format!("t{i}");
                    let delta = Completion::TextDelta {
                        call_id: request.call_id,
                        text,
                    };
                    if out.send(delta).await.is_err() {
                        return;
                    }
                }
                std::future::pending::<()>().await;
            })
        }
    }

    fn request() -> ModelRequest {
        ModelRequest {
            call_id: 7,
            worker_id: "w_1".into(),
            run_id: "r_1".into(),
            step: 1,
            model: "trickle".into(),
            system_prompt: None,
            messages: Vec::new(),
            tools: Vec::new(),
        }
    }

    /// Counts tool calls running at once; each waits until three have entered or the
    /// test opens the gate.
    #[derive(Default)]
    struct Crowd {
        state: std::sync::Mutex<CrowdState>,
        changed: std::sync::Condvar,
    }

    #[derive(Default)]
    struct CrowdState {
        entered: usize,
        running: usize,
        most: usize,
        open: bool,
    }

    impl ToolRunner for Crowd {
        fn run(&self, _w: &str, _n: &str, _a: &str, _c: &Cancel) -> ToolOutput {
            let mut s = self.state.lock().unwrap();
            s.entered += 1;
            s.running += 1;
            s.most = s.most.max(s.running);
            self.changed.notify_all();
            let mut s = self
                .changed
                .wait_timeout_while(s, Duration::from_secs(120), |s| !s.open && s.entered < 3)
                .unwrap()
                .0;
            s.running -= 1;
            ToolOutput::ok("done")
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn tool_calls_run_at_most_max_concurrent_tools_at_once() {
        let crowd = Arc::new(Crowd::default());
        let (tx, mut rx) = mpsc::channel(16);
        let config = DriverConfig {
            max_concurrent_tools: 2,
            ..DriverConfig::default()
        };
        let mut driver = Driver::new(
            Handle::current(),
            tx,
            Arc::new(ModelCatalog::new()),
            crowd.clone(),
            config,
        );
        for call_id in 1..=3 {
            driver.start(Effect::CallTool(ToolRequest {
                call_id,
                worker_id: "w_1".into(),
                run_id: "r_1".into(),
                tool_call_id: format!("call_{call_id}"),
                name: "t".into(),
                arguments: "{}".into(),
            }));
        }
        // Two are in; a third can only start when one of them is done.
        let waiting = crowd.clone();
        tokio::task::spawn_blocking(move || {
            let s = waiting.state.lock().unwrap();
            drop(
                waiting
                    .changed
                    .wait_timeout_while(s, Duration::from_secs(120), |s| s.entered < 2)
                    .unwrap(),
            );
        })
        .await
        .unwrap();
        assert_eq!(
            driver.tool_threads.available_permits(),
            0,
            "both running calls hold a slot"
        );
        crowd.state.lock().unwrap().open = true;
        crowd.changed.notify_all();
        let mut done = 0;
        while done < 3 {
            match rx.recv().await {
                Some(Completed { completions, .. }) => done += completions.len(),
                None => panic!("the driver stopped"),
            }
        }
        assert_eq!(crowd.state.lock().unwrap().most, 2);
    }

    /// Under tokio's paused clock: time the driver waits for room in the actor's full
    /// completions channel is not the model's silence; a call is not timed out for the
    /// actor being slow.
    #[tokio::test(start_paused = true)]
    async fn waiting_for_the_actor_is_not_idleness() {
        let idle = Duration::from_millis(50);
        let model = Trickle {
            count: 10,
            gap: Duration::from_millis(1),
        };
        // Room for one message, and nobody reads for ten idle periods.
        let (tx, mut rx) = mpsc::channel(1);
        let sink = Sink {
            completed: tx,
            generation: 0,
        };
        let limits = ModelLimits {
            idle,
            max_output_bytes: usize::MAX,
        };
        let call = tokio::spawn(run_model(Some(Arc::new(model)), request(), limits, sink));
        tokio::time::sleep(idle * 10).await;
        let mut deltas = 0;
        let mut failure = None;
        while let Some(Completed { completions, .. }) = rx.recv().await {
            for completion in completions {
                match completion {
                    Completion::TextDelta { .. } => deltas += 1,
                    Completion::ModelFailed { error, .. } => failure = Some(error.code),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        call.await.unwrap();
        assert_eq!(
            deltas, 10,
            "every delta arrived before the model went quiet"
        );
        assert_eq!(failure.as_deref(), Some("timeout"), "then it timed out");
    }

    /// Under tokio's paused clock: a model that keeps producing more often than the idle
    /// timeout never times out however long it streams; once it goes quiet, the call
    /// fails exactly one idle timeout after its last completion.
    #[tokio::test(start_paused = true)]
    async fn the_idle_timeout_counts_from_the_last_completion() {
        let idle = Duration::from_millis(50);
        let model = Trickle {
            count: 20,
            gap: Duration::from_millis(30),
        };
        let (tx, mut rx) = mpsc::channel(64);
        let sink = Sink {
            completed: tx,
            generation: 3,
        };
        let started = Instant::now();
        let limits = ModelLimits {
            idle,
            max_output_bytes: usize::MAX,
        };
        run_model(Some(Arc::new(model)), request(), limits, sink).await;
        let mut deltas = 0;
        let mut failure = None;
        while let Ok(Completed {
            generation,
            completions,
        }) = rx.try_recv()
        {
            assert_eq!(generation, 3);
            for completion in completions {
                match completion {
                    Completion::TextDelta { .. } => deltas += 1,
                    Completion::ModelFailed { error, .. } => failure = Some(error),
                    other => panic!("unexpected {other:?}"),
                }
            }
        }
        assert_eq!(deltas, 20, "every delta arrived; none timed out early");
        assert_eq!(failure.map(|e| e.code), Some("timeout".to_string()));
        // The last delta came at 19 x 30 ms; the timeout one idle period later.
        assert_eq!(started.elapsed(), Duration::from_millis(19 * 30 + 50));
    }
}
