//! `host.*`: end to end through `yoi-host`: scripted runs in the embedded runtime (the
//! component), out through the multiplexed WebSocket stream to observers over loopback.
//!
//! - **Throughput** (`host.events_per_s`): `OBSERVERS` clients watch `/api/v1/events/ws`
//!   while `WORKERS` workers each stream `DELTAS` text deltas as fast as the runtime
//!   produces them; events/s = frames delivered to all observers / wall time (first input
//!   to the last observer's last frame).
//! - **Baseline** (`host.baseline.events_per_s`): the very frames the first observer
//!   received, pushed through a bare tokio-tungstenite server (a broadcast channel, one
//!   task per connection writing frames with the same feed-then-flush batching) to the
//!   same number of clients; `host.ws_over_baseline` is the ratio. Live delivery is
//!   bounded by how fast the runtime produces events (actor, component, SQLite), so the
//!   host's own streaming capacity is measured too: fresh observers replay the same
//!   history from the first observer's snapshot cursor as fast as the host pushes it
//!   (`host.replay.events_per_s`, `host.replay_over_baseline`).
//! - **CPU per frame** (`host.cpu_us_per_frame`, `host.baseline.cpu_us_per_frame`,
//!   `host.replay.cpu_us_per_frame`): the process's CPU time (every thread: host, runtime,
//!   clients) over each window divided by the frames delivered, and
//!   `host.cpu_per_frame_over_baseline`. On a shared VM wall-clock rates swing by ±10 %
//!   from run to run; CPU per frame moves much less, so it is the figure to compare
//!   changes with.
//! - **Latency** (`host.p50_ms`, `host.p99_ms`): a paced run at about `PACED_RATE`
//!   events/s nominal (`PACED_WORKERS` workers, one delta every `PACED_DELAY_MS` each;
//!   timer granularity makes the reached rate about 10,000 events/s), measured
//!   from the moment the event is published by the event log (an in-process subscriber
//!   stamps it) to its receipt by each observer; `host.paced.events_per_s` is the rate
//!   reached.
//!
//! - **Policy cost** (`host.policy.over_passthrough`): the live run again with the three
//!   example policy plugins loaded (`redact-reasoning` and `read-only` for observers and
//!   operators, `truncate-tool-output` for both) and the scripted model's reasoning on,
//!   watched by `OBSERVERS` clients of different roles (owner, operator, two
//!   observers), over the same run with no policies (pass-through), the two back to
//!   back in each round. Rates count the events each observer processed (shown or
//!   denied), events × observers ÷ wall time, so denying frames does not flatter the
//!   policy run. `host.policy.events_per_s` and `host.passthrough.events_per_s` are the
//!   two rates.
//!
//! Clients, host and runtime share the machine (and the tokio runtime), as they would on
//! a developer laptop; the baseline pays the same client costs.

use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::{SinkExt, StreamExt};
use tokio::sync::{broadcast, watch};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::{Message, Utf8Bytes};
use yoi_host::clients::{ClientConfig, TokenSource};
use yoi_host::config::{Config, RuntimeConfig, RuntimeSettings};
use yoi_host::{Host, RuntimeHandle};
use yoi_policy::Role;
use yoi_policy_host::PolicyEntry;
use yoi_protocol::{Event, WorkerStatus};
use yoi_serving::EventSource;

use crate::results::{Results, Samples};

const WORKERS: usize = 20;
const DELTAS: usize = 2_000;
const OBSERVERS: usize = 4;
const PACED_WORKERS: usize = 62;
const PACED_DELAY_MS: u64 = 5;
const PACED_DELTAS: usize = 400;
const PACED_RATE: usize = PACED_WORKERS * 1000 / PACED_DELAY_MS as usize;
/// Hang guard, never a performance bound.
const PATIENCE: Duration = Duration::from_secs(300);

