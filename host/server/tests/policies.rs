//! Principals and policy plugins through the real host with the real plugins: what a
//! client of each role sees (stream frames, snapshots, transcripts) and may do, reloads,
//! and plugins that misbehave.
//!
//! The plugins come from `cargo xtask build-plugins --dev` (`cargo xtask test` runs it
//! and exports `YOI_PLUGINS_DIR` and `YOI_TEST_PLUGINS_DIR`). A test whose plugins are
//! not built says so on the terminal and returns (skipped).

mod common;

use std::path::Path;

use common::*;
use serde_json::{Value, json};
use yoi_host::Host;
use yoi_host::clients::{ClientConfig, TokenSource};
use yoi_host::config::Config;
use yoi_policy::Role;
use yoi_policy_host::PolicyEntry;

const OBSERVER_TOKEN: &str = "observer-token-0123456789";
const OPERATOR_TOKEN: &str = "operator-token-0123456789";

/// Adds an observer `watcher` and an operator `bot`, their tokens in files.
fn add_clients(c: &mut Config) {
    let dir = c.data_dir.clone().unwrap();
    for (name, role, token) in [
        ("watcher", Role::Observer, OBSERVER_TOKEN),
        ("bot", Role::Operator, OPERATOR_TOKEN),
    ] {
        let file = dir.join(format!("{name}.token"));
        std::fs::write(&file, format!("{token}\n")).unwrap();
        c.clients.push(ClientConfig {
            name: name.into(),
            role,
            token: TokenSource::File(file),
        });
    }
}

fn policy(plugin: &str, settings: Value) -> PolicyEntry {
    PolicyEntry::new(plugin, settings)
}

/// A host with the observer and operator clients, the library `name` of `from` in its
/// plugins folder and the chain `entries`.
async fn start_with_plugin(from: &Path, name: &str, entries: Vec<PolicyEntry>) -> TestHost {
    start_with(|c| {
        add_clients(c);
        install(c.data_dir.as_ref().unwrap(), from, name);
        c.policies = entries;
    })
    .await
}

/// Requests and streams with another client's token.
struct As<'a> {
    h: &'a TestHost,
    token: &'a str,
}

impl As<'_> {
    fn get(&self, path: &str) -> reqwest::RequestBuilder {
        self.h
            .http
            .get(format!("{}{path}", self.h.base))
            .bearer_auth(self.token)
    }

    fn post(&self, path: &str) -> reqwest::RequestBuilder {
        self.h
            .http
            .post(format!("{}{path}", self.h.base))
            .bearer_auth(self.token)
    }

    async fn ws(&self, path: &str) -> Ws {
        self.h.ws_as(self.token, path).await
    }

    async fn transcript(&self, worker: &str) -> Value {
        let resp = self
            .get(&format!("/runtimes/local/workers/{worker}/transcript"))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        resp.json().await.unwrap()
    }
}

fn observer(h: &TestHost) -> As<'_> {
    As {
        h,
        token: OBSERVER_TOKEN,
    }
}

fn operator(h: &TestHost) -> As<'_> {
    As {
        h,
        token: OPERATOR_TOKEN,
    }
}

fn owner(h: &TestHost) -> As<'_> {
    As { h, token: &h.token }
}

fn kind(frame: &Value) -> &str {
    frame["event"]["type"].as_str().unwrap_or("")
}

fn is_reasoning(frame: &Value) -> bool {
    kind(frame).starts_with("reasoning")
}

/// A metric's value on the `/metrics` page (0 when absent).
fn metric(page: &str, name: &str) -> u64 {
    page.lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .map_or(0, |v| v.trim().parse().unwrap())
}

/// An error answer's code and message.
async fn error_of(resp: reqwest::Response) -> (u16, String, String) {
    let status = resp.status().as_u16();
    let body: Value = resp.json().await.unwrap();
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_string(),
        body["error"]["message"].as_str().unwrap_or("").to_string(),
    )
}

