//! The settings of one runtime as a config file writes them, and the one function that
//! opens a [`LocalRuntime`] from them.
//!
//! Both servers use this type: a `yoi-host` `[[runtimes]]` entry carries these keys
//! next to its `id`, `kind` and `component` (see [`RuntimeSettings::deserialize_key`]),
//! and `yoi-runtime serve` reads them from its `[runtime]` table. Every key is optional:
//!
//! ```toml
//! [scripted]                  # the `scripted` model
//! token_delay_ms = 30         # pause between streamed tokens (0: none)
//! reasoning = true            # stream a short reasoning before answers
//! context_tokens = 2048       # its context window in words (default: unlimited)
//! [limits]
//! max_workers = 10000
//! max_input_bytes = 65536
//! default_max_steps = 8
//! [core]                      # the runtime core's budgets and sandbox
//! memory_bytes = 1073741824   # guest linear memory limit (wasm core)
//! call_deadline_ms = 5000     # longest one call into the guest may run (wasm core)
//! call_bytes = 4194304        # most bytes one call carries across the core boundary
//! request_deadline_ms = 30000 # longest a request waits for the runtime
//! max_resident_workers = 1024 # workers whose transcripts stay in the core
//! max_resident_bytes = 268435456 # transcript bytes they may hold
//! max_request_bytes = 4194304 # largest model request (that run fails beyond it)
//! [log]
//! window_capacity = 65536     # recent events kept in memory
//! broadcast_capacity = 16384  # live buffer; a stream further behind is lagged
//! retain_events = 1000000     # default: keep every delta
//! max_store_bytes = 10737418240 # default: as large as the disk allows
//! durability = "normal"       # or "full"
//! [driver]
//! tool_timeout_ms = 30000
//! model_idle_timeout_ms = 120000
//! max_concurrent_tools = 16
//! max_model_output_bytes = 4194304
//! ```
//!
//! Unknown keys and bad values are errors that name the key; TOML deserializers report
//! them with the line (the keys are checked while they are read, not afterwards).
//!
//! Model providers besides `scripted` (`[providers.NAME]`, OpenAI-compatible servers) are
//! configured next to the runtimes, since a host's runtimes share them:
//! [`deserialize_providers`] reads and checks the tables and [`provider_models`] builds
//! them into the catalog [`RuntimeSettings::open`] takes.

use std::collections::BTreeMap;
use std::fmt;
use std::num::{NonZeroU32, NonZeroU64, NonZeroUsize};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use yoi_core::{Core, Fault};
use yoi_driver::{ModelCatalog, OpenAiProvider, ProviderConfig, ScriptedConfig, ScriptedModel};
use yoi_protocol::is_runtime_id;

use crate::{DriverConfig, LocalRuntime, LocalRuntimeConfig, OpenError};

/// Everything configurable about one runtime.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct RuntimeSettings {
    pub scripted: ScriptedSettings,
    pub limits: LimitSettings,
    pub core: CoreSettings,
    pub log: LogSettings,
    pub driver: DriverSettings,
}