pub async fn run(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds().div_ceil(2).max(1);
    println!(
        "host: {WORKERS} workers x {DELTAS} deltas to {OBSERVERS} observers of the \
         multiplexed stream; {rounds} rounds, host and baseline alternating"
    );
    let mut figures: [Samples; 9] = Default::default();
    for _ in 0..rounds {
        let t = throughput().await?;
        let base = baseline(t.frames).await?;
        let (host_rate, replay_rate, base_rate) = (t.live.rate(), t.replay.rate(), base.rate());
        let (host_cpu, base_cpu) = (t.live.cpu_us_per_frame(), base.cpu_us_per_frame());
        figures[0].push(host_rate);
        figures[1].push(replay_rate);
        figures[2].push(base_rate);
        // Paired per round: the baseline ran right after the host, on the same frames.
        figures[3].push(host_rate / base_rate);
        figures[4].push(replay_rate / base_rate);
        figures[5].push(host_cpu);
        figures[6].push(t.replay.cpu_us_per_frame());
        figures[7].push(base_cpu);
        figures[8].push(host_cpu / base_cpu);
    }
    let names = [
        "host.events_per_s",
        "host.replay.events_per_s",
        "host.baseline.events_per_s",
        "host.ws_over_baseline",
        "host.replay_over_baseline",
        "host.cpu_us_per_frame",
        "host.replay.cpu_us_per_frame",
        "host.baseline.cpu_us_per_frame",
        "host.cpu_per_frame_over_baseline",
    ];
    results.record_medians(names, &figures);

    // A VM's scheduler stalls a vCPU for several milliseconds now and then; one such
    // stall in a round moves its p99, so the figure is the median round's.
    println!(
        "host: latency at ~{PACED_RATE} events/s nominal ({PACED_WORKERS} workers, a delta \
         every {PACED_DELAY_MS} ms each); {rounds} rounds"
    );
    let mut latency: [Samples; 3] = Default::default();
    for _ in 0..rounds {
        let paced = paced().await?;
        latency[0].push(paced.rate);
        latency[1].push(paced.p50_ms);
        latency[2].push(paced.p99_ms);
    }
    let names = ["host.paced.events_per_s", "host.p50_ms", "host.p99_ms"];
    results.record_medians(names, &latency);
    Ok(())
}

/// The `host.policy` section: `host.policy.over_passthrough` (see the module docs);
/// skipped, saying so, when the plugins are not built.
pub async fn policy(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds().div_ceil(2).max(1);
    let Some(plugins) = plugins_dir() else {
        println!(
            "host.policy: skipped: the example plugins are not built (run `cargo xtask \
             build-plugins`, or `cargo xtask bench`, which does)"
        );
        return Ok(());
    };
    println!(
        "host.policy: {WORKERS} workers x {DELTAS} deltas to {OBSERVERS} observers of \
         different roles, three policy plugins vs pass-through; {rounds} rounds"
    );
    let mut figures: [Samples; 3] = Default::default();
    for _ in 0..rounds {
        let passthrough = role_observers(None).await?;
        let policy = role_observers(Some(&plugins)).await?;
        figures[0].push(policy);
        figures[1].push(passthrough);
        figures[2].push(policy / passthrough);
    }
    let names = [
        "host.policy.events_per_s",
        "host.passthrough.events_per_s",
        "host.policy.over_passthrough",
    ];
    results.record_medians(names, &figures);
    Ok(())
}

/// The folder of the built example plugins (`YOI_PLUGINS_DIR`, else `target/plugins`).
fn plugins_dir() -> Option<std::path::PathBuf> {
    let dir = std::env::var_os("YOI_PLUGINS_DIR")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::path::PathBuf::from("target/plugins"));
    dir.is_dir().then_some(dir)
}

/// The observers' roles and tokens (the owner's is the host's).
const ROLE_CLIENTS: [(&str, Role, &str); 2] = [
    (
        "bench-operator",
        Role::Operator,
        "bench-operator-token-0123456789",
    ),
    (
        "bench-observer",
        Role::Observer,
        "bench-observer-token-0123456789",
    ),
];

