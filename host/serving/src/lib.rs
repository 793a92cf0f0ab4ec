//! `yoi-serving`: what every yoi server shares (`yoi-host` and `yoi-runtime serve`).
//!
//! - **Streams** ([`Streams`], [`EventSource`], [`Visibility`]): the WebSocket event
//!   streams of DESIGN.md ("Event log, cursors, streams"). Each stream's protocol
//!   (handshake, replay, live merge, cursor outcomes, lagged, keep-alive, close) is a
//!   sans-IO state machine, unit-tested without a network; a driver runs it over an
//!   axum WebSocket. A server hands [`Streams::run`] its [`EventSource`]s (a
//!   [`LocalSource`] for a runtime in the process) and a [`Visibility`] for the client.
//! - **Errors** ([`ServeError`]): every failure a client sees, as
//!   `{"error":{"code","message"}}` with the status of its stable code; typed
//!   extractors ([`ApiJson`], [`ApiPath`], [`ApiQuery`]) turn bad requests into them.
//! - **Auth** ([`AccessToken`], [`Authenticator`]): a token file created 0600, compared
//!   in constant time, presented as a bearer token or, on WebSocket upgrades only, as
//!   `?access_token=` or a `yoi.token.<token>` subprotocol next to `yoi`.
//! - **Start-up, limits, timeouts, shutdown** ([`Endpoint`], [`Loading`], [`serve`],
//!   [`layers::around`], [`StreamLimits`], [`Shutdown`]): a private data dir, the token,
//!   the socket; runtimes loaded after serving started (`503` until then); a cap on
//!   connections and on open streams; header-read, request and stream write timeouts;
//!   one switch that stops it all.
//! - **Metrics** ([`Metrics`], [`PromText`]) and the shared config tables
//!   ([`StreamConfig`], [`HttpConfig`]).

mod auth;
mod config;
mod endpoint;
mod error;
mod extract;
mod hosts;
pub mod layers;
mod loading;
mod metrics;
mod process;
mod serve;
mod shutdown;
mod stream;
mod token;

pub use auth::{
    Authenticator, DuplicateToken, WS_PROTOCOL, WS_TOKEN_PROTOCOL_PREFIX, require_token,
};
pub use config::{
    ConfigError, HttpConfig, StreamConfig, UNQUOTED, default_data_dir, load_toml, parse_toml,
    resolve_data_dir,
};
pub use endpoint::Endpoint;
pub use error::ServeError;
pub use extract::{ApiJson, ApiPath, ApiQuery};
pub use hosts::AllowedHosts;
pub use loading::Loading;
pub use metrics::{Metrics, PromText};
pub use process::run_binary;
pub use serve::{HttpLimits, serve};
pub use shutdown::{Shutdown, ShutdownSignal};
pub use stream::{
    AllVisible, Availability, EventSource, FrameCache, LocalSource, Observed, ReplayOutcome, Scope,
    StartCursor, StreamLimits, StreamQuery, StreamSettings, Streams, Subscription, Visibility,
};
pub use token::{AccessToken, MIN_TOKEN_LEN, WeakToken, create_private_dir};
