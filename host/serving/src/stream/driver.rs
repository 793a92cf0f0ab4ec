//! The driver: runs a [`Session`] over a WebSocket and its sources.
//!
//! It does all the I/O the session decides on: answers its requests from the sources,
//! writes what it queues, and feeds it live envelopes, the client's messages, the timer
//! and shutdown. Replay pages and snapshots are written as the client accepts them
//! (history is pulled, never lost). Live envelopes are taken as they come, a burst at a
//! time, and written in one flush; while a write waits for the client they stay in the
//! source's live buffer, which is the stream's only queue. The client is heard between
//! replay pages too, so a message ends a long replay after the page in flight.

use std::pin::Pin;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;

use super::live::LiveEvents;
use super::notices::Notices;
use super::session::{Answer, Ending, Request, Session, Transmit};
use super::socket::Socket;
use super::source::EventSource;
use super::view::Visibility;
use crate::metrics::Metrics;
use crate::shutdown::ShutdownSignal;

/// Live envelopes taken per wake-up and written in one flush (then shutdown, the client
/// and the timer are checked again).
const LIVE_BURST: usize = 256;
/// A burst also ends once its frames reach this many bytes: a stream holds what it took
/// from the live buffer until the client accepts it, and events may be large (a remote
/// runtime's up to 64 MiB each), so what one stream holds is bounded in bytes too.
const LIVE_BURST_BYTES: usize = 1 << 20;

/// Where the stream is after sending what the session queued.
enum Flow {
    Open,
    /// Send this closing frame and close code, then stop.
    Close(Option<Utf8Bytes>, Option<u16>),
    /// The socket failed or timed out: stop.
    Broken,
}

/// How a write went.
enum Wrote {
    Done,
    /// Shutdown came first: the session has queued its shutdown close instead.
    ShutDown,
    /// The socket failed or timed out: nothing more can be sent.
    Broken,
}

/// A stream being driven.
pub(crate) struct Driver<'a, S, V> {
    pub socket: Socket,
    pub session: Session<V>,
    pub sources: &'a [Arc<S>],
    /// Subscribed before the session was made.
    pub live: LiveEvents,
    pub notices: Notices,
    pub shutdown: ShutdownSignal,
    pub metrics: &'a Metrics,
    pub timer: Timer,
}

/// The session's timer: one `Sleep`, moved only when the session's deadline changes (a
/// timer made afresh on every wake-up would cost a busy stream a timer-wheel insertion
/// and removal per burst of events).
pub(crate) struct Timer {
    sleep: Pin<Box<tokio::time::Sleep>>,
    armed: Option<Instant>,
}

impl Timer {
    pub(crate) fn new() -> Self {
        Timer {
            sleep: Box::pin(tokio::time::sleep(Duration::ZERO)),
            armed: None,
        }
    }

    /// Expires at `at` (never with `None`).
    fn set(&mut self, at: Option<Instant>) {
        if at != self.armed {
            if let Some(at) = at {
                self.sleep.as_mut().reset(at.into());
            }
            self.armed = at;
        }
    }

    async fn expired(&mut self) {
        match self.armed {
            Some(_) => self.sleep.as_mut().await,
            None => std::future::pending().await,
        }
    }
}

