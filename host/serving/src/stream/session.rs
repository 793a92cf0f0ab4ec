//! [`Session`]: one stream's protocol as a state machine with no socket and no clock.
//!
//! In the style of `quinn-proto`: the driver feeds it inputs (answers to its requests:
//! replay pages and snapshots; live envelopes; what the client sent; timer expiries;
//! shutdown) and polls its outputs (frames and pings to send and the close,
//! [`Session::poll_transmit`]; what it needs from its sources,
//! [`Session::poll_request`]; when it next needs the timer, [`Session::poll_timeout`]).
//!
//! # Handshake (DESIGN.md, "Event log, cursors, streams")
//!
//! The driver subscribes to every source's live envelopes *before* the session asks for
//! anything. Without a cursor the session asks for a snapshot (`snapshot` for one
//! worker, `snapshot_all` otherwise) and its cursor is the position the snapshot is
//! consistent with. With a cursor it asks for the events after it, page by page (the
//! driver writes each page before it answers the next request: history waits for the
//! client). Then it forwards live envelopes newer than its position in their runtime:
//! no gap (subscribed before replaying), no duplicate.
//!
//! Cursor outcomes: from another store → `cursor_unknown` diagnostic, then a fresh
//! snapshot; older than retained history → `cursor_expired` diagnostic, then a fresh
//! snapshot; ahead of the log → `cursor_ahead` error and close. (A malformed cursor never
//! gets here: [`StartCursor::parse`] refuses it.) A multiplexed (host) stream first
//! checks every runtime's part of its cursor, so a bad part is reported before anything
//! is replayed.
//!
//! # Live, lagged, keep-alive, close
//!
//! A live source that drops envelopes for this stream (its buffer overflowed) says so
//! with [`Live::Skipped`]; the next envelope shows whether any of the dropped ones was
//! not sent yet (a replay may have covered them). If one was, the stream ends with a
//! `lagged` frame carrying the cursor of the last event taken, close code 1013; the
//! client resumes from it without loss. Pings go out every `ping_interval` while live.
//!
//! # A runtime that cannot be reached
//!
//! An outage of a source's runtime while live is one `runtime_unavailable` diagnostic;
//! the stream stays open and its events go on from its position once the runtime is
//! back. A multiplexed stream does not wait for a runtime it cannot reach when it
//! starts either: that runtime's snapshot (or replay) is left out with the same
//! diagnostic, the runtime's part is left out of the host cursor until the stream has a
//! position in it (a host cursor without a runtime's part means "from the beginning of
//! its log"), its live events are held back, and once it is back its history after that
//! position is replayed (page by page) before its live events go on: no gap, no
//! duplicate. A worker or runtime stream, which has nothing else to show, ends with the
//! `runtime_unavailable` error instead (clients retry it).
//! Streams are observation-only: a data message from the client ends the stream with an
//! `invalid_request` error. Shutdown replaces whatever is still queued with a
//! `shutting_down` error, close code 1001.

use std::collections::VecDeque;
use std::mem;
use std::sync::Arc;
use std::time::{Duration, Instant};

use axum::extract::ws::Utf8Bytes;
use yoi_eventlog::ReplayPage;
use yoi_protocol::{
    Cursor, CursorError, Envelope, ErrorCode, HostCursor, RuntimeWorkerSnapshot, WorkerSnapshot,
};

use super::cache::{FrameCache, Shape};
use super::frames::{
    LaggedFrame, SnapshotAllFrame, SnapshotFrame, diagnostic_frame, error_frame, event_frame,
    frame_text,
};
use super::position::Positions;
use super::source::{Availability, ReplayOutcome};
use super::view::{Observed, Visibility};
use crate::error::ServeError;

const CLOSE_NORMAL: u16 = 1000;
const CLOSE_GOING_AWAY: u16 = 1001;
const CLOSE_TRY_AGAIN_LATER: u16 = 1013;

