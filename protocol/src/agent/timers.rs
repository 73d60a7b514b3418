//! The agent's timers in one table. Each kind is armed at most once; `Agent::poll_timeout` is
//! the earliest of them and `Agent::on_timers` fires the due ones in kind order. A new timer
//! is a new [`TimerKind`], its place in `TimerKind::ALL`, and its arm in the agent's
//! exhaustive `fire`.

use super::Time;

/// What a timer is for. Timers due at one instant fire in this order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(super) enum TimerKind {
    /// The earliest request deadline (the requests keep it equal to their deadline set).
    Deadline,
    /// The hub back-off ends.
    HubRetry,
    /// A peer that answered busy may be asked again.
    BusyWake,
    /// Owned blocks stop waiting for the neighbours' holdings.
    HelloGrace,
    /// The next check for a stall.
    StallTick,
    /// The hub fallback widens unless something progressed.
    Escalate,
    /// A node that joined a swarm under way may fetch the chunks it ranks first.
    JoinerGrace,
    /// A neighbour this node picked may have failed to answer its `Hello`.
    Greet,
    /// An owner may have failed to deliver a block in time.
    Duty,
    /// A request to a holder not relied on may need a second holder.
    SecondHolder,
    /// A chunk that waited for a holder in this node's rack may now cross the rack's uplink.
    RackGate,
    /// A request on probation may have run out.
    Probation,
    /// An owner asked for its own block may have had it for `second_holder_after`.
    PassOver,
    /// A request of the endgame may have run long enough to ask a second holder.
    Endgame,
    /// A peer request may have gone undelivered long enough to give up its download slot, for
    /// its peer's claims to keep no owner from the hub, or to end a joiner's grace.
    Overdue,
}

impl TimerKind {
    /// Every kind, in firing order (`kind as usize` is its place).
    const ALL: [TimerKind; 15] = [
        TimerKind::Deadline,
        TimerKind::HubRetry,
        TimerKind::BusyWake,
        TimerKind::HelloGrace,
        TimerKind::StallTick,
        TimerKind::Escalate,
        TimerKind::JoinerGrace,
        TimerKind::Greet,
        TimerKind::Duty,
        TimerKind::SecondHolder,
        TimerKind::RackGate,
        TimerKind::Probation,
        TimerKind::PassOver,
        TimerKind::Endgame,
        TimerKind::Overdue,
    ];
}

/// When each armed timer is due, by kind (every input reads them: a fixed table, not a map).
#[derive(Debug, Default)]
pub(super) struct Timers {
    at: [Option<Time>; TimerKind::ALL.len()],
}

impl Timers {
    pub(super) fn is_armed(&self, kind: TimerKind) -> bool {
        self.at[kind as usize].is_some()
    }

    /// Arms `kind` for `at`, or disarms it for `None`.
    pub(super) fn set(&mut self, kind: TimerKind, at: Option<Time>) {
        self.at[kind as usize] = at;
    }

    pub(super) fn arm(&mut self, kind: TimerKind, at: Time) {
        self.at[kind as usize] = Some(at);
    }

    /// Arms `kind` for `at` unless it is already due earlier.
    pub(super) fn arm_earliest(&mut self, kind: TimerKind, at: Time) {
        let t = self.at[kind as usize].get_or_insert(at);
        *t = (*t).min(at);
    }

    pub(super) fn clear(&mut self, kind: TimerKind) {
        self.at[kind as usize] = None;
    }

    /// The earliest armed timer.
    pub(super) fn next(&self) -> Option<Time> {
        self.at.iter().flatten().min().copied()
    }

    /// Disarms and returns the first kind after `after` that is due at `now`. Called in a loop,
    /// it visits each kind once in order and sees timers that earlier ones armed.
    pub(super) fn take_due(&mut self, after: Option<TimerKind>, now: Time) -> Option<TimerKind> {
        let from = after.map_or(0, |k| k as usize + 1);
        let i = (from..self.at.len()).find(|&i| self.at[i].is_some_and(|t| t <= now))?;
        self.at[i] = None;
        Some(TimerKind::ALL[i])
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const fn t(n: u64) -> Time {
        Time::from_nanos(n)
    }

    #[test]
    fn next_is_the_earliest_armed_timer() {
        let mut timers = Timers::default();
        assert_eq!(timers.next(), None);
        timers.arm(TimerKind::StallTick, t(30));
        timers.arm(TimerKind::HubRetry, t(20));
        timers.set(TimerKind::Escalate, Some(t(10)));
        assert_eq!(timers.next(), Some(t(10)));
        timers.set(TimerKind::Escalate, None);
        assert_eq!(timers.next(), Some(t(20)));
        timers.arm_earliest(TimerKind::HubRetry, t(25));
        assert_eq!(timers.next(), Some(t(20)));
        timers.arm_earliest(TimerKind::HubRetry, t(15));
        assert_eq!(timers.next(), Some(t(15)));
    }

    #[test]
    fn every_kind_has_its_own_place_in_firing_order() {
        for (i, kind) in TimerKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i);
        }
    }

    #[test]
    fn due_timers_come_once_each_in_kind_order() {
        let mut timers = Timers::default();
        timers.arm(TimerKind::JoinerGrace, t(5));
        timers.arm(TimerKind::StallTick, t(9));
        timers.arm(TimerKind::BusyWake, t(11));
        timers.arm(TimerKind::Deadline, t(1));
        let now = t(10);
        let first = timers.take_due(None, now);
        assert_eq!(first, Some(TimerKind::Deadline));
        // A timer armed by an earlier kind is seen if it comes later in the order...
        timers.arm(TimerKind::HubRetry, t(10));
        // ...and one that comes earlier waits for the next call.
        timers.arm(TimerKind::Deadline, t(2));
        let mut fired = vec![first.unwrap()];
        while let Some(kind) = timers.take_due(fired.last().copied(), now) {
            fired.push(kind);
        }
        assert_eq!(
            fired,
            [
                TimerKind::Deadline,
                TimerKind::HubRetry,
                TimerKind::StallTick,
                TimerKind::JoinerGrace
            ]
        );
        assert!(!timers.is_armed(TimerKind::StallTick));
        assert!(timers.is_armed(TimerKind::BusyWake));
        assert_eq!(timers.next(), Some(t(2)));
        assert_eq!(timers.take_due(None, now), Some(TimerKind::Deadline));
        assert_eq!(timers.take_due(None, now), None);
        assert_eq!(timers.next(), Some(t(11)));
    }
}
