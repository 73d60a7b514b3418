//! The owners part: which blocks this node fetches from the hub.
//!
//! The owner of a block is the node with the highest rendezvous score among this node and its
//! owners: the members present when its boot started, less those that left or were banned
//! since. A member that arrives later never takes ownership, so ownership cannot move away
//! from a node that may already be fetching. Ranks (1 + the owners that outrank this node) are
//! counted up to [`RANK_CAP`] and updated in O(blocks) when an owner leaves or is deposed. A
//! node that joined a swarm under way leaves the chunks it ranks first to the nodes already
//! there for a grace.

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use super::duty::FOLLOW_DEPTH;
use super::hub::ANYONE_LEVEL;
use super::plan::{Plan, State};
use super::timers::{TimerKind, Timers};
use super::{AgentConfig, Bitfield, NodeId, Time, mix64};

/// Ranks are counted up to here: beyond the ranks a node follows they all mean "not yet".
const RANK_CAP: u32 = FOLLOW_DEPTH + 1;

/// What the other parts know of a block, for the decision to fetch it from the hub.
#[derive(Debug, Clone, Copy)]
pub(super) struct Supply {
    /// Neighbours that hold it.
    pub(super) holders: u32,
    /// Neighbours that announced they fetch it from the hub.
    pub(super) fetchers: u32,
    /// Missing here, with no request in flight.
    pub(super) idle: bool,
    /// The owner that ranks it first is passed over for it: it claims the block, is not
    /// relied on, and has not delivered it `second_holder_after` after it was asked (see
    /// `Agent::schedule_hub`).
    pub(super) top_passed: bool,
    /// Owners above this node that could not fetch it from the hub just now (see
    /// [`Owners::pass`]): this node steps in that many ranks sooner.
    pub(super) passes: u32,
}

/// An owner above this node passed a block on to it (see [`Owners::pass`]).
#[derive(Debug, Clone, Copy)]
struct Pass {
    by: NodeId,
    at: Time,
    /// This node tried the block on it and failed.
    spent: bool,
}

#[derive(Debug)]
pub(super) struct Owners {
    me: NodeId,
    join_window: Duration,
    join_grace: Duration,
    /// Sorted; see the module documentation. Shared with the members until either changes.
    owners: Arc<Vec<NodeId>>,
    /// Per block of the plan, 1 + the owners that outrank this node (up to [`RANK_CAP`]).
    ranks: Vec<u32>,
    /// Blocks ranked below [`ANYONE_LEVEL`], in boot-priority order: the only hub candidates
    /// before the fallback reaches anyone.
    near_owned: Vec<u32>,
    /// Per block, the owners above this node that could not fetch it from the hub, and when
    /// they said so (see [`Self::pass`]); at most one entry per owner above it, within
    /// [`FOLLOW_DEPTH`]. A spent pass stays until it expires, so each owner passes a block on
    /// at most once per `pass_for`.
    passed: BTreeMap<u32, Vec<Pass>>,
    /// How long a pass lasts: half a first hub back-off, so it is over before the owner that
    /// gave it may retry the block itself.
    pass_for: Duration,
    /// When this node first had cohort members.
    member_since: Option<Time>,
    boot_started: Time,
    /// Whether `decide_joiner` has run for this boot (its grace is the `JoinerGrace` timer).
    joiner_decided: bool,
    /// The neighbours relied on whose claims started the joiner's grace.
    joiner_vouchers: Vec<NodeId>,
}

impl Owners {
    pub(super) fn new(cfg: &AgentConfig) -> Self {
        Owners {
            me: cfg.id,
            join_window: cfg.join_window,
            join_grace: cfg.join_grace,
            owners: Arc::new(Vec::new()),
            ranks: Vec::new(),
            near_owned: Vec::new(),
            passed: BTreeMap::new(),
            pass_for: cfg.hub_backoff / 2,
            member_since: None,
            boot_started: Time::ZERO,
            joiner_decided: false,
            joiner_vouchers: Vec::new(),
        }
    }

    /// The owners, sorted.
    pub(super) fn owners(&self) -> &[NodeId] {
        &self.owners
    }

    /// Per block of the plan, 1 + the owners above this node (counted up to a cap beyond the
    /// ranks a node follows).
    pub(super) fn ranks(&self) -> &[u32] {
        &self.ranks
    }

