//! The built `yoi-host` binary: start-up, kill -9 then restart and resume with an old
//! cursor, SIGTERM and SIGINT mid-run, SIGHUP reloading the policy chain, and start-up
//! errors that say what to do.

mod common;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yoi_protocol::Cursor;

const BIN: &str = env!("CARGO_BIN_EXE_yoi-host");

struct Proc {
    child: Child,
    base: String,
    ws_base: String,
    token: String,
    http: reqwest::Client,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn write_config(dir: &Path) -> std::path::PathBuf {
    write_config_with_delay(dir, 0)
}

/// A config whose scripted model waits `token_delay_ms` between streamed tokens.
fn write_config_with_delay(dir: &Path, token_delay_ms: u64) -> std::path::PathBuf {
    let path = dir.join("host.toml");
    std::fs::write(
        &path,
        format!(
            "[[runtimes]]\nid = \"local\"\n[runtimes.scripted]\ntoken_delay_ms = {token_delay_ms}\n"
        ),
    )
    .unwrap();
    path
}

/// Starts the binary on an ephemeral port and waits until it is ready.
async fn spawn(data_dir: &Path, config: &Path) -> Proc {
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", "127.0.0.1:0", "--data-dir"])
        .arg(data_dir)
        .arg("--config")
        .arg(config)
        .arg("--component")
        .arg(component())
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn yoi-host");
    let stdout = child.stdout.take().unwrap();
    let line = tokio::task::spawn_blocking(move || {
        let mut line = String::new();
        BufReader::new(stdout).read_line(&mut line).unwrap();
        line
    });
    let line = tokio::time::timeout(PATIENCE, line).await.unwrap().unwrap();
    let addr = line
        .split("http://")
        .nth(1)
        .and_then(|rest| rest.split_whitespace().next())
        .unwrap_or_else(|| panic!("no address in {line:?}"))
        .to_string();
    let token_file = data_dir.join("host.token");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    let token = std::fs::read_to_string(&token_file)
        .unwrap()
        .trim()
        .to_string();
    let proc = Proc {
        child,
        base: format!("http://{addr}/api/v1"),
        ws_base: format!("ws://{addr}/api/v1"),
        token,
        http: reqwest::Client::new(),
    };
    tokio::time::timeout(PATIENCE, async {
        loop {
            let ready = proc.http.get(format!("http://{addr}/readyz")).send().await;
            if ready.is_ok_and(|r| r.status() == 200) {
                return;
            }
            tokio::time::sleep(std::time::Duration::from_millis(20)).await;
        }
    })
    .await
    .expect("ready in time");
    proc
}

impl Proc {
    async fn post(&self, path: &str, body: Value) -> Value {
        let resp = self
            .http
            .post(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .json(&body)
            .send()
            .await
            .unwrap();
        assert!(resp.status().is_success(), "{}", resp.status());
        resp.json().await.unwrap()
    }

    /// Creates a scripted worker; returns its id.
    async fn create_worker(&self, name: &str) -> String {
        let created = self
            .post(
                "/runtimes/local/workers",
                json!({"name": name, "model": "scripted"}),
            )
            .await;
        created["worker"]["id"].as_str().unwrap().to_string()
    }

    async fn ws(&self, path: &str) -> Ws {
        let mut request = format!("{}{path}", self.ws_base)
            .into_client_request()
            .unwrap();
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.token).parse().unwrap(),
        );
        let (ws, _) = tokio_tungstenite::connect_async(request).await.unwrap();
        Ws { ws }
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn kill_9_then_restart_resumes_an_old_cursor() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path());
    let host = spawn(dir.path(), &config).await;
    let w = host.create_worker("w").await;
    let path = |cursor: Option<&str>| match cursor {
        Some(c) => format!("/runtimes/local/workers/{w}/events/ws?cursor={c}"),
        None => format!("/runtimes/local/workers/{w}/events/ws"),
    };

    let mut ws = host.ws(&path(None)).await;
    ws.frame().await;
    host.post(
        &format!("/runtimes/local/workers/{w}/input"),
        json!({"text": "first"}),
    )
    .await;
    let first_run = ws.events_until(|f| back_to_idle(f, &w)).await;
    let old_cursor = cursor_of(first_run.last().unwrap());
    host.post(
        &format!("/runtimes/local/workers/{w}/input"),
        json!({"text": "second"}),
    )
    .await;
    let second_run = ws.events_until(|f| back_to_idle(f, &w)).await;
    let mux_cursor = {
        let mut all = host.ws("/events/ws").await;
        cursor_of(&all.frame().await)
    };
    drop(ws);
    let token = host.token.clone();