impl RuntimeSettings {
    /// The keys of the settings, as a config table writes them.
    pub const KEYS: &'static [&'static str] = &["scripted", "limits", "core", "log", "driver"];

    /// Reads the value of `key` (one of [`Self::KEYS`]) from `map` into these settings:
    /// how a table that holds the settings next to keys of its own (a host's
    /// `[[runtimes]]` entry) reads them without buffering, so errors keep their line.
    pub fn deserialize_key<'de, A: MapAccess<'de>>(
        &mut self,
        key: &str,
        map: &mut A,
    ) -> Result<(), A::Error> {
        match key {
            "scripted" => self.scripted = map.next_value()?,
            "limits" => self.limits = map.next_value()?,
            "core" => self.core = map.next_value()?,
            "log" => self.log = map.next_value()?,
            "driver" => self.driver = map.next_value()?,
            other => return Err(de::Error::unknown_field(other, Self::KEYS)),
        }
        Ok(())
    }

    /// The runtime's configuration with its state in `data_dir`.
    pub fn local_config(&self, data_dir: impl Into<PathBuf>) -> LocalRuntimeConfig {
        let mut config = LocalRuntimeConfig::new(data_dir);
        config.limits = self.limits.to_limits(&self.core);
        config.call_bytes = self.core.call_bytes;
        config.request_deadline = Duration::from_millis(self.core.request_deadline_ms.get());
        config.log = self.log.to_log_config();
        config.driver = self.driver.to_driver_config();
        config
    }

    /// Opens (or creates) the runtime in `data_dir` with these settings, serving the
    /// `scripted` model and `providers`' models, on the cores `make_core` makes (see
    /// [`crate::RuntimeBuilder::open`]). Blocking (restores the event log); call it within
    /// a tokio runtime.
    pub fn open<C, F>(
        &self,
        data_dir: impl Into<PathBuf>,
        providers: &ModelCatalog,
        make_core: F,
    ) -> Result<LocalRuntime, OpenError>
    where
        C: Core,
        F: FnMut() -> Result<C, Fault> + Send + 'static,
    {
        let scripted = self.scripted.to_scripted_config();
        let budget = scripted
            .context_tokens
            .map(|n| n.min(u64::from(u32::MAX)) as u32);
        let mut models = providers.clone();
        models.add(
            yoi_driver::scripted::MODEL_NAME,
            Arc::new(ScriptedModel::new(scripted)),
            budget,
        );
        LocalRuntime::builder(self.local_config(data_dir))
            .models(&models)
            .open(make_core)
    }
}

impl<'de> Deserialize<'de> for RuntimeSettings {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct SettingsVisitor;
        impl<'de> Visitor<'de> for SettingsVisitor {
            type Value = RuntimeSettings;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a table of runtime settings")
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
                let mut settings = RuntimeSettings::default();
                while let Some(key) = map.next_key_seed(KnownKey(&[RuntimeSettings::KEYS]))? {
                    settings.deserialize_key(key, &mut map)?;
                }
                Ok(settings)
            }
        }
        d.deserialize_map(SettingsVisitor)
    }
}

/// Reads a table key, refusing any not in its lists *while the key is read*, so the
/// deserializer reports an unknown key with its position (as serde's
/// `deny_unknown_fields` does). A table with keys of its own next to the settings' lists
/// both: `KnownKey(&[&["id", "kind"], RuntimeSettings::KEYS])`.
pub struct KnownKey<'a>(pub &'a [&'static [&'static str]]);

impl<'de> DeserializeSeed<'de> for KnownKey<'_> {
    type Value = &'static str;

    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Self::Value, D::Error> {
        d.deserialize_str(self)
    }
}

impl Visitor<'_> for KnownKey<'_> {
    type Value = &'static str;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a known key")
    }

    fn visit_str<E: de::Error>(self, key: &str) -> Result<Self::Value, E> {
        let mut known = self.0.iter().flat_map(|keys| keys.iter());
        if let Some(found) = known.clone().find(|k| **k == key) {
            return Ok(found);
        }
        let expected: Vec<String> = known.by_ref().map(|k| format!("`{k}`")).collect();
        Err(E::custom(format_args!(
            "unknown field `{key}`, expected one of {}",
            expected.join(", ")
        )))
    }
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
        RuntimeId::parse(&text).map_err(de::Error::custom)
    }
}

/// The `scripted` model every runtime serves.
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
    pub fn to_scripted_config(&self) -> ScriptedConfig {
        ScriptedConfig {
            token_delay: Duration::from_millis(self.token_delay_ms),
            reasoning: self.reasoning,
            context_tokens: self.context_tokens.map(|n| u64::from(n.get())),
            ..ScriptedConfig::default()
        }
    }
}

impl Default for ScriptedSettings {
    fn default() -> Self {
        let demo = ScriptedConfig::demo();
        ScriptedSettings {
            token_delay_ms: demo.token_delay.as_millis() as u64,
            reasoning: demo.reasoning,
            context_tokens: None,
        }
    }
}