    /// The cohort has members (again).
    pub(super) fn saw_member(&mut self, now: Time) {
        self.member_since.get_or_insert(now);
    }

    /// A boot starts: the current members become the owners. Rank the plan afterwards.
    pub(super) fn start_boot(
        &mut self,
        members: &Arc<Vec<NodeId>>,
        now: Time,
        timers: &mut Timers,
    ) {
        self.owners = Arc::clone(members);
        self.ranks.clear();
        self.near_owned.clear();
        self.passed.clear();
        timers.clear(TimerKind::JoinerGrace);
        self.joiner_decided = false;
        self.joiner_vouchers.clear();
        self.boot_started = now;
    }

    /// Drops the owners that are no longer members (`members` sorted). Ranks are not updated.
    pub(super) fn keep_members(&mut self, members: &[NodeId]) {
        let kept = |o: &NodeId| members.binary_search(o).is_ok();
        if !self.owners.iter().all(kept) {
            Arc::make_mut(&mut self.owners).retain(kept);
        }
    }

    /// Removes a departed or banned node from the owners and moves its blocks to the next
    /// ranked. Returns whether ranks were updated (the hub candidates changed).
    pub(super) fn forget(&mut self, id: NodeId, plan: Option<&Plan>) -> bool {
        let Ok(pos) = self.owners.binary_search(&id) else {
            return false;
        };
        Arc::make_mut(&mut self.owners).remove(pos);
        // Its blocks' ranks drop by one instead.
        self.passed.retain(|_, by| {
            by.retain(|p| p.by != id);
            !by.is_empty()
        });
        let Some(plan) = plan else {
            return false;
        };
        self.fit(plan);
        let me = self.me;
        for (b, rank) in plan.blocks.iter().zip(&mut self.ranks) {
            if score(id, b.key) <= score(me, b.key) {
                continue;
            }
            *rank = if *rank == RANK_CAP {
                rank_of(&self.owners, me, b.key)
            } else {
                rank.saturating_sub(1).max(1)
            };
        }
        self.rebuild_near_owned(plan);
        true
    }

    /// The owners that watch this node, or would once the owners above it are gone: for each
    /// block it ranks within [`FOLLOW_DEPTH`], the [`FOLLOW_DEPTH`] other owners ranked
    /// highest. Sorted.
    pub(super) fn watchers(&self, plan: &Plan) -> Vec<NodeId> {
        let mut out = BTreeSet::new();
        for (b, &rank) in plan.blocks.iter().zip(&self.ranks) {
            if rank <= FOLLOW_DEPTH {
                out.extend(self.top(b.key, None));
            }
        }
        out.into_iter().collect()
    }

    /// The [`FOLLOW_DEPTH`] owners ranked next below this node for `key`.
    pub(super) fn below(&self, key: u64) -> Vec<NodeId> {
        self.top(key, Some(score(self.me, key)))
    }

    /// The [`FOLLOW_DEPTH`] owners but this node ranked highest for `key` (among those scoring
    /// under `under`), highest first.
    fn top(&self, key: u64, under: Option<u64>) -> Vec<NodeId> {
        let depth = FOLLOW_DEPTH as usize;
        let mut top: Vec<(u64, NodeId)> = Vec::with_capacity(depth + 1);
        for &o in self.owners.iter().filter(|&&o| o != self.me) {
            let s = score(o, key);
            if under.is_none_or(|u| s < u)
                && (top.len() < depth || top.last().is_some_and(|&(t, _)| s > t))
            {
                let at = top.partition_point(|&(t, _)| t > s);
                top.insert(at, (s, o));
                top.truncate(depth);
            }
        }
        top.into_iter().map(|(_, o)| o).collect()
    }

    /// Owner `by` could not fetch `blocks` from the hub (`Message::Unfetched`) at `now`: for
    /// each it outranks this node on, and this node follows, this node may step in one rank
    /// sooner for an attempt in the next `pass_for`. Returns the blocks passed on anew.
    pub(super) fn pass(&mut self, plan: &Plan, blocks: &[u32], by: NodeId, now: Time) -> Vec<u32> {
        let passed: Vec<u32> = blocks
            .iter()
            .copied()
            .filter(|&idx| self.pass_one(plan, idx, by, now))
            .collect();
        // Only a block a pass brings within reach is new to the hub candidates.
        if passed
            .iter()
            .any(|&i| self.is_near(i) && !self.near_owned.contains(&i))
        {
            self.rebuild_near_owned(plan);
        }
        passed
    }

