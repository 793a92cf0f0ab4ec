//! The built `yoi-runtime` binary: start-up (token file, `--token-file`), SIGTERM in the
//! middle of a run, a restart on the same data dir that resumes the stream by cursor
//! (the interrupted run ends `interrupted`), start-up errors that say what to do, and a
//! `yoi-host` fronting the binary as a remote runtime through `kill -9` and a restart.

mod common;

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use common::*;
use serde_json::Value;
use yoi_client::{ConnState, EventStream, HostClient, RuntimeClient, StreamItem};
use yoi_host::config::{Config as HostConfig, RemoteConfig, RuntimeConfig, RuntimeId};
use yoi_host::config::{SourceConfig, TokenSource};
use yoi_protocol::{Cursor, ErrorCode, Event, Frame, WorkerSpec, WorkerStatus};

const BIN: &str = env!("CARGO_BIN_EXE_yoi-runtime");

/// A running `yoi-runtime serve` and a client for it.
struct Proc {
    child: Child,
    client: TestRuntime,
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// A config whose scripted model waits `token_delay_ms` between streamed tokens.
fn write_config(dir: &Path, token_delay_ms: u64) -> PathBuf {
    let path = dir.join("runtime.toml");
    let text = format!("[runtime.scripted]\ntoken_delay_ms = {token_delay_ms}\n");
    std::fs::write(&path, text).unwrap();
    path
}

/// Starts the binary on an ephemeral port with `args` and waits until it is ready.
async fn spawn(dir: tempfile::TempDir, args: &[&str], token_file: &Path) -> Proc {
    spawn_at(dir, "127.0.0.1:0", args, token_file).await
}

/// Starts the binary on `bind` with `args` and waits until it is ready.
async fn spawn_at(dir: tempfile::TempDir, bind: &str, args: &[&str], token_file: &Path) -> Proc {
    let mut child = Command::new(BIN)
        .args(["serve", "--bind", bind, "--data-dir"])
        .arg(dir.path())
        .args(args)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn yoi-runtime");
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
    assert!(line.contains(token_file.to_str().unwrap()), "{line}");
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(token_file).unwrap().permissions().mode();
        assert_eq!(mode & 0o777, 0o600, "the token file is private");
    }
    let token = std::fs::read_to_string(token_file)
        .unwrap()
        .trim()
        .to_string();
    let client = TestRuntime {
        server: None,
        base: format!("http://{addr}/v1"),
        ws_base: format!("ws://{addr}/v1"),
        root: format!("http://{addr}"),
        token,
        http: reqwest::Client::new(),
        dir,
    };
    tokio::time::timeout(PATIENCE, async {
        loop {
            let ready = client
                .http
                .get(format!("{}/readyz", client.root))
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
    Proc { child, client }
}

impl Proc {
    /// Sends SIGTERM and waits for a clean exit; hands back the data dir.
    fn terminate(mut self) -> tempfile::TempDir {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with a pid this test spawned and still owns.
        assert_eq!(unsafe { libc::kill(pid, libc::SIGTERM) }, 0);
        let status = self.child.wait().unwrap();
        assert!(status.success(), "a clean exit after SIGTERM: {status}");
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.client.dir, dir)
    }
}

#[tokio::test(flavor = "multi_thread")]
async fn sigterm_mid_run_then_a_restart_resumes_the_stream() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 5);
    let config = config.to_str().unwrap().to_string();
    let token_file = dir.path().join("runtime.token");
    let rt = spawn(dir, &["--config", &config], &token_file).await;
    let w = rt.client.create_worker("w").await;
    let mut ws = rt.client.ws("/events/ws").await;
    let snap = ws.frame().await;
    assert_eq!(snap["type"], "snapshot_all");
    rt.client.input(&w, "stream 100000").await;
    let seen = ws
        .events_until(|f| f["event"]["type"] == "text_delta")
        .await;
    let cursor = cursor_of(seen.last().unwrap());

    let dir = rt.terminate();
    let mut tail = Vec::new();
    let closing = loop {
        let f = ws.frame().await;
        if f["type"] != "event" {
            break f;
        }
        tail.push(f);
    };
    assert_eq!(
        (closing["type"].as_str(), closing["code"].as_str()),
        (Some("error"), Some("shutting_down"))
    );
    assert_eq!(ws.expect_close().await, Some(1001));
    let seen: Vec<Value> = seen.into_iter().chain(tail).collect();
    let last_seen = cursor_of(seen.last().unwrap());

