//! Counters of the policy layer, kept across reloads, for the host's `/metrics`.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::call::CallError;

/// What the policy layer counts. One value lives as long as the host; every chain built
/// for it shares it.
#[derive(Debug, Default)]
pub struct PolicyMetrics {
    plugin_calls: AtomicU64,
    cache_hits: AtomicU64,
    /// Failed calls by plugin name and call (`init`, `observe`, `command`). Rare: a
    /// mutex is fine.
    failures: Mutex<BTreeMap<(String, &'static str), u64>>,
}

/// A copy of the counters.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct MetricsSnapshot {
    /// Calls into plugins (`observe` and `command`).
    pub plugin_calls: u64,
    /// Event decisions answered from the cache.
    pub cache_hits: u64,
    /// Failed calls, by plugin and call.
    pub failures: Vec<FailureCount>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FailureCount {
    pub plugin: String,
    /// `init`, `observe` or `command`.
    pub call: &'static str,
    pub count: u64,
}

impl PolicyMetrics {
    pub fn snapshot(&self) -> MetricsSnapshot {
        let failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
        MetricsSnapshot {
            plugin_calls: self.plugin_calls.load(Ordering::Relaxed),
            cache_hits: self.cache_hits.load(Ordering::Relaxed),
            failures: failures
                .iter()
                .map(|((plugin, call), count)| FailureCount {
                    plugin: plugin.clone(),
                    call,
                    count: *count,
                })
                .collect(),
        }
    }

    pub(crate) fn plugin_call(&self) {
        self.plugin_calls.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn cache_hit(&self) {
        self.cache_hits.fetch_add(1, Ordering::Relaxed);
    }

    /// Counts a failed call and logs it: the first time, then at every power of two, so a
    /// plugin failing on every event cannot flood the log.
    pub(crate) fn failure(&self, plugin: &str, call: &'static str, error: &CallError) {
        let count = {
            let mut failures = self.failures.lock().unwrap_or_else(|e| e.into_inner());
            let count = failures.entry((plugin.to_owned(), call)).or_default();
            *count += 1;
            *count
        };
        if count.is_power_of_two() {
            tracing::warn!(
                plugin,
                call,
                failures = count,
                %error,
                "policy plugin failed; failing closed (logged at every power of two)"
            );
        }
    }
}
