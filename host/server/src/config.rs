//! The host's configuration: a TOML file (every key optional) plus command-line overrides.
//!
//! ```toml
//! bind = "127.0.0.1:38700"          # address to listen on
//! data_dir = "/var/lib/yoi"         # token file and runtime data (default: XDG data dir)
//! component = "yoi_runtime.wasm"    # default component of embedded runtimes
//! allowed_origins = ["http://localhost:5173"]  # browser origins allowed to call the API
//! max_body_bytes = 1048576          # request body limit (413 payload_too_large above it)
//! token_file = "/etc/yoi/host.token"  # default: <data_dir>/host.token
//! shutdown_grace_ms = 5000          # how long streams get to flush their closing frame
//!
//! [streams]                         # yoi_serving::StreamConfig
//! replay_page = 512                 # events per replay page
//! ping_interval_ms = 20000          # WebSocket ping on every stream
//! write_timeout_ms = 30000          # a client that accepts nothing for this long is dropped
//! max_open = 4096                   # streams open at once (429 limit_exceeded beyond)
//! max_open_per_client = 1024
//!
//! [http]                            # yoi_serving::HttpConfig
//! max_connections = 1024
//! header_read_timeout_ms = 10000
//! request_timeout_ms = 30000
//!
//! [providers.local]                 # an OpenAI-compatible server (see yoi_driver::openai)
//! kind = "openai"
//! base_url = "http://127.0.0.1:8080/v1"
//! models = ["smollm2"]              # workers use model "local/smollm2"
//! context_tokens = 4096
//!
//! plugins_dir = "/etc/yoi/plugins"  # policy plugins (default: <data_dir>/plugins)
//!
//! [[clients]]                       # more tokens, each a principal with a role
//! name = "ci"                       # (the generated token stays the owner)
//! role = "observer"                 # owner | operator | observer
//! token_file = "/etc/yoi/ci.token"  # or token_env = "YOI_CI_TOKEN"
//!
//! [[policies]]                      # the policy chain, in order (reloadable)
//! plugin = "redact-reasoning"       # a plugin, by the name it reports
//! settings = { roles = ["observer"] }
//!
//! [[runtimes]]                      # default: one embedded runtime "local"
//! id = "local"
//! kind = "embedded"
//! component = "…"                   # default: the top-level `component`
//! [runtimes.scripted]               # and `limits`, `log`, `driver`: the runtime's
//! token_delay_ms = 30               # settings, yoi_runtime::config::RuntimeSettings
//! ```
//!
//! Unknown keys and bad values are errors that name the key and its line (serde's
//! `deny_unknown_fields` and validating newtypes, reported by the `toml` crate with the
//! span of the offending value).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use yoi_driver::{ModelCatalog, ProviderConfig};
use yoi_policy_host::PolicyEntry;

pub use crate::clients::ClientConfig;
pub use yoi_runtime::config::RuntimeId;
use yoi_runtime::config::{KnownKey, ProviderError, RuntimeSettings};
pub use yoi_serving::ConfigError;
use yoi_serving::{HttpConfig, StreamConfig};

/// The default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:38700";
/// The id of the embedded runtime served when the config names none.
pub const DEFAULT_RUNTIME: &str = "local";
/// File name of the access token inside the data dir.
pub const TOKEN_FILE: &str = "host.token";
/// The policy plugins folder inside the data dir.
pub const PLUGINS_DIR: &str = "plugins";
/// Where plugins are staged (loaded from private copies) inside the data dir.
pub const PLUGINS_STAGING_DIR: &str = "cache/plugins";

#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    pub bind: SocketAddr,
    pub data_dir: Option<PathBuf>,
    pub component: Option<PathBuf>,
    pub allowed_origins: Vec<Origin>,
    pub max_body_bytes: NonZeroUsize,
    pub token_file: Option<PathBuf>,
    pub shutdown_grace_ms: u64,
    pub streams: StreamConfig,
    pub http: HttpConfig,
    #[serde(deserialize_with = "unique_runtimes")]
    pub runtimes: Vec<RuntimeConfig>,
    /// Model providers every embedded runtime serves, by name (`[providers.NAME]`).
    #[serde(deserialize_with = "yoi_runtime::config::deserialize_providers")]
    pub providers: BTreeMap<String, ProviderConfig>,
    /// Clients besides the owner (`[[clients]]`), each with its own token and role.
    #[serde(deserialize_with = "crate::clients::unique_clients")]
    pub clients: Vec<ClientConfig>,
    /// The policy chain (`[[policies]]`), in order; re-read from [`Config::file`] on a
    /// reload.
    pub policies: Vec<PolicyEntry>,
    /// Where policy plugins are dropped (default: `<data_dir>/plugins`).
    pub plugins_dir: Option<PathBuf>,
    /// The file this config was read from (set by [`Config::load`]); a policy reload
    /// reads its `[[policies]]` again.
    #[serde(skip)]
    pub file: Option<PathBuf>,
}

