//! The hub part: when this node may fetch from the hub. Hub errors back off exponentially with
//! jitter, and a back-off ends early (at most once per first back-off) when a neighbour's hub
//! fetch completes: the hub is back. While nothing progresses, the fallback widens by stall
//! levels (rank 1, then rank 2, then anyone), stretched when the hub itself is slow and never
//! while it fails.
//!
//! A node whose own hub fetches fail while the hub serves others has a broken route to it (a
//! bad uplink, a wrong `--hub`): once [`RESIGN_AFTER`] of its fetches in a row, a first
//! back-off apart or more, have failed unreachable, each while a fetch of someone else's
//! (started no later than the failure) completed, it *resigns* its ownership for the
//! release. A hub down for everyone never shows that twice (no fetch completes across an
//! outage; one that completed just before it may be heard of just after), nor does a block
//! the hub lacks (the node's other fetches complete in between).

use std::time::Duration;

use super::plan::{Plan, State};
use super::timers::{TimerKind, Timers};
use super::{AgentConfig, HubMode, Rng, StallReason, Time, mix64};

/// Fallback levels: at level `n` blocks ranked `<= n` may come from the hub; at the last
/// level any block may.
pub(super) const ANYONE_LEVEL: u32 = 3;
/// Own hub failures in a row, each contradicted by someone's fetch, that make a node resign.
const RESIGN_AFTER: usize = 2;
/// Failed blocks remembered to notice the hub is back (see [`Hub::failed_on`]).
const FAILED_KEPT: usize = 64;

#[derive(Debug)]
pub(super) struct Hub {
    mode: HubMode,
    backoff_first: Duration,
    backoff_max: Duration,
    stall_timeout: Duration,
    escalate_after: Duration,
    /// Seeds this node's offset before the last level, so a stalled farm does not rush the
    /// hub at one instant.
    offset_seed: u64,
    backoff: Duration,
    failing: bool,
    /// This node's last hub failure.
    failed_at: Time,
    /// Something changed that may let a hub fetch start.
    dirty: bool,
    /// Leading blocks of the plan order that are held (skipped by full scans).
    cursor: usize,
    last_progress: Time,
    level: u32,
    /// The slowest recent hub fetch: when it finished and how long it took.
    slow_fetch: Option<(Time, Duration)>,
    /// When this node's hub fetches failed unreachable since its last own delivery, and
    /// whether someone's fetch completed across each (at most [`RESIGN_AFTER`] remembered).
    unreachable: Vec<(Time, bool)>,
    /// This node resigned its ownership for the release.
    resigned: bool,
    /// Blocks whose hub fetch failed since this node's last hub delivery (at most
    /// [`FAILED_KEPT`]).
    failed_blocks: Vec<u32>,
    /// Blocks passed on to the next ranks during this back-off (at most [`FAILED_KEPT`]).
    passed_on: Vec<u32>,
}

impl Hub {
    pub(super) fn new(cfg: &AgentConfig) -> Self {
        Hub {
            mode: cfg.hub,
            backoff_first: cfg.hub_backoff,
            backoff_max: cfg.hub_backoff_max,
            stall_timeout: cfg.stall_timeout,
            escalate_after: cfg.escalate_after,
            offset_seed: cfg.seed ^ mix64(cfg.id.0),
            backoff: cfg.hub_backoff,
            failing: false,
            failed_at: Time::ZERO,
            dirty: false,
            cursor: 0,
            last_progress: Time::ZERO,
            level: 1,
            slow_fetch: None,
            unreachable: Vec::new(),
            resigned: false,
            failed_blocks: Vec::new(),
            passed_on: Vec::new(),
        }
    }

    /// Forgets the previous release's hub history. Call before [`Self::progressed`].
    pub(super) fn restart(&mut self) {
        self.cursor = 0;
        self.slow_fetch = None;
        self.unreachable.clear();
        self.resigned = false;
        self.failed_blocks.clear();
        self.passed_on.clear();
    }

    /// Asks for a hub scheduling pass.
    pub(super) fn wake(&mut self) {
        self.dirty = true;
    }

    /// Whether a scheduling pass may start hub fetches now; consumes the wake-up.
    pub(super) fn take_wake(&mut self, timers: &Timers) -> bool {
        if !self.dirty || self.mode == HubMode::Off || timers.is_armed(TimerKind::HubRetry) {
            return false;
        }
        if self.mode == HubMode::Fallback && timers.is_armed(TimerKind::HelloGrace) {
            return false;
        }
        self.dirty = false;
        true
    }

    /// The fallback level: blocks ranked up to it may come from the hub.
    pub(super) fn level(&self) -> u32 {
        self.level
    }

    /// Whether any missing block may come from the hub, whoever owns it.
    pub(super) fn takes_anything(&self) -> bool {
        self.mode == HubMode::Only || self.level >= ANYONE_LEVEL
    }

