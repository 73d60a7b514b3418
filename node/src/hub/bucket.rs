//! An egress token bucket standing in for a WAN link.

use std::sync::Mutex;
use std::time::Duration;

use tokio::time::Instant;

/// Bytes a sender takes from the bucket at a time.
pub const SLICE: usize = 64 * 1024;

/// A token bucket shared by every response body: the total send rate is at most `rate`
/// bytes per second after an initial burst.
///
/// A taker may drive the balance negative; it then sleeps until the debt is paid, so
/// concurrent takers queue behind each other and the aggregate rate stays exact.
#[derive(Debug)]
pub struct TokenBucket {
    rate: u64,
    burst: u64,
    state: Mutex<State>,
}

#[derive(Debug)]
struct State {
    tokens: f64,
    last: Instant,
}

impl TokenBucket {
    /// A bucket refilling at `rate` bytes per second (at least 1), starting full.
    pub fn new(rate: u64) -> Self {
        let rate = rate.max(1);
        let burst = (4 * SLICE as u64).max(rate / 100);
        TokenBucket {
            rate,
            burst,
            state: Mutex::new(State {
                tokens: burst as f64,
                last: Instant::now(),
            }),
        }
    }

    /// The refill rate in bytes per second.
    pub fn rate(&self) -> u64 {
        self.rate
    }

    /// Takes `n` bytes at time `now` and returns how long the taker must wait before sending.
    pub fn reserve(&self, n: u64, now: Instant) -> Duration {
        let mut state = match self.state.lock() {
            Ok(guard) => guard,
            Err(poisoned) => poisoned.into_inner(),
        };
        let elapsed = now.saturating_duration_since(state.last).as_secs_f64();
        state.last = state.last.max(now);
        state.tokens = (state.tokens + elapsed * self.rate as f64).min(self.burst as f64);
        state.tokens -= n as f64;
        if state.tokens >= 0.0 {
            Duration::ZERO
        } else {
            Duration::from_secs_f64(-state.tokens / self.rate as f64)
        }
    }

    /// Takes `n` bytes, sleeping as long as the link needs to carry them.
    pub async fn take(&self, n: u64) {
        let wait = self.reserve(n, Instant::now());
        if !wait.is_zero() {
            tokio::time::sleep(wait).await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn burst_then_rate() {
        let bucket = TokenBucket::new(1_000_000);
        let t0 = Instant::now();
        let burst = bucket.burst;
        assert_eq!(bucket.reserve(burst, t0), Duration::ZERO);
        let wait = bucket.reserve(500_000, t0);
        assert!((wait.as_secs_f64() - 0.5).abs() < 1e-6, "{wait:?}");
        let wait = bucket.reserve(500_000, t0);
        assert!(
            (wait.as_secs_f64() - 1.0).abs() < 1e-6,
            "debt accumulates: {wait:?}"
        );
        let later = t0 + Duration::from_secs(1);
        let wait = bucket.reserve(0, later);
        assert!(
            (wait.as_secs_f64()).abs() < 1e-6,
            "paid after 1 s: {wait:?}"
        );
    }

    #[test]
    fn idle_refill_is_capped_at_burst() {
        let bucket = TokenBucket::new(1_000);
        let t0 = Instant::now() + Duration::from_secs(3600);
        assert_eq!(bucket.reserve(bucket.burst, t0), Duration::ZERO);
        assert!(bucket.reserve(1_000, t0) >= Duration::from_millis(999));
    }
}
