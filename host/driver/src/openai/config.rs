//! `[providers.NAME]` with `kind = "openai"`: an OpenAI-compatible chat-completions
//! server (OpenAI, vLLM, Ollama, llama.cpp's server, DeepSeek, OpenRouter, LM Studio...).
//!
//! ```toml
//! [providers.local]
//! kind = "openai"
//! base_url = "http://127.0.0.1:8080/v1"   # the API root; /chat/completions is appended
//! api_key_env = "LOCAL_KEY"                # or api_key_file = "/run/secrets/key"; or neither
//! models = ["smollm2", { id = "qwen3", context_tokens = 32768 }]   # or ["*"]: any model id
//! context_tokens = 8192                    # the default window of its models
//! max_tokens = 1024                        # default request parameters (all optional)
//! temperature = 0.7
//! reasoning_effort = "low"
//! connect_timeout_ms = 10000
//! idle_timeout_ms = 120000                 # longest silence before the answer or between chunks
//! max_retries = 2                          # tries again before the first byte of an answer
//! max_retry_wait_ms = 20000                # longest wait between tries (also for Retry-After)
//! headers = { "X-Title" = "yoi" }
//! think_tags = false                       # split <think>…</think> out of the content
//! reasoning_history = "tool_calls"         # "none" | "tool_calls" | "all" (default: see below)
//! ```
//!
//! A worker's model is `NAME/model-id`. The key itself never appears in a config file,
//! an event, a log line, an error or an API answer.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64};
use std::path::PathBuf;
use std::time::Duration;

use serde::de::{self, MapAccess, Visitor};
use serde::{Deserialize, Deserializer};

/// The window assumed for a model whose provider names none.
pub const DEFAULT_CONTEXT_TOKENS: u32 = 8192;
/// Most tokens held back for the answer when the model has no `max_tokens`.
const MAX_DEFAULT_RESERVE: u32 = 4096;

/// The provider kinds yoi speaks.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ProviderKind {
    /// OpenAI-compatible chat completions over SSE.
    Openai,
}

/// One `[providers.NAME]` table.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProviderConfig {
    pub kind: ProviderKind,
    pub base_url: BaseUrl,
    #[serde(default)]
    pub api_key_env: Option<String>,
    #[serde(default)]
    pub api_key_file: Option<PathBuf>,
    pub models: Vec<ModelEntry>,
    #[serde(default)]
    pub context_tokens: Option<NonZeroU32>,
    #[serde(default)]
    pub max_tokens: Option<NonZeroU32>,
    #[serde(default)]
    pub temperature: Option<f64>,
    #[serde(default)]
    pub reasoning_effort: Option<String>,
    #[serde(default = "default_connect_timeout")]
    pub connect_timeout_ms: NonZeroU64,
    #[serde(default = "default_idle_timeout")]
    pub idle_timeout_ms: NonZeroU64,
    /// Tries again after a refused connection, `408`, `429` or `5xx`, before the first
    /// byte of an answer only.
    #[serde(default = "default_max_retries")]
    pub max_retries: u32,
    /// Longest wait between two tries; a server asking for longer is not waited for.
    #[serde(default = "default_max_retry_wait")]
    pub max_retry_wait_ms: NonZeroU64,
    #[serde(default)]
    pub headers: BTreeMap<String, String>,
    #[serde(default)]
    pub think_tags: bool,
    /// Default: `tool_calls` for DeepSeek (its thinking mode refuses a request without
    /// the reasoning of earlier tool-calling turns), `none` elsewhere.
    #[serde(default)]
    pub reasoning_history: Option<ReasoningHistory>,
}

fn default_connect_timeout() -> NonZeroU64 {
    NonZeroU64::new(10_000).expect("non-zero")
}

fn default_max_retries() -> u32 {
    2
}

fn default_max_retry_wait() -> NonZeroU64 {
    NonZeroU64::new(20_000).expect("non-zero")
}

fn default_idle_timeout() -> NonZeroU64 {
    NonZeroU64::new(120_000).expect("non-zero")
}

/// Which assistant turns carry their reasoning back to the server.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ReasoningHistory {
    None,
    ToolCalls,
    All,
}

/// An `http://` or `https://` API root, without a trailing slash.
#[derive(Clone, PartialEq, Eq)]
pub struct BaseUrl(String);

impl BaseUrl {
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

/// The address is not shown in debug output (it may carry credentials).
impl fmt::Debug for BaseUrl {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("BaseUrl(..)")
    }
}

