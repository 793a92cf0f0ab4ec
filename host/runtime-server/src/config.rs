//! The runtime server's configuration: a TOML file (every key optional) plus
//! command-line overrides.
//!
//! ```toml
//! bind = "127.0.0.1:38701"          # address to listen on
//! data_dir = "/var/lib/yoi-runtime" # event store, workspaces, token (default: XDG data dir)
//! token_file = "/etc/yoi/runtime.token"  # default: <data_dir>/runtime.token
//! id = "local"                      # the runtime's id in frames and in GET /v1/runtime
//! component = "yoi_runtime.wasm"    # run the component (wasmtime) instead of the native core
//! max_body_bytes = 1048576          # request body limit (413 payload_too_large above it)
//! shutdown_grace_ms = 5000          # how long streams get to flush their closing frame
//!
//! [events]                          # GET /v1/events
//! max_page = 1000                   # events per page at most (`limit` is capped to it)
//! max_page_bytes = 4194304          # bytes per page at most (at least one event)
//!
//! [providers.local]                 # as a host's: an OpenAI-compatible server
//! kind = "openai"
//! base_url = "http://127.0.0.1:8080/v1"
//! models = ["smollm2"]              # workers use model "local/smollm2"
//!
//! [streams]                         # as a host's: yoi_serving::StreamConfig
//! [http]                            # as a host's: yoi_serving::HttpConfig
//!
//! [runtime]                         # the runtime's settings, the keys of a host's
//! [runtime.scripted]                # [[runtimes]] entry: scripted, limits, log, driver
//! token_delay_ms = 30
//! ```
//!
//! Unknown keys and bad values are errors that name the key and its line.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::{Path, PathBuf};

use serde::Deserialize;
use yoi_driver::{ModelCatalog, ProviderConfig};
use yoi_runtime::config::{ProviderError, RuntimeId, RuntimeSettings};
pub use yoi_serving::ConfigError;
use yoi_serving::{HttpConfig, StreamConfig};

/// The default listen address: loopback only (a host's default port plus one).
pub const DEFAULT_BIND: &str = "127.0.0.1:38701";
/// The runtime's id unless the config names one.
pub const DEFAULT_ID: &str = "local";
/// File name of the access token inside the data dir.
pub const TOKEN_FILE: &str = "runtime.token";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub token_file: Option<PathBuf>,
    pub id: RuntimeId,
    pub component: Option<PathBuf>,
    pub max_body_bytes: NonZeroUsize,
    pub shutdown_grace_ms: u64,
    pub events: EventsConfig,
    pub streams: StreamConfig,
    pub http: HttpConfig,
    pub runtime: RuntimeSettings,
    /// Model providers the runtime serves besides `scripted` (`[providers.NAME]`).
    #[serde(deserialize_with = "yoi_runtime::config::deserialize_providers")]
    pub providers: BTreeMap<String, ProviderConfig>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND.parse().expect("valid default address"),
            data_dir: None,
            token_file: None,
            id: RuntimeId::parse(DEFAULT_ID).expect("a valid runtime id"),
            component: None,
            max_body_bytes: NonZeroUsize::new(1024 * 1024).expect("non-zero"),
            shutdown_grace_ms: 5_000,
            events: EventsConfig::default(),
            streams: StreamConfig::default(),
            http: HttpConfig::default(),
            runtime: RuntimeSettings::default(),
            providers: BTreeMap::new(),
        }
    }
}

/// `[events]`: the replay pages of `GET /v1/events`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsConfig {
    /// Events per page at most; a larger `limit` is capped to it.
    pub max_page: NonZeroUsize,
    /// Bytes per page at most (a page holds at least one event, however large).
    pub max_page_bytes: NonZeroUsize,
}

impl Default for EventsConfig {
    fn default() -> Self {
        EventsConfig {
            max_page: NonZeroUsize::new(1000).expect("non-zero"),
            max_page_bytes: NonZeroUsize::new(4 << 20).expect("non-zero"),
        }
    }
}

impl Config {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        yoi_serving::parse_toml(text, origin)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        yoi_serving::load_toml(path)
    }

    /// The data dir: configured, else `$XDG_DATA_HOME/yoi-runtime`, else
    /// `~/.local/share/yoi-runtime`.
    pub fn resolved_data_dir(&self) -> Result<PathBuf, ConfigError> {
        yoi_serving::resolve_data_dir(self.data_dir.as_deref(), "yoi-runtime")
    }

    /// Every configured provider, built (API keys read) into a catalog of their models.
    pub fn provider_models(&self) -> Result<ModelCatalog, ProviderError> {
        yoi_runtime::config::provider_models(&self.providers)
    }

    /// The token file: configured, else `<data_dir>/runtime.token`.
    pub fn resolved_token_file(&self, data_dir: &Path) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| data_dir.join(TOKEN_FILE))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn err(text: &str) -> String {
        Config::from_toml(text, "runtime.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let c = Config::from_toml("", "x").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        assert_eq!(c.id.as_str(), "local");
    }

    #[test]
    fn full_config_parses() {
        let c = Config::from_toml(
            r#"
bind = "0.0.0.0:9001"
id = "gpu-1"
component = "x.wasm"
[events]
max_page = 10
[streams]
replay_page = 4
[http]
max_connections = 8
[runtime.scripted]
token_delay_ms = 0
[runtime.log]
retain_events = 10
[providers.llm]
kind = "openai"
base_url = "http://127.0.0.1:8080/v1"
models = ["m"]
"#,
            "x",
        )
        .unwrap();
        assert_eq!(c.bind.port(), 9001);
        assert_eq!(c.id.as_str(), "gpu-1");
        assert_eq!(c.events.max_page.get(), 10);
        assert_eq!(c.streams.replay_page.get(), 4);
        assert_eq!(c.http.max_connections.get(), 8);
        assert_eq!(c.runtime.scripted.token_delay_ms, 0);
        assert_eq!(c.runtime.log.retain_events, Some(10));
        assert_eq!(c.providers["llm"].models[0].id, "m");
        let models = c.provider_models().unwrap();
        assert!(models.serves("llm/m"), "{models:?}");
    }

    #[test]
    fn unknown_keys_and_bad_values_name_key_and_line() {
        let e = err("bind = \"127.0.0.1:1\"\n\n[streams]\nqeueu = 4\n");
        assert!(e.contains("qeueu") && e.contains("line 4"), "{e}");
        assert!(e.contains("runtime.toml"), "{e}");
        let e = err("id = \"Not OK\"\n");
        assert!(e.contains("line 1") && e.contains("runtime id"), "{e}");
        let e = err("[runtime]\nscripted = 3\n");
        assert!(e.contains("line 2") && e.contains("scripted"), "{e}");
        let e = err("\n[runtime.lgo]\n");
        assert!(e.contains("line 2") && e.contains("lgo"), "{e}");
        let e = err("[runtime.driver]\nmax_concurrent_tools = 5000\n");
        assert!(e.contains("line 2") && e.contains("at most 4096"), "{e}");
        let e = err(
            "[providers.scripted]\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"m\"]\n",
        );
        assert!(e.contains("not `scripted`"), "{e}");
        let e = err(
            "[providers.p]\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"m\"]\napi_key = \"sk-secret\"\n",
        );
        assert!(e.contains("line 5") && e.contains("api_key_env"), "{e}");
        assert!(!e.contains("sk-secret"), "the key is not repeated: {e}");
        let e = err("[events]\nmax_page = 0\n");
        assert!(e.contains("line 2") && e.contains("max_page"), "{e}");
    }
}
