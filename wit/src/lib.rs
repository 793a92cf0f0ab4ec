//! The yoi contract as Rust types.
//!
//! - [`types`]: the serde (JSON) mirror of every type in `runtime.wit` (same folder).
//!   JSON is snake_case; enums with data are tagged by a `type` field.
//! - [`cursor`]: opaque stream cursors (log epoch + sequence number; one per runtime on
//!   the host's multiplexed stream).
//! - [`error`]: stable error codes and their HTTP statuses.
//! - [`wire`]: envelopes, REST bodies and WebSocket frames.
//! - [`mirror`]: [`wit_mirror!`], the `From` impls between generated WIT types and these.
//! - [`size`]: the byte estimates that the core's and the host's byte budgets count in.
//!
//! The crate depends on serde only and builds for `wasm32-wasip2`, so the runtime core
//! (inside the component) and the host share one definition of every type.

pub mod cursor;
pub mod error;
pub mod index_row;
pub mod mirror;
pub mod size;
pub mod types;
pub mod wire;

pub use cursor::{Cursor, CursorError, HostCursor, is_runtime_id};
pub use error::{ApiError, ErrorBody, ErrorCode};
pub use types::*;
pub use wire::*;
