//! [`Metrics`]: the counters every yoi server keeps, and the Prometheus text format
//! (0.0.4) they and each server's own figures are rendered in.

use std::collections::BTreeMap;
use std::fmt::Write;
use std::sync::Mutex;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering::Relaxed};

use axum::http::{HeaderValue, header};
use axum::response::{IntoResponse, Response};
use yoi_protocol::ErrorCode;
use yoi_runtime::{CORE_CALL_BUCKETS, StatsSnapshot};

use crate::error::ServeError;

/// Streams and commands of one server.
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

    pub fn frames_sent(&self, n: u64) {
        self.frames_sent.fetch_add(n, Relaxed);
    }

    /// Runs a command and counts its outcome.
    pub async fn count<T>(
        &self,
        command: &'static str,
        run: impl Future<Output = Result<T, ServeError>>,
    ) -> Result<T, ServeError> {
        let result = run.await;
        self.command(command, &result);
        result
    }

    /// Counts one command by outcome.
    pub fn command<T>(&self, command: &'static str, result: &Result<T, ServeError>) {
        let outcome = match result {
            Ok(_) => "ok",
            Err(e) => e.code.as_str(),
        };
        self.count_command(command, outcome);
    }

    /// Counts a command that was refused before it ran (`code`).
    pub fn command_refused(&self, command: &'static str, code: ErrorCode) {
        self.count_command(command, code.as_str());
    }

    fn count_command(&self, command: &'static str, outcome: &'static str) {
        let mut commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        *commands.entry((command, outcome)).or_default() += 1;
    }

    /// Appends the streams' and commands' families to `out`.
    pub fn render(&self, out: &mut PromText) {
        out.gauge(
            "yoi_streams_open",
            "WebSocket streams open now.",
            self.streams_open.load(Relaxed),
        );
        out.counter(
            "yoi_streams_opened_total",
            "WebSocket streams opened.",
            self.streams_opened.load(Relaxed),
        );
        out.counter(
            "yoi_stream_lagged_closes_total",
            "Streams closed because their client fell behind.",
            self.lagged_closes.load(Relaxed),
        );
        out.counter(
            "yoi_stream_frames_sent_total",
            "Frames handed to stream clients' sockets.",
            self.frames_sent.load(Relaxed),
        );
        out.family(
            "yoi_commands_total",
            "counter",
            "Client commands by outcome (ok or the error code).",
        );
        let commands = self.commands.lock().unwrap_or_else(|e| e.into_inner());
        for ((command, outcome), n) in commands.iter() {
            out.line(format_args!(
                "yoi_commands_total{{command=\"{command}\",outcome=\"{outcome}\"}} {n}"
            ));
        }
    }
}

/// A Prometheus text page being written.
#[derive(Debug, Default)]
pub struct PromText(String);

impl PromText {
    pub fn new() -> Self {
        PromText(String::with_capacity(4096))
    }

