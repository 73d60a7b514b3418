//! The hub poll schedule: one poll per period with jitter, exponential back-off after a
//! failure, and postponement when the farm passed the release on.

use std::time::Duration;

use super::FollowerConfig;
use crate::agent::{Rng, Time, mix64};

/// When the next hub poll is due. Invariant: at most one poll is in flight, and no poll is
/// due while one is.
#[derive(Debug)]
pub(super) struct PollSchedule {
    period: Option<Duration>,
    first_backoff: Duration,
    max_backoff: Duration,
    backoff: Duration,
    at: Time,
    polling: bool,
    /// No poll has been answered yet.
    first: bool,
    rng: Rng,
}

impl PollSchedule {
    /// A schedule whose first poll is due at once.
    pub(super) fn new(cfg: &FollowerConfig, now: Time) -> Self {
        PollSchedule {
            period: cfg.poll_interval,
            first_backoff: cfg.poll_backoff,
            max_backoff: cfg.poll_backoff_max.max(cfg.poll_backoff),
            backoff: cfg.poll_backoff,
            at: now,
            polling: false,
            first: true,
            rng: Rng::new(mix64(cfg.seed ^ 0x706f_6c6c)),
        }
    }

    /// When the next poll is due, if one can be.
    pub(super) fn due(&self) -> Option<Time> {
        (self.period.is_some() && !self.polling).then_some(self.at)
    }

    /// Starts the poll if it is due at `now`.
    pub(super) fn take_due(&mut self, now: Time) -> bool {
        if self.due().is_some_and(|t| t <= now) {
            self.polling = true;
            return true;
        }
        false
    }

    /// The hub answered: the next poll is a period away. True for the first answer since
    /// the start.
    pub(super) fn succeeded(&mut self, now: Time) -> bool {
        self.polling = false;
        self.backoff = self.first_backoff;
        self.at = self.next(now);
        std::mem::replace(&mut self.first, false)
    }

    /// The hub did not answer: try again after the back-off, which doubles.
    pub(super) fn failed(&mut self, now: Time) {
        self.polling = false;
        self.at = now + self.backoff;
        self.backoff = (self.backoff * 2).min(self.max_backoff);
    }

    /// The release arrived from elsewhere: the next poll is a period from now. False when no
    /// poll was put off (one is in flight, or there are none).
    pub(super) fn defer(&mut self, now: Time) -> bool {
        if self.polling || self.period.is_none() {
            return false;
        }
        self.at = self.next(now);
        true
    }

    /// One period from `now`, with ±20 % jitter so a farm's polls spread out.
    fn next(&mut self, now: Time) -> Time {
        let period = self.period.unwrap_or_default();
        let jitter = 0.8 + 0.4 * self.rng.below(1000) as f64 / 1000.0;
        now + period.mul_f64(jitter)
    }
}
