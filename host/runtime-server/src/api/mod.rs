//! The runtime API's REST routes under `/v1` (DESIGN.md, "The runtime API"; the
//! WebSocket streams are in [`crate::stream`]).

pub mod events;
pub mod runtime;
pub mod snapshots;
pub mod workers;