    // kill -9: no shutdown at all.
    drop(host);
    let host = spawn(dir.path(), &config).await;
    assert_eq!(host.token, token, "the token file is reused");

    // The old cursor still names the same position: the second run replays exactly.
    let mut ws = host.ws(&path(Some(&old_cursor))).await;
    let replayed = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(seqs(&replayed), seqs(&second_run));
    assert_eq!(replayed, second_run, "same events, same cursors");
    // ... and the stream goes on live after the replay.
    host.post(
        &format!("/runtimes/local/workers/{w}/input"),
        json!({"text": "third"}),
    )
    .await;
    let live = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(live[0]["event"]["text"], "third");
    // The worker was passivated by the restart; the input activated it, and the
    // runtime-wide `worker_activated` diagnostic took the one sequence number between.
    assert_eq!(
        live[0]["seq"].as_u64().unwrap(),
        replayed.last().unwrap()["seq"].as_u64().unwrap() + 2
    );
    let epoch = Cursor::decode(&old_cursor).unwrap().epoch;
    assert_eq!(Cursor::decode(&cursor_of(&live[0])).unwrap().epoch, epoch);

    // The multiplexed cursor taken before the kill resumes too.
    let mut all = host.ws(&format!("/events/ws?cursor={mux_cursor}")).await;
    let rest = all.events_until(|f| back_to_idle(f, &w)).await;
    let of_w: Vec<_> = rest
        .into_iter()
        .filter(|f| f["worker_id"] == w.as_str())
        .collect();
    assert_eq!(seqs(&of_w), seqs(&live));
}

/// SIGTERM or SIGINT mid-run: every stream gets its closing frame, the process exits
/// cleanly, and after a restart every event any client saw is still there (the store was
/// flushed); the run that was streaming is closed as interrupted.
#[cfg(unix)]
async fn signal_closes_streams_and_keeps_what_was_seen(signal: libc::c_int) {
    let dir = tempfile::tempdir().unwrap();
    // A token a millisecond: the run is mid-stream at the signal, and this reader keeps up.
    let config = write_config_with_delay(dir.path(), 1);
    let mut host = spawn(dir.path(), &config).await;
    let w = host.create_worker("w").await;
    let mut ws = host
        .ws(&format!("/runtimes/local/workers/{w}/events/ws"))
        .await;
    let before = cursor_of(&ws.frame().await);
    host.post(
        &format!("/runtimes/local/workers/{w}/input"),
        json!({"text": "stream 100000"}),
    )
    .await;
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let f = ws.frame().await;
        assert_eq!(f["type"], "event", "{f}");
        seen.push(f);
    }
    let pid = host.child.id() as libc::pid_t;
    // SAFETY: plain kill(2) on the child this test started.
    assert_eq!(unsafe { libc::kill(pid, signal) }, 0);
    let closing = loop {
        let f = ws.frame().await;
        if f["type"] != "event" {
            break f;
        }
        seen.push(f);
    };
    assert_eq!(closing["type"], "error", "{closing}");
    assert_eq!(closing["code"], "shutting_down", "{closing}");
    assert_eq!(ws.expect_close().await, Some(1001));
    let status = tokio::task::spawn_blocking(move || {
        let status = host.child.wait().unwrap();
        (status, host)
    })
    .await
    .unwrap()
    .0;
    assert!(status.success(), "{status}");

    let host = spawn(dir.path(), &config).await;
    let mut ws = host
        .ws(&format!(
            "/runtimes/local/workers/{w}/events/ws?cursor={before}"
        ))
        .await;
    let replayed = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(
        replayed.len() > seen.len(),
        "{} replayed, {} seen",
        replayed.len(),
        seen.len()
    );
    assert_eq!(
        replayed[..seen.len()],
        seen[..],
        "every event seen survives"
    );
    let ended = replayed
        .iter()
        .find(|f| f["event"]["type"] == "run_failed")
        .expect("the interrupted run is closed");
    assert_eq!(ended["event"]["error"]["code"], "interrupted", "{ended}");
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigterm_closes_streams_and_keeps_what_was_seen() {
    signal_closes_streams_and_keeps_what_was_seen(libc::SIGTERM).await;
}

