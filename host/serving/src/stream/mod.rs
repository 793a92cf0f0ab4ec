//! WebSocket event streams: one stream's protocol as a sans-IO `Session` state
//! machine, the driver that runs it over a socket and its [`EventSource`]s, and
//! [`Streams`], which every server uses to accept, run, limit and shut down its streams.
//!
//! A stream is one task that owns its socket: the driver answers the session's requests
//! from the sources, writes what it queues, and feeds it live envelopes, client messages,
//! timer expiries and shutdown. The protocol (handshake, replay, live merge, cursor
//! outcomes, lagged, keep-alive, close) is all in the session and unit-tested without a
//! network against an in-memory source.

mod cache;
mod driver;
mod frames;
mod live;
mod local;
mod notices;
mod position;
mod query;
mod service;
mod session;
mod slots;
mod socket;
mod source;
mod subscription;
mod view;

pub use cache::FrameCache;
pub use local::LocalSource;
pub use query::StreamQuery;
pub use service::{StreamSettings, Streams};
pub use session::{Scope, StartCursor};
pub use slots::StreamLimits;
pub use source::{Availability, EventSource, ReplayOutcome};
pub use subscription::Subscription;
pub use view::{AllVisible, Observed, Visibility};
