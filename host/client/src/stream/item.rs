//! What an [`EventStream`](crate::EventStream) yields, and the cursors it can resume from.

use std::fmt;
use std::time::Duration;

use serde::de::DeserializeOwned;
use yoi_protocol::{Cursor, Frame, HostCursor};

use crate::error::ClientError;

/// One item of an [`EventStream`](crate::EventStream): a frame of the server's stream, or
/// news about the connection.
#[allow(
    clippy::large_enum_variant,
    reason = "frames are the common case; boxing would allocate once per frame"
)]
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum StreamItem<C> {
    /// A `snapshot`, `snapshot_all`, `event` or `diagnostic` frame, in order and exactly
    /// once. `error` and `lagged` frames are handled by the stream and show up as
    /// [`ConnState`]s instead.
    Frame(Frame<C>),
    Status(ConnState),
}

/// The state of a stream's connection.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ConnState {
    /// The first connection is being opened.
    Connecting,
    /// The server accepted the stream; frames follow.
    Connected,
    /// The connection ended or could not be opened; the stream reconnects by itself
    /// `after` this delay, resuming after the last frame it yielded. `attempt` counts
    /// reconnections since a frame last arrived (from 1).
    Reconnecting {
        attempt: u32,
        after: Duration,
        reason: Disconnect,
    },
    /// The stream ended for good (a permanent error, or `max_attempts` failures in a
    /// row); it yields nothing more.
    GaveUp(ClientError),
}

/// Why a connection ended.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Disconnect {
    /// The server closed the connection without saying why.
    Closed,
    /// The stream fell behind the server (a `lagged` frame); it reconnects at once.
    Lagged,
    /// Connecting failed, the connection broke or went silent, or the server ended the
    /// stream with an `error` frame.
    Failed(ClientError),
}

impl fmt::Display for Disconnect {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Disconnect::Closed => f.write_str("the server closed the stream"),
            Disconnect::Lagged => f.write_str("the stream fell behind the server"),
            Disconnect::Failed(e) => fmt::Display::fmt(e, f),
        }
    }
}

/// A stream's cursor: [`Cursor`] on one runtime's streams and the host's worker streams,
/// [`HostCursor`] on the host's multiplexed stream. Sealed: these are the only two.
pub trait StreamCursor:
    sealed::Sealed + Clone + fmt::Debug + PartialEq + DeserializeOwned + Send + Sync + 'static
{
    /// The last event of `runtime_id` this cursor has seen (every event of a [`Cursor`]
    /// stream is of one runtime).
    fn position(&self, runtime_id: &str) -> Option<Cursor>;

    /// The wire form, for `?cursor=`.
    fn encode(&self) -> String;
}

impl StreamCursor for Cursor {
    fn position(&self, _runtime_id: &str) -> Option<Cursor> {
        Some(*self)
    }

    fn encode(&self) -> String {
        Cursor::encode(self)
    }
}

impl StreamCursor for HostCursor {
    fn position(&self, runtime_id: &str) -> Option<Cursor> {
        self.get(runtime_id)
    }

    fn encode(&self) -> String {
        HostCursor::encode(self)
    }
}

mod sealed {
    pub trait Sealed {}
    impl Sealed for yoi_protocol::Cursor {}
    impl Sealed for yoi_protocol::HostCursor {}
}
