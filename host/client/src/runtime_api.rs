//! [`RuntimeApi`]: the commands and worker streams of one runtime, written once for both
//! APIs that offer them (the host's `/api/v1/runtimes/{id}/…` and a runtime's `/v1/…`).

use std::fmt;
use std::marker::PhantomData;

use yoi_protocol::{
    Cursor, Input, Message, RunResponse, RuntimeInfo, RuntimeResponse, TranscriptResponse,
    WorkerInfo, WorkerResponse, WorkerSpec, WorkersResponse,
};

use crate::error::ClientError;
use crate::stream::EventStream;
use crate::transport::Transport;

/// Marker of a runtime reached through the host ([`HostRuntime`]).
#[derive(Debug, Clone, Copy)]
pub enum ViaHost {}

/// Marker of a runtime's own API ([`RuntimeClient`]).
#[derive(Debug, Clone, Copy)]
pub enum Direct {}

/// One runtime as the host serves it: from [`HostClient::runtime`](crate::HostClient::runtime).
pub type HostRuntime = RuntimeApi<ViaHost>;

/// A client of one `yoi-runtime serve` (the runtime API, `/v1/…`): everything of
/// [`RuntimeApi`] plus the replay page and the runtime-wide stream.
pub type RuntimeClient = RuntimeApi<Direct>;

/// The commands and worker streams of one runtime. `A` says which API it speaks
/// ([`ViaHost`] or [`Direct`]); the calls are the same. Cheap to clone.
pub struct RuntimeApi<A> {
    pub(crate) transport: Transport,
    /// Path to the runtime's workers' parent: `api/v1/runtimes/{id}` or `v1`.
    root: Vec<String>,
    /// Path of the runtime's description: `api/v1/runtimes/{id}` or `v1/runtime`.
    info: Vec<String>,
    api: PhantomData<A>,
}

impl<A> RuntimeApi<A> {
    pub(crate) fn at(transport: Transport, root: &[&str], info: &[&str]) -> Self {
        let owned = |path: &[&str]| path.iter().map(|s| s.to_string()).collect();
        RuntimeApi {
            transport,
            root: owned(root),
            info: owned(info),
            api: PhantomData,
        }
    }

    /// `root` followed by `rest`.
    pub(crate) fn path<'a>(&'a self, rest: &[&'a str]) -> Vec<&'a str> {
        self.root
            .iter()
            .map(String::as_str)
            .chain(rest.iter().copied())
            .collect()
    }

    /// The runtime: kind, state, worker count, capabilities.
    pub async fn info(&self) -> Result<RuntimeInfo, ClientError> {
        let path: Vec<&str> = self.info.iter().map(String::as_str).collect();
        let r: RuntimeResponse = self.transport.get(&path, &[]).await?;
        Ok(r.runtime)
    }

    /// Every worker (the client may see).
    pub async fn workers(&self) -> Result<Vec<WorkerInfo>, ClientError> {
        let r: WorkersResponse = self.transport.get(&self.path(&["workers"]), &[]).await?;
        Ok(r.workers)
    }

    pub async fn create_worker(&self, spec: &WorkerSpec) -> Result<WorkerInfo, ClientError> {
        let r: WorkerResponse = self
            .transport
            .post(&self.path(&["workers"]), Some(spec))
            .await?;
        Ok(r.worker)
    }

    pub async fn worker(&self, worker_id: &str) -> Result<WorkerInfo, ClientError> {
        let r: WorkerResponse = self
            .transport
            .get(&self.path(&["workers", worker_id]), &[])
            .await?;
        Ok(r.worker)
    }

    /// Starts a run; answers its id. `409 worker_busy` while a run is in flight. With a
    /// `request_id`, repeating the call answers the first run's id and starts nothing.
    pub async fn send_input(&self, worker_id: &str, input: &Input) -> Result<String, ClientError> {
        let r: RunResponse = self
            .transport
            .post(&self.path(&["workers", worker_id, "input"]), Some(input))
            .await?;
        Ok(r.run_id)
    }

    /// Cancels the run in flight; answers its id (`409 not_running` when there is none).
    pub async fn cancel(&self, worker_id: &str) -> Result<String, ClientError> {
        let r: RunResponse = self
            .transport
            .post::<(), _>(&self.path(&["workers", worker_id, "cancel"]), None)
            .await?;
        Ok(r.run_id)
    }

    /// Stops the worker for good; answers it (`stopped`).
    pub async fn stop(&self, worker_id: &str) -> Result<WorkerInfo, ClientError> {
        let r: WorkerResponse = self
            .transport
            .post::<(), _>(&self.path(&["workers", worker_id, "stop"]), None)
            .await?;
        Ok(r.worker)
    }

    /// Deletes the worker (stopping it first if needed); its events stay in the log.
    pub async fn delete_worker(&self, worker_id: &str) -> Result<(), ClientError> {
        self.transport
            .delete(&self.path(&["workers", worker_id]))
            .await
    }

    pub async fn transcript(&self, worker_id: &str) -> Result<Vec<Message>, ClientError> {
        let r: TranscriptResponse = self
            .transport
            .get(&self.path(&["workers", worker_id, "transcript"]), &[])
            .await?;
        Ok(r.messages)
    }

    /// One worker's events: a snapshot first (without `after`), else the events after
    /// `after`; then live. Connects on the first [`EventStream::next`].
    pub fn worker_stream(&self, worker_id: &str, after: Option<Cursor>) -> EventStream<Cursor> {
        self.transport
            .stream(&self.path(&["workers", worker_id, "events", "ws"]), after)
    }
}

impl<A> Clone for RuntimeApi<A> {
    fn clone(&self) -> Self {
        RuntimeApi {
            transport: self.transport.clone(),
            root: self.root.clone(),
            info: self.info.clone(),
            api: PhantomData,
        }
    }
}

impl<A> fmt::Debug for RuntimeApi<A> {
    /// Without the URL or the token (the path names only the runtime).
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RuntimeApi")
            .field("root", &self.root.join("/"))
            .finish_non_exhaustive()
    }
}
