//! What only a runtime's own API offers: [`RuntimeClient`]'s constructor, snapshots with
//! their cursors, the replay page and the runtime-wide stream.

use yoi_protocol::{Cursor, EventsPage, SnapshotResponse, SnapshotsResponse, WorkerSnapshot};

use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::runtime_api::{Direct, RuntimeApi};
use crate::stream::EventStream;
use crate::transport::Transport;

impl RuntimeApi<Direct> {
    /// A client of the `yoi-runtime serve` at `base_url` (`http://host:port`),
    /// presenting `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Self::with_options(base_url, token, ClientOptions::default())
    }

    pub fn with_options(
        base_url: &str,
        token: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        let transport = Transport::new(base_url, token, options)?;
        Ok(RuntimeApi::at(transport, &["v1"], &["v1", "runtime"]))
    }

    /// One page of stored events after `after` (from the start without it), of one
    /// worker if given, at most `limit` (the server's default without it).
    pub async fn events(
        &self,
        after: Option<Cursor>,
        worker_id: Option<&str>,
        limit: Option<usize>,
    ) -> Result<EventsPage, ClientError> {
        let after = after.map(|c| c.encode());
        let limit = limit.map(|l| l.to_string());
        let query: Vec<(&str, &str)> = [
            ("after", after.as_deref()),
            ("worker", worker_id),
            ("limit", limit.as_deref()),
        ]
        .into_iter()
        .filter_map(|(k, v)| Some((k, v?)))
        .collect();
        self.transport.get(&self.path(&["events"]), &query).await
    }

    /// One worker's state and the cursor it is consistent with: the events after that
    /// cursor are exactly what happened since.
    pub async fn snapshot(&self, worker_id: &str) -> Result<(WorkerSnapshot, Cursor), ClientError> {
        let r: SnapshotResponse = self
            .transport
            .get(&self.path(&["workers", worker_id, "snapshot"]), &[])
            .await?;
        Ok((r.snapshot, r.cursor))
    }

    /// Every worker's state and the cursor they are consistent with.
    pub async fn snapshot_all(&self) -> Result<(Vec<WorkerSnapshot>, Cursor), ClientError> {
        let r: SnapshotsResponse = self.transport.get(&self.path(&["snapshot"]), &[]).await?;
        Ok((r.workers, r.cursor))
    }

    /// Every event of the runtime (workers' and runtime-wide ones): a `snapshot_all`
    /// first (without `after`), else the events after `after`; then live.
    pub fn events_stream(&self, after: Option<Cursor>) -> EventStream<Cursor> {
        self.transport.stream(&self.path(&["events", "ws"]), after)
    }
}