/// The close code after an `error` frame with `code`: 1001 (going away) when the server
/// shuts down, else 1000.
pub(crate) fn close_code(code: ErrorCode) -> u16 {
    if code == ErrorCode::ShuttingDown {
        CLOSE_GOING_AWAY
    } else {
        CLOSE_NORMAL
    }
}

/// What a stream covers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Scope {
    /// One worker of one runtime; cursors are runtime cursors.
    Worker(String),
    /// Every worker of one runtime (a runtime server's runtime-wide stream); cursors are
    /// runtime cursors.
    Runtime,
    /// Every worker of every runtime (a host's multiplexed stream); cursors are host
    /// cursors.
    Host,
}

impl Scope {
    fn worker(&self) -> Option<&str> {
        match self {
            Scope::Worker(w) => Some(w),
            Scope::Runtime | Scope::Host => None,
        }
    }
}

/// The cursor a stream was opened with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StartCursor {
    Runtime(Cursor),
    Host(HostCursor),
}

impl StartCursor {
    /// Reads a client's `?cursor=` for a stream of `scope` (a host cursor for
    /// [`Scope::Host`], else a runtime cursor).
    pub fn parse(scope: &Scope, text: &str) -> Result<StartCursor, CursorError> {
        match scope {
            Scope::Host => HostCursor::decode(text).map(StartCursor::Host),
            Scope::Worker(_) | Scope::Runtime => Cursor::decode(text).map(StartCursor::Runtime),
        }
    }
}

/// One runtime a session covers.
pub struct Feed {
    pub runtime_id: String,
    pub epoch: u64,
    pub frames: Arc<FrameCache>,
}

/// What the session needs from its sources; the driver answers with the matching
/// [`Answer`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request {
    /// Events of feed `feed` after `after`, at most `limit` (`0`: only check `after`).
    Replay {
        feed: usize,
        after: Cursor,
        worker: Option<String>,
        limit: usize,
    },
    /// The snapshot of one worker of feed 0.
    Snapshot { worker: String },
    /// Every worker's snapshot of feed `feed`.
    SnapshotAll { feed: usize },
}

/// A source's answer to a [`Request`].
#[derive(Debug)]
pub enum Answer {
    Replay(Result<ReplayPage, ReplayOutcome>),
    Snapshot(Result<(Box<WorkerSnapshot>, Cursor), ServeError>),
    SnapshotAll(Result<(Vec<WorkerSnapshot>, Cursor), ServeError>),
}

/// What a live source delivered (a `broadcast::Receiver`'s results).
#[derive(Debug, Clone)]
pub enum Live {
    Event(Arc<Envelope>),
    /// The source dropped envelopes for this stream: its buffer overflowed.
    Skipped,
    /// The source is gone.
    Closed,
}

/// What the client sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FromClient {
    /// A ping or pong (the protocol layer answers pings).
    Control,
    /// A text or binary message: streams take none.
    Data,
    /// A close, a broken connection or its end.
    Gone,
}

/// What the driver sends next.
#[derive(Debug, Clone, PartialEq)]
pub enum Transmit {
    Frame(Utf8Bytes),
    Ping,
    /// The last transmit: the closing frame (if any) and the close code (`None`: a
    /// close frame without a code).
    Close {
        frame: Option<Utf8Bytes>,
        code: Option<u16>,
    },
}

/// Why a stream ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Ending {
    /// The client closed or went away.
    Client,
    /// An `error` frame with this code.
    Error(ErrorCode),
    /// The client fell behind the live buffer.
    Lagged,
}

/// Timing and paging of a session.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SessionConfig {
    /// Events per replay page.
    pub replay_page: usize,
    /// Bytes of frames queued per replay page: the page is cut after the frame that
    /// reaches this, and the next one starts after it.
    pub replay_page_bytes: usize,
    /// Pings while live, this far apart.
    pub ping_interval: Duration,
}