impl<'de> Deserialize<'de> for BaseUrl {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let s = String::deserialize(d)?;
        let rest = s
            .strip_prefix("http://")
            .or_else(|| s.strip_prefix("https://"))
            .ok_or_else(|| de::Error::custom("base_url must start with http:// or https://"))?;
        if rest.is_empty() || rest.starts_with('/') || s.chars().any(char::is_whitespace) {
            return Err(de::Error::custom(
                "base_url must name a host, e.g. http://127.0.0.1:8080/v1",
            ));
        }
        Ok(BaseUrl(s.trim_end_matches('/').to_string()))
    }
}

/// A model of a provider: an id (or `*`: any), with optional settings of its own.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ModelEntry {
    pub id: String,
    pub context_tokens: Option<NonZeroU32>,
    pub max_tokens: Option<NonZeroU32>,
}

impl<'de> Deserialize<'de> for ModelEntry {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct EntryVisitor;
        impl<'de> Visitor<'de> for EntryVisitor {
            type Value = ModelEntry;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(
                    r#"a model id, "*", or { id = "...", context_tokens = N, max_tokens = N }"#,
                )
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<ModelEntry, E> {
                model_id(v).map_err(E::custom)?;
                Ok(ModelEntry {
                    id: v.to_string(),
                    context_tokens: None,
                    max_tokens: None,
                })
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<ModelEntry, A::Error> {
                #[derive(Deserialize)]
                #[serde(deny_unknown_fields)]
                struct Detailed {
                    id: String,
                    #[serde(default)]
                    context_tokens: Option<NonZeroU32>,
                    #[serde(default)]
                    max_tokens: Option<NonZeroU32>,
                }
                let d = Detailed::deserialize(de::value::MapAccessDeserializer::new(map))?;
                model_id(&d.id).map_err(de::Error::custom)?;
                Ok(ModelEntry {
                    id: d.id,
                    context_tokens: d.context_tokens,
                    max_tokens: d.max_tokens,
                })
            }
        }
        d.deserialize_any(EntryVisitor)
    }
}

fn model_id(id: &str) -> Result<(), String> {
    if id.is_empty() || id.len() > 120 || id.chars().any(|c| c.is_control() || c.is_whitespace()) {
        return Err(format!(
            "{id:?} is not a model id (1 to 120 characters, no spaces)"
        ));
    }
    Ok(())
}

/// Where the API key comes from, resolved.
#[derive(Clone, Default, PartialEq, Eq)]
pub struct ApiKey(Option<String>);

impl fmt::Debug for ApiKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.0 {
            Some(_) => f.write_str("ApiKey(<redacted>)"),
            None => f.write_str("ApiKey(none)"),
        }
    }
}

impl ApiKey {
    pub fn none() -> Self {
        ApiKey(None)
    }

    pub fn new(key: impl Into<String>) -> Self {
        ApiKey(Some(key.into()))
    }

    pub(crate) fn expose(&self) -> Option<&str> {
        self.0.as_deref()
    }
}

impl ProviderConfig {
    /// Checks what serde cannot: the key source, the model list, the parameters.
    /// Errors name the key at fault (relative to the provider's table).
    pub fn validate(&self) -> Result<(), String> {
        if self.api_key_env.is_some() && self.api_key_file.is_some() {
            return Err("api_key_env and api_key_file: give one of them, not both".into());
        }
        if self.models.is_empty() {
            return Err(r#"models: list at least one model id, or ["*"] for any"#.into());
        }
        if self.models.iter().any(|m| m.id == "*") && self.models.len() > 1 {
            return Err(r#"models: "*" already means any model; list nothing else with it"#.into());
        }
        for (i, m) in self.models.iter().enumerate() {
            if self.models[..i].iter().any(|o| o.id == m.id) {
                return Err(format!("models[{i}]: {:?} is listed twice", m.id));
            }
        }
        if let Some(t) = self.temperature
            && !(0.0..=2.0).contains(&t)
        {
            return Err(format!("temperature must be 0 to 2 (got {t})"));
        }
        for (name, value) in &self.headers {
            if reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err() {
                return Err(format!("headers: {name:?} is not a header name"));
            }
            if reqwest::header::HeaderValue::from_str(value).is_err() {
                return Err(format!("headers.{name}: not a valid header value"));
            }
            if name.eq_ignore_ascii_case("authorization") {
                return Err("headers: set the key with api_key_env or api_key_file, not an Authorization header".into());
            }
        }
        Ok(())
    }

    /// Reads the API key from its environment variable or file. Errors name the key
    /// source, never the key.
    pub fn api_key(&self) -> Result<ApiKey, String> {
        if let Some(var) = &self.api_key_env {
            return match std::env::var(var) {
                Ok(key) if !key.trim().is_empty() => Ok(ApiKey::new(key.trim())),
                Ok(_) => Err(format!(
                    "api_key_env: the environment variable {var} is empty"
                )),
                Err(_) => Err(format!(
                    "api_key_env: the environment variable {var} is not set"
                )),
            };
        }
        if let Some(path) = &self.api_key_file {
            return match std::fs::read_to_string(path) {
                Ok(key) if !key.trim().is_empty() => Ok(ApiKey::new(key.trim())),
                Ok(_) => Err(format!("api_key_file: {} is empty", path.display())),
                Err(e) => Err(format!("api_key_file: cannot read {}: {e}", path.display())),
            };
        }
        Ok(ApiKey::none())
    }

    /// How reasoning goes back to the server (see [`ReasoningHistory`]).
    pub fn reasoning_history(&self) -> ReasoningHistory {
        self.reasoning_history.unwrap_or_else(|| {
            if self.base_url.as_str().contains("deepseek") {
                ReasoningHistory::ToolCalls
            } else {
                ReasoningHistory::None
            }
        })
    }

    /// The prompt-token budget of `entry`: its window less what its answer needs
    /// (`max_tokens`, else a quarter of the window up to 4,096 tokens).
    pub fn prompt_tokens(&self, entry: &ModelEntry) -> u32 {
        let window = entry
            .context_tokens
            .or(self.context_tokens)
            .map_or(DEFAULT_CONTEXT_TOKENS, NonZeroU32::get);
        let reserve = entry
            .max_tokens
            .or(self.max_tokens)
            .map_or((window / 4).min(MAX_DEFAULT_RESERVE), NonZeroU32::get);
        window.saturating_sub(reserve).max(window / 8).max(1)
    }

    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.get())
    }

