//! Shared by the loader tests: where the built plugins are, a plugins folder made of
//! them, and events to observe.
//!
//! The plugins come from `cargo xtask build-plugins` (`cargo xtask test` runs it and
//! exports `YOI_PLUGINS_DIR` and `YOI_TEST_PLUGINS_DIR`). A test whose plugins are not
//! built says so on the terminal and returns (skipped).

#![allow(dead_code)] // each test file uses part of this

use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use tempfile::TempDir;
use yoi_policy::{Principal, Role};
use yoi_policy_host::{
    ChainOptions, EventRef, PluginLoader, PluginSources, Policies, PolicyChain, PolicyEntry,
};
use yoi_protocol::{Envelope, Event, Message, Role as Speaker, WorkerInfo};

/// `$env` when set, else `<target>/<folder>`, when it holds libraries.
fn built(env: &str, folder: &str) -> Result<PathBuf, String> {
    let dir = match std::env::var_os(env) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("host/policy-host lives two levels below the workspace root");
            std::env::var_os("CARGO_TARGET_DIR")
                .map(PathBuf::from)
                .unwrap_or_else(|| workspace.join("target"))
                .join(folder)
        }
    };
    if dir.is_dir() {
        Ok(dir)
    } else {
        Err(format!(
            "{} is missing: run `cargo xtask build-plugins --dev` (or set {env})",
            dir.display()
        ))
    }
}

/// Says on the terminal (not in the captured output) that `test` is skipped.
fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The folder of the example plugins, or `None` (the test is skipped, and says so).
pub fn examples(test: &str) -> Option<PathBuf> {
    built("YOI_PLUGINS_DIR", "plugins")
        .inspect_err(|why| skip(test, why))
        .ok()
}

/// The folder of the test-only plugins, or `None` (the test is skipped, and says so).
pub fn test_plugins(test: &str) -> Option<PathBuf> {
    built("YOI_TEST_PLUGINS_DIR", "plugins-test")
        .inspect_err(|why| skip(test, why))
        .ok()
}

/// A library's file name on this platform (`test_policy` → `libtest_policy.so`).
pub fn library(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// A scratch folder with a plugins folder and a staging folder.
pub struct Scratch {
    pub tmp: TempDir,
}

impl Scratch {
    pub fn new() -> Self {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::create_dir(tmp.path().join("plugins")).unwrap();
        Scratch { tmp }
    }

    pub fn plugins(&self) -> PathBuf {
        self.tmp.path().join("plugins")
    }

    pub fn sources(&self) -> PluginSources {
        PluginSources::dir(self.plugins())
    }

    /// Copies the library `name` of `from` into the plugins folder as `as_file`.
    pub fn install(&self, from: &Path, name: &str, as_file: &str) {
        std::fs::copy(from.join(library(name)), self.plugins().join(as_file)).unwrap();
    }

    pub fn loader(&self) -> PluginLoader {
        PluginLoader::new(self.tmp.path().join("staging")).unwrap()
    }

    pub fn policies(&self) -> Policies {
        Policies::new(self.loader(), ChainOptions::default())
    }

    /// The chain `entries` describe over the plugins folder; panics with the report
    /// when anything is refused.
    pub fn chain(&self, entries: &[PolicyEntry]) -> (Policies, Arc<PolicyChain>) {
        let policies = self.policies();
        let report = policies.reload(&self.sources(), entries);
        assert!(report.applied, "{report:#?}");
        let chain = policies.chain().clone();
        (policies, chain)
    }
}

pub fn entry(plugin: &str, settings: serde_json::Value) -> PolicyEntry {
    PolicyEntry::new(plugin, settings)
}

pub fn owner() -> Principal {
    Principal::owner()
}

pub fn operator() -> Principal {
    Principal::new("ops", Role::Operator)
}

pub fn observer() -> Principal {
    Principal::new("watcher", Role::Observer)
}

pub fn envelope(seq: u64, event: Event) -> Envelope {
    Envelope {
        seq,
        worker_id: Some("w_1".into()),
        at_ms: 1_000 + seq,
        event,
    }
}

pub fn text_delta(text: &str) -> Event {
    Event::TextDelta {
        run_id: "r_1".into(),
        text: text.into(),
    }
}

/// What `principal` sees of `envelope` (runtime `local`, epoch 7).
pub fn observe(
    chain: &PolicyChain,
    principal: &Principal,
    envelope: &Envelope,
) -> yoi_policy_host::EventDecision {
    let event = EventRef::new("local", 7, envelope);
    chain.observe_event(principal, &event, || {
        serde_json::to_string(&envelope.event).unwrap()
    })
}

/// The event `principal` sees: `None` when denied.
pub fn seen(chain: &PolicyChain, principal: &Principal, envelope: &Envelope) -> Option<Event> {
    match observe(chain, principal, envelope) {
        yoi_policy_host::EventDecision::Allow => Some(envelope.event.clone()),
        yoi_policy_host::EventDecision::Redact(redacted) => {
            let reparsed: Event = serde_json::from_str(redacted.json()).unwrap();
            assert_eq!(
                &reparsed,
                redacted.event(),
                "the JSON is the redacted event"
            );
            Some(reparsed)
        }
        yoi_policy_host::EventDecision::Deny => None,
    }
}

pub fn metrics(policies: &Policies) -> yoi_policy_host::MetricsSnapshot {
    policies.metrics().snapshot()
}

pub fn worker(id: &str) -> WorkerInfo {
    WorkerInfo {
        id: id.into(),
        name: id.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: 8,
        status: yoi_protocol::WorkerStatus::Idle,
        created_at_ms: 0,
        current_run: None,
        run_count: 0,
        message_count: 0,
        usage: Default::default(),
        context_tokens: None,
        request_id: None,
    }
}

pub fn message(content: &str) -> Message {
    Message {
        role: Speaker::User,
        content: content.into(),
        reasoning: None,
        tool_calls: vec![],
        tool_call_id: None,
        is_error: false,
        run_id: "r_1".into(),
    }
}

pub fn runtime(id: &str) -> yoi_protocol::RuntimeInfo {
    yoi_protocol::RuntimeInfo {
        id: id.into(),
        kind: "embedded".into(),
        state: "ready".into(),
        workers: 0,
        unavailable: None,
        capabilities: yoi_protocol::Capabilities {
            models: vec![],
            tools: vec![],
            limits: Default::default(),
            streams: vec![],
        },
    }
}
