//! Principals and policy plugins through the real host with the real plugins: what a
//! client of each role sees (stream frames, snapshots, transcripts) and may do, reloads,
//! and plugins that misbehave.
//!
//! The plugins come from `cargo xtask build-plugins --dev` (`cargo xtask test` runs it
//! and exports `YOI_PLUGINS_DIR` and `YOI_TEST_PLUGINS_DIR`). A test whose plugins are
//! not built says so on the terminal and returns (skipped).

mod common;

use std::io::Write;
use std::path::{Path, PathBuf};

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::http::HeaderValue;
use yoi_host::Host;
use yoi_host::clients::{ClientConfig, TokenSource};
use yoi_host::config::Config;
use yoi_policy::Role;
use yoi_policy_host::PolicyEntry;

const OBSERVER_TOKEN: &str = "observer-token-0123456789";
const OPERATOR_TOKEN: &str = "operator-token-0123456789";

/// `$env` when set, else `<target>/<folder>`, when it is a folder.
fn built(env: &str, folder: &str) -> Result<PathBuf, String> {
    let dir = match std::env::var_os(env) {
        Some(dir) => PathBuf::from(dir),
        None => {
            let workspace = Path::new(env!("CARGO_MANIFEST_DIR"))
                .ancestors()
                .nth(2)
                .expect("host/server lives two levels below the workspace root");
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

fn skip(test: &str, why: &str) {
    let _ = writeln!(std::io::stderr(), "SKIPPED {test}: {why}");
}

/// The folder of the example plugins, or `None` (the test is skipped, and says so).
fn examples(test: &str) -> Option<PathBuf> {
    built("YOI_PLUGINS_DIR", "plugins")
        .inspect_err(|why| skip(test, why))
        .ok()
}

/// The folder of the test-only plugins, or `None` (the test is skipped, and says so).
fn test_plugins(test: &str) -> Option<PathBuf> {
    built("YOI_TEST_PLUGINS_DIR", "plugins-test")
        .inspect_err(|why| skip(test, why))
        .ok()
}

/// A library's file name on this platform (`yoi-policy-read-only` →
/// `libyoi_policy_read_only.so`).
fn library(name: &str) -> String {
    format!(
        "{}{}{}",
        std::env::consts::DLL_PREFIX,
        name.replace('-', "_"),
        std::env::consts::DLL_SUFFIX
    )
}

/// Copies the library `name` of `from` into the host's plugins folder.
fn install(data_dir: &Path, from: &Path, name: &str) {
    let plugins = data_dir.join("plugins");
    std::fs::create_dir_all(&plugins).unwrap();
    std::fs::copy(from.join(library(name)), plugins.join(library(name))).unwrap();
}

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
        let mut request = format!("{}{path}", self.h.ws_base)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            HeaderValue::from_str(&format!("Bearer {}", self.token)).unwrap(),
        );
        let (ws, _) = tokio::time::timeout(PATIENCE, tokio_tungstenite::connect_async(request))
            .await
            .expect("connect in time")
            .expect("connect");
        Ws { ws }
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
    let h = start_with(|c| {
        add_clients(c);
        install(
            c.data_dir.as_ref().unwrap(),
            &examples,
            "yoi-policy-redact-reasoning",
        );
        c.policies
            .push(policy("redact-reasoning", json!({"roles": ["observer"]})));
    })
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
    let h = start_with(|c| {
        add_clients(c);
        install(
            c.data_dir.as_ref().unwrap(),
            &examples,
            "yoi-policy-read-only",
        );
        c.policies
            .push(policy("read-only", json!({"roles": ["operator"]})));
    })
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
    let h = start_with(|c| {
        add_clients(c);
        install(
            c.data_dir.as_ref().unwrap(),
            &examples,
            "yoi-policy-truncate-tool-output",
        );
        c.policies.push(policy(
            "truncate-tool-output",
            json!({"roles": ["observer"], "max_bytes": 16}),
        ));
    })
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
    let h = start_with(|c| {
        add_clients(c);
        install(c.data_dir.as_ref().unwrap(), &test, "test_policy");
        c.policies.push(policy(
            "test-policy",
            json!({"roles": ["observer"], "panic_in": "observe"}),
        ));
        c.policies.push(policy(
            "test-policy",
            json!({"roles": ["operator"], "panic_in": "command"}),
        ));
    })
    .await;
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

/// The built binary, on an ephemeral port; killed when dropped.
struct Binary {
    child: std::process::Child,
    base: String,
    token: String,
    http: reqwest::Client,
}

impl Drop for Binary {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Binary {
    async fn spawn(data_dir: &Path, config: &Path) -> Binary {
        use std::io::BufRead;
        let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_yoi-host"))
            .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
            .arg(data_dir)
            .arg("--config")
            .arg(config)
            .arg("--component")
            .arg(component())
            .env("RUST_LOG", "warn")
            .stdout(std::process::Stdio::piped())
            .stderr(std::process::Stdio::inherit())
            .spawn()
            .expect("spawn yoi-host");
        let stdout = child.stdout.take().unwrap();
        let line = tokio::task::spawn_blocking(move || {
            let mut line = String::new();
            std::io::BufReader::new(stdout)
                .read_line(&mut line)
                .unwrap();
            line
        });
        let line = tokio::time::timeout(PATIENCE, line).await.unwrap().unwrap();
        let addr = line
            .split("http://")
            .nth(1)
            .and_then(|rest| rest.split_whitespace().next())
            .unwrap_or_else(|| panic!("no address in {line:?}"))
            .to_string();
        let token = std::fs::read_to_string(data_dir.join("host.token")).unwrap();
        let binary = Binary {
            child,
            base: format!("http://{addr}/api/v1"),
            token: token.trim().to_string(),
            http: reqwest::Client::new(),
        };
        tokio::time::timeout(PATIENCE, async {
            loop {
                let ready = binary
                    .http
                    .get(format!("http://{addr}/readyz"))
                    .send()
                    .await;
                if ready.is_ok_and(|r| r.status() == 200) {
                    return;
                }
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("ready in time");
        binary
    }

    async fn call(&self, path: &str, token: &str, body: Option<Value>) -> Value {
        let url = format!("{}{path}", self.base);
        let request = match body {
            Some(body) => self.http.post(url).json(&body),
            None => self.http.get(url),
        };
        let resp = request.bearer_auth(token).send().await.unwrap();
        assert!(resp.status().is_success(), "{path}: {}", resp.status());
        resp.json().await.unwrap()
    }

    fn hangup(&self) {
        // SAFETY: a plain kill(2) on our own child.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(sent, 0);
    }

    /// Whether the observer sees reasoning in the worker's transcript.
    async fn observer_sees_reasoning(&self, worker: &str) -> bool {
        let path = format!("/runtimes/local/workers/{worker}/transcript");
        let transcript = self.call(&path, OBSERVER_TOKEN, None).await;
        transcript["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.get("reasoning").is_some())
    }

    /// Waits (guarded by `PATIENCE`) until the observer's view is `reasoning`.
    async fn until_observer_sees_reasoning(&self, worker: &str, reasoning: bool) {
        tokio::time::timeout(PATIENCE, async {
            while self.observer_sees_reasoning(worker).await != reasoning {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the reload applies in time");
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_policy_chain_of_the_binary() {
    let Some(examples) = examples("sighup_reloads_the_policy_chain_of_the_binary") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("watcher.token");
    std::fs::write(&token_file, OBSERVER_TOKEN).unwrap();
    let config = dir.path().join("host.toml");
    let base = format!(
        "[[runtimes]]\nid = \"local\"\n[runtimes.scripted]\ntoken_delay_ms = 0\n\n\
         [[clients]]\nname = \"watcher\"\nrole = \"observer\"\ntoken_file = {:?}\n",
        token_file.display().to_string()
    );
    std::fs::write(&config, &base).unwrap();
    let host = Binary::spawn(dir.path(), &config).await;
    let spec = json!({"name": "w", "model": "scripted"});
    let created = host
        .call("/runtimes/local/workers", &host.token, Some(spec))
        .await;
    let w = created["worker"]["id"].as_str().unwrap().to_string();
    let input = format!("/runtimes/local/workers/{w}/input");
    host.call(&input, &host.token, Some(json!({"text": "hello"})))
        .await;
    // Without policies the observer sees the run's reasoning (once it is done).
    host.until_observer_sees_reasoning(&w, true).await;

    install(dir.path(), &examples, "yoi-policy-redact-reasoning");
    let with_policy = format!(
        "{base}\n[[policies]]\nplugin = \"redact-reasoning\"\nsettings = {{ roles = [\"observer\"] }}\n"
    );
    std::fs::write(&config, with_policy).unwrap();
    host.hangup();
    host.until_observer_sees_reasoning(&w, false).await;

    // And back, by the next SIGHUP.
    std::fs::write(&config, &base).unwrap();
    host.hangup();
    host.until_observer_sees_reasoning(&w, true).await;
}