/// Where the handshake is.
enum Step {
    /// Checking the start of feed `feed` of a host cursor (later feeds start at
    /// `starts`); `found` collects the diagnostics of unusable parts.
    Probe {
        feed: usize,
        starts: Vec<Cursor>,
        found: Vec<(ErrorCode, String)>,
    },
    /// Replaying feed `feed` from `after`; the later feeds follow from their positions.
    Replay { feed: usize, after: Cursor },
    /// Waiting for the one worker's snapshot.
    Snapshot,
    /// Waiting for the snapshots of feed `feed`, after those of the feeds before it.
    SnapshotAll {
        feed: usize,
        workers: Vec<RuntimeWorkerSnapshot>,
    },
    /// While live: replaying feed `feed` (of a multiplexed stream) from `after`, now that
    /// its runtime is back after the stream started without it.
    CatchUp { feed: usize, after: Cursor },
}

enum Phase {
    Handshake(Step),
    Live,
    /// The close is queued (or sent).
    Closed,
}

/// One stream's protocol state (see the module docs).
pub struct Session<V> {
    scope: Scope,
    config: SessionConfig,
    view: V,
    positions: Positions,
    frames: Vec<Arc<FrameCache>>,
    /// Per feed: the live source dropped envelopes since the last one it delivered.
    skipped: Vec<bool>,
    /// Per feed: the client was told the runtime is unavailable, and it is not back yet.
    unavailable: Vec<bool>,
    /// Per feed of a multiplexed stream: events after its position are still to be
    /// replayed, once its runtime is back (see the module docs); its live events are
    /// held back meanwhile.
    pending: Vec<bool>,
    /// Per feed: the epoch of its runtime's store, as last told by the source.
    epochs: Vec<u64>,
    phase: Phase,
    request: Option<Request>,
    transmits: VecDeque<Transmit>,
    /// Bytes of the frames in `transmits`.
    queued_bytes: usize,
    next_ping: Instant,
    ending: Option<Ending>,
}

impl<V: Visibility> Session<V> {
    /// A session over `feeds` (exactly one unless `scope` is [`Scope::Host`]), from
    /// `cursor`, seeing what `view` lets it see. `now` starts the keep-alive timer.
    pub fn new(
        scope: Scope,
        feeds: Vec<Feed>,
        cursor: Option<StartCursor>,
        view: V,
        config: SessionConfig,
        now: Instant,
    ) -> Self {
        let host = scope == Scope::Host;
        assert!(
            host || feeds.len() == 1,
            "a {scope:?} stream covers one runtime"
        );
        let positions = Positions::new(host, feeds.iter().map(|f| (f.runtime_id.clone(), f.epoch)));
        let mut session = Session {
            skipped: vec![false; feeds.len()],
            unavailable: vec![false; feeds.len()],
            pending: vec![false; feeds.len()],
            epochs: feeds.iter().map(|f| f.epoch).collect(),
            frames: feeds.into_iter().map(|f| f.frames).collect(),
            scope,
            config,
            view,
            positions,
            phase: Phase::Live,
            request: None,
            transmits: VecDeque::new(),
            queued_bytes: 0,
            next_ping: now + config.ping_interval,
            ending: None,
        };
        match cursor {
            None => session.start_snapshot(),
            Some(StartCursor::Runtime(after)) if !host => session.replay(0, after),
            Some(StartCursor::Host(cursor)) if host => session.start_probe(&cursor),
            Some(_) => session.close_with_error(ServeError::new(
                ErrorCode::CursorMalformed,
                "this stream takes a host cursor (h1~…) on the multiplexed stream and a \
                 runtime cursor (c1…) elsewhere",
            )),
        }
        session
    }

    /// The next thing to send, in order; [`Transmit::Close`] is the last.
    pub fn poll_transmit(&mut self) -> Option<Transmit> {
        let transmit = self.transmits.pop_front();
        if let Some(Transmit::Frame(frame)) = &transmit {
            self.queued_bytes -= frame.len();
        }
        transmit
    }

