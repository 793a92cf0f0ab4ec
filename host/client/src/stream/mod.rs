//! Self-resuming event streams: the decisions ([`resume`], sans-IO, with [`backoff`]) and
//! the socket loop around them ([`socket`]).

mod backoff;
mod item;
mod resume;
mod socket;

pub use item::{ConnState, Disconnect, StreamCursor, StreamItem};
pub use socket::EventStream;
pub(crate) use socket::StreamTarget;