impl<S: EventSource, V: Visibility> Driver<'_, S, V> {
    /// Runs the session until it ends.
    pub(crate) async fn run(mut self) {
        let mut batch = Vec::new();
        loop {
            match self.transmit(&mut batch).await {
                Flow::Open if !self.session.is_closed() => {}
                Flow::Open | Flow::Broken => break,
                Flow::Close(frame, code) => {
                    self.socket.close(frame, code).await;
                    break;
                }
            }
            if let Some(request) = self.session.poll_request() {
                tokio::select! {
                    biased;
                    _ = self.shutdown.triggered() => self.session.handle_shutdown(),
                    answer = ask(self.sources, request) => {
                        self.session.handle_answer(answer);
                        // A message sent meanwhile ends the stream after this page.
                        while let Some(message) = self.socket.try_recv() {
                            self.session.handle_client(message);
                        }
                    }
                }
                continue;
            }
            self.live_step().await;
        }
        if self.session.ending() == Some(Ending::Lagged) {
            self.metrics.lagged();
            tracing::debug!(cursor = self.session.cursor(), "stream closed as lagged");
        }
    }

    /// Sends what the session queued, up to its close.
    async fn transmit(&mut self, batch: &mut Vec<Utf8Bytes>) -> Flow {
        loop {
            while let Some(transmit) = self.session.poll_transmit() {
                match transmit {
                    Transmit::Frame(frame) => batch.push(frame),
                    Transmit::Ping => match self.write(batch).await {
                        Wrote::Broken => return Flow::Broken,
                        // The session queued its shutdown close instead.
                        Wrote::ShutDown => continue,
                        Wrote::Done => {
                            tokio::select! {
                                biased;
                                _ = self.shutdown.triggered() => self.session.handle_shutdown(),
                                pinged = self.socket.ping() => if pinged.is_err() {
                                    return Flow::Broken;
                                },
                            }
                        }
                    },
                    Transmit::Close { frame, code } => match self.write(batch).await {
                        Wrote::Broken => return Flow::Broken,
                        Wrote::ShutDown => continue,
                        Wrote::Done => return Flow::Close(frame, code),
                    },
                }
            }
            match self.write(batch).await {
                Wrote::Broken => return Flow::Broken,
                Wrote::Done => return Flow::Open,
                Wrote::ShutDown => continue,
            }
        }
    }

    /// Writes the batch in one flush, waiting for the client (within the write timeout)
    /// unless shutdown comes first. The frames are counted as they are handed to the
    /// socket: counted after the flush, a client could read them and scrape `/metrics`
    /// before the count moved.
    async fn write(&mut self, batch: &mut Vec<Utf8Bytes>) -> Wrote {
        if batch.is_empty() {
            return Wrote::Done;
        }
        self.metrics.frames_sent(batch.len() as u64);
        tokio::select! {
            biased;
            written = self.socket.write(batch) => match written {
                Ok(()) => Wrote::Done,
                Err(_) => Wrote::Broken,
            },
            _ = self.shutdown.triggered() => {
                batch.clear();
                self.session.handle_shutdown();
                Wrote::ShutDown
            }
        }
    }

    /// Live: the first of shutdown, the client, the timer, live envelopes.
    async fn live_step(&mut self) {
        self.timer.set(self.session.poll_timeout());
        tokio::select! {
            biased;
            _ = self.shutdown.triggered() => self.session.handle_shutdown(),
            message = self.socket.recv() => {
                self.session.handle_client(message);
                // A pong to a ping is queued by the protocol layer; send it now.
                if !self.session.is_closed() && self.socket.flush().await.is_err() {
                    self.session.handle_client(super::session::FromClient::Gone);
                }
            }
            // Before live envelopes, so steady traffic does not hold pings back.
            // The timer's clock, not the system's: they differ when tokio's time is paused.
            _ = self.timer.expired() => {
                self.session.handle_timeout(tokio::time::Instant::now().into_std())
            }
            (feed, availability) = self.notices.next() => {
                let epoch = self.sources[feed].epoch();
                self.session.handle_availability(feed, availability, epoch)
            }
            (feed, item) = self.live.next() => {
                self.session.handle_live(feed, item);
                for _ in 0..LIVE_BURST {
                    if self.session.is_closed() || self.session.queued_bytes() >= LIVE_BURST_BYTES {
                        break;
                    }
                    let Some((feed, item)) = self.live.try_next() else { break };
                    self.session.handle_live(feed, item);
                }
            }
        }
    }
}

async fn ask<S: EventSource>(sources: &[Arc<S>], request: Request) -> Answer {
    match request {
        Request::Replay {
            feed,
            after,
            worker,
            limit,
        } => Answer::Replay(sources[feed].replay(after, worker.as_deref(), limit).await),
        Request::Snapshot { worker } => {
            let snapshot = sources[0].snapshot(&worker).await;
            Answer::Snapshot(snapshot.map(|(s, cursor)| (Box::new(s), cursor)))
        }
        Request::SnapshotAll { feed } => Answer::SnapshotAll(sources[feed].snapshot_all().await),
    }
}
