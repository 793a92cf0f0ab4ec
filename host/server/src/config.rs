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
//! [streams]
//! replay_page = 512                 # events per replay page
//! ping_interval_ms = 20000          # WebSocket ping on every stream
//! write_timeout_ms = 30000          # a client that accepts nothing for this long is dropped
//!
//! [providers.local]                 # an OpenAI-compatible server (see yoi_driver::openai)
//! kind = "openai"
//! base_url = "http://127.0.0.1:8080/v1"
//! models = ["smollm2"]              # workers use model "local/smollm2"
//! context_tokens = 4096
//!
//! [[runtimes]]                      # default: one embedded runtime "local"
//! id = "local"
//! kind = "embedded"
//! component = "…"                   # default: the top-level `component`
//! [runtimes.scripted]
//! token_delay_ms = 30
//! reasoning = true
//! context_tokens = 2048             # default: unlimited
//! [runtimes.limits]
//! max_workers = 10000
//! max_input_bytes = 65536
//! default_max_steps = 8
//! [runtimes.log]
//! window_capacity = 65536
//! broadcast_capacity = 16384
//! retain_events = 1000000           # default: keep every delta
//! durability = "normal"             # or "full"
//! ```
//!
//! Unknown keys and bad values are errors that name the key and its line (serde's
//! `deny_unknown_fields` and validating newtypes, reported by the `toml` crate with the
//! span of the offending value).

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;
use std::net::SocketAddr;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Deserializer};
use yoi_driver::{ModelCatalog, OpenAiProvider, ProviderConfig};
use yoi_protocol::is_runtime_id;

/// The default listen address: loopback only.
pub const DEFAULT_BIND: &str = "127.0.0.1:38700";
/// The id of the embedded runtime served when the config names none.
pub const DEFAULT_RUNTIME: &str = "local";
/// File name of the access token inside the data dir.
pub const TOKEN_FILE: &str = "host.token";

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
    #[serde(deserialize_with = "unique_runtimes")]
    pub runtimes: Vec<RuntimeConfig>,
    /// Model providers every embedded runtime serves, by name (`[providers.NAME]`).
    #[serde(deserialize_with = "valid_providers")]
    pub providers: BTreeMap<String, ProviderConfig>,
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
            runtimes: Vec::new(),
            providers: BTreeMap::new(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StreamConfig {
    /// Events per replay page (replay is backpressured, never lagged).
    pub replay_page: NonZeroUsize,
    pub ping_interval_ms: NonZeroU64,
    pub write_timeout_ms: NonZeroU64,
    /// No longer used: a stream's queue is its place in its runtime's live buffer
    /// (`runtimes.log.broadcast_capacity`). Accepted so older config files still load;
    /// the host logs a warning when it is set.
    #[serde(rename = "queue")]
    pub unused_queue: Option<NonZeroUsize>,
}

impl Default for StreamConfig {
    fn default() -> Self {
        StreamConfig {
            replay_page: NonZeroUsize::new(512).expect("non-zero"),
            ping_interval_ms: NonZeroU64::new(20_000).expect("non-zero"),
            write_timeout_ms: NonZeroU64::new(30_000).expect("non-zero"),
            unused_queue: None,
        }
    }
}

/// One runtime the host serves.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RuntimeConfig {
    pub id: RuntimeId,
    #[serde(default)]
    pub kind: RuntimeKind,
    #[serde(default)]
    pub component: Option<PathBuf>,
    #[serde(default)]
    pub scripted: ScriptedSettings,
    #[serde(default)]
    pub limits: LimitSettings,
    #[serde(default)]
    pub log: LogSettings,
    #[serde(default)]
    pub driver: DriverSettings,
}