    let rt = spawn(dir, &["--config", &config], &token_file).await;
    // Resuming from the last frame seen: the interrupted run ends, with no gap and no
    // duplicate.
    let mut ws = rt
        .client
        .ws(&format!("/events/ws?cursor={last_seen}"))
        .await;
    let rest = ws.events_until(|f| back_to_idle(f, &w)).await;
    assert_eq!(
        rest[0]["seq"].as_u64().unwrap(),
        Cursor::decode(&last_seen).unwrap().seq + 1
    );
    let failed = rest
        .iter()
        .find(|f| f["event"]["type"] == "run_failed")
        .expect("the interrupted run ends as failed");
    assert_eq!(failed["event"]["error"]["code"], "interrupted");
    // What the client saw before the restart is a prefix of the replay after it.
    let mut ws = rt
        .client
        .ws(&format!("/events/ws?cursor={}", cursor_of(&snap)))
        .await;
    let replayed = ws
        .events_until(|f| f["seq"] == seen.last().unwrap()["seq"])
        .await;
    assert_eq!(replayed, seen);
    assert!(Cursor::decode(&cursor).unwrap().seq <= Cursor::decode(&last_seen).unwrap().seq);
    // And the worker takes new input.
    rt.client.input(&w, "hello").await;
    rt.client.wait_idle(&w, 2).await;
}

#[tokio::test(flavor = "multi_thread")]
async fn a_given_token_file_is_used() {
    let dir = tempfile::tempdir().unwrap();
    let token_file = dir.path().join("elsewhere").join("my.token");
    let arg = token_file.to_str().unwrap().to_string();
    let rt = spawn(dir, &["--token-file", &arg], &token_file).await;
    assert_eq!(
        rt.client.get_json("/runtime").await["runtime"]["kind"],
        "native"
    );
    assert!(!rt.client.dir.path().join("runtime.token").exists());
}

fn run_to_failure(args: &[&str]) -> String {
    let out = Command::new(BIN)
        .args(args)
        .env("RUST_LOG", "off")
        .output()
        .expect("run yoi-runtime");
    assert!(!out.status.success(), "{args:?} should fail");
    String::from_utf8_lossy(&out.stderr).into_owned()
}

#[test]
fn start_up_errors_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().to_str().unwrap();
    let config = dir.path().join("bad.toml");
    std::fs::write(&config, "bind = \"127.0.0.1:0\"\n[streams]\nqeueu = 3\n").unwrap();
    let e = run_to_failure(&[
        "serve",
        "--data-dir",
        data,
        "--config",
        config.to_str().unwrap(),
    ]);
    assert!(e.contains("qeueu") && e.contains("line 3"), "{e}");
    let e = run_to_failure(&["serve", "--data-dir", data, "--component", "/nope/x.wasm"]);
    assert!(e.contains("build-guest"), "{e}");
    let e = run_to_failure(&["serve", "--bind", "not-an-address"]);
    assert!(e.contains("--bind"), "{e}");
}

impl Proc {
    /// `kill -9`: no shutdown, no flush; hands back the data dir.
    fn kill(mut self) -> tempfile::TempDir {
        self.child.kill().unwrap();
        self.child.wait().unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::mem::replace(&mut self.client.dir, dir)
    }
}

/// A host whose only runtime, `far`, is the runtime server at `addr`.
async fn host_fronting(addr: &str, token_file: &Path, data: &Path) -> yoi_host::Host {
    let far = RuntimeConfig {
        id: RuntimeId::parse("far").unwrap(),
        source: SourceConfig::Remote(RemoteConfig {
            url: format!("http://{addr}"),
            token: TokenSource::File(token_file.to_path_buf()),
            connect_timeout_ms: 2_000.try_into().unwrap(),
            request_timeout_ms: 10_000.try_into().unwrap(),
            stream_idle_timeout_ms: 60_000.try_into().unwrap(),
            window_bytes: (128 << 20).try_into().unwrap(),
        }),
    };
    let config = HostConfig {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(data.to_path_buf()),
        runtimes: vec![far],
        ..HostConfig::default()
    };
    let host = yoi_host::Host::start(config).await.expect("host starts");
    tokio::time::timeout(PATIENCE, host.ready())
        .await
        .expect("the host loads in time")
        .expect("the host loads");
    host
}

