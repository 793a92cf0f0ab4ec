//! Whether the event store takes appends, and when the actor tries again after it did
//! not (a full disk, a failing device).
//!
//! A failed append is followed by a core restore; if the store also refuses the events
//! of that restore, the runtime stops accepting work instead of restoring in a loop: it
//! keeps those events, refuses commands and reads with `runtime_unavailable`, and tries
//! the append again after a backoff that doubles up to [`MAX_RETRY`].

use std::time::{Duration, Instant};

use yoi_protocol::EventRecord;

use crate::actor::PendingIndex;
use crate::error::RuntimeError;

/// First wait before the store is tried again.
pub(crate) const FIRST_RETRY: Duration = Duration::from_millis(100);
/// Longest wait between two tries.
pub(crate) const MAX_RETRY: Duration = Duration::from_secs(30);

/// Events to append and the worker-index changes that go with them (`None`: the index is
/// left behind and rebuilt at the next open).
#[derive(Debug, Clone)]
pub(crate) struct Unstored {
    pub events: Vec<EventRecord>,
    pub index: Option<PendingIndex>,
}

#[derive(Debug, Default)]
pub(crate) struct StoreHealth {
    failing: Option<Failing>,
}

#[derive(Debug)]
struct Failing {
    since_ms: u64,
    error: String,
    tries: u32,
    retry_at: Instant,
    unstored: Option<Unstored>,
}

impl StoreHealth {
    pub fn is_failing(&self) -> bool {
        self.failing.is_some()
    }

    /// The store refused `unstored`: keep it and try again after the backoff.
    pub fn failed(&mut self, error: String, unstored: Unstored, now: Instant, now_ms: u64) {
        let (since_ms, tries, kept) = match self.failing.take() {
            Some(f) => (f.since_ms, f.tries, f.unstored),
            None => (now_ms, 0, None),
        };
        let unstored = match kept {
            // A second batch kept behind the first: their index changes cannot be
            // merged, so the index is left to the next open to rebuild.
            Some(mut first) => {
                first.events.extend(unstored.events);
                first.index = None;
                first
            }
            None => unstored,
        };
        let tries = tries.saturating_add(1);
        self.failing = Some(Failing {
            since_ms,
            error,
            tries,
            retry_at: now + backoff(tries),
            unstored: Some(unstored),
        });
    }

    /// When to try again, if the store is failing.
    pub fn retry_at(&self) -> Option<Instant> {
        self.failing.as_ref().map(|f| f.retry_at)
    }

    /// What to append now that the backoff has passed (`None` while it has not, or when
    /// the store is healthy). The caller reports the outcome with [`failed`] or
    /// [`recovered`].
    ///
    /// [`failed`]: Self::failed
    /// [`recovered`]: Self::recovered
    pub fn due(&mut self, now: Instant) -> Option<Unstored> {
        let failing = self.failing.as_mut()?;
        if now < failing.retry_at {
            return None;
        }
        Some(failing.unstored.take().unwrap_or(Unstored {
            events: Vec::new(),
            index: None,
        }))
    }

    pub fn recovered(&mut self) {
        self.failing = None;
    }

    /// Milliseconds since the epoch at which the store began failing, if it is.
    pub fn failing_since_ms(&self) -> Option<u64> {
        self.failing.as_ref().map(|f| f.since_ms)
    }

    /// The answer to a command or read while the store is failing.
    pub fn refusal(&self) -> Option<RuntimeError> {
        self.failing.as_ref().map(|f| {
            RuntimeError::StoreUnavailable(format!(
                "the event store refuses appends ({}); the runtime retries by itself and \
                 accepts commands again once it can store them",
                f.error
            ))
        })
    }
}

/// The wait after the `tries`-th failed try in a row.
fn backoff(tries: u32) -> Duration {
    FIRST_RETRY
        .saturating_mul(1u32 << tries.saturating_sub(1).min(16))
        .min(MAX_RETRY)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn batch(n: usize) -> Unstored {
        Unstored {
            events: (0..n)
                .map(|_| EventRecord {
                    worker_id: None,
                    at_ms: 0,
                    event: yoi_protocol::Event::Diagnostic {
                        level: yoi_protocol::Level::Info,
                        code: "x".into(),
                        message: String::new(),
                    },
                })
                .collect(),
            index: Some(PendingIndex::default()),
        }
    }

    #[test]
    fn the_backoff_doubles_up_to_its_cap() {
        assert_eq!(backoff(1), FIRST_RETRY);
        assert_eq!(backoff(2), FIRST_RETRY * 2);
        assert_eq!(backoff(4), FIRST_RETRY * 8);
        assert_eq!(backoff(40), MAX_RETRY);
    }

    #[test]
    fn a_failing_store_keeps_what_it_refused_until_the_retry_is_due() {
        let mut health = StoreHealth::default();
        assert!(health.refusal().is_none());
        let t0 = Instant::now();
        health.failed("disk full".into(), batch(2), t0, 1_000);
        assert_eq!(health.failing_since_ms(), Some(1_000));
        assert!(health.refusal().unwrap().to_string().contains("disk full"));
        assert!(health.due(t0).is_none(), "not before the backoff");
        let kept = health.due(t0 + FIRST_RETRY).expect("due after the backoff");
        assert_eq!(kept.events.len(), 2);
        assert!(kept.index.is_some());

        // Refused again: the wait doubles, the first failure time stays.
        health.failed("disk full".into(), kept, t0 + FIRST_RETRY, 2_000);
        assert_eq!(health.failing_since_ms(), Some(1_000));
        assert_eq!(health.retry_at(), Some(t0 + FIRST_RETRY + FIRST_RETRY * 2));
        health.recovered();
        assert!(!health.is_failing());
        assert!(health.due(t0 + MAX_RETRY).is_none());
    }

    #[test]
    fn a_second_refused_batch_joins_the_first_without_its_index() {
        let mut health = StoreHealth::default();
        let t0 = Instant::now();
        health.failed("full".into(), batch(1), t0, 0);
        health.failed("full".into(), batch(3), t0, 0);
        let kept = health.due(t0 + MAX_RETRY).unwrap();
        assert_eq!(kept.events.len(), 4);
        assert!(kept.index.is_none());
    }
}
