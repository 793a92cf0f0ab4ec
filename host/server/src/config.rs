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
//! [runtimes.scripted]               # and `limits`, `log`, `driver`, `core`: the
//! token_delay_ms = 30               # runtime's settings (yoi_runtime::config)
//!
//! [[runtimes]]                      # a `yoi-runtime serve` elsewhere
//! id = "gpu-box"
//! kind = "remote"
//! url = "http://10.0.0.7:38800"
//! token_file = "/etc/yoi/gpu-box.token"   # or token_env = "YOI_GPU_BOX_TOKEN"
//! connect_timeout_ms = 5000
//! request_timeout_ms = 30000
//! stream_idle_timeout_ms = 60000  # a silent upstream stream (no pings) is a stalled runtime
//! window_bytes = 134217728        # memory for its recent events (older ones: replayed by it)
//! ```
//!
//! Unknown keys and bad values are errors that name the key and its line (serde's
//! `deny_unknown_fields` and validating newtypes, reported by the `toml` crate with the
//! span of the offending value).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU64, NonZeroUsize};
use std::ops::{Deref, DerefMut};
use std::path::{Path, PathBuf};

use serde::de::{self, DeserializeSeed, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};
use yoi_driver::{ModelCatalog, ProviderConfig};
use yoi_policy_host::PolicyEntry;

pub use crate::clients::ClientConfig;
pub use yoi_runtime::config::RuntimeId;
pub use yoi_runtime::config::RuntimeSettings;
use yoi_runtime::config::{KnownKey, ProviderError};
pub use yoi_serving::ConfigError;
use yoi_serving::{HttpConfig, StreamConfig, UNQUOTED};

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

/// One runtime the host serves: its id and where it runs, with the keys of that kind.
#[derive(Debug, Clone, PartialEq)]
pub struct RuntimeConfig {
    pub id: RuntimeId,
    pub source: SourceConfig,
}

/// Where a runtime runs (`kind`), and that kind's keys.
#[derive(Debug, Clone, PartialEq)]
pub enum SourceConfig {
    Embedded(EmbeddedConfig),
    Remote(RemoteConfig),
}

/// A runtime in this process: its component and the runtime's own settings (the keys
/// `scripted`, `limits`, `log`, `driver`, `core`, read by the type `yoi-runtime serve`
/// reads them with). It derefs to those settings.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct EmbeddedConfig {
    pub component: Option<PathBuf>,
    pub settings: RuntimeSettings,
}

/// A `yoi-runtime serve` reached over the runtime API.
#[derive(Debug, Clone, PartialEq)]
pub struct RemoteConfig {
    /// `http://host:port` of the runtime server (never shown to clients or logged).
    pub url: String,
    pub token: TokenSource,
    pub connect_timeout_ms: NonZeroU64,
    pub request_timeout_ms: NonZeroU64,
    /// An upstream stream that brings nothing, not even a ping, this long is a stalled
    /// runtime: the host drops it and reconnects.
    pub stream_idle_timeout_ms: NonZeroU64,
    /// Estimated bytes of the runtime's recent events the host keeps (at most 65,536
    /// of them); streams further behind are `lagged` and resume from the runtime.
    pub window_bytes: NonZeroU64,
}

/// Where the host finds the token a remote runtime expects.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TokenSource {
    /// A file holding the token (as `yoi-runtime serve` writes it).
    File(PathBuf),
    /// An environment variable holding the token.
    Env(String),
}

impl RuntimeConfig {
    /// The embedded runtime served when the config names none.
    pub fn default_local() -> Self {
        Self::embedded(DEFAULT_RUNTIME, RuntimeSettings::default())
    }

    /// An embedded runtime `id` (a valid runtime id) with `settings` and the default
    /// component.
    pub fn embedded(id: &str, settings: RuntimeSettings) -> Self {
        RuntimeConfig {
            id: RuntimeId::parse(id).expect("a valid runtime id"),
            source: SourceConfig::Embedded(EmbeddedConfig {
                component: None,
                settings,
            }),
        }
    }

    /// The runtime's own settings, for an embedded runtime.
    pub fn settings_mut(&mut self) -> Option<&mut RuntimeSettings> {
        match &mut self.source {
            SourceConfig::Embedded(e) => Some(&mut e.settings),
            SourceConfig::Remote(_) => None,
        }
    }

    pub fn kind(&self) -> RuntimeKind {
        match self.source {
            SourceConfig::Embedded(_) => RuntimeKind::Embedded,
            SourceConfig::Remote(_) => RuntimeKind::Remote,
        }
    }
}

impl Deref for EmbeddedConfig {
    type Target = RuntimeSettings;

    fn deref(&self) -> &RuntimeSettings {
        &self.settings
    }
}

impl DerefMut for EmbeddedConfig {
    fn deref_mut(&mut self) -> &mut RuntimeSettings {
        &mut self.settings
    }
}

