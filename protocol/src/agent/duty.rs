//! The duty part: owners must deliver.
//!
//! For each block this node ranks 2 to [`FOLLOW_DEPTH`] it *watches* the owners above it, so
//! that it can take the block over as soon as they have all failed it. A watched owner's
//! *blocks* are those it ranks first (in this node's view), and its *clock* restarts whenever
//! it shows progress: one of its blocks appears (held here or by a neighbour; not when this
//! node or a neighbour is seen fetching that block from the hub instead), or, being a
//! neighbour, it completes a hub fetch it announced, of any block (views of who owns what
//! differ while owners are deposed: what it fetches may be another owner's here, but it is
//! working through its own queue, and all its neighbours see the same fetches). The clock
//! also restarts when its blocks change (it inherited some from a deposed or departed owner),
//! and at this node's own hub failures (the hub may have been down for everyone). Relayed
//! blocks do not restart it.
//!
//! The yardstick is the hub itself: the hub fetches this node sees complete, its own and its
//! neighbours' (a `Fetching`, then a `Have`). Whether the hub shares its link per fetch or per
//! node, an owner with blocks pending is *late* once a hub fetch that started after its clock,
//! of a block at least as long as any it has pending, completed `grace` ago: its own
//! transfer, under way since then at least, should have delivered a block by then. (A
//! manifest's length is unknown until it is held; manifests are small and fetched first, so
//! any hub fetch compares with one.) And
//! whatever the hub does (it may have gone quiet, with no such fetch to compare), an owner is
//! late once twice the time all its pending blocks take one after the other (each at the best
//! rate seen, and no quicker than the quickest fetch seen) has passed; with no hub fetch seen
//! complete at all, an owner with a manifest pending is late once `blind` (twice the stall
//! timeout) has passed: nothing of the release moves without its manifests. A
//! slow hub slows the judgement down with it. And an owner seen completing hub fetches is
//! given [`PACE_SLACK`] times its own mean interval between them before it is late: on a
//! loaded machine an owner works slowly but steadily, and is judged by its own pace, not by
//! one quick fetch elsewhere (only its own fetches set the pace: its blocks may appear by
//! others' work). Besides, each watched owner is pinged
//! once: one that does not answer within the greeting timeout is *silent*. The agent deposes
//! late and silent owners: their blocks move to the next rank, whose clock starts then, and
//! the hub fetches they announce count no more this release (`Neighbours::drop_fetching`).

use std::collections::{BTreeMap, BTreeSet, VecDeque};
use std::time::Duration;

use super::plan::{Plan, State};
use super::{NodeId, Time, mix64};

/// Ranks a node follows: beyond it, the stall levels take over.
pub(super) const FOLLOW_DEPTH: u32 = 8;
/// Hub fetches remembered as the yardstick.
const SAMPLES: usize = 32;
/// An owner has at most this many times the transfer time of all its pending blocks.
const QUIET_SLACK: f64 = 2.0;
/// An owner that has shown progress has at most this many times its mean interval between
/// progress.
const PACE_SLACK: u32 = 3;
/// Ping round trips remembered.
const RTTS: usize = 16;
/// A ping is answered within this many times the slowest round trip remembered...
const PING_SLACK: u32 = 4;
/// ...but never has less than this.
const PING_FLOOR: Duration = Duration::from_millis(250);

/// A hub fetch that completed: when it started, how long the block is, when it ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Sample {
    pub(super) start: Time,
    pub(super) len: u32,
    pub(super) done: Time,
}

/// An owner this node watches.
#[derive(Debug)]
struct Watched {
    /// The blocks it ranks first, in boot-priority order.
    blocks: Vec<u32>,
    /// Its last sign of delivering (see the module documentation).
    clock: Time,
    /// Its first and last completed hub fetches seen (for this release).
    fetched: Option<(Time, Time)>,
    /// Its completed hub fetches seen after the first.
    progress: u32,
}

