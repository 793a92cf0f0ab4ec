//! Counters a runtime keeps about itself, for `/metrics` and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

/// Monotonic counters; cheap to update from the actor thread, read from anywhere.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    events_appended: AtomicU64,
    append_nanos: AtomicU64,
    commits: AtomicU64,
    core_calls: AtomicU64,
    core_call_nanos: AtomicU64,
    completions: AtomicU64,
    faults: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events written to the log.
    pub events_appended: u64,
    /// Time spent appending (store write and commit included).
    pub append_nanos: u64,
    /// Append transactions.
    pub commits: u64,
    /// Calls into the core (commands, pulls, deliveries).
    pub core_calls: u64,
    /// Time spent in those calls.
    pub core_call_nanos: u64,
    /// Completions delivered to the core.
    pub completions: u64,
    /// Core faults recovered from (or not).
    pub faults: u64,
}

impl RuntimeStats {
    pub(crate) fn appended(&self, events: usize, took: Duration) {
        self.events_appended.fetch_add(events as u64, Relaxed);
        self.append_nanos.fetch_add(took.as_nanos() as u64, Relaxed);
        self.commits.fetch_add(1, Relaxed);
    }

    pub(crate) fn core_call(&self, took: Duration) {
        self.core_calls.fetch_add(1, Relaxed);
        self.core_call_nanos
            .fetch_add(took.as_nanos() as u64, Relaxed);
    }

    pub(crate) fn completions_delivered(&self, n: usize) {
        self.completions.fetch_add(n as u64, Relaxed);
    }

    pub(crate) fn fault(&self) {
        self.faults.fetch_add(1, Relaxed);
    }

    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            events_appended: self.events_appended.load(Relaxed),
            append_nanos: self.append_nanos.load(Relaxed),
            commits: self.commits.load(Relaxed),
            core_calls: self.core_calls.load(Relaxed),
            core_call_nanos: self.core_call_nanos.load(Relaxed),
            completions: self.completions.load(Relaxed),
            faults: self.faults.load(Relaxed),
        }
    }
}