    fn pass_one(&mut self, plan: &Plan, idx: u32, by: NodeId, now: Time) -> bool {
        let (Some(b), Some(&rank)) = (plan.blocks.get(idx as usize), self.ranks.get(idx as usize))
        else {
            return false;
        };
        if rank > FOLLOW_DEPTH
            || score(by, b.key) <= score(self.me, b.key)
            || self.owners.binary_search(&by).is_err()
        {
            return false;
        }
        let pass_for = self.pass_for;
        let by_idx = self.passed.entry(idx).or_default();
        by_idx.retain(|p| p.at + pass_for > now);
        if by_idx.iter().any(|p| p.by == by) {
            return false;
        }
        by_idx.push(Pass {
            by,
            at: now,
            spent: false,
        });
        true
    }

    /// Owners above this node that passed block `idx` on to it within `pass_for` of `now`, in
    /// passes not yet spent.
    pub(super) fn passes(&self, idx: u32, now: Time) -> u32 {
        self.unspent(idx)
            .filter(|p| p.at + self.pass_for > now)
            .count() as u32
    }

    /// The passes on block `idx` not yet spent (some may have expired).
    fn unspent(&self, idx: u32) -> impl Iterator<Item = &Pass> {
        self.passed
            .get(&idx)
            .into_iter()
            .flatten()
            .filter(|p| !p.spent)
    }

    /// This node tried block `idx` from the hub and failed: the passes it had are spent. The
    /// owners that gave them cannot give them again before they expire (while this node's
    /// own hub fetches fail, an owner re-passing after each probe would cost a hub request
    /// and a round of messages each time).
    pub(super) fn unpass(&mut self, idx: u32) {
        if let Some(by) = self.passed.get_mut(&idx) {
            by.iter_mut().for_each(|p| p.spent = true);
        }
    }

    /// Ranks the blocks in `range` (new to the plan, or all of them after the owners changed).
    pub(super) fn rank(&mut self, plan: &Plan, range: Range<u32>) {
        self.fit(plan);
        for idx in range {
            self.ranks[idx as usize] =
                rank_of(&self.owners, self.me, plan.blocks[idx as usize].key);
        }
        self.rebuild_near_owned(plan);
    }

    /// Up to `room` blocks this node should fetch from the hub at fallback `level`: blocks it
    /// ranks at most `level` that no neighbour holds (at level 1, that none is fetching
    /// either). Chunks wait until this node knows whether it joined a swarm under way.
    pub(super) fn hub_picks(
        &self,
        plan: &Plan,
        level: u32,
        room: usize,
        timers: &Timers,
        supply: impl Fn(u32) -> Supply,
    ) -> Vec<u32> {
        let chunks_allowed = self.joiner_decided && !timers.is_armed(TimerKind::JoinerGrace);
        let mut picks = Vec::new();
        for &idx in &self.near_owned {
            if picks.len() >= room {
                break;
            }
            let b = &plan.blocks[idx as usize];
            let s = supply(idx);
            if s.holders == 0
                && (b.manifest || chunks_allowed)
                && self.rank_of_block(idx) <= level + u32::from(s.top_passed) + s.passes
                && (level > 1 || s.fetchers == 0)
                && s.idle
            {
                picks.push(idx);
            }
        }
        picks
    }

    /// Once every block of the plan is known and looked up: a node that became a member just
    /// before this boot, and whose neighbours already hold a good share of chunks it lacks, has
    /// joined a swarm under way (the others may have started without counting it), so it
    /// leaves the chunks it ranks first to them for `join_grace` before fetching any.
    /// Returns whether it decided now (chunks may become hub candidates).
    pub(super) fn decide_joiner(
        &mut self,
        plan: &Plan,
        now: Time,
        holdings: impl Iterator<Item = u32>,
        vouchers: impl Iterator<Item = NodeId>,
        timers: &mut Timers,
    ) -> bool {
        if self.joiner_decided || !plan.complete || plan.lookups > 0 {
            return false;
        }
        self.joiner_decided = true;
        let recent = self
            .member_since
            .is_some_and(|t| self.boot_started.saturating_duration_since(t) < self.join_window);
        if recent && under_way(plan, holdings, true) {
            timers.arm(TimerKind::JoinerGrace, now + self.join_grace);
            self.joiner_vouchers = vouchers.collect();
        }
        true
    }