    /// Bytes of the frames queued and not yet taken by [`Session::poll_transmit`].
    pub fn queued_bytes(&self) -> usize {
        self.queued_bytes
    }

    /// What the session needs next from its sources (once; answer it with
    /// [`Session::handle_answer`]).
    pub fn poll_request(&mut self) -> Option<Request> {
        self.request.take()
    }

    /// When the session next needs [`Session::handle_timeout`] (while live).
    pub fn poll_timeout(&self) -> Option<Instant> {
        matches!(self.phase, Phase::Live).then_some(self.next_ping)
    }

    /// Whether live envelopes are wanted now (the handshake is over, the stream open).
    pub fn is_live(&self) -> bool {
        matches!(self.phase, Phase::Live)
    }

    /// Whether the stream is over (its close is queued or sent).
    pub fn is_closed(&self) -> bool {
        matches!(self.phase, Phase::Closed)
    }

    /// Why the stream ended, once it did.
    pub fn ending(&self) -> Option<Ending> {
        self.ending
    }

    /// The cursor that resumes the stream after everything taken to send so far.
    pub fn cursor(&self) -> String {
        self.positions.text()
    }

    /// A source answered the last request.
    pub fn handle_answer(&mut self, answer: Answer) {
        // (Each step below moves the phase on: asks again, goes live or closes.)
        let phase = mem::replace(&mut self.phase, Phase::Live);
        let Phase::Handshake(step) = phase else {
            // Shut down while the request was out: the answer is moot.
            self.phase = phase;
            return;
        };
        match (step, answer) {
            (
                Step::Probe {
                    feed,
                    starts,
                    found,
                },
                Answer::Replay(result),
            ) => self.probed(feed, starts, found, result),
            (Step::Replay { feed, after }, Answer::Replay(result)) => {
                self.replayed(feed, after, result)
            }
            (Step::Snapshot, Answer::Snapshot(result)) => self.snapshotted(result),
            (Step::SnapshotAll { feed, workers }, Answer::SnapshotAll(result)) => {
                self.snapshotted_all(feed, workers, result)
            }
            (Step::CatchUp { feed, after }, Answer::Replay(result)) => {
                self.caught_up(feed, after, result)
            }
            (_, answer) => self.close_with_error(ServeError::internal(format!(
                "the stream got an answer it did not ask for: {answer:?}"
            ))),
        }
    }

    /// A live source delivered `live` for feed `feed`. Ignored unless live.
    pub fn handle_live(&mut self, feed: usize, live: Live) {
        if !self.is_live() {
            return;
        }
        match live {
            // Replayed once the runtime is back.
            Live::Event(_) | Live::Skipped if self.pending[feed] => {}
            Live::Event(env) => self.forward_live(feed, &env),
            Live::Skipped => self.skipped[feed] = true,
            Live::Closed => self.close_with_error(ServeError::new(
                ErrorCode::ShuttingDown,
                "the runtime stopped",
            )),
        }
    }

    /// Feed `feed`'s runtime became available or unavailable (its store's epoch is
    /// `epoch` now): an outage is told once, as a `runtime_unavailable` diagnostic; the
    /// stream stays open and its events go on from its position once the runtime is
    /// back (replayed first when the stream started without it).
    pub fn handle_availability(&mut self, feed: usize, availability: Availability, epoch: u64) {
        if self.is_closed() {
            return;
        }
        self.epochs[feed] = epoch;
        match availability {
            Availability::Ready => {
                self.unavailable[feed] = false;
                if self.pending[feed] && self.is_live() {
                    self.catch_up(feed);
                }
            }
            Availability::Unavailable(why) => self.tell_unavailable(feed, &why),
        }
    }

