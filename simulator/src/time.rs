//! Simulated time: integer nanoseconds since the start of a run.

use std::fmt;

/// Nanoseconds per second.
pub const NANOS_PER_SEC: u64 = 1_000_000_000;

/// A point in simulated time, in nanoseconds since the start of the run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct SimTime(pub u64);

impl SimTime {
    /// The start of a run.
    pub const ZERO: SimTime = SimTime(0);
    /// A time that is never reached.
    pub const NEVER: SimTime = SimTime(u64::MAX);

    /// Nanoseconds since the start.
    pub fn as_nanos(self) -> u64 {
        self.0
    }

    /// Seconds since the start, for reports.
    pub fn as_secs_f64(self) -> f64 {
        self.0 as f64 / NANOS_PER_SEC as f64
    }

    /// `self + d` nanoseconds, saturating at [`SimTime::NEVER`].
    pub fn plus(self, d: u64) -> SimTime {
        SimTime(self.0.saturating_add(d))
    }
}

impl fmt::Display for SimTime {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "{}.{:06}s",
            self.0 / NANOS_PER_SEC,
            (self.0 % NANOS_PER_SEC) / 1000
        )
    }
}

/// Nanoseconds needed to move `bytes` at `rate` bytes per second (rounded up; `u64::MAX` if the rate is 0).
pub fn transfer_nanos(bytes: u64, rate: u64) -> u64 {
    if rate == 0 {
        return u64::MAX;
    }
    let n = (bytes as u128 * NANOS_PER_SEC as u128).div_ceil(rate as u128);
    n.min(u64::MAX as u128) as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn display_and_transfer() {
        assert_eq!(SimTime(12_345_678_900).to_string(), "12.345678s");
        assert_eq!(transfer_nanos(1_000, 1_000), NANOS_PER_SEC);
        assert_eq!(transfer_nanos(1, 3), 333_333_334);
        assert_eq!(transfer_nanos(1, 0), u64::MAX);
        assert_eq!(SimTime::NEVER.plus(5), SimTime::NEVER);
    }
}