impl Watched {
    /// The silence its own pace allows: [`PACE_SLACK`] × its mean interval between completed
    /// hub fetches (none before it has completed two).
    fn pace_allows(&self) -> Duration {
        let Some((first, last)) = self.fetched.filter(|_| self.progress > 0) else {
            return Duration::ZERO;
        };
        let span = last.saturating_duration_since(first);
        (span / self.progress).saturating_mul(PACE_SLACK)
    }

    /// It completed a hub fetch.
    fn fetched(&mut self, now: Time) {
        self.fetched = Some(match self.fetched {
            Some((first, _)) => {
                self.progress = self.progress.saturating_add(1);
                (first, now)
            }
            None => (now, now),
        });
        self.clock = now;
    }
}

#[derive(Debug)]
pub(super) struct Duty {
    grace: Duration,
    /// How long an owner has for a manifest while no hub fetch has been seen complete.
    blind: Duration,
    watched: BTreeMap<NodeId, Watched>,
    /// Block → the watched owner that ranks it first.
    top_of: BTreeMap<u32, NodeId>,
    samples: VecDeque<Sample>,
    /// The round trips of the last pings answered.
    rtts: VecDeque<Duration>,
    /// This node's last hub failure.
    paused_at: Time,
    /// Owners pinged, and when.
    pinged: BTreeMap<NodeId, Time>,
    /// Owners that answered.
    answered: BTreeSet<NodeId>,
}

impl Duty {
    pub(super) fn new(grace: Duration, blind: Duration) -> Self {
        Duty {
            grace,
            blind,
            watched: BTreeMap::new(),
            top_of: BTreeMap::new(),
            samples: VecDeque::new(),
            rtts: VecDeque::new(),
            paused_at: Time::ZERO,
            pinged: BTreeMap::new(),
            answered: BTreeSet::new(),
        }
    }

    /// Forgets the previous release (who answered stays known).
    pub(super) fn restart(&mut self) {
        self.watched.clear();
        self.top_of.clear();
        self.samples.clear();
    }

    /// Recomputes the watched owners after the owners or the plan changed (`ranks`: per block,
    /// 1 + the owners above this node, counted beyond [`FOLLOW_DEPTH`]). An owner whose blocks
    /// did not change keeps its clock.
    pub(super) fn rebuild(
        &mut self,
        me: NodeId,
        owners: &[NodeId],
        ranks: &[u32],
        plan: &Plan,
        now: Time,
    ) {
        let mut watched = BTreeSet::new();
        for (idx, &rank) in ranks.iter().enumerate() {
            if (2..=FOLLOW_DEPTH).contains(&rank) {
                let mine = score(me, plan.blocks[idx].key);
                let key = plan.blocks[idx].key;
                watched.extend(owners.iter().filter(|&&o| score(o, key) > mine));
            }
        }
        let mut blocks: BTreeMap<NodeId, Vec<u32>> = BTreeMap::new();
        self.top_of.clear();
        // The same answer two ways; the cheaper one is taken.
        let by_scan = owners.len() <= 8 * watched.len();
        for &idx in &plan.order {
            let key = plan.blocks[idx as usize].key;
            let top = if by_scan {
                first(owners, me, key).filter(|t| watched.contains(t))
            } else {
                watched
                    .iter()
                    .copied()
                    .find(|&t| is_first(owners, me, t, key))
            };
            if let Some(t) = top {
                blocks.entry(t).or_default().push(idx);
                self.top_of.insert(idx, t);
            }
        }
        // Only watched owners are pinged and remembered (bounded by the owners).
        self.pinged.retain(|t, _| watched.contains(t));
        self.answered.retain(|t| watched.contains(t));
        let old = std::mem::take(&mut self.watched);
        for t in watched {
            let blocks = blocks.remove(&t).unwrap_or_default();
            let before = old.get(&t);
            let clock = before
                .filter(|o| o.blocks == blocks)
                .map_or(now, |o| o.clock);
            // Its pace is its own, whatever blocks it has now.
            let (fetched, progress) = before.map_or((None, 0), |o| (o.fetched, o.progress));
            self.watched.insert(
                t,
                Watched {
                    blocks,
                    clock,
                    fetched,
                    progress,
                },
            );
        }
    }

