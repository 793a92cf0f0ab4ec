//! Host counters and the `/metrics` page (Prometheus text format 0.0.4).

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use yoi_protocol::ErrorCode;
use yoi_runtime::CORE_CALL_BUCKETS;

use crate::error::HostError;
use crate::registry::{RuntimeRegistry, SourceStats};

#[derive(Debug, Default)]
pub struct Metrics {
    streams_open: AtomicI64,
    streams_opened: AtomicU64,
    lagged_closes: AtomicU64,
    frames_sent: AtomicU64,
    /// `(command, outcome)` → count; outcome is `ok` or an error code.
    commands: Mutex<BTreeMap<(&'static str, &'static str), u64>>,
}

impl Metrics {
    pub fn stream_opened(&self) {
        self.streams_open.fetch_add(1, Relaxed);
        self.streams_opened.fetch_add(1, Relaxed);
    }

    pub fn stream_closed(&self) {
        self.streams_open.fetch_sub(1, Relaxed);
    }

    pub fn streams_open(&self) -> i64 {
        self.streams_open.load(Relaxed)
    }

    pub fn lagged(&self) {
        self.lagged_closes.fetch_add(1, Relaxed);
    }

    pub fn lagged_closes(&self) -> u64 {
        self.lagged_closes.load(Relaxed)
    }

    pub fn frames_sent(&self, n: u64) {
        self.frames_sent.fetch_add(n, Relaxed);
    }

    /// Counts one command by outcome.
    pub fn command<T>(&self, command: &'static str, result: &Result<T, HostError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        *commands.entry((command, outcome)).or_default() += 1;
    }

    /// Counts a command that was refused before it ran (`code`).
    pub fn command_refused(&self, command: &'static str, code: ErrorCode) {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        *commands.entry((command, code.as_str())).or_default() += 1;
    }

    /// The Prometheus text page.
    pub fn render(&self, registry: Option<&RuntimeRegistry>) -> String {
        let mut out = String::with_capacity(4096);
        let o = &mut out;
        let gauge = |o: &mut String, name: &str, help: &str, value: i64| {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} gauge\n{name} {value}"
            );
        };
        let counter = |o: &mut String, name: &str, help: &str, value: u64| {
            let _ = writeln!(
                o,
                "# HELP {name} {help}\n# TYPE {name} counter\n{name} {value}"
            );
        };
        gauge(
            o,
            "yoi_host_ready",
            "1 once every runtime is loaded.",
            i64::from(registry.is_some()),
        );
        gauge(
            o,
            "yoi_streams_open",
            "WebSocket streams open now.",
            self.streams_open.load(Relaxed),
        );
        counter(
            o,
            "yoi_streams_opened_total",
            "WebSocket streams opened.",
            self.streams_opened.load(Relaxed),
        );
        counter(
            o,
            "yoi_stream_lagged_closes_total",
            "Streams closed because their client fell behind.",
            self.lagged_closes.load(Relaxed),
        );
        counter(
            o,
            "yoi_stream_frames_sent_total",
            "Frames handed to stream clients' sockets.",
            self.frames_sent.load(Relaxed),
        );
        let _ = writeln!(
            o,
            "# HELP yoi_commands_total Client commands by outcome (ok or the error code).\n\
             # TYPE yoi_commands_total counter"
        );
        {
            let commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
            for ((command, outcome), n) in commands.iter() {
                let _ = writeln!(
                    o,
                    "yoi_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}} {n}"
                );
            }
        }
        let Some(registry) = registry else {
            return out;
        };
        let stats: Vec<(String, SourceStats)> =
            registry.all().map(|r| (r.id.clone(), r.stats())).collect();
        let families: [Family; 4] = [
            (
                "yoi_events_appended_total",
                "counter",
                "Events appended to the runtime's event log since the host started.",
                |s| s.runtime.events_appended.to_string(),
            ),
            (
                "yoi_event_log_last_seq",
                "gauge",
                "Sequence number of the runtime's last event.",
                |s| s.last_seq.to_string(),
            ),
            (
                "yoi_event_append_seconds_sum",
                "counter",
                "Time spent appending to the event log.",
                |s| seconds(s.runtime.append_nanos),
            ),
            (
                "yoi_runtime_core_faults_total",
                "counter",
                "Guest faults recovered from by restoring the core.",
                |s| s.runtime.faults.to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
            for (id, s) in &stats {
                let _ = writeln!(out, "{name}{{runtime=\"{id}\"}} {}", value(s));
            }
        }
        let name = "yoi_guest_call_seconds";
        let _ = writeln!(
            out,
            "# HELP {name} Latency of calls into the runtime core (the guest).\n\
             # TYPE {name} histogram"
        );
        for (id, s) in &stats {
            let r = &s.runtime;
            let mut cumulative = 0;
            for (i, n) in r.core_call_buckets.iter().enumerate() {
                cumulative += n;
                let le = CORE_CALL_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |le| le.to_string());
                let _ = writeln!(
                    out,
                    "{name}_bucket{{runtime=\"{id}\",le=\"{le}\"}} {cumulative}"
                );
            }
            // `core_calls` is the buckets' total: the same as the `+Inf` bucket.
            let _ = writeln!(
                out,
                "{name}_sum{{runtime=\"{id}\"}} {}\n{name}_count{{runtime=\"{id}\"}} {}",
                seconds(r.core_call_nanos),
                r.core_calls
            );
        }
        out
    }
}

/// A per-runtime metric: name, type, help, value.
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&SourceStats) -> String,
);

fn seconds(nanos: u64) -> String {
    format!("{:.9}", nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_commands_by_outcome() {
        let m = Metrics::default();
        m.command::<()>("input", &Ok(()));
        m.command::<()>("input", &Err(HostError::new(ErrorCode::WorkerBusy, "b")));
        m.command::<()>("input", &Ok(()));
        m.stream_opened();
        let text = m.render(None);
        assert!(text.contains("yoi_commands_total{command=\"input\",outcome=\"ok\"} 2"));
        assert!(text.contains("yoi_commands_total{command=\"input\",outcome=\"worker_busy\"} 1"));
        assert!(text.contains("yoi_streams_open 1"));
        assert!(text.contains("yoi_host_ready 0"));
    }
}