/// One live run watched by an owner, an operator and two observers, with the example
/// plugins from `plugins` (or none): events processed per second, all observers.
async fn role_observers(plugins: Option<&std::path::Path>) -> anyhow::Result<f64> {
    let dir = tempfile::tempdir()?;
    let mut config = config(dir.path(), 0)?;
    if let Some(settings) = config.runtimes[0].settings_mut() {
        settings.scripted.reasoning = true;
    }
    for (name, role, token) in ROLE_CLIENTS {
        let file = dir.path().join(format!("{name}.token"));
        std::fs::write(&file, token)?;
        config.clients.push(ClientConfig {
            name: name.into(),
            role,
            token: TokenSource::File(file),
        });
    }
    if let Some(plugins) = plugins {
        let installed = dir.path().join("plugins");
        std::fs::create_dir_all(&installed)?;
        for entry in std::fs::read_dir(plugins)? {
            let path = entry?.path();
            if let Some(name) = path.file_name() {
                std::fs::copy(&path, installed.join(name))?;
            }
        }
        let roles = serde_json::json!(["operator", "observer"]);
        config.policies = vec![
            PolicyEntry::new("redact-reasoning", serde_json::json!({ "roles": roles })),
            PolicyEntry::new("read-only", serde_json::json!({ "roles": roles })),
            PolicyEntry::new(
                "truncate-tool-output",
                serde_json::json!({ "roles": roles, "max_bytes": 1024 }),
            ),
        ];
    }
    let bench = start_with(config, dir).await?;
    let ids = bench.workers(WORKERS).await?;
    let owner = bench.host.token().to_string();
    let tokens = [
        owner.as_str(),
        ROLE_CLIENTS[0].2,
        ROLE_CLIENTS[1].2,
        ROLE_CLIENTS[1].2,
    ];
    let mut observers = Vec::new();
    for token in tokens {
        observers.push(bench.observer_as(token, None).await?.0);
    }
    let (last, tap) = bench.tap(WORKERS, None);
    let started = Instant::now();
    let tasks: Vec<_> = observers
        .into_iter()
        .map(|ws| tokio::spawn(observe(ws, last.clone(), false)))
        .collect();
    bench.input_all(&ids, &format!("stream {DELTAS}")).await?;
    // The owner's stream sees every event: the most frames are the run's events.
    let mut events = 0;
    let mut end = started;
    for task in tasks {
        let got = tokio::time::timeout(PATIENCE, task).await???;
        events = events.max(got.stamps.len());
        end = end.max(got.stamps.last().map_or(started, |s| s.1));
    }
    tap.await??;
    bench.stop().await?;
    Ok((events * OBSERVERS) as f64 / end.duration_since(started).as_secs_f64())
}

fn config(dir: &std::path::Path, token_delay_ms: u64) -> anyhow::Result<Config> {
    let component = yoi_core::guest_component_path().map_err(anyhow::Error::msg)?;
    let mut settings = RuntimeSettings::default();
    settings.scripted.token_delay_ms = token_delay_ms;
    settings.scripted.reasoning = false;
    // The in-process stamping subscriber and the observers (streams have no queue of
    // their own: they read the live buffer) must never lag.
    settings.log.broadcast_capacity = (1 << 20).try_into()?;
    let runtime = RuntimeConfig::embedded("local", settings);
    Ok(Config {
        bind: "127.0.0.1:0".parse()?,
        data_dir: Some(dir.to_path_buf()),
        component: Some(component),
        runtimes: vec![runtime],
        ..Config::default()
    })
}

struct Bench {
    host: Host,
    runtime: Arc<RuntimeHandle>,
    http: Client,
    _dir: tempfile::TempDir,
}

/// A tiny HTTP/1.1 client for the few REST calls (keeps the bench's dependencies small).
pub(crate) struct Client {
    pub addr: SocketAddr,
    pub token: String,
}

impl Client {
    pub(crate) async fn post(&self, path: &str, body: &str) -> anyhow::Result<String> {
        use tokio::io::{AsyncReadExt, AsyncWriteExt};
        let mut stream = tokio::net::TcpStream::connect(self.addr).await?;
        let request = format!(
            "POST /api/v1{path} HTTP/1.1\r\nHost: {}\r\nAuthorization: Bearer {}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{body}",
            self.addr,
            self.token,
            body.len()
        );
        stream.write_all(request.as_bytes()).await?;
        let mut response = String::new();
        stream.read_to_string(&mut response).await?;
        let (head, body) = response.split_once("\r\n\r\n").unwrap_or((&response, ""));
        anyhow::ensure!(head.starts_with("HTTP/1.1 2"), "POST {path}: {head} {body}");
        Ok(body.to_string())
    }
}

async fn start(token_delay_ms: u64) -> anyhow::Result<Bench> {
    let dir = tempfile::tempdir()?;
    let config = config(dir.path(), token_delay_ms)?;
    start_with(config, dir).await
}

async fn start_with(config: Config, dir: tempfile::TempDir) -> anyhow::Result<Bench> {
    let host = Host::start(config).await?;
    let registry = tokio::time::timeout(PATIENCE, host.ready()).await??;
    let runtime = registry.get("local").map_err(|e| anyhow::anyhow!("{e}"))?;
    let http = Client {
        addr: host.local_addr(),
        token: host.token().to_string(),
    };
    Ok(Bench {
        host,
        runtime,
        http,
        _dir: dir,
    })
}

