//! The effect driver: runs a core's model and tool calls concurrently on the tokio
//! runtime and sends their completions to the actor.
//!
//! Every call is a task with an abort handle, so `abort` stops a model stream or a tool
//! at once. A model call that produces nothing for `model_idle_timeout` fails with code
//! `timeout`; a tool call that takes longer than `tool_timeout` ends as an error result.
//! Completions go through the actor's bounded inbox: a slow actor slows the producers,
//! nothing queues without bound.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use tokio::runtime::Handle;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tokio::time::Instant;
use yoi_driver::{Provider, ToolOutput, Workspaces};
use yoi_protocol::{Completion, Effect, ErrorInfo, ModelRequest, ToolRequest};

use crate::actor::Msg;

/// Timeouts and queue sizes of the driver.
#[derive(Debug, Clone)]
pub struct DriverConfig {
    /// Longest a tool call may run.
    pub tool_timeout: Duration,
    /// Longest a model call may go without producing anything.
    pub model_idle_timeout: Duration,
}

impl Default for DriverConfig {
    fn default() -> Self {
        DriverConfig {
            tool_timeout: Duration::from_secs(30),
            model_idle_timeout: Duration::from_secs(120),
        }
    }
}

/// Model providers by model name.
pub type Providers = HashMap<String, Arc<dyn Provider>>;

/// Runs tool calls. The default is [`Workspaces`]: the built-in tools on a per-worker
/// workspace directory. Called on a blocking thread.
pub trait ToolRunner: Send + Sync + 'static {
    fn run(&self, worker_id: &str, name: &str, arguments_json: &str) -> ToolOutput;
}

impl ToolRunner for Workspaces {
    fn run(&self, worker_id: &str, name: &str, arguments_json: &str) -> ToolOutput {
        Workspaces::run(self, worker_id, name, arguments_json)
    }
}

/// Completions a provider may have buffered ahead of the driver.
const PROVIDER_BUFFER: usize = 256;

pub(crate) struct Driver {
    rt: Handle,
    inbox: mpsc::Sender<Msg>,
    providers: Arc<Providers>,
    tools: Arc<dyn ToolRunner>,
    config: DriverConfig,
    calls: HashMap<u64, AbortHandle>,
    /// Bumped by `abort_all` (a core restart): completions carry it.
    generation: u64,
}

impl Driver {
    pub fn new(
        rt: Handle,
        inbox: mpsc::Sender<Msg>,
        providers: Arc<Providers>,
        tools: Arc<dyn ToolRunner>,
        config: DriverConfig,
    ) -> Self {
        Driver {
            rt,
            inbox,
            providers,
            tools,
            config,
            calls: HashMap::new(),
            generation: 0,
        }
    }

    pub fn start(&mut self, effect: Effect) {
        let call_id = effect.call_id();
        let inbox = Sink {
            inbox: self.inbox.clone(),
            generation: self.generation,
        };
        let task = match effect {
            Effect::CallModel(request) => {
                let provider = self.providers.get(&request.model).cloned();
                let idle = self.config.model_idle_timeout;
                self.rt.spawn(run_model(provider, request, idle, inbox))
            }
            Effect::CallTool(request) => {
                let tools = self.tools.clone();
                let timeout = self.config.tool_timeout;
                self.rt.spawn(run_tool(tools, request, timeout, inbox))
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

/// Where a call's completions go: the actor's inbox, tagged with the call's generation.
struct Sink {
    inbox: mpsc::Sender<Msg>,
    generation: u64,
}

async fn send(sink: &Sink, completions: Vec<Completion>) -> bool {
    sink.inbox
        .send(Msg::Completions(sink.generation, completions))
        .await
        .is_ok()
}

/// Completions forwarded to the actor in one message: whatever a provider has buffered,
/// up to this many (one inbox message per completion cost as much as the rest of the
/// forwarding).
const FORWARD_BATCH: usize = 64;

async fn run_model(
    provider: Option<Arc<dyn Provider>>,
    request: ModelRequest,
    idle: Duration,
    inbox: Sink,
) {
    let call_id = request.call_id;
    let fail = |code: &str, message: String| {
        vec![Completion::ModelFailed {
            call_id,
            error: ErrorInfo::new(code, message),
        }]
    };
    let Some(provider) = provider else {
        let message = format!("no provider serves model `{}`", request.model);
        send(&inbox, fail("unknown_model", message)).await;
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
                let message = format!("the model produced nothing for {}s", idle.as_secs());
                send(&inbox, fail("timeout", message)).await;
                return;
            }
        };
        last_item = Instant::now();
        if received == 0 {
            let message = "the model stream ended without finishing".to_string();
            send(&inbox, fail("model_failed", message)).await;
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
        if !send(&inbox, full).await || end.is_some() {
            return;
        }
    }
}

async fn run_tool(
    tools: Arc<dyn ToolRunner>,
    request: ToolRequest,
    timeout: Duration,
    inbox: Sink,
) {
    let call_id = request.call_id;
    let name = request.name.clone();
    let work = tokio::task::spawn_blocking(move || {
        tools.run(&request.worker_id, &request.name, &request.arguments)
    });
    let (output, is_error) = match tokio::time::timeout(timeout, work).await {
        Ok(Ok(out)) => (out.output, out.is_error),
        Ok(Err(join)) => (format!("tool `{name}` failed: {join}"), true),
        Err(_) => (
            format!("tool `{name}` timed out after {}s", timeout.as_secs()),
            true,
        ),
    };
    let done = Completion::ToolDone {
        call_id,
        output,
        is_error,
    };
    send(&inbox, vec![done]).await;
}

#[cfg(test)]
mod tests {
    use super::*;
    use yoi_driver::BoxFuture;

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
            inbox: tx,
            generation: 3,
        };
        let started = Instant::now();
        run_model(Some(Arc::new(model)), request(), idle, sink).await;
        let mut deltas = 0;
        let mut failure = None;
        while let Ok(Msg::Completions(generation, completions)) = rx.try_recv() {
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