    /// Up to `room` blocks that are `idle` (missing, nothing in flight), in boot-priority
    /// order.
    pub(super) fn scan_any(
        &mut self,
        plan: &Plan,
        room: usize,
        idle: impl Fn(u32) -> bool,
    ) -> Vec<u32> {
        while plan
            .order
            .get(self.cursor)
            .is_some_and(|&i| plan.blocks[i as usize].state == State::Held)
        {
            self.cursor += 1;
        }
        let mut picks = Vec::new();
        for &idx in &plan.order[self.cursor.min(plan.order.len())..] {
            if picks.len() >= room {
                break;
            }
            if idle(idx) {
                picks.push(idx);
            }
        }
        picks
    }

    /// A hub block verified after `took`.
    pub(super) fn delivered(&mut self, now: Time, took: Duration) {
        let stale = self
            .slow_fetch
            .is_none_or(|(done, slowest)| took >= slowest || !self.is_recent(now, done));
        if stale {
            self.slow_fetch = Some((now, took));
        }
        self.failing = false;
        self.backoff = self.backoff_first;
        self.unreachable.clear();
        self.failed_blocks.clear();
        self.passed_on.clear();
    }

    /// Whether this node's hub fetch of block `idx` failed since its last hub delivery: the
    /// block reaching it from a peer now means someone fetched it from the hub since (or held
    /// it all along), so the hub may be back.
    pub(super) fn failed_on(&self, idx: u32) -> bool {
        self.failed_blocks.contains(&idx)
    }

    /// A hub fetch of block `idx` failed: back off with ±25 % jitter, doubling up to the
    /// maximum.
    pub(super) fn failed(&mut self, idx: u32, now: Time, rng: &mut Rng, timers: &mut Timers) {
        self.passed_on.clear();
        if !self.failed_blocks.contains(&idx) {
            if self.failed_blocks.len() >= FAILED_KEPT {
                self.failed_blocks.remove(0);
            }
            self.failed_blocks.push(idx);
        }
        self.failing = true;
        self.failed_at = now;
        let jitter = 0.75 + rng.below(500) as f64 / 1000.0;
        let wait = self.backoff.mul_f64(jitter);
        timers.arm(TimerKind::HubRetry, now + wait);
        self.backoff = (self.backoff * 2).min(self.backoff_max);
    }

    /// One of this node's hub fetches failed because the hub could not be reached (not a
    /// refusal or a bad block): a sign of a broken route once the hub is seen serving others.
    pub(super) fn unreachable(&mut self, now: Time) {
        // Fetches that fail together (a hub that just went down fails all in flight) count
        // once; the next count is a retry after a back-off.
        if self
            .unreachable
            .last()
            .is_some_and(|&(at, _)| now < at + self.backoff_first)
        {
            return;
        }
        if self.unreachable.len() >= RESIGN_AFTER {
            self.unreachable.remove(0);
        }
        self.unreachable.push((now, false));
    }

    /// Someone else's hub fetch that started at `start` completed: it contradicts this node's
    /// failures since then. Returns true once, when this node should resign (see the module
    /// documentation).
    pub(super) fn served_other(&mut self, start: Time) -> bool {
        for (at, contradicted) in &mut self.unreachable {
            *contradicted |= start <= *at;
        }
        let resign = !self.resigned
            && self.unreachable.len() >= RESIGN_AFTER
            && self.unreachable.iter().all(|&(_, c)| c);
        self.resigned |= resign;
        resign
    }

    /// Block `idx`, due from this node while it backs off, goes to the next ranks: whether it
    /// did not already in this back-off.
    pub(super) fn pass_on(&mut self, idx: u32) -> bool {
        if self.passed_on.len() >= FAILED_KEPT || self.passed_on.contains(&idx) {
            return false;
        }
        self.passed_on.push(idx);
        true
    }

    /// Whether this node resigned its ownership for the release: it fetches from the hub
    /// only at the last fallback level.
    pub(super) fn resigned(&self) -> bool {
        self.resigned
    }

    /// Someone's hub fetch completed: the hub works, so a back-off ends now, or one first
    /// back-off after this node's last failure (a node whose own route to the hub is broken
    /// retries at that pace, not at every completion it hears of).
    pub(super) fn works(&mut self, now: Time, timers: &mut Timers) {
        if !self.failing || !timers.is_armed(TimerKind::HubRetry) {
            return;
        }
        let retry = now.max(self.failed_at + self.backoff_first);
        timers.arm_earliest(TimerKind::HubRetry, retry);
    }

    /// Bytes arrived on one of this node's hub fetches: not a stall, but no new level either.
    pub(super) fn bytes_arrived(&mut self, now: Time) {
        self.last_progress = now;
    }

    /// The boot progressed: back to level 1.
    pub(super) fn progressed(&mut self, now: Time, timers: &mut Timers) {
        self.last_progress = now;
        self.level = 1;
        timers.arm(TimerKind::Escalate, now + self.escalate_after(now));
    }