/// Reads `[providers.NAME]` tables. Provider names are used in model names
/// (`NAME/model-id`): the runtime-id alphabet, and not `scripted`. Each table is checked
/// as a whole (key sources, models, values).
pub fn deserialize_providers<'de, D: Deserializer<'de>>(
    d: D,
) -> Result<BTreeMap<String, ProviderConfig>, D::Error> {
    let providers = BTreeMap::<String, ProviderConfig>::deserialize(d)?;
    for (name, provider) in &providers {
        if !is_runtime_id(name) || name == yoi_driver::scripted::MODEL_NAME {
            return Err(de::Error::custom(format!(
                "providers.{name}: a provider name is 1 to 64 of a-z, 0-9, `_` and `-`, and not `scripted`"
            )));
        }
        provider
            .validate()
            .map_err(|e| de::Error::custom(format!("providers.{name}.{e}")))?;
    }
    Ok(providers)
}

/// A provider that cannot be set up (a missing API key, say): names it and the key.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("providers.{name}.{message}")]
pub struct ProviderError {
    pub name: String,
    pub message: String,
}

/// Every configured provider, built (API keys read) into a catalog of their models.
pub fn provider_models(
    providers: &BTreeMap<String, ProviderConfig>,
) -> Result<ModelCatalog, ProviderError> {
    let mut catalog = ModelCatalog::new();
    for (name, provider) in providers {
        OpenAiProvider::register(name, provider, &mut catalog).map_err(|message| {
            ProviderError {
                name: name.clone(),
                message,
            }
        })?;
    }
    Ok(catalog)
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

impl LimitSettings {
    /// The core's limits: these, with the budgets of `[core]`.
    pub fn to_limits(&self, core: &CoreSettings) -> yoi_protocol::Limits {
        yoi_protocol::Limits {
            max_workers: self.max_workers,
            max_input_bytes: self.max_input_bytes,
            default_max_steps: self.default_max_steps,
            max_resident_workers: core.max_resident_workers.get(),
            max_resident_bytes: core.max_resident_bytes,
            max_request_bytes: core.max_request_bytes.get(),
        }
    }
}

/// `[core]`: the runtime core's memory, budgets and deadlines, with defaults a
/// long-lived deployment can live with (memory set by budgets, not by history).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct CoreSettings {
    /// The guest's linear memory limit (a grow past it faults the core, which is
    /// restored from the log). Wasm cores only.
    pub memory_bytes: NonZeroU64,
    /// Longest one call into the guest may run before it traps. Wasm cores only.
    pub call_deadline_ms: NonZeroU64,
    /// Most estimated bytes one call carries across the core boundary (64 KiB to
    /// 64 MiB).
    #[serde(deserialize_with = "call_bytes")]
    pub call_bytes: u32,
    /// Longest a request waits for the runtime before `runtime_unavailable`.
    pub request_deadline_ms: NonZeroU64,
    /// Workers whose transcripts stay in the core.
    pub max_resident_workers: NonZeroU32,
    /// Estimated transcript bytes the resident workers may hold.
    pub max_resident_bytes: u64,
    /// Largest model request; a larger one fails its run with `request_too_large`.
    pub max_request_bytes: NonZeroU32,
}

fn call_bytes<'de, D: Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if !(64 << 10..=64 << 20).contains(&n) {
        return Err(de::Error::custom(format!(
            "call_bytes must be 65536 to 67108864 (got {n})"
        )));
    }
    Ok(n)
}

impl Default for CoreSettings {
    fn default() -> Self {
        let limits = yoi_protocol::Limits::default();
        let call_bytes = crate::DEFAULT_CALL_BYTES;
        let nz64 = |n: u64| NonZeroU64::new(n).unwrap_or(NonZeroU64::MIN);
        let nz32 = |n: u32| NonZeroU32::new(n).unwrap_or(NonZeroU32::MIN);
        CoreSettings {
            memory_bytes: nz64(1 << 30),
            call_deadline_ms: nz64(5_000),
            call_bytes,
            request_deadline_ms: nz64(30_000),
            max_resident_workers: nz32(limits.max_resident_workers),
            max_resident_bytes: limits.max_resident_bytes,
            max_request_bytes: nz32(limits.max_request_bytes.min(call_bytes)),
        }
    }
}