#[tokio::test(flavor = "multi_thread")]
async fn a_host_stream_survives_kill_9_of_its_remote_runtime_without_gap_or_duplicate() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_config(dir.path(), 5);
    let config = config.to_str().unwrap().to_string();
    let token_file = dir.path().join("runtime.token");
    // A fixed port, so the restarted runtime is where the host looks for it.
    let addr = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .to_string();
    let rt = spawn_at(dir, &addr, &["--config", &config], &token_file).await;
    let host_dir = tempfile::tempdir().unwrap();
    let host = host_fronting(&addr, &token_file, host_dir.path()).await;
    let client = HostClient::new(&format!("http://{}", host.local_addr()), host.token()).unwrap();
    let far = client.runtime("far");
    let w = tokio::time::timeout(PATIENCE, async {
        let spec = WorkerSpec {
            name: "w".into(),
            model: "scripted".into(),
            system_prompt: None,
            tools: vec![],
            max_steps: None,
            context_tokens: None,
            request_id: None,
        };
        loop {
            match far.create_worker(&spec).await {
                Ok(w) => return w.id,
                // The host's stream to the runtime may still be connecting.
                Err(e) if e.code() == ErrorCode::RuntimeUnavailable => {
                    tokio::time::sleep(std::time::Duration::from_millis(20)).await
                }
                Err(e) => panic!("create: {e}"),
            }
        }
    })
    .await
    .expect("the runtime is reachable in time");
    let mut stream = far.worker_stream(&w, None);
    let mut snapshot_cursor = None;
    while snapshot_cursor.is_none() {
        match next_item(&mut stream).await {
            StreamItem::Frame(Frame::Snapshot { cursor, .. }) => snapshot_cursor = Some(cursor),
            StreamItem::Status(ConnState::Connecting | ConnState::Connected) => {}
            other => panic!("unexpected {other:?}"),
        }
    }
    let input = serde_json::from_value(serde_json::json!({"text": "stream 100000"})).unwrap();
    far.send_input(&w, &input).await.unwrap();

    // The host's stream is one connection throughout: any status item means it broke.
    let mut seqs = Vec::new();
    loop {
        let (seq, e) = next_event(&mut stream)
            .await
            .expect("no diagnostic before the kill");
        seqs.push(seq);
        if matches!(e, Event::TextDelta { .. }) {
            break;
        }
    }
    let dir = rt.kill();
    let (code, message) = loop {
        match next_event(&mut stream).await {
            Ok((seq, _)) => seqs.push(seq),
            Err(told) => break told,
        }
    };
    assert_eq!(code, ErrorCode::RuntimeUnavailable, "{message}");
    assert!(!message.contains(&addr), "{message}");

    let rt = spawn_at(dir, &addr, &["--config", &config], &token_file).await;
    let mut interrupted = false;
    loop {
        let (seq, e) = next_event(&mut stream)
            .await
            .expect("no diagnostic once back");
        seqs.push(seq);
        if let Event::RunFailed { error, .. } = &e {
            assert_eq!(error.code, "interrupted", "{error:?}");
            interrupted = true;
        }
        if interrupted
            && matches!(
                e,
                Event::StatusChanged {
                    to: WorkerStatus::Idle,
                    ..
                }
            )
        {
            break;
        }
    }
    let runtime = RuntimeClient::new(&rt.client.root, &rt.client.token).unwrap();
    let (mut after, mut logged) = (snapshot_cursor.unwrap(), Vec::new());
    loop {
        let page = runtime.events(Some(after), Some(&w), None).await.unwrap();
        logged.extend(page.events.iter().map(|e| e.seq));
        after = page.cursor;
        if !page.more {
            break;
        }
    }
    assert_eq!(seqs, logged, "no gap, no duplicate");
    host.shutdown().await.unwrap();
}

async fn next_item(stream: &mut EventStream<Cursor>) -> StreamItem<Cursor> {
    tokio::time::timeout(PATIENCE, stream.next())
        .await
        .expect("an item in time")
        .expect("the stream goes on")
}

/// The next event of a stream that must stay connected (any status item means it broke),
/// or the diagnostic it got.
async fn next_event(stream: &mut EventStream<Cursor>) -> Result<(u64, Event), (ErrorCode, String)> {
    match next_item(stream).await {
        StreamItem::Frame(Frame::Event { seq, event, .. }) => Ok((seq, event)),
        StreamItem::Frame(Frame::Diagnostic { code, message }) => Err((code, message)),
        other => panic!("the host's stream stays open: {other:?}"),
    }
}