    /// The `runtime_unavailable` diagnostic, once per outage.
    fn tell_unavailable(&mut self, feed: usize, why: &str) {
        if !mem::replace(&mut self.unavailable[feed], true) {
            let message = format!(
                "runtime {} is unavailable ({why}); this stream goes on when it is back",
                self.positions.id(feed)
            );
            let frame = diagnostic_frame(ErrorCode::RuntimeUnavailable, message);
            self.queue_frame(frame.into());
        }
    }

    /// Whether `e`, met while starting feed `feed`, leaves the feed pending instead of
    /// ending the stream: a multiplexed stream whose runtime cannot be reached (see the
    /// module docs). Marks it so and tells the client.
    fn left_pending(&mut self, feed: usize, e: &ServeError) -> bool {
        if self.scope != Scope::Host || !is_down(e) {
            return false;
        }
        self.pending[feed] = true;
        self.tell_unavailable(feed, &e.message);
        true
    }

    /// Replays pending feed `feed` from its position (from the beginning of its current
    /// log when it has none), then goes live again.
    fn catch_up(&mut self, feed: usize) {
        if self.positions.is_absent(feed) {
            self.positions.unset(feed, self.epochs[feed]);
        }
        let after = self.positions.get(feed);
        let request = Request::Replay {
            feed,
            after,
            worker: None,
            limit: self.config.replay_page,
        };
        self.ask(Step::CatchUp { feed, after }, request);
    }

    fn caught_up(&mut self, feed: usize, after: Cursor, result: Result<ReplayPage, ReplayOutcome>) {
        let page = match result {
            Ok(page) => page,
            Err(ReplayOutcome::Failed(e)) if self.scope == Scope::Host && is_down(&e) => {
                // Still pending (and the client was told when it started): tried again
                // when the runtime is next back, or at the next ping.
                self.phase = Phase::Live;
                return;
            }
            Err(outcome) => return self.recover(outcome),
        };
        if self.take_page(feed, after, &page) {
            let after = self.positions.get(feed);
            self.ask(
                Step::CatchUp { feed, after },
                Request::Replay {
                    feed,
                    after,
                    worker: None,
                    limit: self.config.replay_page,
                },
            );
        } else {
            self.pending[feed] = false;
            self.phase = Phase::Live;
        }
    }

    /// The client sent something.
    pub fn handle_client(&mut self, message: FromClient) {
        if self.is_closed() {
            return;
        }
        match message {
            FromClient::Control => {}
            FromClient::Data => self.close_with_error(ServeError::invalid(
                "streams are observation-only: send commands over the REST API",
            )),
            FromClient::Gone => self.close(None, None, Ending::Client),
        }
    }

    /// The timer of [`Session::poll_timeout`] expired (or the driver woke up anyway).
    pub fn handle_timeout(&mut self, now: Instant) {
        if self.is_live() && now >= self.next_ping {
            self.transmits.push_back(Transmit::Ping);
            self.next_ping = now + self.config.ping_interval;
            // A pending feed whose runtime is said to be up but did not answer: again.
            if let Some(feed) =
                (0..self.pending.len()).find(|&f| self.pending[f] && !self.unavailable[f])
            {
                self.catch_up(feed);
            }
        }
    }

    /// The server is shutting down: what is still queued is dropped, the client gets a
    /// `shutting_down` error (close code 1001) and resumes later with its last cursor.
    /// Afterwards the queue holds exactly the close.
    pub fn handle_shutdown(&mut self) {
        self.transmits.clear();
        self.queued_bytes = 0;
        self.request = None;
        if self.ending == Some(Ending::Client) {
            // Nobody to tell.
            self.transmits.push_back(Transmit::Close {
                frame: None,
                code: None,
            });
            return;
        }
        self.phase = Phase::Live;
        self.ending = None;
        self.close_with_error(ServeError::new(
            ErrorCode::ShuttingDown,
            "the server is shutting down; reconnect later with your last cursor",
        ));
    }