impl CoreSettings {
    /// The sandbox of a wasm core with these settings.
    #[cfg(feature = "wasm")]
    pub fn guest_limits(&self) -> yoi_core::GuestLimits {
        yoi_core::GuestLimits {
            max_memory_bytes: usize::try_from(self.memory_bytes.get()).unwrap_or(usize::MAX),
            call_deadline: Duration::from_millis(self.call_deadline_ms.get()),
            ..yoi_core::GuestLimits::default()
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
    /// Largest the event store file may grow; beyond it appends fail as on a full disk.
    pub max_store_bytes: Option<u64>,
}

impl Default for LogSettings {
    fn default() -> Self {
        let l = yoi_eventlog::LogConfig::default();
        LogSettings {
            window_capacity: l.window_capacity,
            broadcast_capacity: NonZeroUsize::new(l.broadcast_capacity.max(1)).expect("non-zero"),
            retain_events: l.retain_events,
            durability: DurabilitySetting::Normal,
            max_store_bytes: l.max_store_bytes,
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
            max_store_bytes: self.max_store_bytes,
            ..yoi_eventlog::LogConfig::default()
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
        return Err(de::Error::custom(format!(
            "at most {MAX_TOOL_SLOTS} tool calls can run at once, not {n}"
        )));
    }
    Ok(n)
}

impl Default for DriverSettings {
    fn default() -> Self {
        let d = DriverConfig::default();
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
    pub fn to_driver_config(&self) -> DriverConfig {
        DriverConfig {
            tool_timeout: Duration::from_millis(self.tool_timeout_ms.get()),
            model_idle_timeout: Duration::from_millis(self.model_idle_timeout_ms.get()),
            max_concurrent_tools: self.max_concurrent_tools.get(),
            max_model_output_bytes: self.max_model_output_bytes.get(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(text: &str) -> Result<RuntimeSettings, String> {
        toml::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn empty_is_all_defaults() {
        assert_eq!(parse("").unwrap(), RuntimeSettings::default());
    }

    #[test]
    fn every_table_parses() {
        let s = parse(
            "[scripted]\ntoken_delay_ms = 0\n[limits]\nmax_workers = 3\n[log]\n\
             retain_events = 10\ndurability = \"full\"\nmax_store_bytes = 1048576\n[driver]\ntool_timeout_ms = 1500\n",
        )
        .unwrap();
        assert_eq!(s.scripted.token_delay_ms, 0);
        assert_eq!(s.limits.max_workers, 3);
        assert_eq!(s.log.retain_events, Some(10));
        assert_eq!(s.log.durability, DurabilitySetting::Full);
        let driver = s.driver.to_driver_config();
        assert_eq!(driver.tool_timeout, Duration::from_millis(1500));
        assert_eq!(
            driver.model_idle_timeout,
            DriverConfig::default().model_idle_timeout
        );
        let local = s.local_config("/tmp/x");
        assert_eq!(local.limits.max_workers, 3);
        assert_eq!(local.log.retain_events, Some(10));
        assert_eq!(local.log.max_store_bytes, Some(1 << 20));
    }

    #[test]
    fn unknown_keys_and_bad_values_name_key_and_line() {
        let e = parse("[log]\nwindow_capacity = 5\n\n[lgo]\n").unwrap_err();
        assert!(e.contains("lgo") && e.contains("line 4"), "{e}");
        let e = parse("[driver]\nmax_concurrent_tools = 5000\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("at most 4096"), "{e}");
        let e = parse("[log]\ndurability = \"sometimes\"\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("durability"), "{e}");
        let e = parse("[scripted]\nspeed = 1\n").unwrap_err();
        assert!(e.contains("line 2") && e.contains("speed"), "{e}");
    }
}
