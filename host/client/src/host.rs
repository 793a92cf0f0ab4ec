//! [`HostClient`]: a client of `yoi-host` (the host API, `/api/v1/…`).

use yoi_protocol::{HostCursor, RuntimeInfo, RuntimesResponse};

use crate::discover::{LocalHost, discover_local};
use crate::error::ClientError;
use crate::options::ClientOptions;
use crate::runtime_api::HostRuntime;
use crate::stream::EventStream;
use crate::transport::Transport;

/// A client of `yoi-host`. Cheap to clone; every request carries the bearer token.
#[derive(Debug, Clone)]
pub struct HostClient {
    transport: Transport,
}

impl HostClient {
    /// The host's default address (`yoi-host serve` without `--bind`).
    pub const DEFAULT_URL: &str = "http://127.0.0.1:38700";

    /// A client of the host at `base_url` (`http://host:port`), presenting `token`.
    pub fn new(base_url: &str, token: &str) -> Result<Self, ClientError> {
        Self::with_options(base_url, token, ClientOptions::default())
    }

    pub fn with_options(
        base_url: &str,
        token: &str,
        options: ClientOptions,
    ) -> Result<Self, ClientError> {
        Ok(HostClient {
            transport: Transport::new(base_url, token, options)?,
        })
    }

    /// A client of the local host: `$YOI_URL` or [`DEFAULT_URL`](Self::DEFAULT_URL), with
    /// `$YOI_TOKEN` or the token the host wrote in its data dir (see
    /// [`discover_local`](crate::discover_local)).
    pub fn discover() -> Result<Self, ClientError> {
        Self::discover_with(ClientOptions::default())
    }

    pub fn discover_with(options: ClientOptions) -> Result<Self, ClientError> {
        let LocalHost { url, token } = discover_local()?;
        Self::with_options(&url, &token, options)
    }

    /// Every runtime the host serves.
    pub async fn runtimes(&self) -> Result<Vec<RuntimeInfo>, ClientError> {
        let r: RuntimesResponse = self.transport.get(&["api", "v1", "runtimes"], &[]).await?;
        Ok(r.runtimes)
    }

    /// One runtime's commands and worker streams (no request is made here).
    pub fn runtime(&self, runtime_id: &str) -> HostRuntime {
        let root = ["api", "v1", "runtimes", runtime_id];
        HostRuntime::at(self.transport.clone(), &root, &root)
    }

    /// Every worker of every runtime (the multiplexed stream): a `snapshot_all` first
    /// (without `after`), else the events after `after`; then live. Connects on the
    /// first [`EventStream::next`].
    pub fn all_stream(&self, after: Option<HostCursor>) -> EventStream<HostCursor> {
        self.transport.stream(&["api", "v1", "events", "ws"], after)
    }
}
