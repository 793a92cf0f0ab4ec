//! `remote.*`: the host fronting a `yoi-runtime serve` over loopback against the same
//! host with the runtime embedded, same workload, same run, rounds alternating.
//!
//! Both arms run the runtime component (wasmtime) with the same settings, so the only
//! difference is where the runtime runs: in the host's process, or behind the runtime
//! API (commands over REST, events over one upstream WebSocket stream per runtime). The
//! runtime server runs in this process (as the tests do) but is reached only through
//! its socket, exactly as a separate process would be.
//!
//! - **Throughput** (`remote.events_per_s`, `remote.embedded.events_per_s`,
//!   `remote.over_embedded`): `OBSERVERS` clients watch the host's multiplexed stream
//!   while `WORKERS` workers each stream `DELTAS` text deltas as fast as the runtime
//!   produces them; events/s = event frames delivered to all observers / wall time
//!   (first input to the last observer's last frame). The ratio is paired per round.
//!   An observer that falls behind the host's live buffer gets `lagged` and resumes
//!   from its cursor, as any client does; the count is printed.
//! - **Command latency** (`remote.p50_ms`, `remote.p99_ms`, `remote.embedded.p99_ms`):
//!   while `PACED_WORKERS` workers stream a delta every `PACED_DELAY_MS` each (about
//!   10,000 events/s; `remote.paced.events_per_s` is the rate the observers saw) and
//!   `OBSERVERS` clients watch, one client sends `PROBES` inputs one after the other to
//!   idle workers, each through the host's REST API on a kept-alive connection (the
//!   `yoi-client` crate): the time from sending the request to its `202` answer, which
//!   the host gives once the runtime accepted the run.
//! - **HTTP floor** (`remote.floor.p50_ms`, `remote.floor.p99_ms`, `remote.p99_over_floor`):
//!   before each probe the same kind of client (reqwest, kept alive, `TCP_NODELAY`)
//!   posts the same body to a bare axum route that answers `202` at once, served by the
//!   same process under the same load after the same pause: what one HTTP round trip
//!   costs on this machine. A command to a remote runtime makes two (client → host →
//!   runtime) plus the runtime's commit. On a VM that shares its cores, code that ran
//!   5 ms ago runs several times slower than code that just ran (its caches are gone),
//!   so this floor is far above a hot loop's figure; the ratio is paired per round.
//!
//! Clients, host and runtime share the machine and the tokio runtime.

use std::num::NonZeroU64;
use std::time::{Duration, Instant};

use anyhow::Context;
use futures_util::StreamExt;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use yoi_client::HostClient;
use yoi_host::Host;
use yoi_host::config::{
    Config, RemoteConfig, RuntimeConfig, RuntimeId, RuntimeSettings, SourceConfig, TokenSource,
};
use yoi_protocol::{Input, WorkerSpec};
use yoi_runtime_server::RuntimeServer;

use crate::host::Ws;
use crate::results::{Results, Samples};

const WORKERS: usize = 20;
const DELTAS: usize = 2_000;
const OBSERVERS: usize = 4;
const PACED_WORKERS: usize = 62;
const PACED_DELAY_MS: u64 = 5;
const PACED_DELTAS: usize = 1_000;
const PACED_RATE: usize = PACED_WORKERS * 1000 / PACED_DELAY_MS as usize;
/// Commands timed per paced run (each to an idle worker of its own).
const PROBES: usize = 200;
/// Pause before each probe and each floor request, so they sample the load rather than
/// make it.
const PROBE_GAP: Duration = Duration::from_millis(5);
/// The runtime's id on the host, in both arms (the same URLs and cursors).
const RUNTIME: &str = "local";
/// Hang guard, never a performance bound.
const PATIENCE: Duration = Duration::from_secs(300);

