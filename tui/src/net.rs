//! The network task: runs [`Cmd`]s against the host through `yoi-client` and turns
//! every answer and stream item into a [`Msg`]. It never touches the state.

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use yoi_client::{ClientError, ConnState, HostClient, RuntimeApi, RuntimeClient, StreamItem};
use yoi_protocol::{RuntimeInfo, WorkerInfo};

use crate::msg::{Answer, Cmd, Connection, Failure, Msg, StreamEvent, StreamId, WorkerCommand};

/// Who the client talks to.
#[derive(Debug, Clone)]
pub enum Backend {
    /// `yoi-host` (the normal case).
    Host(HostClient),
    /// One `yoi-runtime serve` directly (`--direct`, a debug mode).
    Direct(RuntimeClient),
}

impl From<ClientError> for Failure {
    fn from(e: ClientError) -> Self {
        match e {
            ClientError::Http { code, message, .. } | ClientError::Stream { code, message } => {
                Failure::new(Some(code), message)
            }
            ClientError::Timeout { .. } => Failure::new(Some(e.code()), e.to_string()),
            // The host itself is unreachable: its message says so (the client's
            // closest code, `runtime_unavailable`, would blame a runtime).
            ClientError::Network { .. }
            | ClientError::BadResponse { .. }
            | ClientError::Config { .. } => Failure::new(None, e.to_string()),
        }
    }
}

/// Runs commands; answers go to `tx`.
pub struct Net {
    backend: Backend,
    tx: mpsc::Sender<Msg>,
    stream: Option<JoinHandle<()>>,
}

impl Net {
    pub fn new(backend: Backend, tx: mpsc::Sender<Msg>) -> Self {
        Net {
            backend,
            tx,
            stream: None,
        }
    }

    pub fn run(&mut self, cmd: Cmd) {
        match cmd {
            Cmd::LoadRuntimes => {
                let backend = self.backend.clone();
                self.spawn(async move { Msg::Runtimes(runtimes(&backend).await) });
            }
            Cmd::LoadWorkers { runtime_id } => {
                let api = self.api(&runtime_id);
                self.spawn(async move {
                    let result = api.workers().await.map_err(Failure::from);
                    Msg::Workers { runtime_id, result }
                });
            }
            Cmd::CreateWorker { runtime_id, spec } => {
                let api = self.api(&runtime_id);
                self.spawn(async move {
                    let result = api.create_worker(&spec).await.map_err(Failure::from);
                    Msg::WorkerCreated { runtime_id, result }
                });
            }
            Cmd::Worker {
                runtime_id,
                worker_id,
                command,
            } => {
                let api = self.api(&runtime_id);
                self.spawn(async move {
                    let result = api
                        .command(&worker_id, &command)
                        .await
                        .map_err(Failure::from);
                    Msg::Done { command, result }
                });
            }
            Cmd::OpenStream {
                id,
                runtime_id,
                worker_id,
            } => {
                self.close_stream();
                let api = self.api(&runtime_id);
                let tx = self.tx.clone();
                self.stream = Some(tokio::spawn(async move {
                    stream_worker(api, worker_id, id, tx).await;
                }));
            }
            Cmd::CloseStream => self.close_stream(),
            // The main loop handles quitting.
            Cmd::Quit => {}
        }
    }

    /// One runtime's API: through the host, or the runtime of `--direct`.
    fn api(&self, runtime_id: &str) -> Api {
        match &self.backend {
            Backend::Host(host) => Api::Host(host.runtime(runtime_id)),
            Backend::Direct(runtime) => Api::Direct(runtime.clone()),
        }
    }

    fn close_stream(&mut self) {
        if let Some(task) = self.stream.take() {
            task.abort();
        }
    }

    fn spawn(&self, task: impl Future<Output = Msg> + Send + 'static) {
        let tx = self.tx.clone();
        tokio::spawn(async move {
            // A closed channel means the client is quitting.
            let _ = tx.send(task.await).await;
        });
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        self.close_stream();
    }
}

async fn runtimes(backend: &Backend) -> Result<Vec<RuntimeInfo>, Failure> {
    match backend {
        Backend::Host(host) => Ok(host.runtimes().await?),
        Backend::Direct(runtime) => Ok(vec![runtime.info().await?]),
    }
}

/// One runtime's API, whichever way it is reached: the calls are the same.
enum Api {
    Host(yoi_client::HostRuntime),
    Direct(RuntimeClient),
}

macro_rules! on_api {
    ($api:expr, $r:ident => $call:expr) => {
        match $api {
            Api::Host($r) => $call,
            Api::Direct($r) => $call,
        }
    };
}

impl Api {
    async fn workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        on_api!(self, r => r.workers().await)
    }

    async fn create_worker(
        &self,
        spec: &yoi_protocol::WorkerSpec,
    ) -> Result<WorkerInfo, ClientError> {
        on_api!(self, r => r.create_worker(spec).await)
    }

    fn worker_stream(&self, worker_id: &str) -> yoi_client::EventStream<yoi_protocol::Cursor> {
        on_api!(self, r => r.worker_stream(worker_id, None))
    }

    async fn command(
        &self,
        worker_id: &str,
        command: &WorkerCommand,
    ) -> Result<Answer, ClientError> {
        on_api!(self, r => run_command(r, worker_id, command).await)
    }
}

async fn run_command<A>(
    api: &RuntimeApi<A>,
    worker_id: &str,
    command: &WorkerCommand,
) -> Result<Answer, ClientError> {
    Ok(match command {
        WorkerCommand::Send(input) => Answer::Run {
            run_id: api.send_input(worker_id, input).await?,
        },
        WorkerCommand::Cancel => Answer::Run {
            run_id: api.cancel(worker_id).await?,
        },
        WorkerCommand::Stop => Answer::Worker(Box::new(api.stop(worker_id).await?)),
    })
}

/// Forwards a worker's stream until it gives up or the client stops listening.
async fn stream_worker(api: Api, worker_id: String, id: StreamId, tx: mpsc::Sender<Msg>) {
    let mut stream = api.worker_stream(&worker_id);
    while let Some(item) = stream.next().await {
        let event = match item {
            StreamItem::Frame(frame) => StreamEvent::Frame(Box::new(frame)),
            StreamItem::Status(state) => StreamEvent::Status(connection(state)),
        };
        if tx.send(Msg::Stream { id, event }).await.is_err() {
            return;
        }
    }
}

fn connection(state: ConnState) -> Connection {
    match state {
        ConnState::Connecting => Connection::Connecting,
        ConnState::Connected => Connection::Connected,
        ConnState::Reconnecting {
            attempt,
            after,
            reason,
        } => Connection::Reconnecting {
            attempt,
            after,
            reason: reason.to_string(),
        },
        ConnState::GaveUp(e) => Connection::Offline(e.into()),
    }
}