#[tokio::test(flavor = "multi_thread")]
async fn an_observer_sees_no_reasoning_while_the_owner_does_and_resumes_exactly() {
    let Some(examples) = examples("an_observer_sees_no_reasoning") else {
        return;
    };
    let h = start_with_plugin(
        &examples,
        "yoi-policy-redact-reasoning",
        vec![policy("redact-reasoning", json!({"roles": ["observer"]}))],
    )
    .await;
    let w = h.create_worker("w").await;
    let mut owner_ws = owner(&h).ws(&h.worker_stream(&w, None)).await;
    let mut observer_ws = observer(&h).ws(&h.worker_stream(&w, None)).await;
    let mut observer_all = observer(&h).ws(&h.all_stream(None)).await;
    for ws in [&mut owner_ws, &mut observer_ws] {
        assert_eq!(ws.frame().await["type"], "snapshot");
    }
    assert_eq!(observer_all.frame().await["type"], "snapshot_all");

    h.input(&w, "hello").await;
    let owners = owner_ws.events_until(|f| back_to_idle(f, &w)).await;
    let observers = observer_ws.events_until(|f| back_to_idle(f, &w)).await;
    let multiplexed = observer_all.events_until(|f| back_to_idle(f, &w)).await;
    assert!(owners.iter().any(is_reasoning), "the owner sees reasoning");
    assert!(!observers.iter().any(is_reasoning), "{observers:?}");
    assert!(!multiplexed.iter().any(is_reasoning));
    // Denied events are left out, the rest are the owner's very frames (same cursors).
    let expected: Vec<&Value> = owners.iter().filter(|f| !is_reasoning(f)).collect();
    assert_eq!(observers.iter().collect::<Vec<_>>(), expected);
    assert_eq!(seqs(&multiplexed), seqs(&observers));

    // Resuming from any cursor, one the observer saw or one of a denied event it never
    // saw, gives exactly the rest: no gap, no duplicate, still no reasoning.
    let first_reasoning = owners.iter().position(is_reasoning).unwrap();
    for from in [&observers[0], &owners[first_reasoning]] {
        let mut ws = observer(&h)
            .ws(&h.worker_stream(&w, Some(&cursor_of(from))))
            .await;
        let rest = ws.events_until(|f| back_to_idle(f, &w)).await;
        let seq = from["seq"].as_u64().unwrap();
        let want: Vec<&Value> = expected
            .iter()
            .copied()
            .filter(|f| f["seq"].as_u64().unwrap() > seq)
            .collect();
        assert_eq!(rest.iter().collect::<Vec<_>>(), want);
    }

    // Snapshots and transcripts: stripped for the observer only.
    let has_reasoning = |messages: &Value| {
        messages
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.get("reasoning").is_some())
    };
    let mut ws = observer(&h).ws(&h.worker_stream(&w, None)).await;
    let snapshot = ws.frame().await;
    assert!(!has_reasoning(&snapshot["transcript"]), "{snapshot}");
    let mut ws = owner(&h).ws(&h.worker_stream(&w, None)).await;
    assert!(has_reasoning(&ws.frame().await["transcript"]));
    let mut ws = observer(&h).ws(&h.all_stream(None)).await;
    let all = ws.frame().await;
    assert!(!has_reasoning(&all["workers"][0]["transcript"]), "{all}");
    assert!(!has_reasoning(
        &observer(&h).transcript(&w).await["messages"]
    ));
    assert!(has_reasoning(&owner(&h).transcript(&w).await["messages"]));

    // Two observer streams shared each decision: the second was a cache hit.
    let page = h.metrics().await;
    assert!(metric(&page, "yoi_policy_cache_hits_total") > 0, "{page}");
    assert!(metric(&page, "yoi_policy_plugin_calls_total") > 0, "{page}");
}

#[tokio::test(flavor = "multi_thread")]
async fn roles_and_the_read_only_plugin_refuse_commands_with_their_reason() {
    let Some(examples) = examples("roles_and_the_read_only_plugin_refuse_commands") else {
        return;
    };
    let h = start_with_plugin(
        &examples,
        "yoi-policy-read-only",
        vec![policy("read-only", json!({"roles": ["operator"]}))],
    )
    .await;
    let w = h.create_worker("w").await;
    let input = format!("/runtimes/local/workers/{w}/input");

    // The plugin refuses the operator's input, saying why.
    let resp = operator(&h)
        .post(&input)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(
        message.contains("operator clients may only observe") && message.contains("`input`"),
        "{message}"
    );
    // Reading is still allowed.
    let resp = operator(&h)
        .get(&format!("/runtimes/local/workers/{w}"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 200);

    // An observer is read-only by its role, with or without policies.
    let resp = observer(&h)
        .post(&input)
        .json(&json!({"text": "hi"}))
        .send()
        .await
        .unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (403, "forbidden"));
    assert!(message.contains("observer"), "{message}");

    // Only the owner administers.
    for who in [observer(&h), operator(&h)] {
        let resp = who.post("/admin/reload").send().await.unwrap();
        let (status, code, _) = error_of(resp).await;
        assert_eq!((status, code.as_str()), (403, "forbidden"));
    }
    let resp = owner(&h).post("/admin/reload").send().await.unwrap();
    assert_eq!(resp.status(), 200);

    // A wrong token is no one.
    let resp = As {
        h: &h,
        token: "not-a-token-of-anyone",
    }
    .get("/runtimes")
    .send()
    .await
    .unwrap();
    assert_eq!(resp.status(), 401);
    // The owner still may.
    h.input(&w, "hi").await;
}

