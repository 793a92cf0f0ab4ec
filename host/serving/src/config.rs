//! What every yoi server's config shares: the tables `[streams]` and `[http]`, reading a
//! TOML file into a server's config type with errors that name the key and its line, and
//! the default data directory. (Each server's own keys are in that server.)

use std::num::{NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::Deserialize;
use serde::de::DeserializeOwned;

use crate::hosts::AllowedHosts;
use crate::serve::HttpLimits;
use crate::stream::{StreamLimits, StreamSettings};

/// `[streams]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Events per replay page (replay is backpressured, never lagged).
    pub replay_page: NonZeroUsize,
    /// Bytes of frames per replay page: a page is cut after the frame that reaches this
    /// (it holds at least one), so a stream's queue stays bounded whatever its events.
    pub replay_page_bytes: NonZeroUsize,
    pub ping_interval_ms: NonZeroU64,
    /// A client that accepts nothing for this long is dropped.
    pub write_timeout_ms: NonZeroU64,
    /// Streams open at once, in all (`429 limit_exceeded` beyond).
    pub max_open: NonZeroUsize,
    /// Streams open at once per client token.
    pub max_open_per_client: NonZeroUsize,
    /// No longer used: a stream's queue is its place in its runtime's live buffer
    /// (`log.broadcast_capacity`). Accepted so older config files still load; servers
    /// log a warning when it is set.
    #[serde(rename = "queue")]
    pub unused_queue: Option<NonZeroUsize>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            replay_page: NonZeroUsize::new(512).expect("non-zero"),
            replay_page_bytes: NonZeroUsize::new(4 << 20).expect("non-zero"),
            ping_interval_ms: NonZeroU64::new(20_000).expect("non-zero"),
            write_timeout_ms: NonZeroU64::new(30_000).expect("non-zero"),
            max_open: NonZeroUsize::new(4096).expect("non-zero"),
            max_open_per_client: NonZeroUsize::new(1024).expect("non-zero"),
            unused_queue: None,
        }
    }
}

impl StreamConfig {
    pub fn settings(&self) -> StreamSettings {
        StreamSettings {
            replay_page: self.replay_page.get(),
            replay_page_bytes: self.replay_page_bytes.get(),
            ping_interval: Duration::from_millis(self.ping_interval_ms.get()),
            write_timeout: Duration::from_millis(self.write_timeout_ms.get()),
            limits: StreamLimits {
                max_open: self.max_open.get(),
                max_open_per_client: self.max_open_per_client.get(),
            },
        }
    }

    /// Logs what is deprecated in the table.
    pub fn warn_deprecated(&self) {
        if let Some(queue) = self.unused_queue {
            tracing::warn!(
                queue,
                "streams.queue is no longer used: a stream's queue is its place in the \
                 runtime's live buffer (log.broadcast_capacity); remove the key"
            );
        }
    }
}

/// `[http]`: the connection layer.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct HttpConfig {
    /// Connections served at once (streams count once upgraded, see `streams.max_open`);
    /// more wait in the listen backlog.
    pub max_connections: NonZeroUsize,
    /// A connection must deliver a request's headers within this (an idle keep-alive
    /// connection is closed after it): half-open and slow clients cannot hold sockets.
    pub header_read_timeout_ms: NonZeroU64,
    /// A request must be answered within this (`504 timeout` after it).
    pub request_timeout_ms: NonZeroU64,
    /// `Host` names the server answers besides `localhost`, the loopback addresses and
    /// its bind address (see [`AllowedHosts`]); a server bound to every interface
    /// answers any name while this is empty.
    pub allowed_hosts: Vec<String>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            max_connections: NonZeroUsize::new(1024).expect("non-zero"),
            header_read_timeout_ms: NonZeroU64::new(10_000).expect("non-zero"),
            request_timeout_ms: NonZeroU64::new(30_000).expect("non-zero"),
            allowed_hosts: Vec::new(),
        }
    }
}

impl HttpConfig {
    pub fn limits(&self) -> HttpLimits {
        HttpLimits {
            max_connections: self.max_connections.get(),
            header_read_timeout: Duration::from_millis(self.header_read_timeout_ms.get()),
            request_timeout: Duration::from_millis(self.request_timeout_ms.get()),
        }
    }

    /// The `Host` names a server bound to `bind` answers.
    pub fn allowed_hosts(&self, bind: std::net::SocketAddr) -> AllowedHosts {
        AllowedHosts::new(bind, &self.allowed_hosts)
    }
}

/// A configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("cannot read the config file {path}: {source}")]
    Read {
        path: String,
        source: std::io::Error,
    },
    /// The TOML parser's message names the key and shows its line.
    #[error("invalid config file {path}:\n{message}")]
    Invalid { path: String, message: String },
    #[error(
        "no data directory: set --data-dir (or `data_dir` in the config), or XDG_DATA_HOME or HOME"
    )]
    NoDataDir,
}

/// Parses a config file's text; `origin` names it in errors. Unknown keys and bad values
/// are errors naming the key and its line (with `deny_unknown_fields` and validating
/// types, which the `toml` crate reports with the span of the offending value).
pub fn parse_toml<T: DeserializeOwned>(text: &str, origin: &str) -> Result<T, ConfigError> {
    toml::from_str(text).map_err(|e| ConfigError::Invalid {
        path: origin.to_string(),
        message: config_message(&e, text),
    })
}

/// Ends the message of an error about a value that may hold a secret (a URL with
/// credentials, say): the error names the line without quoting it.
pub const UNQUOTED: &str = " (the line is not quoted: it may hold a secret)";

/// The parser's message, which quotes the offending line; except for an API key written
/// into the file and errors ending with [`UNQUOTED`], whose line is not repeated (it
/// would put a secret into logs).
fn config_message(e: &toml::de::Error, text: &str) -> String {
    let line = || {
        e.span().map_or(0, |span| {
            text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        })
    };
    if e.message().ends_with(UNQUOTED) {
        return format!("line {}: {}", line(), e.message());
    }
    if e.message().contains("unknown field `api_key`") {
        let line = line();
        return format!(
            "line {line}: `api_key` is not a config key: keep the key out of the file and \
             name where it is with `api_key_env` (an environment variable) or `api_key_file`"
        );
    }
    e.to_string()
}

/// Reads and parses a config file (see [`parse_toml`]).
pub fn load_toml<T: DeserializeOwned>(path: &Path) -> Result<T, ConfigError> {
    let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
        path: path.display().to_string(),
        source,
    })?;
    parse_toml(&text, &path.display().to_string())
}

/// The data dir: `configured`, else [`default_data_dir`]`(name)`.
pub fn resolve_data_dir(configured: Option<&Path>, name: &str) -> Result<PathBuf, ConfigError> {
    match configured {
        Some(dir) => Ok(dir.to_path_buf()),
        None => default_data_dir(name).ok_or(ConfigError::NoDataDir),
    }
}

/// `$XDG_DATA_HOME/<name>`, else `$HOME/.local/share/<name>`.
pub fn default_data_dir(name: &str) -> Option<PathBuf> {
    let non_empty = |var| std::env::var_os(var).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return Some(PathBuf::from(xdg).join(name));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share").join(name))
}
