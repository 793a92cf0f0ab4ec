//! What a client can tune: timeouts, size limits and how streams reconnect.

use std::num::NonZeroU32;
use std::time::Duration;

/// Options of a [`HostClient`](crate::HostClient) or [`RuntimeClient`](crate::RuntimeClient).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientOptions {
    /// Longest a TCP connect may take (REST and streams).
    pub connect_timeout: Duration,
    /// Longest a REST call may take, connect included; also bounds a stream's WebSocket
    /// handshake.
    pub request_timeout: Duration,
    /// Largest REST answer read; a larger one is a [`BadResponse`](crate::ClientError::BadResponse).
    pub max_response_bytes: usize,
    pub stream: StreamOptions,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            connect_timeout: Duration::from_secs(5),
            request_timeout: Duration::from_secs(30),
            max_response_bytes: 64 << 20,
            stream: StreamOptions::default(),
        }
    }
}

/// How an [`EventStream`](crate::EventStream) reconnects and what it accepts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamOptions {
    /// Delay before the first retry; doubled per failed attempt.
    pub backoff_initial: Duration,
    /// Cap of the delay between retries.
    pub backoff_max: Duration,
    /// Give up after this many failed attempts in a row (`None`: never). A connection
    /// that delivers a frame resets the count.
    pub max_attempts: Option<NonZeroU32>,
    /// A connection that brings nothing (not even a ping) for this long is considered
    /// dead and replaced. Servers of yoi ping every 20 s by default.
    pub idle_timeout: Duration,
    /// Largest frame accepted (a snapshot of every worker can be large).
    pub max_frame_bytes: usize,
}

impl Default for StreamOptions {
    fn default() -> Self {
        StreamOptions {
            backoff_initial: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_attempts: None,
            idle_timeout: Duration::from_secs(60),
            max_frame_bytes: 64 << 20,
        }
    }
}