pub async fn run(results: &mut Results) -> anyhow::Result<()> {
    let rounds = crate::results::rounds().div_ceil(2).max(1);
    println!(
        "remote: {WORKERS} workers x {DELTAS} deltas to {OBSERVERS} observers of the \
         multiplexed stream, runtime remote (loopback) vs embedded; {rounds} rounds, \
         alternating"
    );
    let mut figures: [Samples; 3] = Default::default();
    for _ in 0..rounds {
        let embedded = throughput(Arm::Embedded).await?;
        let remote = throughput(Arm::Remote).await?;
        println!(
            "  round: embedded {:.0}/s, remote {:.0}/s (observers resumed after lagged: \
             embedded {}, remote {})",
            embedded.rate, remote.rate, embedded.lagged, remote.lagged
        );
        figures[0].push(remote.rate);
        figures[1].push(embedded.rate);
        figures[2].push(remote.rate / embedded.rate);
    }
    let names = [
        "remote.events_per_s",
        "remote.embedded.events_per_s",
        "remote.over_embedded",
    ];
    results.record_medians(names, &figures);

    println!(
        "remote: command latency (input to an idle worker, {PROBES} per round) under \
         ~{PACED_RATE} events/s nominal ({PACED_WORKERS} workers, a delta every \
         {PACED_DELAY_MS} ms each) watched by {OBSERVERS} observers; {rounds} rounds"
    );
    let mut latency: [Samples; 8] = Default::default();
    for _ in 0..rounds {
        let embedded = paced(Arm::Embedded).await?;
        let remote = paced(Arm::Remote).await?;
        println!(
            "  round: p50/p99 ms remote {:.2}/{:.2}, embedded {:.2}/{:.2}, HTTP floor \
             {:.2}/{:.2}",
            remote.command.p50,
            remote.command.p99,
            embedded.command.p50,
            embedded.command.p99,
            remote.floor.p50,
            remote.floor.p99
        );
        latency[0].push(remote.rate);
        latency[1].push(remote.command.p50);
        latency[2].push(remote.command.p99);
        latency[3].push(embedded.command.p50);
        latency[4].push(embedded.command.p99);
        latency[5].push(remote.floor.p50);
        latency[6].push(remote.floor.p99);
        latency[7].push(remote.command.p99 / remote.floor.p99);
    }
    let names = [
        "remote.paced.events_per_s",
        "remote.p50_ms",
        "remote.p99_ms",
        "remote.embedded.p50_ms",
        "remote.embedded.p99_ms",
        "remote.floor.p50_ms",
        "remote.floor.p99_ms",
        "remote.p99_over_floor",
    ];
    results.record_medians(names, &latency);
    Ok(())
}

/// Where the measured runtime runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Arm {
    Embedded,
    Remote,
}

/// A host serving one runtime `local`, embedded or behind a runtime server.
struct Setup {
    host: Host,
    client: HostClient,
    server: Option<RuntimeServer>,
    _dirs: Vec<tempfile::TempDir>,
}

/// The runtime's settings, the same in both arms.
fn settings(token_delay_ms: u64) -> anyhow::Result<RuntimeSettings> {
    let mut settings = RuntimeSettings::default();
    settings.scripted.token_delay_ms = token_delay_ms;
    settings.scripted.reasoning = false;
    // As in the host section: the runtime's own live buffer never makes anyone lag.
    settings.log.broadcast_capacity = (1 << 20).try_into()?;
    Ok(settings)
}

impl Setup {
    async fn start(arm: Arm, token_delay_ms: u64) -> anyhow::Result<Setup> {
        let component = yoi_core::guest_component_path().map_err(anyhow::Error::msg)?;
        let host_dir = tempfile::tempdir()?;
        let mut dirs = Vec::new();
        let (runtime, server) = match arm {
            Arm::Embedded => (
                RuntimeConfig::embedded(RUNTIME, settings(token_delay_ms)?),
                None,
            ),
            Arm::Remote => {
                let dir = tempfile::tempdir()?;
                let config = yoi_runtime_server::Config {
                    bind: "127.0.0.1:0".parse()?,
                    data_dir: Some(dir.path().to_path_buf()),
                    component: Some(component.clone()),
                    runtime: settings(token_delay_ms)?,
                    ..yoi_runtime_server::Config::default()
                };
                let server = RuntimeServer::start(config).await?;
                tokio::time::timeout(PATIENCE, server.ready()).await??;
                let entry = RuntimeConfig {
                    id: RuntimeId::parse(RUNTIME).map_err(anyhow::Error::msg)?,
                    source: SourceConfig::Remote(RemoteConfig {
                        url: format!("http://{}", server.local_addr()),
                        token: TokenSource::File(server.token_file().to_path_buf()),
                        connect_timeout_ms: NonZeroU64::new(2_000).context("non-zero")?,
                        request_timeout_ms: NonZeroU64::new(30_000).context("non-zero")?,
                        stream_idle_timeout_ms: NonZeroU64::new(60_000).context("non-zero")?,
                        window_bytes: NonZeroU64::new(128 << 20).context("non-zero")?,
                    }),
                };
                dirs.push(dir);
                (entry, Some(server))
            }
        };
        let config = Config {
            bind: "127.0.0.1:0".parse()?,
            data_dir: Some(host_dir.path().to_path_buf()),
            component: Some(component),
            runtimes: vec![runtime],
            ..Config::default()
        };
        dirs.push(host_dir);
        let host = Host::start(config).await?;
        tokio::time::timeout(PATIENCE, host.ready()).await??;
        let client = HostClient::new(&format!("http://{}", host.local_addr()), host.token())?;
        // A remote runtime serves streams once the host's upstream stream is up.
        tokio::time::timeout(PATIENCE, async {
            loop {
                let runtimes = client.runtimes().await?;
                if runtimes.iter().all(|r| r.state == "ready") {
                    return anyhow::Ok(());
                }
                tokio::time::sleep(Duration::from_millis(10)).await;
            }
        })
        .await??;
        Ok(Setup {
            host,
            client,
            server,
            _dirs: dirs,
        })
    }