impl Default for Config {
    fn default() -> Self {
        Config {
            bind: DEFAULT_BIND.parse().expect("valid default address"),
            data_dir: None,
            component: None,
            allowed_origins: Vec::new(),
            max_body_bytes: NonZeroUsize::new(1024 * 1024).expect("non-zero"),
            token_file: None,
            shutdown_grace_ms: 5_000,
            streams: StreamConfig::default(),
            http: HttpConfig::default(),
            runtimes: Vec::new(),
            providers: BTreeMap::new(),
            clients: Vec::new(),
            policies: Vec::new(),
            plugins_dir: None,
            file: None,
        }
    }
}

/// One runtime the host serves: its id, kind and component, and the runtime's own
/// settings (the keys `scripted`, `limits`, `log`, `driver`, read by the type
/// `yoi-runtime serve` reads them with). It derefs to those settings.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub id: RuntimeId,
    pub kind: RuntimeKind,
    pub component: Option<PathBuf>,
    pub settings: RuntimeSettings,
}

impl RuntimeConfig {
    /// The embedded runtime served when the config names none.
    pub fn default_local() -> Self {
        RuntimeConfig {
            id: RuntimeId::parse(DEFAULT_RUNTIME).expect("a valid runtime id"),
            kind: RuntimeKind::Embedded,
            component: None,
            settings: RuntimeSettings::default(),
        }
    }
}

impl Deref for RuntimeConfig {
    type Target = RuntimeSettings;

    fn deref(&self) -> &RuntimeSettings {
        &self.settings
    }
}

impl DerefMut for RuntimeConfig {
    fn deref_mut(&mut self) -> &mut RuntimeSettings {
        &mut self.settings
    }
}

/// Keys of a `[[runtimes]]` entry besides the runtime's settings.
const ENTRY_KEYS: &[&str] = &["id", "kind", "component"];

impl<'de> Deserialize<'de> for RuntimeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RuntimeConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a runtime entry")
            }
            // By hand rather than with `#[serde(flatten)]`, which cannot refuse unknown
            // keys and loses their line numbers.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut id = None;
                let mut kind = RuntimeKind::default();
                let mut component = None;
                let mut settings = RuntimeSettings::default();
                let keys = KnownKey(&[ENTRY_KEYS, RuntimeSettings::KEYS]);
                while let Some(key) = map.next_key_seed(KnownKey(keys.0))? {
                    match key {
                        "id" => id = Some(map.next_value()?),
                        "kind" => kind = map.next_value()?,
                        "component" => component = map.next_value()?,
                        key => settings.deserialize_key(key, &mut map)?,
                    }
                }
                let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
                Ok(RuntimeConfig {
                    id,
                    kind,
                    component,
                    settings,
                })
            }
        }
        d.deserialize_map(EntryVisitor)
    }
}

/// Where a runtime runs. Only `embedded` exists today; `remote` comes with remote
/// sources.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    #[default]
    Embedded,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Embedded => "embedded",
        }
    }
}

/// A browser origin, `scheme://host[:port]`, compared exactly with the `Origin` header.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Origin(String);

