//! Delays between reconnection attempts: exponential, capped, with jitter.

use std::time::Duration;

use rand::rngs::SmallRng;
use rand::{Rng, SeedableRng};

/// Attempt `n` (from 1) waits a random time in `[d/2, d]`, where `d` is
/// `initial * 2^(n-1)` capped at `max`. The jitter spreads the reconnections of many
/// clients after a server restart; the lower bound keeps a retry from being immediate.
#[derive(Debug, Clone)]
pub(crate) struct Backoff {
    initial: Duration,
    max: Duration,
    rng: SmallRng,
}

impl Backoff {
    /// `seed` makes the jitter reproducible (tests); streams seed from the OS.
    pub(crate) fn new(initial: Duration, max: Duration, seed: u64) -> Self {
        Backoff {
            initial,
            max: max.max(initial),
            rng: SmallRng::seed_from_u64(seed),
        }
    }

    /// The delay before attempt `attempt` (from 1).
    pub(crate) fn delay(&mut self, attempt: u32) -> Duration {
        let doublings = attempt.saturating_sub(1).min(31);
        let ceiling = self
            .initial
            .checked_mul(1 << doublings)
            .map_or(self.max, |d| d.min(self.max));
        let ceiling_ns = u64::try_from(ceiling.as_nanos()).unwrap_or(u64::MAX);
        Duration::from_nanos(self.rng.random_range(ceiling_ns / 2..=ceiling_ns))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delays_double_up_to_the_cap_within_the_jitter_band() {
        let initial = Duration::from_millis(100);
        let max = Duration::from_secs(2);
        let mut b = Backoff::new(initial, max, 7);
        for (attempt, ceiling_ms) in [(1, 100), (2, 200), (3, 400), (4, 800), (5, 1600), (6, 2000)]
        {
            let ceiling = Duration::from_millis(ceiling_ms);
            for _ in 0..50 {
                let d = b.delay(attempt);
                assert!(d >= ceiling / 2 && d <= ceiling, "{attempt}: {d:?}");
            }
        }
        for attempt in [7, 40, u32::MAX] {
            let d = b.delay(attempt);
            assert!(d >= max / 2 && d <= max, "{attempt}: {d:?}");
        }
    }

    #[test]
    fn jitter_spreads_delays() {
        let mut b = Backoff::new(Duration::from_secs(1), Duration::from_secs(1), 1);
        let delays: std::collections::BTreeSet<_> = (0..20).map(|_| b.delay(1)).collect();
        assert!(delays.len() > 10, "{delays:?}");
    }

    #[test]
    fn zero_initial_delay_is_allowed() {
        let mut b = Backoff::new(Duration::ZERO, Duration::ZERO, 1);
        assert_eq!(b.delay(3), Duration::ZERO);
    }
}