    async fn workers(&self, n: usize) -> anyhow::Result<Vec<String>> {
        let runtime = self.client.runtime(RUNTIME);
        let mut ids = Vec::with_capacity(n);
        for i in 0..n {
            let spec = WorkerSpec {
                name: format!("bench{i}"),
                model: "scripted".into(),
                system_prompt: None,
                tools: Vec::new(),
                max_steps: None,
                context_tokens: None,
                request_id: None,
            };
            ids.push(runtime.create_worker(&spec).await?.id);
        }
        Ok(ids)
    }

    /// Sends `text` to every worker at once, as that many independent clients would.
    async fn input_all(&self, ids: &[String], text: &str) -> anyhow::Result<()> {
        let runtime = self.client.runtime(RUNTIME);
        let requests = ids.iter().map(|id| {
            let runtime = &runtime;
            async move { runtime.send_input(id, &input(text)).await }
        });
        futures_util::future::try_join_all(requests).await?;
        Ok(())
    }

    /// Connects an observer to the multiplexed stream; with no cursor it reads the
    /// snapshot first. Returns the stream and the cursor it starts after.
    async fn observer(&self, cursor: Option<&str>) -> anyhow::Result<(Ws, String)> {
        let query = cursor.map(|c| format!("?cursor={c}")).unwrap_or_default();
        let mut request = format!("ws://{}/api/v1/events/ws{query}", self.host.local_addr())
            .into_client_request()?;
        request.headers_mut().insert(
            "authorization",
            format!("Bearer {}", self.host.token()).parse()?,
        );
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

    /// `OBSERVERS` observers, connected and past their snapshots.
    async fn observers(&self) -> anyhow::Result<Vec<Observer>> {
        let mut observers = Vec::with_capacity(OBSERVERS);
        for _ in 0..OBSERVERS {
            let (ws, _) = self.observer(None).await?;
            observers.push(Observer {
                ws,
                addr: self.host.local_addr().to_string(),
                token: self.host.token().to_string(),
            });
        }
        Ok(observers)
    }

    async fn stop(self) -> anyhow::Result<()> {
        self.host.shutdown().await?;
        if let Some(server) = self.server {
            server.shutdown().await?;
        }
        Ok(())
    }
}

fn input(text: &str) -> Input {
    Input {
        text: text.to_string(),
        request_id: None,
    }
}

/// An observer's connection and what it needs to reconnect after `lagged`.
struct Observer {
    ws: Ws,
    addr: String,
    token: String,
}

/// What one observer saw.
struct Seen {
    frames: u64,
    first: Option<Instant>,
    last: Instant,
    lagged: u32,
}

/// The frame of a worker going back to idle: the end of one run.
const RUN_ENDED: &str = r#""to":"idle""#;

impl Observer {
    /// Reads event frames until `runs` runs have ended; on `lagged` reconnects with the
    /// frame's cursor (the stream resumes exactly after it).
    async fn watch(mut self, runs: usize, since: Instant) -> anyhow::Result<Seen> {
        let mut seen = Seen {
            frames: 0,
            first: None,
            last: since,
            lagged: 0,
        };
        let mut ended = 0;
        while ended < runs {
            let message = self.ws.next().await.context("stream ended")??;
            let Message::Text(text) = message else {
                continue;
            };
            if text.starts_with(r#"{"type":"event""#) {
                let now = Instant::now();
                seen.frames += 1;
                seen.first.get_or_insert(now);
                seen.last = now;
                if text.contains(RUN_ENDED) {
                    ended += 1;
                }
                continue;
            }
            let frame: serde_json::Value = serde_json::from_str(&text)?;
            match frame["type"].as_str() {
                Some("lagged") => {
                    seen.lagged += 1;
                    let cursor = frame["cursor"].as_str().context("lagged cursor")?;
                    self.ws = self.reconnect(cursor).await?;
                }
                Some("diagnostic") => {}
                _ => anyhow::bail!("unexpected frame {}", text.as_str()),
            }
        }
        let _ = self.ws.close(None).await;
        Ok(seen)
    }

