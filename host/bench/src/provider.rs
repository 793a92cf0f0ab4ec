//! `provider.*`: an OpenAI-compatible model through `yoi-host`, end to end.
//!
//! An in-process fake server speaks the chat-completions streaming API (SSE): every
//! answer is `TOKENS` content chunks, a finish chunk, a usage chunk and `[DONE]`, with no
//! delay, so the figures are yoi's own cost: the provider's HTTP client and SSE parser,
//! the runtime (the component), the event log and the host's streams.
//!
//! - **Turn** (`provider.turn_ms`, median): one worker; from the POST of its input to its
//!   `run_completed` frame on the worker's WebSocket stream.
//! - **Concurrent turns** (`provider.concurrent_events_per_s`): `CONCURRENT` workers, one
//!   turn each at once; event frames on one observer of the multiplexed stream per
//!   second, first input to the last `run_completed`.
//! - **Memory** (`provider.kib_per_worker`): the process's resident memory after
//!   `MANY` workers have had one turn each, less before, per worker; measured after
//!   `WARM_TURNS` turns of another worker have filled the runtime's bounded caches.

use std::convert::Infallible;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Context;
use axum::Router;
use axum::extract::State;
use axum::response::sse::{Event as SseEvent, Sse};
use axum::routing::post;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yoi_host::Host;
use yoi_host::config::{Config, RuntimeConfig, RuntimeSettings};

use crate::host::{Client, Ws};
use crate::results::{Results, Samples};

const TOKENS: usize = 200;
const TURNS: usize = 20;
const CONCURRENT: usize = 20;
const MANY: usize = 1_000;
/// Turns of one worker before memory is measured: ~85,000 events, more than the window.
const WARM_TURNS: usize = 400;
/// Hang guard, never a performance bound.
const PATIENCE: Duration = Duration::from_secs(300);

pub async fn run(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds();
    println!(
        "provider: fake OpenAI-compatible server, {TOKENS} tokens per answer, no delay; \
         {TURNS} sequential turns, {CONCURRENT} concurrent turns; {rounds} rounds"
    );
    let mut figures: [Samples; 2] = Default::default();
    for _ in 0..rounds {
        let bench = Bench::start().await?;
        figures[0].push(bench.turn_ms().await?);
        figures[1].push(bench.concurrent().await?);
        bench.host.shutdown().await?;
    }
    results.record_medians(
        ["provider.turn_ms", "provider.concurrent_events_per_s"],
        &figures,
    );

    println!("provider: resident memory of {MANY} workers after one turn each");
    let bench = Bench::start().await?;
    // Turns first until the runtime's fixed-size caches are full (the event window of
    // 65,536 events, the frame cache, SQLite's page cache) and what every worker shares
    // is allocated, so the figure is what each worker adds, not caches filling up.
    let warm = bench.worker("warm").await?;
    for _ in 0..WARM_TURNS {
        bench.turn(&warm).await?;
    }
    let before = rss_kib()?;
    let mut ids = Vec::with_capacity(MANY);
    for i in 0..MANY {
        ids.push(bench.worker(&format!("w{i}")).await?);
    }
    for chunk in ids.chunks(CONCURRENT) {
        futures_util::future::try_join_all(chunk.iter().map(|id| bench.turn(id))).await?;
    }
    let after = rss_kib()?;
    let mut memory = Samples::default();
    memory.push(after.saturating_sub(before) as f64 / MANY as f64);
    results.record_median("provider.kib_per_worker", &memory);
    bench.host.shutdown().await?;
    Ok(())
}