    /// The watched owner that ranks block `idx` first.
    pub(super) fn top(&self, idx: u32) -> Option<NodeId> {
        self.top_of.get(&idx).copied()
    }

    /// Block `idx` appeared: the owner that ranks it first delivered.
    pub(super) fn appeared(&mut self, idx: u32, now: Time) {
        if let Some(w) = self.top_of.get(&idx).and_then(|t| self.watched.get_mut(t)) {
            w.clock = now;
        }
    }

    /// `by` (a neighbour that announced the fetch, or this node) fetched block `idx` from the
    /// hub: its appearing is not the progress of another owner (one `by` took it over from,
    /// having deposed it or reached a stall level).
    pub(super) fn fetched_instead(&mut self, idx: u32, by: NodeId) {
        if self.top_of.get(&idx).is_some_and(|&t| t != by) {
            self.top_of.remove(&idx);
        }
    }

    /// Neighbour `by` completed a hub fetch it announced: progress, whichever block it was
    /// (whose it is differs between views while owners are deposed; every neighbour of `by`
    /// sees the same fetches).
    pub(super) fn fetched_by(&mut self, by: NodeId, now: Time) {
        if let Some(w) = self.watched.get_mut(&by) {
            w.fetched(now);
        }
    }

    /// A hub fetch completed (this node's, or a neighbour's it announced).
    pub(super) fn sample(&mut self, s: Sample) {
        if self.samples.len() >= SAMPLES {
            self.samples.pop_front();
        }
        self.samples.push_back(s);
    }

    /// This node's own hub fetch failed: no owner is judged on fetches that started before.
    pub(super) fn hub_failed(&mut self, now: Time) {
        self.paused_at = now;
    }

    /// Watched owners not pinged yet; they count as pinged at `now`.
    pub(super) fn take_unpinged(&mut self, now: Time) -> Vec<NodeId> {
        let new: Vec<NodeId> = self
            .watched
            .keys()
            .filter(|t| !self.pinged.contains_key(t))
            .copied()
            .collect();
        for &t in &new {
            self.pinged.insert(t, now);
        }
        new
    }

    /// `from` answered a ping (`pong`) or otherwise showed it is there.
    pub(super) fn answered(&mut self, from: NodeId, now: Time, pong: bool) {
        // `answered` is a subset of `pinged`: once they are as large, nobody is left to answer.
        if self.answered.len() >= self.pinged.len() {
            return;
        }
        let Some(&at) = self.pinged.get(&from) else {
            return;
        };
        if self.answered.insert(from) && pong {
            self.round_trip(now.saturating_duration_since(at));
        }
    }

    /// A message's round trip to a peer (a ping's, or a greeting's).
    pub(super) fn round_trip(&mut self, rtt: Duration) {
        if self.rtts.len() >= RTTS {
            self.rtts.pop_front();
        }
        self.rtts.push_back(rtt);
    }

    /// How long a watched owner has to answer its ping: [`PING_SLACK`] × the slowest round
    /// trip of the last pings answered, at least [`PING_FLOOR`], at most `cap` (all of it
    /// before any answer). Pings are answered by the event loop, not the disk or the hub, so
    /// their round trips are a fair yardstick; silent identities minted in bulk are deposed
    /// in a fraction of the greeting timeout once one owner has answered.
    pub(super) fn ping_timeout(&self, cap: Duration) -> Duration {
        self.rtts.iter().max().map_or(cap, |&m| {
            m.saturating_mul(PING_SLACK).clamp(PING_FLOOR.min(cap), cap)
        })
    }