impl Origin {
    pub fn parse(text: &str) -> Result<Self, String> {
        let rest = text
            .strip_prefix("http://")
            .or_else(|| text.strip_prefix("https://"));
        let valid = rest.is_some_and(|host| {
            !host.is_empty()
                && !host.contains('/')
                && host
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b"-.:[]".contains(&b))
        });
        if valid {
            Ok(Origin(text.to_ascii_lowercase()))
        } else {
            Err(format!(
                "invalid origin {text:?}: write it as the browser sends it, \
                 `http://host[:port]` or `https://host[:port]` with no path"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl<'de> Deserialize<'de> for Origin {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        Origin::parse(&text).map_err(serde::de::Error::custom)
    }
}

fn unique_runtimes<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<RuntimeConfig>, D::Error> {
    let runtimes = Vec::<RuntimeConfig>::deserialize(d)?;
    let mut seen = BTreeSet::new();
    for r in &runtimes {
        if !seen.insert(r.id.as_str()) {
            return Err(serde::de::Error::custom(format!(
                "runtime id `{}` is used twice",
                r.id
            )));
        }
    }
    Ok(runtimes)
}

impl Config {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        yoi_serving::parse_toml(text, origin)
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let mut config: Config = yoi_serving::load_toml(path)?;
        config.file = Some(path.to_path_buf());
        Ok(config)
    }

    /// The policy plugins folder: configured, else `<data_dir>/plugins`.
    pub fn resolved_plugins_dir(&self, data_dir: &Path) -> PathBuf {
        self.plugins_dir
            .clone()
            .unwrap_or_else(|| data_dir.join(PLUGINS_DIR))
    }

    /// Every configured provider, built (API keys read) into a catalog of their models.
    /// Errors name the provider and the key at fault.
    pub fn provider_models(&self) -> Result<ModelCatalog, ProviderError> {
        yoi_runtime::config::provider_models(&self.providers)
    }

    /// The runtimes to serve: the configured ones, or the default embedded `local`.
    pub fn effective_runtimes(&self) -> Vec<RuntimeConfig> {
        if self.runtimes.is_empty() {
            vec![RuntimeConfig::default_local()]
        } else {
            self.runtimes.clone()
        }
    }

    /// The data dir: configured, else `$XDG_DATA_HOME/yoi`, else `~/.local/share/yoi`.
    pub fn resolved_data_dir(&self) -> Result<PathBuf, ConfigError> {
        yoi_serving::resolve_data_dir(self.data_dir.as_deref(), "yoi")
    }

    /// The token file: configured, else `<data_dir>/host.token`.
    pub fn resolved_token_file(&self, data_dir: &Path) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| data_dir.join(TOKEN_FILE))
    }
}

