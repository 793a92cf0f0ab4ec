//! When and how long to wait before trying a model call again.
//!
//! Only before the first byte of an answer: a refused or reset connection, `408`, `429`
//! and `5xx` answers are tried again up to `max_retries` times, waiting what the server
//! asks (`retry-after-ms`, `retry-after` in seconds) or a doubling backoff with jitter,
//! never longer than `max_retry_wait_ms`. A server asking for longer than that is not
//! waited for: the call fails at once with its `rate_limit` error. Pure logic; the
//! provider does the waiting.

use std::time::Duration;

use reqwest::header::HeaderMap;

/// The first backoff step; each retry doubles it.
const BASE: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, Copy)]
pub(crate) struct RetryPolicy {
    pub max_retries: u32,
    pub max_wait: Duration,
}

impl RetryPolicy {
    /// The wait before trying again after failed attempt number `attempt` (0 for the
    /// first), or `None` when the call must fail now. `asked` is what the server asked
    /// for; `jitter` in `[0, 1)` spreads clients that failed together.
    pub(crate) fn wait(
        &self,
        attempt: u32,
        asked: Option<Duration>,
        jitter: f64,
    ) -> Option<Duration> {
        if attempt >= self.max_retries {
            return None;
        }
        match asked {
            Some(asked) if asked > self.max_wait => None,
            Some(asked) => Some(asked),
            None => {
                let step = BASE.saturating_mul(1 << attempt.min(16));
                // Between half the step and the whole step.
                let jittered = step.mul_f64(0.5 + 0.5 * jitter.clamp(0.0, 1.0));
                Some(jittered.min(self.max_wait))
            }
        }
    }
}

/// Whether an answer with `status` may succeed when sent again.
pub(crate) fn retryable_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

/// What the server asked for: `retry-after-ms` (OpenAI), else `retry-after` in seconds
/// (an HTTP date is not honoured: the backoff applies).
pub(crate) fn asked_wait(headers: &HeaderMap) -> Option<Duration> {
    let number = |name: &str| {
        headers
            .get(name)?
            .to_str()
            .ok()?
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|n| n.is_finite() && *n >= 0.0)
    };
    if let Some(ms) = number("retry-after-ms") {
        return Some(Duration::from_secs_f64((ms / 1e3).min(1e9)));
    }
    number("retry-after").map(|s| Duration::from_secs_f64(s.min(1e9)))
}

/// A number in `[0, 1)` that differs from call to call.
pub(crate) fn jitter() -> f64 {
    use std::hash::{BuildHasher, RandomState};
    (RandomState::new().hash_one(std::time::Instant::now()) >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;
    use reqwest::header::HeaderValue;

    const POLICY: RetryPolicy = RetryPolicy {
        max_retries: 3,
        max_wait: Duration::from_secs(10),
    };

    #[test]
    fn backoff_doubles_with_jitter_up_to_the_cap_and_the_retry_count() {
        assert_eq!(POLICY.wait(0, None, 0.0), Some(Duration::from_millis(250)));
        assert_eq!(POLICY.wait(0, None, 1.0), Some(Duration::from_millis(500)));
        assert_eq!(POLICY.wait(2, None, 1.0), Some(Duration::from_secs(2)));
        assert_eq!(POLICY.wait(3, None, 1.0), None, "retries used up");
        let capped = RetryPolicy {
            max_retries: 30,
            max_wait: Duration::from_secs(3),
        };
        assert_eq!(capped.wait(20, None, 1.0), Some(Duration::from_secs(3)));
        let none = RetryPolicy {
            max_retries: 0,
            ..POLICY
        };
        assert_eq!(none.wait(0, None, 0.5), None);
    }

    #[test]
    fn the_servers_wait_is_honoured_up_to_the_cap() {
        let asked = Some(Duration::from_secs(4));
        assert_eq!(POLICY.wait(0, asked, 0.9), asked);
        assert_eq!(POLICY.wait(0, Some(Duration::from_secs(11)), 0.9), None);
    }

    #[test]
    fn retry_headers_are_read_leniently() {
        let mut h = HeaderMap::new();
        assert_eq!(asked_wait(&h), None);
        h.insert("retry-after", HeaderValue::from_static("3"));
        assert_eq!(asked_wait(&h), Some(Duration::from_secs(3)));
        h.insert("retry-after-ms", HeaderValue::from_static("1500.5"));
        assert_eq!(asked_wait(&h), Some(Duration::from_micros(1_500_500)));
        let mut h = HeaderMap::new();
        h.insert(
            "retry-after",
            HeaderValue::from_static("Wed, 21 Oct 2015 07:28:00 GMT"),
        );
        assert_eq!(asked_wait(&h), None);
        h.insert("retry-after", HeaderValue::from_static("-1"));
        assert_eq!(asked_wait(&h), None);
    }

    #[test]
    fn only_transient_statuses_are_retried() {
        for s in [408, 429, 500, 502, 503, 504] {
            assert!(retryable_status(s), "{s}");
        }
        for s in [400, 401, 403, 404, 413, 422, 501] {
            assert!(!retryable_status(s), "{s}");
        }
    }

    #[test]
    fn jitter_is_in_range() {
        for _ in 0..100 {
            let j = jitter();
            assert!((0.0..1.0).contains(&j), "{j}");
        }
    }
}
