//! When this node polls the hub for the channel's release.
//!
//! Time is cut into slots of one poll period, counted in wall-clock time so that every node
//! of the farm agrees on them. In each slot the members are ranked by a rendezvous hash of
//! (member, slot): the first polls at a random point of the slot's first half whatever it
//! hears, and passes the answer on to gossip; the second polls in the second half unless it
//! has heard the first pass one release on (by author, not by content: a replayed copy from
//! anyone else covers nothing, and a first that passes on more than once in a slot is
//! replaying, not polling). Everyone else polls only when the farm has passed
//! nothing on for two periods, or when its release nears expiry. So a farm asks the hub about
//! once per period whatever its size, and no peer can stop it: gossip can cover only the
//! second, never the first, and the first changes every slot.
//!
//! Besides: one poll at start (the node needs the newest release to boot), back-off after
//! failures, and at most one poll in flight.

use std::collections::BTreeSet;
use std::time::Duration;

use super::FollowerConfig;
use crate::agent::{NodeId, Rng, Time, mix64};

/// Ranks that poll each slot.
const DUTY_RANKS: u32 = 2;
/// Periods without any poll passed on after which every node polls on its own.
const STALE_PERIODS: u32 = 2;

/// The poll schedule. Invariant: at most one poll in flight, and none is due while one is.
#[derive(Debug)]
pub(super) struct PollSchedule {
    period: Option<Duration>,
    me: NodeId,
    first_backoff: Duration,
    max_backoff: Duration,
    backoff: Duration,
    /// The start-up poll has not been answered yet.
    start_up: bool,
    polling: bool,
    /// Retry after a failed poll.
    retry_at: Option<Time>,
    /// The slot planned and this node's rank in it.
    slot: Option<u64>,
    rank: u32,
    /// This node polls in the slot whatever its rank (stale, or its release nears expiry).
    must: bool,
    /// When this node polls in the slot, if it does.
    poll_at: Option<Time>,
    next_slot_at: Time,
    /// Releases the member ranked above this node passed on during the slot.
    passed_on: u32,
    /// Last sign that the hub was asked: this node's own answered poll, or a release the
    /// farm passed on.
    evidence: Option<Time>,
    /// When this node's last poll was answered.
    answered: Option<Time>,
    /// The wall clock at a monotonic instant, to place slots to the nanosecond.
    anchor: (Time, u64),
    rng: Rng,
}

impl PollSchedule {
    /// A schedule whose start-up poll is due at once (`unix` is the wall clock at `now`).
    pub(super) fn new(cfg: &FollowerConfig, now: Time, unix: u64) -> Self {
        PollSchedule {
            period: cfg.poll_interval.filter(|p| !p.is_zero()),
            me: cfg.me,
            first_backoff: cfg.poll_backoff,
            max_backoff: cfg.poll_backoff_max.max(cfg.poll_backoff),
            backoff: cfg.poll_backoff,
            start_up: true,
            polling: false,
            retry_at: None,
            slot: None,
            rank: u32::MAX,
            must: false,
            poll_at: None,
            next_slot_at: now,
            passed_on: 0,
            evidence: None,
            answered: None,
            anchor: (now, unix),
            rng: Rng::new(mix64(cfg.seed ^ 0x706f_6c6c)),
        }
    }

    /// When the schedule next needs the clock: a poll or the next slot.
    pub(super) fn due(&self) -> Option<Time> {
        if self.period.is_none() || self.polling {
            return None;
        }
        if self.start_up {
            return Some(self.retry_at.unwrap_or(self.anchor.0));
        }
        let poll = self.retry_at.or(self.poll_at.filter(|_| !self.covered()));
        Some(poll.map_or(self.next_slot_at, |p| p.min(self.next_slot_at)))
    }

    /// Plans the slot `now` falls in, then starts the poll if one is due. `must`: the
    /// release nears expiry (or none is known), so this node polls whatever its rank.
    /// Returns whether to poll now and whether a poll of this slot was left to the farm.
    pub(super) fn tick(
        &mut self,
        now: Time,
        unix: u64,
        members: &BTreeSet<NodeId>,
        must: bool,
    ) -> (bool, bool) {
        let Some(period) = self.period else {
            return (false, false);
        };
        self.reanchor(now, unix);
        let mut left = false;
        if !self.start_up && now >= self.next_slot_at {
            left = self.plan(now, period, members, must);
        }
        if self.polling {
            return (false, left);
        }
        let due = if self.start_up {
            self.retry_at.is_none_or(|t| t <= now)
        } else {
            self.retry_at.is_some_and(|t| t <= now)
                || (!self.covered() && self.poll_at.is_some_and(|t| t <= now))
        };
        if due {
            self.polling = true;
            self.retry_at = None;
            self.poll_at = None;
        }
        (due, left)
    }