/// Keys of every `[[runtimes]]` entry.
const ENTRY_KEYS: &[&str] = &["id", "kind"];
/// Keys of an embedded runtime besides the runtime's settings.
const EMBEDDED_KEYS: &[&str] = &["component"];
/// Keys of a remote runtime.
const REMOTE_KEYS: &[&str] = &[
    "url",
    "token_file",
    "token_env",
    "connect_timeout_ms",
    "request_timeout_ms",
    "stream_idle_timeout_ms",
    "window_bytes",
];

const DEFAULT_CONNECT_TIMEOUT_MS: u64 = 5_000;
const DEFAULT_REQUEST_TIMEOUT_MS: u64 = 30_000;
/// The runtime pings every 20 s: three missed pings.
const DEFAULT_STREAM_IDLE_TIMEOUT_MS: u64 = 60_000;
const DEFAULT_WINDOW_BYTES: u64 = 128 << 20;

impl<'de> Deserialize<'de> for RuntimeConfig {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = RuntimeConfig;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a runtime entry")
            }
            // By hand rather than with `#[serde(flatten)]` or a tagged enum, which cannot
            // refuse unknown keys and lose their line numbers. Once `kind` is read, a key
            // of the other kind is refused as unknown (at its line); one read before
            // `kind` is refused at the `kind` line.
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut id = None;
                let mut kind = None;
                let mut embedded = EmbeddedConfig::default();
                let mut url: Option<String> = None;
                let mut token_file: Option<PathBuf> = None;
                let mut token_env: Option<String> = None;
                let mut connect = NonZeroU64::new(DEFAULT_CONNECT_TIMEOUT_MS).expect("non-zero");
                let mut request = NonZeroU64::new(DEFAULT_REQUEST_TIMEOUT_MS).expect("non-zero");
                let mut idle = NonZeroU64::new(DEFAULT_STREAM_IDLE_TIMEOUT_MS).expect("non-zero");
                let mut window_bytes = NonZeroU64::new(DEFAULT_WINDOW_BYTES).expect("non-zero");
                let (mut embedded_key, mut remote_key) = (None, None);
                loop {
                    let known: &[&[&str]] = match kind {
                        None => &[
                            ENTRY_KEYS,
                            REMOTE_KEYS,
                            EMBEDDED_KEYS,
                            RuntimeSettings::KEYS,
                        ],
                        Some(RuntimeKind::Embedded) => {
                            &[ENTRY_KEYS, EMBEDDED_KEYS, RuntimeSettings::KEYS]
                        }
                        Some(RuntimeKind::Remote) => &[ENTRY_KEYS, REMOTE_KEYS],
                    };
                    let Some(key) = map.next_key_seed(KnownKey(known))? else {
                        break;
                    };
                    if REMOTE_KEYS.contains(&key) {
                        remote_key.get_or_insert(key);
                    } else if !ENTRY_KEYS.contains(&key) {
                        embedded_key.get_or_insert(key);
                    }
                    match key {
                        "id" => id = Some(map.next_value()?),
                        "kind" => {
                            kind = Some(map.next_value_seed(KindSeed {
                                embedded_key,
                                remote_key,
                            })?)
                        }
                        "component" => embedded.component = map.next_value()?,
                        "url" => url = Some(map.next_value_seed(RemoteUrl)?),
                        "token_file" => token_file = Some(map.next_value()?),
                        "token_env" => token_env = Some(map.next_value()?),
                        "connect_timeout_ms" => connect = map.next_value()?,
                        "request_timeout_ms" => request = map.next_value()?,
                        "stream_idle_timeout_ms" => idle = map.next_value()?,
                        "window_bytes" => window_bytes = map.next_value()?,
                        key => embedded.settings.deserialize_key(key, &mut map)?,
                    }
                }
                let id = id.ok_or_else(|| de::Error::missing_field("id"))?;
                let source = match kind.unwrap_or_default() {
                    RuntimeKind::Embedded => SourceConfig::Embedded(embedded),
                    RuntimeKind::Remote => {
                        let url = url.ok_or_else(|| de::Error::missing_field("url"))?;
                        let token = match (token_file, token_env) {
                            (Some(file), None) => TokenSource::File(file),
                            (None, Some(var)) => TokenSource::Env(var),
                            _ => {
                                return Err(de::Error::custom(
                                    "a remote runtime takes exactly one of `token_file` and \
                                     `token_env`",
                                ));
                            }
                        };
                        SourceConfig::Remote(RemoteConfig {
                            url,
                            token,
                            connect_timeout_ms: connect,
                            request_timeout_ms: request,
                            stream_idle_timeout_ms: idle,
                            window_bytes,
                        })
                    }
                };
                Ok(RuntimeConfig { id, source })
            }
        }
        d.deserialize_map(EntryVisitor)
    }
}

/// Reads `kind`, refusing it (at its line) when a key of the other kind came before.
struct KindSeed {
    embedded_key: Option<&'static str>,
    remote_key: Option<&'static str>,
}

impl<'de> DeserializeSeed<'de> for KindSeed {
    type Value = RuntimeKind;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<RuntimeKind, D::Error> {
        let kind = RuntimeKind::deserialize(d)?;
        let other = match kind {
            RuntimeKind::Embedded => self.remote_key,
            RuntimeKind::Remote => self.embedded_key,
        };
        match other {
            Some(key) => Err(de::Error::custom(format!(
                "`{key}` is not a key of a runtime of kind `{}`",
                kind.as_str()
            ))),
            None => Ok(kind),
        }
    }
}