    fn start_snapshot(&mut self) {
        // A snapshot gives every feed a position afresh.
        self.pending.iter_mut().for_each(|p| *p = false);
        let (step, request) = match &self.scope {
            Scope::Worker(worker) => (
                Step::Snapshot,
                Request::Snapshot {
                    worker: worker.clone(),
                },
            ),
            Scope::Runtime | Scope::Host if self.positions.feeds() == 0 => {
                self.send_snapshot_all(&[]);
                self.phase = Phase::Live;
                return;
            }
            Scope::Runtime | Scope::Host => (
                Step::SnapshotAll {
                    feed: 0,
                    workers: Vec::new(),
                },
                Request::SnapshotAll { feed: 0 },
            ),
        };
        self.ask(step, request);
    }

    fn ask(&mut self, step: Step, request: Request) {
        self.phase = Phase::Handshake(step);
        self.request = Some(request);
    }

    fn replay(&mut self, feed: usize, after: Cursor) {
        let request = Request::Replay {
            feed,
            after,
            worker: self.scope.worker().map(str::to_string),
            limit: self.config.replay_page,
        };
        self.ask(Step::Replay { feed, after }, request);
    }

    /// A host cursor: carry the parts of runtimes not covered, then check each feed's
    /// part (a feed it does not name starts from the beginning of its log).
    fn start_probe(&mut self, cursor: &HostCursor) {
        self.positions.carry(cursor);
        let starts: Vec<Cursor> = (0..self.positions.feeds())
            .map(|i| match cursor.get(self.positions.id(i)) {
                Some(part) => part,
                None => {
                    // From its beginning, whatever its store turns out to be.
                    let start = self.positions.get(i);
                    self.positions.unset(i, start.epoch);
                    start
                }
            })
            .collect();
        match starts.first() {
            None => self.phase = Phase::Live,
            Some(&first) => self.ask(
                Step::Probe {
                    feed: 0,
                    starts,
                    found: Vec::new(),
                },
                Request::Replay {
                    feed: 0,
                    after: first,
                    worker: None,
                    limit: 0,
                },
            ),
        }
    }

    fn probed(
        &mut self,
        feed: usize,
        starts: Vec<Cursor>,
        mut found: Vec<(ErrorCode, String)>,
        result: Result<ReplayPage, ReplayOutcome>,
    ) {
        let id = self.positions.id(feed).to_string();
        match result {
            Ok(_) => self.positions.set(feed, starts[feed]),
            Err(ReplayOutcome::Failed(e)) if self.left_pending(feed, &e) => {
                if !self.positions.is_absent(feed) {
                    self.positions.set(feed, starts[feed]);
                }
            }
            Err(ReplayOutcome::Unknown(m)) => {
                found.push((ErrorCode::CursorUnknown, format!("runtime {id}: {m}")))
            }
            Err(ReplayOutcome::Expired(m)) => {
                found.push((ErrorCode::CursorExpired, format!("runtime {id}: {m}")))
            }
            Err(ReplayOutcome::Ahead(m)) => {
                return self.close_with_error(ServeError::new(
                    ErrorCode::CursorAhead,
                    format!("runtime {id}: {m}"),
                ));
            }
            Err(ReplayOutcome::Failed(e)) => return self.close_with_error(e),
        }
        let next = feed + 1;
        if next < starts.len() {
            let after = starts[next];
            return self.ask(
                Step::Probe {
                    feed: next,
                    starts,
                    found,
                },
                Request::Replay {
                    feed: next,
                    after,
                    worker: None,
                    limit: 0,
                },
            );
        }
        if found.is_empty() {
            return self.replay_from(0);
        }
        for (code, message) in found {
            self.queue_frame(diagnostic_frame(code, message).into());
        }
        self.start_snapshot();
    }

    /// Replays the first feed from `feed` on that is not pending, from its position;
    /// live when there is none.
    fn replay_from(&mut self, feed: usize) {
        match (feed..self.positions.feeds()).find(|&f| !self.pending[f]) {
            Some(f) => self.replay(f, self.positions.get(f)),
            None => self.phase = Phase::Live,
        }
    }