    /// Decides this node's part in the slot `now` falls in. True when it leaves the poll to
    /// the farm.
    fn plan(
        &mut self,
        now: Time,
        period: Duration,
        members: &BTreeSet<NodeId>,
        must: bool,
    ) -> bool {
        let p = nanos(period).max(1);
        let wall = self.wall_nanos(now);
        let slot = wall / p;
        let slot_start = Time::from_nanos(now.as_nanos().saturating_sub(wall % p));
        self.next_slot_at = slot_start + Duration::from_nanos(p);
        if self.slot == Some(slot) {
            return false;
        }
        self.slot = Some(slot);
        self.passed_on = 0;
        self.retry_at = None;
        self.rank = rank(self.me, members, slot);
        let stale = self
            .evidence
            .is_none_or(|e| now.saturating_duration_since(e) >= period * STALE_PERIODS);
        self.must = stale || must;
        // Offsets within the slot, in thousandths: the first ranks early, the second late
        // enough to have heard the first, anyone else anywhere.
        let (lo, hi) = match self.rank {
            1 => (100, 500),
            2 => (550, 900),
            _ if self.must => (100, 900),
            _ => {
                self.poll_at = None;
                return true;
            }
        };
        let at = slot_start + Duration::from_nanos(p / 1000 * self.rng.range(lo, hi));
        // A slot planned late (the node just started) is skipped unless the node must poll,
        // and so is a slot whose poll this node made already (its start-up poll).
        let done = self.answered.is_some_and(|t| t >= slot_start);
        self.poll_at = (!done && (at >= now || self.must)).then_some(at.max(now));
        false
    }

    /// The hub answered. True for the start-up poll.
    pub(super) fn succeeded(&mut self, now: Time) -> bool {
        self.polling = false;
        self.backoff = self.first_backoff;
        self.evidence = Some(now);
        self.answered = Some(now);
        std::mem::replace(&mut self.start_up, false)
    }

    /// The hub did not answer: the start-up poll and this slot's duty try again after the
    /// back-off, which doubles; a node polling only because the farm went quiet waits for the
    /// next slot (a farm whose hub is down would otherwise all retry).
    pub(super) fn failed(&mut self, now: Time) {
        self.polling = false;
        if self.start_up || self.rank <= DUTY_RANKS {
            self.retry_at = Some(now + self.backoff);
            self.backoff = (self.backoff * 2).min(self.max_backoff);
        }
    }

    /// The farm passed a valid release on, authored by `author` (when known).
    pub(super) fn heard(&mut self, now: Time, author: Option<NodeId>) {
        self.evidence = Some(now);
        // Second in the slot, the one member above is the first.
        let from_first = self.rank == DUTY_RANKS
            && author
                .zip(self.slot)
                .is_some_and(|(a, slot)| a != self.me && score(a, slot) > score(self.me, slot));
        if from_first {
            self.passed_on = self.passed_on.saturating_add(1);
        }
    }

    /// The first of the slot polled and passed its answer on, once.
    fn covered(&self) -> bool {
        self.passed_on == 1
    }

    /// Nanoseconds of wall-clock time at `now`.
    fn wall_nanos(&self, now: Time) -> u64 {
        let (t0, unix0) = self.anchor;
        unix0
            .saturating_mul(1_000_000_000)
            .saturating_add(now.as_nanos().saturating_sub(t0.as_nanos()))
    }

    /// Follows a wall clock that was stepped (NTP) by more than a second.
    fn reanchor(&mut self, now: Time, unix: u64) {
        if self.wall_nanos(now) / 1_000_000_000 != unix
            && self
                .wall_nanos(now)
                .abs_diff(unix.saturating_mul(1_000_000_000))
                > 1_000_000_000
        {
            self.anchor = (now, unix);
        }
    }
}

fn nanos(d: Duration) -> u64 {
    u64::try_from(d.as_nanos()).unwrap_or(u64::MAX)
}

/// A member's rendezvous score for a slot.
pub(super) fn score(node: NodeId, slot: u64) -> u64 {
    mix64(mix64(node.0) ^ mix64(slot ^ 0x736c_6f74))
}

/// 1 + the members that outrank `me` in `slot`, counted up to one past the duty ranks.
fn rank(me: NodeId, members: &BTreeSet<NodeId>, slot: u64) -> u32 {
    let mine = score(me, slot);
    let mut r = 1;
    for &m in members {
        if m != me && score(m, slot) > mine {
            r += 1;
            if r > DUTY_RANKS {
                break;
            }
        }
    }
    r
}
