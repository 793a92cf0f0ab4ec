//! The effect driver: model providers and sandboxed tools.
