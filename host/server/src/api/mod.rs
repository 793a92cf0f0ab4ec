//! The client REST API under `/api/v1` (the WebSocket streams are in [`crate::stream`]).

pub mod runtimes;
pub mod workers;