#[tokio::test(flavor = "multi_thread")]
async fn tool_output_is_truncated_in_frames_snapshots_and_transcripts() {
    let Some(examples) = examples("tool_output_is_truncated") else {
        return;
    };
    let h = start_with_plugin(
        &examples,
        "yoi-policy-truncate-tool-output",
        vec![policy(
            "truncate-tool-output",
            json!({"roles": ["observer"], "max_bytes": 16}),
        )],
    )
    .await;
    let resp = h
        .post("/runtimes/local/workers")
        .json(&json!({"name": "w", "model": "scripted", "tools": ["write_file", "read_file"]}))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), 201);
    let w = resp.json::<Value>().await.unwrap()["worker"]["id"]
        .as_str()
        .unwrap()
        .to_string();
    let content = "a line of text that is much longer than sixteen bytes";
    h.input(&w, &format!("write notes.txt: {content}")).await;
    h.wait_idle(&w, 1).await;

    let mut owner_ws = owner(&h).ws(&h.worker_stream(&w, None)).await;
    let mut observer_ws = observer(&h).ws(&h.worker_stream(&w, None)).await;
    owner_ws.frame().await;
    observer_ws.frame().await;
    h.input(&w, "read notes.txt").await;
    let result = |frames: Vec<Value>| {
        frames
            .into_iter()
            .find(|f| kind(f) == "tool_result")
            .expect("a tool result")
    };
    let full = result(owner_ws.events_until(|f| back_to_idle(f, &w)).await);
    let cut = result(observer_ws.events_until(|f| back_to_idle(f, &w)).await);
    assert_eq!(full["event"]["output"], content);
    let output = cut["event"]["output"].as_str().unwrap();
    assert!(
        output.starts_with(&content[..16]) && output.contains("truncated"),
        "{output}"
    );
    assert_eq!(
        cut["cursor"], full["cursor"],
        "a redaction keeps the cursor"
    );

    let tool_output = |messages: &Value| {
        messages
            .as_array()
            .unwrap()
            .iter()
            .rev()
            .find(|m| m["role"] == "tool")
            .map(|m| m["content"].as_str().unwrap().to_string())
            .unwrap()
    };
    let mut ws = observer(&h).ws(&h.worker_stream(&w, None)).await;
    let snapshot = ws.frame().await;
    assert!(tool_output(&snapshot["transcript"]).contains("truncated"));
    let transcript = observer(&h).transcript(&w).await;
    assert!(tool_output(&transcript["messages"]).contains("truncated"));
    assert_eq!(
        tool_output(&owner(&h).transcript(&w).await["messages"]),
        content
    );
}

/// Writes a config file for a reload to read.
fn write_policies(file: &Path, policies: &str) {
    std::fs::write(file, policies).unwrap();
}

#[tokio::test(flavor = "multi_thread")]
async fn a_reload_applies_to_open_streams_and_a_refused_one_keeps_the_chain() {
    let (Some(examples), Some(test)) = (
        examples("a_reload_applies_to_open_streams"),
        test_plugins("a_reload_applies_to_open_streams"),
    ) else {
        return;
    };
    let mut file = None;
    let h = start_with(|c| {
        add_clients(c);
        let path = c.data_dir.as_ref().unwrap().join("host.toml");
        write_policies(&path, "");
        c.file = Some(path.clone());
        file = Some(path);
    })
    .await;
    let file = file.unwrap();
    let data_dir = h.dir.path();
    let w = h.create_worker("w").await;
    let mut ws = observer(&h).ws(&h.worker_stream(&w, None)).await;
    ws.frame().await;
    h.input(&w, "one").await;
    let before = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(before.iter().any(is_reasoning), "no policy yet");

    // Drop the plugin in, name it in the config, reload.
    install(data_dir, &examples, "yoi-policy-redact-reasoning");
    write_policies(
        &file,
        "[[policies]]\nplugin = \"redact-reasoning\"\nsettings = { roles = [\"observer\"] }\n",
    );
    let resp = owner(&h).post("/admin/reload").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["applied"], true, "{report}");
    assert_eq!(report["chain"], json!(["redact-reasoning"]));
    assert_eq!(report["loaded"][0]["name"], "redact-reasoning");

    // The open stream uses the new chain from its next event.
    h.input(&w, "two").await;
    let after = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(!after.iter().any(is_reasoning), "{after:?}");
    assert_eq!(
        after[0]["seq"].as_u64().unwrap(),
        before.last().unwrap()["seq"].as_u64().unwrap() + 1,
        "the cursor goes on"
    );

    // A plugin of another ABI version dropped in: refused, the chain stays.
    std::fs::copy(
        test.join(library("wrong_version")),
        data_dir.join("plugins").join(library("wrong_version")),
    )
    .unwrap();
    let resp = owner(&h).post("/admin/reload").send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let report: Value = resp.json().await.unwrap();
    assert_eq!(report["applied"], false);
    assert_eq!(report["chain"], json!(["redact-reasoning"]));
    let refused = report["refused"].to_string();
    assert!(refused.contains("wrong_version"), "{refused}");
    // A config file that does not parse: refused too, the chain stays.
    std::fs::remove_file(data_dir.join("plugins").join(library("wrong_version"))).unwrap();
    write_policies(&file, "[[policies]]\nplugn = \"x\"\n");
    let resp = owner(&h).post("/admin/reload").send().await.unwrap();
    assert_eq!(resp.status(), 422);
    let report: Value = resp.json().await.unwrap();
    assert!(report["refused"].to_string().contains("plugn"), "{report}");

    h.input(&w, "three").await;
    let still = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(!still.iter().any(is_reasoning));
}