    /// `# HELP` and `# TYPE` of a family whose samples follow.
    pub fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.0, "# HELP {name} {help}\n# TYPE {name} {kind}");
    }

    /// One sample line.
    pub fn line(&mut self, line: std::fmt::Arguments<'_>) {
        let _ = self.0.write_fmt(line);
        self.0.push('\n');
    }

    pub fn gauge(&mut self, name: &str, help: &str, value: i64) {
        self.family(name, "gauge", help);
        self.line(format_args!("{name} {value}"));
    }

    pub fn counter(&mut self, name: &str, help: &str, value: u64) {
        self.family(name, "counter", help);
        self.line(format_args!("{name} {value}"));
    }

    /// The families of runtimes running in this process, labelled by runtime id:
    /// `(id, stats, last sequence number)`.
    pub fn runtimes<'a>(
        &mut self,
        runtimes: impl IntoIterator<Item = (&'a str, StatsSnapshot, u64)>,
    ) {
        let runtimes: Vec<_> = runtimes.into_iter().collect();
        let families: [Family; 6] = [
            (
                "yoi_events_appended_total",
                "counter",
                "Events appended to the runtime's event log since the process started.",
                |s, _| s.events_appended.to_string(),
            ),
            (
                "yoi_event_log_last_seq",
                "gauge",
                "Sequence number of the runtime's last event.",
                |_, last_seq| last_seq.to_string(),
            ),
            (
                "yoi_event_append_seconds_sum",
                "counter",
                "Time spent appending to the event log.",
                |s, _| seconds(s.append_nanos),
            ),
            (
                "yoi_runtime_core_faults_total",
                "counter",
                "Core faults recovered from by restoring the core.",
                |s, _| s.faults.to_string(),
            ),
            (
                "yoi_event_store_append_failures_total",
                "counter",
                "Appends the event store refused (a full disk, a failing device).",
                |s, _| s.store_failures.to_string(),
            ),
            (
                "yoi_event_store_failing",
                "gauge",
                "1 while the event store refuses appends and the runtime refuses work.",
                |s, _| u8::from(s.store_failing_since_ms.is_some()).to_string(),
            ),
        ];
        for (name, kind, help, value) in families {
            self.family(name, kind, help);
            for (id, stats, last_seq) in &runtimes {
                self.line(format_args!(
                    "{name}{{runtime=\"{id}\"}} {}",
                    value(stats, *last_seq)
                ));
            }
        }
        let name = "yoi_guest_call_seconds";
        self.family(
            name,
            "histogram",
            "Latency of calls into the runtime core (the guest).",
        );
        for (id, stats, _) in &runtimes {
            let mut cumulative = 0;
            for (i, n) in stats.core_call_buckets.iter().enumerate() {
                cumulative += n;
                let le = CORE_CALL_BUCKETS
                    .get(i)
                    .map_or_else(|| "+Inf".to_string(), |le| le.to_string());
                self.line(format_args!(
                    "{name}_bucket{{runtime=\"{id}\",le=\"{le}\"}} {cumulative}"
                ));
            }
            // `core_calls` is the buckets' total: the same as the `+Inf` bucket.
            self.line(format_args!(
                "{name}_sum{{runtime=\"{id}\"}} {}",
                seconds(stats.core_call_nanos)
            ));
            self.line(format_args!(
                "{name}_count{{runtime=\"{id}\"}} {}",
                stats.core_calls
            ));
        }
    }

    /// The page as a `/metrics` answer.
    pub fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
            )],
            self.0,
        )
            .into_response()
    }

    pub fn into_string(self) -> String {
        self.0
    }
}

/// A per-runtime family: name, type, help, value from (stats, last sequence number).
type Family = (
    &'static str,
    &'static str,
    &'static str,
    fn(&StatsSnapshot, u64) -> String,
);

fn seconds(nanos: u64) -> String {
    format!("{:.9}", nanos as f64 / 1e9)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn renders_commands_by_outcome_and_runtime_families() {
        let m = Metrics::default();
        m.command::<()>("input", &Ok(()));
        m.command::<()>("input", &Err(ServeError::new(ErrorCode::WorkerBusy, "b")));
        m.command::<()>("input", &Ok(()));
        m.command_refused("stop", ErrorCode::Unauthorized);
        m.stream_opened();
        let mut page = PromText::new();
        m.render(&mut page);
        page.runtimes([("local", StatsSnapshot::default(), 42)]);
        let text = page.into_string();
        let lines: Vec<&str> = text.lines().collect();
        for want in [
            "yoi_commands_total{command=\"input\",outcome=\"ok\"} 2",
            "yoi_commands_total{command=\"input\",outcome=\"worker_busy\"} 1",
            "yoi_commands_total{command=\"stop\",outcome=\"unauthorized\"} 1",
            "yoi_streams_open 1",
            "yoi_streams_opened_total 1",
            "yoi_event_log_last_seq{runtime=\"local\"} 42",
            "yoi_runtime_core_faults_total{runtime=\"local\"} 0",
            "yoi_guest_call_seconds_bucket{runtime=\"local\",le=\"+Inf\"} 0",
        ] {
            assert!(lines.contains(&want), "{want} missing in:\n{text}");
        }
    }
}