impl Bench {
    async fn workers(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let body = self
                .http
                .post(
                    "/runtimes/local/workers",
                    &format!(r#"{{"name":"bench{i}","model":"scripted"}}"#),
                )
                .await?;
            let v: serde_json::Value = serde_json::from_str(&body)?;
            ids.push(v["worker"]["id"].as_str().context("worker id")?.to_string());
        }
        Ok(ids)
    }

    /// Sends `text` to every worker at once, as that many independent clients would.
    /// (One after the other, each request waited its turn on the busy host: 20 of them
    /// took ~140 ms, nearly all of a 150 ms window, which then measured the stagger.)
    async fn input_all(&self, ids: &[String], text: &str) -> anyhow::Result<()> {
        let body = format!(r#"{{"text":"{text}"}}"#);
        let requests = ids.iter().map(|id| {
            let path = format!("/runtimes/local/workers/{id}/input");
            let body = &body;
            async move { self.http.post(&path, body).await }
        });
        futures_util::future::try_join_all(requests).await?;
        Ok(())
    }

    /// Connects an observer to the multiplexed stream and reads its snapshot.
    async fn observer(&self) -> anyhow::Result<Ws> {
        Ok(self.observer_from(None).await?.0)
    }

    /// Connects an observer (from `cursor`, if given); without a cursor it reads the
    /// snapshot and returns its cursor.
    async fn observer_from(&self, cursor: Option<&str>) -> anyhow::Result<(Ws, String)> {
        self.observer_as(self.host.token(), cursor).await
    }

    /// [`Bench::observer_from`] with the token of another client.
    async fn observer_as(&self, token: &str, cursor: Option<&str>) -> anyhow::Result<(Ws, String)> {
        let query = cursor.map(|c| format!("?cursor={c}")).unwrap_or_default();
        let mut request = format!("ws://{}/api/v1/events/ws{query}", self.host.local_addr())
            .into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {token}").parse()?);
        let (mut ws, _) = tokio_tungstenite::connect_async(request).await?;
        if let Some(cursor) = cursor {
            return Ok((ws, cursor.to_string()));
        }
        let first = ws.next().await.context("stream ended")??;
        let snapshot: serde_json::Value = serde_json::from_str(first.to_text()?)?;
        anyhow::ensure!(
            snapshot["type"] == "snapshot_all",
            "expected the snapshot first"
        );
        let cursor = snapshot["cursor"].as_str().context("snapshot cursor")?;
        Ok((ws, cursor.to_string()))
    }

    /// Sets `last` to the seq of the final event once `runs` runs have returned to idle;
    /// with `stamps`, also stamps every published event (for latency: the throughput
    /// runs leave it out, it is work the baseline does not do).
    fn tap(
        &self,
        runs: usize,
        stamps: Option<Stamps>,
    ) -> (
        watch::Receiver<u64>,
        tokio::task::JoinHandle<anyhow::Result<()>>,
    ) {
        let (last_tx, last) = watch::channel(u64::MAX);
        let mut live = self.runtime.subscribe();
        let task = tokio::spawn(async move {
            let mut idle = 0;
            loop {
                let env = match live.recv().await {
                    Ok(env) => env,
                    Err(e) => anyhow::bail!("bench tap: {e}"),
                };
                if let Some(stamps) = &stamps {
                    stamps.lock().unwrap().push((env.seq, Instant::now()));
                }
                if matches!(&env.event, Event::StatusChanged { to, .. } if *to == WorkerStatus::Idle)
                {
                    idle += 1;
                    if idle == runs {
                        last_tx.send_replace(env.seq);
                        return Ok(());
                    }
                }
            }
        });
        (last, task)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.host.shutdown().await
    }
}

/// One measured window: frames delivered to all observers, wall time and the process's
/// CPU time.
struct Window {
    frames: u64,
    seconds: f64,
    cpu: Duration,
}

impl Window {
    fn rate(&self) -> f64 {
        self.frames as f64 / self.seconds
    }

