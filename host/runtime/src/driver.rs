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

async fn send(sink: &Sink, completion: Completion) -> bool {
    sink.inbox
        .send(Msg::Completion(sink.generation, completion))
        .await
        .is_ok()
}

async fn run_model(
    provider: Option<Arc<dyn Provider>>,
    request: ModelRequest,
    idle: Duration,
    inbox: Sink,
) {
    let call_id = request.call_id;
    let Some(provider) = provider else {
        let error = ErrorInfo::new(
            "unknown_model",
            format!("no provider serves model `{}`", request.model),
        );
        send(&inbox, Completion::ModelFailed { call_id, error }).await;
        return;
    };
    let (tx, mut rx) = mpsc::channel(PROVIDER_BUFFER);
    let mut call = Box::pin(provider.call(request, tx));
    let mut producing = true;
    loop {
        let next = tokio::select! {
            biased;
            item = rx.recv() => item,
            _ = &mut call, if producing => { producing = false; continue; }
            _ = tokio::time::sleep(idle) => {
                let error = ErrorInfo::new("timeout", format!("the model produced nothing for {}s", idle.as_secs()));
                send(&inbox, Completion::ModelFailed { call_id, error }).await;
                return;
            }
        };
        let Some(completion) = next else {
            let error = ErrorInfo::new("model_failed", "the model stream ended without finishing");
            send(&inbox, Completion::ModelFailed { call_id, error }).await;
            return;
        };
        let last = matches!(
            completion,
            Completion::ModelDone { .. } | Completion::ModelFailed { .. }
        );
        if !send(&inbox, completion).await || last {
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
    send(
        &inbox,
        Completion::ToolDone {
            call_id,
            output,
            is_error,
        },
    )
    .await;
}
