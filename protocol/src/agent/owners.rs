//! The owners part: which blocks this node fetches from the hub.
//!
//! The owner of a block is the node with the highest rendezvous score among this node and its
//! owners: the members present when its boot started, less those that left or were banned
//! since. A member that arrives later never takes ownership, so ownership cannot move away
//! from a node that may already be fetching. Ranks (1 + the owners that outrank this node) are
//! counted up to [`RANK_CAP`] and updated in O(blocks) when an owner leaves or is deposed. A
//! node that joined a swarm under way leaves the chunks it ranks first to the nodes already
//! there for a grace.

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
    /// When this node first had cohort members.
    member_since: Option<Time>,
    boot_started: Time,
    /// Whether `decide_joiner` has run for this boot (its grace is the `JoinerGrace` timer).
    joiner_decided: bool,
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
            member_since: None,
            boot_started: Time::ZERO,
            joiner_decided: false,
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
        timers.clear(TimerKind::JoinerGrace);
        self.joiner_decided = false;
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
                && self.rank_of_block(idx) <= level + u32::from(s.top_passed)
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
        timers: &mut Timers,
    ) -> bool {
        if self.joiner_decided || !plan.complete || plan.lookups > 0 {
            return false;
        }
        self.joiner_decided = true;
        let recent = self
            .member_since
            .is_some_and(|t| self.boot_started.saturating_duration_since(t) < self.join_window);
        if !recent {
            return true;
        }
        let mut lacking = Bitfield::new();
        for b in holdings {
            let chunk_missing = plan
                .blocks
                .get(b as usize)
                .is_some_and(|blk| !blk.manifest && blk.state != State::Held);
            if chunk_missing {
                lacking.set(b);
            }
        }
        let chunks = plan.blocks.iter().filter(|b| !b.manifest).count() as u32;
        if lacking.count() >= (chunks / 20).max(2) {
            timers.arm(TimerKind::JoinerGrace, now + self.join_grace);
        }
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
            .filter(|&i| self.rank_of_block(i) < ANYONE_LEVEL)
            .collect();
    }
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
        let mut owners = Owners::new(&AgentConfig::default());
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
        };
        let rank = |owners: &Owners, i: u32| owners.rank_of_block(i);
        // Chunks wait for the joiner decision.
        assert!(owners.hub_picks(&plan, 1, 100, &timers, free).is_empty());
        // Not recent members: decided at once, without a grace.
        assert!(owners.decide_joiner(&plan, Time::ZERO, std::iter::empty(), &mut timers));
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
