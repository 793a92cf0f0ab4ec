//! Counters a runtime keeps about itself, for `/metrics` and benchmarks.

use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::Duration;

use yoi_eventlog::LogStats;

/// Upper bounds (seconds) of the buckets of the core-call latency histogram; a last,
/// unbounded bucket follows. Calls are meant to take microseconds; the tail shows a
/// loaded machine or a guest near its deadline.
pub const CORE_CALL_BUCKETS: [f64; 12] = [
    5e-6, 10e-6, 25e-6, 50e-6, 100e-6, 250e-6, 500e-6, 1e-3, 2.5e-3, 10e-3, 100e-3, 1.0,
];

/// Monotonic counters; cheap to update from the actor thread, read from anywhere.
#[derive(Debug, Default)]
pub struct RuntimeStats {
    core_call_nanos: AtomicU64,
    /// Core calls per latency bucket (not cumulative), the last one unbounded; their sum
    /// is the number of calls.
    core_call_buckets: [AtomicU64; CORE_CALL_BUCKETS.len() + 1],
    completions: AtomicU64,
    deliveries: AtomicU64,
    faults: AtomicU64,
    workers: AtomicU64,
    live_workers: AtomicU64,
    resident_workers: AtomicU64,
    resident_bytes: AtomicU64,
    activations: AtomicU64,
    store_failures: AtomicU64,
    /// Milliseconds since the epoch when the store began refusing appends; 0 while it
    /// takes them.
    store_failing_since_ms: AtomicU64,
}

/// A copy of the counters at one moment.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Events committed to the log. Taken from the log, which counts them before it
    /// publishes them: an observer that has seen an event sees it counted.
    pub events_appended: u64,
    /// Time spent appending: the store write and commit, then publication.
    pub append_nanos: u64,
    /// Append transactions committed.
    pub commits: u64,
    /// Calls into the core (commands, pulls, deliveries).
    pub core_calls: u64,
    /// Time spent in those calls.
    pub core_call_nanos: u64,
    /// Core calls per latency bucket of [`CORE_CALL_BUCKETS`] (not cumulative), the last
    /// one for slower calls.
    pub core_call_buckets: [u64; CORE_CALL_BUCKETS.len() + 1],
    /// Completions delivered to the core.
    pub completions: u64,
    /// `deliver` calls that delivered them (completions are delivered in batches).
    pub deliveries: u64,
    /// Core faults recovered from (or not).
    pub faults: u64,
    /// What the core held after the last batch (its own accounting): workers, live
    /// (not stopped) workers, resident workers and their estimated transcript bytes.
    pub workers: u64,
    pub live_workers: u64,
    pub resident_workers: u64,
    pub resident_bytes: u64,
    /// Passivated workers made resident again (for a command) since the runtime opened.
    pub activations: u64,
    /// Appends the event store refused (each one retried or answered as an error).
    pub store_failures: u64,
    /// Since when (milliseconds since the epoch) the store refuses appends and the
    /// runtime refuses work; `None` while it takes them.
    pub store_failing_since_ms: Option<u64>,
}

impl RuntimeStats {
    pub(crate) fn core_call(&self, took: Duration) {
        self.core_call_nanos
            .fetch_add(took.as_nanos() as u64, Relaxed);
        let seconds = took.as_secs_f64();
        let bucket = CORE_CALL_BUCKETS
            .iter()
            .position(|&le| seconds <= le)
            .unwrap_or(CORE_CALL_BUCKETS.len());
        self.core_call_buckets[bucket].fetch_add(1, Relaxed);
    }

    pub(crate) fn completions_delivered(&self, n: usize) {
        self.completions.fetch_add(n as u64, Relaxed);
        self.deliveries.fetch_add(1, Relaxed);
    }

    pub(crate) fn fault(&self) {
        self.faults.fetch_add(1, Relaxed);
    }

    pub(crate) fn activation(&self) {
        self.activations.fetch_add(1, Relaxed);
    }

    pub(crate) fn store_failure(&self) {
        self.store_failures.fetch_add(1, Relaxed);
    }

    pub(crate) fn store_failing(&self, since_ms: Option<u64>) {
        self.store_failing_since_ms
            .store(since_ms.map_or(0, |ms| ms.max(1)), Relaxed);
    }

    pub(crate) fn residency(&self, r: yoi_protocol::Residency) {
        self.workers.store(r.workers.into(), Relaxed);
        self.live_workers.store(r.live_workers.into(), Relaxed);
        self.resident_workers
            .store(r.resident_workers.into(), Relaxed);
        self.resident_bytes.store(r.resident_bytes, Relaxed);
    }

    /// The runtime's counters with the write-side counters of its event log.
    pub fn snapshot(&self, log: LogStats) -> StatsSnapshot {
        let core_call_buckets: [u64; CORE_CALL_BUCKETS.len() + 1] =
            std::array::from_fn(|i| self.core_call_buckets[i].load(Relaxed));
        StatsSnapshot {
            events_appended: log.events_appended,
            append_nanos: log.store_write_nanos + log.publish_nanos,
            commits: log.commits,
            core_calls: core_call_buckets.iter().sum(),
            core_call_nanos: self.core_call_nanos.load(Relaxed),
            core_call_buckets,
            completions: self.completions.load(Relaxed),
            deliveries: self.deliveries.load(Relaxed),
            faults: self.faults.load(Relaxed),
            workers: self.workers.load(Relaxed),
            live_workers: self.live_workers.load(Relaxed),
            resident_workers: self.resident_workers.load(Relaxed),
            resident_bytes: self.resident_bytes.load(Relaxed),
            activations: self.activations.load(Relaxed),
            store_failures: self.store_failures.load(Relaxed),
            store_failing_since_ms: Some(self.store_failing_since_ms.load(Relaxed))
                .filter(|&ms| ms != 0),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn core_calls_land_in_their_latency_bucket() {
        let stats = RuntimeStats::default();
        for micros in [1, 5, 6, 700, 2_000_000] {
            stats.core_call(Duration::from_micros(micros));
        }
        let s = stats.snapshot(LogStats::default());
        assert_eq!(s.core_calls, 5);
        // <= 5 µs: two calls; <= 10 µs: one; <= 1 ms: one; beyond 1 s: one.
        assert_eq!(s.core_call_buckets[0], 2);
        assert_eq!(s.core_call_buckets[1], 1);
        assert_eq!(s.core_call_buckets[7], 1);
        assert_eq!(s.core_call_buckets[CORE_CALL_BUCKETS.len()], 1);
        assert_eq!(s.core_call_buckets.iter().sum::<u64>(), 5);
    }
}