    /// Whether `peer`'s claims started this node's joiner grace.
    pub(super) fn is_joiner_voucher(&self, peer: NodeId) -> bool {
        self.joiner_vouchers.contains(&peer)
    }

    /// Ends the grace of a node that thought it joined a swarm under way once the claims that
    /// made it think so no longer do (`holdings`: those of the [`Self::is_joiner_voucher`]
    /// neighbours still vouched for). Peers that claim every chunk and serve none would
    /// otherwise keep every owner from the hub for the whole grace. Returns whether the grace
    /// ended (chunks may become hub candidates).
    pub(super) fn recheck_joiner(
        &self,
        plan: &Plan,
        holdings: impl Iterator<Item = u32>,
        timers: &mut Timers,
    ) -> bool {
        if !timers.is_armed(TimerKind::JoinerGrace) || under_way(plan, holdings, false) {
            return false;
        }
        timers.clear(TimerKind::JoinerGrace);
        true
    }

    fn rank_of_block(&self, idx: u32) -> u32 {
        self.ranks.get(idx as usize).copied().unwrap_or(1)
    }

    /// Gives every block of the plan a rank (1 until it is ranked).
    fn fit(&mut self, plan: &Plan) {
        self.ranks.resize(plan.blocks.len(), 1);
    }

    fn rebuild_near_owned(&mut self, plan: &Plan) {
        self.near_owned = plan
            .order
            .iter()
            .copied()
            .filter(|&i| self.is_near(i))
            .collect();
    }

    /// Whether block `idx` is ranked (less the passes on it) below [`ANYONE_LEVEL`].
    fn is_near(&self, idx: u32) -> bool {
        let passes = self.unspent(idx).count() as u32;
        self.rank_of_block(idx).saturating_sub(passes) < ANYONE_LEVEL
    }
}

/// Whether the neighbours' `holdings` include a good share of the chunks (of those `missing`
/// here, or of all): the swarm is under way. Once in a grace, the chunks this node fetched
/// since still count: they are the claims borne out.
fn under_way(plan: &Plan, holdings: impl Iterator<Item = u32>, missing: bool) -> bool {
    let mut lacking = Bitfield::new();
    for b in holdings {
        let counts = plan
            .blocks
            .get(b as usize)
            .is_some_and(|blk| !blk.manifest && (!missing || blk.state != State::Held));
        if counts {
            lacking.set(b);
        }
    }
    let chunks = plan.blocks.iter().filter(|b| !b.manifest).count() as u32;
    lacking.count() >= (chunks / 20).max(2)
}

/// A member's rendezvous score for a block's `key`.
pub(super) fn score(member: NodeId, key: u64) -> u64 {
    mix64(mix64(member.0) ^ key)
}

