//! Set-up for tests against a real in-process `yoi-host` running the built runtime
//! component (`$YOI_GUEST_WASM`, or `target/guest/yoi_runtime.wasm`).
#![allow(dead_code)]

use std::net::SocketAddr;
use std::time::Duration;

use yoi_client::{
    ClientOptions, ConnState, EventStream, HostClient, StreamCursor, StreamItem, StreamOptions,
};
use yoi_host::Host;
use yoi_host::config::{Config, RuntimeConfig, RuntimeSettings};
use yoi_protocol::{Cursor, Frame, Input, WorkerSpec};
use yoi_serving::EventSource;

/// Generous guard so a broken test fails instead of hanging; never a performance bound.
pub const PATIENCE: Duration = Duration::from_secs(120);

pub struct TestHost {
    pub host: Option<Host>,
    pub addr: SocketAddr,
    pub token: String,
    /// What the host runs with (bound to `addr`, so a restart takes the same port).
    config: Config,
    pub dir: tempfile::TempDir,
}

pub async fn start() -> TestHost {
    start_with(|_| {}).await
}

/// The settings of the test config's embedded runtime `local`.
pub fn local_settings(c: &mut Config) -> &mut RuntimeSettings {
    c.runtimes[0].settings_mut().expect("local is embedded")
}

/// A host on an ephemeral port with a fresh data dir, the built component and a scripted
/// model without delays, as changed by `tweak`.
pub async fn start_with(tweak: impl FnOnce(&mut Config)) -> TestHost {
    let dir = tempfile::tempdir().unwrap();
    let mut settings = RuntimeSettings::default();
    settings.scripted.token_delay_ms = 0;
    let runtime = RuntimeConfig::embedded("local", settings);
    let mut config = Config {
        bind: "127.0.0.1:0".parse().unwrap(),
        data_dir: Some(dir.path().to_path_buf()),
        component: Some(yoi_core::guest_component_path().unwrap_or_else(|e| panic!("{e}"))),
        runtimes: vec![runtime],
        ..Config::default()
    };
    tweak(&mut config);
    let host = launch(config.clone()).await;
    config.bind = host.local_addr();
    TestHost {
        addr: host.local_addr(),
        token: host.token().to_string(),
        host: Some(host),
        config,
        dir,
    }
}

async fn launch(config: Config) -> Host {
    let host = Host::start(config).await.expect("host starts");
    tokio::time::timeout(PATIENCE, host.ready())
        .await
        .expect("runtimes load in time")
        .expect("runtimes load");
    host
}

impl TestHost {
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// A client whose streams retry quickly (a restart takes well under a second here).
    pub fn client(&self) -> HostClient {
        HostClient::with_options(&self.url(), &self.token, fast_retries()).unwrap()
    }

    pub async fn stop(&mut self) {
        if let Some(host) = self.host.take() {
            host.shutdown().await.expect("clean shutdown");
        }
    }

    /// Stops the host and starts it again on the same port and data dir.
    pub async fn restart(&mut self) {
        self.stop().await;
        self.host = Some(launch(self.config.clone()).await);
    }

    /// The sequence numbers in the runtime's event log after `after` (of one worker if
    /// given): what a client should have seen.
    pub async fn log_seqs(&self, after: Cursor, worker: Option<&str>) -> Vec<u64> {
        let host = self.host.as_ref().expect("host running");
        let runtime = host.state().registry().unwrap().get("local").unwrap();
        let mut seqs = Vec::new();
        let mut after = after;
        loop {
            let page = runtime
                .replay(after, worker, 1024)
                .await
                .unwrap_or_else(|e| panic!("replay: {e:?}"));
            seqs.extend(page.events.iter().map(|e| e.seq));
            after = page.next;
            if !page.more {
                return seqs;
            }
        }
    }
}

pub fn fast_retries() -> ClientOptions {
    ClientOptions {
        stream: StreamOptions {
            backoff_initial: Duration::from_millis(20),
            backoff_max: Duration::from_millis(200),
            ..StreamOptions::default()
        },
        ..ClientOptions::default()
    }
}

pub fn spec(name: &str) -> WorkerSpec {
    WorkerSpec {
        name: name.into(),
        model: "scripted".into(),
        system_prompt: None,
        tools: vec![],
        max_steps: None,
        context_tokens: None,
        request_id: None,
    }
}

pub fn input(text: &str) -> Input {
    Input {
        text: text.into(),
        request_id: None,
    }
}

/// An [`EventStream`] under test: frames with a hang guard, statuses recorded.
pub struct Watch<C: StreamCursor> {
    pub stream: EventStream<C>,
    pub statuses: Vec<ConnState>,
}

impl<C: StreamCursor> Watch<C> {
    pub fn new(stream: EventStream<C>) -> Self {
        Watch {
            stream,
            statuses: Vec::new(),
        }
    }

    /// The next frame (statuses are recorded); panics if the stream ends.
    pub async fn frame(&mut self) -> Frame<C> {
        let deadline = tokio::time::Instant::now() + PATIENCE;
        loop {
            let item = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .expect("a frame in time");
            match item {
                Some(StreamItem::Frame(frame)) => return frame,
                Some(StreamItem::Status(ConnState::GaveUp(e))) => panic!("the stream gave up: {e}"),
                Some(StreamItem::Status(state)) => self.statuses.push(state),
                None => panic!("the stream ended"),
            }
        }
    }

    /// The next item that is not a frame (frames are returned by `frame`; one here
    /// panics).
    pub async fn status(&mut self) -> Option<ConnState> {
        let item = tokio::time::timeout(PATIENCE, self.stream.next())
            .await
            .expect("an item in time");
        match item {
            Some(StreamItem::Status(state)) => Some(state),
            Some(StreamItem::Frame(frame)) => panic!("expected a status, got {frame:?}"),
            None => None,
        }
    }

    /// Events until `done` says stop (inclusive); anything but events panics.
    pub async fn events_until(&mut self, mut done: impl FnMut(&Frame<C>) -> bool) -> Vec<Frame<C>> {
        let mut seen = Vec::new();
        loop {
            let frame = self.frame().await;
            assert!(
                matches!(frame, Frame::Event { .. }),
                "expected an event, got {frame:?}"
            );
            let stop = done(&frame);
            seen.push(frame);
            if stop {
                return seen;
            }
        }
    }

    /// How many times the stream connected.
    pub fn connections(&self) -> usize {
        self.statuses
            .iter()
            .filter(|s| matches!(s, ConnState::Connected))
            .count()
    }
}

pub fn seqs<C: std::fmt::Debug>(frames: &[Frame<C>]) -> Vec<u64> {
    frames
        .iter()
        .map(|f| match f {
            Frame::Event { seq, .. } => *seq,
            other => panic!("not an event: {other:?}"),
        })
        .collect()
}

/// Whether `frame` is the end of run `run_id`.
pub fn run_ended<C>(frame: &Frame<C>, run: &str) -> bool {
    use yoi_protocol::Event;
    matches!(
        frame,
        Frame::Event {
            event: Event::RunCompleted { run_id, .. }
                | Event::RunFailed { run_id, .. }
                | Event::RunCancelled { run_id, .. },
            ..
        } if run_id == run
    )
}

/// Polls until the worker is idle after `runs` runs.
pub async fn wait_idle(client: &HostClient, worker: &str, runs: u32) {
    let local = client.runtime("local");
    tokio::time::timeout(PATIENCE, async {
        loop {
            let w = local.worker(worker).await.unwrap();
            if w.status == yoi_protocol::WorkerStatus::Idle && w.run_count == runs {
                return;
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await
    .expect("the worker finishes its run in time");
}