#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn sigint_closes_streams_and_keeps_what_was_seen() {
    signal_closes_streams_and_keeps_what_was_seen(libc::SIGINT).await;
}

/// kill -9 of the host mid-run: no closing frame, no flush. After a restart on the same
/// data dir the frames the client saw are exactly the start of the replay (same events,
/// same cursors, same order: nothing a client saw is lost or renumbered), and the run
/// that was streaming ends `run_failed` `interrupted`, in the replay and the transcript.
#[cfg(unix)]
#[tokio::test(flavor = "multi_thread")]
async fn kill_9_mid_run_keeps_what_clients_saw_and_ends_the_run_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config_with_delay(dir.path(), 1);
    let mut host = spawn(dir.path(), &config).await;
    let w = host.create_worker("w").await;
    let path = |cursor: &str| format!("/runtimes/local/workers/{w}/events/ws?cursor={cursor}");
    let mut ws = host
        .ws(&format!("/runtimes/local/workers/{w}/events/ws"))
        .await;
    let before = cursor_of(&ws.frame().await);
    let run = host
        .post(
            &format!("/runtimes/local/workers/{w}/input"),
            json!({"text": "stream 100000"}),
        )
        .await["run_id"]
        .as_str()
        .unwrap()
        .to_string();
    let mut seen = Vec::new();
    while seen.len() < 50 {
        let f = ws.frame().await;
        assert_eq!(f["type"], "event", "{f}");
        seen.push(f);
    }
    assert!(seen.iter().any(|f| f["event"]["type"] == "text_delta"));
    host.child.kill().unwrap(); // SIGKILL
    let status = host.child.wait().unwrap();
    assert!(!status.success(), "killed: {status}");
    // What was on its way when the host died may still arrive; then the connection ends.
    while let Some(f) = ws.frame_or_close().await {
        assert_eq!(
            f["type"], "event",
            "no closing frame from a killed host: {f}"
        );
        seen.push(f);
    }
    drop(host);

    let host = spawn(dir.path(), &config).await;
    let mut ws = host.ws(&path(&before)).await;
    let replayed = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert!(replayed.len() > seen.len(), "the run's end follows");
    assert_eq!(
        replayed[..seen.len()],
        seen[..],
        "what was seen is a prefix"
    );
    let ended: Vec<&Value> = replayed
        .iter()
        .filter(|f| {
            matches!(
                f["event"]["type"].as_str(),
                Some("run_completed" | "run_failed" | "run_cancelled")
            )
        })
        .collect();
    assert_eq!(ended.len(), 1, "the run ends once");
    assert_eq!(ended[0]["event"]["type"], "run_failed", "{}", ended[0]);
    assert_eq!(ended[0]["event"]["run_id"], run.as_str());
    assert_eq!(ended[0]["event"]["error"]["code"], "interrupted");
    let s = seqs(&replayed);
    assert!(s.windows(2).all(|p| p[1] == p[0] + 1), "{s:?}");

    let transcript = host
        .get_json(&format!("/runtimes/local/workers/{w}/transcript"))
        .await;
    let messages = transcript["messages"].as_array().unwrap();
    assert_eq!(messages[0]["role"], "user", "{transcript}");
    assert_eq!(messages[0]["content"], "stream 100000", "{transcript}");
    let worker = host.get_json(&format!("/runtimes/local/workers/{w}")).await;
    assert_eq!(worker["worker"]["status"], "idle", "{worker}");
    assert_eq!(worker["worker"]["run_count"], 1, "{worker}");
}