    fn replayed(&mut self, feed: usize, after: Cursor, result: Result<ReplayPage, ReplayOutcome>) {
        let page = match result {
            Ok(page) => page,
            Err(ReplayOutcome::Failed(e)) if self.left_pending(feed, &e) => {
                return self.replay_from(feed + 1);
            }
            Err(outcome) => return self.recover(outcome),
        };
        if self.take_page(feed, after, &page) {
            self.replay(feed, self.positions.get(feed));
        } else {
            self.replay_from(feed + 1);
        }
    }

    /// Queues the frames of a replay page of feed `feed` that started after `after`, up
    /// to the page's byte budget (at least one frame). Whether more follow (the page
    /// said so, or was cut); the feed's position is where the next page starts.
    fn take_page(&mut self, feed: usize, after: Cursor, page: &ReplayPage) -> bool {
        self.positions.set(feed, after);
        let mut bytes = 0;
        for env in &page.events {
            if bytes >= self.config.replay_page_bytes {
                return true;
            }
            self.positions.set(feed, Cursor::new(after.epoch, env.seq));
            if let Some(frame) = self.project(feed, env) {
                bytes += frame.len();
                self.queue_frame(frame);
            }
        }
        // A filtered page ends where the replay looked, past other workers' events.
        self.positions.set(feed, page.next);
        page.more
    }

    /// After a replay that cannot be served: the diagnostic and a fresh snapshot, or the
    /// end of the stream.
    fn recover(&mut self, outcome: ReplayOutcome) {
        match outcome {
            ReplayOutcome::Unknown(m) => {
                self.queue_frame(diagnostic_frame(ErrorCode::CursorUnknown, m).into());
                self.start_snapshot();
            }
            ReplayOutcome::Expired(m) => {
                self.queue_frame(diagnostic_frame(ErrorCode::CursorExpired, m).into());
                self.start_snapshot();
            }
            other => self.close_with_error(other.into_error()),
        }
    }

    fn snapshotted(&mut self, result: Result<(Box<WorkerSnapshot>, Cursor), ServeError>) {
        let (snapshot, cursor) = match result {
            Ok(answer) => answer,
            Err(e) => return self.close_with_error(e),
        };
        let worker_id = snapshot.worker.id.clone();
        let Some(snapshot) = self.view.snapshot(self.positions.id(0), *snapshot) else {
            return self.close_with_error(ServeError::worker_not_found(&worker_id));
        };
        self.positions.set(0, cursor);
        let text = frame_text(&SnapshotFrame {
            cursor: &cursor.encode(),
            runtime_id: self.positions.id(0),
            worker: &snapshot.worker,
            transcript: &snapshot.transcript,
            in_flight: &snapshot.in_flight,
        });
        self.queue_frame(text.into());
        self.phase = Phase::Live;
    }

    fn snapshotted_all(
        &mut self,
        feed: usize,
        mut workers: Vec<RuntimeWorkerSnapshot>,
        result: Result<(Vec<WorkerSnapshot>, Cursor), ServeError>,
    ) {
        match result {
            Ok((snapshots, cursor)) => {
                self.positions.set(feed, cursor);
                let runtime_id = self.positions.id(feed);
                workers.extend(snapshots.into_iter().filter_map(|s| {
                    let snapshot = self.view.snapshot(runtime_id, s)?;
                    Some(RuntimeWorkerSnapshot {
                        runtime_id: runtime_id.to_string(),
                        snapshot,
                    })
                }));
            }
            Err(e) if self.left_pending(feed, &e) => {
                let epoch = self.epochs[feed];
                self.positions.unset(feed, epoch);
            }
            Err(e) => return self.close_with_error(e),
        }
        let next = feed + 1;
        if next < self.positions.feeds() {
            return self.ask(
                Step::SnapshotAll {
                    feed: next,
                    workers,
                },
                Request::SnapshotAll { feed: next },
            );
        }
        self.send_snapshot_all(&workers);
        self.phase = Phase::Live;
    }