impl RuntimeConfig {
    /// The embedded runtime served when the config names none.
    pub fn default_local() -> Self {
        RuntimeConfig {
            id: RuntimeId(DEFAULT_RUNTIME.into()),
            kind: RuntimeKind::Embedded,
            component: None,
            scripted: ScriptedSettings::default(),
            limits: LimitSettings::default(),
            log: LogSettings::default(),
            driver: DriverSettings::default(),
        }
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

/// The `scripted` model every embedded runtime serves.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ScriptedSettings {
    /// Pause between two streamed tokens (0: as fast as possible).
    pub token_delay_ms: u64,
    pub reasoning: bool,
    /// Its context window in words (unset: unlimited); requests are trimmed to fit it
    /// and a longer prompt fails with `context_length`, as with a real model.
    pub context_tokens: Option<NonZeroU32>,
}

impl ScriptedSettings {
    pub fn to_scripted_config(&self) -> yoi_driver::ScriptedConfig {
        yoi_driver::ScriptedConfig {
            token_delay: Duration::from_millis(self.token_delay_ms),
            reasoning: self.reasoning,
            context_tokens: self.context_tokens.map(|n| u64::from(n.get())),
            ..yoi_driver::ScriptedConfig::default()
        }
    }
}

impl Default for ScriptedSettings {
    fn default() -> Self {
        let demo = yoi_driver::ScriptedConfig::demo();
        ScriptedSettings {
            token_delay_ms: demo.token_delay.as_millis() as u64,
            reasoning: demo.reasoning,
            context_tokens: None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LimitSettings {
    pub max_workers: u32,
    pub max_input_bytes: u32,
    pub default_max_steps: u32,
}

impl Default for LimitSettings {
    fn default() -> Self {
        let l = yoi_protocol::Limits::default();
        LimitSettings {
            max_workers: l.max_workers,
            max_input_bytes: l.max_input_bytes,
            default_max_steps: l.default_max_steps,
        }
    }
}

impl From<&LimitSettings> for yoi_protocol::Limits {
    fn from(l: &LimitSettings) -> Self {
        yoi_protocol::Limits {
            max_workers: l.max_workers,
            max_input_bytes: l.max_input_bytes,
            default_max_steps: l.default_max_steps,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSettings {
    pub window_capacity: usize,
    pub broadcast_capacity: NonZeroUsize,
    /// Keep deltas of only the most recent N events; older cursors expire.
    pub retain_events: Option<u64>,
    pub durability: DurabilitySetting,
}

impl Default for LogSettings {
    fn default() -> Self {
        let l = yoi_eventlog::LogConfig::default();
        LogSettings {
            window_capacity: l.window_capacity,
            broadcast_capacity: NonZeroUsize::new(l.broadcast_capacity.max(1)).expect("non-zero"),
            retain_events: l.retain_events,
            durability: DurabilitySetting::Normal,
        }
    }
}

impl LogSettings {
    pub fn to_log_config(&self) -> yoi_eventlog::LogConfig {
        yoi_eventlog::LogConfig {
            window_capacity: self.window_capacity,
            broadcast_capacity: self.broadcast_capacity.get(),
            retain_events: self.retain_events,
            durability: match self.durability {
                DurabilitySetting::Normal => yoi_eventlog::Durability::Normal,
                DurabilitySetting::Full => yoi_eventlog::Durability::Full,
            },
            ..yoi_eventlog::LogConfig::default()
        }
    }
}

/// How the runtime's driver runs model and tool calls.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DriverSettings {
    /// Longest a tool call may take (an error tool result after it).
    pub tool_timeout_ms: NonZeroU64,
    /// Longest a model call may produce nothing (the run fails with `timeout`).
    pub model_idle_timeout_ms: NonZeroU64,
    /// Tool calls running at once (1 to 4,096); more wait their turn.
    #[serde(deserialize_with = "tool_slots")]
    pub max_concurrent_tools: NonZeroUsize,
    /// Most bytes one model call may stream (the run fails with `output_too_large`).
    pub max_model_output_bytes: NonZeroUsize,
}

/// Most tool slots a runtime may have: each is a blocking thread when busy.
const MAX_TOOL_SLOTS: usize = 4096;

fn tool_slots<'de, D: Deserializer<'de>>(d: D) -> Result<NonZeroUsize, D::Error> {
    let n = NonZeroUsize::deserialize(d)?;
    if n.get() > MAX_TOOL_SLOTS {
        return Err(serde::de::Error::custom(format!(
            "at most {MAX_TOOL_SLOTS} tool calls can run at once, not {n}"
        )));
    }
    Ok(n)
}

impl Default for DriverSettings {
    fn default() -> Self {
        let d = yoi_runtime::DriverConfig::default();
        let ms = |t: Duration| NonZeroU64::new(t.as_millis() as u64).expect("non-zero");
        DriverSettings {
            tool_timeout_ms: ms(d.tool_timeout),
            model_idle_timeout_ms: ms(d.model_idle_timeout),
            max_concurrent_tools: NonZeroUsize::new(d.max_concurrent_tools).expect("non-zero"),
            max_model_output_bytes: NonZeroUsize::new(d.max_model_output_bytes).expect("non-zero"),
        }
    }
}

impl DriverSettings {
    pub fn to_driver_config(&self) -> yoi_runtime::DriverConfig {
        yoi_runtime::DriverConfig {
            tool_timeout: Duration::from_millis(self.tool_timeout_ms.get()),
            model_idle_timeout: Duration::from_millis(self.model_idle_timeout_ms.get()),
            max_concurrent_tools: self.max_concurrent_tools.get(),
            max_model_output_bytes: self.max_model_output_bytes.get(),
        }
    }
}

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DurabilitySetting {
    #[default]
    Normal,
    Full,
}

/// A runtime id: 1 to 64 of `a-z 0-9 _ -`, so it is safe in URLs and in host cursors.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RuntimeId(String);

impl RuntimeId {
    pub fn parse(text: &str) -> Result<Self, String> {
        if is_runtime_id(text) {
            Ok(RuntimeId(text.to_string()))
        } else {
            Err(format!(
                "invalid runtime id {text:?}: use 1 to 64 of a-z, 0-9, `_` and `-`"
            ))
        }
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for RuntimeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for RuntimeId {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        RuntimeId::parse(&text).map_err(serde::de::Error::custom)
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

/// Provider names are used in model names (`NAME/model-id`): the runtime-id alphabet,
/// and not `scripted`. Each table is checked as a whole (key sources, models, values).
fn valid_providers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ProviderConfig>, D::Error> {
    let providers = BTreeMap::<String, ProviderConfig>::deserialize(d)?;
    for (name, provider) in &providers {
        if !is_runtime_id(name) || name == yoi_driver::scripted::MODEL_NAME {
            return Err(serde::de::Error::custom(format!(
                "providers.{name}: a provider name is 1 to 64 of a-z, 0-9, `_` and `-`, and not `scripted`"
            )));
        }
        provider
            .validate()
            .map_err(|e| serde::de::Error::custom(format!("providers.{name}.{e}")))?;
    }
    Ok(providers)
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
    #[error("providers.{name}.{message}")]
    Provider { name: String, message: String },
    #[error(
        "no data directory: set --data-dir (or `data_dir` in the config), or XDG_DATA_HOME or HOME"
    )]
    NoDataDir,
}

impl Config {
    /// Parses a config file's text; `origin` names it in errors.
    pub fn from_toml(text: &str, origin: &str) -> Result<Config, ConfigError> {
        toml::from_str(text).map_err(|e| ConfigError::Invalid {
            path: origin.to_string(),
            message: config_message(&e, text),
        })
    }

    pub fn load(path: &Path) -> Result<Config, ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| ConfigError::Read {
            path: path.display().to_string(),
            source,
        })?;
        Self::from_toml(&text, &path.display().to_string())
    }

    /// Every configured provider, built (API keys read) into a catalog of their models.
    /// Errors name the provider and the key at fault.
    pub fn provider_models(&self) -> Result<ModelCatalog, ConfigError> {
        let mut catalog = ModelCatalog::new();
        for (name, provider) in &self.providers {
            OpenAiProvider::register(name, provider, &mut catalog).map_err(|message| {
                ConfigError::Provider {
                    name: name.clone(),
                    message,
                }
            })?;
        }
        Ok(catalog)
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
        if let Some(dir) = &self.data_dir {
            return Ok(dir.clone());
        }
        default_data_dir().ok_or(ConfigError::NoDataDir)
    }

    /// The token file: configured, else `<data_dir>/host.token`.
    pub fn resolved_token_file(&self, data_dir: &Path) -> PathBuf {
        self.token_file
            .clone()
            .unwrap_or_else(|| data_dir.join(TOKEN_FILE))
    }
}

/// The parser's message, which quotes the offending line; except for an API key written
/// into the file, whose line is not repeated (it would put the key into logs).
fn config_message(e: &toml::de::Error, text: &str) -> String {
    if e.message().contains("unknown field `api_key`") {
        let line = e.span().map_or(0, |span| {
            text.as_bytes()[..span.start.min(text.len())]
                .iter()
                .filter(|&&b| b == b'\n')
                .count()
                + 1
        });
        return format!(
            "line {line}: `api_key` is not a config key: keep the key out of the file and \
             name where it is with `api_key_env` (an environment variable) or `api_key_file`"
        );
    }
    e.to_string()
}

/// `$XDG_DATA_HOME/yoi`, else `$HOME/.local/share/yoi` (what `yoi-tui` looks at too).
pub fn default_data_dir() -> Option<PathBuf> {
    let non_empty = |name| std::env::var_os(name).filter(|v| !v.is_empty());
    if let Some(xdg) = non_empty("XDG_DATA_HOME") {
        return Some(PathBuf::from(xdg).join("yoi"));
    }
    non_empty("HOME").map(|home| PathBuf::from(home).join(".local/share/yoi"))
}

#[cfg(test)]
mod tests {
    use super::*;

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