    pub fn idle_timeout(&self) -> Duration {
        Duration::from_millis(self.idle_timeout_ms.get())
    }

    pub fn max_retry_wait(&self) -> Duration {
        Duration::from_millis(self.max_retry_wait_ms.get())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<ProviderConfig, String> {
        let c: ProviderConfig = toml::from_str(text).map_err(|e| e.to_string())?;
        c.validate()?;
        Ok(c)
    }

    #[test]
    fn models_as_ids_or_tables() {
        let c = parse(
            r#"
kind = "openai"
base_url = "http://127.0.0.1:8080/v1/"
models = ["a", { id = "b", context_tokens = 1000, max_tokens = 100 }]
context_tokens = 4096
"#,
        )
        .unwrap();
        assert_eq!(c.base_url.as_str(), "http://127.0.0.1:8080/v1");
        assert_eq!(c.models[0].id, "a");
        assert_eq!(c.prompt_tokens(&c.models[0]), 3072);
        assert_eq!(c.prompt_tokens(&c.models[1]), 900);
        assert_eq!(c.reasoning_history(), ReasoningHistory::None);
    }

    #[test]
    fn bad_values_name_the_key_and_line() {
        let e = parse("kind = \"openai\"\nbase_url = \"ftp://x\"\nmodels = [\"a\"]\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("http://"), "{e}");
        let e = parse("kind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"a\", { id = \"b\", bogus = 1 }]\n").unwrap_err();
        assert!(e.contains("line 3") && e.contains("bogus"), "{e}");
        let e =
            parse("kind = \"anthropic\"\nbase_url = \"http://x\"\nmodels = [\"a\"]\n").unwrap_err();
        assert!(e.contains("line 1"), "{e}");
        let e = parse("kind = \"openai\"\nbase_url = \"http://x\"\nmodels = []\n").unwrap_err();
        assert!(e.starts_with("models"), "{e}");
        let e = parse("kind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"*\", \"a\"]\n")
            .unwrap_err();
        assert!(e.contains("\"*\""), "{e}");
        let e = parse(
            "kind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"a\"]\napi_key = \"k\"\n",
        )
        .unwrap_err();
        assert!(e.contains("line 4") && e.contains("api_key"), "{e}");
    }

    #[test]
    fn keys_come_from_the_environment_or_a_file_and_never_show() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("key");
        std::fs::write(&file, "sk-secret\n").unwrap();
        let c = parse(&format!(
            "kind = \"openai\"\nbase_url = \"https://api.deepseek.com\"\nmodels = [\"*\"]\napi_key_file = {:?}\n",
            file.display().to_string()
        ))
        .unwrap();
        let key = c.api_key().unwrap();
        assert_eq!(key.expose(), Some("sk-secret"));
        assert!(!format!("{key:?}").contains("sk-secret"));
        assert!(!format!("{c:?}").contains("deepseek.com"));
        assert_eq!(c.reasoning_history(), ReasoningHistory::ToolCalls);
        let c = parse("kind = \"openai\"\nbase_url = \"http://x\"\nmodels = [\"a\"]\napi_key_env = \"YOI_TEST_SURELY_UNSET_KEY\"\n").unwrap();
        assert_eq!(
            c.api_key().unwrap_err(),
            "api_key_env: the environment variable YOI_TEST_SURELY_UNSET_KEY is not set"
        );
    }
}