    /// Watched owners that did not answer their ping within `timeout`, and when the next
    /// might not have.
    pub(super) fn silent(&self, now: Time, timeout: Duration) -> (Vec<NodeId>, Option<Time>) {
        let mut silent = Vec::new();
        let mut next: Option<Time> = None;
        for (&t, &at) in &self.pinged {
            if !self.watched.contains_key(&t) || self.answered.contains(&t) {
                continue;
            }
            let due = at + timeout;
            if due <= now {
                silent.push(t);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        (silent, next)
    }

    /// Whether a hub fetch of block `len` bytes, under way since `since`, should have
    /// completed: one no shorter, started no earlier, completed `grace` ago.
    pub(super) fn overdue(&self, plan: &Plan, since: Time, idx: u32, now: Time) -> bool {
        let len = compared_len(plan, idx);
        let since = since.max(self.paused_at);
        self.samples
            .iter()
            .any(|s| s.start >= since && s.len >= len && s.done + self.grace <= now)
    }

    /// The watched owners that are late, and when the next one may be. An owner's pending
    /// blocks are those that have not appeared and have `entered` the hub window as this node
    /// judges it (the window's inner half: an owner does not fetch a chunk before it is in its
    /// own); its clock starts no earlier than the first entered.
    pub(super) fn late(
        &self,
        plan: &Plan,
        now: Time,
        appeared: impl Fn(u32) -> bool,
        entered: impl Fn(u32) -> Option<Time>,
    ) -> (Vec<NodeId>, Option<Time>) {
        let rate = self
            .samples
            .iter()
            .map(|s| {
                let took = s.done.saturating_duration_since(s.start);
                f64::from(s.len) / took.as_secs_f64().max(1e-3)
            })
            .fold(0.0, f64::max);
        // No fetch takes less than the quickest seen (a hub's latency), whatever its length.
        let quickest = self
            .samples
            .iter()
            .map(|s| s.done.saturating_duration_since(s.start).as_secs_f64())
            .fold(f64::INFINITY, f64::min);
        let mut late = Vec::new();
        let mut next: Option<Time> = None;
        for (&t, w) in &self.watched {
            let mut pending = w
                .blocks
                .iter()
                .filter(|&&i| !appeared(i))
                .filter_map(|&i| entered(i).map(|at| (i, at)))
                .peekable();
            if pending.peek().is_none() {
                continue;
            }
            let (longest, secs, first, manifest) = pending.fold(
                (0, 0.0, Time::MAX, false),
                |(l, secs, first, manifest), (i, at)| {
                    let len = compared_len(plan, i);
                    let secs = secs + (f64::from(len) / rate).max(quickest);
                    let manifest = manifest || plan.blocks[i as usize].manifest;
                    (l.max(len), secs, first.min(at), manifest)
                },
            );
            let clock = w.clock.max(self.paused_at).max(first);
            let compared = self
                .samples
                .iter()
                .filter(|s| s.start >= clock && s.len >= longest)
                .map(|s| s.done)
                .min();
            let quiet = if rate > 0.0 {
                let secs = QUIET_SLACK * secs;
                Some(clock + Duration::try_from_secs_f64(secs).unwrap_or(Duration::MAX))
            } else {
                manifest.then(|| clock + self.blind)
            };
            let Some(due) = compared.into_iter().chain(quiet).min() else {
                continue;
            };
            let due = (due + self.grace).max(clock + w.pace_allows());
            if due <= now {
                late.push(t);
            } else {
                next = Some(next.map_or(due, |n| n.min(due)));
            }
        }
        (late, next)
    }
}

/// The length a block's fetch is compared with: its own, or none for a manifest not held yet
/// (whose length is unknown).
fn compared_len(plan: &Plan, idx: u32) -> u32 {
    plan.blocks.get(idx as usize).map_or(0, |b| {
        if b.manifest && b.state != State::Held {
            0
        } else {
            b.len
        }
    })
}

fn score(member: NodeId, key: u64) -> u64 {
    mix64(mix64(member.0) ^ key)
}

/// The owner that outranks every other for `key`, if it outranks `me`.
fn first(owners: &[NodeId], me: NodeId, key: u64) -> Option<NodeId> {
    let best = owners.iter().max_by_key(|&&o| score(o, key))?;
    (score(*best, key) > score(me, key)).then_some(*best)
}

/// Whether `t` outranks `me` and every other owner for `key`.
fn is_first(owners: &[NodeId], me: NodeId, t: NodeId, key: u64) -> bool {
    let st = score(t, key);
    st > score(me, key) && owners.iter().all(|&o| o == t || score(o, key) < st)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::plan::test_plan;

    const ME: NodeId = NodeId(0);
    const GRACE: Duration = Duration::from_secs(1);

    /// Every block in the hub window from the start.
    const IN: fn(u32) -> Option<Time> = |_| Some(Time::ZERO);

    fn ms(n: u64) -> Time {
        Time::from_nanos(n * 1_000_000)
    }

    /// A duty over `test_plan(200)` with owners 1..=6 and this node.
    fn setup() -> (Duty, Plan, Vec<NodeId>) {
        let plan = test_plan(200);
        let owners: Vec<NodeId> = (0..=6).map(NodeId).collect();
        let ranks: Vec<u32> = plan
            .blocks
            .iter()
            .map(|b| {
                let mine = score(ME, b.key);
                1 + owners.iter().filter(|&&o| score(o, b.key) > mine).count() as u32
            })
            .collect();
        let mut duty = Duty::new(GRACE, Duration::from_secs(2));
        duty.rebuild(ME, &owners, &ranks, &plan, Time::ZERO);
        (duty, plan, owners)
    }

    /// A watched owner and one block it ranks first.
    fn some_owner(duty: &Duty) -> (NodeId, u32) {
        let (&t, w) = duty
            .watched
            .iter()
            .find(|(_, w)| !w.blocks.is_empty())
            .expect("some owner ranks blocks first");
        (t, w.blocks[0])
    }

    #[test]
    fn an_owner_is_late_once_a_comparable_hub_fetch_completed_a_grace_ago() {
        let (mut duty, plan, owners) = setup();
        assert!(!duty.watched.is_empty());
        assert!(duty.watched.keys().all(|t| owners.contains(t) && *t != ME));
        // Block 0, the root manifest, is held; the chunks are 4 bytes long.
        let none = |i| i == 0;
        assert_eq!(
            duty.late(&plan, ms(10_000), none, IN).0,
            [],
            "no yardstick yet"
        );
        // A 4-byte block took 5 s from the hub: a slow hub, and no owner is late before
        // that fetch completed plus the grace.
        duty.sample(Sample {
            start: ms(100),
            len: 4,
            done: ms(5_100),
        });
        let (late, next) = duty.late(&plan, ms(6_000), none, IN);
        assert_eq!(late, []);
        assert_eq!(next, Some(ms(6_100)));
        let (late, _) = duty.late(&plan, ms(6_100), none, IN);
        let pending = duty
            .watched
            .values()
            .filter(|w| w.blocks.iter().any(|&i| i != 0));
        assert_eq!(late.len(), pending.count());
        // Every pending block appeared: nobody is late.
        assert_eq!(duty.late(&plan, ms(6_100), |_| true, IN).0, []);
    }

    #[test]
    fn only_an_owners_own_blocks_restart_its_clock() {
        let (mut duty, plan, _) = setup();
        let (t, idx) = some_owner(&duty);
        let other = (1..plan.blocks.len() as u32)
            .find(|i| duty.top_of.get(i).is_some_and(|o| *o != t))
            .expect("another owner's block");
        duty.appeared(other, ms(3_000));
        assert_eq!(
            duty.watched[&t].clock,
            Time::ZERO,
            "a relayed block of another owner"
        );
        duty.appeared(idx, ms(3_000));
        assert_eq!(duty.watched[&t].clock, ms(3_000));
    }

    #[test]
    fn with_no_yardstick_an_owner_is_late_for_a_manifest_once_blind_and_grace_passed() {
        let (duty, plan, _) = setup();
        // Nothing is held yet: the root (block 0, a manifest) is pending with its owner.
        let root_owner = *duty
            .top_of
            .get(&0)
            .expect("an owner ranks the root above this node");
        let nothing = |_| false;
        let (late, next) = duty.late(&plan, ms(2_999), nothing, IN);
        assert_eq!(late, []);
        assert_eq!(next, Some(ms(3_000)), "blind 2 s and the grace");
        assert_eq!(duty.late(&plan, ms(3_000), nothing, IN).0, [root_owner]);
        // The owners with only chunks pending wait for a yardstick.
        let root_held = |i| i == 0;
        assert_eq!(duty.late(&plan, ms(60_000), root_held, IN).0, []);
    }

    #[test]
    fn a_block_another_node_fetched_from_the_hub_is_not_its_owners_progress() {
        let (mut duty, _, _) = setup();
        let (t, idx) = some_owner(&duty);
        let by = NodeId(99);
        duty.fetched_instead(idx, by);
        duty.appeared(idx, ms(3_000));
        assert_eq!(duty.watched[&t].clock, Time::ZERO, "fetched by another");
        let (t, idx) = duty
            .top_of
            .iter()
            .map(|(&i, &t)| (t, i))
            .find(|&(o, _)| o != t)
            .expect("another owner's block");
        duty.fetched_instead(idx, t);
        duty.appeared(idx, ms(3_000));
        assert_eq!(duty.watched[&t].clock, ms(3_000), "fetched by its owner");
    }

    #[test]
    fn an_owner_is_judged_on_a_block_only_from_when_it_entered_the_hub_window() {
        let (mut duty, plan, _) = setup();
        let (t, idx) = some_owner(&duty);
        duty.sample(Sample {
            start: ms(100),
            len: 4,
            done: ms(200),
        });
        let pending = |i| i == 0;
        let outside = |_| None;
        assert!(
            !duty
                .late(&plan, ms(60_000), pending, outside)
                .0
                .contains(&t),
            "an owner does not fetch a block outside the window"
        );
        let entered = |i| (i == idx).then_some(ms(5_000));
        let (late, next) = duty.late(&plan, ms(5_500), pending, entered);
        assert!(!late.contains(&t), "no hub fetch started after it entered");
        assert!(next.is_some_and(|n| n > ms(5_500)));
        duty.sample(Sample {
            start: ms(5_100),
            len: 4,
            done: ms(5_200),
        });
        assert!(!duty.late(&plan, ms(6_199), pending, entered).0.contains(&t));
        assert!(duty.late(&plan, ms(6_200), pending, entered).0.contains(&t));
    }

    #[test]
    fn fetches_before_a_hub_failure_do_not_judge_owners() {
        let (mut duty, plan, _) = setup();
        duty.sample(Sample {
            start: ms(100),
            len: 4,
            done: ms(200),
        });
        duty.hub_failed(ms(150));
        // Only the quiet rule remains, counted from the failure.
        let (late, next) = duty.late(&plan, ms(1_200), |_| false, IN);
        assert_eq!(late, []);
        assert!(next.is_some_and(|n| n > ms(1_200)));
        assert!(
            !duty.overdue(&plan, ms(100), 1, ms(5_000)),
            "started before the failure"
        );
        duty.sample(Sample {
            start: ms(300),
            len: 4,
            done: ms(400),
        });
        assert!(duty.overdue(&plan, ms(100), 1, ms(1_400)));
        assert!(!duty.overdue(&plan, ms(100), 1, ms(1_399)));
    }

    #[test]
    fn a_watched_owner_that_does_not_answer_its_ping_is_silent() {
        let (mut duty, _, _) = setup();
        let pinged = duty.take_unpinged(ms(10));
        assert_eq!(pinged.len(), duty.watched.len());
        assert_eq!(duty.take_unpinged(ms(20)), [], "pinged once");
        duty.answered(pinged[0], ms(30), true);
        let timeout = Duration::from_secs(2);
        let (silent, next) = duty.silent(ms(1_000), timeout);
        assert_eq!((silent.len(), next), (0, Some(ms(2_010))));
        let (silent, _) = duty.silent(ms(2_010), timeout);
        assert_eq!(silent, pinged[1..]);
    }

    #[test]
    fn the_ping_timeout_follows_the_round_trips_seen() {
        let (mut duty, _, _) = setup();
        let cap = Duration::from_secs(2);
        assert_eq!(duty.ping_timeout(cap), cap, "no round trip seen yet");
        let pinged = duty.take_unpinged(ms(10));
        assert!(pinged.len() >= 2);
        // A message other than a pong shows the owner is there but measures nothing.
        duty.answered(pinged[0], ms(11), false);
        assert_eq!(duty.ping_timeout(cap), cap);
        duty.answered(pinged[1], ms(12), true);
        assert_eq!(
            duty.ping_timeout(cap),
            PING_FLOOR,
            "2 ms x 4 is below the floor"
        );
        duty.round_trip(Duration::from_millis(300));
        assert_eq!(duty.ping_timeout(cap), Duration::from_millis(1_200));
        duty.round_trip(Duration::from_secs(1));
        assert_eq!(duty.ping_timeout(cap), cap);
        // The others are silent once the shorter time has passed.
        for _ in 0..RTTS {
            duty.round_trip(Duration::from_millis(1));
        }
        let (silent, _) = duty.silent(ms(10) + PING_FLOOR, duty.ping_timeout(cap));
        assert_eq!(silent, pinged[2..]);
    }

    /// A duty whose hub fetches take 10 ms: one completes just after each watched owner's
    /// clock, so by the yardstick alone every owner with blocks pending is due at 1.01 s.
    fn quick_hub(duty: &mut Duty, at: u64) {
        duty.sample(Sample {
            start: ms(at),
            len: 4,
            done: ms(at + 10),
        });
    }

    #[test]
    fn a_slow_but_steady_owner_is_judged_by_its_own_pace() {
        let (mut duty, plan, _) = setup();
        let (t, idx) = some_owner(&duty);
        quick_hub(&mut duty, 0);
        // Nothing pending appears: due by the yardstick, a grace after the quick fetch.
        let pending = |i: u32| i == 0;
        assert!(duty.late(&plan, ms(1_010), pending, IN).0.contains(&t));
        // The owner completes a hub fetch every 2 s (a loaded machine), far slower than the
        // hub answers here: it keeps its blocks for 3 × 2 s after its last one.
        for k in 1..=3 {
            duty.fetched_by(t, ms(2_000 * k));
        }
        quick_hub(&mut duty, 6_000);
        let (late, next) = duty.late(&plan, ms(11_999), pending, IN);
        assert!(!late.contains(&t), "within its own pace");
        assert!(next.is_some_and(|n| n <= ms(12_000)));
        assert!(duty.late(&plan, ms(12_000), pending, IN).0.contains(&t));
        // A single fetch after a long silence sets no pace.
        let (mut duty, plan, _) = setup();
        quick_hub(&mut duty, 0);
        duty.fetched_by(t, ms(5_000));
        quick_hub(&mut duty, 5_000);
        assert!(duty.late(&plan, ms(6_010), pending, IN).0.contains(&t));
        // Its block appearing (perhaps by others' work) restarts its clock but sets no pace.
        let (mut duty, plan, _) = setup();
        duty.fetched_by(t, ms(1_000));
        duty.fetched_by(t, ms(2_000));
        duty.appeared(idx, ms(20_000));
        quick_hub(&mut duty, 20_000);
        let pending = |i: u32| i == 0 || i == idx;
        assert!(!duty.late(&plan, ms(22_999), pending, IN).0.contains(&t));
        assert!(duty.late(&plan, ms(23_000), pending, IN).0.contains(&t));
    }

    #[test]
    fn a_neighbours_completed_hub_fetch_is_progress_whichever_block() {
        let (mut duty, plan, _) = setup();
        let (t, _) = some_owner(&duty);
        quick_hub(&mut duty, 0);
        duty.fetched_by(t, ms(900));
        let pending = |i: u32| i == 0;
        assert!(!duty.late(&plan, ms(1_010), pending, IN).0.contains(&t));
        quick_hub(&mut duty, 900);
        assert!(duty.late(&plan, ms(1_910), pending, IN).0.contains(&t));
        // Fetches by an owner this node does not watch change nothing.
        let before: Vec<Time> = duty.watched.values().map(|w| w.clock).collect();
        duty.fetched_by(NodeId(99), ms(1_500));
        let after: Vec<Time> = duty.watched.values().map(|w| w.clock).collect();
        assert_eq!(before, after);
    }
}