/// `$XDG_DATA_HOME/yoi`, else `$HOME/.local/share/yoi` (what `yoi-tui` looks at too).
pub fn default_data_dir() -> Option<PathBuf> {
    yoi_serving::default_data_dir("yoi")
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use yoi_protocol::is_runtime_id;
    use yoi_runtime::config::{DriverSettings, DurabilitySetting};

    fn err(text: &str) -> String {
        Config::from_toml(text, "test.toml")
            .unwrap_err()
            .to_string()
    }

    #[test]
    fn empty_config_is_all_defaults() {
        let c = Config::from_toml("", "x").unwrap();
        assert_eq!(c, Config::default());
        assert_eq!(c.bind.to_string(), DEFAULT_BIND);
        let runtimes = c.effective_runtimes();
        assert_eq!(runtimes.len(), 1);
        assert_eq!(runtimes[0].id.as_str(), "local");
    }

    #[test]
    fn full_config_parses() {
        let c = Config::from_toml(
            r#"
bind = "0.0.0.0:9000"
data_dir = "/tmp/yoi"
allowed_origins = ["http://localhost:5173"]
max_body_bytes = 4096
[streams]
replay_page = 4
queue = 1024
max_open = 3
[http]
request_timeout_ms = 500
[[runtimes]]
id = "a"
[runtimes.scripted]
token_delay_ms = 0
[runtimes.log]
retain_events = 10
durability = "full"
[runtimes.driver]
tool_timeout_ms = 1500
max_model_output_bytes = 65536
[[runtimes]]
id = "b-2"
"#,
            "x",
        )
        .unwrap();
        assert_eq!(c.bind.port(), 9000);
        assert_eq!(c.streams.replay_page.get(), 4);
        assert_eq!(c.streams.ping_interval_ms.get(), 20_000);
        // Older files set the stream queue, which no longer exists: still accepted.
        assert_eq!(c.streams.unused_queue.map(|q| q.get()), Some(1024));
        assert_eq!(c.streams.settings().limits.max_open, 3);
        assert_eq!(c.http.limits().request_timeout, Duration::from_millis(500));
        assert_eq!(
            c.http.max_connections,
            HttpConfig::default().max_connections
        );
        assert_eq!(c.runtimes.len(), 2);
        assert_eq!(c.runtimes[0].log.retain_events, Some(10));
        assert_eq!(c.runtimes[0].log.durability, DurabilitySetting::Full);
        assert_eq!(c.runtimes[0].scripted.token_delay_ms, 0);
        let driver = c.runtimes[0].driver.to_driver_config();
        assert_eq!(driver.tool_timeout, Duration::from_millis(1500));
        assert_eq!(driver.max_model_output_bytes, 65536);
        assert_eq!(
            driver.model_idle_timeout,
            yoi_runtime::DriverConfig::default().model_idle_timeout
        );
        assert_eq!(c.runtimes[1].driver, DriverSettings::default());
        assert_eq!(c.allowed_origins[0].as_str(), "http://localhost:5173");
    }

    #[test]
    fn unknown_key_names_key_and_line() {
        let e = err("bind = \"127.0.0.1:1\"\n\n[streams]\nreplay_page = 3\nqeueu = 4\n");
        assert!(e.contains("qeueu"), "{e}");
        assert!(e.contains("line 5"), "{e}");
        assert!(e.contains("test.toml"), "{e}");
    }

    #[test]
    fn bad_values_name_key_and_line() {
        let e = err("bind = \"localhost\"\n");
        assert!(e.contains("line 1") && e.contains("bind"), "{e}");
        let e = err("\n[streams]\nreplay_page = 0\n");
        assert!(e.contains("line 3") && e.contains("replay_page"), "{e}");
        let e = err("\n\n[[runtimes]]\nid = \"Not OK\"\n");
        assert!(e.contains("line 4") && e.contains("runtime id"), "{e}");
        let e = err("allowed_origins = [\"localhost:3000\"]\n");
        assert!(e.contains("line 1") && e.contains("origin"), "{e}");
        let e = err("[[runtimes]]\nid = \"a\"\nkind = \"martian\"\n");
        assert!(e.contains("line 3") && e.contains("kind"), "{e}");
        let e = err("[[runtimes]]\nid = \"a\"\n[[runtimes]]\nid = \"a\"\n");
        assert!(e.contains("used twice"), "{e}");
        let e = err("[[runtimes]]\nid = \"a\"\n[runtimes.driver]\nmax_concurrent_tools = 5000\n");
        assert!(e.contains("line 4") && e.contains("at most 4096"), "{e}");
        let e = err("[[runtimes]]\nid = \"a\"\n\n[runtimes.lgo]\n");
        assert!(e.contains("line 4") && e.contains("lgo"), "{e}");
        let e = err("[[runtimes]]\nkind = \"embedded\"\n");
        assert!(e.contains("line 1") && e.contains("id"), "{e}");
        let e = err("[http]\nmax_connections = 0\n");
        assert!(e.contains("line 2") && e.contains("max_connections"), "{e}");
        let e = err("[[runtimes]]\nid = \"a\"\n[runtimes.driver]\nmax_concurrent_tools = 0\n");
        assert!(
            e.contains("line 4") && e.contains("max_concurrent_tools"),
            "{e}"
        );
    }

    #[test]
    fn providers_parse_and_bad_ones_are_named() {
        let c = Config::from_toml(
            "[providers.local]\nkind = \"openai\"\nbase_url = \"http://127.0.0.1:8080/v1\"\nmodels = [\"m\"]\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.providers["local"].models[0].id, "m");
        let e = err(
            "[providers.local]\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"m\"]\ntemprature = 1\n",
        );
        assert!(e.contains("line 5") && e.contains("temprature"), "{e}");
        let e = err("[providers.local]\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = []\n");
        assert!(e.contains("providers.local.models"), "{e}");
        let e = err(
            "[providers.scripted]\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"m\"]\n",
        );
        assert!(
            e.contains("providers.scripted") && e.contains("not `scripted`"),
            "{e}"
        );
        let e = err(
            "[providers.local]\nkind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"m\"]\napi_key = \"sk-do-not-print\"\n",
        );
        assert!(e.contains("line 5") && e.contains("api_key_env"), "{e}");
        assert!(
            !e.contains("sk-do-not-print"),
            "the key is not repeated: {e}"
        );
    }

    #[test]
    fn origins_and_ids() {
        assert!(Origin::parse("https://example.com:8443").is_ok());
        assert!(Origin::parse("http://[::1]:3000").is_ok());
        assert!(Origin::parse("http://x/").is_err());
        assert!(Origin::parse("*").is_err());
        assert!(is_runtime_id("local"));
        assert!(!is_runtime_id(""));
        assert!(!is_runtime_id("a.b"));
        assert!(!is_runtime_id("a~b"));
    }
}
