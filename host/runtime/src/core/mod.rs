//! The Core trait and its native and wasm implementations.