/// Reads a remote runtime's `url`: `http://host:port` (the error never repeats it: it
/// may carry credentials).
struct RemoteUrl;

impl<'de> DeserializeSeed<'de> for RemoteUrl {
    type Value = String;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<String, D::Error> {
        let url = String::deserialize(d)?;
        let host = url.strip_prefix("http://").unwrap_or_default();
        if host.is_empty() || host.contains(['@', '/', '?', '#']) {
            return Err(de::Error::custom(format_args!(
                "`url`: a remote runtime's url is `http://host:port` (no path, no user info; \
                 for TLS put a proxy in front of the runtime){UNQUOTED}"
            )));
        }
        Ok(url)
    }
}

/// Where a runtime runs.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RuntimeKind {
    /// In this process (`LocalRuntime` on the runtime component).
    #[default]
    Embedded,
    /// A `yoi-runtime serve` process, over the runtime API.
    Remote,
}

impl RuntimeKind {
    pub fn as_str(self) -> &'static str {
        match self {
            RuntimeKind::Embedded => "embedded",
            RuntimeKind::Remote => "remote",
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
    // Every runtime is a part of the multiplexed stream's cursors, which are bounded.
    let max = yoi_protocol::HostCursor::MAX_PARTS;
    if runtimes.len() > max {
        return Err(serde::de::Error::custom(format!(
            "at most {max} runtimes (there are {})",
            runtimes.len()
        )));
    }
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
        let embedded = |i: usize| match &c.runtimes[i].source {
            SourceConfig::Embedded(e) => e.clone(),
            SourceConfig::Remote(_) => panic!("runtime {i} is embedded"),
        };
        assert_eq!(embedded(0).log.retain_events, Some(10));
        assert_eq!(embedded(0).log.durability, DurabilitySetting::Full);
        assert_eq!(embedded(0).scripted.token_delay_ms, 0);
        let driver = embedded(0).driver.to_driver_config();
        assert_eq!(driver.tool_timeout, Duration::from_millis(1500));
        assert_eq!(driver.max_model_output_bytes, 65536);
        assert_eq!(
            driver.model_idle_timeout,
            yoi_runtime::DriverConfig::default().model_idle_timeout
        );
        assert_eq!(embedded(1).driver, DriverSettings::default());
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
        let many: String = (0..=yoi_protocol::HostCursor::MAX_PARTS)
            .map(|i| format!("[[runtimes]]\nid = \"r{i}\"\n"))
            .collect();
        assert!(err(&many).contains("at most 1024 runtimes"));
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
    fn remote_runtimes_parse_and_keys_of_the_other_kind_are_refused_at_their_line() {
        let c = Config::from_toml(
            "[[runtimes]]\nid = \"r\"\nkind = \"remote\"\nurl = \"http://127.0.0.1:9\"\n\
             token_env = \"T\"\nrequest_timeout_ms = 700\n",
            "x",
        )
        .unwrap();
        assert_eq!(c.runtimes[0].kind(), RuntimeKind::Remote);
        let SourceConfig::Remote(remote) = &c.runtimes[0].source else {
            panic!("a remote runtime")
        };
        assert_eq!(remote.token, TokenSource::Env("T".into()));
        assert_eq!(remote.request_timeout_ms.get(), 700);
        assert_eq!(remote.connect_timeout_ms.get(), DEFAULT_CONNECT_TIMEOUT_MS);

        let remote = "[[runtimes]]\nid = \"r\"\nkind = \"remote\"\nurl = \"http://h:1\"\n";
        let e = err(&format!(
            "{remote}token_env = \"T\"\ncomponent = \"x.wasm\"\n"
        ));
        // (The toml crate hands keys over in name order: `component` comes before
        // `kind`, so it is refused at the `kind` line, naming it.)
        assert!(e.contains("line 3") && e.contains("`component`"), "{e}");
        let e = err(&format!("{remote}token_env = \"T\"\n[runtimes.scripted]\n"));
        assert!(e.contains("line 6") && e.contains("scripted"), "{e}");
        let e = err("[[runtimes]]\nid = \"e\"\nurl = \"http://h:1\"\nkind = \"embedded\"\n");
        assert!(e.contains("line 3") && e.contains("`url`"), "{e}");
        let e = err("[[runtimes]]\nid = \"e\"\nkind = \"embedded\"\ntoken_env = \"T\"\n");
        assert!(e.contains("line 4") && e.contains("token_env"), "{e}");
        let e = err(remote);
        assert!(e.contains("token_file") && e.contains("token_env"), "{e}");
        let e =
            err("[[runtimes]]\nid = \"r\"\nkind = \"remote\"\nurl = \"http://u:hunter2@h:1\"\n");
        assert!(e.contains("line 4") && !e.contains("hunter2"), "{e}");
        let e = err("[[runtimes]]\nid = \"r\"\nkind = \"remote\"\nurl = \"https://h\"\n");
        assert!(
            e.contains("line 4") && e.contains("http://host:port"),
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