#[tokio::test(flavor = "multi_thread")]
async fn a_panicking_plugin_fails_closed_and_the_host_stays_up() {
    let Some(test) = test_plugins("a_panicking_plugin_fails_closed") else {
        return;
    };
    let entries = vec![
        policy(
            "test-policy",
            json!({"roles": ["observer"], "panic_in": "observe"}),
        ),
        policy(
            "test-policy",
            json!({"roles": ["operator"], "panic_in": "command"}),
        ),
    ];
    let h = start_with_plugin(&test, "test_policy", entries).await;
    let w = h.create_worker("w").await;

    // The observer sees nothing the failing plugin was asked about.
    let mut all = observer(&h).ws(&h.all_stream(None)).await;
    let snapshot = all.frame().await;
    assert_eq!(snapshot["workers"], json!([]), "{snapshot}");
    let mut own = owner(&h).ws(&h.worker_stream(&w, None)).await;
    own.frame().await;
    h.input(&w, "hello").await;
    own.events_until(|f| back_to_idle(f, &w)).await;
    let resp = observer(&h)
        .get("/runtimes/local/workers")
        .send()
        .await
        .unwrap();
    assert_eq!(resp.json::<Value>().await.unwrap()["workers"], json!([]));

    // The operator's commands are refused with `policy_error`.
    let resp = operator(&h).get("/runtimes").send().await.unwrap();
    let (status, code, message) = error_of(resp).await;
    assert_eq!((status, code.as_str()), (500, "policy_error"));
    assert!(message.contains("test-policy"), "{message}");

    // The host is up; the owner is unaffected; the failures are counted.
    let resp = h.get("/runtimes").send().await.unwrap();
    assert_eq!(resp.status(), 200);
    let page = h.metrics().await;
    for call in ["observe", "command"] {
        let line = format!("yoi_policy_failures_total{{plugin=\"test-policy\",call=\"{call}\"}}");
        assert!(metric(&page, &line) > 0, "{line} in\n{page}");
    }

    // None of the run's events reached the observer: the next frame on its stream is
    // the shutdown's.
    let mut h = h;
    h.shutdown().await;
    let last = all.frame().await;
    assert_eq!(
        (last["type"].as_str(), last["code"].as_str()),
        (Some("error"), Some("shutting_down")),
        "{last}"
    );
}

#[tokio::test]
async fn a_host_whose_policies_are_refused_does_not_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config
        .policies
        .push(policy("no-such-plugin", json!({"roles": ["observer"]})));
    let e = Host::start(config).await.err().expect("refused");
    let message = format!("{e:#}");
    assert!(
        message.contains("policy plugins refused") && message.contains("no-such-plugin"),
        "{message}"
    );
}

#[tokio::test]
async fn a_client_token_that_cannot_be_read_stops_the_start() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = test_config(dir.path());
    config.clients.push(ClientConfig {
        name: "ci".into(),
        role: Role::Observer,
        token: TokenSource::File(dir.path().join("missing.token")),
    });
    let e = Host::start(config).await.err().expect("refused");
    let message = format!("{e:#}");
    assert!(message.contains("client `ci`"), "{message}");
}
