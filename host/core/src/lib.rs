//! The Core trait over a runtime core, and its native and wasm implementations.