    async fn reconnect(&self, cursor: &str) -> anyhow::Result<Ws> {
        let mut request =
            format!("ws://{}/api/v1/events/ws?cursor={cursor}", self.addr).into_client_request()?;
        request
            .headers_mut()
            .insert("authorization", format!("Bearer {}", self.token).parse()?);
        Ok(tokio_tungstenite::connect_async(request).await?.0)
    }
}

/// Waits for every observer; the frames they saw and the last receipt.
async fn collect(
    tasks: Vec<tokio::task::JoinHandle<anyhow::Result<Seen>>>,
) -> anyhow::Result<Vec<Seen>> {
    let mut all = Vec::with_capacity(tasks.len());
    for task in tasks {
        all.push(tokio::time::timeout(PATIENCE, task).await???);
    }
    Ok(all)
}

struct Throughput {
    rate: f64,
    lagged: u32,
}

async fn throughput(arm: Arm) -> anyhow::Result<Throughput> {
    let setup = Setup::start(arm, 0).await?;
    let ids = setup.workers(WORKERS).await?;
    let observers = setup.observers().await?;
    let started = Instant::now();
    let tasks = observers
        .into_iter()
        .map(|o| tokio::spawn(o.watch(WORKERS, started)))
        .collect();
    setup.input_all(&ids, &format!("stream {DELTAS}")).await?;
    let seen = collect(tasks).await?;
    setup.stop().await?;
    let frames: u64 = seen.iter().map(|s| s.frames).sum();
    let end = seen.iter().map(|s| s.last).max().unwrap_or(started);
    Ok(Throughput {
        rate: frames as f64 / end.duration_since(started).as_secs_f64(),
        lagged: seen.iter().map(|s| s.lagged).sum(),
    })
}

struct Paced {
    rate: f64,
    command: Percentiles,
    /// The HTTP round trips to the bare route, taken in the same run.
    floor: Percentiles,
}

/// Milliseconds.
struct Percentiles {
    p50: f64,
    p99: f64,
}

impl Percentiles {
    fn of(mut samples: Vec<f64>) -> Percentiles {
        samples.sort_by(f64::total_cmp);
        let pct = |p: f64| samples[((samples.len() - 1) as f64 * p).round() as usize];
        Percentiles {
            p50: pct(0.50),
            p99: pct(0.99),
        }
    }
}

/// A bare axum route answering `202` to a JSON body, on its own port in this process:
/// the HTTP floor's server. Returns its URL.
async fn floor_server() -> anyhow::Result<String> {
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await?;
    let addr = listener.local_addr()?;
    let app = axum::Router::new().route(
        "/input",
        axum::routing::post(|body: axum::body::Bytes| async move {
            (
                axum::http::StatusCode::ACCEPTED,
                format!(r#"{{"bytes":{}}}"#, body.len()),
            )
        }),
    );
    tokio::spawn(async move { axum::serve(listener, app).await });
    Ok(format!("http://{addr}/input"))
}

async fn paced(arm: Arm) -> anyhow::Result<Paced> {
    let setup = Setup::start(arm, PACED_DELAY_MS).await?;
    let load = setup.workers(PACED_WORKERS).await?;
    let probes = setup.workers(PROBES).await?;
    let observers = setup.observers().await?;
    let started = Instant::now();
    let tasks = observers
        .into_iter()
        .map(|o| tokio::spawn(o.watch(PACED_WORKERS + PROBES, started)))
        .collect();
    setup
        .input_all(&load, &format!("stream {PACED_DELTAS}"))
        .await?;
    let runtime = setup.client.runtime(RUNTIME);
    let probe = input("stream 1");
    let floor_url = floor_server().await?;
    let floor_client = reqwest::Client::builder()
        .tcp_nodelay(true)
        .no_proxy()
        .build()?;
    let body = serde_json::to_vec(&probe)?;
    let mut latencies = Vec::with_capacity(PROBES);
    let mut floor = Vec::with_capacity(PROBES);
    for id in &probes {
        tokio::time::sleep(PROBE_GAP).await;
        let sent = Instant::now();
        let answer = floor_client
            .post(&floor_url)
            .header("content-type", "application/json")
            .body(body.clone())
            .send()
            .await?;
        anyhow::ensure!(answer.status() == 202, "floor route: {}", answer.status());
        answer.bytes().await?;
        floor.push(sent.elapsed().as_secs_f64() * 1e3);
        tokio::time::sleep(PROBE_GAP).await;
        let sent = Instant::now();
        runtime.send_input(id, &probe).await?;
        latencies.push(sent.elapsed().as_secs_f64() * 1e3);
    }
    let probing = started.elapsed();
    let seen = collect(tasks).await?;
    setup.stop().await?;
    let watched = &seen[0];
    let span = watched
        .last
        .duration_since(watched.first.context("no events")?)
        .as_secs_f64();
    // The probes must have sampled a loaded runtime, not the quiet after it.
    anyhow::ensure!(
        probing.as_secs_f64() < span,
        "the probes outlasted the load ({probing:?}); raise PACED_DELTAS"
    );
    Ok(Paced {
        rate: watched.frames as f64 / span.max(1e-9),
        command: Percentiles::of(latencies),
        floor: Percentiles::of(floor),
    })
}