    fn cpu_us_per_frame(&self) -> f64 {
        self.cpu.as_secs_f64() * 1e6 / self.frames as f64
    }
}

/// CPU time of the whole process so far (all threads).
fn process_cpu() -> Duration {
    let t = rustix::time::clock_gettime(rustix::time::ClockId::ProcessCPUTime);
    Duration::new(t.tv_sec as u64, t.tv_nsec as u32)
}

/// When each event was published: `(seq, instant)`.
type Stamps = Arc<Mutex<Vec<(u64, Instant)>>>;

pub(crate) type Ws =
    tokio_tungstenite::WebSocketStream<tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>>;

/// The `"seq":N` of an event frame, without parsing the whole frame.
fn seq_of(text: &str) -> Option<u64> {
    let at = text.find(r#""seq":"#)? + 6;
    let digits = text[at..].split(|c: char| !c.is_ascii_digit()).next()?;
    digits.parse().ok()
}

struct Received {
    /// `(seq, receipt)` per event frame.
    stamps: Vec<(u64, Instant)>,
    /// The frames themselves (shared buffers, not copies), when kept.
    frames: Vec<Utf8Bytes>,
}

/// Reads event frames until the one with seq `last` (once known).
async fn observe(
    mut ws: Ws,
    mut last: watch::Receiver<u64>,
    keep: bool,
) -> anyhow::Result<Received> {
    let mut got = Received {
        stamps: Vec::new(),
        frames: Vec::new(),
    };
    let mut max_seq = 0;
    let mut watching = true;
    loop {
        let message = tokio::select! {
            m = ws.next() => m.context("stream ended")??,
            changed = last.changed(), if watching => {
                watching = changed.is_ok();
                if max_seq >= *last.borrow() {
                    break;
                }
                continue;
            }
        };
        let Message::Text(text) = message else {
            continue;
        };
        let now = Instant::now();
        let Some(seq) = seq_of(&text) else {
            anyhow::bail!("unexpected frame {}", text.as_str());
        };
        got.stamps.push((seq, now));
        if keep {
            got.frames.push(text.clone());
        }
        max_seq = max_seq.max(seq);
        if max_seq >= *last.borrow() {
            break;
        }
    }
    let _ = ws.close(None).await;
    Ok(got)
}

struct Throughput {
    /// Live: the frames delivered to all observers.
    live: Window,
    /// The same history replayed from the start cursor to fresh observers.
    replay: Window,
    /// What the first observer received, for the baseline.
    frames: Vec<Utf8Bytes>,
}

async fn throughput() -> anyhow::Result<Throughput> {
    let bench = start(0).await?;
    let ids = bench.workers(WORKERS).await?;
    let mut observers = Vec::new();
    let mut start_cursor = String::new();
    for _ in 0..OBSERVERS {
        let (ws, cursor) = bench.observer_from(None).await?;
        observers.push(ws);
        start_cursor = cursor;
    }
    let (last, tap) = bench.tap(WORKERS, None);
    let started = Instant::now();
    let cpu = process_cpu();
    let tasks: Vec<_> = observers
        .into_iter()
        .enumerate()
        .map(|(i, ws)| tokio::spawn(observe(ws, last.clone(), i == 0)))
        .collect();
    bench.input_all(&ids, &format!("stream {DELTAS}")).await?;
    let (live, frames) = collect(tasks, started, cpu).await?;
    tap.await??;

    // The history again, as fast as the host can push it: replay from the window.
    let started = Instant::now();
    let cpu = process_cpu();
    let mut tasks = Vec::new();
    for _ in 0..OBSERVERS {
        let (ws, _) = bench.observer_from(Some(&start_cursor)).await?;
        tasks.push(tokio::spawn(observe(ws, last.clone(), false)));
    }
    let (replay, _) = collect(tasks, started, cpu).await?;
    bench.stop().await?;
    Ok(Throughput {
        live,
        replay,
        frames,
    })
}

/// Frames delivered by all observers, the time from `started` to the last receipt and the
/// CPU time since `cpu`; plus the frames an observer kept.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Received>>>,
    started: Instant,
    cpu: Duration,
) -> anyhow::Result<(Window, Vec<Utf8Bytes>)> {
    let mut delivered = 0;
    let mut end = started;
    let mut frames = Vec::new();
    for task in tasks {
        let got = tokio::time::timeout(PATIENCE, task).await???;
        delivered += got.stamps.len() as u64;
        end = end.max(got.stamps.last().map_or(started, |s| s.1));
        if !got.frames.is_empty() {
            frames = got.frames;
        }
    }
    Ok((
        Window {
            frames: delivered,
            seconds: end.duration_since(started).as_secs_f64(),
            cpu: process_cpu() - cpu,
        },
        frames,
    ))
}

/// The same frames through a bare tokio-tungstenite broadcast server.
async fn baseline(frames: Vec<Utf8Bytes>) -> anyhow::Result<Window> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let (tx, _) = broadcast::channel::<Utf8Bytes>(frames.len() + 1);
    let (ready_tx, mut ready) = tokio::sync::mpsc::channel::<()>(OBSERVERS);
    let server = {
        let tx = tx.clone();
        tokio::spawn(async move {
            for _ in 0..OBSERVERS {
                let (stream, _) = listener.accept().await?;
                // As the host does: small frames must not wait for delayed ACKs.
                stream.set_nodelay(true)?;
                let mut rx = tx.subscribe();
                let ready = ready_tx.clone();
                tokio::spawn(async move {
                    let Ok(mut ws) = tokio_tungstenite::accept_async(stream).await else {
                        return;
                    };
                    let _ = ready.send(()).await;
                    while let Ok(first) = rx.recv().await {
                        if ws.feed(Message::Text(first)).await.is_err() {
                            return;
                        }
                        while let Ok(more) = rx.try_recv() {
                            if ws.feed(Message::Text(more)).await.is_err() {
                                return;
                            }
                        }
                        if ws.flush().await.is_err() {
                            return;
                        }
                    }
                });
            }
            anyhow::Ok(())
        })
    };
    let last = frames.last().and_then(|f| seq_of(f)).context("no frames")?;
    let (_last_tx, last_rx) = watch::channel(last);
    let mut clients = Vec::new();
    for _ in 0..OBSERVERS {
        let (ws, _) = tokio_tungstenite::connect_async(format!("ws://{addr}")).await?;
        clients.push(ws);
    }
    for _ in 0..OBSERVERS {
        ready.recv().await.context("baseline server")?;
    }
    let tasks: Vec<_> = clients
        .into_iter()
        .map(|ws| tokio::spawn(observe(ws, last_rx.clone(), false)))
        .collect();
    let started = Instant::now();
    let cpu = process_cpu();
    for frame in frames {
        tx.send(frame)
            .map_err(|_| anyhow::anyhow!("no subscribers"))?;
    }
    let mut delivered = 0;
    let mut end = started;
    for task in tasks {
        let got = tokio::time::timeout(PATIENCE, task).await???;
        delivered += got.stamps.len() as u64;
        end = end.max(got.stamps.last().map_or(started, |s| s.1));
    }
    let cpu = process_cpu() - cpu;
    server.await??;
    Ok(Window {
        frames: delivered,
        seconds: end.duration_since(started).as_secs_f64(),
        cpu,
    })
}

