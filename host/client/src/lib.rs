//! `yoi-client`: what every client of yoi uses to talk to `yoi-host` (the host API,
//! `/api/v1/…`) or to a `yoi-runtime serve` (the runtime API, `/v1/…`).
//!
//! - **Typed REST**: [`HostClient`] (runtimes, and per runtime a [`HostRuntime`]) and
//!   [`RuntimeClient`]; both runtime handles are one [`RuntimeApi`], so a worker command
//!   is the same call whichever way the runtime is reached. Answers are
//!   [`yoi_protocol`] types; failures one [`ClientError`] with the server's stable
//!   [`ErrorCode`](yoi_protocol::ErrorCode).
//! - **Self-resuming streams**: [`EventStream`] yields the server's frames exactly once
//!   and in order, plus [`ConnState`]s; it reconnects after any disconnect (exponential
//!   backoff with jitter) from the last cursor it yielded, drops duplicates by sequence
//!   number (per runtime on the host's multiplexed stream), reconnects at once after
//!   `lagged`, passes `cursor_expired` / `cursor_unknown` diagnostics through and
//!   restarts from the fresh snapshot that follows, and ends with
//!   [`ConnState::GaveUp`] on a permanent error.
//! - **Local discovery**: [`HostClient::discover`] finds the local host and its token
//!   ([`discover_local`]).
//!
//! No server code is linked: no axum, no `yoi-host`, no wasmtime.
//!
//! ```no_run
//! use yoi_client::{ConnState, HostClient, StreamItem};
//! use yoi_protocol::{Frame, Input, WorkerSpec};
//!
//! # async fn demo() -> Result<(), yoi_client::ClientError> {
//! let host = HostClient::discover()?;
//! let local = host.runtime("local");
//! let spec = WorkerSpec {
//!     name: "demo".into(),
//!     model: "scripted".into(),
//!     system_prompt: None,
//!     tools: vec![],
//!     max_steps: None,
//!     context_tokens: None,
//! };
//! let worker = local.create_worker(&spec).await?;
//! let mut stream = local.worker_stream(&worker.id, None);
//! local
//!     .send_input(&worker.id, &Input { text: "hello".into(), request_id: None })
//!     .await?;
//! while let Some(item) = stream.next().await {
//!     match item {
//!         StreamItem::Frame(Frame::Event { seq, event, .. }) => println!("{seq}: {event:?}"),
//!         StreamItem::Frame(other) => println!("{other:?}"),
//!         StreamItem::Status(ConnState::GaveUp(e)) => eprintln!("stream ended: {e}"),
//!         StreamItem::Status(state) => eprintln!("{state:?}"),
//!     }
//! }
//! # Ok(()) }
//! ```
//!
//! # Decisions
//!
//! - **Plain HTTP only**: the client has no TLS (`https://` URLs are refused with a clear
//!   error); put a TLS-terminating proxy in front of a remote runtime if it needs one.
//!   Environment proxy variables are ignored, since streams could not follow them.
//! - **No secret in any error**: errors keep only the `Display` of transport errors
//!   (hyper's `Debug` names the peer address) and never the request URL; `Debug` of
//!   clients and streams shows neither URL nor token.
//! - **`error` and `lagged` frames are the stream's business**: they become a
//!   reconnection or [`ConnState::GaveUp`], not items. Transient codes (unreachable,
//!   timeout, `shutting_down`, `runtime_unavailable`, `internal`, `limit_exceeded`) are
//!   retried; every other code, an undecodable frame and a binary message end the
//!   stream ([`ClientError::is_transient`]).
//! - **A connection that delivers a frame resets the backoff**; one that is accepted but
//!   ends before any frame keeps backing off, so a server that accepts and fails at once
//!   is not hammered.
//! - **Pull, not push**: a stream reads its socket only inside [`EventStream::next`], so
//!   it buffers at most one frame; a consumer that stalls makes the server close it as
//!   `lagged`, and it resumes from its cursor.
//! - **Liveness**: a stream that hears nothing (not even a ping) for
//!   [`StreamOptions::idle_timeout`] reconnects; REST calls and handshakes are bounded by
//!   [`ClientOptions`]' timeouts, REST answers by `max_response_bytes`.

mod direct;
mod discover;
mod error;
mod host;
mod options;
mod runtime_api;
mod stream;
mod transport;

pub use discover::{LocalHost, TOKEN_FILE, discover_local};
pub use error::ClientError;
pub use host::HostClient;
pub use options::{ClientOptions, StreamOptions};
pub use runtime_api::{Direct, HostRuntime, RuntimeApi, RuntimeClient, ViaHost};
pub use stream::{ConnState, Disconnect, EventStream, StreamCursor, StreamItem};
