//! The effect driver: model providers and tools.