    /// The stall check (`active`: a boot is under way). Returns why the boot is stalled when
    /// nothing progressed for a stall period.
    pub(super) fn stall_tick(
        &mut self,
        now: Time,
        active: bool,
        timers: &mut Timers,
    ) -> Option<StallReason> {
        if !active {
            timers.clear(TimerKind::StallTick);
            return None;
        }
        let since = now.saturating_duration_since(self.last_progress);
        if since < self.stall_timeout {
            timers.arm(
                TimerKind::StallTick,
                self.last_progress + self.stall_timeout,
            );
            return None;
        }
        timers.arm(TimerKind::StallTick, now + self.stall_timeout);
        Some(match self.mode {
            HubMode::Off => StallReason::NoHolder,
            _ if self.failing => StallReason::HubUnavailable,
            _ => StallReason::WaitingForOwners,
        })
    }

    /// Widens the fallback one level: rank 2 after `escalate_after` without progress, anyone
    /// after twice that plus a per-node random offset (so a stalled farm does not rush the
    /// hub at one instant). Never while the hub is failing.
    pub(super) fn escalate(&mut self, now: Time, active: bool, timers: &mut Timers) {
        let e = self.escalate_after(now);
        if !active || self.mode != HubMode::Fallback {
            timers.clear(TimerKind::Escalate);
            return;
        }
        if self.failing {
            timers.arm(TimerKind::Escalate, now + e);
            return;
        }
        let due = self.last_progress + if self.level == 1 { e } else { e * 2 };
        if now < due {
            timers.arm(TimerKind::Escalate, due);
            return;
        }
        self.level = (self.level + 1).min(ANYONE_LEVEL);
        self.dirty = true;
        let next = (self.level < ANYONE_LEVEL).then(|| {
            let nanos = u64::try_from(e.as_nanos()).unwrap_or(u64::MAX).max(1);
            let offset = Duration::from_nanos(mix64(self.offset_seed) % nanos);
            self.last_progress + e * 2 + offset
        });
        timers.set(TimerKind::Escalate, next);
    }

    /// How long without progress before the next-ranked owners step in: the configured time,
    /// stretched to 4 × the slowest hub fetch of the last `escalate_after` (a congested hub).
    fn escalate_after(&self, now: Time) -> Duration {
        match self.slow_fetch {
            Some((done, took)) if self.is_recent(now, done) => self.escalate_after.max(took * 4),
            _ => self.escalate_after,
        }
    }

    /// Whether `t` lies within the last `escalate_after`: a slow hub fetch that recent means
    /// the hub link is still congested.
    fn is_recent(&self, now: Time, t: Time) -> bool {
        now.saturating_duration_since(t) < self.escalate_after
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Time {
        Time::from_nanos(n * 1_000_000)
    }

    fn hub() -> Hub {
        Hub::new(&AgentConfig::default())
    }

    #[test]
    fn a_node_resigns_after_two_failures_a_back_off_apart_each_while_the_hub_served_others() {
        let mut h = hub();
        h.unreachable(ms(100));
        // Someone's fetch that started after the failure says nothing of it.
        assert!(!h.served_other(ms(150)));
        // One under way across it does.
        assert!(!h.served_other(ms(90)), "one failure is not enough");
        // Failures together with the first count as one.
        h.unreachable(ms(120));
        assert!(!h.served_other(ms(50)));
        h.unreachable(ms(1_200));
        assert!(!h.resigned());
        assert!(
            h.served_other(ms(1_100)),
            "the retry failed too while the hub served"
        );
        assert!(h.resigned());
        assert!(!h.served_other(ms(1_100)), "once");
        h.restart();
        assert!(!h.resigned(), "for one release");
    }

    #[test]
    fn a_block_is_passed_on_once_per_back_off() {
        let mut h = hub();
        let (mut rng, mut timers) = (Rng::new(1), Timers::default());
        h.failed(3, ms(100), &mut rng, &mut timers);
        assert!(h.failed_on(3) && !h.failed_on(4));
        assert!(h.pass_on(4));
        assert!(!h.pass_on(4), "once");
        h.failed(3, ms(1_200), &mut rng, &mut timers);
        assert!(h.pass_on(4), "again in the next back-off");
        h.delivered(ms(2_000), Duration::from_millis(50));
        assert!(!h.failed_on(3), "a delivery forgets the failures");
        assert!(h.pass_on(4));
    }

    #[test]
    fn a_hub_down_for_everyone_or_a_delivery_in_between_makes_no_resignation() {
        // An outage: the retry fails with nothing completing across it.
        let mut h = hub();
        h.unreachable(ms(100));
        assert!(!h.served_other(ms(60)));
        h.unreachable(ms(1_200));
        assert!(!h.served_other(ms(1_300)));
        assert!(!h.served_other(ms(5_000)), "fetches after the return");
        assert!(!h.resigned());
        // A block the hub lacks: the node's own deliveries come in between.
        let mut h = hub();
        h.unreachable(ms(100));
        assert!(!h.served_other(ms(60)));
        h.delivered(ms(500), Duration::from_millis(100));
        h.unreachable(ms(1_200));
        assert!(!h.served_other(ms(1_100)));
        assert!(!h.resigned());
    }
}