fn run_to_failure(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run yoi-host");
    assert!(!out.status.success(), "expected a failure");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_up_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let err = run_to_failure(&[
        "serve",
        "--data-dir",
        data,
        "--component",
        "/nonexistent/yoi_runtime.wasm",
    ]);
    assert!(err.contains("cargo xtask build-guest"), "{err}");
    // The same without --component: the default path (here through $YOI_GUEST_WASM).
    let out = Command::new(BIN)
        .args(["serve", "--data-dir", data])
        .env("RUST_LOG", "off")
        .env("YOI_GUEST_WASM", "/nonexistent/default.wasm")
        .output()
        .unwrap();
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("cargo xtask build-guest") && err.contains("/nonexistent/default.wasm"),
        "{err}"
    );

    let config = dir.path().join("bad.toml");
    std::fs::write(
        &config,
        "bind = \"127.0.0.1:0\"\n[streams]\nqueue_size = 3\n",
    )
    .unwrap();
    let err = run_to_failure(&[
        "serve",
        "--data-dir",
        data,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(
        err.contains("queue_size") && err.contains("line 3"),
        "{err}"
    );

    let help = Command::new(BIN)
        .args(["serve", "--help"])
        .output()
        .unwrap();
    let help = String::from_utf8_lossy(&help.stdout);
    for flag in ["--config", "--bind", "--data-dir", "--component"] {
        assert!(help.contains(flag), "{help}");
    }
}

impl Proc {
    /// `GET` of `path` (under the API base) with the owner's token, as JSON.
    async fn get_json(&self, path: &str) -> Value {
        let resp = self
            .http
            .get(format!("{}{path}", self.base))
            .bearer_auth(&self.token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200, "GET {path}");
        resp.json().await.unwrap()
    }

    /// Whether the client with `token` sees reasoning in the worker's transcript.
    async fn sees_reasoning(&self, token: &str, worker: &str) -> bool {
        let resp = self
            .http
            .get(format!(
                "{}/runtimes/local/workers/{worker}/transcript",
                self.base
            ))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), 200);
        let transcript: Value = resp.json().await.unwrap();
        transcript["messages"]
            .as_array()
            .unwrap()
            .iter()
            .any(|m| m.get("reasoning").is_some())
    }

    /// Waits (guarded by `PATIENCE`) until the client's view is `reasoning`.
    async fn until_reasoning_seen(&self, token: &str, worker: &str, reasoning: bool) {
        tokio::time::timeout(PATIENCE, async {
            while self.sees_reasoning(token, worker).await != reasoning {
                tokio::time::sleep(std::time::Duration::from_millis(20)).await;
            }
        })
        .await
        .expect("the reload applies in time");
    }

    fn hangup(&self) {
        // SAFETY: a plain kill(2) of our own child.
        let sent = unsafe { libc::kill(self.child.id() as libc::pid_t, libc::SIGHUP) };
        assert_eq!(sent, 0);
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sighup_reloads_the_policy_chain() {
    let Some(examples) = examples("sighup_reloads_the_policy_chain") else {
        return;
    };
    let observer = "observer-token-0123456789";
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("watcher.token");
    std::fs::write(&token_file, observer).unwrap();
    let config = dir.path().join("host.toml");
    let base = format!(
        "[[runtimes]]\nid = \"local\"\n[runtimes.scripted]\ntoken_delay_ms = 0\n\n\
         [[clients]]\nname = \"watcher\"\nrole = \"observer\"\ntoken_file = {:?}\n",
        token_file.display().to_string()
    );
    std::fs::write(&config, &base).unwrap();
    let host = spawn(dir.path(), &config).await;
    let w = host.create_worker("w").await;
    host.post(
        &format!("/runtimes/local/workers/{w}/input"),
        json!({"text": "hello"}),
    )
    .await;
    // Without policies the observer sees the run's reasoning (once it is done).
    host.until_reasoning_seen(observer, &w, true).await;

    install(dir.path(), &examples, "yoi-policy-redact-reasoning");
    let with_policy = format!(
        "{base}\n[[policies]]\nplugin = \"redact-reasoning\"\nsettings = {{ roles = [\"observer\"] }}\n"
    );
    std::fs::write(&config, with_policy).unwrap();
    host.hangup();
    host.until_reasoning_seen(observer, &w, false).await;
    assert!(
        host.sees_reasoning(&host.token, &w).await,
        "the owner still does"
    );

    // And back, by the next SIGHUP.
    std::fs::write(&config, &base).unwrap();
    host.hangup();
    host.until_reasoning_seen(observer, &w, true).await;
}

/// A log that goes to a file or a pipe is plain text (colours only on a terminal).
#[test]
fn logs_to_a_pipe_have_no_colour_codes() {
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("old.toml");
    // A key that only warns, then a component that is missing: a log line, then a stop.
    std::fs::write(&config, "[streams]\nqueue = 256\n").unwrap();
    let out = Command::new(BIN)
        .args(["serve", "--data-dir", dir.path().to_str().unwrap()])
        .args(["--config", config.to_str().unwrap()])
        .args(["--component", "/nonexistent/yoi_runtime.wasm"])
        .env("RUST_LOG", "info")
        .output()
        .expect("run yoi-host");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("streams.queue is no longer used"), "{err}");
    assert!(!err.contains('\x1b'), "{err:?}");
}