struct Paced {
    rate: f64,
    p50_ms: f64,
    p99_ms: f64,
}

async fn paced() -> anyhow::Result<Paced> {
    let bench = start(PACED_DELAY_MS).await?;
    let ids = bench.workers(PACED_WORKERS).await?;
    let mut observers = Vec::new();
    for _ in 0..OBSERVERS {
        observers.push(bench.observer().await?);
    }
    let published = Arc::new(Mutex::new(Vec::new()));
    let (last, tap) = bench.tap(PACED_WORKERS, Some(published.clone()));
    let tasks: Vec<_> = observers
        .into_iter()
        .map(|ws| tokio::spawn(observe(ws, last.clone(), false)))
        .collect();
    bench
        .input_all(&ids, &format!("stream {PACED_DELTAS}"))
        .await?;
    let mut received = Vec::new();
    for task in tasks {
        received.push(tokio::time::timeout(PATIENCE, task).await???);
    }
    tap.await??;
    bench.stop().await?;

    let published = std::mem::take(&mut *published.lock().unwrap());
    let first_seq = published.first().context("nothing published")?.0;
    let at = |seq: u64| published.get((seq - first_seq) as usize).map(|p| p.1);
    let mut latencies: Vec<f64> = received
        .iter()
        .flat_map(|r| &r.stamps)
        .filter(|(seq, _)| *seq >= first_seq)
        .filter_map(|(seq, got)| {
            at(*seq).map(|sent| got.saturating_duration_since(sent).as_secs_f64() * 1e3)
        })
        .collect();
    anyhow::ensure!(!latencies.is_empty(), "no latency samples");
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| latencies[((latencies.len() - 1) as f64 * p).round() as usize];
    let span = published
        .last()
        .unwrap()
        .1
        .duration_since(published[0].1)
        .as_secs_f64();
    Ok(Paced {
        rate: published.len() as f64 / span.max(1e-9),
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
    })
}