    fn send_snapshot_all(&mut self, workers: &[RuntimeWorkerSnapshot]) {
        let text = frame_text(&SnapshotAllFrame {
            cursor: &self.positions.text(),
            workers,
        });
        self.queue_frame(text.into());
    }

    /// A live envelope: projected into the queue. After the source dropped envelopes, a
    /// gap between the position and this envelope means the client fell behind the live
    /// buffer: the stream ends as lagged.
    fn forward_live(&mut self, feed: usize, env: &Envelope) {
        let at = self.positions.get(feed);
        if mem::take(&mut self.skipped[feed]) && env.seq > at.seq.saturating_add(1) {
            return self.lagged();
        }
        if env.seq <= at.seq {
            return;
        }
        self.positions.set(feed, Cursor::new(at.epoch, env.seq));
        if let Some(frame) = self.project(feed, env) {
            self.queue_frame(frame);
        }
    }

    /// One event as this stream sends it: `None` when it is not for this client.
    fn project(&self, feed: usize, env: &Envelope) -> Option<Utf8Bytes> {
        if let Some(worker) = self.scope.worker()
            && env.worker_id.as_deref() != Some(worker)
        {
            return None;
        }
        let runtime_id = self.positions.id(feed);
        let frames = &self.frames[feed];
        let epoch = self.positions.get(feed).epoch;
        match self.view.event(runtime_id, epoch, env, frames) {
            Observed::Allow => {
                // Frames every stream of this shape shares come from the runtime's cache.
                let shape = match self.scope {
                    Scope::Worker(_) | Scope::Runtime => Some(Shape::RuntimeCursor),
                    Scope::Host if self.positions.parts() == 1 => Some(Shape::HostCursor),
                    Scope::Host => None,
                };
                Some(match shape {
                    Some(shape) => frames.frame(runtime_id, epoch, env, shape),
                    None => self.event_text(feed, env, &frames.json(epoch, env)).into(),
                })
            }
            Observed::Redact(body) => Some(self.event_text(feed, env, &body).into()),
            Observed::Deny => None,
        }
    }

    /// An event frame at the (already advanced) position.
    fn event_text(&self, feed: usize, env: &Envelope, body: &str) -> String {
        let mut cursor = String::with_capacity(48);
        self.positions.write(&mut cursor);
        event_frame(&cursor, self.positions.id(feed), env, body)
    }

    fn queue_frame(&mut self, frame: Utf8Bytes) {
        self.queued_bytes += frame.len();
        self.transmits.push_back(Transmit::Frame(frame));
    }

    fn lagged(&mut self) {
        let text = frame_text(&LaggedFrame {
            cursor: &self.positions.text(),
            message: "the client fell behind; reconnect with this cursor to resume without loss",
        });
        self.close(
            Some(text.into()),
            Some(CLOSE_TRY_AGAIN_LATER),
            Ending::Lagged,
        );
    }

    fn close_with_error(&mut self, e: ServeError) {
        let code = close_code(e.code);
        let frame = error_frame(e.code, e.message).into();
        self.close(Some(frame), Some(code), Ending::Error(e.code));
    }

    /// Queues the close after what is queued (taken before the end, it is still sent; a
    /// lagged cursor counts it).
    fn close(&mut self, frame: Option<Utf8Bytes>, code: Option<u16>, ending: Ending) {
        if self.is_closed() {
            return;
        }
        self.request = None;
        self.phase = Phase::Closed;
        self.ending = Some(ending);
        self.transmits.push_back(Transmit::Close { frame, code });
    }
}

/// Whether a source failed because its runtime cannot be reached (now).
fn is_down(e: &ServeError) -> bool {
    matches!(e.code, ErrorCode::RuntimeUnavailable | ErrorCode::Timeout)
}

#[cfg(test)]
#[path = "session_tests.rs"]
mod tests;