/// 1 + the members that outrank `me` for `key`, counted up to [`RANK_CAP`] (ranks beyond the
/// ones a node follows are all alike, and the early stop keeps this cheap).
fn rank_of(members: &[NodeId], me: NodeId, key: u64) -> u32 {
    let mine = score(me, key);
    let mut rank = 1;
    for m in members {
        if score(*m, key) > mine {
            rank += 1;
            if rank == RANK_CAP {
                break;
            }
        }
    }
    rank
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::agent::plan::test_plan;

    fn owners_of(members: &[NodeId], plan: &Plan) -> Owners {
        owners_as(AgentConfig::default().id, members, plan)
    }

    /// `me`'s owners over `members` at boot, with `plan` ranked.
    fn owners_as(me: NodeId, members: &[NodeId], plan: &Plan) -> Owners {
        let mut owners = Owners::new(&AgentConfig {
            id: me,
            ..AgentConfig::default()
        });
        owners.start_boot(
            &Arc::new(members.to_vec()),
            Time::ZERO,
            &mut Timers::default(),
        );
        owners.rank(plan, 0..plan.blocks.len() as u32);
        owners
    }

    #[test]
    fn owners_taken_from_the_members_at_boot_change_apart_from_them() {
        use crate::agent::neighbours::Neighbours;
        let (a, b, c, d) = (NodeId(11), NodeId(12), NodeId(13), NodeId(14));
        let cfg = AgentConfig::default();
        let mut n = Neighbours::new(&cfg);
        n.set_members(vec![a, b, c]);
        let mut owners = Owners::new(&cfg);
        owners.start_boot(n.members_shared(), Time::ZERO, &mut Timers::default());
        n.add_member(d);
        n.remove_member(a);
        assert_eq!(owners.owners(), [a, b, c]);
        owners.forget(b, None);
        assert_eq!(n.members(), [b, c, d]);
        assert_eq!(owners.owners(), [a, c]);
        owners.keep_members(n.members());
        assert_eq!(owners.owners(), [c]);
        assert_eq!(n.members(), [b, c, d]);
    }

    #[test]
    fn a_departed_owner_moves_its_blocks_to_the_next_ranked() {
        let plan = test_plan(200);
        let members: Vec<NodeId> = (1..14).map(NodeId).collect();
        let mut owners = owners_of(&members, &plan);
        assert!(owners.ranks.contains(&RANK_CAP));
        assert!(owners.ranks.contains(&1));
        for gone in [NodeId(3), NodeId(6), NodeId(1), NodeId(9), NodeId(12)] {
            assert!(owners.forget(gone, Some(&plan)));
            assert!(!owners.forget(gone, Some(&plan)), "already gone");
            let left: Vec<NodeId> = owners.owners.to_vec();
            let fresh = owners_of(&left, &plan);
            assert_eq!(owners.ranks, fresh.ranks, "after {gone}");
            assert_eq!(owners.near_owned, fresh.near_owned);
        }
    }

    /// The joiner decision with no neighbours' holdings to go by.
    fn decide_alone(owners: &mut Owners, plan: &Plan, timers: &mut Timers) -> bool {
        owners.decide_joiner(
            plan,
            Time::ZERO,
            std::iter::empty(),
            std::iter::empty(),
            timers,
        )
    }

    #[test]
    fn passes_let_the_owners_ranked_next_step_in_one_rank_each_for_one_attempt() {
        let plan = test_plan(200);
        let members: Vec<NodeId> = (1..14).map(NodeId).collect();
        let me = NodeId(5);
        let mut owners = owners_as(me, &members, &plan);
        let mut timers = Timers::default();
        assert!(decide_alone(&mut owners, &plan, &mut timers));
        let (idx, b) = plan
            .blocks
            .iter()
            .enumerate()
            .find(|(i, _)| owners.rank_of_block(*i as u32) == 3)
            .map(|(i, b)| (i as u32, b))
            .expect("a block this node ranks third");
        let mut above: Vec<NodeId> = members
            .iter()
            .copied()
            .filter(|&o| o != me && score(o, b.key) > score(me, b.key))
            .collect();
        above.sort_by_key(|&o| std::cmp::Reverse(score(o, b.key)));
        assert_eq!(above.len(), 2);
        let below = owners.below(b.key);
        assert_eq!(below.len(), FOLLOW_DEPTH as usize);
        assert!(below.iter().all(|&o| score(o, b.key) < score(me, b.key)));
        assert!(!below.contains(&me) && !below.iter().any(|o| above.contains(o)));
        let free = |i: u32| Supply {
            holders: 0,
            fetchers: 0,
            idle: i == idx,
            top_passed: false,
            passes: 0,
        };
        let now = Time::ZERO;
        let picks_at = |o: &Owners, at: Time| {
            let supply = |i| Supply {
                passes: o.passes(i, at),
                ..free(i)
            };
            o.hub_picks(&plan, 1, 100, &timers, supply)
        };
        let picks = |o: &Owners| picks_at(o, now);
        assert!(picks(&owners).is_empty());
        // Only owners above this node pass a block on, each once.
        assert!(owners.pass(&plan, &[idx], below[0], now).is_empty());
        assert!(
            owners.pass(&plan, &[idx], NodeId(99), now).is_empty(),
            "not an owner"
        );
        assert_eq!(owners.pass(&plan, &[idx], above[0], now), [idx]);
        assert!(owners.pass(&plan, &[idx], above[0], now).is_empty());
        assert!(picks(&owners).is_empty(), "rank 3 needs both above");
        assert_eq!(owners.pass(&plan, &[idx], above[1], now), [idx]);
        assert_eq!(picks(&owners), [idx]);
        // One attempt: failing it spends the passes, and an owner cannot give a spent pass
        // again before it expires.
        owners.unpass(idx);
        assert!(picks(&owners).is_empty());
        assert!(
            owners.pass(&plan, &[idx], above[0], now).is_empty(),
            "spent"
        );
        // A pass lasts less than its giver's first back-off: the giver may retry after that,
        // and pass the block on again.
        let later = now + AgentConfig::default().hub_backoff / 2;
        assert_eq!(owners.passes(idx, later), 0);
        assert_eq!(
            owners.pass(&plan, &[idx], above[0], later),
            [idx],
            "given again"
        );
        // A pass from an owner that then leaves is not counted twice (its rank goes instead).
        assert!(owners.forget(above[0], Some(&plan)));
        assert!(
            picks_at(&owners, later).is_empty(),
            "rank 2 now, no pass left"
        );
        assert_eq!(owners.pass(&plan, &[idx], above[1], later), [idx]);
        assert_eq!(picks_at(&owners, later), [idx]);
    }

    #[test]
    fn watchers_are_the_owners_ranked_near_this_node_on_its_blocks() {
        let plan = test_plan(60);
        let members: Vec<NodeId> = (1..40).map(NodeId).collect();
        let me = NodeId(7);
        let owners = owners_as(me, &members, &plan);
        let watchers = owners.watchers(&plan);
        assert!(!watchers.contains(&me) && watchers.windows(2).all(|w| w[0] < w[1]));
        for (i, b) in plan.blocks.iter().enumerate() {
            let mut others: Vec<NodeId> = members.iter().copied().filter(|&o| o != me).collect();
            others.sort_by_key(|&o| std::cmp::Reverse(score(o, b.key)));
            let top = &others[..FOLLOW_DEPTH as usize];
            if owners.rank_of_block(i as u32) <= FOLLOW_DEPTH {
                assert!(top.iter().all(|o| watchers.contains(o)), "block {i}");
            }
        }
        assert!(watchers.len() < members.len() - 1, "not every member");
    }

    #[test]
    fn hub_picks_follow_level_supply_and_the_joiner_decision() {
        let plan = test_plan(60);
        let members: Vec<NodeId> = (1..4).map(NodeId).collect();
        let mut owners = owners_of(&members, &plan);
        let mut timers = Timers::default();
        // The root flist (block 0) is held.
        let free = |i: u32| Supply {
            holders: 0,
            fetchers: 0,
            idle: i != 0,
            top_passed: false,
            passes: 0,
        };
        let rank = |owners: &Owners, i: u32| owners.rank_of_block(i);
        // Chunks wait for the joiner decision.
        assert!(owners.hub_picks(&plan, 1, 100, &timers, free).is_empty());
        // Not recent members: decided at once, without a grace.
        assert!(decide_alone(&mut owners, &plan, &mut timers));
        let level1 = owners.hub_picks(&plan, 1, 100, &timers, free);
        assert!(!level1.is_empty() && level1.iter().all(|&i| rank(&owners, i) == 1));
        let level2 = owners.hub_picks(&plan, 2, 100, &timers, free);
        assert!(level2.len() > level1.len() && level2.iter().all(|&i| rank(&owners, i) <= 2));
        assert_eq!(owners.hub_picks(&plan, 2, 3, &timers, free).len(), 3);
        let held_elsewhere = |i| Supply {
            holders: 1,
            ..free(i)
        };
        assert!(
            owners
                .hub_picks(&plan, 2, 100, &timers, held_elsewhere)
                .is_empty()
        );
        let fetched_elsewhere = |i| Supply {
            fetchers: 1,
            ..free(i)
        };
        assert!(
            owners
                .hub_picks(&plan, 1, 100, &timers, fetched_elsewhere)
                .is_empty()
        );
        assert_eq!(
            owners.hub_picks(&plan, 2, 100, &timers, fetched_elsewhere),
            level2
        );
        timers.arm(TimerKind::JoinerGrace, Time::MAX);
        assert!(owners.hub_picks(&plan, 2, 100, &timers, free).is_empty());
    }
}
