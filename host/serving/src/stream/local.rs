//! [`LocalSource`]: a [`LocalRuntime`] in this process as an [`EventSource`].

use std::sync::Arc;

use yoi_eventlog::ReplayPage;
use yoi_protocol::{Capabilities, Cursor, WorkerSnapshot};
use yoi_runtime::LocalRuntime;

use super::cache::FrameCache;
use super::source::{EventSource, ReplayOutcome};
use super::subscription::Subscription;
use crate::error::ServeError;

/// A runtime running in this process, with the frames its streams share.
#[derive(Clone)]
pub struct LocalSource {
    id: String,
    runtime: LocalRuntime,
    frames: Arc<FrameCache>,
}

impl LocalSource {
    /// `id` must be a runtime id (`a-z 0-9 _ -`, see `yoi_protocol::is_runtime_id`).
    pub fn new(id: impl Into<String>, runtime: LocalRuntime) -> Self {
        LocalSource {
            id: id.into(),
            runtime,
            frames: Arc::default(),
        }
    }

    pub fn runtime(&self) -> &LocalRuntime {
        &self.runtime
    }

    /// What the runtime offers its clients: its models, the workspace tools, its limits
    /// and both kinds of stream.
    pub fn capabilities(&self) -> Capabilities {
        Capabilities {
            models: self.runtime.models(),
            tools: yoi_driver::tools::names()
                .iter()
                .map(|t| t.to_string())
                .collect(),
            limits: self.runtime.limits(),
            streams: vec!["worker".to_string(), "all".to_string()],
        }
    }
}

impl EventSource for LocalSource {
    fn runtime_id(&self) -> &str {
        &self.id
    }

    fn epoch(&self) -> u64 {
        self.runtime.events().epoch()
    }

    fn frames(&self) -> &Arc<FrameCache> {
        &self.frames
    }

    /// The log's broadcast carries the envelopes its window holds anyway (see
    /// [`Subscription::Shared`]).
    fn subscribe(&self) -> Subscription {
        self.runtime.events().subscribe().into()
    }

    async fn replay(
        &self,
        after: Cursor,
        worker: Option<&str>,
        limit: usize,
    ) -> Result<ReplayPage, ReplayOutcome> {
        let reader = self.runtime.events();
        // The window answers from memory; older history is a SQLite read, which belongs
        // on a blocking thread.
        let in_window = reader
            .window_bounds()
            .is_some_and(|(low, _)| after.seq.saturating_add(1) >= low);
        let result = if in_window || after.epoch != reader.epoch() {
            reader.replay(after, worker, limit)
        } else {
            let reader = reader.clone();
            let worker = worker.map(str::to_string);
            tokio::task::spawn_blocking(move || reader.replay(after, worker.as_deref(), limit))
                .await
                .map_err(|e| ReplayOutcome::Failed(ServeError::internal(e.to_string())))?
        };
        result.map_err(ReplayOutcome::from)
    }

    async fn snapshot(&self, worker_id: &str) -> Result<(WorkerSnapshot, Cursor), ServeError> {
        Ok(self.runtime.snapshot(worker_id).await?)
    }

    async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), ServeError> {
        Ok(self.runtime.snapshot_all().await?)
    }
}