/// The fake model's answer: the SSE data lines, built once.
fn answer() -> Arc<Vec<String>> {
    let chunk = |delta: &str, finish: &str| {
        format!(
            r#"{{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[{{"index":0,"delta":{delta},"finish_reason":{finish}}}]}}"#
        )
    };
    let mut lines: Vec<String> = (0..TOKENS)
        .map(|i| chunk(&format!(r#"{{"content":"tok{i} "}}"#), "null"))
        .collect();
    lines.push(chunk("{}", r#""stop""#));
    lines.push(
        r#"{"id":"c1","object":"chat.completion.chunk","model":"m","choices":[],"usage":{"prompt_tokens":20,"completion_tokens":200,"total_tokens":220}}"#
            .to_string(),
    );
    lines.push("[DONE]".to_string());
    Arc::new(lines)
}

async fn completions(
    State(answer): State<Arc<Vec<String>>>,
) -> Sse<impl futures_util::Stream<Item = Result<SseEvent, Infallible>>> {
    let events = (0..answer.len()).map(move |i| Ok(SseEvent::default().data(answer[i].clone())));
    Sse::new(futures_util::stream::iter(events))
}

async fn fake_server() -> anyhow::Result<String> {
    let app = Router::new()
        .route("/v1/chat/completions", post(completions))
        .with_state(answer());
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    // Without TCP_NODELAY each small SSE write waits for the client's delayed ACK
    // (~40 ms a turn): real servers stream with it set.
    let listener = axum::serve::ListenerExt::tap_io(listener, |tcp| {
        let _ = tcp.set_nodelay(true);
    });
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/v1"))
}

struct Bench {
    host: Host,
    http: Client,
    _dir: tempfile::TempDir,
}

impl Bench {
    async fn start() -> anyhow::Result<Bench> {
        let base = fake_server().await?;
        let dir = tempfile::tempdir()?;
        let component = yoi_core::guest_component_path().map_err(anyhow::Error::msg)?;
        let mut settings = RuntimeSettings::default();
        settings.log.broadcast_capacity = (1 << 20).try_into()?;
        let runtime = RuntimeConfig::embedded("local", settings);
        let provider = toml::from_str(&format!(
            "kind = \"openai\"\nbase_url = \"{base}\"\nmodels = [\"m\"]\ncontext_tokens = 8192\n"
        ))?;
        let config = Config {
            bind: "127.0.0.1:0".parse()?,
            data_dir: Some(dir.path().to_path_buf()),
            component: Some(component),
            runtimes: vec![runtime],
            providers: [("fake".to_string(), provider)].into_iter().collect(),
            ..Config::default()
        };
        let host = Host::start(config).await?;
        tokio::time::timeout(PATIENCE, host.ready()).await??;
        let http = Client {
            addr: host.local_addr(),
            token: host.token().to_string(),
        };
        Ok(Bench {
            host,
            http,
            _dir: dir,
        })
    }

    async fn worker(&self, name: &str) -> anyhow::Result<String> {
        let body = self
            .http
            .post(
                "/runtimes/local/workers",
                &format!(r#"{{"name":"{name}","model":"fake/m"}}"#),
            )
            .await?;
        let v: serde_json::Value = serde_json::from_str(&body)?;
        Ok(v["worker"]["id"].as_str().context("worker id")?.to_string())
    }

    async fn ws(&self, path: &str) -> anyhow::Result<Ws> {
        let mut request =
            format!("ws://{}/api/v1{path}", self.host.local_addr()).into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.host.token()).parse()?,
        );
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        // The snapshot comes first.
        ws.next().await.context("stream ended")??;
        Ok(ws)
    }

    async fn input(&self, id: &str) -> anyhow::Result<()> {
        self.http
            .post(
                &format!("/runtimes/local/workers/{id}/input"),
                r#"{"text":"hello"}"#,
            )
            .await?;
        Ok(())
    }

    /// One turn of worker `id`, watched on its own stream.
    async fn turn(&self, id: &str) -> anyhow::Result<()> {
        let mut ws = self
            .ws(&format!("/runtimes/local/workers/{id}/events/ws"))
            .await?;
        self.input(id).await?;
        tokio::time::timeout(PATIENCE, until_completed(&mut ws, 1))
            .await
            .context("the turn did not end")??;
        Ok(())
    }

    /// Median milliseconds of `TURNS` turns of one worker.
    async fn turn_ms(&self) -> anyhow::Result<f64> {
        let id = self.worker("turns").await?;
        let mut ws = self
            .ws(&format!("/runtimes/local/workers/{id}/events/ws"))
            .await?;
        let mut turns = Samples::default();
        for _ in 0..TURNS {
            let started = Instant::now();
            self.input(&id).await?;
            tokio::time::timeout(PATIENCE, until_completed(&mut ws, 1))
                .await
                .context("the turn did not end")??;
            turns.push(started.elapsed().as_secs_f64() * 1e3);
        }
        Ok(turns.median())
    }

    /// Event frames per second seen by one observer of every worker while
    /// `CONCURRENT` workers each have one turn at once.
    async fn concurrent(&self) -> anyhow::Result<f64> {
        let mut ids = Vec::with_capacity(CONCURRENT);
        for i in 0..CONCURRENT {
            ids.push(self.worker(&format!("c{i}")).await?);
        }
        let mut ws = self.ws("/events/ws").await?;
        let started = Instant::now();
        futures_util::future::try_join_all(ids.iter().map(|id| self.input(id))).await?;
        let frames = tokio::time::timeout(PATIENCE, until_completed(&mut ws, CONCURRENT))
            .await
            .context("the turns did not end")??;
        Ok(frames as f64 / started.elapsed().as_secs_f64())
    }
}

/// Reads event frames until `runs` `run_completed` events; returns the frames read.
async fn until_completed(ws: &mut Ws, runs: usize) -> anyhow::Result<u64> {
    let (mut frames, mut completed) = (0, 0);
    while completed < runs {
        let message = ws.next().await.context("stream ended")??;
        let Ok(text) = message.to_text() else {
            continue;
        };
        if !text.starts_with(r#"{"type":"event""#) {
            anyhow::ensure!(!text.contains(r#""type":"error""#), "stream error: {text}");
            continue;
        }
        frames += 1;
        if text.contains(r#""type":"run_failed""#) {
            anyhow::bail!("a run failed: {text}");
        }
        if text.contains(r#""type":"run_completed""#) {
            completed += 1;
        }
    }
    Ok(frames)
}

/// Resident memory of this process, KiB.
fn rss_kib() -> anyhow::Result<u64> {
    let status = std::fs::read_to_string("/proc/self/status")?;
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .context("no VmRSS")?;
    line.split_whitespace()
        .nth(1)
        .context("VmRSS value")?
        .parse()
        .context("VmRSS number")
}
